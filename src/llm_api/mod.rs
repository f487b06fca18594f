//! Extra LLM API YAML from data-driven model rules.

pub mod pyyaml;

pub use pyyaml::to_pyyaml;
