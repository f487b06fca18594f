//! The plain data every later stage shares, at the bottom of the module graph: the metric
//! table ([`metric`]), what a run measured ([`CaseResult`] and its [`Measurement`]s), the
//! verdicts the gate gives them ([`VerdictRecord`]), and what a case's plan says a correct
//! report must show ([`Expectations`]). Nothing here runs, parses or decides anything.

pub mod metric;

mod case;
mod verdict;

pub use case::{CaseId, CaseResult, Measurement, State, Stats, rfc3339, upstream_timestamp};
pub use verdict::{GATE_FILE, Observation, Verdict, VerdictRecord};

use serde::Serialize;

/// What the dataset of a measure step makes every correct report show; the plan computes it,
/// the gate's validity checks hold each repetition against it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Expectations {
    pub num_requests: Option<u32>,
    /// Exact mean lengths, when every request has the same lengths (stdev 0).
    pub input_len: Option<u32>,
    pub output_len: Option<u32>,
    /// The most requests a serving client keeps in flight (its concurrency limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
}
