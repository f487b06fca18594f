//! `perfgate history export`: every measurement of the chosen runs, one row each, with its
//! run's metadata, its series key, unit and direction, and the verdict of its series that night
//! when there is one; as CSV, JSON lines, or OpenSearch `_bulk` NDJSON. Rows are streamed run by
//! run from SQLite to the writer: a history of years is never held in memory.
//!
//! For OpenSearch, a serving case (one whose upstream record the history kept) becomes one
//! document shaped as upstream's perf-sanity database holds it instead of a document per
//! measurement: its record's `s_`/`l_`/`b_`/`d_` fields (every match key among them), the
//! sixteen `benchmark_serving` figures (and `d_al`) under upstream's `d_` names, upstream's job
//! fields from the run's metadata, and `ts_created`; every key typed by its prefix as
//! upstream's upload path checks (`OpenSearchDB.typeCheckForOpenSearchDB`). Upstream's upload
//! tools can then ingest perfgate's runs and match them with its own history.

use std::collections::BTreeMap;
use std::io::Write;

use rusqlite::params;
use serde_json::{Map, Value, json};

use super::{CaseRecordRow, History, HistoryError, StoredRun, on};
use crate::perf_sanity::METRIC_FIELDS;
use crate::record::metric::metric;

/// The columns of every format, in order.
pub const COLUMNS: &[&str] = &[
    "run_id",
    "night",
    "started",
    "host",
    "test_prefix",
    "revision",
    "branch",
    "build_url",
    "fingerprint",
    "test_id",
    "perf_case_name",
    "network_name",
    "case",
    "step",
    "metric",
    "unit",
    "direction",
    "repetition",
    "value",
    "state",
    "verdict",
    "gated",
    "baseline",
    "change_pct",
    "mde_pct",
];

/// The default OpenSearch index.
pub const DEFAULT_INDEX: &str = "perfgate-results";

/// One stored measurement and the verdict of its series in its run.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportMeasurement {
    pub test_id: String,
    pub perf_case_name: String,
    pub network_name: String,
    pub case: Option<String>,
    pub step: String,
    pub metric: String,
    pub repetition: u32,
    /// `None` for a failed or invalid row without a value.
    pub value: Option<f64>,
    pub state: String,
    pub verdict: Option<ExportVerdict>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportVerdict {
    pub verdict: String,
    pub gated: bool,
    pub baseline: Option<f64>,
    pub change_pct: Option<f64>,
    pub mde_pct: Option<f64>,
}

impl History {
    /// The runs to export, oldest first: `run_ids` (each must be stored) and the `last` most
    /// recent; all runs when neither is given.
    pub fn export_runs(
        &self,
        run_ids: &[String],
        last: Option<usize>,
    ) -> Result<Vec<StoredRun>, HistoryError> {
        let mut runs: Vec<StoredRun> = Vec::new();
        for id in run_ids {
            let run = self
                .run(id)?
                .ok_or_else(|| super::unknown_run(&self.path, id))?;
            runs.push(run);
        }
        if last.is_some() || run_ids.is_empty() {
            runs.extend(self.runs(last.unwrap_or(usize::MAX))?);
        }
        runs.sort_by_key(|r| r.night);
        runs.dedup_by_key(|r| r.night);
        Ok(runs)
    }

    /// Calls `each` for every measurement of the run of `night`, in series and repetition
    /// order, as SQLite reads them (through the by-night index: no sort, no buffering).
    pub fn for_each_measurement<E: From<HistoryError>>(
        &self,
        night: i64,
        mut each: impl FnMut(ExportMeasurement) -> Result<(), E>,
    ) -> Result<(), E> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(EXPORT_SQL)
            .map_err(on(path, "cannot prepare the export query"))?;
        let mut rows = stmt
            .query(params![night])
            .map_err(on(path, "cannot read measurements"))?;
        loop {
            let row = rows.next().map_err(on(path, "cannot read a measurement"))?;
            let Some(r) = row else { break };
            let read = |r: &rusqlite::Row<'_>| -> rusqlite::Result<ExportMeasurement> {
                let case: String = r.get(3)?;
                let verdict: Option<String> = r.get(9)?;
                Ok(ExportMeasurement {
                    test_id: r.get(0)?,
                    perf_case_name: r.get(1)?,
                    network_name: r.get(2)?,
                    case: (!case.is_empty()).then_some(case),
                    step: r.get(4)?,
                    metric: r.get(5)?,
                    repetition: r.get(6)?,
                    value: r.get(7)?,
                    state: r.get(8)?,
                    verdict: match verdict {
                        Some(verdict) => Some(ExportVerdict {
                            verdict,
                            gated: r.get(10)?,
                            baseline: r.get(11)?,
                            change_pct: r.get(12)?,
                            mde_pct: r.get(13)?,
                        }),
                        None => None,
                    },
                })
            };
            let m = read(r).map_err(on(path, "cannot read a measurement"))?;
            each(m)?;
        }
        Ok(())
    }
}

/// One run's measurements with their verdicts. `ORDER BY` follows the by-night index
/// (`night`, then the key's `case_id`, `repetition`), so SQLite streams rows without sorting.
const EXPORT_SQL: &str = "
SELECT c.test_id, c.perf_case_name, c.network_name, c.case_dir, c.step,
       c.metric, m.repetition, m.value, m.state,
       v.verdict, v.gated, v.baseline, v.change_pct, v.mde_pct
FROM measurements m
JOIN cases c ON c.id = m.case_id
LEFT JOIN verdicts v ON v.night = m.night AND v.perf_case_name = c.perf_case_name
                    AND v.step = c.step AND v.metric = c.metric
WHERE m.night = ?1
ORDER BY m.case_id, m.repetition";

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
    OpensearchBulk,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes exported rows to `out` in one format.
pub struct ExportWriter<W: Write> {
    format: Format,
    index: String,
    sink: Sink<W>,
    rows: u64,
    documents: u64,
    skipped: Vec<String>,
}

/// A serving case's record and its measurements in one run, gathered for its document.
struct ServingCase {
    record: CaseRecordRow,
    measurements: Vec<ExportMeasurement>,
}

enum Sink<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Lines(W),
}

impl<W: Write> ExportWriter<W> {
    /// A writer; the CSV header is written at once (an empty export is a header-only CSV).
    pub fn new(format: Format, index: &str, out: W) -> std::io::Result<ExportWriter<W>> {
        let sink = match format {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(COLUMNS).map_err(std::io::Error::other)?;
                Sink::Csv(Box::new(w))
            }
            Format::Jsonl | Format::OpensearchBulk => Sink::Lines(out),
        };
        Ok(ExportWriter {
            format,
            index: index.to_string(),
            sink,
            rows: 0,
            documents: 0,
            skipped: Vec::new(),
        })
    }

    /// How many measurement rows were written.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// How many serving cases were written as perf-sanity documents (OpenSearch).
    pub fn documents(&self) -> u64 {
        self.documents
    }

    /// Serving cases left out of the OpenSearch export, each with why (upstream uploads no
    /// document for a case whose figures are incomplete).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Exports one run of `history`. For OpenSearch, the run's serving cases are gathered
    /// (a few dozen rows each) and written as one perf-sanity document each after its other
    /// measurements, which stream as they are read.
    pub fn write_run(&mut self, history: &History, run: &StoredRun) -> Result<(), ExportError> {
        let mut serving: BTreeMap<(String, String, Option<String>), ServingCase> = BTreeMap::new();
        if self.format == Format::OpensearchBulk {
            for record in history.case_records_of_night(run.night)? {
                let key = (
                    record.test_id.clone(),
                    record.network_name.clone(),
                    record.case.clone(),
                );
                serving.insert(
                    key,
                    ServingCase {
                        record,
                        measurements: Vec::new(),
                    },
                );
            }
        }
        history.for_each_measurement(run.night, |m| -> Result<(), ExportError> {
            if !serving.is_empty() {
                let key = (m.test_id.clone(), m.network_name.clone(), m.case.clone());
                if let Some(case) = serving.get_mut(&key) {
                    case.measurements.push(m);
                    return Ok(());
                }
            }
            Ok(self.write(run, &m)?)
        })?;
        for case in serving.into_values() {
            match perf_sanity_document(run, &case.record, &case.measurements) {
                Ok(doc) => self.write_document(run, &case.record, doc)?,
                Err(why) => self.skipped.push(format!(
                    "{} [{}]: {why}",
                    case.record.test_id, case.record.network_name
                )),
            }
        }
        Ok(())
    }

    fn write_document(
        &mut self,
        run: &StoredRun,
        record: &CaseRecordRow,
        doc: Map<String, Value>,
    ) -> std::io::Result<()> {
        let Sink::Lines(out) = &mut self.sink else {
            return Ok(());
        };
        self.documents += 1;
        let action =
            json!({"index": {"_index": self.index, "_id": serving_document_id(run, record)}});
        writeln!(out, "{action}")?;
        writeln!(out, "{}", Value::Object(doc))
    }

    pub fn write(&mut self, run: &StoredRun, m: &ExportMeasurement) -> std::io::Result<()> {
        self.rows += 1;
        let doc = document(run, m);
        let out = match &mut self.sink {
            Sink::Lines(out) => out,
            Sink::Csv(w) => {
                let cells = COLUMNS.iter().map(|c| match doc.get(*c) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    // Shortest round-tripping decimal: `1234`, not JSON's `1234.0`.
                    Some(Value::Number(n)) if n.is_f64() => {
                        n.as_f64().map(|f| f.to_string()).unwrap_or_default()
                    }
                    Some(v) => v.to_string(),
                });
                return w.write_record(cells).map_err(std::io::Error::other);
            }
        };
        if self.format == Format::OpensearchBulk {
            let action =
                serde_json::json!({"index": {"_index": self.index, "_id": document_id(run, m)}});
            let mut doc = doc;
            doc.insert("@timestamp".into(), Value::String(run.meta.started.clone()));
            writeln!(out, "{action}")?;
            writeln!(out, "{}", Value::Object(doc))
        } else {
            writeln!(out, "{}", Value::Object(doc))
        }
    }

    /// Flushes and returns the output.
    pub fn finish(self) -> std::io::Result<W> {
        match self.sink {
            Sink::Csv(w) => w.into_inner().map_err(|e| e.into_error()),
            Sink::Lines(mut out) => {
                out.flush()?;
                Ok(out)
            }
        }
    }
}

/// One row as a JSON object, keys in [`COLUMNS`] order.
pub fn document(run: &StoredRun, m: &ExportMeasurement) -> Map<String, Value> {
    let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
    let num = |v: Option<f64>| {
        v.and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number)
    };
    let def = metric(&m.metric);
    let v = m.verdict.as_ref();
    let mut d = Map::new();
    d.insert("run_id".into(), run.meta.run_id.clone().into());
    d.insert("night".into(), run.night.into());
    d.insert("started".into(), run.meta.started.clone().into());
    d.insert("host".into(), run.meta.host.clone().into());
    d.insert("test_prefix".into(), text(&run.meta.test_prefix));
    d.insert("revision".into(), text(&run.meta.revision));
    d.insert("branch".into(), text(&run.meta.branch));
    d.insert("build_url".into(), text(&run.meta.build_url));
    d.insert("fingerprint".into(), run.meta.fingerprint.clone().into());
    d.insert("test_id".into(), m.test_id.clone().into());
    d.insert("perf_case_name".into(), m.perf_case_name.clone().into());
    d.insert("network_name".into(), m.network_name.clone().into());
    d.insert("case".into(), text(&m.case));
    d.insert("step".into(), m.step.clone().into());
    d.insert("metric".into(), m.metric.clone().into());
    d.insert(
        "unit".into(),
        def.map_or(Value::Null, |d| d.unit.symbol().into()),
    );
    d.insert(
        "direction".into(),
        def.and_then(|d| serde_json::to_value(d.direction).ok())
            .unwrap_or(Value::Null),
    );
    d.insert("repetition".into(), m.repetition.into());
    d.insert("value".into(), num(m.value));
    d.insert("state".into(), m.state.clone().into());
    d.insert(
        "verdict".into(),
        v.map_or(Value::Null, |v| v.verdict.clone().into()),
    );
    d.insert("gated".into(), v.map_or(Value::Null, |v| v.gated.into()));
    d.insert("baseline".into(), num(v.and_then(|v| v.baseline)));
    d.insert("change_pct".into(), num(v.and_then(|v| v.change_pct)));
    d.insert("mde_pct".into(), num(v.and_then(|v| v.mde_pct)));
    d
}

/// The `_id` of a row: the same run, series and repetition always get the same id, so loading
/// an export twice replaces documents instead of duplicating them.
pub fn document_id(run: &StoredRun, m: &ExportMeasurement) -> String {
    let key = [
        run.meta.run_id.as_str(),
        &m.test_id,
        &m.perf_case_name,
        &m.network_name,
        m.case.as_deref().unwrap_or(""),
        &m.step,
        &m.metric,
        &m.repetition.to_string(),
    ]
    .join("\u{1f}");
    crate::textutil::sha256_hex(key.as_bytes())[..40].to_string()
}

/// The `_id` of a serving case's document: stable per run and case, so loading an export
/// twice replaces documents.
pub fn serving_document_id(run: &StoredRun, record: &CaseRecordRow) -> String {
    let key = [
        "perf-sanity",
        run.meta.run_id.as_str(),
        &record.test_id,
        &record.network_name,
        record.case.as_deref().unwrap_or(""),
    ]
    .join("\u{1f}");
    crate::textutil::sha256_hex(key.as_bytes())[..40].to_string()
}

/// Upstream's job fields (`get_job_info`) from a run's metadata: the host, the CI build URL
/// (upstream's job URL, where `PostMerge` in it makes a post-merge run), branch and commit;
/// upstream's trigger fields stay empty (perfgate does not read Jenkins' `globalVars`).
fn job_fields(run: &StoredRun) -> Map<String, Value> {
    let text = |v: &Option<String>| json!(v.clone().unwrap_or_default());
    let url = run.meta.build_url.clone().unwrap_or_default();
    let post_merge = url.contains("PostMerge");
    let mut m = Map::new();
    m.insert("b_is_baseline".into(), json!(false));
    m.insert("s_host_node_name".into(), json!(run.meta.host));
    m.insert("s_build_id".into(), json!(""));
    m.insert("s_build_url".into(), json!(url));
    m.insert("s_job_name".into(), json!(""));
    m.insert("s_job_id".into(), json!(""));
    m.insert("s_job_url".into(), json!(url));
    m.insert("s_branch".into(), text(&run.meta.branch));
    m.insert("s_commit".into(), text(&run.meta.revision));
    m.insert("b_is_post_merge".into(), json!(post_merge));
    m.insert("b_is_pr_job".into(), json!(!post_merge));
    for k in [
        "s_trigger_mr_user",
        "s_trigger_mr_link",
        "s_trigger_mr_id",
        "s_trigger_mr_commit",
    ] {
        m.insert(k.into(), json!(""));
    }
    m.insert("s_stage_name".into(), text(&run.meta.test_prefix));
    m
}

/// Upstream's type for a key's prefix (`l_` int, `d_` float, `s_` string, `b_` bool, `ts_`
/// int); `None` for a key its upload path does not accept.
pub fn perf_sanity_key_type(key: &str) -> Option<&'static str> {
    [
        ("l_", "int"),
        ("d_", "float"),
        ("s_", "str"),
        ("b_", "bool"),
        ("ts_", "int"),
    ]
    .iter()
    .find(|(p, _)| key.starts_with(p))
    .map(|(_, t)| *t)
}

/// A value as upstream's type for its key wants it: `d_` numbers as floats (a config's `0` is
/// `0.0`), `l_` floats that are whole as ints; `None` for a value of another type.
fn typed(key: &str, v: &Value) -> Option<Value> {
    match (perf_sanity_key_type(key)?, v) {
        ("float", Value::Number(n)) => n
            .as_f64()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number)),
        ("int", Value::Number(n)) if n.is_i64() || n.is_u64() => Some(v.clone()),
        ("int", Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| json!(f as i64)),
        ("str", Value::String(_)) | ("bool", Value::Bool(_)) => Some(v.clone()),
        _ => None,
    }
}

/// One serving case of one run as upstream's perf-sanity database holds it (see the module
/// docs), or why it has no document: a figure with no valid value (upstream uploads nothing
/// for such a case either), or a record field upstream's upload path would reject.
pub fn perf_sanity_document(
    run: &StoredRun,
    record: &CaseRecordRow,
    measurements: &[ExportMeasurement],
) -> Result<Map<String, Value>, String> {
    let Some(Value::Object(fields)) = record.record.get("fields") else {
        return Err("its upstream record has no fields".into());
    };
    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(run.meta.started));
    doc.insert(
        "ts_created".into(),
        json!(
            chrono::DateTime::parse_from_rfc3339(&run.meta.started)
                .map(|t| t.timestamp_millis())
                .unwrap_or(0)
        ),
    );
    doc.extend(job_fields(run));
    for (k, v) in fields {
        let v = typed(k, v).ok_or_else(|| {
            format!("its record's `{k}` = {v} is not what upstream's upload path accepts")
        })?;
        doc.insert(k.clone(), v);
    }
    // Valid repetitions' mean per figure, as the gate's value; the verdicts of the figures.
    let mut values: BTreeMap<&str, (f64, u32)> = BTreeMap::new();
    let mut verdicts: BTreeMap<&str, &ExportVerdict> = BTreeMap::new();
    let mut all_valid = true;
    for m in measurements {
        if m.state != "valid" {
            all_valid = false;
        }
        if let (Some(v), "valid") = (m.value.filter(|v| v.is_finite()), m.state.as_str()) {
            let e = values.entry(m.metric.as_str()).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
        if let Some(v) = &m.verdict {
            verdicts.insert(m.metric.as_str(), v);
        }
    }
    let speculative = fields
        .get("s_spec_decoding_type")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    let mut regressions = Vec::new();
    for (field, name) in METRIC_FIELDS {
        let value = values.get(name).map(|(sum, n)| sum / f64::from(*n));
        match value {
            Some(v) => {
                doc.insert(field.into(), json!(v));
            }
            None if field == "d_al" && !speculative => continue,
            None => return Err(format!("no valid {name} (`{field}`) in this run")),
        }
        if let Some(v) = verdicts.get(name) {
            if v.gated && v.verdict == "FAIL" {
                regressions.push(field);
            }
            if let Some(b) = v.baseline.filter(|b| b.is_finite()) {
                doc.insert(format!("d_baseline_{}", &field[2..]), json!(b));
            }
        }
    }
    doc.insert("b_is_valid".into(), json!(all_valid));
    doc.insert("b_is_regression".into(), json!(!regressions.is_empty()));
    if !regressions.is_empty() {
        doc.insert("s_regression_info".into(), json!(regressions.join(", ")));
    }
    doc.insert("s_perfgate_run_id".into(), json!(run.meta.run_id));
    doc.insert("s_perfgate_test_id".into(), json!(record.test_id));
    Ok(doc)
}

/// OpenSearch's rules for an index name, checked before anything is written.
pub fn check_index_name(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`{name}` is not an OpenSearch index name: {why}"));
    if name.is_empty() || name.len() > 255 {
        return bad("it must be 1 to 255 bytes long");
    }
    if name == "." || name == ".." {
        return bad("it cannot be `.` or `..`");
    }
    if name.starts_with(['-', '_', '+']) {
        return bad("it cannot start with -, _ or +");
    }
    if name.chars().any(|c| c.is_uppercase()) {
        return bad("it must be lowercase");
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
        )
    }) {
        return bad(&format!("it cannot contain `{c}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streaming needs a plan without a sort (a temp B-tree holds every row) and without a
    /// scan of another run's rows.
    #[test]
    fn the_export_query_streams_through_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let history = History::open(&dir.path().join("h.sqlite")).expect("open");
        let mut stmt = history
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {EXPORT_SQL}"))
            .expect("explain");
        let plan: Vec<String> = stmt
            .query_map(params![1], |r| r.get::<_, String>(3))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let plan = plan.join("\n");
        assert!(
            !plan.contains("TEMP B-TREE"),
            "a sort in the export plan:\n{plan}"
        );
        assert!(
            !plan.lines().any(|l| l.starts_with("SCAN")),
            "a full scan in the export plan:\n{plan}"
        );
    }

    #[test]
    fn index_names_follow_opensearch_rules() {
        assert!(check_index_name("perfgate-results").is_ok());
        for bad in ["", "Perf", "_x", "a b", "a,b", "a:b", ".."] {
            assert!(check_index_name(bad).is_err(), "{bad}");
        }
    }
}
