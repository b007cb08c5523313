//! OffsetCommit (key 8), versions 0–9: 2–9 here; v0–1 are decoded by [`super::legacy`] and
//! handled here as v2 (v0 as a standalone commit: generation -1, no member id).
//!
//! Stores consumer positions durably: the commit is appended to `__consumer_offsets` (and
//! fsynced if the flush policy asks) before it is acknowledged; see [`crate::group`].
//!
//! Checks, as Kafka: per partition UNKNOWN_TOPIC_OR_PARTITION (no such topic or partition) and
//! OFFSET_METADATA_TOO_LARGE (metadata over `offset.metadata.max.bytes`, 4096); then, for all
//! remaining partitions at once, the group: a member of the group must give its member id (and
//! `group.instance.id`, v7+) and the current generation — UNKNOWN_MEMBER_ID,
//! FENCED_INSTANCE_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS (group waiting for its
//! assignment); generation -1 with an empty member id (an `assign()` consumer or admin tool)
//! is accepted only while the group has no members (else UNKNOWN_MEMBER_ID) and creates a
//! group that only stores offsets. A generation ≥ 0 for an unknown group is
//! ILLEGAL_GENERATION, or GROUP_ID_NOT_FOUND from v9 (whose request is v8's, made for the
//! KIP-848 protocol; a classic group treats it as v8). Write failures: NOT_COORDINATOR
//! (clients look the coordinator up again and retry) or INVALID_COMMIT_OFFSET_SIZE.
//!
//! v2–4 `retention_time_ms` ≥ 0 sets an explicit expiry for the commit (Kafka's old
//! semantics); otherwise the group-level retention applies. v6+ store the leader epoch.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, Ctx, Outcome};
use crate::cluster::now_ms;
use crate::group::{CommitRequest, OffsetValue};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 9 };

/// Placeholder for partitions whose answer is the group-level outcome.
const PENDING: i16 = i16::MIN;

/// Handles OffsetCommit.
pub async fn handle(ctx: &Ctx<'_>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let v = ctx.version;
    let groups = &ctx.shared.groups;
    let max_metadata = groups.config().offset_metadata_max_bytes;
    let now = now_ms();
    let expire =
        (v <= 4 && req.retention_time_ms >= 0).then(|| now.saturating_add(req.retention_time_ms));
    let mut valid = Vec::new();
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic = ctx.shared.cluster.topic(&t.name);
        codes.push(
            t.partitions
                .iter()
                .map(|p| {
                    let metadata = p.committed_metadata.as_deref().unwrap_or_default();
                    if topic
                        .as_ref()
                        .and_then(|t| t.partition(p.partition_index))
                        .is_none()
                    {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else if metadata.len() > max_metadata {
                        ResponseError::OffsetMetadataTooLarge.code()
                    } else {
                        valid.push((
                            t.name.to_string(),
                            p.partition_index,
                            OffsetValue {
                                offset: p.committed_offset,
                                leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                                metadata: metadata.to_owned(),
                                commit_timestamp: now,
                                expire_timestamp: expire,
                            },
                        ));
                        PENDING
                    }
                })
                .collect(),
        );
    }
    let group_code = if valid.is_empty() {
        0
    } else {
        groups
            .commit_offsets(CommitRequest {
                group_id: req.group_id.to_string(),
                member_id: req.member_id.to_string(),
                instance_id: req
                    .group_instance_id
                    .as_ref()
                    .filter(|_| v >= 7)
                    .map(|i| i.to_string()),
                generation: req.generation_id_or_member_epoch,
                offsets: valid,
                unknown_group_error: if v >= 9 {
                    ResponseError::GroupIdNotFound.code()
                } else {
                    ResponseError::IllegalGeneration.code()
                },
            })
            .await
    };
    let topics = req
        .topics
        .into_iter()
        .zip(codes)
        .map(|(t, codes)| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(codes)
                        .map(|(p, code)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(if code == PENDING { group_code } else { code })
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

impl Outcome for OffsetCommitResponse {
    fn error_code(&self) -> i16 {
        first_error(
            self.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        )
    }
}
