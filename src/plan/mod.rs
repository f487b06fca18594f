//! What one test will do, as plain data: its cases, each case's steps (files to write, argv to
//! run, services to keep alive, metrics to expect), and why it cannot run. A backend (the
//! layer above) fills it in from a parsed name, the catalog and the options; nothing
//! here touches the filesystem or starts a process, so `--dry-run`, `perfgate plan` and most
//! tests read plans without running anything.
//!
//! Steps come in four generic phases (a label names each within its test):
//! - **prepare**: make the case's inputs (its dataset); run once per case, not measured;
//! - **setup**: shared by the test's cases and measured once (an engine build);
//! - **service**: a process started in the background and kept alive while the steps after it
//!   in its scope run (a server): the whole test when it is a setup step, else its case;
//! - **measure**: the benchmark itself, repeated, read by its backend into metrics.

pub mod placement;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::config::CaseSpec;
use crate::dataset::DatasetRequest;
use crate::physics::Roofline;
use crate::record::Expectations;
use crate::textutil::shell_join;

/// When a step runs and what is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Prepare,
    Setup,
    Service,
    Measure,
}

/// One step: a dataset generated in-process, a command run to completion, or a service kept
/// running.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub phase: Phase,
    /// The step's name within its test (`dataset`, `build`, `throughput`, `server`, ...):
    /// logs, result files and the history name measurements by it.
    #[serde(rename = "kind")]
    pub label: &'static str,
    /// The backend that planned the step and reads its output.
    pub backend: &'static str,
    /// The command line (for the dataset step, the equivalent `perfgate dataset` command).
    pub argv: Vec<String>,
    /// Environment variables set for the command, beyond the inherited ones.
    pub env: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetRequest>,
    /// Files the step produces. A measure step's outputs are removed before it runs, so a file
    /// left by an earlier run is never read as this run's.
    pub outputs: Vec<PathBuf>,
    /// Files written before the step runs (the extra LLM API YAML), with their contents.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PlannedFile>,
    /// Where the command's standard output goes (upstream's `--stdout > file` generator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_to: Option<PathBuf>,
    /// Metrics the step's output must hold; a missing one fails the measurement.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<&'static str>,
    /// How a service step is known to be ready, and where its output goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,
    /// What a correct report of this step shows, from its dataset (the gate's validity
    /// checks); `None` when the step runs a workload of its own.
    #[serde(skip)]
    pub expect: Option<Expectations>,
    /// What a setup step is called in summaries and in the reason of the cases its failure
    /// stops (`engine build`).
    #[serde(skip)]
    pub title: Option<&'static str>,
}

/// A file written before a step runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedFile {
    pub path: PathBuf,
    pub contents: String,
    /// Which rule set each key (for `perfgate config` and the plan).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<(String, String)>,
}

/// A service step's contract with the runner.
///
/// `{port}` anywhere in the step's argv, env or readiness check is replaced by a free port the
/// runner picks (bind to port 0, read the port the kernel gave; on the rare race the service
/// dies on start and is retried with another). Steps after a ready service find its address in
/// `{<label>.addr}`, `{<label>.host}`, `{<label>.port}` and `{<label>.url}` in their argv, env
/// and planned files, and in the environment as `PERFGATE_<LABEL>_ADDR`, `_HOST`, `_PORT` and
/// `_URL`. `{perfgate.auth_key}` is a secret made for each run of a test (64 hex digits).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSpec {
    pub ready: Readiness,
    /// How long the service may take to become ready.
    #[serde(serialize_with = "ser_secs")]
    pub ready_timeout: Duration,
    /// The service's own log (stdout and stderr): it runs beside the steps whose output goes
    /// to the test's log.
    pub log: PathBuf,
}

/// How a service says it is ready.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Readiness {
    /// `GET url` answers 200.
    Http { url: String },
    /// A line of its output matches this regular expression.
    LogLine { pattern: String },
    /// It writes `host:port` to this file (trtllm-serve's `--report_addr`); then `GET
    /// http://host:port<path>` answers 200. A file left by an earlier run is removed before
    /// the service starts.
    ReportFile { path: PathBuf, health_path: String },
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Step {
    /// A service step of `backend`: started in the background, ready as `ready` says, kept
    /// alive for the case's measure steps. A report-address file is also an output (an earlier
    /// run's is removed before it starts).
    #[allow(clippy::too_many_arguments)]
    pub fn service(
        backend: &'static str,
        label: &'static str,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        files: Vec<PlannedFile>,
        ready: Readiness,
        ready_timeout: Duration,
        log: PathBuf,
    ) -> Step {
        let outputs = match &ready {
            Readiness::ReportFile { path, .. } => vec![path.clone()],
            _ => Vec::new(),
        };
        Step {
            phase: Phase::Service,
            label,
            backend,
            argv,
            env,
            dataset: None,
            outputs,
            files,
            stdout_to: None,
            required: Vec::new(),
            service: Some(ServiceSpec {
                ready,
                ready_timeout,
                log,
            }),
            expect: None,
            title: None,
        }
    }

    /// The command as a line that can be pasted into a shell. A value naming an inherited
    /// variable (`$LD_LIBRARY_PATH`) is left for the shell to expand, as the runner expands it.
    pub fn command_line(&self) -> String {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::textutil::shell_quote_expanding(v)))
            .collect();
        let mut cmd = shell_join(&self.argv);
        if let Some(out) = &self.stdout_to {
            cmd.push_str(&format!(
                " > {}",
                crate::textutil::shell_quote(&out.display().to_string())
            ));
        }
        if env.is_empty() {
            cmd
        } else {
            format!("{} {cmd}", env.join(" "))
        }
    }
}

/// One (bs, isl, osl) case: its directory, steps and the metrics its benchmark must report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CasePlan {
    pub spec: CaseSpec,
    pub dir: PathBuf,
    pub steps: Vec<Step>,
    /// The metrics upstream records for the case, from its first measure step.
    pub metrics: Vec<&'static str>,
    /// The case's physical limits on the GPU type, when its backend computed them (a serving
    /// case); otherwise the run computes them from the test's name when the test runs.
    #[serde(skip)]
    pub roofline: Option<Roofline>,
    /// Consecutive cases of one group share the services their first case starts (a server
    /// measured by one client per case); they stop when the group ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Metrics this kind of case gates by default, beyond the run's (`--gate-metrics` given
    /// explicitly replaces both).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gated: Vec<&'static str>,
    /// What upstream's database would record for the case (perf-sanity: the `s_`/`l_`/`b_`/`d_`
    /// fields without the metrics, and the keys its baselines are matched on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_record: Option<serde_json::Value>,
}

/// Everything one list entry will do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestPlan {
    pub raw: String,
    pub canonical: String,
    pub dir: PathBuf,
    /// Steps shared by every case (the engine build of the TensorRT flow, a shared server).
    pub setup: Vec<Step>,
    /// The metrics upstream records for the setup, from its first setup-phase step.
    pub setup_metrics: Vec<&'static str>,
    pub cases: Vec<CasePlan>,
    /// Why it cannot run (a catalog problem, a missing checkpoint): the test fails.
    pub blocked: Vec<String>,
    /// Why it is skipped, as upstream skips it (an unsupported runtime, no LoRA adapters, no
    /// checkpoint to build an engine from): the test is reported as ignored.
    pub skipped: Vec<String>,
    /// Why the cases have no physical limits although a GPU type was given.
    #[serde(skip)]
    pub physics_note: Option<String>,
    /// The GPUs the test occupies when its name does not say (a perf-sanity id: its largest
    /// server, or all its disaggregated workers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
}

impl TestPlan {
    /// A plan with nothing to run yet, in `<output_dir>/<raw as a file name>`.
    pub fn empty(raw: &str, canonical: String, dir: PathBuf) -> TestPlan {
        TestPlan {
            raw: raw.to_string(),
            canonical,
            dir,
            setup: Vec::new(),
            setup_metrics: Vec::new(),
            cases: Vec::new(),
            blocked: Vec::new(),
            skipped: Vec::new(),
            physics_note: None,
            gpus: None,
        }
    }

    /// Every step in the order it runs: the setup, then each case's steps.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.setup
            .iter()
            .chain(self.cases.iter().flat_map(|c| c.steps.iter()))
    }

    /// The setup step whose metrics are recorded (the first of the setup phase).
    pub fn measured_setup(&self) -> Option<&Step> {
        self.setup.iter().find(|s| s.phase == Phase::Setup)
    }

    /// A human-readable rendering: what `--dry-run` prints and writes as `plan.txt`.
    pub fn render(&self) -> String {
        let mut s = format!(
            "test      {}\ncanonical {}\ndir       {}\n",
            self.raw,
            self.canonical,
            self.dir.display()
        );
        for b in &self.blocked {
            s.push_str(&format!("blocked   {b}\n"));
        }
        for r in &self.skipped {
            s.push_str(&format!("skipped   {r}\n"));
        }
        for step in &self.setup {
            s.push_str(&format!(
                "setup     [{}] {}\n",
                capitalized(step.label),
                step.command_line()
            ));
        }
        if !self.setup_metrics.is_empty() {
            s.push_str(&format!(
                "          metrics: {}\n",
                self.setup_metrics.join(", ")
            ));
        }
        for (i, c) in self.cases.iter().enumerate() {
            s.push_str(&format!("case {}    {}\n", i + 1, c.spec.label));
            for step in &c.steps {
                for f in &step.files {
                    s.push_str(&format!("  {:<10} {}\n", "write", f.path.display()));
                    for line in f.contents.lines() {
                        s.push_str(&format!("  {:<10}   | {line}\n", ""));
                    }
                }
                s.push_str(&format!("  {:<10} {}\n", step.label, step.command_line()));
            }
            s.push_str(&format!("  metrics    {}\n", c.metrics.join(", ")));
        }
        s
    }
}

impl CasePlan {
    /// What each step's dataset makes a correct report show, by step label.
    pub fn expectations(&self) -> Vec<(&'static str, Expectations)> {
        self.steps
            .iter()
            .filter_map(|s| Some((s.label, s.expect?)))
            .collect()
    }

    /// The step whose metrics upstream records (the first of the measure phase).
    pub fn first_measure(&self) -> Option<&Step> {
        self.steps.iter().find(|s| s.phase == Phase::Measure)
    }
}

fn capitalized(label: &str) -> String {
    let mut c = label.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
