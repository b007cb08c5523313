//! The records *inside* v2 batches, and the codecs that wrap them.
//!
//! The log stores batches as opaque, validated bytes; only a few paths look at individual
//! records: ListOffsets by timestamp (the exact first record at or after a time, even inside
//! a compressed batch), the group coordinator reading its own offsets topic, and
//! [compaction](crate::Log::compact), which keeps the latest record of each key.
//!
//! Record layout (inside the possibly compressed records section of a batch): `length`
//! (varint), `attributes` (int8), `timestampDelta` (varlong), `offsetDelta` (varint),
//! `keyLength` (varint, −1 for null), `key`, `valueLength` (varint, −1 for null), `value`,
//! `headers` (varint count, then key/value pairs). Every record starts with its length, so a
//! record's bytes can be copied into another batch with the same base offset and base
//! timestamp unchanged.
//!
//! Everything here reads untrusted bytes: varints are bounded, lengths checked against the
//! buffer, and decompression is bounded by a limit, so a compression bomb costs a bounded
//! amount of memory and yields an error, never an abort.

use std::borrow::Cow;
use std::io::{Read, Write};

use crate::batch::{BatchHeader, Compression, TimestampType, HEADER_SIZE};

/// Largest decompressed size accepted for one batch (Kafka's default max batch is ~1 MiB;
/// compression rarely exceeds 10×, so 64 MiB is generous yet bounded).
pub const MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;

/// Why the records of a batch could not be read or written.
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
    /// Compression failed (or the codec is unknown).
    #[error("cannot compress with {codec}: {reason}")]
    Compress {
        /// Codec name.
        codec: &'static str,
        /// Encoder message.
        reason: String,
    },
    /// Decompressed data would exceed the limit.
    #[error("batch decompresses to more than {0} bytes")]
    TooLarge(usize),
}

/// One record of a batch, borrowed from its (decompressed) records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The record's whole encoding, its length prefix included.
    pub raw: &'a [u8],
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The key (`None` for a null key).
    pub key: Option<&'a [u8]>,
    /// The value (`None` for a null value: a tombstone).
    pub value: Option<&'a [u8]>,
}

/// Offset and timestamp of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition {
    /// Absolute offset.
    pub offset: i64,
    /// Timestamp (the batch's max timestamp for LogAppendTime batches).
    pub timestamp: i64,
}

/// The records section of `batch` (a whole v2 batch), decompressed if needed.
pub fn records_section<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
) -> Result<Cow<'a, [u8]>, RecordsError> {
    let body = batch
        .get(HEADER_SIZE..header.size().min(batch.len()))
        .ok_or_else(|| RecordsError::Header("shorter than its header".into()))?;
    match header.compression() {
        Compression::None => Ok(Cow::Borrowed(body)),
        codec => decompress(codec, body, MAX_DECOMPRESSED).map(Cow::Owned),
    }
}

/// Parses `count` records from a (decompressed) records section. `count` is untrusted: no
/// allocation is sized from it.
pub fn parse_records(section: &[u8], count: i32) -> Result<Vec<RecordView<'_>>, RecordsError> {
    let mut out = Vec::new();
    let mut cur = Cursor {
        buf: section,
        pos: 0,
    };
    for _ in 0..count.max(0) {
        let start = cur.pos;
        let bad = || RecordsError::Malformed(start);
        let len = usize::try_from(cur.varint().ok_or_else(bad)?).map_err(|_| bad())?;
        let end = cur
            .pos
            .checked_add(len)
            .filter(|e| *e <= section.len())
            .ok_or_else(bad)?;
        let mut rec = Cursor {
            buf: section.get(..end).ok_or_else(bad)?,
            pos: cur.pos,
        };
        rec.byte().ok_or_else(bad)?; // attributes
        let timestamp_delta = rec.varlong().ok_or_else(bad)?;
        let offset_delta = rec.varint().ok_or_else(bad)?;
        let key = rec.bytes().ok_or_else(bad)?;
        let value = rec.bytes().ok_or_else(bad)?;
        out.push(RecordView {
            raw: section.get(start..end).ok_or_else(bad)?,
            offset_delta,
            timestamp_delta,
            key,
            value,
        });
        cur.pos = end;
    }
    Ok(out)
}

/// The offsets and timestamps of every record of one v2 batch, decompressing if needed.
pub fn record_positions(batch: &[u8]) -> Result<Vec<RecordPosition>, RecordsError> {
    let header = BatchHeader::parse(batch).map_err(|e| RecordsError::Header(format!("{e:?}")))?;
    let section = records_section(batch, &header)?;
    let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
    Ok(parse_records(&section, header.record_count)?
        .iter()
        .map(|r| RecordPosition {
            offset: header.base_offset + i64::from(r.offset_delta),
            timestamp: if log_append_time {
                header.max_timestamp
            } else {
                header.base_timestamp.wrapping_add(r.timestamp_delta)
            },
        })
        .collect())
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
        Compression::Unknown(_) => Err(RecordsError::Decompress {
            codec: "unknown",
            reason: "unknown codec".into(),
        }),
    }
}

/// Compresses a records section with `codec`, in the form Kafka clients read: a gzip
/// stream, one raw Snappy block (as librdkafka writes), an LZ4 frame, a zstd frame.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, RecordsError> {
    let fail = |codec: &'static str| {
        move |e: std::io::Error| RecordsError::Compress {
            codec,
            reason: e.to_string(),
        }
    };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).map_err(fail("gzip"))?;
            enc.finish().map_err(fail("gzip"))
        }
        Compression::Snappy => {
            snap::raw::Encoder::new()
                .compress_vec(data)
                .map_err(|e| RecordsError::Compress {
                    codec: "snappy",
                    reason: e.to_string(),
                })
        }
        Compression::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
            enc.write_all(data).map_err(fail("lz4"))?;
            enc.finish().map_err(|e| RecordsError::Compress {
                codec: "lz4",
                reason: e.to_string(),
            })
        }
        Compression::Zstd => zstd::bulk::compress(data, 3).map_err(fail("zstd")),
        Compression::Unknown(_) => Err(RecordsError::Compress {
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

impl<'a> Cursor<'a> {
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

    /// Varint-length-prefixed bytes; `Some(None)` for length −1 (null).
    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.varint()?;
        if len < 0 {
            return (len == -1).then_some(None);
        }
        let end = self.pos.checked_add(len as usize)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(Some(b))
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
        let bomb = compress(Compression::Gzip, &vec![0u8; 1 << 20]).unwrap();
        assert_eq!(
            decompress(Compression::Gzip, &bomb, 1024),
            Err(RecordsError::TooLarge(1024))
        );
        assert_eq!(
            decompress(Compression::Gzip, &bomb, 1 << 20).map(|v| v.len()),
            Ok(1 << 20)
        );
        assert!(decompress(Compression::Zstd, b"not zstd", 100).is_err());
    }

    #[test]
    fn every_codec_round_trips() {
        let data = b"hello hello hello, records records records".repeat(50);
        for codec in Compression::KNOWN {
            let packed = compress(codec, &data).unwrap();
            assert_eq!(
                decompress(codec, &packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
        }
        assert!(compress(Compression::Unknown(7), &data).is_err());
    }

    #[test]
    fn records_parse_with_keys_values_and_nulls() {
        use crate::batch::builder::{BatchBuilder, Record};
        let batch = BatchBuilder::new(1_000)
            .record(Record::new(Some(b"k1".to_vec()), Some(b"v1".to_vec())))
            .record(Record::new(None, Some(b"v2".to_vec())))
            .record(Record::new(Some(b"k1".to_vec()), None))
            .build();
        let h = BatchHeader::parse(&batch).unwrap();
        let section = records_section(&batch, &h).unwrap();
        let recs = parse_records(&section, h.record_count).unwrap();
        let got: Vec<_> = recs
            .iter()
            .map(|r| (r.offset_delta, r.key, r.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, Some(&b"k1"[..]), Some(&b"v1"[..])),
                (1, None, Some(&b"v2"[..])),
                (2, Some(&b"k1"[..]), None),
            ]
        );
        assert_eq!(
            recs.iter().map(|r| r.raw.len()).sum::<usize>(),
            section.len()
        );
        // Cut short anywhere: an error, never a panic.
        for cut in 0..section.len() {
            assert!(parse_records(&section[..cut], h.record_count).is_err());
        }
    }
}
