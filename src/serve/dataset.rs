//! The prompts a run sends: synthetic token ids from perfgate's own token-norm-dist generator
//! (bit-exact with prepare_dataset, so a synthetic run sends what `perfgate dataset
//! token-norm-dist` writes), or a file in one of the formats upstream tools read.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

use crate::dataset::lengths::draw_lengths;
use crate::dataset::{EosPolicy, LengthDist, TokenSampler, Vocab};

use super::error::ServeError;

/// A prompt as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Ids(Vec<u32>),
    Text(String),
}

/// One entry of the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub prompt: Prompt,
    /// The prompt's length in tokens as the client knows it (ids: exact; text: the tokenizer
    /// with special tokens, as upstream counts `prompt_len`).
    pub prompt_tokens: Option<u64>,
    /// The output length to ask for.
    pub output_tokens: u64,
    /// A reference output (prompt JSONL `output`, ShareGPT's reply), for accuracy scoring.
    pub reference: Option<String>,
}

/// What a loaded dataset is and what was noticed while loading it.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub samples: Vec<Sample>,
    /// `synthetic`, `prepare_dataset`, `trtllm_custom`, `prompts`, `sharegpt`.
    pub format: &'static str,
    pub notes: Vec<String>,
}

/// The file formats recognised, by their first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileFormat {
    /// `{"task_id", "input_ids": [...], "output_tokens": N}` or `{"prompt": "...",
    /// "output_tokens": N}` (trtllm-bench's dataset lines).
    PrepareDataset,
    /// `{"input": {"messages": [...], "max_tokens": N}}`.
    TrtllmCustom,
    /// `{"input": "...", "output"?: "..."}`.
    Prompts,
    /// `{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", ...}]}`.
    ShareGpt,
}

/// Options for loading a file.
pub struct FileOptions<'a> {
    /// Output length for formats that do not carry one (prompts, ShareGPT); else from the
    /// reference output's token count.
    pub osl: Option<u64>,
    pub tokenizer: Option<&'a tokenizers::Tokenizer>,
}

pub fn synthetic(
    tokenizer_path: &Path,
    dist: &LengthDist,
    n: u64,
    seed: u64,
) -> Result<Dataset, ServeError> {
    let vocab = Vocab::from_tokenizer_with(tokenizer_path, EosPolicy::IfPresent)
        .map_err(|e| ServeError::Dataset(e.to_string()))?;
    crate::dataset::validate_vocab(&vocab).map_err(|e| ServeError::Dataset(e.to_string()))?;
    let lengths = draw_lengths(dist, n, seed).map_err(|e| ServeError::Dataset(e.to_string()))?;
    let mut sampler = TokenSampler::new(seed, &vocab);
    let samples = lengths
        .input
        .iter()
        .zip(&lengths.output)
        .map(|(&isl, &osl)| {
            let mut ids = Vec::with_capacity(isl as usize);
            sampler.draw(isl as usize, &mut ids);
            Sample {
                prompt: Prompt::Ids(ids),
                prompt_tokens: Some(isl),
                output_tokens: osl,
                reference: None,
            }
        })
        .collect();
    Ok(Dataset {
        samples,
        format: "synthetic",
        notes: Vec::new(),
    })
}

fn line_error(path: &Path, line: u64, message: impl Into<String>) -> ServeError {
    ServeError::DatasetLine {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

fn detect(v: &Value) -> Option<FileFormat> {
    let o = v.as_object()?;
    if o.contains_key("conversations") {
        return Some(FileFormat::ShareGpt);
    }
    match o.get("input") {
        Some(Value::Object(_)) => return Some(FileFormat::TrtllmCustom),
        Some(Value::String(_)) => return Some(FileFormat::Prompts),
        _ => {}
    }
    if o.contains_key("input_ids") || (o.contains_key("prompt") && o.contains_key("output_tokens"))
    {
        return Some(FileFormat::PrepareDataset);
    }
    None
}

const EXPECTED: &str = "expected one of: prepare_dataset lines ({\"input_ids\": [...], \
     \"output_tokens\": N}), trtllm_custom lines ({\"input\": {\"messages\": [...], \
     \"max_tokens\": N}}), prompt lines ({\"input\": \"...\", \"output\": \"...\"}), ShareGPT \
     ({\"conversations\": [...]})";

/// Loads a dataset file (JSON Lines, or one JSON array / workload document).
pub fn load_file(path: &Path, opts: &FileOptions<'_>) -> Result<Dataset, ServeError> {
    let file = std::fs::File::open(path).map_err(|e| ServeError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut reader = BufReader::new(file);
    // A JSON array or a workload document is one value; JSON Lines start with an object
    // that ends on its line.
    let first = first_non_space(&mut reader).map_err(|e| ServeError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    let records: Vec<(u64, Value)> = match first {
        None => return Err(empty(path)),
        Some(b'[') => {
            let v: Vec<Value> = serde_json::from_reader(reader)
                .map_err(|e| line_error(path, e.line() as u64, format!("not a JSON array: {e}")))?;
            v.into_iter().map(|v| (0, v)).collect()
        }
        Some(_) => read_lines_or_document(path, reader)?,
    };
    if records.is_empty() {
        return Err(empty(path));
    }
    let (first_line, first_value) = &records[0];
    let format = detect(first_value).ok_or_else(|| {
        line_error(
            path,
            *first_line,
            format!("the first record is not a known dataset format; {EXPECTED}"),
        )
    })?;
    let mut samples = Vec::with_capacity(records.len());
    let mut skipped = 0u64;
    for (line, v) in &records {
        let line = *line;
        match format {
            FileFormat::PrepareDataset => samples.push(prepare_dataset_line(path, line, v, opts)?),
            FileFormat::TrtllmCustom => samples.push(trtllm_custom_line(path, line, v, opts)?),
            FileFormat::Prompts => samples.push(prompt_line(path, line, v, opts)?),
            FileFormat::ShareGpt => match sharegpt_entry(path, line, v, opts)? {
                Some(s) => samples.push(s),
                None => skipped += 1,
            },
        }
    }
    let mut notes = Vec::new();
    if skipped > 0 {
        notes.push(format!(
            "{}: {skipped} ShareGPT entries with fewer than two turns skipped (as upstream)",
            path.display()
        ));
    }
    if samples.is_empty() {
        return Err(empty(path));
    }
    Ok(Dataset {
        samples,
        format: match format {
            FileFormat::PrepareDataset => "prepare_dataset",
            FileFormat::TrtllmCustom => "trtllm_custom",
            FileFormat::Prompts => "prompts",
            FileFormat::ShareGpt => "sharegpt",
        },
        notes,
    })
}

fn empty(path: &Path) -> ServeError {
    ServeError::Dataset(format!(
        "{}: the dataset has no records; {EXPECTED}",
        path.display()
    ))
}

fn first_non_space<R: BufRead>(r: &mut R) -> std::io::Result<Option<u8>> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        if let Some(i) = buf.iter().position(|b| !b.is_ascii_whitespace()) {
            let c = buf[i];
            return Ok(Some(c));
        }
        let n = buf.len();
        r.consume(n);
    }
}

fn read_lines_or_document<R: Read>(
    path: &Path,
    mut reader: BufReader<R>,
) -> Result<Vec<(u64, Value)>, ServeError> {
    let mut out = Vec::new();
    let mut line_no = 0u64;
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = reader.read_line(&mut buf).map_err(|e| ServeError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(text) {
            Ok(v) => out.push((line_no, v)),
            Err(e) if out.is_empty() && e.is_eof() => {
                // A pretty-printed document (upstream's workload JSON): read it whole.
                let mut rest = buf.clone();
                reader
                    .read_to_string(&mut rest)
                    .map_err(|e| ServeError::Read {
                        path: path.to_path_buf(),
                        source: e,
                    })?;
                let v: Value = serde_json::from_str(&rest).map_err(|e| {
                    line_error(
                        path,
                        line_no + e.line() as u64 - 1,
                        format!("not JSON: {e}"),
                    )
                })?;
                return workload_samples(path, v);
            }
            Err(e) => {
                return Err(line_error(
                    path,
                    line_no,
                    format!("not a JSON object ({e}); {EXPECTED}"),
                ));
            }
        }
    }
    if out.len() == 1
        && let Some(v) = out[0].1.get("samples")
    {
        let v = v.clone();
        return workload_samples(path, serde_json::json!({ "samples": v }));
    }
    Ok(out)
}

/// prepare_dataset's workload document: `{"metadata": …, "samples": [{"input_ids", "output_len"}]}`.
fn workload_samples(path: &Path, doc: Value) -> Result<Vec<(u64, Value)>, ServeError> {
    let samples = doc
        .get("samples")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            line_error(
                path,
                1,
                format!("a JSON document without `samples`; {EXPECTED}"),
            )
        })?;
    Ok(samples
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if let Some(o) = s.as_object_mut()
                && let Some(len) = o.remove("output_len")
            {
                o.insert("output_tokens".into(), len);
            }
            (0, s)
        })
        .collect())
}

fn u64_field(path: &Path, line: u64, v: &Value, key: &str) -> Result<u64, ServeError> {
    v.get(key).and_then(Value::as_u64).ok_or_else(|| {
        line_error(
            path,
            line,
            format!("`{key}` is missing or not a non-negative integer"),
        )
    })
}

fn count(tok: Option<&tokenizers::Tokenizer>, text: &str, special: bool) -> Option<u64> {
    tok.and_then(|t| t.encode_fast(text, special).ok())
        .map(|e| e.get_ids().len() as u64)
}

fn prepare_dataset_line(
    path: &Path,
    line: u64,
    v: &Value,
    opts: &FileOptions<'_>,
) -> Result<Sample, ServeError> {
    let output_tokens = u64_field(path, line, v, "output_tokens")?;
    if let Some(ids) = v.get("input_ids") {
        let ids: Vec<u32> = ids
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
                    .collect()
            })
            .ok_or_else(|| line_error(path, line, "`input_ids` is not a list of token ids"))?;
        if ids.is_empty() {
            return Err(line_error(path, line, "`input_ids` is empty"));
        }
        return Ok(Sample {
            prompt_tokens: Some(ids.len() as u64),
            prompt: Prompt::Ids(ids),
            output_tokens,
            reference: None,
        });
    }
    let text = v
        .get("prompt")
        .and_then(Value::as_str)
        .ok_or_else(|| line_error(path, line, "neither `input_ids` nor a `prompt` string"))?;
    Ok(Sample {
        prompt_tokens: count(opts.tokenizer, text, true),
        prompt: Prompt::Text(text.to_string()),
        output_tokens,
        reference: None,
    })
}

fn trtllm_custom_line(
    path: &Path,
    line: u64,
    v: &Value,
    opts: &FileOptions<'_>,
) -> Result<Sample, ServeError> {
    let input = v
        .get("input")
        .and_then(Value::as_object)
        .ok_or_else(|| line_error(path, line, "`input` is not an object (trtllm_custom)"))?;
    let messages = input
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| line_error(path, line, "`input.messages` is not a list"))?;
    // upstream's CustomDataset takes messages[1] (after the system message); a file without a
    // system message has its user message first.
    let message = messages
        .get(1)
        .or_else(|| {
            messages
                .iter()
                .rev()
                .find(|m| m.get("role") == Some(&"user".into()))
        })
        .ok_or_else(|| line_error(path, line, "`input.messages` has no user message"))?;
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| line_error(path, line, "the user message has no `content` string"))?;
    let output_tokens = match input.get("max_tokens") {
        Some(m) => m.as_u64().ok_or_else(|| {
            line_error(
                path,
                line,
                "`input.max_tokens` is not a non-negative integer",
            )
        })?,
        None => opts.osl.ok_or_else(|| {
            line_error(
                path,
                line,
                "`input.max_tokens` is missing and --osl was not given",
            )
        })?,
    };
    Ok(Sample {
        prompt_tokens: count(opts.tokenizer, text, true),
        prompt: Prompt::Text(text.to_string()),
        output_tokens,
        reference: None,
    })
}

fn output_len(
    path: &Path,
    line: u64,
    reference: Option<&str>,
    opts: &FileOptions<'_>,
) -> Result<u64, ServeError> {
    if let Some(n) = opts.osl {
        return Ok(n);
    }
    match (reference, opts.tokenizer) {
        (Some(r), Some(_)) => Ok(count(opts.tokenizer, r, false).unwrap_or(0).max(1)),
        (Some(_), None) => Err(line_error(
            path,
            line,
            "the output length comes from the reference output's token count: give \
             --tokenizer, or --osl N",
        )),
        (None, _) => Err(line_error(
            path,
            line,
            "no reference `output` to take the output length from: give --osl N",
        )),
    }
}

fn prompt_line(
    path: &Path,
    line: u64,
    v: &Value,
    opts: &FileOptions<'_>,
) -> Result<Sample, ServeError> {
    let text = match v.get("input") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(line_error(path, line, "`input` is not a string")),
        None => {
            return Err(line_error(
                path,
                line,
                "no `input` key (expected {\"input\": \"prompt\", \"output\": \"reference\"})",
            ));
        }
    };
    let reference = match v.get("output") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(line_error(path, line, "`output` is not a string")),
    };
    Ok(Sample {
        prompt_tokens: count(opts.tokenizer, text, true),
        output_tokens: output_len(path, line, reference.as_deref(), opts)?,
        prompt: Prompt::Text(text.clone()),
        reference,
    })
}

fn sharegpt_entry(
    path: &Path,
    line: u64,
    v: &Value,
    opts: &FileOptions<'_>,
) -> Result<Option<Sample>, ServeError> {
    let turns = v
        .get("conversations")
        .and_then(Value::as_array)
        .ok_or_else(|| line_error(path, line, "`conversations` is not a list"))?;
    if turns.len() < 2 {
        return Ok(None);
    }
    let text_of = |t: &Value| t.get("value").and_then(Value::as_str).map(str::to_string);
    let (Some(prompt), Some(reply)) = (text_of(&turns[0]), text_of(&turns[1])) else {
        return Err(line_error(
            path,
            line,
            "a ShareGPT turn has no `value` string",
        ));
    };
    Ok(Some(Sample {
        prompt_tokens: count(opts.tokenizer, &prompt, true),
        output_tokens: output_len(path, line, Some(&reply), opts)?,
        prompt: Prompt::Text(prompt),
        reference: Some(reply),
    }))
}

/// Token-id prompts for a server or API that wants text: decode with the tokenizer; the
/// re-tokenized length becomes the client's prompt count, and how many changed is noted.
pub fn ids_to_text(
    ds: &mut Dataset,
    tokenizer: &tokenizers::Tokenizer,
    why: &str,
) -> Result<(), ServeError> {
    let mut changed = 0u64;
    let mut delta_sum = 0i64;
    let total = ds.samples.len();
    for s in &mut ds.samples {
        if let Prompt::Ids(ids) = &s.prompt {
            let text = tokenizer
                .decode(ids, false)
                .map_err(|e| ServeError::Dataset(format!("cannot decode token ids: {e}")))?;
            let n = count(Some(tokenizer), &text, false).unwrap_or(0);
            if n != ids.len() as u64 {
                changed += 1;
                delta_sum += n as i64 - ids.len() as i64;
            }
            s.prompt_tokens = Some(n);
            s.prompt = Prompt::Text(text);
        }
    }
    if changed > 0 {
        ds.notes.push(format!(
            "prompts sent as text ({why}): {changed} of {total} decoded prompts re-tokenize to a \
             different length (mean {:+.1} tokens); the client's prompt count is the \
             re-tokenized one",
            delta_sum as f64 / changed as f64
        ));
    } else {
        ds.notes.push(format!(
            "prompts sent as text ({why}): every decoded prompt re-tokenizes to its length"
        ));
    }
    Ok(())
}
