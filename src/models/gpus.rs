//! GPU types (`model_configs/gpus.yaml`): compute capability by name and alias, and the
//! datasheet limits (memory, bandwidth, dense tensor-core peaks) the physics check needs.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::textutil::closest;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuInfo {
    pub sm: u32,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Memory capacity, 10^9 bytes.
    pub mem_gb: Option<f64>,
    /// Memory bandwidth, 10^12 bytes/s.
    pub mem_bw_tbps: Option<f64>,
    /// Dense FP16/BF16 tensor-core peak, 10^12 FLOP/s.
    pub bf16_tflops: Option<f64>,
    /// Dense FP8 peak (absent: no FP8 tensor cores).
    pub fp8_tflops: Option<f64>,
    /// Dense FP4 peak (absent: no FP4 tensor cores).
    pub fp4_tflops: Option<f64>,
    /// NVLink bandwidth per GPU, both directions, 10^9 bytes/s (informational).
    pub nvlink_gbps: Option<f64>,
}

impl GpuInfo {
    /// The fields that must be positive numbers when present, for validation.
    fn numbers(&self) -> [(&'static str, Option<f64>); 6] {
        [
            ("mem_gb", self.mem_gb),
            ("mem_bw_tbps", self.mem_bw_tbps),
            ("bf16_tflops", self.bf16_tflops),
            ("fp8_tflops", self.fp8_tflops),
            ("fp4_tflops", self.fp4_tflops),
            ("nvlink_gbps", self.nvlink_gbps),
        ]
    }
}

/// Target application clocks (MHz) for clock locking, by NVML product name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockTarget {
    pub sm_clk: u32,
    pub mem_clk: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuTable {
    pub gpus: BTreeMap<String, GpuInfo>,
    /// Keyed by the NVML product name without "NVIDIA" (upstream's `gpu_configs.yml`).
    #[serde(default)]
    pub clock_targets: BTreeMap<String, ClockTarget>,
}

impl GpuTable {
    /// The SM of a GPU named as a user or NVML would (case, spaces and `-` do not matter).
    pub fn sm(&self, name: &str) -> Result<u32, String> {
        self.find(name).map(|(_, info)| info.sm)
    }

    /// A problem with a value (a zero or negative bandwidth, say) as `(gpu, message)`; serde
    /// checks the types, this checks what the numbers mean.
    pub fn invalid(&self) -> Option<(String, String)> {
        for (key, t) in &self.clock_targets {
            if t.sm_clk == 0 || t.mem_clk == 0 {
                return Some((key.clone(), "clock targets must be positive MHz".into()));
            }
        }
        for (key, info) in &self.gpus {
            for (field, value) in info.numbers() {
                if let Some(v) = value
                    && !(v.is_finite() && v > 0.0)
                {
                    return Some((
                        key.clone(),
                        format!("`{field}` must be a positive number, got {v}"),
                    ));
                }
            }
        }
        None
    }

    /// The table's key and entry for a GPU named as a user or NVML would.
    pub fn find(&self, name: &str) -> Result<(&str, &GpuInfo), String> {
        // The table's own name (what collection resolves a GPU to) needs no normalising.
        if let Some((key, info)) = self.gpus.get_key_value(name) {
            return Ok((key.as_str(), info));
        }
        let norm = |s: &str| {
            s.trim()
                .trim_start_matches("NVIDIA")
                .trim()
                .replace([' ', '-'], "_")
                .to_ascii_lowercase()
        };
        let want = norm(name);
        for (key, info) in &self.gpus {
            if norm(key) == want || info.aliases.iter().any(|a| norm(a) == want) {
                return Ok((key.as_str(), info));
            }
        }
        let near = closest(
            &name.replace([' ', '-'], "_"),
            self.gpus.keys().map(String::as_str),
            3,
        );
        Err(format!(
            "unknown GPU `{name}`; known: {}",
            if near.is_empty() {
                self.gpus.keys().cloned().collect::<Vec<_>>().join(", ")
            } else {
                near.join(", ")
            }
        ))
    }
}
