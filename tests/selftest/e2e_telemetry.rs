//! GPU telemetry through the harness, with a scripted NVML (`PERFGATE_FAKE_NVML`): the GPU
//! names the test prefix and joins the fingerprint, every benchmark step is sampled into
//! gpu_monitoring.csv and energy metrics, throttling makes a result INVALID (or a warning),
//! a GPU lost mid-run costs telemetry but not the result, and clock locking is refused loudly.

use std::path::Path;

use perfgate::record::Verdict;
use perfgate::record::VerdictRecord;

use super::e2e::run;

const LIST: &str = "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4\n";

fn with_script(dir: &Path, script: &str, extra: &[&str]) -> ((u64, u64, u64), String) {
    let path = dir.join("nvml.json");
    std::fs::write(&path, script).expect("script");
    let path = path.display().to_string();
    run(dir, LIST, extra, &[("PERFGATE_FAKE_NVML", &path)])
}

fn throughput(out: &Path) -> VerdictRecord {
    perfgate::results::verdicts::read(&out.join("gate.jsonl"))
        .expect("gate.jsonl")
        .into_iter()
        .find(|r| r.metric == "TOKEN_THROUGHPUT")
        .expect("a TOKEN_THROUGHPUT verdict")
}

#[test]
fn a_sampled_run_names_its_gpu_and_writes_energy_and_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = with_script(
        dir.path(),
        r#"{"gpus": 1, "gpu_name": "H100 80GB HBM3", "sm_mhz": 1980, "mem_mhz": 2619,
            "power_w": 500.0, "environment": {"driver_version": "580.159.04"}}"#,
        &["--telemetry-interval-ms", "10"],
    );
    assert_eq!(counts, (1, 0, 0), "{text}");
    // No --test-prefix: the GPU names it, in upstream's style.
    assert!(
        text.contains("H100_80GB_HBM3/perf/test_perf.py::test_perf["),
        "{text}"
    );
    let out = dir.path().join("out");
    let monitoring = std::fs::read_to_string(out.join("gpu_monitoring.csv")).expect("samples");
    let mut lines = monitoring.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("gpu_id,timestamp,gpu_clock__MHz")),
        "{monitoring}"
    );
    assert!(lines.count() >= 1, "{monitoring}");
    assert!(out.join("session_properties.csv").exists());
    let jsonl = std::fs::read_to_string(out.join("results.jsonl")).expect("jsonl");
    for m in ["GPU_ENERGY", "JOULES_PER_OUTPUT_TOKEN", "SM_CLOCK_MEAN"] {
        assert!(
            jsonl.contains(&format!("\"metric\":\"{m}\"")),
            "{m}: {jsonl}"
        );
    }
    // Upstream's sm_clk / mem_clk columns carry the last sample's clocks.
    let csv = std::fs::read_to_string(out.join("perf_script_test_results.csv")).expect("csv");
    assert!(csv.contains(",1980,2619,"), "{csv}");
    let t = throughput(&out);
    assert!(t.fingerprint.contains("driver_version=580.159.04"), "{t:?}");
    assert!(t.fingerprint.contains("gpu=H100_SXM"), "{t:?}");
    // test-db's GPU count comes from NVML too (and joins the fingerprint).
    assert!(t.fingerprint.contains("system_gpu_count=1"), "{t:?}");
    // The physical limits are known from the detected GPU.
    assert!(t.roofline_pct.is_some(), "{t:?}");
}

#[test]
fn throttling_makes_a_result_invalid_or_a_warning() {
    let throttled = r#"{"gpus": 1, "gpu_name": "H100 80GB HBM3", "sm_mhz": 700,
        "throttle_reasons": 64}"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = with_script(dir.path(), throttled, &["--telemetry-interval-ms", "10"]);
    assert_eq!(counts, (0, 1, 0), "{text}");
    let t = throughput(&dir.path().join("out"));
    assert_eq!(t.verdict, Verdict::Invalid, "{}", t.explanation);
    assert!(
        t.evidence.iter().any(|e| e.contains("hw_thermal_slowdown")),
        "{:?}",
        t.evidence
    );
    assert!(
        t.evidence
            .iter()
            .any(|e| e.contains("below the 1005 MHz target")),
        "{:?}",
        t.evidence
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = with_script(
        dir.path(),
        throttled,
        &["--telemetry-interval-ms", "10", "--on-throttle", "warn"],
    );
    assert_eq!(counts, (1, 0, 0), "{text}");
    assert_eq!(throughput(&dir.path().join("out")).verdict, Verdict::New);
    let jsonl = std::fs::read_to_string(dir.path().join("out/results.jsonl")).expect("jsonl");
    assert!(
        jsonl.contains("GPU telemetry: hw_thermal_slowdown"),
        "{jsonl}"
    );
}

#[test]
fn a_lost_gpu_costs_telemetry_not_the_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = with_script(
        dir.path(),
        r#"{"gpus": 1, "gpu_name": "H100 80GB HBM3", "lose_gpu": {"gpu": 0, "after": 1}}"#,
        &["--telemetry-interval-ms", "10"],
    );
    assert_eq!(counts, (1, 0, 0), "{text}");
    let jsonl = std::fs::read_to_string(dir.path().join("out/results.jsonl")).expect("jsonl");
    assert!(jsonl.contains("GPU telemetry:"), "{jsonl}");
}

#[test]
fn clock_locking_is_off_by_default_and_a_refusal_stops_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = r#"{"gpus": 1, "gpu_name": "H100 80GB HBM3", "lock_error": "NoPermission"}"#;
    let (counts, text) = with_script(dir.path(), script, &[]);
    assert_eq!(counts, (1, 0, 0), "not locking by default: {text}");
    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = with_script(dir.path(), script, &["--lock-clocks"]);
    assert_eq!(counts, (0, 0, 0), "{text}");
    assert!(text.contains("--lock-clocks"), "{text}");
    assert!(text.contains("NoPermission"), "{text}");
    // Allowed: locked at the GPU's target for the run.
    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = with_script(
        dir.path(),
        r#"{"gpus": 1, "gpu_name": "H100 80GB HBM3"}"#,
        &["--lock-clocks"],
    );
    assert_eq!(counts, (1, 0, 0), "{text}");
    assert!(
        text.contains("application clocks locked at SM 1005 MHz, memory 2619 MHz"),
        "{text}"
    );
    assert!(
        text.contains("original application clocks restored"),
        "{text}"
    );
}

#[test]
fn power_auto_samples_the_gpus_and_rapl_into_metrics_and_power_monitoring_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rapl = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysfs/rapl-server-2s");
    let script = dir.path().join("nvml.json");
    std::fs::write(&script, r#"{"gpus": 1, "gpu_name": "H100 80GB HBM3"}"#).expect("script");
    let (counts, text) = run(
        dir.path(),
        LIST,
        &["--telemetry-interval-ms", "10", "--power", "auto"],
        &[
            ("PERFGATE_FAKE_NVML", &script.display().to_string()),
            ("PERFGATE_SYSFS_ROOT", &rapl.display().to_string()),
        ],
    );
    assert_eq!(counts, (1, 0, 0), "{text}");
    let out = dir.path().join("out");
    let power = std::fs::read_to_string(out.join("power_monitoring.csv")).expect("power csv");
    assert!(
        power.starts_with("test_id,step,repetition,source,family,quantity,name,unit,"),
        "{power}"
    );
    for zone in ["package-0", "package-0/dram", "package-1", "package-1/dram"] {
        assert!(
            power.contains(&format!(",rapl,rapl,energy,{zone},J,")),
            "{zone}: {power}"
        );
    }
    let jsonl = std::fs::read_to_string(out.join("results.jsonl")).expect("jsonl");
    for m in ["GPU_ENERGY", "RAPL_ENERGY", "RAPL_POWER_MEAN"] {
        assert!(
            jsonl.contains(&format!("\"metric\":\"{m}\"")),
            "{m}: {jsonl}"
        );
    }
    // auto found no Jetson here: information, not a warning of the measurement.
    assert!(!jsonl.contains("Jetson"), "{jsonl}");
}
