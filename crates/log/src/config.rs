//! Per-log configuration, named after Kafka's topic configs.

pub use crate::batch::TimestampType;

/// When the log calls `fsync` (Kafka's `flush.messages` / `flush.ms`, expressed in bytes).
///
/// What each setting promises:
/// - Every setting: once [`Log::append`](crate::Log::append) returns, the data is in the OS
///   page cache, so a **process crash** (`kill -9`, panic, OOM kill) never loses an
///   acknowledged append.
/// - `every_bytes: Some(0)`: `append` fsyncs before returning, so a **power loss or kernel
///   crash** never loses an acknowledged append either (one `fdatasync` per append; concurrent
///   flushes share it, group-commit style).
/// - `every_bytes: Some(n)`: `append` fsyncs inline once `n` or more bytes are unflushed; a
///   power loss can lose up to `n` bytes of acknowledged appends.
/// - `every_messages: Some(n)` (Kafka's `flush.messages`): `append` fsyncs inline once `n` or
///   more records are unflushed; a power loss can lose fewer than `n` acknowledged records.
/// - `interval_ms: Some(t)`: [`Log::flush_needed`](crate::Log::flush_needed) turns true once
///   unflushed data is `t` ms old; the owner (the broker's flusher task) then calls
///   [`Log::flush`](crate::Log::flush). A power loss can lose roughly the last `t` ms.
/// - Both `None`: only [`Log::flush`](crate::Log::flush), segment rolls (at the next flush)
///   and [`Log::close`](crate::Log::close) fsync; a power loss can lose everything since the
///   last flush.
///
/// After a power loss, recovery truncates the log to its last complete, CRC-valid batch, so a
/// reader never sees a torn batch; only a suffix of acknowledged appends can be lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Fsync inline once this many bytes are unflushed (`Some(0)`: every append).
    pub every_bytes: Option<u64>,
    /// Fsync inline once this many records are unflushed (`Some(1)`: every append).
    pub every_messages: Option<u64>,
    /// Ask for an fsync once the oldest unflushed append is this old.
    pub interval_ms: Option<u64>,
}

impl Default for FlushPolicy {
    /// Fsync once a second (driven by the owner through `flush_needed`/`flush`): the same
    /// latency as not fsyncing at all on the produce path, bounded loss on power failure.
    fn default() -> Self {
        FlushPolicy {
            every_bytes: None,
            every_messages: None,
            interval_ms: Some(1000),
        }
    }
}

impl FlushPolicy {
    /// Fsync before acknowledging every append.
    pub fn every_append() -> FlushPolicy {
        FlushPolicy {
            every_bytes: Some(0),
            every_messages: None,
            interval_ms: None,
        }
    }

    /// Never fsync unless asked (`flush`, `close`).
    pub fn manual() -> FlushPolicy {
        FlushPolicy {
            every_bytes: None,
            every_messages: None,
            interval_ms: None,
        }
    }
}

/// Configuration of one log (one topic-partition). `Default` gives Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before a batch would make the active one larger
    /// than this (a bigger append still goes into a fresh segment whole). Default 1 GiB.
    /// Values above `i32::MAX` are treated as `i32::MAX` (index positions are 32-bit).
    pub segment_bytes: u64,
    /// `segment.ms`: roll once the active segment's first append is this old. Default 7 days.
    pub segment_ms: i64,
    /// `segment.jitter.ms`: each segment rolls up to this much earlier than `segment_ms`, by
    /// an amount fixed per log and segment, so that partitions created together do not all
    /// roll at once. Default 0.
    pub segment_jitter_ms: i64,
    /// `retention.ms`: delete segments whose newest timestamp is older than this; -1 keeps
    /// everything. Default 7 days.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger than this by at
    /// least their size; -1 (default) is unlimited.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: bytes of batches between offset/time index entries. Default 4096.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: largest accepted batch, 12-byte overhead included. Default 1048588.
    pub max_batch_bytes: u32,
    /// `message.timestamp.type`: `CreateTime` (default) keeps producer timestamps,
    /// `LogAppendTime` stamps each batch with the append time.
    pub timestamp_type: TimestampType,
    /// When to fsync.
    pub flush: FlushPolicy,
    /// Leader epoch stamped into each batch's `partitionLeaderEpoch`. Default 0.
    pub leader_epoch: i32,
}

/// 7 days in milliseconds.
pub const SEVEN_DAYS_MS: i64 = 7 * 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: SEVEN_DAYS_MS,
            segment_jitter_ms: 0,
            retention_ms: SEVEN_DAYS_MS,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_batch_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            flush: FlushPolicy::default(),
            leader_epoch: 0,
        }
    }
}

impl LogConfig {
    /// `segment_bytes` clamped to what 32-bit index positions can address (at least one byte).
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }

    /// How much earlier than `segment_ms` the segment identified by `salt` rolls: in
    /// `[0, min(segment_jitter_ms, segment_ms))`, as Kafka draws it, but derived from `salt`
    /// (the log and the segment) rather than drawn at random, so that it survives a restart.
    pub(crate) fn roll_jitter_ms(&self, salt: u64) -> i64 {
        let bound = self.segment_jitter_ms.min(self.segment_ms);
        if bound <= 0 {
            return 0;
        }
        // SplitMix64's finaliser: neighbouring salts give unrelated jitters.
        let mut z = salt.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % bound as u64) as i64
    }
}
