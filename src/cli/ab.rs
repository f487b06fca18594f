//! `perfgate ab`: the clap shell over [`crate::ab::run`].
//!
//! Exit status: 0 when every request of both sides succeeded; 1 when one failed; 3 when a
//! server could not be reached or stopped answering (the finished blocks are written); 4 when
//! the outputs could not be written; 2 for usage errors; 128+N when stopped by signal N (130:
//! Ctrl-C, 143: SIGTERM; the finished blocks are written first).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::exit;
use crate::ab::{AbError, AbMode, AbOptions, AbWriter, Monitor, Side};
use crate::serve::options::{DatasetSource, Endpoint, ServerKind, Target};
use crate::telemetry::{PowerChoice, PowerOptions};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum AbEndpoint {
    /// OpenAI `/v1/completions` (token-id prompts where the server takes them).
    Completions,
    /// OpenAI `/v1/chat/completions`.
    Chat,
}

#[derive(Debug, clap::Args)]
#[command(
    about = "The same prompts through two servers (A/B), with the speed-up's confidence interval",
    long_about = "The same prompts through two servers (A/B: e.g. a target model alone and with \
        a draft model for speculative decoding), interleaved in blocks (A B, B A, A B, ...) so \
        drift hits both alike. Batch mode sends a fixed prompt set (--num-prompts) to each side, \
        --batch-size in flight; time mode sends --request-rate requests/s for --duration per \
        side. Per side: TTFT, E2E latency, tokens/s, prompt/generated/total tokens, the \
        acceptance of speculative decoding where the server reports it (llama.cpp's draft_n / \
        draft_n_accepted, vLLM's /metrics, TensorRT-LLM's acceptance length; send temperature 0 \
        — perfgate always does — or a draft is verified by sampling and even a perfect one is \
        often rejected), and with --gpu-monitor the energy (total, mean and peak power), \
        utilisation, memory and peak temperature while the side ran. The speed-up (B's output \
        tokens/s over A's) comes with a confidence interval from the paired blocks.\n\n\
        Files in --output-dir, rewritten after every block: benchmark_results.json (the \
        comparison), benchmark_results_<label>.json per side (_target and _speculative by \
        default: blocks and every request) and benchmark_results_gpu.json (the traces).\n\n\
        Exit status: 0 every request succeeded; 1 a request failed; 3 a server could not be \
        reached or stopped answering (finished blocks are written); 4 the outputs could not be \
        written; 2 usage; 128+N signal N, 130 Ctrl-C \
        (finished blocks written first)."
)]
pub struct AbArgs {
    /// Side A's base URL (http://host:port).
    #[arg(long = "a", value_name = "URL_A")]
    pub a: String,
    /// Side B's base URL.
    #[arg(long = "b", value_name = "URL_B")]
    pub b: String,
    /// Side A's name in the outputs (and its file, benchmark_results_<label>.json).
    #[arg(long, default_value = "target")]
    pub label_a: String,
    #[arg(long, default_value = "speculative")]
    pub label_b: String,
    /// Model names the requests carry (default: each server's first of /v1/models).
    #[arg(long, default_value = "")]
    pub model_a: String,
    #[arg(long, default_value = "")]
    pub model_b: String,
    /// auto|trtllm|vllm|sglang|llama.cpp|transformers|generic, for both sides.
    #[arg(long, default_value = "auto")]
    pub server_kind: String,
    #[arg(long, value_enum, default_value = "completions")]
    pub endpoint: AbEndpoint,
    /// The model's tokenizer: synthetic prompts, client-side token counts.
    #[arg(long, value_name = "DIR")]
    pub tokenizer: Option<PathBuf>,

    /// Prompts: ShareGPT JSON/JSONL, `input` JSONL, prepare_dataset or trtllm_custom JSONL.
    #[arg(long, value_name = "FILE", conflicts_with = "isl")]
    pub input_data: Option<PathBuf>,
    /// Synthetic prompts of this many tokens (needs --tokenizer and --osl).
    #[arg(long, value_name = "N")]
    pub isl: Option<u64>,
    /// Output tokens asked for (synthetic prompts; files without an output length).
    #[arg(long, value_name = "N")]
    pub osl: Option<u64>,

    /// Batch mode: prompts sent to each side.
    #[arg(long, value_name = "N", conflicts_with_all = ["request_rate", "duration"])]
    pub num_prompts: Option<u64>,
    /// Time mode: requests per second (Poisson), with --duration.
    #[arg(long, value_name = "R", requires = "duration")]
    pub request_rate: Option<f64>,
    /// Time mode: how long each side is driven (e.g. 300s, 5m).
    #[arg(long, value_name = "TIME", value_parser = super::serve_bench::parse_duration, requires = "request_rate")]
    pub duration: Option<Duration>,
    /// Requests in flight per side.
    #[arg(long, default_value_t = 1)]
    pub batch_size: u32,
    /// Blocks per side (the speed-up's interval needs two or more).
    #[arg(long, default_value_t = 8)]
    pub blocks: u32,
    /// Unmeasured requests per side before the first block.
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Force every output length (ignore_eos or the server's equivalent).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Of the speed-up's interval.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,

    /// Sample GPU (or other) power, utilisation, memory and temperature while each side runs.
    #[arg(long)]
    pub gpu_monitor: bool,
    /// The power sources --gpu-monitor reads.
    #[arg(long, value_enum, default_value = "nvml")]
    pub power: PowerChoice,
    /// Read sysfs under this directory instead of `/`.
    #[arg(long, env = "PERFGATE_SYSFS_ROOT", value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// GPUs sampled, by NVML index (default: all).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub monitor_gpus: Vec<u32>,
    /// Sampling interval in milliseconds (at least 10).
    #[arg(long, default_value_t = 200)]
    pub interval_ms: u64,

    #[arg(long, value_name = "DIR", default_value = "ab_results")]
    pub output_dir: PathBuf,
    /// Seeds the synthetic prompts and the arrival times.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A request not finished after this long fails.
    #[arg(long, value_name = "TIME", default_value = "600s", value_parser = super::serve_bench::parse_duration)]
    pub request_timeout: Duration,
    /// Wait for each server's health check this long (0: one probe).
    #[arg(long, value_name = "TIME", default_value = "0s", value_parser = super::serve_bench::parse_duration)]
    pub ready_timeout: Duration,
    /// No progress line per block.
    #[arg(long)]
    pub no_progress: bool,
}

/// Builds the library's options (`Err`: a usage error).
pub fn options(a: &AbArgs) -> Result<AbOptions, AbError> {
    let usage = |m: String| AbError::Usage(m);
    let kind = ServerKind::parse(&a.server_kind).ok_or_else(|| {
        usage(format!(
            "--server-kind `{}`: expected auto, trtllm, vllm, sglang, llama.cpp, transformers or \
             generic",
            a.server_kind
        ))
    })?;
    let endpoint = match a.endpoint {
        AbEndpoint::Completions => Endpoint::Completions,
        AbEndpoint::Chat => Endpoint::Chat,
    };
    let target = |url: &str, model: &str| Target {
        server_kind: kind,
        request_timeout: a.request_timeout,
        ready_timeout: a.ready_timeout,
        ..Target::new(url.to_string(), endpoint, model.to_string())
    };
    let prompts = match (&a.input_data, a.isl) {
        (Some(p), _) => DatasetSource::File {
            path: p.clone(),
            osl: a.osl,
        },
        (None, Some(isl)) => DatasetSource::Synthetic {
            isl,
            osl: a
                .osl
                .ok_or_else(|| usage("synthetic prompts need --osl as well as --isl".into()))?,
            isl_stdev: 0,
            osl_stdev: 0,
        },
        (None, None) => {
            return Err(usage(
                "no prompts: give --input-data FILE or --isl N --osl N (synthetic)".into(),
            ));
        }
    };
    let mode = match (a.num_prompts, a.request_rate, a.duration) {
        (_, Some(rate), Some(duration)) => AbMode::Time { rate, duration },
        (Some(n), _, _) => AbMode::Batch { num_prompts: n },
        _ => AbMode::Batch { num_prompts: 100 },
    };
    let monitor = a.gpu_monitor.then(|| Monitor {
        power: match &a.sysfs_root {
            Some(root) => PowerOptions::with_root(a.power, root),
            None => PowerOptions::new(a.power),
        },
        gpus: a.monitor_gpus.clone(),
        interval: Duration::from_millis(a.interval_ms),
    });
    Ok(AbOptions {
        a: Side {
            label: a.label_a.clone(),
            target: target(&a.a, &a.model_a),
        },
        b: Side {
            label: a.label_b.clone(),
            target: target(&a.b, &a.model_b),
        },
        prompts,
        tokenizer: a.tokenizer.clone(),
        mode,
        batch_size: a.batch_size,
        blocks: a.blocks,
        warmup: a.warmup,
        ignore_eos: a.ignore_eos,
        monitor,
        output_dir: a.output_dir.clone(),
        seed: a.seed,
        confidence: a.confidence,
        progress: !a.no_progress,
    })
}

/// The one table's status of an error (src/cli/exit.rs).
fn status(e: &AbError) -> ExitCode {
    exit::of_error(e.is_usage(), matches!(e, AbError::Write { .. }))
}

/// Runs the command; every outcome is an exit status (errors are printed here).
pub fn run_cli(a: AbArgs) -> anyhow::Result<ExitCode> {
    let opts = match options(&a) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ab: error: {e}");
            return Ok(status(&e));
        }
    };
    crate::runner::signals::install();
    let mut writer = match AbWriter::create(&opts) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("ab: error: {e}");
            return Ok(ExitCode::from(exit::INTERNAL));
        }
    };
    let report = match crate::ab::run(&opts, &mut writer) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ab: error: {e}");
            return Ok(status(&e));
        }
    };
    print!("{}", crate::ab::output::console(&opts, &report));
    eprintln!("ab: results in {}", writer.results_path().display());
    if let Some(why) = &report.stopped {
        eprintln!("ab: stopped: {why}; the finished blocks are written");
    }
    if report.interrupted {
        // The table's 128+N for the signal seen (143 for SIGTERM), as serve-bench exits.
        return Ok(exit::code(exit::interrupted().unwrap_or(128 + 2)));
    }
    let failed: u64 = report.figures.iter().map(|f| f.failed).sum();
    if failed > 0 {
        for f in &report.figures {
            for (class, n) in &f.errors {
                eprintln!("ab: {}: {n} request(s) failed with {class}", f.label);
            }
        }
    }
    // A server that stopped answering left tests unmeasured; failed requests are a check
    // that failed.
    if report.stopped.is_some() {
        return Ok(ExitCode::from(exit::TEST_FAILED));
    }
    if failed > 0 {
        return Ok(ExitCode::from(exit::GATE_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}
