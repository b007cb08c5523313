//! One segment: a `.log` file of batches plus its offset and time indexes.
//!
//! Concurrency: only the log's writer (holding the log's writer mutex) appends, truncates or
//! persists indexes. Readers use positional reads on the shared `File` and never read past
//! `size`, which the writer publishes (`Release`) only after the bytes are written.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::batch::{
    validate_batch, validate_stored_batch, BatchError, BatchErrorKind, BatchHeader, CountRule,
    HEADER_SIZE, LOG_OVERHEAD, MIN_BATCH_LENGTH, NO_TIMESTAMP,
};
use crate::index::{OffsetIndex, TimeIndex, OFFSET_ENTRY_SIZE, TIME_ENTRY_SIZE};

/// Suffix of segment data files.
pub const LOG_SUFFIX: &str = ".log";
/// Suffix of offset index files.
pub const INDEX_SUFFIX: &str = ".index";
/// Suffix of time index files.
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Suffix added to files of deleted segments before they are removed.
pub const DELETED_SUFFIX: &str = ".deleted";
/// Suffix of the empty marker file of a segment rewritten by compaction. Only such a segment
/// may hold gaps in its offsets and batches with fewer records than offsets; recovery holds
/// every other segment to dense offsets, so a flipped `baseOffset` (outside the CRC) is
/// still caught there.
pub const COMPACTED_SUFFIX: &str = ".compacted";

/// Bytes read at a time when scanning a whole segment (recovery, replay).
const SCAN_CHUNK: usize = 64 * 1024;
/// Bytes read at a time when looking for one batch from an index entry (reads are short:
/// entries are `index.interval.bytes` apart, 4 KiB by default).
const SEEK_CHUNK: usize = 4 * 1024;

/// File name stem of a segment: its base offset as 20 zero-padded digits.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// Per-batch facts the segment needs to maintain its indexes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchMeta {
    /// Position of the batch within the appended buffer.
    pub buf_pos: usize,
    /// Batch size in bytes.
    pub size: usize,
    /// Offset of its last record.
    pub last_offset: i64,
    /// Its maxTimestamp.
    pub max_timestamp: i64,
}

/// Mutable metadata, guarded by the segment's lock (held only briefly).
#[derive(Debug)]
pub(crate) struct SegState {
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// The index files on disk are stale and must be rewritten from scratch.
    pub rewrite_index: bool,
    /// Bytes appended since the last offset index entry.
    pub bytes_since_index: u64,
    /// Largest batch maxTimestamp in the segment (`NO_TIMESTAMP` if none).
    pub max_timestamp: i64,
    /// Last offset of the first batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// When the first batch was appended (for `segment.ms`); `None` while empty.
    pub rolling_base_ms: Option<i64>,
}

impl SegState {
    fn new() -> SegState {
        SegState {
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            rewrite_index: true,
            bytes_since_index: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            rolling_base_ms: None,
        }
    }
}

/// Failure while scanning a segment file.
#[derive(Debug)]
pub(crate) enum ScanError {
    Io(io::Error),
    Bad(BatchError),
    /// A batch whose offsets do not follow its predecessor's (they may skip, never go back).
    Offsets {
        position: u64,
        expected: i64,
        found: i64,
    },
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Io(e) => write!(f, "I/O error: {e}"),
            ScanError::Bad(e) => write!(f, "{e}"),
            ScanError::Offsets {
                position,
                expected,
                found,
            } => write!(
                f,
                "batch at position {position} has base offset {found}, expected at least {expected}"
            ),
        }
    }
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Io(e)
    }
}

/// Outcome of a full recovery of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Bytes of valid batches kept.
    pub valid_bytes: u64,
    /// Bytes cut off the end.
    pub truncated_bytes: u64,
}

/// One segment of the log.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    index_path: PathBuf,
    time_index_path: PathBuf,
    compacted_path: PathBuf,
    /// Rewritten by compaction (its marker file exists): gaps and short batches allowed.
    compacted: bool,
    file: File,
    /// Bytes of complete batches (published after each write).
    size: AtomicU64,
    /// Offset after the last batch (== base_offset while empty).
    next_offset: AtomicI64,
    pub state: RwLock<SegState>,
    persist_lock: Mutex<()>,
    /// Index files were written since they were last fsync'ed.
    index_unsynced: AtomicBool,
}

impl Segment {
    fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
        let stem = file_stem(base_offset);
        (
            dir.join(format!("{stem}{LOG_SUFFIX}")),
            dir.join(format!("{stem}{INDEX_SUFFIX}")),
            dir.join(format!("{stem}{TIME_INDEX_SUFFIX}")),
        )
    }

    /// Path of the compaction marker of the segment at `base_offset`.
    pub fn compacted_path(dir: &Path, base_offset: i64) -> PathBuf {
        dir.join(format!("{}{COMPACTED_SUFFIX}", file_stem(base_offset)))
    }

    /// Whether compaction rewrote this segment.
    pub fn is_compacted(&self) -> bool {
        self.compacted
    }

    /// Creates a new empty segment (truncating any leftover file of the same name).
    pub fn create(dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let (log_path, index_path, time_index_path) = Segment::paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)?;
        for p in [&index_path, &time_index_path] {
            File::create(p)?;
        }
        let compacted_path = Segment::compacted_path(dir, base_offset);
        match fs::remove_file(&compacted_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut state = SegState::new();
        state.rewrite_index = false;
        Ok(Segment {
            base_offset,
            log_path,
            index_path,
            time_index_path,
            compacted_path,
            compacted: false,
            file,
            size: AtomicU64::new(0),
            next_offset: AtomicI64::new(base_offset),
            state: RwLock::new(state),
            persist_lock: Mutex::new(()),
            index_unsynced: AtomicBool::new(false),
        })
    }

    /// Opens an existing segment file. Its size is the file's length until recovery or
    /// [`Segment::load_trusted`] establishes the real end.
    pub fn open(dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let (log_path, index_path, time_index_path) = Segment::paths(dir, base_offset);
        let file = OpenOptions::new().read(true).write(true).open(&log_path)?;
        let len = file.metadata()?.len();
        let compacted_path = Segment::compacted_path(dir, base_offset);
        let compacted = compacted_path.exists();
        Ok(Segment {
            base_offset,
            log_path,
            index_path,
            time_index_path,
            compacted_path,
            compacted,
            file,
            size: AtomicU64::new(len),
            next_offset: AtomicI64::new(base_offset),
            state: RwLock::new(SegState::new()),
            persist_lock: Mutex::new(()),
            index_unsynced: AtomicBool::new(false),
        })
    }

    /// True if index files were written but not fsync'ed since.
    pub fn index_unsynced(&self) -> bool {
        self.index_unsynced.load(Ordering::Acquire)
    }

    /// Bytes of complete batches.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Offset after the last batch.
    pub fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// True if the segment holds no batch.
    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// Path of the data file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Offset relative to the base, clamped into `u32`.
    fn rel(&self, offset: i64) -> u32 {
        u32::try_from(offset.saturating_sub(self.base_offset).max(0)).unwrap_or(u32::MAX)
    }

    /// Updates indexes and max timestamp for a batch at `pos` (Kafka's per-batch bookkeeping).
    fn index_batch(&self, st: &mut SegState, pos: u64, m: &BatchMeta, interval: u32) {
        if m.max_timestamp > st.max_timestamp {
            st.max_timestamp = m.max_timestamp;
            st.offset_of_max_timestamp = m.last_offset;
        }
        if st.bytes_since_index > u64::from(interval) {
            if let Ok(p) = u32::try_from(pos) {
                st.offset_index.push(self.rel(m.last_offset), p);
                let rel_max = self.rel(st.offset_of_max_timestamp);
                st.time_index.maybe_push(st.max_timestamp, rel_max);
            }
            st.bytes_since_index = 0;
        }
        st.bytes_since_index += m.size as u64;
    }

    /// Appends `buf` (complete batches, offsets assigned) with one positional write, then
    /// updates the indexes and publishes the new size and next offset.
    pub fn append(
        &self,
        buf: &[u8],
        metas: &[BatchMeta],
        index_interval: u32,
        now_ms: i64,
    ) -> io::Result<()> {
        let pos = self.size.load(Ordering::Relaxed);
        self.file.write_all_at(buf, pos)?;
        let mut st = self.state.write();
        if st.rolling_base_ms.is_none() {
            st.rolling_base_ms = Some(now_ms);
        }
        let mut last = None;
        for m in metas {
            self.index_batch(&mut st, pos + m.buf_pos as u64, m, index_interval);
            last = Some(m.last_offset);
        }
        drop(st);
        self.size.store(pos + buf.len() as u64, Ordering::Release);
        if let Some(last) = last {
            self.next_offset.store(last + 1, Ordering::Release);
        }
        Ok(())
    }

    /// Adds the final time index entry (Kafka does this when a segment stops being active).
    pub fn seal_time_index(&self) {
        let mut st = self.state.write();
        let (ts, off) = (st.max_timestamp, st.offset_of_max_timestamp);
        if off >= self.base_offset {
            let rel = self.rel(off);
            st.time_index.maybe_push(ts, rel);
        }
    }

    /// Writes index entries not yet in the index files (rewriting the files if they are stale).
    pub fn persist_indexes(&self) -> io::Result<()> {
        let _guard = self.persist_lock.lock();
        let (rewrite, o_from, obytes, ocount, t_from, tbytes, tcount) = {
            let st = self.state.read();
            let rewrite = st.rewrite_index;
            let o_from = if rewrite {
                0
            } else {
                st.offset_index.persisted
            };
            let t_from = if rewrite { 0 } else { st.time_index.persisted };
            (
                rewrite,
                o_from,
                st.offset_index.encode(o_from),
                st.offset_index.entries.len(),
                t_from,
                st.time_index.encode(t_from),
                st.time_index.entries.len(),
            )
        };
        self.index_unsynced.store(true, Ordering::Release);
        write_tail(
            &self.index_path,
            (o_from * OFFSET_ENTRY_SIZE) as u64,
            &obytes,
        )?;
        write_tail(
            &self.time_index_path,
            (t_from * TIME_ENTRY_SIZE) as u64,
            &tbytes,
        )?;
        let mut st = self.state.write();
        st.offset_index.persisted = ocount;
        st.time_index.persisted = tcount;
        if rewrite {
            st.rewrite_index = false;
        }
        Ok(())
    }

    /// Fsyncs the data file, and with `with_indexes` the index files too.
    pub fn sync(&self, with_indexes: bool) -> io::Result<()> {
        self.file.sync_data()?;
        if with_indexes && self.index_unsynced.swap(false, Ordering::AcqRel) {
            for p in [&self.index_path, &self.time_index_path] {
                match File::open(p) {
                    Ok(f) => f.sync_all().inspect_err(|_| {
                        self.index_unsynced.store(true, Ordering::Release);
                    })?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        self.index_unsynced.store(true, Ordering::Release);
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Largest timestamp for retention: the largest batch maxTimestamp, or the file's
    /// modification time if no batch has a timestamp (as Kafka does).
    pub fn largest_timestamp(&self) -> i64 {
        let ts = self.state.read().max_timestamp;
        if ts >= 0 {
            return ts;
        }
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// Largest timestamp and the last offset of the batch carrying it, if any batch.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let st = self.state.read();
        (st.offset_of_max_timestamp >= self.base_offset)
            .then_some((st.max_timestamp, st.offset_of_max_timestamp))
    }

    /// Renames the segment's files with the `.deleted` suffix (step one of a crash-safe delete).
    pub fn rename_for_delete(&self) -> io::Result<()> {
        for p in self.all_paths() {
            match fs::rename(p, deleted_path(p)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Removes the renamed files (step two).
    pub fn remove_deleted(&self) -> io::Result<()> {
        for p in self.all_paths() {
            match fs::remove_file(deleted_path(p)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Every file of the segment: data, indexes, compaction marker.
    fn all_paths(&self) -> [&PathBuf; 4] {
        [
            &self.log_path,
            &self.index_path,
            &self.time_index_path,
            &self.compacted_path,
        ]
    }

    /// The count rule batches of this segment follow.
    fn count_rule(&self) -> CountRule {
        if self.compacted {
            CountRule::AtMostRange
        } else {
            CountRule::Exact
        }
    }

    fn scanner(&self, end: u64) -> Scanner<'_> {
        Scanner::new(&self.file, end)
    }

    fn seeker(&self, end: u64) -> Scanner<'_> {
        let mut sc = Scanner::new(&self.file, end);
        sc.chunk = SEEK_CHUNK;
        sc
    }

    /// Finds the batch containing `offset` (its position and header), scanning forward from
    /// the offset index. `None` if the segment has no such batch.
    pub fn locate(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, ScanError> {
        let end = self.size();
        let start = self.index_position(offset);
        let mut sc = self.seeker(end);
        let mut pos = start;
        while let Some(h) = sc.header(pos)? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }

    /// Position of the last indexed batch whose last offset is `<= offset` (0 if none).
    fn index_position(&self, offset: i64) -> u64 {
        if offset < self.base_offset {
            return 0;
        }
        let rel = self.rel(offset);
        self.state
            .read()
            .offset_index
            .lookup(rel)
            .map_or(0, |(_, p)| u64::from(p))
    }

    /// First batch whose maxTimestamp is `>= ts` and whose last offset is `>= min_offset`.
    pub fn find_by_timestamp(
        &self,
        ts: i64,
        min_offset: i64,
    ) -> Result<Option<(u64, BatchHeader)>, ScanError> {
        let start_offset = {
            let st = self.state.read();
            st.time_index
                .lookup(ts)
                .map_or(self.base_offset, |(_, rel)| {
                    self.base_offset + i64::from(rel)
                })
        };
        let start = self.index_position(start_offset.max(min_offset));
        let mut sc = self.seeker(self.size());
        let mut pos = start;
        while let Some(h) = sc.header(pos)? {
            if h.max_timestamp >= ts && h.last_offset() >= min_offset {
                return Ok(Some((pos, h)));
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }

    /// Calls `f` with the header of every batch whose last offset is `>= from_offset`.
    pub fn for_each_header(
        &self,
        from_offset: i64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<(), ScanError> {
        let mut sc = self.scanner(self.size());
        let mut pos = self.index_position(from_offset);
        while let Some(h) = sc.header(pos)? {
            if h.last_offset() >= from_offset {
                f(&h);
            }
            pos += h.size() as u64;
        }
        Ok(())
    }

    /// Position and header of every batch, in order (headers framed, not CRC-checked).
    pub fn batch_headers(&self) -> Result<Vec<(u64, BatchHeader)>, ScanError> {
        let mut sc = self.scanner(self.size());
        let mut pos = 0u64;
        let mut out = Vec::new();
        while let Some(h) = sc.header(pos)? {
            out.push((pos, h));
            pos += h.size() as u64;
        }
        Ok(out)
    }

    /// Reads whole batches starting at `pos` (where a batch of `first_size` bytes begins):
    /// up to `max_bytes`, but at least that first batch, never past the published size and
    /// never a batch starting at or after `end_offset`. One positional read into a fresh buffer.
    pub fn read_batches(
        &self,
        pos: u64,
        first_size: usize,
        max_bytes: usize,
        end_offset: i64,
    ) -> io::Result<Bytes> {
        let end = self.size();
        let avail = usize::try_from(end.saturating_sub(pos)).unwrap_or(usize::MAX);
        let want = max_bytes.max(first_size).min(avail);
        let mut buf = vec![0u8; want];
        self.file.read_exact_at(&mut buf, pos)?;
        let mut p = 0usize;
        while let Some(head) = buf.get(p..p + LOG_OVERHEAD) {
            let base = i64::from_be_bytes([
                head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7],
            ]);
            let len = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
            if base >= end_offset {
                break;
            }
            if len < MIN_BATCH_LENGTH {
                break;
            }
            let size = len as usize + LOG_OVERHEAD;
            if p + size > buf.len() {
                break;
            }
            p += size;
        }
        debug_assert!(
            p >= first_size.min(avail),
            "the first batch is always returned whole"
        );
        buf.truncate(p);
        Ok(Bytes::from(buf))
    }

    /// Reads the batch at `pos` of `size` bytes.
    pub fn read_batch(&self, pos: u64, size: usize) -> io::Result<Bytes> {
        let mut buf = vec![0u8; size];
        self.file.read_exact_at(&mut buf, pos)?;
        Ok(Bytes::from(buf))
    }

    /// Trusting load (after a clean shutdown): parse the index files, then scan only the
    /// batch headers after the last index entry to find the end of the segment. Fails if the
    /// index files are missing or inconsistent, or the tail does not frame exactly to the end
    /// of the file; the caller then recovers the segment instead.
    pub fn load_trusted(&self) -> Result<(), String> {
        let file_len = self.file.metadata().map_err(|e| e.to_string())?.len();
        let read = |p: &Path| fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let oidx = OffsetIndex::parse(&read(&self.index_path)?, file_len)
            .ok_or("inconsistent offset index")?;
        let tidx = TimeIndex::parse(&read(&self.time_index_path)?, u32::MAX)
            .ok_or("inconsistent time index")?;
        // What the next batch must look like: the first batch of the scan must end at the
        // last index entry's offset (or start at or after the base offset); later ones follow
        // on, possibly after a gap where compaction removed whole batches.
        enum Expect {
            Base(i64),
            LastIs(i64),
        }
        let (start_pos, mut expect) = match oidx.entries.last() {
            Some(&(rel, pos)) => (
                u64::from(pos),
                Expect::LastIs(self.base_offset + i64::from(rel)),
            ),
            None => (0, Expect::Base(self.base_offset)),
        };
        let mut st = SegState::new();
        if let Some((ts, rel)) = tidx.last() {
            st.max_timestamp = ts;
            st.offset_of_max_timestamp = self.base_offset + i64::from(rel);
        }
        let mut sc = Scanner::new(&self.file, file_len);
        let mut pos = start_pos;
        let mut bytes_since = 0u64;
        loop {
            let h = match sc.header(pos) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            };
            match expect {
                Expect::LastIs(last) if h.last_offset() != last => {
                    return Err(format!("index entry does not match the batch at {pos}"));
                }
                Expect::Base(base)
                    if h.base_offset < base || (!self.compacted && h.base_offset != base) =>
                {
                    return Err(format!(
                        "batch at {pos} has offset {}, expected at least {base}",
                        h.base_offset
                    ));
                }
                _ => {}
            }
            if h.max_timestamp > st.max_timestamp {
                st.max_timestamp = h.max_timestamp;
                st.offset_of_max_timestamp = h.last_offset();
            }
            expect = Expect::Base(h.next_offset());
            bytes_since += h.size() as u64;
            pos += h.size() as u64;
        }
        if pos != file_len {
            return Err(format!("tail does not frame: ended at {pos} of {file_len}"));
        }
        let next = match expect {
            Expect::Base(next) => next,
            Expect::LastIs(_) => return Err("index points past the last batch".into()),
        };
        if tidx
            .last()
            .is_some_and(|(_, rel)| self.base_offset + i64::from(rel) >= next)
        {
            return Err("time index points past the last batch".into());
        }
        st.offset_index = oidx;
        st.time_index = tidx;
        st.rewrite_index = false;
        st.bytes_since_index = if st.offset_index.entries.is_empty() {
            file_len
        } else {
            bytes_since
        };
        *self.state.write() = st;
        self.size.store(file_len, Ordering::Release);
        self.next_offset.store(next, Ordering::Release);
        Ok(())
    }

    /// Full recovery: validates every batch (framing, CRC-32C, counts, offsets increasing from
    /// the base offset), truncates the file at the first bad one, rebuilds both indexes.
    pub fn recover(&self, interval: u32) -> Result<Recovered, io::Error> {
        let file_len = self.file.metadata()?.len();
        let mut st = SegState::new();
        let mut sc = Scanner::new(&self.file, file_len);
        let mut pos = 0u64;
        let mut expected = self.base_offset;
        let failure = loop {
            match sc.validated(pos, self.count_rule()) {
                Ok(None) => break None,
                Ok(Some(h)) => {
                    // Offsets are dense, except in a compacted segment, which has gaps
                    // where whole batches were removed.
                    if h.base_offset < expected || (!self.compacted && h.base_offset != expected) {
                        break Some(ScanError::Offsets {
                            position: pos,
                            expected,
                            found: h.base_offset,
                        });
                    }
                    if h.last_offset() - self.base_offset > i64::from(u32::MAX) {
                        break Some(ScanError::Offsets {
                            position: pos,
                            expected,
                            found: h.base_offset,
                        });
                    }
                    let m = BatchMeta {
                        buf_pos: 0,
                        size: h.size(),
                        last_offset: h.last_offset(),
                        max_timestamp: h.max_timestamp,
                    };
                    self.index_batch(&mut st, pos, &m, interval);
                    expected = h.next_offset();
                    pos += h.size() as u64;
                }
                Err(ScanError::Io(e)) => return Err(e),
                Err(e) => break Some(e),
            }
        };
        let truncated = file_len - pos;
        if let Some(reason) = failure {
            tracing::warn!(
                segment = %self.log_path.display(),
                position = pos,
                truncated_bytes = truncated,
                reason = %reason,
                "truncating segment at first invalid batch"
            );
        }
        if truncated > 0 {
            self.file.set_len(pos)?;
        }
        st.rewrite_index = true;
        *self.state.write() = st;
        self.size.store(pos, Ordering::Release);
        self.next_offset.store(expected, Ordering::Release);
        Ok(Recovered {
            valid_bytes: pos,
            truncated_bytes: truncated,
        })
    }

    /// maxTimestamp of the first batch (Kafka's base for `segment.ms` after a restart).
    pub fn first_batch_timestamp(&self) -> Option<i64> {
        let mut sc = self.scanner(self.size());
        match sc.header(0) {
            Ok(Some(h)) => Some(h.max_timestamp),
            _ => None,
        }
    }

    /// Sets when the active segment started (for `segment.ms`).
    pub fn set_rolling_base(&self, ms: Option<i64>) {
        self.state.write().rolling_base_ms = ms;
    }
}

/// Replaces the file's contents from byte `at` on with `bytes`.
fn write_tail(path: &Path, at: u64, bytes: &[u8]) -> io::Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    f.set_len(at)?;
    f.write_all_at(bytes, at)
}

fn deleted_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(DELETED_SUFFIX);
    PathBuf::from(s)
}

/// Buffered positional reader over `[0, end)` of a segment file.
struct Scanner<'a> {
    file: &'a File,
    end: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> Scanner<'a> {
    fn new(file: &'a File, end: u64) -> Scanner<'a> {
        Scanner {
            file,
            end,
            chunk: SCAN_CHUNK,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// The bytes `[pos, pos + need)`, or `None` if they extend past `end`.
    fn bytes(&mut self, pos: u64, need: usize) -> io::Result<Option<&[u8]>> {
        let stop = match pos.checked_add(need as u64) {
            Some(s) if s <= self.end => s,
            _ => return Ok(None),
        };
        let buf_end = self.buf_start + self.buf.len() as u64;
        if pos < self.buf_start || stop > buf_end {
            let len =
                usize::try_from((self.end - pos).min(need.max(self.chunk) as u64)).unwrap_or(need);
            self.buf.resize(len, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_start = pos;
        }
        let from = (pos - self.buf_start) as usize;
        Ok(self.buf.get(from..from + need))
    }

    /// Header of the batch at `pos` with its framing checked (magic, length within the file),
    /// without reading the records. `None` at the end.
    fn header(&mut self, pos: u64) -> Result<Option<BatchHeader>, ScanError> {
        if pos >= self.end {
            return Ok(None);
        }
        let available = usize::try_from(self.end - pos).unwrap_or(usize::MAX);
        let bad = |kind| {
            ScanError::Bad(BatchError {
                position: pos,
                kind,
            })
        };
        let Some(hb) = self.bytes(pos, HEADER_SIZE.min(available))? else {
            return Err(bad(BatchErrorKind::Truncated {
                needed: HEADER_SIZE,
                available,
            }));
        };
        if hb.len() < LOG_OVERHEAD {
            return Err(bad(BatchErrorKind::Truncated {
                needed: LOG_OVERHEAD,
                available,
            }));
        }
        let len = i32::from_be_bytes([hb[8], hb[9], hb[10], hb[11]]);
        if len < MIN_BATCH_LENGTH {
            return Err(bad(BatchErrorKind::BadLength {
                length: len,
                min: MIN_BATCH_LENGTH,
                max: i64::from(i32::MAX),
            }));
        }
        let h = BatchHeader::parse(hb).map_err(bad)?;
        if h.size() > available {
            return Err(bad(BatchErrorKind::Truncated {
                needed: h.size(),
                available,
            }));
        }
        Ok(Some(h))
    }

    /// Fully validated batch at `pos` (CRC computed in chunks, so a garbage length cannot
    /// make us buffer a whole file). `None` at the end.
    fn validated(&mut self, pos: u64, rule: CountRule) -> Result<Option<BatchHeader>, ScanError> {
        let Some(h) = self.header(pos)? else {
            return Ok(None);
        };
        let size = h.size();
        if size <= SCAN_CHUNK {
            let bytes = self
                .bytes(pos, size)?
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            let validate = match rule {
                CountRule::Exact => validate_batch,
                CountRule::AtMostRange => validate_stored_batch,
            };
            return validate(bytes, usize::MAX).map(Some).map_err(|kind| {
                ScanError::Bad(BatchError {
                    position: pos,
                    kind,
                })
            });
        }
        let mut crc = 0u32;
        let mut p = pos + crate::batch::ATTRIBUTES_OFFSET as u64;
        let stop = pos + size as u64;
        while p < stop {
            let n = usize::try_from((stop - p).min(SCAN_CHUNK as u64)).unwrap_or(SCAN_CHUNK);
            let chunk = self
                .bytes(p, n)?
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            crc = crc32c::crc32c_append(crc, chunk);
            p += n as u64;
        }
        let bad = |kind| {
            ScanError::Bad(BatchError {
                position: pos,
                kind,
            })
        };
        if crc != h.crc {
            return Err(bad(BatchErrorKind::BadCrc {
                stored: h.crc,
                computed: crc,
            }));
        }
        rule.check(&h).map_err(bad)?;
        Ok(Some(h))
    }
}
