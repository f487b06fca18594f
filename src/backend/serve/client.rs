//! The steps every serving test is made of: a server (a service, ready when its health check
//! answers) and a client per case, perfgate's `serve-bench` or upstream's `benchmark_serving`.

use std::path::PathBuf;
use std::time::Duration;

use super::{CLIENT, ID, Options};
use crate::perf_sanity::METRIC_FIELDS;
use crate::plan::{Phase, PlannedFile, Readiness, Step};
use crate::record::Expectations;

/// The sixteen figures of the `benchmark_serving` block upstream records (and fails without),
/// by perfgate name, in upstream's order: [`METRIC_FIELDS`] less its last, `d_al`.
pub(crate) const SERVING_METRICS: [&str; 16] = {
    let mut names = [""; 16];
    let mut i = 0;
    while i < names.len() {
        names[i] = METRIC_FIELDS[i].1;
        i += 1;
    }
    names
};

/// The acceptance length (`d_al`), reported and required with speculative decoding.
pub(crate) const ACCEPTANCE: &str = METRIC_FIELDS[16].1;

/// The figures of a block that measure decoding: the gaps between output tokens. A request of
/// one output token has none (TPOT's `(E2EL - TTFT) / (OSL - 1)` is undefined; the block
/// prints 0), so a case whose requests ask for one token (perf-sanity's `ctx_only`) neither
/// records nor gates them.
pub(crate) const DECODE_METRICS: [&str; 6] = [
    "INTER_TOKEN_TIME",
    "MEDIAN_INTER_TOKEN_TIME",
    "P99_INTER_TOKEN_TIME",
    "OUTPUT_TOKEN_TIME",
    "MEDIAN_OUTPUT_TOKEN_TIME",
    "P99_OUTPUT_TOKEN_TIME",
];

/// The metrics a serving case records, and requires of its client; `osl` is the output
/// length its requests ask for.
pub(crate) fn metrics(speculative: bool, osl: i64) -> Vec<&'static str> {
    let mut m: Vec<&str> = SERVING_METRICS
        .iter()
        .copied()
        .filter(|k| osl > 1 || !DECODE_METRICS.contains(k))
        .collect();
    if speculative {
        m.push(ACCEPTANCE);
    }
    m
}

/// Gated by default for serving: output and total token throughput (upstream's regression
/// metrics), the median TTFT and TPOT (when requests decode), and the acceptance length when
/// speculative.
pub(crate) fn gated(speculative: bool, osl: i64) -> Vec<&'static str> {
    let mut g = vec![
        "TOTAL_OUTPUT_THROUGHPUT",
        "TOTAL_TOKEN_THROUGHPUT",
        "MEDIAN_FIRST_TOKEN_TIME",
    ];
    if osl > 1 {
        g.push("MEDIAN_OUTPUT_TOKEN_TIME");
    }
    if speculative {
        g.push(ACCEPTANCE);
    }
    g
}

/// Where a client's prompts come from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Prompts {
    /// Random token ids of these lengths (standard deviations 0: fixed).
    Random {
        isl: i64,
        osl: i64,
        isl_stdev: i64,
        osl_stdev: i64,
    },
    /// A `trtllm_custom` dataset (JSON lines of OpenAI messages and `max_tokens`).
    Dataset(String),
    /// A trtllm-bench dataset (JSON lines of token ids and output lengths).
    InputData(PathBuf),
}

/// What a client runs against a server.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    /// The model name the requests carry.
    pub model: String,
    pub tokenizer: String,
    /// `completions` or `chat`.
    pub endpoint: String,
    pub prompts: Prompts,
    pub concurrency: i64,
    pub num_prompts: i64,
    pub warmup: u32,
    pub streaming: bool,
    pub server_kind: String,
    pub seed: u64,
}

/// `perfgate serve-bench` for `w` against `url` (a placeholder the runner fills in).
pub(crate) fn perfgate_argv(opts: &Options, url: &str, w: &Workload) -> Vec<String> {
    let mut argv = opts.serve_bench_cmd.clone();
    argv.extend([
        "serve-bench".into(),
        "--url".into(),
        url.to_string(),
        "--endpoint".into(),
        w.endpoint.clone(),
        "--model".into(),
        w.model.clone(),
        "--tokenizer".into(),
        w.tokenizer.clone(),
    ]);
    match &w.prompts {
        Prompts::Random {
            isl,
            osl,
            isl_stdev,
            osl_stdev,
        } => {
            argv.extend([
                "--isl".into(),
                isl.to_string(),
                "--osl".into(),
                osl.to_string(),
            ]);
            if *isl_stdev > 0 || *osl_stdev > 0 {
                argv.extend([
                    "--isl-stdev".into(),
                    isl_stdev.to_string(),
                    "--osl-stdev".into(),
                    osl_stdev.to_string(),
                ]);
            }
        }
        Prompts::Dataset(path) => argv.extend(["--dataset".into(), path.clone()]),
        Prompts::InputData(path) => {
            argv.extend(["--input-data".into(), path.to_string_lossy().into_owned()])
        }
    }
    argv.extend([
        "--concurrency".into(),
        w.concurrency.to_string(),
        "--num-prompts".into(),
        w.num_prompts.to_string(),
        "--warmup".into(),
        w.warmup.to_string(),
        "--seed".into(),
        w.seed.to_string(),
        "--ignore-eos".into(),
        if w.streaming {
            "--streaming".into()
        } else {
            "--no-streaming".into()
        },
        "--server-kind".into(),
        w.server_kind.clone(),
        // The percentile upstream's block prints (benchmark_serving's default `99`).
        "--percentiles".into(),
        "99".into(),
        "--no-progress".into(),
    ]);
    argv
}

/// The measured client step.
pub(crate) fn client_step(
    argv: Vec<String>,
    env: Vec<(String, String)>,
    required: Vec<&'static str>,
    expect: Expectations,
) -> Step {
    Step {
        phase: Phase::Measure,
        label: CLIENT,
        backend: ID,
        argv,
        env,
        dataset: None,
        outputs: Vec::new(),
        files: Vec::new(),
        stdout_to: None,
        required,
        service: None,
        expect: Some(expect),
        title: None,
    }
}

/// A server (or worker) service.
pub(crate) fn service_step(
    label: &'static str,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    files: Vec<PlannedFile>,
    ready: Readiness,
    ready_timeout: Duration,
    log: PathBuf,
) -> Step {
    Step::service(ID, label, argv, env, files, ready, ready_timeout, log)
}

/// Upstream's clients run unbuffered (`benchmark_env.setdefault("PYTHONUNBUFFERED", "1")`).
pub(crate) fn client_env(mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    if !env.iter().any(|(k, _)| k == "PYTHONUNBUFFERED") {
        env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    }
    env
}

/// The standard deviation of a uniform length in `[n(1-r), n(1+r)]` (what upstream's range
/// ratio draws): perfgate's client draws normal lengths, so a ratio is approximated by the
/// same spread.
pub(crate) fn uniform_stdev(n: i64, ratio: f64) -> i64 {
    ((n as f64) * ratio / 3f64.sqrt()).round() as i64
}

/// Labels for disaggregated workers (labels are static: they name steps in logs and results).
pub(crate) const CTX_LABELS: [&str; 16] = [
    "ctx_0", "ctx_1", "ctx_2", "ctx_3", "ctx_4", "ctx_5", "ctx_6", "ctx_7", "ctx_8", "ctx_9",
    "ctx_10", "ctx_11", "ctx_12", "ctx_13", "ctx_14", "ctx_15",
];
pub(crate) const GEN_LABELS: [&str; 16] = [
    "gen_0", "gen_1", "gen_2", "gen_3", "gen_4", "gen_5", "gen_6", "gen_7", "gen_8", "gen_9",
    "gen_10", "gen_11", "gen_12", "gen_13", "gen_14", "gen_15",
];
