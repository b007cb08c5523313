//! OffsetForLeaderEpoch (key 23), versions 2–4.
//!
//! Consumers use it (KIP-320) to detect log truncation after a leader change. This broker has
//! one leader epoch, 0, that never changes and a log that is never truncated, so the end offset
//! of epoch 0 (or any later epoch asked about) is the log end offset; an earlier epoch cannot be
//! asked about (-1 is "unknown"). A `current_leader_epoch` above ours is UNKNOWN_LEADER_EPOCH.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 4 };

/// Handles OffsetForLeaderEpoch.
pub async fn handle(
    ctx: &Ctx<'_>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.shared.cluster.topic(&t.topic);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                        None => r.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                        Some(_) if p.current_leader_epoch > 0 => {
                            r.with_error_code(ResponseError::UnknownLeaderEpoch.code())
                        }
                        Some(part) if p.leader_epoch >= 0 => r
                            .with_leader_epoch(0)
                            .with_end_offset(part.log.log_end_offset()),
                        Some(_) => r,
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

impl Outcome for OffsetForLeaderEpochResponse {
    fn error_code(&self) -> i16 {
        first_error(
            self.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        )
    }
}
