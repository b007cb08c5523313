//! The Veritas embedded broker: a single-node, Kafka-compatible server.
//!
//! Real Kafka clients (librdkafka and everything built on it, sarama, kafka-python, the Java
//! client) talk to it unchanged. It is the embedded default of Veritas — `cargo run -- demo` needs
//! no Kafka installed — while multi-node deployments use Apache Kafka itself through the same
//! client code path.
//!
//! # Layout
//!
//! * [`server`] — the accept loop, connection limit, background maintenance and graceful
//!   shutdown; [`Broker::start`] is the entry point.
//! * [`connection`] — one task per client connection: reads frames, answers them in order.
//! * [`frame`] — length-prefixed framing, request-header parsing and response encoding.
//! * [`api`] — one module per Kafka API, each opening with the versions it serves and its
//!   behaviour; the versions are registered beside the handler and are what ApiVersions
//!   advertises, nothing more.
//! * [`cluster`] — topics and partitions: creation, deletion, persistence of topic metadata
//!   and configs, auto-creation.
//! * [`config`] — broker configuration and the per-topic configuration keys we understand.
//! * [`group`] — the group coordinator: classic consumer groups and committed offsets, stored
//!   durably in the internal topic `__consumer_offsets`.
//! * [`maintenance`] — the background rounds: flushes, retention, the log cleaner; failures
//!   counted, reported once a minute while they last, failed cleaner passes backed off.
//!
//! Storage is the `veritas-log` crate: this crate owns no file formats beyond topic metadata.
//!
//! # Invariants
//!
//! * A panic never crosses a connection: every byte from the network is parsed with checked
//!   reads, and a malformed request closes only its own connection (with a log line) or is
//!   answered with the Kafka error code the protocol defines for it.
//! * Responses on a connection are written in request order (Kafka clients rely on it).
//! * No lock is held across an `.await` or across file I/O other than the partition append
//!   itself (which `veritas-log` serialises per partition).

#![warn(missing_docs)]

pub mod api;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod frame;
pub mod group;
pub mod maintenance;
pub mod metrics;
mod producer_ids;
pub mod records;
pub mod server;

pub use config::BrokerConfig;
pub use server::{Broker, BrokerError};
