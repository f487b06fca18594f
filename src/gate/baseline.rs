//! Stored baselines: `baselines/<prefix>.csv`, one file per test prefix (GPU type / CI stage),
//! read and written in a superset of upstream's `base_perf.csv`.
//!
//! The first seven columns are upstream's (`network_name, perf_case_name, test_name, threshold,
//! absolute_threshold, metric_type, perf_metric`), so upstream's `sanity_perf_check.py` and
//! anything else that reads `base_perf.csv` by column name keeps working on our files; perfgate
//! adds the provenance a re-baselining knows: `direction, unit, log_scale, nights, fingerprint,
//! reason, updated`. An upstream file is read as it is (the extra columns are optional).
//!
//! Reading is strict, because a baseline that silently means something else is worse than none:
//! columns are found by header name in any order; a missing upstream column, an unknown column
//! (it would be dropped when the file is rewritten, and is most likely a typo of one of ours),
//! a duplicate key, an unknown metric type, a metric type that disagrees with the key, a value
//! that is not a finite number, a throughput or time that is zero or negative, a direction or
//! unit that contradicts the metric table: each is reported as `file:line: what was expected`,
//! every problem of the file at once.
//!
//! Direction always comes from the metric table ([`crate::record::metric`]), never from the
//! sign of `threshold` (upstream's sign is wrong for `TOTAL_TOKEN_THROUGHPUT` and
//! `USER_THROUGHPUT`). Upstream's signed thresholds are kept and written back as they are, so
//! upstream tools read the same numbers.

pub mod update;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::stats::StoredBaseline;
use crate::record::VerdictRecord;
use crate::record::metric::{Direction, METRICS, MetricDef, Unit, metric};
use crate::textutil::clip;

/// Upstream's `base_perf.csv` columns, in upstream's order. All are required.
pub const UPSTREAM_COLUMNS: [&str; 7] = [
    "network_name",
    "perf_case_name",
    "test_name",
    "threshold",
    "absolute_threshold",
    "metric_type",
    "perf_metric",
];

/// perfgate's provenance columns, written after upstream's. All are optional when reading.
pub const PERFGATE_COLUMNS: [&str; 7] = [
    "direction",
    "unit",
    "log_scale",
    "nights",
    "fingerprint",
    "reason",
    "updated",
];

/// The file of a test prefix: `<dir>/<prefix>.csv`, or `<dir>/default.csv` with no prefix.
/// A prefix must be one plain file name (a GPU type or CI stage such as
/// `H100_PCIe-TensorRT-Perf-1`), never a path.
pub fn baseline_path(dir: &Path, prefix: Option<&str>) -> Result<PathBuf, BaselineError> {
    let name = match prefix {
        None => "default",
        Some(p) => {
            let bad = p.is_empty()
                || p.starts_with('.')
                || p.chars().any(|c| {
                    matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
                        || c.is_control()
                });
            if bad {
                return Err(BaselineError::BadPrefix(p.to_string()));
            }
            p
        }
    };
    Ok(dir.join(format!("{name}.csv")))
}

/// The test prefix a `perf_case_name` (or test id) carries: `H100_PCIe-TensorRT-Perf-1` for
/// `H100_PCIe-TensorRT-Perf-1/perf/test_perf.py::...`, `None` for `perf/test_perf.py::...`.
pub fn prefix_of(perf_case_name: &str) -> Option<&str> {
    let domain = perf_case_name
        .split_once("::")
        .map_or(perf_case_name, |(d, _)| d);
    if domain.starts_with("perf/") {
        return None;
    }
    domain
        .rsplit_once("/perf/")
        .map(|(p, _)| p)
        .filter(|p| !p.is_empty())
}

/// One problem of a baseline file, at a line (1-based; the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error(transparent)]
    Read(#[from] crate::textutil::TextFileError),
    /// Every problem found, each as `file:line: message`.
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
    #[error(
        "test prefix `{0}` cannot name a baseline file: expected a plain name such as \
         `H100_PCIe-TensorRT-Perf-1` (no `/`, `\\`, leading `.` or control characters)"
    )]
    BadPrefix(String),
}

impl BaselineError {
    /// The problems of an invalid file (empty for the other errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            BaselineError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| format!("{}:{}: {}", path.display(), p.line, p.message))
        .collect();
    lines.join("\n")
}

/// One baseline: one case and metric, keyed by `perf_case_name`.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRow {
    /// The canonical label of the case.
    pub network_name: String,
    /// `<prefix>/perf/test_perf.py::test_perf_metric_<type>[<label>]`: the key.
    pub perf_case_name: String,
    /// `test_perf_metric_<type>[<label>]`.
    pub test_name: String,
    /// Upstream's relative threshold, sign included as upstream writes it (the sign is not the
    /// direction: see the module docs).
    pub threshold: f64,
    pub absolute_threshold: f64,
    /// The metric's name in the metric table (`TOKEN_THROUGHPUT`, ...).
    pub metric_type: String,
    /// The baseline value, in the metric table's unit.
    pub perf_metric: f64,
    /// As written in the file; when present it must agree with the metric table.
    pub direction: Option<Direction>,
    /// Unit symbol as written; when present it must be the metric table's.
    pub unit: Option<String>,
    /// Per-night noise (SD of ln nightly values, ≈ CV) the value came with.
    pub log_scale: Option<f64>,
    /// Nights of history behind `log_scale`.
    pub nights: Option<u32>,
    /// The environment the value was measured in, `key=value;key=value`.
    pub fingerprint: Option<String>,
    /// Why the value is what it is (who re-baselined, which change).
    pub reason: Option<String>,
    /// When it was last written, RFC 3339.
    pub updated: Option<String>,
    /// The row's line in the file it was read from (0 for a row not read from a file).
    pub line: usize,
    verbatim: Verbatim,
}

/// The text numbers had in the file, so a rewrite leaves rows it did not change byte for byte
/// as they were (`30` stays `30`, `0.0` stays `0.0`) and the diff shows only real changes.
#[derive(Debug, Clone, Default)]
struct Verbatim(Vec<(&'static str, f64, String)>);

impl Verbatim {
    fn text(&self, column: &str, value: f64) -> String {
        self.0
            .iter()
            .find(|(c, v, _)| *c == column && v.to_bits() == value.to_bits())
            .map_or_else(|| format_number(value), |(_, _, t)| t.clone())
    }
}

/// Row equality is about content, not about how its numbers were spelled.
impl PartialEq for Verbatim {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Shortest round-tripping decimal, integers without a fraction (`30`, `0.1`, `9820.38162`):
/// the spelling perfgate's upstream results CSV uses.
fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Five significant digits: a noise scale is an estimate, and `0.011000000000000001` (from
/// `1.1 / 100`) would only make the file harder to read.
fn round_significant(v: f64) -> f64 {
    format!("{v:.4e}").parse().unwrap_or(v)
}

/// The parts of a `perf_case_name`.
struct CaseName<'a> {
    /// `test_perf_metric_<type>[<label>]`.
    test_name: &'a str,
    /// `<type>` as written (upstream writes it lower-case).
    metric: &'a str,
    label: &'a str,
}

fn split_case_name(name: &str) -> Option<CaseName<'_>> {
    let (domain, test_name) = name.split_once("::")?;
    let rest = test_name.strip_prefix("test_perf_metric_")?;
    let (metric, bracketed) = rest.split_once('[')?;
    let label = bracketed.strip_suffix(']')?;
    (!domain.is_empty() && !metric.is_empty() && !label.is_empty()).then_some(CaseName {
        test_name,
        metric,
        label,
    })
}

/// Metrics whose value is a rate or a duration: zero means "not measured", never a baseline.
/// Sizes and memory may be 0 (upstream writes `0.0` for a KV cache size it did not find); such
/// a row is kept but not compared (see [`BaselineRow::stored`]).
fn must_be_positive(def: &MetricDef) -> bool {
    matches!(
        def.unit,
        Unit::Milliseconds
            | Unit::Seconds
            | Unit::TokensPerSecond
            | Unit::RequestsPerSecond
            | Unit::TokensPerSecondPerUser
            | Unit::TokensPerSecondPerGpu
    )
}

fn unknown_metric_message(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    let suggestion = if metric(&upper).is_some() {
        format!(" (did you mean `{upper}`? names are upper-case)")
    } else {
        let close = crate::textutil::closest(&upper, METRICS.iter().map(|m| m.name), 3);
        if close.is_empty() {
            String::new()
        } else {
            format!(" (did you mean `{}`?)", close.join("`, `"))
        }
    };
    format!(
        "metric_type `{}` is not in the metric table{suggestion}",
        clip(name)
    )
}

impl BaselineRow {
    /// The metric's table entry (always there for a row that was read or built here).
    pub fn metric(&self) -> Option<&'static MetricDef> {
        metric(&self.metric_type)
    }

    /// The direction from the metric table (never from the threshold's sign); the row's own
    /// column only when the metric is unknown, which a validated row never is.
    pub fn effective_direction(&self) -> Option<Direction> {
        self.metric().map(|d| d.direction).or(self.direction)
    }

    /// The baseline for the gate, or `None` when the value is no baseline at all (upstream's
    /// `0.0` placeholder for a size it did not find): the gate then treats the metric as NEW.
    pub fn stored(&self) -> Option<StoredBaseline> {
        (self.perf_metric.is_finite() && self.perf_metric > 0.0).then(|| StoredBaseline {
            center: self.perf_metric,
            rel_threshold: self.threshold,
            abs_threshold: self.absolute_threshold,
            log_scale: self
                .log_scale
                .zip(self.nights)
                .map(|(s, n)| (s, n as usize)),
        })
    }

    /// The environment as `(key, value)` pairs, in file order.
    pub fn fingerprint_pairs(&self) -> Vec<(&str, &str)> {
        self.fingerprint
            .as_deref()
            .map(fingerprint_pairs)
            .unwrap_or_default()
    }

    /// A row for a gate record: its value, direction, unit, environment; the noise and the
    /// nights behind it when the record knows them (else the old row's); thresholds from the
    /// old row, else the metric table, else the record, else `±0.1, 0` signed upstream's way.
    /// The result is not validated: [`BaselineRow::problems`] says what is wrong with it.
    pub fn from_record(
        rec: &VerdictRecord,
        old: Option<&BaselineRow>,
        reason: &str,
        updated: &str,
    ) -> BaselineRow {
        let def = metric(&rec.metric);
        let (threshold, absolute_threshold) = old
            .map(|o| (o.threshold, o.absolute_threshold))
            .or_else(|| def.and_then(|d| d.upstream_threshold))
            .or_else(|| rec.threshold.zip(rec.absolute_threshold))
            .unwrap_or(match rec.direction {
                Direction::HigherIsBetter => (-0.1, 0.0),
                Direction::LowerIsBetter => (0.1, 0.0),
            });
        // The noise is a property of the case: a record that could not estimate it keeps the
        // one the old row came with.
        let noise = rec
            .noise_pct
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(|n| round_significant(n / 100.0));
        let (log_scale, nights) = match (noise, rec.source.as_str()) {
            (Some(s), "history") if rec.history_nights > 0 => (
                Some(s),
                Some(u32::try_from(rec.history_nights).unwrap_or(u32::MAX)),
            ),
            (Some(s), "baseline") if old.and_then(|o| o.nights).is_some() => {
                (Some(s), old.and_then(|o| o.nights))
            }
            _ => (
                old.and_then(|o| o.log_scale),
                old.and_then(|o| o.log_scale.and(o.nights)),
            ),
        };
        let (network_name, test_name) = match split_case_name(&rec.perf_case_name) {
            Some(parts) => (parts.label.to_string(), parts.test_name.to_string()),
            None => (rec.network_name.clone(), rec.test_name.clone()),
        };
        BaselineRow {
            network_name,
            perf_case_name: rec.perf_case_name.clone(),
            test_name,
            threshold,
            absolute_threshold,
            metric_type: rec.metric.clone(),
            perf_metric: rec.value.unwrap_or(f64::NAN),
            direction: Some(rec.direction),
            unit: Some(rec.unit.clone()),
            log_scale,
            nights,
            fingerprint: Some(rec.fingerprint.clone()).filter(|f| !f.is_empty()),
            reason: Some(reason.to_string()),
            updated: Some(updated.to_string()),
            line: old.map_or(0, |o| o.line),
            verbatim: old.map(|o| o.verbatim.clone()).unwrap_or_default(),
        }
    }

    /// Everything wrong with the row's content (numbers that parsed, but mean nothing or
    /// contradict the metric table or the key). Empty for a good row.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let def = metric(&self.metric_type);
        if def.is_none() {
            out.push(unknown_metric_message(&self.metric_type));
        }
        match split_case_name(&self.perf_case_name) {
            None => out.push(format!(
                "perf_case_name `{}`: expected \
                 `<prefix>/perf/test_perf.py::test_perf_metric_<type>[<label>]`",
                clip(&self.perf_case_name)
            )),
            Some(parts) => {
                if def.is_some() && !parts.metric.eq_ignore_ascii_case(&self.metric_type) {
                    out.push(format!(
                        "metric_type `{}` does not match perf_case_name's `test_perf_metric_{}`: \
                         expected metric_type `{}`",
                        clip(&self.metric_type),
                        clip(parts.metric),
                        parts.metric.to_ascii_uppercase()
                    ));
                }
                if self.test_name != parts.test_name {
                    out.push(format!(
                        "test_name `{}` does not match perf_case_name: expected `{}`",
                        self.test_name, parts.test_name
                    ));
                }
                if self.network_name != parts.label {
                    out.push(format!(
                        "network_name `{}` does not match the label in perf_case_name: \
                         expected `{}`",
                        self.network_name, parts.label
                    ));
                }
            }
        }
        if let Some(def) = def {
            let v = self.perf_metric;
            if !v.is_finite() {
                out.push(format!(
                    "perf_metric is {v}: expected a finite number in {}",
                    def.unit
                ));
            } else if v < 0.0 {
                out.push(format!(
                    "perf_metric is {v}: {} cannot be negative",
                    def.name
                ));
            } else if v == 0.0 && must_be_positive(def) {
                out.push(format!(
                    "perf_metric is 0: {} is a rate or a duration ({}) and 0 means it was not \
                     measured; a baseline must be > 0 (delete the row to treat the metric as NEW)",
                    def.name, def.unit
                ));
            }
            if let Some(d) = self.direction
                && d != def.direction
            {
                out.push(format!(
                    "direction `{d}` contradicts the metric table: {} is {}-is-better \
                     (perfgate takes the direction from its table, never from a threshold's sign)",
                    def.name, def.direction
                ));
            }
            if let Some(u) = &self.unit
                && u != def.unit.symbol()
            {
                out.push(format!(
                    "unit `{u}` contradicts the metric table: {} is stored in `{}`",
                    def.name, def.unit
                ));
            }
        }
        for (column, v) in [
            ("threshold", self.threshold),
            ("absolute_threshold", self.absolute_threshold),
        ] {
            if !v.is_finite() {
                out.push(format!("{column} is {v}: expected a finite number"));
            }
        }
        if let Some(s) = self.log_scale {
            if !(s.is_finite() && s >= 0.0) {
                out.push(format!(
                    "log_scale is {s}: expected a finite noise scale >= 0 (SD of ln values)"
                ));
            }
            if self.nights.unwrap_or(0) == 0 {
                out.push(
                    "log_scale needs nights: the number of nights (>= 1) it was estimated from"
                        .into(),
                );
            }
        }
        if let Some(f) = &self.fingerprint
            && let Some(bad) = f
                .split(';')
                .filter(|p| !p.is_empty())
                .find(|p| p.split_once('=').is_none_or(|(k, _)| k.trim().is_empty()))
        {
            out.push(format!(
                "fingerprint `{f}`: `{bad}` is not `key=value` (expected `key=value;key=value`)"
            ));
        }
        if let Some(u) = &self.updated
            && chrono::DateTime::parse_from_rfc3339(u).is_err()
        {
            out.push(format!(
                "updated `{u}`: expected an RFC 3339 time such as 2026-01-31T02:00:00Z"
            ));
        }
        for (column, text) in [
            ("network_name", Some(&self.network_name)),
            ("perf_case_name", Some(&self.perf_case_name)),
            ("test_name", Some(&self.test_name)),
            ("fingerprint", self.fingerprint.as_ref()),
            ("reason", self.reason.as_ref()),
        ] {
            if text.is_some_and(|t| t.contains(['\n', '\r'])) {
                out.push(format!(
                    "{column} spans several lines: one row per line keeps diffs and line numbers \
                     readable"
                ));
            }
        }
        out
    }

    fn fields(&self) -> [String; 14] {
        let v = &self.verbatim;
        let opt = |o: Option<&String>| o.cloned().unwrap_or_default();
        [
            self.network_name.clone(),
            self.perf_case_name.clone(),
            self.test_name.clone(),
            v.text("threshold", self.threshold),
            v.text("absolute_threshold", self.absolute_threshold),
            self.metric_type.clone(),
            v.text("perf_metric", self.perf_metric),
            self.direction.map(|d| d.to_string()).unwrap_or_default(),
            opt(self.unit.as_ref()),
            self.log_scale
                .map(|s| v.text("log_scale", s))
                .unwrap_or_default(),
            self.nights.map(|n| n.to_string()).unwrap_or_default(),
            opt(self.fingerprint.as_ref()),
            opt(self.reason.as_ref()),
            opt(self.updated.as_ref()),
        ]
    }
}

/// `key=value;key=value` as pairs (pieces without `=` are skipped; [`BaselineRow::problems`]
/// reports them).
pub fn fingerprint_pairs(f: &str) -> Vec<(&str, &str)> {
    f.split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// The baselines of one file.
#[derive(Debug, Clone)]
pub struct Baselines {
    path: PathBuf,
    rows: Vec<BaselineRow>,
    index: HashMap<String, usize>,
    upstream_format: bool,
    /// The file's text as read; `None` when the file did not exist.
    text: Option<String>,
}

impl Baselines {
    /// No baselines (a file that does not exist yet): every metric is NEW.
    pub fn empty(path: impl Into<PathBuf>) -> Baselines {
        Baselines {
            path: path.into(),
            rows: Vec::new(),
            index: HashMap::new(),
            upstream_format: false,
            text: None,
        }
    }

    /// Reads and validates a file; every problem is reported at once.
    pub fn read(path: &Path) -> Result<Baselines, BaselineError> {
        let text = crate::textutil::read_text(path)?;
        Baselines::parse(path, &text)
    }

    /// [`Baselines::read`], with a missing file read as [`Baselines::empty`] (what the gate
    /// wants: no file means no baselines yet, not an error).
    pub fn read_or_empty(path: &Path) -> Result<Baselines, BaselineError> {
        match Baselines::read(path) {
            Err(BaselineError::Read(e)) if e.is_not_found() => Ok(Baselines::empty(path)),
            other => other,
        }
    }

    /// Parses `text` as the file `path` (which is only used in messages).
    pub fn parse(path: &Path, text: &str) -> Result<Baselines, BaselineError> {
        let invalid = |problems: Vec<Problem>| BaselineError::Invalid {
            path: path.to_path_buf(),
            problems,
        };
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(body.as_bytes());
        let header = match reader.headers() {
            Ok(h) if h.iter().any(|f| !f.trim().is_empty()) => h.clone(),
            Ok(_) => {
                return Err(invalid(vec![Problem {
                    line: 1,
                    message: format!(
                        "empty file: expected a header line with the columns {}",
                        UPSTREAM_COLUMNS.join(", ")
                    ),
                }]));
            }
            Err(e) => {
                return Err(invalid(vec![Problem {
                    line: 1,
                    message: format!("cannot read the header: {e}"),
                }]));
            }
        };
        let columns = Columns::from_header(&header)
            .map_err(|message| invalid(vec![Problem { line: 1, message }]))?;
        let mut out = Baselines::empty(path);
        out.upstream_format = PERFGATE_COLUMNS.iter().all(|c| columns.get(c).is_none());
        out.text = Some(text.to_string());
        let mut problems = Vec::new();
        // Keys seen, with their line: also those of rows that did not parse.
        let mut first_lines: HashMap<String, usize> = HashMap::new();
        for result in reader.records() {
            let record = match result {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(0, |p| {
                        crate::textutil::line_at_byte(text.as_bytes(), p.byte())
                    });
                    problems.push(Problem {
                        line,
                        message: format!("not readable as CSV: {e}"),
                    });
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| {
                crate::textutil::line_at_byte(text.as_bytes(), p.byte())
            });
            if record.len() != header.len() {
                problems.push(Problem {
                    line,
                    message: format!(
                        "{} fields, but the header has {} columns",
                        record.len(),
                        header.len()
                    ),
                });
                continue;
            }
            let mut messages = Vec::new();
            let (row, parsed) = columns.row(&record, line, &mut messages);
            messages.extend(row.problems());
            if let Some(&first_line) = first_lines.get(&row.perf_case_name) {
                messages.push(format!(
                    "duplicate key: perf_case_name `{}` is on lines {first_line} and {line}; \
                     one row per case and metric",
                    row.perf_case_name
                ));
            } else {
                first_lines.insert(row.perf_case_name.clone(), line);
                if parsed {
                    out.push(row);
                }
            }
            problems.extend(
                messages
                    .into_iter()
                    .map(|message| Problem { line, message }),
            );
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(invalid(problems))
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every row, in file order (rows added by [`Baselines::upsert`] last).
    pub fn rows(&self) -> &[BaselineRow] {
        &self.rows
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The file had only upstream's seven columns.
    pub fn is_upstream_format(&self) -> bool {
        self.upstream_format
    }

    /// The file's text as it was read; `None` for [`Baselines::empty`] (no file yet).
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    pub fn get(&self, perf_case_name: &str) -> Option<&BaselineRow> {
        self.index
            .get(perf_case_name)
            .and_then(|&i| self.rows.get(i))
    }

    /// Replaces the row with the same key where it stands, or appends it. Returns the row it
    /// replaced.
    pub fn upsert(&mut self, row: BaselineRow) -> Option<BaselineRow> {
        match self.index.get(&row.perf_case_name) {
            Some(&i) => self
                .rows
                .get_mut(i)
                .map(|slot| std::mem::replace(slot, row)),
            None => {
                self.push(row);
                None
            }
        }
    }

    fn push(&mut self, row: BaselineRow) {
        self.index
            .insert(row.perf_case_name.clone(), self.rows.len());
        self.rows.push(row);
    }

    /// The file in perfgate's schema (upstream's seven columns first), rows in order, numbers
    /// of unchanged rows spelled as they were read.
    pub fn to_csv(&self) -> String {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        // Writing to a Vec cannot fail; an error would only drop rows, and the caller's
        // re-read of the result would say so.
        let _ = w.write_record(UPSTREAM_COLUMNS.iter().chain(&PERFGATE_COLUMNS));
        for row in &self.rows {
            let _ = w.write_record(row.fields());
        }
        let bytes = w.into_inner().unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Where each known column is in a file's header.
struct Columns(HashMap<&'static str, usize>);

impl Columns {
    fn from_header(header: &csv::StringRecord) -> Result<Columns, String> {
        let mut found = HashMap::new();
        let mut unknown = Vec::new();
        let mut duplicate = Vec::new();
        for (i, name) in header.iter().enumerate() {
            let name = name.trim();
            match UPSTREAM_COLUMNS
                .iter()
                .chain(&PERFGATE_COLUMNS)
                .find(|c| **c == name)
            {
                Some(c) => {
                    if found.insert(*c, i).is_some() {
                        duplicate.push(name.to_string());
                    }
                }
                None => unknown.push(format!("`{name}`")),
            }
        }
        let missing: Vec<&str> = UPSTREAM_COLUMNS
            .iter()
            .copied()
            .filter(|c| !found.contains_key(c))
            .collect();
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!(
                "missing upstream column(s) {} (a base_perf.csv has {})",
                missing.join(", "),
                UPSTREAM_COLUMNS.join(", ")
            ));
        }
        if !unknown.is_empty() {
            why.push(format!(
                "unknown column(s) {}: perfgate knows {} and {} (an unknown column would be \
                 lost when the file is rewritten, so it is refused rather than ignored)",
                unknown.join(", "),
                UPSTREAM_COLUMNS.join(", "),
                PERFGATE_COLUMNS.join(", ")
            ));
        }
        if !duplicate.is_empty() {
            why.push(format!("column(s) {} appear twice", duplicate.join(", ")));
        }
        if why.is_empty() {
            Ok(Columns(found))
        } else {
            Err(why.join("; "))
        }
    }

    fn get(&self, column: &str) -> Option<usize> {
        self.0.get(column).copied()
    }

    /// The row, and whether every field parsed. A field that does not parse adds a message
    /// and is given a harmless stand-in, so the row's other problems are reported too.
    fn row(
        &self,
        record: &csv::StringRecord,
        line: usize,
        messages: &mut Vec<String>,
    ) -> (BaselineRow, bool) {
        let text = |c: &str| {
            self.get(c)
                .and_then(|i| record.get(i))
                .map(str::trim)
                .unwrap_or("")
        };
        let optional = |c: &str| Some(text(c)).filter(|t| !t.is_empty());
        let mut ok = true;
        let mut verbatim = Vec::new();
        let mut number = |column: &'static str, required: bool, messages: &mut Vec<String>| {
            let t = text(column);
            if t.is_empty() && !required {
                return None;
            }
            match t.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    verbatim.push((column, v, t.to_string()));
                    Some(v)
                }
                Ok(v) => {
                    messages.push(format!("{column} is `{t}` ({v}): expected a finite number"));
                    ok = false;
                    None
                }
                Err(_) => {
                    messages.push(format!(
                        "{column} is `{t}`: expected a number{}",
                        if t.is_empty() { " (it is empty)" } else { "" }
                    ));
                    ok = false;
                    None
                }
            }
        };
        let threshold = number("threshold", true, messages);
        let absolute_threshold = number("absolute_threshold", true, messages);
        let perf_metric = number("perf_metric", true, messages);
        let log_scale = number("log_scale", false, messages);
        let direction = match optional("direction") {
            None => None,
            Some("higher") => Some(Direction::HigherIsBetter),
            Some("lower") => Some(Direction::LowerIsBetter),
            Some(other) => {
                messages.push(format!(
                    "direction is `{other}`: expected `higher` or `lower`"
                ));
                ok = false;
                None
            }
        };
        let nights = match optional("nights") {
            None => None,
            Some(t) => match t.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    messages.push(format!(
                        "nights is `{t}`: expected a whole number of nights >= 0"
                    ));
                    ok = false;
                    None
                }
            },
        };
        for column in ["network_name", "perf_case_name", "metric_type"] {
            if text(column).is_empty() {
                messages.push(format!("{column} is empty"));
                ok = false;
            }
        }
        let row = BaselineRow {
            network_name: text("network_name").to_string(),
            perf_case_name: text("perf_case_name").to_string(),
            test_name: text("test_name").to_string(),
            threshold: threshold.unwrap_or(0.0),
            absolute_threshold: absolute_threshold.unwrap_or(0.0),
            metric_type: text("metric_type").to_string(),
            perf_metric: perf_metric.unwrap_or(1.0),
            direction,
            unit: optional("unit").map(str::to_string),
            log_scale,
            nights,
            fingerprint: optional("fingerprint").map(str::to_string),
            reason: optional("reason").map(str::to_string),
            updated: optional("updated").map(str::to_string),
            line,
            verbatim: Verbatim(verbatim),
        };
        (row, ok)
    }
}

impl fmt::Display for Baselines {
    /// `path: N rows (upstream format)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} row{} ({})",
            self.path.display(),
            self.rows.len(),
            if self.rows.len() == 1 { "" } else { "s" },
            if self.text.is_none() {
                "no file yet"
            } else if self.upstream_format {
                "upstream base_perf.csv format"
            } else {
                "perfgate format"
            }
        )
    }
}
