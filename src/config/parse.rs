//! Left-to-right, slot-by-slot parsing as upstream `PerfTestConfig.load_from_str` does, then
//! `validate()`. Unlike upstream, every failure names the label, its position and what was
//! expected, and a misordered or misspelled label comes with the corrected name.

use std::collections::HashMap;

use super::error::{NameError, NameErrorKind as K};
use super::slot::{KEYED, Slot};
use super::{
    Backend, DataType, DisaggConfig, KV_CACHE_DTYPES, Mode, ParallelKind, PerfConfig, PerfName,
    Runtime, SeqLens, quantizations,
};
use crate::textutil::{closest, py_float_repr};

/// Parses and validates one name (the text between `test_perf[` and `]`).
pub fn parse(name: &str) -> Result<PerfName, NameError> {
    parse_inner(name, true)
}

/// Parses the `[...]` of a test id of `function`.
pub fn parse_test(function: super::TestFunction, raw: &str) -> Result<PerfName, NameError> {
    match function {
        super::TestFunction::Perf => parse(raw),
        super::TestFunction::PerfSanity => super::parse_sanity(raw).map(PerfName::Sanity),
    }
}

/// A server recipe's name in the backend slot of a `serve` name: lower-case letters, digits,
/// `_` and `.` (`vllm`, `llama.cpp`), and not a word of another slot or one a typo away from
/// a data type (`bfloat61` is a misspelt dtype, not an engine).
fn is_engine_label(label: &str) -> bool {
    let mut chars = label.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.'));
    well_formed
        && !matches!(
            label,
            "exe" | "streaming" | "static_batching" | "mp" | "build_only"
        )
        && DataType::from_label(label).is_none()
        && Mode::from_label(label).is_none()
        && closest(label, DataType::ALL.iter().map(|d| d.as_str()), 1).is_empty()
}

/// Longest test name accepted, in bytes. Upstream's longest names are about 150 bytes; the cap
/// keeps every later stage (rule matching, file names, suggestions) bounded on hostile input.
pub const MAX_NAME_BYTES: usize = 4096;

fn parse_inner(name: &str, suggest: bool) -> Result<PerfName, NameError> {
    if name.trim().is_empty() {
        return Err(NameError::new(K::Empty, "the test name is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::new(
            K::BadValue,
            format!(
                "the test name is {} bytes long; names are at most {MAX_NAME_BYTES} bytes",
                name.len()
            ),
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(NameError::new(
            K::BadValue,
            format!("the test name contains {c:?}; labels are joined by `-` with no spaces"),
        ));
    }
    let labels: Vec<&str> = name.split('-').collect();
    if let Some(i) = labels.iter().position(|l| l.is_empty()) {
        return Err(NameError::new(
            K::Empty,
            format!(
                "label {} is empty: the name has a leading or trailing `-`, or two `-` in a row",
                i + 1
            ),
        ));
    }
    if labels[0] == "perf_sanity" {
        return parse_perf_sanity(&labels);
    }
    match labels.get(1) {
        Some(&"sweep") => return super::sweep::parse_sweep(&labels).map(PerfName::Sweep),
        Some(&"ab") => return super::sweep::parse_ab(&labels).map(PerfName::Ab),
        _ => {}
    }
    let mut p = Parser {
        labels,
        pos: 1,
        seen: HashMap::new(),
        suggest,
    };
    p.check_model_name()?;
    let subtype = p.take_keyed(Slot::Subtype)?.map(str::to_string);
    if p.peek() == Some("disagg_server") {
        return p.parse_disagg(subtype);
    }
    let runtime = p.parse_runtime()?;
    let mut cfg = PerfConfig::defaults(p.labels[0].to_string(), runtime);
    cfg.device_subtype = subtype;
    cfg.api_exe = p.take_word("exe", Slot::Api);
    if let Some(b) = p.peek().and_then(Backend::from_label) {
        p.consume(Slot::Backend);
        cfg.backend = b;
    } else if runtime == Runtime::Serve
        && let Some(engine) = p.peek().filter(|l| is_engine_label(l))
    {
        p.consume(Slot::Backend);
        cfg.engine = Some(engine.to_string());
    }
    cfg.streaming = p.take_word("streaming", Slot::Streaming);
    cfg.static_batching = p.take_word("static_batching", Slot::StaticBatching);
    if !runtime.is_llm_api() {
        cfg.mode = match p.peek().and_then(Mode::from_label) {
            Some(m) => {
                p.consume(Slot::Mode);
                m
            }
            None => return Err(p.expected(Slot::Mode.describe())),
        };
    }
    cfg.data_type = match p.peek().and_then(DataType::from_label) {
        Some(d) => {
            p.consume(Slot::DataType);
            d
        }
        None => return Err(p.expected(Slot::DataType.describe())),
    };
    if let Some(v) = p.take_keyed(Slot::Gwp)? {
        cfg.gpu_weights_percent = Some(p.float_value(v, 0.0, 1.0, true)?);
    }
    cfg.multiple_profiles = p.take_word("mp", Slot::Mp);
    if let Some(v) = p.take_keyed(Slot::MaxBs)? {
        cfg.max_batch_size = p.int_value(v, 1)?;
    }
    if let Some(v) = p.take_keyed(Slot::MaxNt)? {
        cfg.max_num_tokens = p.int_value(v, 1)?;
    }
    if let Some(v) = p.take_keyed(Slot::KvFrac)? {
        cfg.kv_cache_free_gpu_mem_fraction = p.float_value(v, 0.0, 1.0, false)?;
    }
    cfg.build_only = p.take_word("build_only", Slot::BuildOnly);
    if !cfg.build_only {
        if let Some(v) = p.take_keyed(Slot::Bs)? {
            cfg.batch_sizes = p.int_list(v, '+', 1)?;
        }
        cfg.seq_lens = Some(p.parse_seq_lens()?);
    }
    if let Some(v) = p.take_keyed(Slot::Beams)? {
        cfg.num_beams = p.int_value(v, 1)?;
    }
    if let Some(v) = p.take_keyed(Slot::Loras)? {
        cfg.num_loras = p.int_value(v, 0)?;
    }
    if let Some(v) = p.take_keyed(Slot::Quant)? {
        if !quantizations().any(|q| q == v) {
            return Err(p
                .bad_value(format!(
                    "unknown quantization `{v}`; expected one of {}",
                    quantizations().collect::<Vec<_>>().join(", ")
                ))
                .suggest(
                    closest(v, quantizations(), 1)
                        .first()
                        .map(|s| format!("quant:{s}")),
                ));
        }
        cfg.quantization = Some(v.to_string());
    }
    if let Some(v) = p.take_keyed(Slot::KvCacheDtype)? {
        if !KV_CACHE_DTYPES.contains(&v) {
            return Err(p.bad_value(format!(
                "unknown KV cache dtype `{v}`; expected auto or fp8"
            )));
        }
        cfg.kv_cache_dtype = v.to_string();
    }
    if let Some(v) = p.take_keyed(Slot::Reqs)? {
        cfg.num_reqs = p.int_value(v, 1)?;
    }
    if let Some(v) = p.take_keyed(Slot::Con)? {
        cfg.concurrencies = p.int_list(v, '+', 1)?;
    }
    if let Some(v) = p.take_keyed(Slot::Ep)? {
        cfg.ep_size = Some(p.int_value(v, 1)?);
    }
    if let Some(v) = p.take_keyed(Slot::Tp)? {
        cfg.tp_size = p.int_value(v, 1)?;
    }
    if let Some(v) = p.take_keyed(Slot::Pp)? {
        cfg.pp_size = p.int_value(v, 1)?;
    }
    if let Some(v) = p.take_keyed(Slot::Gpus)? {
        cfg.num_gpus = p.int_value(v, 1)?;
    }
    if p.peek().is_some() {
        return Err(p.expected("no further label: the optional labels after the sequence lengths go in the order beams, loras, quant, kv_cache_dtype, reqs, con, ep, tp, pp, gpus"));
    }
    p.validate(&mut cfg)?;
    Ok(PerfName::Standard(cfg))
}

fn plus_joined(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

fn parse_perf_sanity(labels: &[&str]) -> Result<PerfName, NameError> {
    match labels {
        [_, cfg] => Ok(PerfName::PerfSanity {
            config_file: cfg.to_string(),
            select: None,
        }),
        [_, cfg, select] => Ok(PerfName::PerfSanity {
            config_file: cfg.to_string(),
            select: Some(select.to_string()),
        }),
        [_] => Err(NameError::new(
            K::Truncated,
            "`perf_sanity` needs a config file name: `perf_sanity-<config>[-<select>]`",
        )),
        _ => Err(NameError::new(
            K::UnknownLabel,
            "`perf_sanity` names have at most two more labels: `perf_sanity-<config>[-<select>]`",
        )
        .at(4, labels[3])),
    }
}

struct Parser<'a> {
    labels: Vec<&'a str>,
    /// Index of the next label to consume.
    pos: usize,
    /// Where each consumed slot was spelled, for validation messages.
    seen: HashMap<Slot, usize>,
    suggest: bool,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.labels.get(self.pos).copied()
    }

    fn consume(&mut self, slot: Slot) {
        self.seen.insert(slot, self.pos);
        self.pos += 1;
    }

    fn take_word(&mut self, word: &str, slot: Slot) -> bool {
        if self.peek() == Some(word) {
            self.consume(slot);
            true
        } else {
            false
        }
    }

    /// Takes `key:value` if the next label is in `slot`, returning the value.
    fn take_keyed(&mut self, slot: Slot) -> Result<Option<&'a str>, NameError> {
        let Some(label) = self.peek() else {
            return Ok(None);
        };
        if Slot::classify(label) != Some(slot) {
            return Ok(None);
        }
        let value = label.split_once(':').map_or("", |(_, v)| v);
        if value.is_empty() {
            let key = label.split(':').next().unwrap_or(label);
            return Err(NameError::new(
                K::BadValue,
                format!(
                    "`{key}:` has no value (values cannot contain `-`, which separates labels)"
                ),
            )
            .at(self.pos + 1, label));
        }
        self.consume(slot);
        Ok(Some(value))
    }

    /// The label just consumed, with its 1-based position.
    fn last(&self) -> (usize, &'a str) {
        (self.pos, self.labels[self.pos - 1])
    }

    fn bad_value(&self, message: String) -> NameError {
        let (pos, label) = self.last();
        NameError::new(K::BadValue, message).at(pos, label)
    }

    fn int_value(&self, v: &str, min: u32) -> Result<u32, NameError> {
        match v.parse::<u32>() {
            Ok(n) if n >= min => Ok(n),
            Ok(n) => {
                Err(self.bad_value(format!("{n} is too small: expected a whole number ≥ {min}")))
            }
            Err(_) => Err(self.bad_value(format!("`{v}` is not a whole number ≥ {min}"))),
        }
    }

    fn int_list(&self, v: &str, sep: char, min: u32) -> Result<Vec<u32>, NameError> {
        v.split(sep).map(|x| self.int_value(x, min)).collect()
    }

    /// A fraction in `[lo, hi]` (`(lo, hi]` unless `lo_inclusive`).
    fn float_value(&self, v: &str, lo: f64, hi: f64, lo_inclusive: bool) -> Result<f64, NameError> {
        let f: f64 = v
            .parse()
            .ok()
            .filter(|f: &f64| f.is_finite())
            .ok_or_else(|| self.bad_value(format!("`{v}` is not a number")))?;
        let low_ok = if lo_inclusive { f >= lo } else { f > lo };
        if low_ok && f <= hi {
            Ok(f)
        } else {
            let open = if lo_inclusive { '[' } else { '(' };
            Err(self.bad_value(format!(
                "{} is out of range: expected a fraction in {open}{}, {}]",
                py_float_repr(f),
                py_float_repr(lo),
                py_float_repr(hi)
            )))
        }
    }

    fn check_model_name(&self) -> Result<(), NameError> {
        let model = self.labels[0];
        if let Some(c) = model
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.')))
        {
            return Err(NameError::new(
                K::BadModelName,
                format!("model names may contain only letters, digits, `_` and `.`, not {c:?}"),
            )
            .at(1, model));
        }
        Ok(())
    }

    fn parse_runtime(&mut self) -> Result<Runtime, NameError> {
        let Some(label) = self.peek() else {
            return Err(NameError::new(
                K::Truncated,
                format!(
                    "the name ends after the model name; expected {} next",
                    Slot::Runtime.describe()
                ),
            ));
        };
        if let Some(r) = Runtime::from_label(label) {
            self.consume(Slot::Runtime);
            return Ok(r);
        }
        // `llama-3.1-8b-bench-...`: the model name itself was split on `-`.
        if let Some(k) = self
            .labels
            .iter()
            .position(|l| Runtime::from_label(l).is_some() || *l == "disagg_server")
        {
            let model = self.labels[..k].join("_");
            let rest = self.labels[k..].join("-");
            return Err(NameError::new(
                K::BadModelName,
                format!(
                    "model names cannot contain `-` (labels are split on it); the runtime `{}` is label {}",
                    self.labels[k],
                    k + 1
                ),
            )
            .at(1, self.labels[0])
            .suggest(Some(format!("{model}-{rest}"))));
        }
        let near = closest(label, Runtime::ALL.iter().map(|r| r.as_str()), 1);
        Err(NameError::new(
            K::UnknownRuntime,
            format!("unknown runtime; expected {}", Slot::Runtime.describe()),
        )
        .at(self.pos + 1, label)
        .suggest(near.first().map(|r| self.replace_label(self.pos, r))))
    }

    fn parse_seq_lens(&mut self) -> Result<SeqLens, NameError> {
        let label = match self.peek() {
            Some(l) if Slot::classify(l) == Some(Slot::SeqLens) => l,
            _ => return Err(self.expected(Slot::SeqLens.describe())),
        };
        self.consume(Slot::SeqLens);
        if let Some(v) = label.strip_prefix("input_output_len:") {
            let pairs = v
                .split('+')
                .map(|pair| {
                    let (i, o) = pair.split_once(',').ok_or_else(|| {
                        self.bad_value(format!(
                            "`{pair}` is not an `INPUT,OUTPUT` pair (pairs are joined by `+`; use `input_len:` for input lengths only)"
                        ))
                    })?;
                    Ok((self.int_value(i, 1)?, self.int_value(o, 1)?))
                })
                .collect::<Result<Vec<_>, NameError>>()?;
            Ok(SeqLens::InputOutput(pairs))
        } else {
            let v = label.strip_prefix("input_len:").unwrap_or_default();
            Ok(SeqLens::InputOnly(self.int_list(v, '+', 1)?))
        }
    }

    fn parse_disagg(mut self, subtype: Option<String>) -> Result<PerfName, NameError> {
        self.consume(Slot::Runtime);
        let mut take = |prefix: &str| -> Result<(ParallelKind, u32), NameError> {
            let pos = self.pos;
            let Some(label) = self.peek() else {
                return Err(NameError::new(
                    K::Truncated,
                    format!(
                        "the name ends early; expected `{prefix}_tp:N`, `{prefix}_dp:N` or `{prefix}_pp:N`"
                    ),
                ));
            };
            let parsed = label
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('_'))
                .and_then(|r| {
                    let (kind, n) = r.split_once(':')?;
                    let kind = match kind {
                        "tp" => ParallelKind::Tp,
                        "dp" => ParallelKind::Dp,
                        "pp" => ParallelKind::Pp,
                        _ => return None,
                    };
                    Some((kind, n.parse::<u32>().ok().filter(|n| *n >= 1)?))
                });
            self.pos += 1;
            parsed.ok_or_else(|| {
                NameError::new(
                    K::BadValue,
                    format!(
                        "expected `{prefix}_tp:N`, `{prefix}_dp:N` or `{prefix}_pp:N` with N ≥ 1"
                    ),
                )
                .at(pos + 1, label)
            })
        };
        let ctx = take("ctx")?;
        let gen_ = take("gen")?;
        if let Some(extra) = self.peek() {
            return Err(
                NameError::new(K::UnknownLabel, "nothing may follow the gen worker label")
                    .at(self.pos + 1, extra),
            );
        }
        Ok(PerfName::DisaggServer(DisaggConfig {
            model: self.labels[0].to_string(),
            device_subtype: subtype,
            ctx,
            generation: gen_,
        }))
    }

    /// The error for the label at the cursor when `expected` should have been there: says
    /// whether it is a known label in the wrong slot (and proposes the reordered name), a
    /// duplicate, or an unknown label (and proposes the closest known one).
    fn expected(&self, expected: &str) -> NameError {
        let pos = self.pos;
        let Some(label) = self.peek() else {
            let after = self.labels.last().copied().unwrap_or_default();
            return NameError::new(
                K::Truncated,
                format!("the name ends after `{after}`; expected {expected}"),
            );
        };
        match Slot::classify(label) {
            Some(slot) if self.seen.contains_key(&slot) => NameError::new(
                K::Duplicate,
                format!("{} appears twice (first as label {})", slot.describe(), self.seen[&slot] + 1),
            )
            .at(pos + 1, label),
            Some(slot) => NameError::new(
                K::Misplaced,
                format!(
                    "{} is out of order here (expected {expected}); labels must follow the grammar's fixed order",
                    slot.describe()
                ),
            )
            .at(pos + 1, label)
            .suggest(self.reordered()),
            None => {
                let key = label.split(':').next().unwrap_or(label);
                let fix = closest(key, Slot::vocabulary(), 1).first().map(|k| {
                    let fixed = match label.split_once(':') {
                        Some((_, v)) if KEYED.iter().any(|(kk, _)| kk == k) || k.contains("len") || *k == "gpus" => {
                            format!("{k}:{v}")
                        }
                        _ => k.to_string(),
                    };
                    self.replace_label(pos, &fixed)
                });
                NameError::new(K::UnknownLabel, format!("unknown label; expected {expected}"))
                    .at(pos + 1, label)
                    .suggest(fix)
            }
        }
    }

    fn replace_label(&self, index: usize, with: &str) -> String {
        let mut labels = self.labels.clone();
        labels[index] = with;
        labels.join("-")
    }

    /// The name with its labels sorted into slot order, if that makes a valid name.
    fn reordered(&self) -> Option<String> {
        if !self.suggest {
            return None;
        }
        let mut rest: Vec<(Slot, &str)> = Vec::new();
        for l in &self.labels[1..] {
            rest.push((Slot::classify(l)?, l));
        }
        rest.sort_by_key(|(s, _)| *s);
        let name = std::iter::once(self.labels[0])
            .chain(rest.iter().map(|(_, l)| *l))
            .collect::<Vec<_>>()
            .join("-");
        parse_inner(&name, false).ok().map(|_| name)
    }

    /// Upstream `validate()` rules that span labels, with the topology normalisation.
    fn validate(&self, cfg: &mut PerfConfig) -> Result<(), NameError> {
        let at = |slot: Slot| self.seen.get(&slot).map(|&i| (i + 1, self.labels[i]));
        let err = |kind, slot: Slot, msg: String| match at(slot) {
            Some((p, l)) => NameError::new(kind, msg).at(p, l),
            None => NameError::new(kind, msg),
        };
        let rt = cfg.runtime.as_str();
        if cfg.backend != Backend::TensorRt && !cfg.runtime.is_llm_api() {
            return Err(err(
                K::InvalidCombination,
                Slot::Backend,
                format!("a backend is only valid with the bench or serve runtime, not `{rt}`"),
            ));
        }
        if cfg.api_exe && cfg.runtime != Runtime::CppManager {
            return Err(err(
                K::InvalidCombination,
                Slot::Api,
                format!("`exe` is only valid with the cppmanager runtime, not `{rt}`"),
            ));
        }
        if cfg.static_batching && cfg.runtime != Runtime::CppManager {
            return Err(err(
                K::InvalidCombination,
                Slot::StaticBatching,
                format!("`static_batching` is only valid with the cppmanager runtime, not `{rt}`"),
            ));
        }
        if cfg.mode == Mode::PluginIfb && cfg.runtime != Runtime::CppManager {
            return Err(err(
                K::InvalidCombination,
                Slot::Mode,
                format!("`plugin_ifb` is only valid with the cppmanager runtime, not `{rt}`"),
            ));
        }
        if cfg.streaming && cfg.runtime == Runtime::Cpp {
            return Err(err(
                K::InvalidCombination,
                Slot::Streaming,
                "`streaming` is not valid with the cpp runtime".into(),
            ));
        }
        if cfg.backend == Backend::Pytorch && cfg.quantization.is_some() {
            return Err(err(
                K::InvalidCombination,
                Slot::Quant,
                "quantization cannot be passed with the pytorch backend (upstream: \"Not support passing quantization for pytorch backend\"); the pytorch backend takes the quantization from a pre-quantized checkpoint, e.g. a `_fp8` model".into(),
            ));
        }
        if cfg.runtime == Runtime::Cpp && !cfg.build_only {
            if cfg.batch_sizes.is_empty() {
                return Err(err(K::InvalidCombination, Slot::Runtime, "the cpp runtime needs batch sizes: add `bs:N[+N...]` before the sequence lengths".into()));
            }
            if let Some(&max) = cfg
                .batch_sizes
                .iter()
                .max()
                .filter(|&&m| m > cfg.max_batch_size)
            {
                return Err(err(
                    K::BadValue,
                    Slot::Bs,
                    format!("batch size {max} exceeds maxbs {}", cfg.max_batch_size),
                ));
            }
        }
        if cfg.concurrencies.len() > 1 {
            if cfg.runtime != Runtime::Serve {
                return Err(err(
                    K::InvalidCombination,
                    Slot::Con,
                    format!(
                        "a concurrency sweep (`con:{}`) is for serve names, whose cases share one \
                         server; list one `{rt}` name per concurrency",
                        plus_joined(&cfg.concurrencies)
                    ),
                ));
            }
            if let Some(dup) = cfg
                .concurrencies
                .iter()
                .enumerate()
                .find_map(|(i, c)| cfg.concurrencies[..i].contains(c).then_some(*c))
            {
                return Err(err(
                    K::BadValue,
                    Slot::Con,
                    format!(
                        "concurrency {dup} is listed twice in `con:{}`; each concurrency of a \
                         sweep is one case",
                        plus_joined(&cfg.concurrencies)
                    ),
                ));
            }
        }
        self.normalise_topology(cfg, &err)?;
        if let Some(ep) = cfg.ep_size.filter(|&ep| ep > cfg.num_gpus) {
            return Err(err(
                K::Topology,
                Slot::Ep,
                format!("ep:{ep} exceeds the {} GPU(s) of this test", cfg.num_gpus),
            ));
        }
        Ok(())
    }

    /// Upstream: `gpus>1 ∧ tp=pp=1 ⇒ tp:=gpus`; `tp>1 ∨ (pp>1 ∧ gpus=1) ⇒ gpus:=tp·pp`. Upstream
    /// silently overwrites an explicit `gpus` that disagrees with `tp × pp`; we reject it.
    fn normalise_topology(
        &self,
        cfg: &mut PerfConfig,
        err: &dyn Fn(K, Slot, String) -> NameError,
    ) -> Result<(), NameError> {
        let explicit_gpus = self.seen.contains_key(&Slot::Gpus);
        let explicit_split = self.seen.contains_key(&Slot::Tp) || self.seen.contains_key(&Slot::Pp);
        let product = cfg
            .tp_size
            .checked_mul(cfg.pp_size)
            .ok_or_else(|| err(K::Topology, Slot::Pp, "tp × pp overflows".into()))?;
        if explicit_gpus && explicit_split && cfg.num_gpus != product {
            return Err(err(
                K::Topology,
                Slot::Gpus,
                format!(
                    "gpus:{} but tp:{} × pp:{} = {product}; the GPU count must equal tp × pp",
                    cfg.num_gpus, cfg.tp_size, cfg.pp_size
                ),
            )
            .suggest(None));
        }
        if cfg.num_gpus > 1 && cfg.tp_size == 1 && cfg.pp_size == 1 {
            cfg.tp_size = cfg.num_gpus;
        }
        if cfg.tp_size > 1 || (cfg.pp_size > 1 && cfg.num_gpus == 1) {
            cfg.num_gpus = cfg.tp_size * cfg.pp_size;
        }
        if cfg.num_gpus != cfg.tp_size * cfg.pp_size {
            return Err(err(
                K::Topology,
                Slot::Gpus,
                format!(
                    "gpus:{} but tp:{} × pp:{} = {}",
                    cfg.num_gpus,
                    cfg.tp_size,
                    cfg.pp_size,
                    cfg.tp_size * cfg.pp_size
                ),
            ));
        }
        Ok(())
    }
}
