//! Token ids and n-gram counting shared by ROUGE and BLEU.

use std::collections::HashMap;

/// Dense ids for distinct tokens, in order of first appearance.
#[derive(Default)]
pub(crate) struct Interner<'a> {
    ids: HashMap<&'a str, u32>,
}

impl<'a> Interner<'a> {
    pub(crate) fn intern_all(&mut self, tokens: &[&'a str]) -> Vec<u32> {
        tokens
            .iter()
            .map(|&t| {
                // A text with 2^32 distinct tokens would not fit in memory; saturating keeps
                // this total without a panic path.
                let next = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
                *self.ids.entry(t).or_insert(next)
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Every n-gram of `ids` as one integer (a 32-bit lane per token, id + 1 so shorter n-grams
/// never equal longer ones), sorted so two sides can be compared by one merge.
pub(crate) fn sorted_ngrams(ids: &[u32], n: usize) -> Vec<u128> {
    let mut keys: Vec<u128> = ids
        .windows(n)
        .map(|gram| {
            gram.iter().enumerate().fold(0u128, |key, (lane, &id)| {
                key | (u128::from(id) + 1) << (32 * lane)
            })
        })
        .collect();
    keys.sort_unstable();
    keys
}

/// The clipped overlap of two sorted n-gram lists: the sum over n-grams of the smaller count.
pub(crate) fn clipped_overlap(a: &[u128], b: &[u128]) -> u64 {
    let (mut i, mut j, mut overlap) = (0, 0, 0u64);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                let key = a[i];
                let run_a = a[i..].iter().take_while(|&&k| k == key).count();
                let run_b = b[j..].iter().take_while(|&&k| k == key).count();
                overlap += run_a.min(run_b) as u64;
                i += run_a;
                j += run_b;
            }
        }
    }
    overlap
}
