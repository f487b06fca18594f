//! One case's verdicts: validity first, then the environment, then the statistics, one
//! [`VerdictRecord`] per metric the case reports for upstream.
//!
//! Plain data in and out. The caller looks up each metric's stored baseline and history (the
//! history store and the baseline files are not this module's business) through `lookup`.

use std::collections::BTreeMap;

use super::env::Fingerprint;
use super::stats::{self, BaselineSource, GateParams, StoredBaseline};
use super::validity;
use crate::physics::Roofline;
use crate::record::Expectations;
use crate::record::VerdictRecord;
use crate::record::metric::{Direction, metric};
use crate::record::{CaseResult, State};
use crate::record::{Observation, Verdict};

/// Which check decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GateMode {
    /// Noise-aware: repetitions and history, direction-aware, improvements are not failures.
    #[default]
    Default,
    /// Upstream's `sanity_perf_check.py` exactly: `numpy.isclose(base, value, |rel|, |abs|)`
    /// against the stored baseline, either direction fails, `BUILD_TIME` ignored.
    Upstream,
}

/// The metrics that gate by default: one stable throughput and the median latencies
/// (streaming throughput runs report `P50_TPOT`/`P50_TTFT`, latency runs the `MEDIAN_*`
/// times). The others (means, tails, memory, build time) are reported with a verdict but
/// cannot fail a test: correlated copies of the same signal add false alarms, not
/// information, and means and tails are noisier than medians.
pub const DEFAULT_GATED: &[&str] = &[
    "TOKEN_THROUGHPUT",
    "P50_TPOT",
    "P50_TTFT",
    "MEDIAN_OUTPUT_TOKEN_TIME",
    "MEDIAN_FIRST_TOKEN_TIME",
    "DISAGG_SERVER_E2EL",
];

/// A stored baseline row as the gate needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRef {
    pub stored: StoredBaseline,
    /// The environment the baseline was measured in (`k=v;...`), when recorded.
    pub fingerprint: Option<String>,
}

/// What one metric of one case is compared with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reference {
    pub baseline: Option<BaselineRef>,
    /// Earlier nights of the same environment, several values per night allowed.
    pub history: Vec<Observation>,
}

/// Everything about a case the verdicts depend on besides its measurements.
pub struct CaseContext<'a> {
    pub run_id: &'a str,
    pub mode: GateMode,
    /// Metric names that can fail the test.
    pub gated: &'a [String],
    pub fingerprint: &'a Fingerprint,
    /// What each step's dataset makes a correct report show, by step label (from the plan).
    pub expect: &'a [(&'static str, Expectations)],
    pub roofline: Option<&'a Roofline>,
    /// Repetitions added so far because of UNKNOWN verdicts.
    pub reruns: u32,
}

/// The verdict of every metric the case is expected to report. A case that did not run, or
/// has no valid repetition, gets no verdicts: it already failed.
pub fn evaluate(
    case: &CaseResult,
    ctx: &CaseContext,
    lookup: &mut dyn FnMut(&str, &str, &str) -> Reference,
) -> Vec<VerdictRecord> {
    if case.reason.is_some() {
        return Vec::new();
    }
    // Validity of each valid repetition, per step; the evidence names the repetition.
    let mut evidence: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in case.measurements.iter().filter(|m| m.state == State::Valid) {
        let expect = ctx
            .expect
            .iter()
            .find(|(step, _)| *step == m.step)
            .map(|(_, e)| e);
        let found = validity::check(&m.metrics, expect, ctx.roofline);
        for e in m.evidence.iter().cloned().chain(found) {
            evidence
                .entry(m.step)
                .or_default()
                .push(format!("{} repetition {}: {e}", m.step, m.repetition));
        }
    }
    let fingerprint = ctx.fingerprint.to_string();
    // Upstream's metrics, then any gated metric the report has beyond them (from the first
    // step reporting it: the baseline key names the metric, not the step).
    let mut judged: Vec<(&str, &str)> = case.expected.clone();
    for m in case.measurements.iter().filter(|m| m.state == State::Valid) {
        for g in ctx.gated {
            if m.metrics.contains_key(g.as_str()) && !judged.iter().any(|(_, n)| n == g) {
                judged.push((m.step, g.as_str()));
            }
        }
    }
    let mut out = Vec::new();
    for (step, name) in judged {
        let reps: Vec<f64> = case
            .of_step(step)
            .filter(|m| m.state == State::Valid)
            .filter_map(|m| m.metrics.get(name).copied())
            .collect();
        if reps.is_empty() {
            continue;
        }
        let def = metric(name);
        let direction = def.map_or(Direction::LowerIsBetter, |d| d.direction);
        let perf_case_name = case.id.perf_case_name(name);
        let reference = lookup(&perf_case_name, step, name);
        let (threshold, absolute_threshold) = match &reference.baseline {
            Some(b) => (Some(b.stored.rel_threshold), Some(b.stored.abs_threshold)),
            None => def
                .and_then(|d| d.upstream_threshold)
                .map_or((None, None), |(r, a)| (Some(r), Some(a))),
        };
        let last = case
            .of_step(step)
            .filter(|m| m.state == State::Valid)
            .last()
            .map(|m| &m.metrics);
        let roofline_pct = ctx
            .roofline
            .zip(last)
            .and_then(|(r, m)| r.fraction_of_limit(name, m))
            .map(|f| f * 100.0);
        let utilization = ctx.roofline.zip(last).and_then(|(r, m)| r.utilization(m));
        let mut record = VerdictRecord {
            run_id: ctx.run_id.to_string(),
            test_id: case.id.test_id.clone(),
            perf_case_name,
            network_name: case.id.label.clone(),
            test_name: case.id.metric_test_name(name),
            case: case.id.case.clone(),
            step: step.to_string(),
            metric: name.to_string(),
            unit: def.map_or("", |d| d.unit.symbol()).to_string(),
            direction,
            gated: false,
            verdict: Verdict::New,
            value: Some(mean(&reps)),
            reps: reps.clone(),
            baseline: None,
            change_pct: None,
            mde_pct: None,
            noise_pct: None,
            source: "none".into(),
            history_nights: 0,
            roofline_pct,
            mfu_pct: utilization.map(|u| u.mfu * 100.0),
            mbu_pct: utilization.map(|u| u.mbu * 100.0),
            threshold,
            absolute_threshold,
            fingerprint: fingerprint.clone(),
            reruns: ctx.reruns,
            explanation: String::new(),
            evidence: Vec::new(),
        };
        match ctx.mode {
            GateMode::Upstream => upstream(&mut record, &reference, evidence.get(step)),
            GateMode::Default => {
                record.gated = ctx.gated.iter().any(|g| g == name);
                default(
                    &mut record,
                    &reps,
                    &reference,
                    ctx.fingerprint,
                    evidence.get(step),
                );
            }
        }
        out.push(record);
    }
    out
}

/// Upstream's check, verdict for verdict. Validity evidence is attached but changes nothing.
fn upstream(record: &mut VerdictRecord, reference: &Reference, evidence: Option<&Vec<String>>) {
    record.gated = record.metric != "BUILD_TIME";
    record.evidence = evidence.cloned().unwrap_or_default();
    let (Some(b), Some(value)) = (&reference.baseline, record.value) else {
        record.verdict = Verdict::New;
        record.explanation = "NEW: no row in the baseline file (upstream reports it as a \
                              metric missing from the base)"
            .into();
        return;
    };
    let s = &b.stored;
    record.source = "baseline".into();
    record.baseline = Some(s.center);
    record.change_pct = Some((value / s.center - 1.0) * 100.0);
    let differs = stats::upstream_check(s.center, value, s.rel_threshold, s.abs_threshold);
    record.verdict = if differs {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    let tol = s.abs_threshold.abs() + s.rel_threshold.abs() * value.abs();
    record.explanation = format!(
        "{}: |{:.4} - {value:.4}| {} {tol:.4} (atol {} + rtol {} x value), upstream's \
         numpy.isclose; either direction fails{}",
        record.verdict,
        s.center,
        if differs { ">" } else { "<=" },
        s.abs_threshold.abs(),
        s.rel_threshold.abs(),
        if record.gated {
            ""
        } else {
            "; BUILD_TIME is not checked upstream"
        }
    );
}

fn default(
    record: &mut VerdictRecord,
    reps: &[f64],
    reference: &Reference,
    fingerprint: &Fingerprint,
    evidence: Option<&Vec<String>>,
) {
    if let Some(evidence) = evidence.filter(|e| !e.is_empty()) {
        record.verdict = Verdict::Invalid;
        record.evidence = evidence.clone();
        record.explanation = format!(
            "INVALID: the measurement cannot be trusted, so it is not compared: {}",
            evidence[0]
        );
        return;
    }
    let params = GateParams::for_metric(&record.metric);
    let enough_history = distinct_nights(&reference.history) >= params.min_history;
    // History of this environment wins; a stored baseline of another environment is not
    // comparable.
    if !enough_history && let Some(b) = &reference.baseline {
        let theirs = b.fingerprint.as_deref().map(Fingerprint::parse);
        let diffs = theirs
            .map(|t| fingerprint.differences(&t))
            .unwrap_or_default();
        if !diffs.is_empty() {
            record.verdict = Verdict::EnvChanged;
            record.baseline = Some(b.stored.center);
            record.source = "baseline".into();
            record.change_pct = record.value.map(|v| (v / b.stored.center - 1.0) * 100.0);
            record.explanation = format!(
                "ENV_CHANGED: the baseline was measured in another environment ({}); not \
                 compared. Re-baseline in this environment (`perfgate baseline update`) or \
                 run where the baseline was measured",
                diffs.join(", ")
            );
            record.evidence = diffs;
            return;
        }
    }
    let stored = reference.baseline.as_ref().map(|b| b.stored);
    match stats::decide(
        reps,
        &reference.history,
        record.direction,
        stored.as_ref(),
        &params,
    ) {
        Ok(r) => {
            record.verdict = r.verdict;
            record.baseline = r.center;
            record.change_pct = r.change_pct;
            record.mde_pct = r.mde_pct;
            record.noise_pct = r.noise.map(|n| n * 100.0);
            if let (Some(c), Some(ch)) = (r.center, r.change_pct) {
                record.value = Some(c * (1.0 + ch / 100.0));
            }
            (record.source, record.history_nights) = match r.source {
                BaselineSource::History { nights, .. } => ("history".into(), nights),
                BaselineSource::StoredBaseline { .. } => ("baseline".into(), 0),
                BaselineSource::ShortHistory { nights } => ("short-history".into(), nights),
                BaselineSource::None => ("none".into(), 0),
            };
            record.explanation = r.explanation;
        }
        Err(e) => {
            record.verdict = Verdict::Invalid;
            record.explanation = format!("INVALID: {e}");
            record.evidence = vec![e.to_string()];
        }
    }
}

fn distinct_nights(history: &[Observation]) -> usize {
    let mut nights: Vec<i64> = history.iter().map(|o| o.night).collect();
    nights.sort_unstable();
    nights.dedup();
    nights.len()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Does any gated metric want another repetition? An UNKNOWN while the budget lasts, and
/// only where more repetitions can decide it: not against a short history (its few nights
/// are the uncertainty) nor an unstable one (its noise is).
pub fn wants_rerun(records: &[VerdictRecord], reruns_done: u32, max_reruns: u32) -> bool {
    let unstable = GateParams::default().unstable_scale * 100.0;
    records.iter().any(|r| {
        r.gated
            && stats::should_rerun(r.verdict, reruns_done, max_reruns)
            && r.source != "short-history"
            && r.noise_pct.is_none_or(|n| n <= unstable)
    })
}

/// What makes a test fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailOn {
    /// A gated FAIL or INVALID.
    #[default]
    Regression,
    /// Also a gated UNKNOWN or ENV_CHANGED: nothing passes unless it is shown to pass.
    Unknown,
    /// Verdicts never fail a test (a failed benchmark still does).
    Never,
}

impl FailOn {
    /// The gated records that fail the test under this policy.
    pub fn failures(self, records: &[VerdictRecord]) -> Vec<&VerdictRecord> {
        records
            .iter()
            .filter(|r| r.gated)
            .filter(|r| match self {
                FailOn::Never => false,
                FailOn::Regression => matches!(r.verdict, Verdict::Fail | Verdict::Invalid),
                FailOn::Unknown => matches!(
                    r.verdict,
                    Verdict::Fail | Verdict::Invalid | Verdict::Unknown | Verdict::EnvChanged
                ),
            })
            .collect()
    }
}
