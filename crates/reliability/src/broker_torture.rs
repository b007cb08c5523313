//! The broker `kill -9` torture: the real `veritas broker` binary under idempotent `acks=all`
//! producers, a churning consumer group that commits offsets and a topic under constant
//! retention, killed with `SIGKILL` at random moments and restarted, cycle after cycle. Then
//! every partition is read back and judged by [`crate::checker`].
//!
//! Topics (created through the Admin API with small `segment.bytes`, so segments roll every few
//! hundred records):
//!
//! * `torture` — `partitions` partitions, `segment.bytes` = `segment_bytes`, no retention. Every
//!   acknowledged record must be present exactly once at its acknowledged offset.
//! * `churn` — 2 partitions, tiny segments and `retention.bytes`, so the broker deletes segments
//!   continuously. Acknowledged records at or above the log start must be present exactly once
//!   at their offset; offsets are never reused.
//! * `compacted` — 1 partition, `cleanup.policy=compact`, small segments and a low
//!   `min.cleanable.dirty.ratio`, so the log cleaner rewrites and merges segments all the
//!   time (and kills land mid-pass). Records are keyed by `seq % KEYS`; what is read back must
//!   be acknowledged records at their offsets, with every key's latest acknowledged record
//!   present unless a later one of the key is ([`crate::checker::check_compacted`]).
//!
//! The consumer group `torture-group` has members joining and leaving all the time (each lives
//! 4–12 s), committing their positions synchronously; an observer fetches the committed offsets
//! every 200 ms and after every restart, and [`crate::checker::CommitChecker`] requires them to
//! never move backwards.
//!
//! The broker is restarted with a different flush policy each cycle (`interval:…`,
//! `every-produce`, `bytes:…`): after a process crash no policy may lose an acknowledged record.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

use crate::checker::{
    check_compacted, check_records, Ack, CommitAck, CommitChecker, CommitVerdict, CompactedVerdict,
    RecordId, RecordVerdict, Stored,
};
use crate::process::BrokerProcess;

/// The main topic.
pub const TOPIC: &str = "torture";
/// The retention topic.
pub const CHURN: &str = "churn";
/// The consumer group.
pub const GROUP: &str = "torture-group";
/// Producer number of the churn topic's producer.
const CHURN_PRODUCER: u32 = 100;
/// The compacted topic.
pub const COMPACTED: &str = "compacted";
/// Producer number of the compacted topic's producer.
const COMPACTED_PRODUCER: u32 = 200;
/// Distinct keys every producer cycles through (record `seq` has key `k{seq % KEYS}`).
pub const KEYS: u64 = 97;

/// What to run.
#[derive(Debug, Clone)]
pub struct TortureConfig {
    /// The `veritas` binary.
    pub veritas: PathBuf,
    /// Kill/restart cycles.
    pub cycles: u32,
    /// Seed of every random choice (kill moments, payload sizes, flush policies).
    pub seed: u64,
    /// Idempotent producers on the main topic.
    pub producers: u32,
    /// Partitions of the main topic.
    pub partitions: i32,
    /// Consumer-group members alive at once.
    pub consumers: u32,
    /// `segment.bytes` of the main topic.
    pub segment_bytes: u64,
    /// Records per second per producer (bounded so a run's data stays small).
    pub rate: u32,
    /// Shortest and longest run between kills.
    pub run_ms: (u64, u64),
    /// Where the data directory and logs go (a temporary directory if `None`).
    pub work_dir: Option<PathBuf>,
}

impl Default for TortureConfig {
    fn default() -> Self {
        TortureConfig {
            veritas: PathBuf::from("target/debug/veritas"),
            cycles: 20,
            seed: 1,
            producers: 3,
            partitions: 4,
            consumers: 3,
            segment_bytes: 32 * 1024,
            rate: 1500,
            run_ms: (500, 7000),
            work_dir: None,
        }
    }
}

/// What happened around one kill.
#[derive(Debug, Clone, Serialize)]
pub struct KillRecord {
    /// Cycle number (1-based).
    pub cycle: u32,
    /// Milliseconds the broker ran before the kill.
    pub ran_ms: u64,
    /// Flush policy of the run that was killed.
    pub flush: String,
    /// Acknowledgements received in the 250 ms before the kill (produce in progress).
    pub acks_just_before: u64,
    /// Segment files of the topics at the kill, and new ones since the previous kill.
    pub segments: usize,
    /// Segments created since the previous kill (rolls).
    pub rolled: usize,
    /// Offset commits outstanding at the kill.
    pub commits_in_flight: i64,
    /// Milliseconds since the last group membership change (join or leave) at the kill.
    pub since_membership_change_ms: u64,
    /// Milliseconds the restart took until the broker accepted connections.
    pub restart_ms: u64,
    /// A compaction pass was writing its new segment file at the kill.
    pub during_compaction: bool,
}

/// Whether an error key (see [`TortureReport::delivery_errors`]) is a consumer's.
fn is_consumer_error(key: &str) -> bool {
    key.starts_with("commit:") || key.starts_with("consumer:")
}

/// The figures of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TortureReport {
    /// Cycles run.
    pub cycles: u32,
    /// Seed.
    pub seed: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The main topic's verdict.
    pub records: RecordVerdict,
    /// The retention topic's verdict.
    pub churn: RecordVerdict,
    /// The compacted topic's verdict.
    pub compacted: CompactedVerdict,
    /// Records the retention topic's log start had advanced past by the end.
    pub churn_log_start: BTreeMap<i32, i64>,
    /// Committed group offsets.
    pub commits: CommitVerdict,
    /// Records sent (acknowledged or not) on both topics.
    pub sent: u64,
    /// Records consumed by the group's members.
    pub consumed: u64,
    /// Errors the clients saw, by error: delivery failures, refused sends and fatal errors of
    /// the producers (none allowed: an idempotent producer must ride out every restart), and
    /// consumer-side errors prefixed `commit:` or `consumer:` (expected while the broker is
    /// down or the group restarts).
    pub delivery_errors: BTreeMap<String, u64>,
    /// Watermark checks after each restart that found the high watermark below an
    /// acknowledged offset (must be empty).
    pub watermark_violations: Vec<String>,
    /// Kills during produce (acknowledgements in the last 250 ms).
    pub kills_during_produce: u32,
    /// Kills with segment rolls since the previous kill.
    pub kills_after_rolls: u32,
    /// Kills within 1.5 s of a group membership change (a rebalance in progress).
    pub kills_during_rebalance: u32,
    /// Kills with an offset commit outstanding.
    pub kills_during_commit: u32,
    /// Kills while the retention topic's log start was moving.
    pub kills_during_retention: u32,
    /// Kills while a compaction pass was writing.
    pub kills_during_compaction: u32,
    /// One record per kill.
    pub kills: Vec<KillRecord>,
}

impl TortureReport {
    /// Producer-side errors (delivery failures, refused sends, fatal errors): must be 0.
    pub fn producer_errors(&self) -> u64 {
        self.delivery_errors
            .iter()
            .filter(|(k, _)| !is_consumer_error(k))
            .map(|(_, n)| n)
            .sum()
    }

    /// True when nothing acknowledged was lost, duplicated, reordered or moved, no offset was
    /// reused, no committed offset went backwards (and some were committed) and no producer
    /// saw an error.
    pub fn ok(&self) -> bool {
        self.producer_errors() == 0
            && self.records.ok()
            && self.churn.ok()
            && self.compacted.ok()
            && self.commits.ok()
            && self.watermark_violations.is_empty()
            && self.records.acked > 0
            && self.commits.acked > 0
    }
}

#[derive(Default)]
struct Shared {
    acks: Mutex<Vec<Ack>>,
    churn_acks: Mutex<Vec<Ack>>,
    compacted_acks: Mutex<Vec<Ack>>,
    errors: Mutex<BTreeMap<String, u64>>,
    last_ack_ms: AtomicI64,
    acks_total: AtomicU64,
    sent: AtomicU64,
    commits: Mutex<CommitChecker>,
    commits_in_flight: AtomicI64,
    last_membership_change_ms: AtomicI64,
    recent_acks: Mutex<Vec<i64>>,
    consumed: AtomicU64,
    stop: AtomicBool,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Which topic a producer writes, so its acknowledgements go to the right list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Main,
    Churn,
    Compacted,
}

struct ProdCtx {
    shared: Arc<Shared>,
    target: Target,
}

impl ClientContext for ProdCtx {}

impl ProducerContext for ProdCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let Some(id) = m.payload().and_then(RecordId::decode) else {
                    return;
                };
                let ack = Ack {
                    id,
                    partition: m.partition(),
                    offset: m.offset(),
                };
                match self.target {
                    Target::Main => self.shared.acks.lock().push(ack),
                    Target::Churn => self.shared.churn_acks.lock().push(ack),
                    Target::Compacted => self.shared.compacted_acks.lock().push(ack),
                }
                let now = now_ms();
                self.shared.last_ack_ms.store(now, Ordering::Relaxed);
                self.shared.acks_total.fetch_add(1, Ordering::Relaxed);
                let mut recent = self.shared.recent_acks.lock();
                recent.push(now);
                if recent.len() > 4096 {
                    recent.drain(..2048);
                }
            }
            Err((e, _)) => {
                *self.shared.errors.lock().entry(e.to_string()).or_default() += 1;
            }
        }
    }
}

fn base_client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "250")
        .set("topic.metadata.refresh.interval.ms", "1000");
    c
}

fn producer(
    bootstrap: &str,
    shared: &Arc<Shared>,
    target: Target,
    compression: &str,
) -> anyhow::Result<ThreadedProducer<ProdCtx>> {
    base_client(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "300000")
        .set("linger.ms", "5")
        .set("batch.num.messages", "64")
        .set("compression.type", compression)
        .create_with_context(ProdCtx {
            shared: shared.clone(),
            target,
        })
        .context("creating a producer")
}

fn producer_loop(
    p: ThreadedProducer<ProdCtx>,
    producer: u32,
    topic: &'static str,
    partitions: i32,
    rate: u32,
    seed: u64,
    shared: Arc<Shared>,
) -> ThreadedProducer<ProdCtx> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ u64::from(producer) << 32);
    let started = Instant::now();
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        // Pace: seq records by now at `rate` per second.
        let due = (started.elapsed().as_secs_f64() * f64::from(rate)) as u64;
        if seq >= due {
            std::thread::sleep(Duration::from_millis(2)); // pacing, not synchronisation
            continue;
        }
        let id = RecordId { producer, seq };
        let value = id.encode(rng.random_range(20..400));
        let partition = rng.random_range(0..partitions);
        let key = format!("k{}", seq % KEYS);
        let record = BaseRecord::to(topic)
            .partition(partition)
            .key(&key)
            .payload(&value);
        match p.send(record) {
            Ok(()) => {
                seq += 1;
                shared.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_millis(5)); // back-pressure
            }
            Err((e, _)) => {
                *shared
                    .errors
                    .lock()
                    .entry(format!("send: {e}"))
                    .or_default() += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    p
}

struct ConsCtx {
    shared: Arc<Shared>,
}

impl ClientContext for ConsCtx {}

impl ConsumerContext for ConsCtx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.shared
            .last_membership_change_ms
            .store(now_ms(), Ordering::Relaxed);
    }
}

/// One group member: consumes, commits its position every ~50 ms, leaves after 4–12 s.
fn consumer_member(
    bootstrap: &str,
    shared: &Arc<Shared>,
    rng: &mut impl Rng,
) -> anyhow::Result<()> {
    let c: BaseConsumer<ConsCtx> = base_client(bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("max.poll.interval.ms", "30000")
        .create_with_context(ConsCtx {
            shared: shared.clone(),
        })?;
    c.subscribe(&[TOPIC])?;
    shared
        .last_membership_change_ms
        .store(now_ms(), Ordering::Relaxed);
    let life = Duration::from_millis(rng.random_range(4000..12_000));
    let started = Instant::now();
    let mut last_commit = Instant::now();
    while started.elapsed() < life && !shared.stop.load(Ordering::Relaxed) {
        if let Some(Ok(_)) = c.poll(Duration::from_millis(50)) {
            shared.consumed.fetch_add(1, Ordering::Relaxed);
        }
        if last_commit.elapsed() > Duration::from_millis(50) {
            last_commit = Instant::now();
            let Ok(pos) = c.position() else { continue };
            let mut tpl = TopicPartitionList::new();
            for e in pos.elements() {
                if let Offset::Offset(o) = e.offset() {
                    let _ = tpl.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o));
                }
            }
            if tpl.count() == 0 {
                continue;
            }
            shared.commits_in_flight.fetch_add(1, Ordering::SeqCst);
            let r = c.commit(&tpl, CommitMode::Sync);
            if let Err(e) = &r {
                *shared
                    .errors
                    .lock()
                    .entry(format!("commit: {e}"))
                    .or_default() += 1;
            }
            if r.is_ok() {
                let mut checker = shared.commits.lock();
                for e in tpl.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        checker.acked(CommitAck {
                            partition: e.partition(),
                            offset: o,
                        });
                    }
                }
            }
            shared.commits_in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
    shared
        .last_membership_change_ms
        .store(now_ms(), Ordering::Relaxed);
    drop(c); // leaves the group
    Ok(())
}

/// Fetches the group's committed offsets of the main topic (None if the broker is unreachable).
fn committed(c: &BaseConsumer, partitions: i32) -> Option<HashMap<i32, i64>> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(TOPIC, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
    let mut out = HashMap::new();
    for e in got.elements() {
        if e.error().is_err() {
            return None;
        }
        if let Offset::Offset(o) = e.offset() {
            out.insert(e.partition(), o);
        }
    }
    Some(out)
}

fn create_topics(bootstrap: &str, cfg: &TortureConfig) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_client(bootstrap).create()?;
    let seg = cfg.segment_bytes.to_string();
    let main = NewTopic::new(TOPIC, cfg.partitions, TopicReplication::Fixed(1))
        .set("segment.bytes", &seg)
        .set("retention.ms", "-1");
    let churn = NewTopic::new(CHURN, 2, TopicReplication::Fixed(1))
        .set("segment.bytes", "8192")
        .set("retention.bytes", "32768")
        .set("retention.ms", "-1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let compacted = NewTopic::new(COMPACTED, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "16384")
        .set("min.cleanable.dirty.ratio", "0.1");
    let results = rt.block_on(admin.create_topics(
        [&main, &churn, &compacted],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("creating {t}: {e}"),
        }
    }
    Ok(())
}

/// Counts `*.log` segment files under the topics' partition directories.
fn count_segments(data_dir: &Path) -> usize {
    count_files(data_dir, |p| p.extension().is_some_and(|x| x == "log"))
}

/// Whether a compaction pass was writing when the broker died: a `*.cleaned.tmp` file.
fn compaction_in_progress(data_dir: &Path) -> bool {
    count_files(data_dir, |p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".cleaned.tmp"))
    }) > 0
}

/// Counts files under `data_dir` that `pick` selects.
fn count_files(data_dir: &Path, pick: impl Fn(&Path) -> bool) -> usize {
    let mut n = 0;
    let mut stack = vec![data_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if pick(&p) {
                n += 1;
            }
        }
    }
    n
}

/// Each partition's records in offset order.
pub type Partitions = BTreeMap<i32, Vec<Stored>>;

/// Reads every partition of `topic` from its log start to its high watermark.
fn read_back(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<(Partitions, HashMap<i32, i64>)> {
    let c: BaseConsumer = base_client(bootstrap)
        .set("group.id", format!("torture-reader-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("check.crcs", "true")
        .set("fetch.max.bytes", "8388608")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    let mut high = HashMap::new();
    let mut low = HashMap::new();
    for p in 0..partitions {
        let (lo, hi) = c.fetch_watermarks(topic, p, Duration::from_secs(30))?;
        low.insert(p, lo);
        high.insert(p, hi);
        tpl.add_partition_offset(topic, p, Offset::Offset(lo))?;
    }
    c.assign(&tpl)?;
    let mut out: BTreeMap<i32, Vec<Stored>> = (0..partitions).map(|p| (p, Vec::new())).collect();
    let mut next: HashMap<i32, i64> = low.clone();
    let deadline = Instant::now() + Duration::from_secs(300);
    while (0..partitions).any(|p| next[&p] < high[&p]) {
        if Instant::now() > deadline {
            bail!("reading {topic} back timed out at {next:?} of {high:?}");
        }
        match c.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let p = m.partition();
                out.entry(p).or_default().push(Stored {
                    offset: m.offset(),
                    id: m.payload().and_then(RecordId::decode),
                });
                next.insert(p, m.offset() + 1);
            }
            Some(Err(e)) if crate::transient_consumer_error(&e) => {
                eprintln!("reading {topic}: {e} (reading on)");
            }
            Some(Err(e)) => bail!("reading {topic}: {e}"),
            None => {}
        }
    }
    Ok((out, low))
}

/// Runs the torture and returns its report (`Err` only when the harness itself fails).
pub fn run(cfg: &TortureConfig) -> anyhow::Result<TortureReport> {
    run_keeping_records(cfg).map(|(r, _)| r)
}

/// [`run`], also returning the main topic's records as read back at the end.
pub fn run_keeping_records(cfg: &TortureConfig) -> anyhow::Result<(TortureReport, Partitions)> {
    let started = Instant::now();
    let work_dir = crate::process::WorkDir::new(cfg.work_dir.as_deref())?;
    let work = work_dir.path();
    let data_dir = work.join("data");
    let log = work.join("broker.log");
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let flushes = [
        "interval:1000",
        "every-produce",
        "bytes:65536",
        "interval:50",
    ];
    let broker_args = |flush: &str| -> Vec<String> {
        vec![
            "--flush".into(),
            flush.into(),
            "--idle-timeout-ms".into(),
            "60000".into(),
        ]
    };
    let mut flush = flushes[0].to_string();
    let mut broker = BrokerProcess::start(&cfg.veritas, &data_dir, &broker_args(&flush), &log)?;
    let bootstrap = broker.bootstrap();
    create_topics(&bootstrap, cfg)?;

    let shared = Arc::new(Shared::default());
    let mut threads: Vec<JoinHandle<Option<ThreadedProducer<ProdCtx>>>> = Vec::new();
    let compressions = ["none", "lz4", "zstd", "snappy", "gzip"];
    for i in 0..cfg.producers {
        let p = producer(
            &bootstrap,
            &shared,
            Target::Main,
            compressions[i as usize % compressions.len()],
        )?;
        let (s, parts, rate, seed) = (shared.clone(), cfg.partitions, cfg.rate, cfg.seed);
        threads.push(std::thread::spawn(move || {
            Some(producer_loop(p, i, TOPIC, parts, rate, seed, s))
        }));
    }
    {
        let p = producer(&bootstrap, &shared, Target::Churn, "none")?;
        let (s, rate, seed) = (shared.clone(), cfg.rate, cfg.seed);
        threads.push(std::thread::spawn(move || {
            Some(producer_loop(p, CHURN_PRODUCER, CHURN, 2, rate, seed, s))
        }));
    }
    {
        // lz4: the cleaner decompresses and recompresses every batch it rewrites.
        let p = producer(&bootstrap, &shared, Target::Compacted, "lz4")?;
        let (s, rate, seed) = (shared.clone(), cfg.rate / 2, cfg.seed);
        threads.push(std::thread::spawn(move || {
            Some(producer_loop(
                p,
                COMPACTED_PRODUCER,
                COMPACTED,
                1,
                rate,
                seed,
                s,
            ))
        }));
    }
    let mut member_threads = Vec::new();
    for i in 0..cfg.consumers {
        let (s, b, seed) = (shared.clone(), bootstrap.clone(), cfg.seed);
        member_threads.push(std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(1000 + u64::from(i)));
            while !s.stop.load(Ordering::Relaxed) {
                if let Err(e) = consumer_member(&b, &s, &mut rng) {
                    *s.errors.lock().entry(format!("consumer: {e}")).or_default() += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }));
    }
    let observer: BaseConsumer = base_client(&bootstrap).set("group.id", GROUP).create()?;

    let mut report = TortureReport {
        cycles: cfg.cycles,
        seed: cfg.seed,
        seconds: 0.0,
        records: RecordVerdict::default(),
        churn: RecordVerdict::default(),
        compacted: CompactedVerdict::default(),
        churn_log_start: BTreeMap::new(),
        commits: CommitVerdict::default(),
        sent: 0,
        consumed: 0,
        delivery_errors: BTreeMap::new(),
        watermark_violations: Vec::new(),
        kills_during_produce: 0,
        kills_after_rolls: 0,
        kills_during_rebalance: 0,
        kills_during_commit: 0,
        kills_during_retention: 0,
        kills_during_compaction: 0,
        kills: Vec::new(),
    };
    let mut segments_before = count_segments(&data_dir);
    let mut churn_start_before = -1i64;
    let watermark_client: BaseConsumer = base_client(&bootstrap)
        .set("group.id", "torture-watermarks")
        .create()?;
    for cycle in 1..=cfg.cycles {
        let mut run = Duration::from_millis(rng.random_range(cfg.run_ms.0..=cfg.run_ms.1));
        if cycle == 1 {
            // The group's first rebalance waits group.initial.rebalance.delay.ms (3 s): let it
            // form and commit before the first kill, so the commit check is never vacuous.
            run = run.max(Duration::from_secs(8));
        }
        let cycle_start = Instant::now();
        // Observe committed offsets while the broker runs.
        while cycle_start.elapsed() < run {
            let floor = shared.commits.lock().floor();
            if let Some(c) = committed(&observer, cfg.partitions) {
                shared
                    .commits
                    .lock()
                    .observe(&format!("cycle {cycle} (running)"), &floor, &c);
            }
            let left = run.saturating_sub(cycle_start.elapsed());
            std::thread::sleep(left.min(Duration::from_millis(200))); // the kill moment is random by design
        }
        if !broker.alive() {
            bail!("the broker died on its own:\n{}", broker.log_tail(30));
        }
        let churn_start = watermark_client
            .fetch_watermarks(CHURN, 0, Duration::from_secs(5))
            .map(|(lo, _)| lo)
            .unwrap_or(churn_start_before);
        // The kill.
        let commits_in_flight = shared.commits_in_flight.load(Ordering::SeqCst);
        let kill_ms = now_ms();
        broker.kill9()?;
        let segments = count_segments(&data_dir);
        let during_compaction = compaction_in_progress(&data_dir);
        let acks_just_before = shared
            .recent_acks
            .lock()
            .iter()
            .filter(|&&t| t >= kill_ms - 250)
            .count() as u64;
        let since_change =
            (kill_ms - shared.last_membership_change_ms.load(Ordering::Relaxed)).max(0) as u64;
        // Everything acknowledged so far must survive the restart.
        let max_acked: HashMap<i32, i64> = {
            let acks = shared.acks.lock();
            let mut m = HashMap::new();
            for a in acks.iter() {
                let e = m.entry(a.partition).or_insert(a.offset);
                *e = (*e).max(a.offset);
            }
            m
        };
        flush = flushes[rng.random_range(0..flushes.len())].to_string();
        let restart_started = Instant::now();
        broker.set_args(&broker_args(&flush));
        broker.restart()?;
        let restart_ms = restart_started.elapsed().as_millis() as u64;
        for (&p, &max) in &max_acked {
            match watermark_client.fetch_watermarks(TOPIC, p, Duration::from_secs(30)) {
                Ok((_, hi)) if hi > max => {}
                Ok((_, hi)) => report.watermark_violations.push(format!(
                    "cycle {cycle}: partition {p} high watermark {hi} after acknowledging offset {max}"
                )),
                Err(e) => report
                    .watermark_violations
                    .push(format!("cycle {cycle}: partition {p} watermarks: {e}")),
            }
        }
        let floor = shared.commits.lock().floor();
        if let Some(c) = committed(&observer, cfg.partitions) {
            shared
                .commits
                .lock()
                .observe(&format!("cycle {cycle} (after restart)"), &floor, &c);
        }
        let rec = KillRecord {
            cycle,
            ran_ms: run.as_millis() as u64,
            flush: flush.clone(),
            acks_just_before,
            segments,
            rolled: segments.saturating_sub(segments_before),
            commits_in_flight,
            since_membership_change_ms: since_change,
            restart_ms,
            during_compaction,
        };
        report.kills_during_produce += u32::from(rec.acks_just_before > 0);
        report.kills_after_rolls += u32::from(rec.rolled > 0);
        report.kills_during_rebalance += u32::from(rec.since_membership_change_ms < 1500);
        report.kills_during_commit += u32::from(rec.commits_in_flight > 0);
        report.kills_during_retention += u32::from(churn_start > churn_start_before);
        report.kills_during_compaction += u32::from(rec.during_compaction);
        churn_start_before = churn_start;
        segments_before = segments;
        eprintln!(
            "cycle {cycle}/{}: killed after {} ms ({} acks in the last 250 ms, {} segments rolled, commits in flight {}, membership change {} ms before), restarted with --flush {} in {} ms",
            cfg.cycles, rec.ran_ms, rec.acks_just_before, rec.rolled, rec.commits_in_flight, rec.since_membership_change_ms, rec.flush, rec.restart_ms
        );
        report.kills.push(rec);
    }

    // Stop the clients: producers deliver (or fail) everything outstanding.
    shared.stop.store(true, Ordering::Relaxed);
    for t in member_threads {
        let _ = t.join();
    }
    let mut outstanding = 0;
    for t in threads {
        if let Ok(Some(p)) = t.join() {
            if p.flush(Duration::from_secs(120)).is_err() {
                outstanding += p.in_flight_count();
            }
            if let Some((code, reason)) = p.client().fatal_error() {
                *shared
                    .errors
                    .lock()
                    .entry(format!("fatal: {code:?}: {reason}"))
                    .or_default() += 1;
            }
        }
    }
    if outstanding > 0 {
        *shared
            .errors
            .lock()
            .entry("still outstanding at the end".into())
            .or_default() += outstanding as u64;
    }
    // A final committed-offset observation, then the read-back.
    let floor = shared.commits.lock().floor();
    if let Some(c) = committed(&observer, cfg.partitions) {
        shared.commits.lock().observe("end", &floor, &c);
    }
    let (stored, low) = read_back(&bootstrap, TOPIC, cfg.partitions)?;
    let acks = shared.acks.lock().clone();
    report.records = check_records(&acks, &stored, &low);
    let (churn_stored, churn_low) = read_back(&bootstrap, CHURN, 2)?;
    let churn_acks = shared.churn_acks.lock().clone();
    report.churn = check_records(&churn_acks, &churn_stored, &churn_low);
    report.churn_log_start = churn_low.into_iter().collect();
    let (compacted_stored, _) = read_back(&bootstrap, COMPACTED, 1)?;
    let compacted_acks = shared.compacted_acks.lock().clone();
    report.compacted = check_compacted(
        &compacted_acks,
        compacted_stored.get(&0).map_or(&[][..], Vec::as_slice),
        |id| id.seq % KEYS,
    );
    report.commits = shared.commits.lock().verdict().clone();
    report.sent = shared.sent.load(Ordering::Relaxed);
    report.consumed = shared.consumed.load(Ordering::Relaxed);
    report.delivery_errors = shared.errors.lock().clone();
    broker.stop()?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok((report, stored))
}

/// Whole-broker torn writes: damaged copies of the torture's final data directory, opened by
/// the real broker binary and read back with librdkafka (`check.crcs=true`).
#[derive(Debug, Default, Clone, Serialize)]
pub struct BrokerTornReport {
    /// Damaged copies started.
    pub cases: u32,
    /// Records of the main topic in the original (per case, summed).
    pub records_original: u64,
    /// Records served by the broker on the damaged copies (summed).
    pub records_served: u64,
    /// Cases where a partition served something other than a prefix of the original.
    pub not_a_prefix: Vec<String>,
    /// Cases where the broker did not start or the read failed (CRC errors included).
    pub failures: Vec<String>,
}

impl BrokerTornReport {
    /// True when every copy started and served a prefix of every partition.
    pub fn ok(&self) -> bool {
        self.not_a_prefix.is_empty() && self.failures.is_empty() && self.cases > 0
    }
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        let (p, name) = (e.path(), e.file_name());
        if p.is_dir() {
            copy_tree(&p, &to.join(&name))?;
        } else if name != ".lock" {
            std::fs::copy(&p, to.join(&name))?;
        }
    }
    Ok(())
}

/// Damages `cases` copies of `data_dir` as a power loss would — in every partition of the main
/// topic the last segment is cut somewhere in its second half and, half the time, one byte of
/// what remains after its first quarter is flipped; the recovery points are reset to 0 and the
/// clean-shutdown marker removed — then starts the real broker on each copy and reads the
/// main topic back. Each partition must serve a prefix of `original`, every batch passing
/// librdkafka's own CRC check.
pub fn torn_broker_copies(
    cfg: &TortureConfig,
    data_dir: &Path,
    original: &Partitions,
    cases: u32,
    seed: u64,
) -> anyhow::Result<BrokerTornReport> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x70_52_4e);
    let mut report = BrokerTornReport::default();
    let scratch = tempfile::tempdir()?;
    for case in 0..cases {
        let copy = scratch.path().join(format!("copy-{case}"));
        copy_tree(data_dir, &copy)?;
        let _ = std::fs::remove_file(copy.join(veritas_broker::server::CLEAN_SHUTDOWN_MARKER));
        for p in 0..cfg.partitions {
            let dir = copy.join(format!("{TOPIC}-{p}"));
            let mut segs: Vec<PathBuf> = std::fs::read_dir(&dir)?
                .flatten()
                .map(|e| e.path())
                .filter(|x| x.extension().is_some_and(|e| e == "log"))
                .collect();
            segs.sort();
            std::fs::write(dir.join("recovery-point"), "0\n0\n")?;
            let Some(last) = segs.last() else { continue };
            let mut bytes = std::fs::read(last)?;
            if bytes.len() < 4 {
                continue;
            }
            let cut = rng.random_range(bytes.len() / 2..bytes.len());
            bytes.truncate(cut);
            if rng.random_bool(0.5) && bytes.len() > 4 {
                let at = rng.random_range(bytes.len() / 4..bytes.len());
                bytes[at] ^= rng.random_range(1..=255u8);
            }
            std::fs::write(last, &bytes)?;
        }
        report.cases += 1;
        report.records_original += original.values().map(|v| v.len() as u64).sum::<u64>();
        let label = format!("case {case}");
        let log = scratch.path().join(format!("broker-{case}.log"));
        let mut broker = match BrokerProcess::start(&cfg.veritas, &copy, &[], &log) {
            Ok(b) => b,
            Err(e) => {
                report.failures.push(format!("{label}: start: {e:#}"));
                continue;
            }
        };
        match read_back(&broker.bootstrap(), TOPIC, cfg.partitions) {
            Ok((served, _)) => {
                for (p, recs) in &served {
                    report.records_served += recs.len() as u64;
                    let orig = original.get(p).map(Vec::as_slice).unwrap_or(&[]);
                    if recs.len() > orig.len() || recs[..] != orig[..recs.len()] {
                        report.not_a_prefix.push(format!(
                            "{label}: partition {p} served {} records, not a prefix of the {}",
                            recs.len(),
                            orig.len()
                        ));
                    }
                }
            }
            Err(e) => report.failures.push(format!("{label}: read: {e:#}")),
        }
        broker.kill9()?;
        drop(broker);
        std::fs::remove_dir_all(&copy)?;
    }
    Ok(report)
}
