//! The canonical card-transaction event, and the labels that may travel with it.
//!
//! This is the contract between the producer, the detector and the evaluation: every
//! component reads and writes [`Transaction`]. The JSON form is documented in
//! `docs/events.md` and `docs/transaction.schema.json`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// Where a transaction was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Card present at a point-of-sale terminal.
    Pos,
    /// Card not present: e-commerce, phone or mail order.
    Online,
    /// Cash withdrawal at an ATM.
    Atm,
}

impl Channel {
    /// The lowercase wire name (`pos`, `online`, `atm`).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Pos => "pos",
            Channel::Online => "online",
            Channel::Atm => "atm",
        }
    }

    /// Whether the physical card (and so the cardholder's location) is involved.
    pub fn is_card_present(self) -> bool {
        matches!(self, Channel::Pos | Channel::Atm)
    }
}

/// One card transaction: the canonical event.
///
/// Required: `transaction_id`, `timestamp`, `card_number`, `amount`. Everything else is
/// optional, so that sparse real-world feeds (and the tutorial's four-field format, see
/// [`crate::BankAccount`]) map onto it. Unknown JSON fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Unique id of the transaction.
    pub transaction_id: String,
    /// When the transaction happened (event time), RFC 3339, UTC.
    pub timestamp: DateTime<Utc>,
    /// The card's PAN as digits (no spaces).
    pub card_number: String,
    /// Amount in `currency` units (not minor units).
    pub amount: f64,
    /// Stable id of the cardholder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Cardholder's first name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Cardholder's last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// ISO 4217 code; `USD` when absent.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Merchant display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    /// Stable merchant (or terminal) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    /// Merchant category (e.g. `grocery`, `electronics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `pos`, `online` or `atm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Latitude where the transaction happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    /// Longitude where the transaction happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    /// Cardholder's home / billing latitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_lat: Option<f64>,
    /// Cardholder's home / billing longitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_lon: Option<f64>,
    /// City where the transaction happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Country (ISO 3166-1 alpha-2) where the transaction happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

fn default_currency() -> String {
    "USD".to_owned()
}

/// Ground truth attached to a transaction in labelled data.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Label {
    /// Whether the transaction is fraudulent. Accepts `0`/`1` and `true`/`false`.
    #[serde(deserialize_with = "de_flag")]
    pub is_fraud: bool,
    /// Name of the fraud scenario that produced it (absent for legitimate traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
}

/// A transaction with its label, as stored in labelled `.jsonl` / `.csv` files.
///
/// The label fields sit beside the transaction fields in the same flat JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledTransaction {
    /// The event itself.
    #[serde(flatten)]
    pub tx: Transaction,
    /// Its ground truth.
    #[serde(flatten)]
    pub label: Label,
}

/// Deserialize a fraud flag given as a bool, an integer 0/1, or the strings
/// `"0"`, `"1"`, `"true"`, `"false"` (CSV files carry strings).
fn de_flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
        Float(f64),
        Str(String),
    }
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(b),
        Flag::Int(0) => Ok(false),
        Flag::Int(1) => Ok(true),
        Flag::Float(f) if f == 0.0 => Ok(false),
        Flag::Float(f) if f == 1.0 => Ok(true),
        Flag::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "0" | "false" => Ok(false),
            "1" | "true" => Ok(true),
            other => Err(serde::de::Error::custom(format!(
                "is_fraud must be 0/1 or true/false, got {other:?}"
            ))),
        },
        _ => Err(serde::de::Error::custom(
            "is_fraud must be 0/1 or true/false",
        )),
    }
}
