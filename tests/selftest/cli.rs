//! The `perfgate` binary end to end: lint and plan as a user runs them.

use std::process::Command;

use serde_json::Value;

fn perfgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("perfgate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lint_reports_every_planted_error_with_its_line() {
    let (code, out, _) = perfgate(&[
        "lint",
        "tests/fixtures/lists/planted_errors.txt",
        "tests/fixtures/lists/planted_errors.yml",
    ]);
    assert_eq!(code, 1, "{out}");
    let txt = "tests/fixtures/lists/planted_errors.txt";
    let yml = "tests/fixtures/lists/planted_errors.yml";
    for (at, needle) in [
        (
            format!("{txt}:3: error:"),
            "did you mean `deepseek_v3_lite_fp8-bench-pytorch-streaming-float8",
        ),
        (format!("{txt}:4: error:"), "`tp:0`"),
        (format!("{txt}:5: error:"), "closest known: llama_v3.1_8b"),
        (format!("{txt}:6: warning:"), "listed again"),
        (format!("{txt}:7: error:"), "pytorch backend"),
        (format!("{txt}:8: error:"), "tp:2 × pp:1"),
        (format!("{txt}:9: error:"), "no closing `]`"),
        (format!("{txt}:10: error:"), "TIMEOUT"),
        (format!("{txt}:11: error:"), "cannot contain `-`"),
        (format!("{txt}:13: warning:"), "same configuration"),
        (format!("{yml}:4: error:"), "can never hold"),
        (format!("{yml}:11: warning:"), "did you mean `gpu`"),
        (format!("{yml}:14: error:"), "`reqs:0`"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&at) && l.contains(needle)),
            "missing `{at} ... {needle}` in:\n{out}"
        );
    }
    assert!(out.contains("10 error(s)"), "{out}");
}

#[test]
fn lint_accepts_the_example_lists() {
    let (code, out, err) =
        perfgate(&["lint", "test_lists/perf_test.txt", "test_lists/perf_db.yml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" 0 error(s)"), "{out}");
}

/// Issue 20 item 9: a test-db list's conditions with nothing to check them against (no GPU
/// detected: here telemetry is off) refuse the run, naming --system; with a system they
/// select the tests.
#[test]
fn test_db_conditions_without_a_system_refuse_the_run_and_name_system() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let out = out.to_str().expect("utf8");
    let base = [
        "run",
        "--test-list",
        "test_lists/perf_db.yml",
        "--dry-run",
        "--no-telemetry",
        "--tokenizer",
        "tests/fixtures/tokenizers/deepseek",
        "--output-dir",
        out,
    ];
    let (code, stdout, err) = perfgate(&base);
    assert_eq!(code, 2, "{stdout}{err}");
    assert!(
        err.contains("no NVIDIA GPU was detected") && err.contains("--system"),
        "{err}"
    );
    let mut with = base.to_vec();
    with.extend([
        "--system-set",
        "gpu=H100_PCIe",
        "--system-set",
        "system_gpu_count=1",
    ]);
    let (code, stdout, err) = perfgate(&with);
    assert_eq!(code, 0, "{stdout}{err}");
}

/// A 2 MB name in a list is refused at once, with a one-line error that quotes its start and
/// end (issue 20 item 2), by `lint` and `plan --names-from`.
#[test]
fn a_two_megabyte_name_gets_a_short_error_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("long.txt");
    std::fs::write(
        &list,
        format!(
            "{}-bench-pytorch-float8-input_output_len:128,128\n",
            "x".repeat(2_000_000)
        ),
    )
    .expect("write");
    let path = list.to_str().expect("utf8");
    for args in [vec!["lint", path], vec!["plan", "--names-from", path]] {
        let (code, out, err) = perfgate(&args);
        assert_eq!(code, 1, "{args:?}");
        let text = out + &err;
        assert!(text.len() < 2000, "{args:?}: {} bytes", text.len());
        assert!(text.contains("names are at most 4096 bytes"), "{text}");
        assert!(text.contains("bytes]…"), "{text}");
    }
}

/// `-F` and PERF_TEST_LIST name lists for `lint` as they do for `run`, beside or instead of
/// the positional ones; with none at all it is a usage error.
#[test]
fn lint_reads_the_lists_of_dash_f_too() {
    let (code, out, err) = perfgate(&["lint", "-F", "no/such/list.txt"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("no/such/list.txt: error"), "{out}");
    let (code, out, err) = perfgate(&[
        "lint",
        "test_lists/perf_test.txt",
        "-F",
        "test_lists/perf_db.yml,no/such/other.txt",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("no/such/other.txt: error"), "{out}");
    let (code, out, err) = perfgate(&["lint"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no test list to check"), "{err}");
}

#[test]
fn lint_reports_missing_and_unreadable_lists() {
    let (code, out, _) = perfgate(&["lint", "no/such/list.txt"]);
    assert_eq!(code, 1);
    // A problem of the whole file names the file alone, not a line 0.
    assert!(
        out.contains("no/such/list.txt: error: cannot read the test list"),
        "{out}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "version: 0.0.1\nctx:\n- condition: {terms: {a: 1}\n  tests: [x]\n",
    )
    .expect("write");
    let (code, out, _) = perfgate(&["lint", bad.to_str().expect("utf8")]);
    assert_eq!(code, 1);
    assert!(
        out.contains("bad.yml:") && out.contains("not a valid test-db YAML list"),
        "{out}"
    );
    let (code, out, _) = perfgate(&["lint", "--context", "nope", "test_lists/perf_db.yml"]);
    assert_eq!(code, 1);
    assert!(out.contains("no context `nope`"), "{out}");
}

/// Issue 20 item 5: a catalog whose `hf_id` climbs out of the workspace is refused when it
/// loads, by `lint` and by `run`, naming the file and the model's line; nothing is written.
#[test]
fn a_catalog_that_would_write_outside_the_output_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let configs = dir.path().join("model_configs");
    std::fs::create_dir(&configs).expect("mkdir");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("model_configs");
    for f in ["gpus.yaml", "llm_api_rules.yaml"] {
        std::fs::copy(root.join(f), configs.join(f)).expect("copy");
    }
    let models = std::fs::read_to_string(root.join("models.yaml")).expect("models.yaml");
    let original = "  llama_v3.1_8b: {path: llama-3.1-model/Meta-Llama-3.1-8B, hf_id: meta-llama/Llama-3.1-8B,";
    assert!(models.contains(original));
    let line = models[..models.find(original).expect("found")]
        .lines()
        .count()
        + 1;
    let evil = models.replace(
        original,
        "  llama_v3.1_8b: {path: llama-3.1-model/Meta-Llama-3.1-8B, hf_id: '../../../../../../pgx_engine',",
    );
    std::fs::write(configs.join("models.yaml"), evil).expect("write");
    let list = dir.path().join("list.txt");
    std::fs::write(
        &list,
        "llama_v3.1_8b-bench-bfloat16-input_output_len:128,128\n",
    )
    .expect("write");
    let out_dir = dir.path().join("out");
    let s = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    let want = format!("models.yaml:{line}: invalid model catalog: `llama_v3.1_8b`: hf_id");
    let (code, out, err) = perfgate(&["lint", "--model-configs", &s(&configs), &s(&list)]);
    assert_ne!(code, 0, "{out}{err}");
    assert!((out.clone() + &err).contains(&want), "{want}\n{out}{err}");
    let (code, out, err) = perfgate(&[
        "run",
        "--model-configs",
        &s(&configs),
        "--test-list",
        &s(&list),
        "--output-dir",
        &s(&out_dir),
        "--dry-run",
    ]);
    assert_ne!(code, 0, "{out}{err}");
    assert!((out.clone() + &err).contains(&want), "{want}\n{out}{err}");
    assert!(!dir.path().join("pgx_engine").exists());
}

/// Issue 20 item 15: linting a user's list says nothing about the project's own model configs
/// (no "rules match none of your tests", no `llm_api_rules.yaml:0`); a user's own rules file
/// is linted, each warning at its rule's line.
#[test]
fn lint_of_a_users_list_is_about_the_users_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("mine.txt");
    std::fs::write(
        &list,
        "deepseek_r1_fp8-bench-pytorch-float8-input_output_len:128,128-tp:8-gpus:8\n\
         llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128\n",
    )
    .expect("write");
    let list_s = list.to_str().expect("utf-8");
    let (code, out, err) = perfgate(&["lint", list_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("model_configs"), "{out}");
    assert!(out.contains("0 warning(s)"), "{out}");

    // The same list against a copy of the rules with one entry of the user's: its collision
    // and its unreachable pattern are reported at their lines; still no line 0, no coverage.
    let configs = dir.path().join("model_configs");
    std::fs::create_dir(&configs).expect("mkdir");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("model_configs");
    for f in ["gpus.yaml", "models.yaml"] {
        std::fs::copy(root.join(f), configs.join(f)).expect("copy");
    }
    let rules = std::fs::read_to_string(root.join("llm_api_rules.yaml")).expect("rules");
    let mine = "patterns:\n  - note: \"mine\"\n    patterns:\n      - \"Llama_v3.1_8b\"\n    config:\n      enable_chunked_prefill: true\n";
    let edited = rules.replacen("patterns:\n", mine, 1);
    // The new entry's `- note:` line, right below `patterns:`.
    let line = rules[..rules.find("patterns:\n").expect("patterns")]
        .lines()
        .count()
        + 2;
    std::fs::write(configs.join("llm_api_rules.yaml"), edited).expect("write");
    let configs_s = configs.to_str().expect("utf-8");
    let (_, out, err) = perfgate(&["lint", "--model-configs", configs_s, list_s]);
    let want = format!("llm_api_rules.yaml:{line}: warning: pattern #1 [Llama_v3.1_8b]");
    assert!(
        out.lines()
            .any(|l| l.contains(&want) && l.contains("can never match")),
        "{want}\n{out}{err}"
    );
    assert!(!out.contains(":0:"), "{out}");
    assert!(!out.contains("match none"), "{out}");
}

/// Issue 20 item 11: a file that is not UTF-8 is reported by every reader with its line and
/// column, once (the message was printed twice by three of them, and without a line by ten).
#[test]
fn every_text_file_reader_names_the_line_of_invalid_utf8() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let bad = |rel: &str, text: &[u8]| {
        let path = d.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("utf-8").to_string()
    };
    let log = format!(
        "{}/tests/fixtures/bench_logs/009-devblog-llama31-8b-pytorch-streaming-v0.21.0rc0.log",
        env!("CARGO_MANIFEST_DIR")
    );
    let list = bad(
        "list.txt",
        b"llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128\n",
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("model_configs");
    let cases: Vec<(String, Vec<String>, Vec<(String, String)>)> = vec![
        {
            let f = bad("b.csv", b"network_name,perf_case_name\n\"x\xff\",y\n");
            (
                format!("{f}:2:3"),
                vec!["baseline".into(), "check".into(), "--file".into(), f],
                vec![],
            )
        },
        {
            let f = bad("r.json", b"{\n \"performance\": {\"x\": \"\xff\"}}\n");
            (
                format!("{f}:2:24"),
                vec!["parse".into(), "--report-json".into(), f, log.clone()],
                vec![],
            )
        },
        {
            let f = bad("g/gate.jsonl", b"{}\n{\"a\": \"\xff\"}\n");
            let from = d.join("g").to_str().expect("utf-8").to_string();
            let args = [
                "baseline", "update", "--from", &from, "--file", "n.csv", "--reason", "x",
            ];
            (format!("{f}:2:8"), args.map(String::from).to_vec(), vec![])
        },
        {
            let f = bad("up.yaml", b"a:\n  b: \"\xff\"\n");
            let h = d.join("h.sqlite").to_str().expect("utf-8").to_string();
            (
                format!("{f}:2:7"),
                ["history", "import", "--history", &h, &f]
                    .map(String::from)
                    .to_vec(),
                vec![],
            )
        },
        {
            let f = bad("c/results.jsonl", b"\xff\n");
            let c = d.join("c").to_str().expect("utf-8").to_string();
            (
                format!("{f}:1:1"),
                ["compare", &c, &c].map(String::from).to_vec(),
                vec![],
            )
        },
        {
            let f = bad("s/shard.json", b"{\"a\":\n\"\xff\"}\n");
            let s = d.join("s").to_str().expect("utf-8").to_string();
            let out = d.join("merged").to_str().expect("utf-8").to_string();
            (
                format!("{f}:2:2"),
                ["merge", "--out", &out, &s].map(String::from).to_vec(),
                vec![],
            )
        },
        {
            let f = bad("system.json", b"{\"gpu\":\n \"H\xff\"}\n");
            (
                format!("{f}:2:4"),
                [
                    "plan",
                    "--system",
                    &f,
                    "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128",
                ]
                .map(String::from)
                .to_vec(),
                vec![],
            )
        },
        {
            let f = bad("nvml.json", b"{\n\n  \"\xff\": 1}\n");
            (
                format!("{f}:3:4"),
                ["telemetry", "--samples", "1"].map(String::from).to_vec(),
                vec![("PERFGATE_FAKE_NVML".to_string(), f)],
            )
        },
    ]
    .into_iter()
    .chain(
        ["models.yaml", "llm_api_rules.yaml", "gpus.yaml"].map(|file| {
            let configs = d.join(format!("mc-{file}"));
            std::fs::create_dir_all(&configs).expect("mkdir");
            for f in ["models.yaml", "llm_api_rules.yaml", "gpus.yaml"] {
                std::fs::copy(root.join(f), configs.join(f)).expect("copy");
            }
            let mut text = std::fs::read(root.join(file)).expect("read");
            let line = 1 + text.iter().filter(|&&b| b == b'\n').count();
            text.extend_from_slice(b"# \xff\n");
            std::fs::write(configs.join(file), text).expect("write");
            let c = configs.to_str().expect("utf-8").to_string();
            (
                format!("{}:{line}:3", configs.join(file).display()),
                ["lint", "--model-configs", &c, &list]
                    .map(String::from)
                    .to_vec(),
                vec![],
            )
        }),
    )
    .collect();
    for (want, args, env) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_perfgate"))
            .args(&args)
            .envs(env)
            .current_dir(d)
            .output()
            .expect("perfgate runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let message = format!("{want}: not UTF-8 text (byte 0xff there)");
        assert_eq!(
            text.matches(&message).count(),
            1,
            "{args:?}: want {message}\n{text}"
        );
        assert!(
            !text.contains("stream did not contain valid UTF-8"),
            "{args:?}: {text}"
        );
    }
}

/// Issue 20 item 11: plain answers to plain mistakes: an empty `--names-from` file is named;
/// a control character in a test id stops `run` as it stops `lint` (it was a test that failed
/// with an invisible NUL in its name); a missing tokenizer says which options find one.
#[test]
fn plain_mistakes_get_plain_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# nothing yet\n\n").expect("write");
    let (code, out, err) = perfgate(&["plan", "--names-from", &s(&empty)]);
    assert_ne!(code, 0);
    assert!(err.contains("empty.txt: no test names in it"), "{out}{err}");

    let nul = dir.path().join("nul.txt");
    std::fs::write(
        &nul,
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128\0x\n",
    )
    .expect("write");
    let want = "nul.txt:1: error: `llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128\\0x`: \
                the test id contains the control character '\\0' at column 62";
    let (code, out, _) = perfgate(&["lint", &s(&nul)]);
    assert_eq!(code, 1);
    assert!(out.contains(want), "{out}");
    let out_dir = dir.path().join("out");
    let (code, out, err) = perfgate(&[
        "run",
        "--test-list",
        &s(&nul),
        "--output-dir",
        &s(&out_dir),
        "--dry-run",
        "--no-telemetry",
    ]);
    assert_ne!(code, 0);
    let text = out + &err;
    assert!(
        text.contains(want) && text.contains("nothing was run"),
        "{text}"
    );

    let list = dir.path().join("list.txt");
    std::fs::write(
        &list,
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4\n",
    )
    .expect("write");
    let (code, out, err) = perfgate(&[
        "run",
        "--test-list",
        &s(&list),
        "--output-dir",
        &s(&out_dir),
        "--models-root",
        "/nonexistent-models",
        "--dataset-cache",
        &s(&dir.path().join("cache")),
        "--bench-cmd",
        "/bin/false",
        "--no-telemetry",
        "--no-history",
    ]);
    assert_ne!(code, 0);
    let text = out + &err;
    assert!(
        text.contains("tokenizer /nonexistent-models/")
            && text.contains("under --models-root")
            && text.contains("--tokenizer DIR"),
        "{text}"
    );
}

#[test]
fn plan_json_has_one_object_per_name() {
    let (code, out, _) = perfgate(&[
        "plan",
        "--format",
        "json",
        "perf/test_perf.py::test_perf[llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128-tp:2]",
        "bert_large-cpp-plugin-float16-bs:32+64-input_len:128+512",
        "llama_v3.1_8b-bench-pytorch-bfloat16",
    ]);
    assert_eq!(code, 1, "one name is invalid");
    let objs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(objs.len(), 3);
    assert_eq!(objs[0]["ok"], true);
    assert_eq!(
        objs[0]["canonical"],
        "llama_v3.1_8b-bench-pytorch-bfloat16-maxbs:512-maxnt:2048-input_output_len:128,128-gpus:2"
    );
    assert_eq!(objs[1]["cases"].as_array().map(Vec::len), Some(4));
    assert_eq!(objs[2]["ok"], false);
    assert!(
        objs[2]["error"]
            .as_str()
            .is_some_and(|e| e.contains("input_output_len"))
    );
    for key in ["name", "ok", "canonical", "cases", "error"] {
        assert!(objs[2].get(key).is_some(), "missing {key}");
    }
}

#[test]
fn plan_text_shows_commands() {
    let (code, out, _) = perfgate(&[
        "plan",
        "--names-from",
        "test_lists/perf_test.txt",
        "--models-root",
        "/m",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("trtllm-bench --model=llama_v3.1_8b_hf --model_path=/m/llama-3.1-model/Meta-Llama-3.1-8B throughput"), "{out}");
}

#[test]
fn config_prints_yaml_and_where_each_key_comes_from() {
    let name = "deepseek_r1_0528_fp8-bench-pytorch-float8-maxbs:512-maxnt:2048-input_output_len:1000,2000-reqs:3000-ep:8-gpus:8";
    let (code, yaml, _) = perfgate(&["config", "--format", "yaml", "--gpu", "B200", name]);
    assert_eq!(code, 0);
    assert_eq!(
        yaml,
        "cuda_graph_config:\n  enable_padding: true\nenable_attention_dp: true\nmoe_config:\n  backend: DEEPGEMM\nprint_iter_log: true\n"
    );
    let (_, yaml90, _) = perfgate(&["config", "--format", "yaml", "--sm", "90", name]);
    assert!(
        !yaml90.contains("DEEPGEMM"),
        "the SM 100 rule must not apply on SM 90:\n{yaml90}"
    );
    let (code, annotated, _) = perfgate(&["config", "--gpu", "B200", name]);
    assert_eq!(code, 0);
    assert!(
        annotated.lines().any(|l| l.contains("moe_config.backend")
            && l.contains("gpu rule")
            && l.contains("llm_api_rules.yaml:")),
        "{annotated}"
    );
    let lora = "llama_v3.1_8b_instruct_fp8-bench-pytorch-float8-input_output_len:128,128-loras:1-reqs:100-con:2";
    let (code, yaml, _) = perfgate(&["config", "--format", "yaml", "--lora-dirs", "/l/0", lora]);
    assert_eq!(code, 0);
    assert!(yaml.contains("lora_dir:\n  - /l/0\n"), "{yaml}");
    let (code, _, err) = perfgate(&["config", "--lora-dirs", "/l/0,/l/1", lora]);
    assert_eq!(code, 2);
    assert!(err.contains("loras:1"), "{err}");
    let (code, _, err) = perfgate(&["config", "--gpu", "H1000", name]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown GPU `H1000`"), "{err}");
}

#[test]
fn plan_json_carries_the_steps() {
    let (code, out, _) = perfgate(&[
        "plan",
        "--format",
        "json",
        "--models-root",
        "/m",
        "llama_v3.1_8b-bench-bfloat16-input_output_len:128,128",
    ]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).expect("JSON");
    let steps = v["steps"][0].as_array().expect("steps of case 1");
    let kinds: Vec<&str> = steps.iter().filter_map(|s| s["kind"].as_str()).collect();
    assert_eq!(kinds, ["build", "dataset", "throughput"]);
    assert_eq!(
        steps[0]["argv"][4],
        "--model_path=/m/llama-3.1-model/Meta-Llama-3.1-8B"
    );
}
