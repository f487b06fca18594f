//! ROUGE-1, ROUGE-2 and ROUGE-L as `rouge-score` 0.1.2 computes them with its default tokenizer
//! and no stemmer.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

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
    let mut tokens = Vec::new();
    let mut token = String::new();
    let mut take = |c: char, token: &mut String| {
        if c.is_ascii_alphanumeric() {
            token.push(c.to_ascii_lowercase());
        } else if !token.is_empty() {
            tokens.push(std::mem::take(token));
        }
    };
    for c in text.chars() {
        if c.is_ascii() {
            take(c, &mut token);
        } else {
            // Python lowercases the whole text before dropping non-ASCII characters, and two of
            // them lowercase to ASCII letters (U+0130 to "i" + U+0307, the Kelvin sign to "k").
            for lower in c.to_lowercase() {
                take(lower, &mut token);
            }
        }
    }
    take(' ', &mut token);
    tokens
}

/// ROUGE-1/2/L of `candidate` (rouge-score's `prediction`) against `reference` (its `target`).
pub fn rouge(candidate: &str, reference: &str) -> Rouge {
    let cand_tokens = rouge_tokens(candidate);
    let ref_tokens = rouge_tokens(reference);
    // Integer ids make n-gram keys and LCS comparisons cheap.
    let mut ids = HashMap::new();
    let cand = intern(&mut ids, &cand_tokens);
    let reference_ids = intern(&mut ids, &ref_tokens);
    Rouge {
        rouge1: rouge_n(&cand, &reference_ids, 1),
        rouge2: rouge_n(&cand, &reference_ids, 2),
        rouge_l: rouge_lcs(&cand, &reference_ids),
    }
}

fn intern<'a>(ids: &mut HashMap<&'a str, u32>, tokens: &'a [String]) -> Vec<u32> {
    tokens
        .iter()
        .map(|t| {
            let next = ids.len() as u32;
            *ids.entry(t.as_str()).or_insert(next)
        })
        .collect()
}

fn rouge_n(cand: &[u32], reference: &[u32], n: usize) -> RougeScore {
    // Per n-gram: (count in the reference, count in the candidate).
    let mut counts: HashMap<&[u32], (u64, u64)> = HashMap::new();
    for gram in reference.windows(n) {
        counts.entry(gram).or_default().0 += 1;
    }
    for gram in cand.windows(n) {
        counts.entry(gram).or_default().1 += 1;
    }
    let overlap: u64 = counts.values().map(|&(r, c)| r.min(c)).sum();
    let ref_count = reference.windows(n).len() as u64;
    let cand_count = cand.windows(n).len() as u64;
    // rouge-score divides by max(count, 1): no n-grams on a side scores 0, not NaN.
    RougeScore::new(
        overlap as f64 / cand_count.max(1) as f64,
        overlap as f64 / ref_count.max(1) as f64,
    )
}

fn rouge_lcs(cand: &[u32], reference: &[u32]) -> RougeScore {
    if cand.is_empty() || reference.is_empty() {
        return RougeScore::default();
    }
    let lcs = lcs_len(cand, reference) as f64;
    RougeScore::new(lcs / cand.len() as f64, lcs / reference.len() as f64)
}

/// Length of the longest common subsequence: the classic table, one row at a time over the
/// shorter sequence, so memory is linear and time is the product of the lengths.
fn lcs_len(a: &[u32], b: &[u32]) -> usize {
    let (outer, inner) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let mut row = vec![0usize; inner.len() + 1];
    for &x in outer {
        // `diag` is the previous row's value one column to the left.
        let mut diag = 0;
        for (j, &y) in inner.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { above.max(row[j]) };
            diag = above;
        }
    }
    row[inner.len()]
}
