//! GPU telemetry without a GPU: summaries by hand, the recorder on scripted sources, the files,
//! clock locking on a fake, and NVML's absence on this machine.

use std::process::Command;
use std::time::{Duration, SystemTime};

use perfgate::models::ModelConfigs;
use perfgate::telemetry::{
    GPU_MONITORING_COLUMNS, GpuMonitoringWriter, LoseGpu, MinMeanMax, Reading, Recording,
    SESSION_COLUMNS, Sample, Script, ScriptedSource, Telemetry, clock_evidence, clock_target,
    restore_all_locked, write_session_properties,
};

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn at(secs: f64) -> SystemTime {
    t0() + Duration::from_secs_f64(secs)
}

fn sample(gpu: u32, secs: f64) -> Sample {
    Sample::empty(gpu, at(secs))
}

fn recording(samples: Vec<Sample>, seconds: f64) -> Recording {
    let mut gpus: Vec<u32> = samples.iter().map(|s| s.gpu).collect();
    gpus.sort();
    gpus.dedup();
    Recording {
        gpus,
        interval: Duration::from_secs(1),
        samples,
        rails: Vec::new(),
        power: Default::default(),
        started: t0(),
        ended: at(seconds),
        problems: Vec::new(),
    }
}

fn close(a: f64, b: f64, rel: f64) {
    assert!((a - b).abs() <= rel * b.abs().max(1e-12), "{a} vs {b}");
}

fn scripted(script: Script) -> Telemetry {
    Telemetry::from_source(Box::new(ScriptedSource::new(script).expect("script")))
}

/// Records for about `run`, sampling every `interval`.
fn record(t: &Telemetry, gpus: &[u32], interval_ms: u64, run_ms: u64) -> Recording {
    let rec = t.start(gpus, Duration::from_millis(interval_ms));
    std::thread::sleep(Duration::from_millis(run_ms));
    rec.stop()
}

#[test]
fn summary_min_mean_max_over_gpus_and_total_power() {
    let mut samples = Vec::new();
    for (i, (sm0, sm1)) in [(1980, 1700), (1900, 1800), (1500, 1950)]
        .iter()
        .enumerate()
    {
        let secs = i as f64;
        let mut a = sample(0, secs);
        a.sm_mhz = Some(*sm0);
        a.power_w = Some(300.0 + 10.0 * secs);
        a.gpu_temp_c = Some(50 + i as u32);
        a.mem_used_bytes = Some((i as u64 + 1) << 30);
        let mut b = sample(1, secs);
        b.sm_mhz = Some(*sm1);
        b.power_w = Some(200.0);
        b.gpu_temp_c = Some(70);
        samples.push(a);
        samples.push(b);
    }
    let s = recording(samples, 2.0).summary(None);
    assert_eq!(s.samples, 6);
    close(s.seconds, 2.0, 1e-9);
    let sm = s.sm_mhz.clone().expect("sm");
    assert_eq!((sm.min, sm.max), (1500.0, 1980.0));
    close(
        sm.mean,
        (1980.0 + 1700.0 + 1900.0 + 1800.0 + 1500.0 + 1950.0) / 6.0,
        1e-12,
    );
    // Total over the two GPUs: 500, 510, 520.
    assert_eq!(
        s.power_w,
        Some(MinMeanMax {
            min: 500.0,
            mean: 510.0,
            max: 520.0
        })
    );
    assert_eq!(s.gpu_temp_c.as_ref().expect("temp").max, 70.0);
    assert_eq!(s.mem_used_gib.as_ref().expect("mem").max, 3.0);
    assert_eq!(s.mem_temp_c, None, "no reading is never invented");
    assert_eq!(
        s.last_sm_mhz,
        Some(1500),
        "the last sample of the first GPU"
    );
    let m = s.metrics();
    assert_eq!(m["SM_CLOCK_MIN"], 1500.0);
    assert_eq!(m["GPU_POWER_MEAN"], 510.0);
    assert_eq!(m["GPU_POWER_MAX"], 520.0);
    assert_eq!(m["GPU_TEMP_MAX"], 70.0);
    assert_eq!(m["GPU_MEMORY_USED_MAX"], 3.0);
    assert_eq!(m["TELEMETRY_SAMPLES"], 6.0);
    assert!(!m.contains_key("MEM_TEMP_MAX"));
    assert!(!m.contains_key("MEM_CLOCK_MEAN"));
}

#[test]
fn energy_from_counter_deltas_and_joules_per_token() {
    // GPU 0 uses 1000 + 2000 + 1500 mJ, GPU 1 3000 mJ; the counters start anywhere.
    let counters = [
        (0, [10_000u64, 11_000, 13_000, 14_500]),
        (1, [7_000, 8_000, 9_000, 10_000]),
    ];
    let mut samples = Vec::new();
    for i in 0..4 {
        for (gpu, c) in &counters {
            let mut s = sample(*gpu, i as f64);
            s.energy_mj = Some(c[i]);
            s.power_w = Some(9999.0); // ignored: the counter wins
            samples.push(s);
        }
    }
    let s = recording(samples, 3.0).summary(Some(750.0));
    assert_eq!(s.energy_source, Some("counter"));
    close(s.energy_j.expect("energy"), 7.5, 1e-12);
    close(s.joules_per_output_token.expect("J/token"), 0.01, 1e-12);
    close(s.output_tokens_per_joule.expect("token/J"), 100.0, 1e-12);
    let m = s.metrics();
    close(m["GPU_ENERGY"], 7.5, 1e-12);
    close(m["JOULES_PER_OUTPUT_TOKEN"], 0.01, 1e-12);
    close(m["OUTPUT_TOKENS_PER_JOULE"], 100.0, 1e-12);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    // No token count, or zero tokens: no per-token figures.
    let none = recording(Vec::new(), 1.0).summary(Some(0.0));
    assert_eq!(none.joules_per_output_token, None);
    assert!(none.metrics().is_empty());
}

#[test]
fn power_integral_fallback_is_within_one_percent_of_the_exact_energy() {
    // p(t) = 400 + 100 sin(t) W over 10 s, sampled every 0.1 s, no energy counter.
    let p = |t: f64| 400.0 + 100.0 * t.sin();
    let mut samples = Vec::new();
    let mut trapezoid = 0.0;
    for i in 0..=100 {
        let t = i as f64 * 0.1;
        let mut s = sample(0, t);
        s.power_w = Some(p(t));
        samples.push(s);
        if i > 0 {
            trapezoid += (p(t - 0.1) + p(t)) / 2.0 * 0.1;
        }
    }
    let exact = 400.0 * 10.0 + 100.0 * (1.0 - 10f64.cos());
    let s = recording(samples, 10.0).summary(None);
    assert_eq!(s.energy_source, Some("power integral"));
    let e = s.energy_j.expect("energy");
    close(e, trapezoid, 1e-9);
    close(e, exact, 0.01);
}

#[test]
fn counter_that_resets_is_not_counted_and_reported() {
    let mut samples = Vec::new();
    for (i, c) in [5_000u64, 6_000, 200, 1_200].iter().enumerate() {
        let mut s = sample(0, i as f64);
        s.energy_mj = Some(*c);
        samples.push(s);
    }
    let s = recording(samples, 3.0).summary(None);
    close(s.energy_j.expect("energy"), 2.0, 1e-12);
    assert_eq!(s.energy_source, Some("counter"));
    assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
    assert!(
        s.problems[0].contains("energy counter went backwards")
            && s.problems[0].contains("6000 mJ to 200 mJ"),
        "{}",
        s.problems[0]
    );
}

#[test]
fn no_energy_when_a_gpu_has_neither_counter_nor_power() {
    let mut a = sample(0, 0.0);
    a.power_w = Some(100.0);
    let mut b = sample(0, 1.0);
    b.power_w = Some(100.0);
    let s = recording(vec![a, b, sample(1, 0.0), sample(1, 1.0)], 1.0).summary(Some(10.0));
    assert_eq!(s.energy_j, None);
    assert!(
        s.problems
            .iter()
            .any(|p| p.contains("no energy figure: GPU 1")),
        "{:?}",
        s.problems
    );
}

#[test]
fn throttle_shares_and_clock_evidence() {
    // 10 samples: SM at 1005 MHz but 4 at 850; hw_thermal_slowdown (0x40) in 3, sw_power_cap
    // (0x4) in 1, applications_clocks_setting (0x2) in all; one extra idle sample (gpu_idle, 0x1)
    // at 345 MHz, which the clock check leaves out.
    let mut samples = Vec::new();
    for i in 0..10u32 {
        let mut s = sample(0, f64::from(i));
        s.sm_mhz = Some(if i < 4 { 850 } else { 1005 });
        let mut mask = 0x2;
        if i >= 7 {
            mask |= 0x40;
        }
        if i == 0 {
            mask |= 0x4;
        }
        s.throttle_reasons = Some(mask);
        samples.push(s);
    }
    let mut idle = sample(0, 10.0);
    idle.sm_mhz = Some(345);
    idle.throttle_reasons = Some(0x1);
    samples.push(idle);
    let rec = recording(samples, 10.0);
    let s = rec.summary(None);
    assert_eq!(
        s.throttle,
        vec![
            ("sw_power_cap".to_string(), 1.0 / 11.0),
            ("hw_thermal_slowdown".to_string(), 3.0 / 11.0)
        ]
    );
    let evidence = clock_evidence(&s, &rec, Some(1005), 7.0, 0.2);
    assert_eq!(evidence.len(), 2, "{evidence:?}");
    assert!(
        evidence[0].contains("SM clock more than 7% below the 1005 MHz target")
            && evidence[0].contains("4 of 10 busy samples (40%")
            && evidence[0].contains("1 idle samples not counted"),
        "{}",
        evidence[0]
    );
    assert!(
        evidence[1].starts_with("hw_thermal_slowdown throttling in 3 of 11 samples (27%"),
        "{}",
        evidence[1]
    );
    // Within the allowed share, or no target: nothing to say.
    assert!(clock_evidence(&s, &rec, Some(1005), 7.0, 0.5).is_empty());
    assert_eq!(clock_evidence(&s, &rec, None, 7.0, 0.2).len(), 1);
    // 850 is within 20% of 1005.
    assert_eq!(clock_evidence(&s, &rec, Some(1005), 20.0, 0.2).len(), 1);
}

#[test]
fn scripted_recording_samples_at_once_and_at_the_interval() {
    let t = scripted(Script {
        gpus: 2,
        ..Script::default()
    });
    let rec = record(&t, &[0, 1], 50, 230);
    // Rounds at ~0, 50, ..., 200 ms and one at stop: 6 per GPU, give or take scheduling.
    for gpu in [0, 1] {
        let n = rec.samples_of(gpu).count();
        assert!((4..=7).contains(&n), "GPU {gpu}: {n} samples");
    }
    assert!(rec.problems.is_empty(), "{:?}", rec.problems);
    let s = rec.summary(Some(1000.0));
    assert_eq!(s.energy_source, Some("counter"));
    // 2 GPUs x 500 W over the sampled span (~0.23 s); the counter is in whole mJ.
    let e = s.energy_j.expect("energy");
    assert!((150.0..=300.0).contains(&e), "{e} J");
    assert_eq!(s.sm_mhz.as_ref().map(|m| m.mean), Some(1980.0));
    assert!(s.throttle.is_empty());
}

#[test]
fn gpu_lost_mid_run_stops_its_samples_and_is_reported() {
    let t = scripted(Script {
        gpus: 2,
        lose_gpu: Some(LoseGpu { gpu: 1, after: 3 }),
        ..Script::default()
    });
    let rec = record(&t, &[0, 1], 20, 200);
    assert_eq!(
        rec.samples_of(1).count(),
        3,
        "no invented samples after the loss"
    );
    assert!(rec.samples_of(0).count() > 5);
    let lost: Vec<&String> = rec
        .problems
        .iter()
        .filter(|p| p.contains("GPU 1"))
        .collect();
    assert_eq!(lost.len(), 1, "{:?}", rec.problems);
    assert!(
        lost[0].contains("stopped answering after 3 samples") && lost[0].contains("GPU_IS_LOST"),
        "{}",
        lost[0]
    );
    let s = rec.summary(None);
    assert!(s.problems.iter().any(|p| p.contains("stopped answering")));
}

#[test]
fn slow_sampling_is_reported_with_the_achieved_interval() {
    let t = scripted(Script {
        delay_ms: 60,
        ..Script::default()
    });
    let rec = record(&t, &[0], 20, 400);
    let slow: Vec<&String> = rec
        .problems
        .iter()
        .filter(|p| p.contains("slower than asked"))
        .collect();
    assert_eq!(slow.len(), 1, "{:?}", rec.problems);
    assert!(slow[0].contains("instead of every 0.020 s"), "{}", slow[0]);
    // ~60 ms per reading, not 20.
    let achieved: f64 = slow[0]
        .split("one reading every ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("achieved interval");
    assert!((0.05..0.2).contains(&achieved), "{achieved}");
    // Readings that keep up are not reported.
    let fast = record(&scripted(Script::default()), &[0], 20, 200);
    assert!(fast.problems.is_empty(), "{:?}", fast.problems);
}

#[test]
fn unsupported_field_is_none_and_reported_once_per_gpu() {
    let t = scripted(Script {
        gpus: 2,
        unsupported: vec!["mem_temp_c".into(), "fan_pct".into()],
        ..Script::default()
    });
    let rec = record(&t, &[], 20, 120);
    assert!(rec.samples.len() >= 4);
    assert!(
        rec.samples
            .iter()
            .all(|s| s.mem_temp_c.is_none() && s.fan_pct.is_none())
    );
    assert!(rec.samples.iter().all(|s| s.gpu_temp_c.is_some()));
    assert_eq!(rec.problems.len(), 4, "{:?}", rec.problems);
    assert!(
        rec.problems
            .contains(&"GPU 1: no mem_temp_c reading (scripted: not supported)".to_string())
    );
    assert!(!rec.summary(None).metrics().contains_key("MEM_TEMP_MAX"));
}

#[test]
fn energy_counter_reset_during_recording_is_reported() {
    let t = scripted(Script {
        energy_reset_after: Some(2),
        ..Script::default()
    });
    let rec = record(&t, &[0], 20, 120);
    assert!(
        rec.problems
            .iter()
            .any(|p| p.contains("GPU 0's energy counter went backwards")),
        "{:?}",
        rec.problems
    );
}

#[test]
fn replayed_samples_come_back_in_order_and_absent_fields_stay_none() {
    let readings: Vec<Reading> = [1980, 1800, 1500]
        .iter()
        .map(|&sm| Reading {
            sm_mhz: Some(sm),
            power_w: Some(700.0),
            ..Reading::default()
        })
        .collect();
    let t = scripted(Script {
        samples: readings,
        ..Script::default()
    });
    let rec = record(&t, &[0], 20, 150);
    let sm: Vec<u32> = rec.samples.iter().filter_map(|s| s.sm_mhz).collect();
    assert_eq!(&sm[..3], &[1980, 1800, 1500]);
    assert!(
        sm[3..].iter().all(|&m| m == 1500),
        "the last reading repeats"
    );
    assert!(
        rec.samples
            .iter()
            .all(|s| s.energy_mj.is_none() && s.mem_mhz.is_none())
    );
    assert_eq!(rec.summary(None).energy_source, Some("power integral"));
}

#[test]
fn without_nvml_telemetry_is_unavailable_and_recordings_are_empty() {
    let t = Telemetry::open_nvml();
    let Some(reason) = t.unavailable_reason() else {
        eprintln!("NVML is present on this machine: nothing to check");
        return;
    };
    assert!(reason.starts_with("no GPU telemetry: "), "{reason}");
    assert_eq!(t.device_count(), 0);
    let rec = t.start(&[0], Duration::from_millis(10)).stop();
    assert!(rec.samples.is_empty());
    assert_eq!(rec.problems, vec![reason.clone()]);
    let s = rec.summary(Some(100.0));
    assert_eq!((s.samples, s.energy_j), (0, None));
    assert!(s.metrics().is_empty());
    let lock = t.lock_clocks(&[0], 1005, 2619);
    assert!(lock.is_err_and(|e| e.contains(&reason)));
}

#[test]
fn environment_has_host_facts_and_the_scripted_gpu() {
    let env = Telemetry::unavailable("no GPU telemetry: test".into()).environment();
    for key in ["hostname", "cpu_model", "cpu_count", "os", "kernel"] {
        assert!(env.contains_key(key), "{key} missing: {env:?}");
    }
    assert!(!env.contains_key("gpu_name"));
    let env = scripted(Script {
        gpus: 8,
        gpu_name: "H100 80GB HBM3".into(),
        ..Script::default()
    })
    .environment();
    assert_eq!(env["gpu_name"], "H100 80GB HBM3");
    assert_eq!(env["gpu_type"], "H100_80GB_HBM3");
    assert_eq!(env["gpu_count"], 8);
    assert!(env.contains_key("hostname"));
}

#[test]
fn gpu_monitoring_csv_has_upstream_columns_first_and_empty_cells() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut full = sample(0, 0.25);
    full.sm_mhz = Some(1980);
    full.mem_mhz = Some(2619);
    full.graphics_mhz = Some(1980);
    full.gpu_util_pct = Some(99);
    full.mem_util_pct = Some(40);
    full.encoder_util_pct = Some(0);
    full.decoder_util_pct = Some(0);
    full.gpu_temp_c = Some(61);
    full.mem_temp_c = Some(72);
    full.pstate = Some(0);
    full.power_w = Some(512.5);
    full.processes = Some(1);
    full.energy_mj = Some(123_456);
    full.mem_used_bytes = Some(70 << 30);
    full.throttle_reasons = Some(0x44);
    let rec = recording(vec![full, sample(1, 0.25)], 1.0);
    let mut w = GpuMonitoringWriter::open(dir.path()).expect("open");
    w.write("llama-bench-x", "bench", 2, &rec).expect("write");
    drop(w);
    // Reopened (a later case): appended, the header once.
    let mut w = GpuMonitoringWriter::open(dir.path()).expect("reopen");
    w.write("llama-bench-y", "bench", 1, &rec).expect("write");
    let text = std::fs::read_to_string(dir.path().join("gpu_monitoring.csv")).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(
        lines[0],
        "gpu_id,timestamp,gpu_clock__MHz,memory_clock__MHz,graphics_clock__MHz,gpu_utilization__pct,memory_utilization__pct,encoder_utilization__pct,decoder_utilization__pct,gpu_temperature__C,memory_temperature__C,fan_speed__pct,perf_state,power_draw__W,process_num,test_id,step,repetition,energy_consumption__mJ,memory_used__MiB,clocks_event_reasons"
    );
    assert_eq!(lines[0].split(',').count(), GPU_MONITORING_COLUMNS.len());
    assert_eq!(
        lines[1],
        "0,2027-01-15 08:00:00.250,1980,2619,1980,99,40,0,0,61,72,,0,512.5,1,llama-bench-x,bench,2,123456,71680,68"
    );
    assert_eq!(
        lines[2],
        "1,2027-01-15 08:00:00.250,,,,,,,,,,,,,,llama-bench-x,bench,2,,,"
    );
    assert!(lines[4].contains(",llama-bench-y,bench,1,"));
    // A file with another header is refused, not appended to.
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        other.path().join("gpu_monitoring.csv"),
        "gpu_id,timestamp\n",
    )
    .expect("write");
    let e = GpuMonitoringWriter::open(other.path())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("gpu_monitoring.csv:1: the header is"), "{e}");
}

#[test]
fn session_properties_csv_has_upstream_columns_one_row_per_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = Telemetry::unavailable("none".into()).environment();
    env.insert("hostname".into(), "node1".into());
    env.insert("driver_version".into(), "580.65.06".into());
    env.insert("gpu_count".into(), 8.into());
    env.insert("cuda_version".into(), "13.0".into());
    env.insert("gpu_name".into(), "H100 80GB HBM3".into());
    write_session_properties(dir.path(), &env, at(0.0), at(60.0)).expect("write");
    write_session_properties(dir.path(), &env, at(100.0), at(160.0)).expect("write");
    let mut reader =
        csv::Reader::from_path(dir.path().join("session_properties.csv")).expect("csv");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(header, SESSION_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 2);
    let get = |name: &str| {
        &rows[0][SESSION_COLUMNS
            .iter()
            .position(|c| *c == name)
            .expect("column")]
    };
    assert_eq!(get("hostname"), "node1");
    assert_eq!(get("nvidia_driver_version"), "580.65.06");
    assert_eq!(get("nvidia_device_count"), "8");
    assert_eq!(get("cuda_version"), "13.0");
    assert_eq!(get("start_timestamp"), "2027-01-15 08:00:00 +0000");
    assert_eq!(get("end_timestamp"), "2027-01-15 08:01:00 +0000");
    assert_eq!(get("trt_change_id"), "");
    let gpu: serde_json::Value = serde_json::from_str(get("gpu_properties")).expect("json");
    assert_eq!(gpu["gpu_name"], "H100 80GB HBM3");
    let cpu: serde_json::Value = serde_json::from_str(get("cpu_properties")).expect("json");
    assert!(cpu["cpu_model"].is_string());
}

#[test]
fn clock_targets_come_from_the_gpu_table() {
    let configs = ModelConfigs::embedded();
    assert_eq!(clock_target(&configs, "H100 80GB HBM3"), Some((1005, 2619)));
    assert_eq!(
        clock_target(&configs, "NVIDIA H100 80GB HBM3"),
        Some((1005, 2619))
    );
    assert_eq!(clock_target(&configs, "H100_80GB_HBM3"), Some((1005, 2619)));
    assert_eq!(clock_target(&configs, "H200"), Some((1500, 3201)));
    assert_eq!(clock_target(&configs, "A100 80GB PCIe"), Some((900, 1512)));
    assert_eq!(
        clock_target(&configs, "B200"),
        None,
        "no Blackwell target upstream"
    );
    // The checkout's copy is the one built in.
    let local =
        ModelConfigs::discover(Some(std::path::Path::new("model_configs"))).expect("configs");
    assert_eq!(
        local.gpus.clock_targets.len(),
        configs.gpus.clock_targets.len()
    );
}

#[test]
fn lock_clocks_sets_and_restores_application_clocks() {
    let t = scripted(Script {
        gpus: 2,
        ..Script::default()
    });
    let lock = t.lock_clocks(&[0, 1], 1005, 2619).expect("lock");
    assert_eq!(lock.target(), (1005, 2619));
    let rec = record(&t, &[0, 1], 20, 60);
    assert!(rec.samples.iter().all(|s| s.sm_mhz == Some(1005)));
    drop(lock);
    let rec = record(&t, &[0, 1], 20, 60);
    assert!(
        rec.samples.iter().all(|s| s.sm_mhz == Some(1980)),
        "restored on drop"
    );

    // The Ctrl-C path restores every live lock; the guard's drop then does nothing.
    let lock = t.lock_clocks(&[1], 1005, 2619).expect("lock");
    restore_all_locked();
    assert!(
        record(&t, &[1], 20, 40)
            .samples
            .iter()
            .all(|s| s.sm_mhz == Some(1980))
    );
    drop(lock);

    // A failure is an error, and nothing stays locked.
    let denied = scripted(Script {
        lock_error: Some("NoPermission".into()),
        ..Script::default()
    });
    let e = denied.lock_clocks(&[0], 1005, 2619).expect_err("denied");
    assert!(
        e.contains("NoPermission") && e.contains("1005 MHz SM"),
        "{e}"
    );
    assert!(
        record(&denied, &[0], 20, 40)
            .samples
            .iter()
            .all(|s| s.sm_mhz == Some(1980))
    );
}

#[test]
fn fake_nvml_scripts_load_and_bad_ones_say_which_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("fake.json");
    std::fs::write(
        &good,
        r#"{"gpus": 2, "gpu_name": "H200", "power_w": 650.0, "unsupported": ["fan_pct"],
            "environment": {"driver_version": "580.1"}}"#,
    )
    .expect("write");
    let t = Telemetry::open_fake(&good);
    assert_eq!(t.unavailable_reason(), None);
    assert_eq!(t.device_count(), 2);
    let env = t.environment();
    assert_eq!(env["gpu_type"], "H200");
    assert_eq!(env["driver_version"], "580.1");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"gpus\": 2,\n \"power_w\": }").expect("write");
    let t = Telemetry::open_fake(&bad);
    let reason = t.unavailable_reason().expect("unavailable");
    assert!(
        reason.contains("PERFGATE_FAKE_NVML") && reason.contains(&format!("{}:2:", bad.display())),
        "{reason}"
    );
    assert_eq!(
        t.start(&[], Duration::from_millis(10)).stop().problems,
        vec![reason]
    );

    std::fs::write(&bad, r#"{"gpu": 2}"#).expect("write");
    let reason = Telemetry::open_fake(&bad)
        .unavailable_reason()
        .expect("unavailable");
    assert!(reason.contains("unknown field `gpu`"), "{reason}");
    std::fs::write(&bad, r#"{"unsupported": ["fan"]}"#).expect("write");
    let reason = Telemetry::open_fake(&bad)
        .unavailable_reason()
        .expect("unavailable");
    assert!(reason.contains("unknown field `fan`"), "{reason}");
    let missing = dir.path().join("missing.json");
    let reason = Telemetry::open_fake(&missing)
        .unavailable_reason()
        .expect("unavailable");
    assert!(reason.contains("missing.json: cannot read"), "{reason}");
}

#[test]
fn telemetry_command_uses_the_fake_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("fake.json");
    std::fs::write(&script, r#"{"gpus": 2, "gpu_name": "H100 80GB HBM3"}"#).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args([
            "telemetry",
            "--interval-ms",
            "20",
            "--samples",
            "4",
            "--format",
            "json",
        ])
        .env("PERFGATE_FAKE_NVML", &script)
        .output()
        .expect("run perfgate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["environment"]["gpu_type"], "H100_80GB_HBM3");
    let samples = doc["recording"]["samples"].as_array().expect("samples");
    assert!((6..=10).contains(&samples.len()), "{}", samples.len());
    assert_eq!(samples[0]["sm_mhz"], 1980);
    assert!(doc["metrics"]["GPU_ENERGY"].as_f64().is_some());

    std::fs::write(&script, "not json").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(["telemetry", "--samples", "1"])
        .env("PERFGATE_FAKE_NVML", &script)
        .output()
        .expect("run perfgate");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fake.json:1:"), "{text}");
}
