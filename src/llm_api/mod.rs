//! Extra LLM API YAML from data-driven model rules.
