//! Provisional regressions confirmed, cleared or left pending by change-point detection over a
//! history written through the History API, with blame ranges; `perfgate history changes`.

use std::path::Path;
use std::process::Command;

use perfgate::gate::changes::{self, Status};
use perfgate::gate::cpd::CpdParams;
use perfgate::gate::rng::Rng;
use perfgate::history::{History, MeasurementRow, RunMeta};
use perfgate::record::State;
use perfgate::record::Verdict;
use perfgate::record::VerdictRecord;
use perfgate::record::metric::Direction;

const CASE: &str = "H100/perf/test_perf.py::test_perf_metric_token_throughput[llama-bench-float16]";
const METRIC: &str = "TOKEN_THROUGHPUT";
const FP: &str = "gpu=H100";

fn run_id(night: usize) -> String {
    format!("run-{night:03}")
}

/// A history of `levels.len()` nights: night i has 3 repetitions around `levels[i]` (1% noise)
/// and the verdict `verdicts(i)`; revisions are `rev-<night>`.
fn history(path: &Path, levels: &[f64], verdicts: impl Fn(usize) -> Verdict) {
    let mut h = History::open(path).expect("open");
    let mut rng = Rng::new(42);
    for (i, &level) in levels.iter().enumerate() {
        let id = run_id(i);
        h.begin_run(&RunMeta {
            run_id: id.clone(),
            started: format!("2026-01-{:02}T02:00:00Z", 1 + i % 28),
            host: "node-1".into(),
            test_prefix: Some("H100".into()),
            fingerprint: FP.into(),
            env_json: "{}".into(),
            revision: Some(format!("rev-{i}")),
            branch: Some("main".into()),
            build_url: None,
            imported_from: None,
        })
        .expect("begin");
        let reps: Vec<f64> = (0..3)
            .map(|_| level * (1.0 + 0.01 * rng.normal()))
            .collect();
        let rows: Vec<MeasurementRow> = reps
            .iter()
            .enumerate()
            .map(|(r, &value)| MeasurementRow {
                test_id: "H100/perf/test_perf.py::test_perf[llama-bench-float16]".into(),
                perf_case_name: CASE.into(),
                network_name: "llama-bench-float16".into(),
                case: None,
                step: "throughput".into(),
                metric: METRIC.into(),
                repetition: r as u32 + 1,
                value,
                state: State::Valid,
            })
            .collect();
        h.record_measurements(&id, &rows).expect("measurements");
        h.record_verdicts(&[record(&id, verdicts(i), &reps)])
            .expect("verdicts");
    }
}

fn record(run_id: &str, verdict: Verdict, reps: &[f64]) -> VerdictRecord {
    VerdictRecord {
        run_id: run_id.into(),
        test_id: "H100/perf/test_perf.py::test_perf[llama-bench-float16]".into(),
        perf_case_name: CASE.into(),
        network_name: "llama-bench-float16".into(),
        test_name: "test_perf_metric_token_throughput[llama-bench-float16]".into(),
        case: None,
        step: "throughput".into(),
        metric: METRIC.into(),
        unit: "tokens/s".into(),
        direction: Direction::HigherIsBetter,
        gated: true,
        verdict,
        value: Some(reps.iter().sum::<f64>() / reps.len() as f64),
        reps: reps.to_vec(),
        baseline: Some(2000.0),
        change_pct: None,
        mde_pct: None,
        noise_pct: None,
        source: "history".into(),
        history_nights: 20,
        roofline_pct: None,
        mfu_pct: None,
        mbu_pct: None,
        threshold: None,
        absolute_threshold: None,
        fingerprint: FP.into(),
        reruns: 0,
        explanation: String::new(),
        evidence: vec![],
    }
}

fn assess(path: &Path, night_of_run: usize) -> changes::Assessment {
    let h = History::open_existing(path).expect("open");
    let points = h
        .night_series(CASE, "throughput", METRIC, Some(FP))
        .expect("series");
    let run = h.run(&run_id(night_of_run)).expect("run").expect("stored");
    changes::assess(
        &points,
        run.night,
        Direction::HigherIsBetter,
        &CpdParams::default(),
    )
}

fn changes_json(path: &Path, run: &str, all: bool) -> serde_json::Value {
    let p = path.display().to_string();
    let mut args = vec![
        "history",
        "changes",
        "--history",
        &p,
        "--run",
        run,
        "--format",
        "json",
    ];
    if all {
        args.push("--all");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(&args)
        .output()
        .expect("perfgate runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn a_step_is_confirmed_with_the_blame_range_of_its_night() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.sqlite");
    // 30 nights at 2000, then 8% slower from night 30 on; nights 30..35 failed.
    let levels: Vec<f64> = (0..36)
        .map(|i| if i < 30 { 2000.0 } else { 1840.0 })
        .collect();
    history(&path, &levels, |i| {
        if i >= 30 {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    });

    // Assessing the first bad night, and a later one, gives the same blame range.
    for run in [30, 33] {
        let a = assess(&path, run);
        assert_eq!(a.status, Status::Confirmed, "{a:?}");
        let blame = a.blame.expect("blame range");
        assert_eq!(blame.first_bad.revision.as_deref(), Some("rev-30"));
        let good = blame.last_good.expect("a last good run");
        assert_eq!(good.revision.as_deref(), Some("rev-29"));
        assert_eq!(good.run_id, run_id(29));
        let cp = a.change_point.expect("found by the detector");
        assert!((cp.change_pct + 8.0).abs() < 1.5, "{cp:?}");
    }

    // The command says the same for the latest run, and --all lists the change point.
    let rows = changes_json(&path, "latest", false);
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "CONFIRMED");
    assert_eq!(rows[0]["blame"]["last_good"]["revision"], "rev-29");
    assert_eq!(rows[0]["blame"]["first_bad"]["revision"], "rev-30");
    let all = changes_json(&path, "latest~5", true);
    let all = all.as_array().expect("array");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["status"], "REGRESSION");
    assert_eq!(all[0]["blame"]["first_bad"]["run_id"], run_id(30));

    // Issue 20 item 11: the table's last line counts each status; a confirmed regression is
    // not called provisional.
    let p = path.display().to_string();
    for (run, all, want) in [
        ("latest", false, "1 FAIL verdict(s) assessed: 1 CONFIRMED"),
        ("latest~5", true, "1 change point(s): 1 REGRESSION"),
    ] {
        let mut args = vec!["history", "changes", "--history", &p, "--run", run];
        if all {
            args.push("--all");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_perfgate"))
            .args(&args)
            .output()
            .expect("perfgate runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().last(), Some(want), "{text}");
    }
}

#[test]
fn a_regression_two_nights_old_is_confirmed_on_its_night() {
    // A 10% step on the second-to-last night: the detector finds it (refined onto its night).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.sqlite");
    let levels: Vec<f64> = (0..27)
        .map(|i| if i < 25 { 2000.0 } else { 1800.0 })
        .collect();
    history(&path, &levels, |i| {
        if i >= 25 {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    });
    let a = assess(&path, 25);
    assert_eq!(a.status, Status::Confirmed, "{a:?}");
    let blame = a.blame.expect("blame");
    assert_eq!(blame.first_bad.revision.as_deref(), Some("rev-25"));
    assert_eq!(
        blame.last_good.and_then(|g| g.revision).as_deref(),
        Some("rev-24")
    );

    // A 1% step the detector cannot call from two nights, failed by the gate both nights:
    // confirmed because it persisted.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.sqlite");
    let levels: Vec<f64> = (0..27)
        .map(|i| if i < 25 { 2000.0 } else { 1980.0 })
        .collect();
    history(&path, &levels, |i| {
        if i >= 25 {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    });
    let a = assess(&path, 25);
    assert_eq!(a.status, Status::Confirmed, "{a:?}");
    assert!(a.change_point.is_none(), "{a:?}");
    assert!(a.explanation.contains("persisted 2"), "{}", a.explanation);
    let blame = a.blame.expect("blame");
    assert_eq!(blame.first_bad.revision.as_deref(), Some("rev-25"));
}

#[test]
fn a_one_night_blip_is_cleared() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.sqlite");
    let levels: Vec<f64> = (0..30)
        .map(|i| if i == 25 { 1800.0 } else { 2000.0 })
        .collect();
    history(&path, &levels, |i| {
        if i == 25 {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    });
    let a = assess(&path, 25);
    assert_eq!(a.status, Status::Cleared, "{a:?}");
    assert!(a.blame.is_none());
    let rows = changes_json(&path, &run_id(25), false);
    assert_eq!(rows[0]["status"], "CLEARED");
}

#[test]
fn a_regression_on_the_last_night_is_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.sqlite");
    let levels: Vec<f64> = (0..26)
        .map(|i| if i == 25 { 1800.0 } else { 2000.0 })
        .collect();
    history(&path, &levels, |i| {
        if i == 25 {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    });
    let a = assess(&path, 25);
    assert_eq!(a.status, Status::Pending, "{a:?}");
    assert_eq!(a.nights_after, 0);
    // One good night after it is not yet enough to clear it.
    let levels: Vec<f64> = (0..27)
        .map(|i| if i == 25 { 1800.0 } else { 2000.0 })
        .collect();
    let dir2 = tempfile::tempdir().expect("tempdir");
    let path2 = dir2.path().join("h.sqlite");
    history(&path2, &levels, |i| {
        if i == 25 {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    });
    assert_eq!(assess(&path2, 25).status, Status::Pending);
}

#[test]
fn an_acknowledged_change_starts_the_series_and_unknown_runs_list_the_latest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.sqlite");
    let levels: Vec<f64> = (0..36)
        .map(|i| if i < 30 { 2000.0 } else { 1840.0 })
        .collect();
    history(&path, &levels, |_| Verdict::Pass);
    let mut h = History::open(&path).expect("open");
    h.acknowledge(CASE, METRIC, "new scheduler, slower by design", &run_id(30))
        .expect("acknowledge");
    let points = h
        .night_series(CASE, "throughput", METRIC, Some(FP))
        .expect("series");
    assert_eq!(points.len(), 6);
    assert_eq!(points[0].run_id, run_id(30));
    assert_eq!(points[0].reps, 3);
    assert!(
        h.night_series(CASE, "throughput", METRIC, Some("gpu=B200"))
            .expect("series")
            .is_empty()
    );

    let p = path.display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(["history", "changes", "--history", &p, "--run", "nope"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no run `nope`") && err.contains(&run_id(35)),
        "{err}"
    );
}

/// Through the harness: a slowdown that persists is a PENDING change point in the report on
/// its first night and a CONFIRMED one, with its blame range, on its third.
#[test]
fn the_run_report_carries_the_change_points_of_its_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.sqlite");
    let h = history.to_str().expect("utf-8").to_string();
    let list = "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4\n";
    let mut report = String::new();
    let mut text = String::new();
    for n in 1..=9u32 {
        let night_dir = dir.path().join(format!("night{n}"));
        std::fs::create_dir_all(&night_dir).expect("mkdir");
        let seed = n.to_string();
        let scale = if n >= 7 { "0.8" } else { "1" };
        let (_, t) = super::e2e::run(
            &night_dir,
            list,
            &["--repeat", "2", "--history", &h],
            &[
                ("FAKE_BENCH_NOISE", "0.004"),
                ("FAKE_BENCH_SEED", &seed),
                ("FAKE_BENCH_SCALE", scale),
            ],
        );
        text = t;
        report = std::fs::read_to_string(night_dir.join("out/perf_report.md")).unwrap_or_default();
        if n == 7 {
            assert!(report.contains("### Change points"), "{report}\n{text}");
            assert!(report.contains("| PENDING |"), "{report}");
        }
        if n < 7 {
            assert!(!report.contains("### Change points"), "night {n}: {report}");
        }
    }
    assert!(report.contains("| CONFIRMED |"), "{report}\n{text}");
    // The blame range: the sixth run (last at full speed) and the seventh.
    let runs = History::open_existing(&history)
        .expect("open")
        .runs(9)
        .expect("runs");
    let id = |n: usize| runs[9 - n].meta.run_id.clone();
    let row = report
        .lines()
        .find(|l| l.starts_with("| CONFIRMED |") && l.contains("TOKEN_THROUGHPUT"))
        .unwrap_or_else(|| panic!("{report}"));
    let cells: Vec<&str> = row.split(" | ").collect();
    assert!(cells[5].starts_with(&id(6)), "{row}");
    assert!(cells[6].starts_with(&id(7)), "{row}");
    assert!(
        text.contains("confirmed regression:") && text.contains("-> first bad"),
        "{text}"
    );
}
