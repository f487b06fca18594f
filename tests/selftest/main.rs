//! The project's own tests: `cargo test --lib --test selftest`.
mod cli;
mod collect;
mod commands;
mod conformance;
mod dataset;
mod double;
mod e2e;
mod gate_stats;
mod history;
mod junit_xsd;
mod llm_api;
mod names;
mod physics;
mod report;
mod results;
mod runner;
