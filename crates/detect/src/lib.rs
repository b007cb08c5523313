//! Veritas detection engine: per-card state, features, rules, gradient-boosted trees,
//! decisions and evaluation. Pure: no I/O, no clocks, no threads.
//!
//! # Pipeline
//!
//! ```text
//! Transaction ──► Engine (per-card / per-merchant state, event time)
//!                   │  features from past events only
//!                   ▼
//!               Features ──► RulesConfig::evaluate ──► rule hits (weights, reasons)
//!                   │
//!                   └──────► Model (GBDT) ──► probability + per-feature attributions
//!                                     │
//!               score = sigmoid(logit(p) + Σ rule weights) ──► APPROVE / REVIEW / DECLINE
//! ```
//!
//! * [`Engine`] computes [`Features`] ([`Feature::ALL`] lists them) and keeps bounded
//!   state per card and merchant, with window pruning, idle eviction and a lateness bound
//!   for out-of-order events. [`Engine::snapshot`] / [`Engine::restore`] and the keyed
//!   changelog ([`Engine::drain_changelog`], [`Engine::apply_changelog`]) checkpoint it.
//! * [`RulesConfig`] holds named, configurable rules (TOML, see [`DetectorConfig`]).
//! * [`gbdt`] is a histogram gradient-boosting learner; [`Model`] is its versioned,
//!   feature-set-fingerprinted file format.
//! * [`Detector`] ties engine, rules and model into [`Decision`] records.
//! * [`shared`] builds merchant and category state from every partition, frozen at
//!   event-time boundaries, so partitioned engines can read the same merchant evidence.
//! * [`training`] replays labelled history to fit a model; [`eval`] computes metrics.
//!
//! The design is documented in `docs/detection.md`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod codec;
mod engine;
mod error;
pub mod eval;
mod features;
pub mod gbdt;
mod geo;
mod hash;
mod model;
mod rules;
mod score;
pub mod shared;
mod snapshot;
mod state;
pub mod training;

pub use engine::{
    Arrival, Engine, EngineConfig, EngineStats, MemoryStats, MAX_GLOBAL_CATEGORIES, MICRO_AMOUNT,
};
pub use error::{DecodeError, DetectError};
pub use features::{
    feature_names, feature_set_fingerprint, fingerprint_of, Feature, Features, FEATURE_SET_VERSION,
    MERCHANT_EVIDENCE, NUM_FEATURES,
};
pub use geo::haversine_km;
pub use hash::partition_of;
pub use model::{FeatureSetInfo, Model, ModelMeta, MODEL_FORMAT_VERSION};
pub use rules::{
    AmountSpike, CardTesting, FarFromHome, ImpossibleTravel, MerchantCompromise,
    NewMerchantLargeAmount, RuleHit, RulesConfig, SmallThenLarge, VelocityBurst,
};
pub use score::{
    combine, mask_card, Assessment, Decision, DecisionConfig, Detector, DetectorConfig, Verdict,
    DEFAULT_CONFIG_TOML,
};
pub use snapshot::{ChangelogEntry, StateKey};
pub use state::{
    MAX_CATEGORIES_PER_CARD, MAX_COUNTRIES_PER_CARD, MAX_MERCHANTS_PER_CARD, MAX_RECENT_PER_CARD,
};

#[cfg(test)]
mod tests;
