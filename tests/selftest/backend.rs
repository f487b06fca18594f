//! The backend seam: a second backend, written here and registered only by this test, runs
//! through the same pipeline as trtllm-bench (collected, planned, run with a service kept alive
//! around its measure step, read into metrics, gated, written to every sink and the history),
//! and the service is gone afterwards.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use perfgate::backend::{Backend, PlanRequest, Reading, Registry, StepOutput};
use perfgate::cli::args::HarnessArgs;
use perfgate::config::{CaseSpec, PerfName};
use perfgate::plan::{CasePlan, Phase, Readiness, ServiceSpec, Step, TestPlan};

/// A web server (the service) serving a directory, and a probe (the measure step) that asks it
/// for `value.txt` a few times and prints `TOKEN_THROUGHPUT=<what it served>` and
/// `P50_LATENCY=<median round trip, ms>`: the measured value travels through the service.
struct ProbeBackend {
    /// The directory the server serves.
    root: std::path::PathBuf,
}

const PROBE: &str = r#"
import sys, time, urllib.request
url = sys.argv[1]
times, body = [], None
for _ in range(5):
    t = time.perf_counter()
    body = urllib.request.urlopen(url, timeout=5).read().decode().strip()
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print("probe answered", body)
print(f"TOKEN_THROUGHPUT={float(body)}")
print(f"P50_LATENCY={times[len(times) // 2]:.3f}")
"#;

impl Backend for ProbeBackend {
    fn id(&self) -> &'static str {
        "probe"
    }

    fn accepts(&self, name: &PerfName) -> bool {
        matches!(name, PerfName::Standard(c) if c.model == "probe_server")
    }

    fn plan(&self, r: &PlanRequest) -> TestPlan {
        let mut tp = TestPlan::empty(r.raw, r.name.canonical(), r.dir.clone());
        let server = Step {
            phase: Phase::Service,
            label: "server",
            backend: "probe",
            argv: vec![
                "python3".into(),
                "-m".into(),
                "http.server".into(),
                "{port}".into(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--directory".into(),
                self.root.display().to_string(),
            ],
            env: vec![],
            dataset: None,
            outputs: vec![],
            files: vec![],
            stdout_to: None,
            required: vec![],
            service: Some(ServiceSpec {
                ready: Readiness::Http {
                    url: "http://127.0.0.1:{port}/value.txt".into(),
                },
                ready_timeout: Duration::from_secs(30),
                log: r.dir.join("server.log"),
            }),
            expect: None,
            title: None,
        };
        let probe = Step {
            phase: Phase::Measure,
            label: "probe",
            backend: "probe",
            argv: vec![
                "python3".into(),
                "-c".into(),
                PROBE.into(),
                "{server.url}/value.txt".into(),
            ],
            env: vec![],
            dataset: None,
            outputs: vec![],
            files: vec![],
            stdout_to: None,
            required: vec!["TOKEN_THROUGHPUT", "P50_LATENCY"],
            service: None,
            expect: None,
            title: None,
        };
        let spec = r.name.cases().into_iter().next().unwrap_or(CaseSpec {
            batch_size: None,
            input_len: 0,
            output_len: None,
            concurrency: None,
            label: r.name.canonical(),
        });
        tp.cases.push(CasePlan {
            spec,
            dir: r.dir.clone(),
            steps: vec![server, probe],
            metrics: vec!["TOKEN_THROUGHPUT", "P50_LATENCY"],
            roofline: None,
            group: None,
            gated: Vec::new(),
            upstream_record: None,
        });
        tp
    }

    fn read(&self, _step: &Step, output: &StepOutput) -> anyhow::Result<Reading> {
        let log = std::fs::read(output.log)?;
        let slice = log
            .get(output.log_range.start as usize..output.log_range.end as usize)
            .unwrap_or_default();
        let mut reading = Reading::default();
        for line in String::from_utf8_lossy(slice).lines() {
            if let Some((k, v)) = line.split_once('=')
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && let Ok(v) = v.trim().parse::<f64>()
            {
                reading.metrics.insert(k.to_string(), v);
            }
        }
        if reading.metrics.is_empty() {
            reading.problems.push("the probe printed no metric".into());
        }
        Ok(reading)
    }
}

const NAME: &str = "probe_server-bench-pytorch-float16-input_output_len:8,8";

/// One run of the list through the harness, in this process, with the probe backend
/// registered. Returns libtest's (passed, failed) counts.
fn run(dir: &Path, root: &Path, extra: &[&str]) -> (u64, u64) {
    let list = dir.join("list.txt");
    std::fs::write(&list, format!("{NAME}\n")).expect("list");
    let out = dir.join("out");
    let mut argv: Vec<String> = [
        "perf",
        "--test-list",
        list.to_str().expect("utf-8"),
        "--output-dir",
        out.to_str().expect("utf-8"),
        "--no-telemetry",
        "--baselines",
        dir.join("baselines").to_str().expect("utf-8"),
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(extra.iter().map(|s| s.to_string()));
    let args = HarnessArgs::try_parse_from(argv).expect("arguments");
    let registry = Registry::builtin().with(Arc::new(ProbeBackend {
        root: root.to_path_buf(),
    }));
    let c = perfgate::harness::run_with(args, registry)
        .expect("the run starts")
        .conclusion;
    (c.num_passed, c.num_failed)
}

fn server_pid(dir: &Path) -> Option<i32> {
    // The server's log names its port; the process is found by it in /proc.
    let log = std::fs::read_to_string(
        dir.join("out")
            .join(NAME.replace([':', ','], "_"))
            .join("server.log"),
    )
    .ok()?;
    let port = log
        .lines()
        .find_map(|l| l.strip_prefix("$ "))?
        .split_whitespace()
        .nth(3)?
        .to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        (cmd.contains("http.server") && cmd.contains(&format!(" {port} "))).then_some(pid)
    })
}

#[test]
fn a_second_backend_runs_through_the_whole_pipeline_with_a_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("www");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::write(root.join("value.txt"), "1000\n").expect("value");
    let (passed, failed) = run(dir.path(), &root, &[]);
    assert_eq!((passed, failed), (1, 0));
    let out = dir.path().join("out");
    // Read into metrics, written to results.jsonl under the step's label.
    let jsonl = std::fs::read_to_string(out.join("results.jsonl")).expect("results.jsonl");
    let tput = jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["metric"] == "TOKEN_THROUGHPUT")
        .expect("a TOKEN_THROUGHPUT record");
    assert_eq!(tput["value"], 1000.0, "{tput}");
    assert_eq!(tput["step"], "probe");
    // Gated: a verdict per metric (NEW on the first night), in gate.jsonl and the history.
    let verdicts = perfgate::results::verdicts::read(&out.join("gate.jsonl")).expect("gate.jsonl");
    let v = verdicts
        .iter()
        .find(|r| r.metric == "TOKEN_THROUGHPUT")
        .expect("a verdict");
    assert_eq!(v.verdict, perfgate::record::Verdict::New);
    let history =
        perfgate::history::History::open_existing(&out.join("history.sqlite")).expect("history");
    assert_eq!(history.runs(5).expect("runs").len(), 1);
    // Reported: JUnit has the metric as a property of the passed test.
    let xml = std::fs::read_to_string(out.join("results.xml")).expect("results.xml");
    assert!(
        xml.contains("name=\"TOKEN_THROUGHPUT\" value=\"1000\""),
        "{xml}"
    );
    // The plan shows the service and the placeholder the probe got filled in.
    let test_dir = out.join(NAME.replace([':', ','], "_"));
    let commands = std::fs::read_to_string(test_dir.join("commands.sh")).expect("commands.sh");
    assert!(
        commands.contains("http.server '{port}'") && commands.contains(" &\n"),
        "{commands}"
    );
    let log = std::fs::read_to_string(test_dir.join("perf.log")).expect("perf.log");
    assert!(log.contains("server service ready at 127.0.0.1:"), "{log}");
    assert!(log.contains("server service stopped"), "{log}");
    assert!(
        !log.contains("{server.url}"),
        "the placeholder is resolved in what ran: {log}"
    );
    // And the service died with its case.
    assert_eq!(server_pid(dir.path()), None, "the server outlived its case");

    // A slower night against the stored baseline: the same pipeline gates it.
    let baseline = dir.path().join("base.csv");
    std::fs::write(
        &baseline,
        format!(
            "network_name,perf_case_name,test_name,threshold,absolute_threshold,metric_type,perf_metric\n\
             \"{}\",\"{}\",\"{}\",-0.1,10,TOKEN_THROUGHPUT,1000\n",
            v.network_name, v.perf_case_name, v.test_name
        ),
    )
    .expect("baseline");
    std::fs::write(root.join("value.txt"), "700\n").expect("value");
    let night2 = tempfile::tempdir().expect("tempdir");
    let (passed, failed) = run(
        night2.path(),
        &root,
        &[
            "--no-history",
            "--baseline-file",
            baseline.to_str().expect("utf-8"),
            "--gate-metrics",
            "TOKEN_THROUGHPUT",
        ],
    );
    assert_eq!((passed, failed), (0, 1), "a 30% drop fails the test");
    let verdicts = perfgate::results::verdicts::read(&night2.path().join("out/gate.jsonl"))
        .expect("gate.jsonl");
    let v = verdicts
        .iter()
        .find(|r| r.metric == "TOKEN_THROUGHPUT")
        .expect("a verdict");
    assert_eq!(
        v.verdict,
        perfgate::record::Verdict::Fail,
        "{}",
        v.explanation
    );
    assert_eq!(server_pid(night2.path()), None);
}

#[test]
fn a_service_that_never_gets_ready_fails_its_case_with_its_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No value.txt: the readiness URL answers 404 forever.
    let root = dir.path().join("empty");
    std::fs::create_dir_all(&root).expect("mkdir");
    let list = dir.path().join("list.txt");
    std::fs::write(&list, format!("{NAME}\n")).expect("list");
    // A short ready timeout through a backend that asks for one.
    struct Impatient(ProbeBackend);
    impl Backend for Impatient {
        fn id(&self) -> &'static str {
            "probe"
        }
        fn accepts(&self, name: &PerfName) -> bool {
            self.0.accepts(name)
        }
        fn plan(&self, r: &PlanRequest) -> TestPlan {
            let mut tp = self.0.plan(r);
            for c in &mut tp.cases {
                for s in &mut c.steps {
                    if let Some(spec) = &mut s.service {
                        spec.ready_timeout = Duration::from_secs(2);
                    }
                }
            }
            tp
        }
        fn read(&self, step: &Step, output: &StepOutput) -> anyhow::Result<Reading> {
            self.0.read(step, output)
        }
    }
    let out = dir.path().join("out");
    let args = HarnessArgs::try_parse_from([
        "perf",
        "--test-list",
        list.to_str().expect("utf-8"),
        "--output-dir",
        out.to_str().expect("utf-8"),
        "--no-telemetry",
        "--quiet",
    ])
    .expect("arguments");
    let registry = Registry::builtin().with(Arc::new(Impatient(ProbeBackend { root })));
    let started = std::time::Instant::now();
    let c = perfgate::harness::run_with(args, registry)
        .expect("runs")
        .conclusion;
    assert_eq!((c.num_passed, c.num_failed), (0, 1));
    assert!(started.elapsed() < Duration::from_secs(20));
    let xml = std::fs::read_to_string(out.join("results.xml")).expect("results.xml");
    assert!(
        xml.contains("the server service was not ready after 2 s")
            && xml.contains("value.txt never answered 200"),
        "{xml}"
    );
    assert_eq!(server_pid(dir.path()), None, "the server outlived its case");
}
