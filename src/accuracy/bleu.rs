//! Corpus BLEU as `sacrebleu` 2.6.0's `corpus_bleu` computes it with its defaults: the 13a
//! tokenizer, mixed case, `exp` smoothing, n-grams up to 4, one reference per candidate.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::ngram::{Interner, clipped_overlap, sorted_ngrams};
use super::{AccuracyError, is_py_space};

/// The highest n-gram order BLEU counts (sacrebleu's default).
pub const MAX_NGRAM_ORDER: usize = 4;

/// A corpus BLEU score with the statistics it was computed from (sacrebleu's `BLEUScore`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bleu {
    /// 0..=100.
    pub score: f64,
    /// Matched n-grams of each order 1..=4, clipped by the reference counts.
    pub counts: [u64; MAX_NGRAM_ORDER],
    /// Candidate n-grams of each order.
    pub totals: [u64; MAX_NGRAM_ORDER],
    /// Smoothed precisions in percent (sacrebleu leaves orders after the first one with no
    /// candidate n-grams at 0, and all of them at 0 when nothing matched).
    pub precisions: [f64; MAX_NGRAM_ORDER],
    /// Brevity penalty.
    pub bp: f64,
    /// Candidate tokens over the corpus.
    pub sys_len: u64,
    /// Reference tokens over the corpus.
    pub ref_len: u64,
    /// `sys_len / ref_len`, 0 when the references are empty.
    pub ratio: f64,
}

/// BLEU's sufficient statistics, summed over segments as they arrive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BleuStats {
    segments: usize,
    sys_len: u64,
    ref_len: u64,
    counts: [u64; MAX_NGRAM_ORDER],
    totals: [u64; MAX_NGRAM_ORDER],
}

impl BleuStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn segments(&self) -> usize {
        self.segments
    }

    /// Adds one candidate segment and its reference.
    pub fn add(&mut self, candidate: &str, reference: &str) {
        let cand_text = tokenize_13a(candidate.trim_end_matches(is_py_space));
        let ref_text = tokenize_13a(reference.trim_end_matches(is_py_space));
        // The tokenizer leaves single spaces between tokens.
        let cand_tokens: Vec<&str> = cand_text.split(' ').filter(|t| !t.is_empty()).collect();
        let ref_tokens: Vec<&str> = ref_text.split(' ').filter(|t| !t.is_empty()).collect();
        let mut ids = Interner::default();
        let cand = ids.intern_all(&cand_tokens);
        let reference = ids.intern_all(&ref_tokens);
        for n in 1..=MAX_NGRAM_ORDER {
            let cand_grams = sorted_ngrams(&cand, n);
            let ref_grams = sorted_ngrams(&reference, n);
            self.counts[n - 1] += clipped_overlap(&cand_grams, &ref_grams);
            self.totals[n - 1] += cand_grams.len() as u64;
        }
        self.sys_len += cand.len() as u64;
        self.ref_len += reference.len() as u64;
        self.segments += 1;
    }

    /// The corpus score; an error when no segment was added (sacrebleu raises then too).
    pub fn bleu(&self) -> Result<Bleu, AccuracyError> {
        if self.segments == 0 {
            return Err(AccuracyError::EmptyCorpus);
        }
        Ok(compute(
            self.counts,
            self.totals,
            self.sys_len,
            self.ref_len,
        ))
    }
}

/// `sacrebleu.corpus_bleu(candidates, [references])`: `references[i]` is the one reference of
/// `candidates[i]`. Errors when the corpus is empty or the two lengths differ (sacrebleu would
/// silently drop the unmatched tail).
pub fn corpus_bleu<C: AsRef<str>, R: AsRef<str>>(
    candidates: &[C],
    references: &[R],
) -> Result<Bleu, AccuracyError> {
    if candidates.len() != references.len() {
        return Err(AccuracyError::LengthMismatch {
            candidates: candidates.len(),
            references: references.len(),
        });
    }
    let mut stats = BleuStats::new();
    for (candidate, reference) in candidates.iter().zip(references) {
        stats.add(candidate.as_ref(), reference.as_ref());
    }
    stats.bleu()
}

/// sacrebleu's `BLEU.compute_bleu` with `exp` smoothing, step for step in the same order, so
/// the floating-point results differ at most by the rounding of `exp` and `ln`.
fn compute(
    counts: [u64; MAX_NGRAM_ORDER],
    totals: [u64; MAX_NGRAM_ORDER],
    sys_len: u64,
    ref_len: u64,
) -> Bleu {
    let mut bp = 1.0;
    if sys_len < ref_len {
        bp = if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        };
    }
    let ratio = if ref_len > 0 {
        sys_len as f64 / ref_len as f64
    } else {
        0.0
    };
    let mut precisions = [0.0; MAX_NGRAM_ORDER];
    let mut bleu = Bleu {
        score: 0.0,
        counts,
        totals,
        precisions,
        bp,
        sys_len,
        ref_len,
        ratio,
    };
    if counts.iter().all(|&c| c == 0) {
        return bleu;
    }
    // NIST's smoothing: the k-th order with no match gets precision 1 / (2^k · total).
    let mut smooth = 1.0;
    for n in 0..MAX_NGRAM_ORDER {
        if totals[n] == 0 {
            break;
        }
        precisions[n] = if counts[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * totals[n] as f64)
        } else {
            100.0 * counts[n] as f64 / totals[n] as f64
        };
    }
    // sacrebleu floors log(0) at -9999999999, which makes the score exactly 0.
    let log_sum: f64 = precisions
        .iter()
        .map(|&p| if p == 0.0 { -9_999_999_999.0 } else { p.ln() })
        .sum();
    bleu.precisions = precisions;
    bleu.score = bp * (log_sum / MAX_NGRAM_ORDER as f64).exp();
    bleu
}

/// sacrebleu's `Tokenizer13a` (mteval-v13a's tokenization) of one line: its tokens joined by
/// single spaces. BLEU strips trailing whitespace before calling it.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = Cow::Borrowed(line);
    if line.contains("<skipped>") {
        line = Cow::Owned(line.replace("<skipped>", ""));
    }
    if line.contains('\n') {
        line = Cow::Owned(line.replace("-\n", "").replace('\n', " "));
    }
    if line.contains('&') {
        line = Cow::Owned(
            line.replace("&quot;", "\"")
                .replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">"),
        );
    }
    // `([\{-\~\[-\` -\&\(-\+\:-\@\/])` → ` \1 `: ASCII punctuation except `'`, `,`, `-` and
    // `.`, which the rules below split by context. sacrebleu pads the line with a space first.
    let mut spaced = String::with_capacity(line.len() + line.len() / 2 + 2);
    spaced.push(' ');
    let mut copied = 0;
    for (i, b) in line.bytes().enumerate() {
        if matches!(b, b'{'..=b'~' | b'['..=b'`' | b' '..=b'&' | b'('..=b'+' | b':'..=b'@' | b'/') {
            spaced.push_str(&line[copied..i]);
            spaced.extend([' ', char::from(b), ' ']);
            copied = i + 1;
        }
    }
    spaced.push_str(&line[copied..]);
    spaced.push(' ');
    let digit = |b: u8| b.is_ascii_digit();
    let period_or_comma = |b: u8| b == b'.' || b == b',';
    // `([^0-9])([\.,])` → `\1 \2 `: a period or comma not after a digit.
    let pass = space_pairs(
        &spaced,
        |a, b| !digit(a) && period_or_comma(b),
        Spaces::BetweenAndAfter,
    );
    // `([\.,])([^0-9])` → ` \1 \2`: a period or comma not before a digit.
    let pass = space_pairs(
        &pass,
        |a, b| period_or_comma(a) && !digit(b),
        Spaces::BeforeAndBetween,
    );
    // `([0-9])(-)` → `\1 \2 `: a dash after a digit.
    let pass = space_pairs(&pass, |a, b| digit(a) && b == b'-', Spaces::BetweenAndAfter);
    let mut out = String::with_capacity(pass.len());
    for token in pass.split(is_py_space).filter(|t| !t.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(token);
    }
    out
}

/// Where a two-character rule inserts its two spaces around the pair `ab`.
#[derive(Clone, Copy)]
enum Spaces {
    /// `a b ` (`\1 \2 `)
    BetweenAndAfter,
    /// ` a b` (` \1 \2`)
    BeforeAndBetween,
}

/// `re.sub` of one of 13a's two-character rules. It scans left to right and, after a match,
/// resumes after its second character, so matches never overlap (`a..` matches once).
///
/// It works on bytes: every character a rule names is ASCII and the only test a non-ASCII
/// character can pass is "not a digit", which its last byte passes exactly when the character
/// does, while its other bytes are followed by continuation bytes no rule's second half
/// accepts. So the matches are those of Python's character-wise scan, and every space goes
/// next to an ASCII byte, on a character boundary.
fn space_pairs(text: &str, matches: impl Fn(u8, u8) -> bool, spaces: Spaces) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut copied = 0;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if matches(bytes[i], bytes[i + 1]) {
            let (first, second) = match spaces {
                Spaces::BetweenAndAfter => (i + 1, i + 2),
                Spaces::BeforeAndBetween => (i, i + 1),
            };
            out.push_str(&text[copied..first]);
            out.push(' ');
            out.push_str(&text[first..second]);
            out.push(' ');
            copied = second;
            i += 2;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}
