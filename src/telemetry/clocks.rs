//! Application clock locking (upstream's `gpu_clock_lock.py`): lock, remember the originals,
//! restore on drop or from the Ctrl-C path.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Telemetry;
use crate::models::ModelConfigs;

/// A lock that is live: the GPUs locked so far with their original `(sm, mem)` clocks.
struct Live {
    id: u64,
    telemetry: Telemetry,
    originals: Vec<(u32, u32, u32)>,
}

/// Every live lock, so that [`restore_all_locked`] can restore them from any thread.
static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn live() -> std::sync::MutexGuard<'static, Vec<Live>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Locked application clocks; dropping it restores the originals (see [`ClockLock::restore`]
/// to see the errors instead of having them printed).
#[derive(Debug)]
pub struct ClockLock {
    id: u64,
    gpus: Vec<u32>,
    sm_mhz: u32,
    mem_mhz: u32,
}

impl ClockLock {
    pub fn gpus(&self) -> &[u32] {
        &self.gpus
    }

    /// The locked `(sm_mhz, mem_mhz)`.
    pub fn target(&self) -> (u32, u32) {
        (self.sm_mhz, self.mem_mhz)
    }

    /// Restores the original clocks now; one sentence per GPU that could not be restored.
    pub fn restore(self) -> Result<(), String> {
        restore_id(self.id)
    }
}

impl Drop for ClockLock {
    fn drop(&mut self) {
        if let Err(e) = restore_id(self.id) {
            eprintln!("perfgate: {e}");
        }
    }
}

fn take(id: u64) -> Option<Live> {
    let mut all = live();
    let at = all.iter().position(|l| l.id == id)?;
    Some(all.remove(at))
}

fn restore_id(id: u64) -> Result<(), String> {
    match take(id) {
        Some(l) => restore(&l.telemetry, &l.originals),
        None => Ok(()),
    }
}

/// Sets each GPU back to its original clocks, all of them even when one fails.
fn restore(telemetry: &Telemetry, originals: &[(u32, u32, u32)]) -> Result<(), String> {
    let errors: Vec<String> = originals
        .iter()
        .filter_map(|&(gpu, sm, mem)| {
            telemetry
                .with_source(|s| s.set_application_clocks(gpu, sm, mem))
                .err()
                .map(|e| format!("could not restore the original application clocks: {e}"))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Restores every live clock lock (the Ctrl-C path); failures are printed to stderr.
pub fn restore_all_locked() {
    let all: Vec<Live> = std::mem::take(&mut *live());
    for l in all {
        if let Err(e) = restore(&l.telemetry, &l.originals) {
            eprintln!("perfgate: {e}");
        }
    }
}

pub(super) fn lock(
    telemetry: &Telemetry,
    gpus: &[u32],
    sm_mhz: u32,
    mem_mhz: u32,
) -> Result<ClockLock, String> {
    if let Some(reason) = telemetry.unavailable_reason() {
        return Err(format!("cannot lock GPU clocks: {reason}"));
    }
    let mut wanted: Vec<u32> = Vec::new();
    let asked: Vec<u32> = if gpus.is_empty() {
        (0..telemetry.device_count()).collect()
    } else {
        gpus.to_vec()
    };
    for gpu in asked {
        if !wanted.contains(&gpu) {
            wanted.push(gpu);
        }
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    // Registered before the first GPU is touched, so a Ctrl-C half-way restores what was locked.
    live().push(Live {
        id,
        telemetry: telemetry.clone(),
        originals: Vec::new(),
    });
    for &gpu in &wanted {
        let step = telemetry.with_source(|s| {
            let original = s.application_clocks(gpu)?;
            s.set_application_clocks(gpu, sm_mhz, mem_mhz)?;
            Ok(original)
        });
        match step {
            Ok((sm, mem)) => {
                if let Some(l) = live().iter_mut().find(|l| l.id == id) {
                    l.originals.push((gpu, sm, mem));
                }
            }
            Err(e) => {
                let rollback = match restore_id(id) {
                    Ok(()) => String::new(),
                    Err(r) => format!("; and {r}"),
                };
                return Err(format!("cannot lock GPU clocks: {e}{rollback}"));
            }
        }
    }
    Ok(ClockLock {
        id,
        gpus: wanted,
        sm_mhz,
        mem_mhz,
    })
}

/// The `(sm, mem)` application clock targets (MHz) for a GPU product name, from
/// `clock_targets:` in `model_configs/gpus.yaml`. Names match as upstream's do, and also
/// without "NVIDIA", in any case, and with '_' for spaces and '-' ("H100_80GB_HBM3").
pub fn clock_target(configs: &ModelConfigs, gpu_name: &str) -> Option<(u32, u32)> {
    let norm = |s: &str| {
        s.replace("NVIDIA", "")
            .trim()
            .replace([' ', '-'], "_")
            .to_ascii_lowercase()
    };
    let want = norm(gpu_name);
    configs
        .gpus
        .clock_targets
        .iter()
        .find(|(name, _)| norm(name) == want)
        .map(|(_, t)| (t.sm_clk, t.mem_clk))
}
