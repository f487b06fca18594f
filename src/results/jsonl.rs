//! `results.jsonl`: perfgate's own record, one JSON object per line for every case, metric and
//! repetition (with unit, direction, state, environment, the command and its log), plus one
//! summary line per metric (mean, stddev, min, max) when a case ran more than once. Readers
//! stream it; a line is appended and synced as each case finishes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Map, Value, json};

use crate::record::metric::metric;
use crate::record::{CaseResult, State, rfc3339};

pub const NAME: &str = "results.jsonl";

pub struct JsonlWriter {
    path: PathBuf,
    file: File,
    /// The same for every record of the run: host, versions, GPU, options.
    env: Value,
    run_id: String,
}

impl JsonlWriter {
    pub fn open(dir: &Path, run_id: &str, env: Map<String, Value>) -> anyhow::Result<JsonlWriter> {
        let path = dir.join(NAME);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        Ok(JsonlWriter {
            path,
            file,
            env: Value::Object(env),
            run_id: run_id.to_string(),
        })
    }

    pub fn write(&mut self, case: &CaseResult) -> anyhow::Result<()> {
        let mut out = String::new();
        for line in records(case, &self.run_id, &self.env) {
            out.push_str(&line.to_string());
            out.push('\n');
        }
        self.file
            .write_all(out.as_bytes())
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("{}: cannot write", self.path.display()))
    }
}

/// The lines of one case.
pub fn records(case: &CaseResult, run_id: &str, env: &Value) -> Vec<Value> {
    let base = |step: &str| {
        json!({
            "run_id": run_id,
            "test_id": case.id.test_id,
            "name": case.id.raw,
            "label": case.id.label,
            "case": case.id.case,
            "step": step,
        })
    };
    let with = |mut v: Value, extra: Value| {
        if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
            a.extend(b);
        }
        v
    };
    let describe = |name: &str| match metric(name) {
        Some(d) => json!({"unit": d.unit.symbol(), "direction": d.direction}),
        None => json!({"unit": null, "direction": null}),
    };
    let mut lines = Vec::new();
    if case.measurements.is_empty() {
        lines.push(with(
            base("none"),
            json!({"metric": null, "value": null, "state": case.state(), "reason": case.reason, "env": env}),
        ));
    }
    let repetitions = |step: &str| case.of_step(step).count();
    for m in &case.measurements {
        let common = json!({
            "repetition": m.repetition,
            "repetitions": repetitions(m.step),
            "state": m.state,
            "reason": m.reason,
            "time": rfc3339(m.ended),
            "started": rfc3339(m.started),
            "duration_s": m.duration.as_secs_f64(),
            "command": m.command,
            "log": m.log.display().to_string(),
            "warnings": m.warnings,
            "env": env,
        });
        if m.metrics.is_empty() {
            lines.push(with(
                with(base(m.step), json!({"metric": null, "value": null})),
                common.clone(),
            ));
        }
        for (name, value) in &m.metrics {
            let v = with(base(m.step), json!({"metric": name, "value": value}));
            lines.push(with(with(v, describe(name)), common.clone()));
        }
    }
    for (step, name) in case.metric_names() {
        if repetitions(step) < 2 {
            continue;
        }
        if let Some(stats) = case.stats(step, &name) {
            let v = with(
                base(step),
                json!({"metric": name, "repetition": null, "summary": stats, "state": case.state(), "env": env}),
            );
            lines.push(with(v, describe(&name)));
        }
    }
    if let (Some(record), Some(Value::Object(first))) = (&case.upstream_record, lines.first_mut()) {
        first.insert("upstream_record".into(), record.clone());
    }
    lines
}

/// One line of `results.jsonl` as read back: a measured metric of one repetition, a step or
/// case that measured nothing (`metric` is `None`), or a per-metric summary of a repeated
/// step (`repetition` is `None`, `summary` is set).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Record {
    pub run_id: String,
    pub test_id: String,
    /// The name as the list spells it.
    pub name: String,
    /// The canonical label (upstream's `network_name`).
    pub label: String,
    pub case: Option<String>,
    /// `build`, `throughput`, `latency`, ... or `none` for a case that never got to a step.
    pub step: String,
    pub metric: Option<String>,
    pub value: Option<f64>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub repetition: Option<u32>,
    #[serde(default)]
    pub repetitions: Option<u32>,
    pub state: State,
    #[serde(default)]
    pub reason: Option<String>,
    /// When the repetition ended and began (RFC 3339).
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub started: Option<String>,
    #[serde(default)]
    pub duration_s: Option<f64>,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub log: Option<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub summary: Option<Value>,
    #[serde(default)]
    pub env: Value,
    /// A serving case's upstream record (`{"fields", "match_keys"}`), on the case's first
    /// line only.
    #[serde(default)]
    pub upstream_record: Option<Value>,
}

impl Record {
    /// A measured value of one repetition (not a summary, not an empty step).
    pub fn is_measurement(&self) -> bool {
        self.metric.is_some() && self.repetition.is_some()
    }
}

/// Reads a `results.jsonl` (several runs may have appended to one file). A line that is not a
/// record is an error naming the file and line; blank lines are skipped.
pub fn read(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text = crate::textutil::read_text(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| {
                format!(
                    "{}:{}: expected one perfgate result record (JSON) per line",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}
