//! `perfgate sweep` and `perfgate ab` end to end against serve-mock: every file checked against
//! its layout (docs/guide/sweep-ab.md), the statistics recomputed from the samples they keep,
//! energy from a scripted power reading, and every bad input, a server dying mid-run and
//! Ctrl-C: an exit status and a message, never a panic, nothing finished lost.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const MOCK: &str = env!("CARGO_BIN_EXE_serve-mock");
const PERFGATE: &str = env!("CARGO_BIN_EXE_perfgate");

pub(crate) fn tokenizer() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tokenizers/tiny-bpe")
        .display()
        .to_string()
}

/// A running serve-mock, killed when dropped.
struct Mock {
    child: Child,
    url: String,
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
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve-mock");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the mock's address");
        let addr = line
            .split_whitespace()
            .find_map(|p| p.strip_prefix("http="))
            .unwrap_or_else(|| panic!("serve-mock printed `{line}`"));
        Mock {
            child,
            url: format!("http://{addr}"),
            trace,
            _dir: dir,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every request the mock answered, in the order they ended: `request_id`,
    /// `arrival_ns` and `events` (`t_ns`) on CLOCK_MONOTONIC.
    fn trace(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.trace)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a trace line"))
            .collect()
    }

    /// The prompts the mock received (each request's `prompt` field), sorted.
    fn prompts(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.trace).unwrap_or_default();
        let mut v: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|t| t["fields"]["prompt"].to_string())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn perfgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(PERFGATE)
        .args(args)
        .env_remove("PERFGATE_FAKE_NVML")
        .env_remove("PERFGATE_SYSFS_ROOT")
        .envs(env.iter().copied())
        .output()
        .expect("perfgate runs")
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub(crate) fn read_json(path: &Path) -> Value {
    let t = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The one file of `dir` whose name starts with `prefix`.
fn one(dir: &Path, prefix: &str) -> PathBuf {
    let found: Vec<PathBuf> = files(dir)
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .map(|n| dir.join(n))
        .collect();
    assert_eq!(found.len(), 1, "{prefix}* in {}: {found:?}", dir.display());
    found[0].clone()
}

fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The keys of a `trt_bench_summary` entry (docs/guide/sweep-ab.md).
const SUMMARY_KEYS: [&str; 32] = [
    "test_type",
    "n_prompt",
    "n_gen",
    "n_tokens",
    "repetitions",
    "completed",
    "failed",
    "avg_ns",
    "stddev_ns",
    "avg_ts",
    "stddev_ts",
    "samples_ns",
    "samples_ts",
    "avg_ttft_ns",
    "prompt_tokens_sent",
    "gen_tokens_requested",
    "energy_measured",
    "energy_j",
    "joules_per_token",
    "avg_power_w",
    "energy_sources",
    "energy_note",
    "power_sources",
    "data_file",
    "model",
    "server_url",
    "server_kind",
    "endpoint",
    "timestamp",
    "errors",
    "interrupted",
    "notes",
];

const DATA_KEYS: [&str; 12] = [
    "test_type",
    "n_prompt",
    "n_gen",
    "n_tokens",
    "label",
    "summary_file",
    "time",
    "power",
    "temp",
    "freq",
    "load",
    "problems",
];

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Mean and sample standard deviation.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, sd)
}

/// Every summary entry against its layout and its own samples; every data file against its
/// entry.
fn check_sweep_files(out: &Path, reps: u64) -> Vec<Value> {
    let summary = read_json(&one(out, "trt_bench_summary_"));
    let tests = summary.as_array().expect("an array").clone();
    let ts = one(out, "trt_bench_summary_")
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("trt_bench_summary_"))
        .and_then(|n| n.strip_suffix(".json"))
        .expect("a timestamp")
        .to_string();
    for t in &tests {
        assert_eq!(keys(t), set(&SUMMARY_KEYS), "{t}");
        let (np, ng) = (
            t["n_prompt"].as_u64().unwrap(),
            t["n_gen"].as_u64().unwrap(),
        );
        let kind = t["test_type"].as_str().unwrap();
        assert_eq!(t["n_tokens"].as_u64(), Some(np + ng));
        assert_eq!(t["repetitions"].as_u64(), Some(reps));
        let samples: Vec<f64> = t["samples_ns"].as_array().unwrap().iter().map(f).collect();
        assert_eq!(samples.len() as u64, t["completed"].as_u64().unwrap());
        if !samples.is_empty() {
            let (m, sd) = mean_sd(&samples);
            assert_eq!(t["avg_ns"].as_u64(), Some(m.round() as u64), "{t}");
            assert_eq!(t["stddev_ns"].as_u64(), Some(sd.round() as u64), "{t}");
            let per: Vec<f64> = samples
                .iter()
                .map(|ns| (np + ng) as f64 / (ns / 1e9))
                .collect();
            for (a, b) in per.iter().zip(t["samples_ts"].as_array().unwrap()) {
                assert!((a - f(b)).abs() <= 1e-9 * a, "{a} vs {b}");
            }
            let (mt, sdt) = mean_sd(&per);
            assert!((f(&t["avg_ts"]) - mt).abs() <= 1e-9 * mt);
            assert!((f(&t["stddev_ts"]) - sdt).abs() <= 1e-9 * mt.max(1.0));
        }
        let data_name = t["data_file"].as_str().unwrap();
        assert_eq!(data_name, format!("trt_data_{kind}_p{np}_g{ng}_{ts}.json"));
        let data = read_json(&out.join(data_name));
        assert_eq!(keys(&data), set(&DATA_KEYS), "{data}");
        assert_eq!(data["test_type"], t["test_type"]);
        assert_eq!(
            data["summary_file"].as_str(),
            Some(format!("trt_bench_summary_{ts}.json").as_str())
        );
        let time = &data["time"];
        let rows = time["repetitions"].as_array().unwrap();
        let ok: Vec<&Value> = rows.iter().filter(|r| r["error"].is_null()).collect();
        for (r, s) in ok.iter().zip(&samples) {
            let (a, b) = (
                r["start_ns"].as_u64().unwrap(),
                r["end_ns"].as_u64().unwrap(),
            );
            assert!(a < b);
            assert_eq!((b - a) as f64, *s);
            assert_eq!(r["duration_ns"].as_u64(), Some(b - a));
        }
        for w in rows.windows(2) {
            assert!(
                w[0]["end_ns"].as_u64() <= w[1]["start_ns"].as_u64(),
                "one at a time: {w:?}"
            );
        }
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            assert_eq!(time["test_start_ns"], first["start_ns"]);
            assert_eq!(time["test_end_ns"], last["end_ns"]);
        }
        for section in ["power", "temp", "freq", "load"] {
            assert!(data[section].is_object(), "{section}");
        }
        for rail in data["power"]["rails"].as_array().unwrap() {
            let times = rail["timestamps_ns"].as_array().unwrap();
            assert_eq!(times.len(), rail["values"].as_array().unwrap().len());
        }
    }
    tests
}

#[test]
fn sweep_writes_every_file_in_its_layout() {
    let mock = Mock::start(&[
        "--kind",
        "llamacpp",
        "--ttft-ms",
        "4",
        "--itl-ms",
        "3",
        "--timings",
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = perfgate(
        &[
            "sweep",
            "--url",
            &mock.url,
            "--tokenizer",
            &tokenizer(),
            "-p",
            "16",
            "32",
            "-n",
            "8",
            "-pg",
            "16,8",
            "-r",
            "3",
            "--power",
            "none",
            "-o",
            "jsonl",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let tests = check_sweep_files(&out, 3);
    let labels: Vec<String> = tests
        .iter()
        .map(|t| format!("{} {} {}", t["test_type"], t["n_prompt"], t["n_gen"]))
        .collect();
    assert_eq!(
        labels,
        [
            "\"prompt\" 16 0",
            "\"prompt\" 32 0",
            "\"generation\" 0 8",
            "\"both\" 16 8"
        ]
    );
    for t in &tests {
        assert_eq!(t["completed"], 3);
        assert_eq!(t["energy_measured"], false);
        assert!(t["energy_j"].is_null() && t["joules_per_token"].is_null());
        let note = t["energy_note"].as_str().unwrap();
        assert!(
            note.contains("not measured") && note.contains("--power none"),
            "{note}"
        );
        assert_eq!(t["model"], "mock-model");
        assert_eq!(t["server_kind"], "llama.cpp");
    }
    // What each test sends: the prompt tests ask for one token, the generation test sends a
    // one-token prompt, and the output says so.
    let reps = |i: usize| {
        read_json(&out.join(tests[i]["data_file"].as_str().unwrap()))["time"]["repetitions"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert!(
        reps(0)
            .iter()
            .all(|r| r["prompt_tokens"] == 16 && r["gen_tokens"] == 1)
    );
    assert!(
        reps(2)
            .iter()
            .all(|r| r["prompt_tokens"] == 1 && r["gen_tokens"] == 8)
    );
    assert!(
        tests[0]["notes"][0]
            .as_str()
            .unwrap()
            .contains("prompt-only")
    );
    assert!(
        tests[2]["notes"][0]
            .as_str()
            .unwrap()
            .contains("minimal prompt")
    );
    // The mock's script: 4 ms to the first token, 3 ms for each next one.
    for r in reps(2) {
        assert!(r["ttft_ns"].as_u64().unwrap() >= 4_000_000, "{r}");
        assert!(
            r["duration_ns"].as_u64().unwrap() >= 4_000_000 + 7 * 3_000_000,
            "{r}"
        );
    }
    // Standard output (-o jsonl) and the JSONL file: the summary's entries, in order.
    let stdout: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(stdout, tests);
    let stem = one(&out, "trt_bench_summary_")
        .to_string_lossy()
        .replace("trt_bench_summary_", "trt_bench_")
        .replace(".json", "");
    let lines: Vec<Value> = std::fs::read_to_string(format!("{stem}.jsonl"))
        .expect("jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines, tests);
    // CSV: the documented columns, a row per test with the summary's figures.
    let mut csv = csv::Reader::from_path(format!("{stem}.csv")).expect("csv");
    let header: Vec<String> = csv
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header, perfgate::sweep::output::CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 4);
    for (row, t) in rows.iter().zip(&tests) {
        assert_eq!(row.get(7), Some(t["avg_ns"].to_string().as_str()));
        assert_eq!(row.get(19), t["data_file"].as_str());
    }
    // Markdown: a row per test, then what was not measured.
    let md = std::fs::read_to_string(format!("{stem}.md")).expect("md");
    assert_eq!(
        md.lines()
            .filter(|l| l.starts_with("| mock-model |"))
            .count(),
        4,
        "{md}"
    );
    assert!(
        md.contains("pp16+tg8") && md.contains("energy not measured"),
        "{md}"
    );
    // The tokens/s chart: one series per kind of test; no power chart without power.
    let svg = std::fs::read_to_string(format!(
        "{}.svg",
        stem.replace("trt_bench_", "trt_bench_tokens_per_s_")
    ))
    .expect("svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 1, "pp16→pp32 joined");
    assert_eq!(svg.matches("<circle").count(), 4);
    assert!(!files(&out).iter().any(|n| n.starts_with("trt_power_")));
}

#[test]
fn sweep_energy_from_a_scripted_power_reading() {
    let mock = Mock::start(&["--kind", "llamacpp", "--ttft-ms", "2", "--itl-ms", "4"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("nvml.json");
    std::fs::write(
        &script,
        r#"{"power_w": 250, "gpu_temp_c": 40, "mem_temp_c": 41}"#,
    )
    .expect("script");
    let out = dir.path().join("out");
    let o = perfgate(
        &[
            "sweep",
            "--url",
            &mock.url,
            "--tokenizer",
            &tokenizer(),
            "-n",
            "16",
            "-pg",
            "8,16",
            "-r",
            "3",
            "--power",
            "nvml",
            "--interval-ms",
            "20",
            "--cooldown-temp",
            "30",
            "--cooldown-max",
            "300ms",
            "-o",
            "csv",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[("PERFGATE_FAKE_NVML", script.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cooldown: ") && err.contains("still read 41.0"),
        "{err}"
    );
    let tests = check_sweep_files(&out, 3);
    for t in &tests {
        assert_eq!(t["energy_measured"], true, "{t}");
        assert_eq!(t["power_sources"], serde_json::json!(["nvml"]));
        let w = f(&t["avg_power_w"]);
        assert!((w - 250.0).abs() < 2.5, "mean power {w}");
        let data = read_json(&out.join(t["data_file"].as_str().unwrap()));
        let (a, b) = (
            data["time"]["test_start_ns"].as_u64().unwrap(),
            data["time"]["test_end_ns"].as_u64().unwrap(),
        );
        let secs = (b - a) as f64 / 1e9;
        let j = f(&t["energy_j"]);
        assert!(
            (j - w * secs).abs() <= 1e-9 * j.max(1.0),
            "{j} vs {w} W × {secs} s"
        );
        let tokens = t["n_tokens"].as_f64().unwrap() * 3.0;
        assert!((f(&t["joules_per_token"]) - j / tokens).abs() <= 1e-12);
        // The readings that cover the repetitions: one at or before the first, one at or
        // after the last.
        let rails = data["power"]["rails"].as_array().unwrap();
        let power = rails
            .iter()
            .find(|r| r["name"] == "gpu0" && r["quantity"] == "power")
            .expect("gpu0 power");
        let times: Vec<u64> = power["timestamps_ns"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert!(
            times.first() <= Some(&a) && times.last() >= Some(&b),
            "{times:?} vs {a}..{b}"
        );
        assert!(
            power["values"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| f(v) == 250.0)
        );
        let temps = data["temp"]["sensors"].as_array().unwrap();
        assert!(
            temps
                .iter()
                .any(|t| t["name"] == "gpu0" && t["values"][0] == 40.0),
            "{temps:?}"
        );
        assert!(
            out.join(
                t["data_file"]
                    .as_str()
                    .unwrap()
                    .replace("trt_data_", "trt_power_")
                    .replace(".json", ".svg")
            )
            .exists()
        );
    }
    // -o csv: a header and a row per test on standard output.
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.lines().count(), 1 + tests.len(), "{stdout}");
    assert!(stdout.starts_with("test_type,n_prompt,"));
}

#[test]
fn sweep_bad_input_is_an_exit_status_and_a_message() {
    let mock = Mock::start(&["--kind", "llamacpp", "--n-ctx", "64"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let tok = tokenizer();
    let base = [
        "sweep",
        "--url",
        &mock.url,
        "--tokenizer",
        &tok,
        "--output-dir",
        out.to_str().unwrap(),
    ];
    let cases: &[(&[&str], i32, &str)] = &[
        (&[], 2, "no test to run"),
        (&["-p", "0", "-n", "0"], 2, "no test to run"),
        (&["-pg", "512"], 2, "expected PROMPT,GENERATION"),
        (&["-pg", "512,x"], 2, "expected a whole number"),
        (
            &["-pg", "512,128,3"],
            2,
            "-pg `512,128,3`: expected PROMPT,GENERATION",
        ),
        (&["-pg", "-5,3"], 2, "-pg `-5`: a length cannot be negative"),
        (
            &["-pg", "8,4", "-5,3", "-r", "2"],
            2,
            "-pg `-5`: a length cannot be negative",
        ),
        (&["-pg"], 2, "a value is required for '--pg <P,G>...'"),
        (&["-pg", "512,0"], 2, "both lengths must be at least 1"),
        (&["-p", "-5"], 2, "cannot be negative"),
        (&["-n", "99999999999"], 2, "more than any server takes"),
        (&["-p", "8", "-r", "0"], 2, "at least one repetition"),
        (
            &["-p", "32", "-pg", "60,8"],
            2,
            "test pp60+tg8 needs 68 tokens in one sequence (60 prompt + 8 generated), but the server takes at most 64 (/props default_generation_settings.n_ctx",
        ),
        (
            &["-p", "8", "--cooldown-temp", "40"],
            2,
            "no temperature sensor",
        ),
        (
            &["-p", "8", "--tokenizer", "/nonexistent"],
            2,
            "/nonexistent",
        ),
    ];
    for (extra, code, message) in cases {
        let mut args: Vec<&str> = base.to_vec();
        if extra.contains(&"--tokenizer") {
            args.drain(3..5);
        }
        args.extend_from_slice(extra);
        if extra.contains(&"--cooldown-temp") {
            args.extend(["--power", "none"]);
        }
        let o = perfgate(&args, &[]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(*code), "{extra:?}: {t}");
        assert!(t.contains(message), "{extra:?}: expected `{message}`: {t}");
        assert!(!t.contains("panicked"), "{t}");
    }
    assert!(
        !files(&out)
            .iter()
            .any(|n| n.starts_with("trt_bench_summary_")),
        "nothing measured, nothing written: {:?}",
        files(&out)
    );
    let o = perfgate(
        &[
            "sweep",
            "--url",
            "http://127.0.0.1:9",
            "--tokenizer",
            &tok,
            "-p",
            "8",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    // The one table: a server that cannot be reached is a test that could not measure.
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("cannot reach the server"), "{}", text(&o));
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC (ns): turns the mock's trace times into the sweep
/// files' clock (ns since the Unix epoch) to within microseconds.
fn unix_minus_monotonic_ns() -> i128 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
    };
    let mono = read(libc::CLOCK_MONOTONIC);
    read(libc::CLOCK_REALTIME) - mono
}

/// A trace request's arrival and its last event, on the Unix clock.
fn arrival_and_end_unix(t: &Value, offset: i128) -> (i128, i128) {
    let arrival = i128::from(t["arrival_ns"].as_u64().expect("arrival_ns")) + offset;
    let end = t["events"]
        .as_array()
        .and_then(|e| e.last())
        .and_then(|e| e["t_ns"].as_u64())
        .expect("events");
    (arrival, i128::from(end) + offset)
}

/// The requests of a sweep's run as the mock saw them, split by test: (warm-up, measured).
fn requests_by_test(
    mock: &Mock,
    tests: usize,
    warmup: usize,
    reps: usize,
) -> Vec<(Vec<Value>, Vec<Value>)> {
    let trace = mock.trace();
    assert_eq!(trace.len(), tests * (warmup + reps), "{trace:?}");
    trace
        .chunks(warmup + reps)
        .map(|c| {
            let (w, m) = c.split_at(warmup);
            for t in w {
                assert!(
                    t["request_id"].as_str().unwrap().contains("-warmup-"),
                    "{t}"
                );
            }
            for t in m {
                assert!(
                    !t["request_id"].as_str().unwrap().contains("-warmup-"),
                    "{t}"
                );
            }
            (w.to_vec(), m.to_vec())
        })
        .collect()
}

#[test]
fn sweep_warm_up_requests_are_sent_and_kept_out_of_the_samples() {
    // 8 tokens 5 ms apart: a request takes at least 35 ms, so a warm-up taken for a
    // repetition would be off by far more than the clocks' conversion.
    let mock = Mock::start(&["--kind", "llamacpp", "--itl-ms", "5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = perfgate(
        &[
            "sweep",
            "--url",
            &mock.url,
            "--tokenizer",
            &tokenizer(),
            "-n",
            "8",
            "-pg",
            "4,8",
            "-r",
            "3",
            "--warmup",
            "2",
            "--power",
            "none",
            "-o",
            "json",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let tests = check_sweep_files(&out, 3);
    assert_eq!(tests.len(), 2);
    // 2 tests × (2 warm-ups + 3 repetitions) reached the server, the warm-ups first.
    let by_test = requests_by_test(&mock, 2, 2, 3);
    let offset = unix_minus_monotonic_ns();
    let slack = 1_000_000; // 1 ms for the clocks' conversion
    for (t, (warmups, measured)) in tests.iter().zip(&by_test) {
        let samples = t["samples_ns"].as_array().unwrap();
        assert_eq!(samples.len(), 3, "{t}");
        let data = read_json(&out.join(t["data_file"].as_str().unwrap()));
        let reps = data["time"]["repetitions"].as_array().unwrap();
        let indices: Vec<u64> = reps.iter().filter_map(|r| r["index"].as_u64()).collect();
        assert_eq!(indices, [0, 1, 2]);
        let start = i128::from(data["time"]["test_start_ns"].as_u64().unwrap());
        // The warm-ups ended before the first repetition began...
        for w in warmups {
            let (_, end) = arrival_and_end_unix(w, offset);
            assert!(end < start + slack, "warm-up {w} ends after {start}");
        }
        // ...and each repetition is one measured request: it arrived within the
        // repetition's start and end, and its last token went out before the end.
        for (r, m) in reps.iter().zip(measured) {
            let (a, b) = (
                i128::from(r["start_ns"].as_u64().unwrap()),
                i128::from(r["end_ns"].as_u64().unwrap()),
            );
            let (arrival, end) = arrival_and_end_unix(m, offset);
            assert!(a - slack <= arrival && end <= b + slack, "{r} vs {m}");
            assert!(r["duration_ns"].as_u64().unwrap() >= 35_000_000, "{r}");
        }
    }
}

#[test]
fn sweep_fixed_cooldown_pauses_between_tests() {
    let mock = Mock::start(&["--kind", "llamacpp"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = perfgate(
        &[
            "sweep",
            "--url",
            &mock.url,
            "--tokenizer",
            &tokenizer(),
            "-p",
            "8",
            "-n",
            "4",
            "-pg",
            "8,4",
            "-r",
            "2",
            "--cooldown",
            "300ms",
            "--power",
            "none",
            "-o",
            "json",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let tests = check_sweep_files(&out, 2);
    assert_eq!(tests.len(), 3);
    let window = |t: &Value| {
        let data = read_json(&out.join(t["data_file"].as_str().unwrap()));
        (
            data["time"]["test_start_ns"].as_u64().unwrap(),
            data["time"]["test_end_ns"].as_u64().unwrap(),
        )
    };
    for pair in tests.windows(2) {
        let gap = window(&pair[1]).0 - window(&pair[0]).1;
        assert!(gap >= 300_000_000, "{gap} ns between tests");
    }
    // The pause is between tests, before the next test's warm-up, never inside a test: at
    // the server, 300 ms pass between a test's last request and the next test's first.
    let by_test = requests_by_test(&mock, 3, 1, 2);
    for (i, (warmups, measured)) in by_test.iter().enumerate() {
        let requests: Vec<&Value> = warmups.iter().chain(measured).collect();
        for pair in requests.windows(2) {
            let (_, end) = arrival_and_end_unix(pair[0], 0);
            let (next, _) = arrival_and_end_unix(pair[1], 0);
            assert!(next - end < 300_000_000, "no pause inside test {i}");
        }
        if let Some((next, _)) = by_test.get(i + 1) {
            let (_, end) = arrival_and_end_unix(measured.last().unwrap(), 0);
            let (arrival, _) = arrival_and_end_unix(&next[0], 0);
            assert!(
                arrival - end >= 300_000_000,
                "{} ns after test {i}",
                arrival - end
            );
        }
    }
}

/// Starts a sweep of four generation tests against `mock`, waits for its first finished test
/// (its JSON line), then does `then`; returns the exit status, stderr and the output dir.
fn interrupted_sweep(
    mock: &mut Mock,
    then: &dyn Fn(&mut Mock, u32),
) -> (Option<i32>, String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let mut child = Command::new(PERFGATE)
        .args([
            "sweep",
            "--url",
            &mock.url,
            "--tokenizer",
            &tokenizer(),
            "-n",
            "8",
            "16",
            "24",
            "32",
            "-r",
            "3",
            "--power",
            "none",
            "-o",
            "jsonl",
            "--output-dir",
            out.to_str().unwrap(),
        ])
        .env_remove("PERFGATE_FAKE_NVML")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sweep starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("the first test's line");
    assert!(first.contains("\"test_type\""), "{first}");
    then(mock, child.id());
    let o = child.wait_with_output().expect("sweep ends");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        out,
        dir,
    )
}

#[test]
fn sweep_keeps_finished_tests_when_the_server_dies() {
    let mut mock = Mock::start(&["--kind", "llamacpp", "--itl-ms", "12"]);
    let (code, err, out, _dir) = interrupted_sweep(&mut mock, &|m, _| m.kill());
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("stopped") && err.contains("finished test(s) are written"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let tests = check_sweep_files(&out, 3);
    assert!(!tests.is_empty() && tests.len() < 4, "{tests:?}");
    assert_eq!(
        tests[0]["completed"], 3,
        "the first test finished before the kill"
    );
}

#[test]
fn sweep_keeps_finished_tests_on_ctrl_c() {
    let mut mock = Mock::start(&["--kind", "llamacpp", "--itl-ms", "12"]);
    let (code, err, out, _dir) = interrupted_sweep(&mut mock, &|_, pid| {
        // SAFETY: signalling the sweep process this test started.
        unsafe { libc::kill(pid as i32, libc::SIGINT) };
    });
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let tests = check_sweep_files(&out, 3);
    assert!(!tests.is_empty() && tests.len() < 4, "{tests:?}");
    assert_eq!(tests[0]["completed"], 3);
    assert_eq!(tests[0]["interrupted"], false);
}

// ---------------------------------------------------------------------------------------------
// perfgate ab

const RESULTS_KEYS: [&str; 16] = [
    "started",
    "mode",
    "batch_size",
    "blocks",
    "order",
    "ignore_eos",
    "prompts",
    "labels",
    "a",
    "b",
    "comparison",
    "complete",
    "stopped",
    "interrupted",
    "files",
    "notes",
];

const SIDE_FIGURE_KEYS: [&str; 23] = [
    "label",
    "url",
    "model",
    "server_kind",
    "blocks",
    "requests",
    "completed",
    "failed",
    "errors",
    "duration_s",
    "prompt_tokens",
    "generated_tokens",
    "total_tokens",
    "output_throughput",
    "total_token_throughput",
    "request_throughput",
    "ttft_ms",
    "e2el_ms",
    "tpot_ms",
    "acceptance",
    "gpu",
    "osl_mismatch",
    "invalid",
];

/// The four files of an A/B against their layout (docs/guide/sweep-ab.md); the results, the
/// two side files and the GPU file. Also used by the real A/B (sweep_ab_real).
pub(crate) fn check_ab_files(out: &Path, labels: [&str; 2]) -> (Value, [Value; 2], Value) {
    assert_eq!(
        files(out),
        set(&[
            "benchmark_results.json",
            &format!("benchmark_results_{}.json", labels[0]),
            &format!("benchmark_results_{}.json", labels[1]),
            "benchmark_results_gpu.json",
        ])
    );
    let results = read_json(&out.join("benchmark_results.json"));
    assert_eq!(keys(&results), set(&RESULTS_KEYS), "{results}");
    for side in ["a", "b"] {
        assert_eq!(
            keys(&results[side]),
            set(&SIDE_FIGURE_KEYS),
            "{}",
            results[side]
        );
    }
    assert_eq!(
        results["files"],
        serde_json::json!({"a": format!("benchmark_results_{}.json", labels[0]),
            "b": format!("benchmark_results_{}.json", labels[1]), "gpu": "benchmark_results_gpu.json"})
    );
    let sides = labels.map(|l| {
        let v = read_json(&out.join(format!("benchmark_results_{l}.json")));
        assert_eq!(
            keys(&v),
            set(&[
                "label",
                "side",
                "url",
                "model",
                "server_kind",
                "figures",
                "blocks",
                "requests"
            ]),
            "{v}"
        );
        assert_eq!(v["label"], l);
        v
    });
    for (i, side) in ["a", "b"].iter().enumerate() {
        assert_eq!(
            sides[i]["figures"], results[*side],
            "the side file has the same figures"
        );
        let requests = sides[i]["requests"].as_array().unwrap();
        assert_eq!(
            requests.len() as u64,
            results[*side]["requests"].as_u64().unwrap()
        );
        for r in requests {
            assert!(r["start_ns"].as_u64() < r["end_ns"].as_u64(), "{r}");
        }
    }
    let gpu = read_json(&out.join("benchmark_results_gpu.json"));
    (results, sides, gpu)
}

#[test]
fn ab_compares_the_same_prompts_in_alternating_blocks() {
    let a = Mock::start(&[
        "--kind",
        "llamacpp",
        "--timings",
        "--ttft-ms",
        "2",
        "--itl-ms",
        "6",
    ]);
    let b = Mock::start(&[
        "--kind",
        "llamacpp",
        "--timings",
        "--draft-accept",
        "0.75",
        "--ttft-ms",
        "2",
        "--itl-ms",
        "3",
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = perfgate(
        &[
            "ab",
            "--a",
            &a.url,
            "--b",
            &b.url,
            "--tokenizer",
            &tokenizer(),
            "--isl",
            "16",
            "--osl",
            "8",
            "--num-prompts",
            "12",
            "--batch-size",
            "2",
            "--blocks",
            "4",
            "--warmup",
            "0",
            "--ignore-eos",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let (results, sides, gpu) = check_ab_files(&out, ["target", "speculative"]);
    for side in ["a", "b"] {
        let s = &results[side];
        assert_eq!(
            (s["requests"].as_u64(), s["failed"].as_u64()),
            (Some(12), Some(0)),
            "{s}"
        );
        assert_eq!(s["generated_tokens"], 96);
        assert_eq!(s["prompt_tokens"], 192);
        assert_eq!(s["blocks"], 4);
    }
    // llama.cpp's draft counts: one drafted per generated token on the mock, 3 of 4 accepted.
    let acc = &results["b"]["acceptance"];
    assert_eq!(
        (acc["drafted"].as_u64(), acc["accepted"].as_u64()),
        (Some(96), Some(72)),
        "{acc}"
    );
    assert_eq!(acc["rate"].as_f64(), Some(0.75));
    assert!(
        results["a"]["acceptance"].is_null(),
        "no draft, no acceptance"
    );
    // B decodes twice as fast (3 ms a token against 6): 2 + 7×6 = 44 ms a request against 23.
    let sp = &results["comparison"]["speedup"];
    let est = f(&sp["estimate"]);
    assert!((1.3..2.6).contains(&est), "{sp}");
    assert_eq!(sp["pairs"], 4);
    assert!(f(&sp["ci_low"]) <= est && est <= f(&sp["ci_high"]), "{sp}");
    assert!(f(&results["comparison"]["latency_speedup"]["estimate"]) > 1.3);
    // Blocks alternate A B, B A, A B, B A.
    let positions = |v: &Value| -> Vec<u64> {
        v["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["position"].as_u64())
            .collect()
    };
    assert_eq!(positions(&sides[0]), [0, 3, 4, 7]);
    assert_eq!(positions(&sides[1]), [1, 2, 5, 6]);
    // Both servers got exactly the same prompts.
    let (pa, pb) = (a.prompts(), b.prompts());
    assert_eq!(pa.len(), 12);
    assert_eq!(pa, pb);
    assert_eq!(gpu["monitored"], false);
    let console = String::from_utf8_lossy(&o.stdout);
    assert!(
        console.contains("speed-up (speculative over target, output tokens/s): "),
        "{console}"
    );
    assert!(console.contains("0.750 (72/96)"), "{console}");
}

#[test]
fn ab_time_mode_with_energy_while_each_side_runs() {
    let a = Mock::start(&["--kind", "llamacpp", "--itl-ms", "2"]);
    let b = Mock::start(&["--kind", "llamacpp", "--itl-ms", "2"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("nvml.json");
    std::fs::write(
        &script,
        r#"{"power_w": 200, "gpu_util_pct": 55, "gpu_temp_c": 47, "mem_temp_c": 45}"#,
    )
    .expect("script");
    let out = dir.path().join("out");
    let o = perfgate(
        &[
            "ab",
            "--a",
            &a.url,
            "--b",
            &b.url,
            "--label-a",
            "base",
            "--label-b",
            "new",
            "--tokenizer",
            &tokenizer(),
            "--isl",
            "8",
            "--osl",
            "4",
            "--request-rate",
            "20",
            "--duration",
            "1s",
            "--blocks",
            "2",
            "--batch-size",
            "4",
            "--gpu-monitor",
            "--power",
            "nvml",
            "--interval-ms",
            "20",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[("PERFGATE_FAKE_NVML", script.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", text(&o));
    let (results, _, gpu) = check_ab_files(&out, ["base", "new"]);
    assert_eq!(results["mode"]["kind"], "time");
    for side in ["a", "b"] {
        let g = &results[side]["gpu"];
        assert_eq!(g["measured"], serde_json::json!(["nvml"]), "{g}");
        assert!((f(&g["mean_power_w"]) - 200.0).abs() < 4.0, "{g}");
        assert_eq!(f(&g["peak_power_w"]), 200.0);
        assert_eq!(f(&g["mean_util_pct"]), 55.0);
        assert_eq!(f(&g["peak_temp_c"]), 47.0);
        let tokens = results[side]["generated_tokens"].as_f64().unwrap();
        assert!(tokens > 0.0);
        assert!((f(&g["joules_per_output_token"]) - f(&g["energy_j"]) / tokens).abs() < 1e-9);
        // The energy is the requests' own time at the readings' mean power: not the blocks'
        // set-up nor the readings' overhang (which made a 0.06 s block count 0.5 s).
        let (secs, duration) = (f(&g["seconds"]), f(&results[side]["duration_s"]));
        assert!(secs <= duration && secs > 0.9 * duration, "{g} {duration}");
        assert!(
            (f(&g["energy_j"]) / (200.0 * secs) - 1.0).abs() < 0.02,
            "{g}"
        );
        assert_eq!(results[side]["blocks"], 2);
    }
    assert_eq!(gpu["monitored"], true);
    for label in ["base", "new"] {
        let blocks = gpu["sides"][label]["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert!(
            blocks[0]["power"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "gpu0")
        );
    }
}

#[test]
fn ab_bad_input_and_a_dying_server() {
    let a = Mock::start(&["--kind", "llamacpp"]);
    let mut b = Mock::start(&["--kind", "llamacpp", "--itl-ms", "25"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let tok = tokenizer();
    let base = [
        "ab",
        "--a",
        &a.url,
        "--b",
        &b.url,
        "--output-dir",
        out.to_str().unwrap(),
    ];
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--tokenizer", &tok], 2, "no prompts"),
        (&["--isl", "8", "--osl", "4"], 2, "give --tokenizer"),
        (&["--tokenizer", &tok, "--isl", "8"], 2, "--osl as well"),
        (
            &[
                "--tokenizer",
                &tok,
                "--isl",
                "8",
                "--osl",
                "4",
                "--label-b",
                "target",
            ],
            2,
            "both sides are labelled",
        ),
        (
            &[
                "--tokenizer",
                &tok,
                "--isl",
                "8",
                "--osl",
                "4",
                "--label-a",
                "a/b",
            ],
            2,
            "names a file",
        ),
        (
            &[
                "--tokenizer",
                &tok,
                "--isl",
                "8",
                "--osl",
                "4",
                "--blocks",
                "0",
            ],
            2,
            "--blocks must be at least 1",
        ),
        (
            &[
                "--tokenizer",
                &tok,
                "--isl",
                "8",
                "--osl",
                "4",
                "--num-prompts",
                "0",
            ],
            2,
            "--num-prompts must be at least 1",
        ),
        (
            &[
                "--tokenizer",
                &tok,
                "--isl",
                "8",
                "--osl",
                "4",
                "--confidence",
                "95",
            ],
            2,
            "a fraction",
        ),
        (
            &["--input-data", "/nonexistent.jsonl"],
            2,
            "/nonexistent.jsonl",
        ),
    ];
    for (extra, code, message) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        let o = perfgate(&args, &[]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(*code), "{extra:?}: {t}");
        assert!(t.contains(message), "{extra:?}: expected `{message}`: {t}");
        assert!(!t.contains("panicked"), "{t}");
    }
    let o = perfgate(
        &[
            "ab",
            "--a",
            &a.url,
            "--b",
            "http://127.0.0.1:9",
            "--tokenizer",
            &tok,
            "--isl",
            "8",
            "--osl",
            "4",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("speculative: cannot reach the server"),
        "{}",
        text(&o)
    );

    // B dies after its first block: the finished blocks are written, the run says why.
    let mut child = Command::new(PERFGATE)
        .args([
            "ab",
            "--a",
            &a.url,
            "--b",
            &b.url,
            "--tokenizer",
            &tok,
            "--isl",
            "8",
            "--osl",
            "8",
            "--num-prompts",
            "12",
            "--blocks",
            "6",
            "--warmup",
            "0",
            "--output-dir",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ab starts");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
        if line.contains("block 1/6 speculative") {
            b.kill();
            break;
        }
    }
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    seen.push_str(&rest);
    let status = child.wait().expect("ab ends");
    assert_eq!(status.code(), Some(3), "{seen}");
    assert!(
        seen.contains("stopped") && !seen.contains("panicked"),
        "{seen}"
    );
    let results = read_json(&out.join("benchmark_results.json"));
    assert_eq!(results["complete"], false);
    assert!(
        results["stopped"].as_str().unwrap().contains("speculative"),
        "{results}"
    );
    assert!(results["b"]["completed"].as_u64() >= Some(2), "{results}");
}

#[test]
fn ab_keeps_finished_blocks_on_ctrl_c() {
    let a = Mock::start(&["--kind", "llamacpp", "--itl-ms", "10"]);
    let b = Mock::start(&["--kind", "llamacpp", "--itl-ms", "10"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let mut child = Command::new(PERFGATE)
        .args([
            "ab",
            "--a",
            &a.url,
            "--b",
            &b.url,
            "--tokenizer",
            &tokenizer(),
            "--isl",
            "8",
            "--osl",
            "8",
            "--num-prompts",
            "16",
            "--blocks",
            "8",
            "--warmup",
            "0",
            "--output-dir",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ab starts");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
        if line.contains("block 2/8") {
            // SAFETY: signalling the ab process this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            break;
        }
    }
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    seen.push_str(&rest);
    let o = child.wait_with_output().expect("ab ends");
    assert_eq!(o.status.code(), Some(130), "{seen}");
    assert!(!seen.contains("panicked"), "{seen}");
    let (results, sides, _) = check_ab_files(&out, ["target", "speculative"]);
    assert_eq!(results["interrupted"], true, "{results}");
    assert_eq!(results["complete"], false);
    let blocks = |v: &Value| v["blocks"].as_array().map_or(0, Vec::len);
    assert!(blocks(&sides[0]) + blocks(&sides[1]) >= 3, "{sides:?}");
    // The console summary was printed for what finished.
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("speed-up"),
        "{seen}"
    );
}

/// `perfgate plan --format json NAME`: the plan of one name.
fn plan(name: &str, env: &[(&str, &str)]) -> Value {
    let o = Command::new(PERFGATE)
        .args(["plan", "--format", "json", name])
        .env_remove("PERF_GPUS")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .envs(env.iter().copied())
        .output()
        .expect("perfgate plan");
    let line = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(line.lines().next().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

#[test]
fn sweep_and_ab_cases_plan_their_servers_and_placement() {
    // `steps` holds, per case, its steps: `kind`, `argv`, `env`.
    let step = |p: &Value, case: usize, kind: &str| -> Value {
        p["steps"][case]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["kind"] == kind).cloned())
            .unwrap_or(Value::Null)
    };
    let argv = |s: &Value| -> String {
        s["argv"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let p = plan("tiny_llama_cpp-sweep-llama.cpp-pg:512,128-p:128-r:3", &[]);
    assert_eq!(p["ok"], true, "{p}");
    assert_eq!(
        p["cases"],
        serde_json::json!([
            "tiny_llama_cpp-sweep-llama.cpp-p:128-r:3",
            "tiny_llama_cpp-sweep-llama.cpp-pg:512,128-r:3"
        ])
    );
    let server = argv(&step(&p, 0, "server"));
    // One slot, a context as long as the longest test (512 + 128).
    assert!(server.contains("-np 1 -c 640"), "{server}");
    assert!(!server.contains("-md"), "{server}");
    let sweep = argv(&step(&p, 1, "sweep"));
    assert!(
        sweep.contains(" sweep --url {server.url} ") && sweep.contains("--pg 512,128 -r 3"),
        "{sweep}"
    );
    assert!(sweep.contains("-o jsonl"), "{sweep}");

    let name = "tiny_llama_cpp-ab-llama.cpp-draft:tiny_unrelated_llama_cpp-bs:2-gpus:6,2";
    let p = plan(name, &[]);
    assert!(
        p["blocked"]
            .to_string()
            .contains("give --gpus N (PERF_GPUS)"),
        "no GPU count known: {p}"
    );
    let p = plan(name, &[("PERF_GPUS", "7")]);
    assert!(
        p["blocked"].to_string().contains("but 7 are available"),
        "{p}"
    );
    let p = plan(name, &[("PERF_GPUS", "8")]);
    assert!(p.get("blocked").is_none(), "{p}");
    assert_eq!(
        step(&p, 0, "server_a")["env"]["CUDA_VISIBLE_DEVICES"],
        "0,1,2,3,4,5"
    );
    assert_eq!(
        step(&p, 0, "server_b")["env"]["CUDA_VISIBLE_DEVICES"],
        "6,7"
    );
    let b = argv(&step(&p, 0, "server_b"));
    assert!(
        b.contains("-np 2")
            && b.contains("-md /models/tiny-unrelated.gguf --spec-type draft-simple"),
        "{b}"
    );
    assert!(!argv(&step(&p, 0, "server_a")).contains("-md"));
    // Inside the job's own devices.
    let p = plan(
        name,
        &[
            ("PERF_GPUS", "8"),
            ("CUDA_VISIBLE_DEVICES", "1,2,3,4,5,6,7"),
        ],
    );
    assert!(
        p["blocked"]
            .to_string()
            .contains("CUDA_VISIBLE_DEVICES=1,2,3,4,5,6,7"),
        "{p}"
    );
    // A model the catalog does not know, a recipe that takes no draft.
    let p = plan("nope_model-sweep-llama.cpp-p:8", &[]);
    assert!(
        p["blocked"].to_string().contains("`nope_model` is not in"),
        "{p}"
    );
    let p = plan("tiny_llama_cpp-ab-vllm-draft:tiny_llama_cpp", &[]);
    assert!(
        p["blocked"].to_string().contains("takes no draft model"),
        "{p}"
    );
}

#[test]
fn the_yaml_test_case_form_in_a_test_db_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("list.yml");
    std::fs::write(
        &list,
        "version: 0.0.1\nctx:\n- tests:\n  - sweep: {model: tiny_llama_cpp, server: llama.cpp, p: [64], r: 2}\n  - sweep: {model: tiny_llama_cpp, server: llama.cpp, q: [64]}\n  - ab: {model: tiny_llama_cpp, server: llama.cpp}\n  - bench: {model: x}\n",
    )
    .expect("list");
    let o = Command::new(PERFGATE)
        .args(["lint", list.to_str().unwrap()])
        .output()
        .expect("perfgate lint");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let at = |line: u32| format!("{}:{line}: error: ", list.display());
    assert!(
        t.contains(&format!("{}sweep: unknown field `q`", at(5))),
        "{t}"
    );
    assert!(
        t.contains(&format!("{}ab: missing field `draft`", at(6))),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "{}`bench:`: a test-case mapping is `sweep:` or `ab:`",
            at(7)
        )),
        "{t}"
    );
    assert!(!t.contains(&at(4)), "the first entry is fine: {t}");
    // The good entry runs as its canonical name.
    std::fs::write(
        &list,
        "version: 0.0.1\nctx:\n- tests:\n  - sweep: {model: tiny_llama_cpp, server: llama.cpp, p: [64], r: 2}\n",
    )
    .expect("list");
    let out = dir.path().join("out");
    let o = Command::new(PERFGATE)
        .args([
            "run",
            "--test-list",
            list.to_str().unwrap(),
            "--dry-run",
            "--output-dir",
            out.to_str().unwrap(),
        ])
        .output()
        .expect("perfgate run --dry-run");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o)
            .contains("test perf/test_perf.py::test_perf[tiny_llama_cpp-sweep-llama.cpp-p:64-r:2]"),
        "{}",
        text(&o)
    );
}

#[test]
fn ab_sharegpt_prompts_and_vllm_acceptance_from_its_metrics() {
    let a = Mock::start(&["--kind", "vllm"]);
    let b = Mock::start(&["--kind", "vllm", "--draft-accept", "0.5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("sharegpt.json");
    std::fs::write(
        &data,
        r#"[{"conversations": [{"from": "human", "value": "What is the capital of France?"}, {"from": "gpt", "value": "Paris."}]},
            {"conversations": [{"from": "human", "value": "Name three colours."}, {"from": "gpt", "value": "Red, green and blue."}]},
            {"conversations": [{"from": "human", "value": "One turn only"}]}]"#,
    )
    .expect("dataset");
    let out = dir.path().join("out");
    let o = perfgate(
        &[
            "ab",
            "--a",
            &a.url,
            "--b",
            &b.url,
            "--input-data",
            data.to_str().unwrap(),
            "--osl",
            "16",
            "--ignore-eos",
            "--num-prompts",
            "8",
            "--blocks",
            "2",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let (results, _, _) = check_ab_files(&out, ["target", "speculative"]);
    assert!(
        results["prompts"]["source"]
            .as_str()
            .unwrap()
            .contains("(sharegpt)"),
        "{}",
        results["prompts"]
    );
    // Two usable conversations (one has a single turn), used again in order to make eight.
    assert_eq!(results["prompts"]["count"], 8);
    assert!(
        results["prompts"]["notes"]
            .to_string()
            .contains("used again")
    );
    let acc = &results["b"]["acceptance"];
    assert!(
        acc["source"].as_str().unwrap().starts_with("vLLM /metrics"),
        "{acc}"
    );
    assert_eq!(acc["drafted"], 8 * 16);
    assert!((acc["rate"].as_f64().unwrap() - 0.5).abs() <= 0.02, "{acc}");
    assert!(results["a"]["acceptance"].is_null());
    assert_eq!(a.prompts(), b.prompts(), "the same prompts to both sides");
}

#[test]
fn ab_tensorrt_llm_acceptance_length_from_its_final_choice() {
    let a = Mock::start(&["--kind", "trtllm"]);
    let b = Mock::start(&["--kind", "trtllm", "--avg-decoded", "2.75"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = perfgate(
        &[
            "ab",
            "--a",
            &a.url,
            "--b",
            &b.url,
            "--tokenizer",
            &tokenizer(),
            "--isl",
            "8",
            "--osl",
            "8",
            "--num-prompts",
            "4",
            "--blocks",
            "2",
            "--warmup",
            "0",
            "--ignore-eos",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let (results, sides, _) = check_ab_files(&out, ["target", "speculative"]);
    // TensorRT-LLM reports no drafted/accepted counts, only the tokens decoded per step.
    assert_eq!(
        results["b"]["acceptance"],
        serde_json::json!({
            "rate": null,
            "drafted": null,
            "accepted": null,
            "acceptance_length": 2.75,
            "source": "TensorRT-LLM avg_decoded_tokens_per_iter"
        })
    );
    assert!(results["a"]["acceptance"].is_null(), "{}", results["a"]);
    let per_request = |side: &Value| -> Vec<Value> {
        side["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["avg_decoded_tokens_per_iter"].clone())
            .collect()
    };
    assert_eq!(per_request(&sides[0]), vec![Value::Null; 4]);
    assert_eq!(per_request(&sides[1]), vec![serde_json::json!(2.75); 4]);
    let console = String::from_utf8_lossy(&o.stdout);
    let line = console
        .lines()
        .find(|l| l.trim_start().starts_with("acceptance"))
        .unwrap_or_else(|| panic!("no acceptance row: {console}"));
    assert!(
        line.contains("not reported") && line.contains("2.75 tokens/step"),
        "{line}"
    );
}
