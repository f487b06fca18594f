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

/// A service step running `argv`, ready when `ready` says so.
fn service(dir: &Path, argv: &[&str], ready: perfgate::plan::Readiness, timeout_s: u64) -> Step {
    Step {
        phase: Phase::Service,
        label: "server",
        service: Some(perfgate::plan::ServiceSpec {
            ready,
            ready_timeout: Duration::from_secs(timeout_s),
            log: dir.join("server.log"),
        }),
        ..step(argv)
    }
}

fn alive(pid: i32) -> bool {
    // A zombie is gone for our purposes: its state in /proc/<pid>/stat is `Z`.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The pid a service wrote to `pidfile` (the service is `sh`, which writes `$$`).
fn pid_in(path: &Path) -> i32 {
    for _ in 0..100 {
        if let Ok(s) = std::fs::read_to_string(path)
            && let Ok(pid) = s.trim().parse()
        {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no pid in {}", path.display())
}

#[test]
fn a_service_is_ready_by_its_log_line_and_its_group_dies_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    // The service and a child of its own, both holding on; ready after a delay.
    let script = format!(
        "sleep 30 & echo $! > {p}.child; echo $$ > {p}; sleep 0.3; echo 'server READY on {{port}}'; wait",
        p = pids.display()
    );
    let s = service(
        dir.path(),
        &["sh", "-c", &script],
        perfgate::plan::Readiness::LogLine {
            pattern: r"READY on \d+".into(),
        },
        10,
    );
    let mut r = runner(dir.path(), quick());
    let mut svc = r
        .start_service(&s, &ServiceContext::default())
        .expect("ready");
    let (leader, child) = (pid_in(&pids), pid_in(&dir.path().join("pids.child")));
    assert!(
        svc.addr
            .as_deref()
            .is_some_and(|a| a.starts_with("127.0.0.1:"))
    );
    svc.check_alive().expect("still running");
    drop(svc);
    assert!(
        !alive(leader) && !alive(child),
        "the service's group outlived it"
    );
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    assert!(log.contains("server READY on "), "{log}");
}

#[test]
fn a_service_ready_by_its_report_file_gives_its_address_to_later_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = dir.path().join("server.addr");
    // trtllm-serve's scheme: bind port 0, write host:port, then answer /health.
    let server = format!(
        r#"
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
with socketserver.TCPServer(("127.0.0.1", 0), H) as s:
    open("{}", "w").write("127.0.0.1:%d\n" % s.server_address[1])
    s.serve_forever()
"#,
        addr.display()
    );
    let s = service(
        dir.path(),
        &["python3", "-c", &server],
        perfgate::plan::Readiness::ReportFile {
            path: addr.clone(),
            health_path: "/health".into(),
        },
        30,
    );
    let mut r = runner(dir.path(), quick());
    let svc = r
        .start_service(&s, &ServiceContext::default())
        .expect("ready");
    let written = std::fs::read_to_string(&addr).expect("addr");
    assert_eq!(svc.addr.as_deref(), Some(written.trim()));
    let mut context = ServiceContext::default();
    context.add("server", svc.addr.as_deref().expect("addr"));
    let client = sh("echo url={server.url} env=$PERFGATE_SERVER_PORT");
    let run = r.run_step(&client, &context).expect("client runs");
    let log = std::fs::read_to_string(dir.path().join("perf.log")).expect("log");
    let port = written.trim().rsplit_once(':').expect("port").1;
    assert!(
        log.contains(&format!("url=http://{} env={port}", written.trim())),
        "{log}"
    );
    assert!(
        run.command
            .contains(&format!("PERFGATE_SERVER_PORT={port}"))
    );
}

#[test]
fn a_service_that_dies_is_reported_with_its_log_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut r = runner(dir.path(), quick());
    // Dies before it is ready.
    let s = service(
        dir.path(),
        &["sh", "-c", "echo 'fatal: no model at /models/x'; exit 3"],
        perfgate::plan::Readiness::LogLine {
            pattern: "READY".into(),
        },
        10,
    );
    let e = r
        .start_service(&s, &ServiceContext::default())
        .expect_err("it died");
    let m = message(e);
    assert!(
        m.contains("exited before it was ready (exit status 3)") && m.contains("no model at"),
        "{m}"
    );
    // Dies while the case runs: the next liveness check says so.
    let s = service(
        dir.path(),
        &[
            "sh",
            "-c",
            "echo READY; sleep 0.3; echo 'killed: out of memory'; exit 9",
        ],
        perfgate::plan::Readiness::LogLine {
            pattern: "READY".into(),
        },
        10,
    );
    let mut svc = r
        .start_service(&s, &ServiceContext::default())
        .expect("ready");
    std::thread::sleep(Duration::from_millis(800));
    let e = svc.check_alive().expect_err("it died");
    let m = e.to_string();
    assert!(
        m.contains("died (exit status 9)") && m.contains("out of memory"),
        "{m}"
    );
}

#[test]
fn a_service_never_ready_or_deaf_to_sigterm_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pid");
    let script = format!(
        "trap '' TERM; echo $$ > {}; echo never ready; while :; do sleep 1; done",
        pids.display()
    );
    let s = service(
        dir.path(),
        &["sh", "-c", &script],
        perfgate::plan::Readiness::LogLine {
            pattern: "READY".into(),
        },
        1,
    );
    let mut r = runner(dir.path(), quick());
    let t = Instant::now();
    let e = r
        .start_service(&s, &ServiceContext::default())
        .expect_err("never ready");
    let m = message(e);
    assert!(
        m.contains("was not ready after 1 s") && m.contains("never ready"),
        "{m}"
    );
    // The ready timeout plus the grace before SIGKILL, not the loop's forever.
    assert!(t.elapsed() < Duration::from_secs(10));
    let pid = pid_in(&pids);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(!alive(pid), "a service deaf to SIGTERM survived: {stat}");
}

#[test]
fn a_service_that_loses_the_port_race_is_started_again_on_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("tried");
    // The first start finds its port taken (another process bound it between the probe and
    // the service's bind); the second gets a fresh port.
    let script = format!(
        "if [ ! -e {m} ]; then touch {m}; echo 'bind: address already in use: {{port}}'; exit 1; fi; echo READY {{port}}; sleep 30",
        m = marker.display()
    );
    let s = service(
        dir.path(),
        &["sh", "-c", &script],
        perfgate::plan::Readiness::LogLine {
            pattern: r"READY \d+".into(),
        },
        10,
    );
    let mut r = runner(dir.path(), quick());
    let svc = r
        .start_service(&s, &ServiceContext::default())
        .expect("ready on the second try");
    let port = svc.addr.clone().expect("addr");
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    assert!(log.contains("address already in use"), "{log}");
    assert!(
        log.contains(&format!("READY {}", port.rsplit_once(':').expect("port").1)),
        "{log}"
    );
}

#[test]
fn commands_sh_gives_the_environment_perfgate_gave() {
    // What commands.sh writes for a path list must expand, in a real shell, to what the
    // runner gave its child, with the variable set, empty and unset.
    for value in [
        "/opt/trtllm/lib:/opt/trtllm/bin:$LD_LIBRARY_PATH",
        "$LD_LIBRARY_PATH:/opt/lib",
        "$LD_LIBRARY_PATH",
        "/a b/it's:$LD_LIBRARY_PATH:/c$d",
        "/plain:/no/vars",
    ] {
        for inherited in [Some("/usr/local/cuda/lib64:/x"), Some(""), None] {
            let lookup = |v: &str| {
                (v == "LD_LIBRARY_PATH")
                    .then(|| inherited.map(str::to_string))
                    .flatten()
            };
            let ours = perfgate::textutil::expand_path_list(value, lookup);
            let word = perfgate::textutil::shell_quote_expanding(value);
            let mut cmd = std::process::Command::new("sh");
            cmd.arg("-c").arg(format!("printf %s {word}"));
            match inherited {
                Some(v) => cmd.env("LD_LIBRARY_PATH", v),
                None => cmd.env_remove("LD_LIBRARY_PATH"),
            };
            let out = cmd.output().expect("sh");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                ours,
                "{value} with {inherited:?} written as {word}"
            );
        }
    }
}

#[test]
fn a_child_that_left_the_group_holding_the_output_is_killed_not_waited_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    runner(dir.path(), quick())
        .run_step(
            &double(dir.path(), "spawn-setsid"),
            &ServiceContext::default(),
        )
        .expect("runs");
    // Not the 10 s perfgate would wait for the pipe to close.
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    let text = std::fs::read_to_string(dir.path().join("perf.log")).expect("log");
    let pid: i32 = text
        .split("Started daemon process (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no daemon pid in the log:\n{text}"));
    assert!(
        gone_within(pid, Duration::from_secs(5)),
        "the daemon {pid} survived"
    );
    assert!(
        text.contains(&format!("killed process {pid}, which left")),
        "{text}"
    );
}
