//! Text → typed metrics: trtllm-bench throughput/latency reports of every era (A, B, C, C', D
//! and the era-B latency report), `trtllm-bench build` and `trtllm-build` output, the serving
//! benchmark's result block, and trtllm-bench's `--report_json` file.
//!
//! Knows nothing of tests or baselines: a [`Report`] is what one log says, with every value in
//! the unit of its [`crate::record::metric::MetricDef`].
//!
//! Decisions (also in docs/design/report-eras.md):
//! - **Structure, not labels.** A value is read only inside a report section: a `= TITLE` line
//!   confirmed by a rule of exactly 59 `=` (or the serving benchmark's own framing). A script
//!   that prints trtllm-bench's labels without that frame is not a report (kind
//!   [`ReportKind::Unknown`], with a warning saying why).
//! - **Era from the text.** Wording and line order decide the era; excerpts that do not show
//!   enough get `era: None` and a `missing` list of only what every candidate era prints.
//! - **Units are normalised** to the table's: era A's `Total Latency (seconds)` and serving's
//!   `Benchmark duration (s)` become milliseconds by exact decimal scaling.
//! - **TOKEN_THROUGHPUT** is upstream's name for the per-GPU output throughput (its regex matches
//!   inside `Per GPU Output Throughput (tps/gpu)`); perfgate stores it with
//!   PER_GPU_OUTPUT_THROUGHPUT wherever a per-GPU line is printed (eras C, C', D). Eras A and B
//!   print only the total (`Token Throughput (tokens/sec)`, stored as TOTAL_OUTPUT_THROUGHPUT):
//!   there TOKEN_THROUGHPUT is absent rather than made up by dividing by the world size.
//! - **KV cache** (`Allocated X GiB for max tokens in paged KV cache`, `Final KV cache size after
//!   resize: X GiB`): the maximum over all such lines, as upstream. Lines carry no reliable rank,
//!   and the PyTorch backend first allocates a small cache to measure memory, then the real one:
//!   the maximum is the real per-GPU cache of the largest rank.
//! - **Two reports in one log**: `reports_found` counts them, a warning names their lines, and
//!   the values of the last one are kept (it is the run that finished last; mixing values of
//!   different runs, as upstream's per-line regexes do, gives a report no run produced).
//! - **Bad values** (NaN, infinities, negative numbers, a line cut by the end of the log) are
//!   never stored; a warning names the line.
//! - `failed_requests`: the largest `Failed requests: N` in the log (any failure matters).

mod eras;
mod json;
mod label;
mod logline;
mod scan;
mod serve;
mod text;

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::record::metric::{METRICS, MetricDef, Unit, metric};

/// What kind of output a log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// `trtllm-bench throughput` (and today's `trtllm-bench latency`, whose report is the same
    /// text).
    Throughput,
    /// The era-B `trtllm-bench latency` report (GENERAL/THROUGHPUT/LATENCY OVERVIEW sections).
    Latency,
    /// `trtllm-bench build` (ENGINE BUILD INFO, ENGINE SAVED).
    Build,
    /// `trtllm-build` (TensorRT engine generation lines, no trtllm-bench framing).
    TrtllmBuild,
    /// A serving benchmark's result block (benchmark_serving, vllm bench serve).
    Serve,
    /// None of the above.
    Unknown,
}

/// What one log says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub kind: ReportKind,
    /// `"A"`, `"B"`, `"C"`, `"C'"`, `"D"` for trtllm-bench reports whose text shows the era.
    pub era: Option<String>,
    /// Keys are [`METRICS`] names; values are in that metric's unit.
    pub metrics: BTreeMap<String, f64>,
    /// Metrics a complete report of this kind and era prints that this text lacks (in
    /// [`METRICS`] order).
    pub missing: Vec<String>,
    pub warnings: Vec<String>,
    /// Report blocks seen, complete or partial (2 = two reports in one log).
    pub reports_found: usize,
    /// The largest `Failed requests: N` in the log.
    pub failed_requests: Option<u64>,
    /// `!FAILED REQUESTS!`, `!CHECK LOG FOR ERRORS!` if the text contains them.
    pub error_markers: Vec<String>,
    /// The report has streaming sections (TTFT/TPOT).
    pub streaming: bool,
    /// Why its values cannot be trusted, each with the numbers: two records of the run (the log
    /// and report.json) that disagree beyond print rounding, or values that no run can produce
    /// together (see [`consistency`]). A measurement whose report has any is INVALID: the
    /// caller turns them into validity evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contradictions: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read the log: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "report.json is not valid JSON: {message} (expected the object trtllm-bench \
         --report_json writes)"
    )]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    NotAReport(String),
}

/// Reads a log line by line; memory does not grow with its length.
pub fn parse_reader<R: BufRead>(r: R) -> Result<Report, ReportError> {
    let mut scanner = scan::Scanner::new();
    text::for_each_line(r, |line, terminated| scanner.line(line, terminated))?;
    Ok(scanner.finish())
}

/// Reads a log held in memory. Note that a last line without a newline counts as cut.
pub fn parse_str(text: &str) -> Report {
    let mut scanner = scan::Scanner::new();
    // Reading from a byte slice cannot fail.
    let read = text::for_each_line(text.as_bytes(), |line, terminated| {
        scanner.line(line, terminated)
    });
    let mut report = scanner.finish();
    if let Err(e) = read {
        report
            .warnings
            .push(format!("reading the text failed: {e}"));
    }
    report
}

/// Reads trtllm-bench's `--report_json` file.
pub fn parse_report_json(text: &str) -> Result<Report, ReportError> {
    json::parse(text)
}

/// Combines what the console log says with the same run's report.json: report.json values
/// win (they are not rounded for printing); each one the text also has is cross-checked, and a
/// difference beyond the text's print rounding is a contradiction (two records of one run that
/// disagree: neither can be believed, so the measurement is INVALID with both values named);
/// text-only metrics (KV cache, build, the serving block) are kept; warnings of both are merged.
pub fn reconcile(text: Report, json: Option<Report>) -> Report {
    let Some(json) = json else {
        return text;
    };
    let mut out = text;
    let mut contradictions: Vec<String> = Vec::new();
    for (name, jv) in &json.metrics {
        if let Some(tv) = out.metrics.get(name) {
            let tolerance = print_tolerance(name, *tv);
            if (tv - jv).abs() > tolerance {
                contradictions.push(format!(
                    "{name}: report.json says {}, the log says {} (more than the log's print \
                     rounding apart): two records of one run disagree",
                    fmt_exact(*jv),
                    fmt_exact(*tv)
                ));
            }
        }
        out.metrics.insert(name.clone(), *jv);
    }
    if out.kind == ReportKind::Unknown {
        out.warnings
            .push("the log holds no report: every value comes from report.json alone".to_string());
        out.kind = json.kind;
    }
    out.streaming |= json.streaming;
    let mut missing: Vec<String> = out.missing.clone();
    missing.extend(json.missing.iter().cloned());
    out.missing = METRICS
        .iter()
        .map(|d| d.name)
        .filter(|n| missing.iter().any(|m| m == n) && !out.metrics.contains_key(*n))
        .map(str::to_string)
        .collect();
    out.warnings.extend(json.warnings);
    // The merged values are checked afresh: each source's own findings are about values that
    // may have been replaced.
    contradictions.extend(consistency(&out.metrics));
    out.contradictions = contradictions;
    out
}

/// Relative slack of [`consistency`]'s bounds: the quantities are measured by different clocks
/// and counters of one run (a request's latency from its submission, the benchmark's duration
/// from its first request). Real logs come within 0.2% of each bound; these bounds are there to
/// catch values no run produced, not to measure clocks.
const CONSISTENCY_SLACK: f64 = 0.05;

/// The coarsest printing of the values [`consistency`] relates: the serving benchmark prints
/// its duration in seconds and its request rate with two decimals (±0.005).
const COARSEST_PRINT: f64 = 0.005;

/// Values no run can produce together, whatever the hardware (so no GPU type is needed):
///
/// - **No latency outlasts the benchmark.** Every request-level or token-level latency
///   statistic (TTFT, TPOT, ITL, end-to-end, their percentiles) is a time within the benchmark,
///   so it is at most its duration (`INFERENCE_TIME`). A P50 TTFT of 1e300 ms is caught here,
///   where no roofline bound (a floor on time, a ceiling on speed) can see it.
/// - **One GPU's share is at most the whole**: the per-GPU output throughput is at most the
///   total output throughput.
/// - **Requests = rate x duration**: `SEQ_THROUGHPUT` x `INFERENCE_TIME` is the request count
///   (both are computed from it), within the printing of both.
pub fn consistency(metrics: &BTreeMap<String, f64>) -> Vec<String> {
    let mut found = Vec::new();
    let get = |k: &str| metrics.get(k).copied();
    if let Some(total) = get("INFERENCE_TIME") {
        // The duration may be printed in whole hundredths of a second.
        let ceiling = total * (1.0 + CONSISTENCY_SLACK) + COARSEST_PRINT * 1000.0;
        for def in METRICS.iter().filter(|d| is_within_benchmark(d)) {
            if let Some(v) = get(def.name).filter(|v| *v > ceiling) {
                found.push(format!(
                    "{} is {} ms, longer than the whole benchmark it was measured in \
                     (INFERENCE_TIME {} ms): impossible",
                    def.name,
                    fmt_value(v),
                    fmt_value(total)
                ));
            }
        }
        if let (Some(rps), Some(n)) = (get("SEQ_THROUGHPUT"), get("NUM_REQUESTS")) {
            let seconds = total / 1000.0;
            let implied = rps * seconds;
            // How far rounding the rate and the duration can move their product.
            let rounding = COARSEST_PRINT * (seconds + rps);
            let slack = n.abs().max(implied.abs()) * CONSISTENCY_SLACK + rounding + 0.5;
            if (implied - n).abs() > slack {
                found.push(format!(
                    "SEQ_THROUGHPUT {} req/s x INFERENCE_TIME {} ms = {} requests, but \
                     NUM_REQUESTS is {}: the rate, the duration and the count do not belong to \
                     one run",
                    fmt_value(rps),
                    fmt_value(total),
                    fmt_value(implied),
                    fmt_value(n)
                ));
            }
        }
    }
    let total_output = get("TOTAL_OUTPUT_THROUGHPUT");
    for per_gpu in ["PER_GPU_OUTPUT_THROUGHPUT", "TOKEN_THROUGHPUT"] {
        if let (Some(g), Some(t)) = (get(per_gpu), total_output)
            && g > t * (1.0 + CONSISTENCY_SLACK) + print_tolerance(per_gpu, t)
        {
            found.push(format!(
                "{per_gpu} is {} tok/s per GPU, more than the total output throughput of all \
                 GPUs (TOTAL_OUTPUT_THROUGHPUT {} tok/s): impossible",
                fmt_value(g),
                fmt_value(t)
            ));
        }
    }
    found
}

/// A latency of one request or token: a time inside the benchmark (not the benchmark's own
/// duration, not a build time, not upstream's legacy C++ sequence latency).
fn is_within_benchmark(def: &MetricDef) -> bool {
    def.unit == Unit::Milliseconds && !matches!(def.name, "INFERENCE_TIME" | "SEQ_LATENCY")
}

/// A value for a message, every digit kept, in exponent notation when huge or tiny (a forged
/// 1e300 is not 301 digits).
fn fmt_exact(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e15).contains(&a) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// A value for a message.
fn fmt_value(v: f64) -> String {
    crate::textutil::display_num(v)
}

/// How far a printed value may be from the exact one: half a unit in the last printed place
/// (trtllm-bench prints `.4f`, and `.2f` for speculative-decoding statistics), plus a hair for
/// the float itself.
fn print_tolerance(name: &str, printed: f64) -> f64 {
    // DRAFT_TOKENS, ACCEPTED_DRAFT_TOKENS, DRAFT_ACCEPTANCE_RATE, ACCEPTANCE_LENGTH and the
    // era-B ACCEPTANCE_RATE family are printed with two decimals.
    let two_decimals = ["DRAFT_TOKENS", "ACCEPTANCE_RATE", "ACCEPTANCE_LENGTH"]
        .iter()
        .any(|f| name.ends_with(f));
    let half_unit = if two_decimals { 0.005 } else { 0.00005 };
    half_unit + printed.abs() * 1e-12
}

impl Report {
    /// The value upstream's harness records under `upstream_metric` for this log: the same
    /// quantity, in the same unit. Differs from `metrics[name]` where upstream's regexes give a
    /// name another meaning: in a serving log upstream stores the mean E2EL as INFERENCE_TIME
    /// and the total output throughput as TOKEN_THROUGHPUT, and calls the median E2EL/TTFT
    /// DISAGG_SERVER_E2EL/TTFT in disaggregated tests. `None` for names upstream does not have
    /// (P50_LATENCY, ...) and for values the log lacks.
    ///
    /// Not bug-for-bug: values upstream's newest regexes miss but the log has (era A's
    /// `Total Latency (seconds)`, era C's `(tokens/sec/gpu)` wording, vLLM's lower-case
    /// `Total token throughput`) are returned; with two reports in one log, the kept one's
    /// values are returned where upstream would take each metric's maximum over both.
    pub fn upstream_value(&self, upstream_metric: &str) -> Option<f64> {
        let def = metric(upstream_metric)?;
        if !def.is_upstream() {
            return None;
        }
        let source = match (self.kind, upstream_metric) {
            (ReportKind::Serve, "TOKEN_THROUGHPUT") => "TOTAL_OUTPUT_THROUGHPUT",
            (ReportKind::Serve, "INFERENCE_TIME") => "AVG_REQUEST_LATENCY",
            (ReportKind::Serve, "DISAGG_SERVER_E2EL") => "MEDIAN_INFERENCE_TIME",
            (ReportKind::Serve, "DISAGG_SERVER_TTFT") => "MEDIAN_FIRST_TOKEN_TIME",
            (_, name) => name,
        };
        self.metrics.get(source).copied()
    }

    /// The log held a report (or build output) with at least one value.
    pub fn is_report(&self) -> bool {
        self.kind != ReportKind::Unknown && !self.metrics.is_empty()
    }
}
