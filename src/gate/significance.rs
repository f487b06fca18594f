//! Two runs side by side (`perfgate compare`): per case, step and metric the median of each
//! side's repetitions, the change, whether it is better or worse by the metric's direction, and
//! whether it is more than noise. Plain data in and out; loading and rendering live in
//! `perfgate compare`'s own module, above the gate.
//!
//! **Significance.** With at least 2 repetitions on both sides: Welch's t-test (unequal
//! variances, Welch–Satterthwaite degrees of freedom) on the logarithms of the values, since
//! run-to-run noise is multiplicative; on the raw values when a value is ≤ 0. An exact rank
//! test would need ≥ 4 repetitions a side to ever reach p < 0.05 (its smallest two-sided p with
//! 3 and 3 is 0.1), so the t-test is used at every n; with one repetition on a side there is
//! no spread to compare against and the row says `n/a (1 rep)`. **No significance without
//! variance**: when every repetition of both sides is the same value, the noise is unknown
//! (not zero), so no test is made and the row says `n/a (no spread)`.
//!
//! **Same.** A change smaller than [`SAME_WITHIN_PCT`] is `same`, not better or worse: the table
//! shows it as ±0.00, and a direction nobody can see in the numbers is not a finding.

use serde::Serialize;

use super::cpd;
use crate::record::metric::Direction;

/// A change with p below this is called significant.
pub const ALPHA: f64 = 0.05;

/// Changes smaller than this (in %) are `same`: half the last digit of the Δ% column, which
/// shows two decimals.
pub const SAME_WITHIN_PCT: f64 = 0.005;

/// One side's valid repetitions of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub reps: Vec<f64>,
}

/// Better, worse, or no change, by the metric's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Better,
    Worse,
    Same,
    /// The metric's direction is unknown.
    Unknown,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Better => "better",
            Effect::Worse => "worse",
            Effect::Same => "same",
            Effect::Unknown => "?",
        }
    }
}

/// The significance of a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Significance {
    /// `welch-t-log` or `welch-t`.
    pub test: &'static str,
    pub pvalue: f64,
    pub significant: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delta {
    pub a: f64,
    pub b: f64,
    pub a_reps: usize,
    pub b_reps: usize,
    /// (b − a) / a · 100.
    pub delta_pct: f64,
    pub effect: Effect,
    /// `None` when a side has fewer than 2 repetitions, or neither side varies.
    pub significance: Option<Significance>,
}

impl Delta {
    /// How much worse (positive) or better (negative) B is, in %, for sorting worst first.
    pub fn badness(&self) -> f64 {
        match self.effect {
            Effect::Worse => self.delta_pct.abs(),
            Effect::Better => -self.delta_pct.abs(),
            Effect::Same | Effect::Unknown => 0.0,
        }
    }
}

/// Compares two samples of one metric. `None` when a side has no finite value.
pub fn compare(a: &Sample, b: &Sample, direction: Option<Direction>) -> Option<Delta> {
    let fa: Vec<f64> = a.reps.iter().copied().filter(|v| v.is_finite()).collect();
    let fb: Vec<f64> = b.reps.iter().copied().filter(|v| v.is_finite()).collect();
    if fa.is_empty() || fb.is_empty() {
        return None;
    }
    let (ma, mb) = (median(&fa), median(&fb));
    let delta_pct = if ma != 0.0 {
        (mb - ma) / ma.abs() * 100.0
    } else if mb == ma {
        0.0
    } else {
        f64::INFINITY.copysign(mb)
    };
    let effect = match direction {
        None => Effect::Unknown,
        Some(_) if mb == ma || delta_pct.abs() < SAME_WITHIN_PCT => Effect::Same,
        Some(Direction::HigherIsBetter) if mb > ma => Effect::Better,
        Some(Direction::LowerIsBetter) if mb < ma => Effect::Better,
        Some(_) => Effect::Worse,
    };
    let significance = if fa.len() >= 2 && fb.len() >= 2 {
        let positive = fa.iter().chain(&fb).all(|&v| v > 0.0);
        let (xa, xb, test) = if positive {
            (
                fa.iter().map(|v| v.ln()).collect::<Vec<_>>(),
                fb.iter().map(|v| v.ln()).collect::<Vec<_>>(),
                "welch-t-log",
            )
        } else {
            (fa.clone(), fb.clone(), "welch-t")
        };
        welch_p(&xa, &xb).map(|pvalue| Significance {
            test,
            pvalue,
            significant: pvalue < ALPHA,
        })
    } else {
        None
    };
    Some(Delta {
        a: ma,
        b: mb,
        a_reps: fa.len(),
        b_reps: fb.len(),
        delta_pct,
        effect,
        significance,
    })
}

/// Two-sided p-value of Welch's t-test (both sides ≥ 2 values); `None` when neither side
/// varies: the noise is then unknown, not zero, and no difference can be tested against it.
pub fn welch_p(a: &[f64], b: &[f64]) -> Option<f64> {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (m1, m2) = (mean(a), mean(b));
    let var = |v: &[f64], m: f64| {
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() as f64 - 1.0)
    };
    let (s1, s2) = (var(a, m1) / n1, var(b, m2) / n2);
    let se2 = s1 + s2;
    let scale = m1.abs().max(m2.abs()).max(1.0);
    if se2.is_nan() || se2.sqrt() <= 1e-12 * scale {
        return None;
    }
    let t = (m2 - m1) / se2.sqrt();
    let df = se2 * se2 / (s1 * s1 / (n1 - 1.0) + s2 * s2 / (n2 - 1.0));
    Some(cpd::t_two_sided_p(t, df))
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

pub fn median(v: &[f64]) -> f64 {
    let mut w = v.to_vec();
    w.sort_by(f64::total_cmp);
    let n = w.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        w[n / 2]
    } else {
        (w[n / 2 - 1] + w[n / 2]) / 2.0
    }
}
