//! Per-card, per-merchant and per-category state, and its binary encoding.
//!
//! All state is bounded: see the `MAX_*` constants and [`CardState::approx_bytes`].

use std::collections::VecDeque;

use crate::codec::{Reader, Writer};
use crate::error::DecodeError;

/// Longest sliding window (7 days) in milliseconds; older events are pruned.
pub(crate) const HORIZON_MS: i64 = 7 * 24 * 3_600_000;
/// Most recent events remembered per card. Window counts saturate at this value.
pub const MAX_RECENT_PER_CARD: usize = 256;
/// Distinct merchants remembered per card (least recently used forgotten first).
pub const MAX_MERCHANTS_PER_CARD: usize = 32;
/// Distinct categories remembered per card (rarest forgotten first).
pub const MAX_CATEGORIES_PER_CARD: usize = 16;
/// Distinct countries remembered per card.
pub const MAX_COUNTRIES_PER_CARD: usize = 8;
/// Time constant of the merchant's recent (fast) decayed shares and activity (24 h), ms.
pub(crate) const MERCHANT_TAU_MS: f64 = 24.0 * 3_600_000.0;
/// Time constant of the merchant's baseline (slow) decayed sums (14 days), ms.
pub(crate) const MERCHANT_BASELINE_TAU_MS: f64 = 14.0 * 24.0 * 3_600_000.0;

/// Running mean and variance (Welford).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Welford {
    pub(crate) n: u64,
    pub(crate) mean: f64,
    pub(crate) m2: f64,
}

impl Welford {
    pub(crate) fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Population standard deviation.
    pub(crate) fn std(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            (self.m2.max(0.0) / self.n as f64).sqrt()
        }
    }

    fn encode(&self, w: &mut Writer) {
        w.u64(self.n);
        w.f64(self.mean);
        w.f64(self.m2);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            n: r.u64()?,
            mean: r.f64()?,
            m2: r.f64()?,
        })
    }
}

/// One remembered card event (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Recent {
    pub(crate) ms: i64,
    pub(crate) amount: f32,
    /// Low 24 bits: merchant key (0 = unknown); high 8 bits: `RECENT_*` flags.
    pub(crate) merchant: u32,
}

/// The event was at a merchant new to the card.
pub(crate) const RECENT_NEW_MERCHANT: u8 = 1;
/// The event was in a category new to the card.
pub(crate) const RECENT_NEW_CATEGORY: u8 = 2;
/// The event's amount was more than 3x the card's mean (card with 3+ earlier events).
pub(crate) const RECENT_HIGH_AMOUNT: u8 = 4;

impl Recent {
    /// Pack a 32-bit merchant key and flags.
    pub(crate) fn tag(merchant: u32, flags: u8) -> u32 {
        let key = merchant24(merchant);
        key | (u32::from(flags) << 24)
    }

    /// The 24-bit merchant key (0 = unknown).
    pub(crate) fn merchant_key(&self) -> u32 {
        self.merchant & 0x00ff_ffff
    }

    /// The `RECENT_*` flags.
    pub(crate) fn flags(&self) -> u8 {
        (self.merchant >> 24) as u8
    }
}

/// Fold a 32-bit merchant key to the 24 bits kept in [`Recent`] (0 stays 0, else non-zero).
pub(crate) fn merchant24(key: u32) -> u32 {
    if key == 0 {
        0
    } else {
        let k = (key ^ (key >> 24)) & 0x00ff_ffff;
        if k == 0 {
            1
        } else {
            k
        }
    }
}

/// A located event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Located {
    pub(crate) ms: i64,
    pub(crate) lat: f64,
    pub(crate) lon: f64,
}

/// Everything the engine remembers about one card.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct CardState {
    pub(crate) first_ms: i64,
    pub(crate) last_ms: i64,
    pub(crate) count: u64,
    pub(crate) amount: Welford,
    pub(crate) log_amount: Welford,
    pub(crate) max_amount: f64,
    /// Events of the last 7 days (relative to `last_ms`), ascending by time.
    pub(crate) recent: VecDeque<Recent>,
    pub(crate) last_loc: Option<Located>,
    pub(crate) home: Option<(f64, f64)>,
    pub(crate) home_dist: Welford,
    /// Merchant keys, least recently used first.
    pub(crate) merchants: Vec<u32>,
    /// (category key, count).
    /// (category key, count, amount sum).
    pub(crate) categories: Vec<(u32, u32, f32)>,
    /// Transactions with a known category.
    pub(crate) categorised: u64,
    /// Counts per channel code (pos, online, atm).
    pub(crate) channels: [u64; 3],
    /// Transactions with a known channel.
    pub(crate) channelled: u64,
    /// Country codes seen (two ASCII bytes packed into a u16).
    pub(crate) countries: Vec<u16>,
    pub(crate) night: u64,
    /// Transactions below the micro amount.
    pub(crate) micro: u64,
    /// Time of the last implausible jump between located transactions (`i64::MIN`: never).
    pub(crate) last_jump_ms: i64,
    pub(crate) hour_sin: f64,
    pub(crate) hour_cos: f64,
    /// Transactions per 3-hour block of the day (UTC).
    pub(crate) hour_blocks: [u32; 8],
    /// Changed since the last changelog drain (not encoded).
    pub(crate) dirty: bool,
}

const CARD_RECORD_VERSION: u8 = 3;
const MERCHANT_RECORD_VERSION: u8 = 5;
/// Longest hourly ring a version-2 merchant record may hold.
const LEGACY_MERCHANT_RING: usize = 128;

impl CardState {
    /// Approximate heap + inline bytes used by this card's state.
    pub(crate) fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.recent.capacity() * std::mem::size_of::<Recent>()
            + self.merchants.capacity() * 4
            + self.categories.capacity() * 12
            + self.countries.capacity() * 2
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u8(CARD_RECORD_VERSION);
        w.i64(self.first_ms);
        w.i64(self.last_ms);
        w.u64(self.count);
        self.amount.encode(w);
        self.log_amount.encode(w);
        w.f64(self.max_amount);
        w.len(self.recent.len());
        for e in &self.recent {
            w.i64(e.ms);
            w.f32(e.amount);
            w.u32(e.merchant);
        }
        match self.last_loc {
            Some(l) => {
                w.u8(1);
                w.i64(l.ms);
                w.f64(l.lat);
                w.f64(l.lon);
            }
            None => w.u8(0),
        }
        match self.home {
            Some((la, lo)) => {
                w.u8(1);
                w.f64(la);
                w.f64(lo);
            }
            None => w.u8(0),
        }
        self.home_dist.encode(w);
        w.len(self.merchants.len());
        for &m in &self.merchants {
            w.u32(m);
        }
        w.len(self.categories.len());
        for &(k, c, s) in &self.categories {
            w.u32(k);
            w.u32(c);
            w.f32(s);
        }
        w.u64(self.categorised);
        for c in self.channels {
            w.u64(c);
        }
        w.u64(self.channelled);
        w.len(self.countries.len());
        for &c in &self.countries {
            w.u16(c);
        }
        w.u64(self.night);
        w.u64(self.micro);
        w.i64(self.last_jump_ms);
        w.f64(self.hour_sin);
        w.f64(self.hour_cos);
        for b in self.hour_blocks {
            w.u32(b);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8()?;
        if version != CARD_RECORD_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: CARD_RECORD_VERSION,
            });
        }
        let first_ms = r.ms()?;
        let last_ms = r.ms()?;
        let count = r.u64()?;
        let amount = Welford::decode(r)?;
        let log_amount = Welford::decode(r)?;
        let max_amount = r.f64()?;
        let n = r.len(MAX_RECENT_PER_CARD, "card recent events")?;
        let mut recent = VecDeque::with_capacity(n);
        let mut prev = i64::MIN;
        for _ in 0..n {
            let e = Recent {
                ms: r.ms()?,
                amount: r.f32()?,
                merchant: r.u32()?,
            };
            if e.ms < prev {
                return Err(DecodeError::Invalid("card recent events out of order"));
            }
            prev = e.ms;
            recent.push_back(e);
        }
        let last_loc = match r.u8()? {
            0 => None,
            1 => Some(Located {
                ms: r.ms()?,
                lat: r.f64()?,
                lon: r.f64()?,
            }),
            _ => return Err(DecodeError::Invalid("card last location tag")),
        };
        let home = match r.u8()? {
            0 => None,
            1 => Some((r.f64()?, r.f64()?)),
            _ => return Err(DecodeError::Invalid("card home tag")),
        };
        let home_dist = Welford::decode(r)?;
        let n = r.len(MAX_MERCHANTS_PER_CARD, "card merchants")?;
        let mut merchants = Vec::with_capacity(n);
        for _ in 0..n {
            merchants.push(r.u32()?);
        }
        let n = r.len(MAX_CATEGORIES_PER_CARD, "card categories")?;
        let mut categories = Vec::with_capacity(n);
        for _ in 0..n {
            categories.push((r.u32()?, r.u32()?, r.f32()?));
        }
        let categorised = r.u64()?;
        let channels = [r.u64()?, r.u64()?, r.u64()?];
        let channelled = r.u64()?;
        let n = r.len(MAX_COUNTRIES_PER_CARD, "card countries")?;
        let mut countries = Vec::with_capacity(n);
        for _ in 0..n {
            countries.push(r.u16()?);
        }
        Ok(Self {
            first_ms,
            last_ms,
            count,
            amount,
            log_amount,
            max_amount,
            recent,
            last_loc,
            home,
            home_dist,
            merchants,
            categories,
            categorised,
            channels,
            channelled,
            countries,
            night: r.u64()?,
            micro: r.u64()?,
            last_jump_ms: r.ms()?,
            hour_sin: r.f64()?,
            hour_cos: r.f64()?,
            hour_blocks: {
                let mut b = [0u32; 8];
                for x in &mut b {
                    *x = r.u32()?;
                }
                b
            },
            dirty: false,
        })
    }

    /// Remember `key` as the most recently used merchant.
    pub(crate) fn touch_merchant(&mut self, key: u32) {
        if let Some(pos) = self.merchants.iter().position(|&m| m == key) {
            self.merchants.remove(pos);
        } else if self.merchants.len() >= MAX_MERCHANTS_PER_CARD {
            self.merchants.remove(0);
        }
        self.merchants.push(key);
    }

    /// Count one transaction of `amount` in category `key`.
    pub(crate) fn count_category(&mut self, key: u32, amount: f32) {
        self.categorised += 1;
        if let Some(e) = self.categories.iter_mut().find(|e| e.0 == key) {
            e.1 = e.1.saturating_add(1);
            e.2 += amount;
            return;
        }
        if self.categories.len() >= MAX_CATEGORIES_PER_CARD {
            // Forget the rarest category (first one on ties, so the choice is deterministic).
            if let Some(idx) = self
                .categories
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.1)
                .map(|(i, _)| i)
            {
                self.categories.remove(idx);
            }
        }
        self.categories.push((key, 1, amount));
    }

    /// Remember a country code.
    pub(crate) fn see_country(&mut self, code: u16) {
        if !self.countries.contains(&code) {
            if self.countries.len() >= MAX_COUNTRIES_PER_CARD {
                self.countries.remove(0);
            }
            self.countries.push(code);
        }
    }

    /// Insert an event keeping `recent` sorted by time (equal times keep arrival order),
    /// then prune to the 7-day horizon and the size cap.
    pub(crate) fn insert_recent(&mut self, e: Recent) {
        let pos = self.recent.partition_point(|x| x.ms <= e.ms);
        self.recent.insert(pos, e);
        let cutoff = self.last_ms.saturating_sub(HORIZON_MS);
        while self.recent.front().is_some_and(|x| x.ms <= cutoff) {
            self.recent.pop_front();
        }
        while self.recent.len() > MAX_RECENT_PER_CARD {
            self.recent.pop_front();
        }
    }
}

/// Everything the engine remembers about one merchant (or terminal).
///
/// Only sums that scale with the merchant's traffic are kept, so that every feature built
/// from them is a ratio of two such sums: an engine that sees a random share of the
/// merchant's cards (one Kafka partition) estimates the same values as one that sees all.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct MerchantState {
    pub(crate) count: u64,
    pub(crate) first_ms: i64,
    pub(crate) last_ms: i64,
    pub(crate) log_amount: Welford,
    /// Time the decayed sums below were last brought up to date.
    pub(crate) decay_ms: i64,
    /// Recent (24 h time constant) decayed sums.
    pub(crate) fast: MerchantSums,
    /// Baseline (14 day time constant) decayed sums.
    pub(crate) slow: MerchantSums,
    /// Per-transaction exponential averages (see [`MerchantEvents`]).
    pub(crate) events: MerchantEvents,
    /// Page's CUSUM of the merchant's category z-scores against an upward shift.
    pub(crate) ticket_cusum: Cusum,
    pub(crate) dirty: bool,
}

/// Weight of the newest transaction in the short per-transaction averages (~8 transactions).
pub(crate) const EVENT_ALPHA_SHORT: f64 = 1.0 / 8.0;
/// Weight of the newest transaction in the long per-transaction averages (~64 transactions).
pub(crate) const EVENT_ALPHA_LONG: f64 = 1.0 / 64.0;

/// Exponential averages over a merchant's transactions, one step per transaction (not per
/// unit of time), so a random share of the merchant's traffic yields the same
/// distribution of values. Each average starts at 0; readers divide by `1 − (1 − α)^n`
/// (warm-up correction) with `n` the number of values folded in.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct MerchantEvents {
    /// Transactions folded into the indicator averages.
    pub(crate) n: u64,
    /// Short averages of the "suspect" and "elevated" indicators.
    pub(crate) suspect: f64,
    pub(crate) elevated: f64,
    /// Long average of the "elevated" indicator.
    pub(crate) elevated_long: f64,
    /// Transactions with a category z-score folded into the z averages.
    pub(crate) z_n: u64,
    /// Short and long averages of the category z-score.
    pub(crate) z: f64,
    pub(crate) z_long: f64,
}

/// The warm-up correction of an exponential average of weight `alpha` after `n` steps.
pub(crate) fn ema_correction(alpha: f64, n: u64) -> f64 {
    let steps = i32::try_from(n).unwrap_or(i32::MAX);
    1.0 - (1.0 - alpha).powi(steps)
}

impl MerchantEvents {
    /// Fold one transaction in.
    pub(crate) fn push(&mut self, suspect: bool, elevated: bool, category_z: Option<f64>) {
        let step = |avg: &mut f64, alpha: f64, x: f64| *avg += alpha * (x - *avg);
        self.n += 1;
        step(
            &mut self.suspect,
            EVENT_ALPHA_SHORT,
            f64::from(u8::from(suspect)),
        );
        step(
            &mut self.elevated,
            EVENT_ALPHA_SHORT,
            f64::from(u8::from(elevated)),
        );
        step(
            &mut self.elevated_long,
            EVENT_ALPHA_LONG,
            f64::from(u8::from(elevated)),
        );
        if let Some(z) = category_z {
            self.z_n += 1;
            step(&mut self.z, EVENT_ALPHA_SHORT, z);
            step(&mut self.z_long, EVENT_ALPHA_LONG, z);
        }
    }

    fn encode(&self, w: &mut Writer) {
        w.u64(self.n);
        w.f64(self.suspect);
        w.f64(self.elevated);
        w.f64(self.elevated_long);
        w.u64(self.z_n);
        w.f64(self.z);
        w.f64(self.z_long);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            n: r.u64()?,
            suspect: r.f64()?,
            elevated: r.f64()?,
            elevated_long: r.f64()?,
            z_n: r.u64()?,
            z: r.f64()?,
            z_long: r.f64()?,
        })
    }
}

/// Exponentially decayed sums over a merchant's transactions.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct MerchantSums {
    /// Transactions.
    pub(crate) activity: f64,
    /// First visits by a card.
    pub(crate) new_card: f64,
    /// Amounts far above the card's own mean.
    pub(crate) high_amount: f64,
    /// Micro amounts.
    pub(crate) micro: f64,
    /// Amounts far above the merchant's own (z >= 1.5).
    pub(crate) anomalous: f64,
    /// Sum of the category amount z-scores …
    pub(crate) cat_z_sum: f64,
    /// … and count of the transactions that had one.
    pub(crate) cat_z_n: f64,
    /// Sum of the merchant amount z-scores …
    pub(crate) own_z_sum: f64,
    /// … and count of the transactions that had one.
    pub(crate) own_z_n: f64,
    /// First visits by a card with an amount above the category norm.
    pub(crate) suspect: f64,
    /// Amounts well above the category norm (category z >= 1), new card or not.
    pub(crate) elevated: f64,
}

impl MerchantSums {
    pub(crate) fn add(&mut self, o: &MerchantSums) {
        self.activity += o.activity;
        self.new_card += o.new_card;
        self.high_amount += o.high_amount;
        self.micro += o.micro;
        self.anomalous += o.anomalous;
        self.cat_z_sum += o.cat_z_sum;
        self.cat_z_n += o.cat_z_n;
        self.own_z_sum += o.own_z_sum;
        self.own_z_n += o.own_z_n;
        self.suspect += o.suspect;
        self.elevated += o.elevated;
    }

    fn scale(&mut self, k: f64) {
        self.activity *= k;
        self.new_card *= k;
        self.high_amount *= k;
        self.micro *= k;
        self.anomalous *= k;
        self.cat_z_sum *= k;
        self.cat_z_n *= k;
        self.own_z_sum *= k;
        self.own_z_n *= k;
        self.suspect *= k;
        self.elevated *= k;
    }

    fn encode(&self, w: &mut Writer) {
        for v in [
            self.activity,
            self.new_card,
            self.high_amount,
            self.micro,
            self.anomalous,
            self.cat_z_sum,
            self.cat_z_n,
            self.own_z_sum,
            self.own_z_n,
            self.suspect,
            self.elevated,
        ] {
            w.f64(v);
        }
    }

    /// Decode sums written by a record of `version` (before version 5 without `elevated`,
    /// which then starts at 0 and fills within a day).
    fn decode(r: &mut Reader<'_>, version: u8) -> Result<Self, DecodeError> {
        Ok(Self {
            activity: r.f64()?,
            new_card: r.f64()?,
            high_amount: r.f64()?,
            micro: r.f64()?,
            anomalous: r.f64()?,
            cat_z_sum: r.f64()?,
            cat_z_n: r.f64()?,
            own_z_sum: r.f64()?,
            own_z_n: r.f64()?,
            suspect: r.f64()?,
            elevated: if version >= 5 { r.f64()? } else { 0.0 },
        })
    }
}

/// Page's cumulative sum, `S ← max(0, S·fade + increment)`, for detecting a change in a
/// merchant's traffic: each transaction adds the log-likelihood ratio (or a score shaped
/// like one) of "changed" against "normal", so under normal traffic the sum drifts down
/// and stays near 0, and after a change it climbs by about the ratio per transaction. It
/// measures how much evidence of a change has accumulated, not only how large the change
/// looks. Between transactions it fades with time constant [`CUSUM_TAU_MS`], so an
/// episode that ended stops counting against the merchant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Cusum {
    value: f64,
    ms: i64,
}

impl Cusum {
    /// The sum as of `ms`.
    pub(crate) fn at(&self, ms: i64) -> f64 {
        let dt = ms.saturating_sub(self.ms).max(0) as f64;
        self.value * (-dt / CUSUM_TAU_MS).exp()
    }

    /// Add one transaction's `increment` at `ms` (a late one counts as of the latest time).
    pub(crate) fn push(&mut self, ms: i64, increment: f64) {
        let at = ms.max(self.ms);
        self.value = (self.at(at) + increment).max(0.0);
        self.ms = at;
    }

    fn encode(&self, w: &mut Writer) {
        w.f64(self.value);
        w.i64(self.ms);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            value: r.f64()?,
            ms: r.i64()?,
        })
    }
}

/// Time constant with which a merchant's CUSUM fades between transactions (3 days).
pub(crate) const CUSUM_TAU_MS: f64 = 3.0 * 86_400_000.0;
/// Reference value of the ticket CUSUM, in standard deviations of the category z-score:
/// `z − k` is the log-likelihood ratio of a shift of the mean by `2k = 1` standard
/// deviation against none.
pub(crate) const CUSUM_K: f64 = 0.5;

impl MerchantState {
    /// Approximate bytes used by this merchant's state.
    pub(crate) fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
    }

    /// Decay factors (recent, baseline) to bring the sums from `decay_ms` to `ms`.
    pub(crate) fn decay_factors(&self, ms: i64) -> (f64, f64) {
        let dt = ms.saturating_sub(self.decay_ms);
        if dt <= 0 {
            (1.0, 1.0)
        } else {
            let dt = dt as f64;
            (
                (-dt / MERCHANT_TAU_MS).exp(),
                (-dt / MERCHANT_BASELINE_TAU_MS).exp(),
            )
        }
    }

    /// Bring the decayed sums up to `ms` (no-op for earlier times).
    pub(crate) fn decay_to(&mut self, ms: i64) {
        if ms > self.decay_ms {
            let (kf, ks) = self.decay_factors(ms);
            self.fast.scale(kf);
            self.slow.scale(ks);
            self.decay_ms = ms;
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u8(MERCHANT_RECORD_VERSION);
        w.u64(self.count);
        w.i64(self.first_ms);
        w.i64(self.last_ms);
        self.log_amount.encode(w);
        w.i64(self.decay_ms);
        self.fast.encode(w);
        self.slow.encode(w);
        self.events.encode(w);
        self.ticket_cusum.encode(w);
    }

    /// Decode a merchant record. Records of versions 2 and 3 (before the per-transaction
    /// averages, and version 2 before the baseline sums and with an hourly ring of recent
    /// transactions) are migrated, so a detector upgraded in place restores its state: the
    /// baseline starts from the recent sums (a subset of it) and the per-transaction
    /// averages from empty (they warm up within a few transactions).
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8()?;
        if !(2..=MERCHANT_RECORD_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: MERCHANT_RECORD_VERSION,
            });
        }
        let count = r.u64()?;
        let first_ms = r.i64()?;
        let last_ms = r.i64()?;
        let log_amount = Welford::decode(r)?;
        if version == 2 {
            // The hourly ring of (time, card key) the old merchant features counted.
            let n = r.len(LEGACY_MERCHANT_RING, "merchant recent events")?;
            for _ in 0..n {
                r.i64()?;
                r.u32()?;
            }
        }
        let decay_ms = r.i64()?;
        let fast = MerchantSums::decode(r, version)?;
        let slow = if version >= 3 {
            MerchantSums::decode(r, version)?
        } else {
            fast
        };
        let events = if version >= 4 {
            MerchantEvents::decode(r)?
        } else {
            MerchantEvents::default()
        };
        let ticket_cusum = if version >= 5 {
            Cusum::decode(r)?
        } else {
            Cusum::default()
        };
        Ok(Self {
            count,
            first_ms,
            last_ms,
            log_amount,
            decay_ms,
            fast,
            slow,
            events,
            ticket_cusum,
            dirty: false,
        })
    }
}

/// Encode a category's global statistics.
pub(crate) fn encode_category(stats: &Welford, w: &mut Writer) {
    w.u8(1);
    stats.encode(w);
}

/// Decode a category's global statistics.
pub(crate) fn decode_category(r: &mut Reader<'_>) -> Result<Welford, DecodeError> {
    let version = r.u8()?;
    if version != 1 {
        return Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: 1,
        });
    }
    Welford::decode(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_2_merchant_records_are_migrated() {
        // A record as the previous release wrote it: ring of the last hour included.
        let mut w = Writer::new();
        w.u8(2);
        w.u64(7);
        w.i64(1_000);
        w.i64(9_000);
        Welford {
            n: 7,
            mean: 3.0,
            m2: 1.5,
        }
        .encode(&mut w);
        w.len(2);
        for (ms, card) in [(8_000i64, 11u32), (9_000, 12)] {
            w.i64(ms);
            w.u32(card);
        }
        w.i64(9_000);
        let sums: Vec<f64> = (1..=10).map(f64::from).collect();
        for v in &sums {
            w.f64(*v);
        }
        let bytes = w.into_bytes();
        let m = MerchantState::decode(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(
            (m.count, m.first_ms, m.last_ms, m.decay_ms),
            (7, 1_000, 9_000, 9_000)
        );
        assert_eq!(m.log_amount.mean, 3.0);
        assert_eq!(m.fast.activity, 1.0);
        assert_eq!(m.fast.suspect, 10.0);
        assert_eq!(m.slow, m.fast);
        assert_eq!(m.events, MerchantEvents::default());
        // Re-encoded in the current version, it round-trips.
        let mut w = Writer::new();
        m.encode(&mut w);
        let bytes = w.into_bytes();
        assert_eq!(bytes[0], MERCHANT_RECORD_VERSION);
        assert_eq!(MerchantState::decode(&mut Reader::new(&bytes)).unwrap(), m);
        // Versions it never wrote are refused.
        for v in [1u8, MERCHANT_RECORD_VERSION + 1] {
            assert!(MerchantState::decode(&mut Reader::new(&[v])).is_err());
        }
    }

    #[test]
    fn version_4_merchant_records_are_migrated() {
        // Before the elevated sums and the CUSUM.
        let mut w = Writer::new();
        w.u8(4);
        w.u64(3);
        w.i64(1_000);
        w.i64(5_000);
        Welford::default().encode(&mut w);
        w.i64(5_000);
        for sums in 0..2 {
            for v in 1..=10 {
                w.f64(f64::from(v + 10 * sums));
            }
        }
        let events = MerchantEvents {
            n: 3,
            suspect: 0.25,
            ..MerchantEvents::default()
        };
        events.encode(&mut w);
        let bytes = w.into_bytes();
        let m = MerchantState::decode(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(
            (m.fast.activity, m.fast.suspect, m.fast.elevated),
            (1.0, 10.0, 0.0)
        );
        assert_eq!(
            (m.slow.activity, m.slow.suspect, m.slow.elevated),
            (11.0, 20.0, 0.0)
        );
        assert_eq!(m.events, events);
        assert_eq!(m.ticket_cusum, Cusum::default());
        let mut w = Writer::new();
        m.encode(&mut w);
        let bytes = w.into_bytes();
        assert_eq!(MerchantState::decode(&mut Reader::new(&bytes)).unwrap(), m);
    }

    #[test]
    fn welford_matches_two_pass() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let mut w = Welford::default();
        for x in xs {
            w.push(x);
        }
        assert!((w.mean - 5.0).abs() < 1e-12);
        assert!((w.std() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn merchant_lru_and_category_eviction_are_bounded() {
        let mut c = CardState::default();
        for k in 1..=100u32 {
            c.touch_merchant(k);
            c.count_category(k, 1.0);
            c.see_country(k as u16);
        }
        assert_eq!(c.merchants.len(), MAX_MERCHANTS_PER_CARD);
        assert_eq!(c.merchants.last(), Some(&100));
        assert_eq!(c.merchants.first(), Some(&69));
        assert_eq!(c.categories.len(), MAX_CATEGORIES_PER_CARD);
        assert_eq!(c.countries.len(), MAX_COUNTRIES_PER_CARD);
        c.touch_merchant(80);
        assert_eq!(c.merchants.last(), Some(&80));
        assert_eq!(c.merchants.len(), MAX_MERCHANTS_PER_CARD);
    }

    #[test]
    fn recent_stays_sorted_and_pruned() {
        let mut c = CardState {
            last_ms: 10 * HORIZON_MS,
            ..CardState::default()
        };
        c.insert_recent(Recent {
            ms: 1,
            amount: 1.0,
            merchant: 0,
        });
        assert!(
            c.recent.is_empty(),
            "event older than the horizon is pruned"
        );
        for ms in [5, 3, 9, 3, 1] {
            c.insert_recent(Recent {
                ms: 10 * HORIZON_MS - ms,
                amount: ms as f32,
                merchant: 0,
            });
        }
        let times: Vec<i64> = c.recent.iter().map(|e| 10 * HORIZON_MS - e.ms).collect();
        assert_eq!(times, vec![9, 5, 3, 3, 1]);
        for i in 0..1000 {
            c.insert_recent(Recent {
                ms: 10 * HORIZON_MS - 1000 + i,
                amount: 1.0,
                merchant: 0,
            });
        }
        assert_eq!(c.recent.len(), MAX_RECENT_PER_CARD);
    }
}
