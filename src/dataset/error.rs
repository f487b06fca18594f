//! The one error type of the dataset module.

use std::path::PathBuf;

/// Everything that can go wrong while preparing a dataset. Messages name the file, the line and
/// what was expected, so a user can fix the input without reading the code.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A parameter of the request (counts, bounds, seed, vocabulary) is out of range.
    #[error("invalid dataset parameters: {0}")]
    InvalidSpec(String),

    /// The tokenizer could not be found or read.
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    /// The tokenizer has no EOS token, so EOS avoidance (what upstream does) is impossible.
    #[error(
        "tokenizer {path}: no eos_token in tokenizer_config.json or special_tokens_map.json; \
         upstream prepare_dataset.py crashes on such a tokenizer. Give the EOS id with --eos-id N, \
         or pass --no-eos-avoidance to sample ids without avoiding any EOS token"
    )]
    NoEosToken { path: PathBuf },

    /// A line of a prompts file is not what was expected.
    #[error("{path}:{line}: {message}")]
    PromptLine {
        path: PathBuf,
        line: u64,
        message: String,
    },

    /// Reading an input file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Writing the dataset failed (the output file, if any, was not created).
    #[error("cannot write {target}: {source}")]
    Write {
        target: String,
        source: std::io::Error,
    },

    /// Writing the output file whole failed (the previous file, if any, is left as it was).
    #[error(transparent)]
    Fs(#[from] crate::fsutil::FsError),

    /// The job would need more memory than can be had.
    #[error("out of memory: {0}")]
    OutOfMemory(String),
}

impl DatasetError {
    pub(crate) fn spec(message: impl Into<String>) -> Self {
        DatasetError::InvalidSpec(message.into())
    }

    pub(crate) fn tokenizer(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DatasetError::Tokenizer {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn write(target: impl Into<String>, source: std::io::Error) -> Self {
        DatasetError::Write {
            target: target.into(),
            source,
        }
    }
}
