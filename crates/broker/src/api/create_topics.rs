//! CreateTopics (key 19), versions 2–7.
//!
//! Creates topics with the requested partition count (`-1`: the broker default) and config
//! overrides (Kafka names; unknown keys or bad values → INVALID_CONFIG with a message). The
//! replication factor must be 1 or -1 (one broker; else INVALID_REPLICATION_FACTOR); a manual
//! assignment must put every partition on this broker alone (else INVALID_REPLICA_ASSIGNMENT).
//! `validate_only` checks everything and creates nothing. From v5 the answer carries the
//! partition count, replication factor and every effective config with its source; v7 the id.
//! A name twice in one request → INVALID_REQUEST for that name.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, sb, Ctx, Outcome};
use crate::cluster::ClusterError;
use crate::config::TopicConfig;

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 7 };

/// Handles CreateTopics.
pub async fn handle(ctx: &Ctx<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let shared = ctx.shared;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let node = shared.config.node_id;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default().with_name(t.name.clone());
        let fail = |mut r: CreatableTopicResult, code: i16, msg: String| {
            r.error_code = code;
            r.error_message = Some(sb(msg));
            r
        };
        if seen.get(&name).copied().unwrap_or(0) > 1 {
            results.push(fail(
                r,
                ResponseError::InvalidRequest.code(),
                format!("topic '{name}' appears more than once"),
            ));
            continue;
        }
        let mut partitions = if t.num_partitions == -1 {
            shared.config.default_partitions
        } else {
            t.num_partitions
        };
        let mut replication = t.replication_factor;
        if !t.assignments.is_empty() {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                results.push(fail(
                    r,
                    ResponseError::InvalidRequest.code(),
                    "both a replica assignment and a partition count or replication factor were given".into(),
                ));
                continue;
            }
            let ours = t
                .assignments
                .iter()
                .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node);
            let mut indexes: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
            indexes.sort_unstable();
            let dense = indexes.iter().enumerate().all(|(i, p)| *p == i as i32);
            if !ours || !dense {
                results.push(fail(
                    r,
                    ResponseError::InvalidReplicaAssignment.code(),
                    format!("every partition must be assigned to broker {node} alone, partitions numbered from 0"),
                ));
                continue;
            }
            partitions = t.assignments.len() as i32;
            replication = 1;
        }
        let config = match TopicConfig::from_pairs(
            t.configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.as_deref())),
        ) {
            Ok(c) => c,
            Err(e) => {
                results.push(fail(r, ResponseError::InvalidConfig.code(), e.to_string()));
                continue;
            }
        };
        match shared.cluster.create_topic(
            &name,
            partitions,
            replication,
            config,
            false,
            req.validate_only,
        ) {
            Ok(topic) => {
                if ctx.version >= 5 {
                    r.num_partitions = partitions;
                    r.replication_factor = 1;
                    r.configs = Some(
                        topic
                            .config()
                            .describe(shared.cluster.defaults())
                            .into_iter()
                            .map(|e| {
                                CreatableTopicConfigs::default()
                                    .with_name(sb(e.name))
                                    .with_value(Some(sb(e.value)))
                                    .with_config_source(e.source as i8)
                            })
                            .collect(),
                    );
                }
                if ctx.version >= 7 {
                    r.topic_id = topic.id;
                }
            }
            Err(e) => {
                if !matches!(e, ClusterError::TopicExists(_)) {
                    tracing::info!(topic = %name, error = %e, "create topic refused");
                }
                r = fail(r, e.code(), e.to_string());
            }
        }
        results.push(r);
    }
    CreateTopicsResponse::default().with_topics(results)
}

impl Outcome for CreateTopicsResponse {
    fn error_code(&self) -> i16 {
        first_error(self.topics.iter().map(|t| t.error_code))
    }
}
