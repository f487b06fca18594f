//! `serve` names: upstream's runtime (`<model>-serve-pytorch[-streaming]-<dtype>-...`, the
//! `trtllm` recipe) and any engine of `model_configs/servers.yaml` named in the backend slot.
//!
//! One server for the test (upstream's `PerfServeScriptTestCmds` starts it once: `--host
//! localhost --port <free port>`, ready when `GET /health` answers 200), then per length pair
//! (and per concurrency of a `con:1+4+16` sweep) a case: perfgate's dataset and client, or
//! upstream's `benchmark_serving` with its random dataset. A sweep's server is sized for its
//! largest concurrency; where the LLM-API rules give its concurrencies different configs, each
//! distinct config gets a server of its own. Each case also carries the record upstream's
//! perf-sanity database would hold for it (the name read as an aggregated server config). Upstream's newest `test_perf.py`, which builds the serve runtime's server and
//! client argv, is not among the sources read (the index holds older copies), so the server
//! argv follows trtllm-serve's documented flags (the `trtllm` recipe) and the upstream client
//! the 2025 `test_perf.py` `ClientConfig.to_cmd` (commit 004da3c2); docs/serving-cases.md says
//! so.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::client::{self, Prompts, Workload};
use super::{ClientChoice, SERVER};
use crate::backend::PlanRequest;
use crate::backend::common::{Model, dataset_step, llm_api_config};
use crate::config::{Backend as Flow, CaseSpec, DataType, PerfConfig};
use crate::perf_sanity::{Client, Server, aggregated_record};
use crate::plan::{CasePlan, Readiness, Step, TestPlan};
use crate::record::Expectations;
use crate::serve::options::{Endpoint, ServerKind};
use crate::serve::profile::Profile;
use crate::textutil::{py_float_repr, safe_file_name};

pub(super) fn plan(r: &PlanRequest, cfg: &PerfConfig) -> TestPlan {
    let PlanRequest {
        raw,
        name,
        configs,
        options: opts,
        dir,
    } = r;
    let so = &opts.serve;
    let mut tp = TestPlan::empty(raw, name.canonical(), dir.clone());
    let recipe_name = match (&cfg.engine, cfg.backend) {
        (Some(e), _) => e.as_str(),
        (None, Flow::Pytorch | Flow::AutoDeploy) => "trtllm",
        (None, Flow::TensorRt) => {
            tp.blocked.push(
                "a serve name needs a backend label: pytorch or _autodeploy (trtllm-serve), or a \
                 server recipe of model_configs/servers.yaml (the TensorRT engine flow is not \
                 served by perfgate)"
                    .into(),
            );
            return tp;
        }
    };
    let Some(recipe) = configs.servers.get(recipe_name) else {
        let near = crate::textutil::closest(recipe_name, configs.servers.names(), 1);
        tp.blocked.push(format!(
            "no server recipe `{recipe_name}` in {}{} (recipes: {})",
            configs.servers.origin,
            near.first()
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default(),
            configs.servers.names().join(", ")
        ));
        return tp;
    };
    tp.blocked.extend(configs.catalog.check(cfg));
    let model = Model::resolve(cfg, configs, opts);
    let Some(checkpoint) = model.checkpoint.clone() else {
        if configs.catalog.get(&cfg.model).is_some() {
            tp.blocked.push(format!(
                "`{}` has no checkpoint path in the model catalog; add `path:` for it to models.yaml",
                cfg.model
            ));
        }
        return tp;
    };
    if cfg.num_loras > 0 {
        tp.skipped
            .push("LoRA serving cases are not planned by perfgate yet".into());
    }
    let cases = cfg.cases();
    let max_seq_len = cases
        .iter()
        .map(|c| c.input_len + c.output_len.unwrap_or(1))
        .max()
        .unwrap_or(0);
    // One server measures every concurrency of a sweep, so it is sized for the largest
    // (llama-server's slots and their context); without `con:` every prompt is in flight.
    let server_concurrency = i64::from(
        cfg.concurrencies
            .iter()
            .max()
            .copied()
            .unwrap_or(cfg.num_reqs),
    );
    let trtllm = recipe_name == "trtllm";
    let host = if trtllm { "localhost" } else { "127.0.0.1" };
    let checkpoint_text = checkpoint.to_string_lossy().into_owned();
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    values.insert("model_path", checkpoint_text.clone());
    values.insert("model_name", cfg.model.clone());
    values.insert("tokenizer", model.tokenizer.to_string_lossy().into_owned());
    values.insert("host", host.into());
    if let Some(b) = cfg.backend.label() {
        values.insert("backend", b.into());
    }
    values.insert("tp", cfg.tp_size.to_string());
    values.insert("pp", cfg.pp_size.to_string());
    if let Some(ep) = cfg.ep_size {
        values.insert("ep", ep.to_string());
    }
    values.insert("gpus", cfg.num_gpus.to_string());
    values.insert("max_batch_size", cfg.max_batch_size.to_string());
    values.insert("max_num_tokens", cfg.max_num_tokens.to_string());
    values.insert("max_seq_len", max_seq_len.to_string());
    values.insert(
        "kv_cache_free_gpu_memory_fraction",
        py_float_repr(cfg.kv_cache_free_gpu_mem_fraction),
    );
    values.insert("concurrency", server_concurrency.to_string());
    values.insert(
        "context_tokens",
        (server_concurrency * i64::from(max_seq_len)).to_string(),
    );
    match cfg.data_type {
        DataType::Float32 | DataType::Float16 | DataType::Bfloat16 => {
            values.insert("dtype", cfg.data_type.as_str().into());
        }
        // Quantized checkpoints carry their own precision.
        DataType::Float8 | DataType::Float4 => {}
    }
    // The servers: one, unless the LLM-API rules give a sweep's concurrencies different
    // configs (a rule keyed on `con:`), when each distinct config gets its own server and the
    // cases it serves run together.
    let mut servers: Vec<PlannedServer> = Vec::new();
    let mut server_of: Vec<usize> = Vec::with_capacity(cases.len());
    let command = so.server_cmd(recipe_name, &recipe.command);
    for spec in &cases {
        let label = cfg.canonical_at(spec.concurrency);
        let server_dir = if servers.is_empty() {
            dir.clone()
        } else {
            dir.join(format!("server.{}", servers.len()))
        };
        let mut files = Vec::new();
        let mut values = values.clone();
        let mut llm_api = None;
        if recipe.llm_api_config {
            let (yaml, notes) = llm_api_config(cfg, &label, &model, &server_dir, configs, opts);
            for n in notes {
                if !tp.blocked.contains(&n) {
                    tp.blocked.push(n);
                }
            }
            if let Some(same) = servers.iter().position(|s| {
                s.config_text.as_deref() == yaml.as_ref().map(|(f, _)| f.contents.as_str())
            }) {
                server_of.push(same);
                continue;
            }
            if let Some((f, value)) = yaml {
                values.insert("config", f.path.to_string_lossy().into_owned());
                files.push(f);
                llm_api = Some(value);
            }
        } else if !servers.is_empty() {
            server_of.push(0);
            continue;
        }
        let k = servers.len();
        let suffix = if k == 0 {
            String::new()
        } else {
            format!(".{k}")
        };
        let report_addr = dir.join(format!("server{suffix}.addr"));
        if recipe.report_addr {
            values.insert("report_addr", report_addr.to_string_lossy().into_owned());
        }
        let argv = match recipe.argv(&command, &values) {
            Ok(a) => a,
            Err(e) => {
                tp.blocked.push(e);
                return tp;
            }
        };
        let ready = if recipe.report_addr {
            Readiness::ReportFile {
                path: report_addr,
                health_path: recipe.ready_path.clone(),
            }
        } else {
            Readiness::Http {
                url: format!("http://{host}:{{port}}{}", recipe.ready_path),
            }
        };
        let timeout = so
            .ready_timeout
            .unwrap_or(Duration::from_secs(recipe.ready_timeout_s));
        let log = if trtllm {
            format!("trtllm-serve-perf{suffix}.log")
        } else {
            format!("server{suffix}.log")
        };
        let config_text = files.first().map(|f| f.contents.clone());
        let step = client::service_step(
            SERVER,
            argv,
            recipe.env(&values),
            files,
            ready,
            timeout,
            dir.join(log),
        );
        servers.push(PlannedServer {
            config_text,
            step,
            llm_api,
        });
        server_of.push(k);
    }
    // The requests name the model as the server serves it: the recipe's served name, else the
    // checkpoint path (trtllm-serve and benchmark_serving's default).
    let served = if recipe.uses("model_name") {
        cfg.model.clone()
    } else {
        checkpoint_text.clone()
    };
    let rooflines = match &opts.gpu {
        Some(gpu) => crate::physics::rooflines_of(configs, cfg, &cases, gpu).unwrap_or_else(|e| {
            tp.physics_note = Some(e.to_string());
            Vec::new()
        }),
        None => Vec::new(),
    };
    let multi = cases.len() > 1;
    let sweep = cfg.concurrencies.len() > 1;
    let sends_ids = recipe.endpoint == "completions"
        && ServerKind::parse(&recipe.client_kind)
            .is_some_and(|k| Profile::of(k).sends_ids(Endpoint::Completions));
    // Cases of one server run together (the executor shares a group's server only between
    // consecutive cases); a stable sort keeps the name's order within each server.
    let mut order: Vec<(usize, CaseSpec)> = server_of.iter().copied().zip(cases).collect();
    order.sort_by_key(|(k, _)| *k);
    for (k, spec) in order {
        let case_dir = if multi {
            dir.join(safe_file_name(&crate::backend::common::case_dir_name(
                &spec, sweep,
            )))
        } else {
            dir.clone()
        };
        let osl = spec.output_len.unwrap_or(1);
        let metrics = client::metrics(false, i64::from(osl));
        let concurrency = spec.concurrency.unwrap_or(cfg.num_reqs);
        let expect = Expectations {
            num_requests: Some(cfg.num_reqs),
            // The server counts exactly the prompt tokens sent only when they are token ids;
            // decoded text re-tokenizes to a few tokens more or less (measured on
            // `transformers serve`: +2.7 a request at ISL 512).
            input_len: sends_ids.then_some(spec.input_len),
            output_len: Some(osl),
            max_concurrency: Some(concurrency),
        };
        let mut steps = vec![servers[k].step.clone()];
        let (argv, env) = match so.client {
            ClientChoice::Perfgate => {
                let dataset = dataset_step(super::ID, cfg, &spec, &model, &case_dir, opts);
                let data = dataset.outputs[0].clone();
                steps.push(dataset);
                let w = Workload {
                    model: served.clone(),
                    tokenizer: model.tokenizer.to_string_lossy().into_owned(),
                    endpoint: recipe.endpoint.clone(),
                    prompts: Prompts::InputData(data),
                    concurrency: i64::from(concurrency),
                    num_prompts: i64::from(cfg.num_reqs),
                    warmup: recipe.warmup,
                    streaming: cfg.streaming,
                    server_kind: recipe.client_kind.clone(),
                    seed: opts.dataset_seed,
                };
                (client::perfgate_argv(so, "{server.url}", &w), Vec::new())
            }
            ClientChoice::Upstream => {
                // test_perf.py's ClientConfig.to_cmd (2025), with --max-concurrency only for a
                // `con:` name and --non-streaming for a name without `streaming`.
                let mut argv = so.upstream_client_cmd.clone();
                argv.extend([
                    "--model".into(),
                    checkpoint_text.clone(),
                    "--dataset-name".into(),
                    "random".into(),
                    "--random-ids".into(),
                    "--num-prompts".into(),
                    cfg.num_reqs.to_string(),
                    "--random-input-len".into(),
                    spec.input_len.to_string(),
                    "--random-output-len".into(),
                    osl.to_string(),
                    "--random-range-ratio".into(),
                    "0.0".into(),
                    "--ignore-eos".into(),
                    "--percentile-metrics".into(),
                    "ttft,tpot,itl,e2el".into(),
                ]);
                if let Some(c) = spec.concurrency {
                    argv.extend(["--max-concurrency".into(), c.to_string()]);
                }
                if !cfg.streaming {
                    argv.push("--non-streaming".into());
                }
                argv.extend([
                    "--host".into(),
                    "{server.host}".into(),
                    "--port".into(),
                    "{server.port}".into(),
                ]);
                (argv, client::client_env(Vec::new()))
            }
        };
        steps.push(client::client_step(argv, env, metrics.clone(), expect));
        let roofline = rooflines
            .iter()
            .find(|r| r.case.label == spec.label)
            .cloned();
        let spec_record = spec.clone();
        tp.cases.push(CasePlan {
            spec,
            dir: case_dir,
            steps,
            metrics: metrics.clone(),
            roofline,
            group: Some(if k == 0 {
                SERVER.to_string()
            } else {
                format!("{SERVER}.{k}")
            }),
            gated: client::gated(false, i64::from(osl)),
            upstream_record: Some(upstream_record(
                cfg,
                recipe_name,
                servers[k].llm_api.as_ref(),
                &spec_record,
                &recipe.endpoint,
                &so.gpu_type,
            )),
        });
    }
    tp
}

/// One server of a serve name: its extra LLM API config (the file's text, to tell configs
/// apart, and upstream's dict), and its service step.
struct PlannedServer {
    config_text: Option<String>,
    step: Step,
    llm_api: Option<Value>,
}

/// What upstream's perf-sanity database would record for one case of a serve name: the name
/// read as an aggregated server config (`ServerConfig`: model, parallelism, batch limits,
/// serving backend, and the extra LLM API config's keys) with one client config per case
/// (`ClientConfig`: concurrency, iterations = requests / concurrency rounded up, lengths,
/// streaming, the OpenAI endpoint), and the keys upstream matches baselines on. The server's
/// name is the name without its concurrency (the server every case of a sweep shares), so
/// `s_test_case_name` is `<name without con>-con<C>_iter<I>_isl<ISL>_osl<OSL>`.
fn upstream_record(
    cfg: &PerfConfig,
    recipe: &str,
    llm_api: Option<&Value>,
    spec: &CaseSpec,
    endpoint: &str,
    gpu_type: &str,
) -> Value {
    let mut data = Map::new();
    if let Some(Value::Object(config)) = llm_api {
        data.extend(config.clone());
    }
    let mut shared = cfg.clone();
    shared.concurrencies.clear();
    data.insert("name".into(), json!(shared.canonical()));
    data.insert("model_name".into(), json!(cfg.model));
    data.insert(
        "backend".into(),
        json!(match (recipe, cfg.backend.label()) {
            ("trtllm", Some(b)) => b,
            _ => recipe,
        }),
    );
    data.insert("tensor_parallel_size".into(), json!(cfg.tp_size));
    data.insert(
        "moe_expert_parallel_size".into(),
        json!(cfg.ep_size.unwrap_or(1)),
    );
    data.insert("pipeline_parallel_size".into(), json!(cfg.pp_size));
    data.insert("gpus".into(), json!(cfg.num_gpus));
    data.insert("max_batch_size".into(), json!(cfg.max_batch_size));
    data.insert("max_num_tokens".into(), json!(cfg.max_num_tokens));
    // The name's KV cache dtype where the config sets none (upstream's database would default
    // to fp8, which a serve name does not say).
    let kv = data.entry("kv_cache_config").or_insert_with(|| json!({}));
    if let Value::Object(kv) = kv
        && !kv.contains_key("dtype")
    {
        kv.insert("dtype".into(), json!(cfg.kv_cache_dtype));
    }
    let server = Server::new(data, "");
    let concurrency = spec.concurrency.unwrap_or(cfg.num_reqs).max(1);
    let mut client_data = Map::new();
    client_data.insert("concurrency".into(), json!(concurrency));
    client_data.insert(
        "iterations".into(),
        json!(cfg.num_reqs.div_ceil(concurrency)),
    );
    client_data.insert("isl".into(), json!(spec.input_len));
    client_data.insert("osl".into(), json!(spec.output_len.unwrap_or(1)));
    client_data.insert("random_range_ratio".into(), json!(0.0));
    client_data.insert(
        "backend".into(),
        json!(if endpoint == "chat" {
            "openai-chat"
        } else {
            "openai"
        }),
    );
    client_data.insert("streaming".into(), json!(cfg.streaming));
    let client = Client::new(&client_data, "", server.speculative());
    let (fields, keys) = aggregated_record(&server, &client, gpu_type);
    json!({"fields": fields, "match_keys": keys})
}
