//! Message sets: the magic v0 and v1 formats of Kafka before 0.11.
//!
//! ```text
//! message set = message*                       (no count: messages fill the bytes)
//! message     = offset:i64  message_size:i32   (the "log overhead", 12 bytes)
//!               crc:u32                        CRC-32 (IEEE) of every byte from magic to the end
//!               magic:i8                       0 or 1
//!               attributes:i8                  bits 0-2 codec (0 none, 1 gzip, 2 snappy, 3 lz4),
//!                                              bit 3 timestamp type (v1: 0 create, 1 log append)
//!               timestamp:i64                  v1 only
//!               key:bytes  value:bytes         i32 length, -1 for null
//! ```
//!
//! `message_size` counts from `crc` to the end: at least 14 bytes for v0 and 22 for v1.
//!
//! A compressed message is a *wrapper*: its key is null and its value is a compressed inner
//! message set, whose messages are uncompressed (one level only). Inner offsets are absolute in
//! v0; in v1 they are relative (0, 1, …) and the wrapper carries the absolute offset of the last
//! inner message, so an inner message's absolute offset is
//! `wrapper_offset - last_inner_offset + inner_offset`. A v1 wrapper whose timestamp type is log
//! append time gives its own timestamp to every inner message.
//!
//! Decoding flattens wrappers: the result is the list of logical messages with absolute offsets.
//! A fetched set may end with a partial message, since Kafka cuts fetch responses at the byte
//! limit; a produced set may not.

use bytes::{BufMut, Bytes, BytesMut};

use crate::compression::{compress, Budget, Compression, Lz4Checksum};
use crate::wire::{i32_len, put_nullable_bytes, Reader};
use crate::{LegacyError, Limits};

/// Size of the offset and size fields that precede every message.
pub const LOG_OVERHEAD: usize = 12;

/// Timestamp of a v1 message that has none.
pub const NO_TIMESTAMP: i64 = -1;

/// Attribute bit of the timestamp type (v1).
const TIMESTAMP_TYPE_BIT: u8 = 0x08;
/// Attribute bits of the codec.
const CODEC_MASK: u8 = 0x07;

/// The magic byte of a legacy message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Magic {
    /// Kafka 0.8–0.9: no timestamp, absolute inner offsets.
    V0,
    /// Kafka 0.10: a timestamp per message, relative inner offsets.
    V1,
}

impl Magic {
    /// The magic byte.
    pub fn value(self) -> i8 {
        match self {
            Magic::V0 => 0,
            Magic::V1 => 1,
        }
    }

    /// The magic with byte `value`, if it is a legacy one.
    pub fn from_value(value: i8) -> Option<Magic> {
        match value {
            0 => Some(Magic::V0),
            1 => Some(Magic::V1),
            _ => None,
        }
    }

    /// Size of a message with null key and value, from its CRC to its end.
    pub fn min_message_size(self) -> usize {
        match self {
            Magic::V0 => 14,
            Magic::V1 => 22,
        }
    }

    /// The LZ4 header checksum that clients of this magic expect.
    pub(crate) fn lz4_checksum(self) -> Lz4Checksum {
        match self {
            Magic::V0 => Lz4Checksum::KafkaV0,
            Magic::V1 => Lz4Checksum::Correct,
        }
    }
}

/// What a message's timestamp means (v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer.
    #[default]
    CreateTime,
    /// Set by the broker when it appended the message.
    LogAppendTime,
}

/// One logical message: never a compressed wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Absolute offset (for a produced set: whatever the client wrote, which the log replaces).
    pub offset: i64,
    /// The timestamp: `None` for a v0 message, the v1 field otherwise (which may be
    /// [`NO_TIMESTAMP`]).
    pub timestamp: Option<i64>,
    /// What the timestamp means; always create time for v0.
    pub timestamp_type: TimestampType,
    /// The key, or `None` for null.
    pub key: Option<Bytes>,
    /// The value, or `None` for null (a tombstone).
    pub value: Option<Bytes>,
}

/// Where a message set comes from, which decides what a cut-short tail means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetSource {
    /// A produce request: every message must be whole.
    Produce,
    /// A fetch response: a partial last message is dropped, as Kafka's clients do.
    Fetch,
}

/// A decoded message set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageSet {
    /// The logical messages, wrappers flattened, in order.
    pub messages: Vec<Message>,
    /// The codec of the first compressed wrapper, or [`Compression::None`] if there was none.
    pub compression: Compression,
    /// Length of the partial message a fetched set ended with (0 if none).
    pub partial_tail: usize,
}

/// A message as it is on the wire, wrapper or not.
struct RawMessage {
    offset: i64,
    magic: Magic,
    codec: Compression,
    timestamp: Option<i64>,
    timestamp_type: TimestampType,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

impl RawMessage {
    fn into_message(self) -> Message {
        Message {
            offset: self.offset,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            key: self.key,
            value: self.value,
        }
    }
}

/// Decodes and validates a message set (sizes, CRCs, magic, codecs, nesting depth 1, inner
/// offsets), decompressing wrappers within `limits.max_decompressed` bytes in total.
pub fn decode_message_set(
    data: &Bytes,
    source: SetSource,
    limits: &Limits,
) -> Result<MessageSet, LegacyError> {
    let mut budget = Budget::new(limits.max_decompressed);
    let mut set = MessageSet::default();
    let mut r = Reader::new(data, "message set");
    while r.remaining() > 0 {
        let at = r.position();
        let Some(raw) = next_message(&mut r, 0)? else {
            match source {
                SetSource::Produce => return Err(LegacyError::PartialMessage { at }),
                SetSource::Fetch => {
                    set.partial_tail = data.len().saturating_sub(at);
                    break;
                }
            }
        };
        if raw.codec == Compression::None {
            set.messages.push(raw.into_message());
            continue;
        }
        if set.compression == Compression::None {
            set.compression = raw.codec;
        }
        unwrap_compressed(raw, at, &mut budget, &mut set.messages)?;
    }
    Ok(set)
}

/// Reads the next message; `None` if the input ends inside it (a partial message).
fn next_message(r: &mut Reader<'_>, base: usize) -> Result<Option<RawMessage>, LegacyError> {
    let at = base + r.position();
    if r.remaining() < LOG_OVERHEAD {
        return Ok(None);
    }
    let offset = r.i64()?;
    let size = r.i32()?;
    let len = usize::try_from(size)
        .ok()
        .filter(|len| *len >= Magic::V0.min_message_size())
        .ok_or(LegacyError::MessageTooSmall {
            at,
            size,
            min: Magic::V0.min_message_size(),
        })?;
    if len > r.remaining() {
        return Ok(None);
    }
    let body = r.bytes(len)?;
    parse_message(offset, &body, at).map(Some)
}

/// Parses a message from its CRC to its end; `at` is where its offset field is.
fn parse_message(offset: i64, body: &Bytes, at: usize) -> Result<RawMessage, LegacyError> {
    let mut r = Reader::with_base(body, "message", at + LOG_OVERHEAD);
    let stored = r.u32()?;
    let magic_byte = r.i8()?;
    let magic = Magic::from_value(magic_byte).ok_or(LegacyError::UnsupportedMagic {
        at,
        magic: magic_byte,
    })?;
    if body.len() < magic.min_message_size() {
        return Err(LegacyError::MessageTooSmall {
            at,
            size: i32_len("message", body.len())?,
            min: magic.min_message_size(),
        });
    }
    let computed = crc32fast::hash(body.get(4..).unwrap_or_default());
    if stored != computed {
        return Err(LegacyError::MessageCrc {
            at,
            stored,
            computed,
        });
    }
    let attributes = r.i8()? as u8;
    let codec = Compression::from_bits(attributes & CODEC_MASK)
        .filter(|c| *c != Compression::Zstd)
        .ok_or(LegacyError::InvalidCodec {
            at,
            codec: attributes & CODEC_MASK,
            magic: magic_byte,
        })?;
    let (timestamp, timestamp_type) = match magic {
        Magic::V0 => (None, TimestampType::CreateTime),
        Magic::V1 => {
            let ts = r.i64()?;
            let tt = if attributes & TIMESTAMP_TYPE_BIT != 0 {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            };
            (Some(ts), tt)
        }
    };
    let mismatch = |e: LegacyError| match e {
        LegacyError::Truncated { .. } => LegacyError::MessageSizeMismatch { at },
        other => other,
    };
    let key = r.nullable_bytes().map_err(mismatch)?;
    let value = r.nullable_bytes().map_err(mismatch)?;
    if r.remaining() != 0 {
        return Err(LegacyError::MessageSizeMismatch { at });
    }
    Ok(RawMessage {
        offset,
        magic,
        codec,
        timestamp,
        timestamp_type,
        key,
        value,
    })
}

/// Decompresses a wrapper and appends its inner messages, with absolute offsets, to `out`.
fn unwrap_compressed(
    wrapper: RawMessage,
    at: usize,
    budget: &mut Budget,
    out: &mut Vec<Message>,
) -> Result<(), LegacyError> {
    let compressed = wrapper
        .value
        .as_ref()
        .ok_or(LegacyError::EmptyWrapper { at })?;
    let inner = Bytes::from(budget.decompress(wrapper.codec, compressed)?);
    let first = out.len();
    let mut r = Reader::new(&inner, "compressed message set");
    while r.remaining() > 0 {
        let inner_at = r.position();
        let raw = next_message(&mut r, 0)?.ok_or(LegacyError::Truncated {
            what: "compressed message set",
            at: inner_at,
            needed: LOG_OVERHEAD,
            available: inner.len().saturating_sub(inner_at),
        })?;
        if raw.codec != Compression::None {
            return Err(LegacyError::NestedCompression { at: inner_at });
        }
        if raw.magic != wrapper.magic {
            return Err(LegacyError::InnerMagicMismatch {
                outer: wrapper.magic.value(),
                inner: raw.magic.value(),
            });
        }
        out.push(raw.into_message());
    }
    let added = out.get_mut(first..).unwrap_or_default();
    let Some(last) = added.last() else {
        return Err(LegacyError::EmptyWrapper { at });
    };
    if wrapper.magic == Magic::V1 {
        let base = wrapper
            .offset
            .checked_sub(last.offset)
            .ok_or(LegacyError::OffsetOverflow { at })?;
        for m in added.iter_mut() {
            m.offset = base
                .checked_add(m.offset)
                .ok_or(LegacyError::OffsetOverflow { at })?;
        }
        if wrapper.timestamp_type == TimestampType::LogAppendTime {
            for m in added.iter_mut() {
                m.timestamp = wrapper.timestamp;
                m.timestamp_type = TimestampType::LogAppendTime;
            }
        }
    }
    Ok(())
}

/// Appends one message to `out`: `timestamp` is written for v1 only; `attributes` carries the
/// codec and timestamp-type bits.
pub(crate) fn put_message(
    out: &mut BytesMut,
    offset: i64,
    magic: Magic,
    attributes: u8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<(), LegacyError> {
    let start = out.len();
    out.put_i64(offset);
    out.put_i32(0); // size, patched below
    out.put_u32(0); // crc, patched below
    out.put_i8(magic.value());
    out.put_u8(match magic {
        Magic::V0 => attributes & CODEC_MASK,
        Magic::V1 => attributes & (CODEC_MASK | TIMESTAMP_TYPE_BIT),
    });
    if magic == Magic::V1 {
        out.put_i64(timestamp);
    }
    let fields = put_nullable_bytes(out, key).and_then(|()| put_nullable_bytes(out, value));
    let size = fields.and_then(|()| i32_len("message", out.len() - start - LOG_OVERHEAD));
    let size = match size {
        Ok(size) => size,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    let crc = crc32fast::hash(out.get(start + LOG_OVERHEAD + 4..).unwrap_or_default());
    if let Some(f) = out.get_mut(start + 8..start + 12) {
        f.copy_from_slice(&size.to_be_bytes());
    }
    if let Some(f) = out.get_mut(start + 12..start + 16) {
        f.copy_from_slice(&crc.to_be_bytes());
    }
    Ok(())
}

/// The attribute bits of a message's timestamp type.
pub(crate) fn timestamp_type_bits(t: TimestampType) -> u8 {
    match t {
        TimestampType::CreateTime => 0,
        TimestampType::LogAppendTime => TIMESTAMP_TYPE_BIT,
    }
}

/// Encodes `messages` as a message set of `magic`.
///
/// Uncompressed: each message at its own offset, with its timestamp and type (v1; a missing
/// timestamp is written as [`NO_TIMESTAMP`]). Compressed: one wrapper as Kafka writes it — inner
/// offsets absolute (v0) or relative to the first message (v1), wrapper offset the last
/// message's, v1 wrapper timestamp the largest inner one (and log append time if every message
/// has it), LZ4 header checksum as clients of `magic` expect. Zstd cannot be used here.
pub fn encode_message_set(
    messages: &[Message],
    magic: Magic,
    compression: Compression,
) -> Result<Bytes, LegacyError> {
    let mut out = BytesMut::new();
    if compression == Compression::None {
        for m in messages {
            put_message(
                &mut out,
                m.offset,
                magic,
                timestamp_type_bits(m.timestamp_type),
                m.timestamp.unwrap_or(NO_TIMESTAMP),
                m.key.as_deref(),
                m.value.as_deref(),
            )?;
        }
        return Ok(out.freeze());
    }
    put_wrapper(&mut out, messages, magic, compression)?;
    Ok(out.freeze())
}

/// Appends one compressed wrapper holding `messages` to `out`.
pub(crate) fn put_wrapper(
    out: &mut BytesMut,
    messages: &[Message],
    magic: Magic,
    compression: Compression,
) -> Result<(), LegacyError> {
    if matches!(compression, Compression::Zstd | Compression::None) {
        return Err(LegacyError::InvalidCodec {
            at: out.len(),
            codec: compression.bits(),
            magic: magic.value(),
        });
    }
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
        return Err(LegacyError::EmptyMessageSet);
    };
    let mut inner = BytesMut::new();
    for m in messages {
        let offset = match magic {
            Magic::V0 => m.offset,
            Magic::V1 => m
                .offset
                .checked_sub(first.offset)
                .ok_or(LegacyError::OffsetOverflow { at: out.len() })?,
        };
        put_message(
            &mut inner,
            offset,
            magic,
            timestamp_type_bits(m.timestamp_type),
            m.timestamp.unwrap_or(NO_TIMESTAMP),
            m.key.as_deref(),
            m.value.as_deref(),
        )?;
    }
    let compressed = compress(compression, &inner, magic.lz4_checksum())?;
    let log_append = messages
        .iter()
        .all(|m| m.timestamp_type == TimestampType::LogAppendTime);
    let timestamp = messages
        .iter()
        .map(|m| m.timestamp.unwrap_or(NO_TIMESTAMP))
        .max()
        .unwrap_or(NO_TIMESTAMP);
    let type_bits = if log_append { TIMESTAMP_TYPE_BIT } else { 0 };
    put_message(
        out,
        last.offset,
        magic,
        compression.bits() | type_bits,
        timestamp,
        None,
        Some(&compressed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    /// A v0 message with null key and value at offset 7: CRC-32 (IEEE) of `00 00 ff ff ff ff ff
    /// ff ff ff` is 0xA7EC6803 (computed independently with Python's `zlib.crc32`; sarama's
    /// tests use the same vector).
    const EMPTY_V0: [u8; 26] = [
        0, 0, 0, 0, 0, 0, 0, 7, // offset
        0, 0, 0, 14, // size
        0xA7, 0xEC, 0x68, 0x03, // crc
        0, 0, // magic, attributes
        0xff, 0xff, 0xff, 0xff, // key: null
        0xff, 0xff, 0xff, 0xff, // value: null
    ];

    /// A v1 message, offset 1, timestamp 1000 (0x3E8), create time, key "k", value "val".
    /// CRC-32 of `01 00 00..03 e8 00 00 00 01 6b 00 00 00 03 76 61 6c` is 0xD72BB8E8
    /// (Python's `zlib.crc32`).
    const V1_KV: [u8; 38] = [
        0, 0, 0, 0, 0, 0, 0, 1, // offset
        0, 0, 0, 26, // size
        0xD7, 0x2B, 0xB8, 0xE8, // crc
        1, 0, // magic, attributes
        0, 0, 0, 0, 0, 0, 0x03, 0xE8, // timestamp
        0, 0, 0, 1, b'k', // key
        0, 0, 0, 3, b'v', b'a', b'l', // value
    ];

    #[test]
    fn hand_built_v0_message_decodes_and_encodes_identically() {
        let data = Bytes::from_static(&EMPTY_V0);
        let set = decode_message_set(&data, SetSource::Produce, &limits()).unwrap();
        assert_eq!(
            set.messages,
            vec![Message {
                offset: 7,
                timestamp: None,
                timestamp_type: TimestampType::CreateTime,
                key: None,
                value: None
            }]
        );
        let again = encode_message_set(&set.messages, Magic::V0, Compression::None).unwrap();
        assert_eq!(&again[..], &EMPTY_V0[..]);
    }

    #[test]
    fn hand_built_v1_message_decodes_and_encodes_identically() {
        let data = Bytes::from_static(&V1_KV);
        let set = decode_message_set(&data, SetSource::Produce, &limits()).unwrap();
        assert_eq!(
            set.messages,
            vec![Message {
                offset: 1,
                timestamp: Some(1000),
                timestamp_type: TimestampType::CreateTime,
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"val"))
            }]
        );
        let again = encode_message_set(&set.messages, Magic::V1, Compression::None).unwrap();
        assert_eq!(&again[..], &V1_KV[..]);
    }

    #[test]
    fn crc_mismatch_is_reported() {
        let mut bad = EMPTY_V0;
        bad[25] = 0xfe; // value length -2 → but CRC is checked first
        let data = Bytes::copy_from_slice(&bad);
        let err = decode_message_set(&data, SetSource::Fetch, &limits()).unwrap_err();
        assert_eq!(
            err,
            LegacyError::MessageCrc {
                at: 0,
                stored: 0xA7EC_6803,
                computed: crc32fast::hash(&bad[16..])
            }
        );
    }

    #[test]
    fn sizes_are_validated() {
        // Size below the v0 minimum.
        let mut bad = EMPTY_V0;
        bad[11] = 13;
        let err = decode_message_set(&Bytes::copy_from_slice(&bad), SetSource::Fetch, &limits());
        assert_eq!(
            err,
            Err(LegacyError::MessageTooSmall {
                at: 0,
                size: 13,
                min: 14
            })
        );
        // Negative size.
        bad[8] = 0xff;
        let err = decode_message_set(&Bytes::copy_from_slice(&bad), SetSource::Fetch, &limits());
        assert!(matches!(err, Err(LegacyError::MessageTooSmall { .. })));
        // A v1 message whose size only fits v0's minimum.
        let mut v1 = V1_KV[..LOG_OVERHEAD + 14].to_vec();
        v1[11] = 14;
        let crc = crc32fast::hash(&v1[16..]);
        v1[12..16].copy_from_slice(&crc.to_be_bytes());
        let err = decode_message_set(&Bytes::from(v1), SetSource::Fetch, &limits());
        assert_eq!(
            err,
            Err(LegacyError::MessageTooSmall {
                at: 0,
                size: 14,
                min: 22
            })
        );
    }

    #[test]
    fn key_length_overrunning_the_message_is_a_size_mismatch() {
        let mut m = EMPTY_V0.to_vec();
        m[18..22].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32fast::hash(&m[16..]);
        m[12..16].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            decode_message_set(&Bytes::from(m), SetSource::Produce, &limits()),
            Err(LegacyError::MessageSizeMismatch { at: 0 })
        );
    }

    #[test]
    fn partial_tail_is_dropped_when_fetched_and_refused_when_produced() {
        let mut two = EMPTY_V0.to_vec();
        two.extend_from_slice(&V1_KV[..20]);
        let data = Bytes::from(two);
        let set = decode_message_set(&data, SetSource::Fetch, &limits()).unwrap();
        assert_eq!(set.messages.len(), 1);
        assert_eq!(set.partial_tail, 20);
        assert_eq!(
            decode_message_set(&data, SetSource::Produce, &limits()),
            Err(LegacyError::PartialMessage { at: 26 })
        );
        // Shorter than the log overhead.
        let data = Bytes::copy_from_slice(&EMPTY_V0[..5]);
        let set = decode_message_set(&data, SetSource::Fetch, &limits()).unwrap();
        assert_eq!((set.messages.len(), set.partial_tail), (0, 5));
    }

    #[test]
    fn magic_2_is_refused() {
        let mut m = EMPTY_V0;
        m[16] = 2;
        assert_eq!(
            decode_message_set(&Bytes::copy_from_slice(&m), SetSource::Fetch, &limits()),
            Err(LegacyError::UnsupportedMagic { at: 0, magic: 2 })
        );
    }

    fn msg(offset: i64, ts: Option<i64>, key: &'static [u8], value: &'static [u8]) -> Message {
        Message {
            offset,
            timestamp: ts,
            timestamp_type: TimestampType::CreateTime,
            key: Some(Bytes::from_static(key)),
            value: Some(Bytes::from_static(value)),
        }
    }

    #[test]
    fn wrappers_of_every_codec_flatten_with_absolute_offsets() {
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4] {
            let v0 = vec![msg(10, None, b"a", b"1"), msg(11, None, b"b", b"2")];
            let set = encode_message_set(&v0, Magic::V0, codec).unwrap();
            let back = decode_message_set(&set, SetSource::Fetch, &limits()).unwrap();
            assert_eq!(back.messages, v0, "{codec:?}");
            assert_eq!(back.compression, codec);

            let v1 = vec![msg(100, Some(5), b"a", b"1"), msg(102, Some(9), b"b", b"2")];
            let set = encode_message_set(&v1, Magic::V1, codec).unwrap();
            // The wrapper carries the last offset and the largest timestamp.
            assert_eq!(&set[..8], &102i64.to_be_bytes());
            assert_eq!(&set[18..26], &9i64.to_be_bytes());
            let back = decode_message_set(&set, SetSource::Fetch, &limits()).unwrap();
            assert_eq!(back.messages, v1, "{codec:?}");
        }
    }

    #[test]
    fn v1_relative_offsets_are_resolved_from_the_wrapper() {
        // Inner messages written with relative offsets 0,1,2 (as sarama does), wrapper at 42.
        let inner: Vec<Message> = (0..3).map(|i| msg(i, Some(i), b"k", b"v")).collect();
        let mut set = BytesMut::new();
        put_wrapper(&mut set, &inner, Magic::V1, Compression::Gzip).unwrap();
        set[..8].copy_from_slice(&42i64.to_be_bytes());
        let crc = crc32fast::hash(&set[16..]);
        set[12..16].copy_from_slice(&crc.to_be_bytes());
        let back = decode_message_set(&set.freeze(), SetSource::Fetch, &limits()).unwrap();
        let offsets: Vec<i64> = back.messages.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, vec![40, 41, 42]);
    }

    #[test]
    fn log_append_time_wrapper_stamps_inner_messages() {
        let mut inner: Vec<Message> = (0..2).map(|i| msg(i, Some(7), b"k", b"v")).collect();
        for m in &mut inner {
            m.timestamp_type = TimestampType::LogAppendTime;
        }
        let set = encode_message_set(&inner, Magic::V1, Compression::Snappy).unwrap();
        assert_eq!(set[17] & 0x08, 0x08);
        let back = decode_message_set(&set, SetSource::Fetch, &limits()).unwrap();
        assert_eq!(back.messages, inner);
    }

    #[test]
    fn nesting_mixed_magic_and_empty_wrappers_are_refused() {
        // A wrapper whose inner set is itself a wrapper.
        let leaf = vec![msg(0, None, b"k", b"v")];
        let nested_inner = encode_message_set(&leaf, Magic::V0, Compression::Gzip).unwrap();
        let compressed = compress(Compression::Gzip, &nested_inner, Lz4Checksum::KafkaV0).unwrap();
        let mut out = BytesMut::new();
        put_message(&mut out, 0, Magic::V0, 1, 0, None, Some(&compressed)).unwrap();
        assert_eq!(
            decode_message_set(&out.freeze(), SetSource::Produce, &limits()),
            Err(LegacyError::NestedCompression { at: 0 })
        );
        // A v1 wrapper holding v0 messages.
        let inner = encode_message_set(&leaf, Magic::V0, Compression::None).unwrap();
        let compressed = compress(Compression::Gzip, &inner, Lz4Checksum::Correct).unwrap();
        let mut out = BytesMut::new();
        put_message(&mut out, 0, Magic::V1, 1, 0, None, Some(&compressed)).unwrap();
        assert_eq!(
            decode_message_set(&out.freeze(), SetSource::Produce, &limits()),
            Err(LegacyError::InnerMagicMismatch { outer: 1, inner: 0 })
        );
        // A wrapper with a null value, and one with an empty inner set.
        let mut out = BytesMut::new();
        put_message(&mut out, 0, Magic::V0, 2, 0, None, None).unwrap();
        assert_eq!(
            decode_message_set(&out.freeze(), SetSource::Produce, &limits()),
            Err(LegacyError::EmptyWrapper { at: 0 })
        );
        let compressed = compress(Compression::Gzip, b"", Lz4Checksum::Correct).unwrap();
        let mut out = BytesMut::new();
        put_message(&mut out, 0, Magic::V0, 1, 0, None, Some(&compressed)).unwrap();
        assert_eq!(
            decode_message_set(&out.freeze(), SetSource::Produce, &limits()),
            Err(LegacyError::EmptyWrapper { at: 0 })
        );
        // Codec bits 4 (zstd) and 5 are not valid for legacy magic.
        for bits in [4u8, 5] {
            let mut out = BytesMut::new();
            put_message(&mut out, 0, Magic::V0, bits, 0, None, Some(b"x")).unwrap();
            assert_eq!(
                decode_message_set(&out.freeze(), SetSource::Produce, &limits()),
                Err(LegacyError::InvalidCodec {
                    at: 0,
                    codec: bits,
                    magic: 0
                })
            );
        }
    }

    #[test]
    fn a_partial_inner_message_is_an_error() {
        let leaf = vec![msg(0, None, b"k", b"v")];
        let inner = encode_message_set(&leaf, Magic::V0, Compression::None).unwrap();
        let compressed = compress(
            Compression::Gzip,
            &inner[..inner.len() - 1],
            Lz4Checksum::Correct,
        )
        .unwrap();
        let mut out = BytesMut::new();
        put_message(&mut out, 0, Magic::V0, 1, 0, None, Some(&compressed)).unwrap();
        assert!(matches!(
            decode_message_set(&out.freeze(), SetSource::Fetch, &limits()),
            Err(LegacyError::Truncated {
                what: "compressed message set",
                ..
            })
        ));
    }

    #[test]
    fn decompression_budget_covers_the_whole_set() {
        let big = vec![Message {
            offset: 0,
            timestamp: None,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: Some(Bytes::from(vec![0u8; 10_000])),
        }];
        let one = encode_message_set(&big, Magic::V0, Compression::Gzip).unwrap();
        let mut three = BytesMut::new();
        for _ in 0..3 {
            three.extend_from_slice(&one);
        }
        let three = three.freeze();
        let tight = Limits {
            max_decompressed: 25_000,
        };
        assert!(decode_message_set(&one, SetSource::Produce, &tight).is_ok());
        assert_eq!(
            decode_message_set(&three, SetSource::Produce, &tight),
            Err(LegacyError::DecompressionLimit { limit: 25_000 })
        );
    }

    #[test]
    fn v1_offsets_that_overflow_are_refused() {
        let inner = vec![
            msg(0, Some(0), b"k", b"v"),
            msg(i64::MAX, Some(0), b"k", b"v"),
        ];
        let mut set = BytesMut::new();
        put_wrapper(&mut set, &inner, Magic::V1, Compression::Gzip).unwrap();
        set[..8].copy_from_slice(&(-5i64).to_be_bytes());
        let crc = crc32fast::hash(&set[16..]);
        set[12..16].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            decode_message_set(&set.freeze(), SetSource::Fetch, &limits()),
            Err(LegacyError::OffsetOverflow { at: 0 })
        );
    }
}
