//! Runs one planned test for real: the runner starts each step, the report parsers read what
//! the benchmark printed (and its report.json), and each finished case goes to the result files
//! at once. A failing case does not stop the test's other cases; an interrupt stops everything.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::plan::{CasePlan, Step, StepKind, TestPlan};
use crate::report::{self, Report, ReportKind};
use crate::results::{CaseId, CaseResult, Measurement, State};
use crate::runner::{Limits, Runner, StepRun};
use crate::telemetry::Telemetry;

#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Benchmark runs per case, on the same dataset.
    pub repeat: u32,
    /// Stream the benchmark's output to the terminal too (`--nocapture`).
    pub echo: bool,
    /// Stall limits (the deadline is set from `timeout` when the test starts).
    pub limits: Limits,
    pub timeout: Option<Duration>,
    pub dataset_cache: PathBuf,
    /// GPU telemetry around every benchmark step; `None` when off.
    pub telemetry: Option<TelemetryOptions>,
}

/// How benchmark steps are sampled (`src/telemetry`) and when a sampled clock makes a
/// measurement untrustworthy.
#[derive(Clone)]
pub struct TelemetryOptions {
    pub telemetry: Telemetry,
    pub interval: Duration,
    /// The GPUs the test uses (the first `gpus:N` visible ones).
    pub gpus: Vec<u32>,
    /// The SM clock the GPU should hold (the locked target, or its default application
    /// clock); `None` skips the clock check.
    pub target_sm_mhz: Option<u32>,
    /// A clock more than this % below the target...
    pub max_below_pct: f64,
    /// ...or throttling, in more than this share of the samples is evidence.
    pub max_share: f64,
    /// Evidence makes the measurement INVALID (else it is a warning).
    pub invalid_on_evidence: bool,
}

impl std::fmt::Debug for TelemetryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryOptions")
            .field("interval", &self.interval)
            .field("gpus", &self.gpus)
            .field("target_sm_mhz", &self.target_sm_mhz)
            .finish_non_exhaustive()
    }
}

/// What running one test gave.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub cases: Vec<CaseResult>,
    pub log: PathBuf,
}

impl TestOutcome {
    /// Every reason the test failed, with the last lines of its log; `None` if it passed.
    pub fn failure(&self) -> Option<(String, String)> {
        let reasons: Vec<String> = self
            .cases
            .iter()
            .flat_map(|c| {
                let label = c.id.case.clone().unwrap_or_else(|| c.id.label.clone());
                c.failure_reasons()
                    .into_iter()
                    .map(move |r| format!("[{label}] {r}"))
            })
            .collect();
        if reasons.is_empty() {
            return None;
        }
        let first = reasons[0].lines().next().unwrap_or_default().to_string();
        let message = if reasons.len() > 1 {
            format!("{first} (and {} more)", reasons.len() - 1)
        } else {
            first
        };
        Some((
            message,
            format!("{}\n(log: {})", reasons.join("\n"), self.log.display()),
        ))
    }
}

/// Runs `plan` and calls `on_case` as each case (and the shared engine build) finishes.
///
/// After a case's planned repetitions, `more` is asked whether to run one more (the gate
/// asks for reruns when its verdict is UNKNOWN); it is asked again after each one, so the
/// caller owns the budget.
pub fn execute(
    plan: &TestPlan,
    test_id: &str,
    opts: &ExecOptions,
    on_case: &mut dyn FnMut(&CaseResult),
    more: &mut dyn FnMut(&CaseResult) -> bool,
) -> anyhow::Result<TestOutcome> {
    let log = plan.dir.join("perf.log");
    let mut limits = opts.limits;
    limits.deadline = opts.timeout.map(|t| (Instant::now() + t, t));
    let mut runner = Runner::open(&log, opts.echo, limits, &opts.dataset_cache)?;
    let mut out = TestOutcome {
        cases: Vec::new(),
        log: log.clone(),
    };
    let mut finish = |case: CaseResult, out: &mut TestOutcome| {
        on_case(&case);
        out.cases.push(case);
    };

    let mut build_failed: Option<String> = None;
    if !plan.setup.is_empty() {
        let mut case = CaseResult {
            id: id(test_id, plan, &plan.canonical, None),
            expected: plan.setup_metrics.iter().map(|m| ("build", *m)).collect(),
            measurements: Vec::new(),
            reason: None,
        };
        for step in &plan.setup {
            let m = measure(&mut runner, step, 1, &plan.setup_metrics, None);
            let failed = m.state != State::Valid;
            if failed {
                build_failed = Some(format!(
                    "the engine build failed: {}",
                    m.reason
                        .as_deref()
                        .unwrap_or("")
                        .lines()
                        .next()
                        .unwrap_or("")
                ));
            }
            case.measurements.push(m);
            if failed {
                break;
            }
        }
        finish(case, &mut out);
    }

    let multi = plan.cases.len() > 1;
    for cp in &plan.cases {
        let case_name = multi.then(|| case_dir_name(cp));
        let mut case = CaseResult {
            id: id(test_id, plan, &cp.spec.label, case_name),
            expected: cp
                .steps
                .iter()
                .filter(|s| s.kind == StepKind::Throughput)
                .take(1)
                .flat_map(|_| cp.metrics.iter().map(|m| ("throughput", *m)))
                .collect(),
            measurements: Vec::new(),
            reason: None,
        };
        if let Some(signal) = crate::runner::signals::interrupted() {
            case.reason = Some(format!(
                "not run: interrupted by {}",
                crate::runner::process::signal_name(signal)
            ));
            finish(case, &mut out);
            continue;
        }
        if let Some(why) = &build_failed {
            case.reason = Some(format!("not run: {why}"));
            finish(case, &mut out);
            continue;
        }
        let (prepare, benches): (Vec<&Step>, Vec<&Step>) = cp
            .steps
            .iter()
            .partition(|s| !matches!(s.kind, StepKind::Throughput | StepKind::Latency));
        let mut prepared = true;
        for step in prepare {
            if let Err(e) = runner.run_step(step) {
                case.reason = Some(format!("{} step failed: {e}", step.kind.as_str()));
                prepared = false;
                break;
            }
        }
        let planned = if prepared { opts.repeat.max(1) } else { 0 };
        let mut rep = 0;
        loop {
            let again = if rep < planned {
                true
            } else {
                prepared
                    && crate::runner::signals::interrupted().is_none()
                    && case.measurements.iter().all(|m| m.state == State::Valid)
                    && more(&case)
            };
            if !again {
                break;
            }
            rep += 1;
            if rep > planned {
                runner.note(&format!(
                    "rerun: repetition {rep} (the gate could not decide on {})",
                    rep - 1
                ));
            } else if opts.repeat > 1 {
                runner.note(&format!("repetition {rep} of {}", opts.repeat));
            }
            let mut stop = false;
            for step in &benches {
                let required: &[&str] = if step.kind == StepKind::Latency {
                    &["INFERENCE_TIME"]
                } else {
                    &cp.metrics
                };
                let m = measure(&mut runner, step, rep, required, opts.telemetry.as_ref());
                stop = m.state != State::Valid;
                case.measurements.push(m);
                if stop {
                    break;
                }
            }
            if stop {
                break;
            }
        }
        finish(case, &mut out);
    }
    Ok(out)
}

fn id(test_id: &str, plan: &TestPlan, label: &str, case: Option<String>) -> CaseId {
    CaseId {
        test_id: test_id.to_string(),
        raw: plan.raw.clone(),
        label: label.to_string(),
        case,
    }
}

fn case_dir_name(cp: &CasePlan) -> String {
    cp.dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| cp.spec.label.clone())
}

/// Runs one benchmark step and reads its metrics. The measurement is `failed` when the step
/// failed, requests failed, there is not exactly one report, or a required metric is missing.
fn measure(
    runner: &mut Runner,
    step: &Step,
    repetition: u32,
    required: &[&str],
    telemetry: Option<&TelemetryOptions>,
) -> Measurement {
    let report_json = match step.kind {
        StepKind::Throughput | StepKind::Latency => step.outputs.first().cloned(),
        _ => None,
    };
    if let Some(path) = &report_json {
        // A report.json left by an earlier run must not be read as this run's.
        let _ = std::fs::remove_file(path);
    }
    let started = std::time::SystemTime::now();
    let mut m = Measurement {
        step: step.kind.as_str(),
        repetition,
        state: State::Valid,
        reason: None,
        metrics: BTreeMap::new(),
        warnings: Vec::new(),
        command: step.command_line(),
        log: runner.log_path().to_path_buf(),
        started,
        ended: started,
        duration: Duration::ZERO,
        telemetry: None,
        evidence: Vec::new(),
    };
    let sampled =
        telemetry.filter(|_| matches!(step.kind, StepKind::Throughput | StepKind::Latency));
    let recorder = sampled.map(|t| t.telemetry.start(&t.gpus, t.interval));
    let run = runner.run_step(step);
    let recording = recorder.map(|r| r.stop());
    let run = match run {
        Ok(run) => run,
        Err(e) => {
            m.ended = std::time::SystemTime::now();
            m.duration = m.ended.duration_since(started).unwrap_or_default();
            m.state = State::Failed;
            m.reason = Some(e.to_string());
            return m;
        }
    };
    m.started = run.started;
    m.ended = run.ended;
    m.duration = run.duration;
    match read_report(runner.log_path(), &run, report_json.as_deref()) {
        Ok(report) => judge(&mut m, report, required),
        Err(e) => {
            m.state = State::Failed;
            m.reason = Some(format!("cannot read the report: {e:#}"));
        }
    }
    if let (Some(opts), Some(rec)) = (sampled, recording) {
        add_telemetry(&mut m, opts, rec);
    }
    if m.state != State::Valid {
        runner.note(&format!(
            "{} marked {}: {}",
            m.step,
            m.state.as_str(),
            m.reason.as_deref().unwrap_or("")
        ));
    }
    m
}

/// Adds a step's GPU telemetry to its measurement: the summary as metrics, what could not be
/// sampled as warnings, and clock or throttling evidence (INVALID evidence or a warning).
fn add_telemetry(m: &mut Measurement, opts: &TelemetryOptions, rec: crate::telemetry::Recording) {
    let output_tokens = m
        .metrics
        .get("TOTAL_OUTPUT_TOKENS")
        .copied()
        .or_else(|| Some(m.metrics.get("NUM_REQUESTS")? * m.metrics.get("AVG_OUTPUT_LENGTH")?));
    let summary = rec.summary(output_tokens);
    for (k, v) in summary.metrics() {
        m.metrics.entry(k).or_insert(v);
    }
    m.warnings.extend(
        summary
            .problems
            .iter()
            .map(|p| format!("GPU telemetry: {p}")),
    );
    let evidence = crate::telemetry::clock_evidence(
        &summary,
        &rec,
        opts.target_sm_mhz,
        opts.max_below_pct,
        opts.max_share,
    );
    if opts.invalid_on_evidence {
        m.evidence.extend(evidence);
    } else {
        m.warnings
            .extend(evidence.into_iter().map(|e| format!("GPU telemetry: {e}")));
    }
    m.telemetry = Some(std::sync::Arc::new(rec));
}

/// Parses the step's slice of the log, and its report.json when it wrote one.
fn read_report(log: &Path, run: &StepRun, json: Option<&Path>) -> anyhow::Result<Report> {
    let mut f = File::open(log)?;
    f.seek(SeekFrom::Start(run.log_range.start))?;
    let len = run.log_range.end.saturating_sub(run.log_range.start);
    let text = report::parse_reader(BufReader::with_capacity(1 << 20, f.take(len)))?;
    let json = match json {
        Some(path) if path.exists() => {
            let s = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some(
                report::parse_report_json(&s)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            )
        }
        _ => None,
    };
    let had_json = json.is_some();
    let mut r = report::reconcile(text, json);
    if !had_json && matches!(r.kind, ReportKind::Throughput | ReportKind::Latency) {
        r.warnings
            .push("no report.json was written; the values come from the text report".into());
    }
    Ok(r)
}

fn judge(m: &mut Measurement, report: Report, required: &[&str]) {
    let mut problems = Vec::new();
    if report.kind == ReportKind::Unknown && m.step != "build" {
        problems.push("the output holds no trtllm-bench report".to_string());
    }
    if report.reports_found > 1 {
        problems.push(format!(
            "the output holds {} reports; one run must print one",
            report.reports_found
        ));
    }
    if let Some(n) = report.failed_requests.filter(|n| *n > 0) {
        problems.push(format!("{n} request(s) failed"));
    }
    for marker in &report.error_markers {
        problems.push(format!("the benchmark printed `{marker}`"));
    }
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|name| !report.metrics.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        let place = match &report.era {
            Some(era) => format!("the era {era} report and the log do not have them"),
            None => "not in the report or log".to_string(),
        };
        problems.push(format!(
            "missing metric(s): {} ({place})",
            missing.join(", ")
        ));
    }
    m.metrics = report.metrics;
    m.warnings = report.warnings;
    // Values that contradict each other: the gate makes the step's verdicts INVALID.
    m.evidence.extend(report.contradictions);
    if !problems.is_empty() {
        m.state = State::Failed;
        m.reason = Some(problems.join("; "));
    }
}
