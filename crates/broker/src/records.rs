//! What the broker needs to see *inside* record batches, which is little: the storage layer keeps
//! batches as opaque validated bytes, and only a few paths look at individual records —
//! ListOffsets by timestamp (the exact first record at or after a time, even inside a
//! compressed batch). Decompression here is bounded: a batch may not expand past a limit, so a
//! compression bomb costs a bounded amount of memory and yields an error, never an abort.

use std::io::Read;

use kafka_protocol::error::ResponseError;
use veritas_log::batch::{BatchHeader, Compression};
use veritas_log::LogError;

/// Largest decompressed size accepted for one batch (Kafka's default max batch is ~1 MiB;
/// compression rarely exceeds 10×, so 64 MiB is generous yet bounded).
pub const MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;

/// Size of the v2 batch header.
pub const BATCH_HEADER_BYTES: usize = 61;

/// The Kafka error code for a storage error.
pub fn log_error_code(e: &LogError) -> i16 {
    use ResponseError as E;
    match e {
        LogError::Io { .. } | LogError::InvalidLog(..) => E::KafkaStorageError.code(),
        LogError::CorruptMessage(_) => E::CorruptMessage.code(),
        LogError::RecordTooLarge { .. } => E::MessageTooLarge.code(),
        LogError::InvalidRecord(_) => E::InvalidRecord.code(),
        LogError::OffsetOutOfRange { .. } => E::OffsetOutOfRange.code(),
        LogError::OutOfOrderSequence { .. } => E::OutOfOrderSequenceNumber.code(),
        LogError::InvalidProducerEpoch { .. } => E::InvalidProducerEpoch.code(),
        LogError::InvalidTimestamp(_) => E::InvalidTimestamp.code(),
        #[allow(unreachable_patterns)]
        _ => E::UnknownServerError.code(),
    }
}

/// Why the records of a batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// The batch header is malformed.
    #[error("bad batch header: {0}")]
    Header(String),
    /// A record is cut short or its varints are malformed.
    #[error("malformed record at byte {0}")]
    Malformed(usize),
    /// Decompression failed.
    #[error("cannot decompress {codec} batch: {reason}")]
    Decompress {
        /// Codec name.
        codec: &'static str,
        /// Decoder message.
        reason: String,
    },
    /// Decompressed data would exceed the limit.
    #[error("batch decompresses to more than {0} bytes")]
    TooLarge(usize),
}

/// Offset and timestamp of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition {
    /// Absolute offset.
    pub offset: i64,
    /// Timestamp (the batch's max timestamp for LogAppendTime batches).
    pub timestamp: i64,
}

/// The offsets and timestamps of every record of one v2 batch, decompressing if needed.
pub fn record_positions(batch: &[u8]) -> Result<Vec<RecordPosition>, RecordsError> {
    let header = BatchHeader::parse(batch).map_err(|e| RecordsError::Header(format!("{e:?}")))?;
    let body = batch
        .get(BATCH_HEADER_BYTES..header.size().min(batch.len()))
        .ok_or_else(|| RecordsError::Header("shorter than its header".into()))?;
    let plain;
    let records: &[u8] = match header.compression() {
        Compression::None => body,
        codec => {
            plain = decompress(codec, body, MAX_DECOMPRESSED)?;
            &plain
        }
    };
    let log_append_time = header.timestamp_type() == veritas_log::TimestampType::LogAppendTime;
    let mut out = Vec::new();
    let mut cur = Cursor {
        buf: records,
        pos: 0,
    };
    // `record_count` is untrusted: never pre-allocate from it.
    for _ in 0..header.record_count.max(0) {
        let start = cur.pos;
        let len = cur.varint().ok_or(RecordsError::Malformed(start))?;
        let len = usize::try_from(len).map_err(|_| RecordsError::Malformed(start))?;
        let record_start = cur.pos;
        let end = record_start
            .checked_add(len)
            .filter(|e| *e <= records.len())
            .ok_or(RecordsError::Malformed(start))?;
        cur.byte().ok_or(RecordsError::Malformed(start))?; // attributes
        let ts_delta = cur.varlong().ok_or(RecordsError::Malformed(start))?;
        let offset_delta = cur.varint().ok_or(RecordsError::Malformed(start))?;
        let timestamp = if log_append_time {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(ts_delta)
        };
        out.push(RecordPosition {
            offset: header.base_offset + offset_delta as i64,
            timestamp,
        });
        cur.pos = end;
    }
    Ok(out)
}

/// Decompresses a batch's records section, refusing to grow past `limit` bytes.
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    fn read_bounded(
        mut r: impl Read,
        codec: &'static str,
        limit: usize,
    ) -> Result<Vec<u8>, RecordsError> {
        let mut out = Vec::new();
        r.by_ref()
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| RecordsError::Decompress {
                codec,
                reason: e.to_string(),
            })?;
        if out.len() > limit {
            return Err(RecordsError::TooLarge(limit));
        }
        Ok(out)
    }
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(data), "gzip", limit),
        Compression::Snappy => snappy(data, limit),
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), "lz4", limit),
        Compression::Zstd => {
            let dec =
                zstd::stream::read::Decoder::new(data).map_err(|e| RecordsError::Decompress {
                    codec: "zstd",
                    reason: e.to_string(),
                })?;
            read_bounded(dec, "zstd", limit)
        }
        #[allow(unreachable_patterns)]
        _ => Err(RecordsError::Decompress {
            codec: "unknown",
            reason: "unknown codec".into(),
        }),
    }
}

/// Snappy as Kafka clients write it: either the xerial framing the Java client uses
/// (`\x82SNAPPY\0`, two version ints, then length-prefixed raw blocks) or one raw block
/// (librdkafka).
fn snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    const XERIAL: &[u8] = b"\x82SNAPPY\x00";
    let err = |reason: String| RecordsError::Decompress {
        codec: "snappy",
        reason,
    };
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), RecordsError> {
        let n = snap::raw::decompress_len(block).map_err(|e| err(e.to_string()))?;
        if out.len() + n > limit {
            return Err(RecordsError::TooLarge(limit));
        }
        let start = out.len();
        out.resize(start + n, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    };
    let mut out = Vec::new();
    if data.starts_with(XERIAL) {
        let mut pos = XERIAL.len() + 8;
        while pos < data.len() {
            let len_bytes = data
                .get(pos..pos + 4)
                .ok_or_else(|| err("truncated block length".into()))?;
            let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]])
                as usize;
            pos += 4;
            let block = data
                .get(pos..pos.saturating_add(len))
                .ok_or_else(|| err("truncated block".into()))?;
            raw(block, &mut out)?;
            pos += len;
        }
    } else {
        raw(data, &mut out)?;
    }
    Ok(out)
}

/// A checked reader of Kafka's zig-zag varints.
pub(crate) struct Cursor<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn uvarlong(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// Zig-zag varlong.
    pub(crate) fn varlong(&mut self) -> Option<i64> {
        let v = self.uvarlong()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// Zig-zag varint (must fit in 32 bits).
    pub(crate) fn varint(&mut self) -> Option<i32> {
        i32::try_from(self.varlong()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_and_reject_overlong_input() {
        let mut c = Cursor {
            buf: &[0x00, 0x01, 0x02, 0xac, 0x02],
            pos: 0,
        };
        assert_eq!(c.varint(), Some(0));
        assert_eq!(c.varint(), Some(-1));
        assert_eq!(c.varint(), Some(1));
        assert_eq!(c.varint(), Some(150));
        assert_eq!(c.varint(), None);
        let mut c = Cursor {
            buf: &[0xff; 11],
            pos: 0,
        };
        assert_eq!(c.varlong(), None);
    }

    #[test]
    fn bounded_decompression_refuses_bombs() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert_eq!(
            decompress(Compression::Gzip, &bomb, 1024),
            Err(RecordsError::TooLarge(1024))
        );
        assert_eq!(
            decompress(Compression::Gzip, &bomb, 1 << 20).map(|v| v.len()),
            Ok(1 << 20)
        );
        let raw = snap::raw::Encoder::new()
            .compress_vec(b"hello hello hello")
            .unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, 100).unwrap(),
            b"hello hello hello"
        );
        assert!(decompress(Compression::Zstd, b"not zstd", 100).is_err());
    }
}
