//! Great-circle geometry.

/// Mean Earth radius in kilometres (IUGG).
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance in kilometres between two points given in degrees (haversine).
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// A valid (finite, in-range) coordinate pair, or `None`.
pub(crate) fn valid_point(lat: Option<f64>, lon: Option<f64>) -> Option<(f64, f64)> {
    match (lat, lon) {
        (Some(la), Some(lo))
            if la.is_finite() && lo.is_finite() && la.abs() <= 90.0 && lo.abs() <= 180.0 =>
        {
            Some((la, lo))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_hand_computed() {
        assert_eq!(haversine_km(10.0, 20.0, 10.0, 20.0), 0.0);
        // One degree of latitude is R * pi / 180 km.
        let one_deg = EARTH_RADIUS_KM * std::f64::consts::PI / 180.0;
        assert!((haversine_km(0.0, 0.0, 1.0, 0.0) - one_deg).abs() < 1e-9);
        // Antipodes: half the circumference.
        let half = EARTH_RADIUS_KM * std::f64::consts::PI;
        assert!((haversine_km(0.0, 0.0, 0.0, 180.0) - half).abs() < 1e-6);
        // Paris - New York, about 5837 km.
        let d = haversine_km(48.8566, 2.3522, 40.7128, -74.0060);
        assert!((d - 5837.0).abs() < 10.0, "{d}");
    }

    #[test]
    fn invalid_points_are_missing() {
        assert_eq!(valid_point(Some(91.0), Some(0.0)), None);
        assert_eq!(valid_point(Some(f64::NAN), Some(0.0)), None);
        assert_eq!(valid_point(None, Some(0.0)), None);
        assert_eq!(valid_point(Some(1.0), Some(2.0)), Some((1.0, 2.0)));
    }
}
