//! The log of one topic-partition: a directory of segments, checkpoints and producer state.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::batch::{
    compute_crc, put_i16, put_i32, put_i64, BatchHeader, BatchIter, Compression, ATTRIBUTES_OFFSET,
    ATTR_TIMESTAMP_TYPE, BASE_OFFSET_OFFSET, BASE_TIMESTAMP_OFFSET, CRC_OFFSET,
    MAX_TIMESTAMP_OFFSET, NO_TIMESTAMP, PARTITION_LEADER_EPOCH_OFFSET,
};
use crate::checkpoint::{
    read_offset, sync_dir, write_offset, CLEANER_OFFSET_FILE, LOG_START_OFFSET_FILE,
    RECOVERY_POINT_FILE, TMP_SUFFIX,
};
use crate::config::{FlushPolicy, LogConfig, TimestampType};
use crate::error::{IoContext, LogError};
use crate::producer::{self, ProducerEntry, ProducerSnapshot, ProducerStates, Verdict};
use crate::segment::{
    BatchMeta, ScanError, Segment, COMPACTED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
};

/// How many producer state snapshots are kept (newest first).
const SNAPSHOTS_KEPT: usize = 3;

/// Result of a successful [`Log::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended (of the original append for a duplicate).
    pub base_offset: i64,
    /// Offset of the last record appended (of the original append for a duplicate).
    pub last_offset: i64,
    /// Records appended (`last_offset - base_offset + 1`).
    pub record_count: u64,
    /// The append time stamped into the batches on a `LogAppendTime` log, else -1.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// True if this was an idempotent producer's retry of a batch already in the log:
    /// nothing was written and the offsets are the original ones.
    pub duplicate: bool,
}

/// Result of a [`Log::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, starting with the one containing the requested offset.
    pub data: Bytes,
    /// Log start offset when the read began.
    pub log_start_offset: i64,
    /// Log end offset (high watermark) when the read began; `data` holds no batch at or past it.
    pub log_end_offset: i64,
}

/// What [`Log::enforce_retention`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Bytes of batches deleted.
    pub deleted_bytes: u64,
    /// Log start offset afterwards.
    pub log_start_offset: i64,
}

/// State only the writer (appends, rolls, retention) touches.
struct Writer {
    config: LogConfig,
    producers: ProducerStates,
}

/// Unflushed data, for the flush policy.
struct Dirty {
    policy: FlushPolicy,
    since: Option<Instant>,
    bytes: u64,
    messages: u64,
}

impl Dirty {
    /// Whether the unflushed bytes or records call for an inline fsync.
    fn over_threshold(&self) -> bool {
        self.policy.every_bytes.is_some_and(|n| self.bytes >= n)
            || self
                .policy
                .every_messages
                .is_some_and(|n| self.messages >= n)
    }
}

/// The durable, segmented, indexed log of one topic-partition. See the crate docs.
pub struct Log {
    dir: PathBuf,
    writer: Mutex<Writer>,
    /// Never empty; the last segment is the active one. Replaced (copy on write) on roll and
    /// deletion so readers can work on a snapshot without holding any lock.
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    log_start: AtomicI64,
    /// Published after every append (Release); readers load it first (Acquire).
    log_end: AtomicI64,
    size: AtomicU64,
    recovery_point: AtomicI64,
    /// Serialises flushes; holds the base offset of the segment that contained the recovery
    /// point when it was last checkpointed.
    flush_lock: Mutex<i64>,
    dirty: Mutex<Dirty>,
    /// A file was created or deleted in the directory since it was last fsync'ed.
    dir_dirty: AtomicBool,
    /// Serialises compaction passes ([`Log::compact`]).
    cleaner: Mutex<()>,
    /// Offset up to which compaction passes have examined the log, checkpointed to
    /// `cleaner-offset` after each pass (Kafka's cleaner checkpoint). Only a hint for when to
    /// run the next pass: a stale value delays or repeats one, never loses a record.
    cleaned_up_to: AtomicI64,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("log_start", &self.log_start_offset())
            .field("log_end", &self.log_end_offset())
            .field("segments", &self.segment_count())
            .finish()
    }
}

/// Parses a 20-digit file name stem into an offset.
pub(crate) fn parse_stem(stem: &str) -> Option<i64> {
    if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
        stem.parse().ok()
    } else {
        None
    }
}

fn scan_err(dir: &Path, e: ScanError) -> LogError {
    match e {
        ScanError::Io(e) => LogError::io(dir, e),
        other => LogError::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        ),
    }
}

fn remove_segment_files(seg: &Segment) -> std::io::Result<()> {
    seg.rename_for_delete()?;
    seg.remove_deleted()
}

impl Log {
    /// Opens (or creates) the log in `dir`.
    ///
    /// With `clean_shutdown` the files are trusted (index files are still sanity-checked and
    /// rebuilt if inconsistent, and the tail of each segment after its last index entry is
    /// framed). Without it, every segment from the one holding the recovery point on is fully
    /// validated and truncated at the first torn or corrupt batch, later segments are dropped,
    /// indexes rebuilt, and the result fsync'ed. Producer state is rebuilt either way.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<Log, LogError> {
        fs::create_dir_all(dir).at(dir)?;
        let interval = config.index_interval_bytes;
        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        let mut dir_dirty = false;
        for entry in fs::read_dir(dir).at(dir)? {
            let entry = entry.at(dir)?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.ends_with(DELETED_SUFFIX) || name.ends_with(TMP_SUFFIX) {
                tracing::info!(path = %path.display(), "removing leftover file");
                fs::remove_file(&path).at(&path)?;
                dir_dirty = true;
            } else if let Some(base) = name.strip_suffix(LOG_SUFFIX).and_then(parse_stem) {
                bases.push(base);
            } else if let Some(base) = name
                .strip_suffix(INDEX_SUFFIX)
                .or_else(|| name.strip_suffix(TIME_INDEX_SUFFIX))
                .or_else(|| name.strip_suffix(COMPACTED_SUFFIX))
                .and_then(parse_stem)
            {
                index_files.push((base, path));
            }
        }
        bases.sort_unstable();
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err() {
                tracing::info!(path = %path.display(), "removing index or marker without segment");
                fs::remove_file(&path).at(&path)?;
                dir_dirty = true;
            }
        }
        let start_ckpt = read_offset(dir, LOG_START_OFFSET_FILE);

        let mut segs: Vec<Arc<Segment>> = Vec::new();
        let mut recovered: Vec<usize> = Vec::new();
        if bases.is_empty() {
            let base = start_ckpt.unwrap_or(0);
            let seg = Segment::create(dir, base).at(dir)?;
            segs.push(Arc::new(seg));
            dir_dirty = true;
        } else {
            // First segment that needs full validation.
            let recover_from = if clean_shutdown {
                bases.len()
            } else {
                match read_offset(dir, RECOVERY_POINT_FILE) {
                    Some(rp) => bases
                        .partition_point(|b| *b <= rp)
                        .saturating_sub(1)
                        .min(bases.len() - 1),
                    None => 0,
                }
            };
            let mut drop_rest_from = None;
            for (i, &base) in bases.iter().enumerate() {
                let seg = Segment::open(dir, base).at(dir)?;
                let prev_next = segs.last().map(|p| p.next_offset());
                if prev_next.is_some_and(|next| base > next) {
                    tracing::warn!(
                        segment = %seg.log_path().display(),
                        expected = prev_next,
                        "segment does not continue the previous one; dropping it and later segments"
                    );
                    drop_rest_from = Some(i);
                    break;
                }
                let mut needs_recovery = i >= recover_from;
                if !needs_recovery {
                    if let Err(reason) = seg.load_trusted() {
                        tracing::warn!(segment = %seg.log_path().display(), %reason, "rebuilding segment");
                        needs_recovery = true;
                    }
                }
                let mut truncated = false;
                if needs_recovery {
                    let r = seg.recover(interval).at(seg.log_path())?;
                    truncated = r.truncated_bytes > 0;
                }
                if let Some(next) = prev_next.filter(|&next| base < next) {
                    // Starts inside the previous segment: if that one was rewritten by
                    // compaction, a segment merged into it, left by a crash before its files
                    // were removed. The previous file holds everything of it compaction keeps.
                    let after_compacted = segs.last().is_some_and(|p| p.is_compacted());
                    if after_compacted && seg.next_offset() <= next {
                        tracing::info!(segment = %seg.log_path().display(), "removing segment merged by compaction");
                        remove_segment_files(&seg).at(seg.log_path())?;
                        dir_dirty = true;
                        continue;
                    }
                    tracing::warn!(
                        segment = %seg.log_path().display(),
                        expected = next,
                        "segment overlaps the previous one; dropping it and later segments"
                    );
                    drop_rest_from = Some(i);
                    break;
                }
                if needs_recovery {
                    recovered.push(segs.len());
                }
                segs.push(Arc::new(seg));
                if truncated && i + 1 < bases.len() {
                    tracing::warn!(
                        count = bases.len() - i - 1,
                        "dropping segments after a truncated segment"
                    );
                    drop_rest_from = Some(i + 1);
                    break;
                }
            }
            if let Some(from) = drop_rest_from {
                for &base in bases.get(from..).unwrap_or(&[]) {
                    let seg = Segment::open(dir, base).at(dir)?;
                    remove_segment_files(&seg).at(seg.log_path())?;
                }
                dir_dirty = true;
            }
        }

        let (first_base, active) = match (segs.first(), segs.last()) {
            (Some(f), Some(l)) => (f.base_offset, Arc::clone(l)),
            _ => return Err(LogError::InvalidLog(dir.to_owned(), "no segment".into())),
        };
        let log_end = active.next_offset();
        let log_start = start_ckpt.unwrap_or(first_base).clamp(first_base, log_end);
        let rolling = active
            .first_batch_timestamp()
            .map(|ts| if ts >= 0 { ts } else { now_ms });
        active.set_rolling_base(rolling);

        // Producer state: newest usable snapshot, then replay of the headers after it.
        producer::delete_snapshots(dir, |off| off > log_end);
        let (snap_off, mut producers) =
            producer::load_latest(dir, log_end).unwrap_or((first_base, ProducerStates::default()));
        let replay_from = snap_off.max(first_base);
        for seg in &segs {
            if seg.next_offset() > replay_from {
                seg.for_each_header(replay_from, |h| producers.update(h))
                    .map_err(|e| scan_err(seg.log_path(), e))?;
            }
        }

        // Make the recovered state durable and consistent on disk.
        for &i in &recovered {
            if let Some(seg) = segs.get(i) {
                seg.persist_indexes().at(seg.log_path())?;
                seg.sync(true).at(seg.log_path())?;
            }
        }
        let size = segs.iter().map(|s| s.size()).sum();
        let log = Log {
            dir: dir.to_owned(),
            writer: Mutex::new(Writer {
                producers,
                config: config.clone(),
            }),
            segments: RwLock::new(Arc::new(segs)),
            log_start: AtomicI64::new(log_start),
            log_end: AtomicI64::new(log_end),
            size: AtomicU64::new(size),
            recovery_point: AtomicI64::new(log_end),
            flush_lock: Mutex::new(active.base_offset),
            dirty: Mutex::new(Dirty {
                policy: config.flush,
                since: None,
                bytes: 0,
                messages: 0,
            }),
            dir_dirty: AtomicBool::new(false),
            cleaner: Mutex::new(()),
            cleaned_up_to: AtomicI64::new(
                read_offset(dir, CLEANER_OFFSET_FILE)
                    .unwrap_or(0)
                    .clamp(0, log_end),
            ),
        };
        if dir_dirty || !recovered.is_empty() {
            sync_dir(dir)?;
        }
        // Everything below the log end is now durable (trusted, or recovered and fsync'ed).
        if read_offset(dir, RECOVERY_POINT_FILE) != Some(log_end) {
            write_offset(dir, RECOVERY_POINT_FILE, log_end)?;
        }
        if start_ckpt != Some(log_start) {
            write_offset(dir, LOG_START_OFFSET_FILE, log_start)?;
        }
        tracing::debug!(
            dir = %dir.display(),
            log_start,
            log_end,
            segments = log.segment_count(),
            recovered = recovered.len(),
            "opened log"
        );
        Ok(log)
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        Arc::clone(&self.segments.read())
    }

    fn active(&self) -> Result<Arc<Segment>, LogError> {
        self.snapshot()
            .last()
            .cloned()
            .ok_or_else(|| LogError::InvalidLog(self.dir.clone(), "no active segment".into()))
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current configuration.
    pub fn config(&self) -> LogConfig {
        self.writer.lock().config.clone()
    }

    /// Appends one or more concatenated v2 batches (one produce request's data for this
    /// partition), all or nothing. See the crate docs for the checks and the idempotence rules.
    pub fn append(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let mut w = self.writer.lock();
        let cfg = &w.config;
        let max = cfg.max_batch_bytes;
        let log_append = cfg.timestamp_type == TimestampType::LogAppendTime;
        let epoch = cfg.leader_epoch;
        let interval = cfg.index_interval_bytes;
        let segment_bytes = cfg.effective_segment_bytes();
        let segment_ms = cfg.segment_ms;

        // 1. Validate everything before writing anything.
        let mut headers: Vec<(usize, BatchHeader)> = Vec::new();
        for item in BatchIter::new(batches) {
            let b = item.map_err(LogError::CorruptMessage)?;
            let h = b.header;
            if h.size() > max as usize {
                return Err(LogError::RecordTooLarge {
                    size: h.size(),
                    max,
                });
            }
            if let Compression::Unknown(c) = h.compression() {
                return Err(LogError::InvalidRecord(format!(
                    "unknown compression codec {c}"
                )));
            }
            if !log_append && (h.max_timestamp < NO_TIMESTAMP || h.base_timestamp < NO_TIMESTAMP) {
                return Err(LogError::InvalidTimestamp(format!(
                    "batch timestamps {}..{} are negative",
                    h.base_timestamp, h.max_timestamp
                )));
            }
            headers.push((b.position, h));
        }
        if headers.is_empty() {
            return Err(LogError::InvalidRecord("no record batch in append".into()));
        }
        if batches.len() > i32::MAX as usize {
            return Err(LogError::InvalidRecord("append larger than 2 GiB".into()));
        }

        // 2. Assign offsets tentatively and check idempotent producers against a scratch copy
        //    of their state (several batches of one producer may come in one append).
        let log_end = self.log_end.load(Ordering::Acquire);
        let log_start = self.log_start.load(Ordering::Acquire);
        let mut next = log_end;
        let mut scratch: HashMap<i64, ProducerEntry> = HashMap::new();
        for (_, h) in headers.iter_mut() {
            h.base_offset = next;
            h.partition_leader_epoch = epoch;
            if log_append {
                h.attributes |= ATTR_TIMESTAMP_TYPE;
                h.base_timestamp = now_ms;
                h.max_timestamp = now_ms;
            }
            next = h.next_offset();
            if !producer::is_idempotent(h) {
                continue;
            }
            let entry = scratch
                .get(&h.producer_id)
                .or_else(|| w.producers.producers.get(&h.producer_id));
            match producer::check(entry, h)? {
                Verdict::Duplicate(meta) if meta.first_offset < log_end => {
                    tracing::debug!(
                        producer_id = h.producer_id,
                        seq = h.base_sequence,
                        "duplicate batch"
                    );
                    return Ok(AppendInfo {
                        base_offset: meta.first_offset,
                        last_offset: meta.last_offset,
                        record_count: (meta.last_offset - meta.first_offset + 1).max(0) as u64,
                        log_append_time: -1,
                        log_start_offset: log_start,
                        duplicate: true,
                    });
                }
                Verdict::Duplicate(_) => {
                    return Err(LogError::OutOfOrderSequence {
                        producer_id: h.producer_id,
                        epoch: h.producer_epoch,
                        expected: -1,
                        found: h.base_sequence,
                    });
                }
                Verdict::Append => {
                    let mut updated = entry.cloned().unwrap_or_default();
                    updated.record(h);
                    scratch.insert(h.producer_id, updated);
                }
            }
        }

        // 3. Roll if the active segment is full, too old, or offsets would not fit.
        let mut active = self.active()?;
        let should_roll = !active.is_empty() && {
            let full = active.size() + batches.len() as u64 > segment_bytes;
            let jitter = cfg.roll_jitter_ms(self.jitter_salt(active.base_offset));
            let old = active
                .state
                .read()
                .rolling_base_ms
                .is_some_and(|t| now_ms.saturating_sub(t) >= segment_ms - jitter);
            let offsets = next - 1 - active.base_offset > i64::from(i32::MAX);
            full || old || offsets
        };
        if should_roll {
            self.roll(&w)?;
            active = self.active()?;
        }

        // 4. One copy of the request with offsets, epoch (and append time) stamped in.
        let mut buf = batches.to_vec();
        let mut metas = Vec::with_capacity(headers.len());
        for (pos, h) in &headers {
            let pos = *pos;
            put_i64(&mut buf, pos + BASE_OFFSET_OFFSET, h.base_offset);
            put_i32(&mut buf, pos + PARTITION_LEADER_EPOCH_OFFSET, epoch);
            if log_append {
                put_i16(&mut buf, pos + ATTRIBUTES_OFFSET, h.attributes);
                put_i64(&mut buf, pos + BASE_TIMESTAMP_OFFSET, now_ms);
                put_i64(&mut buf, pos + MAX_TIMESTAMP_OFFSET, now_ms);
                let crc = buf.get(pos..pos + h.size()).map_or(0, compute_crc);
                put_i32(&mut buf, pos + CRC_OFFSET, crc as i32);
            }
            metas.push(BatchMeta {
                buf_pos: pos,
                size: h.size(),
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp,
            });
        }

        // 5. Write, then publish.
        active
            .append(&buf, &metas, interval, now_ms)
            .at(active.log_path())?;
        for (_, h) in &headers {
            w.producers.update(h);
        }
        self.size.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.log_end.store(next, Ordering::Release);
        let flush_now = {
            let mut d = self.dirty.lock();
            d.since.get_or_insert_with(Instant::now);
            d.bytes += buf.len() as u64;
            d.messages += (next - log_end) as u64;
            d.over_threshold()
        };
        drop(w);
        if flush_now {
            self.flush()?;
        }
        Ok(AppendInfo {
            base_offset: log_end,
            last_offset: next - 1,
            record_count: (next - log_end) as u64,
            log_append_time: if log_append { now_ms } else { -1 },
            log_start_offset: log_start,
            duplicate: false,
        })
    }

    /// What `segment.jitter.ms` is derived from for the segment at `base`: the log's directory
    /// name (its topic-partition) and the segment, so partitions created together roll apart.
    fn jitter_salt(&self, base: i64) -> u64 {
        let name = self
            .dir
            .file_name()
            .map(|n| n.as_encoded_bytes())
            .unwrap_or_default();
        // FNV-1a over the name; the segment's base offset mixed in.
        let h = name.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        h ^ base as u64
    }

    /// Starts a new active segment at the log end (the caller holds the writer lock).
    fn roll(&self, w: &Writer) -> Result<(), LogError> {
        let segs = self.snapshot();
        let Some(old) = segs.last() else {
            return Err(LogError::InvalidLog(
                self.dir.clone(),
                "no active segment".into(),
            ));
        };
        if old.is_empty() {
            return Ok(());
        }
        old.seal_time_index();
        old.persist_indexes().at(old.log_path())?;
        let base = self.log_end.load(Ordering::Acquire);
        let seg = Arc::new(Segment::create(&self.dir, base).at(&self.dir)?);
        let mut list = Vec::with_capacity(segs.len() + 1);
        list.extend(segs.iter().cloned());
        list.push(seg);
        *self.segments.write() = Arc::new(list);
        self.dir_dirty.store(true, Ordering::Release);
        // Like Kafka, snapshot producer state at every roll so reopening replays at most one
        // segment. Not fsync'ed: a torn snapshot fails its checksum and an older one is used.
        producer::write_snapshot(&self.dir, &w.producers, base, false)?;
        self.prune_snapshots();
        tracing::debug!(dir = %self.dir.display(), base, "rolled new segment");
        Ok(())
    }

    fn prune_snapshots(&self) {
        let all = producer::list_snapshots(&self.dir);
        if all.len() > SNAPSHOTS_KEPT {
            let cutoff = all[all.len() - SNAPSHOTS_KEPT];
            producer::delete_snapshots(&self.dir, |off| off < cutoff);
        }
    }

    /// Reads whole batches starting with the one containing `offset`, up to `max_bytes` but
    /// always at least one batch if there is one (KIP-74), all from one segment.
    /// `offset == log_end` gives empty data; outside `[log_start, log_end]` is
    /// [`LogError::OffsetOutOfRange`]. Runs concurrently with appends.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        let end = self.log_end.load(Ordering::Acquire);
        let start = self.log_start.load(Ordering::Acquire);
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: start,
                log_end: end,
            });
        }
        let result = |data| ReadResult {
            data,
            log_start_offset: start,
            log_end_offset: end,
        };
        if offset == end {
            return Ok(result(Bytes::new()));
        }
        let segs = self.snapshot();
        let first = segs
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        for seg in segs.get(first..).unwrap_or(&[]) {
            match seg.locate(offset) {
                Ok(Some((pos, h))) if h.base_offset < end => {
                    let data = seg
                        .read_batches(pos, h.size(), max_bytes, end)
                        .at(seg.log_path())?;
                    return Ok(result(data));
                }
                Ok(Some(_)) => break,
                Ok(None) => continue,
                Err(e) => return Err(scan_err(seg.log_path(), e)),
            }
        }
        Ok(result(Bytes::new()))
    }

    /// First offset readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Offset the next record will get; the high watermark on a single node.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// Offset below which the log is known to be fsync'ed.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.load(Ordering::Acquire)
    }

    /// Bytes of batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// Number of segments (at least 1).
    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.snapshot().iter().map(|s| s.base_offset).collect()
    }

    /// The bytes of the first batch (at or after the log start) whose maxTimestamp is `>= ts`,
    /// found through the time index; `None` if there is none. The caller picks the exact
    /// record inside (the batch may be compressed).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<Bytes>, LogError> {
        let start = self.log_start.load(Ordering::Acquire);
        for seg in self.snapshot().iter() {
            if seg.next_offset() <= start || seg.max_timestamp().is_none_or(|(m, _)| m < ts) {
                continue;
            }
            match seg.find_by_timestamp(ts, start) {
                Ok(Some((pos, h))) => {
                    return seg.read_batch(pos, h.size()).map(Some).at(seg.log_path())
                }
                Ok(None) => continue,
                Err(e) => return Err(scan_err(seg.log_path(), e)),
            }
        }
        Ok(None)
    }

    /// Largest batch timestamp in the log and the last offset of the first batch carrying it
    /// (for ListOffsets `MAX_TIMESTAMP`); `None` for an empty log.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        for seg in self.snapshot().iter() {
            if let Some(m) = seg.max_timestamp() {
                if best.is_none_or(|b| m.0 > b.0) {
                    best = Some(m);
                }
            }
        }
        best
    }

    /// Fsyncs everything appended so far (group commit: concurrent callers share one fsync;
    /// appends continue meanwhile), then advances the recovery point.
    pub fn flush(&self) -> Result<(), LogError> {
        let mut checkpointed_base = self.flush_lock.lock();
        let end = {
            let mut d = self.dirty.lock();
            d.since = None;
            d.bytes = 0;
            d.messages = 0;
            self.log_end.load(Ordering::Acquire)
        };
        let rp = self.recovery_point.load(Ordering::Acquire);
        let segs = self.snapshot();
        if end <= rp && !segs.iter().any(|s| s.index_unsynced()) {
            return Ok(());
        }
        let last = segs.len().saturating_sub(1);
        for (i, seg) in segs.iter().enumerate() {
            let data_flushed = seg.next_offset() <= rp || (seg.base_offset >= end && i > 0);
            if data_flushed && !seg.index_unsynced() {
                continue;
            }
            let active = i == last;
            if !active {
                seg.persist_indexes().at(seg.log_path())?;
            }
            seg.sync(!active).at(seg.log_path())?;
        }
        if self.dir_dirty.swap(false, Ordering::AcqRel) {
            sync_dir(&self.dir)?;
        }
        self.recovery_point.fetch_max(end, Ordering::AcqRel);
        // Recovery starts at the segment holding the checkpointed point, so the file only
        // needs rewriting when that segment changes.
        let seg_of_end = segs
            .iter()
            .rev()
            .find(|s| s.base_offset <= end)
            .map_or(0, |s| s.base_offset);
        if seg_of_end != *checkpointed_base {
            write_offset(&self.dir, RECOVERY_POINT_FILE, end)?;
            *checkpointed_base = seg_of_end;
        }
        Ok(())
    }

    /// True when the flush policy says an fsync is due (enough unflushed bytes, or unflushed
    /// data older than the interval). The owner then calls [`Log::flush`].
    pub fn flush_needed(&self) -> bool {
        let d = self.dirty.lock();
        match d.since {
            None => false,
            Some(since) => {
                d.over_threshold()
                    || d.policy
                        .interval_ms
                        .is_some_and(|ms| since.elapsed().as_millis() >= u128::from(ms))
            }
        }
    }

    /// Replaces the configuration (topic config altered at runtime); applies to later calls.
    pub fn set_config(&self, config: LogConfig) {
        let mut w = self.writer.lock();
        self.dirty.lock().policy = config.flush;
        w.config = config;
    }

    /// Deletes whole oldest segments that are below the log start offset, older than
    /// `retention.ms` (by their newest timestamp), or beyond `retention.bytes` — in that order,
    /// as Kafka does. An entirely expired active segment is rolled first; the log always keeps
    /// a segment. Advances and checkpoints the log start offset.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        let w = self.writer.lock();
        let cfg = w.config.clone();
        let mut out = RetentionOutcome::default();
        let start = self.log_start.load(Ordering::Acquire);
        self.delete_prefix(&w, false, |s| s.next_offset() <= start, &mut out)?;
        if cfg.retention_ms >= 0 {
            let limit = now_ms.saturating_sub(cfg.retention_ms);
            self.delete_prefix(&w, true, |s| s.largest_timestamp() < limit, &mut out)?;
        }
        if cfg.retention_bytes >= 0 {
            let mut excess = i128::from(self.size_bytes()) - i128::from(cfg.retention_bytes);
            self.delete_prefix(
                &w,
                true,
                |s| {
                    let size = i128::from(s.size());
                    if excess - size >= 0 {
                        excess -= size;
                        true
                    } else {
                        false
                    }
                },
                &mut out,
            )?;
        }
        out.log_start_offset = self.log_start_offset();
        Ok(out)
    }

    /// Deletes the longest prefix of non-empty segments satisfying `pred` (evaluated in order,
    /// stopping at the first `false`). With `allow_active`, the active segment may go too:
    /// a new one is rolled first.
    fn delete_prefix(
        &self,
        w: &Writer,
        allow_active: bool,
        mut pred: impl FnMut(&Segment) -> bool,
        out: &mut RetentionOutcome,
    ) -> Result<(), LogError> {
        let segs = self.snapshot();
        let limit = if allow_active {
            segs.len()
        } else {
            segs.len().saturating_sub(1)
        };
        let mut k = 0;
        while let Some(seg) = segs.get(k) {
            if k >= limit || seg.is_empty() || !pred(seg) {
                break;
            }
            k += 1;
        }
        if k == 0 {
            return Ok(());
        }
        if k == segs.len() {
            self.roll(w)?;
        }
        self.remove_oldest(k, out)
    }

    /// Removes the `k` oldest segments (never all of them): publish the shorter list, advance
    /// and checkpoint the log start, then rename the files to `.deleted` and remove them
    /// (files left by a crash in between are cleaned up on open).
    fn remove_oldest(&self, k: usize, out: &mut RetentionOutcome) -> Result<(), LogError> {
        let segs = self.snapshot();
        if k >= segs.len() {
            return Err(LogError::InvalidLog(
                self.dir.clone(),
                "refusing to delete every segment".into(),
            ));
        }
        let (gone, keep) = segs.split_at(k);
        let new_first = keep.first().map_or(0, |s| s.base_offset);
        *self.segments.write() = Arc::new(keep.to_vec());
        let new_start = self
            .log_start
            .fetch_max(new_first, Ordering::AcqRel)
            .max(new_first);
        write_offset(&self.dir, LOG_START_OFFSET_FILE, new_start)?;
        for seg in gone {
            let bytes = seg.size();
            self.size.fetch_sub(bytes, Ordering::Relaxed);
            out.deleted_segments += 1;
            out.deleted_bytes += bytes;
            remove_segment_files(seg).at(seg.log_path())?;
            tracing::info!(segment = %seg.log_path().display(), bytes, "deleted segment");
        }
        self.dir_dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// DeleteRecords: makes `offset` the new log start (`-1` means the log end) and deletes
    /// segments wholly below it (never the active one). Returns the log start afterwards.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let w = self.writer.lock();
        let end = self.log_end.load(Ordering::Acquire);
        let start = self.log_start.load(Ordering::Acquire);
        let offset = if offset == -1 { end } else { offset };
        if offset < 0 || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: start,
                log_end: end,
            });
        }
        let new_start = offset.max(start);
        if new_start > start {
            self.log_start.store(new_start, Ordering::Release);
            write_offset(&self.dir, LOG_START_OFFSET_FILE, new_start)?;
        }
        // Also collects segments that fell wholly below the start when a roll made them
        // inactive after an earlier call.
        let mut out = RetentionOutcome::default();
        self.delete_prefix(&w, false, |s| s.next_offset() <= new_start, &mut out)?;
        Ok(self.log_start_offset())
    }

    /// Flushes, writes all index entries and checkpoints (recovery point, log start) and a
    /// producer state snapshot, so the next open with `clean_shutdown = true` is cheap.
    pub fn close(self) -> Result<(), LogError> {
        self.flush()?;
        let w = self.writer.lock();
        let segs = self.snapshot();
        if let Some(active) = segs.last() {
            active.seal_time_index();
        }
        for seg in segs.iter() {
            seg.persist_indexes().at(seg.log_path())?;
            seg.sync(true).at(seg.log_path())?;
        }
        let end = self.log_end_offset();
        producer::write_snapshot(&self.dir, &w.producers, end, true)?;
        self.prune_snapshots();
        write_offset(&self.dir, RECOVERY_POINT_FILE, end)?;
        write_offset(&self.dir, LOG_START_OFFSET_FILE, self.log_start_offset())?;
        sync_dir(&self.dir)?;
        tracing::debug!(dir = %self.dir.display(), log_end = end, "closed log");
        Ok(())
    }

    /// Removes the log's directory and everything in it.
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(&dir).at(&dir)
    }

    /// Idempotence state of a producer: epoch, last sequence, last offset, recent batches.
    pub fn producer_state(&self, producer_id: i64) -> Option<ProducerSnapshot> {
        self.writer.lock().producers.snapshot_of(producer_id)
    }
}

#[path = "compact.rs"]
mod compact;
pub use compact::{CompactionConfig, CompactionOutcome};

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
