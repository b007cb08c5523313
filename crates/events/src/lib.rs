//! Veritas events: the canonical card-transaction model, the tutorial's bank-account
//! format, and a deterministic generator of labelled synthetic traffic.

mod model;

pub use model::{Channel, Label, LabelledTransaction, Transaction};
