//! Errors raised while decoding, validating, reading and writing events.

use std::fmt;

/// Why an event (a Kafka record value, or one line of a labelled file) was rejected.
///
/// Every variant says precisely what is wrong so that a dead-letter record or a skipped
/// file line can be acted upon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The bytes are not JSON of the expected shape (syntax error, wrong type for a field,
    /// duplicate field…). The message carries serde_json's line and column.
    #[error("malformed event JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON object is neither a canonical event nor the tutorial's bank-account event.
    #[error(
        "not a transaction event: expected the canonical fields (transaction_id, timestamp, \
         card_number, amount) or the tutorial's (FirstName, LastName, CreditCardNumber, Amount)"
    )]
    UnknownFormat,
    /// A required field is absent (or `null`).
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// A field is present but its value violates the schema.
    #[error("invalid `{field}`: {reason}")]
    InvalidField {
        /// The offending field's wire name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A CSV header lacks a required column.
    #[error("CSV header lacks required column `{0}`")]
    MissingColumn(&'static str),
    /// A CSV row does not have as many cells as the header.
    #[error("CSV row has {found} fields, header has {expected}")]
    RowLength {
        /// Number of header columns.
        expected: usize,
        /// Number of cells in the row.
        found: usize,
    },
    /// A CSV cell is not UTF-8.
    #[error("CSV field `{0}` is not valid UTF-8")]
    NotUtf8(&'static str),
    /// The file name does not end in `.jsonl` / `.json` / `.csv`.
    #[error("unsupported file extension for {0:?}: expected .jsonl or .csv")]
    UnsupportedFormat(String),
    /// Reading or writing failed. Readers stop after reporting it.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The CSV layer failed (I/O underneath, or a malformed record).
    #[error("CSV error: {0}")]
    Csv(#[from] csv::Error),
}

impl EventError {
    /// Shorthand for [`EventError::InvalidField`].
    pub(crate) fn invalid(field: &'static str, reason: impl fmt::Display) -> Self {
        EventError::InvalidField {
            field,
            reason: reason.to_string(),
        }
    }

    /// Whether the error concerns only the one event (the caller may skip it and go on),
    /// as opposed to the underlying file or stream (the caller should stop).
    pub fn is_per_event(&self) -> bool {
        !matches!(
            self,
            EventError::Io(_) | EventError::UnsupportedFormat(_) | EventError::MissingColumn(_)
        ) && !matches!(self, EventError::Csv(e) if e.is_io_error())
    }
}
