//! The JSON wire layer: one flat, single-pass deserialization struct that recognises the
//! canonical event, its labelled form and the tutorial's bank-account event, and one flat
//! borrowed struct to serialize without cloning.
//!
//! Deserializing into a flat struct (rather than through `#[serde(flatten)]`, which buffers
//! every field) keeps parsing to one pass with one allocation per string field, the
//! strings then being moved into the [`Transaction`].

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::FlagVisitor;
use crate::tutorial::BankAccount;
use crate::{Channel, EventError, Label, LabelledTransaction, Transaction};

/// Every field any accepted format may carry. Unknown fields are ignored.
#[derive(Deserialize, Default)]
pub(crate) struct WireEvent<'a> {
    transaction_id: Option<String>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    card_number: Option<String>,
    amount: Option<f64>,
    customer_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    currency: Option<String>,
    merchant: Option<String>,
    merchant_id: Option<String>,
    category: Option<String>,
    #[serde(borrow)]
    channel: Option<Cow<'a, str>>,
    lat: Option<f64>,
    lon: Option<f64>,
    home_lat: Option<f64>,
    home_lon: Option<f64>,
    city: Option<String>,
    country: Option<String>,
    #[serde(default, deserialize_with = "de_opt_flag")]
    is_fraud: Option<bool>,
    scenario: Option<String>,
    #[serde(rename = "FirstName")]
    tutorial_first_name: Option<String>,
    #[serde(rename = "LastName")]
    tutorial_last_name: Option<String>,
    #[serde(rename = "CreditCardNumber")]
    tutorial_card_number: Option<String>,
    #[serde(rename = "Amount")]
    tutorial_amount: Option<f64>,
}

fn de_opt_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct OptFlag;
    impl<'de> serde::de::Visitor<'de> for OptFlag {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("is_fraud as 0/1, true/false or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(FlagVisitor).map(Some)
        }
    }
    d.deserialize_option(OptFlag)
}

/// Which shape a decoded object had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Canonical,
    Tutorial,
}

impl WireEvent<'_> {
    /// Canonical if it carries any canonical required field; tutorial if it carries the
    /// tutorial's card number or amount; otherwise unknown.
    pub(crate) fn shape(&self) -> Result<Shape, EventError> {
        if self.transaction_id.is_some()
            || self.card_number.is_some()
            || self.amount.is_some()
            || self.timestamp.is_some()
        {
            Ok(Shape::Canonical)
        } else if self.tutorial_card_number.is_some() || self.tutorial_amount.is_some() {
            Ok(Shape::Tutorial)
        } else {
            Err(EventError::UnknownFormat)
        }
    }

    /// Take the tutorial's four fields out.
    pub(crate) fn into_bank_account(self) -> Result<BankAccount, EventError> {
        Ok(BankAccount {
            first_name: self.tutorial_first_name.unwrap_or_default(),
            last_name: self.tutorial_last_name.unwrap_or_default(),
            credit_card_number: self
                .tutorial_card_number
                .ok_or(EventError::MissingField("CreditCardNumber"))?,
            amount: self
                .tutorial_amount
                .ok_or(EventError::MissingField("Amount"))?,
        })
    }

    /// Build (and validate) the canonical transaction, returning the label fields beside
    /// it. Label fields are ignored by callers that decode plain transactions.
    pub(crate) fn into_canonical(
        self,
    ) -> Result<(Transaction, Option<bool>, Option<String>), EventError> {
        let timestamp = parse_timestamp(
            self.timestamp
                .as_deref()
                .ok_or(EventError::MissingField("timestamp"))?,
        )?;
        let channel = match self.channel.as_deref() {
            Some(c) => Some(c.parse::<Channel>()?),
            None => None,
        };
        let tx = Transaction {
            transaction_id: self
                .transaction_id
                .ok_or(EventError::MissingField("transaction_id"))?,
            timestamp,
            card_number: self
                .card_number
                .ok_or(EventError::MissingField("card_number"))?,
            amount: self.amount.ok_or(EventError::MissingField("amount"))?,
            customer_id: self.customer_id,
            first_name: self.first_name,
            last_name: self.last_name,
            currency: self.currency.unwrap_or_else(|| "USD".to_owned()),
            merchant: self.merchant,
            merchant_id: self.merchant_id,
            category: self.category,
            channel,
            lat: self.lat,
            lon: self.lon,
            home_lat: self.home_lat,
            home_lon: self.home_lon,
            city: self.city,
            country: self.country,
        };
        tx.validate()?;
        Ok((tx, self.is_fraud, self.scenario))
    }
}

/// Parse an RFC 3339 timestamp (any offset) into UTC, with a precise error naming the
/// `timestamp` field.
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, EventError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| EventError::invalid("timestamp", format_args!("{s:?} is not RFC 3339: {e}")))
}

/// Parse one labelled JSON object (a `.jsonl` line).
pub(crate) fn decode_labelled_json(bytes: &[u8]) -> Result<LabelledTransaction, EventError> {
    let wire: WireEvent<'_> = serde_json::from_slice(bytes)?;
    match wire.shape()? {
        Shape::Canonical => {}
        Shape::Tutorial => {
            return Err(EventError::invalid(
                "transaction_id",
                "labelled files need canonical events; the tutorial's format has no label",
            ))
        }
    }
    let (tx, is_fraud, scenario) = wire.into_canonical()?;
    let is_fraud = is_fraud.ok_or(EventError::MissingField("is_fraud"))?;
    Ok(LabelledTransaction {
        tx,
        label: Label { is_fraud, scenario },
    })
}

/// A flat, borrowed view for serialization: field order is the documented one, label
/// fields follow the transaction's.
#[derive(Serialize)]
pub(crate) struct WireOut<'a> {
    transaction_id: &'a str,
    timestamp: &'a DateTime<Utc>,
    card_number: &'a str,
    amount: f64,
    currency: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merchant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merchant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<Channel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lon: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    home_lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    home_lon: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_fraud: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scenario: Option<&'a str>,
}

impl<'a> WireOut<'a> {
    /// View of a transaction, with or without its label.
    pub(crate) fn new(tx: &'a Transaction, label: Option<&'a Label>) -> Self {
        WireOut {
            transaction_id: &tx.transaction_id,
            timestamp: &tx.timestamp,
            card_number: &tx.card_number,
            amount: tx.amount,
            currency: &tx.currency,
            customer_id: tx.customer_id.as_deref(),
            first_name: tx.first_name.as_deref(),
            last_name: tx.last_name.as_deref(),
            merchant: tx.merchant.as_deref(),
            merchant_id: tx.merchant_id.as_deref(),
            category: tx.category.as_deref(),
            channel: tx.channel,
            lat: tx.lat,
            lon: tx.lon,
            city: tx.city.as_deref(),
            country: tx.country.as_deref(),
            home_lat: tx.home_lat,
            home_lon: tx.home_lon,
            is_fraud: label.map(|l| l.is_fraud),
            scenario: label.and_then(|l| l.scenario.as_deref()),
        }
    }
}
