//! Unit tests of [`Log`] on real files in temporary directories.

use super::*;
use crate::batch::builder::{decode_records, BatchBuilder, Record};
use crate::batch::{validate_batch, BatchIter, HEADER_SIZE};

const T0: i64 = 1_700_000_000_000;

/// A batch of `n` records with `value_len`-byte values, all stamped `ts`.
fn batch(n: usize, value_len: usize, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(ts);
    for i in 0..n {
        b.push(Record::new(
            Some(format!("key-{i}").into_bytes()),
            Some(vec![b'v'; value_len]),
        ));
    }
    b.build()
}

fn idem(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(T0).idempotent(pid, epoch, seq);
    for _ in 0..n {
        b.push(Record::new(None, Some(b"x".to_vec())));
    }
    b.build()
}

fn cfg() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::manual(),
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, false, T0).unwrap()
}

/// All batches from `offset` to the end, read with `max_bytes` per call.
fn read_all(log: &Log, mut offset: i64, max_bytes: usize) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    while offset < log.log_end_offset() {
        let r = log.read(offset, max_bytes).unwrap();
        assert!(!r.data.is_empty());
        for b in BatchIter::new(&r.data) {
            let b = b.unwrap();
            offset = b.header.next_offset();
            out.push(b.header);
        }
    }
    out
}

#[test]
fn empty_dir_becomes_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), cfg());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!((log.segment_count(), log.size_bytes()), (1, 0));
    assert_eq!(log.read(0, 100).unwrap().data.len(), 0);
    assert!(matches!(
        log.read(1, 100),
        Err(LogError::OffsetOutOfRange {
            offset: 1,
            log_start: 0,
            log_end: 0
        })
    ));
    assert_eq!(log.max_timestamp(), None);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert!(dir.path().join("00000000000000000000.log").exists());
}

#[test]
fn append_assigns_offsets_and_epoch_keeping_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            leader_epoch: 7,
            ..cfg()
        },
    );
    let a = batch(3, 10, T0);
    let b = batch(2, 10, T0 + 1);
    let mut both = a.clone();
    both.extend_from_slice(&b);
    let info = log.append(&both, T0).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.record_count),
        (0, 4, 5)
    );
    assert_eq!((info.log_append_time, info.duplicate), (-1, false));
    let info = log.append(&a, T0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (5, 7));
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(log.size_bytes(), (2 * a.len() + b.len()) as u64);

    let r = log.read(0, usize::MAX).unwrap();
    assert_eq!((r.log_start_offset, r.log_end_offset), (0, 8));
    let batches: Vec<_> = BatchIter::new(&r.data).map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 3);
    for (got, (orig, base)) in batches.iter().zip([(&a, 0), (&b, 3), (&a, 5)]) {
        assert_eq!(got.header.base_offset, base);
        assert_eq!(got.header.partition_leader_epoch, 7);
        // Everything from the magic byte on is untouched (CRC-covered bytes unchanged).
        assert_eq!(&got.bytes[16..], &orig[16..]);
    }
    let recs = decode_records(batches[1].bytes).unwrap();
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![3, 4]
    );
}

#[test]
fn append_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            max_batch_bytes: 500,
            ..cfg()
        },
    );
    let good = batch(1, 10, T0);
    let mut corrupt = batch(1, 10, T0);
    corrupt[HEADER_SIZE + 3] ^= 0xff;
    let mut req = good.clone();
    req.extend_from_slice(&corrupt);
    let err = log.append(&req, T0).unwrap_err();
    match err {
        LogError::CorruptMessage(e) => assert_eq!(e.position as usize, good.len()),
        other => panic!("unexpected {other:?}"),
    }
    let mut torn = good.clone();
    torn.extend_from_slice(&good[..good.len() - 1]);
    assert!(matches!(
        log.append(&torn, T0),
        Err(LogError::CorruptMessage(_))
    ));
    let mut req = good.clone();
    req.extend_from_slice(&batch(5, 100, T0));
    assert!(matches!(
        log.append(&req, T0),
        Err(LogError::RecordTooLarge { max: 500, .. })
    ));
    assert!(matches!(
        log.append(&[], T0),
        Err(LogError::InvalidRecord(_))
    ));
    let mut neg = BatchBuilder::new(-5);
    neg.push(Record::new(None, None));
    assert!(matches!(
        log.append(&neg.build(), T0),
        Err(LogError::InvalidTimestamp(_))
    ));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
    assert_eq!(
        fs::metadata(dir.path().join("00000000000000000000.log"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn read_from_mid_batch_returns_containing_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 100,
            ..cfg()
        },
    );
    for i in 0..50 {
        log.append(&batch(4, 30, T0 + i), T0).unwrap();
    }
    for offset in [0, 1, 3, 4, 77, 198, 199] {
        let r = log.read(offset, 1).unwrap();
        let b: Vec<_> = BatchIter::new(&r.data).map(|b| b.unwrap()).collect();
        assert_eq!(
            b.len(),
            1,
            "KIP-74: one whole batch even when max_bytes is tiny"
        );
        assert_eq!(b[0].header.base_offset, offset - offset % 4);
    }
    assert_eq!(log.read(200, 1).unwrap().data.len(), 0);
    assert!(log.read(201, 1).is_err());
    assert!(log.read(-1, 1).is_err());
}

#[test]
fn max_bytes_limits_to_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), cfg());
    let one = batch(2, 50, T0);
    for _ in 0..10 {
        log.append(&one, T0).unwrap();
    }
    let size = one.len();
    for (max, expect) in [
        (0, 1),
        (size - 1, 1),
        (size, 1),
        (size + 1, 1),
        (3 * size, 3),
        (3 * size + 5, 3),
        (1 << 20, 10),
    ] {
        let r = log.read(0, max).unwrap();
        assert_eq!(r.data.len(), expect * size, "max_bytes {max}");
        assert_eq!(
            BatchIter::new(&r.data).filter(|b| b.is_ok()).count(),
            expect
        );
    }
    assert_eq!(read_all(&log, 0, 2 * size).len(), 10);
}

#[test]
fn rolls_by_bytes_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(1, 100, T0);
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: (one.len() * 3) as u64,
            ..cfg()
        },
    );
    for _ in 0..10 {
        log.append(&one, T0).unwrap();
    }
    assert_eq!(log.segment_count(), 4);
    assert_eq!(log.segment_base_offsets(), vec![0, 3, 6, 9]);
    for base in [0, 3, 6, 9] {
        let stem = format!("{base:020}");
        for ext in ["log", "index", "timeindex"] {
            assert!(
                dir.path().join(format!("{stem}.{ext}")).exists(),
                "{stem}.{ext}"
            );
        }
    }
    // A read never spans segments.
    let r = log.read(2, usize::MAX).unwrap();
    assert_eq!(r.data.len(), one.len());
    assert_eq!(read_all(&log, 0, usize::MAX).len(), 10);
    // A batch bigger than a segment goes into a fresh segment whole.
    let big = batch(20, 100, T0);
    log.append(&big, T0).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 3, 6, 9, 10]);
    assert_eq!(log.read(10, 0).unwrap().data.len(), big.len());
}

#[test]
fn rolls_by_age_of_first_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_ms: 1000,
            ..cfg()
        },
    );
    log.append(&batch(1, 10, T0), T0).unwrap();
    log.append(&batch(1, 10, T0), T0 + 999).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&batch(1, 10, T0), T0 + 1000).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    log.append(&batch(1, 10, T0), T0 + 1999).unwrap();
    assert_eq!(log.segment_count(), 2);
    log.append(&batch(1, 10, T0), T0 + 2000).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 4]);
}

#[test]
fn segment_jitter_rolls_each_log_a_little_early() {
    // Ten logs created together with segment.ms = 10 s and up to 5 s of jitter: each rolls
    // once its first append is `10 s - jitter` old, the jitter fixed per log and segment, in
    // [0, 5 s), and the logs do not all share one.
    let config = LogConfig {
        segment_ms: 10_000,
        segment_jitter_ms: 5_000,
        ..cfg()
    };
    let mut roll_ages = Vec::new();
    for i in 0..10 {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join(format!("payments-{i}"));
        std::fs::create_dir(&dir).unwrap();
        let log = open(&dir, config.clone());
        log.append(&batch(1, 10, T0), T0).unwrap();
        // The first append time at which a second append lands in a new segment.
        let mut age = 0;
        while age <= 10_000 {
            log.append(&batch(1, 10, T0), T0 + age).unwrap();
            if log.segment_count() == 2 {
                break;
            }
            age += 100;
        }
        assert_eq!(log.segment_count(), 2, "log {i} rolled by age");
        assert!(
            (5_100..=10_000).contains(&age),
            "log {i} rolled at {age} ms"
        );
        roll_ages.push(age);
    }
    roll_ages.sort_unstable();
    roll_ages.dedup();
    assert!(
        roll_ages.len() >= 5,
        "jitter spreads the rolls: {roll_ages:?}"
    );

    // Without jitter (Kafka's default) the roll is at segment.ms exactly.
    let plain = LogConfig {
        segment_ms: 10_000,
        ..cfg()
    };
    assert_eq!(plain.roll_jitter_ms(42), 0);
    // The jitter never exceeds segment.ms, whatever segment.jitter.ms says.
    let wide = LogConfig {
        segment_ms: 1_000,
        segment_jitter_ms: i64::MAX,
        ..cfg()
    };
    assert!((0..1_000 * 1000).all(|salt| (0..1_000).contains(&wide.roll_jitter_ms(salt))));
}

#[test]
fn retention_by_time_rolls_expired_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(1, 100, T0);
    let config = LogConfig {
        segment_bytes: (one.len() * 2) as u64,
        retention_ms: 1000,
        ..cfg()
    };
    let log = open(dir.path(), config);
    for i in 0..6 {
        log.append(&batch(1, 100, T0 + i * 100), T0).unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 4]);
    // Segment 0 holds ts T0, T0+100; segment 2: +200, +300; segment 4: +400, +500.
    let out = log.enforce_retention(T0 + 1100).unwrap();
    assert_eq!(out.deleted_segments, 0);
    let out = log.enforce_retention(T0 + 1101).unwrap();
    assert_eq!((out.deleted_segments, out.log_start_offset), (1, 2));
    assert_eq!(out.deleted_bytes, (2 * one.len()) as u64);
    assert!(!dir.path().join("00000000000000000000.log").exists());
    assert!(matches!(
        log.read(1, 10),
        Err(LogError::OffsetOutOfRange { log_start: 2, .. })
    ));
    // Everything expired: the active segment is rolled, then all old ones go.
    let out = log.enforce_retention(T0 + 10_000).unwrap();
    assert_eq!(out.deleted_segments, 2);
    assert_eq!(log.segment_base_offsets(), vec![6]);
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (6, 6, 0)
    );
    assert_eq!(log.read(6, 10).unwrap().data.len(), 0);
    // Nothing left to delete; an empty active segment is never removed.
    assert_eq!(
        log.enforce_retention(T0 + 100_000)
            .unwrap()
            .deleted_segments,
        0
    );
    log.append(&one, T0).unwrap();
    assert_eq!(log.log_end_offset(), 7);
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".deleted"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    drop(log);
    assert_eq!(read_offset(dir.path(), LOG_START_OFFSET_FILE), Some(6));
}

#[test]
fn retention_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(1, 100, T0);
    let s = one.len() as u64;
    let config = LogConfig {
        segment_bytes: 2 * s,
        retention_bytes: (3 * s) as i64,
        retention_ms: -1,
        ..cfg()
    };
    let log = open(dir.path(), config.clone());
    for _ in 0..7 {
        log.append(&one, T0).unwrap();
    }
    // Segments of 2, 2, 2, 1 batches = 7s; keep deleting while size - seg >= 3s.
    let out = log.enforce_retention(T0).unwrap();
    assert_eq!(out.deleted_segments, 2);
    assert_eq!(log.size_bytes(), 3 * s);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(log.enforce_retention(T0).unwrap().deleted_segments, 0);
    // retention.bytes = 0 deletes everything, rolling the active segment first.
    log.set_config(LogConfig {
        retention_bytes: 0,
        ..config
    });
    log.enforce_retention(T0).unwrap();
    assert_eq!(
        (
            log.segment_count(),
            log.size_bytes(),
            log.log_start_offset()
        ),
        (1, 0, 7)
    );
}

#[test]
fn delete_records_before_moves_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(2, 100, T0);
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: (one.len() * 2) as u64,
            ..cfg()
        },
    );
    for _ in 0..5 {
        log.append(&one, T0).unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 8]);
    assert_eq!(log.delete_records_before(3).unwrap(), 3);
    assert_eq!(log.segment_count(), 3);
    // Reading at the new start returns the batch containing it.
    let r = log.read(3, 0).unwrap();
    assert_eq!(validate_batch(&r.data, usize::MAX).unwrap().base_offset, 2);
    assert!(log.read(1, 0).is_err());
    assert_eq!(log.delete_records_before(2).unwrap(), 3, "never moves back");
    assert_eq!(log.delete_records_before(9).unwrap(), 9);
    assert_eq!(log.segment_base_offsets(), vec![8]);
    assert!(log.delete_records_before(11).is_err());
    assert_eq!(log.delete_records_before(-1).unwrap(), 10);
    assert_eq!(
        log.segment_base_offsets(),
        vec![8],
        "the active segment stays"
    );
    log.close().unwrap();
    let log = Log::open(dir.path(), cfg(), true, T0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
}

#[test]
fn log_append_time_rewrites_timestamps_and_crc() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..cfg()
        },
    );
    let b = batch(3, 10, 1234);
    let info = log.append(&b, T0 + 5).unwrap();
    assert_eq!(info.log_append_time, T0 + 5);
    let r = log.read(0, usize::MAX).unwrap();
    let h = validate_batch(&r.data, usize::MAX).expect("CRC valid after rewrite");
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!((h.base_timestamp, h.max_timestamp), (T0 + 5, T0 + 5));
    assert_ne!(h.crc, validate_batch(&b, usize::MAX).unwrap().crc);
    // Records after the header are untouched; every record reads as the append time.
    assert_eq!(&r.data[HEADER_SIZE..], &b[HEADER_SIZE..]);
    let recs = decode_records(&r.data).unwrap();
    assert!(recs.iter().all(|r| r.timestamp == T0 + 5));
    assert_eq!(log.max_timestamp(), Some((T0 + 5, 2)));
}

#[test]
fn idempotent_duplicate_returns_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), cfg());
    log.append(&batch(2, 5, T0), T0).unwrap();
    let first = log.append(&idem(9, 0, 0, 3), T0).unwrap();
    assert_eq!(
        (first.base_offset, first.last_offset, first.duplicate),
        (2, 4, false)
    );
    log.append(&idem(9, 0, 3, 2), T0).unwrap();
    let end = log.log_end_offset();
    let size = log.size_bytes();
    let dup = log.append(&idem(9, 0, 0, 3), T0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(
        (dup.base_offset, dup.last_offset, dup.record_count),
        (2, 4, 3)
    );
    assert_eq!(
        (log.log_end_offset(), log.size_bytes()),
        (end, size),
        "nothing written"
    );
    let dup = log.append(&idem(9, 0, 3, 2), T0).unwrap();
    assert_eq!((dup.base_offset, dup.duplicate), (5, true));
    let snap = log.producer_state(9).unwrap();
    assert_eq!(
        (snap.producer_epoch, snap.last_sequence, snap.last_offset),
        (0, 4, 6)
    );
    assert_eq!(log.producer_state(10), None);
}

#[test]
fn idempotent_out_of_order_and_fencing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), cfg());
    // Unknown producers are accepted at any sequence.
    log.append(&idem(1, 3, 40, 2), T0).unwrap();
    assert!(matches!(
        log.append(&idem(1, 3, 43, 1), T0),
        Err(LogError::OutOfOrderSequence {
            producer_id: 1,
            expected: 42,
            found: 43,
            ..
        })
    ));
    assert!(matches!(
        log.append(&idem(1, 2, 42, 1), T0),
        Err(LogError::InvalidProducerEpoch {
            current: 3,
            found: 2,
            ..
        })
    ));
    assert!(matches!(
        log.append(&idem(1, 4, 5, 1), T0),
        Err(LogError::OutOfOrderSequence {
            expected: 0,
            found: 5,
            ..
        })
    ));
    log.append(&idem(1, 3, 42, 1), T0).unwrap();
    log.append(&idem(1, 4, 0, 1), T0).unwrap();
    assert!(matches!(
        log.append(&idem(1, 3, 43, 1), T0),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    // Two batches of one producer in one request are checked in order, all or nothing.
    let mut req = idem(1, 4, 1, 2);
    req.extend_from_slice(&idem(1, 4, 3, 1));
    assert_eq!(log.append(&req, T0).unwrap().record_count, 3);
    let mut req = idem(1, 4, 4, 1);
    req.extend_from_slice(&idem(1, 4, 9, 1));
    let end = log.log_end_offset();
    assert!(log.append(&req, T0).is_err());
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.producer_state(1).unwrap().last_sequence, 3);
    // Non-idempotent batches skip the checks entirely.
    log.append(&batch(1, 1, T0), T0).unwrap();
}

#[test]
fn producer_state_survives_clean_and_unclean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let one = idem(5, 1, 0, 2);
    let config = LogConfig {
        segment_bytes: (one.len() * 3) as u64,
        ..cfg()
    };
    let log = open(dir.path(), config.clone());
    for i in 0..10 {
        log.append(&idem(5, 1, i * 2, 2), T0).unwrap();
        log.append(&idem(6, 0, i, 1), T0).unwrap();
    }
    log.close().unwrap();
    let log = Log::open(dir.path(), config.clone(), true, T0).unwrap();
    assert_eq!(log.producer_state(5).unwrap().last_sequence, 19);
    assert_eq!(log.producer_state(6).unwrap().last_sequence, 9);
    let dup = log.append(&idem(5, 1, 18, 2), T0).unwrap();
    assert!(dup.duplicate);
    log.append(&idem(5, 1, 20, 2), T0).unwrap();
    // Crash: no close. Producer state comes from the roll-time snapshots plus replay.
    drop(log);
    let log = Log::open(dir.path(), config.clone(), false, T0).unwrap();
    let s = log.producer_state(5).unwrap();
    assert_eq!((s.last_sequence, s.producer_epoch), (21, 1));
    assert!(log.append(&idem(5, 1, 20, 2), T0).unwrap().duplicate);
    assert!(matches!(
        log.append(&idem(5, 1, 25, 1), T0),
        Err(LogError::OutOfOrderSequence { .. })
    ));
    // Without any snapshot the state is rebuilt from the segments alone.
    drop(log);
    for off in producer::list_snapshots(dir.path()) {
        fs::remove_file(producer::snapshot_path(dir.path(), off)).unwrap();
    }
    let log = Log::open(dir.path(), config, false, T0).unwrap();
    assert_eq!(log.producer_state(5).unwrap().last_sequence, 21);
    assert_eq!(log.producer_state(6).unwrap().last_sequence, 9);
}

#[test]
fn offset_for_timestamp_uses_time_index() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(2, 50, T0);
    let config = LogConfig {
        segment_bytes: (one.len() * 4) as u64,
        index_interval_bytes: 1,
        ..cfg()
    };
    let log = open(dir.path(), config);
    // Timestamps go up with a dip: 0, 10, 20, 15(dip), 30, ... in steps of 10 ms.
    let ts = [0, 10, 20, 15, 30, 40, 50, 45, 60, 70];
    for t in ts {
        log.append(&batch(2, 50, T0 + t), T0).unwrap();
    }
    let first_at_or_after = |target: i64| -> Option<i64> {
        let bytes = log.offset_for_timestamp(T0 + target).unwrap()?;
        let h = validate_batch(&bytes, usize::MAX).unwrap();
        assert_eq!(bytes.len(), h.size());
        assert!(h.max_timestamp >= T0 + target);
        Some(h.base_offset)
    };
    assert_eq!(first_at_or_after(-100), Some(0));
    assert_eq!(first_at_or_after(0), Some(0));
    assert_eq!(first_at_or_after(1), Some(2));
    assert_eq!(first_at_or_after(15), Some(4));
    assert_eq!(first_at_or_after(16), Some(4));
    assert_eq!(first_at_or_after(21), Some(8));
    assert_eq!(first_at_or_after(41), Some(12));
    assert_eq!(first_at_or_after(46), Some(12));
    assert_eq!(first_at_or_after(51), Some(16));
    assert_eq!(first_at_or_after(70), Some(18));
    assert_eq!(first_at_or_after(71), None);
    assert_eq!(log.max_timestamp(), Some((T0 + 70, 19)));
    // Below the log start offset nothing is returned.
    log.delete_records_before(10).unwrap();
    assert_eq!(first_at_or_after(0), Some(10));
}

#[test]
fn flush_policy() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            flush: FlushPolicy::every_append(),
            ..cfg()
        },
    );
    log.append(&batch(1, 10, T0), T0).unwrap();
    assert_eq!(log.recovery_point(), 1, "fsync'ed before append returned");
    assert!(!log.flush_needed());

    let log = Log::open(
        tempfile::tempdir().unwrap().path(),
        LogConfig {
            flush: FlushPolicy {
                interval_ms: Some(0),
                ..FlushPolicy::manual()
            },
            ..cfg()
        },
        false,
        T0,
    )
    .unwrap();
    assert!(!log.flush_needed(), "nothing unflushed");
    log.append(&batch(1, 10, T0), T0).unwrap();
    assert!(log.flush_needed());
    assert_eq!(log.recovery_point(), 0);
    log.flush().unwrap();
    assert!(!log.flush_needed());
    assert_eq!(log.recovery_point(), 1);

    let dir2 = tempfile::tempdir().unwrap();
    let b = batch(1, 100, T0);
    let log = open(
        dir2.path(),
        LogConfig {
            flush: FlushPolicy {
                every_bytes: Some(b.len() as u64 * 3),
                ..FlushPolicy::manual()
            },
            ..cfg()
        },
    );
    log.append(&b, T0).unwrap();
    log.append(&b, T0).unwrap();
    assert_eq!(log.recovery_point(), 0);
    log.append(&b, T0).unwrap();
    assert_eq!(log.recovery_point(), 3);
    let log2 = open(
        tempfile::tempdir().unwrap().path(),
        LogConfig {
            flush: FlushPolicy::manual(),
            ..cfg()
        },
    );
    log2.append(&b, T0).unwrap();
    assert!(!log2.flush_needed());

    // flush.messages = 5: an fsync once five records are unflushed.
    let log3 = open(
        tempfile::tempdir().unwrap().path(),
        LogConfig {
            flush: FlushPolicy {
                every_messages: Some(5),
                ..FlushPolicy::manual()
            },
            ..cfg()
        },
    );
    log3.append(&batch(2, 10, T0), T0).unwrap();
    log3.append(&batch(2, 10, T0), T0).unwrap();
    assert_eq!(log3.recovery_point(), 0, "four records unflushed");
    log3.append(&batch(2, 10, T0), T0).unwrap();
    assert_eq!(log3.recovery_point(), 6, "the fifth record made it fsync");
    log3.append(&batch(1, 10, T0), T0).unwrap();
    assert_eq!(
        log3.recovery_point(),
        6,
        "the count starts again after a flush"
    );
}

#[test]
fn recovery_point_checkpoint_follows_segments() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(1, 100, T0);
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: (one.len() * 2) as u64,
            ..cfg()
        },
    );
    assert_eq!(read_offset(dir.path(), RECOVERY_POINT_FILE), Some(0));
    for _ in 0..5 {
        log.append(&one, T0).unwrap();
    }
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), 5);
    assert_eq!(read_offset(dir.path(), RECOVERY_POINT_FILE), Some(5));
    // Index files of inactive segments were written and synced by the flush.
    assert!(
        fs::metadata(dir.path().join("00000000000000000000.timeindex"))
            .unwrap()
            .len()
            > 0
    );
}

#[test]
fn reads_run_concurrently_with_appends() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(3, 40, T0);
    let log = Arc::new(open(
        dir.path(),
        LogConfig {
            segment_bytes: (one.len() * 7) as u64,
            index_interval_bytes: 200,
            ..cfg()
        },
    ));
    let total = 300i64;
    let writer = {
        let log = Arc::clone(&log);
        let one = one.clone();
        std::thread::spawn(move || {
            for _ in 0..total {
                log.append(&one, T0).unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut offset = 0;
                let mut seen = 0;
                while offset < total * 3 {
                    let r = log.read(offset, 1000).unwrap();
                    for b in BatchIter::new(&r.data) {
                        let b = b.expect("readers never see partial or corrupt batches");
                        assert_eq!(b.header.base_offset, offset);
                        assert!(b.header.base_offset < r.log_end_offset);
                        offset = b.header.next_offset();
                        seen += 1;
                    }
                    if r.data.is_empty() {
                        std::thread::yield_now();
                    }
                }
                seen
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        assert_eq!(r.join().unwrap(), total);
    }
}

#[test]
fn set_config_applies_to_later_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), cfg());
    log.append(&batch(1, 10, T0), T0).unwrap();
    log.set_config(LogConfig {
        leader_epoch: 3,
        timestamp_type: TimestampType::LogAppendTime,
        ..cfg()
    });
    log.append(&batch(1, 10, T0), T0 + 9).unwrap();
    let r = log.read(1, 0).unwrap();
    let h = validate_batch(&r.data, usize::MAX).unwrap();
    assert_eq!((h.partition_leader_epoch, h.max_timestamp), (3, T0 + 9));
    assert_eq!(log.config().leader_epoch, 3);
}

#[test]
fn delete_removes_directory() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("topic-0");
    let log = open(&dir, cfg());
    log.append(&batch(1, 10, T0), T0).unwrap();
    log.delete().unwrap();
    assert!(!dir.exists());
}

#[test]
fn log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
}

#[test]
fn flush_after_roll_syncs_index_files_of_flushed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(1, 100, T0);
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: (one.len() * 2) as u64,
            index_interval_bytes: 1,
            ..cfg()
        },
    );
    log.append(&one, T0).unwrap();
    log.append(&one, T0).unwrap();
    log.flush().unwrap();
    // The roll writes the (already flushed) segment's indexes; the next flush must sync them
    // even though no new data needs syncing.
    log.append(&one, T0).unwrap();
    let first = Arc::clone(&log.snapshot()[0]);
    assert!(first.index_unsynced());
    log.flush().unwrap();
    assert!(!first.index_unsynced());
}
