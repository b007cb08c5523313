//! Log compaction (`cleanup.policy=compact`): keep the latest record of every key.
//!
//! Kafka's log cleaner, reduced to what one node needs. A pass works on the *cleanable*
//! segments — every closed segment from the start of the log, up to the first one holding a
//! record younger than `min.compaction.lag.ms` (the active segment is never cleaned):
//!
//! 1. **Map**: read every record of the cleanable segments and note, per key, the offset of
//!    its latest record.
//! 2. **Filter**: rewrite each cleanable segment keeping a keyed record only if it is the
//!    latest of its key, and dropping that latest record too when it is a tombstone (null
//!    value) whose batch is older than `delete.retention.ms` — unless an older record of
//!    the key stays (below), which the tombstone must go on hiding. Records without a key
//!    are kept. A batch keeps its base offset, last offset delta, timestamps and producer fields;
//!    only its records, count, length and CRC change (compressed batches are recompressed
//!    with their codec). A batch left with no record is dropped, leaving a gap in the
//!    offsets, as in Kafka; clients skip gaps.
//!    Consecutive segments whose sizes add up to at most `segment.bytes` are rewritten
//!    together into one (Kafka's grouping by size, measured before cleaning), so a
//!    compacted log does not keep one file per segment it ever rolled.
//! 3. **Swap**: each group's file is written as `<first base>.cleaned.tmp` and fsync'ed;
//!    then, under the writer lock, the first segment's index files are removed, the new
//!    file renamed over the first segment's (the commit point), the group's other segments
//!    removed, the indexes rebuilt by full validation, and the group replaced by the new
//!    segment in the list. Readers that took the old segments keep reading the old files
//!    through their handles.
//!
//! What is never removed, so the log stays consistent:
//!
//! - the **last batch of every rewritten segment**: filtered like any other, but when every
//!   one of its records would go, its last record stays, so the segment still ends where the
//!   next one begins and is never empty. (Kafka would leave a gap or an empty
//!   batch there; an empty batch stalls old clients such as sarama 1.22, which never moves
//!   past a fetch that yields no record.)
//! - **control batches** and **transactional batches** (transactions are stored, not
//!   interpreted, so their markers and data are left alone);
//! - the **last batch of every producer id** in the cleaned range (Kafka keeps it too, so
//!   idempotent producer state rebuilt from the log still knows the last sequence);
//! - any batch whose records cannot be decoded (it is kept whole and contributes no key).
//!
//! A superseded record that stays (in a batch kept whole, or as a segment's last record)
//! keeps its key's tombstone alive past `delete.retention.ms`, so the old value never comes
//! back: a consumer reading from the start ends on the same value of every key as before.
//!
//! Crash safety: a crash before the rename leaves a `*.cleaned.tmp` file, removed on open;
//! after the index files are removed, the segment has none, so open rebuilds them from
//! whichever file is in place (the old one or the cleaned one, both valid). A crash after the
//! rename, before the group's other segments are gone, leaves segments that start inside the
//! renamed one and end within it: open recognises them as merged and removes them. Offsets
//! are not changed by compaction, so the recovery point and the log start stay valid.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use std::io::Write;

use super::{remove_segment_files, scan_err, Log};
use crate::batch::{
    compute_crc, put_i32, BatchHeader, Compression, CRC_OFFSET, HEADER_SIZE, LENGTH_OFFSET,
    LOG_OVERHEAD, RECORD_COUNT_OFFSET,
};
use crate::checkpoint::{sync_dir, write_offset, CLEANER_OFFSET_FILE};
use crate::error::{IoContext, LogError};
use crate::records::{compress, parse_records, records_section, RecordView};
use crate::segment::{file_stem, Segment, INDEX_SUFFIX, TIME_INDEX_SUFFIX};

/// Suffix of a cleaned segment file before it replaces the original (removed on open).
const CLEANED_SUFFIX: &str = ".cleaned.tmp";

/// Settings of one compaction pass (the topic's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionConfig {
    /// `delete.retention.ms`: how long a tombstone stays readable once it is the latest
    /// record of its key (measured from its batch's max timestamp). Kafka's default is one
    /// day.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted (default 0).
    pub min_compaction_lag_ms: i64,
    /// Most key bytes the key map of one pass may hold (Kafka's
    /// `log.cleaner.dedupe.buffer.size`); a pass that reaches it cleans only the segments
    /// mapped so far, and the next pass goes on.
    pub max_map_bytes: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_map_bytes: 128 * 1024 * 1024,
        }
    }
}

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Segments examined (the cleanable ones).
    pub segments_examined: usize,
    /// Segments rewritten (some record was removed from them, or they were merged).
    pub segments_rewritten: usize,
    /// Segments that no longer exist because they were merged into the one before them.
    pub segments_merged: usize,
    /// Records removed because a later record has the same key.
    pub records_removed: u64,
    /// Tombstones removed because they were older than `delete.retention.ms`.
    pub tombstones_removed: u64,
    /// Batches removed entirely (each leaves a gap in the offsets).
    pub batches_removed: u64,
    /// Bytes of the rewritten segments before.
    pub bytes_before: u64,
    /// Bytes of the rewritten segments after.
    pub bytes_after: u64,
}

/// A cleaned group of segments waiting to be swapped in as one.
struct Cleaned {
    old: Vec<Arc<Segment>>,
    tmp: PathBuf,
}

/// Index of the group's last segment holding a batch: its last batch is the one whose last
/// offset the rewritten group must still end on.
fn last_nonempty(group: &[Arc<Segment>]) -> Option<usize> {
    group.iter().rposition(|s| !s.is_empty())
}

/// Splits consecutive segments into runs that fit in one segment: at most `max_bytes`
/// together, and offsets within the 32-bit range relative to the run's base offset.
fn group_segments(segs: &[Arc<Segment>], max_bytes: u64) -> Vec<Vec<Arc<Segment>>> {
    let mut groups: Vec<Vec<Arc<Segment>>> = Vec::new();
    let mut bytes = 0u64;
    for seg in segs {
        let fits = groups.last().and_then(|g| g.first()).is_some_and(|first| {
            bytes + seg.size() <= max_bytes
                && seg.next_offset() - 1 - first.base_offset <= i64::from(u32::MAX)
        });
        if fits {
            bytes += seg.size();
            if let Some(g) = groups.last_mut() {
                g.push(Arc::clone(seg));
            }
        } else {
            bytes = seg.size();
            groups.push(vec![Arc::clone(seg)]);
        }
    }
    groups
}

impl Log {
    /// The share of the cleanable bytes (closed segments older than `min_compaction_lag_ms`)
    /// that no compaction pass has examined yet: Kafka's "dirty ratio". A pass is worth
    /// running when it reaches `min.cleanable.dirty.ratio`.
    pub fn dirty_ratio(&self, now_ms: i64, min_compaction_lag_ms: i64) -> f64 {
        let segs = self.snapshot();
        let lag_limit = now_ms.saturating_sub(min_compaction_lag_ms.max(0));
        let cleaned = self.cleaned_up_to.load(Ordering::Acquire);
        let (mut total, mut dirty) = (0u64, 0u64);
        let closed = segs.get(..segs.len().saturating_sub(1)).unwrap_or(&[]);
        for s in closed
            .iter()
            .take_while(|s| s.largest_timestamp() <= lag_limit)
        {
            total += s.size();
            if s.next_offset() > cleaned {
                dirty += s.size();
            }
        }
        if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        }
    }

    /// Timestamp of the oldest record no pass has examined yet among the cleanable segments
    /// (the first batch's max timestamp of the oldest such segment); `None` if there is none.
    /// With `max.compaction.lag.ms`, a pass is due once this is old enough.
    pub fn oldest_dirty_timestamp(&self, now_ms: i64, min_compaction_lag_ms: i64) -> Option<i64> {
        let segs = self.snapshot();
        let lag_limit = now_ms.saturating_sub(min_compaction_lag_ms.max(0));
        let cleaned = self.cleaned_up_to.load(Ordering::Acquire);
        let closed = segs.get(..segs.len().saturating_sub(1)).unwrap_or(&[]);
        closed
            .iter()
            .take_while(|s| s.largest_timestamp() <= lag_limit)
            .find(|s| s.next_offset() > cleaned && !s.is_empty())
            .and_then(|s| s.first_batch_timestamp())
    }

    /// Records that a pass examined the log up to `to` (in memory and in `cleaner-offset`).
    fn checkpoint_cleaned(&self, to: Option<i64>) -> Result<(), LogError> {
        let Some(to) = to else {
            return Ok(());
        };
        let was = self.cleaned_up_to.fetch_max(to, Ordering::AcqRel);
        if to > was {
            write_offset(&self.dir, CLEANER_OFFSET_FILE, to)?;
        }
        Ok(())
    }

    /// One compaction pass (see the module docs of `compact`): for the closed segments old
    /// enough to clean, keeps the latest record of every key and drops expired tombstones.
    /// Runs concurrently with appends and reads; appends wait only for the final swap.
    pub fn compact(
        &self,
        now_ms: i64,
        cfg: &CompactionConfig,
    ) -> Result<CompactionOutcome, LogError> {
        let _one_at_a_time = self.cleaner.lock();
        let mut out = CompactionOutcome::default();
        let segs = self.snapshot();
        let lag_limit = now_ms.saturating_sub(cfg.min_compaction_lag_ms.max(0));
        let closed = segs.get(..segs.len().saturating_sub(1)).unwrap_or(&[]);
        let cleanable: Vec<Arc<Segment>> = closed
            .iter()
            .take_while(|s| s.largest_timestamp() <= lag_limit)
            .cloned()
            .collect();

        // 1. Map: the latest offset of every key, and every producer's last batch.
        let mut map = KeyMap::default();
        let mut mapped = 0;
        for seg in &cleanable {
            for (pos, h) in headers(seg)? {
                if h.is_control() || h.is_transactional() {
                    continue;
                }
                if h.has_producer_id() {
                    map.producer_last.insert(h.producer_id, h.base_offset);
                }
                let batch = seg.read_batch(pos, h.size()).at(seg.log_path())?;
                let Ok(section) = records_section(&batch, &h) else {
                    continue;
                };
                let Ok(records) = parse_records(&section, h.record_count) else {
                    continue;
                };
                for r in records {
                    if let Some(key) = r.key {
                        map.note(key, h.base_offset + i64::from(r.offset_delta));
                    }
                }
            }
            mapped += 1;
            if map.bytes >= cfg.max_map_bytes {
                break;
            }
        }
        let cleanable = cleanable.get(..mapped).unwrap_or(&[]);
        out.segments_examined = cleanable.len();
        let examined_to = cleanable.last().map(|s| s.next_offset());

        // Consecutive cleanable segments whose bytes together fit in one segment are
        // rewritten as one (Kafka groups them the same way), so a compacted log does not
        // keep a file per segment ever rolled.
        let (max_bytes, interval) = {
            let w = self.writer.lock();
            (
                w.config.effective_segment_bytes(),
                w.config.index_interval_bytes,
            )
        };
        let groups = group_segments(cleanable, max_bytes);

        // Keys with a superseded record that stays — in a batch kept whole, or as the one
        // record a group's last batch keeps — must keep their tombstones, or the older value
        // would come back. (A last batch whose every record could go keeps its last record;
        // counting expired tombstones as gone here may keep a tombstone longer than needed,
        // never shorter.)
        let tombstone_limit = now_ms.saturating_sub(cfg.delete_retention_ms.max(0));
        let mut shadowed = HashSet::new();
        for group in &groups {
            let last_seg = last_nonempty(group);
            for (si, seg) in group.iter().enumerate() {
                let batches = headers(seg)?;
                let last = batches.len().saturating_sub(1);
                for (i, (pos, h)) in batches.iter().enumerate() {
                    let whole = map.keeps_whole(h);
                    let group_last = Some(si) == last_seg && i == last;
                    if !whole && !group_last {
                        continue;
                    }
                    let batch = seg.read_batch(*pos, h.size()).at(seg.log_path())?;
                    let Ok(section) = records_section(&batch, h) else {
                        continue;
                    };
                    let records = parse_records(&section, h.record_count).unwrap_or_default();
                    let stays: Vec<&RecordView<'_>> = if whole {
                        records.iter().collect()
                    } else if records
                        .iter()
                        .all(|r| map.fate(h, r, tombstone_limit) != Fate::Kept)
                    {
                        records.last().into_iter().collect()
                    } else {
                        Vec::new()
                    };
                    for r in stays {
                        if let Some(key) = r.key {
                            if !map.is_latest(key, h.base_offset + i64::from(r.offset_delta)) {
                                shadowed.insert(key.to_vec());
                            }
                        }
                    }
                }
            }
        }
        map.shadowed = shadowed;

        // 2. Filter each group into a new file, streamed.
        let mut cleaned = Vec::new();
        for group in groups {
            let Some(first) = group.first() else {
                continue;
            };
            let before = out;
            let tmp = cleaned_path(&self.dir, first.base_offset);
            let file = fs::File::create(&tmp).at(&tmp)?;
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
            let mut written = 0u64;
            let last_seg = last_nonempty(&group);
            for (si, seg) in group.iter().enumerate() {
                let batches = headers(seg)?;
                let last = batches.len().saturating_sub(1);
                for (i, (pos, h)) in batches.iter().enumerate() {
                    let batch = seg.read_batch(*pos, h.size()).at(seg.log_path())?;
                    let filtered = if map.keeps_whole(h) {
                        Filtered::Unchanged
                    } else {
                        let group_last = Some(si) == last_seg && i == last;
                        filter_batch(&batch, h, &map, tombstone_limit, group_last, &mut out)
                    };
                    let bytes: &[u8] = match &filtered {
                        Filtered::Unchanged => &batch,
                        Filtered::Rewritten(b) => b,
                        Filtered::Empty => {
                            out.batches_removed += 1;
                            continue;
                        }
                    };
                    writer.write_all(bytes).at(&tmp)?;
                    written += bytes.len() as u64;
                }
            }
            let file = writer.into_inner().map_err(|e| e.into_error()).at(&tmp)?;
            let changed = out.records_removed != before.records_removed
                || out.tombstones_removed != before.tombstones_removed;
            if !changed && group.len() == 1 {
                drop(file);
                fs::remove_file(&tmp).at(&tmp)?;
                continue;
            }
            file.sync_all().at(&tmp)?;
            out.segments_rewritten += group.len();
            out.segments_merged += group.len() - 1;
            out.bytes_before += group.iter().map(|s| s.size()).sum::<u64>();
            out.bytes_after += written;
            cleaned.push(Cleaned { old: group, tmp });
        }
        if cleaned.is_empty() {
            self.checkpoint_cleaned(examined_to)?;
            return Ok(out);
        }

        // 3. Swap the cleaned groups in.
        let w = self.writer.lock();
        let _no_flush = self.flush_lock.lock();
        let mut list: Vec<Arc<Segment>> = self.snapshot().as_ref().clone();
        for c in cleaned {
            let (Some(first), Some(last)) = (c.old.first(), c.old.last()) else {
                continue;
            };
            let slot = list.iter().position(|s| Arc::ptr_eq(s, first));
            let intact = slot.is_some_and(|at| {
                list.get(at..at + c.old.len())
                    .is_some_and(|run| run.iter().zip(&c.old).all(|(a, b)| Arc::ptr_eq(a, b)))
            });
            let Some(slot) = slot.filter(|_| intact) else {
                // Deleted by retention meanwhile.
                fs::remove_file(&c.tmp).at(&c.tmp)?;
                continue;
            };
            let base = first.base_offset;
            for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                let p = self.dir.join(format!("{}{suffix}", file_stem(base)));
                match fs::remove_file(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err::<(), _>(e).at(&p)?;
                    }
                    _ => {}
                }
            }
            // The marker first, durably: a segment with gaps must never be read without it
            // (recovery would cut it at the first gap).
            let marker = Segment::compacted_path(&self.dir, base);
            fs::File::create(&marker).at(&marker)?;
            sync_dir(&self.dir)?;
            // The commit point: from here the first file covers the whole group, and open
            // removes the group's other files as covered if a crash leaves them.
            fs::rename(&c.tmp, first.log_path()).at(first.log_path())?;
            sync_dir(&self.dir)?;
            for other in c.old.iter().skip(1) {
                remove_segment_files(other).at(other.log_path())?;
            }
            sync_dir(&self.dir)?;
            let seg = Segment::open(&self.dir, base).at(&self.dir)?;
            let r = seg.recover(interval).at(seg.log_path())?;
            if r.truncated_bytes > 0 || seg.next_offset() != last.next_offset() {
                // Never expected: the cleaned file was built from validated batches.
                return Err(LogError::InvalidLog(
                    self.dir.clone(),
                    format!(
                        "cleaned segment {} did not validate ({} bytes cut)",
                        seg.log_path().display(),
                        r.truncated_bytes
                    ),
                ));
            }
            seg.seal_time_index();
            seg.persist_indexes().at(seg.log_path())?;
            seg.sync(true).at(seg.log_path())?;
            let old_bytes: u64 = c.old.iter().map(|s| s.size()).sum();
            self.size.fetch_sub(old_bytes, Ordering::AcqRel);
            self.size.fetch_add(seg.size(), Ordering::AcqRel);
            list.splice(slot..slot + c.old.len(), [Arc::new(seg)]);
        }
        *self.segments.write() = Arc::new(list);
        drop(w);
        self.checkpoint_cleaned(examined_to)?;
        tracing::info!(
            dir = %self.dir.display(),
            segments = out.segments_rewritten,
            records_removed = out.records_removed,
            tombstones_removed = out.tombstones_removed,
            bytes_before = out.bytes_before,
            bytes_after = out.bytes_after,
            "compacted log"
        );
        Ok(out)
    }
}

/// Per key, the offset of its latest record; per producer id, the base offset of its last
/// batch; the keys whose tombstone must stay.
#[derive(Default)]
struct KeyMap {
    latest: HashMap<Vec<u8>, i64>,
    producer_last: HashMap<i64, i64>,
    shadowed: HashSet<Vec<u8>>,
    bytes: usize,
}

impl KeyMap {
    /// Whether a batch is copied as it is: control and transactional batches, and each
    /// producer's last batch.
    fn keeps_whole(&self, h: &BatchHeader) -> bool {
        h.is_control()
            || h.is_transactional()
            || (h.has_producer_id()
                && self.producer_last.get(&h.producer_id) == Some(&h.base_offset))
    }

    /// What filtering does with record `r` of a batch with header `h`.
    fn fate(&self, h: &BatchHeader, r: &RecordView<'_>, tombstone_limit: i64) -> Fate {
        match r.key {
            None => Fate::Kept,
            Some(key) if !self.is_latest(key, h.base_offset + i64::from(r.offset_delta)) => {
                Fate::Superseded
            }
            Some(key)
                if r.value.is_none()
                    && h.max_timestamp < tombstone_limit
                    && !self.shadowed.contains(key) =>
            {
                Fate::Expired
            }
            Some(_) => Fate::Kept,
        }
    }

    fn note(&mut self, key: &[u8], offset: i64) {
        match self.latest.get_mut(key) {
            Some(o) => *o = (*o).max(offset),
            None => {
                self.bytes += key.len() + 32;
                self.latest.insert(key.to_vec(), offset);
            }
        }
    }

    /// Whether the record of `key` at `offset` survives (it is the latest of its key).
    fn is_latest(&self, key: &[u8], offset: i64) -> bool {
        self.latest.get(key).is_none_or(|&o| o <= offset)
    }
}

/// What compaction does with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Kept,
    /// A later record has the same key.
    Superseded,
    /// The latest record of its key, a tombstone older than `delete.retention.ms`.
    Expired,
}

enum Filtered {
    Unchanged,
    Rewritten(Vec<u8>),
    Empty,
}

/// The batch without its superseded records (and expired tombstones).
fn filter_batch(
    batch: &[u8],
    h: &BatchHeader,
    map: &KeyMap,
    tombstone_limit: i64,
    keep_last: bool,
    out: &mut CompactionOutcome,
) -> Filtered {
    let Ok(section) = records_section(batch, h) else {
        return Filtered::Unchanged;
    };
    let Ok(records) = parse_records(&section, h.record_count) else {
        return Filtered::Unchanged;
    };
    let (mut removed, mut tombstones) = (0u64, 0u64);
    let mut kept = Vec::with_capacity(section.len());
    let mut count = 0i32;
    for r in &records {
        let keep = match map.fate(h, r, tombstone_limit) {
            Fate::Kept => true,
            Fate::Superseded => {
                removed += 1;
                false
            }
            Fate::Expired => {
                tombstones += 1;
                false
            }
        };
        if keep {
            kept.extend_from_slice(r.raw);
            count += 1;
        }
    }
    if count == 0 && keep_last {
        // A segment's last batch keeps its last record: the segment's offsets must reach
        // the next segment's base offset (see the module docs).
        if let Some(last) = records.last() {
            match map.fate(h, last, tombstone_limit) {
                Fate::Superseded => removed -= 1,
                Fate::Expired => tombstones -= 1,
                Fate::Kept => {}
            }
            kept.extend_from_slice(last.raw);
            count = 1;
        }
    }
    if removed + tombstones == 0 {
        return Filtered::Unchanged;
    }
    let body = match h.compression() {
        Compression::None => kept,
        codec => match compress(codec, &kept) {
            Ok(b) => b,
            // Left as it was: compaction is an optimisation, never a reason to fail.
            Err(_) => return Filtered::Unchanged,
        },
    };
    out.records_removed += removed;
    out.tombstones_removed += tombstones;
    if count == 0 {
        return Filtered::Empty;
    }
    let Some(header) = batch.get(..HEADER_SIZE) else {
        return Filtered::Unchanged;
    };
    let mut b = Vec::with_capacity(HEADER_SIZE + body.len());
    b.extend_from_slice(header);
    b.extend_from_slice(&body);
    let length = i32::try_from(b.len() - LOG_OVERHEAD).unwrap_or(i32::MAX);
    put_i32(&mut b, LENGTH_OFFSET, length);
    put_i32(&mut b, RECORD_COUNT_OFFSET, count);
    let crc = compute_crc(&b);
    put_i32(&mut b, CRC_OFFSET, crc as i32);
    Filtered::Rewritten(b)
}

fn headers(seg: &Segment) -> Result<Vec<(u64, BatchHeader)>, LogError> {
    seg.batch_headers().map_err(|e| scan_err(seg.log_path(), e))
}

fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}{CLEANED_SUFFIX}", file_stem(base)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::batch::builder::{BatchBuilder, Record};
    use crate::batch::{BatchIter, ATTRIBUTES_OFFSET};
    use crate::{FlushPolicy, LogConfig};

    const T0: i64 = 1_700_000_000_000;
    const DAY: i64 = 86_400_000;

    /// (offset → (key, value)) of every record readable from the log, batch by batch from
    /// the log start, checking that every offset in between reads the next batch.
    type Contents = BTreeMap<i64, (Option<Vec<u8>>, Option<Vec<u8>>)>;

    fn contents(log: &Log) -> Contents {
        let mut out = Contents::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let r = log.read(offset, 1 << 20).unwrap();
            assert!(!r.data.is_empty(), "nothing read at {offset}");
            for b in BatchIter::stored(&r.data) {
                let b = b.unwrap();
                assert!(b.header.last_offset() >= offset);
                let section = records_section(b.bytes, &b.header).unwrap();
                for rec in parse_records(&section, b.header.record_count).unwrap() {
                    let o = b.header.base_offset + i64::from(rec.offset_delta);
                    assert!(o >= offset && o <= b.header.last_offset());
                    out.insert(
                        o,
                        (rec.key.map(<[u8]>::to_vec), rec.value.map(<[u8]>::to_vec)),
                    );
                }
                offset = b.header.next_offset();
            }
        }
        out
    }

    fn small_segments() -> LogConfig {
        LogConfig {
            segment_bytes: 600,
            flush: FlushPolicy::manual(),
            retention_ms: -1,
            ..LogConfig::default()
        }
    }

    /// A batch of (key, value) records, compressed with `codec`.
    fn batch(records: &[(u8, Option<u8>)], ts: i64, codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(ts);
        for (k, v) in records {
            b.push(Record::new(
                Some(format!("key-{k}").into_bytes()),
                v.map(|v| vec![v; 40]),
            ));
        }
        let plain = b.build();
        if codec == Compression::None {
            return plain;
        }
        let body = compress(codec, &plain[HEADER_SIZE..]).unwrap();
        let mut out = plain[..HEADER_SIZE].to_vec();
        out.extend_from_slice(&body);
        let codec_bits: i16 = match codec {
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            _ => 4,
        };
        let attrs = i16::from_be_bytes([out[ATTRIBUTES_OFFSET], out[ATTRIBUTES_OFFSET + 1]]);
        out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2]
            .copy_from_slice(&(attrs | codec_bits).to_be_bytes());
        let len = (out.len() - LOG_OVERHEAD) as i32;
        put_i32(&mut out, LENGTH_OFFSET, len);
        let crc = compute_crc(&out);
        put_i32(&mut out, CRC_OFFSET, crc as i32);
        out
    }

    /// Checks what a compaction pass must preserve, given the contents before and after.
    fn check_compacted(before: &Contents, after: &Contents, tombstones_expired: bool) {
        let mut latest: HashMap<&[u8], i64> = HashMap::new();
        for (o, (k, _)) in before {
            if let Some(k) = k {
                latest.insert(k, *o);
            }
        }
        for (o, rec) in after {
            assert_eq!(
                before.get(o),
                Some(rec),
                "record at {o} changed or appeared"
            );
        }
        let mut last_after: HashMap<&[u8], i64> = HashMap::new();
        for (o, (k, _)) in after {
            if let Some(k) = k {
                last_after.insert(k, *o);
            }
        }
        for (k, o) in &latest {
            let tombstone = before.get(o).is_some_and(|(_, v)| v.is_none());
            if !(tombstone && tombstones_expired) {
                assert!(
                    after.contains_key(o),
                    "the latest record of {k:?} (offset {o}) is gone"
                );
            }
            // What a consumer reading everything ends with: the same value, or for a
            // removed tombstone nothing at all, never an older value brought back.
            match last_after.get(k) {
                Some(a) => assert_eq!(a, o, "{k:?} ends on another record"),
                None => assert!(tombstone && tombstones_expired, "{k:?} vanished"),
            }
        }
    }

    #[test]
    fn keeps_the_latest_record_of_every_key_with_every_codec() {
        for codec in Compression::KNOWN {
            let dir = tempfile::tempdir().unwrap();
            let log = Log::open(dir.path(), small_segments(), false, T0).unwrap();
            for round in 0..30u8 {
                let recs: Vec<_> = (0..4).map(|k| ((round + k) % 6, Some(round))).collect();
                log.append(&batch(&recs, T0, codec), T0).unwrap();
            }
            let before = contents(&log);
            let (end, segments, size) =
                (log.log_end_offset(), log.segment_count(), log.size_bytes());
            assert!(segments > 3, "{codec:?}: {segments} segments");
            assert_eq!(log.dirty_ratio(T0, 0), 1.0);
            let out = log.compact(T0, &CompactionConfig::default()).unwrap();
            assert_eq!(log.dirty_ratio(T0, 0), 0.0);
            // The cleaner checkpoint survives a restart: nothing is dirty after reopening.
            log.close().unwrap();
            let log = Log::open(dir.path(), small_segments(), false, T0).unwrap();
            assert_eq!(log.dirty_ratio(T0, 0), 0.0, "{codec:?}");
            let after = contents(&log);
            check_compacted(&before, &after, false);
            assert!(
                out.records_removed > 0 && out.segments_rewritten > 0,
                "{codec:?}: {out:?}"
            );
            assert_eq!(
                before.len() - after.len(),
                out.records_removed as usize,
                "{codec:?}"
            );
            assert!(log.size_bytes() < size, "{codec:?}: the log shrank");
            assert_eq!(log.size_bytes(), size - out.bytes_before + out.bytes_after);
            // Full segments are cleaned one by one (groups are formed by size before
            // cleaning, as in Kafka); the next pass merges the shrunk ones: fewer files, the
            // same log end, and only more superseded records removed.
            assert_eq!(log.log_end_offset(), end);
            assert_eq!(log.segment_count(), segments - out.segments_merged);
            let again = log.compact(T0, &CompactionConfig::default()).unwrap();
            check_compacted(&before, &contents(&log), false);
            assert!(again.segments_merged > 0, "{codec:?}: {again:?}");
            assert_eq!(
                log.segment_count(),
                segments - out.segments_merged - again.segments_merged
            );
            assert_eq!(log.log_end_offset(), end);
            // Appends go on at the same offsets; a clean and an unclean reopen serve the same.
            log.append(&batch(&[(1, Some(99))], T0, codec), T0).unwrap();
            let live = contents(&log);
            log.close().unwrap();
            for clean in [true, false] {
                let log = Log::open(dir.path(), small_segments(), clean, T0).unwrap();
                assert_eq!(contents(&log), live, "{codec:?}, clean {clean}");
                if !clean {
                    log.close().unwrap();
                }
            }
        }
    }

    #[test]
    fn tombstones_stay_for_delete_retention_then_go() {
        let dir = tempfile::tempdir().unwrap();
        // One segment by age: everything appended at T0, then a roll.
        let config = LogConfig {
            segment_ms: 1000,
            ..small_segments()
        };
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..config
        };
        let log = Log::open(dir.path(), config.clone(), false, T0).unwrap();
        let append = |recs: &[(u8, Option<u8>)], now: i64| {
            log.append(&batch(recs, T0, Compression::None), now)
                .unwrap();
        };
        for i in 0..12u8 {
            append(&[(i % 3, Some(i)), (7, None)], T0);
        }
        append(&[(0, None), (1, Some(1)), (2, Some(2))], T0);
        append(&[(5, Some(0))], T0);
        append(&[(5, Some(1))], T0 + 5000);
        assert_eq!(log.segment_count(), 2);
        let before = contents(&log);
        let cfg = CompactionConfig::default();
        let out = log.compact(T0 + DAY / 2, &cfg).unwrap();
        assert_eq!(out.tombstones_removed, 0);
        let mid = contents(&log);
        check_compacted(&before, &mid, false);
        let has = |c: &Contents, key: u8, value: Option<u8>| {
            c.values().any(|(k, v)| {
                k.as_deref() == Some(format!("key-{key}").as_bytes())
                    && v.as_ref().map(|v| v[0]) == value
            })
        };
        assert!(
            has(&mid, 0, None) && has(&mid, 7, None),
            "fresh tombstones stay"
        );
        let out = log.compact(T0 + DAY + 1, &cfg).unwrap();
        assert_eq!(out.tombstones_removed, 2, "{out:?}");
        let after = contents(&log);
        check_compacted(&mid, &after, true);
        assert!(!has(&after, 0, None) && !has(&after, 7, None));
        assert!(has(&after, 1, Some(1)) && has(&after, 2, Some(2)));
        assert_eq!(after.len(), 4, "{after:?}");
    }

    #[test]
    fn young_segments_and_the_active_one_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), small_segments(), false, T0).unwrap();
        for i in 0..40u8 {
            log.append(
                &batch(&[(0, Some(i))], T0 + i64::from(i) * 1000, Compression::None),
                T0,
            )
            .unwrap();
        }
        let before = contents(&log);
        let cfg = CompactionConfig {
            min_compaction_lag_ms: 1_000_000,
            ..CompactionConfig::default()
        };
        // Every record is younger than the lag.
        assert_eq!(log.compact(T0 + 1000, &cfg).unwrap().segments_examined, 0);
        assert_eq!(contents(&log), before);
        // Later, every closed segment is cleaned: one record of key 0 is left in each (its
        // last batch), plus the whole active segment.
        let out = log.compact(T0 + 2_000_000, &cfg).unwrap();
        assert_eq!(out.segments_examined, log.segment_count() - 1);
        let after = contents(&log);
        check_compacted(&before, &after, false);
        let active_base = *log.segment_base_offsets().last().unwrap();
        let active = before.range(active_base..).count();
        assert_eq!(after.len(), log.segment_count() - 1 + active);
    }

    #[test]
    fn idempotent_producer_state_survives_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), small_segments(), false, T0).unwrap();
        let mut seq = 0;
        for i in 0..20u8 {
            let mut b = BatchBuilder::new(T0).idempotent(42, 0, seq);
            b.push(Record::new(Some(b"k".to_vec()), Some(vec![i; 40])));
            log.append(&b.build(), T0).unwrap();
            seq += 1;
        }
        log.compact(T0, &CompactionConfig::default()).unwrap();
        // Lose every producer snapshot: state is rebuilt from the log alone.
        log.close().unwrap();
        for f in fs::read_dir(dir.path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "snapshot") {
                fs::remove_file(p).unwrap();
            }
        }
        let log = Log::open(dir.path(), small_segments(), false, T0).unwrap();
        assert_eq!(
            log.producer_state(42).map(|s| s.last_sequence),
            Some(seq - 1)
        );
        let mut b = BatchBuilder::new(T0).idempotent(42, 0, seq);
        b.push(Record::new(Some(b"k".to_vec()), Some(vec![1; 40])));
        log.append(&b.build(), T0).unwrap();
    }

    #[test]
    fn a_crash_mid_swap_leaves_a_log_that_opens() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), small_segments(), false, T0).unwrap();
        for i in 0..30u8 {
            log.append(&batch(&[(i % 2, Some(i))], T0, Compression::None), T0)
                .unwrap();
        }
        let before = contents(&log);
        log.compact(T0, &CompactionConfig::default()).unwrap();
        let after = contents(&log);
        log.close().unwrap();
        // A cleaned file never swapped in, and a segment whose index files were removed
        // before its rename: the leftover goes, the indexes are rebuilt.
        fs::write(cleaned_path(dir.path(), 0), b"partial").unwrap();
        fs::remove_file(dir.path().join(format!("{}{INDEX_SUFFIX}", file_stem(0)))).unwrap();
        fs::remove_file(
            dir.path()
                .join(format!("{}{TIME_INDEX_SUFFIX}", file_stem(0))),
        )
        .unwrap();
        for clean in [true, false] {
            let log = Log::open(dir.path(), small_segments(), clean, T0).unwrap();
            assert_eq!(contents(&log), after);
            check_compacted(&before, &contents(&log), false);
            log.close().unwrap();
        }
        assert!(!cleaned_path(dir.path(), 0).exists());
    }

    /// A crash after a merged group's file was renamed into place but before the group's
    /// other segments were removed: open removes them (the merged file covers them), and
    /// the log reads as compacted.
    #[test]
    fn a_crash_mid_merge_leaves_a_log_that_opens() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), small_segments(), false, T0).unwrap();
        for i in 0..40u8 {
            log.append(&batch(&[(i % 3, Some(i))], T0, Compression::None), T0)
                .unwrap();
        }
        log.compact(T0, &CompactionConfig::default()).unwrap();
        log.close().unwrap();
        let before_merge = tempfile::tempdir().unwrap();
        let files: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        for f in &files {
            fs::copy(f, before_merge.path().join(f.file_name().unwrap())).unwrap();
        }
        let log = Log::open(dir.path(), small_segments(), true, T0).unwrap();
        let segments = log.segment_count();
        let out = log.compact(T0, &CompactionConfig::default()).unwrap();
        assert!(out.segments_merged > 0, "{out:?}");
        let merged = contents(&log);
        log.close().unwrap();
        // Put back the files of the segments merged away.
        let mut restored = 0;
        for e in fs::read_dir(before_merge.path()).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_owned();
            if !dir.path().join(&name).exists() && p.extension().is_some_and(|x| x == "log") {
                fs::copy(&p, dir.path().join(&name)).unwrap();
                restored += 1;
            }
        }
        assert_eq!(restored, out.segments_merged);
        for clean in [true, false] {
            let log = Log::open(dir.path(), small_segments(), clean, T0).unwrap();
            assert_eq!(contents(&log), merged, "clean {clean}");
            assert_eq!(log.segment_count(), segments - out.segments_merged);
            log.close().unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
        /// Whatever the history of keys, values, tombstones and batch boundaries: compaction
        /// only removes records, never changes one, keeps the latest of every key (and the
        /// expired tombstones only go when asked), and the result reads the same after a
        /// reopen.
        #[test]
        fn compaction_keeps_the_latest_of_every_key(
            batches in proptest::collection::vec(
                proptest::collection::vec((0u8..8, proptest::option::weighted(0.85, any::<u8>())), 1..6),
                1..60,
            ),
            expire in any::<bool>(),
            codec in prop_oneof![Just(Compression::None), Just(Compression::Lz4)],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let log = Log::open(dir.path(), small_segments(), false, T0).unwrap();
            for b in &batches {
                log.append(&batch(b, T0, codec), T0).unwrap();
            }
            let before = contents(&log);
            let now = if expire { T0 + 2 * DAY } else { T0 };
            log.compact(now, &CompactionConfig::default()).unwrap();
            let after = contents(&log);
            check_compacted(&before, &after, expire);
            // Every offset of the log reads the batch holding it or the next one.
            for o in log.log_start_offset()..log.log_end_offset() {
                let r = log.read(o, 1).unwrap();
                let h = BatchHeader::parse(&r.data).unwrap();
                prop_assert!(h.last_offset() >= o);
                prop_assert!(after.range(o..=h.last_offset()).next().is_some() || h.record_count > 0);
            }
            // A second pass merges the shrunk segments and may remove more.
            let segments = log.segment_count();
            let again = log.compact(now, &CompactionConfig::default()).unwrap();
            let after = contents(&log);
            check_compacted(&before, &after, expire);
            prop_assert_eq!(log.segment_count(), segments - again.segments_merged);
            log.close().unwrap();
            let log = Log::open(dir.path(), small_segments(), false, T0).unwrap();
            prop_assert_eq!(contents(&log), after);
        }
    }
}
