//! The live dashboard: a statistics collector fed by the pipeline, and the HTTP server that
//! shows it.
//!
//! ```text
//! producer ──record_produced──┐
//! detector ──record_decision──┤
//!          ──record_dlq───────┼──► LiveStats ──snapshot()──► /api/snapshot, /events ──► page
//!          ──set_lag──────────┤
//! poller   ──set_broker───────┘            prometheus::Registry ──► /metrics
//! ```
//!
//! * [`LiveStats`] keeps counters since start, one-second buckets for the last
//!   [`stats::HISTORY_SECS`] seconds (events in, decisions by verdict, dead letters, latency p50/p99),
//!   precision / recall / F1 against the labels the synthetic producer attaches, caught vs
//!   missed frauds per scenario, the latest REVIEW/DECLINE decisions and the latest missed
//!   frauds. Each `record_*` call is one short mutex section.
//! * [`serve`] runs the server on a listener until a shutdown future completes;
//!   [`bind_next_free`] binds a port, moving up when it is taken, and says where it landed.
//!
//! # Endpoints
//!
//! | path | what |
//! | --- | --- |
//! | `/` | the page (HTML; its CSS, JS and icon are under `/assets/` and `/favicon.svg`, compiled into the binary: no CDN, no web fonts, works offline) |
//! | `/api/snapshot` | the current [`stats::Snapshot`] as JSON |
//! | `/events` | server-sent events: one `snapshot` event per second (`id` = sequence number, `data` = the [`stats::Snapshot`] JSON, `retry: 2000`); ends when the server shuts down |
//! | `/metrics` | Prometheus text exposition format 0.0.4 of the registry given to [`serve`] |
//! | `/healthz` | `ok` |
//!
//! # Snapshot JSON
//!
//! Times are milliseconds since the Unix epoch, latencies microseconds; a value that is not
//! defined yet (a precision before anything was flagged, a percentile of no decisions) is
//! `null`.
//!
//! ```text
//! {
//!   "generated_at_ms": 1735689600000, "started_at_ms": 1735689000000, "uptime_secs": 600.1,
//!   "info": { "mode": "embedded" | "external", "bootstrap_servers": "127.0.0.1:9092",
//!             "model_version": "gbdt-v1-…", "target_rate": 500.0, "fraud_rate": 0.01,
//!             "input_topic": "transactions", "decisions_topic": "decisions",
//!             "dlq_topic": "transactions.dlq", "group_id": "veritas-detector" },
//!   "totals": { "produced", "decisions", "approve", "review", "decline", "dlq",
//!               "labelled", "frauds" },                                  // counts since start
//!   "rates": { "events_in", "decisions", "approve", "review", "decline", "dlq" },
//!                                      // per second, mean of the last 5 complete seconds
//!   "latency": { "window": P, "all": P },   // P = { "p50_us", "p99_us", "p999_us",
//!                                           //       "max_us", "count" }; window = last 10 s
//!   "quality": { "decline": C, "flagged": C },  // C = { "tp", "fp", "fn", "tn",
//!                                               //       "precision", "recall", "f1" }
//!                                // decline: positive = DECLINE; flagged: REVIEW or DECLINE
//!   "scenarios": [ { "scenario", "frauds", "declined", "reviewed", "missed" } ],
//!   "series": [ { "t_ms", "events_in", "approve", "review", "decline", "dlq",
//!                 "p50_us", "p99_us" } ],             // complete seconds, oldest first, ≤ 300
//!   "lag": [ { "partition", "lag" } ], "total_lag": 12,
//!                          // partitions not reported for 30 s are left out
//!   "broker": null | { "updated_at_ms", "topics": [ { "name", "partitions": [
//!                 { "partition", "log_start_offset", "log_end_offset", "size_bytes" } ] } ] },
//!   "recent": [ R ],   // latest REVIEW/DECLINE decisions, newest first, ≤ 50
//!   "missed": [ R ]    // latest missed frauds (labelled fraud, APPROVE), newest first, ≤ 25
//! }
//! R = { "transaction_id", "card" (masked), "amount", "merchant", "score",
//!       "verdict": "APPROVE" | "REVIEW" | "DECLINE", "reasons": [..], "latency_us",
//!       "event_time_ms", "label": true | false | null, "scenario",
//!       "outcome": "caught" | "missed" | "false_positive" | "correct_approve" | "unlabelled",
//!       "recorded_at_ms" }
//! ```
//!
//! # The page
//!
//! One HTML page with its own small canvas charts (throughput by verdict, latency p50/p99),
//! fed by `/events` (an `EventSource` that reconnects on its own, with a snapshot fetched first
//! so the page fills at once). Elements tests read carry `data-testid` attributes
//! (`events-per-sec`, `decisions-per-sec`, `approve-per-sec`, `review-per-sec`,
//! `decline-per-sec`, `precision`, `recall`, `f1`, `dlq-count`, `total-processed`, `uptime`,
//! `mode`, `model-version`, `connection`); tables have ids (`#recent-decisions tbody tr`,
//! `#missed-fraud li`, `#broker-topics tbody tr.topic-row`, `#lag-bars .lag-row`, `#scenarios
//! .scenario-row`), and `<body data-snapshots="n">` counts snapshots rendered.

pub mod server;
pub mod stats;

pub use server::{bind_next_free, serve, serve_metrics};
pub use stats::{BrokerMode, BrokerView, DecisionView, InfoView, LiveStats};
