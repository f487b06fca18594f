//! Pure planning: a parsed name plus the model catalog and options in, the steps of each
//! benchmark case out (files to write, argv to run, metrics to expect). Nothing here touches
//! the filesystem or starts a process, so `--dry-run`, `perfgate plan` and most tests use it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Backend, CaseSpec, PerfConfig, PerfName};
use crate::llm_api::{self, RuleContext};
use crate::models::ModelConfigs;
use crate::textutil::{py_float_repr, safe_file_name, shell_join};

/// Where and how the plan's commands run.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Root of the run's outputs; every case gets a directory below it.
    pub output_dir: PathBuf,
    /// Root of the model checkpoints (upstream `LLM_MODELS_ROOT`).
    pub models_root: PathBuf,
    /// The benchmark executable (`trtllm-bench`, or a test double).
    pub bench_cmd: String,
    /// How the dataset step is spelled when shown (our own generator).
    pub perfgate_cmd: String,
    /// A tokenizer to use for every case instead of the model's checkpoint directory.
    pub tokenizer_override: Option<PathBuf>,
    /// Seed of the synthetic datasets (upstream's default).
    pub dataset_seed: u64,
    /// Who generates datasets: perfgate itself, or upstream's prepare_dataset.py.
    pub dataset_generator: DatasetGenerator,
    /// Benchmarks per case, in order (upstream runs throughput only).
    pub benchmarks: Vec<StepKind>,
    /// Flags appended to every benchmark command.
    pub extra_bench_args: Vec<String>,
    /// The GPU's SM, for GPU-dependent LLM-API rules; `None` when unknown.
    pub sm: Option<u32>,
    /// TensorRT-LLM's library directory, put first on LD_LIBRARY_PATH (as upstream does).
    pub trtllm_lib_dir: Option<PathBuf>,
    /// Write upstream's LoRA YAML quirk (`lora_dir: []`) instead of the real adapter dirs.
    pub upstream_lora_yaml: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetGenerator {
    /// perfgate's bit-exact port, in-process.
    Perfgate,
    /// `python3 <llm_root>/benchmarks/cpp/prepare_dataset.py --stdout ... > file`.
    Upstream { python: String, llm_root: PathBuf },
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            output_dir: PathBuf::from("perf-output"),
            models_root: PathBuf::from("/models"),
            bench_cmd: "trtllm-bench".into(),
            perfgate_cmd: "perfgate".into(),
            tokenizer_override: None,
            dataset_seed: 420,
            dataset_generator: DatasetGenerator::Perfgate,
            benchmarks: vec![StepKind::Throughput],
            extra_bench_args: Vec::new(),
            sm: None,
            trtllm_lib_dir: None,
            upstream_lora_yaml: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Dataset,
    Build,
    Throughput,
    Latency,
}

impl StepKind {
    /// The lowercase name (as serialized): `dataset`, `build`, `throughput`, `latency`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Dataset => "dataset",
            StepKind::Build => "build",
            StepKind::Throughput => "throughput",
            StepKind::Latency => "latency",
        }
    }
}

/// A synthetic dataset to generate (upstream `prepare_dataset.py token-norm-dist`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetRequest {
    pub tokenizer: PathBuf,
    pub num_requests: u32,
    pub input_mean: u32,
    pub input_stdev: u32,
    pub output_mean: u32,
    pub output_stdev: u32,
    pub seed: u64,
    /// `--rand-task-id MIN MAX` for LoRA cases.
    pub rand_task_ids: Option<(u32, u32)>,
    pub lora_dir: Option<PathBuf>,
    /// Adapters linked as `<lora_dir>/<i>` before generating (upstream `ln -sf`).
    pub lora_adapters: Vec<PathBuf>,
    pub output: PathBuf,
}

/// One step of a case: a dataset to generate in-process, or a command to run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub kind: StepKind,
    /// The command line (for the dataset step, the equivalent `perfgate dataset` command).
    pub argv: Vec<String>,
    /// Environment variables set for the command, beyond the inherited ones.
    pub env: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetRequest>,
    /// Files the step produces.
    pub outputs: Vec<PathBuf>,
    /// Files written before the step runs (the extra LLM API YAML), with their contents.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PlannedFile>,
    /// Where the command's standard output goes (upstream's `--stdout > file` generator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_to: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedFile {
    pub path: PathBuf,
    pub contents: String,
    /// Which rule set each key (for `perfgate config` and the plan).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<(String, String)>,
}

impl Step {
    /// The command as a line that can be pasted into a shell.
    pub fn command_line(&self) -> String {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::textutil::shell_quote(v)))
            .collect();
        let mut cmd = shell_join(&self.argv);
        if let Some(out) = &self.stdout_to {
            cmd.push_str(&format!(
                " > {}",
                crate::textutil::shell_quote(&out.display().to_string())
            ));
        }
        if env.is_empty() {
            cmd
        } else {
            format!("{} {cmd}", env.join(" "))
        }
    }
}

/// One (bs, isl, osl) case: its directory, steps and the metrics its benchmark must report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CasePlan {
    pub spec: CaseSpec,
    pub dir: PathBuf,
    pub steps: Vec<Step>,
    pub metrics: Vec<&'static str>,
}

/// Everything one list entry will do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestPlan {
    pub raw: String,
    pub canonical: String,
    pub dir: PathBuf,
    /// Steps shared by every case (the engine build of the TensorRT flow).
    pub setup: Vec<Step>,
    pub setup_metrics: Vec<&'static str>,
    pub cases: Vec<CasePlan>,
    /// Why it cannot run (a catalog problem, a missing checkpoint): the test fails.
    pub blocked: Vec<String>,
    /// Why it is skipped, as upstream skips it (an unsupported runtime, no LoRA adapters, no
    /// checkpoint to build an engine from): the test is reported as ignored.
    pub skipped: Vec<String>,
}

/// Plans one name. Problems that stop it from running land in `blocked` (the test fails) or
/// `skipped` (as upstream skips), so a dry run still shows everything it can.
pub fn plan(raw: &str, name: &PerfName, configs: &ModelConfigs, opts: &PlanOptions) -> TestPlan {
    let dir = opts.output_dir.join(safe_file_name(raw));
    let mut tp = TestPlan {
        raw: raw.to_string(),
        canonical: name.canonical(),
        dir: dir.clone(),
        setup: Vec::new(),
        setup_metrics: Vec::new(),
        cases: Vec::new(),
        blocked: Vec::new(),
        skipped: Vec::new(),
    };
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
        if cfg.backend != Backend::Pytorch || model.lora_paths.is_empty() {
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
    if cfg.backend == Backend::TensorRt && model.checkpoint.is_some() {
        tp.setup.push(build_step(cfg, &model, &dir, opts));
        tp.setup_metrics.push("BUILD_TIME");
    }
    if cfg.build_only {
        return tp;
    }
    let cases = cfg.cases();
    let multi = cases.len() > 1;
    for spec in cases {
        let case_dir = if multi {
            dir.join(case_dir_name(&spec))
        } else {
            dir.clone()
        };
        let dataset = dataset_step(cfg, &spec, &model, &case_dir, opts);
        let dataset_path = dataset.outputs[0].clone();
        let (yaml, notes) = llm_api_file(cfg, &model, &case_dir, configs, opts);
        tp.blocked.extend(notes);
        let mut steps = vec![dataset];
        for (i, &kind) in opts.benchmarks.iter().enumerate() {
            let mut step = bench_step(
                kind,
                cfg,
                &model,
                &dir,
                &case_dir,
                &dataset_path,
                yaml.as_ref().map(|f| f.path.as_path()),
                opts,
            );
            if i == 0 {
                step.files.extend(yaml.clone());
            }
            steps.push(step);
        }
        let mut metrics = vec![
            "INFERENCE_TIME",
            "TOKEN_THROUGHPUT",
            "SEQ_THROUGHPUT",
            "KV_CACHE_SIZE",
        ];
        if cfg.streaming {
            metrics.extend(["FIRST_TOKEN_TIME", "OUTPUT_TOKEN_TIME"]);
        }
        tp.cases.push(CasePlan {
            spec,
            dir: case_dir,
            steps,
            metrics,
        });
    }
    tp
}

/// `bs_8-isl_128-osl_128`: readable and unique within a test.
fn case_dir_name(spec: &CaseSpec) -> String {
    let mut parts = Vec::new();
    if let Some(bs) = spec.batch_size {
        parts.push(format!("bs_{bs}"));
    }
    parts.push(format!("isl_{}", spec.input_len));
    if let Some(o) = spec.output_len {
        parts.push(format!("osl_{o}"));
    }
    parts.join("-")
}

/// Where a model's files are, as far as the catalog knows.
struct Model {
    /// `<models_root>/<path>`.
    checkpoint: Option<PathBuf>,
    /// Upstream passes `--model=<model>_hf` to throughput: a name, not an HF id.
    bench_model_arg: String,
    hf_id: String,
    tokenizer: PathBuf,
    trust_remote_code: bool,
    lora_paths: Vec<PathBuf>,
    extra_bench_args: Vec<String>,
}

impl Model {
    fn resolve(cfg: &PerfConfig, configs: &ModelConfigs, opts: &PlanOptions) -> Model {
        let info = configs.catalog.get(&cfg.model).cloned().unwrap_or_default();
        let checkpoint = info.path.as_ref().map(|p| opts.models_root.join(p));
        // Upstream's tokenizer: the checkpoint, else the HF id, else a Llama-2 fallback.
        let tokenizer =
            opts.tokenizer_override
                .clone()
                .unwrap_or_else(|| match (&checkpoint, &info.hf_id) {
                    (Some(c), _) => c.clone(),
                    (None, Some(hf)) => PathBuf::from(hf),
                    (None, None) => opts.models_root.join("llama-models/llama-7b-hf"),
                });
        Model {
            bench_model_arg: format!("{}_hf", cfg.model),
            hf_id: info.hf_id.clone().unwrap_or_default(),
            tokenizer,
            trust_remote_code: info.trust_remote_code,
            lora_paths: info.lora.iter().map(|p| opts.models_root.join(p)).collect(),
            extra_bench_args: info.bench_args.clone(),
            checkpoint,
        }
    }

    fn checkpoint_arg(&self) -> String {
        self.checkpoint
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

/// Upstream's `<dir>/<hf id>/tp_<tp>_pp_<pp>`: engines and per-model files live there. Each
/// component of the HF id is made safe, so an id can never climb out of the directory.
fn model_dir(dir: &Path, cfg: &PerfConfig, model: &Model) -> PathBuf {
    let mut d = dir.to_path_buf();
    for part in model.hf_id.split('/').filter(|p| !p.is_empty()) {
        d.push(safe_file_name(part));
    }
    d.join(format!("tp_{}_pp_{}", cfg.tp_size, cfg.pp_size))
}

/// The extra LLM API YAML of a case (pytorch and _autodeploy only), and any rule notes that
/// must stop the case.
fn llm_api_file(
    cfg: &PerfConfig,
    model: &Model,
    case_dir: &Path,
    configs: &ModelConfigs,
    opts: &PlanOptions,
) -> (Option<PlannedFile>, Vec<String>) {
    let file_name = match cfg.backend {
        Backend::Pytorch => "extra-llm-api-config.yml",
        Backend::AutoDeploy => "extra_llm_api_options.yaml",
        Backend::TensorRt => return (None, Vec::new()),
    };
    let label = cfg.canonical();
    let lora_dirs = (cfg.num_loras > 0 && !opts.upstream_lora_yaml).then(|| {
        (0..cfg.num_loras)
            .map(|i| {
                case_dir
                    .join("loras")
                    .join(i.to_string())
                    .display()
                    .to_string()
            })
            .collect()
    });
    let ctx = RuleContext {
        sm: opts.sm,
        lora_dirs,
        models_root: opts.models_root.display().to_string(),
        backend: llm_api::Backend::from_label(&label),
    };
    let effective = configs.rules.config_for(&label, &ctx);
    let file = PlannedFile {
        path: model_dir(case_dir, cfg, model).join(file_name),
        contents: effective.to_pyyaml(),
        provenance: effective.provenance.clone(),
    };
    let notes = effective
        .notes
        .iter()
        .map(|n| format!("LLM-API rules: {n}"))
        .collect();
    (Some(file), notes)
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
        opts.bench_cmd.clone(),
        "--log_level=info".into(),
        format!("--workspace={}", dir.display()),
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
        kind: StepKind::Build,
        argv,
        env: bench_env(opts),
        dataset: None,
        outputs: vec![model_dir(dir, cfg, model)],
        files: Vec::new(),
        stdout_to: None,
    }
}

fn dataset_step(
    cfg: &PerfConfig,
    spec: &CaseSpec,
    model: &Model,
    case_dir: &Path,
    opts: &PlanOptions,
) -> Step {
    let lora = cfg.num_loras > 0;
    let (input_stdev, output_stdev) = if lora { (16, 24) } else { (0, 0) };
    let output = case_dir.join("synthetic_data.json");
    let request = DatasetRequest {
        tokenizer: model.tokenizer.clone(),
        num_requests: cfg.num_reqs,
        input_mean: spec.input_len,
        input_stdev,
        // Encoder names have no output length; upstream passes `None` there (a bug); one
        // output token keeps the dataset valid.
        output_mean: spec.output_len.unwrap_or(1),
        output_stdev,
        seed: opts.dataset_seed,
        rand_task_ids: lora.then(|| (0, cfg.num_loras - 1)),
        lora_dir: lora.then(|| case_dir.join("loras")),
        lora_adapters: if lora {
            model.lora_paths.clone()
        } else {
            Vec::new()
        },
        output: output.clone(),
    };
    let (argv, stdout_to) = match &opts.dataset_generator {
        DatasetGenerator::Perfgate => {
            let mut argv = vec![
                opts.perfgate_cmd.clone(),
                "dataset".into(),
                format!("--tokenizer={}", request.tokenizer.display()),
            ];
            if request.seed != 420 {
                argv.push(format!("--random-seed={}", request.seed));
            }
            if let (Some((lo, hi)), Some(dir)) = (request.rand_task_ids, &request.lora_dir) {
                argv.extend([
                    "--rand-task-id".into(),
                    lo.to_string(),
                    hi.to_string(),
                    format!("--lora-dir={}", dir.display()),
                ]);
            }
            argv.push(format!("--output={}", output.display()));
            (argv, None)
        }
        DatasetGenerator::Upstream { python, llm_root } => {
            let script = llm_root.join("benchmarks/cpp/prepare_dataset.py");
            let mut argv = vec![
                python.clone(),
                script.display().to_string(),
                "--stdout".into(),
            ];
            if let Some((lo, hi)) = request.rand_task_ids {
                argv.extend(["--rand-task-id".into(), lo.to_string(), hi.to_string()]);
            }
            argv.push(format!("--tokenizer={}", request.tokenizer.display()));
            if let Some(dir) = &request.lora_dir {
                argv.push(format!("--lora-dir={}", dir.display()));
            }
            if request.seed != 420 {
                argv.push(format!("--random-seed={}", request.seed));
            }
            (argv, Some(output.clone()))
        }
    };
    let mut argv = argv;
    argv.extend([
        "token-norm-dist".into(),
        format!("--num-requests={}", request.num_requests),
        format!("--input-mean={}", request.input_mean),
        format!("--output-mean={}", request.output_mean),
        format!("--input-stdev={input_stdev}"),
        format!("--output-stdev={output_stdev}"),
    ]);
    Step {
        kind: StepKind::Dataset,
        argv,
        env: Vec::new(),
        dataset: Some(request),
        outputs: vec![output],
        files: Vec::new(),
        stdout_to,
    }
}

#[allow(clippy::too_many_arguments)]
fn bench_step(
    kind: StepKind,
    cfg: &PerfConfig,
    model: &Model,
    dir: &Path,
    case_dir: &Path,
    dataset: &Path,
    yaml: Option<&Path>,
    opts: &PlanOptions,
) -> Step {
    let (sub, report) = match kind {
        StepKind::Latency => ("latency", case_dir.join("report_latency.json")),
        _ => ("throughput", case_dir.join("report.json")),
    };
    let mut argv = vec![
        opts.bench_cmd.clone(),
        format!("--model={}", model.bench_model_arg),
        format!("--model_path={}", model.checkpoint_arg()),
        sub.into(),
        format!("--dataset={}", dataset.display()),
    ];
    // latency forces batch size 1 and takes no token budget.
    if kind != StepKind::Latency {
        argv.push(format!("--max_batch_size={}", cfg.max_batch_size));
        argv.push(format!("--max_num_tokens={}", cfg.max_num_tokens));
    }
    argv.push(format!("--report_json={}", report.display()));
    argv.push(format!(
        "--kv_cache_free_gpu_mem_fraction={}",
        py_float_repr(cfg.kv_cache_free_gpu_mem_fraction)
    ));
    match cfg.backend {
        Backend::Pytorch => argv.push("--backend=pytorch".into()),
        Backend::AutoDeploy => argv.push("--backend=_autodeploy".into()),
        Backend::TensorRt => {
            argv.push("--backend=tensorrt".into());
            argv.push(format!(
                "--engine_dir={}",
                model_dir(dir, cfg, model).display()
            ));
        }
    }
    argv.push(format!("--num_requests={}", cfg.num_reqs));
    if let Some(c) = cfg.concurrency {
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
    if cfg.streaming && kind != StepKind::Latency {
        argv.push("--streaming".into());
    }
    if let Some(y) = yaml {
        argv.push(format!("--extra_llm_api_options={}", y.display()));
    }
    argv.extend(model.extra_bench_args.iter().cloned());
    argv.extend(opts.extra_bench_args.iter().cloned());
    Step {
        kind,
        argv,
        env: bench_env(opts),
        dataset: None,
        outputs: vec![report],
        files: Vec::new(),
        stdout_to: None,
    }
}

/// Upstream runs benchmarks unbuffered (logs stream as they are written) with TensorRT-LLM's
/// libraries and the benchmark's own directory first on LD_LIBRARY_PATH. `$LD_LIBRARY_PATH` is
/// expanded from the environment when the step runs.
fn bench_env(opts: &PlanOptions) -> Vec<(String, String)> {
    let mut env = vec![("PYTHONUNBUFFERED".to_string(), "1".to_string())];
    let mut dirs: Vec<String> = opts
        .trtllm_lib_dir
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    if let Some(parent) = Path::new(&opts.bench_cmd)
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

impl TestPlan {
    /// Every step in the order it runs: the setup, then each case's steps.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.setup
            .iter()
            .chain(self.cases.iter().flat_map(|c| c.steps.iter()))
    }

    /// A human-readable rendering: what `--dry-run` prints and writes as `plan.txt`.
    pub fn render(&self) -> String {
        let mut s = format!(
            "test      {}\ncanonical {}\ndir       {}\n",
            self.raw,
            self.canonical,
            self.dir.display()
        );
        for b in &self.blocked {
            s.push_str(&format!("blocked   {b}\n"));
        }
        for r in &self.skipped {
            s.push_str(&format!("skipped   {r}\n"));
        }
        for step in &self.setup {
            s.push_str(&format!(
                "setup     [{:?}] {}\n",
                step.kind,
                step.command_line()
            ));
        }
        if !self.setup_metrics.is_empty() {
            s.push_str(&format!(
                "          metrics: {}\n",
                self.setup_metrics.join(", ")
            ));
        }
        for (i, c) in self.cases.iter().enumerate() {
            s.push_str(&format!("case {}    {}\n", i + 1, c.spec.label));
            for step in &c.steps {
                for f in &step.files {
                    s.push_str(&format!("  {:<10} {}\n", "write", f.path.display()));
                    for line in f.contents.lines() {
                        s.push_str(&format!("  {:<10}   | {line}\n", ""));
                    }
                }
                s.push_str(&format!(
                    "  {:<10} {}\n",
                    step.kind.as_str().to_string(),
                    step.command_line()
                ));
            }
            s.push_str(&format!("  metrics    {}\n", c.metrics.join(", ")));
        }
        s
    }
}

impl CasePlan {
    /// What the dataset the case generates makes every correct report show; a case without a
    /// generated dataset expects nothing.
    pub fn expectations(&self) -> crate::record::Expectations {
        let Some(d) = self.steps.iter().find_map(|s| s.dataset.as_ref()) else {
            return crate::record::Expectations::default();
        };
        crate::record::Expectations {
            num_requests: Some(d.num_requests),
            input_len: (d.input_stdev == 0).then_some(d.input_mean),
            output_len: (d.output_stdev == 0).then_some(d.output_mean),
        }
    }
}
