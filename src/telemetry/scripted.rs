//! A scripted telemetry source for tests and GPU-less end-to-end runs (`PERFGATE_FAKE_NVML`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Sample, Source};

/// One scripted reading: the [`Sample`] fields without `gpu` and `time` (absent = `None`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reading {
    pub sm_mhz: Option<u32>,
    pub mem_mhz: Option<u32>,
    pub graphics_mhz: Option<u32>,
    pub gpu_util_pct: Option<u32>,
    pub mem_util_pct: Option<u32>,
    pub encoder_util_pct: Option<u32>,
    pub decoder_util_pct: Option<u32>,
    pub gpu_temp_c: Option<u32>,
    pub mem_temp_c: Option<u32>,
    pub fan_pct: Option<u32>,
    pub pstate: Option<u32>,
    pub power_w: Option<f64>,
    pub energy_mj: Option<u64>,
    pub mem_used_bytes: Option<u64>,
    pub throttle_reasons: Option<u64>,
    pub processes: Option<u32>,
}

impl Reading {
    fn into_sample(self, gpu: u32, time: SystemTime) -> Sample {
        Sample {
            gpu,
            time,
            sm_mhz: self.sm_mhz,
            mem_mhz: self.mem_mhz,
            graphics_mhz: self.graphics_mhz,
            gpu_util_pct: self.gpu_util_pct,
            mem_util_pct: self.mem_util_pct,
            encoder_util_pct: self.encoder_util_pct,
            decoder_util_pct: self.decoder_util_pct,
            gpu_temp_c: self.gpu_temp_c,
            mem_temp_c: self.mem_temp_c,
            fan_pct: self.fan_pct,
            pstate: self.pstate,
            power_w: self.power_w,
            energy_mj: self.energy_mj,
            mem_used_bytes: self.mem_used_bytes,
            throttle_reasons: self.throttle_reasons,
            processes: self.processes,
        }
    }
}

/// The sample fields by name, for `unsupported`.
const FIELDS: [&str; 16] = [
    "sm_mhz",
    "mem_mhz",
    "graphics_mhz",
    "gpu_util_pct",
    "mem_util_pct",
    "encoder_util_pct",
    "decoder_util_pct",
    "gpu_temp_c",
    "mem_temp_c",
    "fan_pct",
    "pstate",
    "power_w",
    "energy_mj",
    "mem_used_bytes",
    "throttle_reasons",
    "processes",
];

fn clear(s: &mut Sample, field: &str) {
    match field {
        "sm_mhz" => s.sm_mhz = None,
        "mem_mhz" => s.mem_mhz = None,
        "graphics_mhz" => s.graphics_mhz = None,
        "gpu_util_pct" => s.gpu_util_pct = None,
        "mem_util_pct" => s.mem_util_pct = None,
        "encoder_util_pct" => s.encoder_util_pct = None,
        "decoder_util_pct" => s.decoder_util_pct = None,
        "gpu_temp_c" => s.gpu_temp_c = None,
        "mem_temp_c" => s.mem_temp_c = None,
        "fan_pct" => s.fan_pct = None,
        "pstate" => s.pstate = None,
        "power_w" => s.power_w = None,
        "energy_mj" => s.energy_mj = None,
        "mem_used_bytes" => s.mem_used_bytes = None,
        "throttle_reasons" => s.throttle_reasons = None,
        "processes" => s.processes = None,
        _ => {}
    }
}

/// `lose_gpu`: the GPU answers `after` samples, then is lost.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoseGpu {
    pub gpu: u32,
    pub after: u64,
}

/// A telemetry script: the JSON `PERFGATE_FAKE_NVML` names, every key optional:
///
/// ```json
/// {
///   "gpus": 2,                          // GPU count (default 1)
///   "gpu_name": "H100 80GB HBM3",       // environment()'s gpu_name (gpu_type follows)
///   "environment": {"driver_version": "580.1"},   // more facts, over the defaults
///   "sm_mhz": 1980, "mem_mhz": 2619,    // formula readings (the defaults shown) ...
///   "power_w": 500.0, "gpu_temp_c": 60, "mem_temp_c": 70, "gpu_util_pct": 100,
///   "mem_used_gib": 70.0, "throttle_reasons": 0,
///   "samples": [{"sm_mhz": 1980, "power_w": 700.0, "energy_mj": 5000}],
///                                       // ... or readings replayed in order for every GPU
///                                       // (the last one repeated; absent fields are None)
///   "unsupported": ["mem_temp_c"],      // fields that read None, reported once per GPU
///   "lose_gpu": {"gpu": 1, "after": 5}, // GPU 1 is lost after 5 samples
///   "energy_reset_after": 3,            // each counter restarts from 0 after 3 readings
///   "delay_ms": 0,                      // each reading takes this long (slow sampling)
///   "lock_error": "NoPermission"        // setting application clocks fails with this
/// }
/// ```
///
/// With the formula, clocks read as the current application clocks (which start at `sm_mhz`
/// and `mem_mhz`), power is constant and the energy counter grows with it in real time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Script {
    pub gpus: u32,
    pub gpu_name: String,
    pub environment: Map<String, Value>,
    pub sm_mhz: u32,
    pub mem_mhz: u32,
    pub power_w: f64,
    pub gpu_temp_c: u32,
    pub mem_temp_c: u32,
    pub gpu_util_pct: u32,
    pub mem_used_gib: f64,
    pub throttle_reasons: u64,
    pub samples: Vec<Reading>,
    pub unsupported: Vec<String>,
    pub lose_gpu: Option<LoseGpu>,
    pub energy_reset_after: Option<u64>,
    pub delay_ms: u64,
    pub lock_error: Option<String>,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            gpus: 1,
            gpu_name: "H100 80GB HBM3".into(),
            environment: Map::new(),
            sm_mhz: 1980,
            mem_mhz: 2619,
            power_w: 500.0,
            gpu_temp_c: 60,
            mem_temp_c: 70,
            gpu_util_pct: 100,
            mem_used_gib: 70.0,
            throttle_reasons: 0,
            samples: Vec::new(),
            unsupported: Vec::new(),
            lose_gpu: None,
            energy_reset_after: None,
            delay_ms: 0,
            lock_error: None,
        }
    }
}

#[derive(Debug, Clone)]
struct GpuState {
    reads: u64,
    lost: bool,
    app_clocks: (u32, u32),
    energy_origin: Instant,
    energy_base_mj: u64,
    noted: bool,
}

/// Replays a [`Script`]: a [`Source`] without a GPU.
#[derive(Debug, Clone)]
pub struct ScriptedSource {
    script: Script,
    origin: String,
    gpus: BTreeMap<u32, GpuState>,
    notes: Vec<String>,
}

impl ScriptedSource {
    /// A script's source; unknown `unsupported` field names are an error.
    pub fn new(script: Script) -> Result<ScriptedSource, String> {
        ScriptedSource::with_origin(script, "<script>".into())
    }

    fn with_origin(script: Script, origin: String) -> Result<ScriptedSource, String> {
        if let Some(bad) = script
            .unsupported
            .iter()
            .find(|f| !FIELDS.contains(&f.as_str()))
        {
            return Err(format!(
                "{origin}: `unsupported`: unknown field `{bad}`; known: {}",
                FIELDS.join(", ")
            ));
        }
        if !(script.power_w.is_finite() && script.power_w >= 0.0) {
            return Err(format!(
                "{origin}: `power_w` must be a non-negative number, got {}",
                script.power_w
            ));
        }
        let now = Instant::now();
        let gpus = (0..script.gpus)
            .map(|g| {
                let state = GpuState {
                    reads: 0,
                    lost: false,
                    app_clocks: (script.sm_mhz, script.mem_mhz),
                    energy_origin: now,
                    // An arbitrary counter value at start, as a real driver's would be.
                    energy_base_mj: 1_000_000 * (u64::from(g) + 1),
                    noted: false,
                };
                (g, state)
            })
            .collect();
        Ok(ScriptedSource {
            script,
            origin,
            gpus,
            notes: Vec::new(),
        })
    }

    /// A script from JSON text; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<ScriptedSource, String> {
        let script: Script = serde_json::from_str(text).map_err(|e| {
            format!(
                "{origin}:{}:{}: invalid telemetry script: {e}",
                e.line(),
                e.column()
            )
        })?;
        ScriptedSource::with_origin(script, origin.to_string())
    }

    /// The script in the JSON file at `path`.
    pub fn from_file(path: &Path) -> Result<ScriptedSource, String> {
        let text = crate::textutil::read_text(path).map_err(|e| e.to_string())?;
        ScriptedSource::from_json(&text, &path.display().to_string())
    }

    fn formula(&self, state: &GpuState, gpu: u32, time: SystemTime) -> Sample {
        let s = &self.script;
        let elapsed = state.energy_origin.elapsed().as_secs_f64();
        Sample {
            sm_mhz: Some(state.app_clocks.0),
            mem_mhz: Some(state.app_clocks.1),
            graphics_mhz: Some(state.app_clocks.0),
            gpu_util_pct: Some(s.gpu_util_pct),
            mem_util_pct: Some(s.gpu_util_pct / 2),
            encoder_util_pct: Some(0),
            decoder_util_pct: Some(0),
            gpu_temp_c: Some(s.gpu_temp_c),
            mem_temp_c: Some(s.mem_temp_c),
            fan_pct: Some(0),
            pstate: Some(0),
            power_w: Some(s.power_w),
            energy_mj: Some(state.energy_base_mj + (s.power_w * elapsed * 1000.0) as u64),
            mem_used_bytes: Some((s.mem_used_gib * (1u64 << 30) as f64) as u64),
            throttle_reasons: Some(s.throttle_reasons),
            processes: Some(1),
            ..Sample::empty(gpu, time)
        }
    }
}

impl Source for ScriptedSource {
    fn device_count(&self) -> Result<u32, String> {
        Ok(self.script.gpus)
    }

    fn sample(&mut self, gpu: u32) -> Result<Sample, String> {
        if self.script.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(self.script.delay_ms));
        }
        let time = SystemTime::now();
        let lose_after = self
            .script
            .lose_gpu
            .as_ref()
            .filter(|l| l.gpu == gpu)
            .map(|l| l.after);
        let reset_after = self.script.energy_reset_after;
        let Some(state) = self.gpus.get_mut(&gpu) else {
            return Err(format!(
                "GPU {gpu} is not in the script ({} GPUs)",
                self.script.gpus
            ));
        };
        if state.lost || lose_after.is_some_and(|n| state.reads >= n) {
            state.lost = true;
            return Err(format!(
                "GPU {gpu} is lost (scripted GPU_IS_LOST after {} samples)",
                state.reads
            ));
        }
        if reset_after.is_some_and(|n| state.reads == n) {
            state.energy_origin = Instant::now();
            state.energy_base_mj = 0;
        }
        let index = state.reads as usize;
        state.reads += 1;
        let first_read = !state.noted;
        state.noted = true;
        let state = state.clone();
        let mut sample = if self.script.samples.is_empty() {
            self.formula(&state, gpu, time)
        } else {
            let i = index.min(self.script.samples.len() - 1);
            self.script.samples[i].clone().into_sample(gpu, time)
        };
        for field in &self.script.unsupported {
            clear(&mut sample, field);
            if first_read {
                self.notes.push(format!(
                    "GPU {gpu}: no {field} reading (scripted: not supported)"
                ));
            }
        }
        Ok(sample)
    }

    fn environment(&mut self) -> Map<String, Value> {
        let name = self.script.gpu_name.trim().to_string();
        let mut env = Map::new();
        env.insert("gpu_name".into(), name.clone().into());
        env.insert("gpu_type".into(), super::nvml::device_subtype(&name).into());
        env.insert("gpu_count".into(), self.script.gpus.into());
        env.insert(
            "telemetry_source".into(),
            format!("scripted ({})", self.origin).into(),
        );
        env.extend(self.script.environment.clone());
        env
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    fn application_clocks(&mut self, gpu: u32) -> Result<(u32, u32), String> {
        self.gpus
            .get(&gpu)
            .map(|s| s.app_clocks)
            .ok_or_else(|| format!("GPU {gpu} is not in the script"))
    }

    fn set_application_clocks(
        &mut self,
        gpu: u32,
        sm_mhz: u32,
        mem_mhz: u32,
    ) -> Result<(), String> {
        if let Some(e) = &self.script.lock_error {
            return Err(format!(
                "GPU {gpu}: cannot set application clocks to {sm_mhz} MHz SM / {mem_mhz} MHz memory: {e} (scripted)"
            ));
        }
        let state = self
            .gpus
            .get_mut(&gpu)
            .ok_or_else(|| format!("GPU {gpu} is not in the script"))?;
        state.app_clocks = (sm_mhz, mem_mhz);
        Ok(())
    }
}
