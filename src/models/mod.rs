//! The model catalog (`model_configs/models.yaml`): checkpoint paths, Hugging Face ids, LoRA
//! adapters and the facts the checks need. Data, read at run time; a copy is compiled in so
//! the binary also works outside a checkout.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::{PerfConfig, QUANT_LEGACY_ZOO, QUANT_WITH_CHECKPOINT, SeqLens};
use crate::textutil::closest;

mod arch;
mod gpus;
pub mod servers;

pub use arch::Arch;
pub use gpus::{ClockTarget, GpuInfo, GpuTable};
pub use servers::{ServerRecipe, ServerRecipes};

use crate::llm_api::Rules;

const EMBEDDED: &str = include_str!("../../model_configs/models.yaml");
const EMBEDDED_RULES: &str = include_str!("../../model_configs/llm_api_rules.yaml");
const EMBEDDED_GPUS: &str = include_str!("../../model_configs/gpus.yaml");
const EMBEDDED_SERVERS: &str = include_str!("../../model_configs/servers.yaml");

/// Everything per model and per GPU that planning reads: the catalog, the LLM-API rules and
/// the GPU table, from `--model-configs DIR` or the copies built in.
#[derive(Debug, Clone)]
pub struct ModelConfigs {
    pub catalog: Catalog,
    pub rules: Rules,
    pub gpus: GpuTable,
    /// Server recipes for `serve` names (`servers.yaml`).
    pub servers: ServerRecipes,
    /// Perf-sanity config files, read when a plan first needs one.
    pub sanity: crate::perf_sanity::SanityStore,
    /// The LLM-API rules are the project's own (the built-in copy, or a file with the same
    /// text): their warnings are the project's to fix and its tests check them, so linting a
    /// user's list does not repeat them.
    pub rules_are_builtin: bool,
}

impl ModelConfigs {
    /// `--model-configs DIR`, else `./model_configs` when run from a checkout, else the copies
    /// built in.
    pub fn discover(dir: Option<&Path>) -> anyhow::Result<ModelConfigs> {
        let local = Path::new("model_configs");
        let dir = dir.or_else(|| local.join("models.yaml").is_file().then_some(local));
        match dir {
            Some(dir) => {
                let gpus_path = dir.join("gpus.yaml");
                let gpus_text = crate::textutil::read_text(&gpus_path)?;
                let rules_path = dir.join("llm_api_rules.yaml");
                let rules_text = crate::textutil::read_text(&rules_path)?;
                // A directory from before server recipes existed keeps working with the
                // built-in ones.
                let servers_path = dir.join("servers.yaml");
                let servers = if servers_path.is_file() {
                    let text = crate::textutil::read_text(&servers_path)?;
                    ServerRecipes::parse(&text, &servers_path.display().to_string())?
                } else {
                    ServerRecipes::parse(EMBEDDED_SERVERS, "<embedded model_configs/servers.yaml>")?
                };
                Ok(ModelConfigs {
                    catalog: Catalog::load(&dir.join("models.yaml"))?,
                    rules: Rules::from_str(&rules_text, &rules_path.display().to_string())?,
                    gpus: parse_gpus(&gpus_text, &gpus_path.display().to_string())?,
                    servers,
                    sanity: crate::perf_sanity::SanityStore::default(),
                    rules_are_builtin: rules_text == EMBEDDED_RULES,
                })
            }
            None => Ok(ModelConfigs::embedded()),
        }
    }

    /// The copies compiled into the binary (checked by the test suite).
    pub fn embedded() -> ModelConfigs {
        let rules = Rules::from_str(
            EMBEDDED_RULES,
            "<embedded model_configs/llm_api_rules.yaml>",
        );
        let gpus = parse_gpus(EMBEDDED_GPUS, "<embedded model_configs/gpus.yaml>");
        let servers =
            ServerRecipes::parse(EMBEDDED_SERVERS, "<embedded model_configs/servers.yaml>");
        match (rules, gpus, servers) {
            (Ok(rules), Ok(gpus), Ok(servers)) => ModelConfigs {
                catalog: Catalog::embedded(),
                rules,
                gpus,
                servers,
                sanity: crate::perf_sanity::SanityStore::default(),
                rules_are_builtin: true,
            },
            (Err(e), _, _) => panic!("{e}"),
            (_, Err(e), _) => panic!("{e}"),
            (_, _, Err(e)) => panic!("{e}"),
        }
    }
}

pub fn parse_gpus(text: &str, origin: &str) -> anyhow::Result<GpuTable> {
    let table: GpuTable = serde_saphyr::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "{}: invalid GPU table: {e}",
            crate::textutil::file_line(origin, e.location().map_or(0, |l| l.line()))
        )
    })?;
    if let Some((gpu, message)) = table.invalid() {
        anyhow::bail!(
            "{}: invalid GPU table: `{gpu}`: {message}",
            crate::textutil::file_line(origin, key_line(text, &gpu))
        );
    }
    Ok(table)
}

/// The 1-based line where `key:` is first written as a mapping key (indented), for messages
/// about values serde accepted but a later check rejected; 0 when not found.
fn key_line(text: &str, key: &str) -> u64 {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.len() < l.len() && t.strip_prefix(key).is_some_and(|r| r.starts_with(':'))
        })
        .map_or(0, |i| i as u64 + 1)
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// Checkpoint directory relative to the models root.
    pub path: Option<String>,
    pub hf_id: Option<String>,
    #[serde(default)]
    pub lora: Vec<String>,
    #[serde(default)]
    pub trust_remote_code: bool,
    #[serde(default)]
    pub legacy: bool,
    #[serde(default)]
    pub encoder: bool,
    /// Flags appended to this model's benchmark commands.
    #[serde(default)]
    pub bench_args: Vec<String>,
    /// Key into the catalog's `architectures:` (the facts the physics check needs).
    pub arch: Option<String>,
    /// The tokenizer directory relative to the models root, when the checkpoint is not one (a
    /// GGUF file served by llama.cpp).
    pub tokenizer: Option<String>,
    /// The checkpoint perf-sanity uses where its `MODEL_PATH_DICT` differs from test_perf's.
    pub sanity_path: Option<String>,
}

impl ModelInfo {
    /// What in the entry could point a benchmark outside the models root or make it write
    /// outside the output directory: a `path` or `lora` that is absolute or climbs with `..`, an
    /// `hf_id` that is not a Hugging Face id (the build writes under `<workspace>/<hf_id>`), a
    /// `bench_args` flag that names a file or directory perfgate itself chooses.
    pub fn path_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(p) = &self.path {
            problems.extend(relative_path_problem("path", p));
        }
        if let Some(p) = &self.tokenizer {
            problems.extend(relative_path_problem("tokenizer", p));
        }
        if let Some(p) = &self.sanity_path {
            problems.extend(relative_path_problem("sanity_path", p));
        }
        for p in &self.lora {
            problems.extend(relative_path_problem("lora", p));
        }
        if let Some(id) = &self.hf_id {
            problems.extend(hf_id_problem(id));
        }
        for arg in self.bench_args.iter().filter(|a| a.starts_with('-')) {
            let flag = arg.split('=').next().unwrap_or("").replace('-', "_");
            if PERFGATE_PATH_FLAGS.contains(&flag.trim_start_matches('_')) {
                problems.push(format!(
                    "bench_args `{arg}`: perfgate chooses this file or directory itself (inside \
                     the output directory); the catalog may not set it"
                ));
            }
        }
        problems
    }
}

/// trtllm-bench options that name a file or directory perfgate places in the output directory
/// (or reads from the catalog's checked fields), spelled with `_`.
const PERFGATE_PATH_FLAGS: [&str; 11] = [
    "workspace",
    "w",
    "model",
    "model_path",
    "engine_dir",
    "dataset",
    "report_json",
    "request_json",
    "output_json",
    "iteration_log",
    "extra_llm_api_options",
];

/// A directory relative to the models root: not empty, not absolute, no `..`, no control
/// characters.
fn relative_path_problem(field: &str, p: &str) -> Option<String> {
    let path = Path::new(p);
    if p.trim().is_empty() {
        Some(format!("{field} is empty"))
    } else if p.chars().any(char::is_control) {
        Some(format!(
            "{field} `{}` contains a control character",
            p.escape_debug()
        ))
    } else if path.is_absolute() {
        Some(format!(
            "{field} `{p}` is absolute; it must be relative to the models root (--models-root, \
             LLM_MODELS_ROOT)"
        ))
    } else if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        Some(format!(
            "{field} `{p}` climbs out of the models root with `..`; name the directory below it"
        ))
    } else {
        None
    }
}

/// A Hugging Face model id as the Hub defines one: `name` or `namespace/name`, each of
/// letters, digits, `-`, `_` and `.`, not starting or ending with `-` or `.`, without `--` or
/// `..`, at most 96 characters.
fn hf_id_problem(id: &str) -> Option<String> {
    let parts: Vec<&str> = id.split('/').collect();
    let bad_part = |p: &&str| {
        p.is_empty()
            || p.len() > 96
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || p.starts_with(['-', '.'])
            || p.ends_with(['-', '.'])
            || p.contains("--")
            || p.contains("..")
    };
    (parts.len() > 2 || parts.iter().any(bad_part)).then(|| {
        format!(
            "hf_id `{}` is not a Hugging Face id (`name` or `namespace/name` of letters, digits, \
             `-`, `_`, `.`; no `..`, no leading or trailing `-` or `.`): the build writes under \
             `<workspace>/<hf_id>`, so it must stay a plain name",
            id.escape_debug()
        )
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    models: BTreeMap<String, ModelInfo>,
    #[serde(default)]
    architectures: BTreeMap<String, Arch>,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub models: BTreeMap<String, ModelInfo>,
    /// Architecture facts by architecture key (models refer to them by `arch:`).
    pub architectures: BTreeMap<String, Arch>,
    /// Where it was read from, for messages.
    pub origin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Read(#[from] crate::textutil::TextFileError),
    #[error("{}: invalid model catalog: {message}", crate::textutil::file_line(origin, *line))]
    Parse {
        origin: String,
        line: u64,
        message: String,
    },
}

impl Catalog {
    pub fn from_str(text: &str, origin: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = serde_saphyr::from_str(text).map_err(|e| CatalogError::Parse {
            origin: origin.to_string(),
            line: e.location().map_or(0, |l| l.line()),
            message: e.to_string(),
        })?;
        let bad = |key: &str, message: String| CatalogError::Parse {
            origin: origin.to_string(),
            line: key_line(text, key),
            message: format!("`{key}`: {message}"),
        };
        for (key, arch) in &file.architectures {
            arch.validate().map_err(|m| bad(key, m))?;
        }
        for (name, info) in &file.models {
            if let Some(problem) = info.path_problems().into_iter().next() {
                return Err(bad(name, problem));
            }
            if let Some(a) = &info.arch
                && !file.architectures.contains_key(a)
            {
                let near = closest(a, file.architectures.keys().map(String::as_str), 3);
                return Err(bad(
                    name,
                    format!(
                        "arch `{a}` is not in `architectures:`{}",
                        if near.is_empty() {
                            String::new()
                        } else {
                            format!("; closest: {}", near.join(", "))
                        }
                    ),
                ));
            }
        }
        Ok(Catalog {
            models: file.models,
            architectures: file.architectures,
            origin: origin.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let text = crate::textutil::read_text(path)?;
        Catalog::from_str(&text, &path.display().to_string())
    }

    /// The catalog compiled into the binary.
    pub fn embedded() -> Catalog {
        // The embedded file is checked by the test suite, so this cannot fail at run time
        // unless the build itself is broken.
        Catalog::from_str(EMBEDDED, "<embedded model_configs/models.yaml>")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `<dir>/models.yaml` when a model-configs directory is given, else the embedded copy.
    pub fn discover(model_configs: Option<&Path>) -> Result<Catalog, CatalogError> {
        match model_configs {
            Some(dir) => Catalog::load(&dir.join("models.yaml")),
            None => Ok(Catalog::embedded()),
        }
    }

    pub fn get(&self, model: &str) -> Option<&ModelInfo> {
        self.models.get(model)
    }

    /// The architecture facts of a model, or why there are none.
    pub fn arch(&self, model: &str) -> Result<&Arch, String> {
        let info = self.get(model).ok_or_else(|| {
            format!(
                "no architecture facts for `{model}`: not in {}",
                self.origin
            )
        })?;
        let key = info.arch.as_deref().ok_or_else(|| {
            format!(
                "no architecture facts for `{model}`: it has no `arch:` in {}",
                self.origin
            )
        })?;
        self.architectures.get(key).ok_or_else(|| {
            format!("no architecture facts for `{model}`: `{key}` is not in `architectures:`")
        })
    }

    pub fn closest(&self, model: &str) -> Vec<&str> {
        closest(model, self.models.keys().map(String::as_str), 3)
    }

    /// Checks that need the catalog (the grammar alone cannot know them). Each string is one
    /// problem, phrased for a `file:line: error:` prefix.
    pub fn check(&self, cfg: &PerfConfig) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(info) = self.get(&cfg.model) else {
            let near = self.closest(&cfg.model);
            let hint = if near.is_empty() {
                String::new()
            } else {
                format!("; closest known: {}", near.join(", "))
            };
            problems.push(format!(
                "unknown model `{}` (not in {}){hint}",
                cfg.model, self.origin
            ));
            return problems;
        };
        match (&cfg.seq_lens, info.encoder) {
            (Some(SeqLens::InputOutput(_)), true) => problems.push(format!(
                "`{}` is an encoder model: use `input_len:I` (it generates no output tokens)",
                cfg.model
            )),
            (Some(SeqLens::InputOnly(_)), false) => problems.push(format!(
                "`{}` generates tokens: use `input_output_len:I,O`, not `input_len:`",
                cfg.model
            )),
            _ => {}
        }
        if let Some(q) = &cfg.quantization {
            let allowed: &[&str] = if info.path.is_some() {
                &QUANT_WITH_CHECKPOINT
            } else {
                &QUANT_LEGACY_ZOO
            };
            if !allowed.contains(&q.as_str()) {
                problems.push(format!(
                    "quantization `{q}` is not available for `{}`; expected one of {}",
                    cfg.model,
                    allowed.join(", ")
                ));
            }
        }
        if cfg.pp_size > 1 && info.path.is_none() {
            problems.push(format!(
                "pipeline parallelism needs a local checkpoint, and `{}` has no path",
                cfg.model
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PerfName, parse};

    fn cfg(name: &str) -> PerfConfig {
        match parse(name).unwrap() {
            PerfName::Standard(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn embedded_catalog_checks() {
        let cat = Catalog::embedded();
        assert!(cat.models.len() > 100);
        assert!(
            cat.check(&cfg(
                "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128"
            ))
            .is_empty()
        );
        let p = cat.check(&cfg(
            "llama_v3.1_8bb-bench-pytorch-bfloat16-input_output_len:128,128",
        ));
        assert!(p[0].contains("closest known: llama_v3.1_8b"), "{p:?}");
        assert_eq!(
            cat.check(&cfg("bert_large-bench-float16-input_output_len:128,128"))
                .len(),
            1
        );
        assert_eq!(
            cat.check(&cfg("llama_v3.1_8b-bench-bfloat16-input_len:128"))
                .len(),
            1
        );
    }

    /// Issue 20 item 5: nothing in the catalog may send a benchmark outside the models root or
    /// make it write outside the output directory; the error names the model's line.
    #[test]
    fn catalog_paths_and_ids_cannot_escape() {
        for (entry, needle) in [
            (
                "{hf_id: '../../../../../../pgx_engine'}",
                "is not a Hugging Face id",
            ),
            ("{hf_id: 'org/../x'}", "is not a Hugging Face id"),
            ("{hf_id: '/abs/x'}", "is not a Hugging Face id"),
            ("{hf_id: 'a/b/c'}", "is not a Hugging Face id"),
            ("{path: /models/x}", "is absolute"),
            ("{path: 'x/../../y'}", "climbs out of the models root"),
            ("{path: ''}", "path is empty"),
            ("{lora: [ok/dir, '../up']}", "climbs out of the models root"),
            (
                "{bench_args: ['--workspace=/tmp/x']}",
                "perfgate chooses this",
            ),
            (
                "{bench_args: ['--report-json', '/tmp/r.json']}",
                "perfgate chooses this",
            ),
        ] {
            let text = format!("models:\n  ok_model: {{path: a/b}}\n  bad_model: {entry}\n");
            let msg = Catalog::from_str(&text, "m.yaml").unwrap_err().to_string();
            assert!(msg.starts_with("m.yaml:3: "), "{entry}: {msg}");
            assert!(
                msg.contains("`bad_model`") && msg.contains(needle),
                "{entry}: {msg}"
            );
        }
        // What upstream's catalog holds is accepted: HF ids with dots and underscores, paths
        // with a trailing slash, flags that are not paths.
        let ok = "models:\n  m: {path: DeepSeek-R1/DeepSeek-R1-0528/, hf_id: nvidia/Llama-3_1-Nemotron-Ultra-253B-v1-FP8, lora: [lora/x/], bench_args: ['--warmup=2']}\n  n: {hf_id: gpt2}\n";
        assert!(Catalog::from_str(ok, "m.yaml").is_ok());
    }

    #[test]
    fn bad_catalog_names_the_line() {
        let err =
            Catalog::from_str("models:\n  a: {path: x, colour: red}\n", "m.yaml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("m.yaml:2:"), "{msg}");
    }
}
