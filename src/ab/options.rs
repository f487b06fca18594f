//! What an A/B run is told: plain options (the CLI and the A/B backend build them).

use std::path::PathBuf;
use std::time::Duration;

use crate::serve::{DatasetSource, Target};
use crate::telemetry::PowerOptions;

/// One side: its name in the outputs and its server.
#[derive(Debug, Clone)]
pub struct Side {
    /// `target`, `speculative`, ...: names the side in the summary and its companion file
    /// (`benchmark_results_<label>.json`); letters, digits, `_`, `-` and `.`.
    pub label: String,
    pub target: Target,
}

/// How many requests each side gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AbMode {
    /// A fixed prompt set: `num_prompts` prompts, each sent once to each side, `batch_size`
    /// in flight.
    Batch { num_prompts: u64 },
    /// `rate` requests per second for `duration` per side (Poisson arrivals), at most
    /// `batch_size` in flight.
    Time { rate: f64, duration: Duration },
}

/// GPU telemetry while each side runs.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub power: PowerOptions,
    /// GPUs sampled (empty: all).
    pub gpus: Vec<u32>,
    pub interval: Duration,
}

#[derive(Debug, Clone)]
pub struct AbOptions {
    pub a: Side,
    pub b: Side,
    /// The prompt set (synthetic or a file); both sides get exactly the same prompts.
    pub prompts: DatasetSource,
    pub tokenizer: Option<PathBuf>,
    pub mode: AbMode,
    /// Requests in flight per side.
    pub batch_size: u32,
    /// Blocks per side: the prompts (or the time) are split into this many, sent A B, B A,
    /// A B, ... so drift hits both sides alike; the speed-up's interval comes from the pairs.
    pub blocks: u32,
    /// Unmeasured requests per side before the first block.
    pub warmup: u32,
    /// Force every output length (ignore_eos or the server's equivalent).
    pub ignore_eos: bool,
    pub monitor: Option<Monitor>,
    pub output_dir: PathBuf,
    pub seed: u64,
    /// Of the speed-up's interval (0.95: a 95% interval).
    pub confidence: f64,
    /// A progress line per block on standard error.
    pub progress: bool,
}
