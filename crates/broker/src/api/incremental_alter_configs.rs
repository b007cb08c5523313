//! IncrementalAlterConfigs (key 44), versions 0–1.
//!
//! Changes a topic's overrides key by key: SET (0), DELETE (1, back to the default), APPEND (2)
//! and SUBTRACT (3) for list keys such as `cleanup.policy`. All operations on a resource are
//! validated together; nothing changes unless all succeed (INVALID_CONFIG with a message).
//! Changes take effect at once on every partition (retention, segment size, flush policy).
//! Broker resources: INVALID_REQUEST (broker configs are static flags). The internal topic
//! `__consumer_offsets`: TOPIC_AUTHORIZATION_FAILED, as for AlterConfigs.

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::VersionRange;

use super::alter_configs::refusal;
use super::{first_error, sb, Ctx, Outcome};
use crate::config::ConfigError;

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

/// Handles IncrementalAlterConfigs.
pub async fn handle(
    ctx: &Ctx<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let defaults = ctx.shared.cluster.defaults().clone();
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
            let outcome =
                ctx.shared
                    .cluster
                    .alter_config(&res.resource_name, req.validate_only, |cfg| {
                        for op in &res.configs {
                            let key = op.name.as_str();
                            let value = op.value.as_deref();
                            match (op.config_operation, value) {
                                (0, Some(v)) => cfg.set(key, Some(v))?,
                                (1, _) => cfg.set(key, None)?,
                                (2, Some(v)) => cfg.append(key, v, &defaults)?,
                                (3, Some(v)) => cfg.subtract(key, v, &defaults)?,
                                (op, _) => {
                                    return Err(ConfigError::InvalidValue {
                                        key: key.to_owned(),
                                        value: value.unwrap_or("null").to_owned(),
                                        reason: format!(
                                            "operation {op} needs a value or is unknown"
                                        ),
                                    })
                                }
                            }
                        }
                        Ok(())
                    });
            match outcome {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(e.to_string()))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

impl Outcome for IncrementalAlterConfigsResponse {
    fn error_code(&self) -> i16 {
        first_error(self.responses.iter().map(|r| r.error_code))
    }
}
