//! DeleteTopics (key 20), versions 1–6.
//!
//! Deletes topics by name (v1–5 `topic_names`, v6 `topics`) or by id (v6). The deletion is
//! durable when the response is sent: partition directories are renamed aside and the topic's
//! metadata removed, then the data is deleted. Internal topics cannot be deleted
//! (TOPIC_AUTHORIZATION_FAILED, as Kafka answers for `__consumer_offsets`). Every group's
//! committed offsets of a deleted topic are deleted with it.
//! Unknown topics: UNKNOWN_TOPIC_OR_PARTITION (by name) or UNKNOWN_TOPIC_ID (by id).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::VersionRange;
use uuid::Uuid;

use super::{first_error, sb, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 6 };

/// Handles DeleteTopics.
pub async fn handle(ctx: &Ctx<'_>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let cluster = &ctx.shared.cluster;
    let targets: Vec<(Option<TopicName>, Uuid)> = if ctx.version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let mut results = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let mut r = DeletableTopicResult::default();
        let resolved = match &name {
            Some(n) => cluster.topic(n),
            None => cluster.topic_by_id(id),
        };
        if ctx.version >= 6 {
            r.topic_id = resolved.as_ref().map(|t| t.id).unwrap_or(id);
        }
        r.name = match (&resolved, name) {
            (Some(t), _) => Some(TopicName(sb(t.name.to_string()))),
            (None, n) => n,
        };
        match resolved {
            None => {
                r.error_code = if r.name.is_some() {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::UnknownTopicId.code()
                };
            }
            Some(topic) => {
                match cluster.delete_topic(&topic.name) {
                    Ok(()) => {
                        // Committed offsets go with the topic, so a topic re-created under the
                        // same name starts without stale ones (as Kafka does). The topic is
                        // gone either way: a failure here is logged, not answered.
                        if let Err(e) = ctx.shared.groups.forget_topic(&topic.name) {
                            tracing::error!(topic = %topic.name, error = %e,
                                "could not remove the committed offsets of a deleted topic");
                        }
                    }
                    Err(e) => {
                        r.error_code = e.code();
                        if ctx.version >= 5 {
                            r.error_message = Some(sb(e.to_string()));
                        }
                    }
                }
            }
        }
        results.push(r);
    }
    DeleteTopicsResponse::default().with_responses(results)
}

impl Outcome for DeleteTopicsResponse {
    fn error_code(&self) -> i16 {
        first_error(self.responses.iter().map(|t| t.error_code))
    }
}
