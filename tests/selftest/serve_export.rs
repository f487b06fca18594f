//! Serving cases in the history: each case's upstream record is kept per run (schema V5, a
//! V4 file migrated in place), and `history export --format opensearch-bulk` writes a serving
//! case as the document upstream's perf-sanity database holds: checked against
//! ../shared/reference/serving.md §1.6-1.7 (the sixteen `d_` figures and `d_al`, upstream's
//! job fields, keys typed by prefix as `OpenSearchDB.typeCheckForOpenSearchDB` checks them),
//! against the records upstream's own code makes for its configs
//! (tests/fixtures/perf_sanity/expected.jsonl), and against upstream's matching rule
//! (`perf_sanity_matching.benchmark_data_matches`, re-expressed below).

use std::path::Path;

use perfgate::history::{CaseRecordRow, History, MeasurementRow, RunMeta};
use perfgate::record::metric::Direction;
use perfgate::record::{State, Verdict, VerdictRecord};
use serde_json::{Map, Value, json};

/// serving.md §1.6: the database fields of upstream's `PERF_METRIC_LOG_QUERIES`, and the
/// `benchmark_serving` line each is read from (which perfgate stores under its metric names).
const FIGURES: [(&str, &str); 17] = [
    ("d_seq_throughput", "SEQ_THROUGHPUT"),
    ("d_token_throughput", "TOTAL_OUTPUT_THROUGHPUT"),
    ("d_total_token_throughput", "TOTAL_TOKEN_THROUGHPUT"),
    ("d_user_throughput", "USER_THROUGHPUT"),
    ("d_mean_ttft", "FIRST_TOKEN_TIME"),
    ("d_median_ttft", "MEDIAN_FIRST_TOKEN_TIME"),
    ("d_p99_ttft", "P99_FIRST_TOKEN_TIME"),
    ("d_mean_itl", "INTER_TOKEN_TIME"),
    ("d_median_itl", "MEDIAN_INTER_TOKEN_TIME"),
    ("d_p99_itl", "P99_INTER_TOKEN_TIME"),
    ("d_mean_tpot", "OUTPUT_TOKEN_TIME"),
    ("d_median_tpot", "MEDIAN_OUTPUT_TOKEN_TIME"),
    ("d_p99_tpot", "P99_OUTPUT_TOKEN_TIME"),
    ("d_mean_e2el", "AVG_REQUEST_LATENCY"),
    ("d_median_e2el", "MEDIAN_INFERENCE_TIME"),
    ("d_p99_e2el", "P99_INFERENCE_TIME"),
    ("d_al", "AVG_DECODED_TOKENS_PER_ITER"),
];

/// Upstream's `get_job_info` keys (open_search_db_utils.py) every document carries.
const JOB_FIELDS: [&str; 17] = [
    "b_is_baseline",
    "b_is_valid",
    "s_host_node_name",
    "s_build_id",
    "s_build_url",
    "s_job_name",
    "s_job_id",
    "s_job_url",
    "s_branch",
    "s_commit",
    "b_is_post_merge",
    "b_is_pr_job",
    "s_trigger_mr_user",
    "s_trigger_mr_link",
    "s_trigger_mr_id",
    "s_trigger_mr_commit",
    "b_is_regression",
];

fn fixture_cases(id: &str) -> Vec<Value> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/perf_sanity/expected.jsonl");
    let text = std::fs::read_to_string(path).expect("expected.jsonl");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .find(|v| v["id"] == id)
        .and_then(|v| v["cases"].as_array().cloned())
        .expect("the sample is in expected.jsonl")
}

fn meta(run_id: &str, build_url: Option<&str>) -> RunMeta {
    RunMeta {
        run_id: run_id.into(),
        started: "2026-05-01T02:00:00Z".into(),
        host: "node-3".into(),
        test_prefix: Some("B200".into()),
        fingerprint: "gpu=B200".into(),
        env_json: "{}".into(),
        revision: Some(format!("rev-{run_id}")),
        branch: Some("main".into()),
        build_url: build_url.map(str::to_string),
        imported_from: None,
    }
}

const TEST_ID: &str =
    "B200/perf/test_perf_sanity.py::test_e2e[aggr_upload-gpt_oss_120b_fp4_blackwell]";

fn perf_case_name(label: &str, metric: &str) -> String {
    format!(
        "B200/perf/test_perf_sanity.py::test_perf_metric_{}[{label}]",
        metric.to_ascii_lowercase()
    )
}

/// One run of the sample's serving cases: each figure measured twice (values from `scale`),
/// their upstream records, and verdicts (`fail` makes the first case's output throughput a
/// gated FAIL). A bench case's measurement rides along.
fn store_run(h: &mut History, run_id: &str, build_url: Option<&str>, scale: f64, fail: bool) {
    h.begin_run(&meta(run_id, build_url)).expect("begin");
    let mut rows = Vec::new();
    let mut records = Vec::new();
    let mut verdicts = Vec::new();
    for (c, case) in fixture_cases("aggr_upload-gpt_oss_120b_fp4_blackwell")
        .iter()
        .enumerate()
    {
        let label = case["label"].as_str().expect("label").to_string();
        let speculative = case["record"]["s_spec_decoding_type"] != "";
        for (i, (_, metric)) in FIGURES.iter().enumerate() {
            if *metric == "AVG_DECODED_TOKENS_PER_ITER" && !speculative {
                continue;
            }
            for rep in 1..=2u32 {
                rows.push(MeasurementRow {
                    test_id: TEST_ID.into(),
                    perf_case_name: perf_case_name(&label, metric),
                    network_name: label.clone(),
                    case: Some(label.clone()),
                    step: "client".into(),
                    metric: metric.to_string(),
                    repetition: rep,
                    value: scale * (10.0 + i as f64 + c as f64) + f64::from(rep),
                    state: State::Valid,
                });
            }
        }
        records.push(CaseRecordRow {
            test_id: TEST_ID.into(),
            network_name: label.clone(),
            case: Some(label.clone()),
            record: json!({"fields": case["record"], "match_keys": case["match_keys"]}),
        });
        let verdict = if fail && c == 0 {
            Verdict::Fail
        } else {
            Verdict::Pass
        };
        verdicts.push(VerdictRecord {
            run_id: run_id.into(),
            test_id: TEST_ID.into(),
            perf_case_name: perf_case_name(&label, "TOTAL_OUTPUT_THROUGHPUT"),
            network_name: label.clone(),
            test_name: String::new(),
            case: Some(label.clone()),
            step: "client".into(),
            metric: "TOTAL_OUTPUT_THROUGHPUT".into(),
            unit: "tok/s".into(),
            direction: Direction::HigherIsBetter,
            gated: true,
            verdict,
            value: Some(scale * 11.0),
            reps: vec![],
            baseline: Some(11.5),
            change_pct: None,
            mde_pct: None,
            noise_pct: None,
            source: "history".into(),
            history_nights: 5,
            roofline_pct: None,
            mfu_pct: None,
            mbu_pct: None,
            threshold: None,
            absolute_threshold: None,
            fingerprint: "gpu=B200".into(),
            reruns: 0,
            explanation: String::new(),
            evidence: vec![],
        });
    }
    rows.push(MeasurementRow {
        test_id: "B200/perf/test_perf.py::test_perf[llama-bench-float16]".into(),
        perf_case_name: "B200/perf/test_perf.py::test_perf_metric_seq_throughput[llama]".into(),
        network_name: "llama".into(),
        case: None,
        step: "throughput".into(),
        metric: "SEQ_THROUGHPUT".into(),
        repetition: 1,
        value: 5.0,
        state: State::Valid,
    });
    h.record_measurements(run_id, &rows).expect("measurements");
    h.record_case_records(run_id, &records).expect("records");
    h.record_verdicts(&verdicts).expect("verdicts");
    h.finish_run(run_id, "2026-05-01T03:00:00Z")
        .expect("finish");
}

fn export(history: &Path, extra: &[&str]) -> (Vec<(Value, Value)>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args([
            "history",
            "export",
            "--format",
            "opensearch-bulk",
            "--history",
        ])
        .arg(history)
        .args(extra)
        .output()
        .expect("perfgate runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    assert_eq!(lines.len() % 2, 0, "action and document lines alternate");
    (
        lines
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect(),
        stderr,
    )
}

/// `OpenSearchDB.typeCheckForOpenSearchDB`: every key typed by its prefix, or one of the
/// allowed metadata keys.
fn upstream_type_check(doc: &Map<String, Value>) -> Result<(), String> {
    for (k, v) in doc {
        let ok = if k.starts_with("l_") || k.starts_with("ts_") {
            v.is_i64() || v.is_u64()
        } else if k.starts_with("d_") {
            v.is_f64()
        } else if k.starts_with("s_") {
            v.is_string()
        } else if k.starts_with("b_") {
            v.is_boolean()
        } else {
            [
                "@timestamp",
                "_id",
                "_index",
                "_score",
                "_type",
                "_project",
                "_shard",
                "_version",
            ]
            .contains(&k.as_str())
        };
        if !ok {
            return Err(format!("{k} = {v}"));
        }
    }
    Ok(())
}

/// `perf_sanity_matching.benchmark_data_matches`.
fn upstream_matches(
    history: &Map<String, Value>,
    new: &Map<String, Value>,
    keys: &[Value],
) -> bool {
    keys.iter().filter_map(Value::as_str).all(|k| {
        let get = |d: &Map<String, Value>| match d.get(k) {
            None | Some(Value::Null) if k.starts_with("b_") => Value::Bool(false),
            None => Value::Null,
            Some(v) => v.clone(),
        };
        let (h, n) = (get(history), get(new));
        let empty = |v: &Value| v.is_null() || v == &json!("");
        (empty(&h) && empty(&n)) || h == n
    })
}

#[test]
fn serving_cases_export_as_perf_sanity_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.sqlite");
    let mut h = History::open(&path).expect("open");
    store_run(&mut h, "night-1", None, 1.0, false);
    store_run(
        &mut h,
        "night-2",
        Some("https://jenkins.example/job/LLM/job/main/job/L0_PostMerge/7/"),
        1.1,
        true,
    );
    drop(h);
    let cases = fixture_cases("aggr_upload-gpt_oss_120b_fp4_blackwell");
    let (pairs, stderr) = export(&path, &[]);
    assert!(
        stderr.contains(&format!(
            "exported 2 measurement(s) and {} serving case(s) as perf-sanity documents of 2 run(s)",
            2 * cases.len()
        )),
        "{stderr}"
    );
    let docs: Vec<(&Value, &Map<String, Value>)> = pairs
        .iter()
        .filter_map(|(a, d)| Some((a, d.as_object()?)))
        .filter(|(_, d)| d.contains_key("s_test_case_name"))
        .collect();
    assert_eq!(docs.len(), 2 * cases.len());
    // A case's document by night and case (upstream's s_test_case_name is perfgate's label).
    let doc_of = |night: usize, case: &Value| -> (&Value, &Map<String, Value>) {
        docs[night * cases.len()..(night + 1) * cases.len()]
            .iter()
            .find(|(_, d)| d["s_test_case_name"] == case["label"])
            .copied()
            .unwrap_or_else(|| panic!("no document for {}", case["label"]))
    };
    for night in 0..2 {
        for case in &cases {
            let (action, doc) = doc_of(night, case);
            let label = case["label"].as_str().expect("label");
            upstream_type_check(doc).unwrap_or_else(|e| panic!("{label}: {e}"));
            assert!(action["index"]["_id"].is_string() && !doc.contains_key("_id"));
            // Every field upstream's code records for this config, as its code records it.
            for (k, v) in case["record"].as_object().expect("record") {
                let got = &doc[k];
                let same = match (got.as_f64(), v.as_f64()) {
                    (Some(a), Some(b)) if k.starts_with("d_") => a == b,
                    _ => got == v,
                };
                assert!(same, "{label}: {k} is {got}, upstream's code gives {v}");
            }
            for k in case["match_keys"].as_array().expect("keys") {
                let k = k.as_str().expect("key");
                assert!(doc.contains_key(k), "{label}: match key {k} missing");
            }
            for k in JOB_FIELDS {
                assert!(doc.contains_key(k), "{label}: job field {k} missing");
            }
            // The figures: the valid repetitions' mean, under upstream's names.
            let speculative = case["record"]["s_spec_decoding_type"] != "";
            let scale = [1.0, 1.1][night];
            let c = cases.iter().position(|x| x == case).expect("case") as f64;
            for (i, (field, _)) in FIGURES.iter().enumerate() {
                if *field == "d_al" && !speculative {
                    assert!(
                        !doc.contains_key(*field),
                        "{label}: d_al without speculation"
                    );
                    continue;
                }
                let want = scale * (10.0 + i as f64 + c) + 1.5;
                let got = doc[*field].as_f64().expect("a figure");
                assert!(
                    (got - want).abs() < 1e-9,
                    "{label}: {field} {got} != {want}"
                );
            }
            assert_eq!(doc["s_host_node_name"], "node-3");
            assert_eq!(doc["s_stage_name"], "B200");
            assert_eq!(doc["s_commit"], format!("rev-night-{}", night + 1));
            assert_eq!(doc["b_is_valid"], true);
            assert_eq!(doc["ts_created"], 1_777_600_800_000i64);
            assert_eq!(doc["@timestamp"], "2026-05-01T02:00:00Z");
        }
    }
    // Night 2 ran post-merge, and its first case regressed in output throughput.
    for (i, case) in cases.iter().enumerate() {
        let (_, d1) = doc_of(0, case);
        let (_, d2) = doc_of(1, case);
        assert_eq!(d1["b_is_post_merge"], false);
        assert_eq!(d2["b_is_post_merge"], true);
        assert_eq!(d2["b_is_regression"], i == 0, "case {i}");
        if i == 0 {
            assert_eq!(d2["s_regression_info"], "d_token_throughput");
            assert_eq!(d2["d_baseline_token_throughput"], 11.5);
        } else {
            assert!(!d2.contains_key("s_regression_info"));
        }
    }
    // Upstream's matching: a case's document matches its own history (the other night) and
    // the others' only where upstream's keys cannot tell the configs apart.
    let mut told_apart = 0;
    for (i, case) in cases.iter().enumerate() {
        let keys = case["match_keys"].as_array().expect("keys");
        let (_, tonight) = doc_of(1, case);
        assert!(
            upstream_matches(doc_of(0, case).1, tonight, keys),
            "case {i} across nights"
        );
        for (j, other) in cases.iter().enumerate().filter(|(j, _)| *j != i) {
            let same_keys = keys
                .iter()
                .filter_map(Value::as_str)
                .all(|k| case["record"].get(k) == other["record"].get(k));
            let matched = upstream_matches(doc_of(0, other).1, tonight, keys);
            assert_eq!(matched, same_keys, "case {i} against case {j}");
            told_apart += usize::from(!matched);
        }
    }
    assert!(
        told_apart > 0,
        "the sample's cases differ in their match keys"
    );
    // Stable ids: exporting again gives the same documents under the same ids.
    let (again, _) = export(&path, &[]);
    assert_eq!(again, pairs);
    // The bench case stays a measurement document; CSV stays one row per measurement.
    assert!(
        pairs
            .iter()
            .any(|(_, d)| d["metric"] == "SEQ_THROUGHPUT" && d["value"] == 5.0)
    );
}

/// A serving case with a figure missing gets no document (upstream uploads none either), and
/// the export says which case and why.
#[test]
fn a_serving_case_with_a_missing_figure_has_no_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.sqlite");
    let mut h = History::open(&path).expect("open");
    store_run(&mut h, "night-1", None, 1.0, false);
    // A second run where the first case's P99 TTFT failed to parse.
    h.begin_run(&meta("night-2", None)).expect("begin");
    let case = &fixture_cases("aggr_upload-gpt_oss_120b_fp4_blackwell")[1];
    let label = case["label"].as_str().expect("label");
    let rows: Vec<MeasurementRow> = FIGURES
        .iter()
        .filter(|(_, m)| *m != "P99_FIRST_TOKEN_TIME" && *m != "AVG_DECODED_TOKENS_PER_ITER")
        .map(|(_, m)| MeasurementRow {
            test_id: TEST_ID.into(),
            perf_case_name: perf_case_name(label, m),
            network_name: label.into(),
            case: Some(label.into()),
            step: "client".into(),
            metric: m.to_string(),
            repetition: 1,
            value: 1.0,
            state: State::Valid,
        })
        .collect();
    h.record_measurements("night-2", &rows).expect("rows");
    h.record_case_records(
        "night-2",
        &[CaseRecordRow {
            test_id: TEST_ID.into(),
            network_name: label.into(),
            case: Some(label.into()),
            record: json!({"fields": case["record"], "match_keys": case["match_keys"]}),
        }],
    )
    .expect("record");
    drop(h);
    let (pairs, stderr) = export(&path, &["--run", "night-2"]);
    assert!(pairs.is_empty(), "{pairs:?}");
    assert!(
        stderr.contains(&format!("no perf-sanity document for {TEST_ID} [{label}]"))
            && stderr.contains("no valid P99_FIRST_TOKEN_TIME (`d_p99_ttft`)"),
        "{stderr}"
    );
}

/// A history written by schema version 4 (before case records) is migrated in place: its runs
/// stay, and a new run keeps its serving cases' records, which merging a run's shards copies.
#[test]
fn a_version_4_history_is_migrated_to_keep_case_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.sqlite");
    {
        let mut h = History::open(&path).expect("create");
        h.begin_run(&meta("old", None)).expect("begin");
        h.record_measurements(
            "old",
            &[MeasurementRow {
                test_id: TEST_ID.into(),
                perf_case_name: perf_case_name("x", "SEQ_THROUGHPUT"),
                network_name: "x".into(),
                case: None,
                step: "client".into(),
                metric: "SEQ_THROUGHPUT".into(),
                repetition: 1,
                value: 3.0,
                state: State::Valid,
            }],
        )
        .expect("rows");
    }
    {
        let c = rusqlite::Connection::open(&path).expect("raw open");
        c.execute_batch("DROP TABLE case_records; PRAGMA user_version = 4;")
            .expect("a version 4 file");
    }
    let mut h = History::open(&path).expect("migrated");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, 5);
    assert_eq!(h.measurements("old").expect("old rows").len(), 1);
    assert!(h.case_records("old").expect("none yet").is_empty());
    store_run(&mut h, "new", None, 1.0, false);
    let stored = h.case_records("new").expect("records");
    let cases = fixture_cases("aggr_upload-gpt_oss_120b_fp4_blackwell");
    assert_eq!(stored.len(), cases.len());
    assert!(
        stored
            .iter()
            .all(|r| cases.iter().any(|c| r.record["fields"] == c["record"]))
    );
    // A record that is not an object is refused.
    let e = h
        .record_case_records(
            "new",
            &[CaseRecordRow {
                test_id: TEST_ID.into(),
                network_name: "x".into(),
                case: None,
                record: json!([1]),
            }],
        )
        .expect_err("not an object");
    assert!(e.to_string().contains("must be a JSON object"), "{e}");
    // Merging the run into another history copies its records.
    let merged_path = dir.path().join("merged.sqlite");
    let mut merged = History::open(&merged_path).expect("merged");
    let summary = merged.merge_run(&[&path], "new").expect("merge");
    assert_eq!(summary.case_records, cases.len());
    assert_eq!(merged.case_records("new").expect("records"), stored);
}
