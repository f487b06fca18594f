//! serve-bench against a real llama.cpp `llama-server` (ci/llama-server-up.sh starts one and
//! prints its URL). Ignored unless asked for, since it needs that server:
//!
//!     PERFGATE_LLAMA_URL=http://127.0.0.1:PORT PERFGATE_LLAMA_TOKENIZER=DIR \
//!         cargo test --test selftest -- --ignored serve_real
//!
//! The tokenizer must be the one the server's GGUF vocabulary was converted from, so the
//! client's token counts are the server's.

use std::path::PathBuf;
use std::time::Duration;

use perfgate::serve::options::{
    Arrival, BenchOptions, DatasetSource, Endpoint, LoadLevel, LoadOptions, MetricOptions,
    OutputOptions, ServerKind, Stop, Target,
};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (see this file's header)"))
}

fn options(endpoint: Endpoint, levels: Vec<LoadLevel>) -> BenchOptions {
    BenchOptions {
        target: Target {
            ready_timeout: Duration::from_secs(60),
            ..Target::new(env("PERFGATE_LLAMA_URL"), endpoint, "")
        },
        dataset: DatasetSource::Synthetic {
            isl: 64,
            osl: 16,
            isl_stdev: 0,
            osl_stdev: 0,
        },
        tokenizer: Some(PathBuf::from(env("PERFGATE_LLAMA_TOKENIZER"))),
        load: LoadOptions {
            levels,
            arrival: Arrival::Poisson,
            stop: Stop::Iterations(4),
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

#[test]
#[ignore = "needs a running llama-server: PERFGATE_LLAMA_URL, PERFGATE_LLAMA_TOKENIZER"]
fn serve_real_llama_server_completions_sweep() {
    let levels = vec![
        LoadLevel::Concurrency(1),
        LoadLevel::Concurrency(2),
        LoadLevel::Concurrency(4),
    ];
    let report = perfgate::serve::run(&options(Endpoint::Completions, levels), &mut |_, _| Ok(()))
        .expect("serve-bench against llama-server");
    assert_eq!(report.info.server_kind, ServerKind::LlamaCpp);
    let mut last_tput = 0.0;
    for level in &report.levels {
        let s = &level.summary;
        assert_eq!(s.failed, 0, "{:?}", s.errors);
        assert_eq!(
            s.osl_mismatch, 0,
            "ignore_eos gives exactly the length asked"
        );
        assert_eq!(
            s.prompt_token_disagreement, 0,
            "token-id prompts: the server counts what was sent"
        );
        assert!(
            s.output_throughput > last_tput,
            "output throughput rises with concurrency: {} after {last_tput}",
            s.output_throughput
        );
        last_tput = s.output_throughput;
        for r in &level.records {
            let d = r.derive(true);
            let t = r.server_timings.as_ref().expect("llama-server timings");
            let f = |k: &str| t.get(k).and_then(serde_json::Value::as_f64);
            assert_eq!(f("predicted_n"), Some(d.osl as f64));
            // The server's prompt time is inside the client's TTFT.
            let prompt_ms = f("prompt_ms").expect("prompt_ms");
            assert!(
                prompt_ms <= d.ttft_ms.unwrap() + 1.0,
                "{t}: TTFT {:?}",
                d.ttft_ms
            );
            // Its per-token decode time is the client's TPOT, up to scheduling noise.
            let per_token = f("predicted_per_token_ms").expect("predicted_per_token_ms");
            let tpot = d.tpot_ms.unwrap();
            assert!(
                (tpot - per_token).abs() <= 0.3 * per_token + 2.0,
                "TPOT {tpot:.2} ms vs the server's {per_token:.2} ms/token"
            );
        }
    }
}

#[test]
#[ignore = "needs a running llama-server: PERFGATE_LLAMA_URL, PERFGATE_LLAMA_TOKENIZER"]
fn serve_real_llama_server_chat_streaming() {
    let report = perfgate::serve::run(
        &options(Endpoint::Chat, vec![LoadLevel::Concurrency(2)]),
        &mut |_, _| Ok(()),
    )
    .expect("serve-bench against llama-server");
    let s = &report.levels[0].summary;
    assert_eq!(s.failed, 0, "{:?}", s.errors);
    assert_eq!(s.osl_mismatch, 0);
    assert_eq!(s.total_output_tokens, 16 * s.completed);
    assert!(s.ttft_ms.median.is_some() && s.tpot_ms.median.is_some());
}
