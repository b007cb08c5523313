//! Just enough of the v2 record batch (magic 2, what the log stores) to convert to and from
//! message sets: an encoder of batches from key/value/timestamp records, and a checked reader
//! of batches and their records.
//!
//! ```text
//! batch  = base_offset:i64 batch_length:i32          (batch_length counts from the next field)
//!          partition_leader_epoch:i32 magic:i8(=2)
//!          crc:u32                                    CRC-32C of attributes..end
//!          attributes:i16                             bits 0-2 codec, 3 timestamp type,
//!                                                     4 transactional, 5 control
//!          last_offset_delta:i32 base_timestamp:i64 max_timestamp:i64
//!          producer_id:i64 producer_epoch:i16 base_sequence:i32
//!          record_count:i32 records                   (compressed as a whole if codec != 0)
//! record = length:varint attributes:i8 timestamp_delta:varlong offset_delta:varint
//!          key_length:varint key value_length:varint value
//!          header_count:varint (key_length:varint key value_length:varint value)*
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::compression::{compress, Compression, Lz4Checksum};
use crate::LegacyError;

/// Size of the batch header, up to the first record.
pub(crate) const BATCH_HEADER_LEN: usize = 61;
/// Where the CRC-32C coverage starts (the attributes).
const CRC_START: usize = 21;
/// Offset and length fields that precede every batch.
const BATCH_LOG_OVERHEAD: usize = 12;
const MAGIC_V2: i8 = 2;

const ATTR_CODEC: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_CONTROL: i16 = 0x20;

/// A record to encode into a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewRecord<'a> {
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
}

/// Encodes `records` as one v2 batch: base offset 0 (the log assigns offsets), no partition
/// leader epoch, no producer id, create-time timestamps, offset deltas 0, 1, …
pub(crate) fn encode_batch(
    records: &[NewRecord<'_>],
    compression: Compression,
) -> Result<Bytes, LegacyError> {
    let Some(first) = records.first() else {
        return Err(LegacyError::EmptyMessageSet);
    };
    let count = i32::try_from(records.len()).map_err(|_| LegacyError::TooLargeToEncode {
        what: "record count",
        len: records.len(),
    })?;
    let base_timestamp = first.timestamp;
    let max_timestamp = records
        .iter()
        .map(|r| r.timestamp)
        .max()
        .unwrap_or(base_timestamp);

    let mut body = BytesMut::new();
    for (delta, r) in (0i32..).zip(records) {
        put_record(
            &mut body,
            delta,
            r.timestamp.wrapping_sub(base_timestamp),
            r,
        )?;
    }
    let body = match compression {
        Compression::None => body.freeze(),
        codec => Bytes::from(compress(codec, &body, Lz4Checksum::Correct)?),
    };

    let total = BATCH_HEADER_LEN + body.len();
    let batch_length = crate::wire::i32_len("record batch", total - BATCH_LOG_OVERHEAD)?;
    let mut out = BytesMut::with_capacity(total);
    out.put_i64(0); // base offset
    out.put_i32(batch_length);
    out.put_i32(-1); // partition leader epoch
    out.put_i8(MAGIC_V2);
    out.put_u32(0); // crc, patched below
    out.put_i16(i16::from(compression.bits()));
    out.put_i32(count - 1); // last offset delta
    out.put_i64(base_timestamp);
    out.put_i64(max_timestamp);
    out.put_i64(-1); // producer id
    out.put_i16(-1); // producer epoch
    out.put_i32(-1); // base sequence
    out.put_i32(count);
    out.put_slice(&body);
    let crc = crc32c::crc32c(out.get(CRC_START..).unwrap_or_default());
    if let Some(f) = out.get_mut(CRC_START - 4..CRC_START) {
        f.copy_from_slice(&crc.to_be_bytes());
    }
    Ok(out.freeze())
}

fn put_record(
    out: &mut BytesMut,
    offset_delta: i32,
    timestamp_delta: i64,
    r: &NewRecord<'_>,
) -> Result<(), LegacyError> {
    let key_len = field_len(r.key)?;
    let value_len = field_len(r.value)?;
    let size = 1
        + varlong_size(timestamp_delta)
        + varlong_size(offset_delta.into())
        + varlong_size(key_len.into())
        + r.key.map_or(0, <[u8]>::len)
        + varlong_size(value_len.into())
        + r.value.map_or(0, <[u8]>::len)
        + 1; // header count 0
    let size = crate::wire::i32_len("record", size)?;
    put_varlong(out, size.into());
    out.put_i8(0); // attributes
    put_varlong(out, timestamp_delta);
    put_varlong(out, offset_delta.into());
    put_varlong(out, key_len.into());
    if let Some(k) = r.key {
        out.put_slice(k);
    }
    put_varlong(out, value_len.into());
    if let Some(v) = r.value {
        out.put_slice(v);
    }
    put_varlong(out, 0); // no headers
    Ok(())
}

fn field_len(f: Option<&[u8]>) -> Result<i32, LegacyError> {
    match f {
        None => Ok(-1),
        Some(b) => crate::wire::i32_len("record key or value", b.len()),
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn varlong_size(v: i64) -> usize {
    let mut z = zigzag(v);
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

fn put_varlong(out: &mut BytesMut, v: i64) {
    let mut z = zigzag(v);
    while z >= 0x80 {
        out.put_u8((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

/// A batch split off a byte range, CRC verified, records not yet decoded.
#[derive(Debug)]
pub(crate) struct Batch<'a> {
    /// Where the batch starts in the range.
    pub(crate) at: usize,
    pub(crate) base_offset: i64,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    record_count: i32,
    /// The records section, compressed if the codec says so.
    pub(crate) records: &'a [u8],
}

fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = buf.get(at..at + N) {
        out.copy_from_slice(s);
    }
    out
}

impl Batch<'_> {
    /// The codec of the records section.
    pub(crate) fn compression(&self) -> Result<Compression, LegacyError> {
        let bits = (self.attributes & ATTR_CODEC) as u8;
        Compression::from_bits(bits).ok_or(LegacyError::InvalidCodec {
            at: self.at,
            codec: bits,
            magic: MAGIC_V2,
        })
    }

    /// Whether this is a control batch (transaction markers), which old clients never see.
    pub(crate) fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Whether timestamps are the broker's append time (then every record has `max_timestamp`).
    pub(crate) fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// The offset of the last record the batch was written with.
    pub(crate) fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Calls `f` with each record of `records` (this batch's records section, decompressed),
    /// until `f` returns `false`. Checks every record against its declared length and the
    /// record count against the bytes.
    pub(crate) fn for_each_record<'r>(
        &self,
        records: &'r [u8],
        mut f: impl FnMut(RecordRef<'r>) -> Result<bool, LegacyError>,
    ) -> Result<(), LegacyError> {
        let count = usize::try_from(self.record_count).map_err(|_| LegacyError::InvalidBatch {
            at: self.at,
            reason: "negative record count",
        })?;
        let mut cur = VarReader {
            buf: records,
            pos: 0,
        };
        for index in 0..count {
            let bad = |reason| LegacyError::InvalidRecord {
                batch_at: self.at,
                index,
                reason,
            };
            let len = cur.varint().ok_or(bad("malformed length"))?;
            let len = usize::try_from(len).map_err(|_| bad("negative length"))?;
            let body = cur.take(len).ok_or(bad("shorter than its length"))?;
            let mut r = VarReader { buf: body, pos: 0 };
            r.take(1).ok_or(bad("truncated"))?; // attributes: unused
            let ts_delta = r.varlong().ok_or(bad("malformed timestamp delta"))?;
            let offset_delta = r.varint().ok_or(bad("malformed offset delta"))?;
            let key = r.nullable_bytes().ok_or(bad("malformed key"))?;
            let value = r.nullable_bytes().ok_or(bad("malformed value"))?;
            let headers = r.varint().ok_or(bad("malformed header count"))?;
            let headers = usize::try_from(headers).map_err(|_| bad("negative header count"))?;
            for _ in 0..headers {
                r.nullable_bytes()
                    .flatten()
                    .ok_or(bad("malformed header key"))?;
                r.nullable_bytes().ok_or(bad("malformed header value"))?;
            }
            if r.pos != body.len() {
                return Err(bad("fields do not fill its length"));
            }
            let offset = self
                .base_offset
                .checked_add(i64::from(offset_delta))
                .ok_or(bad("offset overflows"))?;
            let timestamp = if self.is_log_append_time() {
                self.max_timestamp
            } else {
                self.base_timestamp.wrapping_add(ts_delta)
            };
            let go_on = f(RecordRef {
                offset,
                timestamp,
                key,
                value,
            })?;
            if !go_on {
                return Ok(());
            }
        }
        if cur.pos != records.len() {
            return Err(LegacyError::InvalidBatch {
                at: self.at,
                reason: "bytes left after the last record",
            });
        }
        Ok(())
    }
}

/// One record of a batch, borrowed from the (decompressed) records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordRef<'a> {
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
}

/// Splits the batch starting at `pos` off `data`. `Ok(None)` at the end of the range or when the
/// range ends inside the batch (a fetch may cut the last one short). Checks the length, magic
/// and CRC-32C.
pub(crate) fn next_batch(
    data: &[u8],
    pos: usize,
) -> Result<Option<(Batch<'_>, usize)>, LegacyError> {
    let rest = data.get(pos..).unwrap_or_default();
    if rest.len() < BATCH_LOG_OVERHEAD {
        return Ok(None);
    }
    let batch_length = i32::from_be_bytes(be(rest, 8));
    let len = usize::try_from(batch_length)
        .ok()
        .and_then(|l| l.checked_add(BATCH_LOG_OVERHEAD))
        .filter(|l| *l >= BATCH_HEADER_LEN)
        .ok_or(LegacyError::InvalidLength {
            what: "record batch",
            at: pos + 8,
            length: batch_length.into(),
        })?;
    let Some(batch) = rest.get(..len) else {
        return Ok(None);
    };
    let magic = i8::from_be_bytes(be(batch, 16));
    if magic != MAGIC_V2 {
        return Err(LegacyError::UnsupportedMagic { at: pos, magic });
    }
    let stored = u32::from_be_bytes(be(batch, 17));
    let computed = crc32c::crc32c(batch.get(CRC_START..).unwrap_or_default());
    if stored != computed {
        return Err(LegacyError::BatchCrc {
            at: pos,
            stored,
            computed,
        });
    }
    let parsed = Batch {
        at: pos,
        base_offset: i64::from_be_bytes(be(batch, 0)),
        attributes: i16::from_be_bytes(be(batch, 21)),
        last_offset_delta: i32::from_be_bytes(be(batch, 23)),
        base_timestamp: i64::from_be_bytes(be(batch, 27)),
        max_timestamp: i64::from_be_bytes(be(batch, 35)),
        record_count: i32::from_be_bytes(be(batch, 57)),
        records: batch.get(BATCH_HEADER_LEN..).unwrap_or_default(),
    };
    Ok(Some((parsed, pos + len)))
}

/// A checked reader of zig-zag varints.
struct VarReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> VarReader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn uvarlong(&mut self, max_bytes: usize) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn varlong(&mut self) -> Option<i64> {
        let z = self.uvarlong(10)?;
        Some(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn varint(&mut self) -> Option<i32> {
        let z = u32::try_from(self.uvarlong(5)?).ok()?;
        Some(((z >> 1) as i32) ^ -((z & 1) as i32))
    }

    /// A varint length (-1 null) and that many bytes; `None` if malformed.
    fn nullable_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.varint()?;
        if len == -1 {
            return Some(None);
        }
        let n = usize::try_from(len).ok()?;
        self.take(n).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference CRC-32C (Castagnoli), bit by bit, independent of the `crc32c` crate.
    fn crc32c_reference(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn reference_crc32c_matches_the_check_value() {
        assert_eq!(crc32c_reference(b"123456789"), 0xE306_9283);
    }

    /// One record, key "k", value "v", timestamp 1000, laid out field by field.
    #[test]
    fn hand_built_batch_matches_the_encoder() {
        let record: &[u8] = &[
            0x10, // length 8 (zig-zag)
            0x00, // attributes
            0x00, // timestamp delta 0
            0x00, // offset delta 0
            0x02, b'k', // key length 1, key
            0x02, b'v', // value length 1, value
            0x00, // no headers
        ];
        let mut expected = Vec::new();
        expected.extend_from_slice(&0i64.to_be_bytes()); // base offset
        expected.extend_from_slice(&((49 + record.len()) as i32).to_be_bytes());
        expected.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
        expected.push(2); // magic
        expected.extend_from_slice(&[0; 4]); // crc
        expected.extend_from_slice(&0i16.to_be_bytes()); // attributes
        expected.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
        expected.extend_from_slice(&1000i64.to_be_bytes()); // base timestamp
        expected.extend_from_slice(&1000i64.to_be_bytes()); // max timestamp
        expected.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
        expected.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        expected.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        expected.extend_from_slice(&1i32.to_be_bytes()); // record count
        expected.extend_from_slice(record);
        let crc = crc32c_reference(&expected[21..]);
        expected[17..21].copy_from_slice(&crc.to_be_bytes());

        let batch = encode_batch(
            &[NewRecord {
                timestamp: 1000,
                key: Some(b"k"),
                value: Some(b"v"),
            }],
            Compression::None,
        )
        .unwrap();
        assert_eq!(&batch[..], &expected[..]);
    }

    #[test]
    fn batches_decode_back_and_are_checked() {
        let recs = [
            NewRecord {
                timestamp: 5,
                key: None,
                value: Some(b"a"),
            },
            NewRecord {
                timestamp: 3,
                key: Some(b""),
                value: None,
            },
        ];
        let batch = encode_batch(&recs, Compression::None).unwrap();
        let (b, end) = next_batch(&batch, 0).unwrap().unwrap();
        assert_eq!(end, batch.len());
        assert_eq!(b.last_offset(), 1);
        assert_eq!(b.max_timestamp, 5);
        let mut seen = Vec::new();
        b.for_each_record(b.records, |r| {
            seen.push(r);
            Ok(true)
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                RecordRef {
                    offset: 0,
                    timestamp: 5,
                    key: None,
                    value: Some(b"a")
                },
                RecordRef {
                    offset: 1,
                    timestamp: 3,
                    key: Some(b""),
                    value: None
                }
            ]
        );
        // A cut-short batch is "no batch", a flipped bit a CRC error.
        assert!(next_batch(&batch[..batch.len() - 1], 0).unwrap().is_none());
        let mut bad = batch.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            next_batch(&bad, 0),
            Err(LegacyError::BatchCrc { at: 0, .. })
        ));
        // A batch length too small for a header.
        let mut bad = batch.to_vec();
        bad[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(
            next_batch(&bad, 0),
            Err(LegacyError::InvalidLength { .. })
        ));
    }

    #[test]
    fn varints_reject_overlong_encodings() {
        let mut r = VarReader {
            buf: &[0xff, 0xff, 0xff, 0xff, 0x7f],
            pos: 0,
        };
        assert_eq!(r.varint(), None);
        let mut r = VarReader {
            buf: &[0xff; 11],
            pos: 0,
        };
        assert_eq!(r.varlong(), None);
        for v in [0i64, -1, 1, 63, -64, 64, i64::MAX, i64::MIN] {
            let mut out = BytesMut::new();
            put_varlong(&mut out, v);
            assert_eq!(out.len(), varlong_size(v));
            let mut r = VarReader { buf: &out, pos: 0 };
            assert_eq!(r.varlong(), Some(v));
        }
    }
}
