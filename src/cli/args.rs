//! The flags the harness (`cargo test -- --test-list ...`) and `perfgate run` share, and
//! their translation into the library's plain options. Every flag also reads an environment
//! variable, because `cargo nextest run` cannot pass arguments to a harness.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use libtest_mimic::Arguments;

use crate::backend::{DatasetGenerator, PlanOptions, serve, trtllm_bench};
use crate::collect::CollectOptions;
use crate::gate::evaluate::{FailOn, GateMode};
use crate::provenance::Provenance;
use crate::session::{GateOptions, RunOptions, TelemetrySettings};

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
    /// Prefix of every test id, usually the GPU / CI stage (e.g. `H100_80GB_HBM3`); it also
    /// picks the baseline file `<baselines>/<prefix>.csv`. Default: the GPU type telemetry
    /// reports (upstream's device_subtype), else none.
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
    /// The benchmark executable: a name looked up on PATH or a path (without a GPU,
    /// `target/debug/fake-trtllm-bench`, the test double).
    #[arg(long, env = "TRTLLM_BENCH", default_value = "trtllm-bench")]
    pub bench_cmd: String,
    /// Use this tokenizer (directory or tokenizer.json) for every dataset instead of each
    /// model's checkpoint directory.
    #[arg(long, env = "PERF_TOKENIZER")]
    pub tokenizer: Option<PathBuf>,
    /// The GPU's compute capability (e.g. 90, 100) for GPU-dependent LLM-API rules.
    #[arg(long, env = "PERF_SM", conflicts_with = "gpu")]
    pub sm: Option<u32>,
    /// The GPU type, a key of model_configs/gpus.yaml (e.g. H100_SXM, B200): its SM selects
    /// GPU-dependent LLM-API rules, and its datasheet gives the physical limits (the roofline
    /// column, the beyond-physics validity check, `perfgate estimate`).
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
    /// GPUs on this machine when NVML cannot count them: what the GPU placement of sweep and
    /// A/B servers (`gpus:`) is checked against.
    #[arg(long = "gpus", env = "PERF_GPUS", value_name = "N")]
    pub gpus_present: Option<u32>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// How serving cases (`serve` names, perf-sanity ids) run; see docs/serving-cases.md.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Who measures a serving case: perfgate's `serve-bench` with the equivalent workload, or
    /// upstream's `python -m tensorrt_llm.serve.scripts.benchmark_serving` argv exactly.
    #[arg(long, value_enum, env = "PERF_CLIENT", default_value = "perfgate")]
    pub client: ClientArg,
    /// The perfgate whose `serve-bench` is the client (a path pins a build, e.g. the release
    /// binary measuring a candidate server); words split on spaces. Default: the perfgate that
    /// runs the list (`cargo test`: the build's own `perfgate` binary), else `perfgate` on PATH.
    #[arg(long, env = "PERF_SERVE_BENCH_CMD", value_name = "CMD", value_parser = command)]
    pub serve_bench_cmd: Option<String>,
    /// What runs for `python -m tensorrt_llm.serve.scripts.benchmark_serving` with `--client
    /// upstream` (another interpreter, a wrapper); words split on spaces.
    #[arg(
        long,
        env = "PERF_UPSTREAM_CLIENT_CMD",
        default_value = "python -m tensorrt_llm.serve.scripts.benchmark_serving",
        value_name = "CMD",
        value_parser = command
    )]
    pub upstream_client_cmd: String,
    /// The trtllm-serve executable (serve names and perf-sanity ids); words split on spaces.
    #[arg(long, env = "TRTLLM_SERVE", value_name = "CMD", value_parser = command)]
    pub trtllm_serve_cmd: Option<String>,
    /// Replace a server recipe's command for this run: `NAME=CMD` (repeatable), e.g.
    /// `--server-cmd llama.cpp=/opt/llama/bin/llama-server`.
    #[arg(long = "server-cmd", value_name = "NAME=CMD", value_parser = name_equals_command)]
    pub server_cmds: Vec<String>,
    /// A directory holding perf-sanity's `aggregated/` and `disaggregated/` config folders
    /// (default: upstream's AGG_CONFIG_FOLDER / DISAGG_CONFIG_FOLDER, else
    /// `<llm-root>/tests/scripts/perf-sanity/`).
    #[arg(long, env = "PERF_SANITY_DIR", value_name = "DIR")]
    pub perf_sanity_dir: Option<PathBuf>,
    /// The host disaggregated workers bind and report (default: this machine's host name, as
    /// upstream's `socket.gethostname()`).
    #[arg(long, env = "PERF_SERVE_HOST", value_name = "HOST")]
    pub serve_host: Option<String>,
    /// The hosts of this job, this one first, for a disaggregated test that needs more GPUs
    /// than a node has: its workers are placed across them and started there with srun
    /// (default: the SLURM allocation's nodes, `scontrol show hostnames`, when it has several).
    #[arg(
        long,
        env = "PERF_SERVE_NODES",
        value_name = "HOST,...",
        value_delimiter = ','
    )]
    pub serve_nodes: Vec<String>,
    /// What starts a worker on another node of the job; words split on spaces.
    #[arg(
        long,
        env = "PERF_SRUN",
        default_value = "srun",
        value_name = "CMD",
        value_parser = command
    )]
    pub srun_cmd: String,
    /// Seconds a server may take to become ready (default: upstream's 3600 for trtllm-serve,
    /// or its TRTLLM_TEST_*_SERVER_READY_TIMEOUT variables; a recipe's own for other engines).
    #[arg(long, env = "PERF_READY_TIMEOUT", value_name = "SECONDS")]
    pub ready_timeout: Option<u64>,
}

/// The perfgate binary of this run: this process when it is `perfgate` (`perfgate run`), the
/// `perfgate` cargo built beside the harness (`cargo test` runs `target/<profile>/deps/perf-*`,
/// and builds `target/<profile>/perfgate` with it), else `perfgate` on PATH.
fn this_perfgate() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "perfgate".into();
    };
    if exe.file_stem().is_some_and(|n| n == "perfgate") {
        return exe.display().to_string();
    }
    exe.parent()
        .filter(|d| d.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(format!("perfgate{}", std::env::consts::EXE_SUFFIX)))
        .filter(|p| p.is_file())
        .map_or_else(|| "perfgate".into(), |p| p.display().to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientArg {
    Perfgate,
    Upstream,
}

impl ServeArgs {
    /// The serving backend's options.
    pub fn to_options(&self, llm_root: &std::path::Path) -> serve::Options {
        let words = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_string).collect() };
        let mut server_cmds = std::collections::BTreeMap::new();
        if let Some(cmd) = &self.trtllm_serve_cmd {
            server_cmds.insert("trtllm".to_string(), words(cmd));
        }
        for kv in &self.server_cmds {
            // Checked by `name_equals_command` when parsed.
            if let Some((name, cmd)) = kv.split_once('=') {
                server_cmds.insert(name.to_string(), words(cmd));
            }
        }
        let env = |k: &str| std::env::var(k).ok();
        // Upstream's ready-wait overrides: per mode, then the shared one; a bad value is
        // ignored, as upstream ignores it.
        let upstream = |mode: &str| {
            [
                format!("TRTLLM_TEST_{mode}_SERVER_READY_TIMEOUT"),
                "TRTLLM_TEST_SERVER_READY_TIMEOUT".to_string(),
            ]
            .iter()
            .find_map(|k| env(k)?.trim().parse::<u64>().ok().filter(|v| *v > 0))
        };
        let hostname = crate::session::hostname();
        serve::Options {
            client: match self.client {
                ClientArg::Perfgate => serve::ClientChoice::Perfgate,
                ClientArg::Upstream => serve::ClientChoice::Upstream,
            },
            serve_bench_cmd: match &self.serve_bench_cmd {
                Some(cmd) => words(cmd),
                None => vec![this_perfgate()],
            },
            upstream_client_cmd: words(&self.upstream_client_cmd),
            server_cmds,
            sanity_dirs: crate::perf_sanity::SanityDirs::resolve(
                llm_root,
                self.perf_sanity_dir.as_deref(),
                env,
            ),
            llm_root: llm_root.to_path_buf(),
            hostname: match &self.serve_host {
                Some(h) => h.clone(),
                None if hostname.is_empty() => "localhost".into(),
                None => hostname,
            },
            ready_timeout: self.ready_timeout.map(Duration::from_secs),
            upstream_ready_timeouts: (upstream("AGG"), upstream("DISAGG")),
            gpu_type: "unsupported".into(),
            nodes: if self.serve_nodes.is_empty() {
                slurm_nodes(&env)
            } else {
                self.serve_nodes.clone()
            },
            srun_cmd: words(&self.srun_cmd),
        }
    }
}

/// The nodes of the SLURM allocation this runs in, the batch host first, when it has more than
/// one (`scontrol show hostnames` expands `SLURM_JOB_NODELIST`); empty otherwise, or when the
/// list cannot be expanded (a disaggregated test that needs them then says so).
fn slurm_nodes(env: &impl Fn(&str) -> Option<String>) -> Vec<String> {
    let several = env("SLURM_JOB_NUM_NODES")
        .or_else(|| env("SLURM_NNODES"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .is_some_and(|n| n > 1);
    let Some(list) = env("SLURM_JOB_NODELIST").filter(|_| several) else {
        return Vec::new();
    };
    let argv = ["scontrol", "show", "hostnames", &list].map(str::to_string);
    let Ok(out) = crate::runner::process::capture(&argv, Duration::from_secs(30)) else {
        return Vec::new();
    };
    if !out.success() {
        return Vec::new();
    }
    let mut nodes: Vec<String> = out.stdout.split_whitespace().map(str::to_string).collect();
    // The batch step runs on the allocation's first node; put this host first if it is
    // another one.
    if let Some(me) = env("SLURMD_NODENAME")
        && let Some(i) = nodes.iter().position(|n| *n == me)
    {
        let mine = nodes.remove(i);
        nodes.insert(0, mine);
    }
    nodes
}

/// A command line of at least one word.
fn command(s: &str) -> Result<String, String> {
    if s.split_whitespace().next().is_some() {
        Ok(s.to_string())
    } else {
        Err("expected a command".into())
    }
}

/// `NAME=CMD`.
fn name_equals_command(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((name, cmd)) if !name.is_empty() && cmd.split_whitespace().next().is_some() => {
            Ok(s.to_string())
        }
        _ => Err("expected NAME=CMD (a server recipe's name and the command to run)".into()),
    }
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
    about = "perfgate: run perf test lists as tests (`cargo test -- --test-list FILE`)",
    // libtest-mimic's own template drops the command's name and description, and its notes
    // (tests run in parallel by default, --nocapture is a no-op) are not true here.
    help_template = "{before-help}{about-with-newline}\n{usage-heading} {usage}\n\n{all-args}{after-help}",
    mut_arg("nocapture", |a| a.help("Stream every benchmark's output to the terminal as well as to its perf.log")),
    mut_arg("test_threads", |a| a.help("Tests run at once (default 1: benchmarks on one GPU must not overlap; at most 256)")),
    mut_arg("include_ignored", |a| a.help("Also run tests the list marks SKIP")),
    mut_arg("ignored", |a| a.help("Run only the tests the list marks SKIP")),
    after_help = "Test ids are upstream's: `<prefix>/perf/test_perf.py::test_perf[<name>]`. The libtest \
flags select them: a FILTER substring, --exact, --skip, --list, --format json.\n\n\
Exit status: 0 every test passed; 1 a gated verdict failed (FAIL or INVALID, or what --fail-on \
adds); 2 usage (bad flags, an unreadable list, no test list); 3 a test could not measure (an \
invalid name, a benchmark that failed or timed out); 4 perfgate could not write its results \
or history; 128+N interrupted by signal N (every finished case is recorded).\n\n\
Guide: docs/guide/running.md; every flag and file: docs/reference/."
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
    /// Succeed when no test list is given (by default that is an error: a CI job that runs
    /// nothing must not pass).
    #[arg(long, env = "PERF_ALLOW_EMPTY")]
    pub allow_empty: bool,
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
    pub provenance: ProvenanceArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub libtest: Arguments,
}

/// How results are judged (docs/guide/gate.md).
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
    /// Default: TOKEN_THROUGHPUT, P50_TPOT, P50_TTFT, MEDIAN_OUTPUT_TOKEN_TIME,
    /// MEDIAN_FIRST_TOKEN_TIME, DISAGG_SERVER_E2EL, and for serving cases also
    /// TOTAL_OUTPUT_THROUGHPUT, TOTAL_TOKEN_THROUGHPUT (and AVG_DECODED_TOKENS_PER_ITER when
    /// speculative); given, exactly these.
    #[arg(
        long = "gate-metrics",
        env = "PERF_GATE_METRICS",
        value_delimiter = ','
    )]
    pub gated: Option<Vec<String>>,
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

/// GPU telemetry and power around every benchmark step (docs/guide/telemetry.md).
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// Do not sample the GPUs (also: no NVML facts, no default test prefix from the GPU).
    #[arg(long, env = "PERF_NO_TELEMETRY")]
    pub no_telemetry: bool,
    /// Milliseconds between telemetry samples (at least 10).
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
    /// The power sources sampled around each step: NVIDIA GPUs (nvml), Jetson INA3221 rails
    /// (jetson), Intel/AMD RAPL counters (rapl), whatever the machine has (auto), or none.
    #[arg(long, value_enum, env = "PERF_POWER", default_value = "nvml")]
    pub power: crate::telemetry::PowerChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnThrottle {
    Invalid,
    Warn,
}

/// The provenance flags, shared by the harness and `perfgate history import`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ProvenanceArgs {
    /// The source revision under test (a commit id). Unset: a run takes the CI's (GIT_COMMIT,
    /// GITHUB_SHA, CI_COMMIT_SHA); an import keeps the one its files name.
    #[arg(long, env = "PERF_REVISION", value_name = "REV")]
    pub revision: Option<String>,
    /// The branch (or ref) the revision came from (unset: as for --revision).
    #[arg(long, env = "PERF_BRANCH", value_name = "NAME")]
    pub branch: Option<String>,
    /// The CI build that ran it, for people to follow (unset: as for --revision).
    #[arg(long = "build-url", env = "PERF_BUILD_URL", value_name = "URL")]
    pub build_url: Option<String>,
}

impl ProvenanceArgs {
    /// Only what was given explicitly (flags or `PERF_*`), no CI variables.
    pub fn explicit(&self) -> Provenance {
        Provenance::explicit(
            self.revision.clone(),
            self.branch.clone(),
            self.build_url.clone(),
        )
    }
}

crate::cli::value_enum!(GateMode {
    Default => "default": "Noise-aware: repetitions and history, direction-aware, improvements are not failures",
    Upstream => "upstream": "Upstream's sanity_perf_check.py exactly: numpy.isclose against the stored baseline, either direction fails",
});

crate::cli::value_enum!(FailOn {
    Regression => "regression": "A gated FAIL or INVALID",
    Unknown => "unknown": "Also a gated UNKNOWN or ENV_CHANGED",
    Never => "never": "Verdicts never fail a test (a failed benchmark still does)",
});

impl CommonArgs {
    /// The plain options of collection and planning.
    pub fn to_collect(&self) -> CollectOptions {
        let serve = self.serve.to_options(&self.llm_root);
        CollectOptions {
            test_lists: self.test_list.clone(),
            test_prefix: self.test_prefix.clone(),
            system: self.system.clone(),
            system_set: self.system_set.clone(),
            detected: None,
            context: self.context.clone(),
            model_configs: self.model_configs.clone(),
            sm: self.sm,
            gpu: self.gpu.clone(),
            plan: PlanOptions {
                output_dir: self.output_dir.clone(),
                models_root: self.models_root.clone(),
                tokenizer_override: self.tokenizer.clone(),
                dataset_generator: match self.dataset_generator {
                    GeneratorArg::Perfgate => DatasetGenerator::Perfgate,
                    GeneratorArg::Upstream => DatasetGenerator::Upstream {
                        python: "python3".into(),
                        llm_root: self.llm_root.clone(),
                    },
                },
                upstream_lora_yaml: self.upstream_lora_yaml,
                trtllm: trtllm_bench::Options {
                    bench_cmd: self.bench_cmd.clone(),
                    latency: self.latency,
                    extra_bench_args: self.bench_args.clone(),
                    trtllm_lib_dir: self.trtllm_lib_dir.clone(),
                },
                serve,
                machine_gpus: crate::plan::placement::Gpus {
                    count: self.gpus_present,
                    // The devices this job was given: servers are placed inside them.
                    visible: crate::plan::placement::Gpus::visible_from(
                        std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(),
                    ),
                },
                ..PlanOptions::default()
            },
            dataset_cache: self.dataset_cache.clone(),
            require_system: false,
        }
    }

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

impl HarnessArgs {
    /// The plain options of a run.
    pub fn to_run(&self) -> RunOptions {
        let l = &self.libtest;
        RunOptions {
            collect: CollectOptions {
                require_system: true,
                ..self.common.to_collect()
            },
            regexp: self.regexp.clone(),
            dry_run: self.dry_run,
            list_only: l.list,
            force_ignored: l.ignored || l.include_ignored,
            only_ignored: l.ignored && !l.include_ignored,
            echo: l.nocapture,
            quiet: l.quiet
                || l.list
                || matches!(l.format, Some(libtest_mimic::FormatSetting::Json)),
            timeout: self.timeout.map(|m| Duration::from_secs(m * 60)),
            repeat: self.repeat,
            stall: Duration::from_secs(self.stall_timeout),
            fatal_stall: Duration::from_secs(self.fatal_stall_timeout),
            csv: self.perf_log_formats.contains(&LogFormat::Csv),
            yaml: self.perf_log_formats.contains(&LogFormat::Yaml),
            junit_xml: self.junit_xml.clone(),
            shard: self.shard,
            run_id: self.run_id.clone(),
            gate: GateOptions {
                mode: self.gate.mode,
                fail_on: self.gate.fail_on,
                max_reruns: self.gate.max_reruns,
                gated: self.gate.gated.clone().unwrap_or_else(|| {
                    crate::gate::evaluate::DEFAULT_GATED
                        .iter()
                        .map(|m| m.to_string())
                        .collect()
                }),
                gated_explicit: self.gate.gated.is_some(),
                history: self.gate.history.clone(),
                no_history: self.gate.no_history,
                baselines: self.gate.baselines.clone(),
                baseline_file: self.gate.baseline_file.clone(),
            },
            provenance: self.provenance.explicit(),
            telemetry: TelemetrySettings {
                enabled: !self.telemetry.no_telemetry,
                interval: Duration::from_millis(self.telemetry.interval_ms),
                clock_tolerance_pct: self.telemetry.clock_tolerance_pct,
                throttle_share: self.telemetry.throttle_share,
                invalid_on_throttle: self.telemetry.on_throttle == OnThrottle::Invalid,
                lock_clocks: self.telemetry.lock_clocks,
                power: self.telemetry.power,
            },
            result_settings: self.result_settings(),
        }
    }

    /// The options that change which tests run or what they measure, as recorded in
    /// `shard.json`: shards (and runs) that differ in any of them are not one run. Left out on
    /// purpose: the output directory, the history and dataset cache paths, the models root and
    /// tokenizer paths (they differ per machine, not per result), telemetry sampling and
    /// `--test-threads`.
    pub fn result_settings(&self) -> serde_json::Value {
        let c = &self.common;
        let g = &self.gate;
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
            "client": format!("{:?}", c.serve.client),
            "serve_bench_cmd": c.serve.serve_bench_cmd,
            "trtllm_serve_cmd": c.serve.trtllm_serve_cmd,
            "server_cmds": c.serve.server_cmds,
            "regexp": self.regexp,
            "repeat": self.repeat,
            "timeout_minutes": self.timeout,
            "stall_timeout_s": self.stall_timeout,
            "fatal_stall_timeout_s": self.fatal_stall_timeout,
            "perf_log_formats": self.perf_log_formats.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>(),
            "gate": format!("{:?}", g.mode),
            "fail_on": format!("{:?}", g.fail_on),
            "max_reruns": g.max_reruns,
            "gate_metrics": g.gated,
            "no_history": g.no_history,
            "baseline_file": g.baseline_file,
            "on_throttle": format!("{:?}", self.telemetry.on_throttle),
            "clock_tolerance_pct": self.telemetry.clock_tolerance_pct,
            "throttle_share": self.telemetry.throttle_share,
        })
    }
}

crate::cli::value_enum!(crate::telemetry::PowerChoice {
    Nvml => "nvml": "NVIDIA GPUs through NVML (the default)",
    Jetson => "jetson": "NVIDIA Jetson: INA3221 rails, thermal zones, GPU/EMC/CPU frequencies (sysfs)",
    Rapl => "rapl": "Intel/AMD RAPL energy counters (powercap sysfs), thermal zones, CPU frequencies",
    Auto => "auto": "every source this machine has",
    None => "none": "nothing is sampled",
});

/// Which history file: `--history`, or the one in the output directory.
#[derive(clap::Args)]
pub struct HistoryLocation {
    /// The history file [default: `<output-dir>/history.sqlite`].
    #[arg(long, env = "PERF_HISTORY", value_name = "PATH")]
    pub history: Option<PathBuf>,
    /// The output directory whose history.sqlite is used when --history is not given.
    #[arg(
        long,
        short = 'O',
        env = "PERF_OUTPUT_DIR",
        default_value = "perf-output"
    )]
    pub output_dir: PathBuf,
}

impl HistoryLocation {
    pub fn path(&self) -> PathBuf {
        self.history
            .clone()
            .unwrap_or_else(|| crate::history::default_path(&self.output_dir))
    }
}
