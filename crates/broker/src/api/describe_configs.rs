//! DescribeConfigs (key 32), versions 1–4.
//!
//! Topics (resource type 2): every topic config key we know with its effective value and source
//! (TOPIC_CONFIG for overrides, STATIC_BROKER_CONFIG where a broker flag changed the default,
//! DEFAULT_CONFIG otherwise), optionally limited to the keys asked for, with synonyms when asked
//! (v1+) and types (v3+). The broker (resource type 4, name = node id or empty): its static
//! settings, all read-only. Other resource types: INVALID_REQUEST. Unknown topic:
//! UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::{first_error, sb, Ctx, Outcome};
use crate::config::{ConfigEntry, ConfigSource, TopicConfig};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };

/// Resource type: topic.
pub const TOPIC: i8 = 2;
/// Resource type: broker.
pub const BROKER: i8 = 4;

/// Handles DescribeConfigs.
pub async fn handle(ctx: &Ctx<'_>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let mut r = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let entries: Vec<(ConfigEntry, i8, bool)> = match res.resource_type {
                TOPIC => match ctx.shared.cluster.topic(&res.resource_name) {
                    Some(topic) => topic
                        .config()
                        .describe(ctx.shared.cluster.defaults())
                        .into_iter()
                        .map(|e| {
                            let ty = TopicConfig::config_type(&e.name);
                            (e, ty, false)
                        })
                        .collect(),
                    None => {
                        r.error_code = ResponseError::UnknownTopicOrPartition.code();
                        r.error_message = Some(sb(format!(
                            "topic '{}' does not exist",
                            &*res.resource_name
                        )));
                        return r;
                    }
                },
                BROKER => {
                    let name = res.resource_name.as_str();
                    if !name.is_empty() && name != ctx.shared.config.node_id.to_string() {
                        r.error_code = ResponseError::InvalidRequest.code();
                        r.error_message = Some(sb(format!("no broker '{name}' here")));
                        return r;
                    }
                    broker_configs(ctx)
                }
                other => {
                    r.error_code = ResponseError::InvalidRequest.code();
                    r.error_message = Some(sb(format!("resource type {other} is not supported")));
                    return r;
                }
            };
            // Null asks for every key; so does an empty list (asking for none is never useful).
            let wanted: Option<Vec<StrBytes>> = res.configuration_keys.filter(|k| !k.is_empty());
            r.configs = entries
                .into_iter()
                .filter(|(e, _, _)| {
                    wanted
                        .as_ref()
                        .is_none_or(|w| w.iter().any(|k| k.as_str() == e.name))
                })
                .map(|(e, ty, read_only)| {
                    let mut c = DescribeConfigsResourceResult::default()
                        .with_name(sb(e.name.clone()))
                        .with_value(Some(sb(e.value.clone())))
                        .with_read_only(read_only)
                        .with_config_source(e.source as i8);
                    if req.include_synonyms {
                        c.synonyms = vec![DescribeConfigsSynonym::default()
                            .with_name(sb(e.name))
                            .with_value(Some(sb(e.value)))
                            .with_source(e.source as i8)];
                    }
                    if ctx.version >= 3 {
                        c.config_type = ty;
                    }
                    c
                })
                .collect();
            r
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn broker_configs(ctx: &Ctx<'_>) -> Vec<(ConfigEntry, i8, bool)> {
    let c = &ctx.shared.config;
    let d = &c.log_defaults;
    let entry = |name: &str, value: String, ty: i8| {
        (
            ConfigEntry {
                name: name.to_owned(),
                value,
                source: ConfigSource::StaticBroker,
            },
            ty,
            true,
        )
    };
    vec![
        entry(
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            1,
        ),
        entry("broker.id", c.node_id.to_string(), 3),
        entry("node.id", c.node_id.to_string(), 3),
        entry("num.partitions", c.default_partitions.to_string(), 3),
        entry("default.replication.factor", "1".into(), 3),
        entry("offsets.topic.replication.factor", "1".into(), 4),
        entry("min.insync.replicas", "1".into(), 3),
        entry("log.retention.ms", d.retention_ms.to_string(), 5),
        entry("log.retention.bytes", d.retention_bytes.to_string(), 5),
        entry("log.segment.bytes", d.segment_bytes.to_string(), 3),
        entry("log.roll.ms", d.segment_ms.to_string(), 5),
        entry("message.max.bytes", d.max_batch_bytes.to_string(), 3),
        entry("socket.request.max.bytes", c.max_frame_bytes.to_string(), 3),
        entry(
            "connections.max.idle.ms",
            c.idle_timeout.as_millis().to_string(),
            5,
        ),
        entry("max.connections", c.max_connections.to_string(), 3),
        entry("delete.topic.enable", "true".into(), 1),
    ]
}

impl Outcome for DescribeConfigsResponse {
    fn error_code(&self) -> i16 {
        first_error(self.results.iter().map(|r| r.error_code))
    }
}
