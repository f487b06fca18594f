//! The A/B run's files, rewritten whole (atomically) after every block, and its console
//! summary:
//!
//! - `benchmark_results.json`: the comparison: both sides' figures, the speed-up with its
//!   interval, the latency comparison, the prompt set, how the run went;
//! - `benchmark_results_<label>.json` for each side (`_target` and `_speculative` by
//!   default): its figures, its blocks and every request (times in ns since the Unix epoch,
//!   latencies in ms, token counts, the server's draft counts);
//! - `benchmark_results_gpu.json`: what was sampled while each side ran (per block: every
//!   power, temperature, clock and load trace, with timestamps), and each side's energy, power,
//!   utilisation, memory and temperature; with monitoring off, it says so.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::error::AbError;
use super::figures::{BlockRun, SideFigures};
use super::options::{AbMode, AbOptions};
use super::run::{AbReport, AbSink};
use super::stats::Ratio;
use crate::telemetry::Quantity;

pub const RESULTS: &str = "benchmark_results.json";
pub const GPU: &str = "benchmark_results_gpu.json";

/// `benchmark_results_<label>.json`.
pub fn side_file(label: &str) -> String {
    format!("benchmark_results_{label}.json")
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> AbError {
    AbError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn write_json(path: &Path, v: &Value) -> Result<(), AbError> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| write_err(path, e))?;
    crate::fsutil::write(path, &bytes).map_err(|e| write_err(path, e))
}

fn mode_json(mode: AbMode) -> Value {
    match mode {
        AbMode::Batch { num_prompts } => json!({"kind": "batch", "num_prompts": num_prompts}),
        AbMode::Time { rate, duration } => json!({
            "kind": "time", "request_rate": rate, "duration_s": duration.as_secs_f64()
        }),
    }
}

fn block_json(b: &BlockRun) -> Value {
    json!({
        "block": b.block,
        "position": b.position,
        "start_ns": b.start_ns(),
        "end_ns": b.end_ns(),
        "duration_s": b.summary.duration_s,
        "completed": b.summary.completed,
        "failed": b.summary.failed,
        "output_tokens": b.summary.total_output_tokens,
        "output_throughput": b.summary.output_throughput,
        "mean_e2el_ms": b.summary.e2el_ms.mean,
        "interrupted": b.interrupted,
    })
}

fn requests_json(blocks: &[&BlockRun]) -> Vec<Value> {
    let mut out = Vec::new();
    for b in blocks {
        for r in &b.records {
            let d = r.derive(true);
            let timing = |k: &str| {
                r.server_timings
                    .as_ref()
                    .and_then(|t| t.get(k))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            out.push(json!({
                "block": b.block,
                "index": r.index,
                "request_id": r.request_id,
                "start_ns": b.epoch_unix_ns + r.t_send_ns,
                "end_ns": b.epoch_unix_ns + r.t_end_ns,
                "ttft_ms": d.ttft_ms,
                "e2el_ms": d.e2el_ms,
                "tpot_ms": d.tpot_ms,
                "prompt_tokens": r.prompt_tokens_client.or(r.usage.prompt_tokens),
                "output_tokens": d.osl,
                "requested_output_tokens": r.requested_output_tokens,
                "draft_n": timing("draft_n"),
                "draft_n_accepted": timing("draft_n_accepted"),
                "avg_decoded_tokens_per_iter": r.avg_decoded_tokens_per_iter,
                "error": r.error.as_ref().map(|e| format!("{}: {}", e.class.name(), e.message)),
            }));
        }
    }
    out
}

/// `benchmark_results.json`.
pub fn results_json(o: &AbOptions, r: &AbReport) -> Value {
    let planned = match o.mode {
        AbMode::Batch { num_prompts } => u64::from(o.blocks).min(num_prompts),
        AbMode::Time { .. } => u64::from(o.blocks),
    };
    json!({
        "started": r.started,
        "mode": mode_json(o.mode),
        "batch_size": o.batch_size,
        "blocks": planned,
        "order": "blocks alternate A B, B A, A B, ...: each block's prompts go to both sides",
        "ignore_eos": o.ignore_eos,
        "prompts": r.prompts,
        "labels": {"a": r.labels[0], "b": r.labels[1]},
        "a": r.figures[0],
        "b": r.figures[1],
        "comparison": r.comparison,
        "complete": r.stopped.is_none(),
        "stopped": r.stopped,
        "interrupted": r.interrupted,
        "files": {
            "a": side_file(&r.labels[0]),
            "b": side_file(&r.labels[1]),
            "gpu": GPU,
        },
        "notes": r.notes,
    })
}

/// `benchmark_results_<label>.json` of side 0 (A) or 1 (B).
pub fn side_json(r: &AbReport, side: usize) -> Value {
    let mine: Vec<&BlockRun> = r.blocks.iter().filter(|b| b.side == side).collect();
    json!({
        "label": r.labels[side],
        "side": if side == 0 { "a" } else { "b" },
        "url": r.urls[side],
        "model": r.facts[side].model,
        "server_kind": r.facts[side].kind.name(),
        "figures": r.figures[side],
        "blocks": mine.iter().map(|b| block_json(b)).collect::<Vec<_>>(),
        "requests": requests_json(&mine),
    })
}

/// `benchmark_results_gpu.json`.
pub fn gpu_json(r: &AbReport) -> Value {
    let Some(power) = &r.power else {
        return json!({
            "monitored": false,
            "note": "GPU monitoring was off (--gpu-monitor turns it on)",
        });
    };
    let mut sides = serde_json::Map::new();
    for side in 0..2 {
        let blocks: Vec<Value> = r
            .blocks
            .iter()
            .filter(|b| b.side == side)
            .map(|b| {
                let traces = b
                    .recording
                    .as_ref()
                    .map(|rec| rec.traces())
                    .unwrap_or_default();
                let of = |q: &[Quantity]| -> Vec<&crate::telemetry::Trace> {
                    traces.iter().filter(|t| q.contains(&t.quantity)).collect()
                };
                json!({
                    "block": b.block,
                    "position": b.position,
                    "start_ns": b.start_ns(),
                    "end_ns": b.end_ns(),
                    "power": of(&[Quantity::Power, Quantity::Energy]),
                    "temp": of(&[Quantity::Temp]),
                    "freq": of(&[Quantity::Freq]),
                    "load": of(&[Quantity::Load]),
                    "problems": b.recording.as_ref().map(|rec| rec.problems.clone()).unwrap_or_default(),
                })
            })
            .collect();
        sides.insert(
            r.labels[side].clone(),
            json!({"figures": r.figures[side].gpu, "blocks": blocks}),
        );
    }
    json!({
        "monitored": true,
        "power": power,
        "sides": sides,
    })
}

/// Rewrites the files after every block.
pub struct AbWriter {
    pub dir: PathBuf,
    options: AbOptions,
}

impl AbWriter {
    pub fn create(options: &AbOptions) -> Result<AbWriter, AbError> {
        let dir = options.output_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| write_err(&dir, e))?;
        Ok(AbWriter {
            dir,
            options: options.clone(),
        })
    }

    pub fn results_path(&self) -> PathBuf {
        self.dir.join(RESULTS)
    }
}

impl AbSink for AbWriter {
    fn update(&mut self, r: &AbReport) -> Result<(), AbError> {
        write_json(&self.dir.join(RESULTS), &results_json(&self.options, r))?;
        for side in 0..2 {
            write_json(
                &self.dir.join(side_file(&r.labels[side])),
                &side_json(r, side),
            )?;
        }
        write_json(&self.dir.join(GPU), &gpu_json(r))
    }
}

fn ms(s: &crate::serve::stats::Summary) -> String {
    match (s.mean, s.median, s.percentile(99.0)) {
        (Some(m), Some(md), Some(p)) => format!("{m:.1} / {md:.1} / {p:.1}"),
        _ => "—".into(),
    }
}

fn ratio_text(r: &Option<Ratio>) -> String {
    match r {
        None => "— (no pair of blocks finished)".into(),
        Some(r) => match (r.ci_low, r.ci_high) {
            (Some(lo), Some(hi)) => format!(
                "{:.3}× ({:.0}% CI {lo:.3}–{hi:.3}, {} paired blocks{})",
                r.estimate,
                r.confidence * 100.0,
                r.pairs,
                if r.significant {
                    ""
                } else {
                    "; not significant"
                }
            ),
            _ => format!("{:.3}× (one pair of blocks: no interval)", r.estimate),
        },
    }
}

fn acceptance_text(f: &SideFigures) -> String {
    match &f.acceptance {
        None => "not reported".into(),
        Some(a) => {
            let mut t = match (a.rate, a.accepted, a.drafted) {
                (Some(rate), Some(acc), Some(d)) => format!("{rate:.3} ({acc}/{d})"),
                (None, Some(_), Some(0)) => "nothing drafted".into(),
                _ => String::new(),
            };
            if let Some(l) = a.acceptance_length {
                if !t.is_empty() {
                    t.push_str(", ");
                }
                let _ = write!(t, "{l:.2} tokens/step");
            }
            t
        }
    }
}

fn energy_text(f: &SideFigures) -> [String; 4] {
    match &f.gpu {
        None => Default::default(),
        Some(g) => {
            let opt = |v: Option<f64>, unit: &str, p: usize| {
                v.map_or("not measured".to_string(), |v| format!("{v:.p$} {unit}"))
            };
            [
                format!(
                    "{} ({})",
                    opt(g.energy_j, "J", 1),
                    opt(g.joules_per_output_token, "J/token", 4)
                ),
                format!(
                    "{} mean, {} peak",
                    opt(g.mean_power_w, "W", 1),
                    opt(g.peak_power_w, "W", 1)
                ),
                format!(
                    "{} util, {} memory",
                    opt(g.mean_util_pct, "%", 0),
                    opt(g.peak_memory_gib, "GiB", 1)
                ),
                opt(g.peak_temp_c, "°C", 0),
            ]
        }
    }
}

/// The console summary.
pub fn console(o: &AbOptions, r: &AbReport) -> String {
    let [a, b] = &r.figures;
    let mut rows: Vec<[String; 3]> = vec![[String::new(), a.label.clone(), b.label.clone()]];
    let mut row = |name: &str, x: String, y: String| rows.push([name.to_string(), x, y]);
    row("server", a.url.clone(), b.url.clone());
    row("model", a.model.clone(), b.model.clone());
    row(
        "requests (failed)",
        format!("{} ({})", a.requests, a.failed),
        format!("{} ({})", b.requests, b.failed),
    );
    row("TTFT ms mean/median/p99", ms(&a.ttft_ms), ms(&b.ttft_ms));
    row("E2E ms mean/median/p99", ms(&a.e2el_ms), ms(&b.e2el_ms));
    row(
        "output tokens/s",
        format!("{:.1}", a.output_throughput),
        format!("{:.1}", b.output_throughput),
    );
    row(
        "total tokens/s",
        format!("{:.1}", a.total_token_throughput),
        format!("{:.1}", b.total_token_throughput),
    );
    row(
        "tokens prompt/generated/total",
        format!(
            "{}/{}/{}",
            a.prompt_tokens, a.generated_tokens, a.total_tokens
        ),
        format!(
            "{}/{}/{}",
            b.prompt_tokens, b.generated_tokens, b.total_tokens
        ),
    );
    row("acceptance", acceptance_text(a), acceptance_text(b));
    let measured = |f: &SideFigures| f.gpu.as_ref().is_some_and(|g| !g.measured.is_empty());
    if measured(a) || measured(b) {
        let (ea, eb) = (energy_text(a), energy_text(b));
        row("energy", ea[0].clone(), eb[0].clone());
        row("power", ea[1].clone(), eb[1].clone());
        row("GPU", ea[2].clone(), eb[2].clone());
        row("peak temperature", ea[3].clone(), eb[3].clone());
    } else if a.gpu.is_some() {
        row("energy", "not measured".into(), "not measured".into());
    } else {
        row("energy", "monitoring off".into(), "monitoring off".into());
    }
    let mut out = String::new();
    let mode = match o.mode {
        AbMode::Batch { num_prompts } => format!("{num_prompts} prompts"),
        AbMode::Time { rate, duration } => {
            format!(
                "{rate} requests/s for {:.0} s per side",
                duration.as_secs_f64()
            )
        }
    };
    let _ = writeln!(
        out,
        "A/B: {} vs {}: {mode} from {}, batch size {}, {} blocks alternating A B, B A, ...",
        a.label,
        b.label,
        r.prompts.source,
        o.batch_size,
        r.blocks.iter().map(|b| b.block).max().map_or(0, |m| m + 1)
    );
    out.push_str(&crate::textutil::aligned(&rows, &[]));
    let _ = writeln!(
        out,
        "speed-up ({} over {}, output tokens/s): {}",
        b.label,
        a.label,
        ratio_text(&r.comparison.speedup)
    );
    let _ = writeln!(
        out,
        "latency speed-up ({} E2E over {}): {}",
        a.label,
        b.label,
        ratio_text(&r.comparison.latency_speedup)
    );
    if let Some(g) = a.gpu.as_ref().or(b.gpu.as_ref())
        && g.energy_j.is_none()
        && !g.not_measured.is_empty()
    {
        let _ = writeln!(out, "energy not measured: {}", g.not_measured.join("; "));
    }
    for f in [a, b] {
        for i in &f.invalid {
            let _ = writeln!(out, "{}: invalid for gating: {i}", f.label);
        }
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}
