//! Append, read and compaction throughput of the log with ~16 KiB batches of 100-byte
//! records.
//!
//! `cargo bench -p veritas-log` (criterion prints time per operation and MiB/s).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use veritas_log::batch::builder::{BatchBuilder, Record};
use veritas_log::{FlushPolicy, Log, LogConfig};

const T0: i64 = 1_700_000_000_000;

/// One uncompressed batch of 100-byte-value records, about 16 KiB.
fn batch_16k() -> Vec<u8> {
    let mut b = BatchBuilder::new(T0);
    for i in 0..140u32 {
        let mut value = vec![b'x'; 100];
        value[..4].copy_from_slice(&i.to_be_bytes());
        b.push(Record::new(
            Some(format!("card-{i:06}").into_bytes()),
            Some(value),
        ));
    }
    b.build()
}

fn config(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        retention_ms: -1,
        retention_bytes: 256 << 20,
        flush,
        ..LogConfig::default()
    }
}

/// Appends `iters` batches to a fresh log; only the appends are timed (retention, which
/// keeps the disk footprint bounded, is not).
fn timed_appends(batch: &[u8], iters: u64, flush: FlushPolicy) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Log::open(dir.path(), config(flush), false, T0).expect("open");
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let chunk = (iters - done).min(4096);
        let start = Instant::now();
        for _ in 0..chunk {
            log.append(batch, T0).expect("append");
        }
        total += start.elapsed();
        done += chunk;
        log.enforce_retention(T0).expect("retention");
    }
    total
}

fn bench(c: &mut Criterion) {
    let batch = batch_16k();
    println!(
        "batch: {} bytes, {} records of 100-byte values",
        batch.len(),
        140
    );

    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("16KiB_batch_no_fsync", |b| {
        b.iter_custom(|iters| timed_appends(&batch, iters, FlushPolicy::manual()))
    });
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("16KiB_batch_fsync_every_append", |b| {
        b.iter_custom(|iters| timed_appends(&batch, iters, FlushPolicy::every_append()))
    });
    g.finish();

    // Read back: 64 MiB of batches, fetched sequentially 1 MiB at a time from the page cache.
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Log::open(dir.path(), config(FlushPolicy::manual()), false, T0).expect("open");
    while log.size_bytes() < 64 << 20 {
        log.append(&batch, T0).expect("append");
    }
    let end = log.log_end_offset();
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Bytes(1 << 20));
    let mut offset = 0;
    g.bench_function("1MiB_fetch_sequential", |b| {
        b.iter(|| {
            let r = log.read(offset, 1 << 20).expect("read");
            offset = match veritas_log::batch::BatchIter::new(&r.data).last() {
                Some(Ok(last)) => last.header.next_offset(),
                _ => 0,
            };
            if offset >= end {
                offset = 0;
            }
            r.data.len()
        })
    });
    let mut offset = 0;
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("one_batch_fetch_mid_batch_offset", |b| {
        b.iter(|| {
            // Offsets in the middle of batches exercise the index lookup and header scan.
            offset = (offset + 9_973) % end;
            log.read(offset, 0).expect("read").data.len()
        })
    });
    g.finish();
}

/// A 32 MiB log (4 MiB segments) of 16 KiB batches whose records update 20 000 keys in
/// turn, so most records are superseded by the end.
fn keyed_log(dir: &std::path::Path) -> Log {
    let config = LogConfig {
        segment_bytes: 4 << 20,
        ..config(FlushPolicy::manual())
    };
    let log = Log::open(dir, config, false, T0).expect("open");
    let mut n = 0u32;
    while log.size_bytes() < 32 << 20 {
        let mut b = BatchBuilder::new(T0);
        for _ in 0..140 {
            let key = format!("card-{:06}", n % 20_000);
            b.push(Record::new(Some(key.into_bytes()), Some(vec![b'x'; 100])));
            n += 1;
        }
        log.append(&b.build(), T0).expect("append");
    }
    log
}

fn bench_compaction(c: &mut Criterion) {
    let mut g = c.benchmark_group("compact");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    // Throughput in bytes of closed segments examined (the active one is never cleaned).
    let probe = tempfile::tempdir().expect("temp dir");
    let closed = {
        let log = keyed_log(probe.path());
        let out = log
            .compact(T0, &veritas_log::CompactionConfig::default())
            .expect("compact");
        println!("compaction of the 32 MiB keyed log: {out:?}");
        out.bytes_before
    };
    g.throughput(Throughput::Bytes(closed));
    g.bench_function("32MiB_keyed_log_20k_keys", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("temp dir");
                let log = keyed_log(dir.path());
                let start = Instant::now();
                log.compact(T0, &veritas_log::CompactionConfig::default())
                    .expect("compact");
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench, bench_compaction
}
criterion_main!(benches);
