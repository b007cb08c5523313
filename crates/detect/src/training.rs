//! Training: replay labelled history through the engine, fit the GBDT, validate on time.

use serde::{Deserialize, Serialize};
use veritas_events::LabelledTransaction;

use crate::engine::{Engine, EngineConfig};
use crate::error::DetectError;
use crate::eval::{average_precision, recall_at_precision, roc_auc};
use crate::features::{Feature, NUM_FEATURES};
use crate::gbdt::{self, sigmoid, Dataset, GbdtParams, TrainProgress};
use crate::model::{Model, ModelMeta};
use crate::shared::MerchantSource;

/// Features and labels of labelled events, in replay (event-time) order.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    /// Feature rows with fraud labels.
    pub dataset: Dataset,
    /// Event time (ms) of each row.
    pub timestamps: Vec<i64>,
    /// Scenario of each row.
    pub scenarios: Vec<Option<String>>,
    /// How merchant state was kept ([`EngineConfig::merchant_state`]).
    pub merchant_state: String,
}

/// Replay `events` in timestamp order (stable for equal times) through fresh engines,
/// recording each event's features as seen at serving time.
///
/// As in serving, the card space is split over `cfg.partitions` engines by
/// [`crate::partition_of`] of the card number: each engine sees every event of its cards
/// and its share of every merchant's traffic.
pub fn replay(events: &[LabelledTransaction], cfg: &EngineConfig) -> Replayed {
    replay_with_progress(events, cfg, |_| {})
}

/// [`replay`] calling `progress(events_done)` every 10 000 events.
pub fn replay_with_progress(
    events: &[LabelledTransaction],
    cfg: &EngineConfig,
    mut progress: impl FnMut(usize),
) -> Replayed {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].tx.timestamp);
    let partitions = cfg.partitions.max(1);
    let mut engines: Vec<Engine> = (0..partitions).map(|_| Engine::new(cfg.clone())).collect();
    let mut out = Replayed {
        dataset: Dataset::new(NUM_FEATURES),
        timestamps: Vec::with_capacity(events.len()),
        scenarios: Vec::with_capacity(events.len()),
        merchant_state: cfg.merchant_state(),
    };
    // Shared merchant state: one table fed the whole history in time order, which freezes
    // the snapshots a table over the live topic's partitions freezes.
    let mut merchants = MerchantSource::for_config(cfg);
    for (done, &i) in order.iter().enumerate() {
        let e = &events[i];
        let p = crate::partition_of(&e.tx.card_number, partitions) as usize;
        let Some(engine) = engines.get_mut(p) else {
            continue;
        };
        let f = merchants.features(engine, &e.tx);
        // The row length always equals NUM_FEATURES, so push cannot fail.
        if out.dataset.push(f.as_slice(), e.label.is_fraud).is_ok() {
            out.timestamps.push(e.tx.timestamp.timestamp_millis());
            out.scenarios.push(e.label.scenario.clone());
        }
        if done % 10_000 == 0 {
            progress(done);
        }
    }
    progress(order.len());
    out
}

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// GBDT hyper-parameters.
    pub gbdt: GbdtParams,
    /// Share of the time range (the latest part) held out for validation.
    pub validation_fraction: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            gbdt: GbdtParams::default(),
            validation_fraction: 0.2,
        }
    }
}

/// What training found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Training rows.
    pub train_rows: usize,
    /// Fraudulent training rows.
    pub train_positives: usize,
    /// Validation rows.
    pub valid_rows: usize,
    /// Fraudulent validation rows.
    pub valid_positives: usize,
    /// Rows at or after this event time (ms) are validation.
    pub split_time_ms: i64,
    /// Trees built.
    pub trees_built: usize,
    /// Trees kept (best validation iteration).
    pub trees_kept: usize,
    /// Positive-class weight.
    pub scale_pos_weight: f64,
    /// Platt calibration `[a, b]` fitted on the validation split.
    pub calibration: [f64; 2],
    /// Validation average precision of the model probability.
    pub valid_ap: Option<f64>,
    /// Validation ROC AUC.
    pub valid_auc: Option<f64>,
    /// Validation recall at precision ≥ 0.9.
    pub valid_recall_at_p90: Option<f64>,
    /// Probability threshold of that operating point.
    pub valid_threshold_at_p90: Option<f64>,
    /// Features by share of total split gain, highest first.
    pub importance: Vec<(String, f64)>,
}

/// Split index: first row whose time is in the last `fraction` of the time range.
pub fn time_split(timestamps: &[i64], fraction: f64) -> (usize, i64) {
    let (Some(&lo), Some(&hi)) = (timestamps.first(), timestamps.last()) else {
        return (0, 0);
    };
    let fraction = fraction.clamp(0.0, 1.0);
    let cut = hi - ((hi - lo) as f64 * fraction) as i64;
    if fraction <= 0.0 {
        return (timestamps.len(), hi.saturating_add(1));
    }
    (timestamps.partition_point(|&t| t < cut), cut)
}

/// Fit a model on replayed data with a time-based validation split.
pub fn train_model(
    data: &Replayed,
    cfg: &TrainConfig,
    progress: impl FnMut(TrainProgress),
) -> Result<(Model, TrainReport), DetectError> {
    let (split, split_time_ms) = time_split(&data.timestamps, cfg.validation_fraction);
    let train_set = data.dataset.slice(0..split);
    let valid_set = data.dataset.slice(split..data.dataset.len());
    let has_valid = valid_set.labels().iter().any(|&y| y) && valid_set.labels().iter().any(|&y| !y);
    if !has_valid {
        tracing::warn!("validation split lacks one class; training without early stopping");
    }
    let trained = gbdt::train(
        &train_set,
        has_valid.then_some(&valid_set),
        &cfg.gbdt,
        progress,
    )?;
    let (mut valid_ap, mut valid_auc, mut p90) = (None, None, None);
    let mut calibration = (1.0, 0.0);
    if !valid_set.is_empty() {
        let margins: Vec<f64> = (0..valid_set.len())
            .map(|i| trained.ensemble.margin(valid_set.row(i)))
            .collect();
        if has_valid {
            calibration = gbdt::fit_platt(&margins, valid_set.labels());
        }
        // Rank metrics on the margins (calibration is monotone; probabilities could
        // saturate into ties), thresholds reported as calibrated probabilities.
        let (a, b) = calibration;
        valid_ap = average_precision(valid_set.labels(), &margins);
        valid_auc = roc_auc(valid_set.labels(), &margins);
        p90 = recall_at_precision(valid_set.labels(), &margins, 0.9)
            .map(|(r, m)| (r, sigmoid(a * m + b)));
    }
    let total_gain: f64 = trained.ensemble.gain.iter().sum();
    let mut importance: Vec<(String, f64)> = trained
        .ensemble
        .gain
        .iter()
        .enumerate()
        .filter(|(_, g)| **g > 0.0)
        .filter_map(|(i, g)| {
            Feature::from_index(i).map(|f| (f.name().to_owned(), g / total_gain.max(1e-12)))
        })
        .collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    let count_pos = |d: &Dataset| d.labels().iter().filter(|&&y| y).count();
    let report = TrainReport {
        train_rows: train_set.len(),
        train_positives: count_pos(&train_set),
        valid_rows: valid_set.len(),
        valid_positives: count_pos(&valid_set),
        split_time_ms,
        trees_built: trained.trees_built,
        trees_kept: trained.best_trees,
        scale_pos_weight: trained.scale_pos_weight,
        calibration: [calibration.0, calibration.1],
        valid_ap,
        valid_auc,
        valid_recall_at_p90: p90.map(|p| p.0),
        valid_threshold_at_p90: p90.map(|p| p.1),
        importance: importance.clone(),
    };
    let meta = ModelMeta {
        model_id: String::new(),
        trained_rows: report.train_rows,
        trained_positives: report.train_positives,
        validation_rows: report.valid_rows,
        validation_ap: valid_ap,
        validation_auc: valid_auc,
        scale_pos_weight: trained.scale_pos_weight,
        importance: importance.into_iter().take(15).collect(),
        note: String::new(),
        merchant_state: data.merchant_state.clone(),
    };
    let model = Model::new(trained.ensemble, meta).with_calibration(calibration.0, calibration.1);
    Ok((model, report))
}

/// Parse an RFC 3339 time (e.g. `2024-03-01T00:00:00Z`) into milliseconds since the epoch.
pub fn parse_time_ms(text: &str) -> Result<i64, DetectError> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| DetectError::Config(format!("invalid RFC 3339 time {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_merchant_replay_does_not_depend_on_the_partition_count() {
        let events: Vec<LabelledTransaction> =
            veritas_events::Generator::new(veritas_events::GeneratorConfig {
                seed: 3,
                customers: 300,
                days: Some(4),
                ..veritas_events::GeneratorConfig::default()
            })
            .unwrap()
            .collect();
        let replay_with = |partitions: u32, shared: bool| {
            let cfg = EngineConfig {
                partitions,
                shared_merchants: shared,
                ..EngineConfig::default()
            };
            replay(&events, &cfg)
        };
        let one = replay_with(1, true);
        let six = replay_with(6, true);
        assert_eq!(one.merchant_state, "shared:900");
        assert_eq!(one.dataset.len(), events.len());
        let differing = |a: &Replayed, b: &Replayed| {
            (0..a.dataset.len())
                .filter(|&i| {
                    let (x, y) = (a.dataset.row(i), b.dataset.row(i));
                    x.iter().zip(y).any(|(p, q)| p.to_bits() != q.to_bits())
                })
                .count()
        };
        assert_eq!(
            differing(&one, &six),
            0,
            "shared state must not depend on the split"
        );
        // The control: merchant state per partition does.
        let (one_local, six_local) = (replay_with(1, false), replay_with(6, false));
        assert_eq!(six_local.merchant_state, "partition");
        assert!(differing(&one_local, &six_local) > events.len() / 4);
    }

    #[test]
    fn time_split_takes_the_latest_fraction() {
        let ts = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(time_split(&ts, 0.2), (8, 80));
        assert_eq!(time_split(&ts, 0.0).0, ts.len());
        assert_eq!(time_split(&[], 0.2), (0, 0));
    }

    #[test]
    fn platt_recovers_a_known_calibration() {
        // Labels drawn with p = sigmoid(2m - 1) on a grid: the fit must find (2, -1).
        let mut margins = Vec::new();
        let mut labels = Vec::new();
        for i in 0..400 {
            let m = -3.0 + 6.0 * f64::from(i) / 400.0;
            let p = sigmoid(2.0 * m - 1.0);
            // 100 copies per point, with round(100 p) positives: exact expected counts.
            let pos = (p * 100.0).round() as usize;
            for k in 0..100 {
                margins.push(m);
                labels.push(k < pos);
            }
        }
        let (a, b) = gbdt::fit_platt(&margins, &labels);
        assert!((a - 2.0).abs() < 0.05 && (b + 1.0).abs() < 0.05, "{a} {b}");
        assert_eq!(gbdt::fit_platt(&[1.0, 2.0], &[true, true]), (1.0, 0.0));
        // Perfectly separable data: the fit stays finite and order-preserving.
        let margins: Vec<f64> = (0..200).map(|i| f64::from(i) / 10.0 - 10.0).collect();
        let labels: Vec<bool> = margins.iter().map(|&m| m > 5.0).collect();
        let (a, b) = gbdt::fit_platt(&margins, &labels);
        assert!(
            a.is_finite() && b.is_finite() && a > 0.0 && a < 1e3,
            "{a} {b}"
        );
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(parse_time_ms("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert!(parse_time_ms("yesterday").is_err());
    }
}
