//! The detector: a consumer-group member that scores every transaction and writes explained
//! decisions, at least once, with its state surviving restarts and rebalances.
//!
//! # One engine per partition
//!
//! Events are keyed by card, so a card's events live in one partition, in order. Each assigned
//! partition gets its own [`Detector`] (engine + rules + model), so what a partition's events
//! produce does not depend on which instance owns it: one instance or N instances of a group
//! give the same decisions.
//!
//! # Shared merchant state (`[engine] shared_merchants`, the default)
//!
//! Merchant and category features need every partition's events. A second consumer (the
//! *reader*) reads every partition of the input from its start into a [`SharedTable`]
//! (`veritas_detect::shared`: frozen at event-time boundaries that depend only on the
//! partitions' contents). The same pass feeds scoring: a record of a partition this instance
//! owns is scored when read, or queued in offset order until the boundary it reads is frozen,
//! so the table never runs ahead of scoring. The group consumer then only keeps membership
//! and commits (its partitions are paused). The reader starts once the group has assigned
//! partitions; a partition moved here whose checkpoint is behind what the reader has read is
//! read again from its checkpoint if the table still holds the state its events read, else
//! the table is rebuilt ([`Shared::rebuild_if_behind`]). A partition found at its end for
//! [`QUIET_RELEASE`] stops holding the table back.
//!
//! The table is checkpointed too ([`Shared::table_checkpoint_tick`]): by the instance owning
//! input partition 0, to the one-partition topic `<input>.<group>.table`, each checkpoint
//! written only once the group's committed offsets have passed the offsets it was read to. A
//! starting instance restores the latest and its reader starts there; a rebuild starts there
//! too when the checkpoint is not ahead of any partition scored here (else from the start).
//!
//! # At least once
//!
//! A decision (or a dead-letter record for an invalid event) is sent for every input record.
//! Input offsets are committed only at checkpoints, after every decision before them has been
//! acknowledged by the broker. A crash loses no decision; it can repeat the decisions made since
//! the last checkpoint (counted as duplicates downstream).
//!
//! # Checkpoints: state consistent with committed offsets
//!
//! Every `checkpoint_interval` (and when partitions are revoked, and at shutdown), for each owned
//! partition `p` whose next offset to process is `O`:
//!
//! 1. wait for the acknowledgement of every decision and DLQ record sent for `p`;
//! 2. write the engine's changelog since the previous checkpoint — one record per card / merchant
//!    state changed, keyed by the state key — to partition `p` of the state topic
//!    (`<input>.<group>.state`), then a **marker** record `{"offset": O}`; every
//!    `snapshot_every` checkpoints, write the whole state instead, as a snapshot in chunks, and a
//!    marker naming it;
//! 3. wait for those records' acknowledgements;
//! 4. commit offset `O` for `p`;
//! 5. after a snapshot, delete the state partition's records before it (DeleteRecords), which
//!    keeps the state topic bounded on any Kafka. The topic is `cleanup.policy=delete` with no
//!    time retention, never compacted: every marker has the same key, and compaction would
//!    drop a marker naming a snapshot once a later marker exists, or keep only a changelog
//!    record written after the last marker by a checkpoint cut short.
//!
//! On assignment, partition `p`'s state is rebuilt by reading its state partition from the
//! start: the last snapshot before the last marker, then the changelog records up to that
//! marker; anything after the last marker (a checkpoint cut short by a crash) is ignored. The
//! partition is then read from the marker's offset. The state restored is exactly the state the
//! engine had after processing offset `O - 1`, so every later event is scored as an
//! uninterrupted run would score it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use parking_lot::Mutex;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use veritas_detect::shared::{lookup_ms, Lookup, SharedTable};
use veritas_detect::{Decision, Detector, DetectorConfig, Engine, Model, Verdict};
use veritas_events::{decode_event, RecordContext};

use super::{Topics, ERROR_HEADER, LABEL_HEADER, SCENARIO_HEADER};

/// State-topic record keys: a changelog entry is `d` + the engine's state key; a snapshot chunk
/// `s` + id (8 bytes BE) + index (4 bytes BE); a marker `c`.
const KEY_DELTA: u8 = b'd';
const KEY_CHUNK: u8 = b's';
const KEY_MARKER: &[u8] = b"c";
/// Shared merchant state: a partition at its end this long stops holding the table back
/// (see [`SharedTable::release`]); while events flow on every partition none is released.
const QUIET_RELEASE: Duration = Duration::from_secs(3);
/// How often the input's partition count is checked (the group and, with shared merchant
/// state, the table must take partitions added to the input).
const METADATA_INTERVAL: Duration = Duration::from_secs(5);
/// Largest snapshot chunk (well under Kafka's default 1 MB message limit).
const CHUNK_BYTES: usize = 512 * 1024;

/// How the detector runs.
#[derive(Clone)]
pub struct DetectorSettings {
    /// librdkafka base configuration (bootstrap servers).
    pub client: ClientConfig,
    /// Input, decisions, DLQ and state topics.
    pub topics: Topics,
    /// Consumer group id.
    pub group: String,
    /// Engine, rules and thresholds.
    pub config: DetectorConfig,
    /// The model (rules only without one).
    pub model: Option<Model>,
    /// How often state is checkpointed and offsets committed.
    pub checkpoint_interval: Duration,
    /// Every this many checkpoints, a full snapshot replaces the changelog.
    pub snapshot_every: u32,
    /// Print the tutorial's lines for every event.
    pub seed_output: bool,
    /// Read from the beginning when the group has no committed offset (else from the end).
    pub from_beginning: bool,
    /// Shared merchant state: how often the instance owning input partition 0 checkpoints
    /// the merchant table (`None`: never; instances then build it from the start of the
    /// input).
    pub table_checkpoint_interval: Option<Duration>,
}

/// Detector metrics.
#[derive(Clone)]
pub struct DetectorMetrics {
    /// Input records consumed.
    pub events: IntCounter,
    /// Decisions by verdict.
    pub decisions: IntCounterVec,
    /// Invalid events sent to the dead-letter topic.
    pub dlq: IntCounter,
    /// Time to score one event (features + rules + model).
    pub score_seconds: Histogram,
    /// Record timestamp → decision ready.
    pub end_to_end_seconds: Histogram,
    /// Consumer lag per partition.
    pub lag: IntGaugeVec,
    /// Cards held in state.
    pub cards: IntGauge,
    /// Checkpoints completed.
    pub checkpoints: IntCounter,
    /// Partitions restored from checkpoints.
    pub restores: IntCounter,
    /// Shared merchant state: partitions moved here behind the table and read again from
    /// their checkpoints.
    pub table_rereads: IntCounter,
    /// Shared merchant state: tables rebuilt (from a table checkpoint, or else from the
    /// start of the input).
    pub table_rebuilds: IntCounter,
    /// Shared merchant state: merchant table checkpoints written.
    pub table_checkpoints: IntCounter,
    /// Shared merchant state: merchant tables restored from a checkpoint.
    pub table_restores: IntCounter,
    /// Shared merchant state: events the table has read, by outcome (`applied`, `late`:
    /// beyond its partition's lateness bound, `missed`: below what was applied after a
    /// quiet partition was released, `expired`: lookups that found their snapshot
    /// dropped), counted since the table was built (carried through its checkpoints).
    pub table_events: IntGaugeVec,
    /// Shared merchant state: events read and waiting for the frontier.
    pub table_pending: IntGauge,
}

impl DetectorMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> anyhow::Result<Self> {
        let fine = vec![
            0.000_002, 0.000_005, 0.00001, 0.000_025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
            0.005,
        ];
        let coarse = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let m = DetectorMetrics {
            events: IntCounter::new("veritas_detector_events_total", "Input records consumed")?,
            decisions: IntCounterVec::new(
                Opts::new("veritas_detector_decisions_total", "Decisions by verdict"),
                &["decision"],
            )?,
            dlq: IntCounter::new(
                "veritas_detector_dlq_total",
                "Invalid events sent to the dead-letter topic",
            )?,
            score_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "veritas_detector_score_seconds",
                    "Features + rules + model per event",
                )
                .buckets(fine),
            )?,
            end_to_end_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "veritas_detector_end_to_end_seconds",
                    "Record timestamp to decision",
                )
                .buckets(coarse),
            )?,
            lag: IntGaugeVec::new(
                Opts::new("veritas_detector_lag", "Consumer lag per partition"),
                &["partition"],
            )?,
            cards: IntGauge::new(
                "veritas_detector_state_cards",
                "Cards held in detector state",
            )?,
            checkpoints: IntCounter::new(
                "veritas_detector_checkpoints_total",
                "State checkpoints completed",
            )?,
            restores: IntCounter::new(
                "veritas_detector_restores_total",
                "Partitions restored from a checkpoint",
            )?,
            table_rereads: IntCounter::new(
                "veritas_detector_table_rereads_total",
                "Partitions moved here behind the merchant table, read again from their checkpoint",
            )?,
            table_rebuilds: IntCounter::new(
                "veritas_detector_table_rebuilds_total",
                "Merchant tables rebuilt from a table checkpoint or the start of the input",
            )?,
            table_checkpoints: IntCounter::new(
                "veritas_detector_table_checkpoints_total",
                "Merchant table checkpoints written",
            )?,
            table_restores: IntCounter::new(
                "veritas_detector_table_restores_total",
                "Merchant tables restored from a checkpoint",
            )?,
            table_events: IntGaugeVec::new(
                Opts::new(
                    "veritas_detector_table_events",
                    "Events the merchant table has read since it was built, by outcome",
                ),
                &["outcome"],
            )?,
            table_pending: IntGauge::new(
                "veritas_detector_table_pending",
                "Events the merchant table has read and not applied yet",
            )?,
        };
        registry.register(Box::new(m.events.clone()))?;
        registry.register(Box::new(m.decisions.clone()))?;
        registry.register(Box::new(m.dlq.clone()))?;
        registry.register(Box::new(m.score_seconds.clone()))?;
        registry.register(Box::new(m.end_to_end_seconds.clone()))?;
        registry.register(Box::new(m.lag.clone()))?;
        registry.register(Box::new(m.cards.clone()))?;
        registry.register(Box::new(m.checkpoints.clone()))?;
        registry.register(Box::new(m.restores.clone()))?;
        registry.register(Box::new(m.table_rereads.clone()))?;
        registry.register(Box::new(m.table_rebuilds.clone()))?;
        registry.register(Box::new(m.table_checkpoints.clone()))?;
        registry.register(Box::new(m.table_restores.clone()))?;
        registry.register(Box::new(m.table_events.clone()))?;
        registry.register(Box::new(m.table_pending.clone()))?;
        Ok(m)
    }
}

/// Ground truth carried in the input record's headers, when present.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// `veritas-label`.
    pub label: Option<bool>,
    /// `veritas-scenario`.
    pub scenario: Option<String>,
}

/// Receives what the detector does (the demo's dashboard; nothing for `veritas detect`).
pub trait Observer: Send + Sync {
    /// A decision was made for `tx`, whose ground truth (when known) is `truth`.
    fn decision(&self, _decision: &Decision, _tx: &veritas_events::Transaction, _truth: &Truth) {}
    /// An invalid event went to the dead-letter topic.
    fn dead_letter(&self) {}
    /// Consumer lag of a partition.
    fn lag(&self, _partition: i32, _lag: i64) {}
    /// The group gave this instance `partitions`, their state restored: it is now
    /// consuming them.
    fn assigned(&self, _partitions: &[i32]) {}
}

/// An observer that ignores everything.
pub struct NoObserver;
impl Observer for NoObserver {}

/// What a detector run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DetectSummary {
    /// Input records consumed.
    pub events: u64,
    /// Decisions written.
    pub decisions: u64,
    /// Dead-letter records written.
    pub dead_letters: u64,
    /// Checkpoints completed.
    pub checkpoints: u64,
}

struct PartitionWorker {
    detector: Detector,
    /// Next input offset to process (everything before it is in the engine's state).
    next_offset: i64,
    /// Decisions / dead letters sent and not yet known to be acknowledged.
    in_flight: VecDeque<DeliveryFuture>,
    checkpoints: u32,
    /// The checkpoint in progress, if any.
    pending: Option<Pending>,
    /// Shared merchant state: records read but not scored yet (with what they decoded to),
    /// in offset order, because the snapshot the first one reads is not frozen yet.
    waiting: VecDeque<(OwnedMessage, Decoded)>,
}

/// A state-topic record: key and value (`None`: a tombstone).
type StateRecord = (Vec<u8>, Option<Vec<u8>>);

/// A record's value decoded as an event.
type Decoded = Result<veritas_events::Transaction, veritas_events::EventError>;

/// Decodes a record's value (the Kafka timestamp stands in for a missing event time).
fn decode<M: Message>(m: &M) -> Decoded {
    let ts = m.timestamp().to_millis().unwrap_or(-1);
    let ctx = RecordContext::new(m.topic(), m.partition(), m.offset(), ts);
    decode_event(m.payload().unwrap_or_default(), &ctx)
}

/// A checkpoint of one partition in progress (see the module docs).
struct Pending {
    /// Next input offset at the checkpoint.
    offset: i64,
    /// Decisions and dead letters sent before `offset`, not yet acknowledged.
    outputs: Vec<DeliveryFuture>,
    /// State records captured at `offset`, sent once every output is acknowledged.
    records: Vec<StateRecord>,
    /// State records sent, not yet acknowledged.
    sent: Vec<DeliveryFuture>,
    /// Whether the records are a full snapshot.
    snapshot: bool,
    /// Offset of the first state record written.
    first_state_offset: Option<i64>,
}

/// A checkpoint whose every record is acknowledged: its offset may be committed.
struct Completed {
    offset: i64,
    truncate_before: Option<i64>,
}

struct Shared {
    settings: DetectorSettings,
    metrics: DetectorMetrics,
    observer: Arc<dyn Observer>,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    rt: tokio::runtime::Runtime,
    parts: Mutex<HashMap<i32, PartitionWorker>>,
    fatal: Mutex<Option<anyhow::Error>>,
    snapshot_ids: std::sync::atomic::AtomicU64,
    summary: Mutex<DetectSummary>,
    /// High watermark per input partition, from librdkafka's statistics.
    high_watermarks: Mutex<HashMap<i32, i64>>,
    /// Shared merchant state (`[engine] shared_merchants`), fed by the reader of every
    /// input partition (see the module docs).
    table: Option<Mutex<TableFeed>>,
    /// Shared merchant state: partitions just assigned and the offset their scoring starts
    /// at, for the reader to go back to if it has passed it.
    seeks: Mutex<Vec<(i32, i64)>>,
    /// Shared merchant state: the table checkpoint being taken or written.
    table_writer: Mutex<TableWriter>,
}

/// Merchant table checkpoints of this instance (while it owns input partition 0).
#[derive(Default)]
struct TableWriter {
    /// Taken, waiting for every partition's committed offset to reach its read positions.
    candidate: Option<TableCandidate>,
    /// Records of the checkpoint being written, not yet acknowledged.
    sending: Vec<DeliveryFuture>,
    /// Lowest offset of the checkpoint being written acknowledged so far.
    first_offset: Option<i64>,
    /// Where the checkpoint being written was read up to (for the log).
    positions: i64,
    last_taken: Option<Instant>,
    last_check: Option<Instant>,
}

/// An encoded table and the reader positions it was taken at.
struct TableCandidate {
    bytes: Vec<u8>,
    positions: BTreeMap<i32, i64>,
}

/// A table restored from its checkpoint, and per partition the next offset it takes.
struct RestoredTable {
    table: SharedTable,
    next: HashMap<i32, i64>,
}

/// The shared merchant table and what has been offered to it.
struct TableFeed {
    table: SharedTable,
    /// Per input partition, the next offset the table takes (a partition re-read from an
    /// earlier offset for scoring is not offered twice).
    next: HashMap<i32, i64>,
    /// Lookups that found their snapshot already dropped (scored with the oldest kept).
    expired: u64,
}

/// The consumer's context: rebalances restore and checkpoint partition state.
struct GroupContext(Arc<Shared>);

impl ClientContext for GroupContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        // The merchant table reader asks for end-of-partition events; they are not errors.
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        tracing::warn!(error = %error, %reason, "kafka client error");
    }

    /// librdkafka's statistics carry each partition's high watermark as last seen by the
    /// fetcher: lag comes from there, without extra requests queued behind long-poll fetches.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.0.settings.topics.input) else {
            return;
        };
        let mut hw = self.0.high_watermarks.lock();
        for (_, p) in topic
            .partitions
            .iter()
            .filter(|(_, p)| p.partition >= 0 && p.hi_offset >= 0)
        {
            hw.insert(p.partition, p.hi_offset);
        }
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let shared = &self.0;
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                for e in tpl.elements() {
                    tracing::info!(partition = e.partition(), "partition assigned");
                }
                // A partition added to the input since the state topic was made has no state
                // partition yet.
                if let Some(highest) = tpl.elements().iter().map(|e| e.partition()).max() {
                    if let Err(e) = shared.ensure_state_partitions(highest + 1) {
                        shared.set_fatal(e.context("growing the state topic"));
                    }
                }
                let mut assigned = Vec::new();
                for e in tpl.elements() {
                    match shared.restore(e.partition()) {
                        Ok(worker) => assigned.push((e.partition(), worker)),
                        Err(err) => shared.set_fatal(
                            err.context(format!("restoring partition {}", e.partition())),
                        ),
                    }
                }
                let mut parts = shared.parts.lock();
                for (p, worker) in assigned {
                    if let Some(offset) = worker.as_ref().map(|w| w.next_offset) {
                        let _ = tpl.set_partition_offset(
                            &shared.settings.topics.input,
                            p,
                            Offset::Offset(offset),
                        );
                    }
                    let worker = match worker {
                        Some(w) => w,
                        // With shared merchant state the reader of every partition feeds
                        // scoring, so a partition without a checkpoint needs its start
                        // offset now (auto.offset.reset's choice).
                        None if shared.table.is_some() => match shared.start_offset(consumer, p) {
                            Ok(o) => shared.fresh_worker(o),
                            Err(e) => {
                                shared.set_fatal(e);
                                continue;
                            }
                        },
                        None => shared.fresh_worker(-1),
                    };
                    if shared.table.is_some() {
                        shared.seeks.lock().push((p, worker.next_offset));
                    }
                    parts.insert(p, worker);
                }
                drop(parts);
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = r {
                    shared.set_fatal(anyhow!("assigning partitions: {e}"));
                }
                // The group consumer then only keeps membership and commits offsets.
                if shared.table.is_some() {
                    if let Err(e) = consumer.pause(tpl) {
                        shared.set_fatal(anyhow!("pausing assigned partitions: {e}"));
                    }
                }
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                shared.observer.assigned(&partitions);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(?revoked, "partitions revoked; checkpointing them");
                if let Err(e) = shared.checkpoint_now(consumer, &revoked) {
                    shared.set_fatal(e.context("checkpointing revoked partitions"));
                }
                let mut parts = shared.parts.lock();
                for p in &revoked {
                    parts.remove(p);
                    let _ = shared.metrics.lag.remove_label_values(&[&p.to_string()]);
                }
                drop(parts);
                let r = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = r {
                    tracing::warn!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error");
                let _ = consumer.unassign();
            }
        }
    }
}

impl Shared {
    fn set_fatal(&self, e: anyhow::Error) {
        tracing::error!(error = %crate::error_report(&e), "detector error");
        let mut f = self.fatal.lock();
        if f.is_none() {
            *f = Some(e);
        }
    }

    /// Makes sure the state topic has `partitions` partitions and the producer knows it
    /// (its metadata would otherwise say "unknown partition" until its next refresh).
    fn ensure_state_partitions(&self, partitions: i32) -> anyhow::Result<()> {
        let topics = &self.settings.topics;
        super::grow_state_topic(&self.settings.client, topics, partitions)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let md = self
                .producer
                .client()
                .fetch_metadata(Some(&topics.state), Duration::from_secs(10))
                .with_context(|| format!("metadata of {}", topics.state))?;
            let known = md.topics().first().map_or(0, |t| t.partitions().len());
            if known >= partitions as usize {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} still shows {known} partitions, not {partitions}",
                    topics.state
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Where scoring of a partition without a checkpoint starts: its first offset with
    /// `--from-beginning`, else its end.
    fn start_offset<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partition: i32,
    ) -> anyhow::Result<i64> {
        let topic = &self.settings.topics.input;
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(30))
            .with_context(|| format!("watermarks of {topic}/{partition}"))?;
        Ok(if self.settings.from_beginning {
            low
        } else {
            high
        })
    }

    /// After an assignment: if the reader has already read past where a newly assigned
    /// partition's scoring starts, the table is ahead of that partition. If the partition
    /// comes with a checkpoint (so none of its events reads state older than its
    /// watermark minus the lateness bound) and the table still keeps that state, the
    /// reader reads it again from its checkpoint: those records are scored, not offered to
    /// the table a second time. Otherwise the table is rebuilt: a fresh table, every
    /// partition read again from the start (scoring skips what it has done). Returns
    /// whether the reader was repositioned.
    fn rebuild_if_behind<C: ConsumerContext>(&self, reader: &BaseConsumer<C>) -> bool {
        let seeks: Vec<(i32, i64)> = std::mem::take(&mut *self.seeks.lock());
        let Some(feed) = &self.table else {
            return false;
        };
        let (watermarks, starts): (HashMap<i32, Option<i64>>, HashMap<i32, i64>) = self
            .parts
            .lock()
            .iter()
            .map(|(p, w)| {
                (
                    (*p, w.detector.engine().watermark_ms()),
                    (*p, w.next_offset),
                )
            })
            .unzip();
        let mut feed = feed.lock();
        let behind: Vec<(i32, i64)> = seeks
            .into_iter()
            .filter(|(p, offset)| *offset >= 0 && *offset < feed.next.get(p).copied().unwrap_or(0))
            .collect();
        if behind.is_empty() {
            return false;
        }
        let topic = &self.settings.topics.input;
        let partitions = feed.table.partitions();
        let lateness = feed.table.lateness_ms();
        // The earliest state the behind partitions' events can read, if they all have one.
        let oldest_needed = behind
            .iter()
            .map(|(p, _)| {
                watermarks
                    .get(p)
                    .copied()
                    .flatten()
                    .map(|w| w.saturating_sub(lateness))
            })
            .collect::<Option<Vec<i64>>>()
            .and_then(|v| v.into_iter().min());
        if let Some(oldest) =
            oldest_needed.filter(|&ms| !matches!(feed.table.lookup(ms), Lookup::Expired(_)))
        {
            // Keep that state (and whatever the other partitions' holds keep) until the next
            // drain takes every partition's need into account.
            feed.table.hold_also(oldest);
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions as i32 {
                let offset = match behind.iter().find(|(b, _)| *b == p) {
                    Some((_, start)) => Offset::Offset(*start),
                    None => match feed.next.get(&p) {
                        Some(&next) => Offset::Offset(next),
                        None => Offset::Beginning,
                    },
                };
                if let Err(e) = tpl.add_partition_offset(topic, p, offset) {
                    self.set_fatal(anyhow!("repositioning the merchant table reader: {e}"));
                    return false;
                }
            }
            // A new assignment, not a seek: nothing fetched at the old positions is delivered.
            match reader.assign(&tpl) {
                Ok(()) => {
                    tracing::info!(
                        topic = %topic,
                        partitions = ?behind.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
                        oldest_read_ms = oldest,
                        frontier_ms = feed.table.frontier_ms(),
                        "a partition moved here behind the merchant table: reading it again from its checkpoint"
                    );
                    self.metrics.table_rereads.inc();
                    return true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "repositioning the reader failed; rebuilding the table")
                }
            }
        }
        self.metrics.table_rebuilds.inc();
        // From the group's table checkpoint if it is not ahead of any partition scored here.
        let restored = load_table_checkpoint(&self.settings, &starts, partitions)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %crate::error_report(&e), "reading the merchant table checkpoint failed");
                None
            });
        match restored {
            Some(r) => {
                tracing::info!(
                    topic = %topic,
                    "a partition moved here behind the merchant table: rebuilding it from the table checkpoint"
                );
                self.metrics.table_restores.inc();
                feed.table = r.table;
                feed.next = r.next;
            }
            None => {
                tracing::info!(
                    topic = %topic,
                    "a partition moved here behind the merchant table: rebuilding it from the start"
                );
                let engine = &self.settings.config.engine;
                feed.table =
                    SharedTable::new(engine, partitions as u32, engine.shared_interval_ms());
                feed.next.clear();
            }
        }
        let next = feed.next.clone();
        drop(feed);
        for w in self.parts.lock().values_mut() {
            w.waiting.clear(); // read again
        }
        if let Err(e) = assign_reader(reader, topic, partitions, &next) {
            self.set_fatal(e);
        }
        true
    }

    fn detector_config(&self) -> DetectorConfig {
        let mut c = self.settings.config.clone();
        c.engine.track_changelog = true;
        c
    }

    fn fresh_worker(&self, next_offset: i64) -> PartitionWorker {
        PartitionWorker {
            detector: Detector::new(self.detector_config(), self.settings.model.clone()),
            next_offset,
            in_flight: VecDeque::new(),
            checkpoints: 0,
            pending: None,
            waiting: VecDeque::new(),
        }
    }

    /// Rebuilds a partition's state from its state partition. `None`: no checkpoint yet.
    fn restore(&self, partition: i32) -> anyhow::Result<Option<PartitionWorker>> {
        let started = Instant::now();
        let topic = &self.settings.topics.state;
        let cfg = self.detector_config();
        let mut engine: Option<Engine> = None;
        let mut pending_deltas: Vec<StateRecord> = Vec::new();
        let mut chunks = Chunks::default();
        let mut last_offset: Option<i64> = None;
        let records = read_partition(&self.settings, topic, partition, |m| {
            let key = m.key().unwrap_or_default();
            match key.first() {
                Some(&KEY_DELTA) => {
                    pending_deltas.push((key[1..].to_vec(), m.payload().map(<[u8]>::to_vec)))
                }
                Some(&KEY_CHUNK) => chunks.add(key, m.payload().unwrap_or_default()),
                _ if key == KEY_MARKER => {
                    let marker: Marker = serde_json::from_slice(m.payload().unwrap_or_default())
                        .with_context(|| {
                            format!(
                                "bad checkpoint marker at {topic}/{partition}@{}",
                                m.offset()
                            )
                        })?;
                    if let Some(snap) = marker.snapshot {
                        let bytes = chunks.take(&snap).with_context(|| {
                            format!("snapshot {} at {topic}/{partition}", snap.id)
                        })?;
                        engine = Some(Engine::restore(cfg.engine.clone(), &bytes)?);
                        pending_deltas.clear(); // covered by the snapshot
                    } else {
                        let e = engine.get_or_insert_with(|| Engine::new(cfg.engine.clone()));
                        for (k, v) in pending_deltas.drain(..) {
                            e.apply_changelog(&k, v.as_deref())?;
                        }
                    }
                    last_offset = Some(marker.offset);
                }
                _ => tracing::warn!(
                    partition,
                    offset = m.offset(),
                    "ignoring unknown state record"
                ),
            }
            Ok(())
        })?;
        let Some(offset) = last_offset else {
            return Ok(None);
        };
        let engine = engine.unwrap_or_else(|| Engine::new(cfg.engine.clone()));
        let cards = engine.memory().cards;
        self.metrics.restores.inc();
        tracing::info!(
            partition,
            offset,
            cards,
            state_records = records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "restored partition state"
        );
        let mut w = self.fresh_worker(offset);
        w.detector = Detector::new(cfg, self.settings.model.clone()).with_engine(engine);
        Ok(Some(w))
    }

    /// Scores one input record and sends its decision (or dead letter).
    fn process(&self, m: &BorrowedMessage<'_>) {
        let p = m.partition();
        let mut parts = self.parts.lock();
        let worker = parts
            .entry(p)
            .or_insert_with(|| self.fresh_worker(m.offset()));
        // Without shared merchant state nothing waits.
        let _ = self.handle(worker, m, decode(m));
    }

    /// Shared merchant state: a record of any input partition, read in offset order. It
    /// joins the table; if its partition is ours, it is scored now or queued behind the
    /// records of that partition still waiting for their snapshot.
    fn feed(&self, m: &BorrowedMessage<'_>) {
        let p = m.partition();
        let decoded = decode(m);
        if let Some(feed) = &self.table {
            let mut feed = feed.lock();
            let next = feed.next.get(&p).copied().unwrap_or(0);
            if m.offset() >= next {
                feed.next.insert(p, m.offset() + 1);
                // An invalid event has no place in the table (its owner dead-letters it).
                if let Ok(tx) = &decoded {
                    feed.table.offer(p as u32, m.offset(), tx);
                }
            }
        }
        let mut parts = self.parts.lock();
        let Some(worker) = parts.get_mut(&p) else {
            return; // another instance's partition
        };
        if worker.next_offset >= 0 && m.offset() < worker.next_offset {
            return;
        }
        let decoded = if worker.waiting.is_empty() {
            match self.handle(worker, m, decoded) {
                None => return,
                Some(decoded) => decoded,
            }
        } else {
            decoded
        };
        worker.waiting.push_back((m.detach(), decoded));
    }

    /// Shared merchant state: partitions added to the input (the group consumer's metadata
    /// refresh rebalances the group onto them; this checks the table too). The table then
    /// waits for the new partitions and the reader reads them from their start. Returns
    /// whether the table grew.
    fn follow_new_partitions<C: ConsumerContext, R: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        reader: Option<&BaseConsumer<R>>,
    ) -> anyhow::Result<bool> {
        let topic = &self.settings.topics.input;
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("metadata of {topic}"))?;
        let now = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        let (Some(feed), Some(reader)) = (&self.table, reader) else {
            return Ok(false);
        };
        let mut feed = feed.lock();
        let had = feed.table.partitions();
        if now <= had {
            return Ok(false);
        }
        feed.table.grow(now as u32);
        let mut tpl = TopicPartitionList::new();
        for p in had..now {
            tpl.add_partition_offset(topic, p as i32, Offset::Beginning)?;
        }
        reader.incremental_assign(&tpl).with_context(|| {
            format!("adding the new partitions of {topic} to the merchant table reader")
        })?;
        tracing::info!(
            topic = %topic,
            from = had,
            to = now,
            "the input grew: the merchant table reads the new partitions too"
        );
        Ok(true)
    }

    /// Shared merchant state: a partition of the input is quiet for now (end reached).
    fn release(&self, partition: i32) {
        if let Some(feed) = &self.table {
            feed.lock().table.release(partition as u32);
        }
    }

    /// Scores the waiting records whose snapshots are frozen now, in offset order, and
    /// keeps the snapshots the slowest owned partition still needs.
    fn drain_waiting(&self) {
        let Some(feed) = &self.table else { return };
        let mut parts = self.parts.lock();
        for w in parts.values_mut() {
            while let Some((m, decoded)) = w.waiting.pop_front() {
                if let Some(decoded) = self.handle(w, &m, decoded) {
                    w.waiting.push_front((m, decoded));
                    break;
                }
            }
        }
        let mut feed = feed.lock();
        let lateness = feed.table.lateness_ms();
        // The earliest time a partition's next lookup can ask for: its watermark minus the
        // lateness bound, or, before it has scored anything, its first waiting event's time.
        let hold = parts
            .values()
            .filter_map(|w| match w.detector.engine().watermark_ms() {
                Some(wm) => Some(wm.saturating_sub(lateness)),
                None => w
                    .waiting
                    .iter()
                    .find_map(|(_, d)| d.as_ref().ok())
                    .map(|tx| tx.timestamp.timestamp_millis()),
            })
            .min();
        feed.table.hold(hold);
    }

    /// Scores one record (or dead-letters it) and sends the output, unless the shared merchant
    /// snapshot it reads is not frozen yet: then it hands `decoded` back to wait.
    fn handle<M: Message>(
        &self,
        worker: &mut PartitionWorker,
        m: &M,
        decoded: Decoded,
    ) -> Option<Decoded> {
        let p = m.partition();
        if worker.next_offset >= 0 && m.offset() < worker.next_offset {
            return None; // already in state (re-delivered after a seek)
        }
        let ts = m.timestamp().to_millis().unwrap_or(-1);
        let payload = m.payload().unwrap_or_default();
        // Shared merchant state: the table stays locked while the record is scored.
        let mut feed = self.table.as_ref().map(|f| f.lock());
        let snapshot = match (feed.as_deref_mut(), &decoded) {
            (Some(TableFeed { table, expired, .. }), Ok(tx)) => {
                let at = lookup_ms(
                    worker.detector.engine().watermark_ms(),
                    tx.timestamp.timestamp_millis(),
                    table.lateness_ms(),
                );
                match table.lookup(at) {
                    Lookup::Ready(s) => Some(s),
                    Lookup::NotYet => {
                        drop(feed);
                        return Some(decoded);
                    }
                    Lookup::Expired(s) => {
                        *expired += 1;
                        if expired.is_power_of_two() {
                            tracing::warn!(
                                partition = p,
                                offset = m.offset(),
                                count = *expired,
                                "shared merchant state of that time already dropped; scored with the oldest kept"
                            );
                        }
                        Some(s)
                    }
                }
            }
            _ => None,
        };
        self.metrics.events.inc();
        let truth = truth_of(m);
        let topics = &self.settings.topics;
        let fut = match decoded {
            Err(e) => {
                self.metrics.dlq.inc();
                self.observer.dead_letter();
                self.summary.lock().dead_letters += 1;
                let error = e.to_string();
                let source = format!("{}/{}/{}", m.topic(), p, m.offset());
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: ERROR_HEADER,
                        value: Some(error.as_str()),
                    })
                    .insert(Header {
                        key: "veritas-source",
                        value: Some(source.as_str()),
                    });
                let mut r = FutureRecord::to(&topics.dlq)
                    .payload(payload)
                    .headers(headers);
                if let Some(k) = m.key() {
                    r = r.key(k);
                }
                tracing::debug!(%source, %error, "invalid event to the dead-letter topic");
                self.producer.send_result(r).map_err(|(e, _)| e)
            }
            Ok(tx) => {
                let started = Instant::now();
                let mut decision = match &snapshot {
                    Some(s) => worker.detector.process_shared(&tx, s),
                    None => worker.detector.process(&tx),
                };
                let score_time = started.elapsed();
                self.metrics.score_seconds.observe(score_time.as_secs_f64());
                let e2e_ms = (now_ms() - ts).max(0);
                decision.latency_us = Some(if ts > 0 {
                    e2e_ms as u64 * 1000
                } else {
                    score_time.as_micros() as u64
                });
                self.metrics
                    .end_to_end_seconds
                    .observe(e2e_ms as f64 / 1000.0);
                self.metrics
                    .decisions
                    .with_label_values(&[decision.decision.as_str()])
                    .inc();
                self.summary.lock().decisions += 1;
                self.observer.decision(&decision, &tx, &truth);
                if self.settings.seed_output {
                    println!(
                        "Received message | Topic({}) | Message({})",
                        m.topic(),
                        String::from_utf8_lossy(payload)
                    );
                    let name = tx.first_name.as_deref().unwrap_or("unknown");
                    match decision.decision {
                        Verdict::Approve => println!("--AUTHORIZED-- bank account for user {name}"),
                        _ => println!("--UNAUTHORIZED-- bank account for user {name}"),
                    }
                }
                let value = match serde_json::to_vec(&decision) {
                    Ok(v) => v,
                    Err(e) => {
                        self.set_fatal(anyhow!("encoding a decision: {e}"));
                        return None;
                    }
                };
                self.producer
                    .send_result(
                        FutureRecord::to(&topics.decisions)
                            .key(&tx.card_number)
                            .payload(&value),
                    )
                    .map_err(|(e, _)| e)
            }
        };
        match fut {
            Ok(f) => worker.in_flight.push_back(f),
            Err(e) => self.set_fatal(anyhow!(
                "queueing output for {}/{}@{}: {e}",
                m.topic(),
                p,
                m.offset()
            )),
        }
        worker.next_offset = m.offset() + 1;
        self.summary.lock().events += 1;
        None
    }

    /// Starts a checkpoint of `w` at its current offset, unless one is in progress: captures
    /// the decisions sent so far and the state to write (changelog or full snapshot), without
    /// waiting for anything. [`Shared::advance`] drives it to completion.
    fn begin_checkpoint(&self, w: &mut PartitionWorker) -> anyhow::Result<()> {
        if w.pending.is_some() || w.next_offset < 0 {
            return Ok(());
        }
        w.checkpoints += 1;
        let snapshot =
            self.settings.snapshot_every > 0 && w.checkpoints % self.settings.snapshot_every == 1;
        let mut records: Vec<StateRecord> = Vec::new();
        let mut marker = Marker {
            offset: w.next_offset,
            snapshot: None,
        };
        if snapshot {
            let bytes = w.detector.engine().snapshot();
            let _ = w.detector.engine_mut().drain_changelog(); // the snapshot covers them
            let (chunks, snapshot) = chunk_records(self.next_snapshot_id(), &bytes);
            records = chunks;
            marker.snapshot = Some(snapshot);
        } else {
            for entry in w.detector.engine_mut().drain_changelog() {
                let mut key = vec![KEY_DELTA];
                key.extend_from_slice(&entry.key);
                records.push((key, entry.value));
            }
        }
        records.push((KEY_MARKER.to_vec(), Some(serde_json::to_vec(&marker)?)));
        w.pending = Some(Pending {
            offset: w.next_offset,
            outputs: w.in_flight.drain(..).collect(),
            records,
            sent: Vec::new(),
            snapshot,
            first_state_offset: None,
        });
        Ok(())
    }

    /// Drives partition `p`'s checkpoint: (1) its decisions acknowledged, then (2) its state
    /// records and marker sent and (3) acknowledged. Returns the completed checkpoint's offset
    /// (and, after a snapshot, the state offset before which records are redundant). With
    /// `block`, waits for each step; otherwise only looks. A delivery failure is an error: the
    /// offset is then never committed.
    fn advance(
        &self,
        p: i32,
        w: &mut PartitionWorker,
        block: bool,
    ) -> anyhow::Result<Option<Completed>> {
        let Some(pending) = w.pending.as_mut() else {
            return Ok(None);
        };
        let settle = |futures: &mut Vec<DeliveryFuture>, what: &str| {
            settle_deliveries(
                &self.rt,
                futures,
                block,
                &format!("{what} for partition {p}"),
            )
        };
        settle(&mut pending.outputs, "a decision")?;
        if !pending.outputs.is_empty() {
            return Ok(None);
        }
        if !pending.records.is_empty() {
            for (key, value) in std::mem::take(&mut pending.records) {
                let f = self.send_state(&self.settings.topics.state, p, &key, value.as_deref())?;
                pending.sent.push(f);
            }
        }
        if let Some(first) = settle(&mut pending.sent, "a state record")? {
            pending.first_state_offset =
                Some(pending.first_state_offset.map_or(first, |f| f.min(first)));
        }
        if !pending.sent.is_empty() {
            return Ok(None);
        }
        let done = w.pending.take();
        Ok(done.map(|d| Completed {
            offset: d.offset,
            truncate_before: if d.snapshot {
                d.first_state_offset
            } else {
                None
            },
        }))
    }

    /// The periodic checkpoint: starts checkpoints where none is running and commits those
    /// that completed, never waiting (so scoring never stalls on acknowledgements).
    fn checkpoint_tick<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        start: bool,
    ) -> anyhow::Result<()> {
        let mut completed = Vec::new();
        {
            let mut parts = self.parts.lock();
            for (p, w) in parts.iter_mut() {
                if start {
                    self.begin_checkpoint(w)?;
                }
                if let Some(c) = self.advance(*p, w, false)? {
                    completed.push((*p, c));
                }
            }
        }
        self.commit(consumer, &completed, CommitMode::Async)
    }

    /// Shared merchant state: checkpoints the table, if this instance owns input partition 0
    /// (one writer per group). Every `table_checkpoint_interval` it encodes the table with
    /// the offsets its reader has reached, then waits until the group's committed offset of
    /// every partition has reached them too: an instance restoring it then never finds the
    /// table ahead of a partition's checkpoint (which would mean reading that partition
    /// again or rebuilding). Then it writes the checkpoint in chunks and a marker to
    /// partition 0 of the table topic and, once they are acknowledged, deletes the records
    /// before them. Never waits on the broker except for the committed offsets (once a
    /// second while a checkpoint waits for them).
    fn table_checkpoint_tick<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
    ) -> anyhow::Result<()> {
        let (Some(feed), Some(every)) = (&self.table, self.settings.table_checkpoint_interval)
        else {
            return Ok(());
        };
        let topics = &self.settings.topics;
        let mut guard = self.table_writer.lock();
        let writer = &mut *guard;
        if !writer.sending.is_empty() {
            let what = "a merchant table checkpoint record";
            if let Some(first) = settle_deliveries(&self.rt, &mut writer.sending, false, what)? {
                writer.first_offset = Some(writer.first_offset.map_or(first, |f| f.min(first)));
            }
            if !writer.sending.is_empty() {
                return Ok(());
            }
            self.metrics.table_checkpoints.inc();
            tracing::info!(
                topic = %topics.table,
                read_to = writer.positions,
                "merchant table checkpoint written"
            );
            if let Some(first) = writer.first_offset.take() {
                let mut trim = TopicPartitionList::new();
                trim.add_partition_offset(&topics.table, 0, Offset::Offset(first))?;
                if let Err(e) = self
                    .rt
                    .block_on(self.admin.delete_records(&trim, &AdminOptions::new()))
                {
                    tracing::warn!(error = %e, "could not trim the merchant table topic");
                }
            }
            return Ok(());
        }
        if !self.parts.lock().contains_key(&0) {
            writer.candidate = None;
            writer.last_taken = None;
            return Ok(());
        }
        let Some(candidate) = &writer.candidate else {
            // The first one an interval after this instance took partition 0 over.
            let last = *writer.last_taken.get_or_insert_with(Instant::now);
            if last.elapsed() < every {
                return Ok(());
            }
            let feed = feed.lock();
            if feed.next.is_empty() {
                return Ok(());
            }
            let positions: BTreeMap<i32, i64> = feed.next.iter().map(|(p, o)| (*p, *o)).collect();
            let bytes = feed.table.checkpoint();
            drop(feed);
            writer.candidate = Some(TableCandidate { bytes, positions });
            writer.last_taken = Some(Instant::now());
            return Ok(());
        };
        if writer
            .last_check
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in candidate.positions.keys() {
            tpl.add_partition(&topics.input, *p);
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(10));
        writer.last_check = Some(Instant::now());
        let committed = match committed {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the group's committed offsets");
                return Ok(());
            }
        };
        let passed = candidate.positions.iter().all(|(p, read)| {
            matches!(
                committed.find_partition(&topics.input, *p).map(|e| e.offset()),
                Some(Offset::Offset(o)) if o >= *read
            )
        });
        if !passed {
            return Ok(());
        }
        let Some(candidate) = writer.candidate.take() else {
            return Ok(());
        };
        let (mut records, snapshot) = chunk_records(self.next_snapshot_id(), &candidate.bytes);
        let marker = TableMarker {
            positions: candidate.positions,
            snapshot,
        };
        records.push((KEY_MARKER.to_vec(), Some(serde_json::to_vec(&marker)?)));
        for (key, value) in records {
            let sent = self.send_state(&topics.table, 0, &key, value.as_deref())?;
            writer.sending.push(sent);
        }
        writer.positions = marker.positions.values().sum();
        Ok(())
    }

    /// Checkpoints `partitions` now, waiting for every step (revocation and shutdown).
    fn checkpoint_now<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partitions: &[i32],
    ) -> anyhow::Result<()> {
        let mut completed = Vec::new();
        {
            let mut parts = self.parts.lock();
            for p in partitions {
                let Some(w) = parts.get_mut(p) else { continue };
                // Finish the one in progress, then take a fresh one at the current offset.
                if let Some(c) = self.advance(*p, w, true)? {
                    completed.push((*p, c));
                }
                self.begin_checkpoint(w)?;
                if let Some(c) = self.advance(*p, w, true)? {
                    completed.push((*p, c));
                }
            }
        }
        self.commit(consumer, &completed, CommitMode::Sync)
    }

    /// Commits completed checkpoints' offsets, then trims the state topic before snapshots.
    fn commit<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        completed: &[(i32, Completed)],
        mode: CommitMode,
    ) -> anyhow::Result<()> {
        if completed.is_empty() {
            return Ok(());
        }
        let topics = &self.settings.topics;
        let mut commit = TopicPartitionList::new();
        let mut trim = TopicPartitionList::new();
        for (p, c) in completed {
            // A later checkpoint of the same partition supersedes an earlier one in this batch.
            match commit.find_partition(&topics.input, *p) {
                Some(_) => {
                    commit.set_partition_offset(&topics.input, *p, Offset::Offset(c.offset))?;
                }
                None => {
                    commit.add_partition_offset(&topics.input, *p, Offset::Offset(c.offset))?;
                }
            }
            if let Some(first) = c.truncate_before {
                trim.add_partition_offset(&topics.state, *p, Offset::Offset(first))?;
            }
        }
        consumer
            .commit(&commit, mode)
            .context("committing offsets")?;
        self.metrics.checkpoints.inc_by(completed.len() as u64);
        self.summary.lock().checkpoints += completed.len() as u64;
        if trim.count() > 0 {
            // Everything before the latest snapshot is redundant: keep the state topic bounded.
            if let Err(e) = self
                .rt
                .block_on(self.admin.delete_records(&trim, &AdminOptions::new()))
            {
                tracing::warn!(error = %e, "could not trim the state topic (it keeps growing until the next snapshot)");
            }
        }
        Ok(())
    }

    /// A fresh id for a snapshot's chunks.
    fn next_snapshot_id(&self) -> u64 {
        self.snapshot_ids.fetch_add(1, Ordering::Relaxed) ^ (now_ms() as u64) << 16
    }

    fn send_state(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> anyhow::Result<DeliveryFuture> {
        let mut r = FutureRecord::<[u8], [u8]>::to(topic)
            .key(key)
            .partition(partition);
        if let Some(v) = value {
            r = r.payload(v);
        }
        self.producer
            .send_result(r)
            .map_err(|(e, _)| anyhow!("queueing a state record: {e}"))
    }

    fn update_lag(&self) {
        if let Some(feed) = &self.table {
            let feed = feed.lock();
            let stats = feed.table.stats();
            let m = &self.metrics;
            for (outcome, n) in [
                ("applied", stats.applied),
                ("late", stats.late),
                ("missed", stats.missed),
                ("expired", feed.expired),
            ] {
                m.table_events
                    .with_label_values(&[outcome])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            m.table_pending
                .set(i64::try_from(feed.table.pending()).unwrap_or(i64::MAX));
        }
        let parts: Vec<(i32, i64, usize)> = self
            .parts
            .lock()
            .iter()
            .map(|(p, w)| (*p, w.next_offset, w.detector.engine().memory().cards))
            .collect();
        self.metrics
            .cards
            .set(parts.iter().map(|x| x.2 as i64).sum());
        let hw = self.high_watermarks.lock().clone();
        for (p, next, _) in parts {
            if let Some(high) = hw.get(&p) {
                let lag = if next < 0 {
                    *high
                } else {
                    (high - next).max(0)
                };
                self.metrics
                    .lag
                    .with_label_values(&[&p.to_string()])
                    .set(lag);
                self.observer.lag(p, lag);
            }
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    /// Next input offset to process after this checkpoint.
    offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot: Option<SnapshotRef>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotRef {
    id: u64,
    chunks: u32,
}

fn truth_of<M: Message>(m: &M) -> Truth {
    let mut t = Truth::default();
    if let Some(h) = m.headers() {
        for h in h.iter() {
            match (h.key, h.value) {
                (LABEL_HEADER, Some(v)) => t.label = Some(v == b"1"),
                (SCENARIO_HEADER, Some(v)) => {
                    t.scenario = Some(String::from_utf8_lossy(v).into_owned())
                }
                _ => {}
            }
        }
    }
    t
}

/// A merchant table checkpoint's marker: where the table had read each input partition up
/// to (the next offset it takes), and the chunks holding it.
#[derive(serde::Serialize, serde::Deserialize)]
struct TableMarker {
    positions: BTreeMap<i32, i64>,
    snapshot: SnapshotRef,
}

/// Assigns every partition of `topic` to `reader`: from `next` where it has an entry, else
/// from the partition's first offset.
fn assign_reader<C: ConsumerContext>(
    reader: &BaseConsumer<C>,
    topic: &str,
    partitions: usize,
    next: &HashMap<i32, i64>,
) -> anyhow::Result<()> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        let offset = next
            .get(&p)
            .map_or(Offset::Beginning, |&o| Offset::Offset(o));
        tpl.add_partition_offset(topic, p, offset)?;
    }
    reader
        .assign(&tpl)
        .with_context(|| format!("assigning {topic} to the merchant table reader"))
}

/// Polls delivery futures (with `block`, waits for each), removing those delivered. Returns
/// the lowest offset delivered; a failed delivery is an error.
fn settle_deliveries(
    rt: &tokio::runtime::Runtime,
    futures: &mut Vec<DeliveryFuture>,
    block: bool,
    what: &str,
) -> anyhow::Result<Option<i64>> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut first = None;
    let mut i = 0;
    while i < futures.len() {
        let result = if block {
            Some(rt.block_on(&mut futures[i]))
        } else {
            match std::pin::Pin::new(&mut futures[i]).poll(&mut cx) {
                std::task::Poll::Ready(r) => Some(r),
                std::task::Poll::Pending => None,
            }
        };
        match result {
            None => i += 1,
            Some(Ok(Ok(d))) => {
                first = Some(first.map_or(d.offset, |f: i64| f.min(d.offset)));
                futures.swap_remove(i);
            }
            Some(Ok(Err((e, _)))) => bail!("{what} was not delivered: {e}"),
            Some(Err(_)) => bail!("the producer went away before {what} was delivered"),
        }
    }
    Ok(first)
}

/// A snapshot as state-topic records: chunks keyed `s` + `id` + index, at most
/// [`CHUNK_BYTES`] each (one empty chunk for empty bytes).
fn chunk_records(id: u64, bytes: &[u8]) -> (Vec<StateRecord>, SnapshotRef) {
    let chunks: Vec<&[u8]> = if bytes.is_empty() {
        vec![&[][..]]
    } else {
        bytes.chunks(CHUNK_BYTES).collect()
    };
    let records = chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut key = vec![KEY_CHUNK];
            key.extend_from_slice(&id.to_be_bytes());
            key.extend_from_slice(&(i as u32).to_be_bytes());
            (key, Some(chunk.to_vec()))
        })
        .collect();
    (
        records,
        SnapshotRef {
            id,
            chunks: chunks.len() as u32,
        },
    )
}

/// Snapshot chunks read back, until a marker names them.
#[derive(Default)]
struct Chunks(Vec<(u64, u32, Vec<u8>)>);

impl Chunks {
    /// A chunk record (key `s` + id + index); a key of another length is ignored.
    fn add(&mut self, key: &[u8], value: &[u8]) {
        let id = key.get(1..9).and_then(|b| <[u8; 8]>::try_from(b).ok());
        let index = key.get(9..13).and_then(|b| <[u8; 4]>::try_from(b).ok());
        match (id, index) {
            (Some(id), Some(index)) if key.len() == 13 => self.0.push((
                u64::from_be_bytes(id),
                u32::from_be_bytes(index),
                value.to_vec(),
            )),
            _ => tracing::warn!(
                key_len = key.len(),
                "ignoring a malformed snapshot chunk key"
            ),
        }
    }

    /// The bytes of the snapshot `snap` names, if every chunk of it was read. Its chunks are
    /// dropped either way; others stay for their own marker (two writers may interleave
    /// for a moment around a rebalance).
    fn take(&mut self, snap: &SnapshotRef) -> anyhow::Result<Vec<u8>> {
        let (mut parts, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|c| c.0 == snap.id);
        self.0 = others;
        parts.sort_by_key(|c| c.1);
        if parts.len() != snap.chunks as usize
            || parts.iter().enumerate().any(|(i, c)| c.1 != i as u32)
        {
            bail!("incomplete: {} of {} chunks", parts.len(), snap.chunks);
        }
        Ok(parts.into_iter().flat_map(|c| c.2).collect())
    }
}

/// Reads `partition` of `topic` from its first offset to its end as of now, handing each
/// record to `f` in order. Returns how many records there were.
fn read_partition(
    settings: &DetectorSettings,
    topic: &str,
    partition: i32,
    mut f: impl FnMut(&BorrowedMessage<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<i64> {
    let reader: BaseConsumer = settings
        .client
        .clone()
        .set("group.id", format!("{}-restore", settings.group))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let (low, high) = reader
        .fetch_watermarks(topic, partition, Duration::from_secs(30))
        .with_context(|| format!("watermarks of {topic}/{partition}"))?;
    if high <= low {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(low))?;
    reader.assign(&tpl)?;
    let mut position = low;
    let deadline = Instant::now() + Duration::from_secs(120);
    while position < high {
        if Instant::now() > deadline {
            bail!("timed out reading {topic}/{partition} at {position} of {high}");
        }
        let m = match reader.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Ok(m)) => m,
            Some(Err(e)) if !super::consumer_error_ends_read(&e) => {
                tracing::warn!(%topic, partition, error = %e, "consumer error; reading on");
                continue;
            }
            Some(Err(e)) => {
                return Err(e).with_context(|| format!("reading {topic}/{partition}"));
            }
        };
        position = m.offset() + 1;
        f(&m)?;
    }
    Ok(high - low)
}

/// The latest merchant table checkpoint of the group, restored, unless there is none, it
/// does not decode under this configuration (logged), or it has read some partition past
/// `not_after` (the next offset a partition's scoring takes): its events would then read a
/// table that already holds them. `partitions`: the input's partition count now.
fn load_table_checkpoint(
    settings: &DetectorSettings,
    not_after: &HashMap<i32, i64>,
    partitions: usize,
) -> anyhow::Result<Option<RestoredTable>> {
    let started = Instant::now();
    let topic = &settings.topics.table;
    let mut chunks = Chunks::default();
    let mut latest: Option<(TableMarker, Vec<u8>)> = None;
    read_partition(settings, topic, 0, |m| {
        let key = m.key().unwrap_or_default();
        match key.first() {
            Some(&KEY_CHUNK) => chunks.add(key, m.payload().unwrap_or_default()),
            _ if key == KEY_MARKER => {
                let marker = serde_json::from_slice::<TableMarker>(m.payload().unwrap_or_default());
                match marker.map_err(anyhow::Error::from).and_then(|marker| {
                    let bytes = chunks.take(&marker.snapshot)?;
                    Ok((marker, bytes))
                }) {
                    Ok(checkpoint) => latest = Some(checkpoint),
                    Err(e) => tracing::warn!(
                        offset = m.offset(),
                        error = %crate::error_report(&e),
                        "ignoring a bad merchant table checkpoint"
                    ),
                }
            }
            _ => tracing::warn!(
                offset = m.offset(),
                "ignoring unknown merchant table record"
            ),
        }
        Ok(())
    })?;
    let Some((marker, bytes)) = latest else {
        return Ok(None);
    };
    if let Some((p, read)) = marker
        .positions
        .iter()
        .find(|(p, read)| not_after.get(p).is_some_and(|&start| **read > start))
    {
        tracing::info!(
            partition = p,
            table_read_to = read,
            scoring_starts_at = not_after.get(p).copied(),
            "the merchant table checkpoint is ahead of where that partition's scoring starts; not using it"
        );
        return Ok(None);
    }
    let engine = &settings.config.engine;
    let mut table = match SharedTable::restore(engine, engine.shared_interval_ms(), &bytes) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "the merchant table checkpoint cannot be used; building the table from the input");
            return Ok(None);
        }
    };
    if table.partitions() > partitions {
        // The input was recreated with fewer partitions: the checkpoint is of another
        // topic's contents, and the table would wait for partitions that no longer exist.
        tracing::warn!(
            checkpoint_partitions = table.partitions(),
            input_partitions = partitions,
            "the merchant table checkpoint is of an input with more partitions; building the table from the input"
        );
        return Ok(None);
    }
    table.grow(partitions as u32);
    tracing::info!(
        topic = %topic,
        bytes = bytes.len(),
        read_to = ?marker.positions,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored the merchant table from its checkpoint"
    );
    Ok(Some(RestoredTable {
        table,
        next: marker.positions.into_iter().collect(),
    }))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the detector until `stop` is set (then drains: final checkpoint, leave the group).
pub fn run(
    settings: DetectorSettings,
    metrics: DetectorMetrics,
    observer: Arc<dyn Observer>,
    stop: &AtomicBool,
) -> anyhow::Result<DetectSummary> {
    let producer: FutureProducer = settings
        .client
        .clone()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "300000")
        .create()
        .context("creating the decisions producer")?;
    let admin: AdminClient<DefaultClientContext> = settings
        .client
        .create()
        .context("creating the admin client")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let input = settings.topics.input.clone();
    let table = if settings.config.engine.shared_merchants {
        let metadata = producer
            .client()
            .fetch_metadata(Some(&input), Duration::from_secs(30))
            .with_context(|| format!("metadata of {input}"))?;
        let partitions = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        if partitions == 0 {
            bail!("topic {input} has no partitions");
        }
        // From the group's latest table checkpoint if there is one; partitions assigned
        // later whose checkpoints are behind it are handled as any partition moved here
        // behind the table ([`Shared::rebuild_if_behind`]).
        let (table, next) = match load_table_checkpoint(&settings, &HashMap::new(), partitions)? {
            Some(r) => {
                metrics.table_restores.inc();
                (r.table, r.next)
            }
            None => {
                let engine = &settings.config.engine;
                let table =
                    SharedTable::new(engine, partitions as u32, engine.shared_interval_ms());
                (table, HashMap::new())
            }
        };
        Some(Mutex::new(TableFeed {
            table,
            next,
            expired: 0,
        }))
    } else {
        None
    };
    let interval = settings.checkpoint_interval;
    let mut consumer_cfg = settings.client.clone();
    consumer_cfg
        .set("group.id", &settings.group)
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            if settings.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "1000")
        // The group rebalances when librdkafka's metadata refresh finds partitions added to
        // the input: every 10 s rather than its default 5 minutes.
        .set("topic.metadata.refresh.interval.ms", "10000");
    let shared = Arc::new(Shared {
        settings,
        metrics,
        observer,
        producer,
        admin,
        rt,
        parts: Mutex::new(HashMap::new()),
        fatal: Mutex::new(None),
        snapshot_ids: std::sync::atomic::AtomicU64::new(1),
        summary: Mutex::new(DetectSummary::default()),
        high_watermarks: Mutex::new(HashMap::new()),
        table,
        seeks: Mutex::new(Vec::new()),
        table_writer: Mutex::new(TableWriter::default()),
    });
    let consumer: BaseConsumer<GroupContext> = consumer_cfg
        .create_with_context(GroupContext(shared.clone()))
        .context("creating the consumer")?;
    consumer
        .subscribe(&[&input])
        .with_context(|| format!("subscribing to {input}"))?;
    // Shared merchant state: one more consumer reads every partition of the input from the
    // start, feeding the table and — for the partitions the group gave us — scoring, so the
    // table never runs ahead of what scoring has read.
    let reader: Option<BaseConsumer<GroupContext>> = match &shared.table {
        None => None,
        Some(feed) => {
            let (partitions, next) = {
                let feed = feed.lock();
                (feed.table.partitions(), feed.next.clone())
            };
            let reader: BaseConsumer<GroupContext> = shared
                .settings
                .client
                .clone()
                .set(
                    "group.id",
                    format!("{}.merchant-table", shared.settings.group),
                )
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("enable.partition.eof", "true")
                .set("statistics.interval.ms", "1000")
                .create_with_context(GroupContext(shared.clone()))
                .context("creating the merchant table reader")?;
            assign_reader(&reader, &input, partitions, &next)?;
            tracing::info!(topic = %input, partitions, "shared merchant state: reading every partition");
            Some(reader)
        }
    };
    tracing::info!(topic = %input, group = %shared.settings.group, "detector started");
    let mut last_checkpoint = Instant::now();
    let mut last_tick = Instant::now();
    let mut last_lag = Instant::now();
    let mut last_metadata = Instant::now();
    // Shared merchant state: partitions the reader found at their end, and since when.
    let mut quiet: HashMap<i32, Instant> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        match &reader {
            None => match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => shared.process(&m),
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                None => {}
            },
            // Nothing to score before the group assigns partitions: the table must not run
            // ahead of where their scoring starts.
            Some(_) if shared.parts.lock().is_empty() => {
                let _ = consumer.poll(Duration::from_millis(100));
            }
            Some(reader) => {
                if shared.rebuild_if_behind(reader) {
                    quiet.clear();
                }
                match reader.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        quiet.remove(&m.partition());
                        shared.feed(&m);
                    }
                    Some(Err(KafkaError::PartitionEOF(p))) => {
                        quiet.entry(p).or_insert_with(Instant::now);
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "merchant table reader error"),
                    None => {}
                }
                shared.drain_waiting();
            }
        }
        if let Some(e) = shared.fatal.lock().take() {
            return Err(e);
        }
        // Looking at acknowledgements costs a pass over the outstanding ones: a few times per
        // checkpoint interval is enough.
        if last_tick.elapsed() >= Duration::from_millis(5) {
            if reader.is_some() {
                // Membership, rebalances and commits (its partitions are paused).
                let _ = consumer.poll(Duration::ZERO);
                quiet.retain(|p, since| {
                    let idle = since.elapsed() >= QUIET_RELEASE;
                    if idle {
                        shared.release(*p);
                    }
                    !idle
                });
            }
            let start = last_checkpoint.elapsed() >= interval;
            shared.checkpoint_tick(&consumer, start)?;
            shared.table_checkpoint_tick(&consumer)?;
            if start {
                last_checkpoint = Instant::now();
            }
            last_tick = Instant::now();
        }
        if last_lag.elapsed() >= Duration::from_secs(1) {
            shared.update_lag();
            last_lag = Instant::now();
        }
        if last_metadata.elapsed() >= METADATA_INTERVAL {
            if let Err(e) = shared.follow_new_partitions(&consumer, reader.as_ref()) {
                tracing::warn!(error = %crate::error_report(&e), "could not check the input for new partitions");
            }
            last_metadata = Instant::now();
        }
    }
    // Drain: checkpoint what was processed, then leave the group (its revoke finds nothing new).
    let owned: Vec<i32> = shared.parts.lock().keys().copied().collect();
    shared.checkpoint_now(&consumer, &owned)?;
    if !super::leave_group(&consumer, Duration::from_secs(10)) || !shared.parts.lock().is_empty() {
        tracing::warn!("the detector did not leave its group within 10 s; closing anyway");
    }
    drop(consumer);
    if let Some(e) = shared.fatal.lock().take() {
        return Err(e);
    }
    let summary = shared.summary.lock().clone();
    tracing::info!(?summary, "detector stopped");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_chunks_reassemble_even_when_two_writers_interleave() {
        let a: Vec<u8> = (0..CHUNK_BYTES * 2 + 10).map(|i| i as u8).collect();
        let b: Vec<u8> = vec![7; CHUNK_BYTES + 1];
        let (ra, sa) = chunk_records(1, &a);
        let (rb, sb) = chunk_records(2, &b);
        assert_eq!((sa.chunks, sb.chunks), (3, 2));
        let mut chunks = Chunks::default();
        // a0 b0 a1 a2 | marker a | b1 | marker b
        chunks.add(&ra[0].0, ra[0].1.as_deref().unwrap());
        chunks.add(&rb[0].0, rb[0].1.as_deref().unwrap());
        chunks.add(&ra[1].0, ra[1].1.as_deref().unwrap());
        chunks.add(&ra[2].0, ra[2].1.as_deref().unwrap());
        assert_eq!(chunks.take(&sa).unwrap(), a);
        chunks.add(&rb[1].0, rb[1].1.as_deref().unwrap());
        assert_eq!(chunks.take(&sb).unwrap(), b);
        // A marker whose chunks are missing (cut by a crash) is an error, and drops them.
        chunks.add(&ra[0].0, ra[0].1.as_deref().unwrap());
        assert!(chunks.take(&sa).is_err());
        assert!(chunks.0.is_empty());
        // Malformed keys are ignored.
        chunks.add(&[KEY_CHUNK, 1, 2], b"x");
        assert!(chunks.0.is_empty());
        // Empty bytes are one empty chunk.
        let (re, se) = chunk_records(3, &[]);
        assert_eq!(se.chunks, 1);
        chunks.add(&re[0].0, re[0].1.as_deref().unwrap());
        assert_eq!(chunks.take(&se).unwrap(), Vec::<u8>::new());
    }
}
