//! The perf-sanity YAML schema (upstream `_parse_aggr_config_file`, `_parse_disagg_config_file`,
//! `ServerConfig`, `ClientConfig`), checked with the file and line of every problem.
//!
//! Where upstream reads a key, its type is checked (upstream would crash or misread on the
//! wrong one). Unknown keys: errors where test_perf_sanity.py owns the schema (the aggregated
//! top level, `client_configs` entries, the disaggregated `benchmark` section), warnings in the
//! sections its SLURM launcher also reads (which grow with the launcher). A server config's
//! other keys are LLM API options, passed through to the extra LLM API YAML as upstream does;
//! one a typo away from a perf-sanity key is a warning.

use std::path::Path;

use serde_json::{Map, Value};

use super::yaml::{Entry, Node, Scalar};
use crate::testlist::{Diagnostic, Source};

/// What a key's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Int,
    Bool,
    Str,
    /// An int or a float.
    Num,
    Map,
    List,
    /// A mapping or null (`cuda_graph_config: null` turns CUDA graphs off).
    MapOrNull,
    /// `eagle3_layers_to_capture`: an int or a list.
    IntOrList,
    /// `moe_config.load_balancer`: inline, or a path to an offline-EPLB YAML.
    MapOrStr,
    /// `concurrency_list`: `'1 8 64'`, a list, or one int.
    StrListOrInt,
    /// A string, or null where upstream reads `value or ""`.
    StrOrNull,
    Any,
}

impl Ty {
    fn accepts(self, n: &Node) -> bool {
        let v = &n.value;
        match self {
            Ty::Int => matches!(v, Scalar::Int(_)),
            Ty::Bool => matches!(v, Scalar::Bool(_)),
            Ty::Str => matches!(v, Scalar::Str(_)),
            Ty::Num => matches!(v, Scalar::Int(_) | Scalar::Float(_)),
            Ty::Map => matches!(v, Scalar::Map(_)),
            Ty::List => matches!(v, Scalar::Seq(_)),
            Ty::MapOrNull => matches!(v, Scalar::Map(_) | Scalar::Null),
            Ty::IntOrList => matches!(v, Scalar::Int(_) | Scalar::Seq(_)),
            Ty::MapOrStr => matches!(v, Scalar::Map(_) | Scalar::Str(_)),
            Ty::StrListOrInt => matches!(v, Scalar::Str(_) | Scalar::Seq(_) | Scalar::Int(_)),
            Ty::StrOrNull => matches!(v, Scalar::Str(_) | Scalar::Null),
            Ty::Any => true,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Ty::Int => "an integer",
            Ty::Bool => "true or false",
            Ty::Str => "a string",
            Ty::Num => "a number",
            Ty::Map => "a mapping",
            Ty::List => "a list",
            Ty::MapOrNull => "a mapping or null",
            Ty::IntOrList => "an integer or a list",
            Ty::MapOrStr => "a mapping or a path",
            Ty::StrListOrInt => "a space-separated string, a list or an integer",
            Ty::StrOrNull => "a string",
            Ty::Any => "any value",
        }
    }
}

/// A section's key, its known keys, and how unknown ones are treated.
type Section = (&'static str, &'static [(&'static str, Ty)], Unknown);

/// How unknown keys of a section are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unknown {
    Error,
    Warn,
    /// Passed through (LLM API options); a near-miss of a known key is a warning.
    PassThrough,
    /// The section belongs to another tool (the SLURM launcher); not checked.
    Accept,
}

const AGG_TOP: &[(&str, Ty)] = &[
    ("metadata", Ty::Map),
    ("hardware", Ty::Map),
    ("server_configs", Ty::List),
];

const METADATA: &[(&str, Ty)] = &[
    ("model_name", Ty::Str),
    ("supported_gpus", Ty::List),
    ("precision", Ty::Str),
    ("model_dir_name", Ty::Str),
    ("script_file", Ty::Str),
    ("benchmark_type", Ty::Str),
];

const HARDWARE: &[(&str, Ty)] = &[
    ("gpus_per_node", Ty::Int),
    ("num_ctx_servers", Ty::Int),
    ("num_gen_servers", Ty::Int),
    ("supported_gpus", Ty::List),
];

/// The server-config keys test_perf_sanity.py reads (`ServerConfig.__init__` and the
/// aggregated parser), with their types. Every other key is an LLM API option.
pub(crate) const SERVER: &[(&str, Ty)] = &[
    ("name", Ty::Str),
    ("model_name", Ty::Str),
    ("server_env_var", Ty::Str),
    ("match_mode", Ty::Str),
    ("backend", Ty::Str),
    ("extra_llm_api_config_path", Ty::Str),
    ("mode", Ty::Any),
    ("concurrency", Ty::Int),
    ("disagg_run_type", Ty::Str),
    ("gpus", Ty::Int),
    ("gpus_per_node", Ty::Int),
    ("tensor_parallel_size", Ty::Int),
    ("moe_expert_parallel_size", Ty::Int),
    ("pipeline_parallel_size", Ty::Int),
    ("context_parallel_size", Ty::Int),
    ("max_num_tokens", Ty::Int),
    ("max_batch_size", Ty::Int),
    ("max_seq_len", Ty::Int),
    ("disable_overlap_scheduler", Ty::Bool),
    ("num_postprocess_workers", Ty::Int),
    ("stream_interval", Ty::Int),
    ("print_iter_log", Ty::Bool),
    ("attn_backend", Ty::Str),
    ("enable_chunked_prefill", Ty::Bool),
    ("enable_attention_dp", Ty::Bool),
    ("trust_remote_code", Ty::Bool),
    ("enable_lm_head_tp_in_adp", Ty::Bool),
    ("attention_dp_config", Ty::Map),
    ("moe_config", Ty::Map),
    ("cuda_graph_config", Ty::MapOrNull),
    ("kv_cache_config", Ty::Map),
    ("cache_transceiver_config", Ty::Map),
    ("speculative_config", Ty::Map),
    ("client_configs", Ty::List),
];

/// Nested keys upstream reads, by parent: checked for type, others passed through.
const NESTED: &[(&str, &[(&str, Ty)])] = &[
    (
        "attention_dp_config",
        &[
            ("enable_balance", Ty::Bool),
            ("batching_wait_iters", Ty::Int),
            ("timeout_iters", Ty::Int),
        ],
    ),
    (
        "moe_config",
        &[
            ("backend", Ty::Str),
            ("max_num_tokens", Ty::Int),
            ("use_low_precision_moe_combine", Ty::Bool),
            ("load_balancer", Ty::MapOrStr),
        ],
    ),
    (
        "cuda_graph_config",
        &[
            ("enable_padding", Ty::Bool),
            ("batch_sizes", Ty::List),
            ("max_batch_size", Ty::Int),
        ],
    ),
    (
        "kv_cache_config",
        &[
            ("dtype", Ty::Str),
            ("enable_block_reuse", Ty::Bool),
            ("free_gpu_memory_fraction", Ty::Num),
        ],
    ),
    (
        "cache_transceiver_config",
        &[("backend", Ty::Str), ("max_tokens_in_buffer", Ty::Int)],
    ),
    (
        "speculative_config",
        &[
            ("decoding_type", Ty::Str),
            ("max_draft_len", Ty::Int),
            ("num_nextn_predict_layers", Ty::Int),
            ("eagle3_layers_to_capture", Ty::IntOrList),
            ("speculative_model", Ty::Str),
            ("eagle3_one_model", Ty::Bool),
        ],
    ),
];

/// `ClientConfig.__init__`.
pub(crate) const CLIENT: &[(&str, Ty)] = &[
    ("name", Ty::Str),
    ("concurrency", Ty::Int),
    ("iterations", Ty::Int),
    ("isl", Ty::Int),
    ("osl", Ty::Int),
    ("random_range_ratio", Ty::Num),
    ("backend", Ty::Str),
    ("use_chat_template", Ty::Bool),
    ("streaming", Ty::Bool),
    ("trust_remote_code", Ty::Bool),
    ("dataset_file", Ty::Str),
    ("use_nv_sa_benchmark", Ty::Bool),
    ("client_env_var", Ty::Str),
    ("accuracy_config", Ty::MapOrNull),
    ("only_run_accuracy", Ty::Bool),
    ("warmup", Ty::Bool),
];

const DISAGG_TOP: &[(&str, Ty)] = &[
    ("metadata", Ty::Map),
    ("slurm", Ty::Map),
    ("benchmark", Ty::Map),
    ("hardware", Ty::Map),
    ("environment", Ty::Map),
    ("profiling", Ty::Map),
    ("worker_config", Ty::Map),
    ("accuracy", Ty::MapOrNull),
    ("internal_request_auth_key", Ty::StrOrNull),
];

const BENCHMARK: &[(&str, Ty)] = &[
    ("mode", Ty::Str),
    ("use_nv_sa_benchmark", Ty::Bool),
    ("multi_round", Ty::Int),
    ("benchmark_ratio", Ty::Num),
    ("streaming", Ty::Bool),
    ("concurrency_list", Ty::StrListOrInt),
    ("input_length", Ty::Int),
    ("output_length", Ty::Int),
    ("dataset_file", Ty::Str),
    ("only_run_accuracy", Ty::Bool),
];

const SLURM: &[(&str, Ty)] = &[("timeout", Ty::Int), ("numa_bind", Ty::Bool)];

const ENVIRONMENT: &[(&str, Ty)] = &[
    ("worker_env_var", Ty::StrOrNull),
    ("ctx_worker_env_var", Ty::StrOrNull),
    ("gen_worker_env_var", Ty::StrOrNull),
    ("server_env_var", Ty::StrOrNull),
    ("client_env_var", Ty::StrOrNull),
];

const WORKER_CONFIG: &[(&str, Ty)] = &[("ctx", Ty::Map), ("gen", Ty::Map)];

/// An aggregated file, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregated {
    /// `metadata.model_name` (upstream's default for every server).
    pub model_name: String,
    /// `hardware.gpus_per_node` (0 when absent).
    pub gpus_per_node: i64,
    pub servers: Vec<ServerSection>,
}

/// One `server_configs` entry: its data in file order, and its clients.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSection {
    pub line: usize,
    /// `name`, or "" (upstream then derives one).
    pub name: String,
    pub data: Map<String, Value>,
    pub clients: Vec<ClientSection>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientSection {
    pub line: usize,
    pub data: Map<String, Value>,
}

/// A disaggregated file, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Disaggregated {
    pub model_name: String,
    pub gpus_per_node: i64,
    pub hardware: Map<String, Value>,
    pub benchmark: Map<String, Value>,
    pub environment: Map<String, Value>,
    pub slurm: Map<String, Value>,
    pub ctx: Map<String, Value>,
    pub gen_: Map<String, Value>,
    pub accuracy: Option<Value>,
    /// The top-level `internal_request_auth_key`, when the file sets one.
    pub auth_key: Option<String>,
}

/// What a file holds, when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Aggregated(Aggregated),
    Disaggregated(Box<Disaggregated>),
}

/// Checks a parsed file. Every problem is a diagnostic at its line; `None` when the file is
/// too broken to use.
pub(crate) fn check(
    root: &Node,
    path: &Path,
    disaggregated: bool,
    out: &mut Vec<Diagnostic>,
) -> Option<Content> {
    let c = Checker { path, out };
    if disaggregated {
        c.disaggregated(root)
            .map(|d| Content::Disaggregated(Box::new(d)))
    } else {
        c.aggregated(root).map(Content::Aggregated)
    }
}

struct Checker<'a> {
    path: &'a Path,
    out: &'a mut Vec<Diagnostic>,
}

impl Checker<'_> {
    fn source(&self, line: usize) -> Source {
        Source {
            file: self.path.to_path_buf(),
            line,
        }
    }

    fn error(&mut self, line: usize, message: impl Into<String>) {
        let d = Diagnostic::error(self.source(line), message);
        self.out.push(d);
    }

    fn warn(&mut self, line: usize, message: impl Into<String>) {
        let d = Diagnostic::warning(self.source(line), message);
        self.out.push(d);
    }

    /// Checks a mapping's keys against `known` (`at` names it in messages).
    fn section(&mut self, node: &Node, at: &str, known: &[(&str, Ty)], unknown: Unknown) {
        let Some(entries) = node.entries() else {
            return;
        };
        for Entry { key, line, value } in entries {
            match known.iter().find(|(k, _)| k == key) {
                Some((_, ty)) => {
                    if !ty.accepts(value) {
                        self.error(
                            *line,
                            format!(
                                "{at}{key}: expected {}, found {}",
                                ty.describe(),
                                value.kind()
                            ),
                        );
                    }
                }
                None => {
                    let names = known.iter().map(|(k, _)| *k);
                    let near = crate::textutil::closest(key, names, 1);
                    let hint = near
                        .first()
                        .map(|k| format!("; did you mean `{k}`?"))
                        .unwrap_or_default();
                    let expected: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
                    match unknown {
                        Unknown::Error => self.error(
                            *line,
                            format!(
                                "{at}{key}: unknown key{hint} (expected one of {})",
                                expected.join(", ")
                            ),
                        ),
                        Unknown::Warn => self.warn(
                            *line,
                            format!("{at}{key}: not a key perf-sanity reads{hint}; ignored"),
                        ),
                        Unknown::PassThrough if !near.is_empty() => self.warn(
                            *line,
                            format!(
                                "{at}{key}: passed to the LLM API as it is, but it is a typo away \
                                 from the perf-sanity key `{}`",
                                near[0]
                            ),
                        ),
                        Unknown::PassThrough | Unknown::Accept => {}
                    }
                }
            }
        }
    }

    fn top(&mut self, root: &Node, known: &[(&str, Ty)], unknown: Unknown) -> bool {
        if root.entries().is_none() {
            self.error(
                root.line,
                format!(
                    "expected a mapping with {}, found {}",
                    known.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "),
                    root.kind()
                ),
            );
            return false;
        }
        self.section(root, "", known, unknown);
        true
    }

    fn map_of(&self, node: Option<&Node>) -> Map<String, Value> {
        match node.map(Node::to_json) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// A server config's (or worker's) keys and nested keys.
    fn server(&mut self, node: &Node, at: &str) {
        self.section(node, at, SERVER, Unknown::PassThrough);
        for (parent, keys) in NESTED {
            if let Some(child) = node.get(parent)
                && child.entries().is_some()
            {
                self.section(child, &format!("{at}{parent}."), keys, Unknown::PassThrough);
            }
        }
        if let Some(Scalar::Str(env)) = node.get("server_env_var").map(|n| &n.value) {
            self.env_string(
                node.key_line("server_env_var"),
                &format!("{at}server_env_var"),
                env,
            );
        }
    }

    /// Upstream splits env strings on whitespace and keeps `K=V` words, silently dropping the
    /// others: a word without `=` is a mistake worth naming.
    fn env_string(&mut self, line: usize, at: &str, env: &str) {
        for word in env.split_whitespace() {
            if !word.contains('=') || word.starts_with('=') {
                self.warn(
                    line,
                    format!("{at}: `{word}` is not KEY=VALUE; upstream drops it, so does perfgate"),
                );
            }
        }
        if let Some(v) = env_dict(env)
            .iter()
            .find(|(k, _)| k == "TLLM_SPEC_DECODE_FORCE_NUM_ACCEPTED_TOKENS")
            .map(|(_, v)| v)
            && v.parse::<i64>().is_err()
        {
            self.error(
                line,
                format!("{at}: TLLM_SPEC_DECODE_FORCE_NUM_ACCEPTED_TOKENS={v} is not an integer"),
            );
        }
    }

    fn aggregated(mut self, root: &Node) -> Option<Aggregated> {
        if !self.top(root, AGG_TOP, Unknown::Error) {
            return None;
        }
        let metadata = root.get("metadata");
        if let Some(m) = metadata {
            self.section(m, "metadata.", METADATA, Unknown::Warn);
        }
        if let Some(h) = root.get("hardware") {
            self.section(h, "hardware.", HARDWARE, Unknown::Warn);
        }
        let model_name = metadata
            .and_then(|m| m.get("model_name"))
            .and_then(|n| match &n.value {
                Scalar::Str(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let gpus_per_node = root
            .get("hardware")
            .and_then(|h| h.get("gpus_per_node"))
            .and_then(|n| match n.value {
                Scalar::Int(i) => Some(i),
                _ => None,
            })
            .unwrap_or(0);
        let Some(list) = root.get("server_configs") else {
            self.error(root.line, "server_configs: missing (upstream needs it)");
            return None;
        };
        let Scalar::Seq(items) = &list.value else {
            return None;
        };
        let mut servers = Vec::new();
        let mut names: Vec<(String, usize)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("server_configs[{i}].");
            if item.entries().is_none() {
                self.error(
                    item.line,
                    format!("{at}: expected a mapping, found {}", item.kind()),
                );
                continue;
            }
            self.server(item, &at);
            let name = match item.get("name").map(|n| &n.value) {
                Some(Scalar::Str(s)) => s.clone(),
                _ => String::new(),
            };
            if name.is_empty() {
                self.warn(
                    item.line,
                    format!(
                        "{at}name: missing; upstream derives one from the parallelism and \
                         backends, which no test id can select"
                    ),
                );
            } else if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
                self.error(
                    item.key_line("name"),
                    format!("{at}name: `{name}` is already the name of the server at line {first}"),
                );
            } else {
                names.push((name.clone(), item.key_line("name")));
            }
            if model_name.is_empty() && item.get("model_name").is_none() {
                self.error(
                    item.line,
                    format!("{at}model_name: missing, and metadata.model_name gives none"),
                );
            }
            let mut clients = Vec::new();
            match item.get("client_configs").map(|c| &c.value) {
                Some(Scalar::Seq(cs)) => {
                    if cs.is_empty() {
                        self.warn(
                            item.key_line("client_configs"),
                            format!("{at}client_configs: empty; the server would run no client"),
                        );
                    }
                    for (j, c) in cs.iter().enumerate() {
                        let cat = format!("{at}client_configs[{j}].");
                        if c.entries().is_none() {
                            self.error(
                                c.line,
                                format!("{cat}: expected a mapping, found {}", c.kind()),
                            );
                            continue;
                        }
                        self.section(c, &cat, CLIENT, Unknown::Error);
                        if let Some(Scalar::Str(env)) = c.get("client_env_var").map(|n| &n.value) {
                            self.env_string(
                                c.key_line("client_env_var"),
                                &format!("{cat}client_env_var"),
                                env,
                            );
                        }
                        clients.push(ClientSection {
                            line: c.line,
                            data: self.map_of(Some(c)),
                        });
                    }
                }
                Some(_) => {}
                None => self.error(
                    item.line,
                    format!("{at}client_configs: missing (upstream needs it)"),
                ),
            }
            servers.push(ServerSection {
                line: item.line,
                name,
                data: self.map_of(Some(item)),
                clients,
            });
        }
        Some(Aggregated {
            model_name,
            gpus_per_node,
            servers,
        })
    }

    fn disaggregated(mut self, root: &Node) -> Option<Disaggregated> {
        if !self.top(root, DISAGG_TOP, Unknown::Warn) {
            return None;
        }
        let sections: [Section; 6] = [
            ("metadata", METADATA, Unknown::Warn),
            ("hardware", HARDWARE, Unknown::Warn),
            ("benchmark", BENCHMARK, Unknown::Error),
            ("slurm", SLURM, Unknown::Accept),
            ("environment", ENVIRONMENT, Unknown::Accept),
            ("worker_config", WORKER_CONFIG, Unknown::Warn),
        ];
        for (key, known, unknown) in sections {
            if let Some(n) = root.get(key) {
                self.section(n, &format!("{key}."), known, unknown);
            }
        }
        let model_name = match root
            .get("metadata")
            .and_then(|m| m.get("model_name"))
            .map(|n| &n.value)
        {
            Some(Scalar::Str(s)) if !s.is_empty() => s.clone(),
            _ => {
                self.error(
                    root.key_line("metadata"),
                    "metadata.model_name: missing (upstream requires it)",
                );
                String::new()
            }
        };
        let workers = root.get("worker_config");
        for role in ["ctx", "gen"] {
            match workers.and_then(|w| w.get(role)) {
                Some(w) if w.entries().is_some() => {
                    self.server(w, &format!("worker_config.{role}."));
                    if w.get("client_configs").is_some() {
                        self.warn(
                            w.key_line("client_configs"),
                            format!(
                                "worker_config.{role}.client_configs: disaggregated clients \
                                 come from the benchmark section; ignored"
                            ),
                        );
                    }
                }
                _ => self.error(
                    workers.map_or(root.line, |w| w.line),
                    format!("worker_config.{role}: missing"),
                ),
            }
        }
        if let Some(env) = root.get("environment") {
            for key in ["worker_env_var", "ctx_worker_env_var", "gen_worker_env_var"] {
                if let Some(Scalar::Str(s)) = env.get(key).map(|n| &n.value) {
                    self.env_string(env.key_line(key), &format!("environment.{key}"), s);
                }
            }
        }
        if let Some(b) = root.get("benchmark") {
            if let Some(m) = b.get("mode")
                && let Scalar::Str(mode) = &m.value
                && !matches!(mode.as_str(), "e2e" | "gen_only" | "gen_only_no_context")
            {
                self.warn(
                    m.line,
                    format!(
                        "benchmark.mode: `{mode}` is none of e2e, gen_only, gen_only_no_context \
                         (the test id's mode is what runs)"
                    ),
                );
            }
            if let Some(c) = b.get("concurrency_list") {
                let ok = match &c.value {
                    Scalar::Str(s) => {
                        !s.trim().is_empty()
                            && s.split_whitespace().all(|x| x.parse::<i64>().is_ok())
                    }
                    Scalar::Seq(items) => {
                        !items.is_empty()
                            && items.iter().all(|i| match &i.value {
                                Scalar::Int(_) => true,
                                Scalar::Str(s) => s.trim().parse::<i64>().is_ok(),
                                _ => false,
                            })
                    }
                    Scalar::Int(_) => true,
                    _ => true,
                };
                if !ok {
                    self.error(
                        c.line,
                        "benchmark.concurrency_list: expected integers (`'1 8 64'` or a list)",
                    );
                }
            }
        }
        let auth_key = match root.get("internal_request_auth_key").map(|n| &n.value) {
            Some(Scalar::Str(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        let section = |key: &str| self.map_of(root.get(key));
        Some(Disaggregated {
            model_name,
            gpus_per_node: root
                .get("hardware")
                .and_then(|h| h.get("gpus_per_node"))
                .and_then(|n| match n.value {
                    Scalar::Int(i) => Some(i),
                    _ => None,
                })
                .unwrap_or(0),
            hardware: section("hardware"),
            benchmark: section("benchmark"),
            environment: section("environment"),
            slurm: section("slurm"),
            ctx: self.map_of(workers.and_then(|w| w.get("ctx"))),
            gen_: self.map_of(workers.and_then(|w| w.get("gen"))),
            accuracy: root
                .get("accuracy")
                .map(Node::to_json)
                .filter(|v| !v.is_null()),
            auth_key,
        })
    }
}

/// Upstream's `to_env_dict`: whitespace-separated words, `K=V` split at the first `=`, other
/// words dropped.
pub fn env_dict(env: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for word in env.split_whitespace() {
        if let Some((k, v)) = word.split_once('=') {
            match out.iter_mut().find(|(key, _)| key == k) {
                Some(e) => e.1 = v.to_string(),
                None => out.push((k.to_string(), v.to_string())),
            }
        }
    }
    out
}
