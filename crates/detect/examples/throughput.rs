//! Events per second of the full detector, by wall time *and* by this thread's CPU time.
//!
//! On a shared machine criterion's wall-clock figures include time the thread spent
//! waiting for a core; the CPU time (Linux `/proc/thread-self/schedstat`) does not.
//! Same setup as `benches/engine.rs`: generator traffic, a model trained like
//! `veritas train` on 30 days, then 10 more days processed from the warm state.
//!
//! `cargo run --release -p veritas-detect --example throughput -- [passes]`

use std::time::Instant;

use veritas_detect::shared::MerchantSource;
use veritas_detect::training::{replay, train_model, TrainConfig};
use veritas_detect::{Detector, DetectorConfig, Engine};
use veritas_events::{Generator, GeneratorConfig};

/// CPU time of the calling thread in nanoseconds, if the platform reports it.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let passes: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5);
    let generator = Generator::new(GeneratorConfig {
        seed: 11,
        customers: 3_000,
        days: Some(40),
        ..GeneratorConfig::default()
    })?;
    let start = generator.start();
    let events: Vec<_> = generator.collect();
    let split = events.partition_point(|e| e.tx.timestamp < start + chrono::Duration::days(30));
    let (history, tail) = events.split_at(split);
    let config = DetectorConfig::default();
    let (model, report) = train_model(
        &replay(history, &config.engine),
        &TrainConfig::default(),
        |_| {},
    )?;
    let mut warm_engine = Engine::new(config.engine.clone());
    let mut warm_source = MerchantSource::for_config(&config.engine);
    let mut warm = Detector::new(config, Some(model));
    // The shared-state run keeps its own detector: its engine never touches merchant state.
    let mut warm_shared = warm.clone();
    for e in history {
        warm.process(&e.tx);
        warm_engine.process(&e.tx);
        warm_source.decide(&mut warm_shared, &e.tx);
    }
    println!(
        "model: {} trees; {} events per pass",
        report.trees_kept,
        tail.len()
    );
    for what in [
        "engine (features only)",
        "detector, merchant state per engine (features + rules + model + decision)",
        "detector with shared merchant state (+ the table)",
    ] {
        let (mut wall, mut cpu) = (0f64, 0u64);
        for _ in 0..passes {
            let mut det = warm.clone();
            let mut engine = warm_engine.clone();
            let mut shared_det = warm_shared.clone();
            let mut source = warm_source.clone();
            let (t0, c0) = (Instant::now(), thread_cpu_ns());
            if what.starts_with("engine") {
                for e in tail {
                    std::hint::black_box(engine.process(&e.tx));
                }
            } else if what.contains("shared") {
                for e in tail {
                    std::hint::black_box(source.decide(&mut shared_det, &e.tx));
                }
            } else {
                for e in tail {
                    std::hint::black_box(det.process(&e.tx));
                }
            }
            wall += t0.elapsed().as_secs_f64();
            if let (Some(a), Some(b)) = (c0, thread_cpu_ns()) {
                cpu += b - a;
            }
        }
        let n = (tail.len() * passes) as f64;
        println!(
            "{what}: {:.0} events/s wall, {:.0} events/s CPU ({:.2} µs CPU per event)",
            n / wall,
            n / (cpu as f64 / 1e9),
            cpu as f64 / 1e3 / n
        );
    }
    Ok(())
}
