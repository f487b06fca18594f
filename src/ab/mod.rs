//! `perfgate ab`: the same prompts through two servers (a target model alone, the target with
//! a draft model, or any two configurations), interleaved in blocks so drift hits both alike,
//! compared on latency, throughput, tokens, speculative decoding's acceptance and energy, with
//! the speed-up's confidence interval from the paired blocks. See docs/guide/sweep-ab.md.
//!
//! Every request goes through serve-bench's client ([`crate::serve::run`]); the telemetry is
//! [`crate::telemetry`]'s; the interval uses the gate's Student-t quantile and the per-request
//! latency comparison `perfgate compare`'s Welch test ([`crate::gate`]).
//!
//! Library entry point: [`run`] with [`AbOptions`] and an [`AbSink`] ([`AbWriter`] writes
//! the files); [`output::console`] is the console summary.

pub mod error;
pub mod figures;
pub mod options;
pub mod output;
pub mod run;
pub mod stats;

pub use error::AbError;
pub use figures::{Acceptance, BlockRun, GpuFigures, SideFigures};
pub use options::{AbMode, AbOptions, Monitor, Side};
pub use output::AbWriter;
pub use run::{AbReport, AbSink, Comparison, PromptSet, run};
pub use stats::{Ratio, paired_ratio};
