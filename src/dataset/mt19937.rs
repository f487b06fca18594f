//! MT19937, the Mersenne Twister behind both numpy's legacy `RandomState` and CPython's `random`.
//!
//! The two differ only in how they seed it: numpy's `np.random.seed(int)` uses the classic
//! `init_genrand`, CPython's `random.seed(int)` uses `init_by_array` over the 32-bit words of the
//! seed. Both draw doubles the same way (`random_53bit`).

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

#[inline(always)]
fn temper(mut y: u32) -> u32 {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c_5680;
    y ^= (y << 15) & 0xefc6_0000;
    y ^ (y >> 18)
}

#[derive(Clone)]
pub struct Mt19937 {
    state: Box<[u32; N]>,
    /// The tempered outputs of the current block. Tempering a whole block at once lets the
    /// compiler vectorise it, which takes it off the per-draw path of the token loop.
    tempered: Box<[u32; N]>,
    index: usize,
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mt19937")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Mt19937 {
    fn blank() -> Self {
        Mt19937 {
            state: Box::new([0; N]),
            tempered: Box::new([0; N]),
            index: N,
        }
    }

    /// `init_genrand(seed)`: numpy's legacy `np.random.seed(seed)` for a seed below 2^32.
    pub fn new_genrand(seed: u32) -> Self {
        let mut mt = Self::blank();
        mt.init_genrand(seed);
        mt
    }

    /// `init_by_array(key)`: CPython's `random.seed(int)` with `key` the little-endian 32-bit
    /// words of the seed's absolute value (`[0]` for zero).
    pub fn new_by_array(key: &[u32]) -> Self {
        let mut mt = Self::blank();
        mt.init_genrand(19_650_218);
        let key: &[u32] = if key.is_empty() { &[0] } else { key };
        let s = &mut mt.state;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = s[i - 1] ^ (s[i - 1] >> 30);
            s[i] = (s[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                s[0] = s[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = s[i - 1] ^ (s[i - 1] >> 30);
            s[i] = (s[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                s[0] = s[N - 1];
                i = 1;
            }
        }
        s[0] = 0x8000_0000;
        mt.index = N;
        mt
    }

    fn init_genrand(&mut self, seed: u32) {
        let s = &mut self.state;
        s[0] = seed;
        for i in 1..N {
            s[i] = 1_812_433_253u32
                .wrapping_mul(s[i - 1] ^ (s[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    #[inline(always)]
    fn twist_one(s: &mut [u32; N], i: usize, next: usize, far: usize) {
        let y = (s[i] & UPPER_MASK) | (s[next] & LOWER_MASK);
        // Branch-free select of MATRIX_A: the low bit is data-dependent and unpredictable.
        s[i] = s[far] ^ (y >> 1) ^ (MATRIX_A & (y & 1).wrapping_neg());
    }

    #[cold]
    fn twist(&mut self) {
        let s = &mut *self.state;
        for i in 0..N - M {
            Self::twist_one(s, i, i + 1, i + M);
        }
        for i in N - M..N - 1 {
            Self::twist_one(s, i, i + 1, i + M - N);
        }
        Self::twist_one(s, N - 1, 0, M - 1);
        for (out, &y) in self.tempered.iter_mut().zip(s.iter()) {
            *out = temper(y);
        }
        self.index = 0;
    }

    #[inline(always)]
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let y = self.tempered[self.index];
        self.index += 1;
        y
    }

    /// The outputs not drawn yet from the current block (never empty); mark the ones used with
    /// [`consume`](Self::consume). Lets a hot loop walk the block without a per-draw check.
    #[inline]
    pub fn buffered(&mut self) -> &[u32] {
        if self.index >= N {
            self.twist();
        }
        &self.tempered[self.index..]
    }

    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.index += n;
    }

    /// A double in [0, 1) with 53 random bits: the first draw gives the high 27 bits.
    /// Identical in numpy (`legacy_double`) and CPython (`random()`).
    #[inline]
    pub fn random_53bit(&mut self) -> f64 {
        let a = self.next_u32() >> 5;
        let b = self.next_u32() >> 6;
        (a as f64 * 67_108_864.0 + b as f64) / 9_007_199_254_740_992.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_init_by_array_vector() {
        // The reference output of mt19937ar.c (init_by_array {0x123, 0x234, 0x345, 0x456}).
        let mut mt = Mt19937::new_by_array(&[0x123, 0x234, 0x345, 0x456]);
        let first: Vec<u32> = (0..5).map(|_| mt.next_u32()).collect();
        assert_eq!(
            first,
            [
                1_067_595_299,
                955_945_823,
                477_289_528,
                4_107_218_783,
                4_228_976_476
            ]
        );
    }

    #[test]
    fn reference_init_genrand_5489() {
        // std::mt19937 default seed; the 10000th output is the C++ standard's check value.
        let mut mt = Mt19937::new_genrand(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = mt.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }
}
