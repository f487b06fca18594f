//! `perfgate lint`: test lists checked without a GPU.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::args::CommonArgs;

#[derive(clap::Args)]
pub struct LintArgs {
    /// Test lists (plain text or test-db YAML); `-F`/`PERF_TEST_LIST` add more.
    pub lists: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run_lint(a: LintArgs) -> anyhow::Result<ExitCode> {
    let mut common = a.common.to_collect();
    // The positional lists first, then those of -F / PERF_TEST_LIST.
    let from_flag = std::mem::take(&mut common.test_lists);
    common.test_lists = a.lists;
    common.test_lists.extend(from_flag);
    if common.test_lists.is_empty() {
        anyhow::bail!(
            "no test list to check: give one or more as arguments, with -F/--test-list, or in PERF_TEST_LIST"
        );
    }
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
