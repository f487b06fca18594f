//! Datasets from real prompts: a local JSONL file tokenized with the model's tokenizer, the
//! offline counterpart of upstream's `dataset` / `real-dataset` subcommand.
//!
//! Each prompt is encoded with special tokens (BOS counted), as trtllm-bench would tokenize a
//! `prompt` line. The output length is the token count of the reference output (also with
//! special tokens), or drawn from a normal distribution exactly as `token-norm-dist` draws it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::cpython::PyRandom;
use super::error::DatasetError;
use super::lengths::{normal_lengths, standard_normals};
use super::records::{MetaValue, Metadata, OutputFormat, RecordWriter};
use super::spec::{MAX_REQUEST_TOKENS, TaskIds};
use super::synthetic::DatasetSummary;
use crate::fsutil::write_with as write_atomically;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptsSpec {
    /// A JSONL file: one JSON object per line; blank lines are skipped.
    pub input: PathBuf,
    /// The key holding the prompt text.
    pub input_key: String,
    /// The key holding the reference output; its token count is the output length.
    pub output_key: String,
    /// `(mean, stdev)`: draw output lengths instead of counting reference outputs.
    pub output_len_dist: Option<(u64, u64)>,
    /// Keep at most this many prompts.
    pub num_requests: Option<u64>,
    /// Skip prompts longer than this many tokens (upstream `--max-input-len`).
    pub max_input_len: Option<u64>,
    pub seed: u64,
    pub task_ids: TaskIds,
    pub lora_dir: Option<String>,
}

impl PromptsSpec {
    pub fn new(input: impl Into<PathBuf>) -> Self {
        PromptsSpec {
            input: input.into(),
            input_key: "input".into(),
            output_key: "output".into(),
            output_len_dist: None,
            num_requests: None,
            max_input_len: None,
            seed: 420,
            task_ids: TaskIds::None,
            lora_dir: None,
        }
    }

    fn validate(&self) -> Result<(), DatasetError> {
        if self.num_requests == Some(0) {
            return Err(DatasetError::spec(
                "--num-requests must be at least 1 (got 0)",
            ));
        }
        if let Some((mean, stdev)) = self.output_len_dist {
            if self.seed > u32::MAX as u64 {
                return Err(DatasetError::spec(format!(
                    "--random-seed {} is out of range for --output-len-dist: numpy's legacy \
                     np.random.seed accepts 0..=4294967295",
                    self.seed
                )));
            }
            if mean > MAX_REQUEST_TOKENS || stdev > MAX_REQUEST_TOKENS {
                return Err(DatasetError::spec(format!(
                    "--output-len-dist {mean},{stdev} is above the per-request limit of \
                     {MAX_REQUEST_TOKENS} tokens"
                )));
            }
        }
        if let TaskIds::Random { min, max } = self.task_ids
            && min > max
        {
            return Err(DatasetError::spec(format!(
                "--rand-task-id range is reversed: MIN {min} is greater than MAX {max}"
            )));
        }
        Ok(())
    }
}

/// Tokenized prompts, ready to write.
struct Tokenized {
    inputs: Vec<Vec<u32>>,
    outputs: Vec<u64>,
    task_ids: Vec<i64>,
}

fn line_error(path: &Path, line: u64, message: impl Into<String>) -> DatasetError {
    DatasetError::PromptLine {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

fn text_field<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
    path: &Path,
    line: u64,
) -> Result<&'a str, DatasetError> {
    match obj.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(other) => Err(line_error(
            path,
            line,
            format!(
                "key \"{key}\" must hold a string, found {}",
                json_kind(other)
            ),
        )),
        None => {
            let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            Err(line_error(
                path,
                line,
                format!(
                    "missing key \"{key}\" (keys on this line: {})",
                    keys.join(", ")
                ),
            ))
        }
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn encode(
    tokenizer: &tokenizers::Tokenizer,
    text: &str,
    path: &Path,
    line: u64,
) -> Result<Vec<u32>, DatasetError> {
    tokenizer
        .encode(text, true)
        .map(|enc| enc.get_ids().to_vec())
        .map_err(|e| line_error(path, line, format!("the tokenizer failed: {e}")))
}

fn tokenize(
    spec: &PromptsSpec,
    tokenizer: &tokenizers::Tokenizer,
) -> Result<Tokenized, DatasetError> {
    let path = spec.input.as_path();
    let file = std::fs::File::open(path).map_err(|e| DatasetError::Read {
        path: path.into(),
        source: e,
    })?;
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut line_no = 0u64;
    for line in BufReader::new(file).lines() {
        line_no += 1;
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => line_error(path, line_no, "not valid UTF-8"),
            _ => DatasetError::Read {
                path: path.into(),
                source: e,
            },
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| line_error(path, line_no, format!("invalid JSON: {e}")))?;
        let serde_json::Value::Object(obj) = value else {
            return Err(line_error(
                path,
                line_no,
                format!("expected a JSON object, found {}", json_kind(&value)),
            ));
        };
        let prompt = text_field(&obj, &spec.input_key, path, line_no)?;
        let reference = match spec.output_len_dist {
            None => Some(text_field(&obj, &spec.output_key, path, line_no)?),
            Some(_) => None,
        };
        let ids = encode(tokenizer, prompt, path, line_no)?;
        if spec.max_input_len.is_some_and(|max| ids.len() as u64 > max) {
            continue;
        }
        if let Some(reference) = reference {
            outputs.push(encode(tokenizer, reference, path, line_no)?.len() as u64);
        }
        inputs.push(ids);
        if spec.num_requests.is_some_and(|n| inputs.len() as u64 >= n) {
            break;
        }
    }
    if inputs.is_empty() {
        return Err(DatasetError::spec(format!(
            "{}: no prompts to use",
            path.display()
        )));
    }
    if let Some((mean, stdev)) = spec.output_len_dist {
        // The seed range was checked by validate().
        let zs = standard_normals(spec.seed as u32, inputs.len() as u64)?;
        outputs = normal_lengths(&zs, mean, stdev, "output")?;
    }
    let task_ids = match spec.task_ids {
        TaskIds::Random { min, max } => {
            let mut rng = PyRandom::from_u64(spec.seed);
            inputs.iter().map(|_| rng.randint(min, max)).collect()
        }
        TaskIds::Fixed(t) => vec![t; inputs.len()],
        TaskIds::None => vec![-1; inputs.len()],
    };
    Ok(Tokenized {
        inputs,
        outputs,
        task_ids,
    })
}

fn write_tokenized<W: Write + ?Sized>(
    spec: &PromptsSpec,
    data: &Tokenized,
    tokenizer_class: &str,
    format: OutputFormat,
    out: &mut W,
) -> Result<DatasetSummary, DatasetError> {
    let uses_lora = spec.task_ids.in_use() && spec.lora_dir.is_some();
    let lora_dir = if uses_lora {
        spec.lora_dir.as_deref()
    } else {
        None
    };
    let max_input = data
        .inputs
        .iter()
        .map(|v| v.len() as u64)
        .max()
        .unwrap_or(0);
    let max_output = data.outputs.iter().copied().max().unwrap_or(0);
    let n = data.inputs.len() as u64;
    let metadata: Metadata = vec![
        ("workload_type", MetaValue::Str("dataset".into())),
        ("tokenizer", MetaValue::Str(tokenizer_class.into())),
        ("num_requests", MetaValue::Int(n as i128)),
        ("max_input_len", MetaValue::Int(max_input as i128)),
        ("max_output_len", MetaValue::Int(max_output as i128)),
    ];
    let io = |e| DatasetError::write("the dataset output", e);
    let id_bound = data
        .inputs
        .iter()
        .flatten()
        .copied()
        .max()
        .map_or(0, |m| m.saturating_add(1));
    let mut writer = RecordWriter::new(out, format, id_bound, lora_dir, &metadata).map_err(io)?;
    for ((ids, &out_len), &task) in data.inputs.iter().zip(&data.outputs).zip(&data.task_ids) {
        writer.record(ids, out_len, task).map_err(io)?;
    }
    let bytes_written = writer.finish().map_err(io)?;
    let mut warnings = Vec::new();
    if spec.task_ids.in_use() && spec.lora_dir.is_none() {
        warnings.push("Task IDs require LoRA directory. Use --lora-dir or omit task IDs.".into());
    }
    Ok(DatasetSummary {
        num_requests: n,
        total_input_tokens: data.inputs.iter().map(|v| v.len() as u64).sum(),
        total_output_tokens: data.outputs.iter().sum(),
        max_input_len: max_input,
        max_output_len: max_output,
        bytes_written,
        warnings,
    })
}

/// Tokenizes the prompts of `spec.input` and writes the dataset to `out`.
pub fn write_prompts<W: Write + ?Sized>(
    spec: &PromptsSpec,
    tokenizer: &tokenizers::Tokenizer,
    tokenizer_class: &str,
    format: OutputFormat,
    out: &mut W,
) -> Result<DatasetSummary, DatasetError> {
    spec.validate()?;
    let data = tokenize(spec, tokenizer)?;
    write_tokenized(spec, &data, tokenizer_class, format, out)
}

/// [`write_prompts`] into a file, atomically; nothing is created when a line is bad.
pub fn write_prompts_file(
    spec: &PromptsSpec,
    tokenizer: &tokenizers::Tokenizer,
    tokenizer_class: &str,
    format: OutputFormat,
    path: &Path,
) -> Result<DatasetSummary, DatasetError> {
    spec.validate()?;
    let data = tokenize(spec, tokenizer)?;
    write_atomically(path, |file| {
        write_tokenized(spec, &data, tokenizer_class, format, file)
    })
}
