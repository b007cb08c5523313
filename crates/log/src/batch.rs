//! Kafka v2 record batches ("magic 2"): header parsing, CRC-32C validation and a
//! validating iterator over concatenated batches.
//!
//! Layout (all integers big-endian), 61-byte header followed by the records:
//!
//! | offset | field                | type |
//! |-------:|----------------------|------|
//! | 0      | baseOffset           | i64  |
//! | 8      | batchLength          | i32 (bytes after this field) |
//! | 12     | partitionLeaderEpoch | i32  |
//! | 16     | magic                | i8 (= 2) |
//! | 17     | crc                  | u32, CRC-32C over bytes 21..end |
//! | 21     | attributes           | i16  |
//! | 23     | lastOffsetDelta      | i32  |
//! | 27     | baseTimestamp        | i64  |
//! | 35     | maxTimestamp         | i64  |
//! | 43     | producerId           | i64  |
//! | 51     | producerEpoch        | i16  |
//! | 53     | baseSequence         | i32  |
//! | 57     | recordCount          | i32  |
//! | 61     | records...           |      |
//!
//! `baseOffset` and `partitionLeaderEpoch` are not covered by the CRC, which is why the log
//! can assign them without touching the rest of the batch.

use std::fmt;

/// Offset of the `baseOffset` field.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Offset of the `batchLength` field.
pub const LENGTH_OFFSET: usize = 8;
/// Bytes before the part counted by `batchLength` (baseOffset + batchLength), Kafka's `LOG_OVERHEAD`.
pub const LOG_OVERHEAD: usize = 12;
/// Offset of the `partitionLeaderEpoch` field.
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
/// Offset of the `magic` byte.
pub const MAGIC_OFFSET: usize = 16;
/// Offset of the `crc` field.
pub const CRC_OFFSET: usize = 17;
/// Offset of the `attributes` field; the CRC covers everything from here to the end of the batch.
pub const ATTRIBUTES_OFFSET: usize = 21;
/// Offset of the `lastOffsetDelta` field.
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Offset of the `baseTimestamp` field.
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
/// Offset of the `maxTimestamp` field.
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Offset of the `producerId` field.
pub const PRODUCER_ID_OFFSET: usize = 43;
/// Offset of the `producerEpoch` field.
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
/// Offset of the `baseSequence` field.
pub const BASE_SEQUENCE_OFFSET: usize = 53;
/// Offset of the `recordCount` field.
pub const RECORD_COUNT_OFFSET: usize = 57;
/// Size of the v2 batch header; the records start here.
pub const HEADER_SIZE: usize = 61;
/// Smallest legal `batchLength` (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;
/// The only supported magic value.
pub const MAGIC_V2: i8 = 2;

/// Attribute bits 0-2: compression codec.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamp type (set = LogAppendTime).
pub const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
/// Attribute bit 4: transactional batch.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit 5: control batch.
pub const ATTR_CONTROL: i16 = 0x20;

/// `producerId` of a batch written without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producerEpoch` of a batch written without idempotence.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `baseSequence` of a batch written without idempotence.
pub const NO_SEQUENCE: i32 = -1;
/// Timestamp meaning "none".
pub const NO_TIMESTAMP: i64 = -1;

/// Compression codec named by the attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy (xerial framing).
    Snappy,
    /// LZ4 frame.
    Lz4,
    /// Zstandard.
    Zstd,
    /// A codec id this crate does not know (stored as-is, never decoded here).
    Unknown(u8),
}

impl Compression {
    /// Every codec this crate reads and writes, `None` first.
    pub const KNOWN: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
}

/// How a batch's timestamps are to be read (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Timestamps were chosen by the producer (`CreateTime`), Kafka's default.
    #[default]
    CreateTime,
    /// The broker stamped the batch with its append time (`LogAppendTime`): every record's
    /// timestamp is the batch's `maxTimestamp`.
    LogAppendTime,
}

/// The parsed 61-byte header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (assigned by the log).
    pub base_offset: i64,
    /// Bytes after the `batchLength` field; the whole batch is `batch_length + 12` bytes.
    pub batch_length: i32,
    /// Leader epoch stamped by the log.
    pub partition_leader_epoch: i32,
    /// Format version, 2 for every batch this crate accepts.
    pub magic: i8,
    /// Stored CRC-32C of bytes `21..end`.
    pub crc: u32,
    /// Attribute bits (compression, timestamp type, transactional, control).
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (records store deltas against it).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (or the log append time).
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 if none.
    pub producer_id: i64,
    /// Producer epoch, -1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 if none.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks only that 61 bytes are present and that
    /// the magic byte is 2; use [`validate_batch`] for the full check.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchErrorKind> {
        let h: &[u8; HEADER_SIZE] = buf
            .get(..HEADER_SIZE)
            .and_then(|s| s.try_into().ok())
            .ok_or(BatchErrorKind::Truncated {
                needed: HEADER_SIZE,
                available: buf.len(),
            })?;
        let magic = h[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchErrorKind::BadMagic(magic));
        }
        Ok(BatchHeader {
            base_offset: be_i64(h, BASE_OFFSET_OFFSET),
            batch_length: be_i32(h, LENGTH_OFFSET),
            partition_leader_epoch: be_i32(h, PARTITION_LEADER_EPOCH_OFFSET),
            magic,
            crc: be_i32(h, CRC_OFFSET) as u32,
            attributes: be_i16(h, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(h, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: be_i64(h, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(h, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(h, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(h, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(h, BASE_SEQUENCE_OFFSET),
            record_count: be_i32(h, RECORD_COUNT_OFFSET),
        })
    }

    /// Total size of the batch in bytes including the 12-byte log overhead
    /// (0 if `batch_length` is negative, which [`validate_batch`] rejects).
    pub fn size(&self) -> usize {
        usize::try_from(self.batch_length)
            .map(|l| l + LOG_OVERHEAD)
            .unwrap_or(0)
    }

    /// Offset of the last record: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Compression codec of the records.
    pub fn compression(&self) -> Compression {
        match (self.attributes & ATTR_COMPRESSION_MASK) as u8 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => Compression::Unknown(other),
        }
    }

    /// Timestamp type from attribute bit 3.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// True for batches written inside a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// True for control batches (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// True if the batch carries an idempotent producer id.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record, wrapping from `i32::MAX` to 0 as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// `sequence + increment` wrapping past `i32::MAX` to 0 (Kafka's sequence arithmetic).
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    let sum = i64::from(sequence) + i64::from(increment);
    if sum > i64::from(i32::MAX) {
        (sum - i64::from(i32::MAX) - 1) as i32
    } else {
        sum as i32
    }
}

/// Why a batch was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchErrorKind {
    /// The buffer ends before the batch does (a torn write or a short read).
    #[error("truncated batch: needed {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// `batchLength` is smaller than a header or larger than the allowed maximum.
    #[error("bad batch length {length} (allowed {min}..={max})")]
    BadLength {
        /// The length field.
        length: i32,
        /// Smallest legal value.
        min: i32,
        /// Largest value accepted here.
        max: i64,
    },
    /// The magic byte is not 2.
    #[error("unsupported magic {0} (only v2 record batches are supported)")]
    BadMagic(i8),
    /// The stored CRC does not match the contents.
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// CRC field in the header.
        stored: u32,
        /// CRC-32C computed over attributes..end.
        computed: u32,
    },
    /// `recordCount` and `lastOffsetDelta` disagree (or the count is not positive).
    #[error("record count {record_count} inconsistent with lastOffsetDelta {last_offset_delta}")]
    InconsistentCount {
        /// The recordCount field.
        record_count: i32,
        /// The lastOffsetDelta field.
        last_offset_delta: i32,
    },
}

/// A rejected batch and where it starts in the buffer that was being checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// Byte position of the bad batch within the buffer (or file, for recovery scans).
    pub position: u64,
    /// What is wrong with it.
    pub kind: BatchErrorKind,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad batch at position {}: {}", self.position, self.kind)
    }
}

impl std::error::Error for BatchError {}

/// Computes the CRC-32C of a whole batch as Kafka defines it (bytes `21..end`).
/// Returns 0 for a buffer shorter than a header.
pub fn compute_crc(batch: &[u8]) -> u32 {
    batch.get(ATTRIBUTES_OFFSET..).map_or(0, crc32c::crc32c)
}

/// Checks the framing of the batch at the start of `buf` against `max_size` (the largest
/// total batch size allowed, overhead included) without reading the records: enough bytes
/// for the header, magic 2, a sane length, all of the batch present. Returns the header.
pub fn check_framing(buf: &[u8], max_size: usize) -> Result<BatchHeader, BatchErrorKind> {
    // Length first: a torn tail often has a valid prefix of a header.
    let length = match buf.get(LENGTH_OFFSET..LOG_OVERHEAD) {
        Some(b) => i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => {
            return Err(BatchErrorKind::Truncated {
                needed: LOG_OVERHEAD,
                available: buf.len(),
            })
        }
    };
    let max_length = max_size.saturating_sub(LOG_OVERHEAD).min(i32::MAX as usize) as i64;
    if length < MIN_BATCH_LENGTH || i64::from(length) > max_length {
        return Err(BatchErrorKind::BadLength {
            length,
            min: MIN_BATCH_LENGTH,
            max: max_length,
        });
    }
    let header = BatchHeader::parse(buf)?;
    let size = header.size();
    if buf.len() < size {
        return Err(BatchErrorKind::Truncated {
            needed: size,
            available: buf.len(),
        });
    }
    Ok(header)
}

/// Fully validates the batch at the start of `buf` (framing, magic, CRC-32C, count
/// consistency) and returns its header. Bytes after the batch are ignored. This is the check
/// for batches a producer sends: `recordCount` must be exactly `lastOffsetDelta + 1`.
pub fn validate_batch(buf: &[u8], max_size: usize) -> Result<BatchHeader, BatchErrorKind> {
    validate(buf, max_size, CountRule::Exact)
}

/// Like [`validate_batch`], for a batch read back from storage: compaction (see
/// [`crate::Log::compact`]) keeps a batch's offset range but may drop some of its records,
/// so `1 ≤ recordCount ≤ lastOffsetDelta + 1` (as in Kafka's cleaned logs).
pub fn validate_stored_batch(buf: &[u8], max_size: usize) -> Result<BatchHeader, BatchErrorKind> {
    validate(buf, max_size, CountRule::AtMostRange)
}

/// How `recordCount` must relate to `lastOffsetDelta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountRule {
    /// As produced: one record per offset of the range.
    Exact,
    /// As stored: at least one record, at most one per offset (compacted batches).
    AtMostRange,
}

impl CountRule {
    /// Checks the header's count against its offset range.
    pub(crate) fn check(self, h: &BatchHeader) -> Result<(), BatchErrorKind> {
        let range = i64::from(h.last_offset_delta) + 1;
        let count = i64::from(h.record_count);
        let ok = h.record_count > 0
            && h.last_offset_delta >= 0
            && match self {
                CountRule::Exact => count == range,
                CountRule::AtMostRange => count <= range,
            };
        if ok {
            Ok(())
        } else {
            Err(BatchErrorKind::InconsistentCount {
                record_count: h.record_count,
                last_offset_delta: h.last_offset_delta,
            })
        }
    }
}

fn validate(buf: &[u8], max_size: usize, rule: CountRule) -> Result<BatchHeader, BatchErrorKind> {
    let header = check_framing(buf, max_size)?;
    let computed = buf
        .get(ATTRIBUTES_OFFSET..header.size())
        .map_or(0, crc32c::crc32c);
    if computed != header.crc {
        return Err(BatchErrorKind::BadCrc {
            stored: header.crc,
            computed,
        });
    }
    rule.check(&header)?;
    Ok(header)
}

/// A validated batch inside a buffer.
#[derive(Debug, Clone, Copy)]
pub struct BatchRef<'a> {
    /// Byte position of the batch in the iterated buffer.
    pub position: usize,
    /// Its parsed header.
    pub header: BatchHeader,
    /// All of its bytes (header and records).
    pub bytes: &'a [u8],
}

/// Iterates over concatenated batches in a buffer, validating each one fully (see
/// [`validate_batch`]). Yields the first bad batch as `Err` (with its exact position) and
/// then stops. An empty remainder ends the iteration.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    max_size: usize,
    rule: CountRule,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Iterates over `buf` accepting batches of any size the format allows.
    pub fn new(buf: &'a [u8]) -> BatchIter<'a> {
        BatchIter::with_max_size(buf, i32::MAX as usize + LOG_OVERHEAD)
    }

    /// Iterates over `buf`, rejecting batches larger than `max_size` bytes (overhead included)
    /// as [`BatchErrorKind::BadLength`].
    pub fn with_max_size(buf: &'a [u8], max_size: usize) -> BatchIter<'a> {
        BatchIter {
            buf,
            position: 0,
            max_size,
            rule: CountRule::Exact,
            failed: false,
        }
    }

    /// Iterates over batches as stored (see [`validate_stored_batch`]): compacted batches,
    /// with fewer records than offsets, are accepted.
    pub fn stored(buf: &'a [u8]) -> BatchIter<'a> {
        BatchIter {
            rule: CountRule::AtMostRange,
            ..BatchIter::new(buf)
        }
    }

    /// Byte position just after the last batch yielded successfully.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<BatchRef<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buf.get(self.position..)?;
        if rest.is_empty() {
            return None;
        }
        match validate(rest, self.max_size, self.rule) {
            Ok(header) => {
                let size = header.size();
                let bytes = rest.get(..size)?;
                let item = BatchRef {
                    position: self.position,
                    header,
                    bytes,
                };
                self.position += size;
                Some(Ok(item))
            }
            Err(kind) => {
                self.failed = true;
                Some(Err(BatchError {
                    position: self.position as u64,
                    kind,
                }))
            }
        }
    }
}

fn be_i64(h: &[u8; HEADER_SIZE], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[at..at + 8]);
    i64::from_be_bytes(b)
}

fn be_i32(h: &[u8; HEADER_SIZE], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&h[at..at + 4]);
    i32::from_be_bytes(b)
}

fn be_i16(h: &[u8; HEADER_SIZE], at: usize) -> i16 {
    i16::from_be_bytes([h[at], h[at + 1]])
}

/// Writes `value` big-endian at `at` in `buf` (caller guarantees the range is in bounds).
pub(crate) fn put_i64(buf: &mut [u8], at: usize, value: i64) {
    if let Some(dst) = buf.get_mut(at..at + 8) {
        dst.copy_from_slice(&value.to_be_bytes());
    }
}

/// Writes `value` big-endian at `at` in `buf` (caller guarantees the range is in bounds).
pub(crate) fn put_i32(buf: &mut [u8], at: usize, value: i32) {
    if let Some(dst) = buf.get_mut(at..at + 4) {
        dst.copy_from_slice(&value.to_be_bytes());
    }
}

/// Writes `value` big-endian at `at` in `buf` (caller guarantees the range is in bounds).
pub(crate) fn put_i16(buf: &mut [u8], at: usize, value: i16) {
    if let Some(dst) = buf.get_mut(at..at + 2) {
        dst.copy_from_slice(&value.to_be_bytes());
    }
}

#[cfg(any(test, feature = "test-util"))]
pub mod builder;

#[cfg(test)]
mod tests {
    use super::builder::{BatchBuilder, Record};
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_700_000_000_000);
        for i in 0..n {
            b.push(Record::new(
                Some(format!("k{i}").into_bytes()),
                Some(vec![i as u8; 10]),
            ));
        }
        b.build()
    }

    #[test]
    fn parse_and_validate_built_batch() {
        let bytes = sample(3);
        let h = validate_batch(&bytes, usize::MAX).unwrap();
        assert_eq!(h.magic, 2);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.size(), bytes.len());
        assert_eq!(h.crc, compute_crc(&bytes));
        assert_eq!(h.compression(), Compression::None);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(!h.is_transactional() && !h.is_control() && !h.has_producer_id());
    }

    #[test]
    fn offset_and_epoch_are_outside_the_crc() {
        let mut bytes = sample(2);
        put_i64(&mut bytes, BASE_OFFSET_OFFSET, 12345);
        put_i32(&mut bytes, PARTITION_LEADER_EPOCH_OFFSET, 7);
        let h = validate_batch(&bytes, usize::MAX).unwrap();
        assert_eq!(h.base_offset, 12345);
        assert_eq!(h.last_offset(), 12346);
        assert_eq!(h.partition_leader_epoch, 7);
    }

    #[test]
    fn every_flipped_byte_inside_crc_range_is_detected() {
        let bytes = sample(2);
        for i in ATTRIBUTES_OFFSET..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(
                matches!(
                    validate_batch(&b, usize::MAX),
                    Err(BatchErrorKind::BadCrc { .. })
                ),
                "flip at {i} not detected"
            );
        }
    }

    #[test]
    fn framing_errors() {
        let bytes = sample(1);
        assert!(matches!(
            validate_batch(&bytes[..5], usize::MAX),
            Err(BatchErrorKind::Truncated { .. })
        ));
        assert!(matches!(
            validate_batch(&bytes[..bytes.len() - 1], usize::MAX),
            Err(BatchErrorKind::Truncated { .. })
        ));
        let mut b = bytes.clone();
        b[MAGIC_OFFSET] = 1;
        assert_eq!(
            validate_batch(&b, usize::MAX),
            Err(BatchErrorKind::BadMagic(1))
        );
        let mut b = bytes.clone();
        put_i32(&mut b, LENGTH_OFFSET, 10);
        assert!(matches!(
            validate_batch(&b, usize::MAX),
            Err(BatchErrorKind::BadLength { length: 10, .. })
        ));
        assert!(matches!(
            validate_batch(&bytes, bytes.len() - 1),
            Err(BatchErrorKind::BadLength { .. })
        ));
        let mut b = bytes.clone();
        put_i32(&mut b, LAST_OFFSET_DELTA_OFFSET, 4);
        let crc = compute_crc(&b);
        put_i32(&mut b, CRC_OFFSET, crc as i32);
        assert!(matches!(
            validate_batch(&b, usize::MAX),
            Err(BatchErrorKind::InconsistentCount { .. })
        ));
    }

    #[test]
    fn iterator_reports_first_bad_batch_position() {
        let a = sample(2);
        let b = sample(3);
        let mut buf = a.clone();
        buf.extend_from_slice(&b);
        let mut c = sample(1);
        c[HEADER_SIZE] ^= 1;
        buf.extend_from_slice(&c);
        buf.extend_from_slice(&a);
        let items: Vec<_> = BatchIter::new(&buf).collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].as_ref().unwrap().position, 0);
        assert_eq!(items[1].as_ref().unwrap().position, a.len());
        let err = items[2].as_ref().unwrap_err();
        assert_eq!(err.position as usize, a.len() + b.len());
        assert!(matches!(err.kind, BatchErrorKind::BadCrc { .. }));
    }

    #[test]
    fn sequence_wraps() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn parse_never_panics_on_garbage() {
        for len in 0..80 {
            let buf: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = BatchHeader::parse(&buf);
            let _ = validate_batch(&buf, usize::MAX);
            let _ = BatchIter::new(&buf).count();
        }
    }
}
