//! Extra LLM API YAML from data-driven model rules.
//!
//! Reproduces upstream's `pytorch_model_config.get_model_yaml_config(label, lora_dirs)` and the
//! `yaml.dump` text it is written with, from `model_configs/llm_api_rules.yaml` instead of code.
//! See `README.md` beside this file for the schema and where we differ from upstream.
//!
//! ```no_run
//! use perfgate::llm_api::{Rules, RuleContext};
//! let rules = Rules::load("model_configs/llm_api_rules.yaml".as_ref())?;
//! let label = "llama_v3.1_8b-bench-pytorch-bfloat16-maxbs:512-maxnt:2048-input_output_len:128,128";
//! let mut ctx = RuleContext::for_label(label, "/models");
//! ctx.sm = Some(90);
//! let yaml = rules.config_for(label, &ctx).to_pyyaml();
//! # Ok::<(), perfgate::llm_api::LlmApiError>(())
//! ```

mod engine;
mod error;
mod label;
mod lint;
mod placeholders;
pub mod pyyaml;
mod rules;

pub use engine::{EffectiveConfig, RuleContext};
pub use error::LlmApiError;
pub use label::Backend;
pub use lint::{RuleWarning, RuleWarningKind};
pub use pyyaml::to_pyyaml;
pub use rules::{
    AutodeployRule, BaseRule, GpuRule, KvCacheDtypeRule, LoraRule, PatternRule, Rules,
};
