//! A real run (not a dry run) through the harness, with the trtllm-bench test double
//! (`fake-trtllm-bench`, tests/double): datasets are generated and linked, YAML and LoRA links
//! written, commands run and logged; failures carry the log tail; markers change outcomes; a
//! time limit kills the benchmark's whole process group.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn fixture(p: &str) -> String {
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
fn run(dir: &Path, list: &str, extra: &[&str], env: &[(&str, &str)]) -> ((u64, u64, u64), String) {
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
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("FAKE_BENCH_") {
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
    ((count("passed"), count("failed"), count("ignored")), text)
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

fn one_step_plan(dir: &Path, argv: Vec<String>, env: &[(&str, &str)]) -> perfgate::plan::TestPlan {
    use perfgate::plan::{Step, StepKind, TestPlan};
    let step = Step {
        kind: StepKind::Throughput,
        argv,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        dataset: None,
        outputs: vec![],
        files: vec![],
        stdout_to: None,
    };
    TestPlan {
        raw: "t".into(),
        canonical: "t".into(),
        dir: dir.to_path_buf(),
        setup: vec![step],
        setup_metrics: vec![],
        cases: vec![],
        blocked: vec![],
        skipped: vec![],
    }
}

#[test]
fn a_missing_benchmark_says_how_to_fix_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = one_step_plan(
        dir.path(),
        vec!["no-such-trtllm-bench".into(), "throughput".into()],
        &[],
    );
    let err = perfgate::runner::run_plan(&plan, &dir.path().join("log"), None, dir.path())
        .expect_err("fails");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("`no-such-trtllm-bench` not found") && msg.contains("--bench-cmd"),
        "{msg}"
    );
}

#[test]
fn a_failing_benchmark_reports_its_status_and_log_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = one_step_plan(
        dir.path(),
        double_argv(dir.path()),
        &[("FAKE_BENCH_MODE", "exit:3")],
    );
    let err = perfgate::runner::run_plan(&plan, &dir.path().join("log"), None, dir.path())
        .expect_err("fails");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("exited with status 3")
            && msg.contains("| [TensorRT-LLM][ERROR] simulated failure")
            && msg.contains("| [TensorRT-LLM][INFO] Refreshed the MPI local session"),
        "{msg}"
    );
}

#[test]
fn the_time_limit_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("grandchild-survived");
    // A child that starts a grandchild, both sleeping; the grandchild would leave a file.
    let script = format!("(sleep 3; touch {}) & sleep 30", marker.display());
    let plan = one_step_plan(dir.path(), vec!["sh".into(), "-c".into(), script], &[]);
    let t0 = Instant::now();
    let err = perfgate::runner::run_plan(
        &plan,
        &dir.path().join("log"),
        Some(Duration::from_secs(1)),
        dir.path(),
    )
    .expect_err("times out");
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(format!("{err:#}").contains("time limit"), "{err:#}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!marker.exists(), "the grandchild outlived the time limit");
}

/// A throughput command for the double, with a two-request dataset in `dir`.
fn double_argv(dir: &Path) -> Vec<String> {
    let data = dir.join("data.jsonl");
    std::fs::write(
        &data,
        "{\"task_id\":0,\"input_ids\":[1,2,3],\"output_tokens\":4}\n{\"task_id\":1,\"input_ids\":[4,5],\"output_tokens\":4}\n",
    )
    .expect("write dataset");
    vec![
        BENCH.into(),
        "--model=m".into(),
        "throughput".into(),
        format!("--dataset={}", data.display()),
    ]
}

#[test]
fn the_time_limit_kills_a_hung_benchmark_and_its_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = one_step_plan(
        dir.path(),
        double_argv(dir.path()),
        &[("FAKE_BENCH_MODE", "spawn-child,hang")],
    );
    let log = dir.path().join("log");
    let err = perfgate::runner::run_plan(&plan, &log, Some(Duration::from_secs(2)), dir.path())
        .expect_err("times out");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("time limit") && msg.contains("[TRT-LLM] [I] Starting benchmark..."),
        "{msg}"
    );
    let text = std::fs::read_to_string(&log).expect("log");
    let pid: i32 = text
        .split("Started worker process (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no worker pid in the log:\n{text}"));
    // Killed (and reaped by init) or at worst a zombie waiting to be.
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone(), "the worker {pid} outlived the time limit");
}
