//! [`LiveStats`]: the thread-safe collector the producer, the detector and the broker poller
//! feed, and the [`Snapshot`] it renders for the page, `/api/snapshot` and `/events`.
//!
//! Every `record_*` call takes one short mutex section (no I/O, no await, no allocation except
//! a clone of the decision when it joins a bounded recent list, and the name of a scenario the
//! first time it is seen). The clock is monotonic: one-second buckets are indexed by the
//! seconds elapsed since [`LiveStats::new`], and stamped with the wall-clock time of their
//! start for display.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use veritas_detect::{Decision, Verdict};

/// Seconds of per-second history kept (and sent in [`Snapshot::series`]).
pub const HISTORY_SECS: usize = 300;
/// Most recent REVIEW/DECLINE decisions kept for [`Snapshot::recent`].
pub const RECENT_CAPACITY: usize = 50;
/// Most recent missed frauds (labelled fraud, APPROVE) kept for [`Snapshot::missed`].
pub const MISSED_CAPACITY: usize = 25;
/// Complete seconds averaged for the rates in [`Snapshot::rates`].
pub const RATE_WINDOW_SECS: usize = 5;
/// Seconds (the current one included) over which [`LatencySummary::window`] is computed.
pub const LATENCY_WINDOW_SECS: usize = 10;
/// Latencies above this many microseconds (one minute) are recorded as this value.
pub const MAX_LATENCY_US: u64 = 60_000_000;
/// A partition's lag not reported for this many seconds is dropped from [`Snapshot::lag`]
/// (its consumer stopped, or a rebalance moved the partition to another group member).
pub const LAG_STALE_SECS: u64 = 30;

/// How the demo reaches Kafka.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerMode {
    /// The embedded Veritas broker, in this process.
    #[default]
    Embedded,
    /// An external Kafka cluster reached through bootstrap servers.
    External,
}

/// Static facts about the running pipeline, shown in the page header (set with
/// [`LiveStats::set_info`]; all fields are optional to fill).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InfoView {
    /// Embedded broker or external cluster.
    pub mode: BrokerMode,
    /// The bootstrap servers the clients use (`host:port[,host:port…]`).
    pub bootstrap_servers: String,
    /// The detector's model version (`gbdt-v…` or `rules-only`).
    pub model_version: String,
    /// Events per second the producer aims at, when it is rate-limited.
    pub target_rate: Option<f64>,
    /// Configured share of fraudulent transactions in the synthetic stream.
    pub fraud_rate: Option<f64>,
    /// Topic the transactions are produced to and consumed from.
    pub input_topic: String,
    /// Topic the decisions are written to.
    pub decisions_topic: String,
    /// Dead-letter topic for records that could not be decoded.
    pub dlq_topic: String,
    /// The detector's consumer group.
    pub group_id: String,
}

/// One decision as the dashboard shows it (see [`LiveStats::record_decision`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionView {
    /// The transaction's id.
    pub transaction_id: String,
    /// The card number, masked (first 6 and last 4 digits).
    pub card: String,
    /// Amount, in the transaction's currency units.
    pub amount: f64,
    /// Merchant display name, when the event carries one.
    #[serde(default)]
    pub merchant: Option<String>,
    /// Fraud score in `[0, 1]`.
    pub score: f64,
    /// `APPROVE`, `REVIEW` or `DECLINE`.
    pub verdict: Verdict,
    /// Why: rule hits first, then model attributions.
    pub reasons: Vec<String>,
    /// Processing latency of this decision, microseconds.
    pub latency_us: u64,
    /// Event time of the transaction, milliseconds since the Unix epoch.
    pub event_time_ms: i64,
    /// Ground truth when known (the synthetic producer's `is_fraud` header).
    #[serde(default)]
    pub label: Option<bool>,
    /// Fraud scenario when known (the producer's `scenario` header).
    #[serde(default)]
    pub scenario: Option<String>,
}

impl DecisionView {
    /// The view of a detector [`Decision`] for a transaction of `amount`, with no merchant and
    /// no ground truth (set [`DecisionView::label`] / [`DecisionView::scenario`] when known).
    pub fn from_decision(decision: &Decision, amount: f64) -> Self {
        DecisionView {
            transaction_id: decision.transaction_id.clone(),
            card: decision.card.clone(),
            amount,
            merchant: None,
            score: decision.score,
            verdict: decision.decision,
            reasons: decision.reasons.clone(),
            latency_us: decision.latency_us.unwrap_or(0),
            event_time_ms: decision.event_time.timestamp_millis(),
            label: None,
            scenario: None,
        }
    }
}

/// One partition of a topic as the broker panel shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionView {
    /// Partition index.
    pub partition: i32,
    /// First offset still in the log.
    pub log_start_offset: i64,
    /// Offset the next record will get.
    pub log_end_offset: i64,
    /// Bytes on disk, when known (the embedded broker knows; a remote cluster may not say).
    pub size_bytes: Option<u64>,
}

/// One topic as the broker panel shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicView {
    /// Topic name.
    pub name: String,
    /// Its partitions, in index order.
    pub partitions: Vec<PartitionView>,
}

/// The broker panel's contents (set with [`LiveStats::set_broker`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerView {
    /// Topics, in the order to show them.
    pub topics: Vec<TopicView>,
}

impl BrokerView {
    /// Every topic of an embedded broker's cluster (internal ones such as
    /// `__consumer_offsets` only when `include_internal`), sorted by name, with offsets and
    /// sizes read from the logs.
    pub fn from_cluster(
        cluster: &veritas_broker::cluster::Cluster,
        include_internal: bool,
    ) -> Self {
        let mut topics: Vec<TopicView> = cluster
            .topics()
            .into_iter()
            .filter(|t| include_internal || !t.internal)
            .map(|t| TopicView {
                name: t.name.to_string(),
                partitions: t
                    .partitions()
                    .iter()
                    .map(|p| PartitionView {
                        partition: p.index,
                        log_start_offset: p.log.log_start_offset(),
                        log_end_offset: p.log.log_end_offset(),
                        size_bytes: Some(p.log.size_bytes()),
                    })
                    .collect(),
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        BrokerView { topics }
    }
}

/// One second of history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Wall-clock start of the second, milliseconds since the Unix epoch.
    pub t_ms: i64,
    /// Events produced to the input topic.
    pub events_in: u64,
    /// APPROVE decisions.
    pub approve: u64,
    /// REVIEW decisions.
    pub review: u64,
    /// DECLINE decisions.
    pub decline: u64,
    /// Records sent to the dead-letter topic.
    pub dlq: u64,
    /// Median processing latency of the second's decisions, µs (`null` without decisions).
    pub p50_us: Option<u64>,
    /// 99th-percentile processing latency of the second's decisions, µs.
    pub p99_us: Option<u64>,
}

impl Bucket {
    fn empty(t_ms: i64) -> Self {
        Bucket {
            t_ms,
            ..Bucket::default()
        }
    }

    fn decisions(&self) -> u64 {
        self.approve + self.review + self.decline
    }
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Events produced to the input topic.
    pub produced: u64,
    /// Decisions made (all verdicts).
    pub decisions: u64,
    /// APPROVE decisions.
    pub approve: u64,
    /// REVIEW decisions.
    pub review: u64,
    /// DECLINE decisions.
    pub decline: u64,
    /// Records sent to the dead-letter topic.
    pub dlq: u64,
    /// Decisions whose ground truth was known.
    pub labelled: u64,
    /// Of those, the fraudulent ones.
    pub frauds: u64,
}

/// Rates, per second, averaged over the last [`RATE_WINDOW_SECS`] complete seconds (over the
/// elapsed time before the first second completes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Events produced per second.
    pub events_in: f64,
    /// Decisions per second (all verdicts).
    pub decisions: f64,
    /// APPROVE decisions per second.
    pub approve: f64,
    /// REVIEW decisions per second.
    pub review: f64,
    /// DECLINE decisions per second.
    pub decline: f64,
    /// Dead-lettered records per second.
    pub dlq: f64,
}

/// Latency percentiles of a set of decisions, µs (`null` when the set is empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50_us: Option<u64>,
    /// 99th percentile.
    pub p99_us: Option<u64>,
    /// 99.9th percentile.
    pub p999_us: Option<u64>,
    /// Largest.
    pub max_us: Option<u64>,
    /// Number of decisions measured.
    pub count: u64,
}

/// Processing latency of decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Over the last [`LATENCY_WINDOW_SECS`] seconds.
    pub window: Percentiles,
    /// Since start.
    pub all: Percentiles,
}

/// A confusion matrix against the known labels, for one way of calling a decision positive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    /// Fraud, flagged.
    pub tp: u64,
    /// Legitimate, flagged.
    pub fp: u64,
    /// Fraud, not flagged.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// Legitimate, not flagged.
    pub tn: u64,
    /// `tp / (tp + fp)`; `null` before anything is flagged.
    pub precision: Option<f64>,
    /// `tp / (tp + fn)`; `null` before any fraud is seen.
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall; `null` when either is, 0 when both are 0.
    pub f1: Option<f64>,
}

impl Confusion {
    fn count(&mut self, fraud: bool, flagged: bool) {
        match (fraud, flagged) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    fn finish(mut self) -> Self {
        let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
        self.precision = ratio(self.tp, self.tp + self.fp);
        self.recall = ratio(self.tp, self.tp + self.fn_);
        self.f1 = match (self.precision, self.recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        self
    }
}

/// Detection quality against the known labels (decisions without a label are not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Positive = DECLINE.
    pub decline: Confusion,
    /// Positive = REVIEW or DECLINE.
    pub flagged: Confusion,
}

/// Labelled frauds of one scenario: how many were caught and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioStats {
    /// Scenario name (`card_testing`, …; `unknown` when a fraud carried no scenario).
    pub scenario: String,
    /// Labelled frauds seen.
    pub frauds: u64,
    /// Of those, declined.
    pub declined: u64,
    /// Of those, sent to review.
    pub reviewed: u64,
    /// Of those, approved: missed.
    pub missed: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct ScenarioCounts {
    declined: u64,
    reviewed: u64,
    missed: u64,
}

/// How a shown decision compares with the ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Fraud, flagged (REVIEW or DECLINE).
    Caught,
    /// Fraud, approved.
    Missed,
    /// Legitimate, flagged.
    FalsePositive,
    /// Legitimate, approved.
    CorrectApprove,
    /// No ground truth.
    Unlabelled,
}

impl Outcome {
    fn of(label: Option<bool>, verdict: Verdict) -> Self {
        let flagged = verdict != Verdict::Approve;
        match (label, flagged) {
            (None, _) => Outcome::Unlabelled,
            (Some(true), true) => Outcome::Caught,
            (Some(true), false) => Outcome::Missed,
            (Some(false), true) => Outcome::FalsePositive,
            (Some(false), false) => Outcome::CorrectApprove,
        }
    }
}

/// A decision in one of the recent lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentDecision {
    /// The decision.
    #[serde(flatten)]
    pub decision: DecisionView,
    /// Against the ground truth.
    pub outcome: Outcome,
    /// Wall-clock time it was recorded, milliseconds since the Unix epoch.
    pub recorded_at_ms: i64,
}

/// Consumer lag of one partition of the input topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLag {
    /// Partition index.
    pub partition: i32,
    /// Log-end offset minus the group's position.
    pub lag: i64,
}

/// The broker panel with the time it was last set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerSnapshot {
    /// When [`LiveStats::set_broker`] was last called, milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
    /// Its contents.
    #[serde(flatten)]
    pub view: BrokerView,
}

/// Everything the page shows, at one instant. This is the JSON of `/api/snapshot` and of each
/// `/events` message; the module documentation lists its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When it was taken, milliseconds since the Unix epoch.
    pub generated_at_ms: i64,
    /// When the collector was created, milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// Seconds since the collector was created.
    pub uptime_secs: f64,
    /// Mode, model, topics.
    pub info: InfoView,
    /// Counters since start.
    pub totals: Totals,
    /// Recent rates.
    pub rates: Rates,
    /// Processing latency.
    pub latency: LatencySummary,
    /// Precision / recall / F1 against known labels.
    pub quality: Quality,
    /// Caught vs missed labelled frauds per scenario, by name.
    pub scenarios: Vec<ScenarioStats>,
    /// Complete seconds, oldest first, at most [`HISTORY_SECS`].
    pub series: Vec<Bucket>,
    /// Consumer lag per partition of the input topic, by partition.
    pub lag: Vec<PartitionLag>,
    /// Sum of [`Snapshot::lag`].
    pub total_lag: i64,
    /// The broker panel; `null` until [`LiveStats::set_broker`] is called.
    pub broker: Option<BrokerSnapshot>,
    /// Most recent REVIEW/DECLINE decisions, newest first, at most [`RECENT_CAPACITY`].
    pub recent: Vec<RecentDecision>,
    /// Most recent missed frauds, newest first, at most [`MISSED_CAPACITY`].
    pub missed: Vec<RecentDecision>,
}

fn new_histogram() -> Histogram<u64> {
    // Two significant digits over 1 µs ..= 1 min: about 18 KiB per histogram.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("constant histogram bounds are valid")
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        p50_us: Some(h.value_at_quantile(0.5)),
        p99_us: Some(h.value_at_quantile(0.99)),
        p999_us: Some(h.value_at_quantile(0.999)),
        max_us: Some(h.max()),
        count: h.len(),
    }
}

fn wall_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

struct Inner {
    /// Second (since start) of `current`.
    current_sec: u64,
    /// The second in progress.
    current: Bucket,
    /// Complete seconds, oldest first.
    history: VecDeque<Bucket>,
    /// Latency of the last [`LATENCY_WINDOW_SECS`] seconds, slot `sec % LATENCY_WINDOW_SECS`.
    window: Vec<Histogram<u64>>,
    /// Latency since start.
    all_latency: Histogram<u64>,
    totals: Totals,
    quality: Quality,
    scenarios: BTreeMap<String, ScenarioCounts>,
    recent: VecDeque<RecentDecision>,
    missed: VecDeque<RecentDecision>,
    /// Lag per partition, with the second (since start) it was reported.
    lag: BTreeMap<i32, (i64, u64)>,
    broker: Option<BrokerSnapshot>,
    info: InfoView,
}

/// The live statistics of the pipeline. Share it as `Arc<LiveStats>`; every method takes
/// `&self`.
pub struct LiveStats {
    clock: Clock,
    started_at_ms: i64,
    inner: Mutex<Inner>,
}

/// Time since the collector started.
enum Clock {
    /// The real, monotonic clock.
    Monotonic(Instant),
    /// Whole seconds set by a test.
    #[cfg(test)]
    Manual(std::sync::atomic::AtomicU64),
}

impl Clock {
    fn elapsed(&self) -> Duration {
        match self {
            Clock::Monotonic(started) => started.elapsed(),
            #[cfg(test)]
            Clock::Manual(secs) => {
                Duration::from_secs(secs.load(std::sync::atomic::Ordering::SeqCst))
            }
        }
    }
}

impl std::fmt::Debug for LiveStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStats")
            .field("started_at_ms", &self.started_at_ms)
            .finish_non_exhaustive()
    }
}

impl Default for LiveStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveStats {
    /// A collector whose clock starts now.
    pub fn new() -> Self {
        Self::with_clock(Clock::Monotonic(Instant::now()))
    }

    /// A collector whose clock stands at 0 s until [`LiveStats::set_clock`] moves it.
    #[cfg(test)]
    pub(crate) fn manual_clock() -> Self {
        Self::with_clock(Clock::Manual(std::sync::atomic::AtomicU64::new(0)))
    }

    /// Sets a manual clock to `secs` seconds since start (no effect on the real clock).
    #[cfg(test)]
    pub(crate) fn set_clock(&self, secs: u64) {
        if let Clock::Manual(s) = &self.clock {
            s.store(secs, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn with_clock(clock: Clock) -> Self {
        let started_at_ms = wall_ms(SystemTime::now());
        LiveStats {
            clock,
            started_at_ms,
            inner: Mutex::new(Inner {
                current_sec: 0,
                current: Bucket::empty(started_at_ms),
                history: VecDeque::with_capacity(HISTORY_SECS),
                window: (0..LATENCY_WINDOW_SECS).map(|_| new_histogram()).collect(),
                all_latency: new_histogram(),
                totals: Totals::default(),
                quality: Quality::default(),
                scenarios: BTreeMap::new(),
                recent: VecDeque::with_capacity(RECENT_CAPACITY),
                missed: VecDeque::with_capacity(MISSED_CAPACITY),
                lag: BTreeMap::new(),
                broker: None,
                info: InfoView::default(),
            }),
        }
    }

    /// Locks the state (a panic elsewhere while holding it leaves counters usable, so a
    /// poisoned lock is simply taken over) and moves the clock to now.
    fn lock_now(&self) -> MutexGuard<'_, Inner> {
        let sec = self.clock.elapsed().as_secs();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.advance(sec, self.started_at_ms);
        inner
    }

    /// `n` events were produced to the input topic.
    pub fn record_produced(&self, n: u64) {
        let mut inner = self.lock_now();
        inner.current.events_in += n;
        inner.totals.produced += n;
    }

    /// A decision was made. REVIEW/DECLINE decisions join the recent list, missed frauds the
    /// missed list; labelled ones count towards precision, recall and the scenario table.
    pub fn record_decision(&self, d: &DecisionView) {
        let now_ms = wall_ms(SystemTime::now());
        let latency = d.latency_us.min(MAX_LATENCY_US);
        let mut guard = self.lock_now();
        let inner = &mut *guard;
        let slot = (inner.current_sec % LATENCY_WINDOW_SECS as u64) as usize;
        inner.window[slot].saturating_record(latency);
        inner.all_latency.saturating_record(latency);
        inner.totals.decisions += 1;
        match d.verdict {
            Verdict::Approve => {
                inner.current.approve += 1;
                inner.totals.approve += 1;
            }
            Verdict::Review => {
                inner.current.review += 1;
                inner.totals.review += 1;
            }
            Verdict::Decline => {
                inner.current.decline += 1;
                inner.totals.decline += 1;
            }
        }
        if let Some(fraud) = d.label {
            inner.totals.labelled += 1;
            inner
                .quality
                .decline
                .count(fraud, d.verdict == Verdict::Decline);
            inner
                .quality
                .flagged
                .count(fraud, d.verdict != Verdict::Approve);
            if fraud {
                inner.totals.frauds += 1;
                let name = d.scenario.as_deref().unwrap_or("unknown");
                // Look up by `&str` first: the name is allocated only for a new scenario.
                if !inner.scenarios.contains_key(name) {
                    inner
                        .scenarios
                        .insert(name.to_owned(), ScenarioCounts::default());
                }
                if let Some(counts) = inner.scenarios.get_mut(name) {
                    match d.verdict {
                        Verdict::Approve => counts.missed += 1,
                        Verdict::Review => counts.reviewed += 1,
                        Verdict::Decline => counts.declined += 1,
                    }
                }
            }
        }
        let outcome = Outcome::of(d.label, d.verdict);
        let list = match outcome {
            _ if d.verdict != Verdict::Approve => Some((&mut inner.recent, RECENT_CAPACITY)),
            Outcome::Missed => Some((&mut inner.missed, MISSED_CAPACITY)),
            _ => None,
        };
        if let Some((list, capacity)) = list {
            if list.len() == capacity {
                list.pop_back();
            }
            list.push_front(RecentDecision {
                decision: d.clone(),
                outcome,
                recorded_at_ms: now_ms,
            });
        }
    }

    /// A record was sent to the dead-letter topic.
    pub fn record_dlq(&self) {
        let mut inner = self.lock_now();
        inner.current.dlq += 1;
        inner.totals.dlq += 1;
    }

    /// The consumer group's lag on `partition` of the input topic is now `lag`. A partition
    /// not reported for [`LAG_STALE_SECS`] drops out of the snapshot.
    pub fn set_lag(&self, partition: i32, lag: i64) {
        let mut inner = self.lock_now();
        let sec = inner.current_sec;
        inner.lag.insert(partition, (lag, sec));
    }

    /// Replace the broker panel.
    pub fn set_broker(&self, view: BrokerView) {
        let updated_at_ms = wall_ms(SystemTime::now());
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.broker = Some(BrokerSnapshot {
            updated_at_ms,
            view,
        });
    }

    /// Replace the header facts (mode, bootstrap servers, model version, rates, topics).
    pub fn set_info(&self, info: InfoView) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.info = info;
    }

    /// Everything the page shows, now.
    pub fn snapshot(&self) -> Snapshot {
        let elapsed = self.clock.elapsed();
        let generated_at_ms = wall_ms(SystemTime::now());
        let inner = self.lock_now();

        let rates = {
            let complete = inner.history.len().min(RATE_WINDOW_SECS);
            let (sum, secs) = if complete > 0 {
                let sum = inner
                    .history
                    .iter()
                    .rev()
                    .take(complete)
                    .fold(Bucket::default(), add);
                (sum, complete as f64)
            } else {
                (inner.current, elapsed.as_secs_f64().max(1.0))
            };
            Rates {
                events_in: sum.events_in as f64 / secs,
                decisions: sum.decisions() as f64 / secs,
                approve: sum.approve as f64 / secs,
                review: sum.review as f64 / secs,
                decline: sum.decline as f64 / secs,
                dlq: sum.dlq as f64 / secs,
            }
        };

        let mut window = new_histogram();
        for h in &inner.window {
            // Same bounds on both sides: adding cannot fail.
            let _ = window.add(h);
        }
        let latency = LatencySummary {
            window: percentiles(&window),
            all: percentiles(&inner.all_latency),
        };

        let scenarios = inner
            .scenarios
            .iter()
            .map(|(name, c)| ScenarioStats {
                scenario: name.clone(),
                frauds: c.declined + c.reviewed + c.missed,
                declined: c.declined,
                reviewed: c.reviewed,
                missed: c.missed,
            })
            .collect();

        let lag: Vec<PartitionLag> = inner
            .lag
            .iter()
            .filter(|(_, &(_, at))| inner.current_sec.saturating_sub(at) < LAG_STALE_SECS)
            .map(|(&partition, &(lag, _))| PartitionLag { partition, lag })
            .collect();
        let total_lag = lag.iter().map(|l| l.lag.max(0)).sum();

        Snapshot {
            generated_at_ms,
            started_at_ms: self.started_at_ms,
            uptime_secs: elapsed.as_secs_f64(),
            info: inner.info.clone(),
            totals: inner.totals,
            rates,
            latency,
            quality: Quality {
                decline: inner.quality.decline.finish(),
                flagged: inner.quality.flagged.finish(),
            },
            scenarios,
            series: inner.history.iter().copied().collect(),
            lag,
            total_lag,
            broker: inner.broker.clone(),
            recent: inner.recent.iter().cloned().collect(),
            missed: inner.missed.iter().cloned().collect(),
        }
    }
}

fn add(mut a: Bucket, b: &Bucket) -> Bucket {
    a.events_in += b.events_in;
    a.approve += b.approve;
    a.review += b.review;
    a.decline += b.decline;
    a.dlq += b.dlq;
    a
}

impl Inner {
    /// Closes the buckets of every second before `sec` (seconds since start).
    fn advance(&mut self, sec: u64, started_at_ms: i64) {
        if sec <= self.current_sec {
            return;
        }
        let n = LATENCY_WINDOW_SECS as u64;
        let slot = (self.current_sec % n) as usize;
        let closed = &self.window[slot];
        if !closed.is_empty() {
            self.current.p50_us = Some(closed.value_at_quantile(0.5));
            self.current.p99_us = Some(closed.value_at_quantile(0.99));
        }
        let t_ms = |s: u64| started_at_ms.saturating_add(s.saturating_mul(1000) as i64);
        self.push_history(self.current);
        // Seconds with no activity at all, at most a full history of them.
        let first_gap = (self.current_sec + 1).max(sec.saturating_sub(HISTORY_SECS as u64));
        for s in first_gap..sec {
            self.push_history(Bucket::empty(t_ms(s)));
        }
        // The latency slots of the seconds entered start empty.
        for s in (self.current_sec + 1).max(sec.saturating_sub(n - 1))..=sec {
            self.window[(s % n) as usize].reset();
        }
        self.current_sec = sec;
        self.current = Bucket::empty(t_ms(sec));
    }

    fn push_history(&mut self, b: Bucket) {
        if self.history.len() == HISTORY_SECS {
            self.history.pop_front();
        }
        self.history.push_back(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(verdict: Verdict, latency_us: u64, label: Option<bool>) -> DecisionView {
        DecisionView {
            transaction_id: format!("tx-{latency_us}"),
            card: "411111******1111".into(),
            amount: 12.5,
            merchant: Some("Corner Shop".into()),
            score: 0.5,
            verdict,
            reasons: vec!["test".into()],
            latency_us,
            event_time_ms: 1_735_689_600_000,
            label,
            scenario: label.filter(|&f| f).map(|_| "card_testing".into()),
        }
    }

    #[test]
    fn seconds_close_into_buckets_with_their_latency_percentiles() {
        let stats = LiveStats::manual_clock();
        for us in 1..=100 {
            stats.record_decision(&decision(Verdict::Approve, us * 10, None));
        }
        stats.record_produced(7);
        stats.set_clock(1);
        stats.record_produced(40);
        stats.record_decision(&decision(Verdict::Decline, 5_000, Some(true)));
        stats.record_dlq();
        stats.set_clock(2);
        let snap = stats.snapshot();
        assert_eq!(snap.series.len(), 2);
        let (s0, s1) = (snap.series[0], snap.series[1]);
        assert_eq!((s0.events_in, s0.approve, s0.decline), (7, 100, 0));
        assert_eq!((s1.events_in, s1.decline, s1.dlq), (40, 1, 1));
        assert_eq!(s1.t_ms - s0.t_ms, 1000);
        // Two significant digits: values within 1 %.
        let p50 = s0.p50_us.unwrap_or(0);
        assert!((495..=510).contains(&p50), "p50 {p50}");
        let p99 = s0.p99_us.unwrap_or(0);
        assert!((985..=1000).contains(&p99), "p99 {p99}");
        assert_eq!(s1.p50_us.map(|v| v / 100), Some(50));
        // Rates average the complete seconds.
        assert_eq!(snap.rates.events_in, 23.5);
        assert_eq!(snap.rates.decisions, 50.5);
        assert_eq!(snap.rates.dlq, 0.5);
        assert_eq!(snap.latency.all.count, 101);
        assert_eq!(snap.latency.window.count, 101);
    }

    #[test]
    fn idle_seconds_become_empty_buckets_and_history_is_bounded() {
        let stats = LiveStats::manual_clock();
        stats.record_produced(1);
        stats.set_clock(3);
        let snap = stats.snapshot();
        assert_eq!(snap.series.len(), 3);
        assert_eq!(snap.series[0].events_in, 1);
        assert!(snap.series[1..].iter().all(|b| *b == Bucket::empty(b.t_ms)));
        assert_eq!(snap.rates.events_in, 1.0 / 3.0);

        stats.set_clock(10_000);
        let snap = stats.snapshot();
        assert_eq!(snap.series.len(), HISTORY_SECS);
        assert!(snap.series.iter().all(|b| b.events_in == 0));
        let last = snap.series[HISTORY_SECS - 1];
        assert_eq!(last.t_ms, snap.started_at_ms + 9_999 * 1000);
        assert_eq!(snap.rates.events_in, 0.0);
        assert_eq!(snap.totals.produced, 1);
    }

    #[test]
    fn latency_window_forgets_old_seconds() {
        let stats = LiveStats::manual_clock();
        stats.record_decision(&decision(Verdict::Approve, 9_000, None));
        stats.set_clock(LATENCY_WINDOW_SECS as u64 - 1);
        stats.record_decision(&decision(Verdict::Approve, 100, None));
        let snap = stats.snapshot();
        assert_eq!(snap.latency.window.count, 2);
        stats.set_clock(LATENCY_WINDOW_SECS as u64);
        let snap = stats.snapshot();
        assert_eq!(snap.latency.window.count, 1);
        assert_eq!(snap.latency.window.max_us, Some(100));
        assert_eq!(snap.latency.all.count, 2);
        // A jump longer than the window clears it all.
        stats.set_clock(1_000);
        assert_eq!(stats.snapshot().latency.window, Percentiles::default());
    }

    #[test]
    fn recent_lists_are_bounded_and_newest_first() {
        let stats = LiveStats::manual_clock();
        for i in 0..(RECENT_CAPACITY as u64 + 10) {
            stats.record_decision(&decision(Verdict::Review, i, Some(false)));
            stats.record_decision(&decision(Verdict::Approve, 10_000 + i, Some(true)));
            stats.record_decision(&decision(Verdict::Approve, 20_000 + i, Some(false)));
        }
        let snap = stats.snapshot();
        assert_eq!(snap.recent.len(), RECENT_CAPACITY);
        assert_eq!(
            snap.recent[0].decision.latency_us,
            RECENT_CAPACITY as u64 + 9
        );
        assert!(snap
            .recent
            .iter()
            .all(|r| r.outcome == Outcome::FalsePositive));
        assert_eq!(snap.missed.len(), MISSED_CAPACITY);
        assert_eq!(
            snap.missed[0].decision.latency_us,
            10_000 + RECENT_CAPACITY as u64 + 9
        );
        assert!(snap.missed.iter().all(|r| r.outcome == Outcome::Missed));
    }

    #[test]
    fn lag_not_reported_for_a_while_drops_out() {
        let stats = LiveStats::manual_clock();
        stats.set_lag(0, 10);
        stats.set_lag(1, 20);
        stats.set_clock(LAG_STALE_SECS - 1);
        stats.set_lag(1, 5);
        let snap = stats.snapshot();
        assert_eq!(snap.lag.len(), 2);
        assert_eq!(snap.total_lag, 15);
        stats.set_clock(LAG_STALE_SECS);
        let snap = stats.snapshot();
        assert_eq!(
            snap.lag,
            [PartitionLag {
                partition: 1,
                lag: 5
            }]
        );
        assert_eq!(snap.total_lag, 5);
    }

    #[test]
    fn latencies_beyond_the_range_saturate() {
        let stats = LiveStats::manual_clock();
        stats.record_decision(&decision(Verdict::Approve, u64::MAX, None));
        stats.record_decision(&decision(Verdict::Approve, 0, None));
        let all = stats.snapshot().latency.all;
        assert_eq!(all.count, 2);
        assert!(all.max_us.unwrap_or(0) >= MAX_LATENCY_US);
    }

    #[test]
    fn confusion_metrics_handle_empty_and_degenerate_sets() {
        let c = Confusion::default().finish();
        assert_eq!((c.precision, c.recall, c.f1), (None, None, None));
        let mut c = Confusion::default();
        c.count(true, false);
        c.count(false, true);
        let c = c.finish();
        assert_eq!(
            (c.precision, c.recall, c.f1),
            (Some(0.0), Some(0.0), Some(0.0))
        );
        let mut c = Confusion::default();
        c.count(false, false);
        let c = c.finish();
        assert_eq!((c.precision, c.recall, c.f1), (None, None, None));
    }
}
