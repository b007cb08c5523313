//! Broker configuration and per-topic configuration.
//!
//! Topic configs use Apache Kafka's names and defaults (`retention.ms`, `segment.bytes`, …) so
//! admin tools and clients behave as they would against Kafka. Only overrides are stored in a
//! topic's metadata; everything else resolves to the broker default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use veritas_log::{FlushPolicy, LogConfig, TimestampType};

/// How the broker is run.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address to listen on. Loopback by default.
    pub listen: SocketAddr,
    /// `host:port` clients are told to connect to (Metadata). Defaults to the bound address.
    pub advertised_listener: Option<(String, u16)>,
    /// Directory holding topic metadata and partition logs.
    pub data_dir: PathBuf,
    /// This broker's node id (Kafka `node.id`).
    pub node_id: i32,
    /// Partitions of an auto-created topic (Kafka `num.partitions`, default 1).
    pub default_partitions: i32,
    /// Whether Metadata requests may create missing topics (Kafka `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Largest request frame accepted; larger frames close the connection (Kafka
    /// `socket.request.max.bytes`, default 100 MiB).
    pub max_frame_bytes: usize,
    /// Most concurrent client connections; further connections are closed at once with a log line.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed (Kafka `connections.max.idle.ms`).
    pub idle_timeout: Duration,
    /// Defaults for every topic's log (overridden per topic).
    pub log_defaults: LogConfig,
    /// How often retention and interval flushes run.
    pub maintenance_interval: Duration,
    /// Group coordinator settings (Kafka's `group.*` and `offsets.*` broker configs).
    pub groups: crate::group::GroupConfig,
}

impl BrokerConfig {
    /// A configuration with Kafka's defaults, storing data under `data_dir`, listening on
    /// `127.0.0.1:9092`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_listener: None,
            data_dir: data_dir.into(),
            node_id: 0,
            default_partitions: 1,
            auto_create_topics: true,
            max_frame_bytes: 100 * 1024 * 1024,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(600),
            log_defaults: LogConfig::default(),
            maintenance_interval: Duration::from_millis(250),
            groups: crate::group::GroupConfig::default(),
        }
    }
}

/// How the log cleaner treats a compacted topic ([`TopicConfig::compaction`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionPolicy {
    /// What a pass keeps (`delete.retention.ms`, `min.compaction.lag.ms`).
    pub config: veritas_log::CompactionConfig,
    /// `min.cleanable.dirty.ratio`: the share of not yet compacted bytes that starts a pass.
    pub min_dirty_ratio: f64,
    /// `max.compaction.lag.ms`, when set: a pass also starts, whatever the ratio, once the
    /// oldest record not yet compacted is this old.
    pub max_lag_ms: Option<i64>,
}

impl CompactionPolicy {
    /// Whether a pass is due for `log` at `now_ms`.
    pub fn due(&self, log: &veritas_log::Log, now_ms: i64) -> bool {
        let min_lag = self.config.min_compaction_lag_ms;
        let ratio = log.dirty_ratio(now_ms, min_lag);
        if ratio <= 0.0 {
            return false;
        }
        ratio >= self.min_dirty_ratio
            || self.max_lag_ms.is_some_and(|max| {
                log.oldest_dirty_timestamp(now_ms, min_lag)
                    .is_some_and(|t| t <= now_ms.saturating_sub(max))
            })
    }
}

/// The kind of value a topic config key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Long,
    Int,
    Str(&'static [&'static str]),
    List(&'static [&'static str]),
    Bool,
    Double,
    /// A Kafka version such as `0.10.0`, `0.10.0.0` or `2.1-IV2`.
    Version,
}

/// One topic config key we understand: its Kafka name, how its value is checked, and (for keys
/// that only describe behaviour Kafka has and we do not need on one node) that it is accepted
/// and reported but has no effect here.
struct KeyDef {
    name: &'static str,
    kind: Kind,
    min: i64,
}

/// Topic config keys accepted by CreateTopics / AlterConfigs, in Kafka's names. Keys outside
/// this list are rejected with INVALID_CONFIG.
const KEYS: &[KeyDef] = &[
    KeyDef {
        name: "cleanup.policy",
        kind: Kind::List(&["delete", "compact"]),
        min: 0,
    },
    KeyDef {
        // Anything but `producer` makes the produce handler recompress batches of another codec.
        name: "compression.type",
        kind: Kind::Str(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
        min: 0,
    },
    KeyDef {
        name: "delete.retention.ms",
        kind: Kind::Long,
        min: 0,
    },
    KeyDef {
        name: "file.delete.delay.ms",
        kind: Kind::Long,
        min: 0,
    },
    KeyDef {
        name: "flush.messages",
        kind: Kind::Long,
        min: 1,
    },
    KeyDef {
        name: "flush.ms",
        kind: Kind::Long,
        min: 0,
    },
    KeyDef {
        name: "index.interval.bytes",
        kind: Kind::Int,
        min: 0,
    },
    KeyDef {
        name: "max.compaction.lag.ms",
        kind: Kind::Long,
        min: 1,
    },
    KeyDef {
        name: "max.message.bytes",
        kind: Kind::Int,
        min: 0,
    },
    KeyDef {
        name: "message.timestamp.type",
        kind: Kind::Str(&["CreateTime", "LogAppendTime"]),
        min: 0,
    },
    KeyDef {
        // Deprecated by the two below (Kafka 3.6, KIP-937), which win when set.
        name: "message.timestamp.difference.max.ms",
        kind: Kind::Long,
        min: 0,
    },
    KeyDef {
        name: "message.timestamp.before.max.ms",
        kind: Kind::Long,
        min: 0,
    },
    KeyDef {
        name: "message.timestamp.after.max.ms",
        kind: Kind::Long,
        min: 0,
    },
    KeyDef {
        name: "min.cleanable.dirty.ratio",
        kind: Kind::Double,
        min: 0,
    },
    KeyDef {
        name: "min.compaction.lag.ms",
        kind: Kind::Long,
        min: 0,
    },
    KeyDef {
        name: "min.insync.replicas",
        kind: Kind::Int,
        min: 1,
    },
    KeyDef {
        name: "preallocate",
        kind: Kind::Bool,
        min: 0,
    },
    KeyDef {
        name: "retention.bytes",
        kind: Kind::Long,
        min: -1,
    },
    KeyDef {
        name: "retention.ms",
        kind: Kind::Long,
        min: -1,
    },
    KeyDef {
        name: "segment.bytes",
        kind: Kind::Int,
        min: 14,
    },
    KeyDef {
        name: "segment.index.bytes",
        kind: Kind::Int,
        min: 4,
    },
    KeyDef {
        name: "segment.jitter.ms",
        kind: Kind::Long,
        min: 0,
    },
    KeyDef {
        name: "segment.ms",
        kind: Kind::Long,
        min: 1,
    },
    KeyDef {
        name: "unclean.leader.election.enable",
        kind: Kind::Bool,
        min: 0,
    },
    KeyDef {
        name: "message.downconversion.enable",
        kind: Kind::Bool,
        min: 0,
    },
    KeyDef {
        // Deprecated in Kafka 3.x and ignored there (records are always stored as v2, KIP-724);
        // accepted and reported likewise. librdkafka's 0092_mixed_msgver sets it.
        name: "message.format.version",
        kind: Kind::Version,
        min: 0,
    },
];

/// The window of CreateTime timestamps a topic accepts, relative to the broker's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampBounds {
    /// How far in the past a timestamp may be (`i64::MAX`: unbounded).
    pub before_ms: i64,
    /// How far in the future a timestamp may be (`i64::MAX`: unbounded).
    pub after_ms: i64,
}

impl TimestampBounds {
    /// Whether `timestamp` is acceptable at broker time `now_ms`.
    pub fn admits(&self, timestamp: i64, now_ms: i64) -> bool {
        now_ms.saturating_sub(timestamp) <= self.before_ms
            && timestamp.saturating_sub(now_ms) <= self.after_ms
    }

    /// The accepted range at `now_ms`, for error messages.
    pub fn range(&self, now_ms: i64) -> (i64, i64) {
        (
            now_ms.saturating_sub(self.before_ms),
            now_ms.saturating_add(self.after_ms),
        )
    }
}

/// Why a topic config was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The key is not a topic config we know.
    #[error("unknown topic config '{0}'")]
    UnknownKey(String),
    /// The value does not parse or is out of range for the key.
    #[error("invalid value '{value}' for topic config '{key}': {reason}")]
    InvalidValue {
        /// Config key.
        key: String,
        /// Offending value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn check(key: &str, value: &str) -> Result<(), ConfigError> {
    let def = KEYS
        .iter()
        .find(|d| d.name == key)
        .ok_or_else(|| ConfigError::UnknownKey(key.to_owned()))?;
    let invalid = |reason: String| ConfigError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    };
    match def.kind {
        Kind::Long | Kind::Int => {
            let v: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not an integer".into()))?;
            if def.kind == Kind::Int && i32::try_from(v).is_err() {
                return Err(invalid("out of range for a 32-bit integer".into()));
            }
            if v < def.min {
                return Err(invalid(format!("must be at least {}", def.min)));
            }
        }
        Kind::Double => {
            let v: f64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a number".into()))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid("must be between 0 and 1".into()));
            }
        }
        Kind::Bool => {
            if !matches!(value.trim(), "true" | "false") {
                return Err(invalid("must be true or false".into()));
            }
        }
        Kind::Str(allowed) => {
            if !allowed.contains(&value.trim()) {
                return Err(invalid(format!("must be one of {allowed:?}")));
            }
        }
        Kind::Version => {
            let v = value.trim();
            let numbers = v.split_once("-IV").map_or(v, |(n, iv)| {
                if !iv.is_empty() && iv.bytes().all(|b| b.is_ascii_digit()) {
                    n
                } else {
                    ""
                }
            });
            let parts: Vec<&str> = numbers.split('.').collect();
            if !(2..=4).contains(&parts.len())
                || parts
                    .iter()
                    .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(invalid("not a Kafka version".into()));
            }
        }
        Kind::List(allowed) => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if items.is_empty() || items.iter().any(|i| !allowed.contains(i)) {
                return Err(invalid(format!("must be a list of {allowed:?}")));
            }
        }
    }
    Ok(())
}

/// A topic's config overrides (only keys set explicitly), validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TopicConfig {
    overrides: BTreeMap<String, String>,
}

/// Where a described config value comes from (Kafka's `ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    Topic = 1,
    /// The broker's static configuration (flags).
    StaticBroker = 4,
    /// Kafka's built-in default.
    Default = 5,
}

/// One described config entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Key.
    pub name: String,
    /// Effective value.
    pub value: String,
    /// Where it comes from.
    pub source: ConfigSource,
}

impl TopicConfig {
    /// Builds a config from `key=value` pairs, validating each.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Self, ConfigError> {
        let mut cfg = TopicConfig::default();
        for (k, v) in pairs {
            cfg.set(k, v)?;
        }
        Ok(cfg)
    }

    /// Sets (or with `None`, removes) one override after validating it.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), ConfigError> {
        match value {
            Some(v) => {
                check(key, v)?;
                self.overrides.insert(key.to_owned(), v.trim().to_owned());
            }
            None => {
                if !KEYS.iter().any(|d| d.name == key) {
                    return Err(ConfigError::UnknownKey(key.to_owned()));
                }
                self.overrides.remove(key);
            }
        }
        Ok(())
    }

    /// Appends to a list-valued key (IncrementalAlterConfigs APPEND).
    pub fn append(
        &mut self,
        key: &str,
        value: &str,
        defaults: &LogConfig,
    ) -> Result<(), ConfigError> {
        let current = self
            .effective(key, defaults)
            .map(|e| e.value)
            .unwrap_or_default();
        let mut items: Vec<String> = current
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        for v in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !items.iter().any(|i| i == v) {
                items.push(v.to_owned());
            }
        }
        self.set(key, Some(&items.join(",")))
    }

    /// Removes values from a list-valued key (IncrementalAlterConfigs SUBTRACT).
    pub fn subtract(
        &mut self,
        key: &str,
        value: &str,
        defaults: &LogConfig,
    ) -> Result<(), ConfigError> {
        let current = self
            .effective(key, defaults)
            .map(|e| e.value)
            .unwrap_or_default();
        let remove: Vec<&str> = value.split(',').map(str::trim).collect();
        let items: Vec<&str> = current
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && !remove.contains(s))
            .collect();
        self.set(key, Some(&items.join(",")))
    }

    /// The overrides, for persistence and display.
    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }

    /// Kafka's `ConfigType` code for a key (DescribeConfigs v3+): 1 boolean, 2 string, 3 int,
    /// 5 long, 6 double, 7 list; 0 (unknown) for keys we do not know.
    pub fn config_type(key: &str) -> i8 {
        match KEYS.iter().find(|d| d.name == key).map(|d| d.kind) {
            Some(Kind::Bool) => 1,
            Some(Kind::Str(_) | Kind::Version) => 2,
            Some(Kind::Int) => 3,
            Some(Kind::Long) => 5,
            Some(Kind::Double) => 6,
            Some(Kind::List(_)) => 7,
            None => 0,
        }
    }

    /// Whether `key` is a topic config key we know.
    pub fn is_known_key(key: &str) -> bool {
        KEYS.iter().any(|d| d.name == key)
    }

    /// The effective value of one key, or `None` for an unknown key.
    pub fn effective(&self, key: &str, defaults: &LogConfig) -> Option<ConfigEntry> {
        if !Self::is_known_key(key) {
            return None;
        }
        if let Some(v) = self.overrides.get(key) {
            return Some(ConfigEntry {
                name: key.to_owned(),
                value: v.clone(),
                source: ConfigSource::Topic,
            });
        }
        let (value, source) = default_value(key, defaults);
        Some(ConfigEntry {
            name: key.to_owned(),
            value,
            source,
        })
    }

    /// Every known key with its effective value, sorted by name.
    pub fn describe(&self, defaults: &LogConfig) -> Vec<ConfigEntry> {
        KEYS.iter()
            .filter_map(|d| self.effective(d.name, defaults))
            .collect()
    }

    /// Whether retention deletes old segments (`cleanup.policy` contains `delete`).
    pub fn deletes(&self) -> bool {
        self.overrides
            .get("cleanup.policy")
            .map(|p| p.split(',').any(|s| s.trim() == "delete"))
            .unwrap_or(true)
    }

    /// Whether the log cleaner compacts the topic (`cleanup.policy` contains `compact`).
    pub fn compacts(&self) -> bool {
        self.overrides
            .get("cleanup.policy")
            .is_some_and(|p| p.split(',').any(|s| s.trim() == "compact"))
    }

    /// How the log cleaner treats the topic, with Kafka's defaults.
    pub fn compaction(&self) -> CompactionPolicy {
        let mut config = veritas_log::CompactionConfig::default();
        let num = |k: &str| self.overrides.get(k).and_then(|v| v.parse::<i64>().ok());
        if let Some(v) = num("delete.retention.ms") {
            config.delete_retention_ms = v;
        }
        if let Some(v) = num("min.compaction.lag.ms") {
            config.min_compaction_lag_ms = v;
        }
        let min_dirty_ratio = self
            .overrides
            .get("min.cleanable.dirty.ratio")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.5);
        CompactionPolicy {
            config,
            min_dirty_ratio,
            max_lag_ms: self.max_compaction_lag_ms(),
        }
    }

    /// How far a CreateTime record's timestamp may lie before and after the broker's clock
    /// (`message.timestamp.before.max.ms` / `after.max.ms`, each falling back to the deprecated
    /// `message.timestamp.difference.max.ms` while unset, as in Kafka 3.6+); `None` when
    /// neither bound is set or the topic stamps LogAppendTime, which Kafka does not check.
    pub fn timestamp_bounds(&self) -> Option<TimestampBounds> {
        if self
            .overrides
            .get("message.timestamp.type")
            .is_some_and(|t| t == "LogAppendTime")
        {
            return None;
        }
        let num = |k: &str| {
            self.overrides
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|&v| v < i64::MAX)
        };
        let difference = num("message.timestamp.difference.max.ms");
        let before = num("message.timestamp.before.max.ms").or(difference);
        let after = num("message.timestamp.after.max.ms").or(difference);
        (before.is_some() || after.is_some()).then(|| TimestampBounds {
            before_ms: before.unwrap_or(i64::MAX),
            after_ms: after.unwrap_or(i64::MAX),
        })
    }

    /// `min.insync.replicas` (1 unless set). One node is one in-sync replica, so above 1 every
    /// acks=all produce fails NOT_ENOUGH_REPLICAS, as on a Kafka topic with too few replicas.
    pub fn min_insync_replicas(&self) -> i64 {
        self.overrides
            .get("min.insync.replicas")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(1)
    }

    /// `message.downconversion.enable` (true unless set): whether fetches that need the old
    /// message formats (Fetch v0–3) are answered.
    pub fn down_conversion_enabled(&self) -> bool {
        self.overrides
            .get("message.downconversion.enable")
            .is_none_or(|v| v == "true")
    }

    /// `max.compaction.lag.ms` when set below its default (unbounded).
    fn max_compaction_lag_ms(&self) -> Option<i64> {
        self.overrides
            .get("max.compaction.lag.ms")
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|&v| v > 0 && v < i64::MAX)
    }

    /// The log configuration these overrides give on top of the broker defaults.
    pub fn log_config(&self, defaults: &LogConfig) -> LogConfig {
        let mut c = defaults.clone();
        let num = |k: &str| self.overrides.get(k).and_then(|v| v.parse::<i64>().ok());
        if let Some(v) = num("segment.bytes") {
            c.segment_bytes = v.max(1) as u64;
        }
        if let Some(v) = num("segment.ms") {
            c.segment_ms = v;
        }
        if let Some(v) = num("retention.ms") {
            c.retention_ms = v;
        }
        if let Some(v) = num("retention.bytes") {
            c.retention_bytes = v;
        }
        if let Some(v) = num("index.interval.bytes") {
            c.index_interval_bytes = v.clamp(0, u32::MAX as i64) as u32;
        }
        if let Some(v) = num("max.message.bytes") {
            c.max_batch_bytes = v.clamp(0, u32::MAX as i64) as u32;
        }
        if let Some(v) = self.overrides.get("message.timestamp.type") {
            c.timestamp_type = if v == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            };
        }
        if let Some(v) = num("segment.jitter.ms") {
            c.segment_jitter_ms = v;
        }
        // Kafka's flush.messages=N: fsync once N records are unflushed (1: every append);
        // flush.ms sets an interval.
        let flush_messages = num("flush.messages");
        let flush_ms = num("flush.ms");
        if flush_messages.is_some() || flush_ms.is_some() {
            let mut policy: FlushPolicy = c.flush;
            if let Some(n) = flush_messages {
                policy.every_messages = Some(n.max(1) as u64);
            }
            if let Some(ms) = flush_ms {
                policy.interval_ms = Some(ms.max(0) as u64);
            }
            c.flush = policy;
        }
        if let Some(lag) = self.max_compaction_lag_ms().filter(|_| self.compacts()) {
            // As in Kafka: the active segment rolls within max.compaction.lag.ms, so that
            // no record waits longer than that to become cleanable.
            c.segment_ms = c.segment_ms.min(lag);
        }
        if !self.deletes() {
            // As in Kafka, compacted-only topics are not subject to time and size retention:
            // the log cleaner keeps the latest record of every key instead.
            c.retention_ms = -1;
            c.retention_bytes = -1;
        }
        c
    }
}

fn default_value(key: &str, d: &LogConfig) -> (String, ConfigSource) {
    let kafka_default = |v: &str| (v.to_owned(), ConfigSource::Default);
    let broker = |v: String| (v, ConfigSource::StaticBroker);
    let ref_default = LogConfig::default();
    let from = |mine: String, kafka: String| {
        if mine == kafka {
            (mine, ConfigSource::Default)
        } else {
            broker(mine)
        }
    };
    match key {
        "cleanup.policy" => kafka_default("delete"),
        "compression.type" => kafka_default("producer"),
        "message.format.version" => kafka_default("3.0-IV1"),
        "delete.retention.ms" => kafka_default("86400000"),
        "file.delete.delay.ms" => kafka_default("60000"),
        "flush.messages" => match (d.flush.every_bytes, d.flush.every_messages) {
            (Some(0), _) => broker("1".into()),
            (_, Some(n)) => broker(n.to_string()),
            _ => kafka_default("9223372036854775807"),
        },
        "flush.ms" => match d.flush.interval_ms {
            Some(ms) => broker(ms.to_string()),
            None => kafka_default("9223372036854775807"),
        },
        "index.interval.bytes" => from(
            d.index_interval_bytes.to_string(),
            ref_default.index_interval_bytes.to_string(),
        ),
        "max.compaction.lag.ms" => kafka_default("9223372036854775807"),
        "max.message.bytes" => from(
            d.max_batch_bytes.to_string(),
            ref_default.max_batch_bytes.to_string(),
        ),
        "message.timestamp.type" => match d.timestamp_type {
            TimestampType::LogAppendTime => broker("LogAppendTime".into()),
            _ => kafka_default("CreateTime"),
        },
        "message.timestamp.difference.max.ms"
        | "message.timestamp.before.max.ms"
        | "message.timestamp.after.max.ms" => kafka_default("9223372036854775807"),
        "min.cleanable.dirty.ratio" => kafka_default("0.5"),
        "min.compaction.lag.ms" => kafka_default("0"),
        "min.insync.replicas" => kafka_default("1"),
        "preallocate" => kafka_default("false"),
        "retention.bytes" => from(
            d.retention_bytes.to_string(),
            ref_default.retention_bytes.to_string(),
        ),
        "retention.ms" => from(
            d.retention_ms.to_string(),
            ref_default.retention_ms.to_string(),
        ),
        "segment.bytes" => from(
            d.segment_bytes.to_string(),
            ref_default.segment_bytes.to_string(),
        ),
        "segment.index.bytes" => kafka_default("10485760"),
        "segment.jitter.ms" => from(
            d.segment_jitter_ms.to_string(),
            ref_default.segment_jitter_ms.to_string(),
        ),
        "segment.ms" => from(d.segment_ms.to_string(), ref_default.segment_ms.to_string()),
        "unclean.leader.election.enable" => kafka_default("false"),
        "message.downconversion.enable" => kafka_default("true"),
        _ => kafka_default(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_bounds_follow_kafka_3_6() {
        let bounds = |pairs: &[(&str, &str)]| {
            TopicConfig::from_pairs(pairs.iter().map(|(k, v)| (*k, Some(*v))))
                .unwrap()
                .timestamp_bounds()
        };
        assert_eq!(bounds(&[]), None);
        let b = |before_ms, after_ms| {
            Some(TimestampBounds {
                before_ms,
                after_ms,
            })
        };
        // The deprecated key bounds both sides until a new key overrides one of them.
        assert_eq!(
            bounds(&[("message.timestamp.difference.max.ms", "100")]),
            b(100, 100)
        );
        assert_eq!(
            bounds(&[
                ("message.timestamp.difference.max.ms", "100"),
                ("message.timestamp.after.max.ms", "5"),
            ]),
            b(100, 5)
        );
        assert_eq!(
            bounds(&[("message.timestamp.before.max.ms", "7")]),
            b(7, i64::MAX)
        );
        // Long.MAX is Kafka's "unbounded" default, set or not.
        assert_eq!(
            bounds(&[("message.timestamp.before.max.ms", "9223372036854775807")]),
            None
        );
        // LogAppendTime replaces the timestamp: nothing to check.
        assert_eq!(
            bounds(&[
                ("message.timestamp.difference.max.ms", "100"),
                ("message.timestamp.type", "LogAppendTime"),
            ]),
            None
        );
        let w = TimestampBounds {
            before_ms: 10,
            after_ms: 5,
        };
        assert!(w.admits(990, 1000) && w.admits(1005, 1000));
        assert!(!w.admits(989, 1000) && !w.admits(1006, 1000));
        assert!(w.admits(i64::MIN, i64::MIN) && !w.admits(i64::MAX, i64::MIN));
        assert_eq!(w.range(1000), (990, 1005));
    }

    #[test]
    fn flush_messages_jitter_and_single_node_keys_take_effect() {
        let defaults = LogConfig::default();
        let c = TopicConfig::from_pairs([
            ("flush.messages", Some("500")),
            ("segment.jitter.ms", Some("60000")),
            ("min.insync.replicas", Some("2")),
            ("message.downconversion.enable", Some("false")),
        ])
        .unwrap();
        let log = c.log_config(&defaults);
        assert_eq!(log.flush.every_messages, Some(500));
        assert_eq!(log.flush.interval_ms, defaults.flush.interval_ms);
        assert_eq!(log.segment_jitter_ms, 60_000);
        assert_eq!(c.min_insync_replicas(), 2);
        assert!(!c.down_conversion_enabled());
        let plain = TopicConfig::default();
        assert_eq!(plain.min_insync_replicas(), 1);
        assert!(plain.down_conversion_enabled());
        assert_eq!(plain.log_config(&defaults).flush.every_messages, None);
        // Described as set; the defaults as Kafka's.
        let value = |c: &TopicConfig, k: &str| c.effective(k, &defaults).unwrap().value;
        assert_eq!(value(&c, "flush.messages"), "500");
        assert_eq!(value(&plain, "flush.messages"), "9223372036854775807");
        assert_eq!(value(&plain, "segment.jitter.ms"), "0");
        assert_eq!(
            value(&plain, "message.timestamp.after.max.ms"),
            "9223372036854775807"
        );
    }

    #[test]
    fn compaction_policy_follows_kafka() {
        let defaults = LogConfig::default();
        let plain = TopicConfig::from_pairs([("max.compaction.lag.ms", Some("100"))]).unwrap();
        assert!(!plain.compacts());
        assert_eq!(plain.log_config(&defaults).segment_ms, defaults.segment_ms);
        let compacted = TopicConfig::from_pairs([
            ("cleanup.policy", Some("compact")),
            ("segment.ms", Some("10000")),
            ("max.compaction.lag.ms", Some("100")),
            ("min.cleanable.dirty.ratio", Some("0.01")),
            ("delete.retention.ms", Some("86400")),
        ])
        .unwrap();
        assert!(compacted.compacts());
        // The active segment rolls within max.compaction.lag.ms; compact-only topics have no
        // time or size retention.
        let log = compacted.log_config(&defaults);
        assert_eq!(
            (log.segment_ms, log.retention_ms, log.retention_bytes),
            (100, -1, -1)
        );
        let policy = compacted.compaction();
        assert_eq!(policy.config.delete_retention_ms, 86_400);
        assert_eq!(
            (policy.min_dirty_ratio, policy.max_lag_ms),
            (0.01, Some(100))
        );
        let default = TopicConfig::from_pairs([("cleanup.policy", Some("compact,delete"))])
            .unwrap()
            .compaction();
        assert_eq!(default.config, veritas_log::CompactionConfig::default());
        assert_eq!((default.min_dirty_ratio, default.max_lag_ms), (0.5, None));
    }

    /// A pass is due at the dirty ratio, or earlier once the oldest uncompacted record is
    /// older than max.compaction.lag.ms; never when nothing is new.
    #[test]
    fn a_pass_is_due_by_ratio_or_by_age() {
        use veritas_log::batch::builder::{BatchBuilder, Record};
        const T0: i64 = 1_700_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 200,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = veritas_log::Log::open(dir.path(), config, false, T0).unwrap();
        let policy = |ratio: f64, max_lag: Option<i64>| CompactionPolicy {
            config: veritas_log::CompactionConfig::default(),
            min_dirty_ratio: ratio,
            max_lag_ms: max_lag,
        };
        assert!(!policy(0.0, None).due(&log, T0), "an empty log");
        for i in 0..6u8 {
            let batch = BatchBuilder::new(T0)
                .record(Record::new(Some(b"k".to_vec()), Some(vec![i; 100])))
                .build();
            log.append(&batch, T0).unwrap();
        }
        assert!(policy(0.5, None).due(&log, T0));
        assert!(!policy(2.0, None).due(&log, T0), "the ratio is at most 1");
        assert!(!policy(2.0, Some(1000)).due(&log, T0 + 999));
        assert!(policy(2.0, Some(1000)).due(&log, T0 + 1000), "old enough");
        log.compact(T0, &veritas_log::CompactionConfig::default())
            .unwrap();
        assert!(
            !policy(0.0, Some(1)).due(&log, T0 + 10_000),
            "nothing new since"
        );
    }

    #[test]
    fn validates_known_keys_and_rejects_unknown() {
        let ok = TopicConfig::from_pairs([
            ("retention.ms", Some("1000")),
            ("cleanup.policy", Some("compact,delete")),
        ]);
        assert!(ok.is_ok());
        assert_eq!(
            TopicConfig::from_pairs([("retention.mss", Some("1"))]),
            Err(ConfigError::UnknownKey("retention.mss".into()))
        );
        assert!(matches!(
            TopicConfig::from_pairs([("segment.bytes", Some("abc"))]),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(matches!(
            TopicConfig::from_pairs([("retention.ms", Some("-5"))]),
            Err(ConfigError::InvalidValue { .. })
        ));
        for v in ["0.10.0.0", "0.10.0", "2.1-IV2", "3.0"] {
            assert!(
                TopicConfig::from_pairs([("message.format.version", Some(v))]).is_ok(),
                "{v}"
            );
        }
        for v in ["", "3", "x.y", "0.10.0-IV", "1.2.3.4.5", "0..1"] {
            assert!(
                TopicConfig::from_pairs([("message.format.version", Some(v))]).is_err(),
                "{v}"
            );
        }
    }

    #[test]
    fn overrides_reach_the_log_config() {
        let d = LogConfig::default();
        let c = TopicConfig::from_pairs([
            ("retention.ms", Some("1234")),
            ("segment.bytes", Some("4096")),
            ("message.timestamp.type", Some("LogAppendTime")),
        ])
        .unwrap_or_default();
        let l = c.log_config(&d);
        assert_eq!(l.retention_ms, 1234);
        assert_eq!(l.segment_bytes, 4096);
        assert_eq!(l.timestamp_type, TimestampType::LogAppendTime);
        let described = c.describe(&d);
        let r = described.iter().find(|e| e.name == "retention.ms");
        assert_eq!(
            r.map(|e| (e.value.as_str(), e.source)),
            Some(("1234", ConfigSource::Topic))
        );
        let p = described.iter().find(|e| e.name == "cleanup.policy");
        assert_eq!(p.map(|e| e.source), Some(ConfigSource::Default));
    }

    #[test]
    fn incremental_list_operations() {
        let d = LogConfig::default();
        let mut c = TopicConfig::default();
        c.append("cleanup.policy", "compact", &d).unwrap_or(());
        assert_eq!(
            c.overrides().get("cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        c.subtract("cleanup.policy", "delete", &d).unwrap_or(());
        assert_eq!(
            c.overrides().get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        assert!(!c.deletes());
    }
}
