//! AlterConfigs (key 33), versions 0–2.
//!
//! The legacy, non-incremental form: a topic's overrides become exactly the set given (keys left
//! out return to their defaults). Every key and value is validated first (INVALID_CONFIG with a
//! message) and nothing changes unless all are valid. Broker configs are static here — set them
//! with `veritas broker` flags — so broker resources get INVALID_REQUEST. The internal topic
//! `__consumer_offsets` cannot be reconfigured (TOPIC_AUTHORIZATION_FAILED; see
//! `refusal`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::VersionRange;

use super::describe_configs::TOPIC;
use super::{first_error, sb, Ctx, Outcome};
use crate::config::TopicConfig;

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

/// Why a config change to this resource is refused before its configs are looked at, as an
/// error code and message, shared with IncrementalAlterConfigs: broker resources are static
/// here (INVALID_REQUEST: set them with `veritas broker` flags), and `__consumer_offsets` is
/// configured by the group coordinator, whose store relies on it (compaction, no time
/// retention; a changed retention could delete live offsets). Kafka itself accepts changes to
/// the internal topic; this broker answers TOPIC_AUTHORIZATION_FAILED, as for deleting or
/// growing it.
pub(crate) fn refusal(ctx: &Ctx<'_>, resource_type: i8, name: &str) -> Option<(i16, String)> {
    if resource_type != TOPIC {
        return Some((
            ResponseError::InvalidRequest.code(),
            "broker configs are static; set them with veritas broker flags".into(),
        ));
    }
    ctx.shared
        .cluster
        .topic(name)
        .filter(|t| t.internal)
        .map(|t| {
            let e = crate::cluster::ClusterError::Internal(t.name.to_string());
            (e.code(), e.to_string())
        })
}

/// Handles AlterConfigs.
pub async fn handle(ctx: &Ctx<'_>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let r = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            if let Some((code, message)) = refusal(ctx, res.resource_type, &res.resource_name) {
                return r
                    .with_error_code(code)
                    .with_error_message(Some(sb(message)));
            }
            if ctx.shared.cluster.topic(&res.resource_name).is_none() {
                // Kafka looks the topic up before it validates the configs.
                return r
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_error_message(Some(sb(format!(
                        "topic '{}' does not exist",
                        res.resource_name
                    ))));
            }
            let replacement = TopicConfig::from_pairs(
                res.configs
                    .iter()
                    .map(|c| (c.name.as_str(), c.value.as_deref())),
            );
            let outcome = match replacement {
                Ok(new) => {
                    ctx.shared
                        .cluster
                        .alter_config(&res.resource_name, req.validate_only, |c| {
                            *c = new;
                            Ok(())
                        })
                }
                Err(e) => Err(e.into()),
            };
            match outcome {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(e.to_string()))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

impl Outcome for AlterConfigsResponse {
    fn error_code(&self) -> i16 {
        first_error(self.responses.iter().map(|r| r.error_code))
    }
}
