//! Accuracy of generated text against reference outputs: exact match, ROUGE-1/2/L and corpus
//! BLEU, for serving benchmarks whose datasets carry reference outputs.
//!
//! The scores equal the Python implementations that papers and leaderboards quote, so a number
//! perfgate prints can be compared with one computed elsewhere (the self tests check 1e-6 on a
//! fixture set made by `tests/fixtures/accuracy/make_expected.py`):
//!
//! - **ROUGE** ([`rouge`]): Google's `rouge-score` 0.1.2,
//!   `rouge_scorer.RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=False).score(reference,
//!   candidate)`. Its default tokenizer lowercases (Python's `str.lower`), turns every run of
//!   characters outside ASCII `[a-z0-9]` into a space and splits, so non-ASCII letters separate
//!   words and never match (the two non-ASCII characters whose lowercase form is ASCII, `İ` and
//!   the Kelvin sign, become `i` and `k` as they do in Python). ROUGE-L is the sentence-level LCS
//!   score (`rougeL`, not `rougeLsum`). An empty token list on either side scores 0.
//! - **BLEU** ([`corpus_bleu`]): `sacrebleu` 2.6.0, `sacrebleu.corpus_bleu(candidates,
//!   [references])` with its defaults: the `13a` tokenizer (mteval-v13a, as WMT), mixed case,
//!   `exp` smoothing (NIST's), n-grams up to 4, the brevity penalty over the whole corpus, the
//!   score on a 0–100 scale. One reference per candidate.
//! - **Exact match** ([`exact_match`]): equal after stripping surrounding whitespace, Python's
//!   `candidate.strip() == reference.strip()`.
//!
//! "Whitespace" here is always Python's (`str.split()`, `str.strip()`), which is Unicode's
//! `White_Space` plus the ASCII separators U+001C..U+001F, because both references split that way.
//!
//! Every score is linear in the texts' lengths (n-grams are counted by sorting packed keys)
//! except ROUGE-L's LCS, which takes n·m/64 word steps (bit-parallel) and linear memory.

mod bleu;
mod ngram;
mod rouge;

pub use bleu::{Bleu, BleuStats, MAX_NGRAM_ORDER, corpus_bleu, tokenize_13a};
pub use rouge::{Rouge, RougeScore, rouge, rouge_tokens};

use serde::{Deserialize, Serialize};

/// Why a corpus-level score could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccuracyError {
    #[error("a corpus score needs at least one candidate/reference pair; got none")]
    EmptyCorpus,
    #[error(
        "every candidate needs exactly one reference: got {candidates} candidates and \
         {references} references"
    )]
    LengthMismatch {
        candidates: usize,
        references: usize,
    },
}

/// Whether `candidate` equals `reference` once surrounding whitespace is stripped from both
/// (Python's `candidate.strip() == reference.strip()`).
///
/// Stripping, and nothing more, because a completions endpoint commonly returns a leading space
/// (the first token's) and a trailing newline (before a stop sequence) that are artefacts of
/// tokenization, while any change inside the text, case and punctuation included, is exactly
/// what an accuracy gate on a serving stack must catch. Looser, task-specific normalisations
/// (SQuAD's articles and punctuation) belong to the task, and ROUGE already measures overlap.
pub fn exact_match(candidate: &str, reference: &str) -> bool {
    candidate.trim_matches(is_py_space) == reference.trim_matches(is_py_space)
}

/// Python's `str.isspace()`: Unicode `White_Space` plus U+001C..U+001F (bidirectional class B or
/// S), which `char::is_whitespace` leaves out. Spelled out so a Unicode update of either side
/// cannot move it silently.
pub(crate) fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// The scores of one candidate against its reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairScores {
    pub exact_match: bool,
    pub rouge: Rouge,
}

/// Corpus-level accuracy: means of the per-pair scores and corpus BLEU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracySummary {
    pub pairs: usize,
    /// The fraction of pairs that match exactly, 0..=1.
    pub exact_match: f64,
    /// Mean ROUGE F1s over the pairs (a plain mean, not `rouge-score`'s bootstrap aggregate,
    /// whose "mid" is a median of resampled means and varies with its seed).
    pub rouge1: f64,
    pub rouge2: f64,
    pub rouge_l: f64,
    pub bleu: Bleu,
}

/// Accumulates pairs as a run produces them, so per-request scores can be written as the run
/// goes and the summary needs no second pass over the texts.
#[derive(Debug, Clone, Default)]
pub struct AccuracyTally {
    pairs: usize,
    exact: usize,
    rouge1: f64,
    rouge2: f64,
    rouge_l: f64,
    bleu: BleuStats,
}

impl AccuracyTally {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scores one pair, adds it to the corpus, and returns its own scores.
    pub fn add(&mut self, candidate: &str, reference: &str) -> PairScores {
        let scores = PairScores {
            exact_match: exact_match(candidate, reference),
            rouge: rouge(candidate, reference),
        };
        self.pairs += 1;
        self.exact += usize::from(scores.exact_match);
        self.rouge1 += scores.rouge.rouge1.f1;
        self.rouge2 += scores.rouge.rouge2.f1;
        self.rouge_l += scores.rouge.rouge_l.f1;
        self.bleu.add(candidate, reference);
        scores
    }

    pub fn pairs(&self) -> usize {
        self.pairs
    }

    /// The summary of every pair added so far; an error when there is none, since a mean and a
    /// corpus BLEU of nothing mean nothing.
    pub fn summary(&self) -> Result<AccuracySummary, AccuracyError> {
        let bleu = self.bleu.bleu()?;
        let n = self.pairs as f64;
        Ok(AccuracySummary {
            pairs: self.pairs,
            exact_match: self.exact as f64 / n,
            rouge1: self.rouge1 / n,
            rouge2: self.rouge2 / n,
            rouge_l: self.rouge_l / n,
            bleu,
        })
    }
}

/// The corpus summary of `(candidate, reference)` pairs: mean exact match, mean ROUGE F1s and
/// corpus BLEU.
pub fn summarize<C: AsRef<str>, R: AsRef<str>>(
    pairs: &[(C, R)],
) -> Result<AccuracySummary, AccuracyError> {
    let mut tally = AccuracyTally::new();
    for (candidate, reference) in pairs {
        tally.add(candidate.as_ref(), reference.as_ref());
    }
    tally.summary()
}
