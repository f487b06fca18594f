//! What a run measured, as plain data, and the files it is written to as each case finishes:
//! upstream's `perf_script_test_results.csv` / `.yaml` (so existing tools ingest them),
//! perfgate's own `results.jsonl`, and the JUnit XML CI reads.
//!
//! Every writer appends (or, for JUnit, rewrites atomically) and flushes to disk before the next
//! case starts, so a crash or Ctrl-C loses nothing that finished.

pub mod jsonl;
pub mod junit;
pub mod upstream;
pub mod verdicts;

use std::path::PathBuf;

use crate::record::CaseResult;

/// Every result file of a run, written as cases finish.
pub struct Writers {
    pub csv: Option<upstream::CsvWriter>,
    pub yaml: Option<upstream::YamlWriter>,
    pub jsonl: jsonl::JsonlWriter,
    pub junit: junit::JunitWriter,
    /// `gate.jsonl` and the markdown report.
    pub verdicts: verdicts::VerdictWriter,
    /// The run's GPU columns (`device_subtype`); a case's own samples fill its clocks.
    pub gpu: upstream::GpuColumns,
    /// `gpu_monitoring.csv` in this directory, opened at the first sampled step.
    pub monitoring_dir: PathBuf,
    pub monitoring: Option<crate::telemetry::GpuMonitoringWriter>,
}

impl Writers {
    /// Appends a finished case to the CSV, YAML and JSONL files.
    pub fn case(&mut self, case: &CaseResult) -> anyhow::Result<()> {
        // Upstream's sm_clk/mem_clk are the last sample's clocks; gpu_idx the first GPU.
        let mut gpu = self.gpu.clone();
        for m in &case.measurements {
            let Some(rec) = &m.telemetry else { continue };
            let monitoring = match &mut self.monitoring {
                Some(w) => w,
                None => self
                    .monitoring
                    .insert(crate::telemetry::GpuMonitoringWriter::open(
                        &self.monitoring_dir,
                    )?),
            };
            monitoring.write(&case.id.test_id, m.step, m.repetition, rec)?;
            let last = rec.samples.iter().rev().find(|s| s.sm_mhz.is_some());
            if let Some(last) = last {
                gpu.sm_clk = last.sm_mhz.map(f64::from);
                gpu.mem_clk = last.mem_mhz.map(f64::from);
                gpu.gpu_idx = rec.gpus.first().copied();
            }
        }
        let rows = upstream::rows(case, &gpu);
        if let Some(csv) = &mut self.csv {
            csv.write(&rows)?;
        }
        if let Some(yaml) = &mut self.yaml {
            yaml.write(&rows)?;
        }
        self.jsonl.write(case)
    }
}
