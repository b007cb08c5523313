//! Measure detection quality on a labelled file this project did not generate (for
//! example Sparkov data converted with `veritas convert --from sparkov`).
//!
//! Trains like `veritas train --until SPLIT` on the events before `SPLIT` (latest 20 % of
//! those for early stopping and calibration), then scores the whole file in event order
//! with one detector per partition (as `veritas detect` on a topic of `partitions`
//! partitions), and evaluates the events at or after `SPLIT`: overall, and per
//! merchant category at the precision-0.9 operating point.
//!
//! `cargo run --release -p veritas-detect --example dataset_quality -- FILE SPLIT [partitions]`

use std::collections::BTreeMap;
use std::time::Instant;

use veritas_detect::eval::{evaluate, recall_at_precision, Scored};
use veritas_detect::shared::MerchantSource;
use veritas_detect::training::{parse_time_ms, replay, train_model, TrainConfig};
use veritas_detect::{partition_of, Detector, DetectorConfig};
use veritas_events::io::LabelledReader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: dataset_quality FILE SPLIT [partitions]")?;
    let split_ms = parse_time_ms(&args.next().ok_or("missing SPLIT (RFC 3339)")?)?;
    let partitions: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(6);

    let t = Instant::now();
    let mut events = Vec::new();
    for (line, item) in LabelledReader::open(&path)? {
        events.push(item.map_err(|e| format!("{path}:{line}: {e}"))?);
    }
    events.sort_by_key(|e| e.tx.timestamp);
    let n_train = events.partition_point(|e| e.tx.timestamp.timestamp_millis() < split_ms);
    let frauds =
        |s: &[veritas_events::LabelledTransaction]| s.iter().filter(|e| e.label.is_fraud).count();
    eprintln!(
        "read {} events in {:.1} s: {} train ({} fraud), {} test ({} fraud)",
        events.len(),
        t.elapsed().as_secs_f64(),
        n_train,
        frauds(&events[..n_train]),
        events.len() - n_train,
        frauds(&events[n_train..])
    );

    let mut config = DetectorConfig::default();
    config.engine.partitions = partitions;
    let t = Instant::now();
    let data = replay(&events[..n_train], &config.engine);
    let (model, report) = train_model(&data, &TrainConfig::default(), |_| {})?;
    eprintln!(
        "trained {} trees in {:.1} s; validation AP {:?} recall@P0.9 {:?}",
        report.trees_kept,
        t.elapsed().as_secs_f64(),
        report.valid_ap,
        report.valid_recall_at_p90
    );
    for (name, share) in report.importance.iter().take(10) {
        eprintln!("  {name:<28} {:>6.2} %", share * 100.0);
    }

    let mut detectors: Vec<Detector> = (0..partitions.max(1))
        .map(|_| Detector::new(config.clone(), Some(model.clone())))
        .collect();
    let mut scored = Vec::with_capacity(events.len() - n_train);
    let mut categories = Vec::with_capacity(events.len() - n_train);
    let mut merchants = MerchantSource::for_config(&config.engine);
    for (i, e) in events.iter().enumerate() {
        let p = partition_of(&e.tx.card_number, partitions) as usize;
        let t0 = Instant::now();
        let d = merchants.decide(&mut detectors[p], &e.tx);
        if i >= n_train {
            scored.push(Scored {
                is_fraud: e.label.is_fraud,
                // The category stands in for the scenario in the per-group table.
                scenario: e
                    .label
                    .is_fraud
                    .then(|| e.tx.category.clone().unwrap_or_default()),
                score: d.score,
                decision: d.decision,
                latency_us: Some(t0.elapsed().as_micros() as u64),
            });
            categories.push(e.tx.category.clone().unwrap_or_default());
        }
    }
    let report = evaluate(&scored, scored.len() as u64);
    println!("{path}: test events from {split_ms} ms, {partitions} partition engines");
    print!("{report}");

    // Per category: frauds, recall at the overall precision-0.9 threshold, and that
    // category's own average precision (its legitimate events as negatives).
    let labels: Vec<bool> = scored.iter().map(|s| s.is_fraud).collect();
    let scores: Vec<f64> = scored.iter().map(|s| s.score).collect();
    let thr = recall_at_precision(&labels, &scores, 0.9).map_or(f64::INFINITY, |r| r.1);
    let mut by: BTreeMap<&str, (Vec<bool>, Vec<f64>)> = BTreeMap::new();
    for ((c, y), s) in categories.iter().zip(&labels).zip(&scores) {
        let entry = by.entry(c.as_str()).or_default();
        entry.0.push(*y);
        entry.1.push(*s);
    }
    println!("\n  category            events   frauds  recall@P0.9  AP (within category)");
    for (c, (y, s)) in by {
        let n_fraud = y.iter().filter(|&&v| v).count();
        let hit = y.iter().zip(&s).filter(|(&v, &x)| v && x >= thr).count();
        let ap = veritas_detect::eval::average_precision(&y, &s);
        println!(
            "  {c:<18} {:>7} {n_fraud:>8}  {:>11}  {}",
            y.len(),
            if n_fraud > 0 {
                format!("{:.3}", hit as f64 / n_fraud as f64)
            } else {
                "-".into()
            },
            ap.map_or("-".into(), |a| format!("{a:.3}"))
        );
    }
    Ok(())
}
