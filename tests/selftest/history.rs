//! The history store: round trips, the gate's series and its filters, verdicts replaced on a
//! rerun, damaged and foreign files refused with a way out, two writers at once (threads and
//! processes), and `perfgate gate` / `perfgate history runs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

use perfgate::history::{History, HistoryError, MeasurementRow, RunMeta, SeriesQuery};
use perfgate::record::State;
use perfgate::record::VerdictRecord;
use perfgate::record::metric::Direction;
use perfgate::record::{Observation, Verdict};

const CASE: &str = "H100/perf/test_perf.py::test_perf_metric_token_throughput[llama-bench-float16]";
const METRIC: &str = "TOKEN_THROUGHPUT";

fn meta(run_id: &str, fingerprint: &str) -> RunMeta {
    RunMeta {
        run_id: run_id.into(),
        started: "2025-06-01T02:00:00Z".into(),
        host: "node-7".into(),
        test_prefix: Some("H100".into()),
        fingerprint: fingerprint.into(),
        env_json: r#"{"driver":"575.57"}"#.into(),
        revision: Some(format!("rev-{run_id}")),
        branch: Some("main".into()),
        build_url: None,
        imported_from: None,
    }
}

fn row(perf_case_name: &str, metric: &str, rep: u32, value: f64, state: State) -> MeasurementRow {
    MeasurementRow {
        test_id: "H100/perf/test_perf.py::test_perf[llama-bench-float16]".into(),
        perf_case_name: perf_case_name.into(),
        network_name: "llama-bench-float16".into(),
        case: None,
        step: "throughput".into(),
        metric: metric.into(),
        repetition: rep,
        value,
        state,
    }
}

fn verdict(run_id: &str, perf_case_name: &str, v: Verdict, gated: bool) -> VerdictRecord {
    VerdictRecord {
        run_id: run_id.into(),
        test_id: "H100/perf/test_perf.py::test_perf[llama-bench-float16]".into(),
        perf_case_name: perf_case_name.into(),
        network_name: "llama-bench-float16".into(),
        test_name: "test_perf_metric_token_throughput[llama-bench-float16]".into(),
        case: None,
        step: "throughput".into(),
        metric: METRIC.into(),
        unit: "tok/s".into(),
        direction: Direction::HigherIsBetter,
        gated,
        verdict: v,
        value: Some(1000.0),
        reps: vec![990.0, 1010.0],
        baseline: Some(1100.0),
        change_pct: Some(-9.09),
        mde_pct: Some(2.5),
        noise_pct: Some(0.8),
        source: "history".into(),
        history_nights: 20,
        roofline_pct: None,
        mfu_pct: None,
        mbu_pct: None,
        threshold: Some(-0.1),
        absolute_threshold: Some(50.0),
        fingerprint: "gpu=H100".into(),
        reruns: 0,
        explanation: "throughput fell 9.1%".into(),
        evidence: vec![],
    }
}

/// A history at a fresh path (in a directory that does not exist yet).
fn fresh() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out").join("history.sqlite");
    (dir, path)
}

/// One run with the given values as repetitions of the series, and optionally a verdict.
fn night(h: &mut History, run_id: &str, fp: &str, values: &[f64], v: Option<Verdict>) -> i64 {
    let n = h.begin_run(&meta(run_id, fp)).expect("begin");
    let rows: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, &x)| row(CASE, METRIC, i as u32 + 1, x, State::Valid))
        .collect();
    h.record_measurements(run_id, &rows).expect("measurements");
    if let Some(v) = v {
        h.record_verdicts(&[verdict(run_id, CASE, v, true)])
            .expect("verdicts");
    }
    n
}

fn query<'a>(fingerprint: Option<&'a str>, exclude: &'a str, max: usize) -> SeriesQuery<'a> {
    SeriesQuery {
        perf_case_name: CASE,
        step: "throughput",
        metric: METRIC,
        fingerprint,
        exclude_run: exclude,
        max_nights: max,
    }
}

fn values(obs: &[Observation]) -> Vec<f64> {
    obs.iter().map(|o| o.value).collect()
}

#[test]
fn a_run_round_trips_through_a_reopened_file() {
    let (_dir, path) = fresh();
    let mut h = History::open(&path).expect("open creates the file and its directory");
    let night = h.begin_run(&meta("r1", "gpu=H100")).expect("begin");
    let mut rows = vec![
        row(CASE, METRIC, 1, 1000.5, State::Valid),
        row(CASE, METRIC, 2, 1001.5, State::Valid),
        row(CASE, METRIC, 3, f64::NAN, State::Failed),
        row(CASE, "INFERENCE_TIME", 1, 12.0, State::Invalid),
    ];
    rows[3].case = Some("case_2".into());
    h.record_measurements("r1", &rows).expect("measurements");
    let verdicts = vec![
        verdict("r1", CASE, Verdict::Pass, true),
        verdict("r1", "other", Verdict::Fail, false),
    ];
    h.record_verdicts(&verdicts).expect("verdicts");
    h.finish_run("r1", "2025-06-01T03:00:00Z").expect("finish");
    drop(h);

    let h = History::open(&path).expect("reopen");
    assert_eq!(h.latest_run().expect("latest"), Some("r1".into()));
    let runs = h.runs(10).expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].night, night);
    assert_eq!(runs[0].meta, meta("r1", "gpu=H100"));
    assert_eq!(runs[0].ended.as_deref(), Some("2025-06-01T03:00:00Z"));
    assert_eq!(h.verdicts("r1").expect("verdicts"), verdicts);
    let back = h.measurements("r1").expect("measurements");
    assert_eq!(back.len(), 4);
    assert_eq!(back[0], rows[0]);
    assert_eq!(back[1], rows[1]);
    assert!(back[2].value.is_nan() && back[2].state == State::Failed);
    assert_eq!(back[3], rows[3]);
}

#[test]
fn begin_run_is_idempotent_and_nights_increase() {
    let (_dir, path) = fresh();
    let mut h = History::open(&path).expect("open");
    let a = h.begin_run(&meta("a", "x")).expect("begin a");
    assert_eq!(h.begin_run(&meta("a", "changed")).expect("again"), a);
    let b = h.begin_run(&meta("b", "x")).expect("begin b");
    assert!(b > a, "{b} > {a}");
    let mut other = History::open(&path).expect("a second connection");
    assert_eq!(other.begin_run(&meta("a", "x")).expect("same run"), a);
    let runs = h.runs(10).expect("runs");
    assert_eq!(
        runs.iter()
            .map(|r| r.meta.run_id.as_str())
            .collect::<Vec<_>>(),
        ["b", "a"],
        "most recent first"
    );
    assert_eq!(
        runs[1].meta.fingerprint, "x",
        "the first description is kept"
    );
    assert_eq!(h.runs(1).expect("runs").len(), 1);
}

#[test]
fn the_series_keeps_only_comparable_earlier_nights() {
    let (_dir, path) = fresh();
    let mut h = History::open(&path).expect("open");
    let n1 = night(&mut h, "n1", "A", &[100.0, 101.0], Some(Verdict::Pass));
    let n2 = night(&mut h, "n2", "B", &[200.0], None);
    night(&mut h, "n3", "A", &[300.0], Some(Verdict::Invalid));
    night(&mut h, "n4", "A", &[400.0], Some(Verdict::EnvChanged));
    // Unaccepted levels: a regression and an improvement nobody acknowledged.
    night(&mut h, "n4f", "A", &[410.0], Some(Verdict::Fail));
    night(&mut h, "n4i", "A", &[420.0], Some(Verdict::Improved));
    let n5 = h.begin_run(&meta("n5", "A")).expect("begin");
    h.record_measurements(
        "n5",
        &[
            row(CASE, METRIC, 1, 500.0, State::Valid),
            row(CASE, METRIC, 2, 555.0, State::Failed),
            row(CASE, METRIC, 3, 556.0, State::Invalid),
            // Another metric and another step of the same case are other series.
            row(CASE, "OTHER", 1, 9.0, State::Valid),
            MeasurementRow {
                step: "latency".into(),
                ..row(CASE, METRIC, 1, 8.0, State::Valid)
            },
        ],
    )
    .expect("n5");
    night(&mut h, "n6", "A", &[600.0], None);

    let same_env = h.series(&query(Some("A"), "n6", 10)).expect("series");
    assert_eq!(
        same_env,
        vec![
            Observation {
                night: n1,
                value: 100.0
            },
            Observation {
                night: n1,
                value: 101.0
            },
            Observation {
                night: n5,
                value: 500.0
            },
        ]
    );
    let any_env = h.series(&query(None, "n6", 10)).expect("series");
    assert_eq!(values(&any_env), [100.0, 101.0, 200.0, 500.0]);
    assert_eq!(any_env[2].night, n2);
    // Tonight is excluded by id; another run id brings n6 in.
    assert_eq!(
        values(&h.series(&query(Some("A"), "none", 10)).expect("series")),
        [100.0, 101.0, 500.0, 600.0]
    );

    // A re-baselining from n3 on: only n3 and later count, for every fingerprint.
    h.acknowledge(CASE, METRIC, "new attention kernel (PR 1234)", "n3")
        .expect("acknowledge");
    assert_eq!(
        values(&h.series(&query(None, "n6", 10)).expect("series")),
        [500.0]
    );
    // Another series is not affected.
    let other = SeriesQuery {
        metric: "OTHER",
        ..query(None, "n6", 10)
    };
    assert_eq!(values(&h.series(&other).expect("other")), [9.0]);
    let latency = SeriesQuery {
        step: "latency",
        ..query(None, "n6", 10)
    };
    assert_eq!(values(&h.series(&latency).expect("latency")), [8.0]);
    assert!(
        h.series(&query(None, "n6", 0))
            .expect("no nights")
            .is_empty()
    );
}

/// A FAIL (or IMPROVED) night rejoins the series once the next two verdict nights of the
/// series were PASS or UNKNOWN: it was a blip, and leaving it out would narrow the noise the
/// gate sees. A regression keeps failing and stays out.
#[test]
fn a_blip_rejoins_the_series_after_two_clean_nights_and_a_regression_stays_out() {
    let (_dir, path) = fresh();
    let mut h = History::open(&path).expect("open");
    night(&mut h, "n1", "A", &[100.0], Some(Verdict::Pass));
    night(&mut h, "blip", "A", &[70.0], Some(Verdict::Fail));
    night(&mut h, "n3", "A", &[101.0], Some(Verdict::Pass));
    let series = |h: &History| values(&h.series(&query(None, "tonight", 10)).expect("series"));
    // One clean night after it is not enough.
    assert_eq!(series(&h), [100.0, 101.0]);
    night(&mut h, "n4", "A", &[99.0], Some(Verdict::Unknown));
    assert_eq!(series(&h), [100.0, 70.0, 101.0, 99.0]);

    // A regression: two FAILs in a row are no blips, whatever follows (here a fix).
    night(&mut h, "r1", "A", &[80.0], Some(Verdict::Fail));
    night(&mut h, "r2", "A", &[81.0], Some(Verdict::Fail));
    night(&mut h, "r3", "A", &[100.5], Some(Verdict::Pass));
    assert_eq!(series(&h), [100.0, 70.0, 101.0, 99.0, 100.5]);
    // An improvement is held back the same way, and the blip rule reads only this series'
    // verdicts: another metric's clean nights do not clear it.
    night(&mut h, "i1", "A", &[130.0], Some(Verdict::Improved));
    let n = h.begin_run(&meta("i2", "A")).expect("begin");
    assert!(n > 0);
    h.record_measurements("i2", &[row(CASE, "OTHER", 1, 1.0, State::Valid)])
        .expect("i2");
    h.record_verdicts(&[VerdictRecord {
        metric: "OTHER".into(),
        ..verdict("i2", CASE, Verdict::Pass, true)
    }])
    .expect("verdicts");
    assert_eq!(series(&h), [100.0, 70.0, 101.0, 99.0, 100.5]);
}

#[test]
fn the_series_keeps_the_most_recent_nights_with_all_their_repetitions() {
    let (_dir, path) = fresh();
    let mut h = History::open(&path).expect("open");
    for i in 0..10 {
        let base = f64::from(i) * 10.0;
        night(
            &mut h,
            &format!("r{i}"),
            "A",
            &[base + 1.0, base + 2.0],
            None,
        );
    }
    let s = h.series(&query(Some("A"), "r9", 3)).expect("series");
    assert_eq!(values(&s), [61.0, 62.0, 71.0, 72.0, 81.0, 82.0]);
    assert!(s.windows(2).all(|w| w[0].night <= w[1].night), "{s:?}");
}

#[test]
fn a_rerun_replaces_the_verdict_of_the_same_case_and_metric() {
    let (_dir, path) = fresh();
    let mut h = History::open(&path).expect("open");
    h.begin_run(&meta("r", "A")).expect("begin");
    h.record_verdicts(&[
        verdict("r", CASE, Verdict::Unknown, true),
        verdict("r", "second", Verdict::Pass, true),
    ])
    .expect("first");
    let mut again = verdict("r", CASE, Verdict::Fail, true);
    again.reruns = 1;
    h.record_verdicts(std::slice::from_ref(&again))
        .expect("rerun");
    let stored = h.verdicts("r").expect("verdicts");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0], again, "replaced in place");
    assert_eq!(stored[1].perf_case_name, "second");
}

#[test]
fn a_run_must_begin_before_anything_refers_to_it() {
    let (_dir, path) = fresh();
    let mut h = History::open(&path).expect("open");
    let path_text = path.display().to_string();
    for e in [
        h.record_measurements("ghost", &[row(CASE, METRIC, 1, 1.0, State::Valid)])
            .expect_err("unknown run"),
        h.record_verdicts(&[verdict("ghost", CASE, Verdict::Pass, true)])
            .expect_err("unknown run"),
        h.finish_run("ghost", "2025-06-01T03:00:00Z")
            .expect_err("unknown run"),
        h.verdicts("ghost").expect_err("unknown run"),
        h.acknowledge(CASE, METRIC, "why", "ghost")
            .expect_err("unknown run"),
    ] {
        assert!(matches!(e, HistoryError::UnknownRun { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&path_text) && msg.contains("`ghost`"), "{msg}");
    }
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let (_dir, path) = fresh();
    let mut h = History::open(&path).expect("open");
    let e = h
        .begin_run(&RunMeta {
            started: "yesterday".into(),
            ..meta("r", "A")
        })
        .expect_err("not RFC 3339");
    assert!(e.to_string().contains("RFC 3339"), "{e}");
    h.begin_run(&meta("r", "A")).expect("begin");
    let e = h
        .record_measurements("r", &[row(CASE, METRIC, 1, f64::NAN, State::Valid)])
        .expect_err("a valid NaN");
    assert!(e.to_string().contains("finite"), "{e}");
    let e = h
        .acknowledge(CASE, METRIC, "  ", "r")
        .expect_err("no reason");
    assert!(e.to_string().contains("needs a reason"), "{e}");
    // Nothing of a refused batch landed.
    assert!(h.measurements("r").expect("measurements").is_empty());
}

fn assert_corrupt(path: &Path) {
    let e = History::open(path).expect_err("a damaged file is refused");
    assert!(matches!(e, HistoryError::Corrupt { .. }), "{e:?}");
    let msg = e.to_string();
    let p = path.display().to_string();
    assert!(msg.starts_with(&p), "names the file: {msg}");
    assert!(
        msg.contains(&format!("mv {p} {p}.corrupt-"))
            && msg.contains("perfgate starts a new history")
            && msg.contains("restore it from a backup"),
        "says how to recover: {msg}"
    );
    // The reader's door gives the same answer.
    let e = History::open_existing(path).expect_err("refused");
    assert!(matches!(e, HistoryError::Corrupt { .. }), "{e:?}");
}

#[test]
fn garbage_bytes_are_a_corrupt_history_with_a_recovery_hint() {
    let (dir, _) = fresh();
    let path = dir.path().join("history.sqlite");
    let garbage: Vec<u8> = (0..16_384u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, garbage).expect("write");
    assert_corrupt(&path);
}

#[test]
fn a_truncated_history_is_corrupt() {
    let (_dir, path) = fresh();
    {
        let mut h = History::open(&path).expect("open");
        for i in 0..40 {
            let run = format!("r{i}");
            h.begin_run(&meta(&run, "A")).expect("begin");
            let rows: Vec<_> = (0..50)
                .map(|c| {
                    row(
                        &format!("{CASE}-{c}"),
                        METRIC,
                        1,
                        f64::from(i * c),
                        State::Valid,
                    )
                })
                .collect();
            h.record_measurements(&run, &rows).expect("rows");
        }
    } // The last connection closing checkpoints the WAL into the file.
    let len = std::fs::metadata(&path).expect("size").len();
    assert!(
        len > 64 * 1024,
        "{len} bytes: too small to truncate usefully"
    );
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open for truncation");
    file.set_len(len / 2).expect("truncate");
    drop(file);
    assert_corrupt(&path);
}

#[test]
fn a_history_from_a_newer_perfgate_says_which_wrote_it() {
    let (_dir, path) = fresh();
    drop(History::open(&path).expect("create"));
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    conn.execute_batch(
        "PRAGMA user_version = 99; UPDATE meta SET value = 'perfgate 9.9.9' WHERE key = 'written_by';",
    )
    .expect("pretend a newer perfgate wrote it");
    drop(conn);
    let e = History::open(&path).expect_err("a newer schema is refused");
    assert!(
        matches!(e, HistoryError::NewerSchema { found: 99, .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string())
            && msg.contains("schema version 99")
            && msg.contains("perfgate 9.9.9"),
        "{msg}"
    );
}

#[test]
fn another_programs_database_is_not_taken_over() {
    let (dir, _) = fresh();
    // One without a schema version, and one with its own (many programs use user_version).
    for (name, setup) in [
        ("app.db", "CREATE TABLE notes (body TEXT);"),
        (
            "versioned.db",
            "CREATE TABLE notes (body TEXT); PRAGMA user_version = 1;",
        ),
    ] {
        let path = dir.path().join(name);
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(setup).expect("another program's data");
        drop(conn);
        let e = History::open(&path).expect_err("not a history");
        assert!(
            matches!(e, HistoryError::NotAHistory { .. }),
            "{name}: {e:?}"
        );
        assert!(e.to_string().contains(name), "{e}");
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .expect("count");
        assert_eq!(tables, 1, "{name}: nothing was added to it");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal mode");
        assert_eq!(mode, "delete", "{name}: its journal mode was left alone");
    }
}

#[test]
fn a_reader_does_not_create_a_missing_history() {
    let (_dir, path) = fresh();
    let e = History::open_existing(&path).expect_err("missing");
    assert!(matches!(e, HistoryError::Missing { .. }), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert!(!path.exists());
}

/// Runs per writer in the two-writer tests.
const RUNS: usize = 40;

/// Writes `runs` complete runs (begin, 40 measurements, a verdict, finish) as `writer`.
fn write_runs(path: &Path, writer: &str, runs: usize) {
    let mut h = History::open(path).expect("open");
    for i in 0..runs {
        let run = format!("{writer}-{i}");
        h.begin_run(&meta(&run, writer)).expect("begin");
        let rows: Vec<_> = (0..40)
            .map(|c| row(&format!("{CASE}-{c}"), METRIC, 1, 1.0, State::Valid))
            .collect();
        h.record_measurements(&run, &rows).expect("measurements");
        h.record_verdicts(&[verdict(&run, CASE, Verdict::Pass, true)])
            .expect("verdicts");
        h.finish_run(&run, "2025-06-01T03:00:00Z").expect("finish");
        // A pause between runs, as between cases: without it one writer finishes everything
        // while the other sleeps in its busy handler, and the writes never interleave.
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
}

fn assert_all_landed(path: &Path, writers: &[&str], runs: usize) {
    let h = History::open(path).expect("open");
    let stored = h.runs(usize::MAX).expect("runs");
    assert_eq!(stored.len(), writers.len() * runs);
    // The writers really wrote at the same time: their runs interleave, not one after the other.
    let order: Vec<&str> = stored
        .iter()
        .map(|r| r.meta.run_id.split('-').next().unwrap_or(""))
        .collect();
    let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches >= 2, "the writers did not overlap: {order:?}");
    let mut nights: Vec<i64> = stored.iter().map(|r| r.night).collect();
    nights.sort_unstable();
    nights.dedup();
    assert_eq!(
        nights.len(),
        stored.len(),
        "every run has a night of its own"
    );
    for w in writers {
        for i in 0..runs {
            let run = format!("{w}-{i}");
            assert_eq!(h.measurements(&run).expect("rows").len(), 40, "{run}");
            assert_eq!(h.verdicts(&run).expect("verdicts").len(), 1, "{run}");
        }
    }
}

#[test]
fn two_connections_write_at_once() {
    let (_dir, path) = fresh();
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|w| {
            let (path, start) = (path.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                write_runs(&path, w, RUNS);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a writer failed");
    }
    assert_all_landed(&path, &["a", "b"], RUNS);
}

#[test]
fn a_writer_waits_for_a_lock_held_by_another_instead_of_failing() {
    let (_dir, path) = fresh();
    let mut h = History::open(&path).expect("open");
    let holder = rusqlite::Connection::open(&path).expect("raw open");
    holder
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(400));
        holder.execute_batch("COMMIT").expect("release");
    });
    let t0 = std::time::Instant::now();
    h.begin_run(&meta("waited", "A"))
        .expect("waits for the lock, then writes");
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    release.join().expect("holder");
}

/// Set in a child process started by [`two_processes_write_at_once`].
const CHILD_PATH: &str = "PERFGATE_SELFTEST_HISTORY_WRITER";
const CHILD_NAME: &str = "PERFGATE_SELFTEST_HISTORY_WRITER_NAME";

/// Not a test on its own: the body of the writer processes of
/// [`two_processes_write_at_once`], which runs this test binary again with only this test.
#[test]
fn history_writer_process() {
    let (Some(path), Some(name)) = (std::env::var_os(CHILD_PATH), std::env::var(CHILD_NAME).ok())
    else {
        return;
    };
    write_runs(Path::new(&path), &name, RUNS);
}

#[test]
fn two_processes_write_at_once() {
    let (_dir, path) = fresh();
    // Create the file first, so both children race on writes rather than on creation too.
    drop(History::open(&path).expect("create"));
    let exe = std::env::current_exe().expect("the test binary");
    // Both are started before either is waited for, so their writes overlap.
    let children: Vec<_> = ["p", "q"]
        .into_iter()
        .map(|w| {
            let child = Command::new(&exe)
                .args(["--exact", "history::history_writer_process", "--quiet"])
                .env(CHILD_PATH, &path)
                .env(CHILD_NAME, w)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn a writer");
            (w, child)
        })
        .collect();
    let children: Vec<_> = children
        .into_iter()
        .map(|(w, c)| (w, c.wait_with_output().expect("wait")))
        .collect();
    for (w, out) in &children {
        assert!(
            out.status.success(),
            "writer {w}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_all_landed(&path, &["p", "q"], RUNS);
}

/// Set in a child process started by [`processes_create_one_new_history_at_once`].
const CREATOR_PATH: &str = "PERFGATE_SELFTEST_HISTORY_CREATOR";

/// Not a test on its own: the body of the processes of
/// [`processes_create_one_new_history_at_once`]: open (creating) and store one run.
#[test]
fn history_creator_process() {
    let Some(path) = std::env::var_os(CREATOR_PATH) else {
        return;
    };
    let run = format!("creator-{}", std::process::id());
    let mut h = History::open(Path::new(&path)).expect("open");
    h.begin_run(&meta(&run, "A")).expect("begin");
    h.finish_run(&run, "2025-06-01T03:00:00Z").expect("finish");
}

/// Issue 20 item 3: processes that create the same new file at once all succeed. Before the
/// fix, about 1 in 60 failed: one read the header before another's schema landed and the table
/// count after ("not a perfgate history (it has 8 table(s)…)"), or the switch to WAL mode,
/// which SQLite does without its busy handler, failed at once ("held the lock for over 60 s").
#[test]
fn processes_create_one_new_history_at_once() {
    const ROUNDS: usize = 40;
    const CREATORS: usize = 8;
    let exe = std::env::current_exe().expect("the test binary");
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..ROUNDS {
        let path = dir.path().join(format!("new-{round}.sqlite"));
        let children: Vec<_> = (0..CREATORS)
            .map(|_| {
                Command::new(&exe)
                    .args(["--exact", "history::history_creator_process", "--quiet"])
                    .env(CREATOR_PATH, &path)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn a creator")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("wait");
            assert!(
                out.status.success(),
                "round {round}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let h = History::open_existing(&path).expect("reopen");
        assert_eq!(
            h.runs(usize::MAX).expect("runs").len(),
            CREATORS,
            "round {round}"
        );
    }
}

#[test]
fn the_series_query_is_fast_on_a_large_history() {
    // 100 nights × 200 case-metrics × 5 repetitions = 100,000 measurements.
    let (_dir, path) = fresh();
    let mut h = History::open(&path).expect("open");
    for n in 0..100 {
        let run = format!("r{n}");
        h.begin_run(&meta(&run, "A")).expect("begin");
        let rows: Vec<_> = (0..200)
            .flat_map(|c| {
                (1..=5).map(move |rep| {
                    row(
                        &format!("{CASE}-{c}"),
                        METRIC,
                        rep,
                        1000.0 + f64::from(rep),
                        State::Valid,
                    )
                })
            })
            .collect();
        h.record_measurements(&run, &rows).expect("rows");
    }
    drop(h);
    let t0 = std::time::Instant::now();
    let h = History::open(&path).expect("reopen (with its quick_check)");
    let open = t0.elapsed();
    let t0 = std::time::Instant::now();
    let case = format!("{CASE}-17");
    for _ in 0..50 {
        let s = h
            .series(&SeriesQuery {
                perf_case_name: &case,
                ..query(Some("A"), "r99", 30)
            })
            .expect("series");
        assert_eq!(s.len(), 30 * 5);
    }
    let per_query = t0.elapsed() / 50;
    eprintln!("100k measurements: open {open:?}, series {per_query:?} per query");
    // Generous bounds for a debug build on a busy machine; a full scan would be ~100x slower.
    assert!(per_query.as_millis() < 50, "{per_query:?} per series query");
    assert!(open.as_secs() < 5, "open took {open:?}");
}

fn perfgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(args)
        .env_remove("PERF_HISTORY")
        .env_remove("PERF_OUTPUT_DIR")
        .output()
        .expect("perfgate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn perfgate_gate_prints_a_runs_verdicts_and_fails_on_a_gated_fail() {
    let (_dir, path) = fresh();
    let mut h = History::open(&path).expect("open");
    h.begin_run(&meta("old", "A")).expect("begin");
    h.record_verdicts(&[verdict("old", CASE, Verdict::Pass, true)])
        .expect("old");
    h.begin_run(&meta("new", "A")).expect("begin");
    let stored = vec![
        verdict(
            "new",
            "H100/x::test_perf_metric_a[pass]",
            Verdict::Pass,
            true,
        ),
        verdict(
            "new",
            "H100/x::test_perf_metric_b[fail]",
            Verdict::Fail,
            true,
        ),
        verdict(
            "new",
            "H100/x::test_perf_metric_c[info]",
            Verdict::Fail,
            false,
        ),
    ];
    h.record_verdicts(&stored).expect("new");
    drop(h);
    let p = path.to_str().expect("utf-8 path");

    let (code, out, err) = perfgate(&["gate", "--history", p, "--format", "json"]);
    assert_eq!(code, 1, "a gated FAIL in the latest run: {out}{err}");
    let parsed: Vec<VerdictRecord> = serde_json::from_str(&out).expect("a JSON array of records");
    assert_eq!(parsed, stored);

    let (code, out, _) = perfgate(&["gate", "--history", p, "--run", "old", "--format", "json"]);
    assert_eq!(code, 0);
    let parsed: Vec<VerdictRecord> = serde_json::from_str(&out).expect("json");
    assert_eq!(parsed.len(), 1);

    // An ungated FAIL alone does not fail the command.
    let (code, out, _) = perfgate(&["gate", "--history", p, "--only", r"\[(pass|info)\]"]);
    assert_eq!(code, 0, "{out}");
    // Issue 20 item 11: `*` marks a gated metric here too, as in the run summary and the
    // dashboard (it used to mark the ungated ones).
    let fail_row = out
        .lines()
        .find(|l| l.contains("FAIL"))
        .expect("the FAIL row");
    assert!(fail_row.starts_with("   FAIL"), "ungated, unmarked: {out}");
    let pass_row = out
        .lines()
        .find(|l| l.contains("PASS"))
        .expect("the PASS row");
    assert!(pass_row.starts_with("*  PASS"), "gated, marked: {out}");
    assert!(
        out.contains("* = gated; the others are reported only"),
        "{out}"
    );

    let (code, out, _) = perfgate(&["gate", "--history", p]);
    assert_eq!(code, 1, "{out}");
    for needle in [
        "run new (night 2",
        "VERDICT",
        "Δ%",
        "MDE%",
        "1000.00 tok/s",
        "-9.09",
        "3 verdict(s) (1 PASS, 2 FAIL); 1 gated FAIL",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in:\n{out}");
    }

    let (code, _, err) = perfgate(&["gate", "--history", p, "--run", "nosuch"]);
    assert_eq!(code, 2);
    assert!(err.contains("no run `nosuch`") && err.contains(p), "{err}");

    let missing = path.with_file_name("absent.sqlite");
    let (code, _, err) = perfgate(&["gate", "--history", missing.to_str().expect("utf-8")]);
    assert_eq!(code, 2);
    assert!(err.contains("no history there"), "{err}");
    assert!(!missing.exists(), "a reader creates nothing");

    // The default location is inside the output directory.
    let out_dir = path.parent().expect("dir").to_str().expect("utf-8");
    let (code, out, _) = perfgate(&["gate", "--output-dir", out_dir, "--run", "old"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn perfgate_history_runs_lists_runs_most_recent_first() {
    let (_dir, path) = fresh();
    let mut h = History::open(&path).expect("open");
    for r in ["first", "second", "third"] {
        h.begin_run(&meta(r, "A")).expect("begin");
    }
    h.finish_run("second", "2025-06-01T04:00:00Z")
        .expect("finish");
    drop(h);
    let p = path.to_str().expect("utf-8 path");
    let (code, out, err) = perfgate(&["history", "runs", "--history", p, "--limit", "2"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("RUN") && lines[0].contains("NIGHT"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("third ") && lines[1].contains(" 3 "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("second") && lines[2].contains("2025-06-01T04:00:00Z"),
        "{out}"
    );
    assert!(
        lines[1].contains("node-7") && lines[1].contains("H100"),
        "{out}"
    );
}

/// A history written by schema version 1 (before runs carried their revision) is migrated in
/// place: its runs survive, new runs store their revision, and the verdicts' by-series index
/// becomes V4's covering one. The version 1 file is made by taking V2's to V5's changes off a
/// new history, which leaves exactly what version 1 wrote.
#[test]
fn a_version_1_history_is_migrated() {
    let (_dir, path) = fresh();
    History::open(&path).expect("create");
    {
        let c = rusqlite::Connection::open(&path).expect("raw open");
        c.execute_batch(
            "DROP TABLE case_records;
             DROP TABLE case_durations;
             ALTER TABLE runs DROP COLUMN revision;
             ALTER TABLE runs DROP COLUMN branch;
             ALTER TABLE runs DROP COLUMN build_url;
             ALTER TABLE runs DROP COLUMN imported_from;
             DROP INDEX verdicts_by_series;
             CREATE INDEX verdicts_by_series ON verdicts(perf_case_name, metric, step, night);
             INSERT INTO runs (run_id, started, host, test_prefix, fingerprint, env_json)
                 VALUES ('old', '2025-01-01T00:00:00Z', 'n1', 'H100', 'A', '{}');
             PRAGMA user_version = 1;",
        )
        .expect("a version 1 file");
    }
    let mut h = History::open(&path).expect("migrated");
    let old = h.run("old").expect("read").expect("kept");
    assert_eq!(old.meta.revision, None);
    assert_eq!(old.meta.host, "n1");
    h.begin_run(&meta("new", "A")).expect("begin");
    let new = h.run("new").expect("read").expect("stored");
    assert_eq!(new.meta.revision.as_deref(), Some("rev-new"));
    assert_eq!(new.meta.branch.as_deref(), Some("main"));
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, 5);
    let columns: Vec<String> = raw
        .prepare("SELECT name FROM pragma_index_info('verdicts_by_series') ORDER BY seqno")
        .expect("index info")
        .query_map([], |r| r.get(0))
        .expect("index info")
        .collect::<Result<_, _>>()
        .expect("index info");
    assert_eq!(
        columns,
        [
            "perf_case_name",
            "metric",
            "step",
            "night",
            "verdict",
            "gated",
            "value",
            "baseline",
            "change_pct",
            "mde_pct"
        ]
    );
}
