//! A recording's per-case summary: statistics, energy, throttling, metrics and validity evidence.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{PowerSource, Recording, Sample, SourceEnergy, ser};

/// NVML clocks-event (throttle) reason bits and our names for them
/// (`nvmlClocksEventReason*`, formerly `nvmlClocksThrottleReason*`).
pub const THROTTLE_REASONS: &[(u64, &str)] = &[
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

/// Reasons that say nothing about the run's validity: an idle GPU between steps, and the
/// application clocks perfgate itself may have set.
/// NVML's "the GPU is idle" clock-event reason bit.
const GPU_IDLE: u64 = 0x1;

const NOT_THROTTLING: [&str; 2] = ["gpu_idle", "applications_clocks_setting"];

/// Reasons that make a run's numbers incomparable when frequent: heat, a hardware slowdown,
/// an external power brake. Not `sw_power_cap`: a saturated benchmark runs at its power limit
/// by design (seen on the lent H100 under a matmul loop); if the cap pulls the SM clock far
/// below its target, the clock check says so.
pub const INVALIDATING_THROTTLE: [&str; 4] = [
    "hw_slowdown",
    "hw_thermal_slowdown",
    "sw_thermal_slowdown",
    "hw_power_brake_slowdown",
];

/// The names of the reasons set in an NVML mask; unknown bits as `bit_N`.
pub fn throttle_names(mask: u64) -> Vec<String> {
    let mut names = Vec::new();
    for bit in 0..64 {
        let b = 1u64 << bit;
        if mask & b != 0 {
            match THROTTLE_REASONS.iter().find(|(m, _)| *m == b) {
                Some((_, name)) => names.push((*name).to_string()),
                None => names.push(format!("bit_{bit}")),
            }
        }
    }
    names
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MinMeanMax {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

impl MinMeanMax {
    /// `None` when there is no finite value.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<MinMeanMax> {
        let (mut n, mut sum, mut min, mut max) = (0usize, 0.0, f64::INFINITY, f64::NEG_INFINITY);
        for v in values.into_iter().filter(|v| v.is_finite()) {
            n += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        (n > 0).then(|| MinMeanMax {
            min,
            mean: sum / n as f64,
            max,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Samples of all GPUs together.
    pub samples: usize,
    /// From the recording's start to its end.
    pub seconds: f64,
    /// Over all samples of all GPUs.
    pub sm_mhz: Option<MinMeanMax>,
    pub mem_mhz: Option<MinMeanMax>,
    /// Total over the case's GPUs (the n-th samples of each GPU added).
    pub power_w: Option<MinMeanMax>,
    pub gpu_temp_c: Option<MinMeanMax>,
    pub mem_temp_c: Option<MinMeanMax>,
    pub gpu_util_pct: Option<MinMeanMax>,
    /// Per GPU (not a total), GiB (2^30 bytes).
    pub mem_used_gib: Option<MinMeanMax>,
    /// All GPUs: from the energy counter deltas, else the trapezoid integral of power, else None.
    pub energy_j: Option<f64>,
    /// "counter", "power integral", or "counter and power integral" (some GPUs each).
    pub energy_source: Option<&'static str>,
    pub joules_per_output_token: Option<f64>,
    pub output_tokens_per_joule: Option<f64>,
    /// Share of samples (0..1) with each throttle reason set, by name, in NVML bit order; only
    /// reasons seen; `gpu_idle` and `applications_clocks_setting` left out.
    pub throttle: Vec<(String, f64)>,
    /// The last SM / memory clock reading of the first GPU sampled (upstream's `sm_clk`,
    /// `mem_clk`).
    pub last_sm_mhz: Option<u32>,
    pub last_mem_mhz: Option<u32>,
    /// Every power source's energy, mean power and J/token (NVML's agrees with `energy_j`).
    pub power_sources: Vec<SourceEnergy>,
    pub problems: Vec<String>,
}

const GIB: f64 = (1u64 << 30) as f64;

/// Each GPU's samples, in recording order.
fn series(rec: &Recording) -> BTreeMap<u32, Vec<&Sample>> {
    let mut by_gpu: BTreeMap<u32, Vec<&Sample>> = BTreeMap::new();
    for s in &rec.samples {
        by_gpu.entry(s.gpu).or_default().push(s);
    }
    by_gpu
}

fn seconds_between(a: &Sample, b: &Sample) -> Option<f64> {
    b.time.duration_since(a.time).ok().map(|d| d.as_secs_f64())
}

/// One sentence per step back of a GPU's energy counter (a driver reload or a wrap).
pub(super) fn energy_counter_problems(samples: &[Sample]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for s in samples {
        let Some(e) = s.energy_mj else { continue };
        if let Some(prev) = last.insert(s.gpu, e)
            && e < prev
        {
            problems.push(format!(
                "GPU {}'s energy counter went backwards (from {prev} mJ to {e} mJ at {}): that interval's energy is not counted",
                s.gpu,
                ser::clock(s.time)
            ));
        }
    }
    problems
}

/// Energy of one GPU from its counter: the sum of the non-negative deltas, in joules; `None`
/// with fewer than two readings.
fn counter_joules(series: &[&Sample]) -> Option<f64> {
    let readings: Vec<u64> = series.iter().filter_map(|s| s.energy_mj).collect();
    if readings.len() < 2 {
        return None;
    }
    let mj: u64 = readings.windows(2).map(|w| w[1].saturating_sub(w[0])).sum();
    Some(mj as f64 / 1000.0)
}

/// Energy of one GPU as the trapezoid integral of its power readings, in joules; `None` with
/// fewer than two readings.
fn power_joules(series: &[&Sample]) -> Option<f64> {
    let readings: Vec<(&Sample, f64)> = series
        .iter()
        .filter_map(|s| s.power_w.filter(|p| p.is_finite()).map(|p| (*s, p)))
        .collect();
    if readings.len() < 2 {
        return None;
    }
    Some(
        readings
            .windows(2)
            .filter_map(|w| seconds_between(w[0].0, w[1].0).map(|dt| (w[0].1 + w[1].1) / 2.0 * dt))
            .sum(),
    )
}

/// Total energy of all GPUs, its source, and a problem when some GPU has neither.
fn energy(
    by_gpu: &BTreeMap<u32, Vec<&Sample>>,
) -> (Option<f64>, Option<&'static str>, Vec<String>) {
    let (mut total, mut by_counter, mut by_power) = (0.0, 0usize, 0usize);
    let mut missing = Vec::new();
    for (gpu, series) in by_gpu {
        if let Some(j) = counter_joules(series) {
            total += j;
            by_counter += 1;
        } else if let Some(j) = power_joules(series) {
            total += j;
            by_power += 1;
        } else {
            missing.push(*gpu);
        }
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(u32::to_string).collect();
        let problem = format!(
            "no energy figure: GPU {} has fewer than two energy counter or power readings",
            list.join(", ")
        );
        return (None, None, vec![problem]);
    }
    let source = match (by_counter, by_power) {
        (0, 0) => return (None, None, Vec::new()),
        (_, 0) => "counter",
        (0, _) => "power integral",
        _ => "counter and power integral",
    };
    (Some(total), Some(source), Vec::new())
}

/// Total power of the GPUs, the n-th samples of each added; an n where some GPU sampled has no
/// power reading is left out rather than counted short.
fn total_power(by_gpu: &BTreeMap<u32, Vec<&Sample>>) -> Option<MinMeanMax> {
    let longest = by_gpu.values().map(Vec::len).max().unwrap_or(0);
    let totals = (0..longest).filter_map(|i| {
        by_gpu
            .values()
            .filter_map(|series| series.get(i))
            .map(|s| s.power_w)
            .sum::<Option<f64>>()
    });
    MinMeanMax::of(totals)
}

fn throttle_shares(samples: &[Sample]) -> Vec<(String, f64)> {
    let masks: Vec<u64> = samples.iter().filter_map(|s| s.throttle_reasons).collect();
    if masks.is_empty() {
        return Vec::new();
    }
    let mut counts: BTreeMap<(u32, String), usize> = BTreeMap::new();
    for mask in &masks {
        for name in throttle_names(*mask) {
            if NOT_THROTTLING.contains(&name.as_str()) {
                continue;
            }
            let order = THROTTLE_REASONS
                .iter()
                .position(|(_, n)| *n == name)
                .map_or(u32::MAX, |p| p as u32);
            *counts.entry((order, name)).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|((_, name), n)| (name, n as f64 / masks.len() as f64))
        .collect()
}

pub(super) fn summarize(rec: &Recording, output_tokens: Option<f64>) -> Summary {
    let samples = &rec.samples;
    let stat = |f: fn(&Sample) -> Option<f64>| MinMeanMax::of(samples.iter().filter_map(f));
    let by_gpu = series(rec);
    let (energy_j, energy_source, energy_problems) = energy(&by_gpu);
    let tokens = output_tokens.filter(|t| t.is_finite() && *t > 0.0);
    let joules = energy_j.filter(|j| *j > 0.0);
    let first_gpu = rec
        .gpus
        .iter()
        .copied()
        .find(|g| by_gpu.contains_key(g))
        .or_else(|| by_gpu.keys().next().copied());
    let last_of = |f: fn(&Sample) -> Option<u32>| {
        first_gpu.and_then(|g| by_gpu.get(&g)?.iter().rev().find_map(|s| f(s)))
    };

    let report = rec.energy(output_tokens);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for p in rec
        .problems
        .iter()
        .cloned()
        .chain(energy_counter_problems(samples))
        .chain(energy_problems)
        .chain(report.problems)
    {
        if seen.insert(p.clone()) {
            problems.push(p);
        }
    }
    Summary {
        samples: samples.len(),
        seconds: rec
            .ended
            .duration_since(rec.started)
            .map_or(0.0, |d| d.as_secs_f64()),
        sm_mhz: stat(|s| s.sm_mhz.map(f64::from)),
        mem_mhz: stat(|s| s.mem_mhz.map(f64::from)),
        power_w: total_power(&by_gpu),
        gpu_temp_c: stat(|s| s.gpu_temp_c.map(f64::from)),
        mem_temp_c: stat(|s| s.mem_temp_c.map(f64::from)),
        gpu_util_pct: stat(|s| s.gpu_util_pct.map(f64::from)),
        mem_used_gib: stat(|s| s.mem_used_bytes.map(|b| b as f64 / GIB)),
        energy_j,
        energy_source,
        joules_per_output_token: joules.zip(tokens).map(|(j, t)| j / t),
        output_tokens_per_joule: joules.zip(tokens).map(|(j, t)| t / j),
        throttle: throttle_shares(samples),
        last_sm_mhz: last_of(|s| s.sm_mhz),
        last_mem_mhz: last_of(|s| s.mem_mhz),
        power_sources: report.sources,
        problems,
    }
}

impl Summary {
    /// As metrics: GPU_ENERGY (J), JOULES_PER_OUTPUT_TOKEN, OUTPUT_TOKENS_PER_JOULE,
    /// GPU_POWER_MEAN and GPU_POWER_MAX (W, total), SM_CLOCK_MIN, SM_CLOCK_MEAN and
    /// MEM_CLOCK_MEAN (MHz), GPU_TEMP_MAX and MEM_TEMP_MAX (C), GPU_UTIL_MEAN (%),
    /// GPU_MEMORY_USED_MAX (GiB, per GPU), TELEMETRY_SAMPLES; and for the sysfs sources
    /// RAPL_ENERGY, RAPL_POWER_MEAN, RAPL_JOULES_PER_OUTPUT_TOKEN, JETSON_ENERGY,
    /// JETSON_POWER_MEAN, JETSON_JOULES_PER_OUTPUT_TOKEN. Only those known (no
    /// TELEMETRY_SAMPLES without GPU samples).
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let source = |s: PowerSource| self.power_sources.iter().find(|e| e.source == s);
        let rapl = source(PowerSource::Rapl);
        let jetson = source(PowerSource::Jetson);
        let entries = [
            ("GPU_ENERGY", self.energy_j),
            ("JOULES_PER_OUTPUT_TOKEN", self.joules_per_output_token),
            ("OUTPUT_TOKENS_PER_JOULE", self.output_tokens_per_joule),
            ("GPU_POWER_MEAN", self.power_w.as_ref().map(|m| m.mean)),
            ("GPU_POWER_MAX", self.power_w.as_ref().map(|m| m.max)),
            ("SM_CLOCK_MIN", self.sm_mhz.as_ref().map(|m| m.min)),
            ("SM_CLOCK_MEAN", self.sm_mhz.as_ref().map(|m| m.mean)),
            ("MEM_CLOCK_MEAN", self.mem_mhz.as_ref().map(|m| m.mean)),
            ("GPU_TEMP_MAX", self.gpu_temp_c.as_ref().map(|m| m.max)),
            ("MEM_TEMP_MAX", self.mem_temp_c.as_ref().map(|m| m.max)),
            ("GPU_UTIL_MEAN", self.gpu_util_pct.as_ref().map(|m| m.mean)),
            (
                "GPU_MEMORY_USED_MAX",
                self.mem_used_gib.as_ref().map(|m| m.max),
            ),
            (
                "TELEMETRY_SAMPLES",
                (self.samples > 0).then_some(self.samples as f64),
            ),
            ("RAPL_ENERGY", rapl.and_then(|e| e.joules)),
            ("RAPL_POWER_MEAN", rapl.and_then(|e| e.mean_w)),
            (
                "RAPL_JOULES_PER_OUTPUT_TOKEN",
                rapl.and_then(|e| e.joules_per_output_token),
            ),
            ("JETSON_ENERGY", jetson.and_then(|e| e.joules)),
            ("JETSON_POWER_MEAN", jetson.and_then(|e| e.mean_w)),
            (
                "JETSON_JOULES_PER_OUTPUT_TOKEN",
                jetson.and_then(|e| e.joules_per_output_token),
            ),
        ];
        entries
            .into_iter()
            .filter_map(|(name, v)| v.filter(|v| v.is_finite()).map(|v| (name.to_string(), v)))
            .collect()
    }
}

/// Validity evidence, one sentence each with the numbers: the SM clock more than
/// `max_below_pct` % below `target_sm_mhz` in more than `max_share` (0..1) of the samples;
/// throttling by heat, a hardware slowdown or a power brake ([`INVALIDATING_THROTTLE`]) in
/// more than `max_share` of the samples. Empty =
/// fine. Missing readings are not evidence (the summary's problems say they are missing).
pub fn clock_evidence(
    summary: &Summary,
    recording: &Recording,
    target_sm_mhz: Option<u32>,
    max_below_pct: f64,
    max_share: f64,
) -> Vec<String> {
    let mut evidence = Vec::new();
    if let Some(target) = target_sm_mhz {
        let floor = f64::from(target) * (1.0 - max_below_pct / 100.0);
        // Only busy samples: an idle GPU drops its clock on purpose (NVML sets `gpu_idle`),
        // and every benchmark has idle stretches (loading the model, the tail). Measured on
        // the lent H100: 345 MHz idle against a 1005 MHz target.
        let busy = |s: &&crate::telemetry::Sample| {
            s.throttle_reasons.is_none_or(|m| m & GPU_IDLE == 0)
                && s.gpu_util_pct.is_none_or(|u| u > 0)
        };
        let readings: Vec<u32> = recording
            .samples
            .iter()
            .filter(busy)
            .filter_map(|s| s.sm_mhz)
            .collect();
        let idle = recording.samples.len() - recording.samples.iter().filter(busy).count();
        let below = readings.iter().filter(|&&m| f64::from(m) < floor).count();
        if !readings.is_empty() {
            let share = below as f64 / readings.len() as f64;
            if share > max_share {
                let lowest = readings.iter().min().copied().unwrap_or(0);
                let mean =
                    readings.iter().map(|&m| f64::from(m)).sum::<f64>() / readings.len() as f64;
                evidence.push(format!(
                    "SM clock more than {max_below_pct}% below the {target} MHz target (under {floor:.0} MHz) in {below} of {} busy samples ({:.0}%, more than the {:.0}% allowed; {idle} idle samples not counted); lowest {lowest} MHz, mean {mean:.0} MHz",
                    readings.len(),
                    share * 100.0,
                    max_share * 100.0
                ));
            }
        }
    }
    let masks: Vec<u64> = recording
        .samples
        .iter()
        .filter_map(|s| s.throttle_reasons)
        .collect();
    for (name, share) in &summary.throttle {
        if INVALIDATING_THROTTLE.contains(&name.as_str()) && *share > max_share {
            let count = masks
                .iter()
                .filter(|m| throttle_names(**m).contains(name))
                .count();
            evidence.push(format!(
                "{name} throttling in {count} of {} samples ({:.0}%, more than the {:.0}% allowed)",
                masks.len(),
                share * 100.0,
                max_share * 100.0
            ));
        }
    }
    evidence
}
