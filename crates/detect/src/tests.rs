//! Engine-level tests: features against hand-computed values, no look-ahead,
//! determinism, out-of-order handling, snapshots, models, detector.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use veritas_events::{Channel, Transaction};

use crate::gbdt::{self, Dataset, GbdtParams};
use crate::*;

const T0: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(T0 + secs, 0).single().unwrap()
}

/// A bare transaction: only the required fields (the tutorial format's information).
fn tx(id: &str, card: &str, secs: i64, amount: f64) -> Transaction {
    Transaction {
        transaction_id: id.to_owned(),
        timestamp: at(secs),
        card_number: card.to_owned(),
        amount,
        customer_id: None,
        first_name: None,
        last_name: None,
        currency: "USD".to_owned(),
        merchant: None,
        merchant_id: None,
        category: None,
        channel: None,
        lat: None,
        lon: None,
        home_lat: None,
        home_lon: None,
        city: None,
        country: None,
    }
}

fn rich(
    id: &str,
    card: &str,
    secs: i64,
    amount: f64,
    merchant: &str,
    category: &str,
) -> Transaction {
    Transaction {
        merchant_id: Some(merchant.to_owned()),
        merchant: Some(format!("{merchant} Inc")),
        category: Some(category.to_owned()),
        channel: Some(Channel::Pos),
        ..tx(id, card, secs, amount)
    }
}

fn located(mut t: Transaction, lat: f64, lon: f64) -> Transaction {
    t.lat = Some(lat);
    t.lon = Some(lon);
    t
}

fn val(f: &Features, feature: Feature) -> f64 {
    f64::from(
        f.get(feature)
            .unwrap_or_else(|| panic!("{} missing", feature.name())),
    )
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn windows_counts_and_sums_hand_computed() {
    let mut e = Engine::default();
    let card = "4111111111111111";
    // Times relative to the scored event at S = 3 days.
    let s = 3 * 86_400;
    let history = [
        (s - 8 * 86_400, 1000.0), // outside 7 d
        (s - 2 * 86_400, 10.0),   // 7 d
        (s - 5 * 3600, 20.0),     // 24 h
        (s - 30 * 60, 30.0),      // 1 h
        (s - 5 * 60, 40.0),       // 10 min
        (s - 20, 50.0),           // 1 min
    ];
    for (i, (t, a)) in history.iter().enumerate() {
        e.process(&tx(&format!("h{i}"), card, *t, *a));
    }
    let f = e.process(&tx("now", card, s, 60.0));
    assert_eq!(val(&f, Feature::Count1m), 1.0);
    assert_eq!(val(&f, Feature::Sum1m), 50.0);
    assert_eq!(val(&f, Feature::Count10m), 2.0);
    assert_eq!(val(&f, Feature::Sum10m), 90.0);
    assert_eq!(val(&f, Feature::Count1h), 3.0);
    assert_eq!(val(&f, Feature::Sum1h), 120.0);
    assert_eq!(val(&f, Feature::Count24h), 4.0);
    assert_eq!(val(&f, Feature::Sum24h), 140.0);
    assert_eq!(val(&f, Feature::Count7d), 5.0);
    assert_eq!(val(&f, Feature::Sum7d), 150.0);
    assert_eq!(val(&f, Feature::CardTxCount), 6.0);
    assert_eq!(val(&f, Feature::SecsSincePrev), 20.0);
    assert_eq!(val(&f, Feature::CardAgeDays), 8.0);
    // Amount statistics over all 6 earlier amounts.
    let amounts = [1000.0, 10.0, 20.0, 30.0, 40.0, 50.0];
    let mean = amounts.iter().sum::<f64>() / 6.0;
    assert!(close(val(&f, Feature::AmountToMean), 60.0 / mean, 1e-6));
    assert!(close(val(&f, Feature::AmountToMax), 60.0 / 1000.0, 1e-6));
    let logs: Vec<f64> = amounts.iter().map(|a: &f64| a.ln_1p()).collect();
    let lm = logs.iter().sum::<f64>() / 6.0;
    let lsd = (logs.iter().map(|x| (x - lm).powi(2)).sum::<f64>() / 6.0).sqrt();
    assert!(close(
        val(&f, Feature::AmountZscore),
        (60f64.ln_1p() - lm) / lsd,
        1e-5
    ));
    // Daily rate = 6 / 8 days; ratio = (4 + 1) / (0.75 + 1).
    assert!(close(val(&f, Feature::Velocity24hRatio), 5.0 / 1.75, 1e-6));
    assert!(close(
        val(&f, Feature::Spend24hToMean),
        (140.0 + 60.0) / mean,
        1e-6
    ));
    assert_eq!(val(&f, Feature::MinAmount1m), 50.0);
    assert!(close(
        val(&f, Feature::SmallThenLargeRatio),
        60.0 / 50.0,
        1e-6
    ));
    assert_eq!(val(&f, Feature::MicroTx1h), 0.0);
}

#[test]
fn first_transaction_and_missing_optional_fields_degrade_to_missing() {
    let mut e = Engine::default();
    let f = e.process(&tx("a", "5500000000000004", 0, 12.0));
    assert_eq!(val(&f, Feature::Amount), 12.0);
    assert_eq!(val(&f, Feature::CardTxCount), 0.0);
    assert_eq!(val(&f, Feature::Count24h), 0.0);
    for missing in [
        Feature::CardAgeDays,
        Feature::SecsSincePrev,
        Feature::AmountZscore,
        Feature::AmountToMean,
        Feature::DistPrevKm,
        Feature::SpeedKmh,
        Feature::DistHomeKm,
        Feature::MerchantNew,
        Feature::CategoryNew,
        Feature::ChannelCode,
        Feature::DistinctMerchants10m,
        Feature::MerchantBaselineNewCardShare,
        Feature::MerchantNewCardShare,
        Feature::CategoryAmountZscore,
        Feature::CountryNew,
        Feature::MinAmount1m,
    ] {
        assert_eq!(f.get(missing), None, "{} should be missing", missing.name());
    }
    // A second bare transaction: history features appear, location/merchant ones stay missing.
    let f = e.process(&tx("b", "5500000000000004", 90, 30.0));
    assert_eq!(val(&f, Feature::SecsSincePrev), 90.0);
    assert_eq!(val(&f, Feature::AmountToMean), 30.0 / 12.0);
    assert_eq!(f.get(Feature::DistPrevKm), None);
    assert_eq!(f.get(Feature::MerchantNew), None);
    assert_eq!(
        f.get(Feature::AmountZscore),
        None,
        "needs 3 earlier transactions"
    );
    // Garbage amounts read as zero, not NaN.
    let f = e.process(&tx("c", "5500000000000004", 100, f64::NAN));
    assert_eq!(val(&f, Feature::Amount), 0.0);
    let f = e.process(&tx("d", "5500000000000004", 110, -5.0));
    assert_eq!(val(&f, Feature::Amount), 0.0);
}

#[test]
fn geo_velocity_and_home_distance_hand_computed() {
    let mut e = Engine::default();
    let card = "4000000000000002";
    let mut first = located(tx("a", card, 0, 10.0), 40.0, -74.0);
    first.home_lat = Some(40.0);
    first.home_lon = Some(-74.0);
    let f = e.process(&first);
    assert_eq!(val(&f, Feature::DistHomeKm), 0.0);
    // One degree of latitude north, ten minutes later.
    let f = e.process(&located(tx("b", card, 600, 10.0), 41.0, -74.0));
    let d = haversine_km(40.0, -74.0, 41.0, -74.0);
    assert!(close(val(&f, Feature::DistPrevKm), d, 1e-6));
    assert!(close(
        val(&f, Feature::SpeedKmh),
        d / (600.0 / 3600.0),
        1e-6
    ));
    // Home remembered from the first event.
    assert!(close(val(&f, Feature::DistHomeKm), d, 1e-6));
    // Typical home distance so far: mean of [0] = 0 -> ratio d / 1.
    assert!(close(val(&f, Feature::DistHomeToTypical), d, 1e-6));
    // A transaction without location leaves the previous location in place; speed uses a
    // floor of one minute.
    e.process(&tx("c", card, 620, 5.0));
    let f = e.process(&located(tx("d", card, 630, 10.0), 41.0, -73.0));
    let d2 = haversine_km(41.0, -74.0, 41.0, -73.0);
    assert!(close(val(&f, Feature::DistPrevKm), d2, 1e-6));
    assert!(close(
        val(&f, Feature::SpeedKmh),
        d2 / (60.0 / 3600.0),
        1e-6
    ));
}

#[test]
fn impossible_travel_rule_explains_itself() {
    let mut e = Engine::default();
    let card = "4000000000000010";
    e.process(&located(tx("a", card, 0, 10.0), 40.7128, -74.0060)); // New York
                                                                    // Paris, 38 minutes later.
    let f = e.process(&located(tx("b", card, 38 * 60, 10.0), 48.8566, 2.3522));
    let mut hits = Vec::new();
    RulesConfig::default().evaluate(&f, &mut hits);
    let hit = hits
        .iter()
        .find(|h| h.rule == "impossible_travel")
        .expect("rule fired");
    assert_eq!(hit.weight, 3.0);
    let d = haversine_km(40.7128, -74.0060, 48.8566, 2.3522);
    let expected = format!(
        "impossible_travel: {d:.0} km from previous transaction 38 min earlier ({:.0} km/h)",
        d / (38.0 / 60.0)
    );
    assert_eq!(hit.reason, expected);
    // Disabled rule does not fire.
    let mut cfg = RulesConfig::default();
    cfg.impossible_travel.enabled = false;
    let mut hits = Vec::new();
    cfg.evaluate(&f, &mut hits);
    assert!(hits.iter().all(|h| h.rule != "impossible_travel"));
}

#[test]
fn novelty_shares_and_card_testing_features() {
    let mut e = Engine::default();
    let card = "4000000000000028";
    e.process(&rich("1", card, 0, 20.0, "m1", "grocery"));
    e.process(&rich("2", card, 100, 25.0, "m1", "grocery"));
    e.process(&rich("3", card, 200, 30.0, "m2", "fuel"));
    let f = e.process(&rich("4", card, 300, 1.0, "m1", "grocery"));
    assert_eq!(val(&f, Feature::MerchantNew), 0.0);
    assert_eq!(val(&f, Feature::CategoryNew), 0.0);
    assert!(close(val(&f, Feature::CategoryShare), 2.0 / 3.0, 1e-6));
    // Grocery so far: 20 and 25 -> mean 22.5; amount 1.0.
    assert!(close(
        val(&f, Feature::AmountToCategoryMean),
        1.0 / 22.5,
        1e-6
    ));
    assert_eq!(val(&f, Feature::ChannelShare), 1.0);
    assert_eq!(val(&f, Feature::ChannelCode), 0.0);
    // Distinct merchants in 10 min, this one included: m1, m2.
    assert_eq!(val(&f, Feature::DistinctMerchants10m), 2.0);
    // Card testing burst: three micro amounts at new merchants within a minute.
    e.process(&rich("5", card, 310, 0.5, "t1", "digital"));
    e.process(&rich("6", card, 320, 0.9, "t2", "digital"));
    let f = e.process(&rich("7", card, 330, 450.0, "t3", "electronics"));
    assert_eq!(val(&f, Feature::MerchantNew), 1.0);
    assert_eq!(val(&f, Feature::CategoryNew), 1.0);
    assert_eq!(val(&f, Feature::CategoryShare), 0.0);
    assert_eq!(
        f.get(Feature::AmountToCategoryMean),
        None,
        "category never seen"
    );
    assert_eq!(val(&f, Feature::DistinctMerchants10m), 5.0); // t3, t2, t1, m1, m2
    assert_eq!(val(&f, Feature::MicroTx1h), 3.0); // 1.0, 0.5, 0.9
    assert_eq!(val(&f, Feature::MinAmount1m), 0.5);
    assert!(close(val(&f, Feature::SmallThenLargeRatio), 900.0, 1e-6));
    let mut hits = Vec::new();
    RulesConfig::default().evaluate(&f, &mut hits);
    let names: Vec<&str> = hits.iter().map(|h| h.rule.as_str()).collect();
    assert!(names.contains(&"card_testing"), "{names:?}");
    assert!(names.contains(&"small_then_large"), "{names:?}");
    assert!(names.contains(&"velocity_burst"), "{names:?}");
}

#[test]
fn merchant_shares_and_age_hand_computed() {
    let mut e = Engine::default();
    for i in 0..4 {
        e.process(&rich(
            &format!("x{i}"),
            &format!("40000000000000{i:02}"),
            i * 60,
            1.0,
            "shop",
            "misc",
        ));
    }
    e.process(&rich("y", "4000000000000000", 300, 3.0, "shop", "misc"));
    let f = e.process(&rich("z", "4999999999999999", 400, 10.0, "shop", "misc"));
    // 4 of 5 were a card's first visit (all but the one at 300 s), weighted by decay.
    let w = |t: f64| (-(400.0 - t) * 1000.0 / (24.0 * 3_600_000.0)).exp();
    let share = (w(0.0) + w(60.0) + w(120.0) + w(180.0))
        / (w(0.0) + w(60.0) + w(120.0) + w(180.0) + w(300.0));
    assert!(close(val(&f, Feature::MerchantNewCardShare), share, 1e-6));
    // Baseline weights e^(-a/14 d) - e^(-a/1 d), a = age in days: about proportional to
    // the age for minutes-old events, so the older first visits weigh more.
    let b = |t: f64| {
        let a = (400.0 - t) / 86_400.0;
        (-a / 14.0).exp() - (-a).exp()
    };
    let baseline = (b(0.0) + b(60.0) + b(120.0) + b(180.0))
        / (b(0.0) + b(60.0) + b(120.0) + b(180.0) + b(300.0));
    assert!(close(
        val(&f, Feature::MerchantBaselineNewCardShare),
        baseline,
        1e-4
    ));
    assert!(close(
        val(&f, Feature::MerchantNewCardLift),
        share - baseline,
        1e-4
    ));
    // All 5 were micro.
    assert!(close(val(&f, Feature::MerchantMicroShare), 1.0, 1e-6));
    assert_eq!(val(&f, Feature::MerchantHighAmountShare), 0.0);
    // Known for less than an hour: no rates yet.
    assert_eq!(f.get(Feature::MerchantVelocityRatio), None);
    // A merchant never seen reads as age 0 with no shares.
    let f = e.process(&rich("n", "4999999999999999", 500, 10.0, "other", "misc"));
    assert_eq!(f.get(Feature::MerchantNewCardShare), None);
}

#[test]
fn time_of_day_roundness_and_country() {
    let mut e = Engine::default();
    let card = "4000000000000036";
    // T0 is 22:13:20 UTC.
    let mut t = tx("a", card, 0, 100.0);
    t.country = Some("US".into());
    let f = e.process(&t);
    assert!(close(
        val(&f, Feature::HourOfDay),
        22.0 + 13.0 / 60.0 + 20.0 / 3600.0,
        1e-6
    ));
    assert_eq!(val(&f, Feature::IsNight), 1.0);
    assert_eq!(val(&f, Feature::AmountRoundness), 3.0);
    assert_eq!(f.get(Feature::CountryNew), None, "no country history yet");
    let mut t = tx("b", card, 10 * 3600, 12.34); // 08:13 UTC
    t.country = Some("fr".into());
    let f = e.process(&t);
    assert_eq!(val(&f, Feature::IsNight), 0.0);
    assert_eq!(val(&f, Feature::AmountRoundness), 0.0);
    assert_eq!(val(&f, Feature::CountryNew), 1.0);
    assert_eq!(val(&f, Feature::CardNightShare), 1.0);
    let mut t = tx("c", card, 11 * 3600, 50.0);
    t.country = Some("US".into());
    let f = e.process(&t);
    assert_eq!(val(&f, Feature::CountryNew), 0.0);
    assert_eq!(val(&f, Feature::AmountRoundness), 2.0);
    assert_eq!(val(&f, Feature::CardNightShare), 0.5);
    assert_eq!(
        f.get(Feature::HourBlockShare),
        None,
        "needs 3 earlier transactions"
    );
    // 4th transaction at 08:13 again: block 2 (06-09) held 1 of 3 earlier ones (08:13).
    let f = e.process(&tx("d", card, 34 * 3600, 5.0));
    assert!(close(val(&f, Feature::HourBlockShare), 1.0 / 3.0, 1e-6));
}

#[test]
fn late_events_within_bound_are_applied_later_ones_counted() {
    let mut e = Engine::new(EngineConfig {
        lateness_secs: 120,
        ..EngineConfig::default()
    });
    let card = "4000000000000044";
    e.process(&tx("a", card, 0, 10.0));
    e.process(&tx("b", card, 100, 20.0));
    // 60 s late: windows only see events at or before its own time.
    let (f, arrival) = e.process_with_arrival(&tx("late", card, 40, 30.0));
    assert_eq!(arrival, Arrival::Late);
    assert_eq!(
        val(&f, Feature::Count1m),
        1.0,
        "only 'a' is in its past minute"
    );
    assert_eq!(val(&f, Feature::Sum1m), 10.0);
    assert_eq!(val(&f, Feature::SecsSincePrev), 40.0);
    // It was applied: the next event sees it in its window.
    let f = e.process(&tx("c", card, 101, 1.0));
    assert_eq!(val(&f, Feature::Count1m), 1.0); // b; the late event (40) is 61 s before
    assert_eq!(val(&f, Feature::Count10m), 3.0);
    assert_eq!(val(&f, Feature::Sum10m), 60.0);
    // Far too late: scored, not applied.
    let (_, arrival) = e.process_with_arrival(&tx("ancient", card, -1000, 99.0));
    assert_eq!(arrival, Arrival::TooLate);
    let f = e.process(&tx("d", card, 102, 1.0));
    assert_eq!(val(&f, Feature::CardTxCount), 4.0);
    let s = e.stats();
    assert_eq!((s.late_accepted, s.too_late, s.events), (1, 1, 6));
}

#[test]
fn idle_cards_are_evicted_and_state_is_bounded() {
    let mut e = Engine::new(EngineConfig {
        idle_ttl_days: 1,
        track_changelog: true,
        ..EngineConfig::default()
    });
    e.process(&rich("a", "4000000000000051", 0, 10.0, "m", "c"));
    // A flood on one card: the recent-event ring stays capped.
    for i in 0..2000 {
        e.process(&tx(&format!("f{i}"), "4000000000000069", 10 + i, 1.0));
    }
    let m = e.memory();
    assert_eq!(m.cards, 2);
    assert!(m.card_bytes < 2 * 8192, "{m:?}");
    e.drain_changelog();
    // Two days later the first card and merchant are evicted at the next sweep.
    e.process(&tx("z", "4000000000000077", 2 * 86_400 + 3601, 5.0));
    assert_eq!(e.memory().cards, 1);
    assert_eq!(e.memory().merchants, 0);
    assert_eq!(e.stats().evicted_cards, 2);
    let log = e.drain_changelog();
    let tombstones: Vec<StateKey> = log
        .iter()
        .filter(|c| c.value.is_none())
        .map(|c| StateKey::from_bytes(&c.key).unwrap())
        .collect();
    assert!(tombstones.contains(&StateKey::Card("4000000000000051".into())));
    assert!(tombstones.contains(&StateKey::Merchant("m".into())));
}

/// A deterministic pseudo-random stream of rich events over a few cards and merchants.
fn stream(n: usize, seed: u64) -> Vec<Transaction> {
    let mut rng = gbdt_rng(seed);
    let mut t = 0i64;
    (0..n)
        .map(|i| {
            t += (rng() % 3000) as i64;
            let card = format!("41111111111111{:02}", rng() % 7);
            let mut x = rich(
                &format!("t{i}"),
                &card,
                t,
                (rng() % 50_000) as f64 / 100.0,
                &format!("m{}", rng() % 5),
                ["grocery", "fuel", "travel"][(rng() % 3) as usize],
            );
            if !rng().is_multiple_of(3) {
                x.lat = Some(40.0 + (rng() % 100) as f64 / 10.0);
                x.lon = Some(-74.0 + (rng() % 100) as f64 / 10.0);
                x.home_lat = Some(40.0);
                x.home_lon = Some(-74.0);
            }
            x.country = Some(["US", "CA"][(rng() % 2) as usize].into());
            x
        })
        .collect()
}

fn gbdt_rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = crate::gbdt::SplitMix64::new(seed);
    move || s.next_u64()
}

fn run(events: &[Transaction]) -> Vec<Features> {
    let mut e = Engine::default();
    events.iter().map(|t| e.process(t)).collect()
}

#[test]
fn deterministic_across_runs() {
    let events = stream(400, 1);
    let a = run(&events);
    let b = run(&events);
    assert!(a.iter().zip(&b).all(|(x, y)| x.bit_eq(y)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Features of past events do not depend on future ones (no look-ahead).
    #[test]
    fn no_look_ahead(seed in any::<u64>(), cut in 1usize..150, other in any::<u64>()) {
        let events = stream(150, seed);
        let mut altered = events[..cut].to_vec();
        let mut future = stream(150 - cut, other);
        for (i, f) in future.iter_mut().enumerate() {
            f.timestamp = events[cut.saturating_sub(1)].timestamp + chrono::Duration::seconds(i as i64);
        }
        altered.extend(future);
        let a = run(&events);
        let b = run(&altered);
        for i in 0..cut {
            prop_assert!(a[i].bit_eq(&b[i]), "event {} changed", i);
        }
    }

    /// Snapshot at any point, restore, continue: identical features to an uninterrupted run.
    #[test]
    fn snapshot_restore_is_exact(seed in any::<u64>(), cut in 0usize..120) {
        let events = stream(120, seed);
        let full = run(&events);
        let mut e = Engine::default();
        for t in &events[..cut] {
            e.process(t);
        }
        let bytes = e.snapshot();
        let mut r = Engine::restore(EngineConfig::default(), &bytes).unwrap();
        prop_assert_eq!(r.snapshot(), bytes);
        for (i, t) in events.iter().enumerate().skip(cut) {
            prop_assert!(r.process(t).bit_eq(&full[i]));
        }
    }

    /// Corrupt snapshot bytes never panic.
    #[test]
    fn corrupt_snapshots_are_errors(seed in any::<u64>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut e = Engine::default();
        for t in stream(30, seed) {
            e.process(&t);
        }
        let mut bytes = e.snapshot();
        for (pos, b) in flips {
            let n = bytes.len();
            bytes[pos % n] ^= b;
        }
        let _ = Engine::restore(EngineConfig::default(), &bytes);
        let n = bytes.len();
        let _ = Engine::restore(EngineConfig::default(), &bytes[..cut % n]);
    }

    /// The score is monotone in the probability and in each rule weight.
    #[test]
    fn combine_is_monotone(p in 0.0f64..1.0, dp in 0.0f64..0.5, w in 0.0f64..5.0, dw in 0.0f64..5.0) {
        let q = (p + dp).min(1.0);
        prop_assert!(combine(q, [w]) >= combine(p, [w]));
        prop_assert!(combine(p, [w + dw]) >= combine(p, [w]));
        let s = combine(p, [w]);
        prop_assert!((0.0..=1.0).contains(&s));
    }
}

#[test]
fn changelog_restore_is_exact() {
    let events = stream(300, 7);
    let full = run(&events);
    let cfg = EngineConfig {
        track_changelog: true,
        idle_ttl_days: 1,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(cfg.clone());
    // A "compacted topic": latest value per key.
    let mut topic = std::collections::BTreeMap::new();
    for (i, t) in events[..200].iter().enumerate() {
        e.process(t);
        if i % 37 == 0 {
            for c in e.drain_changelog() {
                topic.insert(c.key, c.value);
            }
        }
    }
    for c in e.drain_changelog() {
        topic.insert(c.key, c.value);
    }
    let mut r = Engine::new(cfg);
    for (k, v) in &topic {
        r.apply_changelog(k, v.as_deref()).unwrap();
    }
    let mut fresh = Engine::default();
    for t in &events[..200] {
        fresh.process(t);
    }
    for (i, t) in events.iter().enumerate().skip(200) {
        assert!(r.process(t).bit_eq(&full[i]), "event {i}");
    }
    // Keyed access to one card's state.
    assert!(e.card_state(&events[0].card_number).is_some());
    assert!(e.card_state("0000").is_none());
    assert!(r.apply_changelog(b"", None).is_err());
    assert!(r.apply_changelog(b"cX", Some(&[9, 9])).is_err());
}

fn synthetic(n: usize, seed: u64) -> Dataset {
    // y = 1 when x0 > 0.7 and x1 < 0.4 (about 18 %), with 5 % label noise; x2 is noise;
    // x3 is missing half the time and carries signal when present.
    let mut rng = gbdt_rng(seed);
    let mut u = move || (rng() >> 11) as f64 / (1u64 << 53) as f64;
    let mut ds = Dataset::new(NUM_FEATURES);
    for _ in 0..n {
        let (x0, x1, x2) = (u(), u(), u());
        let mut y = x0 > 0.7 && x1 < 0.4;
        let x3 = if u() < 0.5 {
            f32::NAN
        } else {
            f32::from(u8::from(y)) + 0.3 * u() as f32
        };
        if u() < 0.05 {
            y = !y;
        }
        let mut row = vec![f32::NAN; NUM_FEATURES];
        row[0] = x0 as f32;
        row[1] = x1 as f32;
        row[2] = x2 as f32;
        row[3] = x3;
        ds.push(&row, y).unwrap();
    }
    ds
}

fn small_params() -> GbdtParams {
    GbdtParams {
        n_trees: 60,
        learning_rate: 0.2,
        max_depth: 3,
        early_stopping_rounds: 10,
        ..GbdtParams::default()
    }
}

#[test]
fn gbdt_learns_a_known_function_and_beats_baseline() {
    let train = synthetic(3000, 1);
    let valid = synthetic(1000, 2);
    let test = synthetic(2000, 3);
    let t = gbdt::train(&train, Some(&valid), &small_params(), |_| {}).unwrap();
    assert!(t.best_trees > 0 && t.best_trees <= 60);
    let scores: Vec<f64> = (0..test.len())
        .map(|i| t.ensemble.margin(test.row(i)))
        .collect();
    let ap = eval::average_precision(test.labels(), &scores).unwrap();
    let auc = eval::roc_auc(test.labels(), &scores).unwrap();
    // Baseline: a constant score has AP = prevalence, AUC = 0.5.
    let prevalence = test.labels().iter().filter(|&&y| y).count() as f64 / test.len() as f64;
    assert!(ap > prevalence + 0.4, "ap {ap} vs prevalence {prevalence}");
    let oracle: Vec<f64> = (0..test.len())
        .map(|i| f64::from(u8::from(test.row(i)[0] > 0.7 && test.row(i)[1] < 0.4)))
        .collect();
    let oracle_auc = eval::roc_auc(test.labels(), &oracle).unwrap();
    // Label noise caps what any model can reach; the learner must get close to the
    // oracle that knows the generating function.
    assert!(auc > oracle_auc - 0.03, "auc {auc} vs oracle {oracle_auc}");
    // The signal features carry the gain; the noise column little.
    assert!(t.ensemble.gain[0] > t.ensemble.gain[2] && t.ensemble.gain[1] > t.ensemble.gain[2]);
    // Calibration after the class-weight correction: mean probability near prevalence.
    let mean_p = scores.iter().map(|&m| gbdt::sigmoid(m)).sum::<f64>() / scores.len() as f64;
    assert!(
        (mean_p - prevalence).abs() < 0.08,
        "{mean_p} vs {prevalence}"
    );
}

#[test]
fn gbdt_rejects_degenerate_input() {
    let mut ds = Dataset::new(2);
    assert!(ds.push(&[1.0], true).is_err());
    assert!(gbdt::train(&ds, None, &GbdtParams::default(), |_| {}).is_err());
    ds.push(&[1.0, 2.0], true).unwrap();
    ds.push(&[2.0, 2.0], true).unwrap();
    let err = gbdt::train(&ds, None, &GbdtParams::default(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("both classes"), "{err}");
}

fn trained_model() -> Model {
    let t = gbdt::train(&synthetic(1500, 4), None, &small_params(), |_| {}).unwrap();
    Model::new(t.ensemble, ModelMeta::default())
}

#[test]
fn a_model_serves_only_the_merchant_state_it_was_trained_with() {
    let shared = |on: bool| {
        let mut c = DetectorConfig::default();
        c.engine.shared_merchants = on;
        c
    };
    // Files from before the field existed were trained per partition.
    let old = Model::from_json(&trained_model().to_json()).unwrap();
    assert!(shared(false).check_model(&old).is_ok());
    let err = shared(true).check_model(&old).unwrap_err();
    assert!(
        err.to_string().contains("`partition`") && err.to_string().contains("`shared:900`"),
        "{err}"
    );
    let t = gbdt::train(&synthetic(1500, 4), None, &small_params(), |_| {}).unwrap();
    let meta = ModelMeta {
        merchant_state: "shared:900".into(),
        ..ModelMeta::default()
    };
    let m = Model::from_json(&Model::new(t.ensemble, meta).to_json()).unwrap();
    assert!(shared(true).check_model(&m).is_ok());
    assert!(shared(false).check_model(&m).is_err());
    let mut other_interval = shared(true);
    other_interval.engine.shared_interval_secs = 1800;
    assert!(other_interval.check_model(&m).is_err());
}

#[test]
fn model_round_trip_and_contributions() {
    let m = trained_model();
    let json = m.to_json();
    let back = Model::from_json(&json).unwrap();
    assert_eq!(back.version(), m.version());
    assert!(back.version().starts_with("gbdt-v1-"));
    let test = synthetic(200, 5);
    for i in 0..test.len() {
        let x = test.row(i);
        assert_eq!(m.margin(x).to_bits(), back.margin(x).to_bits());
        // The packed inference layout agrees with the plain tree walk.
        assert!((m.margin(x) - m.ensemble().margin(x)).abs() < 1e-9);
        let mut contrib = vec![0f32; NUM_FEATURES];
        let (margin, bias) = back.margin_with_contrib(x, &mut contrib);
        let sum: f64 = contrib.iter().map(|&c| f64::from(c)).sum();
        assert!(
            (bias + sum - margin).abs() < 1e-3,
            "attribution must add up"
        );
        assert!(
            contrib[4..].iter().all(|&c| c == 0.0),
            "unused features get nothing"
        );
    }
}

#[test]
fn model_for_another_feature_set_is_refused() {
    let json = trained_model().to_json();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["feature_set"]["names"][0] = "renamed".into();
    v["feature_set"]["fingerprint"] = "0123456789abcdef".into();
    let err = Model::from_json(&v.to_string()).unwrap_err();
    assert!(
        matches!(err, DetectError::FeatureSetMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("0123456789abcdef"), "{err}");
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["format_version"] = 99.into();
    assert!(matches!(
        Model::from_json(&v.to_string()),
        Err(DetectError::ModelVersion { found: 99, .. })
    ));
    // A dangling child index is caught at load time.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["trees"][0]["nodes"][0][3] = 100_000.into();
    assert!(matches!(
        Model::from_json(&v.to_string()),
        Err(DetectError::ModelInvalid(_))
    ));
    assert!(Model::from_json("{not json").is_err());
}

#[test]
fn default_config_file_matches_code_defaults() {
    let parsed = DetectorConfig::default_toml().unwrap();
    assert_eq!(parsed, DetectorConfig::default());
    assert!(DetectorConfig::from_toml(
        "[decision]\nreview_threshold = 0.95\ndecline_threshold = 0.9"
    )
    .is_err());
    assert!(DetectorConfig::from_toml("[rules.card_testing]\nweight = -1.0").is_err());
    assert!(DetectorConfig::from_toml("[rules.no_such_rule]\nweight = 1.0").is_err());
    let c = DetectorConfig::from_toml("[rules.impossible_travel]\nenabled = false").unwrap();
    assert!(!c.rules.impossible_travel.enabled);
    assert_eq!(c.rules.impossible_travel.min_speed_kmh, 900.0);
}

#[test]
fn detector_decisions_mask_cards_and_explain() {
    assert_eq!(mask_card("4111111111111111"), "411111******1111");
    assert_eq!(mask_card("12345678"), "****5678");
    assert_eq!(mask_card("123"), "**3");
    assert_eq!(mask_card(""), "");

    let mut d = Detector::new(DetectorConfig::default(), None);
    let card = "4000000000000085";
    let ok = d.process(&located(tx("a", card, 0, 25.0), 40.7128, -74.0060));
    assert_eq!(ok.decision, Verdict::Approve);
    assert_eq!(ok.card, "400000******0085");
    assert_eq!(ok.model_version, "rules-only");
    assert!((ok.score - 0.05).abs() < 1e-9, "prior without rules");
    let bad = d.process(&located(tx("b", card, 600, 25.0), 48.8566, 2.3522));
    assert_eq!(bad.decision, Verdict::Review);
    assert!(bad.reasons[0].starts_with("impossible_travel: "));
    assert!((bad.score - combine(0.05, [3.0])).abs() < 1e-12);
    let json = serde_json::to_value(&bad).unwrap();
    assert_eq!(json["decision"], "REVIEW");
    assert_eq!(json["transaction_id"], "b");
    assert!(json.get("latency_us").is_none());

    // With a model, non-APPROVE decisions name the features that pushed the score.
    let mut d = Detector::new(DetectorConfig::default(), Some(trained_model()));
    let mut hot = tx("c", card, 0, 1.0);
    hot.amount = 0.9; // feature 0 (amount) = 0.9 > 0.7, count_1m... feature 1 = log_amount
    let dec = d.process(&hot);
    assert!(dec.model_version.starts_with("gbdt-v1-"));
    assert!((0.0..=1.0).contains(&dec.score));
}

#[test]
fn a_future_timestamp_cannot_age_out_state() {
    let mut e = Engine::new(EngineConfig {
        idle_ttl_days: 2,
        ..EngineConfig::default()
    });
    e.process(&tx("a", "4000000000000143", 0, 5.0));
    e.process(&tx("b", "4000000000000150", 10, 5.0));
    // Year ~2046: the clock moves one day at most, so nothing is idle for 2 days yet.
    e.process(&tx("rogue", "4000000000000168", 2_400_000_000, 5.0));
    assert_eq!(e.memory().cards, 3);
    assert_eq!(e.watermark_ms(), Some((T0 + 10) * 1000 + 86_400_000));
}

#[test]
fn merchant_state_is_capped() {
    let mut e = Engine::new(EngineConfig {
        max_merchants: 3,
        ..EngineConfig::default()
    });
    for i in 0..10 {
        e.process(&rich(
            &format!("t{i}"),
            "4000000000000127",
            i,
            5.0,
            &format!("junk{i}"),
            "misc",
        ));
    }
    assert_eq!(e.memory().merchants, 3);
    assert_eq!(e.stats().merchants_untracked, 7);
    // An untracked merchant reads as never seen, not as garbage.
    let f = e.process(&rich("u", "4000000000000135", 20, 5.0, "junk9", "misc"));
    assert_eq!(f.get(Feature::MerchantBaselineNewCardShare), None);
    assert_eq!(f.get(Feature::MerchantNewCardShare), None);
}

#[test]
fn memory_per_card_is_documented_size() {
    // A typical card: 3 transactions a day for a week at 10 merchants.
    let mut e = Engine::default();
    for i in 0..21 {
        e.process(&rich(
            &format!("t{i}"),
            "4000000000000093",
            i * 8 * 3600,
            20.0,
            &format!("m{}", i % 10),
            "grocery",
        ));
    }
    let m = e.memory();
    assert_eq!(m.cards, 1);
    assert!(
        m.card_bytes < 1024,
        "typical card uses {} bytes",
        m.card_bytes
    );
}

#[test]
fn history_flags_spend_and_previous_amount_hand_computed() {
    let mut e = Engine::default();
    let card = "4000000000000101";
    for (i, t) in [0, 100, 200].iter().enumerate() {
        e.process(&rich(&format!("h{i}"), card, *t, 10.0, "m1", "grocery"));
    }
    // 100 = 10x the mean of 10: a high amount, at a new merchant in a new category.
    let f = e.process(&rich("big", card, 300, 100.0, "m2", "electronics"));
    assert_eq!(val(&f, Feature::AmountToMean), 10.0);
    // The card's very first transaction was, by definition, at a new merchant.
    assert_eq!(val(&f, Feature::NovelTx1h), 1.0);
    let f = e.process(&rich("after", card, 400, 4.0, "m1", "grocery"));
    assert_eq!(val(&f, Feature::NovelTx1h), 2.0);
    assert_eq!(val(&f, Feature::NovelTx24h), 2.0);
    assert_eq!(val(&f, Feature::HighAmountTx1h), 1.0);
    assert_eq!(val(&f, Feature::HighAmountTx24h), 1.0);
    let mean = (10.0 + 10.0 + 10.0 + 100.0) / 4.0;
    assert!(close(
        val(&f, Feature::PrevAmountToMean),
        100.0 / mean,
        1e-6
    ));
    assert!(close(
        val(&f, Feature::Spend1hToMean),
        (130.0 + 4.0) / mean,
        1e-6
    ));
    assert_eq!(val(&f, Feature::CardMicroShare), 0.0);
    // Two hours later the hour counts are empty, the day counts are not; 4.00 was micro.
    let f = e.process(&rich("later", card, 400 + 7200, 20.0, "m1", "grocery"));
    assert_eq!(val(&f, Feature::HighAmountTx1h), 0.0);
    assert_eq!(val(&f, Feature::HighAmountTx24h), 1.0);
    assert_eq!(val(&f, Feature::NovelTx1h), 0.0);
    assert_eq!(val(&f, Feature::NovelTx24h), 2.0);
    assert!(close(val(&f, Feature::CardMicroShare), 1.0 / 5.0, 1e-6));
}

#[test]
fn implausible_jump_is_remembered() {
    let mut e = Engine::default();
    let card = "4000000000000119";
    let f = e.process(&located(tx("a", card, 0, 10.0), 40.7128, -74.0060));
    assert_eq!(f.get(Feature::HoursSinceJump), None);
    e.process(&located(tx("b", card, 600, 10.0), 48.8566, 2.3522)); // NY -> Paris in 10 min
    let f = e.process(&located(tx("c", card, 600 + 7200, 10.0), 48.86, 2.35));
    assert!(close(val(&f, Feature::HoursSinceJump), 2.0, 1e-6));
    // A plausible trip does not count as a jump.
    let mut e = Engine::default();
    e.process(&located(tx("a", card, 0, 10.0), 40.7128, -74.0060));
    e.process(&located(tx("b", card, 8 * 3600, 10.0), 48.8566, 2.3522));
    let f = e.process(&tx("c", card, 9 * 3600, 10.0));
    assert_eq!(f.get(Feature::HoursSinceJump), None);
}

/// 20 grocery purchases of 10.00 at 20 other merchants, by cards `{prefix}00`..`{prefix}19`
/// at seconds 0..19: the category's statistics (all equal, so its std is floored at 0.1).
fn seed_grocery_category(e: &mut Engine, prefix: &str) {
    for i in 0..20 {
        e.process(&rich(
            &format!("c{i}"),
            &format!("{prefix}{i:02}"),
            i,
            10.0,
            &format!("o{i}"),
            "grocery",
        ));
    }
}

#[test]
fn merchant_shift_features_hand_computed() {
    let mut e = Engine::default();
    seed_grocery_category(&mut e, "41000000000001");
    let f = e.process(&rich(
        "s1",
        "4200000000000001",
        100,
        20.0,
        "shop",
        "grocery",
    ));
    // Category z: all 20 equal -> std floored at 0.1.
    let z = (21f64.ln() - 11f64.ln()) / 0.1;
    assert!(close(val(&f, Feature::CategoryAmountZscore), z, 1e-5));
    assert_eq!(
        f.get(Feature::MerchantRecentCategoryZ),
        None,
        "new merchant"
    );
    let f = e.process(&rich(
        "s2",
        "4200000000000002",
        2 * 86_400 + 100,
        10.0,
        "shop",
        "grocery",
    ));
    // One earlier transaction at the shop: its decayed mean is its own z.
    assert!(close(val(&f, Feature::MerchantRecentCategoryZ), z, 1e-4));
    assert_eq!(
        f.get(Feature::MerchantRecentAmountZ),
        None,
        "needs 5 earlier at the shop"
    );
    // Velocity: one event two days ago. Recent rate: e^(-2) / (1 d · (1 - e^(-2)));
    // baseline rate: e^(-2/14) / (14 d · (1 - e^(-2/14))).
    let fast = (-2.0f64).exp() / (1.0 - (-2.0f64).exp());
    let slow = (-2.0f64 / 14.0).exp() / (14.0 * (1.0 - (-2.0f64 / 14.0).exp()));
    assert!(close(
        val(&f, Feature::MerchantVelocityRatio),
        fast / slow,
        1e-5
    ));
    // Baseline of the shift: weight e^(-2/14) - e^(-2) on the same z: shift 0.
    assert!(close(val(&f, Feature::MerchantCategoryZShift), 0.0, 1e-4));
    assert_eq!(val(&f, Feature::MerchantAnomalyShare), 0.0);
}

#[test]
fn merchant_evidence_features_hand_computed() {
    let mut e = Engine::default();
    seed_grocery_category(&mut e, "41000000000001");
    let f1 = e.process(&rich(
        "s1",
        "4200000000000001",
        100,
        20.0,
        "shop",
        "grocery",
    ));
    assert_eq!(f1.get(Feature::MerchantTicketCusum), None, "new merchant");
    // z1 = (ln 21 - ln 11) / 0.1 (std floored) = 6.47: the CUSUM takes min(z, 4) - 0.5.
    let z1 = (21f64.ln() - 11f64.ln()) / 0.1;
    assert!(close(val(&f1, Feature::CategoryAmountZscore), z1, 1e-5));
    let f2 = e.process(&rich(
        "s2",
        "4200000000000002",
        100 + 3600,
        10.0,
        "shop",
        "grocery",
    ));
    // One hour later: the CUSUM has faded by e^(-1/72), the volume by e^(-1/24); s1 was
    // elevated (z >= 1) and suspect (first visit, z > 0.5).
    let s1 = 3.5 * (-1.0f64 / 72.0).exp();
    assert!(close(val(&f2, Feature::MerchantTicketCusum), s1, 1e-6));
    let w = (-1.0f64 / 24.0).exp();
    assert!(close(val(&f2, Feature::MerchantRecentVolume), w, 1e-6));
    assert!(close(
        val(&f2, Feature::MerchantElevatedPosterior),
        (w + 8.0 * 0.16) / (w + 8.0),
        1e-6
    ));
    assert!(close(
        val(&f2, Feature::MerchantSuspectPosterior),
        (w + 8.0 * 0.05) / (w + 8.0),
        1e-6
    ));
    // s2 paid below the category's norm: the CUSUM drops by 0.5 - z2, never below 0.
    let z2 = f64::from(f2.get(Feature::CategoryAmountZscore).unwrap());
    assert!(z2 < 0.0);
    let f3 = e.process(&rich(
        "s3",
        "4200000000000003",
        100 + 2 * 3600,
        10.0,
        "shop",
        "grocery",
    ));
    let s2 = (s1 + z2 - 0.5).max(0.0) * (-1.0f64 / 72.0).exp();
    assert!(close(val(&f3, Feature::MerchantTicketCusum), s2, 1e-6));
    // Two transactions, at 2 h and 1 h: volume e^(-2/24) + e^(-1/24); only s1 elevated.
    let v = (-2.0f64 / 24.0).exp() + w;
    assert!(close(val(&f3, Feature::MerchantRecentVolume), v, 1e-6));
    assert!(close(
        val(&f3, Feature::MerchantElevatedPosterior),
        ((-2.0f64 / 24.0).exp() + 8.0 * 0.16) / (v + 8.0),
        1e-6
    ));
}

#[test]
fn three_hour_novelty_features_hand_computed() {
    let mut e = Engine::default();
    let card = "4000000000000036";
    let day = 86_400;
    // Three 10.00 groceries at one shop: mean 10, so "high" means above 30.
    for d in 0..3 {
        e.process(&rich(
            &format!("g{d}"),
            card,
            d * day,
            10.0,
            "m1",
            "grocery",
        ));
    }
    // A big ticket at a new shop (new and high), then a small one at another new shop.
    e.process(&rich(
        "x1",
        card,
        2 * day + 3600,
        100.0,
        "m2",
        "electronics",
    ));
    e.process(&rich("x2", card, 2 * day + 2 * 3600, 12.0, "m3", "grocery"));
    let f = e.process(&rich(
        "q",
        card,
        2 * day + 3 * 3600 + 1800,
        10.0,
        "m1",
        "grocery",
    ));
    assert_eq!(val(&f, Feature::NovelTx3h), 2.0);
    assert_eq!(val(&f, Feature::NovelHighTx3h), 1.0);
    assert_eq!(
        val(&f, Feature::NovelTx1h),
        0.0,
        "both more than an hour ago"
    );
    // Past three hours the big ticket no longer counts.
    let f = e.process(&rich(
        "r",
        card,
        2 * day + 4 * 3600 + 60,
        10.0,
        "m1",
        "grocery",
    ));
    assert_eq!(val(&f, Feature::NovelTx3h), 1.0);
    assert_eq!(val(&f, Feature::NovelHighTx3h), 0.0);
}

#[test]
fn hour_deviation_is_circular_hand_computed() {
    let mut e = Engine::default();
    let card = "4000000000000176";
    // T0 is 22:13:20 UTC; three transactions at 23:13:20 (T0 + 1 h, then + 24 h steps).
    for d in 0..3 {
        e.process(&tx(&format!("h{d}"), card, 3600 + d * 86_400, 10.0));
    }
    // 01:13:20 the next day: two hours after the mean hour, across midnight.
    let f = e.process(&tx("x", card, 3 * 86_400 + 3 * 3600, 10.0));
    assert!(close(val(&f, Feature::HourDeviation), 2.0, 1e-4));
    // Block share: 23:13 is block 7 (21-24), 01:13 is block 0.
    assert_eq!(val(&f, Feature::HourBlockShare), 0.0);
}

#[test]
fn merchant_own_amount_statistics_and_suspect_share() {
    let mut e = Engine::default();
    seed_grocery_category(&mut e, "43000000000001");
    // Five first visits at "shop" paying 10.00, 20.00, 10.00, 20.00, 10.00 over five minutes.
    let amounts = [10.0, 20.0, 10.0, 20.0, 10.0];
    for (i, a) in amounts.iter().enumerate() {
        e.process(&rich(
            &format!("s{i}"),
            &format!("44000000000001{i:02}"),
            100 + 60 * i as i64,
            *a,
            "shop",
            "grocery",
        ));
    }
    let f = e.process(&rich("x", "4400000000000199", 500, 40.0, "shop", "grocery"));
    let logs: Vec<f64> = amounts.iter().map(|a: &f64| a.ln_1p()).collect();
    let mean = logs.iter().sum::<f64>() / 5.0;
    let sd = (logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 5.0).sqrt();
    assert!(close(
        val(&f, Feature::MerchantAmountZscore),
        (40f64.ln_1p() - mean) / sd,
        1e-5
    ));
    // Suspect: first visits with category z > 0.5. The category had only 10.00 before the
    // first 20.00 (z = (ln 21 - ln 11) / 0.1 > 0.5), and the 10.00 ones had z <= 0.
    // The second 20.00 came after the category saw one 20.00; its z is still > 0.5.
    let w = |t: f64| (-(500.0 - t) * 1000.0 / (24.0 * 3_600_000.0)).exp();
    let all: f64 = (0..5).map(|i| w(100.0 + 60.0 * f64::from(i))).sum();
    assert!(close(
        val(&f, Feature::MerchantSuspectShare),
        (w(160.0) + w(280.0)) / all,
        1e-5
    ));
    // Minutes-old events are almost all recent: the older baseline has ~no weight, but
    // what it has is the same mix, so the lift is ~0.
    assert!(close(val(&f, Feature::MerchantSuspectLift), 0.0, 1e-3));
    assert_eq!(val(&f, Feature::MerchantNewCardShare), 1.0);
}

/// Mean, standard deviation and median of a sample.
fn summary(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let median = v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
    (mean, std, median)
}

/// Whether one feature's values agree on the events where both engines have one: means
/// within 0.2 and medians within 0.5 of the single engine's standard deviation.
fn distributions_agree(pairs: &[(f64, f64)]) -> Result<String, String> {
    let one: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let many: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let (mean1, std1, med1) = summary(&one);
    let (mean6, _, med6) = summary(&many);
    let std1 = std1.max(1e-3);
    let text = format!(
        "{} events, mean {mean1:.3} vs {mean6:.3}, median {med1:.3} vs {med6:.3}, std {std1:.3}",
        pairs.len()
    );
    if pairs.len() < 1000 || (mean1 - mean6).abs() > 0.2 * std1 || (med1 - med6).abs() > 0.5 * std1
    {
        Err(text)
    } else {
        Ok(text)
    }
}

#[test]
fn table_state_equals_a_full_engines() {
    // The shared table's engine computes only what merchant and category state depend on;
    // that state must be exactly a full engine's, for in-order, late and too-late events.
    let mut events: Vec<Transaction> =
        veritas_events::Generator::new(veritas_events::GeneratorConfig {
            seed: 11,
            customers: 1500,
            days: Some(12),
            ..veritas_events::GeneratorConfig::default()
        })
        .unwrap()
        .map(|e| e.tx)
        .collect();
    // Some events a little late (within the 5-minute bound), some far too late.
    for i in (0..events.len()).step_by(97) {
        let minutes = if i % 2 == 0 { 3 } else { 90 };
        events[i].timestamp -= chrono::Duration::minutes(minutes);
    }
    let mut full = Engine::default();
    let mut table = Engine::default();
    for tx in &events {
        full.process(tx);
        table.process_for_table(tx);
    }
    let stats = full.stats();
    assert!(stats.late_accepted > 0 && stats.too_late > 0, "{stats:?}");
    assert_eq!(table.stats(), stats);
    assert!(full.merchants.len() > 1000, "{}", full.merchants.len());
    assert_eq!(table.merchants, full.merchants);
    assert_eq!(table.categories, full.categories);
    assert_eq!(table.cards.len(), full.cards.len());
    // The table keeps no ring of recent events, categories, countries or places per card.
    let (t, f) = (table.memory(), full.memory());
    eprintln!("card bytes: table {} full {}", t.card_bytes, f.card_bytes);
    assert!(t.card_bytes < f.card_bytes, "{t:?} vs {f:?}");
}

#[test]
fn merchant_features_are_invariant_to_partitioning() {
    // What `veritas detect` does with a topic of 6 partitions: one engine per partition,
    // each seeing every event of its cards and ~1/6 of every merchant's. Merchant-level
    // features must mean the same there as in one engine that sees everything (training
    // replays the same split anyway, but a model must not depend on the exact count).
    const PARTITIONS: u32 = 6;
    let events: Vec<Transaction> =
        veritas_events::Generator::new(veritas_events::GeneratorConfig {
            seed: 5,
            customers: 3000,
            days: Some(24),
            ..veritas_events::GeneratorConfig::default()
        })
        .unwrap()
        .map(|e| e.tx)
        .collect();
    let mut one = Engine::default();
    let mut many: Vec<Engine> = (0..PARTITIONS).map(|_| Engine::default()).collect();
    let merchant_features: Vec<Feature> = Feature::ALL
        .iter()
        .copied()
        .filter(|f| {
            f.name().starts_with("merchant_")
                && *f != Feature::MerchantNew
                && !crate::features::MERCHANT_EVIDENCE.contains(f)
        })
        .collect();
    assert!(merchant_features.len() >= 10);
    // Judge the last 10 days, once the engines have a baseline.
    let judged_from = events[0].timestamp + chrono::Duration::days(14);
    let mut pairs = vec![Vec::new(); merchant_features.len()];
    // Control: a plain count of earlier events at the merchant, which must NOT pass.
    let mut count_one: std::collections::HashMap<String, u32> = Default::default();
    let mut count_many: std::collections::HashMap<(u32, String), u32> = Default::default();
    let mut control = Vec::new();
    for tx in &events {
        let p = partition_of(&tx.card_number, PARTITIONS);
        let f1 = one.process(tx);
        let f6 = many[p as usize].process(tx);
        let Some(m) = tx.merchant_id.clone() else {
            continue;
        };
        let c1 = count_one.entry(m.clone()).or_default();
        let c6 = count_many.entry((p, m)).or_default();
        if tx.timestamp >= judged_from {
            for (i, &feature) in merchant_features.iter().enumerate() {
                if let (Some(a), Some(b)) = (f1.get(feature), f6.get(feature)) {
                    pairs[i].push((f64::from(a), f64::from(b)));
                }
            }
            if *c6 > 0 {
                control.push((f64::from(*c1), f64::from(*c6)));
            }
        }
        *c1 += 1;
        *c6 += 1;
    }
    let mut failures = Vec::new();
    for (i, feature) in merchant_features.iter().enumerate() {
        let verdict = distributions_agree(&pairs[i]);
        eprintln!("{}: {verdict:?}", feature.name());
        if let Err(e) = verdict {
            failures.push(format!("{}: {e}", feature.name()));
        }
    }
    assert!(
        failures.is_empty(),
        "merchant features depend on the partition count:\n{}",
        failures.join("\n")
    );
    let control = distributions_agree(&control);
    eprintln!("control count: {control:?}");
    assert!(
        control.is_err(),
        "the comparison must reject a plain per-engine count"
    );
}

#[test]
fn merchant_per_transaction_averages_hand_computed() {
    let mut e = Engine::default();
    // 20 grocery purchases of 10.00 elsewhere set the category's statistics.
    for i in 0..20 {
        e.process(&rich(
            &format!("c{i}"),
            &format!("45000000000001{i:02}"),
            i,
            10.0,
            &format!("o{i}"),
            "grocery",
        ));
    }
    // A first visit paying far above the category (suspect and elevated), then a
    // 10.00 purchase by another card (neither).
    let f1 = e.process(&rich("a", "4600000000000001", 100, 20.0, "shop", "grocery"));
    let f2 = e.process(&rich("b", "4600000000000002", 200, 10.0, "shop", "grocery"));
    let z1 = val(&f1, Feature::CategoryAmountZscore);
    let z2 = val(&f2, Feature::CategoryAmountZscore);
    assert!(z1 >= 1.0 && z2 < 1.0, "{z1} {z2}");
    assert_eq!(
        f1.get(Feature::MerchantLast8SuspectShare),
        None,
        "new merchant"
    );
    let f = e.process(&rich("c", "4600000000000003", 300, 10.0, "shop", "grocery"));
    // Weight 1/8 per step, divided by 1 - (7/8)^2 = 15/64: the older value weighs 7/15.
    let short = 7.0 / 15.0;
    let long = 63.0 / 127.0; // the same with weight 1/64
    assert!(close(
        val(&f, Feature::MerchantLast8SuspectShare),
        short,
        1e-6
    ));
    assert!(close(
        val(&f, Feature::MerchantLast8ElevatedShare),
        short,
        1e-6
    ));
    assert!(close(
        val(&f, Feature::MerchantLast8ElevatedLift),
        short - long,
        1e-6
    ));
    let shift = (7.0 * z1 + 8.0 * z2) / 15.0 - (63.0 * z1 + 64.0 * z2) / 127.0;
    assert!(close(
        val(&f, Feature::MerchantLast8CategoryZShift),
        shift,
        1e-4
    ));
}
