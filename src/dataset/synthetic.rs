//! Synthetic datasets: upstream's `gen_random_tokens` plus the task-id and output steps.

use std::io::Write;
use std::path::Path;

use super::cpython::PyRandom;
use super::error::DatasetError;
use super::lengths::{Lengths, draw_lengths};
use super::pipeline::for_each_request;
use super::progress::Progress;
use super::records::{MetaValue, Metadata, OutputFormat, RecordWriter};
use super::sampler::TokenSampler;
use super::spec::{LengthDist, SyntheticSpec, TaskIds, validate, validate_vocab};
use super::tokenizer::Vocab;
use crate::fsutil::write_with as write_atomically;

/// What a finished dataset holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetSummary {
    pub num_requests: u64,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    pub max_input_len: u64,
    pub max_output_len: u64,
    pub bytes_written: u64,
    /// Upstream's warnings (e.g. task ids without a LoRA directory), for the caller to show.
    pub warnings: Vec<String>,
}

/// Per-request LoRA task ids, as upstream draws them after all token ids.
fn draw_task_ids(task_ids: &TaskIds, rng: Option<&mut PyRandom>, n: usize) -> Vec<i64> {
    match (task_ids, rng) {
        (TaskIds::Random { min, max }, Some(rng)) => {
            (0..n).map(|_| rng.randint(*min, *max)).collect()
        }
        (TaskIds::Fixed(t), _) => vec![*t; n],
        _ => vec![-1; n],
    }
}

fn usize_len(len: u64) -> Result<usize, DatasetError> {
    usize::try_from(len)
        .map_err(|_| DatasetError::OutOfMemory(format!("a request of {len} tokens")))
}

/// A generation job, validated, with its lengths drawn.
struct Job<'a> {
    spec: &'a SyntheticSpec,
    vocab: &'a Vocab,
    lengths: Lengths,
}

impl<'a> Job<'a> {
    fn new(spec: &'a SyntheticSpec, vocab: &'a Vocab) -> Result<Self, DatasetError> {
        validate(spec)?;
        validate_vocab(vocab)?;
        let lengths = draw_lengths(&spec.dist, spec.num_requests, spec.seed)?;
        Ok(Job {
            spec,
            vocab,
            lengths,
        })
    }

    /// Task ids per request. Random ones come after every token draw in the same stream, so
    /// they need a pass over the token draws first (ids are drawn and dropped).
    fn task_ids(&self, needed: bool) -> Vec<i64> {
        let n = self.lengths.input.len();
        if !needed || !matches!(self.spec.task_ids, TaskIds::Random { .. }) {
            return draw_task_ids(&self.spec.task_ids, None, n);
        }
        let mut sampler = TokenSampler::new(self.spec.seed, self.vocab);
        let mut scratch = Vec::new();
        for &len in &self.lengths.input {
            // Lengths were bounded by validation, so they fit in usize.
            sampler.draw(len as usize, &mut scratch);
        }
        let mut rng = sampler.into_random();
        draw_task_ids(&self.spec.task_ids, Some(&mut rng), n)
    }

    fn metadata(&self) -> Metadata {
        let int = |v: u64| MetaValue::Int(v as i128);
        let mut meta: Metadata = Vec::with_capacity(10);
        match self.spec.dist {
            LengthDist::Normal {
                input_mean,
                input_stdev,
                output_mean,
                output_stdev,
            } => {
                meta.push(("workload_type", MetaValue::Str("token-norm-dist".into())));
                meta.push(("input_mean", int(input_mean)));
                meta.push(("input_stdev", int(input_stdev)));
                meta.push(("output_mean", int(output_mean)));
                meta.push(("output_stdev", int(output_stdev)));
            }
            LengthDist::Uniform {
                input_min,
                input_max,
                output_min,
                output_max,
            } => {
                meta.push(("workload_type", MetaValue::Str("token-unif-dist".into())));
                meta.push(("input_min", int(input_min)));
                meta.push(("input_max", int(input_max)));
                meta.push(("output_min", int(output_min)));
                meta.push(("output_max", int(output_max)));
            }
        }
        meta.push(("num_requests", int(self.spec.num_requests)));
        meta.push(("tokenize_vocabsize", int(self.vocab.vocab_size as u64)));
        meta.push(("max_input_len", int(self.lengths.max_input())));
        meta.push(("max_output_len", int(self.lengths.max_output())));
        meta
    }

    fn write<W: Write + ?Sized>(
        &self,
        format: OutputFormat,
        out: &mut W,
    ) -> Result<DatasetSummary, DatasetError> {
        let task_ids_shown = format == OutputFormat::Workload || self.spec.uses_lora();
        let task_ids = self.task_ids(task_ids_shown);
        let lora_dir = if self.spec.uses_lora() {
            self.spec.lora_dir.as_deref()
        } else {
            None
        };
        let io = |e| DatasetError::write("the dataset output", e);
        let mut writer = RecordWriter::new(
            out,
            format,
            self.vocab.vocab_size,
            lora_dir,
            &self.metadata(),
        )
        .map_err(io)?;

        let total_input: u64 = self.lengths.input.iter().sum();
        let progress = Progress::for_job(self.lengths.input.len() as u64, total_input);
        let lens = self
            .lengths
            .input
            .iter()
            .map(|&l| usize_len(l))
            .collect::<Result<Vec<usize>, _>>()?;
        let sampler = TokenSampler::new(self.spec.seed, self.vocab);
        for_each_request(sampler, &lens, |i, ids| {
            progress.tick();
            writer.record(ids, self.lengths.output[i], task_ids[i])
        })
        .map_err(io)?;
        let bytes_written = writer.finish().map_err(io)?;
        progress.finish();
        Ok(DatasetSummary {
            num_requests: self.lengths.input.len() as u64,
            total_input_tokens: total_input,
            total_output_tokens: self.lengths.output.iter().sum(),
            max_input_len: self.lengths.max_input(),
            max_output_len: self.lengths.max_output(),
            bytes_written,
            warnings: self.spec.warnings(),
        })
    }
}

/// Writes the dataset as JSONL, byte-identical to upstream's `--stdout` output.
pub fn write_synthetic(
    spec: &SyntheticSpec,
    vocab: &Vocab,
    out: &mut impl Write,
) -> Result<DatasetSummary, DatasetError> {
    write_synthetic_as(spec, vocab, OutputFormat::Jsonl, out)
}

/// Writes the dataset in either layout (workload: byte-identical to upstream without `--stdout`).
pub fn write_synthetic_as<W: Write + ?Sized>(
    spec: &SyntheticSpec,
    vocab: &Vocab,
    format: OutputFormat,
    out: &mut W,
) -> Result<DatasetSummary, DatasetError> {
    Job::new(spec, vocab)?.write(format, out)
}

/// Writes the JSONL dataset to `path` atomically: a temporary file in the same directory,
/// renamed into place only once complete. Parent directories are created.
pub fn write_synthetic_file(
    spec: &SyntheticSpec,
    vocab: &Vocab,
    path: &Path,
) -> Result<DatasetSummary, DatasetError> {
    write_synthetic_file_as(spec, vocab, OutputFormat::Jsonl, path)
}

/// [`write_synthetic_file`] in either layout.
pub fn write_synthetic_file_as(
    spec: &SyntheticSpec,
    vocab: &Vocab,
    format: OutputFormat,
    path: &Path,
) -> Result<DatasetSummary, DatasetError> {
    // Validate before touching the file system: a bad spec must leave nothing behind.
    let job = Job::new(spec, vocab)?;
    write_atomically(path, |file| job.write(format, file))
}
