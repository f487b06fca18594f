//! A deterministic fake run: per-request timestamps from a small serving model (slots that
//! each serve one request at a time, a prefill cost per input token, a time per output token
//! that grows with the batch), then every metric computed from those timestamps with
//! trtllm-bench's definitions (reference §5), so the report is self-consistent the way a real
//! one is (req/s × total latency = N, output tokens / total latency = output throughput, ...).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::dataset::Entry;

/// What shapes the fake run.
pub struct Setup {
    /// Requests served at once (the runtime batch, or `--concurrency` when it is smaller).
    pub slots: usize,
    /// `--concurrency` given: a request is submitted only when a slot frees up, so queueing
    /// does not count in its latency; unlimited submits everything up front.
    pub limited: bool,
    pub tp: u32,
    /// Cost relative to an 8B model (parameter count from the model name).
    pub model_factor: f64,
    /// FAKE_BENCH_SCALE times the noise factor: 2.0 halves every duration.
    pub speed: f64,
}

/// One request's timestamps in ns (upstream's `perf_counter_ns` values).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub start: u64,
    pub first: u64,
    pub end: u64,
    pub isl: u64,
    pub num_out: u64,
}

/// An arbitrary monotonic-clock origin, so timestamps look like perf_counter_ns values.
const EPOCH_NS: f64 = 1_736_000_000_000_000.0;

pub fn run(entries: &[Entry], s: &Setup) -> Vec<Timing> {
    let n = entries.len();
    let slots = s.slots.clamp(1, n.max(1));
    let speed = if s.speed > 0.0 { s.speed } else { 1.0 };
    let tp_gain = f64::from(s.tp.max(1)).powf(0.8);
    let load = slots as f64 / (slots as f64 + 32.0);
    let cost = s.model_factor / tp_gain / speed;
    let prefill_base = 8.0e6 / speed;
    let prefill_per_token = 5.0e4 * cost * (1.0 + load);
    let tpot = 6.0e6 * cost * (1.0 + 2.0 * load);
    // Submitting a request takes a few microseconds of Python; upstream's Issue Rate line is
    // derived from these gaps.
    let gap = 20_000.0;
    let mut free: BinaryHeap<Reverse<(u64, usize)>> =
        (0..slots).map(|k| Reverse((EPOCH_NS as u64, k))).collect();
    let mut out = Vec::with_capacity(n);
    let mut last_submit = EPOCH_NS;
    for (i, e) in entries.iter().enumerate() {
        let Some(Reverse((slot_free, k))) = free.pop() else {
            break;
        };
        let slot_free = slot_free as f64;
        let (submit, begin) = if s.limited {
            let submit = (last_submit + gap).max(slot_free);
            (submit, submit)
        } else {
            let submit = EPOCH_NS + i as f64 * gap;
            (submit, submit.max(slot_free))
        };
        last_submit = submit;
        let prefill =
            ((prefill_base + e.isl as f64 * prefill_per_token) * jitter(i as u64, 1)).max(1_000.0);
        let first = begin + prefill;
        let decode = (e.osl.saturating_sub(1)) as f64 * tpot * jitter(i as u64, 2);
        let end = first + decode.max(1.0);
        let t = Timing {
            start: submit.round() as u64,
            first: first.round() as u64,
            end: end.round() as u64,
            isl: e.isl,
            num_out: e.osl,
        };
        free.push(Reverse((t.end, k)));
        out.push(t);
    }
    out
}

/// A per-request factor in [0.92, 1.08): requests differ (so percentiles differ) but the same
/// dataset always gives the same run.
fn jitter(i: u64, stream: u64) -> f64 {
    0.92 + 0.16 * unit(splitmix64(i.wrapping_mul(0x9E37_79B9).wrapping_add(stream)))
}

pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform value in [0, 1) from 53 random bits.
pub fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal draw from `seed` (Box–Muller), for FAKE_BENCH_NOISE.
pub fn gauss(seed: u64) -> f64 {
    let u1 = 1.0 - unit(splitmix64(seed)); // (0, 1]: ln stays finite
    let u2 = unit(splitmix64(seed ^ 0xD1B5_4A32_D192_ED03));
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// min/max/mean and index-based percentiles (`sorted[int(n*p/100)]`, no interpolation).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pct {
    pub minimum: f64,
    pub maximum: f64,
    pub average: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}

pub fn pct(values: &[f64]) -> Pct {
    if values.is_empty() {
        return Pct::default();
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let at = |p: usize| v[(n * p / 100).min(n - 1)];
    Pct {
        minimum: v[0],
        maximum: v[n - 1],
        average: v.iter().sum::<f64>() / n as f64,
        p50: at(50),
        p90: at(90),
        p95: at(95),
        p99: at(99),
    }
}

/// Per-token streaming statistics (only with streaming: without it there is no first-token
/// time).
pub struct Streaming {
    pub ttft_ms: Pct,
    pub tpot_ms: Pct,
    pub gen_tps: Pct,
}

pub struct Metrics {
    pub num_requests: usize,
    pub total_latency_ns: u64,
    pub request_throughput: f64,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    pub per_gpu_output_throughput: f64,
    /// mean(num_out / e2e): "Per User Output Throughput [w/ ctx]".
    pub per_user_output_throughput: f64,
    pub avg_concurrency: f64,
    /// (last start − first start) / N in ns, times 1e9: upstream's "Issue Rate", not a rate.
    pub issue_rate: f64,
    pub latency_ms: Pct,
    pub streaming: Option<Streaming>,
    pub isl: Pct,
    pub osl: Pct,
    pub seq: Pct,
    pub max_isl: u64,
    pub max_osl: u64,
    pub max_seq: u64,
}

pub fn metrics(t: &[Timing], streaming: bool, world_size: u32) -> Metrics {
    let n = t.len().max(1) as f64;
    let first_start = t.iter().map(|r| r.start).min().unwrap_or(0);
    let last_start = t.iter().map(|r| r.start).max().unwrap_or(0);
    let last_end = t.iter().map(|r| r.end).max().unwrap_or(0);
    let total_ns = last_end.saturating_sub(first_start).max(1);
    let total_s = total_ns as f64 / 1e9;
    let out_tokens: u64 = t.iter().map(|r| r.num_out).sum();
    let in_tokens: u64 = t.iter().map(|r| r.isl).sum();
    let e2e_ns: Vec<f64> = t.iter().map(|r| (r.end - r.start) as f64).collect();
    let output_throughput = out_tokens as f64 / total_s;
    let streaming = streaming.then(|| {
        let ttft: Vec<f64> = t.iter().map(|r| (r.first - r.start) as f64 / 1e6).collect();
        let tpot: Vec<f64> = t
            .iter()
            .map(|r| {
                if r.num_out > 1 {
                    (r.end - r.first) as f64 / 1e6 / (r.num_out - 1) as f64
                } else {
                    0.0
                }
            })
            .collect();
        let gen_tps: Vec<f64> = t
            .iter()
            .map(|r| {
                let gen_s = (r.end - r.first) as f64 / 1e9;
                if r.num_out > 1 && gen_s > 0.0 {
                    (r.num_out - 1) as f64 / gen_s
                } else {
                    0.0
                }
            })
            .collect();
        Streaming {
            ttft_ms: pct(&ttft),
            tpot_ms: pct(&tpot),
            gen_tps: pct(&gen_tps),
        }
    });
    let isl: Vec<f64> = t.iter().map(|r| r.isl as f64).collect();
    let osl: Vec<f64> = t.iter().map(|r| r.num_out as f64).collect();
    let seq: Vec<f64> = t.iter().map(|r| (r.isl + r.num_out) as f64).collect();
    Metrics {
        num_requests: t.len(),
        total_latency_ns: total_ns,
        request_throughput: t.len() as f64 / total_s,
        output_throughput,
        total_token_throughput: (in_tokens + out_tokens) as f64 / total_s,
        per_gpu_output_throughput: output_throughput / f64::from(world_size.max(1)),
        per_user_output_throughput: t
            .iter()
            .zip(&e2e_ns)
            .map(|(r, e)| r.num_out as f64 / (e / 1e9))
            .sum::<f64>()
            / n,
        avg_concurrency: e2e_ns.iter().sum::<f64>() / total_ns as f64,
        issue_rate: (last_start - first_start) as f64 / n * 1e9,
        latency_ms: pct(&e2e_ns.iter().map(|e| e / 1e6).collect::<Vec<_>>()),
        streaming,
        isl: pct(&isl),
        osl: pct(&osl),
        seq: pct(&seq),
        max_isl: t.iter().map(|r| r.isl).max().unwrap_or(0),
        max_osl: t.iter().map(|r| r.num_out).max().unwrap_or(0),
        max_seq: t.iter().map(|r| r.isl + r.num_out).max().unwrap_or(0),
    }
}

/// Parameters in billions read from a model name (`llama_v3.1_70b`, `Llama-3.1-8B`,
/// `Qwen3-0.6B`), relative to 8B; unknown sizes cost as much as an 8B model.
pub fn model_factor(model: &str) -> f64 {
    let lower = model.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut best: Option<f64> = None;
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'b' || i == 0 || !bytes[i - 1].is_ascii_digit() {
            continue;
        }
        // A size ends at `b` followed by a separator or the end (so `8b_hf`, not `b200`).
        if bytes.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let start = lower[..i]
            .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map_or(0, |p| p + 1);
        if let Ok(v) = lower[start..i].trim_start_matches('.').parse::<f64>() {
            best = Some(best.map_or(v, |b: f64| b.max(v)));
        }
    }
    best.map_or(1.0, |b| (b / 8.0).clamp(0.05, 100.0))
}
