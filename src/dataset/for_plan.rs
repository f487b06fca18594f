//! Datasets for planned cases: generated once into a content-addressed cache and linked into
//! each case's directory, so identical datasets are reused across cases and runs instead of
//! regenerated (upstream writes one file per test and regenerates it every time).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::cache::{VocabIdentity, cache_key};
use super::error::DatasetError;
use super::spec::{LengthDist, SyntheticSpec, TaskIds};
use super::synthetic::write_synthetic_file;
use super::tokenizer::Vocab;

/// A synthetic dataset to generate (upstream `prepare_dataset.py token-norm-dist`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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

/// What [`generate_for_plan`] did.
#[derive(Debug, Clone)]
pub struct PlannedDataset {
    /// The case's file (a hard link to, or copy of, the cache entry).
    pub path: PathBuf,
    pub cache_entry: PathBuf,
    /// True when the cache already held it.
    pub reused: bool,
}

/// `$PERF_DATASET_CACHE`, else `$XDG_CACHE_HOME/perfgate/datasets`, else
/// `~/.cache/perfgate/datasets`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PERF_DATASET_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("perfgate").join("datasets")
}

/// Generates (or reuses) the dataset of one case and puts it at `req.output`.
pub fn generate_for_plan(
    req: &DatasetRequest,
    cache_dir: &Path,
) -> Result<PlannedDataset, DatasetError> {
    let (vocab, identity) = vocab_for(&req.tokenizer).map_err(|e| match e {
        // `perfgate dataset` is given its tokenizer; a planned case takes its model's, so say
        // where that came from and how to give another.
        DatasetError::Tokenizer { path, message } => DatasetError::Tokenizer {
            path,
            message: format!(
                "{message}. A case's tokenizer is its model's checkpoint directory under \
                 --models-root (LLM_MODELS_ROOT); --tokenizer DIR (PERF_TOKENIZER) gives one \
                 tokenizer for every dataset"
            ),
        },
        other => other,
    })?;
    let spec = SyntheticSpec {
        num_requests: u64::from(req.num_requests),
        dist: LengthDist::Normal {
            input_mean: u64::from(req.input_mean),
            input_stdev: u64::from(req.input_stdev),
            output_mean: u64::from(req.output_mean),
            output_stdev: u64::from(req.output_stdev),
        },
        seed: req.seed,
        task_ids: match req.rand_task_ids {
            Some((min, max)) => TaskIds::Random {
                min: i64::from(min),
                max: i64::from(max),
            },
            None => TaskIds::None,
        },
        lora_dir: req.lora_dir.as_ref().map(|d| d.display().to_string()),
    };
    let key = cache_key(&spec, &identity);
    std::fs::create_dir_all(cache_dir).map_err(|e| DatasetError::Write {
        target: cache_dir.display().to_string(),
        source: e,
    })?;
    let cache_entry = cache_dir.join(format!("{key}.jsonl"));
    let reused = cache_entry.is_file();
    if !reused {
        write_synthetic_file(&spec, &vocab, &cache_entry)?;
    }
    if let Some(dir) = req.output.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DatasetError::Write {
            target: dir.display().to_string(),
            source: e,
        })?;
    }
    let _ = std::fs::remove_file(&req.output);
    // A hard link costs nothing; across filesystems fall back to a copy.
    if std::fs::hard_link(&cache_entry, &req.output).is_err() {
        std::fs::copy(&cache_entry, &req.output).map_err(|e| DatasetError::Write {
            target: req.output.display().to_string(),
            source: e,
        })?;
    }
    Ok(PlannedDataset {
        path: req.output.clone(),
        cache_entry,
        reused,
    })
}

/// Loading a tokenizer costs up to a few hundred milliseconds; a run loads each one once.
fn vocab_for(tokenizer: &Path) -> Result<(Vocab, VocabIdentity), DatasetError> {
    static SEEN: OnceLock<Mutex<HashMap<PathBuf, (Vocab, VocabIdentity)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Mutex::default);
    if let Some(hit) = seen.lock().ok().and_then(|m| m.get(tokenizer).cloned()) {
        return Ok(hit);
    }
    let vocab = Vocab::from_tokenizer(tokenizer)?;
    let identity = VocabIdentity::with_tokenizer(&vocab, tokenizer)?;
    if let Ok(mut m) = seen.lock() {
        m.insert(tokenizer.to_path_buf(), (vocab.clone(), identity.clone()));
    }
    Ok((vocab, identity))
}
