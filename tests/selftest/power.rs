//! The sysfs power sources on recorded trees (tests/fixtures/sysfs, see SOURCES.md): Jetson
//! INA3221 rails in both driver layouts, RAPL zones and their totals, counter wraps, readings
//! that fail (garbage, missing, refused), `auto`, energy by counter and by integral, the
//! traces and the CSV; and this machine's own RAPL counters where it has them.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use perfgate::telemetry::{
    EnergyMethod, Family, POWER_MONITORING_COLUMNS, PowerChoice, PowerMonitoringWriter,
    PowerOptions, PowerSetup, PowerSource, Quantity, Recording, Sample, SysfsSource, Telemetry,
    Trace,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sysfs")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A writable copy of a fixture tree.
fn copy_of(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join(name);
    copy_dir(&fixture(name), &root);
    (dir, root)
}

fn int(path: &Path) -> f64 {
    std::fs::read_to_string(path)
        .expect("read fixture")
        .trim()
        .parse()
        .expect("integer")
}

fn close(a: f64, b: f64, rel: f64) {
    assert!((a - b).abs() <= rel * b.abs().max(1e-9), "{a} vs {b}");
}

fn trace<'a>(rec: &'a Recording, quantity: Quantity, name: &str) -> &'a Trace {
    rec.rails
        .iter()
        .find(|t| t.quantity == quantity && t.name == name)
        .unwrap_or_else(|| panic!("no {quantity:?} trace {name}: {:?}", names(rec)))
}

fn names(rec: &Recording) -> Vec<String> {
    rec.rails
        .iter()
        .map(|t| format!("{}:{}", t.quantity.as_str(), t.name))
        .collect()
}

fn record(t: &Telemetry, run_ms: u64) -> Recording {
    let r = t.start(&[], Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(run_ms));
    r.stop()
}

/// A recording of sysfs traces only, for the energy and trace views.
fn rails_recording(rails: Vec<Trace>, setup: PowerSetup) -> Recording {
    let now = SystemTime::now();
    Recording {
        gpus: Vec::new(),
        interval: Duration::from_millis(100),
        samples: Vec::new(),
        rails,
        power: setup,
        started: now,
        ended: now,
        problems: Vec::new(),
    }
}

fn open_sysfs(power: PowerChoice, root: &Path) -> (SysfsSource, Vec<Trace>, PowerSetup) {
    let (source, setup) = SysfsSource::open(&PowerOptions::with_root(power, root));
    let source = source.expect("a sysfs source");
    let traces = source.traces();
    (source, traces, setup)
}

#[test]
fn jetson_hwmon_rails_are_volts_times_amps_and_all_count_without_an_input_rail() {
    let root = fixture("jetson-agx-orin");
    let t = Telemetry::open_with(&PowerOptions::with_root(PowerChoice::Jetson, &root));
    assert_eq!(t.unavailable_reason(), None);
    let setup = t.power();
    assert_eq!(setup.measured, vec![PowerSource::Jetson]);
    assert!(setup.not_measured.is_empty(), "{:?}", setup.not_measured);
    assert_eq!(t.device_count(), 0);
    let rec = record(&t, 45);

    // Rails: the labelled channels of both monitors, NC and the channel-7 sum left out.
    let hw = root.join("sys/bus/i2c/drivers/ina3221");
    let mut rails = Vec::new();
    for (client, hwmon) in [("1-0040", "hwmon3"), ("1-0041", "hwmon4")] {
        let dir = hw.join(client).join("hwmon").join(hwmon);
        for c in 1..=3 {
            let label = std::fs::read_to_string(dir.join(format!("in{c}_label"))).expect("label");
            let label = label.trim().to_string();
            if label == "NC" {
                continue;
            }
            let watts = int(&dir.join(format!("in{c}_input")))
                * int(&dir.join(format!("curr{c}_input")))
                / 1e6;
            rails.push((label, watts));
        }
    }
    assert_eq!(rails.len(), 4);
    let power: Vec<&Trace> = rec
        .rails
        .iter()
        .filter(|t| t.quantity == Quantity::Power)
        .collect();
    assert_eq!(
        power.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
        rails.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>()
    );
    for (label, watts) in &rails {
        let tr = trace(&rec, Quantity::Power, label);
        assert!(tr.len() >= 3, "{label}: {} readings", tr.len());
        assert_eq!(tr.times.len(), tr.values.len());
        assert!(tr.times.windows(2).all(|w| w[0] <= w[1]));
        assert!(tr.values.iter().all(|v| (v - watts).abs() < 1e-9));
        // No VDD_IN on AGX Orin: every rail is counted.
        assert!(tr.in_total, "{label}");
        assert_eq!(tr.family, Family::Ina3221);
    }

    // Clocks and loads: the GPU devfreq (not the VIC), the EMC from debugfs, its load.
    let gpu_dir = root.join("sys/class/devfreq/17000000.gpu");
    let gpu = trace(&rec, Quantity::Freq, "gpu");
    close(gpu.values[0], int(&gpu_dir.join("cur_freq")) / 1e6, 1e-12);
    close(
        trace(&rec, Quantity::Load, "gpu").values[0],
        int(&gpu_dir.join("device/load")) / 10.0,
        1e-12,
    );
    assert_eq!(
        rec.rails
            .iter()
            .filter(|t| t.family == Family::Devfreq && t.quantity == Quantity::Freq)
            .count(),
        1
    );
    let rate = int(&root.join("sys/kernel/debug/bpmp/debug/clk/emc/rate"));
    close(
        trace(&rec, Quantity::Freq, "emc").values[0],
        rate / 1e6,
        1e-12,
    );
    let activity = int(&root.join("sys/kernel/actmon_avg_activity/mc_all"));
    close(
        trace(&rec, Quantity::Load, "emc").values[0],
        activity / (rate / 1000.0),
        1e-12,
    );
    let cpus = rec
        .rails
        .iter()
        .filter(|t| t.family == Family::Cpufreq)
        .count();
    assert_eq!(cpus, 12);
    assert_eq!(rec.rails.last().map(|t| t.name.as_str()), Some("cpu11"));

    // Temperatures: every zone; the powered-down one (-256 °C) has no reading and says why.
    close(
        trace(&rec, Quantity::Temp, "CPU-therm").values[0],
        int(&root.join("sys/class/thermal/thermal_zone0/temp")) / 1000.0,
        1e-12,
    );
    assert!(trace(&rec, Quantity::Temp, "CV2-therm").is_empty());
    let offline: Vec<&String> = rec
        .problems
        .iter()
        .filter(|p| p.contains("CV2-therm"))
        .collect();
    assert_eq!(offline.len(), 1, "{:?}", rec.problems);
    assert!(offline[0].contains("sensor is off"), "{}", offline[0]);
    let hottest = (0..9)
        .map(|z| int(&root.join(format!("sys/class/thermal/thermal_zone{z}/temp"))) / 1000.0)
        .fold(f64::MIN, f64::max);
    let (name, temp) = rec.hottest().expect("hottest");
    close(temp, hottest, 1e-12);
    assert!(name.ends_with("-therm"), "{name}");

    // Energy: the trapezoid of constant power is power × span, per rail and in total.
    let report = rec.energy(Some(100.0));
    let jetson = report.source(PowerSource::Jetson).expect("jetson energy");
    let total_w: f64 = rails.iter().map(|(_, w)| w).sum();
    let joules = jetson.joules.expect("joules");
    // Each rail over its own readings' span (each reading has its own time).
    let expected: f64 = rails
        .iter()
        .map(|(label, w)| {
            let r = report
                .rails
                .iter()
                .find(|r| &r.rail == label)
                .expect("rail");
            close(r.joules, w * r.seconds, 1e-9);
            r.joules
        })
        .sum();
    close(joules, expected, 1e-12);
    close(jetson.mean_w.expect("mean"), total_w, 1e-2);
    close(
        jetson.joules_per_output_token.expect("J/token"),
        joules / 100.0,
        1e-12,
    );
    assert_eq!(jetson.method, Some("power integral"));
    assert!(
        report
            .rails
            .iter()
            .all(|r| r.method == EnergyMethod::PowerIntegral)
    );
    let metrics = rec.summary(Some(100.0)).metrics();
    close(metrics["JETSON_ENERGY"], joules, 1e-12);
    assert!(!metrics.contains_key("GPU_ENERGY"));
    assert!(!metrics.contains_key("RAPL_ENERGY"));
}

#[test]
fn jetson_iio_layout_reads_milliwatts_and_counts_the_input_rail_alone() {
    let root = fixture("jetson-nano-jp4");
    let (mut source, mut traces, setup) = open_sysfs(PowerChoice::Jetson, &root);
    assert_eq!(setup.measured, vec![PowerSource::Jetson]);
    source.sample_into(&mut traces);
    let dir = root.join("sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0");
    let rails: Vec<&Trace> = traces
        .iter()
        .filter(|t| t.quantity == Quantity::Power)
        .collect();
    assert_eq!(rails.len(), 3);
    for (i, t) in rails.iter().enumerate() {
        let label = std::fs::read_to_string(dir.join(format!("rail_name_{i}"))).expect("name");
        assert_eq!(t.name, label.trim());
        close(
            t.values[0],
            int(&dir.join(format!("in_power{i}_input"))) / 1000.0,
            1e-12,
        );
        // POM_5V_IN feeds the module: the GPU and CPU rails are inside it.
        assert_eq!(t.in_total, t.name == "POM_5V_IN", "{}", t.name);
    }
    // The PMIC die zone reads a constant 100 °C: not a sensor, not sampled.
    assert!(!traces.iter().any(|t| t.name == "PMIC-Die"));
    assert!(traces.iter().any(|t| t.name == "thermal-fan-est"));
    let emc = traces
        .iter()
        .find(|t| t.quantity == Quantity::Freq && t.name == "emc")
        .expect("emc");
    close(
        emc.values[0],
        int(&root.join("sys/kernel/debug/clk/emc/clk_rate")) / 1e6,
        1e-12,
    );
    assert!(source.take_notes().is_empty());
}

#[test]
fn trapezoid_energy_of_a_power_ramp_is_exact_and_integrates_across_a_missed_reading() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut rail = Trace::new(
        PowerSource::Jetson,
        Family::Ina3221,
        Quantity::Power,
        "VDD_IN",
        "test",
    );
    rail.in_total = true;
    // P(t) = 2 + 3t W for t in 0..4 s, read at 0, 1, 2 and 4 s (the 3 s reading failed):
    // ∫ = 2·4 + 3·16/2 = 32 J; a linear P makes the trapezoid exact even across the gap.
    for secs in [0.0, 1.0, 2.0, 4.0] {
        rail.push(t0 + Duration::from_secs_f64(secs), 2.0 + 3.0 * secs);
    }
    let mut side = rail.clone();
    side.name = "VDD_CPU_GPU_CV".into();
    side.in_total = false;
    let rec = rails_recording(vec![rail, side], PowerSetup::new(PowerChoice::Jetson));
    let report = rec.energy(None);
    let jetson = report.source(PowerSource::Jetson).expect("jetson");
    close(jetson.joules.expect("joules"), 32.0, 1e-12);
    close(jetson.seconds, 4.0, 1e-12);
    close(jetson.mean_w.expect("mean"), 8.0, 1e-12);
    assert_eq!(jetson.rails, vec!["VDD_IN".to_string()]);
    // The side rail has its own energy but is not added.
    let side = report
        .rails
        .iter()
        .find(|r| r.rail == "VDD_CPU_GPU_CV")
        .expect("side rail");
    assert!(!side.in_total);
    close(side.joules, 32.0, 1e-12);

    // A counted rail with one reading: no figure, and the problem says which rail.
    let mut lone = Trace::new(
        PowerSource::Jetson,
        Family::Ina3221,
        Quantity::Power,
        "VDD_IN",
        "test",
    );
    lone.in_total = true;
    lone.push(t0, 5.0);
    let rec = rails_recording(vec![lone], PowerSetup::new(PowerChoice::Jetson));
    let report = rec.energy(Some(10.0));
    let jetson = report.source(PowerSource::Jetson).expect("jetson");
    assert_eq!(jetson.joules, None);
    assert_eq!(jetson.joules_per_output_token, None);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("VDD_IN") && p.contains("fewer than two")),
        "{:?}",
        report.problems
    );
}

#[test]
fn rapl_zones_are_named_by_package_and_the_total_is_packages_and_dram() {
    let (_, traces, setup) = open_sysfs(PowerChoice::Rapl, &fixture("rapl-intel-laptop"));
    assert_eq!(setup.measured, vec![PowerSource::Rapl]);
    let zones: Vec<(&str, bool)> = traces
        .iter()
        .filter(|t| t.quantity == Quantity::Energy)
        .map(|t| (t.name.as_str(), t.in_total))
        .collect();
    // The MMIO package-0 is the MSR package-0 again; psys is not added beside a package.
    assert_eq!(
        zones,
        vec![
            ("package-0", true),
            ("package-0/core", false),
            ("package-0/uncore", false),
            ("psys", false)
        ]
    );
    let range =
        int(&fixture("rapl-intel-laptop")
            .join("sys/class/powercap/intel-rapl:0/max_energy_range_uj"));
    assert_eq!(traces[0].wraps_at_j, Some(range / 1e6));
    // Two zones of one type are told apart by their zone.
    assert!(traces.iter().any(|t| t.name == "acpitz@thermal_zone2"));

    let (_, traces, _) = open_sysfs(PowerChoice::Rapl, &fixture("rapl-server-2s"));
    let zones: Vec<(&str, bool)> = traces
        .iter()
        .map(|t| (t.name.as_str(), t.in_total))
        .collect();
    assert_eq!(
        zones,
        vec![
            ("package-0", true),
            ("package-0/dram", true),
            ("package-1", true),
            ("package-1/dram", true)
        ]
    );
    let (_, traces, _) = open_sysfs(PowerChoice::Rapl, &fixture("rapl-amd"));
    let zones: Vec<(&str, bool)> = traces
        .iter()
        .map(|t| (t.name.as_str(), t.in_total))
        .collect();
    assert_eq!(zones, vec![("package-0", true), ("package-0/core", false)]);
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, format!("{text}\n")).expect("write");
}

#[test]
fn rapl_counter_wraps_are_corrected_and_resets_are_not_counted() {
    let (_dir, root) = copy_of("rapl-intel-laptop");
    let zone = |z: &str| root.join("sys/class/powercap").join(z);
    let range_uj = int(&zone("intel-rapl:0").join("max_energy_range_uj"));
    // psys loses its range: a step back cannot be told from a wrap.
    std::fs::remove_file(zone("intel-rapl:1").join("max_energy_range_uj")).expect("rm");
    write(
        &zone("intel-rapl:0").join("energy_uj"),
        &format!("{}", range_uj - 1_000_000.0),
    );
    write(&zone("intel-rapl:0:0").join("energy_uj"), "5000000000");
    write(&zone("intel-rapl:1").join("energy_uj"), "9000000");
    let (mut source, mut traces, setup) = open_sysfs(PowerChoice::Rapl, &root);
    assert!(
        setup
            .not_measured
            .iter()
            .any(|n| n.contains("psys") && n.contains("max_energy_range_uj is missing")),
        "{:?}",
        setup.not_measured
    );
    source.sample_into(&mut traces);
    // package-0 wraps: 1 J to the top, then 0.5 J after it; core steps back 0.1 kJ (a reset
    // whose "wrap" would be most of the range); psys steps back without a range.
    write(&zone("intel-rapl:0").join("energy_uj"), "500000");
    write(&zone("intel-rapl:0:0").join("energy_uj"), "4900000000");
    write(&zone("intel-rapl:1").join("energy_uj"), "8000000");
    std::thread::sleep(Duration::from_millis(20));
    source.sample_into(&mut traces);
    write(&zone("intel-rapl:0").join("energy_uj"), "2500000");
    write(&zone("intel-rapl:0:0").join("energy_uj"), "4903000000");
    write(&zone("intel-rapl:1").join("energy_uj"), "8250000");
    std::thread::sleep(Duration::from_millis(20));
    source.sample_into(&mut traces);

    let rec = rails_recording(traces, setup);
    let report = rec.energy(Some(7.0));
    let energy_of = |name: &str| {
        report
            .rails
            .iter()
            .find(|r| r.rail == name)
            .unwrap_or_else(|| panic!("{name}: {:?}", report.rails))
    };
    // (range - before + after) + plain step: 1 + 0.5 + 2 J.
    close(energy_of("package-0").joules, 3.5, 1e-9);
    assert_eq!(energy_of("package-0").method, EnergyMethod::Counter);
    close(energy_of("package-0/core").joules, 3.0, 1e-9);
    close(energy_of("psys").joules, 0.25, 1e-9);
    let rapl = report.source(PowerSource::Rapl).expect("rapl");
    close(rapl.joules.expect("joules"), 3.5, 1e-9);
    close(rapl.joules_per_output_token.expect("J/token"), 0.5, 1e-9);
    assert_eq!(rapl.method, Some("counter"));
    let said = |needle: &str, zone: &str| {
        report
            .problems
            .iter()
            .any(|p| p.contains(zone) && p.contains(needle))
    };
    assert!(
        said("a reset, not counted", "package-0/core"),
        "{:?}",
        report.problems
    );
    assert!(said("range is unknown", "psys"), "{:?}", report.problems);
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);

    // As power: each counted step over its time; the wrap step is there, the reset is not.
    let traces = rec.traces();
    let power = traces
        .iter()
        .find(|t| t.quantity == Quantity::Power && t.name == "package-0")
        .expect("package-0 power");
    assert_eq!(power.len(), 2);
    let dt = power.times[0]
        .duration_since(rec.rails[0].times[0])
        .expect("order")
        .as_secs_f64();
    close(power.values[0], 1.5 / dt, 1e-9);
    let core = traces
        .iter()
        .find(|t| t.quantity == Quantity::Power && t.name == "package-0/core")
        .expect("core power");
    assert_eq!(core.len(), 1);
}

#[test]
fn garbage_missing_and_failing_readings_are_left_out_and_said_once() {
    let (_dir, root) = copy_of("jetson-agx-orin");
    let hwmon = root.join("sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3");
    let zone1 = root.join("sys/class/thermal/thermal_zone1/temp");
    let (mut source, mut traces, _) = open_sysfs(PowerChoice::Jetson, &root);
    source.sample_into(&mut traces);
    let good = std::fs::read_to_string(hwmon.join("curr1_input")).expect("read");
    for round in 0..3 {
        write(&hwmon.join("curr1_input"), "garbage");
        std::fs::remove_file(&zone1).ok();
        write(&hwmon.join("in2_input"), "");
        source.sample_into(&mut traces);
        assert!(round < 3);
    }
    std::fs::write(hwmon.join("curr1_input"), &good).expect("restore");
    write(&zone1, "69125");
    write(&hwmon.join("in2_input"), "4976");
    source.sample_into(&mut traces);

    let find = |q: Quantity, n: &str| {
        traces
            .iter()
            .find(|t| t.quantity == q && t.name == n)
            .expect("trace")
    };
    // First and last rounds only; the three bad ones left out, nothing filled in.
    assert_eq!(find(Quantity::Power, "VDD_GPU_SOC").len(), 2);
    assert_eq!(find(Quantity::Temp, "GPU-therm").len(), 2);
    assert_eq!(find(Quantity::Power, "VDD_CPU_CV").len(), 2);
    assert_eq!(find(Quantity::Power, "VIN_SYS_5V0").len(), 5);
    let notes = source.take_notes();
    // Three failing files, and the powered-down CV2 zone from the first round.
    assert_eq!(notes.len(), 4, "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("CV2-therm")), "{notes:?}");
    let one = |needle: &str, rail: &str| {
        notes
            .iter()
            .filter(|n| n.contains(needle) && n.contains(rail))
            .count()
            == 1
    };
    assert!(
        one("expected an integer, found \"garbage\"", "VDD_GPU_SOC"),
        "{notes:?}"
    );
    assert!(one("curr1_input", "VDD_GPU_SOC"), "{notes:?}");
    assert!(
        one("thermal_zone1/temp is missing", "GPU-therm"),
        "{notes:?}"
    );
    assert!(one("found \"\"", "VDD_CPU_CV"), "{notes:?}");
}

#[test]
fn missing_sources_are_not_measured_and_the_run_goes_on() {
    let empty = tempfile::tempdir().expect("tempdir");
    for (power, needle) in [
        (PowerChoice::Jetson, "no Jetson power monitor"),
        (PowerChoice::Rapl, "no RAPL"),
    ] {
        let t = Telemetry::open_with(&PowerOptions::with_root(power, empty.path()));
        let setup = t.power();
        assert!(setup.measured.is_empty());
        assert!(
            setup.not_measured.iter().any(|n| n.contains(needle)),
            "{:?}",
            setup.not_measured
        );
        let reason = t.unavailable_reason().expect("nothing measured");
        assert!(reason.contains(needle), "{reason}");
        let rec = t.start(&[], Duration::from_millis(10)).stop();
        assert!(rec.samples.is_empty() && rec.rails.is_empty());
        assert!(
            rec.problems.iter().any(|p| p.contains(needle)),
            "{:?}",
            rec.problems
        );
        assert!(rec.energy(None).sources.is_empty());
        assert!(t.lock_clocks(&[0], 1000, 1000).is_err());
    }

    // Off on purpose.
    let t = Telemetry::open_with(&PowerOptions::with_root(PowerChoice::None, empty.path()));
    assert!(
        t.unavailable_reason()
            .expect("off")
            .contains("--power none")
    );

    // auto on a RAPL machine: RAPL measured; what it did not find is information, not a
    // problem of the recording.
    let t = Telemetry::open_with(&PowerOptions::with_root(
        PowerChoice::Auto,
        &fixture("rapl-server-2s"),
    ));
    let setup = t.power();
    assert!(setup.measured.contains(&PowerSource::Rapl));
    assert!(
        setup
            .absent
            .iter()
            .any(|a| a.contains("no Jetson power monitor"))
    );
    if !setup.measured.contains(&PowerSource::Nvml) {
        assert!(
            setup.absent.iter().any(|a| a.contains("GPU")),
            "{:?}",
            setup.absent
        );
    }
    assert!(setup.not_measured.is_empty(), "{:?}", setup.not_measured);
    let rec = record(&t, 25);
    assert!(
        rec.problems.iter().all(|p| !p.contains("Jetson")),
        "{:?}",
        rec.problems
    );
    assert_eq!(
        t.environment()["power_sources"]
            .as_str()
            .map(|s| s.contains("rapl")),
        Some(true)
    );

    // A Jetson rail whose current file is gone is named, the others are read.
    let (_dir, root) = copy_of("jetson-agx-orin");
    std::fs::remove_file(root.join("sys/bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon4/curr2_input"))
        .expect("rm");
    std::fs::remove_file(root.join("sys/kernel/debug/bpmp/debug/clk/emc/rate")).expect("rm");
    let (_, traces, setup) = open_sysfs(PowerChoice::Jetson, &root);
    assert!(
        setup
            .not_measured
            .iter()
            .any(|n| n.contains("VDDQ_VDD2_1V8AO") && n.contains("curr2_input is missing")),
        "{:?}",
        setup.not_measured
    );
    assert!(
        setup
            .not_measured
            .iter()
            .any(|n| n.contains("EMC clock and load not measured")),
        "{:?}",
        setup.not_measured
    );
    assert_eq!(
        traces
            .iter()
            .filter(|t| t.quantity == Quantity::Power)
            .count(),
        3
    );
    assert!(!traces.iter().any(|t| t.name == "emc"));
}

/// Runs `perfgate telemetry` as an unprivileged user when the tests run as root (root reads
/// files whatever their mode), so a file of mode 000 is refused as it is to a normal user.
fn telemetry_command(args: &[&str], root: &Path) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_perfgate"));
    cmd.arg("telemetry")
        .args(args)
        .arg("--sysfs-root")
        .arg(root)
        .env_remove("PERFGATE_FAKE_NVML")
        .env_remove("PERF_POWER");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    cmd.output().expect("run perfgate telemetry")
}

#[test]
fn a_root_only_rapl_counter_is_not_measured_and_says_why() {
    let (dir, root) = copy_of("rapl-intel-laptop");
    // The unprivileged user must reach the tree.
    for p in [dir.path(), root.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let energy = root.join("sys/class/powercap/intel-rapl:0/energy_uj");
    std::fs::set_permissions(&energy, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    let out = telemetry_command(
        &[
            "--power",
            "rapl",
            "--samples",
            "3",
            "--interval-ms",
            "10",
            "--format",
            "json",
        ],
        &root,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let not_measured: Vec<&str> = doc["power"]["not_measured"]
        .as_array()
        .expect("not_measured")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        not_measured
            .iter()
            .any(|n| n.contains("RAPL package-0 not measured")
                && n.contains("intel-rapl:0/energy_uj is readable by root only")),
        "{not_measured:?}"
    );
    let rails: Vec<&str> = doc["recording"]["rails"]
        .as_array()
        .expect("rails")
        .iter()
        .filter(|t| t["quantity"] == "energy")
        .filter_map(|t| t["name"].as_str())
        .collect();
    // The package is not there; its core and uncore and psys are; MMIO's package-0 is the
    // same counter and is not read in its place.
    assert_eq!(rails, vec!["package-0/core", "package-0/uncore", "psys"]);
    // No package: psys is the total now.
    assert_eq!(
        doc["energy"]["sources"][0]["rails"],
        serde_json::json!(["psys"])
    );
    let problems = doc["recording"]["problems"].as_array().expect("problems");
    assert!(problems.iter().any(|p| {
        p.as_str()
            .is_some_and(|p| p.contains("readable by root only"))
    }));
}

#[test]
fn traces_split_gpu_samples_and_the_power_csv_has_a_row_per_reading() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut samples = Vec::new();
    for i in 0..3u64 {
        let mut s = Sample::empty(0, t0 + Duration::from_secs(i));
        s.power_w = Some(300.0 + i as f64);
        s.energy_mj = Some(1_000_000 + 300_000 * i);
        s.sm_mhz = Some(1980);
        s.gpu_temp_c = Some(60 + i as u32);
        samples.push(s);
    }
    let mut zone = Trace::new(
        PowerSource::Rapl,
        Family::Thermal,
        Quantity::Temp,
        "x86_pkg_temp",
        "t",
    );
    zone.push(t0, 45.0);
    zone.push(t0 + Duration::from_secs(2), 71.5);
    let mut rec = rails_recording(vec![zone], PowerSetup::new(PowerChoice::Auto));
    rec.samples = samples;
    rec.gpus = vec![0];
    let traces = rec.traces();
    let find = |q: Quantity, n: &str| {
        traces
            .iter()
            .find(|t| t.quantity == q && t.name == n)
            .unwrap_or_else(|| panic!("{q:?} {n}"))
    };
    assert_eq!(
        find(Quantity::Power, "gpu0").values,
        vec![300.0, 301.0, 302.0]
    );
    assert_eq!(find(Quantity::Freq, "gpu0_sm").len(), 3);
    assert_eq!(find(Quantity::Energy, "gpu0").values[2], 1600.0);
    assert!(!traces.iter().any(|t| t.name == "gpu0_mem"));
    assert_eq!(rec.hottest(), Some(("x86_pkg_temp".to_string(), 71.5)));
    let json = serde_json::to_value(find(Quantity::Power, "gpu0")).expect("json");
    assert_eq!(json["timestamps_ns"][1], 1_800_000_001_000_000_000u64);
    // NVML's energy in the report agrees with the summary's GPU_ENERGY.
    let nvml = rec.energy(None);
    let nvml = nvml.source(PowerSource::Nvml).expect("nvml");
    close(nvml.joules.expect("joules"), 600.0, 1e-12);
    close(rec.summary(None).energy_j.expect("energy"), 600.0, 1e-12);

    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = PowerMonitoringWriter::open(dir.path()).expect("open");
    w.write("case[a]", "measure", 1, &rec).expect("write");
    let text = std::fs::read_to_string(w.path()).expect("read");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(header, POWER_MONITORING_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[1][6], "x86_pkg_temp");
    assert_eq!(&rows[1][9], "1800000002000000000");
    assert_eq!(rows[1][10].parse::<f64>().expect("value"), 71.5);
}

#[test]
fn telemetry_command_shows_what_is_measured() {
    let root = fixture("jetson-agx-orin");
    let out = telemetry_command(
        &["--power", "jetson", "--samples", "2", "--interval-ms", "10"],
        &root,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("measured: jetson"), "{text}");
    assert!(text.contains("VDDQ_VDD2_1V8AO"), "{text}");
    assert!(text.contains("energy jetson"), "{text}");
    assert!(text.contains("JETSON_ENERGY"), "{text}");
    assert!(!text.contains("clock_events"), "{text}");

    let empty = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(empty.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = telemetry_command(&["--power", "rapl", "--samples", "1"], empty.path());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not measured: no RAPL"), "{text}");
}

/// This machine's own RAPL counters, where it has them.
#[test]
fn real_rapl_counters_when_this_machine_has_them() {
    let has_rapl = std::fs::read_dir("/sys/class/powercap")
        .map(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().contains("rapl:"))
        })
        .unwrap_or(false);
    if !has_rapl {
        eprintln!(
            "this machine has no RAPL (/sys/class/powercap has no rapl zone): the real-counter assertion is skipped"
        );
        return;
    }
    let (source, setup) =
        SysfsSource::open(&PowerOptions::with_root(PowerChoice::Rapl, Path::new("/")));
    if !setup.measured.contains(&PowerSource::Rapl) {
        // Present but root-only: said, with the reason.
        assert!(
            setup
                .not_measured
                .iter()
                .any(|n| n.contains("readable by root only")),
            "{:?}",
            setup.not_measured
        );
        return;
    }
    let mut source = source.expect("source");
    let mut traces = source.traces();
    source.sample_into(&mut traces);
    // Some work so the package spends energy.
    let started = std::time::Instant::now();
    let mut x = 0u64;
    while started.elapsed() < Duration::from_millis(300) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    assert_ne!(x, 42);
    source.sample_into(&mut traces);
    let rec = rails_recording(traces, setup);
    let rapl = rec.energy(None);
    let rapl = rapl.source(PowerSource::Rapl).expect("rapl");
    let watts = rapl.mean_w.expect("mean power");
    // A busy package draws something, and less than any CPU's limit.
    assert!(watts > 0.1 && watts < 2000.0, "{watts} W");
}
