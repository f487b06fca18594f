//! What a run measured, as plain data: who a result belongs to (upstream's naming), each
//! repetition of each step with its metrics, and the case that holds them. Produced by the
//! executor, read by the gate, the sinks, the history and the comparisons.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Upstream's result states. Upstream writes only `valid` rows; perfgate writes all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Valid,
    /// The step failed, or a metric it must report is missing, or requests failed.
    Failed,
    /// The measurement ran but cannot be trusted (e.g. the GPU monitor says clocks were off).
    Invalid,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Valid => "valid",
            State::Failed => "failed",
            State::Invalid => "invalid",
        }
    }
}

/// Who a result belongs to, in upstream's naming.
#[derive(Debug, Clone, Serialize)]
pub struct CaseId {
    /// The full test id: `<prefix>/perf/test_perf.py::test_perf[<raw name>]`.
    pub test_id: String,
    /// The name as the list spells it.
    pub raw: String,
    /// The canonical label of this case (upstream's `network_name`).
    pub label: String,
    /// The case's directory name when the name expands into several cases.
    pub case: Option<String>,
}

impl CaseId {
    /// Everything before the last `::` of the test id (upstream's test domain).
    pub fn test_domain(&self) -> &str {
        self.test_id
            .rsplit_once("::")
            .map_or(self.test_id.as_str(), |(d, _)| d)
    }

    /// Upstream's `network_hash`: the short node name (`test_perf[...]`, or `test_e2e[...]` for
    /// a perf-sanity id).
    pub fn network_hash(&self) -> String {
        match self.test_id.rsplit_once("::") {
            Some((_, node)) if node.ends_with(']') => node.to_string(),
            _ => format!("test_perf[{}]", self.raw),
        }
    }

    /// Upstream's `test_name` of one metric: `test_perf_metric_<type>[<label>]`.
    pub fn metric_test_name(&self, metric: &str) -> String {
        format!(
            "test_perf_metric_{}[{}]",
            metric.to_ascii_lowercase(),
            self.label
        )
    }

    /// Upstream's `perf_case_name` of one metric (the baseline key).
    pub fn perf_case_name(&self, metric: &str) -> String {
        format!("{}::{}", self.test_domain(), self.metric_test_name(metric))
    }
}

/// One run of one benchmark step (one repetition).
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// `build`, `throughput` or `latency`.
    pub step: &'static str,
    /// 1-based; the build is measured once (repetition 1).
    pub repetition: u32,
    pub state: State,
    /// Why the state is not `valid`.
    pub reason: Option<String>,
    /// Everything the report gave, by perfgate metric name.
    pub metrics: BTreeMap<String, f64>,
    pub warnings: Vec<String>,
    pub command: String,
    pub log: PathBuf,
    #[serde(serialize_with = "ser_time")]
    pub started: SystemTime,
    #[serde(serialize_with = "ser_time")]
    pub ended: SystemTime,
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
    /// GPU samples of the step, when sampled (their summary is in `metrics`; the samples go
    /// to `gpu_monitoring.csv`).
    #[serde(skip)]
    pub telemetry: Option<std::sync::Arc<crate::telemetry::Recording>>,
    /// Why the measurement cannot be trusted although it ran (e.g. the SM clock stayed far
    /// below its target): the gate makes its verdicts INVALID with this evidence.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

/// A case's measurements: the shared build (if any) and every repetition of its benchmarks.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub id: CaseId,
    /// The metrics upstream records for this case, per step (`BUILD_TIME` for the build).
    pub expected: Vec<(&'static str, &'static str)>,
    pub measurements: Vec<Measurement>,
    /// Why the case did not run at all (a failed build, an interrupted run).
    pub reason: Option<String>,
    /// What a case of a test's shared setup is called in summaries (`engine build`).
    #[serde(skip)]
    pub title: Option<&'static str>,
    /// What upstream's database records for the case (a serving case's plan's
    /// `upstream_record`), for the history and its OpenSearch export.
    #[serde(skip)]
    pub upstream_record: Option<serde_json::Value>,
}

/// Summary statistics of one metric over repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one value.
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Option<Stats> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Stats {
            n,
            mean,
            stddev: var.sqrt(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

impl CaseResult {
    /// Valid unless a measurement is not, or the case did not run.
    pub fn state(&self) -> State {
        if self.reason.is_some() || self.measurements.is_empty() {
            return State::Failed;
        }
        self.measurements
            .iter()
            .map(|m| m.state)
            .find(|s| *s != State::Valid)
            .unwrap_or(State::Valid)
    }

    /// Every reason the case is not valid, one per line.
    pub fn failure_reasons(&self) -> Vec<String> {
        let mut out: Vec<String> = self.reason.iter().cloned().collect();
        for m in &self.measurements {
            if let Some(r) = &m.reason {
                out.push(format!("{} (repetition {}): {r}", m.step, m.repetition));
            }
        }
        out
    }

    /// Whether `step` is one whose metrics upstream records for this case (the throughput
    /// run, the engine build): its metrics are named without the step in reports.
    pub fn is_primary_step(&self, step: &str) -> bool {
        self.expected.iter().any(|(s, _)| *s == step)
    }

    /// The measurements of one step.
    pub fn of_step<'a>(&'a self, step: &'a str) -> impl Iterator<Item = &'a Measurement> + 'a {
        self.measurements.iter().filter(move |m| m.step == step)
    }

    /// A metric of one step over its valid repetitions.
    pub fn stats(&self, step: &str, metric: &str) -> Option<Stats> {
        let values: Vec<f64> = self
            .of_step(step)
            .filter(|m| m.state == State::Valid)
            .filter_map(|m| m.metrics.get(metric).copied())
            .collect();
        Stats::of(&values)
    }

    /// Every (step, metric) any measurement reported, in a stable order.
    pub fn metric_names(&self) -> Vec<(&'static str, String)> {
        let mut seen: Vec<(&'static str, String)> = Vec::new();
        for m in &self.measurements {
            for k in m.metrics.keys() {
                if !seen.iter().any(|(s, n)| *s == m.step && n == k) {
                    seen.push((m.step, k.clone()));
                }
            }
        }
        seen
    }
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// `2026-11-24T10:00:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Upstream's timestamp layout, with the zone it leaves out: `2026-11-24 10:00:00 +0000`.
pub fn upstream_timestamp(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d %H:%M:%S %z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_sample_statistics() {
        let s = Stats::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).expect("values");
        assert_eq!(s.n, 8);
        assert_eq!(s.mean, 5.0);
        assert!((s.stddev - 2.138_089_935).abs() < 1e-9);
        assert_eq!((s.min, s.max), (2.0, 9.0));
        assert_eq!(Stats::of(&[3.0]).map(|s| s.stddev), Some(0.0));
        assert_eq!(Stats::of(&[]), None);
    }

    #[test]
    fn upstream_names() {
        let id = CaseId {
            test_id: "H100/perf/test_perf.py::test_perf[m-bench-float16-input_output_len:1,2]"
                .into(),
            raw: "m-bench-float16-input_output_len:1,2".into(),
            label: "m-bench-float16-maxbs:512-input_output_len:1,2".into(),
            case: None,
        };
        assert_eq!(id.test_domain(), "H100/perf/test_perf.py");
        assert_eq!(
            id.perf_case_name("INFERENCE_TIME"),
            "H100/perf/test_perf.py::test_perf_metric_inference_time[m-bench-float16-maxbs:512-input_output_len:1,2]"
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_790_000_000_123);
        assert_eq!(upstream_timestamp(t), "2026-09-21 14:13:20 +0000");
        assert_eq!(rfc3339(t), "2026-09-21T14:13:20.123Z");
    }
}
