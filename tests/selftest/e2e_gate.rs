//! The gate end to end, through the harness and the trtllm-bench test double: nights build up
//! a history, a slowdown fails its test with the evidence in every output (terminal, JUnit,
//! gate.jsonl, the markdown report, the history), an UNKNOWN is rerun within its budget, and
//! `--gate upstream` reads an upstream base_perf.csv as it is.

use std::path::Path;

use perfgate::record::Verdict;
use perfgate::record::VerdictRecord;

use super::e2e::run;

const LIST: &str = "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4\n";

fn verdicts(out: &Path) -> Vec<VerdictRecord> {
    perfgate::results::verdicts::read(&out.join("gate.jsonl")).expect("gate.jsonl")
}

fn night(
    dir: &Path,
    n: u32,
    scale: &str,
    extra: &[&str],
) -> ((u64, u64, u64), String, Vec<VerdictRecord>) {
    let history = dir.join("history.sqlite");
    let mut args = Vec::new();
    if !extra.contains(&"--repeat") {
        args.extend(["--repeat", "2"]);
    }
    if !extra.contains(&"--no-history") {
        args.extend(["--history", history.to_str().expect("utf-8")]);
    }
    args.extend_from_slice(extra);
    let seed = n.to_string();
    // Each night is its own output directory, as in CI.
    let night_dir = dir.join(format!("night{n}"));
    std::fs::create_dir_all(&night_dir).expect("mkdir");
    let (counts, text) = run(
        &night_dir,
        LIST,
        &args,
        &[
            ("FAKE_BENCH_NOISE", "0.004"),
            ("FAKE_BENCH_SEED", &seed),
            ("FAKE_BENCH_SCALE", scale),
        ],
    );
    let records = verdicts(&night_dir.join("out"));
    (counts, text, records)
}

fn token_throughput(records: &[VerdictRecord]) -> &VerdictRecord {
    records
        .iter()
        .rev()
        .find(|r| r.metric == "TOKEN_THROUGHPUT")
        .expect("a TOKEN_THROUGHPUT verdict")
}

#[test]
fn nights_build_a_history_and_a_slowdown_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    for n in 1..=6 {
        let (counts, text, records) = night(dir.path(), n, "1", &[]);
        assert_eq!(counts, (1, 0, 0), "night {n}:\n{text}");
        let t = token_throughput(&records);
        if n == 1 {
            assert_eq!(t.verdict, Verdict::New, "{t:?}");
            assert!(text.contains("NEW"), "{text}");
        }
        assert!(t.gated);
        assert!(t.fingerprint.is_empty() || !t.fingerprint.contains("host"));
    }
    let (counts, text, records) = night(dir.path(), 7, "0.9", &[]);
    assert_eq!(counts, (0, 1, 0), "{text}");
    let t = token_throughput(&records);
    assert_eq!(t.verdict, Verdict::Fail, "{}", t.explanation);
    assert_eq!(t.source, "history");
    assert!(t.history_nights >= 5, "{t:?}");
    assert!(
        t.change_pct.is_some_and(|c| (c + 10.0).abs() < 2.0),
        "{t:?}"
    );
    // The failure message, the summary table and the markdown report all say it.
    assert!(text.contains("gate: FAIL TOKEN_THROUGHPUT"), "{text}");
    assert!(text.contains("perfgate verdicts"), "{text}");
    let out = dir.path().join("night7/out");
    let md = std::fs::read_to_string(out.join("perf_report.md")).expect("markdown");
    assert!(md.contains("### Needs attention"), "{md}");
    assert!(md.contains("**FAIL**"), "{md}");
    let xml = std::fs::read_to_string(out.join("results.xml")).expect("junit");
    assert!(
        xml.contains(r#"name="TOKEN_THROUGHPUT.verdict" value="FAIL""#),
        "{xml}"
    );
    super::junit_xsd::validate(&out.join("results.xml")).expect("valid JUnit");

    // The history remembers the verdict; `perfgate gate` shows it to scripts.
    let gate = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(["gate", "--format", "json", "--history"])
        .arg(dir.path().join("history.sqlite"))
        .output()
        .expect("perfgate gate");
    assert_eq!(gate.status.code(), Some(1), "a gated FAIL exits 1");
    let stored: Vec<VerdictRecord> = serde_json::from_slice(&gate.stdout).expect("json");
    assert!(
        stored
            .iter()
            .any(|r| r.metric == "TOKEN_THROUGHPUT" && r.verdict == Verdict::Fail),
        "{stored:?}"
    );

    // --fail-on never reports the same regression without failing the test; and the
    // regression is not absorbed into the history: night after night it still fails.
    for n in 8..=10 {
        let (counts, text, records) = night(dir.path(), n, "0.9", &["--fail-on", "never"]);
        assert_eq!(counts, (1, 0, 0), "{text}");
        assert_eq!(
            token_throughput(&records).verdict,
            Verdict::Fail,
            "night {n}"
        );
    }
}

#[test]
fn an_unknown_is_rerun_within_its_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    for n in 1..=5 {
        night(dir.path(), n, "1", &[]);
    }
    // One repetition that looks slow cannot fail on its own: the gate asks for more.
    let (counts, text, records) = night(
        dir.path(),
        6,
        "0.9",
        &["--repeat", "1", "--max-reruns", "1"],
    );
    let t = token_throughput(&records);
    assert_eq!(t.reruns, 1, "{t:?}\n{text}");
    assert_eq!(t.reps.len(), 2, "{t:?}");
    assert_eq!(t.verdict, Verdict::Fail, "{}", t.explanation);
    assert_eq!(counts, (0, 1, 0), "{text}");
    let log = std::fs::read_to_string(
        std::fs::read_dir(dir.path().join("night6/out"))
            .expect("out")
            .filter_map(Result::ok)
            .map(|e| e.path().join("perf.log"))
            .find(|p| p.exists())
            .expect("a perf.log"),
    )
    .expect("log");
    assert!(log.contains("rerun: repetition 2"), "{log}");
}

#[test]
fn upstream_mode_reads_base_perf_csv_as_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One night to learn the label and the value, then an upstream-format baseline 30% off.
    let (_, _, first) = night(dir.path(), 1, "1", &[]);
    let t = token_throughput(&first);
    let value = t.value.expect("value");
    let csv = format!(
        "network_name,perf_case_name,test_name,threshold,absolute_threshold,metric_type,perf_metric\n\
         \"{}\",\"{}\",\"{}\",-0.1,10,TOKEN_THROUGHPUT,{}\n",
        t.network_name,
        t.perf_case_name,
        t.test_name,
        value * 1.3
    );
    let base = dir.path().join("base_perf.csv");
    std::fs::write(&base, csv).expect("write");
    let base_arg = base.to_str().expect("utf-8");
    let (counts, text, records) = night(
        dir.path(),
        2,
        "1",
        &["--gate", "upstream", "--baseline-file", base_arg],
    );
    let t = token_throughput(&records);
    assert_eq!(t.verdict, Verdict::Fail, "{}", t.explanation);
    assert!(t.explanation.contains("isclose"), "{}", t.explanation);
    assert_eq!(counts, (0, 1, 0), "{text}");
    // The default gate on the same baseline (no history: --no-history) also fails it; with
    // the baseline at the value it passes.
    let (counts, text, _) = night(
        dir.path(),
        3,
        "1",
        &["--no-history", "--baseline-file", base_arg],
    );
    assert_eq!(counts, (0, 1, 0), "{text}");
}

#[test]
fn a_result_beyond_physics_is_invalid_not_a_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The prefix names the GPU (H100_80GB_HBM3 is an H100 SXM), so the limits are known.
    // A benchmark 50x faster than the first night is beyond the H100's compute ceiling.
    night(dir.path(), 1, "1", &["--test-prefix", "H100_80GB_HBM3"]);
    let (counts, text, records) = night(dir.path(), 2, "50", &["--test-prefix", "H100_80GB_HBM3"]);
    let t = token_throughput(&records);
    assert_eq!(t.verdict, Verdict::Invalid, "{}", t.explanation);
    assert!(
        t.evidence.iter().any(|e| e.contains("above the ceiling")),
        "{:?}",
        t.evidence
    );
    assert!(t.roofline_pct.is_some_and(|p| p > 110.0), "{t:?}");
    assert_eq!(counts, (0, 1, 0), "{text}");
    assert!(text.contains("gate: INVALID TOKEN_THROUGHPUT"), "{text}");
}

fn perfgate(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(args)
        .env_remove("PERF_HISTORY")
        .output()
        .expect("perfgate runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn accepting_a_regression_rebaselines_and_restarts_the_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    for n in 1..=6 {
        night(dir.path(), n, "1", &[]);
    }
    let (counts, text, _) = night(dir.path(), 7, "0.9", &[]);
    assert_eq!(counts, (0, 1, 0), "{text}");
    let from = dir.path().join("night7/out");
    let file = dir.path().join("baselines.csv");
    let history = dir.path().join("history.sqlite");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let (from, file, history) = (s(&from), s(&file), s(&history));
    let update = |extra: &[&str]| {
        let mut args = vec![
            "baseline",
            "update",
            "--from",
            &from,
            "--file",
            &file,
            "--history",
            &history,
            "--reason",
            "slower kernel accepted for accuracy (PR 42)",
        ];
        args.extend_from_slice(extra);
        perfgate(&args)
    };
    // A regression is never absorbed silently: refused, named, exit 1.
    let (code, text) = update(&[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("REFUSED"), "{text}");
    assert!(text.contains("--accept-regressions"), "{text}");
    // Accepted on purpose: written with the reason, and the history restarts there.
    let (code, text) = update(&["--accept-regressions"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("change point(s) acknowledged"), "{text}");
    let csv = std::fs::read_to_string(&file).expect("baseline written");
    assert!(
        csv.contains("slower kernel accepted for accuracy (PR 42)"),
        "{csv}"
    );
    assert!(
        std::fs::read_to_string(dir.path().join("night7/out/perf_patch.patch"))
            .expect("patch")
            .contains("+++ b/"),
    );
    // The next night at the new level compares with the new baseline, not the old history.
    let (counts, text, records) = night(dir.path(), 8, "0.9", &["--baseline-file", &file]);
    let t = token_throughput(&records);
    assert_eq!(counts, (1, 0, 0), "{}\n{text}", t.explanation);
    assert_eq!(t.source, "baseline", "{t:?}");
    assert!(matches!(t.verdict, Verdict::Pass), "{}", t.explanation);
}

/// Issue 20 item 4: a report.json that contradicts its own log is not believed. Its values are
/// INVALID with both numbers in the evidence, in either gate, and `baseline update` never
/// takes them (upstream's gate keeps its NEW verdict and only attaches the evidence).
#[test]
fn a_report_json_that_contradicts_its_log_is_invalid_and_never_a_baseline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let forged = [(
        "FAKE_BENCH_MODE",
        "json-set:performance.output_throughput_per_gpu_tok_s=1e300",
    )];
    for (n, gate) in [(1, "default"), (2, "upstream")] {
        let night_dir = dir.path().join(format!("night{n}"));
        std::fs::create_dir_all(&night_dir).expect("mkdir");
        let (_, text) = run(&night_dir, LIST, &["--no-history", "--gate", gate], &forged);
        let out = night_dir.join("out");
        let t = token_throughput(&verdicts(&out)).clone();
        let evidence = t.evidence.join("\n");
        assert!(
            evidence.contains("report.json says 1e300") && evidence.contains("the log says"),
            "{gate}: {evidence}\n{text}"
        );
        match gate {
            "default" => assert_eq!(t.verdict, Verdict::Invalid, "{}", t.explanation),
            _ => assert_eq!(t.verdict, Verdict::New, "{}", t.explanation),
        }
        let file = night_dir.join("baselines.csv");
        let (code, text) = perfgate(&[
            "baseline",
            "update",
            "--from",
            out.to_str().expect("utf-8"),
            "--file",
            file.to_str().expect("utf-8"),
            "--reason",
            "nightly",
        ]);
        let csv = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            !csv.contains("TOKEN_THROUGHPUT"),
            "{gate}: a contradicted value became a baseline ({code:?}):\n{text}\n{csv}"
        );
    }
}

/// Issue 20 item 4: a latency no run can have (longer than the whole benchmark) is INVALID even
/// with no GPU type for a roofline and no second source to contradict it.
#[test]
fn a_latency_longer_than_the_benchmark_is_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [(
        "FAKE_BENCH_MODE",
        "drop:[Latency] P50,json-set:performance.request_latency_percentiles_ms.p50=1e300",
    )];
    let (_, text) = run(dir.path(), LIST, &["--no-history"], &env);
    let records = verdicts(&dir.path().join("out"));
    let t = token_throughput(&records);
    assert_eq!(t.verdict, Verdict::Invalid, "{}\n{text}", t.explanation);
    assert!(
        t.evidence
            .iter()
            .any(|e| e.contains("P50_LATENCY is 1e300 ms, longer than the whole benchmark")),
        "{:?}",
        t.evidence
    );
}

/// Issue 20 item 12: re-baselined from one night, then 20% slower: every metric that moved 20%
/// fails against the same ±10% band (SEQ_THROUGHPUT passed at ±50%, INFERENCE_TIME at ±89%,
/// upstream's absolute thresholds read as ratios), and no explanation prints a float's every
/// digit (`504.62688447982015`).
#[test]
fn derived_metrics_get_the_same_band_as_their_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _, first) = night(dir.path(), 1, "1", &["--no-history"]);
    assert_eq!(token_throughput(&first).verdict, Verdict::New);
    let file = dir.path().join("b.csv");
    let file_s = file.to_str().expect("utf-8");
    let from = dir.path().join("night1/out");
    let (code, text) = perfgate(&[
        "baseline",
        "update",
        "--from",
        from.to_str().expect("utf-8"),
        "--file",
        file_s,
        "--reason",
        "first night",
    ]);
    assert_eq!(code, Some(0), "{text}");
    let long_float = regex::Regex::new(r"\d\.\d{7,}").expect("regex");
    assert!(!long_float.is_match(&text), "{text}");
    let (_, text, records) = night(
        dir.path(),
        2,
        "0.8",
        &["--no-history", "--baseline-file", file_s],
    );
    // Issue 20 item 11: the failure names the verdict once (`TOKEN_THROUGHPUT: FAIL: ...`).
    assert!(text.contains("] TOKEN_THROUGHPUT: FAIL: -19."), "{text}");
    assert!(!text.contains("FAIL TOKEN_THROUGHPUT: FAIL"), "{text}");
    for metric in ["TOKEN_THROUGHPUT", "SEQ_THROUGHPUT", "INFERENCE_TIME"] {
        let r = records
            .iter()
            .find(|r| r.metric == metric)
            .unwrap_or_else(|| panic!("no {metric}:\n{text}"));
        assert_eq!(r.verdict, Verdict::Fail, "{metric}: {}", r.explanation);
        assert!(
            r.mde_pct.is_some_and(|m| (m - 10.0).abs() < 0.01),
            "{metric}: {r:?}"
        );
        assert!(!long_float.is_match(&r.explanation), "{}", r.explanation);
    }
    let kv = records
        .iter()
        .find(|r| r.metric == "KV_CACHE_SIZE")
        .expect("KV_CACHE_SIZE");
    assert!(kv.mde_pct.is_some_and(|m| m <= 10.01), "{kv:?}");
}
