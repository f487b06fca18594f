//! Change-point detection (`gate::cpd`): steps found where they are, noise left alone, the
//! t distribution right.

use perfgate::gate::cpd::{self, CpdParams, change_points};
use perfgate::gate::rng::Rng;

/// `n` points around `base` with `cv` relative Gaussian noise; `steps` are (first index,
/// relative change) applied from that index on.
fn series(seed: u64, n: usize, base: f64, cv: f64, steps: &[(usize, f64)]) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let level: f64 = steps
                .iter()
                .filter(|(at, _)| i >= *at)
                .map(|(_, s)| 1.0 + s)
                .product();
            base * level * (1.0 + cv * rng.normal())
        })
        .collect()
}

#[test]
fn t_distribution_matches_published_values() {
    // Two-sided p-values from standard t tables (R: 2 * pt(-t, df)).
    let cases = [
        (2.0, 10.0, 0.073_388_1),
        (3.0, 5.0, 0.030_099_3),
        (1.0, 1.0, 0.5),
        (2.228_138_85, 10.0, 0.05),
        (0.0, 7.0, 1.0),
        (4.0, 30.0, 0.000_381_85),
    ];
    for (t, df, want) in cases {
        let got = cpd::t_two_sided_p(t, df);
        assert!(
            (got - want).abs() <= 1e-6_f64.max(want * 1e-4),
            "p(|T| >= {t}; df {df}) = {got}, want {want}"
        );
    }
    // The CDF inverts the gate's t quantile (exact closed forms below 5 df, Cornish-Fisher
    // within 0.5% above).
    for df in [1.0, 2.0, 3.0, 4.0, 8.0, 20.0, 100.0] {
        for p in [0.6, 0.9, 0.975, 0.999] {
            let q = perfgate::gate::stats::t_quantile(p, df);
            let back = cpd::t_cdf(q, df);
            assert!(
                (back - p).abs() < 2e-3,
                "df {df}: cdf(quantile({p})) = {back}"
            );
            assert!((cpd::t_cdf(-q, df) - (1.0 - p)).abs() < 2e-3);
        }
    }
    assert!((cpd::incomplete_beta(0.3, 2.0, 3.0) - 0.3483).abs() < 1e-4);
}

#[test]
fn a_clean_ten_percent_step_is_found_at_its_index() {
    for seed in 1..=5 {
        let v = series(seed, 100, 2000.0, 0.01, &[(60, -0.10)]);
        let cps = change_points(&v, &CpdParams::default());
        assert_eq!(cps.len(), 1, "seed {seed}: {cps:?}");
        let c = &cps[0];
        assert_eq!(c.index, 60, "seed {seed}: {cps:?}");
        assert!(c.pvalue < 0.001);
        assert!((c.change_pct + 10.0).abs() < 1.0, "{c:?}");
        assert!(c.mean_before > c.mean_after);
    }
}

#[test]
fn pure_noise_gives_no_change_point() {
    for seed in 100..120 {
        let v = series(seed, 100, 2000.0, 0.01, &[]);
        let cps = change_points(&v, &CpdParams::default());
        assert!(cps.is_empty(), "seed {seed}: {cps:?}");
    }
}

#[test]
fn two_steps_are_both_found() {
    let v = series(7, 150, 500.0, 0.01, &[(40, 0.08), (110, -0.12)]);
    let cps = change_points(&v, &CpdParams::default());
    let idx: Vec<usize> = cps.iter().map(|c| c.index).collect();
    assert_eq!(idx, vec![40, 110], "{cps:?}");
    assert!(cps[0].change_pct > 0.0 && cps[1].change_pct < 0.0);
}

#[test]
fn short_constant_and_non_finite_series_are_safe() {
    let p = CpdParams::default();
    // Fewer than 2 * min_segment points: nothing to split, even with a huge jump.
    assert!(change_points(&[1.0, 1.0, 9.0, 9.0, 9.0], &p).is_empty());
    assert!(change_points(&[], &p).is_empty());
    // Constant series (0.1 does not sum exactly): no change, no division by zero.
    assert!(change_points(&[0.1; 80], &p).is_empty());
    assert!(change_points(&[0.0; 80], &p).is_empty());
    // A noise-free step is still a step.
    let mut v = vec![10.0; 20];
    v.extend([12.0; 20]);
    let cps = change_points(&v, &p);
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0].index, 20);
    assert!((cps[0].change_pct - 20.0).abs() < 1e-9);
    // NaN and infinities are skipped; indices stay in the input's numbering.
    let mut v = series(3, 100, 2000.0, 0.01, &[(50, -0.1)]);
    v[10] = f64::NAN;
    v[20] = f64::INFINITY;
    let cps = change_points(&v, &p);
    assert_eq!(cps.iter().map(|c| c.index).collect::<Vec<_>>(), vec![50]);
    // Odd parameters do not panic.
    for params in [
        CpdParams { window: 0, ..p },
        CpdParams {
            window: 1,
            min_segment: 0,
            ..p
        },
        CpdParams {
            max_pvalue: f64::NAN,
            ..p
        },
        CpdParams {
            max_pvalue: 2.0,
            ..p
        },
    ] {
        let _ = change_points(&v, &params);
    }
}

#[test]
fn the_magnitude_floor_drops_small_changes() {
    let v = series(11, 100, 2000.0, 0.002, &[(50, -0.02)]);
    let found = change_points(&v, &CpdParams::default());
    assert_eq!(found.len(), 1, "{found:?}");
    let floor = CpdParams {
        min_magnitude_pct: 5.0,
        ..CpdParams::default()
    };
    assert!(change_points(&v, &floor).is_empty());
}

#[test]
fn a_step_late_in_a_long_series_is_found() {
    // The window keeps a late step from being drowned by a long stable history.
    let v = series(5, 365, 2000.0, 0.01, &[(355, -0.05)]);
    let cps = change_points(&v, &CpdParams::default());
    assert_eq!(
        cps.iter().map(|c| c.index).collect::<Vec<_>>(),
        vec![355],
        "{cps:?}"
    );
}

#[test]
fn false_change_points_in_noise_are_rare() {
    // The t-test runs after q̂ picked the best split, so its p-value is optimistic; measured:
    // 1.4% of 100-point noise series get a change point. The bound leaves room for the seed.
    let series_with_any = (1000..1500)
        .filter(|&seed| {
            !change_points(&series(seed, 100, 2000.0, 0.01, &[]), &CpdParams::default()).is_empty()
        })
        .count();
    assert!(
        series_with_any <= 15,
        "{series_with_any} of 500 noise series have a change point"
    );
}
