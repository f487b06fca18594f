//! The vocabulary every power source shares: which source to use ([`PowerChoice`]), what a
//! source is ([`PowerSource`]), what a sampled series measures ([`Quantity`]), one sampled
//! series ([`Trace`]) and what a [`super::Telemetry`] measures ([`PowerSetup`]).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Serialize, Serializer};

/// Points the sysfs readers (Jetson, RAPL, thermal zones, frequencies) at a recorded tree
/// instead of `/` (tests, and replaying a tree copied off a device).
pub const SYSFS_ROOT_ENV: &str = "PERFGATE_SYSFS_ROOT";

/// Which power sources a run reads (`--power`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerChoice {
    /// NVIDIA GPUs through NVML (or the `PERFGATE_FAKE_NVML` script): the harness default.
    Nvml,
    /// NVIDIA Jetson: INA3221 rails, thermal zones, GPU/EMC/CPU frequencies (sysfs).
    Jetson,
    /// Intel/AMD RAPL energy counters (powercap sysfs), thermal zones and CPU frequencies.
    Rapl,
    /// Every source this machine has, recorded in [`PowerSetup::measured`].
    Auto,
    /// Nothing is sampled.
    None,
}

impl PowerChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerChoice::Nvml => "nvml",
            PowerChoice::Jetson => "jetson",
            PowerChoice::Rapl => "rapl",
            PowerChoice::Auto => "auto",
            PowerChoice::None => "none",
        }
    }
}

impl std::fmt::Display for PowerChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a [`super::Telemetry`] is opened: the power choice and where sysfs is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerOptions {
    pub power: PowerChoice,
    /// `/` on a real machine; a recorded tree in tests.
    pub sysfs_root: PathBuf,
}

impl PowerOptions {
    /// `power` with the sysfs root from `PERFGATE_SYSFS_ROOT`, else `/`.
    pub fn new(power: PowerChoice) -> PowerOptions {
        let sysfs_root = std::env::var_os(SYSFS_ROOT_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from("/"), PathBuf::from);
        PowerOptions { power, sysfs_root }
    }

    pub fn with_root(power: PowerChoice, root: &Path) -> PowerOptions {
        PowerOptions {
            power,
            sysfs_root: root.to_path_buf(),
        }
    }
}

impl Default for PowerOptions {
    fn default() -> PowerOptions {
        PowerOptions::new(PowerChoice::Nvml)
    }
}

/// A source of power readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerSource {
    Nvml,
    Jetson,
    Rapl,
}

impl PowerSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerSource::Nvml => "nvml",
            PowerSource::Jetson => "jetson",
            PowerSource::Rapl => "rapl",
        }
    }
}

impl std::fmt::Display for PowerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a trace measures, with its unit ([`Quantity::unit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantity {
    /// Watts.
    Power,
    /// A cumulative energy counter, joules (RAPL `energy_uj`, NVML total energy).
    Energy,
    /// Degrees Celsius.
    Temp,
    /// Megahertz.
    Freq,
    /// Percent busy.
    Load,
}

impl Quantity {
    pub fn unit(self) -> &'static str {
        match self {
            Quantity::Power => "W",
            Quantity::Energy => "J",
            Quantity::Temp => "C",
            Quantity::Freq => "MHz",
            Quantity::Load => "%",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Quantity::Power => "power",
            Quantity::Energy => "energy",
            Quantity::Temp => "temp",
            Quantity::Freq => "freq",
            Quantity::Load => "load",
        }
    }
}

/// Which reader a trace came from (several readers serve one [`PowerSource`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Nvml,
    /// INA3221 power monitors (Jetson).
    Ina3221,
    /// powercap RAPL zones.
    Rapl,
    /// `/sys/class/thermal/thermal_zone*`.
    Thermal,
    /// `/sys/class/devfreq` (the Jetson GPU, Thor's EMC).
    Devfreq,
    /// The Jetson memory controller clock (debugfs) and activity.
    Emc,
    /// `/sys/devices/system/cpu/cpu*/cpufreq`.
    Cpufreq,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Nvml => "nvml",
            Family::Ina3221 => "ina3221",
            Family::Rapl => "rapl",
            Family::Thermal => "thermal",
            Family::Devfreq => "devfreq",
            Family::Emc => "emc",
            Family::Cpufreq => "cpufreq",
        }
    }
}

/// One sampled series: each reading's own time and value. Readings that failed are absent
/// (the recording's problems say why), never filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    /// The power source it was sampled for.
    pub source: PowerSource,
    pub family: Family,
    pub quantity: Quantity,
    /// The rail, zone or clock: `VDD_IN`, `package-0`, `package-0/core`, `CPU-therm`, `gpu`,
    /// `emc`, `cpu3`, `gpu0`.
    pub name: String,
    pub unit: &'static str,
    /// Where it is read: the sysfs file(s), or `NVML GPU n`.
    pub origin: String,
    /// An energy counter's range in joules (RAPL `max_energy_range_uj`): it wraps to 0 past it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wraps_at_j: Option<f64>,
    /// Counted in its source's total energy: a power or energy rail that is neither part of
    /// another rail that is counted (RAPL core and uncore are inside their package) nor
    /// covered by an input rail that is counted (Jetson `VDD_IN`). Always false for
    /// temperatures, frequencies and loads.
    pub in_total: bool,
    /// Nanoseconds since the Unix epoch, one per value.
    #[serde(rename = "timestamps_ns", serialize_with = "nanos")]
    pub times: Vec<SystemTime>,
    pub values: Vec<f64>,
}

impl Trace {
    pub fn new(
        source: PowerSource,
        family: Family,
        quantity: Quantity,
        name: impl Into<String>,
        origin: impl Into<String>,
    ) -> Trace {
        Trace {
            source,
            family,
            quantity,
            name: name.into(),
            unit: quantity.unit(),
            origin: origin.into(),
            wraps_at_j: None,
            in_total: false,
            times: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn push(&mut self, time: SystemTime, value: f64) {
        self.times.push(time);
        self.values.push(value);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `(time, value)` pairs in order.
    pub fn points(&self) -> impl Iterator<Item = (SystemTime, f64)> + '_ {
        self.times.iter().copied().zip(self.values.iter().copied())
    }

    /// A trace with the same description and no readings.
    pub fn empty_like(&self) -> Trace {
        Trace {
            times: Vec::new(),
            values: Vec::new(),
            ..self.clone()
        }
    }
}

/// Nanoseconds since the Unix epoch (0 for a time before it, which a clock cannot give).
pub fn epoch_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn nanos<S: Serializer>(times: &[SystemTime], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(times.iter().map(|t| epoch_nanos(*t)))
}

/// What a [`super::Telemetry`] measures: the choice asked for, the sources picked, and, one
/// sentence each, what is not measured and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerSetup {
    pub asked: PowerChoice,
    /// The sources that give readings, in the order nvml, jetson, rapl.
    pub measured: Vec<PowerSource>,
    /// Sources `auto` looked for and this machine does not have (information, not a problem).
    pub absent: Vec<String>,
    /// What was asked for, or is on this machine, and cannot be read: a missing source that
    /// was named, a root-only RAPL counter, a Jetson rail whose files are missing. Each is
    /// also a problem of every recording.
    pub not_measured: Vec<String>,
}

impl PowerSetup {
    pub fn new(asked: PowerChoice) -> PowerSetup {
        PowerSetup {
            asked,
            measured: Vec::new(),
            absent: Vec::new(),
            not_measured: Vec::new(),
        }
    }
}

impl Default for PowerSetup {
    fn default() -> PowerSetup {
        PowerSetup::new(PowerChoice::Nvml)
    }
}
