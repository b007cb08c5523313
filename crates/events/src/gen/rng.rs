//! The generator's random source: a seeded xoshiro256++ with the few distributions the
//! generator needs, written for speed (no rejection loops on the hot path).

use rand::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Seeded, fast, reproducible random numbers.
#[derive(Debug, Clone)]
pub(crate) struct Rng64(Xoshiro256PlusPlus);

impl Rng64 {
    /// A stream determined by `seed` and `stream` (independent streams per purpose).
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        Rng64(Xoshiro256PlusPlus::seed_from_u64(
            seed ^ mix64(stream.wrapping_add(0x9E37_79B9_7F4A_7C15)),
        ))
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub(crate) fn f64(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform index in `0..n` (`n > 0`); multiply-shift, bias below 2^-32 for our sizes.
    #[inline]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((u128::from(self.0.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform integer in `lo..=hi`.
    #[inline]
    pub(crate) fn int(&mut self, lo: u32, hi: u32) -> u32 {
        debug_assert!(lo <= hi);
        lo + self.below((hi - lo) as usize + 1) as u32
    }

    /// Uniform in `[lo, hi)`.
    #[inline]
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// `true` with probability `p`.
    #[inline]
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Exponential with the given mean.
    #[inline]
    pub(crate) fn exp(&mut self, mean: f64) -> f64 {
        // 1 - u is in (0, 1], so the logarithm is finite.
        -mean * (1.0 - self.f64()).ln()
    }

    /// Standard normal (Box–Muller).
    #[inline]
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and log-scale sigma.
    #[inline]
    pub(crate) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Index drawn from cumulative weights `cum` (non-decreasing, last one the total).
    /// Returns `None` when the total is not positive.
    #[inline]
    pub(crate) fn weighted<W: Copy + Into<f64>>(&mut self, cum: &[W]) -> Option<usize> {
        let total: f64 = (*cum.last()?).into();
        if total <= 0.0 || !total.is_finite() {
            return None;
        }
        let x = self.f64() * total;
        let i = cum.partition_point(|&c| c.into() <= x);
        if i < cum.len() {
            return Some(i);
        }
        // Only rounding lands here (`x` equal to the total): take the last index whose
        // weight is positive, never a zero-weight tail.
        let first_total = cum.partition_point(|&c| c.into() < total);
        Some(first_total.min(cum.len() - 1))
    }

    /// A uniformly chosen element of `items`.
    #[inline]
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len()))
        }
    }
}

impl RngCore for Rng64 {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

/// The splitmix64 finaliser: a bijection on `u64` that scrambles bits thoroughly.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Cumulative sums of `weights`.
pub(crate) fn cumulative(weights: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .iter()
        .map(|&w| {
            acc += w.max(0.0);
            acc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_and_exponential_moments() {
        let mut r = Rng64::new(1, 2);
        let n = 200_000;
        let (mut s, mut e, mut g) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            let u = r.f64();
            assert!((0.0..1.0).contains(&u));
            s += u;
            e += r.exp(3.0);
            g += r.normal();
        }
        let n = f64::from(n);
        assert!((s / n - 0.5).abs() < 0.01);
        assert!((e / n - 3.0).abs() < 0.05);
        assert!((g / n).abs() < 0.01);
    }

    #[test]
    fn weighted_respects_zero_weights() {
        let mut r = Rng64::new(3, 4);
        let cum = cumulative(&[0.0, 1.0, 0.0, 3.0, 0.0]);
        let mut hits = [0u32; 5];
        for _ in 0..40_000 {
            let i = r.weighted(&cum).unwrap_or(99);
            hits[i] += 1;
        }
        assert_eq!(hits[0] + hits[2] + hits[4], 0);
        let ratio = f64::from(hits[3]) / f64::from(hits[1]);
        assert!((ratio - 3.0).abs() < 0.2, "{ratio}");
        assert_eq!(r.weighted::<f64>(&[]), None);
        assert_eq!(r.weighted(&[0.0, 0.0]), None);
    }

    #[test]
    fn streams_differ_and_repeat() {
        let mut a = Rng64::new(5, 0);
        let mut b = Rng64::new(5, 1);
        let mut c = Rng64::new(5, 0);
        let (x, y, z) = (a.next_u64(), b.next_u64(), c.next_u64());
        assert_ne!(x, y);
        assert_eq!(x, z);
    }
}
