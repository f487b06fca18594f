//! Accuracy scores equal the Python reference packages (rouge-score, sacrebleu) to 1e-6 on the
//! fixture set that `tests/fixtures/accuracy/make_expected.py` made with them, and keep the
//! properties the definitions promise on arbitrary text.

use perfgate::accuracy::{
    self, AccuracyError, AccuracyTally, Bleu, BleuStats, RougeScore, corpus_bleu, exact_match,
    rouge, rouge_tokens, summarize, tokenize_13a,
};
use proptest::prelude::*;
use serde::Deserialize;

const TOLERANCE: f64 = 1e-6;

#[derive(Deserialize)]
struct Fixture {
    versions: Versions,
    cases: Vec<Case>,
    corpora: Vec<Corpus>,
}

#[derive(Deserialize)]
struct Versions {
    #[serde(rename = "rouge-score")]
    rouge_score: String,
    sacrebleu: String,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    candidate: String,
    reference: String,
    exact_match: bool,
    rouge_tokens: Sides<Vec<String>>,
    tokens_13a: Sides<String>,
    rouge1: ExpectedRouge,
    rouge2: ExpectedRouge,
    rouge_l: ExpectedRouge,
    bleu: ExpectedBleu,
}

#[derive(Deserialize)]
struct Sides<T> {
    candidate: T,
    reference: T,
}

#[derive(Deserialize)]
struct ExpectedRouge {
    precision: f64,
    recall: f64,
    f1: f64,
}

#[derive(Deserialize)]
struct ExpectedBleu {
    score: f64,
    counts: Vec<u64>,
    totals: Vec<u64>,
    precisions: Vec<f64>,
    bp: f64,
    sys_len: u64,
    ref_len: u64,
    ratio: f64,
}

#[derive(Deserialize)]
struct Corpus {
    name: String,
    cases: Vec<String>,
    bleu: ExpectedBleu,
    exact_match: f64,
    rouge1: f64,
    rouge2: f64,
    rouge_l: f64,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/accuracy/expected.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Python's `str.isspace()`, for the `rstrip()` sacrebleu applies before tokenizing.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= TOLERANCE
}

fn check_rouge(errors: &mut Vec<String>, what: &str, got: RougeScore, want: &ExpectedRouge) {
    for (field, g, w) in [
        ("precision", got.precision, want.precision),
        ("recall", got.recall, want.recall),
        ("f1", got.f1, want.f1),
    ] {
        if !close(g, w) {
            errors.push(format!("{what} {field}: got {g}, rouge-score has {w}"));
        }
    }
}

fn check_bleu(errors: &mut Vec<String>, what: &str, got: &Bleu, want: &ExpectedBleu) {
    for (field, g, w) in [
        ("score", got.score, want.score),
        ("bp", got.bp, want.bp),
        ("ratio", got.ratio, want.ratio),
    ] {
        if !close(g, w) {
            errors.push(format!("{what} {field}: got {g}, sacrebleu has {w}"));
        }
    }
    for (n, (g, w)) in got.precisions.iter().zip(&want.precisions).enumerate() {
        if !close(*g, *w) {
            errors.push(format!(
                "{what} precision {}: got {g}, sacrebleu has {w}",
                n + 1
            ));
        }
    }
    if got.counts.as_slice() != want.counts || got.totals.as_slice() != want.totals {
        errors.push(format!(
            "{what} counts/totals: got {:?}/{:?}, sacrebleu has {:?}/{:?}",
            got.counts, got.totals, want.counts, want.totals
        ));
    }
    if (got.sys_len, got.ref_len) != (want.sys_len, want.ref_len) {
        errors.push(format!(
            "{what} sys_len/ref_len: got {}/{}, sacrebleu has {}/{}",
            got.sys_len, got.ref_len, want.sys_len, want.ref_len
        ));
    }
}

fn assert_none(errors: Vec<String>) {
    assert!(
        errors.is_empty(),
        "{} mismatches:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn fixture_was_made_by_the_pinned_reference_versions() {
    let f = fixture();
    // The module documents these versions; a regenerated fixture from others must update both.
    assert_eq!(f.versions.rouge_score, "0.1.2");
    assert_eq!(f.versions.sacrebleu, "2.6.0");
    assert!(f.cases.len() >= 50, "only {} cases", f.cases.len());
    let hand_written = f.cases.iter().filter(|c| !c.name.starts_with("random_"));
    assert!(hand_written.count() >= 50);
}

#[test]
fn tokenizers_equal_the_reference_tokenizers() {
    let mut errors = Vec::new();
    for c in fixture().cases {
        for (side, text, rouge_want, bleu_want) in [
            (
                "candidate",
                &c.candidate,
                &c.rouge_tokens.candidate,
                &c.tokens_13a.candidate,
            ),
            (
                "reference",
                &c.reference,
                &c.rouge_tokens.reference,
                &c.tokens_13a.reference,
            ),
        ] {
            let got = rouge_tokens(text);
            if &got != rouge_want {
                errors.push(format!(
                    "{} {side} rouge tokens of {text:?}: got {got:?}, rouge-score has {rouge_want:?}",
                    c.name
                ));
            }
            // sacrebleu strips trailing whitespace before its tokenizer.
            let got = tokenize_13a(text.trim_end_matches(py_space));
            if &got != bleu_want {
                errors.push(format!(
                    "{} {side} 13a tokens of {text:?}: got {got:?}, sacrebleu has {bleu_want:?}",
                    c.name
                ));
            }
        }
    }
    assert_none(errors);
}

#[test]
fn pair_scores_equal_rouge_score_and_sacrebleu() {
    let mut errors = Vec::new();
    for c in fixture().cases {
        let got = rouge(&c.candidate, &c.reference);
        check_rouge(
            &mut errors,
            &format!("{} rouge1", c.name),
            got.rouge1,
            &c.rouge1,
        );
        check_rouge(
            &mut errors,
            &format!("{} rouge2", c.name),
            got.rouge2,
            &c.rouge2,
        );
        check_rouge(
            &mut errors,
            &format!("{} rougeL", c.name),
            got.rouge_l,
            &c.rouge_l,
        );
        match corpus_bleu(&[c.candidate.as_str()], &[c.reference.as_str()]) {
            Ok(b) => check_bleu(&mut errors, &format!("{} bleu", c.name), &b, &c.bleu),
            Err(e) => errors.push(format!("{} bleu: {e}", c.name)),
        }
        if exact_match(&c.candidate, &c.reference) != c.exact_match {
            errors.push(format!(
                "{} exact match: Python's strip() comparison says {}",
                c.name, c.exact_match
            ));
        }
    }
    assert_none(errors);
}

#[test]
fn corpus_scores_equal_sacrebleu_and_the_mean_rouge() {
    let f = fixture();
    let mut errors = Vec::new();
    for corpus in &f.corpora {
        let pairs: Vec<(&str, &str)> = corpus
            .cases
            .iter()
            .map(|name| {
                let c = f.cases.iter().find(|c| &c.name == name);
                let c =
                    c.unwrap_or_else(|| panic!("corpus {} names unknown case {name}", corpus.name));
                (c.candidate.as_str(), c.reference.as_str())
            })
            .collect();
        let (cands, refs): (Vec<&str>, Vec<&str>) = pairs.iter().copied().unzip();
        match corpus_bleu(&cands, &refs) {
            Ok(b) => check_bleu(
                &mut errors,
                &format!("{} bleu", corpus.name),
                &b,
                &corpus.bleu,
            ),
            Err(e) => errors.push(format!("{} bleu: {e}", corpus.name)),
        }
        let summary = match summarize(&pairs) {
            Ok(s) => s,
            Err(e) => {
                errors.push(format!("{} summary: {e}", corpus.name));
                continue;
            }
        };
        assert_eq!(summary.pairs, pairs.len());
        check_bleu(
            &mut errors,
            &format!("{} summary bleu", corpus.name),
            &summary.bleu,
            &corpus.bleu,
        );
        for (field, g, w) in [
            ("exact_match", summary.exact_match, corpus.exact_match),
            ("rouge1", summary.rouge1, corpus.rouge1),
            ("rouge2", summary.rouge2, corpus.rouge2),
            ("rouge_l", summary.rouge_l, corpus.rouge_l),
        ] {
            if !close(g, w) {
                errors.push(format!(
                    "{} mean {field}: got {g}, Python has {w}",
                    corpus.name
                ));
            }
        }
    }
    assert_none(errors);
}

#[test]
fn the_tally_scores_each_pair_and_sums_up_to_summarize() {
    let f = fixture();
    let pairs: Vec<(&str, &str)> = f
        .cases
        .iter()
        .map(|c| (c.candidate.as_str(), c.reference.as_str()))
        .collect();
    let mut tally = AccuracyTally::new();
    for (c, r) in &pairs {
        let scores = tally.add(c, r);
        assert_eq!(scores.rouge, rouge(c, r));
        assert_eq!(scores.exact_match, exact_match(c, r));
    }
    assert_eq!(tally.pairs(), pairs.len());
    assert_eq!(tally.summary(), summarize(&pairs));
}

#[test]
fn corpus_errors_say_what_was_wrong() {
    let none: [&str; 0] = [];
    assert_eq!(corpus_bleu(&none, &none), Err(AccuracyError::EmptyCorpus));
    assert_eq!(BleuStats::new().bleu(), Err(AccuracyError::EmptyCorpus));
    assert_eq!(
        summarize::<&str, &str>(&[]).map(|s| s.pairs),
        Err(AccuracyError::EmptyCorpus)
    );
    let e = corpus_bleu(&["a", "b"], &["a"]);
    assert_eq!(
        e,
        Err(AccuracyError::LengthMismatch {
            candidates: 2,
            references: 1
        })
    );
    let msg = e.map(|b| b.score).unwrap_err().to_string();
    assert!(
        msg.contains("2 candidates") && msg.contains("1 references"),
        "{msg}"
    );
    // Owned strings work as well as slices of &str.
    let owned = vec![String::from("the cat sat on the mat")];
    let b = corpus_bleu(&owned, &owned).map(|b| b.score);
    // exp(ln(100)) is 100.00000000000004 in sacrebleu too.
    assert!(b.as_ref().is_ok_and(|&s| close(s, 100.0)), "{b:?}");
}

#[test]
fn exact_match_strips_surrounding_whitespace_and_nothing_else() {
    assert!(exact_match(" Paris\n", "Paris"));
    assert!(exact_match("\u{3000}Paris\u{1c}", "Paris"));
    assert!(!exact_match("paris", "Paris"));
    assert!(!exact_match("Paris.", "Paris"));
    assert!(!exact_match("Pa ris", "Paris"));
    assert!(exact_match("", " \t"));
}

/// Text from pieces that exercise both tokenizers, joined by assorted separators.
fn text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "the",
        "The",
        "cat",
        "sat",
        "mat",
        "a",
        "42",
        "3.14",
        "1,000",
        "10-20",
        "x.5",
        "e.g.",
        "don't",
        "&amp;",
        "&",
        "<skipped>",
        "-",
        ".",
        ",",
        "...",
        "!",
        "(",
        ")",
        "$",
        "%",
        "_",
        "é",
        "İ",
        "\u{212a}",
        "日本",
        "👍",
        "１２",
    ]);
    let sep = prop::sample::select(vec![" ", " ", "", "\n", "\t", "-\n", "\u{a0}", "\u{1c}"]);
    prop::collection::vec((piece, sep), 0..40)
        .prop_map(|parts| parts.into_iter().flat_map(|(p, s)| [p, s]).collect())
}

fn in_unit(s: RougeScore) -> bool {
    [s.precision, s.recall, s.f1]
        .iter()
        .all(|v| (0.0..=1.0).contains(v))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scores_stay_in_range(c in text(), r in text()) {
        let s = rouge(&c, &r);
        prop_assert!(in_unit(s.rouge1) && in_unit(s.rouge2) && in_unit(s.rouge_l), "{s:?}");
        // The LCS pairs tokens one to one, so it is at most the unigram overlap and ROUGE-L's F1
        // cannot exceed ROUGE-1's.
        prop_assert!(s.rouge_l.f1 <= s.rouge1.f1 + 1e-12, "{s:?}");
        let b = corpus_bleu(&[c.as_str()], &[r.as_str()]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!((0.0..=100.0 + 1e-9).contains(&b.score), "{b:?}");
        prop_assert!((0.0..=1.0).contains(&b.bp), "{b:?}");
        for n in 0..accuracy::MAX_NGRAM_ORDER {
            prop_assert!(b.counts[n] <= b.totals[n], "{b:?}");
        }
    }

    #[test]
    fn identical_texts_score_perfectly(t in text()) {
        prop_assert!(exact_match(&t, &t));
        let tokens = rouge_tokens(&t).len();
        let s = rouge(&t, &t);
        // A text with no ASCII letter or digit has no ROUGE tokens and scores 0 by definition.
        let full = |n: usize| if tokens >= n { 1.0 } else { 0.0 };
        prop_assert_eq!(s.rouge1.f1, full(1));
        prop_assert_eq!(s.rouge2.f1, full(2));
        prop_assert_eq!(s.rouge_l.f1, full(1));
        // Without effective order, sacrebleu's corpus BLEU needs a 4-gram to be positive.
        let b = corpus_bleu(&[t.as_str()], &[t.as_str()]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let words = tokenize_13a(t.trim_end_matches(py_space)).split(' ').filter(|w| !w.is_empty()).count();
        if words >= accuracy::MAX_NGRAM_ORDER {
            prop_assert!((b.score - 100.0).abs() < 1e-9, "{b:?}");
        } else {
            prop_assert_eq!(b.score, 0.0);
        }
    }

    #[test]
    fn rouge_l_uses_the_longest_common_subsequence(
        c in prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "d"]), 0..300),
        r in prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "e"]), 0..300),
    ) {
        // Few distinct words and lengths past several 64-token blocks: many ties and carries
        // for the bit-parallel LCS, checked against the textbook table.
        let mut table = vec![vec![0usize; r.len() + 1]; c.len() + 1];
        for i in 1..=c.len() {
            for j in 1..=r.len() {
                table[i][j] = if c[i - 1] == r[j - 1] {
                    table[i - 1][j - 1] + 1
                } else {
                    table[i - 1][j].max(table[i][j - 1])
                };
            }
        }
        let lcs = table[c.len()][r.len()];
        let s = rouge(&c.join(" "), &r.join(" "));
        if c.is_empty() || r.is_empty() {
            prop_assert_eq!(s.rouge_l, RougeScore::default());
        } else {
            prop_assert_eq!(s.rouge_l.precision, lcs as f64 / c.len() as f64);
            prop_assert_eq!(s.rouge_l.recall, lcs as f64 / r.len() as f64);
        }
    }

    #[test]
    fn swapping_sides_swaps_precision_and_recall(c in text(), r in text()) {
        let a = rouge(&c, &r);
        let b = rouge(&r, &c);
        for (x, y) in [(a.rouge1, b.rouge1), (a.rouge2, b.rouge2), (a.rouge_l, b.rouge_l)] {
            prop_assert_eq!(x.precision, y.recall);
            prop_assert_eq!(x.recall, y.precision);
            prop_assert!((x.f1 - y.f1).abs() < 1e-12);
        }
    }

    #[test]
    fn corpus_statistics_add_up_in_any_order(pairs in prop::collection::vec((text(), text()), 1..8)) {
        let mut forward = BleuStats::new();
        let mut backward = BleuStats::new();
        for (c, r) in &pairs {
            forward.add(c, r);
        }
        for (c, r) in pairs.iter().rev() {
            backward.add(c, r);
        }
        prop_assert_eq!(forward.segments(), pairs.len());
        prop_assert_eq!(forward.bleu(), backward.bleu());
    }
}
