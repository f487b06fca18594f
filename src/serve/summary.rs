//! One load level's figures, from its request records: upstream's set (benchmark_serving's
//! definitions) and perfgate's additions (failure-aware percentiles, goodput, token-count
//! agreement, output-length checks, the client self-check).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::options::{LoadLevel, MetricOptions, SloMetric};
use super::record::{Derived, ErrorClass, OslSource, RequestRecord};
use super::stats::{Summary, percentile_sorted};
use crate::accuracy::AccuracySummary;

/// What the client itself saw of its own timeliness.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SelfCheck {
    /// Due → sent (ms), over the measured requests after a closed loop's initial ramp.
    pub send_lag: Summary,
    /// How late a 10 ms ticker on the client's runtime woke up (ms).
    pub loop_lag: Summary,
    /// The client could not keep up: results understate the server's latency or throughput.
    pub lagged: bool,
    pub reasons: Vec<String>,
}

/// The figures of one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelSummary {
    pub level: LoadLevel,
    pub streaming: bool,
    /// Measured requests issued (completed + failed).
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    /// Failed requests by error class.
    pub errors: BTreeMap<String, u64>,
    /// First measured send (or due time, if earlier) → last response end, seconds.
    pub duration_s: f64,
    /// Prompt tokens of completed requests: the client's count where known (upstream), else
    /// the server's.
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    pub request_throughput: f64,
    /// Completed requests meeting every SLO, per second (only with SLOs).
    pub request_goodput: Option<f64>,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    /// Mean over completed requests of OSL / E2EL (TensorRT-LLM's "User throughput").
    pub user_throughput: f64,
    pub ttft_ms: Summary,
    pub tpot_ms: Summary,
    pub itl_ms: Summary,
    pub e2el_ms: Summary,
    pub ttft_sched_ms: Summary,
    pub tpot_exact_ms: Summary,
    pub itl_token_ms: Summary,
    /// 1 / TPOT per request (tokens/s/user), the Pareto x-axis.
    pub interactivity: Summary,
    pub tokens_per_event: Summary,
    pub avg_decoded_tokens_per_iter: Summary,
    /// Percentiles counting each failed request as infinitely slow (`(q, value)`, ms; `None`
    /// for infinite).
    pub ttft_failure_aware: Vec<(f64, Option<f64>)>,
    pub e2el_failure_aware: Vec<(f64, Option<f64>)>,
    /// Completed requests whose output length differs from the requested one.
    pub osl_mismatch: u64,
    /// Completed requests where server usage and the client tokenizer disagree (output).
    pub output_token_disagreement: u64,
    /// Completed requests sent as token ids whose server prompt count differs from the ids
    /// sent (text prompts are not compared: a chat template or BOS is the server's to add).
    pub prompt_token_disagreement: u64,
    /// Completed requests whose OSL came from usage / tokenizer / event count.
    pub osl_sources: BTreeMap<String, u64>,
    pub self_check: SelfCheck,
    /// Server Prometheus counter deltas over the level (name{labels} → after − before).
    pub server_metrics: BTreeMap<String, f64>,
    /// Why these figures must not be gated on (empty: valid).
    pub invalid: Vec<String>,
    /// Requests stopped by Ctrl-C (counted in `failed` too).
    pub cancelled: u64,
    /// Things noticed about the level (a failed metrics scrape).
    pub notes: Vec<String>,
    /// With `--accuracy`: the scored requests as a corpus (None when not asked for or no
    /// completed request had a reference output).
    pub accuracy: Option<AccuracySummary>,
}

/// Inputs besides the records.
pub struct SummaryInput<'a> {
    pub level: LoadLevel,
    pub streaming: bool,
    pub records: &'a [RequestRecord],
    pub loop_lag_ms: &'a [f64],
    pub options: &'a MetricOptions,
    pub server_metrics: BTreeMap<String, f64>,
    /// The level's accuracy (scored by the run, which still holds the texts).
    pub accuracy: Option<AccuracySummary>,
}

fn summaries(values: &[f64], qs: &[f64]) -> Summary {
    Summary::of(values, qs)
}

fn failure_aware(ok: &[f64], failed: u64, qs: &[f64]) -> Vec<(f64, Option<f64>)> {
    let mut v: Vec<f64> = ok.to_vec();
    v.extend(std::iter::repeat_n(f64::INFINITY, failed as usize));
    v.sort_by(f64::total_cmp);
    let mut qs_all = vec![50.0];
    qs_all.extend_from_slice(qs);
    qs_all
        .into_iter()
        .filter_map(|q| percentile_sorted(&v, q).map(|x| (q, x.is_finite().then_some(x))))
        .collect()
}

fn good(d: &Derived, slos: &[super::options::Slo]) -> bool {
    slos.iter().all(|slo| {
        let value = match slo.metric {
            SloMetric::Ttft => d.ttft_ms,
            // upstream's goodput treats a one-token output as TPOT 0.
            SloMetric::Tpot => Some(d.tpot_ms.unwrap_or(0.0)),
            SloMetric::E2el => d.e2el_ms,
        };
        value.is_some_and(|v| v <= slo.max_ms)
    })
}

pub fn summarize(input: SummaryInput<'_>) -> LevelSummary {
    let qs = &input.options.percentiles;
    let records = input.records;
    let derived: Vec<Derived> = records.iter().map(|r| r.derive(input.streaming)).collect();
    let ok: Vec<(&RequestRecord, &Derived)> = records
        .iter()
        .zip(&derived)
        .filter(|(r, _)| r.ok())
        .collect();
    let completed = ok.len() as u64;
    let failed = records.len() as u64 - completed;
    let mut errors = BTreeMap::new();
    let mut cancelled = 0;
    for r in records {
        if let Some(e) = &r.error {
            *errors.entry(e.class.name().to_string()).or_insert(0) += 1;
            if e.class == ErrorClass::Cancelled {
                cancelled += 1;
            }
        }
    }
    let start = records
        .iter()
        .map(|r| r.t_due_ns.min(r.t_send_ns))
        .min()
        .unwrap_or(0);
    let end = records.iter().map(|r| r.t_end_ns).max().unwrap_or(start);
    let duration_s = (end.saturating_sub(start)) as f64 / 1e9;
    let per_s = |x: f64| {
        if duration_s > 0.0 {
            x / duration_s
        } else {
            0.0
        }
    };

    let total_input_tokens: u64 = ok
        .iter()
        .map(|(r, _)| {
            r.prompt_tokens_client
                .or(r.usage.prompt_tokens)
                .unwrap_or(0)
        })
        .sum();
    let total_output_tokens: u64 = ok.iter().map(|(_, d)| d.osl).sum();
    let collect = |f: &dyn Fn(&Derived) -> Option<f64>| -> Vec<f64> {
        ok.iter().filter_map(|(_, d)| f(d)).collect()
    };
    let ttft = collect(&|d| d.ttft_ms);
    let tpot = collect(&|d| d.tpot_ms);
    let e2el = collect(&|d| d.e2el_ms);
    let user = collect(&|d| d.user_tok_s);
    let itl: Vec<f64> = ok
        .iter()
        .flat_map(|(_, d)| d.itl_ms.iter().copied())
        .collect();
    let itl_token: Vec<f64> = ok
        .iter()
        .flat_map(|(_, d)| d.itl_token_ms.iter().copied())
        .collect();
    let interactivity: Vec<f64> = tpot.iter().filter(|t| **t > 0.0).map(|t| 1e3 / t).collect();
    let tokens_per_event: Vec<f64> = ok
        .iter()
        .filter(|(r, _)| !r.content.is_empty())
        .map(|(r, d)| d.osl as f64 / r.content.len() as f64)
        .collect();
    let decoded: Vec<f64> = ok
        .iter()
        .filter_map(|(r, _)| r.avg_decoded_tokens_per_iter)
        .collect();

    let request_goodput = (!input.options.goodput.is_empty()).then(|| {
        per_s(
            ok.iter()
                .filter(|(_, d)| good(d, &input.options.goodput))
                .count() as f64,
        )
    });

    let osl_mismatch = ok
        .iter()
        .filter(|(r, d)| d.osl != r.requested_output_tokens)
        .count() as u64;
    let output_token_disagreement = ok
        .iter()
        .filter(|(r, _)| {
            matches!((r.usage.completion_tokens, r.output_tokens_client), (Some(a), Some(b)) if a != b)
        })
        .count() as u64;
    let prompt_token_disagreement = ok
        .iter()
        .filter(|(r, _)| {
            r.prompt_ids
                && matches!((r.usage.prompt_tokens, r.prompt_tokens_client), (Some(a), Some(b)) if a != b)
        })
        .count() as u64;
    let mut osl_sources = BTreeMap::new();
    for (_, d) in &ok {
        let name = match d.osl_source {
            OslSource::Usage => "usage",
            OslSource::Tokenizer => "tokenizer",
            OslSource::Events => "events",
        };
        *osl_sources.entry(name.to_string()).or_insert(0) += 1;
    }

    // A closed loop's first `concurrency` requests are all due at the level's start and go out
    // one after another (new connections included): that ramp is the loop starting, not the
    // client falling behind, so the check looks at the requests after it.
    let ramp = match input.level {
        LoadLevel::Concurrency(c) => c as u64,
        LoadLevel::Rate { .. } => 0,
    };
    let send_lag: Vec<f64> = records
        .iter()
        .zip(&derived)
        .filter(|(r, _)| r.index >= ramp)
        .map(|(_, d)| d.send_lag_ms)
        .collect();
    let mut self_check = SelfCheck {
        send_lag: summaries(&send_lag, &[99.0]),
        loop_lag: summaries(input.loop_lag_ms, &[99.0]),
        lagged: false,
        reasons: Vec::new(),
    };
    let max_send = input.options.max_send_lag.as_secs_f64() * 1e3;
    let max_loop = input.options.max_loop_lag.as_secs_f64() * 1e3;
    // A closed loop's send lag is the time from a slot freeing to the next send, which is the
    // client's own work; an open loop's also includes waiting for the in-flight cap.
    if let Some(p99) = self_check.send_lag.percentile(99.0)
        && p99 > max_send
        && !matches!(
            input.level,
            LoadLevel::Rate {
                max_concurrency: Some(_),
                ..
            }
        )
    {
        self_check.lagged = true;
        self_check.reasons.push(format!(
            "send lag p99 {p99:.2} ms is above {max_send:.2} ms: requests went out later than due"
        ));
    }
    if let Some(p99) = self_check.loop_lag.percentile(99.0)
        && p99 > max_loop
    {
        self_check.lagged = true;
        self_check.reasons.push(format!(
            "event-loop lag p99 {p99:.2} ms is above {max_loop:.2} ms: timestamps are late"
        ));
    }

    let mut invalid = Vec::new();
    if input.options.ignore_eos && osl_mismatch > 0 {
        invalid.push(format!(
            "{osl_mismatch} of {completed} requests returned an output length other than \
             requested although the output length was forced (ignore_eos): the server ignored \
             it"
        ));
    }
    // The figures count output tokens from the server's usage; a client tokenizer that does
    // not reproduce them (generated text that does not encode back to the same tokens, as a
    // random-weight model's never does) is worth knowing, not a reason to distrust them.
    let mut notes = Vec::new();
    if output_token_disagreement > 0 {
        notes.push(format!(
            "{output_token_disagreement} of {completed} requests: the server's output token \
             count differs from the client tokenizer's (the server's is used)"
        ));
    }
    if prompt_token_disagreement > 0 {
        invalid.push(format!(
            "{prompt_token_disagreement} of {completed} requests: the server's prompt token \
             count differs from the client's"
        ));
    }
    for r in &self_check.reasons {
        invalid.push(format!("client lagged: {r}"));
    }
    if completed == 0 {
        invalid.push("no request completed".to_string());
    }

    LevelSummary {
        level: input.level,
        streaming: input.streaming,
        total: records.len() as u64,
        completed,
        failed,
        errors,
        duration_s,
        total_input_tokens,
        total_output_tokens,
        request_throughput: per_s(completed as f64),
        request_goodput,
        output_throughput: per_s(total_output_tokens as f64),
        total_token_throughput: per_s((total_input_tokens + total_output_tokens) as f64),
        user_throughput: super::stats::mean(&user).unwrap_or(0.0),
        ttft_failure_aware: failure_aware(&ttft, failed, qs),
        e2el_failure_aware: failure_aware(&e2el, failed, qs),
        ttft_ms: summaries(&ttft, qs),
        tpot_ms: summaries(&tpot, qs),
        itl_ms: summaries(&itl, qs),
        e2el_ms: summaries(&e2el, qs),
        ttft_sched_ms: summaries(&collect(&|d| d.ttft_sched_ms), qs),
        tpot_exact_ms: summaries(&collect(&|d| d.tpot_exact_ms), qs),
        itl_token_ms: summaries(&itl_token, qs),
        interactivity: summaries(&interactivity, qs),
        tokens_per_event: summaries(&tokens_per_event, qs),
        avg_decoded_tokens_per_iter: summaries(&decoded, qs),
        osl_mismatch,
        output_token_disagreement,
        prompt_token_disagreement,
        osl_sources,
        self_check,
        server_metrics: input.server_metrics,
        invalid,
        cancelled,
        notes,
        accuracy: input.accuracy,
    }
}
