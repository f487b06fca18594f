//! Reads the JSONL dataset trtllm-bench takes (`--dataset`): one object per line with
//! `task_id`, `input_ids` (or its 0.12-era alias `logits`, or `prompt`, or `turns`) and
//! `output_tokens`. Only the lengths matter to the double; every problem names the file and
//! line, because a malformed dataset is a perfgate bug the tests must see clearly.

use std::path::Path;

use serde_json::Value;

/// One request: input and output sequence lengths.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub isl: u64,
    pub osl: u64,
}

/// Reads up to `limit` requests (0 = all, as `--num_requests=0`); upstream stops reading at
/// the limit, so lines after it are not checked either.
pub fn read(path: &Path, limit: usize) -> Result<Vec<Entry>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read dataset {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| format!("dataset {} is not UTF-8: {e}", path.display()))?;
    let mut entries = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if limit > 0 && entries.len() == limit {
            break;
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        // The final newline leaves one empty piece; an empty line elsewhere is an error
        // (Python's json.loads fails on it too).
        if line.trim().is_empty() {
            if text
                .split('\n')
                .skip(i + 1)
                .all(|rest| rest.trim().is_empty())
            {
                break;
            }
            return Err(format!("{}:{}: empty line", path.display(), i + 1));
        }
        let entry = parse_line(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        entries.push(entry);
    }
    if entries.is_empty() {
        return Err(format!(
            "dataset {} is empty: no requests to run",
            path.display()
        ));
    }
    Ok(entries)
}

fn parse_line(line: &str) -> Result<Entry, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| "expected a JSON object per line".to_string())?;
    let task_id = match obj.get("task_id") {
        Some(Value::Number(n)) if n.is_i64() => n.to_string(),
        // pydantic's lax mode turns "3" into 3.
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => s.trim().to_string(),
        Some(other) => return Err(format!("task_id must be an integer, got {other}")),
        None => return Err("missing task_id".into()),
    };
    let osl = match obj.get("output_tokens") {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v >= 1 => v,
            _ => {
                return Err(format!(
                    "task {task_id}: output_tokens must be a positive integer, got {n}"
                ));
            }
        },
        Some(other) => {
            return Err(format!(
                "task {task_id}: output_tokens must be an integer, got {other}"
            ));
        }
        None => return Err(format!("task {task_id}: missing output_tokens")),
    };
    let ids = obj.get("input_ids").or_else(|| obj.get("logits"));
    let isl = match (ids, obj.get("prompt"), obj.get("turns")) {
        (Some(Value::Array(ids)), _, _) => {
            if let Some(bad) = ids.iter().find(|v| v.as_u64().is_none()) {
                return Err(format!(
                    "task {task_id}: input_ids must hold token ids (non-negative integers), got {bad}"
                ));
            }
            ids.len() as u64
        }
        (Some(other), _, _) if !other.is_null() => {
            return Err(format!(
                "task {task_id}: input_ids must be a list, got {other}"
            ));
        }
        (_, Some(Value::String(prompt)), _) => prompt_tokens(prompt),
        (_, _, Some(Value::Array(turns))) => turns
            .iter()
            .map(|t| t.as_str().map(prompt_tokens).unwrap_or(1))
            .sum(),
        _ => {
            return Err(format!(
                "prompt, input_ids, and turns for task {task_id} are all None"
            ));
        }
    };
    if isl == 0 {
        return Err(format!("task {task_id}: empty input"));
    }
    Ok(Entry { isl, osl })
}

/// The double has no tokenizer: a prompt counts one token per whitespace-separated word, plus
/// the BOS token upstream adds when it tokenizes with special tokens.
fn prompt_tokens(prompt: &str) -> u64 {
    prompt.split_whitespace().count() as u64 + 1
}
