//! Crash recovery through the whole broker: data directories damaged the way a crash damages
//! them (torn tail, garbage after the last batch), then reopened and read with a real client.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use veritas_broker::server::CLEAN_SHUTDOWN_MARKER;

/// Writes `batches` single-record batches to `topic`-0 and stops the broker, then removes the
/// clean-shutdown marker so the next start treats the directory as crashed.
async fn fill_and_crash(dir: &std::path::Path, topic: &str, batches: usize) {
    let broker = start(config(dir)).await;
    let p: FutureProducer = client_config(&broker)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    for i in 0..batches {
        p.send(
            FutureRecord::to(topic)
                .key(&format!("k{i}"))
                .payload(&format!("value-{i}"))
                .partition(0),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    drop(p);
    broker.shutdown().await.unwrap();
    std::fs::remove_file(dir.join(CLEAN_SHUTDOWN_MARKER)).unwrap();
}

fn segment(dir: &std::path::Path, topic: &str) -> std::path::PathBuf {
    dir.join(format!("{topic}-0"))
        .join(format!("{:020}.log", 0))
}

fn read_all(broker: &veritas_broker::Broker, topic: &str, expect: usize) -> Vec<String> {
    let consumer: BaseConsumer = client_config(broker)
        .set("group.id", "recovery")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let start = std::time::Instant::now();
    while out.len() < expect {
        assert!(start.elapsed() < DEADLINE, "got {} of {expect}", out.len());
        if let Some(m) = next_record(&consumer, Duration::from_millis(100)) {
            out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_the_last_batch_is_cut_away() {
    let dir = tempfile::tempdir().unwrap();
    fill_and_crash(dir.path(), "g", 10).await;
    let seg = segment(dir.path(), "g");
    let good_len = std::fs::metadata(&seg).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[
        0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 1, 2, 3,
    ])
    .unwrap();
    drop(f);

    let broker = start(config(dir.path())).await;
    let p = broker.shared().cluster.partition("g", 0).unwrap();
    assert_eq!(p.log.log_end_offset(), 10);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        good_len,
        "garbage truncated"
    );
    let got = read_all(&broker, "g", 10);
    assert_eq!(
        got,
        (0..10).map(|i| format!("value-{i}")).collect::<Vec<_>>()
    );
    // New appends continue right after the recovered data.
    let prod: FutureProducer = client_config(&broker).create().unwrap();
    let offset = prod
        .send(
            FutureRecord::<(), _>::to("g").payload("next").partition(0),
            Duration::from_secs(30),
        )
        .await
        .unwrap()
        .offset;
    assert_eq!(offset, 10);
    drop(prod);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_in_half_is_dropped_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    fill_and_crash(dir.path(), "t", 10).await;
    let seg = segment(dir.path(), "t");
    let len = std::fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();

    let broker = start(config(dir.path())).await;
    let p = broker.shared().cluster.partition("t", 0).unwrap();
    assert_eq!(
        p.log.log_end_offset(),
        9,
        "exactly the nine complete batches remain"
    );
    let got = read_all(&broker, "t", 9);
    assert_eq!(
        got,
        (0..9).map(|i| format!("value-{i}")).collect::<Vec<_>>()
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_byte_in_the_tail_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    fill_and_crash(dir.path(), "c", 10).await;
    let seg = segment(dir.path(), "c");
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.len() - 3; // inside the last batch's records: CRC now wrong
    bytes[last] ^= 0x5a;
    std::fs::write(&seg, &bytes).unwrap();

    let broker = start(config(dir.path())).await;
    let p = broker.shared().cluster.partition("c", 0).unwrap();
    assert_eq!(p.log.log_end_offset(), 9);
    let got = read_all(&broker, "c", 9);
    assert_eq!(got.len(), 9);
    broker.shutdown().await.unwrap();
}
