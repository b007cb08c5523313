//! Crash recovery on real files: the log is dropped without `close` (as after `kill -9`),
//! its files are damaged the way a crash or a bad disk would, and it is reopened.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use veritas_log::batch::builder::{BatchBuilder, Record};
use veritas_log::batch::{validate_batch, BatchIter, HEADER_SIZE};
use veritas_log::{FlushPolicy, Log, LogConfig};

const T0: i64 = 1_700_000_000_000;

fn batch(i: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(T0 + i as i64);
    for j in 0..=(i % 4) {
        b.push(Record::new(
            Some(format!("k{i}-{j}").into_bytes()),
            Some(vec![i as u8; 40 + j]),
        ));
    }
    b.build()
}

fn cfg() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::manual(),
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn seg_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// Appends batches 0..n one per append; returns (base offset, size) of each.
fn fill(log: &Log, n: usize) -> Vec<(i64, usize)> {
    (0..n)
        .map(|i| {
            let b = batch(i);
            let info = log.append(&b, T0).unwrap();
            (info.base_offset, b.len())
        })
        .collect()
}

/// Reads the whole log, checking every batch, and returns the base offsets seen.
fn read_bases(log: &Log) -> Vec<i64> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1000).unwrap();
        assert!(!r.data.is_empty());
        for b in BatchIter::new(&r.data) {
            let b = b.expect("only valid batches are served");
            out.push(b.header.base_offset);
            offset = b.header.next_offset();
        }
    }
    out
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn acknowledged_appends_survive_a_process_crash() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg(), false, T0).unwrap();
    let batches = fill(&log, 40);
    drop(log); // no close, no flush: data only in the page cache
    let log = Log::open(dir.path(), cfg(), false, T0).unwrap();
    let last = batches.last().unwrap();
    assert_eq!(log.log_end_offset(), last.0 + (39 % 4) as i64 + 1);
    assert_eq!(
        read_bases(&log),
        batches.iter().map(|b| b.0).collect::<Vec<_>>()
    );
}

#[test]
fn garbage_after_the_tail_is_cut_off() {
    for garbage in [
        vec![0u8; 1],
        vec![0u8; 100],
        vec![0xff; 61],
        (0..5000).map(|i| (i * 7) as u8).collect(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), cfg(), false, T0).unwrap();
        let batches = fill(&log, 10);
        let end = log.log_end_offset();
        let size = log.size_bytes();
        drop(log);
        append_bytes(&seg_path(dir.path(), 0), &garbage);
        let log = Log::open(dir.path(), cfg(), false, T0).unwrap();
        assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
        assert_eq!(fs::metadata(seg_path(dir.path(), 0)).unwrap().len(), size);
        assert_eq!(read_bases(&log).len(), batches.len());
        // The log continues right after the last complete batch.
        assert_eq!(log.append(&batch(0), T0).unwrap().base_offset, end);
    }
}

#[test]
fn a_batch_cut_mid_write_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg(), false, T0).unwrap();
    let batches = fill(&log, 12);
    drop(log);
    let total: usize = batches.iter().map(|b| b.1).sum();
    let last = batches[11];
    // Cut inside the header, then inside the records, of the last batch.
    for keep in [
        total - last.1 + 5,
        total - last.1 + HEADER_SIZE + 3,
        total - 1,
    ] {
        let d2 = tempfile::tempdir().unwrap();
        for e in fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), d2.path().join(e.file_name())).unwrap();
        }
        let f = OpenOptions::new()
            .write(true)
            .open(seg_path(d2.path(), 0))
            .unwrap();
        f.set_len(keep as u64).unwrap();
        let log = Log::open(d2.path(), cfg(), false, T0).unwrap();
        assert_eq!(log.log_end_offset(), last.0, "cut at {keep}");
        assert_eq!(log.size_bytes() as usize, total - last.1);
        assert_eq!(read_bases(&log).len(), 11);
    }
}

#[test]
fn a_flipped_byte_in_the_unflushed_tail_truncates_at_that_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg(), false, T0).unwrap();
    let first = fill(&log, 5);
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), log.log_end_offset());
    let mut positions = Vec::new();
    let mut pos: usize = first.iter().map(|b| b.1).sum();
    for i in 5..15 {
        let b = batch(i);
        let info = log.append(&b, T0).unwrap();
        positions.push((pos, b.len(), info.base_offset));
        pos += b.len();
    }
    drop(log);
    // Flip one byte in the 8th unflushed batch (inside the CRC-covered part).
    let (at, len, base) = positions[7];
    let path = seg_path(dir.path(), 0);
    let mut bytes = fs::read(&path).unwrap();
    bytes[at + len - 3] ^= 0x10;
    fs::write(&path, &bytes).unwrap();
    let log = Log::open(dir.path(), cfg(), false, T0).unwrap();
    assert_eq!(log.log_end_offset(), base);
    assert_eq!(log.size_bytes() as usize, at);
    assert_eq!(read_bases(&log).len(), 12);
}

#[test]
fn corruption_in_an_earlier_segment_drops_later_segments_on_full_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1000,
        ..cfg()
    };
    let log = Log::open(dir.path(), config.clone(), false, T0).unwrap();
    fill(&log, 40);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4, "{bases:?}");
    drop(log);
    // No recovery point checkpoint (garbage) => every segment is validated.
    fs::write(dir.path().join("recovery-point"), b"not a number").unwrap();
    let victim = seg_path(dir.path(), bases[1]);
    let mut bytes = fs::read(&victim).unwrap();
    let first = validate_batch(&bytes, usize::MAX).unwrap();
    let at = first.size() + HEADER_SIZE + 1; // inside the second batch's records
    bytes[at] ^= 0xff;
    fs::write(&victim, &bytes).unwrap();
    let log = Log::open(dir.path(), config, false, T0).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![bases[0], bases[1]]);
    assert_eq!(log.log_end_offset(), first.next_offset());
    for b in &bases[2..] {
        assert!(!seg_path(dir.path(), *b).exists());
    }
    read_bases(&log);
}

#[test]
fn recovery_starts_at_the_recovery_point_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1000,
        ..cfg()
    };
    let log = Log::open(dir.path(), config.clone(), false, T0).unwrap();
    fill(&log, 30);
    log.flush().unwrap();
    let bases = log.segment_base_offsets();
    let end = log.log_end_offset();
    fill(&log, 3);
    drop(log);
    // Garbage at the end of the active segment is found even though the recovery point is
    // there: the segment holding it is always validated.
    append_bytes(&seg_path(dir.path(), *bases.last().unwrap()), &[1, 2, 3]);
    let log = Log::open(dir.path(), config, false, T0).unwrap();
    assert!(log.log_end_offset() > end);
    assert_eq!(&log.segment_base_offsets()[..bases.len()], &bases[..]);
}

#[test]
fn missing_or_corrupt_index_files_are_rebuilt() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 3000,
            ..cfg()
        };
        let log = Log::open(dir.path(), config.clone(), false, T0).unwrap();
        fill(&log, 60);
        let expected = read_bases(&log);
        let bases = log.segment_base_offsets();
        assert!(bases.len() >= 3);
        let ts_hit = log.offset_for_timestamp(T0 + 33).unwrap().unwrap();
        log.close().unwrap();
        let idx = |b: i64, ext: &str| dir.path().join(format!("{b:020}.{ext}"));
        assert!(fs::metadata(idx(bases[0], "index")).unwrap().len() > 0);
        fs::remove_file(idx(bases[0], "index")).unwrap();
        fs::write(idx(bases[1], "index"), [1u8, 2, 3]).unwrap(); // not a multiple of 8
        fs::write(idx(bases[1], "timeindex"), [0u8; 24]).unwrap(); // non-increasing
        let mut last = fs::read(idx(bases[2], "index")).unwrap();
        last.extend_from_slice(&[0, 0, 0, 1, 0x7f, 0, 0, 0]); // points past the end
        fs::write(idx(bases[2], "index"), &last).unwrap();
        let log = Log::open(dir.path(), config, clean, T0).unwrap();
        assert_eq!(read_bases(&log), expected, "clean={clean}");
        for o in [0, 17, 100, expected[expected.len() / 2]] {
            let r = log.read(o, 0).unwrap();
            let h = validate_batch(&r.data, usize::MAX).unwrap();
            assert!(h.base_offset <= o && o <= h.last_offset());
        }
        assert_eq!(log.offset_for_timestamp(T0 + 33).unwrap().unwrap(), ts_hit);
        // The rebuilt files are valid again.
        assert!(fs::metadata(idx(bases[0], "index")).unwrap().len() % 8 == 0);
        assert!(fs::metadata(idx(bases[1], "index")).unwrap().len() % 8 == 0);
    }
}

#[test]
fn a_torn_tail_is_recovered_even_when_told_the_shutdown_was_clean() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg(), false, T0).unwrap();
    fill(&log, 8);
    let end = log.log_end_offset();
    log.close().unwrap();
    append_bytes(&seg_path(dir.path(), 0), &batch(3)[..50]);
    let log = Log::open(dir.path(), cfg(), true, T0).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(read_bases(&log).len(), 8);
}

#[test]
fn leftover_files_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg(), false, T0).unwrap();
    fill(&log, 3);
    log.close().unwrap();
    let p = dir.path();
    fs::write(p.join("00000000000000000000.log.deleted"), b"old").unwrap();
    fs::write(p.join("00000000000000000100.index.deleted"), b"old").unwrap();
    fs::write(p.join("recovery-point.tmp"), b"half").unwrap();
    fs::write(p.join("00000000000000000777.index"), b"orphan!!").unwrap();
    fs::write(p.join("00000000000000000777.timeindex"), b"").unwrap();
    fs::write(p.join("log-start-offset"), b"\x00garbage").unwrap();
    let log = Log::open(p, cfg(), false, T0).unwrap();
    let mut names: Vec<_> = fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".deleted") && !n.ends_with(".tmp") && !n.contains("777")),
        "{names:?}"
    );
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(read_bases(&log).len(), 3);
}

#[test]
fn a_segment_that_does_not_continue_the_log_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg(), false, T0).unwrap();
    fill(&log, 3);
    let end = log.log_end_offset();
    log.close().unwrap();
    // A stray segment with a gap before it.
    fs::copy(seg_path(dir.path(), 0), seg_path(dir.path(), end + 10)).unwrap();
    let log = Log::open(dir.path(), cfg(), true, T0).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0]);
    assert_eq!(log.log_end_offset(), end);
    assert!(!seg_path(dir.path(), end + 10).exists());
}

#[test]
fn recovery_never_panics_on_random_segment_contents() {
    // Deterministic pseudo-random garbage of many sizes, with and without a valid prefix.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut prefix = Vec::new();
    let mut next_offset = 0i64;
    for i in 0..3 {
        let mut b = batch(i);
        b[..8].copy_from_slice(&next_offset.to_be_bytes());
        next_offset = validate_batch(&b, usize::MAX).unwrap().next_offset();
        prefix.extend_from_slice(&b);
    }
    for round in 0..40 {
        let len = (next() % 400) as usize;
        let mut bytes = if round % 2 == 0 {
            prefix.clone()
        } else {
            Vec::new()
        };
        bytes.extend((0..len).map(|_| next() as u8));
        veritas_log::fuzz_recover(&bytes);
    }
}
