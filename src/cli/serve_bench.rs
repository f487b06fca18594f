//! `perfgate serve-bench`: the clap shell over [`crate::serve::run`].
//!
//! Exit status, from perfgate's one table ([`super::exit`]): 0 when every measured request
//! succeeded; 1 (a check failed) when requests failed (above `--max-failure-ratio`) or, with
//! `--fail-on-invalid`, when a level is invalid for gating; 2 for usage errors (bad options, a
//! bad dataset or tokenizer); 3 (could not measure) when the server could not be reached, never
//! became ready, or no request was measured; 4 when perfgate could not write its outputs or
//! start its runtime; 128+N when stopped by signal N (130: Ctrl-C, 143: SIGTERM; finished
//! requests are summarized and written first).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::exit;
use crate::serve::ServeError;
use crate::serve::options::{
    Arrival, BenchOptions, DatasetSource, Endpoint, LoadLevel, LoadOptions, MetricOptions,
    OutputOptions, ServerKind, Slo, SloMetric, Stop, Target,
};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum EndpointArg {
    Completions,
    Chat,
    Triton,
    TritonGrpc,
}

/// The flags of `perfgate serve-bench` (its help text is the `ServeBench` command's doc).
#[derive(Debug, clap::Args)]
pub struct ServeBenchArgs {
    /// Server base URL (http://host:port); for triton-grpc, the gRPC address.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The API the requests go to.
    #[arg(long, value_enum, default_value = "completions")]
    pub endpoint: EndpointArg,
    /// Model name (OpenAI `model`, Triton model). Default: the first of /v1/models.
    #[arg(long, default_value = "")]
    pub model: String,
    /// auto|trtllm|vllm|sglang|llama.cpp|transformers|triton|generic: how requests force the
    /// output length and what fields they carry.
    #[arg(long, default_value = "auto", value_parser = parse_kind)]
    pub server_kind: ServerKind,
    /// Hugging Face tokenizer (directory or tokenizer.json): synthetic ids, client-side
    /// token counts, decoding ids for servers that want text.
    #[arg(long, value_name = "DIR")]
    pub tokenizer: Option<PathBuf>,

    /// Synthetic prompts: mean input length (token-norm-dist, prepare_dataset's generator).
    #[arg(long, value_name = "N")]
    pub isl: Option<u64>,
    /// Output length: synthetic mean, or the length asked for with a prompt file.
    #[arg(long, value_name = "N")]
    pub osl: Option<u64>,
    /// Standard deviation of the synthetic input lengths.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub isl_stdev: u64,
    /// Standard deviation of the synthetic output lengths.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub osl_stdev: u64,
    /// A dataset file: prepare_dataset JSONL, trtllm_custom JSONL, prompt JSONL
    /// (`input`/`output`), ShareGPT.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["isl", "input_data"])]
    pub dataset: Option<PathBuf>,
    /// Prompts as JSONL with `input` (and optional reference `output`) keys.
    #[arg(long, value_name = "FILE", conflicts_with = "isl")]
    pub input_data: Option<PathBuf>,

    /// Closed loop: requests in flight (comma list: a sweep).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "N,...",
        conflicts_with = "request_rate"
    )]
    pub concurrency: Vec<u32>,
    /// Open loop: requests per second (comma list: a sweep).
    #[arg(long, value_delimiter = ',', value_name = "R,...")]
    pub request_rate: Vec<f64>,
    /// With --request-rate: at most this many in flight.
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<u32>,
    /// poisson | constant | gamma:K (K = burstiness; below 1 is burstier).
    #[arg(long, default_value = "poisson", value_parser = parse_arrival)]
    pub arrival: Arrival,
    /// Measured requests per level (default 1000, like benchmark_serving).
    #[arg(long, value_name = "N", conflicts_with_all = ["iterations", "duration"])]
    pub num_prompts: Option<u64>,
    /// Measured requests per level = concurrency × N (perf-sanity's `iterations`).
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub iterations: Option<u64>,
    /// Issue requests for this long per level (e.g. 300s, 5m), then let them finish.
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Requests before the first level, not measured.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub warmup: u64,
    /// Seeds the synthetic prompts and the arrival schedule.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// Force the output length (ignore_eos or the server kind's equivalent); a different
    /// output length then makes the level invalid for gating.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Stream the responses (the default).
    #[arg(long, overrides_with = "no_streaming")]
    pub streaming: bool,
    /// One response per request: E2EL only, no TTFT/TPOT/ITL.
    #[arg(long)]
    pub no_streaming: bool,
    /// SLOs for goodput, e.g. ttft:200,tpot:50,e2el:2000 (milliseconds).
    #[arg(long, value_name = "M:MS,...", value_parser = parse_goodput)]
    pub goodput: Option<Vec<Slo>>,
    /// Percentiles reported besides the median.
    #[arg(long, value_delimiter = ',', default_value = "90,95,99")]
    pub percentiles: Vec<f64>,
    /// Score each generated text against the dataset's reference output (prompt JSONL
    /// `output`, ShareGPT's reply): exact match and ROUGE-1/2/L F1 per request, their means
    /// and corpus BLEU per level (rouge-score's and sacrebleu's definitions).
    #[arg(long)]
    pub accuracy: bool,

    /// Per-request JSONL, summary.csv, run.json, serve-bench.log, pareto.svg (sweeps).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Append one JSON object per level (vLLM / TensorRT-LLM keys) to FILE.
    #[arg(long, value_name = "FILE")]
    pub save_result: Option<PathBuf>,
    /// Keep each request's generated text in the per-request JSONL.
    #[arg(long)]
    pub keep_text: bool,
    /// No progress bar (it is drawn on a terminal only anyway).
    #[arg(long)]
    pub no_progress: bool,

    /// A request not finished after this long fails.
    #[arg(long, value_name = "TIME", default_value = "600s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// A stream silent for this long fails.
    #[arg(long, value_name = "TIME", default_value = "120s", value_parser = parse_duration)]
    pub stall_timeout: Duration,
    /// Wait for the server's health check this long (0: one probe).
    #[arg(long, value_name = "TIME", default_value = "0s", value_parser = parse_duration)]
    pub ready_timeout: Duration,
    /// A response (or one event) larger than this fails.
    #[arg(long, value_name = "MB", default_value_t = 64)]
    pub max_response_mb: usize,
    /// Scrape Prometheus metrics before and after each level (default URL: <url>/metrics).
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub scrape_metrics: Option<String>,
    /// Sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// A JSON object merged into every request body (last, so it overrides).
    #[arg(long, value_name = "JSON")]
    pub extra_body: Option<String>,
    /// Exit 0 although up to this fraction of requests failed.
    #[arg(long, default_value_t = 0.0)]
    pub max_failure_ratio: f64,
    /// Exit 1 when a level is invalid for gating (output length or token counts disagree,
    /// the client lagged).
    #[arg(long)]
    pub fail_on_invalid: bool,
    /// Client runtime threads (1: the whole client on one core).
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Send lag p99 above this marks the client as lagging (the level invalid).
    #[arg(long, value_name = "MS", default_value_t = 10.0)]
    pub max_send_lag_ms: f64,
    /// Event-loop lag p99 above this marks the client as lagging (the level invalid).
    #[arg(long, value_name = "MS", default_value_t = 10.0)]
    pub max_loop_lag_ms: f64,
}

fn parse_kind(s: &str) -> Result<ServerKind, String> {
    ServerKind::parse(s).ok_or_else(|| {
        format!(
            "`{s}`: expected auto, trtllm, vllm, sglang, llama.cpp, transformers, triton or generic"
        )
    })
}

fn parse_arrival(s: &str) -> Result<Arrival, String> {
    match s.to_ascii_lowercase().as_str() {
        "poisson" => Ok(Arrival::Poisson),
        "constant" => Ok(Arrival::Constant),
        other => match other.strip_prefix("gamma:") {
            Some(k) => match k.parse::<f64>() {
                Ok(k) if k.is_finite() && k > 0.0 => Ok(Arrival::Gamma(k)),
                _ => Err(format!("`{s}`: gamma:K needs a positive number K")),
            },
            None => Err(format!("`{s}`: expected poisson, constant or gamma:K")),
        },
    }
}

/// `300`, `300s`, `5m`, `1h`, `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Duration::from_secs_f64(v * mult)),
        _ => Err(format!("`{s}`: expected a time such as 300s, 5m, 250ms")),
    }
}

fn parse_goodput(s: &str) -> Result<Vec<Slo>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair
                .split_once(':')
                .ok_or_else(|| format!("`{pair}`: expected METRIC:MS, e.g. ttft:200"))?;
            let metric = SloMetric::parse(k)
                .ok_or_else(|| format!("`{k}`: goodput metrics are ttft, tpot and e2el"))?;
            let max_ms: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("`{v}`: expected a non-negative number of milliseconds"))?;
            Ok(Slo { metric, max_ms })
        })
        .collect()
}

/// Builds the library's options (`Err`: a usage error).
pub fn options(a: &ServeBenchArgs) -> Result<BenchOptions, String> {
    let endpoint = match a.endpoint {
        EndpointArg::Completions => Endpoint::Completions,
        EndpointArg::Chat => Endpoint::Chat,
        EndpointArg::Triton => Endpoint::Triton,
        EndpointArg::TritonGrpc => Endpoint::TritonGrpc,
    };
    let dataset = match (&a.dataset, &a.input_data, a.isl) {
        (Some(p), _, _) | (None, Some(p), _) => DatasetSource::File {
            path: p.clone(),
            osl: a.osl,
        },
        (None, None, Some(isl)) => DatasetSource::Synthetic {
            isl,
            osl: a
                .osl
                .ok_or("synthetic prompts need --osl as well as --isl")?,
            isl_stdev: a.isl_stdev,
            osl_stdev: a.osl_stdev,
        },
        (None, None, None) => {
            return Err(
                "no prompts: give --isl N --osl N (synthetic), --dataset FILE or --input-data FILE"
                    .into(),
            );
        }
    };
    let levels: Vec<LoadLevel> = if !a.request_rate.is_empty() {
        a.request_rate
            .iter()
            .map(|&rate| LoadLevel::Rate {
                rate,
                max_concurrency: a.max_concurrency,
            })
            .collect()
    } else if !a.concurrency.is_empty() {
        if a.max_concurrency.is_some() {
            return Err(
                "--max-concurrency goes with --request-rate; with --concurrency the \
                        concurrency is the cap"
                    .into(),
            );
        }
        a.concurrency
            .iter()
            .map(|&c| LoadLevel::Concurrency(c))
            .collect()
    } else {
        return Err("no load: give --concurrency N[,N...] or --request-rate R[,R...]".into());
    };
    let stop = match (a.num_prompts, a.iterations, a.duration) {
        (Some(n), _, _) => Stop::Count(n),
        (None, Some(k), _) => Stop::Iterations(k),
        (None, None, Some(d)) => Stop::Duration(d),
        (None, None, None) => Stop::Count(1000),
    };
    let extra_body = match &a.extra_body {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(o)) => o,
            Ok(_) => return Err("--extra-body must be a JSON object".into()),
            Err(e) => return Err(format!("--extra-body is not JSON: {e}")),
        },
    };
    if !(0.0..=1.0).contains(&a.max_failure_ratio) {
        return Err("--max-failure-ratio is a fraction between 0 and 1".into());
    }
    if a.percentiles.iter().any(|q| !(0.0..=100.0).contains(q)) {
        return Err("--percentiles are between 0 and 100".into());
    }
    if endpoint == Endpoint::TritonGrpc && a.scrape_metrics.as_deref() == Some("") {
        return Err(
            "with triton-grpc, give the metrics URL: --scrape-metrics http://host:8002/metrics"
                .into(),
        );
    }
    let target = Target {
        server_kind: a.server_kind,
        streaming: !a.no_streaming,
        api_key: a.api_key.clone().filter(|k| !k.is_empty()),
        extra_body,
        request_timeout: a.request_timeout,
        stall_timeout: a.stall_timeout,
        max_response_bytes: a.max_response_mb.max(1) << 20,
        ready_timeout: a.ready_timeout,
        scrape_metrics: a.scrape_metrics.clone(),
        ..Target::new(a.url.clone(), endpoint, a.model.clone())
    };
    Ok(BenchOptions {
        target,
        dataset,
        tokenizer: a.tokenizer.clone(),
        load: LoadOptions {
            levels,
            arrival: a.arrival,
            stop,
            warmup: a.warmup,
            seed: a.seed,
        },
        metrics: MetricOptions {
            percentiles: a.percentiles.clone(),
            goodput: a.goodput.clone().unwrap_or_default(),
            ignore_eos: a.ignore_eos,
            max_send_lag: Duration::from_secs_f64(a.max_send_lag_ms.max(0.0) / 1e3),
            max_loop_lag: Duration::from_secs_f64(a.max_loop_lag_ms.max(0.0) / 1e3),
            accuracy: a.accuracy,
        },
        outputs: OutputOptions {
            output_dir: a.output_dir.clone(),
            save_result: a.save_result.clone(),
            progress: !a.no_progress,
            keep_text: a.keep_text,
        },
        client_threads: a.client_threads,
    })
}

/// Runs the command; every outcome is an exit status (errors are printed here).
pub fn run_cli(a: ServeBenchArgs) -> anyhow::Result<ExitCode> {
    let opts = match options(&a) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("serve-bench: error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    crate::runner::signals::install();
    let mut writer = crate::serve::output::Writer::new(
        opts.outputs.save_result.clone(),
        opts.outputs.output_dir.clone(),
        opts.metrics.percentiles.clone(),
        !opts.metrics.goodput.is_empty(),
        opts.load.arrival,
    );
    let mut first = true;
    let result = crate::serve::run(&opts, &mut |info, level| {
        if first {
            first = false;
            println!(
                "serve-bench: {} {} model {} ({} server), {} prompts from {}",
                info.url,
                info.endpoint.name(),
                info.model,
                info.server_kind.name(),
                info.num_samples,
                info.dataset
            );
            for n in &info.notes {
                println!("serve-bench: {n}");
            }
        }
        let text = writer.level(info, level)?;
        print!("{text}");
        print_first_errors(&level.records, info.server_kind);
        Ok(())
    });
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("serve-bench: error: {e}");
            return Ok(exit::code(error_status(&e)));
        }
    };
    if report.interrupted {
        eprintln!(
            "serve-bench: interrupted: {} level(s) summarized and written",
            report.levels.len()
        );
        // The watchdog saw a signal, so the table's 128+N; SIGINT's if it is gone already.
        return Ok(exit::code(exit::interrupted().unwrap_or(128 + 2)));
    }
    let total: u64 = report.levels.iter().map(|l| l.summary.total).sum();
    let failed: u64 = report.levels.iter().map(|l| l.summary.failed).sum();
    let ratio = if total > 0 {
        failed as f64 / total as f64
    } else {
        1.0
    };
    if total == 0 {
        eprintln!("serve-bench: no request was measured");
        return Ok(exit::code(exit::TEST_FAILED));
    }
    if failed > 0 && ratio > a.max_failure_ratio {
        eprintln!(
            "serve-bench: {failed} of {total} requests failed ({:.1}%, --max-failure-ratio {})",
            ratio * 100.0,
            a.max_failure_ratio
        );
        return Ok(exit::code(exit::GATE_FAILED));
    }
    let invalid = report
        .levels
        .iter()
        .filter(|l| !l.summary.invalid.is_empty())
        .count();
    if invalid > 0 {
        eprintln!(
            "serve-bench: {invalid} level(s) invalid for gating (see INVALID FOR GATING above)"
        );
        if a.fail_on_invalid {
            return Ok(exit::code(exit::GATE_FAILED));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The status of a run that stopped with an error, by whose fault it is: the user's options or
/// data (2), a server that could not be measured (3: the harness's "a test could not
/// measure", so CI tells a dead server from a slow one), perfgate's own work (4).
fn error_status(e: &ServeError) -> u8 {
    match e {
        ServeError::Usage(_)
        | ServeError::Dataset(_)
        | ServeError::DatasetLine { .. }
        | ServeError::Read { .. }
        | ServeError::Tokenizer { .. } => exit::USAGE,
        ServeError::Unreachable { .. } | ServeError::NotReady { .. } => exit::TEST_FAILED,
        ServeError::Write { .. } | ServeError::Runtime(_) => exit::INTERNAL,
    }
}

/// Each distinct failure message once (with its count), and a hint where a 4xx names a field
/// perfgate sent.
fn print_first_errors(records: &[crate::serve::RequestRecord], kind: ServerKind) {
    let mut seen: Vec<(String, u64)> = Vec::new();
    for r in records {
        if let Some(e) = &r.error {
            let key = format!("{}: {}", e.class.name(), e.message);
            match seen.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => seen.push((key, 1)),
            }
        }
    }
    for (msg, n) in seen.iter().take(10) {
        eprintln!("serve-bench: {n} request(s) failed with {msg}");
        if msg.starts_with("http_4xx")
            && let Some(hint) = crate::serve::profile::rejection_hint(
                msg,
                &crate::serve::profile::Profile::of(kind),
            )
        {
            eprintln!("serve-bench: hint: {hint}");
        }
    }
    if seen.len() > 10 {
        eprintln!(
            "serve-bench: … and {} other distinct errors",
            seen.len() - 10
        );
    }
}

/// `perfgate bench-serve-client`: the thin command.
#[derive(Debug, clap::Args)]
pub struct CapacityArgs {
    /// serve-mock's URL (benches/serve_capacity.sh starts one).
    #[arg(long)]
    pub url: String,
    #[arg(long, default_value_t = 64)]
    pub concurrency: u32,
    #[arg(long, default_value_t = 20_000)]
    pub requests: u64,
    #[arg(long, default_value_t = 128)]
    pub osl: u64,
    #[arg(long, default_value_t = 10_000)]
    pub streams: u32,
    #[arg(long, default_value_t = 500.0)]
    pub stream_itl_ms: f64,
    #[arg(long, default_value_t = 8)]
    pub stream_osl: u64,
    /// Client threads for the many-streams scenario.
    #[arg(long, default_value_t = 1)]
    pub stream_client_threads: usize,
}

pub fn run_capacity_cli(a: CapacityArgs) -> anyhow::Result<std::process::ExitCode> {
    let dir = tempfile_dir()?;
    let prompts = dir.join("prompts.jsonl");
    std::fs::write(&prompts, "{\"input\": \"capacity\"}\n")?;
    let rows = crate::serve::capacity::run(&crate::serve::capacity::CapacityOptions {
        url: a.url,
        prompts,
        concurrency: a.concurrency,
        requests: a.requests,
        osl: a.osl,
        streams: a.streams,
        stream_itl_ms: a.stream_itl_ms,
        stream_osl: a.stream_osl,
        stream_client_threads: a.stream_client_threads,
    });
    let _ = std::fs::remove_dir_all(&dir);
    print!("{}", crate::serve::capacity::render(&rows?));
    Ok(std::process::ExitCode::SUCCESS)
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("perfgate-capacity-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_arrivals_goodput() {
        assert_eq!(parse_duration("300s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_arrival("gamma:0.5").unwrap(), Arrival::Gamma(0.5));
        assert!(parse_arrival("gamma:-1").is_err());
        let g = parse_goodput("ttft:200,tpot:50").unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].metric, SloMetric::Tpot);
        assert!(parse_goodput("itl:5").is_err());
    }
}
