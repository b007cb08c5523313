//! Geography helpers: great-circle distance and a table of real cities.

pub use crate::cities::{City, CITIES};

/// Mean Earth radius in kilometres.
pub const EARTH_RADIUS_KM: f64 = 6371.0;

/// Great-circle distance in kilometres between two points given in degrees (haversine).
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// The whole-hour offset from UTC of local solar time at longitude `lon` (degrees): an
/// approximation of the civil time zone that is good enough for daily rhythms.
pub fn solar_utc_offset_hours(lon: f64) -> i64 {
    // Longitudes are within [-180, 180], so the result is within [-12, 12].
    (lon / 15.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances() {
        // New York – London is about 5,570 km; Sydney – Melbourne about 714 km.
        let d = haversine_km(40.7128, -74.0060, 51.5074, -0.1278);
        assert!((d - 5570.0).abs() < 30.0, "{d}");
        let d = haversine_km(-33.8688, 151.2093, -37.8136, 144.9631);
        assert!((d - 714.0).abs() < 10.0, "{d}");
        assert_eq!(haversine_km(10.0, 20.0, 10.0, 20.0), 0.0);
    }

    #[test]
    fn city_table_is_sane() {
        assert!(CITIES.len() >= 300);
        for c in CITIES {
            assert!((-90.0..=90.0).contains(&c.lat), "{}", c.name);
            assert!((-180.0..=180.0).contains(&c.lon), "{}", c.name);
            assert_eq!(c.country.len(), 2, "{}", c.name);
            assert!(
                c.country.bytes().all(|b| b.is_ascii_uppercase()),
                "{}",
                c.name
            );
            assert!(c.population_k > 0, "{}", c.name);
        }
        for (i, a) in CITIES.iter().enumerate() {
            for b in &CITIES[i + 1..] {
                assert!(
                    a.name != b.name || a.country != b.country,
                    "duplicate {} {}",
                    a.name,
                    a.country
                );
            }
        }
    }

    #[test]
    fn solar_offsets() {
        assert_eq!(solar_utc_offset_hours(-74.0), -5);
        assert_eq!(solar_utc_offset_hours(139.65), 9);
        assert_eq!(solar_utc_offset_hours(0.0), 0);
    }
}
