//! # veritas-reliability: crash-safety, torn writes, fuzzing and bad input, measured
//!
//! This crate holds the programs that try to break Veritas and the checkers that judge what is
//! left afterwards. `RELIABILITY.md` at the repository root says what is promised, how each
//! promise is tested here, and the figures of the last run.
//!
//! * [`targets`] — the bodies of the cargo-fuzz targets in `fuzz/` (always compiled, so the
//!   fuzz crate and the stable corpus-replay test run the same code).
//! * `process` — the real `veritas` binary as a child process: start, wait until it
//!   answers, `SIGKILL`, restart.
//! * `checker` — pure verdicts over what producers were told and what the broker serves:
//!   every acknowledged record exactly once at its offset, per-partition order, no offset
//!   reused, committed group offsets never moving backwards.
//! * `broker_torture` — several idempotent `acks=all` rdkafka producers, a churning consumer
//!   group committing offsets and a retention topic, against a broker killed with `SIGKILL` at
//!   random moments and restarted, cycle after cycle.
//! * `torn` — copies of a data directory cut at random byte positions, with random bytes
//!   flipped in the unflushed tail, recovered and read back batch by batch.
//! * `detector_crash` — `veritas detect` killed mid-stream and restarted, compared decision for
//!   decision with an uninterrupted detector on the same stream.
//!
//! Everything but [`targets`] is behind the default `torture` feature.
#![warn(missing_docs)]

pub mod targets;

#[cfg(feature = "torture")]
pub mod broker_torture;
#[cfg(feature = "torture")]
pub mod checker;
#[cfg(feature = "torture")]
pub mod detector_crash;
#[cfg(feature = "torture")]
pub mod process;
#[cfg(feature = "torture")]
pub mod seeds;
#[cfg(feature = "torture")]
pub mod torn;

/// Whether an error from a consumer's poll is one librdkafka recovers from by itself (a
/// dropped connection, "all brokers down" for a moment while it changes connections): the
/// readers here log it and read on, bounded by their deadlines. Fatal errors end the read.
#[cfg(feature = "torture")]
pub(crate) fn transient_consumer_error(e: &rdkafka::error::KafkaError) -> bool {
    matches!(e, rdkafka::error::KafkaError::MessageConsumption(_))
}
