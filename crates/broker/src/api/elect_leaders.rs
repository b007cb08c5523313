//! ElectLeaders (key 43), versions 0–2.
//!
//! One node leads every partition and is every partition's only replica, so it is already the
//! preferred leader and there is never anyone else to elect. As Kafka answers in that case:
//!
//! * a named partition that exists: ELECTION_NOT_NEEDED, for either election type;
//! * a named partition that does not: UNKNOWN_TOPIC_OR_PARTITION;
//! * no partitions named (`null`: "all partitions"): an empty result, since Kafka leaves out
//!   the partitions that needed no election;
//! * an election type other than preferred (0) or unclean (1): INVALID_REQUEST (v1+, where the
//!   type and the top-level error exist; v0 is always preferred).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, sb, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

/// Handles ElectLeaders.
pub async fn handle(ctx: &Ctx<'_>, req: ElectLeadersRequest) -> ElectLeadersResponse {
    let mut resp = ElectLeadersResponse::default();
    if ctx.version >= 1 && !(0..=1).contains(&req.election_type) {
        resp.error_code = ResponseError::InvalidRequest.code();
        return resp;
    }
    let Some(topics) = req.topic_partitions else {
        return resp;
    };
    for t in topics {
        let topic = ctx.shared.cluster.topic(&t.topic);
        let partition_result = t
            .partitions
            .iter()
            .map(|&index| {
                let exists = topic.as_ref().is_some_and(|t| t.partition(index).is_some());
                let (code, message) = if exists {
                    (
                        ResponseError::ElectionNotNeeded.code(),
                        "the partition's only replica is already its leader",
                    )
                } else {
                    (
                        ResponseError::UnknownTopicOrPartition.code(),
                        "no such topic-partition",
                    )
                };
                PartitionResult::default()
                    .with_partition_id(index)
                    .with_error_code(code)
                    .with_error_message(Some(sb(message)))
            })
            .collect();
        resp.replica_election_results.push(
            ReplicaElectionResult::default()
                .with_topic(t.topic)
                .with_partition_result(partition_result),
        );
    }
    resp
}

impl Outcome for ElectLeadersResponse {
    fn error_code(&self) -> i16 {
        if self.error_code != 0 {
            return self.error_code;
        }
        first_error(
            self.replica_election_results
                .iter()
                .flat_map(|t| t.partition_result.iter().map(|p| p.error_code)),
        )
    }
}
