//! DeleteRecords (key 21), versions 0–2.
//!
//! Moves a partition's log start offset forward to `offset` (`-1`: the high watermark), making
//! earlier records unreadable; whole segments below it are deleted. The answer is the new low
//! watermark. An offset beyond the high watermark: OFFSET_OUT_OF_RANGE. The internal topic
//! `__consumer_offsets` is refused with INVALID_TOPIC_EXCEPTION, as Kafka does.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, Ctx, Outcome};
use crate::records::log_error_code;

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

/// Handles DeleteRecords.
pub async fn handle(ctx: &Ctx<'_>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.shared.cluster.topic(&t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    if topic.as_ref().is_some_and(|t| t.internal) {
                        // Kafka: "Cannot delete records of internal topic" (InvalidTopicException).
                        return r.with_error_code(ResponseError::InvalidTopicException.code());
                    }
                    let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let hw = part.log.log_end_offset();
                    let target = if p.offset == -1 { hw } else { p.offset };
                    if target < 0 || target > hw {
                        return r.with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    match part.log.delete_records_before(target) {
                        Ok(low) => r.with_low_watermark(low),
                        Err(e) => r.with_error_code(log_error_code(&e)),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

impl Outcome for DeleteRecordsResponse {
    fn error_code(&self) -> i16 {
        first_error(
            self.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        )
    }
}
