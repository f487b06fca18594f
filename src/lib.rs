//! perfgate: a pytest-style release perf-gating harness for LLM inference.
//!
//! Data flows one way: test lists → [`testlist`] → [`config::PerfConfig`] → [`plan`] → steps,
//! which use [`dataset`] and [`llm_api`]; the harness (`tests/perf.rs`) and the CLI
//! (`src/main.rs`) are thin shells over this library.

pub mod bench;
pub mod compare;
pub mod config;
pub mod dashboard;
pub mod dataset;
pub mod execute;
pub mod gate;
pub mod harness;
pub mod history;
pub mod lint;
pub mod llm_api;
pub mod merge;
pub mod models;
pub mod plan;
pub mod provenance;
pub mod report;
pub mod results;
pub mod runner;
pub mod serve;
pub mod shard;
pub mod slurm;
pub mod telemetry;
pub mod testlist;
pub mod textutil;
