//! serve-bench against a real llama.cpp `llama-server` (docs/llama-server.md): the test starts
//! its own server through `ci/llama-server-up.sh --no-build` and stops it through
//! `ci/llama-server-down.sh` (a drop guard; `--owner-pid` stops it too if this process dies).
//!
//! The build is cached per machine by `ci/llama-server-up.sh --install-only` (`.ci/run` runs it
//! before the self tests; 10–25 minutes the first time). This test installs nothing: without
//! the cache it fails at once, naming that command. It is never skipped.
//!
//! The server serves `tiny`, whose vocabulary is the tokenizer fixture `tiny-bpe`, so the
//! client's prompt token counts are the server's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use perfgate::serve::options::{
    Arrival, BenchOptions, DatasetSource, Endpoint, LoadLevel, LoadOptions, MetricOptions,
    OutputOptions, ServerKind, Stop, Target,
};
use perfgate::serve::{LevelReport, RequestRecord};
use serde_json::Value;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("ci")
        .join(name)
}

/// Where the scripts keep state files and logs: their default, set explicitly so a
/// `LLAMA_SERVER_STATE_DIR` in the caller's environment cannot move it away from this test.
fn state_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/llama-server")
}

/// A llama-server of this test process; stopped (and its log removed, unless the test failed)
/// when dropped.
struct LlamaServer {
    name: String,
    url: String,
    pid: u32,
    tokenizer: PathBuf,
    log: PathBuf,
}

impl LlamaServer {
    fn up(name: &str) -> LlamaServer {
        let name = format!("selftest-{name}-{}", std::process::id());
        let out = Command::new(script("llama-server-up.sh"))
            .args(["--no-build", "--name", &name, "--owner-pid"])
            .arg(std::process::id().to_string())
            .env("LLAMA_SERVER_STATE_DIR", state_dir())
            .output()
            .expect("run ci/llama-server-up.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "ci/llama-server-up.sh --no-build failed (status {:?}); a missing build is a \
             failure here, not a skip:\n{stderr}",
            out.status.code()
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let state_path = state_dir().join(format!("{name}.json"));
        let state: Value = serde_json::from_str(
            &std::fs::read_to_string(&state_path)
                .unwrap_or_else(|e| panic!("{}: {e}\n{stderr}", state_path.display())),
        )
        .expect("the state file is JSON");
        assert_eq!(state["url"], url.as_str(), "{state}");
        let server = LlamaServer {
            name,
            url,
            pid: state["pid"]
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .expect("pid"),
            tokenizer: PathBuf::from(state["tokenizer"].as_str().expect("tokenizer")),
            log: PathBuf::from(state["log"].as_str().expect("log")),
        };
        assert!(
            server.url.starts_with("http://127.0.0.1:"),
            "{}",
            server.url
        );
        server
    }
}

impl LlamaServer {
    /// CPU seconds the server has used so far (all its threads, user and system).
    fn cpu_s(&self) -> f64 {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // The fields after the command name, which may hold spaces, start after its `)`.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the `)`.
        let ticks = |i: usize| -> f64 {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{path}: no field {i} after the name in `{stat}`"))
        };
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (ticks(11) + ticks(12)) / hz
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = Command::new(script("llama-server-down.sh"))
            .args(["--name", &self.name])
            .env("LLAMA_SERVER_STATE_DIR", state_dir())
            .output();
        if std::thread::panicking() {
            eprintln!("llama-server log kept: {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

const ISL: u64 = 64;
const OSL: u64 = 128;

fn options(server: &LlamaServer, endpoint: Endpoint, levels: Vec<LoadLevel>) -> BenchOptions {
    BenchOptions {
        target: Target {
            ready_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            ..Target::new(server.url.clone(), endpoint, "")
        },
        dataset: DatasetSource::Synthetic {
            isl: ISL,
            osl: OSL,
            isl_stdev: 0,
            osl_stdev: 0,
        },
        tokenizer: Some(server.tokenizer.clone()),
        load: LoadOptions {
            levels,
            arrival: Arrival::Poisson,
            stop: Stop::Iterations(12),
            warmup: 2,
            seed: 0,
        },
        metrics: MetricOptions {
            ignore_eos: true,
            ..MetricOptions::default()
        },
        outputs: OutputOptions::default(),
        client_threads: 1,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    assert!(n > 0, "no values");
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn timing(r: &RequestRecord, key: &str) -> f64 {
    let t = r
        .server_timings
        .as_ref()
        .unwrap_or_else(|| panic!("request {}: no llama.cpp timings", r.request_id));
    t.get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("request {}: no `{key}` in {t}", r.request_id))
}

/// What must hold of every level against llama-server, and the client's TTFT and TPOT against
/// the `timings` the server put on each request's final event.
///
/// llama.cpp's `prompt_ms` runs from its slot starting the prompt to the first token sampled,
/// `predicted_ms` from the first token to the last one sampled, and (in this build)
/// `predicted_per_token_ms` = `predicted_ms / (predicted_n - 1)`: the server's own TPOT, by
/// perfgate's definition. The client sees each interval later by one delivery (the server's
/// HTTP thread writing, the kernel, the client's reading), so:
/// - `prompt_ms` <= TTFT for every request, exactly (the prompt runs inside the client's
///   interval; 0.001 ms for the server's rounding);
/// - the median of TTFT - `prompt_ms` is what TTFT adds for HTTP, queueing for a batch and
///   delivery: 0.8-1.2 ms at 1 stream, 1.3-1.6 ms at 2, 1.8-2.4 ms at 4 and 3.5-3.7 ms for
///   chat (its template and tokenization) measured on the 2-core development machine
///   (single requests up to 10 ms at 4 streams); asserted below 10 ms, which a client that
///   stamped the first token late (a role chunk taken for content, a read loop that lagged)
///   would not meet;
/// - the median over a level of TPOT / `predicted_per_token_ms` is 1: 0.998-1.004 measured
///   (each request 0.98-1.04, each TPOT 0.2-1.1 ms over 127 gaps, so one 1 ms delivery jitter
///   is 1-4 %); asserted within 5 %, medians because a single request's first or last token
///   may be delivered a scheduling slice late on a machine shared with other builds.
fn check_level(level: &LevelReport, what: &str) -> (f64, f64) {
    let s = &level.summary;
    assert_eq!(s.failed, 0, "{what}: {:?}", s.errors);
    assert_eq!(s.completed, s.total, "{what}");
    assert_eq!(
        s.osl_mismatch, 0,
        "{what}: ignore_eos gives exactly {OSL} tokens"
    );
    assert_eq!(s.total_output_tokens, OSL * s.completed, "{what}");
    assert_eq!(
        s.prompt_token_disagreement, 0,
        "{what}: token-id prompts: the server counts the ids sent"
    );
    // Random weights emit token sequences BPE would never produce ("th" + "e"), so the
    // generated text re-tokenizes to another count: a note, since the figures use the
    // server's count. Nothing may make the level invalid, the client's lag aside.
    for reason in &s.invalid {
        assert!(
            reason.starts_with("client lagged"),
            "{what}: invalid for gating: {reason}"
        );
    }
    let mut ttft_gap = Vec::new();
    let mut tpot_ratio = Vec::new();
    for r in &level.records {
        let d = r.derive(true);
        let ttft = d.ttft_ms.expect("TTFT");
        let tpot = d.tpot_ms.expect("TPOT");
        assert_eq!(timing(r, "predicted_n"), OSL as f64, "{what}");
        if r.prompt_ids {
            // cache_prompt: false, so every prompt token is computed again.
            assert_eq!(timing(r, "prompt_n"), ISL as f64, "{what}");
            assert_eq!(timing(r, "cache_n"), 0.0, "{what}");
        }
        let prompt_ms = timing(r, "prompt_ms");
        assert!(
            prompt_ms <= ttft + 0.001,
            "{what}: the server's prompt took {prompt_ms} ms, longer than the client's TTFT \
             {ttft} ms"
        );
        ttft_gap.push(ttft - prompt_ms);
        tpot_ratio.push(tpot / timing(r, "predicted_per_token_ms"));
    }
    let (gap, ratio) = (median(ttft_gap), median(tpot_ratio));
    eprintln!(
        "serve_real {what}: {} requests, median TTFT {:.2} ms, TTFT - prompt_ms median {gap:.3} \
         ms, TPOT / predicted_per_token_ms median {ratio:.4}, output {:.0} tok/s, median TPOT \
         {:.3} ms",
        s.completed,
        s.ttft_ms.median.unwrap_or(0.0),
        s.output_throughput,
        s.tpot_ms.median.unwrap_or(0.0),
    );
    assert!(
        gap < 10.0,
        "{what}: TTFT exceeds the server's prompt time by {gap:.2} ms (median)"
    );
    assert!(
        (ratio - 1.0).abs() <= 0.05,
        "{what}: TPOT / the server's predicted_per_token_ms = {ratio:.4} (median)"
    );
    (s.output_throughput, s.interactivity.median.expect("TPOT"))
}

#[test]
fn serve_real_llama_server_completions_sweep_and_chat() {
    let started = Instant::now();
    let server = LlamaServer::up("sweep");

    // Chat, streaming: the ids go as decoded text through the ChatML template. First, so it
    // also warms the server up for the sweep.
    let report = perfgate::serve::run(
        &options(&server, Endpoint::Chat, vec![LoadLevel::Concurrency(2)]),
        &mut |_, _| Ok(()),
    )
    .expect("serve-bench chat against llama-server");
    check_level(&report.levels[0], "chat concurrency 2");

    let levels = vec![
        LoadLevel::Concurrency(1),
        LoadLevel::Concurrency(2),
        LoadLevel::Concurrency(4),
    ];
    // Levels of equal time (not of equal request counts), so a burst of load from another
    // process on this machine weighs the same on each.
    let mut sweep = options(&server, Endpoint::Completions, levels);
    sweep.load.stop = Stop::Duration(Duration::from_millis(1500));
    sweep.load.warmup = 0;
    // The server's CPU time at the end of each level (the callback runs between levels).
    let mut cpu = vec![server.cpu_s()];
    let report = perfgate::serve::run(&sweep, &mut |_, _| {
        cpu.push(server.cpu_s());
        Ok(())
    })
    .expect("serve-bench against llama-server");
    assert_eq!(report.info.server_kind, ServerKind::LlamaCpp);
    let figures: Vec<(f64, f64)> = report
        .levels
        .iter()
        .map(|l| check_level(l, &format!("completions {}", l.summary.level.label())))
        .collect();
    // Every slot really ran at once: at concurrency 4 the records overlap four deep.
    let top = &report.levels[2].records;
    let deepest = top
        .iter()
        .map(|a| {
            top.iter()
                .filter(|b| b.t_send_ns <= a.t_send_ns && a.t_send_ns < b.t_end_ns)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert_eq!(deepest, 4, "requests in flight at concurrency 4");

    // Throughput against concurrency. On a GPU it rises; this server computes on one CPU
    // thread (-t 1, the second core is the client's), where a batch of 4 costs nearly 4 times
    // a batch of 1 (the model is far too small for weight reads to dominate), so total output
    // tok/s barely moves: 0.89-2.0 times from 1 to 4 streams in 22 runs on the 2-core
    // development machine, once 0.72 with levels of 0.2 s. That wall-clock figure also moves
    // with whatever else the machine runs (a 1.5 s level at load average 5 may lose half its
    // CPU), so the gate is on output tokens per CPU-second of the server (1.02-1.46 times in
    // 8 runs, the whole suite running beside it in one): batching must not cost throughput (4
    // streams make at least 0.8 of one stream's tokens per CPU-second), and each user's speed
    // falls as the streams share the thread (median 1000/TPOT at 4 streams below 0.8 of one
    // stream's; 0.22-0.47 measured).
    let per_cpu: Vec<f64> = report
        .levels
        .iter()
        .zip(cpu.windows(2))
        .map(|(l, w)| l.summary.total_output_tokens as f64 / (w[1] - w[0]).max(0.01))
        .collect();
    let (tput_1, user_1) = figures[0];
    let (tput_4, user_4) = figures[2];
    eprintln!(
        "serve_real: concurrency 1 -> 4: output tok/s {tput_1:.0} -> {tput_4:.0} ({:.2}x), per \
         server CPU-second {:.0} -> {:.0} ({:.2}x), per user {user_1:.0} -> {user_4:.0} ({:.2}x)",
        tput_4 / tput_1,
        per_cpu[0],
        per_cpu[2],
        per_cpu[2] / per_cpu[0],
        user_4 / user_1
    );
    assert!(
        per_cpu[2] >= 0.8 * per_cpu[0],
        "output tokens per server CPU-second at concurrency 4 ({:.0}) below 0.8 x concurrency \
         1 ({:.0})",
        per_cpu[2],
        per_cpu[0]
    );
    assert!(
        user_4 < 0.8 * user_1,
        "per-user tok/s at concurrency 4 ({user_4:.0}) not below 0.8 x concurrency 1 \
         ({user_1:.0})"
    );
    eprintln!(
        "serve_real: server up, chat and sweep in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn serve_real_no_build_fails_at_once_without_the_cache() {
    // An empty cache: `--no-build` must neither install nor build, and must say what to run.
    let cache = tempfile::tempdir().expect("tempdir");
    let out = Command::new(script("llama-server-up.sh"))
        .args(["--no-build", "--name", "never"])
        .env("PERFGATE_CACHE", cache.path())
        .output()
        .expect("run ci/llama-server-up.sh");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not cached") && err.contains("ci/llama-server-up.sh --install-only"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no URL printed");
    assert!(
        is_empty_dir(cache.path()),
        "nothing was installed into the cache"
    );
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
}
