//! What stops an A/B run. A failed *request* is not one of these: it is counted in its side.

use crate::serve::ServeError;

#[derive(Debug, thiserror::Error)]
pub enum AbError {
    /// Options that cannot work (exit status 2 from the CLI).
    #[error("{0}")]
    Usage(String),
    /// A side's server could not be reached or used before the first block.
    #[error("{side}: {source}")]
    Serve { side: String, source: ServeError },
    #[error("cannot write {path}: {message}")]
    Write {
        path: std::path::PathBuf,
        message: String,
    },
}

impl AbError {
    /// Bad input from the user: the CLI exits with status 2.
    pub fn is_usage(&self) -> bool {
        match self {
            AbError::Usage(_) => true,
            AbError::Serve { source, .. } => source.is_usage(),
            AbError::Write { .. } => false,
        }
    }
}
