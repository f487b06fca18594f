//! `perfgate compare A B`: two runs side by side.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CompareFormat {
    /// Aligned text, worst change first.
    Table,
    /// A markdown table, for a PR comment.
    Markdown,
    /// One self-contained page (inline CSS, no script): regressions red, improvements green.
    Html,
}

#[derive(clap::Args)]
pub struct CompareArgs {
    /// The base: an output directory (its results.jsonl; `DIR@RUN_ID` picks one of several
    /// appended runs, default the last), or a run of the history (`latest`, `latest~N`, an id).
    pub a: String,
    /// The one compared with A, named the same ways.
    pub b: String,
    #[command(flatten)]
    pub location: super::args::HistoryLocation,
    #[arg(long, value_enum, default_value = "table")]
    pub format: CompareFormat,
    /// Write to this file (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Only this metric (repeatable), e.g. --metric TOKEN_THROUGHPUT.
    #[arg(long = "metric", value_name = "M")]
    pub metrics: Vec<String>,
}

pub fn run_compare(a: CompareArgs) -> anyhow::Result<ExitCode> {
    use crate::compare;
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
        Some(path) => crate::fsutil::write(path, text.as_bytes())?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
