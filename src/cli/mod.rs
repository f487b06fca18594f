//! The command line's edge: every subcommand's clap arguments and the thin function that turns
//! them into the library's plain options and prints what it returns. clap lives here, in the
//! harness (`src/harness.rs`) and in `src/main.rs`, nowhere else.

pub mod ab;
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
pub mod sweep;
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
    about = "Release perf gating for LLM inference: run perf test lists, gate them against baselines and history, keep and show the history",
    after_help = "`perfgate run` is the harness `cargo test -- --test-list FILE` runs from a checkout; \
most of its flags also read an environment variable (shown as [env: ...]), for CI and nextest.\n\n\
Exit statuses: 0 passed; 1 a gate or check failed; 2 usage (bad flags, unreadable input, no \
test list); 3 a test could not measure; 4 perfgate's own failure; 128+N interrupted by signal \
N. A command's --help names any status other than 0 and 2 it uses.\n\n\
Guide and reference: docs/ in the repository (docs/SUMMARY.md lists every page)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run test lists as tests: the same harness as `cargo test -- --test-list FILE`.
    ///
    /// Each line of a test list becomes a test: its dataset and extra LLM API YAML are written,
    /// the benchmark runs (build when needed, then throughput), its metrics are read and judged
    /// by the gate. Results go to --output-dir as they finish. Without a GPU, try
    /// `--dry-run` (plans and files only) or `--bench-cmd target/debug/fake-trtllm-bench`
    /// (the test double).
    Run(Box<args::HarnessArgs>),
    /// Check test lists without a GPU: names, duplicates, unknown models, impossible conditions.
    ///
    /// Every problem is printed as `file:line: error|warning: ...`, with a suggested fix where
    /// there is one. Exit status 1 when there is an error, an unreadable list included
    /// (warnings alone exit 0).
    Lint(lint::LintArgs),
    /// Show what each name would run: canonical label, cases and steps.
    ///
    /// Nothing is written and nothing runs. Exit status 1 when a name does not parse or
    /// validate (the error names the label and proposes a fix).
    Plan(plan::PlanArgs),
    /// Physical limits (roofline) of each case of a name on a GPU type.
    ///
    /// The GPU type is `--gpu` (a key of model_configs/gpus.yaml, e.g. H100_SXM, B200), else the
    /// system description's `gpu`, else H100_SXM. Printed per case: weight bytes, KV bytes per
    /// token, FLOPs per request, the output-throughput ceiling, minimum TPOT and TTFT.
    Estimate(plan::EstimateArgs),
    /// Print the extra LLM API YAML of a name and, per key, the rule that set it.
    ///
    /// GPU-dependent rules need the SM: `--sm`, `--gpu`, or the system description's
    /// `compute_capability`/`gpu`; without one they are off and the output says so.
    Config(plan::ConfigArgs),
    /// Generate a benchmark dataset (a bit-exact drop-in for upstream prepare_dataset.py).
    Dataset(dataset::DatasetArgs),
    /// Read metrics out of trtllm-bench, build and serving-benchmark logs.
    ///
    /// Every trtllm-bench report era (0.12 and later) is recognised from its text. Exit status 1
    /// when a log holds no report (what was found is still printed).
    Parse(parse::ParseArgs),
    /// Stored baselines: re-baseline from a run (`update`), validate files (`check`).
    #[command(subcommand)]
    Baseline(baseline::BaselineCommand),
    /// Print the verdicts a run stored in the history (table or JSON); exit status 1 when a
    /// gated verdict is FAIL.
    Gate(history::GateArgs),
    /// Compare two runs (output directories or history runs): medians, Δ%, better/worse,
    /// significance; as a table, markdown or self-contained HTML.
    ///
    /// Significance is Welch's t-test on the log values at p < 0.05, only when both sides have
    /// at least 2 repetitions with some spread. Exit status 0 whatever the changes are (use
    /// `perfgate gate` to fail a job), 2 when a side cannot be read.
    Compare(compare::CompareArgs),
    /// The history file: list its runs, import and export them, confirm regressions by
    /// change points.
    History(history::HistoryArgs),
    /// Build the static nightly dashboard (HTML, works from file://) from a history.
    Dashboard(dashboard::DashboardArgs),
    /// Split a test list into N GPU-pure shards balanced by expected duration (what
    /// `perfgate run --shard K/N` runs).
    Shards(shards::ShardsArgs),
    /// Merge the output directories of the shards of one run into one.
    ///
    /// Exit status 0 when every shard and test is there; 1 when shards are missing or tests did
    /// not finish (what exists is merged and the rest reported; --allow-partial exits 0); 2
    /// when the shards are not of one run (run id, lists, settings, partition) and nothing is
    /// written.
    Merge(merge::MergeArgs),
    /// Run a sharded list on a SLURM cluster: job arrays per GPU class, followed, merged.
    #[command(subcommand)]
    Slurm(slurm::SlurmCommand),
    /// Show what GPU telemetry sees: the environment and a few samples (reads only).
    ///
    /// Exit status 1 when NVML cannot be opened (no NVIDIA driver: the first line says why),
    /// whatever --power reads. A power source that cannot be read is named with the reason,
    /// never made up.
    Telemetry(telemetry::TelemetryArgs),
    /// Drive an OpenAI-compatible or Triton server: TTFT, TPOT, ITL, E2EL, throughput, accuracy.
    ///
    /// Prints benchmark_serving's result block; --accuracy scores the generated texts against
    /// the dataset's reference outputs (exact match, ROUGE-1/2/L, corpus BLEU).
    ///
    /// Exit status 0 when every measured request succeeded; 1 when requests failed (above
    /// --max-failure-ratio) or, with --fail-on-invalid, a level is invalid for gating; 2 for
    /// usage errors (options, dataset, tokenizer); 3 when the server could not be reached,
    /// never became ready (--ready-timeout) or no request was measured; 4 when the outputs
    /// could not be written; 130 on Ctrl-C and 143 on SIGTERM, after summarizing and writing
    /// what finished.
    ServeBench(Box<serve_bench::ServeBenchArgs>),
    // Their about and long help (the files they write, their exit statuses) are the argument
    // structs' own: a doc comment here would replace the long help with one line.
    Ab(Box<ab::AbArgs>),
    Sweep(Box<sweep::SweepArgs>),
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
    let cli = Cli::parse_from(sweep::rewrite_args(std::env::args_os().collect()));
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
        Command::Sweep(a) => sweep::run_cli(*a),
        Command::Ab(a) => ab::run_cli(*a),
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
