//! Upstream's result files, `perf_script_test_results.csv` and `.yaml`, with its columns in its
//! order, so the tools that ingest them keep working. Differences, all deliberate: failed and
//! invalid results get a row too (with their `state` and an empty `perf_metric`), timestamps
//! carry their zone (`+0000`), and with `--repeat N` a row holds the mean of the repetitions
//! (every repetition is in `results.jsonl`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::record::metric::metric;
use crate::record::{CaseResult, State, upstream_timestamp};

/// The CSV's columns, in upstream's (newest) order.
pub const COLUMNS: &[&str] = &[
    "network_name",
    "network_hash",
    "sm_clk",
    "mem_clk",
    "gpu_idx",
    "device_subtype",
    "perf_case_name",
    "test_name",
    "original_test_name",
    "perf_metric",
    "total_time__sec",
    "start_timestamp",
    "end_timestamp",
    "state",
    "command",
    "threshold",
    "absolute_threshold",
    "metric_type",
];

pub const CSV_NAME: &str = "perf_script_test_results.csv";
pub const YAML_NAME: &str = "perf_script_test_results.yaml";

/// GPU facts for the description columns (filled by telemetry when it runs).
#[derive(Debug, Clone, Default)]
pub struct GpuColumns {
    pub sm_clk: Option<f64>,
    pub mem_clk: Option<f64>,
    pub gpu_idx: Option<u32>,
    pub device_subtype: Option<String>,
}

impl GpuColumns {
    /// The run's columns with a case's own clocks: upstream's sm_clk/mem_clk are the last
    /// sample's clocks, gpu_idx the first GPU sampled.
    pub fn for_case(&self, case: &CaseResult) -> GpuColumns {
        let mut gpu = self.clone();
        for m in &case.measurements {
            let Some(rec) = &m.telemetry else { continue };
            if let Some(last) = rec.samples.iter().rev().find(|s| s.sm_mhz.is_some()) {
                gpu.sm_clk = last.sm_mhz.map(f64::from);
                gpu.mem_clk = last.mem_mhz.map(f64::from);
                gpu.gpu_idx = rec.gpus.first().copied();
            }
        }
        gpu
    }
}

/// One metric row, as upstream writes it.
#[derive(Debug, Clone)]
pub struct Row {
    pub values: Vec<(&'static str, Option<String>)>,
}

impl Row {
    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// The rows of one case: one per metric upstream records for it.
pub fn rows(case: &CaseResult, gpu: &GpuColumns) -> Vec<Row> {
    let mut out = Vec::new();
    for &(step, name) in &case.expected {
        let runs: Vec<_> = case.of_step(step).collect();
        let stats = case.stats(step, name);
        let state = if case.reason.is_some() || runs.is_empty() {
            State::Failed
        } else if runs.iter().any(|m| m.state == State::Invalid) {
            State::Invalid
        } else if runs.iter().any(|m| m.state != State::Valid)
            || stats.map(|s| s.n) != Some(runs.len())
        {
            State::Failed
        } else {
            State::Valid
        };
        let value = (state == State::Valid)
            .then_some(stats)
            .flatten()
            .map(|s| format_value(s.mean));
        let threshold = metric(name).and_then(|m| m.upstream_threshold);
        let first = runs.first();
        let total: f64 = runs.iter().map(|m| m.duration.as_secs_f64()).sum();
        let label = &case.id;
        let values = vec![
            ("network_name", Some(label.label.clone())),
            ("network_hash", Some(label.network_hash())),
            ("sm_clk", gpu.sm_clk.map(format_value)),
            ("mem_clk", gpu.mem_clk.map(format_value)),
            ("gpu_idx", gpu.gpu_idx.map(|i| i.to_string())),
            ("device_subtype", gpu.device_subtype.clone()),
            ("perf_case_name", Some(label.perf_case_name(name))),
            ("test_name", Some(label.metric_test_name(name))),
            ("original_test_name", Some(label.test_id.clone())),
            ("perf_metric", value),
            ("total_time__sec", first.map(|_| format_value(total))),
            (
                "start_timestamp",
                first.map(|m| upstream_timestamp(m.started)),
            ),
            (
                "end_timestamp",
                runs.last().map(|m| upstream_timestamp(m.ended)),
            ),
            ("state", Some(state.as_str().to_string())),
            ("command", first.map(|m| m.command.clone())),
            ("threshold", threshold.map(|t| format_value(t.0))),
            ("absolute_threshold", threshold.map(|t| format_value(t.1))),
            ("metric_type", Some(name.to_string())),
        ];
        out.push(Row { values });
    }
    out
}

/// Shortest round-tripping decimal (`1234.5`, `0.1`, `30`), as Python prints floats.
fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Appends rows to `perf_script_test_results.csv`, writing the header only to a new file.
pub struct CsvWriter {
    path: PathBuf,
    file: File,
    gpu: GpuColumns,
}

impl CsvWriter {
    /// Opens (or creates) the CSV. An existing file with other columns is an error here, before
    /// anything runs, rather than a file that no tool can read afterwards.
    pub fn open(dir: &Path, gpu: GpuColumns) -> anyhow::Result<CsvWriter> {
        let path = dir.join(CSV_NAME);
        let file = crate::fsutil::open_csv_appending(&path, COLUMNS)?;
        Ok(CsvWriter { path, file, gpu })
    }

    /// The GPU columns of a case's rows.
    pub fn gpu_columns(&self, case: &CaseResult) -> GpuColumns {
        self.gpu.for_case(case)
    }

    pub fn write(&mut self, rows: &[Row]) -> anyhow::Result<()> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        for row in rows {
            w.write_record(
                COLUMNS
                    .iter()
                    .map(|c| row.get(c).unwrap_or_default().to_string()),
            )
            .with_context(|| format!("{}: cannot format a row", self.path.display()))?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        self.file
            .write_all(&bytes)
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("{}: cannot write", self.path.display()))
    }
}

/// Appends `<test_name>: {monitor_data, test_description, test_result}` entries to
/// `perf_script_test_results.yaml`, as upstream does.
pub struct YamlWriter {
    path: PathBuf,
    file: File,
    gpu: GpuColumns,
}

impl YamlWriter {
    /// The GPU columns of a case's rows.
    pub fn gpu_columns(&self, case: &CaseResult) -> GpuColumns {
        self.gpu.for_case(case)
    }

    pub fn open(dir: &Path, gpu: GpuColumns) -> anyhow::Result<YamlWriter> {
        let path = dir.join(YAML_NAME);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        Ok(YamlWriter { path, file, gpu })
    }

    pub fn write(&mut self, rows: &[Row]) -> anyhow::Result<()> {
        use serde_json::{Map, Value, json};
        let text_of = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        let mut doc = Map::new();
        for row in rows {
            let mut description = Map::new();
            for key in [
                "network_name",
                "network_hash",
                "sm_clk",
                "mem_clk",
                "gpu_idx",
                "device_subtype",
            ] {
                description.insert(key.into(), text_of(&row.get(key).map(str::to_string)));
            }
            let mut result = Map::new();
            for (k, v) in &row.values {
                // Numbers stay numbers for the YAML reader; everything else is text.
                let value = match (*k, v) {
                    (
                        "perf_metric" | "total_time__sec" | "threshold" | "absolute_threshold",
                        Some(s),
                    ) => s
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map_or_else(|| Value::String(s.clone()), Value::Number),
                    _ => text_of(v),
                };
                result.insert((*k).into(), value);
            }
            let name = row.get("test_name").unwrap_or_default().to_string();
            doc.insert(
                name,
                json!({
                    "monitor_data": {"cpu": [], "os": [], "gpu": []},
                    "test_description": description,
                    "test_result": result,
                }),
            );
        }
        if doc.is_empty() {
            return Ok(());
        }
        let text = serde_saphyr::to_string(&Value::Object(doc))
            .map_err(|e| anyhow::anyhow!("{}: cannot format: {e}", self.path.display()))?;
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("{}: cannot write", self.path.display()))
    }
}
