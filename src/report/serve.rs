//! The serving-benchmark result block: TensorRT-LLM's `benchmark_serving` (a port of vLLM's
//! script) and vLLM's `vllm bench serve`. A 50-wide `= Serving Benchmark Result =` title,
//! `Label: value` lines padded by `{:<40} {:<10}` (so they end in spaces), dash-centred
//! sub-headers per selected percentile metric, and a closing rule of `=`.
//!
//! Labels are compared ignoring case: vLLM writes `Total token throughput`, TensorRT-LLM
//! `Total Token throughput` (upstream's case-sensitive regex misses vLLM's spelling).

use super::label::{ALL, LabelDef, failed, scaled};

const fn s(label: &'static str, metrics: &'static [&'static str]) -> LabelDef {
    scaled(label, metrics, ALL, 0)
}

pub(crate) static LABELS: &[LabelDef] = &[
    // TensorRT-LLM's block (and perfgate serve-bench's) starts with the total issued.
    s("Total requests", &[]),
    s("Successful requests", &["NUM_REQUESTS"]),
    failed("Failed requests"),
    // Settings echoed back, not measurements.
    s("Maximum request concurrency", &[]),
    s("Request rate configured (RPS)", &[]),
    s("Traffic request rate", &[]),
    // Total wall time, as trtllm-bench's INFERENCE_TIME (ms).
    scaled("Benchmark duration (s)", &["INFERENCE_TIME"], ALL, 3),
    s("Total input tokens", &["TOTAL_INPUT_TOKENS"]),
    s("Total generated tokens", &["TOTAL_OUTPUT_TOKENS"]),
    s("Request throughput (req/s)", &["SEQ_THROUGHPUT"]),
    s("Request goodput (req/s)", &[]),
    s(
        "Output token throughput (tok/s)",
        &["TOTAL_OUTPUT_THROUGHPUT"],
    ),
    s(
        "Peak output token throughput (tok/s)",
        &["PEAK_OUTPUT_THROUGHPUT"],
    ),
    s("Peak concurrent requests", &["PEAK_CONCURRENCY"]),
    s(
        "Total Token throughput (tok/s)",
        &["TOTAL_TOKEN_THROUGHPUT"],
    ),
    s("User throughput (tok/s)", &["USER_THROUGHPUT"]),
    s("Mean Request AR", &["MEAN_REQUEST_ACCEPTANCE_RATE"]),
    s("Median Request AR", &["MEDIAN_REQUEST_ACCEPTANCE_RATE"]),
    // `Avg Decoded Tokens per Iter` (speculative decoding only; no unit): upstream's d_al.
    s(
        "Mean Avg Decoded Tokens per Iter",
        &["AVG_DECODED_TOKENS_PER_ITER"],
    ),
    s("Median Avg Decoded Tokens per Iter", &[]),
    s("Std Dev Avg Decoded Tokens per Iter", &[]),
    s("Min Avg Decoded Tokens per Iter", &[]),
    s("Max Avg Decoded Tokens per Iter", &[]),
    s("P99 Avg Decoded Tokens per Iter", &[]),
    // Failure summary inside the block, after `!FAILED REQUESTS!`.
    s("Total failed requests", &[]),
    // TensorRT-LLM prints a population standard deviation per percentile metric; vLLM does not.
    s("Std Dev TTFT (ms)", &[]),
    s("Std Dev TPOT (ms)", &[]),
    s("Std Dev ITL (ms)", &[]),
    s("Std Dev E2EL (ms)", &[]),
    // Energy (servers exposing /energy_metrics).
    s("Total Energy (J)", &[]),
    s("Output Tokens per Second per Watt (tps/W)", &[]),
    s("Total GPU Power (W)", &[]),
    s("Mean TTFT (ms)", &["FIRST_TOKEN_TIME"]),
    s("Median TTFT (ms)", &["MEDIAN_FIRST_TOKEN_TIME"]),
    s("P99 TTFT (ms)", &["P99_FIRST_TOKEN_TIME"]),
    s("Mean TPOT (ms)", &["OUTPUT_TOKEN_TIME"]),
    s("Median TPOT (ms)", &["MEDIAN_OUTPUT_TOKEN_TIME"]),
    s("P99 TPOT (ms)", &["P99_OUTPUT_TOKEN_TIME"]),
    s("Mean ITL (ms)", &["INTER_TOKEN_TIME"]),
    s("Median ITL (ms)", &["MEDIAN_INTER_TOKEN_TIME"]),
    s("P99 ITL (ms)", &["P99_INTER_TOKEN_TIME"]),
    // Mean end-to-end latency is the mean request latency (upstream calls it INFERENCE_TIME
    // here; Report::upstream_value gives that reading).
    s("Mean E2EL (ms)", &["AVG_REQUEST_LATENCY"]),
    s("Median E2EL (ms)", &["MEDIAN_INFERENCE_TIME"]),
    s("P99 E2EL (ms)", &["P99_INFERENCE_TIME"]),
    // `--metric-percentiles` adds P-lines (serve-bench prints P90 and P95 by default). Where
    // the metric table has the same quantity (trtllm-bench's latency percentiles) it is
    // stored there.
    s("P90 TTFT (ms)", &["P90_TTFT"]),
    s("P95 TTFT (ms)", &["P95_TTFT"]),
    s("P90 TPOT (ms)", &["P90_TPOT"]),
    s("P95 TPOT (ms)", &["P95_TPOT"]),
    s("P90 ITL (ms)", &[]),
    s("P95 ITL (ms)", &[]),
    s("P90 E2EL (ms)", &[]),
    s("P95 E2EL (ms)", &[]),
    s("P90 Avg Decoded Tokens per Iter", &[]),
    s("P95 Avg Decoded Tokens per Iter", &[]),
];

/// Sub-headers, as bits of a mask, with the metrics each promises.
pub(crate) const SUBSECTIONS: [(&str, &[&str]); 4] = [
    (
        "Time to First Token",
        &[
            "FIRST_TOKEN_TIME",
            "MEDIAN_FIRST_TOKEN_TIME",
            "P99_FIRST_TOKEN_TIME",
        ],
    ),
    (
        "Time per Output Token (excl. 1st token)",
        &[
            "OUTPUT_TOKEN_TIME",
            "MEDIAN_OUTPUT_TOKEN_TIME",
            "P99_OUTPUT_TOKEN_TIME",
        ],
    ),
    (
        "Inter-token Latency",
        &[
            "INTER_TOKEN_TIME",
            "MEDIAN_INTER_TOKEN_TIME",
            "P99_INTER_TOKEN_TIME",
        ],
    ),
    (
        "End-to-end Latency",
        &[
            "AVG_REQUEST_LATENCY",
            "MEDIAN_INFERENCE_TIME",
            "P99_INFERENCE_TIME",
        ],
    ),
];

/// `------Time to First Token------`: the sub-header's bit.
pub(crate) fn subsection(msg: &[u8]) -> Option<u8> {
    let inner = msg.trim_ascii();
    let start = inner.iter().position(|c| *c != b'-')?;
    let end = inner.iter().rposition(|c| *c != b'-')?;
    if start == 0 || end + 1 == inner.len() {
        return None;
    }
    let text = inner[start..=end].trim_ascii();
    SUBSECTIONS
        .iter()
        .position(|(t, _)| super::text::label_eq(text, t))
        .map(|i| 1 << i)
}

/// `============ Serving Benchmark Result ============`.
pub(crate) fn is_title(msg: &[u8]) -> bool {
    let inner = msg.trim_ascii();
    if !(inner.starts_with(b"=") && inner.ends_with(b"=")) {
        return false;
    }
    let text = inner
        .iter()
        .position(|c| *c != b'=')
        .zip(inner.iter().rposition(|c| *c != b'='))
        .map(|(a, b)| inner[a..=b].trim_ascii());
    text.is_some_and(|t| super::text::label_eq(t, "Serving Benchmark Result"))
}

/// What a complete block prints: the lines every version has, plus each selected percentile
/// metric whose sub-header was seen.
pub(crate) fn expected(subsections: u8) -> Vec<String> {
    let mut v: Vec<String> = [
        "NUM_REQUESTS",
        "INFERENCE_TIME",
        "TOTAL_INPUT_TOKENS",
        "TOTAL_OUTPUT_TOKENS",
        "SEQ_THROUGHPUT",
        "TOTAL_OUTPUT_THROUGHPUT",
        "TOTAL_TOKEN_THROUGHPUT",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (i, (_, names)) in SUBSECTIONS.iter().enumerate() {
        if subsections & (1 << i) != 0 {
            v.extend(names.iter().map(|s| s.to_string()));
        }
    }
    v
}
