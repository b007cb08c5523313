//! Property tests: round trips, conversion equivalence (checked against `kafka-protocol`'s
//! independent v2 encoder and decoder), and arbitrary bytes through every decoder.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KpCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType as KpTimestampType,
};
use proptest::prelude::*;

use crate::fuzz::{fuzz_message_set, fuzz_request, fuzz_v2_batches};
use crate::message_set::NO_TIMESTAMP;
use crate::{
    decode_message_set, encode_message_set, from_v2_batches, to_v2_batch, to_v2_batch_with,
    Compression, DownCompression, DownConversion, Limits, Magic, Message, SetSource, TimestampType,
    UpCompression, UpConversion,
};

const LEGACY_CODECS: [Compression; 4] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
];

fn blob(max: usize) -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::weighted(0.85, proptest::collection::vec(any::<u8>(), 0..max))
        .prop_map(|o| o.map(Bytes::from))
}

/// Messages of `magic` with increasing offsets from a random base, v1 timestamps anywhere in
/// `i64` (including -1 and negative ones).
fn messages(magic: Magic) -> impl Strategy<Value = Vec<Message>> {
    (
        0i64..(1 << 40),
        proptest::collection::vec((1i64..4, any::<i64>(), blob(40), blob(200)), 1..20),
    )
        .prop_map(move |(base, parts)| {
            let mut offset = base;
            parts
                .into_iter()
                .map(|(step, ts, key, value)| {
                    offset += step;
                    Message {
                        offset,
                        timestamp: (magic == Magic::V1).then_some(ts),
                        timestamp_type: TimestampType::CreateTime,
                        key,
                        value,
                    }
                })
                .collect()
        })
}

fn magic() -> impl Strategy<Value = Magic> {
    prop_oneof![Just(Magic::V0), Just(Magic::V1)]
}

fn codec() -> impl Strategy<Value = Compression> {
    proptest::sample::select(LEGACY_CODECS.to_vec())
}

fn magic_and_messages() -> impl Strategy<Value = (Magic, Vec<Message>)> {
    magic().prop_flat_map(|m| (Just(m), messages(m)))
}

/// Decodes a v2 batch with `kafka-protocol`, which verifies the CRC-32C itself.
fn kp_records(batch: &Bytes) -> Vec<Record> {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    assert!(buf.is_empty());
    set.records
}

fn fetched(set: &Bytes) -> Vec<Message> {
    let decoded = decode_message_set(set, SetSource::Fetch, &Limits::default()).unwrap();
    assert_eq!(decoded.partial_tail, 0);
    decoded.messages
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// encode → decode is the identity, uncompressed or wrapped with any legacy codec.
    #[test]
    fn message_sets_round_trip((magic, msgs) in magic_and_messages(), codec in codec()) {
        let set = encode_message_set(&msgs, magic, codec).unwrap();
        let decoded = decode_message_set(&set, SetSource::Produce, &Limits::default()).unwrap();
        prop_assert_eq!(&decoded.messages, &msgs);
        prop_assert_eq!(decoded.compression, codec);
        prop_assert_eq!(decoded.partial_tail, 0);
    }

    /// Several wrappers (and plain messages) in one set keep their order and offsets.
    #[test]
    fn mixed_sets_round_trip(
        (magic, a) in magic_and_messages(),
        codec_a in codec(),
        codec_b in codec(),
    ) {
        let split = a.len() / 2;
        let (first, second) = a.split_at(split);
        let mut set = BytesMut::new();
        if !first.is_empty() {
            set.extend_from_slice(&encode_message_set(first, magic, codec_a).unwrap());
        }
        set.extend_from_slice(&encode_message_set(second, magic, codec_b).unwrap());
        let decoded = decode_message_set(&set.freeze(), SetSource::Produce, &Limits::default())
            .unwrap();
        prop_assert_eq!(decoded.messages, a);
    }

    /// Any prefix of a fetched set decodes to a prefix of its messages.
    #[test]
    fn truncated_fetches_yield_whole_messages(
        (magic, msgs) in magic_and_messages(),
        codec in codec(),
        cut in any::<proptest::sample::Index>(),
    ) {
        let set = encode_message_set(&msgs, magic, Compression::None).unwrap();
        let cut = cut.index(set.len() + 1);
        let decoded = decode_message_set(&set.slice(..cut), SetSource::Fetch, &Limits::default())
            .unwrap();
        prop_assert!(decoded.messages.len() <= msgs.len());
        prop_assert_eq!(&decoded.messages[..], &msgs[..decoded.messages.len()]);
        if codec != Compression::None {
            // One wrapper: all of it or nothing.
            let wrapped = encode_message_set(&msgs, magic, codec).unwrap();
            let cut = cut.min(wrapped.len());
            let decoded =
                decode_message_set(&wrapped.slice(..cut), SetSource::Fetch, &Limits::default())
                    .unwrap();
            let expected = if cut == wrapped.len() { msgs.len() } else { 0 };
            prop_assert_eq!(decoded.messages.len(), expected);
        }
    }

    /// v0/v1 → v2 → v0/v1: keys, values, offsets (as assigned by the log) and, for v1,
    /// timestamps survive; the v2 batch is valid for an independent decoder.
    #[test]
    fn up_then_down_conversion_is_equivalent(
        (magic, msgs) in magic_and_messages(),
        codec in codec(),
        keep_codec in any::<bool>(),
        to in magic(),
        log_base in 0i64..(1 << 50),
        now in 0i64..(1 << 42),
    ) {
        let set = encode_message_set(&msgs, magic, codec).unwrap();
        let options = UpConversion {
            compression: if keep_codec { UpCompression::Producer } else { UpCompression::None },
            ..UpConversion::default()
        };
        let batch = to_v2_batch_with(&set, now, &options).unwrap();
        let expected_ts = |m: &Message| match m.timestamp {
            None | Some(NO_TIMESTAMP) => now,
            Some(ts) => ts,
        };

        // Independent check of the batch: CRC-32C, codec, records. (`kafka-protocol` adds
        // timestamp deltas with overflow checks, so extreme timestamp pairs, which we encode
        // with Kafka's wrapping arithmetic, are left to our own decoder below.)
        let first_ts = msgs.first().map(expected_ts).unwrap_or_default();
        let deltas_fit = msgs.iter().all(|m| expected_ts(m).checked_sub(first_ts).is_some());
        let records = if deltas_fit { kp_records(&batch) } else { Vec::new() };
        prop_assert_eq!(records.len(), if deltas_fit { msgs.len() } else { 0 });
        for (i, (r, m)) in records.iter().zip(&msgs).enumerate() {
            prop_assert_eq!(r.offset, i as i64);
            prop_assert_eq!(&r.key, &m.key);
            prop_assert_eq!(&r.value, &m.value);
            prop_assert_eq!(r.timestamp, expected_ts(m));
            prop_assert_eq!(r.producer_id, -1);
            prop_assert_eq!(r.timestamp_type, KpTimestampType::Creation);
            prop_assert!(r.headers.is_empty());
        }
        let expected_codec = if keep_codec { codec } else { Compression::None };
        prop_assert_eq!(batch[22] & 0x07, expected_codec.bits());

        // The log assigns offsets by rewriting the base offset (outside the CRC).
        let mut stored = batch.to_vec();
        stored[..8].copy_from_slice(&log_base.to_be_bytes());
        let down = from_v2_batches(&stored, to, &DownConversion::from_offset(0)).unwrap();
        let back = fetched(&down);
        prop_assert_eq!(back.len(), msgs.len());
        for (i, (b, m)) in back.iter().zip(&msgs).enumerate() {
            prop_assert_eq!(b.offset, log_base + i as i64);
            prop_assert_eq!(&b.key, &m.key);
            prop_assert_eq!(&b.value, &m.value);
            match to {
                Magic::V0 => prop_assert_eq!(b.timestamp, None),
                Magic::V1 => prop_assert_eq!(b.timestamp, Some(expected_ts(m))),
            }
        }
    }

    /// An uncompressed set at offsets 0.. with real timestamps comes back byte for byte.
    #[test]
    fn up_then_down_is_byte_identical_for_plain_sets((magic, msgs) in magic_and_messages()) {
        let msgs: Vec<Message> = msgs
            .into_iter()
            .zip(0i64..)
            .map(|(m, offset)| Message {
                offset,
                timestamp: m.timestamp.map(|ts| if ts == NO_TIMESTAMP { 0 } else { ts }),
                ..m
            })
            .collect();
        let set = encode_message_set(&msgs, magic, Compression::None).unwrap();
        let batch = to_v2_batch(&set, 5).unwrap();
        let down = from_v2_batches(&batch, magic, &DownConversion::from_offset(0)).unwrap();
        prop_assert_eq!(down, set);
    }

    /// Batches written by `kafka-protocol` (with headers, every codec including zstd) convert
    /// down with absolute offsets, keys, values and timestamps, headers dropped, and records
    /// before the fetch offset left out; Kafka-style wrappers say the same.
    #[test]
    fn foreign_batches_convert_down(
        recs in proptest::collection::vec((blob(30), blob(100), 0i64..(1 << 41), any::<bool>()), 1..25),
        base in 0i64..(1 << 40),
        skip in 0usize..30,
        codec in prop_oneof![
            Just(KpCompression::None),
            Just(KpCompression::Gzip),
            Just(KpCompression::Snappy),
            Just(KpCompression::Lz4),
            Just(KpCompression::Zstd),
        ],
        to in magic(),
        wrap in any::<bool>(),
    ) {
        let records: Vec<Record> = recs
            .iter()
            .enumerate()
            .map(|(i, (key, value, ts, header))| {
                let mut headers = IndexMap::new();
                if *header {
                    headers.insert(StrBytes::from_static_str("h"), Some(Bytes::from_static(b"v")));
                }
                Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 0,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: KpTimestampType::Creation,
                    offset: base + i as i64,
                    sequence: -1,
                    timestamp: *ts,
                    key: key.clone(),
                    value: value.clone(),
                    headers,
                }
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions { version: 2, compression: codec },
        )
        .unwrap();
        let first_offset = base + skip as i64;
        let options = DownConversion {
            compression: if wrap { DownCompression::SameAsBatch } else { DownCompression::None },
            ..DownConversion::from_offset(first_offset)
        };
        let down = from_v2_batches(&buf, to, &options).unwrap();
        let back = fetched(&down);
        let expected: Vec<&Record> = records.iter().filter(|r| r.offset >= first_offset).collect();
        prop_assert_eq!(back.len(), expected.len());
        for (b, r) in back.iter().zip(expected) {
            prop_assert_eq!(b.offset, r.offset);
            prop_assert_eq!(&b.key, &r.key);
            prop_assert_eq!(&b.value, &r.value);
            match to {
                Magic::V0 => prop_assert_eq!(b.timestamp, None),
                Magic::V1 => prop_assert_eq!(b.timestamp, Some(r.timestamp)),
            }
        }
    }

    /// The fuzz entries' invariants hold for valid sets (where they do real work)…
    #[test]
    fn fuzz_invariants_hold_on_valid_sets((magic, msgs) in magic_and_messages(), codec in codec()) {
        let set = encode_message_set(&msgs, magic, codec).unwrap();
        fuzz_message_set(&set);
        let batch = to_v2_batch(&set, 7).unwrap();
        fuzz_v2_batches(&batch);
    }

    /// …and for valid sets with a few bytes flipped (mostly CRC failures, sometimes deeper).
    #[test]
    fn corrupted_sets_never_panic(
        (magic, msgs) in magic_and_messages(),
        codec in codec(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut set = encode_message_set(&msgs, magic, codec).unwrap().to_vec();
        for (at, byte) in &flips {
            let i = at.index(set.len());
            set[i] ^= byte | 1;
        }
        fuzz_message_set(&set);
        fuzz_v2_batches(&set);
        let batch = to_v2_batch(&encode_message_set(&msgs, magic, codec).unwrap(), 7).unwrap();
        let mut batch = batch.to_vec();
        for (at, byte) in &flips {
            let i = at.index(batch.len());
            batch[i] ^= byte | 1;
        }
        fuzz_v2_batches(&batch);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes through every decoder: errors, never panics.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzz_message_set(&data);
        fuzz_v2_batches(&data);
        for selector in 0..32u8 {
            let mut req = vec![selector];
            req.extend_from_slice(&data);
            fuzz_request(&req);
        }
    }

    /// Arbitrary bytes behind a valid-looking message header, so the fuzzing reaches attribute,
    /// codec and key/value parsing rather than stopping at the CRC.
    #[test]
    fn arbitrary_message_bodies_never_panic(
        magic in 0i8..3,
        attributes in any::<u8>(),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut body = vec![magic as u8, attributes];
        body.extend_from_slice(&tail);
        let mut set = Vec::new();
        set.extend_from_slice(&0i64.to_be_bytes());
        set.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        set.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        set.extend_from_slice(&body);
        fuzz_message_set(&set);
    }
}
