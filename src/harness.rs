//! The pytest-style harness behind `cargo test -- --test-list FILE`: collects the lists into
//! libtest-mimic trials named like upstream's test ids, and runs (or, with `--dry-run`, only
//! plans) each one. `tests/perf.rs` is a one-line shell over [`main`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use regex::Regex;

use crate::config::{self, NameError, PerfName};
use crate::execute::{ExecOptions, TelemetryOptions};
use crate::gate::baseline::Baselines;
use crate::gate::env::Fingerprint;
use crate::gate::evaluate::BaselineRef;
use crate::gate::evaluate::{
    self as gate_eval, CaseContext, DEFAULT_GATED, FailOn, GateMode, Reference,
};
use crate::gate::physics::Roofline;
use crate::gate::record::VerdictRecord;
use crate::gate::stats::GateParams;
use crate::gate::validity::Expectations;
use crate::history::{History, MeasurementRow, RunMeta, SeriesQuery};
use crate::models::ModelConfigs;
use crate::plan::{self, DatasetGenerator, PlanOptions, StepKind, TestPlan};
use crate::results::{
    self, Writers,
    junit::{JunitCase, Outcome},
};
use crate::runner;
use crate::telemetry::Telemetry;
use crate::testlist::{self, Diagnostic, LoadOptions, Severity, System, TestEntry};

/// Options shared by the harness and the CLI. Every flag also reads an environment variable,
/// because `cargo nextest run` cannot pass arguments to a harness.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Test list(s): plain text or test-db YAML (`.yml`). Repeat or separate with commas.
    #[arg(
        long = "test-list",
        short = 'F',
        env = "PERF_TEST_LIST",
        value_delimiter = ','
    )]
    pub test_list: Vec<PathBuf>,
    /// Prefix of every test id, usually the GPU / CI stage (e.g. `H100_80GB_HBM3`).
    #[arg(long, short = 'P', env = "PERF_TEST_PREFIX")]
    pub test_prefix: Option<String>,
    /// Where results, logs and per-case work directories go.
    #[arg(
        long,
        short = 'O',
        env = "PERF_OUTPUT_DIR",
        default_value = "perf-output"
    )]
    pub output_dir: PathBuf,
    /// The machine test-db conditions are evaluated against (JSON object: gpu, chip,
    /// system_gpu_count, gpu_memory, compute_capability, supports_fp8, ...).
    #[arg(long, env = "PERF_SYSTEM")]
    pub system: Option<PathBuf>,
    /// Set or override one key of the system description, e.g. `--system-set stage=post_merge`.
    #[arg(long = "system-set", value_name = "KEY=VALUE")]
    pub system_set: Vec<String>,
    /// The test-db context to read (needed when a YAML list has several).
    #[arg(long, env = "PERF_CONTEXT")]
    pub context: Option<String>,
    /// Root of the model checkpoints.
    #[arg(long, env = "LLM_MODELS_ROOT", default_value = "/models")]
    pub models_root: PathBuf,
    /// Directory holding models.yaml (and the other model configs); default: the copy built in.
    #[arg(long, env = "PERF_MODEL_CONFIGS")]
    pub model_configs: Option<PathBuf>,
    /// The benchmark executable.
    #[arg(long, env = "TRTLLM_BENCH", default_value = "trtllm-bench")]
    pub bench_cmd: String,
    /// Use this tokenizer (directory or tokenizer.json) for every dataset instead of each
    /// model's checkpoint directory.
    #[arg(long, env = "PERF_TOKENIZER")]
    pub tokenizer: Option<PathBuf>,
    /// The GPU's compute capability (e.g. 90, 100) for GPU-dependent LLM-API rules.
    #[arg(long, env = "PERF_SM", conflicts_with = "gpu")]
    pub sm: Option<u32>,
    /// The GPU type (e.g. H100_SXM, B200) whose SM selects GPU-dependent LLM-API rules.
    #[arg(long, env = "PERF_GPU")]
    pub gpu: Option<String>,
    /// Who generates datasets: perfgate's bit-exact port (default) or upstream's script.
    #[arg(
        long,
        value_enum,
        env = "PERF_DATASET_GENERATOR",
        default_value = "perfgate"
    )]
    pub dataset_generator: GeneratorArg,
    /// TensorRT-LLM source root, for `--dataset-generator upstream`.
    #[arg(long, env = "LLM_ROOT", default_value = ".")]
    pub llm_root: PathBuf,
    /// Also run `trtllm-bench latency` for every case.
    #[arg(long, env = "PERF_LATENCY")]
    pub latency: bool,
    /// A flag appended to every benchmark command (repeatable).
    #[arg(long = "bench-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub bench_args: Vec<String>,
    /// TensorRT-LLM's library directory, put first on the benchmark's LD_LIBRARY_PATH.
    #[arg(long, env = "TRTLLM_LIB_DIR")]
    pub trtllm_lib_dir: Option<PathBuf>,
    /// Write LoRA YAML as upstream does (`lora_dir: []`, a bug) instead of the adapter dirs.
    #[arg(long)]
    pub upstream_lora_yaml: bool,
    /// Where generated datasets are kept for reuse (default: ~/.cache/perfgate/datasets).
    #[arg(long, env = "PERF_DATASET_CACHE")]
    pub dataset_cache: Option<PathBuf>,
    /// Facts detected on this machine (NVML, the host): the base of the system description,
    /// under what `--system` and `--system-set` give.
    #[arg(skip)]
    pub detected: Option<System>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Csv,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GeneratorArg {
    Perfgate,
    Upstream,
}

#[derive(Debug, Parser)]
#[command(
    name = "perf",
    about = "perfgate: run perf test lists as tests (`cargo test -- --test-list FILE`)"
)]
pub struct HarnessArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only tests whose id matches this regular expression (searched anywhere in the id).
    #[arg(long = "regexp", short = 'R', env = "PERF_REGEXP")]
    pub regexp: Option<String>,
    /// Plan every case and write its files, but start no benchmark.
    #[arg(long, env = "PERF_DRY_RUN")]
    pub dry_run: bool,
    /// Time limit per test in minutes when the list gives no TIMEOUT marker.
    #[arg(long, env = "PERF_TIMEOUT", value_name = "MINUTES")]
    pub timeout: Option<u64>,
    /// Run each case's benchmark N times on the same dataset (mean, stddev, min, max reported).
    #[arg(long, env = "PERF_REPEAT", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// A benchmark that prints nothing for this long is taken as hung and stopped.
    #[arg(
        long,
        env = "PERF_STALL_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 1800
    )]
    pub stall_timeout: u64,
    /// The same, once it has printed a fatal line (`Segmentation fault`, `Fatal Python error:`, ...).
    #[arg(
        long,
        env = "PERF_FATAL_STALL_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 180
    )]
    pub fatal_stall_timeout: u64,
    /// Upstream result files to write in the output directory (`perf_script_test_results.*`).
    #[arg(long = "perf-log-formats", env = "PERF_LOG_FORMATS", value_delimiter = ',', default_values = ["csv", "yaml"])]
    pub perf_log_formats: Vec<LogFormat>,
    /// The JUnit XML report (default: <output-dir>/results.xml).
    #[arg(long = "junit-xml", env = "PERF_JUNIT_XML")]
    pub junit_xml: Option<PathBuf>,
    /// Run only shard K of N (`--shard 2/8`): the list is split into N GPU-pure shards balanced
    /// by expected duration (see `perfgate shards`); the other shards' tests are not collected.
    #[arg(long, env = "PERF_SHARD", value_name = "K/N")]
    pub shard: Option<crate::shard::ShardSpec>,
    /// The run id (default `<UTC time>-<pid>`): give every shard of one job the same one.
    #[arg(long = "run-id", env = "PERF_RUN_ID", value_name = "ID")]
    pub run_id: Option<String>,
    #[command(flatten)]
    pub gate: GateArgs,
    #[command(flatten)]
    pub provenance: crate::provenance::ProvenanceArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub libtest: Arguments,
}

/// How results are judged (see the README's "The gate").
#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// Which check decides: the noise-aware default, or upstream's isclose check exactly.
    #[arg(
        long = "gate",
        value_enum,
        env = "PERF_GATE",
        default_value = "default"
    )]
    pub mode: GateMode,
    /// What fails a test: a gated regression (FAIL or INVALID), also UNKNOWN and
    /// ENV_CHANGED, or never (only a failed benchmark fails).
    #[arg(long, value_enum, env = "PERF_FAIL_ON", default_value = "regression")]
    pub fail_on: FailOn,
    /// Extra repetitions of a case whose gated verdict is UNKNOWN (0 = never rerun).
    #[arg(long, env = "PERF_MAX_RERUNS", default_value_t = 2)]
    pub max_reruns: u32,
    /// The metrics that can fail a test; every other metric gets a verdict, reported only.
    #[arg(
        long = "gate-metrics",
        env = "PERF_GATE_METRICS",
        value_delimiter = ',',
        default_values = DEFAULT_GATED
    )]
    pub gated: Vec<String>,
    /// The history database (SQLite); set it once for a machine with PERF_HISTORY, e.g. in
    /// `.cargo/config.toml` `[env]`. Default: <output-dir>/history.sqlite.
    #[arg(long, env = "PERF_HISTORY")]
    pub history: Option<PathBuf>,
    /// Neither read nor write the history (compare with the baseline file only).
    #[arg(long, env = "PERF_NO_HISTORY", conflicts_with = "history")]
    pub no_history: bool,
    /// Directory of baseline files, one `<test-prefix>.csv` per prefix (`default.csv`
    /// without a prefix).
    #[arg(long, env = "PERF_BASELINES", default_value = "baselines")]
    pub baselines: PathBuf,
    /// One baseline file to use instead (ours, or an upstream `base_perf.csv` as it is).
    #[arg(long = "baseline-file", env = "PERF_BASELINE_FILE")]
    pub baseline_file: Option<PathBuf>,
}

/// GPU telemetry (NVML) around every benchmark step; see the README's "GPU telemetry".
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// Do not sample the GPUs (also: no NVML facts, no default test prefix from the GPU).
    #[arg(long, env = "PERF_NO_TELEMETRY")]
    pub no_telemetry: bool,
    /// Sampling interval.
    #[arg(
        long = "telemetry-interval-ms",
        env = "PERF_TELEMETRY_INTERVAL_MS",
        default_value_t = 200,
        value_parser = clap::value_parser!(u64).range(10..)
    )]
    pub interval_ms: u64,
    /// A step whose SM clock is more than this % below its target (the locked clock, or the
    /// GPU's default application clock)...
    #[arg(long, env = "PERF_CLOCK_TOLERANCE_PCT", default_value_t = 10.0)]
    pub clock_tolerance_pct: f64,
    /// ...or that throttles (thermal, hardware slowdown, power brake) in more than this share
    /// of its samples is flagged.
    #[arg(long, env = "PERF_THROTTLE_SHARE", default_value_t = 0.1)]
    pub throttle_share: f64,
    /// What a flagged step is: INVALID (never compared) or a warning.
    #[arg(long, value_enum, env = "PERF_ON_THROTTLE", default_value = "invalid")]
    pub on_throttle: OnThrottle,
    /// Lock the GPUs' application clocks to the targets in model_configs/gpus.yaml for the
    /// run (needs root); the original clocks are restored at the end, on Ctrl-C and on error.
    /// Off by default.
    #[arg(long, env = "PERF_LOCK_CLOCKS")]
    pub lock_clocks: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnThrottle {
    Invalid,
    Warn,
}

/// One list entry, parsed and planned.
#[derive(Debug, Clone)]
pub struct Collected {
    pub entry: TestEntry,
    pub test_id: String,
    pub name: Result<PerfName, NameError>,
    pub plan: Option<TestPlan>,
}

/// What collection found: the tests, and the list problems.
#[derive(Debug, Clone)]
pub struct Collection {
    pub tests: Vec<Collected>,
    pub diagnostics: Vec<Diagnostic>,
    /// The model configs the plans were made with.
    pub configs: ModelConfigs,
    /// The system description test-db conditions were evaluated against (`--system`).
    pub system: Option<System>,
}

impl CommonArgs {
    /// `system` is the machine description (`--system`), read once by the caller.
    pub fn plan_options(
        &self,
        configs: &ModelConfigs,
        system: Option<&System>,
    ) -> anyhow::Result<PlanOptions> {
        let mut benchmarks = vec![StepKind::Throughput];
        if self.latency {
            benchmarks.push(StepKind::Latency);
        }
        Ok(PlanOptions {
            output_dir: self.output_dir.clone(),
            models_root: self.models_root.clone(),
            bench_cmd: self.bench_cmd.clone(),
            tokenizer_override: self.tokenizer.clone(),
            dataset_generator: match self.dataset_generator {
                GeneratorArg::Perfgate => DatasetGenerator::Perfgate,
                GeneratorArg::Upstream => DatasetGenerator::Upstream {
                    python: "python3".into(),
                    llm_root: self.llm_root.clone(),
                },
            },
            benchmarks,
            extra_bench_args: self.bench_args.clone(),
            sm: self.resolve_sm(configs, system)?,
            trtllm_lib_dir: self.trtllm_lib_dir.clone(),
            upstream_lora_yaml: self.upstream_lora_yaml,
            ..PlanOptions::default()
        })
    }

    /// `--sm`, else `--gpu`, else the system description's `compute_capability` or `gpu`.
    fn resolve_sm(
        &self,
        configs: &ModelConfigs,
        system: Option<&System>,
    ) -> anyhow::Result<Option<u32>> {
        if let Some(sm) = self.sm {
            return Ok(Some(sm));
        }
        if let Some(gpu) = &self.gpu {
            return configs
                .gpus
                .sm(gpu)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("--gpu: {e}"));
        }
        let Some(system) = system else {
            return Ok(None);
        };
        if let Some(cc) = system
            .get("compute_capability")
            .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
        {
            // 9.0 → 90, 10.0 → 100; a value already in SM form stays.
            return Ok(Some(if cc < 20.0 {
                (cc * 10.0).round() as u32
            } else {
                cc as u32
            }));
        }
        Ok(system
            .get("gpu")
            .and_then(|g| g.as_str())
            .and_then(|g| configs.gpus.sm(g).ok()))
    }

    /// The GPU type the physical limits are computed for: `--gpu`, else the system
    /// description's `gpu`, else the test prefix when it starts with a GPU the table knows
    /// (`H100_80GB_HBM3`, `H100_PCIe-TensorRT-Perf-1`). `--sm` alone names no GPU type
    /// (several share an SM).
    pub fn gpu_type(&self, system: Option<&System>, configs: &ModelConfigs) -> Option<String> {
        self.gpu
            .clone()
            .or_else(|| {
                system
                    .and_then(|s| s.get("gpu"))
                    .and_then(|g| g.as_str())
                    .map(str::to_string)
            })
            .or_else(|| {
                let prefix = self.test_prefix.as_deref()?;
                let first = prefix.split('-').next()?;
                configs
                    .gpus
                    .find(first)
                    .ok()
                    .map(|(name, _)| name.to_string())
            })
            .or_else(|| {
                let detected = system?.get("gpu_type")?.as_str()?;
                configs
                    .gpus
                    .find(detected)
                    .ok()
                    .map(|(name, _)| name.to_string())
            })
    }

    pub fn configs(&self) -> anyhow::Result<ModelConfigs> {
        ModelConfigs::discover(self.model_configs.as_deref())
    }

    /// The system description from `--system` and `--system-set`, if any was given.
    pub fn system(&self) -> anyhow::Result<Option<System>> {
        let mut system: Option<System> = match &self.system {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: cannot read the system description: {e}",
                        path.display()
                    )
                })?;
                let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "{}:{}:{}: invalid system description: {e}",
                        path.display(),
                        e.line(),
                        e.column()
                    )
                })?;
                match v {
                    serde_json::Value::Object(m) => Some(m),
                    _ => anyhow::bail!(
                        "{}: the system description must be a JSON object",
                        path.display()
                    ),
                }
            }
            None => None,
        };
        if let Some(detected) = &self.detected {
            let s = system.get_or_insert_with(System::new);
            for (k, v) in detected {
                s.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        for kv in &self.system_set {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--system-set `{kv}`: expected KEY=VALUE"))?;
            // Numbers and booleans keep their type so ranges and terms compare by meaning.
            let value = serde_json::from_str(v)
                .unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
            system
                .get_or_insert_with(System::new)
                .insert(k.to_string(), value);
        }
        Ok(system)
    }

    /// Reads the lists, parses every name and plans it.
    pub fn collect(&self) -> anyhow::Result<Collection> {
        let configs = self.configs()?;
        let system = self.system()?;
        let plan_opts = self.plan_options(&configs, system.as_ref())?;
        let opts = LoadOptions {
            system,
            context: self.context.clone(),
        };
        let list = testlist::load(&self.test_list, &opts);
        let prefix = self.test_prefix.as_deref().filter(|p| !p.is_empty());
        let mut diagnostics = list.diagnostics;
        let mut tests = Vec::with_capacity(list.entries.len());
        for entry in list.entries {
            if let (Some(want), Some(pinned)) = (prefix, entry.pinned_prefix.as_deref())
                && want != pinned
            {
                continue; // pinned to another GPU / stage
            }
            let test_id = entry.test_id(prefix);
            let name = config::parse(&entry.raw);
            let plan = name.as_ref().ok().map(|n| {
                if entry.markers.bench_args.is_empty() {
                    plan::plan(&entry.raw, n, &configs, &plan_opts)
                } else {
                    let mut o = plan_opts.clone();
                    o.extra_bench_args
                        .extend(entry.markers.bench_args.iter().cloned());
                    plan::plan(&entry.raw, n, &configs, &o)
                }
            });
            if let Err(e) = &name {
                diagnostics.push(Diagnostic::error(
                    entry.source.clone(),
                    format!("`{}`: {e}", entry.raw),
                ));
            }
            tests.push(Collected {
                entry,
                test_id,
                name,
                plan,
            });
        }
        Ok(Collection {
            tests,
            diagnostics,
            configs,
            system: opts.system,
        })
    }
}

/// The harness entry point (`tests/perf.rs`).
pub fn main() -> ! {
    match run(HarnessArgs::parse()) {
        Ok(conclusion) => exit(conclusion),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Exits with libtest's code, or 128 + the signal when the run was interrupted (the shell's
/// convention, so a CI script can tell a Ctrl-C from a failed test).
pub fn exit(conclusion: libtest_mimic::Conclusion) -> ! {
    if let Some(signal) = runner::signals::interrupted() {
        eprintln!(
            "perfgate: interrupted by {}; every finished case is recorded",
            runner::process::signal_name(signal)
        );
        std::process::exit(128 + signal);
    }
    conclusion.exit()
}

/// Runs the harness on parsed arguments (also used in-process by the self tests).
pub fn run(mut args: HarnessArgs) -> anyhow::Result<libtest_mimic::Conclusion> {
    // Benchmarks on one GPU must not overlap.
    args.libtest.test_threads.get_or_insert(1);
    if args.common.test_list.is_empty() {
        eprintln!(
            "perfgate: no test list given, so no perf test runs.\n  give one with `cargo test -- --test-list test_lists/perf_test.txt [--dry-run]`\n  or set PERF_TEST_LIST=test_lists/perf_test.txt (for cargo nextest)"
        );
        return Ok(libtest_mimic::run(&args.libtest, Vec::new()));
    }
    let regexp = args
        .regexp
        .as_deref()
        .map(Regex::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--regexp: invalid regular expression: {e}"))?;
    // The GPUs, once: their facts join the system description (test-db conditions, the
    // fingerprint, the GPU type) and name the test prefix when none is given.
    let telemetry = (!args.telemetry.no_telemetry).then(Telemetry::open);
    if let Some(t) = &telemetry {
        match t.unavailable_reason() {
            Some(why) => eprintln!("perfgate: {why}"),
            None => {
                let mut facts = t.environment();
                // test-db lists condition on upstream's key for the GPU count.
                if let Some(n) = facts.get("gpu_count").cloned() {
                    facts.entry("system_gpu_count").or_insert(n);
                }
                if args.common.test_prefix.is_none()
                    && let Some(gpu) = facts.get("gpu_type").and_then(|g| g.as_str())
                {
                    args.common.test_prefix = Some(gpu.to_string());
                }
                args.common.detected = Some(facts);
            }
        }
    }
    let mut collection = args.common.collect()?;
    // Name errors fail their own test; only list-level errors stop the whole run.
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
    if let Some(re) = &regexp {
        collection.tests.retain(|t| re.is_match(&t.test_id));
    }
    let run_id = match &args.run_id {
        Some(id) => check_run_id(id)?,
        None => format!(
            "{}-{}",
            chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                .format("%Y%m%dT%H%M%SZ"),
            std::process::id()
        ),
    };
    let shard = match args.shard {
        Some(spec) => {
            let history = (!args.gate.no_history)
                .then_some(args.gate.history.as_deref())
                .flatten();
            let refs: Vec<&Collected> = collection.tests.iter().collect();
            let cases = crate::shard::shard_cases(&refs, &durations(history, Some(&run_id))?);
            let shards = crate::shard::partition(&cases, spec.count)?;
            let hash = crate::shard::partition_hash(&shards);
            let mine = shards.into_iter().nth(spec.index - 1).ok_or(
                crate::shard::ShardError::NoSuchShard {
                    index: spec.index,
                    count: spec.count,
                },
            )?;
            let ids: std::collections::HashSet<&str> =
                mine.test_ids.iter().map(String::as_str).collect();
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
            Some((spec, mine.gpus, hash))
        }
        None => None,
    };
    let plans: Arc<Mutex<Vec<String>>> = Arc::default();
    let gpu_type = args
        .common
        .gpu_type(collection.system.as_ref(), &collection.configs);
    let session_started = std::time::SystemTime::now();
    let mut shard_record = None;
    let (writers, gate) = if args.dry_run || args.libtest.list {
        (None, None)
    } else {
        // Everything that can refuse to start (a bad baseline file, a corrupt history, an
        // output directory of another version) does so before the first benchmark.
        let facts = RunFacts {
            started: results::rfc3339(session_started),
            fingerprint: Fingerprint::of(collection.system.as_ref(), gpu_type.as_deref()),
            provenance: args.provenance.resolve(),
        };
        let gate = GateState::open(&args, &run_id, collection.system.as_ref(), &facts)?;
        let writers = open_writers(&args, &run_id, collection.system.as_ref(), &facts)?;
        runner::signals::install();
        shard_record = Some(Mutex::new(shard_record_of(
            &args,
            &run_id,
            shard,
            collection.tests.iter().map(|t| t.test_id.clone()).collect(),
        )?));
        (Some(Mutex::new(writers)), Some(gate))
    };
    // Physical limits: shown by the dry run, checked on every result, when the GPU type is
    // known.
    let physics = gpu_type.map(|gpu| (collection.configs.clone(), gpu));
    let running = !(args.dry_run || args.libtest.list);
    let (telemetry_opts, clock_lock) = match &telemetry {
        Some(t) if running && t.unavailable_reason().is_none() => {
            telemetry_options(&args.telemetry, t, &collection.configs)?
        }
        _ => (None, None),
    };
    let ctx = Arc::new(RunContext {
        physics,
        gate,
        dry_run: args.dry_run,
        default_timeout: args.timeout.map(|m| Duration::from_secs(m * 60)),
        force_ignored: args.libtest.ignored || args.libtest.include_ignored,
        exec: ExecOptions {
            repeat: args.repeat,
            echo: args.libtest.nocapture,
            limits: runner::Limits {
                stall: Duration::from_secs(args.stall_timeout),
                fatal_stall: Duration::from_secs(args.fatal_stall_timeout),
                ..runner::Limits::default()
            },
            timeout: None,
            dataset_cache: args
                .common
                .dataset_cache
                .clone()
                .unwrap_or_else(crate::dataset::default_cache_dir),
            telemetry: telemetry_opts,
        },
        writers,
        finished: Mutex::default(),
        verdicts: Mutex::default(),
        shard: shard_record,
        output_dir: args.common.output_dir.clone(),
    });
    let mut trials = Vec::new();
    for t in collection.tests {
        let (ctx, plans) = (ctx.clone(), plans.clone());
        let id = t.test_id.clone();
        trials.push(Trial::ignorable_test(id, move || {
            run_test(&t, &ctx, &plans)
        }));
    }
    let quiet = args.libtest.quiet
        || args.libtest.list
        || matches!(
            args.libtest.format,
            Some(libtest_mimic::FormatSetting::Json)
        );
    let conclusion = libtest_mimic::run(&args.libtest, trials);
    if args.dry_run && !quiet {
        let plans = plans.lock().map(|p| p.clone()).unwrap_or_default();
        if !plans.is_empty() {
            println!(
                "planned steps (dry run; written under {}):\n",
                args.common.output_dir.display()
            );
            for p in plans {
                println!("{p}");
            }
        }
    }
    let mut change_summary = String::new();
    if let Some(gate) = &ctx.gate {
        gate.finish();
        // Tonight's FAILs against the nights before: confirmed (with a blame range) or pending.
        match gate.change_points() {
            Ok(Some((section, confirmed))) => {
                change_summary = confirmed;
                if let Some(w) = &ctx.writers
                    && let Ok(mut w) = w.lock()
                    && let Err(e) = w.verdicts.set_appendix(&section)
                {
                    eprintln!("perfgate: {e:#}");
                }
            }
            Ok(None) => {}
            Err(e) => eprintln!("perfgate: change points: {e:#}"),
        }
    }
    // The original clocks come back before the summary, also after an interrupt (a panic
    // unwinds through the lock's drop, which restores them too).
    if let Some(lock) = clock_lock {
        match lock.restore() {
            Ok(()) => eprintln!("perfgate: original application clocks restored"),
            Err(e) => eprintln!("perfgate: cannot restore the application clocks: {e}"),
        }
    }
    if running {
        let facts = telemetry
            .as_ref()
            .map(Telemetry::environment)
            .unwrap_or_default();
        if let Err(e) = crate::telemetry::write_session_properties(
            &args.common.output_dir,
            &facts,
            session_started,
            std::time::SystemTime::now(),
        ) {
            eprintln!("perfgate: {e:#}");
        }
    }
    if let Some(writers) = &ctx.writers
        && !quiet
    {
        let cases = ctx.finished.lock().map(|c| c.clone()).unwrap_or_default();
        if !cases.is_empty() {
            let (junit, report) = writers
                .lock()
                .map(|w| {
                    (
                        w.junit.path().display().to_string(),
                        w.verdicts.markdown_path().display().to_string(),
                    )
                })
                .unwrap_or_default();
            let verdicts = ctx.verdicts.lock().map(|v| v.clone()).unwrap_or_default();
            let gate_summary = match &ctx.gate {
                Some(g) if !verdicts.is_empty() => format!(
                    "\nperfgate verdicts ({}):\n{}",
                    g.describe(),
                    results::verdicts::table(&verdicts)
                ),
                _ => String::new(),
            };
            println!(
                "{}{gate_summary}{change_summary}\nresults: {} (perf_script_test_results.csv/.yaml, results.jsonl, gate.jsonl), JUnit {junit}, report {report}",
                summary(&cases),
                args.common.output_dir.display()
            );
        }
    }
    Ok(conclusion)
}

/// The upstream metrics of every case, one line each, for the terminal.
fn summary(cases: &[results::CaseResult]) -> String {
    let mut out = String::from("\nperfgate summary:\n");
    for case in cases {
        let name = match &case.id.case {
            Some(c) => format!("{} [{c}]", case.id.raw),
            None if case.expected.iter().all(|(step, _)| *step == "build") => {
                format!("{} [engine build]", case.id.raw)
            }
            None => case.id.raw.clone(),
        };
        let mut parts = Vec::new();
        for &(step, metric) in &case.expected {
            let unit = crate::report::metric::metric(metric)
                .map(|d| d.unit.symbol())
                .unwrap_or("");
            match case.stats(step, metric) {
                Some(s) if s.n > 1 => parts.push(format!(
                    "{metric} {:.2} ± {:.2} {unit} (n={})",
                    s.mean, s.stddev, s.n
                )),
                Some(s) => parts.push(format!("{metric} {:.2} {unit}", s.mean)),
                None => parts.push(format!("{metric} -")),
            }
        }
        let state = case.state().as_str();
        out.push_str(&format!(
            "  {state:<7} {name}\n          {}\n",
            parts.join(" · ")
        ));
    }
    out
}

/// The physical limits of a test's cases for the dry run; empty when the GPU type is unknown.
fn physics_text(t: &Collected, ctx: &RunContext) -> String {
    let (Some((configs, gpu)), Ok(PerfName::Standard(cfg))) = (&ctx.physics, &t.name) else {
        return String::new();
    };
    match crate::gate::physics::rooflines(configs, cfg, gpu) {
        Ok(roofs) => roofs.iter().map(|r| r.limits().render()).collect(),
        Err(e) => format!("  physical limits: {e}\n"),
    }
}

struct RunContext {
    /// Model configs and GPU type for the physical limits.
    physics: Option<(ModelConfigs, String)>,
    /// Baselines, history and the gate's settings; `None` in a dry run.
    gate: Option<GateState>,
    dry_run: bool,
    default_timeout: Option<Duration>,
    force_ignored: bool,
    exec: ExecOptions,
    /// The result files; `None` in a dry run.
    writers: Option<Mutex<Writers>>,
    /// Every finished case, for the summary at the end.
    finished: Mutex<Vec<results::CaseResult>>,
    /// Every verdict, for the summary at the end.
    verdicts: Mutex<Vec<VerdictRecord>>,
    /// `shard.json`, rewritten as each test finishes; `None` in a dry run.
    shard: Option<Mutex<crate::shard::ShardRecord>>,
    output_dir: PathBuf,
}

/// What the history and `results.jsonl` both say about the run, computed once.
struct RunFacts {
    /// RFC 3339.
    started: String,
    fingerprint: Fingerprint,
    provenance: crate::provenance::Provenance,
}

/// Opens every result file before anything runs, so a bad output directory or a CSV from
/// another version stops the run at once instead of after hours of benchmarks.
fn open_writers(
    args: &HarnessArgs,
    run_id: &str,
    system: Option<&System>,
    facts: &RunFacts,
) -> anyhow::Result<Writers> {
    let dir = &args.common.output_dir;
    std::fs::create_dir_all(dir).map_err(|e| {
        anyhow::anyhow!("{}: cannot create the output directory: {e}", dir.display())
    })?;
    let c = &args.common;
    let mut env = serde_json::Map::new();
    env.insert("perfgate".into(), env!("CARGO_PKG_VERSION").into());
    env.insert("host".into(), hostname().into());
    env.insert("bench_cmd".into(), c.bench_cmd.clone().into());
    env.insert("test_prefix".into(), c.test_prefix.clone().into());
    env.insert("gpu".into(), c.gpu.clone().into());
    env.insert("sm".into(), c.sm.into());
    env.insert("repeat".into(), args.repeat.into());
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
    let junit = args
        .junit_xml
        .clone()
        .unwrap_or_else(|| dir.join("results.xml"));
    let writers = Writers {
        csv: args
            .perf_log_formats
            .contains(&LogFormat::Csv)
            .then(|| results::upstream::CsvWriter::open(dir))
            .transpose()?,
        yaml: args
            .perf_log_formats
            .contains(&LogFormat::Yaml)
            .then(|| results::upstream::YamlWriter::open(dir))
            .transpose()?,
        jsonl: results::jsonl::JsonlWriter::open(dir, run_id, env)?,
        verdicts: results::verdicts::VerdictWriter::open(dir, &format!("perfgate {run_id}"))?,
        junit: results::junit::JunitWriter::new(&junit, "perf"),
        gpu: results::upstream::GpuColumns {
            device_subtype: system
                .and_then(|s| s.get("gpu_type"))
                .and_then(|g| g.as_str())
                .map(str::to_string),
            ..results::upstream::GpuColumns::default()
        },
        monitoring_dir: dir.clone(),
        monitoring: None,
    };
    // A valid (empty) report from the start: CI finds one even if the run dies at once.
    writers.junit.write()?;
    Ok(writers)
}

/// Sampling settings for every benchmark step, and the clock lock when `--lock-clocks` asks
/// for one (held until the run ends; dropping it restores the clocks).
fn telemetry_options(
    args: &TelemetryArgs,
    telemetry: &Telemetry,
    configs: &ModelConfigs,
) -> anyhow::Result<(
    Option<TelemetryOptions>,
    Option<crate::telemetry::ClockLock>,
)> {
    let facts = telemetry.environment();
    let gpu_name = facts.get("gpu_name").and_then(|v| v.as_str());
    let target = gpu_name.and_then(|n| crate::telemetry::clock_target(configs, n));
    let lock = if args.lock_clocks {
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
            interval: Duration::from_millis(args.interval_ms),
            gpus: Vec::new(),
            target_sm_mhz: target.map(|(sm, _)| sm),
            max_below_pct: args.clock_tolerance_pct,
            max_share: args.throttle_share,
            invalid_on_evidence: args.on_throttle == OnThrottle::Invalid,
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

/// The gate's settings and sources for a run: the baseline file, the history, tonight's
/// environment.
struct GateState {
    args: GateArgs,
    run_id: String,
    fingerprint: Fingerprint,
    baselines: Baselines,
    history: Option<Mutex<History>>,
}

impl GateState {
    fn open(
        args: &HarnessArgs,
        run_id: &str,
        system: Option<&System>,
        facts: &RunFacts,
    ) -> anyhow::Result<GateState> {
        let g = &args.gate;
        let baselines = match &g.baseline_file {
            Some(path) => Baselines::read(path)?,
            None => {
                let path = crate::gate::baseline::baseline_path(
                    &g.baselines,
                    args.common.test_prefix.as_deref(),
                )?;
                let b = Baselines::read_or_empty(&path)?;
                if !path.exists() {
                    eprintln!(
                        "perfgate: no baseline file {}: metrics without history are NEW until \
                         `perfgate baseline update` writes one",
                        path.display()
                    );
                }
                b
            }
        };
        let fingerprint = facts.fingerprint.clone();
        let history = if g.no_history {
            None
        } else {
            let path = g
                .history
                .clone()
                .unwrap_or_else(|| crate::history::default_path(&args.common.output_dir));
            let mut h = History::open(&path)?;
            h.begin_run(&RunMeta {
                run_id: run_id.to_string(),
                started: facts.started.clone(),
                host: hostname(),
                test_prefix: args.common.test_prefix.clone(),
                fingerprint: fingerprint.to_string(),
                env_json: serde_json::Value::Object(system.cloned().unwrap_or_default())
                    .to_string(),
                revision: facts.provenance.revision.clone(),
                branch: facts.provenance.branch.clone(),
                build_url: facts.provenance.build_url.clone(),
                imported_from: None,
            })?;
            Some(Mutex::new(h))
        };
        Ok(GateState {
            args: g.clone(),
            run_id: run_id.to_string(),
            fingerprint,
            baselines,
            history,
        })
    }

    /// One line for the summary: the mode, the baseline file, the history.
    fn describe(&self) -> String {
        let mode = match self.args.mode {
            GateMode::Default => "default gate",
            GateMode::Upstream => "upstream's isclose check",
        };
        format!(
            "{mode}, baseline {}, history {}",
            self.baselines.path().display(),
            if self.history.is_some() { "on" } else { "off" }
        )
    }

    /// What one metric is compared with. A history that cannot be read is reported and
    /// left out: the stored baseline still gives a verdict.
    fn lookup(&self, perf_case_name: &str, step: &str, metric: &str) -> Reference {
        let baseline = self.baselines.get(perf_case_name).and_then(|row| {
            Some(BaselineRef {
                stored: row.stored()?,
                fingerprint: row.fingerprint.clone(),
            })
        });
        let history = match (&self.history, self.args.mode) {
            (Some(h), GateMode::Default) => h
                .lock()
                .map_err(|_| anyhow::anyhow!("history poisoned"))
                .and_then(|h| {
                    Ok(h.series(&SeriesQuery {
                        perf_case_name,
                        step,
                        metric,
                        fingerprint: Some(&self.fingerprint.to_string()),
                        exclude_run: &self.run_id,
                        max_nights: GateParams::default().max_history,
                    })?)
                })
                .unwrap_or_else(|e| {
                    eprintln!("perfgate: {e:#}; comparing {perf_case_name} without history");
                    Vec::new()
                }),
            _ => Vec::new(),
        };
        Reference { baseline, history }
    }

    /// Stores a finished case's measurements and verdicts.
    fn record(&self, case: &results::CaseResult, verdicts: &[VerdictRecord]) -> anyhow::Result<()> {
        let Some(h) = &self.history else {
            return Ok(());
        };
        let rows: Vec<MeasurementRow> = case
            .measurements
            .iter()
            .flat_map(|m| {
                m.metrics.iter().map(move |(metric, value)| MeasurementRow {
                    test_id: case.id.test_id.clone(),
                    perf_case_name: case.id.perf_case_name(metric),
                    network_name: case.id.label.clone(),
                    case: case.id.case.clone(),
                    step: m.step.to_string(),
                    metric: metric.clone(),
                    repetition: m.repetition,
                    value: *value,
                    state: m.state,
                })
            })
            .collect();
        let mut h = h.lock().map_err(|_| anyhow::anyhow!("history poisoned"))?;
        h.record_measurements(&self.run_id, &rows)?;
        h.record_verdicts(verdicts)?;
        Ok(())
    }

    /// Stores how long a test took, for `--shard` to balance by.
    fn record_duration(&self, test_id: &str, took: Duration) -> anyhow::Result<()> {
        let Some(h) = &self.history else {
            return Ok(());
        };
        let mut h = h.lock().map_err(|_| anyhow::anyhow!("history poisoned"))?;
        h.record_duration(&self.run_id, test_id, took.as_secs_f64())?;
        Ok(())
    }

    /// The "Change points" section of the report for tonight's FAIL verdicts, and the lines
    /// for the terminal (confirmed regressions with their blame ranges); `None` without a
    /// history or without a FAIL.
    fn change_points(&self) -> anyhow::Result<Option<(String, String)>> {
        use crate::history::changes_cli;
        let Some(h) = &self.history else {
            return Ok(None);
        };
        let h = h.lock().map_err(|_| anyhow::anyhow!("history poisoned"))?;
        let Some(run) = h.run(&self.run_id)? else {
            return Ok(None);
        };
        let rows = changes_cli::change_rows(&h, &run, false)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let section = format!(
            "### Change points\n\nTonight's regressions against the nights before them \
             (`perfgate history changes` after later nights confirms or clears the pending \
             ones):\n\n{}",
            changes_cli::render_markdown(&rows, false)
        );
        let mut terminal = String::new();
        for r in rows.iter().filter(|r| changes_cli::is_confirmed(r)) {
            if let Some(b) = &r.blame {
                terminal.push_str(&format!(
                    "\nconfirmed regression: {} {} {}: last good {} -> first bad {}",
                    r.perf_case_name,
                    r.step,
                    r.metric,
                    b.last_good
                        .as_ref()
                        .map(changes_cli::run_ref)
                        .unwrap_or_else(|| "-".into()),
                    changes_cli::run_ref(&b.first_bad)
                ));
            }
        }
        if !terminal.is_empty() {
            terminal.push('\n');
        }
        Ok(Some((section, terminal)))
    }

    fn finish(&self) {
        if let Some(h) = &self.history
            && let Ok(mut h) = h.lock()
            && let Err(e) = h.finish_run(
                &self.run_id,
                &results::rfc3339(std::time::SystemTime::now()),
            )
        {
            eprintln!("perfgate: {e}");
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn run_test(
    t: &Collected,
    ctx: &RunContext,
    plans: &Mutex<Vec<String>>,
) -> Result<Completion, Failed> {
    let started = std::time::SystemTime::now();
    let clock = std::time::Instant::now();
    let mut record = TestRecord::default();
    let result = decide(t, ctx, plans, &mut record);
    if let Some(writers) = &ctx.writers {
        let outcome = match &result {
            Ok(Completion::Completed) => Outcome::Passed,
            Ok(Completion::Ignored { reason }) => Outcome::Skipped {
                message: reason.clone().unwrap_or_default(),
            },
            Err(e) => Outcome::Failed {
                message: first_line(e).to_string(),
                detail: record.detail.clone().unwrap_or_else(|| e.clone()),
            },
        };
        let case = JunitCase {
            test_id: t.test_id.clone(),
            outcome,
            duration: clock.elapsed(),
            started,
            properties: {
                let mut p = results::junit::properties(&record.cases);
                p.extend(results::junit::verdict_properties(&record.verdicts));
                p
            },
            system_out: record.log_tail.clone(),
        };
        let written = writers
            .lock()
            .map_err(|_| anyhow::anyhow!("result writers poisoned"))
            .and_then(|mut w| w.junit.record(case));
        if let Err(e) = written {
            return Err(Failed::from(format!(
                "cannot write the JUnit report: {e:#}"
            )));
        }
    }
    if let (Some(gate), false) = (&ctx.gate, record.cases.is_empty())
        && let Err(e) = gate.record_duration(&t.test_id, clock.elapsed())
    {
        eprintln!("perfgate: {e:#}");
    }
    // A test cut short or never started because the job was signalled (SLURM's time limit
    // sends SIGTERM) did not finish: `perfgate merge` reports it as such.
    if let Some(shard) = &ctx.shard
        && runner::signals::interrupted().is_none()
        && let Ok(mut r) = shard.lock()
    {
        r.finished.push(t.test_id.clone());
        r.updated = results::rfc3339(std::time::SystemTime::now());
        if let Err(e) = r.write(&ctx.output_dir) {
            return Err(Failed::from(format!(
                "cannot write the shard record: {e:#}"
            )));
        }
    }
    result.map_err(Failed::from)
}

/// What a test produced besides its verdict, for the JUnit report.
#[derive(Default)]
struct TestRecord {
    cases: Vec<results::CaseResult>,
    verdicts: Vec<VerdictRecord>,
    detail: Option<String>,
    log_tail: Option<String>,
}

/// The verdict, with the list markers applied.
fn decide(
    t: &Collected,
    ctx: &RunContext,
    plans: &Mutex<Vec<String>>,
    record: &mut TestRecord,
) -> Result<Completion, String> {
    let m = &t.entry.markers;
    if let Some(reason) = &m.skip
        && !ctx.force_ignored
    {
        return Ok(Completion::ignored_with(format!("SKIP: {reason}")));
    }
    if let Some(signal) = runner::signals::interrupted() {
        return Ok(Completion::ignored_with(format!(
            "not run: interrupted by {}",
            runner::process::signal_name(signal)
        )));
    }
    let outcome = execute(t, ctx, plans, record);
    match (outcome, &m.xfail, &m.unstable) {
        (Err(e), Some(reason), _) => Ok(Completion::ignored_with(format!(
            "XFAIL ({reason}): failed as expected: {}",
            first_line(&e)
        ))),
        (Err(e), None, Some(reason)) => Ok(Completion::ignored_with(format!(
            "UNSTABLE ({reason}): failed: {}",
            first_line(&e)
        ))),
        (Err(e), None, None) => Err(e),
        (Ok(c), _, _) => Ok(c),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

fn execute(
    t: &Collected,
    ctx: &RunContext,
    plans: &Mutex<Vec<String>>,
    record: &mut TestRecord,
) -> Result<Completion, String> {
    let source = &t.entry.source;
    t.name
        .as_ref()
        .map_err(|e| format!("{source}: invalid test name `{}`: {e}", t.entry.raw))?;
    let plan = t
        .plan
        .as_ref()
        .ok_or_else(|| format!("{source}: no plan"))?;
    if ctx.dry_run {
        let written =
            write_plan_files(plan, Some(&ctx.exec.dataset_cache)).map_err(|e| format!("{e:#}"))?;
        if let Ok(mut p) = plans.lock() {
            p.push(plan.render() + &physics_text(t, ctx) + &written);
        }
    }
    if !plan.blocked.is_empty() {
        return Err(format!("{source}: cannot run: {}", plan.blocked.join("; ")));
    }
    if !plan.skipped.is_empty() {
        let how = if ctx.dry_run {
            "planned only"
        } else {
            "skipped"
        };
        return Ok(Completion::ignored_with(format!(
            "{how}: {}",
            plan.skipped.join("; ")
        )));
    }
    if ctx.dry_run {
        return Ok(Completion::Completed);
    }
    write_plan_files(plan, None).map_err(|e| format!("{e:#}"))?;
    let mut opts = ctx.exec.clone();
    if let (Some(tel), Ok(PerfName::Standard(cfg))) = (&mut opts.telemetry, &t.name) {
        tel.gpus = gpus_of_test(cfg.num_gpus, tel.telemetry.device_count());
    }
    opts.timeout = t
        .entry
        .markers
        .timeout_minutes
        .map(|m| Duration::from_secs(u64::from(m) * 60))
        .or(ctx.default_timeout);
    let judge = CaseJudge::new(t, plan, ctx);
    let mut write_error: Option<String> = None;
    let mut verdicts: Vec<VerdictRecord> = Vec::new();
    let mut on_case = |case: &results::CaseResult| {
        let records = judge.judge(case);
        if let Ok(mut f) = ctx.finished.lock() {
            f.push(case.clone());
        }
        if let Ok(mut v) = ctx.verdicts.lock() {
            v.extend(records.iter().cloned());
        }
        if let Some(gate) = &ctx.gate
            && let Err(e) = gate.record(case, &records)
        {
            write_error.get_or_insert(format!("cannot write the history: {e:#}"));
        }
        if let Some(writers) = &ctx.writers {
            let written = writers
                .lock()
                .map_err(|_| anyhow::anyhow!("result writers poisoned"))
                .and_then(|mut w| {
                    w.case(case)?;
                    w.verdicts.write(&records)
                });
            if let Err(e) = written {
                write_error.get_or_insert(format!("cannot write results: {e:#}"));
            }
        }
        verdicts.extend(records);
    };
    let mut more = |case: &results::CaseResult| judge.wants_rerun(case);
    let outcome = crate::execute::execute(plan, &t.test_id, &opts, &mut on_case, &mut more)
        .map_err(|e| format!("{e:#}"))?;
    record.cases = outcome.cases.clone();
    record.verdicts = verdicts;
    if let Some(e) = write_error {
        return Err(e);
    }
    if let Some((message, detail)) = outcome.failure() {
        let tail = runner::process::tail(&outcome.log, 0, 30);
        record.detail = Some(format!("{detail}\nlast lines of the log:\n{tail}"));
        record.log_tail = Some(tail.clone());
        return Err(format!(
            "{message}\n{detail}\nlast lines of the log:\n{tail}"
        ));
    }
    if let Some(gate) = &ctx.gate {
        let failures = gate.args.fail_on.failures(&record.verdicts);
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
            return Err(format!("{message}\n{}", detail.join("\n")));
        }
    }
    Ok(Completion::Completed)
}

/// The gate for one test: each case's dataset expectations and physical limits, and the
/// verdicts of its finished cases.
type JudgeKey = (String, Option<&'static str>, usize);

struct CaseJudge<'a> {
    ctx: &'a RunContext,
    /// By case label.
    cases: Vec<(String, Expectations, Option<Roofline>)>,
    /// The last verdicts, by case label, first step and measurement count (the engine build
    /// shares its label with a single case): the rerun question and the finished case ask
    /// about the same measurements, and each evaluation reads the history.
    last: std::cell::RefCell<Option<(JudgeKey, Vec<VerdictRecord>)>>,
}

impl<'a> CaseJudge<'a> {
    fn new(t: &Collected, plan: &TestPlan, ctx: &'a RunContext) -> CaseJudge<'a> {
        let rooflines = match (&ctx.physics, &t.name) {
            (Some((configs, gpu)), Ok(PerfName::Standard(cfg))) => {
                crate::gate::physics::rooflines(configs, cfg, gpu).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        let cases = plan
            .cases
            .iter()
            .map(|cp| {
                let roof = rooflines
                    .iter()
                    .find(|r| r.case.label == cp.spec.label)
                    .cloned();
                (cp.spec.label.clone(), Expectations::of_case(cp), roof)
            })
            .collect();
        CaseJudge {
            ctx,
            cases,
            last: std::cell::RefCell::default(),
        }
    }

    fn judge(&self, case: &results::CaseResult) -> Vec<VerdictRecord> {
        let key = (
            case.id.label.clone(),
            case.measurements.first().map(|m| m.step),
            case.measurements.len(),
        );
        if let Some((last, records)) = &*self.last.borrow()
            && *last == key
        {
            return records.clone();
        }
        let records = self.evaluate(case);
        *self.last.borrow_mut() = Some((key, records.clone()));
        records
    }

    fn evaluate(&self, case: &results::CaseResult) -> Vec<VerdictRecord> {
        let Some(gate) = &self.ctx.gate else {
            return Vec::new();
        };
        let (expect, roofline) = self
            .cases
            .iter()
            .find(|(label, _, _)| *label == case.id.label)
            .map(|(_, e, r)| (*e, r.as_ref()))
            .unwrap_or_default();
        let last_rep = case
            .measurements
            .iter()
            .filter(|m| m.step != "build")
            .map(|m| m.repetition)
            .max()
            .unwrap_or(0);
        let cctx = CaseContext {
            run_id: &gate.run_id,
            mode: gate.args.mode,
            gated: &gate.args.gated,
            fingerprint: &gate.fingerprint,
            expect,
            roofline,
            reruns: last_rep.saturating_sub(self.ctx.exec.repeat),
        };
        gate_eval::evaluate(case, &cctx, &mut |key, step, metric| {
            gate.lookup(key, step, metric)
        })
    }

    /// Another repetition, when a gated verdict is UNKNOWN and the budget lasts.
    fn wants_rerun(&self, case: &results::CaseResult) -> bool {
        let Some(gate) = &self.ctx.gate else {
            return false;
        };
        let records = self.judge(case);
        let done = records.first().map_or(0, |r| r.reruns);
        gate_eval::wants_rerun(&records, done, gate.args.max_reruns)
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
    runner::write_file_atomic(&plan.dir.join("plan.txt"), plan.render().as_bytes())?;
    runner::write_file_atomic(
        &plan.dir.join("plan.json"),
        serde_json::to_string_pretty(plan)?.as_bytes(),
    )?;
    let mut script =
        String::from("#!/bin/sh\n# The commands perfgate runs for this test, in order.\nset -e\n");
    for step in plan.steps() {
        script.push_str(&step.command_line());
        script.push('\n');
    }
    runner::write_file_atomic(&plan.dir.join("commands.sh"), script.as_bytes())?;
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

impl CommonArgs {
    /// The defaults (and environment), as if only `--test-list` were given.
    pub fn for_lists(lists: Vec<PathBuf>) -> anyhow::Result<CommonArgs> {
        let mut argv = vec!["perf".to_string()];
        for l in &lists {
            argv.push("--test-list".into());
            argv.push(l.display().to_string());
        }
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            common: CommonArgs,
        }
        // Only a bad PERF_* environment variable can make this fail.
        Only::try_parse_from(&argv)
            .map(|o| o.common)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// A run id from `--run-id`: it names files and history rows, so only letters, digits and
/// `._:+-`.
fn check_run_id(id: &str) -> anyhow::Result<String> {
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

/// The stored test durations of a history (`None`, or a file not there yet: none), leaving
/// out the run `exclude_run`.
pub fn durations(
    history: Option<&Path>,
    exclude_run: Option<&str>,
) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
    let Some(path) = history else {
        return Ok(Default::default());
    };
    match History::open_existing(path) {
        Ok(h) => Ok(h.latest_durations(exclude_run)?),
        Err(crate::history::HistoryError::Missing { .. }) => Ok(Default::default()),
        Err(e) => Err(e.into()),
    }
}

/// The options that change which tests run or what they measure, as recorded in
/// `shard.json`: shards (and runs) that differ in any of them are not one run. Left out on
/// purpose: the output directory, the history and dataset cache paths, the models root and
/// tokenizer paths (they differ per machine, not per result), telemetry sampling and
/// `--test-threads`.
pub fn result_settings(args: &HarnessArgs) -> serde_json::Value {
    let c = &args.common;
    let g = &args.gate;
    serde_json::json!({
        "test_prefix": c.test_prefix,
        "context": c.context,
        "system_set": c.system_set,
        "bench_cmd": c.bench_cmd,
        "bench_args": c.bench_args,
        "latency": c.latency,
        "sm": c.sm,
        "gpu": c.gpu,
        "dataset_generator": format!("{:?}", c.dataset_generator),
        "upstream_lora_yaml": c.upstream_lora_yaml,
        "regexp": args.regexp,
        "repeat": args.repeat,
        "timeout_minutes": args.timeout,
        "stall_timeout_s": args.stall_timeout,
        "fatal_stall_timeout_s": args.fatal_stall_timeout,
        "perf_log_formats": args.perf_log_formats.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>(),
        "gate": format!("{:?}", g.mode),
        "fail_on": format!("{:?}", g.fail_on),
        "max_reruns": g.max_reruns,
        "gate_metrics": g.gated,
        "no_history": g.no_history,
        "baseline_file": g.baseline_file,
        "on_throttle": format!("{:?}", args.telemetry.on_throttle),
        "clock_tolerance_pct": args.telemetry.clock_tolerance_pct,
        "throttle_share": args.telemetry.throttle_share,
    })
}

fn shard_record_of(
    args: &HarnessArgs,
    run_id: &str,
    shard: Option<(crate::shard::ShardSpec, u32, String)>,
    assigned: Vec<String>,
) -> anyhow::Result<crate::shard::ShardRecord> {
    let lists = args
        .common
        .test_list
        .iter()
        .map(|p| crate::shard::ListDigest::of(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let settings = result_settings(args);
    let now = results::rfc3339(std::time::SystemTime::now());
    let record = crate::shard::ShardRecord {
        perfgate: env!("CARGO_PKG_VERSION").to_string(),
        run_id: run_id.to_string(),
        lists,
        settings_sha256: crate::textutil::sha256_hex(settings.to_string().as_bytes()),
        settings,
        shard: shard.as_ref().map_or(
            crate::shard::ShardSpec { index: 1, count: 1 },
            |(s, _, _)| *s,
        ),
        gpus: shard.as_ref().map(|(_, g, _)| *g),
        partition_sha256: shard.map(|(_, _, h)| h),
        assigned,
        finished: Vec::new(),
        started: now.clone(),
        updated: now,
    };
    record.write(&args.common.output_dir)?;
    Ok(record)
}
