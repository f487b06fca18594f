//! Sinks: where finished cases, tests and the run go. Each output format is one [`Sink`]:
//! upstream's `perf_script_test_results.csv` / `.yaml` (so existing tools ingest them),
//! perfgate's own `results.jsonl`, `gpu_monitoring.csv`, `gate.jsonl` with the markdown report,
//! the JUnit XML CI reads, and the terminal summary; the history and the shard record are
//! sinks too (in their own modules). The run fans every event out to all of them, in order.
//!
//! Every writer appends (or, for JUnit and the report, rewrites atomically) and flushes to
//! disk before the next case starts, so a crash or Ctrl-C loses nothing that finished.

pub mod jsonl;
pub mod junit;
pub mod terminal;
pub mod upstream;
pub mod verdicts;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::record::{CaseResult, VerdictRecord};

/// Receives a run as it happens. Every method has a default that does nothing, so a sink
/// implements what it writes.
pub trait Sink: Send {
    /// What a failure to write is called (`cannot write {what}: ...`).
    fn what(&self) -> &'static str;

    /// A case finished: its measurements and the gate's verdicts on them.
    fn case_finished(
        &mut self,
        _case: &CaseResult,
        _verdicts: &[VerdictRecord],
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// A test finished (passed, failed or skipped), with every case it ran.
    fn test_finished(&mut self, _test: &TestRecord) -> anyhow::Result<()> {
        Ok(())
    }

    /// The run ended (also after an interrupt).
    fn run_finished(&mut self, _run: &RunSummary) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A finished test as the sinks see it.
#[derive(Debug, Clone)]
pub struct TestRecord {
    pub test_id: String,
    pub outcome: junit::Outcome,
    pub duration: Duration,
    pub started: SystemTime,
    pub cases: Vec<CaseResult>,
    pub verdicts: Vec<VerdictRecord>,
    /// The last lines of the test's log, when it failed.
    pub log_tail: Option<String>,
}

/// The end of a run as the sinks see it.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Every finished case and verdict, in order.
    pub cases: Vec<CaseResult>,
    pub verdicts: Vec<VerdictRecord>,
    /// The gate's mode and sources, one line (`None` without a gate).
    pub gate: Option<String>,
    /// Tonight's FAILs against the nights before: the report's "Change points" section and
    /// the terminal's confirmed-regression lines.
    pub change_points: Option<ChangePoints>,
    pub output_dir: PathBuf,
    /// Where the JUnit report and the markdown report are.
    pub junit: PathBuf,
    pub report: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct ChangePoints {
    pub markdown: String,
    pub terminal: String,
}

/// The upstream CSV.
impl Sink for upstream::CsvWriter {
    fn what(&self) -> &'static str {
        "results"
    }
    fn case_finished(&mut self, case: &CaseResult, _: &[VerdictRecord]) -> anyhow::Result<()> {
        let rows = upstream::rows(case, &self.gpu_columns(case));
        self.write(&rows)
    }
}

/// The upstream YAML.
impl Sink for upstream::YamlWriter {
    fn what(&self) -> &'static str {
        "results"
    }
    fn case_finished(&mut self, case: &CaseResult, _: &[VerdictRecord]) -> anyhow::Result<()> {
        let rows = upstream::rows(case, &self.gpu_columns(case));
        self.write(&rows)
    }
}

impl Sink for jsonl::JsonlWriter {
    fn what(&self) -> &'static str {
        "results"
    }
    fn case_finished(&mut self, case: &CaseResult, _: &[VerdictRecord]) -> anyhow::Result<()> {
        self.write(case)
    }
}

/// `gate.jsonl` and the markdown report; the run's change points end the report.
impl Sink for verdicts::VerdictWriter {
    fn what(&self) -> &'static str {
        "results"
    }
    fn case_finished(&mut self, _: &CaseResult, verdicts: &[VerdictRecord]) -> anyhow::Result<()> {
        self.write(verdicts)
    }
    fn run_finished(&mut self, run: &RunSummary) -> anyhow::Result<()> {
        match &run.change_points {
            Some(cp) => self.set_appendix(&cp.markdown),
            None => Ok(()),
        }
    }
}

/// The JUnit report, rewritten after every test.
impl Sink for junit::JunitWriter {
    fn what(&self) -> &'static str {
        "the JUnit report"
    }
    fn test_finished(&mut self, test: &TestRecord) -> anyhow::Result<()> {
        let mut properties = junit::properties(&test.cases);
        properties.extend(junit::verdict_properties(&test.verdicts, &test.cases));
        self.record(junit::JunitCase {
            test_id: test.test_id.clone(),
            outcome: test.outcome.clone(),
            duration: test.duration,
            started: test.started,
            properties,
            system_out: test.log_tail.clone(),
        })
    }
}

/// `gpu_monitoring.csv`: every sampled step's GPU samples, opened at the first one; and
/// `power_monitoring.csv`: its sysfs readings (Jetson, RAPL, thermal zones, CPU clocks),
/// opened at the first step that has any.
pub struct GpuMonitoring {
    dir: PathBuf,
    writer: Option<crate::telemetry::GpuMonitoringWriter>,
    power: Option<crate::telemetry::PowerMonitoringWriter>,
}

impl GpuMonitoring {
    pub fn new(dir: &std::path::Path) -> GpuMonitoring {
        GpuMonitoring {
            dir: dir.to_path_buf(),
            writer: None,
            power: None,
        }
    }
}

impl Sink for GpuMonitoring {
    fn what(&self) -> &'static str {
        "results"
    }
    fn case_finished(&mut self, case: &CaseResult, _: &[VerdictRecord]) -> anyhow::Result<()> {
        for m in &case.measurements {
            let Some(rec) = &m.telemetry else { continue };
            let writer = match &mut self.writer {
                Some(w) => w,
                None => self
                    .writer
                    .insert(crate::telemetry::GpuMonitoringWriter::open(&self.dir)?),
            };
            writer.write(&case.id.test_id, m.step, m.repetition, rec)?;
            if rec.rails.iter().any(|t| !t.is_empty()) {
                let power = match &mut self.power {
                    Some(w) => w,
                    None => self
                        .power
                        .insert(crate::telemetry::PowerMonitoringWriter::open(&self.dir)?),
                };
                power.write(&case.id.test_id, m.step, m.repetition, rec)?;
            }
        }
        Ok(())
    }
}
