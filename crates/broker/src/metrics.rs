//! Broker metrics, registered in a Prometheus [`Registry`] supplied by the embedding program
//! (so the demo can serve broker, producer and detector metrics from one `/metrics`).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Every broker metric.
#[derive(Clone)]
pub struct BrokerMetrics {
    /// Requests handled, by API name and Kafka error code (0 = none; the first non-zero
    /// partition- or topic-level error of a response counts as its error).
    pub requests: IntCounterVec,
    /// Request handling time by API name (includes long-poll waiting for Fetch).
    pub request_seconds: HistogramVec,
    /// Produce handling time (append + flush policy), seconds.
    pub produce_seconds: Histogram,
    /// Request bytes received.
    pub bytes_in: IntCounter,
    /// Response bytes sent.
    pub bytes_out: IntCounter,
    /// Records appended.
    pub records_in: IntCounter,
    /// Open client connections.
    pub connections: IntGauge,
    /// Connections accepted since start.
    pub connections_total: IntCounter,
    /// Connections refused at the connection limit.
    pub connections_rejected: IntCounter,
    /// Connections closed because of a protocol error (bad frame, bad header, unknown API).
    pub protocol_errors: IntCounter,
    /// Topics.
    pub topics: IntGauge,
    /// Partitions.
    pub partitions: IntGauge,
    /// Bytes of all partition logs.
    pub log_bytes: IntGauge,
    /// Consumer groups known to the coordinator.
    pub groups: IntGauge,
    /// Records removed by log compaction (superseded by a later record of the same key, or
    /// expired tombstones).
    pub compacted_records: IntCounter,
    /// Background tasks that failed, by task (`flush`, `retention`, `compaction`).
    pub maintenance_failures: IntCounterVec,
}

impl BrokerMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let buckets = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5,
        ];
        let m = BrokerMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "veritas_broker_requests_total",
                    "Requests handled, by API and error code",
                ),
                &["api", "error"],
            )?,
            request_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "veritas_broker_request_seconds",
                    "Request handling time by API",
                )
                .buckets(buckets.clone()),
                &["api"],
            )?,
            produce_seconds: Histogram::with_opts(
                HistogramOpts::new("veritas_broker_produce_seconds", "Produce request latency")
                    .buckets(buckets),
            )?,
            bytes_in: IntCounter::new("veritas_broker_bytes_in_total", "Request bytes received")?,
            bytes_out: IntCounter::new("veritas_broker_bytes_out_total", "Response bytes sent")?,
            records_in: IntCounter::new("veritas_broker_records_in_total", "Records appended")?,
            connections: IntGauge::new("veritas_broker_connections", "Open client connections")?,
            connections_total: IntCounter::new(
                "veritas_broker_connections_total",
                "Client connections accepted",
            )?,
            connections_rejected: IntCounter::new(
                "veritas_broker_connections_rejected_total",
                "Connections refused at the connection limit",
            )?,
            protocol_errors: IntCounter::new(
                "veritas_broker_protocol_errors_total",
                "Connections closed for malformed or unsupported requests",
            )?,
            topics: IntGauge::new("veritas_broker_topics", "Topics")?,
            partitions: IntGauge::new("veritas_broker_partitions", "Partitions")?,
            log_bytes: IntGauge::new("veritas_broker_log_bytes", "Bytes stored in partition logs")?,
            groups: IntGauge::new("veritas_broker_groups", "Consumer groups")?,
            compacted_records: IntCounter::new(
                "veritas_broker_compacted_records_total",
                "Records removed by log compaction",
            )?,
            maintenance_failures: IntCounterVec::new(
                Opts::new(
                    "veritas_broker_maintenance_failures_total",
                    "Background tasks that failed, by task",
                ),
                &["task"],
            )?,
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.request_seconds.clone()))?;
        registry.register(Box::new(m.produce_seconds.clone()))?;
        registry.register(Box::new(m.bytes_in.clone()))?;
        registry.register(Box::new(m.bytes_out.clone()))?;
        registry.register(Box::new(m.records_in.clone()))?;
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.connections_total.clone()))?;
        registry.register(Box::new(m.connections_rejected.clone()))?;
        registry.register(Box::new(m.protocol_errors.clone()))?;
        registry.register(Box::new(m.topics.clone()))?;
        registry.register(Box::new(m.partitions.clone()))?;
        registry.register(Box::new(m.log_bytes.clone()))?;
        registry.register(Box::new(m.groups.clone()))?;
        registry.register(Box::new(m.compacted_records.clone()))?;
        registry.register(Box::new(m.maintenance_failures.clone()))?;
        Ok(m)
    }
}
