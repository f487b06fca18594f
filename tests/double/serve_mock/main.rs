//! serve-mock: a test double of an OpenAI-compatible server (vLLM, TensorRT-LLM, llama.cpp,
//! SGLang, transformers serve) and of Triton (HTTP generate / generate_stream and gRPC
//! ModelStreamInfer), for serve-bench's own tests and its client-capacity benchmark.
//!
//! Every response is scripted: the first content event is due `--ttft-ms` after the request
//! arrived, each next one `--itl-ms` later, `--tokens-per-event` tokens each; the quirks real
//! servers have are flags (role chunk first, usage in the last choice / a separate event /
//! absent / on every chunk, no `[DONE]`, errors as HTTP status or inside a 200 stream, stalls,
//! cut connections, malformed and huge events, a length shorter than asked, skewed usage).
//! Send times are absolute (arrival + offset), so lateness never accumulates, and with
//! `--trace FILE` each request's arrival and event send times (CLOCK_MONOTONIC ns, the clock
//! serve-bench's `epoch_monotonic_ns` is on) are appended as a JSON line when it ends: the
//! ground truth the tests compare serve-bench's figures with.
//!
//! A request may override the timing with body fields `mock_ttft_ms` and `mock_itl_ms`.
//!
//! Prints `serve-mock http=HOST:PORT grpc=HOST:PORT|none` on its first line once listening.
//! Exit status 2 for bad flags. It runs until killed.

mod grpc;
mod openai;
mod script;
mod triton_http;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleChunk {
    /// A role-only chunk as soon as the request arrives (transformers serve).
    First,
    /// A role-only chunk right before the first token (vLLM).
    WithToken,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UsageMode {
    /// `usage` on the final chunk that also has `choices: [{delta: {}, finish_reason}]`.
    LastChoice,
    /// A separate usage-only chunk with `choices: []` (vLLM, llama.cpp).
    Separate,
    Absent,
    /// Cumulative usage on every chunk (`continuous_usage_stats`) plus the separate one.
    EveryChunk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Vllm,
    Trtllm,
    Sglang,
    Llamacpp,
    Transformers,
    Generic,
}

#[derive(Debug, Clone, Parser)]
#[command(name = "serve-mock")]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Also serve Triton gRPC on this port (0: any free port).
    #[arg(long)]
    pub grpc_port: Option<u16>,
    #[arg(long, default_value = "mock-model")]
    pub model: String,
    #[arg(long, value_enum, default_value = "vllm")]
    pub kind: Kind,
    #[arg(long, default_value_t = 0.0)]
    pub ttft_ms: f64,
    #[arg(long, default_value_t = 0.0)]
    pub itl_ms: f64,
    #[arg(long, default_value_t = 1)]
    pub tokens_per_event: u64,
    #[arg(long, value_enum, default_value = "with-token")]
    pub role_chunk: RoleChunk,
    #[arg(long, value_enum, default_value = "separate")]
    pub usage: UsageMode,
    /// The finish chunk, usage and `[DONE]` come this long after the last token.
    #[arg(long, default_value_t = 0.0)]
    pub tail_ms: f64,
    #[arg(long)]
    pub no_done: bool,
    /// No finish chunk (with --no-done and --usage absent: a stream that just stops).
    #[arg(long)]
    pub no_finish: bool,
    /// The text of one generated token.
    #[arg(long, default_value = " the")]
    pub token_text: String,
    /// Answer every request (or every Nth with --fail-every) with this HTTP status.
    #[arg(long)]
    pub status: Option<u16>,
    #[arg(long, default_value = "mock failure")]
    pub status_message: String,
    #[arg(long, default_value_t = 1)]
    pub fail_every: u64,
    /// After N content events: an error object inside the 200 stream, then the end.
    #[arg(long)]
    pub error_after: Option<u64>,
    /// After N content events: send nothing more, keep the connection open.
    #[arg(long)]
    pub stall_after: Option<u64>,
    /// After N content events: break the connection (no end of the chunked body).
    #[arg(long)]
    pub cut_after: Option<u64>,
    /// After N content events: an event that is not JSON.
    #[arg(long)]
    pub malformed_after: Option<u64>,
    /// The first content event carries this many bytes of text (still one event's tokens).
    #[arg(long)]
    pub huge_event: Option<usize>,
    /// Generate at most N tokens whatever was asked (a server ignoring ignore_eos).
    #[arg(long)]
    pub eos_after: Option<u64>,
    /// Report usage.completion_tokens off by this much.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub usage_skew: i64,
    /// Report usage.prompt_tokens off by this much (a BOS the client did not count).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub prompt_skew: i64,
    /// Answer 422 (transformers serve's words) when the body has this field; repeatable.
    #[arg(long)]
    pub reject_field: Vec<String>,
    /// llama.cpp's `timings` on the final event.
    #[arg(long)]
    pub timings: bool,
    /// Speculative decoding's counts, this share of the drafted tokens accepted (one drafted
    /// per generated token): in llama.cpp's `timings` (`draft_n`, `draft_n_accepted`; with
    /// --timings), and with `--kind vllm` as vLLM's `/metrics` counters.
    #[arg(long)]
    pub draft_accept: Option<f64>,
    /// The context of a slot (llama.cpp `/props` n_ctx): a longer prompt is refused as
    /// llama-server refuses it (HTTP 400, `exceed_context_size_error`).
    #[arg(long, default_value_t = 4096)]
    pub n_ctx: u64,
    /// TensorRT-LLM's `avg_decoded_tokens_per_iter` on the final choice.
    #[arg(long)]
    pub avg_decoded: Option<f64>,
    /// Count text prompt tokens with this tokenizer (else whitespace-separated words).
    #[arg(long)]
    pub tokenizer: Option<std::path::PathBuf>,
    /// GET /health answers this status.
    #[arg(long, default_value_t = 200)]
    pub health_status: u16,
    /// Append each request's timeline (CLOCK_MONOTONIC ns) to this JSONL file.
    #[arg(long)]
    pub trace: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

fn main() {
    let args = Args::parse();
    if args.draft_accept.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
        eprintln!("serve-mock: --draft-accept is a share between 0 and 1");
        std::process::exit(2);
    }
    if args.tokens_per_event == 0 || args.fail_every == 0 {
        eprintln!("serve-mock: --tokens-per-event and --fail-every must be at least 1");
        std::process::exit(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serve-mock: cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(serve(args)) {
        eprintln!("serve-mock: {e}");
        std::process::exit(1);
    }
}

async fn serve(args: Args) -> Result<(), String> {
    raise_nofile();
    let state = Arc::new(script::State::new(args.clone())?);
    let listener = listen(&args.host, args.port).await?;
    let http_addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let grpc_addr = match args.grpc_port {
        Some(port) => {
            let l = listen(&args.host, port).await?;
            let addr = l.local_addr().map_err(|e| e.to_string())?;
            let svc = grpc::TritonService::new(state.clone());
            tokio::spawn(async move {
                // Nagle's algorithm would hold small responses back for ~40 ms.
                let incoming =
                    tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true));
                if let Err(e) = tonic::transport::Server::builder()
                    .add_service(svc)
                    .serve_with_incoming(incoming)
                    .await
                {
                    eprintln!("serve-mock: gRPC server: {e}");
                }
            });
            Some(addr)
        }
        None => None,
    };
    println!(
        "serve-mock http={http_addr} grpc={}",
        grpc_addr.map_or("none".to_string(), |a| a.to_string())
    );
    let _ = std::io::stdout().flush();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(openai::health))
        .route("/v1/models", axum::routing::get(openai::models))
        .route("/props", axum::routing::get(openai::props))
        .route("/metrics", axum::routing::get(openai::metrics))
        .route("/v1/completions", axum::routing::post(openai::completions))
        .route("/v1/chat/completions", axum::routing::post(openai::chat))
        .route("/v2", axum::routing::get(triton_http::metadata))
        .route("/v2/health/ready", axum::routing::get(triton_http::ready))
        .route(
            "/v2/models/{model}/generate",
            axum::routing::post(triton_http::generate),
        )
        .route(
            "/v2/models/{model}/generate_stream",
            axum::routing::post(triton_http::generate_stream),
        )
        .with_state(state);
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        // Nagle's algorithm would hold small events back; real servers turn it off too.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("HTTP server: {e}"))
}

/// A listener with a deep accept queue: the capacity benchmark opens 10,000 connections at
/// once, and tokio's default backlog (1024) would turn the rest into SYN retries.
async fn listen(host: &str, port: u16) -> Result<tokio::net::TcpListener, String> {
    let addr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port}: no address"))?;
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    sock.set_reuseaddr(true).map_err(|e| e.to_string())?;
    sock.bind(addr)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    sock.listen(65_535)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct; a failure leaves the limit as it was.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
