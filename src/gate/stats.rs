//! The noise-aware verdict for one case and metric, and upstream's fixed-threshold check.
//!
//! Pure functions: numbers in, a [`GateResult`] out. No I/O; the history store and the JUnit
//! writer call in here.
//!
//! # The method (reference: gating-and-roofline §4b)
//!
//! **Logs.** Every value is compared as `ln(value)`. A regression is then a ratio, the same 3%
//! whether a throughput is 50 or 50,000 tokens/s, thresholds are symmetric (a 3% drop and a 3%
//! rise are equally far from the center), and benchmark noise, which is multiplicative
//! (log-normal), becomes additive and roughly normal.
//!
//! **Noise from history, robustly.** The history is one summary per night (the mean of that
//! night's repetitions after dropping repetitions far from the night's median). Its center and
//! spread come from the most recent `max_history` nights: the median and `1.4826·MAD` find
//! the outlier nights (a broken machine, a half-applied driver update: more than
//! `outlier_k` robust scales from the median), which are dropped; the center and scale are then
//! the mean and standard deviation of the nights that are left. MAD alone would be robust but
//! only ~37% efficient, so at 20 nights its scale is as uncertain as an SD from 7 nights and the
//! threshold would have to be much wider; screening with MAD and estimating with the SD of what
//! is clean gets both. The scale is split into a between-night part and a within-night part
//! (from repetitions of the same night, estimated from pairwise differences, which have no
//! center to estimate), so a night with more repetitions (a rerun) gets a tighter interval.
//! Both are floored at `sigma_floor` (0.5% by default), as asv's `sigma_0` and chromeperf's
//! `min_relative_change` do: a perfectly quiet history does not make a 0.1% change significant.
//!
//! **The decision.** Let `d` be tonight's summary minus the center, signed so that positive is
//! worse (a throughput falling, a latency rising), and
//! `se = sqrt(s_between² + s_within²/n + s_night²/N)` its standard error (tonight's own noise
//! plus the uncertainty of the center from N nights).
//! - **FAIL** when `d > ln(1 + effect_floor)` (the change is practically relevant) **and**
//!   `d > t(1−α, N−1)·se` (a one-sided prediction interval: with a stable history, a night with
//!   no change crosses it with probability α). With α = 1e-3 per comparison, a nightly list of
//!   1,000 gated case-metrics expects about one false alarm a night before confirmation, and a
//!   single case-metric about one every three years.
//! - **IMPROVED** symmetrically (a large, significant improvement): "re-baseline suggested",
//!   never a failure (upstream fails improvements too; we do not).
//! - A FAIL needs two repetitions that agree (within `outlier_k` within-night scales): a
//!   single repetition cannot tell a regression from a hiccup (a noisy neighbour, a clock dip),
//!   which on GPUs is as large as a real regression. One repetition, or two that disagree,
//!   give UNKNOWN and a rerun; with three or more, the outlying one is dropped.
//! - **PASS** only when the upper end of the two-sided `1 − 2β` interval (90%) on `d` is below
//!   this case's detection threshold `max(floor, t·se)`: no regression this case can detect is
//!   there. Requiring it below the floor itself would make a case whose noise exceeds the
//!   floor UNKNOWN every night; its MDE says instead what it can and cannot catch.
//! - A FAIL (or IMPROVED) needs tonight to be new: when a night of the history, the screened
//!   outlier nights included, was beyond the threshold on the same side and within one
//!   threshold of tonight, the case has a mode it returns to (a slow server start one night in
//!   ten, as measured on a real llama.cpp server) that the normal model cannot see; UNKNOWN
//!   ([`RECURRING_NIGHTS`]). A worse level than the mode, or a mode on the other side, still
//!   fails.
//! - **UNKNOWN** otherwise: not enough evidence either way; rerun (see [`should_rerun`]).
//!
//! The minimum detectable effect reported per case is `max(floor, t·se)`: a true change of that
//! size fails about half the time on one night, larger ones more often.
//!
//! **Fallback.** With fewer than `min_history` nights, a stored baseline (center, and upstream's
//! relative/absolute thresholds, optionally a stored scale) is used instead, and the result says
//! so. With no stored scale the noise is unknown, so the decision is upstream-like: beyond
//! `max(floor, relative threshold)` fails, within passes, and the explanation says the noise
//! could not be estimated. (Upstream's absolute threshold is not used here: changes are ratios,
//! and an absolute tolerance as a ratio depends on the size of the numbers.) No history and no
//! baseline: NEW.
//!
//! Not done here (the history store's job): choosing the history "since the last acknowledged
//! change point" with the same environment fingerprint, and confirming a provisional FAIL on a
//! second night or by change-point detection.

use serde::Serialize;

use crate::record::metric::Direction;
pub use crate::record::{Observation, Verdict};
use crate::textutil::display_num;

/// Upstream's L0 check (`sanity_perf_check.py`): `numpy.isclose(base, target, rtol, atol)` is
/// false, i.e. `|base − target| > atol + rtol·|target|`, with the thresholds taken as absolute
/// values. True means "differs", which upstream reports as a failure in either direction: a big
/// improvement fails exactly like a regression. The tolerance is relative to the *target*, as
/// numpy's is, not to the baseline.
pub fn upstream_check(base: f64, target: f64, rel: f64, abs: f64) -> bool {
    // NaN compares false everywhere, and numpy.isclose(NaN, x) is false, i.e. "differs".
    let close = (base - target).abs() <= abs.abs() + rel.abs() * target.abs();
    !close
}

/// A stored baseline (a `base_perf.csv` row, or a re-baselining record).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StoredBaseline {
    pub center: f64,
    /// Upstream's relative threshold (its sign is ignored, as upstream's check ignores it).
    pub rel_threshold: f64,
    pub abs_threshold: f64,
    /// The noise scale (SD of ln values per night) and the nights it came from, when the
    /// baseline was stored by a re-baselining that knew them (§4b item 4).
    pub log_scale: Option<(f64, usize)>,
}

/// Tuning of the default gate. [`GateParams::default`] is what `perfgate` uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GateParams {
    /// Smallest relative change that matters (0.02 = 2%).
    pub effect_floor: f64,
    /// One-sided false-alarm probability per comparison for FAIL and IMPROVED.
    pub alpha: f64,
    /// One-sided miss probability allowed for PASS (PASS = the 1 − β upper bound is below
    /// the floor).
    pub beta: f64,
    /// Floor on the per-run noise scale (SD of ln values).
    pub sigma_floor: f64,
    /// Nights of history needed before history is used instead of a stored baseline.
    pub min_history: usize,
    /// Most recent nights of history used.
    pub max_history: usize,
    /// A night (or repetition) more than this many robust scales from the median is an
    /// outlier.
    pub outlier_k: f64,
    /// A history noisier than this (SD of ln nightly values) is "unstable": reported, never
    /// failed.
    pub unstable_scale: f64,
}

impl Default for GateParams {
    fn default() -> Self {
        GateParams {
            effect_floor: 0.02,
            alpha: 1e-3,
            beta: 0.05,
            sigma_floor: 0.005,
            min_history: 5,
            max_history: 30,
            outlier_k: 4.0,
            unstable_scale: 0.08,
        }
    }
}

impl GateParams {
    /// The defaults with the effect floor that suits `metric`: 2% for throughputs and mean or
    /// median latencies, 5% for tail latencies (p90/p99 are noisier and matter less per
    /// night), 10% for memory, sizes and build times (coarse, and rarely noisy).
    pub fn for_metric(metric: &str) -> GateParams {
        let floor = if metric.starts_with("P9") || metric.contains("_P9") {
            0.05
        } else if metric.contains("MEMORY")
            || metric.contains("SIZE")
            || metric.starts_with("BUILD")
        {
            0.10
        } else {
            0.02
        };
        GateParams {
            effect_floor: floor,
            ..GateParams::default()
        }
    }
}

/// Where the center came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineSource {
    /// The last `nights` accepted nights of history (`outliers` of them dropped).
    History {
        nights: usize,
        outliers: usize,
    },
    /// The stored baseline, because history had only `history_nights` nights.
    StoredBaseline {
        history_nights: usize,
    },
    /// Only a few nights of history and no stored baseline.
    ShortHistory {
        nights: usize,
    },
    None,
}

/// What the gate decided, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateResult {
    pub verdict: Verdict,
    /// Tonight's value relative to the center, in % of the metric (positive = the value rose).
    pub change_pct: Option<f64>,
    /// Two-sided `1 − 2β` (90% by default) interval on `change_pct`, when the noise is known.
    pub interval_pct: Option<(f64, f64)>,
    /// `d / se` (positive = worse), when the noise is known.
    pub t_stat: Option<f64>,
    /// The smallest change that fails about half the time on one night, in %.
    pub mde_pct: Option<f64>,
    /// The center compared against, in the metric's unit.
    pub center: Option<f64>,
    pub source: BaselineSource,
    /// Per-night noise scale used (SD of ln values ≈ CV), when known.
    pub noise: Option<f64>,
    /// Repetitions of tonight that were used (after dropping outliers).
    pub reps_used: usize,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GateError {
    #[error("no repetitions: the gate needs at least one value of tonight's run")]
    NoRepetitions,
    #[error(
        "{what} #{index} is {value}: expected a finite value > 0 (a metric that can be 0 or negative cannot be compared as a ratio)"
    )]
    BadValue {
        what: &'static str,
        index: usize,
        value: f64,
    },
    #[error("gate parameter `{name}` is {value}: {expected}")]
    BadParameter {
        name: &'static str,
        value: f64,
        expected: &'static str,
    },
}

/// Tonight is only a FAIL (or IMPROVED) when fewer than this many nights of the history, the
/// screened outliers included, were beyond the threshold on the same side and within one
/// threshold of tonight: a bimodal or heavy-tailed case (a slow server start one night in ten,
/// measured on real llama.cpp noise) keeps returning to such values, and the normal model that
/// sets the threshold cannot see that.
pub const RECURRING_NIGHTS: usize = 1;

/// A FAIL or IMPROVED night followed by this many nights that were neither (nor INVALID or
/// ENV_CHANGED) was a blip: its values join the history again as the noise they were (the
/// history store's series query applies it). A regression keeps failing and stays out.
pub const BLIP_CLEAR_NIGHTS: usize = 2;

/// Should an UNKNOWN be rerun? Only an UNKNOWN, and only while the `--max-reruns` budget lasts:
/// PASS, FAIL and IMPROVED are already decided, NEW has nothing to compare with.
pub fn should_rerun(verdict: Verdict, reruns_done: u32, max_reruns: u32) -> bool {
    verdict == Verdict::Unknown && reruns_done < max_reruns
}

/// The default gate. `reps`: tonight's repetitions (1–5 usually); `history`: earlier nights
/// of the same case and metric, any order, several values per night allowed.
pub fn decide(
    reps: &[f64],
    history: &[Observation],
    direction: Direction,
    baseline: Option<&StoredBaseline>,
    params: &GateParams,
) -> Result<GateResult, GateError> {
    check_params(params)?;
    if reps.is_empty() {
        return Err(GateError::NoRepetitions);
    }
    let reps = logs("repetition", reps.iter().copied())?;
    let hist_logs = logs("history value", history.iter().map(|o| o.value))?;
    if let Some(b) = baseline {
        check_baseline(b)?;
    }
    // Positive d means worse.
    let worse = match direction {
        Direction::HigherIsBetter => -1.0,
        Direction::LowerIsBetter => 1.0,
    };
    let floor = (1.0 + params.effect_floor).ln();

    // Group history by night, the most recent `max_history` nights.
    let mut order: Vec<(i64, f64)> = history.iter().map(|o| o.night).zip(hist_logs).collect();
    order.sort_by_key(|p| p.0);
    let mut nights: Vec<Vec<f64>> = Vec::new();
    let mut last_night = None;
    for (night, v) in order {
        if last_night == Some(night) {
            if let Some(cur) = nights.last_mut() {
                cur.push(v);
            }
        } else {
            nights.push(vec![v]);
            last_night = Some(night);
        }
    }
    if nights.len() > params.max_history {
        nights.drain(..nights.len() - params.max_history);
    }

    if nights.len() >= params.min_history {
        return Ok(from_history(&reps, &nights, worse, floor, params));
    }
    if let Some(b) = baseline {
        return Ok(from_baseline(&reps, nights.len(), b, worse, floor, params));
    }
    if nights.is_empty() {
        return Ok(GateResult {
            verdict: Verdict::New,
            change_pct: None,
            interval_pct: None,
            t_stat: None,
            mde_pct: None,
            center: None,
            source: BaselineSource::None,
            noise: None,
            reps_used: reps.len(),
            explanation: "NEW: no history and no stored baseline to compare with; this run \
                          starts the history"
                .into(),
        });
    }
    // A few nights only: report the change, decide nothing.
    let within = within_scale(&nights, &reps, params.sigma_floor);
    let (tonight, used, _) = night_summary(&reps, within, params.outlier_k);
    let summaries: Vec<f64> = nights
        .iter()
        .map(|n| night_summary(n, within, params.outlier_k).0)
        .collect();
    let center = median(&summaries);
    let change = pct(tonight - center);
    Ok(GateResult {
        verdict: Verdict::Unknown,
        change_pct: Some(change),
        interval_pct: None,
        t_stat: None,
        mde_pct: None,
        center: Some(center.exp()),
        source: BaselineSource::ShortHistory {
            nights: nights.len(),
        },
        noise: None,
        reps_used: used,
        explanation: format!(
            "UNKNOWN: {change:+.2}% against the median of only {} night(s) of history and no \
             stored baseline; {} nights are needed to estimate the noise",
            nights.len(),
            params.min_history
        ),
    })
}

fn from_history(
    reps: &[f64],
    nights: &[Vec<f64>],
    worse: f64,
    floor: f64,
    p: &GateParams,
) -> GateResult {
    let within = within_scale(nights, reps, p.sigma_floor);
    let summaries: Vec<f64> = nights
        .iter()
        .map(|n| night_summary(n, within, p.outlier_k).0)
        .collect();
    // Screen with median/MAD, estimate with mean/SD of what is left (see the module docs).
    let med = median(&summaries);
    let mad_scale = (1.4826 * median_abs_dev(&summaries, med)).max(p.sigma_floor / 2.0);
    let clean: Vec<f64> = summaries
        .iter()
        .copied()
        .filter(|v| (v - med).abs() <= p.outlier_k * mad_scale)
        .collect();
    let outliers = summaries.len() - clean.len();
    let n_hist = clean.len();
    let center = mean(&clean);
    let typical_reps = {
        let mut counts: Vec<f64> = nights.iter().map(|n| n.len() as f64).collect();
        median_in_place(&mut counts).max(1.0)
    };
    let night_sd = sd(&clean, center)
        .max(mad_scale.min(p.sigma_floor))
        .max(p.sigma_floor / typical_reps.sqrt());
    let between_var = (night_sd * night_sd - within * within / typical_reps).max(0.0);

    let (tonight, used, agree) = night_summary(reps, within, p.outlier_k);
    let d = worse * (tonight - center);
    let se =
        (between_var + within * within / used as f64 + night_sd * night_sd / n_hist as f64).sqrt();
    let df = (n_hist.saturating_sub(1)).max(1) as f64;
    let t_fail = t_quantile(1.0 - p.alpha, df);
    let t_pass = t_quantile(1.0 - p.beta, df);
    let band = t_fail * se;
    let threshold = floor.max(band);
    let t_stat = d / se;
    let lo = worse * (d - t_pass * se);
    let hi = worse * (d + t_pass * se);
    let interval = (pct(lo.min(hi)), pct(lo.max(hi)));
    let unstable = night_sd > p.unstable_scale;

    let unconfirmed = d > threshold && !agree;
    // Nights of the history (screened outliers included) that were beyond the threshold on
    // tonight's side and within one threshold of tonight: a mode this case returns to.
    let like_tonight = if d.abs() > threshold {
        summaries
            .iter()
            .map(|s| worse * (s - center))
            .filter(|di| di.abs() > threshold && di.signum() == d.signum())
            .filter(|di| (di - d).abs() <= threshold)
            .count()
    } else {
        0
    };
    let recurring = like_tonight >= RECURRING_NIGHTS;
    let verdict = if unstable || unconfirmed || recurring {
        Verdict::Unknown
    } else if d > threshold {
        Verdict::Fail
    } else if -d > threshold {
        Verdict::Improved
    } else if d + t_pass * se < threshold {
        Verdict::Pass
    } else {
        Verdict::Unknown
    };
    let change = pct(tonight - center);
    let mde = pct(threshold);
    let what = format!(
        "{change:+.2}% vs the mean of {n_hist} nights of history{} (noise {:.2}% per night, \
         {:.0}% interval {:+.2}%..{:+.2}%, t = {t_stat:.2}); this case can detect {mde:.2}% \
         (floor {:.1}%)",
        if outliers > 0 {
            format!(", {outliers} outlier night(s) dropped")
        } else {
            String::new()
        },
        night_sd * 100.0,
        (1.0 - 2.0 * p.beta) * 100.0,
        interval.0,
        interval.1,
        p.effect_floor * 100.0,
    );
    let explanation = match verdict {
        Verdict::Fail => format!("FAIL: regression of {what}"),
        Verdict::Improved => format!("IMPROVED: re-baseline suggested; {what}"),
        Verdict::Pass => format!(
            "PASS: a regression this case can detect ({mde:.2}% or more) is ruled out; {what}"
        ),
        _ if unstable => format!(
            "UNKNOWN: the history is unstable (noise {:.1}% > {:.1}%), reported but not \
             gated; {what}",
            night_sd * 100.0,
            p.unstable_scale * 100.0
        ),
        _ if unconfirmed => format!(
            "UNKNOWN: looks like a regression, but {}: a hiccup cannot be told from a \
             regression on one value; rerun to confirm; {what}",
            if used == 1 {
                "it rests on a single repetition"
            } else {
                "the repetitions disagree"
            }
        ),
        _ if recurring => format!(
            "UNKNOWN: {like_tonight} night(s) of the history were about this {} (beyond the \
             threshold, within it of tonight): a mode this case returns to (a slow start, a \
             busy neighbour), not a new level; {what}",
            if d > 0.0 { "slow" } else { "fast" },
        ),
        _ => format!("UNKNOWN: not enough evidence either way, rerun to decide; {what}"),
    };
    GateResult {
        verdict,
        change_pct: Some(change),
        interval_pct: Some(interval),
        t_stat: Some(t_stat),
        mde_pct: Some(mde),
        center: Some(center.exp()),
        source: BaselineSource::History {
            nights: n_hist,
            outliers,
        },
        noise: Some(night_sd),
        reps_used: used,
        explanation,
    }
}

fn from_baseline(
    reps: &[f64],
    history_nights: usize,
    b: &StoredBaseline,
    worse: f64,
    floor: f64,
    p: &GateParams,
) -> GateResult {
    let center = b.center.ln();
    let source = BaselineSource::StoredBaseline { history_nights };
    let why = format!(
        "falling back to the stored baseline {} because history has {history_nights} of the {} \
         nights needed",
        display_num(b.center),
        p.min_history
    );
    let mut within = if reps.len() >= 2 {
        pairwise_scale(&[reps.to_vec()]).unwrap_or(0.0)
    } else {
        0.0
    };
    within = within.max(p.sigma_floor);
    let (tonight, used, _) = night_summary(reps, within, p.outlier_k);
    let d = worse * (tonight - center);
    let change = pct(tonight - center);
    if let Some((scale, n_base)) = b.log_scale {
        let scale = scale.max(p.sigma_floor);
        let se = scale * (1.0 / used as f64 + 1.0 / n_base.max(1) as f64).sqrt();
        let df = n_base.saturating_sub(1).max(1) as f64;
        let t_fail = t_quantile(1.0 - p.alpha, df);
        let t_pass = t_quantile(1.0 - p.beta, df);
        let threshold = floor.max(t_fail * se);
        let verdict = if d > threshold {
            Verdict::Fail
        } else if -d > threshold {
            Verdict::Improved
        } else if d + t_pass * se < threshold {
            Verdict::Pass
        } else {
            Verdict::Unknown
        };
        let lo = worse * (d - t_pass * se);
        let hi = worse * (d + t_pass * se);
        return GateResult {
            verdict,
            change_pct: Some(change),
            interval_pct: Some((pct(lo.min(hi)), pct(lo.max(hi)))),
            t_stat: Some(d / se),
            mde_pct: Some(pct(threshold)),
            center: Some(b.center),
            source,
            noise: Some(scale),
            reps_used: used,
            explanation: format!(
                "{verdict}: {change:+.2}% ({why}, with its stored noise {:.2}% from {n_base} \
                 nights); this case can detect {:.2}%",
                scale * 100.0,
                pct(threshold)
            ),
        };
    }
    // No noise estimate: upstream's relative threshold as a fixed band, at least the effect
    // floor. Its absolute threshold is left out: it is in the metric's unit, sized for
    // upstream's own cases, so as a ratio it depends on how big the numbers are. A derived
    // metric (SEQ_THROUGHPUT = tokens/s x GPUs / output length) moves by exactly the ratio its
    // source moves by, but its smaller numbers turned atol 10 into a ±50% band; a 63 ms
    // INFERENCE_TIME got ±89% from atol 50 ms. `--gate upstream` still applies it as upstream does.
    let stored = (1.0 + b.rel_threshold.abs()).ln();
    let threshold = floor.max(stored);
    let verdict = if d > threshold {
        Verdict::Fail
    } else if -d > threshold {
        Verdict::Improved
    } else {
        Verdict::Pass
    };
    GateResult {
        verdict,
        change_pct: Some(change),
        interval_pct: None,
        t_stat: None,
        mde_pct: Some(pct(threshold)),
        center: Some(b.center),
        source,
        noise: None,
        reps_used: used,
        explanation: format!(
            "{verdict}: {change:+.2}% against a band of ±{:.2}% ({why}; the noise of this case \
             is unknown, so noise and signal cannot be told apart: a provisional verdict)",
            pct(threshold)
        ),
    }
}

fn check_params(p: &GateParams) -> Result<(), GateError> {
    let bad = |name, value, expected| {
        Err(GateError::BadParameter {
            name,
            value,
            expected,
        })
    };
    let unit = |x: f64| x.is_finite() && x > 0.0 && x < 0.5;
    if !(p.effect_floor.is_finite() && p.effect_floor >= 0.0) {
        return bad("effect_floor", p.effect_floor, "a finite fraction >= 0");
    }
    if !unit(p.alpha) {
        return bad("alpha", p.alpha, "a probability in (0, 0.5)");
    }
    if !unit(p.beta) {
        return bad("beta", p.beta, "a probability in (0, 0.5)");
    }
    if !(p.sigma_floor.is_finite() && p.sigma_floor > 0.0) {
        return bad("sigma_floor", p.sigma_floor, "a finite scale > 0");
    }
    if !(p.outlier_k.is_finite() && p.outlier_k > 1.0) {
        return bad("outlier_k", p.outlier_k, "a finite number > 1");
    }
    if p.min_history < 3 || p.max_history < p.min_history {
        return bad(
            "min_history",
            p.min_history as f64,
            "at least 3, and max_history at least min_history",
        );
    }
    if !(p.unstable_scale.is_finite() && p.unstable_scale > 0.0) {
        return bad("unstable_scale", p.unstable_scale, "a finite scale > 0");
    }
    Ok(())
}

fn check_baseline(b: &StoredBaseline) -> Result<(), GateError> {
    let bad = |index, value| GateError::BadValue {
        what: "stored baseline field",
        index,
        value,
    };
    if !(b.center.is_finite() && b.center > 0.0) {
        return Err(bad(0, b.center));
    }
    if !b.rel_threshold.is_finite() {
        return Err(bad(1, b.rel_threshold));
    }
    if !b.abs_threshold.is_finite() {
        return Err(bad(2, b.abs_threshold));
    }
    if let Some((s, _)) = b.log_scale
        && !(s.is_finite() && s >= 0.0)
    {
        return Err(bad(3, s));
    }
    Ok(())
}

fn logs(what: &'static str, values: impl Iterator<Item = f64>) -> Result<Vec<f64>, GateError> {
    values
        .enumerate()
        .map(|(index, value)| {
            if value.is_finite() && value > 0.0 {
                Ok(value.ln())
            } else {
                Err(GateError::BadValue { what, index, value })
            }
        })
        .collect()
}

/// The within-night (repetition) noise: pooled from every night with several repetitions,
/// tonight included, floored.
fn within_scale(nights: &[Vec<f64>], reps: &[f64], floor: f64) -> f64 {
    let mut all: Vec<Vec<f64>> = nights.iter().filter(|n| n.len() >= 2).cloned().collect();
    if reps.len() >= 2 {
        all.push(reps.to_vec());
    }
    pairwise_scale(&all).unwrap_or(floor).max(floor)
}

/// Robust SD from pairwise differences within groups: the median of |a − b| over pairs of the
/// same night is 0.6745·√2·σ for normal noise, and needs no center (which at n = 3 would
/// itself be noisy).
fn pairwise_scale(groups: &[Vec<f64>]) -> Option<f64> {
    let mut diffs = Vec::new();
    for g in groups {
        for (i, a) in g.iter().enumerate() {
            for b in &g[i + 1..] {
                diffs.push((a - b).abs());
            }
        }
    }
    if diffs.is_empty() {
        return None;
    }
    Some(median_in_place(&mut diffs) / (0.674_489_75 * std::f64::consts::SQRT_2))
}

/// One night's value: the mean of its repetitions, dropping those more than `k` within-night
/// scales from their median (a hiccup in one repetition should not move the night). Returns
/// the value, how many repetitions were kept, and whether at least two of them agree (a
/// FAIL needs that: see [`decide`]).
fn night_summary(logs: &[f64], within: f64, k: f64) -> (f64, usize, bool) {
    match logs {
        [] => (f64::NAN, 0, false),
        [one] => (*one, 1, false),
        // With two values there is no telling which one is off, only whether they agree.
        [a, b] => (
            (a + b) / 2.0,
            2,
            (a - b).abs() <= k * within * std::f64::consts::SQRT_2,
        ),
        _ => {
            let med = median(logs);
            let kept: Vec<f64> = logs
                .iter()
                .copied()
                .filter(|v| (v - med).abs() <= k * within)
                .collect();
            if kept.is_empty() {
                (med, 1, false)
            } else {
                (mean(&kept), kept.len(), kept.len() >= 2)
            }
        }
    }
}

fn pct(log_ratio: f64) -> f64 {
    (log_ratio.exp() - 1.0) * 100.0
}

pub(crate) fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Sample standard deviation around `m` (0 below two values).
pub(crate) fn sd(v: &[f64], m: f64) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut w = v.to_vec();
    median_in_place(&mut w)
}

fn median_in_place(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn median_abs_dev(v: &[f64], center: f64) -> f64 {
    let mut d: Vec<f64> = v.iter().map(|x| (x - center).abs()).collect();
    median_in_place(&mut d)
}

/// Standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if !(p > 0.0 && p < 1.0) {
        return if p <= 0.0 {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    const P_LOW: f64 = 0.02425;
    if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// Student-t quantile. Exact closed forms for 1–4 degrees of freedom (where expansions are
/// poor), Cornish-Fisher (Hill 1970, four terms; < 0.5% error) from 5 on.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if !(p > 0.0 && p < 1.0 && df > 0.0) {
        return f64::NAN;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    if df < 4.5 {
        // Bisection on the closed-form CDF: monotone, and 100 steps reach machine precision.
        let k = df.round().max(1.0) as u32;
        let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
        while t_cdf_small(hi, k) < p && hi < 1e12 {
            hi *= 2.0;
        }
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if t_cdf_small(mid, k) < p {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        return 0.5 * (lo + hi);
    }
    let z = normal_quantile(p);
    let z2 = z * z;
    let g1 = (z2 + 1.0) * z / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0;
    z + g1 / df + g2 / (df * df) + g3 / df.powi(3) + g4 / df.powi(4)
}

/// Student-t CDF for 1–4 degrees of freedom (closed forms), t ≥ 0.
fn t_cdf_small(t: f64, df: u32) -> f64 {
    use std::f64::consts::PI;
    match df {
        1 => 0.5 + t.atan() / PI,
        2 => 0.5 + t / (2.0 * (2.0 + t * t).sqrt()),
        3 => {
            let x = t / 3f64.sqrt();
            0.5 + (x / (1.0 + x * x) + x.atan()) / PI
        }
        _ => {
            let u = t * t / 4.0;
            0.5 + 0.375 * (t / (1.0 + u).sqrt()) * (1.0 - u / (3.0 * (1.0 + u)))
        }
    }
}
