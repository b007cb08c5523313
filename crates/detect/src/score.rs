//! Scores, decisions and the [`Detector`] facade (engine + rules + model).
//!
//! # Score combination
//!
//! ```text
//! margin = model log-odds            (or logit(prior) without a model)
//!        + Σ weight(rule) over rules that fired     (weights ≥ 0)
//! score  = sigmoid(margin) ∈ (0, 1)
//! ```
//!
//! The score is monotone: non-decreasing in the model probability and in every rule hit.
//! `score ≥ decline_threshold` → DECLINE, `score ≥ review_threshold` → REVIEW, else APPROVE.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use veritas_events::Transaction;

use crate::engine::{Engine, EngineConfig};
use crate::error::DetectError;
use crate::features::{Feature, Features, NUM_FEATURES};
use crate::gbdt::sigmoid;
use crate::model::Model;
use crate::rules::{RuleHit, RulesConfig};
use crate::shared::SharedView;

/// The default configuration file, `config/rules.toml`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../../config/rules.toml");

/// Decision thresholds and scoring settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionConfig {
    /// Scores at or above this are REVIEW (or DECLINE).
    pub review_threshold: f64,
    /// Scores at or above this are DECLINE.
    pub decline_threshold: f64,
    /// Fraud probability assumed when no model is loaded.
    pub prior: f64,
    /// How many model features to name in the reasons of non-APPROVE decisions.
    pub max_feature_reasons: usize,
    /// Factor applied to rule weights when a model is loaded (the model already sees the
    /// rules' inputs; rules then act as a policy nudge). 1 = full weight, 0 = reasons only.
    pub rule_weight_scale_with_model: f64,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        Self {
            review_threshold: 0.5,
            decline_threshold: 0.9,
            prior: 0.05,
            max_feature_reasons: 3,
            rule_weight_scale_with_model: 0.25,
        }
    }
}

/// Complete detector configuration: the rules file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Engine settings.
    pub engine: EngineConfig,
    /// Thresholds.
    pub decision: DecisionConfig,
    /// Rules.
    pub rules: RulesConfig,
}

impl DetectorConfig {
    /// Check that `model` was trained with merchant state kept the way this configuration
    /// serves it (per partition, or shared with the same interval).
    pub fn check_model(&self, model: &Model) -> Result<(), DetectError> {
        let recorded = model.meta().merchant_state.as_str();
        let trained = if recorded.is_empty() {
            "partition"
        } else {
            recorded
        };
        let configured = self.engine.merchant_state();
        if trained == configured {
            Ok(())
        } else {
            Err(DetectError::MerchantStateMismatch {
                model: trained.to_owned(),
                configured,
            })
        }
    }

    /// Parse and validate a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Self, DetectError> {
        let cfg: DetectorConfig =
            toml::from_str(text).map_err(|e| DetectError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The embedded default (`config/rules.toml`).
    pub fn default_toml() -> Result<Self, DetectError> {
        Self::from_toml(DEFAULT_CONFIG_TOML)
    }

    /// Check value ranges.
    pub fn validate(&self) -> Result<(), DetectError> {
        let d = &self.decision;
        let in_unit = |x: f64| x > 0.0 && x < 1.0;
        if !(in_unit(d.review_threshold) && in_unit(d.decline_threshold)) {
            return Err(DetectError::Config(
                "decision thresholds must lie strictly between 0 and 1".into(),
            ));
        }
        if d.review_threshold > d.decline_threshold {
            return Err(DetectError::Config(
                "review_threshold must not exceed decline_threshold".into(),
            ));
        }
        if !(d.rule_weight_scale_with_model.is_finite() && d.rule_weight_scale_with_model >= 0.0) {
            return Err(DetectError::Config(
                "rule_weight_scale_with_model must be a finite number ≥ 0".into(),
            ));
        }
        if !in_unit(d.prior) {
            return Err(DetectError::Config(
                "prior must lie strictly between 0 and 1".into(),
            ));
        }
        for (name, _, weight) in self.rules.summary() {
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(DetectError::Config(format!(
                    "rule {name}: weight must be a finite number ≥ 0 (got {weight})"
                )));
            }
        }
        Ok(())
    }
}

/// The outcome for one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Let it through.
    Approve,
    /// Let it through, flag for an analyst.
    Review,
    /// Block it.
    Decline,
}

impl Verdict {
    /// Upper-case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "APPROVE",
            Verdict::Review => "REVIEW",
            Verdict::Decline => "DECLINE",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision record emitted per transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The transaction's id.
    pub transaction_id: String,
    /// Card number masked to first 6 and last 4 digits.
    pub card: String,
    /// Fraud score in [0, 1].
    pub score: f64,
    /// The verdict.
    pub decision: Verdict,
    /// Rule hits first, then (for REVIEW/DECLINE) the features that raised the score most.
    pub reasons: Vec<String>,
    /// `gbdt-v…` of the model, or `rules-only`.
    pub model_version: String,
    /// The event time of the transaction.
    pub event_time: DateTime<Utc>,
    /// Processing latency in microseconds, measured and set by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
}

/// Mask a card number: keep the first 6 and last 4 characters, star the rest.
/// Numbers of 10 characters or fewer keep only the last 4 (and at most half).
pub fn mask_card(card: &str) -> String {
    if card.is_ascii() {
        let n = card.len();
        let (head, tail) = if n > 10 { (6, 4) } else { (0, (n / 2).min(4)) };
        let mut out = String::with_capacity(n);
        for (i, c) in card.chars().enumerate() {
            out.push(if i < head || i >= n - tail { c } else { '*' });
        }
        return out;
    }
    let chars: Vec<char> = card.chars().collect();
    let n = chars.len();
    let (head, tail) = if n > 10 { (6, 4) } else { (0, (n / 2).min(4)) };
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| if i < head || i >= n - tail { c } else { '*' })
        .collect()
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

/// Combine a model probability (or prior) with rule weights: see the module docs.
pub fn combine(probability: f64, rule_weights: impl IntoIterator<Item = f64>) -> f64 {
    let margin = logit(probability) + rule_weights.into_iter().map(|w| w.max(0.0)).sum::<f64>();
    sigmoid(margin)
}

/// Everything computed for one event, before it is turned into a [`Decision`].
#[derive(Debug, Clone)]
pub struct Assessment {
    /// The features.
    pub features: Features,
    /// Model probability (or the prior without a model).
    pub model_probability: f64,
    /// Rules that fired.
    pub hits: Vec<RuleHit>,
    /// Final score.
    pub score: f64,
    /// Verdict.
    pub verdict: Verdict,
    /// Per-feature contributions to the model margin (computed for REVIEW and DECLINE
    /// only; zeros otherwise and without a model).
    pub contributions: [f32; NUM_FEATURES],
}

/// Engine + rules + model: turns transactions into decisions.
#[derive(Debug, Clone)]
pub struct Detector {
    engine: Engine,
    config: DetectorConfig,
    model: Option<Model>,
}

impl Detector {
    /// A detector with a fresh engine.
    pub fn new(config: DetectorConfig, model: Option<Model>) -> Self {
        Self {
            engine: Engine::new(config.engine.clone()),
            config,
            model,
        }
    }

    /// Replace the engine (e.g. with one restored from a snapshot).
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, mutably (snapshots, changelog).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// The model, if any.
    pub fn model(&self) -> Option<&Model> {
        self.model.as_ref()
    }

    /// The version string recorded in decisions.
    pub fn model_version(&self) -> &str {
        self.model.as_ref().map_or("rules-only", Model::version)
    }

    /// Score already-computed features (no state change).
    pub fn assess_features(&self, features: Features) -> Assessment {
        let mut contributions = [0f32; NUM_FEATURES];
        let model_probability = match &self.model {
            Some(m) => sigmoid(m.margin(features.as_slice())),
            None => self.config.decision.prior,
        };
        let mut hits = Vec::new();
        self.config.rules.evaluate(&features, &mut hits);
        let scale = if self.model.is_some() {
            self.config.decision.rule_weight_scale_with_model
        } else {
            1.0
        };
        let score = combine(model_probability, hits.iter().map(|h| h.weight * scale));
        let d = &self.config.decision;
        let verdict = if score >= d.decline_threshold {
            Verdict::Decline
        } else if score >= d.review_threshold {
            Verdict::Review
        } else {
            Verdict::Approve
        };
        // Attributions are only reported for REVIEW/DECLINE: compute them only then (a
        // second walk of the trees, on the few flagged events).
        if verdict != Verdict::Approve {
            if let Some(m) = &self.model {
                m.margin_with_contrib(features.as_slice(), &mut contributions);
            }
        }
        Assessment {
            features,
            model_probability,
            hits,
            score,
            verdict,
            contributions,
        }
    }

    /// Process one transaction: features from past state, state update, score, decision.
    pub fn process(&mut self, tx: &Transaction) -> Decision {
        let features = self.engine.process(tx);
        let a = self.assess_features(features);
        self.decide(tx, &a)
    }

    /// [`Detector::process`] with merchant and category features from shared state
    /// ([`crate::shared`]).
    pub fn process_shared(&mut self, tx: &Transaction, shared: &SharedView<'_>) -> Decision {
        let features = self.engine.process_shared(tx, shared).0;
        let a = self.assess_features(features);
        self.decide(tx, &a)
    }

    /// Build the decision record for an assessment.
    pub fn decide(&self, tx: &Transaction, a: &Assessment) -> Decision {
        let mut reasons: Vec<String> = a.hits.iter().map(|h| h.reason.clone()).collect();
        if a.verdict != Verdict::Approve && self.model.is_some() {
            let mut top: Vec<(usize, f32)> = a
                .contributions
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, c)| *c > 0.05)
                .collect();
            top.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
            for (i, c) in top
                .into_iter()
                .take(self.config.decision.max_feature_reasons)
            {
                if let Some(f) = Feature::from_index(i) {
                    let value = a.features.get(f).map_or_else(
                        || "missing".to_owned(),
                        |v| {
                            format!("{v:.4}")
                                .trim_end_matches('0')
                                .trim_end_matches('.')
                                .to_owned()
                        },
                    );
                    reasons.push(format!("model: {}={value} (+{c:.2} log-odds)", f.name()));
                }
            }
        }
        Decision {
            transaction_id: tx.transaction_id.clone(),
            card: mask_card(&tx.card_number),
            score: a.score,
            decision: a.verdict,
            reasons,
            model_version: self.model_version().to_owned(),
            event_time: tx.timestamp,
            latency_us: None,
        }
    }
}
