//! The verdict of one case and metric as a plain record: what `gate.jsonl` holds one line of,
//! what the history stores, what the summary, the markdown report, JUnit and
//! `perfgate baseline update` read. One shape for all of them.

use serde::{Deserialize, Serialize};

use std::fmt;

use super::metric::Direction;

/// The file in the output directory with one [`VerdictRecord`] per line.
pub const GATE_FILE: &str = "gate.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    pub run_id: String,
    /// The full test id (`<prefix>/perf/test_perf.py::test_perf[<raw>]`).
    pub test_id: String,
    /// Upstream's baseline key: `<prefix>/perf/test_perf.py::test_perf_metric_<type>[<label>]`.
    pub perf_case_name: String,
    /// Upstream's `network_name`: the canonical label of the case.
    pub network_name: String,
    /// Upstream's `test_name`: `test_perf_metric_<type>[<label>]`.
    pub test_name: String,
    /// The case's directory when a name expands into several cases.
    pub case: Option<String>,
    /// `build`, `throughput` or `latency`.
    pub step: String,
    /// The metric (`TOKEN_THROUGHPUT`, ...).
    pub metric: String,
    pub unit: String,
    pub direction: Direction,
    /// Whether this metric can fail the test (the few stable ones); the others are reported.
    pub gated: bool,
    pub verdict: Verdict,
    /// Tonight's value: the mean of the repetitions the gate used, in `unit`.
    pub value: Option<f64>,
    /// Every valid repetition of tonight, in order.
    pub reps: Vec<f64>,
    /// The center compared against (history or stored baseline), in `unit`.
    pub baseline: Option<f64>,
    /// `value` relative to `baseline`, in % (positive = the value rose).
    pub change_pct: Option<f64>,
    /// The smallest change this comparison can catch, in %.
    pub mde_pct: Option<f64>,
    /// Per-night noise (≈ CV) used, in %.
    pub noise_pct: Option<f64>,
    /// Where `baseline` came from: `history`, `baseline`, `short-history` or `none`.
    pub source: String,
    /// Nights of history behind `baseline` (0 when it is a stored baseline).
    pub history_nights: usize,
    /// `value` as % of the physical limit for this metric, when one is known.
    pub roofline_pct: Option<f64>,
    /// The step's achieved model FLOPs and HBM traffic as % of the GPUs' peaks (MFU, MBU;
    /// estimates, see `gate::physics`), when the GPU type is known.
    #[serde(default)]
    pub mfu_pct: Option<f64>,
    #[serde(default)]
    pub mbu_pct: Option<f64>,
    /// Upstream's thresholds for this metric (`relative`, signed as upstream writes it;
    /// `absolute`), from the baseline row or the metric table.
    pub threshold: Option<f64>,
    pub absolute_threshold: Option<f64>,
    /// The environment tonight ran in, as `key=value;key=value` (sorted keys).
    pub fingerprint: String,
    /// Repetitions added because the first verdict was UNKNOWN.
    pub reruns: u32,
    /// One or two sentences a perf engineer can act on.
    pub explanation: String,
    /// For INVALID and ENV_CHANGED: each piece of evidence.
    pub evidence: Vec<String>,
}

/// The verdict of the default gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Pass,
    /// A regression larger than the effect floor, beyond the noise.
    Fail,
    /// Not enough evidence either way: rerun if the budget allows.
    Unknown,
    /// A large, significant improvement: re-baseline suggested, not a failure.
    Improved,
    /// No history and no stored baseline: nothing to compare with.
    New,
    /// The measurement cannot be trusted (counts do not match the dataset, an invariant
    /// fails, a value beats physics): never compared, never a regression. Set by
    /// the gate's validity checks, not by its statistics.
    Invalid,
    /// The environment differs from the baseline's (driver, CUDA, GPU, versions): the
    /// comparison would mix a code change with an environment change. Set by the caller.
    EnvChanged,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "UNKNOWN",
            Verdict::Improved => "IMPROVED",
            Verdict::New => "NEW",
            Verdict::Invalid => "INVALID",
            Verdict::EnvChanged => "ENV_CHANGED",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored measurement of an earlier night. Several per night are allowed (repetitions).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Observation {
    /// Any increasing night index (days since an epoch, a build number).
    pub night: i64,
    pub value: f64,
}
