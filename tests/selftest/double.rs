//! The trtllm-bench test double (tests/double, binary `fake-trtllm-bench`): every report era,
//! every fault mode, the command line and dataset checks. Numbers are checked for
//! self-consistency with small ad-hoc lookups, not with perfgate's report parser, so the double
//! stays an independent fixture for that parser's tests.

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fake-trtllm-bench");

/// Every variable the double reads, removed so the caller's environment cannot leak in.
const KNOBS: &[&str] = &[
    "FAKE_BENCH_ERA",
    "FAKE_BENCH_MODE",
    "FAKE_BENCH_MODE_BUILD",
    "FAKE_BENCH_MODE_THROUGHPUT",
    "FAKE_BENCH_MODE_LATENCY",
    "FAKE_BENCH_MODE_FOR",
    "FAKE_BENCH_SCALE",
    "FAKE_BENCH_SCALE_FOR",
    "FAKE_BENCH_NOISE",
    "FAKE_BENCH_SEED",
];

struct Out {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir);
    for k in KNOBS {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    // Its own process group, so a test can kill whatever it leaves behind (spawn-child).
    cmd.process_group(0);
    cmd
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = command(dir, args, env).output().expect("the double runs");
    Out {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A dataset of `n` requests with lengths varying around `isl`/`osl`.
fn dataset(dir: &Path, name: &str, n: usize, isl: usize, osl: usize) -> PathBuf {
    let mut text = String::new();
    for i in 0..n {
        let isl = isl + i % 7;
        let osl = osl + (i * 3) % 11;
        let ids: Vec<String> = (0..isl)
            .map(|t| ((t * 31 + i) % 32000).to_string())
            .collect();
        text.push_str(&format!(
            "{{\"task_id\":{i},\"input_ids\":[{}],\"output_tokens\":{osl}}}\n",
            ids.join(",")
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write dataset");
    path
}

/// The number after `label` on the line that starts with it.
fn value(text: &str, label: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{text}"));
    let v = line[label.len()..].trim();
    v.trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("`{line}`: not a number"))
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-9)
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("report.json written");
    serde_json::from_str(&text).expect("report.json parses")
}

struct Case {
    dir: tempfile::TempDir,
    data: PathBuf,
}

impl Case {
    fn new(n: usize) -> Case {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dataset(dir.path(), "data.jsonl", n, 128, 64);
        Case { dir, data }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn dataset_arg(&self) -> String {
        format!("--dataset={}", self.data.display())
    }

    fn report_arg(&self) -> String {
        format!(
            "--report_json={}",
            self.path().join("report.json").display()
        )
    }

    /// `throughput` on the PyTorch backend, with extra args and environment.
    fn throughput(&self, extra: &[&str], env: &[(&str, &str)]) -> Out {
        let d = self.dataset_arg();
        let r = self.report_arg();
        let mut args = vec![
            "--model=meta-llama/Llama-3.1-8B",
            "--model_path=/models/llama",
            "throughput",
            d.as_str(),
            r.as_str(),
            "--backend=pytorch",
            "--max_batch_size=64",
            "--max_num_tokens=8192",
        ];
        args.extend_from_slice(extra);
        run(self.path(), &args, env)
    }

    fn report(&self) -> Value {
        json(&self.path().join("report.json"))
    }
}

/// The first report line is a bare logger line, then a blank line, then the first rule.
fn assert_logged_report_start(stdout: &str) {
    let prefix = regex::Regex::new(r"^\[\d\d/\d\d/\d{4}-\d\d:\d\d:\d\d\] \[TRT-LLM\] \[I\] $")
        .expect("regex");
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| prefix.is_match(l))
        .unwrap_or_else(|| panic!("no logger line opening the report:\n{stdout}"));
    assert_eq!(lines[at + 1], "", "{stdout}");
    assert_eq!(lines[at + 2], "=".repeat(59), "{stdout}");
}

/// Checks that hold in every era with PERFORMANCE OVERVIEW-style lines (C, C', D).
fn check_modern(o: &Out, n: usize) {
    let s = &o.stdout;
    let req_s = value(s, "Request Throughput (req/sec):");
    let total_ms = value(s, "Total Latency (ms):");
    assert!(
        close(req_s * total_ms / 1e3, n as f64, 1e-3),
        "req/s × total latency = N:\n{s}"
    );
    let out_tps = value(s, "Total Output Throughput (tokens/sec):");
    let avg_osl = value(s, "Average Output Length (tokens):");
    let avg_isl = value(s, "Average Input Length (tokens):");
    assert!(close(out_tps / req_s, avg_osl, 1e-3), "{s}");
    let avg_lat = value(s, "Average request latency (ms):");
    let conc = value(s, "Number of concurrent requests:");
    assert!(close(conc, avg_lat * n as f64 / total_ms, 1e-3), "{s}");
    if s.contains("Total Token Throughput (tokens/sec):") {
        let total_tps = value(s, "Total Token Throughput (tokens/sec):");
        assert!(close(total_tps, (avg_isl + avg_osl) * req_s, 1e-3), "{s}");
    }
    assert_eq!(value(s, "Number of requests:"), n as f64);
    assert_eq!(value(s, "Number of Sequences:"), n as f64);
    assert!(close(value(s, "[Latency] AVERAGE:"), avg_lat, 1e-6), "{s}");
    assert_logged_report_start(s);
}

fn check_percentiles(s: &str, tag: &str) {
    let get = |name: &str| value(s, &format!("[{tag}] {name:<7}:"));
    let (min, p50, p90, p95, p99, max) = (
        get("MINIMUM"),
        get("P50"),
        get("P90"),
        get("P95"),
        get("P99"),
        get("MAXIMUM"),
    );
    assert!(
        min <= p50 && p50 <= p90 && p90 <= p95 && p95 <= p99 && p99 <= max,
        "[{tag}] percentiles out of order:\n{s}"
    );
    let avg = get("AVERAGE");
    assert!(min <= avg && avg <= max, "{s}");
}

#[test]
fn era_d_is_the_default_and_self_consistent_with_its_report_json() {
    let c = Case::new(40);
    let o = c.throughput(&["--streaming", "--concurrency=8"], &[]);
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    let s = &o.stdout;
    for title in [
        "= PYTORCH BACKEND",
        "= REQUEST DETAILS ",
        "= WORLD + RUNTIME INFORMATION ",
        "= PERFORMANCE OVERVIEW ",
        "= DATASET DETAILS",
        "-- Per-Request Generation Throughput [GTPS] Breakdown (tps/user)",
        "-- Request Latency Breakdown (ms) -----------------------",
    ] {
        assert!(s.lines().any(|l| l == title), "no `{title}`:\n{s}");
    }
    assert!(s.contains("Model:\t\t\tmeta-llama/Llama-3.1-8B"), "{s}");
    assert!(
        s.contains("[TensorRT-LLM][INFO] [MemUsageChange] Allocated "),
        "{s}"
    );
    check_modern(&o, 40);
    for tag in ["TPOT", "TTFT", "GTPS", "Latency"] {
        check_percentiles(s, tag);
    }
    assert!(
        close(
            value(s, "Average time-to-first-token [TTFT] (ms):"),
            value(s, "[TTFT] AVERAGE:"),
            1e-6
        ),
        "{s}"
    );
    // D's order: the token throughput right after the output throughput.
    let pos = |l: &str| s.find(l).unwrap_or_else(|| panic!("no {l}"));
    assert!(
        pos("Total Output Throughput") < pos("Total Token Throughput")
            && pos("Total Token Throughput") < pos("Total Latency (ms)")
            && pos("Per User Output Throughput [w/ ctx] (tps/user):")
                < pos("Per GPU Output Throughput (tps/gpu):"),
        "{s}"
    );

    let r = c.report();
    for key in [
        "engine",
        "world_info",
        "request_info",
        "performance",
        "streaming_metrics",
        "dataset",
    ] {
        assert!(r.get(key).is_some(), "report.json lacks {key}: {r}");
    }
    let perf = &r["performance"];
    for key in [
        "total_latency_ms",
        "avg_request_latency_ms",
        "request_throughput_req_s",
        "system_output_throughput_tok_s",
        "system_total_throughput_tok_s",
        "output_throughput_per_user_tok_s",
        "output_throughput_per_gpu_tok_s",
    ] {
        assert!(perf[key].is_f64(), "performance.{key}: {perf}");
    }
    let pct = &perf["request_latency_percentiles_ms"];
    for key in ["p50", "p90", "p95", "p99", "minimum", "maximum", "average"] {
        assert!(pct[key].is_f64(), "{pct}");
    }
    assert_eq!(r["request_info"]["num_requests"], 40);
    assert_eq!(r["engine"]["backend"], "Pytorch");
    assert_eq!(r["dataset"]["num_requests"], 40);
    assert_eq!(
        format!(
            "{:.4}",
            perf["request_throughput_req_s"].as_f64().unwrap_or(0.0)
        ),
        format!("{:.4}", value(s, "Request Throughput (req/sec):"))
    );
    assert!(
        r["streaming_metrics"]["ttft_percentiles"]["p99"].is_f64(),
        "{r}"
    );
    // Python's json.dumps(indent=4).
    let raw = std::fs::read_to_string(c.path().join("report.json")).unwrap_or_default();
    assert!(
        raw.starts_with("{\n    \"engine\": {\n        \"model\": "),
        "{raw}"
    );
}

#[test]
fn era_c_and_c_prime_differ_only_where_upstream_did() {
    let c = Case::new(30);
    let o = c.throughput(&[], &[("FAKE_BENCH_ERA", "C")]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    check_modern(&o, 30);
    let s = &o.stdout;
    assert!(s.lines().any(|l| l == "= PERFORMANCE OVERVIEW"), "{s}");
    assert!(
        s.contains("Per User Output Throughput (tokens/sec/user):"),
        "{s}"
    );
    assert!(!s.contains("Total Token Throughput"), "{s}");
    assert!(!s.contains("[TPOT]"), "no streaming, no TPOT:\n{s}");

    let o = c.throughput(&["--streaming"], &[("FAKE_BENCH_ERA", "C'")]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    check_modern(&o, 30);
    let s = &o.stdout;
    let per_gpu = s.find("Per GPU Output Throughput (tokens/sec/gpu):");
    let token = s.find("Total Token Throughput (tokens/sec):");
    assert!(per_gpu.is_some() && token > per_gpu, "{s}");
    assert!(
        s.contains("Per User Output Speed [1/TPOT] (tokens/sec/user): "),
        "{s}"
    );
    assert!(!s.contains("[GTPS]"), "GTPS is era D only:\n{s}");
    check_percentiles(s, "TPOT");
}

#[test]
fn era_b_has_tabs_and_the_old_overview() {
    let c = Case::new(25);
    let o = c.throughput(&["--tp=2"], &[("FAKE_BENCH_ERA", "B")]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let s = &o.stdout;
    assert!(s.lines().any(|l| l == "= PyTorch backend"), "{s}");
    assert!(s.contains("Number of requests:\t\t25\n"), "{s}");
    assert!(s.contains("TP Size:\t\t2\n"), "{s}");
    assert!(s.contains("KV Memory Percentage:\t90.00%\n"), "{s}");
    let rate = regex::Regex::new(r"Issue Rate \(req/sec\):\t\d\.\d{4}E\+\d\d\n").expect("re");
    assert!(rate.is_match(s), "{s}");
    let req_s = value(s, "Request Throughput (req/sec):");
    let total_ms = value(s, "Total Latency (ms):");
    assert!(close(req_s * total_ms / 1e3, 25.0, 1e-3), "{s}");
    let tok = value(s, "Token Throughput (tokens/sec):");
    assert!(close(
        tok / req_s,
        value(s, "Average Output Length (tokens):"),
        1e-3
    ));
    assert_logged_report_start(s);
    assert_eq!(c.report()["world_info"]["world_size"], 2);
}

#[test]
fn build_writes_the_engine_that_throughput_reads_and_era_a_reports_on_it() {
    let c = Case::new(20);
    let ws = c.path().join("ws");
    let ws_arg = format!("--workspace={}", ws.display());
    let build = |env: &[(&str, &str)]| {
        run(
            c.path(),
            &[
                "--log_level=info",
                &ws_arg,
                "--model=meta-llama/Llama-3.1-8B",
                "--model_path=/models/llama",
                "build",
                "--tp_size=2",
                "--pp_size=1",
                "--max_seq_len=512",
                "--max_batch_size=256",
                "--max_num_tokens=4096",
                "--quantization=FP8",
                "--trust_remote_code=True",
            ],
            env,
        )
    };
    let o = build(&[]);
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    let engine = ws.join("meta-llama/Llama-3.1-8B/tp_2_pp_1");
    assert!(engine.join("config.json").is_file(), "{}", o.stdout);
    assert!(engine.join("rank1.engine").is_file());
    let re = regex::Regex::new(r"\[TRT\] \[I\] Engine generation completed in ([0-9.]+) seconds\.")
        .expect("re");
    let secs = |s: &str| -> f64 {
        re.captures(s)
            .and_then(|c| c[1].parse().ok())
            .unwrap_or_else(|| panic!("no build time in:\n{s}"))
    };
    let t1 = secs(&o.stdout);
    assert!(t1 > 0.0);
    assert!(
        o.stdout
            .contains(&format!("ENGINE SAVED: {}", engine.display())),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("= ENGINE CONFIGURATION DETAILS"));
    let t2 = secs(&build(&[("FAKE_BENCH_SCALE", "2")]).stdout);
    assert!(close(t1 / t2, 2.0, 1e-3), "{t1} vs {t2}");

    let d = c.dataset_arg();
    let e = format!("--engine_dir={}", engine.display());
    let o = run(
        c.path(),
        &[
            "--model=meta-llama/Llama-3.1-8B",
            "throughput",
            &d,
            "--backend=tensorrt",
            &e,
        ],
        &[("FAKE_BENCH_ERA", "A")],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let s = &o.stdout;
    assert!(s.lines().any(|l| l == "= STATISTICS"), "{s}");
    assert!(!s.contains("PERFORMANCE OVERVIEW"), "{s}");
    assert!(s.contains("Max Sequence Length:\t512\n"), "{s}");
    assert!(s.contains("Quantization:\t\tFP8\n"), "{s}");
    assert!(s.contains("TP Size:\t\t2\n"), "{s}");
    let req_s = value(s, "Request Throughput (req/sec):");
    let total_s = value(s, "Total Latency (seconds):");
    assert!(close(req_s * total_s, 20.0, 1e-9), "{s}");
    // Python floats: `128.0`, not `128.0000`.
    let avg = s
        .lines()
        .find(|l| l.starts_with("Average Input Length (tokens):"))
        .unwrap_or_default();
    assert!(!avg.ends_with("0000"), "{avg}");
}

#[test]
fn build_checks_its_options() {
    let c = Case::new(3);
    let d = c.dataset_arg();
    let o = run(
        c.path(),
        &[
            "--model=m",
            "build",
            &d,
            "--max_batch_size=8",
            "--max_num_tokens=64",
        ],
        &[],
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("Only one of --dataset"), "{}", o.stderr);
    let o = run(
        c.path(),
        &["--model=m", "build", "--tp_size=4", "--pp_size=4"],
        &[],
    );
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(
        o.stderr.contains("ValueError: TP × PP = 16"),
        "{}",
        o.stderr
    );
    // Sized from the dataset: the build's DATASET DETAILS section.
    let ws = format!("--workspace={}", c.path().display());
    let o = run(c.path(), &[&ws, "--model=m", "build", &d], &[]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        o.stdout.contains("Number of Sequences:\t3\n"),
        "{}",
        o.stdout
    );
    assert!(c.path().join("m/tp_1_pp_1/config.json").is_file());
}

#[test]
fn latency_prints_the_era_b_report_or_the_streaming_report() {
    let c = Case::new(12);
    let d = c.dataset_arg();
    let r = c.report_arg();
    let args = [
        "--model=meta-llama/Llama-3.1-8B",
        "latency",
        d.as_str(),
        r.as_str(),
        "--backend=pytorch",
    ];
    let o = run(c.path(), &args, &[("FAKE_BENCH_ERA", "B")]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let s = &o.stdout;
    for title in [
        "= GENERAL OVERVIEW ",
        "= THROUGHPUT OVERVIEW ",
        "= LATENCY OVERVIEW ",
        "= GENERATION LATENCY BREAKDOWN ",
        "= ACCEPTANCE BREAKDOWN ",
    ] {
        assert!(s.lines().any(|l| l == title), "no `{title}`:\n{s}");
    }
    assert!(s.contains("Max Runtime Batch Size:\t1\n"), "{s}");
    let rep = c.report();
    // Upstream's bug, kept: the `P90` line shows the p50 latency.
    let p50 = rep["performance"]["request_latency_percentiles_ms"]["p50"]
        .as_f64()
        .unwrap_or(-1.0);
    assert_eq!(format!("{:.4}", value(s, "P90 (ms):")), format!("{p50:.4}"));
    let req_s = value(s, "Request Throughput (req/sec):");
    assert!(close(
        req_s * value(s, "Total Latency (ms):") / 1e3,
        12.0,
        1e-3
    ));
    assert!(
        rep["streaming_metrics"]["avg_ttft_ms"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );

    let o = run(c.path(), &args, &[]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    check_modern(&o, 12);
    check_percentiles(&o.stdout, "TTFT");
    // One request at a time: the concurrency is exactly 1 up to the submission gaps.
    assert!(value(&o.stdout, "Number of concurrent requests:") <= 1.0);
}

#[test]
fn both_option_forms_and_prompt_lines_are_accepted() {
    let c = Case::new(10);
    let d = c.data.display().to_string();
    let r1 = c.path().join("r1.json").display().to_string();
    let r2 = c.path().join("r2.json").display().to_string();
    let eq = run(
        c.path(),
        &[
            "--model=m",
            "throughput",
            &format!("--dataset={d}"),
            &format!("--report_json={r1}"),
            "--num_requests=7",
        ],
        &[],
    );
    let sp = run(
        c.path(),
        &[
            "--model",
            "m",
            "throughput",
            "--dataset",
            &d,
            "--report_json",
            &r2,
            "--num_requests",
            "7",
        ],
        &[],
    );
    assert_eq!(
        (eq.code, sp.code),
        (Some(0), Some(0)),
        "{}{}",
        eq.stderr,
        sp.stderr
    );
    assert_eq!(json(Path::new(&r1)), json(Path::new(&r2)));
    assert_eq!(json(Path::new(&r1))["request_info"]["num_requests"], 7);

    let p = c.path().join("prompts.jsonl");
    std::fs::write(
        &p,
        "{\"task_id\":0,\"prompt\":\"one two three\",\"output_tokens\":5}\n{\"task_id\":1,\"logits\":[1,2,3,4],\"output_tokens\":5}\n",
    )
    .expect("write");
    let o = run(
        c.path(),
        &[
            "--model=m",
            "throughput",
            &format!("--dataset={}", p.display()),
            "--num_requests=9",
        ],
        &[],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    // 3 words + BOS, and 4 ids: 4 on average; fewer lines than asked is a warning.
    assert_eq!(value(&o.stdout, "Average Input Length (tokens):"), 4.0);
    assert!(
        o.stdout
            .contains("[TRT-LLM] [W] Requested 9 requests but the dataset holds 2")
    );
}

#[test]
fn command_line_errors_are_clicks() {
    let c = Case::new(2);
    let d = c.dataset_arg();
    for (args, needle) in [
        (
            vec!["--model=m", "throughput", d.as_str(), "--bogus=1"],
            "Error: No such option: --bogus",
        ),
        (
            vec!["--model=m", "throughput", d.as_str(), "--streaming=True"],
            "Error: Option '--streaming' does not take a value.",
        ),
        (
            vec![
                "--model=m",
                "throughput",
                d.as_str(),
                "--max_batch_size",
                "x",
            ],
            "Error: Invalid value for '--max_batch_size': 'x' is not a valid integer.",
        ),
        (
            vec!["--model=m", "throughput", d.as_str(), "--backend=onnx"],
            "is not one of 'pytorch', '_autodeploy', 'tensorrt'",
        ),
        (
            vec!["--model=m", "throughput", "--dataset=/no/such/file"],
            "Error: Invalid value for '--dataset': Path '/no/such/file' does not exist.",
        ),
        (
            vec!["--model=m", "throughput"],
            "Error: Missing option '--dataset'.",
        ),
        (
            vec!["throughput", d.as_str()],
            "Error: Missing option '--model' / '-m'.",
        ),
        (
            vec!["--model=m", "frobnicate"],
            "Error: No such command 'frobnicate'.",
        ),
        (
            vec!["--model=m", "latency", d.as_str(), "--streaming"],
            "Error: No such option: --streaming",
        ),
        (
            vec!["--model=m", "throughput", d.as_str(), "--num_requests"],
            "Error: Option '--num_requests' requires an argument.",
        ),
    ] {
        let o = run(c.path(), &args, &[]);
        assert_eq!(o.code, Some(2), "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
        assert!(o.stderr.starts_with("Usage: trtllm-bench"), "{}", o.stderr);
        assert!(o.stdout.is_empty(), "{args:?} printed a report");
    }
    let o = run(c.path(), &["--model=m", "throughput", "--help"], &[]);
    assert_eq!(o.code, Some(0));
    assert!(
        o.stdout.contains("--kv_cache_free_gpu_mem_fraction"),
        "{}",
        o.stdout
    );
}

#[test]
fn bad_inputs_fail_clearly() {
    let c = Case::new(2);
    let d = c.dataset_arg();
    let write = |name: &str, text: &str| {
        let p = c.path().join(name);
        std::fs::write(&p, text).expect("write");
        format!("--dataset={}", p.display())
    };
    for (dataset, needle) in [
        (write("empty.jsonl", ""), "is empty: no requests to run"),
        (
            write(
                "json.jsonl",
                "{\"task_id\":0,\"input_ids\":[1],\"output_tokens\":2}\n{nope\n",
            ),
            "json.jsonl:2: invalid JSON",
        ),
        (
            write(
                "blank.jsonl",
                "{\"task_id\":0,\"input_ids\":[1],\"output_tokens\":2}\n\n{\"task_id\":1,\"input_ids\":[1],\"output_tokens\":2}\n",
            ),
            "blank.jsonl:2: empty line",
        ),
        (
            write("osl.jsonl", "{\"task_id\":0,\"input_ids\":[1]}\n"),
            "task 0: missing output_tokens",
        ),
        (
            write("none.jsonl", "{\"task_id\":3,\"output_tokens\":2}\n"),
            "prompt, input_ids, and turns for task 3 are all None",
        ),
        (
            write(
                "ids.jsonl",
                "{\"task_id\":0,\"input_ids\":[1,\"x\"],\"output_tokens\":2}\n",
            ),
            "input_ids must hold token ids",
        ),
    ] {
        let o = run(c.path(), &["--model=m", "throughput", &dataset], &[]);
        assert_eq!(o.code, Some(1), "{dataset}: {}", o.stderr);
        assert!(o.stderr.contains(needle), "{dataset}: {}", o.stderr);
        assert!(o.stderr.contains("Traceback (most recent call last):"));
    }
    let o = run(
        c.path(),
        &[
            "--model=m",
            "throughput",
            &d,
            "--extra_llm_api_options=/no/such.yml",
        ],
        &[],
    );
    assert_eq!(o.code, Some(1));
    assert!(
        o.stderr
            .contains("FileNotFoundError: [Errno 2] No such file or directory: '/no/such.yml'"),
        "{}",
        o.stderr
    );
    let o = run(
        c.path(),
        &[
            "--model=m",
            "throughput",
            &d,
            "--backend=tensorrt",
            "--engine_dir=/no/engine",
        ],
        &[],
    );
    assert_eq!(o.code, Some(1));
    assert!(
        o.stderr.contains("run `trtllm-bench build` first"),
        "{}",
        o.stderr
    );
    let o = run(
        c.path(),
        &["--model=m", "throughput", &d],
        &[("FAKE_BENCH_MODE", "explode")],
    );
    assert_eq!(o.code, Some(64));
    assert!(o.stderr.contains("unknown mode `explode`"), "{}", o.stderr);
    let o = run(
        c.path(),
        &["--model=m", "throughput", &d],
        &[("FAKE_BENCH_SCALE", "-1")],
    );
    assert_eq!(o.code, Some(64));
}

#[test]
fn crash_dies_of_sigsegv_half_way_through_the_report() {
    let c = Case::new(10);
    let o = c.throughput(&[], &[("FAKE_BENCH_MODE", "crash")]);
    assert_eq!(
        (o.code, o.signal),
        (None, Some(libc::SIGSEGV)),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("Segmentation fault (core dumped)"),
        "{}",
        o.stderr
    );
    assert!(o.stdout.contains("= REQUEST DETAILS"), "{}", o.stdout);
    assert!(!o.stdout.contains("= DATASET DETAILS"), "{}", o.stdout);
    assert!(!c.path().join("report.json").exists());
    let cores = std::fs::read_dir(c.path())
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("core"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(cores, 0, "a core file was left behind");
}

#[test]
fn failed_requests_drop_exit_and_no_report_json() {
    let c = Case::new(30);
    let o = c.throughput(
        &[],
        &[(
            "FAKE_BENCH_MODE",
            "failed-requests, drop:Total Latency,exit:7,no-report-json",
        )],
    );
    assert_eq!(o.code, Some(7), "{}", o.stderr);
    let s = &o.stdout;
    assert_eq!(value(s, "Failed requests:"), 3.0, "{s}");
    assert!(s.contains("!FAILED REQUESTS!"), "{s}");
    assert!(s.contains("[TRT-LLM] [E] Request "), "{s}");
    assert!(!s.lines().any(|l| l.starts_with("Total Latency")), "{s}");
    assert!(s.contains("= DATASET DETAILS"), "the run finishes:\n{s}");
    assert!(
        o.stderr
            .contains("simulated failure: exiting with status 7")
    );
    assert!(!c.path().join("report.json").exists());
}

#[test]
fn modes_per_subcommand_and_per_model() {
    let c = Case::new(5);
    // The per-subcommand variable wins, even when empty.
    let o = c.throughput(
        &[],
        &[
            ("FAKE_BENCH_MODE", "exit:5"),
            ("FAKE_BENCH_MODE_THROUGHPUT", ""),
        ],
    );
    assert_eq!(o.code, Some(0));
    let o = c.throughput(
        &[],
        &[
            ("FAKE_BENCH_MODE", ""),
            ("FAKE_BENCH_MODE_THROUGHPUT", "exit:6"),
        ],
    );
    assert_eq!(o.code, Some(6));
    let o = run(
        c.path(),
        &[
            &format!("--workspace={}", c.path().display()),
            "--model=m",
            "build",
        ],
        &[
            ("FAKE_BENCH_MODE_BUILD", "exit:4"),
            ("FAKE_BENCH_MODE_THROUGHPUT", "crash"),
        ],
    );
    assert_eq!(o.code, Some(4), "{}", o.stderr);
    // Only models whose --model contains the substring get the modes.
    let only = [
        ("FAKE_BENCH_MODE", "exit:9"),
        ("FAKE_BENCH_MODE_FOR", "70B,nemotron"),
    ];
    assert_eq!(c.throughput(&[], &only).code, Some(0));
    let d = c.dataset_arg();
    let o = run(
        c.path(),
        &[
            "--model=meta-llama/Llama-3.3-70B-Instruct",
            "throughput",
            &d,
            "--backend=pytorch",
        ],
        &only,
    );
    assert_eq!(o.code, Some(9));
}

#[test]
fn scale_and_noise_move_the_numbers_deterministically() {
    let c = Case::new(50);
    let rps = |env: &[(&str, &str)]| -> f64 {
        let o = c.throughput(&[], env);
        assert_eq!(o.code, Some(0), "{}", o.stderr);
        c.report()["performance"]["request_throughput_req_s"]
            .as_f64()
            .unwrap_or(0.0)
    };
    let base = rps(&[]);
    let fast = rps(&[("FAKE_BENCH_SCALE", "2")]);
    let slow = rps(&[("FAKE_BENCH_SCALE", "0.5")]);
    assert!(close(fast / base, 2.0, 0.01), "{base} {fast}");
    assert!(close(base / slow, 2.0, 0.01), "{base} {slow}");
    assert_eq!(rps(&[]), base, "deterministic");
    // FAKE_BENCH_SCALE_FOR restricts the factor to models containing one of its substrings.
    let only_llama = [
        ("FAKE_BENCH_SCALE", "2"),
        ("FAKE_BENCH_SCALE_FOR", "qwen,Llama-3.1"),
    ];
    assert_eq!(rps(&only_llama), fast);
    let only_qwen = [("FAKE_BENCH_SCALE", "2"), ("FAKE_BENCH_SCALE_FOR", "qwen")];
    assert_eq!(rps(&only_qwen), base);
    // Without noise the seed does not matter; with it, the seed decides.
    assert_eq!(rps(&[("FAKE_BENCH_SEED", "7")]), base);
    let n1 = rps(&[("FAKE_BENCH_NOISE", "0.05"), ("FAKE_BENCH_SEED", "1")]);
    let n1b = rps(&[("FAKE_BENCH_NOISE", "0.05"), ("FAKE_BENCH_SEED", "1")]);
    let n2 = rps(&[("FAKE_BENCH_NOISE", "0.05"), ("FAKE_BENCH_SEED", "2")]);
    assert_eq!(n1, n1b);
    assert_ne!(n1, n2);
    assert!(
        close(n1, base, 0.3) && close(n2, base, 0.3),
        "{base} {n1} {n2}"
    );
}

/// Starts the double with piped stdout and forwards its lines with their arrival times.
fn spawn_lines(cmd: &mut Command) -> (std::process::Child, mpsc::Receiver<(Instant, String)>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signals the process group the test created for this child.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

/// Kills the child's process group when dropped, so a failing assertion does not leave a hung
/// double (or its worker) behind.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        kill_group(&mut self.0);
    }
}

fn args_for(c: &Case) -> Vec<String> {
    vec![
        "--model=m".into(),
        "throughput".into(),
        c.dataset_arg(),
        "--backend=pytorch".into(),
    ]
}

#[test]
fn hangs_stop_printing_and_never_exit() {
    let c = Case::new(5);
    let args = args_for(&c);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for mode in ["hang", "fatal-hang"] {
        let (child, rx) = spawn_lines(&mut command(c.path(), &args, &[("FAKE_BENCH_MODE", mode)]));
        let mut child = Group(child);
        // Read until the output stops for a while.
        let mut seen = Vec::new();
        let first_wait = Duration::from_secs(20);
        while let Ok((_, line)) = rx.recv_timeout(if seen.is_empty() {
            first_wait
        } else {
            Duration::from_millis(500)
        }) {
            seen.push(line);
        }
        // Stopped right after the measured run started (warmup's own start came before).
        assert!(
            seen.last()
                .is_some_and(|l| l.ends_with("Starting benchmark...")),
            "{mode}: {seen:?}"
        );
        assert!(
            seen.iter().any(|l| l.ends_with("Warmup done.")),
            "{mode}: {seen:?}"
        );
        assert!(!seen.iter().any(|l| l.starts_with("=")), "{mode}: a report");
        assert!(
            child.0.try_wait().ok().flatten().is_none(),
            "{mode}: it exited"
        );
        let mut err = String::new();
        kill_group(&mut child.0);
        if let Some(mut e) = child.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        assert_eq!(
            err.contains("Fatal Python error: Aborted"),
            mode == "fatal-hang",
            "{mode}: {err}"
        );
    }
    let (child, rx) = spawn_lines(&mut command(
        c.path(),
        &args,
        &[("FAKE_BENCH_MODE", "silent-hang")],
    ));
    let mut child = Group(child);
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "silent-hang printed"
    );
    assert!(
        child.0.try_wait().ok().flatten().is_none(),
        "silent-hang exited"
    );
}

#[test]
fn output_is_flushed_line_by_line() {
    let c = Case::new(3);
    let args = args_for(&c);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    let (child, rx) = spawn_lines(&mut command(
        c.path(),
        &args,
        &[("FAKE_BENCH_MODE", "slow:10")],
    ));
    let mut child = Group(child);
    let (first, _) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a first line");
    let mut last = first;
    let mut count = 1;
    while let Ok((at, _)) = rx.recv_timeout(Duration::from_secs(20)) {
        last = at;
        count += 1;
    }
    let status = child.0.wait().expect("wait");
    assert!(status.success());
    assert!(count > 50, "{count} lines");
    // Lines arrive as they are printed, not all at exit.
    assert!(
        last.duration_since(first) >= Duration::from_millis(10 * (count - 1) / 2),
        "{count} lines in {:?} (started {:?} ago)",
        last.duration_since(first),
        t0.elapsed()
    );
}

#[test]
fn spawn_child_leaves_a_worker_in_the_process_group() {
    let c = Case::new(3);
    let args = args_for(&c);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = Group(
        command(c.path(), &args, &[("FAKE_BENCH_MODE", "spawn-child")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let group = i32::try_from(child.0.id()).expect("pid");
    let mut text = String::new();
    if let Some(mut o) = child.0.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut text);
    }
    assert!(child.0.wait().expect("wait").success());
    let pid: i32 = regex::Regex::new(r"Started worker process \(pid (\d+)\)")
        .expect("re")
        .captures(&text)
        .and_then(|c| c[1].parse().ok())
        .unwrap_or_else(|| panic!("no worker pid in:\n{text}"));
    // SAFETY: getpgid on a process this test started.
    let pgid = unsafe { libc::getpgid(pid) };
    assert_eq!(pgid, group, "the worker left the process group");
    // The double has exited; killing its group reaches the worker.
    drop(child);
    let gone = |pid: i32| {
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
    while !gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone(pid), "the worker {pid} survived the group kill");
}
