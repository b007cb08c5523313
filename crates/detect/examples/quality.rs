//! Measure detection quality on the labelled synthetic generator.
//!
//! Generates `days` days of traffic, trains on the first `train_days` (with the latest
//! 20 % of those as the early-stopping validation split), then scores the whole period in
//! event order with the trained detector (so card state is warm) and evaluates the events
//! after `train_days` only.
//!
//! Scoring runs like `veritas detect` on a topic of `partitions` partitions (default 6):
//! one detector per partition, each seeing the events of the cards keyed to it
//! ([`veritas_detect::partition_of`]). Training replays the history split the same way
//! (`QUALITY_TRAIN_PARTITIONS` overrides the training split, e.g. `1` to see what a model
//! trained on one engine does when served by six).
//!
//! Merchant state as `veritas detect` keeps it by default: shared by all partitions (every
//! partition's engine reads the `merchant_*` and `category_amount_zscore` features from a
//! [`veritas_detect::shared::SharedTable`] built from the whole stream, frozen every hour of
//! event time; `QUALITY_SHARED_INTERVAL_MIN=M` sets another interval).
//! `QUALITY_PER_PARTITION_MERCHANTS=1` measures each partition's engine with its own share
//! of the merchant evidence instead. Training and scoring both follow the setting.
//!
//! `cargo run --release -p veritas-detect --example quality -- [customers] [seed] [days] [train_days] [partitions]`

use std::time::Instant;

use veritas_detect::eval::{evaluate, Scored};
use veritas_detect::shared::MerchantSource;
use veritas_detect::training::{replay, train_model, TrainConfig};
use veritas_detect::{partition_of, Detector, DetectorConfig};
use veritas_events::{Generator, GeneratorConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let customers: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2500);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let days: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(90);
    let train_days: i64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(60);
    let partitions: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(6);
    let train_partitions: u32 = std::env::var("QUALITY_TRAIN_PARTITIONS")
        .ok()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(partitions);

    let t = Instant::now();
    let generator = Generator::new(GeneratorConfig {
        seed,
        customers,
        days: Some(days),
        ..GeneratorConfig::default()
    })?;
    let start = generator.start();
    let mut events: Vec<_> = generator.collect();
    events.sort_by_key(|e| e.tx.timestamp);
    let shared_interval_ms: Option<i64> = std::env::var("QUALITY_SHARED_INTERVAL_MIN")
        .ok()
        .map(|s| s.parse::<f64>())
        .transpose()?
        .map(|m| (m * 60_000.0) as i64);
    let split = start + chrono::Duration::days(train_days);
    let n_train = events.partition_point(|e| e.tx.timestamp < split);
    eprintln!(
        "generated {} events ({} train, {} test) in {:.1} s",
        events.len(),
        n_train,
        events.len() - n_train,
        t.elapsed().as_secs_f64()
    );

    let mut config = DetectorConfig::default();
    config.engine.partitions = train_partitions;
    let t = Instant::now();
    if let Some(ms) = shared_interval_ms {
        config.engine.shared_merchants = true;
        config.engine.shared_interval_secs = (ms / 1000).max(1) as u64;
    }
    if std::env::var_os("QUALITY_PER_PARTITION_MERCHANTS").is_some() {
        config.engine.shared_merchants = false;
    }
    let oracle = Oracle::from_env(&events);
    let data = match &oracle {
        None => replay(&events[..n_train], &config.engine),
        Some(o) => o.replay(&events[..n_train], &config.engine),
    };
    eprintln!(
        "replayed training history in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut train_cfg = TrainConfig::default();
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    if let Some(v) = env("GBDT_LR") {
        train_cfg.gbdt.learning_rate = v;
    }
    if let Some(v) = env("GBDT_DEPTH") {
        train_cfg.gbdt.max_depth = v as usize;
    }
    if let Some(v) = env("GBDT_TREES") {
        train_cfg.gbdt.n_trees = v as usize;
    }
    if let Some(v) = env("GBDT_SPW") {
        train_cfg.gbdt.scale_pos_weight = Some(v);
    }
    if let Some(v) = env("GBDT_MCW") {
        train_cfg.gbdt.min_child_weight = v;
    }
    let (model, report) = train_model(&data, &train_cfg, |_| {})?;
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

    if let Some(v) = env("RULE_SCALE") {
        config.decision.rule_weight_scale_with_model = v;
    }
    config.engine.partitions = partitions;
    let mut detectors: Vec<Detector> = (0..partitions.max(1))
        .map(|_| Detector::new(config.clone(), Some(model.clone())))
        .collect();
    let mut scored = Vec::with_capacity(events.len() - n_train);
    let mut model_only = Vec::with_capacity(events.len() - n_train);
    let mut feats = Vec::with_capacity(events.len() - n_train);
    let mut merchants = MerchantSource::for_config(&config.engine);
    let t = Instant::now();
    for (i, e) in events.iter().enumerate() {
        let p = partition_of(&e.tx.card_number, partitions) as usize;
        let detector = &mut detectors[p];
        let t0 = Instant::now();
        let mut features = merchants.features(detector.engine_mut(), &e.tx);
        if let Some(o) = &oracle {
            o.inject(&mut features, e);
        }
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
            feats.push(a.features);
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
    let (cards, merchants, card_bytes) = detectors.iter().fold((0, 0, 0), |acc, d| {
        let m = d.engine().memory();
        (acc.0 + m.cards, acc.1 + m.merchants, acc.2 + m.card_bytes)
    });
    eprintln!(
        "state over {} engines (trained on {train_partitions}): {cards} cards, {merchants} merchant entries, {:.0} bytes/card",
        detectors.len(),
        card_bytes as f64 / cards.max(1) as f64
    );
    let n_test = scored.len() as u64;
    if std::env::var_os("QUALITY_DIAG").is_some() {
        diagnose(&events[n_train..], &scored, &feats, partitions);
    }
    let m = evaluate(&model_only, n_test);
    println!(
        "model probability alone: AP {:?} AUC {:?} recall@P0.9 {:?}",
        m.average_precision, m.roc_auc, m.recall_at_p90
    );
    println!(
        "model + rules (test period: days {}..{}, {partitions} partition engines, trained on {train_partitions}):",
        train_days + 1,
        days
    );
    print!("{}", evaluate(&scored, n_test));
    Ok(())
}

/// Recall at the precision-0.9 threshold per scenario, split by whether the card already
/// had a fraud in the previous 24 hours and by the fraud's position among the card's
/// frauds of the last 24 hours, and the false positives at that threshold by
/// context (analysis only: uses labels).
fn diagnose(
    events: &[veritas_events::LabelledTransaction],
    scored: &[Scored],
    feats: &[veritas_detect::Features],
    partitions: u32,
) {
    use veritas_detect::Feature as F;
    let show = [
        F::Amount,
        F::AmountToMean,
        F::Count1h,
        F::NovelTx1h,
        F::HighAmountTx24h,
        F::SecsSincePrev,
        F::MerchantNew,
        F::CategoryNew,
        F::ChannelCode,
        F::CardTxCount,
        F::MerchantVelocityRatio,
        F::MerchantNewCardShare,
        F::MerchantRecentCategoryZ,
        F::MerchantSuspectShare,
        F::MerchantSuspectLift,
        F::MerchantTicketCusum,
        F::MerchantElevatedPosterior,
        F::MerchantRecentVolume,
        F::CategoryAmountZscore,
        F::AmountToCategoryMean,
    ];
    let row = |f: &veritas_detect::Features| -> String {
        show.iter()
            .map(|&k| {
                let v = f.get(k).map_or("-".into(), |v| format!("{v:.2}"));
                format!("{}={v}", k.name())
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let want = std::env::var("QUALITY_DIAG").unwrap_or_default();
    use std::collections::{BTreeMap, HashMap};
    let labels: Vec<bool> = scored.iter().map(|s| s.is_fraud).collect();
    let scores: Vec<f64> = scored.iter().map(|s| s.score).collect();
    let Some((_, thr)) = veritas_detect::eval::recall_at_precision(&labels, &scores, 0.9) else {
        return;
    };
    let mut last_fraud: HashMap<&str, i64> = HashMap::new();
    let mut table: BTreeMap<(String, bool), (u32, u32)> = BTreeMap::new();
    let mut recent_frauds: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut by_position: BTreeMap<(String, usize), (u32, u32)> = BTreeMap::new();
    let mut fp_total = 0u32;
    // False positives at the threshold, by what surrounds them.
    let mut fp_by_context: BTreeMap<String, u32> = BTreeMap::new();
    // Merchant-level scenarios: recall by how many frauds at the same merchant this
    // partition's engine (and all engines together) had seen before.
    let mut at_merchant: HashMap<(&str, u32), u32> = HashMap::new();
    let mut at_merchant_all: HashMap<&str, u32> = HashMap::new();
    let mut by_prior: BTreeMap<(u32, u32), (u32, u32)> = BTreeMap::new();
    for (i, (e, s)) in events.iter().zip(scored).enumerate() {
        let t = e.tx.timestamp.timestamp_millis();
        if e.label.is_fraud {
            let follow = fraud_within_a_day(&last_fraud, &e.tx.card_number, t);
            // Position in the episode: frauds on this card in the last 24 hours, this one
            // included.
            let recent = recent_frauds.entry(e.tx.card_number.as_str()).or_default();
            recent.retain(|&p| t - p < 86_400_000);
            recent.push(t);
            let position = by_position
                .entry((
                    e.label.scenario.clone().unwrap_or_default(),
                    recent.len().min(5),
                ))
                .or_default();
            position.0 += 1;
            position.1 += u32::from(s.score >= thr);
            let entry = table
                .entry((e.label.scenario.clone().unwrap_or_default(), follow))
                .or_default();
            entry.0 += 1;
            entry.1 += u32::from(s.score >= thr);
            if s.score < thr
                && e.label.scenario.as_deref() == Some(want.as_str())
                && entry.0.is_multiple_of(7)
            {
                eprintln!(
                    "MISS {} {:.3} {}",
                    if follow { "F" } else { "1" },
                    s.score,
                    row(&feats[i])
                );
            }
            last_fraud.insert(e.tx.card_number.as_str(), t);
            if e.label.scenario.as_deref() == Some("compromised_merchant") {
                let m = e.tx.merchant_id.as_deref().unwrap_or("");
                let p = veritas_detect::partition_of(&e.tx.card_number, partitions);
                let seen = at_merchant.entry((m, p)).or_default();
                let seen_all = at_merchant_all.entry(m).or_default();
                let entry = by_prior
                    .entry(((*seen).min(3), (*seen_all).min(9)))
                    .or_default();
                entry.0 += 1;
                entry.1 += u32::from(s.score >= thr);
                *seen += 1;
                *seen_all += 1;
            }
        } else if s.score >= thr {
            fp_total += 1;
            let card_fraud = fraud_within_a_day(&last_fraud, &e.tx.card_number, t);
            let m = e.tx.merchant_id.as_deref().unwrap_or("");
            let ctx = if card_fraud {
                "card had a fraud in the previous 24 h".to_string()
            } else if at_merchant_all.get(m).is_some_and(|&n| n > 0) {
                "at a merchant with earlier compromised-merchant fraud".to_string()
            } else {
                let name = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                format!(
                    "{} {}",
                    name(e.tx.channel.map(|c| format!("{c:?}").to_lowercase())),
                    name(e.tx.category.clone())
                )
            };
            *fp_by_context.entry(ctx).or_default() += 1;
            if want == "fp" && fp_total.is_multiple_of(10) {
                eprintln!("FP {:.3} {}", s.score, row(&feats[i]));
            }
        }
    }
    eprintln!("threshold {thr:.4}; false positives {fp_total}");
    let mut contexts: Vec<_> = fp_by_context.into_iter().collect();
    contexts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for (context, n) in contexts.iter().take(12) {
        eprintln!("  FP {n:>5} {context}");
    }
    let names = std::env::var("QUALITY_FEATURE").unwrap_or_default();
    for name in names.split(',').filter(|n| !n.is_empty()) {
        if let Some(f) = veritas_detect::Feature::from_name(name) {
            let pct = |mut v: Vec<f32>| -> String {
                v.sort_by(f32::total_cmp);
                let n = v.len().max(1);
                [10, 25, 50, 75, 90, 99]
                    .iter()
                    .map(|q| {
                        format!(
                            "p{q}={:.2}",
                            v.get(q * (n - 1) / 100).copied().unwrap_or(f32::NAN)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mut by: BTreeMap<String, Vec<f32>> = BTreeMap::new();
            let mut missing: BTreeMap<String, (u32, u32)> = BTreeMap::new();
            for (e, ft) in events.iter().zip(feats) {
                let key = e.label.scenario.clone().unwrap_or_else(|| "legit".into());
                let m = missing.entry(key.clone()).or_default();
                m.1 += 1;
                match ft.get(f) {
                    Some(v) => by.entry(key).or_default().push(v),
                    None => m.0 += 1,
                }
            }
            for (k, v) in by {
                let (miss, n) = missing.get(&k).copied().unwrap_or_default();
                eprintln!("  {name} {k:<22} missing {miss}/{n} {}", pct(v));
            }
        }
    }
    for ((seen, seen_all), (n, hit)) in by_prior {
        eprintln!(
            "  compromised_merchant: {seen}{} earlier at the merchant in this partition, {seen_all}{} in all: {n:>5} recall {:.3}",
            if seen == 3 { "+" } else { "" },
            if seen_all == 9 { "+" } else { "" },
            f64::from(hit) / f64::from(n.max(1))
        );
    }
    for ((name, position), (n, hit)) in by_position {
        eprintln!(
            "  {name:<22} fraud {position}{:<4} of the card in 24 h {n:>5} recall {:.3}",
            if position == 5 { "+" } else { "" },
            f64::from(hit) / f64::from(n.max(1))
        );
    }
    for ((name, follow), (n, hit)) in table {
        eprintln!(
            "  {name:<22} {:<10} {n:>5} recall {:.3}",
            if follow { "follow-up" } else { "first" },
            f64::from(hit) / f64::from(n.max(1))
        );
    }
}

/// Whether `card` had a fraud in the 24 hours before `t` (from its latest fraud's time).
fn fraud_within_a_day(
    last_fraud: &std::collections::HashMap<&str, i64>,
    card: &str,
    t: i64,
) -> bool {
    last_fraud.get(card).is_some_and(|&p| t - p < 86_400_000)
}

/// `QUALITY_ORACLE=merchant`: an upper bound, for analysis only. Every event at a merchant
/// whose compromise episode is under way (from its first fraudulent transaction to its
/// last, read from the labels) gets a flag in place of `merchant_suspect_posterior`, in
/// training and scoring. No detector can know more about the merchant than that, so the
/// recall this gives bounds what merchant-level evidence can achieve.
struct Oracle {
    windows: std::collections::HashMap<String, (i64, i64)>,
}

impl Oracle {
    fn from_env(events: &[veritas_events::LabelledTransaction]) -> Option<Oracle> {
        if std::env::var("QUALITY_ORACLE").ok()? != "merchant" {
            return None;
        }
        let mut windows = std::collections::HashMap::new();
        for e in events {
            if e.label.scenario.as_deref() == Some("compromised_merchant") {
                let t = e.tx.timestamp.timestamp_millis();
                let m = e.tx.merchant_id.clone().unwrap_or_default();
                let w = windows.entry(m).or_insert((t, t));
                w.0 = w.0.min(t);
                w.1 = w.1.max(t);
            }
        }
        Some(Oracle { windows })
    }

    fn inject(&self, f: &mut veritas_detect::Features, e: &veritas_events::LabelledTransaction) {
        let t = e.tx.timestamp.timestamp_millis();
        let on =
            e.tx.merchant_id
                .as_ref()
                .and_then(|m| self.windows.get(m))
                .is_some_and(|&(a, b)| a <= t && t <= b);
        f.set(
            veritas_detect::Feature::MerchantSuspectPosterior,
            f64::from(u8::from(on)),
        );
    }

    fn replay(
        &self,
        events: &[veritas_events::LabelledTransaction],
        cfg: &veritas_detect::EngineConfig,
    ) -> veritas_detect::training::Replayed {
        let partitions = cfg.partitions.max(1);
        let mut engines: Vec<veritas_detect::Engine> = (0..partitions)
            .map(|_| veritas_detect::Engine::new(cfg.clone()))
            .collect();
        let mut out = veritas_detect::training::Replayed {
            dataset: veritas_detect::gbdt::Dataset::new(veritas_detect::NUM_FEATURES),
            timestamps: Vec::new(),
            scenarios: Vec::new(),
            merchant_state: cfg.merchant_state(),
        };
        let mut merchants = MerchantSource::for_config(cfg);
        for e in events {
            let p = partition_of(&e.tx.card_number, partitions) as usize;
            let mut f = merchants.features(&mut engines[p], &e.tx);
            self.inject(&mut f, e);
            if out.dataset.push(f.as_slice(), e.label.is_fraud).is_ok() {
                out.timestamps.push(e.tx.timestamp.timestamp_millis());
                out.scenarios.push(e.label.scenario.clone());
            }
        }
        out
    }
}
