//! `perfgate sweep` and `perfgate ab` against real llama.cpp servers (ci/llama-server-up.sh:
//! the tiny random-weight models, cached on the machine after the first build), and both as
//! test cases through the harness, servers started from the llama.cpp recipe.
//!
//! The A/B's draft models: `tiny` drafting for itself must be accepted almost always, the
//! unrelated `tiny-unrelated` almost never (perfgate sends `temperature: 0`; at llama.cpp's
//! default temperature even a perfect draft is rejected about half the time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::sweep_ab::{perfgate, read_json, text, tokenizer};

const PERFGATE: &str = env!("CARGO_BIN_EXE_perfgate");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A llama-server started by ci/llama-server-up.sh for this test process (its watchdog stops
/// it if the process dies), stopped with ci/llama-server-down.sh when dropped.
struct LlamaServer {
    name: String,
    url: String,
    state: tempfile::TempDir,
}

impl LlamaServer {
    fn up(tag: &str, args: &[&str]) -> LlamaServer {
        let state = tempfile::tempdir().expect("tempdir");
        let name = format!("{tag}-{}", std::process::id());
        let out = Command::new(repo().join("ci/llama-server-up.sh"))
            .args([
                "--name",
                &name,
                "--owner-pid",
                &std::process::id().to_string(),
            ])
            .args(args)
            .env("LLAMA_SERVER_STATE_DIR", state.path())
            .output()
            .expect("ci/llama-server-up.sh runs");
        assert!(
            out.status.success(),
            "llama-server-up {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(url.starts_with("http://"), "{url}");
        LlamaServer { name, url, state }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("ci/llama-server-down.sh"))
            .args(["--name", &self.name])
            .env("LLAMA_SERVER_STATE_DIR", self.state.path())
            .output();
    }
}

#[test]
fn real_sweep_of_llama_server() {
    let server = LlamaServer::up("sweep", &["--parallel", "1", "--ctx", "1024"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = perfgate(
        &[
            "sweep",
            "--url",
            &server.url,
            "--tokenizer",
            &tokenizer(),
            "-p",
            "32",
            "128",
            "-n",
            "16",
            "-pg",
            "64,16",
            "-r",
            "3",
            "--power",
            "auto",
            "-o",
            "json",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    // -o json: the summary array on standard output, as in the file.
    let printed: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let summary_path = std::fs::read_dir(&out)
        .expect("out")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("trt_bench_summary_"))
        })
        .expect("the summary");
    let summary = read_json(&summary_path);
    assert_eq!(printed, summary);
    let tests = summary.as_array().expect("array");
    assert_eq!(tests.len(), 4);
    for t in tests {
        assert_eq!(
            (t["completed"].as_u64(), t["failed"].as_u64()),
            (Some(3), Some(0)),
            "{t}"
        );
        assert_eq!(t["server_kind"], "llama.cpp");
        assert!(t["avg_ts"].as_f64().unwrap() > 0.0);
        let data = read_json(&out.join(t["data_file"].as_str().unwrap()));
        // Token-id prompts: the server counts exactly what was sent, and generates exactly
        // what was asked (ignore_eos).
        for r in data["time"]["repetitions"].as_array().unwrap() {
            assert_eq!(r["prompt_tokens"], t["prompt_tokens_sent"], "{r}");
            assert_eq!(r["gen_tokens"], t["gen_tokens_requested"], "{r}");
        }
        // Energy is what a power source read, or says it was not measured; never made up.
        let measured = data["power"]["measured"].as_array().unwrap();
        if measured.is_empty() {
            assert_eq!(t["energy_measured"], false);
            assert!(t["energy_j"].is_null() && t["avg_power_w"].is_null());
            assert!(
                t["energy_note"]
                    .as_str()
                    .unwrap()
                    .contains("energy not measured"),
                "{t}"
            );
        } else {
            assert_eq!(t["energy_measured"], true, "{t}");
            assert!(t["avg_power_w"].as_f64().unwrap() > 0.0, "{t}");
        }
    }
    // A test longer than the slot's context is refused before anything is sent, naming the
    // limit llama-server gives in /props.
    let o = perfgate(
        &[
            "sweep",
            "--url",
            &server.url,
            "--tokenizer",
            &tokenizer(),
            "-p",
            "2000",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("test pp2000 needs 2001 tokens") && t.contains("at most 1024"),
        "{t}"
    );
}

/// `perfgate ab` of `a` against `b`, its four files checked against their layout; the results.
fn ab(a: &str, b: &str, out: &Path) -> Value {
    let o = perfgate(
        &[
            "ab",
            "--a",
            a,
            "--b",
            b,
            "--tokenizer",
            &tokenizer(),
            "--isl",
            "32",
            "--osl",
            "32",
            "--num-prompts",
            "6",
            "--blocks",
            "2",
            "--ignore-eos",
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Every file in the layout the mock's A/B is checked against.
    let (results, sides, gpu) = super::sweep_ab::check_ab_files(out, ["target", "speculative"]);
    let positions = |v: &Value| -> Vec<u64> {
        v["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["position"].as_u64())
            .collect()
    };
    assert_eq!(positions(&sides[0]), [0, 3], "A B, then B A");
    assert_eq!(positions(&sides[1]), [1, 2]);
    for side in &sides {
        let requests = side["requests"].as_array().unwrap();
        assert_eq!(requests.len(), 6);
        for r in requests {
            assert_eq!(
                (r["prompt_tokens"].as_u64(), r["output_tokens"].as_u64()),
                (Some(32), Some(32)),
                "{r}"
            );
        }
    }
    // The acceptance is the speculative side's requests' draft counts added.
    let added = |key: &str| -> u64 {
        sides[1]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[key].as_u64().unwrap_or_else(|| panic!("{key}: {r}")))
            .sum()
    };
    let acc = &results["b"]["acceptance"];
    assert_eq!(acc["drafted"].as_u64(), Some(added("draft_n")), "{acc}");
    assert_eq!(
        acc["accepted"].as_u64(),
        Some(added("draft_n_accepted")),
        "{acc}"
    );
    assert!(
        sides[0]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["draft_n"].is_null()),
        "no draft on the target side"
    );
    assert_eq!(gpu["monitored"], false);
    results
}

#[test]
fn real_ab_of_llama_server_with_and_without_a_draft() {
    let target = LlamaServer::up("ab-target", &["--parallel", "1"]);
    let same = LlamaServer::up("ab-same", &["--parallel", "1", "--draft", "tiny"]);
    let unrelated = LlamaServer::up(
        "ab-unrelated",
        &["--parallel", "1", "--draft", "tiny-unrelated"],
    );
    let dir = tempfile::tempdir().expect("tempdir");

    let r = ab(&target.url, &same.url, &dir.path().join("same"));
    let acc = &r["b"]["acceptance"];
    assert!(
        acc["rate"].as_f64().unwrap() >= 0.95,
        "tiny drafting for itself: {acc}"
    );
    assert!(acc["drafted"].as_u64().unwrap() > 0);
    assert!(r["a"]["acceptance"].is_null(), "{}", r["a"]);
    for side in ["a", "b"] {
        assert_eq!(r[side]["completed"], 6);
        assert_eq!(r[side]["generated_tokens"], 6 * 32);
        assert_eq!(r[side]["prompt_tokens"], 6 * 32);
    }
    assert!(r["comparison"]["speedup"]["estimate"].as_f64().unwrap() > 0.0);

    let r = ab(&target.url, &unrelated.url, &dir.path().join("unrelated"));
    let acc = &r["b"]["acceptance"];
    assert!(
        acc["rate"].as_f64().unwrap() <= 0.1,
        "an unrelated draft: {acc}"
    );
    assert!(acc["drafted"].as_u64().unwrap() > 0);
}

/// The llama-server binary and the models directory ci/llama-server-up.sh installed.
fn installed() -> (String, PathBuf) {
    let out = Command::new(repo().join("ci/llama-server-up.sh"))
        .arg("--install-only")
        .output()
        .expect("ci/llama-server-up.sh runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix("llama-server-up: installed: "))
        .unwrap_or_else(|| panic!("{err}"));
    let (bin, models) = line
        .split_once(", models in ")
        .unwrap_or_else(|| panic!("{line}"));
    // "…, models in DIR; linked under …" (the links are for test lists; the cache is enough).
    let models = models.split_once("; ").map_or(models, |(m, _)| m);
    (bin.to_string(), PathBuf::from(models.trim()))
}

#[test]
fn real_sweep_and_ab_cases_through_the_harness() {
    let (bin, models) = installed();
    let dir = tempfile::tempdir().expect("tempdir");
    // The models root the catalog expects: the GGUFs and their tokenizer side by side.
    let root = dir.path().join("models");
    std::fs::create_dir_all(&root).expect("mkdir");
    for f in ["tiny.gguf", "tiny-unrelated.gguf"] {
        std::os::unix::fs::symlink(models.join(f), root.join(f)).expect("link");
    }
    std::os::unix::fs::symlink(tokenizer(), root.join("tiny-bpe")).expect("link");
    let list = dir.path().join("list.yml");
    std::fs::write(
        &list,
        "version: 0.0.1\n\
         perf_sweep_ab:\n\
         - tests:\n  \
           - sweep: {model: tiny_llama_cpp, server: llama.cpp, p: [32], n: [8], pg: [[32, 8]], r: 2}\n  \
           - ab: {model: tiny_llama_cpp, server: llama.cpp, draft: tiny_llama_cpp, isl: 16, osl: 16, reqs: 4, blocks: 2}\n",
    )
    .expect("list");
    let out = dir.path().join("out");
    let o = Command::new(PERFGATE)
        .args([
            "run",
            "--test-list",
            list.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ])
        .args(["--server-cmd", &format!("llama.cpp={bin}")])
        .args([
            "--serve-bench-cmd",
            PERFGATE,
            "--models-root",
            root.to_str().unwrap(),
        ])
        .args([
            "--baselines",
            dir.path().join("baselines").to_str().unwrap(),
        ])
        .args(["--no-telemetry", "--test-threads", "1"])
        .env_remove("PERF_TEST_LIST")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .output()
        .expect("perfgate run");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("test result: ok. 2 passed"), "{t}");
    let results: Vec<Value> = std::fs::read_to_string(out.join("results.jsonl"))
        .expect("results.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let metric = |name: &str| -> BTreeMap<String, f64> {
        results
            .iter()
            .filter(|r| r["metric"] == name)
            .map(|r| {
                (
                    r["case"].as_str().unwrap_or_default().to_string(),
                    r["value"].as_f64().unwrap_or(f64::NAN),
                )
            })
            .collect()
    };
    let tps = metric("SWEEP_TOKENS_PER_SECOND");
    assert_eq!(tps.len(), 3, "a case per sweep test: {tps:?}");
    assert!(tps.values().all(|v| *v > 0.0), "{tps:?}");
    assert_eq!(metric("SWEEP_TIME").len(), 3);
    let acceptance = metric("AB_ACCEPTANCE_RATE");
    assert_eq!(acceptance.len(), 1, "{results:?}");
    assert!(acceptance.values().all(|v| *v >= 0.95), "{acceptance:?}");
    assert_eq!(metric("AB_SPEEDUP").len(), 1);
    // Gated by default, and stored in the history like any metric.
    let gate: Vec<Value> = std::fs::read_to_string(out.join("gate.jsonl"))
        .expect("gate.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for m in [
        "SWEEP_TOKENS_PER_SECOND",
        "AB_SPEEDUP",
        "AB_ACCEPTANCE_RATE",
    ] {
        assert!(
            gate.iter().any(|g| g["metric"] == m && g["gated"] == true),
            "{m} not gated: {gate:?}"
        );
    }
    let history = Command::new(PERFGATE)
        .args(["gate", "--format", "json", "--history"])
        .arg(out.join("history.sqlite"))
        .output()
        .expect("perfgate gate");
    let h = String::from_utf8_lossy(&history.stdout);
    assert!(
        h.contains("SWEEP_TOKENS_PER_SECOND") && h.contains("AB_SPEEDUP"),
        "{h}"
    );
    // Every server the run started is gone.
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(root.to_str().unwrap()))
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
}
