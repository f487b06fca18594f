//! Energy of a recording, per rail and per power source.
//!
//! - Where there is a counter (RAPL `energy_uj`, NVML total energy) the energy is the sum of
//!   its increases between consecutive readings. A RAPL counter that goes down has wrapped:
//!   the increase is `range − before + after` (`range` = `max_energy_range_uj`). An apparent
//!   wrap worth more than half the range is not believed (the counter was reset, or readings
//!   were further apart than a wrap takes): that interval is not counted, and the problems say
//!   so. A counter without a known range that goes down is not counted either.
//! - Where there are only power readings (Jetson rails) the energy is the trapezoid integral
//!   of power over the reading times: Σ (Pᵢ + Pᵢ₊₁) / 2 · (tᵢ₊₁ − tᵢ). A failed reading leaves
//!   a longer step, integrated across.
//!
//! Either way the energy covers the first to the last reading, which a [`super::Recorder`]
//! takes at its start and its stop.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::power::{PowerSource, Quantity, Trace};
use super::{Recording, Sample, ser};

/// How one rail's energy was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergyMethod {
    Counter,
    PowerIntegral,
}

impl EnergyMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            EnergyMethod::Counter => "counter",
            EnergyMethod::PowerIntegral => "power integral",
        }
    }
}

/// The energy of one rail (a GPU, a Jetson rail, a RAPL zone).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RailEnergy {
    pub source: PowerSource,
    pub rail: String,
    pub joules: f64,
    pub method: EnergyMethod,
    /// From the first to the last reading used.
    pub seconds: f64,
    /// `joules / seconds`.
    pub mean_w: Option<f64>,
    /// Counted in its source's total (see [`Trace::in_total`]).
    pub in_total: bool,
}

/// The energy of one power source: its counted rails added.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceEnergy {
    pub source: PowerSource,
    /// The rails added into `joules`.
    pub rails: Vec<String>,
    /// `None` when a counted rail has fewer than two usable readings (the problems say which).
    pub joules: Option<f64>,
    /// "counter", "power integral", or "counter and power integral".
    pub method: Option<&'static str>,
    /// The longest span of the counted rails' readings.
    pub seconds: f64,
    /// `joules / seconds`.
    pub mean_w: Option<f64>,
    pub joules_per_output_token: Option<f64>,
}

/// Every source's and rail's energy, and what kept a figure from being given.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EnergyReport {
    pub sources: Vec<SourceEnergy>,
    pub rails: Vec<RailEnergy>,
    pub problems: Vec<String>,
}

impl EnergyReport {
    pub fn source(&self, source: PowerSource) -> Option<&SourceEnergy> {
        self.sources.iter().find(|s| s.source == source)
    }
}

fn span(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a).map_or(0.0, |d| d.as_secs_f64())
}

/// The increase of a counter from `before` to `after` (joules), wrap included; `Err` with the
/// reason when the step cannot be counted.
fn counter_step(before: f64, after: f64, wraps_at: Option<f64>) -> Result<f64, String> {
    if after >= before {
        return Ok(after - before);
    }
    match wraps_at {
        Some(range) => {
            let wrapped = range - before + after;
            if (0.0..=range / 2.0).contains(&wrapped) {
                Ok(wrapped)
            } else {
                Err(format!(
                    "went from {before:.6} J to {after:.6} J, which as a wrap at {range:.6} J would be {wrapped:.6} J, more than half the range: a reset, not counted"
                ))
            }
        }
        None => Err(format!(
            "went backwards from {before:.6} J to {after:.6} J and its range is unknown: not counted"
        )),
    }
}

/// A counter trace's energy and span; problems for steps not counted.
pub(super) fn counter_energy(trace: &Trace) -> (Option<(f64, f64)>, Vec<String>) {
    let points: Vec<(SystemTime, f64)> = trace.points().collect();
    if points.len() < 2 {
        return (None, Vec::new());
    }
    let mut joules = 0.0;
    let mut problems = Vec::new();
    for w in points.windows(2) {
        match counter_step(w[0].1, w[1].1, trace.wraps_at_j) {
            Ok(j) => joules += j,
            Err(why) => problems.push(format!(
                "{} {} energy counter {why} (at {})",
                trace.source,
                trace.name,
                ser::clock(w[1].0)
            )),
        }
    }
    let seconds = span(points[0].0, points[points.len() - 1].0);
    (Some((joules, seconds)), problems)
}

/// The trapezoid integral of a power trace and its span; `None` with fewer than two readings.
pub(super) fn power_energy(trace: &Trace) -> Option<(f64, f64)> {
    let points: Vec<(SystemTime, f64)> = trace.points().collect();
    if points.len() < 2 {
        return None;
    }
    let joules = points
        .windows(2)
        .map(|w| (w[0].1 + w[1].1) / 2.0 * span(w[0].0, w[1].0))
        .sum();
    Some((joules, span(points[0].0, points[points.len() - 1].0)))
}

/// A counter trace as power: each counted step's increase over its time, at the later
/// reading's time (steps not counted are left out).
pub(super) fn counter_power(trace: &Trace) -> Trace {
    let mut power = trace.empty_like();
    power.quantity = Quantity::Power;
    power.unit = Quantity::Power.unit();
    power.wraps_at_j = None;
    let points: Vec<(SystemTime, f64)> = trace.points().collect();
    for w in points.windows(2) {
        let dt = span(w[0].0, w[1].0);
        if dt <= 0.0 {
            continue;
        }
        if let Ok(j) = counter_step(w[0].1, w[1].1, trace.wraps_at_j) {
            power.push(w[1].0, j / dt);
        }
    }
    power
}

fn per_token(joules: Option<f64>, tokens: Option<f64>) -> Option<f64> {
    let j = joules.filter(|j| *j > 0.0)?;
    let t = tokens.filter(|t| t.is_finite() && *t > 0.0)?;
    Some(j / t)
}

fn mean(joules: f64, seconds: f64) -> Option<f64> {
    (seconds > 0.0).then(|| joules / seconds)
}

fn method_of(counter: usize, integral: usize) -> Option<&'static str> {
    match (counter, integral) {
        (0, 0) => None,
        (_, 0) => Some("counter"),
        (0, _) => Some("power integral"),
        _ => Some("counter and power integral"),
    }
}

/// NVML's GPUs as rails: the counter when a GPU has two readings of it, else its power
/// integral (as the per-case summary counts `GPU_ENERGY`).
fn nvml_rails(samples: &[Sample], rails: &mut Vec<RailEnergy>) -> Vec<u32> {
    let mut by_gpu: BTreeMap<u32, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        by_gpu.entry(s.gpu).or_default().push(s);
    }
    let mut missing = Vec::new();
    for (gpu, series) in by_gpu {
        let mut counter = Trace::new(
            PowerSource::Nvml,
            super::power::Family::Nvml,
            Quantity::Energy,
            format!("gpu{gpu}"),
            format!("NVML GPU {gpu}"),
        );
        let mut power = counter.empty_like();
        power.quantity = Quantity::Power;
        for s in &series {
            if let Some(mj) = s.energy_mj {
                counter.push(s.time, mj as f64 / 1000.0);
            }
            if let Some(w) = s.power_w.filter(|w| w.is_finite()) {
                power.push(s.time, w);
            }
        }
        // NVML's counter never wraps in practice (64-bit mJ); a step down is a driver reload,
        // reported by the summary already.
        let by_counter = (counter.len() >= 2).then(|| {
            let points: Vec<(SystemTime, f64)> = counter.points().collect();
            let j: f64 = points.windows(2).map(|w| (w[1].1 - w[0].1).max(0.0)).sum();
            (j, span(points[0].0, points[points.len() - 1].0))
        });
        let found = by_counter
            .map(|e| (e, EnergyMethod::Counter))
            .or_else(|| power_energy(&power).map(|e| (e, EnergyMethod::PowerIntegral)));
        match found {
            Some(((joules, seconds), method)) => rails.push(RailEnergy {
                source: PowerSource::Nvml,
                rail: format!("gpu{gpu}"),
                joules,
                method,
                seconds,
                mean_w: mean(joules, seconds),
                in_total: true,
            }),
            None => missing.push(gpu),
        }
    }
    missing
}

/// The energy of every source in `rec`; `output_tokens` gives J/token.
pub(super) fn report(rec: &Recording, output_tokens: Option<f64>) -> EnergyReport {
    let mut out = EnergyReport::default();
    let mut without: BTreeMap<PowerSource, Vec<String>> = BTreeMap::new();
    let mut counted: BTreeMap<PowerSource, Vec<String>> = BTreeMap::new();

    if !rec.samples.is_empty() {
        let missing = nvml_rails(&rec.samples, &mut out.rails);
        let gpus: Vec<String> = rec
            .samples
            .iter()
            .map(|s| format!("gpu{}", s.gpu))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        counted.insert(PowerSource::Nvml, gpus);
        without.insert(
            PowerSource::Nvml,
            missing.iter().map(|g| format!("gpu{g}")).collect(),
        );
    }
    for trace in &rec.rails {
        let (found, method) = match trace.quantity {
            Quantity::Energy => {
                let (found, problems) = counter_energy(trace);
                out.problems.extend(problems);
                (found, EnergyMethod::Counter)
            }
            Quantity::Power => (power_energy(trace), EnergyMethod::PowerIntegral),
            _ => continue,
        };
        if trace.in_total {
            counted
                .entry(trace.source)
                .or_default()
                .push(trace.name.clone());
        }
        match found {
            Some((joules, seconds)) => out.rails.push(RailEnergy {
                source: trace.source,
                rail: trace.name.clone(),
                joules,
                method,
                seconds,
                mean_w: mean(joules, seconds),
                in_total: trace.in_total,
            }),
            None if trace.in_total => without
                .entry(trace.source)
                .or_default()
                .push(trace.name.clone()),
            None => {}
        }
    }
    for (source, rails) in counted {
        let missing = without.remove(&source).unwrap_or_default();
        let used: Vec<&RailEnergy> = out
            .rails
            .iter()
            .filter(|r| r.source == source && r.in_total)
            .collect();
        let seconds = used.iter().map(|r| r.seconds).fold(0.0, f64::max);
        let joules = if missing.is_empty() && !used.is_empty() {
            Some(used.iter().map(|r| r.joules).sum::<f64>())
        } else {
            // The per-case summary already says which GPU lacks readings.
            if !missing.is_empty() && source != PowerSource::Nvml {
                out.problems.push(format!(
                    "no {source} energy figure: {} {} fewer than two readings",
                    missing.join(", "),
                    if missing.len() == 1 { "has" } else { "have" }
                ));
            }
            None
        };
        let by = |m: EnergyMethod| used.iter().filter(|r| r.method == m).count();
        out.sources.push(SourceEnergy {
            source,
            rails,
            joules,
            method: joules.and(method_of(
                by(EnergyMethod::Counter),
                by(EnergyMethod::PowerIntegral),
            )),
            seconds,
            mean_w: joules.and_then(|j| mean(j, seconds)),
            joules_per_output_token: per_token(joules, output_tokens),
        });
    }
    out
}
