//! The speed-up and its confidence interval, from paired blocks.
//!
//! A and B run the same prompts in adjacent blocks (A B, B A, A B, ...), so whatever drifts
//! over the run (a neighbour's load, the temperature, the clocks) hits both members of a pair
//! alike. Each pair gives one ratio `rᵢ = bᵢ / aᵢ`; noise is multiplicative, so the ratios are
//! compared as logarithms: the estimate is their geometric mean `exp(d̄)`, `d̄` the mean of
//! `ln rᵢ`, and the interval `exp(d̄ ± t(1 − α/2, k − 1) · s / √k)` with `s` the standard
//! deviation of the `ln rᵢ` over the `k` pairs, Student's t from the gate's statistics
//! ([`crate::gate::stats::t_quantile`]). With one pair there is no interval.

use serde::Serialize;

use crate::gate::stats::t_quantile;

/// A ratio of B over A with its interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratio {
    /// The geometric mean of the pairs' ratios.
    pub estimate: f64,
    /// `None` with fewer than two pairs.
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub confidence: f64,
    /// Pairs used.
    pub pairs: usize,
    /// The interval excludes 1: B differs from A at this confidence.
    pub significant: bool,
}

/// The paired ratio of `b` over `a` (pairs with a non-positive or non-finite value are left
/// out); `None` without a usable pair.
pub fn paired_ratio(pairs: &[(f64, f64)], confidence: f64) -> Option<Ratio> {
    let logs: Vec<f64> = pairs
        .iter()
        .filter(|(a, b)| a.is_finite() && b.is_finite() && *a > 0.0 && *b > 0.0)
        .map(|(a, b)| (b / a).ln())
        .collect();
    let k = logs.len();
    if k == 0 {
        return None;
    }
    let mean = logs.iter().sum::<f64>() / k as f64;
    let (ci_low, ci_high) = if k >= 2 {
        let var = logs.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / (k as f64 - 1.0);
        let alpha = 1.0 - confidence;
        let half = t_quantile(1.0 - alpha / 2.0, k as f64 - 1.0) * (var / k as f64).sqrt();
        if half.is_finite() {
            (Some((mean - half).exp()), Some((mean + half).exp()))
        } else {
            (None, None)
        }
    } else {
        (None, None)
    };
    let significant = match (ci_low, ci_high) {
        (Some(lo), Some(hi)) => lo > 1.0 || hi < 1.0,
        _ => false,
    };
    Some(Ratio {
        estimate: mean.exp(),
        ci_low,
        ci_high,
        confidence,
        pairs: k,
        significant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_mean_and_t_interval() {
        // ln ratios: ln 2, ln 2, ln 2 → exactly 2, a zero-width interval.
        let r = paired_ratio(&[(1.0, 2.0), (10.0, 20.0), (3.0, 6.0)], 0.95).unwrap();
        assert!((r.estimate - 2.0).abs() < 1e-12);
        assert!(
            (r.ci_low.unwrap() - 2.0).abs() < 1e-12 && (r.ci_high.unwrap() - 2.0).abs() < 1e-12
        );
        assert!(r.significant);
        // ln ratios 0.1 and 0.3: mean 0.2, s = 0.141421..., t(0.975, 1) = 12.7062;
        // half = 12.7062 · 0.141421 / √2 = 1.27062.
        let r = paired_ratio(&[(1.0, 0.1f64.exp()), (1.0, 0.3f64.exp())], 0.95).unwrap();
        assert!((r.estimate - 0.2f64.exp()).abs() < 1e-12);
        let lo = (0.2 - 1.270_620_473_617_47_f64).exp();
        assert!((r.ci_low.unwrap() - lo).abs() < 1e-3 * lo, "{:?}", r.ci_low);
        assert!(!r.significant, "the interval spans 1");
        // One pair: no interval; unusable values are left out.
        let r = paired_ratio(&[(2.0, 3.0), (0.0, 1.0), (f64::NAN, 1.0)], 0.95).unwrap();
        assert_eq!((r.pairs, r.ci_low, r.significant), (1, None, false));
        assert!(paired_ratio(&[], 0.95).is_none());
    }
}
