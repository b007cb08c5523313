//! Idempotent producer state: per producer id, the epoch and the metadata of the last five
//! batches, used to detect retries (duplicates) and sequence gaps, as Kafka's
//! `ProducerStateManager` does.
//!
//! The state is rebuilt on open from the newest usable snapshot file
//! (`{offset:020}.snapshot`, the state of the log below `offset`) plus a replay of the batch
//! headers from that offset to the log end.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use crate::batch::{increment_sequence, BatchHeader};
use crate::checkpoint::write_atomic;
use crate::error::LogError;
use crate::segment::file_stem;

/// How many batches per producer are remembered for duplicate detection (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const BATCHES_PER_PRODUCER: usize = 5;
/// Suffix of producer state snapshot files.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";

const SNAPSHOT_MAGIC: &[u8; 4] = b"VPS1";

/// Sequence and offset range of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// baseSequence.
    pub first_sequence: i32,
    /// Sequence of the last record.
    pub last_sequence: i32,
    /// Offset of the first record.
    pub first_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
}

/// What the log knows about one idempotent producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSnapshot {
    /// The producer id.
    pub producer_id: i64,
    /// Current epoch.
    pub producer_epoch: i16,
    /// Sequence of the last record appended (-1 if none in this epoch).
    pub last_sequence: i32,
    /// Offset of the last record appended (-1 if none in this epoch).
    pub last_offset: i64,
    /// The last (up to five) batches, oldest first.
    pub batches: Vec<BatchMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
}

impl ProducerEntry {
    /// Records an appended batch (a new epoch forgets the old epoch's batches).
    pub(crate) fn record(&mut self, h: &BatchHeader) {
        if h.producer_epoch != self.epoch {
            self.epoch = h.producer_epoch;
            self.batches.clear();
        }
        self.batches.push_back(BatchMetadata {
            first_sequence: h.base_sequence,
            last_sequence: h.last_sequence(),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        while self.batches.len() > BATCHES_PER_PRODUCER {
            self.batches.pop_front();
        }
    }
}

/// Result of checking a batch against the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Append it.
    Append,
    /// An exact retry of a batch already in the log.
    Duplicate(BatchMetadata),
}

/// Producer id → state.
#[derive(Debug, Default, Clone)]
pub(crate) struct ProducerStates {
    pub producers: HashMap<i64, ProducerEntry>,
}

/// Whether the batch takes part in idempotence checks (has a producer id, is not a control
/// batch: transaction markers are stored but not interpreted).
pub(crate) fn is_idempotent(h: &BatchHeader) -> bool {
    h.has_producer_id() && !h.is_control()
}

/// Checks `h` (offsets not yet assigned) against a producer's current state.
pub(crate) fn check(entry: Option<&ProducerEntry>, h: &BatchHeader) -> Result<Verdict, LogError> {
    let Some(e) = entry else {
        // Unknown producer (new, or its state expired with the segments): accept, as Kafka
        // does since 2.5.
        return Ok(Verdict::Append);
    };
    let pid = h.producer_id;
    if h.producer_epoch < e.epoch {
        return Err(LogError::InvalidProducerEpoch {
            producer_id: pid,
            current: e.epoch,
            found: h.producer_epoch,
        });
    }
    if h.producer_epoch > e.epoch {
        if h.base_sequence != 0 {
            return Err(LogError::OutOfOrderSequence {
                producer_id: pid,
                epoch: h.producer_epoch,
                expected: 0,
                found: h.base_sequence,
            });
        }
        return Ok(Verdict::Append);
    }
    let last_seq = h.last_sequence();
    if let Some(dup) = e
        .batches
        .iter()
        .find(|b| b.first_sequence == h.base_sequence && b.last_sequence == last_seq)
    {
        return Ok(Verdict::Duplicate(*dup));
    }
    let Some(last) = e.batches.back() else {
        return Ok(Verdict::Append);
    };
    let expected = increment_sequence(last.last_sequence, 1);
    if h.base_sequence != expected {
        return Err(LogError::OutOfOrderSequence {
            producer_id: pid,
            epoch: h.producer_epoch,
            expected,
            found: h.base_sequence,
        });
    }
    Ok(Verdict::Append)
}

impl ProducerStates {
    /// Records an appended batch (offsets assigned). Also used to replay the log on open.
    pub fn update(&mut self, h: &BatchHeader) {
        if is_idempotent(h) {
            self.producers.entry(h.producer_id).or_default().record(h);
        }
    }

    /// Public view of one producer.
    pub fn snapshot_of(&self, producer_id: i64) -> Option<ProducerSnapshot> {
        let e = self.producers.get(&producer_id)?;
        let last = e.batches.back();
        Some(ProducerSnapshot {
            producer_id,
            producer_epoch: e.epoch,
            last_sequence: last.map_or(-1, |b| b.last_sequence),
            last_offset: last.map_or(-1, |b| b.last_offset),
            batches: e.batches.iter().copied().collect(),
        })
    }

    /// Serialises the state as of `offset`: magic, CRC-32C of the rest, offset, entries.
    pub fn encode(&self, offset: i64) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&offset.to_be_bytes());
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for pid in ids {
            let Some(e) = self.producers.get(&pid) else {
                continue;
            };
            body.extend_from_slice(&pid.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_sequence.to_be_bytes());
                body.extend_from_slice(&b.last_sequence.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(body.len() + 8);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Parses a snapshot; `None` if it is torn or corrupt in any way.
    pub fn decode(bytes: &[u8]) -> Option<(i64, ProducerStates)> {
        let rest = bytes.strip_prefix(SNAPSHOT_MAGIC)?;
        let (crc, body) = rest.split_first_chunk::<4>()?;
        if u32::from_be_bytes(*crc) != crc32c::crc32c(body) {
            return None;
        }
        let mut cur = body;
        let offset = i64::from_be_bytes(take::<8>(&mut cur)?);
        let count = u32::from_be_bytes(take::<4>(&mut cur)?);
        let mut states = ProducerStates::default();
        for _ in 0..count {
            let pid = i64::from_be_bytes(take::<8>(&mut cur)?);
            let epoch = i16::from_be_bytes(take::<2>(&mut cur)?);
            let [n] = take::<1>(&mut cur)?;
            if usize::from(n) > BATCHES_PER_PRODUCER {
                return None;
            }
            let mut entry = ProducerEntry {
                epoch,
                batches: VecDeque::new(),
            };
            for _ in 0..n {
                entry.batches.push_back(BatchMetadata {
                    first_sequence: i32::from_be_bytes(take::<4>(&mut cur)?),
                    last_sequence: i32::from_be_bytes(take::<4>(&mut cur)?),
                    first_offset: i64::from_be_bytes(take::<8>(&mut cur)?),
                    last_offset: i64::from_be_bytes(take::<8>(&mut cur)?),
                });
            }
            states.producers.insert(pid, entry);
        }
        (cur.is_empty() && offset >= 0).then_some((offset, states))
    }
}

fn take<const N: usize>(cur: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = cur.split_first_chunk::<N>()?;
    *cur = rest;
    Some(*head)
}

/// Path of the snapshot taken at `offset`.
pub(crate) fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{}{SNAPSHOT_SUFFIX}", file_stem(offset)))
}

/// Writes a snapshot of `states` at `offset`. Durable or not, it is never half-visible:
/// a torn file fails its checksum on load and is skipped.
pub(crate) fn write_snapshot(
    dir: &Path,
    states: &ProducerStates,
    offset: i64,
    durable: bool,
) -> Result<(), LogError> {
    let name = format!("{}{SNAPSHOT_SUFFIX}", file_stem(offset));
    write_atomic(dir, &name, &states.encode(offset), durable)
}

/// Offsets of the snapshot files in `dir`, ascending.
pub(crate) fn list_snapshots(dir: &Path) -> Vec<i64> {
    let mut out: Vec<i64> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let stem = name.to_str()?.strip_suffix(SNAPSHOT_SUFFIX)?;
            crate::log::parse_stem(stem)
        })
        .collect();
    out.sort_unstable();
    out
}

/// Deletes snapshot files for which `doomed(offset)` holds.
pub(crate) fn delete_snapshots(dir: &Path, doomed: impl Fn(i64) -> bool) {
    for off in list_snapshots(dir) {
        if doomed(off) {
            let p = snapshot_path(dir, off);
            if let Err(e) = fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "cannot delete producer snapshot");
            }
        }
    }
}

/// Loads the newest snapshot whose offset is `<= max_offset` and decodes cleanly; corrupt
/// ones are skipped with a warning. Returns the offset it covers and the state.
pub(crate) fn load_latest(dir: &Path, max_offset: i64) -> Option<(i64, ProducerStates)> {
    for off in list_snapshots(dir).into_iter().rev() {
        if off > max_offset {
            continue;
        }
        let p = snapshot_path(dir, off);
        match fs::read(&p).ok().and_then(|b| ProducerStates::decode(&b)) {
            Some((o, s)) if o == off => return Some((o, s)),
            _ => tracing::warn!(path = %p.display(), "ignoring unreadable producer snapshot"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::builder::{BatchBuilder, Record};
    use crate::batch::validate_batch;

    fn header(pid: i64, epoch: i16, seq: i32, n: usize, base_offset: i64) -> BatchHeader {
        let mut b = BatchBuilder::new(0).idempotent(pid, epoch, seq);
        for _ in 0..n {
            b.push(Record::new(None, Some(vec![1])));
        }
        let mut h = validate_batch(&b.build(), usize::MAX).unwrap();
        h.base_offset = base_offset;
        h
    }

    #[test]
    fn sequence_rules() {
        let mut s = ProducerStates::default();
        let h = header(7, 0, 0, 3, 0);
        assert_eq!(check(s.producers.get(&7), &h).unwrap(), Verdict::Append);
        s.update(&h);
        // Exact retry.
        let retry = header(7, 0, 0, 3, 99);
        assert_eq!(
            check(s.producers.get(&7), &retry).unwrap(),
            Verdict::Duplicate(BatchMetadata {
                first_sequence: 0,
                last_sequence: 2,
                first_offset: 0,
                last_offset: 2
            })
        );
        // Gap.
        assert!(matches!(
            check(s.producers.get(&7), &header(7, 0, 5, 1, 0)),
            Err(LogError::OutOfOrderSequence {
                expected: 3,
                found: 5,
                ..
            })
        ));
        // Next in order.
        assert_eq!(
            check(s.producers.get(&7), &header(7, 0, 3, 1, 3)).unwrap(),
            Verdict::Append
        );
        // Fenced.
        s.producers.get_mut(&7).unwrap().epoch = 2;
        assert!(matches!(
            check(s.producers.get(&7), &header(7, 1, 3, 1, 3)),
            Err(LogError::InvalidProducerEpoch {
                current: 2,
                found: 1,
                ..
            })
        ));
        // New epoch must restart at 0.
        assert!(check(s.producers.get(&7), &header(7, 3, 4, 1, 3)).is_err());
        assert_eq!(
            check(s.producers.get(&7), &header(7, 3, 0, 1, 3)).unwrap(),
            Verdict::Append
        );
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut s = ProducerStates::default();
        s.update(&header(1, 0, i32::MAX - 1, 2, 0));
        assert_eq!(s.snapshot_of(1).unwrap().last_sequence, i32::MAX);
        assert_eq!(
            check(s.producers.get(&1), &header(1, 0, 0, 1, 2)).unwrap(),
            Verdict::Append
        );
    }

    #[test]
    fn keeps_only_five_batches() {
        let mut s = ProducerStates::default();
        for i in 0..8 {
            s.update(&header(1, 0, i, 1, i64::from(i)));
        }
        let snap = s.snapshot_of(1).unwrap();
        assert_eq!(snap.batches.len(), BATCHES_PER_PRODUCER);
        assert_eq!(snap.batches[0].first_sequence, 3);
        assert_eq!((snap.last_sequence, snap.last_offset), (7, 7));
        // A retry of a batch older than the last five is out of order, not a duplicate.
        assert!(check(s.producers.get(&1), &header(1, 0, 1, 1, 0)).is_err());
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let mut s = ProducerStates::default();
        for pid in 0..4 {
            for i in 0..3 {
                s.update(&header(pid, 1, i * 2, 2, pid * 100 + i64::from(i) * 2));
            }
        }
        let bytes = s.encode(1234);
        let (off, back) = ProducerStates::decode(&bytes).unwrap();
        assert_eq!(off, 1234);
        assert_eq!(back.producers, s.producers);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(ProducerStates::decode(&b).is_none(), "flip at {i}");
            assert!(ProducerStates::decode(&bytes[..i]).is_none(), "cut at {i}");
        }
    }
}
