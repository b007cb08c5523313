//! The wire protocol with a raw client: version negotiation, idempotent retries, and hostile
//! input that must close only the offending connection.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, InitProducerIdRequest,
    MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{Compression, Record, TimestampType};
use tokio::io::AsyncWriteExt;

fn batch(producer_id: i64, epoch: i16, sequence: i32, n: usize) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: sequence + i as i32,
            timestamp: now_ms(),
            key: None,
            value: Some(Bytes::from(format!("v{i}"))),
            headers: Default::default(),
        })
        .collect();
    encode_batch(&records, Compression::None)
}

fn produce(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

async fn create(c: &mut RawClient, topic: &str) {
    let r = c
        .call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
}

#[tokio::test]
async fn api_versions_advertises_what_is_served_and_steps_down_unsupported_versions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    let r = c.call(3, &ApiVersionsRequest::default()).await;
    assert_eq!(r.error_code, 0);
    let produce = r
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 11));
    assert!(
        r.api_keys
            .iter()
            .all(|k| k.api_key != ApiKey::ConsumerGroupHeartbeat as i16),
        "KIP-848 not advertised"
    );

    // kafka-python 3.x opens with ApiVersions v4: the answer is a v0 body with error 35.
    c.send(4, &ApiVersionsRequest::default()).await;
    let (header, mut body) = c.receive(0).await.expect("answered, not closed");
    assert_eq!(header.correlation_id, 2);
    let v0 = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(v0.error_code, 35);
    assert!(v0
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version == 3));
    // The connection is still usable.
    let r = c
        .call(0, &MetadataRequest::default().with_topics(Some(vec![])))
        .await;
    assert_eq!(r.brokers.len(), 1);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn idempotent_retry_is_acknowledged_with_the_original_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    create(&mut c, "idem").await;
    let pid = c
        .call(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        )
        .await;
    assert_eq!(pid.error_code, 0);
    let id = pid.producer_id.0;

    let first = c.call(9, &produce("idem", batch(id, 0, 0, 5))).await;
    let second = c.call(9, &produce("idem", batch(id, 0, 5, 5))).await;
    let retry = c.call(9, &produce("idem", batch(id, 0, 5, 5))).await;
    let p = |r: &kafka_protocol::messages::ProduceResponse| {
        r.responses[0].partition_responses[0].clone()
    };
    assert_eq!((p(&first).error_code, p(&first).base_offset), (0, 0));
    assert_eq!((p(&second).error_code, p(&second).base_offset), (0, 5));
    assert_eq!(
        (p(&retry).error_code, p(&retry).base_offset),
        (0, 5),
        "duplicate gets its original offset"
    );
    assert_eq!(
        broker
            .shared()
            .cluster
            .partition("idem", 0)
            .unwrap()
            .log
            .log_end_offset(),
        10,
        "not appended twice"
    );

    let gap = c.call(9, &produce("idem", batch(id, 0, 20, 1))).await;
    assert_eq!(p(&gap).error_code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    let newer = c.call(9, &produce("idem", batch(id, 1, 0, 1))).await;
    assert_eq!(
        p(&newer).error_code,
        0,
        "a bumped epoch starts at sequence 0"
    );
    let fenced = c.call(9, &produce("idem", batch(id, 0, 10, 1))).await;
    assert_eq!(p(&fenced).error_code, 47, "INVALID_PRODUCER_EPOCH");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn corrupt_and_invalid_produce_requests_get_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    create(&mut c, "errs").await;
    let mut bad = BytesMut::from(&batch(-1, -1, -1, 3)[..]);
    let n = bad.len();
    bad[n - 1] ^= 0xff; // breaks the CRC
    let r = c.call(9, &produce("errs", bad.freeze())).await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 2,
        "CORRUPT_MESSAGE"
    );
    let r = c.call(9, &produce("missing", batch(-1, -1, -1, 1))).await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let r = c
        .call(9, &produce("errs", batch(-1, -1, -1, 1)).with_acks(2))
        .await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 21,
        "INVALID_REQUIRED_ACKS"
    );
    assert_eq!(
        broker
            .shared()
            .cluster
            .partition("errs", 0)
            .unwrap()
            .log
            .log_end_offset(),
        0,
        "nothing appended"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn hostile_frames_close_only_their_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_frame_bytes = 1024 * 1024;
    cfg.idle_timeout = std::time::Duration::from_millis(500);
    let broker = start(cfg).await;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "oversized frame",
            (64 * 1024 * 1024i32).to_be_bytes().to_vec(),
        ),
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        ("shorter than a header", vec![0, 0, 0, 3, 1, 2, 3]),
        (
            "unknown api key",
            [
                &12i32.to_be_bytes()[..],
                &[0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
            ]
            .concat(),
        ),
        (
            "unsupported version",
            [
                &12i32.to_be_bytes()[..],
                &[0, 0, 0x7f, 0, 0, 0, 0, 1, 0, 0, 0, 0],
            ]
            .concat(),
        ),
        ("valid header, garbage body", {
            let mut f = BytesMut::new();
            f.put_i32(30);
            f.put_i16(ApiKey::Metadata as i16);
            f.put_i16(9); // flexible version: compact strings and tagged fields
            f.put_i32(1);
            f.put_i16(-1);
            f.put_u8(0);
            f.put_slice(&[0xff; 19]);
            f.to_vec()
        }),
        (
            "half a frame, then silence",
            [&100i32.to_be_bytes()[..], &[0, 3, 0, 1]].concat(),
        ),
    ];
    for (what, bytes) in cases {
        let mut c = RawClient::connect(&broker).await;
        c.send_raw(&bytes).await.unwrap();
        assert!(c.is_closed().await, "{what}: connection should be closed");
        // The broker still serves everyone else (a fresh connection: the idle timeout is short).
        let mut healthy = RawClient::connect(&broker).await;
        let r = healthy.call(3, &ApiVersionsRequest::default()).await;
        assert_eq!(r.error_code, 0, "after {what}");
    }
    // A client that disconnects mid-frame does not disturb anything either.
    let mut c = RawClient::connect(&broker).await;
    c.stream.write_all(&[0, 0, 1, 0, 0, 18]).await.unwrap();
    drop(c);
    let mut healthy = RawClient::connect(&broker).await;
    let r = healthy
        .call(1, &MetadataRequest::default().with_topics(None))
        .await;
    assert_eq!(r.brokers.len(), 1);
    broker.shutdown().await.unwrap();
}
