//! Error types of the detection engine.

use thiserror::Error;

/// Why a snapshot, changelog record or model file could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before a complete value was read.
    #[error("unexpected end of input at byte {at} (needed {needed} more bytes)")]
    UnexpectedEnd {
        /// Offset where the read started.
        at: usize,
        /// How many bytes the read needed.
        needed: usize,
    },
    /// The leading magic bytes did not match.
    #[error("not a veritas state record (bad magic)")]
    BadMagic,
    /// The record was written by an unsupported format version.
    #[error("unsupported state format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version found in the record.
        found: u8,
        /// Version this build understands.
        supported: u8,
    },
    /// A string was not valid UTF-8.
    #[error("invalid UTF-8 in string field")]
    InvalidUtf8,
    /// A field held a value outside its domain.
    #[error("invalid value for {0}")]
    Invalid(&'static str),
    /// Bytes were left over after the record.
    #[error("{0} trailing bytes after record")]
    TrailingBytes(usize),
}

/// Errors of the detection crate.
#[derive(Debug, Error)]
pub enum DetectError {
    /// The rules / detector configuration is not valid TOML or has invalid values.
    #[error("invalid detector configuration: {0}")]
    Config(String),
    /// A model file is not valid JSON or does not match the model schema.
    #[error("invalid model file: {0}")]
    ModelParse(#[from] serde_json::Error),
    /// A model file was written in a format version this build cannot read.
    #[error("unsupported model format version {found} (this build reads version {supported})")]
    ModelVersion {
        /// Version found in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The model was trained with merchant state kept another way than configured.
    #[error(
        "model was trained with merchant state `{model}` but the engine is configured for \
         `{configured}` ([engine] shared_merchants / shared_interval_secs); retrain the model \
         with `veritas train` under the same configuration"
    )]
    MerchantStateMismatch {
        /// What the model file records.
        model: String,
        /// What the configuration says.
        configured: String,
    },
    /// The model was trained on a different feature set than this engine computes.
    #[error(
        "model was built for feature set {found} ({found_count} features) but this engine computes \
         feature set {expected} ({expected_count} features); retrain the model with `veritas train`"
    )]
    FeatureSetMismatch {
        /// Fingerprint of the engine's feature set.
        expected: String,
        /// Number of features the engine computes.
        expected_count: usize,
        /// Fingerprint recorded in the model.
        found: String,
        /// Number of features the model declares.
        found_count: usize,
    },
    /// A model file is well-formed JSON but structurally invalid (e.g. dangling node index).
    #[error("corrupt model: {0}")]
    ModelInvalid(String),
    /// Training could not proceed (e.g. no rows, a single class).
    #[error("training failed: {0}")]
    Training(String),
    /// A snapshot or changelog record could not be decoded.
    #[error("invalid state record: {0}")]
    Decode(#[from] DecodeError),
}
