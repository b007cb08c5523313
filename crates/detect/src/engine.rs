//! The streaming feature engine: per-card and per-merchant state, features from the past.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use veritas_events::{Channel, Transaction};

use crate::features::{Feature, Features};
use crate::geo::{haversine_km, valid_point};
use crate::hash::{key32, key32_upper};
use crate::shared::SharedView;
use crate::state::{
    ema_correction, merchant24, CardState, Located, MerchantState, MerchantSums, Recent, Welford,
    CUSUM_K, EVENT_ALPHA_LONG, EVENT_ALPHA_SHORT, HORIZON_MS, MERCHANT_BASELINE_TAU_MS,
    MERCHANT_TAU_MS, RECENT_HIGH_AMOUNT, RECENT_NEW_CATEGORY, RECENT_NEW_MERCHANT,
};

/// Amounts strictly below this are "micro" transactions (card-testing probes).
pub const MICRO_AMOUNT: f64 = 5.0;
/// Most distinct categories tracked globally; further categories get no global statistics.
pub const MAX_GLOBAL_CATEGORIES: usize = 4096;
/// A jump between located transactions at least this fast (km/h) …
pub const JUMP_SPEED_KMH: f64 = 900.0;
/// … and at least this long (km) is an implausible jump.
pub const JUMP_DISTANCE_KM: f64 = 300.0;
/// Idle-state sweeps run every `idle TTL / SWEEP_DIVISOR` of event time (at least every
/// minute): a sweep visits every card and merchant, so sweeping too often dominates the
/// cost of sparse traffic, and eviction only needs to be roughly on time.
const SWEEP_DIVISOR: i64 = 64;
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Window lengths of the count/sum features.
const WINDOWS_MS: [i64; 5] = [MINUTE_MS, 10 * MINUTE_MS, HOUR_MS, DAY_MS, HORIZON_MS];
/// Distinct merchants are counted up to this many.
const MAX_DISTINCT: usize = 64;

/// Operational settings of the engine. They do not change feature definitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// How far (seconds) an event may lag behind its card's latest event and still be
    /// folded into the card's state. Later events are scored but not remembered.
    pub lateness_secs: u64,
    /// Cards and merchants idle this long (event time, days) are evicted.
    pub idle_ttl_days: u64,
    /// Record eviction tombstones for [`Engine::drain_changelog`]. Enable when state is
    /// checkpointed to a compacted topic; otherwise tombstones would accumulate.
    pub track_changelog: bool,
    /// Most merchants kept in memory (merchant ids come from the input, so a stream of
    /// junk ids must not grow memory without bound). New merchants beyond this get no
    /// merchant state (their merchant features read as for a first visit) until idle
    /// merchants are evicted.
    pub max_merchants: usize,
    /// Largest step (seconds) one event may advance the engine clock (the watermark that
    /// drives idle eviction). A lone event stamped far in the future then cannot age all
    /// state out; after a real gap the clock catches up one step per event.
    pub max_clock_step_secs: u64,
    /// How many engines the card space is split over when serving: the Kafka input
    /// topic's partition count (events are keyed by card number, so each engine sees all
    /// of its cards' events but only about `1/partitions` of every merchant's). The engine
    /// itself does not read it; [`crate::training::replay`] replays labelled history
    /// through this many engines, split by [`crate::partition_of`], so the model is
    /// trained on merchant-level features as thin as the ones it will be served.
    pub partitions: u32,
    /// Read merchant and category features from state shared by every partition (a
    /// [`crate::shared::SharedTable`] built from the whole input, frozen every
    /// `shared_interval_secs` of event time) instead of this engine's share of it. Training
    /// and serving must agree: a model records which it was trained with.
    pub shared_merchants: bool,
    /// Event time between snapshots of the shared state (an event reads the state one to
    /// two intervals old). At least the lateness bound.
    pub shared_interval_secs: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            lateness_secs: 300,
            idle_ttl_days: 60,
            track_changelog: false,
            max_merchants: 1_000_000,
            max_clock_step_secs: 86_400,
            partitions: 6,
            shared_merchants: true,
            shared_interval_secs: 900,
        }
    }
}

impl EngineConfig {
    /// The snapshot interval of shared merchant state, in milliseconds.
    pub fn shared_interval_ms(&self) -> i64 {
        i64::try_from(self.shared_interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// How merchant state is kept, as recorded in model files: `"partition"` or
    /// `"shared:<interval secs>"`.
    pub fn merchant_state(&self) -> String {
        if self.shared_merchants {
            format!("shared:{}", self.shared_interval_secs)
        } else {
            "partition".to_owned()
        }
    }

    fn lateness_ms(&self) -> i64 {
        i64::try_from(self.lateness_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    fn idle_ttl_ms(&self) -> i64 {
        i64::try_from(self.idle_ttl_days.saturating_mul(DAY_MS as u64)).unwrap_or(i64::MAX)
    }
}

/// Counters describing what the engine has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Events processed.
    pub events: u64,
    /// Events older than their card's latest event but within the lateness bound (applied).
    pub late_accepted: u64,
    /// Events beyond the lateness bound: scored, not applied to state.
    pub too_late: u64,
    /// Cards evicted for idleness.
    pub evicted_cards: u64,
    /// Merchants evicted for idleness.
    pub evicted_merchants: u64,
    /// Events whose (new) merchant was not tracked because `max_merchants` was reached.
    pub merchants_untracked: u64,
}

/// Memory held by the engine's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    /// Cards in memory.
    pub cards: usize,
    /// Merchants in memory.
    pub merchants: usize,
    /// Categories with global statistics.
    pub categories: usize,
    /// Approximate bytes of all card state (excluding hash-map overhead and keys).
    pub card_bytes: usize,
    /// Approximate bytes of all merchant state.
    pub merchant_bytes: usize,
}

/// How an event related to its card's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// At or after the card's latest event.
    InOrder,
    /// Before the card's latest event, within the lateness bound; applied to state.
    Late,
    /// Beyond the lateness bound; scored but not applied.
    TooLate,
}

/// The per-event view of a transaction the engine works with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxView<'a> {
    pub(crate) ms: i64,
    pub(crate) amount: f64,
    pub(crate) log_amount: f64,
    pub(crate) merchant_id: Option<&'a str>,
    pub(crate) merchant: u32,
    pub(crate) category: u32,
    pub(crate) channel: Option<usize>,
    pub(crate) loc: Option<(f64, f64)>,
    pub(crate) home: Option<(f64, f64)>,
    pub(crate) country: Option<u16>,
    pub(crate) hour: f64,
    pub(crate) night: bool,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl<'a> TxView<'a> {
    pub(crate) fn new(tx: &'a Transaction) -> Self {
        let ms = tx.timestamp.timestamp_millis();
        let amount = if tx.amount.is_finite() {
            tx.amount.max(0.0)
        } else {
            0.0
        };
        let merchant_id = non_empty(&tx.merchant_id).or_else(|| non_empty(&tx.merchant));
        let hour = ms.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64;
        Self {
            ms,
            amount,
            log_amount: amount.ln_1p(),
            merchant_id,
            merchant: merchant_id.map_or(0, key32),
            category: non_empty(&tx.category).map_or(0, key32),
            channel: tx.channel.map(|c| match c {
                Channel::Pos => 0,
                Channel::Online => 1,
                Channel::Atm => 2,
            }),
            loc: valid_point(tx.lat, tx.lon),
            home: valid_point(tx.home_lat, tx.home_lon),
            country: non_empty(&tx.country).map(|c| key32_upper(c) as u16),
            hour,
            night: !(6.0..22.0).contains(&hour),
        }
    }
}

/// Round-ness of an amount: 0 = has cents, 1 = whole, 2 = multiple of 10, 3 = multiple of 100.
pub(crate) fn roundness(amount: f64) -> f64 {
    let cents = (amount * 100.0).round();
    if !cents.is_finite() || cents <= 0.0 || cents % 100.0 != 0.0 {
        0.0
    } else if cents % 10_000.0 == 0.0 {
        3.0
    } else if cents % 1_000.0 == 0.0 {
        2.0
    } else {
        1.0
    }
}

/// The streaming feature engine for one partition of the card space.
///
/// [`Engine::process`] computes the features of an event from the state built by earlier
/// events, then folds the event into that state. It performs no I/O and no clock reads:
/// the same events in the same order always give the same features.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) cfg: EngineConfig,
    pub(crate) cards: HashMap<String, CardState>,
    pub(crate) merchants: HashMap<String, MerchantState>,
    pub(crate) categories: HashMap<u32, Welford>,
    /// Highest event time seen (ms).
    pub(crate) watermark: i64,
    pub(crate) next_sweep: i64,
    pub(crate) stats: EngineStats,
    pub(crate) dirty_categories: HashSet<u32>,
    pub(crate) clock_dirty: bool,
    pub(crate) tombstones: Vec<Vec<u8>>,
    /// For the engine of a [`crate::shared::SharedTable`]: every merchant's state before
    /// its first change (insert, update, eviction) since the table last took this map.
    pub(crate) merchant_undo: Option<HashMap<String, Option<MerchantState>>>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(EngineConfig::default())
    }
}

impl Engine {
    /// An empty engine.
    pub fn new(cfg: EngineConfig) -> Self {
        Self {
            cfg,
            cards: HashMap::new(),
            merchants: HashMap::new(),
            categories: HashMap::new(),
            watermark: i64::MIN,
            next_sweep: i64::MIN,
            stats: EngineStats::default(),
            dirty_categories: HashSet::new(),
            clock_dirty: false,
            tombstones: Vec::new(),
            merchant_undo: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Highest event time seen, in milliseconds since the epoch (`None` before any event).
    pub fn watermark_ms(&self) -> Option<i64> {
        (self.watermark != i64::MIN).then_some(self.watermark)
    }

    /// Memory held by the state.
    pub fn memory(&self) -> MemoryStats {
        MemoryStats {
            cards: self.cards.len(),
            merchants: self.merchants.len(),
            categories: self.categories.len(),
            card_bytes: self.cards.values().map(CardState::approx_bytes).sum(),
            merchant_bytes: self
                .merchants
                .values()
                .map(MerchantState::approx_bytes)
                .sum(),
        }
    }

    /// Features of `tx` given the current state, without changing the state.
    pub fn peek(&self, tx: &Transaction) -> Features {
        let v = TxView::new(tx);
        let card = self.cards.get(tx.card_number.as_str());
        let merchant = v.merchant_id.and_then(|m| self.merchants.get(m));
        let cat = (v.category != 0)
            .then(|| self.categories.get(&v.category))
            .flatten();
        compute(card, merchant, cat, &v)
    }

    /// Compute the features of `tx` from past state, then fold `tx` into the state.
    pub fn process(&mut self, tx: &Transaction) -> Features {
        self.process_with_arrival(tx).0
    }

    /// Like [`Engine::process`], also telling how the event related to its card's timeline.
    pub fn process_with_arrival(&mut self, tx: &Transaction) -> (Features, Arrival) {
        self.process_inner(tx, None)
    }

    /// Like [`Engine::process_with_arrival`], with the merchant and category features read
    /// from `shared` (state built from every partition, see [`crate::shared`]) instead of
    /// this engine's own merchant and category state, which the event does not touch.
    pub fn process_shared(
        &mut self,
        tx: &Transaction,
        shared: &SharedView<'_>,
    ) -> (Features, Arrival) {
        self.process_inner(tx, Some(shared))
    }

    fn process_inner(
        &mut self,
        tx: &Transaction,
        shared: Option<&SharedView<'_>>,
    ) -> (Features, Arrival) {
        let v = TxView::new(tx);
        self.stats.events += 1;
        self.advance_clock(v.ms);
        let lateness = self.cfg.lateness_ms();
        let Self {
            cards,
            merchants,
            categories,
            stats,
            ..
        } = self;
        let card = cards.get_mut(tx.card_number.as_str());
        let features = match shared {
            Some(shared) => {
                let merchant = v.merchant_id.and_then(|m| shared.merchant(m));
                let cat = (v.category != 0)
                    .then(|| shared.category(v.category))
                    .flatten();
                compute(card.as_deref(), merchant, cat, &v)
            }
            None => {
                let merchant = v.merchant_id.and_then(|m| merchants.get(m));
                let cat = (v.category != 0)
                    .then(|| categories.get(&v.category))
                    .flatten();
                compute(card.as_deref(), merchant, cat, &v)
            }
        };
        let arrival = arrival_of(card.as_deref(), &v, lateness);
        if !admit(stats, arrival, tx) {
            return (features, arrival);
        }
        if let Some(c) = fold_card(card, &v, &features) {
            cards.insert(tx.card_number.clone(), c);
        }
        // With shared state the event touches only its card here: merchant and category
        // state live in the table.
        if shared.is_none() {
            self.fold_merchant_and_category(&v, &features);
        }
        (features, arrival)
    }

    /// For the engine of a [`crate::shared::SharedTable`], which serves merchant and
    /// category state and never features: folds `tx` into merchant and category state
    /// exactly as [`Engine::process`] would, computing only the few card facts that state
    /// depends on (the card's first visit to the merchant, its transaction count and mean
    /// amount) and keeping only those per card. A full engine computes 74 features and
    /// keeps a 7-day ring of events per card; the table needs neither.
    pub(crate) fn process_for_table(&mut self, tx: &Transaction) {
        let v = TxView::new(tx);
        self.stats.events += 1;
        self.advance_clock(v.ms);
        let lateness = self.cfg.lateness_ms();
        let Self {
            cards,
            merchants,
            categories,
            stats,
            ..
        } = self;
        let card = cards.get_mut(tx.card_number.as_str());
        let merchant = v.merchant_id.and_then(|m| merchants.get(m));
        let cat = (v.category != 0)
            .then(|| categories.get(&v.category))
            .flatten();
        let features = compute_for_table(card.as_deref(), merchant, cat, &v);
        if !admit(stats, arrival_of(card.as_deref(), &v, lateness), tx) {
            return;
        }
        match card {
            Some(c) => apply_card_for_table(c, &v),
            None => {
                let mut c = CardState::default();
                apply_card_for_table(&mut c, &v);
                cards.insert(tx.card_number.clone(), c);
            }
        }
        self.fold_merchant_and_category(&v, &features);
    }

    /// Moves the event-time clock to `ms` (bounded steps) and sweeps idle state when due.
    fn advance_clock(&mut self, ms: i64) {
        if ms > self.watermark {
            let step = i64::try_from(self.cfg.max_clock_step_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX);
            self.watermark = if self.watermark == i64::MIN {
                ms
            } else {
                ms.min(self.watermark.saturating_add(step))
            };
            self.clock_dirty = true;
        }
        if self.watermark >= self.next_sweep {
            self.sweep();
            let interval = (self.cfg.idle_ttl_ms() / SWEEP_DIVISOR).max(MINUTE_MS);
            self.next_sweep = self.watermark.saturating_add(interval);
            self.clock_dirty = true;
        }
    }

    /// Folds an admitted event into its merchant's state and its category's statistics
    /// (recording the merchant's previous state in the undo log, for a table).
    fn fold_merchant_and_category(&mut self, v: &TxView<'_>, features: &Features) {
        let Self {
            merchants,
            categories,
            stats,
            dirty_categories,
            merchant_undo,
            cfg,
            ..
        } = self;
        if let Some(mid) = v.merchant_id {
            let full = merchants.len() >= cfg.max_merchants;
            match merchants.get_mut(mid) {
                Some(m) => {
                    if let Some(undo) = merchant_undo.as_mut() {
                        if !undo.contains_key(mid) {
                            undo.insert(mid.to_owned(), Some(m.clone()));
                        }
                    }
                    apply_merchant(m, v, features)
                }
                None if full => {
                    stats.merchants_untracked += 1;
                }
                None => {
                    let mut m = MerchantState::default();
                    apply_merchant(&mut m, v, features);
                    if let Some(undo) = merchant_undo.as_mut() {
                        undo.entry(mid.to_owned()).or_insert(None);
                    }
                    merchants.insert(mid.to_owned(), m);
                }
            }
        }
        if v.category != 0 {
            let tracked = match categories.get_mut(&v.category) {
                Some(w) => {
                    w.push(v.log_amount);
                    true
                }
                None => {
                    let room = categories.len() < MAX_GLOBAL_CATEGORIES;
                    if room {
                        let mut w = Welford::default();
                        w.push(v.log_amount);
                        categories.insert(v.category, w);
                    }
                    room
                }
            };
            if tracked {
                dirty_categories.insert(v.category);
            }
        }
    }

    /// Evict cards and merchants idle for longer than the configured TTL.
    fn sweep(&mut self) {
        let cutoff = self.watermark.saturating_sub(self.cfg.idle_ttl_ms());
        let track = self.cfg.track_changelog;
        let before = (self.cards.len(), self.merchants.len());
        let tombstones = &mut self.tombstones;
        self.cards.retain(|k, c| {
            let keep = c.last_ms > cutoff;
            if !keep && track {
                tombstones.push(crate::snapshot::card_key(k));
            }
            keep
        });
        let undo = &mut self.merchant_undo;
        self.merchants.retain(|k, m| {
            let keep = m.last_ms > cutoff;
            if !keep {
                if let Some(undo) = undo.as_mut() {
                    undo.entry(k.clone()).or_insert_with(|| Some(m.clone()));
                }
            }
            if !keep && track {
                tombstones.push(crate::snapshot::merchant_key(k));
            }
            keep
        });
        let evicted = (before.0 - self.cards.len(), before.1 - self.merchants.len());
        self.stats.evicted_cards += evicted.0 as u64;
        self.stats.evicted_merchants += evicted.1 as u64;
        if evicted != (0, 0) {
            tracing::debug!(
                cards = evicted.0,
                merchants = evicted.1,
                "evicted idle state"
            );
        }
    }
}

/// How an event relates to its card's timeline.
fn arrival_of(card: Option<&CardState>, v: &TxView<'_>, lateness_ms: i64) -> Arrival {
    match card {
        Some(c) if v.ms < c.last_ms => {
            if c.last_ms - v.ms <= lateness_ms {
                Arrival::Late
            } else {
                Arrival::TooLate
            }
        }
        _ => Arrival::InOrder,
    }
}

/// Counts a late event; `false` for one beyond the lateness bound, which is scored but not
/// folded into state.
fn admit(stats: &mut EngineStats, arrival: Arrival, tx: &Transaction) -> bool {
    match arrival {
        Arrival::InOrder => true,
        Arrival::Late => {
            stats.late_accepted += 1;
            true
        }
        Arrival::TooLate => {
            stats.too_late += 1;
            tracing::debug!(
                transaction_id = %tx.transaction_id,
                "event beyond the lateness bound: scored, not applied to state"
            );
            false
        }
    }
}

/// Fold the event into its card's state; on the card's first event, the new state to insert.
fn fold_card(
    card: Option<&mut CardState>,
    v: &TxView<'_>,
    features: &Features,
) -> Option<CardState> {
    match card {
        Some(c) => {
            apply_card(c, v, features);
            None
        }
        None => {
            let mut c = CardState::default();
            apply_card(&mut c, v, features);
            Some(c)
        }
    }
}

/// The 3-hour block (0..8) of a fractional hour of day.
fn hour_block(hour: f64) -> usize {
    ((hour / 3.0) as usize).min(7)
}

fn z(x: f64, w: &Welford, min_n: u64) -> Option<f64> {
    (w.n >= min_n).then(|| (x - w.mean) / w.std().max(0.1))
}

/// Compute all features of `v` from the state before it.
pub(crate) fn compute(
    card: Option<&CardState>,
    merchant: Option<&MerchantState>,
    cat: Option<&Welford>,
    v: &TxView<'_>,
) -> Features {
    use Feature as F;
    let mut f = Features::missing();
    let t = v.ms;
    f.set(F::Amount, v.amount);
    f.set(F::LogAmount, v.log_amount);
    f.set(F::AmountRoundness, roundness(v.amount));
    f.set(F::HourOfDay, v.hour);
    f.set(F::IsNight, f64::from(u8::from(v.night)));
    f.set_opt(F::ChannelCode, v.channel.map(|c| c as f64));

    // Sliding windows over the card's remembered events at or before `t`.
    let mut counts = [0u32; WINDOWS_MS.len()];
    let mut sums = [0f64; WINDOWS_MS.len()];
    let mut micro_1h = 0u32;
    let mut min_1m: Option<f64> = None;
    let mut distinct = [0u32; MAX_DISTINCT];
    let mut n_distinct = 0usize;
    let mut distinct_10m = None;
    let mut prev_ms: Option<i64> = None;
    let (mut novel_1h, mut novel_24h, mut high_1h, mut high_24h) = (0u32, 0u32, 0u32, 0u32);
    let mut prev_amount: Option<f64> = None;

    let merchant_key = merchant24(v.merchant);
    if merchant_key != 0 {
        distinct[0] = merchant_key;
        n_distinct = 1;
    }
    let (mut novel_3h, mut novel_high_3h) = (0u32, 0u32);
    if let Some(c) = card {
        for e in c.recent.iter().rev() {
            if e.ms > t {
                continue;
            }
            let age = t - e.ms;
            if age >= HORIZON_MS {
                break;
            }
            prev_ms.get_or_insert(e.ms);
            let amount = f64::from(e.amount);
            prev_amount.get_or_insert(amount);
            for (i, w) in WINDOWS_MS.iter().enumerate() {
                if age < *w {
                    counts[i] += 1;
                    sums[i] += amount;
                }
            }
            if age < MINUTE_MS {
                min_1m = Some(min_1m.map_or(amount, |m: f64| m.min(amount)));
            }
            if age >= 10 * MINUTE_MS && distinct_10m.is_none() {
                distinct_10m = Some(n_distinct);
            }
            let flags = e.flags();
            let novel = flags & (RECENT_NEW_MERCHANT | RECENT_NEW_CATEGORY) != 0;
            if age < DAY_MS {
                novel_24h += u32::from(novel);
                high_24h += u32::from(flags & RECENT_HIGH_AMOUNT != 0);
            }
            if age < 3 * HOUR_MS {
                novel_3h += u32::from(novel);
                novel_high_3h += u32::from(novel && flags & RECENT_HIGH_AMOUNT != 0);
            }
            if age < HOUR_MS {
                novel_1h += u32::from(novel);
                high_1h += u32::from(flags & RECENT_HIGH_AMOUNT != 0);
                if amount < MICRO_AMOUNT {
                    micro_1h += 1;
                }
                let key = e.merchant_key();
                if key != 0 && n_distinct < MAX_DISTINCT && !distinct[..n_distinct].contains(&key) {
                    distinct[n_distinct] = key;
                    n_distinct += 1;
                }
            }
        }
    }
    let window_features = [
        (F::Count1m, F::Sum1m),
        (F::Count10m, F::Sum10m),
        (F::Count1h, F::Sum1h),
        (F::Count24h, F::Sum24h),
        (F::Count7d, F::Sum7d),
    ];
    for (i, (cf, sf)) in window_features.iter().enumerate() {
        f.set(*cf, f64::from(counts[i]));
        f.set(*sf, sums[i]);
    }
    f.set(F::MicroTx1h, f64::from(micro_1h));
    f.set(F::NovelTx1h, f64::from(novel_1h));
    f.set(F::NovelTx24h, f64::from(novel_24h));
    f.set(F::NovelTx3h, f64::from(novel_3h));
    f.set(F::NovelHighTx3h, f64::from(novel_high_3h));
    f.set(F::HighAmountTx1h, f64::from(high_1h));
    f.set(F::HighAmountTx24h, f64::from(high_24h));
    if v.merchant != 0 {
        f.set(
            F::DistinctMerchants10m,
            distinct_10m.unwrap_or(n_distinct) as f64,
        );
        f.set(F::DistinctMerchants1h, n_distinct as f64);
    }
    f.set_opt(F::MinAmount1m, min_1m);
    f.set_opt(
        F::SmallThenLargeRatio,
        min_1m.map(|m| v.amount / m.max(0.01)),
    );

    let count = card.map_or(0, |c| c.count);
    f.set(F::CardTxCount, count as f64);
    let first_use = |known: bool| f64::from(u8::from(known));
    match card {
        None => {
            f.set(F::Velocity24hRatio, 1.0);
            if v.merchant != 0 {
                f.set(F::MerchantNew, 1.0);
            }
            if v.category != 0 {
                f.set(F::CategoryNew, 1.0);
            }
            if let (Some(p), Some(h)) = (v.loc, v.home) {
                f.set(F::DistHomeKm, haversine_km(p.0, p.1, h.0, h.1));
            }
        }
        Some(c) => {
            let age_days = (t - c.first_ms).max(0) as f64 / DAY_MS as f64;
            f.set(F::CardAgeDays, age_days);
            if t >= c.last_ms {
                f.set(F::SecsSincePrev, (t - c.last_ms) as f64 / 1000.0);
            } else if let Some(p) = prev_ms {
                f.set(F::SecsSincePrev, (t - p) as f64 / 1000.0);
            }
            f.set_opt(F::AmountZscore, z(v.log_amount, &c.log_amount, 3));
            let mean = c.amount.mean.max(1.0);
            f.set(F::AmountToMean, v.amount / mean);
            f.set(F::AmountToMax, v.amount / c.max_amount.max(1.0));
            let daily_rate = c.count as f64 / age_days.max(1.0);
            f.set(
                F::Velocity24hRatio,
                (f64::from(counts[3]) + 1.0) / (daily_rate + 1.0),
            );
            f.set(F::Spend24hToMean, (sums[3] + v.amount) / mean);
            f.set(F::Spend1hToMean, (sums[2] + v.amount) / mean);
            f.set_opt(F::PrevAmountToMean, prev_amount.map(|a| a / mean));
            f.set(F::CardMicroShare, c.micro as f64 / c.count as f64);
            if c.last_jump_ms != i64::MIN && c.last_jump_ms <= t {
                f.set(
                    F::HoursSinceJump,
                    (t - c.last_jump_ms) as f64 / HOUR_MS as f64,
                );
            }

            if let Some(p) = v.loc {
                if let Some(prev) = c.last_loc.filter(|l| l.ms <= t) {
                    let d = haversine_km(prev.lat, prev.lon, p.0, p.1);
                    let hours = ((t - prev.ms) as f64 / 1000.0).max(60.0) / 3600.0;
                    f.set(F::DistPrevKm, d);
                    f.set(F::SpeedKmh, d / hours);
                }
                if let Some(h) = v.home.or(c.home) {
                    let d = haversine_km(p.0, p.1, h.0, h.1);
                    f.set(F::DistHomeKm, d);
                    if c.home_dist.n > 0 {
                        f.set(F::DistHomeToTypical, d / (c.home_dist.mean + 1.0));
                    }
                }
            }
            if let Some(code) = v.country {
                if !c.countries.is_empty() {
                    f.set(F::CountryNew, first_use(!c.countries.contains(&code)));
                }
            }
            if v.merchant != 0 {
                f.set(
                    F::MerchantNew,
                    first_use(!c.merchants.contains(&v.merchant)),
                );
            }
            if v.category != 0 {
                let seen = c.categories.iter().find(|e| e.0 == v.category);
                f.set(F::CategoryNew, first_use(seen.is_none()));
                if c.categorised > 0 {
                    let n = seen.map_or(0, |e| e.1);
                    f.set(F::CategoryShare, f64::from(n) / c.categorised as f64);
                }
                if let Some(&(_, n, sum)) = seen.filter(|e| e.1 > 0) {
                    let mean = f64::from(sum) / f64::from(n);
                    f.set(F::AmountToCategoryMean, v.amount / mean.max(1.0));
                }
            }
            if let Some(ch) = v.channel {
                if c.channelled > 0 {
                    let n = c.channels.get(ch).copied().unwrap_or(0);
                    f.set(F::ChannelShare, n as f64 / c.channelled as f64);
                }
            }
            if c.count >= 3 {
                let mean_angle = c.hour_sin.atan2(c.hour_cos);
                let angle = v.hour / 24.0 * std::f64::consts::TAU;
                let diff = (angle - mean_angle).rem_euclid(std::f64::consts::TAU);
                let circ = diff.min(std::f64::consts::TAU - diff);
                f.set(F::HourDeviation, circ / std::f64::consts::TAU * 24.0);
            }
            f.set(F::CardNightShare, c.night as f64 / c.count as f64);
            if c.count >= 3 {
                let block = c.hour_blocks.get(hour_block(v.hour)).copied().unwrap_or(0);
                f.set(F::HourBlockShare, f64::from(block) / c.count as f64);
            }
        }
    }

    if v.merchant != 0 {
        match merchant {
            None => {}
            Some(m) => merchant_features(&mut f, m, v),
        }
    }
    if let Some(w) = cat {
        f.set_opt(F::CategoryAmountZscore, z(v.log_amount, w, 20));
    }
    f
}

/// Fold the event into the card's state.
fn apply_card(c: &mut CardState, v: &TxView<'_>, f: &Features) {
    if c.count == 0 {
        c.first_ms = v.ms;
        c.last_ms = v.ms;
        c.last_jump_ms = i64::MIN;
    } else {
        c.first_ms = c.first_ms.min(v.ms);
        c.last_ms = c.last_ms.max(v.ms);
    }
    c.count += 1;
    c.amount.push(v.amount);
    c.log_amount.push(v.log_amount);
    c.max_amount = c.max_amount.max(v.amount);
    let mut flags = 0u8;
    if f.get(Feature::MerchantNew) == Some(1.0) {
        flags |= RECENT_NEW_MERCHANT;
    }
    if f.get(Feature::CategoryNew) == Some(1.0) {
        flags |= RECENT_NEW_CATEGORY;
    }
    if is_high_amount(f) {
        flags |= RECENT_HIGH_AMOUNT;
    }
    if v.amount < MICRO_AMOUNT {
        c.micro += 1;
    }
    let jumped = f
        .get(Feature::SpeedKmh)
        .is_some_and(|s| f64::from(s) >= JUMP_SPEED_KMH)
        && f.get(Feature::DistPrevKm)
            .is_some_and(|d| f64::from(d) >= JUMP_DISTANCE_KM);
    if jumped && v.ms > c.last_jump_ms {
        c.last_jump_ms = v.ms;
    }
    c.insert_recent(Recent {
        ms: v.ms,
        amount: v.amount as f32,
        merchant: Recent::tag(v.merchant, flags),
    });
    if let Some((lat, lon)) = v.loc {
        if c.last_loc.is_none_or(|l| v.ms >= l.ms) {
            c.last_loc = Some(Located { ms: v.ms, lat, lon });
        }
    }
    if let Some(h) = v.home {
        c.home = Some(h);
    }
    if let Some(d) = f.get(Feature::DistHomeKm) {
        c.home_dist.push(f64::from(d));
    }
    if v.merchant != 0 {
        c.touch_merchant(v.merchant);
    }
    if v.category != 0 {
        c.count_category(v.category, v.amount as f32);
    }
    if let Some(ch) = v.channel {
        if let Some(n) = c.channels.get_mut(ch) {
            *n += 1;
            c.channelled += 1;
        }
    }
    if let Some(code) = v.country {
        c.see_country(code);
    }
    if v.night {
        c.night += 1;
    }
    if let Some(b) = c.hour_blocks.get_mut(hour_block(v.hour)) {
        *b = b.saturating_add(1);
    }
    let angle = v.hour / 24.0 * std::f64::consts::TAU;
    c.hour_sin += angle.sin();
    c.hour_cos += angle.cos();
    c.dirty = true;
}

/// The features [`apply_merchant`] reads, computed exactly as [`compute`] computes them:
/// the card's transaction count, its amount against its mean, whether it visits the
/// merchant for the first time, and the amount's z-scores against the merchant and the
/// category. `table_state_equals_a_full_engines` checks the merchant and category state
/// it leads to against a full engine's.
fn compute_for_table(
    card: Option<&CardState>,
    merchant: Option<&MerchantState>,
    cat: Option<&Welford>,
    v: &TxView<'_>,
) -> Features {
    use Feature as F;
    let mut f = Features::missing();
    f.set(F::CardTxCount, card.map_or(0, |c| c.count) as f64);
    match card {
        None => {
            if v.merchant != 0 {
                f.set(F::MerchantNew, 1.0);
            }
        }
        Some(c) => {
            f.set(F::AmountToMean, v.amount / c.amount.mean.max(1.0));
            if v.merchant != 0 {
                let known = c.merchants.contains(&v.merchant);
                f.set(F::MerchantNew, f64::from(u8::from(!known)));
            }
        }
    }
    if v.merchant != 0 {
        if let Some(m) = merchant {
            f.set_opt(F::MerchantAmountZscore, z(v.log_amount, &m.log_amount, 5));
        }
    }
    if let Some(w) = cat {
        f.set_opt(F::CategoryAmountZscore, z(v.log_amount, w, 20));
    }
    f
}

/// Fold the event into the part of a card's state [`compute_for_table`] reads (and the
/// idle sweep: its last time).
fn apply_card_for_table(c: &mut CardState, v: &TxView<'_>) {
    if c.count == 0 {
        c.first_ms = v.ms;
        c.last_ms = v.ms;
        c.last_jump_ms = i64::MIN;
    } else {
        c.first_ms = c.first_ms.min(v.ms);
        c.last_ms = c.last_ms.max(v.ms);
    }
    c.count += 1;
    c.amount.push(v.amount);
    if v.merchant != 0 {
        c.touch_merchant(v.merchant);
    }
}

/// More than 3x the card's mean amount, for a card with 3+ earlier transactions.
fn is_high_amount(f: &Features) -> bool {
    f.get(Feature::CardTxCount).is_some_and(|n| n >= 3.0)
        && f.get(Feature::AmountToMean).is_some_and(|r| r > 3.0)
}

/// The merchant-level features of an event at a merchant the engine knows.
///
/// Every value is a ratio of two sums that scale alike with the merchant's traffic (or a
/// mean, or the merchant's age), so an engine that sees a random share of the merchant's
/// cards — one Kafka partition's — estimates the same values as one that sees them all.
fn merchant_features(f: &mut Features, m: &MerchantState, v: &TxView<'_>) {
    use Feature as F;
    let t = v.ms;
    let age_ms = (t - m.first_ms).max(0) as f64;
    let (kf, ks) = m.decay_factors(t);
    let (fast, slow) = (&m.fast, &m.slow);
    if age_ms >= HOUR_MS as f64 && slow.activity > 0.0 {
        // An exponentially decayed count of events at rate r over an age A has expectation
        // r·τ·(1 − e^(−A/τ)): divide it out to compare rates.
        let fast_rate =
            fast.activity * kf / (MERCHANT_TAU_MS * -(-age_ms / MERCHANT_TAU_MS).exp_m1());
        let slow_rate = slow.activity * ks
            / (MERCHANT_BASELINE_TAU_MS * -(-age_ms / MERCHANT_BASELINE_TAU_MS).exp_m1());
        if slow_rate > 0.0 {
            f.set(F::MerchantVelocityRatio, fast_rate / slow_rate);
        }
    }
    // The baseline is the slow sums minus the fast ones: weights e^(−a/14 d) − e^(−a/1 d)
    // are ~0 for the last hours and peak a few days back, so the recent transactions
    // being judged are (almost) not part of the baseline they are compared with.
    let older = |x_slow: f64, x_fast: f64| (x_slow * ks - x_fast * kf).max(0.0);
    let older_activity = older(slow.activity, fast.activity);
    let has_baseline = older_activity > 1e-9;
    if fast.activity > 0.0 {
        let share = |x: f64| x / fast.activity;
        f.set(F::MerchantNewCardShare, share(fast.new_card));
        f.set(F::MerchantHighAmountShare, share(fast.high_amount));
        f.set(F::MerchantMicroShare, share(fast.micro));
        f.set(F::MerchantAnomalyShare, share(fast.anomalous));
        f.set(F::MerchantSuspectShare, share(fast.suspect));
        // Sample-size aware forms: the recent (24 h decayed) volume itself, and the
        // elevated and suspect shares shrunk toward fixed priors by a pseudo-count of 8
        // transactions, so two suspect transactions out of two read as less than twenty
        // out of twenty.
        let volume = fast.activity * kf;
        f.set(F::MerchantRecentVolume, volume);
        f.set(
            F::MerchantElevatedPosterior,
            (fast.elevated * kf + PRIOR_STRENGTH * ELEVATED_PRIOR) / (volume + PRIOR_STRENGTH),
        );
        f.set(
            F::MerchantSuspectPosterior,
            (fast.suspect * kf + PRIOR_STRENGTH * SUSPECT_PRIOR) / (volume + PRIOR_STRENGTH),
        );
        if has_baseline {
            let base = |x_slow: f64, x_fast: f64| older(x_slow, x_fast) / older_activity;
            f.set(
                F::MerchantBaselineNewCardShare,
                base(slow.new_card, fast.new_card),
            );
            f.set(
                F::MerchantNewCardLift,
                share(fast.new_card) - base(slow.new_card, fast.new_card),
            );
            f.set(
                F::MerchantSuspectLift,
                share(fast.suspect) - base(slow.suspect, fast.suspect),
            );
        }
    }
    f.set_opt(F::MerchantAmountZscore, z(v.log_amount, &m.log_amount, 5));
    f.set(F::MerchantTicketCusum, m.ticket_cusum.at(t));
    if fast.cat_z_n > 0.0 {
        let recent = fast.cat_z_sum / fast.cat_z_n;
        f.set(F::MerchantRecentCategoryZ, recent);
        let older_n = older(slow.cat_z_n, fast.cat_z_n);
        if older_n > 1e-9 {
            let older_sum = slow.cat_z_sum * ks - fast.cat_z_sum * kf;
            f.set(F::MerchantCategoryZShift, recent - older_sum / older_n);
        }
    }
    if fast.own_z_n > 0.0 {
        f.set(F::MerchantRecentAmountZ, fast.own_z_sum / fast.own_z_n);
    }
    let e = &m.events;
    if e.n > 0 {
        let short = ema_correction(EVENT_ALPHA_SHORT, e.n);
        let long = ema_correction(EVENT_ALPHA_LONG, e.n);
        f.set(F::MerchantLast8SuspectShare, e.suspect / short);
        f.set(F::MerchantLast8ElevatedShare, e.elevated / short);
        f.set(
            F::MerchantLast8ElevatedLift,
            e.elevated / short - e.elevated_long / long,
        );
    }
    if e.z_n > 0 {
        let short = ema_correction(EVENT_ALPHA_SHORT, e.z_n);
        let long = ema_correction(EVENT_ALPHA_LONG, e.z_n);
        f.set(
            F::MerchantLast8CategoryZShift,
            e.z / short - e.z_long / long,
        );
    }
}

/// Pseudo-count of the priors the merchant posterior shares shrink toward.
const PRIOR_STRENGTH: f64 = 8.0;
/// Prior share of transactions with category z >= 1 (about a standard normal's tail).
const ELEVATED_PRIOR: f64 = 0.16;
/// Prior share of suspect transactions.
const SUSPECT_PRIOR: f64 = 0.05;

/// Fold the event into the merchant's state.
fn apply_merchant(m: &mut MerchantState, v: &TxView<'_>, f: &Features) {
    if m.count == 0 {
        m.first_ms = v.ms;
        m.last_ms = v.ms;
        m.decay_ms = v.ms;
    } else {
        m.first_ms = m.first_ms.min(v.ms);
        m.last_ms = m.last_ms.max(v.ms);
    }
    m.count += 1;
    m.log_amount.push(v.log_amount);
    m.decay_to(v.ms);
    // A late event adds its weight as of the sums' time (it cannot be older than that by
    // more than the lateness bound).
    let mut add = MerchantSums {
        activity: 1.0,
        ..MerchantSums::default()
    };
    let new_card = f.get(Feature::MerchantNew) == Some(1.0);
    if new_card {
        add.new_card = 1.0;
    }
    if is_high_amount(f) {
        add.high_amount = 1.0;
    }
    if f.get(Feature::MerchantAmountZscore)
        .is_some_and(|z| z >= 1.5)
    {
        add.anomalous = 1.0;
    }
    if let Some(z) = f.get(Feature::CategoryAmountZscore) {
        add.cat_z_sum = f64::from(z);
        add.cat_z_n = 1.0;
        if new_card && z > 0.5 {
            add.suspect = 1.0;
        }
    }
    if let Some(z) = f.get(Feature::MerchantAmountZscore) {
        add.own_z_sum = f64::from(z);
        add.own_z_n = 1.0;
    }
    if v.amount < MICRO_AMOUNT {
        add.micro = 1.0;
    }
    let category_z = f.get(Feature::CategoryAmountZscore).map(f64::from);
    if let Some(z) = category_z {
        if z >= 1.0 {
            add.elevated = 1.0;
        }
        // The log-likelihood ratio of a one-standard-deviation shift (z clamped).
        m.ticket_cusum.push(v.ms, z.clamp(-3.0, 4.0) - CUSUM_K);
    }
    m.fast.add(&add);
    m.slow.add(&add);
    m.events.push(
        add.suspect > 0.0,
        category_z.is_some_and(|z| z >= 1.0),
        category_z,
    );
    m.dirty = true;
}
