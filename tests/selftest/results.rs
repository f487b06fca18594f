//! The result files on their own: upstream's CSV columns and YAML layout, failed results kept
//! with their state, repetitions summarised, JSONL records, and a CSV from another version
//! refused before anything runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use perfgate::record::{CaseId, CaseResult, Measurement, State};
use perfgate::results::{Sink, jsonl, junit, upstream, verdicts};

fn measurement(rep: u32, state: State, metrics: &[(&str, f64)]) -> Measurement {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000 + u64::from(rep) * 100);
    Measurement {
        step: "throughput",
        repetition: rep,
        state,
        reason: (state != State::Valid).then(|| "`trtllm-bench` exited with status 3".into()),
        metrics: metrics
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>(),
        warnings: vec![],
        command: "trtllm-bench --model=m_hf throughput".into(),
        log: "/out/t/perf.log".into(),
        started: t,
        ended: t + Duration::from_secs(60),
        duration: Duration::from_secs(60),
        telemetry: None,
        evidence: Vec::new(),
    }
}

fn case(raw: &str, measurements: Vec<Measurement>) -> CaseResult {
    CaseResult {
        id: CaseId {
            test_id: format!("H100/perf/test_perf.py::test_perf[{raw}]"),
            raw: raw.into(),
            label: format!("{raw}-canonical"),
            case: None,
        },
        expected: vec![
            ("throughput", "INFERENCE_TIME"),
            ("throughput", "TOKEN_THROUGHPUT"),
        ],
        measurements,
        reason: None,
        title: None,
        upstream_record: None,
    }
}

/// The sinks a run writes its result files through, in the run's order.
struct Writers {
    sinks: Vec<Box<dyn Sink>>,
    junit: junit::JunitWriter,
}

impl Writers {
    fn case(&mut self, case: &CaseResult) -> anyhow::Result<()> {
        for s in &mut self.sinks {
            s.case_finished(case, &[])?;
        }
        Ok(())
    }
}

fn writers(dir: &Path) -> Writers {
    let gpu = upstream::GpuColumns::default();
    Writers {
        sinks: vec![
            Box::new(perfgate::results::GpuMonitoring::new(dir)),
            Box::new(upstream::CsvWriter::open(dir, gpu.clone()).expect("csv")),
            Box::new(upstream::YamlWriter::open(dir, gpu).expect("yaml")),
            Box::new(
                jsonl::JsonlWriter::open(dir, "run-1", serde_json::Map::new()).expect("jsonl"),
            ),
            Box::new(verdicts::VerdictWriter::open(dir, "run-1").expect("gate.jsonl")),
        ],
        junit: junit::JunitWriter::new(&dir.join("results.xml"), "perf"),
    }
}

fn sample_cases() -> Vec<CaseResult> {
    vec![
        case(
            "good",
            vec![
                measurement(
                    1,
                    State::Valid,
                    &[("INFERENCE_TIME", 1000.0), ("TOKEN_THROUGHPUT", 90.0)],
                ),
                measurement(
                    2,
                    State::Valid,
                    &[("INFERENCE_TIME", 1100.0), ("TOKEN_THROUGHPUT", 80.0)],
                ),
                measurement(
                    3,
                    State::Valid,
                    &[("INFERENCE_TIME", 1200.0), ("TOKEN_THROUGHPUT", 100.0)],
                ),
            ],
        ),
        case("crashed", vec![measurement(1, State::Failed, &[])]),
    ]
}

#[test]
fn the_csv_has_upstreams_columns_and_keeps_failed_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = writers(dir.path());
    for c in sample_cases() {
        w.case(&c).expect("written");
    }
    let mut r = csv::Reader::from_path(dir.path().join(upstream::CSV_NAME)).expect("csv");
    let header: Vec<String> = r
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(header, upstream::COLUMNS);
    let rows: Vec<csv::StringRecord> = r.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 4, "one row per expected metric per case");
    let col = |row: &csv::StringRecord, name: &str| {
        let i = upstream::COLUMNS
            .iter()
            .position(|c| *c == name)
            .expect("column");
        row[i].to_string()
    };
    let inference = &rows[0];
    assert_eq!(col(inference, "metric_type"), "INFERENCE_TIME");
    assert_eq!(
        col(inference, "perf_metric"),
        "1100",
        "the mean of three repetitions"
    );
    assert_eq!(col(inference, "state"), "valid");
    assert_eq!(col(inference, "network_name"), "good-canonical");
    assert_eq!(col(inference, "network_hash"), "test_perf[good]");
    assert_eq!(
        col(inference, "perf_case_name"),
        "H100/perf/test_perf.py::test_perf_metric_inference_time[good-canonical]"
    );
    assert_eq!(
        col(inference, "test_name"),
        "test_perf_metric_inference_time[good-canonical]"
    );
    assert_eq!(
        col(inference, "original_test_name"),
        "H100/perf/test_perf.py::test_perf[good]"
    );
    assert_eq!(col(inference, "threshold"), "0.1");
    assert_eq!(col(inference, "absolute_threshold"), "50");
    assert_eq!(col(inference, "total_time__sec"), "180");
    assert_eq!(
        col(inference, "start_timestamp"),
        "2026-09-21 14:15:00 +0000"
    );
    assert_eq!(
        col(&rows[1], "threshold"),
        "-0.1",
        "upstream's sign for higher-is-better"
    );
    assert_eq!(col(&rows[1], "perf_metric"), "90");
    let crashed = &rows[2];
    assert_eq!(col(crashed, "state"), "failed");
    assert_eq!(
        col(crashed, "perf_metric"),
        "",
        "no value is invented for a failed run"
    );

    // Appending keeps one header.
    drop(w);
    let mut w = writers(dir.path());
    w.case(&sample_cases()[0]).expect("appended");
    let text = std::fs::read_to_string(dir.path().join(upstream::CSV_NAME)).expect("csv");
    assert_eq!(text.matches("network_name,").count(), 1);
    assert_eq!(text.lines().count(), 1 + 4 + 2);
}

#[test]
fn a_csv_from_another_version_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(upstream::CSV_NAME);
    std::fs::write(&path, "network_name,raw_result,perf_metric\nx,y,1\n").expect("write");
    let err = upstream::CsvWriter::open(dir.path(), upstream::GpuColumns::default())
        .err()
        .expect("refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(
            "perf_script_test_results.csv:1: the header is `network_name,raw_result,perf_metric`"
        ),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("kept"),
        "network_name,raw_result,perf_metric\nx,y,1\n",
        "the old file is left as it was"
    );
}

#[test]
fn the_yaml_is_upstreams_mapping_of_test_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = writers(dir.path());
    for c in sample_cases() {
        w.case(&c).expect("written");
    }
    let text = std::fs::read_to_string(dir.path().join(upstream::YAML_NAME)).expect("yaml");
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("valid YAML");
    let entry = &doc["test_perf_metric_inference_time[good-canonical]"];
    assert_eq!(entry["test_result"]["perf_metric"], 1100.0);
    assert_eq!(entry["test_result"]["state"], "valid");
    assert_eq!(entry["test_description"]["network_hash"], "test_perf[good]");
    assert_eq!(entry["monitor_data"]["gpu"], serde_json::json!([]));
    let crashed = &doc["test_perf_metric_inference_time[crashed-canonical]"];
    assert_eq!(crashed["test_result"]["state"], "failed");
    assert!(crashed["test_result"]["perf_metric"].is_null());
}

#[test]
fn jsonl_has_every_repetition_and_a_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = writers(dir.path());
    for c in sample_cases() {
        w.case(&c).expect("written");
    }
    let text = std::fs::read_to_string(dir.path().join(jsonl::NAME)).expect("jsonl");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    // 3 repetitions × 2 metrics, 2 summaries, 1 failed run without metrics.
    assert_eq!(lines.len(), 9, "{text}");
    let summary = lines
        .iter()
        .find(|l| l["metric"] == "INFERENCE_TIME" && l["summary"].is_object())
        .expect("summary");
    assert_eq!(summary["summary"]["mean"], 1100.0);
    assert_eq!(summary["summary"]["stddev"], 100.0);
    assert_eq!(summary["summary"]["min"], 1000.0);
    assert_eq!(summary["summary"]["max"], 1200.0);
    assert_eq!(summary["summary"]["n"], 3);
    let rep2 = lines
        .iter()
        .find(|l| l["metric"] == "TOKEN_THROUGHPUT" && l["repetition"] == 2)
        .expect("repetition 2");
    assert_eq!(rep2["value"], 80.0);
    assert_eq!(rep2["direction"], "higher");
    assert_eq!(rep2["unit"], "tokens/s/gpu");
    assert_eq!(rep2["run_id"], "run-1");
    assert_eq!(rep2["log"], "/out/t/perf.log");
    let failed = lines
        .iter()
        .find(|l| l["name"] == "crashed")
        .expect("failed run");
    assert_eq!(failed["state"], "failed");
    assert!(failed["value"].is_null());
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("status 3"))
    );
    // The typed reader gets the same lines back.
    let records = jsonl::read(&dir.path().join(jsonl::NAME)).expect("read back");
    assert_eq!(records.len(), 9);
    assert_eq!(records.iter().filter(|r| r.is_measurement()).count(), 6);
    let r = records
        .iter()
        .find(|r| r.metric.as_deref() == Some("TOKEN_THROUGHPUT") && r.repetition == Some(2))
        .expect("repetition 2");
    assert_eq!(r.value, Some(80.0));
    assert_eq!(r.state, perfgate::record::State::Valid);
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!("{}\n{{not json\n", text.lines().next().unwrap_or("")),
    )
    .expect("w");
    let e = jsonl::read(&bad).expect_err("line 2 is not a record");
    assert!(format!("{e:#}").contains("bad.jsonl:2:"), "{e:#}");
}

#[test]
fn junit_carries_metrics_and_failures_and_is_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = writers(dir.path());
    let cases = sample_cases();
    w.junit
        .record(junit::JunitCase {
            test_id: cases[0].id.test_id.clone(),
            outcome: junit::Outcome::Passed,
            duration: Duration::from_secs(180),
            started: SystemTime::UNIX_EPOCH,
            properties: junit::properties(&cases[..1]),
            system_out: Some("report <&> \u{1b}[0m done".into()),
        })
        .expect("written");
    w.junit
        .record(junit::JunitCase {
            test_id: cases[1].id.test_id.clone(),
            outcome: junit::Outcome::Failed {
                message: "`trtllm-bench` exited with status 3".into(),
                detail: "last lines of the log:\n  | Segmentation fault".into(),
            },
            duration: Duration::from_secs(5),
            started: SystemTime::UNIX_EPOCH,
            properties: junit::properties(&cases[1..]),
            system_out: None,
        })
        .expect("written");
    let path = dir.path().join("results.xml");
    let xml = std::fs::read_to_string(&path).expect("xml");
    assert!(
        xml.contains(r#"<property name="INFERENCE_TIME.mean" value="1100"/>"#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<property name="INFERENCE_TIME.stddev" value="100"/>"#),
        "{xml}"
    );
    assert!(xml.contains(r#"classname="H100.perf.test_perf""#), "{xml}");
    assert!(xml.contains(r#"name="test_perf[crashed]""#), "{xml}");
    assert!(xml.contains("exited with status 3"), "{xml}");
    assert!(
        !xml.contains('\u{1b}'),
        "control characters are not valid XML"
    );
    crate::junit_xsd::validate(&path).expect("valid against the Jenkins JUnit schema");
}
