//! Decoding hostile bytes never allocates unboundedly: a counting allocator measures the peak
//! heap use of each decode on the calling thread, which must stay within a bound proportional
//! to the input and the decompression limit, whatever lengths, counts or compression ratios
//! the input claims. (Counters are per thread, so tests running in parallel do not disturb
//! each other.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use veritas_legacy::{
    decode_message_set, fetch, from_v2_batches, list_offsets, offset_commit, offset_fetch, produce,
    to_v2_batch_with, DownConversion, LegacyError, Limits, Magic, SetSource, UpConversion,
};

struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get().wrapping_add(delta);
        c.set(now);
        let _ = PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now);
            }
        });
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// bookkeeping only touches const-initialised thread-locals without destructors, which never
// allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result and the peak bytes it had allocated at once on this thread.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get) - base;
    (r, usize::try_from(peak).unwrap_or(0))
}

const LIMIT: usize = 1 << 20;

/// The bound: a constant (codec state: LZ4 buffers of up to two 4 MiB blocks), a small multiple
/// of the input (zero-copy slices plus per-message bookkeeping), and a small multiple of the
/// decompression limit (growth of the decompressed buffer and its messages).
fn bound(input: usize) -> usize {
    (16 << 20) + 16 * input + 8 * LIMIT
}

fn limits() -> Limits {
    Limits {
        max_decompressed: LIMIT,
    }
}

/// Every decoder over `data`, each measured; returns the largest peak.
fn worst_peak(data: &[u8]) -> usize {
    let bytes = Bytes::copy_from_slice(data);
    let mut worst = 0;
    let mut measure = |f: &dyn Fn()| {
        let ((), peak) = peak_of(f);
        worst = worst.max(peak);
    };
    measure(&|| {
        let _ = decode_message_set(&bytes, SetSource::Fetch, &limits());
    });
    measure(&|| {
        let _ = decode_message_set(&bytes, SetSource::Produce, &limits());
    });
    measure(&|| {
        let up = UpConversion {
            limits: limits(),
            ..UpConversion::default()
        };
        let _ = to_v2_batch_with(&bytes, 0, &up);
    });
    measure(&|| {
        let down = DownConversion {
            limits: limits(),
            ..DownConversion::from_offset(0)
        };
        let _ = from_v2_batches(&bytes, Magic::V1, &down);
    });
    measure(&|| {
        for v in 0..=3 {
            let _ = produce::decode_request(&bytes, v);
            let _ = fetch::decode_request(&bytes, v);
            let _ = offset_commit::decode_request(&bytes, v);
            let _ = offset_fetch::decode_request(&bytes, v);
        }
        let _ = list_offsets::decode_request(&bytes);
    });
    worst
}

/// A message (magic 0) with the given attributes and value, CRC correct.
fn message(attributes: u8, value: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8, attributes];
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&(value.len() as i32).to_be_bytes());
    body.extend_from_slice(value);
    let mut m = Vec::new();
    m.extend_from_slice(&0i64.to_be_bytes());
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    m.extend_from_slice(&body);
    m
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn the_counter_sees_allocations() {
    let (v, peak) = peak_of(|| vec![1u8; 10 << 20]);
    assert_eq!(v.len(), 10 << 20);
    assert!(peak >= 10 << 20, "peak {peak}");
    let ((), peak) = peak_of(|| ());
    assert_eq!(peak, 0);
}

#[test]
fn many_small_gzip_bombs_share_one_budget() {
    // 64 wrappers, each 4 MiB of zeros compressed to ~4 KiB: 256 MiB if all inflated.
    let bomb = message(1, &gzip(&vec![0u8; 4 << 20]));
    let set: Vec<u8> = std::iter::repeat_n(bomb, 64).flatten().collect();
    let bytes = Bytes::from(set);
    let (result, peak) = peak_of(|| decode_message_set(&bytes, SetSource::Produce, &limits()));
    assert_eq!(
        result,
        Err(LegacyError::DecompressionLimit { limit: LIMIT })
    );
    eprintln!(
        "64 gzip bombs, {} input bytes: peak {peak} bytes",
        bytes.len()
    );
    assert!(peak <= bound(bytes.len()), "peak {peak}");
    assert!(worst_peak(&bytes) <= bound(bytes.len()));
}

#[test]
fn a_snappy_block_claiming_4_gib_is_refused_before_allocating() {
    // Raw snappy: a varint uncompressed length of 0xFFFFFFFF, then garbage.
    let value = [0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0];
    let set = Bytes::from(message(2, &value));
    let (result, peak) = peak_of(|| decode_message_set(&set, SetSource::Produce, &limits()));
    assert_eq!(
        result,
        Err(LegacyError::DecompressionLimit { limit: LIMIT })
    );
    assert!(peak < 64 * 1024, "peak {peak}");
}

#[test]
fn huge_claimed_sizes_and_counts_allocate_nothing_large() {
    // A message claiming i32::MAX bytes; a produce request claiming 2^31-1 topics; a v2 batch
    // claiming 2^31-1 records.
    let mut claims = Vec::new();
    claims.extend_from_slice(&0i64.to_be_bytes());
    claims.extend_from_slice(&i32::MAX.to_be_bytes());
    claims.extend_from_slice(&[0; 20]);
    let mut request = BytesMut::new();
    request.put_i16(1);
    request.put_i32(1000);
    request.put_i32(i32::MAX);
    request.put_slice(&[0; 16]);
    let mut batch = vec![0u8; 70];
    batch[8..12].copy_from_slice(&58i32.to_be_bytes());
    batch[16] = 2;
    batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    for input in [claims, request.to_vec(), batch] {
        let peak = worst_peak(&input);
        assert!(peak < 64 * 1024, "peak {peak} for {input:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn random_bytes_stay_within_the_bound(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let peak = worst_peak(&data);
        prop_assert!(peak <= bound(data.len()), "peak {}", peak);
    }

    /// Random bytes behind valid message headers with each codec, so decompressors see them.
    #[test]
    fn random_compressed_values_stay_within_the_bound(
        codec in 1u8..4,
        value in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let set = message(codec, &value);
        let peak = worst_peak(&set);
        prop_assert!(peak <= bound(set.len()), "peak {}", peak);
    }
}
