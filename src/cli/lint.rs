//! `perfgate lint`: test lists checked without a GPU.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::args::CommonArgs;

#[derive(clap::Args)]
pub struct LintArgs {
    /// Test lists (plain text or test-db YAML).
    #[arg(required = true)]
    pub lists: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run_lint(a: LintArgs) -> anyhow::Result<ExitCode> {
    let mut common = a.common.to_collect();
    common.test_lists = a.lists;
    let report = crate::lint::lint(&common)?;
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
