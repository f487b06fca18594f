//! The statistical gate: upstream's check, the verdicts, bad inputs, and a small simulation.

use perfgate::gate::sim::{self, Scenario, SimOptions};
use perfgate::gate::stats::{
    BaselineSource, GateError, GateParams, StoredBaseline, decide, should_rerun, t_quantile,
    upstream_check,
};
use perfgate::record::metric::Direction::{HigherIsBetter, LowerIsBetter};
use perfgate::record::{Observation, Verdict};

/// 20 nights of 3 repetitions around `center` with ~1% deterministic spread.
fn history(center: f64) -> Vec<Observation> {
    let wiggle = [
        -0.01, 0.004, 0.008, -0.006, 0.0, 0.012, -0.003, 0.005, -0.009, 0.002,
    ];
    let mut out = Vec::new();
    for night in 0..20i64 {
        for rep in 0..3usize {
            let w = wiggle[(night as usize * 3 + rep) % wiggle.len()];
            out.push(Observation {
                night,
                value: center * (1.0 + w),
            });
        }
    }
    out
}

fn params() -> GateParams {
    GateParams::default()
}

#[test]
fn upstream_check_matches_hand_computed_cases() {
    // |1000 - 1050| = 50 <= 10 + 0.1 * 1050 = 115: close.
    assert!(!upstream_check(1000.0, 1050.0, 0.1, 10.0));
    // |1000 - 800| = 200 > 10 + 80 = 90: differs (a regression).
    assert!(upstream_check(1000.0, 800.0, -0.1, 10.0));
    // An improvement fails too: |1000 - 1200| = 200 > 10 + 120 = 130.
    assert!(upstream_check(1000.0, 1200.0, -0.1, 10.0));
    // Tolerance relative to the target: |100 - 111| = 11 <= 0 + 0.1 * 111 = 11.1 ...
    assert!(!upstream_check(100.0, 111.0, 0.1, 0.0));
    // ... but relative to the base it would differ: |111 - 100| = 11 > 0.1 * 100 = 10.
    assert!(upstream_check(111.0, 100.0, 0.1, 0.0));
    // Exactly on the edge is close (numpy uses <=).
    assert!(!upstream_check(100.0, 150.0, 0.0, 50.0));
}

#[test]
fn t_quantile_is_close_to_tables() {
    for (p, df, want) in [
        (0.999, 19.0, 3.579),
        (0.999, 4.0, 7.173),
        (0.999, 1.0, 318.31),
        (0.95, 9.0, 1.833),
        (0.975, 2.0, 4.303),
        (0.999, 3.0, 10.215),
    ] {
        let got = t_quantile(p, df);
        assert!(
            (got - want).abs() / want < 0.005,
            "t({p}, {df}) = {got}, want {want}"
        );
    }
}

#[test]
fn clear_regression_fails_and_same_values_pass() {
    let h = history(1000.0);
    let r = decide(&[900.0, 902.0, 899.0], &h, HigherIsBetter, None, &params()).unwrap();
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.explanation);
    assert!(r.change_pct.unwrap() < -9.0);
    assert!(matches!(
        r.source,
        BaselineSource::History { nights: 20, .. }
    ));
    assert!(r.mde_pct.unwrap() > 1.9 && r.mde_pct.unwrap() < 5.0);

    let r = decide(
        &[1000.0, 1001.0, 999.0],
        &h,
        HigherIsBetter,
        None,
        &params(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.explanation);
    let (lo, hi) = r.interval_pct.unwrap();
    assert!(lo < 0.0 && hi > 0.0);
}

#[test]
fn large_improvement_is_improved_not_fail() {
    let h = history(1000.0);
    let r = decide(
        &[1100.0, 1102.0, 1099.0],
        &h,
        HigherIsBetter,
        None,
        &params(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Improved, "{}", r.explanation);
    assert!(r.explanation.contains("re-baseline"));
}

#[test]
fn direction_is_respected() {
    let h = history(20.0);
    // Latency up 10%: a regression.
    let up = [22.0, 22.1, 21.9];
    let r = decide(&up, &h, LowerIsBetter, None, &params()).unwrap();
    assert_eq!(r.verdict, Verdict::Fail);
    // The same numbers as a throughput: an improvement.
    let r = decide(&up, &h, HigherIsBetter, None, &params()).unwrap();
    assert_eq!(r.verdict, Verdict::Improved);
    // Throughput down 10%: a regression; as a latency, an improvement.
    let down = [18.0, 18.1, 17.9];
    assert_eq!(
        decide(&down, &h, HigherIsBetter, None, &params())
            .unwrap()
            .verdict,
        Verdict::Fail
    );
    assert_eq!(
        decide(&down, &h, LowerIsBetter, None, &params())
            .unwrap()
            .verdict,
        Verdict::Improved
    );
}

#[test]
fn one_outlying_repetition_does_not_fail_and_one_repetition_alone_is_unconfirmed() {
    let h = history(1000.0);
    let r = decide(
        &[1000.0, 700.0, 1001.0],
        &h,
        HigherIsBetter,
        None,
        &params(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.explanation);
    assert_eq!(r.reps_used, 2);
    let r = decide(&[800.0], &h, HigherIsBetter, None, &params()).unwrap();
    assert_eq!(r.verdict, Verdict::Unknown, "{}", r.explanation);
    assert!(r.explanation.contains("single repetition"));
    assert!(should_rerun(r.verdict, 0, 2));
    assert!(!should_rerun(r.verdict, 2, 2));
    assert!(!should_rerun(Verdict::Fail, 0, 2));
}

/// `history(100)` with nights 5 and 12 replaced by a mode at `factor` × 100 (a slow server
/// start, say), three agreeing repetitions each.
fn history_with_mode(factor: f64) -> Vec<Observation> {
    history(100.0)
        .into_iter()
        .map(|o| match o.night {
            5 | 12 => Observation {
                value: o.value * factor,
                ..o
            },
            _ => o,
        })
        .collect()
}

#[test]
fn a_night_like_the_historys_own_outlier_nights_is_a_mode_not_a_regression() {
    let p = params();
    let tonight = [76.0, 76.5, 75.8];
    // Never seen before: a regression.
    let fresh = decide(&tonight, &history(100.0), HigherIsBetter, None, &p).expect("gate");
    assert_eq!(fresh.verdict, Verdict::Fail, "{}", fresh.explanation);
    // The history came here twice (its outlier nights, screened out of center and noise): a
    // mode this case returns to.
    let slow = history_with_mode(0.75);
    let r = decide(&tonight, &slow, HigherIsBetter, None, &p).expect("gate");
    assert_eq!(r.verdict, Verdict::Unknown, "{}", r.explanation);
    assert!(
        r.explanation
            .contains("2 night(s) of the history were about this slow"),
        "{}",
        r.explanation
    );
    assert!(matches!(
        r.source,
        BaselineSource::History { outliers: 2, .. }
    ));
    // Far beyond the mode is new again: those nights do not hide a worse level.
    let worse = decide(&[50.0, 50.5, 49.8], &slow, HigherIsBetter, None, &p).expect("gate");
    assert_eq!(worse.verdict, Verdict::Fail, "{}", worse.explanation);
    // Nor does a mode on the other side: fast nights never excuse a slow one.
    let fast = history_with_mode(1.0 / 0.75);
    let r = decide(&tonight, &fast, HigherIsBetter, None, &p).expect("gate");
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.explanation);
    // Improvements alike: a recurring fast mode is not IMPROVED.
    let r = decide(&[133.0, 133.5, 132.8], &fast, HigherIsBetter, None, &p).expect("gate");
    assert_eq!(r.verdict, Verdict::Unknown, "{}", r.explanation);
    assert!(
        r.explanation.contains("about this fast"),
        "{}",
        r.explanation
    );
    // For a latency, the slow mode is the high one.
    let r = decide(&[133.0, 133.5, 132.8], &fast, LowerIsBetter, None, &p).expect("gate");
    assert_eq!(r.verdict, Verdict::Unknown, "{}", r.explanation);
    assert!(
        r.explanation.contains("about this slow"),
        "{}",
        r.explanation
    );
}

#[test]
fn single_repetition_without_history_falls_back_to_the_baseline() {
    let b = StoredBaseline {
        center: 1000.0,
        rel_threshold: -0.1,
        abs_threshold: 10.0,
        log_scale: None,
    };
    let r = decide(&[1030.0], &[], HigherIsBetter, Some(&b), &params()).unwrap();
    assert!(matches!(
        r.source,
        BaselineSource::StoredBaseline { history_nights: 0 }
    ));
    assert!(
        r.explanation
            .contains("falling back to the stored baseline")
    );
    assert_eq!(r.verdict, Verdict::Pass);
    assert_eq!(r.center, Some(1000.0));
    let r = decide(&[850.0], &[], HigherIsBetter, Some(&b), &params()).unwrap();
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.explanation);
}

/// Issue 20 item 12: with a stored baseline and no noise estimate, a metric derived from
/// another (SEQ_THROUGHPUT, tens of requests/s) moving by the same ratio as its source (thousands
/// of tokens/s) gets the same band and the same verdict. Upstream's absolute threshold, in the
/// metric's unit, made the band ±50% for the small numbers and ±10% for the large ones.
#[test]
fn a_stored_band_is_the_same_ratio_whatever_the_size_of_the_numbers() {
    let band = |center: f64, abs_threshold: f64, value: f64| {
        let b = StoredBaseline {
            center,
            rel_threshold: -0.1,
            abs_threshold,
            log_scale: None,
        };
        let r = decide(&[value, value], &[], HigherIsBetter, Some(&b), &params()).unwrap();
        (r.verdict, r.mde_pct.map(|m| (m * 100.0).round() / 100.0))
    };
    let tokens = band(27355.0, 10.0, 27355.0 * 0.8);
    let requests = band(19.7, 10.0, 19.7 * 0.8);
    let tiny_kv = band(0.9, 50.0, 0.9 * 0.8);
    assert_eq!(tokens, (Verdict::Fail, Some(10.0)));
    assert_eq!(requests, tokens);
    assert_eq!(tiny_kv, tokens);
    assert_eq!(band(19.7, 10.0, 19.7 * 0.95).0, Verdict::Pass);
}

#[test]
fn nothing_to_compare_with_is_new() {
    let r = decide(&[1000.0], &[], HigherIsBetter, None, &params()).unwrap();
    assert_eq!(r.verdict, Verdict::New);
    assert_eq!(r.source, BaselineSource::None);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let h = history(1000.0);
    for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0] {
        let e = decide(&[1000.0, bad], &h, HigherIsBetter, None, &params()).unwrap_err();
        assert!(matches!(e, GateError::BadValue { index: 1, .. }), "{e}");
        assert!(e.to_string().contains("finite value > 0"));
        let mut hb = h.clone();
        hb[5].value = bad;
        let e = decide(&[1000.0], &hb, HigherIsBetter, None, &params()).unwrap_err();
        assert!(matches!(e, GateError::BadValue { index: 5, .. }), "{e}");
        let b = StoredBaseline {
            center: bad,
            rel_threshold: 0.1,
            abs_threshold: 1.0,
            log_scale: None,
        };
        assert!(decide(&[1000.0], &[], HigherIsBetter, Some(&b), &params()).is_err());
    }
    assert_eq!(
        decide(&[], &h, HigherIsBetter, None, &params()).unwrap_err(),
        GateError::NoRepetitions
    );
    let p = GateParams {
        alpha: f64::NAN,
        ..params()
    };
    assert!(decide(&[1.0], &h, HigherIsBetter, None, &p).is_err());
}

#[test]
fn small_simulation_is_sane() {
    let opts = SimOptions {
        trials: 60,
        ..SimOptions::default()
    };
    let list = [
        Scenario {
            cv: 0.01,
            step: 0.10,
            reps: 3,
        },
        sim::GOAL,
    ];
    let report = sim::run_scenarios(opts, &list).unwrap();
    let big = &report.results[0];
    assert!(big.ours.detection() >= 0.95, "{report}");
    assert!(big.ours.false_alarm() <= 0.02, "{report}");
    let goal = &report.results[1];
    assert!(goal.ours.detection() >= 0.85, "{report}");
    assert!(goal.ours.detection() > goal.upstream_a.detection());
    // Same seed, same numbers.
    let again = sim::run_scenarios(opts, &list).unwrap();
    assert_eq!(again.results[1].ours.detected, goal.ours.detected);
    assert!(sim::run_scenarios(SimOptions { nights: 10, ..opts }, &list).is_err());
}
