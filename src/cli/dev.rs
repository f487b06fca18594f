//! `perfgate dev ...`: perfgate's own benchmarks (speed targets live in benchmarks that print
//! a comparison, not in timed tests). Out of `perfgate --help`'s way: a user runs `perfgate
//! run`, `plan`, `gate` and the rest; a perfgate developer runs these.

use std::io::Write;
use std::process::ExitCode;

/// `perfgate dev ...`
#[derive(clap::Subcommand)]
pub enum DevCommand {
    /// Time collecting, parsing and planning a large list (the harness's start-up cost).
    BenchNames(BenchNamesArgs),
    /// Time parsing a synthesized ~200 MB log (a report amid per-iteration logging).
    BenchParse(BenchParseArgs),
    /// Simulate nightly histories and compare the gate's detection and false-alarm rates with
    /// upstream's two methods.
    BenchGate(BenchGateArgs),
    /// Time change-point detection over simulated nightly series (a dashboard's worth) and
    /// measure its detection and false-alarm rates.
    BenchCpd(BenchCpdArgs),
    /// Time building the dashboard of a synthesized year of nightlies.
    BenchDashboard(super::dashboard::BenchDashboardArgs),
    /// Time serve-bench's client against serve-mock at zero delay (benches/serve_capacity.sh).
    BenchServeClient(super::serve_bench::CapacityArgs),
}

pub fn run(command: DevCommand) -> anyhow::Result<ExitCode> {
    match command {
        DevCommand::BenchNames(a) => run_bench_names(a),
        DevCommand::BenchParse(a) => run_bench_parse(a),
        DevCommand::BenchGate(a) => run_bench_gate(a),
        DevCommand::BenchCpd(a) => run_bench_cpd(a),
        DevCommand::BenchDashboard(a) => super::dashboard::run_bench(a),
        DevCommand::BenchServeClient(a) => super::serve_bench::run_capacity_cli(a),
    }
}

#[derive(clap::Args)]
pub struct BenchNamesArgs {
    /// How many names to collect, parse and plan.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Target wall time in milliseconds.
    #[arg(long, default_value_t = 150.0)]
    pub target_ms: f64,
}

#[derive(clap::Args)]
pub struct BenchParseArgs {
    /// Size of the synthesized log in MB (10^6 bytes).
    #[arg(long, default_value_t = 200)]
    pub size_mb: u64,
    /// Target parse rate in MB/s.
    #[arg(long, default_value_t = 200.0)]
    pub target_mbps: f64,
}

#[derive(clap::Args)]
pub struct BenchGateArgs {
    /// Nights per simulated series (history + test window).
    #[arg(long, default_value_t = 60)]
    pub nights: usize,
    /// Leading nights that are history only (the goal needs at least 20).
    #[arg(long, default_value_t = 20)]
    pub history: usize,
    /// Series per scenario.
    #[arg(long, default_value_t = 400)]
    pub trials: usize,
    /// Seed of the simulation (the same seed gives the same table).
    #[arg(long, default_value_t = 20_240_601)]
    pub seed: u64,
    /// Reruns the gate may spend on an UNKNOWN night.
    #[arg(long, default_value_t = 1)]
    pub max_reruns: u32,
    /// Draw the noise from repetitions measured on real machines instead of simulating it: a
    /// CSV with the columns `session,value` (one session per machine or server start, in run
    /// order; `#` lines are comments), or `serve-bench --save-result` JSON lines (`*.jsonl`,
    /// one session per file). Repeat for several files. Prints the real-noise table
    /// (3/5/10% steps) instead of the simulated one.
    #[arg(long, value_name = "FILE")]
    pub noise: Vec<std::path::PathBuf>,
    /// The metric the real series measured: its direction, effect floor and upstream
    /// thresholds apply.
    #[arg(long, default_value = "TOTAL_OUTPUT_THROUGHPUT", requires = "noise")]
    pub noise_metric: String,
    /// The key read from `*.jsonl` noise files (`serve-bench --save-result` lines; each file is
    /// one session).
    #[arg(long, default_value = "output_throughput", requires = "noise")]
    pub noise_key: String,
    /// Keep `*.jsonl` repetitions that had failed requests (skipped by default): for a series
    /// whose every repetition lost the same requests to one fault.
    #[arg(long, requires = "noise")]
    pub noise_keep_failed: bool,
}

#[derive(clap::Args)]
pub struct BenchCpdArgs {
    /// Series to simulate (the dashboard's case x step x metric count).
    #[arg(long, default_value_t = 6000)]
    pub series: usize,
    /// Nights per series.
    #[arg(long, default_value_t = 365)]
    pub nights: usize,
    /// Repetitions per night (the night's value is their median).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Noise per repetition, as a coefficient of variation (0.01 = 1%).
    #[arg(long, default_value_t = 0.01)]
    pub cv: f64,
    /// The step regression in half of the series (0.05 = 5% worse).
    #[arg(long, default_value_t = 0.05)]
    pub step: f64,
    /// Random-walk drift per night (standard deviation, a fraction; bench-gate's model: 0.001).
    #[arg(long, default_value_t = 0.001)]
    pub drift: f64,
    /// Seed of the simulation (the same seed gives the same numbers).
    #[arg(long, default_value_t = 20_240_601)]
    pub seed: u64,
    /// Points per sliding window.
    #[arg(long, default_value_t = 50)]
    pub window: usize,
    /// A split is kept when the t-test between its neighbouring segments gives p below this.
    #[arg(long, default_value_t = 0.001)]
    pub max_pvalue: f64,
    /// The fewest nights between two change points (and a change point and either end).
    #[arg(long, default_value_t = 3)]
    pub min_segment: usize,
    /// Drop change points smaller than this (in %).
    #[arg(long, default_value_t = 0.0)]
    pub min_magnitude_pct: f64,
    /// The time budget for all series, in seconds (the dashboard's).
    #[arg(long, default_value_t = 10.0)]
    pub target_s: f64,
}

pub fn run_bench_names(a: BenchNamesArgs) -> anyhow::Result<ExitCode> {
    let report = crate::devbench::names(a.count)?;
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

pub fn run_bench_gate(a: BenchGateArgs) -> anyhow::Result<ExitCode> {
    use crate::gate::real_noise::NoiseSeries;
    use crate::gate::sim;
    let t0 = std::time::Instant::now();
    let options = sim::SimOptions {
        nights: a.nights,
        history: a.history,
        trials: a.trials,
        seed: a.seed,
        max_reruns: a.max_reruns,
    };
    let series = a
        .noise
        .iter()
        .map(|p| NoiseSeries::load(p, &a.noise_key, a.noise_keep_failed))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(series) = NoiseSeries::combine(series) {
        let report = sim::run_real(options, &series, &a.noise_metric)?;
        print!("{report}");
        for line in report.real_lines() {
            println!("{line}");
        }
        println!("({:.1} s)", t0.elapsed().as_secs_f64());
        return Ok(ExitCode::SUCCESS);
    }
    let report = sim::run(options)?;
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

pub fn run_bench_cpd(a: BenchCpdArgs) -> anyhow::Result<ExitCode> {
    use crate::gate::cpd_sim;
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
        params: crate::gate::cpd::CpdParams {
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

pub fn run_bench_parse(a: BenchParseArgs) -> anyhow::Result<ExitCode> {
    let report = crate::devbench::parse(a.size_mb)?;
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
