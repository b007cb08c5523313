//! The records of `__consumer_offsets`, in Apache Kafka's own formats.
//!
//! Every record is keyed; the key's leading `i16` says what it is about:
//!
//! | key version | key fields | value versions read | value version written |
//! |---|---|---|---|
//! | 0, 1 (`OffsetCommitKey`) | group, topic, partition | 0–3 | 3 (1 when an expiry time is set) |
//! | 2 (`GroupMetadataKey`) | group | 0–3 | 3 |
//!
//! A null value (tombstone) deletes what the key names. Strings are Kafka's: an `i16` length
//! (`-1` for null) and UTF-8 bytes. Values carry their own leading `i16` version:
//!
//! * `OffsetCommitValue` v3: offset `i64`, leader epoch `i32`, metadata string, commit timestamp
//!   `i64`. v1 adds an expiry timestamp after the commit timestamp and has no leader epoch
//!   (written only for OffsetCommit v2–v4 requests with an explicit retention time); v0 and v2
//!   are v1 and v3 without those fields.
//! * `GroupMetadataValue` v3: protocol type string, generation `i32`, protocol (nullable),
//!   leader (nullable), current-state timestamp `i64` (v2+), then the member array. Membership
//!   is not restored after a restart (clients rejoin), so the array is written empty and
//!   ignored on reading.
//!
//! Records are written as uncompressed v2 batches without producer ids. Reading accepts any
//! valid v2 batch (compressed ones through the bounded decompressor), because clients can
//! produce to the topic: everything read is untrusted and a malformed record is an error,
//! never a panic.

use veritas_log::batch::{BatchHeader, Compression};

use crate::records::{decompress, BATCH_HEADER_BYTES, MAX_DECOMPRESSED};

/// Version of `OffsetCommitKey` written.
const OFFSET_KEY_VERSION: i16 = 1;
/// Version of `GroupMetadataKey`.
const GROUP_KEY_VERSION: i16 = 2;
/// Version of `OffsetCommitValue` written when no expiry time is set.
const OFFSET_VALUE_VERSION: i16 = 3;
/// Version of `OffsetCommitValue` that carries an expiry time.
const OFFSET_VALUE_VERSION_EXPIRING: i16 = 1;
/// Version of `GroupMetadataValue` written.
const GROUP_VALUE_VERSION: i16 = 3;

/// Why bytes could not be turned into a record, or a record into bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The bytes end before the field does.
    #[error("record truncated")]
    Truncated,
    /// A length is negative where null is not allowed, or overflows.
    #[error("bad length {0}")]
    BadLength(i64),
    /// A string is not UTF-8.
    #[error("string is not UTF-8")]
    BadUtf8,
    /// A key version this broker does not know (newer Kafka record types, e.g. KIP-848).
    #[error("unknown key version {0}")]
    UnknownKeyVersion(i16),
    /// A value version this broker does not know.
    #[error("unknown value version {0}")]
    UnknownValueVersion(i16),
    /// A string longer than Kafka's `i16` length allows.
    #[error("string of {0} bytes is too long for a record")]
    StringTooLong(usize),
    /// A record without a key.
    #[error("record without a key")]
    NoKey,
    /// A compressed batch could not be decompressed.
    #[error("batch: {0}")]
    Batch(String),
}

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// A committed offset.
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// A group's metadata.
    Group {
        /// Group id.
        group: String,
    },
}

/// A committed offset, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The offset.
    pub offset: i64,
    /// Leader epoch of the committed record, -1 if unknown.
    pub leader_epoch: i32,
    /// Client metadata (empty when none was given).
    pub metadata: String,
    /// When the commit was made (ms since the epoch).
    pub commit_timestamp: i64,
    /// Explicit expiry time (OffsetCommit v2–v4 `retention_time_ms`), ms since the epoch.
    pub expire_timestamp: Option<i64>,
}

/// A group's persisted metadata (membership is not persisted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// Protocol type (`consumer` for consumers), empty for none.
    pub protocol_type: String,
    /// Generation id.
    pub generation: i32,
    /// Selected protocol; `None` when the group was empty.
    pub protocol: Option<String>,
    /// Leader's member id.
    pub leader: Option<String>,
    /// When the group entered its current state (ms since the epoch), -1 if unknown.
    pub state_timestamp: i64,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn i8(&mut self) -> Result<i8, CodecError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    fn i16(&mut self) -> Result<i16, CodecError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn nullable_string(&mut self) -> Result<Option<String>, CodecError> {
        let len = self.i16()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| CodecError::BadLength(len.into()))?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| CodecError::BadUtf8)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        self.nullable_string()?.ok_or(CodecError::BadLength(-1))
    }

    fn uvarlong(&mut self) -> Result<u64, CodecError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self
                .take(1)?
                .first()
                .copied()
                .ok_or(CodecError::Truncated)?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::BadLength(-1))
    }

    fn varlong(&mut self) -> Result<i64, CodecError> {
        let v = self.uvarlong()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn varint(&mut self) -> Result<i32, CodecError> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| CodecError::BadLength(v))
    }

    /// A varint-length-prefixed byte field of a record (`-1`: null).
    fn var_bytes(&mut self) -> Result<Option<Vec<u8>>, CodecError> {
        let len = self.varint()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(len as usize)?.to_vec()))
    }
}

fn put_string(out: &mut Vec<u8>, s: Option<&str>) -> Result<(), CodecError> {
    match s {
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
        Some(s) => {
            let len = i16::try_from(s.len()).map_err(|_| CodecError::StringTooLong(s.len()))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    Ok(())
}

impl RecordKey {
    /// Kafka's binary key.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(64);
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                out.extend_from_slice(&OFFSET_KEY_VERSION.to_be_bytes());
                put_string(&mut out, Some(group))?;
                put_string(&mut out, Some(topic))?;
                out.extend_from_slice(&partition.to_be_bytes());
            }
            RecordKey::Group { group } => {
                out.extend_from_slice(&GROUP_KEY_VERSION.to_be_bytes());
                put_string(&mut out, Some(group))?;
            }
        }
        Ok(out)
    }

    /// Parses a key.
    pub fn decode(bytes: &[u8]) -> Result<RecordKey, CodecError> {
        let mut r = Reader::new(bytes);
        match r.i16()? {
            0 | 1 => Ok(RecordKey::Offset {
                group: r.string()?,
                topic: r.string()?,
                partition: r.i32()?,
            }),
            2 => Ok(RecordKey::Group { group: r.string()? }),
            v => Err(CodecError::UnknownKeyVersion(v)),
        }
    }
}

impl OffsetValue {
    /// Kafka's binary value: v3, or v1 when an expiry time is set.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(32 + self.metadata.len());
        match self.expire_timestamp {
            None => {
                out.extend_from_slice(&OFFSET_VALUE_VERSION.to_be_bytes());
                out.extend_from_slice(&self.offset.to_be_bytes());
                out.extend_from_slice(&self.leader_epoch.to_be_bytes());
                put_string(&mut out, Some(&self.metadata))?;
                out.extend_from_slice(&self.commit_timestamp.to_be_bytes());
            }
            Some(expire) => {
                out.extend_from_slice(&OFFSET_VALUE_VERSION_EXPIRING.to_be_bytes());
                out.extend_from_slice(&self.offset.to_be_bytes());
                put_string(&mut out, Some(&self.metadata))?;
                out.extend_from_slice(&self.commit_timestamp.to_be_bytes());
                out.extend_from_slice(&expire.to_be_bytes());
            }
        }
        Ok(out)
    }

    /// Parses a value of any version 0–3.
    pub fn decode(bytes: &[u8]) -> Result<OffsetValue, CodecError> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        if !(0..=3).contains(&version) {
            return Err(CodecError::UnknownValueVersion(version));
        }
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.nullable_string()?.unwrap_or_default();
        let commit_timestamp = r.i64()?;
        let expire_timestamp = if version == 1 { Some(r.i64()?) } else { None };
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
            expire_timestamp,
        })
    }
}

impl GroupValue {
    /// Kafka's binary value, v3, with an empty member array.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&GROUP_VALUE_VERSION.to_be_bytes());
        put_string(&mut out, Some(&self.protocol_type))?;
        out.extend_from_slice(&self.generation.to_be_bytes());
        put_string(&mut out, self.protocol.as_deref())?;
        put_string(&mut out, self.leader.as_deref())?;
        out.extend_from_slice(&self.state_timestamp.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // members
        Ok(out)
    }

    /// Parses a value of any version 0–3 (members are skipped: they are not restored).
    pub fn decode(bytes: &[u8]) -> Result<GroupValue, CodecError> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        if !(0..=3).contains(&version) {
            return Err(CodecError::UnknownValueVersion(version));
        }
        let protocol_type = r.string()?;
        let generation = r.i32()?;
        let protocol = r.nullable_string()?;
        let leader = r.nullable_string()?;
        let state_timestamp = if version >= 2 { r.i64()? } else { -1 };
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            state_timestamp,
        })
    }
}

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

fn put_uvarlong(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_uvarlong(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Size of a v2 batch header; the records follow it.
const HEADER: usize = BATCH_HEADER_BYTES;

/// Encodes `(key, value)` records as one uncompressed v2 batch at base offset 0 (the log
/// assigns real offsets), every record stamped `timestamp`.
pub fn encode_batch(records: &[(Vec<u8>, Option<Vec<u8>>)], timestamp: i64) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        records
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 16)
            .sum(),
    );
    let mut rec = Vec::new();
    for (delta, (key, value)) in records.iter().enumerate() {
        rec.clear();
        rec.push(0); // attributes
        put_varlong(&mut rec, 0); // timestamp delta
        put_varlong(&mut rec, delta as i64); // offset delta
        put_varlong(&mut rec, key.len() as i64);
        rec.extend_from_slice(key);
        match value {
            Some(v) => {
                put_varlong(&mut rec, v.len() as i64);
                rec.extend_from_slice(v);
            }
            None => put_varlong(&mut rec, -1),
        }
        put_varlong(&mut rec, 0); // headers
        put_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let count = records.len() as i32;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset
    out.extend_from_slice(&((HEADER - 12 + body.len()) as i32).to_be_bytes()); // batch length
    out.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    out.push(2); // magic
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
    out.extend_from_slice(&0i16.to_be_bytes()); // attributes: no compression, CreateTime
    out.extend_from_slice(&(count - 1).max(0).to_be_bytes()); // last offset delta
    out.extend_from_slice(&timestamp.to_be_bytes()); // base timestamp
    out.extend_from_slice(&timestamp.to_be_bytes()); // max timestamp
    out.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    out.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The records of one validated v2 batch (`bytes` is the whole batch, `header` its parsed
/// header). Control batches yield nothing.
pub fn decode_batch(bytes: &[u8], header: &BatchHeader) -> Result<Vec<StoredRecord>, CodecError> {
    if header.is_control() {
        return Ok(Vec::new());
    }
    let body = bytes
        .get(HEADER..header.size().min(bytes.len()))
        .ok_or(CodecError::Truncated)?;
    let plain;
    let records: &[u8] = match header.compression() {
        Compression::None => body,
        codec => {
            plain = decompress(codec, body, MAX_DECOMPRESSED)
                .map_err(|e| CodecError::Batch(e.to_string()))?;
            &plain
        }
    };
    let mut r = Reader::new(records);
    let mut out = Vec::new();
    // `record_count` is untrusted: never pre-allocate from it.
    for _ in 0..header.record_count.max(0) {
        let len = r.varint()?;
        let len = usize::try_from(len).map_err(|_| CodecError::BadLength(len.into()))?;
        let mut rec = Reader::new(r.take(len)?);
        rec.i8()?; // attributes
        rec.varlong()?; // timestamp delta
        let offset_delta = rec.varint()?;
        let key = rec.var_bytes()?;
        let value = rec.var_bytes()?;
        out.push(StoredRecord {
            offset: header.base_offset.saturating_add(i64::from(offset_delta)),
            key,
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use veritas_log::batch::validate_batch;

    #[test]
    fn keys_and_values_round_trip() {
        let k = RecordKey::Offset {
            group: "g".into(),
            topic: "payments".into(),
            partition: 7,
        };
        assert_eq!(RecordKey::decode(&k.encode().unwrap()), Ok(k));
        let k = RecordKey::Group { group: "g2".into() };
        assert_eq!(RecordKey::decode(&k.encode().unwrap()), Ok(k));
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp: 1_700_000_000_000,
            expire_timestamp: None,
        };
        assert_eq!(OffsetValue::decode(&v.encode().unwrap()), Ok(v.clone()));
        let v1 = OffsetValue {
            leader_epoch: -1,
            expire_timestamp: Some(1_700_000_100_000),
            ..v
        };
        assert_eq!(OffsetValue::decode(&v1.encode().unwrap()), Ok(v1));
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 9,
            protocol: Some("range".into()),
            leader: None,
            state_timestamp: 5,
        };
        assert_eq!(GroupValue::decode(&g.encode().unwrap()), Ok(g));
    }

    #[test]
    fn kafka_written_bytes_decode() {
        // OffsetCommitKey v1 and OffsetCommitValue v3 exactly as Kafka writes them.
        let key = [
            0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2, //
        ];
        assert_eq!(
            RecordKey::decode(&key),
            Ok(RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 2
            })
        );
        let mut value = vec![0, 3];
        value.extend_from_slice(&100i64.to_be_bytes());
        value.extend_from_slice(&(-1i32).to_be_bytes());
        value.extend_from_slice(&[0, 0]);
        value.extend_from_slice(&7i64.to_be_bytes());
        assert_eq!(
            OffsetValue::decode(&value),
            Ok(OffsetValue {
                offset: 100,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 7,
                expire_timestamp: None
            })
        );
        assert_eq!(
            RecordKey::decode(&[0, 5, 0, 0]),
            Err(CodecError::UnknownKeyVersion(5))
        );
    }

    #[test]
    fn batches_round_trip_through_the_log_validator() {
        let records = vec![
            (b"k1".to_vec(), Some(b"v1".to_vec())),
            (b"k2".to_vec(), None),
            (vec![0u8; 300], Some(vec![1u8; 1000])),
        ];
        let batch = encode_batch(&records, 1234);
        let header = validate_batch(&batch, usize::MAX).expect("valid v2 batch");
        assert_eq!(header.record_count, 3);
        let decoded = decode_batch(&batch, &header).unwrap();
        let back: Vec<_> = decoded
            .into_iter()
            .map(|r| (r.key.unwrap(), r.value))
            .collect();
        assert_eq!(back, records);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = RecordKey::decode(&bytes);
            let _ = OffsetValue::decode(&bytes);
            let _ = GroupValue::decode(&bytes);
        }

        #[test]
        fn offset_values_round_trip(offset in any::<i64>(), epoch in any::<i32>(),
                                    metadata in ".{0,40}", ts in any::<i64>()) {
            let v = OffsetValue { offset, leader_epoch: epoch, metadata, commit_timestamp: ts, expire_timestamp: None };
            prop_assert_eq!(OffsetValue::decode(&v.encode().unwrap()), Ok(v));
        }

        #[test]
        fn corrupted_batches_never_panic(flip in 61usize..200, byte in any::<u8>()) {
            let records = vec![(b"key".to_vec(), Some(vec![7u8; 120]))];
            let mut batch = encode_batch(&records, 1);
            if let Some(b) = batch.get_mut(flip) { *b = byte; }
            // Skip CRC validation on purpose: the decoder must cope with anything.
            if let Ok(header) = BatchHeader::parse(&batch) {
                let _ = decode_batch(&batch, &header);
            }
        }
    }
}
