//! The producer and the detector as a user runs them: the real `veritas` binary against a real
//! broker on an ephemeral port, checked by reading the topics back with librdkafka.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use veritas_broker::{Broker, BrokerConfig};

const DEADLINE: Duration = Duration::from_secs(120);

async fn broker(dir: &Path) -> Broker {
    let mut c = BrokerConfig::new(dir);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.groups.initial_rebalance_delay = Duration::from_millis(100);
    Broker::start(c, &prometheus::Registry::new())
        .await
        .unwrap()
}

fn veritas(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_veritas"));
    cmd.args(args).env("VERITAS_LOG", "warn");
    cmd
}

fn run_ok(mut cmd: Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4");
    c
}

/// A record read back: key, value, headers.
struct Read {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: HashMap<String, String>,
}

/// The next record within `wait`, if any. Errors librdkafka recovers from by itself ("all
/// brokers down" for a moment while librdkafka 2.12 swaps its bootstrap connection for the
/// broker's, a dropped connection) are printed and skipped; the caller's deadline bounds the
/// wait. Any other error fails the test.
fn next_record(consumer: &BaseConsumer, wait: Duration) -> Option<BorrowedMessage<'_>> {
    match consumer.poll(wait)? {
        Ok(m) => Some(m),
        Err(e @ KafkaError::MessageConsumption(_)) => {
            eprintln!("consumer error (librdkafka recovers): {e}");
            None
        }
        Err(e) => panic!("consumer error: {e}"),
    }
}

/// Reads every record of `topic` until at least `n` have been seen.
fn read_topic(bootstrap: &str, topic: &str, n: usize) -> Vec<Read> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "test-reader")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < n {
        assert!(
            start.elapsed() < DEADLINE,
            "{topic}: read {} of {n}",
            out.len()
        );
        if let Some(m) = next_record(&consumer, Duration::from_millis(100)) {
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
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }
    out
}

/// Sum of the high watermarks of a topic's partitions.
fn records_in(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = client(bootstrap).create().unwrap();
    let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
        return 0;
    };
    let Some(t) = md.topics().first() else {
        return 0;
    };
    t.partitions()
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .map(|w| w.1)
                .unwrap_or(0)
        })
        .sum()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            if !s.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("detector exited with {s} after SIGTERM:\n{err}");
            }
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "detector did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn transaction_ids(records: &[Read]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
            v["transaction_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_delivers_every_event_keyed_by_card_with_labels_in_headers() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let bs = b.bootstrap_servers();
    let bs2 = bs.clone();
    tokio::task::spawn_blocking(move || {
        let bs = bs2.as_str();
        // 200 cardholders: 1000 events span a few days of event time, so fraud episodes happen.
        let out = run_ok(veritas(&[
            "produce",
            "1000",
            "-b",
            bs,
            "--topic",
            "tx",
            "--fraud-rate",
            "0.05",
            "--customers",
            "200",
        ]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("sent 1000 event(s)"), "{stderr}");
        let records = read_topic(bs, "tx", 1000);
        assert_eq!(records.len(), 1000);
        let mut frauds = 0;
        for r in &records {
            let tx: veritas_events::Transaction = serde_json::from_slice(&r.value).unwrap();
            assert_eq!(
                r.key.as_deref(),
                Some(tx.card_number.as_bytes()),
                "keyed by card"
            );
            let label = r.headers.get("veritas-label").expect("label header");
            assert!(label == "0" || label == "1");
            if label == "1" {
                frauds += 1;
                assert!(r.headers.contains_key("veritas-scenario"));
            }
            assert!(
                !String::from_utf8_lossy(&r.value).contains("is_fraud"),
                "ground truth never in the value"
            );
        }
        assert!(frauds > 0, "a 5 % fraud rate yields frauds in 1000 events");
        assert_eq!(
            transaction_ids(&records)
                .into_iter()
                .collect::<HashSet<_>>()
                .len(),
            1000
        );

        // The tutorial's format: exactly its four fields, no key.
        run_ok(veritas(&[
            "produce",
            "3",
            "-b",
            bs,
            "--topic",
            "tut",
            "--format",
            "bankaccount",
            "--key",
            "none",
        ]));
        for r in read_topic(bs, "tut", 3) {
            assert_eq!(r.key, None);
            let v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&r.value).unwrap();
            let keys: Vec<&str> = v.keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                ["Amount", "CreditCardNumber", "FirstName", "LastName"]
            );
        }
    })
    .await
    .unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_line_is_reported_with_its_number_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let bs = b.bootstrap_servers();
    let file = dir.path().join("replay.jsonl");
    let mut f = std::fs::File::create(&file).unwrap();
    let good = |i: u32| {
        format!(
            r#"{{"transaction_id":"t{i}","timestamp":"2025-01-01T00:00:0{i}Z","card_number":"4111111111111111","amount":{i}.5,"is_fraud":0}}"#
        )
    };
    writeln!(
        f,
        "{}\n{}\n{{not json\n{}\n{}",
        good(1),
        good(2),
        good(3),
        good(4)
    )
    .unwrap();
    drop(f);
    let bs2 = bs.clone();
    tokio::task::spawn_blocking(move || {
        let out = run_ok(veritas(&[
            "produce",
            "-b",
            &bs2,
            "--topic",
            "replay",
            "--file",
            file.to_str().unwrap(),
        ]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("line=3"), "line number reported: {stderr}");
        assert!(
            stderr.contains("sent 4 event(s)") && stderr.contains("1 skipped"),
            "{stderr}"
        );
        let ids = transaction_ids(&read_topic(&bs2, "replay", 4));
        assert_eq!(ids, ["t1", "t2", "t3", "t4"]);
    })
    .await
    .unwrap();
    b.shutdown().await.unwrap();
}

/// Sends `values` (raw bytes) to `topic` with the given keys.
fn send_raw(bootstrap: &str, topic: &str, records: &[(Vec<u8>, Vec<u8>)]) {
    let p: ThreadedProducer<DefaultProducerContext> =
        client(bootstrap).set("linger.ms", "5").create().unwrap();
    for (k, v) in records {
        p.send(BaseRecord::to(topic).key(k).payload(v))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_decides_every_event_commits_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let bs = b.bootstrap_servers();
    let bs2 = bs.clone();
    let work = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let bs = bs2.as_str();
        // A labelled history file, replayed into two topics with identical partitioning: one
        // detector is stopped and restarted mid-stream, the other runs uninterrupted.
        let file = work.join("events.jsonl");
        run_ok(veritas(&[
            "generate",
            "--customers",
            "300",
            "--days",
            "10",
            "--seed",
            "3",
            "--out",
            file.to_str().unwrap(),
        ]));
        let total = std::fs::read_to_string(&file).unwrap().lines().count() as i64;
        assert!(total > 2000, "{total} events");
        for topic in ["a", "b"] {
            run_ok(veritas(&[
                "topics",
                "create",
                topic,
                "--partitions",
                "3",
                "-b",
                bs,
            ]));
        }
        // Two invalid events for the dead-letter topic.
        send_raw(
            bs,
            "a",
            &[
                (b"k".to_vec(), b"{not json".to_vec()),
                (b"k".to_vec(), br#"{"Amount":"x"}"#.to_vec()),
            ],
        );
        let detect = |topic: &str, group: &str| {
            veritas(&[
                "detect",
                "-b",
                bs,
                "--topic",
                topic,
                "--group",
                group,
                "--from-beginning",
                "--checkpoint-interval-ms",
                "200",
                "--snapshot-every",
                "5",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        };
        // Uninterrupted run on b.
        let mut steady = detect("b", "steady");
        run_ok(veritas(&[
            "produce",
            "-b",
            bs,
            "--topic",
            "b",
            "--file",
            file.to_str().unwrap(),
        ]));
        // Interrupted run on a: stop it after some decisions, produce the rest meanwhile, restart.
        let mut first = detect("a", "restarted");
        run_ok(veritas(&[
            "produce",
            "-b",
            bs,
            "--topic",
            "a",
            "--file",
            file.to_str().unwrap(),
        ]));
        wait_for("some decisions on a", || {
            records_in(bs, "a.decisions") >= total / 3
        });
        terminate(&mut first);
        let mut second = detect("a", "restarted");
        // Done when each group has committed the end of its input: every decision is then
        // acknowledged (the detector commits nothing earlier).
        wait_for("the restarted group to commit the end of a", || {
            committed_sum(bs, "restarted", "a", 3) == total + 2
        });
        wait_for("the steady group to commit the end of b", || {
            committed_sum(bs, "steady", "b", 3) == total
        });
        terminate(&mut second);
        terminate(&mut steady);

        // Every event has a decision; invalid ones went to the DLQ with an error header.
        let dlq = read_topic(bs, "a.dlq", 2);
        assert_eq!(dlq.len(), 2);
        assert!(dlq.iter().all(|r| r.headers.contains_key("veritas-error")));
        assert_eq!(dlq[0].value, b"{not json");
        let a = read_topic(bs, "a.decisions", records_in(bs, "a.decisions") as usize);
        let b_ = read_topic(bs, "b.decisions", total as usize);
        let score_of =
            |records: &[Read]| -> HashMap<String, f64> { scores_of(records).into_iter().collect() };
        let (sa, sb) = (score_of(&a), score_of(&b_));
        assert_eq!(
            sa.len() as i64,
            total,
            "every valid event of a has a decision"
        );
        assert_eq!(sb.len() as i64, total);
        let duplicates = a.len() as i64 - total;
        eprintln!("restart produced {duplicates} duplicate decision(s) (at-least-once)");
        // State restored from the checkpoint scores every event as the uninterrupted run did.
        let differing: Vec<_> = sa
            .iter()
            .filter(|(id, s)| sb.get(*id).is_none_or(|x| (*x - **s).abs() > 1e-9))
            .collect();
        assert!(
            differing.is_empty(),
            "{} scores differ after the restart, e.g. {:?}",
            differing.len(),
            differing.first()
        );

        // The committed offsets stay at the end of each partition after the detectors stop.
        assert_eq!(committed_sum(bs, "restarted", "a", 3), total + 2);
    })
    .await
    .unwrap();
    b.shutdown().await.unwrap();
}

/// Sum of a group's committed offsets over `partitions` partitions of `topic` (-1 if any is
/// missing).
fn committed_sum(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = client(bootstrap).set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let Ok(committed) = consumer.committed_offsets(tpl, Duration::from_secs(30)) else {
        return -1;
    };
    let mut sum = 0;
    for e in committed.elements() {
        match e.offset() {
            Offset::Offset(o) => sum += o,
            _ => return -1,
        }
    }
    sum
}

/// `transaction_id` → score of every decision record.
fn scores_of(records: &[Read]) -> Vec<(String, f64)> {
    records
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
            (
                v["transaction_id"].as_str().unwrap().to_owned(),
                v["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Trains a model with shared merchant state on `file` (writing `rules` and `model`) and
/// scores the file offline on one engine: `transaction_id` → score, the reference served
/// decisions must match.
fn one_engine_reference(
    file: &str,
    rules: &str,
    model: &str,
    offline: &str,
) -> HashMap<String, f64> {
    std::fs::write(rules, "[engine]\nshared_merchants = true\n").unwrap();
    run_ok(veritas(&[
        "train", "--input", file, "--out", model, "--rules", rules, "--trees", "60",
    ]));
    run_ok(veritas(&[
        "score", "--input", file, "--model", model, "--rules", rules, "--out", offline,
    ]));
    let text = std::fs::read_to_string(offline).unwrap();
    let reference: HashMap<String, f64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["transaction_id"].as_str().unwrap().to_owned(),
                v["score"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(reference.len(), text.lines().count());
    reference
}

/// Every served decision carries the score one engine gives its event.
fn assert_scores_match(served: &[(String, f64)], reference: &HashMap<String, f64>) {
    let differing: Vec<_> = served
        .iter()
        .filter(|(id, s)| (reference[id] - s).abs() > 1e-9)
        .collect();
    assert!(
        differing.is_empty(),
        "{} of {} decisions differ from one engine's, e.g. {:?}",
        differing.len(),
        served.len(),
        differing.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_merchant_state_gives_two_instances_the_scores_of_one_engine() {
    // A backlog: the surviving instance's table has usually read far past the checkpoints
    // of the partitions it takes over and rebuilds the table from the start (how far it
    // has read when the takeover comes is a matter of timing, so either way must do).
    let log = two_instances_take_over(false).await;
    let how = if log.contains("rebuilding it from the start") {
        "rebuilt its table"
    } else if log.contains("reading it again") {
        "re-read the moved partitions"
    } else {
        "had not read past the moved partitions"
    };
    eprintln!("the surviving instance {how}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_takeover_rereads_the_moved_partitions_instead_of_rebuilding_the_table() {
    // Live traffic: the partitions taken over are only a moment behind the surviving
    // instance's table, which still holds the state their events read, so the reader reads
    // just them again from their checkpoints.
    let log = two_instances_take_over(true).await;
    assert!(
        log.contains("reading it again from its checkpoint"),
        "the takeover should have re-read the moved partitions:\n{log}"
    );
    assert!(
        !log.contains("rebuilding it from the start"),
        "the table should not have been rebuilt:\n{log}"
    );
    for line in log.lines().filter(|l| l.contains("reading it again")) {
        eprintln!("{line}");
    }
}

/// Two `veritas detect` instances with shared merchant state share a 3-partition topic; one
/// is stopped mid-stream and the other takes its partitions over from their checkpoints.
/// Every event must get exactly the score `veritas score` gives it on one engine. `live`:
/// the detectors run before the events are produced (at 500 events/s, 100 ms of event time
/// apart), else the events are produced first. Returns the surviving instance's log.
async fn two_instances_take_over(live: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let bs = b.bootstrap_servers();
    let bs2 = bs.clone();
    let work = dir.path().to_owned();
    let log = tokio::task::spawn_blocking(move || {
        let bs = bs2.as_str();
        let path = |name: &str| work.join(name).to_str().unwrap().to_owned();
        let (file, rules, model) = (path("events.jsonl"), path("shared.toml"), path("m.json"));
        run_ok(veritas(&[
            "generate",
            "--customers",
            "600",
            "--days",
            "10",
            "--seed",
            "4",
            "--out",
            &file,
        ]));
        if live {
            // Event time advancing 100 ms per event: at 500 events/s a second of wall time is
            // under a minute of event time, as in live traffic.
            let text = std::fs::read_to_string(&file).unwrap();
            let start = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap();
            let mut out = String::with_capacity(text.len());
            for (i, line) in text.lines().enumerate() {
                let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
                let t = start + chrono::Duration::milliseconds(100 * i as i64);
                v["timestamp"] = t
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    .into();
                out.push_str(&v.to_string());
                out.push('\n');
            }
            std::fs::write(&file, out).unwrap();
        }
        let total = std::fs::read_to_string(&file).unwrap().lines().count() as i64;
        // One engine over the whole file: the reference.
        let reference = one_engine_reference(&file, &rules, &model, &path("offline.jsonl"));

        run_ok(veritas(&[
            "topics",
            "create",
            "s",
            "--partitions",
            "3",
            "-b",
            bs,
        ]));
        let produce = || {
            veritas(&[
                "produce",
                "-b",
                bs,
                "--topic",
                "s",
                "--file",
                &file,
                "--rate",
                if live { "500" } else { "0" },
            ])
        };
        if !live {
            run_ok(produce());
        }
        let detect = || {
            veritas(&[
                "detect",
                "-b",
                bs,
                "--topic",
                "s",
                "--group",
                "shared",
                "--from-beginning",
                "--rules",
                &rules,
                "--model",
                &model,
                "--checkpoint-interval-ms",
                "200",
                "--snapshot-every",
                "3",
            ])
            // The detector's own decisions about the table are logged at info.
            .env("VERITAS_LOG", "warn,veritas::pipeline::detector=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        };
        // Two instances share the partitions; one is stopped mid-stream and the other takes
        // its partitions over from their checkpoints.
        let mut first = detect();
        let mut second = detect();
        let producer = live.then(|| produce().stdout(Stdio::null()).spawn().unwrap());
        wait_for("some decisions", || {
            records_in(bs, "s.decisions") >= total / 3
        });
        terminate(&mut first);
        if let Some(mut p) = producer {
            assert!(p.wait().unwrap().success(), "veritas produce failed");
        }
        wait_for("the group to commit the end of s", || {
            committed_sum(bs, "shared", "s", 3) == total
        });
        terminate(&mut second);
        let mut log = String::new();
        if let Some(mut e) = second.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut log).unwrap();
        }

        let decisions = read_topic(bs, "s.decisions", records_in(bs, "s.decisions") as usize);
        let served = scores_of(&decisions);
        let ids: std::collections::HashSet<&str> = served.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(ids.len() as i64, total, "every event has a decision");
        eprintln!(
            "{total} events, {} decisions ({} repeated after the rebalance)",
            served.len(),
            served.len() as i64 - total
        );
        assert_scores_match(&served, &reference);
        log
    })
    .await
    .unwrap();
    b.shutdown().await.unwrap();
    log
}

/// Splits the lines of `file` at `fraction` of them into `first` and `second`; returns the
/// lines and where they were split.
fn split_file(file: &str, fraction: f64, first: &str, second: &str) -> (Vec<String>, usize) {
    let lines: Vec<String> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let split = (lines.len() as f64 * fraction) as usize;
    std::fs::write(first, lines[..split].join("\n") + "\n").unwrap();
    std::fs::write(second, lines[split..].join("\n") + "\n").unwrap();
    (lines, split)
}

/// The body of an HTTP/1.0 GET of `path` from `addr`.
fn http_get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    body.to_owned()
}

/// The sum of the read positions in the latest merchant table checkpoint marker of `topic`.
fn latest_table_marker(bootstrap: &str, topic: &str) -> Option<i64> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "test-table-reader")
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .ok()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(low))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut latest = None;
    let mut position = low;
    let start = Instant::now();
    while position < high {
        assert!(
            start.elapsed() < DEADLINE,
            "{topic}: read to {position} of {high}"
        );
        let Some(m) = next_record(&consumer, Duration::from_millis(100)) else {
            continue;
        };
        position = m.offset() + 1;
        if m.key() == Some(b"c".as_slice()) {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let sum = v["positions"]
                .as_object()
                .unwrap()
                .values()
                .map(|o| o.as_i64().unwrap())
                .sum();
            latest = Some(sum);
        }
    }
    latest
}

/// Retention deletes the input a detector has read; a detector started afterwards must still
/// score every new event as one engine over the whole stream does. The merchant evidence of
/// the deleted events survives only in the group's merchant table checkpoint: a detector
/// building its table from what is left of the input gives other scores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_retention_a_restarted_detector_restores_its_merchant_table_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let bs = b.bootstrap_servers();
    let bs2 = bs.clone();
    let work = dir.path().to_owned();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let bs = bs2.as_str();
        let path = |name: &str| work.join(name).to_str().unwrap().to_owned();
        let (file, rules, model) = (path("events.jsonl"), path("shared.toml"), path("m.json"));
        let (early, late) = (path("early.jsonl"), path("late.jsonl"));
        run_ok(veritas(&[
            "generate",
            "--customers",
            "500",
            "--days",
            "8",
            "--seed",
            "9",
            "--out",
            &file,
        ]));
        let (lines, split) = split_file(&file, 3.0 / 5.0, &early, &late);
        let total = lines.len() as i64;
        let reference = one_engine_reference(&file, &rules, &model, &path("offline.jsonl"));
        run_ok(veritas(&[
            "topics",
            "create",
            "r",
            "--partitions",
            "3",
            "-b",
            bs,
        ]));
        let produce = |file: &str| {
            run_ok(veritas(&[
                "produce", "-b", bs, "--topic", "r", "--file", file, "--rate", "0",
            ]));
        };
        let detect = |log: &str| {
            veritas(&[
                "detect",
                "-b",
                bs,
                "--topic",
                "r",
                "--group",
                "g",
                "--from-beginning",
                "--rules",
                &rules,
                "--model",
                &model,
                "--checkpoint-interval-ms",
                "200",
                "--table-checkpoint-interval-ms",
                "300",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .env("VERITAS_LOG", "warn,veritas::pipeline::detector=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
        };
        produce(&early);
        let mut first = detect(&path("first.log"));
        wait_for(
            "the early events committed and checkpointed in the table",
            || {
                committed_sum(bs, "g", "r", 3) == split as i64
                    && latest_table_marker(bs, "r.g.table") == Some(split as i64)
            },
        );
        terminate(&mut first);
        // Retention: every early event is gone from the input.
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            client(bs).create().unwrap();
        let mut trim = TopicPartitionList::new();
        let probe: BaseConsumer = client(bs).create().unwrap();
        for p in 0..3 {
            let (_, high) = probe
                .fetch_watermarks("r", p, Duration::from_secs(10))
                .unwrap();
            trim.add_partition_offset("r", p, Offset::Offset(high))
                .unwrap();
        }
        let deleted = rt
            .block_on(admin.delete_records(&trim, &rdkafka::admin::AdminOptions::new()))
            .unwrap();
        assert!(deleted.elements().iter().all(|e| e.error().is_ok()));
        produce(&late);
        let mut second = detect(&path("second.log"));
        wait_for("every event committed", || {
            committed_sum(bs, "g", "r", 3) == total
        });
        // The table's own counters, as /metrics shows them.
        let log = std::fs::read_to_string(path("second.log")).unwrap();
        let addr = log
            .lines()
            .find_map(|l| l.strip_prefix("metrics: http://")?.strip_suffix("/metrics"))
            .expect("the metrics address")
            .to_owned();
        // Gauges are refreshed every second: wait for the table's to appear.
        let value = |metrics: &str, name: &str| {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        };
        let applied = "veritas_detector_table_events{outcome=\"applied\"}";
        let mut metrics = String::new();
        wait_for("the table's counters on /metrics", || {
            metrics = http_get(&addr, "/metrics");
            value(&metrics, applied).is_some_and(|n| n > 0.0)
        });
        let late = value(&metrics, "veritas_detector_table_events{outcome=\"late\"}");
        assert_eq!(late, Some(0.0), "{metrics}");
        let restores = value(&metrics, "veritas_detector_table_restores_total");
        assert_eq!(restores, Some(1.0), "{metrics}");
        terminate(&mut second);
        let log = std::fs::read_to_string(path("second.log")).unwrap();
        assert!(
            log.contains("restored the merchant table from its checkpoint"),
            "the restarted detector did not restore its table:\n{log}"
        );
        let decisions = read_topic(bs, "r.decisions", records_in(bs, "r.decisions") as usize);
        let served = scores_of(&decisions);
        let ids: HashSet<&str> = served.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(ids.len() as i64, total, "every event has a decision");
        let late_ids: HashSet<String> = lines[split..]
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["transaction_id"].as_str().unwrap().to_owned()
            })
            .collect();
        let late_scored = served
            .iter()
            .filter(|(id, _)| late_ids.contains(id))
            .count();
        eprintln!(
            "{total} events, {} after retention, {} decisions",
            late_ids.len(),
            served.len()
        );
        assert!(late_scored >= late_ids.len());
        assert_scores_match(&served, &reference);
    })
    .await
    .unwrap();
    b.shutdown().await.unwrap();
}

/// Partitions added to the input while a detector runs: the group assigns them, their state
/// partitions are created, the merchant table reads them, and every event — before and after
/// the growth — gets a decision (a card whose key now maps to a new partition starts with no
/// history there, as with any keyed Kafka consumer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detector_follows_partitions_added_to_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let bs = b.bootstrap_servers();
    let bs2 = bs.clone();
    let work = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let bs = bs2.as_str();
        let path = |name: &str| work.join(name).to_str().unwrap().to_owned();
        let (file, before, after) = (path("events.jsonl"), path("a.jsonl"), path("b.jsonl"));
        run_ok(veritas(&[
            "generate",
            "--customers",
            "200",
            "--days",
            "3",
            "--seed",
            "2",
            "--out",
            &file,
        ]));
        let (lines, split) = split_file(&file, 0.5, &before, &after);
        let total = lines.len() as i64;
        run_ok(veritas(&[
            "topics",
            "create",
            "grow",
            "--partitions",
            "2",
            "-b",
            bs,
        ]));
        let produce = |file: &str| {
            run_ok(veritas(&[
                "produce", "-b", bs, "--topic", "grow", "--file", file, "--rate", "0",
            ]));
        };
        let mut detector = veritas(&[
            "detect",
            "-b",
            bs,
            "--topic",
            "grow",
            "--group",
            "g",
            "--from-beginning",
            "--checkpoint-interval-ms",
            "200",
        ])
        .env("VERITAS_LOG", "warn,veritas::pipeline=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(path("detect.log")).unwrap())
        .spawn()
        .unwrap();
        let log = || std::fs::read_to_string(path("detect.log")).unwrap();
        produce(&before);
        wait_for("the first half committed", || {
            committed_sum(bs, "g", "grow", 2) == split as i64
        });
        run_ok(veritas(&[
            "topics",
            "alter-config",
            "grow",
            "--partitions",
            "3",
            "-b",
            bs,
        ]));
        produce(&after);
        let in_new = || {
            let consumer: BaseConsumer = client(bs).create().unwrap();
            consumer
                .fetch_watermarks("grow", 2, Duration::from_secs(10))
                .map_or(0, |w| w.1)
        };
        assert!(in_new() > 0, "no event was keyed to the new partition");
        let start = Instant::now();
        while committed_sum(bs, "g", "grow", 3) != total {
            assert!(
                detector.try_wait().unwrap().is_none(),
                "the detector exited after the input grew:\n{}",
                log()
            );
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for every event to be committed:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        terminate(&mut detector);
        let log = log();
        assert!(
            log.contains("the merchant table reads the new partitions too"),
            "the table reader did not take the new partition:\n{log}"
        );
        let decisions = read_topic(
            bs,
            "grow.decisions",
            records_in(bs, "grow.decisions") as usize,
        );
        let ids: HashSet<String> = transaction_ids(&decisions).into_iter().collect();
        assert_eq!(ids.len() as i64, total, "every event has a decision");
    })
    .await
    .unwrap();
    b.shutdown().await.unwrap();
}
