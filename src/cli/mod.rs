//! The command line's edge: every subcommand's clap arguments and the thin function that turns
//! them into the library's plain options and prints what it returns. clap lives here, in the
//! harness (`src/harness.rs`) and in `src/main.rs`, nowhere else.

pub mod args;
pub mod baseline;
pub mod changes;
pub mod compare;
pub mod dashboard;
pub mod dataset;
pub mod dev;
pub mod exit;
pub mod harness;
pub mod history;
pub mod lint;
pub mod merge;
pub mod parse;
pub mod plan;
pub mod serve_bench;
pub mod shards;
pub mod slurm;
pub mod telemetry;

/// `clap::ValueEnum` for a library enum (the library has no clap): each variant, its name on
/// the command line and its help.
macro_rules! value_enum {
    ($ty:ty { $($variant:ident => $name:literal : $help:literal),+ $(,)? }) => {
        impl clap::ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$(Self::$variant),+]
            }
            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(match self {
                    $(Self::$variant => clap::builder::PossibleValue::new($name).help($help)),+
                })
            }
        }
    };
}
pub(crate) use value_enum;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "perfgate",
    version,
    about = "Release perf gating for LLM inference: run perf test lists, gate them against baselines and history, keep and show the history"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run test lists as tests: the same harness as `cargo test -- --test-list FILE`.
    Run(Box<args::HarnessArgs>),
    /// Check test lists without a GPU: names, duplicates, unknown models, impossible conditions.
    Lint(lint::LintArgs),
    /// Show what each name would run: canonical label, cases and steps.
    Plan(plan::PlanArgs),
    /// Physical limits (roofline) of each case of a name on a GPU type.
    Estimate(plan::EstimateArgs),
    /// Print the extra LLM API YAML of a name and, per key, the rule that set it.
    Config(plan::ConfigArgs),
    /// Generate a benchmark dataset (a bit-exact drop-in for upstream prepare_dataset.py).
    Dataset(dataset::DatasetArgs),
    /// Read metrics out of trtllm-bench, build and serving-benchmark logs.
    Parse(parse::ParseArgs),
    /// Stored baselines: re-baseline from a run (`update`), validate files (`check`).
    #[command(subcommand)]
    Baseline(baseline::BaselineCommand),
    /// Print the verdicts a run stored in the history (table or JSON); exit status 1 when a
    /// gated verdict is FAIL.
    Gate(history::GateArgs),
    /// Compare two runs (output directories or history runs): medians, Δ%, better/worse,
    /// significance; as a table, markdown or self-contained HTML.
    Compare(compare::CompareArgs),
    /// Look into the history file (runs, nights).
    History(history::HistoryArgs),
    /// Build the static nightly dashboard (HTML, works from file://) from a history.
    Dashboard(dashboard::DashboardArgs),
    /// Split a test list into N GPU-pure shards balanced by expected duration (what
    /// `perfgate run --shard K/N` runs).
    Shards(shards::ShardsArgs),
    /// Merge the output directories of the shards of one run into one.
    Merge(merge::MergeArgs),
    /// Run a sharded list on a SLURM cluster: job arrays per GPU class, followed, merged.
    #[command(subcommand)]
    Slurm(slurm::SlurmCommand),
    /// Show what GPU telemetry sees: the environment and a few samples (reads only).
    Telemetry(telemetry::TelemetryArgs),
    /// Drive an OpenAI-compatible or Triton server: TTFT, TPOT, ITL, E2EL, throughput.
    ServeBench(Box<serve_bench::ServeBenchArgs>),
    /// perfgate's own benchmarks (start-up, parsing, the gate, change points, the dashboard).
    #[command(subcommand)]
    Dev(dev::DevCommand),
}

/// The `perfgate` command.
pub fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`perfgate plan ... | head`) instead of panicking on the failed write.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => match harness::run(*a) {
            Ok(outcome) => harness::exit(&outcome),
            Err(e) => Err(e),
        },
        Command::Lint(a) => lint::run_lint(a),
        Command::Plan(a) => plan::run_plan(a),
        Command::Config(a) => plan::run_config(a),
        Command::Estimate(a) => plan::run_estimate(a),
        Command::Dataset(a) => dataset::run_cli(a).map(|()| ExitCode::SUCCESS),
        Command::Parse(a) => parse::run_cli(a),
        Command::Baseline(c) => baseline::run_cli(c),
        Command::Gate(a) => history::run_gate(a),
        Command::Compare(a) => compare::run_compare(a),
        Command::History(a) => history::run_history(a),
        Command::Dashboard(a) => dashboard::run_dashboard(a),
        Command::Telemetry(a) => telemetry::run_cli(a),
        Command::Shards(a) => shards::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Slurm(c) => slurm::run(c),
        Command::ServeBench(a) => serve_bench::run_cli(*a),
        Command::Dev(c) => dev::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
