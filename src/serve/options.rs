//! What a serve-bench run is told: plain option structs (the CLI in [`super::cli`] and the
//! harness both build these; nothing here knows clap).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The API the requests go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// OpenAI `POST /v1/completions`.
    Completions,
    /// OpenAI `POST /v1/chat/completions`.
    Chat,
    /// Triton's HTTP generate extension: `v2/models/<model>/generate_stream` (streaming) or
    /// `…/generate`.
    Triton,
    /// Triton's gRPC `ModelStreamInfer` (a decoupled model such as TensorRT-LLM's `ensemble`).
    TritonGrpc,
}

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Completions => "completions",
            Endpoint::Chat => "chat",
            Endpoint::Triton => "triton",
            Endpoint::TritonGrpc => "triton-grpc",
        }
    }

    /// upstream benchmark_serving's `--backend` name for the same API (for `--save-result`).
    pub fn backend_name(self) -> &'static str {
        match self {
            Endpoint::Completions => "openai",
            Endpoint::Chat => "openai-chat",
            Endpoint::Triton => "trt-llm",
            Endpoint::TritonGrpc => "triton-grpc",
        }
    }

    pub fn is_triton(self) -> bool {
        matches!(self, Endpoint::Triton | Endpoint::TritonGrpc)
    }
}

/// Which server family the requests are shaped for: what forces the output length, whether a
/// prompt may be token ids, which extra fields it needs or rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    /// Ask the server (`/v1/models` `owned_by`, `/props`, `/v2`), else `Generic`.
    Auto,
    Trtllm,
    Vllm,
    Sglang,
    #[serde(rename = "llama.cpp")]
    LlamaCpp,
    Transformers,
    Triton,
    /// An OpenAI-compatible server perfgate knows nothing special about: `ignore_eos` is sent
    /// (most accept it), prompts are text.
    Generic,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Auto => "auto",
            ServerKind::Trtllm => "trtllm",
            ServerKind::Vllm => "vllm",
            ServerKind::Sglang => "sglang",
            ServerKind::LlamaCpp => "llama.cpp",
            ServerKind::Transformers => "transformers",
            ServerKind::Triton => "triton",
            ServerKind::Generic => "generic",
        }
    }

    pub fn parse(s: &str) -> Option<ServerKind> {
        Some(match s.to_ascii_lowercase().as_str() {
            "auto" => ServerKind::Auto,
            "trtllm" | "trt-llm" | "tensorrt-llm" | "trtllm-serve" => ServerKind::Trtllm,
            "vllm" => ServerKind::Vllm,
            "sglang" => ServerKind::Sglang,
            "llama.cpp" | "llamacpp" | "llama-cpp" | "llama-server" => ServerKind::LlamaCpp,
            "transformers" | "transformers-serve" => ServerKind::Transformers,
            "triton" => ServerKind::Triton,
            "generic" | "openai" => ServerKind::Generic,
            _ => return None,
        })
    }
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL, e.g. `http://localhost:8000` (a trailing `/v1` is accepted and dropped). For
    /// `triton-grpc`, the gRPC address (`http://host:8001`).
    pub url: String,
    pub endpoint: Endpoint,
    /// The `model` field (OpenAI) or the model name in the Triton path / request.
    pub model: String,
    pub server_kind: ServerKind,
    /// Stream the response (SSE / decoupled gRPC). Without streaming there is no TTFT.
    pub streaming: bool,
    /// `Authorization: Bearer …`.
    pub api_key: Option<String>,
    /// JSON object merged into every request body last (overrides what perfgate sets).
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// A request that has not finished after this long fails (`timeout`).
    pub request_timeout: Duration,
    /// A stream that sends nothing for this long fails (`stalled`).
    pub stall_timeout: Duration,
    /// A response body larger than this fails (`too_large`), as does one event larger than it.
    pub max_response_bytes: usize,
    /// Poll the server's health endpoint until it answers 200 for at most this long before the
    /// first request (zero: one probe).
    pub ready_timeout: Duration,
    /// Scrape the server's Prometheus `/metrics` before and after each level (this URL, or
    /// `<url>/metrics` when empty).
    pub scrape_metrics: Option<String>,
}

impl Target {
    pub fn new(url: impl Into<String>, endpoint: Endpoint, model: impl Into<String>) -> Self {
        Target {
            url: url.into(),
            endpoint,
            model: model.into(),
            server_kind: ServerKind::Auto,
            streaming: true,
            api_key: None,
            extra_body: serde_json::Map::new(),
            request_timeout: Duration::from_secs(600),
            stall_timeout: Duration::from_secs(120),
            max_response_bytes: 64 << 20,
            ready_timeout: Duration::ZERO,
            scrape_metrics: None,
        }
    }
}

/// Where the prompts come from.
#[derive(Debug, Clone)]
pub enum DatasetSource {
    /// Random token ids from perfgate's token-norm-dist generator (prepare_dataset's), lengths
    /// `max(1, ceil(normal(mean, stdev)))`; needs a tokenizer (vocabulary and EOS id).
    Synthetic {
        isl: u64,
        osl: u64,
        isl_stdev: u64,
        osl_stdev: u64,
    },
    /// A file: prepare_dataset JSONL (`input_ids`/`output_tokens`), upstream's `trtllm_custom`
    /// JSONL (`input.messages`, `input.max_tokens`), prompt JSONL (`input` and an optional
    /// reference `output`), ShareGPT JSON or JSONL (`conversations`). The format is recognised
    /// from the first record. `osl`: the output length for formats that carry none (else
    /// the reference output's token count).
    File { path: PathBuf, osl: Option<u64> },
    /// Prompts already loaded (a slice of a larger set: an A/B run sends each block of one
    /// prompt set to both sides); `label` names it in the run's description.
    Prepared {
        label: String,
        dataset: std::sync::Arc<super::dataset::Dataset>,
    },
}

/// How requests arrive at a request rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Exponential gaps (burstiness 1).
    Poisson,
    /// Equal gaps.
    Constant,
    /// Gamma-distributed gaps of shape K (vLLM's `--burstiness`; K < 1 burstier, K = 1 Poisson).
    Gamma(f64),
}

impl Arrival {
    /// vLLM's `burstiness` value of this process.
    pub fn burstiness(self) -> Option<f64> {
        match self {
            Arrival::Poisson => Some(1.0),
            Arrival::Gamma(k) => Some(k),
            Arrival::Constant => None,
        }
    }
}

/// One load level of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadLevel {
    /// Closed loop: this many requests in flight; a new one as soon as one finishes.
    Concurrency(u32),
    /// Open loop: requests due at this rate (per second), optionally capped in flight (a due
    /// request then waits, and the wait shows as scheduling lag).
    Rate {
        rate: f64,
        max_concurrency: Option<u32>,
    },
}

impl LoadLevel {
    pub fn label(&self) -> String {
        match self {
            LoadLevel::Concurrency(c) => format!("concurrency {c}"),
            LoadLevel::Rate {
                rate,
                max_concurrency: None,
            } => format!("rate {rate}/s"),
            LoadLevel::Rate {
                rate,
                max_concurrency: Some(c),
            } => format!("rate {rate}/s, concurrency {c}"),
        }
    }

    /// The in-flight cap, if there is one.
    pub fn max_concurrency(&self) -> Option<u32> {
        match *self {
            LoadLevel::Concurrency(c) => Some(c),
            LoadLevel::Rate {
                max_concurrency, ..
            } => max_concurrency,
        }
    }
}

/// When a level stops issuing requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Exactly this many measured requests.
    Count(u64),
    /// Upstream perf-sanity's shape: `concurrency × N` requests (a rate level needs a count).
    Iterations(u64),
    /// Issue requests until this much time has passed, then let those in flight finish.
    Duration(Duration),
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub levels: Vec<LoadLevel>,
    pub arrival: Arrival,
    pub stop: Stop,
    /// Requests sent before the first level, same shapes, at most the first level's
    /// concurrency in flight, all finished before measuring starts; never in the figures.
    pub warmup: u64,
    /// Seeds the arrival schedule and the synthetic dataset.
    pub seed: u64,
}

/// A service-level objective for goodput: a request is good when every SLO holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Slo {
    pub metric: SloMetric,
    /// Milliseconds.
    pub max_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SloMetric {
    Ttft,
    Tpot,
    E2el,
}

impl SloMetric {
    pub fn parse(s: &str) -> Option<SloMetric> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ttft" => Some(SloMetric::Ttft),
            "tpot" => Some(SloMetric::Tpot),
            "e2el" => Some(SloMetric::E2el),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MetricOptions {
    /// Percentiles reported besides the median (default 90, 95, 99).
    pub percentiles: Vec<f64>,
    pub goodput: Vec<Slo>,
    /// Force the output length (`ignore_eos` or the server's equivalent); an output length
    /// other than requested then makes the run invalid for gating.
    pub ignore_eos: bool,
    /// Send lag (due → sent) p99 above this flags the client as the bottleneck.
    pub max_send_lag: Duration,
    /// Event-loop lag above this (p99 of a 10 ms ticker) flags the client as well.
    pub max_loop_lag: Duration,
    /// Score each completed request's text against the dataset's reference output (exact
    /// match, ROUGE-1/2/L F1) and each level as a corpus (their means, corpus BLEU).
    pub accuracy: bool,
}

impl Default for MetricOptions {
    fn default() -> Self {
        MetricOptions {
            percentiles: vec![90.0, 95.0, 99.0],
            goodput: Vec::new(),
            ignore_eos: false,
            max_send_lag: Duration::from_millis(10),
            max_loop_lag: Duration::from_millis(10),
            accuracy: false,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    /// Per-request JSONL, the summary CSV and (for a sweep) the Pareto SVG go here.
    pub output_dir: Option<PathBuf>,
    /// JSON Lines, one object per level, vLLM / TensorRT-LLM key names (appended).
    pub save_result: Option<PathBuf>,
    /// A progress bar on stderr.
    pub progress: bool,
    /// Keep each request's generated text in the per-request JSONL (needed for accuracy).
    pub keep_text: bool,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub target: Target,
    pub dataset: DatasetSource,
    /// A Hugging Face `tokenizer.json` (or its directory): synthetic ids, client-side token
    /// counts, decoding ids to text where a server wants text.
    pub tokenizer: Option<PathBuf>,
    pub load: LoadOptions,
    pub metrics: MetricOptions,
    pub outputs: OutputOptions,
    /// Runtime threads for the client (1: everything on one core).
    pub client_threads: usize,
}
