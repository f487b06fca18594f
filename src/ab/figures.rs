//! One side's figures over all its blocks: requests, latencies, throughput, tokens, the
//! acceptance of speculative decoding where the server reports it, and what the GPUs (or the
//! other power sources) did while the side ran.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::serve::stats::Summary;
use crate::serve::{LevelSummary, RequestRecord};
use crate::telemetry::{PowerSetup, PowerSource, Quantity, Recording};

/// Percentiles reported besides the median.
pub const PERCENTILES: [f64; 2] = [90.0, 99.0];

/// One block of one side, as it ran.
#[derive(Debug, Clone)]
pub struct BlockRun {
    /// The block (the same prompts for both sides).
    pub block: u32,
    /// 0: A, 1: B.
    pub side: usize,
    /// Its place in the run's order (0, 1, 2, ...).
    pub position: u32,
    pub summary: LevelSummary,
    pub records: Vec<RequestRecord>,
    /// The wall clock (ns since the Unix epoch) at the block's request clock's zero.
    pub epoch_unix_ns: u64,
    pub recording: Option<Recording>,
    /// Stopped by Ctrl-C before all its requests finished (not paired).
    pub interrupted: bool,
}

impl BlockRun {
    pub fn start_ns(&self) -> u64 {
        self.epoch_unix_ns + self.records.iter().map(|r| r.t_send_ns).min().unwrap_or(0)
    }

    pub fn end_ns(&self) -> u64 {
        self.epoch_unix_ns + self.records.iter().map(|r| r.t_end_ns).max().unwrap_or(0)
    }

    /// Mean end-to-end latency of its finished requests (ms).
    pub fn mean_e2el_ms(&self) -> Option<f64> {
        self.summary.e2el_ms.mean
    }
}

/// Speculative decoding's acceptance as the server reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acceptance {
    /// Accepted draft tokens over drafted ones.
    pub rate: Option<f64>,
    pub drafted: Option<u64>,
    pub accepted: Option<u64>,
    /// Tokens decoded per step (TensorRT-LLM's `avg_decoded_tokens_per_iter`), mean over
    /// requests.
    pub acceptance_length: Option<f64>,
    /// `llama.cpp timings (draft_n, draft_n_accepted)`, `vLLM /metrics`, `TensorRT-LLM
    /// avg_decoded_tokens_per_iter`.
    pub source: String,
}

/// One power source's energy over a side's blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceJoules {
    pub source: PowerSource,
    /// `None` when a block had fewer than two readings of it.
    pub joules: Option<f64>,
}

/// What was sampled while a side ran (its blocks only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuFigures {
    pub measured: Vec<PowerSource>,
    /// The measured sources' energy added; `None` when a source's is unknown for a block.
    pub energy_j: Option<f64>,
    pub by_source: Vec<SourceJoules>,
    /// The time the energy covers: each block's readings' span, added.
    pub seconds: f64,
    pub mean_power_w: Option<f64>,
    /// The highest power sampled (NVML: all the GPUs' total; else the highest rail).
    pub peak_power_w: Option<f64>,
    pub mean_util_pct: Option<f64>,
    /// The most memory in use on one GPU (GiB).
    pub peak_memory_gib: Option<f64>,
    pub peak_temp_c: Option<f64>,
    pub joules_per_output_token: Option<f64>,
    pub samples: usize,
    /// What was not measured, and why (never made up).
    pub not_measured: Vec<String>,
    pub problems: Vec<String>,
}

/// A side's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideFigures {
    pub label: String,
    pub url: String,
    pub model: String,
    pub server_kind: String,
    pub blocks: usize,
    pub requests: u64,
    pub completed: u64,
    pub failed: u64,
    pub errors: BTreeMap<String, u64>,
    /// The blocks' durations added (s).
    pub duration_s: f64,
    pub prompt_tokens: u64,
    pub generated_tokens: u64,
    pub total_tokens: u64,
    /// Generated tokens / duration.
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    pub request_throughput: f64,
    pub ttft_ms: Summary,
    pub e2el_ms: Summary,
    pub tpot_ms: Summary,
    pub acceptance: Option<Acceptance>,
    pub gpu: Option<GpuFigures>,
    /// Finished requests whose output length differs from the one asked for.
    pub osl_mismatch: u64,
    /// Why these figures must not be gated on (from the blocks).
    pub invalid: Vec<String>,
}

fn timing(r: &RequestRecord, key: &str) -> Option<u64> {
    r.server_timings.as_ref()?.get(key)?.as_u64()
}

/// Prometheus counter deltas whose name (before the labels) is `name`, added.
fn metric_sum(metrics: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
    let found: Vec<f64> = metrics
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .map(|(_, v)| *v)
        .collect();
    (!found.is_empty()).then(|| found.iter().sum())
}

/// The acceptance of `records` (and the blocks' `/metrics` deltas), if the server reported
/// any.
pub fn acceptance(records: &[&RequestRecord], blocks: &[&LevelSummary]) -> Option<Acceptance> {
    let ok: Vec<&&RequestRecord> = records.iter().filter(|r| r.ok()).collect();
    let drafted: Vec<(u64, u64)> = ok
        .iter()
        .filter_map(|r| Some((timing(r, "draft_n")?, timing(r, "draft_n_accepted")?)))
        .collect();
    let lengths: Vec<f64> = ok
        .iter()
        .filter_map(|r| r.avg_decoded_tokens_per_iter)
        .collect();
    let acceptance_length =
        (!lengths.is_empty()).then(|| lengths.iter().sum::<f64>() / lengths.len() as f64);
    if !drafted.is_empty() {
        let d: u64 = drafted.iter().map(|x| x.0).sum();
        let a: u64 = drafted.iter().map(|x| x.1).sum();
        return Some(Acceptance {
            rate: (d > 0).then(|| a as f64 / d as f64),
            drafted: Some(d),
            accepted: Some(a),
            acceptance_length,
            source: "llama.cpp timings (draft_n, draft_n_accepted)".into(),
        });
    }
    let mut d = None;
    let mut a = None;
    for b in blocks {
        if let Some(x) = metric_sum(&b.server_metrics, "vllm:spec_decode_num_draft_tokens_total") {
            *d.get_or_insert(0.0) += x;
        }
        if let Some(x) = metric_sum(
            &b.server_metrics,
            "vllm:spec_decode_num_accepted_tokens_total",
        ) {
            *a.get_or_insert(0.0) += x;
        }
    }
    if let (Some(d), Some(a)) = (d, a) {
        return Some(Acceptance {
            rate: (d > 0.0).then(|| a / d),
            drafted: Some(d.round() as u64),
            accepted: Some(a.round() as u64),
            acceptance_length,
            source: "vLLM /metrics (spec_decode_num_accepted_tokens / num_draft_tokens)".into(),
        });
    }
    acceptance_length.map(|l| Acceptance {
        rate: None,
        drafted: None,
        accepted: None,
        acceptance_length: Some(l),
        source: "TensorRT-LLM avg_decoded_tokens_per_iter".into(),
    })
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// One block's telemetry for [`gpu_figures`]: the recording cut to the block's requests (first
/// send to last end; [`Recording::between`] keeps one reading on each side of it), the block's
/// output tokens, and that window's length in seconds.
pub struct BlockWindow {
    pub recording: Recording,
    pub output_tokens: f64,
    pub seconds: f64,
}

impl BlockWindow {
    /// `None` for a block without a recording or without a request.
    pub fn of(block: &BlockRun) -> Option<BlockWindow> {
        let rec = block.recording.as_ref()?;
        if block.records.is_empty() {
            return None;
        }
        let (from, to) = (block.start_ns(), block.end_ns());
        let unix = |ns: u64| std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
        Some(BlockWindow {
            recording: rec.between(unix(from), unix(to)),
            output_tokens: block.summary.total_output_tokens as f64,
            seconds: to.saturating_sub(from) as f64 / 1e9,
        })
    }
}

/// What the windows of a side's blocks add up to; `output_tokens` of the side for J/token.
/// A block's energy is each source's mean power over the readings that cover its requests
/// times the requests' own time, as a sweep's test: not the block's set-up (probes, the
/// tokenizer, the first reading's wait) nor the readings' overhang at each end.
pub fn gpu_figures(windows: &[BlockWindow], setup: &PowerSetup, output_tokens: u64) -> GpuFigures {
    let mut by_source: BTreeMap<PowerSource, Option<f64>> = BTreeMap::new();
    let mut seconds = 0.0;
    let mut peak_power = None;
    let mut peak_mem = None;
    let mut peak_temp = None;
    let mut util_sum = 0.0;
    let mut util_n = 0usize;
    let mut samples = 0usize;
    let mut problems: Vec<String> = Vec::new();
    for w in windows {
        let rec = &w.recording;
        let energy = rec.energy(Some(w.output_tokens));
        for s in &energy.sources {
            let entry = by_source.entry(s.source).or_insert(Some(0.0));
            *entry = match (*entry, s.mean_w) {
                (Some(total), Some(watts)) => Some(total + watts * w.seconds),
                _ => None,
            };
        }
        let summary = rec.summary(Some(w.output_tokens));
        if energy.sources.iter().any(|s| s.mean_w.is_some()) {
            seconds += w.seconds;
        }
        samples += summary.samples;
        peak_power = max_opt(peak_power, summary.power_w.as_ref().map(|m| m.max));
        peak_mem = max_opt(peak_mem, summary.mem_used_gib.as_ref().map(|m| m.max));
        if let Some(u) = &summary.gpu_util_pct {
            let n = rec
                .samples
                .iter()
                .filter(|s| s.gpu_util_pct.is_some())
                .count();
            util_sum += u.mean * n as f64;
            util_n += n;
        }
        for t in rec.traces() {
            let top = t
                .values
                .iter()
                .copied()
                .fold(None, |m, v| max_opt(m, Some(v)));
            match t.quantity {
                Quantity::Temp => peak_temp = max_opt(peak_temp, top),
                // NVML's total is the summary's; the sysfs rails count on their own.
                Quantity::Power if t.source != PowerSource::Nvml && summary.power_w.is_none() => {
                    peak_power = max_opt(peak_power, top)
                }
                _ => {}
            }
        }
        for p in rec.problems.iter().chain(energy.problems.iter()) {
            if !problems.contains(p) {
                problems.push(p.clone());
            }
        }
    }
    let energy_j = if by_source.is_empty() || by_source.values().any(Option::is_none) {
        None
    } else {
        Some(by_source.values().flatten().sum::<f64>())
    };
    let mut not_measured = setup.not_measured.clone();
    if setup.measured.is_empty() {
        not_measured.extend(setup.absent.iter().cloned());
    }
    GpuFigures {
        measured: setup.measured.clone(),
        energy_j,
        by_source: by_source
            .into_iter()
            .map(|(source, joules)| SourceJoules { source, joules })
            .collect(),
        seconds,
        mean_power_w: energy_j.filter(|_| seconds > 0.0).map(|j| j / seconds),
        peak_power_w: peak_power,
        mean_util_pct: (util_n > 0).then(|| util_sum / util_n as f64),
        peak_memory_gib: peak_mem,
        peak_temp_c: peak_temp,
        joules_per_output_token: energy_j
            .filter(|_| output_tokens > 0)
            .map(|j| j / output_tokens as f64),
        samples,
        not_measured,
        problems,
    }
}

/// Why a side's figures must not be gated on, over all its blocks (each block's summary says
/// it for its own requests only).
fn invalid_reasons(blocks: &[&LevelSummary], completed: u64) -> Vec<String> {
    let sum = |f: fn(&LevelSummary) -> u64| blocks.iter().map(|b| f(b)).sum::<u64>();
    let mut out = Vec::new();
    let forced = blocks.iter().any(|b| {
        b.invalid
            .iter()
            .any(|i| i.contains("although the output length was forced"))
    });
    let mismatch = sum(|b| b.osl_mismatch);
    if forced && mismatch > 0 {
        out.push(format!(
            "{mismatch} of {completed} requests returned an output length other than requested \
             although it was forced (ignore_eos): the server ignored it"
        ));
    }
    let prompt = sum(|b| b.prompt_token_disagreement);
    if prompt > 0 {
        out.push(format!(
            "{prompt} of {completed} requests: the server's prompt token count differs from the \
             client's"
        ));
    }
    let lagged: Vec<&&LevelSummary> = blocks.iter().filter(|b| b.self_check.lagged).collect();
    if let Some(first) = lagged.first() {
        out.push(format!(
            "the client lagged in {} of {} blocks ({})",
            lagged.len(),
            blocks.len(),
            first.self_check.reasons.join("; ")
        ));
    }
    let empty = blocks.iter().filter(|b| b.completed == 0).count();
    if empty > 0 {
        out.push(format!("{empty} block(s) completed no request"));
    }
    out
}

/// Identity of a side for its figures.
pub struct SideInfo<'a> {
    pub label: &'a str,
    pub url: &'a str,
    pub model: &'a str,
    pub server_kind: &'a str,
}

/// A side's figures from its blocks.
pub fn side_figures(
    id: SideInfo<'_>,
    blocks: &[&BlockRun],
    gpu: Option<GpuFigures>,
    streaming: bool,
) -> SideFigures {
    let records: Vec<&RequestRecord> = blocks.iter().flat_map(|b| b.records.iter()).collect();
    let summaries: Vec<&LevelSummary> = blocks.iter().map(|b| &b.summary).collect();
    let derived: Vec<_> = records
        .iter()
        .filter(|r| r.ok())
        .map(|r| r.derive(streaming))
        .collect();
    let collect = |f: &dyn Fn(&crate::serve::Derived) -> Option<f64>| -> Vec<f64> {
        derived.iter().filter_map(f).collect()
    };
    let duration_s: f64 = summaries.iter().map(|s| s.duration_s).sum();
    let completed: u64 = summaries.iter().map(|s| s.completed).sum();
    let failed: u64 = summaries.iter().map(|s| s.failed).sum();
    let prompt_tokens: u64 = summaries.iter().map(|s| s.total_input_tokens).sum();
    let generated_tokens: u64 = summaries.iter().map(|s| s.total_output_tokens).sum();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for s in &summaries {
        for (k, v) in &s.errors {
            *errors.entry(k.clone()).or_insert(0) += v;
        }
    }
    let invalid = invalid_reasons(&summaries, completed);
    let per_s = |x: f64| {
        if duration_s > 0.0 {
            x / duration_s
        } else {
            0.0
        }
    };
    SideFigures {
        label: id.label.to_string(),
        url: id.url.to_string(),
        model: id.model.to_string(),
        server_kind: id.server_kind.to_string(),
        blocks: blocks.len(),
        requests: completed + failed,
        completed,
        failed,
        errors,
        duration_s,
        prompt_tokens,
        generated_tokens,
        total_tokens: prompt_tokens + generated_tokens,
        output_throughput: per_s(generated_tokens as f64),
        total_token_throughput: per_s((prompt_tokens + generated_tokens) as f64),
        request_throughput: per_s(completed as f64),
        ttft_ms: Summary::of(&collect(&|d| d.ttft_ms), &PERCENTILES),
        e2el_ms: Summary::of(&collect(&|d| d.e2el_ms), &PERCENTILES),
        tpot_ms: Summary::of(&collect(&|d| d.tpot_ms), &PERCENTILES),
        acceptance: acceptance(&records, &summaries),
        gpu,
        osl_mismatch: summaries.iter().map(|s| s.osl_mismatch).sum(),
        invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vllm_metric_names_are_matched_before_their_labels() {
        let mut m = BTreeMap::new();
        m.insert(
            "vllm:spec_decode_num_draft_tokens_total{model_name=\"x\"}".to_string(),
            30.0,
        );
        m.insert("vllm:spec_decode_num_draft_tokens_totalx".to_string(), 99.0);
        assert_eq!(
            metric_sum(&m, "vllm:spec_decode_num_draft_tokens_total"),
            Some(30.0)
        );
        assert_eq!(metric_sum(&m, "vllm:other"), None);
    }

    /// A streamed request as serve-bench records it; `decoded` is the final choice's
    /// `avg_decoded_tokens_per_iter`.
    fn trtllm_record(index: u64, decoded: Option<f64>, failed: bool) -> RequestRecord {
        RequestRecord {
            index,
            request_id: format!("r{index}"),
            sample: index as usize,
            t_due_ns: 0,
            t_send_ns: 1_000_000,
            t_headers_ns: Some(2_000_000),
            t_first_event_ns: Some(3_000_000),
            content: Vec::new(),
            t_end_ns: 40_000_000,
            http_status: Some(200),
            error: failed.then(|| crate::serve::record::RequestError {
                class: crate::serve::record::ErrorClass::Disconnected,
                message: "connection reset".into(),
            }),
            prompt_tokens_client: Some(128),
            prompt_ids: true,
            output_tokens_client: None,
            usage: crate::serve::record::Usage::default(),
            requested_output_tokens: 64,
            finish_reason: (!failed).then(|| "length".into()),
            text: None,
            reference: None,
            server_timings: None,
            avg_decoded_tokens_per_iter: decoded,
            accuracy: None,
        }
    }

    #[test]
    fn tensorrt_llm_acceptance_length_is_the_mean_over_finished_requests() {
        // 2.0, 4.0 and 1.5 tokens a step: a mean of 2.5 (not the first, last or median
        // value); a request that failed after reporting 9.0 and one that reported nothing are
        // left out.
        let records = [
            trtllm_record(0, Some(2.0), false),
            trtllm_record(1, Some(4.0), false),
            trtllm_record(2, Some(9.0), true),
            trtllm_record(3, None, false),
            trtllm_record(4, Some(1.5), false),
        ];
        let refs: Vec<&RequestRecord> = records.iter().collect();
        assert_eq!(
            acceptance(&refs, &[]),
            Some(Acceptance {
                rate: None,
                drafted: None,
                accepted: None,
                acceptance_length: Some(2.5),
                source: "TensorRT-LLM avg_decoded_tokens_per_iter".into(),
            })
        );
        // Nothing reported: no acceptance at all.
        let plain = [trtllm_record(0, None, false)];
        assert_eq!(acceptance(&[&plain[0]], &[]), None);
    }
}
