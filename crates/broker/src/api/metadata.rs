//! Metadata (key 3), versions 0–12.
//!
//! One broker (this one) leads every partition, with itself as the only replica and ISR, at
//! leader epoch 0; it is also the controller, since some clients send InitProducerId there.
//! A null topic list (v1+) or an empty one (v0) means every topic; internal topics are listed
//! and flagged. Missing topics are created on the spot when the broker allows auto-creation and
//! the request does too (v4+; always for v0–3), with the default partition count (Kafka's
//! `num.partitions`, 1) — the tutorial's consumer reads partition 0 of a topic its producer
//! created this way. Otherwise UNKNOWN_TOPIC_OR_PARTITION; bad names INVALID_TOPIC_EXCEPTION.
//! Topics asked for by id (v10+) resolve by id, UNKNOWN_TOPIC_ID if absent.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::VersionRange;
use uuid::Uuid;

use super::{first_error, sb, Ctx, Outcome};
use crate::cluster::{validate_topic_name, Topic};
use crate::config::TopicConfig;

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 12 };

/// Answers Metadata.
pub async fn handle(ctx: &Ctx<'_>, req: MetadataRequest) -> MetadataResponse {
    let shared = ctx.shared;
    let node = BrokerId(shared.config.node_id);
    let broker = MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(sb(shared.advertised.0.clone()))
        .with_port(shared.advertised.1 as i32);
    let mut resp = MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_controller_id(if ctx.version >= 1 { node } else { BrokerId(-1) });
    if ctx.version >= 2 {
        resp.cluster_id = Some(sb(shared.cluster_id.clone()));
    }
    let allow_auto =
        shared.config.auto_create_topics && (ctx.version < 4 || req.allow_auto_topic_creation);
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.version == 0,
    };
    let topics = if all {
        shared
            .cluster
            .topics()
            .iter()
            .map(|t| describe(ctx, t))
            .collect()
    } else {
        let wanted = req.topics.unwrap_or_default();
        let mut out = Vec::with_capacity(wanted.len());
        for t in wanted {
            out.push(match t.name {
                Some(name) => lookup_or_create(ctx, &name, allow_auto),
                None => match shared.cluster.topic_by_id(t.topic_id) {
                    Some(topic) => describe(ctx, &topic),
                    None => MetadataResponseTopic::default()
                        .with_topic_id(t.topic_id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                },
            });
        }
        out
    };
    resp.topics = topics;
    resp
}

fn lookup_or_create(ctx: &Ctx<'_>, name: &TopicName, allow_auto: bool) -> MetadataResponseTopic {
    let shared = ctx.shared;
    let error = |code: i16| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(code)
    };
    if let Some(topic) = shared.cluster.topic(name) {
        return describe(ctx, &topic);
    }
    if let Err(e) = validate_topic_name(name) {
        return error(e.code());
    }
    if !allow_auto {
        return error(ResponseError::UnknownTopicOrPartition.code());
    }
    let partitions = shared.config.default_partitions;
    match shared
        .cluster
        .create_topic(name, partitions, -1, TopicConfig::default(), false, false)
    {
        Ok(topic) => describe(ctx, &topic),
        // A concurrent request created it first.
        Err(crate::cluster::ClusterError::TopicExists(_)) => match shared.cluster.topic(name) {
            Some(topic) => describe(ctx, &topic),
            None => error(ResponseError::LeaderNotAvailable.code()),
        },
        Err(e) => {
            tracing::warn!(topic = %name.0, error = %e, "auto-creating topic failed");
            error(e.code())
        }
    }
}

fn describe(ctx: &Ctx<'_>, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(ctx.shared.config.node_id);
    let partitions = (0..topic.partition_count())
        .map(|i| {
            MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    let mut t = MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(topic.name.to_string()))))
        .with_is_internal(topic.internal)
        .with_partitions(partitions);
    if ctx.version >= 10 {
        t.topic_id = topic.id;
    } else {
        t.topic_id = Uuid::nil();
    }
    t
}

impl Outcome for MetadataResponse {
    fn error_code(&self) -> i16 {
        first_error(self.topics.iter().map(|t| t.error_code))
    }
}
