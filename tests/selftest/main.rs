//! The project's own tests: `cargo test --lib --test selftest`.
mod cli;
mod collect;
mod commands;
mod conformance;
mod dataset;
mod e2e;
mod llm_api;
mod names;
mod report;
