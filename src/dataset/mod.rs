//! Synthetic and real-prompt datasets: a bit-exact port of TensorRT-LLM's
//! `benchmarks/cpp/prepare_dataset.py` (`token-norm-dist`, `token-unif-dist`, LoRA task ids),
//! plus a `prompts` mode that tokenizes a local JSONL file.
//!
//! Bit-exactness rests on re-implementing the three generators upstream uses — numpy's legacy
//! MT19937 `RandomState`, numpy's SeedSequence + PCG64 `Generator`, and CPython's `random` —
//! and on writing JSON with Python's exact separators and escapes.
//!
//! Entry points: [`Vocab::from_tokenizer`] (or [`Vocab::new`]), a [`SyntheticSpec`], then
//! [`write_synthetic`] (JSONL, as upstream's `--stdout`), [`write_synthetic_as`] (either layout),
//! [`write_synthetic_file`] / [`write_synthetic_file_as`] (atomic), [`cache_key`] for reuse;
//! [`prompts`] for real prompts; [`cli`] for the `perfgate dataset` command.
//!
//! Where we deliberately differ from upstream (only on inputs upstream mishandles):
//! - a tokenizer without an EOS token is [`DatasetError::NoEosToken`] (upstream: TypeError);
//!   `--no-eos-avoidance` or `--eos-id` is the documented way through;
//! - zero or negative counts, `min > max`, a reversed task-id range, vocabulary 0 and lengths
//!   above [`MAX_REQUEST_TOKENS`] are rejected before anything is drawn or written;
//! - a vocabulary of one token that is the EOS token is an error (upstream loops forever);
//! - files are written atomically, and a bare file name works (upstream's `os.makedirs("")`
//!   raises for it);
//! - the `prompts` subcommand reads a local JSONL file instead of a Hugging Face dataset, seeds
//!   its random task ids (upstream's real-data path draws them unseeded), and adds
//!   `lora_request` like the synthetic commands do.

pub mod cache;
pub mod cpython;
mod error;
pub mod fmt;
mod for_plan;
pub mod lengths;
pub mod mt19937;
pub mod numpy;
mod pipeline;
mod progress;
pub mod prompts;
pub mod records;
mod sampler;
pub mod spec;
pub mod synthetic;
pub mod tokenizer;

pub use cache::{VocabIdentity, cache_key};
pub use error::DatasetError;
pub use for_plan::{DatasetRequest, PlannedDataset, default_cache_dir, generate_for_plan};
pub use records::OutputFormat;
pub use sampler::TokenSampler;
pub use spec::{
    LengthDist, MAX_REQUEST_TOKENS, MAX_REQUESTS, MAX_VOCAB, SyntheticSpec, TaskIds, validate,
    validate_vocab,
};
pub use synthetic::{
    DatasetSummary, write_synthetic, write_synthetic_as, write_synthetic_file,
    write_synthetic_file_as,
};
pub use tokenizer::{EosPolicy, Vocab};
