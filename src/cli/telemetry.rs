//! `perfgate telemetry`: a short look at what telemetry sees (environment, the power sources
//! measured and not, and a few samples). It only reads; it never changes a GPU setting.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use serde_json::json;

use crate::telemetry::{
    PowerChoice, PowerOptions, Recording, Sample, Telemetry, Trace, throttle_names,
};

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// For people: the environment, the power sources, a line per sample, then the summary.
    Table,
    /// One JSON object (environment, power sources, the recording, energy, summary, metrics),
    /// for scripts.
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
    /// The power sources to read: NVIDIA GPUs (nvml), Jetson INA3221 rails, thermal zones and
    /// GPU/EMC/CPU clocks (jetson), Intel/AMD RAPL counters with thermal zones and CPU clocks
    /// (rapl), every one this machine has (auto), or none.
    #[arg(long, value_enum, env = "PERF_POWER", default_value = "nvml")]
    pub power: PowerChoice,
    /// Read sysfs under this directory instead of `/` (a tree copied off a device).
    #[arg(long, env = "PERFGATE_SYSFS_ROOT", value_name = "DIR")]
    pub sysfs_root: Option<std::path::PathBuf>,
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

/// One line per sysfs trace: what, how many readings, last, min, mean, max.
fn trace_row(t: &Trace) -> String {
    let n = t.values.len();
    let stat = |f: fn(f64, f64) -> f64| t.values.iter().copied().reduce(f);
    let mean = (n > 0).then(|| t.values.iter().sum::<f64>() / n as f64);
    let num = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
    format!(
        "{:<7} {:<8} {:<7} {:<24} {:>4} {:>12} {:>12} {:>12} {:>12} {}",
        t.source.as_str(),
        t.family.as_str(),
        t.quantity.as_str(),
        t.name,
        n,
        num(t.values.last().copied()),
        num(stat(f64::min)),
        num(mean),
        num(stat(f64::max)),
        t.unit
    )
}

fn write_power(out: &mut impl Write, telemetry: &Telemetry, rec: &Recording) -> anyhow::Result<()> {
    let setup = telemetry.power();
    let measured: Vec<&str> = setup.measured.iter().map(|s| s.as_str()).collect();
    writeln!(
        out,
        "power {:<16} measured: {}",
        setup.asked.as_str(),
        if measured.is_empty() {
            "nothing".to_string()
        } else {
            measured.join(", ")
        }
    )?;
    for a in &setup.absent {
        writeln!(out, "absent: {a}")?;
    }
    for n in &setup.not_measured {
        writeln!(out, "not measured: {n}")?;
    }
    if !rec.rails.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "source  family   what    name                        n         last          min         mean          max unit"
        )?;
        for t in &rec.rails {
            writeln!(out, "{}", trace_row(t))?;
        }
    }
    let report = rec.energy(None);
    for s in &report.sources {
        let j = s.joules.map_or_else(|| "-".into(), |j| format!("{j:.3} J"));
        let w = s.mean_w.map_or_else(|| "-".into(), |w| format!("{w:.3} W"));
        writeln!(
            out,
            "energy {:<7} {j} over {:.3} s, mean {w} ({}; rails {})",
            s.source.as_str(),
            s.seconds,
            s.method.unwrap_or("no figure"),
            s.rails.join(", ")
        )?;
    }
    Ok(())
}

pub fn run_cli(a: TelemetryArgs) -> anyhow::Result<ExitCode> {
    let mut options = PowerOptions::new(a.power);
    if let Some(root) = &a.sysfs_root {
        options.sysfs_root = root.clone();
    }
    let telemetry = Telemetry::open_with(&options);
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
                "power": telemetry.power(),
                "environment": env,
                "recording": recording,
                "energy": recording.energy(None),
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
            if a.power != PowerChoice::Nvml {
                write_power(&mut out, &telemetry, &recording)?;
                writeln!(out)?;
            }
            if !recording.samples.is_empty() || a.power == PowerChoice::Nvml {
                writeln!(
                    out,
                    "gpu         time     sm    mem util%  temp mtemp  fan  ps    power     energy_mJ  mem_MiB clock_events"
                )?;
                for s in &recording.samples {
                    writeln!(out, "{}", row(s))?;
                }
                writeln!(out)?;
            }
            for (name, value) in summary.metrics() {
                writeln!(out, "{name:<24} {value:.3}")?;
            }
            if let Some(source) = summary.energy_source {
                writeln!(out, "energy from              {source}")?;
            }
            // The recording repeats why telemetry is unavailable and what is not measured,
            // printed above already.
            let unavailable = telemetry.unavailable_reason();
            let not_measured = telemetry.power().not_measured;
            for p in summary.problems.iter().filter(|p| {
                unavailable.as_deref() != Some(p.as_str())
                    && !(a.power != PowerChoice::Nvml && not_measured.contains(p))
            }) {
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
