//! Physical limits (roofline) per case: what the hardware allows, MBU/MFU of a measured run,
//! and the check that no result beats physics (reference §4c).
//!
//! # What is a hard bound and what is an estimate
//!
//! The **hard bounds** ([`Limits::throughput_ceiling`], [`Limits::tpot_min_ms`],
//! [`Limits::ttft_min_ms`]) must never be beaten by a correct measurement. Every simplification
//! in them goes the loose way (makes the ceiling higher, the minimum lower):
//! - peak = the datasheet's dense tensor-core peak at the *lowest* precision the case's GEMMs
//!   can use (FP4 for nvfp4, FP8 for fp8/int8/w4a8, BF16 otherwise), times the GPU count;
//! - bandwidth = datasheet HBM bandwidth times the GPU count (perfect sharding; all-reduce,
//!   pipeline bubbles and replicated attention weights ignored);
//! - weight bytes = parameters x the quantized element size (scales and BF16 embeddings or
//!   norms of quantized checkpoints not counted); an MoE step reads at least the *active*
//!   parameters (all tokens of a step could pick the same experts);
//! - KV bytes per token at the smallest plausible element (1 byte whenever the checkpoint is
//!   quantized); sliding-window layers read at most their window; MLA caches its latent only;
//! - FLOPs = 2 x matmul parameters per token (embedding lookup excluded) plus causal attention
//!   (QK^T and PV) over the keys really attended; the lm_head once per prefill;
//! - the decode batch is at most min(maxbs, concurrency, requests, `bs:`) and at most what fits
//!   in memory next to the weights with every sequence holding only its prompt;
//! - no prefix-cache hits (perfgate's synthetic datasets are random tokens);
//! - speculative decoding (`eagle`/`mtp` in the model name) can emit several tokens per step,
//!   so the per-step memory bounds (decode memory ceiling, minimum TPOT) are not applied there;
//!   the compute bound still holds (every accepted token is verified by the target model).
//!
//! A result is flagged only beyond [`SAFETY_MARGIN`] (clock boosts, rounding, a 2-3% datasheet
//! difference between SKUs sharing one table entry must never flag a correct fast run).
//!
//! The **estimates** ([`Limits::memory_ceiling_est`], [`Limits::tpot_est_ms`], MBU) assume the
//! batch really is full and MoE routing is uniform (expected distinct experts per step
//! `E(1-(1-k/E)^B)`); they inform, they never flag. NAS models whose attention-layer count is
//! not in the catalog count every layer's KV cache (an over-estimate of KV traffic: MBU too high,
//! the memory estimate too low — the hard bounds then lean on the compute side and on weights).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::{CaseSpec, DataType, PerfConfig};
use crate::models::{Arch, GpuInfo, ModelConfigs};

/// A measurement is invalid only when it beats a hard bound by more than this factor.
pub const SAFETY_MARGIN: f64 = 1.10;

/// Per-token times (every statistic of them, the minimum included) bounded by the least
/// time a decode step takes.
const TPOT_METRICS: &[&str] = &[
    "OUTPUT_TOKEN_TIME",
    "MEDIAN_OUTPUT_TOKEN_TIME",
    "INTER_TOKEN_TIME",
    "MIN_TPOT",
    "AVG_TPOT",
    "P50_TPOT",
];
/// First-token times bounded by the least time a prefill takes.
const TTFT_METRICS: &[&str] = &[
    "FIRST_TOKEN_TIME",
    "MEDIAN_FIRST_TOKEN_TIME",
    "MIN_TTFT",
    "AVG_TTFT",
    "P50_TTFT",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PhysicsError {
    #[error("{0}")]
    NoArch(String),
    #[error("{0}")]
    UnknownGpu(String),
    #[error("no {field} for GPU `{gpu}` in the GPU table: the physical limits need it")]
    MissingGpuFact { gpu: String, field: &'static str },
    #[error("`{0}` has no output lengths (an encoder or build-only name): no decode limits")]
    NoOutput(String),
}

/// The precision a case's GEMMs can run at (selects the peak).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Compute {
    Bf16,
    Fp8,
    Fp4,
}

/// One benchmark case, in the units the limits need.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    pub label: String,
    pub isl: f64,
    pub osl: f64,
    /// Most sequences that can decode together (before the memory cap).
    pub max_batch: f64,
    pub num_reqs: f64,
    pub gpus: f64,
    pub weight_bytes_per_param: f64,
    pub kv_bytes_per_elem: f64,
    pub compute: Compute,
    pub speculative: bool,
}

impl Case {
    /// The case of a config's (bs, isl, osl) expansion.
    pub fn new(cfg: &PerfConfig, spec: &CaseSpec) -> Result<Case, PhysicsError> {
        let osl = spec
            .output_len
            .ok_or_else(|| PhysicsError::NoOutput(spec.label.clone()))?;
        let (weight_bytes_per_param, compute) = precision(cfg);
        let kv_bytes_per_elem = match cfg.kv_cache_dtype.as_str() {
            "fp8" | "int8" => 1.0,
            "nvfp4" | "fp4" => 0.5,
            _ if weight_bytes_per_param <= 1.0 => 1.0,
            _ => 2.0,
        };
        let num_reqs = f64::from(cfg.num_reqs.max(1));
        let mut max_batch = f64::from(cfg.max_batch_size.max(1)).min(num_reqs);
        if let Some(c) = spec.concurrency {
            max_batch = max_batch.min(f64::from(c.max(1)));
        }
        if let Some(bs) = spec.batch_size {
            max_batch = max_batch.min(f64::from(bs.max(1)));
        }
        let model = cfg.model.to_ascii_lowercase();
        Ok(Case {
            label: spec.label.clone(),
            isl: f64::from(spec.input_len.max(1)),
            osl: f64::from(osl.max(1)),
            max_batch,
            num_reqs,
            gpus: f64::from(cfg.num_gpus.max(1)),
            weight_bytes_per_param,
            kv_bytes_per_elem,
            compute,
            speculative: model.contains("eagle") || model.contains("mtp"),
        })
    }
}

/// Weight element size and GEMM precision from the quantization, the dtype label and the
/// checkpoint's name (`_fp8`, `_fp4` checkpoints are pre-quantized).
fn precision(cfg: &PerfConfig) -> (f64, Compute) {
    let by_quant = match cfg.quantization.as_deref() {
        Some("nvfp4") => Some((0.5, Compute::Fp4)),
        Some("w4a8_awq") => Some((0.5, Compute::Fp8)),
        Some(q) if q.starts_with("int4") || q == "w4a16_awq" => Some((0.5, Compute::Bf16)),
        Some("int8_weight_only") => Some((1.0, Compute::Bf16)),
        Some(q) if q.starts_with("fp8") && q != "fp8_kv_cache" => Some((1.0, Compute::Fp8)),
        Some(q) if q.starts_with("int8") => Some((1.0, Compute::Fp8)),
        _ => None,
    };
    let by_dtype = match cfg.data_type {
        DataType::Float4 => (0.5, Compute::Fp4),
        DataType::Float8 => (1.0, Compute::Fp8),
        DataType::Float32 => (4.0, Compute::Bf16),
        DataType::Float16 | DataType::Bfloat16 => (2.0, Compute::Bf16),
    };
    let model = cfg.model.to_ascii_lowercase();
    let by_name = if model.contains("fp4") {
        Some((0.5, Compute::Fp4))
    } else if model.contains("fp8") {
        Some((1.0, Compute::Fp8))
    } else {
        None
    };
    // The smallest element and the fastest GEMM any source allows: the loose side.
    [by_quant, Some(by_dtype), by_name]
        .into_iter()
        .flatten()
        .fold((f64::INFINITY, Compute::Bf16), |(b, c), (b2, c2)| {
            let fast = |c: Compute| match c {
                Compute::Bf16 => 0,
                Compute::Fp8 => 1,
                Compute::Fp4 => 2,
            };
            (b.min(b2), if fast(c2) > fast(c) { c2 } else { c })
        })
}

/// The GPU figures the limits use, per GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuLimits {
    pub name: String,
    /// bytes/s
    pub mem_bw: f64,
    /// bytes; `None` when the table does not say
    pub mem_bytes: Option<f64>,
    /// FLOP/s at the case's precision (the fastest available at or below it)
    pub peak_flops: f64,
    /// Which peak was used ("bf16", "fp8", "fp4").
    pub peak_dtype: &'static str,
}

impl GpuLimits {
    pub fn new(name: &str, info: &GpuInfo, compute: Compute) -> Result<GpuLimits, PhysicsError> {
        let missing = |field| PhysicsError::MissingGpuFact {
            gpu: name.to_string(),
            field,
        };
        let mem_bw = info.mem_bw_tbps.ok_or_else(|| missing("mem_bw_tbps"))? * 1e12;
        let bf16 = info.bf16_tflops.map(|t| (t, "bf16"));
        let fp8 = info.fp8_tflops.map(|t| (t, "fp8"));
        let fp4 = info.fp4_tflops.map(|t| (t, "fp4"));
        let (tflops, dtype) = match compute {
            Compute::Fp4 => fp4.or(fp8).or(bf16),
            Compute::Fp8 => fp8.or(bf16),
            Compute::Bf16 => bf16,
        }
        .ok_or_else(|| missing("bf16_tflops"))?;
        Ok(GpuLimits {
            name: name.to_string(),
            mem_bw,
            // Marketing "GB" of HBM are GiB (see gpus.yaml).
            mem_bytes: info.mem_gb.map(|g| g * f64::from(1u32 << 30)),
            peak_flops: tflops * 1e12,
            peak_dtype: dtype,
        })
    }
}

/// Σ_{p=1..n} min(p, w): keys attended by queries at positions 1..n of a layer with window w.
fn sum_min(n: f64, w: f64) -> f64 {
    if n <= 0.0 {
        0.0
    } else if n <= w {
        n * (n + 1.0) / 2.0
    } else {
        w * (w + 1.0) / 2.0 + (n - w) * w
    }
}

/// A model on a GPU type for one case: everything the limits are computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Roofline {
    pub arch: Arch,
    pub gpu: GpuLimits,
    pub case: Case,
}

/// The limits of one case (aggregate over all its GPUs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    pub label: String,
    pub gpu: String,
    pub gpus: f64,
    /// Resident weights, all GPUs together (lower bound), bytes.
    pub weight_bytes: f64,
    /// Weights a decode step must read at least (active parameters for MoE), bytes.
    pub active_weight_bytes: f64,
    /// KV cache bytes one token adds (all layers), bytes.
    pub kv_bytes_per_token: f64,
    /// FLOPs of one request's prefill and of its decode.
    pub prefill_flops: f64,
    pub decode_flops: f64,
    /// Decode batch used for the memory side (after the memory cap).
    pub batch: f64,
    /// Output tok/s if the GPUs did nothing but the FLOPs at peak. Hard.
    pub compute_ceiling: f64,
    /// Output tok/s if decode did nothing but the least memory traffic at `batch`. Hard;
    /// `None` under speculative decoding.
    pub memory_ceiling: Option<f64>,
    /// min(compute, memory): the hard throughput ceiling, output tok/s.
    pub throughput_ceiling: f64,
    /// Memory ceiling with uniform MoE routing at a full batch. Estimate.
    pub memory_ceiling_est: f64,
    /// Hard minimum time per output token (batch 1, weights + prompt KV), ms; `None` under
    /// speculative decoding.
    pub tpot_min_ms: Option<f64>,
    /// TPOT at a full batch (memory or compute side, whichever is slower). Estimate, ms.
    pub tpot_est_ms: f64,
    /// Hard minimum time to first token, ms.
    pub ttft_min_ms: f64,
    /// Which side binds the throughput ceiling ("compute" / "memory").
    pub bound_by: &'static str,
    pub notes: Vec<String>,
}

impl Roofline {
    pub fn new(arch: &Arch, gpu: GpuLimits, case: Case) -> Roofline {
        Roofline {
            arch: arch.clone(),
            gpu,
            case,
        }
    }

    /// Keys attended per layer-kind summed over one request's decode and prefill:
    /// (prefill pairs, decode pairs) weighted by layer counts.
    fn attended(&self, isl: f64, osl: f64) -> (f64, f64) {
        let (full, windowed, w) = self.arch.attention_split();
        let (full, windowed, w) = (f64::from(full), f64::from(windowed), f64::from(w));
        let weighted = |n: f64| full * n * (n + 1.0) / 2.0 + windowed * sum_min(n, w);
        let prefill = weighted(isl);
        // Decode token j (1..osl-1) attends to isl + j keys.
        let decode = weighted(isl + osl - 1.0) - weighted(isl);
        (prefill, decode)
    }

    /// Weight bytes one decode step reads at batch `b` with uniform routing (estimate).
    fn step_weight_bytes_est(&self, b: f64) -> f64 {
        let a = &self.arch;
        let wb = self.case.weight_bytes_per_param;
        match (a.experts, a.experts_active) {
            (Some(e), Some(k)) => {
                let (e, k) = (f64::from(e), f64::from(k));
                let routed = a.routed_expert_params();
                let always = a.active_params() - routed * k / e;
                let touched = 1.0 - (1.0 - k / e).powf(b.max(1.0));
                (always + routed * touched) * wb
            }
            _ => a.params() * wb,
        }
    }

    /// The limits at the configured lengths.
    pub fn limits(&self) -> Limits {
        self.limits_at(self.case.isl, self.case.osl)
    }

    /// The limits at given mean lengths (a run's measured averages).
    pub fn limits_at(&self, isl: f64, osl: f64) -> Limits {
        let a = &self.arch;
        let c = &self.case;
        let g = c.gpus;
        let bw = self.gpu.mem_bw * g;
        let peak = self.gpu.peak_flops * g;
        let wb = c.weight_bytes_per_param;
        let mut notes = Vec::new();

        let weight_bytes = a.params() * wb;
        let active_weight_bytes = a.active_params() * wb;
        let kv_layer_elem = a.kv_elems_per_layer() * c.kv_bytes_per_elem;
        let kv_bytes_per_token = kv_layer_elem * f64::from(a.attention_layers());

        let (qk, v) = a.qk_v_dims();
        let attn_pair = 2.0 * f64::from(a.heads) * (qk + v);
        let (pre_pairs, dec_pairs) = self.attended(isl, osl);
        let body = 2.0 * (a.matmul_params_active() - a.lm_head_params());
        let prefill_flops = isl * body + 2.0 * a.lm_head_params() + attn_pair * pre_pairs;
        let decode_flops = (osl - 1.0) * 2.0 * a.matmul_params_active() + attn_pair * dec_pairs;
        let kv_read_per_req = kv_layer_elem * dec_pairs;

        let compute_ceiling = peak * osl / (prefill_flops + decode_flops);

        // Every in-flight sequence holds at least its prompt's KV next to the weights.
        let mut batch = c.max_batch;
        if let Some(mem) = self.gpu.mem_bytes {
            let free = mem * g - weight_bytes;
            if free <= 0.0 {
                notes.push(format!(
                    "the weights ({:.1} GB at least) do not fit in {g} x {:.0} GB",
                    weight_bytes / 1e9,
                    mem / 1e9
                ));
            } else {
                let (full, windowed, w) = a.attention_split();
                let held = kv_layer_elem
                    * (f64::from(full) * isl + f64::from(windowed) * isl.min(f64::from(w)));
                if held > 0.0 && free / held < batch {
                    batch = (free / held).floor().max(1.0);
                    notes.push(format!("batch capped at {batch} by KV memory"));
                }
            }
        }

        let decode_steps = (osl - 1.0).max(0.0);
        let mem_time_per_req =
            |step_weights: f64, b: f64| (decode_steps * step_weights / b + kv_read_per_req) / bw;
        let step_hard = if a.is_moe() {
            active_weight_bytes
        } else {
            weight_bytes
        };
        let ceiling_of = |t: f64| if t > 0.0 { osl / t } else { f64::INFINITY };
        let memory_ceiling = if c.speculative {
            notes.push("speculative decoding: per-step memory bounds not applied".into());
            None
        } else {
            Some(ceiling_of(mem_time_per_req(step_hard, batch)))
        };
        let memory_ceiling_est =
            ceiling_of(mem_time_per_req(self.step_weight_bytes_est(batch), batch));
        let (throughput_ceiling, bound_by) = match memory_ceiling {
            Some(m) if m < compute_ceiling => (m, "memory"),
            _ => (compute_ceiling, "compute"),
        };

        let (full, windowed, w) = a.attention_split();
        let prompt_kv =
            kv_layer_elem * (f64::from(full) * isl + f64::from(windowed) * isl.min(f64::from(w)));
        let step_compute = 2.0 * a.matmul_params_active() / peak;
        let tpot_min_ms = (!c.speculative)
            .then(|| ((active_weight_bytes + prompt_kv) / bw).max(step_compute) * 1e3);
        let ctx_kv = if decode_steps > 0.0 {
            kv_read_per_req / decode_steps
        } else {
            prompt_kv
        };
        let tpot_est_ms = ((self.step_weight_bytes_est(batch) + batch * ctx_kv) / bw)
            .max(batch * step_compute)
            * 1e3;
        let ttft_min_ms = (prefill_flops / peak).max(active_weight_bytes / bw) * 1e3;

        Limits {
            label: c.label.clone(),
            gpu: self.gpu.name.clone(),
            gpus: g,
            weight_bytes,
            active_weight_bytes,
            kv_bytes_per_token,
            prefill_flops,
            decode_flops,
            batch,
            compute_ceiling,
            memory_ceiling,
            throughput_ceiling,
            memory_ceiling_est,
            tpot_min_ms,
            tpot_est_ms,
            ttft_min_ms,
            bound_by,
            notes,
        }
    }

    /// Measured mean lengths when the report has them, else the configured ones.
    fn lengths(&self, metrics: &BTreeMap<String, f64>) -> (f64, f64) {
        let get = |k: &str, d: f64| metrics.get(k).copied().filter(|v| *v >= 1.0).unwrap_or(d);
        (
            get("AVG_INPUT_LENGTH", self.case.isl),
            get("AVG_OUTPUT_LENGTH", self.case.osl),
        )
    }

    /// Output tok/s of a run, from whichever throughput metric it reports.
    fn output_tps(&self, metrics: &BTreeMap<String, f64>, osl: f64) -> Option<f64> {
        let m = |k: &str| metrics.get(k).copied();
        m("TOTAL_OUTPUT_THROUGHPUT")
            .or_else(|| m("PER_GPU_OUTPUT_THROUGHPUT").map(|v| v * self.case.gpus))
            .or_else(|| m("SEQ_THROUGHPUT").map(|v| v * osl))
    }

    /// MBU and MFU of a measured run (fractions; > 1 means a measurement bug).
    pub fn utilization(&self, metrics: &BTreeMap<String, f64>) -> Option<Utilization> {
        let (isl, osl) = self.lengths(metrics);
        let tps = self.output_tps(metrics, osl)?;
        let l = self.limits_at(isl, osl);
        let reqs_per_s = tps / osl;
        let mfu = reqs_per_s * (l.prefill_flops + l.decode_flops)
            / (self.gpu.peak_flops * self.case.gpus);
        let b = metrics
            .get("AVG_CONCURRENCY")
            .copied()
            .filter(|v| *v >= 1.0)
            .unwrap_or(l.batch)
            .min(l.batch.max(1.0));
        let (_, dec_pairs) = self.attended(isl, osl);
        let kv_read = self.arch.kv_elems_per_layer() * self.case.kv_bytes_per_elem * dec_pairs;
        let bytes_per_req = (osl - 1.0).max(0.0) * self.step_weight_bytes_est(b) / b + kv_read;
        let mbu = reqs_per_s * bytes_per_req / (self.gpu.mem_bw * self.case.gpus);
        Some(Utilization {
            output_tps: tps,
            mbu,
            mfu,
        })
    }

    /// How close `metric` of a measured run comes to its physical limit, as a fraction
    /// (1.0 = at the limit): a throughput over its ceiling, or a per-token or first-token time's
    /// minimum over the measured time. `None` for metrics without a limit.
    pub fn fraction_of_limit(&self, metric: &str, metrics: &BTreeMap<String, f64>) -> Option<f64> {
        let value = metrics.get(metric).copied().filter(|v| *v > 0.0)?;
        let (isl, osl) = self.lengths(metrics);
        let l = self.limits_at(isl, osl);
        let g = self.case.gpus;
        let fraction = match metric {
            "TOTAL_OUTPUT_THROUGHPUT" => value / l.throughput_ceiling,
            "PER_GPU_OUTPUT_THROUGHPUT" | "TOKEN_THROUGHPUT" => value / (l.throughput_ceiling / g),
            "SEQ_THROUGHPUT" => value / (l.throughput_ceiling / osl),
            m if TPOT_METRICS.contains(&m) => l.tpot_min_ms? / value,
            m if TTFT_METRICS.contains(&m) => l.ttft_min_ms / value,
            _ => return None,
        };
        fraction.is_finite().then_some(fraction)
    }

    /// Every measured value that beats a hard bound by more than [`SAFETY_MARGIN`].
    pub fn check(&self, metrics: &BTreeMap<String, f64>) -> Vec<Violation> {
        let (isl, osl) = self.lengths(metrics);
        let l = self.limits_at(isl, osl);
        let g = self.case.gpus;
        let ceiling = l.throughput_ceiling;
        let why = format!(
            "{}-bound ceiling on {} x {} (isl {isl:.0}, osl {osl:.0}, batch <= {:.0})",
            l.bound_by, g, l.gpu, l.batch
        );
        let mut out = Vec::new();
        let mut above = |metric: &str, limit: f64, unit: &'static str| {
            if let Some(&v) = metrics.get(metric)
                && limit.is_finite()
                && v > limit * SAFETY_MARGIN
            {
                out.push(Violation {
                    metric: metric.to_string(),
                    measured: v,
                    limit,
                    unit,
                    why: why.clone(),
                    above: true,
                });
            }
        };
        above("TOTAL_OUTPUT_THROUGHPUT", ceiling, "tok/s");
        above("PER_GPU_OUTPUT_THROUGHPUT", ceiling / g, "tok/s/gpu");
        above("TOKEN_THROUGHPUT", ceiling / g, "tok/s/gpu");
        above("SEQ_THROUGHPUT", ceiling / osl, "req/s");
        let mut below = |metric: &str, limit: Option<f64>, why: String| {
            if let (Some(&v), Some(limit)) = (metrics.get(metric), limit)
                && v > 0.0
                && v * SAFETY_MARGIN < limit
            {
                out.push(Violation {
                    metric: metric.to_string(),
                    measured: v,
                    limit,
                    unit: "ms",
                    why,
                    above: false,
                });
            }
        };
        let tpot_why = "the weights a step must read at batch 1 / aggregate bandwidth";
        for m in TPOT_METRICS {
            below(m, l.tpot_min_ms, tpot_why.to_string());
        }
        let ttft_why = "max(prefill FLOPs / peak, active weights / bandwidth)";
        for m in TTFT_METRICS {
            below(m, Some(l.ttft_min_ms), ttft_why.to_string());
        }
        out
    }
}

/// Achieved fractions of the hardware.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Utilization {
    pub output_tps: f64,
    /// Achieved bytes/s over aggregate bandwidth (decode traffic model; an estimate).
    pub mbu: f64,
    /// Achieved FLOP/s over aggregate dense peak.
    pub mfu: f64,
}

/// A result that beats physics: the measurement (or its parsing) is wrong, not the hardware.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub metric: String,
    pub measured: f64,
    pub limit: f64,
    pub unit: &'static str,
    pub why: String,
    /// Above a ceiling (true) or below a minimum (false).
    pub above: bool,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rel, pct) = if self.above {
            (
                "above the ceiling",
                (self.measured / self.limit - 1.0) * 100.0,
            )
        } else {
            (
                "below the minimum",
                (1.0 - self.measured / self.limit) * 100.0,
            )
        };
        write!(
            f,
            "INVALID evidence: {} = {:.4} {} is {pct:.0}% {rel} of {:.4} {} ({}); the \
             margin is {:.0}%, so the measurement or its parsing is wrong",
            self.metric,
            self.measured,
            self.unit,
            self.limit,
            self.unit,
            self.why,
            (SAFETY_MARGIN - 1.0) * 100.0
        )
    }
}

/// The roofline of every case of a config on a GPU type (by table name or alias).
pub fn rooflines(
    configs: &ModelConfigs,
    cfg: &PerfConfig,
    gpu: &str,
) -> Result<Vec<Roofline>, PhysicsError> {
    rooflines_of(configs, cfg, &cfg.cases(), gpu)
}

/// [`rooflines`] of cases already expanded (`cfg.cases()`).
pub fn rooflines_of(
    configs: &ModelConfigs,
    cfg: &PerfConfig,
    cases: &[CaseSpec],
    gpu: &str,
) -> Result<Vec<Roofline>, PhysicsError> {
    let arch = configs
        .catalog
        .arch(&cfg.model)
        .map_err(PhysicsError::NoArch)?;
    let (gpu_name, info) = configs
        .gpus
        .find(gpu)
        .map_err(|e| PhysicsError::UnknownGpu(format!("no GPU facts: {e}")))?;
    if cases.is_empty() {
        return Err(PhysicsError::NoOutput(cfg.canonical()));
    }
    cases
        .iter()
        .map(|spec| {
            let case = Case::new(cfg, spec)?;
            let gpu = GpuLimits::new(gpu_name, info, case.compute)?;
            Ok(Roofline::new(arch, gpu, case))
        })
        .collect()
}

impl Limits {
    /// A few lines for the terminal (`perfgate estimate`, the dry run).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let opt = |v: Option<f64>, unit: &str| {
            v.map_or("n/a (speculative decoding)".to_string(), |v| {
                format!("{v:.3} {unit}")
            })
        };
        let _ = writeln!(s, "  physical limits on {} x {}:", self.gpus, self.gpu);
        let _ = writeln!(
            s,
            "    weights {:.2} GB (active per step {:.2} GB), KV {:.1} KiB/token",
            self.weight_bytes / 1e9,
            self.active_weight_bytes / 1e9,
            self.kv_bytes_per_token / 1024.0
        );
        let _ = writeln!(
            s,
            "    FLOPs/request: prefill {:.3e}, decode {:.3e}",
            self.prefill_flops, self.decode_flops
        );
        let _ = writeln!(
            s,
            "    output throughput <= {:.0} tok/s ({}-bound; compute {:.0}, memory {} at batch {:.0}; memory estimate {:.0})",
            self.throughput_ceiling,
            self.bound_by,
            self.compute_ceiling,
            self.memory_ceiling
                .map_or("n/a".to_string(), |m| format!("{m:.0}")),
            self.batch,
            self.memory_ceiling_est
        );
        let _ = writeln!(
            s,
            "    TPOT >= {} (estimate at full batch {:.3} ms), TTFT >= {:.3} ms",
            opt(self.tpot_min_ms, "ms"),
            self.tpot_est_ms,
            self.ttft_min_ms
        );
        for n in &self.notes {
            let _ = writeln!(s, "    note: {n}");
        }
        s
    }
}
