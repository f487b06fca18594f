//! The JUnit XML report CI reads: one testcase per test, with every metric as a property and,
//! on failure, the reason and the last lines of the log. The file is rewritten whole (temp file
//! and rename) after every test, so an interrupted run always leaves a valid report.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{CaseResult, State};

#[derive(Debug, Clone)]
pub enum Outcome {
    Passed,
    /// `message` is one line; `detail` carries the reasons and the log tail.
    Failed {
        message: String,
        detail: String,
    },
    Skipped {
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct JunitCase {
    /// The test id (`<prefix>/perf/test_perf.py::test_perf[<name>]`).
    pub test_id: String,
    pub outcome: Outcome,
    pub duration: Duration,
    pub started: SystemTime,
    pub properties: Vec<(String, String)>,
    pub system_out: Option<String>,
}

pub struct JunitWriter {
    path: PathBuf,
    suite: String,
    started: SystemTime,
    cases: Vec<JunitCase>,
}

impl JunitWriter {
    pub fn new(path: &Path, suite: &str) -> JunitWriter {
        JunitWriter {
            path: path.to_path_buf(),
            suite: suite.to_string(),
            started: SystemTime::now(),
            cases: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a test and rewrites the file.
    pub fn record(&mut self, case: JunitCase) -> anyhow::Result<()> {
        self.cases.push(case);
        self.write()
    }

    pub fn write(&self) -> anyhow::Result<()> {
        let xml = self.render()?;
        crate::runner::write_file_atomic(&self.path, xml.as_bytes())
    }

    pub fn render(&self) -> anyhow::Result<String> {
        let mut suite = TestSuite::new(self.suite.as_str());
        suite.set_timestamp(chrono::DateTime::<chrono::Utc>::from(self.started).fixed_offset());
        let mut total = Duration::ZERO;
        for c in &self.cases {
            total += c.duration;
            let (classname, name) = split_id(&c.test_id);
            let status = match &c.outcome {
                Outcome::Passed => TestCaseStatus::success(),
                Outcome::Failed { message, detail } => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(clean(message)).set_description(clean(detail));
                    s
                }
                Outcome::Skipped { message } => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(clean(message));
                    s
                }
            };
            let mut tc = TestCase::new(name, status);
            tc.set_classname(classname)
                .set_time(c.duration)
                .set_timestamp(chrono::DateTime::<chrono::Utc>::from(c.started).fixed_offset());
            for (k, v) in &c.properties {
                tc.add_property(Property::new(k.as_str(), v.as_str()));
            }
            if let Some(out) = &c.system_out {
                tc.set_system_out(clean(out));
            }
            suite.add_test_case(tc);
        }
        suite.set_time(total);
        let mut report = Report::new("perfgate");
        report.set_time(total).add_test_suite(suite);
        report
            .to_string()
            .map_err(|e| anyhow::anyhow!("{}: cannot write JUnit XML: {e}", self.path.display()))
    }
}

/// `H100/perf/test_perf.py::test_perf[x]` → (`H100.perf.test_perf`, `test_perf[x]`), as
/// pytest's junitxml names classes.
fn split_id(id: &str) -> (String, &str) {
    match id.rsplit_once("::") {
        Some((domain, name)) => (domain.trim_end_matches(".py").replace('/', "."), name),
        None => (String::from("perf"), id),
    }
}

/// XML 1.0 cannot carry most control characters, even escaped; benchmark logs do contain them
/// (progress bars, colour codes), so they are replaced.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// A case's metrics as properties: `METRIC` = value for one repetition; `.mean`, `.stddev`,
/// `.min`, `.max`, `.n` for several; prefixed with the case (`bs_1-isl_128-osl_128/`) when a
/// test expands into several cases and with the step when it is not the throughput run.
pub fn properties(cases: &[CaseResult]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let multi = cases.len() > 1;
    for case in cases {
        let prefix = match (&case.id.case, multi) {
            (Some(c), true) => format!("{c}/"),
            _ => String::new(),
        };
        out.push((format!("{prefix}state"), case.state().as_str().to_string()));
        for (step, name) in case.metric_names() {
            let key = match step {
                "throughput" | "build" => format!("{prefix}{name}"),
                other => format!("{prefix}{other}.{name}"),
            };
            let Some(stats) = case.stats(step, &name) else {
                continue;
            };
            if case.of_step(step).count() > 1 {
                out.push((format!("{key}.mean"), stats.mean.to_string()));
                out.push((format!("{key}.stddev"), stats.stddev.to_string()));
                out.push((format!("{key}.min"), stats.min.to_string()));
                out.push((format!("{key}.max"), stats.max.to_string()));
                out.push((format!("{key}.n"), stats.n.to_string()));
            } else {
                out.push((key, stats.mean.to_string()));
            }
        }
    }
    out
}

/// Whether every case is valid.
pub fn all_valid(cases: &[CaseResult]) -> bool {
    cases.iter().all(|c| c.state() == State::Valid)
}
