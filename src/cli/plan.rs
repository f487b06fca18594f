//! `perfgate plan`, `perfgate estimate` and `perfgate config`: what names would run, their
//! physical limits, and their extra LLM API YAML, without running anything.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use serde::Serialize;

use super::args::CommonArgs;
use crate::backend::Registry;
use crate::config::{self, PerfName, TestFunction};
use crate::testlist;
use crate::textutil::clip;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// One JSON object per line, for scripts.
    Json,
}

#[derive(clap::Args)]
pub struct PlanArgs {
    /// Test names (bare, or upstream ids `perf/test_perf.py::test_perf[...]`,
    /// `perf/test_perf_sanity.py::test_e2e[...]`).
    pub names: Vec<String>,
    /// Read names from a file, one per line (`#` comments allowed).
    #[arg(long)]
    pub names_from: Option<PathBuf>,
    /// `json` prints one object per name: name, ok, canonical, cases, error, blocked, skipped,
    /// and per case the steps (kind, argv).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(clap::Args)]
pub struct EstimateArgs {
    /// A test name (bare or an upstream id).
    pub name: String,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    // The GPU type: `--gpu`, else the system description's `gpu`, else H100_SXM (said in the
    // command's help, since a flattened group's doc comment is not shown).
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ConfigFormat {
    /// The YAML with, per key, the rule that set it.
    Annotated,
    /// Only the YAML, exactly as written for trtllm-bench (for scripts).
    Yaml,
}

#[derive(clap::Args)]
pub struct ConfigArgs {
    /// A test name (bare or an upstream id).
    name: String,
    #[arg(long, value_enum, default_value = "annotated")]
    format: ConfigFormat,
    /// LoRA adapter directories for `loras:N` names.
    #[arg(long, value_delimiter = ',')]
    lora_dirs: Vec<String>,
    #[command(flatten)]
    common: CommonArgs,
}

/// `perfgate plan --format json`: one object per name.
#[derive(Serialize)]
pub struct PlanJson<'a> {
    name: &'a str,
    ok: bool,
    canonical: Option<String>,
    cases: Vec<String>,
    error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    blocked: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<String>,
    /// Per case, the steps in order.
    steps: Vec<Vec<StepJson>>,
}

#[derive(Serialize)]
pub struct StepJson {
    /// The step's label: `dataset`, `throughput`, `server`, `ctx_0`, `client`, ...
    kind: &'static str,
    argv: Vec<String>,
    /// Environment set for the step, beyond the inherited one (in order).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    env: serde_json::Map<String, serde_json::Value>,
    /// A service (kept running while the steps after it run).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    service: bool,
    /// The YAML the step's command reads (a server's extra LLM API config, the disaggregated
    /// server's config), as written before it starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    config_yaml: Option<String>,
}

impl StepJson {
    fn of(s: &crate::plan::Step) -> StepJson {
        StepJson {
            kind: s.label,
            argv: s.argv.clone(),
            env: s
                .env
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
            service: s.service.is_some(),
            config_yaml: s
                .files
                .iter()
                .find(|f| {
                    f.path
                        .extension()
                        .is_some_and(|e| e == "yml" || e == "yaml")
                })
                .map(|f| f.contents.clone()),
        }
    }
}

pub fn run_plan(a: PlanArgs) -> anyhow::Result<ExitCode> {
    let mut names: Vec<(TestFunction, String)> = a
        .names
        .iter()
        .map(|id| test_name(id))
        .collect::<anyhow::Result<_>>()?;
    if let Some(path) = &a.names_from {
        // The list reader: comments, markers and test ids handled as in a run.
        let list = testlist::load(std::slice::from_ref(path), &Default::default());
        if let Some(e) = list.errors().next() {
            anyhow::bail!("{e}");
        }
        names.extend(list.entries.into_iter().map(|e| (e.function, e.raw)));
    }
    if names.is_empty() {
        match &a.names_from {
            Some(path) => anyhow::bail!(
                "{}: no test names in it (empty, or only comments and blank lines)",
                path.display()
            ),
            None => {
                anyhow::bail!("no names given: pass names as arguments or use --names-from FILE")
            }
        }
    }
    let common = a.common.to_collect();
    let configs = common.configs()?;
    let opts = common.plan_options(&configs, common.system()?.as_ref())?;
    let registry = Registry::builtin();
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for (function, raw) in &names {
        let raw = raw.as_str();
        let parsed = config::parse_test(*function, raw);
        let plan = parsed
            .as_ref()
            .ok()
            .map(|n| registry.plan(raw, n, &configs, &opts));
        failed |= parsed.is_err();
        match a.format {
            Format::Json => {
                let obj = PlanJson {
                    name: raw,
                    ok: parsed.is_ok(),
                    canonical: parsed.as_ref().ok().map(PerfName::canonical),
                    // The plan's cases (a perf-sanity id's come from its config).
                    cases: match &plan {
                        Some(p) if !p.cases.is_empty() => {
                            p.cases.iter().map(|c| c.spec.label.clone()).collect()
                        }
                        _ => parsed
                            .as_ref()
                            .map(|p| p.cases().into_iter().map(|c| c.label).collect())
                            .unwrap_or_default(),
                    },
                    error: parsed.as_ref().err().map(ToString::to_string),
                    blocked: plan.as_ref().map(|p| p.blocked.clone()).unwrap_or_default(),
                    skipped: plan.as_ref().map(|p| p.skipped.clone()).unwrap_or_default(),
                    steps: plan
                        .as_ref()
                        .map(|p| {
                            p.cases
                                .iter()
                                .map(|c| p.setup.iter().chain(&c.steps).map(StepJson::of).collect())
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                writeln!(out, "{}", serde_json::to_string(&obj)?)?;
            }
            Format::Text => match (&parsed, &plan) {
                (Ok(_), Some(p)) => writeln!(out, "{}", p.render())?,
                (Err(e), _) => writeln!(out, "test      {}\nerror     {e}\n", clip(raw))?,
                _ => {}
            },
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `perf/test_perf.py::test_perf[NAME]` (with any prefix, as CI ids carry the GPU) → `NAME`;
/// a bare name is kept.
pub fn raw_name(id: &str) -> anyhow::Result<String> {
    match test_name(id)? {
        (TestFunction::Perf, raw) => Ok(raw),
        (TestFunction::PerfSanity, _) => {
            anyhow::bail!("`{id}` is a perf-sanity test, not a test_perf name")
        }
    }
}

/// A test id of either function (with any prefix) → its function and `[...]`; a bare name is
/// a test_perf name.
pub fn test_name(id: &str) -> anyhow::Result<(TestFunction, String)> {
    let from_func = [TestFunction::Perf, TestFunction::PerfSanity]
        .iter()
        .find_map(|f| id.find(&format!("{}[", f.node())))
        .map_or(id, |i| &id[i..]);
    match testlist::parse_test_id(from_func) {
        Ok(Some((_, function, raw))) => Ok((function, raw)),
        Ok(None) => anyhow::bail!("`{id}` is not a test_perf or test_perf_sanity test"),
        Err(e) => anyhow::bail!("{e}"),
    }
}

pub fn run_estimate(a: EstimateArgs) -> anyhow::Result<ExitCode> {
    let raw = raw_name(&a.name)?;
    let raw = raw.as_str();
    let name = config::parse(raw).map_err(|e| anyhow::anyhow!("`{}`: {e}", clip(raw)))?;
    let PerfName::Standard(cfg) = &name else {
        anyhow::bail!("`{raw}` is not a trtllm-bench test; no physical limits");
    };
    let common = a.common.to_collect();
    let configs = common.configs()?;
    let gpu = common
        .gpu_type(common.system()?.as_ref(), &configs)
        .unwrap_or_else(|| "H100_SXM".to_string());
    let roofs = crate::physics::rooflines(&configs, cfg, &gpu)
        .map_err(|e| anyhow::anyhow!("`{}`: {e}", clip(raw)))?;
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Text => {
            for r in &roofs {
                writeln!(out, "{}", r.case.label)?;
                write!(out, "{}", r.limits().render())?;
            }
        }
        Format::Json => {
            let all: Vec<_> = roofs.iter().map(|r| r.limits()).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_config(a: ConfigArgs) -> anyhow::Result<ExitCode> {
    let raw = raw_name(&a.name)?;
    let raw = raw.as_str();
    let name = config::parse(raw).map_err(|e| anyhow::anyhow!("`{}`: {e}", clip(raw)))?;
    let PerfName::Standard(cfg) = &name else {
        anyhow::bail!("`{raw}` is not a trtllm-bench test; it has no extra LLM API YAML");
    };
    let common = a.common.to_collect();
    let configs = common.configs()?;
    let opts = common.plan_options(&configs, common.system()?.as_ref())?;
    let label = cfg.canonical();
    let lora_dirs = (!a.lora_dirs.is_empty()).then(|| a.lora_dirs.clone());
    if let Some(dirs) = &lora_dirs {
        anyhow::ensure!(
            dirs.len() == cfg.num_loras as usize,
            "--lora-dirs gives {} director(ies) but the name has loras:{}",
            dirs.len(),
            cfg.num_loras
        );
    }
    let ctx = crate::llm_api::RuleContext {
        sm: opts.sm,
        lora_dirs,
        models_root: opts.models_root.display().to_string(),
        backend: crate::llm_api::Backend::from_label(&label),
    };
    let effective = configs.rules.config_for(&label, &ctx);
    let mut out = std::io::stdout().lock();
    match a.format {
        ConfigFormat::Yaml => write!(out, "{}", effective.to_pyyaml())?,
        ConfigFormat::Annotated => {
            writeln!(out, "# {label}")?;
            writeln!(
                out,
                "# SM: {}",
                opts.sm.map_or(
                    "unknown (GPU-dependent rules off; use --sm or --gpu)".into(),
                    |s| s.to_string()
                )
            )?;
            write!(out, "{}", effective.to_pyyaml())?;
            writeln!(out, "\n# where each key comes from:")?;
            let width = effective
                .provenance
                .iter()
                .map(|(k, _)| k.len())
                .max()
                .unwrap_or(0);
            for (key, rule) in &effective.provenance {
                writeln!(out, "#   {key:<width$}  {rule}")?;
            }
            for n in &effective.notes {
                writeln!(out, "# note: {n}")?;
            }
        }
    }
    Ok(if effective.notes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
