//! perfgate: a pytest-style release perf-gating harness for LLM inference.
//!
//! Data flows one way (DESIGN.md): test lists → [`testlist`] → [`config`] (typed names) →
//! [`collect`] → a [`backend`] plans each name into [`plan`] steps → [`execute`] runs them
//! through the [`runner`] (with [`telemetry`]) and has the backend read them into
//! [`record`]s → the [`gate`] gives verdicts → the [`results`] sinks and the [`history`] keep
//! them → [`dashboard`], [`compare`], export. [`session`] is a run of all of it; the harness
//! (`tests/perf.rs`) and the CLI (`src/main.rs`) are thin shells in [`cli`].

pub mod ab;
pub mod accuracy;
pub mod backend;
pub mod cli;
pub mod collect;
pub mod compare;
pub mod config;
pub mod dashboard;
pub mod dataset;
pub mod devbench;
pub mod execute;
pub mod fsutil;
pub mod gate;
pub mod history;

pub mod lint;
pub mod llm_api;
pub mod models;
pub mod perf_sanity;
pub mod physics;
pub mod plan;
pub mod provenance;
pub mod record;
pub mod report;
pub mod results;
pub mod runner;
pub mod serve;
pub mod session;
pub mod shard;
pub mod slurm;
pub mod sweep;
pub mod telemetry;
pub mod testlist;
pub mod textutil;

/// The harness behind `cargo test -- --test-list FILE` (`tests/perf.rs`).
pub use cli::harness;
