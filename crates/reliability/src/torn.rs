//! Torn writes: copies of a log directory damaged the way a power loss damages the part of a
//! log that was never fsync'ed, recovered, and read back.
//!
//! An original log is written with `veritas-log` (small segments, so the tail spans several;
//! a mix of plain and idempotent batches; an fsync at a random point, so the recovery point
//! sits mid-log) and left without `close`, as after a crash. Each case copies it and damages the
//! copy at or after the byte where the recovery point lies (everything before it was fsync'ed
//! and is trusted by contract):
//!
//! * `cut` — everything after a random byte is gone (later segments too);
//! * `hole` — one segment is cut at a random byte but later segments survived (the page cache
//!   wrote them back first);
//! * `zeros` — a random range reads as zeros (file size extended, data blocks never written);
//! * `flip` — 1–3 random bytes flipped in the tail, optionally also cut;
//! * `index` — the tail segments' index files truncated or filled with garbage.
//!
//! The copy is opened as after a crash and read from start to end. Verdicts: every batch served
//! passes `validate_batch` (framing, magic, CRC-32C); what is served is byte-for-byte a prefix
//! of the original at a batch boundary (the 4-byte `partitionLeaderEpoch` excepted, which is not
//! covered by Kafka's CRC — see RELIABILITY.md); nothing before the first damaged byte is lost;
//! the log accepts an append afterwards and a clean reopen serves the same bytes.
//!
//! [`check_dir`] applies the same damage to a copy of any broker data directory (every
//! partition of every topic), with the recovery point reset to 0 so the whole log counts as
//! unflushed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use veritas_log::batch::builder::{BatchBuilder, Record};
use veritas_log::batch::{validate_batch, BatchIter, PARTITION_LEADER_EPOCH_OFFSET};
use veritas_log::{FlushPolicy, Log, LogConfig};

/// Figures of a torn-write run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TornReport {
    /// Damaged copies recovered.
    pub cases: u64,
    /// Cases per damage kind.
    pub by_kind: std::collections::BTreeMap<String, u64>,
    /// Batches in the originals (summed over cases).
    pub batches_original: u64,
    /// Batches served after recovery (summed).
    pub batches_served: u64,
    /// Batches that were intact before the first damaged byte (summed): all must be served.
    pub batches_intact: u64,
    /// Served batches failing validation (must be 0).
    pub invalid_served: u64,
    /// Cases where what was served is not a prefix of the original (must be 0).
    pub not_a_prefix: Vec<String>,
    /// Cases that lost intact batches before the damage (must be 0).
    pub lost_intact: Vec<String>,
    /// Cases that could not be opened, appended to or reopened (must be 0).
    pub failures: Vec<String>,
    /// Cases where a flipped byte in the (CRC-less) leader-epoch field was served as is.
    pub epoch_flips_served: u64,
}

impl TornReport {
    /// True when every case recovered to a valid prefix.
    pub fn ok(&self) -> bool {
        self.invalid_served == 0
            && self.not_a_prefix.is_empty()
            && self.lost_intact.is_empty()
            && self.failures.is_empty()
            && self.cases > 0
    }
}

fn scratch() -> anyhow::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    Ok(if shm.is_dir() {
        tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir())?
    } else {
        tempfile::tempdir()?
    })
}

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        retention_ms: -1,
        flush: FlushPolicy::manual(),
        ..LogConfig::default()
    }
}

/// Writes an original log of about `batches` batches into `dir` and drops it without closing.
/// Returns the number of batches.
fn write_original(dir: &Path, batches: usize, rng: &mut impl Rng) -> anyhow::Result<usize> {
    let log = Log::open(dir, cfg(), false, 0)?;
    let flush_at = rng.random_range(0..=batches);
    let mut seq = 0i32;
    for i in 0..batches {
        if i == flush_at {
            log.flush()?;
        }
        let mut b = BatchBuilder::new(1_700_000_000_000 + i as i64);
        let n = rng.random_range(1..6);
        if rng.random_bool(0.5) {
            b = b.idempotent(7, 0, seq);
            seq += n;
        }
        for j in 0..n {
            let len = rng.random_range(0..300);
            b.push(Record::new(
                Some(format!("card-{}", rng.random_range(0..50)).into_bytes()),
                Some((0..len).map(|k| (k ^ j) as u8).collect()),
            ));
        }
        log.append(&b.build(), 1_700_000_000_000 + i as i64)?;
    }
    drop(log); // a crash: no close, nothing more fsync'ed
    Ok(batches)
}

/// The segment files of a log directory in offset order.
fn segments(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    Ok(v)
}

/// Segment files with the position of their first byte in the concatenation.
type Starts = Vec<(PathBuf, usize)>;

fn concat(segs: &[PathBuf]) -> anyhow::Result<(Vec<u8>, Starts)> {
    let mut all = Vec::new();
    let mut starts = Vec::new();
    for s in segs {
        starts.push((s.clone(), all.len()));
        all.extend(std::fs::read(s)?);
    }
    Ok((all, starts))
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        let p = e.path();
        if p.is_file() {
            std::fs::copy(&p, to.join(e.file_name()))?;
        }
    }
    Ok(())
}

fn read_offset(dir: &Path, name: &str) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    text.lines().nth(1)?.trim().parse().ok()
}

/// Byte position (in the concatenation) of the first batch at or after `offset`.
fn position_of(all: &[u8], offset: i64) -> usize {
    let mut pos = 0;
    for b in BatchIter::new(all) {
        let Ok(b) = b else { break };
        if b.header.last_offset() >= offset {
            return b.position;
        }
        pos = b.position + b.bytes.len();
    }
    pos
}

/// Batch boundaries of the concatenation: end position of each batch.
fn boundaries(all: &[u8]) -> Vec<usize> {
    BatchIter::new(all)
        .map_while(Result::ok)
        .map(|b| b.position + b.bytes.len())
        .collect()
}

/// Damages a copy of a log directory. Returns (kind, first damaged byte in the concatenation,
/// epoch-field flip?).
fn damage(
    dir: &Path,
    all_len: usize,
    starts: &[(PathBuf, usize)],
    from: usize,
    rng: &mut impl Rng,
) -> anyhow::Result<(String, usize, bool)> {
    let locate = |pos: usize| -> (usize, usize) {
        let i = starts.partition_point(|(_, s)| *s <= pos).saturating_sub(1);
        (i, pos - starts[i].1)
    };
    if from >= all_len {
        return Ok(("none".into(), all_len, false));
    }
    let kind = rng.random_range(0..5);
    let pos = rng.random_range(from..all_len);
    let (i, at) = locate(pos);
    let seg = &starts[i].0;
    let name = seg.file_name().context("segment name")?;
    let seg = dir.join(name);
    Ok(match kind {
        0 => {
            cut(&seg, at)?;
            for (later, _) in &starts[i + 1..] {
                std::fs::remove_file(dir.join(later.file_name().context("name")?))?;
            }
            ("cut".into(), pos, false)
        }
        1 => {
            cut(&seg, at)?;
            ("hole".into(), pos, false)
        }
        2 => {
            let mut bytes = std::fs::read(&seg)?;
            let end = (at + rng.random_range(1..2048)).min(bytes.len());
            bytes[at..end].iter_mut().for_each(|b| *b = 0);
            std::fs::write(&seg, &bytes)?;
            ("zeros".into(), pos, false)
        }
        3 => {
            let mut first = usize::MAX;
            let mut epoch = false;
            for _ in 0..rng.random_range(1..=3) {
                let p = rng.random_range(from..all_len);
                let (i, at) = locate(p);
                let s = dir.join(starts[i].0.file_name().context("name")?);
                let mut bytes = std::fs::read(&s)?;
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= rng.random_range(1..=255u8);
                    first = first.min(p);
                    epoch |= is_epoch_byte(&bytes, at);
                }
                std::fs::write(&s, &bytes)?;
            }
            if rng.random_bool(0.3) {
                let p = rng.random_range(from..all_len);
                let (i, at) = locate(p);
                cut(&dir.join(starts[i].0.file_name().context("name")?), at)?;
                first = first.min(p);
            }
            ("flip".into(), first, epoch)
        }
        _ => {
            for (s, _) in &starts[i..] {
                let stem = s.file_stem().context("stem")?.to_string_lossy().to_string();
                for ext in ["index", "timeindex"] {
                    let p = dir.join(format!("{stem}.{ext}"));
                    if rng.random_bool(0.5) {
                        let junk: Vec<u8> =
                            (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
                        std::fs::write(&p, junk)?;
                    } else if p.exists() {
                        cut(&p, 0)?;
                    }
                }
            }
            ("index".into(), all_len, false)
        }
    })
}

/// Whether byte `at` of a segment lies in some batch's `partitionLeaderEpoch` field.
fn is_epoch_byte(segment: &[u8], at: usize) -> bool {
    let mut pos = 0;
    while pos + 12 <= segment.len() {
        let len = i32::from_be_bytes([
            segment[pos + 8],
            segment[pos + 9],
            segment[pos + 10],
            segment[pos + 11],
        ]);
        if len <= 0 {
            return false;
        }
        let field = pos + PARTITION_LEADER_EPOCH_OFFSET..pos + PARTITION_LEADER_EPOCH_OFFSET + 4;
        if field.contains(&at) {
            return true;
        }
        pos += 12 + len as usize;
    }
    false
}

fn cut(path: &Path, len: usize) -> anyhow::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(len as u64)?;
    Ok(())
}

/// Reads a recovered log from start to end, validating every batch.
fn read_all(log: &Log) -> Result<(Vec<u8>, u64, u64), String> {
    let mut out = Vec::new();
    let (mut batches, mut invalid) = (0, 0);
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log
            .read(offset, 64 * 1024)
            .map_err(|e| format!("read at {offset}: {e}"))?;
        if r.data.is_empty() {
            return Err(format!("empty read at {offset} below the log end"));
        }
        let mut pos = 0;
        while pos < r.data.len() {
            match validate_batch(&r.data[pos..], usize::MAX) {
                Ok(h) => {
                    batches += 1;
                    out.extend_from_slice(&r.data[pos..pos + h.size()]);
                    offset = h.last_offset() + 1;
                    pos += h.size();
                }
                Err(_) => {
                    invalid += 1;
                    return Ok((out, batches, invalid));
                }
            }
        }
    }
    Ok((out, batches, invalid))
}

/// Masks every batch's leader-epoch field (not covered by the CRC) for comparisons.
fn mask_epochs(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    let mut pos = 0;
    while pos + 12 <= v.len() {
        let len = i32::from_be_bytes([v[pos + 8], v[pos + 9], v[pos + 10], v[pos + 11]]);
        if len <= 0 {
            break;
        }
        if let Some(f) = v.get_mut(pos + 12..pos + 16) {
            f.fill(0);
        }
        pos += 12 + len as usize;
    }
    v
}

/// Recovers one damaged copy and judges it.
fn judge(copy: &Path, original: &[u8], first_damage: usize, label: &str, report: &mut TornReport) {
    let bounds = boundaries(original);
    report.batches_original += bounds.len() as u64;
    let intact = bounds.iter().filter(|&&e| e <= first_damage).count();
    report.batches_intact += intact as u64;
    let log = match Log::open(copy, cfg(), false, 1_800_000_000_000) {
        Ok(l) => l,
        Err(e) => {
            report.failures.push(format!("{label}: open: {e}"));
            return;
        }
    };
    let (served, batches, invalid) = match read_all(&log) {
        Ok(x) => x,
        Err(e) => {
            report.failures.push(format!("{label}: {e}"));
            return;
        }
    };
    report.batches_served += batches;
    report.invalid_served += invalid;
    let is_prefix = served.len() <= original.len()
        && mask_epochs(&served) == mask_epochs(&original[..served.len()])
        && (served.is_empty() || bounds.contains(&served.len()));
    if !is_prefix {
        report
            .not_a_prefix
            .push(format!("{label}: {} bytes served", served.len()));
    } else if served != original[..served.len()] {
        report.epoch_flips_served += 1;
    }
    if (batches as usize) < intact {
        report.lost_intact.push(format!(
            "{label}: {batches} batches served, {intact} were intact"
        ));
    }
    // The log goes on: an append, then a clean reopen serves the same bytes.
    let end = log.log_end_offset();
    let b = BatchBuilder::new(1_800_000_000_000)
        .record(Record::new(None, Some(b"after".to_vec())))
        .build();
    match log.append(&b, 1_800_000_000_000) {
        Ok(info) if info.base_offset == end => {}
        Ok(info) => report.failures.push(format!(
            "{label}: append after recovery at {} not {end}",
            info.base_offset
        )),
        Err(e) => report.failures.push(format!("{label}: append: {e}")),
    }
    let before = read_all(&log).map(|x| x.0);
    if let Err(e) = log.close() {
        report.failures.push(format!("{label}: close: {e}"));
        return;
    }
    match Log::open(copy, cfg(), true, 1_800_000_000_001) {
        Ok(l) => {
            if read_all(&l).map(|x| x.0) != before {
                report
                    .failures
                    .push(format!("{label}: clean reopen serves different bytes"));
            }
        }
        Err(e) => report.failures.push(format!("{label}: reopen: {e}")),
    }
}

/// Runs `cases` damaged copies of fresh originals (a new original every 8 cases).
pub fn run(cases: u64, seed: u64) -> anyhow::Result<TornReport> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut report = TornReport::default();
    let root = scratch()?;
    let mut case = 0;
    while case < cases {
        let orig = root.path().join(format!("orig-{case}"));
        let n = rng.random_range(1..120);
        write_original(&orig, n, &mut rng)?;
        let (all, starts) = concat(&segments(&orig)?)?;
        let rp = read_offset(&orig, "recovery-point").unwrap_or(0);
        let from = position_of(&all, rp);
        for _ in 0..8 {
            if case >= cases {
                break;
            }
            let copy = root.path().join(format!("copy-{case}"));
            copy_dir(&orig, &copy)?;
            let (kind, first, _epoch) = damage(&copy, all.len(), &starts, from, &mut rng)?;
            *report.by_kind.entry(kind.clone()).or_default() += 1;
            judge(
                &copy,
                &all,
                first,
                &format!("case {case} ({kind})"),
                &mut report,
            );
            report.cases += 1;
            std::fs::remove_dir_all(&copy)?;
            case += 1;
        }
        std::fs::remove_dir_all(&orig)?;
    }
    Ok(report)
}

/// Applies `cases_per_partition` damaged copies to every partition directory under a broker
/// data directory (`data/<topic>-<n>/`), with the recovery point reset to 0.
pub fn check_dir(
    data_dir: &Path,
    cases_per_partition: u64,
    seed: u64,
) -> anyhow::Result<TornReport> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut report = TornReport::default();
    let root = scratch()?;
    let mut parts = Vec::new();
    let mut stack = vec![data_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") && !parts.contains(&d) {
                parts.push(d.clone());
            }
        }
    }
    // Partitions with segments rewritten by compaction are left out: their offsets may skip,
    // so a flipped baseOffset there cannot be told from a gap (RELIABILITY.md, known limits);
    // the torture checks them by key instead.
    parts.retain(|d| !has_compacted_segment(d));
    parts.sort();
    for (n, part) in parts.iter().enumerate() {
        let (all, starts) = concat(&segments(part)?)?;
        let first_base = read_offset_of_first(&all);
        for c in 0..cases_per_partition {
            let copy = root.path().join(format!("p{n}-{c}"));
            copy_dir(part, &copy)?;
            std::fs::write(copy.join("recovery-point"), format!("0\n{first_base}\n"))?;
            // Served bytes are compared from the first segment on.
            let _ = std::fs::remove_file(copy.join("log-start-offset"));
            let (kind, first, _) = damage(&copy, all.len(), &starts, 0, &mut rng)?;
            *report.by_kind.entry(kind.clone()).or_default() += 1;
            let label = format!("{} case {c} ({kind})", part.display());
            judge(&copy, &all, first, &label, &mut report);
            report.cases += 1;
            std::fs::remove_dir_all(&copy)?;
        }
    }
    Ok(report)
}

/// Whether a partition directory holds a segment compaction rewrote (a `*.compacted` marker).
fn has_compacted_segment(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "compacted"))
    })
}

fn read_offset_of_first(all: &[u8]) -> i64 {
    BatchIter::new(all)
        .next()
        .and_then(Result::ok)
        .map_or(0, |b| b.header.base_offset)
}
