//! Fuzzing entry point: arbitrary bytes as a segment file, recovered as after a crash.

use std::fs;

use crate::batch::builder::{BatchBuilder, Record};
use crate::batch::BatchIter;
use crate::{Log, LogConfig};

/// Writes `bytes` as the only segment (base offset 0) of a fresh log directory, opens it as
/// after a crash and checks the recovery invariants, panicking on a violation (this is the
/// oracle of a fuzz target; `Log::open` itself never panics on file contents):
///
/// - recovery keeps exactly the longest prefix of valid batches with contiguous offsets
///   from 0 (what [`BatchIter`] accepts; the segment has no compaction marker, so no gaps and
///   no short batches), and the file is cut to it;
/// - reading from the log start to the log end returns exactly those bytes, batch by batch;
/// - the log accepts appends afterwards, and a clean reopen sees the same log.
pub fn fuzz_recover(bytes: &[u8]) {
    // A memory-backed directory where there is one: fsync is free there, so a fuzzer runs
    // thousands of iterations a second instead of tens.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir())
    } else {
        tempfile::tempdir()
    };
    let Ok(dir) = dir else {
        return;
    };
    let seg_path = dir.path().join("00000000000000000000.log");
    if fs::write(&seg_path, bytes).is_err() {
        return;
    }
    let config = LogConfig {
        index_interval_bytes: 128,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = match Log::open(dir.path(), config.clone(), false, 0) {
        Ok(log) => log,
        Err(e) => panic!("recovery failed on untrusted bytes: {e}"),
    };

    let mut expected_end = 0i64;
    let mut valid = 0usize;
    for b in BatchIter::new(bytes) {
        match b {
            Ok(b)
                if b.header.base_offset == expected_end
                    && b.header.last_offset() <= i64::from(u32::MAX) =>
            {
                expected_end = b.header.next_offset();
                valid += b.bytes.len();
            }
            _ => break,
        }
    }
    assert_eq!(log.log_end_offset(), expected_end, "log end after recovery");
    assert_eq!(log.size_bytes(), valid as u64, "bytes kept by recovery");
    let on_disk = fs::metadata(&seg_path).map(|m| m.len()).unwrap_or(u64::MAX);
    assert_eq!(
        on_disk, valid as u64,
        "segment file truncated to the valid prefix"
    );
    assert_eq!(
        read_all(&log),
        bytes.get(..valid).unwrap_or(&[]),
        "served bytes"
    );

    let batch = BatchBuilder::new(1)
        .record(Record::new(Some(b"k".to_vec()), Some(b"v".to_vec())))
        .build();
    let info = match log.append(&batch, 2) {
        Ok(info) => info,
        Err(e) => panic!("append after recovery failed: {e}"),
    };
    assert_eq!(info.base_offset, expected_end);
    let before = read_all(&log);
    if let Err(e) = log.close() {
        panic!("close failed: {e}");
    }
    let log = match Log::open(dir.path(), config, true, 3) {
        Ok(log) => log,
        Err(e) => panic!("clean reopen failed: {e}"),
    };
    assert_eq!(log.log_end_offset(), expected_end + 1);
    assert_eq!(read_all(&log), before, "clean reopen serves the same bytes");
}

/// Every batch from the log start to the log end, concatenated, checking each read.
fn read_all(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = match log.read(offset, 4096) {
            Ok(r) => r,
            Err(e) => panic!("read at {offset} failed: {e}"),
        };
        assert!(!r.data.is_empty(), "read at {offset} returned nothing");
        for b in BatchIter::new(&r.data) {
            let b = match b {
                Ok(b) => b,
                Err(e) => panic!("served an invalid batch: {e}"),
            };
            assert!(b.header.base_offset <= offset.max(b.header.base_offset));
            assert!(
                b.header.last_offset() >= offset,
                "batch before the requested offset"
            );
            out.extend_from_slice(b.bytes);
            offset = b.header.next_offset();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn valid_log_bytes(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut off = 0i64;
        for i in 0..n {
            let mut b = BatchBuilder::new(1000 + i as i64);
            for j in 0..=(i % 3) {
                b.push(Record::new(None, Some(vec![j as u8; 30])));
            }
            let mut bytes = b.build();
            bytes[..8].copy_from_slice(&off.to_be_bytes());
            off += (i % 3) as i64 + 1;
            out.extend_from_slice(&bytes);
        }
        out
    }

    #[test]
    fn fuzz_entry_accepts_edge_inputs() {
        fuzz_recover(&[]);
        fuzz_recover(&[0xff; 7]);
        fuzz_recover(&[0; 200]);
        let good = valid_log_bytes(10);
        fuzz_recover(&good);
        let mut torn = good.clone();
        torn.truncate(good.len() - 5);
        fuzz_recover(&torn);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn fuzz_entry_on_mutated_logs(
            n in 0usize..12,
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
            cut in any::<prop::sample::Index>(),
            garbage in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut bytes = valid_log_bytes(n);
            if !bytes.is_empty() {
                for (at, v) in &flips {
                    let i = at.index(bytes.len());
                    bytes[i] ^= v;
                }
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes.extend_from_slice(&garbage);
            fuzz_recover(&bytes);
        }
    }
}
