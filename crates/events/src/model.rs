//! The canonical card-transaction event, and the labels that may travel with it.
//!
//! This is the contract between the producer, the detector and the evaluation: every
//! component reads and writes [`Transaction`]. The JSON form is documented in
//! `docs/events.md` and `docs/transaction.schema.json`.

use chrono::{DateTime, Datelike, Utc};

use crate::EventError;
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
    d.deserialize_any(FlagVisitor)
}

/// Visitor behind [`de_flag`]: accepts every spelling without buffering the value.
pub(crate) struct FlagVisitor;

impl<'de> serde::de::Visitor<'de> for FlagVisitor {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("is_fraud as 0/1 or true/false")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<bool, E> {
        match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(E::custom(format_args!(
                "is_fraud must be 0/1 or true/false, got {v}"
            ))),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<bool, E> {
        match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(E::custom(format_args!(
                "is_fraud must be 0/1 or true/false, got {v}"
            ))),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<bool, E> {
        if v == 0.0 {
            Ok(false)
        } else if v == 1.0 {
            Ok(true)
        } else {
            Err(E::custom(format_args!(
                "is_fraud must be 0/1 or true/false, got {v}"
            )))
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        parse_flag(v).ok_or_else(|| {
            E::custom(format_args!(
                "is_fraud must be 0/1 or true/false, got {v:?}"
            ))
        })
    }
}

/// Parse the textual spellings of a fraud flag: `0`, `1`, `true`, `false` (any case,
/// surrounding blanks ignored).
pub(crate) fn parse_flag(s: &str) -> Option<bool> {
    let s = s.trim();
    if s == "0" || s.eq_ignore_ascii_case("false") {
        Some(false)
    } else if s == "1" || s.eq_ignore_ascii_case("true") {
        Some(true)
    } else {
        None
    }
}

/// Longest accepted `transaction_id`, `customer_id` or `merchant_id`, in bytes.
pub const MAX_ID_LEN: usize = 128;

impl Transaction {
    /// Check every schema rule that serde's typing cannot express: non-empty id, card
    /// number of 12–19 digits, finite non-negative amount, three-letter currency code,
    /// coordinates in range and given in pairs, two-letter country code, a timestamp whose
    /// year fits RFC 3339.
    pub fn validate(&self) -> Result<(), EventError> {
        check_id("transaction_id", &self.transaction_id)?;
        validate_card_number(&self.card_number)?;
        if !self.amount.is_finite() {
            return Err(EventError::invalid("amount", "must be a finite number"));
        }
        if self.amount < 0.0 {
            return Err(EventError::invalid(
                "amount",
                format_args!("must be >= 0, got {}", self.amount),
            ));
        }
        let year = self.timestamp.year();
        if !(0..=9999).contains(&year) {
            return Err(EventError::invalid(
                "timestamp",
                format_args!("year {year} is outside RFC 3339 (0000-9999)"),
            ));
        }
        if let Some(id) = &self.customer_id {
            check_id("customer_id", id)?;
        }
        if let Some(id) = &self.merchant_id {
            check_id("merchant_id", id)?;
        }
        if !is_upper_code(&self.currency, 3) {
            return Err(EventError::invalid(
                "currency",
                format_args!(
                    "must be an ISO 4217 code of three capital letters, got {:?}",
                    self.currency
                ),
            ));
        }
        if let Some(country) = &self.country {
            if !is_upper_code(country, 2) {
                return Err(EventError::invalid(
                    "country",
                    format_args!(
                        "must be an ISO 3166-1 alpha-2 code of two capital letters, got {country:?}"
                    ),
                ));
            }
        }
        check_point(("lat", self.lat), ("lon", self.lon))?;
        check_point(("home_lat", self.home_lat), ("home_lon", self.home_lon))?;
        Ok(())
    }

    /// Where the transaction happened, when both coordinates are known.
    pub fn location(&self) -> Option<(f64, f64)> {
        Some((self.lat?, self.lon?))
    }

    /// The cardholder's home / billing location, when both coordinates are known.
    pub fn home(&self) -> Option<(f64, f64)> {
        Some((self.home_lat?, self.home_lon?))
    }

    /// Whether the card was physically present (`pos` or `atm`); `None` when the channel
    /// is unknown.
    pub fn is_card_present(&self) -> Option<bool> {
        self.channel.map(Channel::is_card_present)
    }
}

impl Label {
    /// The label of a legitimate transaction.
    pub fn legit() -> Self {
        Label {
            is_fraud: false,
            scenario: None,
        }
    }

    /// The label of a fraudulent transaction produced by `scenario`.
    pub fn fraud(scenario: impl Into<String>) -> Self {
        Label {
            is_fraud: true,
            scenario: Some(scenario.into()),
        }
    }
}

impl std::str::FromStr for Channel {
    type Err = EventError;

    /// Parse a wire name (`pos`, `online`, `atm`; ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("pos") {
            Ok(Channel::Pos)
        } else if s.eq_ignore_ascii_case("online") {
            Ok(Channel::Online)
        } else if s.eq_ignore_ascii_case("atm") {
            Ok(Channel::Atm)
        } else {
            Err(EventError::invalid(
                "channel",
                format_args!("must be one of pos, online, atm; got {s:?}"),
            ))
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Check a card number (PAN) as the schema requires: 12 to 19 ASCII digits. The Luhn
/// checksum is *not* required (see [`crate::luhn_valid`]): test cards and foreign feeds
/// carry numbers that fail it, and that is a detection signal, not a schema violation.
pub fn validate_card_number(pan: &str) -> Result<(), EventError> {
    if pan.is_empty() {
        return Err(EventError::invalid("card_number", "must not be empty"));
    }
    if let Some(bad) = pan.chars().find(|c| !c.is_ascii_digit()) {
        return Err(EventError::invalid(
            "card_number",
            format_args!("must contain only digits, found {bad:?}"),
        ));
    }
    if !(12..=19).contains(&pan.len()) {
        return Err(EventError::invalid(
            "card_number",
            format_args!("must have 12 to 19 digits, has {}", pan.len()),
        ));
    }
    Ok(())
}

fn check_id(field: &'static str, id: &str) -> Result<(), EventError> {
    if id.is_empty() {
        return Err(EventError::invalid(field, "must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(EventError::invalid(
            field,
            format_args!("must be at most {MAX_ID_LEN} bytes, is {}", id.len()),
        ));
    }
    Ok(())
}

fn is_upper_code(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn check_point(
    (lat_name, lat): (&'static str, Option<f64>),
    (lon_name, lon): (&'static str, Option<f64>),
) -> Result<(), EventError> {
    match (lat, lon) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(EventError::invalid(
            lon_name,
            format_args!("must be given together with `{lat_name}`"),
        )),
        (None, Some(_)) => Err(EventError::invalid(
            lat_name,
            format_args!("must be given together with `{lon_name}`"),
        )),
        (Some(lat), Some(lon)) => {
            if !(-90.0..=90.0).contains(&lat) {
                return Err(EventError::invalid(
                    lat_name,
                    format_args!("must be within [-90, 90], got {lat}"),
                ));
            }
            if !(-180.0..=180.0).contains(&lon) {
                return Err(EventError::invalid(
                    lon_name,
                    format_args!("must be within [-180, 180], got {lon}"),
                ));
            }
            Ok(())
        }
    }
}
