//! The compression codecs of Kafka's message sets and record batches, with bounded
//! decompression and the framing quirks old clients depend on.
//!
//! * **gzip**: an RFC 1952 stream (several members are accepted, as Java's `GZIPInputStream` does).
//! * **snappy**: either the xerial framing the Java client (and sarama, for reading) uses —
//!   `\x82SNAPPY\0`, two big-endian `i32` versions, then blocks of `i32` length + raw snappy —
//!   or one raw snappy block (librdkafka, sarama's writer). We write xerial, which every client
//!   reads.
//! * **lz4**: an LZ4 frame. Kafka's magic-v0 writers computed the frame descriptor's header
//!   checksum over the magic number too (KAFKA-3160); magic-v1 and v2 use the correct checksum.
//!   We accept both on input whatever the magic, and write the broken one for magic v0 (what
//!   0.8/0.9 clients verify; newer clients ignore the checksum for v0) and the correct one
//!   otherwise. Frames use independent 64 KiB blocks, as Kafka's own writer does.
//! * **zstd**: only in v2 batches (magic 0 and 1 cannot carry it).
//!
//! Every decompression draws on one budget shared by a whole decode call
//! ([`crate::Limits`]), so a message set of many small compression bombs is refused as surely
//! as one big one.

use std::io::{Read, Write};

use crate::LegacyError;

/// A compression codec, numbered as in the low three attribute bits of messages and batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4 frame.
    Lz4,
    /// Zstandard (v2 batches only).
    Zstd,
}

impl Compression {
    /// The codec numbered `bits` (already masked to the low three bits), if Kafka defines it.
    pub fn from_bits(bits: u8) -> Option<Compression> {
        match bits {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The attribute bits of this codec.
    pub fn bits(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name of the codec.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Which LZ4 frame-descriptor checksum to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lz4Checksum {
    /// The LZ4 frame specification's checksum (magic v1 and v2).
    Correct,
    /// Kafka's magic-v0 checksum, which also covers the frame's magic number (KAFKA-3160).
    KafkaV0,
}

/// Bytes that one decode call may still decompress.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: usize,
}

impl Budget {
    /// A budget of `limit` decompressed bytes.
    pub(crate) fn new(limit: usize) -> Budget {
        Budget { limit, used: 0 }
    }

    /// Decompresses `data`, charging the output to the budget.
    pub(crate) fn decompress(
        &mut self,
        codec: Compression,
        data: &[u8],
    ) -> Result<Vec<u8>, LegacyError> {
        let available = self.limit.saturating_sub(self.used);
        let out = decompress(codec, data, available).map_err(|e| match e {
            LegacyError::DecompressionLimit { .. } => {
                LegacyError::DecompressionLimit { limit: self.limit }
            }
            other => other,
        })?;
        self.used = self.used.saturating_add(out.len());
        Ok(out)
    }
}

/// Decompresses `data`, failing with [`LegacyError::DecompressionLimit`] rather than producing
/// more than `limit` bytes (the broker also uses it for v2 batches it has to recompress).
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, LegacyError> {
    match codec {
        Compression::None => {
            if data.len() > limit {
                return Err(LegacyError::DecompressionLimit { limit });
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), codec, limit),
        Compression::Snappy => snappy_decompress(data, limit),
        Compression::Lz4 => lz4_decompress(data, limit),
        Compression::Zstd => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| decompress_error(codec, e))?;
            // zstd's own default: frames asking for a window over 128 MiB are refused, so the
            // decoder's memory is bounded whatever the frame header claims.
            dec.window_log_max(27)
                .map_err(|e| decompress_error(codec, e))?;
            read_bounded(dec, codec, limit)
        }
    }
}

/// Compresses `data` with `codec`.
pub(crate) fn compress(
    codec: Compression,
    data: &[u8],
    lz4: Lz4Checksum,
) -> Result<Vec<u8>, LegacyError> {
    let fail = |e: std::io::Error| LegacyError::Compress {
        codec: codec.name(),
        reason: e.to_string(),
    };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).map_err(fail)?;
            enc.finish().map_err(fail)
        }
        Compression::Snappy => snappy_compress_xerial(data),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            enc.write_all(data).map_err(fail)?;
            let mut out = enc.finish().map_err(|e| LegacyError::Compress {
                codec: codec.name(),
                reason: e.to_string(),
            })?;
            if lz4 == Lz4Checksum::KafkaV0 {
                let header = lz4_header(&out)?;
                if let Some(hc) = out.get_mut(header.checksum_at) {
                    *hc = header.broken;
                }
            }
            Ok(out)
        }
        Compression::Zstd => zstd::bulk::compress(data, 3).map_err(fail),
    }
}

fn decompress_error(codec: Compression, e: impl std::fmt::Display) -> LegacyError {
    LegacyError::Decompress {
        codec: codec.name(),
        reason: e.to_string(),
    }
}

/// Reads `r` to its end, refusing to produce more than `limit` bytes.
fn read_bounded(r: impl Read, codec: Compression, limit: usize) -> Result<Vec<u8>, LegacyError> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    r.take(cap)
        .read_to_end(&mut out)
        .map_err(|e| decompress_error(codec, e))?;
    if out.len() > limit {
        return Err(LegacyError::DecompressionLimit { limit });
    }
    Ok(out)
}

/// The xerial snappy-java stream header: magic, then version 1 and minimum compatible version 1.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
/// The block size snappy-java uses by default.
const XERIAL_BLOCK: usize = 32 * 1024;

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, LegacyError> {
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        snappy_raw_block(data, &mut out, limit)?;
        return Ok(out);
    }
    let mut pos = XERIAL_HEADER_LEN;
    if data.len() < pos {
        return Err(decompress_error(
            Compression::Snappy,
            "truncated xerial header",
        ));
    }
    while pos < data.len() {
        let len_bytes: [u8; 4] = data
            .get(pos..pos.saturating_add(4))
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| decompress_error(Compression::Snappy, "truncated block length"))?;
        let len = usize::try_from(i32::from_be_bytes(len_bytes))
            .map_err(|_| decompress_error(Compression::Snappy, "negative block length"))?;
        pos += 4;
        let block = pos
            .checked_add(len)
            .and_then(|end| data.get(pos..end))
            .ok_or_else(|| decompress_error(Compression::Snappy, "truncated block"))?;
        snappy_raw_block(block, &mut out, limit)?;
        pos += len;
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its announced size before allocating.
fn snappy_raw_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), LegacyError> {
    let n =
        snap::raw::decompress_len(block).map_err(|e| decompress_error(Compression::Snappy, e))?;
    let end = out
        .len()
        .checked_add(n)
        .filter(|end| *end <= limit)
        .ok_or(LegacyError::DecompressionLimit { limit })?;
    let start = out.len();
    out.resize(end, 0);
    let dst = out
        .get_mut(start..end)
        .ok_or_else(|| decompress_error(Compression::Snappy, "buffer"))?;
    let written = snap::raw::Decoder::new()
        .decompress(block, dst)
        .map_err(|e| decompress_error(Compression::Snappy, e))?;
    out.truncate(start + written.min(n));
    Ok(())
}

fn snappy_compress_xerial(data: &[u8]) -> Result<Vec<u8>, LegacyError> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2 + 64);
    out.extend_from_slice(XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut enc = snap::raw::Encoder::new();
    for chunk in data.chunks(XERIAL_BLOCK) {
        let block = enc.compress_vec(chunk).map_err(|e| LegacyError::Compress {
            codec: "snappy",
            reason: e.to_string(),
        })?;
        let len = crate::wire::i32_len("snappy block", block.len())?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// LZ4 frame magic number (little-endian on the wire).
const LZ4_MAGIC: u32 = 0x184D_2204;

/// Where an LZ4 frame's header checksum is, and its two accepted values.
struct Lz4Header {
    /// Index of the header-checksum byte.
    checksum_at: usize,
    /// The checksum the LZ4 frame specification defines.
    correct: u8,
    /// Kafka's magic-v0 checksum (computed over the magic number too).
    broken: u8,
}

fn lz4_header(frame: &[u8]) -> Result<Lz4Header, LegacyError> {
    let err = |reason: &str| decompress_error(Compression::Lz4, reason);
    let magic: [u8; 4] = frame
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| err("truncated frame header"))?;
    if u32::from_le_bytes(magic) != LZ4_MAGIC {
        return Err(err("not an LZ4 frame"));
    }
    let flg = *frame.get(4).ok_or_else(|| err("truncated frame header"))?;
    let mut checksum_at = 6;
    if flg & 0x08 != 0 {
        checksum_at += 8; // content size
    }
    if flg & 0x01 != 0 {
        checksum_at += 4; // dictionary id
    }
    let descriptor = frame
        .get(4..checksum_at)
        .ok_or_else(|| err("truncated frame header"))?;
    let whole = frame
        .get(..checksum_at)
        .ok_or_else(|| err("truncated frame header"))?;
    let hc = |bytes: &[u8]| (twox_hash::XxHash32::oneshot(0, bytes) >> 8) as u8;
    Ok(Lz4Header {
        checksum_at,
        correct: hc(descriptor),
        broken: hc(whole),
    })
}

fn lz4_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, LegacyError> {
    let header = lz4_header(data)?;
    let stored = *data
        .get(header.checksum_at)
        .ok_or_else(|| decompress_error(Compression::Lz4, "truncated frame header"))?;
    if stored != header.correct && stored != header.broken {
        return Err(decompress_error(
            Compression::Lz4,
            "bad frame descriptor checksum",
        ));
    }
    let split = header.checksum_at + 1;
    let (head, rest) = data
        .split_at_checked(split)
        .ok_or_else(|| decompress_error(Compression::Lz4, "truncated frame header"))?;
    // Hand the decoder a header with the checksum it verifies, followed by the blocks untouched.
    let mut fixed = head.to_vec();
    if let Some(hc) = fixed.last_mut() {
        *hc = header.correct;
    }
    let reader = std::io::Cursor::new(fixed).chain(rest);
    read_bounded(
        lz4_flex::frame::FrameDecoder::new(reader),
        Compression::Lz4,
        limit,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"the quick brown fox jumps over the lazy dog, again and again and again";

    #[test]
    fn every_codec_round_trips() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for lz4 in [Lz4Checksum::Correct, Lz4Checksum::KafkaV0] {
                let c = compress(codec, SAMPLE, lz4).unwrap();
                assert_eq!(decompress(codec, &c, 1 << 20).unwrap(), SAMPLE, "{codec:?}");
                assert_eq!(
                    decompress(codec, &c, SAMPLE.len() - 1),
                    Err(LegacyError::DecompressionLimit {
                        limit: SAMPLE.len() - 1
                    }),
                    "{codec:?}"
                );
            }
        }
    }

    #[test]
    fn lz4_header_checksums_follow_kafka() {
        let correct = compress(Compression::Lz4, SAMPLE, Lz4Checksum::Correct).unwrap();
        let broken = compress(Compression::Lz4, SAMPLE, Lz4Checksum::KafkaV0).unwrap();
        // Kafka's writer: magic 04 22 4D 18, FLG 0x60 (version 1, independent blocks),
        // BD 0x40 (64 KiB blocks); the correct checksum of that descriptor is 0x82.
        assert_eq!(&correct[..7], &[0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, 0x82]);
        let expected_broken =
            (twox_hash::XxHash32::oneshot(0, &[0x04, 0x22, 0x4D, 0x18, 0x60, 0x40]) >> 8) as u8;
        assert_ne!(expected_broken, 0x82);
        assert_eq!(&broken[..6], &correct[..6]);
        assert_eq!(broken[6], expected_broken);
        assert_eq!(&broken[7..], &correct[7..]);
        // Any other checksum is corruption.
        let mut bad = correct.clone();
        bad[6] = bad[6].wrapping_add(1);
        if bad[6] == expected_broken {
            bad[6] = bad[6].wrapping_add(1);
        }
        assert!(matches!(
            decompress(Compression::Lz4, &bad, 1 << 20),
            Err(LegacyError::Decompress { codec: "lz4", .. })
        ));
    }

    #[test]
    fn snappy_reads_raw_and_xerial_and_writes_xerial() {
        let raw = snap::raw::Encoder::new().compress_vec(SAMPLE).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, 1 << 20).unwrap(),
            SAMPLE
        );
        let x = compress(Compression::Snappy, SAMPLE, Lz4Checksum::Correct).unwrap();
        assert_eq!(&x[..16], b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01");
        assert_eq!(&x[16..20], &(raw.len() as i32).to_be_bytes());
        assert_eq!(&x[20..], &raw[..]);
        // Several blocks, as snappy-java writes past 32 KiB.
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let x = compress(Compression::Snappy, &big, Lz4Checksum::Correct).unwrap();
        assert_eq!(decompress(Compression::Snappy, &x, 1 << 20).unwrap(), big);
        // A truncated block is an error, not a panic.
        assert!(decompress(Compression::Snappy, &x[..x.len() - 3], 1 << 20).is_err());
        assert!(decompress(Compression::Snappy, &x[..18], 1 << 20).is_err());
        assert!(decompress(Compression::Snappy, &x[..10], 1 << 20).is_err());
    }

    #[test]
    fn budget_is_shared_across_calls() {
        let c = compress(Compression::Gzip, &[0u8; 1000], Lz4Checksum::Correct).unwrap();
        let mut budget = Budget::new(2500);
        assert_eq!(
            budget.decompress(Compression::Gzip, &c).unwrap().len(),
            1000
        );
        assert_eq!(
            budget.decompress(Compression::Gzip, &c).unwrap().len(),
            1000
        );
        assert_eq!(
            budget.decompress(Compression::Gzip, &c),
            Err(LegacyError::DecompressionLimit { limit: 2500 })
        );
    }

    #[test]
    fn bombs_are_refused_without_inflating() {
        let zeros = vec![0u8; 8 << 20];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bomb = compress(codec, &zeros, Lz4Checksum::Correct).unwrap();
            assert!(bomb.len() < zeros.len() / 10, "{codec:?}");
            assert_eq!(
                decompress(codec, &bomb, 1 << 20),
                Err(LegacyError::DecompressionLimit { limit: 1 << 20 }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for data in [
                &b""[..],
                b"\x82SNAPPY\x00",
                b"\x04\x22\x4d\x18",
                b"garbage!",
            ] {
                assert!(
                    decompress(codec, data, 1 << 20).is_err(),
                    "{codec:?} {data:?}"
                );
            }
        }
    }
}
