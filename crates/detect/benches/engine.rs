//! Throughput of the detection engine on in-memory events.
//!
//! `cargo bench -p veritas-detect --bench engine`
//!
//! Events come from the labelled synthetic generator (3 000 cardholders, 40 days, all
//! fraud scenarios). A model is trained exactly as `veritas train` does (default
//! configuration, time-based validation) on the first 30 days; the benches then continue
//! from the state those 30 days built, over the last 10 days:
//!
//! * `engine/features`: [`Engine::process`] only (state update + all features).
//! * `model/margin`: the trained model's margin on precomputed features (packed,
//!   interleaved tree walk), and `model/margin_plain_walk` (node-by-node) for comparison.
//! * `detector/full`: features + rules + model + the decision record with reasons, i.e.
//!   what the Kafka detector does per event (without JSON and I/O).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use veritas_detect::training::{replay, train_model, TrainConfig};
use veritas_detect::{Detector, DetectorConfig, Engine};
use veritas_events::{Generator, GeneratorConfig, LabelledTransaction};

fn bench(c: &mut Criterion) {
    let generator = Generator::new(GeneratorConfig {
        seed: 11,
        customers: 3_000,
        days: Some(40),
        ..GeneratorConfig::default()
    })
    .expect("valid generator configuration");
    let start = generator.start();
    let events: Vec<LabelledTransaction> = generator.collect();
    let split = events.partition_point(|e| e.tx.timestamp < start + chrono::Duration::days(30));
    let (history, tail) = events.split_at(split);
    let config = DetectorConfig::default();
    let (model, report) = train_model(
        &replay(history, &config.engine),
        &TrainConfig::default(),
        |_| {},
    )
    .expect("bench model trains");
    let mut warm_engine = Engine::new(config.engine.clone());
    let mut warm_detector = Detector::new(config, Some(model.clone()));
    for e in history {
        warm_engine.process(&e.tx);
        warm_detector.process(&e.tx);
    }
    let mem = warm_engine.memory();
    eprintln!(
        "{} warm-up events, {} measured; model {} trees; state {} cards ({:.0} B/card), {} merchants",
        history.len(),
        tail.len(),
        report.trees_kept,
        mem.cards,
        mem.card_bytes as f64 / mem.cards.max(1) as f64,
        mem.merchants
    );

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("features", |b| {
        b.iter_custom(|iters| {
            let mut engine = warm_engine.clone();
            let start = Instant::now();
            for i in 0..iters as usize {
                black_box(engine.process(&tail[i % tail.len()].tx));
            }
            start.elapsed()
        })
    });
    g.finish();

    let features: Vec<_> = {
        let mut e = warm_engine.clone();
        tail.iter().map(|t| e.process(&t.tx)).collect()
    };
    let mut g = c.benchmark_group("model");
    g.throughput(Throughput::Elements(1));
    g.bench_function("margin", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % features.len();
            black_box(model.margin(features[i].as_slice()))
        })
    });
    g.bench_function("margin_plain_walk", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % features.len();
            black_box(model.ensemble().margin(features[i].as_slice()))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("detector");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("full", |b| {
        b.iter_custom(|iters| {
            let mut det = warm_detector.clone();
            let start = Instant::now();
            for i in 0..iters as usize {
                black_box(det.process(&tail[i % tail.len()].tx));
            }
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
