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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BankAccount, Channel};
    use chrono::TimeZone;
    use proptest::prelude::*;

    const TUTORIAL: &str = r#"{"FirstName":"Jimmie","LastName":"Swaniawski","CreditCardNumber":"3558018114425614","Amount":644.78}"#;

    fn ctx() -> RecordContext<'static> {
        RecordContext::new("bankaccount", 3, 42, 1_700_000_000_123)
    }

    fn err(json: &str) -> EventError {
        match decode_event(json.as_bytes(), &ctx()) {
            Ok(tx) => panic!("accepted {json}: {tx:?}"),
            Err(e) => e,
        }
    }

    fn invalid_field(json: &str) -> &'static str {
        match err(json) {
            EventError::InvalidField { field, .. } => field,
            other => panic!("{json}: expected InvalidField, got {other}"),
        }
    }

    #[test]
    fn tutorial_event_is_accepted_verbatim() {
        let tx = decode_event(TUTORIAL.as_bytes(), &ctx()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tx.transaction_id, "bankaccount/3/42");
        assert_eq!(
            tx.timestamp,
            Utc.timestamp_millis_opt(1_700_000_000_123)
                .single()
                .unwrap_or_default()
        );
        assert_eq!(tx.card_number, "3558018114425614");
        assert_eq!(tx.amount, 644.78);
        assert_eq!(tx.first_name.as_deref(), Some("Jimmie"));
        assert_eq!(tx.last_name.as_deref(), Some("Swaniawski"));
        assert_eq!(tx.currency, "USD");
        assert_eq!(tx.channel, None);
        // The same record always maps to the same transaction.
        assert_eq!(decode_event(TUTORIAL.as_bytes(), &ctx()).ok(), Some(tx));
    }

    #[test]
    fn tutorial_struct_round_trips_with_go_names() {
        let b: BankAccount = serde_json::from_str(TUTORIAL).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.first_name, "Jimmie");
        assert_eq!(serde_json::to_string(&b).ok().as_deref(), Some(TUTORIAL));
        let tx = b.into_transaction(&ctx()).unwrap_or_else(|e| panic!("{e}"));
        let back = BankAccount::from_transaction(&tx);
        assert_eq!(serde_json::to_string(&back).ok().as_deref(), Some(TUTORIAL));
    }

    #[test]
    fn tutorial_event_errors_name_the_tutorial_fields() {
        assert_eq!(
            invalid_field(r#"{"FirstName":"A","CreditCardNumber":"35580x8114425614","Amount":1}"#),
            "CreditCardNumber"
        );
        assert_eq!(
            invalid_field(r#"{"CreditCardNumber":"3558018114425614","Amount":-1}"#),
            "Amount"
        );
        assert!(matches!(
            err(r#"{"FirstName":"A","Amount":1}"#),
            EventError::MissingField("CreditCardNumber")
        ));
        assert!(matches!(
            err(r#"{"CreditCardNumber":"3558018114425614"}"#),
            EventError::MissingField("Amount")
        ));
        // Grouped digits are accepted.
        let tx = decode_event(
            br#"{"CreditCardNumber":"3558 0181-1442 5614","Amount":1}"#,
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tx.card_number, "3558018114425614");
        assert_eq!(tx.first_name, None);
        // Without a record timestamp there is no event time.
        let no_time = RecordContext::new("bankaccount", 0, 0, -1);
        match decode_event(TUTORIAL.as_bytes(), &no_time) {
            Err(EventError::InvalidField { field, .. }) => assert_eq!(field, "timestamp"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn canonical_minimal_and_full_events() {
        let tx = decode_event(
            br#"{"transaction_id":"t1","timestamp":"2025-03-01T12:00:00Z","card_number":"4111111111111111","amount":12.5}"#,
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tx.transaction_id, "t1");
        assert_eq!(tx.currency, "USD");
        assert_eq!(tx.merchant, None);

        let full = r#"{"transaction_id":"t2","timestamp":"2025-03-01T13:00:00.250+01:00",
            "card_number":"378282246310005","amount":0,"customer_id":"c1","first_name":"A",
            "last_name":"B","currency":"EUR","merchant":"M","merchant_id":"m1",
            "category":"grocery","channel":"pos","lat":48.85,"lon":2.35,"home_lat":48.9,
            "home_lon":2.3,"city":"Paris","country":"FR","future_field":{"x":[1,2]},
            "is_fraud":1,"scenario":"whatever"}"#;
        let tx = decode_event(full.as_bytes(), &ctx()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tx.timestamp.to_rfc3339(), "2025-03-01T12:00:00.250+00:00");
        assert_eq!(tx.channel, Some(Channel::Pos));
        assert_eq!(tx.location(), Some((48.85, 2.35)));
        assert_eq!(tx.home(), Some((48.9, 2.3)));
        assert_eq!(tx.currency, "EUR");
        assert_eq!(tx.country.as_deref(), Some("FR"));
        assert_eq!(tx.is_card_present(), Some(true));
    }

    #[test]
    fn canonical_violations_are_precise() {
        let base = |extra: &str| {
            format!(
                r#"{{"transaction_id":"t","timestamp":"2025-03-01T12:00:00Z","card_number":"4111111111111111","amount":1{extra}}}"#
            )
        };
        assert!(matches!(
            err(
                r#"{"transaction_id":"t","timestamp":"2025-03-01T12:00:00Z","card_number":"4111111111111111"}"#
            ),
            EventError::MissingField("amount")
        ));
        assert!(matches!(
            err(
                r#"{"timestamp":"2025-03-01T12:00:00Z","card_number":"4111111111111111","amount":1}"#
            ),
            EventError::MissingField("transaction_id")
        ));
        assert!(matches!(
            err(r#"{"transaction_id":"t","card_number":"4111111111111111","amount":1}"#),
            EventError::MissingField("timestamp")
        ));
        assert!(matches!(
            err(r#"{"transaction_id":"t","timestamp":"2025-03-01T12:00:00Z","amount":1}"#),
            EventError::MissingField("card_number")
        ));
        let cases = [
            (r#","channel":"mail""#, "channel"),
            (r#","lat":91,"lon":0"#, "lat"),
            (r#","lat":10"#, "lon"),
            (r#","home_lon":10"#, "home_lat"),
            (r#","home_lat":10,"home_lon":-181"#, "home_lon"),
            (r#","currency":"usd""#, "currency"),
            (r#","currency":"DOLLAR""#, "currency"),
            (r#","country":"USA""#, "country"),
            (r#","customer_id":"""#, "customer_id"),
        ];
        for (extra, field) in cases {
            assert_eq!(invalid_field(&base(extra)), field, "{extra}");
        }
        assert_eq!(
            invalid_field(
                r#"{"transaction_id":"t","timestamp":"yesterday","card_number":"4111111111111111","amount":1}"#
            ),
            "timestamp"
        );
        assert_eq!(
            invalid_field(
                r#"{"transaction_id":"t","timestamp":"2025-03-01T12:00:00Z","card_number":"41111","amount":1}"#
            ),
            "card_number"
        );
        assert_eq!(
            invalid_field(
                r#"{"transaction_id":"t","timestamp":"2025-03-01T12:00:00Z","card_number":"4111111111111111","amount":-0.01}"#
            ),
            "amount"
        );
        assert_eq!(
            invalid_field(
                r#"{"transaction_id":"","timestamp":"2025-03-01T12:00:00Z","card_number":"4111111111111111","amount":1}"#
            ),
            "transaction_id"
        );
        // Wrong JSON types and syntax come with serde_json's position.
        let e = err(
            r#"{"transaction_id":"t","timestamp":"2025-03-01T12:00:00Z","card_number":"4111111111111111","amount":"12"}"#,
        );
        assert!(matches!(e, EventError::Json(_)), "{e}");
        assert!(e.to_string().contains("column"), "{e}");
        assert!(matches!(err("{not json"), EventError::Json(_)));
        assert!(matches!(err("[1,2]"), EventError::Json(_)));
        assert!(matches!(
            err(r#"{"hello":"world"}"#),
            EventError::UnknownFormat
        ));
        assert!(matches!(err("{}"), EventError::UnknownFormat));
        assert!(matches!(err(&base(r#","amount":2"#)), EventError::Json(_)));
        assert!(matches!(err(&base(r#","lat":1e999"#)), EventError::Json(_)));
    }

    #[test]
    fn labelled_flags_in_every_spelling() {
        let line = |flag: &str| {
            format!(
                r#"{{"transaction_id":"t","timestamp":"2025-03-01T12:00:00Z","card_number":"4111111111111111","amount":1,"is_fraud":{flag}}}"#
            )
        };
        for (flag, want) in [
            ("1", true),
            ("0", false),
            ("true", true),
            ("false", false),
            (r#""1""#, true),
            (r#""False""#, false),
            ("1.0", true),
        ] {
            let got = decode_labelled(line(flag).as_bytes()).map(|l| l.label.is_fraud);
            assert_eq!(got.ok(), Some(want), "{flag}");
        }
        for flag in ["2", "-1", r#""yes""#, "0.5"] {
            assert!(decode_labelled(line(flag).as_bytes()).is_err(), "{flag}");
        }
        assert!(matches!(
            decode_labelled(line("null").as_bytes()),
            Err(EventError::MissingField("is_fraud"))
        ));
        assert!(decode_labelled(TUTORIAL.as_bytes()).is_err());
    }

    pub(crate) fn arb_transaction() -> impl Strategy<Value = Transaction> {
        let id = "[a-zA-Z0-9_/\\-\"\\\\é]{1,40}";
        let text =
            proptest::option::of("[ -~éü😀]{0,30}".prop_filter("non-empty", |s| !s.is_empty()));
        let coord = |max: i64| {
            proptest::option::of((-max * 1_000_000..=max * 1_000_000).prop_map(|v| v as f64 / 1e6))
        };
        (
            (
                id,
                -62_135_596_800_000i64..253_402_300_799_000,
                "[0-9]{12,19}",
                0u64..10_000_000_000u64,
            ),
            (
                proptest::option::of(id),
                text.clone(),
                text.clone(),
                "[A-Z]{3}",
            ),
            (
                text.clone(),
                proptest::option::of(id),
                text.clone(),
                proptest::option::of(prop_oneof![
                    Just(Channel::Pos),
                    Just(Channel::Online),
                    Just(Channel::Atm)
                ]),
            ),
            (
                proptest::option::of((coord(90), coord(180))),
                proptest::option::of((coord(90), coord(180))),
            ),
            (text, proptest::option::of("[A-Z]{2}")),
        )
            .prop_map(
                |(
                    (id, ms, card, cents),
                    (cust, first, last, currency),
                    (merchant, merchant_id, category, channel),
                    (loc, home),
                    (city, country),
                )| {
                    let (lat, lon) = match loc {
                        Some((Some(a), Some(b))) => (Some(a), Some(b)),
                        _ => (None, None),
                    };
                    let (home_lat, home_lon) = match home {
                        Some((Some(a), Some(b))) => (Some(a), Some(b)),
                        _ => (None, None),
                    };
                    Transaction {
                        transaction_id: id,
                        timestamp: DateTime::from_timestamp_millis(ms).unwrap_or_default(),
                        card_number: card,
                        amount: cents as f64 / 100.0,
                        customer_id: cust,
                        first_name: first,
                        last_name: last,
                        currency,
                        merchant,
                        merchant_id,
                        category,
                        channel,
                        lat,
                        lon,
                        home_lat,
                        home_lon,
                        city,
                        country,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn canonical_round_trip(tx in arb_transaction()) {
            prop_assert!(tx.validate().is_ok());
            let bytes = encode_event(&tx);
            let back = decode_event(&bytes, &ctx());
            prop_assert_eq!(back.ok(), Some(tx.clone()));
            // The model's own serde derive agrees with the wire form.
            let derived = serde_json::to_vec(&tx).unwrap_or_default();
            prop_assert_eq!(decode_event(&derived, &ctx()).ok(), Some(tx.clone()));
            let parsed: Result<Transaction, _> = serde_json::from_slice(&bytes);
            prop_assert_eq!(parsed.ok(), Some(tx.clone()));
        }

        #[test]
        fn labelled_round_trip(tx in arb_transaction(), fraud: bool, scenario in proptest::option::of("[a-z_]{1,20}")) {
            let event = LabelledTransaction { tx, label: Label { is_fraud: fraud, scenario } };
            let mut bytes = Vec::new();
            encode_labelled_into(&event, &mut bytes);
            prop_assert_eq!(decode_labelled(&bytes).ok(), Some(event.clone()));
            let derived = serde_json::to_vec(&event).unwrap_or_default();
            prop_assert_eq!(decode_labelled(&derived).ok(), Some(event.clone()));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_event(&bytes, &ctx());
            let _ = decode_labelled(&bytes);
        }

        #[test]
        fn mutated_events_never_panic(tx in arb_transaction(), cut in 0usize..400, byte: u8) {
            let mut bytes = encode_event(&tx);
            if !bytes.is_empty() {
                let i = cut % bytes.len();
                bytes[i] = byte;
            }
            let _ = decode_event(&bytes, &ctx());
        }
    }
}
