//! The durable side of the coordinator: partition 0 of `__consumer_offsets` and its in-memory
//! image (committed offsets and group metadata), kept in step under one lock.
//!
//! Every change is appended to the log *before* it is applied to the image and before the
//! request that made it is answered; the append and the application happen under the same
//! lock, so the log order is the image's order and a replay rebuilds exactly the image. The
//! fsync the flush policy asks for happens after the lock is released (concurrent committers
//! share it) and before the answer. See the module docs of [`crate::group`] for the
//! checkpoint that keeps the log bounded.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use veritas_log::batch::BatchIter;
use veritas_log::{FlushPolicy, LogConfig, LogError};

use super::codec::{
    decode_batch, encode_batch, CodecError, GroupValue, OffsetValue, RecordKey, StoredRecord,
};
use crate::cluster::Partition;

/// Bytes of records per batch written (well under the default 1 MiB batch limit).
const BATCH_BYTES: usize = 256 * 1024;
/// Bytes of records per checkpoint step (the store lock is released between steps).
const CHECKPOINT_STEP_BYTES: usize = 1024 * 1024;
/// Bytes read from the log per step of a replay.
const READ_BYTES: usize = 4 * 1024 * 1024;

/// Why the store could not read or write the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The log failed.
    #[error("offsets log: {0}")]
    Log(#[from] LogError),
    /// A record could not be encoded.
    #[error("offsets record: {0}")]
    Codec(#[from] CodecError),
}

impl StoreError {
    /// The error an OffsetCommit (or a deletion) reports for a failed write, as Kafka maps
    /// append errors: too large → INVALID_COMMIT_OFFSET_SIZE, storage → NOT_COORDINATOR (the
    /// client looks the coordinator up again and retries).
    pub fn commit_error_code(&self) -> i16 {
        use kafka_protocol::error::ResponseError as E;
        match self {
            StoreError::Log(LogError::RecordTooLarge { .. }) | StoreError::Codec(_) => {
                E::InvalidCommitOffsetSize.code()
            }
            StoreError::Log(_) => E::NotCoordinator.code(),
        }
    }

    /// The error a SyncGroup reports when the group's metadata could not be written.
    pub fn sync_error_code(&self) -> i16 {
        use kafka_protocol::error::ResponseError as E;
        match self {
            StoreError::Log(LogError::RecordTooLarge { .. }) | StoreError::Codec(_) => {
                E::UnknownServerError.code()
            }
            StoreError::Log(_) => E::NotCoordinator.code(),
        }
    }
}

/// One change to the stored state; `None` values are deletions (tombstones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A committed offset.
    Offset {
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// New value, or deletion.
        value: Option<OffsetValue>,
    },
    /// A group's metadata.
    Group {
        /// Group.
        group: String,
        /// New value, or deletion.
        value: Option<GroupValue>,
    },
}

impl Change {
    fn encode(&self) -> Result<(Vec<u8>, Option<Vec<u8>>), CodecError> {
        match self {
            Change::Offset {
                group,
                topic,
                partition,
                value,
            } => Ok((
                RecordKey::Offset {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                }
                .encode()?,
                value.as_ref().map(OffsetValue::encode).transpose()?,
            )),
            Change::Group { group, value } => Ok((
                RecordKey::Group {
                    group: group.clone(),
                }
                .encode()?,
                value.as_ref().map(GroupValue::encode).transpose()?,
            )),
        }
    }

    fn decode(record: &StoredRecord) -> Result<Change, CodecError> {
        let key = RecordKey::decode(record.key.as_deref().ok_or(CodecError::NoKey)?)?;
        Ok(match key {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => Change::Offset {
                group,
                topic,
                partition,
                value: record
                    .value
                    .as_deref()
                    .map(OffsetValue::decode)
                    .transpose()?,
            },
            RecordKey::Group { group } => Change::Group {
                group,
                value: record
                    .value
                    .as_deref()
                    .map(GroupValue::decode)
                    .transpose()?,
            },
        })
    }
}

/// What is stored for one group.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    /// The group's metadata record, if any (simple groups have none).
    pub meta: Option<GroupValue>,
    /// Committed offsets: topic → partition → value.
    pub offsets: BTreeMap<String, BTreeMap<i32, OffsetValue>>,
}

impl StoredGroup {
    fn changes(&self, group: &str) -> Vec<Change> {
        let mut out =
            Vec::with_capacity(1 + self.offsets.values().map(BTreeMap::len).sum::<usize>());
        if let Some(meta) = &self.meta {
            out.push(Change::Group {
                group: group.to_owned(),
                value: Some(meta.clone()),
            });
        }
        for (topic, partitions) in &self.offsets {
            for (partition, value) in partitions {
                out.push(Change::Offset {
                    group: group.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: Some(value.clone()),
                });
            }
        }
        out
    }

    /// Number of committed offsets.
    pub fn offset_count(&self) -> usize {
        self.offsets.values().map(BTreeMap::len).sum()
    }

    fn approx_bytes(&self, group: &str) -> u64 {
        let meta = self.meta.as_ref().map_or(0, |m| {
            32 + group.len()
                + m.protocol_type.len()
                + m.protocol.as_ref().map_or(0, String::len)
                + m.leader.as_ref().map_or(0, String::len)
        });
        let offsets: usize = self
            .offsets
            .iter()
            .map(|(topic, parts)| {
                parts
                    .values()
                    .map(|v| 48 + group.len() + topic.len() + v.metadata.len())
                    .sum::<usize>()
            })
            .sum();
        (meta + offsets) as u64
    }
}

#[derive(Default)]
struct State {
    groups: BTreeMap<String, StoredGroup>,
    /// Bytes the last checkpoint wrote (at open: an estimate of the live state's size).
    live_bytes: u64,
    /// Log size right after the last checkpoint (0 at open).
    size_at_checkpoint: u64,
}

impl State {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Offset {
                group,
                topic,
                partition,
                value: Some(v),
            } => {
                self.groups
                    .entry(group)
                    .or_default()
                    .offsets
                    .entry(topic)
                    .or_default()
                    .insert(partition, v);
            }
            Change::Offset {
                group,
                topic,
                partition,
                value: None,
            } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    if let Some(parts) = g.offsets.get_mut(&topic) {
                        parts.remove(&partition);
                        if parts.is_empty() {
                            g.offsets.remove(&topic);
                        }
                    }
                    if g.meta.is_none() && g.offsets.is_empty() {
                        self.groups.remove(&group);
                    }
                }
            }
            Change::Group {
                group,
                value: Some(v),
            } => {
                self.groups.entry(group).or_default().meta = Some(v);
            }
            Change::Group { group, value: None } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.meta = None;
                    if g.offsets.is_empty() {
                        self.groups.remove(&group);
                    }
                }
            }
        }
    }
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointOutcome {
    /// Records written (the live state).
    pub records: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Log start offset before.
    pub old_log_start: i64,
    /// Log start offset after.
    pub new_log_start: i64,
}

/// How offsets of one group expire (Kafka's `offsets.retention.minutes`, KIP-211).
#[derive(Debug, Clone, Copy)]
pub enum Expiry<'a> {
    /// An empty group with a protocol type: every offset expires once the group has been empty
    /// for the retention period (`since` is when it became empty, ms since the epoch).
    EmptySince(i64),
    /// Each offset expires the retention period after its commit, except offsets of topics
    /// in `keep` (a stable consumer group's subscription) — or of no topic, with `None`.
    ByCommitTime(Option<&'a HashSet<String>>),
}

/// The offsets log and its image. See the module docs.
pub struct OffsetStore {
    partition: Arc<Partition>,
    state: Mutex<State>,
    /// The flush policy of the log when it was opened; applied here, outside the lock.
    flush: FlushPolicy,
    unflushed: AtomicU64,
    checkpoint_lock: Mutex<()>,
    checkpoint_bytes: u64,
}

impl std::fmt::Debug for OffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetStore")
            .field("partition", &self.partition)
            .finish()
    }
}

/// Encodes changes as v2 batches of at most about [`BATCH_BYTES`] each, concatenated.
fn encode_changes(changes: &[Change], now_ms: i64) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    for change in changes {
        let (k, v) = change.encode()?;
        bytes += k.len() + v.as_ref().map_or(0, Vec::len) + 16;
        batch.push((k, v));
        if bytes >= BATCH_BYTES {
            out.extend_from_slice(&encode_batch(&batch, now_ms));
            batch.clear();
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        out.extend_from_slice(&encode_batch(&batch, now_ms));
    }
    Ok(out)
}

impl OffsetStore {
    /// Replays `partition` (from its log start) into a fresh image. Records that do not parse
    /// are skipped with a warning; a read error fails the open.
    ///
    /// The log's inline fsync (a byte-count flush policy) is switched off and applied by the
    /// store instead, after its lock is released; interval flushing is left to the log.
    pub fn open(
        partition: Arc<Partition>,
        checkpoint_bytes: u64,
    ) -> Result<OffsetStore, StoreError> {
        let log = &partition.log;
        let mut state = State::default();
        let start = log.log_start_offset();
        let end = log.log_end_offset();
        let mut offset = start;
        let (mut applied, mut skipped) = (0u64, 0u64);
        'read: while offset < end {
            let read = log.read(offset, READ_BYTES)?;
            if read.data.is_empty() {
                break;
            }
            let mut progressed = false;
            for item in BatchIter::new(&read.data) {
                let batch = match item {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(offset, error = %e, "unreadable batch in the offsets log; replay stops here");
                        break 'read;
                    }
                };
                let header = batch.header;
                let next = header.next_offset();
                if next <= offset {
                    continue;
                }
                if header.is_transactional() {
                    // This broker never writes transactional offset commits.
                    tracing::warn!(
                        offset = header.base_offset,
                        "skipping a transactional batch in the offsets log"
                    );
                } else {
                    match decode_batch(batch.bytes, &header) {
                        Ok(records) => {
                            for record in records.iter().filter(|r| r.offset >= start) {
                                match Change::decode(record) {
                                    Ok(change) => {
                                        state.apply(change);
                                        applied += 1;
                                    }
                                    Err(e) => {
                                        skipped += 1;
                                        tracing::warn!(offset = record.offset, error = %e, "skipping a record of the offsets log");
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(offset = header.base_offset, error = %e, "skipping a batch of the offsets log");
                        }
                    }
                }
                offset = next;
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        state.live_bytes = state.groups.iter().map(|(id, g)| g.approx_bytes(id)).sum();
        tracing::info!(
            groups = state.groups.len(),
            records = applied,
            skipped,
            log_start = start,
            log_end = end,
            "replayed the offsets log"
        );
        let mut config = log.config();
        let flush = config.flush;
        config.flush = FlushPolicy {
            interval_ms: flush.interval_ms,
            ..FlushPolicy::manual()
        };
        log.set_config(config);
        Ok(OffsetStore {
            partition,
            state: Mutex::new(state),
            flush,
            unflushed: AtomicU64::new(0),
            checkpoint_lock: Mutex::new(()),
            checkpoint_bytes,
        })
    }

    /// The partition holding the records.
    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }

    /// Appends the changes `f` derives from the current image, then applies them — atomically
    /// with respect to every other change. Returns how many changes were made.
    pub fn update(
        &self,
        now_ms: i64,
        f: impl FnOnce(&BTreeMap<String, StoredGroup>) -> Vec<Change>,
    ) -> Result<usize, StoreError> {
        let mut state = self.state.lock();
        let changes = f(&state.groups);
        if changes.is_empty() {
            return Ok(0);
        }
        let batches = encode_changes(&changes, now_ms)?;
        self.partition.log.append(&batches, now_ms)?;
        self.partition.notify_appended();
        self.unflushed
            .fetch_add(batches.len() as u64, Ordering::Relaxed);
        let n = changes.len();
        for change in changes {
            state.apply(change);
        }
        Ok(n)
    }

    /// Appends and applies `changes`.
    pub fn append(&self, changes: Vec<Change>, now_ms: i64) -> Result<(), StoreError> {
        self.update(now_ms, |_| changes).map(|_| ())
    }

    /// Reads the image of one group (`None`: nothing stored for it).
    pub fn read<R>(&self, group: &str, f: impl FnOnce(Option<&StoredGroup>) -> R) -> R {
        f(self.state.lock().groups.get(group))
    }

    /// Every stored group with its metadata record, for loading at startup.
    pub fn groups(&self) -> Vec<(String, Option<GroupValue>)> {
        self.state
            .lock()
            .groups
            .iter()
            .map(|(id, g)| (id.clone(), g.meta.clone()))
            .collect()
    }

    /// Whether any offset is stored for `group`.
    pub fn has_offsets(&self, group: &str) -> bool {
        self.read(group, |g| g.is_some_and(|g| !g.offsets.is_empty()))
    }

    /// Deletes everything stored for `group`. Returns the number of offsets removed.
    pub fn delete_group(&self, group: &str, now_ms: i64) -> Result<usize, StoreError> {
        let mut offsets = 0;
        self.update(now_ms, |groups| {
            let Some(g) = groups.get(group) else {
                return Vec::new();
            };
            offsets = g.offset_count();
            let mut changes: Vec<Change> = g
                .changes(group)
                .into_iter()
                .map(|c| match c {
                    Change::Offset {
                        group,
                        topic,
                        partition,
                        ..
                    } => Change::Offset {
                        group,
                        topic,
                        partition,
                        value: None,
                    },
                    Change::Group { group, .. } => Change::Group { group, value: None },
                })
                .collect();
            if g.meta.is_none() {
                // A tombstone for the metadata too, in case an older record survives somewhere.
                changes.push(Change::Group {
                    group: group.to_owned(),
                    value: None,
                });
            }
            changes
        })?;
        Ok(offsets)
    }

    /// Deletes the named offsets of `group` that exist. Returns how many were removed.
    pub fn delete_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        self.update(now_ms, |groups| {
            let Some(g) = groups.get(group) else {
                return Vec::new();
            };
            partitions
                .iter()
                .filter(|(t, p)| g.offsets.get(t).is_some_and(|ps| ps.contains_key(p)))
                .map(|(t, p)| Change::Offset {
                    group: group.to_owned(),
                    topic: t.clone(),
                    partition: *p,
                    value: None,
                })
                .collect()
        })
    }

    /// Deletes the offsets of `group` that have expired under `rule` with retention
    /// `retention_ms` (an explicit per-offset expiry time, from OffsetCommit v2–v4, wins).
    pub fn expire(
        &self,
        group: &str,
        rule: Expiry<'_>,
        retention_ms: i64,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        self.update(now_ms, |groups| {
            let Some(g) = groups.get(group) else {
                return Vec::new();
            };
            let mut changes = Vec::new();
            for (topic, partitions) in &g.offsets {
                if let Expiry::ByCommitTime(Some(keep)) = rule {
                    if keep.contains(topic) {
                        continue;
                    }
                }
                for (partition, v) in partitions {
                    let expired = match v.expire_timestamp {
                        Some(at) => now_ms >= at,
                        None => {
                            let base = match rule {
                                Expiry::EmptySince(since) => since,
                                Expiry::ByCommitTime(_) => v.commit_timestamp,
                            };
                            now_ms.saturating_sub(base) >= retention_ms
                        }
                    };
                    if expired {
                        changes.push(Change::Offset {
                            group: group.to_owned(),
                            topic: topic.clone(),
                            partition: *partition,
                            value: None,
                        });
                    }
                }
            }
            changes
        })
    }

    /// Deletes every group's offsets of `topic` (the topic was deleted).
    pub fn forget_topic(&self, topic: &str, now_ms: i64) -> Result<usize, StoreError> {
        self.update(now_ms, |groups| {
            groups
                .iter()
                .filter_map(|(id, g)| g.offsets.get(topic).map(|parts| (id, parts)))
                .flat_map(|(id, parts)| {
                    parts.keys().map(move |p| Change::Offset {
                        group: id.clone(),
                        topic: topic.to_owned(),
                        partition: *p,
                        value: None,
                    })
                })
                .collect()
        })
    }

    /// Whether the flush policy wants an fsync now (call after an append, outside any lock).
    pub fn flush_due(&self) -> bool {
        self.flush
            .every_bytes
            .is_some_and(|n| self.unflushed.load(Ordering::Relaxed) >= n)
            || self.partition.log.flush_needed()
    }

    /// Fsyncs the log (blocking; concurrent callers share one fsync).
    pub fn flush(&self) -> Result<(), LogError> {
        self.unflushed.store(0, Ordering::Relaxed);
        self.partition.log.flush()
    }

    /// Whether the log has grown enough since the last checkpoint to be worth compacting:
    /// by at least the configured threshold and at least the live state's size, so rewriting
    /// the live state costs at most one byte per byte appended.
    pub fn checkpoint_due(&self) -> bool {
        let state = self.state.lock();
        let grown = self
            .partition
            .log
            .size_bytes()
            .saturating_sub(state.size_at_checkpoint);
        grown >= self.checkpoint_bytes.max(state.live_bytes)
    }

    /// Rewrites the live state at the end of the log and moves the log start to its first
    /// record, dropping everything older. Crash-safe at every step:
    ///
    /// 1. The live state is appended in steps, each one read from the image *at the time it is
    ///    appended*, under the store lock; the first step rolls a new segment. A change made
    ///    between steps is appended after the records of groups already written, or is
    ///    already part of a later step, so the records from the first step on always replay
    ///    to the current image. A crash here leaves the old log start: the replay reads the
    ///    old records, then (part of) the checkpoint restating the same values.
    /// 2. The log is fsynced, so the checkpoint survives a power loss.
    /// 3. The log start advances to the checkpoint's first offset (an atomically replaced
    ///    checkpoint file) and the older segments are deleted.
    pub fn checkpoint(&self, now_ms: i64) -> Result<CheckpointOutcome, StoreError> {
        let _one_at_a_time = self.checkpoint_lock.lock();
        let log = &self.partition.log;
        let mut cursor: Option<String> = None;
        let mut start: Option<i64> = None;
        let (mut records, mut bytes) = (0usize, 0u64);
        loop {
            let state = self.state.lock();
            let lower = match &cursor {
                Some(c) => Bound::Excluded(c.as_str()),
                None => Bound::Unbounded,
            };
            let mut changes = Vec::new();
            let mut step_bytes = 0u64;
            let mut last = None;
            for (id, g) in state.groups.range::<str, _>((lower, Bound::Unbounded)) {
                changes.extend(g.changes(id));
                step_bytes += g.approx_bytes(id);
                last = Some(id.clone());
                if step_bytes >= CHECKPOINT_STEP_BYTES as u64 {
                    break;
                }
            }
            if changes.is_empty() {
                // Nothing (more) live: everything before this point is dead.
                start.get_or_insert(log.log_end_offset());
                break;
            }
            let batches = encode_changes(&changes, now_ms)?;
            let info = if start.is_none() {
                // segment.bytes = 1 makes this append roll unless the active segment is empty.
                let config = log.config();
                log.set_config(LogConfig {
                    segment_bytes: 1,
                    ..config.clone()
                });
                let appended = log.append(&batches, now_ms);
                log.set_config(config);
                appended?
            } else {
                log.append(&batches, now_ms)?
            };
            self.partition.notify_appended();
            start.get_or_insert(info.base_offset);
            records += changes.len();
            bytes += batches.len() as u64;
            cursor = last;
        }
        let old_log_start = log.log_start_offset();
        let new_log_start = match start {
            Some(s) => {
                log.flush()?;
                self.unflushed.store(0, Ordering::Relaxed);
                log.delete_records_before(s)?
            }
            None => old_log_start,
        };
        let mut state = self.state.lock();
        state.live_bytes = bytes;
        state.size_at_checkpoint = log.size_bytes();
        Ok(CheckpointOutcome {
            records,
            bytes,
            old_log_start,
            new_log_start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Cluster;
    use crate::config::TopicConfig;

    fn value(offset: i64) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: format!("m{offset}"),
            commit_timestamp: 1_000,
            expire_timestamp: None,
        }
    }

    fn commit(group: &str, topic: &str, partition: i32, offset: i64) -> Change {
        Change::Offset {
            group: group.into(),
            topic: topic.into(),
            partition,
            value: Some(value(offset)),
        }
    }

    fn open_cluster(dir: &std::path::Path, clean: bool) -> (Cluster, Arc<Partition>) {
        let cluster = Cluster::open(dir, LogConfig::default(), clean).unwrap();
        if cluster.topic("__consumer_offsets").is_none() {
            let cfg = TopicConfig::from_pairs([
                ("cleanup.policy", Some("compact")),
                ("segment.bytes", Some("4096")),
            ])
            .unwrap();
            cluster
                .create_topic("__consumer_offsets", 1, 1, cfg, true, false)
                .unwrap();
        }
        let p = cluster.partition("__consumer_offsets", 0).unwrap();
        (cluster, p)
    }

    fn image(store: &OffsetStore) -> BTreeMap<String, StoredGroup> {
        store.state.lock().groups.clone()
    }

    #[test]
    fn replay_rebuilds_the_image_across_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let (cluster, p) = open_cluster(dir.path(), true);
            let store = OffsetStore::open(p, 1 << 20).unwrap();
            store
                .append(
                    vec![
                        commit("g1", "t", 0, 5),
                        commit("g1", "t", 1, 7),
                        commit("g2", "t", 0, 1),
                        Change::Group {
                            group: "g1".into(),
                            value: Some(GroupValue {
                                protocol_type: "consumer".into(),
                                generation: 3,
                                protocol: Some("range".into()),
                                leader: Some("m1".into()),
                                state_timestamp: 9,
                            }),
                        },
                    ],
                    1,
                )
                .unwrap();
            store.append(vec![commit("g1", "t", 0, 6)], 2).unwrap();
            assert_eq!(store.delete_group("g2", 3).unwrap(), 1);
            assert_eq!(
                store
                    .delete_offsets("g1", &[("t".into(), 1), ("t".into(), 9)], 4)
                    .unwrap(),
                1
            );
            let img = image(&store);
            drop(store);
            drop(cluster);
            img
        };
        // Unclean reopen (no close): the log's recovery plus the replay give the same image.
        let (_cluster, p) = open_cluster(dir.path(), false);
        let store = OffsetStore::open(p, 1 << 20).unwrap();
        assert_eq!(image(&store), before);
        assert_eq!(before.len(), 1);
        let g1 = &before["g1"];
        assert_eq!(g1.offsets["t"][&0].offset, 6);
        assert_eq!(g1.meta.as_ref().map(|m| m.generation), Some(3));
    }

    #[test]
    fn checkpoint_bounds_the_log_and_preserves_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let (cluster, p) = open_cluster(dir.path(), true);
        let store = OffsetStore::open(p.clone(), 8 * 1024).unwrap();
        for round in 0..200i64 {
            store
                .append(
                    (0..4).map(|part| commit("g", "t", part, round)).collect(),
                    round,
                )
                .unwrap();
        }
        store.append(vec![commit("other", "u", 0, 1)], 300).unwrap();
        assert!(store.checkpoint_due());
        let size_before = p.log.size_bytes();
        let before = image(&store);
        let outcome = store.checkpoint(400).unwrap();
        assert_eq!(outcome.records, 5);
        assert!(outcome.new_log_start > outcome.old_log_start);
        assert_eq!(p.log.log_start_offset(), outcome.new_log_start);
        assert!(
            p.log.size_bytes() < size_before / 10,
            "log shrank from {size_before} to {}",
            p.log.size_bytes()
        );
        assert!(!store.checkpoint_due());
        assert_eq!(image(&store), before);
        drop(store);
        drop(p);
        drop(cluster);
        let (_cluster, p) = open_cluster(dir.path(), false);
        let store = OffsetStore::open(p, 8 * 1024).unwrap();
        assert_eq!(image(&store), before);
    }

    #[test]
    fn a_checkpoint_interrupted_before_the_log_start_moves_replays_correctly() {
        let dir = tempfile::tempdir().unwrap();
        let (cluster, p) = open_cluster(dir.path(), true);
        let store = OffsetStore::open(p.clone(), 1 << 20).unwrap();
        store
            .append(vec![commit("g", "t", 0, 1), commit("gone", "t", 0, 1)], 1)
            .unwrap();
        store.delete_group("gone", 2).unwrap();
        store.append(vec![commit("g", "t", 0, 2)], 3).unwrap();
        let before = image(&store);
        // Step 1 only, for half of the state: the records a crash mid-checkpoint leaves.
        let partial = encode_changes(&before["g"].changes("g"), 4).unwrap();
        p.log.append(&partial, 4).unwrap();
        store.append(vec![commit("g", "t", 1, 9)], 5).unwrap();
        let after = image(&store);
        drop(store);
        drop(p);
        drop(cluster);
        let (_cluster, p) = open_cluster(dir.path(), false);
        let store = OffsetStore::open(p, 1 << 20).unwrap();
        assert_eq!(image(&store), after);
    }

    #[test]
    fn expiry_follows_kafka_rules() {
        let dir = tempfile::tempdir().unwrap();
        let (_cluster, p) = open_cluster(dir.path(), true);
        let store = OffsetStore::open(p, 1 << 20).unwrap();
        let mut old = value(1);
        old.commit_timestamp = 0;
        let mut fresh = value(2);
        fresh.commit_timestamp = 900;
        let mut explicit = value(3);
        explicit.commit_timestamp = 900;
        explicit.expire_timestamp = Some(950);
        let set = |topic: &str, partition, v: &OffsetValue| Change::Offset {
            group: "g".into(),
            topic: topic.into(),
            partition,
            value: Some(v.clone()),
        };
        store
            .append(
                vec![
                    set("a", 0, &old),
                    set("a", 1, &fresh),
                    set("b", 0, &old),
                    set("c", 0, &explicit),
                ],
                1,
            )
            .unwrap();
        let keep: HashSet<String> = ["b".to_string()].into();
        // Retention 500 at t=1000: a-0 (commit 0) and c-0 (explicit 950) expire; b is kept.
        let n = store
            .expire("g", Expiry::ByCommitTime(Some(&keep)), 500, 1000)
            .unwrap();
        assert_eq!(n, 2);
        let img = image(&store);
        assert!(img["g"].offsets["a"].contains_key(&1));
        assert!(img["g"].offsets.contains_key("b"));
        assert!(!img["g"].offsets.contains_key("c"));
        // Empty since 600: nothing before 1100, everything at 1100.
        assert_eq!(
            store
                .expire("g", Expiry::EmptySince(600), 500, 1099)
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .expire("g", Expiry::EmptySince(600), 500, 1100)
                .unwrap(),
            2
        );
        assert!(!store.has_offsets("g"));
    }
}
