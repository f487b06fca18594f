//! GPU types (`model_configs/gpus.yaml`): compute capability by name and alias.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::textutil::closest;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuInfo {
    pub sm: u32,
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuTable {
    pub gpus: BTreeMap<String, GpuInfo>,
}

impl GpuTable {
    /// The SM of a GPU named as a user or NVML would (case, spaces and `-` do not matter).
    pub fn sm(&self, name: &str) -> Result<u32, String> {
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
                return Ok(info.sm);
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
