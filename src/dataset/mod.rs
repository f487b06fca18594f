//! Synthetic and real-prompt datasets: a bit-exact port of TensorRT-LLM's
//! `benchmarks/cpp/prepare_dataset.py` (`token-norm-dist`, `token-unif-dist`, LoRA task ids),
//! plus a `prompts` mode that tokenizes a local JSONL file.
//!
//! Bit-exactness rests on re-implementing the three generators upstream uses — numpy's legacy
//! MT19937 `RandomState`, numpy's SeedSequence + PCG64 `Generator`, and CPython's `random` —
//! and on writing JSON with Python's exact separators and escapes.

mod atomic;
pub mod cache;
pub mod cli;
pub mod cpython;
mod error;
pub mod fmt;
pub mod lengths;
pub mod mt19937;
pub mod numpy;
mod pipeline;
mod progress;
pub mod prompts;
pub mod records;
mod spec;
mod synthetic;
pub mod tokenizer;

pub use cache::{VocabIdentity, cache_key};
pub use error::DatasetError;
pub use records::OutputFormat;
pub use spec::{
    LengthDist, MAX_REQUEST_TOKENS, MAX_REQUESTS, MAX_VOCAB, SyntheticSpec, TaskIds, validate,
    validate_vocab,
};
pub use synthetic::{
    DatasetSummary, TokenSampler, write_synthetic, write_synthetic_as, write_synthetic_file,
    write_synthetic_file_as,
};
pub use tokenizer::{EosPolicy, Vocab};
