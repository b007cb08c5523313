//! The detector crash test: `veritas detect` killed with `SIGKILL` mid-stream, again and again,
//! while `veritas produce` feeds `bankaccount` a known labelled stream, against the real broker
//! binary. An uninterrupted detector scores an identically partitioned copy of the stream
//! (`bankaccount-ref`) meanwhile.
//!
//! Verdicts, after the last restart has caught up:
//!
//! * every valid input event has at least one decision in `bankaccount.decisions` (none
//!   missing), every invalid one at least one dead letter in `bankaccount.dlq`;
//! * every decision — first or repeated — has the score and verdict the uninterrupted detector
//!   gave the same event: the state restored from a checkpoint is the state an uninterrupted run
//!   had at that offset;
//! * duplicates (decisions repeated after a crash, at-least-once) are counted and reported.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use veritas_events::{decode_event, RecordContext};

use crate::process::{BrokerProcess, Proc};

/// Input topic of the detector that is killed.
pub const INPUT: &str = "bankaccount";
/// Input topic of the uninterrupted reference detector.
pub const REFERENCE: &str = "bankaccount-ref";

/// What to run.
#[derive(Debug, Clone)]
pub struct DetectorCrashConfig {
    /// The `veritas` binary.
    pub veritas: PathBuf,
    /// SIGKILLs of the detector.
    pub kills: u32,
    /// Seed of the generated stream and of the kill moments.
    pub seed: u64,
    /// Cardholders in the generated stream (events ≈ customers × days × 2).
    pub customers: u32,
    /// Days of history.
    pub days: u32,
    /// Partitions of the input topics.
    pub partitions: i32,
    /// Events per second `veritas produce` sends.
    pub rate: u32,
    /// Where data and logs go (a temporary directory if `None`).
    pub work_dir: Option<PathBuf>,
}

impl Default for DetectorCrashConfig {
    fn default() -> Self {
        DetectorCrashConfig {
            veritas: PathBuf::from("target/debug/veritas"),
            kills: 5,
            seed: 7,
            customers: 1000,
            days: 10,
            partitions: 3,
            rate: 500,
            work_dir: None,
        }
    }
}

/// Figures of a run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DetectorCrashReport {
    /// SIGKILLs delivered to the detector.
    pub kills: u32,
    /// Decisions in the topic at each kill.
    pub decisions_at_kill: Vec<i64>,
    /// Valid events in the input stream.
    pub events: u64,
    /// Invalid events injected (invalid JSON, schema violations).
    pub invalid_events: u64,
    /// Decisions read back.
    pub decisions: u64,
    /// Distinct events decided.
    pub decided: u64,
    /// Decisions repeated after a crash (at-least-once duplicates).
    pub duplicates: u64,
    /// Valid events without a decision (must be 0).
    pub missing_count: u64,
    /// Decisions whose score or verdict differs from the uninterrupted run (must be 0).
    pub mismatched_count: u64,
    /// The first missing events.
    pub missing: Vec<String>,
    /// The first mismatches.
    pub mismatched: Vec<String>,
    /// Dead letters read back, and distinct invalid events among them.
    pub dead_letters: u64,
    /// Distinct invalid inputs with a dead letter.
    pub dead_lettered: u64,
    /// Invalid inputs without a dead letter (must be 0).
    pub missing_dead_letters: u64,
    /// Decisions of the uninterrupted reference run.
    pub reference_decisions: u64,
    /// Partitions the restarted detectors restored from checkpoints (from their logs).
    pub partitions_restored: u64,
    /// Merchant tables the restarted detectors restored from checkpoints (from their logs).
    pub tables_restored: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl DetectorCrashReport {
    /// True when every event was decided as the uninterrupted run decided it.
    pub fn ok(&self) -> bool {
        self.missing_count == 0
            && self.mismatched_count == 0
            && self.missing_dead_letters == 0
            && self.events > 0
            && self.kills > 0
    }
}

/// Events that must go to the dead-letter topic: invalid JSON, wrong types, missing or
/// out-of-range fields.
pub fn invalid_events() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"{not json".to_vec(),
        b"".to_vec(),
        b"null".to_vec(),
        b"[1,2,3]".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        br#"{"Amount":"x"}"#.to_vec(),
        br#"{"transaction_id":"bad-1","timestamp":"yesterday","card_number":"4111111111111111","amount":1}"#.to_vec(),
        br#"{"transaction_id":"bad-2","timestamp":"2025-01-02T00:00:00Z","amount":1}"#.to_vec(),
        br#"{"transaction_id":"bad-3","timestamp":"2025-01-02T00:00:00Z","card_number":"4111111111111111","amount":"twelve"}"#.to_vec(),
        br#"{"transaction_id":"bad-4","timestamp":"2025-01-02T00:00:00Z","card_number":"4111111111111111","amount":-5}"#.to_vec(),
        br#"{"transaction_id":"bad-5","timestamp":"2025-01-02T00:00:00Z","card_number":"12","amount":5}"#.to_vec(),
        br#"{"transaction_id":"","timestamp":"2025-01-02T00:00:00Z","card_number":"4111111111111111","amount":5}"#.to_vec(),
        br#"{"transaction_id":"bad-6","timestamp":"2025-01-02T00:00:00Z","card_number":"4111111111111111","amount":1e400}"#.to_vec(),
    ];
    v.push(vec![b'['; 10_000]); // deep nesting
    v.push(format!("{{\"transaction_id\":\"{}\"}}", "x".repeat(100_000)).into_bytes());
    v
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4");
    c
}

/// A record read back.
struct Read {
    partition: i32,
    value: Vec<u8>,
    headers: HashMap<String, String>,
}

/// Reads `topic` from the beginning to its high watermarks (now).
fn read_topic(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<Read>> {
    let c: BaseConsumer = client(bootstrap)
        .set("group.id", "detector-crash-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let parts: Vec<i32> = md
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut tpl = TopicPartitionList::new();
    let mut high = HashMap::new();
    for &p in &parts {
        let (lo, hi) = c.fetch_watermarks(topic, p, Duration::from_secs(30))?;
        high.insert(p, hi);
        tpl.add_partition_offset(topic, p, Offset::Offset(lo))?;
        high.insert(p, hi.max(lo));
    }
    c.assign(&tpl)?;
    let mut next: HashMap<i32, i64> = HashMap::new();
    for e in tpl.elements() {
        if let Offset::Offset(o) = e.offset() {
            next.insert(e.partition(), o);
        }
    }
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while parts.iter().any(|p| next[p] < high[p]) {
        if Instant::now() > deadline {
            bail!("reading {topic} timed out");
        }
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = match m {
                Ok(m) => m,
                Err(e) if crate::transient_consumer_error(&e) => {
                    eprintln!("reading {topic}: {e} (reading on)");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            next.insert(m.partition(), m.offset() + 1);
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Read {
                partition: m.partition(),
                value: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }
    Ok(out)
}

/// Sum of a topic's high watermarks (0 when it does not exist yet).
fn records_in(c: &BaseConsumer, topic: &str) -> i64 {
    let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
        return 0;
    };
    let Some(t) = md.topics().first() else {
        return 0;
    };
    t.partitions()
        .iter()
        .map(|p| {
            c.fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .map(|w| w.1)
                .unwrap_or(0)
        })
        .sum()
}

fn run_ok(exe: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new(exe)
        .args(args)
        .env("VERITAS_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running veritas {args:?}"))?;
    if !out.status.success() {
        bail!(
            "veritas {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn detect_args(bootstrap: &str, topic: &str, group: &str, model: &str) -> Vec<String> {
    [
        "detect",
        "--model",
        model,
        "-b",
        bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--from-beginning",
        "--checkpoint-interval-ms",
        "200",
        "--snapshot-every",
        "5",
        // Restarts restore the shared merchant table from its checkpoint (and read the
        // input from there), so the scores compared below cover that path too.
        "--table-checkpoint-interval-ms",
        "500",
        "--session-timeout-ms",
        "6000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200)); // polling a condition
    }
    Ok(())
}

/// Runs the detector crash test.
pub fn run(cfg: &DetectorCrashConfig) -> anyhow::Result<DetectorCrashReport> {
    let started = Instant::now();
    let work_dir = crate::process::WorkDir::new(cfg.work_dir.as_deref())?;
    let work = work_dir.path();
    let exe = cfg.veritas.as_path();
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let broker = BrokerProcess::start(exe, &work.join("data"), &[], &work.join("broker.log"))?;
    let bs = broker.bootstrap();

    // The labelled stream.
    let file = work.join("events.jsonl");
    let file_s = file.to_string_lossy().to_string();
    run_ok(
        exe,
        &[
            "generate",
            "--customers",
            &cfg.customers.to_string(),
            "--days",
            &cfg.days.to_string(),
            "--seed",
            &cfg.seed.to_string(),
            "--out",
            &file_s,
        ],
    )?;
    // A model trained on the stream itself, so every score depends on the card, merchant
    // and category state a restore must bring back exactly (not on rules alone).
    let model = work.join("model.json");
    let model_s = model.to_string_lossy().to_string();
    run_ok(
        exe,
        &[
            "train", "--input", &file_s, "--out", &model_s, "--trees", "60",
        ],
    )?;
    let ctx = RecordContext::new(INPUT, 0, 0, -1);
    let mut events: Vec<String> = Vec::new();
    for line in std::fs::read_to_string(&file)?.lines() {
        let tx = decode_event(line.as_bytes(), &ctx)
            .map_err(|e| anyhow::anyhow!("generated event does not decode: {e}"))?;
        events.push(tx.transaction_id);
    }
    let parts = cfg.partitions.to_string();
    for topic in [INPUT, REFERENCE] {
        run_ok(
            exe,
            &["topics", "create", topic, "--partitions", &parts, "-b", &bs],
        )?;
    }
    // Invalid events, spread over the partitions, into both topics.
    let invalid: Vec<Vec<u8>> = invalid_events()
        .into_iter()
        .filter(|v| decode_event(v, &ctx).is_err())
        .collect();
    let producer: ThreadedProducer<DefaultProducerContext> = client(&bs)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()?;
    for (i, v) in invalid.iter().enumerate() {
        let key = format!("invalid-{i}");
        for topic in [INPUT, REFERENCE] {
            producer
                .send(BaseRecord::to(topic).key(&key).payload(v))
                .map_err(|(e, _)| e)?;
        }
    }
    producer.flush(Duration::from_secs(60))?;

    let logs = work.join("detect.log");
    let mut reference = Proc::spawn(
        exe,
        &detect_args(&bs, REFERENCE, "reference", &model_s),
        &work.join("reference.log"),
        &[],
    )?;
    let mut crashy = Proc::spawn(
        exe,
        &detect_args(&bs, INPUT, "crashy", &model_s),
        &logs,
        &[],
    )?;
    // Load: the stream into both topics, paced on the input topic.
    let rate = cfg.rate.to_string();
    let mut feeder = Proc::spawn(
        exe,
        &[
            "produce", "-b", &bs, "--topic", INPUT, "--file", &file_s, "--rate", &rate,
        ]
        .map(String::from),
        &work.join("produce.log"),
        &[],
    )?;
    run_ok(
        exe,
        &[
            "produce", "-b", &bs, "--topic", REFERENCE, "--file", &file_s,
        ],
    )?;

    let total = events.len() as i64;
    let invalid_n = invalid.len() as i64;
    let watcher: BaseConsumer = client(&bs).create()?;
    let mut report = DetectorCrashReport {
        events: events.len() as u64,
        invalid_events: invalid.len() as u64,
        ..Default::default()
    };
    // Kill at random moments while decisions flow: each kill waits until the restarted
    // detector has made progress (it was assigned its partitions and restored its state), then
    // a random 0.2-3 s, so kills land in catch-up bursts, between and during checkpoints.
    let decisions_topic = format!("{INPUT}.decisions");
    let mut last = records_in(&watcher, &decisions_topic);
    for k in 0..cfg.kills {
        // Progress, or 30 s without any (the stream may be over: then an idle detector is
        // killed, which still exercises the restore).
        let _ = wait_until(
            "the detector to make progress",
            Duration::from_secs(30),
            || records_in(&watcher, &decisions_topic) > last,
        );
        if let Some(s) = crashy.exited()? {
            bail!("the detector exited with {s}: {}", crashy.log_tail(20));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(200..3000))); // the kill moment
        crashy.kill9()?;
        last = records_in(&watcher, &decisions_topic);
        report.decisions_at_kill.push(last);
        report.kills += 1;
        eprintln!(
            "detector kill {}/{}: {last} decisions so far",
            k + 1,
            cfg.kills
        );
        crashy = Proc::spawn(
            exe,
            &detect_args(&bs, INPUT, "crashy", &model_s),
            &logs,
            &[],
        )?;
    }
    let status = loop {
        if let Some(s) = feeder.exited()? {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100)); // polling a child's exit
    };
    if !status.success() {
        bail!("veritas produce failed: {}", feeder.log_tail(20));
    }
    // Wait for the last run (and the reference) to catch up: every input decided.
    let decided = |topic: &str| -> anyhow::Result<(u64, u64)> {
        let d = read_topic(&bs, &format!("{topic}.decisions"))?;
        let mut ids = std::collections::HashSet::new();
        for r in &d {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.value) {
                if let Some(id) = v["transaction_id"].as_str() {
                    ids.insert(id.to_owned());
                }
            }
        }
        Ok((d.len() as u64, ids.len() as u64))
    };
    wait_until(
        "the reference run to decide everything",
        Duration::from_secs(300),
        || {
            records_in(&watcher, &format!("{REFERENCE}.decisions")) >= total
                && records_in(&watcher, &format!("{REFERENCE}.dlq")) >= invalid_n
        },
    )?;
    let limit = Instant::now() + Duration::from_secs(300);
    loop {
        let enough = records_in(&watcher, &format!("{INPUT}.decisions")) >= total
            && records_in(&watcher, &format!("{INPUT}.dlq")) >= invalid_n;
        if enough && decided(INPUT)?.1 >= total as u64 {
            break;
        }
        if Instant::now() > limit {
            break; // judged below: the missing events are listed
        }
        if let Some(s) = crashy.exited()? {
            bail!("the detector exited with {s}: {}", crashy.log_tail(20));
        }
        std::thread::sleep(Duration::from_millis(500)); // polling progress
    }
    // Let both detectors commit and stop cleanly.
    crashy.terminate()?;
    reference.terminate()?;

    // Judge.
    let score_of = |reads: &[Read]| -> BTreeMap<String, Vec<(f64, String, i32)>> {
        let mut m: BTreeMap<String, Vec<(f64, String, i32)>> = BTreeMap::new();
        for r in reads {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.value) else {
                continue;
            };
            let (Some(id), Some(score), Some(verdict)) = (
                v["transaction_id"].as_str(),
                v["score"].as_f64(),
                v["decision"].as_str(),
            ) else {
                continue;
            };
            m.entry(id.to_owned())
                .or_default()
                .push((score, verdict.to_owned(), r.partition));
        }
        m
    };
    let crashed = read_topic(&bs, &format!("{INPUT}.decisions"))?;
    let steady = read_topic(&bs, &format!("{REFERENCE}.decisions"))?;
    let (c, s) = (score_of(&crashed), score_of(&steady));
    report.decisions = crashed.len() as u64;
    report.reference_decisions = steady.len() as u64;
    report.decided = c.len() as u64;
    report.duplicates = c.values().map(|v| v.len() as u64 - 1).sum();
    for id in &events {
        let Some(got) = c.get(id) else {
            report.missing.push(id.clone());
            continue;
        };
        let Some(want) = s.get(id).and_then(|v| v.first()) else {
            report
                .mismatched
                .push(format!("{id}: no reference decision"));
            continue;
        };
        for g in got {
            if (g.0 - want.0).abs() > 1e-9 || g.1 != want.1 {
                report.mismatched.push(format!(
                    "{id}: score {} {} after crashes, {} {} uninterrupted",
                    g.0, g.1, want.0, want.1
                ));
            }
        }
    }
    let dlq = read_topic(&bs, &format!("{INPUT}.dlq"))?;
    report.dead_letters = dlq.len() as u64;
    let mut lettered = std::collections::HashSet::new();
    for r in &dlq {
        if r.headers.contains_key("veritas-error") {
            lettered.insert(r.value.clone());
        }
    }
    report.dead_lettered = invalid.iter().filter(|v| lettered.contains(*v)).count() as u64;
    report.missing_dead_letters = report.invalid_events - report.dead_lettered;
    let log = std::fs::read_to_string(&logs).unwrap_or_default();
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count() as u64;
    report.partitions_restored = count("restored partition state");
    report.tables_restored = count("restored the merchant table from its checkpoint");
    report.missing_count = report.missing.len() as u64;
    report.mismatched_count = report.mismatched.len() as u64;
    report.missing.truncate(20);
    report.mismatched.truncate(20);
    drop(broker);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
