//! Measure detection quality on the labelled synthetic generator.
//!
//! Generates `days` days of traffic, trains on the first `train_days` (with the latest
//! 20 % of those as the early-stopping validation split), then scores the whole period in
//! event order with the trained detector (so card state is warm) and evaluates the events
//! after `train_days` only.
//!
//! `cargo run --release -p veritas-detect --example quality -- [customers] [seed] [days] [train_days]`

use std::time::Instant;

use veritas_detect::eval::{evaluate, Scored};
use veritas_detect::training::{replay, train_model, TrainConfig};
use veritas_detect::{Detector, DetectorConfig};
use veritas_events::{Generator, GeneratorConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let customers: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2500);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let days: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(90);
    let train_days: i64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(60);

    let t = Instant::now();
    let generator = Generator::new(GeneratorConfig {
        seed,
        customers,
        days: Some(days),
        ..GeneratorConfig::default()
    })?;
    let start = generator.start();
    let events: Vec<_> = generator.collect();
    let split = start + chrono::Duration::days(train_days);
    let n_train = events.partition_point(|e| e.tx.timestamp < split);
    eprintln!(
        "generated {} events ({} train, {} test) in {:.1} s",
        events.len(),
        n_train,
        events.len() - n_train,
        t.elapsed().as_secs_f64()
    );

    let config = DetectorConfig::default();
    let t = Instant::now();
    let data = replay(&events[..n_train], &config.engine);
    eprintln!(
        "replayed training history in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (model, report) = train_model(&data, &TrainConfig::default(), |_| {})?;
    eprintln!(
        "trained {} trees (of {}) in {:.1} s; validation AP {:?} AUC {:?} recall@P0.9 {:?}",
        report.trees_kept,
        report.trees_built,
        t.elapsed().as_secs_f64(),
        report.valid_ap,
        report.valid_auc,
        report.valid_recall_at_p90
    );
    for (name, share) in report.importance.iter().take(12) {
        eprintln!("  {name:<28} {:>6.2} %", share * 100.0);
    }

    let mut detector = Detector::new(config, Some(model));
    let mut scored = Vec::with_capacity(events.len() - n_train);
    let mut model_only = Vec::with_capacity(events.len() - n_train);
    let t = Instant::now();
    for (i, e) in events.iter().enumerate() {
        let t0 = Instant::now();
        let features = detector.engine_mut().process(&e.tx);
        let a = detector.assess_features(features);
        let d = detector.decide(&e.tx, &a);
        let us = t0.elapsed().as_micros() as u64;
        if i >= n_train {
            scored.push(Scored {
                is_fraud: e.label.is_fraud,
                scenario: e.label.scenario.clone(),
                score: d.score,
                decision: d.decision,
                latency_us: Some(us),
            });
            model_only.push(Scored {
                score: a.model_probability,
                ..scored[scored.len() - 1].clone()
            });
        }
    }
    eprintln!(
        "scored {} events in {:.1} s",
        events.len(),
        t.elapsed().as_secs_f64()
    );
    let mem = detector.engine().memory();
    eprintln!(
        "state: {} cards, {} merchants, {:.0} bytes/card",
        mem.cards,
        mem.merchants,
        mem.card_bytes as f64 / mem.cards.max(1) as f64
    );
    let n_test = scored.len() as u64;
    let m = evaluate(&model_only, n_test);
    println!(
        "model probability alone: AP {:?} AUC {:?} recall@P0.9 {:?}",
        m.average_precision, m.roc_auc, m.recall_at_p90
    );
    println!(
        "model + rules (test period: days {}..{}):",
        train_days + 1,
        days
    );
    print!("{}", evaluate(&scored, n_test));
    Ok(())
}
