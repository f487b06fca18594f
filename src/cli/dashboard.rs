//! `perfgate dashboard` and `perfgate bench-dashboard`.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct DashboardArgs {
    /// Which history (the same defaults as `gate`, `history` and `compare`).
    #[command(flatten)]
    pub location: super::args::HistoryLocation,
    /// The site's directory (created; files in it are replaced) [default:
    /// `<output-dir>/dashboard`].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Show the most recent this many runs.
    #[arg(long, default_value_t = 90)]
    pub nights: usize,
}

#[derive(clap::Args)]
pub struct BenchDashboardArgs {
    /// Nights (runs) to synthesize.
    #[arg(long, default_value_t = 365)]
    pub nights: usize,
    /// Cases per night.
    #[arg(long, default_value_t = 1000)]
    pub cases: usize,
    /// Metrics per case (the first three gate).
    #[arg(long, default_value_t = 6)]
    pub metrics: usize,
    /// Where the history and the site go (default: a temporary directory, removed after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Build from the history already in `--dir` (one an earlier run synthesized) instead of
    /// synthesizing it again; `--nights` then says how many of its runs the site shows.
    #[arg(long, requires = "dir")]
    pub reuse: bool,
    /// The build time target, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub target_s: f64,
}

pub fn run_dashboard(a: DashboardArgs) -> anyhow::Result<ExitCode> {
    let t0 = std::time::Instant::now();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.location.output_dir.join("dashboard"));
    let summary = crate::dashboard::build(&crate::dashboard::Options {
        history: a.location.path(),
        out: out.clone(),
        nights: a.nights,
    })?;
    let index = out.join("index.html");
    if summary.runs == 0 {
        eprintln!(
            "perfgate: no runs in {} yet; wrote an empty dashboard to {}",
            a.location.path().display(),
            index.display()
        );
    } else {
        println!(
            "dashboard: {} runs, {} cases, {} series, {} sweeps; {} files ({:.1} MB) in {:.2} s: {}",
            summary.runs,
            summary.cases,
            summary.series,
            summary.sweeps,
            summary.files,
            summary.bytes as f64 / 1e6,
            t0.elapsed().as_secs_f64(),
            index.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_bench(a: BenchDashboardArgs) -> anyhow::Result<ExitCode> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile_dir()?;
            tmp.clone()
        }
    };
    let report = crate::dashboard::synthetic::run(&crate::dashboard::synthetic::BenchOptions {
        nights: a.nights,
        cases: a.cases,
        metrics: a.metrics,
        dir: dir.clone(),
        reuse: a.reuse,
    })?;
    println!("{report}");
    println!(
        "target: build under {:.1} s: {}",
        a.target_s,
        if report.build_s <= a.target_s {
            "within"
        } else {
            "OVER"
        }
    );
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(ExitCode::SUCCESS)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("perfgate-bench-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
