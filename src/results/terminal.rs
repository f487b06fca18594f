//! The summary printed when a run ends: every case's upstream metrics on one line, the
//! verdict table, confirmed regressions with their blame ranges, and where the files are.

use std::io::Write;

use super::{RunSummary, Sink};
use crate::record::CaseResult;

/// Prints the summary to standard output at the end of a run with finished cases.
pub struct Terminal;

impl Sink for Terminal {
    fn what(&self) -> &'static str {
        "the summary"
    }

    fn run_finished(&mut self, run: &RunSummary) -> anyhow::Result<()> {
        if run.cases.is_empty() {
            return Ok(());
        }
        let gate = match &run.gate {
            Some(g) if !run.verdicts.is_empty() => format!(
                "\nperfgate verdicts ({g}):\n{}",
                super::verdicts::table(&run.verdicts)
            ),
            _ => String::new(),
        };
        let changes = run
            .change_points
            .as_ref()
            .map(|c| c.terminal.as_str())
            .unwrap_or_default();
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}{gate}{changes}\nresults: {} (perf_script_test_results.csv/.yaml, results.jsonl, gate.jsonl), JUnit {}, report {}",
            summary(&run.cases),
            run.output_dir.display(),
            run.junit.display(),
            run.report.display()
        )?;
        Ok(())
    }
}

/// The upstream metrics of every case, one line each.
pub fn summary(cases: &[CaseResult]) -> String {
    let mut out = String::from("\nperfgate summary:\n");
    for case in cases {
        let name = match &case.id.case {
            Some(c) => format!("{} [{c}]", case.id.raw),
            None if case.title.is_some() => {
                format!("{} [{}]", case.id.raw, case.title.unwrap_or_default())
            }
            None => case.id.raw.clone(),
        };
        let mut parts = Vec::new();
        for &(step, metric) in &case.expected {
            let unit = crate::record::metric::metric(metric)
                .map(|d| d.unit.symbol())
                .unwrap_or("");
            match case.stats(step, metric) {
                Some(s) if s.n > 1 => parts.push(format!(
                    "{metric} {:.2} ± {:.2} {unit} (n={})",
                    s.mean, s.stddev, s.n
                )),
                Some(s) => parts.push(format!("{metric} {:.2} {unit}", s.mean)),
                None => parts.push(format!("{metric} -")),
            }
        }
        let state = case.state().as_str();
        out.push_str(&format!(
            "  {state:<7} {name}\n          {}\n",
            parts.join(" · ")
        ));
    }
    out
}
