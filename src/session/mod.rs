//! A run: the lists collected and planned, the gate's sources opened, every result sink ready,
//! and then each test run (or, in a dry run, only planned) and judged as the harness asks for
//! it, and the run summed up at the end. Plain options in; the harness (`src/harness.rs`) is
//! the libtest glue around it and the command line's flags become [`RunOptions`] at the edge.

mod gate;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use regex::Regex;

pub use gate::GateOptions;
use gate::{CaseJudge, GateState, RunFacts};

use crate::backend::Registry;
use crate::collect::{CollectOptions, Collected, Collection};
use crate::config::PerfName;
use crate::execute::{ExecOptions, TelemetryOptions};
use crate::gate::env::Fingerprint;
use crate::models::ModelConfigs;
use crate::plan::TestPlan;
use crate::record::{CaseResult, VerdictRecord};
use crate::results::junit::Outcome;
use crate::results::{self, RunSummary, Sink, TestRecord};
use crate::runner;
use crate::shard::ShardSpec;
use crate::telemetry::Telemetry;
use crate::testlist::{Diagnostic, Severity};

/// Everything a run is told.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub collect: CollectOptions,
    /// Only tests whose id matches this regular expression.
    pub regexp: Option<String>,
    /// Plan every case and write its files, start nothing.
    pub dry_run: bool,
    /// Only list the tests (libtest's `--list`): open nothing.
    pub list_only: bool,
    /// Run tests the list marks SKIP too (libtest's `--ignored` / `--include-ignored`).
    pub force_ignored: bool,
    /// Run only the tests the list marks SKIP (libtest's `--ignored`).
    pub only_ignored: bool,
    /// Stream every step's output to the terminal too.
    pub echo: bool,
    /// Print no summary (libtest's `--quiet`, `--format json`, `--list`).
    pub quiet: bool,
    /// Time limit per test when the list gives none.
    pub timeout: Option<Duration>,
    /// Benchmark repetitions per case.
    pub repeat: u32,
    /// Stall limits.
    pub stall: Duration,
    pub fatal_stall: Duration,
    /// Upstream result files to write.
    pub csv: bool,
    pub yaml: bool,
    /// The JUnit report; `None`: `<output dir>/results.xml`.
    pub junit_xml: Option<PathBuf>,
    /// Run only this shard of the list.
    pub shard: Option<ShardSpec>,
    /// The run id; `None`: `<UTC time>-<pid>`.
    pub run_id: Option<String>,
    pub gate: GateOptions,
    /// Provenance flags as given (completed from the CI's variables when the run starts).
    pub provenance: crate::provenance::Provenance,
    pub telemetry: TelemetrySettings,
    /// The options that change which tests run or what they measure, recorded in
    /// `shard.json` (shards that differ in them are not one run).
    pub result_settings: serde_json::Value,
}

/// GPU telemetry around every measured step.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// Sample the GPUs (and take their facts, and the default test prefix, from NVML).
    pub enabled: bool,
    pub interval: Duration,
    pub clock_tolerance_pct: f64,
    pub throttle_share: f64,
    /// Flagged steps are INVALID (else a warning).
    pub invalid_on_throttle: bool,
    /// Lock application clocks for the run (needs root).
    pub lock_clocks: bool,
    /// The power sources sampled (`--power`; NVML by default).
    pub power: crate::telemetry::PowerChoice,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            enabled: true,
            interval: Duration::from_millis(200),
            clock_tolerance_pct: 10.0,
            throttle_share: 0.1,
            invalid_on_throttle: true,
            lock_clocks: false,
            power: crate::telemetry::PowerChoice::Nvml,
        }
    }
}

/// A test's result for the harness.
pub type TestResult = Result<TestPass, Failure>;

/// Why a test failed, and what kind of failure it is (the exit status tells them apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A gated verdict failed it (a regression, INVALID, or what `--fail-on` adds).
    Gate,
    /// It could not measure: an invalid name, a blocked plan, a benchmark or server that
    /// failed, timed out or reported failed requests.
    Test,
    /// perfgate could not do its own work (write results, the history).
    Internal,
}

impl Failure {
    fn test(message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Test,
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Internal,
            message: message.into(),
        }
    }
}

/// How many tests failed, by kind: what the run's exit status is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts {
    pub gate: usize,
    pub test: usize,
    pub internal: usize,
}

/// How a test ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestPass {
    Completed,
    Ignored(String),
}

/// A run in progress.
pub struct Session {
    registry: Registry,
    /// Model configs and GPU type for the physical limits; `None` when the GPU is unknown.
    physics: Option<(ModelConfigs, String)>,
    /// Baselines, history and the gate's settings; `None` in a dry run.
    gate: Option<GateState>,
    dry_run: bool,
    list_only: bool,
    quiet: bool,
    default_timeout: Option<Duration>,
    force_ignored: bool,
    exec: ExecOptions,
    /// Every result sink; empty in a dry run.
    sinks: Mutex<Vec<Box<dyn Sink>>>,
    /// Every finished case and verdict, for the summary at the end.
    finished: Mutex<Vec<CaseResult>>,
    verdicts: Mutex<Vec<VerdictRecord>>,
    /// The plans a dry run printed.
    plans: Mutex<Vec<String>>,
    failures: Mutex<FailureCounts>,
    output_dir: PathBuf,
    junit: PathBuf,
    telemetry: Option<Telemetry>,
    clock_lock: Option<crate::telemetry::ClockLock>,
    started: std::time::SystemTime,
}

/// Collects the lists, filters and shards the tests, and opens everything a run writes
/// (before the first benchmark, so a bad output directory or a corrupt history stops the run
/// at once). The tests come back in run order.
pub fn start(
    mut opts: RunOptions,
    registry: Registry,
) -> anyhow::Result<(Session, Vec<Collected>)> {
    let regexp = opts
        .regexp
        .as_deref()
        .map(Regex::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--regexp: invalid regular expression: {e}"))?;
    // The GPUs, once: their facts join the system description (test-db conditions, the
    // fingerprint, the GPU type) and name the test prefix when none is given.
    let power = crate::telemetry::PowerOptions::new(opts.telemetry.power);
    let telemetry = opts.telemetry.enabled.then(|| Telemetry::open_with(&power));
    if let Some(t) = &telemetry {
        match t.unavailable_reason() {
            Some(why) => eprintln!("perfgate: {why}"),
            None => {
                let mut facts = t.environment();
                // test-db lists condition on upstream's key for the GPU count.
                if let Some(n) = facts.get("gpu_count").cloned() {
                    facts.entry("system_gpu_count").or_insert(n);
                }
                if opts.collect.test_prefix.is_none()
                    && let Some(gpu) = facts.get("gpu_type").and_then(|g| g.as_str())
                {
                    opts.collect.test_prefix = Some(gpu.to_string());
                }
                opts.collect.detected = Some(facts);
            }
        }
    }
    let mut collection = opts.collect.collect(&registry)?;
    check_lists(&collection)?;
    if let Some(re) = &regexp {
        collection.tests.retain(|t| re.is_match(&t.test_id));
    }
    if opts.only_ignored {
        collection.tests.retain(|t| t.entry.markers.skip.is_some());
    }
    let run_id = match &opts.run_id {
        Some(id) => check_run_id(id)?,
        None => format!(
            "{}-{}",
            chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                .format("%Y%m%dT%H%M%SZ"),
            std::process::id()
        ),
    };
    let shard = match opts.shard {
        Some(spec) => Some(select_shard(&opts, &mut collection, spec, &run_id)?),
        None => None,
    };
    let output_dir = opts.collect.plan.output_dir.clone();
    let junit = opts
        .junit_xml
        .clone()
        .unwrap_or_else(|| output_dir.join("results.xml"));
    let started = std::time::SystemTime::now();
    let running = !(opts.dry_run || opts.list_only);
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let gate = if running {
        let facts = RunFacts {
            started: crate::record::rfc3339(started),
            fingerprint: Fingerprint::of(
                collection.system.as_ref(),
                collection.gpu_type.as_deref(),
            ),
            provenance: opts.provenance.clone().completed(),
        };
        let gate = GateState::open(
            &opts.gate,
            &output_dir,
            opts.collect.test_prefix.as_deref(),
            &run_id,
            collection.system.as_ref(),
            &facts,
        )?;
        if let Some(h) = &gate.history {
            sinks.push(Box::new(crate::history::sink::HistorySink::new(
                h.clone(),
                &run_id,
            )));
        }
        open_sinks(&opts, &run_id, &collection, &facts, &junit, &mut sinks)?;
        runner::signals::install();
        let record = shard_record(
            &opts,
            &run_id,
            shard,
            collection.tests.iter().map(|t| t.test_id.clone()).collect(),
        )?;
        sinks.push(Box::new(record));
        if !opts.quiet {
            sinks.push(Box::new(results::terminal::Terminal));
        }
        Some(gate)
    } else {
        None
    };
    let (telemetry_opts, clock_lock) = match &telemetry {
        Some(t) if running && t.unavailable_reason().is_none() => {
            telemetry_options(&opts.telemetry, t, &collection.configs)?
        }
        _ => (None, None),
    };
    let session = Session {
        physics: collection
            .gpu_type
            .clone()
            .map(|gpu| (collection.configs.clone(), gpu)),
        registry,
        gate,
        dry_run: opts.dry_run,
        list_only: opts.list_only,
        quiet: opts.quiet,
        default_timeout: opts.timeout,
        force_ignored: opts.force_ignored,
        exec: ExecOptions {
            repeat: opts.repeat,
            echo: opts.echo,
            limits: runner::Limits {
                stall: opts.stall,
                fatal_stall: opts.fatal_stall,
                ..runner::Limits::default()
            },
            timeout: None,
            dataset_cache: opts
                .collect
                .dataset_cache
                .clone()
                .unwrap_or_else(crate::dataset::default_cache_dir),
            telemetry: telemetry_opts,
        },
        sinks: Mutex::new(sinks),
        finished: Mutex::default(),
        verdicts: Mutex::default(),
        plans: Mutex::default(),
        failures: Mutex::default(),
        output_dir,
        junit,
        telemetry: if running { telemetry } else { None },
        clock_lock,
        started,
    };
    Ok((session, collection.tests))
}

/// Name errors fail their own test; only list-level errors stop the whole run.
fn check_lists(collection: &Collection) -> anyhow::Result<()> {
    let name_error_sources: std::collections::HashSet<(&PathBuf, usize)> = collection
        .tests
        .iter()
        .filter(|t| t.name.is_err())
        .map(|t| (&t.entry.source.file, t.entry.source.line))
        .collect();
    let list_errors: Vec<&Diagnostic> = collection
        .diagnostics
        .iter()
        .filter(|d| {
            d.severity == Severity::Error
                && !name_error_sources.contains(&(&d.source.file, d.source.line))
        })
        .collect();
    for d in &collection.diagnostics {
        if d.severity == Severity::Warning {
            eprintln!("{d}");
        }
    }
    if !list_errors.is_empty() {
        for d in &list_errors {
            eprintln!("{d}");
        }
        anyhow::bail!(
            "the test list has {} error(s); nothing was run (`perfgate lint` checks lists without running)",
            list_errors.len()
        );
    }
    Ok(())
}

/// Keeps only this shard's tests; returns what `shard.json` records of the partition.
fn select_shard(
    opts: &RunOptions,
    collection: &mut Collection,
    spec: ShardSpec,
    run_id: &str,
) -> anyhow::Result<(ShardSpec, u32, String)> {
    let history = (!opts.gate.no_history)
        .then_some(opts.gate.history.as_deref())
        .flatten();
    let refs: Vec<&Collected> = collection.tests.iter().collect();
    let cases = crate::shard::shard_cases(
        &refs,
        &crate::history::test_durations(history, Some(run_id))?,
    );
    let shards = crate::shard::partition(&cases, spec.count)?;
    let hash = crate::shard::partition_hash(&shards);
    let mine =
        shards
            .into_iter()
            .nth(spec.index - 1)
            .ok_or(crate::shard::ShardError::NoSuchShard {
                index: spec.index,
                count: spec.count,
            })?;
    let ids: std::collections::HashSet<&str> = mine.test_ids.iter().map(String::as_str).collect();
    collection
        .tests
        .retain(|t| ids.contains(t.test_id.as_str()));
    eprintln!(
        "perfgate: shard {spec}: {} test(s) of {} GPU(s), expected cost {:.1} {}",
        mine.test_ids.len(),
        mine.gpus,
        mine.expected_cost,
        cases.first().map_or("", |c| match c.unit {
            crate::shard::CostUnit::Seconds => "s",
            crate::shard::CostUnit::Tokens => "tokens",
        })
    );
    Ok((spec, mine.gpus, hash))
}

/// Opens every result file (the upstream CSV and YAML, results.jsonl, gpu_monitoring.csv,
/// gate.jsonl with the report, JUnit) in the order they are written.
fn open_sinks(
    opts: &RunOptions,
    run_id: &str,
    collection: &Collection,
    facts: &RunFacts,
    junit: &Path,
    sinks: &mut Vec<Box<dyn Sink>>,
) -> anyhow::Result<()> {
    let dir = &opts.collect.plan.output_dir;
    std::fs::create_dir_all(dir).map_err(|e| {
        anyhow::anyhow!("{}: cannot create the output directory: {e}", dir.display())
    })?;
    let c = &opts.collect;
    let system = collection.system.as_ref();
    let mut env = serde_json::Map::new();
    env.insert("perfgate".into(), env!("CARGO_PKG_VERSION").into());
    env.insert("host".into(), hostname().into());
    env.insert("bench_cmd".into(), c.plan.trtllm.bench_cmd.clone().into());
    env.insert("test_prefix".into(), c.test_prefix.clone().into());
    env.insert("gpu".into(), c.gpu.clone().into());
    env.insert("sm".into(), c.sm.into());
    env.insert("repeat".into(), opts.repeat.into());
    // What `perfgate history import` needs to rebuild the run's history row exactly.
    env.insert("run_started".into(), facts.started.clone().into());
    env.insert("fingerprint".into(), facts.fingerprint.to_string().into());
    let p = &facts.provenance;
    env.insert("revision".into(), p.revision.clone().into());
    env.insert("branch".into(), p.branch.clone().into());
    env.insert("build_url".into(), p.build_url.clone().into());
    if let Some(system) = system {
        env.insert("system".into(), serde_json::Value::Object(system.clone()));
    }
    let gpu = results::upstream::GpuColumns {
        device_subtype: system
            .and_then(|s| s.get("gpu_type"))
            .and_then(|g| g.as_str())
            .map(str::to_string),
        ..results::upstream::GpuColumns::default()
    };
    // gpu_monitoring.csv first: the upstream rows carry the clocks its samples give.
    sinks.push(Box::new(results::GpuMonitoring::new(dir)));
    if opts.csv {
        sinks.push(Box::new(results::upstream::CsvWriter::open(
            dir,
            gpu.clone(),
        )?));
    }
    if opts.yaml {
        sinks.push(Box::new(results::upstream::YamlWriter::open(dir, gpu)?));
    }
    sinks.push(Box::new(results::jsonl::JsonlWriter::open(
        dir, run_id, env,
    )?));
    sinks.push(Box::new(results::verdicts::VerdictWriter::open(
        dir,
        &format!("perfgate {run_id}"),
    )?));
    let junit = results::junit::JunitWriter::new(junit, "perf");
    // A valid (empty) report from the start: CI finds one even if the run dies at once.
    junit.write()?;
    sinks.push(Box::new(junit));
    Ok(())
}

impl Session {
    /// Runs (or plans) one test and records it in every sink.
    pub fn run_test(&self, t: &Collected) -> TestResult {
        let result = self.run_and_record(t);
        if let (Err(f), Ok(mut counts)) = (&result, self.failures.lock()) {
            match f.kind {
                FailureKind::Gate => counts.gate += 1,
                FailureKind::Test => counts.test += 1,
                FailureKind::Internal => counts.internal += 1,
            }
        }
        result
    }

    fn run_and_record(&self, t: &Collected) -> TestResult {
        let started = std::time::SystemTime::now();
        let clock = std::time::Instant::now();
        let mut record = Record::default();
        let result = self.decide(t, &mut record);
        if self.dry_run || self.list_only {
            return result;
        }
        let outcome = match &result {
            Ok(TestPass::Completed) => Outcome::Passed,
            Ok(TestPass::Ignored(reason)) => Outcome::Skipped {
                message: reason.clone(),
            },
            Err(e) => Outcome::Failed {
                message: first_line(&e.message).to_string(),
                detail: record.detail.clone().unwrap_or_else(|| e.message.clone()),
            },
        };
        let test = TestRecord {
            test_id: t.test_id.clone(),
            outcome,
            duration: clock.elapsed(),
            started,
            cases: record.cases,
            verdicts: record.verdicts,
            log_tail: record.log_tail,
        };
        let mut sinks = match self.sinks.lock() {
            Ok(s) => s,
            Err(_) => return Err(Failure::internal("the result sinks are poisoned")),
        };
        for sink in sinks.iter_mut() {
            if let Err(e) = sink.test_finished(&test) {
                return Err(Failure::internal(format!(
                    "cannot write {}: {e:#}",
                    sink.what()
                )));
            }
        }
        result
    }

    /// The verdict, with the list markers applied.
    fn decide(&self, t: &Collected, record: &mut Record) -> TestResult {
        let m = &t.entry.markers;
        if let Some(reason) = &m.skip
            && !self.force_ignored
        {
            return Ok(TestPass::Ignored(format!("SKIP: {reason}")));
        }
        if let Some(signal) = runner::signals::interrupted() {
            return Ok(TestPass::Ignored(format!(
                "not run: interrupted by {}",
                runner::process::signal_name(signal)
            )));
        }
        let outcome = self.execute(t, record);
        match (outcome, &m.xfail, &m.unstable) {
            (Err(e), Some(reason), _) => Ok(TestPass::Ignored(format!(
                "XFAIL ({reason}): failed as expected: {}",
                first_line(&e.message)
            ))),
            (Err(e), None, Some(reason)) => Ok(TestPass::Ignored(format!(
                "UNSTABLE ({reason}): failed: {}",
                first_line(&e.message)
            ))),
            (Err(e), None, None) => Err(e),
            (Ok(c), _, _) => Ok(c),
        }
    }

    fn execute(&self, t: &Collected, record: &mut Record) -> TestResult {
        let source = &t.entry.source;
        t.name.as_ref().map_err(|e| {
            Failure::test(format!(
                "{source}: invalid test name `{}`: {e}",
                t.entry.raw
            ))
        })?;
        let plan = t
            .plan
            .as_ref()
            .ok_or_else(|| Failure::internal(format!("{source}: no plan")))?;
        if self.dry_run {
            let written = write_plan_files(plan, Some(&self.exec.dataset_cache))
                .map_err(|e| Failure::internal(format!("{e:#}")))?;
            if let Ok(mut p) = self.plans.lock() {
                p.push(plan.render() + &physics_text(self.physics.as_ref(), t) + &written);
            }
        }
        if !plan.blocked.is_empty() {
            return Err(Failure::test(format!(
                "{source}: cannot run: {}",
                plan.blocked.join("; ")
            )));
        }
        if !plan.skipped.is_empty() {
            let how = if self.dry_run {
                "planned only"
            } else {
                "skipped"
            };
            return Ok(TestPass::Ignored(format!(
                "{how}: {}",
                plan.skipped.join("; ")
            )));
        }
        if self.dry_run {
            return Ok(TestPass::Completed);
        }
        write_plan_files(plan, None).map_err(|e| Failure::internal(format!("{e:#}")))?;
        let mut opts = self.exec.clone();
        if let Some(tel) = &mut opts.telemetry {
            let gpus = match &t.name {
                Ok(PerfName::Standard(cfg)) => Some(cfg.num_gpus),
                _ => plan.gpus,
            };
            if let Some(n) = gpus {
                tel.gpus = gpus_of_test(n, tel.telemetry.device_count());
            }
        }
        opts.timeout = t
            .entry
            .markers
            .timeout_minutes
            .map(|m| Duration::from_secs(u64::from(m) * 60))
            .or(self.default_timeout);
        // A backend that computed its cases' limits (serving) is not second-guessed.
        let roofs = if plan.cases.iter().any(|c| c.roofline.is_some()) {
            Vec::new()
        } else {
            rooflines(self.physics.as_ref(), t).unwrap_or_default()
        };
        let judge = CaseJudge::new(plan, &roofs, self.gate.as_ref(), self.exec.repeat);
        let mut write_error: Option<String> = None;
        let mut verdicts: Vec<VerdictRecord> = Vec::new();
        let mut on_case = |case: &CaseResult| {
            let records = judge.judge(case);
            if let Ok(mut f) = self.finished.lock() {
                f.push(case.clone());
            }
            if let Ok(mut v) = self.verdicts.lock() {
                v.extend(records.iter().cloned());
            }
            match self.sinks.lock() {
                Ok(mut sinks) => {
                    for sink in sinks.iter_mut() {
                        if let Err(e) = sink.case_finished(case, &records) {
                            write_error
                                .get_or_insert(format!("cannot write {}: {e:#}", sink.what()));
                            break;
                        }
                    }
                }
                Err(_) => {
                    write_error.get_or_insert("the result sinks are poisoned".into());
                }
            }
            verdicts.extend(records);
        };
        let mut more = |case: &CaseResult| judge.wants_rerun(case);
        let outcome = crate::execute::execute(
            plan,
            &t.test_id,
            &self.registry,
            &opts,
            &mut on_case,
            &mut more,
        )
        .map_err(|e| Failure::internal(format!("{e:#}")))?;
        record.cases = outcome.cases.clone();
        record.verdicts = verdicts;
        if let Some(e) = write_error {
            return Err(Failure::internal(e));
        }
        if let Some((message, detail)) = outcome.failure() {
            let tail = runner::process::tail(&outcome.log, 0, 30);
            record.log_tail = Some(tail.clone());
            // A reason from a failed process already ends with the lines it printed; the
            // log's tail is added only when none does (it would be the same lines again).
            let detail = if detail.lines().any(|l| l.starts_with("  | ")) {
                detail
            } else {
                format!("{detail}\nlast lines of the log:\n{tail}")
            };
            record.detail = Some(detail.clone());
            // The message is the first reason's first line: the detail goes on from there.
            let rest: Vec<&str> = detail.lines().skip(1).collect();
            return Err(Failure::test(format!("{message}\n{}", rest.join("\n"))));
        }
        if let Some(gate) = &self.gate {
            let failures = gate.opts.fail_on.failures(&record.verdicts);
            if let Some(first) = failures.first() {
                // The explanation begins with the verdict (`FAIL: regression of ...`).
                let line = |r: &VerdictRecord| {
                    format!(
                        "[{}] {}: {}",
                        r.case.as_deref().unwrap_or(&r.network_name),
                        r.metric,
                        r.explanation
                    )
                };
                let detail: Vec<String> = failures.iter().map(|r| line(r)).collect();
                let more = if failures.len() > 1 {
                    format!(" (and {} more)", failures.len() - 1)
                } else {
                    String::new()
                };
                let change = first
                    .change_pct
                    .map_or(String::new(), |c| format!(" {c:+.2}%"));
                let message = format!("gate: {} {}{change}{more}", first.verdict, first.metric);
                record.detail = Some(detail.join("\n"));
                return Err(Failure {
                    kind: FailureKind::Gate,
                    message: format!("{message}\n{}", detail.join("\n")),
                });
            }
        }
        Ok(TestPass::Completed)
    }

    /// Ends the run: the plans a dry run made, the history's run and change points, the
    /// clocks restored, the session's properties, and every sink's end (the summary).
    pub fn finish(mut self) -> FailureCounts {
        let counts = self.failures.lock().map(|c| *c).unwrap_or_default();
        if self.dry_run && !self.quiet {
            let plans = self.plans.lock().map(|p| p.clone()).unwrap_or_default();
            if !plans.is_empty() {
                println!(
                    "planned steps (dry run; written under {}):\n",
                    self.output_dir.display()
                );
                for p in plans {
                    println!("{p}");
                }
            }
        }
        let change_points = self.gate.as_ref().and_then(GateState::finish);
        // The original clocks come back before the summary, also after an interrupt (a panic
        // unwinds through the lock's drop, which restores them too).
        if let Some(lock) = self.clock_lock.take() {
            match lock.restore() {
                Ok(()) => eprintln!("perfgate: original application clocks restored"),
                Err(e) => eprintln!("perfgate: cannot restore the application clocks: {e}"),
            }
        }
        if self.dry_run || self.list_only {
            return counts;
        }
        let facts = self
            .telemetry
            .as_ref()
            .map(Telemetry::environment)
            .unwrap_or_default();
        if let Err(e) = crate::telemetry::write_session_properties(
            &self.output_dir,
            &facts,
            self.started,
            std::time::SystemTime::now(),
        ) {
            eprintln!("perfgate: {e:#}");
        }
        let summary = RunSummary {
            cases: self.finished.lock().map(|c| c.clone()).unwrap_or_default(),
            verdicts: self.verdicts.lock().map(|v| v.clone()).unwrap_or_default(),
            gate: self.gate.as_ref().map(GateState::describe),
            change_points,
            output_dir: self.output_dir.clone(),
            junit: self.junit.clone(),
            report: self.output_dir.join(results::verdicts::MARKDOWN_FILE),
        };
        if let Ok(mut sinks) = self.sinks.lock() {
            for sink in sinks.iter_mut() {
                if let Err(e) = sink.run_finished(&summary) {
                    eprintln!("perfgate: cannot write {}: {e:#}", sink.what());
                }
            }
        }
        counts
    }
}

/// What a test produced besides its verdict, for the sinks.
#[derive(Default)]
struct Record {
    cases: Vec<CaseResult>,
    verdicts: Vec<VerdictRecord>,
    detail: Option<String>,
    log_tail: Option<String>,
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// The physical limits of a test's cases on the GPU type (computed when the test runs, not for
/// every name of a list at collection).
fn rooflines(
    physics: Option<&(ModelConfigs, String)>,
    t: &Collected,
) -> Result<Vec<crate::physics::Roofline>, String> {
    match (physics, &t.name) {
        (Some((configs, gpu)), Ok(PerfName::Standard(cfg))) => {
            crate::physics::rooflines(configs, cfg, gpu).map_err(|e| e.to_string())
        }
        _ => Ok(Vec::new()),
    }
}

/// The physical limits of a test's cases for the dry run; empty when the GPU type is unknown.
fn physics_text(physics: Option<&(ModelConfigs, String)>, t: &Collected) -> String {
    if let Some(plan) = &t.plan {
        if let Some(note) = &plan.physics_note {
            return format!("  physical limits: {note}\n");
        }
        let planned: String = plan
            .cases
            .iter()
            .filter_map(|c| c.roofline.as_ref())
            .map(|r| r.limits().render())
            .collect();
        if !planned.is_empty() {
            return planned;
        }
    }
    match rooflines(physics, t) {
        Ok(roofs) => roofs.iter().map(|r| r.limits().render()).collect(),
        Err(e) => format!("  physical limits: {e}\n"),
    }
}

/// Sampling settings for every benchmark step, and the clock lock when asked for one (held
/// until the run ends; dropping it restores the clocks).
fn telemetry_options(
    settings: &TelemetrySettings,
    telemetry: &Telemetry,
    configs: &ModelConfigs,
) -> anyhow::Result<(
    Option<TelemetryOptions>,
    Option<crate::telemetry::ClockLock>,
)> {
    let facts = telemetry.environment();
    let gpu_name = facts.get("gpu_name").and_then(|v| v.as_str());
    let target = gpu_name.and_then(|n| crate::telemetry::clock_target(configs, n));
    let lock = if settings.lock_clocks {
        let (sm, mem) = target.ok_or_else(|| {
            anyhow::anyhow!(
                "--lock-clocks: no clock target for the GPU `{}` in model_configs/gpus.yaml",
                gpu_name.unwrap_or("unknown")
            )
        })?;
        let all: Vec<u32> = (0..telemetry.device_count()).collect();
        let lock = telemetry
            .lock_clocks(&all, sm, mem)
            .map_err(|e| anyhow::anyhow!("--lock-clocks: {e}"))?;
        eprintln!("perfgate: application clocks locked at SM {sm} MHz, memory {mem} MHz");
        Some(lock)
    } else {
        None
    };
    Ok((
        Some(TelemetryOptions {
            telemetry: telemetry.clone(),
            interval: settings.interval,
            gpus: Vec::new(),
            target_sm_mhz: target.map(|(sm, _)| sm),
            max_below_pct: settings.clock_tolerance_pct,
            max_share: settings.throttle_share,
            invalid_on_evidence: settings.invalid_on_throttle,
        }),
        lock,
    ))
}

/// The NVML indices of the GPUs a test of `n` GPUs runs on: the first `n` of
/// `CUDA_VISIBLE_DEVICES` when it lists indices, else the first `n` of the machine.
fn gpus_of_test(n: u32, devices: u32) -> Vec<u32> {
    let visible: Option<Vec<u32>> = std::env::var("CUDA_VISIBLE_DEVICES")
        .ok()
        .and_then(|v| v.split(',').map(|i| i.trim().parse().ok()).collect());
    match visible {
        Some(list) => list.into_iter().take(n.max(1) as usize).collect(),
        None => (0..n.max(1).min(devices)).collect(),
    }
}

/// Writes what a case needs before anything runs (`plan.txt`, `plan.json`, `commands.sh`, the
/// YAML, LoRA links) and says what was written. A dry run (`dataset_cache` given) also writes
/// the datasets; one whose tokenizer is not on this machine is reported, not fatal.
fn write_plan_files(plan: &TestPlan, dataset_cache: Option<&Path>) -> anyhow::Result<String> {
    std::fs::create_dir_all(&plan.dir).map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot create the work directory: {e}",
            plan.dir.display()
        )
    })?;
    crate::fsutil::write(&plan.dir.join("plan.txt"), plan.render().as_bytes())?;
    crate::fsutil::write(
        &plan.dir.join("plan.json"),
        serde_json::to_string_pretty(plan)?.as_bytes(),
    )?;
    let mut script =
        String::from("#!/bin/sh\n# The commands perfgate runs for this test, in order.\nset -e\n");
    for step in plan.steps() {
        script.push_str(&step.command_line());
        if step.service.is_some() {
            script.push_str(" &");
        }
        script.push('\n');
    }
    crate::fsutil::write(&plan.dir.join("commands.sh"), script.as_bytes())?;
    let mut written = format!(
        "          wrote {}/{{plan.txt,plan.json,commands.sh}}\n",
        plan.dir.display()
    );
    for step in plan.steps() {
        runner::write_step_files(step)?;
        for f in &step.files {
            written.push_str(&format!("          wrote {}\n", f.path.display()));
        }
        if let (Some(cache), Some(req)) = (dataset_cache, &step.dataset) {
            if !req.tokenizer.exists() {
                written.push_str(&format!(
                    "          dataset not written: tokenizer {} is not on this machine (set --models-root, or --tokenizer for a stand-in)\n",
                    req.tokenizer.display()
                ));
                continue;
            }
            let made = crate::dataset::generate_for_plan(req, cache)?;
            let how = if made.reused { "reused" } else { "generated" };
            written.push_str(&format!(
                "          wrote {} ({how})\n",
                made.path.display()
            ));
        }
    }
    Ok(written)
}

/// A run id: it names files and history rows, so only letters, digits and `._:+-`.
pub fn check_run_id(id: &str) -> anyhow::Result<String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:+-".contains(c));
    if !ok {
        anyhow::bail!(
            "--run-id `{id}`: expected 1 to 128 letters, digits or `._:+-` (e.g. slurm-123456)"
        );
    }
    Ok(id.to_string())
}

fn shard_record(
    opts: &RunOptions,
    run_id: &str,
    shard: Option<(ShardSpec, u32, String)>,
    assigned: Vec<String>,
) -> anyhow::Result<crate::shard::ShardRecord> {
    let lists = opts
        .collect
        .test_lists
        .iter()
        .map(|p| crate::shard::ListDigest::of(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let settings = opts.result_settings.clone();
    let now = crate::record::rfc3339(std::time::SystemTime::now());
    let record = crate::shard::ShardRecord {
        perfgate: env!("CARGO_PKG_VERSION").to_string(),
        run_id: run_id.to_string(),
        lists,
        settings_sha256: crate::textutil::sha256_hex(settings.to_string().as_bytes()),
        settings,
        shard: shard
            .as_ref()
            .map_or(ShardSpec { index: 1, count: 1 }, |(s, _, _)| *s),
        gpus: shard.as_ref().map(|(_, g, _)| *g),
        partition_sha256: shard.map(|(_, _, h)| h),
        assigned,
        finished: Vec::new(),
        started: now.clone(),
        updated: now,
        dir: opts.collect.plan.output_dir.clone(),
    };
    record.write(&opts.collect.plan.output_dir)?;
    Ok(record)
}
