//! Serving plans without running anything: perf-sanity ids give the argv, environment and YAML
//! upstream's test_perf_sanity.py produces for its own configs (tests/fixtures/perf_sanity:
//! the samples, and expected.jsonl derived from upstream's code by derive_expected.py), serve
//! names plan trtllm-serve or a recipe's engine, and the serving metrics, gates and validity
//! identities hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use perfgate::backend::serve::{ClientChoice, Options};
use perfgate::backend::{PlanOptions, Registry};
use perfgate::config::{self, PerfName};
use perfgate::models::ModelConfigs;
use perfgate::perf_sanity::SanityDirs;
use perfgate::plan::{Phase, Step, TestPlan};
use serde_json::Value;

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/perf_sanity")
        .join(p)
}

fn options(llm_root: &Path, client: ClientChoice) -> PlanOptions {
    PlanOptions {
        output_dir: PathBuf::from("OUT"),
        models_root: PathBuf::from("/models"),
        serve: Options {
            client,
            sanity_dirs: SanityDirs::resolve(llm_root, None, |_| None),
            llm_root: llm_root.to_path_buf(),
            hostname: "testhost".into(),
            gpu_type: "b200".into(),
            ..Options::default()
        },
        ..PlanOptions::default()
    }
}

fn plan_sanity(label: &str, opts: &PlanOptions, configs: &ModelConfigs) -> TestPlan {
    let name = PerfName::Sanity(config::parse_sanity(label).expect("label parses"));
    Registry::builtin().plan(label, &name, configs, opts)
}

fn env_map(step: &Step) -> BTreeMap<String, String> {
    step.env.iter().cloned().collect()
}

fn json_env(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Every perf-sanity sample: the servers (argv with upstream's `--host/--port 0/--report_addr`,
/// environment, the extra LLM API YAML byte for byte, the generated disaggregated server
/// config), the clients (upstream's benchmark_serving argv with `--host/--port`), and the
/// database fields and match keys, as upstream's code makes them.
#[test]
fn perf_sanity_plans_are_what_upstream_runs() {
    let llm_root = fixture("llm_root");
    let opts = options(&llm_root, ClientChoice::Upstream);
    let configs = ModelConfigs::embedded();
    let expected = std::fs::read_to_string(fixture("expected.jsonl")).expect("expected.jsonl");
    let mut checked = 0;
    for line in expected.lines() {
        let want: Value = serde_json::from_str(line).expect("JSON");
        let id = want["id"].as_str().expect("id");
        let plan = plan_sanity(id, &opts, &configs);
        // Upstream's test directory is OUT/<label>; perfgate's is the label made a safe file
        // name (`,` becomes `_`).
        let dir = plan.dir.to_string_lossy().into_owned();
        let local = |s: &str| {
            s.replace(&format!("OUT/{id}"), &dir)
                .replace("LLM_ROOT", &llm_root.to_string_lossy())
        };
        let fill = |s: &str, host: &str| {
            s.replace("{perfgate.auth_key}", "AUTHKEY")
                .replace("{ctx_0.addr}", "testhost:1001")
                .replace("{gen_0.addr}", "testhost:2001")
                .replace("{server.host}", host)
                .replace("{server.port}", "8000")
        };
        // The distinct services, in the order they start.
        let mut services: Vec<&Step> = Vec::new();
        for c in &plan.cases {
            for s in c.steps.iter().filter(|s| s.phase == Phase::Service) {
                if !services.iter().any(|x| x.argv == s.argv) {
                    services.push(s);
                }
            }
        }
        let want_servers = want["servers"].as_array().expect("servers");
        assert_eq!(services.len(), want_servers.len(), "{id}: servers");
        for (got, w) in services.iter().zip(want_servers) {
            let argv: Vec<String> = strings(&w["argv"]).iter().map(|a| local(a)).collect();
            assert_eq!(got.argv, argv, "{id}: server argv");
            assert_eq!(env_map(got), json_env(&w["env"]), "{id}: server env");
            let yaml = got
                .files
                .iter()
                .find(|f| {
                    f.path
                        .extension()
                        .is_some_and(|e| e == "yml" || e == "yaml")
                })
                .expect("a config file");
            assert_eq!(
                fill(&yaml.contents, ""),
                w["config_yaml"].as_str().expect("yaml"),
                "{id}: {}",
                yaml.path.display()
            );
        }
        let want_cases = want["cases"].as_array().expect("cases");
        assert_eq!(plan.cases.len(), want_cases.len(), "{id}: cases");
        for (c, w) in plan.cases.iter().zip(want_cases) {
            assert_eq!(c.spec.label, w["label"].as_str().expect("label"), "{id}");
            let argv = strings(&w["argv"]);
            let host = argv[argv.len() - 3].clone();
            let client = c.first_measure().expect("a client step");
            let got: Vec<String> = client.argv.iter().map(|a| fill(a, &host)).collect();
            assert_eq!(got, argv, "{id}: client argv");
            // Upstream's client runs with PYTHONUNBUFFERED=1 (set when it starts the process).
            let mut env = json_env(&w["env"]);
            env.insert("PYTHONUNBUFFERED".into(), "1".into());
            assert_eq!(env_map(client), env, "{id}: client env");
            let record = c.upstream_record.as_ref().expect("record");
            assert_eq!(
                record["fields"], w["record"],
                "{id}: record of {}",
                c.spec.label
            );
            assert_eq!(record["match_keys"], w["match_keys"], "{id}: match keys");
        }
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn perf_sanity_groups_gates_and_metrics() {
    let llm_root = fixture("llm_root");
    let configs = ModelConfigs::embedded();
    let plan = plan_sanity(
        "aggr_upload-gpt_oss_120b_fp4_blackwell",
        &options(&llm_root, ClientChoice::Perfgate),
        &configs,
    );
    assert!(plan.blocked.is_empty(), "{:?}", plan.blocked);
    // Each server's clients are one group: the server starts once for them.
    let groups: Vec<&str> = plan
        .cases
        .iter()
        .map(|c| c.group.as_deref().expect("group"))
        .collect();
    assert_eq!(
        groups,
        ["server.0", "server.1", "server.2", "server.3", "server.3"]
    );
    // The Eagle server decodes speculatively: its case requires and gates the acceptance
    // length; the others do not.
    let eagle = &plan.cases[0];
    assert!(eagle.metrics.contains(&"AVG_DECODED_TOKENS_PER_ITER"));
    assert!(eagle.gated.contains(&"AVG_DECODED_TOKENS_PER_ITER"));
    assert!(!plan.cases[1].gated.contains(&"AVG_DECODED_TOKENS_PER_ITER"));
    for m in [
        "TOTAL_OUTPUT_THROUGHPUT",
        "TOTAL_TOKEN_THROUGHPUT",
        "MEDIAN_FIRST_TOKEN_TIME",
        "MEDIAN_OUTPUT_TOKEN_TIME",
    ] {
        assert!(plan.cases[1].gated.contains(&m), "{m}");
    }
    // perfgate's client: the same workload, from the dataset upstream names.
    let client = plan.cases[1].first_measure().expect("client");
    let argv = client.argv.join(" ");
    assert!(
        argv.starts_with("perfgate serve-bench --url {server.url}"),
        "{argv}"
    );
    assert!(
        argv.contains(
            "--dataset /models/datasets/perf-ci/gpt_oss_120b-1k1k-20480-ratio-1_for_serve.json"
        ) && argv.contains("--concurrency 4 --num-prompts 40")
            && argv.contains("--ignore-eos --streaming --server-kind trtllm"),
        "{argv}"
    );
    let expect = client.expect.expect("expectations");
    assert_eq!(expect.num_requests, Some(40));
    assert_eq!(expect.max_concurrency, Some(4));
    // A dataset's lengths vary: no exact token totals are expected.
    assert_eq!((expect.input_len, expect.output_len), (None, None));
    // The test occupies its largest server's GPUs; with a GPU type, the cases of a model the
    // catalog has the architecture of get their physical limits.
    assert_eq!(plan.gpus, Some(2));
    let mut with_gpu = options(&llm_root, ClientChoice::Perfgate);
    with_gpu.gpu = Some("B200".into());
    let plan = plan_sanity(
        "aggr_upload-gpt_oss_120b_fp4_blackwell",
        &with_gpu,
        &configs,
    );
    assert!(plan.cases.iter().all(|c| c.roofline.is_some()));
}

/// `perfgate plan --format json` shows servers with their argv, env and YAML, and clients.
#[test]
fn plan_json_shows_servers_and_clients() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args([
            "plan",
            "--format",
            "json",
            "--client",
            "upstream",
            "--llm-root",
            fixture("llm_root").to_str().expect("utf-8"),
            "--models-root",
            "/models",
            "perf/test_perf_sanity.py::test_e2e[aggr-host_perf_llama8b_spec_decode-llama8b_spec_bs1_128_128]",
        ])
        .env_remove("AGG_CONFIG_FOLDER")
        .env_remove("PERF_SANITY_DIR")
        .env_remove("PERF_CLIENT")
        .output()
        .expect("perfgate plan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["cases"][0], "llama8b_spec_bs1_128_128-con1_128_128");
    let steps = v["steps"][0].as_array().expect("steps");
    let server = &steps[0];
    assert_eq!(server["kind"], "server");
    assert_eq!(server["service"], true);
    assert_eq!(
        server["env"]["TLLM_SPEC_DECODE_FORCE_NUM_ACCEPTED_TOKENS"],
        "3"
    );
    assert!(
        server["config_yaml"]
            .as_str()
            .is_some_and(|y| y
                .contains("  speculative_model: /models/llama-3.1-model/Llama-3.1-8B-Instruct\n")),
        "{server}"
    );
    let client = &steps[1];
    assert_eq!(client["kind"], "client");
    assert_eq!(
        client["argv"][2],
        "tensorrt_llm.serve.scripts.benchmark_serving"
    );
    assert_eq!(client["env"]["PYTHONUNBUFFERED"], "1");
}

#[test]
fn perf_sanity_mistakes_block_the_test() {
    let llm_root = fixture("llm_root");
    let opts = options(&llm_root, ClientChoice::Perfgate);
    let configs = ModelConfigs::embedded();
    let p = plan_sanity(
        "aggr-gpt_oss_120b_fp4_blackwell-gpt_oss_fp4_tp1_mtp0_1kk1",
        &opts,
        &configs,
    );
    assert!(
        p.blocked[0].contains("does not have: `gpt_oss_fp4_tp1_mtp0_1kk1`")
            && p.blocked[0].contains("`gpt_oss_fp4_tp1_mtp0_1kk1` → `gpt_oss_fp4_tp1_mtp0_1k1k`?"),
        "{:?}",
        p.blocked
    );
    let p = plan_sanity("aggr-gpt_oss_120b_fp4_blackwel", &opts, &configs);
    assert!(
        p.blocked[0].contains("closest: gpt_oss_120b_fp4_blackwell"),
        "{:?}",
        p.blocked
    );
    // A disaggregated layout that needs more than a node is planned and, on one node, blocked
    // saying how to give it the nodes it needs.
    let b200 = "disagg-e2e-b200_deepseek-r1-fp4_1k1k_con1_ctx1_dep4_gen1_tep8_eplb0_mtp3_ccb-NIXL";
    let p = plan_sanity(b200, &opts, &configs);
    assert!(
        p.blocked.iter().any(|b| b.contains("need 12 GPUs")
            && b.contains("on 2 nodes of 8")
            && b.contains("this job has one")
            && b.contains("--serve-nodes")),
        "{:?}",
        p.blocked
    );
    assert_eq!(p.cases.len(), 1);
    assert_eq!(p.gpus, Some(12));
}

/// Across the nodes of a job: the context worker (4 GPUs) on this node, the generation worker
/// (8 GPUs) started on the second node by srun with its GPUs, each binding and reporting its
/// own node's name; the disaggregated server and the client run here.
#[test]
fn a_disaggregated_test_larger_than_a_node_places_its_workers_across_the_jobs_nodes() {
    let llm_root = fixture("llm_root");
    let mut opts = options(&llm_root, ClientChoice::Perfgate);
    opts.serve.nodes = vec!["node-a".into(), "node-b".into()];
    let configs = ModelConfigs::embedded();
    let b200 = "disagg-e2e-b200_deepseek-r1-fp4_1k1k_con1_ctx1_dep4_gen1_tep8_eplb0_mtp3_ccb-NIXL";
    let p = plan_sanity(b200, &opts, &configs);
    assert!(p.blocked.is_empty(), "{:?}", p.blocked);
    let steps = &p.cases[0].steps;
    let labels: Vec<&str> = steps.iter().map(|s| s.label).collect();
    assert_eq!(labels, ["ctx_0", "gen_0", "server", "client"]);
    let (ctx0, gen0) = (&steps[0], &steps[1]);
    let host_of = |s: &Step| {
        s.argv
            .iter()
            .position(|a| a == "--host")
            .map(|i| s.argv[i + 1].clone())
    };
    // This node's worker runs as on one node (upstream's NUMA binding kept).
    assert_eq!(ctx0.argv[..3], ["numactl", "-m 0,1", "trtllm-serve"]);
    assert_eq!(host_of(ctx0).as_deref(), Some("node-a"));
    assert_eq!(env_map(ctx0)["CUDA_VISIBLE_DEVICES"], "0,1,2,3");
    assert_eq!(
        gen0.argv[..8],
        [
            "srun",
            "--nodes=1",
            "--ntasks=1",
            "--nodelist=node-b",
            "--overlap",
            "--kill-on-bad-exit=1",
            "env",
            "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7"
        ]
    );
    assert_eq!(gen0.argv[8..11], ["numactl", "-m 0,1", "trtllm-serve"]);
    assert_eq!(host_of(gen0).as_deref(), Some("node-b"));
    assert!(!env_map(gen0).contains_key("CUDA_VISIBLE_DEVICES"));
    // Three nodes' worth of workers on a job of two is refused with the count.
    opts.serve.nodes = vec!["node-a".into()];
    let p = plan_sanity(b200, &opts, &configs);
    assert!(
        p.blocked.iter().any(|b| b.contains("2 nodes")),
        "{:?}",
        p.blocked
    );
}

#[test]
fn perf_sanity_configs_are_checked_at_their_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "metadata:\n  model_name: m\nhardware:\n  gpus_per_node: 8\nserver_configs:\n  - name: a\n    tensor_parallel_sise: 2\n    max_batch_size: x\n    client_configs:\n      - name: c\n        concurency: 2\nextra: 1\n",
    )
    .expect("write");
    let f = perfgate::perf_sanity::SanityFile::load(&path, false, dir.path());
    let lines: Vec<String> = f
        .diagnostics
        .iter()
        .map(|d| format!("{}:{:?}", d.source.line, d.severity))
        .collect();
    assert_eq!(
        lines,
        ["12:Error", "7:Warning", "8:Error", "11:Error"],
        "{:?}",
        f.diagnostics
    );
    assert!(
        f.diagnostics[3]
            .message
            .contains("did you mean `concurrency`")
    );
    // The disaggregated schema: an unknown benchmark key is an error, launcher sections are not
    // checked.
    let path = dir.path().join("d.yaml");
    std::fs::write(
        &path,
        "metadata:\n  model_name: m\nslurm:\n  partition: p\n  whatever: 1\nbenchmark:\n  multi_rounds: 2\nhardware:\n  num_ctx_servers: 1\n  num_gen_servers: 1\nworker_config:\n  ctx: {tensor_parallel_size: 1}\n  gen: {tensor_parallel_size: 1}\n",
    )
    .expect("write");
    let f = perfgate::perf_sanity::SanityFile::load(&path, true, dir.path());
    assert_eq!(f.diagnostics.len(), 1, "{:?}", f.diagnostics);
    assert_eq!(f.diagnostics[0].source.line, 7);
    assert!(
        f.diagnostics[0]
            .message
            .contains("did you mean `multi_round`")
    );
}

fn plan_name(raw: &str, opts: &PlanOptions) -> TestPlan {
    let name = config::parse(raw).expect("name parses");
    Registry::builtin().plan(raw, &name, &ModelConfigs::embedded(), opts)
}

#[test]
fn serve_names_run_trtllm_serve_and_a_client_per_case() {
    let opts = options(Path::new("."), ClientChoice::Perfgate);
    let raw = "llama_v3.1_8b-serve-pytorch-streaming-bfloat16-input_output_len:1024,128+512,32-reqs:64-con:8";
    let p = plan_name(raw, &opts);
    assert!(
        p.blocked.is_empty() && p.skipped.is_empty(),
        "{:?} {:?}",
        p.blocked,
        p.skipped
    );
    assert_eq!(p.cases.len(), 2);
    let server = &p.cases[0].steps[0];
    assert_eq!(server.label, "server");
    let argv = server.argv.join(" ");
    assert!(
        argv.starts_with(
            "trtllm-serve /models/llama-3.1-model/Meta-Llama-3.1-8B --backend pytorch --config OUT/"
        ) && argv.ends_with(
            "--max_batch_size 512 --max_num_tokens 2048 --tp_size 1 --pp_size 1 \
                 --kv_cache_free_gpu_memory_fraction 0.9 --host localhost --port {port}"
        ),
        "{argv}"
    );
    // The server's readiness is upstream's: GET /health on the port the runner picks.
    let ready =
        serde_json::to_value(&server.service.as_ref().expect("service").ready).expect("JSON");
    assert_eq!(ready["url"], "http://localhost:{port}/health");
    // Per case: the dataset and perfgate's client reading it.
    let steps: Vec<&str> = p.cases[1].steps.iter().map(|s| s.label).collect();
    assert_eq!(steps, ["server", "dataset", "client"]);
    let client = p.cases[1].steps[2].argv.join(" ");
    assert!(
        client.contains("--input-data OUT/")
            && client.contains("--concurrency 8 --num-prompts 64")
            && client.contains("--streaming"),
        "{client}"
    );
    // Both cases share the server (one group).
    assert_eq!(p.cases[0].group, p.cases[1].group);
    // With a GPU type, each case gets its physical limits (TTFT and TPOT bounds included).
    let mut with_gpu = opts.clone();
    with_gpu.gpu = Some("H100_SXM".into());
    assert!(
        plan_name(raw, &with_gpu)
            .cases
            .iter()
            .all(|c| c.roofline.is_some())
    );

    // Upstream's client: benchmark_serving's random dataset, as the 2025 test_perf.py ran it.
    let up = plan_name(raw, &options(Path::new("."), ClientChoice::Upstream));
    let steps: Vec<&str> = up.cases[0].steps.iter().map(|s| s.label).collect();
    assert_eq!(steps, ["server", "client"]);
    assert_eq!(
        up.cases[0].steps[1].argv.join(" "),
        "python -m tensorrt_llm.serve.scripts.benchmark_serving --model \
         /models/llama-3.1-model/Meta-Llama-3.1-8B --dataset-name random --random-ids \
         --num-prompts 64 --random-input-len 1024 --random-output-len 128 --random-range-ratio \
         0.0 --ignore-eos --percentile-metrics ttft,tpot,itl,e2el --max-concurrency 8 --host \
         {server.host} --port {server.port}"
    );
    // A TensorRT-flow serve name (no backend) has nothing to serve it.
    let t = plan_name("llama_v3.1_8b-serve-bfloat16-input_output_len:8,8", &opts);
    assert!(
        t.blocked[0].contains("needs a backend label"),
        "{:?}",
        t.blocked
    );
}

#[test]
fn generic_engine_names_run_their_recipe() {
    let opts = options(Path::new("."), ClientChoice::Perfgate);
    let raw =
        "tiny_llama_cpp-serve-llama.cpp-streaming-float32-input_output_len:128,32-reqs:16-con:4";
    let name = config::parse(raw).expect("parses");
    assert_eq!(
        name.canonical(),
        "tiny_llama_cpp-serve-llama.cpp-streaming-float32-maxbs:512-maxnt:2048-input_output_len:128,32-reqs:16-con:4"
    );
    let p = plan_name(raw, &opts);
    assert!(p.blocked.is_empty(), "{:?}", p.blocked);
    assert_eq!(
        p.cases[0].steps[0].argv.join(" "),
        "llama-server -m /models/tiny.gguf --alias tiny_llama_cpp -np 4 -c 640 --host 127.0.0.1 \
         --port {port} --metrics"
    );
    let client = p.cases[0].steps[2].argv.join(" ");
    assert!(
        client.contains("--model tiny_llama_cpp --tokenizer /models/tiny-bpe")
            && client.contains("--server-kind llama.cpp"),
        "{client}"
    );
    // llama.cpp takes token-id prompts, so the server's prompt count must be exactly the ids
    // sent; transformers serve takes text, which re-tokenizes to a few tokens more or less
    // (measured on an H200), so no input total is expected of it.
    let expect = |p: &TestPlan| {
        p.cases[0]
            .steps
            .iter()
            .find_map(|s| s.expect.as_ref())
            .and_then(|e| e.input_len)
    };
    assert_eq!(expect(&p), Some(128));
    let text = plan_name(
        "random_llama_1b-serve-transformers-streaming-bfloat16-input_output_len:512,128-reqs:4-con:1",
        &opts,
    );
    assert!(text.blocked.is_empty(), "{:?}", text.blocked);
    assert_eq!(expect(&text), None);
    assert_eq!(
        text.cases[0]
            .steps
            .iter()
            .find_map(|s| s.expect.as_ref())
            .and_then(|e| e.output_len),
        Some(128)
    );
    // A recipe command given for the run replaces the recipe's.
    let mut o = opts.clone();
    o.serve
        .server_cmds
        .insert("llama.cpp".into(), vec!["/opt/bin/llama-server".into()]);
    assert_eq!(
        plan_name(raw, &o).cases[0].steps[0].argv[0],
        "/opt/bin/llama-server"
    );
    // An unknown engine names the closest recipe.
    let p = plan_name(
        "tiny_llama_cpp-serve-vllmm-float32-input_output_len:8,8",
        &opts,
    );
    assert!(
        p.blocked[0].contains("did you mean `vllm`"),
        "{:?}",
        p.blocked
    );
    // A misspelt data type is not taken for an engine.
    assert!(config::parse("tiny_llama_cpp-serve-floa32-input_output_len:8,8").is_err());
}

/// The metric table has the sixteen figures and `d_al`, with perfgate's directions: every
/// throughput (and the acceptance length) higher is better, every time lower; upstream's
/// MAXIMIZE_METRICS lists the TPOT figures too, which perfgate does not copy.
#[test]
fn serving_metrics_have_their_directions() {
    use perfgate::record::metric::{Direction, metric};
    for (field, name) in perfgate::perf_sanity::METRIC_FIELDS {
        let def = metric(name).unwrap_or_else(|| panic!("{name} is in the metric table"));
        let higher = field.contains("throughput") || field == "d_al";
        let want = if higher {
            Direction::HigherIsBetter
        } else {
            Direction::LowerIsBetter
        };
        assert_eq!(def.direction, want, "{field} → {name}");
        let upstream_says_higher = perfgate::perf_sanity::UPSTREAM_MAXIMIZE.contains(&field);
        if upstream_says_higher != higher {
            assert!(
                field.contains("tpot"),
                "{field}: only TPOT is upstream's mistake"
            );
        }
    }
}

#[test]
fn serving_validity_identities() {
    use perfgate::gate::validity::check;
    use perfgate::record::Expectations;
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/serve_logs/S01-trtllm-serve-benchmark_serving-doc.log"),
    )
    .expect("fixture");
    let base = perfgate::report::parse_str(&text).metrics;
    let expect = Expectations {
        num_requests: Some(1),
        input_len: Some(1024),
        output_len: Some(1024),
        max_concurrency: Some(1),
    };
    // A real block satisfies every identity.
    assert!(
        check(&base, Some(&expect), None).is_empty(),
        "{:?}",
        check(&base, Some(&expect), None)
    );
    let broken = |k: &str, v: f64| {
        let mut m = base.clone();
        m.insert(k.into(), v);
        check(&m, Some(&expect), None)
    };
    assert!(broken("TOTAL_OUTPUT_THROUGHPUT", 700.0)[0].contains("tokens generated 1024"));
    assert!(
        broken("TOTAL_OUTPUT_TOKENS", 900.0)
            .iter()
            .any(|e| e.contains("ignore_eos not in effect"))
    );
    assert!(broken("MEDIAN_FIRST_TOKEN_TIME", 2000.0)[0].contains("median TTFT"));
    // Little's law: 3 requests in flight on average with a limit of 1.
    assert!(
        broken("AVG_REQUEST_LATENCY", 4900.0)
            .iter()
            .any(|e| e.contains("Little's law"))
    );
    // A run of a hundredth of a second (a ctx_only case: 4 requests of one output token):
    // `Benchmark duration (s): 0.01` is anything from 0.005 to 0.015 s, so 4 tokens give
    // 267-800 tok/s and a printed 609.41 is consistent; 850 is not.
    let short = |rate: f64| {
        let mut m = BTreeMap::new();
        for (k, v) in [
            ("NUM_REQUESTS", 4.0),
            ("TOTAL_OUTPUT_TOKENS", 4.0),
            ("INFERENCE_TIME", 10.0),
            ("TOTAL_OUTPUT_THROUGHPUT", rate),
        ] {
            m.insert(k.to_string(), v);
        }
        check(&m, None, None)
    };
    assert!(short(609.41).is_empty(), "{:?}", short(609.41));
    assert!(short(270.0).is_empty(), "{:?}", short(270.0));
    assert!(short(850.0)[0].contains("tokens generated 4 / duration 0.01 s"));
    assert!(short(250.0)[0].contains("tokens generated 4"));
}

/// A concurrency sweep is one test: one server (sized for the largest concurrency: llama.cpp's
/// slots and their context) started once for the group, and a case per concurrency with its
/// own client concurrency, case directory and label.
#[test]
fn a_concurrency_sweep_shares_one_server() {
    let opts = options(Path::new("."), ClientChoice::Perfgate);
    let raw = "tiny_llama_cpp-serve-llama.cpp-streaming-float32-input_output_len:128,32-reqs:16-con:1+4+16";
    let p = plan_name(raw, &opts);
    assert!(p.blocked.is_empty(), "{:?}", p.blocked);
    assert_eq!(p.cases.len(), 3);
    for (c, con) in p.cases.iter().zip([1u32, 4, 16]) {
        assert_eq!(c.group.as_deref(), Some("server"), "one group, one server");
        assert_eq!(c.spec.concurrency, Some(con));
        assert!(
            c.spec.label.ends_with(&format!("-con:{con}")),
            "{}",
            c.spec.label
        );
        assert!(
            c.dir.ends_with(format!("isl_128-osl_32-con_{con}")),
            "{}",
            c.dir.display()
        );
        // Sized for con:16: 16 slots of 160 tokens.
        assert_eq!(
            c.steps[0].argv.join(" "),
            "llama-server -m /models/tiny.gguf --alias tiny_llama_cpp -np 16 -c 2560 --host \
             127.0.0.1 --port {port} --metrics"
        );
        let client = c.steps[2].argv.join(" ");
        assert!(
            client.contains(&format!("--concurrency {con} --num-prompts 16")),
            "{client}"
        );
        let expect = c.steps[2].expect.expect("expectations");
        assert_eq!(expect.max_concurrency, Some(con));
        // Upstream's record of the case: the name as an aggregated server, a client per case.
        let record = c.upstream_record.as_ref().expect("record");
        let f = &record["fields"];
        assert_eq!(f["s_serving_backend"], "llama.cpp");
        assert_eq!(f["s_model_name"], "tiny_llama_cpp");
        assert_eq!(f["s_kv_cache_dtype"], "auto");
        assert_eq!(f["s_runtime"], "aggr_server");
        assert_eq!(f["l_concurrency"], con);
        assert_eq!(f["l_iterations"], 16u32.div_ceil(con));
        assert_eq!(
            (&f["l_isl"], &f["l_osl"]),
            (&serde_json::json!(128), &serde_json::json!(32))
        );
        assert_eq!(f["b_streaming"], true);
        assert_eq!(
            f["s_test_case_name"],
            format!(
                "tiny_llama_cpp-serve-llama.cpp-streaming-float32-maxbs:512-maxnt:2048-input_output_len:128,32-reqs:16-con{con}_iter{}_isl128_osl32",
                16u32.div_ceil(con)
            )
        );
        for k in record["match_keys"].as_array().expect("keys") {
            assert!(f.get(k.as_str().expect("key")).is_some(), "{k}");
        }
    }
    // Upstream's client gets each case's --max-concurrency.
    let up = plan_name(raw, &options(Path::new("."), ClientChoice::Upstream));
    for (c, con) in up.cases.iter().zip([1, 4, 16]) {
        let argv = c.steps[1].argv.join(" ");
        assert!(
            argv.contains(&format!("--max-concurrency {con} ")),
            "{argv}"
        );
    }
}

/// Where the LLM-API rules key on `con:`, a sweep's concurrencies can need different server
/// configs: each distinct config gets its own server (its own group, file, log and address),
/// and the cases it serves run together.
#[test]
fn a_sweep_whose_rules_differ_by_concurrency_gets_a_server_per_config() {
    let opts = options(Path::new("."), ClientChoice::Perfgate);
    let mut configs = ModelConfigs::embedded();
    let text = include_str!("../../model_configs/llm_api_rules.yaml").replacen(
        "\npatterns:\n",
        "\npatterns:\n  - note: \"test: a config for con:4 only\"\n    patterns:\n      - \"-con:4\"\n    config:\n      max_batch_size: 4\n",
        1,
    );
    configs.rules = perfgate::llm_api::Rules::from_str(&text, "test rules").expect("rules");
    let raw =
        "llama_v3.1_8b-serve-pytorch-streaming-bfloat16-input_output_len:64,16+32,8-reqs:8-con:1+4";
    let name = config::parse(raw).expect("parses");
    let p = Registry::builtin().plan(raw, &name, &configs, &opts);
    assert!(p.blocked.is_empty(), "{:?}", p.blocked);
    let order: Vec<(Option<&str>, Option<u32>, u32)> = p
        .cases
        .iter()
        .map(|c| (c.group.as_deref(), c.spec.concurrency, c.spec.input_len))
        .collect();
    assert_eq!(
        order,
        vec![
            (Some("server"), Some(1), 64),
            (Some("server"), Some(1), 32),
            (Some("server.1"), Some(4), 64),
            (Some("server.1"), Some(4), 32),
        ]
    );
    let yaml = |i: usize| p.cases[i].steps[0].files[0].contents.clone();
    assert!(!yaml(0).contains("max_batch_size: 4"), "{}", yaml(0));
    assert!(yaml(2).contains("max_batch_size: 4"), "{}", yaml(2));
    let config_path = |i: usize| p.cases[i].steps[0].files[0].path.clone();
    assert_ne!(config_path(0), config_path(2));
    assert_eq!(p.cases[0].steps[0], p.cases[1].steps[0]);
    let log = |i: usize| {
        p.cases[i].steps[0]
            .service
            .as_ref()
            .map(|s| s.log.clone())
            .expect("service")
    };
    assert!(log(0).ends_with("trtllm-serve-perf.log"));
    assert!(log(2).ends_with("trtllm-serve-perf.1.log"));
    // Without such a rule the same sweep has one server.
    let one = plan_name(raw, &opts);
    assert!(
        one.cases
            .iter()
            .all(|c| c.group.as_deref() == Some("server"))
    );
}

fn perfgate(args: &[&str], env: &[(&str, &Path)], cwd: &Path) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("AGG_CONFIG_FOLDER")
        .env_remove("DISAGG_CONFIG_FOLDER")
        .env_remove("PERF_SANITY_DIR")
        .env_remove("PERF_CLIENT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("perfgate")
}

fn planned_cases(out: &std::process::Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["blocked"], Value::Null, "{v}");
    strings(&v["cases"])
}

/// Upstream's `AGG_CONFIG_FOLDER` / `DISAGG_CONFIG_FOLDER` pick the config folders (absolute,
/// or relative to the source root), and `perfgate lint` checks the configs a list's ids read:
/// unknown keys at their lines, selections naming servers the config does not have.
#[test]
fn config_folders_follow_upstreams_variables_and_lint_checks_them() {
    let root = fixture("");
    let local = fixture("local");
    let agg = "perf/test_perf_sanity.py::test_e2e[aggr-tiny_serving-tiny_tp1]";
    let plan = |llm_root: &Path, env: &[(&str, &Path)]| {
        perfgate(
            &[
                "plan",
                "--format",
                "json",
                "--models-root",
                "/models",
                "--llm-root",
                llm_root.to_str().expect("utf-8"),
                agg,
            ],
            env,
            &root,
        )
    };
    // Not in upstream's default folder: blocked, naming the ways to set the folders.
    let out = plan(&fixture("llm_root"), &[]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        v["blocked"][0].as_str().is_some_and(
            |b| b.contains("no such perf-sanity config") && b.contains("AGG_CONFIG_FOLDER")
        ),
        "{v}"
    );
    // Absolute, and relative to the source root.
    let want = ["tiny_tp1-con2_iter4", "tiny_tp1-con4_iter2"];
    let abs = local.join("aggregated");
    assert_eq!(
        planned_cases(&plan(
            Path::new("/nonexistent"),
            &[("AGG_CONFIG_FOLDER", &abs)]
        )),
        want
    );
    assert_eq!(
        planned_cases(&plan(
            &root,
            &[("AGG_CONFIG_FOLDER", Path::new("local/aggregated"))]
        )),
        want
    );
    let disagg = local.join("disaggregated");
    let out = perfgate(
        &[
            "plan",
            "--format",
            "json",
            "--models-root",
            "/models",
            "--llm-root",
            "/nonexistent",
            "perf/test_perf_sanity.py::test_e2e[disagg-e2e-tiny_disagg]",
        ],
        &[("DISAGG_CONFIG_FOLDER", &disagg)],
        &root,
    );
    assert_eq!(
        planned_cases(&out),
        [
            "e2e-tiny_disagg-con2_iter2_isl32_osl16",
            "e2e-tiny_disagg-con4_iter2_isl32_osl16"
        ]
    );

    // lint, through the variable and through --perf-sanity-dir.
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("ps/aggregated");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let yaml = "metadata:\n  model_name: m\nhardware:\n  gpus_per_node: 8\nserver_configs:\n  - name: a\n    tensor_parallel_sise: 2\n    client_configs:\n      - name: c\n        concurency: 2\n        isl: 8\n        osl: 8\n";
    std::fs::write(folder.join("bad.yaml"), yaml).expect("write");
    std::fs::write(
        dir.path().join("list.txt"),
        "perf/test_perf_sanity.py::test_e2e[aggr-bad-a]\nperf/test_perf_sanity.py::test_e2e[aggr-bad-b]\n",
    )
    .expect("write");
    let out = perfgate(
        &["lint", "list.txt"],
        &[("AGG_CONFIG_FOLDER", &folder)],
        dir.path(),
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let file = folder.join("bad.yaml");
    let file = file.to_string_lossy();
    assert!(
        text.contains(&format!("{file}:10: error: server_configs[0].client_configs[0].concurency: unknown key; did you mean `concurrency`?")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{file}:7: warning: server_configs[0].tensor_parallel_sise"
        )),
        "{text}"
    );
    assert!(
        text.contains("list.txt:1: error: `aggr-bad-a`: cannot run"),
        "{text}"
    );
    // With the key fixed, the one selection of a server the config lacks is what remains.
    std::fs::write(
        folder.join("bad.yaml"),
        yaml.replace("concurency", "concurrency"),
    )
    .expect("write");
    let out = perfgate(
        &["lint", "list.txt", "--perf-sanity-dir", "ps"],
        &[],
        dir.path(),
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("list.txt:2: error: `aggr-bad-b`: cannot run: ps/aggregated/bad.yaml: the selection names server(s) the config does not have: `b`; `b` → `a`?"),
        "{text}"
    );
    assert!(!text.contains("list.txt:1:"), "{text}");
    assert!(
        text.contains("2 test(s) checked: 1 error(s), 1 warning(s)"),
        "{text}"
    );
}
