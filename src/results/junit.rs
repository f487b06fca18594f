//! The JUnit XML report CI reads: one testcase per test, with every metric as a property and,
//! on failure, the reason and the last lines of the log. The file is rewritten whole (temp file
//! and rename) after every test, so an interrupted run always leaves a valid report.
//!
//! The report must pass the strict JUnit schema Jenkins uses (`jenkins-junit.xsd`), which has
//! no properties on a testcase, no attributes on `<skipped>` and only a few on `<testsuites>`.
//! So each test is a `<testsuite>` of its own holding the metrics as suite properties and one
//! testcase, a skip reason is the text of `<skipped>`, and the root tag quick-junit writes is
//! replaced by one with the schema's attributes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::record::CaseResult;
use crate::textutil::xml_escape;

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
    /// The test did not run to an end (its job was killed): an `<error>`, not a failure.
    Error {
        message: String,
        detail: String,
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
    cases: Vec<JunitCase>,
}

impl JunitWriter {
    pub fn new(path: &Path, suite: &str) -> JunitWriter {
        JunitWriter {
            path: path.to_path_buf(),
            suite: suite.to_string(),
            cases: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a test without writing the file (for a report rendered once).
    pub fn add(&mut self, case: JunitCase) {
        self.cases.push(case);
    }

    /// Adds a test and rewrites the file.
    pub fn record(&mut self, case: JunitCase) -> anyhow::Result<()> {
        self.cases.push(case);
        self.write()
    }

    pub fn write(&self) -> anyhow::Result<()> {
        let xml = self.render()?;
        crate::fsutil::write(&self.path, xml.as_bytes())?;
        Ok(())
    }

    pub fn render(&self) -> anyhow::Result<String> {
        let mut report = Report::new("perfgate");
        let (mut total, mut failures, mut errors) = (Duration::ZERO, 0usize, 0usize);
        for c in &self.cases {
            total += c.duration;
            let (classname, name) = split_id(&c.test_id);
            let status = match &c.outcome {
                Outcome::Passed => TestCaseStatus::success(),
                Outcome::Failed { message, detail } => {
                    failures += 1;
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(clean(message)).set_description(clean(detail));
                    s
                }
                Outcome::Error { message, detail } => {
                    errors += 1;
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_message(clean(message)).set_description(clean(detail));
                    s
                }
                Outcome::Skipped { message } => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_description(clean(message));
                    s
                }
            };
            let mut tc = TestCase::new(name, status);
            tc.set_classname(classname).set_time(c.duration);
            if let Some(out) = &c.system_out {
                tc.set_system_out(clean(out));
            }
            let mut suite = TestSuite::new(c.test_id.as_str());
            suite
                .set_timestamp(chrono::DateTime::<chrono::Utc>::from(c.started).fixed_offset())
                .set_time(c.duration);
            for (k, v) in &c.properties {
                suite.add_property(Property::new(k.as_str(), v.as_str()));
            }
            suite.add_test_case(tc);
            report.add_test_suite(suite);
        }
        let xml = report
            .to_string()
            .map_err(|e| anyhow::anyhow!("{}: cannot write JUnit XML: {e}", self.path.display()))?;
        let root = format!(
            "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">",
            self.suite,
            self.cases.len(),
            total.as_secs_f64()
        );
        replace_root(&xml, &root).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: unexpected JUnit XML from the writer",
                self.path.display()
            )
        })
    }
}

/// The totals of a report's root tag and the `<testsuite>` elements inside it, as this writer
/// writes them (for `perfgate merge`, which joins the reports of several shards).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportParts {
    pub tests: usize,
    pub failures: usize,
    pub errors: usize,
    pub time: f64,
    /// Everything between the root's start and end tags.
    pub body: String,
}

/// Splits a report this writer wrote; `None` for XML of another shape.
pub fn split_report(xml: &str) -> Option<ReportParts> {
    let start = xml.find("<testsuites")?;
    let end = start + xml[start..].find('>')?;
    let tag = &xml[start..=end];
    let attr = |name: &str| -> Option<String> {
        let key = format!(" {name}=\"");
        let at = tag.find(&key)? + key.len();
        let len = tag[at..].find('"')?;
        Some(tag[at..at + len].to_string())
    };
    let count = |name: &str| attr(name).and_then(|v| v.parse::<usize>().ok());
    let mut parts = ReportParts {
        tests: count("tests")?,
        failures: count("failures")?,
        errors: count("errors").unwrap_or(0),
        time: attr("time")?.parse().ok()?,
        body: String::new(),
    };
    if !tag.ends_with("/>") {
        let close = xml.rfind("</testsuites>")?;
        if close <= end {
            return None;
        }
        parts.body = xml[end + 1..close].trim_matches('\n').to_string();
    }
    Some(parts)
}

/// One report from the parts of several (see [`split_report`]).
pub fn join_reports(suite: &str, parts: &[ReportParts]) -> String {
    let sum = |f: fn(&ReportParts) -> usize| parts.iter().map(f).sum::<usize>();
    let time: f64 = parts.iter().map(|p| p.time).sum();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{time:.3}\">\n",
        xml_escape(suite),
        sum(|p| p.tests),
        sum(|p| p.failures),
        sum(|p| p.errors),
    );
    for p in parts {
        if !p.body.trim().is_empty() {
            xml.push_str(&p.body);
            xml.push('\n');
        }
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// `xml` with its `<testsuites ...>` start tag replaced by `root`. quick-junit always writes a
/// `skipped` attribute there, which Jenkins' schema does not allow. (Attribute values are
/// escaped, so the first `>` after the tag name ends the tag.)
fn replace_root(xml: &str, root: &str) -> Option<String> {
    let start = xml.find("<testsuites")?;
    let end = start + xml[start..].find('>')?;
    let self_closing = xml[..end].ends_with('/');
    let mut out = String::with_capacity(xml.len());
    out.push_str(&xml[..start]);
    out.push_str(root);
    if self_closing {
        out.push_str("</testsuites>");
    }
    out.push_str(&xml[end + 1..]);
    Some(out)
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
/// test expands into several cases and with the step when it is not one whose metrics upstream
/// records (the throughput run, the engine build).
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
            let key = if case.is_primary_step(step) {
                format!("{prefix}{name}")
            } else {
                format!("{prefix}{step}.{name}")
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

/// The gate's verdicts as properties: `<metric>.verdict`, `.baseline`, `.change_pct`,
/// `.mde_pct` (what this case can detect), `.roofline_pct`, `.mfu_pct`, `.mbu_pct`, `.gated`,
/// keyed like
/// [`properties`] (`<case>/` first when a test has several cases).
/// A verdict's step is named in its keys unless it is one its case records upstream's metrics
/// of (`cases`, the test's finished cases).
pub fn verdict_properties(
    records: &[crate::record::VerdictRecord],
    results: &[CaseResult],
) -> Vec<(String, String)> {
    let mut cases: Vec<&str> = records
        .iter()
        .map(|r| r.case.as_deref().unwrap_or(""))
        .collect();
    cases.dedup();
    let multi = cases.len() > 1;
    let mut out = Vec::new();
    for r in records {
        let prefix = match (&r.case, multi) {
            (Some(c), true) => format!("{c}/"),
            _ => String::new(),
        };
        let primary = results.iter().any(|c| c.is_primary_step(&r.step));
        let key = if primary {
            format!("{prefix}{}", r.metric)
        } else {
            format!("{prefix}{}.{}", r.step, r.metric)
        };
        out.push((format!("{key}.verdict"), r.verdict.as_str().to_string()));
        out.push((format!("{key}.gated"), r.gated.to_string()));
        let mut num = |what: &str, v: Option<f64>| {
            if let Some(v) = v {
                out.push((format!("{key}.{what}"), format!("{v}")));
            }
        };
        num("baseline", r.baseline);
        num("change_pct", r.change_pct);
        num("mde_pct", r.mde_pct);
        num("roofline_pct", r.roofline_pct);
        num("mfu_pct", r.mfu_pct);
        num("mbu_pct", r.mbu_pct);
    }
    out
}
