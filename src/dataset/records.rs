//! The two dataset layouts upstream writes, byte for byte:
//! JSONL (`--stdout`; what trtllm-bench reads) and the workload JSON document (no `--stdout`;
//! what gptManagerBenchmark reads).

use std::io::Write;

use super::fmt::{ChunkWriter, DigitTable, push_json_str};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// One compact JSON object per line (`json.dumps(..., separators=(",", ":"))`).
    Jsonl,
    /// `{"metadata": {...}, "samples": [...]}` with `json.dump`'s default separators.
    Workload,
}

/// A metadata value of the workload document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaValue {
    Int(i128),
    Str(String),
}

impl std::fmt::Display for MetaValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaValue::Int(v) => write!(f, "{v}"),
            MetaValue::Str(s) => f.write_str(s),
        }
    }
}

/// Workload metadata in upstream's key order; `workload_name` is appended on rendering.
pub type Metadata = Vec<(&'static str, MetaValue)>;

/// `{"lora_name":"lora_<t>","lora_int_id":<t>,"lora_path":"<dir>/<t>"}` pieces.
#[derive(Debug, Clone)]
struct LoraPaths {
    /// The JSON-escaped text of `os.path.join(dir, "")`, without quotes.
    escaped_prefix: Vec<u8>,
}

impl LoraPaths {
    fn new(dir: &str) -> Self {
        // os.path.join(dir, "3") adds a separator unless dir is empty or already ends in one.
        let prefix = if dir.is_empty() || dir.ends_with('/') {
            dir.to_string()
        } else {
            format!("{dir}/")
        };
        let mut quoted = Vec::new();
        push_json_str(&mut quoted, &prefix, false);
        LoraPaths {
            escaped_prefix: quoted[1..quoted.len() - 1].to_vec(),
        }
    }
}

/// Streams records into a writer in one of the two layouts.
pub struct RecordWriter<'w, W: Write + ?Sized> {
    out: ChunkWriter<'w, W>,
    table: DigitTable,
    format: OutputFormat,
    lora: Option<LoraPaths>,
    records: u64,
}

impl<'w, W: Write + ?Sized> RecordWriter<'w, W> {
    /// `id_bound`: ids below it are rendered from a table (the vocabulary size is a good bound).
    /// `lora_dir`: when given, records with a task id other than -1 get a `lora_request`.
    pub fn new(
        out: &'w mut W,
        format: OutputFormat,
        id_bound: u32,
        lora_dir: Option<&str>,
        metadata: &Metadata,
    ) -> std::io::Result<Self> {
        let sep: &'static [u8] = match format {
            OutputFormat::Jsonl => b",",
            OutputFormat::Workload => b", ",
        };
        let mut w = RecordWriter {
            out: ChunkWriter::new(out),
            table: DigitTable::new(id_bound, sep),
            format,
            lora: lora_dir.map(LoraPaths::new),
            records: 0,
        };
        if format == OutputFormat::Workload {
            let mut head = b"{\"metadata\": ".to_vec();
            render_metadata(&mut head, metadata);
            head.extend_from_slice(b", \"samples\": [");
            w.out.put(&head)?;
        }
        Ok(w)
    }

    /// One request: its line index is the JSONL `task_id`; `task_id` is the LoRA task (-1: none).
    pub fn record(&mut self, ids: &[u32], output_len: u64, task_id: i64) -> std::io::Result<()> {
        match self.format {
            OutputFormat::Jsonl => {
                self.out.put(b"{\"task_id\":")?;
                self.out.put_u64(self.records)?;
                self.out.put(b",\"input_ids\":")?;
                self.out.put_array(&self.table, ids)?;
                self.out.put(b",\"output_tokens\":")?;
                self.out.put_u64(output_len)?;
                if let Some(lora) = &self.lora
                    && task_id != -1
                {
                    self.out.put(b",\"lora_request\":{\"lora_name\":\"lora_")?;
                    self.out.put_i64(task_id)?;
                    self.out.put(b"\",\"lora_int_id\":")?;
                    self.out.put_i64(task_id)?;
                    self.out.put(b",\"lora_path\":\"")?;
                    self.out.put(&lora.escaped_prefix)?;
                    self.out.put_i64(task_id)?;
                    self.out.put(b"\"}")?;
                }
                self.out.put(b"}\n")?;
            }
            OutputFormat::Workload => {
                if self.records > 0 {
                    self.out.put(b", ")?;
                }
                self.out.put(b"{\"input_len\": ")?;
                self.out.put_u64(ids.len() as u64)?;
                self.out.put(b", \"input_ids\": ")?;
                self.out.put_array(&self.table, ids)?;
                self.out.put(b", \"output_len\": ")?;
                self.out.put_u64(output_len)?;
                self.out.put(b", \"task_id\": ")?;
                self.out.put_i64(task_id)?;
                self.out.put(b"}")?;
            }
        }
        self.records += 1;
        Ok(())
    }

    /// Closes the document (workload) and flushes; returns the bytes written.
    pub fn finish(mut self) -> std::io::Result<u64> {
        if self.format == OutputFormat::Workload {
            self.out.put(b"]}")?;
        }
        self.out.finish()
    }
}

/// `json.dumps(metadata)` with default separators and `ensure_ascii`, `workload_name` last:
/// `key:value` pairs joined by `__` over every key but `tokenizer`.
fn render_metadata(out: &mut Vec<u8>, metadata: &Metadata) {
    let name = metadata
        .iter()
        .filter(|(k, _)| *k != "tokenizer")
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join("__");
    out.push(b'{');
    let entries = metadata.iter().map(|(k, v)| (*k, v.clone()));
    let all = entries.chain(std::iter::once(("workload_name", MetaValue::Str(name))));
    for (i, (key, value)) in all.enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        push_json_str(out, key, true);
        out.extend_from_slice(b": ");
        match value {
            MetaValue::Int(v) => out.extend_from_slice(v.to_string().as_bytes()),
            MetaValue::Str(s) => push_json_str(out, &s, true),
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_paths_follow_os_path_join() {
        assert_eq!(LoraPaths::new("/loras").escaped_prefix, b"/loras/");
        assert_eq!(LoraPaths::new("/loras/").escaped_prefix, b"/loras/");
        assert_eq!(LoraPaths::new("").escaped_prefix, b"");
        assert_eq!(LoraPaths::new("a\"b").escaped_prefix, b"a\\\"b/");
    }

    #[test]
    fn workload_document_layout() {
        let mut out = Vec::new();
        let meta: Metadata = vec![
            ("workload_type", MetaValue::Str("token-norm-dist".into())),
            ("num_requests", MetaValue::Int(2)),
        ];
        let mut w = RecordWriter::new(&mut out, OutputFormat::Workload, 100, None, &meta).unwrap();
        w.record(&[1, 2], 3, -1).unwrap();
        w.record(&[4], 5, 7).unwrap();
        w.finish().unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"metadata\": {\"workload_type\": \"token-norm-dist\", \"num_requests\": 2, \
             \"workload_name\": \"workload_type:token-norm-dist__num_requests:2\"}, \
             \"samples\": [{\"input_len\": 2, \"input_ids\": [1, 2], \"output_len\": 3, \
             \"task_id\": -1}, {\"input_len\": 1, \"input_ids\": [4], \"output_len\": 5, \
             \"task_id\": 7}]}"
        );
    }
}
