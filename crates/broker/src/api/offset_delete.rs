//! OffsetDelete (key 47), version 0.
//!
//! Deletes a group's committed offsets for some partitions. In an Empty group any offset can
//! go; in an active consumer group only those of topics no member subscribes to (parsed from
//! the members' consumer-protocol subscriptions) — the others get GROUP_SUBSCRIBED_TO_TOPIC.
//! An active group of another protocol type: NON_EMPTY_GROUP. Partitions of unknown topics:
//! UNKNOWN_TOPIC_OR_PARTITION. Group-level errors (GROUP_ID_NOT_FOUND, INVALID_GROUP_ID,
//! NON_EMPTY_GROUP, NOT_COORDINATOR) come without per-partition results, as in Kafka. An
//! empty group left without offsets is deleted.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

/// Handles OffsetDelete.
pub async fn handle(ctx: &Ctx<'_>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if req.group_id.is_empty() {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::InvalidGroupId.code());
    }
    let mut known = Vec::new();
    let exists: Vec<Vec<bool>> = req
        .topics
        .iter()
        .map(|t| {
            let topic = ctx.shared.cluster.topic(&t.name);
            t.partitions
                .iter()
                .map(|p| {
                    let exists = topic
                        .as_ref()
                        .is_some_and(|topic| topic.partition(p.partition_index).is_some());
                    if exists {
                        known.push((t.name.to_string(), p.partition_index));
                    }
                    exists
                })
                .collect()
        })
        .collect();
    let codes = match ctx
        .shared
        .groups
        .delete_offsets(&req.group_id, &known)
        .await
    {
        Ok(codes) => codes,
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
    };
    let mut codes = codes.into_iter();
    let topics = req
        .topics
        .into_iter()
        .zip(exists)
        .map(|(t, exists)| {
            let partitions = t
                .partitions
                .iter()
                .zip(exists)
                .map(|(p, exists)| {
                    let code = if exists {
                        codes.next().unwrap_or(0)
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

impl Outcome for OffsetDeleteResponse {
    fn error_code(&self) -> i16 {
        first_error(
            std::iter::once(self.error_code).chain(
                self.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            ),
        )
    }
}
