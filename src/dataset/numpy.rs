//! The two numpy generators prepare_dataset uses, reproduced bit for bit:
//! the legacy global `RandomState` (`np.random.seed` + `np.random.normal`) for normal lengths,
//! and `np.random.default_rng(seed).integers` (SeedSequence + PCG64 + Lemire) for uniform lengths.

use super::mt19937::Mt19937;

/// numpy's legacy `RandomState` after `np.random.seed(seed)`.
#[derive(Debug, Clone)]
pub struct LegacyRandomState {
    mt: Mt19937,
    /// The second value of the last polar pair; `np.random.seed` clears it.
    cached_gauss: Option<f64>,
}

impl LegacyRandomState {
    /// `np.random.seed(seed)`; numpy itself rejects seeds of 2^32 and above.
    pub fn new(seed: u32) -> Self {
        LegacyRandomState {
            mt: Mt19937::new_genrand(seed),
            cached_gauss: None,
        }
    }

    pub fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    /// `np.random.random_sample()`.
    pub fn random_sample(&mut self) -> f64 {
        self.mt.random_53bit()
    }

    /// `legacy_gauss`: the polar Box–Muller method, which yields values in pairs.
    pub fn standard_normal(&mut self) -> f64 {
        if let Some(cached) = self.cached_gauss.take() {
            return cached;
        }
        let (x1, x2, r2) = loop {
            let x1 = 2.0 * self.mt.random_53bit() - 1.0;
            let x2 = 2.0 * self.mt.random_53bit() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                break (x1, x2, r2);
            }
        };
        // Same operation order as numpy's C code, so the rounding is the same.
        let f = (-2.0 * r2.ln() / r2).sqrt();
        self.cached_gauss = Some(f * x1);
        f * x2
    }

    /// `np.random.normal(loc, scale)` for one value.
    pub fn normal(&mut self, loc: f64, scale: f64) -> f64 {
        loc + scale * self.standard_normal()
    }
}

/// numpy's `SeedSequence(entropy)` with the default pool size 4 and no spawn key.
#[derive(Debug, Clone)]
pub struct SeedSequence {
    pool: [u32; 4],
}

const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;

fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut v = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    v = v.wrapping_mul(*hash_const);
    v ^ (v >> XSHIFT)
}

fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L
        .wrapping_mul(x)
        .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

impl SeedSequence {
    /// Entropy from a non-negative integer: its little-endian 32-bit words (zero is one word).
    pub fn from_u64(seed: u64) -> Self {
        let words: Vec<u32> = if seed >> 32 == 0 {
            vec![seed as u32]
        } else {
            vec![seed as u32, (seed >> 32) as u32]
        };
        Self::from_words(&words)
    }

    pub fn from_words(entropy: &[u32]) -> Self {
        let mut pool = [0u32; 4];
        let mut hash_const = INIT_A;
        for (i, slot) in pool.iter_mut().enumerate() {
            *slot = hashmix(entropy.get(i).copied().unwrap_or(0), &mut hash_const);
        }
        for src in 0..4 {
            for dst in 0..4 {
                if src != dst {
                    let h = hashmix(pool[src], &mut hash_const);
                    pool[dst] = mix(pool[dst], h);
                }
            }
        }
        for &word in entropy.iter().skip(4) {
            for slot in pool.iter_mut() {
                let h = hashmix(word, &mut hash_const);
                *slot = mix(*slot, h);
            }
        }
        SeedSequence { pool }
    }

    /// `generate_state(n, np.uint64)`: 2n 32-bit words paired little-endian.
    pub fn generate_state_u64(&self, n: usize) -> Vec<u64> {
        let mut hash_const = INIT_B;
        let words: Vec<u32> = self
            .pool
            .iter()
            .cycle()
            .take(2 * n)
            .map(|&src| {
                let mut v = src ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                v = v.wrapping_mul(hash_const);
                v ^ (v >> XSHIFT)
            })
            .collect();
        words
            .chunks_exact(2)
            .map(|w| w[0] as u64 | (w[1] as u64) << 32)
            .collect()
    }
}

const PCG_MULT: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

/// numpy's `PCG64` bit generator (128-bit LCG, XSL-RR output) including its 32-bit buffering:
/// a 32-bit draw takes the low half of a 64-bit output and keeps the high half for the next one.
#[derive(Debug, Clone)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
    spare_u32: Option<u32>,
}

impl Pcg64 {
    /// `PCG64(seed)` as `np.random.default_rng(seed)` builds it.
    pub fn from_seed(seed: u64) -> Self {
        let words = SeedSequence::from_u64(seed).generate_state_u64(4);
        let initstate = (words[0] as u128) << 64 | words[1] as u128;
        let initseq = (words[2] as u128) << 64 | words[3] as u128;
        let mut pcg = Pcg64 {
            state: 0,
            inc: (initseq << 1) | 1,
            spare_u32: None,
        };
        pcg.step();
        pcg.state = pcg.state.wrapping_add(initstate);
        pcg.step();
        pcg
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let hi = (self.state >> 64) as u64;
        let lo = self.state as u64;
        (hi ^ lo).rotate_right((self.state >> 122) as u32)
    }

    pub fn next_u32(&mut self) -> u32 {
        if let Some(spare) = self.spare_u32.take() {
            return spare;
        }
        let v = self.next_u64();
        self.spare_u32 = Some((v >> 32) as u32);
        v as u32
    }

    /// `Generator.integers(low, high)` (high exclusive, int64) for one value, `low < high`.
    /// Ranges that fit 32 bits use 32-bit Lemire draws, wider ones 64-bit Lemire draws, exactly
    /// as numpy's `random_bounded_uint64_fill` dispatches.
    pub fn integer(&mut self, low: i64, high_exclusive: i64) -> i64 {
        let range = (high_exclusive as i128 - 1 - low as i128) as u64;
        let offset = if range == 0 {
            0
        } else if range < 0xffff_ffff {
            self.lemire_u32(range as u32) as u64
        } else if range == 0xffff_ffff {
            self.next_u32() as u64
        } else if range == u64::MAX {
            self.next_u64()
        } else {
            self.lemire_u64(range)
        };
        (low as i128 + offset as i128) as i64
    }

    fn lemire_u32(&mut self, range: u32) -> u32 {
        let excl = range + 1;
        let mut m = self.next_u32() as u64 * excl as u64;
        let mut leftover = m as u32;
        if leftover < excl {
            let threshold = (u32::MAX - range) % excl;
            while leftover < threshold {
                m = self.next_u32() as u64 * excl as u64;
                leftover = m as u32;
            }
        }
        (m >> 32) as u32
    }

    fn lemire_u64(&mut self, range: u64) -> u64 {
        let excl = range + 1;
        let mut m = self.next_u64() as u128 * excl as u128;
        let mut leftover = m as u64;
        if leftover < excl {
            let threshold = (u64::MAX - range) % excl;
            while leftover < threshold {
                m = self.next_u64() as u128 * excl as u128;
                leftover = m as u64;
            }
        }
        (m >> 64) as u64
    }
}
