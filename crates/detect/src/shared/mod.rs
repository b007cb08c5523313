//! Merchant and category state shared by every partition, deterministically.
//!
//! Events are keyed by card, so a partition's engine sees all of its cards' events but only
//! its share of every merchant's. [`SharedTable`] builds merchant and category state from
//! *every* partition of the input and freezes it at fixed event-time boundaries; an event at
//! time `t` reads the snapshot of the boundary one interval before `floor(t, interval)` (a
//! lag of one to two intervals). Each snapshot depends only on the partitions' contents,
//! never on how reading them interleaved, so any number of detector instances — each with
//! its own table reading all partitions — compute the same features as one.
//!
//! How: an event from partition `p` joins the table iff its time is above `p`'s highest
//! earlier time minus the lateness bound (a rule on `p`'s contents alone). Then no event at
//! or below the *frontier* `min over p of (highest time read from p − lateness)` can still
//! arrive, so everything below a boundary at or under the frontier is known: the table
//! applies events in time order (ties broken by a hash of the transaction id) and freezes
//! the boundary. Freezing copies no merchant state: each boundary keeps an undo log of the
//! merchants changed after it, and a [`SharedView`] reads through the logs to the live state.
//!
//! A partition that delivers nothing holds the frontier back; [`SharedTable::release`] lets
//! it go (the caller's idle timeout, the one case where timing decides: events the released
//! partition later delivers at or below what was applied are counted in
//! [`SharedStats::missed`], not applied).
//!
//! Pure: no I/O, no clocks. `docs/detection.md` §7 has the design and its measurements.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use veritas_events::Transaction;

use crate::engine::{Engine, EngineConfig};
use crate::features::Features;
use crate::hash::fnv1a64;
use crate::score::{Decision, Detector};
use crate::state::{MerchantState, Welford};

mod checkpoint;

/// Snapshots kept besides those a [`SharedTable::hold`] asks for. Events at the frontier
/// read the newest or the one before; the third covers a partition moved here a moment
/// behind the table, whose events may read one older still when a boundary falls between
/// its checkpoint and the frontier (so it is re-read, not the table rebuilt).
const KEEP_SNAPSHOTS: usize = 3;

/// Most snapshots kept, whatever a [`SharedTable::hold`] asks for (a partition scoring
/// further behind the table reads the oldest kept one, counted by the caller as expired):
/// bounds memory when the frontier jumps far ahead of a hold.
pub const MAX_KEPT: usize = 4096;

/// A frozen boundary. Merchant state is not copied: the table keeps, per boundary, each
/// merchant's state before its first change after the boundary (an undo log), so the state
/// as of a boundary is the first entry found in its undo log or a later one, else the live
/// state. Freezing costs nothing per merchant; only the (few) category statistics are
/// copied.
#[derive(Debug, Clone)]
struct Frozen {
    boundary_ms: i64,
    categories: HashMap<u32, Welford>,
    /// Merchants changed between this boundary and the next: their state at this one.
    undo: HashMap<String, Option<MerchantState>>,
}

/// Merchant and category state as of a boundary (every included event strictly before it),
/// borrowed from the table.
#[derive(Debug, Clone, Copy)]
pub struct SharedView<'a> {
    /// `None`: the state before any event.
    table: Option<&'a SharedTable>,
    index: usize,
}

impl<'a> SharedView<'a> {
    /// The state before any event.
    pub const EMPTY: SharedView<'static> = SharedView {
        table: None,
        index: 0,
    };

    /// The boundary (ms since the epoch), `None` for the state before any event.
    pub fn boundary_ms(&self) -> Option<i64> {
        Some(self.table?.frozen.get(self.index)?.boundary_ms)
    }

    /// A merchant's state as of the boundary.
    pub(crate) fn merchant(&self, key: &str) -> Option<&'a MerchantState> {
        let table = self.table?;
        for f in table.frozen.range(self.index..) {
            if let Some(state) = f.undo.get(key) {
                return state.as_ref();
            }
        }
        if let Some(state) = table.engine.merchant_undo.as_ref().and_then(|u| u.get(key)) {
            return state.as_ref();
        }
        table.engine.merchants.get(key)
    }

    /// A category's statistics as of the boundary.
    pub(crate) fn category(&self, category: u32) -> Option<&'a Welford> {
        self.table?
            .frozen
            .get(self.index)?
            .categories
            .get(&category)
    }
}

/// What a lookup found.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// The state the event reads.
    Ready(SharedView<'a>),
    /// Its boundary is not frozen yet: some partition has not been read far enough.
    NotYet,
    /// Its boundary was frozen and dropped (no [`SharedTable::hold`] kept it); the oldest
    /// kept boundary is given.
    Expired(SharedView<'a>),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharedStats {
    /// Events offered.
    pub offered: u64,
    /// Events applied to the table.
    pub applied: u64,
    /// Events beyond the lateness bound of their partition: not part of the table.
    pub late: u64,
    /// Events at or below what was already applied (only after [`SharedTable::release`]).
    pub missed: u64,
    /// Boundaries frozen.
    pub frozen: u64,
}

#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// Highest event time read from the partition (`i64::MIN` before any).
    max_ms: i64,
    released: bool,
}

/// An event waiting for the frontier, ordered by time, then a hash of its transaction id
/// (so events of equal time apply in the same order however the input is partitioned),
/// then partition and offset.
#[derive(Debug, Clone)]
struct Pending {
    key: (i64, u64, u32, i64),
    /// Boxed: the heap moves entries on every push and pop, and a transaction is ~0.4 KiB.
    tx: Box<Transaction>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// The time an event of a partition reads the shared state as of: its own time, or for an
/// event beyond the partition's lateness bound (`max_before` is the partition's highest
/// earlier time), the bound — so every event of a partition reads a snapshot the partition's
/// contents determine.
pub fn lookup_ms(max_before: Option<i64>, event_ms: i64, lateness_ms: i64) -> i64 {
    match max_before {
        Some(m) => event_ms.max(m.saturating_sub(lateness_ms)),
        None => event_ms,
    }
}

/// One stream read in order by one process — training replay, offline scoring: a
/// [`SharedTable`] over a single partition, which freezes the same snapshots as a table over
/// any split of the same events.
#[derive(Debug, Clone)]
pub struct SingleStream {
    table: SharedTable,
    offset: i64,
    max_ms: Option<i64>,
}

impl SingleStream {
    /// An empty stream freezing every `interval_ms`.
    pub fn new(cfg: &EngineConfig, interval_ms: i64) -> Self {
        Self {
            table: SharedTable::new(cfg, 1, interval_ms),
            offset: 0,
            max_ms: None,
        }
    }

    /// Read the next event and return the state it is scored with.
    pub fn next(&mut self, tx: &Transaction) -> SharedView<'_> {
        let ms = tx.timestamp.timestamp_millis();
        let at = lookup_ms(self.max_ms, ms, self.table.lateness_ms);
        self.table.offer(0, self.offset, tx);
        self.offset += 1;
        self.max_ms = Some(self.max_ms.map_or(ms, |m| m.max(ms)));
        match self.table.lookup(at) {
            Lookup::Ready(s) | Lookup::Expired(s) => s,
            // The frontier of one stream is its latest time minus the lateness bound, and
            // the interval is at least that bound, so the boundary is always frozen.
            Lookup::NotYet => SharedView::EMPTY,
        }
    }

    /// The table's counters.
    pub fn stats(&self) -> SharedStats {
        self.table.stats()
    }
}

/// Where one process reading one stream in order (training replay, offline scoring,
/// measurements) takes merchant and category features from, as `[engine]
/// shared_merchants` says: each engine's own state, or a [`SingleStream`].
#[derive(Debug, Clone)]
pub enum MerchantSource {
    /// Each engine's own merchant and category state.
    PerEngine,
    /// State shared by every engine.
    Shared(Box<SingleStream>),
}

impl MerchantSource {
    /// The source `cfg` asks for.
    pub fn for_config(cfg: &EngineConfig) -> Self {
        if cfg.shared_merchants {
            MerchantSource::Shared(Box::new(SingleStream::new(cfg, cfg.shared_interval_ms())))
        } else {
            MerchantSource::PerEngine
        }
    }

    /// The features of the stream's next event, computed by `engine` (the engine of the
    /// event's card), which then folds the event in.
    pub fn features(&mut self, engine: &mut Engine, tx: &Transaction) -> Features {
        match self {
            MerchantSource::PerEngine => engine.process(tx),
            MerchantSource::Shared(stream) => engine.process_shared(tx, &stream.next(tx)).0,
        }
    }

    /// The decision on the stream's next event by `detector` (the detector of its card).
    pub fn decide(&mut self, detector: &mut Detector, tx: &Transaction) -> Decision {
        match self {
            MerchantSource::PerEngine => detector.process(tx),
            MerchantSource::Shared(stream) => detector.process_shared(tx, &stream.next(tx)),
        }
    }
}

/// Merchant and category state built from every partition (see the module docs).
#[derive(Debug, Clone)]
pub struct SharedTable {
    engine: Engine,
    lateness_ms: i64,
    interval_ms: i64,
    cursors: Vec<Cursor>,
    pending: BinaryHeap<Reverse<Pending>>,
    /// The next boundary to freeze (`None` until the frontier first exists).
    next_boundary: Option<i64>,
    /// Frozen boundaries kept, oldest first, one interval apart.
    frozen: VecDeque<Frozen>,
    /// The first boundary frozen: every boundary before it is the empty snapshot.
    first_boundary: Option<i64>,
    /// Every included event at or below this time has been applied.
    applied_ms: i64,
    /// The earliest time a lookup may still ask for (see [`SharedTable::hold`]).
    hold_ms: Option<i64>,
    stats: SharedStats,
}

impl SharedTable {
    /// A table over `partitions` input partitions, freezing every `interval_ms` of event
    /// time (at least one second, and at least the lateness bound).
    pub fn new(cfg: &EngineConfig, partitions: u32, interval_ms: i64) -> Self {
        let mut engine_cfg = cfg.clone();
        engine_cfg.track_changelog = false;
        let mut engine = Engine::new(engine_cfg);
        engine.merchant_undo = Some(HashMap::new());
        let lateness_ms = i64::try_from(cfg.lateness_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        Self {
            engine,
            lateness_ms,
            interval_ms: interval_ms.max(1000).max(lateness_ms),
            cursors: vec![
                Cursor {
                    max_ms: i64::MIN,
                    released: false,
                };
                partitions.max(1) as usize
            ],
            pending: BinaryHeap::new(),
            next_boundary: None,
            frozen: VecDeque::new(),
            first_boundary: None,
            applied_ms: i64::MIN,
            hold_ms: None,
            stats: SharedStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> SharedStats {
        self.stats
    }

    /// Events read but not yet applied.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Input partitions the frontier waits for (grows when a higher partition is offered).
    pub fn partitions(&self) -> usize {
        self.cursors.len()
    }

    /// The lateness bound (ms) events are included under.
    pub fn lateness_ms(&self) -> i64 {
        self.lateness_ms
    }

    /// The frontier: every included event at or below it has been read (`None` while a
    /// partition that is not released has delivered nothing).
    pub fn frontier_ms(&self) -> Option<i64> {
        let mut frontier: Option<i64> = None;
        for c in &self.cursors {
            if c.released {
                continue;
            }
            if c.max_ms == i64::MIN {
                return None;
            }
            let f = c.max_ms.saturating_sub(self.lateness_ms);
            frontier = Some(frontier.map_or(f, |x: i64| x.min(f)));
        }
        frontier
    }

    /// Read the event at `offset` of `partition`. Returns whether it joins the table.
    pub fn offer(&mut self, partition: u32, offset: i64, tx: &Transaction) -> bool {
        self.stats.offered += 1;
        let p = partition as usize;
        if p >= self.cursors.len() {
            self.cursors.resize(
                p + 1,
                Cursor {
                    max_ms: i64::MIN,
                    released: false,
                },
            );
        }
        let ms = tx.timestamp.timestamp_millis();
        let cursor = &mut self.cursors[p];
        cursor.released = false;
        let included =
            cursor.max_ms == i64::MIN || ms > cursor.max_ms.saturating_sub(self.lateness_ms);
        cursor.max_ms = cursor.max_ms.max(ms);
        if !included {
            self.stats.late += 1;
            return false;
        }
        if ms <= self.applied_ms {
            self.stats.missed += 1;
            return false;
        }
        self.pending.push(Reverse(Pending {
            key: (ms, fnv1a64(tx.transaction_id.as_bytes()), partition, offset),
            tx: Box::new(tx.clone()),
        }));
        self.advance();
        true
    }

    /// Keep every snapshot a lookup as of `ms` or later needs (the slowest scoring position
    /// of the caller's partitions); `None` keeps only the latest few. A partition whose
    /// scoring lags the table's reading would otherwise find its snapshot dropped.
    pub fn hold(&mut self, ms: Option<i64>) {
        self.hold_ms = ms;
        self.trim();
    }

    /// Additionally keep what a lookup as of `ms` or later needs, on top of the current
    /// [`SharedTable::hold`] (never lowering what it keeps).
    pub fn hold_also(&mut self, ms: i64) {
        let ms = self.hold_ms.map_or(ms, |h| h.min(ms));
        self.hold(Some(ms));
    }

    /// Stop waiting for `partition` (it delivers nothing for now) until it delivers again.
    pub fn release(&mut self, partition: u32) {
        if let Some(c) = self.cursors.get_mut(partition as usize) {
            c.released = true;
        }
        self.advance();
    }

    /// The state an event read as of `ms` (see [`lookup_ms`]) uses.
    pub fn lookup(&self, ms: i64) -> Lookup<'_> {
        let boundary = self.boundary_for(ms);
        let Some(first) = self.first_boundary else {
            // No event at or below the frontier exists (it would be pending), so a
            // boundary there holds nothing.
            return match self.frontier_ms() {
                Some(f) if boundary <= f => Lookup::Ready(SharedView::EMPTY),
                _ => Lookup::NotYet,
            };
        };
        if boundary < first {
            return Lookup::Ready(SharedView::EMPTY);
        }
        let (Some(oldest), Some(newest)) = (self.frozen.front(), self.frozen.back()) else {
            return Lookup::NotYet;
        };
        let view = |index| SharedView {
            table: Some(self),
            index,
        };
        if boundary > newest.boundary_ms {
            return Lookup::NotYet;
        }
        if boundary < oldest.boundary_ms {
            return Lookup::Expired(view(0));
        }
        let i = ((boundary - oldest.boundary_ms) / self.interval_ms) as usize;
        match self.frozen.get(i) {
            Some(f) if f.boundary_ms == boundary => Lookup::Ready(view(i)),
            _ => Lookup::NotYet,
        }
    }

    /// The boundary an event read as of `ms` uses: one interval before `floor(ms)`.
    fn boundary_for(&self, ms: i64) -> i64 {
        ms.div_euclid(self.interval_ms)
            .saturating_sub(1)
            .saturating_mul(self.interval_ms)
    }

    /// Apply what the frontier allows and freeze every boundary it has passed.
    fn advance(&mut self) {
        let Some(frontier) = self.frontier_ms() else {
            return;
        };
        let next = match self.next_boundary {
            Some(b) => b,
            None => {
                // Everything at or below the frontier is read, so the oldest pending event
                // is the oldest event of all: the first boundary is the one at or before it.
                let Some(Reverse(oldest)) = self.pending.peek() else {
                    return;
                };
                if oldest.key.0 > frontier {
                    return;
                }
                let first = oldest.key.0.div_euclid(self.interval_ms) * self.interval_ms;
                self.first_boundary = Some(first);
                self.next_boundary = Some(first);
                first
            }
        };
        if next > frontier {
            self.apply_through(frontier);
            return;
        }
        // Freeze every boundary the frontier passed; only the last few are kept.
        let last = frontier.div_euclid(self.interval_ms) * self.interval_ms;
        let keep_from = self.keep_from(last);
        let mut boundary = next;
        if boundary < keep_from {
            // Boundaries nobody will read: freezing each in turn would only drop it again,
            // so apply their events and drop their undo logs at once. (A jump of the
            // frontier — years of event time, from one event stamped far ahead — then costs
            // nothing per skipped boundary.)
            let skipped = (keep_from - boundary) / self.interval_ms;
            boundary += skipped * self.interval_ms;
            self.apply_through(boundary - 1);
            if let Some(undo) = self.engine.merchant_undo.as_mut() {
                undo.clear();
            }
            self.frozen.clear();
            self.stats.frozen += skipped as u64;
        }
        while boundary <= last {
            self.apply_through(boundary - 1);
            self.freeze(boundary, boundary >= keep_from);
            self.stats.frozen += 1;
            boundary = boundary.saturating_add(self.interval_ms);
        }
        self.next_boundary = Some(boundary);
        // Events between the last boundary and the frontier are applied now (the next
        // snapshot holds them either way), which keeps the buffer small.
        self.apply_through(frontier);
    }

    fn apply_through(&mut self, last_ms: i64) {
        while self
            .pending
            .peek()
            .is_some_and(|Reverse(p)| p.key.0 <= last_ms)
        {
            if let Some(Reverse(p)) = self.pending.pop() {
                self.engine.process_for_table(&p.tx);
                self.stats.applied += 1;
                self.applied_ms = self.applied_ms.max(p.key.0);
            }
        }
        self.applied_ms = self.applied_ms.max(last_ms);
    }

    /// The oldest boundary worth keeping when `newest` is the newest frozen.
    fn keep_from(&self, newest: i64) -> i64 {
        let recent = newest.saturating_sub(self.interval_ms * (KEEP_SNAPSHOTS as i64 - 1));
        let held = match self.hold_ms {
            Some(ms) => recent.min(self.boundary_for(ms)),
            None => recent,
        };
        held.max(newest.saturating_sub(self.interval_ms * (MAX_KEPT as i64 - 1)))
    }

    /// Close the undo log of the previous boundary and start one for `boundary`, which is
    /// kept for lookups if `keep`.
    fn freeze(&mut self, boundary: i64, keep: bool) {
        let changed = self
            .engine
            .merchant_undo
            .replace(HashMap::new())
            .unwrap_or_default();
        match self.frozen.back_mut() {
            Some(previous) if keep && previous.boundary_ms == boundary - self.interval_ms => {
                previous.undo = changed;
            }
            // Without the log of this interval, older boundaries cannot be rebuilt.
            _ => self.frozen.clear(),
        }
        if keep {
            self.frozen.push_back(Frozen {
                boundary_ms: boundary,
                categories: self.engine.categories.clone(),
                undo: HashMap::new(),
            });
        }
        self.trim();
    }

    fn trim(&mut self) {
        let Some(newest) = self.frozen.back().map(|s| s.boundary_ms) else {
            return;
        };
        let keep_from = self.keep_from(newest);
        while self
            .frozen
            .front()
            .is_some_and(|s| s.boundary_ms < keep_from)
        {
            self.frozen.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Feature;
    use crate::hash::partition_of;
    use std::collections::HashSet;

    const PARTITIONS: u32 = 4;
    const HOUR: i64 = 3_600_000;

    pub(super) fn traffic(days: u32) -> Vec<Transaction> {
        let mut events: Vec<Transaction> =
            veritas_events::Generator::new(veritas_events::GeneratorConfig {
                seed: 11,
                customers: 400,
                days: Some(days),
                ..veritas_events::GeneratorConfig::default()
            })
            .unwrap()
            .map(|e| e.tx)
            .collect();
        events.sort_by_key(|t| t.timestamp);
        events
    }

    /// Features of every event as one engine computes them, reading a table fed the whole
    /// stream in time order as one partition.
    fn one_engine(events: &[Transaction]) -> HashMap<String, Features> {
        let cfg = EngineConfig::default();
        let mut stream = SingleStream::new(&cfg, HOUR);
        let mut engine = Engine::new(cfg.clone());
        let mut out = HashMap::new();
        for tx in events {
            let snap = stream.next(tx);
            out.insert(
                tx.transaction_id.clone(),
                engine.process_shared(tx, &snap).0,
            );
        }
        let stats = stream.stats();
        assert_eq!(stats.late + stats.missed, 0);
        out
    }

    /// What partitioned serving does: every partition's events in order, but the table's
    /// reading interleaves the partitions in random-sized chunks, and each partition's
    /// engine scores its next event as soon as the snapshot it needs is frozen.
    fn partitioned(events: &[Transaction], seed: u64) -> (HashMap<String, Features>, SharedStats) {
        let cfg = EngineConfig::default();
        let lateness = i64::try_from(cfg.lateness_secs * 1000).unwrap();
        let mut queues: Vec<Vec<&Transaction>> = vec![Vec::new(); PARTITIONS as usize];
        for tx in events {
            queues[partition_of(&tx.card_number, PARTITIONS) as usize].push(tx);
        }
        let mut table = SharedTable::new(&cfg, PARTITIONS, HOUR);
        let mut engines: Vec<Engine> = (0..PARTITIONS).map(|_| Engine::new(cfg.clone())).collect();
        let mut read = vec![0usize; PARTITIONS as usize];
        let mut scored = vec![0usize; PARTITIONS as usize];
        let mut max_ms: Vec<Option<i64>> = vec![None; PARTITIONS as usize];
        let mut out = HashMap::new();
        let mut rng = seed;
        let mut next = || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            rng >> 33
        };
        while (0..PARTITIONS as usize).any(|p| read[p] < queues[p].len()) {
            // The slowest scoring position: the lookup time of the first unscored event.
            let hold = (0..PARTITIONS as usize)
                .filter_map(|q| {
                    queues[q]
                        .get(scored[q])
                        .map(|tx| lookup_ms(max_ms[q], tx.timestamp.timestamp_millis(), lateness))
                })
                .min();
            table.hold(hold);
            let p = (next() % u64::from(PARTITIONS)) as usize;
            let chunk = 1 + (next() % 200) as usize;
            for _ in 0..chunk {
                let Some(tx) = queues[p].get(read[p]) else {
                    break;
                };
                table.offer(p as u32, read[p] as i64, tx);
                read[p] += 1;
            }
            for q in 0..PARTITIONS as usize {
                while let Some(tx) = queues[q].get(scored[q]).filter(|_| scored[q] < read[q]) {
                    let ms = tx.timestamp.timestamp_millis();
                    let at = lookup_ms(max_ms[q], ms, lateness);
                    let snap = match table.lookup(at) {
                        Lookup::Ready(s) => s,
                        Lookup::NotYet => break,
                        Lookup::Expired(_) => {
                            panic!("partition {q} fell behind the kept snapshots")
                        }
                    };
                    let f = engines[q].process_shared(tx, &snap).0;
                    out.insert(tx.transaction_id.clone(), f);
                    max_ms[q] = Some(max_ms[q].map_or(ms, |m| m.max(ms)));
                    scored[q] += 1;
                }
            }
        }
        (out, table.stats())
    }

    #[test]
    fn partitioned_engines_read_the_same_merchant_state_as_one() {
        let events = traffic(6);
        let reference = one_engine(&events);
        let with_merchant = reference
            .values()
            .filter(|f| f.get(Feature::MerchantNewCardShare).is_some())
            .count();
        assert!(
            with_merchant > events.len() / 3,
            "{with_merchant} of {}",
            events.len()
        );
        for seed in [1, 2, 3] {
            let (served, stats) = partitioned(&events, seed);
            assert_eq!(stats.late + stats.missed, 0);
            assert!(stats.frozen >= 24 * 5, "{stats:?}");
            // Events of the last interval or two wait for a boundary that never freezes.
            assert!(
                served.len() > events.len() * 9 / 10,
                "{} of {}",
                served.len(),
                events.len()
            );
            let mut compared = 0;
            for (id, f) in &served {
                if let Some(r) = reference.get(id) {
                    let differ: Vec<&str> = Feature::ALL
                        .iter()
                        .filter(|&&x| f.raw(x).to_bits() != r.raw(x).to_bits())
                        .map(|x| x.name())
                        .collect();
                    assert!(
                        differ.is_empty(),
                        "features of {id} differ (seed {seed}): {differ:?}"
                    );
                    compared += 1;
                }
            }
            assert!(compared > events.len() * 9 / 10);
        }
    }

    #[test]
    fn events_of_equal_time_apply_in_one_order_whatever_the_partitioning() {
        // Bursts of same-millisecond events at one merchant from cards all over the
        // partitions: the per-transaction averages depend on the order they apply in.
        let mut events = traffic(4);
        let base = events[0].timestamp;
        for (i, tx) in events.iter_mut().enumerate() {
            if i % 3 == 0 {
                tx.merchant_id = Some("mer_burst".into());
                tx.timestamp = base + chrono::Duration::minutes((i / 30) as i64 * 7);
            }
        }
        events.sort_by_key(|t| t.timestamp);
        let reference = one_engine(&events);
        let (served, _) = partitioned(&events, 9);
        let mut compared = 0;
        for (id, f) in &served {
            let r = &reference[id];
            assert!(f.bit_eq(r), "features of {id} differ");
            compared += 1;
        }
        assert!(compared > events.len() * 9 / 10);
    }

    #[test]
    fn views_rebuild_the_state_as_of_their_boundary() {
        // Reference: an engine fed the events in the table's order and copied whole at
        // every boundary; a view must read exactly the copy of its boundary.
        let events = traffic(4);
        let cfg = EngineConfig::default();
        let key = |t: &Transaction| {
            (
                t.timestamp.timestamp_millis(),
                fnv1a64(t.transaction_id.as_bytes()),
            )
        };
        let mut sorted = events.clone();
        sorted.sort_by_key(key);
        let mut reference = Engine::new(cfg.clone());
        let mut copies: HashMap<i64, Engine> = HashMap::new();
        let mut next_boundary = key(&sorted[0]).0.div_euclid(HOUR) * HOUR;
        for tx in &sorted {
            while next_boundary <= key(tx).0 {
                copies.insert(next_boundary, reference.clone());
                next_boundary += HOUR;
            }
            reference.process(tx);
        }
        let mut stream = SingleStream::new(&cfg, HOUR);
        let mut checked = HashSet::new();
        for tx in &events {
            let Some(boundary) = stream.next(tx).boundary_ms() else {
                continue;
            };
            if !checked.insert(boundary) {
                continue;
            }
            let table = &stream.table;
            let Lookup::Ready(view) = table.lookup(boundary + HOUR) else {
                panic!("boundary {boundary} not kept");
            };
            let copy = &copies[&boundary];
            // Every merchant the table knows now, and every one the copy knew.
            let live = table.engine.merchants.keys();
            for k in live.chain(copy.merchants.keys()) {
                assert_eq!(
                    view.merchant(k),
                    copy.merchants.get(k),
                    "merchant {k} at {boundary}"
                );
            }
            for (c, w) in &copy.categories {
                assert_eq!(view.category(*c), Some(w));
            }
        }
        assert!(
            checked.len() > 24 * 3,
            "{} boundaries checked",
            checked.len()
        );
    }

    #[test]
    fn partitioned_engines_alone_differ_from_one() {
        // The control: each partition's own merchant state is not one engine's.
        let events = traffic(3);
        let reference = one_engine(&events);
        let mut engines: Vec<Engine> = (0..PARTITIONS).map(|_| Engine::default()).collect();
        let differ = events
            .iter()
            .filter(|tx| {
                let p = partition_of(&tx.card_number, PARTITIONS) as usize;
                let f = engines[p].process(tx);
                reference
                    .get(&tx.transaction_id)
                    .is_some_and(|r| !f.bit_eq(r))
            })
            .count();
        assert!(differ > events.len() / 4, "{differ} of {}", events.len());
    }

    #[test]
    fn lookups_wait_for_every_partition_and_release_lets_an_idle_one_go() {
        let cfg = EngineConfig::default();
        let events = traffic(2);
        let mut table = SharedTable::new(&cfg, 2, HOUR);
        // Only partition 0 delivers: nothing can freeze.
        for (i, tx) in events.iter().enumerate() {
            assert!(table.offer(0, i as i64, tx));
        }
        assert_eq!(table.frontier_ms(), None);
        let last = events.last().unwrap().timestamp.timestamp_millis();
        assert!(matches!(table.lookup(last), Lookup::NotYet));
        assert_eq!(table.pending(), events.len());
        // Partition 1 idle: released, the frontier follows partition 0 alone.
        table.release(1);
        let frontier = table.frontier_ms().unwrap();
        assert_eq!(frontier, last - table.lateness_ms());
        assert!(matches!(table.lookup(last), Lookup::Ready(_)));
        assert!(table.pending() < events.len() / 10);
        // Boundaries before the first event read the empty state; old ones expire.
        let first = events[0].timestamp.timestamp_millis();
        match table.lookup(first) {
            Lookup::Ready(s) => assert_eq!(s.boundary_ms(), None),
            other => panic!("{other:?}"),
        }
        assert!(matches!(table.lookup(first + 6 * HOUR), Lookup::Expired(_)));
        // A hold keeps what a lagging scorer still needs.
        let mut held = SharedTable::new(&cfg, 1, HOUR);
        held.hold(Some(first + 6 * HOUR));
        for (i, tx) in events.iter().enumerate() {
            held.offer(0, i as i64, tx);
        }
        assert!(matches!(held.lookup(first + 6 * HOUR), Lookup::Ready(_)));
        // Holding a later time too never gives up what the first hold keeps.
        held.hold_also(last);
        assert!(matches!(held.lookup(first + 6 * HOUR), Lookup::Ready(_)));
        held.hold(None);
        assert!(matches!(held.lookup(first + 6 * HOUR), Lookup::Expired(_)));
        // Partition 1 wakes with an event below what was applied: missed, not applied.
        let mut old = events[10].clone();
        old.transaction_id = "late-wakeup".into();
        assert!(!table.offer(1, 0, &old));
        assert_eq!(table.stats().missed, 1);
    }

    #[test]
    fn events_beyond_the_partition_lateness_bound_stay_out() {
        let cfg = EngineConfig::default();
        let events = traffic(1);
        let mut table = SharedTable::new(&cfg, 1, HOUR);
        let last = events.last().unwrap();
        assert!(table.offer(0, 0, last));
        let mut stale = events[0].clone();
        stale.transaction_id = "stale".into();
        assert!(!table.offer(0, 1, &stale));
        assert_eq!(table.stats().late, 1);
        let bound = lookup_ms(
            Some(last.timestamp.timestamp_millis()),
            0,
            table.lateness_ms(),
        );
        assert_eq!(
            bound,
            last.timestamp.timestamp_millis() - table.lateness_ms()
        );
    }

    #[test]
    fn an_event_stamped_thousands_of_years_ahead_neither_stalls_nor_grows_the_table() {
        let cfg = EngineConfig::default();
        let events = traffic(1);
        let mut table = SharedTable::new(&cfg, 1, 1000);
        assert_eq!(table.interval_ms, table.lateness_ms());
        // A hold far back would keep every snapshot up to the jump, without the cap.
        table.hold(Some(events[0].timestamp.timestamp_millis()));
        for (i, tx) in events.iter().enumerate() {
            table.offer(0, i as i64, tx);
        }
        let mut ahead = events[0].clone();
        ahead.transaction_id = "year-9999".into();
        ahead.timestamp = "9999-12-31T23:59:59Z".parse().unwrap();
        // ~8e8 boundaries (the interval is the 5-minute lateness bound) between now and
        // then: skipped at once, not frozen one by one (which would take minutes).
        assert!(table.offer(0, events.len() as i64, &ahead));
        assert!(table.frozen.len() <= MAX_KEPT);
        assert!(table.stats().frozen > 800_000_000, "{:?}", table.stats());
        assert!(matches!(
            table.lookup(ahead.timestamp.timestamp_millis()),
            Lookup::Ready(_)
        ));
    }
}
