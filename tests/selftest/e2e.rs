//! A real run (not a dry run) through the harness, with a small fake trtllm-bench: datasets are
//! generated and linked, YAML and LoRA links written, commands run and logged; failures carry
//! the log tail; markers change outcomes.

use std::path::{Path, PathBuf};

fn fixture(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
        .display()
        .to_string()
}

/// Runs `perfgate run` (the harness) and returns (passed, failed, ignored) and its output.
fn run(dir: &Path, list: &str, extra: &[&str]) -> ((u64, u64, u64), String) {
    let list_path = dir.join("list.txt");
    std::fs::write(&list_path, list).expect("write list");
    let out = dir.join("out");
    let cache = dir.join("cache");
    let bench = fixture("bin/fake-trtllm-bench");
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
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(&argv)
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
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:5 ARGS (--fake-fail)
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:6 ARGS (--fake-fail) XFAIL (known)
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:7 SKIP (not today)
llama_v3.1_8b-bench-pytorch-bfloat16-bs:1+2-input_output_len:16,8+32,4-reqs:2
";
    let (counts, text) = run(dir.path(), list, &[]);
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
        log.contains("arg: throughput") && log.contains("dataset generated"),
        "{log}"
    );
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
}

#[test]
fn identical_datasets_are_reused_not_regenerated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:64,8-reqs:50\n";
    assert_eq!(run(dir.path(), list, &[]).0.1, 0);
    let entries = |d: &Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    assert_eq!(entries(&dir.path().join("cache")), 1);
    let t = dir
        .path()
        .join("out/llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len_64_8-reqs_50");
    std::fs::remove_file(t.join("perf.log")).expect("rm log");
    assert_eq!(run(dir.path(), list, &[]).0.1, 0);
    let log = std::fs::read_to_string(t.join("perf.log")).expect("log");
    assert!(log.contains("dataset reused"), "{log}");
    assert_eq!(entries(&dir.path().join("cache")), 1);
}
