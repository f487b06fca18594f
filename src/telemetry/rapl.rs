//! Intel and AMD RAPL energy counters through powercap (Linux
//! `Documentation/power/powercap/powercap.rst`): `/sys/class/powercap/<type>:<n>[:<m>]/` with
//! `name` (`package-0`, `core`, `uncore`, `dram`, `psys`), `energy_uj` (a counter in µJ that
//! wraps to 0 past `max_energy_range_uj`). The control types are `intel-rapl` (MSR; AMD
//! processors appear under this name too), `intel-rapl-mmio` (the same package through MMIO on
//! recent Intel laptops: a duplicate, skipped when the MSR zone of that name is there) and
//! any other `*rapl*` type a kernel adds.
//!
//! `energy_uj` is readable by root only on kernels since 5.10 (the PLATYPUS side channel,
//! CVE-2020-8694): then RAPL is "not measured", with the reason.

use std::collections::BTreeSet;
use std::path::Path;

use super::power::{Family, PowerSource, Quantity, Trace};
use super::sysfs::{How, Probe, ReadFailure, entries, read_int, read_text, under};

#[derive(Debug, Default)]
pub(super) struct Found {
    pub zones: Vec<Probe>,
    pub not_measured: Vec<String>,
    /// Some RAPL zone directory exists (readable or not).
    pub present: bool,
}

/// `intel-rapl:0:1` → (`intel-rapl`, `0`, Some(`1`)); control-type directories (no `:`) and
/// anything else → None.
fn zone_id(dir: &str) -> Option<(&str, &str, Option<&str>)> {
    let mut parts = dir.split(':');
    let kind = parts.next()?;
    let package = parts.next()?;
    let sub = parts.next();
    if parts.next().is_some() || !kind.contains("rapl") {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    (digits(package) && sub.is_none_or(digits)).then_some((kind, package, sub))
}

/// The RAPL zones under `root`.
pub(super) fn find(root: &Path) -> Found {
    let mut found = Found::default();
    let base = under(root, "/sys/class/powercap");
    let mut zones: Vec<(bool, String, std::path::PathBuf)> = entries(&base)
        .into_iter()
        .filter(|(dir, _)| zone_id(dir).is_some())
        .map(|(dir, path)| (dir.starts_with("intel-rapl-mmio"), dir, path))
        .collect();
    // MSR zones before their MMIO duplicates; natural order otherwise.
    zones.sort_by_key(|(mmio, _, _)| *mmio);
    found.present = !zones.is_empty();

    let mut named: Vec<(String, bool, How, Option<f64>)> = Vec::new();
    let mut names = BTreeSet::new();
    for (_, dir, path) in zones {
        let Some((kind, package, sub)) = zone_id(&dir) else {
            continue;
        };
        let zone = read_text(&path.join("name")).unwrap_or_else(|_| dir.clone());
        let name = match sub {
            Some(_) => {
                let parent = base.join(format!("{kind}:{package}"));
                let parent =
                    read_text(&parent.join("name")).unwrap_or_else(|_| format!("{kind}:{package}"));
                format!("{parent}/{zone}")
            }
            None => zone.clone(),
        };
        if !names.insert(name.clone()) {
            // intel-rapl-mmio's package-0 is intel-rapl's package-0 read another way.
            continue;
        }
        let energy = path.join("energy_uj");
        match read_int(&energy) {
            Err(ReadFailure::Permission) => {
                found.not_measured.push(format!(
                    "RAPL {name} not measured: {} is readable by root only (kernels since 5.10 restrict it, CVE-2020-8694); run as root or grant read access to it",
                    energy.display()
                ));
                continue;
            }
            Err(ReadFailure::Missing) => {
                found.not_measured.push(format!(
                    "RAPL {name} not measured: {} is missing (this zone has no energy counter)",
                    energy.display()
                ));
                continue;
            }
            _ => {}
        }
        let range_file = path.join("max_energy_range_uj");
        let range = match read_int(&range_file) {
            Ok(r) if r > 0 => Some(r as f64 * 1e-6),
            Ok(r) => {
                found.not_measured.push(format!(
                    "RAPL {name}: {} is {r}, not a range: a counter that goes backwards cannot be told from a wrap, so such an interval is not counted",
                    range_file.display()
                ));
                None
            }
            Err(e) => {
                found.not_measured.push(format!(
                    "RAPL {name}: {}: a counter that goes backwards cannot be told from a wrap, so such an interval is not counted",
                    e.describe(&range_file)
                ));
                None
            }
        };
        let top_level = sub.is_none();
        named.push((
            name,
            top_level,
            How::One {
                path: energy,
                // µJ
                scale: 1e-6,
            },
            range,
        ));
    }
    // The package counts the cores and uncore (graphics) inside it; DRAM is outside it,
    // whether a zone of its own or a sub-zone; psys is the whole platform, counted only when
    // there is no package to double it.
    let has_package = named.iter().any(|(n, top, _, _)| *top && is_package(n));
    for (name, top_level, how, range) in named {
        let leaf = name.rsplit('/').next().unwrap_or(&name);
        let in_total = (top_level && is_package(&name))
            || leaf == "dram"
            || (top_level && leaf == "psys" && !has_package);
        let mut trace = Trace::new(PowerSource::Rapl, Family::Rapl, Quantity::Energy, name, "");
        trace.wraps_at_j = range;
        trace.in_total = in_total;
        found.zones.push(Probe::new(trace, how));
    }
    found
}

fn is_package(name: &str) -> bool {
    name.starts_with("package-")
}
