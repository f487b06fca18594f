//! A finished test: its repetitions (each request's start and end on the wall clock, in
//! nanoseconds since the Unix epoch, the clock telemetry stamps its readings with), their
//! statistics, and the power, temperature and clocks sampled while they ran.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::spec::{SweepTest, TestType};
use crate::serve::{LevelReport, RequestRecord, RunInfo};
use crate::telemetry::{EnergyReport, PowerSource, Recording};

/// One measured request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Repetition {
    pub index: u64,
    /// When the request began to be sent (ns since the Unix epoch).
    pub start_ns: u64,
    /// When its response ended.
    pub end_ns: u64,
    pub duration_ns: u64,
    /// Send → first generated token.
    pub ttft_ns: Option<u64>,
    /// The server's count of the prompt (`usage.prompt_tokens`).
    pub prompt_tokens: Option<u64>,
    /// Tokens generated.
    pub gen_tokens: u64,
    /// Why it failed (`class: message`); a failed repetition is in no statistic.
    pub error: Option<String>,
}

impl Repetition {
    fn of(r: &RequestRecord, epoch_unix_ns: u64) -> Repetition {
        let start_ns = epoch_unix_ns + r.t_send_ns;
        let end_ns = epoch_unix_ns + r.t_end_ns;
        Repetition {
            index: r.index,
            start_ns,
            end_ns,
            duration_ns: end_ns.saturating_sub(start_ns),
            ttft_ns: r
                .t_first_token_ns()
                .filter(|_| r.ok())
                .map(|t| t.saturating_sub(r.t_send_ns)),
            prompt_tokens: r.usage.prompt_tokens,
            gen_tokens: r.osl().0,
            error: r
                .error
                .as_ref()
                .map(|e| format!("{}: {}", e.class.name(), e.message)),
        }
    }

    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The energy of a test's measured repetitions from one power source: its mean power over the
/// readings that cover them (the last before, each during, the first after) times their time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceFigures {
    pub source: PowerSource,
    pub joules: f64,
    pub mean_w: Option<f64>,
    /// `energy (counter)` or `power integral`.
    pub method: Option<&'static str>,
}

/// One entry of `trt_bench_summary_<ts>.json` (and a line of the JSONL, a row of the CSV and
/// the markdown table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestSummary {
    pub test_type: TestType,
    pub n_prompt: u64,
    pub n_gen: u64,
    /// The tokens tokens/s counts (`n_prompt + n_gen`).
    pub n_tokens: u64,
    /// Repetitions asked for.
    pub repetitions: u32,
    /// Repetitions that finished (the samples).
    pub completed: u32,
    pub failed: u32,
    /// Mean and sample standard deviation of the repetitions' times (ns); `None` without a
    /// finished repetition (the standard deviation is 0 with one).
    pub avg_ns: Option<u64>,
    pub stddev_ns: Option<u64>,
    /// Mean and sample standard deviation of the repetitions' tokens/s (`n_tokens / time`).
    pub avg_ts: Option<f64>,
    pub stddev_ts: Option<f64>,
    pub samples_ns: Vec<u64>,
    pub samples_ts: Vec<f64>,
    /// Mean time to the first generated token (ns).
    pub avg_ttft_ns: Option<u64>,
    /// The prompt and output actually sent and asked for (a generation test sends a minimal
    /// prompt; a prompt test asks for one token).
    pub prompt_tokens_sent: u64,
    pub gen_tokens_requested: u64,
    /// Energy measured: the measured sources' energy added over the repetitions' time (each
    /// source's mean power over the readings that cover the repetitions, times their time).
    pub energy_measured: bool,
    pub energy_j: Option<f64>,
    /// `energy_j / (n_tokens × completed)`.
    pub joules_per_token: Option<f64>,
    /// The measured sources' mean power added (`energy_j` over the time from the first
    /// repetition's start to the last one's end).
    pub avg_power_w: Option<f64>,
    pub energy_sources: Vec<SourceFigures>,
    /// Why there is no energy figure (what was not measured, and why).
    pub energy_note: Option<String>,
    /// The power sources sampled.
    pub power_sources: Vec<PowerSource>,
    /// This test's `trt_data_*.json`.
    pub data_file: String,
    pub model: String,
    pub server_url: String,
    pub server_kind: String,
    pub endpoint: String,
    /// When the test started (RFC 3339, UTC).
    pub timestamp: String,
    /// Failed repetitions by error class.
    pub errors: BTreeMap<String, u64>,
    /// Stopped by Ctrl-C before all its repetitions ran.
    pub interrupted: bool,
    pub notes: Vec<String>,
}

impl TestSummary {
    /// llama-bench's name of the test (`pp512`, `tg128`, `pp512+tg128`).
    pub fn label(&self) -> String {
        self.test().label()
    }

    pub fn test(&self) -> SweepTest {
        SweepTest {
            test_type: self.test_type,
            n_prompt: self.n_prompt,
            n_gen: self.n_gen,
        }
    }
}

/// A finished test: its summary, its repetitions and its telemetry.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub test: SweepTest,
    pub summary: TestSummary,
    pub repetitions: Vec<Repetition>,
    /// The readings that cover the measured repetitions (see [`Recording::between`]).
    pub recording: Recording,
    /// The energy of those readings, per source and rail (over their own span, `seconds`).
    pub energy: EnergyReport,
    pub test_start_ns: u64,
    pub test_end_ns: u64,
}

/// Mean and sample standard deviation (n − 1; 0 for one value), as llama-bench reports them.
pub fn mean_stddev(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((mean, sd))
}

fn unix(ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)
}

/// What the sweep knows when it builds a test's outcome.
pub struct TestContext<'a> {
    pub test: SweepTest,
    pub repetitions: u32,
    pub info: &'a RunInfo,
    /// `None` when the test was stopped before its level finished (Ctrl-C in the warm-up).
    pub level: Option<&'a LevelReport>,
    pub interrupted: bool,
    pub recording: Recording,
    pub data_file: String,
    pub endpoint: &'static str,
}

/// Builds a test's outcome from its level and recording.
pub fn outcome(cx: TestContext<'_>) -> TestOutcome {
    let epoch = cx.info.epoch_unix_ns;
    let reps: Vec<Repetition> = cx
        .level
        .map(|l| l.records.iter().map(|r| Repetition::of(r, epoch)).collect())
        .unwrap_or_default();
    let ok: Vec<&Repetition> = reps.iter().filter(|r| r.ok()).collect();
    let n_tokens = cx.test.n_tokens();
    let samples_ns: Vec<u64> = ok.iter().map(|r| r.duration_ns).collect();
    let samples_ts: Vec<f64> = ok
        .iter()
        .map(|r| n_tokens as f64 / (r.duration_ns.max(1) as f64 / 1e9))
        .collect();
    let ns = mean_stddev(&samples_ns.iter().map(|&v| v as f64).collect::<Vec<_>>());
    let ts = mean_stddev(&samples_ts);
    let ttfts: Vec<f64> = ok
        .iter()
        .filter_map(|r| r.ttft_ns)
        .map(|v| v as f64)
        .collect();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for r in &reps {
        if let Some(e) = &r.error {
            let class = e.split(':').next().unwrap_or(e).to_string();
            *errors.entry(class).or_insert(0) += 1;
        }
    }

    // The window of the measured repetitions, on the telemetry's clock.
    let test_start_ns = reps.iter().map(|r| r.start_ns).min().unwrap_or(epoch);
    let test_end_ns = reps.iter().map(|r| r.end_ns).max().unwrap_or(test_start_ns);
    let window = cx.recording.between(unix(test_start_ns), unix(test_end_ns));
    let tokens = (n_tokens * ok.len() as u64) as f64;
    // J/token is the summary's (over the repetitions' own time), not the covering readings'.
    let energy = window.energy(None);
    let power = window.power.clone();
    // Each source's mean power over the readings that cover the repetitions, times the
    // repetitions' own time: the readings bracket the window (sampling is coarser than a
    // short test), so their energy is the window's at the same mean power.
    let seconds = test_end_ns.saturating_sub(test_start_ns) as f64 / 1e9;
    let counted: Vec<SourceFigures> = energy
        .sources
        .iter()
        .filter_map(|s| {
            let w = s.mean_w?;
            Some(SourceFigures {
                source: s.source,
                joules: w * seconds,
                mean_w: Some(w),
                method: s.method,
            })
        })
        .collect();
    let energy_j = (!counted.is_empty()).then(|| counted.iter().map(|s| s.joules).sum::<f64>());
    let mut not_measured: Vec<String> = power.not_measured.clone();
    if counted.is_empty() {
        not_measured.extend(energy.problems.iter().cloned());
        if power.measured.is_empty() {
            not_measured.extend(power.absent.iter().cloned());
        }
    }
    let energy_note = if energy_j.is_some() {
        (!not_measured.is_empty())
            .then(|| format!("also not measured: {}", not_measured.join("; ")))
    } else if ok.is_empty() {
        Some("energy not measured: no repetition finished".into())
    } else if power.measured.is_empty() {
        Some(format!(
            "energy not measured: no power source was read (--power {}){}",
            power.asked,
            if not_measured.is_empty() {
                String::new()
            } else {
                format!(": {}", not_measured.join("; "))
            }
        ))
    } else {
        Some(format!(
            "energy not measured: the sources read ({}) gave fewer than two readings during the \
             repetitions ({:.3} s; sampling every {:.3} s){}",
            power
                .measured
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            seconds,
            window.interval.as_secs_f64(),
            if not_measured.is_empty() {
                String::new()
            } else {
                format!("; {}", not_measured.join("; "))
            }
        ))
    };
    let mut notes: Vec<String> = cx.test.note().into_iter().collect();
    if cx.interrupted {
        notes.push(format!(
            "interrupted: {} of {} repetitions finished before Ctrl-C",
            ok.len(),
            cx.repetitions
        ));
    }
    let summary = TestSummary {
        test_type: cx.test.test_type,
        n_prompt: cx.test.n_prompt,
        n_gen: cx.test.n_gen,
        n_tokens,
        repetitions: cx.repetitions,
        completed: ok.len() as u32,
        failed: (reps.len() - ok.len()) as u32,
        avg_ns: ns.map(|(m, _)| m.round() as u64),
        stddev_ns: ns.map(|(_, s)| s.round() as u64),
        avg_ts: ts.map(|(m, _)| m),
        stddev_ts: ts.map(|(_, s)| s),
        samples_ns,
        samples_ts,
        avg_ttft_ns: mean_stddev(&ttfts).map(|(m, _)| m.round() as u64),
        prompt_tokens_sent: cx.test.prompt_sent(),
        gen_tokens_requested: cx.test.gen_requested(),
        energy_measured: energy_j.is_some(),
        energy_j,
        joules_per_token: energy_j.filter(|_| tokens > 0.0).map(|j| j / tokens),
        avg_power_w: (!counted.is_empty())
            .then(|| counted.iter().filter_map(|s| s.mean_w).sum::<f64>()),
        energy_sources: counted,
        energy_note,
        power_sources: power.measured.clone(),
        data_file: cx.data_file,
        model: cx.info.model.clone(),
        server_url: cx.info.url.clone(),
        server_kind: cx.info.server_kind.name().to_string(),
        endpoint: cx.endpoint.to_string(),
        timestamp: chrono::DateTime::<chrono::Utc>::from(unix(test_start_ns))
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
        errors,
        interrupted: cx.interrupted,
        notes,
    };
    TestOutcome {
        test: cx.test,
        summary,
        repetitions: reps,
        recording: window,
        energy,
        test_start_ns,
        test_end_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_standard_deviation_as_llama_bench() {
        // numpy: np.std([2, 4, 4, 4, 5, 5, 7, 9], ddof=1) = 2.138089935299395
        let (m, sd) = mean_stddev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(m, 5.0);
        assert!((sd - 2.138_089_935_299_395).abs() < 1e-12);
        assert_eq!(mean_stddev(&[3.0]), Some((3.0, 0.0)));
        assert_eq!(mean_stddev(&[]), None);
    }
}
