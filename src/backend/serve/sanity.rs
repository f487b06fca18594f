//! Perf-sanity ids: upstream's config, and what `test_perf_sanity.py` (commit 0452cf0c) runs
//! for it, planned as services and client steps.
//!
//! Aggregated (and `ctx_only`): per server, `trtllm-serve <model> --backend <b> --config
//! <test dir>/extra-llm-api-config.aggr.<name>.yml --host localhost --port 0 --report_addr
//! <test dir>/trtllm-serve.<i>.addr` with the server's `server_env_var`; ready when the address
//! file appears and `GET /health` answers 200; its clients one after another, each a case.
//!
//! Disaggregated (`e2e`, `gen_only`): the context and generation workers (upstream's CTX_i and
//! GEN_i SLURM roles) as services on this node's GPUs, split with `CUDA_VISIBLE_DEVICES`, each
//! reporting its address into `hostnames-local-<i>/`; the disaggregated server config generated
//! from those addresses; `trtllm-serve disaggregated -c ...`; then the clients. Upstream's
//! multi-node SLURM layout is not supported yet: a config needing more GPUs than one node has
//! is planned and blocked with that reason.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::client::{self, CTX_LABELS, GEN_LABELS, Prompts, Workload};
use super::{ClientChoice, Options, SERVER};
use crate::backend::PlanRequest;
use crate::config::{CaseSpec, DataType, PerfConfig, Runtime, SanityId};
use crate::models::ModelConfigs;
use crate::perf_sanity::{
    AUTH_KEY_PLACEHOLDER, Client, Expanded, Server, aggregated_record, disagg_server_config,
    disaggregated_record, py_join, with_auth_placeholder,
};
use crate::plan::{CasePlan, PlannedFile, Readiness, Step, TestPlan};
use crate::record::Expectations;
use crate::textutil::safe_file_name;

/// Upstream's `AGG_SERVER_READY_TIMEOUT` and `DISAGG_SERVER_READY_TIMEOUT`.
const READY_TIMEOUT_S: u64 = 3600;

pub(super) fn plan(r: &PlanRequest, id: &SanityId) -> TestPlan {
    let PlanRequest {
        raw,
        configs,
        options: opts,
        dir,
        ..
    } = r;
    let so = &opts.serve;
    let mut tp = TestPlan::empty(raw, id.label.clone(), dir.clone());
    let path = so.sanity_dirs.path_of(id);
    let file = configs
        .sanity
        .get(&path, id.reads_disaggregated(), &so.llm_root);
    let errors = file.errors();
    if !errors.is_empty() {
        tp.blocked.extend(errors);
        return tp;
    }
    let expanded = match file.expand(id) {
        Ok(e) => e,
        Err(e) => {
            tp.blocked.push(format!("{}: {e}", path.display()));
            return tp;
        }
    };
    let ctx = Ctx {
        configs,
        so,
        models_root: opts.models_root.to_string_lossy().into_owned(),
        llm_root: so.llm_root.to_string_lossy().into_owned(),
        dir,
        externals: &file.externals,
        seed: 0,
        gpu: opts.gpu.as_deref(),
        tokenizer: opts
            .tokenizer_override
            .as_ref()
            .map(|t| t.to_string_lossy().into_owned()),
    };
    match expanded {
        Expanded::Aggregated { servers } => aggregated(&ctx, &mut tp, &servers),
        Expanded::Disaggregated {
            ctx: c,
            gen_,
            settings,
            clients,
        } => disaggregated(&ctx, &mut tp, &c, &gen_, &settings, &clients),
    }
    tp
}

struct Ctx<'a> {
    configs: &'a ModelConfigs,
    so: &'a Options,
    models_root: String,
    llm_root: String,
    dir: &'a Path,
    externals: &'a std::collections::BTreeMap<String, serde_json::Value>,
    seed: u64,
    gpu: Option<&'a str>,
    /// `--tokenizer`: perfgate's client counts tokens with it instead of the model's own
    /// (upstream's client always uses the model path).
    tokenizer: Option<String>,
}

impl Ctx<'_> {
    /// Upstream's `get_model_dir`: the catalog's path under the models root, else the name as
    /// it is (upstream also falls back when the directory does not exist; perfgate plans
    /// without looking at the disk).
    fn model_path(&self, model_name: &str) -> String {
        match self.configs.catalog.get(model_name) {
            Some(info) => match info.sanity_path.as_ref().or(info.path.as_ref()) {
                Some(p) => py_join(&self.models_root, p),
                None => model_name.to_string(),
            },
            None => model_name.to_string(),
        }
    }

    fn trtllm_serve(&self) -> Vec<String> {
        self.so
            .server_cmds
            .get("trtllm")
            .cloned()
            .unwrap_or_else(|| vec!["trtllm-serve".into()])
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn ready_timeout(&self, disaggregated: bool) -> Duration {
        let (agg, disagg) = self.so.upstream_ready_timeouts;
        self.so.ready_timeout.unwrap_or_else(|| {
            Duration::from_secs(if disaggregated { disagg } else { agg }.unwrap_or(READY_TIMEOUT_S))
        })
    }

    /// The server's extra LLM API file.
    fn llm_api_file(&self, server: &Server) -> PlannedFile {
        let external = self.externals.get(&server.extra_llm_api_config_path);
        let yaml = server.llm_api_yaml(external, &self.models_root, &self.llm_root);
        PlannedFile {
            path: self.dir.join(server.config_file_name()),
            contents: with_auth_placeholder(&yaml),
            provenance: Vec::new(),
        }
    }

    /// A client step, perfgate's or upstream's, against the `server` service.
    fn client_step(&self, client: &Client, model_path: &str, tp: &mut TestPlan) -> Step {
        let fixed = client.fixed_lengths(&self.models_root);
        let expect = Expectations {
            num_requests: u32::try_from(client.num_prompts()).ok(),
            input_len: fixed.then(|| u32::try_from(client.isl).ok()).flatten(),
            output_len: fixed.then(|| u32::try_from(client.osl).ok()).flatten(),
            max_concurrency: u32::try_from(client.concurrency).ok(),
        };
        let required = client::metrics(client.spec_decoding, client.osl);
        match self.so.client {
            ClientChoice::Upstream => {
                if client.use_nv_sa_benchmark {
                    tp.blocked.push(format!(
                        "client `{}`: use_nv_sa_benchmark runs an external bench_serving \
                         checkout upstream clones from GitHub; use --client perfgate for the \
                         same workload",
                        client.name
                    ));
                }
                let mut argv = client.upstream_argv(
                    &self.so.upstream_client_cmd,
                    model_path,
                    &self.models_root,
                );
                argv.extend([
                    "--host".into(),
                    "{server.host}".into(),
                    "--port".into(),
                    "{server.port}".into(),
                ]);
                client::client_step(argv, client::client_env(client.env()), required, expect)
            }
            ClientChoice::Perfgate => {
                let ratio = client.random_range_ratio.as_f64().unwrap_or(0.0);
                let prompts = match client.dataset_path(&self.models_root) {
                    Some(p) => Prompts::Dataset(p),
                    None => Prompts::Random {
                        isl: client.isl,
                        osl: client.osl,
                        isl_stdev: client::uniform_stdev(client.isl, ratio),
                        osl_stdev: client::uniform_stdev(client.osl, ratio),
                    },
                };
                let w = Workload {
                    model: model_path.to_string(),
                    tokenizer: self
                        .tokenizer
                        .clone()
                        .unwrap_or_else(|| model_path.to_string()),
                    endpoint: if client.backend == "openai-chat" {
                        "chat".into()
                    } else {
                        "completions".into()
                    },
                    prompts,
                    concurrency: client.concurrency,
                    num_prompts: client.num_prompts(),
                    warmup: u32::from(client.warmup),
                    streaming: client.streaming,
                    server_kind: "trtllm".into(),
                    seed: self.seed,
                };
                client::client_step(
                    client::perfgate_argv(self.so, "{server.url}", &w),
                    client.env(),
                    required,
                    expect,
                )
            }
        }
    }

    /// The physical limits of an aggregated case, where the catalog knows the model.
    fn roofline(
        &self,
        server: &Server,
        client: &Client,
        label: &str,
    ) -> Option<crate::physics::Roofline> {
        let gpu = self.gpu?;
        let model = server.model_name.to_ascii_lowercase();
        let mut cfg = PerfConfig::defaults(server.model_name.clone(), Runtime::Serve);
        cfg.data_type = if model.contains("fp4") {
            DataType::Float4
        } else if model.contains("fp8") {
            DataType::Float8
        } else {
            DataType::Bfloat16
        };
        cfg.max_batch_size = u32::try_from(server.max_batch_size).ok()?;
        cfg.num_reqs = u32::try_from(client.num_prompts()).ok()?;
        cfg.concurrencies = u32::try_from(client.concurrency).ok().into_iter().collect();
        cfg.tp_size = u32::try_from(server.tp).ok()?;
        cfg.pp_size = u32::try_from(server.pp).ok()?;
        cfg.num_gpus = u32::try_from(server.gpus).ok()?;
        if let Some(dtype) = server
            .data
            .get("kv_cache_config")
            .and_then(|k| k.get("dtype"))
            .and_then(|d| d.as_str())
        {
            cfg.kv_cache_dtype = dtype.to_string();
        }
        let spec = CaseSpec {
            batch_size: None,
            input_len: u32::try_from(client.isl).ok()?,
            output_len: u32::try_from(client.osl).ok(),
            concurrency: u32::try_from(client.concurrency).ok(),
            label: label.to_string(),
        };
        crate::physics::rooflines_of(self.configs, &cfg, std::slice::from_ref(&spec), gpu)
            .ok()?
            .into_iter()
            .next()
    }

    fn case_dir(&self, multi: bool, label: &str) -> std::path::PathBuf {
        if multi {
            self.dir.join(safe_file_name(label))
        } else {
            self.dir.to_path_buf()
        }
    }
}

fn aggregated(ctx: &Ctx, tp: &mut TestPlan, servers: &[(Server, Vec<Client>)]) {
    let multi = servers.iter().map(|(_, c)| c.len()).sum::<usize>() > 1;
    tp.gpus = servers
        .iter()
        .filter_map(|(s, _)| u32::try_from(s.gpus).ok())
        .max();
    for (idx, (server, clients)) in servers.iter().enumerate() {
        let model_path = ctx.model_path(&server.model_name);
        let file = ctx.llm_api_file(server);
        let addr = ctx.dir.join(format!("trtllm-serve.{idx}.addr"));
        let mut argv = server.argv(
            &ctx.trtllm_serve(),
            &model_path,
            &file.path.to_string_lossy(),
            false,
        );
        argv.extend([
            "--host".into(),
            "localhost".into(),
            "--port".into(),
            "0".into(),
            "--report_addr".into(),
            addr.to_string_lossy().into_owned(),
        ]);
        let step = client::service_step(
            SERVER,
            argv,
            server.env(),
            vec![file],
            Readiness::ReportFile {
                path: addr,
                health_path: "/health".into(),
            },
            ctx.ready_timeout(false),
            ctx.dir.join(format!("trtllm-serve.{idx}.log")),
        );
        for c in clients {
            let label = format!("{}-{}", server.name, c.name);
            let client_step = ctx.client_step(c, &model_path, tp);
            let (fields, keys) = aggregated_record(server, c, &ctx.so.gpu_type);
            tp.cases.push(CasePlan {
                spec: CaseSpec {
                    batch_size: None,
                    input_len: u32::try_from(c.isl).unwrap_or(0),
                    output_len: u32::try_from(c.osl).ok(),
                    concurrency: u32::try_from(c.concurrency).ok(),
                    label: label.clone(),
                },
                dir: ctx.case_dir(multi, &label),
                steps: vec![step.clone(), client_step],
                metrics: client::metrics(c.spec_decoding, c.osl),
                roofline: ctx.roofline(server, c, &label),
                group: Some(format!("server.{idx}")),
                gated: client::gated(c.spec_decoding, c.osl),
                upstream_record: Some(json!({"fields": fields, "match_keys": keys})),
            });
        }
    }
}

/// Each worker's (node, first GPU on it), in order: the first node with room for it (its GPUs
/// are consecutive on one node). `Err` when a worker needs more GPUs than a node has.
fn place_workers(sizes: &[i64], per_node: i64) -> Result<Vec<(usize, i64)>, String> {
    let mut used: Vec<i64> = Vec::new();
    let mut places = Vec::with_capacity(sizes.len());
    for &size in sizes {
        if size > per_node {
            return Err(format!(
                "a worker of {size} GPUs is larger than a node of {per_node} \
                 (hardware.gpus_per_node): one worker across nodes (MPI) is not supported by \
                 perfgate"
            ));
        }
        let on = match used.iter().position(|u| u + size <= per_node) {
            Some(i) => i,
            None => {
                used.push(0);
                used.len() - 1
            }
        };
        places.push((on, used[on]));
        used[on] += size;
    }
    Ok(places)
}

/// `0,1,2` for GPUs `from..from+n`.
fn gpu_list(from: i64, n: i64) -> String {
    (from..from + n)
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn disaggregated(
    ctx: &Ctx,
    tp: &mut TestPlan,
    c: &Server,
    g: &Server,
    settings: &crate::perf_sanity::DisaggSettings,
    clients: &[Client],
) {
    let (n_ctx, n_gen) = (settings.num_ctx_servers, settings.num_gen_servers);
    if n_gen < 1 {
        tp.blocked.push(
            "hardware.num_gen_servers: a disaggregated test needs a generation worker".into(),
        );
    }
    let workers = usize::try_from(n_ctx.max(n_gen)).unwrap_or(usize::MAX);
    if workers > CTX_LABELS.len() {
        tp.blocked.push(format!(
            "{workers} workers of one role: perfgate runs at most {} per role",
            CTX_LABELS.len()
        ));
        return;
    }
    let needed = n_ctx * c.gpus + n_gen * g.gpus;
    tp.gpus = u32::try_from(needed).ok();
    let node = c.gpus_per_node.max(g.gpus_per_node);
    let sizes: Vec<i64> = std::iter::repeat_n(c.gpus, usize::try_from(n_ctx).unwrap_or(0))
        .chain(std::iter::repeat_n(
            g.gpus,
            usize::try_from(n_gen).unwrap_or(0),
        ))
        .collect();
    // On one node the workers take its GPUs in order; a layout larger than a node is placed
    // across the job's nodes, or planned as on one node and blocked when the job lacks them.
    let one_node: Vec<(usize, i64)> = sizes
        .iter()
        .scan(0, |next, &n| {
            let first = *next;
            *next += n;
            Some((0, first))
        })
        .collect();
    let mut across = false;
    let places = if needed <= node {
        one_node
    } else {
        match place_workers(&sizes, node) {
            Err(why) => {
                tp.blocked.push(why);
                one_node
            }
            Ok(places) => {
                let nodes_used = places.iter().map(|p| p.0 + 1).max().unwrap_or(1);
                if ctx.so.nodes.len() >= nodes_used {
                    across = true;
                    places
                } else {
                    tp.blocked.push(format!(
                        "the workers need {needed} GPUs ({n_ctx} x {} for context, {n_gen} x {} \
                         for generation) on {nodes_used} nodes of {node} \
                         (hardware.gpus_per_node), and this job has {}: run it in a SLURM \
                         allocation of {nodes_used} nodes (`perfgate slurm submit` asks for \
                         one) or name the hosts with --serve-nodes",
                        c.gpus,
                        g.gpus,
                        match ctx.so.nodes.len() {
                            0 | 1 => "one".to_string(),
                            n => n.to_string(),
                        }
                    ));
                    one_node
                }
            }
        }
    };
    let model_path = ctx.model_path(&c.model_name);
    let hostnames = ctx.dir.join("hostnames-local-0");
    let key = settings
        .auth_key
        .clone()
        .unwrap_or_else(|| AUTH_KEY_PLACEHOLDER.to_string());
    let mut steps: Vec<Step> = Vec::new();
    let mut places = places.into_iter();
    let mut ctx_urls = Vec::new();
    let mut gen_urls = Vec::new();
    for (role, server, n, labels) in [
        ("CTX", c, n_ctx, &CTX_LABELS),
        ("GEN", g, n_gen, &GEN_LABELS),
    ] {
        let file = ctx.llm_api_file(server);
        for (i, label) in labels
            .iter()
            .copied()
            .enumerate()
            .take(usize::try_from(n).unwrap_or(0))
        {
            let name = format!("{role}_{i}");
            let addr = hostnames.join(format!("{name}.txt"));
            let mut argv = server.argv(
                &ctx.trtllm_serve(),
                &model_path,
                &file.path.to_string_lossy(),
                settings.numa_bind,
            );
            let (on, first_gpu) = places.next().unwrap_or((0, 0));
            // Across nodes every worker binds its own node's name, which it reports.
            let host = match ctx.so.nodes.get(on) {
                Some(node) if across => node.clone(),
                _ => ctx.so.hostname.clone(),
            };
            argv.extend([
                "--host".into(),
                host.clone(),
                "--port".into(),
                "0".into(),
                "--report_addr".into(),
                addr.to_string_lossy().into_owned(),
            ]);
            let gpus = gpu_list(first_gpu, server.gpus);
            let mut env = server.env();
            if on == 0 {
                env.push(("CUDA_VISIBLE_DEVICES".into(), gpus));
            } else {
                // Started on its node by srun (which passes this environment on); `env` sets
                // the GPUs after SLURM has set its own for the step.
                let mut remote = ctx.so.srun_cmd.clone();
                remote.extend([
                    "--nodes=1".into(),
                    "--ntasks=1".into(),
                    format!("--nodelist={host}"),
                    "--overlap".into(),
                    "--kill-on-bad-exit=1".into(),
                    "env".into(),
                    format!("CUDA_VISIBLE_DEVICES={gpus}"),
                ]);
                remote.extend(argv);
                argv = remote;
            }
            if role == "CTX" {
                ctx_urls.push(format!("{{{label}.addr}}"));
            } else {
                gen_urls.push(format!("{{{label}.addr}}"));
            }
            steps.push(client::service_step(
                label,
                argv,
                env,
                vec![file.clone()],
                Readiness::ReportFile {
                    path: addr,
                    health_path: "/health".into(),
                },
                ctx.ready_timeout(true),
                ctx.dir.join(format!("trtllm-serve.{name}.0.log")),
            ));
        }
    }
    let config = PlannedFile {
        path: ctx.dir.join("server_config.0.yaml"),
        contents: disagg_server_config(&ctx.so.hostname, &key, &ctx_urls, &gen_urls),
        provenance: Vec::new(),
    };
    let addr = hostnames.join("DISAGG_SERVER.0.addr");
    let mut argv = ctx.trtllm_serve();
    argv.extend([
        "disaggregated".into(),
        "-c".into(),
        ctx.path("server_config.0.yaml"),
        "-t".into(),
        settings.timeout.to_string(),
        "-r".into(),
        settings.timeout.to_string(),
        "--report_addr".into(),
        addr.to_string_lossy().into_owned(),
    ]);
    steps.push(client::service_step(
        SERVER,
        argv,
        crate::perf_sanity::env_dict(&settings.server_env_var),
        vec![config],
        Readiness::ReportFile {
            path: addr,
            health_path: "/health".into(),
        },
        ctx.ready_timeout(true),
        ctx.dir.join("trtllm-serve.DISAGG_SERVER.0.log"),
    ));
    let multi = clients.len() > 1;
    for client in clients {
        let label = format!("{}-{}", settings.name, client.name);
        let mut case_steps = steps.clone();
        case_steps.push(ctx.client_step(client, &model_path, tp));
        let (fields, keys) = disaggregated_record(c, g, settings, client, &ctx.so.gpu_type);
        tp.cases.push(CasePlan {
            spec: CaseSpec {
                batch_size: None,
                input_len: u32::try_from(client.isl).unwrap_or(0),
                output_len: u32::try_from(client.osl).ok(),
                concurrency: u32::try_from(client.concurrency).ok(),
                label: label.clone(),
            },
            dir: ctx.case_dir(multi, &label),
            steps: case_steps,
            metrics: client::metrics(client.spec_decoding, client.osl),
            roofline: None,
            group: Some("disaggregated".into()),
            gated: client::gated(client.spec_decoding, client.osl),
            upstream_record: Some(json!({"fields": fields, "match_keys": keys})),
        });
    }
}
