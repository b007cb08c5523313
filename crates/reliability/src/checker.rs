//! Pure verdicts: what producers and consumers were told against what the broker serves.
//!
//! Nothing here does I/O, so every rule is unit-tested with the violation it must catch.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// Identity of one produced record: which producer, and its sequence number in that producer
/// (unique per producer, increasing in send order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RecordId {
    /// Producer number.
    pub producer: u32,
    /// Sequence number within the producer.
    pub seq: u64,
}

impl RecordId {
    /// The record value: `p<producer>:s<seq>:` then `pad` filler bytes.
    pub fn encode(&self, pad: usize) -> Vec<u8> {
        let mut v = format!("p{}:s{}:", self.producer, self.seq).into_bytes();
        v.extend(std::iter::repeat_n(b'x', pad));
        v
    }

    /// Parses a value written by [`RecordId::encode`].
    pub fn decode(value: &[u8]) -> Option<RecordId> {
        let s = std::str::from_utf8(value.get(..value.len().min(48))?).ok()?;
        let mut parts = s.splitn(3, ':');
        let producer = parts.next()?.strip_prefix('p')?.parse().ok()?;
        let seq = parts.next()?.strip_prefix('s')?.parse().ok()?;
        parts.next()?;
        Some(RecordId { producer, seq })
    }
}

/// A produce acknowledged by the broker (delivery report without error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ack {
    /// The record.
    pub id: RecordId,
    /// Partition it went to.
    pub partition: i32,
    /// Offset the broker reported.
    pub offset: i64,
}

/// One record as read back from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its offset.
    pub offset: i64,
    /// The record it carries (`None`: a value this harness did not write).
    pub id: Option<RecordId>,
}

/// The outcome of [`check_records`]. Every `Vec` is a list of violations (empty when all is
/// well); the counters are for the report.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RecordVerdict {
    /// Acknowledged records checked.
    pub acked: u64,
    /// Records read back.
    pub read: u64,
    /// Acknowledged records below the log start (deleted by retention, as configured): not
    /// checkable, not counted as lost.
    pub expired: u64,
    /// Records read back that were sent but never acknowledged (delivery failed or was cut by
    /// a kill): allowed, at most once each.
    pub unacked_present: u64,
    /// Acknowledged records not found anywhere.
    pub lost: Vec<Ack>,
    /// Acknowledged records found at an offset other than the acknowledged one, or whose
    /// acknowledged offset holds another record (an offset handed out twice).
    pub misplaced: Vec<String>,
    /// Records (acknowledged or not) stored more than once.
    pub duplicated: Vec<String>,
    /// A producer's records in one partition out of send order.
    pub reordered: Vec<String>,
    /// Offsets not strictly increasing in what was read back, or unknown values.
    pub malformed: Vec<String>,
}

impl RecordVerdict {
    /// True when no rule is broken.
    pub fn ok(&self) -> bool {
        self.lost.is_empty()
            && self.misplaced.is_empty()
            && self.duplicated.is_empty()
            && self.reordered.is_empty()
            && self.malformed.is_empty()
    }

    /// Violations, counted.
    pub fn violations(&self) -> usize {
        self.lost.len()
            + self.misplaced.len()
            + self.duplicated.len()
            + self.reordered.len()
            + self.malformed.len()
    }
}

/// Checks the records of one topic.
///
/// `acks`: every acknowledgement received. `stored`: each partition's records from its log
/// start to its high watermark, in offset order. `log_start`: each partition's first readable
/// offset (acknowledged records below it were removed by retention).
///
/// Rules: every acknowledged record at or above the log start is present exactly once, at the
/// acknowledged offset; no record (acknowledged or not) is stored twice; offsets read back
/// strictly increase; a producer's records in a partition appear in send order.
pub fn check_records(
    acks: &[Ack],
    stored: &BTreeMap<i32, Vec<Stored>>,
    log_start: &HashMap<i32, i64>,
) -> RecordVerdict {
    let mut v = RecordVerdict::default();
    let mut at: HashMap<(i32, i64), Option<RecordId>> = HashMap::new();
    let mut where_: HashMap<RecordId, Vec<(i32, i64)>> = HashMap::new();
    for (&p, recs) in stored {
        let mut last_offset = i64::MIN;
        let mut last_seq: HashMap<u32, u64> = HashMap::new();
        for r in recs {
            v.read += 1;
            if r.offset <= last_offset {
                v.malformed.push(format!(
                    "partition {p}: offset {} after {last_offset}",
                    r.offset
                ));
            }
            last_offset = r.offset;
            at.insert((p, r.offset), r.id);
            let Some(id) = r.id else {
                v.malformed
                    .push(format!("partition {p}: unknown value at {}", r.offset));
                continue;
            };
            where_.entry(id).or_default().push((p, r.offset));
            if let Some(prev) = last_seq.insert(id.producer, id.seq) {
                if id.seq <= prev {
                    v.reordered.push(format!(
                        "partition {p} offset {}: producer {} seq {} after seq {prev}",
                        r.offset, id.producer, id.seq
                    ));
                }
            }
        }
    }
    for (id, places) in &where_ {
        if places.len() > 1 {
            v.duplicated
                .push(format!("p{}:s{} stored at {places:?}", id.producer, id.seq));
        }
    }
    let mut acked_ids = std::collections::HashSet::new();
    for a in acks {
        v.acked += 1;
        acked_ids.insert(a.id);
        if a.offset < log_start.get(&a.partition).copied().unwrap_or(0) {
            v.expired += 1;
            continue;
        }
        match at.get(&(a.partition, a.offset)) {
            Some(Some(id)) if *id == a.id => {}
            Some(other) => v.misplaced.push(format!(
                "p{}:s{} acknowledged at {}/{} which holds {other:?}",
                a.id.producer, a.id.seq, a.partition, a.offset
            )),
            None => match where_.get(&a.id) {
                Some(places) => v.misplaced.push(format!(
                    "p{}:s{} acknowledged at {}/{} but stored at {places:?}",
                    a.id.producer, a.id.seq, a.partition, a.offset
                )),
                None => v.lost.push(*a),
            },
        }
    }
    v.unacked_present = where_.keys().filter(|id| !acked_ids.contains(id)).count() as u64;
    v
}

/// The outcome of [`check_compacted`]: every `Vec` lists violations.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CompactedVerdict {
    /// Acknowledged records.
    pub acked: u64,
    /// Records read back after compaction.
    pub read: u64,
    /// Keys written.
    pub keys: u64,
    /// Keys whose latest acknowledged record is gone with nothing later of the key in its
    /// place (what compaction must never do).
    pub latest_lost: Vec<String>,
    /// Records read back at an acknowledged offset that holds another record, or stored at
    /// another offset than acknowledged.
    pub misplaced: Vec<String>,
    /// Offsets not strictly increasing, or unknown values.
    pub malformed: Vec<String>,
}

impl CompactedVerdict {
    /// Acknowledged records compaction removed (superseded by a later record of their key).
    pub fn removed(&self) -> u64 {
        self.acked.saturating_sub(self.read)
    }

    /// True when no rule is broken and compaction did remove records (else the check would
    /// be vacuous).
    pub fn ok(&self) -> bool {
        self.latest_lost.is_empty()
            && self.misplaced.is_empty()
            && self.malformed.is_empty()
            && self.acked > 0
            && self.removed() > 0
    }
}

/// Checks a compacted one-partition topic whose record `id` has key `key_of(id)`.
///
/// Rules: what is read back is a subset of what was written, each record at its acknowledged
/// offset, offsets strictly increasing; and for every key, the latest acknowledged record is
/// present, unless a later record of the same key (acknowledged or not) is — compaction only
/// ever removes a record that a later one of its key supersedes.
pub fn check_compacted(
    acks: &[Ack],
    stored: &[Stored],
    key_of: impl Fn(&RecordId) -> u64,
) -> CompactedVerdict {
    let mut v = CompactedVerdict::default();
    let mut latest_acked: HashMap<u64, Ack> = HashMap::new();
    let mut acked_at: HashMap<i64, RecordId> = HashMap::new();
    let mut acked_offset: HashMap<RecordId, i64> = HashMap::new();
    for a in acks {
        v.acked += 1;
        acked_at.insert(a.offset, a.id);
        acked_offset.insert(a.id, a.offset);
        let e = latest_acked.entry(key_of(&a.id)).or_insert(*a);
        if a.offset > e.offset {
            *e = *a;
        }
    }
    v.keys = latest_acked.len() as u64;
    let mut last_read: HashMap<u64, (i64, RecordId)> = HashMap::new();
    let mut prev = i64::MIN;
    for r in stored {
        v.read += 1;
        if r.offset <= prev {
            v.malformed
                .push(format!("offset {} after {prev}", r.offset));
        }
        prev = r.offset;
        let Some(id) = r.id else {
            v.malformed.push(format!("unknown value at {}", r.offset));
            continue;
        };
        match (acked_at.get(&r.offset), acked_offset.get(&id)) {
            (Some(a), _) if *a != id => v.misplaced.push(format!(
                "offset {} holds p{}:s{}, acknowledged for p{}:s{}",
                r.offset, id.producer, id.seq, a.producer, a.seq
            )),
            (_, Some(&o)) if o != r.offset => v.misplaced.push(format!(
                "p{}:s{} acknowledged at {o}, stored at {}",
                id.producer, id.seq, r.offset
            )),
            _ => {}
        }
        last_read.insert(key_of(&id), (r.offset, id));
    }
    for (key, a) in &latest_acked {
        match last_read.get(key) {
            Some(&(offset, _)) if offset > a.offset => {} // superseded by a later record
            Some(&(offset, id)) if offset == a.offset && id == a.id => {}
            other => v.latest_lost.push(format!(
                "key {key}: latest acknowledged p{}:s{} at {}, last read {other:?}",
                a.id.producer, a.id.seq, a.offset
            )),
        }
    }
    v
}

/// A consumer-group offset commit the broker acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CommitAck {
    /// Partition.
    pub partition: i32,
    /// Committed offset.
    pub offset: i64,
}

/// The outcome of [`CommitChecker`].
#[derive(Debug, Default, Clone, Serialize)]
pub struct CommitVerdict {
    /// Commits acknowledged.
    pub acked: u64,
    /// Observations of the committed offsets (OffsetFetch) checked.
    pub observations: u64,
    /// Committed offsets that went backwards between two observations, or fell below a
    /// commit acknowledged before the observation started.
    pub backwards: Vec<String>,
}

impl CommitVerdict {
    /// True when no committed offset moved backwards.
    pub fn ok(&self) -> bool {
        self.backwards.is_empty()
    }
}

/// Committed group offsets must never move backwards: each observation of a partition's
/// committed offset is at least the previous observation and at least every commit that had
/// been acknowledged when the observation began.
#[derive(Debug, Default)]
pub struct CommitChecker {
    acked_max: HashMap<i32, i64>,
    observed: HashMap<i32, i64>,
    verdict: CommitVerdict,
}

impl CommitChecker {
    /// Records an acknowledged commit.
    pub fn acked(&mut self, c: CommitAck) {
        self.verdict.acked += 1;
        let m = self.acked_max.entry(c.partition).or_insert(c.offset);
        *m = (*m).max(c.offset);
    }

    /// The floor every later observation must respect: the acknowledged maxima now.
    pub fn floor(&self) -> HashMap<i32, i64> {
        self.acked_max.clone()
    }

    /// Checks an observation (`committed[p]`, absent: nothing committed) against `floor` (from
    /// [`CommitChecker::floor`], taken before the observation was requested) and the previous
    /// observation. `when` labels violations.
    pub fn observe(
        &mut self,
        when: &str,
        floor: &HashMap<i32, i64>,
        committed: &HashMap<i32, i64>,
    ) {
        self.verdict.observations += 1;
        for (&p, &min) in floor {
            let got = committed.get(&p).copied().unwrap_or(-1);
            if got < min {
                self.verdict.backwards.push(format!(
                    "{when}: partition {p} committed {got} below acknowledged commit {min}"
                ));
            }
        }
        for (&p, &got) in committed {
            if let Some(&prev) = self.observed.get(&p) {
                if got < prev {
                    self.verdict.backwards.push(format!(
                        "{when}: partition {p} committed {got} after {prev} was observed"
                    ));
                }
            }
            let e = self.observed.entry(p).or_insert(got);
            *e = (*e).max(got);
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> &CommitVerdict {
        &self.verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(producer: u32, seq: u64) -> RecordId {
        RecordId { producer, seq }
    }

    fn ack(producer: u32, seq: u64, partition: i32, offset: i64) -> Ack {
        Ack {
            id: id(producer, seq),
            partition,
            offset,
        }
    }

    fn stored(recs: &[(i64, u32, u64)]) -> Vec<Stored> {
        recs.iter()
            .map(|&(offset, p, s)| Stored {
                offset,
                id: Some(id(p, s)),
            })
            .collect()
    }

    fn one(p: i32, recs: &[(i64, u32, u64)]) -> BTreeMap<i32, Vec<Stored>> {
        BTreeMap::from([(p, stored(recs))])
    }

    #[test]
    fn compacted_topic_rules() {
        let key = |id: &RecordId| id.seq % 2;
        // Keys 0 and 1, written 0..6 at offsets 0..6; compaction kept 4 and 5.
        let acks: Vec<Ack> = (0..6).map(|s| ack(1, s, 0, s as i64)).collect();
        let good = check_compacted(&acks, &stored(&[(4, 1, 4), (5, 1, 5)]), key);
        assert!(good.ok(), "{good:?}");
        assert_eq!((good.removed(), good.keys), (4, 2));
        // Nothing removed: correct but vacuous.
        let all: Vec<_> = (0..6).map(|s| (s as i64, 1, s)).collect();
        let vacuous = check_compacted(&acks, &stored(&all), key);
        assert!(vacuous.latest_lost.is_empty() && !vacuous.ok());
        // The latest of key 1 gone, an older one kept: a value came back.
        let lost = check_compacted(&acks, &stored(&[(3, 1, 3), (4, 1, 4)]), key);
        assert_eq!(lost.latest_lost.len(), 1, "{lost:?}");
        // A later, unacknowledged record of key 1 supersedes the acknowledged one.
        let later = check_compacted(&acks, &stored(&[(4, 1, 4), (6, 1, 7)]), key);
        assert!(later.ok(), "{later:?}");
        // A record at another offset than acknowledged.
        let moved = check_compacted(&acks, &stored(&[(4, 1, 4), (7, 1, 5)]), key);
        assert_eq!(moved.misplaced.len(), 1, "{moved:?}");
    }

    #[test]
    fn values_round_trip() {
        let r = id(3, 123_456);
        assert_eq!(RecordId::decode(&r.encode(200)), Some(r));
        assert_eq!(RecordId::decode(b"garbage"), None);
    }

    #[test]
    fn a_clean_log_passes() {
        let acks = [ack(0, 0, 0, 0), ack(1, 0, 0, 1), ack(0, 1, 0, 2)];
        let v = check_records(
            &acks,
            &one(0, &[(0, 0, 0), (1, 1, 0), (2, 0, 1), (3, 1, 1)]),
            &HashMap::new(),
        );
        assert!(v.ok(), "{v:?}");
        assert_eq!((v.acked, v.read, v.unacked_present), (3, 4, 1));
    }

    #[test]
    fn each_violation_is_caught() {
        let none = HashMap::new();
        // Lost: acknowledged, not stored.
        let v = check_records(&[ack(0, 0, 0, 0)], &one(0, &[]), &none);
        assert_eq!(v.lost.len(), 1);
        // Offset reused: the acknowledged offset holds another record.
        let v = check_records(&[ack(0, 0, 0, 0)], &one(0, &[(0, 1, 0)]), &none);
        assert_eq!((v.misplaced.len(), v.lost.len()), (1, 0));
        // Moved: stored, but at another offset.
        let v = check_records(&[ack(0, 0, 0, 0)], &one(0, &[(1, 0, 0)]), &none);
        assert_eq!(v.misplaced.len(), 1);
        // Duplicated.
        let v = check_records(&[ack(0, 0, 0, 0)], &one(0, &[(0, 0, 0), (1, 0, 0)]), &none);
        assert_eq!(v.duplicated.len(), 1);
        // Reordered within a producer.
        let v = check_records(&[], &one(0, &[(0, 0, 1), (1, 0, 0)]), &none);
        assert_eq!(v.reordered.len(), 1);
        // Offsets not increasing.
        let v = check_records(&[], &one(0, &[(5, 0, 0), (5, 0, 1)]), &none);
        assert_eq!(v.malformed.len(), 1);
        // Expired by retention is not lost.
        let v = check_records(&[ack(0, 0, 0, 0)], &one(0, &[]), &HashMap::from([(0, 1)]));
        assert!(v.ok());
        assert_eq!(v.expired, 1);
    }

    #[test]
    fn commits_moving_backwards_are_caught() {
        let mut c = CommitChecker::default();
        c.acked(CommitAck {
            partition: 0,
            offset: 10,
        });
        let floor = c.floor();
        c.observe("a", &floor, &HashMap::from([(0, 12)]));
        assert!(c.verdict().ok());
        c.observe("b", &floor, &HashMap::from([(0, 11)]));
        assert_eq!(
            c.verdict().backwards.len(),
            1,
            "below the previous observation"
        );
        c.acked(CommitAck {
            partition: 1,
            offset: 5,
        });
        let floor = c.floor();
        c.observe("c", &floor, &HashMap::from([(0, 12)]));
        assert_eq!(
            c.verdict().backwards.len(),
            2,
            "an acknowledged commit missing"
        );
    }
}
