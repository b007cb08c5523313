//! Model-based property test: random sequences of appends, reads, reopens (clean and after a
//! crash), tail cuts, DeleteRecords and size retention, checked against a plain in-memory
//! model (a list of batches with their offsets).

use std::fs::OpenOptions;

use proptest::prelude::*;
use veritas_log::batch::builder::{BatchBuilder, Record};
use veritas_log::batch::{validate_batch, BatchIter};
use veritas_log::{FlushPolicy, Log, LogConfig, LogError};

const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// One append of several batches: (records, value length) per batch.
    Append(Vec<(usize, usize)>),
    /// Read at a fraction of [log_start, log_end] with a byte limit.
    Read(prop::sample::Index, usize),
    Reopen {
        clean: bool,
    },
    /// Crash, then cut the active segment file at a fraction of its length.
    CrashAndCut(prop::sample::Index),
    /// DeleteRecords at a fraction of [log_start, log_end].
    DeleteBefore(prop::sample::Index),
    /// retention.bytes = this many bytes, then enforce retention.
    RetainBytes(u16),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec((1usize..5, 0usize..80), 1..4).prop_map(Op::Append),
        4 => (any::<prop::sample::Index>(), 0usize..600).prop_map(|(i, m)| Op::Read(i, m)),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => any::<prop::sample::Index>().prop_map(Op::CrashAndCut),
        1 => any::<prop::sample::Index>().prop_map(Op::DeleteBefore),
        1 => (0u16..3000).prop_map(Op::RetainBytes),
        1 => Just(Op::Flush),
    ]
}

/// The model: batches as stored (offsets assigned), the log start, the next offset.
#[derive(Debug, Default)]
struct Model {
    batches: Vec<(i64, Vec<u8>)>,
    start: i64,
    end: i64,
}

impl Model {
    fn size(&self) -> u64 {
        self.batches.iter().map(|b| b.1.len() as u64).sum()
    }

    /// Index of the batch containing `offset`.
    fn containing(&self, offset: i64) -> Option<usize> {
        self.batches.iter().position(|(base, b)| {
            let h = validate_batch(b, usize::MAX).unwrap();
            *base <= offset && offset <= h.last_offset()
        })
    }

    /// Drops batches of deleted segments (those below `first_base`).
    fn drop_below(&mut self, first_base: i64) {
        self.batches.retain(|(base, _)| *base >= first_base);
    }
}

fn stamp(bytes: &mut [u8], base: i64) {
    bytes[..8].copy_from_slice(&base.to_be_bytes());
    bytes[12..16].copy_from_slice(&0i32.to_be_bytes());
}

fn config(segment_bytes: u64, retention_bytes: i64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 150,
        retention_ms: -1,
        retention_bytes,
        flush: FlushPolicy::manual(),
        ..LogConfig::default()
    }
}

fn check(log: &Log, model: &Model) {
    assert_eq!(log.log_end_offset(), model.end);
    assert_eq!(log.log_start_offset(), model.start);
    assert_eq!(log.size_bytes(), model.size());
    // Read everything from the start: exactly the model's batches from the one holding start.
    let mut got = Vec::new();
    let mut offset = model.start;
    while offset < model.end {
        let r = log.read(offset, 300).unwrap();
        assert!(!r.data.is_empty());
        for b in BatchIter::new(&r.data) {
            let b = b.unwrap();
            got.push((b.header.base_offset, b.bytes.to_vec()));
            offset = b.header.next_offset();
        }
    }
    let from = model.containing(model.start).unwrap_or(model.batches.len());
    assert_eq!(got, model.batches[from..].to_vec());
}

fn run(ops: Vec<Op>, segment_bytes: u64) {
    // Memory-backed where possible: this test is about logic, and fsync on a real disk
    // would make each case take a second (tests/crash.rs exercises the disk).
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let mut cfg = config(segment_bytes, -1);
    let mut log = Log::open(dir.path(), cfg.clone(), false, T0).unwrap();
    let mut model = Model::default();
    let mut counter = 0i64;
    for op in ops {
        match op {
            Op::Append(spec) => {
                let mut req = Vec::new();
                let mut expected = Vec::new();
                let mut next = model.end;
                for (n, vlen) in spec {
                    counter += 1;
                    let mut b = BatchBuilder::new(T0 + counter);
                    for i in 0..n {
                        b.push(Record::new(
                            Some(counter.to_be_bytes().to_vec()),
                            Some(vec![i as u8; vlen]),
                        ));
                    }
                    let bytes = b.build();
                    req.extend_from_slice(&bytes);
                    let mut stored = bytes;
                    stamp(&mut stored, next);
                    expected.push((next, stored));
                    next += n as i64;
                }
                let info = log.append(&req, T0).unwrap();
                assert_eq!((info.base_offset, info.last_offset), (model.end, next - 1));
                model.batches.extend(expected);
                model.end = next;
            }
            Op::Read(at, max) => {
                let span = (model.end - model.start + 1) as usize;
                let offset = model.start + at.index(span) as i64;
                let r = log.read(offset, max).unwrap();
                if offset == model.end {
                    assert!(r.data.is_empty());
                } else {
                    let i = model.containing(offset).unwrap();
                    // Reads stop at the end of the segment holding the first batch.
                    let seg_end = log
                        .segment_base_offsets()
                        .into_iter()
                        .find(|b| *b > model.batches[i].0)
                        .unwrap_or(i64::MAX);
                    let mut expect = Vec::new();
                    for (base, b) in &model.batches[i..] {
                        if *base >= seg_end || (!expect.is_empty() && expect.len() + b.len() > max)
                        {
                            break;
                        }
                        expect.extend_from_slice(b);
                    }
                    assert_eq!(r.data.to_vec(), expect, "read at {offset} max {max}");
                }
                assert!(matches!(
                    log.read(model.end + 1, max),
                    Err(LogError::OffsetOutOfRange { .. })
                ));
                if model.start > 0 {
                    assert!(log.read(model.start - 1, max).is_err());
                }
            }
            Op::Reopen { clean } => {
                if clean {
                    log.close().unwrap();
                } else {
                    drop(log);
                }
                log = Log::open(dir.path(), cfg.clone(), clean, T0).unwrap();
            }
            Op::CrashAndCut(at) => {
                let active_base = *log.segment_base_offsets().last().unwrap();
                drop(log);
                let path = dir.path().join(format!("{active_base:020}.log"));
                let len = std::fs::metadata(&path).unwrap().len() as usize;
                let cut = at.index(len + 1);
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(cut as u64)
                    .unwrap();
                // Batches of the active segment survive while they end within the cut.
                let mut pos = 0usize;
                let mut keep = 0usize;
                for (i, (base, b)) in model.batches.iter().enumerate() {
                    if *base < active_base {
                        keep = i + 1;
                        continue;
                    }
                    pos += b.len();
                    if pos > cut {
                        break;
                    }
                    keep = i + 1;
                }
                model.batches.truncate(keep);
                model.end = model.batches.last().map_or(active_base, |(base, b)| {
                    base + i64::from(validate_batch(b, usize::MAX).unwrap().last_offset_delta) + 1
                });
                model.end = model.end.max(active_base);
                model.start = model.start.min(model.end);
                log = Log::open(dir.path(), cfg.clone(), false, T0).unwrap();
            }
            Op::DeleteBefore(at) => {
                let span = (model.end - model.start + 1) as usize;
                let offset = model.start + at.index(span) as i64;
                let bases = log.segment_base_offsets();
                assert_eq!(log.delete_records_before(offset).unwrap(), offset);
                model.start = offset;
                // Segments (other than the active one) wholly below the new start are gone.
                let first_kept = bases
                    .windows(2)
                    .find(|w| w[1] > offset)
                    .map_or(*bases.last().unwrap(), |w| w[0]);
                model.drop_below(first_kept);
                assert_eq!(log.segment_base_offsets()[0], first_kept);
            }
            Op::RetainBytes(limit) => {
                // First pass (as in Kafka): segments wholly below the log start go.
                let all = log.segment_base_offsets();
                let breached = all.windows(2).take_while(|w| w[1] <= model.start).count();
                let bases = all[breached..].to_vec();
                model.drop_below(bases[0]);
                cfg.retention_bytes = i64::from(limit);
                log.set_config(cfg.clone());
                log.enforce_retention(T0).unwrap();
                cfg.retention_bytes = -1;
                log.set_config(cfg.clone());
                // Kafka's rule on the model: delete oldest segments while what remains is
                // still at least retention.bytes.
                let seg_size = |i: usize| -> u64 {
                    let hi = bases.get(i + 1).copied().unwrap_or(i64::MAX);
                    model
                        .batches
                        .iter()
                        .filter(|(b, _)| *b >= bases[i] && *b < hi)
                        .map(|(_, b)| b.len() as u64)
                        .sum()
                };
                let mut remaining = model.size();
                let mut deleted = 0;
                while deleted < bases.len()
                    && seg_size(deleted) > 0
                    && remaining - seg_size(deleted) >= u64::from(limit)
                {
                    remaining -= seg_size(deleted);
                    deleted += 1;
                }
                if deleted == bases.len() {
                    model.batches.clear();
                    model.start = model.end;
                } else if deleted > 0 {
                    model.drop_below(bases[deleted]);
                    model.start = model.start.max(bases[deleted]);
                }
            }
            Op::Flush => {
                log.flush().unwrap();
                assert_eq!(log.recovery_point(), model.end);
            }
        }
        check(&log, &model);
    }
    log.close().unwrap();
    let log = Log::open(dir.path(), cfg, true, T0).unwrap();
    check(&log, &model);
}

proptest! {
    // 256 cases keep the debug suite fast; PROPTEST_CASES=5000 (with --release) digs deeper.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(
        ops in proptest::collection::vec(op(), 1..40),
        segment_bytes in prop_oneof![Just(300u64), Just(1000), Just(1 << 20)],
    ) {
        run(ops, segment_bytes);
    }
}
