//! Simulated nightly histories, to measure how well a gate separates regressions from noise
//! (`perfgate dev bench-gate`), with simulated noise or, with `--noise FILE`, noise resampled
//! from repetitions measured on real machines ([`super::real_noise`]).
//!
//! **The model.** One case, one higher-is-better metric (`TOKEN_THROUGHPUT`, ~2000 tokens/s).
//! Each night runs `reps` repetitions: `value = base · exp(level(night) + σ·z + hiccup)`, with
//! - log-normal noise, σ = √ln(1 + CV²), CV from the scenario;
//! - slow drift: `level` is a random walk with 0.1% steps per night (driver, thermal, rack
//!   changes nobody announces);
//! - occasional outliers: 2% of repetitions are 5–30% slow (a noisy neighbour, a clock dip);
//! - a step regression of `step` (1–10%) from a night S drawn uniformly in the test window.
//!
//! **The rates, precisely.** The first `history` nights are history only. Nights from then to
//! S − 1 are *null test nights*: an alarm there is a false alarm, and the false-alarm rate is
//! alarms / null test nights over all trials. A trial's regression is *detected* when the
//! method alarms on night S or S + 1 (the night of the step, or the one after, a rerun of the
//! nightly included); detection rate = detected trials / trials. For our gate an alarm is a
//! FAIL after at most `max_reruns` reruns of an UNKNOWN (each rerun adds `reps` more
//! repetitions of the same night); UNKNOWN nights are counted separately.
//!
//! **The methods, on the same values.**
//! - ours: [`super::stats::decide`] with [`GateParams::for_metric`], history = every earlier
//!   night's repetitions;
//! - upstream A (`sanity_perf_check.py`, §6.2): the mean of tonight's repetitions against a
//!   stored baseline (the mean of the last history night, never updated, as a `base_perf.csv`
//!   row is not), `isclose` with the metric's upstream thresholds; it alarms in both
//!   directions, as upstream does;
//! - upstream B (the OpenSearch regression system, §6.3): daily mean, trailing 3-night rolling
//!   mean, P95 of those over the last 90 nights as the baseline (this metric is maximized), a
//!   regression when tonight's daily mean is below baseline · (1 − 5%).

use std::fmt;

use super::real_noise::{NoiseSeries, NoiseShape, Resampler};
use super::rng::Rng;
use super::stats::{self, GateParams};
use crate::record::metric::{self, Direction};
use crate::record::{Observation, Verdict};

/// The metric simulated: upstream has a threshold for it and it is the one upstream's newer
/// system gates by default.
pub const METRIC: &str = "TOKEN_THROUGHPUT";
pub(crate) const BASE_VALUE: f64 = 2000.0;
pub(crate) const DRIFT_PER_NIGHT: f64 = 0.001;
pub(crate) const OUTLIER_RATE: f64 = 0.02;
pub(crate) const OUTLIER_RANGE: (f64, f64) = (0.05, 0.30);
const B_WINDOW_NIGHTS: usize = 90;
const B_THRESHOLD: f64 = 0.05;

/// The goal: ≥ 95% detection of a 3% step at CV 1% with 3 repetitions (≥ 20 nights of
/// history), ≤ 1% false alarms per test-night in every scenario, and more detections than both
/// upstream methods on the goal scenario.
pub const GOAL: Scenario = Scenario {
    cv: 0.01,
    step: 0.03,
    reps: 3,
};
pub const GOAL_DETECTION: f64 = 0.95;
pub const GOAL_FALSE_ALARMS: f64 = 0.01;

#[derive(Debug, Clone, Copy)]
pub struct SimOptions {
    /// Nights per simulated series (history + test window).
    pub nights: usize,
    /// Leading nights that are history only.
    pub history: usize,
    /// Series per scenario.
    pub trials: usize,
    pub seed: u64,
    /// Reruns our gate may spend on an UNKNOWN.
    pub max_reruns: u32,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            nights: 60,
            history: 20,
            trials: 400,
            seed: 20_240_601,
            max_reruns: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scenario {
    pub cv: f64,
    pub step: f64,
    pub reps: usize,
}

/// Counts for one method in one scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    pub detected: u64,
    pub trials: u64,
    pub false_alarms: u64,
    pub null_nights: u64,
    /// Nights (null or not) that ended UNKNOWN (ours only).
    pub unknown: u64,
    pub nights: u64,
    /// Repetitions run, reruns included.
    pub runs: u64,
}

impl Rates {
    pub fn detection(&self) -> f64 {
        self.detected as f64 / self.trials.max(1) as f64
    }
    pub fn false_alarm(&self) -> f64 {
        self.false_alarms as f64 / self.null_nights.max(1) as f64
    }
    /// The detection a method would score by alarming at random at its false-alarm rate: the
    /// step night or the next alarms, `1 − (1 − FA)²`. A detection near it is luck.
    pub fn chance_detection(&self) -> f64 {
        1.0 - (1.0 - self.false_alarm()).powi(2)
    }
    pub fn unknown_rate(&self) -> f64 {
        self.unknown as f64 / self.nights.max(1) as f64
    }
    pub fn runs_per_night(&self) -> f64 {
        self.runs as f64 / self.nights.max(1) as f64
    }
}

#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    pub ours: Rates,
    pub upstream_a: Rates,
    pub upstream_b: Rates,
}

#[derive(Debug, Clone)]
pub struct SimReport {
    pub options: SimOptions,
    /// The metric gated (its direction, floor and upstream thresholds apply).
    pub metric: String,
    /// With real noise: where it came from and what it looks like.
    pub real_noise: Option<(String, NoiseShape)>,
    pub results: Vec<ScenarioResult>,
}

/// Where a night's noise comes from.
#[derive(Clone, Copy)]
enum Noise<'a> {
    /// Log-normal with the scenario's CV, plus synthetic outliers.
    Synthetic,
    /// Consecutive residuals of a real series (no synthetic outliers: it has its own).
    Real(&'a Resampler),
}

/// The steps injected into real noise, each at 3 repetitions, and the 3% step at 1 and 5.
pub const REAL_STEPS: [f64; 3] = [0.03, 0.05, 0.10];

/// The scenarios of the table: every CV × step at 3 repetitions, and 1 and 5 repetitions on
/// the goal's CV and step.
pub fn scenarios() -> Vec<Scenario> {
    let mut out = Vec::new();
    for cv in [0.005, 0.01, 0.02, 0.05] {
        for step in [0.01, 0.03, 0.05, 0.10] {
            out.push(Scenario { cv, step, reps: 3 });
        }
    }
    for reps in [1, 5] {
        out.push(Scenario { reps, ..GOAL });
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(
        "--nights {nights} leaves no test window after --history {history} (need nights >= history + 2, history >= 5)"
    )]
    Window { nights: usize, history: usize },
    #[error("--trials must be at least 1")]
    NoTrials,
    #[error("the simulated gate failed: {0}")]
    Gate(#[from] stats::GateError),
    #[error("--noise-metric {0}: not a metric perfgate knows (see docs/reference/metrics.md)")]
    Metric(String),
}

pub fn run(options: SimOptions) -> Result<SimReport, SimError> {
    run_scenarios(options, &scenarios())
}

pub fn run_scenarios(options: SimOptions, list: &[Scenario]) -> Result<SimReport, SimError> {
    run_with(
        options,
        list,
        METRIC,
        Direction::HigherIsBetter,
        Noise::Synthetic,
        None,
    )
}

/// The table on real noise: [`REAL_STEPS`] at 3 repetitions and the 3% step at 1 and 5, the
/// gate's parameters, direction and upstream thresholds those of `metric`.
pub fn run_real(
    options: SimOptions,
    series: &NoiseSeries,
    metric: &str,
) -> Result<SimReport, SimError> {
    let def = metric::metric(metric).ok_or_else(|| SimError::Metric(metric.to_string()))?;
    let shape = series.describe();
    let mut list: Vec<Scenario> = REAL_STEPS
        .iter()
        .map(|&step| Scenario {
            cv: shape.within_cv,
            step,
            reps: 3,
        })
        .collect();
    for reps in [1, 5] {
        list.push(Scenario {
            cv: shape.within_cv,
            step: REAL_STEPS[0],
            reps,
        });
    }
    let resampler = Resampler::new(series);
    run_with(
        options,
        &list,
        def.name,
        def.direction,
        Noise::Real(&resampler),
        Some((series.source.clone(), shape)),
    )
}

fn run_with(
    options: SimOptions,
    list: &[Scenario],
    metric: &str,
    direction: Direction,
    noise: Noise<'_>,
    real_noise: Option<(String, NoiseShape)>,
) -> Result<SimReport, SimError> {
    if options.history < 5 || options.nights < options.history + 2 {
        return Err(SimError::Window {
            nights: options.nights,
            history: options.history,
        });
    }
    if options.trials == 0 {
        return Err(SimError::NoTrials);
    }
    let mut results = Vec::with_capacity(list.len());
    for (i, sc) in list.iter().enumerate() {
        // One stream per scenario, so adding a scenario does not change the others.
        let mut rng = Rng::new(options.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        results.push(run_one(&options, sc, metric, direction, noise, &mut rng)?);
    }
    Ok(SimReport {
        options,
        metric: metric.to_string(),
        real_noise,
        results,
    })
}

fn run_one(
    o: &SimOptions,
    sc: &Scenario,
    metric: &str,
    direction: Direction,
    noise: Noise<'_>,
    rng: &mut Rng,
) -> Result<ScenarioResult, SimError> {
    let params = GateParams::for_metric(metric);
    // Upstream A's thresholds: the metric's own, else TOKEN_THROUGHPUT's (upstream has
    // thresholds for few metrics).
    let (rel, abs) = metric::metric(metric)
        .and_then(|m| m.upstream_threshold)
        .or_else(|| metric::metric(METRIC).and_then(|m| m.upstream_threshold))
        .unwrap_or((0.1, 10.0));
    let sigma = (1.0 + sc.cv * sc.cv).ln().sqrt();
    // A regression: a throughput falls by `step`, a latency rises by it.
    let step_log = match direction {
        Direction::HigherIsBetter => (1.0 - sc.step).ln(),
        Direction::LowerIsBetter => (1.0 + sc.step).ln(),
    };
    let mut res = ScenarioResult {
        scenario: *sc,
        ours: Rates::default(),
        upstream_a: Rates::default(),
        upstream_b: Rates::default(),
    };
    for _ in 0..o.trials {
        let step_night = o.history + rng.below((o.nights - 1 - o.history) as u64) as usize;
        let last = step_night + 1;
        let mut level = 0.0;
        let mut history: Vec<Observation> = Vec::new();
        // FAIL or IMPROVED nights waiting for the nights after them: (values, clean nights
        // since).
        let mut pending: Vec<(Vec<Observation>, usize)> = Vec::new();
        let mut daily_means: Vec<f64> = Vec::new();
        let mut stored_a = BASE_VALUE;
        let (mut ours_hit, mut a_hit, mut b_hit) = (false, false, false);
        for night in 0..=last {
            level += DRIFT_PER_NIGHT * rng.normal();
            let shift = if night >= step_night { step_log } else { 0.0 };
            let mut cursor = match noise {
                Noise::Real(r) => Some(r.night(rng)),
                Noise::Synthetic => None,
            };
            let mut draw = |rng: &mut Rng| {
                let x = match (noise, cursor.as_mut()) {
                    (Noise::Real(r), Some(c)) => level + shift + r.next(c),
                    _ => {
                        let mut x = level + shift + sigma * rng.normal();
                        if rng.uniform() < OUTLIER_RATE {
                            // Slow: a throughput falls, a latency rises.
                            let hit = OUTLIER_RANGE.0
                                + (OUTLIER_RANGE.1 - OUTLIER_RANGE.0) * rng.uniform();
                            x -= match direction {
                                Direction::HigherIsBetter => hit,
                                Direction::LowerIsBetter => -hit,
                            };
                        }
                        x
                    }
                };
                BASE_VALUE * x.exp()
            };
            let mut reps: Vec<f64> = (0..sc.reps).map(|_| draw(rng)).collect();
            let night_mean = reps.iter().sum::<f64>() / reps.len() as f64;
            // As the history store does: a night the gate failed (or found improved) stays
            // out of the history until the nights after it clear it as a blip.
            let mut accepted = true;
            if night >= o.history {
                let is_null = night < step_night;
                // Ours, with reruns of an UNKNOWN.
                let mut reruns = 0;
                let verdict = loop {
                    let r = stats::decide(&reps, &history, direction, None, &params)?;
                    if stats::should_rerun(r.verdict, reruns, o.max_reruns) {
                        reruns += 1;
                        reps.extend((0..sc.reps).map(|_| draw(rng)));
                        continue;
                    }
                    break r.verdict;
                };
                accepted = !matches!(verdict, Verdict::Fail | Verdict::Improved);
                let ours_alarm = verdict == Verdict::Fail;
                let a_alarm = stats::upstream_check(stored_a, night_mean, rel, abs);
                let b_alarm = upstream_b_alarm(&daily_means, night_mean, direction);
                let tally = |r: &mut Rates, alarm: bool, hit: &mut bool, runs: usize| {
                    r.nights += 1;
                    r.runs += runs as u64;
                    if is_null {
                        r.null_nights += 1;
                        r.false_alarms += u64::from(alarm);
                    } else if alarm {
                        *hit = true;
                    }
                };
                tally(&mut res.ours, ours_alarm, &mut ours_hit, reps.len());
                res.ours.unknown += u64::from(verdict == Verdict::Unknown);
                tally(&mut res.upstream_a, a_alarm, &mut a_hit, sc.reps);
                tally(&mut res.upstream_b, b_alarm, &mut b_hit, sc.reps);
            }
            if night + 1 == o.history {
                stored_a = night_mean;
            }
            daily_means.push(night_mean);
            let night_index = night as i64;
            let observations = reps.iter().map(|&value| Observation {
                night: night_index,
                value,
            });
            if accepted {
                history.extend(observations);
                // Each pending blip has one more clean night after it; with enough, it was
                // noise and its values join the history.
                for (_, clean) in pending.iter_mut() {
                    *clean += 1;
                }
                let (done, wait): (Vec<_>, Vec<_>) = pending
                    .drain(..)
                    .partition(|(_, clean)| *clean >= stats::BLIP_CLEAR_NIGHTS);
                pending = wait;
                history.extend(done.into_iter().flat_map(|(obs, _)| obs));
            } else {
                // A second bad night: the earlier ones were not blips.
                pending.clear();
                pending.push((observations.collect(), 0));
            }
        }
        for (r, hit) in [
            (&mut res.ours, ours_hit),
            (&mut res.upstream_a, a_hit),
            (&mut res.upstream_b, b_hit),
        ] {
            r.trials += 1;
            r.detected += u64::from(hit);
        }
    }
    Ok(res)
}

/// Upstream's §6.3 rule: P95 (a maximized metric) or P5 (a minimized one) of the trailing
/// 3-night rolling means of the daily means over the last 90 nights; a regression below
/// baseline · (1 − 5%), or above baseline · (1 + 5%).
fn upstream_b_alarm(daily_means: &[f64], tonight: f64, direction: Direction) -> bool {
    let window = &daily_means[daily_means.len().saturating_sub(B_WINDOW_NIGHTS)..];
    if window.len() < 3 {
        return false;
    }
    let mut rolling: Vec<f64> = window
        .windows(3)
        .map(|w| w.iter().sum::<f64>() / 3.0)
        .collect();
    match direction {
        Direction::HigherIsBetter => {
            tonight < percentile_linear(&mut rolling, 0.95) * (1.0 - B_THRESHOLD)
        }
        Direction::LowerIsBetter => {
            tonight > percentile_linear(&mut rolling, 0.05) * (1.0 + B_THRESHOLD)
        }
    }
}

/// numpy's default (linear) percentile.
fn percentile_linear(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// The goal's outcome.
#[derive(Debug, Clone)]
pub struct GoalCheck {
    pub passed: bool,
    pub lines: Vec<String>,
}

impl SimReport {
    pub fn goal(&self) -> GoalCheck {
        let mut lines = Vec::new();
        let mut passed = true;
        match self.results.iter().find(|r| r.scenario == GOAL) {
            Some(r) => {
                let d = r.ours.detection();
                let ok = d >= GOAL_DETECTION;
                passed &= ok;
                lines.push(format!(
                    "detection of a 3% step at CV 1%, 3 reps, {} nights of history: {:.1}% (goal >= {:.0}%): {}",
                    self.options.history,
                    d * 100.0,
                    GOAL_DETECTION * 100.0,
                    ok_word(ok)
                ));
                let better = d > r.upstream_a.detection() && d > r.upstream_b.detection();
                passed &= better;
                lines.push(format!(
                    "better than upstream there: ours {:.1}% vs A {:.1}%, B {:.1}%: {}",
                    d * 100.0,
                    r.upstream_a.detection() * 100.0,
                    r.upstream_b.detection() * 100.0,
                    ok_word(better)
                ));
            }
            None => {
                passed = false;
                lines.push("the goal scenario was not simulated: FAIL".into());
            }
        }
        if self.options.history < 20 {
            passed = false;
            lines.push(format!(
                "the goal needs >= 20 nights of history, --history is {}: FAIL",
                self.options.history
            ));
        }
        let worst = self
            .results
            .iter()
            .map(|r| (r.ours.false_alarm(), r.scenario))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((fa, sc)) = worst {
            let ok = fa <= GOAL_FALSE_ALARMS;
            passed &= ok;
            lines.push(format!(
                "worst false-alarm rate per test-night, all scenarios: {:.2}% (CV {:.1}%, {} reps; goal <= {:.0}%): {}",
                fa * 100.0,
                sc.cv * 100.0,
                sc.reps,
                GOAL_FALSE_ALARMS * 100.0,
                ok_word(ok)
            ));
        }
        GoalCheck { passed, lines }
    }
}

impl SimReport {
    /// The real-noise table's reading: per step at 3 repetitions, who detects it, and the worst
    /// false-alarm rate of each method.
    pub fn real_lines(&self) -> Vec<String> {
        // "ours x%, upstream A y%, upstream B z%" of one rate.
        let three = |r: &ScenarioResult, f: fn(&Rates) -> f64| {
            format!(
                "ours {:.1}%, upstream A {:.1}%, upstream B {:.1}%",
                f(&r.ours) * 100.0,
                f(&r.upstream_a) * 100.0,
                f(&r.upstream_b) * 100.0
            )
        };
        let mut lines = Vec::new();
        for r in self.results.iter().filter(|r| r.scenario.reps == 3) {
            lines.push(format!(
                "{:.0}% step, 3 reps: {} detected",
                r.scenario.step * 100.0,
                three(r, Rates::detection)
            ));
        }
        let worst =
            |f: fn(&ScenarioResult) -> f64| self.results.iter().map(f).fold(0.0, f64::max) * 100.0;
        lines.push(format!(
            "worst false alarms per null test-night: ours {:.2}% (goal <= {:.0}%), upstream A {:.2}%, upstream B {:.2}%",
            worst(|r| r.ours.false_alarm()),
            GOAL_FALSE_ALARMS * 100.0,
            worst(|r| r.upstream_a.false_alarm()),
            worst(|r| r.upstream_b.false_alarm())
        ));
        // A "detection" no better than alarming at the false-alarm rate on either night.
        if let Some(r) = self
            .results
            .iter()
            .find(|r| r.scenario.reps == 3 && r.scenario.step == REAL_STEPS[0])
        {
            lines.push(format!(
                "chance (alarming at the FA rate on the step night or the next, {:.0}% step, 3 reps): {}",
                r.scenario.step * 100.0,
                three(r, Rates::chance_detection)
            ));
        }
        lines
    }
}

fn ok_word(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "{} trials x {} nights ({} history) per scenario, seed {}, ours with <= {} rerun(s); metric {}",
            o.trials, o.nights, o.history, o.seed, o.max_reruns, self.metric
        )?;
        if let Some((source, shape)) = &self.real_noise {
            writeln!(f, "real noise from {source}: {shape}")?;
            writeln!(
                f,
                "CV% = the within-session CV; nights draw consecutive repetitions of one session"
            )?;
        }
        writeln!(
            f,
            "det = regression alarmed on the step night or the next; FA = false alarms per null test-night"
        )?;
        writeln!(
            f,
            "{:>5} {:>5} {:>4} | {:>6} {:>6} {:>6} {:>5} | {:>6} {:>6} | {:>6} {:>6}",
            "CV%", "step%", "reps", "det", "FA", "UNK", "runs", "A det", "A FA", "B det", "B FA"
        )?;
        for r in &self.results {
            let s = r.scenario;
            writeln!(
                f,
                "{:>5.1} {:>5.0} {:>4} | {:>5.1}% {:>5.2}% {:>5.1}% {:>5.2} | {:>5.1}% {:>5.2}% | {:>5.1}% {:>5.2}%",
                s.cv * 100.0,
                s.step * 100.0,
                s.reps,
                r.ours.detection() * 100.0,
                r.ours.false_alarm() * 100.0,
                r.ours.unknown_rate() * 100.0,
                r.ours.runs_per_night(),
                r.upstream_a.detection() * 100.0,
                r.upstream_a.false_alarm() * 100.0,
                r.upstream_b.detection() * 100.0,
                r.upstream_b.false_alarm() * 100.0,
            )?;
        }
        Ok(())
    }
}
