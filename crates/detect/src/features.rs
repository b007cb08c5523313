//! The feature set: names, order, and the vector the engine produces per event.
//!
//! Every feature is computed by [`crate::Engine`] from the card's (and merchant's) state
//! *before* the event is applied, so features use past events only. A feature that cannot
//! be computed (the input lacks the field it needs, or there is no history yet) is
//! *missing*, stored as `NaN`; the model routes missing values down a learned default
//! branch and the rules treat them as "no evidence".
//!
//! The order of [`Feature::ALL`] is the column order of the model. Changing a feature's
//! meaning, name or position changes the [`feature_set_fingerprint`], and models trained
//! for another fingerprint refuse to load.

use crate::hash::fnv1a64;

/// Bumped whenever a feature's *semantics* change without its name changing.
pub const FEATURE_SET_VERSION: u32 = 2;

macro_rules! features {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, )*) => {
        /// One model input. See the crate docs and `docs/detection.md` for definitions.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Feature {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Feature {
            /// All features in model column order.
            pub const ALL: &'static [Feature] = &[$(Feature::$variant,)*];

            /// The stable snake_case name of the feature.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Feature::$variant => $name,)*
                }
            }
        }
    };
}

features! {
    /// Transaction amount (negative or non-finite amounts read as 0).
    Amount = "amount",
    /// `ln(1 + amount)`.
    LogAmount = "log_amount",
    /// Round-ness: 0 = has cents, 1 = whole units, 2 = multiple of 10, 3 = multiple of 100.
    AmountRoundness = "amount_roundness",
    /// Number of earlier transactions of the card (lifetime, in this engine's memory).
    CardTxCount = "card_tx_count",
    /// Days since the card's first transaction; missing for a card's first transaction.
    CardAgeDays = "card_age_days",
    /// Seconds since the card's previous transaction; missing without history.
    SecsSincePrev = "secs_since_prev",
    /// z-score of `ln(1+amount)` against the card's history; missing below 3 transactions.
    AmountZscore = "amount_zscore",
    /// Amount divided by the card's mean amount; missing without history.
    AmountToMean = "amount_to_mean",
    /// Amount divided by the card's largest earlier amount; missing without history.
    AmountToMax = "amount_to_max",
    /// Card transactions in the previous minute.
    Count1m = "count_1m",
    /// Card transactions in the previous 10 minutes.
    Count10m = "count_10m",
    /// Card transactions in the previous hour.
    Count1h = "count_1h",
    /// Card transactions in the previous 24 hours.
    Count24h = "count_24h",
    /// Card transactions in the previous 7 days.
    Count7d = "count_7d",
    /// Card spend in the previous minute.
    Sum1m = "sum_1m",
    /// Card spend in the previous 10 minutes.
    Sum10m = "sum_10m",
    /// Card spend in the previous hour.
    Sum1h = "sum_1h",
    /// Card spend in the previous 24 hours.
    Sum24h = "sum_24h",
    /// Card spend in the previous 7 days.
    Sum7d = "sum_7d",
    /// `(count_24h + 1) / (lifetime daily rate + 1)`: today's pace against the card's usual pace.
    Velocity24hRatio = "velocity_24h_ratio",
    /// `(sum_24h + amount) / mean amount`: today's spend in units of a typical transaction.
    Spend24hToMean = "spend_24h_to_mean",
    /// Distinct merchants in the previous 10 minutes, this one included; missing without merchant.
    DistinctMerchants10m = "distinct_merchants_10m",
    /// Distinct merchants in the previous hour, this one included; missing without merchant.
    DistinctMerchants1h = "distinct_merchants_1h",
    /// Card transactions below the micro amount (5.00) in the previous hour.
    MicroTx1h = "micro_tx_1h",
    /// Earlier transactions in the previous hour at a merchant or in a category new to the card.
    NovelTx1h = "novel_tx_1h",
    /// Same over the previous 24 hours.
    NovelTx24h = "novel_tx_24h",
    /// Earlier transactions in the previous hour above 3x the card's mean at the time.
    HighAmountTx1h = "high_amount_tx_1h",
    /// Earlier transactions in the previous 24 hours above 3x the card's mean at the time.
    HighAmountTx24h = "high_amount_tx_24h",
    /// The card's previous transaction amount / the card's mean amount; missing without one.
    PrevAmountToMean = "prev_amount_to_mean",
    /// `(sum_1h + amount) / mean amount`; missing without history.
    Spend1hToMean = "spend_1h_to_mean",
    /// Share of the card's earlier transactions below the micro amount; missing without history.
    CardMicroShare = "card_micro_share",
    /// Smallest card amount in the previous minute; missing if none.
    MinAmount1m = "min_amount_1m",
    /// Amount divided by the smallest amount in the previous minute; missing if none.
    SmallThenLargeRatio = "small_then_large_ratio",
    /// Kilometres from the previous located transaction; missing unless both are located.
    DistPrevKm = "dist_prev_km",
    /// Speed implied by `dist_prev_km` (km/h, time floored at one minute).
    SpeedKmh = "speed_kmh",
    /// Hours since the card last jumped implausibly (≥ 900 km/h over ≥ 300 km); missing if never.
    HoursSinceJump = "hours_since_jump",
    /// Kilometres from the cardholder's home; missing without both positions.
    DistHomeKm = "dist_home_km",
    /// `dist_home_km / (card's mean distance from home + 1 km)`; missing without history.
    DistHomeToTypical = "dist_home_to_typical",
    /// 1 if the country was never seen on the card before, else 0; missing without country or history.
    CountryNew = "country_new",
    /// 1 if the card never used this merchant before (last 32 merchants remembered), else 0.
    MerchantNew = "merchant_new",
    /// 1 if the card never bought in this category before, else 0.
    CategoryNew = "category_new",
    /// Share of the card's earlier transactions in this category; missing without history.
    CategoryShare = "category_share",
    /// Amount / the card's mean amount in this category (floored at 1); missing if the card
    /// never bought in this category (16 categories remembered).
    AmountToCategoryMean = "amount_to_category_mean",
    /// Channel code: 0 = pos, 1 = online, 2 = atm; missing if absent.
    ChannelCode = "channel",
    /// Share of the card's earlier transactions on this channel; missing without history.
    ChannelShare = "channel_share",
    /// Hour of day of the event time (UTC), fractional.
    HourOfDay = "hour_of_day",
    /// 1 between 22:00 and 06:00 (event time, UTC), else 0.
    IsNight = "is_night",
    /// Circular distance in hours between this hour and the card's mean hour; missing below 3 transactions.
    HourDeviation = "hour_deviation",
    /// Share of the card's earlier transactions at night; missing without history.
    CardNightShare = "card_night_share",
    /// Share of the card's earlier transactions in this 3-hour block of the day (UTC);
    /// missing below 3 transactions. Time-zone independent "usual time for this card".
    HourBlockShare = "hour_block_share",
    /// The merchant's baseline share of first-visit cards: the share of its transactions
    /// that were a card's first visit, over the weights `e^(−age/14 d) − e^(−age/1 d)`
    /// (the last weeks, but hardly the last hours); missing without such history.
    MerchantBaselineNewCardShare = "merchant_baseline_new_card_share",
    /// The merchant's recent transaction rate (24 h decay) over its baseline rate (14 day
    /// decay), both corrected for the merchant's age; missing for a merchant never seen
    /// or seen for less than an hour. Partition-invariant: a ratio of two rates.
    MerchantVelocityRatio = "merchant_velocity_ratio",
    /// Decayed share (24 h time constant) of the merchant's transactions that were a card's first visit.
    MerchantNewCardShare = "merchant_new_card_share",
    /// `merchant_new_card_share` minus the same share over the merchant's baseline (14 day
    /// decay): more first-time cards than this merchant usually gets.
    MerchantNewCardLift = "merchant_new_card_lift",
    /// Decayed share of the merchant's transactions far above the card's own mean (> 3x).
    MerchantHighAmountShare = "merchant_high_amount_share",
    /// Decayed share of the merchant's transactions below the micro amount.
    MerchantMicroShare = "merchant_micro_share",
    /// Decayed share of the merchant's transactions far above its own amounts (z ≥ 1.5).
    MerchantAnomalyShare = "merchant_anomaly_share",
    /// Decayed share (24 h) of the merchant's transactions that were a card's first visit
    /// with an amount above its category's norm (category z > 0.5): many new cards paying
    /// too much is the footprint of a compromised terminal.
    MerchantSuspectShare = "merchant_suspect_share",
    /// `merchant_suspect_share` minus the same share over the merchant's baseline (14 day decay).
    MerchantSuspectLift = "merchant_suspect_lift",
    /// Decayed (24 h) mean of `category_amount_zscore` over the merchant's transactions:
    /// is this merchant currently charging more than its category usually costs?
    MerchantRecentCategoryZ = "merchant_recent_category_z",
    /// `merchant_recent_category_z` minus the same mean over the merchant's baseline (14 day
    /// decay): is it charging more than it used to?
    MerchantCategoryZShift = "merchant_category_z_shift",
    /// Decayed (24 h) mean of `merchant_amount_zscore` over the merchant's transactions:
    /// is this merchant currently charging more than it usually does?
    MerchantRecentAmountZ = "merchant_recent_amount_z",
    /// Share of "suspect" transactions (see `merchant_suspect_share`) over the merchant's
    /// last ~8 transactions seen by this engine (an exponential average per transaction,
    /// weight 1/8, corrected for warm-up); missing for a merchant never seen. Counting in
    /// transactions rather than hours makes its distribution the same whether the engine
    /// sees all of the merchant's cards or a random share of them.
    MerchantLast8SuspectShare = "merchant_last8_suspect_share",
    /// Share of transactions paying well above their category's norm (category z ≥ 1),
    /// new card or not, over the merchant's last ~8 transactions (per-transaction average).
    MerchantLast8ElevatedShare = "merchant_last8_elevated_share",
    /// `merchant_last8_elevated_share` minus the same share over the last ~64 transactions.
    MerchantLast8ElevatedLift = "merchant_last8_elevated_lift",
    /// Mean category z-score over the merchant's last ~8 transactions minus the mean over
    /// its last ~64: a shift of its tickets against its own recent past.
    MerchantLast8CategoryZShift = "merchant_last8_category_z_shift",
    /// z-score of `ln(1+amount)` against the merchant's history; missing below 5 transactions.
    MerchantAmountZscore = "merchant_amount_zscore",
    /// z-score of `ln(1+amount)` against all cards in this category; missing below 20 transactions.
    CategoryAmountZscore = "category_amount_zscore",
    /// The merchant's recent volume: its transactions with weights `exp(−age / 24 h)`.
    /// The shares above are only as reliable as this count is large.
    MerchantRecentVolume = "merchant_recent_volume",
    /// Recent (24 h decayed) share of the merchant's transactions paying well above their
    /// category's norm (category z ≥ 1), shrunk toward a prior of 0.16 with the weight of
    /// 8 transactions: `(elevated + 8·0.16) / (volume + 8)`.
    MerchantElevatedPosterior = "merchant_elevated_posterior",
    /// `merchant_suspect_share` shrunk the same way toward a prior of 0.05.
    MerchantSuspectPosterior = "merchant_suspect_posterior",
    /// Page's CUSUM of the category z-scores of the merchant's transactions against a
    /// shift of one standard deviation upward (reference value 0.5), fading with a 3-day
    /// time constant: accumulated evidence that the merchant's tickets run above its
    /// category's norm. 0 for a merchant whose traffic looks normal.
    MerchantTicketCusum = "merchant_ticket_cusum",
    /// Earlier transactions in the previous 3 hours at a merchant or in a category new to
    /// the card (the span of a shopping trip, longer than `novel_tx_1h`).
    NovelTx3h = "novel_tx_3h",
    /// Earlier transactions in the previous 3 hours that were both new to the card
    /// (merchant or category) and above 3x its mean at the time: a run of big tickets at
    /// unfamiliar shops, the footprint of a spree on a stolen card.
    NovelHighTx3h = "novel_high_tx_3h",
}

/// Merchant features that grow with the evidence, so they measure the merchant's whole
/// traffic only where the engine sees all of it: with shared merchant state (the
/// default), or on one engine. With per-partition merchant state they measure the
/// partition's share of it (models are trained on the same split, and a model file
/// records the merchant-state mode). Every other `merchant_*` feature is a share, mean or
/// ratio and reads the same on any share of a merchant's cards.
pub const MERCHANT_EVIDENCE: &[Feature] = &[
    Feature::MerchantRecentVolume,
    Feature::MerchantElevatedPosterior,
    Feature::MerchantSuspectPosterior,
    Feature::MerchantTicketCusum,
];

/// Number of features the engine computes.
pub const NUM_FEATURES: usize = Feature::ALL.len();

impl Feature {
    /// The feature at model column `index`, if any.
    pub fn from_index(index: usize) -> Option<Feature> {
        Feature::ALL.get(index).copied()
    }

    /// The feature called `name`, if any.
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.iter().copied().find(|f| f.name() == name)
    }
}

/// Names of all features in model column order.
pub fn feature_names() -> Vec<&'static str> {
    Feature::ALL.iter().map(|f| f.name()).collect()
}

/// Fingerprint of a feature set: FNV-1a 64 over the version and the ordered names, as hex.
pub fn fingerprint_of(version: u32, names: &[&str]) -> String {
    let mut text = format!("v{version}");
    for n in names {
        text.push('\n');
        text.push_str(n);
    }
    format!("{:016x}", fnv1a64(text.as_bytes()))
}

/// Fingerprint of the feature set this build computes.
pub fn feature_set_fingerprint() -> String {
    fingerprint_of(FEATURE_SET_VERSION, &feature_names())
}

/// The features of one event, in model column order; `NaN` means missing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    values: [f32; NUM_FEATURES],
}

impl Default for Features {
    fn default() -> Self {
        Self::missing()
    }
}

impl Features {
    /// A vector with every feature missing.
    pub fn missing() -> Self {
        Self {
            values: [f32::NAN; NUM_FEATURES],
        }
    }

    /// The value of `f`, or `None` when missing.
    pub fn get(&self, f: Feature) -> Option<f32> {
        let v = self.values[f as usize];
        if v.is_nan() {
            None
        } else {
            Some(v)
        }
    }

    /// The raw value of `f` (`NaN` when missing).
    pub fn raw(&self, f: Feature) -> f32 {
        self.values[f as usize]
    }

    /// Set `f` to `v` (`f64` is narrowed to `f32`; non-finite values become missing).
    pub fn set(&mut self, f: Feature, v: f64) {
        let v = v as f32;
        self.values[f as usize] = if v.is_finite() { v } else { f32::NAN };
    }

    /// Set `f` to `v`, or missing for `None`.
    pub fn set_opt(&mut self, f: Feature, v: Option<f64>) {
        match v {
            Some(v) => self.set(f, v),
            None => self.values[f as usize] = f32::NAN,
        }
    }

    /// All values in model column order.
    pub fn as_slice(&self) -> &[f32] {
        &self.values
    }

    /// Build from a slice of exactly [`NUM_FEATURES`] values.
    pub fn from_slice(values: &[f32]) -> Option<Self> {
        let values: [f32; NUM_FEATURES] = values.try_into().ok()?;
        Some(Self { values })
    }

    /// Whether two vectors are identical bit for bit (`NaN == NaN`).
    pub fn bit_eq(&self, other: &Features) -> bool {
        self.values
            .iter()
            .zip(other.values.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexed() {
        let names = feature_names();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "duplicate feature name");
        for (i, f) in Feature::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
            assert_eq!(Feature::from_index(i), Some(*f));
            assert_eq!(Feature::from_name(f.name()), Some(*f));
        }
        assert_eq!(Feature::from_index(NUM_FEATURES), None);
    }

    #[test]
    fn fingerprint_depends_on_order_names_and_version() {
        let a = fingerprint_of(1, &["a", "b"]);
        assert_eq!(a, fingerprint_of(1, &["a", "b"]));
        assert_ne!(a, fingerprint_of(1, &["b", "a"]));
        assert_ne!(a, fingerprint_of(1, &["a", "c"]));
        assert_ne!(a, fingerprint_of(2, &["a", "b"]));
        assert_eq!(feature_set_fingerprint().len(), 16);
    }

    #[test]
    fn missing_values() {
        let mut f = Features::missing();
        assert_eq!(f.get(Feature::Amount), None);
        f.set(Feature::Amount, 12.5);
        assert_eq!(f.get(Feature::Amount), Some(12.5));
        f.set(Feature::Amount, f64::INFINITY);
        assert_eq!(f.get(Feature::Amount), None);
        f.set_opt(Feature::Count1m, Some(2.0));
        assert_eq!(f.get(Feature::Count1m), Some(2.0));
        f.set_opt(Feature::Count1m, None);
        assert_eq!(f.get(Feature::Count1m), None);
        assert!(f.bit_eq(&f.clone()));
    }
}
