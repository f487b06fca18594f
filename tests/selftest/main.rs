//! The project's own tests: `cargo test --lib --test selftest`.
mod dataset;
mod llm_api;
