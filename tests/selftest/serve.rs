//! serve-bench against its mock server (tests/double/serve_mock): every stream quirk of the
//! real servers and every fault path.
//!
//! Exactness: the mock stamps each event with CLOCK_MONOTONIC when it sends it and each
//! request when it arrives (`--trace`), and serve-bench's records convert to the same clock
//! (`RunInfo::epoch_monotonic_ns`). Each of serve-bench's timestamps must come after the
//! matching mock stamp (causality, exact) and within `DELIVERY` of it, and each metric must
//! equal the same definition applied to the mock's stamps within that bound. The scripted
//! gaps (hundreds of ms) are far larger than `DELIVERY`, so a wrong definition (a role chunk
//! taken for the first token, a usage chunk ending E2EL, one event too many) cannot pass.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use perfgate::serve::options::{
    Arrival, BenchOptions, DatasetSource, Endpoint, LoadLevel, LoadOptions, MetricOptions,
    OutputOptions, ServerKind, Slo, SloMetric, Stop, Target,
};
use perfgate::serve::{ErrorClass, RunReport};
use serde_json::Value;

const MOCK: &str = env!("CARGO_BIN_EXE_serve-mock");
const PERFGATE: &str = env!("CARGO_BIN_EXE_perfgate");

/// How late serve-bench may read an event the mock sent (loopback delivery and scheduling on
/// a loaded 2-core machine); far below every scripted gap.
const DELIVERY_NS: u64 = 8_000_000;

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

/// A running mock; killed when dropped (also when a test fails).
struct Mock {
    child: Child,
    http: String,
    grpc: Option<String>,
    trace: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mock {
    fn start(args: &[&str]) -> Mock {
        let dir = tempfile::tempdir().expect("tempdir");
        let trace = dir.path().join("trace.jsonl");
        let mut child = Command::new(MOCK)
            .args(args)
            .arg("--trace")
            .arg(&trace)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start serve-mock");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the mock's address");
        let mut http = String::new();
        let mut grpc = None;
        for part in line.split_whitespace() {
            if let Some(a) = part.strip_prefix("http=") {
                http = format!("http://{a}");
            }
            if let Some(a) = part.strip_prefix("grpc=")
                && a != "none"
            {
                grpc = Some(format!("http://{a}"));
            }
        }
        assert!(!http.is_empty(), "serve-mock printed `{line}`");
        Mock {
            child,
            http,
            grpc,
            trace,
            _dir: dir,
        }
    }

    /// The mock's timeline of each request, in the order they ended.
    fn trace_list(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.trace).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    /// The timelines by `X-Request-Id` (gRPC: the request id); a later run's request of the
    /// same id replaces an earlier one's.
    fn traces(&self) -> HashMap<String, Value> {
        self.trace_list()
            .into_iter()
            .map(|v| (v["request_id"].as_str().unwrap_or("").to_string(), v))
            .collect()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prompts_file(dir: &Path) -> PathBuf {
    let p = dir.join("prompts.jsonl");
    std::fs::write(
        &p,
        "{\"input\": \"the first prompt\", \"output\": \"a reference\"}\n\
         {\"input\": \"a second prompt here\"}\n",
    )
    .expect("write prompts");
    p
}

fn options(
    url: &str,
    endpoint: Endpoint,
    dataset: DatasetSource,
    level: LoadLevel,
    n: u64,
) -> BenchOptions {
    BenchOptions {
        target: Target {
            server_kind: ServerKind::Auto,
            stall_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            ..Target::new(
                url,
                endpoint,
                if endpoint.is_triton() {
                    "mock-model"
                } else {
                    ""
                },
            )
        },
        dataset,
        tokenizer: None,
        load: LoadOptions {
            levels: vec![level],
            arrival: Arrival::Poisson,
            stop: Stop::Count(n),
            warmup: 0,
            seed: 0,
        },
        metrics: MetricOptions::default(),
        outputs: OutputOptions::default(),
        client_threads: 1,
    }
}

fn prompts(dir: &Path, osl: u64) -> DatasetSource {
    DatasetSource::File {
        path: prompts_file(dir),
        osl: Some(osl),
    }
}

fn bench(o: &BenchOptions) -> RunReport {
    perfgate::serve::run(o, &mut |_, _| Ok(())).expect("serve-bench run")
}

fn content_times(t: &Value) -> Vec<(u64, u64)> {
    t["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "content")
        .map(|e| (e["t_ns"].as_u64().unwrap(), e["tokens"].as_u64().unwrap()))
        .collect()
}

fn ms(a: u64, b: u64) -> f64 {
    (b as f64 - a as f64) / 1e6
}

fn near(got: f64, want: f64, tol_ms: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol_ms,
        "{what}: serve-bench {got:.3} ms, expected {want:.3} ms (±{tol_ms} ms)"
    );
}

/// Every timestamp of every completed streaming request against the mock's stamps, and every
/// per-request metric against its definition applied to the mock's stamps.
fn check_exact(report: &RunReport, mock: &Mock) {
    let traces = mock.traces();
    let epoch = report.info.epoch_monotonic_ns;
    let tol = DELIVERY_NS as f64 / 1e6;
    for level in &report.levels {
        // The level's duration is the first arrival to the last byte the mock sent, within
        // delivery, so the throughputs (count / duration) are exact to that bound too.
        let level_traces: Vec<&Value> = level
            .records
            .iter()
            .filter_map(|r| traces.get(&r.request_id))
            .collect();
        if level_traces.len() == level.records.len() {
            let first = level_traces
                .iter()
                .map(|t| t["arrival_ns"].as_u64().unwrap())
                .min()
                .unwrap();
            let last = level_traces
                .iter()
                .flat_map(|t| t["events"].as_array().unwrap())
                .map(|e| e["t_ns"].as_u64().unwrap())
                .max()
                .unwrap();
            let s = &level.summary;
            near(s.duration_s * 1e3, ms(first, last), 2.0 * tol, "duration");
            assert_eq!(s.request_throughput, s.completed as f64 / s.duration_s);
            assert_eq!(
                s.output_throughput,
                s.total_output_tokens as f64 / s.duration_s
            );
        }
        for r in level.records.iter().filter(|r| r.ok()) {
            let t = traces
                .get(&r.request_id)
                .unwrap_or_else(|| panic!("no trace for {}", r.request_id));
            let arrival = t["arrival_ns"].as_u64().unwrap();
            let sent = epoch + r.t_send_ns;
            assert!(
                sent <= arrival,
                "{}: sent after the mock saw it",
                r.request_id
            );
            assert!(
                arrival - sent < DELIVERY_NS,
                "{}: request took {} ms to arrive",
                r.request_id,
                ms(sent, arrival)
            );
            let content = content_times(t);
            assert_eq!(
                r.content.len(),
                content.len(),
                "{}: content events",
                r.request_id
            );
            for (c, (m, _)) in r.content.iter().zip(&content) {
                let recv = epoch + c.t_ns;
                assert!(
                    recv >= *m,
                    "{}: an event read before it was sent",
                    r.request_id
                );
                assert!(
                    recv - m < DELIVERY_NS,
                    "{}: an event read {} ms after it was sent",
                    r.request_id,
                    ms(*m, recv)
                );
            }
            let d = r.derive(level.summary.streaming);
            if !level.summary.streaming {
                near(
                    d.e2el_ms.unwrap(),
                    ms(arrival, content[0].0),
                    2.0 * tol,
                    "E2EL",
                );
                continue;
            }
            let first = content[0].0;
            let last = content[content.len() - 1].0;
            let osl: u64 = t["completion_tokens"].as_u64().unwrap();
            near(d.ttft_ms.unwrap(), ms(arrival, first), 2.0 * tol, "TTFT");
            near(d.e2el_ms.unwrap(), ms(arrival, last), 2.0 * tol, "E2EL");
            if d.osl > 1 {
                let want = ms(first, last) / (d.osl - 1) as f64;
                near(
                    d.tpot_ms.unwrap(),
                    want,
                    2.0 * tol / (d.osl - 1) as f64,
                    "TPOT",
                );
            }
            assert_eq!(
                d.itl_ms.len(),
                content.len() - 1,
                "ITL gaps = content events - 1"
            );
            for (gap, w) in d.itl_ms.iter().zip(content.windows(2)) {
                near(*gap, ms(w[0].0, w[1].0), tol, "ITL");
            }
            if r.usage.completion_tokens.is_some() {
                assert_eq!(
                    r.usage.completion_tokens,
                    Some(osl),
                    "usage = tokens generated"
                );
            }
        }
    }
}

#[test]
fn completions_one_token_per_event_exact() {
    // vLLM's shape: no role chunk (completions), usage in a separate chunk 150 ms after the
    // last token, then [DONE]: E2EL must end at the last token, not at the tail.
    let mock = Mock::start(&["--ttft-ms", "200", "--itl-ms", "40", "--tail-ms", "150"]);
    let dir = tempfile::tempdir().unwrap();
    let o = options(
        &mock.http,
        Endpoint::Completions,
        prompts(dir.path(), 5),
        LoadLevel::Concurrency(2),
        4,
    );
    let report = bench(&o);
    assert_eq!(report.info.server_kind, ServerKind::Vllm);
    assert_eq!(report.info.model, "mock-model");
    check_exact(&report, &mock);
    let s = &report.levels[0].summary;
    assert_eq!((s.total, s.completed, s.failed), (4, 4, 0));
    assert_eq!(s.total_output_tokens, 20);
    assert_eq!(s.itl_ms.count, 16, "4 requests x 4 gaps");
    near(
        s.ttft_ms.median.unwrap(),
        200.0,
        30.0,
        "median TTFT vs script",
    );
    near(
        s.e2el_ms.median.unwrap(),
        360.0,
        30.0,
        "median E2EL vs script (the 150 ms tail excluded)",
    );
    near(
        s.tpot_ms.median.unwrap(),
        40.0,
        8.0,
        "median TPOT vs script",
    );
    // Throughputs are the definitions applied to the run's own duration.
    assert_eq!(s.request_throughput, 4.0 / s.duration_s);
    assert_eq!(s.output_throughput, 20.0 / s.duration_s);
    assert_eq!(
        s.total_token_throughput,
        (s.total_input_tokens + 20) as f64 / s.duration_s
    );
    // Two slots, two requests each, each ~510 ms including the tail.
    near(s.duration_s * 1e3, 1020.0, 80.0, "duration vs script");
    let users: Vec<f64> = report.levels[0]
        .records
        .iter()
        .map(|r| 5.0 / (r.derive(true).e2el_ms.unwrap() / 1e3))
        .collect();
    assert!((s.user_throughput - users.iter().sum::<f64>() / 4.0).abs() < 1e-9);
    assert!(s.invalid.is_empty(), "{:?}", s.invalid);
}

#[test]
fn chat_role_chunk_before_generation_is_not_the_first_token() {
    // transformers serve: a role-only chunk at once, the first token 300 ms later, usage on
    // the final chunk with its empty choice, and no [DONE].
    let mock = Mock::start(&[
        "--ttft-ms",
        "300",
        "--itl-ms",
        "50",
        "--role-chunk",
        "first",
        "--usage",
        "last-choice",
        "--no-done",
        "--kind",
        "generic",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let o = options(
        &mock.http,
        Endpoint::Chat,
        prompts(dir.path(), 4),
        LoadLevel::Concurrency(1),
        2,
    );
    let report = bench(&o);
    check_exact(&report, &mock);
    for r in &report.levels[0].records {
        let d = r.derive(true);
        assert!(r.ok(), "{:?}", r.error);
        assert!(
            d.time_to_first_event_ms.unwrap() < 100.0,
            "the role chunk came at once"
        );
        near(
            d.ttft_ms.unwrap(),
            300.0,
            30.0,
            "TTFT is the first content, not the role chunk",
        );
        assert_eq!(d.itl_ms.len(), 3, "the role chunk adds no ITL gap");
        assert_eq!(r.usage.completion_tokens, Some(4));
        assert_eq!(d.osl, 4);
    }
}

#[test]
fn several_tokens_per_event_with_and_without_per_chunk_usage() {
    // 7 tokens as 3+3+1 (TensorRT-LLM's stream_interval): ITL is the chunk gap, TPOT divides
    // by OSL-1; per-token ITL needs per-chunk usage.
    for (usage, per_token) in [("separate", false), ("every-chunk", true)] {
        let mock = Mock::start(&[
            "--ttft-ms",
            "100",
            "--itl-ms",
            "90",
            "--tokens-per-event",
            "3",
            "--usage",
            usage,
        ]);
        let dir = tempfile::tempdir().unwrap();
        let o = options(
            &mock.http,
            Endpoint::Completions,
            prompts(dir.path(), 7),
            LoadLevel::Concurrency(1),
            2,
        );
        let report = bench(&o);
        check_exact(&report, &mock);
        for r in &report.levels[0].records {
            let d = r.derive(true);
            assert_eq!(r.content.len(), 3);
            assert_eq!(d.osl, 7);
            assert_eq!(d.itl_ms.len(), 2);
            near(
                d.tpot_ms.unwrap(),
                180.0 / 6.0,
                3.0,
                "TPOT = (E2EL-TTFT)/(OSL-1)",
            );
            if per_token {
                assert_eq!(
                    r.content.iter().map(|c| c.tokens).collect::<Vec<_>>(),
                    vec![Some(3), Some(3), Some(1)]
                );
                assert_eq!(d.first_event_tokens, Some(3));
                near(d.itl_token_ms[0], 30.0, 3.0, "per-token ITL = gap / 3");
                near(d.itl_token_ms[1], 90.0, 8.0, "per-token ITL = gap / 1");
                near(
                    d.tpot_exact_ms.unwrap(),
                    180.0 / 4.0,
                    4.0,
                    "exact TPOT = (E2EL-TTFT)/(OSL-3)",
                );
            } else {
                assert!(d.itl_token_ms.is_empty(), "tokens per event unknown");
                assert_eq!(d.tpot_exact_ms, None);
            }
        }
        let s = &report.levels[0].summary;
        near(
            s.tokens_per_event.mean.unwrap(),
            7.0 / 3.0,
            1e-9,
            "tokens per event",
        );
    }
}

#[test]
fn no_usage_counts_events_or_the_client_tokenizer() {
    let mock = Mock::start(&["--ttft-ms", "50", "--itl-ms", "30", "--usage", "absent"]);
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(
        &mock.http,
        Endpoint::Completions,
        prompts(dir.path(), 6),
        LoadLevel::Concurrency(1),
        2,
    );
    let report = bench(&o);
    check_exact(&report, &mock);
    let s = &report.levels[0].summary;
    assert_eq!(s.osl_sources.get("events"), Some(&2));
    assert_eq!(s.total_output_tokens, 12);
    // With the tokenizer, " the" x 6 re-tokenizes to 6 tokens.
    o.tokenizer = Some(fixture("tokenizers/deepseek"));
    let report = bench(&o);
    let s = &report.levels[0].summary;
    assert_eq!(s.osl_sources.get("tokenizer"), Some(&2));
    assert_eq!(s.total_output_tokens, 12);
}

#[test]
fn triton_http_and_grpc_streams() {
    let mock = Mock::start(&["--ttft-ms", "120", "--itl-ms", "40", "--grpc-port", "0"]);
    let dir = tempfile::tempdir().unwrap();
    for (endpoint, url) in [
        (Endpoint::Triton, mock.http.clone()),
        (Endpoint::TritonGrpc, mock.grpc.clone().expect("grpc")),
    ] {
        let mut o = options(
            &url,
            endpoint,
            prompts(dir.path(), 5),
            LoadLevel::Concurrency(2),
            4,
        );
        o.metrics.ignore_eos = true;
        let report = bench(&o);
        assert_eq!(report.info.server_kind, ServerKind::Triton);
        check_exact(&report, &mock);
        let s = &report.levels[0].summary;
        assert_eq!(
            (s.completed, s.failed),
            (4, 0),
            "{endpoint:?}: {:?}",
            s.errors
        );
        assert_eq!(
            s.osl_sources.get("events"),
            Some(&4),
            "Triton reports no usage"
        );
        near(s.ttft_ms.median.unwrap(), 120.0, 30.0, "TTFT vs script");
        near(s.tpot_ms.median.unwrap(), 40.0, 8.0, "TPOT vs script");
        assert!(s.invalid.is_empty(), "{:?}", s.invalid);
    }
    let traces = mock.trace_list();
    let http = traces
        .iter()
        .find(|t| t["path"] == "generate_stream")
        .expect("http trace");
    assert_eq!(
        http["fields"]["min_length"], 5,
        "ignore_eos is min_length for Triton"
    );
    assert_eq!(http["fields"]["stream"], true);
    let grpc = traces
        .iter()
        .find(|t| t["path"] == "grpc")
        .expect("grpc trace");
    let inputs: Vec<&str> = grpc["fields"]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        inputs.contains(&"text_input") && inputs.contains(&"min_length"),
        "{inputs:?}"
    );
}

#[test]
fn non_streaming_has_e2el_only() {
    let mock = Mock::start(&["--ttft-ms", "80", "--itl-ms", "20"]);
    let dir = tempfile::tempdir().unwrap();
    for endpoint in [Endpoint::Completions, Endpoint::Chat, Endpoint::Triton] {
        let mut o = options(
            &mock.http,
            endpoint,
            prompts(dir.path(), 5),
            LoadLevel::Concurrency(1),
            2,
        );
        o.target.streaming = false;
        let report = bench(&o);
        check_exact(&report, &mock);
        let s = &report.levels[0].summary;
        assert_eq!(s.completed, 2, "{endpoint:?} {:?}", s.errors);
        assert_eq!(s.ttft_ms.count, 0);
        near(
            s.e2el_ms.median.unwrap(),
            160.0,
            30.0,
            "E2EL = the whole response",
        );
    }
}

/// One fault scenario: the class each measured request must fail with.
fn fault(
    mock_args: &[&str],
    endpoint: Endpoint,
    tweak: impl Fn(&mut BenchOptions),
    class: ErrorClass,
    words: &str,
) {
    let mut args = mock_args.to_vec();
    if !args.contains(&"--ttft-ms") {
        args.extend(["--ttft-ms", "20", "--itl-ms", "10"]);
    }
    args.extend(["--grpc-port", "0"]);
    let mock = Mock::start(&args);
    let dir = tempfile::tempdir().unwrap();
    let url = if endpoint == Endpoint::TritonGrpc {
        mock.grpc.clone().unwrap()
    } else {
        mock.http.clone()
    };
    let mut o = options(
        &url,
        endpoint,
        prompts(dir.path(), 5),
        LoadLevel::Concurrency(2),
        3,
    );
    tweak(&mut o);
    let report = bench(&o);
    let s = &report.levels[0].summary;
    assert_eq!(
        (s.total, s.failed),
        (3, 3),
        "{mock_args:?}: every request fails: {:?}",
        s.errors
    );
    for r in &report.levels[0].records {
        let e = r.error.as_ref().expect("an error");
        assert_eq!(e.class, class, "{mock_args:?}: {}", e.message);
        assert!(
            e.message.contains(words),
            "{mock_args:?}: `{}` lacks `{words}`",
            e.message
        );
    }
    assert_eq!(s.errors.get(class.name()), Some(&3));
    assert!(s.invalid.iter().any(|i| i.contains("no request completed")));
    // Failure-aware percentiles: every request counts as infinitely slow.
    assert!(s.ttft_failure_aware.iter().all(|(_, v)| v.is_none()));
}

#[test]
fn http_errors_in_stream_errors_and_broken_streams() {
    fault(
        &["--status", "500", "--status-message", "engine exploded"],
        Endpoint::Completions,
        |_| {},
        ErrorClass::Http5xx,
        "engine exploded",
    );
    fault(
        &["--status", "429", "--status-message", "slow down"],
        Endpoint::Chat,
        |_| {},
        ErrorClass::Http4xx,
        "HTTP 429: slow down",
    );
    fault(
        &["--reject-field", "ignore_eos"],
        Endpoint::Completions,
        |o| o.metrics.ignore_eos = true,
        ErrorClass::Http4xx,
        "Unexpected fields in the request: {'ignore_eos'}",
    );
    fault(
        &["--error-after", "2"],
        Endpoint::Chat,
        |_| {},
        ErrorClass::InStream,
        "mock error inside the stream",
    );
    fault(
        &["--error-after", "1"],
        Endpoint::Triton,
        |_| {},
        ErrorClass::InStream,
        "mock error inside the stream",
    );
    fault(
        &["--error-after", "1"],
        Endpoint::TritonGrpc,
        |_| {},
        ErrorClass::InStream,
        "mock error inside the stream",
    );
    fault(
        &["--cut-after", "2"],
        Endpoint::Completions,
        |_| {},
        ErrorClass::Disconnected,
        "mid-stream",
    );
    fault(
        &["--cut-after", "2"],
        Endpoint::TritonGrpc,
        |_| {},
        ErrorClass::Disconnected,
        "connection cut",
    );
    fault(
        &["--malformed-after", "1"],
        Endpoint::Completions,
        |_| {},
        ErrorClass::Malformed,
        "not a JSON object",
    );
    fault(
        &["--no-finish", "--no-done", "--usage", "absent"],
        Endpoint::Chat,
        |_| {},
        ErrorClass::Truncated,
        "without [DONE]",
    );
    fault(
        &["--huge-event", "300000"],
        Endpoint::Completions,
        |o| o.target.max_response_bytes = 100_000,
        ErrorClass::TooLarge,
        "larger than 100000 bytes",
    );
}

#[test]
fn a_json_body_where_a_stream_was_expected() {
    // `stream: false` forced through --extra-body: the server answers with one JSON document.
    fault(
        &[],
        Endpoint::Completions,
        |o| {
            o.target.extra_body.insert("stream".into(), false.into());
        },
        ErrorClass::Malformed,
        "not an event stream (no `data:` line): {\"id\"",
    );
}

#[test]
fn stalled_streams_and_timeouts() {
    fault(
        &["--stall-after", "1"],
        Endpoint::Completions,
        |o| o.target.stall_timeout = Duration::from_millis(500),
        ErrorClass::Stalled,
        "sent nothing",
    );
    fault(
        &["--stall-after", "1"],
        Endpoint::TritonGrpc,
        |o| o.target.stall_timeout = Duration::from_millis(500),
        ErrorClass::Stalled,
        "sent nothing",
    );
    fault(
        &["--ttft-ms", "5000"],
        Endpoint::Chat,
        |o| o.target.request_timeout = Duration::from_millis(500),
        ErrorClass::Timeout,
        "--request-timeout",
    );
}

#[test]
fn a_huge_event_within_the_limit_is_read() {
    let mock = Mock::start(&[
        "--huge-event",
        "2000000",
        "--ttft-ms",
        "10",
        "--itl-ms",
        "10",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let o = options(
        &mock.http,
        Endpoint::Completions,
        prompts(dir.path(), 3),
        LoadLevel::Concurrency(1),
        1,
    );
    let report = bench(&o);
    let r = &report.levels[0].records[0];
    assert!(r.ok(), "{:?}", r.error);
    assert_eq!(r.content[0].bytes, 2_000_000);
}

#[test]
fn a_forced_length_mismatch_makes_a_level_invalid_a_token_disagreement_is_a_note() {
    // The server stops at 3 tokens although 6 were forced.
    let mock = Mock::start(&["--eos-after", "3", "--ttft-ms", "10", "--itl-ms", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(
        &mock.http,
        Endpoint::Completions,
        prompts(dir.path(), 6),
        LoadLevel::Concurrency(2),
        4,
    );
    let report = bench(&o);
    let s = &report.levels[0].summary;
    assert_eq!(s.osl_mismatch, 4);
    // Not forced: reported, not a reason to be invalid. (Only this reason is checked: the
    // client's self-check may flag a lag when the whole suite loads the machine.)
    assert!(
        !s.invalid.iter().any(|i| i.contains("ignored it")),
        "not forced: reported, not invalid: {:?}",
        s.invalid
    );
    o.metrics.ignore_eos = true;
    let s = bench(&o).levels[0].summary.clone();
    assert_eq!(s.osl_mismatch, 4);
    assert!(
        s.invalid.iter().any(|i| i.contains("ignored it")),
        "{:?}",
        s.invalid
    );
    // Usage off by one against the client tokenizer.
    let mock = Mock::start(&["--usage-skew", "1", "--ttft-ms", "10", "--itl-ms", "10"]);
    let mut o = options(
        &mock.http,
        Endpoint::Completions,
        prompts(dir.path(), 4),
        LoadLevel::Concurrency(1),
        2,
    );
    o.tokenizer = Some(fixture("tokenizers/deepseek"));
    let s = bench(&o).levels[0].summary.clone();
    assert_eq!(s.output_token_disagreement, 2);
    assert!(
        s.notes.iter().any(|i| i.contains("client tokenizer")),
        "{:?}",
        s.notes
    );
    assert!(
        s.invalid.is_empty(),
        "the server's counts are used: {:?}",
        s.invalid
    );
    // A server that counts one prompt token more than the ids sent (ids: the count is exact).
    let mock = Mock::start(&["--prompt-skew", "1"]);
    let synthetic = DatasetSource::Synthetic {
        isl: 16,
        osl: 2,
        isl_stdev: 0,
        osl_stdev: 0,
    };
    let mut o = options(
        &mock.http,
        Endpoint::Completions,
        synthetic,
        LoadLevel::Concurrency(1),
        3,
    );
    o.tokenizer = Some(fixture("tokenizers/deepseek"));
    let s = bench(&o).levels[0].summary.clone();
    assert_eq!(s.prompt_token_disagreement, 3);
    assert!(
        s.invalid.iter().any(|i| i.contains("prompt token count")),
        "{:?}",
        s.invalid
    );
    // Text prompts are not compared (the server adds a template or BOS the client never sees).
    let mut o = options(
        &mock.http,
        Endpoint::Chat,
        prompts(dir.path(), 2),
        LoadLevel::Concurrency(1),
        2,
    );
    o.tokenizer = Some(fixture("tokenizers/deepseek"));
    let s = bench(&o).levels[0].summary.clone();
    assert_eq!(s.prompt_token_disagreement, 0);
}

#[test]
fn a_client_that_lags_is_flagged_and_threads_are_an_option() {
    let mock = Mock::start(&["--ttft-ms", "10", "--itl-ms", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(
        &mock.http,
        Endpoint::Completions,
        prompts(dir.path(), 3),
        LoadLevel::Concurrency(2),
        8,
    );
    o.client_threads = 2;
    let s = bench(&o).levels[0].summary.clone();
    assert_eq!(s.completed, 8);
    assert!(!s.self_check.lagged, "{:?}", s.self_check.reasons);
    // Any lag at all is above a zero threshold: the level is flagged and invalid.
    o.metrics.max_send_lag = Duration::ZERO;
    o.metrics.max_loop_lag = Duration::ZERO;
    let s = bench(&o).levels[0].summary.clone();
    assert!(s.self_check.lagged);
    assert!(
        s.self_check
            .reasons
            .iter()
            .any(|r| r.contains("event-loop lag")),
        "{:?}",
        s.self_check.reasons
    );
    assert!(
        s.invalid.iter().any(|i| i.starts_with("client lagged")),
        "{:?}",
        s.invalid
    );
}

#[test]
fn request_shapes_follow_the_server_kind() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, Endpoint, &[&str], &[&str])] = &[
        (
            "vllm",
            Endpoint::Completions,
            &["ignore_eos", "min_tokens", "stream_options"],
            &["cache_prompt", "generation_config"],
        ),
        (
            "llamacpp",
            Endpoint::Completions,
            &["ignore_eos", "cache_prompt", "stream_options"],
            &["min_tokens", "generation_config"],
        ),
        (
            "transformers",
            Endpoint::Chat,
            &["generation_config"],
            &["ignore_eos", "min_tokens", "stream_options"],
        ),
    ];
    for (kind, endpoint, present, absent) in cases {
        let mock = Mock::start(&["--kind", kind]);
        let mut o = options(
            &mock.http,
            *endpoint,
            prompts(dir.path(), 3),
            LoadLevel::Concurrency(1),
            1,
        );
        o.metrics.ignore_eos = true;
        if *kind == "transformers" {
            // transformers serve does not say what it is: the kind is given.
            o.target.server_kind = ServerKind::Transformers;
        }
        let report = bench(&o);
        assert_eq!(
            report.levels[0].summary.completed, 1,
            "{kind}: {:?}",
            report.levels[0].summary.errors
        );
        let traces = mock.traces();
        let fields = &traces.values().next().unwrap()["fields"];
        for f in *present {
            assert!(
                fields.get(f).is_some(),
                "{kind}: `{f}` missing from {fields}"
            );
        }
        for f in *absent {
            assert!(fields.get(f).is_none(), "{kind}: `{f}` sent in {fields}");
        }
        // llama.cpp closes the connection after each stream although it says keep-alive:
        // its streams ask for the close themselves, so no request reuses a closing connection.
        let connection = &traces.values().next().unwrap()["connection"];
        if *kind == "llamacpp" {
            assert_eq!(connection, "close", "{kind}");
        } else {
            assert!(connection.is_null(), "{kind}: Connection: {connection}");
        }
    }
}

#[test]
fn synthetic_token_ids_reach_the_server_exactly_or_as_text() {
    let mock = Mock::start(&[
        "--tokenizer",
        fixture("tokenizers/deepseek").to_str().unwrap(),
    ]);
    let synthetic = DatasetSource::Synthetic {
        isl: 64,
        osl: 4,
        isl_stdev: 0,
        osl_stdev: 0,
    };
    let mut o = options(
        &mock.http,
        Endpoint::Completions,
        synthetic.clone(),
        LoadLevel::Concurrency(2),
        4,
    );
    o.tokenizer = Some(fixture("tokenizers/deepseek"));
    let report = bench(&o);
    let s = &report.levels[0].summary;
    assert_eq!(s.completed, 4);
    assert_eq!(s.total_input_tokens, 256);
    assert_eq!(
        s.prompt_token_disagreement, 0,
        "ids sent as ids: the server counts 64"
    );
    for t in mock.traces().values() {
        assert_eq!(t["fields"]["prompt"].as_array().map(Vec::len), Some(64));
        assert_eq!(t["prompt_tokens"], 64);
    }
    // The same ids as `perfgate dataset token-norm-dist` writes (seed 0 here).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ds.jsonl");
    let out = Command::new(PERFGATE)
        .args(["dataset", "--tokenizer"])
        .arg(fixture("tokenizers/deepseek"))
        .args([
            "--random-seed",
            "0",
            "--stdout",
            "token-norm-dist",
            "--num-requests",
            "4",
            "--input-mean",
            "64",
            "--input-stdev",
            "0",
            "--output-mean",
            "4",
            "--output-stdev",
            "0",
        ])
        .output()
        .expect("perfgate dataset");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&file, &out.stdout).unwrap();
    let written: Vec<Value> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let sent: Vec<Value> = {
        let mut by_index: Vec<(u64, Value)> = report.levels[0]
            .records
            .iter()
            .map(|r| {
                (
                    r.sample as u64,
                    mock.traces()[&r.request_id]["fields"]["prompt"].clone(),
                )
            })
            .collect();
        by_index.sort_by_key(|(i, _)| *i);
        by_index.into_iter().map(|(_, v)| v).collect()
    };
    for (w, s) in written.iter().zip(&sent) {
        assert_eq!(
            &w["input_ids"], s,
            "in-memory synthetic == prepare_dataset output"
        );
    }
    // The file itself as a dataset, and chat (text only): ids decoded with the tokenizer.
    let mut o = options(
        &mock.http,
        Endpoint::Chat,
        DatasetSource::File {
            path: file,
            osl: None,
        },
        LoadLevel::Concurrency(1),
        2,
    );
    o.tokenizer = Some(fixture("tokenizers/deepseek"));
    let report = bench(&o);
    assert_eq!(report.levels[0].summary.completed, 2);
    assert!(
        report
            .info
            .notes
            .iter()
            .any(|n| n.contains("prompts sent as text")),
        "{:?}",
        report.info.notes
    );
}

#[test]
fn dataset_formats() {
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("custom.jsonl");
    std::fs::write(&custom, "{\"input\": {\"messages\": [{\"role\": \"system\", \"content\": \"\"}, {\"role\": \"user\", \"content\": \"hello world\"}], \"max_tokens\": 3}}\n").unwrap();
    let share = dir.path().join("sharegpt.json");
    std::fs::write(&share, r#"[{"conversations": [{"from": "human", "value": "hi there"}, {"from": "gpt", "value": "the the"}]}, {"conversations": [{"from": "human", "value": "alone"}]}]"#).unwrap();
    // ShareGPT as JSON Lines, one conversation a line.
    let share_lines = dir.path().join("sharegpt.jsonl");
    std::fs::write(&share_lines, "{\"conversations\": [{\"from\": \"human\", \"value\": \"hi there\"}, {\"from\": \"gpt\", \"value\": \"the the\"}]}\n{\"conversations\": [{\"from\": \"human\", \"value\": \"again\"}, {\"from\": \"gpt\", \"value\": \"the\"}]}\n").unwrap();
    // trtllm-bench's dataset lines, as prepare_dataset writes them (token ids) and as its
    // docs show them (a prompt).
    let ids = dir.path().join("ids.jsonl");
    std::fs::write(&ids, "{\"task_id\":0,\"input_ids\":[863,22056,25603,11943],\"output_tokens\":6}\n{\"task_id\":1,\"input_ids\":[14480,13598],\"output_tokens\":6}\n").unwrap();
    let prompts = dir.path().join("prompts.jsonl");
    std::fs::write(&prompts, "{\"task_id\": 1, \"prompt\": \"Generate a response to the following: hello\", \"output_tokens\": 5}\n").unwrap();
    // prepare_dataset's workload document (pretty-printed, `output_len`).
    let workload = dir.path().join("workload.json");
    std::fs::write(&workload, "{\n  \"metadata\": {\"workload_type\": \"token-norm-dist\"},\n  \"samples\": [\n    {\"input_ids\": [863, 22056, 25603], \"output_len\": 4}\n  ]\n}\n").unwrap();
    let cases = [
        (custom, None, 3u64, "trtllm_custom"),
        (share, None, 2, "sharegpt"),
        (share_lines, None, 2, "sharegpt"),
        (ids, None, 6, "prepare_dataset"),
        (prompts, None, 5, "prepare_dataset"),
        (workload, None, 4, "prepare_dataset"),
    ];
    for (path, osl, want_osl, format) in cases {
        let mut o = options(
            &mock.http,
            Endpoint::Completions,
            DatasetSource::File { path, osl },
            LoadLevel::Concurrency(1),
            1,
        );
        o.tokenizer = Some(fixture("tokenizers/deepseek"));
        let report = bench(&o);
        assert!(
            report.info.dataset.contains(format),
            "{}",
            report.info.dataset
        );
        let r = &report.levels[0].records[0];
        assert!(r.ok(), "{:?}", r.error);
        assert_eq!(
            r.requested_output_tokens, want_osl,
            "{}",
            report.info.dataset
        );
    }
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(PERFGATE)
        .arg("serve-bench")
        .args(args)
        .arg("--no-progress")
        .output()
        .expect("perfgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exit_codes_and_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let p = prompts_file(dir.path());
    let p = p.to_str().unwrap();
    // Unreachable: nothing listens on port 1. Nothing could be measured: 3, as a test whose
    // server failed (1 is kept for failed requests, a finding about the server).
    let (code, _, err) = cli(&[
        "--url",
        "http://127.0.0.1:1",
        "--input-data",
        p,
        "--osl",
        "3",
        "--concurrency",
        "1",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("cannot reach the server at http://127.0.0.1:1"),
        "{err}"
    );
    // Health never OK.
    let mock = Mock::start(&["--health-status", "503"]);
    let (code, _, err) = cli(&[
        "--url",
        &mock.http,
        "--input-data",
        p,
        "--osl",
        "3",
        "--concurrency",
        "1",
        "--ready-timeout",
        "1s",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("was not ready after") && err.contains("HTTP 503"),
        "{err}"
    );
    // Usage errors are 2.
    let (code, _, err) = cli(&["--url", &mock.http, "--input-data", p, "--osl", "3"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no load"), "{err}");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"input\": \"ok\"}\n\n{\"prompt\": \"no input key\"}\n",
    )
    .unwrap();
    let mock = Mock::start(&[]);
    let (code, _, err) = cli(&[
        "--url",
        &mock.http,
        "--input-data",
        bad.to_str().unwrap(),
        "--osl",
        "3",
        "--concurrency",
        "1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.jsonl:3: no `input` key"), "{err}");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n\n").unwrap();
    let (code, _, err) = cli(&[
        "--url",
        &mock.http,
        "--input-data",
        empty.to_str().unwrap(),
        "--osl",
        "3",
        "--concurrency",
        "1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("empty.jsonl: the dataset has no records"),
        "{err}"
    );
    // All good: 0.
    let (code, out, err) = cli(&[
        "--url",
        &mock.http,
        "--input-data",
        p,
        "--osl",
        "3",
        "--concurrency",
        "2",
        "--num-prompts",
        "4",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Successful requests:                     4"),
        "{out}"
    );
    // Outputs that cannot be written are perfgate's failure: 4 (a file where the folder goes).
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let (code, _, err) = cli(&[
        "--url",
        &mock.http,
        "--input-data",
        p,
        "--osl",
        "3",
        "--concurrency",
        "1",
        "--num-prompts",
        "1",
        "--output-dir",
        blocker.to_str().unwrap(),
    ]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("cannot write") && err.contains("not-a-dir"),
        "{err}"
    );
    // A 4xx is shown once with its count and a hint naming the rejected field.
    let mock = Mock::start(&["--kind", "transformers"]);
    let (code, out, err) = cli(&[
        "--url",
        &mock.http,
        "--endpoint",
        "chat",
        "--input-data",
        p,
        "--osl",
        "3",
        "--concurrency",
        "1",
        "--num-prompts",
        "3",
        "--server-kind",
        "vllm",
        "--ignore-eos",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("failed with http_4xx").count(), 1, "{err}");
    assert!(
        err.contains("3 request(s) failed with http_4xx: HTTP 422: Unexpected fields"),
        "{err}"
    );
    assert!(err.contains("hint: the server rejects ignore_eos"), "{err}");
    assert!(
        out.contains("!FAILED REQUESTS!")
            && out.contains("Failed requests:                         3"),
        "{out}"
    );
    // One failure in four: 1, unless --max-failure-ratio allows it.
    let mock = Mock::start(&["--status", "500", "--fail-every", "4"]);
    let args = [
        "--url",
        mock.http.as_str(),
        "--input-data",
        p,
        "--osl",
        "3",
        "--concurrency",
        "1",
        "--num-prompts",
        "8",
    ];
    let (code, _, err) = cli(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("2 of 8 requests failed"), "{err}");
    let mut allowed = args.to_vec();
    allowed.extend(["--max-failure-ratio", "0.25"]);
    let (code, _, err) = cli(&allowed);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn ctrl_c_writes_finished_requests_and_exits_128_plus_the_signal() {
    let mock = Mock::start(&["--ttft-ms", "50", "--itl-ms", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let p = prompts_file(dir.path());
    let out_dir = dir.path().join("out");
    let result = dir.path().join("result.jsonl");
    let mut child = Command::new(PERFGATE)
        .args(["serve-bench", "--url", &mock.http, "--input-data"])
        .arg(&p)
        .args([
            "--osl",
            "4",
            "--concurrency",
            "2",
            "--num-prompts",
            "40",
            "--no-progress",
            "--output-dir",
        ])
        .arg(&out_dir)
        .arg("--save-result")
        .arg(&result)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start perfgate");
    // Each request takes ~350 ms: after 1.2 s a few have finished and two are in flight.
    std::thread::sleep(Duration::from_millis(1200));
    let status = super::e2e::signal_and_wait(&mut child, libc::SIGINT, Duration::from_secs(20));
    assert_eq!(status.code(), Some(130));
    let saved: Value = serde_json::from_str(
        std::fs::read_to_string(&result)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let completed = saved["completed"].as_u64().unwrap();
    assert!(completed >= 2, "{saved}");
    assert_eq!(
        saved["perfgate"]["cancelled"], 2,
        "the two in flight are counted, not dropped"
    );
    assert_eq!(saved["num_prompts"].as_u64().unwrap(), completed + 2);
    let lines = std::fs::read_to_string(out_dir.join("requests-level0.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64, completed + 2);
    // SIGTERM (a CI job cancelled) is the table's 128 + 15, with the same outputs written.
    std::fs::remove_file(&result).unwrap();
    let mut child = Command::new(PERFGATE)
        .args(["serve-bench", "--url", &mock.http, "--input-data"])
        .arg(&p)
        .args([
            "--osl",
            "4",
            "--concurrency",
            "2",
            "--num-prompts",
            "40",
            "--no-progress",
            "--save-result",
        ])
        .arg(&result)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start perfgate");
    std::thread::sleep(Duration::from_millis(1200));
    let status = super::e2e::signal_and_wait(&mut child, libc::SIGTERM, Duration::from_secs(20));
    assert_eq!(status.code(), Some(143));
    let saved: Value =
        serde_json::from_str(std::fs::read_to_string(&result).unwrap().trim()).unwrap();
    assert_eq!(saved["perfgate"]["cancelled"], 2, "{saved}");
}

#[test]
fn text_block_reads_with_upstream_regexes_and_perfgate_parse() {
    let mock = Mock::start(&["--ttft-ms", "30", "--itl-ms", "10", "--avg-decoded", "2.5"]);
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(
        &mock.http,
        Endpoint::Completions,
        prompts(dir.path(), 5),
        LoadLevel::Concurrency(2),
        4,
    );
    o.metrics.goodput = vec![Slo {
        metric: SloMetric::Ttft,
        max_ms: 1000.0,
    }];
    let report = bench(&o);
    let s = &report.levels[0].summary;
    let text = perfgate::serve::output::text_block(&report.info, s, &o.metrics.percentiles, true);
    assert!(text.contains("============ Serving Benchmark Result ============\n"));
    assert!(text.contains("---------------Time to First Token----------------\n"));
    // upstream's PERF_METRIC_LOG_QUERIES (test_perf_sanity.py), first match per metric.
    let queries = [
        (
            r"Request throughput \(req\/s\):\s+(-?[\d\.]+)",
            s.request_throughput,
        ),
        (
            r"Output token throughput \(tok\/s\):\s+(-?[\d\.]+)",
            s.output_throughput,
        ),
        (
            r"Total Token throughput \(tok\/s\):\s+(-?[\d\.]+)",
            s.total_token_throughput,
        ),
        (
            r"User throughput \(tok\/s\):\s+(-?[\d\.]+)",
            s.user_throughput,
        ),
        (r"Mean TTFT \(ms\):\s+(-?[\d\.]+)", s.ttft_ms.mean.unwrap()),
        (
            r"Median TTFT \(ms\):\s+(-?[\d\.]+)",
            s.ttft_ms.median.unwrap(),
        ),
        (
            r"P99 TTFT \(ms\):\s+(-?[\d\.]+)",
            s.ttft_ms.percentile(99.0).unwrap(),
        ),
        (r"Mean TPOT \(ms\):\s+(-?[\d\.]+)", s.tpot_ms.mean.unwrap()),
        (
            r"Median ITL \(ms\):\s+(-?[\d\.]+)",
            s.itl_ms.median.unwrap(),
        ),
        (
            r"P99 E2EL \(ms\):\s+(-?[\d\.]+)",
            s.e2el_ms.percentile(99.0).unwrap(),
        ),
        (r"Mean Avg Decoded Tokens per Iter:\s+(-?[\d\.]+)", 2.5),
    ];
    for (q, want) in queries {
        let re = regex::Regex::new(q).unwrap();
        let got: f64 = text
            .lines()
            .find_map(|l| re.captures(l))
            .map(|c| c[1].parse().unwrap())
            .unwrap_or_else(|| panic!("{q} not found"));
        assert_eq!(got, format!("{want:.2}").parse::<f64>().unwrap(), "{q}");
    }
    assert!(
        regex::Regex::new(r"Failed requests:\s+(\d+)")
            .unwrap()
            .captures(&text)
            .is_some_and(|c| &c[1] == "0")
    );
    assert!(!text.contains("!FAILED REQUESTS!"));
    let parsed = perfgate::report::parse_str(&text);
    assert_eq!(parsed.kind, perfgate::report::ReportKind::Serve);
    assert!(parsed.missing.is_empty(), "{:?}", parsed.missing);
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    assert_eq!(parsed.metrics["NUM_REQUESTS"], 4.0);
    assert_eq!(
        parsed.metrics["FIRST_TOKEN_TIME"],
        format!("{:.2}", s.ttft_ms.mean.unwrap())
            .parse::<f64>()
            .unwrap()
    );
    assert_eq!(parsed.metrics["AVG_DECODED_TOKENS_PER_ITER"], 2.5);
    assert_eq!(parsed.failed_requests, Some(0));
    // The save-result object carries upstream's keys.
    let j = perfgate::serve::output::result_json(
        &report.info,
        s,
        &o.metrics.percentiles,
        o.load.arrival,
    );
    for key in [
        "completed",
        "failed",
        "duration",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "request_goodput",
        "output_throughput",
        "total_token_throughput",
        "user_throughput",
        "mean_ttft_ms",
        "median_ttft_ms",
        "std_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p99_itl_ms",
        "median_e2el_ms",
        "max_concurrency",
        "request_rate",
        "burstiness",
    ] {
        assert!(j.get(key).is_some_and(|v| !v.is_null()), "{key} in {j}");
    }
    assert_eq!(j["request_rate"], "inf");
    assert_eq!(
        j["request_goodput"], s.request_throughput,
        "every request met the TTFT SLO"
    );
    assert_eq!(j["avg_decoded_tokens_per_iter"]["mean"], 2.5);
}

#[test]
fn open_loop_schedule_is_kept_and_sweeps_write_every_output() {
    let mock = Mock::start(&["--ttft-ms", "20", "--itl-ms", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(
        &mock.http,
        Endpoint::Completions,
        prompts(dir.path(), 3),
        LoadLevel::Rate {
            rate: 20.0,
            max_concurrency: None,
        },
        10,
    );
    o.load.arrival = Arrival::Constant;
    o.load.levels.push(LoadLevel::Rate {
        rate: 40.0,
        max_concurrency: Some(4),
    });
    o.outputs.output_dir = Some(dir.path().join("out"));
    o.outputs.save_result = Some(dir.path().join("out/result.jsonl"));
    let mut writer = perfgate::serve::output::Writer::new(
        o.outputs.save_result.clone(),
        o.outputs.output_dir.clone(),
        o.metrics.percentiles.clone(),
        false,
        o.load.arrival,
    );
    let report =
        perfgate::serve::run(&o, &mut |info, level| writer.level(info, level).map(|_| ())).unwrap();
    for (li, gap_ns) in [(0usize, 50_000_000u64), (1, 25_000_000)] {
        let recs = &report.levels[li].records;
        let start = recs[0].t_due_ns;
        for r in recs {
            assert_eq!(
                r.t_due_ns - start,
                r.index * gap_ns,
                "due times are the schedule, exactly"
            );
            assert!(r.t_send_ns >= r.t_due_ns);
        }
        let s = &report.levels[li].summary;
        assert_eq!(s.completed, 10);
        assert!(!s.self_check.lagged, "{:?}", s.self_check.reasons);
    }
    let out = dir.path().join("out");
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        std::fs::read_to_string(out.join("pareto.svg"))
            .unwrap()
            .contains("Pareto frontier")
    );
    assert_eq!(
        std::fs::read_to_string(out.join("result.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(out.join("requests-level1.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    for key in [
        "t_due_ns",
        "t_send_ns",
        "t_headers_ns",
        "t_first_event_ns",
        "content",
        "t_end_ns",
        "derived",
        "request_id",
    ] {
        assert!(line.get(key).is_some(), "{key} in {line}");
    }
    // A seeded Poisson schedule is the same run after run.
    let a = perfgate::serve::schedule::offsets(Arrival::Poisson, 5.0, 50, 3);
    assert_eq!(
        a,
        perfgate::serve::schedule::offsets(Arrival::Poisson, 5.0, 50, 3)
    );
}

#[test]
fn warmup_is_excluded_and_duration_bounds_a_level() {
    let mock = Mock::start(&["--ttft-ms", "50", "--itl-ms", "25"]);
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(
        &mock.http,
        Endpoint::Completions,
        prompts(dir.path(), 3),
        LoadLevel::Concurrency(2),
        4,
    );
    o.load.warmup = 3;
    o.target.scrape_metrics = Some(String::new());
    let report = bench(&o);
    let traces = mock.traces();
    assert_eq!(traces.len(), 7);
    assert_eq!(traces.keys().filter(|k| k.contains("-warmup-")).count(), 3);
    let s = &report.levels[0].summary;
    assert_eq!(s.total, 4);
    // The server's counters moved by exactly the measured requests.
    assert_eq!(
        s.server_metrics
            .get("mock_requests_total{model_name=\"mock-model\"}"),
        Some(&4.0),
        "{:?}",
        s.server_metrics
    );
    assert_eq!(
        s.server_metrics
            .get("mock_generation_tokens_total{model_name=\"mock-model\"}"),
        Some(&12.0)
    );
    assert!(
        !s.server_metrics.keys().any(|k| k.contains("running")),
        "gauges are not deltas"
    );
    // A duration: each slot issues requests for 1 s (each ~100 ms), then lets them finish.
    o.load.warmup = 0;
    o.load.stop = Stop::Duration(Duration::from_secs(1));
    let s = bench(&o).levels[0].summary.clone();
    assert!(
        (16..=24).contains(&s.total),
        "{} requests in 1 s at concurrency 2",
        s.total
    );
    assert_eq!(s.failed, 0);
}

#[test]
fn accuracy_scores_each_request_and_each_level() {
    // The mock answers every request with its token text " the" × OSL, so with OSL 4 each
    // candidate is " the the the the"; the references are chosen so every score is a small
    // fraction worked out by hand below.
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("qa.jsonl");
    std::fs::write(
        &data,
        "{\"input\": \"q0\", \"output\": \"the the the the\"}\n\
         {\"input\": \"q1\", \"output\": \"the cat sat on the mat\"}\n\
         {\"input\": \"q2\", \"output\": \"THE the\"}\n\
         {\"input\": \"q3 has no reference\"}\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let result = dir.path().join("result.jsonl");
    let (code, stdout, err) = cli(&[
        "--url",
        &mock.http,
        "--input-data",
        data.to_str().unwrap(),
        "--osl",
        "4",
        "--concurrency",
        "1",
        "--num-prompts",
        "4",
        "--accuracy",
        "--output-dir",
        out_dir.to_str().unwrap(),
        "--save-result",
        result.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");

    // Per request (rouge-score: lowercased words; F1 = 2PR/(P+R)):
    //  q0: candidate and reference equal after stripping: exact, every ROUGE 1.
    //  q1: 2 of the 4 candidate "the" match the reference's 2 (P 1/2, R 2/6): ROUGE-1 F1 0.4;
    //      no shared bigram: ROUGE-2 0; LCS "the the" = 2 words: ROUGE-L 0.4.
    //  q2: "THE the" lowercases to 2 × "the": P 2/4, R 1: ROUGE-1 and ROUGE-L F1 2/3; one of
    //      the candidate's 3 "the the" bigrams matches the reference's one: P 1/3, R 1: 0.5.
    let want: [(bool, f64, f64, f64); 3] = [
        (true, 1.0, 1.0, 1.0),
        (false, 0.4, 0.0, 0.4),
        (false, 2.0 / 3.0, 0.5, 2.0 / 3.0),
    ];
    let lines = std::fs::read_to_string(out_dir.join("requests-level0.jsonl")).unwrap();
    let records: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4);
    for r in &records {
        assert!(
            r.get("text").is_none(),
            "texts are scored, not written, without --keep-text"
        );
        let sample = r["sample"].as_u64().unwrap() as usize;
        if sample == 3 {
            assert!(r.get("accuracy").is_none(), "no reference, no score: {r}");
            continue;
        }
        let (exact, r1, r2, rl) = want[sample];
        let a = &r["accuracy"];
        assert_eq!(a["exact_match"], exact, "{r}");
        for (key, value) in [("rouge1", r1), ("rouge2", r2), ("rouge_l", rl)] {
            let got = a["rouge"][key]["f1"].as_f64().unwrap();
            assert!(
                (got - value).abs() < 1e-12,
                "q{sample} {key}: {got} != {value}"
            );
        }
    }

    // The level: means over the 3 scored requests, and sacrebleu's corpus BLEU. 13a tokens
    // keep case, so "THE" matches nothing. Candidate n-grams: 3 × (4, 3, 2, 1) = 12, 9, 6, 3;
    // clipped matches: unigrams 4 + 2 + 1 = 7, bigrams 3 (q0 only), trigrams 2, 4-grams 1.
    // Candidate and reference lengths are both 12: brevity penalty 1.
    let exact_mean = 1.0 / 3.0;
    let r1_mean = (1.0 + 0.4 + 2.0 / 3.0) / 3.0;
    let r2_mean = (1.0 + 0.0 + 0.5) / 3.0;
    let bleu = 100.0 * ((7.0 / 12.0) * (3.0 / 9.0) * (2.0 / 6.0) * (1.0 / 3.0f64)).powf(0.25);
    let saved: Value =
        serde_json::from_str(std::fs::read_to_string(&result).unwrap().trim()).unwrap();
    let a = &saved["perfgate"]["accuracy"];
    assert_eq!(a["pairs"], 3, "{a}");
    for (key, value) in [
        ("exact_match", exact_mean),
        ("rouge1", r1_mean),
        ("rouge2", r2_mean),
        ("rouge_l", r1_mean),
    ] {
        let got = a[key].as_f64().unwrap();
        assert!((got - value).abs() < 1e-12, "{key}: {got} != {value}");
    }
    assert!(
        (a["bleu"]["score"].as_f64().unwrap() - bleu).abs() < 1e-9,
        "{a}"
    );
    assert_eq!(a["bleu"]["counts"], serde_json::json!([7, 3, 2, 1]));
    assert_eq!(a["bleu"]["totals"], serde_json::json!([12, 9, 6, 3]));
    assert_eq!(a["bleu"]["bp"], 1.0);

    // The text output: one perfgate line after the upstream block, which still parses as it
    // did (the accuracy words are none of upstream's labels).
    let line = format!(
        "perfgate: accuracy over 3 requests with a reference: exact match {exact_mean:.4}, \
         rouge-1 f1 {r1_mean:.4}, rouge-2 f1 {r2_mean:.4}, rouge-l f1 {r1_mean:.4}, corpus bleu \
         {bleu:.2}\n"
    );
    assert!(stdout.contains(&line), "{line} not in\n{stdout}");
    assert!(
        stdout.contains("perfgate: note: accuracy: 1 completed request(s) had no reference"),
        "{stdout}"
    );
    let block_end = stdout.rfind(&"=".repeat(50)).unwrap();
    assert!(stdout.find(&line).unwrap() > block_end);
    let log = std::fs::read_to_string(out_dir.join("serve-bench.log")).unwrap();
    let parsed = perfgate::report::parse_str(&log);
    assert_eq!(parsed.kind, perfgate::report::ReportKind::Serve);
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    assert_eq!(parsed.metrics["NUM_REQUESTS"], 4.0);

    // The CSV: the same figures in six columns at the end.
    let csv = std::fs::read_to_string(out_dir.join("summary.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let header = rows.headers().unwrap().clone();
    let row = rows.records().next().unwrap().unwrap();
    let col = |name: &str| -> f64 {
        let i = header.iter().position(|h| h == name).unwrap_or_else(|| {
            panic!("no {name} column in {header:?}");
        });
        row[i].parse().unwrap()
    };
    assert_eq!(col("accuracy_requests"), 3.0);
    assert!((col("exact_match") - exact_mean).abs() < 1e-12);
    assert!((col("rouge1_f1") - r1_mean).abs() < 1e-12);
    assert!((col("rouge2_f1") - r2_mean).abs() < 1e-12);
    assert!((col("rougeL_f1") - r1_mean).abs() < 1e-12);
    assert!((col("bleu") - bleu).abs() < 1e-9);

    // Without reference outputs --accuracy is a usage error (before any request is sent).
    let plain = prompts_file(dir.path());
    let no_refs = dir.path().join("no-refs.jsonl");
    std::fs::write(&no_refs, "{\"input\": \"a\"}\n").unwrap();
    let (code, _, err) = cli(&[
        "--url",
        "http://127.0.0.1:1",
        "--input-data",
        no_refs.to_str().unwrap(),
        "--osl",
        "4",
        "--concurrency",
        "1",
        "--accuracy",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--accuracy") && err.contains("`output`"),
        "{err}"
    );
    // Chat: the streamed deltas are the text scored.
    let (code, stdout, err) = cli(&[
        "--url",
        &mock.http,
        "--endpoint",
        "chat",
        "--input-data",
        plain.to_str().unwrap(),
        "--osl",
        "2",
        "--concurrency",
        "1",
        "--num-prompts",
        "2",
        "--accuracy",
    ]);
    assert_eq!(code, 0, "{err}");
    // "the the" against "a reference": no shared word, not equal.
    assert!(
        stdout.contains(
            "perfgate: accuracy over 1 requests with a reference: exact match 0.0000, rouge-1 f1 \
             0.0000, rouge-2 f1 0.0000, rouge-l f1 0.0000, corpus bleu 0.00"
        ),
        "{stdout}"
    );
}

/// A proxy in front of `upstream` that drops a connection when a POST arrives on it after a GET
/// did: what a server that closes a probe's connection looks like to a client that pools it
/// (transformers serve's `/v1/models` raises without a Hugging Face cache and uvicorn drops
/// the connection). Returns the proxy's URL and how many connections it dropped.
fn dropping_proxy(upstream: &str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let target = upstream.trim_start_matches("http://").to_string();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let dropped = Arc::new(AtomicUsize::new(0));
    let count = dropped.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let count = count.clone();
            let (mut c_read, mut s_write) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (mut s_read, mut c_write) = (server, client);
            // Server to client, until either side closes.
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let got = AtomicBool::new(false);
                let mut buf = [0u8; 65536];
                loop {
                    let n = match c_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let chunk = &buf[..n];
                    if chunk.starts_with(b"GET ") {
                        got.store(true, Ordering::SeqCst);
                    } else if chunk.starts_with(b"POST ") && got.load(Ordering::SeqCst) {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = c_read.shutdown(std::net::Shutdown::Both);
                        let _ = s_write.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                    if s_write.write_all(chunk).is_err() {
                        break;
                    }
                }
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (url, dropped)
}

/// The measurement never sends a request on a connection the probes used: a server that
/// closes such a connection (seen on an H200 with transformers serve: 1 of 16 requests failed
/// in every repetition) costs no request.
#[test]
fn requests_never_reuse_a_probes_connection() {
    let mock = Mock::start(&["--ttft-ms", "5", "--itl-ms", "1"]);
    let (url, dropped) = dropping_proxy(&mock.http);
    let dir = tempfile::tempdir().expect("tempdir");
    let o = options(
        &url,
        Endpoint::Completions,
        prompts(dir.path(), 4),
        LoadLevel::Concurrency(4),
        16,
    );
    let report = bench(&o);
    let s = &report.levels[0].summary;
    assert_eq!(s.failed, 0, "{:?}", s.errors);
    assert_eq!(s.completed, 16);
    assert_eq!(
        dropped.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a request went out on a probe's connection"
    );
}
