//! The test-name grammar: parse a list string such as
//! `llama_v3.3_70b-bench-pytorch-float8-input_output_len:128,128` into a typed [`PerfConfig`],
//! validate it, print its canonical label (upstream `PerfTestConfig.to_string()`), and expand
//! it into benchmark cases. Every other module receives a [`PerfName`], never a string to
//! re-parse.

mod canonical;
mod case_yaml;
mod error;
mod parse;
mod sanity;
mod slot;
mod sweep;
pub mod sweep_tests;

pub use case_yaml::case_form;
pub use error::{NameError, NameErrorKind};
pub use parse::{MAX_NAME_BYTES, parse, parse_test};
pub use sanity::{DisaggMode, SanityId, SanityKind, parse_sanity};
pub use slot::Slot;
pub use sweep::{AbName, Placement, SweepName};
pub use sweep_tests::{SweepTest, TestType};

use serde::Serialize;

/// One test-list name, parsed. Names of the standard grammar become [`PerfConfig`]s; the two
/// server-style families keep their own shapes so they are never mis-parsed as benchmarks.
#[derive(Debug, Clone, PartialEq)]
pub enum PerfName {
    Standard(PerfConfig),
    /// `<model>[-subtype:S]-disagg_server-ctx_<tp|dp|pp>:N-gen_<tp|dp|pp>:M`
    DisaggServer(DisaggConfig),
    /// `perf_sanity-<config file>[-<select pattern>]`: the 2025 `test_perf.py` server
    /// benchmark, superseded upstream by `test_perf_sanity.py` ([`PerfName::Sanity`]).
    PerfSanity {
        config_file: String,
        select: Option<String>,
    },
    /// `perf/test_perf_sanity.py::test_e2e[<label>]`.
    Sanity(SanityId),
    /// `<model>-sweep-<recipe>-...`: perfgate's prompt/generation sweep of a recipe's server.
    Sweep(SweepName),
    /// `<model>-ab-<recipe>-draft:<model>-...`: perfgate's A/B of the model alone and with a
    /// draft.
    Ab(AbName),
}

/// Which upstream test function a list entry names: its grammar and its test id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestFunction {
    /// `perf/test_perf.py::test_perf[<name>]` (and bare names).
    #[default]
    Perf,
    /// `perf/test_perf_sanity.py::test_e2e[<label>]`.
    PerfSanity,
}

impl TestFunction {
    /// `perf/test_perf.py::test_perf` or `perf/test_perf_sanity.py::test_e2e`.
    pub fn node(self) -> &'static str {
        match self {
            TestFunction::Perf => "perf/test_perf.py::test_perf",
            TestFunction::PerfSanity => "perf/test_perf_sanity.py::test_e2e",
        }
    }
}

impl PerfName {
    /// The canonical label: used for metric names and LLM-API rule matching.
    pub fn canonical(&self) -> String {
        match self {
            PerfName::Standard(c) => c.canonical(),
            PerfName::DisaggServer(d) => d.canonical(),
            PerfName::PerfSanity {
                config_file,
                select,
            } => match select {
                Some(s) => format!("perf_sanity-{config_file}-{s}"),
                None => format!("perf_sanity-{config_file}"),
            },
            PerfName::Sanity(id) => id.label.clone(),
            PerfName::Sweep(s) => s.canonical(),
            PerfName::Ab(a) => a.canonical(),
        }
    }

    /// The upstream test function the name belongs to.
    pub fn function(&self) -> TestFunction {
        match self {
            PerfName::Sanity(_) => TestFunction::PerfSanity,
            _ => TestFunction::Perf,
        }
    }

    pub fn model(&self) -> Option<&str> {
        match self {
            PerfName::Standard(c) => Some(&c.model),
            PerfName::DisaggServer(d) => Some(&d.model),
            PerfName::Sweep(s) => Some(&s.model),
            PerfName::Ab(a) => Some(&a.model),
            PerfName::PerfSanity { .. } | PerfName::Sanity(_) => None,
        }
    }

    /// Why perfgate cannot run this name yet, if it cannot.
    pub fn unsupported_reason(&self) -> Option<String> {
        match self {
            PerfName::Standard(c) => match c.runtime {
                Runtime::Bench | Runtime::Serve => None,
                Runtime::Cpp | Runtime::CppManager => Some(format!(
                    "runtime `{}` is a legacy TensorRT C++ benchmark flow that upstream no longer runs (only trtllm-bench is supported)",
                    c.runtime.as_str()
                )),
            },
            PerfName::DisaggServer(_) => {
                Some("disaggregated serving (`disagg_server`) is parsed but not run by perfgate yet".into())
            }
            PerfName::PerfSanity { .. } => Some(
                "`perf_sanity-<config>` is the 2025 test_perf.py server benchmark that upstream replaced by perf/test_perf_sanity.py::test_e2e[aggr-<config>[-<server>]]; list that id instead".into(),
            ),
            PerfName::Sanity(_) | PerfName::Sweep(_) | PerfName::Ab(_) => None,
        }
    }

    /// The (bs, isl, osl) cases this name expands into (empty for server-style names).
    pub fn cases(&self) -> Vec<CaseSpec> {
        match self {
            PerfName::Standard(c) => c.cases(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Cpp,
    CppManager,
    Bench,
    Serve,
}

impl Runtime {
    pub const ALL: [Runtime; 4] = [
        Runtime::Cpp,
        Runtime::CppManager,
        Runtime::Bench,
        Runtime::Serve,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Cpp => "cpp",
            Runtime::CppManager => "cppmanager",
            Runtime::Bench => "bench",
            Runtime::Serve => "serve",
        }
    }

    pub fn from_label(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// bench and serve take no build-mode label and may name a backend.
    pub fn is_llm_api(self) -> bool {
        matches!(self, Runtime::Bench | Runtime::Serve)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Backend {
    /// No backend label: the TensorRT engine flow (build, then run the engine).
    #[serde(rename = "tensorrt")]
    TensorRt,
    #[serde(rename = "pytorch")]
    Pytorch,
    #[serde(rename = "_autodeploy")]
    AutoDeploy,
}

impl Backend {
    /// The label spelling; TensorRT has none.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Backend::TensorRt => None,
            Backend::Pytorch => Some("pytorch"),
            Backend::AutoDeploy => Some("_autodeploy"),
        }
    }

    pub fn from_label(s: &str) -> Option<Self> {
        match s {
            "pytorch" => Some(Backend::Pytorch),
            "_autodeploy" => Some(Backend::AutoDeploy),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Plugin,
    Ootb,
    OotbExceptMha,
    PluginIfb,
}

impl Mode {
    pub const ALL: [Mode; 4] = [
        Mode::Plugin,
        Mode::Ootb,
        Mode::OotbExceptMha,
        Mode::PluginIfb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plugin => "plugin",
            Mode::Ootb => "ootb",
            Mode::OotbExceptMha => "ootb_except_mha",
            Mode::PluginIfb => "plugin_ifb",
        }
    }

    pub fn from_label(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Float32,
    Float16,
    Bfloat16,
    Float8,
    Float4,
}

impl DataType {
    pub const ALL: [DataType; 5] = [
        DataType::Float32,
        DataType::Float16,
        DataType::Bfloat16,
        DataType::Float8,
        DataType::Float4,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Float32 => "float32",
            DataType::Float16 => "float16",
            DataType::Bfloat16 => "bfloat16",
            DataType::Float8 => "float8",
            DataType::Float4 => "float4",
        }
    }

    pub fn from_label(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// Post-training quantizations upstream accepts for models with a local checkpoint.
pub const QUANT_WITH_CHECKPOINT: [&str; 8] = [
    "nvfp4",
    "fp8",
    "int8",
    "int4_awq",
    "w4a8_awq",
    "w4a16_awq",
    "int4_wo",
    "full_prec",
];

/// Post-training quantizations upstream accepts for its legacy allowed-configs zoo.
pub const QUANT_LEGACY_ZOO: [&str; 9] = [
    "fp8",
    "fp8_gemm",
    "fp8_kv_cache",
    "int8_sq_per_tensor",
    "int8_sq_per_token_channel",
    "int8_weight_only",
    "int4_weight_only",
    "int4_weight_only_awq",
    "int4_weight_only_gptq",
];

/// Every quantization the grammar accepts: the union of the two sets. Which set applies depends
/// on the model catalog, so the narrower check lives with the catalog.
pub fn quantizations() -> impl Iterator<Item = &'static str> {
    QUANT_WITH_CHECKPOINT.into_iter().chain(
        QUANT_LEGACY_ZOO
            .into_iter()
            .filter(|q| !QUANT_WITH_CHECKPOINT.contains(q)),
    )
}

pub const KV_CACHE_DTYPES: [&str; 2] = ["auto", "fp8"];

/// Sequence lengths: `input_output_len:I,O+I,O` (zipped pairs) or `input_len:I+I` (encoders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqLens {
    InputOutput(Vec<(u32, u32)>),
    InputOnly(Vec<u32>),
}

impl SeqLens {
    pub fn input_lens(&self) -> Vec<u32> {
        match self {
            SeqLens::InputOutput(p) => p.iter().map(|(i, _)| *i).collect(),
            SeqLens::InputOnly(v) => v.clone(),
        }
    }

    pub fn output_lens(&self) -> Vec<u32> {
        match self {
            SeqLens::InputOutput(p) => p.iter().map(|(_, o)| *o).collect(),
            SeqLens::InputOnly(_) => Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            SeqLens::InputOutput(p) => p.len(),
            SeqLens::InputOnly(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A validated perf test configuration (upstream `PerfTestConfig` after `validate()`), with the
/// GPU topology normalised: `num_gpus == tp_size * pp_size` always holds.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfConfig {
    pub model: String,
    pub device_subtype: Option<String>,
    pub runtime: Runtime,
    /// A server recipe named in the backend slot of a `serve` name
    /// (`tiny_llama_cpp-serve-llama.cpp-float32-...`): the engine perfgate starts instead of
    /// trtllm-serve (`model_configs/servers.yaml`).
    pub engine: Option<String>,
    /// `exe` (cppmanager executor API).
    pub api_exe: bool,
    pub backend: Backend,
    pub streaming: bool,
    pub static_batching: bool,
    /// Build mode; only spelled in names of the legacy runtimes (bench/serve use `plugin`).
    pub mode: Mode,
    pub data_type: DataType,
    pub gpu_weights_percent: Option<f64>,
    pub multiple_profiles: bool,
    pub max_batch_size: u32,
    pub max_num_tokens: u32,
    pub kv_cache_free_gpu_mem_fraction: f64,
    pub build_only: bool,
    /// Empty when the name has no `bs:` label (upstream `[0]`).
    pub batch_sizes: Vec<u32>,
    /// `None` only for `build_only` names.
    pub seq_lens: Option<SeqLens>,
    pub num_beams: u32,
    pub num_loras: u32,
    pub quantization: Option<String>,
    pub kv_cache_dtype: String,
    pub num_reqs: u32,
    /// `con:N`, or a concurrency sweep `con:1+4+16` (serve names only): one case per value, in
    /// the order written, sharing the test's server. Empty without a `con:` label.
    pub concurrencies: Vec<u32>,
    pub ep_size: Option<u32>,
    pub tp_size: u32,
    pub pp_size: u32,
    pub num_gpus: u32,
}

pub const DEFAULT_MAX_BATCH_SIZE: u32 = 512;
pub const DEFAULT_MAX_NUM_TOKENS: u32 = 2048;
pub const DEFAULT_KV_FRAC: f64 = 0.9;
pub const DEFAULT_NUM_REQS: u32 = 512;

impl PerfConfig {
    /// A config with upstream's defaults, before any label is applied.
    pub(crate) fn defaults(model: String, runtime: Runtime) -> Self {
        PerfConfig {
            model,
            device_subtype: None,
            runtime,
            engine: None,
            api_exe: false,
            backend: Backend::TensorRt,
            streaming: false,
            static_batching: false,
            mode: Mode::Plugin,
            data_type: DataType::Float16,
            gpu_weights_percent: None,
            multiple_profiles: false,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            max_num_tokens: DEFAULT_MAX_NUM_TOKENS,
            kv_cache_free_gpu_mem_fraction: DEFAULT_KV_FRAC,
            build_only: false,
            batch_sizes: Vec::new(),
            seq_lens: None,
            num_beams: 1,
            num_loras: 0,
            quantization: None,
            kv_cache_dtype: "auto".into(),
            num_reqs: DEFAULT_NUM_REQS,
            concurrencies: Vec::new(),
            ep_size: None,
            tp_size: 1,
            pp_size: 1,
            num_gpus: 1,
        }
    }

    /// The fields under upstream's names and default encodings (`batch_sizes: [0]`,
    /// `concurrency: -1`, ...), for comparison with upstream output and for JSON reports.
    pub fn upstream_fields(&self) -> serde_json::Value {
        let seq = self.seq_lens.as_ref();
        serde_json::json!({
            "model_name": self.model,
            "runtime": self.runtime.as_str(),
            "api": if self.api_exe { "exe" } else { "" },
            "backend": self.backend.label().unwrap_or(""),
            "streaming": if self.streaming { "streaming" } else { "" },
            "static_batching": if self.static_batching { "static_batching" } else { "" },
            "mode": self.mode.as_str(),
            "data_type": self.data_type.as_str(),
            "gpu_weights_percent": self.gpu_weights_percent.map_or(serde_json::json!(-1), |v| serde_json::json!(v)),
            "multiple_profiles": self.multiple_profiles,
            "max_batch_size": self.max_batch_size,
            "max_num_tokens": self.max_num_tokens,
            "kv_cache_free_gpu_mem_fraction": self.kv_cache_free_gpu_mem_fraction,
            "build_only": self.build_only,
            "batch_sizes": if self.batch_sizes.is_empty() { vec![0] } else { self.batch_sizes.clone() },
            "input_lens": seq.map_or(vec![8], SeqLens::input_lens),
            "output_lens": seq.map_or(vec![1], SeqLens::output_lens),
            "num_beams": self.num_beams,
            "num_loras": self.num_loras,
            "quantization": self.quantization.clone().unwrap_or_default(),
            "kv_cache_dtype": self.kv_cache_dtype,
            "num_reqs": self.num_reqs,
            // Upstream's one value (-1 without `con:`); a sweep, which upstream cannot name,
            // as its list.
            "concurrency": match self.concurrencies.as_slice() {
                [] => serde_json::json!(-1),
                [c] => serde_json::json!(c),
                many => serde_json::json!(many),
            },
            "ep_size": self.ep_size,
            "tp_size": self.tp_size,
            "pp_size": self.pp_size,
            "num_gpus": self.num_gpus,
            "device_subtype": self.device_subtype,
        })
    }
}

/// One benchmark case of a name: one (batch size, input length, output length) combination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseSpec {
    /// `None` when the name has no `bs:` label.
    pub batch_size: Option<u32>,
    pub input_len: u32,
    /// `None` for `input_len:` (encoder) names.
    pub output_len: Option<u32>,
    /// The case's `con:` value (one of a sweep's); `None` without a `con:` label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// The per-case canonical label used in metric names.
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParallelKind {
    Tp,
    Dp,
    Pp,
}

impl ParallelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ParallelKind::Tp => "tp",
            ParallelKind::Dp => "dp",
            ParallelKind::Pp => "pp",
        }
    }
}

/// `<model>-disagg_server-ctx_tp:1-gen_tp:1`: separate context and generation workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisaggConfig {
    pub model: String,
    pub device_subtype: Option<String>,
    pub ctx: (ParallelKind, u32),
    pub generation: (ParallelKind, u32),
}

impl DisaggConfig {
    /// Upstream's `to_string` for these repeats `disagg_server` and drops size-1 workers, so it
    /// cannot be parsed back; ours is the input grammar itself, which round-trips.
    pub fn canonical(&self) -> String {
        let subtype = self
            .device_subtype
            .as_ref()
            .map(|s| format!("-subtype:{s}"))
            .unwrap_or_default();
        format!(
            "{}{subtype}-disagg_server-ctx_{}:{}-gen_{}:{}",
            self.model,
            self.ctx.0.as_str(),
            self.ctx.1,
            self.generation.0.as_str(),
            self.generation.1
        )
    }
}
