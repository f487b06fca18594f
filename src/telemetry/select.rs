//! Which sysfs sources a [`super::PowerChoice`] reads on this machine, and what it cannot.

use std::path::Path;

use super::power::{PowerChoice, PowerOptions, PowerSetup, PowerSource};
use super::sysfs::{Probe, SysfsSource};
use super::{jetson, rapl, sensors};

/// The sysfs part of a telemetry: the readers and what they do and do not measure.
#[derive(Debug, Default)]
pub(super) struct Selection {
    pub source: Option<SysfsSource>,
    pub measured: Vec<PowerSource>,
    pub absent: Vec<String>,
    pub not_measured: Vec<String>,
}

/// The Jetson and/or RAPL readers under `root`. A source that was named (`auto` false) and is
/// not there is "not measured"; one `auto` looked for and did not find is "absent". Thermal
/// zones and CPU clocks come with whichever source is there (once).
pub(super) fn sysfs(root: &Path, want_jetson: bool, want_rapl: bool, auto: bool) -> Selection {
    let mut sel = Selection::default();
    let mut probes: Vec<Probe> = Vec::new();
    let mut sensors_for: Option<PowerSource> = None;
    let missing = |sel: &mut Selection, text: String| {
        if auto {
            sel.absent.push(text);
        } else {
            sel.not_measured.push(text);
        }
    };

    if want_jetson {
        let found = jetson::find(root);
        if found.present() {
            if !found.rails.is_empty() {
                sel.measured.push(PowerSource::Jetson);
            } else {
                sel.not_measured.push(format!(
                    "Jetson power not measured: no readable INA3221 rail under {}",
                    list(&found.looked_in)
                ));
            }
            sel.not_measured.extend(found.not_measured);
            probes.extend(found.rails);
            probes.extend(found.clocks);
            sensors_for = Some(PowerSource::Jetson);
        } else {
            missing(
                &mut sel,
                format!(
                    "no Jetson power monitor: no INA3221 device under {} and no Jetson GPU in {}",
                    list(&found.looked_in),
                    super::sysfs::under(root, "/sys/class/devfreq").display()
                ),
            );
        }
    }
    if want_rapl {
        let found = rapl::find(root);
        if found.present {
            if found.zones.is_empty() {
                sel.not_measured.push(
                    "RAPL energy not measured: no RAPL zone with a readable energy counter"
                        .to_string(),
                );
            } else {
                sel.measured.push(PowerSource::Rapl);
            }
            sel.not_measured.extend(found.not_measured);
            probes.extend(found.zones);
            sensors_for.get_or_insert(PowerSource::Rapl);
        } else {
            missing(
                &mut sel,
                format!(
                    "no RAPL: no intel-rapl zone in {}",
                    super::sysfs::under(root, "/sys/class/powercap").display()
                ),
            );
        }
    }
    if let Some(source) = sensors_for {
        probes.extend(sensors::thermal(root, source, &mut sel.not_measured));
        probes.extend(sensors::cpufreq(root, source, &mut sel.not_measured));
    }
    if !probes.is_empty() {
        sel.source = Some(SysfsSource::new(probes, sel.measured.clone()));
    }
    sel
}

fn list(paths: &[std::path::PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The sysfs selection a choice makes (none for `nvml` and `none`).
pub(super) fn for_choice(choice: PowerChoice, root: &Path) -> Selection {
    match choice {
        PowerChoice::Jetson => sysfs(root, true, false, false),
        PowerChoice::Rapl => sysfs(root, false, true, false),
        PowerChoice::Auto => sysfs(root, true, true, true),
        PowerChoice::Nvml | PowerChoice::None => Selection::default(),
    }
}

impl SysfsSource {
    /// The sysfs readers `options.power` names under `options.sysfs_root`, without NVML (none
    /// for `nvml` and `none`), and what they measure and not. For callers that read at moments
    /// of their own choosing ([`SysfsSource::sample_into`]) instead of a [`super::Recorder`]'s
    /// fixed interval.
    pub fn open(options: &PowerOptions) -> (Option<SysfsSource>, PowerSetup) {
        let selection = for_choice(options.power, &options.sysfs_root);
        let mut setup = PowerSetup::new(options.power);
        setup.measured = selection.measured;
        setup.absent = selection.absent;
        setup.not_measured = selection.not_measured;
        (selection.source, setup)
    }
}
