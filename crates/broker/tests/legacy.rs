//! The request versions of Kafka 0.8–0.10 clients against the in-process broker, driven with a
//! raw client: Produce v0–2 (message sets, every codec, including byte-exact requests written
//! by sarama 1.22.1, the tutorial's client) are stored as v2 batches that modern fetchers read;
//! v2 batches written by a modern producer come back to Fetch v0–3 as message sets of the
//! right magic; ListOffsets v0; OffsetCommit v0/v1 and OffsetFetch v0.

mod common;

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, CreateTopicsRequest, FetchRequest,
    OffsetFetchRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression as BatchCompression, Record, RecordBatchDecoder};
use tokio::io::AsyncWriteExt;
use veritas_legacy::{
    decode_message_set, encode_message_set, Compression, Limits, Magic, Message, SetSource,
    TimestampType,
};

const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNSUPPORTED_VERSION: i16 = 35;

/// Request bodies written by sarama 1.22.1 (see that directory's README): four messages for
/// `transactions`/2, keys `card-0`, null, `card-2`, `card-3`, values `{"amount":10i}` (the
/// last null), v1 timestamps `SARAMA_TS + i`.
fn sarama(name: &str) -> Bytes {
    let path = format!(
        "{}/../legacy/tests/data/sarama-1.22.1/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}
const SARAMA_KEYS: [Option<&[u8]>; 4] = [Some(b"card-0"), None, Some(b"card-2"), Some(b"card-3")];
const SARAMA_VALUES: [Option<&[u8]>; 4] = [
    Some(br#"{"amount":100}"#),
    Some(br#"{"amount":101}"#),
    Some(br#"{"amount":102}"#),
    None,
];
const SARAMA_TS: i64 = 1_600_000_000_123;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.into()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A connection speaking the legacy versions: request header v1, response header v0.
struct Legacy {
    c: RawClient,
    correlation: i32,
}

impl Legacy {
    async fn connect(broker: &veritas_broker::Broker) -> Legacy {
        Legacy {
            c: RawClient::connect(broker).await,
            correlation: 1000,
        }
    }

    async fn send(&mut self, api: ApiKey, version: i16, body: &[u8]) -> i32 {
        self.correlation += 1;
        let mut f = BytesMut::new();
        f.put_i32(0);
        f.put_i16(api as i16);
        f.put_i16(version);
        f.put_i32(self.correlation);
        f.put_i16(6);
        f.put_slice(b"legacy");
        f.put_slice(body);
        let len = (f.len() - 4) as i32;
        f[..4].copy_from_slice(&len.to_be_bytes());
        self.c.stream.write_all(&f).await.unwrap();
        self.correlation
    }

    /// Sends a request and returns its response body, checking the correlation id.
    async fn call(&mut self, api: ApiKey, version: i16, body: &[u8]) -> Bytes {
        let id = self.send(api, version, body).await;
        let (header, body) = self.c.receive(0).await.expect("answered");
        assert_eq!(header.correlation_id, id, "{api:?} v{version}");
        body
    }
}

/// Checked big-endian reads of a response body (a short body fails the test).
struct Rd(Bytes);

impl Rd {
    fn i16(&mut self) -> i16 {
        assert!(self.0.remaining() >= 2, "short response");
        self.0.get_i16()
    }
    fn i32(&mut self) -> i32 {
        assert!(self.0.remaining() >= 4, "short response");
        self.0.get_i32()
    }
    fn i64(&mut self) -> i64 {
        assert!(self.0.remaining() >= 8, "short response");
        self.0.get_i64()
    }
    fn string(&mut self) -> String {
        let n = self.i16();
        if n < 0 {
            return String::new();
        }
        String::from_utf8(self.0.split_to(n as usize).to_vec()).unwrap()
    }
    fn nullable_string(&mut self) -> Option<String> {
        let n = self.i16();
        (n >= 0).then(|| String::from_utf8(self.0.split_to(n as usize).to_vec()).unwrap())
    }
    fn bytes(&mut self) -> Bytes {
        let n = self.i32();
        assert!(n >= 0, "null bytes");
        self.0.split_to(n as usize)
    }
    fn done(&self) {
        assert!(self.0.is_empty(), "{} trailing bytes", self.0.len());
    }
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

/// A Produce v0–2 body: one topic, the given partitions and message sets.
fn produce_body(acks: i16, topic: &str, sets: &[(i32, &[u8])]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(acks);
    b.put_i32(10_000);
    b.put_i32(1);
    put_str(&mut b, topic);
    b.put_i32(sets.len() as i32);
    for (p, set) in sets {
        b.put_i32(*p);
        b.put_i32(set.len() as i32);
        b.put_slice(set);
    }
    b.to_vec()
}

#[derive(Debug, PartialEq)]
struct ProduceAnswer {
    partition: i32,
    error: i16,
    base_offset: i64,
}

fn parse_produce(version: i16, body: Bytes) -> Vec<ProduceAnswer> {
    let mut r = Rd(body);
    let mut out = Vec::new();
    for _ in 0..r.i32() {
        r.string();
        for _ in 0..r.i32() {
            let partition = r.i32();
            let error = r.i16();
            let base_offset = r.i64();
            if version >= 2 {
                assert_eq!(r.i64(), -1, "log append time of a create-time topic");
            }
            out.push(ProduceAnswer {
                partition,
                error,
                base_offset,
            });
        }
    }
    if version >= 1 {
        assert_eq!(r.i32(), 0, "throttle");
    }
    r.done();
    out
}

/// A Fetch v0–3 body for one partition.
fn fetch_body(
    version: i16,
    topic: &str,
    partition: i32,
    offset: i64,
    max: i32,
    wait: i32,
) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i32(-1);
    b.put_i32(wait);
    b.put_i32(1);
    if version >= 3 {
        b.put_i32(max);
    }
    b.put_i32(1);
    put_str(&mut b, topic);
    b.put_i32(1);
    b.put_i32(partition);
    b.put_i64(offset);
    b.put_i32(max);
    b.to_vec()
}

struct FetchAnswer {
    error: i16,
    high_watermark: i64,
    set: Bytes,
}

fn parse_fetch(version: i16, body: Bytes) -> FetchAnswer {
    let mut r = Rd(body);
    if version >= 1 {
        assert_eq!(r.i32(), 0, "throttle");
    }
    assert_eq!(r.i32(), 1, "one topic");
    r.string();
    assert_eq!(r.i32(), 1, "one partition");
    r.i32();
    let error = r.i16();
    let high_watermark = r.i64();
    let set = r.bytes();
    r.done();
    FetchAnswer {
        error,
        high_watermark,
        set,
    }
}

fn magic_of(version: i16) -> Magic {
    if version >= 2 {
        Magic::V1
    } else {
        Magic::V0
    }
}

/// Decodes a fetched message set, checking every message has the magic `version` calls for
/// and that the broker sent it uncompressed.
fn messages(version: i16, set: &Bytes) -> Vec<Message> {
    let mut at = 0;
    while at + 17 <= set.len() {
        assert_eq!(
            set[at + 16] as i8,
            magic_of(version).value(),
            "Fetch v{version}: magic"
        );
        let size = i32::from_be_bytes(set[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 12 + size;
    }
    let decoded = decode_message_set(set, SetSource::Fetch, &Limits::default()).unwrap();
    assert_eq!(
        decoded.compression,
        Compression::None,
        "down-converted sets are plain"
    );
    assert_eq!(decoded.partial_tail, 0, "whole messages only");
    decoded.messages
}

/// Creates a topic without time retention: sarama's vectors carry 2020 timestamps, which the
/// default seven days would delete under the test's feet.
async fn create(c: &mut RawClient, topic: &str, partitions: i32) {
    create_topic(c, topic, partitions, &[("retention.ms", "-1")]).await;
}

/// Fetches everything of a partition with a modern Fetch at `version`: the raw record bytes.
async fn modern_fetch(
    c: &mut RawClient,
    version: i16,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Bytes {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(16 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(16 << 20)])]);
    let r = c.call(version, &req).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "Fetch v{version}");
    p.records.clone().unwrap_or_default()
}

fn modern_batch(
    records: &[(Option<&str>, &str, i64)],
    first_offset: i64,
    codec: BatchCompression,
) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v, ts))| Record {
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"dropped for old fetchers")),
            )]
            .into_iter()
            .collect(),
            ..plain_record(
                first_offset + i as i64,
                *ts,
                k.map(|k| Bytes::copy_from_slice(k.as_bytes())),
                Some(Bytes::copy_from_slice(v.as_bytes())),
            )
        })
        .collect();
    encode_batch(&records, codec)
}

#[tokio::test]
async fn legacy_versions_are_advertised() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    let r = c.call(3, &ApiVersionsRequest::default()).await;
    let range = |key: ApiKey| {
        r.api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(range(ApiKey::Produce), Some((0, 11)));
    assert_eq!(range(ApiKey::Fetch), Some((0, 12)));
    assert_eq!(range(ApiKey::ListOffsets), Some((0, 7)));
    assert_eq!(range(ApiKey::OffsetCommit), Some((0, 9)));
    assert_eq!(range(ApiKey::OffsetFetch), Some((0, 9)));
    broker.shutdown().await.unwrap();
}

/// Sarama's own Produce v0 (none, gzip, raw snappy) and v2 (magic 1: none, gzip, snappy, lz4)
/// requests, plus magic-0 LZ4 as Kafka 0.8/0.9 wrote it: every one is stored as one plain v2
/// batch that Fetch v4 and v12 read, keys, values and timestamps intact, and comes back to
/// every old fetcher.
#[tokio::test]
async fn legacy_produce_of_every_codec_is_stored_as_v2_batches() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    create(&mut c, "transactions", 3).await;
    let mut old = Legacy::connect(&broker).await;

    let vectors = [
        ("produce_v0_none", 0),
        ("produce_v0_gzip", 0),
        ("produce_v0_snappy", 0),
        ("produce_v2_none", 2),
        ("produce_v2_gzip", 2),
        ("produce_v2_snappy", 2),
        ("produce_v2_lz4", 2),
    ];
    let before = now_ms();
    for (i, (vector, version)) in vectors.iter().enumerate() {
        let body = old.call(ApiKey::Produce, *version, &sarama(vector)).await;
        assert_eq!(
            parse_produce(*version, body),
            vec![ProduceAnswer {
                partition: 2,
                error: 0,
                base_offset: 4 * i as i64
            }],
            "{vector}"
        );
    }
    // Magic 0 LZ4 (Kafka 0.8/0.9's header checksum) at Produce v1: four more messages.
    let lz4_v0: Vec<Message> = (0..4)
        .map(|i| Message {
            offset: i,
            timestamp: None,
            timestamp_type: TimestampType::CreateTime,
            key: SARAMA_KEYS[i as usize].map(Bytes::copy_from_slice),
            value: SARAMA_VALUES[i as usize].map(Bytes::copy_from_slice),
        })
        .collect();
    let set = encode_message_set(&lz4_v0, Magic::V0, Compression::Lz4).unwrap();
    let body = old
        .call(
            ApiKey::Produce,
            1,
            &produce_body(-1, "transactions", &[(2, &set)]),
        )
        .await;
    assert_eq!(
        parse_produce(1, body),
        vec![ProduceAnswer {
            partition: 2,
            error: 0,
            base_offset: 28
        }]
    );
    let after = now_ms();

    // Modern fetchers: eight v2 batches of four records.
    for version in [4, 12] {
        let mut data = modern_fetch(&mut c, version, "transactions", 2, 0).await;
        let batches = RecordBatchDecoder::decode_all(&mut data).unwrap();
        assert_eq!(batches.len(), 8, "Fetch v{version}");
        for (b, batch) in batches.iter().enumerate() {
            assert_eq!(batch.version, 2, "stored as v2");
            assert_eq!(batch.records.len(), 4);
            let sarama_v2 = (3..7).contains(&b);
            for (i, r) in batch.records.iter().enumerate() {
                assert_eq!(r.offset, (4 * b + i) as i64);
                assert_eq!(r.key.as_deref(), SARAMA_KEYS[i], "batch {b}");
                assert_eq!(r.value.as_deref(), SARAMA_VALUES[i], "batch {b}");
                assert_eq!(r.producer_id, -1);
                if sarama_v2 {
                    assert_eq!(r.timestamp, SARAMA_TS + i as i64, "v1 timestamps kept");
                } else {
                    assert!(
                        (before..=after).contains(&r.timestamp),
                        "v0 messages get the receive time"
                    );
                }
            }
        }
    }

    // And old fetchers read all 32 back.
    for version in 0..=3 {
        let body = old
            .call(
                ApiKey::Fetch,
                version,
                &fetch_body(version, "transactions", 2, 0, 1 << 20, 0),
            )
            .await;
        let f = parse_fetch(version, body);
        assert_eq!((f.error, f.high_watermark), (0, 32));
        let msgs = messages(version, &f.set);
        assert_eq!(msgs.len(), 32, "Fetch v{version}");
        for (n, m) in msgs.iter().enumerate() {
            assert_eq!(m.offset, n as i64);
            assert_eq!(m.key.as_deref(), SARAMA_KEYS[n % 4]);
            assert_eq!(m.value.as_deref(), SARAMA_VALUES[n % 4]);
            match magic_of(version) {
                Magic::V0 => assert_eq!(m.timestamp, None),
                Magic::V1 if (12..28).contains(&n) => {
                    assert_eq!(m.timestamp, Some(SARAMA_TS + (n % 4) as i64))
                }
                Magic::V1 => assert!((before..=after).contains(&m.timestamp.unwrap())),
            }
        }
    }
    broker.shutdown().await.unwrap();
}

/// Batches from a modern producer (plain, gzip, lz4, zstd; with headers) come back to Fetch
/// v0–3 as message sets of magic 0 or 1, from the fetch offset (mid-batch), within the byte
/// limit but never empty; errors are per partition.
#[tokio::test]
async fn modern_batches_are_down_converted_for_old_fetchers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    create(&mut c, "modern", 1).await;
    let ts0 = 1_700_000_000_000;
    let codecs = [
        BatchCompression::None,
        BatchCompression::Gzip,
        BatchCompression::Lz4,
        BatchCompression::Zstd,
    ];
    let mut expected = Vec::new();
    for (b, codec) in codecs.iter().enumerate() {
        let recs: Vec<(Option<String>, String, i64)> = (0..5)
            .map(|i| {
                let n = b * 5 + i;
                let key = (n % 3 != 0).then(|| format!("card-{n}"));
                (key, format!(r#"{{"n":{n}}}"#), ts0 + n as i64)
            })
            .collect();
        let view: Vec<(Option<&str>, &str, i64)> = recs
            .iter()
            .map(|(k, v, t)| (k.as_deref(), v.as_str(), *t))
            .collect();
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("modern"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(modern_batch(&view, 0, *codec)))])]);
        let r = c.call(3, &req).await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, 5 * b as i64),
            "{codec:?}"
        );
        expected.extend(recs);
    }

    let mut old = Legacy::connect(&broker).await;
    for version in 0..=3 {
        // From offset 7, in the middle of the gzip batch.
        let body = old
            .call(
                ApiKey::Fetch,
                version,
                &fetch_body(version, "modern", 0, 7, 1 << 20, 0),
            )
            .await;
        let f = parse_fetch(version, body);
        assert_eq!((f.error, f.high_watermark), (0, 20), "Fetch v{version}");
        let msgs = messages(version, &f.set);
        assert_eq!(msgs.len(), 13, "Fetch v{version}");
        for (m, (n, (k, v, ts))) in msgs.iter().zip(expected.iter().enumerate().skip(7)) {
            assert_eq!(m.offset, n as i64);
            assert_eq!(m.key.as_deref(), k.as_deref().map(str::as_bytes));
            assert_eq!(m.value.as_deref(), Some(v.as_bytes()));
            assert_eq!(m.timestamp, (version >= 2).then_some(*ts));
        }

        // A limit smaller than one message still yields exactly one, whole.
        let body = old
            .call(
                ApiKey::Fetch,
                version,
                &fetch_body(version, "modern", 0, 16, 10, 0),
            )
            .await;
        let msgs = messages(version, &parse_fetch(version, body).set);
        assert_eq!(msgs.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![16]);

        // A limit of two messages' worth: two, not a partial third.
        let one = encode_message_set(&msgs, magic_of(version), Compression::None)
            .unwrap()
            .len();
        let body = old
            .call(
                ApiKey::Fetch,
                version,
                &fetch_body(version, "modern", 0, 16, (2 * one + one / 2) as i32, 0),
            )
            .await;
        let f = parse_fetch(version, body);
        let msgs = messages(version, &f.set);
        assert_eq!(
            msgs.iter().map(|m| m.offset).collect::<Vec<_>>(),
            vec![16, 17]
        );

        // At the end: nothing, no error. Past it: OFFSET_OUT_OF_RANGE. No topic: UNKNOWN.
        let f = parse_fetch(
            version,
            old.call(
                ApiKey::Fetch,
                version,
                &fetch_body(version, "modern", 0, 20, 1 << 20, 0),
            )
            .await,
        );
        assert_eq!((f.error, f.set.len()), (0, 0));
        let f = parse_fetch(
            version,
            old.call(
                ApiKey::Fetch,
                version,
                &fetch_body(version, "modern", 0, 99, 1 << 20, 0),
            )
            .await,
        );
        assert_eq!(f.error, OFFSET_OUT_OF_RANGE);
        let f = parse_fetch(
            version,
            old.call(
                ApiKey::Fetch,
                version,
                &fetch_body(version, "nope", 0, 0, 1 << 20, 0),
            )
            .await,
        );
        assert_eq!(f.error, UNKNOWN_TOPIC_OR_PARTITION);
    }

    // Long poll: a Fetch v0 at the end waits for the next append, and gets it.
    let mut waiting = Legacy::connect(&broker).await;
    let fetch = tokio::spawn(async move {
        let body = waiting
            .call(
                ApiKey::Fetch,
                0,
                &fetch_body(0, "modern", 0, 20, 1 << 20, 50_000),
            )
            .await;
        parse_fetch(0, body)
    });
    let late = modern_batch(&[(None, "late", ts0 + 99)], 0, BatchCompression::None);
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("modern"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(late))])]);
    assert_eq!(
        c.call(3, &req).await.responses[0].partition_responses[0].error_code,
        0
    );
    let f = tokio::time::timeout(DEADLINE, fetch)
        .await
        .unwrap()
        .unwrap();
    let msgs = messages(0, &f.set);
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        (msgs[0].offset, msgs[0].value.as_deref()),
        (20, Some(&b"late"[..]))
    );
    broker.shutdown().await.unwrap();
}

/// `message.downconversion.enable=false`: Fetch v0–3, which can only be served by
/// down-converting, is answered UNSUPPORTED_VERSION for the topic's partitions (as Kafka does);
/// modern fetchers and old producers are unaffected, and setting it back serves old fetchers.
#[tokio::test]
async fn disabled_down_conversion_refuses_old_fetchers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    let topic_config = |value: &'static str| {
        vec![CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("message.downconversion.enable"))
            .with_value(Some(StrBytes::from_static_str(value)))]
    };
    let r = c
        .call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name("nodown"))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(topic_config("false"))]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
    let ts0 = now_ms();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("nodown"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(modern_batch(
                    &[(Some("a"), "1", ts0), (Some("b"), "2", ts0)],
                    0,
                    BatchCompression::None,
                )))])]);
    assert_eq!(
        c.call(3, &req).await.responses[0].partition_responses[0].error_code,
        0
    );
    // An old producer still writes (up-conversion is not affected).
    let set = encode_message_set(
        &[Message {
            offset: 0,
            timestamp: Some(ts0),
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: Some(Bytes::from_static(b"3")),
        }],
        Magic::V1,
        Compression::None,
    )
    .unwrap();
    let mut old = Legacy::connect(&broker).await;
    let answer = parse_produce(
        2,
        old.call(ApiKey::Produce, 2, &produce_body(1, "nodown", &[(0, &set)]))
            .await,
    );
    assert_eq!((answer[0].error, answer[0].base_offset), (0, 2));

    for version in 0..=3 {
        let f = parse_fetch(
            version,
            old.call(
                ApiKey::Fetch,
                version,
                &fetch_body(version, "nodown", 0, 0, 1 << 20, 0),
            )
            .await,
        );
        assert_eq!(
            (f.error, f.high_watermark, f.set.len()),
            (UNSUPPORTED_VERSION, -1, 0),
            "Fetch v{version}"
        );
    }
    // Modern fetchers read all three records.
    let mut stored = modern_fetch(&mut c, 4, "nodown", 0, 0).await;
    let batches = RecordBatchDecoder::decode_all(&mut stored).unwrap();
    assert_eq!(batches.iter().map(|b| b.records.len()).sum::<usize>(), 3);

    // Enabled again at runtime: old fetchers get their message sets.
    let r = c
        .call(
            1,
            &AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("nodown"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("message.downconversion.enable"))
                    .with_value(Some(StrBytes::from_static_str("true")))])]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    for version in 0..=3 {
        let body = old
            .call(
                ApiKey::Fetch,
                version,
                &fetch_body(version, "nodown", 0, 0, 1 << 20, 0),
            )
            .await;
        let f = parse_fetch(version, body);
        assert_eq!((f.error, f.high_watermark), (0, 3), "Fetch v{version}");
        assert_eq!(messages(version, &f.set).len(), 3, "Fetch v{version}");
    }
    broker.shutdown().await.unwrap();
}

/// acks=0 gets no answer at all; a bad message set fails only its own partition.
#[tokio::test]
async fn legacy_produce_errors_are_per_partition_and_acks_zero_is_silent() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    create(&mut c, "errs", 2).await;
    let mut old = Legacy::connect(&broker).await;
    let msg = |v: &'static [u8]| Message {
        offset: 0,
        timestamp: Some(1_700_000_000_000),
        timestamp_type: TimestampType::CreateTime,
        key: None,
        value: Some(Bytes::from_static(v)),
    };
    let good = encode_message_set(&[msg(b"a"), msg(b"b")], Magic::V1, Compression::Gzip).unwrap();
    let mut bad = encode_message_set(&[msg(b"c")], Magic::V1, Compression::None)
        .unwrap()
        .to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff; // breaks the CRC
    let body = old
        .call(
            ApiKey::Produce,
            2,
            &produce_body(1, "errs", &[(0, &good), (1, &bad), (7, &good)]),
        )
        .await;
    let mut answers = parse_produce(2, body);
    answers.sort_by_key(|a| a.partition);
    assert_eq!(
        answers,
        vec![
            ProduceAnswer {
                partition: 0,
                error: 0,
                base_offset: 0
            },
            ProduceAnswer {
                partition: 1,
                error: CORRUPT_MESSAGE,
                base_offset: -1
            },
            ProduceAnswer {
                partition: 7,
                error: UNKNOWN_TOPIC_OR_PARTITION,
                base_offset: -1
            },
        ]
    );
    // A truncated set is refused too (a produced set may not end mid-message).
    let body = old
        .call(
            ApiKey::Produce,
            0,
            &produce_body(1, "errs", &[(1, &good[..good.len() - 3])]),
        )
        .await;
    assert_eq!(parse_produce(0, body)[0].error, CORRUPT_MESSAGE);

    // acks=0: nothing comes back, so the next response on the connection is the next request's.
    old.send(ApiKey::Produce, 0, &produce_body(0, "errs", &[(0, &good)]))
        .await;
    let mut lo = BytesMut::new();
    lo.put_i32(-1);
    lo.put_i32(1);
    put_str(&mut lo, "errs");
    lo.put_i32(1);
    lo.put_i32(0);
    lo.put_i64(-1);
    lo.put_i32(1);
    let mut r = Rd(old.call(ApiKey::ListOffsets, 0, &lo).await);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), "errs");
    assert_eq!(r.i32(), 1);
    assert_eq!((r.i32(), r.i16(), r.i32(), r.i64()), (0, 0, 1, 4));
    r.done();
    broker.shutdown().await.unwrap();
}

/// ListOffsets v0: sarama's own request (newest of partition 2, oldest of 3), a time lookup,
/// no offsets asked, and an unknown partition.
#[tokio::test]
async fn list_offsets_v0() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    create(&mut c, "transactions", 4).await;
    let mut old = Legacy::connect(&broker).await;
    for _ in 0..3 {
        let body = old
            .call(ApiKey::Produce, 2, &sarama("produce_v2_none"))
            .await;
        assert_eq!(parse_produce(2, body)[0].error, 0);
    }
    // Partition 3 loses its first records, so "oldest" is not 0.
    let set = encode_message_set(
        &[Message {
            offset: 0,
            timestamp: None,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: Some(Bytes::from_static(b"x")),
        }],
        Magic::V0,
        Compression::None,
    )
    .unwrap();
    for _ in 0..5 {
        old.call(
            ApiKey::Produce,
            0,
            &produce_body(1, "transactions", &[(3, &set)]),
        )
        .await;
    }
    let del = kafka_protocol::messages::DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            kafka_protocol::messages::delete_records_request::DeleteRecordsTopic::default()
                .with_name(name("transactions"))
                .with_partitions(vec![
                    kafka_protocol::messages::delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(3)
                        .with_offset(2),
                ]),
        ]);
    let r = c.call(1, &del).await;
    assert_eq!(r.topics[0].partitions[0].low_watermark, 2);

    let mut r = Rd(old
        .call(ApiKey::ListOffsets, 0, &sarama("list_offsets_request_v0"))
        .await);
    let mut got = Vec::new();
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), "transactions");
    for _ in 0..r.i32() {
        let (p, e, n) = (r.i32(), r.i16(), r.i32());
        let offsets: Vec<i64> = (0..n).map(|_| r.i64()).collect();
        got.push((p, e, offsets));
    }
    r.done();
    got.sort();
    assert_eq!(got, vec![(2, 0, vec![12]), (3, 0, vec![2])]);

    // By time (the first record at or after it), no offsets asked, an unknown partition.
    let mut q = BytesMut::new();
    q.put_i32(-1);
    q.put_i32(1);
    put_str(&mut q, "transactions");
    q.put_i32(3);
    for (p, t, max) in [(2, SARAMA_TS + 2, 1), (2, -1, 0), (9, -1, 1)] {
        q.put_i32(p);
        q.put_i64(t);
        q.put_i32(max);
    }
    let mut r = Rd(old.call(ApiKey::ListOffsets, 0, &q).await);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), "transactions");
    assert_eq!(r.i32(), 3);
    assert_eq!((r.i32(), r.i16(), r.i32(), r.i64()), (2, 0, 1, 2));
    assert_eq!((r.i32(), r.i16(), r.i32()), (2, 0, 0));
    assert_eq!(
        (r.i32(), r.i16(), r.i32()),
        (9, UNKNOWN_TOPIC_OR_PARTITION, 0)
    );
    r.done();
    broker.shutdown().await.unwrap();
}

fn parse_commit(body: Bytes) -> Vec<(String, i32, i16)> {
    let mut r = Rd(body);
    let mut out = Vec::new();
    for _ in 0..r.i32() {
        let t = r.string();
        for _ in 0..r.i32() {
            out.push((t.clone(), r.i32(), r.i16()));
        }
    }
    r.done();
    out
}

fn parse_offset_fetch(body: Bytes) -> Vec<(String, i32, i64, Option<String>, i16)> {
    let mut r = Rd(body);
    let mut out = Vec::new();
    for _ in 0..r.i32() {
        let t = r.string();
        for _ in 0..r.i32() {
            out.push((t.clone(), r.i32(), r.i64(), r.nullable_string(), r.i16()));
        }
    }
    r.done();
    out
}

/// OffsetCommit v0 and v1 (sarama's requests and our own) store offsets that OffsetFetch v0
/// and the modern versions return.
#[tokio::test]
async fn offset_commit_v0_v1_and_offset_fetch_v0() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    create(&mut c, "transactions", 3).await;
    let mut old = Legacy::connect(&broker).await;

    // Nothing committed yet: offset -1, no error.
    let body = old
        .call(ApiKey::OffsetFetch, 0, &sarama("offset_fetch_request_v0"))
        .await;
    assert_eq!(
        parse_offset_fetch(body),
        vec![("transactions".into(), 2, -1, Some(String::new()), 0)]
    );

    // Sarama's v0 commit: group `fraud`, transactions/2 at 77 with metadata `meta`.
    let body = old
        .call(ApiKey::OffsetCommit, 0, &sarama("offset_commit_request_v0"))
        .await;
    assert_eq!(parse_commit(body), vec![("transactions".into(), 2, 0)]);
    let body = old
        .call(ApiKey::OffsetFetch, 0, &sarama("offset_fetch_request_v0"))
        .await;
    assert_eq!(
        parse_offset_fetch(body),
        vec![("transactions".into(), 2, 77, Some("meta".into()), 0)]
    );

    // Sarama's v1 commit names generation 4 and member `member-1`, which this group (with no
    // members) does not have: refused, and the offset stays.
    let body = old
        .call(ApiKey::OffsetCommit, 1, &sarama("offset_commit_request_v1"))
        .await;
    let refused = parse_commit(body);
    assert_eq!(refused.len(), 1);
    assert_ne!(refused[0].2, 0, "a member the group does not have");

    // A v1 standalone commit (generation -1, no member, commit time -1) for two partitions, one
    // of them unknown.
    let mut b = BytesMut::new();
    put_str(&mut b, "fraud");
    b.put_i32(-1);
    put_str(&mut b, "");
    b.put_i32(1);
    put_str(&mut b, "transactions");
    b.put_i32(2);
    for p in [1, 5] {
        b.put_i32(p);
        b.put_i64(1234);
        b.put_i64(-1);
        b.put_i16(-1); // null metadata
    }
    let mut answers = parse_commit(old.call(ApiKey::OffsetCommit, 1, &b).await);
    answers.sort();
    assert_eq!(
        answers,
        vec![
            ("transactions".into(), 1, 0),
            ("transactions".into(), 5, UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );

    // OffsetFetch v0 for partitions 0–2: the v0 commit, the v1 commit, nothing.
    let mut b = BytesMut::new();
    put_str(&mut b, "fraud");
    b.put_i32(1);
    put_str(&mut b, "transactions");
    b.put_i32(3);
    for p in 0..3 {
        b.put_i32(p);
    }
    let mut got = parse_offset_fetch(old.call(ApiKey::OffsetFetch, 0, &b).await);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("transactions".into(), 0, -1, Some(String::new()), 0),
            ("transactions".into(), 1, 1234, Some(String::new()), 0),
            ("transactions".into(), 2, 77, Some("meta".into()), 0),
        ]
    );

    // The modern versions see the same offsets.
    for version in [1, 7] {
        let req = OffsetFetchRequest::default()
            .with_group_id(kafka_protocol::messages::GroupId(
                StrBytes::from_static_str("fraud"),
            ))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(name("transactions"))
                .with_partition_indexes(vec![1, 2])]));
        let r = c.call(version, &req).await;
        let mut offsets: Vec<(i32, i64)> = r.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.committed_offset))
            .collect();
        offsets.sort();
        assert_eq!(offsets, vec![(1, 1234), (2, 77)], "OffsetFetch v{version}");
    }
    broker.shutdown().await.unwrap();
}

/// A legacy request whose body does not decode closes only its own connection.
#[tokio::test]
async fn malformed_legacy_bodies_close_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    for (api, version) in [
        (ApiKey::Produce, 0),
        (ApiKey::Fetch, 3),
        (ApiKey::ListOffsets, 0),
        (ApiKey::OffsetCommit, 1),
        (ApiKey::OffsetFetch, 0),
    ] {
        let mut old = Legacy::connect(&broker).await;
        old.send(api, version, &[0, 1, 0, 0, 0, 7, 0xff]).await;
        assert!(old.c.is_closed().await, "{api:?} v{version}");
    }
    let mut c = RawClient::connect(&broker).await;
    assert_eq!(
        c.call(3, &ApiVersionsRequest::default()).await.error_code,
        0
    );
    tokio::time::timeout(Duration::from_secs(60), broker.shutdown())
        .await
        .unwrap()
        .unwrap();
}
