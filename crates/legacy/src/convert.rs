//! Conversion between legacy message sets and v2 record batches.
//!
//! **Up** (produce): an old client's message set becomes one v2 batch, the only format the log
//! stores. **Down** (fetch): stored v2 batches become a message set of the magic an old fetcher
//! understands, as Kafka 3.x brokers do for such clients.

use bytes::{Bytes, BytesMut};

use crate::batch::{encode_batch, next_batch, Batch, NewRecord};
use crate::compression::{Budget, Compression};
use crate::message_set::{
    decode_message_set, put_message, put_wrapper, timestamp_type_bits, Magic, Message, SetSource,
    TimestampType, LOG_OVERHEAD, NO_TIMESTAMP,
};
use crate::{LegacyError, Limits};

/// How the v2 batch of an up-conversion is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpCompression {
    /// Uncompressed (the default): the records are rewritten anyway, and not compressing them
    /// again keeps the produce path cheap; legacy producers send little data.
    #[default]
    None,
    /// The producer's codec (that of its first compressed wrapper), as Kafka does with
    /// `compression.type=producer`; uncompressed if the producer did not compress.
    Producer,
}

/// Options of [`to_v2_batch_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpConversion {
    /// How the batch is compressed.
    pub compression: UpCompression,
    /// Decompression limits for the message set.
    pub limits: Limits,
}

/// Converts a produced message set (magic 0 or 1, possibly compressed) into one uncompressed v2
/// record batch; see [`to_v2_batch_with`].
pub fn to_v2_batch(message_set: &Bytes, now_ms: i64) -> Result<Bytes, LegacyError> {
    to_v2_batch_with(message_set, now_ms, &UpConversion::default())
}

/// Converts a produced message set into one v2 record batch, validating it on the way.
///
/// * Every message becomes a record with the same key and value, in order; wrappers are
///   flattened. Offsets are not kept: the batch has base offset 0 and offset deltas 0, 1, …,
///   and the log assigns the real offsets.
/// * Timestamps: a v1 message keeps its own (a log-append-time wrapper's, if it has one). A v0
///   message has none, and neither has a v1 message stamped [`NO_TIMESTAMP`]: they get
///   `now_ms`, the time the broker received them, as Kafka does for a topic with
///   `message.timestamp.type=LogAppendTime`. The batch itself stays create-time, so every record
///   carries a real time that ListOffsets-by-time, retention and down-conversion can use, where
///   Kafka's create-time topics would store -1.
/// * No producer id, epoch or sequence (legacy producers are never idempotent), no partition
///   leader epoch, no headers.
/// * The CRC-32C is computed over the finished batch.
///
/// An empty set, a partial trailing message, or any invalid message is an error: a produce
/// request is never silently truncated.
pub fn to_v2_batch_with(
    message_set: &Bytes,
    now_ms: i64,
    options: &UpConversion,
) -> Result<Bytes, LegacyError> {
    let set = decode_message_set(message_set, SetSource::Produce, &options.limits)?;
    if set.messages.is_empty() {
        return Err(LegacyError::EmptyMessageSet);
    }
    let records: Vec<NewRecord<'_>> = set
        .messages
        .iter()
        .map(|m| NewRecord {
            timestamp: match m.timestamp {
                None | Some(NO_TIMESTAMP) => now_ms,
                Some(ts) => ts,
            },
            key: m.key.as_deref(),
            value: m.value.as_deref(),
        })
        .collect();
    let compression = match options.compression {
        UpCompression::None => Compression::None,
        UpCompression::Producer => set.compression,
    };
    encode_batch(&records, compression)
}

/// How down-converted records are packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DownCompression {
    /// Uncompressed messages (the default). Every legacy client reads them; it sidesteps the
    /// codec differences old clients have (LZ4's v0 header checksum, xerial vs raw snappy) and
    /// zstd, which magic 0 and 1 cannot carry; and it lets records below the fetch offset be
    /// dropped one by one. The cost is bytes on the wire, which for the embedded broker are on
    /// loopback.
    #[default]
    None,
    /// Like Kafka: a gzip, snappy or LZ4 batch becomes one compressed wrapper of the same codec;
    /// uncompressed and zstd batches become uncompressed messages.
    SameAsBatch,
}

/// Options of [`from_v2_batches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownConversion {
    /// Records below this offset are left out: the fetched range starts with the whole batch
    /// holding the fetch offset, and old clients would only skip them.
    pub first_offset: i64,
    /// Stop adding messages (or wrappers) once the next would take the output past this many
    /// bytes; the first one is always added whole, so a client always makes progress.
    pub max_bytes: usize,
    /// How records are packed.
    pub compression: DownCompression,
    /// Decompression limits for the batches.
    pub limits: Limits,
}

impl DownConversion {
    /// Everything from `first_offset` on, uncompressed, no byte limit, default decompression
    /// limits.
    pub fn from_offset(first_offset: i64) -> DownConversion {
        DownConversion {
            first_offset,
            max_bytes: usize::MAX,
            compression: DownCompression::None,
            limits: Limits::default(),
        }
    }
}

/// Converts a fetched range of v2 record batches into a message set of `magic`.
///
/// * Absolute offsets, keys and values are kept; v1 messages get each record's timestamp (the
///   batch's max timestamp and the log-append-time attribute for log-append-time batches).
///   Headers are dropped: magic 0 and 1 have none.
/// * Control batches (transaction markers) are skipped, and so are records below
///   [`DownConversion::first_offset`] (whole batches without decompressing them when they end
///   before it).
/// * A partial batch at the end of the range (a fetch cut short) is ignored; any invalid batch
///   (length, magic, CRC-32C, records) is an error.
/// * Compressed batches are decompressed within [`DownConversion::limits`] for the whole call.
///   If the limit is reached once some messages were produced, the output stops there (the
///   client fetches the rest next time); before any, it is an error.
pub fn from_v2_batches(
    batches: &[u8],
    magic: Magic,
    options: &DownConversion,
) -> Result<Bytes, LegacyError> {
    let mut out = BytesMut::new();
    let mut budget = Budget::new(options.limits.max_decompressed);
    let mut pos = 0;
    while let Some((batch, next)) = next_batch(batches, pos)? {
        pos = next;
        if batch.is_control() || batch.last_offset() < options.first_offset {
            continue;
        }
        let codec = batch.compression()?;
        let plain;
        let records: &[u8] = if codec == Compression::None {
            batch.records
        } else {
            match budget.decompress(codec, batch.records) {
                Ok(p) => {
                    plain = p;
                    &plain
                }
                Err(LegacyError::DecompressionLimit { .. }) if !out.is_empty() => break,
                Err(e) => return Err(e),
            }
        };
        let wrap = options.compression == DownCompression::SameAsBatch
            && matches!(
                codec,
                Compression::Gzip | Compression::Snappy | Compression::Lz4
            );
        let full = if wrap {
            put_batch_wrapped(&mut out, &batch, records, magic, codec, options)?
        } else {
            put_batch_messages(&mut out, &batch, records, magic, options)?
        };
        if full {
            break;
        }
    }
    Ok(out.freeze())
}

/// The timestamp and its type for a record of `batch` in a message of `magic`.
fn message_timestamp(batch: &Batch<'_>, timestamp: i64) -> (i64, TimestampType) {
    if batch.is_log_append_time() {
        (timestamp, TimestampType::LogAppendTime)
    } else {
        (timestamp, TimestampType::CreateTime)
    }
}

/// Appends the batch's records as uncompressed messages; `true` once `max_bytes` is reached.
fn put_batch_messages(
    out: &mut BytesMut,
    batch: &Batch<'_>,
    records: &[u8],
    magic: Magic,
    options: &DownConversion,
) -> Result<bool, LegacyError> {
    let mut full = false;
    batch.for_each_record(records, |r| {
        if r.offset < options.first_offset {
            return Ok(true);
        }
        let size = LOG_OVERHEAD
            + magic.min_message_size()
            + r.key.map_or(0, <[u8]>::len)
            + r.value.map_or(0, <[u8]>::len);
        if !out.is_empty() && out.len().saturating_add(size) > options.max_bytes {
            full = true;
            return Ok(false);
        }
        let (timestamp, tt) = message_timestamp(batch, r.timestamp);
        put_message(
            out,
            r.offset,
            magic,
            timestamp_type_bits(tt),
            timestamp,
            r.key,
            r.value,
        )?;
        Ok(true)
    })?;
    Ok(full)
}

/// Appends the batch's records as one compressed wrapper; `true` if it did not fit.
fn put_batch_wrapped(
    out: &mut BytesMut,
    batch: &Batch<'_>,
    records: &[u8],
    magic: Magic,
    codec: Compression,
    options: &DownConversion,
) -> Result<bool, LegacyError> {
    let mut messages = Vec::new();
    batch.for_each_record(records, |r| {
        if r.offset >= options.first_offset {
            let (timestamp, timestamp_type) = message_timestamp(batch, r.timestamp);
            messages.push(Message {
                offset: r.offset,
                timestamp: Some(timestamp),
                timestamp_type,
                key: r.key.map(Bytes::copy_from_slice),
                value: r.value.map(Bytes::copy_from_slice),
            });
        }
        Ok(true)
    })?;
    if messages.is_empty() {
        return Ok(false);
    }
    let mut wrapper = BytesMut::new();
    put_wrapper(&mut wrapper, &messages, magic, codec)?;
    if !out.is_empty() && out.len().saturating_add(wrapper.len()) > options.max_bytes {
        return Ok(true);
    }
    out.extend_from_slice(&wrapper);
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message_set::encode_message_set;

    fn m(
        offset: i64,
        ts: Option<i64>,
        key: Option<&'static [u8]>,
        value: &'static [u8],
    ) -> Message {
        Message {
            offset,
            timestamp: ts,
            timestamp_type: TimestampType::CreateTime,
            key: key.map(Bytes::from_static),
            value: Some(Bytes::from_static(value)),
        }
    }

    fn fetched(set: &Bytes) -> Vec<Message> {
        decode_message_set(set, SetSource::Fetch, &Limits::default())
            .unwrap()
            .messages
    }

    #[test]
    fn v0_messages_get_the_receive_time_and_v1_keep_theirs() {
        let v0 = encode_message_set(
            &[m(0, None, Some(b"k"), b"a"), m(0, None, None, b"b")],
            Magic::V0,
            Compression::None,
        )
        .unwrap();
        let batch = to_v2_batch(&v0, 1_700_000_000_000).unwrap();
        let back = from_v2_batches(&batch, Magic::V1, &DownConversion::from_offset(0)).unwrap();
        assert_eq!(
            fetched(&back),
            vec![
                m(0, Some(1_700_000_000_000), Some(b"k"), b"a"),
                m(1, Some(1_700_000_000_000), None, b"b")
            ]
        );

        let v1 = encode_message_set(
            &[
                m(0, Some(5), None, b"a"),
                m(1, Some(NO_TIMESTAMP), None, b"b"),
            ],
            Magic::V1,
            Compression::None,
        )
        .unwrap();
        let batch = to_v2_batch(&v1, 99).unwrap();
        let back = from_v2_batches(&batch, Magic::V1, &DownConversion::from_offset(0)).unwrap();
        assert_eq!(
            fetched(&back),
            vec![m(0, Some(5), None, b"a"), m(1, Some(99), None, b"b")]
        );
    }

    #[test]
    fn empty_and_truncated_produce_sets_are_refused() {
        assert_eq!(
            to_v2_batch(&Bytes::new(), 0),
            Err(LegacyError::EmptyMessageSet)
        );
        let set =
            encode_message_set(&[m(0, None, None, b"a")], Magic::V0, Compression::None).unwrap();
        assert_eq!(
            to_v2_batch(&set.slice(..set.len() - 1), 0),
            Err(LegacyError::PartialMessage { at: 0 })
        );
    }

    #[test]
    fn producer_codec_can_be_kept() {
        let set = encode_message_set(
            &[m(0, Some(1), None, b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")],
            Magic::V1,
            Compression::Snappy,
        )
        .unwrap();
        let keep = UpConversion {
            compression: UpCompression::Producer,
            ..UpConversion::default()
        };
        let batch = to_v2_batch_with(&set, 0, &keep).unwrap();
        assert_eq!(batch[22] & 0x07, 2);
        let plain = to_v2_batch(&set, 0).unwrap();
        assert_eq!(plain[22] & 0x07, 0);
        for b in [batch, plain] {
            let back = from_v2_batches(&b, Magic::V1, &DownConversion::from_offset(0)).unwrap();
            assert_eq!(
                fetched(&back),
                vec![m(0, Some(1), None, b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
            );
        }
    }

    /// Stored batches with absolute offsets: the first at 10, the second at 13.
    fn stored() -> Vec<u8> {
        let recs: Vec<NewRecord<'_>> = (0..3)
            .map(|i| NewRecord {
                timestamp: 100 + i,
                key: None,
                value: Some(b"x"),
            })
            .collect();
        let mut a = encode_batch(&recs, Compression::None).unwrap().to_vec();
        rebase(&mut a, 10);
        let mut b = encode_batch(&recs, Compression::Gzip).unwrap().to_vec();
        rebase(&mut b, 13);
        a.extend_from_slice(&b);
        a
    }

    /// Sets a batch's base offset (not covered by the CRC).
    fn rebase(batch: &mut [u8], base: i64) {
        batch[..8].copy_from_slice(&base.to_be_bytes());
    }

    #[test]
    fn records_before_the_fetch_offset_are_dropped() {
        let data = stored();
        for magic in [Magic::V0, Magic::V1] {
            let out = from_v2_batches(&data, magic, &DownConversion::from_offset(11)).unwrap();
            let offsets: Vec<i64> = fetched(&out).iter().map(|m| m.offset).collect();
            assert_eq!(offsets, vec![11, 12, 13, 14, 15]);
        }
        // A partial batch at the end is ignored.
        let out = from_v2_batches(
            &data[..data.len() - 5],
            Magic::V0,
            &DownConversion::from_offset(0),
        )
        .unwrap();
        assert_eq!(fetched(&out).len(), 3);
    }

    #[test]
    fn max_bytes_stops_between_messages_but_always_yields_one() {
        let data = stored();
        let one = LOG_OVERHEAD + Magic::V0.min_message_size() + 1;
        let opts = DownConversion {
            max_bytes: 2 * one + 1,
            ..DownConversion::from_offset(0)
        };
        let out = from_v2_batches(&data, Magic::V0, &opts).unwrap();
        assert_eq!(out.len(), 2 * one);
        let opts = DownConversion {
            max_bytes: 1,
            ..DownConversion::from_offset(0)
        };
        let out = from_v2_batches(&data, Magic::V0, &opts).unwrap();
        assert_eq!(fetched(&out).len(), 1);
    }

    #[test]
    fn same_as_batch_makes_wrappers_for_compressed_batches() {
        let data = stored();
        let opts = DownConversion {
            compression: DownCompression::SameAsBatch,
            ..DownConversion::from_offset(0)
        };
        for magic in [Magic::V0, Magic::V1] {
            let out = from_v2_batches(&data, magic, &opts).unwrap();
            let set = decode_message_set(&out, SetSource::Fetch, &Limits::default()).unwrap();
            assert_eq!(set.compression, Compression::Gzip);
            let offsets: Vec<i64> = set.messages.iter().map(|m| m.offset).collect();
            assert_eq!(offsets, vec![10, 11, 12, 13, 14, 15]);
        }
    }

    #[test]
    fn control_batches_are_skipped_and_log_append_time_is_marked() {
        let recs = [NewRecord {
            timestamp: 1,
            key: None,
            value: Some(b"v"),
        }];
        let mut control = encode_batch(&recs, Compression::None).unwrap().to_vec();
        control[22] |= 0x20;
        let crc = crc32c::crc32c(&control[21..]);
        control[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut append = encode_batch(&recs, Compression::None).unwrap().to_vec();
        rebase(&mut append, 1);
        append[22] |= 0x08;
        append[35..43].copy_from_slice(&777i64.to_be_bytes()); // max timestamp
        let crc = crc32c::crc32c(&append[21..]);
        append[17..21].copy_from_slice(&crc.to_be_bytes());
        control.extend_from_slice(&append);
        let out = from_v2_batches(&control, Magic::V1, &DownConversion::from_offset(0)).unwrap();
        assert_eq!(
            fetched(&out),
            vec![Message {
                offset: 1,
                timestamp: Some(777),
                timestamp_type: TimestampType::LogAppendTime,
                key: None,
                value: Some(Bytes::from_static(b"v"))
            }]
        );
    }

    #[test]
    fn decompression_limit_truncates_after_output_and_fails_before() {
        let recs: Vec<NewRecord<'_>> = (0..4)
            .map(|_| NewRecord {
                timestamp: 0,
                key: None,
                value: Some(&[7u8; 1000]),
            })
            .collect();
        let mut data = Vec::new();
        for base in [0i64, 4] {
            let mut b = encode_batch(&recs, Compression::Lz4).unwrap().to_vec();
            rebase(&mut b, base);
            data.extend_from_slice(&b);
        }
        let opts = DownConversion {
            limits: Limits {
                max_decompressed: 5000,
            },
            ..DownConversion::from_offset(0)
        };
        let out = from_v2_batches(&data, Magic::V0, &opts).unwrap();
        assert_eq!(fetched(&out).len(), 4);
        let opts = DownConversion {
            limits: Limits {
                max_decompressed: 100,
            },
            ..DownConversion::from_offset(0)
        };
        assert_eq!(
            from_v2_batches(&data, Magic::V0, &opts),
            Err(LegacyError::DecompressionLimit { limit: 100 })
        );
    }

    #[test]
    fn legacy_bytes_in_the_log_range_are_refused() {
        let set = encode_message_set(
            &[m(
                0,
                None,
                None,
                b"abcdefghijklmnopqrstuvwxyzabcdefghijklmnop",
            )],
            Magic::V1,
            Compression::None,
        )
        .unwrap();
        assert!(matches!(
            from_v2_batches(&set, Magic::V0, &DownConversion::from_offset(0)),
            Err(LegacyError::UnsupportedMagic { at: 0, magic: 1 })
        ));
    }
}
