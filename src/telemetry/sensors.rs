//! Host sensors sampled with the sysfs power sources: thermal zones
//! (`/sys/class/thermal/thermal_zone<N>/type`, `temp` in m°C) and CPU clocks
//! (`/sys/devices/system/cpu/cpu<N>/cpufreq/scaling_cur_freq` in kHz).

use std::collections::BTreeSet;
use std::path::Path;

use super::power::{Family, PowerSource, Quantity, Trace};
use super::sysfs::{How, Probe, ReadFailure, entries, read_int, read_text, under};

/// A thermal zone that reads a constant, not a measurement: the PMIC die zone of Jetson
/// TX1/TX2/Nano/Xavier reads 100 °C always (jetson_stats leaves it out too).
const NOT_MEASURED_ZONES: [&str; 1] = ["PMIC-Die"];

/// Thermal zones, for `source`. A zone whose `temp` is missing or refused is said in
/// `not_measured`; one that errors (a sensor that is off) is kept, its failures noted while
/// sampling.
pub(super) fn thermal(
    root: &Path,
    source: PowerSource,
    not_measured: &mut Vec<String>,
) -> Vec<Probe> {
    let mut probes = Vec::new();
    let mut names = BTreeSet::new();
    for (dir, path) in entries(&under(root, "/sys/class/thermal")) {
        if !dir.starts_with("thermal_zone") {
            continue;
        }
        let kind = read_text(&path.join("type"))
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| dir.clone());
        if NOT_MEASURED_ZONES.contains(&kind.as_str()) {
            continue;
        }
        let temp = path.join("temp");
        if let Err(e @ (ReadFailure::Missing | ReadFailure::Permission)) = read_int(&temp) {
            not_measured.push(format!(
                "temperature {kind} not measured: {}",
                e.describe(&temp)
            ));
            continue;
        }
        // x86 machines often have several zones of one type (`acpitz`).
        let name = if names.insert(kind.clone()) {
            kind
        } else {
            format!("{kind}@{dir}")
        };
        let trace = Trace::new(source, Family::Thermal, Quantity::Temp, name, "");
        probes.push(Probe::new(
            trace,
            How::One {
                path: temp,
                scale: 1e-3,
            },
        ));
    }
    probes
}

/// The current clock of every CPU that has cpufreq, for `source`.
pub(super) fn cpufreq(
    root: &Path,
    source: PowerSource,
    not_measured: &mut Vec<String>,
) -> Vec<Probe> {
    let mut probes = Vec::new();
    for (dir, path) in entries(&under(root, "/sys/devices/system/cpu")) {
        let is_cpu = dir
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if !is_cpu {
            continue;
        }
        let dir_freq = path.join("cpufreq");
        if !dir_freq.is_dir() {
            continue;
        }
        let file = dir_freq.join("scaling_cur_freq");
        if let Err(e @ (ReadFailure::Missing | ReadFailure::Permission)) = read_int(&file) {
            not_measured.push(format!("{dir} clock not measured: {}", e.describe(&file)));
            continue;
        }
        let trace = Trace::new(source, Family::Cpufreq, Quantity::Freq, dir, "");
        probes.push(Probe::new(
            trace,
            How::One {
                path: file,
                // kHz
                scale: 1e-3,
            },
        ));
    }
    probes
}
