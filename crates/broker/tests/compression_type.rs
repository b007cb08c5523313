//! Topic `compression.type`: batches of another codec are rewritten with the topic's codec
//! before they are stored (records, producer fields and idempotence intact); `producer` keeps
//! them as sent; decompression is bounded. librdkafka's 0081_admin creates topics with it.

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn records(n: usize, producer_id: i64, sequence: i32) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: if producer_id >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Without a producer id the batch's base sequence is -1; kafka-protocol keeps one
            // batch while offset - sequence stays the same.
            sequence: if producer_id >= 0 {
                sequence + i as i32
            } else {
                i as i32 - 1
            },
            timestamp: now_ms() + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}-{}", "x".repeat(i % 40)))),
            headers: [(s("h"), Some(Bytes::from(format!("{i}"))))]
                .into_iter()
                .collect(),
        })
        .collect()
}

async fn create(c: &mut RawClient, topic: &str, compression: Option<&str>) {
    let configs = compression
        .map(|v| {
            vec![CreatableTopicConfig::default()
                .with_name(s("compression.type"))
                .with_value(Some(s(v)))]
        })
        .unwrap_or_default();
    let r = c
        .call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(s(topic)))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(configs)]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0, "create {topic}");
}

async fn produce(c: &mut RawClient, topic: &str, batch: Bytes) -> (i16, i64) {
    let r = c
        .call(
            9,
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch))])]),
        )
        .await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Every stored batch, as (codec, records).
async fn stored(c: &mut RawClient, topic: &str) -> Vec<(Compression, Vec<Record>)> {
    let r = c
        .call(
            12,
            &FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(64 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(s(topic)))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_partition_max_bytes(64 << 20)])]),
        )
        .await;
    let mut data = r.responses[0].partitions[0].records.clone().unwrap();
    RecordBatchDecoder::decode_all(&mut data)
        .unwrap()
        .into_iter()
        .map(|set| (set.compression, set.records))
        .collect()
}

#[tokio::test]
async fn batches_are_rewritten_with_the_topic_codec() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    let pid = c
        .call(
            4,
            &InitProducerIdRequest::default().with_transactional_id(None),
        )
        .await
        .producer_id
        .0;

    for (topic_codec, expected) in [
        (Some("gzip"), Compression::Gzip),
        (Some("lz4"), Compression::Lz4),
        (Some("snappy"), Compression::Snappy),
        (Some("zstd"), Compression::Zstd),
        (Some("uncompressed"), Compression::None),
        (None, Compression::Snappy), // producer: as sent
    ] {
        let topic = format!("ct-{}", topic_codec.unwrap_or("producer"));
        create(&mut c, &topic, topic_codec).await;
        // A plain batch, a snappy one, and an idempotent zstd one sent twice (a retry).
        let plain = records(20, -1, -1);
        let snappy = records(7, -1, -1);
        let idem = records(5, pid, 0);
        let mut sent = Vec::new();
        for (batch, codec) in [
            (&plain, Compression::None),
            (&snappy, Compression::Snappy),
            (&idem, Compression::Zstd),
        ] {
            let (code, _) = produce(&mut c, &topic, encode_batch(batch, codec)).await;
            assert_eq!(code, 0, "{topic} {codec:?}");
            sent.push((codec, batch.clone()));
        }
        let (code, base) = produce(&mut c, &topic, encode_batch(&idem, Compression::Zstd)).await;
        assert_eq!((code, base), (0, 27), "{topic}: the retry is a duplicate");

        let batches = stored(&mut c, &topic).await;
        assert_eq!(batches.len(), 3, "{topic}");
        let mut offset = 0;
        for ((codec, got), (sent_codec, want)) in batches.iter().zip(&sent) {
            let expected = if topic_codec.is_some() {
                expected
            } else {
                *sent_codec
            };
            assert_eq!(*codec, expected, "{topic}");
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                assert_eq!(g.offset, offset, "{topic}");
                offset += 1;
                assert_eq!(
                    (&g.key, &g.value, &g.headers, g.timestamp),
                    (&w.key, &w.value, &w.headers, w.timestamp)
                );
                assert_eq!(
                    (g.producer_id, g.producer_epoch, g.sequence),
                    (w.producer_id, w.producer_epoch, w.sequence),
                    "{topic}: producer fields kept"
                );
            }
        }
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn recompression_is_bounded_and_corruption_still_detected() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    create(&mut c, "bounded", Some("lz4")).await;

    // 70 MiB of zeros in a gzip batch of a few dozen KiB: more than the 64 MiB budget.
    let mut bomb = records(1, -1, -1);
    bomb[0].value = Some(Bytes::from(vec![0u8; 70 << 20]));
    let bomb = encode_batch(&bomb, Compression::Gzip);
    assert!(bomb.len() < 1 << 20);
    let (code, _) = produce(&mut c, "bounded", bomb).await;
    assert_eq!(code, 10, "MESSAGE_TOO_LARGE");

    // A corrupted batch is not "repaired" by re-encoding: the CRC check still refuses it.
    let mut bad = encode_batch(&records(3, -1, -1), Compression::Gzip).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    let (code, _) = produce(&mut c, "bounded", Bytes::from(bad)).await;
    assert_eq!(code, 2, "CORRUPT_MESSAGE");
    assert!(stored(&mut c, "bounded").await.is_empty());
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn alter_configs_of_a_missing_topic_is_unknown_before_any_validation() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    create(&mut c, "here", None).await;
    let r = c
        .call(
            1,
            &AlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("here"))
                    .with_configs(vec![AlterableConfig::default()
                        .with_name(s("compression.type"))
                        .with_value(Some(s("gzip")))]),
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("missing"))
                    .with_configs(vec![AlterableConfig::default()
                        .with_name(s("offset.metadata.max.bytes"))
                        .with_value(Some(s("12345")))]),
            ]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[1].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    // And the valid change took effect: the next batch is stored gzip.
    let (code, _) = produce(
        &mut c,
        "here",
        encode_batch(&records(3, -1, -1), Compression::None),
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(stored(&mut c, "here").await[0].0, Compression::Gzip);
    broker.shutdown().await.unwrap();
}
