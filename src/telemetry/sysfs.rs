//! Reading sysfs for the sources that are files (Jetson rails, RAPL counters, thermal zones,
//! frequencies): one [`SysfsSource`] holds a list of probes found once when telemetry opens
//! and reads each of them every sampling round.
//!
//! Hand-written rather than a crate: the powercap crates on crates.io read RAPL only, at a fixed
//! `/sys` path, and none reads the Jetson INA3221 layouts; what is needed here is one integer
//! per file under a root that tests can move, with each failure told apart (missing,
//! permission, I/O error, garbage).

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::power::{PowerSource, Quantity, Trace};

/// Why a sysfs file gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ReadFailure {
    Missing,
    Permission,
    /// An I/O error (a sensor that is off answers EIO or ENODATA).
    Io(String),
    /// The file's text is not the integer it should be.
    Garbage(String),
}

impl ReadFailure {
    /// One per kind, so a rail whose file fails the same way every round is noted once.
    fn kind(&self) -> &'static str {
        match self {
            ReadFailure::Missing => "missing",
            ReadFailure::Permission => "permission",
            ReadFailure::Io(_) => "io",
            ReadFailure::Garbage(_) => "garbage",
        }
    }

    pub(super) fn describe(&self, path: &Path) -> String {
        let p = path.display();
        match self {
            ReadFailure::Missing => format!("{p} is missing"),
            ReadFailure::Permission => format!("{p}: permission denied"),
            ReadFailure::Io(e) => format!("{p}: cannot read ({e})"),
            ReadFailure::Garbage(text) => {
                format!("{p}: expected an integer, found {text:?}")
            }
        }
    }
}

/// The file's text, trimmed.
pub(super) fn read_text(path: &Path) -> Result<String, ReadFailure> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).trim().to_string()),
        Err(e) => Err(match e.kind() {
            ErrorKind::NotFound => ReadFailure::Missing,
            ErrorKind::PermissionDenied => ReadFailure::Permission,
            _ => ReadFailure::Io(e.to_string()),
        }),
    }
}

/// The integer a sysfs attribute holds (one per file, by the sysfs rules; a unit after it,
/// as some Jetson limits print, is ignored).
pub(super) fn read_int(path: &Path) -> Result<i64, ReadFailure> {
    let text = read_text(path)?;
    let first = text.split_whitespace().next().unwrap_or("");
    first.parse::<i64>().map_err(|_| {
        let shown: String = text.chars().take(40).collect();
        ReadFailure::Garbage(shown)
    })
}

/// `abs` (an absolute sysfs path such as `/sys/class/thermal`) under `root`.
pub(super) fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

/// The entries of a directory with their names, in natural order (`cpu2` before `cpu10`);
/// empty when it cannot be listed.
pub(super) fn entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = read
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    found.sort_by_key(|a| natural_key(&a.0));
    found
}

/// The name with each run of digits as a number, for natural ordering.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                key.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u64::MAX),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    key.push((text, digits.parse().unwrap_or(0)));
    key
}

/// How a probe turns files into one value.
#[derive(Debug, Clone)]
pub(super) enum How {
    /// `value × scale`.
    One { path: PathBuf, scale: f64 },
    /// `a × b × scale` (INA3221 hwmon: bus millivolts × milliamps).
    Product { a: PathBuf, b: PathBuf, scale: f64 },
    /// `num ÷ den × scale` (EMC activity over the EMC clock).
    Ratio {
        num: PathBuf,
        den: PathBuf,
        scale: f64,
    },
}

impl How {
    pub(super) fn files(&self) -> Vec<&Path> {
        match self {
            How::One { path, .. } => vec![path],
            How::Product { a, b, .. } => vec![a, b],
            How::Ratio { num, den, .. } => vec![num, den],
        }
    }

    pub(super) fn origin(&self) -> String {
        match self {
            How::One { path, .. } => path.display().to_string(),
            How::Product { a, b, .. } => format!("{} × {}", a.display(), b.display()),
            How::Ratio { num, den, .. } => format!("{} ÷ {}", num.display(), den.display()),
        }
    }

    /// The value, or the first file that failed and how.
    pub(super) fn read(&self) -> Result<f64, (PathBuf, ReadFailure)> {
        let int = |p: &PathBuf| read_int(p).map(|v| v as f64).map_err(|e| (p.clone(), e));
        match self {
            How::One { path, scale } => Ok(int(path)? * scale),
            How::Product { a, b, scale } => Ok(int(a)? * int(b)? * scale),
            How::Ratio { num, den, scale } => {
                let d = int(den)?;
                if d <= 0.0 {
                    return Err((den.clone(), ReadFailure::Garbage(format!("{d}"))));
                }
                Ok(int(num)? / d * scale)
            }
        }
    }
}

/// One thing read every round: the description of its trace and how to read it.
#[derive(Debug, Clone)]
pub(super) struct Probe {
    pub trace: Trace,
    pub how: How,
}

impl Probe {
    pub(super) fn new(mut trace: Trace, how: How) -> Probe {
        trace.origin = how.origin();
        Probe { trace, how }
    }
}

/// A temperature at or below this is a sensor that is off: Jetson thermal zones of powered-down
/// units (the CV clusters of an idle Orin) read -256 °C, as jetson_stats also treats it.
const TEMP_OFFLINE_C: f64 = -256.0;

/// Reads every probe found for the sysfs sources, once per [`SysfsSource::sample_into`].
#[derive(Debug, Clone)]
pub struct SysfsSource {
    probes: Vec<Probe>,
    sources: Vec<PowerSource>,
    noted: BTreeSet<(usize, &'static str)>,
    notes: Vec<String>,
}

impl SysfsSource {
    pub(super) fn new(probes: Vec<Probe>, sources: Vec<PowerSource>) -> SysfsSource {
        SysfsSource {
            probes,
            sources,
            noted: BTreeSet::new(),
            notes: Vec::new(),
        }
    }

    /// The power sources it reads for (Jetson, RAPL).
    pub fn sources(&self) -> &[PowerSource] {
        &self.sources
    }

    /// One empty trace per probe, in the order [`SysfsSource::sample_into`] fills them.
    pub fn traces(&self) -> Vec<Trace> {
        self.probes.iter().map(|p| p.trace.empty_like()).collect()
    }

    /// Reads every probe once, each reading timed on its own, into `traces` (from
    /// [`SysfsSource::traces`]). A reading that fails or is not a measurement is left out and
    /// noted once per probe and kind of failure.
    pub fn sample_into(&mut self, traces: &mut [Trace]) {
        for (i, probe) in self.probes.iter().enumerate() {
            let result = probe.how.read();
            let time = SystemTime::now();
            let Some(trace) = traces.get_mut(i) else {
                continue;
            };
            let failure = match result {
                Ok(v) if !v.is_finite() => Some((
                    "garbage",
                    format!("{}: not a finite number", probe.how.origin()),
                )),
                Ok(v) if probe.trace.quantity == Quantity::Temp && v <= TEMP_OFFLINE_C => Some((
                    "offline",
                    format!(
                        "{} reads {v} °C, which means the sensor is off",
                        probe.how.origin()
                    ),
                )),
                Ok(v) if probe.trace.quantity == Quantity::Energy && v < 0.0 => Some((
                    "negative",
                    format!("{}: a negative energy counter ({v} J)", probe.how.origin()),
                )),
                Ok(v) => {
                    trace.push(time, v);
                    None
                }
                Err((path, e)) => Some((e.kind(), e.describe(&path))),
            };
            if let Some((kind, text)) = failure
                && self.noted.insert((i, kind))
            {
                self.notes.push(format!(
                    "{} {} `{}` not read: {text} (readings that fail are left out, not filled in)",
                    probe.trace.source,
                    probe.trace.quantity.as_str(),
                    probe.trace.name
                ));
            }
        }
    }

    /// Sentences about readings that failed since the last call.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }
}
