//! Bad input and abuse beyond `protocol.rs`: garbage and truncated bodies for every advertised
//! API and version, the connection limit, a client trickling a frame byte by byte, and a full
//! disk under acks=all producers.

mod common;

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, MetadataRequest, ProduceRequest,
    RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::AsyncWriteExt;
use veritas_broker::api::SUPPORTED;
use veritas_log::batch::builder::{BatchBuilder, Record};

/// A deterministic byte stream (xorshift), so failures reproduce.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A request frame (size prefix included) of `api`/`version` with the given body bytes.
fn frame(api: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("abuse")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    let header_version = if veritas_legacy_version(api, version) {
        1
    } else {
        api.request_header_version(version)
    };
    header.encode(&mut buf, header_version).unwrap();
    buf.put_slice(body);
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}

/// Versions from before Kafka 0.11 (header v1 whatever kafka-protocol says).
fn veritas_legacy_version(api: ApiKey, version: i16) -> bool {
    matches!(
        (api, version),
        (ApiKey::Produce, 0..=2)
            | (ApiKey::Fetch, 0..=3)
            | (ApiKey::ListOffsets, 0)
            | (ApiKey::OffsetCommit, 0..=1)
            | (ApiKey::OffsetFetch, 0)
    )
}

/// Whether the broker still answers a fresh connection.
async fn healthy(broker: &veritas_broker::Broker) -> bool {
    let mut c = RawClient::connect(broker).await;
    c.call(3, &ApiVersionsRequest::default()).await.error_code == 0
}

/// Reads the next response frame or notices the close; `true` if answered.
async fn answered(c: &mut RawClient) -> bool {
    c.receive(0).await.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_bodies_for_every_advertised_api_never_hurt_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_frame_bytes = 1024 * 1024;
    let broker = start(cfg).await;
    let (mut tried, mut closed, mut answered_n) = (0u32, 0u32, 0u32);
    for (i, (api, range)) in SUPPORTED.iter().enumerate() {
        if *api == ApiKey::ApiVersions {
            continue; // any body is answered: covered by protocol.rs
        }
        for version in range.min..=range.max {
            let seed = (i as u64) << 16 | version as u64;
            // Random bodies of a few sizes, a body claiming a huge array, and an empty body.
            let mut bodies: Vec<Vec<u8>> = [1usize, 7, 64, 900]
                .iter()
                .map(|&n| noise(seed ^ n as u64, n))
                .collect();
            bodies.push([0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f].repeat(4));
            bodies.push(Vec::new());
            // One connection for all of them: each must be answered or close the connection,
            // and a closed connection is replaced.
            let mut c = RawClient::connect(&broker).await;
            for body in bodies {
                tried += 1;
                if c.send_raw(&frame(*api, version, &body)).await.is_err() {
                    c = RawClient::connect(&broker).await;
                    c.send_raw(&frame(*api, version, &body)).await.unwrap();
                }
                if answered(&mut c).await {
                    answered_n += 1;
                } else {
                    closed += 1;
                    c = RawClient::connect(&broker).await;
                }
            }
        }
        assert!(healthy(&broker).await, "after {api:?}");
    }
    eprintln!(
        "{tried} bad requests over every advertised API and version: {answered_n} answered with an error, {closed} closed their connection"
    );
    assert!(closed > 0 && tried > 500);
    // Still serving real work.
    let mut c = RawClient::connect(&broker).await;
    let md = c
        .call(12, &MetadataRequest::default().with_topics(None))
        .await;
    assert_eq!(md.brokers.len(), 1);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_refuses_extra_clients_and_serves_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_connections = 8;
    let broker = start(cfg).await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut c = RawClient::connect(&broker).await;
        assert_eq!(
            c.call(3, &ApiVersionsRequest::default()).await.error_code,
            0
        );
        clients.push(c);
    }
    // Over the limit: accepted by the OS, closed by the broker at once, nothing sent.
    for _ in 0..20 {
        let mut extra = RawClient::connect(&broker).await;
        assert!(
            extra.is_closed().await,
            "connection over the limit is closed"
        );
    }
    // Those inside the limit keep working.
    for c in &mut clients {
        let md = c
            .call(12, &MetadataRequest::default().with_topics(None))
            .await;
        assert_eq!(md.brokers.len(), 1);
    }
    // A slot freed is a slot available again (the count drops once the task notices).
    drop(clients.pop());
    wait_for("a freed connection slot", || {
        let b = &broker;
        async move {
            let mut c = RawClient::connect(b).await;
            c.send(3, &ApiVersionsRequest::default()).await;
            c.receive(0).await.map(|_| ())
        }
    })
    .await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_a_frame_is_cut_off_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.idle_timeout = Duration::from_millis(600);
    let broker = start(cfg).await;
    // A 200-byte Metadata request sent one byte every 20 ms would take 4 s: the idle timeout
    // bounds the whole frame, not the gap between bytes.
    let f = frame(ApiKey::Metadata, 9, &[0u8; 190]);
    let mut c = RawClient::connect(&broker).await;
    let started = Instant::now();
    let mut cut_after = None;
    for b in &f {
        if c.stream.write_all(&[*b]).await.is_err() {
            cut_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // the client's own pace
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    let cut = match cut_after {
        Some(t) => t,
        None => {
            assert!(c.is_closed().await, "the trickling client is closed");
            started.elapsed()
        }
    };
    assert!(cut < Duration::from_secs(10), "cut after {cut:?}");
    eprintln!("trickling client cut off after {cut:?} (idle timeout 600 ms)");
    assert!(healthy(&broker).await);
    broker.shutdown().await.unwrap();
}

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) -> bool {
        std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn produce_request(topic: &str, batch: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])])
}

fn value(i: usize) -> Vec<u8> {
    let mut v = format!("record-{i:06}-").into_bytes();
    v.extend(noise(i as u64, 8 * 1024)); // incompressible, 8 KiB
    v
}

/// Reads every record of `topic`-0 with librdkafka; values' 13-byte prefixes.
fn read_prefixes(bootstrap: &str, topic: &str, expect: usize) -> Vec<String> {
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", "abuse-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < expect {
        assert!(start.elapsed() < DEADLINE, "read {} of {expect}", out.len());
        if let Some(m) = next_record(&consumer, Duration::from_millis(100)) {
            let p = m.payload().unwrap_or_default();
            out.push(String::from_utf8_lossy(&p[..p.len().min(13)]).into_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_to_a_full_disk_is_refused_with_a_storage_error_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(fs) = Tmpfs::mount(&data, "3m") else {
        eprintln!("NOTICE: skipped: cannot mount a tmpfs here (not root?); CI runs as root");
        return;
    };
    let mut cfg = config(&data);
    // Small segments, so the disk also fills during a roll.
    cfg.log_defaults.segment_bytes = 256 * 1024;
    let broker = start(cfg.clone()).await;
    let mut c = RawClient::connect(&broker).await;
    let r = c
        .call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("full")))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("segment.bytes"))
                        .with_value(Some(StrBytes::from_static_str("262144"))),
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_value(Some(StrBytes::from_static_str("-1"))),
                ])]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);

    // Produce 8 KiB records (acks=all) until the disk is full.
    let mut acked = Vec::new();
    let mut errors = std::collections::BTreeMap::new();
    let mut i = 0;
    while i < 2000 && errors.values().sum::<u32>() < 20 {
        let batch = BatchBuilder::new(now_ms())
            .record(Record::new(None, Some(value(i))))
            .build();
        let resp = c.call(9, &produce_request("full", batch)).await;
        let p = &resp.responses[0].partition_responses[0];
        if p.error_code == 0 {
            assert_eq!(p.base_offset, acked.len() as i64, "offsets stay dense");
            acked.push(i);
        } else {
            *errors.entry(p.error_code).or_insert(0u32) += 1;
        }
        i += 1;
    }
    eprintln!(
        "full disk: {} records acknowledged, then errors {errors:?} (56 = KAFKA_STORAGE_ERROR)",
        acked.len()
    );
    assert!(!acked.is_empty(), "something fit");
    assert_eq!(
        errors.keys().copied().collect::<Vec<_>>(),
        vec![56],
        "only KAFKA_STORAGE_ERROR"
    );
    // The broker is up and everything acknowledged is readable.
    assert!(healthy(&broker).await);
    let bootstrap = broker.bootstrap_servers();
    let want: Vec<String> = acked.iter().map(|&i| format!("record-{i:06}")).collect();
    let got = tokio::task::spawn_blocking({
        let (b, n) = (bootstrap.clone(), want.len());
        move || read_prefixes(&b, "full", n)
    })
    .await
    .unwrap();
    assert_eq!(got, want, "acknowledged records after the disk filled");
    // The background flush cannot write its checkpoint either: counted, and (see the log) not
    // reported on every round.
    let flush_failures = || {
        broker
            .shared()
            .metrics
            .maintenance_failures
            .with_label_values(&["flush"])
            .get()
    };
    wait_for("a failed background flush to be counted", || async {
        (flush_failures() > 0).then_some(())
    })
    .await;

    // Space returns: produce succeeds again, at the next offset.
    assert!(fs.resize("64m"), "remount with more space");
    let next = acked.len() as i64;
    let started = Instant::now();
    let resp = loop {
        let batch = BatchBuilder::new(now_ms())
            .record(Record::new(None, Some(value(9999))))
            .build();
        let r = c.call(9, &produce_request("full", batch)).await;
        let p = &r.responses[0].partition_responses[0];
        if p.error_code == 0 {
            break p.base_offset;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "produce still fails: {}",
            p.error_code
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling for recovery
    };
    assert_eq!(
        resp, next,
        "the first append after recovery takes the next offset"
    );
    broker.shutdown().await.unwrap();

    // And a restart sees all of it.
    let broker = start(cfg).await;
    let mut want = want;
    want.push("record-009999".to_owned());
    let bootstrap = broker.bootstrap_servers();
    let got = tokio::task::spawn_blocking({
        let n = want.len();
        move || read_prefixes(&bootstrap, "full", n)
    })
    .await
    .unwrap();
    assert_eq!(got, want);
    broker.shutdown().await.unwrap();
    drop(fs);
}
