//! The canonical label (upstream `PerfTestConfig.to_string()`) and the case expansion.

use super::{CaseSpec, DEFAULT_KV_FRAC, DEFAULT_NUM_REQS, PerfConfig, Runtime, SeqLens};
use crate::textutil::py_float_repr;

/// One case's overrides of the label: batch size (0 = none) and a single length pair.
struct CaseOverride {
    batch_size: u32,
    input_len: u32,
    output_len: Option<u32>,
}

impl PerfConfig {
    /// The canonical label: defaults dropped, `maxbs`/`maxnt` always present, `tp` dropped when
    /// it equals the GPU count, `gpus` derived from tp × pp. A fixed point: parsing it gives
    /// the same config back.
    pub fn canonical(&self) -> String {
        self.label(None)
    }

    /// The (bs, isl, osl) cases, batch sizes outer and the zipped length pairs inner, each with
    /// its per-case label (upstream `to_string(custom_bs, custom_input_len, custom_output_len)`).
    pub fn cases(&self) -> Vec<CaseSpec> {
        let Some(seq) = &self.seq_lens else {
            return Vec::new();
        };
        let batch_sizes: Vec<u32> = if self.batch_sizes.is_empty() {
            vec![0]
        } else {
            self.batch_sizes.clone()
        };
        let inputs = seq.input_lens();
        let outputs = seq.output_lens();
        let mut cases = Vec::with_capacity(batch_sizes.len() * inputs.len());
        for &bs in &batch_sizes {
            for (i, &isl) in inputs.iter().enumerate() {
                let osl = outputs.get(i).copied();
                let over = CaseOverride {
                    batch_size: bs,
                    input_len: isl,
                    output_len: osl,
                };
                cases.push(CaseSpec {
                    batch_size: (bs > 0).then_some(bs),
                    input_len: isl,
                    output_len: osl,
                    label: self.label(Some(&over)),
                });
            }
        }
        cases
    }

    fn label(&self, case: Option<&CaseOverride>) -> String {
        let mut parts: Vec<String> = vec![self.model.clone()];
        if let Some(s) = &self.device_subtype {
            parts.push(format!("subtype:{s}"));
        }
        parts.push(self.runtime.as_str().into());
        let cppmanager = self.runtime == Runtime::CppManager;
        if cppmanager && self.api_exe {
            parts.push("exe".into());
        }
        if self.runtime.is_llm_api()
            && let Some(b) = self.backend.label()
        {
            parts.push(b.into());
        }
        if (cppmanager || self.runtime.is_llm_api()) && self.streaming {
            parts.push("streaming".into());
        }
        if cppmanager && self.static_batching {
            parts.push("static_batching".into());
        }
        if !self.runtime.is_llm_api() {
            parts.push(self.mode.as_str().into());
        }
        parts.push(self.data_type.as_str().into());
        if let Some(g) = self.gpu_weights_percent {
            parts.push(format!("gwp:{}", py_float_repr(g)));
        }
        if self.multiple_profiles {
            parts.push("mp".into());
        }
        parts.push(format!("maxbs:{}", self.max_batch_size));
        parts.push(format!("maxnt:{}", self.max_num_tokens));
        if self.kv_cache_free_gpu_mem_fraction != DEFAULT_KV_FRAC {
            parts.push(format!(
                "kv_frac:{}",
                py_float_repr(self.kv_cache_free_gpu_mem_fraction)
            ));
        }
        if self.build_only {
            parts.push("build_only".into());
        }
        match case {
            Some(c) => {
                if c.batch_size > 0 {
                    parts.push(format!("bs:{}", c.batch_size));
                }
                parts.push(match c.output_len {
                    Some(o) => format!("input_output_len:{},{o}", c.input_len),
                    None => format!("input_len:{}", c.input_len),
                });
            }
            None => {
                if !self.batch_sizes.is_empty() {
                    parts.push(format!("bs:{}", join(&self.batch_sizes)));
                }
                match &self.seq_lens {
                    Some(SeqLens::InputOutput(pairs)) => parts.push(format!(
                        "input_output_len:{}",
                        pairs
                            .iter()
                            .map(|(i, o)| format!("{i},{o}"))
                            .collect::<Vec<_>>()
                            .join("+")
                    )),
                    Some(SeqLens::InputOnly(v)) => parts.push(format!("input_len:{}", join(v))),
                    None => {}
                }
            }
        }
        if self.num_beams > 1 {
            parts.push(format!("beams:{}", self.num_beams));
        }
        if self.num_loras > 0 {
            parts.push(format!("loras:{}", self.num_loras));
        }
        if let Some(q) = &self.quantization {
            parts.push(format!("quant:{q}"));
        }
        if self.kv_cache_dtype != "auto" {
            parts.push(format!("kv_cache_dtype:{}", self.kv_cache_dtype));
        }
        if self.num_reqs != DEFAULT_NUM_REQS {
            parts.push(format!("reqs:{}", self.num_reqs));
        }
        if let Some(c) = self.concurrency {
            parts.push(format!("con:{c}"));
        }
        if let Some(ep) = self.ep_size {
            parts.push(format!("ep:{ep}"));
        }
        if self.tp_size > 1 && self.tp_size != self.num_gpus {
            parts.push(format!("tp:{}", self.tp_size));
        }
        if self.pp_size > 1 {
            parts.push(format!("pp:{}", self.pp_size));
        }
        if self.num_gpus > 1 {
            parts.push(format!("gpus:{}", self.num_gpus));
        }
        parts.join("-")
    }
}

fn join(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join("+")
}
