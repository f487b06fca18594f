//! `perfgate sweep`: the clap shell over [`crate::sweep::run`].
//!
//! Exit status: 0 when every repetition of every test finished; 1 when a repetition failed;
//! 3 when the server could not be reached or stopped answering (the finished tests are
//! written); 4 when the outputs could not be written; 2 for usage errors (no test, a bad
//! length, a test longer than the server's context); 128+N when stopped by signal N (130:
//! Ctrl-C, 143: SIGTERM; the finished tests, and the finished repetitions of the test it
//! stopped, are written first).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::exit;
use crate::serve::options::{Endpoint, ServerKind, Target};
use crate::sweep::{Cooldown, StdoutFormat, SweepError, SweepOptions, SweepWriter};
use crate::telemetry::{PowerChoice, PowerOptions};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SweepEndpoint {
    /// OpenAI `/v1/completions` with token-id prompts: exact prompt lengths.
    Completions,
    /// OpenAI `/v1/chat/completions`: the ids are decoded to text, so the server's prompt
    /// length is close to, not exactly, the test's.
    Chat,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OutputFormat {
    /// A markdown table, a row per test as it finishes.
    Md,
    /// The summary array (trt_bench_summary's content) at the end.
    Json,
    /// One JSON object per test as it finishes.
    Jsonl,
    /// A header and a row per test as it finishes.
    Csv,
}

#[derive(Debug, clap::Args)]
#[command(
    about = "Prompt/generation length sweep with power, temperature and clocks (llama-bench's \
             tests)",
    long_about = "Prompt/generation length sweep of a server (llama-bench's tests: -p prompt \
        only, -n generation only, -pg P,G both), each test repeated (-r) after a warm-up and \
        timed to the nanosecond, with power, temperature and clocks sampled during every \
        repetition (--power). Per test: mean and standard deviation of the time and of tokens/s, \
        every sample, energy per token and mean power where a power source is read (the output \
        says what was not measured; nothing is made up). Requests go one at a time through \
        serve-bench's client, random token-id prompts of exactly the length asked from \
        --tokenizer, the output length forced.\n\n\
        Files in --output-dir, written as each test finishes: trt_bench_summary_<ts>.json, \
        trt_data_<type>_p<P>_g<G>_<ts>.json per test (time, power, temp, freq sections), \
        trt_bench_<ts>.jsonl, .csv and .md, trt_bench_tokens_per_s_<ts>.svg and \
        trt_power_<type>_p<P>_g<G>_<ts>.svg per test with a power reading. Standard output gets \
        the -o format.\n\n\
        Exit status: 0 every repetition finished; 1 a repetition failed; 3 the server could \
        not be reached or stopped answering (finished tests are written); 4 the outputs could \
        not be written; 2 usage (no test, a \
        bad length, a test longer than the server's context, named with the limit); 128+N \
        signal N, 130 Ctrl-C (finished tests and repetitions written first)."
)]
pub struct SweepArgs {
    /// Server base URL (http://host:port).
    #[arg(long, value_name = "URL")]
    pub url: String,
    #[arg(long, value_enum, default_value = "completions")]
    pub endpoint: SweepEndpoint,
    /// Model name the requests carry. Default: the first of /v1/models.
    #[arg(long, default_value = "")]
    pub model: String,
    /// auto|trtllm|vllm|sglang|llama.cpp|transformers|generic: how requests force the output
    /// length.
    #[arg(long, default_value = "auto")]
    pub server_kind: String,
    /// The model's tokenizer (directory or tokenizer.json): prompts are random token ids of
    /// its vocabulary.
    #[arg(long, value_name = "DIR")]
    pub tokenizer: PathBuf,

    /// Prompt-only tests: prompt lengths (space or comma separated; 0: none). One token is
    /// generated; tokens/s counts the prompt.
    #[arg(short = 'p', long = "n-prompt", value_name = "N", num_args = 1.., allow_negative_numbers = true)]
    pub prompt: Vec<String>,
    /// Generation-only tests: generated lengths (0: none), after a one-token prompt.
    #[arg(short = 'n', long = "n-gen", value_name = "N", num_args = 1.., allow_negative_numbers = true)]
    pub gen_lengths: Vec<String>,
    /// Combined tests: PROMPT,GENERATION pairs (`-pg` works too, as in llama-bench).
    #[arg(long = "pg", value_name = "P,G", num_args = 1.., allow_negative_numbers = true)]
    pub pg: Vec<String>,
    /// Measured repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    pub repetitions: u32,
    /// Unmeasured requests of the same shape before each test.
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Wait this long between tests (e.g. 30s, 2m).
    #[arg(long, value_name = "TIME", value_parser = super::serve_bench::parse_duration, conflicts_with = "cooldown_temp")]
    pub cooldown: Option<Duration>,
    /// Wait between tests until the hottest temperature sensor reads at most this (°C).
    #[arg(long, value_name = "CELSIUS")]
    pub cooldown_temp: Option<f64>,
    /// With --cooldown-temp: go on after this long anyway (and say so).
    #[arg(long, value_name = "TIME", default_value = "10m", value_parser = super::serve_bench::parse_duration)]
    pub cooldown_max: Duration,

    /// The power sources sampled: NVIDIA GPUs (nvml), Jetson INA3221 rails (jetson), RAPL
    /// counters (rapl), every one this machine has (auto), or none.
    #[arg(long, value_enum, default_value = "auto")]
    pub power: PowerChoice,
    /// Read sysfs under this directory instead of `/` (a tree copied off a device).
    #[arg(long, env = "PERFGATE_SYSFS_ROOT", value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// GPUs sampled, by NVML index (default: all).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub monitor_gpus: Vec<u32>,
    /// Telemetry sampling interval in milliseconds (at least 10).
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u64,

    /// What standard output gets (every file is written whatever this is).
    #[arg(short = 'o', long = "output", value_enum, default_value = "md")]
    pub output: OutputFormat,
    #[arg(long, value_name = "DIR", default_value = "trt_bench_results")]
    pub output_dir: PathBuf,
    /// Seeds the random prompts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A request not finished after this long fails.
    #[arg(long, value_name = "TIME", default_value = "600s", value_parser = super::serve_bench::parse_duration)]
    pub request_timeout: Duration,
    /// Wait for the server's health check this long (0: one probe).
    #[arg(long, value_name = "TIME", default_value = "0s", value_parser = super::serve_bench::parse_duration)]
    pub ready_timeout: Duration,
}

/// llama-bench spells the combined tests `-pg`, which is not a one-letter flag: after `sweep`,
/// a `-pg` word is read as `--pg`. Each of its values is passed attached (`--pg=512,128`), so
/// that a negative pair (`-pg -5,3`) reaches perfgate's own check instead of being taken for
/// an unknown flag (clap's `allow_hyphen_values` would also take the flags after the pairs,
/// `-r 3`, for pairs).
pub fn rewrite_args(args: Vec<OsString>) -> Vec<OsString> {
    let is_sweep = args.get(1).is_some_and(|a| a == "sweep");
    if !is_sweep {
        return args;
    }
    // A value of -pg: not a flag, or a negative number (as -p and -n take them).
    let is_value = |s: &str| {
        s.strip_prefix('-')
            .is_none_or(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    };
    let mut out = Vec::with_capacity(args.len());
    // After -pg: its words are values; `bare` is a -pg with none yet.
    let mut in_pg = false;
    let mut bare = false;
    for a in args {
        let text = a.to_str();
        if matches!(text, Some("-pg" | "--pg")) {
            if bare {
                out.push(OsString::from("--pg"));
            }
            (in_pg, bare) = (true, true);
            continue;
        }
        if let Some(rest) = text.and_then(|s| s.strip_prefix("-pg=").or(s.strip_prefix("--pg="))) {
            out.push(OsString::from(format!("--pg={rest}")));
            (in_pg, bare) = (true, false);
            continue;
        }
        if let Some(value) = text.filter(|s| in_pg && is_value(s)) {
            out.push(OsString::from(format!("--pg={value}")));
            bare = false;
            continue;
        }
        if bare {
            // clap says that -pg needs a value.
            out.push(OsString::from("--pg"));
        }
        (in_pg, bare) = (false, false);
        out.push(a);
    }
    if bare {
        out.push(OsString::from("--pg"));
    }
    out
}

fn lengths(values: &[String], flag: &str) -> Result<Vec<u64>, SweepError> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|v| !v.trim().is_empty())
        .map(|v| crate::sweep::parse_length(v, flag))
        .collect()
}

/// Builds the library's options (`Err`: a usage error).
pub fn options(a: &SweepArgs) -> Result<SweepOptions, SweepError> {
    let p = lengths(&a.prompt, "-p")?;
    let n = lengths(&a.gen_lengths, "-n")?;
    let pg =
        a.pg.iter()
            .map(|v| crate::sweep::parse_pg(v))
            .collect::<Result<Vec<_>, _>>()?;
    let tests = crate::sweep::plan_tests(&p, &n, &pg)?;
    let server_kind = ServerKind::parse(&a.server_kind).ok_or_else(|| {
        SweepError::Usage(format!(
            "--server-kind `{}`: expected auto, trtllm, vllm, sglang, llama.cpp, transformers \
             or generic",
            a.server_kind
        ))
    })?;
    let endpoint = match a.endpoint {
        SweepEndpoint::Completions => Endpoint::Completions,
        SweepEndpoint::Chat => Endpoint::Chat,
    };
    let cooldown = match (a.cooldown, a.cooldown_temp) {
        (Some(d), _) => Cooldown::Fixed(d),
        (None, Some(c)) => Cooldown::Temperature {
            max_c: c,
            max_wait: a.cooldown_max,
        },
        (None, None) => Cooldown::None,
    };
    let power = match &a.sysfs_root {
        Some(root) => PowerOptions::with_root(a.power, root),
        None => PowerOptions::new(a.power),
    };
    Ok(SweepOptions {
        target: Target {
            server_kind,
            request_timeout: a.request_timeout,
            ready_timeout: a.ready_timeout,
            ..Target::new(a.url.clone(), endpoint, a.model.clone())
        },
        tokenizer: a.tokenizer.clone(),
        tests,
        repetitions: a.repetitions,
        warmup: a.warmup,
        cooldown,
        power,
        gpus: a.monitor_gpus.clone(),
        interval: Duration::from_millis(a.interval_ms),
        output_dir: a.output_dir.clone(),
        seed: a.seed,
        stdout: match a.output {
            OutputFormat::Md => StdoutFormat::Md,
            OutputFormat::Json => StdoutFormat::Json,
            OutputFormat::Jsonl => StdoutFormat::Jsonl,
            OutputFormat::Csv => StdoutFormat::Csv,
        },
    })
}

/// The one table's status of an error (src/cli/exit.rs).
fn status(e: &SweepError) -> ExitCode {
    exit::of_error(e.is_usage(), matches!(e, SweepError::Write { .. }))
}

/// Runs the command; every outcome is an exit status (errors are printed here).
pub fn run_cli(a: SweepArgs) -> anyhow::Result<ExitCode> {
    let opts = match options(&a) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sweep: error: {e}");
            return Ok(status(&e));
        }
    };
    crate::runner::signals::install();
    let mut writer = match SweepWriter::create(&opts.output_dir, opts.stdout, true) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("sweep: error: {e}");
            return Ok(ExitCode::from(exit::INTERNAL));
        }
    };
    let report = match crate::sweep::run(&opts, &mut writer) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sweep: error: {e}");
            return Ok(status(&e));
        }
    };
    if let Err(e) = writer.finish() {
        eprintln!("sweep: error: {e}");
        return Ok(ExitCode::from(exit::INTERNAL));
    }
    eprintln!(
        "sweep: {} of {} test(s) of {} ({} server at {}) in {}",
        report.tests.len(),
        opts.tests.len(),
        report.facts.model,
        report.facts.kind.name(),
        opts.target.url,
        writer.summary_path().display()
    );
    if !report.power.measured.is_empty() {
        let names: Vec<&str> = report.power.measured.iter().map(|s| s.as_str()).collect();
        eprintln!("sweep: power sampled from {}", names.join(", "));
    }
    for t in &report.tests {
        if let Some(note) = &t.summary.energy_note {
            eprintln!("sweep: {}: {note}", t.summary.label());
            break;
        }
    }
    for n in &report.notes {
        eprintln!("sweep: {n}");
    }
    let failed: u32 = report.tests.iter().map(|t| t.summary.failed).sum();
    for t in report.tests.iter().filter(|t| t.summary.failed > 0) {
        let first = t
            .repetitions
            .iter()
            .find_map(|r| r.error.clone())
            .unwrap_or_default();
        eprintln!(
            "sweep: {}: {} of {} repetitions failed ({first})",
            t.summary.label(),
            t.summary.failed,
            t.summary.repetitions
        );
    }
    if let Some(why) = &report.stopped {
        eprintln!(
            "sweep: stopped: {why}; the {} finished test(s) are written",
            report.tests.len()
        );
    }
    if report.interrupted {
        // The table's 128+N for the signal seen (143 for SIGTERM), as serve-bench exits.
        return Ok(exit::code(exit::interrupted().unwrap_or(128 + 2)));
    }
    // A server that stopped answering left tests unmeasured; failed requests are a check
    // that failed.
    if report.stopped.is_some() {
        return Ok(ExitCode::from(exit::TEST_FAILED));
    }
    if failed > 0 {
        return Ok(ExitCode::from(exit::GATE_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_is_read_as_a_long_flag_after_sweep_only() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            rewrite_args(args(&[
                "perfgate", "sweep", "-pg", "512,128", "1024,256", "-r", "3", "-pg=8,8", "--pg",
                "-5,3", "-p", "-5", "--pg"
            ])),
            args(&[
                "perfgate",
                "sweep",
                "--pg=512,128",
                "--pg=1024,256",
                "-r",
                "3",
                "--pg=8,8",
                "--pg=-5,3",
                "-p",
                "-5",
                "--pg"
            ])
        );
        assert_eq!(
            rewrite_args(args(&["perfgate", "plan", "-pg"])),
            args(&["perfgate", "plan", "-pg"])
        );
    }
}
