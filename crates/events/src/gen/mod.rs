//! The deterministic generator of labelled synthetic card traffic.
//!
//! A [`Generator`] builds a world from its seed — merchants in real cities and online,
//! cardholders with names, homes, cards, spending levels, favourite shops, daily and
//! weekly rhythms, and trips — and then streams their transactions in event-time order,
//! merging one stream per cardholder (plus one per running fraud episode) with a binary
//! heap. Memory is proportional to the number of customers, not of events, so a data set
//! of any length, or an endless live stream, can be generated.
//!
//! Same [`GeneratorConfig`] (seed included) → same events, byte for byte.

mod fraud;
mod rng;
mod world;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::{Channel, Label, LabelledTransaction, Transaction};
use fraud::{Anchor, Planned};
use rng::{cumulative, mix64, Rng64};
use world::{
    city, hex_id, new_card, Category, Customer, Followup, Place, World, DAY_MS, MINUTE_MS,
};

/// A fraud scenario. Its [`Scenario::as_str`] name is the `scenario` label of the events
/// it produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// Bursts of tiny card-not-present charges across many merchants.
    CardTesting,
    /// A stolen physical card: a velocity burst of high tickets in new categories.
    StolenCard,
    /// Account takeover: online purchases far above the profile, at a new merchant, at an
    /// hour the cardholder is normally inactive.
    AccountTakeover,
    /// Card-present use far from the card's previous card-present use, too soon to travel.
    ImpossibleTravel,
    /// A tiny charge followed within a minute by a large one.
    SmallThenLarge,
    /// A compromised merchant terminal charging many cards over several days.
    CompromisedMerchant,
}

impl Scenario {
    /// Every scenario, in a fixed order.
    pub const ALL: [Scenario; 6] = [
        Scenario::CardTesting,
        Scenario::StolenCard,
        Scenario::AccountTakeover,
        Scenario::ImpossibleTravel,
        Scenario::SmallThenLarge,
        Scenario::CompromisedMerchant,
    ];

    /// The label name (`card_testing`, `stolen_card`, `account_takeover`,
    /// `impossible_travel`, `small_then_large`, `compromised_merchant`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::CardTesting => "card_testing",
            Scenario::StolenCard => "stolen_card",
            Scenario::AccountTakeover => "account_takeover",
            Scenario::ImpossibleTravel => "impossible_travel",
            Scenario::SmallThenLarge => "small_then_large",
            Scenario::CompromisedMerchant => "compromised_merchant",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scenario {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.as_str() == s.trim())
            .ok_or_else(|| ConfigError::UnknownScenario(s.to_owned()))
    }
}

/// Relative share of fraudulent *transactions* per scenario (normalised; need not sum
/// to 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScenarioMix {
    weights: [f64; 6],
}

impl Default for ScenarioMix {
    /// Card testing 25 %, stolen card 20 %, account takeover 15 %, impossible travel 10 %,
    /// small-then-large 10 %, compromised merchant 20 %.
    fn default() -> Self {
        ScenarioMix {
            weights: [0.25, 0.20, 0.15, 0.10, 0.10, 0.20],
        }
    }
}

impl ScenarioMix {
    /// All weights zero; set some with [`ScenarioMix::with`].
    pub fn none() -> Self {
        ScenarioMix { weights: [0.0; 6] }
    }

    /// This mix with `scenario`'s weight set to `weight`.
    pub fn with(mut self, scenario: Scenario, weight: f64) -> Self {
        self.weights[scenario.index()] = weight;
        self
    }

    /// The weight of `scenario`.
    pub fn weight(&self, scenario: Scenario) -> f64 {
        self.weights[scenario.index()]
    }

    /// The weight of `scenario` over the sum of all weights (0 when all are zero).
    pub fn share(&self, scenario: Scenario) -> f64 {
        let total: f64 = self.weights.iter().sum();
        if total > 0.0 {
            self.weight(scenario) / total
        } else {
            0.0
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for s in Scenario::ALL {
            let w = self.weight(s);
            if !(w.is_finite() && w >= 0.0) {
                return Err(ConfigError::Invalid(format!(
                    "weight of {s} must be finite and >= 0, got {w}"
                )));
            }
        }
        Ok(())
    }
}

impl FromStr for ScenarioMix {
    type Err = ConfigError;

    /// Parse `name=weight,name=weight,…`; scenarios not named get weight 0.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mix = ScenarioMix::none();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').ok_or_else(|| {
                ConfigError::Invalid(format!("mix entry {part:?} is not name=weight"))
            })?;
            let scenario: Scenario = name.parse()?;
            let weight: f64 = weight.trim().parse().map_err(|_| {
                ConfigError::Invalid(format!("weight {weight:?} of {name} is not a number"))
            })?;
            mix = mix.with(scenario, weight);
        }
        mix.validate()?;
        Ok(mix)
    }
}

impl fmt::Display for ScenarioMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in Scenario::ALL.into_iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", s, self.weight(s))?;
        }
        Ok(())
    }
}

/// A configuration the generator refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A scenario name that does not exist.
    #[error("unknown fraud scenario {0:?}; known: card_testing, stolen_card, account_takeover, impossible_travel, small_then_large, compromised_merchant")]
    UnknownScenario(String),
    /// A value out of range.
    #[error("invalid generator configuration: {0}")]
    Invalid(String),
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Seed of every random choice: same config and seed, same output.
    pub seed: u64,
    /// Number of cardholders (each with one card at a time).
    pub customers: u32,
    /// Event time of the start of the clock.
    pub start: DateTime<Utc>,
    /// Length of the data set in days; `None` for an endless (live) stream.
    pub days: Option<u32>,
    /// Fraction of all transactions that are fraudulent, in `[0, 0.5]`.
    pub fraud_rate: f64,
    /// Share of fraudulent transactions per scenario.
    pub mix: ScenarioMix,
    /// Mean legitimate transactions per cardholder per day (spread across cardholders).
    pub mean_daily_transactions: f64,
}

impl Default for GeneratorConfig {
    /// 1,000 customers over 30 days from 2025-01-01T00:00:00Z, 1 % fraud, default mix,
    /// two transactions per customer per day, seed 0.
    fn default() -> Self {
        GeneratorConfig {
            seed: 0,
            customers: 1000,
            start: Utc
                .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or(DateTime::UNIX_EPOCH),
            days: Some(30),
            fraud_rate: 0.01,
            mix: ScenarioMix::default(),
            mean_daily_transactions: 2.0,
        }
    }
}

impl GeneratorConfig {
    /// An endless stream starting at `start` (e.g. the current wall-clock time).
    pub fn live(seed: u64, customers: u32, start: DateTime<Utc>) -> Self {
        GeneratorConfig {
            seed,
            customers,
            start,
            days: None,
            ..GeneratorConfig::default()
        }
    }

    /// Check every value's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.customers == 0 {
            return Err(ConfigError::Invalid("customers must be at least 1".into()));
        }
        if self.customers > 50_000_000 {
            return Err(ConfigError::Invalid(
                "customers must be at most 50,000,000".into(),
            ));
        }
        if self.days == Some(0) {
            return Err(ConfigError::Invalid("days must be at least 1".into()));
        }
        if !(1970..=9000).contains(&self.start.year()) {
            return Err(ConfigError::Invalid(format!(
                "start {} must be between the years 1970 and 9000",
                self.start
            )));
        }
        if !(self.fraud_rate.is_finite() && (0.0..=0.5).contains(&self.fraud_rate)) {
            return Err(ConfigError::Invalid(format!(
                "fraud rate must be within [0, 0.5], got {}",
                self.fraud_rate
            )));
        }
        if !(self.mean_daily_transactions.is_finite()
            && self.mean_daily_transactions > 0.0
            && self.mean_daily_transactions <= 10_000.0)
        {
            return Err(ConfigError::Invalid(format!(
                "mean daily transactions must be within (0, 10000], got {}",
                self.mean_daily_transactions
            )));
        }
        self.mix.validate()?;
        if self.fraud_rate > 0.0 && Scenario::ALL.iter().all(|&s| self.mix.weight(s) == 0.0) {
            return Err(ConfigError::Invalid(
                "fraud rate is positive but every scenario weight is zero".into(),
            ));
        }
        Ok(())
    }
}

/// Counts of what a generator has emitted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GeneratorStats {
    /// Transactions emitted.
    pub events: u64,
    /// Fraudulent transactions emitted.
    pub frauds: u64,
    by_scenario: [u64; 6],
}

impl GeneratorStats {
    /// Fraudulent transactions emitted by `scenario`.
    pub fn frauds_by(&self, scenario: Scenario) -> u64 {
        self.by_scenario[scenario.index()]
    }

    /// Fraudulent fraction of the transactions emitted (0 before any).
    pub fn fraud_rate(&self) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            self.frauds as f64 / self.events as f64
        }
    }
}

/// A heap entry: source `source` is due at `at`; `seq` breaks ties first-in-first-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: i64,
    seq: u64,
    source: u32,
}

/// Sources with this bit set are fraud episodes, the others customers.
const EPISODE: u32 = 1 << 31;

#[derive(Debug)]
struct Episode {
    scenario: Scenario,
    events: Vec<Planned>,
    next: usize,
}

/// The labelled transaction stream: an [`Iterator`] of [`LabelledTransaction`] in
/// event-time order, finite when [`GeneratorConfig::days`] is set, endless otherwise.
#[derive(Debug)]
pub struct Generator {
    config: GeneratorConfig,
    end_ms: Option<i64>,
    world: World,
    customers: Vec<Customer>,
    episodes: Vec<Option<Episode>>,
    free_episodes: Vec<u32>,
    heap: BinaryHeap<Reverse<Due>>,
    rng: Rng64,
    seq: u64,
    tx_key: u64,
    issued: HashSet<String>,
    /// Probability that a legitimate transaction triggers a fraud episode.
    trigger_p: f64,
    /// Cumulative probabilities of each scenario given a trigger.
    trigger_cum: Vec<f64>,
    stats: GeneratorStats,
}

impl Generator {
    /// Build the world and schedule every customer's first transaction.
    pub fn new(config: GeneratorConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let seed = config.seed;
        let mut world_rng = Rng64::new(seed, 1);
        let mut world = World::new(&mut world_rng);
        let mut people_rng = Rng64::new(seed, 2);
        let id_key = mix64(seed ^ 0x5EED_C057_0000_0001);
        let mut issued = HashSet::with_capacity(config.customers as usize);
        let mut customers = Vec::with_capacity(config.customers as usize);
        for i in 0..config.customers {
            let card = unique_card(&mut people_rng, &mut issued);
            customers.push(world.new_customer(
                &mut people_rng,
                i,
                id_key,
                config.mean_daily_transactions,
                card,
            ));
        }
        let start_ms = config.start.timestamp_millis();
        let end_ms = config
            .days
            .map(|d| start_ms.saturating_add(i64::from(d) * DAY_MS));
        let mut rng = Rng64::new(seed, 3);
        let mut heap = BinaryHeap::with_capacity(customers.len() + 64);
        let mut seq = 0;
        for (i, cust) in customers.iter_mut().enumerate() {
            world.plan_trip(&mut rng, cust, start_ms - 2 * DAY_MS);
            cust.next_sample = sample_next(&world, &mut rng, cust, start_ms, end_ms);
            heap.push(Reverse(Due {
                at: cust.due(),
                seq,
                source: i as u32,
            }));
            seq += 1;
        }
        // Legitimate transactions trigger episodes: with n legitimate ones, scenario s
        // yields n * p_s * E_s fraudulent ones. Solve for the configured fraud share f:
        // sum_s p_s E_s = f / (1 - f), split by the mix.
        let odds = config.fraud_rate / (1.0 - config.fraud_rate);
        let per_scenario: Vec<f64> = Scenario::ALL
            .iter()
            .map(|&s| odds * config.mix.share(s) / s.expected_events())
            .collect();
        let trigger_p: f64 = per_scenario.iter().sum();
        debug_assert!(trigger_p <= 1.0);
        Ok(Generator {
            end_ms,
            world,
            customers,
            episodes: Vec::new(),
            free_episodes: Vec::new(),
            heap,
            rng,
            seq,
            tx_key: mix64(seed ^ 0x7A_0000_0000_0002),
            issued,
            trigger_p,
            trigger_cum: cumulative(&per_scenario),
            stats: GeneratorStats::default(),
            config,
        })
    }

    /// The configuration this generator runs.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Event time at which the stream starts.
    pub fn start(&self) -> DateTime<Utc> {
        self.config.start
    }

    /// Event time at which the stream ends (exclusive), `None` when endless.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.end_ms.and_then(DateTime::from_timestamp_millis)
    }

    /// Event time of the next transaction, without generating it (`None` at the end).
    /// A live producer sleeps until then.
    pub fn peek_time(&self) -> Option<DateTime<Utc>> {
        let Reverse(due) = self.heap.peek()?;
        if self.end_ms.is_some_and(|end| due.at >= end) {
            return None;
        }
        DateTime::from_timestamp_millis(due.at)
    }

    /// Counts of what has been emitted so far.
    pub fn stats(&self) -> &GeneratorStats {
        &self.stats
    }

    /// Number of cardholders.
    pub fn customers(&self) -> usize {
        self.customers.len()
    }

    fn push(&mut self, at: i64, source: u32) {
        self.heap.push(Reverse(Due {
            at,
            seq: self.seq,
            source,
        }));
        self.seq += 1;
    }

    fn next_event(&mut self) -> Option<LabelledTransaction> {
        loop {
            let Reverse(due) = self.heap.pop()?;
            if self.end_ms.is_some_and(|end| due.at >= end) {
                // Everything left is due later still.
                self.heap.clear();
                return None;
            }
            let event = if due.source & EPISODE != 0 {
                self.emit_episode(due.at, due.source & !EPISODE)
            } else {
                self.emit_customer(due.at, due.source)
            };
            if event.is_some() {
                return event;
            }
        }
    }

    /// Emit the customer's transaction due at `t` and schedule their next one.
    fn emit_customer(&mut self, t: i64, c: u32) -> Option<LabelledTransaction> {
        let ci = c as usize;
        let cust = self.customers.get_mut(ci)?;
        let (world, rng) = (&self.world, &mut self.rng);
        if t >= cust.reissue_at {
            cust.card = unique_card(rng, &mut self.issued);
            cust.reissue_at = i64::MAX;
        }
        world.roll_trip(rng, cust, t);
        let followup_due = cust
            .followups
            .first()
            .is_some_and(|f| f.at <= cust.next_sample);
        let (merchant, amount) = if followup_due {
            let f = cust.followups.remove(0);
            debug_assert_eq!(f.at, t);
            match f.merchant {
                Some(m) => (m, f.cents),
                None => outing_purchase(world, rng, cust, t),
            }
        } else {
            debug_assert_eq!(cust.next_sample, t);
            let picked = sampled_purchase(world, rng, cust, t);
            cust.next_sample = sample_next(world, rng, cust, t, self.end_ms);
            picked
        };
        let due = cust.due();
        let m = world.merchant(merchant);
        let card_present = m.channel().is_card_present();
        if card_present {
            cust.last_cp = Some((t, m.lat, m.lon));
        }
        self.push(due, c);
        let event = self.materialize(t, c, merchant, amount, None)?;
        self.maybe_trigger(t, c, merchant, card_present);
        Some(event)
    }

    /// Maybe start a fraud episode after a legitimate transaction.
    fn maybe_trigger(&mut self, t: i64, c: u32, merchant: u32, card_present: bool) {
        let anchor = Anchor {
            at: t,
            customer: c,
            merchant,
        };
        if self.rng.f64() < self.trigger_p {
            let k = self.rng.weighted(&self.trigger_cum).unwrap_or(0);
            let scenario = Scenario::ALL
                .get(k)
                .copied()
                .unwrap_or(Scenario::CardTesting);
            if scenario == Scenario::ImpossibleTravel && !card_present {
                // Anchor on the card's next card-present use.
                if let Some(cust) = self.customers.get_mut(c as usize) {
                    cust.pending_travel_fraud += 1;
                }
            } else {
                self.spawn(scenario, anchor);
            }
        } else if card_present {
            let pending = self
                .customers
                .get_mut(c as usize)
                .filter(|cust| cust.pending_travel_fraud > 0)
                .map(|cust| cust.pending_travel_fraud -= 1);
            if pending.is_some() {
                self.spawn(Scenario::ImpossibleTravel, anchor);
            }
        }
    }

    fn spawn(&mut self, scenario: Scenario, anchor: Anchor) {
        let events = fraud::plan(
            scenario,
            &self.world,
            &self.customers,
            &mut self.rng,
            anchor,
        );
        let Some(first) = events.first().map(|e| e.at) else {
            return;
        };
        let episode = Episode {
            scenario,
            events,
            next: 0,
        };
        let slot = match self.free_episodes.pop() {
            Some(slot) => {
                if let Some(s) = self.episodes.get_mut(slot as usize) {
                    *s = Some(episode);
                }
                slot
            }
            None => {
                self.episodes.push(Some(episode));
                (self.episodes.len() - 1) as u32
            }
        };
        debug_assert!(slot < EPISODE);
        self.push(first, EPISODE | slot);
    }

    /// Emit the episode's transaction due at `t` and schedule its next one.
    fn emit_episode(&mut self, t: i64, slot: u32) -> Option<LabelledTransaction> {
        let ep = self.episodes.get_mut(slot as usize)?.as_mut()?;
        let p = *ep.events.get(ep.next)?;
        debug_assert_eq!(p.at, t);
        let scenario = ep.scenario;
        ep.next += 1;
        match ep.events.get(ep.next).map(|e| e.at) {
            Some(next) => self.push(next, EPISODE | slot),
            None => {
                if let Some(s) = self.episodes.get_mut(slot as usize) {
                    *s = None;
                }
                self.free_episodes.push(slot);
                // The issuer replaces a card once its fraud comes to light (the terminal
                // compromise is not traced to its victims that fast).
                if scenario != Scenario::CompromisedMerchant && self.rng.chance(0.8) {
                    let when = t + (self.rng.range(1.0, 4.0) * DAY_MS as f64) as i64;
                    if let Some(cust) = self.customers.get_mut(p.customer as usize) {
                        cust.reissue_at = cust.reissue_at.min(when);
                    }
                }
            }
        }
        self.materialize(t, p.customer, p.merchant, p.cents, Some(scenario))
    }

    /// Build the event. Fraud uses the victim's current card.
    fn materialize(
        &mut self,
        t: i64,
        c: u32,
        merchant: u32,
        amount_cents: u64,
        scenario: Option<Scenario>,
    ) -> Option<LabelledTransaction> {
        let timestamp = DateTime::from_timestamp_millis(t)?;
        let cust = self.customers.get(c as usize)?;
        let m = self.world.merchant(merchant);
        let channel = m.channel();
        let place = m.city.map(city);
        let counter = self.stats.events;
        self.stats.events += 1;
        let label = match scenario {
            Some(s) => {
                self.stats.frauds += 1;
                self.stats.by_scenario[s.index()] += 1;
                Label::fraud(s.as_str())
            }
            None => Label::legit(),
        };
        let located = channel != Channel::Online;
        Some(LabelledTransaction {
            tx: Transaction {
                transaction_id: hex_id("tx_", mix64(counter ^ self.tx_key)),
                timestamp,
                card_number: cust.card.clone(),
                amount: amount_cents as f64 / 100.0,
                customer_id: Some(cust.id.clone()),
                first_name: Some(cust.first.clone()),
                last_name: Some(cust.last.clone()),
                currency: "USD".to_owned(),
                merchant: Some(m.name.clone()),
                merchant_id: Some(m.id.clone()),
                category: Some(m.cat.info().name.to_owned()),
                channel: Some(channel),
                lat: located.then_some(m.lat),
                lon: located.then_some(m.lon),
                home_lat: Some(cust.home_lat),
                home_lon: Some(cust.home_lon),
                city: place.map(|p| p.name.to_owned()),
                country: place.map(|p| p.country.to_owned()),
            },
            label,
        })
    }
}

impl Iterator for Generator {
    type Item = LabelledTransaction;

    fn next(&mut self) -> Option<LabelledTransaction> {
        self.next_event()
    }
}

/// A card number not issued before in this run.
fn unique_card(rng: &mut Rng64, issued: &mut HashSet<String>) -> String {
    loop {
        let card = new_card(rng);
        if issued.insert(card.clone()) {
            return card;
        }
    }
}

/// Next event time of the customer's Poisson stream after `t`, by thinning: candidates
/// at the peak rate, kept with probability activity(local hour, weekday).
fn sample_next(
    world: &World,
    rng: &mut Rng64,
    cust: &mut Customer,
    t: i64,
    end: Option<i64>,
) -> i64 {
    let mean_gap = 1.0 / cust.peak_per_ms;
    let mut x = t;
    loop {
        x = x.saturating_add((rng.exp(mean_gap) as i64).max(1));
        if end.is_some_and(|e| x >= e) || x == i64::MAX {
            return x;
        }
        world.roll_trip(rng, cust, x);
        let tz = cust.tz_at(x);
        if rng.f64() < cust.activity(x, tz) {
            return x;
        }
    }
}

/// A purchase of a shopping outing: card-present where the customer is (online while
/// in transit).
fn outing_purchase(world: &World, rng: &mut Rng64, cust: &Customer, t: i64) -> (u32, u64) {
    match cust.place_at(t) {
        Place::Home => {
            let cat = Category::from_index(rng.weighted(&cust.pos_cum).unwrap_or(0));
            let m = world.random_shop(rng, cust.home_city, cat);
            (m, world.ticket(rng, cust, cat))
        }
        Place::Away(c) => {
            let cat = world.away_category(rng);
            let m = world.random_shop(rng, c, cat);
            (m, world.ticket(rng, cust, cat))
        }
        Place::Transit => {
            let m = world.random_online_any(rng);
            (m, world.ticket(rng, cust, world.merchant(m).cat))
        }
    }
}

/// The customer's next spontaneous purchase, at `t`. May queue follow-ups.
fn sampled_purchase(world: &World, rng: &mut Rng64, cust: &mut Customer, t: i64) -> (u32, u64) {
    let place = cust.place_at(t);
    let r = rng.f64();
    let online = place == Place::Transit || (r >= cust.p_atm && r < cust.p_atm + cust.p_online);
    if online {
        if rng.chance(0.85) {
            let m = rng.pick(&cust.online_fav).copied().unwrap_or(0);
            return (m, world.ticket(rng, cust, world.merchant(m).cat));
        }
        // A new online merchant; some verify the card with a zero or one-unit charge
        // first, then take the real payment a little later.
        let m = world.random_online_any(rng);
        let amount = world.ticket(rng, cust, world.merchant(m).cat);
        if rng.chance(0.12) {
            cust.push_followup(Followup {
                at: t + (rng.range(20.0, 300.0) * 1000.0) as i64,
                merchant: Some(m),
                cents: amount,
            });
            return (m, if rng.chance(0.5) { 0 } else { 100 });
        }
        return (m, amount);
    }
    let here = cust.city_at(t);
    if r < cust.p_atm {
        let m = world.random_shop(rng, here, Category::Cash);
        return (m, world.ticket(rng, cust, Category::Cash));
    }
    let (m, cat) = match place {
        Place::Away(c) => {
            let cat = world.away_category(rng);
            (world.random_shop(rng, c, cat), cat)
        }
        Place::Home | Place::Transit => {
            let k = rng.weighted(&cust.pos_cum).unwrap_or(0);
            let cat = Category::from_index(k);
            let m = if rng.chance(0.88) {
                cust.fav
                    .get(k)
                    .and_then(|f| rng.pick(f).copied())
                    .unwrap_or(0)
            } else {
                world.random_shop(rng, cust.home_city, cat)
            };
            (m, cat)
        }
    };
    let amount = world.ticket(rng, cust, cat);
    if cat == Category::Fuel && rng.chance(0.35) {
        // Pay-at-pump: a one-unit pre-authorisation, the fill-up a few minutes later.
        cust.push_followup(Followup {
            at: t + (rng.range(2.0, 6.0) * MINUTE_MS as f64) as i64,
            merchant: Some(m),
            cents: amount,
        });
        return (m, 100);
    }
    if rng.chance(0.07) {
        // A shopping outing: another purchase somewhere nearby within the next hour or so.
        cust.push_followup(Followup {
            at: t + (rng.range(10.0, 90.0) * MINUTE_MS as f64) as i64,
            merchant: None,
            cents: 0,
        });
    }
    (m, amount)
}

#[cfg(test)]
mod tests;
