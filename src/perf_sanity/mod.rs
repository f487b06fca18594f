//! Upstream's perf-sanity configs (`tests/scripts/perf-sanity/{aggregated,disaggregated}/*.yaml`
//! of TensorRT-LLM): where they are, how they are read and checked ([`schema`]), and what
//! upstream's `test_perf_sanity.py` derives from them ([`derive`]). Config data, like
//! `model_configs/`: read once per file, before planning; the serving backend plans from it.

mod derive;
mod schema;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

pub use derive::{
    AUTH_KEY_PLACEHOLDER, AUTH_KEY_SENTINEL, CLIENT_MATCH_KEYS, CONFIG_SERVER_MATCH_KEYS, Client,
    DisaggSettings, EXCLUDED_KEYS, Expanded, METRIC_FIELDS, RunType, SCENARIO_SERVER_MATCH_KEYS,
    Server, UPSTREAM_MAXIMIZE, UPSTREAM_REGRESSION, aggregated_record, disagg_server_config,
    disaggregated_record, expand_aggregated, expand_disaggregated, gpu_type, py_join, py_str,
    with_auth_placeholder,
};
pub use schema::{Aggregated, ClientSection, Content, Disaggregated, ServerSection, env_dict};

use crate::config::SanityId;
use crate::testlist::{Diagnostic, Severity, Source};

/// Where the aggregated and disaggregated configs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanityDirs {
    pub aggregated: PathBuf,
    pub disaggregated: PathBuf,
}

/// Upstream's default folders, relative to the TensorRT-LLM source root.
pub const AGG_DEFAULT: &str = "tests/scripts/perf-sanity/aggregated";
pub const DISAGG_DEFAULT: &str = "tests/scripts/perf-sanity/disaggregated";

impl SanityDirs {
    /// `dir/aggregated` and `dir/disaggregated` when a perf-sanity directory is given; else
    /// upstream's `AGG_CONFIG_FOLDER` and `DISAGG_CONFIG_FOLDER` (a relative one under the
    /// source root), else upstream's defaults under the source root.
    pub fn resolve(
        llm_root: &Path,
        dir: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> SanityDirs {
        if let Some(d) = dir {
            return SanityDirs {
                aggregated: d.join("aggregated"),
                disaggregated: d.join("disaggregated"),
            };
        }
        let pick = |var: &str, default: &str| {
            let p = PathBuf::from(env(var).filter(|v| !v.is_empty()).unwrap_or(default.into()));
            if p.is_absolute() { p } else { llm_root.join(p) }
        };
        SanityDirs {
            aggregated: pick("AGG_CONFIG_FOLDER", AGG_DEFAULT),
            disaggregated: pick("DISAGG_CONFIG_FOLDER", DISAGG_DEFAULT),
        }
    }

    /// The file an id reads.
    pub fn path_of(&self, id: &SanityId) -> PathBuf {
        let dir = if id.reads_disaggregated() {
            &self.disaggregated
        } else {
            &self.aggregated
        };
        dir.join(id.config_file())
    }
}

/// One config file, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SanityFile {
    pub path: PathBuf,
    /// Every problem, at its line.
    pub diagnostics: Vec<Diagnostic>,
    /// `None` when the file could not be read or parsed.
    pub content: Option<Content>,
    /// The files named by `extra_llm_api_config_path`, parsed (by the path as written).
    pub externals: BTreeMap<String, Value>,
}

impl SanityFile {
    /// Reads and checks `path` (`disaggregated`: with the disaggregated schema). External
    /// LLM API configs are resolved against `llm_root`, as upstream resolves them.
    pub fn load(path: &Path, disaggregated: bool, llm_root: &Path) -> SanityFile {
        let mut file = SanityFile {
            path: path.to_path_buf(),
            diagnostics: Vec::new(),
            content: None,
            externals: BTreeMap::new(),
        };
        if !path.is_file() {
            let message = missing_message(path);
            file.diagnostics
                .push(Diagnostic::error(file.source(0), message));
            return file;
        }
        let text = match crate::textutil::read_text(path) {
            Ok(t) => t,
            Err(e) => {
                file.diagnostics
                    .push(Diagnostic::error(file.source(0), format!("{e}")));
                return file;
            }
        };
        let root = match yaml::parse(&text) {
            Ok(r) => r,
            Err(e) => {
                file.diagnostics
                    .push(Diagnostic::error(file.source(e.line), e.message));
                return file;
            }
        };
        file.content = schema::check(&root, path, disaggregated, &mut file.diagnostics);
        let mut wanted: Vec<(String, usize)> = Vec::new();
        let mut want = |data: &serde_json::Map<String, Value>, line: usize| {
            if let Some(Value::String(p)) = data.get("extra_llm_api_config_path")
                && !p.is_empty()
                && !wanted.iter().any(|(w, _)| w == p)
            {
                wanted.push((p.clone(), line));
            }
        };
        match &file.content {
            Some(Content::Aggregated(a)) => {
                for s in &a.servers {
                    want(&s.data, s.line);
                }
            }
            Some(Content::Disaggregated(d)) => {
                want(&d.ctx, 0);
                want(&d.gen_, 0);
            }
            None => {}
        }
        for (p, line) in wanted {
            let full = if Path::new(&p).is_absolute() {
                PathBuf::from(&p)
            } else {
                llm_root.join(&p)
            };
            let parsed = crate::textutil::read_text(&full)
                .map_err(|e| format!("{e}"))
                .and_then(|t| {
                    yaml::parse(&t)
                        .map_err(|e| format!("{}:{}: {}", full.display(), e.line, e.message))
                });
            match parsed {
                Ok(node) => match node.to_json() {
                    v @ Value::Object(_) => {
                        file.externals.insert(p, v);
                    }
                    Value::Null => {
                        file.externals
                            .insert(p, Value::Object(serde_json::Map::new()));
                    }
                    other => file.diagnostics.push(Diagnostic::error(
                        file.source(line),
                        format!(
                            "extra_llm_api_config_path `{p}` ({}) holds {}, not a mapping",
                            full.display(),
                            kind(&other)
                        ),
                    )),
                },
                Err(e) => file.diagnostics.push(Diagnostic::error(
                    file.source(line),
                    format!(
                        "extra_llm_api_config_path `{p}`: {e} (relative paths are under the \
                         TensorRT-LLM source root, --llm-root)"
                    ),
                )),
            }
        }
        file
    }

    fn source(&self, line: usize) -> Source {
        Source {
            file: self.path.clone(),
            line,
        }
    }

    /// The errors, one per line of text (`path:line: message`).
    pub fn errors(&self) -> Vec<String> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| format!("{}: {}", d.source, d.message))
            .collect()
    }

    /// What `id` runs from this file.
    pub fn expand(&self, id: &SanityId) -> Result<Expanded, String> {
        match &self.content {
            Some(Content::Aggregated(a)) => expand_aggregated(id, a),
            Some(Content::Disaggregated(d)) => expand_disaggregated(id, d),
            None => Err(format!("{}: unreadable", self.path.display())),
        }
    }
}

/// A missing config: the configs its folder does have (the closest first), and how the folder
/// is chosen.
fn missing_message(path: &Path) -> String {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".yaml").map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let want = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let near = crate::textutil::closest(&want, names.iter().map(String::as_str), 3);
    let found = if !dir.is_dir() {
        format!("the folder {} does not exist", dir.display())
    } else if near.is_empty() {
        format!("{} config(s) in {}", names.len(), dir.display())
    } else {
        format!("closest: {}", near.join(", "))
    };
    format!(
        "no such perf-sanity config ({found}); the folders are set by --llm-root, \
         --perf-sanity-dir or AGG_CONFIG_FOLDER / DISAGG_CONFIG_FOLDER"
    )
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "nothing",
        Value::Object(_) => "a mapping",
    }
}

/// Files read, by path and schema (disaggregated or not).
type Files = BTreeMap<(PathBuf, bool), Arc<SanityFile>>;

/// Files read once per run, shared by every plan (and by lint).
#[derive(Debug, Clone, Default)]
pub struct SanityStore {
    files: Arc<Mutex<Files>>,
}

impl PartialEq for SanityStore {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.files, &other.files)
    }
}

impl SanityStore {
    /// The file at `path`, read on first use.
    pub fn get(&self, path: &Path, disaggregated: bool, llm_root: &Path) -> Arc<SanityFile> {
        let key = (path.to_path_buf(), disaggregated);
        if let Ok(files) = self.files.lock()
            && let Some(f) = files.get(&key)
        {
            return f.clone();
        }
        let loaded = Arc::new(SanityFile::load(path, disaggregated, llm_root));
        if let Ok(mut files) = self.files.lock() {
            files.insert(key, loaded.clone());
        }
        loaded
    }

    /// Every file read so far.
    pub fn loaded(&self) -> Vec<Arc<SanityFile>> {
        self.files
            .lock()
            .map(|f| f.values().cloned().collect())
            .unwrap_or_default()
    }
}
