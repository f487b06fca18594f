//! The A/B run: both servers probed, one prompt set loaded, a warm-up per side, then the
//! blocks in the order A B, B A, A B, ... (each block the same prompts for both sides, sent
//! through serve-bench's client), the telemetry sampled while each block runs. After every
//! block the caller gets the report so far (the files are rewritten then), so a server that
//! dies or Ctrl-C keeps every finished block.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::error::AbError;
use super::figures::{BlockRun, BlockWindow, SideFigures, SideInfo, gpu_figures, side_figures};
use super::options::{AbMode, AbOptions};
use super::stats::{Ratio, paired_ratio};
use crate::gate::significance::{Delta, Sample, compare};
use crate::record::metric::Direction;
use crate::serve::dataset::{Dataset, FileOptions};
use crate::serve::options::{
    Arrival, BenchOptions, DatasetSource, LoadLevel, LoadOptions, MetricOptions, OutputOptions,
    Stop,
};
use crate::serve::{ServerFacts, Target};
use crate::telemetry::{PowerSetup, Telemetry};

/// The most prompts a time-mode run prepares (it cycles through them).
const TIME_MODE_POOL: u64 = 100_000;

/// The prompt set both sides get.
#[derive(Debug, Clone, Serialize)]
pub struct PromptSet {
    /// `synthetic` or the file and its format.
    pub source: String,
    /// Prompts in the set (time mode cycles through them).
    pub count: usize,
    pub notes: Vec<String>,
}

/// The comparison of B with A.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// B's output tokens/s over A's, per pair of blocks (geometric mean and interval).
    pub speedup: Option<Ratio>,
    /// A's mean end-to-end latency over B's, per pair of blocks.
    pub latency_speedup: Option<Ratio>,
    /// Per-request end-to-end latencies, A against B: medians, change, Welch's t-test on the
    /// logarithms (the `perfgate compare` statistics).
    pub e2el: Option<Delta>,
}

/// Where a run stands (after each block, and at the end).
#[derive(Debug, Clone)]
pub struct AbReport {
    pub facts: [ServerFacts; 2],
    pub labels: [String; 2],
    pub urls: [String; 2],
    pub prompts: PromptSet,
    pub blocks: Vec<BlockRun>,
    pub figures: [SideFigures; 2],
    pub comparison: Comparison,
    pub power: Option<PowerSetup>,
    /// Why the run stopped before its last block.
    pub stopped: Option<String>,
    pub interrupted: bool,
    pub notes: Vec<String>,
    /// When the run started (RFC 3339, UTC).
    pub started: String,
}

/// Receives the report after every block.
pub trait AbSink {
    fn update(&mut self, report: &AbReport) -> Result<(), AbError>;
}

fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 64
        && l.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !l.starts_with('.')
}

fn validate(o: &AbOptions) -> Result<(), AbError> {
    let usage = |m: String| Err(AbError::Usage(m));
    for l in [&o.a.label, &o.b.label] {
        if !valid_label(l) {
            return usage(format!(
                "label `{l}`: letters, digits, `_`, `-` and `.` only (it names a file), at most \
                 64"
            ));
        }
    }
    if o.a.label == o.b.label {
        return usage(format!("both sides are labelled `{}`", o.a.label));
    }
    if o.batch_size == 0 {
        return usage("--batch-size must be at least 1".into());
    }
    if o.blocks == 0 {
        return usage("--blocks must be at least 1".into());
    }
    if !(o.confidence > 0.0 && o.confidence < 1.0) {
        return usage(format!(
            "--confidence {}: a fraction between 0 and 1 (0.95 for a 95% interval)",
            o.confidence
        ));
    }
    match o.mode {
        AbMode::Batch { num_prompts: 0 } => usage("--num-prompts must be at least 1".into()),
        AbMode::Time { rate, .. } if !(rate.is_finite() && rate > 0.0) => usage(format!(
            "--request-rate {rate}: a positive number of requests per second"
        )),
        AbMode::Time { duration, .. } if duration.is_zero() => {
            usage("--duration must be above zero".into())
        }
        _ => Ok(()),
    }
}

fn load_prompts(o: &AbOptions) -> Result<(Dataset, PromptSet), AbError> {
    let usage = |e: crate::serve::ServeError| AbError::Serve {
        side: "prompts".into(),
        source: e,
    };
    let wanted = match o.mode {
        AbMode::Batch { num_prompts } => num_prompts,
        AbMode::Time { rate, duration } => {
            ((rate * duration.as_secs_f64()).ceil() as u64).clamp(1, TIME_MODE_POOL)
        }
    };
    let tokenizer = o
        .tokenizer
        .as_ref()
        .map(|p| {
            crate::dataset::tokenizer::load_tokenizer(p).map_err(|e| {
                usage(crate::serve::ServeError::Tokenizer {
                    path: p.clone(),
                    message: e.to_string(),
                })
            })
        })
        .transpose()?;
    let (mut ds, source) = match &o.prompts {
        DatasetSource::Synthetic {
            isl,
            osl,
            isl_stdev,
            osl_stdev,
        } => {
            let path = o.tokenizer.as_ref().ok_or_else(|| {
                AbError::Usage(
                    "synthetic prompts (--isl/--osl) are token ids of the model's vocabulary: \
                     give --tokenizer DIR"
                        .into(),
                )
            })?;
            if *isl == 0 || *osl == 0 {
                return Err(AbError::Usage("--isl and --osl must be at least 1".into()));
            }
            let dist = crate::dataset::LengthDist::Normal {
                input_mean: *isl,
                input_stdev: *isl_stdev,
                output_mean: *osl,
                output_stdev: *osl_stdev,
            };
            (
                crate::serve::dataset::synthetic(path, &dist, wanted, o.seed).map_err(usage)?,
                "synthetic".to_string(),
            )
        }
        DatasetSource::File { path, osl } => {
            let ds = crate::serve::dataset::load_file(
                path,
                &FileOptions {
                    osl: *osl,
                    tokenizer: tokenizer.as_ref(),
                },
            )
            .map_err(usage)?;
            let source = format!("{} ({})", path.display(), ds.format);
            (ds, source)
        }
        DatasetSource::Prepared { label, dataset } => {
            ((**dataset).clone(), format!("{label} ({})", dataset.format))
        }
    };
    let mut notes = ds.notes.clone();
    if let AbMode::Batch { num_prompts } = o.mode {
        let have = ds.samples.len() as u64;
        if have > num_prompts {
            ds.samples.truncate(num_prompts as usize);
        } else if have < num_prompts {
            let pool = ds.samples.clone();
            ds.samples = pool
                .iter()
                .cycle()
                .take(num_prompts as usize)
                .cloned()
                .collect();
            notes.push(format!(
                "the prompt set has {have} prompts; they are used again in order to make \
                 {num_prompts}"
            ));
        }
    }
    let set = PromptSet {
        source,
        count: ds.samples.len(),
        notes,
    };
    Ok((ds, set))
}

/// The prompts of block `i` of `k`: a contiguous slice in batch mode (sizes differ by at most
/// one), the whole set rotated so each block starts elsewhere in time mode.
fn block_dataset(ds: &Dataset, mode: AbMode, i: usize, k: usize, per_block: u64) -> Dataset {
    let n = ds.samples.len();
    let samples = match mode {
        AbMode::Batch { .. } => {
            let (start, end) = (i * n / k, (i + 1) * n / k);
            ds.samples[start..end].to_vec()
        }
        AbMode::Time { .. } => {
            let shift = (i as u64 * per_block) as usize % n.max(1);
            let mut s = ds.samples.clone();
            s.rotate_left(shift);
            s
        }
    };
    Dataset {
        samples,
        format: ds.format,
        notes: Vec::new(),
    }
}

fn interrupted() -> bool {
    crate::runner::signals::interrupted().is_some()
}

fn bench(
    o: &AbOptions,
    target: &Target,
    ds: Dataset,
    label: String,
    load: LoadOptions,
) -> BenchOptions {
    BenchOptions {
        target: Target {
            // Acceptance counters are read from /metrics where the server has them (vLLM).
            scrape_metrics: target.scrape_metrics.clone().or(Some(String::new())),
            ..target.clone()
        },
        dataset: DatasetSource::Prepared {
            label,
            dataset: Arc::new(ds),
        },
        tokenizer: o.tokenizer.clone(),
        load,
        metrics: MetricOptions {
            ignore_eos: o.ignore_eos,
            percentiles: super::figures::PERCENTILES.to_vec(),
            ..MetricOptions::default()
        },
        outputs: OutputOptions::default(),
        client_threads: 1,
    }
}

fn server_alive(target: &Target) -> Result<(), String> {
    let quick = Target {
        ready_timeout: Duration::ZERO,
        ..target.clone()
    };
    crate::serve::server_facts(&quick)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The report of the blocks so far.
fn report(
    o: &AbOptions,
    facts: &[ServerFacts; 2],
    prompts: &PromptSet,
    blocks: &[BlockRun],
    power: &Option<PowerSetup>,
    started: &str,
) -> AbReport {
    let labels = [o.a.label.clone(), o.b.label.clone()];
    let urls = [o.a.target.url.clone(), o.b.target.url.clone()];
    let side_fig = |side: usize| -> SideFigures {
        let mine: Vec<&BlockRun> = blocks.iter().filter(|b| b.side == side).collect();
        let output_tokens: u64 = mine.iter().map(|b| b.summary.total_output_tokens).sum();
        let gpu = power.as_ref().map(|setup| {
            let windows: Vec<BlockWindow> =
                mine.iter().filter_map(|b| BlockWindow::of(b)).collect();
            gpu_figures(&windows, setup, output_tokens)
        });
        side_figures(
            SideInfo {
                label: &labels[side],
                url: &urls[side],
                model: &facts[side].model,
                server_kind: facts[side].kind.name(),
            },
            &mine,
            gpu,
            true,
        )
    };
    let figures = [side_fig(0), side_fig(1)];
    // Pairs: the blocks both sides finished.
    let find = |block: u32, side: usize| {
        blocks
            .iter()
            .find(|b| b.block == block && b.side == side && !b.interrupted)
    };
    let pairs: Vec<(&BlockRun, &BlockRun)> = (0..o.blocks)
        .filter_map(|i| Some((find(i, 0)?, find(i, 1)?)))
        .collect();
    let tput: Vec<(f64, f64)> = pairs
        .iter()
        .map(|(a, b)| (a.summary.output_throughput, b.summary.output_throughput))
        .collect();
    let latency: Vec<(f64, f64)> = pairs
        .iter()
        .filter_map(|(a, b)| Some((b.mean_e2el_ms()?, a.mean_e2el_ms()?)))
        .collect();
    let e2el = |side: usize| -> Vec<f64> {
        blocks
            .iter()
            .filter(|b| b.side == side)
            .flat_map(|b| b.records.iter())
            .filter(|r| r.ok())
            .filter_map(|r| r.derive(true).e2el_ms)
            .collect()
    };
    let comparison = Comparison {
        speedup: paired_ratio(&tput, o.confidence),
        latency_speedup: paired_ratio(&latency, o.confidence),
        e2el: compare(
            &Sample { reps: e2el(0) },
            &Sample { reps: e2el(1) },
            Some(Direction::LowerIsBetter),
        ),
    };
    let mut notes = prompts.notes.clone();
    for (side, label) in labels.iter().enumerate() {
        let mine = blocks.iter().filter(|b| b.side == side);
        let differ: u64 = mine
            .clone()
            .map(|b| b.summary.output_token_disagreement)
            .sum();
        let completed: u64 = mine.map(|b| b.summary.completed).sum();
        if differ > 0 {
            notes.push(format!(
                "{label}: {differ} of {completed} requests: the server's output token count \
                 differs from the client tokenizer's (another tokenizer, or generated text that \
                 does not encode back to the same tokens); the server's is used"
            ));
        }
    }
    if pairs.len() == 1 {
        notes.push(
            "one pair of blocks: the speed-up has no interval (give --blocks 2 or more)".into(),
        );
    }
    AbReport {
        facts: facts.clone(),
        labels,
        urls,
        prompts: prompts.clone(),
        blocks: blocks.to_vec(),
        figures,
        comparison,
        power: power.clone(),
        stopped: None,
        interrupted: false,
        notes,
        started: started.to_string(),
    }
}

/// Runs the A/B; `sink` gets the report after every block.
pub fn run(o: &AbOptions, sink: &mut dyn AbSink) -> Result<AbReport, AbError> {
    validate(o)?;
    let started = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let facts_of = |side: &super::options::Side| {
        crate::serve::server_facts(&side.target).map_err(|e| AbError::Serve {
            side: side.label.clone(),
            source: e,
        })
    };
    let facts = [facts_of(&o.a)?, facts_of(&o.b)?];
    let targets = [
        Target {
            model: facts[0].model.clone(),
            ..o.a.target.clone()
        },
        Target {
            model: facts[1].model.clone(),
            ..o.b.target.clone()
        },
    ];
    let labels = [&o.a.label, &o.b.label];
    let (ds, prompts) = load_prompts(o)?;
    let k = match o.mode {
        AbMode::Batch { .. } => (o.blocks as usize).min(ds.samples.len()).max(1),
        AbMode::Time { .. } => o.blocks as usize,
    };
    let (telemetry, power) = match &o.monitor {
        Some(m) => {
            let t = Telemetry::open_with(&m.power);
            let p = t.power();
            (Some(t), Some(p))
        }
        None => (None, None),
    };
    let per_block = match o.mode {
        AbMode::Batch { .. } => 0,
        AbMode::Time { rate, duration } => {
            (rate * duration.as_secs_f64() / k as f64).ceil().max(1.0) as u64
        }
    };
    let load = |count: Option<u64>| LoadOptions {
        levels: vec![match o.mode {
            AbMode::Batch { .. } => LoadLevel::Concurrency(o.batch_size),
            AbMode::Time { rate, .. } => LoadLevel::Rate {
                rate,
                max_concurrency: Some(o.batch_size),
            },
        }],
        arrival: Arrival::Poisson,
        stop: match (count, o.mode) {
            (Some(n), _) => Stop::Count(n),
            (None, AbMode::Time { duration, .. }) => Stop::Duration(duration / k as u32),
            (None, AbMode::Batch { .. }) => Stop::Count(1),
        },
        warmup: 0,
        seed: o.seed,
    };

    if o.warmup > 0 {
        for side in 0..2 {
            let mut warm = ds.clone();
            warm.samples = ds
                .samples
                .iter()
                .cycle()
                .take(o.warmup as usize)
                .cloned()
                .collect();
            let mut l = load(Some(u64::from(o.warmup)));
            l.levels = vec![LoadLevel::Concurrency(o.batch_size.min(o.warmup))];
            let opts = bench(o, &targets[side], warm, "warm-up".into(), l);
            crate::serve::run(&opts, &mut |_, _| Ok(())).map_err(|e| AbError::Serve {
                side: labels[side].clone(),
                source: e,
            })?;
            if interrupted() {
                break;
            }
        }
    }

    let mut blocks: Vec<BlockRun> = Vec::new();
    let mut stopped = None;
    let mut was_interrupted = false;
    let mut position = 0u32;
    'blocks: for i in 0..k {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        let block_ds = block_dataset(&ds, o.mode, i, k, per_block);
        for side in order {
            if interrupted() {
                was_interrupted = true;
                stopped = Some(format!("interrupted before block {} of {}", i + 1, k));
                break 'blocks;
            }
            let count = match o.mode {
                AbMode::Batch { .. } => Some(block_ds.samples.len() as u64),
                AbMode::Time { .. } => None,
            };
            let opts = bench(
                o,
                &targets[side],
                block_ds.clone(),
                format!("block {} of {}", i + 1, k),
                load(count),
            );
            let recorder = telemetry
                .as_ref()
                .zip(o.monitor.as_ref())
                .map(|(t, m)| t.start(&m.gpus, m.interval));
            if let Some(r) = &recorder {
                // A reading before the block's first request.
                r.wait_first(Duration::from_secs(2));
            }
            let result = crate::serve::run(&opts, &mut |_, _| Ok(()));
            let recording = recorder.map(|r| r.stop());
            let run = match result {
                Ok(r) => r,
                Err(e) => {
                    stopped = Some(format!("{}: block {}: {e}", labels[side], i + 1));
                    break 'blocks;
                }
            };
            let Some(level) = run.levels.into_iter().next() else {
                was_interrupted = run.interrupted;
                stopped = Some(format!("{}: block {} did not start", labels[side], i + 1));
                break 'blocks;
            };
            let failed = level.summary.failed;
            blocks.push(BlockRun {
                block: i as u32,
                side,
                position,
                summary: level.summary,
                records: level.records,
                epoch_unix_ns: run.info.epoch_unix_ns,
                recording,
                interrupted: run.interrupted,
            });
            position += 1;
            let current = report(o, &facts, &prompts, &blocks, &power, &started);
            sink.update(&current)?;
            if o.progress {
                let b = blocks.last().map(|b| &b.summary);
                eprintln!(
                    "ab: block {}/{} {}: {} requests, {:.1} output tokens/s{}",
                    i + 1,
                    k,
                    labels[side],
                    b.map_or(0, |s| s.completed),
                    b.map_or(0.0, |s| s.output_throughput),
                    if failed > 0 {
                        format!(", {failed} failed")
                    } else {
                        String::new()
                    }
                );
            }
            if run.interrupted {
                was_interrupted = true;
                stopped = Some(format!("interrupted during block {} of {}", i + 1, k));
                break 'blocks;
            }
            if failed > 0
                && let Err(why) = server_alive(&targets[side])
            {
                stopped = Some(format!(
                    "{}: the server stopped answering during block {}: {why}",
                    labels[side],
                    i + 1
                ));
                break 'blocks;
            }
        }
    }
    let mut last = report(o, &facts, &prompts, &blocks, &power, &started);
    last.stopped = stopped;
    last.interrupted = was_interrupted;
    sink.update(&last)?;
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::dataset::{Prompt, Sample as DsSample};

    fn ds(n: usize) -> Dataset {
        Dataset {
            samples: (0..n)
                .map(|i| DsSample {
                    prompt: Prompt::Text(format!("p{i}")),
                    prompt_tokens: Some(1),
                    output_tokens: 4,
                    reference: None,
                })
                .collect(),
            format: "prompts",
            notes: Vec::new(),
        }
    }

    fn texts(d: &Dataset) -> Vec<String> {
        d.samples
            .iter()
            .map(|s| match &s.prompt {
                Prompt::Text(t) => t.clone(),
                Prompt::Ids(_) => String::new(),
            })
            .collect()
    }

    #[test]
    fn batch_blocks_cover_the_set_once_time_blocks_rotate() {
        let d = ds(10);
        let mode = AbMode::Batch { num_prompts: 10 };
        let all: Vec<String> = (0..3)
            .flat_map(|i| texts(&block_dataset(&d, mode, i, 3, 0)))
            .collect();
        assert_eq!(all, texts(&d), "every prompt once, in order");
        assert_eq!(block_dataset(&d, mode, 0, 3, 0).samples.len(), 3);
        assert_eq!(block_dataset(&d, mode, 2, 3, 0).samples.len(), 4);
        let time = AbMode::Time {
            rate: 1.0,
            duration: Duration::from_secs(6),
        };
        assert_eq!(texts(&block_dataset(&d, time, 1, 3, 2))[0], "p2");
        assert_eq!(block_dataset(&d, time, 1, 3, 2).samples.len(), 10);
    }

    #[test]
    fn labels_name_files() {
        assert!(valid_label("target") && valid_label("spec-v2.1"));
        assert!(!valid_label("a/b") && !valid_label("") && !valid_label(".hidden"));
    }
}
