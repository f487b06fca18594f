//! Runs one planned test for real: the runner starts each step (and keeps each service up for
//! its scope), the step's backend reads what it printed and wrote, and each finished case goes
//! to the sinks at once. A failing case does not stop the test's other cases; an interrupt
//! stops everything.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::backend::{Reading, Registry, StepOutput};
use crate::plan::{CasePlan, Phase, Step, TestPlan};
use crate::record::{CaseId, CaseResult, Measurement, State};
use crate::runner::{Limits, Runner, Service, ServiceContext};
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

/// Runs `plan` and calls `on_case` as each case (and the shared setup) finishes. `registry`
/// gives each step's reader.
///
/// After a case's planned repetitions, `more` is asked whether to run one more (the gate
/// asks for reruns when its verdict is UNKNOWN); it is asked again after each one, so the
/// caller owns the budget.
pub fn execute(
    plan: &TestPlan,
    test_id: &str,
    registry: &Registry,
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
    let reader = Reader { registry };

    // The test's scope: setup steps run once; its services stay up for every case. Its
    // context holds the run's secret (`{perfgate.auth_key}`).
    let mut test_services = Scope {
        services: Vec::new(),
        context: ServiceContext::with_secret(),
    };
    let mut stopped: Option<String> = None;
    if !plan.setup.is_empty() {
        let measured = plan.measured_setup().map(|s| s.label);
        let mut case = CaseResult {
            id: id(test_id, plan, &plan.canonical, None),
            expected: measured
                .map(|label| plan.setup_metrics.iter().map(|m| (label, *m)).collect())
                .unwrap_or_default(),
            measurements: Vec::new(),
            reason: None,
            title: plan.measured_setup().and_then(|s| s.title),
            upstream_record: None,
        };
        for step in &plan.setup {
            match step.phase {
                Phase::Service => {
                    if let Err(e) = test_services.start(&mut runner, step) {
                        stopped = Some(format!("the {} service did not start: {e}", step.label));
                        break;
                    }
                }
                Phase::Setup => {
                    let m = measure(&mut runner, &reader, step, 1, &test_services.context, None);
                    let failed = m.state != State::Valid;
                    if failed {
                        let what = match step.title {
                            Some(t) => format!("the {t}"),
                            None => format!("the {} step", step.label),
                        };
                        stopped = Some(format!(
                            "{what} failed: {}",
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
                Phase::Prepare | Phase::Measure => {
                    if let Err(e) = runner.run_step(step, &test_services.context) {
                        stopped = Some(format!("{} step failed: {e}", step.label));
                        break;
                    }
                }
            }
        }
        if !plan.setup_metrics.is_empty() {
            if let (Some(why), true) = (&stopped, case.measurements.is_empty()) {
                case.reason = Some(why.clone());
            }
            finish(case, &mut out);
        }
    }

    let multi = plan.cases.len() > 1;
    // The services of the running group of cases (a server shared by its clients).
    let mut group: Option<Group> = None;
    for cp in &plan.cases {
        if group.as_ref().map(|g| &g.key) != cp.group.as_ref() {
            if let Some(mut ended) = group.take() {
                ended.scope.stop_all(&mut runner);
            }
            group = cp.group.as_ref().map(|key| Group {
                key: key.clone(),
                scope: test_services.nested(),
                started: false,
                failed: None,
            });
        }
        let case_name = multi.then(|| case_dir_name(cp));
        let mut case = CaseResult {
            id: id(test_id, plan, &cp.spec.label, case_name),
            expected: cp
                .first_measure()
                .map(|s| cp.metrics.iter().map(|m| (s.label, *m)).collect())
                .unwrap_or_default(),
            measurements: Vec::new(),
            reason: None,
            title: None,
            upstream_record: cp.upstream_record.clone(),
        };
        if let Some(signal) = crate::runner::signals::interrupted() {
            case.reason = Some(format!(
                "not run: interrupted by {}",
                crate::runner::process::signal_name(signal)
            ));
            finish(case, &mut out);
            continue;
        }
        if let Some(why) = &stopped {
            case.reason = Some(format!("not run: {why}"));
            finish(case, &mut out);
            continue;
        }
        if let Err(e) = test_services.check_alive() {
            stopped = Some(e.to_string());
            case.reason = Some(format!("not run: {e}"));
            finish(case, &mut out);
            continue;
        }
        if let Some(why) = group.as_ref().and_then(|g| g.failed.as_ref()) {
            case.reason = Some(format!("not run: {why}"));
            finish(case, &mut out);
            continue;
        }
        let mut prepared = true;
        // A group's services start with its first case and serve the cases after it.
        if let Some(g) = group.as_mut()
            && !g.started
        {
            g.started = true;
            for step in cp.steps.iter().filter(|s| s.phase == Phase::Service) {
                if let Err(e) = g.scope.start(&mut runner, step) {
                    let why = format!("the {} service did not start: {e}", step.label);
                    g.failed = Some(why.lines().next().unwrap_or_default().to_string());
                    case.reason = Some(format!("{} step failed: {e}", step.label));
                    prepared = false;
                    break;
                }
            }
        }
        let mut services = match &group {
            Some(g) => g.scope.nested(),
            None => test_services.nested(),
        };
        let own_steps = cp.steps.iter().filter(|s| {
            s.phase != Phase::Measure && !(group.is_some() && s.phase == Phase::Service)
        });
        for step in own_steps.filter(|_| prepared) {
            let done = match step.phase {
                Phase::Service => services.start(&mut runner, step).map(|_| ()),
                _ => runner.run_step(step, &services.context).map(|_| ()),
            };
            if let Err(e) = done {
                case.reason = Some(format!("{} step failed: {e}", step.label));
                prepared = false;
                break;
            }
        }
        let benches: Vec<&Step> = cp
            .steps
            .iter()
            .filter(|s| s.phase == Phase::Measure)
            .collect();
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
                let group_alive = match group.as_mut() {
                    Some(g) => g.scope.check_alive().inspect_err(|e| {
                        g.failed = Some(e.to_string().lines().next().unwrap_or_default().into());
                    }),
                    None => Ok(()),
                };
                if let Err(e) = services
                    .check_alive()
                    .and(group_alive)
                    .and(test_services.check_alive())
                {
                    case.reason = Some(e.to_string());
                    stop = true;
                    break;
                }
                let mut m = measure(
                    &mut runner,
                    &reader,
                    step,
                    rep,
                    &services.context,
                    opts.telemetry.as_ref(),
                );
                stop = m.state != State::Valid;
                if stop {
                    // A service that died under the step is the reason the step failed.
                    let died = services.check_alive().and(match group.as_mut() {
                        Some(g) => g.scope.check_alive(),
                        None => Ok(()),
                    });
                    if let Err(e) = died {
                        let first = e.to_string();
                        if let Some(g) = group.as_mut() {
                            g.failed = Some(first.lines().next().unwrap_or_default().into());
                        }
                        m.reason = Some(match m.reason.take() {
                            Some(r) => format!("{r}\n{first}"),
                            None => first,
                        });
                    }
                }
                case.measurements.push(m);
                if stop {
                    break;
                }
            }
            if stop {
                break;
            }
        }
        services.stop_all(&mut runner);
        // A group service that died during the case: the next cases of the group do not run.
        if let Some(g) = group.as_mut()
            && g.failed.is_none()
            && let Err(e) = g.scope.check_alive()
        {
            g.failed = Some(e.to_string().lines().next().unwrap_or_default().into());
        }
        finish(case, &mut out);
    }
    if let Some(mut g) = group.take() {
        g.scope.stop_all(&mut runner);
    }
    test_services.stop_all(&mut runner);
    Ok(out)
}

/// Cases sharing services: their key, the services, and why its cases cannot run.
struct Group {
    key: String,
    scope: Scope,
    started: bool,
    failed: Option<String>,
}

/// The services of one scope (a test, or a case inside it), started in order and stopped in
/// reverse; dropping the scope stops them too, so no path leaves one running.
#[derive(Default)]
struct Scope {
    services: Vec<Service>,
    context: ServiceContext,
}

impl Scope {
    /// A scope inside this one: it sees the outer services' addresses.
    fn nested(&self) -> Scope {
        Scope {
            services: Vec::new(),
            context: self.context.clone(),
        }
    }

    fn start(&mut self, runner: &mut Runner, step: &Step) -> Result<(), crate::runner::StepError> {
        let service = runner.start_service(step, &self.context)?;
        if let Some(addr) = &service.addr {
            self.context.add(step.label, addr);
        }
        self.services.push(service);
        Ok(())
    }

    fn check_alive(&mut self) -> Result<(), crate::runner::ServiceError> {
        for s in &mut self.services {
            s.check_alive()?;
        }
        Ok(())
    }

    fn stop_all(&mut self, runner: &mut Runner) {
        while let Some(mut s) = self.services.pop() {
            s.stop();
            runner.note(&format!("{} service stopped", s.label()));
        }
    }
}

/// Finds each step's backend.
struct Reader<'a> {
    registry: &'a Registry,
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

/// Runs one measured step and has its backend read the output. The measurement is `failed`
/// when the step failed, its output has a problem, or a required metric is missing.
fn measure(
    runner: &mut Runner,
    reader: &Reader,
    step: &Step,
    repetition: u32,
    context: &ServiceContext,
    telemetry: Option<&TelemetryOptions>,
) -> Measurement {
    if step.phase == Phase::Measure {
        // A report left by an earlier run must not be read as this run's.
        for path in &step.outputs {
            let _ = std::fs::remove_file(path);
        }
    }
    let started = std::time::SystemTime::now();
    let mut m = Measurement {
        step: step.label,
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
    let sampled = telemetry.filter(|_| step.phase == Phase::Measure);
    let recorder = sampled.map(|t| t.telemetry.start(&t.gpus, t.interval));
    let run = runner.run_step(step, context);
    let recording = recorder.map(|r| r.stop());
    let run = match run {
        Ok(run) => run,
        Err(e) => {
            m.ended = std::time::SystemTime::now();
            m.duration = m.ended.duration_since(started).unwrap_or_default();
            m.state = State::Failed;
            m.reason = Some(e.to_string());
            read_after_exit(&mut m, runner, reader, step, &e);
            return m;
        }
    };
    m.started = run.started;
    m.ended = run.ended;
    m.duration = run.duration;
    m.command = run.command.clone();
    let output = StepOutput {
        log: runner.log_path(),
        log_range: run.log_range.clone(),
        duration: run.duration,
    };
    let reading = match reader.registry.get(step.backend) {
        Some(backend) => backend.read(step, &output),
        None => Err(anyhow::anyhow!(
            "no backend `{}` is registered to read this step",
            step.backend
        )),
    };
    match reading {
        Ok(reading) => judge(&mut m, reading, &step.required),
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

/// A measured step that exited non-zero after printing its report (serve-bench exits 1 when a
/// request failed, its result block printed) is still read: the failure keeps the figures and
/// says what the report says went wrong, before the exit status.
fn read_after_exit(
    m: &mut Measurement,
    runner: &Runner,
    reader: &Reader,
    step: &Step,
    e: &crate::runner::StepError,
) {
    let crate::runner::StepError::Process(crate::runner::ProcessError::Exit { log_range, .. }) = e
    else {
        return;
    };
    if step.phase != Phase::Measure {
        return;
    }
    let Some(backend) = reader.registry.get(step.backend) else {
        return;
    };
    let output = StepOutput {
        log: runner.log_path(),
        log_range: log_range.clone(),
        duration: m.duration,
    };
    let Ok(reading) = backend.read(step, &output) else {
        return;
    };
    if reading.metrics.is_empty() {
        return;
    }
    let exit = m.reason.take().unwrap_or_default();
    judge(m, reading, &step.required);
    m.state = State::Failed;
    m.reason = Some(match m.reason.take() {
        Some(problems) => format!("{problems}; {exit}"),
        None => exit,
    });
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

fn judge(m: &mut Measurement, reading: Reading, required: &[&str]) {
    let mut problems = reading.problems;
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|name| !reading.metrics.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        let place = reading
            .missing_hint
            .unwrap_or_else(|| "not in the report or log".to_string());
        problems.push(format!(
            "missing metric(s): {} ({place})",
            missing.join(", ")
        ));
    }
    m.metrics = reading.metrics;
    m.warnings = reading.warnings;
    // Values that contradict each other: the gate makes the step's verdicts INVALID.
    m.evidence.extend(reading.contradictions);
    if !problems.is_empty() {
        m.state = State::Failed;
        m.reason = Some(problems.join("; "));
    }
}
