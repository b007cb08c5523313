//! The simulated world: merchant categories, merchants in real cities and online,
//! cardholders with their habits, and their trips.

use fake::faker::name::en::{FirstName, LastName};
use fake::Fake;

use super::rng::{cumulative, mix64, Rng64};
use crate::geo::{haversine_km, solar_utc_offset_hours, City, CITIES};
use crate::luhn::CardNetwork;

pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const MINUTE_MS: i64 = 60_000;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

/// Merchant categories. `Cash` is ATM withdrawals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Category {
    Grocery,
    Restaurant,
    Coffee,
    Fuel,
    Pharmacy,
    Clothing,
    Electronics,
    HomeGarden,
    Entertainment,
    Lodging,
    Jewelry,
    GiftCards,
    Cash,
    Travel,
    Digital,
    Marketplace,
}

pub(crate) const N_CATS: usize = 16;

/// Static facts about a category.
pub(crate) struct CatInfo {
    pub(crate) cat: Category,
    /// Wire name (the event's `category`).
    pub(crate) name: &'static str,
    /// Median ticket for a customer of spending level 1, USD.
    pub(crate) median: f64,
    /// Log-scale spread of tickets.
    pub(crate) sigma: f64,
    /// Merchants per city of population one million (0: no physical shops).
    pub(crate) per_city: f64,
    /// Online merchants in the world (0: not sold online).
    pub(crate) online: usize,
    /// Popularity among card-present purchases at home.
    pub(crate) pos_weight: f64,
    /// Popularity among card-present purchases while travelling.
    pub(crate) away_weight: f64,
    /// Popularity among online purchases.
    pub(crate) online_weight: f64,
    /// Whether a rare legitimate big-ticket purchase happens here.
    pub(crate) big_ticket: bool,
    /// Merchant name suffixes.
    pub(crate) suffixes: &'static [&'static str],
}

#[rustfmt::skip]
pub(crate) const CATS: [CatInfo; N_CATS] = [
    CatInfo { cat: Category::Grocery, name: "grocery", median: 42.0, sigma: 0.65, per_city: 6.0, online: 12, pos_weight: 25.0, away_weight: 8.0, online_weight: 6.0, big_ticket: false, suffixes: &["Market", "Foods", "Grocers", "Fresh Market", "Supermarket"] },
    CatInfo { cat: Category::Restaurant, name: "restaurant", median: 31.0, sigma: 0.55, per_city: 10.0, online: 10, pos_weight: 19.0, away_weight: 30.0, online_weight: 5.0, big_ticket: false, suffixes: &["Kitchen", "Bistro", "Grill", "Diner", "Trattoria", "Noodle House", "Taqueria"] },
    CatInfo { cat: Category::Coffee, name: "coffee", median: 5.6, sigma: 0.4, per_city: 6.0, online: 0, pos_weight: 15.0, away_weight: 14.0, online_weight: 0.0, big_ticket: false, suffixes: &["Coffee", "Espresso Bar", "Roasters", "Cafe", "Bakery"] },
    CatInfo { cat: Category::Fuel, name: "fuel", median: 46.0, sigma: 0.35, per_city: 4.0, online: 0, pos_weight: 10.0, away_weight: 5.0, online_weight: 0.0, big_ticket: false, suffixes: &["Fuel", "Gas", "Petroleum", "Service Station"] },
    CatInfo { cat: Category::Pharmacy, name: "pharmacy", median: 21.0, sigma: 0.6, per_city: 3.0, online: 6, pos_weight: 6.0, away_weight: 4.0, online_weight: 3.0, big_ticket: false, suffixes: &["Pharmacy", "Drugstore", "Chemist"] },
    CatInfo { cat: Category::Clothing, name: "clothing", median: 62.0, sigma: 0.7, per_city: 5.0, online: 25, pos_weight: 6.0, away_weight: 8.0, online_weight: 12.0, big_ticket: true, suffixes: &["Apparel", "Outfitters", "Boutique", "Clothing Co", "Shoes"] },
    CatInfo { cat: Category::Electronics, name: "electronics", median: 150.0, sigma: 0.9, per_city: 3.0, online: 20, pos_weight: 2.0, away_weight: 2.0, online_weight: 7.0, big_ticket: true, suffixes: &["Electronics", "Digital", "Tech Store", "Computers", "Mobile"] },
    CatInfo { cat: Category::HomeGarden, name: "home_garden", median: 70.0, sigma: 0.8, per_city: 3.0, online: 15, pos_weight: 4.0, away_weight: 0.5, online_weight: 6.0, big_ticket: true, suffixes: &["Home & Garden", "Hardware", "Furniture", "Interiors"] },
    CatInfo { cat: Category::Entertainment, name: "entertainment", median: 27.0, sigma: 0.6, per_city: 4.0, online: 15, pos_weight: 5.0, away_weight: 10.0, online_weight: 7.0, big_ticket: false, suffixes: &["Cinema", "Theater", "Bowling", "Arcade", "Tickets"] },
    CatInfo { cat: Category::Lodging, name: "lodging", median: 150.0, sigma: 0.45, per_city: 5.0, online: 0, pos_weight: 0.0, away_weight: 4.0, online_weight: 0.0, big_ticket: true, suffixes: &["Hotel", "Inn", "Suites", "Lodge"] },
    CatInfo { cat: Category::Jewelry, name: "jewelry", median: 180.0, sigma: 0.9, per_city: 2.0, online: 8, pos_weight: 0.5, away_weight: 1.0, online_weight: 0.8, big_ticket: true, suffixes: &["Jewelers", "Fine Jewelry", "Watches"] },
    CatInfo { cat: Category::GiftCards, name: "gift_cards", median: 50.0, sigma: 0.6, per_city: 2.0, online: 8, pos_weight: 0.8, away_weight: 1.0, online_weight: 2.0, big_ticket: false, suffixes: &["Gift Cards", "Gift Shop"] },
    CatInfo { cat: Category::Cash, name: "cash_withdrawal", median: 80.0, sigma: 0.6, per_city: 4.0, online: 0, pos_weight: 0.0, away_weight: 0.0, online_weight: 0.0, big_ticket: false, suffixes: &["ATM"] },
    CatInfo { cat: Category::Travel, name: "travel", median: 260.0, sigma: 0.8, per_city: 0.0, online: 20, pos_weight: 0.0, away_weight: 0.0, online_weight: 3.5, big_ticket: true, suffixes: &["Air", "Airlines", "Travel", "Hotels", "Rail"] },
    CatInfo { cat: Category::Digital, name: "digital_goods", median: 9.99, sigma: 0.6, per_city: 0.0, online: 40, pos_weight: 0.0, away_weight: 0.0, online_weight: 24.0, big_ticket: false, suffixes: &["Streaming", "Games", "Apps", "Music", "Cloud"] },
    CatInfo { cat: Category::Marketplace, name: "marketplace", median: 36.0, sigma: 0.9, per_city: 0.0, online: 30, pos_weight: 0.0, away_weight: 0.0, online_weight: 28.0, big_ticket: true, suffixes: &["Market", "Shop", "Outlet", "Deals", "Bazaar"] },
];

impl Category {
    pub(crate) fn info(self) -> &'static CatInfo {
        &CATS[self as usize]
    }

    pub(crate) fn from_index(i: usize) -> Category {
        CATS.get(i).map_or(Category::Grocery, |c| c.cat)
    }
}

/// App-store and subscription price points.
const DIGITAL_PRICES: [u64; 10] = [99, 199, 299, 499, 699, 999, 1199, 1499, 1999, 2999];
const BANKS: [&str; 8] = [
    "Citizens Savings",
    "Metro Federal",
    "Union Credit",
    "Harbor Bank",
    "Summit Federal",
    "Pioneer Trust",
    "Liberty Savings",
    "Heritage Bank",
];

/// A merchant (or ATM). Online merchants have no city.
#[derive(Debug, Clone)]
pub(crate) struct Merchant {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) cat: Category,
    pub(crate) city: Option<u16>,
    pub(crate) lat: f64,
    pub(crate) lon: f64,
}

impl Merchant {
    pub(crate) fn channel(&self) -> crate::Channel {
        if self.city.is_none() {
            crate::Channel::Online
        } else if self.cat == Category::Cash {
            crate::Channel::Atm
        } else {
            crate::Channel::Pos
        }
    }
}

/// Where a cardholder is at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Home,
    Away(u16),
    /// Flying or driving: only card-not-present use is possible.
    Transit,
}

/// A trip: leave home at `depart`, arrive at `city` at `arrive`, leave it at `leave`,
/// be back home at `back`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trip {
    pub(crate) city: u16,
    pub(crate) depart: i64,
    pub(crate) arrive: i64,
    pub(crate) leave: i64,
    pub(crate) back: i64,
}

impl Trip {
    fn place_at(&self, t: i64) -> Option<Place> {
        if t < self.depart || t >= self.back {
            None
        } else if t < self.arrive || t >= self.leave {
            Some(Place::Transit)
        } else {
            Some(Place::Away(self.city))
        }
    }
}

/// A legitimate purchase already decided, due later (fuel completion after a pre-auth,
/// purchase after a card verification, hotel bill at check-out), or a follow-on purchase
/// of a shopping outing (`merchant == None`, decided when due).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Followup {
    pub(crate) at: i64,
    pub(crate) merchant: Option<u32>,
    pub(crate) cents: u64,
}

/// A cardholder: identity, habits, and the state of their event stream.
#[derive(Debug, Clone)]
pub(crate) struct Customer {
    pub(crate) id: String,
    pub(crate) first: String,
    pub(crate) last: String,
    pub(crate) card: String,
    pub(crate) home_city: u16,
    pub(crate) home_lat: f64,
    pub(crate) home_lon: f64,
    pub(crate) home_tz: i64,
    /// Spending level: multiplies tickets (median 1).
    pub(crate) spend: f64,
    /// Poisson intensity at the busiest hour of the week, events per millisecond.
    pub(crate) peak_per_ms: f64,
    /// Relative activity per local hour of day (max 1).
    pub(crate) hours: [f32; 24],
    /// Relative activity per local day of week, Monday first (max 1).
    pub(crate) days: [f32; 7],
    pub(crate) p_online: f64,
    pub(crate) p_atm: f64,
    /// Cumulative weights of card-present categories at home.
    pub(crate) pos_cum: [f64; N_CATS],
    /// Favourite shops per category in the home city (merchant indices).
    pub(crate) fav: [[u32; 3]; N_CATS],
    /// Favourite online merchants.
    pub(crate) online_fav: [u32; 5],
    /// Mean time between trips, ms (0: never travels).
    pub(crate) travel_mean_ms: f64,
    // Stream state.
    pub(crate) next_sample: i64,
    pub(crate) followups: Vec<Followup>,
    pub(crate) trip: Option<Trip>,
    pub(crate) prev_trip: Option<Trip>,
    /// Last legitimate card-present use: time, lat, lon.
    pub(crate) last_cp: Option<(i64, f64, f64)>,
    /// Impossible-travel episodes waiting for the next card-present use to anchor on.
    pub(crate) pending_travel_fraud: u32,
    /// When the card is replaced after a fraud (`i64::MAX`: not scheduled).
    pub(crate) reissue_at: i64,
}

impl Customer {
    /// Where the cardholder is at `t` (call [`World::roll_trip`] up to `t` first).
    pub(crate) fn place_at(&self, t: i64) -> Place {
        self.trip
            .and_then(|trip| trip.place_at(t))
            .or_else(|| self.prev_trip.and_then(|trip| trip.place_at(t)))
            .unwrap_or(Place::Home)
    }

    /// The city the cardholder is in at `t` (home while in transit).
    pub(crate) fn city_at(&self, t: i64) -> u16 {
        match self.place_at(t) {
            Place::Away(c) => c,
            Place::Home | Place::Transit => self.home_city,
        }
    }

    /// UTC offset (hours) of wherever the cardholder is at `t`.
    pub(crate) fn tz_at(&self, t: i64) -> i64 {
        match self.place_at(t) {
            Place::Away(c) => city_tz(c),
            Place::Home | Place::Transit => self.home_tz,
        }
    }

    /// Relative activity (0..=1) at `t` given local offset `tz`.
    #[inline]
    pub(crate) fn activity(&self, t: i64, tz: i64) -> f64 {
        let local = t + tz * HOUR_MS;
        let hour = local.div_euclid(HOUR_MS).rem_euclid(24) as usize;
        // 1970-01-01 was a Thursday: day 0 is index 3 when Monday is 0.
        let dow = (local.div_euclid(DAY_MS) + 3).rem_euclid(7) as usize;
        f64::from(self.hours[hour % 24]) * f64::from(self.days[dow % 7])
    }

    /// When the next event of this customer's stream is due.
    pub(crate) fn due(&self) -> i64 {
        self.followups
            .first()
            .map_or(self.next_sample, |f| f.at.min(self.next_sample))
    }

    /// Queue a follow-up, keeping the queue sorted by time.
    pub(crate) fn push_followup(&mut self, f: Followup) {
        let at = self.followups.partition_point(|g| g.at <= f.at);
        self.followups.insert(at, f);
    }

    /// The customer's typical ticket, USD.
    pub(crate) fn typical_ticket(&self) -> f64 {
        40.0 * self.spend
    }
}

pub(crate) fn city(c: u16) -> &'static City {
    CITIES.get(usize::from(c)).unwrap_or(&CITIES[0])
}

pub(crate) fn city_tz(c: u16) -> i64 {
    solar_utc_offset_hours(city(c).lon)
}

/// Merchants, cities and the indexes the generator draws from.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) merchants: Vec<Merchant>,
    /// `[city * N_CATS + cat]` → range of `merchants` (physical shops of that city).
    city_ranges: Vec<(u32, u32)>,
    /// `[cat]` → range of `merchants` (online merchants).
    online_ranges: [(u32, u32); N_CATS],
    /// Cumulative weights of online categories.
    online_cum: [f64; N_CATS],
    /// Cumulative weights of card-present categories while travelling.
    away_cum: [f64; N_CATS],
    /// Cumulative home-city weights (population, issuer's country favoured).
    home_cum: Vec<f64>,
    /// Cumulative trip-destination weights (population).
    dest_cum: Vec<f64>,
    /// Per country (by first city index), the cities of that country and their weights.
    country_cities: Vec<(Vec<u16>, Vec<f64>)>,
    /// For each city, the index into `country_cities`.
    country_of: Vec<usize>,
    pub(crate) customers_by_city: Vec<Vec<u32>>,
    /// Customers by home country (index as `country_cities`).
    customers_by_country: Vec<Vec<u32>>,
}

/// Round to 6 decimals (about 0.1 m), so coordinates print short and round-trip exactly.
pub(crate) fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// A point uniformly spread within `radius_km` of (`lat`, `lon`).
fn scatter(rng: &mut Rng64, lat: f64, lon: f64, radius_km: f64) -> (f64, f64) {
    let r = radius_km * rng.f64().sqrt();
    let a = rng.range(0.0, std::f64::consts::TAU);
    let dlat = r * a.cos() / 111.2;
    let dlon = r * a.sin() / (111.2 * lat.to_radians().cos().max(0.05));
    (
        round6((lat + dlat).clamp(-90.0, 90.0)),
        round6((lon + dlon).clamp(-180.0, 180.0)),
    )
}

fn merchant_name(rng: &mut Rng64, info: &CatInfo, online: bool) -> String {
    if info.cat == Category::Cash {
        let bank = rng.pick(&BANKS).copied().unwrap_or("Bank");
        return format!("{bank} ATM");
    }
    let last: String = LastName().fake_with_rng(rng);
    let suffix = rng.pick(info.suffixes).copied().unwrap_or("Store");
    if online {
        if matches!(
            info.cat,
            Category::Digital | Category::Marketplace | Category::Travel
        ) {
            format!("{last} {suffix}")
        } else {
            format!("{last} {suffix} Online")
        }
    } else {
        format!("{last} {suffix}")
    }
}

impl World {
    /// Build the merchants of every city and the online ones.
    pub(crate) fn new(rng: &mut Rng64) -> World {
        let mut merchants = Vec::new();
        let mut city_ranges = Vec::with_capacity(CITIES.len() * N_CATS);
        for (ci, c) in CITIES.iter().enumerate() {
            let size = (f64::from(c.population_k) / 1000.0).sqrt().clamp(0.5, 3.0);
            for info in &CATS {
                let start = merchants.len() as u32;
                let n = if info.per_city > 0.0 {
                    (info.per_city * size).round().max(1.0) as usize
                } else {
                    0
                };
                for _ in 0..n {
                    let (lat, lon) = scatter(rng, c.lat, c.lon, 12.0);
                    let idx = merchants.len();
                    merchants.push(Merchant {
                        id: merchant_id(info.cat, idx),
                        name: merchant_name(rng, info, false),
                        cat: info.cat,
                        city: Some(ci as u16),
                        lat,
                        lon,
                    });
                }
                city_ranges.push((start, merchants.len() as u32 - start));
            }
        }
        let mut online_ranges = [(0u32, 0u32); N_CATS];
        for (k, info) in CATS.iter().enumerate() {
            let start = merchants.len() as u32;
            for _ in 0..info.online {
                let idx = merchants.len();
                merchants.push(Merchant {
                    id: merchant_id(info.cat, idx),
                    name: merchant_name(rng, info, true),
                    cat: info.cat,
                    city: None,
                    lat: 0.0,
                    lon: 0.0,
                });
            }
            online_ranges[k] = (start, merchants.len() as u32 - start);
        }
        let mut online_cum = [0.0; N_CATS];
        let mut away_cum = [0.0; N_CATS];
        let (mut o, mut a) = (0.0, 0.0);
        for (k, info) in CATS.iter().enumerate() {
            if info.online > 0 {
                o += info.online_weight;
            }
            if info.per_city > 0.0 {
                a += info.away_weight;
            }
            online_cum[k] = o;
            away_cum[k] = a;
        }
        // The synthetic issuer is a US bank: most cardholders live in the US.
        let home_cum = cumulative(
            &CITIES
                .iter()
                .map(|c| f64::from(c.population_k) * if c.country == "US" { 8.0 } else { 1.0 })
                .collect::<Vec<_>>(),
        );
        let dest_cum = cumulative(
            &CITIES
                .iter()
                .map(|c| f64::from(c.population_k).sqrt())
                .collect::<Vec<_>>(),
        );
        let mut country_cities: Vec<(Vec<u16>, Vec<f64>)> = Vec::new();
        let mut country_of = Vec::with_capacity(CITIES.len());
        let mut names: Vec<&str> = Vec::new();
        for (ci, c) in CITIES.iter().enumerate() {
            let k = match names.iter().position(|&n| n == c.country) {
                Some(k) => k,
                None => {
                    names.push(c.country);
                    country_cities.push((Vec::new(), Vec::new()));
                    names.len() - 1
                }
            };
            if let Some((cities, weights)) = country_cities.get_mut(k) {
                cities.push(ci as u16);
                let prev = weights.last().copied().unwrap_or(0.0);
                weights.push(prev + f64::from(c.population_k).sqrt());
            }
            country_of.push(k);
        }
        World {
            merchants,
            city_ranges,
            online_ranges,
            online_cum,
            away_cum,
            home_cum,
            dest_cum,
            customers_by_city: vec![Vec::new(); CITIES.len()],
            customers_by_country: vec![Vec::new(); country_cities.len()],
            country_cities,
            country_of,
        }
    }

    /// Customers living in `city`, or if fewer than `min` do, in its country, or if
    /// fewer still, `None` (anyone).
    pub(crate) fn neighbours(&self, city: u16, min: usize) -> Option<&[u32]> {
        let local = self.customers_by_city.get(usize::from(city))?;
        if local.len() >= min {
            return Some(local);
        }
        let national = self
            .country_of
            .get(usize::from(city))
            .and_then(|&k| self.customers_by_country.get(k))?;
        (national.len() >= min).then_some(national.as_slice())
    }

    /// The physical merchants of `cat` in `city`.
    pub(crate) fn shops(&self, city: u16, cat: Category) -> (u32, u32) {
        self.city_ranges
            .get(usize::from(city) * N_CATS + cat as usize)
            .copied()
            .unwrap_or((0, 0))
    }

    /// A random physical merchant of `cat` in `city` (falls back to any of `city`'s shops).
    pub(crate) fn random_shop(&self, rng: &mut Rng64, city: u16, cat: Category) -> u32 {
        let (start, len) = self.shops(city, cat);
        if len > 0 {
            return start + rng.below(len as usize) as u32;
        }
        let (start, len) = self.shops(city, Category::Grocery);
        start + rng.below(len.max(1) as usize) as u32
    }

    /// A random online merchant of `cat`.
    pub(crate) fn random_online(&self, rng: &mut Rng64, cat: Category) -> u32 {
        let (start, len) = self.online_ranges[cat as usize];
        if len > 0 {
            return start + rng.below(len as usize) as u32;
        }
        let (start, len) = self.online_ranges[Category::Marketplace as usize];
        start + rng.below(len.max(1) as usize) as u32
    }

    /// A random online merchant, categories weighted by popularity.
    pub(crate) fn random_online_any(&self, rng: &mut Rng64) -> u32 {
        let k = rng.weighted(&self.online_cum).unwrap_or(0);
        self.random_online(rng, Category::from_index(k))
    }

    /// A card-present category for a traveller.
    pub(crate) fn away_category(&self, rng: &mut Rng64) -> Category {
        Category::from_index(rng.weighted(&self.away_cum).unwrap_or(0))
    }

    pub(crate) fn merchant(&self, m: u32) -> &Merchant {
        self.merchants
            .get(m as usize)
            .unwrap_or_else(|| &self.merchants[0])
    }

    /// Create customer number `index`.
    pub(crate) fn new_customer(
        &mut self,
        rng: &mut Rng64,
        index: u32,
        id_key: u64,
        mean_daily: f64,
        card: String,
    ) -> Customer {
        let home_city = rng.weighted(&self.home_cum).unwrap_or(0) as u16;
        let c = city(home_city);
        let (home_lat, home_lon) = scatter(rng, c.lat, c.lon, 15.0);
        let first: String = FirstName().fake_with_rng(rng);
        let last: String = LastName().fake_with_rng(rng);

        // Daily rhythm: day people, evening people and night owls.
        let kind = rng.f64();
        let (centre, width) = if kind < 0.68 {
            (rng.normal() * 2.0 + 13.5, rng.range(2.5, 4.5))
        } else if kind < 0.9 {
            (rng.normal() + 19.0, rng.range(2.0, 3.5))
        } else {
            (rng.range(22.0, 26.5), rng.range(2.0, 3.5))
        };
        let floor = rng.range(0.01, 0.05);
        let mut hours = [0f32; 24];
        for (h, w) in hours.iter_mut().enumerate() {
            let d = (h as f64 + 0.5 - centre).rem_euclid(24.0);
            let d = d.min(24.0 - d);
            *w = (floor + (-d * d / (2.0 * width * width)).exp()) as f32;
        }
        let max = hours.iter().fold(0f32, |m, &w| m.max(w));
        hours.iter_mut().for_each(|w| *w /= max);
        let weekend = rng.range(0.7, 1.45) as f32;
        let mut days = [1f32, 1.0, 1.0, 1.0, 1.05, weekend, weekend * 0.9];
        let max = days.iter().fold(0f32, |m, &w| m.max(w));
        days.iter_mut().for_each(|w| *w /= max);
        let mean_activity = hours.iter().map(|&w| f64::from(w)).sum::<f64>() / 24.0
            * days.iter().map(|&w| f64::from(w)).sum::<f64>()
            / 7.0;

        let sigma = 0.6;
        let daily = rng.lognormal(mean_daily * (-sigma * sigma / 2.0f64).exp(), sigma);
        let peak_per_ms = daily / (DAY_MS as f64 * mean_activity);

        let mut pos_cum = [0.0; N_CATS];
        let mut acc = 0.0;
        for (k, info) in CATS.iter().enumerate() {
            if info.pos_weight > 0.0 {
                acc += info.pos_weight * rng.lognormal(1.0, 0.7);
            }
            pos_cum[k] = acc;
        }
        let mut fav = [[0u32; 3]; N_CATS];
        for (k, slot) in fav.iter_mut().enumerate() {
            let cat = Category::from_index(k);
            for m in slot.iter_mut() {
                *m = self.random_shop(rng, home_city, cat);
            }
        }
        let mut online_fav = [0u32; 5];
        for m in online_fav.iter_mut() {
            *m = self.random_online_any(rng);
        }
        let travel_mean_ms = if rng.chance(0.25) {
            0.0
        } else {
            rng.range(25.0, 120.0) * DAY_MS as f64
        };
        if let Some(v) = self.customers_by_city.get_mut(usize::from(home_city)) {
            v.push(index);
        }
        let country = self.country_of.get(usize::from(home_city)).copied();
        if let Some(v) = country.and_then(|k| self.customers_by_country.get_mut(k)) {
            v.push(index);
        }
        Customer {
            id: hex_id("cus_", mix64(u64::from(index) ^ id_key)),
            first,
            last,
            card,
            home_city,
            home_lat,
            home_lon,
            home_tz: solar_utc_offset_hours(c.lon),
            spend: rng.lognormal(1.0, 0.5),
            peak_per_ms,
            hours,
            days,
            p_online: rng.range(0.08, 0.4),
            p_atm: rng.range(0.01, 0.06),
            pos_cum,
            fav,
            online_fav,
            travel_mean_ms,
            next_sample: 0,
            followups: Vec::new(),
            trip: None,
            prev_trip: None,
            last_cp: None,
            pending_travel_fraud: 0,
            reissue_at: i64::MAX,
        }
    }

    /// Plan the customer's next trip, leaving some time after `after`.
    pub(crate) fn plan_trip(&self, rng: &mut Rng64, cust: &mut Customer, after: i64) {
        if cust.travel_mean_ms <= 0.0 {
            cust.trip = None;
            return;
        }
        let depart = after + 2 * DAY_MS + rng.exp(cust.travel_mean_ms) as i64;
        let home = usize::from(cust.home_city);
        let domestic = self
            .country_of
            .get(home)
            .and_then(|&k| self.country_cities.get(k))
            .filter(|(cities, _)| cities.len() > 1);
        let mut dest = cust.home_city;
        for _ in 0..8 {
            dest = match domestic {
                Some((cities, cum)) if rng.chance(0.55) => rng
                    .weighted(cum)
                    .and_then(|i| cities.get(i).copied())
                    .unwrap_or(cust.home_city),
                _ => rng.weighted(&self.dest_cum).unwrap_or(0) as u16,
            };
            if dest != cust.home_city {
                break;
            }
        }
        if dest == cust.home_city {
            cust.trip = None;
            return;
        }
        let travel = travel_time_ms(
            haversine_km(cust.home_lat, cust.home_lon, city(dest).lat, city(dest).lon),
            rng,
        );
        let stay = ((0.6 + rng.exp(3.5)).min(21.0) * DAY_MS as f64) as i64;
        let arrive = depart + travel;
        let leave = arrive + stay;
        let trip = Trip {
            city: dest,
            depart,
            arrive,
            leave,
            back: leave + travel,
        };
        cust.prev_trip = cust.trip;
        cust.trip = Some(trip);
        // The hotel bill, paid at check-out.
        if stay >= 20 * HOUR_MS && rng.chance(0.6) {
            let nights = (stay as f64 / DAY_MS as f64).round().max(1.0);
            let cents = cents(nights * rng.lognormal(140.0 * cust.spend.sqrt(), 0.35));
            let at = leave - (rng.range(1.0, 3.0) * HOUR_MS as f64) as i64;
            cust.push_followup(Followup {
                at: at.max(arrive),
                merchant: Some(self.random_shop(rng, dest, Category::Lodging)),
                cents,
            });
        }
    }

    /// Move the customer's trip plan forward so that it covers `t`.
    pub(crate) fn roll_trip(&self, rng: &mut Rng64, cust: &mut Customer, t: i64) {
        while let Some(trip) = cust.trip {
            if t < trip.back {
                break;
            }
            self.plan_trip(rng, cust, trip.back);
        }
    }

    /// A ticket amount in cents for `cat`.
    pub(crate) fn ticket(&self, rng: &mut Rng64, cust: &Customer, cat: Category) -> u64 {
        let info = cat.info();
        match cat {
            Category::Digital => rng.pick(&DIGITAL_PRICES).copied().unwrap_or(999),
            Category::Cash => {
                let x = rng.lognormal(info.median * cust.spend.sqrt(), info.sigma);
                ((x / 20.0).round().clamp(1.0, 40.0) as u64) * 2000
            }
            _ => {
                let mut x = rng.lognormal(info.median * cust.spend, info.sigma);
                if info.big_ticket && rng.chance(0.03) {
                    x *= rng.range(4.0, 12.0);
                }
                cents(x)
            }
        }
    }
}

/// Door-to-door travel time for `km`: driving below 350 km, flying above (with airport
/// time), never faster than a plausible 800 km/h overall.
pub(crate) fn travel_time_ms(km: f64, rng: &mut Rng64) -> i64 {
    let hours = if km < 350.0 {
        0.5 + km / 75.0
    } else {
        rng.range(2.5, 4.5) + km / 780.0
    };
    (hours * HOUR_MS as f64) as i64
}

/// USD to cents, at least one cent... or zero for a zero amount.
pub(crate) fn cents(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 100.0).round().max(1.0) as u64
    } else {
        0
    }
}

fn merchant_id(cat: Category, idx: usize) -> String {
    if cat == Category::Cash {
        format!("atm_{idx:06}")
    } else {
        format!("mer_{idx:06}")
    }
}

/// `prefix` followed by 16 lowercase hex digits of `v`.
pub(crate) fn hex_id(prefix: &str, v: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(prefix.len() + 16);
    s.push_str(prefix);
    for i in (0..16).rev() {
        s.push(char::from(HEX[((v >> (i * 4)) & 0xF) as usize]));
    }
    s
}

/// Draw a card network by market share and a fresh number on it.
pub(crate) fn new_card(rng: &mut Rng64) -> String {
    let r = rng.f64();
    let net = if r < 0.52 {
        CardNetwork::Visa
    } else if r < 0.82 {
        CardNetwork::Mastercard
    } else if r < 0.93 {
        CardNetwork::Amex
    } else {
        CardNetwork::Discover
    };
    net.random_pan(rng)
}
