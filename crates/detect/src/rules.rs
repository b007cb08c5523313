//! Named, explainable, configurable rules.
//!
//! Each rule reads the event's [`Features`] and, when it fires, yields a [`RuleHit`] with
//! a weight (log-odds added to the score, see [`crate::score`]) and a human-readable
//! reason. Rules are configured in TOML (`config/rules.toml`); every rule has `enabled`,
//! `weight` and its own thresholds. A rule never fires on missing features.

use serde::{Deserialize, Serialize};

use crate::engine::MICRO_AMOUNT;
use crate::features::{Feature as F, Features};

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleHit {
    /// The rule's name (e.g. `impossible_travel`).
    pub rule: String,
    /// Log-odds the rule adds to the score.
    pub weight: f64,
    /// Why it fired, with the numbers.
    pub reason: String,
}

macro_rules! rule_config {
    (
        $(#[doc = $doc:literal])*
        $name:ident, $enabled:expr, $weight:expr, { $( $(#[doc = $fdoc:literal])* $field:ident : $ty:ty = $default:expr ),* $(,)? }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            /// Whether the rule is evaluated.
            pub enabled: bool,
            /// Log-odds added to the score when the rule fires (must be ≥ 0).
            pub weight: f64,
            $( $(#[doc = $fdoc])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { enabled: $enabled, weight: $weight, $( $field: $default, )* }
            }
        }
    };
}

rule_config!(
    /// Consecutive located transactions implying a speed no traveller reaches.
    ImpossibleTravel, true, 3.0, {
        /// Minimum implied speed (km/h).
        min_speed_kmh: f64 = 900.0,
        /// Minimum distance between the two transactions (km), to ignore GPS jitter.
        min_distance_km: f64 = 300.0,
    }
);

rule_config!(
    /// Many merchants or many micro amounts in a short time: probing a stolen card.
    CardTesting, true, 2.5, {
        /// Distinct merchants in 10 minutes (this one included) that fire the rule.
        min_distinct_merchants_10m: f64 = 4.0,
        /// Transactions below the micro amount in the last hour that fire the rule.
        min_micro_tx_1h: f64 = 3.0,
    }
);

rule_config!(
    /// A tiny probe followed within a minute by a large amount.
    SmallThenLarge, true, 2.5, {
        /// Largest amount still counted as a probe.
        max_small_amount: f64 = 2.0,
        /// Smallest amount counted as large.
        min_large_amount: f64 = 100.0,
    }
);

rule_config!(
    /// An unusual number of transactions in a short window.
    VelocityBurst, true, 1.5, {
        /// Transactions in the previous 10 minutes that fire the rule.
        min_tx_10m: f64 = 4.0,
        /// Transactions in the previous hour that fire the rule.
        min_tx_1h: f64 = 8.0,
    }
);

rule_config!(
    /// An amount far above anything the card spent before.
    AmountSpike, true, 1.5, {
        /// Earlier transactions required before the rule applies.
        min_history: f64 = 5.0,
        /// Amount / largest earlier amount that fires the rule.
        min_to_max: f64 = 3.0,
        /// Smallest amount that can fire the rule.
        min_amount: f64 = 200.0,
    }
);

rule_config!(
    /// A transaction far from home, and far beyond the card's usual radius.
    FarFromHome, true, 1.0, {
        /// Minimum distance from home (km).
        min_km: f64 = 1000.0,
        /// Minimum distance / (typical distance + 1 km).
        min_to_typical: f64 = 10.0,
    }
);

rule_config!(
    /// A large amount at a merchant the card never used.
    NewMerchantLargeAmount, true, 1.0, {
        /// Earlier transactions required before the rule applies.
        min_history: f64 = 5.0,
        /// Amount / card mean that fires the rule.
        min_to_mean: f64 = 5.0,
        /// Smallest amount that can fire the rule.
        min_amount: f64 = 100.0,
    }
);

rule_config!(
    /// A merchant whose recent traffic looks like a compromised point of sale.
    /// Only shares and their lift over the merchant's own baseline are read, never counts,
    /// so the rule fires alike whether one engine sees all of the merchant's cards or one
    /// Kafka partition's share of them.
    MerchantCompromise, true, 1.5, {
        /// Recent share of first-visit cards paying above the category norm that fires the rule.
        min_suspect_share: f64 = 0.4,
        /// … and by how much that share must exceed the merchant's baseline share.
        min_suspect_lift: f64 = 0.3,
    }
);

/// The rule set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// See [`ImpossibleTravel`].
    pub impossible_travel: ImpossibleTravel,
    /// See [`CardTesting`].
    pub card_testing: CardTesting,
    /// See [`SmallThenLarge`].
    pub small_then_large: SmallThenLarge,
    /// See [`VelocityBurst`].
    pub velocity_burst: VelocityBurst,
    /// See [`AmountSpike`].
    pub amount_spike: AmountSpike,
    /// See [`FarFromHome`].
    pub far_from_home: FarFromHome,
    /// See [`NewMerchantLargeAmount`].
    pub new_merchant_large_amount: NewMerchantLargeAmount,
    /// See [`MerchantCompromise`].
    pub merchant_compromise: MerchantCompromise,
}

fn ge(f: &Features, feature: F, threshold: f64) -> Option<f64> {
    f.get(feature).map(f64::from).filter(|&v| v >= threshold)
}

impl RulesConfig {
    /// (name, enabled, weight) of every rule, for validation and documentation.
    pub fn summary(&self) -> Vec<(&'static str, bool, f64)> {
        vec![
            (
                "impossible_travel",
                self.impossible_travel.enabled,
                self.impossible_travel.weight,
            ),
            (
                "card_testing",
                self.card_testing.enabled,
                self.card_testing.weight,
            ),
            (
                "small_then_large",
                self.small_then_large.enabled,
                self.small_then_large.weight,
            ),
            (
                "velocity_burst",
                self.velocity_burst.enabled,
                self.velocity_burst.weight,
            ),
            (
                "amount_spike",
                self.amount_spike.enabled,
                self.amount_spike.weight,
            ),
            (
                "far_from_home",
                self.far_from_home.enabled,
                self.far_from_home.weight,
            ),
            (
                "new_merchant_large_amount",
                self.new_merchant_large_amount.enabled,
                self.new_merchant_large_amount.weight,
            ),
            (
                "merchant_compromise",
                self.merchant_compromise.enabled,
                self.merchant_compromise.weight,
            ),
        ]
    }

    /// Evaluate every enabled rule against `f`, appending hits to `out`.
    pub fn evaluate(&self, f: &Features, out: &mut Vec<RuleHit>) {
        let mut hit = |rule: &str, weight: f64, reason: String| {
            out.push(RuleHit {
                rule: rule.to_owned(),
                weight,
                reason: format!("{rule}: {reason}"),
            });
        };
        let amount = f.get(F::Amount).map_or(0.0, f64::from);

        let r = &self.impossible_travel;
        if r.enabled {
            if let (Some(speed), Some(d)) = (
                ge(f, F::SpeedKmh, r.min_speed_kmh),
                ge(f, F::DistPrevKm, r.min_distance_km),
            ) {
                let minutes = if speed > 0.0 { d / speed * 60.0 } else { 0.0 };
                hit(
                    "impossible_travel",
                    r.weight,
                    format!(
                        "{d:.0} km from previous transaction {minutes:.0} min earlier ({speed:.0} km/h)"
                    ),
                );
            }
        }

        let r = &self.card_testing;
        if r.enabled {
            let merchants = ge(f, F::DistinctMerchants10m, r.min_distinct_merchants_10m);
            let micro = ge(f, F::MicroTx1h, r.min_micro_tx_1h);
            if merchants.is_some() || micro.is_some() {
                let mut parts = Vec::new();
                if let Some(m) = merchants {
                    parts.push(format!("{m:.0} merchants in 10 min"));
                }
                if let Some(m) = micro {
                    parts.push(format!(
                        "{m:.0} transactions under {MICRO_AMOUNT:.2} in the last hour"
                    ));
                }
                hit("card_testing", r.weight, parts.join(", "));
            }
        }

        let r = &self.small_then_large;
        if r.enabled {
            if let Some(small) = f.get(F::MinAmount1m).map(f64::from) {
                if small <= r.max_small_amount && amount >= r.min_large_amount {
                    hit(
                        "small_then_large",
                        r.weight,
                        format!("{amount:.2} within a minute of a {small:.2} probe"),
                    );
                }
            }
        }

        let r = &self.velocity_burst;
        if r.enabled {
            if let Some(n) = ge(f, F::Count10m, r.min_tx_10m) {
                hit(
                    "velocity_burst",
                    r.weight,
                    format!("{n:.0} earlier transactions in the last 10 min"),
                );
            } else if let Some(n) = ge(f, F::Count1h, r.min_tx_1h) {
                hit(
                    "velocity_burst",
                    r.weight,
                    format!("{n:.0} earlier transactions in the last hour"),
                );
            }
        }

        let r = &self.amount_spike;
        if r.enabled && amount >= r.min_amount && ge(f, F::CardTxCount, r.min_history).is_some() {
            if let Some(ratio) = ge(f, F::AmountToMax, r.min_to_max) {
                hit(
                    "amount_spike",
                    r.weight,
                    format!("{amount:.2} is {ratio:.1}x the card's largest earlier amount"),
                );
            }
        }

        let r = &self.far_from_home;
        if r.enabled {
            if let (Some(d), Some(ratio)) = (
                ge(f, F::DistHomeKm, r.min_km),
                ge(f, F::DistHomeToTypical, r.min_to_typical),
            ) {
                let typical = d / ratio - 1.0;
                hit(
                    "far_from_home",
                    r.weight,
                    format!("{d:.0} km from home (typically {:.0} km)", typical.max(0.0)),
                );
            }
        }

        let r = &self.new_merchant_large_amount;
        if r.enabled
            && amount >= r.min_amount
            && f.get(F::MerchantNew) == Some(1.0)
            && ge(f, F::CardTxCount, r.min_history).is_some()
        {
            if let Some(ratio) = ge(f, F::AmountToMean, r.min_to_mean) {
                hit(
                    "new_merchant_large_amount",
                    r.weight,
                    format!(
                        "{amount:.2} ({ratio:.1}x the card's mean) at a merchant never used before"
                    ),
                );
            }
        }

        let r = &self.merchant_compromise;
        if r.enabled {
            if let (Some(share), Some(lift)) = (
                ge(f, F::MerchantSuspectShare, r.min_suspect_share),
                ge(f, F::MerchantSuspectLift, r.min_suspect_lift),
            ) {
                let baseline = share - lift;
                hit(
                    "merchant_compromise",
                    r.weight,
                    format!(
                        "{:.0}% of the merchant's recent transactions were new cards paying above the category norm (usually {:.0}%)",
                        share * 100.0,
                        baseline.max(0.0) * 100.0
                    ),
                );
            }
        }
    }
}
