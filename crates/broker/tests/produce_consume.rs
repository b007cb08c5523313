//! Real clients against the real broker: librdkafka (through rdkafka) producing and consuming
//! over TCP to an in-process broker on an ephemeral port.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

async fn create_topic(
    broker: &veritas_broker::Broker,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = client_config(broker).create().unwrap();
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let r = admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .unwrap();
    assert!(r[0].is_ok(), "create {name}: {:?}", r[0]);
}

fn producer(broker: &veritas_broker::Broker, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = client_config(broker);
    c.set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().unwrap()
}

/// key, value, offset, timestamp, headers
type Consumed = (Option<Vec<u8>>, Vec<u8>, i64, i64, Vec<(String, Vec<u8>)>);

/// Reads `n` messages of one partition from `offset` with an assigned (group-less) consumer.
fn consume(
    broker: &veritas_broker::Broker,
    topic: &str,
    partition: i32,
    offset: i64,
    n: usize,
) -> Vec<Consumed> {
    let consumer: BaseConsumer = client_config(broker)
        .set("group.id", "unused-assign-only")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let start = std::time::Instant::now();
    while out.len() < n {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out: got {} of {n}",
            out.len()
        );
        let Some(m) = next_record(&consumer, Duration::from_millis(200)) else {
            continue;
        };
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        out.push((
            m.key().map(|k| k.to_vec()),
            m.payload().unwrap_or_default().to_vec(),
            m.offset(),
            m.timestamp().to_millis().unwrap_or(-1),
            headers,
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_with_every_compression_codec() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&broker, &topic, 1, &[]).await;
        let p = producer(&broker, &[("compression.type", codec), ("linger.ms", "20")]);
        let sends: Vec<_> = (0..500)
            .map(|i| {
                let payload = format!("{codec} payload {i} {}", "x".repeat(i % 50));
                let key = format!("k{i}");
                p.send_result(
                    FutureRecord::to(&topic)
                        .key(&key)
                        .payload(&payload)
                        .partition(0),
                )
                .unwrap()
            })
            .collect();
        for s in sends {
            s.await.unwrap().unwrap();
        }
        let got = consume(&broker, &topic, 0, 0, 500);
        for (i, (key, value, offset, _, _)) in got.iter().enumerate() {
            assert_eq!(*offset, i as i64);
            assert_eq!(key.as_deref(), Some(format!("k{i}").as_bytes()));
            assert_eq!(
                value,
                format!("{codec} payload {i} {}", "x".repeat(i % 50)).as_bytes()
            );
        }
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_headers_and_timestamps_are_preserved() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    create_topic(&broker, "meta", 1, &[]).await;
    let p = producer(&broker, &[]);
    let ts = now_ms() - 1_000;
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "veritas-label",
            value: Some("1"),
        })
        .insert(Header {
            key: "empty",
            value: Some(""),
        });
    p.send(
        FutureRecord::to("meta")
            .key("card-42")
            .payload("{}")
            .timestamp(ts)
            .headers(headers)
            .partition(0),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    p.send(
        FutureRecord::<(), _>::to("meta")
            .payload("no key")
            .timestamp(ts + 1)
            .partition(0),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let got = consume(&broker, "meta", 0, 0, 2);
    assert_eq!(got[0].0.as_deref(), Some(&b"card-42"[..]));
    assert_eq!(got[0].3, ts);
    assert_eq!(
        got[0].4,
        vec![
            ("veritas-label".to_owned(), b"1".to_vec()),
            ("empty".to_owned(), vec![])
        ]
    );
    assert_eq!(got[1].0, None);
    assert_eq!(got[1].1, b"no key");
    assert_eq!(got[1].3, ts + 1);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_from_the_middle_of_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    create_topic(&broker, "mid", 1, &[]).await;
    // A long linger makes all 100 records one batch.
    let p = producer(
        &broker,
        &[("linger.ms", "200"), ("batch.num.messages", "1000")],
    );
    let sends: Vec<_> = (0..100)
        .map(|i| {
            p.send_result(
                FutureRecord::<(), _>::to("mid")
                    .payload(&format!("m{i}"))
                    .partition(0),
            )
            .unwrap()
        })
        .collect();
    for s in sends {
        s.await.unwrap().unwrap();
    }
    let got = consume(&broker, "mid", 0, 57, 43);
    assert_eq!(got[0].2, 57, "first record returned is the one asked for");
    assert_eq!(got[0].1, b"m57");
    assert_eq!(got.last().unwrap().1, b"m99");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp_earliest_and_latest() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    create_topic(&broker, "times", 1, &[]).await;
    let p = producer(&broker, &[("linger.ms", "100")]);
    let base = now_ms() - 60_000;
    // Ten records one second apart, several per batch.
    let sends: Vec<_> = (0..10)
        .map(|i| {
            p.send_result(
                FutureRecord::<(), _>::to("times")
                    .payload("x")
                    .timestamp(base + i * 1000)
                    .partition(0),
            )
            .unwrap()
        })
        .collect();
    for s in sends {
        s.await.unwrap().unwrap();
    }
    let consumer: BaseConsumer = client_config(&broker)
        .set("group.id", "ts")
        .create()
        .unwrap();
    let lookup = |ts: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, Offset::Offset(ts))
            .unwrap();
        let r = consumer
            .offsets_for_times(tpl, Duration::from_secs(30))
            .unwrap();
        r.find_partition("times", 0).unwrap().offset()
    };
    assert_eq!(lookup(base), Offset::Offset(0));
    assert_eq!(
        lookup(base + 3500),
        Offset::Offset(4),
        "first record at or after the time"
    );
    assert_eq!(lookup(base + 9000), Offset::Offset(9));
    assert_eq!(lookup(base + 9001), Offset::End, "nothing that recent");
    let (low, high) = consumer
        .fetch_watermarks("times", 0, Duration::from_secs(30))
        .unwrap();
    assert_eq!((low, high), (0, 10));
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_create_on_and_off() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let p = producer(&broker, &[]);
    p.send(
        FutureRecord::<(), _>::to("born-on-demand").payload("hi"),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let t = broker
        .shared()
        .cluster
        .topic("born-on-demand")
        .expect("auto-created");
    assert_eq!(t.partition_count(), 1, "Kafka's num.partitions default");
    broker.shutdown().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.auto_create_topics = false;
    let broker = start(c).await;
    let p = producer(&broker, &[("message.timeout.ms", "2000")]);
    let r = p
        .send(
            FutureRecord::<(), _>::to("never").payload("hi"),
            Duration::from_secs(30),
        )
        .await;
    assert!(
        r.is_err(),
        "produce to a missing topic must fail when auto-creation is off"
    );
    assert!(broker.shared().cluster.topic("never").is_none());
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    create_topic(&broker, "durable", 3, &[("retention.ms", "86400000")]).await;
    let p = producer(&broker, &[("enable.idempotence", "true")]);
    let sends: Vec<_> = (0..300)
        .map(|i| {
            p.send_result(
                FutureRecord::to("durable")
                    .key(&format!("k{i}"))
                    .payload(&format!("v{i}"))
                    .partition(i % 3),
            )
            .unwrap()
        })
        .collect();
    for s in sends {
        s.await.unwrap().unwrap();
    }
    drop(p);
    broker.shutdown().await.unwrap();
    assert!(dir
        .path()
        .join(veritas_broker::server::CLEAN_SHUTDOWN_MARKER)
        .exists());

    let broker = start(config(dir.path())).await;
    let t = broker.shared().cluster.topic("durable").unwrap();
    assert_eq!(t.partition_count(), 3);
    assert_eq!(
        t.config()
            .overrides()
            .get("retention.ms")
            .map(String::as_str),
        Some("86400000")
    );
    for part in 0..3 {
        let got = consume(&broker, "durable", part, 0, 100);
        for (j, m) in got.iter().enumerate() {
            let i = part as usize + 3 * j;
            assert_eq!(m.1, format!("v{i}").as_bytes());
        }
    }
    // The idempotent producer's state survived too: a new producer can keep appending.
    let p = producer(&broker, &[("enable.idempotence", "true")]);
    let d = p
        .send(
            FutureRecord::to("durable")
                .key("after")
                .payload("restart")
                .partition(0),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!((d.partition, d.offset), (0, 100));
    drop(p);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    // Tiny segments and a retention of 1 s on records timestamped in the past.
    create_topic(
        &broker,
        "short",
        1,
        &[("segment.bytes", "1024"), ("retention.ms", "1000")],
    )
    .await;
    let p = producer(&broker, &[("linger.ms", "0")]);
    let old = cluster_now() - 3_600_000;
    for i in 0..50 {
        p.send(
            FutureRecord::<(), _>::to("short")
                .payload(&"r".repeat(100))
                .timestamp(old + i)
                .partition(0),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    let part = broker.shared().cluster.partition("short", 0).unwrap();
    let start = wait_for("retention to delete segments", || {
        let part = part.clone();
        async move { (part.log.log_start_offset() > 0).then(|| part.log.log_start_offset()) }
    })
    .await;
    assert!(start <= 50);
    assert!(part.log.segment_count() >= 1);
    let consumer: BaseConsumer = client_config(&broker)
        .set("group.id", "r")
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks("short", 0, Duration::from_secs(30))
        .unwrap();
    assert_eq!(high, 50);
    assert!(low > 0, "low watermark advanced past deleted segments");
    broker.shutdown().await.unwrap();
}

fn cluster_now() -> i64 {
    veritas_broker::cluster::now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_flush_and_metadata_agree_under_many_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    create_topic(&broker, "wide", 6, &[]).await;
    let p = producer(&broker, &[("acks", "all"), ("enable.idempotence", "true")]);
    let sends: Vec<_> = (0..600)
        .map(|i| {
            p.send_result(
                FutureRecord::to("wide")
                    .key(&format!("card-{i}"))
                    .payload("x"),
            )
            .unwrap()
        })
        .collect();
    let mut per_partition = [0usize; 6];
    for s in sends {
        let partition = s.await.unwrap().unwrap().partition;
        per_partition[partition as usize] += 1;
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let total: i64 = (0..6)
        .map(|i| {
            broker
                .shared()
                .cluster
                .partition("wide", i)
                .unwrap()
                .log
                .log_end_offset()
        })
        .sum();
    assert_eq!(total, 600);
    assert!(
        per_partition.iter().all(|n| *n > 0),
        "keys spread over every partition: {per_partition:?}"
    );
    broker.shutdown().await.unwrap();
}
