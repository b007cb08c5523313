//! The Go tutorial's bank-account event, accepted verbatim.
//!
//! The tutorial's producer sends
//! `{"FirstName":"Jimmie","LastName":"Swaniawski","CreditCardNumber":"3558018114425614","Amount":644.78}`
//! to topic `bankaccount`. It has no id and no time, so the Kafka record supplies them
//! (see [`RecordContext`]).

use serde::{Deserialize, Serialize};

use crate::{EventError, RecordContext, Transaction};

/// The tutorial's event, with its Go JSON field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankAccount {
    /// Cardholder's first name (`FirstName`).
    #[serde(rename = "FirstName", default)]
    pub first_name: String,
    /// Cardholder's last name (`LastName`).
    #[serde(rename = "LastName", default)]
    pub last_name: String,
    /// The card number (`CreditCardNumber`), digits, possibly grouped with spaces or dashes.
    #[serde(rename = "CreditCardNumber")]
    pub credit_card_number: String,
    /// Amount in USD (`Amount`).
    #[serde(rename = "Amount")]
    pub amount: f64,
}

impl BankAccount {
    /// Map onto the canonical model: the id comes from [`RecordContext::id_hint`], the
    /// event time from the record's timestamp, the currency is USD. Spaces and dashes that
    /// group the card number's digits are dropped. The result is validated.
    pub fn into_transaction(self, ctx: &RecordContext<'_>) -> Result<Transaction, EventError> {
        let timestamp = ctx.timestamp().ok_or_else(|| {
            EventError::invalid(
                "timestamp",
                format_args!(
                    "the tutorial's format takes its time from the Kafka record, whose \
                     timestamp ({} ms) is missing or out of range",
                    ctx.timestamp_ms
                ),
            )
        })?;
        let card_number = if self
            .credit_card_number
            .bytes()
            .any(|b| b == b' ' || b == b'-')
        {
            self.credit_card_number
                .chars()
                .filter(|&c| c != ' ' && c != '-')
                .collect()
        } else {
            self.credit_card_number
        };
        let tx = Transaction {
            transaction_id: ctx.id_hint(),
            timestamp,
            card_number,
            amount: self.amount,
            customer_id: None,
            first_name: non_empty(self.first_name),
            last_name: non_empty(self.last_name),
            currency: "USD".to_owned(),
            merchant: None,
            merchant_id: None,
            category: None,
            channel: None,
            lat: None,
            lon: None,
            home_lat: None,
            home_lon: None,
            city: None,
            country: None,
        };
        tx.validate().map_err(|e| match e {
            // Name the field as the tutorial's producer spelled it.
            EventError::InvalidField { field, reason } => EventError::InvalidField {
                field: match field {
                    "card_number" => "CreditCardNumber",
                    "amount" => "Amount",
                    other => other,
                },
                reason,
            },
            other => other,
        })?;
        Ok(tx)
    }

    /// The tutorial's view of a canonical transaction (names, card number, amount), for
    /// feeding the tutorial's own consumer.
    pub fn from_transaction(tx: &Transaction) -> Self {
        BankAccount {
            first_name: tx.first_name.clone().unwrap_or_default(),
            last_name: tx.last_name.clone().unwrap_or_default(),
            credit_card_number: tx.card_number.clone(),
            amount: tx.amount,
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}
