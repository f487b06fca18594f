//! A real run (not a dry run) through the harness, with the trtllm-bench test double
//! (`fake-trtllm-bench`, tests/double): datasets are generated and linked, YAML and LoRA links
//! written, commands run and logged; failures carry the log tail; markers change outcomes; a
//! time limit kills the benchmark's whole process group.

use std::path::{Path, PathBuf};

pub(crate) fn fixture(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
        .display()
        .to_string()
}

/// The test double standing in for trtllm-bench.
const BENCH: &str = env!("CARGO_BIN_EXE_fake-trtllm-bench");

/// Runs `perfgate run` (the harness) with `env` for the benchmark (the double's FAKE_BENCH_*
/// variables; the harness passes its environment on) and returns (passed, failed, ignored) and
/// its output.
/// Sends `signal` to a child the test started and waits up to `limit` for it to exit.
pub(crate) fn signal_and_wait(
    child: &mut std::process::Child,
    signal: i32,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    // SAFETY: signalling a child process the test started.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child did not stop within {limit:?} of signal {signal}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub(crate) fn run(
    dir: &Path,
    list: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> ((u64, u64, u64), String) {
    let (counts, text, _) = run_with_status(dir, list, extra, env);
    (counts, text)
}

/// [`run`], with perfgate's exit status.
pub(crate) fn run_with_status(
    dir: &Path,
    list: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> ((u64, u64, u64), String, Option<i32>) {
    let list_path = dir.join("list.txt");
    std::fs::write(&list_path, list).expect("write list");
    let out = dir.join("out");
    let cache = dir.join("cache");
    let bench = BENCH.to_string();
    let tok = fixture("tokenizers/deepseek");
    let mut argv = vec![
        "run".to_string(),
        "--test-list".into(),
        list_path.display().to_string(),
        "--output-dir".into(),
        out.display().to_string(),
        "--bench-cmd".into(),
        bench,
        "--tokenizer".into(),
        tok,
        "--models-root".into(),
        "/nonexistent-models".into(),
        "--dataset-cache".into(),
        cache.display().to_string(),
        "--test-threads".into(),
        "1".into(),
        // The repository's own baselines are not this test's.
        "--baselines".into(),
        dir.join("baselines").display().to_string(),
    ];
    // This machine's GPUs (if any) would rename the tests (the prefix comes from the GPU);
    // telemetry tests bring a scripted NVML instead.
    if !env.iter().any(|(k, _)| *k == "PERFGATE_FAKE_NVML") {
        argv.push("--no-telemetry".into());
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"));
    for (k, _) in std::env::vars() {
        // The CI variables of the machine running the tests would become the runs' revision.
        let ci = k.starts_with("GITHUB_")
            || k.starts_with("CI_")
            || k.starts_with("GITLAB_")
            || matches!(
                k.as_str(),
                "GIT_COMMIT" | "GIT_BRANCH" | "BUILD_URL" | "BRANCH_NAME" | "JENKINS_URL"
            );
        if ci
            || k.starts_with("FAKE_BENCH_")
            || k.starts_with("PERF_")
            || k.starts_with("PERFGATE_")
        {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(&argv)
        .envs(env.iter().copied())
        .output()
        .expect("perfgate runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let count = |word: &str| -> u64 {
        text.lines()
            .filter_map(|l| l.strip_prefix("test result: "))
            .flat_map(|l| l.split(';'))
            .filter_map(|part| {
                part.trim()
                    .trim_start_matches("ok. ")
                    .trim_start_matches("FAILED. ")
                    .strip_suffix(word)
            })
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .sum()
    };
    (
        (count("passed"), count("failed"), count("ignored")),
        text,
        out.status.code(),
    )
}

/// libtest's meaning: `--ignored` runs only the tests the list marks SKIP, and
/// `--include-ignored` runs them beside the others.
#[test]
fn ignored_runs_only_the_skipped_tests_and_include_ignored_runs_all() {
    let list = "\
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:7 SKIP (not today)
";
    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(dir.path(), list, &[], &[]);
    assert_eq!(counts, (1, 0, 1), "{text}");
    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(dir.path(), list, &["--ignored"], &[]);
    assert_eq!(counts, (1, 0, 0), "{text}");
    assert!(text.contains("reqs:7] ... ok"), "{text}");
    assert!(!text.contains("reqs:4]"), "{text}");
    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(dir.path(), list, &["--include-ignored"], &[]);
    assert_eq!(counts, (2, 0, 0), "{text}");
}

#[test]
fn a_real_run_generates_datasets_writes_yaml_and_runs_the_benchmark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "\
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4
llama_v3.1_8b_instruct_fp8-bench-pytorch-float8-input_output_len:16,8-loras:1-reqs:3
llama_v3.2_1b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:5
llama_v3.2_1b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:6 XFAIL (known)
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:7 SKIP (not today)
llama_v3.1_8b-bench-pytorch-bfloat16-bs:1+2-input_output_len:16,8+32,4-reqs:2 ARGS (--warmup=0)
";
    // The 1B model's benchmark runs end with status 3; the others pass.
    let env = [
        ("FAKE_BENCH_MODE", "exit:3"),
        ("FAKE_BENCH_MODE_FOR", "llama_v3.2_1b"),
    ];
    let (counts, text) = run(dir.path(), list, &[], &env);
    assert_eq!(counts, (3, 1, 2), "{text}");
    assert!(
        text.contains("ignored (XFAIL (known): failed as expected"),
        "{text}"
    );
    assert!(
        text.contains("simulated failure"),
        "the failure shows the log tail:\n{text}"
    );

    let out = dir.path().join("out");
    let t1 = out.join("llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len_16_8-reqs_4");
    let data = std::fs::read_to_string(t1.join("synthetic_data.json")).expect("dataset written");
    assert_eq!(data.lines().count(), 4);
    assert!(data.starts_with("{\"task_id\":0,\"input_ids\":["), "{data}");
    let yaml = t1.join("meta-llama/Llama-3.1-8B/tp_1_pp_1/extra-llm-api-config.yml");
    assert_eq!(
        std::fs::read_to_string(&yaml).expect("yaml"),
        "cuda_graph_config:\n  enable_padding: true\nprint_iter_log: true\n"
    );
    let log = std::fs::read_to_string(t1.join("perf.log")).expect("log");
    assert!(
        log.contains("= PERFORMANCE OVERVIEW") && log.contains("dataset generated"),
        "{log}"
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t1.join("report.json")).expect("report.json written"),
    )
    .expect("report.json parses");
    assert_eq!(report["request_info"]["num_requests"], 4, "{report}");
    assert!(
        std::fs::read_to_string(t1.join("commands.sh"))
            .expect("commands")
            .contains("fake-trtllm-bench --model=llama_v3.1_8b_hf")
    );

    // LoRA: adapters linked, lora_request in every line, the YAML lists the adapter.
    let t2 = out.join(
        "llama_v3.1_8b_instruct_fp8-bench-pytorch-float8-input_output_len_16_8-loras_1-reqs_3",
    );
    let link = std::fs::read_link(t2.join("loras/0")).expect("adapter link");
    assert_eq!(
        link,
        Path::new("/nonexistent-models/lora/llama-3-chinese-8b-instruct-v2-lora/")
    );
    let data = std::fs::read_to_string(t2.join("synthetic_data.json")).expect("dataset");
    assert!(
        data.lines()
            .all(|l| l.contains("\"lora_request\":{\"lora_name\":\"lora_0\"")),
        "{data}"
    );

    // Multi-case: a directory and a dataset per case.
    let t6 =
        out.join("llama_v3.1_8b-bench-pytorch-bfloat16-bs_1_2-input_output_len_16_8_32_4-reqs_2");
    for case in [
        "bs_1-isl_16-osl_8",
        "bs_1-isl_32-osl_4",
        "bs_2-isl_16-osl_8",
        "bs_2-isl_32-osl_4",
    ] {
        assert!(
            t6.join(case).join("synthetic_data.json").is_file(),
            "{case}"
        );
    }
    // ARGS reach the benchmark: no warmup ran.
    let log = std::fs::read_to_string(t6.join("perf.log")).expect("log");
    assert!(
        log.contains("--warmup=0") && !log.contains("Running warmup."),
        "{log}"
    );
}

#[test]
fn identical_datasets_are_reused_not_regenerated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:64,8-reqs:50\n";
    assert_eq!(run(dir.path(), list, &[], &[]).0.1, 0);
    let entries = |d: &Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    assert_eq!(entries(&dir.path().join("cache")), 1);
    let t = dir
        .path()
        .join("out/llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len_64_8-reqs_50");
    std::fs::remove_file(t.join("perf.log")).expect("rm log");
    assert_eq!(run(dir.path(), list, &[], &[]).0.1, 0);
    let log = std::fs::read_to_string(t.join("perf.log")).expect("log");
    assert!(log.contains("dataset reused"), "{log}");
    assert_eq!(entries(&dir.path().join("cache")), 1);
}

fn out_file(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join("out").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (metric_type, state, perf_metric) of every CSV row whose test name contains `needle`.
fn csv_rows(dir: &Path, needle: &str) -> Vec<(String, String, String)> {
    let mut r = csv::Reader::from_path(dir.join("out/perf_script_test_results.csv")).expect("csv");
    let h = r.headers().expect("header").clone();
    let col = |name: &str| h.iter().position(|c| c == name).expect("column");
    let (t, m, s, v) = (
        col("original_test_name"),
        col("metric_type"),
        col("state"),
        col("perf_metric"),
    );
    r.records()
        .map(|r| r.expect("row"))
        .filter(|r| r[t].contains(needle))
        .map(|r| (r[m].to_string(), r[s].to_string(), r[v].to_string()))
        .collect()
}

fn jsonl(dir: &Path) -> Vec<serde_json::Value> {
    out_file(dir, "results.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn junit_valid(dir: &Path) -> String {
    let path = dir.join("out/results.xml");
    crate::junit_xsd::validate(&path).expect("results.xml is valid JUnit");
    std::fs::read_to_string(path).expect("xml")
}

#[test]
fn a_run_writes_logs_csv_yaml_jsonl_and_junit_and_a_crash_fails_only_its_test() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "\
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4
llama_v3.1_8b-bench-pytorch-streaming-bfloat16-input_output_len:16,8-reqs:4
llama_v3.1_8b-bench-float16-input_output_len:16,8-reqs:4
llama_v3.2_1b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:5
";
    let env = [
        ("FAKE_BENCH_MODE", "crash"),
        ("FAKE_BENCH_MODE_FOR", "llama_v3.2_1b"),
    ];
    let (counts, text) = run(dir.path(), list, &["--test-prefix", "H100"], &env);
    assert_eq!(counts, (3, 1, 0), "{text}");
    assert!(text.contains("killed by signal 11 (SIGSEGV)"), "{text}");

    let plain = csv_rows(dir.path(), "[llama_v3.1_8b-bench-pytorch-bfloat16");
    let types: Vec<&str> = plain.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        types,
        [
            "INFERENCE_TIME",
            "TOKEN_THROUGHPUT",
            "SEQ_THROUGHPUT",
            "KV_CACHE_SIZE"
        ]
    );
    for (metric, state, value) in &plain {
        assert_eq!(state, "valid", "{metric}");
        assert!(
            value.parse::<f64>().is_ok_and(|v| v > 0.0),
            "{metric}={value}"
        );
    }
    let streaming = csv_rows(dir.path(), "streaming");
    assert!(
        streaming
            .iter()
            .any(|r| r.0 == "FIRST_TOKEN_TIME" && r.1 == "valid"),
        "{streaming:?}"
    );
    assert!(streaming.iter().any(|r| r.0 == "OUTPUT_TOKEN_TIME"));
    let trt = csv_rows(dir.path(), "[llama_v3.1_8b-bench-float16");
    assert!(
        trt.iter().any(|r| r.0 == "BUILD_TIME" && r.1 == "valid"),
        "{trt:?}"
    );
    let crashed = csv_rows(dir.path(), "llama_v3.2_1b");
    assert_eq!(crashed.len(), 4, "a failed case keeps its rows");
    assert!(
        crashed.iter().all(|r| r.1 == "failed" && r.2.is_empty()),
        "{crashed:?}"
    );

    let yaml: serde_json::Value =
        serde_saphyr::from_str(&out_file(dir.path(), "perf_script_test_results.yaml"))
            .expect("valid YAML");
    assert!(
        yaml.as_object().is_some_and(|m| m.len() == 4 + 6 + 5 + 4),
        "{yaml}"
    );

    let lines = jsonl(dir.path());
    let rec = lines
        .iter()
        .find(|l| l["metric"] == "INFERENCE_TIME" && l["state"] == "valid")
        .expect("a valid INFERENCE_TIME record");
    assert_eq!(rec["unit"], "ms");
    assert_eq!(rec["direction"], "lower");
    assert!(rec["log"].as_str().is_some_and(|l| l.ends_with("perf.log")));
    assert!(
        rec["command"]
            .as_str()
            .is_some_and(|c| c.contains("throughput"))
    );

    let xml = junit_valid(dir.path());
    assert_eq!(xml.matches("<testcase ").count(), 4, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(
        xml.contains("SIGSEGV") && xml.contains("Segmentation fault"),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<property name="TOKEN_THROUGHPUT" value=""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testsuite name="H100/perf/test_perf.py::test_perf["#),
        "{xml}"
    );
}

#[test]
fn a_hung_benchmark_is_stopped_by_the_stall_limit_and_the_next_test_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "\
llama_v3.2_1b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:5
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4
";
    let env = [
        ("FAKE_BENCH_MODE", "silent-hang"),
        ("FAKE_BENCH_MODE_FOR", "llama_v3.2_1b"),
    ];
    let t0 = std::time::Instant::now();
    let (counts, text) = run(dir.path(), list, &["--stall-timeout", "2"], &env);
    assert_eq!(counts, (1, 1, 0), "{text}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(60));
    assert!(text.contains("printed nothing for 2 s"), "{text}");
    junit_valid(dir.path());
}

#[test]
fn failed_requests_and_missing_metrics_fail_the_case_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4\n";
    let (counts, text) = run(
        dir.path(),
        list,
        &[],
        &[("FAKE_BENCH_MODE", "failed-requests")],
    );
    assert_eq!(counts.1, 1, "{text}");
    assert!(text.contains("request(s) failed"), "{text}");
    assert!(text.contains("`!FAILED REQUESTS!`"), "{text}");

    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("FAKE_BENCH_MODE", "drop:Total Latency,no-report-json")];
    let (counts, text) = run(dir.path(), list, &[], &env);
    assert_eq!(counts.1, 1, "{text}");
    assert!(text.contains("missing metric(s): INFERENCE_TIME"), "{text}");
    let rows = csv_rows(dir.path(), "llama_v3.1_8b");
    assert!(
        rows.iter()
            .any(|r| r.0 == "INFERENCE_TIME" && r.1 == "failed"),
        "{rows:?}"
    );
}

#[test]
fn repetitions_are_all_recorded_and_summarised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4\n";
    let env = [("FAKE_BENCH_NOISE", "0.05"), ("FAKE_BENCH_SEED", "pid")];
    let (counts, text) = run(dir.path(), list, &["--repeat", "3"], &env);
    assert_eq!(counts, (1, 0, 0), "{text}");
    let lines = jsonl(dir.path());
    let values: Vec<f64> = lines
        .iter()
        .filter(|l| l["metric"] == "SEQ_THROUGHPUT" && l["repetition"].is_u64())
        .map(|l| l["value"].as_f64().expect("number"))
        .collect();
    assert_eq!(values.len(), 3, "{lines:?}");
    let summary = lines
        .iter()
        .find(|l| l["metric"] == "SEQ_THROUGHPUT" && l["summary"].is_object())
        .expect("summary");
    let mean = values.iter().sum::<f64>() / 3.0;
    let s = &summary["summary"];
    assert!((s["mean"].as_f64().expect("mean") - mean).abs() < 1e-9 * mean);
    assert!(
        s["stddev"].as_f64().expect("stddev") > 0.0,
        "noise gives spread"
    );
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(s["min"].as_f64(), Some(min));
    let csv_value: f64 = csv_rows(dir.path(), "llama")
        .iter()
        .find(|r| r.0 == "SEQ_THROUGHPUT")
        .and_then(|r| r.2.parse().ok())
        .expect("CSV value");
    assert!(
        (csv_value - mean).abs() < 1e-9 * mean,
        "the CSV holds the mean"
    );
    let xml = junit_valid(dir.path());
    for stat in ["mean", "stddev", "min", "max", "n"] {
        assert!(
            xml.contains(&format!(r#"<property name="SEQ_THROUGHPUT.{stat}""#)),
            "{stat}: {xml}"
        );
    }
    let log = out_file(
        dir.path(),
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len_16_8-reqs_4/perf.log",
    );
    assert_eq!(
        log.matches("dataset generated").count(),
        1,
        "one dataset for all"
    );
    assert_eq!(log.matches("repetition ").count(), 3, "{log}");
}

#[test]
fn ctrl_c_stops_the_benchmark_records_what_finished_and_leaves_valid_junit() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "\
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4
llama_v3.2_1b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:5
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:6
";
    let list_path = dir.path().join("list.txt");
    std::fs::write(&list_path, list).expect("list");
    let out = dir.path().join("out");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(["run", "--test-list"])
        .arg(&list_path)
        .arg("--output-dir")
        .arg(&out)
        .args(["--bench-cmd", BENCH, "--tokenizer"])
        .arg(fixture("tokenizers/deepseek"))
        .args(["--models-root", "/nonexistent-models", "--dataset-cache"])
        .arg(dir.path().join("cache"))
        .env("FAKE_BENCH_MODE", "spawn-child,hang")
        .env("FAKE_BENCH_MODE_FOR", "llama_v3.2_1b")
        .stdout(std::fs::File::create(dir.path().join("stdout")).expect("stdout file"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("perfgate starts");
    let hung_log =
        out.join("llama_v3.2_1b-bench-pytorch-bfloat16-input_output_len_16_8-reqs_5/perf.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    let worker = loop {
        let text = std::fs::read_to_string(&hung_log).unwrap_or_default();
        if let Some(pid) = text
            .split("Started worker process (pid ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|p| p.parse::<i32>().ok())
        {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "the hung benchmark never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = signal_and_wait(&mut child, libc::SIGINT, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    assert!(
        crate::runner::gone_within(worker, Duration::from_secs(10)),
        "the benchmark's worker {worker} survived Ctrl-C"
    );

    // The interrupted test's failure says why once, with the log's tail once (issue 20 item
    // 11: both were printed twice).
    let printed = std::fs::read_to_string(dir.path().join("stdout")).expect("stdout");
    let failure = printed
        .split("---- ")
        .find(|s| s.contains("llama_v3.2_1b"))
        .unwrap_or_default();
    assert_eq!(
        failure.matches("interrupted by SIGINT").count(),
        1,
        "{printed}"
    );
    assert!(
        failure.matches("last lines of the log").count() <= 1,
        "{printed}"
    );

    let xml = junit_valid(dir.path());
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(xml.contains("interrupted by SIGINT"), "{xml}");
    assert!(
        xml.contains("<skipped>not run: interrupted by SIGINT</skipped>"),
        "{xml}"
    );
    let first = csv_rows(dir.path(), "reqs:4]");
    assert!(
        !first.is_empty() && first.iter().all(|r| r.1 == "valid"),
        "{first:?}"
    );
    let hung = csv_rows(dir.path(), "llama_v3.2_1b");
    assert!(
        !hung.is_empty() && hung.iter().all(|r| r.1 == "failed"),
        "{hung:?}"
    );
    assert!(
        csv_rows(dir.path(), "reqs:6]").is_empty(),
        "the last test never ran"
    );
}

/// The command perf.log and results.jsonl show is the one that ran, with the library path as
/// the child got it (the user's own entries kept); commands.sh writes it so that pasting it in
/// another shell gives the same.
#[test]
fn the_logged_command_is_what_ran_with_the_users_library_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4\n";
    let (counts, text) = run(
        dir.path(),
        list,
        &["--trtllm-lib-dir", "/opt/trtllm/lib"],
        &[("LD_LIBRARY_PATH", "/usr/local/cuda/lib64")],
    );
    assert_eq!(counts, (1, 0, 0), "{text}");
    let bench_dir = std::path::Path::new(BENCH)
        .parent()
        .expect("dir")
        .display()
        .to_string();
    let ran = format!(
        "LD_LIBRARY_PATH=/opt/trtllm/lib:{bench_dir}:/usr/local/cuda/lib64 {BENCH} --model="
    );
    let case = dir
        .path()
        .join("out/llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len_16_8-reqs_4");
    let log = std::fs::read_to_string(case.join("perf.log")).expect("perf.log");
    assert!(
        log.contains(&format!("$ PYTHONUNBUFFERED=1 {ran}")),
        "{log}"
    );
    let commands: Vec<String> = jsonl(dir.path())
        .iter()
        .filter_map(|r| r["command"].as_str().map(str::to_string))
        .filter(|c| c.contains("throughput"))
        .collect();
    assert!(!commands.is_empty());
    assert!(commands.iter().all(|c| c.contains(&ran)), "{commands:?}");
    let sh = std::fs::read_to_string(case.join("commands.sh")).expect("commands.sh");
    assert!(
        sh.contains(&format!(
            "LD_LIBRARY_PATH=\"/opt/trtllm/lib:{bench_dir}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\""
        )),
        "{sh}"
    );
}

#[test]
fn the_exit_status_says_what_failed() {
    let list = "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4\n";
    // Everything passes: 0.
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, text, code) = run_with_status(dir.path(), list, &[], &[]);
    assert_eq!(code, Some(0), "{text}");
    // A benchmark that fails: a test that could not measure, 3.
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, text, code) = run_with_status(dir.path(), list, &[], &[("FAKE_BENCH_MODE", "exit:3")]);
    assert_eq!(code, Some(3), "{text}");
    // A gated verdict that fails (INVALID: 50x beyond the H100's ceiling): 1, as `perfgate
    // gate` exits for the same verdict.
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, text, code) = run_with_status(
        dir.path(),
        list,
        &["--test-prefix", "H100_80GB_HBM3"],
        &[("FAKE_BENCH_SCALE", "50")],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("gate: INVALID"), "{text}");
}

#[test]
fn no_test_list_and_absurd_thread_counts_are_usage_errors_at_once() {
    let perfgate = |args: &[&str]| {
        let t = std::time::Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"))
            .args(args)
            .env_remove("PERF_TEST_LIST")
            .env_remove("PERF_ALLOW_EMPTY")
            .output()
            .expect("perfgate runs");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{args:?} hung"
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let list = "test_lists/perf_test.txt";
    for threads in ["0", "99999999999"] {
        let (code, err) = perfgate(&[
            "run",
            "--test-list",
            list,
            "--dry-run",
            "--no-telemetry",
            "--test-threads",
            threads,
        ]);
        assert_eq!(code, Some(2), "{threads}: {err}");
        assert!(err.contains("--test-threads"), "{err}");
    }
    let (code, err) = perfgate(&["run", "--no-telemetry"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no test list given") && err.contains("--allow-empty"),
        "{err}"
    );
    let (code, err) = perfgate(&["run", "--no-telemetry", "--allow-empty"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn when_perfgate_is_killed_its_benchmark_and_workers_die_too() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("tempdir");
    let list_path = dir.path().join("list.txt");
    std::fs::write(
        &list_path,
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4\n",
    )
    .expect("list");
    let out = dir.path().join("out");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(["run", "--no-telemetry", "--test-list"])
        .arg(&list_path)
        .arg("--output-dir")
        .arg(&out)
        .args(["--bench-cmd", BENCH, "--tokenizer"])
        .arg(fixture("tokenizers/deepseek"))
        .args(["--models-root", "/nonexistent-models", "--dataset-cache"])
        .arg(dir.path().join("cache"))
        .env("FAKE_BENCH_MODE", "spawn-child,hang")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("perfgate starts");
    let log =
        out.join("llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len_16_8-reqs_4/perf.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    let worker = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(pid) = text
            .split("Started worker process (pid ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|p| p.parse::<i32>().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the benchmark never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    // SIGKILL: perfgate gets no chance to stop anything itself.
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(
        crate::runner::gone_within(worker, Duration::from_secs(10)),
        "the benchmark's worker {worker} outlived a killed perfgate"
    );
}
