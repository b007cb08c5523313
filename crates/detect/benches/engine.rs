//! Throughput of the detection engine on in-memory events.
//!
//! `cargo bench -p veritas-detect --bench engine`
//!
//! * `engine/features`: [`Engine::process`] only (state update + 49 features).
//! * `detector/full`: features + rules + a 300-tree depth-6 GBDT with per-feature
//!   attribution + the decision record (what the Kafka detector does per event).
//!
//! Events come from a small self-contained synthetic stream (10 000 cards, 2 000
//! merchants, locations, categories, channels) so the bench does not depend on the
//! events crate's generator. Each sample continues from a warmed-up state (100 000
//! events already seen), so features see realistic histories.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use veritas_detect::gbdt::{self, Dataset, GbdtParams};
use veritas_detect::{
    Detector, DetectorConfig, Engine, EngineConfig, Model, ModelMeta, NUM_FEATURES,
};
use veritas_events::{Channel, Transaction};

const WARM: usize = 100_000;
const TAIL: usize = 200_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn stream(n: usize) -> Vec<Transaction> {
    let mut rng = Rng(7);
    let cats = [
        "grocery",
        "fuel",
        "restaurant",
        "electronics",
        "travel",
        "digital",
        "clothing",
    ];
    let mut t = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .map_or(0, |d| d.timestamp_millis());
    (0..n)
        .map(|i| {
            // ~100k events over ~6 days: one event every ~5 s on average.
            t += rng.below(10_000) as i64;
            let card = rng.below(10_000);
            let home = ((card % 50) as f64 - 25.0, ((card / 50) % 100) as f64 - 50.0);
            let merchant = rng.below(2_000);
            let located = rng.below(4) > 0;
            Transaction {
                transaction_id: format!("tx-{i}"),
                timestamp: Utc.timestamp_millis_opt(t).single().unwrap_or_default(),
                card_number: format!("4{card:015}"),
                amount: (rng.below(20_000) as f64 / 100.0)
                    * if rng.below(50) == 0 { 20.0 } else { 1.0 },
                customer_id: None,
                first_name: None,
                last_name: None,
                currency: "USD".into(),
                merchant: Some(format!("Merchant {merchant}")),
                merchant_id: Some(format!("m{merchant}")),
                category: Some(cats[(merchant % cats.len() as u64) as usize].into()),
                channel: Some([Channel::Pos, Channel::Online, Channel::Atm][rng.below(3) as usize]),
                lat: located.then(|| home.0 + rng.below(100) as f64 / 100.0),
                lon: located.then(|| home.1 + rng.below(100) as f64 / 100.0),
                home_lat: Some(home.0),
                home_lon: Some(home.1),
                city: None,
                country: Some("US".into()),
            }
        })
        .collect()
}

/// A realistic-size model: 300 trees of depth 6 over the engine's features.
fn model(events: &[Transaction]) -> Model {
    let mut engine = Engine::new(EngineConfig::default());
    let mut ds = Dataset::new(NUM_FEATURES);
    for (i, e) in events.iter().take(40_000).enumerate() {
        let f = engine.process(e);
        // A label that depends on several features, so trees use many of them.
        let y = (e.amount > 150.0 && i % 3 == 0) || e.amount > 1000.0;
        let _ = ds.push(f.as_slice(), y);
    }
    let params = GbdtParams {
        n_trees: 300,
        max_depth: 6,
        early_stopping_rounds: 0,
        min_child_weight: 0.0,
        ..GbdtParams::default()
    };
    let trained = gbdt::train(&ds, None, &params, |_| {}).expect("bench model trains");
    Model::new(trained.ensemble, ModelMeta::default())
}

fn bench(c: &mut Criterion) {
    let events = stream(WARM + TAIL);
    let model = model(&events);
    let mut warm_engine = Engine::new(EngineConfig::default());
    let mut warm_detector = Detector::new(DetectorConfig::default(), Some(model.clone()));
    for e in &events[..WARM] {
        warm_engine.process(e);
        warm_detector.process(e);
    }
    let tail = &events[WARM..];
    eprintln!(
        "warm state: {:?}, {:.0} bytes/card",
        warm_engine.memory(),
        warm_engine.memory().card_bytes as f64 / warm_engine.memory().cards.max(1) as f64
    );

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("features", |b| {
        b.iter_custom(|iters| {
            let mut engine = warm_engine.clone();
            let start = Instant::now();
            for i in 0..iters as usize {
                black_box(engine.process(&tail[i % tail.len()]));
            }
            start.elapsed()
        })
    });
    g.finish();

    let features: Vec<_> = {
        let mut e = warm_engine.clone();
        tail.iter().take(10_000).map(|t| e.process(t)).collect()
    };
    let mut g = c.benchmark_group("model");
    g.throughput(Throughput::Elements(1));
    g.bench_function("margin_300x6", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % features.len();
            black_box(model.margin(features[i].as_slice()))
        })
    });
    g.bench_function("margin_300x6_plain_walk", |b| {
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
                black_box(det.process(&tail[i % tail.len()]));
            }
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
