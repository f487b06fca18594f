//! The tests of a sweep (the grammar lives in [`crate::config`], shared with the sweep test
//! names), with the command's errors.

pub use crate::config::sweep_tests::{
    MAX_LENGTH, MAX_REPETITIONS, MINIMAL_PROMPT, SweepTest, TestType,
};

use super::error::SweepError;

/// A length of `-p`/`-n`/`-pg` (see [`crate::config::sweep_tests::parse_length`]).
pub fn parse_length(text: &str, flag: &str) -> Result<u64, SweepError> {
    crate::config::sweep_tests::parse_length(text, flag).map_err(SweepError::Usage)
}

/// `P,G` of `-pg`.
pub fn parse_pg(text: &str) -> Result<(u64, u64), SweepError> {
    crate::config::sweep_tests::parse_pg(text).map_err(SweepError::Usage)
}

/// The tests of `-p`, `-n` and `-pg` in llama-bench's order.
pub fn plan_tests(p: &[u64], n: &[u64], pg: &[(u64, u64)]) -> Result<Vec<SweepTest>, SweepError> {
    crate::config::sweep_tests::plan_tests(p, n, pg).map_err(SweepError::Usage)
}
