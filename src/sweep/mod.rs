//! `perfgate sweep`: a matrix of prompt and generation lengths, each test repeated and timed
//! to the nanosecond, with power, temperature and clocks sampled during every repetition, in
//! the layout users of llama.cpp's `llama-bench` and its power variants already parse. See
//! docs/guide/sweep-ab.md.
//!
//! Every request goes through serve-bench's client ([`crate::serve::run`]): one request at a
//! time, random token-id prompts of the exact length from the model's tokenizer, the output
//! length forced. The telemetry is [`crate::telemetry`]'s, whatever the power source.
//!
//! Library entry point: [`run`] with [`SweepOptions`] and a [`TestSink`] ([`SweepWriter`]
//! writes the files); [`plan_tests`] makes the tests of `-p`, `-n` and `-pg`.

pub mod error;
pub mod options;
pub mod output;
pub mod result;
pub mod run;
pub mod spec;
pub mod svg;

pub use error::SweepError;
pub use options::{Cooldown, StdoutFormat, SweepOptions};
pub use output::SweepWriter;
pub use result::{Repetition, TestOutcome, TestSummary};
pub use run::{SweepReport, TestSink, run};
pub use spec::{SweepTest, TestType, parse_length, parse_pg, plan_tests};
