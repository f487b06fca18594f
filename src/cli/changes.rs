//! `perfgate history changes`: a run's provisional regressions confirmed, cleared or pending,
//! with blame ranges; `--all`: every change point of every series the run measured.

use std::io::Write;
use std::process::ExitCode;

use clap::ValueEnum;

use super::args::HistoryLocation;
use crate::history::History;
use crate::history::regressions::{
    ChangeRow, blame_text, change_rows, pct, render_markdown, resolve_run, summary,
};
use crate::textutil::aligned;

#[derive(Clone, Copy, ValueEnum)]
pub enum ChangesFormat {
    /// For people: a line per FAIL verdict of the run (per change point with --all), with its
    /// blame range.
    Table,
    /// The same rows as JSON objects, for scripts.
    Json,
    /// A markdown table, for a PR comment or a bug.
    Markdown,
}

#[derive(clap::Args)]
pub struct ChangesArgs {
    #[command(flatten)]
    pub location: HistoryLocation,
    /// The run whose FAIL verdicts to assess: a run id, `latest`, or `latest~N` (N runs before).
    #[arg(long, default_value = "latest", value_name = "RUN")]
    pub run: String,
    /// List every change point (regressions and improvements) of every series the run measured.
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ChangesFormat,
}

pub fn run_changes(a: ChangesArgs) -> anyhow::Result<ExitCode> {
    let path = a.location.path();
    let history = History::open_existing(&path)?;
    let run = resolve_run(&history, &path, &a.run)?;
    let rows = change_rows(&history, &run, a.all)?;
    let mut out = std::io::stdout().lock();
    match a.format {
        ChangesFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?,
        ChangesFormat::Markdown => write!(out, "{}", render_markdown(&rows, a.all))?,
        ChangesFormat::Table => {
            writeln!(out, "run {} (night {})", run.meta.run_id, run.night)?;
            write!(out, "{}", render_table(&rows))?;
            writeln!(out, "{}", summary(&rows, a.all))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render_table(rows: &[ChangeRow]) -> String {
    let mut t = vec![[
        "STATUS".to_string(),
        "METRIC".into(),
        "Δ%".into(),
        "LAST GOOD".into(),
        "FIRST BAD".into(),
        "CASE".into(),
    ]];
    for r in rows {
        let (good, bad) = blame_text(&r.blame);
        t.push([
            r.status.clone(),
            format!("{} {}", r.step, r.metric),
            pct(r.change_pct),
            good,
            bad,
            r.perf_case_name.clone(),
        ]);
    }
    aligned(&t, &[2])
}
