//! The one table of every metric perfgate knows: its name, unit, direction and upstream
//! threshold. Parsers store values under these names only, already converted to the unit given
//! here, so a gate never has to guess what a number means.
//!
//! Names: upstream's `PerfMetricType` name wherever upstream has one for the quantity (so
//! `base_perf.csv` rows and upstream CSVs line up), a descriptive perfgate name otherwise.
//! One name means one quantity in one unit, whatever log it came from. Where upstream's own
//! name means different things in different logs (its serving regexes store the *mean*
//! end-to-end latency as `INFERENCE_TIME` and the *total* output throughput as
//! `TOKEN_THROUGHPUT`), perfgate keeps the one meaning and [`super::Report::upstream_value`]
//! gives upstream's reading.
//!
//! Direction is explicit and never derived from the threshold's sign: upstream encodes
//! "higher is better" as a negative relative threshold and gets it wrong for
//! `TOTAL_TOKEN_THROUGHPUT` and `USER_THROUGHPUT` (positive, i.e. "lower is better", for a
//! throughput). The thresholds are kept exactly as upstream writes them, sign included, so
//! upstream-compatible CSV rows can carry them; [`MetricDef::upstream_sign_is_wrong`] names the
//! disagreement.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which way is better. Serialized as `"higher"` / `"lower"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    #[serde(rename = "higher")]
    HigherIsBetter,
    #[serde(rename = "lower")]
    LowerIsBetter,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::HigherIsBetter => "higher",
            Direction::LowerIsBetter => "lower",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The unit a metric's value is stored in (after conversion). Serialized as its symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Milliseconds,
    Seconds,
    TokensPerSecond,
    RequestsPerSecond,
    TokensPerSecondPerUser,
    TokensPerSecondPerGpu,
    /// 2^30 bytes (TensorRT-LLM prints KV cache sizes in GiB).
    GiB,
    /// 2^20 bytes (TensorRT prints build and context memory in MiB).
    MiB,
    /// 10^9 bytes (upstream's legacy `gpu_peak_mem(gb)`).
    GB,
    Tokens,
    Requests,
    /// A dimensionless ratio (acceptance rates, accepted tokens per decoding step).
    Ratio,
    // GPU telemetry (NVML), not in any benchmark report.
    Joules,
    JoulesPerToken,
    TokensPerJoule,
    Watts,
    Megahertz,
    Celsius,
    Percent,
    Samples,
}

impl Unit {
    pub const ALL: [Unit; 20] = [
        Unit::Milliseconds,
        Unit::Seconds,
        Unit::TokensPerSecond,
        Unit::RequestsPerSecond,
        Unit::TokensPerSecondPerUser,
        Unit::TokensPerSecondPerGpu,
        Unit::GiB,
        Unit::MiB,
        Unit::GB,
        Unit::Tokens,
        Unit::Requests,
        Unit::Ratio,
        Unit::Joules,
        Unit::JoulesPerToken,
        Unit::TokensPerJoule,
        Unit::Watts,
        Unit::Megahertz,
        Unit::Celsius,
        Unit::Percent,
        Unit::Samples,
    ];

    pub fn symbol(&self) -> &'static str {
        match self {
            Unit::Milliseconds => "ms",
            Unit::Seconds => "s",
            Unit::TokensPerSecond => "tokens/s",
            Unit::RequestsPerSecond => "requests/s",
            Unit::TokensPerSecondPerUser => "tokens/s/user",
            Unit::TokensPerSecondPerGpu => "tokens/s/gpu",
            Unit::GiB => "GiB",
            Unit::MiB => "MiB",
            Unit::GB => "GB",
            Unit::Tokens => "tokens",
            Unit::Requests => "requests",
            Unit::Ratio => "ratio",
            Unit::Joules => "J",
            Unit::JoulesPerToken => "J/token",
            Unit::TokensPerJoule => "tokens/J",
            Unit::Watts => "W",
            Unit::Megahertz => "MHz",
            Unit::Celsius => "C",
            Unit::Percent => "%",
            Unit::Samples => "samples",
        }
    }

    pub fn from_symbol(s: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.symbol() == s)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Serialize for Unit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.symbol())
    }
}

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Unit::from_symbol(&s).ok_or_else(|| {
            let known: Vec<&str> = Unit::ALL.iter().map(Unit::symbol).collect();
            serde::de::Error::custom(format!(
                "unknown unit `{s}` (expected one of {})",
                known.join(", ")
            ))
        })
    }
}

/// One metric. `upstream_threshold` is `(relative, absolute)` exactly as upstream's §4.4 table
/// writes it (sign included; upstream reads a negative relative threshold as "higher is
/// better"); `None` where upstream has no threshold for the name.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetricDef {
    pub name: &'static str,
    pub unit: Unit,
    pub direction: Direction,
    pub upstream_threshold: Option<(f64, f64)>,
    /// The metric describes the workload (request counts, lengths, concurrency), not how well
    /// it ran: a change means the test changed, so a gate should compare it for equality
    /// rather than in `direction`. Its direction is the one that reads naturally (more
    /// completed requests, longer outputs) for anyone who gates it anyway.
    pub informational: bool,
    pub about: &'static str,
}

impl MetricDef {
    /// Upstream's threshold sign says the opposite of the real direction (upstream's
    /// `TOTAL_TOKEN_THROUGHPUT` and `USER_THROUGHPUT`).
    pub fn upstream_sign_is_wrong(&self) -> bool {
        match (self.upstream_threshold, self.direction) {
            (Some((rel, _)), Direction::HigherIsBetter) => rel > 0.0,
            (Some((rel, _)), Direction::LowerIsBetter) => rel < 0.0,
            (None, _) => false,
        }
    }

    /// A name upstream's harness uses (it has a threshold there, or is one of its types).
    pub fn is_upstream(&self) -> bool {
        self.upstream_threshold.is_some() || UPSTREAM_WITHOUT_THRESHOLD.contains(&self.name)
    }
}

/// Upstream `PerfMetricType` names with no threshold in upstream's table.
const UPSTREAM_WITHOUT_THRESHOLD: [&str; 2] =
    ["PER_USER_OUTPUT_THROUGHPUT", "PER_GPU_OUTPUT_THROUGHPUT"];

use Direction::{HigherIsBetter as Higher, LowerIsBetter as Lower};
use Unit::*;

const fn m(
    name: &'static str,
    unit: Unit,
    direction: Direction,
    upstream_threshold: Option<(f64, f64)>,
    about: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        unit,
        direction,
        upstream_threshold,
        informational: false,
        about,
    }
}

/// A workload descriptor (see [`MetricDef::informational`]).
const fn info(name: &'static str, unit: Unit, about: &'static str) -> MetricDef {
    MetricDef {
        name,
        unit,
        direction: Higher,
        upstream_threshold: None,
        informational: true,
        about,
    }
}

const TIME: Option<(f64, f64)> = Some((0.1, 50.0));

/// Every metric perfgate knows, grouped by where it comes from.
pub static METRICS: &[MetricDef] = &[
    // --- trtllm-bench throughput / latency report: request details ---
    info(
        "NUM_REQUESTS",
        Requests,
        "requests completed: `Number of requests` (trtllm-bench), `Successful requests` (serving)",
    ),
    info(
        "AVG_CONCURRENCY",
        Requests,
        "`Number of concurrent requests`: sum of request latencies / total latency (eras C-D)",
    ),
    info(
        "AVG_INPUT_LENGTH",
        Tokens,
        "`Average Input Length (tokens)`",
    ),
    info(
        "AVG_OUTPUT_LENGTH",
        Tokens,
        "`Average Output Length (tokens)`",
    ),
    // --- throughput ---
    m(
        "SEQ_THROUGHPUT",
        RequestsPerSecond,
        Higher,
        Some((-0.1, 10.0)),
        "`Request Throughput (req/sec)` (trtllm-bench), `Request throughput (req/s)` (serving)",
    ),
    m(
        "TOTAL_OUTPUT_THROUGHPUT",
        TokensPerSecond,
        Higher,
        None,
        "output tokens / total latency, all GPUs: `Total Output Throughput` (eras C-D), \
         `Token Throughput (tokens/sec)` (eras A-B, the same quantity), `Total Token Throughput` \
         of the era-B latency report (output tokens only, despite its name), `Output token \
         throughput (tok/s)` (serving)",
    ),
    m(
        "TOTAL_TOKEN_THROUGHPUT",
        TokensPerSecond,
        Higher,
        Some((0.1, 10.0)),
        "(input + output tokens) / total latency: `Total Token Throughput` (eras C'-D), `Total \
         Token throughput (tok/s)` (serving). Upstream's threshold sign says lower is better: \
         an upstream bug",
    ),
    m(
        "PER_USER_OUTPUT_THROUGHPUT",
        TokensPerSecondPerUser,
        Higher,
        None,
        "mean over requests of output tokens / request latency: `Per User Output Throughput \
         (tokens/sec/user)` (C), `[w/ ctx] (tps/user)` (D)",
    ),
    m(
        "PER_GPU_OUTPUT_THROUGHPUT",
        TokensPerSecondPerGpu,
        Higher,
        None,
        "total output throughput / world size: `Per GPU Output Throughput` (eras C-D)",
    ),
    m(
        "TOKEN_THROUGHPUT",
        TokensPerSecondPerGpu,
        Higher,
        Some((-0.1, 10.0)),
        "upstream's trtllm-bench TOKEN_THROUGHPUT: its regex `GPU Output Throughput \\(tps/gpu\\)` \
         reads the per-GPU output throughput, so this equals PER_GPU_OUTPUT_THROUGHPUT. Eras A-B \
         print no per-GPU value and perfgate does not divide by the world size to make one \
         (use TOTAL_OUTPUT_THROUGHPUT there); serving logs have no per-GPU value either \
         (upstream's serving regex stores the total output throughput under this name: see \
         Report::upstream_value)",
    ),
    m(
        "GENERATION_TOKEN_THROUGHPUT",
        TokensPerSecond,
        Higher,
        None,
        "`Generation Token Throughput (tokens/sec)` of the era-B latency report",
    ),
    // --- latency ---
    m(
        "INFERENCE_TIME",
        Milliseconds,
        Lower,
        TIME,
        "total wall time of the benchmark: `Total Latency (ms)`, era A's `Total Latency \
         (seconds)` x 1000, serving's `Benchmark duration (s)` x 1000. (Upstream's serving regex \
         stores the mean E2EL under this name instead: see Report::upstream_value)",
    ),
    m(
        "AVG_REQUEST_LATENCY",
        Milliseconds,
        Lower,
        None,
        "mean request end-to-end latency: `Average request latency (ms)` (trtllm-bench C-D and \
         era-B latency report), `Mean E2EL (ms)` (serving)",
    ),
    m(
        "MEDIAN_INFERENCE_TIME",
        Milliseconds,
        Lower,
        TIME,
        "serving `Median E2EL (ms)` (interpolated median; trtllm-bench's own index-based \
         percentile is P50_LATENCY, kept apart so the two estimators are never compared)",
    ),
    m(
        "P99_INFERENCE_TIME",
        Milliseconds,
        Lower,
        TIME,
        "serving `P99 E2EL (ms)` (trtllm-bench's is P99_LATENCY)",
    ),
    m(
        "SEQ_LATENCY",
        Milliseconds,
        Lower,
        TIME,
        "upstream's legacy C++ benchmark `avg_sequence_latency(ms)`; not read from \
         trtllm-bench logs (listed for upstream-compatible CSVs)",
    ),
    // --- streaming ---
    m(
        "FIRST_TOKEN_TIME",
        Milliseconds,
        Lower,
        TIME,
        "mean time to first token: `Average time-to-first-token [TTFT] (ms)` (streaming), \
         `Average time-to-first-token (ms)` (era-B latency report), `Mean TTFT (ms)` (serving)",
    ),
    m(
        "MEDIAN_FIRST_TOKEN_TIME",
        Milliseconds,
        Lower,
        TIME,
        "serving `Median TTFT (ms)` (trtllm-bench's is P50_TTFT)",
    ),
    m(
        "P99_FIRST_TOKEN_TIME",
        Milliseconds,
        Lower,
        TIME,
        "serving `P99 TTFT (ms)` (trtllm-bench's is P99_TTFT)",
    ),
    m(
        "OUTPUT_TOKEN_TIME",
        Milliseconds,
        Lower,
        TIME,
        "mean time per output token: `Average time-per-output-token [TPOT] (ms)` (streaming), \
         `Mean TPOT (ms)` (serving)",
    ),
    m(
        "MEDIAN_OUTPUT_TOKEN_TIME",
        Milliseconds,
        Lower,
        TIME,
        "serving `Median TPOT (ms)` (trtllm-bench's is P50_TPOT)",
    ),
    m(
        "P99_OUTPUT_TOKEN_TIME",
        Milliseconds,
        Lower,
        TIME,
        "serving `P99 TPOT (ms)` (trtllm-bench's is P99_TPOT)",
    ),
    m(
        "INTER_TOKEN_TIME",
        Milliseconds,
        Lower,
        TIME,
        "mean inter-token latency: `Average inter-token latency (ms)` (era-B latency report), \
         `Mean ITL (ms)` (serving)",
    ),
    m(
        "MEDIAN_INTER_TOKEN_TIME",
        Milliseconds,
        Lower,
        TIME,
        "serving `Median ITL (ms)`",
    ),
    m(
        "P99_INTER_TOKEN_TIME",
        Milliseconds,
        Lower,
        TIME,
        "serving `P99 ITL (ms)`",
    ),
    m(
        "PER_USER_OUTPUT_SPEED",
        TokensPerSecondPerUser,
        Higher,
        None,
        "per-request generation speed after the first token: `Per User Output Speed [1/TPOT] \
         (tokens/sec/user)` (C, C'; about 1000 / mean TPOT) and `Per User Output Speed \
         (tps/user)` (D; the mean of per-request speeds, equal to AVG_GTPS). The two \
         definitions differ slightly (harmonic vs arithmetic mean)",
    ),
    // --- trtllm-bench percentile breakdowns (index-based percentiles: sorted[int(n * p)]) ---
    m(
        "MIN_LATENCY",
        Milliseconds,
        Lower,
        None,
        "`[Latency] MINIMUM`: request latency",
    ),
    m(
        "MAX_LATENCY",
        Milliseconds,
        Lower,
        None,
        "`[Latency] MAXIMUM`",
    ),
    m(
        "AVG_LATENCY",
        Milliseconds,
        Lower,
        None,
        "`[Latency] AVERAGE`",
    ),
    m("P50_LATENCY", Milliseconds, Lower, None, "`[Latency] P50`"),
    m("P90_LATENCY", Milliseconds, Lower, None, "`[Latency] P90`"),
    m("P95_LATENCY", Milliseconds, Lower, None, "`[Latency] P95`"),
    m("P99_LATENCY", Milliseconds, Lower, None, "`[Latency] P99`"),
    m(
        "MIN_TTFT",
        Milliseconds,
        Lower,
        None,
        "`[TTFT] MINIMUM`: time to first token",
    ),
    m("MAX_TTFT", Milliseconds, Lower, None, "`[TTFT] MAXIMUM`"),
    m("AVG_TTFT", Milliseconds, Lower, None, "`[TTFT] AVERAGE`"),
    m("P50_TTFT", Milliseconds, Lower, None, "`[TTFT] P50`"),
    m("P90_TTFT", Milliseconds, Lower, None, "`[TTFT] P90`"),
    m("P95_TTFT", Milliseconds, Lower, None, "`[TTFT] P95`"),
    m("P99_TTFT", Milliseconds, Lower, None, "`[TTFT] P99`"),
    m(
        "MIN_TPOT",
        Milliseconds,
        Lower,
        None,
        "`[TPOT] MINIMUM`: time per output token",
    ),
    m("MAX_TPOT", Milliseconds, Lower, None, "`[TPOT] MAXIMUM`"),
    m("AVG_TPOT", Milliseconds, Lower, None, "`[TPOT] AVERAGE`"),
    m("P50_TPOT", Milliseconds, Lower, None, "`[TPOT] P50`"),
    m("P90_TPOT", Milliseconds, Lower, None, "`[TPOT] P90`"),
    m("P95_TPOT", Milliseconds, Lower, None, "`[TPOT] P95`"),
    m("P99_TPOT", Milliseconds, Lower, None, "`[TPOT] P99`"),
    m(
        "MIN_GTPS",
        TokensPerSecondPerUser,
        Higher,
        None,
        "`[GTPS] MINIMUM`: per-request generation throughput (era D)",
    ),
    m(
        "MAX_GTPS",
        TokensPerSecondPerUser,
        Higher,
        None,
        "`[GTPS] MAXIMUM`",
    ),
    m(
        "AVG_GTPS",
        TokensPerSecondPerUser,
        Higher,
        None,
        "`[GTPS] AVERAGE`",
    ),
    m(
        "P50_GTPS",
        TokensPerSecondPerUser,
        Higher,
        None,
        "`[GTPS] P50`",
    ),
    m(
        "P90_GTPS",
        TokensPerSecondPerUser,
        Higher,
        None,
        "`[GTPS] P90`",
    ),
    m(
        "P95_GTPS",
        TokensPerSecondPerUser,
        Higher,
        None,
        "`[GTPS] P95`",
    ),
    m(
        "P99_GTPS",
        TokensPerSecondPerUser,
        Higher,
        None,
        "`[GTPS] P99`",
    ),
    // --- speculative decoding (`= DECODING STATISTICS (<mode>)`, values printed .2f) ---
    info(
        "MIN_DRAFT_TOKENS",
        Tokens,
        "`[DT] MINIMUM`: draft tokens per request",
    ),
    info("MAX_DRAFT_TOKENS", Tokens, "`[DT] MAXIMUM`"),
    info("AVG_DRAFT_TOKENS", Tokens, "`[DT] AVERAGE`"),
    info("P50_DRAFT_TOKENS", Tokens, "`[DT] P50`"),
    info("P90_DRAFT_TOKENS", Tokens, "`[DT] P90`"),
    info("P95_DRAFT_TOKENS", Tokens, "`[DT] P95`"),
    info("P99_DRAFT_TOKENS", Tokens, "`[DT] P99`"),
    m(
        "MIN_ACCEPTED_DRAFT_TOKENS",
        Tokens,
        Higher,
        None,
        "`[ADT] MINIMUM`: accepted draft tokens per request",
    ),
    m(
        "MAX_ACCEPTED_DRAFT_TOKENS",
        Tokens,
        Higher,
        None,
        "`[ADT] MAXIMUM`",
    ),
    m(
        "AVG_ACCEPTED_DRAFT_TOKENS",
        Tokens,
        Higher,
        None,
        "`[ADT] AVERAGE`",
    ),
    m(
        "P50_ACCEPTED_DRAFT_TOKENS",
        Tokens,
        Higher,
        None,
        "`[ADT] P50`",
    ),
    m(
        "P90_ACCEPTED_DRAFT_TOKENS",
        Tokens,
        Higher,
        None,
        "`[ADT] P90`",
    ),
    m(
        "P95_ACCEPTED_DRAFT_TOKENS",
        Tokens,
        Higher,
        None,
        "`[ADT] P95`",
    ),
    m(
        "P99_ACCEPTED_DRAFT_TOKENS",
        Tokens,
        Higher,
        None,
        "`[ADT] P99`",
    ),
    m(
        "MIN_DRAFT_ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "`[DAR] MINIMUM`: accepted / drafted tokens per request",
    ),
    m(
        "MAX_DRAFT_ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "`[DAR] MAXIMUM`",
    ),
    m(
        "AVG_DRAFT_ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "`[DAR] AVERAGE`",
    ),
    m(
        "P50_DRAFT_ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "`[DAR] P50`",
    ),
    m(
        "P90_DRAFT_ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "`[DAR] P90`",
    ),
    m(
        "P95_DRAFT_ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "`[DAR] P95`",
    ),
    m(
        "P99_DRAFT_ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "`[DAR] P99`",
    ),
    m(
        "MIN_ACCEPTANCE_LENGTH",
        Tokens,
        Higher,
        None,
        "`[AL] MINIMUM`: output tokens per decoding iteration",
    ),
    m(
        "MAX_ACCEPTANCE_LENGTH",
        Tokens,
        Higher,
        None,
        "`[AL] MAXIMUM`",
    ),
    m(
        "AVG_ACCEPTANCE_LENGTH",
        Tokens,
        Higher,
        None,
        "`[AL] AVERAGE`",
    ),
    m("P50_ACCEPTANCE_LENGTH", Tokens, Higher, None, "`[AL] P50`"),
    m("P90_ACCEPTANCE_LENGTH", Tokens, Higher, None, "`[AL] P90`"),
    m("P95_ACCEPTANCE_LENGTH", Tokens, Higher, None, "`[AL] P95`"),
    m("P99_ACCEPTANCE_LENGTH", Tokens, Higher, None, "`[AL] P99`"),
    // --- era-B latency report (`trtllm-bench latency`, ~0.15-0.17) ---
    m(
        "ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "`Acceptance Rate (Speculative)` of the era-B latency report (1.00 without speculative \
         decoding)",
    ),
    m(
        "MIN_GENERATION_LATENCY",
        Milliseconds,
        Lower,
        None,
        "`= GENERATION LATENCY BREAKDOWN` `MIN (ms)`",
    ),
    m(
        "MAX_GENERATION_LATENCY",
        Milliseconds,
        Lower,
        None,
        "`MAX (ms)`",
    ),
    m(
        "AVG_GENERATION_LATENCY",
        Milliseconds,
        Lower,
        None,
        "`AVG (ms)`",
    ),
    m(
        "P50_GENERATION_LATENCY",
        Milliseconds,
        Lower,
        None,
        "the line labelled `P90 (ms)`: upstream prints the p50 value under that label (a bug \
         in its report code), so perfgate stores it as what it is",
    ),
    m(
        "P95_GENERATION_LATENCY",
        Milliseconds,
        Lower,
        None,
        "`P95 (ms)`",
    ),
    m(
        "P99_GENERATION_LATENCY",
        Milliseconds,
        Lower,
        None,
        "`P99 (ms)`",
    ),
    m(
        "MIN_ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "`= ACCEPTANCE BREAKDOWN` `MIN`",
    ),
    m("MAX_ACCEPTANCE_RATE", Ratio, Higher, None, "`MAX`"),
    m("AVG_ACCEPTANCE_RATE", Ratio, Higher, None, "`AVG`"),
    m(
        "P50_ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "the line labelled `P90`: upstream prints the p50 value there too",
    ),
    m("P95_ACCEPTANCE_RATE", Ratio, Higher, None, "`P95`"),
    m("P99_ACCEPTANCE_RATE", Ratio, Higher, None, "`P99`"),
    // --- serving benchmark (benchmark_serving / vllm bench serve) ---
    m(
        "USER_THROUGHPUT",
        TokensPerSecondPerUser,
        Higher,
        Some((0.1, 10.0)),
        "serving `User throughput (tok/s)` (TensorRT-LLM's benchmark_serving). Upstream's \
         threshold sign says lower is better: an upstream bug",
    ),
    info("TOTAL_INPUT_TOKENS", Tokens, "serving `Total input tokens`"),
    info(
        "TOTAL_OUTPUT_TOKENS",
        Tokens,
        "serving `Total generated tokens`",
    ),
    m(
        "PEAK_OUTPUT_THROUGHPUT",
        TokensPerSecond,
        Higher,
        None,
        "serving `Peak output token throughput (tok/s)` (vLLM)",
    ),
    info(
        "PEAK_CONCURRENCY",
        Requests,
        "serving `Peak concurrent requests` (vLLM)",
    ),
    m(
        "MEAN_REQUEST_ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "serving `Mean Request AR` (TensorRT-LLM's benchmark_serving)",
    ),
    m(
        "MEDIAN_REQUEST_ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "serving `Median Request AR`",
    ),
    m(
        "AVG_DECODED_TOKENS_PER_ITER",
        Tokens,
        Higher,
        None,
        "serving `Mean Avg Decoded Tokens per Iter` (TensorRT-LLM's benchmark_serving, printed \
         only with speculative decoding): tokens accepted per decoding step, the acceptance \
         length. Perf-sanity stores it as `d_al` and gates it when a client decodes \
         speculatively",
    ),
    m(
        "DISAGG_SERVER_E2EL",
        Milliseconds,
        Lower,
        TIME,
        "upstream's name for a disaggregated-serving log's `Median E2EL (ms)`; perfgate stores \
         that line as MEDIAN_INFERENCE_TIME and Report::upstream_value maps this name to it",
    ),
    m(
        "DISAGG_SERVER_TTFT",
        Milliseconds,
        Lower,
        TIME,
        "upstream's name for a disaggregated-serving log's `Median TTFT (ms)`; stored as \
         MEDIAN_FIRST_TOKEN_TIME",
    ),
    // --- engine and runtime memory (log lines, not report sections) ---
    m(
        "KV_CACHE_SIZE",
        GiB,
        Higher,
        Some((-0.1, 50.0)),
        "per-GPU KV cache: `Allocated X GiB for max tokens in paged KV cache` (C++ KV cache \
         manager) or `Final KV cache size after resize: X GiB` (_autodeploy). Several lines \
         (ranks, or the PyTorch backend's small estimation pass before the real allocation): \
         the maximum, as upstream takes",
    ),
    m(
        "CONTEXT_GPU_MEMORY",
        MiB,
        Lower,
        Some((0.1, 50.0)),
        "`Allocated X MiB for execution context memory` (TensorRT engine runtime); maximum over \
         lines",
    ),
    m(
        "INFERENCE_PEAK_GPU_MEMORY",
        GB,
        Lower,
        Some((0.1, 0.1)),
        "upstream's legacy C++ benchmark `gpu_peak_mem(gb)`; not read from trtllm-bench logs \
         (listed for upstream-compatible CSVs)",
    ),
    // --- engine build ---
    m(
        "BUILD_TIME",
        Seconds,
        Lower,
        Some((0.1, 30.0)),
        "TensorRT `Engine generation completed in X seconds` (upstream's BUILD_TIME; its \
         threshold comment says ms but the value is seconds); maximum over lines (one per rank)",
    ),
    m(
        "BUILD_TOTAL_TIME",
        Seconds,
        Lower,
        None,
        "whole build wall time: `trtllm-bench build`'s `Total latency: Xs` (download, \
         quantization and engine build), trtllm-build's `Total time of building all engines: \
         HH:MM:SS`",
    ),
    m(
        "BUILD_PEAK_CPU_MEMORY",
        MiB,
        Lower,
        Some((0.1, 100.0)),
        "TensorRT `Peak memory usage during Engine building and serialization: CPU: X MiB`",
    ),
    m(
        "BUILD_PEAK_GPU_MEMORY",
        MiB,
        Lower,
        Some((0.1, 100.0)),
        "TensorRT `Peak memory usage of TRT CPU/GPU memory allocators: CPU .., GPU X MiB`",
    ),
    m(
        "ENGINE_SIZE",
        MiB,
        Lower,
        Some((0.3, 100.0)),
        "`Total engine size per GPU is X MiB` (upstream's legacy build script)",
    ),
    // GPU telemetry of the benchmark step (NVML, `src/telemetry`), over the GPUs the case uses.
    // Informational: they explain a change (a clock, a power cap), the gate does not judge them
    // unless `--gate-metrics` names them.
    m(
        "GPU_ENERGY",
        Joules,
        Lower,
        None,
        "NVML energy counter delta over the step, all GPUs (else the integral of power)",
    ),
    m(
        "JOULES_PER_OUTPUT_TOKEN",
        JoulesPerToken,
        Lower,
        None,
        "GPU_ENERGY / output tokens of the step",
    ),
    m(
        "OUTPUT_TOKENS_PER_JOULE",
        TokensPerJoule,
        Higher,
        None,
        "output tokens of the step / GPU_ENERGY",
    ),
    m(
        "GPU_POWER_MEAN",
        Watts,
        Lower,
        None,
        "mean total board power (NVML)",
    ),
    m(
        "GPU_POWER_MAX",
        Watts,
        Lower,
        None,
        "highest total board power (NVML)",
    ),
    info("SM_CLOCK_MIN", Megahertz, "lowest SM clock sampled (NVML)"),
    info("SM_CLOCK_MEAN", Megahertz, "mean SM clock (NVML)"),
    info("MEM_CLOCK_MEAN", Megahertz, "mean memory clock (NVML)"),
    m(
        "GPU_TEMP_MAX",
        Celsius,
        Lower,
        None,
        "highest GPU temperature (NVML)",
    ),
    m(
        "MEM_TEMP_MAX",
        Celsius,
        Lower,
        None,
        "highest HBM temperature (NVML)",
    ),
    info("GPU_UTIL_MEAN", Percent, "mean GPU utilization (NVML)"),
    m(
        "GPU_MEMORY_USED_MAX",
        GiB,
        Lower,
        None,
        "most GPU memory in use on one GPU (NVML)",
    ),
    info(
        "TELEMETRY_SAMPLES",
        Samples,
        "NVML samples taken during the step",
    ),
    // The sysfs power sources (`--power rapl|jetson|auto`, `src/telemetry`): CPU-served models
    // (RAPL) and Jetson boards. Informational like the GPU ones.
    m(
        "RAPL_ENERGY",
        Joules,
        Lower,
        None,
        "RAPL energy counter deltas over the step: the packages and DRAM (wraps corrected)",
    ),
    m(
        "RAPL_POWER_MEAN",
        Watts,
        Lower,
        None,
        "RAPL_ENERGY over the time between the step's first and last readings",
    ),
    m(
        "RAPL_JOULES_PER_OUTPUT_TOKEN",
        JoulesPerToken,
        Lower,
        None,
        "RAPL_ENERGY / output tokens of the step",
    ),
    m(
        "JETSON_ENERGY",
        Joules,
        Lower,
        None,
        "trapezoid integral of the Jetson INA3221 power: the module input rail, else all rails",
    ),
    m(
        "JETSON_POWER_MEAN",
        Watts,
        Lower,
        None,
        "JETSON_ENERGY over the time between the step's first and last readings",
    ),
    m(
        "JETSON_JOULES_PER_OUTPUT_TOKEN",
        JoulesPerToken,
        Lower,
        None,
        "JETSON_ENERGY / output tokens of the step",
    ),
    // `perfgate sweep` cases, one per test (pp512, tg128, pp512+tg128): llama-bench's figures.
    m(
        "SWEEP_TOKENS_PER_SECOND",
        TokensPerSecond,
        Higher,
        None,
        "mean over a sweep test's repetitions of its tokens (prompt, generated, or both) / the \
         repetition's time (llama-bench's avg_ts)",
    ),
    m(
        "SWEEP_TIME",
        Milliseconds,
        Lower,
        None,
        "mean time of a sweep test's repetition, request sent to response ended (llama-bench's \
         avg_ns)",
    ),
    m(
        "SWEEP_TTFT",
        Milliseconds,
        Lower,
        None,
        "mean time to the first generated token of a sweep test's repetitions",
    ),
    m(
        "SWEEP_JOULES_PER_TOKEN",
        JoulesPerToken,
        Lower,
        None,
        "energy of a sweep test's repetitions (every power source measured) / their tokens",
    ),
    m(
        "SWEEP_POWER_MEAN",
        Watts,
        Lower,
        None,
        "mean power of every power source measured during a sweep test's repetitions, added",
    ),
    // `perfgate ab` cases: side A (the target alone) against side B (with the draft).
    m(
        "AB_SPEEDUP",
        Ratio,
        Higher,
        None,
        "B's output tokens/s over A's: the geometric mean over the paired blocks",
    ),
    m(
        "AB_SPEEDUP_CI_LOW",
        Ratio,
        Higher,
        None,
        "lower end of AB_SPEEDUP's confidence interval (Student's t over the paired blocks' log \
         ratios; 95%)",
    ),
    m(
        "AB_SPEEDUP_CI_HIGH",
        Ratio,
        Higher,
        None,
        "upper end of AB_SPEEDUP's confidence interval",
    ),
    m(
        "AB_LATENCY_SPEEDUP",
        Ratio,
        Higher,
        None,
        "A's mean end-to-end latency over B's: the geometric mean over the paired blocks",
    ),
    m(
        "AB_ACCEPTANCE_RATE",
        Ratio,
        Higher,
        None,
        "side B's accepted draft tokens / drafted tokens over all its requests (llama.cpp \
         timings draft_n_accepted / draft_n, vLLM /metrics)",
    ),
    m(
        "AB_A_OUTPUT_THROUGHPUT",
        TokensPerSecond,
        Higher,
        None,
        "side A's generated tokens / the time of its blocks",
    ),
    m(
        "AB_B_OUTPUT_THROUGHPUT",
        TokensPerSecond,
        Higher,
        None,
        "side B's generated tokens / the time of its blocks",
    ),
    m(
        "AB_A_MEDIAN_E2E_LATENCY",
        Milliseconds,
        Lower,
        None,
        "side A's median request end-to-end latency",
    ),
    m(
        "AB_B_MEDIAN_E2E_LATENCY",
        Milliseconds,
        Lower,
        None,
        "side B's median request end-to-end latency",
    ),
    m(
        "AB_A_JOULES_PER_TOKEN",
        JoulesPerToken,
        Lower,
        None,
        "energy while side A ran (every power source measured) / its generated tokens",
    ),
    m(
        "AB_B_JOULES_PER_TOKEN",
        JoulesPerToken,
        Lower,
        None,
        "energy while side B ran (every power source measured) / its generated tokens",
    ),
];

/// Looks a metric up by name (exact, case-sensitive).
pub fn metric(name: &str) -> Option<&'static MetricDef> {
    static INDEX: OnceLock<HashMap<&'static str, &'static MetricDef>> = OnceLock::new();
    INDEX
        .get_or_init(|| METRICS.iter().map(|d| (d.name, d)).collect())
        .get(name)
        .copied()
}
