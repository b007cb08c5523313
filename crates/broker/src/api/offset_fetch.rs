//! OffsetFetch (key 9), versions 0–9: 1–9 here; v0 (v1's layout) is decoded by
//! [`super::legacy`] and handled here as v1.
//!
//! Returns a group's committed offsets: for the named partitions, or (a null topic list, v2+)
//! for every partition with a commit. A partition without a commit — including every
//! partition of a group that does not exist — gets offset -1, leader epoch -1, empty metadata
//! and no error, exactly as Kafka answers (consumers then apply `auto.offset.reset`). v5+
//! return the committed leader epoch; v8+ fetch several groups in one request, answered per
//! group. `require_stable` (v7+) has nothing to wait for: without transactions no offset is
//! ever pending. The v9 member id and epoch belong to the KIP-848 protocol and are ignored
//! for classic groups, as Kafka does.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, sb, Ctx, Outcome};
use crate::group::{FetchedOffset, GroupCoordinator};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 9 };

/// Handles OffsetFetch.
pub async fn handle(ctx: &Ctx<'_>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let v = ctx.version;
    let groups = &ctx.shared.groups;
    if v >= 8 {
        let answered = req
            .groups
            .into_iter()
            .map(|g| {
                let wanted: Option<Vec<(String, Vec<i32>)>> = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let topics = fetch(groups, &g.group_id, wanted.as_deref())
                    .into_iter()
                    .map(|(topic, offsets)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(sb(topic)))
                            .with_partitions(
                                offsets
                                    .into_iter()
                                    .map(|(p, o)| {
                                        let (offset, epoch, metadata) = fields(o);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(sb(metadata)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(answered);
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let topics = fetch(groups, &req.group_id, wanted.as_deref())
        .into_iter()
        .map(|(topic, offsets)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partitions(
                    offsets
                        .into_iter()
                        .map(|(p, o)| {
                            let (offset, epoch, metadata) = fields(o);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(if v >= 5 { epoch } else { -1 })
                                .with_metadata(Some(sb(metadata)))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

fn fetch(
    groups: &GroupCoordinator,
    group: &str,
    wanted: Option<&[(String, Vec<i32>)]>,
) -> Vec<(String, Vec<FetchedOffset>)> {
    groups.fetch_offsets(group, wanted)
}

/// Offset, leader epoch and metadata of a partition's answer (-1, -1, "" without a commit).
fn fields(o: Option<crate::group::OffsetValue>) -> (i64, i32, String) {
    match o {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    }
}

impl Outcome for OffsetFetchResponse {
    fn error_code(&self) -> i16 {
        first_error(
            std::iter::once(self.error_code)
                .chain(self.groups.iter().map(|g| g.error_code))
                .chain(
                    self.topics
                        .iter()
                        .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
                ),
        )
    }
}
