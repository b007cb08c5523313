//! Sparse offset and time indexes of one segment, kept in memory and persisted as Kafka-style
//! files of fixed-size big-endian entries.
//!
//! - `{base}.index`: entries of (relative offset u32, file position u32). The relative offset is
//!   that of the *last* record of the batch starting at the position (as in Kafka), so the
//!   batch holding offset `o` is found by scanning forward from the last entry `<= o`.
//! - `{base}.timeindex`: entries of (timestamp i64, relative offset u32): the segment's largest
//!   timestamp so far and the last offset of the batch that carried it. Entries are added only
//!   when the largest timestamp grows, so both columns are monotonic.

/// Bytes per offset index entry.
pub const OFFSET_ENTRY_SIZE: usize = 8;
/// Bytes per time index entry.
pub const TIME_ENTRY_SIZE: usize = 12;

/// In-memory offset index with a count of entries already written to its file.
#[derive(Debug, Default, Clone)]
pub(crate) struct OffsetIndex {
    /// (relative offset, position), both strictly increasing.
    pub entries: Vec<(u32, u32)>,
    /// How many leading entries are in the file.
    pub persisted: usize,
}

impl OffsetIndex {
    /// Largest entry whose relative offset is `<= rel`.
    pub fn lookup(&self, rel: u32) -> Option<(u32, u32)> {
        let i = self.entries.partition_point(|e| e.0 <= rel);
        i.checked_sub(1).and_then(|i| self.entries.get(i)).copied()
    }

    /// Adds an entry if it keeps both columns strictly increasing (otherwise it is a no-op,
    /// which only makes the index sparser).
    pub fn push(&mut self, rel: u32, pos: u32) {
        debug_assert!(self.entries.last().is_none_or(|l| l.0 < rel && l.1 < pos));
        if self.entries.last().is_none_or(|l| l.0 < rel && l.1 < pos) {
            self.entries.push((rel, pos));
        }
    }

    /// File bytes of the entries from index `from` on.
    pub fn encode(&self, from: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (rel, pos) in self.entries.iter().skip(from) {
            out.extend_from_slice(&rel.to_be_bytes());
            out.extend_from_slice(&pos.to_be_bytes());
        }
        out
    }

    /// Parses an index file, returning `None` if it is inconsistent with a log file of
    /// `log_size` bytes (odd size, non-increasing entries, positions past the end).
    pub fn parse(bytes: &[u8], log_size: u64) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_SIZE) {
            return None;
        }
        let mut idx = OffsetIndex::default();
        for c in bytes.chunks_exact(OFFSET_ENTRY_SIZE) {
            let rel = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            let pos = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
            if u64::from(pos) >= log_size {
                return None;
            }
            if let Some(&(lr, lp)) = idx.entries.last() {
                if rel <= lr || pos <= lp {
                    return None;
                }
            }
            idx.entries.push((rel, pos));
        }
        idx.persisted = idx.entries.len();
        Some(idx)
    }
}

/// In-memory time index with a count of entries already written to its file.
#[derive(Debug, Default, Clone)]
pub(crate) struct TimeIndex {
    /// (max timestamp so far, relative last offset of the batch carrying it), strictly
    /// increasing timestamps, non-decreasing offsets.
    pub entries: Vec<(i64, u32)>,
    /// How many leading entries are in the file.
    pub persisted: usize,
}

impl TimeIndex {
    /// Largest entry whose timestamp is `<= ts`.
    pub fn lookup(&self, ts: i64) -> Option<(i64, u32)> {
        let i = self.entries.partition_point(|e| e.0 <= ts);
        i.checked_sub(1).and_then(|i| self.entries.get(i)).copied()
    }

    /// Last entry.
    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    /// Adds an entry if the timestamp grows (and offsets do not go back).
    pub fn maybe_push(&mut self, ts: i64, rel: u32) {
        if self.entries.last().is_none_or(|l| l.0 < ts && l.1 <= rel) {
            self.entries.push((ts, rel));
        }
    }

    /// File bytes of the entries from index `from` on.
    pub fn encode(&self, from: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (ts, rel) in self.entries.iter().skip(from) {
            out.extend_from_slice(&ts.to_be_bytes());
            out.extend_from_slice(&rel.to_be_bytes());
        }
        out
    }

    /// Parses a time index file; `None` if inconsistent (odd size, non-monotonic entries,
    /// relative offsets beyond `max_rel`).
    pub fn parse(bytes: &[u8], max_rel: u32) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_SIZE) {
            return None;
        }
        let mut idx = TimeIndex::default();
        for c in bytes.chunks_exact(TIME_ENTRY_SIZE) {
            let ts = i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            let rel = u32::from_be_bytes([c[8], c[9], c[10], c[11]]);
            if rel > max_rel {
                return None;
            }
            if let Some(&(lt, lr)) = idx.entries.last() {
                if ts <= lt || rel < lr {
                    return None;
                }
            }
            idx.entries.push((ts, rel));
        }
        idx.persisted = idx.entries.len();
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let mut idx = OffsetIndex::default();
        assert_eq!(idx.lookup(5), None);
        idx.push(9, 100);
        idx.push(19, 250);
        idx.push(29, 400);
        assert_eq!(idx.lookup(0), None);
        assert_eq!(idx.lookup(9), Some((9, 100)));
        assert_eq!(idx.lookup(18), Some((9, 100)));
        assert_eq!(idx.lookup(19), Some((19, 250)));
        assert_eq!(idx.lookup(1000), Some((29, 400)));
    }

    #[test]
    fn offset_index_file_round_trip_and_sanity() {
        let mut idx = OffsetIndex::default();
        idx.push(3, 10);
        idx.push(7, 20);
        let bytes = idx.encode(idx.persisted);
        assert_eq!(bytes.len(), 16);
        let back = OffsetIndex::parse(&bytes, 21).unwrap();
        assert_eq!(back.entries, idx.entries);
        assert_eq!(back.persisted, 2);
        assert!(back.encode(back.persisted).is_empty());
        // Position past the end of the log, odd size, non-increasing entries.
        assert!(OffsetIndex::parse(&bytes, 20).is_none());
        assert!(OffsetIndex::parse(&bytes[..15], 100).is_none());
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert!(OffsetIndex::parse(&swapped, 100).is_none());
    }

    #[test]
    fn time_index_only_grows() {
        let mut idx = TimeIndex::default();
        idx.maybe_push(100, 0);
        idx.maybe_push(90, 3);
        idx.maybe_push(100, 4);
        idx.maybe_push(150, 8);
        assert_eq!(idx.entries, vec![(100, 0), (150, 8)]);
        assert_eq!(idx.lookup(99), None);
        assert_eq!(idx.lookup(120), Some((100, 0)));
        assert_eq!(idx.lookup(150), Some((150, 8)));
        let back = TimeIndex::parse(&idx.encode(idx.persisted), 8).unwrap();
        assert_eq!(back.entries, idx.entries);
        assert!(TimeIndex::parse(&idx.encode(idx.persisted), 7).is_none());
        assert!(TimeIndex::parse(&[0u8; 13], 100).is_none());
    }
}
