//! Serving cases run for real through the harness (`perfgate run`), with the doubles of
//! tests/double/serve: `fake-trtllm-serve` as trtllm-serve (aggregated and disaggregated) and
//! `fake-serve-client` as `perfgate serve-bench` and as upstream's benchmark_serving. Servers
//! start, get ready, serve their cases' clients, and are gone afterwards on every path (checked
//! in the process table); faults give the right verdict and reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SERVE: &str = env!("CARGO_BIN_EXE_fake-trtllm-serve");
const CLIENT: &str = env!("CARGO_BIN_EXE_fake-serve-client");

fn sanity_dir() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/perf_sanity/local")
        .display()
        .to_string()
}

fn command(dir: &Path, list: &str, extra: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let list_path = dir.join("list.txt");
    std::fs::write(&list_path, list).expect("write list");
    let upstream_client = format!("{CLIENT} benchmark_serving");
    let mut argv: Vec<String> = vec![
        "run".into(),
        "--test-list".into(),
        list_path.display().to_string(),
        "--output-dir".into(),
        dir.join("out").display().to_string(),
        "--trtllm-serve-cmd".into(),
        SERVE.into(),
        "--serve-bench-cmd".into(),
        CLIENT.into(),
        "--upstream-client-cmd".into(),
        upstream_client,
        "--perf-sanity-dir".into(),
        sanity_dir(),
        "--serve-host".into(),
        "127.0.0.1".into(),
        "--tokenizer".into(),
        crate::e2e::fixture("tokenizers/deepseek"),
        "--models-root".into(),
        dir.join("models").display().to_string(),
        "--dataset-cache".into(),
        dir.join("cache").display().to_string(),
        "--test-threads".into(),
        "1".into(),
        "--baselines".into(),
        dir.join("baselines").display().to_string(),
        "--no-telemetry".into(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"));
    for (k, _) in std::env::vars() {
        let ours = k.starts_with("FAKE_SERVE_")
            || k.starts_with("PERF_")
            || k.starts_with("PERFGATE_")
            || k.starts_with("TRTLLM_")
            || k.starts_with("GITHUB_")
            || k.starts_with("CI_")
            || matches!(
                k.as_str(),
                "CUDA_VISIBLE_DEVICES"
                    | "AGG_CONFIG_FOLDER"
                    | "DISAGG_CONFIG_FOLDER"
                    | "TLLM_SPEC_DECODE_FORCE_NUM_ACCEPTED_TOKENS"
                    | "GIT_COMMIT"
                    | "GIT_BRANCH"
                    | "BUILD_URL"
                    | "BRANCH_NAME"
                    | "JENKINS_URL"
            );
        if ours {
            cmd.env_remove(k);
        }
    }
    cmd.args(&argv).envs(env.iter().copied());
    cmd
}

/// Runs the list and returns (passed, failed, ignored) and the output.
fn run(dir: &Path, list: &str, extra: &[&str], env: &[(&str, &str)]) -> ((u64, u64, u64), String) {
    let out = command(dir, list, extra, env)
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

/// The pids of processes whose command line mentions `dir` (every server of a test names its
/// config or report file there) or is a serving double.
fn left_behind(dir: &Path) -> Vec<(i32, String)> {
    let needle = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains(&needle) && (cmd.contains(SERVE) || cmd.contains(CLIENT)))
                .then_some((pid, cmd))
        })
        .collect()
}

fn assert_clean(dir: &Path) {
    // A stopped group is reaped at once; allow the kernel a moment to clear the table.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = left_behind(dir);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < until, "left running: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

const SERVE_NAME: &str =
    "llama_v3.1_8b-serve-pytorch-streaming-bfloat16-input_output_len:64,16+32,8-reqs:8-con:4";

#[test]
fn a_serve_name_runs_trtllm_serve_once_for_its_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(dir.path(), &format!("{SERVE_NAME}\n"), &[], &[]);
    assert_eq!(counts, (1, 0, 0), "{text}");
    let out = dir.path().join("out");
    let results = jsonl(&out.join("results.jsonl"));
    // Both cases measured, each with the sixteen figures, under the client step.
    let cases: std::collections::BTreeSet<String> = results
        .iter()
        .filter(|r| r["metric"] == "MEDIAN_OUTPUT_TOKEN_TIME")
        .map(|r| r["case"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(cases.len(), 2, "{results:?}");
    let tput: Vec<&serde_json::Value> = results
        .iter()
        .filter(|r| r["metric"] == "TOTAL_OUTPUT_THROUGHPUT")
        .collect();
    assert!(
        tput.iter()
            .all(|r| r["step"] == "client" && r["value"].as_f64() > Some(0.0)),
        "{tput:?}"
    );
    // The server started once (one group) and stopped when the test ended.
    let test = std::fs::read_dir(&out)
        .expect("out")
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("llama_v3.1_8b-serve")
        })
        .expect("test dir")
        .path();
    let log = std::fs::read_to_string(test.join("perf.log")).expect("perf.log");
    assert_eq!(log.matches("server service ready at").count(), 1, "{log}");
    assert_eq!(log.matches("server service stopped").count(), 1, "{log}");
    assert!(log.contains("serve-bench --url http://localhost:"), "{log}");
    let server_log =
        std::fs::read_to_string(test.join("trtllm-serve-perf.log")).expect("server log");
    assert!(
        server_log.contains("Uvicorn running on http://localhost:"),
        "{server_log}"
    );
    // Verdicts gate the serving metrics by default (NEW on a first night).
    let gate = jsonl(&out.join("gate.jsonl"));
    let gated: Vec<&str> = gate
        .iter()
        .filter(|r| r["gated"] == true)
        .filter_map(|r| r["metric"].as_str())
        .collect();
    for m in [
        "TOTAL_OUTPUT_THROUGHPUT",
        "TOTAL_TOKEN_THROUGHPUT",
        "MEDIAN_FIRST_TOKEN_TIME",
        "MEDIAN_OUTPUT_TOKEN_TIME",
    ] {
        assert!(gated.contains(&m), "{m} not gated: {gated:?}");
    }
    assert!(gate.iter().all(|r| r["verdict"] != "INVALID"), "{gate:?}");
    let xml = std::fs::read_to_string(out.join("results.xml")).expect("junit");
    assert!(
        xml.contains("perf/test_perf.py::test_perf[llama_v3.1_8b-serve"),
        "{xml}"
    );
    assert_clean(dir.path());

    // The same name measured by upstream's client (its double), read by the same parser.
    let up = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(
        up.path(),
        &format!("{SERVE_NAME}\n"),
        &["--client", "upstream"],
        &[],
    );
    assert_eq!(counts, (1, 0, 0), "{text}");
    let results = jsonl(&up.path().join("out/results.jsonl"));
    assert!(
        results.iter().any(|r| r["metric"] == "USER_THROUGHPUT"),
        "{results:?}"
    );
    assert_clean(up.path());
}

#[test]
fn aggregated_perf_sanity_runs_each_server_for_its_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "perf/test_perf_sanity.py::test_e2e[aggr_upload-tiny_serving]\n";
    let (counts, text) = run(dir.path(), list, &[], &[]);
    assert_eq!(counts, (1, 0, 0), "{text}");
    let out = dir.path().join("out");
    let test = out.join("aggr_upload-tiny_serving");
    let log = std::fs::read_to_string(test.join("perf.log")).expect("perf.log");
    // Two servers, one after the other: the first serves two clients.
    assert_eq!(
        log.matches("server service ready at localhost:").count(),
        2,
        "{log}"
    );
    assert_eq!(log.matches("server service stopped").count(), 2, "{log}");
    let first_stop = log.find("server service stopped").expect("stop");
    let second_start = log.rfind("server service ready").expect("start");
    assert!(first_stop < second_start, "servers overlap:\n{log}");
    // The YAML upstream writes, the report-address scheme, the server's env.
    let yaml = std::fs::read_to_string(test.join("extra-llm-api-config.aggr.tiny_tp2_mtp.yml"))
        .expect("yaml");
    assert_eq!(
        yaml,
        "tensor_parallel_size: 2\nmax_batch_size: 8\nspeculative_config:\n  decoding_type: MTP\n  max_draft_len: 2\n"
    );
    let server1 = std::fs::read_to_string(test.join("trtllm-serve.1.log")).expect("log");
    assert!(
        server1.contains("tp 2") && server1.contains("2 token(s) per step"),
        "{server1}"
    );
    // Cases named upstream's way; the speculative one reports its acceptance length.
    let results = jsonl(&out.join("results.jsonl"));
    let names: std::collections::BTreeSet<&str> =
        results.iter().filter_map(|r| r["label"].as_str()).collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "tiny_tp1-con2_iter4",
            "tiny_tp1-con4_iter2",
            "tiny_tp2_mtp-con2_iter4"
        ],
        "{results:?}"
    );
    let al = results
        .iter()
        .find(|r| r["metric"] == "AVG_DECODED_TOKENS_PER_ITER")
        .expect("acceptance length");
    assert_eq!(al["label"], "tiny_tp2_mtp-con2_iter4");
    assert!(al["value"].as_f64().is_some_and(|v| v > 1.5), "{al}");
    let xml = std::fs::read_to_string(out.join("results.xml")).expect("junit");
    assert!(
        xml.contains("perf/test_perf_sanity.py::test_e2e[aggr_upload-tiny_serving]"),
        "{xml}"
    );
    // Each case's plan carries upstream's record fields and match keys.
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(test.join("plan.json")).expect("plan"))
            .expect("JSON");
    assert_eq!(
        plan["cases"][2]["upstream_record"]["fields"]["s_test_case_name"],
        "tiny_tp2_mtp-con2_iter4"
    );
    assert_eq!(
        plan["cases"][2]["upstream_record"]["fields"]["l_force_num_accepted_tokens"],
        1
    );
    // The history kept each case's record: the export writes it as upstream's document.
    let docs = opensearch_documents(&out);
    assert_eq!(docs.len(), 3, "{docs:?}");
    for (case, doc) in plan["cases"].as_array().expect("cases").iter().zip(&docs) {
        for (k, v) in case["upstream_record"]["fields"]
            .as_object()
            .expect("fields")
        {
            assert_eq!(
                doc[k]
                    .as_f64()
                    .map_or(doc[k].clone(), |f| serde_json::json!(f)),
                v.as_f64().map_or(v.clone(), |f| serde_json::json!(f)),
                "{k}"
            );
        }
    }
    assert!(
        docs[2]["d_al"].as_f64().is_some_and(|v| v > 1.5),
        "{}",
        docs[2]
    );
    // results.jsonl carries the records too: the output directory imported into a fresh
    // history exports the same documents.
    let again = dir.path().join("again");
    std::fs::create_dir_all(&again).expect("mkdir");
    let import = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(["history", "import", "--history"])
        .arg(again.join("history.sqlite"))
        .arg(&out)
        .output()
        .expect("perfgate runs");
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    assert_eq!(opensearch_documents(&again), docs);
    assert_clean(dir.path());
}

/// The serving cases' perf-sanity documents of an output directory's history, in case order.
fn opensearch_documents(out: &Path) -> Vec<serde_json::Value> {
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args([
            "history",
            "export",
            "--format",
            "opensearch-bulk",
            "--history",
        ])
        .arg(out.join("history.sqlite"))
        .output()
        .expect("perfgate runs");
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let mut docs: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .skip(1)
        .step_by(2)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|d| d.get("s_test_case_name").is_some())
        .collect();
    docs.sort_by_key(|d| {
        d["s_test_case_name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    docs
}

/// A concurrency sweep is one test: its server starts once and serves a case per
/// concurrency, each a case of its own in the results, the history and the export.
#[test]
fn a_concurrency_sweep_runs_its_cases_against_one_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name =
        "llama_v3.1_8b-serve-pytorch-streaming-bfloat16-input_output_len:64,16-reqs:8-con:1+2+4";
    let (counts, text) = run(dir.path(), &format!("{name}\n"), &[], &[]);
    assert_eq!(counts, (1, 0, 0), "{text}");
    let out = dir.path().join("out");
    let results = jsonl(&out.join("results.jsonl"));
    let mut cases: Vec<(String, String)> = results
        .iter()
        .filter(|r| r["metric"] == "TOTAL_OUTPUT_THROUGHPUT")
        .map(|r| {
            (
                r["case"].as_str().unwrap_or_default().to_string(),
                r["label"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 3, "{results:?}");
    for ((dir_name, label), con) in cases.iter().zip([1, 2, 4]) {
        assert_eq!(dir_name, &format!("isl_64-osl_16-con_{con}"));
        assert!(label.ends_with(&format!("-reqs:8-con:{con}")), "{label}");
    }
    let test = out.join(
        "llama_v3.1_8b-serve-pytorch-streaming-bfloat16-input_output_len_64_16-reqs_8-con_1_2_4",
    );
    let log = std::fs::read_to_string(test.join("perf.log")).expect("perf.log");
    assert_eq!(log.matches("server service ready at").count(), 1, "{log}");
    for con in [1, 2, 4] {
        assert!(
            log.contains(&format!("--concurrency {con} --num-prompts 8")),
            "{log}"
        );
    }
    let docs = opensearch_documents(&out);
    let got: Vec<(i64, i64, &str)> = docs
        .iter()
        .map(|d| {
            (
                d["l_concurrency"].as_i64().unwrap_or(0),
                d["l_iterations"].as_i64().unwrap_or(0),
                d["s_runtime"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, 8, "aggr_server"),
            (2, 4, "aggr_server"),
            (4, 2, "aggr_server")
        ]
    );
    assert!(
        docs.iter()
            .all(|d| d["s_server_name"] == docs[0]["s_server_name"])
    );
    assert_clean(dir.path());
}

#[test]
fn disaggregated_perf_sanity_runs_workers_and_the_disaggregated_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "perf/test_perf_sanity.py::test_e2e[disagg_upload-e2e-tiny_disagg]\n";
    let (counts, text) = run(dir.path(), list, &[], &[]);
    assert_eq!(counts, (1, 0, 0), "{text}");
    let test = dir.path().join("out/disagg_upload-e2e-tiny_disagg");
    let log = std::fs::read_to_string(test.join("perf.log")).expect("perf.log");
    for label in ["ctx_0", "gen_0", "server"] {
        assert!(
            log.contains(&format!("{label} service ready at 127.0.0.1:")),
            "{label}: {log}"
        );
        assert!(
            log.contains(&format!("{label} service stopped")),
            "{label}: {log}"
        );
    }
    // The disaggregated server's config holds the workers' reported addresses and the same
    // per-run secret as the workers' configs (the double refuses requests otherwise).
    let config = std::fs::read_to_string(test.join("server_config.0.yaml")).expect("config");
    let ctx_addr = std::fs::read_to_string(test.join("hostnames-local-0/CTX_0.txt")).expect("addr");
    assert!(
        config.contains(&format!("  - {}", ctx_addr.trim())),
        "{config}"
    );
    let key = config
        .lines()
        .find_map(|l| l.strip_prefix("internal_request_auth_key: "))
        .expect("key");
    assert_eq!(key.len(), 64, "{config}");
    let worker = std::fs::read_to_string(test.join("extra-llm-api-config.gen.e2e-tiny_disagg.yml"))
        .expect("worker yaml");
    assert!(
        worker.starts_with(&format!("internal_request_auth_key: {key}\n")),
        "{worker}"
    );
    // Two clients (concurrency 2 and 4), through the one set of servers.
    let results = jsonl(&dir.path().join("out/results.jsonl"));
    let cases: std::collections::BTreeSet<&str> =
        results.iter().filter_map(|r| r["label"].as_str()).collect();
    assert_eq!(cases.len(), 2, "{cases:?}");
    // Each worker saw only its GPUs.
    assert!(
        log.contains("CUDA_VISIBLE_DEVICES=0 ") && log.contains("CUDA_VISIBLE_DEVICES=1 "),
        "{log}"
    );
    assert_clean(dir.path());
}

#[test]
fn a_slower_night_fails_the_gate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "perf/test_perf_sanity.py::test_e2e[aggr-tiny_serving-tiny_tp1]\n";
    let (counts, text) = run(dir.path(), list, &["--no-history"], &[]);
    assert_eq!(counts, (1, 0, 0), "{text}");
    // Night 1 becomes the baseline of its gated metrics.
    let gate = jsonl(&dir.path().join("out/gate.jsonl"));
    let mut csv = String::from(
        "network_name,perf_case_name,test_name,threshold,absolute_threshold,metric_type,perf_metric\n",
    );
    for r in gate
        .iter()
        .filter(|r| r["metric"] == "TOTAL_OUTPUT_THROUGHPUT")
    {
        csv.push_str(&format!(
            "\"{}\",\"{}\",\"{}\",-0.1,1,TOTAL_OUTPUT_THROUGHPUT,{}\n",
            r["network_name"].as_str().unwrap_or_default(),
            r["perf_case_name"].as_str().unwrap_or_default(),
            r["test_name"].as_str().unwrap_or_default(),
            r["value"].as_f64().unwrap_or_default()
        ));
    }
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let baseline = dir.path().join("base.csv");
    std::fs::write(&baseline, csv).expect("baseline");
    // Night 2: the server is three times slower.
    let night2 = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(
        night2.path(),
        list,
        &[
            "--no-history",
            "--baseline-file",
            baseline.to_str().expect("utf-8"),
        ],
        &[("FAKE_SERVE_SLOWDOWN", "3")],
    );
    assert_eq!(counts, (0, 1, 0), "{text}");
    assert!(
        text.contains("gate: FAIL TOTAL_OUTPUT_THROUGHPUT"),
        "{text}"
    );
    assert_clean(night2.path());
}

#[test]
fn server_faults_fail_their_case_with_the_reason_and_leave_nothing_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Never ready: the ready timeout, with the server's log tail.
    let list = "perf/test_perf_sanity.py::test_e2e[aggr-tiny_serving-tiny_tp1]\n";
    let (counts, text) = run(
        dir.path(),
        list,
        &["--ready-timeout", "2"],
        &[("FAKE_SERVE_FAULT", "never-ready")],
    );
    assert_eq!(counts, (0, 1, 0), "{text}");
    assert!(
        text.contains("the server service was not ready after 2 s")
            && text.contains("/health never answered 200")
            && text.contains("Uvicorn running on"),
        "{text}"
    );
    // Its second client is not run again: the group's server failed.
    assert!(
        text.contains("not run: the server service did not start"),
        "{text}"
    );
    assert_clean(dir.path());

    // The report-address file never appears.
    let d2 = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(
        d2.path(),
        list,
        &["--ready-timeout", "2"],
        &[("FAKE_SERVE_FAULT", "no-report-addr")],
    );
    assert_eq!(counts, (0, 1, 0), "{text}");
    assert!(text.contains("it never wrote its address to"), "{text}");
    assert_clean(d2.path());

    // The server exits during the client.
    let d3 = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(
        d3.path(),
        list,
        &[],
        &[("FAKE_SERVE_FAULT", "exit-after:3")],
    );
    assert_eq!(counts, (0, 1, 0), "{text}");
    assert!(
        text.contains("the server service died (exit status 3) while the case ran")
            && text.contains("exit-after 3 requests"),
        "{text}"
    );
    assert_clean(d3.path());

    // A server that ignores SIGTERM is killed after the grace period.
    let d4 = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(
        d4.path(),
        list,
        &[],
        &[("FAKE_SERVE_FAULT", "ignore-sigterm")],
    );
    assert_eq!(counts, (1, 0, 0), "{text}");
    assert_clean(d4.path());
}

#[test]
fn failed_requests_fail_the_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "perf/test_perf_sanity.py::test_e2e[aggr-tiny_serving-tiny_tp1]\n";
    // Upstream's client exits 0 and reports the failures in its block.
    let (counts, text) = run(
        dir.path(),
        list,
        &["--client", "upstream"],
        &[("FAKE_SERVE_FAULT", "fail-every:3")],
    );
    assert_eq!(counts, (0, 1, 0), "{text}");
    assert!(
        text.contains("request(s) failed") && text.contains("!FAILED REQUESTS!"),
        "{text}"
    );
    assert_clean(dir.path());
    // A server that stops generating early (ignores ignore_eos): the case ran but is INVALID.
    let d2 = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(d2.path(), list, &[], &[("FAKE_SERVE_MAX_OUTPUT", "8")]);
    assert_eq!(counts, (0, 1, 0), "{text}");
    assert!(
        text.contains("INVALID") && text.contains("ignore_eos not in effect"),
        "{text}"
    );
    assert_clean(d2.path());
}

#[test]
fn ctrl_c_mid_case_stops_the_servers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "perf/test_perf_sanity.py::test_e2e[disagg-e2e-tiny_disagg]\n";
    // Slow enough that the client is still running when the signal comes.
    let mut child = command(dir.path(), list, &[], &[("FAKE_SERVE_STEP_MS", "200")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("perfgate starts");
    let log = dir.path().join("out/disagg-e2e-tiny_disagg/perf.log");
    let until = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("serve-bench --url")) {
        assert!(Instant::now() < until, "the client never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!left_behind(dir.path()).is_empty(), "the servers are up");
    let status = crate::e2e::signal_and_wait(&mut child, libc::SIGINT, Duration::from_secs(30));
    assert!(!status.success());
    let log = std::fs::read_to_string(&log).expect("log");
    assert!(
        log.contains("server service stopped") && log.contains("gen_0 service stopped"),
        "{log}"
    );
    assert_clean(dir.path());
}

/// A fault in one test's server or client fails that test with the reason; the list's other
/// tests run and pass, and no server is left running.
#[test]
fn a_fault_fails_its_own_test_and_the_others_run() {
    let list = "perf/test_perf_sanity.py::test_e2e[aggr-tiny_serving-tiny_tp1]\n\
                perf/test_perf_sanity.py::test_e2e[aggr-tiny_serving-tiny_tp2_mtp]\n";
    let only_tp1 = ("FAKE_SERVE_FOR", "aggr.tiny_tp1.yml");
    // tiny_tp1's server never gets ready.
    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(
        dir.path(),
        list,
        &["--ready-timeout", "2"],
        &[only_tp1, ("FAKE_SERVE_FAULT", "never-ready")],
    );
    assert_eq!(counts, (1, 1, 0), "{text}");
    assert!(
        text.contains("aggr-tiny_serving-tiny_tp1")
            && text.contains("the server service was not ready after 2 s"),
        "{text}"
    );
    let results = jsonl(&dir.path().join("out/results.jsonl"));
    assert!(
        results
            .iter()
            .any(|r| r.to_string().contains("tiny_tp2_mtp-con2_iter4")),
        "the second test's case ran: {results:?}"
    );
    assert_clean(dir.path());

    // perfgate's own client reports failed requests against tiny_tp1's server.
    let d2 = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(
        d2.path(),
        list,
        &[],
        &[only_tp1, ("FAKE_SERVE_FAULT", "fail-every:3")],
    );
    assert_eq!(counts, (1, 1, 0), "{text}");
    // serve-bench exits 1 after its block: the block is still read, so the failure says how
    // many requests failed (then the exit status) and keeps the figures, which are not gated.
    assert!(
        text.contains(
            "client (repetition 1): 2 request(s) failed; the client printed `!FAILED REQUESTS!`"
        ) && text.contains("fake-serve-client` exited with status 1"),
        "{text}"
    );
    let results = jsonl(&d2.path().join("out/results.jsonl"));
    let tp1: Vec<_> = results
        .iter()
        .filter(|r| r.to_string().contains("tiny_tp1-con2_iter4"))
        .filter(|r| r["metric"] == "TOTAL_OUTPUT_THROUGHPUT")
        .collect();
    assert!(
        tp1.iter()
            .any(|r| r["value"].as_f64().is_some_and(|v| v > 0.0)),
        "{results:?}"
    );
    let gate = jsonl(&d2.path().join("out/gate.jsonl"));
    assert!(
        !gate.iter().any(|r| r.to_string().contains("tiny_tp1")
            && matches!(r["verdict"].as_str(), Some("PASS" | "NEW"))),
        "{gate:?}"
    );
    assert_clean(d2.path());
}

/// A serving case faster than the GPU allows is INVALID, not a pass: the fake server decodes
/// an 8 B model in about 2 ms a token, below the H100's memory-bandwidth floor for it.
#[test]
fn a_serving_result_beyond_physics_is_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(
        dir.path(),
        &format!("{SERVE_NAME}\n"),
        &["--test-prefix", "H100_80GB_HBM3"],
        &[],
    );
    assert_eq!(counts, (0, 1, 0), "{text}");
    assert!(
        text.contains("gate: INVALID TOTAL_OUTPUT_THROUGHPUT"),
        "{text}"
    );
    let gate = jsonl(&dir.path().join("out/gate.jsonl"));
    assert!(!gate.is_empty());
    assert!(gate.iter().all(|r| r["verdict"] == "INVALID"), "{gate:?}");
    let evidence: Vec<String> = gate[0]["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect();
    // Each bound with its numbers: throughput above the ceiling, TPOT and TTFT below the floor.
    for (metric, bound) in [
        ("TOTAL_OUTPUT_THROUGHPUT = ", "above the ceiling of"),
        ("MEDIAN_OUTPUT_TOKEN_TIME = ", "below the minimum of 4.79"),
        ("MEDIAN_FIRST_TOKEN_TIME = ", "below the minimum of 4.79"),
    ] {
        assert!(
            evidence
                .iter()
                .any(|e| e.contains(metric) && e.contains(bound)),
            "{metric}{bound}: {evidence:?}"
        );
    }
    let ttft = gate
        .iter()
        .find(|r| r["metric"] == "MEDIAN_FIRST_TOKEN_TIME")
        .expect("TTFT verdict");
    assert!(
        ttft["roofline_pct"].as_f64().is_some_and(|p| p > 110.0),
        "{ttft}"
    );
    assert_clean(dir.path());
}

/// The two partial layouts of a disaggregated config run end to end: `ctx_only` serves the
/// context workers' config aggregated (one server, no disaggregated front), `gen_only` starts
/// the workers and the disaggregated server as `e2e` does.
#[test]
fn ctx_only_and_gen_only_run_their_servers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "perf/test_perf_sanity.py::test_e2e[aggr-ctx_only-tiny_disagg]\n\
                perf/test_perf_sanity.py::test_e2e[disagg-gen_only-tiny_disagg]\n";
    let (counts, text) = run(dir.path(), list, &[], &[]);
    assert_eq!(counts, (2, 0, 0), "{text}");
    let out = dir.path().join("out");
    let ctx = std::fs::read_to_string(out.join("aggr-ctx_only-tiny_disagg/perf.log")).expect("log");
    assert_eq!(ctx.matches("server service ready at").count(), 1, "{ctx}");
    assert!(
        !ctx.contains("ctx_0 service") && !ctx.contains("disaggregated -c"),
        "{ctx}"
    );
    // One output token a request: TTFT and the throughputs are measured and gated; TPOT and
    // ITL are not measurements (the block prints 0) and are neither kept nor gated.
    let results = jsonl(&out.join("results.jsonl"));
    assert!(
        results.iter().any(
            |r| r["warnings"]
                .as_array()
                .is_some_and(|w| w
                    .iter()
                    .any(|w| w.as_str().is_some_and(|w| w
                        .starts_with("4 output token(s) for 4 request(s): nothing was decoded"))))
        ),
        "{results:?}"
    );
    let gate = jsonl(&out.join("gate.jsonl"));
    let verdicts = |case: &str| -> Vec<(String, String, bool)> {
        gate.iter()
            .filter(|r| r.to_string().contains(case))
            .map(|r| {
                (
                    r["metric"].as_str().unwrap_or_default().to_string(),
                    r["verdict"].as_str().unwrap_or_default().to_string(),
                    r["gated"] == true,
                )
            })
            .collect()
    };
    let ctx_v = verdicts("ctx_only-tiny_disagg-con2");
    assert!(!ctx_v.is_empty(), "{gate:?}");
    assert!(ctx_v.iter().all(|(_, v, _)| v == "NEW"), "{ctx_v:?}");
    assert!(
        ctx_v
            .iter()
            .all(|(m, _, _)| !m.contains("OUTPUT_TOKEN_TIME") && !m.contains("INTER_TOKEN")),
        "{ctx_v:?}"
    );
    let gated: Vec<&str> = ctx_v.iter().filter(|v| v.2).map(|v| v.0.as_str()).collect();
    assert_eq!(
        gated,
        [
            "TOTAL_OUTPUT_THROUGHPUT",
            "TOTAL_TOKEN_THROUGHPUT",
            "MEDIAN_FIRST_TOKEN_TIME"
        ],
        "{ctx_v:?}"
    );
    // gen_only: the workers and the disaggregated server, and TPOT gated.
    let gen_log =
        std::fs::read_to_string(out.join("disagg-gen_only-tiny_disagg/perf.log")).expect("log");
    for label in ["ctx_0", "gen_0", "server"] {
        assert!(
            gen_log.contains(&format!("{label} service ready at"))
                && gen_log.contains(&format!("{label} service stopped")),
            "{label}: {gen_log}"
        );
    }
    let gen_v = verdicts("gen_only-tiny_disagg");
    assert!(
        gen_v
            .iter()
            .any(|(m, v, g)| m == "MEDIAN_OUTPUT_TOKEN_TIME" && v == "NEW" && *g),
        "{gen_v:?}"
    );
    assert_clean(dir.path());
}

/// A disaggregated test larger than a node runs across the job's nodes: the generation worker
/// is started "on the second node" through srun (a double that records its options and runs
/// the command here), binds and reports that node's name, and stops with the case.
#[test]
fn a_disaggregated_test_runs_its_workers_across_nodes_through_srun() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srun = dir.path().join("srun");
    std::fs::write(
        &srun,
        "#!/bin/sh\n# srun double: records its options, then runs the command on this host.\n\
         while [ $# -gt 0 ]; do case \"$1\" in --*) echo \"$1\" >> \"$SRUN_LOG\"; shift;; *) break;; esac; done\n\
         exec \"$@\"\n",
    )
    .expect("srun double");
    std::fs::set_permissions(&srun, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let srun_log = dir.path().join("srun.log");
    let list = "perf/test_perf_sanity.py::test_e2e[disagg-e2e-tiny_disagg_two_nodes]\n";
    // On one node it cannot run, and says how to give it two.
    let one = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(one.path(), list, &[], &[]);
    assert_eq!(counts, (0, 1, 0), "{text}");
    assert!(
        text.contains("on 2 nodes of 1") && text.contains("--serve-nodes"),
        "{text}"
    );
    // Two nodes: this one and `localhost` (the double runs it here).
    let (counts, text) = run(
        dir.path(),
        list,
        &[
            "--serve-nodes",
            "127.0.0.1,localhost",
            "--srun-cmd",
            srun.to_str().expect("utf-8"),
        ],
        &[("SRUN_LOG", srun_log.to_str().expect("utf-8"))],
    );
    assert_eq!(counts, (1, 0, 0), "{text}");
    let log = std::fs::read_to_string(
        dir.path()
            .join("out/disagg-e2e-tiny_disagg_two_nodes/perf.log"),
    )
    .expect("perf.log");
    assert!(
        log.contains(&format!(
            "{} --nodes=1 --ntasks=1 --nodelist=localhost --overlap --kill-on-bad-exit=1 env CUDA_VISIBLE_DEVICES=0 {SERVE} ",
            srun.display()
        )),
        "{log}"
    );
    for label in ["ctx_0", "gen_0", "server"] {
        assert!(
            log.contains(&format!("{label} service stopped")),
            "{label}: {log}"
        );
    }
    assert!(log.contains("gen_0 service ready at localhost:"), "{log}");
    assert!(log.contains("ctx_0 service ready at 127.0.0.1:"), "{log}");
    let recorded = std::fs::read_to_string(&srun_log).expect("srun log");
    assert_eq!(
        recorded.lines().collect::<Vec<_>>(),
        [
            "--nodes=1",
            "--ntasks=1",
            "--nodelist=localhost",
            "--overlap",
            "--kill-on-bad-exit=1"
        ]
    );
    assert_clean(dir.path());
}
