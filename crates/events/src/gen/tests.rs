//! Generator properties: determinism, validity, order, rates, realism.

use std::collections::HashMap;

use super::*;
use crate::geo::haversine_km;
use crate::{encode_labelled_into, luhn_valid, CardNetwork};

fn config(seed: u64, customers: u32, days: u32) -> GeneratorConfig {
    GeneratorConfig {
        seed,
        customers,
        days: Some(days),
        ..GeneratorConfig::default()
    }
}

fn generate(cfg: GeneratorConfig) -> Vec<LabelledTransaction> {
    match Generator::new(cfg) {
        Ok(g) => g.collect(),
        Err(e) => panic!("config rejected: {e}"),
    }
}

fn bytes(cfg: GeneratorConfig) -> Vec<u8> {
    let mut out = Vec::new();
    for e in generate(cfg) {
        encode_labelled_into(&e, &mut out);
        out.push(b'\n');
    }
    out
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let a = bytes(config(11, 150, 10));
    let b = bytes(config(11, 150, 10));
    let c = bytes(config(12, 150, 10));
    assert!(a.len() > 10_000);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn events_are_valid_time_ordered_and_unique() {
    let events = generate(config(3, 300, 20));
    assert!(events.len() > 5_000, "{}", events.len());
    let start = GeneratorConfig::default().start;
    let end = start + chrono::Duration::days(20);
    let mut ids = std::collections::HashSet::new();
    for pair in events.windows(2) {
        assert!(pair[0].tx.timestamp <= pair[1].tx.timestamp);
    }
    for e in &events {
        if let Err(err) = e.tx.validate() {
            panic!("invalid generated event {e:?}: {err}");
        }
        assert!(e.tx.timestamp >= start && e.tx.timestamp < end);
        assert!(ids.insert(e.tx.transaction_id.clone()), "duplicate id");
        assert_eq!(e.label.is_fraud, e.label.scenario.is_some());
        let online = e.tx.channel == Some(Channel::Online);
        assert_eq!(
            online,
            e.tx.lat.is_none(),
            "online events and only they lack a location"
        );
        assert!(e.tx.home_lat.is_some() && e.tx.customer_id.is_some());
    }
}

#[test]
fn every_card_is_luhn_valid_on_a_real_network() {
    let events = generate(config(5, 400, 30));
    let mut cards = std::collections::HashSet::new();
    for e in &events {
        cards.insert(e.tx.card_number.clone());
    }
    // Some cards were reissued after fraud.
    assert!(cards.len() > 400, "{}", cards.len());
    for card in &cards {
        assert!(luhn_valid(card), "{card}");
        assert!(CardNetwork::of(card).is_some(), "{card}");
    }
}

#[test]
fn fraud_rate_and_scenario_mix_follow_the_config() {
    let cfg = GeneratorConfig {
        fraud_rate: 0.05,
        ..config(21, 1500, 25)
    };
    let mut generator = Generator::new(cfg.clone()).unwrap_or_else(|e| panic!("{e}"));
    let mut count = [0u64; 6];
    let (mut total, mut fraud) = (0u64, 0u64);
    for e in generator.by_ref() {
        total += 1;
        if let Some(s) = e.label.scenario.as_deref() {
            fraud += 1;
            let k = Scenario::ALL.iter().position(|x| x.as_str() == s);
            count[k.unwrap_or_else(|| panic!("unknown scenario {s}"))] += 1;
        }
    }
    let stats = generator.stats();
    assert_eq!(stats.events, total);
    assert_eq!(stats.frauds, fraud);
    let rate = fraud as f64 / total as f64;
    assert!((rate - 0.05).abs() < 0.01, "fraud rate {rate}");
    for s in Scenario::ALL {
        let share = count[s.index()] as f64 / fraud as f64;
        let want = cfg.mix.share(s);
        assert_eq!(stats.frauds_by(s), count[s.index()]);
        assert!(
            (share - want).abs() < 0.3 * want + 0.01,
            "{s}: share {share:.3}, configured {want:.3}"
        );
    }
}

#[test]
fn zero_fraud_rate_and_single_scenario_mix() {
    let none = generate(GeneratorConfig {
        fraud_rate: 0.0,
        ..config(8, 200, 10)
    });
    assert!(none.iter().all(|e| !e.label.is_fraud));
    let only = generate(GeneratorConfig {
        fraud_rate: 0.05,
        mix: ScenarioMix::none().with(Scenario::SmallThenLarge, 1.0),
        ..config(8, 200, 10)
    });
    let frauds: Vec<_> = only.iter().filter(|e| e.label.is_fraud).collect();
    assert!(!frauds.is_empty());
    assert!(frauds
        .iter()
        .all(|e| e.label.scenario.as_deref() == Some("small_then_large")));
}

/// Per customer, legitimate events only, in order.
fn legit_by_customer(events: &[LabelledTransaction]) -> HashMap<&str, Vec<&Transaction>> {
    let mut map: HashMap<&str, Vec<&Transaction>> = HashMap::new();
    for e in events.iter().filter(|e| !e.label.is_fraud) {
        map.entry(e.tx.customer_id.as_deref().unwrap_or(""))
            .or_default()
            .push(&e.tx);
    }
    map
}

fn speed_kmh(a: &Transaction, b: &Transaction) -> Option<(f64, f64)> {
    let (la, lo) = a.location()?;
    let (lb, lob) = b.location()?;
    let km = haversine_km(la, lo, lb, lob);
    let hours = (b.timestamp - a.timestamp).num_milliseconds() as f64 / 3.6e6;
    Some((km, km / hours.max(1e-9)))
}

#[test]
fn legitimate_travel_is_plausible_and_frequent() {
    let events = generate(config(9, 600, 60));
    let mut away = 0usize;
    let mut card_present = 0usize;
    for txs in legit_by_customer(&events).values() {
        let located: Vec<&&Transaction> = txs.iter().filter(|t| t.lat.is_some()).collect();
        for pair in located.windows(2) {
            if let Some((km, speed)) = speed_kmh(pair[0], pair[1]) {
                assert!(
                    km < 50.0 || speed < 900.0,
                    "legit card-present travel of {km:.0} km at {speed:.0} km/h: {:?} -> {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
        for t in &located {
            card_present += 1;
            let (Some((la, lo)), Some((hla, hlo))) = (t.location(), t.home()) else {
                continue;
            };
            if haversine_km(la, lo, hla, hlo) > 300.0 {
                away += 1;
            }
        }
    }
    let share = away as f64 / card_present as f64;
    assert!(
        share > 0.03,
        "only {share:.3} of legit card-present use is away from home"
    );
}

#[test]
fn scenarios_have_their_signatures() {
    let cfg = GeneratorConfig {
        fraud_rate: 0.05,
        ..config(31, 800, 20)
    };
    let events = generate(cfg);
    // The card's previous card-present use, legitimate or not.
    let mut last_cp: HashMap<&str, &Transaction> = HashMap::new();
    let mut checked = [0usize; 6];
    let mut prev_by_card: HashMap<&str, &Transaction> = HashMap::new();
    for e in &events {
        let card = e.tx.card_number.as_str();
        match e.label.scenario.as_deref() {
            Some("card_testing") => {
                assert_eq!(e.tx.channel, Some(Channel::Online));
                assert!(e.tx.amount < 3.0, "{}", e.tx.amount);
                checked[0] += 1;
            }
            Some("impossible_travel") => {
                if let Some(prev) = last_cp.get(card) {
                    if let Some((km, speed)) = speed_kmh(prev, &e.tx) {
                        if km > 1000.0 {
                            assert!(speed > 1000.0, "{km:.0} km at {speed:.0} km/h");
                            checked[3] += 1;
                        }
                    }
                }
            }
            Some("small_then_large") if e.tx.amount >= 100.0 => {
                let prev = prev_by_card.get(card).copied();
                let gap = prev.map(|p| (e.tx.timestamp - p.timestamp).num_seconds());
                assert!(gap.is_some_and(|g| g <= 60), "gap {gap:?}");
                checked[4] += 1;
            }
            _ => {}
        }
        if e.tx.lat.is_some() {
            last_cp.insert(card, &e.tx);
        }
        prev_by_card.insert(card, &e.tx);
    }
    assert!(
        checked[0] > 0 && checked[3] > 0 && checked[4] > 0,
        "{checked:?}"
    );
}

/// Best F1 of any single threshold `x >= t` or `x <= t` on one numeric feature.
fn best_threshold_f1(mut points: Vec<(f64, bool)>) -> f64 {
    let positives = points.iter().filter(|p| p.1).count() as f64;
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut best: f64 = 0.0;
    for direction in [false, true] {
        if direction {
            points.reverse();
        }
        let (mut tp, mut n) = (0.0, 0.0);
        let mut i = 0;
        while i < points.len() {
            // Take all points with the same value together.
            let v = points[i].0;
            while i < points.len() && points[i].0 == v {
                n += 1.0;
                if points[i].1 {
                    tp += 1.0;
                }
                i += 1;
            }
            if tp > 0.0 {
                let precision = tp / n;
                let recall = tp / positives;
                best = best.max(2.0 * precision * recall / (precision + recall));
            }
        }
    }
    best
}

/// Best F1 of predicting fraud from membership in any one category value.
fn best_value_f1(points: &[(String, bool)]) -> f64 {
    let positives = points.iter().filter(|p| p.1).count() as f64;
    let mut by: HashMap<&str, (f64, f64)> = HashMap::new();
    for (v, fraud) in points {
        let e = by.entry(v.as_str()).or_default();
        e.0 += 1.0;
        if *fraud {
            e.1 += 1.0;
        }
    }
    by.values()
        .filter(|(_, tp)| *tp > 0.0)
        .map(|&(n, tp)| {
            let (p, r) = (tp / n, tp / positives);
            2.0 * p * r / (p + r)
        })
        .fold(0.0, f64::max)
}

#[test]
fn fraud_is_not_separable_by_any_single_field() {
    let events = generate(config(77, 1500, 30));
    let frauds = events.iter().filter(|e| e.label.is_fraud).count();
    assert!(frauds > 300, "{frauds}");
    let amount = best_threshold_f1(
        events
            .iter()
            .map(|e| (e.tx.amount, e.label.is_fraud))
            .collect(),
    );
    let hour_of = |e: &LabelledTransaction, local: bool| {
        use chrono::Timelike;
        let tz = if local {
            crate::geo::solar_utc_offset_hours(e.tx.home_lon.unwrap_or(0.0))
        } else {
            0
        };
        (i64::from(e.tx.timestamp.hour()) + tz).rem_euclid(24)
    };
    // Any window of hours [from, from + len) (wrapping), UTC and the cardholder's local.
    let mut hour = 0.0f64;
    for local in [false, true] {
        let mut per_hour = [(0.0f64, 0.0f64); 24];
        for e in &events {
            let h = hour_of(e, local) as usize;
            per_hour[h].0 += 1.0;
            if e.label.is_fraud {
                per_hour[h].1 += 1.0;
            }
        }
        for from in 0..24 {
            for len in 1..24 {
                let (mut n, mut tp) = (0.0, 0.0);
                for k in 0..len {
                    let (hn, htp) = per_hour[(from + k) % 24];
                    n += hn;
                    tp += htp;
                }
                if tp > 0.0 {
                    let (p, r) = (tp / n, tp / frauds as f64);
                    hour = hour.max(2.0 * p * r / (p + r));
                }
            }
        }
    }
    let channel = best_value_f1(
        &events
            .iter()
            .map(|e| (format!("{:?}", e.tx.channel), e.label.is_fraud))
            .collect::<Vec<_>>(),
    );
    let category = best_value_f1(
        &events
            .iter()
            .map(|e| (e.tx.category.clone().unwrap_or_default(), e.label.is_fraud))
            .collect::<Vec<_>>(),
    );
    let distance = best_threshold_f1(
        events
            .iter()
            .filter_map(|e| {
                let (la, lo) = e.tx.location()?;
                let (hla, hlo) = e.tx.home()?;
                Some((haversine_km(la, lo, hla, hlo), e.label.is_fraud))
            })
            .collect(),
    );
    let report = format!(
        "best F1: amount {amount:.3}, hour {hour:.3}, channel {channel:.3}, \
         category {category:.3}, distance from home {distance:.3}"
    );
    println!("{report}");
    for f1 in [amount, hour, channel, category, distance] {
        assert!(f1 < 0.3, "a single field separates fraud: {report}");
    }
}

#[test]
fn live_stream_starts_at_the_given_instant_and_does_not_end() {
    let start = Utc
        .with_ymd_and_hms(2031, 5, 6, 7, 8, 9)
        .single()
        .unwrap_or_default();
    let mut g =
        Generator::new(GeneratorConfig::live(4, 50, start)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.end(), None);
    let mut last = start;
    for _ in 0..20_000 {
        let peek = g.peek_time();
        let e = g.next().unwrap_or_else(|| panic!("live stream ended"));
        assert_eq!(peek, Some(e.tx.timestamp));
        assert!(e.tx.timestamp >= last);
        last = e.tx.timestamp;
    }
    // 50 customers at ~2 a day: 20,000 events cover months.
    assert!(last - start > chrono::Duration::days(60), "{last}");
}

#[test]
fn finite_stream_ends_and_peek_agrees() {
    let mut g = Generator::new(config(1, 20, 2)).unwrap_or_else(|e| panic!("{e}"));
    let end = g.end().unwrap_or_default();
    while let Some(t) = g.peek_time() {
        let e = g.next().unwrap_or_else(|| panic!("peek promised an event"));
        assert_eq!(e.tx.timestamp, t);
        assert!(t < end);
    }
    assert!(g.next().is_none());
    assert!(g.stats().events > 0);
}

#[test]
fn invalid_configs_are_rejected() {
    let bad = [
        GeneratorConfig {
            customers: 0,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            days: Some(0),
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            fraud_rate: 0.9,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            fraud_rate: f64::NAN,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            mean_daily_transactions: 0.0,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            mix: ScenarioMix::none(),
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            mix: ScenarioMix::default().with(Scenario::StolenCard, -1.0),
            ..GeneratorConfig::default()
        },
    ];
    for cfg in bad {
        assert!(Generator::new(cfg.clone()).is_err(), "{cfg:?} accepted");
    }
}

#[test]
fn scenario_mix_parses_and_prints() {
    let mix: ScenarioMix = "card_testing=2, impossible_travel=1"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mix.weight(Scenario::CardTesting), 2.0);
    assert_eq!(mix.weight(Scenario::StolenCard), 0.0);
    assert!((mix.share(Scenario::ImpossibleTravel) - 1.0 / 3.0).abs() < 1e-12);
    let again: ScenarioMix = mix.to_string().parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, mix);
    assert!("card_testing".parse::<ScenarioMix>().is_err());
    assert!("nope=1".parse::<ScenarioMix>().is_err());
    assert!("card_testing=x".parse::<ScenarioMix>().is_err());
    assert!("card_testing=-1".parse::<ScenarioMix>().is_err());
    for s in Scenario::ALL {
        assert_eq!(s.as_str().parse::<Scenario>(), Ok(s));
    }
}

#[test]
fn generator_is_send() {
    fn is_send<T: Send>() {}
    is_send::<Generator>();
}
