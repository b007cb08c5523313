//! Log compaction through real clients: librdkafka produces keyed records to a
//! `cleanup.policy=compact` topic of the in-process broker, the broker's log cleaner compacts
//! the closed segments in the background, and a consumer reading from the start sees the
//! latest value of every key (and gaps in the offsets where superseded records were).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "profiles";
const KEYS: usize = 10;
const ROUNDS: usize = 30;

/// Every record of partition 0 from the log start to the high watermark: (offset, key, value).
fn read_all(broker: &veritas_broker::Broker) -> Vec<(i64, String, Option<String>)> {
    let consumer: BaseConsumer = client_config(broker)
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (_, high) = consumer
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(30))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let start = std::time::Instant::now();
    while out.last().is_none_or(|(o, _, _)| *o + 1 < high) {
        assert!(start.elapsed() < DEADLINE, "timed out reading to {high}");
        if let Some(m) = next_record(&consumer, Duration::from_millis(200)) {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            out.push((
                m.offset(),
                m.key().map(text).unwrap_or_default(),
                m.payload().map(text),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_the_latest_value_of_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let admin: AdminClient<_> = client_config(&broker).create().unwrap();
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "2048")
        .set("delete.retention.ms", "0");
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let producer: FutureProducer = client_config(&broker)
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let send = |key: String, value: Option<String>| {
        let p = producer.clone();
        async move {
            let mut r = FutureRecord::to(TOPIC).key(&key).partition(0);
            if let Some(v) = &value {
                r = r.payload(v);
            }
            p.send(r, Duration::from_secs(30)).await.map(|_| ())
        }
    };
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            let value = (round + 1 < ROUNDS || k != 3).then(|| format!("value {round} of key {k}"));
            send(format!("key-{k}"), value).await.unwrap();
        }
    }
    // One more record so that the last round is in a closed segment too.
    for i in 0..40 {
        send(
            "filler".into(),
            Some(format!("filler {i} {}", "x".repeat(40))),
        )
        .await
        .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let produced = ROUNDS * KEYS + 40;

    // A record without a key is refused, as Kafka refuses it on a compacted topic.
    let keyless = producer
        .send(
            FutureRecord::<(), _>::to(TOPIC)
                .payload("no key")
                .partition(0),
            Duration::from_secs(30),
        )
        .await;
    match keyless {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord), _)) => {}
        other => panic!("keyless record on a compacted topic: {other:?}"),
    }

    // The cleaner runs in the background; wait until a consumer sees the compacted log.
    let records = wait_for("compaction", || async {
        let r = tokio::task::block_in_place(|| read_all(&broker));
        (r.len() < produced / 2).then_some(r)
    })
    .await;
    let mut latest: HashMap<&str, (i64, Option<&str>)> = HashMap::new();
    for (offset, key, value) in &records {
        latest.insert(key, (*offset, value.as_deref()));
    }
    for k in 0..KEYS {
        let key = format!("key-{k}");
        match latest.get(key.as_str()) {
            Some((_, Some(v))) => {
                assert_ne!(k, 3, "key-3 was deleted, yet reads {v}");
                assert_eq!(*v, format!("value {} of key {k}", ROUNDS - 1));
            }
            // The tombstone of key-3 is read, or already removed (delete.retention.ms=0).
            Some((_, None)) | None => assert_eq!(k, 3, "key-{k} lost"),
        }
    }
    assert!(
        records.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets increase"
    );
    assert!(
        records.windows(2).any(|w| w[1].0 > w[0].0 + 1),
        "superseded records leave gaps"
    );
    // The log end is unchanged: new records go on at the next offset.
    let last = records.last().map(|r| r.0).unwrap();
    assert_eq!(last, produced as i64 - 1);
    broker.shutdown().await.unwrap();
}
