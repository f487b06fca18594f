//! What stops a sweep. A failed *repetition* is not one of these: it is counted in its test.

use crate::serve::ServeError;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Options that cannot work (exit status 2 from the CLI).
    #[error("{0}")]
    Usage(String),
    /// A test needs a longer sequence than the server takes (exit status 2: the options ask
    /// for something this server cannot do).
    #[error(
        "test {test} needs {needed} tokens in one sequence ({prompt} prompt + {generated} generated), \
         but the server takes at most {limit} ({said_by}): shorten the test or give the server \
         a longer context"
    )]
    Context {
        test: String,
        needed: u64,
        prompt: u64,
        generated: u64,
        limit: u64,
        said_by: String,
    },
    /// The server could not be reached or used before the first test.
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("cannot write {path}: {message}")]
    Write {
        path: std::path::PathBuf,
        message: String,
    },
}

impl SweepError {
    /// Bad input from the user: the CLI exits with status 2.
    pub fn is_usage(&self) -> bool {
        match self {
            SweepError::Usage(_) | SweepError::Context { .. } => true,
            SweepError::Serve(e) => e.is_usage(),
            SweepError::Write { .. } => false,
        }
    }
}
