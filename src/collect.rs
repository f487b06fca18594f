//! Collection: the test lists read, every entry parsed into a typed name and planned by its
//! backend, with the machine description test-db conditions are evaluated against. What the
//! harness, `perfgate plan`, `lint`, `shards` and `slurm submit` all start from. Plain options
//! in (the command line's flags become [`CollectOptions`] at the edge).

use std::path::PathBuf;

use crate::backend::{PlanOptions, Registry};
use crate::config::{self, NameError, PerfName};
use crate::models::ModelConfigs;
use crate::plan::TestPlan;
use crate::testlist::{self, Diagnostic, LoadOptions, System, TestEntry};
use crate::textutil::clip;

/// What to collect, and how its plans are made.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Test lists: plain text or test-db YAML.
    pub test_lists: Vec<PathBuf>,
    /// Prefix of every test id (GPU / CI stage).
    pub test_prefix: Option<String>,
    /// The machine description file (`--system`).
    pub system: Option<PathBuf>,
    /// `KEY=VALUE` settings over it (`--system-set`).
    pub system_set: Vec<String>,
    /// Facts detected on this machine (NVML, the host): the base of the system description,
    /// under what `system` and `system_set` give.
    pub detected: Option<System>,
    /// The test-db context to read.
    pub context: Option<String>,
    /// Directory holding models.yaml (and the other model configs); `None`: the copy built in.
    pub model_configs: Option<PathBuf>,
    /// The GPU's compute capability, for GPU-dependent LLM-API rules.
    pub sm: Option<u32>,
    /// The GPU type (its SM selects rules; physical limits are computed for it).
    pub gpu: Option<String>,
    /// How plans are made; `sm` and `gpu` are filled in from the fields above.
    pub plan: PlanOptions,
    /// Where generated datasets are kept for reuse (`None`: the default cache).
    pub dataset_cache: Option<PathBuf>,
    /// Refuse test-db conditions with no system to evaluate them against (runs and plans);
    /// `lint` reads every block instead.
    pub require_system: bool,
}

impl CollectOptions {
    /// The defaults, collecting `lists`.
    pub fn for_lists(lists: Vec<PathBuf>) -> CollectOptions {
        CollectOptions {
            test_lists: lists,
            test_prefix: None,
            system: None,
            system_set: Vec::new(),
            detected: None,
            context: None,
            model_configs: None,
            sm: None,
            gpu: None,
            plan: PlanOptions::default(),
            dataset_cache: None,
            require_system: false,
        }
    }
}

/// One list entry, parsed and planned.
#[derive(Debug, Clone)]
pub struct Collected {
    pub entry: TestEntry,
    pub test_id: String,
    pub name: Result<PerfName, NameError>,
    pub plan: Option<TestPlan>,
}

/// What collection found: the tests, and the list problems.
#[derive(Debug, Clone)]
pub struct Collection {
    pub tests: Vec<Collected>,
    pub diagnostics: Vec<Diagnostic>,
    /// The model configs the plans were made with.
    pub configs: ModelConfigs,
    /// The system description test-db conditions were evaluated against.
    pub system: Option<System>,
    /// The GPU type the physical limits were computed for, when known.
    pub gpu_type: Option<String>,
}

impl CollectOptions {
    pub fn configs(&self) -> anyhow::Result<ModelConfigs> {
        ModelConfigs::discover(self.model_configs.as_deref())
    }

    /// The system description: detected facts, under `--system`, under `--system-set`.
    pub fn system(&self) -> anyhow::Result<Option<System>> {
        let mut system: Option<System> = match &self.system {
            Some(path) => {
                let text = crate::textutil::read_text(path)
                    .map_err(|e| anyhow::anyhow!("{e} (the system description, --system)"))?;
                let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "{}:{}:{}: invalid system description: {e}",
                        path.display(),
                        e.line(),
                        e.column()
                    )
                })?;
                match v {
                    serde_json::Value::Object(m) => Some(m),
                    _ => anyhow::bail!(
                        "{}: the system description must be a JSON object",
                        path.display()
                    ),
                }
            }
            None => None,
        };
        if let Some(detected) = &self.detected {
            let s = system.get_or_insert_with(System::new);
            for (k, v) in detected {
                s.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        for kv in &self.system_set {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--system-set `{kv}`: expected KEY=VALUE"))?;
            // Numbers and booleans keep their type so ranges and terms compare by meaning.
            let value = serde_json::from_str(v)
                .unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
            system
                .get_or_insert_with(System::new)
                .insert(k.to_string(), value);
        }
        Ok(system)
    }

    /// The plan options with the GPU's SM filled in (for GPU-dependent LLM-API rules).
    pub fn plan_options(
        &self,
        configs: &ModelConfigs,
        system: Option<&System>,
    ) -> anyhow::Result<PlanOptions> {
        let gpu = self.gpu_type(system, configs);
        let mut serve = self.plan.serve.clone();
        // Upstream's records name the GPU by its product's last word (B200, H200, ...).
        if let Some(g) = &gpu {
            serve.gpu_type = crate::perf_sanity::gpu_type(g.split('_').next().unwrap_or(g)).into();
        }
        // The GPUs servers are placed on: NVML's count (a detected fact), else `--gpus`, else
        // what a system description says.
        let count_of = |key: &str| {
            system
                .and_then(|s| s.get(key))
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .and_then(|n| u32::try_from(n).ok())
        };
        let detected = self
            .detected
            .as_ref()
            .and_then(|d| d.get("gpu_count"))
            .and_then(|v| v.as_u64())
            .and_then(|n| u32::try_from(n).ok());
        let machine_gpus = crate::plan::placement::Gpus {
            count: detected
                .or(self.plan.machine_gpus.count)
                .or_else(|| count_of("system_gpu_count"))
                .or_else(|| count_of("gpu_count")),
            visible: self.plan.machine_gpus.visible.clone(),
        };
        Ok(PlanOptions {
            sm: self.resolve_sm(configs, system)?,
            gpu,
            serve,
            machine_gpus,
            ..self.plan.clone()
        })
    }

    /// `sm`, else `gpu`, else the system description's `compute_capability` or `gpu`.
    fn resolve_sm(
        &self,
        configs: &ModelConfigs,
        system: Option<&System>,
    ) -> anyhow::Result<Option<u32>> {
        if let Some(sm) = self.sm {
            return Ok(Some(sm));
        }
        if let Some(gpu) = &self.gpu {
            return configs
                .gpus
                .sm(gpu)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("--gpu: {e}"));
        }
        let Some(system) = system else {
            return Ok(None);
        };
        if let Some(cc) = system
            .get("compute_capability")
            .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
        {
            // 9.0 → 90, 10.0 → 100; a value already in SM form stays.
            return Ok(Some(if cc < 20.0 {
                (cc * 10.0).round() as u32
            } else {
                cc as u32
            }));
        }
        Ok(system
            .get("gpu")
            .and_then(|g| g.as_str())
            .and_then(|g| configs.gpus.sm(g).ok()))
    }

    /// The GPU type the physical limits are computed for: `gpu`, else the system
    /// description's `gpu`, else the test prefix when it starts with a GPU the table knows
    /// (`H100_80GB_HBM3`, `H100_PCIe-TensorRT-Perf-1`), else the detected GPU. `sm` alone
    /// names no GPU type (several share an SM).
    pub fn gpu_type(&self, system: Option<&System>, configs: &ModelConfigs) -> Option<String> {
        self.gpu
            .clone()
            .or_else(|| {
                system
                    .and_then(|s| s.get("gpu"))
                    .and_then(|g| g.as_str())
                    .map(str::to_string)
            })
            .or_else(|| {
                let prefix = self.test_prefix.as_deref()?;
                let first = prefix.split('-').next()?;
                configs
                    .gpus
                    .find(first)
                    .ok()
                    .map(|(name, _)| name.to_string())
            })
            .or_else(|| {
                let detected = system?.get("gpu_type")?.as_str()?;
                configs
                    .gpus
                    .find(detected)
                    .ok()
                    .map(|(name, _)| name.to_string())
            })
    }

    /// Reads the lists, parses every name and plans it with `registry`'s backends.
    pub fn collect(&self, registry: &Registry) -> anyhow::Result<Collection> {
        let configs = self.configs()?;
        let system = self.system()?;
        let plan_opts = self.plan_options(&configs, system.as_ref())?;
        let gpu_type = self.gpu_type(system.as_ref(), &configs);
        let opts = LoadOptions {
            system,
            context: self.context.clone(),
            require_system: self.require_system,
        };
        let list = testlist::load(&self.test_lists, &opts);
        let prefix = self.test_prefix.as_deref().filter(|p| !p.is_empty());
        let mut diagnostics = list.diagnostics;
        let entries: Vec<TestEntry> = list
            .entries
            .into_iter()
            // Pinned to another GPU / stage.
            .filter(|e| match (prefix, e.pinned_prefix.as_deref()) {
                (Some(want), Some(pinned)) => want == pinned,
                _ => true,
            })
            .collect();
        let plan_one = |entry: TestEntry| -> Collected {
            let test_id = entry.test_id(prefix);
            let name = config::parse_test(entry.function, &entry.raw);
            let plan = name.as_ref().ok().map(|n| {
                if entry.markers.bench_args.is_empty() {
                    registry.plan(&entry.raw, n, &configs, &plan_opts)
                } else {
                    let mut o = plan_opts.clone();
                    o.trtllm
                        .extra_bench_args
                        .extend(entry.markers.bench_args.iter().cloned());
                    registry.plan(&entry.raw, n, &configs, &o)
                }
            });
            Collected {
                entry,
                test_id,
                name,
                plan,
            }
        };
        let tests: Vec<Collected> = entries.into_iter().map(plan_one).collect();
        for t in &tests {
            if let Err(e) = &t.name {
                diagnostics.push(Diagnostic::error(
                    t.entry.source.clone(),
                    format!("`{}`: {e}", clip(&t.entry.raw)),
                ));
            }
        }
        Ok(Collection {
            tests,
            diagnostics,
            configs,
            system: opts.system,
            gpu_type,
        })
    }
}
