//! What a run leaves behind: TensorRT-LLM's `benchmark_serving` text block (byte-compatible,
//! so upstream's regexes and `perfgate parse` read it), `--save-result` JSON lines with vLLM /
//! TensorRT-LLM key names, per-request JSONL, a CSV summary and, for a sweep, a Pareto SVG.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::error::ServeError;
use super::load::{LevelReport, RunInfo};
use super::options::LoadLevel;
use super::stats::{Summary, pname};
use super::summary::LevelSummary;
use crate::textutil::{axis_tick, xml_escape};

fn row(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{:<40} {:<10}", label, value.to_string());
}

fn row2(out: &mut String, label: &str, value: f64) {
    let _ = writeln!(out, "{:<40} {:<10}", label, format!("{value:.2}"));
}

/// `P99`, `P99.9` as upstream words a percentile in labels.
fn pword(q: f64) -> String {
    pname(q).replacen('p', "P", 1)
}

fn section(out: &mut String, s: &Summary, name: &str, header: &str, unit: &str, qs: &[f64]) {
    let _ = writeln!(out, "{header:-^50}");
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" ({unit})")
    };
    // upstream prints 0.00 for a metric with no samples (`np.mean(x or 0)`).
    row2(out, &format!("Mean {name}{unit}:"), s.mean.unwrap_or(0.0));
    row2(
        out,
        &format!("Median {name}{unit}:"),
        s.median.unwrap_or(0.0),
    );
    row2(out, &format!("Std Dev {name}{unit}:"), s.std.unwrap_or(0.0));
    for &q in qs {
        row2(
            out,
            &format!("{} {name}{unit}:", pword(q)),
            s.percentile(q).unwrap_or(0.0),
        );
    }
}

/// The lines upstream prints before its block, the block, and perfgate's own lines after it
/// (distinct words, after the closing rule, so no upstream regex or `perfgate parse` takes
/// them for upstream figures).
pub fn text_block(info: &RunInfo, s: &LevelSummary, qs: &[f64], goodput: bool) -> String {
    let mut out = String::new();
    let (rate, burst, conc) = level_settings(&s.level, info);
    let _ = writeln!(out, "Traffic request rate: {rate}");
    let _ = writeln!(out, "Burstiness factor: {burst}");
    let _ = writeln!(
        out,
        "Maximum request concurrency: {}",
        conc.map_or("None".to_string(), |c| c.to_string())
    );
    for (class, n) in &s.errors {
        let _ = writeln!(out, "Error type: {class}, Count: {n} requests");
    }
    let _ = writeln!(out, "Total failed requests: {}", s.failed);
    let _ = writeln!(out, "{:=^50}", " Serving Benchmark Result ");
    row(&mut out, "Total requests:", s.total);
    row(&mut out, "Successful requests:", s.completed);
    row(&mut out, "Failed requests:", s.failed);
    row2(&mut out, "Benchmark duration (s):", s.duration_s);
    row(&mut out, "Total input tokens:", s.total_input_tokens);
    row(&mut out, "Total generated tokens:", s.total_output_tokens);
    row2(
        &mut out,
        "Request throughput (req/s):",
        s.request_throughput,
    );
    if goodput {
        row2(
            &mut out,
            "Request goodput (req/s):",
            s.request_goodput.unwrap_or(0.0),
        );
    }
    row2(
        &mut out,
        "Output token throughput (tok/s):",
        s.output_throughput,
    );
    row2(
        &mut out,
        "Total Token throughput (tok/s):",
        s.total_token_throughput,
    );
    row2(&mut out, "User throughput (tok/s):", s.user_throughput);
    if s.failed > 0 {
        let _ = writeln!(
            out,
            "=======================!FAILED REQUESTS!======================="
        );
        let _ = writeln!(out, "Total failed requests: {}", s.failed);
        let _ = writeln!(
            out,
            "=====================!CHECK LOG FOR ERRORS!===================="
        );
    }
    if s.avg_decoded_tokens_per_iter.mean.is_some_and(|m| m > 0.0) {
        let d = &s.avg_decoded_tokens_per_iter;
        let name = "Avg Decoded Tokens per Iter";
        let _ = writeln!(out, "{name:-^50}");
        row2(&mut out, &format!("Mean {name}:"), d.mean.unwrap_or(0.0));
        row2(
            &mut out,
            &format!("Median {name}:"),
            d.median.unwrap_or(0.0),
        );
        row2(&mut out, &format!("Std Dev {name}:"), d.std.unwrap_or(0.0));
        row2(&mut out, &format!("Min {name}:"), d.min.unwrap_or(0.0));
        row2(&mut out, &format!("Max {name}:"), d.max.unwrap_or(0.0));
        for &q in qs {
            row2(
                &mut out,
                &format!("{} {name}:", pword(q)),
                d.percentile(q).unwrap_or(0.0),
            );
        }
    }
    section(
        &mut out,
        &s.ttft_ms,
        "TTFT",
        "Time to First Token",
        "ms",
        qs,
    );
    section(
        &mut out,
        &s.tpot_ms,
        "TPOT",
        "Time per Output Token (excl. 1st token)",
        "ms",
        qs,
    );
    section(&mut out, &s.itl_ms, "ITL", "Inter-token Latency", "ms", qs);
    section(&mut out, &s.e2el_ms, "E2EL", "End-to-end Latency", "ms", qs);
    let _ = writeln!(out, "{}", "=".repeat(50));
    out.push_str(&perfgate_lines(s));
    out
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2}"))
}

fn perfgate_lines(s: &LevelSummary) -> String {
    let mut out = String::new();
    let fa = |v: &[(f64, Option<f64>)]| {
        v.iter()
            .map(|(q, x)| {
                format!(
                    "{} {}",
                    pname(*q),
                    x.map_or("inf".to_string(), |x| format!("{x:.2}"))
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if s.failed > 0 {
        let _ = writeln!(
            out,
            "perfgate: with failures as infinitely slow, ttft ms {}; e2el ms {}",
            fa(&s.ttft_failure_aware),
            fa(&s.e2el_failure_aware)
        );
    }
    if s.streaming {
        let _ = writeln!(
            out,
            "perfgate: per-token itl ms mean {} median {}; exact tpot ms mean {}; tokens per event mean {}; ttft from due time ms median {}",
            fmt_opt(s.itl_token_ms.mean),
            fmt_opt(s.itl_token_ms.median),
            fmt_opt(s.tpot_exact_ms.mean),
            fmt_opt(s.tokens_per_event.mean),
            fmt_opt(s.ttft_sched_ms.median),
        );
    }
    let _ = writeln!(
        out,
        "perfgate: output lengths from {}; {} differ from requested; token count disagreements: output {}, prompt {}",
        s.osl_sources
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        s.osl_mismatch,
        s.output_token_disagreement,
        s.prompt_token_disagreement
    );
    let _ = writeln!(
        out,
        "perfgate: client self-check: send lag p99 {} ms, event-loop lag p99 {} ms: {}",
        fmt_opt(s.self_check.send_lag.percentile(99.0)),
        fmt_opt(s.self_check.loop_lag.percentile(99.0)),
        if s.self_check.lagged {
            "LAGGED (the client was a bottleneck)"
        } else {
            "ok"
        }
    );
    if let Some(a) = &s.accuracy {
        let _ = writeln!(
            out,
            "perfgate: accuracy over {} requests with a reference: exact match {:.4}, rouge-1 f1 {:.4}, rouge-2 f1 {:.4}, rouge-l f1 {:.4}, corpus bleu {:.2}",
            a.pairs, a.exact_match, a.rouge1, a.rouge2, a.rouge_l, a.bleu.score
        );
    }
    for n in &s.notes {
        let _ = writeln!(out, "perfgate: note: {n}");
    }
    if !s.invalid.is_empty() {
        let _ = writeln!(
            out,
            "perfgate: INVALID FOR GATING: {}",
            s.invalid.join("; ")
        );
    }
    out
}

/// (request rate as upstream prints it, burstiness line, max concurrency).
fn level_settings(level: &LoadLevel, info: &RunInfo) -> (String, String, Option<u32>) {
    match *level {
        LoadLevel::Concurrency(c) => ("inf".into(), "1.0 (Poisson process)".into(), Some(c)),
        LoadLevel::Rate {
            rate,
            max_concurrency,
        } => {
            let burst = match info.arrival {
                super::options::Arrival::Poisson => "1.0 (Poisson process)".to_string(),
                super::options::Arrival::Gamma(k) => format!("{k:?} (Gamma distribution)"),
                super::options::Arrival::Constant => "none (constant rate)".to_string(),
            };
            (format!("{rate:?}"), burst, max_concurrency)
        }
    }
}

fn put_summary(o: &mut Map<String, Value>, name: &str, s: &Summary, qs: &[f64]) {
    let v = |x: Option<f64>| x.map_or(Value::Null, Value::from);
    o.insert(format!("mean_{name}_ms"), v(s.mean));
    o.insert(format!("median_{name}_ms"), v(s.median));
    o.insert(format!("std_{name}_ms"), v(s.std));
    for &q in qs {
        o.insert(format!("{}_{name}_ms", pname(q)), v(s.percentile(q)));
    }
}

fn summary_json(s: &Summary) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// One `--save-result` object: vLLM / TensorRT-LLM keys, then a `perfgate` extension object.
pub fn result_json(
    info: &RunInfo,
    s: &LevelSummary,
    qs: &[f64],
    arrival: super::options::Arrival,
) -> Value {
    let mut o = Map::new();
    o.insert("date".into(), info.started.clone().into());
    o.insert("backend".into(), info.endpoint.backend_name().into());
    o.insert("model_id".into(), info.model.clone().into());
    o.insert(
        "tokenizer_id".into(),
        info.tokenizer.clone().map_or(Value::Null, Value::from),
    );
    o.insert("num_prompts".into(), s.total.into());
    o.insert("duration".into(), s.duration_s.into());
    o.insert("completed".into(), s.completed.into());
    o.insert("failed".into(), s.failed.into());
    o.insert("total_input_tokens".into(), s.total_input_tokens.into());
    o.insert("total_output_tokens".into(), s.total_output_tokens.into());
    o.insert("request_throughput".into(), s.request_throughput.into());
    o.insert(
        "request_goodput".into(),
        s.request_goodput.map_or(Value::Null, Value::from),
    );
    o.insert("output_throughput".into(), s.output_throughput.into());
    o.insert(
        "total_token_throughput".into(),
        s.total_token_throughput.into(),
    );
    o.insert("user_throughput".into(), s.user_throughput.into());
    let (ttft, tpot, itl) = if s.streaming {
        (&s.ttft_ms, &s.tpot_ms, &s.itl_ms)
    } else {
        (
            &Summary::default(),
            &Summary::default(),
            &Summary::default(),
        )
    };
    put_summary(&mut o, "ttft", ttft, qs);
    put_summary(&mut o, "tpot", tpot, qs);
    put_summary(&mut o, "itl", itl, qs);
    put_summary(&mut o, "e2el", &s.e2el_ms, qs);
    if s.avg_decoded_tokens_per_iter.count > 0 {
        let d = &s.avg_decoded_tokens_per_iter;
        let mut p = Map::new();
        for (q, v) in &d.percentiles {
            p.insert(pname(*q), (*v).into());
        }
        o.insert(
            "avg_decoded_tokens_per_iter".into(),
            json!({"mean": d.mean, "min": d.min, "max": d.max, "median": d.median, "std": d.std,
                   "percentiles": p}),
        );
    }
    match s.level {
        LoadLevel::Concurrency(c) => {
            o.insert("request_rate".into(), "inf".into());
            o.insert("burstiness".into(), 1.0.into());
            o.insert("max_concurrency".into(), c.into());
        }
        LoadLevel::Rate {
            rate,
            max_concurrency,
        } => {
            o.insert("request_rate".into(), rate.into());
            o.insert(
                "burstiness".into(),
                arrival.burstiness().map_or(Value::Null, Value::from),
            );
            o.insert(
                "max_concurrency".into(),
                max_concurrency.map_or(Value::Null, Value::from),
            );
        }
    }
    let fa = |v: &[(f64, Option<f64>)]| -> Value {
        let mut m = Map::new();
        for (q, x) in v {
            // JSON has no infinity: a failure-dominated percentile is the string "inf".
            m.insert(pname(*q), x.map_or(Value::from("inf"), Value::from));
        }
        Value::Object(m)
    };
    let ext = json!({
        "endpoint": info.endpoint.name(),
        "server_kind": info.server_kind.name(),
        "url": info.url,
        "streaming": s.streaming,
        "ignore_eos": info.ignore_eos,
        "level": s.level.label(),
        "errors": s.errors,
        "cancelled": s.cancelled,
        "ttft_failure_aware_ms": fa(&s.ttft_failure_aware),
        "e2el_failure_aware_ms": fa(&s.e2el_failure_aware),
        "ttft_from_due_ms": summary_json(&s.ttft_sched_ms),
        "tpot_exact_ms": summary_json(&s.tpot_exact_ms),
        "itl_per_token_ms": summary_json(&s.itl_token_ms),
        "interactivity_tok_s": summary_json(&s.interactivity),
        "tokens_per_event": summary_json(&s.tokens_per_event),
        "osl_mismatch": s.osl_mismatch,
        "output_token_disagreement": s.output_token_disagreement,
        "prompt_token_disagreement": s.prompt_token_disagreement,
        "osl_sources": s.osl_sources,
        "self_check": s.self_check,
        "server_metrics": s.server_metrics,
        "valid": s.invalid.is_empty(),
        "invalid": s.invalid,
        "notes": s.notes,
        "accuracy": s.accuracy,
    });
    o.insert("perfgate".into(), ext);
    Value::Object(o)
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> ServeError {
    ServeError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn atomic(path: &Path, bytes: &[u8]) -> Result<(), ServeError> {
    crate::fsutil::write(path, bytes).map_err(|e| write_err(path, format!("{e:#}")))
}

/// Appends one line to a JSON Lines file (created if missing).
pub fn append_line(path: &Path, v: &Value) -> Result<(), ServeError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| write_err(path, e))?;
    let mut line = serde_json::to_vec(v).map_err(|e| write_err(path, e))?;
    line.push(b'\n');
    f.write_all(&line).map_err(|e| write_err(path, e))
}

/// One line per request: the raw record (timestamps in ns since the run's epoch) and its
/// derived metrics (ms).
pub fn requests_jsonl(level: &LevelReport) -> Vec<u8> {
    let mut out = Vec::new();
    for r in &level.records {
        let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
        if let Value::Object(o) = &mut v {
            o.insert("level".into(), level.index.into());
            o.insert(
                "derived".into(),
                serde_json::to_value(r.derive(level.summary.streaming)).unwrap_or(Value::Null),
            );
        }
        if serde_json::to_writer(&mut out, &v).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

const CSV_COLUMNS: &[&str] = &[
    "level",
    "max_concurrency",
    "request_rate",
    "total",
    "completed",
    "failed",
    "duration_s",
    "request_throughput",
    "request_goodput",
    "output_throughput",
    "total_token_throughput",
    "user_throughput",
    "mean_ttft_ms",
    "median_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "median_tpot_ms",
    "p99_tpot_ms",
    "mean_itl_ms",
    "median_itl_ms",
    "p99_itl_ms",
    "mean_e2el_ms",
    "median_e2el_ms",
    "p99_e2el_ms",
    "median_interactivity",
    "send_lag_p99_ms",
    "client_lagged",
    "valid",
    "accuracy_requests",
    "exact_match",
    "rouge1_f1",
    "rouge2_f1",
    "rougeL_f1",
    "bleu",
];

/// The CSV of every level so far.
pub fn summary_csv(levels: &[&LevelSummary]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(CSV_COLUMNS);
    let f = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x}"));
    for (i, s) in levels.iter().enumerate() {
        let (rate, conc) = match s.level {
            LoadLevel::Concurrency(c) => ("inf".to_string(), Some(c)),
            LoadLevel::Rate {
                rate,
                max_concurrency,
            } => (rate.to_string(), max_concurrency),
        };
        let mut rec = vec![
            i.to_string(),
            conc.map_or(String::new(), |c| c.to_string()),
            rate,
            s.total.to_string(),
            s.completed.to_string(),
            s.failed.to_string(),
            s.duration_s.to_string(),
            s.request_throughput.to_string(),
            f(s.request_goodput),
            s.output_throughput.to_string(),
            s.total_token_throughput.to_string(),
            s.user_throughput.to_string(),
            f(s.ttft_ms.mean),
            f(s.ttft_ms.median),
            f(s.ttft_ms.percentile(99.0)),
            f(s.tpot_ms.mean),
            f(s.tpot_ms.median),
            f(s.tpot_ms.percentile(99.0)),
            f(s.itl_ms.mean),
            f(s.itl_ms.median),
            f(s.itl_ms.percentile(99.0)),
            f(s.e2el_ms.mean),
            f(s.e2el_ms.median),
            f(s.e2el_ms.percentile(99.0)),
            f(s.interactivity.median),
            f(s.self_check.send_lag.percentile(99.0)),
            s.self_check.lagged.to_string(),
            s.invalid.is_empty().to_string(),
        ];
        match &s.accuracy {
            Some(a) => rec.extend([
                a.pairs.to_string(),
                a.exact_match.to_string(),
                a.rouge1.to_string(),
                a.rouge2.to_string(),
                a.rouge_l.to_string(),
                a.bleu.score.to_string(),
            ]),
            None => rec.extend(std::iter::repeat_n(String::new(), 6)),
        }
        let _ = w.write_record(&rec);
    }
    w.into_inner().unwrap_or_default()
}

/// x: output tokens/s per user (1000 / median TPOT; without streaming, the mean OSL/E2EL);
/// y: total output tokens/s.
fn pareto_point(s: &LevelSummary) -> (f64, f64) {
    let x = s
        .tpot_ms
        .median
        .filter(|t| *t > 0.0)
        .map_or(s.user_throughput, |t| 1e3 / t);
    (x, s.output_throughput)
}

/// Indices of the levels no other level beats on both axes.
pub fn pareto_frontier(points: &[(f64, f64)]) -> Vec<usize> {
    (0..points.len())
        .filter(|&i| {
            !points.iter().enumerate().any(|(j, p)| {
                j != i
                    && p.0 >= points[i].0
                    && p.1 >= points[i].1
                    && (p.0 > points[i].0 || p.1 > points[i].1)
            })
        })
        .collect()
}

/// A self-contained SVG: one point per level, the frontier joined and marked. Hand-written:
/// one scatter with two axes does not need a plotting library's dependencies.
pub fn pareto_svg(levels: &[&LevelSummary], title: &str) -> String {
    let points: Vec<(f64, f64)> = levels.iter().map(|s| pareto_point(s)).collect();
    let frontier = pareto_frontier(&points);
    let (w, h, ml, mr, mt, mb) = (720.0, 480.0, 80.0, 30.0, 50.0, 60.0);
    let max_x = points.iter().map(|p| p.0).fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let max_y = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let sx = |x: f64| ml + x / max_x * (w - ml - mr);
    let sy = |y: f64| h - mb - y / max_y * (h - mt - mb);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        w / 2.0,
        xml_escape(title)
    );
    // Axes with five ticks each.
    let _ = writeln!(
        out,
        r#"<line x1="{ml}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{ml}" y1="{mt}" x2="{ml}" y2="{}" stroke="black"/>"#,
        h - mb,
        w - mr,
        h - mb,
        h - mb
    );
    for i in 0..=5 {
        let fx = max_x * i as f64 / 5.0;
        let fy = max_y * i as f64 / 5.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text><text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            sx(fx),
            h - mb + 18.0,
            axis_tick(fx),
            ml - 6.0,
            sy(fy) + 4.0,
            axis_tick(fy)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">output tokens/s per user (1000 / median TPOT)</text>"#,
        (ml + w - mr) / 2.0,
        h - 16.0
    );
    let _ = writeln!(
        out,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">total output tokens/s</text>"#,
        (mt + h - mb) / 2.0,
        (mt + h - mb) / 2.0
    );
    let mut front: Vec<usize> = frontier.clone();
    front.sort_by(|a, b| points[*a].0.total_cmp(&points[*b].0));
    if front.len() > 1 {
        let path: Vec<String> = front
            .iter()
            .map(|&i| format!("{:.1},{:.1}", sx(points[i].0), sy(points[i].1)))
            .collect();
        let _ = writeln!(
            out,
            r##"<polyline points="{}" fill="none" stroke="#d62728" stroke-width="2"/>"##,
            path.join(" ")
        );
    }
    for (i, (p, s)) in points.iter().zip(levels).enumerate() {
        let on = frontier.contains(&i);
        let _ = writeln!(
            out,
            r#"<circle cx="{:.1}" cy="{:.1}" r="{}" fill="{}"><title>{}</title></circle><text x="{:.1}" y="{:.1}">{}</text>"#,
            sx(p.0),
            sy(p.1),
            if on { 6 } else { 4 },
            if on { "#d62728" } else { "#1f77b4" },
            xml_escape(&format!(
                "{}: {:.1} tok/s/user, {:.1} tok/s{}",
                s.level.label(),
                p.0,
                p.1,
                if on { " (Pareto frontier)" } else { "" }
            )),
            sx(p.0) + 8.0,
            sy(p.1) - 6.0,
            xml_escape(&s.level.label())
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" text-anchor="end" fill="#d62728">red: Pareto frontier</text>"##,
        w - mr,
        mt - 8.0
    );
    out.push_str("</svg>\n");
    out
}

/// Writes each finished level: text block to `print`, save-result line, per-request JSONL,
/// the CSV (rewritten) and, from the second level on, the Pareto SVG (rewritten).
pub struct Writer {
    pub save_result: Option<PathBuf>,
    pub output_dir: Option<PathBuf>,
    pub percentiles: Vec<f64>,
    pub goodput: bool,
    pub arrival: super::options::Arrival,
    summaries: Vec<LevelSummary>,
}

impl Writer {
    pub fn new(
        save_result: Option<PathBuf>,
        output_dir: Option<PathBuf>,
        percentiles: Vec<f64>,
        goodput: bool,
        arrival: super::options::Arrival,
    ) -> Writer {
        Writer {
            save_result,
            output_dir,
            percentiles,
            goodput,
            arrival,
            summaries: Vec::new(),
        }
    }

    /// Files for one level; returns the text block.
    pub fn level(&mut self, info: &RunInfo, level: &LevelReport) -> Result<String, ServeError> {
        let s = &level.summary;
        let text = text_block(info, s, &self.percentiles, self.goodput);
        if let Some(path) = &self.save_result {
            append_line(path, &result_json(info, s, &self.percentiles, self.arrival))?;
        }
        self.summaries.push(s.clone());
        if let Some(dir) = &self.output_dir {
            std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
            atomic(
                &dir.join(format!("requests-level{}.jsonl", level.index)),
                &requests_jsonl(level),
            )?;
            let all: Vec<&LevelSummary> = self.summaries.iter().collect();
            atomic(&dir.join("summary.csv"), &summary_csv(&all))?;
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("serve-bench.log"))
                .map_err(|e| write_err(&dir.join("serve-bench.log"), e))?;
            let _ = log.write_all(text.as_bytes());
            let run = json!({
                "run": info,
                "levels": self.summaries.iter().map(|s| result_json(info, s, &self.percentiles, self.arrival)).collect::<Vec<_>>(),
            });
            atomic(
                &dir.join("run.json"),
                &serde_json::to_vec_pretty(&run).map_err(|e| write_err(dir, e))?,
            )?;
            if all.len() > 1 {
                let title = format!("{} {} ({})", info.model, info.endpoint.name(), info.url);
                atomic(&dir.join("pareto.svg"), pareto_svg(&all, &title).as_bytes())?;
            }
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_keeps_undominated_points() {
        let pts = [(10.0, 100.0), (5.0, 300.0), (4.0, 250.0), (1.0, 400.0)];
        assert_eq!(pareto_frontier(&pts), vec![0, 1, 3]);
    }

    #[test]
    fn percentile_words() {
        assert_eq!(pword(99.0), "P99");
        assert_eq!(pword(99.9), "P99.9");
    }
}
