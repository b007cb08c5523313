//! Fraud scenarios: each plans an episode, a short time-ordered list of fraudulent
//! transactions, from the moment (and the legitimate event) that triggered it.
//!
//! None of them is marked by a single field: every amount, hour, channel, category and
//! place they use also occurs in legitimate traffic. What gives them away is the
//! combination with the card's (or the merchant's) history, as with real fraud.

use super::rng::Rng64;
use super::world::{cents, city, Category, Customer, World, DAY_MS, HOUR_MS, MINUTE_MS};
use super::Scenario;
use crate::geo::{haversine_km, CITIES};

/// One fraudulent transaction of an episode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planned {
    pub(crate) at: i64,
    pub(crate) customer: u32,
    pub(crate) merchant: u32,
    pub(crate) cents: u64,
}

/// What triggered the episode: the legitimate event just emitted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anchor {
    pub(crate) at: i64,
    pub(crate) customer: u32,
    pub(crate) merchant: u32,
}

impl Scenario {
    /// Expected number of transactions of one episode (mean of the distributions below).
    pub(crate) fn expected_events(self) -> f64 {
        match self {
            // 4..=14
            Scenario::CardTesting => 9.0,
            // 3..=10
            Scenario::StolenCard => 6.5,
            // 1..=3
            Scenario::AccountTakeover => 2.0,
            // 1..=3
            Scenario::ImpossibleTravel => 2.0,
            Scenario::SmallThenLarge => 2.0,
            // 8..=30 victims, each hit once or (one in four) twice
            Scenario::CompromisedMerchant => 19.0 * 1.25,
        }
    }
}

/// Plan one episode of `scenario` (events sorted by time, all at or after `anchor.at`).
pub(crate) fn plan(
    scenario: Scenario,
    world: &World,
    customers: &[Customer],
    rng: &mut Rng64,
    anchor: Anchor,
) -> Vec<Planned> {
    let Some(cust) = customers.get(anchor.customer as usize) else {
        return Vec::new();
    };
    let mut events = match scenario {
        Scenario::CardTesting => card_testing(world, rng, anchor),
        Scenario::StolenCard => stolen_card(world, cust, rng, anchor),
        Scenario::AccountTakeover => account_takeover(world, cust, rng, anchor),
        Scenario::ImpossibleTravel => impossible_travel(world, cust, rng, anchor),
        Scenario::SmallThenLarge => small_then_large(world, rng, anchor),
        Scenario::CompromisedMerchant => compromised_merchant(world, customers, rng, anchor),
    };
    events.sort_by_key(|e| e.at);
    debug_assert!(events.iter().all(|e| e.at >= anchor.at));
    events
}

const TESTING_CATS: [Category; 4] = [
    Category::Digital,
    Category::Marketplace,
    Category::GiftCards,
    Category::Entertainment,
];

/// Card testing: a burst of tiny card-not-present charges across different merchants,
/// seconds to a couple of minutes apart, at any hour, to learn whether the number works.
fn card_testing(world: &World, rng: &mut Rng64, a: Anchor) -> Vec<Planned> {
    let n = rng.int(4, 14);
    let mut t = a.at + (rng.range(1.0, 480.0) * MINUTE_MS as f64) as i64;
    (0..n)
        .map(|_| {
            let cat = rng
                .pick(&TESTING_CATS)
                .copied()
                .unwrap_or(Category::Digital);
            let r = rng.f64();
            let cents = if r < 0.25 {
                100
            } else if r < 0.4 {
                rng.int(1, 99).into()
            } else {
                rng.int(50, 299).into()
            };
            let e = Planned {
                at: t,
                customer: a.customer,
                merchant: world.random_online(rng, cat),
                cents,
            };
            t += (rng.range(4.0, 150.0) * 1000.0) as i64;
            e
        })
        .collect()
}

const SPREE_CATS: [(Category, f64); 6] = [
    (Category::Electronics, 450.0),
    (Category::Jewelry, 650.0),
    (Category::Clothing, 220.0),
    (Category::GiftCards, 250.0),
    (Category::Fuel, 65.0),
    (Category::HomeGarden, 300.0),
];

/// Stolen card: the physical card is used in the city where it was taken, a velocity
/// burst of high tickets at new shops and in categories foreign to the cardholder, with
/// cash withdrawals.
fn stolen_card(world: &World, cust: &Customer, rng: &mut Rng64, a: Anchor) -> Vec<Planned> {
    let n = rng.int(3, 10);
    let mut t = a.at + (rng.range(20.0, 600.0) * MINUTE_MS as f64) as i64;
    let where_ = cust.city_at(t);
    (0..n)
        .map(|_| {
            let (merchant, cents) = if rng.chance(0.2) {
                (
                    world.random_shop(rng, where_, Category::Cash),
                    u64::from(rng.int(10, 25)) * 2000,
                )
            } else {
                let (cat, median) = rng.pick(&SPREE_CATS).copied().unwrap_or(SPREE_CATS[0]);
                (
                    world.random_shop(rng, where_, cat),
                    cents(rng.lognormal(median, 0.5)),
                )
            };
            let e = Planned {
                at: t,
                customer: a.customer,
                merchant,
                cents,
            };
            t += (rng.range(3.0, 45.0) * MINUTE_MS as f64) as i64;
            e
        })
        .collect()
}

const TAKEOVER_CATS: [Category; 5] = [
    Category::Electronics,
    Category::GiftCards,
    Category::Travel,
    Category::Marketplace,
    Category::Jewelry,
];

/// Account takeover: online purchases far above the cardholder's usual tickets, at a
/// merchant they never used, at an hour when they are normally inactive.
fn account_takeover(world: &World, cust: &Customer, rng: &mut Rng64, a: Anchor) -> Vec<Planned> {
    let n = rng.int(1, 3);
    // Hours in which this customer is rarely active.
    let quiet: Vec<usize> = (0..24).filter(|&h| cust.hours[h] < 0.2).collect();
    let hour = rng.pick(&quiet).copied().unwrap_or_else(|| {
        (0..24)
            .min_by(|&x, &y| cust.hours[x].total_cmp(&cust.hours[y]))
            .unwrap_or(4)
    }) as i64;
    let tz = cust.home_tz;
    let base = a.at + 30 * MINUTE_MS;
    let local_hour_start = (base + tz * HOUR_MS).div_euclid(HOUR_MS) * HOUR_MS - tz * HOUR_MS;
    let local_hour = (base + tz * HOUR_MS).div_euclid(HOUR_MS).rem_euclid(24);
    let ahead = (hour - local_hour).rem_euclid(24);
    let mut t = local_hour_start + ahead * HOUR_MS + rng.below(HOUR_MS as usize) as i64;
    t = t.max(base);
    let typical = cust.typical_ticket();
    (0..n)
        .map(|_| {
            let cat = rng
                .pick(&TAKEOVER_CATS)
                .copied()
                .unwrap_or(Category::Electronics);
            let e = Planned {
                at: t,
                customer: a.customer,
                merchant: world.random_online(rng, cat),
                cents: cents((typical * rng.range(6.0, 20.0)).max(120.0)),
            };
            t += (rng.range(2.0, 25.0) * MINUTE_MS as f64) as i64;
            e
        })
        .collect()
}

const CLONE_CATS: [Category; 5] = [
    Category::Electronics,
    Category::Clothing,
    Category::Restaurant,
    Category::Jewelry,
    Category::Cash,
];

/// Impossible travel: a cloned card is used card-present in a distant city shortly after
/// the genuine card was used at home, sooner than any flight could make it.
fn impossible_travel(world: &World, cust: &Customer, rng: &mut Rng64, a: Anchor) -> Vec<Planned> {
    let origin = world.merchant(a.merchant);
    let (lat, lon) = match origin.city {
        Some(_) => (origin.lat, origin.lon),
        None => (cust.home_lat, cust.home_lon),
    };
    let mut best = (0u16, 0.0f64);
    for _ in 0..32 {
        let c = rng.below(CITIES.len()) as u16;
        let d = haversine_km(lat, lon, city(c).lat, city(c).lon);
        if d > best.1 {
            best = (c, d);
        }
        if d >= 1500.0 {
            break;
        }
    }
    let (far, km) = best;
    // Well under the time a flight would take (implied speed above 1,500 km/h).
    let max_gap_h = (km / 1500.0).clamp(0.1, 4.0);
    let mut t = a.at + (rng.range(5.0 / 60.0, max_gap_h) * HOUR_MS as f64) as i64;
    let n = rng.int(1, 3);
    (0..n)
        .map(|_| {
            let cat = rng.pick(&CLONE_CATS).copied().unwrap_or(Category::Clothing);
            let merchant = world.random_shop(rng, far, cat);
            let cents = if cat == Category::Cash {
                u64::from(rng.int(5, 20)) * 2000
            } else {
                cents(rng.lognormal(cat.info().median * 1.8, 0.6))
            };
            let e = Planned {
                at: t,
                customer: a.customer,
                merchant,
                cents,
            };
            t += (rng.range(5.0, 40.0) * MINUTE_MS as f64) as i64;
            e
        })
        .collect()
}

/// Small then large: a tiny card-not-present charge to check the card, followed within a
/// minute by a large one.
fn small_then_large(world: &World, rng: &mut Rng64, a: Anchor) -> Vec<Planned> {
    let t = a.at + (rng.range(5.0, 720.0) * MINUTE_MS as f64) as i64;
    let first_cat = if rng.chance(0.5) {
        Category::Digital
    } else {
        Category::Marketplace
    };
    let first = world.random_online(rng, first_cat);
    let second = if rng.chance(0.5) {
        first
    } else {
        let cat = rng
            .pick(&[
                Category::Electronics,
                Category::Jewelry,
                Category::Marketplace,
            ])
            .copied()
            .unwrap_or(Category::Electronics);
        world.random_online(rng, cat)
    };
    vec![
        Planned {
            at: t,
            customer: a.customer,
            merchant: first,
            cents: rng.int(50, 250).into(),
        },
        Planned {
            at: t + (rng.range(5.0, 60.0) * 1000.0) as i64,
            customer: a.customer,
            merchant: second,
            cents: cents(rng.lognormal(550.0, 0.6).max(150.0)),
        },
    ]
}

const TERMINAL_CATS: [Category; 5] = [
    Category::Restaurant,
    Category::Fuel,
    Category::Grocery,
    Category::Coffee,
    Category::Clothing,
];

/// Compromised merchant / terminal: over several days, one merchant's terminal charges
/// many local cards (skimmed there earlier) with tickets above what the shop usually
/// takes, within its business hours.
fn compromised_merchant(
    world: &World,
    customers: &[Customer],
    rng: &mut Rng64,
    a: Anchor,
) -> Vec<Planned> {
    let trigger = world.merchant(a.merchant);
    let merchant = match (trigger.city, trigger.cat) {
        (Some(c), cat) if TERMINAL_CATS.contains(&cat) && world.neighbours(c, 5).is_some() => {
            a.merchant
        }
        _ => {
            let home = customers
                .get(a.customer as usize)
                .map_or(0, |c| c.home_city);
            let cat = rng
                .pick(&TERMINAL_CATS)
                .copied()
                .unwrap_or(Category::Grocery);
            world.random_shop(rng, home, cat)
        }
    };
    let m = world.merchant(merchant);
    let city_idx = m.city.unwrap_or(0);
    // Cards skimmed at this shop belong to people living around it.
    let pool = world.neighbours(city_idx, 5);
    let tz = super::world::city_tz(city_idx);
    let start = a.at + (rng.range(1.0, 24.0) * HOUR_MS as f64) as i64;
    let span = (rng.range(2.0, 6.0) * DAY_MS as f64) as i64;
    let median = (m.cat.info().median * 2.5).max(60.0);
    let victims = rng.int(8, 30);
    let mut events = Vec::with_capacity(victims as usize * 2);
    for _ in 0..victims {
        let victim = match pool {
            Some(p) => rng.pick(p).copied().unwrap_or(a.customer),
            None => rng.below(customers.len().max(1)) as u32,
        };
        let hits = if rng.chance(0.25) { 2 } else { 1 };
        for _ in 0..hits {
            let mut at = start + rng.below(span as usize) as i64;
            for _ in 0..8 {
                let hour = (at + tz * HOUR_MS).div_euclid(HOUR_MS).rem_euclid(24);
                if (8..21).contains(&hour) {
                    break;
                }
                at = start + rng.below(span as usize) as i64;
            }
            events.push(Planned {
                at,
                customer: victim,
                merchant,
                cents: cents(rng.lognormal(median, 0.5)),
            });
        }
    }
    events
}
