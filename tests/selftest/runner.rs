//! The process runner on its own: output capture, exit codes and signals, time limits, stall
//! detection (plain and after a fatal line), and that nothing of a step's process group
//! survives it.

use std::path::Path;
use std::time::{Duration, Instant};

use perfgate::plan::{Phase, Step};
use perfgate::runner::{Limits, Runner, ServiceContext, StepError};

fn step(argv: &[&str]) -> Step {
    Step {
        phase: Phase::Measure,
        label: "throughput",
        backend: "trtllm-bench",
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("PERFGATE_TEST_VAR".into(), "from-plan".into())],
        dataset: None,
        outputs: vec![],
        files: vec![],
        stdout_to: None,
        required: vec![],
        service: None,
        expect: None,
        title: None,
    }
}

fn sh(script: &str) -> Step {
    step(&["sh", "-c", script])
}

fn runner(dir: &Path, limits: Limits) -> Runner {
    Runner::open(&dir.join("perf.log"), false, limits, dir).expect("log opens")
}

fn quick() -> Limits {
    Limits {
        grace: Duration::from_millis(500),
        ..Limits::default()
    }
}

fn message(e: StepError) -> String {
    format!("{e}")
}

#[test]
fn output_goes_to_the_log_and_its_range_is_known() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut r = runner(dir.path(), quick());
    let first = r
        .run_step(
            &sh("echo out; echo err >&2; echo $PERFGATE_TEST_VAR"),
            &ServiceContext::default(),
        )
        .expect("runs");
    let second = r
        .run_step(&sh("echo second"), &ServiceContext::default())
        .expect("runs");
    let log = std::fs::read(dir.path().join("perf.log")).expect("log");
    let slice = |r: &std::ops::Range<u64>| {
        String::from_utf8_lossy(&log[r.start as usize..r.end as usize]).into_owned()
    };
    assert_eq!(slice(&first.log_range), "out\nerr\nfrom-plan\n");
    assert_eq!(slice(&second.log_range), "second\n");
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("sh -c 'echo second'"), "{text}");
}

#[test]
fn a_missing_benchmark_says_how_to_fix_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = runner(dir.path(), quick())
        .run_step(
            &step(&["no-such-trtllm-bench", "throughput"]),
            &ServiceContext::default(),
        )
        .expect_err("fails");
    let msg = message(err);
    assert!(
        msg.contains("`no-such-trtllm-bench` not found") && msg.contains("--bench-cmd"),
        "{msg}"
    );
}

#[test]
fn an_exit_status_is_reported_with_the_log_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = runner(dir.path(), quick())
        .run_step(
            &sh("echo '[TensorRT-LLM][ERROR] simulated failure' >&2; exit 3"),
            &ServiceContext::default(),
        )
        .expect_err("fails");
    let msg = message(err);
    assert!(
        msg.contains("exited with status 3")
            && msg.contains("after a fatal line (`[TensorRT-LLM][ERROR] simulated failure`)")
            && msg.contains("  | [TensorRT-LLM][ERROR] simulated failure"),
        "{msg}"
    );
}

#[test]
fn a_signal_is_reported_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = runner(dir.path(), quick())
        .run_step(
            &sh("echo 'Segmentation fault (core dumped)'; kill -SEGV $$"),
            &ServiceContext::default(),
        )
        .expect_err("fails");
    let msg = message(err);
    assert!(msg.contains("killed by signal 11 (SIGSEGV)"), "{msg}");
}

#[test]
fn the_time_limit_stops_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("grandchild-survived");
    // A child that starts a grandchild, both sleeping; the grandchild would leave a file.
    let script = format!("(sleep 3; touch {}) & sleep 30", marker.display());
    let limits = Limits {
        deadline: Some((
            Instant::now() + Duration::from_secs(1),
            Duration::from_secs(60),
        )),
        ..quick()
    };
    let t0 = Instant::now();
    let err = runner(dir.path(), limits)
        .run_step(&sh(&script), &ServiceContext::default())
        .expect_err("times out");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let msg = message(err);
    assert!(msg.contains("time limit of 1 min reached"), "{msg}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!marker.exists(), "the grandchild outlived the time limit");
}

#[test]
fn a_silent_process_is_taken_as_hung() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits {
        stall: Duration::from_secs(1),
        ..quick()
    };
    let t0 = Instant::now();
    let err = runner(dir.path(), limits)
        .run_step(&sh("echo starting; sleep 30"), &ServiceContext::default())
        .expect_err("stalls");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let msg = message(err);
    assert!(
        msg.contains("printed nothing for 1 s") && msg.contains("| starting"),
        "{msg}"
    );
}

#[test]
fn after_a_fatal_line_the_stall_limit_is_much_shorter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits {
        stall: Duration::from_secs(600),
        fatal_stall: Duration::from_secs(1),
        ..quick()
    };
    let t0 = Instant::now();
    let err = runner(dir.path(), limits)
        .run_step(
            &sh("echo 'Fatal Python error: Aborted'; sleep 30"),
            &ServiceContext::default(),
        )
        .expect_err("stalls");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let msg = message(err);
    assert!(
        msg.contains("after a fatal line (`Fatal Python error: Aborted`)"),
        "{msg}"
    );
}

#[test]
fn what_a_finished_step_leaves_behind_in_its_group_is_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("leftover-survived");
    let script = format!("(sleep 2; touch {}) & echo done", marker.display());
    let t0 = Instant::now();
    runner(dir.path(), quick())
        .run_step(&sh(&script), &ServiceContext::default())
        .expect("the leader exits 0");
    assert!(t0.elapsed() < Duration::from_secs(2), "did not wait for it");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!marker.exists(), "a worker outlived its benchmark");
}

#[test]
fn output_without_newlines_is_captured_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = runner(dir.path(), quick())
        .run_step(
            &sh("head -c 3000000 /dev/zero | tr '\\0' x"),
            &ServiceContext::default(),
        )
        .expect("runs");
    assert_eq!(run.log_range.end - run.log_range.start, 3_000_000);
}

/// A throughput command for the trtllm-bench double, with a two-request dataset in `dir`.
fn double(dir: &Path, mode: &str) -> Step {
    let data = dir.join("data.jsonl");
    std::fs::write(
        &data,
        "{\"task_id\":0,\"input_ids\":[1,2,3],\"output_tokens\":4}\n{\"task_id\":1,\"input_ids\":[4,5],\"output_tokens\":4}\n",
    )
    .expect("write dataset");
    let mut s = step(&[
        env!("CARGO_BIN_EXE_fake-trtllm-bench"),
        "--model=m",
        "throughput",
        &format!("--dataset={}", data.display()),
    ]);
    s.env.push(("FAKE_BENCH_MODE".into(), mode.into()));
    s
}

#[test]
fn the_time_limit_stops_a_hung_benchmark_and_its_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits {
        deadline: Some((
            Instant::now() + Duration::from_secs(2),
            Duration::from_secs(2),
        )),
        ..quick()
    };
    let err = runner(dir.path(), limits)
        .run_step(
            &double(dir.path(), "spawn-child,hang"),
            &ServiceContext::default(),
        )
        .expect_err("times out");
    let msg = message(err);
    assert!(
        msg.contains("time limit of 2 s") && msg.contains("[TRT-LLM] [I] Starting benchmark..."),
        "{msg}"
    );
    let text = std::fs::read_to_string(dir.path().join("perf.log")).expect("log");
    let pid: i32 = text
        .split("Started worker process (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no worker pid in the log:\n{text}"));
    assert!(
        gone_within(pid, Duration::from_secs(10)),
        "the worker {pid} outlived the time limit"
    );
}

/// Whether process `pid` is gone (killed and reaped by init, or at worst a zombie waiting to
/// be) within `limit`.
pub fn gone_within(pid: i32, limit: Duration) -> bool {
    let gone = || {
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
    let deadline = Instant::now() + limit;
    while !gone() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    gone()
}

#[test]
fn a_crashing_benchmark_is_reported_with_its_signal_and_fatal_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = runner(dir.path(), quick())
        .run_step(&double(dir.path(), "crash"), &ServiceContext::default())
        .expect_err("crashes");
    let msg = message(err);
    assert!(
        msg.contains("SIGSEGV") && msg.contains("Segmentation fault"),
        "{msg}"
    );
}
