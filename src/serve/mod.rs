//! serve-bench: perfgate's load generator for OpenAI-compatible and Triton servers (the only
//! module that speaks HTTP or gRPC to a server). See docs/serve-bench.md.
//!
//! Library entry point: [`run`] with [`BenchOptions`]; it calls back with each finished
//! [`LevelReport`] (figures in [`LevelSummary`], requests as [`RequestRecord`]s) and returns a
//! [`RunReport`]. [`output`] writes the upstream-compatible text block, `--save-result` JSON
//! lines, per-request JSONL, the CSV summary and the sweep's Pareto SVG. [`cli`] is the thin
//! clap shell of `perfgate serve-bench`.

pub mod capacity;
pub mod dataset;
pub mod error;
pub mod event;
pub mod exchange;
pub mod facts;
pub mod grpc;
pub mod http;
pub mod load;
pub mod options;
pub mod output;
pub mod probe;
pub mod profile;
pub mod prom;
pub mod record;
pub mod schedule;
pub mod sse;
pub mod stats;
pub mod summary;
pub mod triton_proto;

pub use error::ServeError;
pub use facts::{ContextLimit, ServerFacts, server_facts};
pub use load::{LevelReport, RunInfo, RunReport, run};
pub use options::{
    Arrival, BenchOptions, DatasetSource, Endpoint, LoadLevel, LoadOptions, MetricOptions,
    OutputOptions, ServerKind, Slo, SloMetric, Stop, Target,
};
pub use record::{Derived, ErrorClass, RequestError, RequestRecord};
pub use summary::LevelSummary;
