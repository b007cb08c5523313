//! CreatePartitions (key 37), versions 0–3.
//!
//! Grows a topic to `count` partitions (it can never shrink: INVALID_PARTITIONS). A manual
//! assignment must place each new partition on this broker alone (INVALID_REPLICA_ASSIGNMENT).
//! `validate_only` checks and changes nothing. Internal topics cannot be grown.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, sb, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

/// Handles CreatePartitions.
pub async fn handle(ctx: &Ctx<'_>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let node = ctx.shared.config.node_id;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let fail = |code: i16, msg: String| {
                r.clone()
                    .with_error_code(code)
                    .with_error_message(Some(sb(msg)))
            };
            if let Some(assignments) = &t.assignments {
                if !assignments
                    .iter()
                    .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node)
                {
                    return fail(
                        ResponseError::InvalidReplicaAssignment.code(),
                        format!("new partitions must be assigned to broker {node} alone"),
                    );
                }
            }
            if ctx
                .shared
                .cluster
                .topic(&t.name)
                .is_some_and(|t| t.internal)
            {
                return fail(
                    ResponseError::TopicAuthorizationFailed.code(),
                    "internal topic".into(),
                );
            }
            match ctx
                .shared
                .cluster
                .create_partitions(&t.name, t.count, req.validate_only)
            {
                Ok(()) => r,
                Err(e) => fail(e.code(), e.to_string()),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

impl Outcome for CreatePartitionsResponse {
    fn error_code(&self) -> i16 {
        first_error(self.results.iter().map(|t| t.error_code))
    }
}
