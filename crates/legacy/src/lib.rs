//! Kafka's legacy message formats and request versions, as a pure library (no I/O, no async):
//! magic v0/v1 **message sets**, their conversion to and from the **v2 record batches** the
//! log stores, and the old versions of Produce, Fetch, ListOffsets, OffsetCommit and OffsetFetch
//! mapped onto the `kafka-protocol` structures the broker's handlers already use.
//!
//! Why: clients from before Kafka 0.11 — Go's sarama 1.22 with its default configuration
//! (Kafka 0.8.2 protocol), Kafka 0.8–0.10 Java clients, old librdkafka — speak Produce v0–v2 and
//! Fetch v0–v3 with message sets, ListOffsets v0, OffsetCommit v0–v1 and OffsetFetch v0, none
//! of which `kafka-protocol` decodes.
//!
//! # Formats
//!
//! * [`message_set`] — magic 0 and 1 messages: `offset i64 | size i32 | crc u32 | magic i8 |
//!   attributes i8 | [timestamp i64, v1] | key bytes | value bytes`, CRC-32 (IEEE) over magic
//!   to end; compressed messages are wrappers around one level of inner messages (absolute inner
//!   offsets in v0, relative in v1). Decoding checks every size, CRC, magic and codec, allows one
//!   level of nesting, and bounds decompression; a fetched set may end with a partial message
//!   (dropped), a produced one may not.
//! * [`Compression`] — gzip, snappy (xerial framing or raw), LZ4 frames (both Kafka's broken
//!   magic-v0 header checksum, KAFKA-3160, and the correct one; v0 output uses the broken one)
//!   and zstd (v2 batches only).
//! * v2 record batches — written and read internally (CRC-32C over attributes to end, varint
//!   records); see [`convert`].
//!
//! # Conversions
//!
//! * [`to_v2_batch`] — a produced message set becomes one v2 batch: keys and values kept, v1
//!   timestamps kept, v0 messages (which have none) stamped with the receive time, no producer
//!   id, base offset 0 (the log assigns offsets), uncompressed by default
//!   ([`UpCompression::Producer`] keeps the producer's codec).
//! * [`from_v2_batches`] — stored batches become a message set for an old fetcher: absolute
//!   offsets, keys, values and (v1) timestamps kept, headers dropped, control batches and
//!   records below the fetch offset skipped, compressed batches decompressed within a budget,
//!   uncompressed output by default ([`DownCompression::SameAsBatch`] writes Kafka-style
//!   wrappers instead), at most `max_bytes` but always at least one message.
//!
//! # Requests
//!
//! Each API module decodes request bodies (after the v1 request header) and encodes response
//! bodies (after the v0 response header; [`encode_response_frame`] writes the whole frame):
//!
//! | API | versions | request maps to | response from |
//! |---|---|---|---|
//! | [`produce`] | 0–2 | `ProduceRequest` (records: message sets; [`produce::up_convert`]) | `ProduceResponse` |
//! | [`fetch`] | 0–3 | `FetchRequest` | `FetchResponse` after [`fetch::down_convert`] |
//! | [`list_offsets`] | 0 | [`list_offsets::ListOffsetsV0Request`] → v1 `ListOffsetsRequest` | v1 `ListOffsetsResponse` → [`list_offsets::ListOffsetsV0Response`] |
//! | [`offset_commit`] | 0–1 | `OffsetCommitRequest` (+ v1 commit timestamps) | `OffsetCommitResponse` |
//! | [`offset_fetch`] | 0–1 | `OffsetFetchRequest` | `OffsetFetchResponse` |
//!
//! # Safety with untrusted bytes
//!
//! Nothing here panics on any input: every read is checked against what remains, lengths and
//! counts are never used to reserve memory, and all decompression in one call shares one
//! [`Limits::max_decompressed`] budget. The property tests feed random bytes to every decoder,
//! and the `fuzzing` feature exposes the `fuzz` module's entry points for cargo-fuzz.

#![warn(missing_docs)]

mod batch;
pub mod compression;
pub mod convert;
mod error;
pub mod fetch;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod list_offsets;
pub mod message_set;
pub mod offset_commit;
pub mod offset_fetch;
pub mod produce;
mod wire;

#[cfg(test)]
mod proptests;

use bytes::{BufMut, BytesMut};

pub use compression::Compression;
pub use convert::{
    from_v2_batches, to_v2_batch, to_v2_batch_with, DownCompression, DownConversion, UpCompression,
    UpConversion,
};
pub use error::LegacyError;
pub use message_set::{
    decode_message_set, encode_message_set, Magic, Message, MessageSet, SetSource, TimestampType,
};

/// Default decompression budget of one call: Kafka's default maximum batch is about 1 MiB and
/// compression rarely exceeds 10×, so 64 MiB is generous yet bounded.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;

/// Resource limits of one decode or conversion call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes all the compressed wrappers or batches of one call may decompress to,
    /// together.
    pub max_decompressed: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed: DEFAULT_MAX_DECOMPRESSED,
        }
    }
}

/// Appends a whole response frame to `out`: the `i32` size, response header v0 (the
/// correlation id, which is all these versions have), then the body `encode` writes. If
/// `encode` fails, `out` is left as it was.
pub fn encode_response_frame(
    out: &mut BytesMut,
    correlation_id: i32,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), LegacyError>,
) -> Result<(), LegacyError> {
    let start = out.len();
    out.put_i32(0);
    out.put_i32(correlation_id);
    let size = encode(out).and_then(|()| wire::i32_len("response", out.len() - start - 4));
    match size {
        Ok(size) => {
            if let Some(f) = out.get_mut(start..start + 4) {
                f.copy_from_slice(&size.to_be_bytes());
            }
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_frames_carry_size_and_correlation_id() {
        let mut out = BytesMut::from(&b"xx"[..]);
        encode_response_frame(&mut out, 7, |o| {
            o.put_slice(b"body");
            Ok(())
        })
        .unwrap();
        assert_eq!(&out[..], b"xx\0\0\0\x08\0\0\0\x07body");
        let err = encode_response_frame(&mut out, 8, |o| {
            o.put_slice(b"half");
            Err(LegacyError::EmptyMessageSet)
        });
        assert_eq!(err, Err(LegacyError::EmptyMessageSet));
        assert_eq!(out.len(), 2 + 12);
    }
}
