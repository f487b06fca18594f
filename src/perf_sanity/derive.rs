//! What upstream's `test_perf_sanity.py` (commit 0452cf0c) derives from a checked config: its
//! `ServerConfig` (the trtllm-serve argv, env and extra LLM API YAML, the database fields and
//! match keys), its `ClientConfig` (the workload, the benchmark_serving argv, the database
//! fields), and the disaggregated server config. Re-expressed from reading upstream's code;
//! `tests/fixtures/perf_sanity/` holds upstream's own configs and what its code produces for
//! them, and the tests compare.

use serde_json::{Map, Value, json};

use super::schema::{Aggregated, Disaggregated, env_dict};
use crate::config::{DisaggMode, SanityId, SanityKind};
use crate::llm_api::pyyaml::to_pyyaml_unsorted;
use crate::textutil::py_float_repr;

/// Upstream's keys kept out of the extra LLM API YAML (`ServerConfig.exclude_keys`).
pub const EXCLUDED_KEYS: [&str; 12] = [
    "mode",
    "concurrency",
    "name",
    "model_name",
    "disagg_run_type",
    "gpus",
    "gpus_per_node",
    "match_mode",
    "client_configs",
    "backend",
    "extra_llm_api_config_path",
    "server_env_var",
];

/// `perf_sanity_matching.py`: the server keys of match mode `scenario` and `config`, and the
/// client keys.
pub const SCENARIO_SERVER_MATCH_KEYS: [&str; 2] = ["s_model_name", "l_gpus"];
pub const CONFIG_SERVER_MATCH_KEYS: [&str; 15] = [
    "s_model_name",
    "l_tp",
    "l_ep",
    "l_pp",
    "l_cp",
    "l_gpus_per_node",
    "l_max_batch_size",
    "b_enable_attention_dp",
    "s_serving_backend",
    "s_kv_cache_dtype",
    "s_cache_transceiver_backend",
    "s_spec_decoding_type",
    "l_num_nextn_predict_layers",
    "l_force_num_accepted_tokens",
    "l_load_balancer_num_slots",
];
pub const CLIENT_MATCH_KEYS: [&str; 10] = [
    "l_concurrency",
    "l_iterations",
    "l_isl",
    "l_osl",
    "d_random_range_ratio",
    "s_backend",
    "b_use_chat_template",
    "b_streaming",
    "b_use_nv_sa_benchmark",
    "b_eos",
];

/// The sixteen `benchmark_serving` figures upstream stores (`PERF_METRIC_LOG_QUERIES`), plus
/// `d_al`, with perfgate's metric for each: `(database field, perfgate metric)`.
pub const METRIC_FIELDS: [(&str, &str); 17] = [
    ("d_seq_throughput", "SEQ_THROUGHPUT"),
    ("d_token_throughput", "TOTAL_OUTPUT_THROUGHPUT"),
    ("d_total_token_throughput", "TOTAL_TOKEN_THROUGHPUT"),
    ("d_user_throughput", "USER_THROUGHPUT"),
    ("d_mean_ttft", "FIRST_TOKEN_TIME"),
    ("d_median_ttft", "MEDIAN_FIRST_TOKEN_TIME"),
    ("d_p99_ttft", "P99_FIRST_TOKEN_TIME"),
    ("d_mean_itl", "INTER_TOKEN_TIME"),
    ("d_median_itl", "MEDIAN_INTER_TOKEN_TIME"),
    ("d_p99_itl", "P99_INTER_TOKEN_TIME"),
    ("d_mean_tpot", "OUTPUT_TOKEN_TIME"),
    ("d_median_tpot", "MEDIAN_OUTPUT_TOKEN_TIME"),
    ("d_p99_tpot", "P99_OUTPUT_TOKEN_TIME"),
    ("d_mean_e2el", "AVG_REQUEST_LATENCY"),
    ("d_median_e2el", "MEDIAN_INFERENCE_TIME"),
    ("d_p99_e2el", "P99_INFERENCE_TIME"),
    ("d_al", "AVG_DECODED_TOKENS_PER_ITER"),
];

/// Upstream's `MAXIMIZE_METRICS`. It lists the three TPOT figures, which are times (lower is
/// better): an upstream bug, harmless there only because TPOT is not a regression metric.
/// perfgate's directions come from its metric table, never from this list.
pub const UPSTREAM_MAXIMIZE: [&str; 8] = [
    "d_seq_throughput",
    "d_token_throughput",
    "d_total_token_throughput",
    "d_user_throughput",
    "d_mean_tpot",
    "d_median_tpot",
    "d_p99_tpot",
    "d_al",
];

/// Upstream's `REGRESSION_METRICS` (plus `d_al` when a client decodes speculatively).
pub const UPSTREAM_REGRESSION: [&str; 2] = ["d_token_throughput", "d_total_token_throughput"];

/// Python's `os.path.join(a, b)` for two parts.
pub fn py_join(a: &str, b: &str) -> String {
    if b.starts_with('/') || a.is_empty() {
        b.to_string()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// Python's `str()` of a YAML number, as upstream writes it into an argv.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => py_float_repr(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// `dict.get(key, default)`.
fn get(m: &Map<String, Value>, key: &str, default: Value) -> Value {
    m.get(key).cloned().unwrap_or(default)
}

fn int(m: &Map<String, Value>, key: &str, default: i64) -> i64 {
    m.get(key).and_then(Value::as_i64).unwrap_or(default)
}

fn boolean(m: &Map<String, Value>, key: &str, default: bool) -> bool {
    m.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn string(m: &Map<String, Value>, key: &str, default: &str) -> String {
    m.get(key)
        .and_then(Value::as_str)
        .map_or_else(|| default.to_string(), str::to_string)
}

/// A nested mapping (`{}` when absent or not a mapping).
fn section(m: &Map<String, Value>, key: &str) -> Map<String, Value> {
    match m.get(key) {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    }
}

/// Which extra-LLM-API file a server is (`extra-llm-api-config.<run>.<name>.yml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunType {
    Aggr,
    Ctx,
    Gen,
}

impl RunType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Aggr => "aggr",
            RunType::Ctx => "ctx",
            RunType::Gen => "gen",
        }
    }
}

/// Upstream's `ServerConfig` of one server (or disaggregated worker).
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// The dict it was built from (upstream's `server_config_data`, keys in order).
    pub data: Map<String, Value>,
    pub name: String,
    pub model_name: String,
    /// `server_env_var` (or the workers' env string).
    pub env_vars: String,
    pub run_type: RunType,
    pub tp: i64,
    pub ep: i64,
    pub pp: i64,
    pub cp: i64,
    pub gpus: i64,
    pub gpus_per_node: i64,
    pub backend: String,
    pub extra_llm_api_config_path: String,
    pub match_mode: String,
    pub spec_decoding_type: String,
    pub max_draft_len: i64,
    pub max_batch_size: i64,
    pub force_num_accepted_tokens: i64,
}

impl Server {
    /// `ServerConfig(server_config_data, env_vars)`.
    pub fn new(data: Map<String, Value>, env_vars: &str) -> Server {
        let tp = int(&data, "tensor_parallel_size", 1);
        let ep = int(&data, "moe_expert_parallel_size", 1);
        let pp = int(&data, "pipeline_parallel_size", 1);
        let cp = int(&data, "context_parallel_size", 1);
        let gpus = int(&data, "gpus", tp * cp * pp);
        let gpus_per_node = match int(&data, "gpus_per_node", 0) {
            0 => gpus,
            n => n,
        };
        let spec = section(&data, "speculative_config");
        let model_name = string(&data, "model_name", "");
        let mut name = string(&data, "name", "");
        if name.is_empty() {
            let moe = section(&data, "moe_config");
            let ct = section(&data, "cache_transceiver_config");
            name = format!(
                "{model_name}_tp{tp}_ep{ep}_pp{pp}_cp{cp}_bs{}_attn{}_moe{}",
                int(&data, "max_batch_size", 512),
                string(&data, "attn_backend", "TRTLLM"),
                string(&moe, "backend", ""),
            );
            let ct_backend = string(&ct, "backend", "");
            if !ct_backend.is_empty() {
                name.push_str(&format!("_spec{ct_backend}"));
            }
        }
        let run_type = match string(&data, "disagg_run_type", "aggr").as_str() {
            "ctx" => RunType::Ctx,
            "gen" => RunType::Gen,
            _ => RunType::Aggr,
        };
        Server {
            name,
            model_name,
            env_vars: env_vars.to_string(),
            run_type,
            tp,
            ep,
            pp,
            cp,
            gpus,
            gpus_per_node,
            backend: string(&data, "backend", "pytorch"),
            extra_llm_api_config_path: string(&data, "extra_llm_api_config_path", ""),
            match_mode: string(&data, "match_mode", "config"),
            spec_decoding_type: string(&spec, "decoding_type", ""),
            max_draft_len: spec
                .get("max_draft_len")
                .or_else(|| spec.get("num_nextn_predict_layers"))
                .and_then(Value::as_i64)
                .unwrap_or(0),
            max_batch_size: int(&data, "max_batch_size", 512),
            force_num_accepted_tokens: env_dict(env_vars)
                .iter()
                .find(|(k, _)| k == "TLLM_SPEC_DECODE_FORCE_NUM_ACCEPTED_TOKENS")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0),
            data,
        }
    }

    /// Whether it decodes speculatively (upstream's `bool(spec_decoding_type)`).
    pub fn speculative(&self) -> bool {
        !self.spec_decoding_type.is_empty()
    }

    /// `extra-llm-api-config.<run>.<name>.yml`.
    pub fn config_file_name(&self) -> String {
        format!(
            "extra-llm-api-config.{}.{}.yml",
            self.run_type.as_str(),
            self.name
        )
    }

    /// The server's environment beyond the inherited one.
    pub fn env(&self) -> Vec<(String, String)> {
        env_dict(&self.env_vars)
    }

    /// Upstream's `generate_extra_llm_api_config` dict: the data minus the excluded keys, under
    /// an external config when one is named (the inline keys win), the speculative model
    /// joined to the models root and a relative load-balancer path to the source root.
    /// `external` is the parsed `extra_llm_api_config_path` file.
    pub fn llm_api_config(
        &self,
        external: Option<&Value>,
        models_root: &str,
        llm_root: &str,
    ) -> Value {
        let inline: Map<String, Value> = self
            .data
            .iter()
            .filter(|(k, _)| !EXCLUDED_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // `{**external, **inline}`: the external file's order, inline values winning, then
        // the inline keys it lacks.
        let mut config = match external {
            Some(Value::Object(ext)) if !self.extra_llm_api_config_path.is_empty() => {
                let mut merged = ext.clone();
                for (k, v) in inline {
                    merged.insert(k, v);
                }
                merged
            }
            _ => inline,
        };
        if let Some(Value::Object(spec)) = config.get_mut("speculative_config")
            && let Some(Value::String(model)) = spec.get_mut("speculative_model")
            && !model.is_empty()
        {
            *model = py_join(models_root, model);
        }
        if let Some(Value::Object(moe)) = config.get_mut("moe_config")
            && let Some(Value::String(lb)) = moe.get_mut("load_balancer")
            && !lb.is_empty()
            && !lb.starts_with('/')
        {
            *lb = py_join(llm_root, lb);
        }
        Value::Object(config)
    }

    /// The YAML upstream writes: `yaml.dump(config, default_flow_style=False,
    /// sort_keys=False)`.
    pub fn llm_api_yaml(
        &self,
        external: Option<&Value>,
        models_root: &str,
        llm_root: &str,
    ) -> String {
        to_pyyaml_unsorted(&self.llm_api_config(external, models_root, llm_root))
    }

    /// `ServerConfig.to_cmd` (without upstream's host, port and report-address flags, which
    /// the caller appends): `[numactl -m 0,1] trtllm-serve <model> --backend <b> --config <yaml>`.
    pub fn argv(
        &self,
        trtllm_serve: &[String],
        model_path: &str,
        config_path: &str,
        numa_bind: bool,
    ) -> Vec<String> {
        let mut argv: Vec<String> = Vec::new();
        if numa_bind {
            // One argv word, as upstream passes it.
            argv.extend(["numactl".to_string(), "-m 0,1".to_string()]);
        }
        argv.extend(trtllm_serve.iter().cloned());
        argv.extend([
            model_path.to_string(),
            "--backend".into(),
            self.backend.clone(),
            "--config".into(),
            config_path.to_string(),
        ]);
        argv
    }

    /// `ServerConfig.to_db_data()`: the `s_`/`l_`/`b_`/`d_` fields upstream uploads.
    pub fn db_fields(&self) -> Map<String, Value> {
        let d = &self.data;
        let adp = section(d, "attention_dp_config");
        let moe = section(d, "moe_config");
        let lb = moe.get("load_balancer").cloned().unwrap_or(json!({}));
        let (lb_slots, lb_updates) = match &lb {
            Value::Object(o) => (
                get(o, "num_slots", json!(0)),
                get(o, "layer_updates_per_iter", json!(0)),
            ),
            _ => (json!(0), json!(0)),
        };
        let cuda = match d.get("cuda_graph_config") {
            Some(Value::Object(o)) if !o.is_empty() => Some(o.clone()),
            _ => None,
        };
        let kv = section(d, "kv_cache_config");
        let ct = section(d, "cache_transceiver_config");
        let spec = section(d, "speculative_config");
        let eagle3 = match spec.get("eagle3_layers_to_capture") {
            Some(Value::Number(n)) => vec![Value::Number(n.clone())],
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        let join = |v: &[Value]| v.iter().map(py_str).collect::<Vec<_>>().join(",");
        let cuda_sizes = cuda
            .as_ref()
            .and_then(|c| c.get("batch_sizes"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        put("s_server_name", json!(self.name));
        put("s_model_name", json!(self.model_name.to_lowercase()));
        put("l_gpus", json!(self.gpus));
        put("l_tp", json!(self.tp));
        put("l_ep", json!(self.ep));
        put("l_pp", json!(self.pp));
        put("l_cp", json!(self.cp));
        put("l_gpus_per_node", json!(self.gpus_per_node));
        put("l_max_num_tokens", get(d, "max_num_tokens", json!(2048)));
        put("l_max_batch_size", get(d, "max_batch_size", json!(512)));
        put("l_max_seq_len", get(d, "max_seq_len", json!(0)));
        put(
            "b_disable_overlap_scheduler",
            get(d, "disable_overlap_scheduler", json!(false)),
        );
        put(
            "l_num_postprocess_workers",
            get(d, "num_postprocess_workers", json!(0)),
        );
        put("l_stream_interval", get(d, "stream_interval", json!(10)));
        put("s_attn_backend", get(d, "attn_backend", json!("TRTLLM")));
        put(
            "b_enable_chunked_prefill",
            get(d, "enable_chunked_prefill", json!(false)),
        );
        put(
            "b_enable_attention_dp",
            get(d, "enable_attention_dp", json!(false)),
        );
        put(
            "b_trust_remote_code",
            get(d, "trust_remote_code", json!(false)),
        );
        put(
            "b_enable_lm_head_tp_in_adp",
            get(d, "enable_lm_head_tp_in_adp", json!(false)),
        );
        put("s_serving_backend", json!(self.backend));
        put(
            "b_attention_dp_balance",
            get(&adp, "enable_balance", json!(false)),
        );
        put(
            "l_batching_wait_iters",
            get(&adp, "batching_wait_iters", json!(0)),
        );
        put("l_timeout_iters", get(&adp, "timeout_iters", json!(60)));
        put("s_moe_backend", get(&moe, "backend", json!("")));
        put(
            "l_moe_max_num_tokens",
            get(&moe, "max_num_tokens", json!(0)),
        );
        put(
            "b_use_low_precision_moe_combine",
            get(&moe, "use_low_precision_moe_combine", json!(false)),
        );
        put("l_load_balancer_num_slots", lb_slots);
        put("l_load_balancer_layer_updates_per_iter", lb_updates);
        put("b_enable_cuda_graph", json!(cuda.is_some()));
        put(
            "b_enable_padding",
            cuda.as_ref()
                .map_or(json!(true), |c| get(c, "enable_padding", json!(true))),
        );
        put(
            "l_cuda_graph_max_batch_size",
            cuda.as_ref()
                .map_or(json!(0), |c| get(c, "max_batch_size", json!(0))),
        );
        put("s_cuda_graph_batch_sizes", json!(join(&cuda_sizes)));
        put("s_kv_cache_dtype", get(&kv, "dtype", json!("fp8")));
        put(
            "b_enable_block_reuse",
            get(&kv, "enable_block_reuse", json!(false)),
        );
        put(
            "d_free_gpu_memory_fraction",
            get(&kv, "free_gpu_memory_fraction", json!(0.8)),
        );
        put(
            "s_cache_transceiver_backend",
            get(&ct, "backend", json!("")),
        );
        put(
            "l_cache_transceiver_max_tokens_in_buffer",
            get(&ct, "max_tokens_in_buffer", json!(0)),
        );
        put("s_spec_decoding_type", json!(self.spec_decoding_type));
        put("l_num_nextn_predict_layers", json!(self.max_draft_len));
        put("s_eagle3_layers_to_capture", json!(join(&eagle3)));
        put("l_max_draft_len", json!(self.max_draft_len));
        put(
            "l_force_num_accepted_tokens",
            json!(self.force_num_accepted_tokens),
        );
        put(
            "s_speculative_model_dir",
            get(&spec, "speculative_model", json!("")),
        );
        put(
            "b_eagle3_one_model",
            get(&spec, "eagle3_one_model", json!(false)),
        );
        put("s_server_log_link", json!(""));
        put("s_server_env_var", json!(self.env_vars));
        m
    }

    /// `get_server_match_keys(match_mode)`.
    pub fn match_keys(&self) -> Vec<&'static str> {
        if self.match_mode == "scenario" {
            SCENARIO_SERVER_MATCH_KEYS.to_vec()
        } else {
            CONFIG_SERVER_MATCH_KEYS.to_vec()
        }
    }
}

/// Upstream's `ClientConfig` of one client.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub name: String,
    pub concurrency: i64,
    pub iterations: i64,
    pub isl: i64,
    pub osl: i64,
    /// As written (`0.0`, `0.8`, or an int): upstream puts `str()` of it into the argv.
    pub random_range_ratio: Value,
    /// benchmark_serving's `--backend`: `openai` or `openai-chat`.
    pub backend: String,
    pub use_chat_template: bool,
    pub streaming: bool,
    pub trust_remote_code: bool,
    pub dataset_file: String,
    pub use_nv_sa_benchmark: bool,
    /// Keep benchmark_serving's initial test request (upstream: gen_only at concurrency 1).
    pub warmup: bool,
    pub env_vars: String,
    /// The server decodes speculatively (upstream stores it as `b_eos`).
    pub spec_decoding: bool,
    pub accuracy: Option<Value>,
    pub only_run_accuracy: bool,
}

impl Client {
    /// `ClientConfig(client_config_data, model_name, env_vars, spec_decoding)`. Upstream's
    /// `BOLT_ITER_MULT` environment knob (a profiling job's) is not read.
    pub fn new(data: &Map<String, Value>, env_vars: &str, spec_decoding: bool) -> Client {
        let concurrency = int(data, "concurrency", 1);
        let iterations = int(data, "iterations", 1);
        let isl = int(data, "isl", 1024);
        let osl = int(data, "osl", 1024);
        let accuracy = data
            .get("accuracy_config")
            .filter(|a| a.get("enable_accuracy_test").and_then(Value::as_bool) == Some(true))
            .cloned();
        let mut name = string(data, "name", "");
        if name.is_empty() {
            name = format!("con{concurrency}_iter{iterations}_isl{isl}_osl{osl}");
        }
        Client {
            name,
            concurrency,
            iterations,
            isl,
            osl,
            random_range_ratio: get(data, "random_range_ratio", json!(0.0)),
            backend: string(data, "backend", "openai"),
            use_chat_template: boolean(data, "use_chat_template", false),
            streaming: boolean(data, "streaming", true),
            trust_remote_code: boolean(data, "trust_remote_code", true),
            dataset_file: string(data, "dataset_file", ""),
            use_nv_sa_benchmark: boolean(data, "use_nv_sa_benchmark", false),
            warmup: boolean(data, "warmup", false),
            env_vars: env_vars.to_string(),
            spec_decoding,
            only_run_accuracy: boolean(data, "only_run_accuracy", false) && accuracy.is_some(),
            accuracy,
        }
    }

    /// `concurrency * iterations`.
    pub fn num_prompts(&self) -> i64 {
        self.concurrency.saturating_mul(self.iterations)
    }

    /// The dataset upstream's `get_dataset_dir` names: the file under the models root.
    /// Upstream falls back to the file as written, and then to a random dataset, when the
    /// path does not exist; perfgate plans without looking at the disk and passes the path, so
    /// a missing dataset fails the client instead of silently measuring another workload.
    pub fn dataset_path(&self, models_root: &str) -> Option<String> {
        (!self.dataset_file.is_empty() && self.dataset_file != "<dataset_file>")
            .then(|| py_join(models_root, &self.dataset_file))
    }

    /// The ratio as upstream's `str()` writes it.
    pub fn range_ratio_text(&self) -> String {
        py_str(&self.random_range_ratio)
    }

    /// Whether every request has exactly `isl` input tokens (a random dataset with range
    /// ratio 0).
    pub fn fixed_lengths(&self, models_root: &str) -> bool {
        self.dataset_path(models_root).is_none() && self.random_range_ratio.as_f64() == Some(0.0)
    }

    /// `ClientConfig._to_default_benchmark_cmd` without upstream's `--host/--port` (appended by
    /// the caller): `client` is the command that stands for
    /// `python -m tensorrt_llm.serve.scripts.benchmark_serving`.
    pub fn upstream_argv(
        &self,
        client: &[String],
        model_path: &str,
        models_root: &str,
    ) -> Vec<String> {
        let mut argv: Vec<String> = client.to_vec();
        argv.extend([
            "--model".into(),
            model_path.to_string(),
            "--tokenizer".into(),
            model_path.to_string(),
            "--num-prompts".into(),
            self.num_prompts().to_string(),
            "--max-concurrency".into(),
            self.concurrency.to_string(),
            "--percentile-metrics".into(),
            "ttft,tpot,itl,e2el".into(),
            "--ignore-eos".into(),
        ]);
        if !self.warmup {
            argv.push("--no-test-input".into());
        }
        match self.dataset_path(models_root) {
            Some(path) => argv.extend([
                "--dataset-name".into(),
                "trtllm_custom".into(),
                "--dataset-path".into(),
                path,
            ]),
            None => argv.extend([
                "--dataset-name".into(),
                "random".into(),
                "--random-ids".into(),
                "--tokenize-on-client".into(),
                "--random-input-len".into(),
                self.isl.to_string(),
                "--random-output-len".into(),
                self.osl.to_string(),
                "--random-range-ratio".into(),
                self.range_ratio_text(),
            ]),
        }
        if !self.backend.is_empty() {
            argv.extend(["--backend".into(), self.backend.clone()]);
        }
        if self.use_chat_template {
            argv.push("--use-chat-template".into());
        }
        if !self.streaming {
            argv.push("--non-streaming".into());
        }
        if self.trust_remote_code {
            argv.push("--trust-remote-code".into());
        }
        argv
    }

    /// The client's environment beyond the inherited one.
    pub fn env(&self) -> Vec<(String, String)> {
        env_dict(&self.env_vars)
    }

    /// `ClientConfig.to_db_data()`.
    pub fn db_fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        put("s_client_name", json!(self.name));
        put("l_concurrency", json!(self.concurrency));
        put("l_iterations", json!(self.iterations));
        put("l_isl", json!(self.isl));
        put("l_osl", json!(self.osl));
        put("d_random_range_ratio", self.random_range_ratio.clone());
        put("s_dataset_file", json!(self.dataset_file));
        put("s_backend", json!(self.backend));
        put("b_use_chat_template", json!(self.use_chat_template));
        put("b_streaming", json!(self.streaming));
        put("b_trust_remote_code", json!(self.trust_remote_code));
        put("b_use_nv_sa_benchmark", json!(self.use_nv_sa_benchmark));
        put("b_eos", json!(self.spec_decoding));
        put("b_warmup", json!(self.warmup));
        put("s_client_log_link", json!(""));
        put("s_client_env_vars", json!(self.env_vars));
        m
    }
}

/// The disaggregated settings of a test (`DisaggConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct DisaggSettings {
    /// `<benchmark_mode>-<config base name>`.
    pub name: String,
    pub mode: DisaggMode,
    pub num_ctx_servers: i64,
    pub num_gen_servers: i64,
    /// `slurm.timeout` (10800 by default): the disaggregated server's `-t` and `-r`.
    pub timeout: i64,
    pub numa_bind: bool,
    pub server_env_var: String,
    /// The file's own key, when it sets one; else perfgate makes one per run.
    pub auth_key: Option<String>,
}

/// What one perf-sanity id runs, derived as upstream derives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Expanded {
    /// Servers run one after another, each with its clients.
    Aggregated { servers: Vec<(Server, Vec<Client>)> },
    /// Context and generation workers behind one disaggregated server, and its clients.
    Disaggregated {
        ctx: Box<Server>,
        gen_: Box<Server>,
        settings: DisaggSettings,
        clients: Vec<Client>,
    },
}

/// The servers and clients of `id` from its checked file. An empty selection is an error
/// (upstream would run nothing and pass).
pub fn expand_aggregated(id: &SanityId, file: &Aggregated) -> Result<Expanded, String> {
    let select = match &id.kind {
        SanityKind::Aggregated { select, .. } => select.as_ref(),
        _ => None,
    };
    let mut servers = Vec::new();
    for s in &file.servers {
        if select.is_some_and(|names| !names.contains(&s.name)) {
            continue;
        }
        let mut data = s.data.clone();
        if !data.contains_key("model_name") {
            // Upstream sets it on the dict: a new key goes last.
            data.insert("model_name".into(), json!(file.model_name));
        }
        data.insert("concurrency".into(), json!(-1));
        data.insert("gpus_per_node".into(), json!(file.gpus_per_node));
        let env = string(&data, "server_env_var", "");
        let server = Server::new(data, &env);
        let clients = s
            .clients
            .iter()
            .map(|c| {
                let env = string(&c.data, "client_env_var", "");
                Client::new(&c.data, &env, server.speculative())
            })
            .collect();
        servers.push((server, clients));
    }
    if let Some(names) = select {
        let known: Vec<&str> = file.servers.iter().map(|s| s.name.as_str()).collect();
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !known.contains(&n.as_str()))
            .collect();
        if !missing.is_empty() {
            let near: Vec<String> = missing
                .iter()
                .filter_map(|m| {
                    crate::textutil::closest(m, known.iter().copied(), 1)
                        .first()
                        .map(|k| format!("`{m}` → `{k}`?"))
                })
                .collect();
            return Err(format!(
                "the selection names server(s) the config does not have: {}{} (servers: {})",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if near.is_empty() {
                    String::new()
                } else {
                    format!("; {}", near.join(", "))
                },
                known.join(", ")
            ));
        }
    }
    if servers.is_empty() {
        return Err("the config has no server to run".into());
    }
    Ok(Expanded::Aggregated { servers })
}

/// The base name of a config file (`splitext(config_file)[0]`).
fn base_name(id: &SanityId) -> String {
    let f = id.config_file();
    f.strip_suffix(".yaml").map_or(f.clone(), str::to_string)
}

/// `_parse_disagg_config_file` for `ctx_only`, `e2e` and `gen_only`.
pub fn expand_disaggregated(id: &SanityId, file: &Disaggregated) -> Result<Expanded, String> {
    let base = base_name(id);
    let env = &file.environment;
    let text = |k: &str| match env.get(k) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let worker_env = text("worker_env_var");
    let joined = |extra: String| {
        [worker_env.clone(), extra]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let ctx_env = joined(text("ctx_worker_env_var"));
    let gen_env = joined(text("gen_worker_env_var"));
    let client_env = text("client_env_var");
    let b = &file.benchmark;
    let concurrencies: Vec<i64> = match b.get("concurrency_list") {
        None => vec![1],
        Some(Value::String(s)) => s
            .split_whitespace()
            .map(|x| {
                x.parse()
                    .map_err(|_| format!("concurrency_list: `{x}` is not an integer"))
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| format!("concurrency_list: `{v}` is not an integer"))
            })
            .collect::<Result<_, _>>()?,
        Some(v) => vec![
            v.as_i64()
                .ok_or_else(|| format!("concurrency_list: `{v}` is not an integer"))?,
        ],
    };
    let Some(&first) = concurrencies.first() else {
        return Err("benchmark.concurrency_list is empty".into());
    };
    let (mode_label, disagg_mode) = match &id.kind {
        SanityKind::CtxOnly { .. } => ("ctx_only", None),
        SanityKind::Disaggregated { mode, .. } => (mode.as_str(), Some(*mode)),
        SanityKind::Aggregated { .. } => {
            return Err("an aggregated id does not read a disaggregated config".into());
        }
    };
    let name = format!("{mode_label}-{base}");
    let concurrencies = if disagg_mode == Some(DisaggMode::GenOnly) {
        vec![first]
    } else {
        concurrencies
    };
    let client = |concurrency: i64, spec: bool| {
        let gen_only = disagg_mode == Some(DisaggMode::GenOnly);
        let ctx_only = disagg_mode.is_none();
        let mut data = Map::new();
        data.insert("concurrency".into(), json!(concurrency));
        data.insert(
            "iterations".into(),
            if gen_only {
                json!(1)
            } else {
                get(b, "multi_round", json!(1))
            },
        );
        data.insert("isl".into(), get(b, "input_length", json!(1024)));
        data.insert(
            "osl".into(),
            if ctx_only {
                json!(1)
            } else {
                get(b, "output_length", json!(1024))
            },
        );
        data.insert(
            "random_range_ratio".into(),
            get(b, "benchmark_ratio", json!(0.0)),
        );
        data.insert("backend".into(), json!("openai"));
        data.insert("use_chat_template".into(), json!(false));
        data.insert("streaming".into(), get(b, "streaming", json!(true)));
        data.insert(
            "dataset_file".into(),
            if ctx_only {
                json!("")
            } else {
                get(b, "dataset_file", json!(""))
            },
        );
        data.insert(
            "use_nv_sa_benchmark".into(),
            get(b, "use_nv_sa_benchmark", json!(false)),
        );
        if let Some(a) = &file.accuracy {
            data.insert("accuracy_config".into(), a.clone());
        }
        data.insert(
            "only_run_accuracy".into(),
            get(b, "only_run_accuracy", json!(false)),
        );
        data.insert("warmup".into(), json!(gen_only && concurrency == 1));
        Client::new(&data, &client_env, spec)
    };
    let header = |run: &str, extra: Option<&Value>| {
        let mut data = Map::new();
        if let Some(key) = extra {
            data.insert("internal_request_auth_key".into(), key.clone());
        }
        data.insert(
            "concurrency".into(),
            if run == "aggr" {
                json!(-1)
            } else {
                json!(first)
            },
        );
        data.insert("name".into(), json!(name));
        data.insert("model_name".into(), json!(file.model_name));
        data.insert("gpus_per_node".into(), json!(file.gpus_per_node));
        data.insert("disagg_run_type".into(), json!(run));
        data
    };
    if disagg_mode.is_none() {
        let mut ctx = file.ctx.clone();
        ctx.shift_remove("cache_transceiver_config");
        ctx.insert("disable_overlap_scheduler".into(), json!(true));
        let mut data = header("aggr", None);
        for (k, v) in ctx {
            data.insert(k, v);
        }
        let server = Server::new(data, &ctx_env);
        let spec = server.speculative();
        let clients = concurrencies.iter().map(|c| client(*c, spec)).collect();
        return Ok(Expanded::Aggregated {
            servers: vec![(server, clients)],
        });
    }
    // The auth key is the file's, or a per-run one the runner fills in (see
    // `AUTH_KEY_PLACEHOLDER`).
    let key = json!(file.auth_key.as_deref().unwrap_or(AUTH_KEY_SENTINEL));
    let worker = |run: &str, cfg: &Map<String, Value>, env: &str| {
        let mut data = header(run, Some(&key));
        for (k, v) in cfg {
            data.insert(k.clone(), v.clone());
        }
        Server::new(data, env)
    };
    let ctx = worker("ctx", &file.ctx, &ctx_env);
    let gen_ = worker("gen", &file.gen_, &gen_env);
    let spec = ctx.speculative() || gen_.speculative();
    let mut num_ctx_servers = file
        .hardware
        .get("num_ctx_servers")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if disagg_mode == Some(DisaggMode::GenOnly)
        && b.get("mode")
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains("gen_only_no_context"))
    {
        num_ctx_servers = 0;
    }
    let settings = DisaggSettings {
        name,
        mode: disagg_mode.unwrap_or(DisaggMode::E2e),
        num_ctx_servers,
        num_gen_servers: file
            .hardware
            .get("num_gen_servers")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        timeout: file
            .slurm
            .get("timeout")
            .and_then(Value::as_i64)
            .unwrap_or(10800),
        numa_bind: file
            .slurm
            .get("numa_bind")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        server_env_var: text("server_env_var"),
        auth_key: file.auth_key.clone(),
    };
    let clients = concurrencies.iter().map(|c| client(*c, spec)).collect();
    Ok(Expanded::Disaggregated {
        ctx: Box::new(ctx),
        gen_: Box::new(gen_),
        settings,
        clients,
    })
}

/// A plain-YAML token standing for the per-run auth key while the YAML is emitted (so PyYAML's
/// quoting is decided for a value of the key's shape); [`AUTH_KEY_PLACEHOLDER`] replaces it in
/// the text.
pub const AUTH_KEY_SENTINEL: &str = "PERFGATE_AUTH_KEY_SENTINEL";

/// Where a planned file or argv holds the per-run auth key; the runner fills in 64 hex
/// digits, as upstream's `secrets.token_hex(32)`.
pub const AUTH_KEY_PLACEHOLDER: &str = "{perfgate.auth_key}";

/// Replaces the auth-key sentinel by its placeholder in emitted text.
pub fn with_auth_placeholder(text: &str) -> String {
    text.replace(AUTH_KEY_SENTINEL, AUTH_KEY_PLACEHOLDER)
}

/// The disaggregated server config upstream generates from the workers' reported addresses
/// (`_generate_disagg_server_config`, dumped with `yaml.dump`'s default sorted keys).
/// `ctx_urls` and `gen_urls` are `host:port` strings or runner placeholders that stand for
/// them.
pub fn disagg_server_config(
    hostname: &str,
    auth_key: &str,
    ctx_urls: &[String],
    gen_urls: &[String],
) -> String {
    // Placeholders are emitted as plain sentinels and put back: a `{...}` value would be
    // quoted, a `host:port` is not.
    let sentinel = |i: usize| format!("PERFGATE_URL_SENTINEL_{i}");
    let all: Vec<&String> = ctx_urls.iter().chain(gen_urls).collect();
    let slot = |v: &String, i: usize| {
        if v.starts_with('{') {
            sentinel(i)
        } else {
            v.clone()
        }
    };
    let ctx: Vec<String> = ctx_urls
        .iter()
        .enumerate()
        .map(|(i, u)| slot(u, i))
        .collect();
    let gen_: Vec<String> = gen_urls
        .iter()
        .enumerate()
        .map(|(i, u)| slot(u, ctx_urls.len() + i))
        .collect();
    let key = if auth_key.starts_with('{') {
        AUTH_KEY_SENTINEL
    } else {
        auth_key
    };
    let config = json!({
        "hostname": hostname,
        "port": 0,
        "backend": "pytorch",
        "internal_request_auth_key": key,
        "context_servers": {"num_instances": ctx_urls.len(), "urls": ctx},
        "generation_servers": {"num_instances": gen_urls.len(), "urls": gen_},
    });
    let mut text = crate::llm_api::pyyaml::to_pyyaml(&config);
    // Highest index first, so `_1` never rewrites part of `_10`.
    for (i, url) in all.iter().enumerate().rev() {
        if url.starts_with('{') {
            text = text.replace(&sentinel(i), url);
        }
    }
    if auth_key.starts_with('{') {
        text = text.replace(AUTH_KEY_SENTINEL, auth_key);
    }
    text
}

/// The record upstream uploads for one aggregated case, without its metrics and job fields:
/// `s_gpu_type`, `s_runtime`, the server's and client's fields and `s_test_case_name`; and the
/// keys its baseline is matched on.
pub fn aggregated_record(
    server: &Server,
    client: &Client,
    gpu_type: &str,
) -> (Map<String, Value>, Vec<String>) {
    let mut m = Map::new();
    m.insert("s_gpu_type".into(), json!(gpu_type));
    // Upstream's test: a server using fewer GPUs than the node has is "multi_node" (sic).
    let runtime = if server.gpus != server.gpus_per_node {
        "multi_node_aggr_server"
    } else {
        "aggr_server"
    };
    m.insert("s_runtime".into(), json!(runtime));
    m.extend(server.db_fields());
    m.extend(client.db_fields());
    m.insert(
        "s_test_case_name".into(),
        json!(format!("{}-{}", server.name, client.name)),
    );
    let mut keys: Vec<String> = vec!["s_gpu_type".into(), "s_runtime".into()];
    keys.extend(server.match_keys().iter().map(|s| s.to_string()));
    keys.extend(CLIENT_MATCH_KEYS.iter().map(|s| s.to_string()));
    (m, keys)
}

/// `add_prefix`: `l_tp` → `l_ctx_tp`.
fn prefixed(key: &str, prefix: &str) -> String {
    let (t, rest) = key.split_at(key.len().min(2));
    format!("{t}{prefix}_{rest}")
}

/// The record and match keys of one disaggregated case.
pub fn disaggregated_record(
    ctx: &Server,
    gen_: &Server,
    settings: &DisaggSettings,
    client: &Client,
    gpu_type: &str,
) -> (Map<String, Value>, Vec<String>) {
    let mut m = Map::new();
    m.insert("s_gpu_type".into(), json!(gpu_type));
    m.insert("s_runtime".into(), json!("multi_node_disagg_server"));
    m.insert("s_benchmark_mode".into(), json!(settings.mode.as_str()));
    m.insert("s_server_env_var".into(), json!(settings.server_env_var));
    m.insert("l_num_ctx_servers".into(), json!(settings.num_ctx_servers));
    m.insert("l_num_gen_servers".into(), json!(settings.num_gen_servers));
    if settings.num_ctx_servers > 0 {
        for (k, v) in ctx.db_fields() {
            m.insert(prefixed(&k, "ctx"), v);
        }
    }
    if settings.num_gen_servers > 0 {
        for (k, v) in gen_.db_fields() {
            m.insert(prefixed(&k, "gen"), v);
        }
    }
    m.extend(client.db_fields());
    m.insert(
        "s_test_case_name".into(),
        json!(format!("{}-{}", settings.name, client.name)),
    );
    let mut keys: Vec<String> = [
        "s_gpu_type",
        "s_runtime",
        "s_benchmark_mode",
        "l_num_ctx_servers",
        "l_num_gen_servers",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if settings.num_ctx_servers > 0 {
        keys.extend(ctx.match_keys().iter().map(|k| prefixed(k, "ctx")));
    }
    if settings.num_gen_servers > 0 {
        keys.extend(
            gen_.match_keys()
                .iter()
                .map(|k| prefixed(k, "gen"))
                .filter(|k| {
                    settings.mode != DisaggMode::GenOnly || k != "s_gen_cache_transceiver_backend"
                }),
        );
    }
    keys.extend(CLIENT_MATCH_KEYS.iter().map(|s| s.to_string()));
    (m, keys)
}

/// Upstream's GPU type from a GPU's product name (`SUPPORTED_GPU_MAPPING` on its last word),
/// `unsupported` otherwise.
pub fn gpu_type(product_name: &str) -> &'static str {
    match product_name.split_whitespace().last().unwrap_or("") {
        "GB200" => "gb200",
        "GB300" => "gb300",
        "B200" => "b200",
        "B300" => "b300",
        "H200" => "h200",
        _ => "unsupported",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_strings_and_joins() {
        assert_eq!(
            env_dict("A=1 junk B=x=y  A=2"),
            vec![("A".into(), "2".into()), ("B".into(), "x=y".into())]
        );
        assert_eq!(py_join("/models", "a/b"), "/models/a/b");
        assert_eq!(py_join("/models/", "a"), "/models/a");
        assert_eq!(py_join("/models", "/abs"), "/abs");
        assert_eq!(py_str(&json!(0.0)), "0.0");
        assert_eq!(py_str(&json!(1)), "1");
        assert_eq!(prefixed("l_tp", "ctx"), "l_ctx_tp");
        assert_eq!(gpu_type("NVIDIA B200"), "b200");
        assert_eq!(gpu_type("NVIDIA H100 80GB HBM3"), "unsupported");
    }

    #[test]
    fn default_names() {
        let s = Server::new(
            serde_json::from_value(json!({"model_name": "m", "tensor_parallel_size": 2,
                "cache_transceiver_config": {"backend": "NIXL"}}))
            .expect("map"),
            "",
        );
        assert_eq!(s.name, "m_tp2_ep1_pp1_cp1_bs512_attnTRTLLM_moe_specNIXL");
        let c = Client::new(&Map::new(), "", false);
        assert_eq!(c.name, "con1_iter1_isl1024_osl1024");
        assert_eq!(c.num_prompts(), 1);
    }
}
