//! The seam between perfgate and the benchmarks it runs. A backend is one kind of benchmark
//! (`trtllm-bench`, serving): for a test name it supplies the steps (prepare, setup, service,
//! measure), the metrics it expects and the dataset expectations the gate checks, and it reads
//! a finished step's output into metrics. Everything else (running steps, services, time
//! limits, telemetry, the gate, result files) is the same for every backend.
//!
//! Backends: [`trtllm_bench`], [`serve`] (serving cases), [`sweep`] (sweeps and A/B runs).
//! Adding a backend is one module implementing [`Backend`] and one line in
//! [`Registry::builtin`] (or [`Registry::with`], which is how a test registers one of its own).
//! Nothing outside a backend's module knows its command-line flags.

mod common;
pub mod serve;
pub mod sweep;
pub mod trtllm_bench;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::PerfName;
use crate::models::ModelConfigs;
use crate::plan::{Step, TestPlan};
use crate::textutil::safe_file_name;

pub use common::DatasetGenerator;

/// One kind of benchmark.
pub trait Backend: Send + Sync {
    /// The name steps carry (`Step::backend`) so the executor finds their reader.
    fn id(&self) -> &'static str;

    /// Whether this backend runs the name. The registry asks its backends in order; the first
    /// that accepts plans it.
    fn accepts(&self, name: &PerfName) -> bool;

    /// The plan of one list entry: steps, expected metrics, and why it cannot run. Pure: no
    /// file is read or written, no process started.
    fn plan(&self, request: &PlanRequest) -> TestPlan;

    /// Reads what a finished step printed (its slice of the test's log) and wrote (its
    /// outputs) into metrics, with what is wrong with the output as `problems`.
    fn read(&self, step: &Step, output: &StepOutput) -> anyhow::Result<Reading>;
}

/// Everything a backend plans one entry from.
pub struct PlanRequest<'a> {
    /// The entry as the list spells it.
    pub raw: &'a str,
    pub name: &'a PerfName,
    pub configs: &'a ModelConfigs,
    pub options: &'a PlanOptions,
    /// The test's work directory (`<output dir>/<raw as a file name>`).
    pub dir: PathBuf,
}

/// What a finished step left to read.
pub struct StepOutput<'a> {
    /// The test's log; the step's output is `log_range` of it.
    pub log: &'a Path,
    pub log_range: Range<u64>,
    pub duration: Duration,
}

impl StepOutput<'_> {
    /// The step's part of the log, buffered for a parser.
    pub fn reader(&self) -> std::io::Result<std::io::BufReader<std::io::Take<std::fs::File>>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(self.log)?;
        f.seek(SeekFrom::Start(self.log_range.start))?;
        let len = self.log_range.end.saturating_sub(self.log_range.start);
        Ok(std::io::BufReader::with_capacity(1 << 20, f.take(len)))
    }
}

/// Metrics read from a step's output, and what is wrong with it.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// By metric name ([`crate::record::metric`]), in the metric's unit.
    pub metrics: BTreeMap<String, f64>,
    /// Worth knowing, but the measurement stands.
    pub warnings: Vec<String>,
    /// The measurement cannot be used (no report, failed requests, an error line).
    pub problems: Vec<String>,
    /// Values that no correct run produces together (the log and report.json disagree, a
    /// latency longer than the run): evidence that makes the step's verdicts INVALID.
    pub contradictions: Vec<String>,
    /// Why a required metric can be missing, for its message (`the era C report and the log
    /// do not have them`).
    pub missing_hint: Option<String>,
}

/// Where and how the plans' commands run: what every backend shares, then each backend's own.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Root of the run's outputs; every test gets a directory below it.
    pub output_dir: PathBuf,
    /// Root of the model checkpoints (upstream `LLM_MODELS_ROOT`).
    pub models_root: PathBuf,
    /// How the dataset step is spelled when shown (our own generator).
    pub perfgate_cmd: String,
    /// A tokenizer to use for every case instead of the model's checkpoint directory.
    pub tokenizer_override: Option<PathBuf>,
    /// Seed of the synthetic datasets (upstream's default).
    pub dataset_seed: u64,
    /// Who generates datasets: perfgate itself, or upstream's prepare_dataset.py.
    pub dataset_generator: DatasetGenerator,
    /// The GPU's SM, for GPU-dependent LLM-API rules; `None` when unknown.
    pub sm: Option<u32>,
    /// The GPU type (a `model_configs/gpus.yaml` name): what a serving case's record names and
    /// its physical limits are computed for; `None` when unknown.
    pub gpu: Option<String>,
    /// Write upstream's LoRA YAML quirk (`lora_dir: []`) instead of the real adapter dirs.
    pub upstream_lora_yaml: bool,
    /// Options of the trtllm-bench backend.
    pub trtllm: trtllm_bench::Options,
    /// Options of the serving backend (its `serve_bench_cmd` is also the perfgate that runs
    /// sweep and A/B cases).
    pub serve: serve::Options,
    /// The GPUs the servers of sweep and A/B cases are placed on (NVML's count, else
    /// `--gpus`; perfgate's own `CUDA_VISIBLE_DEVICES`).
    pub machine_gpus: crate::plan::placement::Gpus,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            output_dir: PathBuf::from("perf-output"),
            models_root: PathBuf::from("/models"),
            perfgate_cmd: "perfgate".into(),
            tokenizer_override: None,
            dataset_seed: 420,
            dataset_generator: DatasetGenerator::Perfgate,
            sm: None,
            gpu: None,
            upstream_lora_yaml: false,
            trtllm: trtllm_bench::Options::default(),
            serve: serve::Options::default(),
            machine_gpus: crate::plan::placement::Gpus::default(),
        }
    }
}

/// The backends a run knows, asked in order.
#[derive(Clone)]
pub struct Registry {
    backends: Vec<Arc<dyn Backend>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.backends.iter().map(|b| b.id()))
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl Registry {
    /// perfgate's own backends.
    pub fn builtin() -> Registry {
        Registry {
            // Sweeps and A/B runs, then serving (the `serve` names of the standard grammar),
            // then the trtllm-bench backend every other one.
            backends: vec![
                Arc::new(sweep::SweepAb),
                Arc::new(serve::Serve),
                Arc::new(trtllm_bench::TrtllmBench),
            ],
        }
    }

    /// This registry with `backend` asked first.
    pub fn with(mut self, backend: Arc<dyn Backend>) -> Registry {
        self.backends.insert(0, backend);
        self
    }

    /// The backend whose steps carry `id`.
    pub fn get(&self, id: &str) -> Option<&dyn Backend> {
        self.backends
            .iter()
            .find(|b| b.id() == id)
            .map(|b| b.as_ref())
    }

    /// Plans one name with the first backend that accepts it. A name no backend runs is
    /// planned empty and skipped, saying why.
    pub fn plan(
        &self,
        raw: &str,
        name: &PerfName,
        configs: &ModelConfigs,
        options: &PlanOptions,
    ) -> TestPlan {
        let dir = options.output_dir.join(safe_file_name(raw));
        match self.backends.iter().find(|b| b.accepts(name)) {
            Some(b) => b.plan(&PlanRequest {
                raw,
                name,
                configs,
                options,
                dir,
            }),
            None => {
                let mut tp = TestPlan::empty(raw, name.canonical(), dir);
                tp.skipped.push(
                    name.unsupported_reason()
                        .unwrap_or_else(|| "no perfgate backend runs this kind of test".into()),
                );
                tp
            }
        }
    }
}

/// Plans one name with perfgate's own backends (what `perfgate plan` and the harness use).
pub fn plan(raw: &str, name: &PerfName, configs: &ModelConfigs, options: &PlanOptions) -> TestPlan {
    Registry::builtin().plan(raw, name, configs, options)
}
