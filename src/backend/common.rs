//! What the backends share: where a model's files are, the dataset step (perfgate's own
//! generator or upstream's script), the extra LLM API YAML from the rules, and the work
//! directories of cases and models.

use std::path::{Path, PathBuf};

use crate::config::{Backend, CaseSpec, PerfConfig};
use crate::dataset::DatasetRequest;
use crate::llm_api::{self, RuleContext};
use crate::models::ModelConfigs;
use crate::plan::{Phase, PlannedFile, Step};
use crate::textutil::safe_file_name;

use super::PlanOptions;

/// Who generates datasets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetGenerator {
    /// perfgate's bit-exact port, in-process.
    Perfgate,
    /// `python3 <llm_root>/benchmarks/cpp/prepare_dataset.py --stdout ... > file`.
    Upstream { python: String, llm_root: PathBuf },
}

/// `bs_8-isl_128-osl_128` (`-con_4` for a case of a concurrency sweep): readable and unique
/// within a test.
pub(crate) fn case_dir_name(spec: &CaseSpec, sweep: bool) -> String {
    let mut parts = Vec::new();
    if let Some(bs) = spec.batch_size {
        parts.push(format!("bs_{bs}"));
    }
    parts.push(format!("isl_{}", spec.input_len));
    if let Some(o) = spec.output_len {
        parts.push(format!("osl_{o}"));
    }
    if let Some(c) = spec.concurrency.filter(|_| sweep) {
        parts.push(format!("con_{c}"));
    }
    parts.join("-")
}

/// Where a model's files are, as far as the catalog knows.
pub(crate) struct Model {
    /// `<models_root>/<path>`.
    pub(crate) checkpoint: Option<PathBuf>,
    /// Upstream passes `--model=<model>_hf` to throughput: a name, not an HF id.
    pub(crate) bench_model_arg: String,
    pub(crate) hf_id: String,
    pub(crate) tokenizer: PathBuf,
    pub(crate) trust_remote_code: bool,
    pub(crate) lora_paths: Vec<PathBuf>,
    pub(crate) extra_bench_args: Vec<String>,
}

impl Model {
    pub(crate) fn resolve(cfg: &PerfConfig, configs: &ModelConfigs, opts: &PlanOptions) -> Model {
        let info = configs.catalog.get(&cfg.model).cloned().unwrap_or_default();
        let checkpoint = info.path.as_ref().map(|p| opts.models_root.join(p));
        // Upstream's tokenizer: the checkpoint, else the HF id, else a Llama-2 fallback; the
        // catalog's own tokenizer directory first (a GGUF checkpoint is not one).
        let tokenizer = opts
            .tokenizer_override
            .clone()
            .or_else(|| info.tokenizer.as_ref().map(|t| opts.models_root.join(t)))
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

    pub(crate) fn checkpoint_arg(&self) -> String {
        self.checkpoint
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

/// Upstream's `<dir>/<hf id>/tp_<tp>_pp_<pp>`: engines and per-model files live there. Each
/// component of the HF id is made safe, so an id can never climb out of the directory.
pub(crate) fn model_dir(dir: &Path, cfg: &PerfConfig, model: &Model) -> PathBuf {
    let mut d = dir.to_path_buf();
    for part in model.hf_id.split('/').filter(|p| !p.is_empty()) {
        d.push(safe_file_name(part));
    }
    d.join(format!("tp_{}_pp_{}", cfg.tp_size, cfg.pp_size))
}

/// The extra LLM API YAML of a case (pytorch and _autodeploy only), and any rule notes that
/// must stop the case.
pub(crate) fn llm_api_file(
    cfg: &PerfConfig,
    label: &str,
    model: &Model,
    case_dir: &Path,
    configs: &ModelConfigs,
    opts: &PlanOptions,
) -> (Option<PlannedFile>, Vec<String>) {
    let (file, notes) = llm_api_config(cfg, label, model, case_dir, configs, opts);
    (file.map(|(f, _)| f), notes)
}

/// [`llm_api_file`] with the config it writes (upstream's dict).
pub(crate) fn llm_api_config(
    cfg: &PerfConfig,
    label: &str,
    model: &Model,
    case_dir: &Path,
    configs: &ModelConfigs,
    opts: &PlanOptions,
) -> (Option<(PlannedFile, serde_json::Value)>, Vec<String>) {
    let file_name = match cfg.backend {
        Backend::Pytorch => "extra-llm-api-config.yml",
        Backend::AutoDeploy => "extra_llm_api_options.yaml",
        Backend::TensorRt => return (None, Vec::new()),
    };
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
        backend: llm_api::Backend::from_label(label),
    };
    let effective = configs.rules.config_for(label, &ctx);
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
    (Some((file, effective.value)), notes)
}

pub(crate) fn dataset_step(
    backend: &'static str,
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
                flag_path("--tokenizer=", &request.tokenizer),
            ];
            if request.seed != 420 {
                argv.push(format!("--random-seed={}", request.seed));
            }
            if let (Some((lo, hi)), Some(dir)) = (request.rand_task_ids, &request.lora_dir) {
                argv.extend([
                    "--rand-task-id".into(),
                    lo.to_string(),
                    hi.to_string(),
                    flag_path("--lora-dir=", dir),
                ]);
            }
            argv.push(flag_path("--output=", &output));
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
            argv.push(flag_path("--tokenizer=", &request.tokenizer));
            if let Some(dir) = &request.lora_dir {
                argv.push(flag_path("--lora-dir=", dir));
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
        phase: Phase::Prepare,
        label: "dataset",
        backend,
        argv,
        env: Vec::new(),
        dataset: Some(request),
        outputs: vec![output],
        files: Vec::new(),
        stdout_to,
        required: Vec::new(),
        service: None,
        expect: None,
        title: None,
    }
}

/// `--flag=<path>`. Paths are formatted with `to_string_lossy`: `Path::display` through
/// `format!` showed in the profile of planning a 10,000-name list.
pub(crate) fn flag_path(flag: &str, path: &Path) -> String {
    let p = path.to_string_lossy();
    let mut s = String::with_capacity(flag.len() + p.len());
    s.push_str(flag);
    s.push_str(&p);
    s
}
