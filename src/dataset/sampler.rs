//! The token ids of a synthetic dataset's requests, drawn as upstream draws them.

use super::cpython::{PyRandom, SeenSet};
use super::tokenizer::Vocab;

/// Draws the token ids of successive requests from CPython's `random`, seeded once, exactly as
/// upstream: `sample(range(vocab), k)` when `k < vocab`, else `choices`; then EOS avoidance.
#[derive(Debug, Clone)]
pub struct TokenSampler {
    rng: PyRandom,
    seen: SeenSet,
    vocab_size: u32,
    eos_ids: Vec<u32>,
    /// EOS avoidance can only fire when every EOS id is a drawable id.
    eos_drawable: bool,
}

impl TokenSampler {
    pub fn new(seed: u64, vocab: &Vocab) -> Self {
        TokenSampler {
            rng: PyRandom::from_u64(seed),
            seen: SeenSet::with_capacity(vocab.vocab_size),
            vocab_size: vocab.vocab_size,
            eos_ids: vocab.eos_ids.clone(),
            eos_drawable: !vocab.eos_ids.is_empty()
                && vocab.eos_ids.iter().all(|&e| e < vocab.vocab_size),
        }
    }

    /// Replaces `out` with the ids of the next request of `len` tokens.
    pub fn draw(&mut self, len: usize, out: &mut Vec<u32>) {
        out.clear();
        self.append(len, out);
    }

    /// Appends the ids of the next request of `len` tokens to `out`.
    pub fn append(&mut self, len: usize, out: &mut Vec<u32>) {
        let start = out.len();
        if (len as u64) < self.vocab_size as u64 {
            self.rng
                .sample_range(self.vocab_size, len, out, &mut self.seen);
        } else {
            self.rng.choices_range(self.vocab_size, len, out);
        }
        let ids = &mut out[start..];
        if self.eos_drawable && self.eos_ids.iter().all(|e| ids.contains(e)) {
            // Upstream loops "while all EOS ids are present", replacing the first EOS id with
            // its successor; with more than one id in the vocabulary one pass ends the loop.
            let eos = self.eos_ids[0];
            let replacement = (eos + 1) % self.vocab_size;
            for id in ids.iter_mut().filter(|id| **id == eos) {
                *id = replacement;
            }
        }
    }

    /// The generator after the token draws, where upstream draws `randint` task ids.
    pub fn into_random(self) -> PyRandom {
        self.rng
    }
}
