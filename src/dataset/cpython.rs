//! CPython's `random` module (3.11), as far as prepare_dataset uses it: `seed(int)`,
//! `getrandbits`, `random`, `randint`, `sample(range(n), k)` and `choices(range(n), k=k)`.

use super::mt19937::Mt19937;

#[derive(Debug, Clone)]
pub struct PyRandom {
    mt: Mt19937,
}

/// Python's `int.bit_length()` of a positive width.
fn bit_length(n: u128) -> u32 {
    128 - n.leading_zeros()
}

impl PyRandom {
    /// `random.seed(seed)` for an int: `init_by_array` over the 32-bit words of `|seed|`.
    pub fn new(seed: i64) -> Self {
        Self::from_u64(seed.unsigned_abs())
    }

    pub fn from_u64(seed: u64) -> Self {
        let key: Vec<u32> = if seed >> 32 == 0 {
            vec![seed as u32]
        } else {
            vec![seed as u32, (seed >> 32) as u32]
        };
        PyRandom {
            mt: Mt19937::new_by_array(&key),
        }
    }

    /// `getrandbits(k)` for `k <= 96`: whole 32-bit words from least to most significant, the
    /// last one keeping only its top bits.
    pub fn getrandbits(&mut self, k: u32) -> u128 {
        debug_assert!(k <= 96);
        if k == 0 {
            return 0;
        }
        if k <= 32 {
            return (self.mt.next_u32() >> (32 - k)) as u128;
        }
        let mut result = 0u128;
        let mut remaining = k;
        let mut shift = 0;
        while remaining > 0 {
            let mut word = self.mt.next_u32();
            if remaining < 32 {
                word >>= 32 - remaining;
            }
            result |= (word as u128) << shift;
            shift += 32;
            remaining = remaining.saturating_sub(32);
        }
        result
    }

    /// `_randbelow(n)`: rejection sampling on `n.bit_length()` bits (not `(n-1).bit_length()`).
    pub fn randbelow(&mut self, n: u128) -> u128 {
        let k = bit_length(n);
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `_randbelow` for `1 <= n < 2^32`; `shift` is `32 - n.bit_length()`, i.e. `n.leading_zeros()`.
    #[inline(always)]
    fn randbelow_u32(&mut self, n: u32, shift: u32) -> u32 {
        loop {
            let r = self.mt.next_u32() >> shift;
            if r < n {
                return r;
            }
        }
    }

    /// `random.random()`.
    pub fn random(&mut self) -> f64 {
        self.mt.random_53bit()
    }

    /// `random.randint(a, b)` with `a <= b`.
    pub fn randint(&mut self, a: i64, b: i64) -> i64 {
        let width = (b as i128 - a as i128 + 1) as u128;
        (a as i128 + self.randbelow(width) as i128) as i64
    }

    /// `random.sample(range(n), k)` for `k < n`, appended to `out`. `seen` must be clear for
    /// ids below `n` and is left clear.
    pub fn sample_range(&mut self, n: u32, k: usize, out: &mut Vec<u32>, seen: &mut SeenSet) {
        debug_assert!((k as u64) < n as u64);
        if (n as u64) <= sample_setsize(k as u64) {
            self.sample_pool(n, k, out);
        } else {
            self.sample_set(n, k, out, seen);
        }
    }

    /// The "pool" branch: a partial Fisher–Yates shuffle of a copy of the population.
    fn sample_pool(&mut self, n: u32, k: usize, out: &mut Vec<u32>) {
        let mut pool: Vec<u32> = (0..n).collect();
        for i in 0..k as u32 {
            let width = n - i;
            let j = self.randbelow_u32(width, width.leading_zeros()) as usize;
            out.push(pool[j]);
            pool[j] = pool[(width - 1) as usize];
        }
    }

    /// The "set" branch: draw from the whole range and redraw ids already taken.
    ///
    /// `_randbelow` redraws out-of-range values and `sample` redraws taken ids; both consume one
    /// 32-bit output per try, so one pass over the generator's buffered block with a single
    /// accept test does the same draws with less bookkeeping (this loop is the hot spot).
    fn sample_set(&mut self, n: u32, k: usize, out: &mut Vec<u32>, seen: &mut SeenSet) {
        let shift = n.leading_zeros();
        let start = out.len();
        out.resize(start + k, 0);
        let mut slots = out[start..].iter_mut();
        let mut slot = slots.next();
        while slot.is_some() {
            let block = self.mt.buffered();
            let mut used = 0;
            for &y in block {
                used += 1;
                let j = y >> shift;
                if j < n && seen.insert(j) {
                    if let Some(s) = slot {
                        *s = j;
                    }
                    slot = slots.next();
                    if slot.is_none() {
                        break;
                    }
                }
            }
            self.mt.consume(used);
        }
        seen.clear_ids(&out[start..]);
    }

    /// `random.choices(range(n), k=k)`: `floor(random() * n)` per element.
    pub fn choices_range(&mut self, n: u32, k: usize, out: &mut Vec<u32>) {
        let nf = n as f64;
        for _ in 0..k {
            out.push((self.mt.random_53bit() * nf) as u32);
        }
    }
}

/// `setsize` of CPython's `sample`: 21, plus `4 ** ceil(log(3k, 4))` when `k > 5`.
///
/// CPython computes the exponent in floating point. `3k` is never a power of 4, so the float
/// result equals the exact integer ceiling (a unit test checks this over a wide range of k).
pub fn sample_setsize(k: u64) -> u64 {
    let mut setsize = 21u64;
    if k > 5 {
        let target = 3 * k as u128;
        let mut power: u128 = 1;
        while power < target {
            power *= 4;
        }
        setsize = setsize.saturating_add(u64::try_from(power).unwrap_or(u64::MAX));
    }
    setsize
}

/// Which ids were drawn for the current request: a bitset over the vocabulary (16 KiB for 128k
/// ids, so it stays in L1), cleared by the ids drawn rather than wholesale.
#[derive(Debug, Clone, Default)]
pub struct SeenSet {
    words: Vec<u64>,
}

impl SeenSet {
    pub fn with_capacity(n: u32) -> Self {
        SeenSet {
            words: vec![0; (n as usize).div_ceil(64)],
        }
    }

    pub fn ensure(&mut self, n: u32) {
        let need = (n as usize).div_ceil(64);
        if self.words.len() < need {
            self.words.resize(need, 0);
        }
    }

    /// Marks `id`; false if it was already marked.
    #[inline(always)]
    pub fn insert(&mut self, id: u32) -> bool {
        let word = &mut self.words[(id >> 6) as usize];
        let bit = 1u64 << (id & 63);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }

    pub fn clear_ids(&mut self, ids: &[u32]) {
        // Past about one id per two words a sequential wipe beats scattered stores.
        if ids.len() * 2 >= self.words.len() {
            self.words.fill(0);
        } else {
            for &id in ids {
                self.words[(id >> 6) as usize] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setsize_matches_cpython_float_formula() {
        for k in 6u64..2_000_000 {
            let float_exp = ((3 * k) as f64).ln() / 4f64.ln();
            let float_setsize = 21 + 4u64.pow(float_exp.ceil() as u32);
            assert_eq!(sample_setsize(k), float_setsize, "k = {k}");
        }
        assert_eq!(sample_setsize(5), 21);
        assert_eq!(sample_setsize(0), 21);
    }

    #[test]
    fn pool_and_set_branches_agree_on_distinctness() {
        let mut rng = PyRandom::new(1);
        let mut seen = SeenSet::with_capacity(100);
        for k in [0usize, 1, 5, 6, 30, 99] {
            let mut out = Vec::new();
            rng.sample_range(100, k, &mut out, &mut seen);
            let mut sorted = out.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), k);
            assert!(seen.words.iter().all(|&w| w == 0));
        }
    }
}
