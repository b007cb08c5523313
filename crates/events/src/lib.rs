//! Veritas events: the canonical card-transaction model, the tutorial's bank-account
//! format, and a deterministic generator of labelled synthetic traffic.
//!
//! - [`Transaction`] / [`LabelledTransaction`]: the canonical event (see `docs/events.md`
//!   and `docs/transaction.schema.json`), with [`Transaction::validate`].
//! - [`decode_event`]: one entry point for Kafka record values, canonical JSON or the Go
//!   tutorial's [`BankAccount`], validated, with precise [`EventError`]s.
//! - [`io`]: streaming readers and writers of labelled `.jsonl` and `.csv` files.
//! - [`Generator`]: realistic labelled traffic with six fraud scenarios, seeded and
//!   streamed in event-time order.

#![warn(missing_docs)]

mod cities;
mod decode;
mod error;
mod gen;
pub mod geo;
pub mod io;
mod luhn;
mod model;
mod tutorial;
mod wire;

pub use decode::{
    decode_event, decode_labelled, encode_event, encode_event_into, encode_labelled_into,
    RecordContext,
};
pub use error::EventError;
pub use gen::{ConfigError, Generator, GeneratorConfig, GeneratorStats, Scenario, ScenarioMix};
pub use luhn::{luhn_valid, CardNetwork};
pub use model::{
    validate_card_number, Channel, Label, LabelledTransaction, Transaction, MAX_ID_LEN,
};
pub use tutorial::BankAccount;
pub use wire::parse_timestamp;
