//! `perfgate telemetry`: a short look at what telemetry sees (environment and a few samples).
//! It only reads; it never changes a GPU setting.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use serde_json::json;

use crate::telemetry::{Sample, Telemetry, throttle_names};

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(clap::Args)]
pub struct TelemetryArgs {
    /// Milliseconds between samples.
    #[arg(long, default_value_t = 200)]
    pub interval_ms: u64,
    /// Samples per GPU.
    #[arg(long, default_value_t = 10)]
    pub samples: u32,
    /// GPUs to sample, by NVML index (default: all).
    #[arg(long, value_delimiter = ',')]
    pub gpus: Vec<u32>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

fn cell<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn row(s: &Sample) -> String {
    format!(
        "{:>3} {:>12} {:>6} {:>6} {:>5} {:>5} {:>5} {:>5} {:>3} {:>8} {:>14} {:>8} {}",
        s.gpu,
        chrono::DateTime::<chrono::Utc>::from(s.time).format("%H:%M:%S%.3f"),
        cell(s.sm_mhz),
        cell(s.mem_mhz),
        cell(s.gpu_util_pct),
        cell(s.gpu_temp_c),
        cell(s.mem_temp_c),
        cell(s.fan_pct),
        cell(s.pstate.map(|p| format!("P{p}"))),
        cell(s.power_w.map(|p| format!("{p:.1}"))),
        cell(s.energy_mj),
        cell(s.mem_used_bytes.map(|b| b >> 20)),
        s.throttle_reasons.map_or_else(
            || "-".to_string(),
            |m| format!("{m:#x} {}", throttle_names(m).join(","))
        ),
    )
}

pub fn run_cli(a: TelemetryArgs) -> anyhow::Result<ExitCode> {
    let telemetry = Telemetry::open();
    let env = telemetry.environment();
    let interval = Duration::from_millis(a.interval_ms.max(10));
    let samples = a.samples.max(1);
    let recorder = telemetry.start(&a.gpus, interval);
    // Rounds come at 0, 1, 2, ... intervals; stopping half an interval after round n-2 makes
    // the last-sample-at-stop the n-th.
    if samples > 1 {
        std::thread::sleep(interval.mul_f64(f64::from(samples) - 1.5));
    }
    let recording = recorder.stop();
    let summary = recording.summary(None);
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => {
            let doc = json!({
                "unavailable": telemetry.unavailable_reason(),
                "device_count": telemetry.device_count(),
                "environment": env,
                "recording": recording,
                "summary": summary,
                "metrics": summary.metrics(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        Format::Table => {
            if let Some(reason) = telemetry.unavailable_reason() {
                writeln!(out, "{reason}")?;
            }
            for (k, v) in &env {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                writeln!(out, "{k:<22} {v}")?;
            }
            writeln!(out)?;
            writeln!(
                out,
                "gpu         time     sm    mem util%  temp mtemp  fan  ps    power     energy_mJ  mem_MiB clock_events"
            )?;
            for s in &recording.samples {
                writeln!(out, "{}", row(s))?;
            }
            writeln!(out)?;
            for (name, value) in summary.metrics() {
                writeln!(out, "{name:<24} {value:.3}")?;
            }
            if let Some(source) = summary.energy_source {
                writeln!(out, "energy from              {source}")?;
            }
            // The recording repeats why telemetry is unavailable, printed first already.
            let unavailable = telemetry.unavailable_reason();
            for p in summary
                .problems
                .iter()
                .filter(|p| unavailable.as_deref() != Some(p.as_str()))
            {
                writeln!(out, "problem: {p}")?;
            }
        }
    }
    Ok(if telemetry.unavailable_reason().is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
