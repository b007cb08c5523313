//! ListOffsets (key 2), versions 0–7: 1–7 here; v0 (a list of offsets per partition) is
//! answered by [`super::legacy`] from this handler's v1 answer.
//!
//! Per partition: `-2` (earliest) → log start offset; `-1` (latest) → high watermark (= log end
//! offset: one node, no transactions, so the same for both isolation levels); `-3` (max
//! timestamp, v7+, KIP-734) → the largest timestamp and its offset; any other timestamp →
//! the first record whose timestamp is at or after it (the time index finds the batch, then the
//! batch's records are read — decompressed if need be — for the exact offset), or offset -1 if
//! no record is that recent. The special lookups answer timestamp -1, as Kafka does.
//! Errors per partition: UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_LEADER_EPOCH, KAFKA_STORAGE_ERROR.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, Ctx, Outcome};
use crate::cluster::Partition;
use crate::records::{log_error_code, record_positions};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 7 };

/// Latest offset.
pub const LATEST: i64 = -1;
/// Earliest offset.
pub const EARLIEST: i64 = -2;
/// Offset of the largest timestamp.
pub const MAX_TIMESTAMP: i64 = -3;

/// Handles ListOffsets.
pub async fn handle(ctx: &Ctx<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.shared.cluster.topic(&t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                        None => r.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                        Some(_) if p.current_leader_epoch > 0 => {
                            r.with_error_code(ResponseError::UnknownLeaderEpoch.code())
                        }
                        Some(partition) => lookup(&partition, p.timestamp, ctx.version, r),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Resolves one timestamp query against a partition's log.
pub fn lookup(
    p: &Partition,
    timestamp: i64,
    version: i16,
    mut r: ListOffsetsPartitionResponse,
) -> ListOffsetsPartitionResponse {
    if version >= 4 {
        r.leader_epoch = 0; // the field exists from v4; earlier versions must leave it at -1
    }
    match timestamp {
        EARLIEST => r.offset = p.log.log_start_offset(),
        LATEST => r.offset = p.log.log_end_offset(),
        MAX_TIMESTAMP => {
            if let Some((ts, offset)) = p.log.max_timestamp() {
                r.timestamp = ts;
                r.offset = offset;
            }
        }
        ts => match p.log.offset_for_timestamp(ts) {
            Ok(None) => {}
            Ok(Some(batch)) => match record_positions(&batch) {
                Ok(positions) => {
                    if let Some(found) = positions.iter().find(|rp| rp.timestamp >= ts) {
                        r.offset = found.offset;
                        r.timestamp = found.timestamp;
                    }
                }
                Err(e) => {
                    tracing::error!(partition = ?p, error = %e, "unreadable batch in timestamp lookup");
                    r.error_code = ResponseError::KafkaStorageError.code();
                }
            },
            Err(e) => r.error_code = log_error_code(&e),
        },
    }
    r
}

impl Outcome for ListOffsetsResponse {
    fn error_code(&self) -> i16 {
        first_error(
            self.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        )
    }
}
