//! What a sweep is told: plain options (the CLI and the sweep backend build them).

use std::path::PathBuf;
use std::time::Duration;

use super::spec::SweepTest;
use crate::serve::Target;
use crate::telemetry::PowerOptions;

/// What happens between two tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cooldown {
    None,
    /// Wait this long.
    Fixed(Duration),
    /// Wait until the hottest temperature sensor reads at most this many °C, checking every
    /// sampling interval, for at most `max_wait` (then go on and say so).
    Temperature {
        max_c: f64,
        max_wait: Duration,
    },
}

/// What the command prints on standard output (every file is written whatever this is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdoutFormat {
    /// A markdown table, a row per test as it finishes (llama-bench's default).
    Md,
    /// The summary array at the end.
    Json,
    /// One JSON object per test as it finishes.
    Jsonl,
    /// A header, then a row per test as it finishes.
    Csv,
}

impl StdoutFormat {
    pub fn parse(s: &str) -> Option<StdoutFormat> {
        Some(match s {
            "md" => StdoutFormat::Md,
            "json" => StdoutFormat::Json,
            "jsonl" => StdoutFormat::Jsonl,
            "csv" => StdoutFormat::Csv,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The server (URL, endpoint, model, kind, timeouts). Streaming is used whatever it says,
    /// so each repetition also has its time to first token.
    pub target: Target,
    /// The model's tokenizer: prompts are random token ids of its vocabulary.
    pub tokenizer: PathBuf,
    pub tests: Vec<SweepTest>,
    /// Measured repetitions of each test.
    pub repetitions: u32,
    /// Unmeasured requests of the same shape before each test's repetitions.
    pub warmup: u32,
    pub cooldown: Cooldown,
    /// The power sources sampled during every test.
    pub power: PowerOptions,
    /// The GPUs sampled (empty: every GPU).
    pub gpus: Vec<u32>,
    /// Telemetry sampling interval.
    pub interval: Duration,
    pub output_dir: PathBuf,
    /// Seeds the random prompts (each test adds its index).
    pub seed: u64,
    pub stdout: StdoutFormat,
}
