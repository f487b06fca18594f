//! ROUGE-1, ROUGE-2 and ROUGE-L as `rouge-score` 0.1.2 computes them with its default tokenizer
//! and no stemmer.

use serde::{Deserialize, Serialize};

use super::ngram::{Interner, clipped_overlap, sorted_ngrams};

/// Precision, recall and F1 of one ROUGE variant, each 0..=1.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RougeScore {
    /// Matches over the candidate's n-grams (or tokens, for ROUGE-L).
    pub precision: f64,
    /// Matches over the reference's.
    pub recall: f64,
    /// `rouge-score`'s `fmeasure`: the harmonic mean, 0 when both are 0.
    pub f1: f64,
}

impl RougeScore {
    fn new(precision: f64, recall: f64) -> Self {
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            f1,
        }
    }
}

/// ROUGE-1, ROUGE-2 and ROUGE-L (sentence-level LCS) of one candidate against one reference.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Rouge {
    pub rouge1: RougeScore,
    pub rouge2: RougeScore,
    pub rouge_l: RougeScore,
}

/// `rouge-score`'s default tokenization: lowercase, every character outside ASCII `[a-z0-9]` a
/// separator, empty tokens dropped.
pub fn rouge_tokens(text: &str) -> Vec<String> {
    token_text(text)
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// The tokens of `text`, each followed by one space, in one buffer (one allocation per text,
/// not per token).
fn token_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    let mut take = |c: char| {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    };
    for c in text.chars() {
        if c.is_ascii() {
            take(c);
        } else {
            // Python lowercases the whole text before dropping non-ASCII characters, and two of
            // them lowercase to ASCII letters (U+0130 to "i" + U+0307, the Kelvin sign to "k").
            c.to_lowercase().for_each(&mut take);
        }
    }
    take(' ');
    out
}

/// ROUGE-1/2/L of `candidate` (rouge-score's `prediction`) against `reference` (its `target`).
pub fn rouge(candidate: &str, reference: &str) -> Rouge {
    let cand_text = token_text(candidate);
    let ref_text = token_text(reference);
    let cand_tokens: Vec<&str> = cand_text.split(' ').filter(|t| !t.is_empty()).collect();
    let ref_tokens: Vec<&str> = ref_text.split(' ').filter(|t| !t.is_empty()).collect();
    // Integer ids make n-gram keys and LCS comparisons cheap.
    let mut ids = Interner::default();
    let cand = ids.intern_all(&cand_tokens);
    let reference = ids.intern_all(&ref_tokens);
    Rouge {
        rouge1: rouge_n(&cand, &reference, 1),
        rouge2: rouge_n(&cand, &reference, 2),
        rouge_l: rouge_lcs(&cand, &reference, ids.len()),
    }
}

fn rouge_n(cand: &[u32], reference: &[u32], n: usize) -> RougeScore {
    let cand_grams = sorted_ngrams(cand, n);
    let ref_grams = sorted_ngrams(reference, n);
    let overlap = clipped_overlap(&cand_grams, &ref_grams) as f64;
    // rouge-score divides by max(count, 1): no n-grams on a side scores 0, not NaN.
    RougeScore::new(
        overlap / cand_grams.len().max(1) as f64,
        overlap / ref_grams.len().max(1) as f64,
    )
}

fn rouge_lcs(cand: &[u32], reference: &[u32], alphabet: usize) -> RougeScore {
    if cand.is_empty() || reference.is_empty() {
        return RougeScore::default();
    }
    let lcs = lcs_len(cand, reference, alphabet) as f64;
    RougeScore::new(lcs / cand.len() as f64, lcs / reference.len() as f64)
}

/// Length of the longest common subsequence of two id sequences (ids below `alphabet`).
///
/// Bit-parallel (Allison–Dix, in Hyyrö's form): one bit per position of the shorter sequence,
/// so the textbook table's row is updated 64 cells at a time, `V' = (V + (V & M)) | (V & !M)`
/// with `M` the positions of the current symbol; the LCS is the number of zero bits at the end.
/// It runs one 64-position block at a time over the whole longer sequence, keeping each step's
/// carry for the next block, so memory stays linear however long the texts are.
fn lcs_len(a: &[u32], b: &[u32], alphabet: usize) -> usize {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut masks = vec![0u64; alphabet];
    let mut carries = vec![false; long.len()];
    let mut lcs = 0;
    for block in short.chunks(64) {
        for (bit, &s) in block.iter().enumerate() {
            if let Some(mask) = masks.get_mut(s as usize) {
                *mask |= 1 << bit;
            }
        }
        let mut v = u64::MAX;
        for (&s, carry) in long.iter().zip(carries.iter_mut()) {
            let u = v & masks.get(s as usize).copied().unwrap_or(0);
            let (sum, c1) = v.overflowing_add(u);
            let (sum, c2) = sum.overflowing_add(u64::from(*carry));
            *carry = c1 || c2;
            v = sum | (v & !u);
        }
        let valid = if block.len() == 64 {
            u64::MAX
        } else {
            (1u64 << block.len()) - 1
        };
        lcs += (!v & valid).count_ones() as usize;
        for &s in block {
            if let Some(mask) = masks.get_mut(s as usize) {
                *mask = 0;
            }
        }
    }
    lcs
}
