//! The NVML source: `libnvidia-ml.so.1`, loaded at run time (nvml-wrapper uses libloading), so
//! the binary runs on machines without a driver.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::time::SystemTime;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{Clock, PerformanceState, TemperatureSensor};
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_MEMORY_TEMP;
use serde_json::{Map, Value};

use super::{Sample, Source};

/// The driver installs `libnvidia-ml.so.1`; the unversioned name comes only with development
/// packages, so it is the fallback.
const LIBRARIES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

pub(super) struct NvmlSource {
    nvml: Nvml,
    /// (GPU, field) pairs whose failure was already reported.
    noted: BTreeSet<(u32, &'static str)>,
    /// Per GPU, whether NVML says it has no fan (passively cooled boards such as the H100
    /// SXM): then there is no fan speed to read and nothing missing to report.
    fanless: BTreeMap<u32, bool>,
    notes: Vec<String>,
}

/// A product name as upstream cleans it: without "NVIDIA", trimmed, and "A100-PCIE-80GB"
/// renamed "A100 80GB PCIe".
pub(super) fn clean_name(raw: &str) -> String {
    let name = raw.replace("NVIDIA", "");
    let name = name.trim();
    if name == "A100-PCIE-80GB" {
        "A100 80GB PCIe".to_string()
    } else {
        name.to_string()
    }
}

/// Upstream's `device_subtype`: the cleaned name with spaces and '-' as '_'.
pub(super) fn device_subtype(name: &str) -> String {
    name.trim().replace([' ', '-'], "_")
}

fn describe(e: &NvmlError) -> String {
    match e {
        NvmlError::NotSupported => "not supported on this GPU".into(),
        NvmlError::NoPermission => "no permission".into(),
        NvmlError::GpuLost => "GPU_IS_LOST".into(),
        NvmlError::FailedToLoadSymbol(s) => format!("this driver's NVML lacks the call ({s})"),
        other => other.to_string(),
    }
}

fn pstate_number(p: PerformanceState) -> Option<u32> {
    use PerformanceState::*;
    Some(match p {
        Zero => 0,
        One => 1,
        Two => 2,
        Three => 3,
        Four => 4,
        Five => 5,
        Six => 6,
        Seven => 7,
        Eight => 8,
        Nine => 9,
        Ten => 10,
        Eleven => 11,
        Twelve => 12,
        Thirteen => 13,
        Fourteen => 14,
        Fifteen => 15,
        Unknown => return None,
    })
}

fn sample_value_u32(v: SampleValue) -> Option<u32> {
    match v {
        SampleValue::U32(x) => Some(x),
        SampleValue::U64(x) => u32::try_from(x).ok(),
        SampleValue::I64(x) => u32::try_from(x).ok(),
        SampleValue::F64(x) if x.is_finite() && x >= 0.0 => Some(x.round() as u32),
        SampleValue::F64(_) => None,
    }
}

impl NvmlSource {
    /// NVML, or the reason it is not there (a sentence starting "no GPU telemetry: ").
    pub(super) fn open() -> Result<NvmlSource, String> {
        let mut not_found = None;
        for lib in LIBRARIES {
            match Nvml::builder().lib_path(OsStr::new(lib)).init() {
                Ok(nvml) => {
                    return Ok(NvmlSource {
                        nvml,
                        noted: BTreeSet::new(),
                        fanless: BTreeMap::new(),
                        notes: Vec::new(),
                    });
                }
                Err(NvmlError::LibloadingError(e)) => {
                    not_found.get_or_insert_with(|| format!("{lib} not found ({e})"));
                }
                Err(NvmlError::DriverNotLoaded) => {
                    return Err(
                        "no GPU telemetry: NVML is installed but the NVIDIA driver is not loaded"
                            .into(),
                    );
                }
                Err(NvmlError::NoPermission) => {
                    return Err(
                        "no GPU telemetry: no permission to talk to the NVIDIA driver".into(),
                    );
                }
                Err(e) => return Err(format!("no GPU telemetry: NVML did not start: {e}")),
            }
        }
        Err(format!(
            "no GPU telemetry: {}",
            not_found.unwrap_or_else(|| "NVML not found".into())
        ))
    }

    /// A reading, `None` (noted once per GPU and field) when NVML cannot give it, `Err` when the
    /// GPU is lost.
    fn read<T>(
        &mut self,
        gpu: u32,
        field: &'static str,
        result: Result<T, NvmlError>,
    ) -> Result<Option<T>, String> {
        match result {
            Ok(v) => Ok(Some(v)),
            Err(NvmlError::GpuLost) => Err(lost(gpu)),
            Err(e) => {
                if self.noted.insert((gpu, field)) {
                    self.notes.push(format!(
                        "GPU {gpu}: no {field} reading (NVML: {})",
                        describe(&e)
                    ));
                }
                Ok(None)
            }
        }
    }
}

fn lost(gpu: u32) -> String {
    format!(
        "GPU {gpu} is lost (NVML: GPU_IS_LOST, it fell off the bus or stopped responding; the kernel log names the Xid)"
    )
}

impl Source for NvmlSource {
    fn device_count(&self) -> Result<u32, String> {
        self.nvml
            .device_count()
            .map_err(|e| format!("NVML cannot count GPUs: {}", describe(&e)))
    }

    fn sample(&mut self, gpu: u32) -> Result<Sample, String> {
        let time = SystemTime::now();
        // Every call borrows `self.nvml` through the device handle, so each result is taken
        // first and judged after (`read` needs `self` mutably).
        let results = {
            let device = match self.nvml.device_by_index(gpu) {
                Ok(d) => d,
                Err(NvmlError::GpuLost) => return Err(lost(gpu)),
                Err(e) => {
                    return Err(format!(
                        "GPU {gpu} cannot be opened (NVML: {})",
                        describe(&e)
                    ));
                }
            };
            let fanless = *self
                .fanless
                .entry(gpu)
                .or_insert_with(|| device.num_fans().is_ok_and(|n| n == 0));
            // A fanless board answers fan-speed queries with InvalidArg.
            let fan = (!fanless).then(|| device.fan_speed(0));
            let mem_temp = device
                .field_values_for(&[FieldId(NVML_FI_DEV_MEMORY_TEMP)])
                .and_then(|values| {
                    values
                        .into_iter()
                        .next()
                        .ok_or(NvmlError::NotSupported)?
                        .and_then(|s| s.value)
                })
                .and_then(|v| sample_value_u32(v).ok_or(NvmlError::NotSupported));
            (
                device.clock_info(Clock::SM),
                device.clock_info(Clock::Memory),
                device.clock_info(Clock::Graphics),
                device.utilization_rates(),
                device.encoder_utilization(),
                device.decoder_utilization(),
                device.temperature(TemperatureSensor::Gpu),
                mem_temp,
                fan,
                device.performance_state(),
                device.power_usage(),
                device.total_energy_consumption(),
                device.memory_info(),
                device.current_throttle_reasons(),
                device.running_compute_processes_count(),
            )
        };
        let (
            sm,
            mem,
            gr,
            util,
            enc,
            dec,
            temp,
            mtemp,
            fan,
            pstate,
            power,
            energy,
            meminfo,
            thr,
            procs,
        ) = results;
        let util = self.read(gpu, "utilization", util)?;
        Ok(Sample {
            sm_mhz: self.read(gpu, "SM clock", sm)?,
            mem_mhz: self.read(gpu, "memory clock", mem)?,
            graphics_mhz: self.read(gpu, "graphics clock", gr)?,
            gpu_util_pct: util.as_ref().map(|u| u.gpu),
            mem_util_pct: util.as_ref().map(|u| u.memory),
            encoder_util_pct: self
                .read(gpu, "encoder utilization", enc)?
                .map(|u| u.utilization),
            decoder_util_pct: self
                .read(gpu, "decoder utilization", dec)?
                .map(|u| u.utilization),
            gpu_temp_c: self.read(gpu, "GPU temperature", temp)?,
            mem_temp_c: self.read(gpu, "memory temperature", mtemp)?,
            fan_pct: match fan {
                Some(f) => self.read(gpu, "fan speed", f)?,
                None => None,
            },
            pstate: self
                .read(gpu, "performance state", pstate)?
                .and_then(pstate_number),
            power_w: self
                .read(gpu, "power draw", power)?
                .map(|mw| f64::from(mw) / 1000.0),
            energy_mj: self.read(gpu, "energy counter", energy)?,
            mem_used_bytes: self.read(gpu, "memory used", meminfo)?.map(|m| m.used),
            throttle_reasons: self
                .read(gpu, "clock event reasons", thr)?
                .map(|t| t.bits()),
            processes: self.read(gpu, "process count", procs)?,
            ..Sample::empty(gpu, time)
        })
    }

    fn environment(&mut self) -> Map<String, Value> {
        let mut env = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                env.insert(key.to_string(), v);
            }
        };
        let nvml = &self.nvml;
        put("gpu_count", nvml.device_count().ok().map(Value::from));
        put(
            "driver_version",
            nvml.sys_driver_version().ok().map(Value::from),
        );
        put(
            "cuda_version",
            nvml.sys_cuda_driver_version()
                .ok()
                .map(|v| Value::from(format!("{}.{}", v / 1000, (v % 1000) / 10))),
        );
        let Ok(device) = nvml.device_by_index(0) else {
            return env;
        };
        if let Ok(raw) = device.name() {
            let name = clean_name(&raw);
            put("gpu_type", Some(device_subtype(&name).into()));
            put("gpu_name", Some(name.into()));
        }
        put(
            "gpu_memory",
            device
                .memory_info()
                .ok()
                .map(|m| Value::from(m.total >> 20)),
        );
        put(
            "compute_capability",
            device
                .cuda_compute_capability()
                .ok()
                .map(|c| Value::from(c.major * 10 + c.minor)),
        );
        put("vbios", device.vbios_version().ok().map(Value::from));
        put(
            "power_limit",
            device
                .enforced_power_limit()
                .ok()
                .map(|mw| Value::from(f64::from(mw) / 1000.0)),
        );
        let on_off = |b: bool| Value::from(if b { "on" } else { "off" });
        put(
            "ecc",
            device
                .is_ecc_enabled()
                .ok()
                .map(|e| on_off(e.currently_enabled)),
        );
        put(
            "mig",
            device.mig_mode().ok().map(|m| on_off(m.current == 1)),
        );
        put(
            "gpu_pci_device_id",
            device
                .pci_info()
                .ok()
                .map(|p| Value::from(format!("0x{:08X}", p.pci_device_id))),
        );
        put(
            "sm_clock_max",
            device.max_clock_info(Clock::SM).ok().map(Value::from),
        );
        put(
            "mem_clock_max",
            device.max_clock_info(Clock::Memory).ok().map(Value::from),
        );
        put(
            "application_sm_clock",
            device.applications_clock(Clock::SM).ok().map(Value::from),
        );
        put(
            "application_mem_clock",
            device
                .applications_clock(Clock::Memory)
                .ok()
                .map(Value::from),
        );
        env
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    fn application_clocks(&mut self, gpu: u32) -> Result<(u32, u32), String> {
        let device = self
            .nvml
            .device_by_index(gpu)
            .map_err(|e| format!("GPU {gpu} cannot be opened (NVML: {})", describe(&e)))?;
        let read = |c: Clock| {
            device.applications_clock(c).map_err(|e| {
                format!(
                    "GPU {gpu}: cannot read application clocks (NVML: {})",
                    describe(&e)
                )
            })
        };
        Ok((read(Clock::SM)?, read(Clock::Memory)?))
    }

    fn set_application_clocks(
        &mut self,
        gpu: u32,
        sm_mhz: u32,
        mem_mhz: u32,
    ) -> Result<(), String> {
        let mut device = self
            .nvml
            .device_by_index(gpu)
            .map_err(|e| format!("GPU {gpu} cannot be opened (NVML: {})", describe(&e)))?;
        device
            .set_applications_clocks(mem_mhz, sm_mhz)
            .map_err(|e| {
                let hint = match e {
                    NvmlError::NoPermission => {
                        " (needs root, or `nvidia-smi -acp UNRESTRICTED` by root first)"
                    }
                    NvmlError::InvalidArg => " (not a supported clock pair: see `nvidia-smi -q -d SUPPORTED_CLOCKS`)",
                    _ => "",
                };
                format!(
                    "GPU {gpu}: cannot set application clocks to {sm_mhz} MHz SM / {mem_mhz} MHz memory (NVML: {}){hint}",
                    describe(&e)
                )
            })
    }
}
