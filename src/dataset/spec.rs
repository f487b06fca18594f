//! What a synthetic dataset is made from, and the checks that keep generation from failing later.

use super::error::DatasetError;
use super::tokenizer::Vocab;

/// How request lengths are drawn (upstream `token-norm-dist` / `token-unif-dist`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LengthDist {
    /// `max(1, ceil(normal(mean, stdev)))`, numpy legacy RNG; input and output share the draws.
    Normal {
        input_mean: u64,
        input_stdev: u64,
        output_mean: u64,
        output_stdev: u64,
    },
    /// Inclusive uniform bounds, numpy `default_rng(seed).integers`.
    Uniform {
        input_min: u64,
        input_max: u64,
        output_min: u64,
        output_max: u64,
    },
}

/// LoRA task ids (upstream `--task-id` / `--rand-task-id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskIds {
    /// No task ids (upstream's default `--task-id -1`).
    None,
    /// The same id for every request; `Fixed(-1)` means the same as `None`, as upstream.
    Fixed(i64),
    /// `random.randint(min, max)` per request, drawn after all token ids.
    Random { min: i64, max: i64 },
}

impl TaskIds {
    /// Upstream's "use task ids": anything but the default -1.
    pub fn in_use(&self) -> bool {
        !matches!(self, TaskIds::None | TaskIds::Fixed(-1))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticSpec {
    pub num_requests: u64,
    pub dist: LengthDist,
    /// `--random-seed` (upstream default 420).
    pub seed: u64,
    pub task_ids: TaskIds,
    /// Parent directory of the LoRA adapters (`<dir>/<task id>`); needed for `lora_request`.
    pub lora_dir: Option<String>,
}

impl SyntheticSpec {
    /// Whether lines carry a `lora_request` (task ids in use and a LoRA directory given).
    pub fn uses_lora(&self) -> bool {
        self.task_ids.in_use() && self.lora_dir.is_some()
    }

    /// Upstream's UserWarning, when task ids are given without a LoRA directory.
    pub fn warnings(&self) -> Vec<String> {
        if self.task_ids.in_use() && self.lora_dir.is_none() {
            vec!["Task IDs require LoRA directory. Use --lora-dir or omit task IDs.".to_string()]
        } else {
            Vec::new()
        }
    }
}

/// The longest request accepted (2^24 tokens, far beyond any model's context): a guard against a
/// typo turning into an allocation that takes the machine down.
pub const MAX_REQUEST_TOKENS: u64 = 1 << 24;
/// The most requests in one dataset.
pub const MAX_REQUESTS: u64 = 100_000_000;
/// The largest vocabulary accepted (2^28; real ones are below 2^20). Sampling keeps a bitset
/// over the vocabulary, 32 MiB at this size.
pub const MAX_VOCAB: u32 = 1 << 28;

/// Checks everything that can be checked before drawing a number.
pub fn validate(spec: &SyntheticSpec) -> Result<(), DatasetError> {
    if spec.num_requests == 0 {
        return Err(DatasetError::spec(
            "--num-requests must be at least 1 (got 0)",
        ));
    }
    if spec.num_requests > MAX_REQUESTS {
        return Err(DatasetError::spec(format!(
            "--num-requests {} is above the limit of {MAX_REQUESTS}",
            spec.num_requests
        )));
    }
    match spec.dist {
        LengthDist::Normal {
            input_mean,
            input_stdev,
            output_mean,
            output_stdev,
        } => {
            if spec.seed > u32::MAX as u64 {
                return Err(DatasetError::spec(format!(
                    "--random-seed {} is out of range for token-norm-dist: numpy's legacy \
                     np.random.seed accepts 0..=4294967295",
                    spec.seed
                )));
            }
            for (name, value) in [
                ("--input-mean", input_mean),
                ("--input-stdev", input_stdev),
                ("--output-mean", output_mean),
                ("--output-stdev", output_stdev),
            ] {
                if value > MAX_REQUEST_TOKENS {
                    return Err(DatasetError::spec(format!(
                        "{name} {value} is above the per-request limit of {MAX_REQUEST_TOKENS} tokens"
                    )));
                }
            }
        }
        LengthDist::Uniform {
            input_min,
            input_max,
            output_min,
            output_max,
        } => {
            check_bounds("input", input_min, input_max)?;
            check_bounds("output", output_min, output_max)?;
        }
    }
    if let TaskIds::Random { min, max } = spec.task_ids
        && min > max
    {
        return Err(DatasetError::spec(format!(
            "--rand-task-id range is reversed: MIN {min} is greater than MAX {max}"
        )));
    }
    Ok(())
}

fn check_bounds(which: &str, min: u64, max: u64) -> Result<(), DatasetError> {
    if min == 0 {
        return Err(DatasetError::spec(format!(
            "--{which}-min must be at least 1 (got 0): a request needs at least one token"
        )));
    }
    if min > max {
        return Err(DatasetError::spec(format!(
            "--{which}-min {min} is greater than --{which}-max {max}"
        )));
    }
    if max > MAX_REQUEST_TOKENS {
        return Err(DatasetError::spec(format!(
            "--{which}-max {max} is above the per-request limit of {MAX_REQUEST_TOKENS} tokens"
        )));
    }
    Ok(())
}

/// Checks a vocabulary: ids must have somewhere to come from, and EOS avoidance must terminate
/// (upstream loops forever when the only id is the EOS id).
pub fn validate_vocab(vocab: &Vocab) -> Result<(), DatasetError> {
    if vocab.vocab_size == 0 {
        return Err(DatasetError::spec(
            "the vocabulary size is 0: there are no token ids to draw",
        ));
    }
    if vocab.vocab_size > MAX_VOCAB {
        return Err(DatasetError::spec(format!(
            "the vocabulary size {} is above the limit of {MAX_VOCAB}",
            vocab.vocab_size
        )));
    }
    if vocab.vocab_size == 1 && vocab.eos_ids.iter().all(|&e| e < 1) && !vocab.eos_ids.is_empty() {
        return Err(DatasetError::spec(
            "the vocabulary has one token and it is the EOS token, so EOS avoidance cannot \
             succeed (upstream loops forever); use --no-eos-avoidance",
        ));
    }
    Ok(())
}
