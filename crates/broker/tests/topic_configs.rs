//! Topic configs that decide what a produce may append, through a real client (librdkafka) and
//! a raw client where the answer's details matter (Kafka's per-record errors):
//!
//! * `message.timestamp.before.max.ms` / `after.max.ms` and the deprecated
//!   `message.timestamp.difference.max.ms`: a CreateTime too far from the broker's clock is
//!   INVALID_TIMESTAMP, the offending records named; LogAppendTime topics are not checked;
//! * `min.insync.replicas` above the one replica a single node has: acks=all fails
//!   NOT_ENOUGH_REPLICAS, acks=1 succeeds, as on a Kafka topic short of replicas;
//! * both take effect when altered at runtime.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

const HOUR_MS: i64 = 3_600_000;
const INVALID_TIMESTAMP: i16 = 32;
const NOT_ENOUGH_REPLICAS: i16 = 19;

async fn create(admin: &AdminClient<DefaultClientContext>, topic: &str, configs: &[(&str, &str)]) {
    let mut t = NewTopic::new(topic, 1, rdkafka::admin::TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    for r in admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
}

async fn alter(admin: &AdminClient<DefaultClientContext>, topic: &str, key: &str, value: &str) {
    let change = AlterConfig::new(ResourceSpecifier::Topic(topic)).set(key, value);
    for r in admin
        .alter_configs([&change], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
}

/// A producer that reports the broker's first answer: no retries, no idempotence.
fn producer(broker: &veritas_broker::Broker, acks: &str) -> FutureProducer {
    client_config(broker)
        .set("acks", acks)
        .set("enable.idempotence", "false")
        .set("message.send.max.retries", "0")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap()
}

/// Sends one record with `timestamp` and returns the broker's error, if any.
async fn send(p: &FutureProducer, topic: &str, timestamp: i64) -> Option<RDKafkaErrorCode> {
    let record = FutureRecord::to(topic)
        .key("card")
        .payload("{}")
        .partition(0)
        .timestamp(timestamp);
    match p.send(record, Duration::from_secs(30)).await {
        Ok(_) => None,
        Err((KafkaError::MessageProduction(code), _)) => Some(code),
        Err((e, _)) => panic!("unexpected failure: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_outside_the_topics_window_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let admin: AdminClient<_> = client_config(&broker).create().unwrap();
    // Up to an hour in the past and a minute in the future.
    create(
        &admin,
        "window",
        &[
            ("message.timestamp.before.max.ms", "3600000"),
            ("message.timestamp.after.max.ms", "60000"),
        ],
    )
    .await;
    // The deprecated key alone bounds both sides.
    create(
        &admin,
        "difference",
        &[("message.timestamp.difference.max.ms", "3600000")],
    )
    .await;
    // LogAppendTime topics replace the timestamp, so Kafka does not check it.
    create(
        &admin,
        "appendtime",
        &[
            ("message.timestamp.difference.max.ms", "1000"),
            ("message.timestamp.type", "LogAppendTime"),
        ],
    )
    .await;
    create(&admin, "unbounded", &[]).await;

    let p = producer(&broker, "all");
    let now = now_ms();
    let invalid = Some(RDKafkaErrorCode::InvalidTimestamp);
    assert_eq!(send(&p, "window", now).await, None);
    assert_eq!(send(&p, "window", now - HOUR_MS / 2).await, None);
    assert_eq!(send(&p, "window", now - 2 * HOUR_MS).await, invalid);
    assert_eq!(send(&p, "window", now + 10 * 60_000).await, invalid);
    assert_eq!(send(&p, "difference", now - 2 * HOUR_MS).await, invalid);
    assert_eq!(send(&p, "difference", now + 2 * HOUR_MS).await, invalid);
    assert_eq!(send(&p, "difference", now + HOUR_MS / 2).await, None);
    assert_eq!(send(&p, "appendtime", now - 48 * HOUR_MS).await, None);
    assert_eq!(send(&p, "unbounded", 1_000).await, None);

    // Altered at runtime: the window now also refuses what it took before.
    alter(&admin, "window", "message.timestamp.before.max.ms", "60000").await;
    assert_eq!(send(&p, "window", now_ms() - HOUR_MS / 2).await, invalid);
    assert_eq!(send(&p, "window", now_ms()).await, None);

    // Only the accepted records were appended: 3 to "window", 1 to "difference".
    let consumer: rdkafka::consumer::BaseConsumer = client_config(&broker).create().unwrap();
    use rdkafka::consumer::Consumer;
    for (topic, n) in [("window", 3), ("difference", 1), ("appendtime", 1)] {
        let (_, high) = consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(30))
            .unwrap();
        assert_eq!(high, n, "{topic}");
    }
}

/// One lz4-compressed v2 batch of records with the given timestamps.
fn batch(timestamps: &[i64]) -> Bytes {
    let records: Vec<_> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            plain_record(
                i as i64,
                t,
                Some(Bytes::from_static(b"k")),
                Some(Bytes::from_static(b"v")),
            )
        })
        .collect();
    encode_batch(&records, Compression::Lz4)
}

#[tokio::test]
async fn an_invalid_timestamp_names_the_records_and_appends_none() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let admin: AdminClient<_> = client_config(&broker).create().unwrap();
    create(
        &admin,
        "window",
        &[("message.timestamp.difference.max.ms", "3600000")],
    )
    .await;
    let mut c = RawClient::connect(&broker).await;
    let now = now_ms();
    // Records 1 and 3 of the (compressed) batch are out of range; the others are fine.
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("window")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(&[
                    now,
                    now - 2 * HOUR_MS,
                    now + 1_000,
                    now + 2 * HOUR_MS,
                ])))])]);
    let r = c.call(9, &req).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (INVALID_TIMESTAMP, -1));
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![1, 3]);
    let message = p.record_errors[0]
        .batch_index_error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(
        message.contains(&(now - 2 * HOUR_MS).to_string()),
        "{message}"
    );
    assert!(p.error_message.is_some());

    // The whole batch was refused: the same request with good timestamps starts at 0.
    let good = req.clone().with_topic_data(vec![TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("window")))
        .with_partition_data(vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch(&[now_ms(), now_ms()])))])]);
    let r = c.call(9, &good).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    assert!(p.record_errors.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_insync_replicas_above_one_refuses_acks_all() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let admin: AdminClient<_> = client_config(&broker).create().unwrap();
    create(&admin, "strict", &[("min.insync.replicas", "2")]).await;
    create(&admin, "relaxed", &[]).await;

    let all = producer(&broker, "all");
    let leader = producer(&broker, "1");
    let now = now_ms();
    assert_eq!(
        send(&all, "strict", now).await,
        Some(RDKafkaErrorCode::NotEnoughReplicas)
    );
    assert_eq!(
        send(&leader, "strict", now).await,
        None,
        "acks=1 needs no ISR"
    );
    assert_eq!(send(&all, "relaxed", now).await, None);

    // The raw answer: the error, base offset -1, and a message saying why.
    let mut c = RawClient::connect(&broker).await;
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("strict")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(&[now])))])]);
    let r = c.call(9, &req).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (NOT_ENOUGH_REPLICAS, -1));
    let message = p.error_message.as_ref().map(|m| m.to_string());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("min.insync.replicas")),
        "{message:?}"
    );

    // Lowered at runtime: acks=all goes through again.
    alter(&admin, "strict", "min.insync.replicas", "1").await;
    assert_eq!(send(&all, "strict", now_ms()).await, None);
}
