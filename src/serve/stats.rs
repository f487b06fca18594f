//! Summary statistics as numpy computes them for upstream's tools: `np.percentile` with linear
//! interpolation, `np.std` (population, ddof 0), `np.mean`.

use serde::{Deserialize, Serialize};

/// `np.percentile(v, q)` (linear) on sorted values; `None` when empty.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = (q / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (a, b) = (sorted[lo], sorted[hi]);
    if a == b || lo == hi {
        return Some(a);
    }
    // numpy's _lerp: a + (b - a) * t, and the mirrored form for t >= 0.5, which keeps the
    // result inside [a, b] exactly; infinities (failure-aware percentiles) stay infinite.
    let t = pos - lo as f64;
    if b.is_infinite() || a.is_infinite() {
        return Some(if t > 0.0 { b } else { a });
    }
    let diff = b - a;
    Some(if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    })
}

pub fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Population standard deviation (`np.std`, ddof 0).
pub fn std_pop(v: &[f64]) -> Option<f64> {
    let m = mean(v)?;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
    Some(var.sqrt())
}

/// The summary of one metric over a level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// `(q, value)` for each requested percentile.
    pub percentiles: Vec<(f64, f64)>,
}

impl Summary {
    pub fn of(values: &[f64], qs: &[f64]) -> Summary {
        let mut sorted: Vec<f64> = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Summary {
            count: sorted.len(),
            mean: mean(&sorted),
            median: percentile_sorted(&sorted, 50.0),
            std: std_pop(&sorted),
            min: sorted.first().copied(),
            max: sorted.last().copied(),
            percentiles: qs
                .iter()
                .filter_map(|&q| percentile_sorted(&sorted, q).map(|v| (q, v)))
                .collect(),
        }
    }

    pub fn percentile(&self, q: f64) -> Option<f64> {
        self.percentiles
            .iter()
            .find(|(p, _)| (*p - q).abs() < 1e-9)
            .map(|(_, v)| *v)
    }
}

/// The name of percentile `q` in keys and labels: `99` → "p99", `99.9` → "p99.9".
pub fn pname(q: f64) -> String {
    if q.fract() == 0.0 {
        format!("p{}", q as i64)
    } else {
        format!("p{q}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_linear() {
        // np.percentile([1,2,3,4], [50, 90, 99]) = [2.5, 3.7, 3.97]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_sorted(&v, 50.0), Some(2.5));
        assert!((percentile_sorted(&v, 90.0).unwrap() - 3.7).abs() < 1e-12);
        assert!((percentile_sorted(&v, 99.0).unwrap() - 3.97).abs() < 1e-12);
        assert_eq!(percentile_sorted(&[5.0], 99.0), Some(5.0));
        assert_eq!(percentile_sorted(&[], 50.0), None);
        // np.std([1,2,3,4]) = 1.118033988749895
        assert!((std_pop(&v).unwrap() - 1.118_033_988_749_895).abs() < 1e-15);
    }

    #[test]
    fn infinities_for_failure_aware_percentiles() {
        let v = [1.0, 2.0, f64::INFINITY];
        assert_eq!(percentile_sorted(&v, 50.0), Some(2.0));
        assert_eq!(percentile_sorted(&v, 99.0), Some(f64::INFINITY));
        assert_eq!(pname(99.0), "p99");
        assert_eq!(pname(99.9), "p99.9");
    }
}
