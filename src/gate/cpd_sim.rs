//! Simulated nightly series for change-point detection (`perfgate bench-cpd`): how fast
//! [`super::cpd::change_points`] runs over a dashboard's worth of series, how often it finds a
//! step where it is, and how many change points it reports where there is none.
//!
//! **The model** is [`super::sim`]'s: log-normal noise of the given CV per repetition, a slow
//! random-walk drift (0.1% per night by default, `--drift`), 2% of repetitions 5–30% slow; each night's value is
//! the median of its repetitions (what `perfgate history changes` feeds the detector). Half of
//! the series get a step regression of `step` from a night drawn uniformly in
//! [`STEP_MARGIN`, nights − `STEP_MARGIN`); the other half none.
//!
//! **The rates.** A step is *detected* when a change point in the worse direction lies within
//! ±[`TOLERANCE`] nights of it. Every other change point is a *false alarm* (in step series and
//! in flat ones alike); the drift makes some of them real but unannounced level changes, which
//! is what a nightly history looks like.

use std::time::{Duration, Instant};

use super::cpd::{CpdParams, change_points};
use super::rng::Rng;
use super::sim;

/// Steps start at least this many nights from either end.
pub const STEP_MARGIN: usize = 10;
/// How far from the true step a change point may be and still count as finding it.
pub const TOLERANCE: usize = 2;

#[derive(Debug, Clone, Copy)]
pub struct CpdSimOptions {
    pub series: usize,
    pub nights: usize,
    pub reps: usize,
    pub cv: f64,
    /// Relative size of the step regression (0.05: 5% worse).
    pub step: f64,
    /// Standard deviation of the random-walk drift per night (sim's model: 0.001).
    pub drift: f64,
    pub seed: u64,
    pub params: CpdParams,
}

#[derive(Debug, Clone)]
pub struct CpdSimReport {
    pub options: CpdSimOptions,
    /// Time spent in `change_points` only (generation excluded).
    pub detect_time: Duration,
    pub step_series: usize,
    pub detected: usize,
    pub false_alarms_step_series: usize,
    pub flat_series: usize,
    pub false_alarms_flat_series: usize,
    /// Flat series with at least one change point.
    pub flat_series_alarmed: usize,
}

impl CpdSimReport {
    pub fn series_per_s(&self) -> f64 {
        self.options.series as f64 / self.detect_time.as_secs_f64().max(1e-9)
    }
    pub fn detection(&self) -> f64 {
        self.detected as f64 / self.step_series.max(1) as f64
    }
    /// False change points per series, over all series.
    pub fn false_alarms_per_series(&self) -> f64 {
        (self.false_alarms_step_series + self.false_alarms_flat_series) as f64
            / self.options.series.max(1) as f64
    }
}

pub fn run(o: CpdSimOptions) -> CpdSimReport {
    let mut rng = Rng::new(o.seed);
    let sigma = (1.0 + o.cv * o.cv).ln().sqrt();
    let step_log = (1.0 - o.step).ln();
    let can_step = o.nights > 2 * STEP_MARGIN;
    let mut r = CpdSimReport {
        options: o,
        detect_time: Duration::ZERO,
        step_series: 0,
        detected: 0,
        false_alarms_step_series: 0,
        flat_series: 0,
        false_alarms_flat_series: 0,
        flat_series_alarmed: 0,
    };
    let mut values = Vec::with_capacity(o.nights);
    let mut reps = Vec::with_capacity(o.reps.max(1));
    for k in 0..o.series {
        let step_at = (can_step && k % 2 == 0)
            .then(|| STEP_MARGIN + rng.below((o.nights - 2 * STEP_MARGIN) as u64) as usize);
        values.clear();
        let mut level = 0.0;
        for night in 0..o.nights {
            level += o.drift * rng.normal();
            let shift = match step_at {
                Some(s) if night >= s => step_log,
                _ => 0.0,
            };
            reps.clear();
            for _ in 0..o.reps.max(1) {
                let mut x = level + shift + sigma * rng.normal();
                if rng.uniform() < sim::OUTLIER_RATE {
                    let (lo, hi) = sim::OUTLIER_RANGE;
                    x -= lo + (hi - lo) * rng.uniform();
                }
                reps.push(sim::BASE_VALUE * x.exp());
            }
            reps.sort_by(f64::total_cmp);
            let n = reps.len();
            values.push(if n % 2 == 1 {
                reps[n / 2]
            } else {
                (reps[n / 2 - 1] + reps[n / 2]) / 2.0
            });
        }
        let t0 = Instant::now();
        let cps = change_points(&values, &o.params);
        r.detect_time += t0.elapsed();
        match step_at {
            Some(s) => {
                r.step_series += 1;
                let hit = cps
                    .iter()
                    .position(|c| c.index.abs_diff(s) <= TOLERANCE && c.change_pct < 0.0);
                r.detected += usize::from(hit.is_some());
                r.false_alarms_step_series += cps.len() - usize::from(hit.is_some());
            }
            None => {
                r.flat_series += 1;
                r.false_alarms_flat_series += cps.len();
                r.flat_series_alarmed += usize::from(!cps.is_empty());
            }
        }
    }
    r
}

impl std::fmt::Display for CpdSimReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "{} series x {} nights ({} reps/night, CV {:.1}%, drift {:.2}%/night, step -{:.1}% in half of them), window {}, p < {}, min segment {}, min magnitude {}%",
            o.series,
            o.nights,
            o.reps,
            o.cv * 100.0,
            o.drift * 100.0,
            o.step * 100.0,
            o.params.window,
            o.params.max_pvalue,
            o.params.min_segment,
            o.params.min_magnitude_pct
        )?;
        writeln!(
            f,
            "time in change_points: {:.3} s, {:.0} series/s",
            self.detect_time.as_secs_f64(),
            self.series_per_s()
        )?;
        writeln!(
            f,
            "detection (within +-{TOLERANCE} nights): {}/{} = {:.1}%",
            self.detected,
            self.step_series,
            self.detection() * 100.0
        )?;
        writeln!(
            f,
            "false change points per series: {:.3} ({} in step series, {} in flat series; {:.1}% of flat series have one)",
            self.false_alarms_per_series(),
            self.false_alarms_step_series,
            self.false_alarms_flat_series,
            self.flat_series_alarmed as f64 / self.flat_series.max(1) as f64 * 100.0
        )
    }
}
