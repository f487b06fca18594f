//! NVIDIA Jetson: the INA3221 power monitors, the integrated GPU's clock and load (devfreq)
//! and the memory controller (EMC) clock.
//!
//! Two INA3221 layouts exist (seen in jetson_stats' `jtop/core/power.py`, the Linux
//! `Documentation/hwmon/ina3221.rst`, and NVIDIA's L4T developer guides):
//!
//! - JetPack 5 and later, the mainline hwmon driver:
//!   `/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<N>/in<C>_label`, `in<C>_input` (bus
//!   voltage, mV), `curr<C>_input` (mA), `in<C>_enable`, for channels C = 1..3; channel 7 is the
//!   "sum of shunt voltages", not a rail. Power is volts × amps of one read each.
//! - JetPack 4 and earlier, NVIDIA's IIO driver:
//!   `/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<N>/rail_name_<C>`,
//!   `in_power<C>_input` (mW), `in_voltage<C>_input` (mV), `in_current<C>_input` (mA), C = 0..2.
//!
//! Channels labelled `NC` are not connected (AGX Orin's second monitor) and are skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::power::{Family, PowerSource, Quantity, Trace};
use super::sysfs::{How, Probe, ReadFailure, entries, read_int, read_text, under};

/// Rails that feed the whole module: when one is there, it alone is the module's energy
/// (the other rails are inside it), as jetson_stats and energymon count it. Without one (AGX
/// Xavier, AGX Orin) the rails are added.
const INPUT_RAILS: [&str; 3] = ["VDD_IN", "POM_5V_IN", "5V_IN"];

/// Device-tree node names of Jetson integrated GPUs (Nano/TX1 `gpu`, TX2 `gp10b`, Xavier
/// `gv11b`, Orin `ga10b` or `gpu`, Thor `gb10b`).
const GPU_NODES: [&str; 5] = ["gpu", "gp10b", "gv11b", "ga10b", "gb10b"];

/// The EMC clock, in the order tried: Thor's devfreq, then debugfs (root-only) on Xavier and
/// Orin (BPMP), and on older boards.
const EMC_RATE_FILES: [&str; 4] = [
    "/sys/class/devfreq/bwmgr/cur_freq",
    "/sys/kernel/debug/bpmp/debug/clk/emc/rate",
    "/sys/kernel/debug/clk/emc/clk_rate",
    "/sys/kernel/debug/clk/override.emc/clk_rate",
];

/// The memory controller's average activity; over the EMC clock in kHz it is the EMC load in
/// percent (tegrastats' `EMC_FREQ x%`; jetson_stats divides the same way).
const EMC_ACTIVITY: &str = "/sys/kernel/actmon_avg_activity/mc_all";

/// What was found on one Jetson (or nothing).
#[derive(Debug, Default)]
pub(super) struct Found {
    pub rails: Vec<Probe>,
    pub clocks: Vec<Probe>,
    pub not_measured: Vec<String>,
    /// Where the power monitors were looked for, for "not found" sentences.
    pub looked_in: Vec<PathBuf>,
}

impl Found {
    /// An INA3221 or a Jetson GPU is there.
    pub fn present(&self) -> bool {
        !self.rails.is_empty() || !self.clocks.is_empty() || !self.not_measured.is_empty()
    }
}

fn power_trace(name: &str) -> Trace {
    Trace::new(
        PowerSource::Jetson,
        Family::Ina3221,
        Quantity::Power,
        name,
        String::new(),
    )
}

/// `1-0040`: an I2C client (bus, address), not `bind`, `module` or `uevent`.
fn is_i2c_client(name: &str) -> bool {
    name.split_once('-').is_some_and(|(bus, addr)| {
        !bus.is_empty()
            && bus.chars().all(|c| c.is_ascii_digit())
            && addr.len() == 4
            && addr.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// Checks that every file of `what` reads; a missing or root-only file means it is not
/// measured (said once), an I/O error or odd text at start is left to the sampling (a sensor
/// may be waking).
fn usable(what: &str, how: &How, not_measured: &mut Vec<String>) -> bool {
    for file in how.files() {
        if let Err(e @ (ReadFailure::Missing | ReadFailure::Permission)) = read_int(file) {
            not_measured.push(format!("{what} not measured: {}", e.describe(file)));
            return false;
        }
    }
    true
}

/// Channels of one hwmon directory of the mainline driver.
fn hwmon_rails(dir: &Path, out: &mut Vec<(String, How)>, not_measured: &mut Vec<String>) {
    for channel in 1..=3 {
        let Ok(label) = read_text(&dir.join(format!("in{channel}_label"))) else {
            // An unlabelled channel is not wired to a named rail.
            continue;
        };
        if label.is_empty() || label == "NC" {
            continue;
        }
        if read_int(&dir.join(format!("in{channel}_enable"))).is_ok_and(|e| e == 0) {
            not_measured.push(format!(
                "Jetson rail {label} not measured: the channel is disabled ({})",
                dir.join(format!("in{channel}_enable")).display()
            ));
            continue;
        }
        let how = How::Product {
            a: dir.join(format!("in{channel}_input")),
            b: dir.join(format!("curr{channel}_input")),
            // mV × mA = µW
            scale: 1e-6,
        };
        if usable(&format!("Jetson rail {label}"), &how, not_measured) {
            out.push((label, how));
        }
    }
}

/// Channels of one IIO device of the L4T driver.
fn iio_rails(dir: &Path, out: &mut Vec<(String, How)>, not_measured: &mut Vec<String>) {
    for (file, _) in entries(dir) {
        let Some(channel) = file.strip_prefix("rail_name_") else {
            continue;
        };
        let Ok(label) = read_text(&dir.join(&file)) else {
            continue;
        };
        if label.is_empty() || label == "NC" {
            continue;
        }
        let power = dir.join(format!("in_power{channel}_input"));
        let how = if power.exists() {
            // mW
            How::One {
                path: power,
                scale: 1e-3,
            }
        } else {
            How::Product {
                a: dir.join(format!("in_voltage{channel}_input")),
                b: dir.join(format!("in_current{channel}_input")),
                scale: 1e-6,
            }
        };
        if usable(&format!("Jetson rail {label}"), &how, not_measured) {
            out.push((label, how));
        }
    }
}

/// The INA3221 rails under `root`.
fn rails(root: &Path, found: &mut Found) {
    let mut channels: Vec<(String, String, How)> = Vec::new();
    for driver in ["ina3221", "ina3221x"] {
        let dir = under(root, &format!("/sys/bus/i2c/drivers/{driver}"));
        found.looked_in.push(dir.clone());
        for (client, path) in entries(&dir) {
            if !is_i2c_client(&client) {
                continue;
            }
            let mut here = Vec::new();
            for (hwmon, hpath) in entries(&path.join("hwmon")) {
                if hwmon.starts_with("hwmon") {
                    hwmon_rails(&hpath, &mut here, &mut found.not_measured);
                }
            }
            for (dev, dpath) in entries(&path) {
                if dev.starts_with("iio:device") {
                    iio_rails(&dpath, &mut here, &mut found.not_measured);
                }
            }
            channels.extend(here.into_iter().map(|(l, h)| (client.clone(), l, h)));
        }
    }
    let has_input = channels
        .iter()
        .any(|(_, label, _)| INPUT_RAILS.contains(&label.as_str()));
    let mut names = BTreeSet::new();
    for (client, label, how) in channels {
        // Two monitors with one label: the second is named with its I2C client.
        let name = if names.insert(label.clone()) {
            label.clone()
        } else {
            format!("{label}@{client}")
        };
        let mut trace = power_trace(&name);
        trace.in_total = !has_input || INPUT_RAILS.contains(&label.as_str());
        found.rails.push(Probe::new(trace, how));
    }
}

/// The name of a devfreq device's node (`device/of_node/name`), else what follows the unit
/// address in its directory name (`17000000.ga10b`).
fn devfreq_node(path: &Path, dir_name: &str) -> String {
    read_text(&path.join("device/of_node/name"))
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            dir_name
                .rsplit_once('.')
                .map_or(dir_name, |(_, n)| n)
                .to_string()
        })
}

/// The integrated GPU's clock (devfreq, Hz) and load (per mille).
fn gpu(root: &Path, found: &mut Found) {
    let mut count = 0;
    for (dir, path) in entries(&under(root, "/sys/class/devfreq")) {
        let node = devfreq_node(&path, &dir);
        if !GPU_NODES.contains(&node.as_str()) {
            continue;
        }
        let name = if count == 0 {
            "gpu".to_string()
        } else {
            format!("gpu{count}")
        };
        count += 1;
        let freq = How::One {
            path: path.join("cur_freq"),
            scale: 1e-6,
        };
        if usable(
            &format!("Jetson {name} clock"),
            &freq,
            &mut found.not_measured,
        ) {
            let trace = Trace::new(
                PowerSource::Jetson,
                Family::Devfreq,
                Quantity::Freq,
                &name,
                "",
            );
            found.clocks.push(Probe::new(trace, freq));
        }
        let load = path.join("device/load");
        if load.exists() {
            let trace = Trace::new(
                PowerSource::Jetson,
                Family::Devfreq,
                Quantity::Load,
                &name,
                "",
            );
            found.clocks.push(Probe::new(
                trace,
                How::One {
                    path: load,
                    // per mille
                    scale: 0.1,
                },
            ));
        }
    }
}

/// The EMC clock and load, when some file gives them. Called only on a Jetson: elsewhere
/// their absence says nothing.
fn emc(root: &Path, found: &mut Found) {
    let mut refused = Vec::new();
    let mut rate = None;
    for file in EMC_RATE_FILES {
        let path = under(root, file);
        match read_int(&path) {
            Ok(_) | Err(ReadFailure::Io(_) | ReadFailure::Garbage(_)) => {
                rate = Some(path);
                break;
            }
            Err(ReadFailure::Permission) => refused.push(path),
            Err(ReadFailure::Missing) => {}
        }
    }
    let Some(rate) = rate else {
        // debugfs is mode 0700: for anyone but root its files look missing, not refused.
        let why = if refused.is_empty() {
            format!(
                "none of {} is readable (the debugfs ones need root)",
                EMC_RATE_FILES
                    .iter()
                    .map(|f| under(root, f).display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!(
                "permission denied on {}",
                refused
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        found
            .not_measured
            .push(format!("Jetson EMC clock and load not measured: {why}"));
        return;
    };
    let trace = Trace::new(PowerSource::Jetson, Family::Emc, Quantity::Freq, "emc", "");
    found.clocks.push(Probe::new(
        trace,
        How::One {
            path: rate.clone(),
            scale: 1e-6,
        },
    ));
    let activity = under(root, EMC_ACTIVITY);
    if activity.exists() {
        let trace = Trace::new(PowerSource::Jetson, Family::Emc, Quantity::Load, "emc", "");
        found.clocks.push(Probe::new(
            trace,
            How::Ratio {
                num: activity,
                den: rate,
                // activity ÷ (Hz / 1000)
                scale: 1000.0,
            },
        ));
    }
}

/// The Jetson rails and clocks under `root`.
pub(super) fn find(root: &Path) -> Found {
    let mut found = Found::default();
    rails(root, &mut found);
    gpu(root, &mut found);
    if found.present() {
        emc(root, &mut found);
    }
    found
}
