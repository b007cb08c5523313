//! Generator throughput to a null sink, and JSON / CSV serialisation throughput.
//!
//! `cargo bench -p veritas-events --bench generator`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use veritas_events::io::{CsvWriter, JsonlWriter};
use veritas_events::{
    decode_labelled, encode_labelled_into, Generator, GeneratorConfig, LabelledTransaction,
};

const EVENTS: u64 = 200_000;

fn config() -> GeneratorConfig {
    GeneratorConfig {
        seed: 7,
        customers: 10_000,
        days: None,
        ..GeneratorConfig::default()
    }
}

fn sample(n: usize) -> Vec<LabelledTransaction> {
    Generator::new(config())
        .map(|g| g.take(n).collect())
        .unwrap_or_default()
}

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("generator");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    // The world (10,000 customers, ~25,000 merchants) is built once; the stream is what
    // is measured. The generator is endless, so every iteration takes fresh events.
    let mut generator = Generator::new(config()).ok();
    group.bench_function("events_to_null_sink", |b| {
        b.iter(|| {
            if let Some(g) = generator.as_mut() {
                for event in g.by_ref().take(EVENTS as usize) {
                    black_box(event);
                }
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("world");
    group.sample_size(10);
    group.bench_function("build_10k_customers", |b| {
        b.iter(|| black_box(Generator::new(config()).ok()))
    });
    group.finish();
}

fn serialise(c: &mut Criterion) {
    let events = sample(EVENTS as usize);
    let mut group = c.benchmark_group("serialise");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.bench_function("json_encode", |b| {
        let mut buf = Vec::with_capacity(512);
        b.iter(|| {
            for e in &events {
                buf.clear();
                encode_labelled_into(e, &mut buf);
                black_box(&buf);
            }
        })
    });
    group.bench_function("jsonl_writer", |b| {
        b.iter(|| {
            let mut w = JsonlWriter::new(std::io::sink());
            for e in &events {
                let _ = w.write(e);
            }
            black_box(w.finish().is_ok())
        })
    });
    group.bench_function("csv_writer", |b| {
        b.iter(|| {
            if let Ok(mut w) = CsvWriter::new(std::io::sink()) {
                for e in &events {
                    let _ = w.write(e);
                }
                black_box(w.finish().is_ok());
            }
        })
    });
    let lines: Vec<Vec<u8>> = events
        .iter()
        .map(|e| {
            let mut buf = Vec::new();
            encode_labelled_into(e, &mut buf);
            buf
        })
        .collect();
    group.bench_function("json_decode_validate", |b| {
        b.iter(|| {
            for l in &lines {
                let _ = black_box(decode_labelled(l));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, generate, serialise);
criterion_main!(benches);
