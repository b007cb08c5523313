//! Topics and partitions of the one-node cluster, and their persistence.
//!
//! Each topic's metadata (name, id, partition count, config overrides) is a small JSON file under
//! `<data-dir>/meta/topics/`, written atomically (temp file, fsync, rename, fsync dir). Each
//! partition's records live in `<data-dir>/<topic>-<partition>/`, owned by `veritas-log`.
//!
//! Creation writes the metadata first and then opens the logs, so a crash in between leaves a
//! topic whose missing partition directories are created empty on the next start. Deletion
//! renames the partition directories to `*.delete` first, then removes the metadata, then the
//! directories; leftovers of an interrupted deletion are removed at startup.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;
use veritas_log::{Log, LogConfig, LogError};

use crate::config::{ConfigError, TopicConfig};

/// Longest legal topic name (Kafka's limit).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Why a topic operation failed; each maps onto one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Topic name empty, too long, `.`/`..`, or with characters outside `[a-zA-Z0-9._-]`.
    #[error("invalid topic name '{0}': {1}")]
    InvalidTopic(String, &'static str),
    /// The topic already exists.
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    /// The topic does not exist.
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    /// A partition count of zero, negative, or too large.
    #[error("invalid partition count {0}")]
    InvalidPartitions(i64),
    /// A replication factor other than 1 (or -1, meaning the default) on a one-node cluster.
    #[error("replication factor {0} is larger than the 1 available broker")]
    InvalidReplicationFactor(i16),
    /// An invalid topic config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Internal topics cannot be deleted or altered by clients.
    #[error("topic '{0}' is internal")]
    Internal(String),
    /// Storage failure.
    #[error("storage: {0}")]
    Log(#[from] LogError),
    /// Metadata file I/O.
    #[error("metadata i/o on {path}: {cause}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        cause: std::io::Error,
    },
    /// A metadata file could not be understood.
    #[error("corrupt topic metadata {path}: {reason}")]
    CorruptMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl ClusterError {
    /// The Kafka error code for this error.
    pub fn code(&self) -> i16 {
        use kafka_protocol::error::ResponseError as E;
        match self {
            ClusterError::InvalidTopic(..) => E::InvalidTopicException.code(),
            ClusterError::TopicExists(_) => E::TopicAlreadyExists.code(),
            ClusterError::UnknownTopic(_) => E::UnknownTopicOrPartition.code(),
            ClusterError::InvalidPartitions(_) => E::InvalidPartitions.code(),
            ClusterError::InvalidReplicationFactor(_) => E::InvalidReplicationFactor.code(),
            ClusterError::Config(_) => E::InvalidConfig.code(),
            ClusterError::Internal(_) => E::TopicAuthorizationFailed.code(),
            ClusterError::Log(_)
            | ClusterError::Io { .. }
            | ClusterError::CorruptMetadata { .. } => E::KafkaStorageError.code(),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |cause| ClusterError::Io {
        path: path.to_owned(),
        cause,
    }
}

/// Checks a topic name against Kafka's rules.
pub fn validate_topic_name(name: &str) -> Result<(), ClusterError> {
    let bad = |why| Err(ClusterError::InvalidTopic(name.to_owned(), why));
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only ASCII alphanumerics, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// One partition: its log and a wake-up for fetches waiting on new data.
pub struct Partition {
    /// Owning topic's name.
    pub topic: Arc<str>,
    /// Partition index.
    pub index: i32,
    /// The records.
    pub log: Log,
    new_data: Notify,
}

impl Partition {
    /// Wakes every fetch waiting on this partition (call after a successful append).
    pub fn notify_appended(&self) {
        self.new_data.notify_waiters();
    }

    /// A future completing at the next append. Create (and `enable`) it *before* checking for
    /// data, so an append between the check and the wait is not missed.
    pub fn appended(&self) -> tokio::sync::futures::Notified<'_> {
        self.new_data.notified()
    }
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.index)
    }
}

/// A topic: id, partitions, config.
pub struct Topic {
    /// Name.
    pub name: Arc<str>,
    /// Topic id (KIP-516), stable across restarts.
    pub id: Uuid,
    /// Internal topics (`__consumer_offsets`) are hidden from deletion and flagged in Metadata.
    pub internal: bool,
    partitions: RwLock<Vec<Arc<Partition>>>,
    config: RwLock<TopicConfig>,
}

impl Topic {
    /// Partition by index.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.read().get(i).cloned())
    }

    /// All partitions, in index order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().clone()
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        self.partitions.read().len() as i32
    }

    /// The config overrides.
    pub fn config(&self) -> TopicConfig {
        self.config.read().clone()
    }
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("partitions", &self.partition_count())
            .finish()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct TopicMeta {
    name: String,
    id: Uuid,
    partitions: i32,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    config: TopicConfig,
}

/// Most partitions one topic may have (a sanity bound, far above any single-node need).
pub const MAX_PARTITIONS: i32 = 10_000;

/// The set of topics, and their storage.
pub struct Cluster {
    data_dir: PathBuf,
    meta_dir: PathBuf,
    defaults: LogConfig,
    clean_start: bool,
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    /// Serialises create / delete / grow so metadata files and directories never race.
    admin: Mutex<()>,
}

impl Cluster {
    /// Opens every topic recorded under `data_dir`. `clean_shutdown` tells the logs whether the
    /// previous run closed them cleanly (if not, they re-validate their unflushed tails).
    pub fn open(
        data_dir: &Path,
        defaults: LogConfig,
        clean_shutdown: bool,
    ) -> Result<Cluster, ClusterError> {
        let meta_dir = data_dir.join("meta").join("topics");
        fs::create_dir_all(&meta_dir).map_err(io_err(&meta_dir))?;
        let cluster = Cluster {
            data_dir: data_dir.to_owned(),
            meta_dir: meta_dir.clone(),
            defaults,
            clean_start: clean_shutdown,
            topics: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
        };
        cluster.remove_deleted_leftovers()?;
        let now = now_ms();
        let mut entries: Vec<PathBuf> = fs::read_dir(&meta_dir)
            .map_err(io_err(&meta_dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let bytes = fs::read(&path).map_err(io_err(&path))?;
            let meta: TopicMeta =
                serde_json::from_slice(&bytes).map_err(|e| ClusterError::CorruptMetadata {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            validate_topic_name(&meta.name)?;
            if !(1..=MAX_PARTITIONS).contains(&meta.partitions) {
                return Err(ClusterError::CorruptMetadata {
                    path,
                    reason: format!("partition count {}", meta.partitions),
                });
            }
            let topic = cluster.open_topic(meta, now)?;
            cluster.topics.write().insert(topic.name.clone(), topic);
        }
        Ok(cluster)
    }

    fn remove_deleted_leftovers(&self) -> Result<(), ClusterError> {
        for entry in fs::read_dir(&self.data_dir)
            .map_err(io_err(&self.data_dir))?
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "delete") && path.is_dir() {
                tracing::info!(path = %path.display(), "removing partition directory of a deleted topic");
                fs::remove_dir_all(&path).map_err(io_err(&path))?;
            }
        }
        Ok(())
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{index}"))
    }

    fn open_partition(
        &self,
        name: &Arc<str>,
        index: i32,
        config: &LogConfig,
        now: i64,
    ) -> Result<Arc<Partition>, ClusterError> {
        let dir = self.partition_dir(name, index);
        let log = Log::open(&dir, config.clone(), self.clean_start, now)?;
        Ok(Arc::new(Partition {
            topic: name.clone(),
            index,
            log,
            new_data: Notify::new(),
        }))
    }

    fn open_topic(&self, meta: TopicMeta, now: i64) -> Result<Arc<Topic>, ClusterError> {
        let name: Arc<str> = Arc::from(meta.name.as_str());
        let log_config = meta.config.log_config(&self.defaults);
        let partitions = (0..meta.partitions)
            .map(|i| self.open_partition(&name, i, &log_config, now))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Topic {
            name,
            id: meta.id,
            internal: meta.internal,
            partitions: RwLock::new(partitions),
            config: RwLock::new(meta.config),
        }))
    }

    fn write_meta(&self, meta: &TopicMeta) -> Result<(), ClusterError> {
        let path = self.meta_dir.join(format!("{}.json", meta.name));
        let tmp = self.meta_dir.join(format!("{}.json.tmp", meta.name));
        let bytes = serde_json::to_vec_pretty(meta).map_err(|e| ClusterError::CorruptMetadata {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&tmp, &path, &bytes)
    }

    /// The broker-wide log defaults.
    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    /// A partition by topic name and index.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.topic(topic).and_then(|t| t.partition(index))
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.topics.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics().iter().flat_map(|t| t.partitions()).collect()
    }

    /// Creates a topic. With `validate_only`, checks everything and changes nothing.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        config: TopicConfig,
        internal: bool,
        validate_only: bool,
    ) -> Result<Arc<Topic>, ClusterError> {
        validate_topic_name(name)?;
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(ClusterError::InvalidPartitions(partitions as i64));
        }
        if replication_factor != 1 && replication_factor != -1 {
            return Err(ClusterError::InvalidReplicationFactor(replication_factor));
        }
        let _admin = self.admin.lock();
        if self.topics.read().contains_key(name) {
            return Err(ClusterError::TopicExists(name.to_owned()));
        }
        let meta = TopicMeta {
            name: name.to_owned(),
            id: Uuid::new_v4(),
            partitions,
            internal,
            config,
        };
        if validate_only {
            return Ok(Arc::new(Topic {
                name: Arc::from(name),
                id: meta.id,
                internal,
                partitions: RwLock::new(Vec::new()),
                config: RwLock::new(meta.config),
            }));
        }
        for i in 0..partitions {
            self.set_aside_stale_dir(name, i)?;
        }
        self.write_meta(&meta)?;
        let topic = self.open_topic(meta, now_ms())?;
        tracing::info!(topic = name, partitions, "created topic");
        self.topics
            .write()
            .insert(topic.name.clone(), topic.clone());
        Ok(topic)
    }

    /// A partition directory left over from an earlier topic of the same name (one whose deletion
    /// was interrupted before its directories were renamed) must not be adopted by the new topic.
    fn set_aside_stale_dir(&self, name: &str, index: i32) -> Result<(), ClusterError> {
        let dir = self.partition_dir(name, index);
        if dir.exists() {
            let aside = self
                .data_dir
                .join(format!("{name}-{index}.{}.delete", Uuid::new_v4().simple()));
            tracing::warn!(dir = %dir.display(), "removing a stale partition directory with no topic");
            fs::rename(&dir, &aside).map_err(io_err(&dir))?;
            fs::remove_dir_all(&aside).map_err(io_err(&aside))?;
        }
        Ok(())
    }

    /// Deletes a topic and its data.
    pub fn delete_topic(&self, name: &str) -> Result<(), ClusterError> {
        let _admin = self.admin.lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| ClusterError::UnknownTopic(name.to_owned()))?;
        if topic.internal {
            return Err(ClusterError::Internal(name.to_owned()));
        }
        self.topics.write().remove(name);
        let mut renamed = Vec::new();
        for p in topic.partitions() {
            p.notify_appended();
            let dir = self.partition_dir(name, p.index);
            let aside =
                self.data_dir
                    .join(format!("{name}-{}.{}.delete", p.index, topic.id.simple()));
            if dir.exists() {
                fs::rename(&dir, &aside).map_err(io_err(&dir))?;
                renamed.push(aside);
            }
        }
        let meta = self.meta_dir.join(format!("{name}.json"));
        fs::remove_file(&meta).map_err(io_err(&meta))?;
        sync_dir(&self.meta_dir)?;
        for dir in renamed {
            if let Err(e) = fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove deleted partition; will retry at startup");
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Grows a topic to `total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), ClusterError> {
        let _admin = self.admin.lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| ClusterError::UnknownTopic(name.to_owned()))?;
        let current = topic.partition_count();
        if total <= current || total > MAX_PARTITIONS {
            return Err(ClusterError::InvalidPartitions(total as i64));
        }
        if validate_only {
            return Ok(());
        }
        let config = topic.config();
        self.write_meta(&TopicMeta {
            name: name.to_owned(),
            id: topic.id,
            partitions: total,
            internal: topic.internal,
            config: config.clone(),
        })?;
        let log_config = config.log_config(&self.defaults);
        let now = now_ms();
        let mut parts = topic.partitions.write();
        for i in current..total {
            parts.push(self.open_partition(&topic.name, i, &log_config, now)?);
        }
        tracing::info!(topic = name, from = current, to = total, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides with what `change` makes of them, persists them and
    /// applies them to every partition's log.
    pub fn alter_config(
        &self,
        name: &str,
        validate_only: bool,
        change: impl FnOnce(&mut TopicConfig) -> Result<(), ConfigError>,
    ) -> Result<(), ClusterError> {
        let _admin = self.admin.lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| ClusterError::UnknownTopic(name.to_owned()))?;
        let mut config = topic.config();
        change(&mut config)?;
        if validate_only {
            return Ok(());
        }
        self.write_meta(&TopicMeta {
            name: name.to_owned(),
            id: topic.id,
            partitions: topic.partition_count(),
            internal: topic.internal,
            config: config.clone(),
        })?;
        let log_config = config.log_config(&self.defaults);
        for p in topic.partitions() {
            p.log.set_config(log_config.clone());
        }
        *topic.config.write() = config;
        Ok(())
    }

    /// Closes every log (flush, checkpoints, producer-state snapshots). Partitions still shared
    /// elsewhere are flushed instead. Returns the first error after trying every partition.
    pub fn close(self) -> Result<(), ClusterError> {
        let topics = std::mem::take(&mut *self.topics.write());
        let mut result = Ok(());
        let mut keep = |r: Result<(), LogError>| {
            if let Err(e) = r {
                tracing::error!(error = %e, "closing a partition failed");
                if result.is_ok() {
                    result = Err(ClusterError::Log(e));
                }
            }
        };
        for (_, topic) in topics {
            let partitions = match Arc::try_unwrap(topic) {
                Ok(topic) => topic.partitions.into_inner(),
                Err(topic) => topic.partitions(),
            };
            for p in partitions {
                match Arc::try_unwrap(p) {
                    Ok(p) => keep(p.log.close()),
                    Err(p) => keep(p.log.flush()),
                }
            }
        }
        result
    }

    /// Flushes every log (used at shutdown and by interval flushing).
    pub fn flush_all(&self) -> Result<(), ClusterError> {
        for p in self.all_partitions() {
            p.log.flush()?;
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), ClusterError> {
    let mut f = fs::File::create(tmp).map_err(io_err(tmp))?;
    f.write_all(bytes).map_err(io_err(tmp))?;
    f.sync_all().map_err(io_err(tmp))?;
    drop(f);
    fs::rename(tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), ClusterError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("bankaccount").is_ok());
        assert!(validate_topic_name("a.b_c-9").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn topics_persist_across_reopen_and_deletion_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Cluster::open(dir.path(), LogConfig::default(), true).unwrap();
            let cfg = TopicConfig::from_pairs([("retention.ms", Some("5000"))]).unwrap();
            c.create_topic("t1", 3, 1, cfg, false, false).unwrap();
            c.create_topic("gone", 1, -1, TopicConfig::default(), false, false)
                .unwrap();
            assert!(matches!(
                c.create_topic("t1", 1, 1, TopicConfig::default(), false, false),
                Err(ClusterError::TopicExists(_))
            ));
            assert!(matches!(
                c.create_topic("t2", 1, 3, TopicConfig::default(), false, false),
                Err(ClusterError::InvalidReplicationFactor(3))
            ));
            c.delete_topic("gone").unwrap();
            c.create_partitions("t1", 4, false).unwrap();
        }
        let c = Cluster::open(dir.path(), LogConfig::default(), true).unwrap();
        let t = c.topic("t1").unwrap();
        assert_eq!(t.partition_count(), 4);
        assert_eq!(
            t.config()
                .overrides()
                .get("retention.ms")
                .map(String::as_str),
            Some("5000")
        );
        assert!(c.topic("gone").is_none());
        assert!(!dir.path().join("gone-0").exists());
    }
}
