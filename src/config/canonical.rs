//! The canonical label (upstream `PerfTestConfig.to_string()`) and the case expansion.

use super::{CaseSpec, DEFAULT_KV_FRAC, DEFAULT_NUM_REQS, PerfConfig, Runtime, SeqLens};
use crate::textutil::py_float_repr;

/// One case's overrides of the label: batch size (0 = none), a single length pair and a
/// single concurrency.
struct CaseOverride {
    batch_size: u32,
    input_len: u32,
    output_len: Option<u32>,
    concurrency: Option<u32>,
}

impl PerfConfig {
    /// The canonical label: defaults dropped, `maxbs`/`maxnt` always present, `tp` dropped when
    /// it equals the GPU count, `gpus` derived from tp × pp. A fixed point: parsing it gives
    /// the same config back.
    pub fn canonical(&self) -> String {
        self.label(None)
    }

    /// The (bs, isl, osl, con) cases: batch sizes outer, then the zipped length pairs, then the
    /// concurrencies of a sweep, each with its per-case label (upstream `to_string(custom_bs,
    /// custom_input_len, custom_output_len)`, with the case's one `con:` value).
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
        let concurrencies: Vec<Option<u32>> = if self.concurrencies.is_empty() {
            vec![None]
        } else {
            self.concurrencies.iter().copied().map(Some).collect()
        };
        let mut cases = Vec::with_capacity(batch_sizes.len() * inputs.len() * concurrencies.len());
        for &bs in &batch_sizes {
            for (i, &isl) in inputs.iter().enumerate() {
                let osl = outputs.get(i).copied();
                for &con in &concurrencies {
                    let over = CaseOverride {
                        batch_size: bs,
                        input_len: isl,
                        output_len: osl,
                        concurrency: con,
                    };
                    cases.push(CaseSpec {
                        batch_size: (bs > 0).then_some(bs),
                        input_len: isl,
                        output_len: osl,
                        concurrency: con,
                        label: self.label(Some(&over)),
                    });
                }
            }
        }
        cases
    }

    /// The canonical label at one concurrency of a sweep (the canonical label itself for a name
    /// with one `con:` or none): what rules keyed on a name's `con:` see for that concurrency.
    pub fn canonical_at(&self, concurrency: Option<u32>) -> String {
        if self.concurrencies.len() <= 1 {
            return self.canonical();
        }
        let mut one = self.clone();
        one.concurrencies = concurrency.into_iter().collect();
        one.canonical()
    }

    fn label(&self, case: Option<&CaseOverride>) -> String {
        use std::fmt::Write as _;
        // One string written in place: planning a 10,000-name list computes each label a few
        // times, and a part per allocation showed in its profile.
        let mut s = String::with_capacity(96);
        s.push_str(&self.model);
        // `write!` into a String cannot fail.
        let mut part = |args: std::fmt::Arguments| {
            s.push('-');
            let _ = s.write_fmt(args);
        };
        if let Some(sub) = &self.device_subtype {
            part(format_args!("subtype:{sub}"));
        }
        part(format_args!("{}", self.runtime.as_str()));
        let cppmanager = self.runtime == Runtime::CppManager;
        if cppmanager && self.api_exe {
            part(format_args!("exe"));
        }
        if let Some(engine) = &self.engine {
            part(format_args!("{engine}"));
        } else if self.runtime.is_llm_api()
            && let Some(b) = self.backend.label()
        {
            part(format_args!("{b}"));
        }
        if (cppmanager || self.runtime.is_llm_api()) && self.streaming {
            part(format_args!("streaming"));
        }
        if cppmanager && self.static_batching {
            part(format_args!("static_batching"));
        }
        if !self.runtime.is_llm_api() {
            part(format_args!("{}", self.mode.as_str()));
        }
        part(format_args!("{}", self.data_type.as_str()));
        if let Some(g) = self.gpu_weights_percent {
            part(format_args!("gwp:{}", py_float_repr(g)));
        }
        if self.multiple_profiles {
            part(format_args!("mp"));
        }
        part(format_args!("maxbs:{}", self.max_batch_size));
        part(format_args!("maxnt:{}", self.max_num_tokens));
        if self.kv_cache_free_gpu_mem_fraction != DEFAULT_KV_FRAC {
            part(format_args!(
                "kv_frac:{}",
                py_float_repr(self.kv_cache_free_gpu_mem_fraction)
            ));
        }
        if self.build_only {
            part(format_args!("build_only"));
        }
        match case {
            Some(c) => {
                if c.batch_size > 0 {
                    part(format_args!("bs:{}", c.batch_size));
                }
                match c.output_len {
                    Some(o) => part(format_args!("input_output_len:{},{o}", c.input_len)),
                    None => part(format_args!("input_len:{}", c.input_len)),
                }
            }
            None => {
                if !self.batch_sizes.is_empty() {
                    part(format_args!("bs:{}", Joined(&self.batch_sizes)));
                }
                match &self.seq_lens {
                    Some(SeqLens::InputOutput(pairs)) => {
                        part(format_args!("input_output_len:{}", Pairs(pairs)))
                    }
                    Some(SeqLens::InputOnly(v)) => part(format_args!("input_len:{}", Joined(v))),
                    None => {}
                }
            }
        }
        if self.num_beams > 1 {
            part(format_args!("beams:{}", self.num_beams));
        }
        if self.num_loras > 0 {
            part(format_args!("loras:{}", self.num_loras));
        }
        if let Some(q) = &self.quantization {
            part(format_args!("quant:{q}"));
        }
        if self.kv_cache_dtype != "auto" {
            part(format_args!("kv_cache_dtype:{}", self.kv_cache_dtype));
        }
        if self.num_reqs != DEFAULT_NUM_REQS {
            part(format_args!("reqs:{}", self.num_reqs));
        }
        match case {
            Some(CaseOverride {
                concurrency: Some(c),
                ..
            }) => part(format_args!("con:{c}")),
            Some(_) => {}
            None if !self.concurrencies.is_empty() => {
                part(format_args!("con:{}", Joined(&self.concurrencies)))
            }
            None => {}
        }
        if let Some(ep) = self.ep_size {
            part(format_args!("ep:{ep}"));
        }
        if self.tp_size > 1 && self.tp_size != self.num_gpus {
            part(format_args!("tp:{}", self.tp_size));
        }
        if self.pp_size > 1 {
            part(format_args!("pp:{}", self.pp_size));
        }
        if self.num_gpus > 1 {
            part(format_args!("gpus:{}", self.num_gpus));
        }
        s
    }
}

/// `1+2+4`.
struct Joined<'a>(&'a [u32]);

impl std::fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// `128,128+512,32`.
struct Pairs<'a>(&'a [(u32, u32)]);

impl std::fmt::Display for Pairs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (a, b)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{a},{b}")?;
        }
        Ok(())
    }
}
