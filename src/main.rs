//! The `perfgate` command line: a thin shell over the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use perfgate::config::{self, PerfName};
use perfgate::harness::CommonArgs;
use perfgate::lint;
use perfgate::plan;
use perfgate::testlist;

#[derive(Parser)]
#[command(
    name = "perfgate",
    version,
    about = "Release perf gating for LLM inference (trtllm-bench)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run test lists as tests: the same harness as `cargo test -- --test-list FILE`.
    Run(Box<perfgate::harness::HarnessArgs>),
    /// Check test lists without a GPU: names, duplicates, unknown models, impossible conditions.
    Lint(LintArgs),
    /// Show what each name would run: canonical label, cases and steps.
    Plan(PlanArgs),
    /// Physical limits (roofline) of each case of a name on a GPU type.
    Estimate(EstimateArgs),
    /// Print the extra LLM API YAML of a name and, per key, the rule that set it.
    Config(ConfigArgs),
    /// Time collecting, parsing and planning a large list (the harness's start-up cost).
    BenchNames(BenchNamesArgs),
    /// Generate a benchmark dataset (a bit-exact drop-in for upstream prepare_dataset.py).
    Dataset(perfgate::dataset::cli::DatasetArgs),
    /// Read metrics out of trtllm-bench, build and serving-benchmark logs.
    Parse(perfgate::report::cli::ParseArgs),
    /// Time parsing a synthesized ~200 MB log (a report amid per-iteration logging).
    BenchParse(BenchParseArgs),
    /// Simulate nightly histories and compare the gate's detection and false-alarm rates with
    /// upstream's two methods.
    BenchGate(BenchGateArgs),
    /// Time change-point detection over simulated nightly series (a dashboard's worth) and
    /// measure its detection and false-alarm rates.
    BenchCpd(BenchCpdArgs),
    /// Stored baselines: re-baseline from a run (`update`), validate files (`check`).
    #[command(subcommand)]
    Baseline(perfgate::gate::baseline::cli::BaselineCommand),
    /// Print the verdicts a run stored in the history (table or JSON); exit status 1 when a
    /// gated verdict is FAIL.
    Gate(perfgate::history::cli::GateArgs),
    /// Compare two runs (output directories or history runs): medians, Δ%, better/worse,
    /// significance; as a table, markdown or self-contained HTML.
    Compare(CompareArgs),
    /// Look into the history file (runs, nights).
    History(perfgate::history::cli::HistoryArgs),
    /// Split a test list into N GPU-pure shards balanced by expected duration (what
    /// `perfgate run --shard K/N` runs).
    Shards(perfgate::shard::ShardsArgs),
    /// Merge the output directories of the shards of one run into one.
    Merge(perfgate::merge::MergeArgs),
    /// Build the static nightly dashboard (HTML, works from file://) from a history.
    Dashboard(perfgate::dashboard::cli::DashboardArgs),
    /// Time building the dashboard of a synthesized year of nightlies.
    BenchDashboard(perfgate::dashboard::cli::BenchDashboardArgs),
    /// Run a sharded list on a SLURM cluster: job arrays per GPU class, followed, merged.
    #[command(subcommand)]
    Slurm(perfgate::slurm::SlurmCommand),
    /// Show what GPU telemetry sees: the environment and a few samples (reads only).
    Telemetry(perfgate::telemetry::cli::TelemetryArgs),
    /// Drive an OpenAI-compatible or Triton server: TTFT, TPOT, ITL, E2EL, throughput.
    ServeBench(Box<perfgate::serve::cli::ServeBenchArgs>),
    /// Time serve-bench's client against serve-mock at zero delay (benches/serve_capacity.sh).
    #[command(hide = true)]
    BenchServeClient(perfgate::serve::cli::CapacityArgs),
}

#[derive(clap::Args)]
struct LintArgs {
    /// Test lists (plain text or test-db YAML).
    #[arg(required = true)]
    lists: Vec<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(clap::Args)]
struct PlanArgs {
    /// Test names (bare, or upstream ids `perf/test_perf.py::test_perf[...]`).
    names: Vec<String>,
    /// Read names from a file, one per line (`#` comments allowed).
    #[arg(long)]
    names_from: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::Args)]
struct EstimateArgs {
    /// A test name (bare or an upstream id).
    name: String,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// The GPU type is `--gpu` (default H100_SXM) or the system description's `gpu`.
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum ConfigFormat {
    /// The YAML with, per key, the rule that set it.
    Annotated,
    /// Only the YAML, exactly as written for trtllm-bench (for scripts).
    Yaml,
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// A test name (bare or an upstream id).
    name: String,
    #[arg(long, value_enum, default_value = "annotated")]
    format: ConfigFormat,
    /// LoRA adapter directories for `loras:N` names.
    #[arg(long, value_delimiter = ',')]
    lora_dirs: Vec<String>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::Args)]
struct BenchNamesArgs {
    /// How many names to collect, parse and plan.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Target wall time in milliseconds.
    #[arg(long, default_value_t = 200.0)]
    target_ms: f64,
}

#[derive(clap::Args)]
struct BenchParseArgs {
    /// Size of the synthesized log in MB (10^6 bytes).
    #[arg(long, default_value_t = 200)]
    size_mb: u64,
    /// Target parse rate in MB/s.
    #[arg(long, default_value_t = 200.0)]
    target_mbps: f64,
}

#[derive(clap::Args)]
struct BenchGateArgs {
    /// Nights per simulated series (history + test window).
    #[arg(long, default_value_t = 60)]
    nights: usize,
    /// Leading nights that are history only (the goal needs at least 20).
    #[arg(long, default_value_t = 20)]
    history: usize,
    /// Series per scenario.
    #[arg(long, default_value_t = 400)]
    trials: usize,
    #[arg(long, default_value_t = 20_240_601)]
    seed: u64,
    /// Reruns the gate may spend on an UNKNOWN night.
    #[arg(long, default_value_t = 1)]
    max_reruns: u32,
}

#[derive(clap::Args)]
struct BenchCpdArgs {
    /// Series to simulate (the dashboard's case x step x metric count).
    #[arg(long, default_value_t = 6000)]
    series: usize,
    /// Nights per series.
    #[arg(long, default_value_t = 365)]
    nights: usize,
    /// Repetitions per night (the night's value is their median).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Noise per repetition, as a coefficient of variation (0.01 = 1%).
    #[arg(long, default_value_t = 0.01)]
    cv: f64,
    /// The step regression in half of the series (0.05 = 5% worse).
    #[arg(long, default_value_t = 0.05)]
    step: f64,
    /// Random-walk drift per night (standard deviation, a fraction; bench-gate's model: 0.001).
    #[arg(long, default_value_t = 0.001)]
    drift: f64,
    #[arg(long, default_value_t = 20_240_601)]
    seed: u64,
    /// Points per sliding window.
    #[arg(long, default_value_t = 50)]
    window: usize,
    #[arg(long, default_value_t = 0.001)]
    max_pvalue: f64,
    #[arg(long, default_value_t = 3)]
    min_segment: usize,
    /// Drop change points smaller than this (in %).
    #[arg(long, default_value_t = 0.0)]
    min_magnitude_pct: f64,
    /// The time budget for all series, in seconds (the dashboard's).
    #[arg(long, default_value_t = 10.0)]
    target_s: f64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CompareFormat {
    Table,
    Markdown,
    Html,
}

#[derive(clap::Args)]
struct CompareArgs {
    /// The base: an output directory (its results.jsonl; `DIR@RUN_ID` picks one of several
    /// appended runs, default the last), or a run of the history (`latest`, `latest~N`, an id).
    a: String,
    /// The one compared with A, named the same ways.
    b: String,
    #[command(flatten)]
    location: perfgate::history::cli::HistoryLocation,
    #[arg(long, value_enum, default_value = "table")]
    format: CompareFormat,
    /// Write to this file (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Only this metric (repeatable), e.g. --metric TOKEN_THROUGHPUT.
    #[arg(long = "metric", value_name = "M")]
    metrics: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => match perfgate::harness::run(*a) {
            Ok(conclusion) => perfgate::harness::exit(conclusion),
            Err(e) => Err(e),
        },
        Command::Lint(a) => run_lint(a),
        Command::Plan(a) => run_plan(a),
        Command::Config(a) => run_config(a),
        Command::Estimate(a) => run_estimate(a),
        Command::BenchNames(a) => run_bench_names(a),
        Command::Dataset(a) => perfgate::dataset::cli::run_cli(a).map(|()| ExitCode::SUCCESS),
        Command::Parse(a) => perfgate::report::cli::run_cli(a),
        Command::BenchParse(a) => run_bench_parse(a),
        Command::BenchGate(a) => run_bench_gate(a),
        Command::BenchCpd(a) => run_bench_cpd(a),
        Command::Baseline(c) => perfgate::gate::baseline::cli::run_cli(c),
        Command::Gate(a) => perfgate::history::cli::run_gate(a),
        Command::Compare(a) => run_compare(a),
        Command::History(a) => perfgate::history::cli::run_history(a),
        Command::Dashboard(a) => perfgate::dashboard::cli::run_dashboard(a),
        Command::BenchDashboard(a) => perfgate::dashboard::cli::run_bench(a),
        Command::Telemetry(a) => perfgate::telemetry::cli::run_cli(a),
        Command::Shards(a) => perfgate::shard::run_cli(a),
        Command::Merge(a) => perfgate::merge::run_cli(a),
        Command::Slurm(perfgate::slurm::SlurmCommand::Submit(a)) => perfgate::slurm::submit(a),
        Command::ServeBench(a) => perfgate::serve::cli::run_cli(*a),
        Command::BenchServeClient(a) => perfgate::serve::cli::run_capacity_cli(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_lint(a: LintArgs) -> anyhow::Result<ExitCode> {
    let mut common = a.common;
    common.test_list = a.lists;
    let report = lint::lint(&common)?;
    let mut out = std::io::stdout().lock();
    for d in &report.diagnostics {
        writeln!(out, "{d}")?;
    }
    writeln!(out, "{}", report.summary())?;
    Ok(if report.error_count() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `perfgate plan --format json`: one object per name.
#[derive(Serialize)]
struct PlanJson<'a> {
    name: &'a str,
    ok: bool,
    canonical: Option<String>,
    cases: Vec<String>,
    error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    blocked: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<String>,
    /// Per case, the steps in order.
    steps: Vec<Vec<StepJson>>,
}

#[derive(Serialize)]
struct StepJson {
    kind: plan::StepKind,
    argv: Vec<String>,
}

fn run_plan(a: PlanArgs) -> anyhow::Result<ExitCode> {
    let mut names: Vec<String> = a
        .names
        .iter()
        .map(|id| raw_name(id))
        .collect::<anyhow::Result<_>>()?;
    if let Some(path) = &a.names_from {
        // The list reader: comments, markers and test ids handled as in a run.
        let list = testlist::load(std::slice::from_ref(path), &Default::default());
        if let Some(e) = list.errors().next() {
            anyhow::bail!("{e}");
        }
        names.extend(list.entries.into_iter().map(|e| e.raw));
    }
    if names.is_empty() {
        anyhow::bail!("no names given: pass names as arguments or use --names-from FILE");
    }
    let configs = a.common.configs()?;
    let opts = a
        .common
        .plan_options(&configs, a.common.system()?.as_ref())?;
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for raw in &names {
        let raw = raw.as_str();
        let parsed = config::parse(raw);
        let plan = parsed
            .as_ref()
            .ok()
            .map(|n| plan::plan(raw, n, &configs, &opts));
        failed |= parsed.is_err();
        match a.format {
            Format::Json => {
                let obj = PlanJson {
                    name: raw,
                    ok: parsed.is_ok(),
                    canonical: parsed.as_ref().ok().map(PerfName::canonical),
                    cases: parsed
                        .as_ref()
                        .map(|p| p.cases().into_iter().map(|c| c.label).collect())
                        .unwrap_or_default(),
                    error: parsed.as_ref().err().map(ToString::to_string),
                    blocked: plan.as_ref().map(|p| p.blocked.clone()).unwrap_or_default(),
                    skipped: plan.as_ref().map(|p| p.skipped.clone()).unwrap_or_default(),
                    steps: plan
                        .as_ref()
                        .map(|p| {
                            p.cases
                                .iter()
                                .map(|c| {
                                    p.setup
                                        .iter()
                                        .chain(&c.steps)
                                        .map(|s| StepJson {
                                            kind: s.kind,
                                            argv: s.argv.clone(),
                                        })
                                        .collect()
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                writeln!(out, "{}", serde_json::to_string(&obj)?)?;
            }
            Format::Text => match (&parsed, &plan) {
                (Ok(_), Some(p)) => writeln!(out, "{}", p.render())?,
                (Err(e), _) => writeln!(out, "test      {raw}\nerror     {e}\n")?,
                _ => {}
            },
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `perf/test_perf.py::test_perf[NAME]` (with any prefix) → `NAME`; a bare name is kept.
/// `perf/test_perf.py::test_perf[NAME]` (with any prefix, as CI ids carry the GPU) → `NAME`;
/// a bare name is kept.
fn raw_name(id: &str) -> anyhow::Result<String> {
    let from_func = id
        .find("perf/test_perf.py::test_perf[")
        .map_or(id, |i| &id[i..]);
    match testlist::parse_test_id(from_func) {
        Ok(Some((_, raw))) => Ok(raw),
        Ok(None) => anyhow::bail!("`{id}` is not a test_perf test"),
        Err(e) => anyhow::bail!("{e}"),
    }
}

fn run_bench_names(a: BenchNamesArgs) -> anyhow::Result<ExitCode> {
    let report = perfgate::bench::names(a.count)?;
    println!("{report}");
    let verdict = if report.total_ms <= a.target_ms {
        "within"
    } else {
        "OVER"
    };
    println!(
        "target: {:.0} ms for {} names: {verdict} target",
        a.target_ms, report.count
    );
    Ok(ExitCode::SUCCESS)
}

fn run_bench_gate(a: BenchGateArgs) -> anyhow::Result<ExitCode> {
    let t0 = std::time::Instant::now();
    let report = perfgate::gate::sim::run(perfgate::gate::sim::SimOptions {
        nights: a.nights,
        history: a.history,
        trials: a.trials,
        seed: a.seed,
        max_reruns: a.max_reruns,
    })?;
    print!("{report}");
    let goal = report.goal();
    for line in &goal.lines {
        println!("{line}");
    }
    println!(
        "goal: {} ({:.1} s)",
        if goal.passed { "PASS" } else { "FAIL" },
        t0.elapsed().as_secs_f64()
    );
    // A benchmark reports; like bench-names it does not fail the process on a missed target.
    Ok(ExitCode::SUCCESS)
}

fn run_bench_cpd(a: BenchCpdArgs) -> anyhow::Result<ExitCode> {
    use perfgate::gate::cpd_sim;
    if !(a.cv >= 0.0 && a.drift >= 0.0 && a.step.is_finite() && a.step < 1.0) {
        anyhow::bail!("--cv and --drift must be >= 0 and --step below 1 (fractions: 0.05 is 5%)");
    }
    let report = cpd_sim::run(cpd_sim::CpdSimOptions {
        series: a.series,
        nights: a.nights,
        reps: a.reps,
        cv: a.cv,
        step: a.step,
        drift: a.drift,
        seed: a.seed,
        params: perfgate::gate::cpd::CpdParams {
            window: a.window,
            max_pvalue: a.max_pvalue,
            min_segment: a.min_segment,
            min_magnitude_pct: a.min_magnitude_pct,
        },
    });
    print!("{report}");
    let secs = report.detect_time.as_secs_f64();
    let verdict = if secs <= a.target_s { "within" } else { "OVER" };
    println!(
        "target: {:.1} s for {} series: {verdict} target",
        a.target_s, a.series
    );
    Ok(ExitCode::SUCCESS)
}

fn run_compare(a: CompareArgs) -> anyhow::Result<ExitCode> {
    use perfgate::compare;
    let history = a.location.path();
    let side_a = compare::load_side(&a.a, &history).map_err(|e| anyhow::anyhow!("A: {e:#}"))?;
    let side_b = compare::load_side(&a.b, &history).map_err(|e| anyhow::anyhow!("B: {e:#}"))?;
    let c = compare::compare_sides(&side_a, &side_b, &a.metrics);
    let text = match a.format {
        CompareFormat::Table => compare::render_table(&c),
        CompareFormat::Markdown => compare::render_markdown(&c),
        CompareFormat::Html => compare::render_html(&c),
    };
    match &a.out {
        Some(path) => perfgate::runner::write_file_atomic(path, text.as_bytes())?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn run_bench_parse(a: BenchParseArgs) -> anyhow::Result<ExitCode> {
    let report = perfgate::bench::parse(a.size_mb)?;
    let verdict = if report.mb_per_s() >= a.target_mbps {
        "within"
    } else {
        "UNDER"
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{report}")?;
    writeln!(out, "target: {:.0} MB/s: {verdict} target", a.target_mbps)?;
    Ok(ExitCode::SUCCESS)
}

fn run_estimate(a: EstimateArgs) -> anyhow::Result<ExitCode> {
    let raw = raw_name(&a.name)?;
    let raw = raw.as_str();
    let name = config::parse(raw).map_err(|e| anyhow::anyhow!("`{raw}`: {e}"))?;
    let PerfName::Standard(cfg) = &name else {
        anyhow::bail!("`{raw}` is not a trtllm-bench test; no physical limits");
    };
    let configs = a.common.configs()?;
    let gpu = a
        .common
        .gpu_type(a.common.system()?.as_ref(), &configs)
        .unwrap_or_else(|| "H100_SXM".to_string());
    let roofs = perfgate::gate::physics::rooflines(&configs, cfg, &gpu)
        .map_err(|e| anyhow::anyhow!("`{raw}`: {e}"))?;
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Text => {
            for r in &roofs {
                writeln!(out, "{}", r.case.label)?;
                write!(out, "{}", r.limits().render())?;
            }
        }
        Format::Json => {
            let all: Vec<_> = roofs.iter().map(|r| r.limits()).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_config(a: ConfigArgs) -> anyhow::Result<ExitCode> {
    let raw = raw_name(&a.name)?;
    let raw = raw.as_str();
    let name = config::parse(raw).map_err(|e| anyhow::anyhow!("`{raw}`: {e}"))?;
    let PerfName::Standard(cfg) = &name else {
        anyhow::bail!("`{raw}` is not a trtllm-bench test; it has no extra LLM API YAML");
    };
    let configs = a.common.configs()?;
    let opts = a
        .common
        .plan_options(&configs, a.common.system()?.as_ref())?;
    let label = cfg.canonical();
    let lora_dirs = (!a.lora_dirs.is_empty()).then(|| a.lora_dirs.clone());
    if let Some(dirs) = &lora_dirs {
        anyhow::ensure!(
            dirs.len() == cfg.num_loras as usize,
            "--lora-dirs gives {} director(ies) but the name has loras:{}",
            dirs.len(),
            cfg.num_loras
        );
    }
    let ctx = perfgate::llm_api::RuleContext {
        sm: opts.sm,
        lora_dirs,
        models_root: opts.models_root.display().to_string(),
        backend: perfgate::llm_api::Backend::from_label(&label),
    };
    let effective = configs.rules.config_for(&label, &ctx);
    let mut out = std::io::stdout().lock();
    match a.format {
        ConfigFormat::Yaml => write!(out, "{}", effective.to_pyyaml())?,
        ConfigFormat::Annotated => {
            writeln!(out, "# {label}")?;
            writeln!(
                out,
                "# SM: {}",
                opts.sm.map_or(
                    "unknown (GPU-dependent rules off; use --sm or --gpu)".into(),
                    |s| s.to_string()
                )
            )?;
            write!(out, "{}", effective.to_pyyaml())?;
            writeln!(out, "\n# where each key comes from:")?;
            let width = effective
                .provenance
                .iter()
                .map(|(k, _)| k.len())
                .max()
                .unwrap_or(0);
            for (key, rule) in &effective.provenance {
                writeln!(out, "#   {key:<width$}  {rule}")?;
            }
            for n in &effective.notes {
                writeln!(out, "# note: {n}")?;
            }
        }
    }
    Ok(if effective.notes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
