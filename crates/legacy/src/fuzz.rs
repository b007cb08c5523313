//! Entry points for cargo-fuzz targets (feature `fuzzing`), e.g.
//!
//! ```text
//! fuzz_target!(|data: &[u8]| veritas_legacy::fuzz::fuzz_message_set(data));
//! ```
//!
//! Each takes arbitrary bytes. The decoders they call never panic; the entries themselves
//! panic only when an invariant *between* this crate's functions breaks (a set that decodes but
//! does not convert, a conversion that loses a message), which is what a fuzzer is looking for.
//! Decompression is limited to 1 MiB per call so a fuzzer's memory stays small.

use bytes::Bytes;

use crate::{
    decode_message_set, fetch, from_v2_batches, list_offsets, offset_commit, offset_fetch, produce,
    to_v2_batch_with, DownConversion, Limits, Magic, SetSource, UpConversion,
};

const LIMITS: Limits = Limits {
    max_decompressed: 1 << 20,
};

/// Decodes `data` as a produced and as a fetched message set. When it decodes as produced, it
/// must decode the same as fetched, and up- then down-conversion must keep every message's key,
/// value and timestamp, with offsets renumbered from 0.
pub fn fuzz_message_set(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let fetched = decode_message_set(&bytes, SetSource::Fetch, &LIMITS);
    let Ok(set) = decode_message_set(&bytes, SetSource::Produce, &LIMITS) else {
        return;
    };
    assert_eq!(
        fetched.as_ref(),
        Ok(&set),
        "produce and fetch decoding disagree"
    );
    if set.messages.is_empty() {
        return;
    }
    let now = 1_600_000_000_000;
    let up = UpConversion {
        limits: LIMITS,
        ..UpConversion::default()
    };
    let batch = match to_v2_batch_with(&bytes, now, &up) {
        Ok(b) => b,
        Err(e) => panic!("a valid message set failed to up-convert: {e}"),
    };
    let down = DownConversion {
        limits: LIMITS,
        ..DownConversion::from_offset(0)
    };
    let back = from_v2_batches(&batch, Magic::V1, &down)
        .and_then(|set| decode_message_set(&set, SetSource::Fetch, &LIMITS));
    let back = match back {
        Ok(b) => b,
        Err(e) => panic!("an up-converted batch failed to down-convert: {e}"),
    };
    assert_eq!(back.messages.len(), set.messages.len(), "messages lost");
    for ((before, after), offset) in set.messages.iter().zip(&back.messages).zip(0i64..) {
        assert_eq!(after.offset, offset);
        assert_eq!(after.key, before.key);
        assert_eq!(after.value, before.value);
        let expected = match before.timestamp {
            None | Some(crate::message_set::NO_TIMESTAMP) => now,
            Some(ts) => ts,
        };
        assert_eq!(after.timestamp, Some(expected));
    }
}

/// Down-converts `data` as a fetched range of v2 batches to both magics. Whatever converts must
/// decode as a fetched message set with no partial message.
pub fn fuzz_v2_batches(data: &[u8]) {
    let down = DownConversion {
        limits: LIMITS,
        ..DownConversion::from_offset(i64::MIN)
    };
    for magic in [Magic::V0, Magic::V1] {
        if let Ok(set) = from_v2_batches(data, magic, &down) {
            match decode_message_set(&set, SetSource::Fetch, &LIMITS) {
                Ok(decoded) => assert_eq!(decoded.partial_tail, 0),
                Err(e) => panic!("down-converted output does not decode: {e}"),
            }
        }
    }
}

/// Decodes `data[1..]` as the request body selected by `data[0]` (API and version), and runs
/// the conversions that follow a successful decode.
pub fn fuzz_request(data: &[u8]) {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let body = Bytes::copy_from_slice(body);
    let version = i16::from(selector & 0x03);
    match selector >> 2 & 0x07 {
        0 => {
            if let Ok(mut req) = produce::decode_request(&body, version) {
                let up = UpConversion {
                    limits: LIMITS,
                    ..UpConversion::default()
                };
                let _rejected = produce::up_convert(&mut req, 0, &up);
            }
        }
        1 => {
            let _ = fetch::decode_request(&body, version);
        }
        2 => {
            if let Ok(req) = list_offsets::decode_request(&body) {
                let _ = req.to_v1();
            }
        }
        3 => {
            let _ = offset_commit::decode_request(&body, version);
        }
        _ => {
            let _ = offset_fetch::decode_request(&body, version);
        }
    }
}
