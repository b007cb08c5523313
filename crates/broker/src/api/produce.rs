//! Produce (key 0), versions 0–11: 3–11 here (record batch v2); 0–2 (message sets) are decoded
//! and up-converted to v2 batches by [`super::legacy`], then handled here as v3.
//!
//! Each partition's records are handed to its log as received: validated (framing, magic 2,
//! CRC-32C, size), given offsets, appended — never decompressed or re-encoded, unless the
//! topic's `compression.type` names a codec (not `producer`): then batches of another codec are
//! rewritten with it first, as Kafka does. The answer per
//! partition is the base offset (the *original* one for an idempotent producer's retried batch,
//! which is not appended twice), the log-append time for LogAppendTime topics, and the log start
//! offset. Errors are per partition (with base offset -1, as Kafka answers them):
//! UNKNOWN_TOPIC_OR_PARTITION (produce never auto-creates; Kafka creates topics on Metadata),
//! INVALID_TOPIC_EXCEPTION (the internal topic `__consumer_offsets`, which only the broker
//! writes, as in Kafka), CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, INVALID_RECORD (also for a record
//! without a key on a `cleanup.policy=compact` topic, as in Kafka), INVALID_TIMESTAMP (a
//! CreateTime outside the topic's `message.timestamp.*.max.ms` window; the records named in
//! `record_errors`), NOT_ENOUGH_REPLICAS (acks=all on a topic whose `min.insync.replicas`
//! exceeds the one replica a single node has), OUT_OF_ORDER_SEQUENCE_NUMBER,
//! INVALID_PRODUCER_EPOCH, KAFKA_STORAGE_ERROR; acks other than
//! 0, 1 and -1 give INVALID_REQUIRED_ACKS everywhere. Transactional produce is not supported
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as InitProducerId refuses transactional ids.
//!
//! Durability: the append reaches the OS before the response (a broker crash loses nothing
//! acknowledged). If the topic's flush policy calls for an fsync (`flush.messages=1`, or the
//! unflushed-bytes threshold), it happens before the response, off the async threads, and
//! concurrent producers share it (group commit). With acks=0 no response is sent at all.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::records::{
    Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};

use super::{first_error, sb, Ctx, Outcome};
use crate::cluster::{now_ms, Partition};
use crate::config::{TimestampBounds, TopicConfig};
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
        let config = topic.as_ref().map(|t| t.config());
        let recompress_to = config.as_ref().and_then(target_codec);
        let compacted = config.as_ref().is_some_and(TopicConfig::compacts);
        let bounds = config.as_ref().and_then(TopicConfig::timestamp_bounds);
        let min_insync = config.as_ref().map_or(1, TopicConfig::min_insync_replicas);
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
            let records = match recompress_to {
                None => records,
                Some(codec) => match recompress(records, codec) {
                    Ok(records) => records,
                    Err(code) => {
                        r.error_code = code;
                        r.error_message = Some(sb("batch could not be recompressed"));
                        partitions.push(r);
                        continue;
                    }
                },
            };
            if acks == -1 && min_insync > 1 {
                // One node is one in-sync replica (Kafka's NotEnoughReplicasException).
                r.error_code = ResponseError::NotEnoughReplicas.code();
                r.error_message = Some(sb(format!(
                    "the in-sync replica set of {}-{} has 1 replica, fewer than its \
                     min.insync.replicas of {min_insync}",
                    topic_data.name.0, pd.index
                )));
                partitions.push(r);
                continue;
            }
            let now = now_ms();
            if compacted || bounds.is_some() {
                if let Err(rejection) = check_records(&records, compacted, bounds, now) {
                    r.error_code = rejection.code;
                    r.error_message = Some(sb(format!(
                        "{} (topic {}, partition {})",
                        rejection.message, topic_data.name.0, pd.index
                    )));
                    r.record_errors = rejection.record_errors;
                    partitions.push(r);
                    continue;
                }
            }
            match partition.log.append(&records, now) {
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

/// Why a partition's records were refused before reaching the log.
struct Rejection {
    code: i16,
    message: String,
    /// Kafka's per-record errors (Produce v8+): the index of each offending record.
    record_errors: Vec<BatchIndexAndErrorMessage>,
}

/// The checks that need the records themselves, done only for topics that ask for them:
///
/// * a compacted topic keeps the latest record *of each key*, so, as Kafka does, it refuses
///   records without a key (INVALID_RECORD);
/// * a topic with `message.timestamp.{before,after,difference}.max.ms` refuses the batch if
///   any record's CreateTime lies outside the window around the broker's clock
///   (INVALID_TIMESTAMP, each such record named in `record_errors`), as Kafka's log
///   validator does; `-1` (no timestamp) is not checked.
///
/// Records it cannot decode are CORRUPT_MESSAGE. Batches that fail validation are left to the
/// log, which answers them precisely.
fn check_records(
    records: &[u8],
    compacted: bool,
    bounds: Option<TimestampBounds>,
    now: i64,
) -> Result<(), Rejection> {
    use veritas_log::records::{parse_records, records_section};
    let mut index = 0i32;
    let mut late = Vec::new();
    for batch in veritas_log::batch::BatchIter::new(records) {
        let Ok(batch) = batch else {
            return Ok(());
        };
        if batch.header.is_control() {
            continue;
        }
        let corrupt = || Rejection {
            code: ResponseError::CorruptMessage.code(),
            message: "records could not be decoded".to_owned(),
            record_errors: Vec::new(),
        };
        let section = records_section(batch.bytes, &batch.header).map_err(|_| corrupt())?;
        let parsed = parse_records(&section, batch.header.record_count).map_err(|_| corrupt())?;
        for record in &parsed {
            if compacted && record.key.is_none() {
                return Err(Rejection {
                    code: ResponseError::InvalidRecord.code(),
                    message: "a compacted topic cannot accept a record without a key".to_owned(),
                    record_errors: vec![BatchIndexAndErrorMessage::default()
                        .with_batch_index(index)
                        .with_batch_index_error_message(Some(sb("record without a key")))],
                });
            }
            let timestamp = batch
                .header
                .base_timestamp
                .saturating_add(record.timestamp_delta);
            if let Some(b) = bounds.filter(|b| timestamp != -1 && !b.admits(timestamp, now)) {
                let (from, to) = b.range(now);
                late.push(
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(index)
                        .with_batch_index_error_message(Some(sb(format!(
                            "Timestamp {timestamp} of the record at index {index} is out of \
                             range. The timestamp should be within [{from}, {to}]"
                        )))),
                );
            }
            index = index.saturating_add(1);
        }
    }
    if late.is_empty() {
        return Ok(());
    }
    Err(Rejection {
        code: ResponseError::InvalidTimestamp.code(),
        message: "One or more records have been rejected due to invalid timestamp".to_owned(),
        record_errors: late,
    })
}

/// The codec a topic's `compression.type` imposes, or `None` for `producer` (keep the
/// producer's batches as they are, the default).
fn target_codec(config: &TopicConfig) -> Option<Compression> {
    match config
        .overrides()
        .get("compression.type")
        .map(String::as_str)
    {
        Some("uncompressed") => Some(Compression::None),
        Some("gzip") => Some(Compression::Gzip),
        Some("snappy") => Some(Compression::Snappy),
        Some("lz4") => Some(Compression::Lz4),
        Some("zstd") => Some(Compression::Zstd),
        _ => None,
    }
}

/// The attribute bits of a codec.
fn codec_bits(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Rewrites a produced set of batches with `codec`, as Kafka does for a topic whose
/// `compression.type` is not `producer`: every record keeps its offset delta, timestamp, key,
/// value and headers, and every batch its producer id, epoch, base sequence and flags, so
/// idempotence is unaffected. Batches already in `codec` are left alone (no copy at all when
/// all are). Decompression is bounded ([`veritas_legacy::DEFAULT_MAX_DECOMPRESSED`] for the
/// whole set, MESSAGE_TOO_LARGE beyond). A set that does not decode is returned unchanged, for
/// the log's validation to answer precisely (CORRUPT_MESSAGE, INVALID_RECORD, ...).
fn recompress(records: Bytes, codec: Compression) -> Result<Bytes, i16> {
    // Batch framing: base offset (8), length (4), leader epoch (4), magic (1), CRC (4), attributes.
    let wanted = codec_bits(codec);
    let mut pos = 0usize;
    let mut all_match = true;
    while pos < records.len() {
        let (Some(len), Some(attrs)) = (
            records.get(pos + 8..pos + 12),
            records.get(pos + 21..pos + 23),
        ) else {
            return Ok(records); // malformed: the log says how
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let Ok(len) = usize::try_from(len) else {
            return Ok(records);
        };
        if i16::from_be_bytes([attrs[0], attrs[1]]) & 0x7 != wanted {
            all_match = false;
        }
        pos = pos.saturating_add(12).saturating_add(len);
    }
    if all_match {
        return Ok(records);
    }
    let budget = std::cell::Cell::new(veritas_legacy::DEFAULT_MAX_DECOMPRESSED);
    let over_budget = std::cell::Cell::new(false);
    let decompress = |data: &mut Bytes, codec: Compression| {
        let legacy = match codec {
            Compression::None => veritas_legacy::Compression::None,
            Compression::Gzip => veritas_legacy::Compression::Gzip,
            Compression::Snappy => veritas_legacy::Compression::Snappy,
            Compression::Lz4 => veritas_legacy::Compression::Lz4,
            Compression::Zstd => veritas_legacy::Compression::Zstd,
        };
        let out = veritas_legacy::compression::decompress(legacy, data, budget.get()).inspect_err(
            |e| {
                if matches!(e, veritas_legacy::LegacyError::DecompressionLimit { .. }) {
                    over_budget.set(true);
                }
            },
        )?;
        budget.set(budget.get().saturating_sub(out.len()));
        Ok(Bytes::from(out))
    };
    let mut input = records.clone();
    let mut out = BytesMut::with_capacity(records.len());
    while !input.is_empty() {
        let set =
            match RecordBatchDecoder::decode_with_custom_compression(&mut input, Some(&decompress))
            {
                Ok(set) if set.version == 2 => set,
                _ if over_budget.get() => return Err(ResponseError::MessageTooLarge.code()),
                _ => return Ok(records),
            };
        let options = RecordEncodeOptions {
            version: 2,
            compression: codec,
        };
        if RecordBatchEncoder::encode(&mut out, &set.records, &options).is_err() {
            return Err(ResponseError::CorruptMessage.code());
        }
    }
    Ok(out.freeze())
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
