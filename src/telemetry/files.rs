//! Upstream-compatible telemetry files: `gpu_monitoring.csv` (every sample of every recorded
//! step) and `session_properties.csv` (one row per run).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use serde_json::{Map, Value};

use super::{Recording, Sample};

pub const GPU_MONITORING_NAME: &str = "gpu_monitoring.csv";
pub const SESSION_NAME: &str = "session_properties.csv";

/// Upstream's 15 columns, then ours: the step's `test_id`, `step` and `repetition`, and three
/// readings upstream does not record: the energy counter (mJ), memory used (MiB) and the NVML
/// clocks-event reason mask (decimal; bits in `THROTTLE_REASONS`). Timestamps are UTC,
/// `YYYY-MM-DD HH:MM:SS.mmm`. A reading NVML did not give is an empty cell.
pub const GPU_MONITORING_COLUMNS: [&str; 21] = [
    "gpu_id",
    "timestamp",
    "gpu_clock__MHz",
    "memory_clock__MHz",
    "graphics_clock__MHz",
    "gpu_utilization__pct",
    "memory_utilization__pct",
    "encoder_utilization__pct",
    "decoder_utilization__pct",
    "gpu_temperature__C",
    "memory_temperature__C",
    "fan_speed__pct",
    "perf_state",
    "power_draw__W",
    "process_num",
    "test_id",
    "step",
    "repetition",
    "energy_consumption__mJ",
    "memory_used__MiB",
    "clocks_event_reasons",
];

/// Upstream's columns, in upstream's order.
pub const SESSION_COLUMNS: [&str; 16] = [
    "username",
    "start_timestamp",
    "hostname",
    "ip",
    "nvidia_driver_version",
    "nvidia_device_count",
    "os_properties",
    "cpu_properties",
    "gpu_properties",
    "trt_change_id",
    "trt_branch",
    "commit_timestamp",
    "cuda_version",
    "cublas_version",
    "cudnn_version",
    "end_timestamp",
];

fn cell<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn sample_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
}

/// The results' timestamp format (`perf_script_test_results.csv`), UTC.
fn session_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d %H:%M:%S %z")
        .to_string()
}

fn sample_row(s: &Sample, test_id: &str, step: &str, repetition: u32) -> Vec<String> {
    vec![
        s.gpu.to_string(),
        sample_time(s.time),
        cell(s.sm_mhz),
        cell(s.mem_mhz),
        cell(s.graphics_mhz),
        cell(s.gpu_util_pct),
        cell(s.mem_util_pct),
        cell(s.encoder_util_pct),
        cell(s.decoder_util_pct),
        cell(s.gpu_temp_c),
        cell(s.mem_temp_c),
        cell(s.fan_pct),
        cell(s.pstate),
        cell(s.power_w),
        cell(s.processes),
        test_id.to_string(),
        step.to_string(),
        repetition.to_string(),
        cell(s.energy_mj),
        cell(s.mem_used_bytes.map(|b| b >> 20)),
        cell(s.throttle_reasons),
    ]
}

fn append_rows(file: &mut File, path: &Path, rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for row in rows {
        w.write_record(row)
            .with_context(|| format!("{}: cannot format a row", path.display()))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    file.write_all(&bytes)
        .and_then(|_| file.sync_data())
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Appends every sample of a recorded step to `<dir>/gpu_monitoring.csv` (columns in
/// [`GPU_MONITORING_COLUMNS`]), synced after each step.
pub struct GpuMonitoringWriter {
    path: PathBuf,
    file: File,
}

impl GpuMonitoringWriter {
    pub fn open(dir: &Path) -> anyhow::Result<GpuMonitoringWriter> {
        let path = dir.join(GPU_MONITORING_NAME);
        let file = crate::fsutil::open_csv_appending(&path, &GPU_MONITORING_COLUMNS)?;
        Ok(GpuMonitoringWriter { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(
        &mut self,
        test_id: &str,
        step: &str,
        repetition: u32,
        rec: &Recording,
    ) -> anyhow::Result<()> {
        let rows: Vec<Vec<String>> = rec
            .samples
            .iter()
            .map(|s| sample_row(s, test_id, step, repetition))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        append_rows(&mut self.file, &self.path, &rows)
    }
}

fn text(env: &Map<String, Value>, key: &str) -> String {
    match env.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

/// A JSON object of the keys of `env` that are there (upstream writes a Python dict here).
fn properties(env: &Map<String, Value>, keys: &[&str]) -> String {
    let picked: Map<String, Value> = keys
        .iter()
        .filter_map(|k| env.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    if picked.is_empty() {
        String::new()
    } else {
        Value::Object(picked).to_string()
    }
}

/// Appends one row for this run to `<dir>/session_properties.csv` (header once), with
/// upstream's columns filled from [`super::Telemetry::environment`] where known:
/// `os_properties`, `cpu_properties` and `gpu_properties` are JSON objects; the TensorRT
/// change, branch, commit time and cuBLAS/cuDNN versions are left empty (perfgate does not
/// know them), as upstream leaves them.
pub fn write_session_properties(
    dir: &Path,
    env: &Map<String, Value>,
    start: SystemTime,
    end: SystemTime,
) -> anyhow::Result<()> {
    let path = dir.join(SESSION_NAME);
    let mut file = crate::fsutil::open_csv_appending(&path, &SESSION_COLUMNS)?;
    let row = vec![
        text(env, "username"),
        session_time(start),
        text(env, "hostname"),
        text(env, "ip"),
        text(env, "driver_version"),
        text(env, "gpu_count"),
        properties(env, &["os", "kernel", "container_image", "container_id"]),
        properties(env, &["cpu_model", "cpu_count"]),
        properties(
            env,
            &[
                "gpu_name",
                "gpu_type",
                "gpu_count",
                "gpu_memory",
                "compute_capability",
                "gpu_pci_device_id",
                "vbios",
                "power_limit",
                "ecc",
                "mig",
            ],
        ),
        String::new(),
        String::new(),
        String::new(),
        text(env, "cuda_version"),
        String::new(),
        String::new(),
        session_time(end),
    ];
    append_rows(&mut file, &path, &[row])
}

pub const POWER_MONITORING_NAME: &str = "power_monitoring.csv";

/// One row per reading of a sysfs trace (Jetson rails and clocks, RAPL counters, thermal
/// zones, CPU clocks; NVML's GPUs are in `gpu_monitoring.csv`): the step, then the trace
/// (`source` jetson|rapl, `family` ina3221|rapl|thermal|devfreq|emc|cpufreq, `quantity`
/// power|energy|temp|freq|load, its `name` and `unit`), the reading's UTC time and
/// nanoseconds since the epoch, and the value (RAPL energy: the counter in joules, as read).
pub const POWER_MONITORING_COLUMNS: [&str; 11] = [
    "test_id",
    "step",
    "repetition",
    "source",
    "family",
    "quantity",
    "name",
    "unit",
    "timestamp",
    "time_ns",
    "value",
];

/// Appends every sysfs reading of a recorded step to `<dir>/power_monitoring.csv` (columns
/// in [`POWER_MONITORING_COLUMNS`]), synced after each step.
pub struct PowerMonitoringWriter {
    path: PathBuf,
    file: File,
}

impl PowerMonitoringWriter {
    pub fn open(dir: &Path) -> anyhow::Result<PowerMonitoringWriter> {
        let path = dir.join(POWER_MONITORING_NAME);
        let file = crate::fsutil::open_csv_appending(&path, &POWER_MONITORING_COLUMNS)?;
        Ok(PowerMonitoringWriter { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(
        &mut self,
        test_id: &str,
        step: &str,
        repetition: u32,
        rec: &Recording,
    ) -> anyhow::Result<()> {
        let mut rows = Vec::new();
        for trace in &rec.rails {
            for (time, value) in trace.points() {
                rows.push(vec![
                    test_id.to_string(),
                    step.to_string(),
                    repetition.to_string(),
                    trace.source.as_str().to_string(),
                    trace.family.as_str().to_string(),
                    trace.quantity.as_str().to_string(),
                    trace.name.clone(),
                    trace.unit.to_string(),
                    sample_time(time),
                    super::epoch_nanos(time).to_string(),
                    value.to_string(),
                ]);
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        append_rows(&mut self.file, &self.path, &rows)
    }
}
