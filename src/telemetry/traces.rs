//! A recording as one list of traces, whatever the source: NVML's GPU samples split into
//! per-GPU power, temperature, clock, load and energy traces; the sysfs rails as sampled; and
//! RAPL's counters also as power. This is what per-test files with `power` / `temp` / `freq`
//! sections are written from.

use std::collections::BTreeMap;

use super::power::{Family, PowerSource, Quantity, Trace};
use super::{Recording, Sample, energy};

type Field = fn(&Sample) -> Option<f64>;

/// NVML fields as traces: (quantity, name suffix, reading).
const NVML_FIELDS: [(Quantity, &str, Field); 7] = [
    (Quantity::Power, "", |s| s.power_w),
    (Quantity::Energy, "", |s| {
        s.energy_mj.map(|mj| mj as f64 / 1000.0)
    }),
    (Quantity::Temp, "", |s| s.gpu_temp_c.map(f64::from)),
    (Quantity::Temp, "_mem", |s| s.mem_temp_c.map(f64::from)),
    (Quantity::Freq, "_sm", |s| s.sm_mhz.map(f64::from)),
    (Quantity::Freq, "_mem", |s| s.mem_mhz.map(f64::from)),
    (Quantity::Load, "", |s| s.gpu_util_pct.map(f64::from)),
];

fn nvml_traces(samples: &[Sample], out: &mut Vec<Trace>) {
    let mut by_gpu: BTreeMap<u32, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        by_gpu.entry(s.gpu).or_default().push(s);
    }
    for (gpu, series) in by_gpu {
        for (quantity, suffix, field) in NVML_FIELDS {
            let mut trace = Trace::new(
                PowerSource::Nvml,
                Family::Nvml,
                quantity,
                format!("gpu{gpu}{suffix}"),
                format!("NVML GPU {gpu}"),
            );
            trace.in_total = matches!(quantity, Quantity::Power | Quantity::Energy);
            for s in &series {
                if let Some(v) = field(s).filter(|v| v.is_finite()) {
                    trace.push(s.time, v);
                }
            }
            if !trace.is_empty() {
                out.push(trace);
            }
        }
    }
}

pub(super) fn all(rec: &Recording) -> Vec<Trace> {
    let mut out = Vec::new();
    nvml_traces(&rec.samples, &mut out);
    for trace in &rec.rails {
        out.push(trace.clone());
        if trace.quantity == Quantity::Energy {
            out.push(energy::counter_power(trace));
        }
    }
    out
}
