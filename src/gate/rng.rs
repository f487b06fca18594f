//! The simulations' random numbers: seeded, so a seed gives the same table every time.

use super::stats;

/// splitmix64: tiny, fast, and statistically fine for a simulation; seeded runs repeat exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n) (n ≥ 1; the modulo bias at n ≪ 2^64 is negligible here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Standard normal by inversion (one uniform per draw, no cached state).
    pub fn normal(&mut self) -> f64 {
        // Shift into (0, 1) so the quantile is finite.
        let u = (self.uniform() + 0.5 / (1u64 << 53) as f64).min(1.0 - f64::EPSILON);
        stats::normal_quantile(u)
    }
}
