//! Encoder of uncompressed v2 record batches and a decoder of their records, for tests
//! (available with the `test-util` cargo feature).
//!
//! The bytes are exactly what a Kafka producer (Java or librdkafka) puts on the wire for an
//! uncompressed batch: zig-zag varint framed records, CRC-32C over attributes..end,
//! `baseOffset` 0 and `partitionLeaderEpoch` -1 (the broker assigns both).

use super::*;

/// One record to put into a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Record key (`None` = null key).
    pub key: Option<Vec<u8>>,
    /// Record value (`None` = tombstone).
    pub value: Option<Vec<u8>>,
    /// Record headers, in order (`None` value = null header value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Create timestamp; `None` uses the builder's base timestamp.
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record with a key and a value, no headers, the batch's base timestamp.
    pub fn new(key: Option<Vec<u8>>, value: Option<Vec<u8>>) -> Record {
        Record {
            key,
            value,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the create timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Record {
        self.timestamp = Some(timestamp);
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: Option<Vec<u8>>) -> Record {
        self.headers.push((key.into(), value));
        self
    }
}

/// Builds one uncompressed v2 batch.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: i16,
    records: Vec<Record>,
}

impl BatchBuilder {
    /// A builder whose records default to `base_timestamp` (ms since the epoch).
    pub fn new(base_timestamp: i64) -> BatchBuilder {
        BatchBuilder {
            base_timestamp,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            attributes: 0,
            records: Vec::new(),
        }
    }

    /// Marks the batch as written by an idempotent producer.
    pub fn idempotent(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets the transactional attribute bit.
    pub fn transactional(mut self, yes: bool) -> Self {
        self.set_bit(ATTR_TRANSACTIONAL, yes);
        self
    }

    /// Sets the control attribute bit.
    pub fn control(mut self, yes: bool) -> Self {
        self.set_bit(ATTR_CONTROL, yes);
        self
    }

    fn set_bit(&mut self, bit: i16, yes: bool) {
        if yes {
            self.attributes |= bit;
        } else {
            self.attributes &= !bit;
        }
    }

    /// Adds a record.
    pub fn push(&mut self, record: Record) -> &mut Self {
        self.records.push(record);
        self
    }

    /// Adds a record (by value, for chaining).
    pub fn record(mut self, record: Record) -> Self {
        self.records.push(record);
        self
    }

    /// Number of records so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True if no record was added.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the batch. The base timestamp is the first record's timestamp (as the Java
    /// producer does) and `maxTimestamp` the largest one.
    pub fn build(&self) -> Vec<u8> {
        let first_ts = self
            .records
            .first()
            .and_then(|r| r.timestamp)
            .unwrap_or(self.base_timestamp);
        let mut max_ts = NO_TIMESTAMP;
        let mut out = vec![0u8; HEADER_SIZE];
        let mut body = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            let ts = r.timestamp.unwrap_or(self.base_timestamp);
            max_ts = max_ts.max(ts);
            body.clear();
            body.push(0); // record attributes
            put_varlong(&mut body, ts.wrapping_sub(first_ts));
            put_varint(&mut body, i as i32);
            put_bytes(&mut body, r.key.as_deref());
            put_bytes(&mut body, r.value.as_deref());
            put_varint(&mut body, r.headers.len() as i32);
            for (k, v) in &r.headers {
                put_bytes(&mut body, Some(k.as_bytes()));
                put_bytes(&mut body, v.as_deref());
            }
            put_varint(&mut out, body.len() as i32);
            out.extend_from_slice(&body);
        }
        let count = self.records.len() as i32;
        put_i64(&mut out, BASE_OFFSET_OFFSET, 0);
        let length = (out.len() - LOG_OVERHEAD) as i32;
        put_i32(&mut out, LENGTH_OFFSET, length);
        put_i32(&mut out, PARTITION_LEADER_EPOCH_OFFSET, -1);
        out[MAGIC_OFFSET] = MAGIC_V2 as u8;
        put_i16(&mut out, ATTRIBUTES_OFFSET, self.attributes);
        put_i32(&mut out, LAST_OFFSET_DELTA_OFFSET, count - 1);
        put_i64(&mut out, BASE_TIMESTAMP_OFFSET, first_ts);
        put_i64(&mut out, MAX_TIMESTAMP_OFFSET, max_ts);
        put_i64(&mut out, PRODUCER_ID_OFFSET, self.producer_id);
        put_i16(&mut out, PRODUCER_EPOCH_OFFSET, self.producer_epoch);
        put_i32(&mut out, BASE_SEQUENCE_OFFSET, self.base_sequence);
        put_i32(&mut out, RECORD_COUNT_OFFSET, count);
        let crc = compute_crc(&out);
        put_i32(&mut out, CRC_OFFSET, crc as i32);
        out
    }
}

/// A record decoded from an uncompressed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Absolute offset (`baseOffset + offsetDelta`).
    pub offset: i64,
    /// Timestamp as a consumer sees it (`maxTimestamp` for LogAppendTime batches).
    pub timestamp: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Decodes the records of one uncompressed batch (validated first). `None` if the batch is
/// invalid, compressed or its records are malformed.
pub fn decode_records(batch: &[u8]) -> Option<Vec<DecodedRecord>> {
    let h = validate_batch(batch, usize::MAX).ok()?;
    if h.compression() != Compression::None {
        return None;
    }
    let mut cur = batch.get(HEADER_SIZE..h.size())?;
    let mut out = Vec::new();
    for _ in 0..h.record_count {
        let len = usize::try_from(get_varint(&mut cur)?).ok()?;
        let mut rec = cur.get(..len)?;
        cur = cur.get(len..)?;
        let _attributes = take(&mut rec, 1)?;
        let ts_delta = get_varlong(&mut rec)?;
        let off_delta = get_varint(&mut rec)?;
        let key = get_bytes(&mut rec)?;
        let value = get_bytes(&mut rec)?;
        let n_headers = get_varint(&mut rec)?;
        let mut headers = Vec::new();
        for _ in 0..n_headers {
            let k = get_bytes(&mut rec)?.unwrap_or_default();
            let v = get_bytes(&mut rec)?;
            headers.push((String::from_utf8(k).ok()?, v));
        }
        if !rec.is_empty() {
            return None;
        }
        let timestamp = match h.timestamp_type() {
            TimestampType::LogAppendTime => h.max_timestamp,
            TimestampType::CreateTime => h.base_timestamp.wrapping_add(ts_delta),
        };
        out.push(DecodedRecord {
            offset: h.base_offset + i64::from(off_delta),
            timestamp,
            key,
            value,
            headers,
        });
    }
    cur.is_empty().then_some(out)
}

/// Appends a zig-zag varint.
pub fn put_varint(out: &mut Vec<u8>, v: i32) {
    let mut z = ((v << 1) ^ (v >> 31)) as u32;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Appends a zig-zag varlong.
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

fn take<'a>(cur: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let head = cur.get(..n)?;
    *cur = cur.get(n..)?;
    Some(head)
}

/// Reads a zig-zag varlong.
pub fn get_varlong(cur: &mut &[u8]) -> Option<i64> {
    let mut z: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *take(cur, 1)?.first()?;
        if shift == 63 && b > 1 {
            return None;
        }
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    None
}

/// Reads a zig-zag varint.
pub fn get_varint(cur: &mut &[u8]) -> Option<i32> {
    let mut z: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *take(cur, 1)?.first()?;
        if shift == 28 && b > 0x0f {
            return None;
        }
        z |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((z >> 1) as i32) ^ -((z & 1) as i32));
        }
    }
    None
}

fn get_bytes(cur: &mut &[u8]) -> Option<Option<Vec<u8>>> {
    let len = get_varint(cur)?;
    if len < 0 {
        return Some(None);
    }
    Some(Some(take(cur, len as usize)?.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_varint_encodings() {
        // Values from the Kafka protocol guide (zig-zag).
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for (v, enc) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, *v);
            assert_eq!(&out, enc, "{v}");
            let mut cur = &out[..];
            assert_eq!(get_varint(&mut cur), Some(*v));
        }
    }

    #[test]
    fn exact_bytes_of_a_single_record_batch() {
        // One record, key "k", value "v", no headers, timestamp 1000.
        let bytes = BatchBuilder::new(1000)
            .record(Record::new(Some(b"k".to_vec()), Some(b"v".to_vec())))
            .build();
        // record: len=9 -> 0x12? body = attr(1) tsDelta(1) offDelta(1) keyLen(1) k(1) valLen(1) v(1) hdrs(1) = 8
        let record = [0x10, 0x00, 0x00, 0x00, 0x02, b'k', 0x02, b'v', 0x00];
        assert_eq!(&bytes[HEADER_SIZE..], &record);
        assert_eq!(bytes.len(), HEADER_SIZE + record.len());
        let h = validate_batch(&bytes, usize::MAX).unwrap();
        assert_eq!(h.batch_length as usize, bytes.len() - LOG_OVERHEAD);
        assert_eq!(h.partition_leader_epoch, -1);
        assert_eq!((h.base_timestamp, h.max_timestamp), (1000, 1000));
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (-1, -1, -1)
        );
    }

    proptest! {
        #[test]
        fn varlong_round_trip(v in any::<i64>()) {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            let mut cur = &out[..];
            prop_assert_eq!(get_varlong(&mut cur), Some(v));
            prop_assert!(cur.is_empty());
        }

        #[test]
        fn batch_round_trip(
            recs in proptest::collection::vec(
                (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
                 proptest::collection::vec(("[a-z]{0,5}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8))), 0..3),
                 -1_000i64..1_000),
                1..20),
            pid in -1i64..3, seq in 0i32..100,
        ) {
            let base = 1_600_000_000_000i64;
            let mut b = BatchBuilder::new(base).idempotent(pid, 0, seq);
            for (k, v, h, dt) in &recs {
                let mut r = Record::new(k.clone(), v.clone()).with_timestamp(base + dt);
                for (hk, hv) in h {
                    r = r.with_header(hk.clone(), hv.clone());
                }
                b.push(r);
            }
            let bytes = b.build();
            let h = validate_batch(&bytes, usize::MAX).unwrap();
            prop_assert_eq!(h.record_count as usize, recs.len());
            prop_assert_eq!(h.max_timestamp, recs.iter().map(|r| base + r.3).max().unwrap());
            let decoded = decode_records(&bytes).unwrap();
            prop_assert_eq!(decoded.len(), recs.len());
            for (i, (d, (k, v, hs, dt))) in decoded.iter().zip(&recs).enumerate() {
                prop_assert_eq!(d.offset, i as i64);
                prop_assert_eq!(d.timestamp, base + dt);
                prop_assert_eq!(&d.key, k);
                prop_assert_eq!(&d.value, v);
                prop_assert_eq!(&d.headers, hs);
            }
        }
    }
}
