//! `perfgate dataset`: a drop-in for `python benchmarks/cpp/prepare_dataset.py`.
//!
//! Same root options and subcommands, same defaults (seed 420, `preprocessed_dataset.json`), and
//! byte-identical output for the same tokenizer and seed. Differences, all on inputs upstream
//! mishandles: a tokenizer without an EOS token is a clear error (upstream: TypeError) unless
//! `--no-eos-avoidance` or `--eos-id` is given; impossible counts and bounds are rejected up front;
//! the output file is written atomically and its directory created even when it has no parent
//! component (upstream's `os.makedirs("")` raises).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::dataset::prompts::{PromptsSpec, write_prompts, write_prompts_file};
use crate::dataset::records::OutputFormat;
use crate::dataset::spec::{LengthDist, SyntheticSpec, TaskIds};
use crate::dataset::synthetic::{DatasetSummary, write_synthetic_as, write_synthetic_file_as};
use crate::dataset::tokenizer::{
    EosPolicy, TokenizerFiles, Vocab, load_tokenizer, tokenizer_class,
};

#[derive(Debug, Clone, clap::Args)]
#[command(about = "Generate a trtllm-bench dataset (a bit-exact port of prepare_dataset.py)")]
pub struct DatasetArgs {
    /// Hugging Face tokenizer: a directory with tokenizer.json (+ tokenizer_config.json /
    /// special_tokens_map.json for the EOS token), or a tokenizer.json file. Read offline.
    #[arg(long, value_name = "DIR|FILE", conflicts_with = "vocab_size")]
    pub tokenizer: Option<PathBuf>,

    /// Instead of --tokenizer: draw ids from 0..N (synthetic subcommands only).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub vocab_size: Option<i64>,

    /// EOS token id(s) to keep out of the prompts (repeat for a multi-token EOS); with
    /// --tokenizer it overrides the tokenizer's own EOS token.
    #[arg(long = "eos-id", value_name = "N")]
    pub eos_id: Vec<u32>,

    /// Do not avoid any EOS token: the documented way to use a tokenizer that has none.
    #[arg(long, conflicts_with = "eos_id")]
    pub no_eos_avoidance: bool,

    /// Output file (ignored with --stdout).
    #[arg(long, value_name = "FILE", default_value = "preprocessed_dataset.json")]
    pub output: PathBuf,

    /// Print JSONL to stdout, one request per line (what trtllm-bench reads).
    #[arg(long)]
    pub stdout: bool,

    /// Output layout. Default: jsonl with --stdout, else upstream's workload JSON document.
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,

    /// Seed of every random draw.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 420,
        allow_negative_numbers = true
    )]
    pub random_seed: i64,

    /// LoRA task id of every request (-1: none).
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub task_id: i64,

    /// Random LoRA task id per request, uniform in MIN..=MAX.
    #[arg(long, num_args = 2, value_names = ["MIN", "MAX"], allow_negative_numbers = true)]
    pub rand_task_id: Option<Vec<i64>>,

    /// Directory of the LoRA adapters (`<dir>/<task id>`); task ids need it to take effect.
    #[arg(long, value_name = "DIR")]
    pub lora_dir: Option<String>,

    /// Accepted for compatibility; only errors and warnings are printed.
    #[arg(long, value_parser = ["info", "debug"], default_value = "info")]
    pub log_level: String,

    /// Accepted for compatibility; no tokenizer code is ever run.
    #[arg(long)]
    pub trust_remote_code: bool,

    #[command(subcommand)]
    pub command: DatasetCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum DatasetCommand {
    /// Random token ids with normally distributed lengths.
    TokenNormDist(NormArgs),
    /// Random token ids with uniformly distributed lengths (inclusive bounds).
    TokenUnifDist(UnifArgs),
    /// Tokenize real prompts from a local JSONL file.
    Prompts(PromptArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct NormArgs {
    /// Number of requests to generate.
    #[arg(long, allow_negative_numbers = true)]
    pub num_requests: i64,
    /// Mean input length (tokens).
    #[arg(long, allow_negative_numbers = true)]
    pub input_mean: i64,
    /// Standard deviation of the input length.
    #[arg(long, allow_negative_numbers = true)]
    pub input_stdev: i64,
    /// Mean output length (tokens).
    #[arg(long, allow_negative_numbers = true)]
    pub output_mean: i64,
    /// Standard deviation of the output length.
    #[arg(long, allow_negative_numbers = true)]
    pub output_stdev: i64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct UnifArgs {
    /// Number of requests to generate.
    #[arg(long, allow_negative_numbers = true)]
    pub num_requests: i64,
    /// Smallest input length (inclusive).
    #[arg(long, allow_negative_numbers = true)]
    pub input_min: i64,
    /// Largest input length (inclusive).
    #[arg(long, allow_negative_numbers = true)]
    pub input_max: i64,
    /// Smallest output length (inclusive).
    #[arg(long, allow_negative_numbers = true)]
    pub output_min: i64,
    /// Largest output length (inclusive).
    #[arg(long, allow_negative_numbers = true)]
    pub output_max: i64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PromptArgs {
    /// JSONL file, one JSON object per line.
    #[arg(long, value_name = "FILE.jsonl")]
    pub input: PathBuf,
    /// Key of the prompt text.
    #[arg(long, default_value = "input")]
    pub input_key: String,
    /// Key of the reference output, whose token count becomes the output length.
    #[arg(long, default_value = "output")]
    pub output_key: String,
    /// Draw output lengths from a normal distribution instead: MEAN,STDEV.
    #[arg(long, value_name = "MEAN,STDEV", value_parser = parse_len_dist)]
    pub output_len_dist: Option<(u64, u64)>,
    /// Use at most this many prompts.
    #[arg(long, allow_negative_numbers = true)]
    pub num_requests: Option<i64>,
    /// Skip prompts longer than this many tokens.
    #[arg(long, allow_negative_numbers = true)]
    pub max_input_len: Option<i64>,
}

fn parse_len_dist(s: &str) -> Result<(u64, u64), String> {
    let bad =
        || format!("expected MEAN,STDEV as two non-negative integers (e.g. 128,16), got {s:?}");
    let (mean, stdev) = s.split_once(',').ok_or_else(bad)?;
    Ok((
        mean.trim().parse().map_err(|_| bad())?,
        stdev.trim().parse().map_err(|_| bad())?,
    ))
}

fn non_negative(flag: &str, v: i64) -> anyhow::Result<u64> {
    u64::try_from(v).map_err(|_| anyhow::anyhow!("{flag} must not be negative (got {v})"))
}

fn positive(flag: &str, v: i64) -> anyhow::Result<u64> {
    if v < 1 {
        bail!("{flag} must be at least 1 (got {v})");
    }
    Ok(v as u64)
}

impl DatasetArgs {
    fn seed(&self) -> anyhow::Result<u64> {
        non_negative("--random-seed", self.random_seed)
    }

    fn task_ids(&self) -> anyhow::Result<TaskIds> {
        match self.rand_task_id.as_deref() {
            Some(&[min, max]) => {
                if min > max {
                    bail!("--rand-task-id range is reversed: MIN {min} is greater than MAX {max}");
                }
                Ok(TaskIds::Random { min, max })
            }
            Some(other) => bail!("--rand-task-id takes MIN MAX, got {} values", other.len()),
            None if self.task_id == -1 => Ok(TaskIds::None),
            None => Ok(TaskIds::Fixed(self.task_id)),
        }
    }

    fn format(&self) -> OutputFormat {
        self.format.unwrap_or(if self.stdout {
            OutputFormat::Jsonl
        } else {
            OutputFormat::Workload
        })
    }

    /// The vocabulary of the synthetic subcommands, from a tokenizer or given directly.
    pub fn vocab(&self) -> anyhow::Result<Vocab> {
        if let Some(path) = &self.tokenizer {
            let policy = if self.no_eos_avoidance || !self.eos_id.is_empty() {
                EosPolicy::Ignore
            } else {
                EosPolicy::Required
            };
            let mut vocab = Vocab::from_tokenizer_with(path, policy)?;
            if !self.no_eos_avoidance {
                vocab.eos_ids.extend(&self.eos_id);
            }
            return Ok(vocab);
        }
        let Some(size) = self.vocab_size else {
            bail!("give a tokenizer with --tokenizer DIR|FILE, or --vocab-size N with --eos-id N");
        };
        let size = u32::try_from(size)
            .map_err(|_| anyhow::anyhow!("--vocab-size must be in 1..=4294967295 (got {size})"))?;
        if size == 0 {
            bail!("--vocab-size must be at least 1 (got 0)");
        }
        if self.eos_id.is_empty() && !self.no_eos_avoidance {
            bail!("--vocab-size needs the EOS id as well: --eos-id N (or --no-eos-avoidance)");
        }
        let eos = if self.no_eos_avoidance {
            Vec::new()
        } else {
            self.eos_id.clone()
        };
        Ok(Vocab::new(size, eos))
    }

    /// The synthetic spec of a `token-norm-dist` / `token-unif-dist` invocation.
    pub fn synthetic_spec(&self) -> anyhow::Result<Option<SyntheticSpec>> {
        let (num_requests, dist) = match &self.command {
            DatasetCommand::TokenNormDist(a) => (
                positive("--num-requests", a.num_requests)?,
                LengthDist::Normal {
                    input_mean: non_negative("--input-mean", a.input_mean)?,
                    input_stdev: non_negative("--input-stdev", a.input_stdev)?,
                    output_mean: non_negative("--output-mean", a.output_mean)?,
                    output_stdev: non_negative("--output-stdev", a.output_stdev)?,
                },
            ),
            DatasetCommand::TokenUnifDist(a) => (
                positive("--num-requests", a.num_requests)?,
                LengthDist::Uniform {
                    input_min: positive("--input-min", a.input_min)?,
                    input_max: positive("--input-max", a.input_max)?,
                    output_min: positive("--output-min", a.output_min)?,
                    output_max: positive("--output-max", a.output_max)?,
                },
            ),
            DatasetCommand::Prompts(_) => return Ok(None),
        };
        Ok(Some(SyntheticSpec {
            num_requests,
            dist,
            seed: self.seed()?,
            task_ids: self.task_ids()?,
            lora_dir: self.lora_dir.clone(),
        }))
    }

    fn prompts_spec(&self, a: &PromptArgs) -> anyhow::Result<PromptsSpec> {
        Ok(PromptsSpec {
            input: a.input.clone(),
            input_key: a.input_key.clone(),
            output_key: a.output_key.clone(),
            output_len_dist: a.output_len_dist,
            num_requests: a
                .num_requests
                .map(|n| positive("--num-requests", n))
                .transpose()?,
            max_input_len: a
                .max_input_len
                .map(|n| positive("--max-input-len", n))
                .transpose()?,
            seed: self.seed()?,
            task_ids: self.task_ids()?,
            lora_dir: self.lora_dir.clone(),
        })
    }
}

/// Runs `perfgate dataset` with the process's stdout and stderr.
pub fn run_cli(args: DatasetArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut err = std::io::stderr();
    run_cli_with(args, &mut out, &mut err).map(|_| ())
}

/// [`run_cli`] with explicit streams: `--stdout` output goes to `stdout`, warnings and the
/// summary line to `stderr`.
pub fn run_cli_with(
    args: DatasetArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> anyhow::Result<DatasetSummary> {
    let format = args.format();
    let summary = match &args.command {
        DatasetCommand::Prompts(p) => {
            let spec = args.prompts_spec(p)?;
            let Some(tok_path) = &args.tokenizer else {
                bail!("the prompts subcommand needs --tokenizer DIR|FILE to tokenize the text");
            };
            let tokenizer = load_tokenizer(tok_path)?;
            let class = tokenizer_class(&TokenizerFiles::locate(tok_path)?);
            if args.stdout {
                write_prompts(&spec, &tokenizer, &class, format, stdout)?
            } else {
                write_prompts_file(&spec, &tokenizer, &class, format, &args.output)
                    .with_context(|| format!("writing {}", args.output.display()))?
            }
        }
        _ => {
            let spec = args
                .synthetic_spec()?
                .context("not a synthetic subcommand")?;
            let vocab = args.vocab()?;
            if args.stdout {
                write_synthetic_as(&spec, &vocab, format, stdout)?
            } else {
                write_synthetic_file_as(&spec, &vocab, format, &args.output)
                    .with_context(|| format!("writing {}", args.output.display()))?
            }
        }
    };
    for warning in &summary.warnings {
        // Best effort: a closed stderr must not turn a finished dataset into a failure.
        let _ = writeln!(stderr, "warning: {warning}");
    }
    if !args.stdout {
        let _ = writeln!(
            stderr,
            "wrote {} requests ({} input tokens, {:.1} MB) to {}",
            summary.num_requests,
            summary.total_input_tokens,
            summary.bytes_written as f64 / 1e6,
            args.output.display()
        );
    }
    Ok(summary)
}

crate::cli::value_enum!(OutputFormat {
    Jsonl => "jsonl": "One compact JSON object per line (what trtllm-bench reads)",
    Workload => "workload": "{\"metadata\": {...}, \"samples\": [...]} (what gptManagerBenchmark reads)",
});
