//! # veritas-log: the storage engine
//!
//! A durable, segmented, indexed, crash-recoverable append-only log of Kafka v2 record
//! batches — one [`Log`] per topic-partition. Pure library: no async runtime, no network.
//! The broker (`veritas-broker`) appends produce requests to it and serves fetches from it.
//!
//! ## On-disk format (Kafka's, so operators recognise it)
//!
//! One directory per topic-partition, chosen by the caller (e.g. `data/bankaccount-0/`):
//!
//! | file | contents |
//! |------|----------|
//! | `{base:020}.log` | v2 record batches exactly as the producer sent them, except the 8-byte `baseOffset` (assigned by the log) and the 4-byte `partitionLeaderEpoch` (from [`LogConfig::leader_epoch`]); neither is covered by the CRC. Compressed batches are never decompressed. On a `LogAppendTime` log the attributes' timestamp-type bit, `baseTimestamp` and `maxTimestamp` are set to the append time and the CRC recomputed — the only change inside the CRC. |
//! | `{base:020}.index` | sparse offset index: entries of (relative offset `u32` BE, file position `u32` BE), one per [`LogConfig::index_interval_bytes`] of batches; the offset is the *last* offset of the batch starting at that position (as in Kafka). |
//! | `{base:020}.timeindex` | time index: entries of (timestamp `i64` BE, relative offset `u32` BE), added at the same points but only when the segment's largest timestamp grew, plus a final entry when the segment stops being active. |
//! | `{offset:020}.snapshot` | idempotent producer state as of `offset` (magic `VPS1`, CRC-32C, entries); the newest three are kept. |
//! | `recovery-point` | text checkpoint (`0\n<offset>\n`): everything below `offset` was fsync'ed. |
//! | `log-start-offset` | text checkpoint: the first readable offset. |
//! | `cleaner-offset` | text checkpoint: how far compaction passes have examined the log (when the next pass is due). |
//! | `{base:020}.compacted` | empty marker: compaction rewrote this segment, so its offsets may skip and its batches may hold fewer records than offsets. Made durable before the rewritten file is renamed into place; recovery holds every unmarked segment to dense offsets. |
//!
//! Checkpoints are written atomically (temporary file, fsync, rename, fsync of the directory).
//! Producer snapshots taken at segment rolls skip the fsyncs: a torn one fails its checksum
//! and an older snapshot (or a replay from the first segment) is used instead.
//! Deleted segments are first renamed to `*.deleted`; a compacted segment is written as
//! `*.cleaned.tmp` and renamed over the original. Leftovers of a crash (`*.deleted`, `*.tmp`,
//! index files without a segment) are removed on open.
//!
//! ## Compaction (`cleanup.policy=compact`)
//!
//! [`Log::compact`] keeps the latest record of every key in the closed segments, as Kafka's
//! log cleaner does: superseded records and expired tombstones are removed from their
//! batches, which keep their offsets (a batch left empty is dropped, leaving a gap), and
//! small consecutive segments are merged. The
//! [`records`] module reads the records inside batches and holds the codecs. See `compact.rs`
//! for what is never removed and why.
//!
//! The [`batch`] module documents the v2 batch layout and validates batches.
//!
//! ## Durability (see [`FlushPolicy`])
//!
//! - **Process crash** (`kill -9`): never loses an acknowledged append, whatever the policy —
//!   [`Log::append`] returns only after the bytes are in the OS page cache.
//! - **Power loss / kernel crash**: loses nothing acknowledged with `every_bytes: Some(0)` or
//!   `every_messages: Some(1)` (fsync before each append returns, shared by concurrent
//!   flushers); otherwise up to the unflushed window (`every_bytes` bytes, `every_messages`
//!   records, or `interval_ms` of appends when the owner calls
//!   [`Log::flush`] as [`Log::flush_needed`] asks). The default policy is a one-second
//!   interval.
//! - After either, recovery leaves a prefix of the appends: it never serves a torn, corrupt or
//!   half-written batch.
//!
//! ## Invariants
//!
//! - Offsets increase: batch *n+1* starts after batch *n*'s last offset — right after it,
//!   except where compaction removed whole batches ([`Log::compact`]) — and segment *i+1*'s
//!   base offset is segment *i*'s next offset (compaction keeps each rewritten segment's last
//!   batch, and merges segments only whole). Appends are dense. Recovery enforces both, and
//!   removes a segment that lies inside the one before it (left by a crash mid-merge).
//! - There is always at least one segment; the last one is the only one appended to.
//! - `log_start ≤ log_end`; reads are served for offsets in `[log_start, log_end]`.
//! - Readers see only complete appends: the writer publishes a segment's size and then the
//!   log end (release stores) after the write; readers load the log end first and never read
//!   past either. Reads take no lock across I/O (positional reads on shared file handles);
//!   segments deleted by retention stay readable through handles already taken.
//! - An append is all-or-nothing: every batch is validated (framing, magic 2, CRC-32C,
//!   `max.message.bytes`, recordCount = lastOffsetDelta + 1, producer sequence) before
//!   anything is written, and it is written with one positional write. Stored batches may
//!   hold fewer records than offsets once compacted (1 ≤ recordCount ≤ lastOffsetDelta + 1).
//! - Every byte read from disk is untrusted: no panic on any file content
//!   (`fuzz_recover`, with the `test-util` feature, checks this under a fuzzer).
//!
//! ## Idempotent producers
//!
//! For each producer id the log keeps the epoch and the last five batches' sequence and offset
//! ranges. An exact retry of one of them returns the original offsets with
//! [`AppendInfo::duplicate`] set and writes nothing. In the same epoch a batch must start at
//! the last sequence + 1 (wrapping after `i32::MAX`), a new epoch must start at sequence 0, an
//! older epoch is fenced; unknown producers are accepted (Kafka ≥ 2.5). If any batch of an
//! append is a duplicate the whole append is answered as that duplicate (Kafka does the same).
//! Control batches are stored but not interpreted (transactions are out of scope).
//!
//! ## Example
//!
//! ```
//! # #[cfg(feature = "test-util")] {
//! use veritas_log::{Log, LogConfig};
//! use veritas_log::batch::builder::{BatchBuilder, Record};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let log = Log::open(dir.path(), LogConfig::default(), false, 0).unwrap();
//! let batch = BatchBuilder::new(1_700_000_000_000)
//!     .record(Record::new(Some(b"card-42".to_vec()), Some(b"{\"amount\":12}".to_vec())))
//!     .build();
//! let info = log.append(&batch, 1_700_000_000_001).unwrap();
//! assert_eq!((info.base_offset, log.log_end_offset()), (0, 1));
//! let read = log.read(0, 1 << 20).unwrap();
//! assert_eq!(read.data.len(), batch.len());
//! log.close().unwrap();
//! # }
//! ```
#![warn(missing_docs)]

pub mod batch;
mod checkpoint;
mod config;
mod error;
#[cfg(feature = "test-util")]
mod fuzz;
mod index;
mod log;
mod producer;
pub mod records;
mod segment;

pub use crate::batch::TimestampType;
pub use crate::config::{FlushPolicy, LogConfig};
pub use crate::error::LogError;
#[cfg(feature = "test-util")]
pub use crate::fuzz::fuzz_recover;
pub use crate::log::{
    AppendInfo, CompactionConfig, CompactionOutcome, Log, ReadResult, RetentionOutcome,
};
pub use crate::producer::{BatchMetadata, ProducerSnapshot};
