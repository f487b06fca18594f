//! The environment fingerprint: the facts about the platform that change performance without
//! changing the test name (GPU, driver, CUDA, the machine's shape). A result is compared only
//! with a baseline and a history of the same fingerprint; otherwise a code change and an
//! environment change would be mixed up, so the verdict is ENV_CHANGED, never a regression.
//!
//! The version of the software under test (TensorRT-LLM, its commit) is deliberately *not*
//! part of it: that is what the gate judges.
//!
//! Written as `key=value;key=value` with sorted keys, so it is readable in a CSV cell and
//! comparable as a string.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// The machine description (`--system`, detected facts) the fingerprint is taken from.
type System = serde_json::Map<String, serde_json::Value>;

/// The system-description keys that describe the platform. Any key starting with
/// `fingerprint.` is taken too, for what a site wants to pin (a container image, a BIOS
/// setting).
pub const FINGERPRINT_KEYS: &[&str] = &[
    "gpu",
    "gpu_name",
    "gpu_type",
    "chip",
    "gpu_memory",
    "compute_capability",
    "system_gpu_count",
    "gpu_count",
    "driver",
    "driver_version",
    "cuda",
    "cuda_version",
    "cuda_driver_version",
    "nvlink",
    "cpu",
    "cpu_model",
    "os",
    "power_limit",
    "clocks_locked",
    "ecc",
    "mig",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint(BTreeMap<String, String>);

impl Fingerprint {
    /// From the system description (`--system`, `--system-set`, NVML) and the GPU type the
    /// run was told (`--gpu`), which wins over a `gpu` key of the description.
    pub fn of(system: Option<&System>, gpu_type: Option<&str>) -> Fingerprint {
        let mut map = BTreeMap::new();
        for (k, v) in system.into_iter().flatten() {
            if !(FINGERPRINT_KEYS.contains(&k.as_str()) || k.starts_with("fingerprint.")) {
                continue;
            }
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            // Keep the `k=v;k=v` form parsable whatever a value holds.
            map.insert(k.clone(), v.replace([';', '='], ","));
        }
        if let Some(g) = gpu_type {
            map.insert("gpu".into(), g.to_string());
        }
        Fingerprint(map)
    }

    /// Reads the `key=value;key=value` form. Unparsable parts are ignored: a fingerprint
    /// only ever narrows a comparison, so a damaged one must not stop a run.
    pub fn parse(s: &str) -> Fingerprint {
        Fingerprint(
            s.split(';')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each key both sides know whose values differ, as `key: baseline → tonight`. A key
    /// only one side knows is not a difference: an older baseline without a driver version
    /// says nothing about the driver.
    pub fn differences(&self, baseline: &Fingerprint) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|(k, now)| {
                let then = baseline.0.get(k)?;
                (then != now).then(|| format!("{k}: {then} -> {now}"))
            })
            .collect()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in &self.0 {
            if !first {
                f.write_str(";")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}
