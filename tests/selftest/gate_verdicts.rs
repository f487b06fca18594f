//! From a case's measurements to its verdicts: validity checks (counts, invariants, physics)
//! against a real published report, the environment fingerprint, every verdict of the default
//! gate and of `--gate upstream`, the fail-on policies, and the files and text the verdicts
//! are written as.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use perfgate::config::{PerfName, parse};
use perfgate::gate::env::Fingerprint;
use perfgate::gate::evaluate::{
    BaselineRef, CaseContext, FailOn, GateMode, Reference, evaluate, wants_rerun,
};
use perfgate::gate::stats::StoredBaseline;
use perfgate::gate::validity::check;
use perfgate::models::ModelConfigs;
use perfgate::physics::{Roofline, rooflines};
use perfgate::record::Expectations;
use perfgate::record::VerdictRecord;
use perfgate::record::{CaseId, CaseResult, Measurement, State};
use perfgate::record::{Observation, Verdict};
use perfgate::results::{junit, verdicts};

/// The metrics of a real trtllm-bench 0.21 report (devblog, Llama-3.1-8B, 100 requests of
/// 128/128): every invariant holds on it.
fn published() -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(
        "tests/fixtures/bench_logs/009-devblog-llama31-8b-pytorch-streaming-v0.21.0rc0.log",
    )
    .expect("fixture");
    perfgate::report::parse_str(&text).metrics
}

const EXPECT: Expectations = Expectations {
    num_requests: Some(100),
    input_len: Some(128),
    output_len: Some(128),
    max_concurrency: None,
};

#[test]
fn a_real_report_is_valid() {
    let m = published();
    for k in [
        "NUM_REQUESTS",
        "TOTAL_OUTPUT_THROUGHPUT",
        "SEQ_THROUGHPUT",
        "AVG_CONCURRENCY",
        "AVG_TTFT",
    ] {
        assert!(m.contains_key(k), "fixture lacks {k}: {m:?}");
    }
    assert_eq!(check(&m, Some(&EXPECT), None), Vec::<String>::new());
}

#[test]
fn each_broken_identity_is_evidence_with_its_numbers() {
    let base = published();
    let broken = |k: &str, f: f64| {
        let mut m = base.clone();
        m.insert(k.into(), base[k] * f);
        check(&m, Some(&EXPECT), None)
    };
    let e = broken("NUM_REQUESTS", 0.9);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("90 requests but the dataset has 100"),
        "{e:?}"
    );

    let mut m = base.clone();
    m.insert("AVG_OUTPUT_LENGTH".into(), 97.5);
    // Shorter outputs also break output tok/s = req/s x mean length as printed.
    let e = check(&m, Some(&EXPECT), None);
    assert!(
        e.iter()
            .any(|e| e.contains("AVG_OUTPUT_LENGTH is 97.5") && e.contains("ignore_eos")),
        "{e:?}"
    );

    let e = broken("TOTAL_OUTPUT_THROUGHPUT", 1.05);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("off by 5.0%"), "{e:?}");

    let e = broken("AVG_CONCURRENCY", 1.5);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("Little's law"), "{e:?}");

    let mut m = base.clone();
    let lat = m["AVG_REQUEST_LATENCY"];
    m.insert("AVG_TTFT".into(), lat * 1.2);
    let e = check(&m, Some(&EXPECT), None);
    assert!(e.iter().any(|e| e.contains("mean TTFT")), "{e:?}");

    // Small print rounding is not evidence.
    assert!(broken("TOTAL_OUTPUT_THROUGHPUT", 1.002).is_empty());
    assert!(broken("AVG_CONCURRENCY", 1.03).is_empty());
    // A step without its case's dataset (the latency step runs its own request count) has no
    // count to check.
    let mut m = base.clone();
    m.insert("NUM_REQUESTS".into(), 7.0);
    assert!(check(&m, None, None).is_empty());
    // Lengths drawn with a spread are not checked against a mean.
    let spread = Expectations {
        input_len: None,
        output_len: None,
        ..EXPECT
    };
    let mut m = base.clone();
    m.insert("AVG_INPUT_LENGTH".into(), 131.2);
    assert!(check(&m, Some(&spread), None).is_empty());
}

fn roofline(name: &str, gpu: &str) -> Roofline {
    let Ok(PerfName::Standard(cfg)) = parse(name) else {
        panic!("not a standard name: {name}");
    };
    rooflines(&ModelConfigs::embedded(), &cfg, gpu)
        .expect("limits")
        .remove(0)
}

#[test]
fn beating_physics_is_evidence() {
    let name = "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128-reqs:100";
    let roof = roofline(name, "H100_SXM");
    let m = published();
    assert!(check(&m, Some(&EXPECT), Some(&roof)).is_empty());
    let frac = roof
        .fraction_of_limit("TOKEN_THROUGHPUT", &m)
        .expect("a throughput has a ceiling");
    assert!(frac > 0.0 && frac < 1.0, "{frac}");
    let mut fast = m.clone();
    for k in [
        "TOTAL_OUTPUT_THROUGHPUT",
        "PER_GPU_OUTPUT_THROUGHPUT",
        "TOKEN_THROUGHPUT",
        "SEQ_THROUGHPUT",
    ] {
        if let Some(v) = fast.get_mut(k) {
            *v *= 1.3 / frac;
        }
    }
    let e = check(&fast, Some(&EXPECT), Some(&roof));
    assert!(
        e.iter()
            .any(|e| e.contains("TOKEN_THROUGHPUT") && e.contains("above the ceiling")),
        "{e:?}"
    );
}

#[test]
fn the_fingerprint_keeps_platform_facts_only() {
    let system: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        r#"{"gpu": "H100_PCIe", "driver_version": "550.54.15", "system_gpu_count": 8,
            "host": "node-17", "trtllm_version": "1.0.0", "fingerprint.image": "nvcr;25.01",
            "supports_fp8": true, "stage": "post_merge", "nested": {"a": 1}}"#,
    )
    .expect("json");
    let fp = Fingerprint::of(Some(&system), Some("H100_SXM"));
    // The software under test and the machine's name are not part of it; --gpu wins.
    assert_eq!(
        fp.to_string(),
        "driver_version=550.54.15;fingerprint.image=nvcr,25.01;gpu=H100_SXM;system_gpu_count=8"
    );
    assert_eq!(Fingerprint::parse(&fp.to_string()), fp);
    let old = Fingerprint::parse("driver_version=535.104.05;gpu=H100_SXM;cuda_version=12.2");
    // Only keys both sides know can differ.
    assert_eq!(
        fp.differences(&old),
        vec!["driver_version: 535.104.05 -> 550.54.15".to_string()]
    );
    assert!(
        Fingerprint::parse("garbage;;=x;k=v")
            .differences(&fp)
            .is_empty()
    );
    assert!(Fingerprint::of(None, None).is_empty());
}

fn rep(n: u32, step: &'static str, metrics: &[(&str, f64)]) -> Measurement {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    Measurement {
        step,
        repetition: n,
        state: State::Valid,
        reason: None,
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        warnings: vec![],
        command: "trtllm-bench throughput".into(),
        log: "/out/perf.log".into(),
        started: t,
        ended: t,
        duration: Duration::from_secs(1),
        telemetry: None,
        evidence: Vec::new(),
    }
}

/// A case with `reps` repetitions of TOKEN_THROUGHPUT (and INFERENCE_TIME = 1e6 / it).
fn case(reps: &[f64]) -> CaseResult {
    CaseResult {
        id: CaseId {
            test_id: "H100/perf/test_perf.py::test_perf[m-bench-float16-input_output_len:1,2]"
                .into(),
            raw: "m-bench-float16-input_output_len:1,2".into(),
            label: "m-bench-float16-maxbs:512-maxnt:2048-input_output_len:1,2".into(),
            case: None,
        },
        expected: vec![
            ("throughput", "INFERENCE_TIME"),
            ("throughput", "TOKEN_THROUGHPUT"),
        ],
        measurements: reps
            .iter()
            .enumerate()
            .map(|(i, v)| {
                rep(
                    i as u32 + 1,
                    "throughput",
                    &[("TOKEN_THROUGHPUT", *v), ("INFERENCE_TIME", 1e6 / v)],
                )
            })
            .collect(),
        reason: None,
        title: None,
        upstream_record: None,
    }
}

/// 20 nights around 1000 tok/s with about 1% noise (deterministic).
fn history(metric: &str) -> Vec<Observation> {
    (0..20)
        .map(|i| {
            let wiggle = [0.0, 0.8, -0.6, 1.1, -1.0, 0.3, -0.2, 0.9, -0.8, 0.4][i % 10] / 100.0;
            let v = 1000.0 * (1.0 + wiggle);
            Observation {
                night: i as i64,
                value: if metric == "TOKEN_THROUGHPUT" {
                    v
                } else {
                    1e6 / v
                },
            }
        })
        .collect()
}

fn run(
    case: &CaseResult,
    mode: GateMode,
    fingerprint: &Fingerprint,
    mut lookup: impl FnMut(&str, &str) -> Reference,
) -> Vec<VerdictRecord> {
    let gated = vec!["TOKEN_THROUGHPUT".to_string()];
    let ctx = CaseContext {
        run_id: "run-1",
        mode,
        gated: &gated,
        fingerprint,
        expect: &[],
        roofline: None,
        reruns: 0,
    };
    evaluate(case, &ctx, &mut |key, _step, metric| lookup(key, metric))
}

fn by_metric<'a>(records: &'a [VerdictRecord], metric: &str) -> &'a VerdictRecord {
    records
        .iter()
        .find(|r| r.metric == metric)
        .unwrap_or_else(|| panic!("no {metric} in {records:?}"))
}

#[test]
fn nothing_to_compare_with_is_new() {
    let fp = Fingerprint::default();
    let records = run(&case(&[1000.0]), GateMode::Default, &fp, |_, _| {
        Reference::default()
    });
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r.verdict, Verdict::New, "{r:?}");
        assert_eq!(r.source, "none");
    }
    let t = by_metric(&records, "TOKEN_THROUGHPUT");
    assert!(t.gated);
    assert!(!by_metric(&records, "INFERENCE_TIME").gated);
    assert_eq!(
        t.perf_case_name,
        "H100/perf/test_perf.py::test_perf_metric_token_throughput[m-bench-float16-maxbs:512-maxnt:2048-input_output_len:1,2]"
    );
    // Upstream's thresholds come from the metric table when there is no baseline row.
    assert_eq!(
        (t.threshold, t.absolute_threshold),
        (Some(-0.1), Some(10.0))
    );
    assert!(FailOn::Unknown.failures(&records).is_empty());
}

#[test]
fn history_decides_with_direction() {
    let fp = Fingerprint::default();
    let hist = |_: &str, m: &str| Reference {
        baseline: None,
        history: history(m),
    };
    // 5% slower on three agreeing repetitions: the throughput falls, the time rises.
    let slow = run(&case(&[950.0, 952.0, 949.0]), GateMode::Default, &fp, hist);
    for r in &slow {
        assert_eq!(r.verdict, Verdict::Fail, "{}", r.explanation);
        assert_eq!(r.source, "history");
        assert_eq!(r.history_nights, 20);
        assert!(r.mde_pct.is_some_and(|m| m > 1.0 && m < 5.0), "{r:?}");
    }
    let t = by_metric(&slow, "TOKEN_THROUGHPUT");
    assert!(t.change_pct.is_some_and(|c| (c + 5.0).abs() < 0.6), "{t:?}");
    assert_eq!(FailOn::Regression.failures(&slow).len(), 1, "only gated");
    assert!(FailOn::Never.failures(&slow).is_empty());

    // 5% faster: improved, re-baseline suggested, never a failure.
    let fast = run(
        &case(&[1050.0, 1049.0, 1052.0]),
        GateMode::Default,
        &fp,
        hist,
    );
    assert!(fast.iter().all(|r| r.verdict == Verdict::Improved));
    assert!(FailOn::Unknown.failures(&fast).is_empty());

    // Unchanged: pass.
    let same = run(
        &case(&[1001.0, 999.0, 1002.0]),
        GateMode::Default,
        &fp,
        hist,
    );
    assert!(same.iter().all(|r| r.verdict == Verdict::Pass), "{same:?}");
    assert!(!wants_rerun(&same, 0, 2));

    // One slow repetition cannot fail: UNKNOWN, and a rerun is wanted while the budget lasts.
    let one = run(&case(&[950.0]), GateMode::Default, &fp, hist);
    let t = by_metric(&one, "TOKEN_THROUGHPUT");
    assert_eq!(t.verdict, Verdict::Unknown, "{}", t.explanation);
    assert!(wants_rerun(&one, 0, 2));
    assert!(wants_rerun(&one, 1, 2));
    assert!(!wants_rerun(&one, 2, 2));
    assert!(FailOn::Regression.failures(&one).is_empty());
    assert_eq!(FailOn::Unknown.failures(&one).len(), 1);
}

fn stored(center: f64) -> StoredBaseline {
    StoredBaseline {
        center,
        rel_threshold: -0.1,
        abs_threshold: 10.0,
        log_scale: None,
    }
}

#[test]
fn another_environment_is_env_changed_not_a_regression() {
    let tonight = Fingerprint::parse("driver_version=560.35;gpu=H100_SXM");
    let base = |_: &str, _: &str| Reference {
        baseline: Some(BaselineRef {
            stored: stored(1000.0),
            fingerprint: Some("driver_version=550.54;gpu=H100_SXM".into()),
        }),
        history: vec![],
    };
    let records = run(&case(&[800.0, 801.0]), GateMode::Default, &tonight, base);
    let t = by_metric(&records, "TOKEN_THROUGHPUT");
    assert_eq!(t.verdict, Verdict::EnvChanged, "{}", t.explanation);
    assert_eq!(t.evidence, vec!["driver_version: 550.54 -> 560.35"]);
    assert!(t.explanation.contains("perfgate baseline update"));
    assert!(FailOn::Regression.failures(&records).is_empty());
    assert_eq!(FailOn::Unknown.failures(&records).len(), 1);

    // A history of this environment is comparable, whatever the baseline's environment.
    let with_history = |p: &str, m: &str| Reference {
        history: history(m),
        ..base(p, m)
    };
    let records = run(
        &case(&[1000.0, 1001.0]),
        GateMode::Default,
        &tonight,
        with_history,
    );
    assert_eq!(
        by_metric(&records, "TOKEN_THROUGHPUT").verdict,
        Verdict::Pass
    );
}

#[test]
fn a_stored_baseline_decides_without_history() {
    let fp = Fingerprint::default();
    let base = |_: &str, m: &str| Reference {
        baseline: Some(BaselineRef {
            stored: stored(if m == "TOKEN_THROUGHPUT" {
                1000.0
            } else {
                1000.0
            }),
            fingerprint: None,
        }),
        history: vec![],
    };
    let records = run(&case(&[700.0, 701.0]), GateMode::Default, &fp, base);
    let t = by_metric(&records, "TOKEN_THROUGHPUT");
    assert_eq!(t.source, "baseline");
    assert_eq!(t.verdict, Verdict::Fail, "{}", t.explanation);
    assert_eq!(t.baseline, Some(1000.0));
}

#[test]
fn invalid_measurements_are_never_compared() {
    let fp = Fingerprint::default();
    let mut c = case(&[1000.0, 1001.0]);
    for m in &mut c.measurements {
        m.metrics.insert("NUM_REQUESTS".into(), 90.0);
    }
    let gated = vec!["TOKEN_THROUGHPUT".to_string()];
    let ctx = CaseContext {
        run_id: "run-1",
        mode: GateMode::Default,
        gated: &gated,
        fingerprint: &fp,
        expect: &[(
            "throughput",
            Expectations {
                num_requests: Some(100),
                ..Expectations::default()
            },
        )],
        roofline: None,
        reruns: 0,
    };
    let records = evaluate(&c, &ctx, &mut |_, _, m| Reference {
        baseline: None,
        history: history(m),
    });
    for r in &records {
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.evidence.len(), 2, "one per repetition: {:?}", r.evidence);
        assert!(r.evidence[0].starts_with("throughput repetition 1: "));
    }
    assert_eq!(FailOn::Regression.failures(&records).len(), 1);

    // A failed case has no verdicts: it failed already.
    let mut failed = case(&[1000.0]);
    failed.reason = Some("not run: the engine build failed".into());
    assert!(run(&failed, GateMode::Default, &fp, |_, _| Reference::default()).is_empty());
    // A repetition that failed is not a value.
    let mut partly = case(&[1000.0, 10.0]);
    partly.measurements[1].state = State::Failed;
    let r = run(&partly, GateMode::Default, &fp, |_, _| Reference::default());
    assert_eq!(by_metric(&r, "TOKEN_THROUGHPUT").reps, vec![1000.0]);
}

#[test]
fn upstream_mode_is_isclose_in_both_directions() {
    let fp = Fingerprint::default();
    let base = |_: &str, _: &str| Reference {
        baseline: Some(BaselineRef {
            stored: stored(1000.0),
            fingerprint: Some("gpu=other".into()),
        }),
        history: history("TOKEN_THROUGHPUT"),
    };
    // |1000 - 905| = 95 <= 10 + 0.1 x 905 = 100.5: close, so PASS (history is ignored).
    let r = run(&case(&[905.0]), GateMode::Upstream, &fp, base);
    let t = by_metric(&r, "TOKEN_THROUGHPUT");
    assert_eq!(t.verdict, Verdict::Pass, "{}", t.explanation);
    assert!(t.gated);
    // A big improvement fails upstream, exactly as numpy.isclose says.
    let r = run(&case(&[1200.0]), GateMode::Upstream, &fp, base);
    assert_eq!(by_metric(&r, "TOKEN_THROUGHPUT").verdict, Verdict::Fail);
    // 1000 vs 890: 110 > 10 + 89 = 99.
    let r = run(&case(&[890.0]), GateMode::Upstream, &fp, base);
    assert_eq!(by_metric(&r, "TOKEN_THROUGHPUT").verdict, Verdict::Fail);
    let r = run(&case(&[890.0]), GateMode::Upstream, &fp, |_, _| {
        Reference::default()
    });
    assert_eq!(by_metric(&r, "TOKEN_THROUGHPUT").verdict, Verdict::New);
}

#[test]
fn verdicts_as_table_markdown_jsonl_and_junit() {
    let fp = Fingerprint::default();
    let hist = |_: &str, m: &str| Reference {
        baseline: None,
        history: history(m),
    };
    let mut records = run(&case(&[950.0, 951.0, 949.0]), GateMode::Default, &fp, hist);
    if let Some(r) = records.iter_mut().find(|r| r.gated) {
        r.explanation.push_str(" | with a pipe");
    }
    let table = verdicts::table(&records);
    assert!(table.contains("TOKEN_THROUGHPUT"), "{table}");
    assert!(table.contains("FAIL"), "{table}");
    assert!(table.contains("* TOKEN_THROUGHPUT"), "gated mark: {table}");
    assert!(table.contains("verdicts: FAIL 2"), "{table}");
    let md = verdicts::markdown("nightly", &records);
    assert!(md.starts_with("## nightly\n\n**FAIL 2**"), "{md}");
    assert!(md.contains("### Needs attention"), "{md}");
    assert!(md.contains("\\|"), "pipes are escaped in cells: {md}");

    let dir = tempfile::tempdir().expect("tmp");
    let mut w = verdicts::VerdictWriter::open(dir.path(), "nightly").expect("open");
    w.write(&records).expect("write");
    w.write(&records[..1]).expect("write");
    let back = verdicts::read(&dir.path().join("gate.jsonl")).expect("read");
    assert_eq!(back.len(), 3);
    assert_eq!(back[0], records[0]);
    let md = std::fs::read_to_string(dir.path().join("perf_report.md")).expect("md");
    assert!(md.contains("FAIL 3"), "{md}");
    std::fs::write(dir.path().join("bad.jsonl"), "{}\n").expect("write");
    let e = verdicts::read(&dir.path().join("bad.jsonl")).expect_err("bad");
    assert!(format!("{e:#}").contains("bad.jsonl:1:"), "{e:#}");

    let props = junit::verdict_properties(&records, &[case(&[1.0])]);
    let get = |k: &str| {
        props
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("TOKEN_THROUGHPUT.verdict").as_deref(), Some("FAIL"));
    assert_eq!(get("TOKEN_THROUGHPUT.gated").as_deref(), Some("true"));
    assert!(get("TOKEN_THROUGHPUT.mde_pct").is_some());
    assert!(get("TOKEN_THROUGHPUT.change_pct").is_some());
}

/// Our baseline keys are upstream's: every row of upstream's real base_perf.csv files is found
/// under the key perfgate computes for its test name, prefix and metric.
#[test]
fn our_keys_join_upstreams_base_perf_csv() {
    let path = std::path::Path::new("tests/fixtures/baselines/base_perf_sample.csv");
    let base = perfgate::gate::baseline::Baselines::read(path).expect("upstream sample");
    assert_eq!(base.len(), 12);
    for row in base.rows() {
        let (prefix, _) = row
            .perf_case_name
            .split_once("/perf/")
            .expect("a prefixed key");
        let Ok(PerfName::Standard(cfg)) = parse(&row.network_name) else {
            panic!("not a standard name: {}", row.network_name);
        };
        let id = CaseId {
            test_id: perfgate::testlist::test_id(Some(prefix), &row.network_name),
            raw: row.network_name.clone(),
            label: cfg.canonical(),
            case: None,
        };
        assert_eq!(id.perf_case_name(&row.metric_type), row.perf_case_name);
        assert_eq!(id.metric_test_name(&row.metric_type), row.test_name);
        assert!(base.get(&id.perf_case_name(&row.metric_type)).is_some());
    }
}

#[test]
fn reruns_only_where_more_repetitions_can_decide() {
    let fp = Fingerprint::default();
    // Three nights of history: UNKNOWN, but the uncertainty is the short history, which a
    // rerun tonight cannot shrink.
    let short = |_: &str, m: &str| Reference {
        baseline: None,
        history: history(m).into_iter().take(3).collect(),
    };
    let r = run(&case(&[950.0]), GateMode::Default, &fp, short);
    let t = by_metric(&r, "TOKEN_THROUGHPUT");
    assert_eq!(
        (t.verdict, t.source.as_str()),
        (Verdict::Unknown, "short-history")
    );
    assert!(!wants_rerun(&r, 0, 2));
    // An unstable history (noise above 8% per night) is reported, not rerun.
    let noisy = |_: &str, m: &str| Reference {
        baseline: None,
        history: history(m)
            .into_iter()
            .enumerate()
            .map(|(i, o)| Observation {
                value: o.value * if i % 2 == 0 { 1.15 } else { 0.87 },
                ..o
            })
            .collect(),
    };
    let r = run(&case(&[1000.0, 1001.0]), GateMode::Default, &fp, noisy);
    let t = by_metric(&r, "TOKEN_THROUGHPUT");
    assert_eq!(t.verdict, Verdict::Unknown, "{}", t.explanation);
    assert!(t.explanation.contains("unstable"), "{}", t.explanation);
    assert!(!wants_rerun(&r, 0, 2));
}
