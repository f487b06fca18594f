//! The errors that stop a serve-bench run before or between levels. A failed *request* is not
//! one of these: it is counted in its level ([`super::record::RequestError`]).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Options that cannot work together (exit status 2 from the CLI).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Dataset(String),
    #[error("{path}:{line}: {message}")]
    DatasetLine {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    /// The server could not be reached at all.
    #[error("cannot reach the server at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The server answered but its health check never passed.
    #[error("the server at {url} was not ready after {waited_s:.0} s: {last}")]
    NotReady {
        url: String,
        waited_s: f64,
        last: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the client runtime: {0}")]
    Runtime(std::io::Error),
}

impl ServeError {
    /// Bad input from the user (options, dataset, tokenizer): the CLI exits with status 2.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ServeError::Usage(_)
                | ServeError::Dataset(_)
                | ServeError::DatasetLine { .. }
                | ServeError::Read { .. }
                | ServeError::Tokenizer { .. }
        )
    }
}
