//! Decoding Kafka record values into transactions, and encoding them back.

use chrono::{DateTime, Utc};

use crate::wire::{decode_labelled_json, Shape, WireEvent, WireOut};
use crate::{EventError, Label, LabelledTransaction, Transaction};

/// What the Kafka record around an event value tells about it: where it sits (used to
/// give id-less formats a stable id) and its timestamp (used as event time by formats
/// that carry none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordContext<'a> {
    /// Topic the record was read from.
    pub topic: &'a str,
    /// Partition of the record.
    pub partition: i32,
    /// Offset of the record in its partition.
    pub offset: i64,
    /// The record's timestamp in milliseconds since the Unix epoch (`-1` when absent).
    pub timestamp_ms: i64,
}

impl<'a> RecordContext<'a> {
    /// Context of the record at `topic`/`partition`/`offset` with timestamp `timestamp_ms`.
    pub fn new(topic: &'a str, partition: i32, offset: i64, timestamp_ms: i64) -> Self {
        RecordContext {
            topic,
            partition,
            offset,
            timestamp_ms,
        }
    }

    /// Stable id for an event that has none: `topic/partition/offset`, unique per record
    /// and identical every time the record is re-read.
    pub fn id_hint(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }

    /// The record timestamp, if present and representable.
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        if self.timestamp_ms < 0 {
            return None;
        }
        DateTime::from_timestamp_millis(self.timestamp_ms)
    }
}

/// Decode one Kafka record value into a validated [`Transaction`].
///
/// Accepts the canonical JSON event (extra fields, including labels, are ignored) and the
/// tutorial's `{"FirstName","LastName","CreditCardNumber","Amount"}` event, whose id and
/// time come from `ctx`. Anything else, or an event that violates the schema, yields an
/// [`EventError`] that says precisely why (for the dead-letter topic).
pub fn decode_event(value: &[u8], ctx: &RecordContext<'_>) -> Result<Transaction, EventError> {
    let wire: WireEvent<'_> = serde_json::from_slice(value)?;
    match wire.shape()? {
        Shape::Canonical => wire.into_canonical().map(|(tx, _, _)| tx),
        Shape::Tutorial => wire.into_bank_account()?.into_transaction(ctx),
    }
}

/// Decode one labelled event (canonical JSON plus `is_fraud` and optional `scenario`),
/// validated. `is_fraud` is required.
pub fn decode_labelled(value: &[u8]) -> Result<LabelledTransaction, EventError> {
    decode_labelled_json(value)
}

/// Append the canonical JSON of `tx` (no trailing newline) to `out`.
pub fn encode_event_into(tx: &Transaction, out: &mut Vec<u8>) {
    write_json(tx, None, out);
}

/// The canonical JSON of `tx`, as sent in a Kafka record value.
pub fn encode_event(tx: &Transaction) -> Vec<u8> {
    let mut out = Vec::with_capacity(384);
    encode_event_into(tx, &mut out);
    out
}

/// Append the JSON of a labelled event (transaction fields, then `is_fraud`, `scenario`)
/// to `out`, without a trailing newline.
pub fn encode_labelled_into(event: &LabelledTransaction, out: &mut Vec<u8>) {
    write_json(&event.tx, Some(&event.label), out);
}

fn write_json(tx: &Transaction, label: Option<&Label>, out: &mut Vec<u8>) {
    let view = WireOut::new(tx, label);
    // Serializing plain strings, numbers and a timestamp into a Vec cannot fail; a
    // non-finite amount or coordinate becomes `null` (serde_json's rule), which the
    // decoder then rejects, so nothing is silently altered.
    if let Err(e) = serde_json::to_writer(&mut *out, &view) {
        debug_assert!(false, "serializing an event into memory failed: {e}");
        tracing::error!(error = %e, "serializing an event into memory failed");
    }
}
