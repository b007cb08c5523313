//! Fetch (key 1), versions 0–12: 4–12 here (record batch v2; topic names, not ids); 0–3 are
//! handled here as v4 by [`super::legacy`], which down-converts the batches to message sets.
//!
//! Returns whole stored batches starting with the one containing the fetch offset (clients skip
//! records before it), without touching their contents: one positional read per partition, no
//! per-record work. Limits follow Kafka (KIP-74): `partition_max_bytes` per partition and
//! `max_bytes` for the response, except that the first partition with data always gets at
//! least one whole batch so a consumer can always make progress.
//!
//! Long poll: if fewer than `min_bytes` are available, the request waits until an append to one
//! of its partitions wakes it (not by polling), `max_wait_ms` passes, or the broker shuts down.
//!
//! Errors per partition: UNKNOWN_TOPIC_OR_PARTITION, OFFSET_OUT_OF_RANGE (with the log start
//! offset and high watermark, so the client can apply `auto.offset.reset`), FENCED/UNKNOWN_LEADER_EPOCH
//! for a `current_leader_epoch` other than ours (0), KAFKA_STORAGE_ERROR.
//! Both isolation levels behave alike: there are no transactions, so the last stable offset is
//! the high watermark. Fetch sessions (KIP-227) are declined cleanly: every response carries
//! session id 0, so clients send full requests; a request naming a session gets
//! FETCH_SESSION_ID_NOT_FOUND.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::VersionRange;
use veritas_log::LogError;

use super::{first_error, Ctx, Outcome};
use crate::cluster::Partition;
use crate::records::log_error_code;

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 12 };

/// Longest wait honoured, whatever the client asks (Kafka caps it by the request timeout).
const MAX_WAIT: Duration = Duration::from_secs(30);

struct Wanted {
    topic: TopicName,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    current_leader_epoch: i32,
    resolved: Option<Arc<Partition>>,
}

/// Handles Fetch.
pub async fn handle(ctx: &Ctx<'_>, req: FetchRequest) -> FetchResponse {
    if req.session_id != 0 || req.session_epoch > 0 {
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
    }
    let cluster = &ctx.shared.cluster;
    let mut wanted = Vec::new();
    for t in &req.topics {
        let topic = cluster.topic(&t.topic);
        for p in &t.partitions {
            wanted.push(Wanted {
                topic: t.topic.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
                resolved: topic.as_ref().and_then(|t| t.partition(p.partition)),
            });
        }
    }
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    let min_bytes = req.min_bytes.max(0) as usize;
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let read_committed = req.isolation_level == 1;
    let mut stop = ctx.shared.shutting_down.clone();

    loop {
        // Arm the wake-ups before reading, so an append racing with the read is not missed.
        let mut wakeups: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = wanted
            .iter()
            .filter_map(|w| w.resolved.as_ref())
            .map(|p| Box::pin(p.appended()))
            .collect();
        for w in &mut wakeups {
            w.as_mut().enable();
        }
        let (responses, bytes, errors) = read_all(&wanted, max_bytes, read_committed);
        let done = bytes >= min_bytes.max(1)
            || errors
            || wakeups.is_empty()
            || tokio::time::Instant::now() >= deadline
            || ctx.shared.is_shutting_down();
        if done {
            return FetchResponse::default()
                .with_session_id(0)
                .with_responses(responses);
        }
        tokio::select! {
            _ = futures_util::future::select_all(wakeups) => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Reads every wanted partition once. Returns the response topics, the record bytes gathered,
/// and whether any partition had an error (which makes Kafka answer at once).
fn read_all(
    wanted: &[Wanted],
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut total = 0usize;
    let mut errors = false;
    for w in wanted {
        let mut pd = PartitionData::default()
            .with_partition_index(w.partition)
            .with_records(Some(Bytes::new()));
        if read_committed {
            pd.aborted_transactions = Some(Vec::new());
        }
        match &w.resolved {
            None => {
                pd.error_code = ResponseError::UnknownTopicOrPartition.code();
                errors = true;
            }
            Some(_) if w.current_leader_epoch > 0 => {
                pd.error_code = ResponseError::UnknownLeaderEpoch.code();
                errors = true;
            }
            Some(p) => {
                let budget = w.max_bytes.min(max_bytes.saturating_sub(total));
                let hw = p.log.log_end_offset();
                pd.high_watermark = hw;
                pd.last_stable_offset = hw;
                pd.log_start_offset = p.log.log_start_offset();
                if budget == 0 && total > 0 {
                    // Response full: this partition gets nothing this time.
                } else {
                    match p.log.read(w.offset, budget.max(1)) {
                        Ok(r) => {
                            pd.high_watermark = r.log_end_offset;
                            pd.last_stable_offset = r.log_end_offset;
                            pd.log_start_offset = r.log_start_offset;
                            // Only the first partition with data may exceed the limits (KIP-74).
                            if !(total > 0 && r.data.len() > budget) {
                                total += r.data.len();
                                pd.records = Some(r.data);
                            }
                        }
                        Err(e) => {
                            if !matches!(e, LogError::OffsetOutOfRange { .. }) {
                                tracing::error!(partition = ?p, error = %e, "fetch read failed");
                            }
                            pd.error_code = log_error_code(&e);
                            errors = true;
                        }
                    }
                }
            }
        }
        match topics.last_mut() {
            Some(t) if t.topic == w.topic => t.partitions.push(pd),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(w.topic.clone())
                    .with_partitions(vec![pd]),
            ),
        }
    }
    (topics, total, errors)
}

impl Outcome for FetchResponse {
    fn error_code(&self) -> i16 {
        if self.error_code != 0 {
            return self.error_code;
        }
        first_error(
            self.responses
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        )
    }
}
