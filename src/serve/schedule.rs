//! Open-loop arrival schedules: every send time is computed before the first request, from a
//! seeded generator (Xoshiro256++: the same seed gives the same schedule on every machine and
//! rand version), then kept as absolute offsets from the level's start. A late send is then
//! visible as lag against its due time instead of shifting every later request (coordinated
//! omission), and the run's offered load is exactly the one asked for.

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, Gamma};

use super::options::Arrival;

/// Offsets in seconds from the level's start for `n` requests at `rate` per second. The first
/// request is due at 0; the gaps are rescaled so the last one is due at exactly (n−1)/rate
/// (vLLM does the same: the span, and so the offered load, no longer varies from seed to seed).
pub fn offsets(arrival: Arrival, rate: f64, n: usize, seed: u64) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    let gaps = gaps(arrival, rate, n - 1, seed);
    let total: f64 = gaps.iter().sum();
    let target = (n - 1) as f64 / rate;
    let scale = if total > 0.0 { target / total } else { 0.0 };
    let mut t = 0.0;
    let mut out = Vec::with_capacity(n);
    out.push(0.0);
    for g in gaps {
        t += g * scale;
        out.push(t);
    }
    out
}

/// Offsets for as many requests as fall before `duration_s` (no rescaling: the number of
/// requests is what the process gives).
pub fn offsets_for(arrival: Arrival, rate: f64, duration_s: f64, seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let dist = gap_distribution(arrival, rate);
    let mut out = vec![0.0];
    let mut t = 0.0;
    loop {
        t = match &dist {
            Some(d) => t + d.sample(&mut rng),
            // i/rate, not a running sum: 0.1 added ten times is below 1.0.
            None => out.len() as f64 / rate,
        };
        if t >= duration_s {
            return out;
        }
        out.push(t);
    }
}

fn gap_distribution(arrival: Arrival, rate: f64) -> Option<Gamma<f64>> {
    let shape = match arrival {
        Arrival::Constant => return None,
        Arrival::Poisson => 1.0,
        Arrival::Gamma(k) => k,
    };
    // Gamma(k, 1/(rate·k)) has mean 1/rate; k = 1 is the exponential (Poisson arrivals).
    Gamma::new(shape, 1.0 / (rate * shape)).ok()
}

fn gaps(arrival: Arrival, rate: f64, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    match gap_distribution(arrival, rate) {
        Some(d) => (0..n).map(|_| d.sample(&mut rng)).collect(),
        None => vec![1.0 / rate; n],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_is_exact_and_seeded() {
        let a = offsets(Arrival::Poisson, 4.0, 101, 7);
        assert_eq!(a.len(), 101);
        assert_eq!(a[0], 0.0);
        assert!((a[100] - 25.0).abs() < 1e-9);
        assert!(a.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(a, offsets(Arrival::Poisson, 4.0, 101, 7));
        assert_ne!(a, offsets(Arrival::Poisson, 4.0, 101, 8));
        let c = offsets(Arrival::Constant, 2.0, 3, 0);
        assert_eq!(c, vec![0.0, 0.5, 1.0]);
    }

    #[test]
    fn burstier_gamma_has_larger_gap_spread() {
        let cv = |k| {
            let o = offsets(Arrival::Gamma(k), 10.0, 5001, 1);
            let g: Vec<f64> = o.windows(2).map(|w| w[1] - w[0]).collect();
            let m = crate::serve::stats::mean(&g).unwrap();
            crate::serve::stats::std_pop(&g).unwrap() / m
        };
        // Coefficient of variation of Gamma(k) gaps is 1/sqrt(k).
        assert!((cv(1.0) - 1.0).abs() < 0.05);
        assert!((cv(0.25) - 2.0).abs() < 0.15);
    }

    #[test]
    fn duration_bounded() {
        let o = offsets_for(Arrival::Constant, 10.0, 1.0, 0);
        assert_eq!(o.len(), 10);
        assert!(o.iter().all(|t| *t < 1.0));
    }
}
