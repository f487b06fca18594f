//! The label slots of the grammar, in the order a name must spell them. Used by the parser to
//! say what a slot expects, and by the diagnostics to recognise a label that is merely in the
//! wrong place and to propose the correctly ordered name.

use super::{Backend, DataType, Mode, Runtime};

/// Slots in parse (and emission) order; `Ord` follows declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    Subtype,
    Runtime,
    Api,
    Backend,
    Streaming,
    StaticBatching,
    Mode,
    DataType,
    Gwp,
    Mp,
    MaxBs,
    MaxNt,
    KvFrac,
    BuildOnly,
    Bs,
    SeqLens,
    Beams,
    Loras,
    Quant,
    KvCacheDtype,
    Reqs,
    Con,
    Ep,
    Tp,
    Pp,
    Gpus,
}

/// `key:` prefixes of the valued labels, with their slot.
pub(crate) const KEYED: [(&str, Slot); 15] = [
    ("subtype", Slot::Subtype),
    ("gwp", Slot::Gwp),
    ("maxbs", Slot::MaxBs),
    ("maxnt", Slot::MaxNt),
    ("kv_frac", Slot::KvFrac),
    ("bs", Slot::Bs),
    ("beams", Slot::Beams),
    ("loras", Slot::Loras),
    ("quant", Slot::Quant),
    ("kv_cache_dtype", Slot::KvCacheDtype),
    ("reqs", Slot::Reqs),
    ("con", Slot::Con),
    ("ep", Slot::Ep),
    ("tp", Slot::Tp),
    ("pp", Slot::Pp),
];

const WORDS: [(&str, Slot); 5] = [
    ("exe", Slot::Api),
    ("streaming", Slot::Streaming),
    ("static_batching", Slot::StaticBatching),
    ("mp", Slot::Mp),
    ("build_only", Slot::BuildOnly),
];

impl Slot {
    /// Which slot a label belongs to, wherever it stands; `None` for an unknown label.
    pub fn classify(label: &str) -> Option<Slot> {
        if Runtime::from_label(label).is_some() {
            return Some(Slot::Runtime);
        }
        if Backend::from_label(label).is_some() {
            return Some(Slot::Backend);
        }
        if Mode::from_label(label).is_some() {
            return Some(Slot::Mode);
        }
        if DataType::from_label(label).is_some() {
            return Some(Slot::DataType);
        }
        if let Some((_, slot)) = WORDS.iter().find(|(w, _)| *w == label) {
            return Some(*slot);
        }
        if label.starts_with("input_output_len:") || label.starts_with("input_len:") {
            return Some(Slot::SeqLens);
        }
        if label.starts_with("gpus:") {
            return Some(Slot::Gpus);
        }
        let key = label.split_once(':').map(|(k, _)| k)?;
        KEYED.iter().find(|(k, _)| *k == key).map(|(_, s)| *s)
    }

    /// How the slot is spelled, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Slot::Subtype => "`subtype:S`",
            Slot::Runtime => "a runtime (bench|serve|cppmanager|cpp)",
            Slot::Api => "`exe`",
            Slot::Backend => "a backend (pytorch|_autodeploy, or a server recipe with serve)",
            Slot::Streaming => "`streaming`",
            Slot::StaticBatching => "`static_batching`",
            Slot::Mode => "a build mode (plugin|ootb|ootb_except_mha|plugin_ifb)",
            Slot::DataType => "a data type (float32|float16|bfloat16|float8|float4)",
            Slot::Gwp => "`gwp:F`",
            Slot::Mp => "`mp`",
            Slot::MaxBs => "`maxbs:N`",
            Slot::MaxNt => "`maxnt:N`",
            Slot::KvFrac => "`kv_frac:F`",
            Slot::BuildOnly => "`build_only`",
            Slot::Bs => "`bs:N[+N...]`",
            Slot::SeqLens => "`input_output_len:I,O[+I,O...]` or `input_len:I[+I...]`",
            Slot::Beams => "`beams:N`",
            Slot::Loras => "`loras:N`",
            Slot::Quant => "`quant:Q`",
            Slot::KvCacheDtype => "`kv_cache_dtype:K`",
            Slot::Reqs => "`reqs:N`",
            Slot::Con => "`con:N`",
            Slot::Ep => "`ep:N`",
            Slot::Tp => "`tp:N`",
            Slot::Pp => "`pp:N`",
            Slot::Gpus => "`gpus:N`",
        }
    }

    /// Every label keyword, for "closest known label" suggestions.
    pub fn vocabulary() -> Vec<&'static str> {
        let mut v: Vec<&'static str> = Vec::new();
        v.extend(Runtime::ALL.iter().map(|r| r.as_str()));
        v.extend(["pytorch", "_autodeploy"]);
        v.extend(Mode::ALL.iter().map(|m| m.as_str()));
        v.extend(DataType::ALL.iter().map(|d| d.as_str()));
        v.extend(WORDS.iter().map(|(w, _)| *w));
        v.extend(KEYED.iter().map(|(k, _)| *k));
        v.extend(["input_output_len", "input_len", "gpus"]);
        v
    }
}
