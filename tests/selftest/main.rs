//! The project's own tests: `cargo test --lib --test selftest`.
mod conformance;
mod dataset;
mod llm_api;
mod names;
