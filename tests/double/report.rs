//! The report text of each era (reference §4, checked against the bench_logs samples) and the
//! `--report_json` document (§6), both from the same metrics.

use serde_json::{Value, json};

use crate::faults::Era;
use crate::fmt::{RULE, f4, padded, py_exp, py_repr, section, tabbed, table_num};
use crate::sim::{Metrics, Pct};

/// A TensorRT engine's details (from its config.json).
pub struct EngineInfo {
    pub dir: String,
    pub max_input_len: i64,
    pub max_seq_len: i64,
}

/// What the report says about the run besides the metrics.
pub struct RunInfo {
    pub era: Era,
    pub model: String,
    pub model_path: Option<String>,
    /// Some for the TensorRT backend.
    pub engine: Option<EngineInfo>,
    /// `Pytorch`, `TRT` or `_autodeploy` (report.json's `engine.backend`).
    pub backend: &'static str,
    pub dtype: String,
    pub kv_cache_dtype: Option<String>,
    pub quantization: Option<String>,
    pub tp: u32,
    pub pp: u32,
    pub ep: Option<i64>,
    pub max_batch_size: i64,
    pub max_num_tokens: i64,
    pub kv_fraction: f64,
    pub max_utilization: bool,
    pub dataset_path: String,
    /// Requests the `failed-requests` mode reports as failed.
    pub failed: usize,
}

fn none_or(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "None".into())
}

impl RunInfo {
    fn policy_title(&self) -> &'static str {
        if self.max_utilization {
            "Max Utilization"
        } else {
            "Guaranteed No Evict"
        }
    }

    fn policy_enum(&self) -> &'static str {
        if self.max_utilization {
            "MAX_UTILIZATION"
        } else {
            "GUARANTEED_NO_EVICT"
        }
    }

    fn ep_text(&self) -> String {
        self.ep.map_or("None".into(), |e| e.to_string())
    }

    /// ENGINE DETAILS (TensorRT) or the PyTorch block, TAB-separated as on a real console.
    fn backend_block(&self, lines: &mut Vec<String>, pytorch_title: &str, with_model_path: bool) {
        let version = self.era.version();
        match &self.engine {
            Some(e) => {
                section(lines, "ENGINE DETAILS", false);
                lines.push(tabbed("Model:", 24, &self.model));
                if with_model_path {
                    lines.push(tabbed("Model Path:", 24, &none_or(&self.model_path)));
                }
                lines.push(tabbed("Engine Directory:", 24, &e.dir));
                lines.push(tabbed("TensorRT-LLM Version:", 24, version));
                lines.push(tabbed("Dtype:", 24, &self.dtype));
                lines.push(tabbed(
                    "KV Cache Dtype:",
                    24,
                    &none_or(&self.kv_cache_dtype),
                ));
                lines.push(tabbed("Quantization:", 24, &none_or(&self.quantization)));
                lines.push(tabbed(
                    "Max Input Length:",
                    24,
                    &e.max_input_len.to_string(),
                ));
                lines.push(tabbed(
                    "Max Sequence Length:",
                    24,
                    &e.max_seq_len.to_string(),
                ));
            }
            None => {
                section(lines, pytorch_title, false);
                lines.push(tabbed("Model:", 24, &self.model));
                lines.push(tabbed("Model Path:", 24, &none_or(&self.model_path)));
                lines.push(tabbed("TensorRT-LLM Version:", 24, version));
                lines.push(tabbed("Dtype:", 24, &self.dtype));
                lines.push(tabbed(
                    "KV Cache Dtype:",
                    24,
                    &none_or(&self.kv_cache_dtype),
                ));
                lines.push(tabbed("Quantization:", 24, &none_or(&self.quantization)));
            }
        }
        lines.push(String::new());
    }

    fn failed_lines(&self, lines: &mut Vec<String>, width: usize) {
        if self.failed > 0 {
            lines.push(padded("Failed requests:", width, &self.failed.to_string()));
            lines.push("=======================!FAILED REQUESTS!=======================".into());
        }
    }
}

/// The throughput report (and, from era C on, the latency report: upstream prints the same
/// streaming report for both). The first line is the logger line the report starts on.
pub fn throughput(info: &RunInfo, m: &Metrics) -> Vec<String> {
    match info.era {
        Era::A => era_a(info, m),
        Era::B => era_b(info, m),
        Era::C | Era::CPrime | Era::D => era_cd(info, m),
    }
}

fn era_a(info: &RunInfo, m: &Metrics) -> Vec<String> {
    let mut l = Vec::new();
    section(&mut l, "ENGINE DETAILS", false);
    l.push(tabbed("Model:", 24, &info.model));
    let dir = info
        .engine
        .as_ref()
        .map_or("None".to_string(), |e| e.dir.clone());
    l.push(tabbed("Engine Directory:", 24, &dir));
    l.push(tabbed("TensorRT-LLM Version:", 24, info.era.version()));
    l.push(tabbed("Dtype:", 24, &info.dtype));
    l.push(tabbed(
        "KV Cache Dtype:",
        24,
        &none_or(&info.kv_cache_dtype),
    ));
    l.push(tabbed("Quantization:", 24, &none_or(&info.quantization)));
    if let Some(e) = &info.engine {
        l.push(tabbed(
            "Max Input Length:",
            24,
            &e.max_input_len.to_string(),
        ));
        l.push(tabbed(
            "Max Sequence Length:",
            24,
            &e.max_seq_len.to_string(),
        ));
    }
    l.push(String::new());
    section(&mut l, "WORLD + RUNTIME INFORMATION", false);
    l.push(tabbed("TP Size:", 24, &info.tp.to_string()));
    l.push(tabbed("PP Size:", 24, &info.pp.to_string()));
    l.push(tabbed(
        "Max Runtime Batch Size:",
        24,
        &info.max_batch_size.to_string(),
    ));
    l.push(tabbed(
        "Max Runtime Tokens:",
        24,
        &info.max_num_tokens.to_string(),
    ));
    l.push(tabbed("Scheduling Policy:", 24, info.policy_title()));
    l.push(tabbed(
        "KV Memory Percentage:",
        24,
        &format!("{}%", py_repr(info.kv_fraction * 100.0)),
    ));
    l.push(tabbed("Issue Rate (req/sec):", 24, &py_repr(m.issue_rate)));
    // Era A has no blank line between WORLD and STATISTICS.
    section(&mut l, "STATISTICS", false);
    l.push(tabbed(
        "Number of requests:",
        32,
        &m.num_requests.to_string(),
    ));
    l.push(tabbed(
        "Average Input Length (tokens):",
        32,
        &py_repr(m.isl.average),
    ));
    l.push(tabbed(
        "Average Output Length (tokens):",
        32,
        &py_repr(m.osl.average),
    ));
    l.push(tabbed(
        "Token Throughput (tokens/sec):",
        32,
        &py_repr(m.output_throughput),
    ));
    l.push(tabbed(
        "Request Throughput (req/sec):",
        32,
        &py_repr(m.request_throughput),
    ));
    l.push(tabbed(
        "Total Latency (seconds):",
        32,
        &py_repr(m.total_latency_ns as f64 / 1e9),
    ));
    info.failed_lines(&mut l, 32);
    l.push(RULE.into());
    l
}

fn world_b(info: &RunInfo, l: &mut Vec<String>, issue_rate: Option<f64>) {
    section(l, "WORLD + RUNTIME INFORMATION", false);
    l.push(tabbed("TP Size:", 24, &info.tp.to_string()));
    l.push(tabbed("PP Size:", 24, &info.pp.to_string()));
    l.push(tabbed(
        "Max Runtime Batch Size:",
        24,
        &info.max_batch_size.to_string(),
    ));
    l.push(tabbed(
        "Max Runtime Tokens:",
        24,
        &info.max_num_tokens.to_string(),
    ));
    l.push(tabbed("Scheduling Policy:", 24, info.policy_title()));
    l.push(tabbed(
        "KV Memory Percentage:",
        24,
        &format!("{:.2}%", info.kv_fraction * 100.0),
    ));
    if let Some(rate) = issue_rate {
        l.push(tabbed("Issue Rate (req/sec):", 24, &py_exp(rate, 4, true)));
    }
    l.push(String::new());
}

fn era_b(info: &RunInfo, m: &Metrics) -> Vec<String> {
    let mut l = vec![String::new(), String::new()];
    info.backend_block(&mut l, "PyTorch backend", false);
    world_b(info, &mut l, Some(m.issue_rate));
    section(&mut l, "PERFORMANCE OVERVIEW", false);
    l.push(tabbed(
        "Number of requests:",
        32,
        &m.num_requests.to_string(),
    ));
    l.push(tabbed(
        "Average Input Length (tokens):",
        32,
        &f4(m.isl.average),
    ));
    l.push(tabbed(
        "Average Output Length (tokens):",
        32,
        &f4(m.osl.average),
    ));
    l.push(tabbed(
        "Token Throughput (tokens/sec):",
        32,
        &f4(m.output_throughput),
    ));
    l.push(tabbed(
        "Request Throughput (req/sec):",
        32,
        &f4(m.request_throughput),
    ));
    l.push(tabbed(
        "Total Latency (ms):",
        32,
        &f4(m.total_latency_ns as f64 / 1e6),
    ));
    info.failed_lines(&mut l, 32);
    l.push(String::new());
    l.push(RULE.into());
    l
}

fn breakdown(l: &mut Vec<String>, header: &str, tag: &str, p: &Pct) {
    l.push(String::new());
    l.push(header.into());
    l.push(String::new());
    for (name, v) in [
        ("MINIMUM", p.minimum),
        ("MAXIMUM", p.maximum),
        ("AVERAGE", p.average),
        ("P50", p.p50),
        ("P90", p.p90),
        ("P95", p.p95),
        ("P99", p.p99),
    ] {
        l.push(format!("[{tag}] {name:<7}: {}", f4(v)));
    }
}

fn era_cd(info: &RunInfo, m: &Metrics) -> Vec<String> {
    let era = info.era;
    // From ~1.0 the REQUEST/WORLD/PERFORMANCE titles end with a space.
    let ts = era == Era::D;
    let mut l = vec![String::new(), String::new()];
    info.backend_block(&mut l, "PYTORCH BACKEND", true);

    section(&mut l, "REQUEST DETAILS", ts);
    l.push(padded(
        "Number of requests:",
        32,
        &m.num_requests.to_string(),
    ));
    l.push(padded(
        "Number of concurrent requests:",
        32,
        &f4(m.avg_concurrency),
    ));
    l.push(padded(
        "Average Input Length (tokens):",
        32,
        &f4(m.isl.average),
    ));
    l.push(padded(
        "Average Output Length (tokens):",
        32,
        &f4(m.osl.average),
    ));

    section(&mut l, "WORLD + RUNTIME INFORMATION", ts);
    l.push(padded("TP Size:", 24, &info.tp.to_string()));
    l.push(padded("PP Size:", 24, &info.pp.to_string()));
    l.push(padded("EP Size:", 24, &info.ep_text()));
    l.push(padded(
        "Max Runtime Batch Size:",
        24,
        &info.max_batch_size.to_string(),
    ));
    l.push(padded(
        "Max Runtime Tokens:",
        24,
        &info.max_num_tokens.to_string(),
    ));
    l.push(padded("Scheduling Policy:", 24, info.policy_enum()));
    l.push(padded(
        "KV Memory Percentage:",
        24,
        &format!("{:.2}%", info.kv_fraction * 100.0),
    ));
    l.push(padded(
        "Issue Rate (req/sec):",
        24,
        &py_exp(m.issue_rate, 4, true),
    ));
    l.push(String::new());

    section(&mut l, "PERFORMANCE OVERVIEW", ts);
    let total_ms = m.total_latency_ns as f64 / 1e6;
    let mut perf: Vec<(&str, f64)> = Vec::new();
    match era {
        Era::D => {
            perf.push(("Request Throughput (req/sec):", m.request_throughput));
            perf.push(("Total Output Throughput (tokens/sec):", m.output_throughput));
            perf.push((
                "Total Token Throughput (tokens/sec):",
                m.total_token_throughput,
            ));
            perf.push(("Total Latency (ms):", total_ms));
            perf.push(("Average request latency (ms):", m.latency_ms.average));
            perf.push((
                "Per User Output Throughput [w/ ctx] (tps/user):",
                m.per_user_output_throughput,
            ));
            perf.push((
                "Per GPU Output Throughput (tps/gpu):",
                m.per_gpu_output_throughput,
            ));
        }
        _ => {
            perf.push(("Request Throughput (req/sec):", m.request_throughput));
            perf.push(("Total Output Throughput (tokens/sec):", m.output_throughput));
            perf.push((
                "Per User Output Throughput (tokens/sec/user):",
                m.per_user_output_throughput,
            ));
            perf.push((
                "Per GPU Output Throughput (tokens/sec/gpu):",
                m.per_gpu_output_throughput,
            ));
            if era == Era::CPrime {
                perf.push((
                    "Total Token Throughput (tokens/sec):",
                    m.total_token_throughput,
                ));
            }
            perf.push(("Total Latency (ms):", total_ms));
            perf.push(("Average request latency (ms):", m.latency_ms.average));
        }
    }
    if let Some(s) = &m.streaming {
        let speed = s.gen_tps.average;
        if era == Era::D {
            perf.push((
                "Average time-to-first-token [TTFT] (ms):",
                s.ttft_ms.average,
            ));
            perf.push((
                "Average time-per-output-token [TPOT] (ms):",
                s.tpot_ms.average,
            ));
            perf.push(("Per User Output Speed (tps/user):", speed));
        } else {
            perf.push(("Per User Output Speed [1/TPOT] (tokens/sec/user):", speed));
            perf.push((
                "Average time-to-first-token [TTFT] (ms):",
                s.ttft_ms.average,
            ));
            perf.push((
                "Average time-per-output-token [TPOT] (ms):",
                s.tpot_ms.average,
            ));
        }
    }
    for (label, v) in perf {
        l.push(padded(label, 50, &f4(v)));
    }
    info.failed_lines(&mut l, 50);
    if let Some(s) = &m.streaming {
        breakdown(
            &mut l,
            "-- Per-Request Time-per-Output-Token [TPOT] Breakdown (ms)",
            "TPOT",
            &s.tpot_ms,
        );
        breakdown(
            &mut l,
            "-- Per-Request Time-to-First-Token [TTFT] Breakdown (ms)",
            "TTFT",
            &s.ttft_ms,
        );
        if era == Era::D {
            breakdown(
                &mut l,
                "-- Per-Request Generation Throughput [GTPS] Breakdown (tps/user)",
                "GTPS",
                &s.gen_tps,
            );
        }
    }
    l.push(String::new());
    l.push("-- Request Latency Breakdown (ms) -----------------------".into());
    l.push(String::new());
    let p = &m.latency_ms;
    for (name, v) in [
        ("P50", p.p50),
        ("P90", p.p90),
        ("P95", p.p95),
        ("P99", p.p99),
        ("MINIMUM", p.minimum),
        ("MAXIMUM", p.maximum),
        ("AVERAGE", p.average),
    ] {
        l.push(format!("[Latency] {name:<7}: {}", f4(v)));
    }
    l.push(String::new());

    section(&mut l, "DATASET DETAILS", false);
    l.push(padded("Dataset Path:", 22, &info.dataset_path));
    l.push(padded(
        "Number of Sequences:",
        22,
        &m.num_requests.to_string(),
    ));
    l.push(String::new());
    l.push("-- Percentiles statistics ---------------------------------".into());
    l.push(String::new());
    l.push("        Input              Output           Seq. Length".into());
    l.push("-".repeat(59));
    for (name, get) in [
        ("MIN", (|p: &Pct| p.minimum) as fn(&Pct) -> f64),
        ("MAX", |p: &Pct| p.maximum),
        ("AVG", |p: &Pct| p.average),
        ("P50", |p: &Pct| p.p50),
        ("P90", |p: &Pct| p.p90),
        ("P95", |p: &Pct| p.p95),
        ("P99", |p: &Pct| p.p99),
    ] {
        l.push(format!(
            "{name}:  {}{}{}{}{}",
            table_num(get(&m.isl)),
            " ".repeat(10),
            table_num(get(&m.osl)),
            " ".repeat(10),
            table_num(get(&m.seq)),
        ));
    }
    l.push(RULE.into());
    l
}

/// The 0.16/0.17-era latency report (sample 031): its own sections, titles with a trailing
/// space, and upstream's bug of printing the p50 value on the `P90 (ms):` line.
pub fn latency_b(info: &RunInfo, m: &Metrics) -> Vec<String> {
    let mut l = vec![String::new(), String::new()];
    let titled = |l: &mut Vec<String>, t: &str| section(l, t, true);
    info.backend_block(&mut l, "PyTorch backend", false);
    world_b(info, &mut l, None);
    let s = m.streaming.as_ref();
    let ttft = s.map_or(0.0, |s| s.ttft_ms.average);
    let tpot = s.map_or(0.0, |s| s.tpot_ms.average);
    let gen_tps = s.map_or(0.0, |s| s.gen_tps.average);
    titled(&mut l, "GENERAL OVERVIEW");
    l.push(tabbed(
        "Number of requests:",
        32,
        &m.num_requests.to_string(),
    ));
    l.push(tabbed(
        "Average Input Length (tokens):",
        32,
        &f4(m.isl.average),
    ));
    l.push(tabbed(
        "Average Output Length (tokens):",
        32,
        &f4(m.osl.average),
    ));
    l.push(tabbed(
        "Average request latency (ms):",
        32,
        &f4(m.latency_ms.average),
    ));
    l.push(String::new());
    titled(&mut l, "THROUGHPUT OVERVIEW");
    l.push(tabbed(
        "Request Throughput (req/sec):",
        40,
        &f4(m.request_throughput),
    ));
    // Upstream's "Total Token Throughput" here counts output tokens only.
    l.push(tabbed(
        "Total Token Throughput (tokens/sec):",
        40,
        &f4(m.output_throughput),
    ));
    l.push(tabbed(
        "Generation Token Throughput (tokens/sec):",
        40,
        &f4(gen_tps),
    ));
    info.failed_lines(&mut l, 40);
    l.push(String::new());
    titled(&mut l, "LATENCY OVERVIEW");
    l.push(tabbed(
        "Total Latency (ms):",
        40,
        &f4(m.total_latency_ns as f64 / 1e6),
    ));
    l.push(tabbed("Average time-to-first-token (ms):", 40, &f4(ttft)));
    l.push(tabbed("Average inter-token latency (ms):", 40, &f4(tpot)));
    // No speculative decoding: every iteration yields one token.
    l.push(tabbed("Acceptance Rate (Speculative):", 40, "1.00"));
    l.push(String::new());
    titled(&mut l, "GENERATION LATENCY BREAKDOWN");
    let p = &m.latency_ms;
    for (name, v) in [
        ("MIN", p.minimum),
        ("MAX", p.maximum),
        ("AVG", p.average),
        ("P90", p.p50),
        ("P95", p.p95),
        ("P99", p.p99),
    ] {
        l.push(tabbed(&format!("{name} (ms):"), 16, &f4(v)));
    }
    l.push(String::new());
    titled(&mut l, "ACCEPTANCE BREAKDOWN");
    for name in ["MIN", "MAX", "AVG", "P90", "P95", "P99"] {
        l.push(tabbed(&format!("{name}:"), 8, "1.00"));
    }
    l.push(String::new());
    l.push(RULE.into());
    l
}

fn pct_json(p: &Pct) -> Value {
    json!({
        "p50": p.p50,
        "p90": p.p90,
        "p95": p.p95,
        "p99": p.p99,
        "minimum": p.minimum,
        "maximum": p.maximum,
        "average": p.average,
    })
}

/// The `--report_json` document (reference §6).
pub fn json(info: &RunInfo, m: &Metrics) -> Value {
    let mut engine = json!({
        "model": info.model,
        "model_path": info.model_path,
        "engine_dir": info.engine.as_ref().map(|e| e.dir.clone()),
        "version": info.era.version(),
        "backend": info.backend,
        "dtype": info.dtype,
        "kv_cache_dtype": info.kv_cache_dtype,
        "quantization": info.quantization,
    });
    if let (Some(e), Some(obj)) = (&info.engine, engine.as_object_mut()) {
        obj.insert("max_input_length".into(), json!(e.max_input_len));
        obj.insert("max_sequence_length".into(), json!(e.max_seq_len));
    }
    let mut doc = json!({
        "engine": engine,
        "world_info": {
            "tp_size": info.tp,
            "pp_size": info.pp,
            "ep_size": info.ep,
            "world_size": info.tp * info.pp,
            "max_batch_size": info.max_batch_size,
            "max_num_tokens": info.max_num_tokens,
            "scheduling_policy": info.policy_enum(),
            "kv_cache_percentage": info.kv_fraction,
            "issue_rate": m.issue_rate,
        },
        "request_info": {
            "num_requests": m.num_requests,
            "avg_num_concurrent_requests": m.avg_concurrency,
            "avg_input_length": m.isl.average,
            "avg_output_length": m.osl.average,
        },
        "performance": {
            "total_latency_ms": m.total_latency_ns as f64 / 1e6,
            "avg_request_latency_ms": m.latency_ms.average,
            "request_throughput_req_s": m.request_throughput,
            "system_output_throughput_tok_s": m.output_throughput,
            "system_total_throughput_tok_s": m.total_token_throughput,
            "output_throughput_per_user_tok_s": m.per_user_output_throughput,
            "output_throughput_per_gpu_tok_s": m.per_gpu_output_throughput,
            "request_latency_percentiles_ms": pct_json(&m.latency_ms),
        },
    });
    if let (Some(s), Some(obj)) = (&m.streaming, doc.as_object_mut()) {
        obj.insert(
            "streaming_metrics".into(),
            json!({
                "token_output_speed_tok_s": s.gen_tps.average,
                "avg_ttft_ms": s.ttft_ms.average,
                "avg_tpot_ms": s.tpot_ms.average,
                "tpot_percentiles": pct_json(&s.tpot_ms),
                "ttft_percentiles": pct_json(&s.ttft_ms),
                "gen_tps_percentiles": pct_json(&s.gen_tps),
            }),
        );
    }
    if let Some(obj) = doc.as_object_mut() {
        obj.insert(
            "dataset".into(),
            json!({
                "isl_stats": pct_json(&m.isl),
                "osl_stats": pct_json(&m.osl),
                "seq_len_stats": pct_json(&m.seq),
                "num_requests": m.num_requests,
                "dataset_path": info.dataset_path,
                "max_isl": m.max_isl,
                "max_osl": m.max_osl,
                "max_sequence_length": m.max_seq,
                "avg_isl": m.isl.average as u64,
                "avg_osl": m.osl.average as u64,
                "avg_sequence_length": m.seq.average as u64,
            }),
        );
    }
    doc
}

/// `json.dumps(doc, indent=4)`.
pub fn to_python_json(doc: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    // Serializing a Value into memory cannot fail.
    let _ = serde::Serialize::serialize(doc, &mut ser);
    String::from_utf8_lossy(&buf).into_owned()
}
