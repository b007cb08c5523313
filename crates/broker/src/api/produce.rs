//! Produce (key 0), versions 0–11: 3–11 here (record batch v2); 0–2 (message sets) are decoded
//! and up-converted to v2 batches by [`super::legacy`], then handled here as v3.
//!
//! Each partition's records are handed to its log as received: validated (framing, magic 2,
//! CRC-32C, size), given offsets, appended — never decompressed or re-encoded. The answer per
//! partition is the base offset (the *original* one for an idempotent producer's retried batch,
//! which is not appended twice), the log-append time for LogAppendTime topics, and the log start
//! offset. Errors are per partition (with base offset -1, as Kafka answers them):
//! UNKNOWN_TOPIC_OR_PARTITION (produce never auto-creates; Kafka creates topics on Metadata),
//! INVALID_TOPIC_EXCEPTION (the internal topic `__consumer_offsets`, which only the broker
//! writes, as in Kafka), CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, INVALID_RECORD,
//! OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, KAFKA_STORAGE_ERROR; acks other than
//! 0, 1 and -1 give INVALID_REQUIRED_ACKS everywhere. Transactional produce is not supported
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as InitProducerId refuses transactional ids.
//!
//! Durability: the append reaches the OS before the response (a broker crash loses nothing
//! acknowledged). If the topic's flush policy calls for an fsync (`flush.messages=1`, or the
//! unflushed-bytes threshold), it happens before the response, off the async threads, and
//! concurrent producers share it (group commit). With acks=0 no response is sent at all.

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, sb, Ctx, Outcome};
use crate::cluster::{now_ms, Partition};
use crate::records::log_error_code;

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 11 };

/// Handles Produce; `None` means "send nothing" (acks=0).
pub async fn handle(ctx: &Ctx<'_>, req: ProduceRequest) -> Option<ProduceResponse> {
    let started = Instant::now();
    let acks = req.acks;
    let request_error = if !(-1..=1).contains(&acks) {
        Some(ResponseError::InvalidRequiredAcks.code())
    } else if req.transactional_id.is_some() {
        Some(ResponseError::TransactionalIdAuthorizationFailed.code())
    } else {
        None
    };
    let mut to_flush: Vec<Arc<Partition>> = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic_data in req.topic_data {
        let topic = ctx.shared.cluster.topic(&topic_data.name);
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for pd in topic_data.partition_data {
            // Errors answer base offset -1, as Kafka's do.
            let mut r = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1);
            if let Some(code) = request_error {
                r.error_code = code;
                partitions.push(r);
                continue;
            }
            if topic.as_ref().is_some_and(|t| t.internal) {
                // Only the broker writes its internal topics (Kafka: InvalidTopicException).
                r.error_code = ResponseError::InvalidTopicException.code();
                r.error_message = Some(sb(format!(
                    "cannot append to internal topic {}",
                    topic_data.name.0
                )));
                partitions.push(r);
                continue;
            }
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(pd.index)) else {
                r.error_code = ResponseError::UnknownTopicOrPartition.code();
                partitions.push(r);
                continue;
            };
            let Some(records) = pd.records.filter(|r| !r.is_empty()) else {
                r.error_code = ResponseError::InvalidRecord.code();
                r.error_message = Some(sb("produce request without records"));
                partitions.push(r);
                continue;
            };
            match partition.log.append(&records, now_ms()) {
                Ok(info) => {
                    r.base_offset = info.base_offset;
                    r.log_append_time_ms = info.log_append_time;
                    r.log_start_offset = info.log_start_offset;
                    if !info.duplicate {
                        ctx.shared.metrics.records_in.inc_by(info.record_count);
                        partition.notify_appended();
                        if partition.log.flush_needed()
                            && !to_flush.iter().any(|p| Arc::ptr_eq(p, &partition))
                        {
                            to_flush.push(partition.clone());
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(partition = ?partition, error = %e, "produce rejected");
                    r.error_code = log_error_code(&e);
                    r.error_message = Some(sb(e.to_string()));
                    r.log_start_offset = partition.log.log_start_offset();
                }
            }
            partitions.push(r);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partitions),
        );
    }
    if !to_flush.is_empty() {
        flush(&to_flush, &mut responses).await;
    }
    ctx.shared
        .metrics
        .produce_seconds
        .observe(started.elapsed().as_secs_f64());
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// Fsyncs the partitions whose policy asks for it, off the async worker threads. A failed fsync
/// turns that partition's answer into KAFKA_STORAGE_ERROR: its data may not be durable.
async fn flush(partitions: &[Arc<Partition>], responses: &mut [TopicProduceResponse]) {
    let owned: Vec<Arc<Partition>> = partitions.to_vec();
    let results = tokio::task::spawn_blocking(move || {
        owned
            .iter()
            .map(|p| (p.topic.clone(), p.index, p.log.flush()))
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(results) = results else { return };
    for (topic, index, result) in results {
        if let Err(e) = result {
            tracing::error!(topic = %topic, partition = index, error = %e, "fsync failed");
            for t in responses.iter_mut().filter(|t| *t.name.0 == *topic) {
                for p in t
                    .partition_responses
                    .iter_mut()
                    .filter(|p| p.index == index)
                {
                    p.error_code = ResponseError::KafkaStorageError.code();
                    p.error_message = Some(sb(e.to_string()));
                }
            }
        }
    }
}

impl Outcome for ProduceResponse {
    fn error_code(&self) -> i16 {
        first_error(
            self.responses
                .iter()
                .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code)),
        )
    }
}
