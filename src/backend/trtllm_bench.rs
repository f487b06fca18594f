//! `trtllm-bench`: the offline benchmark of upstream's `test_perf.py` (`bench` names). The
//! TensorRT flow builds an engine once per test (`trtllm-bench build`, setup); every case
//! generates its dataset and runs `trtllm-bench throughput` (and, with `latency`, `trtllm-bench
//! latency`) with the extra LLM API YAML of the rules. The output is read by the report parsers:
//! the text report of every era, reconciled with `--report_json`.
//!
//! The only module that knows trtllm-bench's flags.

use std::path::{Path, PathBuf};

use super::common::{Model, case_dir_name, dataset_step, flag_path, llm_api_file, model_dir};
use super::{Backend, PlanOptions, PlanRequest, Reading, StepOutput};
use crate::config::{Backend as Flow, PerfConfig, PerfName};
use crate::plan::{CasePlan, Phase, Step, TestPlan};
use crate::record::Expectations;
use crate::report::{self, ReportKind};
use crate::textutil::py_float_repr;

/// The id its steps carry.
pub const ID: &str = "trtllm-bench";

/// The labels of its steps: the engine build, and the two benchmark subcommands.
pub const BUILD: &str = "build";
pub const THROUGHPUT: &str = "throughput";
pub const LATENCY: &str = "latency";

/// The step of a row of upstream's result files (`perfgate history import`): its
/// trtllm-bench subcommand, as the row's command names it; BUILD_TIME is the build's.
pub fn step_of_upstream_row(metric: &str, command: &str) -> Option<&'static str> {
    if metric == "BUILD_TIME" {
        return Some(BUILD);
    }
    command.split_whitespace().find_map(|word| {
        [BUILD, THROUGHPUT, LATENCY]
            .into_iter()
            .find(|s| *s == word)
    })
}

/// Options of the trtllm-bench backend.
#[derive(Debug, Clone)]
pub struct Options {
    /// The benchmark executable (`trtllm-bench`, or a test double).
    pub bench_cmd: String,
    /// Also run `trtllm-bench latency` per case, after throughput (upstream runs throughput
    /// only).
    pub latency: bool,
    /// Flags appended to every benchmark command.
    pub extra_bench_args: Vec<String>,
    /// TensorRT-LLM's library directory, put first on LD_LIBRARY_PATH (as upstream does).
    pub trtllm_lib_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bench_cmd: "trtllm-bench".into(),
            latency: false,
            extra_bench_args: Vec::new(),
            trtllm_lib_dir: None,
        }
    }
}

/// The metrics upstream records for a throughput case.
const THROUGHPUT_METRICS: &[&str] = &[
    "INFERENCE_TIME",
    "TOKEN_THROUGHPUT",
    "SEQ_THROUGHPUT",
    "KV_CACHE_SIZE",
];
const STREAMING_METRICS: &[&str] = &["FIRST_TOKEN_TIME", "OUTPUT_TOKEN_TIME"];

/// The trtllm-bench backend.
pub struct TrtllmBench;

impl Backend for TrtllmBench {
    fn id(&self) -> &'static str {
        ID
    }

    /// Every name of the standard grammar: `bench` names run; the others (legacy C++ flows,
    /// `serve` until a serving backend takes it) are planned and skipped with the reason.
    fn accepts(&self, name: &PerfName) -> bool {
        matches!(name, PerfName::Standard(_))
    }

    fn plan(&self, request: &PlanRequest) -> TestPlan {
        plan(request)
    }

    fn read(&self, step: &Step, output: &StepOutput) -> anyhow::Result<Reading> {
        read(step, output)
    }
}

/// Problems that stop a name from running land in `blocked` (the test fails) or `skipped` (as
/// upstream skips), so a dry run still shows everything it can.
fn plan(request: &PlanRequest) -> TestPlan {
    let PlanRequest {
        raw,
        name,
        configs,
        options: opts,
        dir,
    } = request;
    let mut tp = TestPlan::empty(raw, name.canonical(), dir.clone());
    if let Some(reason) = name.unsupported_reason() {
        tp.skipped.push(reason);
    }
    let PerfName::Standard(cfg) = name else {
        return tp;
    };
    let catalog = &configs.catalog;
    tp.blocked.extend(catalog.check(cfg));
    let known = catalog.get(&cfg.model).is_some();
    let model = Model::resolve(cfg, configs, opts);
    if cfg.num_loras > 0 {
        if cfg.backend != Flow::Pytorch || model.lora_paths.is_empty() {
            // Upstream skips these: LoRA runs only on the pytorch backend with configured adapters.
            tp.skipped.push(format!(
                "LoRA needs the pytorch backend and adapters configured for `{}` in the model catalog",
                cfg.model
            ));
        } else if model.lora_paths.len() != cfg.num_loras as usize {
            tp.blocked.push(format!(
                "loras:{} but the model catalog configures {} LoRA adapter(s) for `{}`",
                cfg.num_loras,
                model.lora_paths.len(),
                cfg.model
            ));
        }
    }
    if known && model.checkpoint.is_none() {
        tp.blocked.push(format!(
            "`{}` has no checkpoint path in the model catalog; add `path:` for it to models.yaml",
            cfg.model
        ));
    }
    if cfg.backend == Flow::TensorRt && model.checkpoint.is_some() {
        tp.setup.push(build_step(cfg, &model, dir, opts));
        tp.setup_metrics.push("BUILD_TIME");
    }
    if cfg.build_only {
        return tp;
    }
    let cases = cfg.cases();
    let multi = cases.len() > 1;
    let mut metrics = THROUGHPUT_METRICS.to_vec();
    if cfg.streaming {
        metrics.extend(STREAMING_METRICS);
    }
    for spec in cases {
        let case_dir = if multi {
            dir.join(case_dir_name(&spec, false))
        } else {
            dir.clone()
        };
        let dataset = dataset_step(ID, cfg, &spec, &model, &case_dir, opts);
        let dataset_path = dataset.outputs[0].clone();
        let expect = dataset.dataset.as_ref().map(|d| Expectations {
            num_requests: Some(d.num_requests),
            input_len: (d.input_stdev == 0).then_some(d.input_mean),
            output_len: (d.output_stdev == 0).then_some(d.output_mean),
            max_concurrency: None,
        });
        let (yaml, notes) = llm_api_file(cfg, &tp.canonical, &model, &case_dir, configs, opts);
        tp.blocked.extend(notes);
        let yaml_path = yaml.as_ref().map(|f| f.path.as_path());
        let bench = |sub: Sub| {
            bench_step(
                sub,
                cfg,
                &model,
                dir,
                &case_dir,
                &dataset_path,
                yaml_path,
                opts,
            )
        };
        let mut throughput = bench(Sub::Throughput);
        throughput.files.extend(yaml.clone());
        throughput.required = metrics.clone();
        // The latency step runs its own request count: the dataset's counts apply to
        // throughput only.
        throughput.expect = expect;
        let mut steps = vec![dataset, throughput];
        if opts.trtllm.latency {
            let mut latency = bench(Sub::Latency);
            latency.required = vec!["INFERENCE_TIME"];
            steps.push(latency);
        }
        tp.cases.push(CasePlan {
            spec,
            dir: case_dir,
            steps,
            metrics: metrics.clone(),
            roofline: None,
            group: None,
            gated: Vec::new(),
            upstream_record: None,
        });
    }
    tp
}

fn build_step(cfg: &PerfConfig, model: &Model, dir: &Path, opts: &PlanOptions) -> Step {
    let seq = cfg.seq_lens.as_ref();
    let max_isl = seq
        .and_then(|s| s.input_lens().into_iter().max())
        .unwrap_or(0);
    let max_osl = seq
        .and_then(|s| s.output_lens().into_iter().max())
        .unwrap_or(0);
    let mut argv = vec![
        opts.trtllm.bench_cmd.clone(),
        "--log_level=info".into(),
        flag_path("--workspace=", dir),
        format!("--model={}", model.hf_id),
        format!("--model_path={}", model.checkpoint_arg()),
        "build".into(),
        format!("--tp_size={}", cfg.tp_size),
        format!("--pp_size={}", cfg.pp_size),
        format!("--max_seq_len={}", max_isl + max_osl),
        format!("--max_batch_size={}", cfg.max_batch_size),
        format!("--max_num_tokens={}", cfg.max_num_tokens),
    ];
    if let Some(q) = &cfg.quantization {
        argv.push(format!("--quantization={}", q.to_uppercase()));
    }
    if model.trust_remote_code {
        argv.push("--trust_remote_code=True".into());
    }
    Step {
        phase: Phase::Setup,
        label: BUILD,
        backend: ID,
        argv,
        env: bench_env(opts),
        dataset: None,
        outputs: vec![model_dir(dir, cfg, model)],
        files: Vec::new(),
        stdout_to: None,
        required: vec!["BUILD_TIME"],
        service: None,
        expect: None,
        title: Some("engine build"),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sub {
    Throughput,
    Latency,
}

#[allow(clippy::too_many_arguments)]
fn bench_step(
    sub: Sub,
    cfg: &PerfConfig,
    model: &Model,
    dir: &Path,
    case_dir: &Path,
    dataset: &Path,
    yaml: Option<&Path>,
    opts: &PlanOptions,
) -> Step {
    let (label, report) = match sub {
        Sub::Latency => (LATENCY, case_dir.join("report_latency.json")),
        Sub::Throughput => (THROUGHPUT, case_dir.join("report.json")),
    };
    let mut argv = vec![
        opts.trtllm.bench_cmd.clone(),
        format!("--model={}", model.bench_model_arg),
        format!("--model_path={}", model.checkpoint_arg()),
        label.into(),
        flag_path("--dataset=", dataset),
    ];
    // latency forces batch size 1 and takes no token budget.
    if sub == Sub::Throughput {
        argv.push(format!("--max_batch_size={}", cfg.max_batch_size));
        argv.push(format!("--max_num_tokens={}", cfg.max_num_tokens));
    }
    argv.push(flag_path("--report_json=", &report));
    argv.push(format!(
        "--kv_cache_free_gpu_mem_fraction={}",
        py_float_repr(cfg.kv_cache_free_gpu_mem_fraction)
    ));
    match cfg.backend {
        Flow::Pytorch => argv.push("--backend=pytorch".into()),
        Flow::AutoDeploy => argv.push("--backend=_autodeploy".into()),
        Flow::TensorRt => {
            argv.push("--backend=tensorrt".into());
            argv.push(format!(
                "--engine_dir={}",
                model_dir(dir, cfg, model).display()
            ));
        }
    }
    argv.push(format!("--num_requests={}", cfg.num_reqs));
    // A bench name has at most one (a sweep is a serve name's).
    if let Some(c) = cfg.concurrencies.first() {
        argv.push(format!("--concurrency={c}"));
    }
    if let Some(ep) = cfg.ep_size {
        argv.push(format!("--ep={ep}"));
    }
    if cfg.tp_size > 1 {
        argv.push(format!("--tp={}", cfg.tp_size));
    }
    if cfg.pp_size > 1 {
        argv.push(format!("--pp={}", cfg.pp_size));
    }
    if cfg.streaming && sub == Sub::Throughput {
        argv.push("--streaming".into());
    }
    if let Some(y) = yaml {
        argv.push(flag_path("--extra_llm_api_options=", y));
    }
    argv.extend(model.extra_bench_args.iter().cloned());
    argv.extend(opts.trtllm.extra_bench_args.iter().cloned());
    Step {
        phase: Phase::Measure,
        label,
        backend: ID,
        argv,
        env: bench_env(opts),
        dataset: None,
        outputs: vec![report],
        files: Vec::new(),
        stdout_to: None,
        required: Vec::new(),
        service: None,
        expect: None,
        title: None,
    }
}

/// Upstream runs benchmarks unbuffered (logs stream as they are written) with TensorRT-LLM's
/// libraries and the benchmark's own directory first on LD_LIBRARY_PATH. `$LD_LIBRARY_PATH` is
/// expanded from the environment when the step runs.
fn bench_env(opts: &PlanOptions) -> Vec<(String, String)> {
    let mut env = vec![("PYTHONUNBUFFERED".to_string(), "1".to_string())];
    let mut dirs: Vec<String> = opts
        .trtllm
        .trtllm_lib_dir
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    if let Some(parent) = Path::new(&opts.trtllm.bench_cmd)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        dirs.push(parent.display().to_string());
    }
    if !dirs.is_empty() {
        dirs.push("$LD_LIBRARY_PATH".into());
        env.push(("LD_LIBRARY_PATH".into(), dirs.join(":")));
    }
    env
}

/// Parses the step's slice of the log, and its report.json when it wrote one; what makes the
/// output unusable goes to `problems`.
fn read(step: &Step, output: &StepOutput) -> anyhow::Result<Reading> {
    let json = match step.phase {
        Phase::Measure => step.outputs.first().map(PathBuf::as_path),
        _ => None,
    };
    let text = report::parse_reader(output.reader()?)?;
    let json = match json {
        Some(path) if path.exists() => {
            let s = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some(
                report::parse_report_json(&s)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            )
        }
        _ => None,
    };
    let had_json = json.is_some();
    let r = report::reconcile(text, json);
    let mut reading = Reading {
        warnings: r.warnings,
        contradictions: r.contradictions,
        ..Reading::default()
    };
    if !had_json && matches!(r.kind, ReportKind::Throughput | ReportKind::Latency) {
        reading
            .warnings
            .push("no report.json was written; the values come from the text report".into());
    }
    if r.kind == ReportKind::Unknown && step.phase == Phase::Measure {
        reading
            .problems
            .push("the output holds no trtllm-bench report".to_string());
    }
    if r.reports_found > 1 {
        reading.problems.push(format!(
            "the output holds {} reports; one run must print one",
            r.reports_found
        ));
    }
    if let Some(n) = r.failed_requests.filter(|n| *n > 0) {
        reading.problems.push(format!("{n} request(s) failed"));
    }
    for marker in &r.error_markers {
        reading
            .problems
            .push(format!("the benchmark printed `{marker}`"));
    }
    reading.missing_hint = r
        .era
        .as_ref()
        .map(|era| format!("the era {era} report and the log do not have them"));
    reading.metrics = r.metrics;
    Ok(reading)
}
