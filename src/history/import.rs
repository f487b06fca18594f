//! `perfgate history import`: runs brought into a history from their result files, perfgate's
//! own (`results.jsonl` and `gate.jsonl`) or upstream's (`perf_script_test_results.csv` /
//! `.yaml`). Reading the files is plain data in, [`ImportedRun`]s out; [`History::import_run`]
//! stores one run in one transaction, so a run is in the history whole or not at all.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Utc};
use rusqlite::TransactionBehavior;
use serde_json::{Map, Value};

use super::{
    CaseRecordRow, History, HistoryError, MeasurementRow, RunMeta, check_time, night_of, on,
};
use crate::gate::env::Fingerprint;
use crate::provenance::Provenance;
use crate::record::{CaseId, State};
use crate::record::{GATE_FILE, VerdictRecord};
use crate::results::jsonl::Record;
use crate::results::upstream::{CSV_NAME, YAML_NAME};

/// One run read from result files, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedRun {
    pub meta: RunMeta,
    /// When it finished (RFC 3339), when the files say.
    pub ended: Option<String>,
    pub measurements: Vec<MeasurementRow>,
    pub verdicts: Vec<VerdictRecord>,
    /// The serving cases' upstream records (what the OpenSearch export joins in).
    pub case_records: Vec<CaseRecordRow>,
    /// Why cases measured nothing (their reasons, each once): shown when a run has no metrics.
    pub reasons: Vec<String>,
}

impl ImportedRun {
    /// Stores the run under another id (`--run-id`); its verdicts follow.
    pub fn rename(&mut self, run_id: &str) {
        self.meta.run_id = run_id.to_string();
        for v in &mut self.verdicts {
            v.run_id = run_id.to_string();
        }
    }

    /// `explicit`'s fields replace the files' own revision, branch and build URL.
    pub fn set_provenance(&mut self, explicit: &Provenance) {
        let stored = Provenance {
            revision: self.meta.revision.take(),
            branch: self.meta.branch.take(),
            build_url: self.meta.build_url.take(),
        };
        let p = explicit.clone().or(stored);
        self.meta.revision = p.revision;
        self.meta.branch = p.branch;
        self.meta.build_url = p.build_url;
    }
}

/// What [`History::import_run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported {
        night: i64,
    },
    /// A run of that id was already stored; nothing was written.
    AlreadyStored {
        night: i64,
    },
}

/// What one path holds: its runs, and warnings for the user (lines that could not be matched).
#[derive(Debug)]
pub struct ImportSource {
    /// The file the runs came from (for messages and `imported_from`).
    pub file: PathBuf,
    pub runs: Vec<ImportedRun>,
    pub warnings: Vec<String>,
}

/// Reads the runs a path holds: an output directory (its `results.jsonl` and `gate.jsonl`, or
/// else its upstream CSV or YAML), a `results.jsonl`, or an upstream CSV or YAML file.
pub fn read_path(path: &Path) -> anyhow::Result<ImportSource> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if meta.is_dir() {
        let jsonl = path.join(crate::results::jsonl::NAME);
        if jsonl.is_file() {
            return read_results_jsonl(&jsonl);
        }
        for name in [CSV_NAME, YAML_NAME] {
            let file = path.join(name);
            if file.is_file() {
                return read_upstream(&file);
            }
        }
        anyhow::bail!(
            "{}: no {}, {CSV_NAME} or {YAML_NAME} in this directory: nothing to import",
            path.display(),
            crate::results::jsonl::NAME
        );
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == GATE_FILE {
        anyhow::bail!(
            "{}: verdicts alone are no run; import the output directory (or its {}), which \
             brings its {GATE_FILE} along",
            path.display(),
            crate::results::jsonl::NAME
        );
    }
    if name.ends_with(".jsonl") {
        read_results_jsonl(path)
    } else if name.ends_with(".csv") || name.ends_with(".yaml") || name.ends_with(".yml") {
        read_upstream(path)
    } else {
        anyhow::bail!(
            "{}: expected an output directory, a results.jsonl, or upstream's {CSV_NAME} or \
             {YAML_NAME}",
            path.display()
        )
    }
}

/// One run of a `results.jsonl` while its lines are read.
struct JsonlRun {
    run_id: String,
    env: Value,
    /// The earliest `started` of its records.
    earliest: Option<DateTime<FixedOffset>>,
    /// The latest `time` (end) of its records.
    latest: Option<DateTime<FixedOffset>>,
    rows: Vec<MeasurementRow>,
    case_records: Vec<CaseRecordRow>,
    reasons: Vec<String>,
}

/// Reads a `results.jsonl` (line by line) and the `gate.jsonl` next to it, if any.
fn read_results_jsonl(path: &Path) -> anyhow::Result<ImportSource> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut runs: Vec<JsonlRun> = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let at = || format!("{}:{}", path.display(), i + 1);
        let line = line.with_context(|| format!("{}: cannot read", at()))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}: expected one perfgate result record (JSON) per line",
                at()
            )
        })?;
        let run = match runs.iter().position(|x| x.run_id == r.run_id) {
            Some(n) => &mut runs[n],
            None => {
                if r.run_id.is_empty() {
                    anyhow::bail!("{}: the record has an empty run_id", at());
                }
                runs.push(JsonlRun {
                    run_id: r.run_id.clone(),
                    env: Value::Null,
                    earliest: None,
                    latest: None,
                    rows: Vec::new(),
                    case_records: Vec::new(),
                    reasons: Vec::new(),
                });
                runs.last_mut().expect("just pushed")
            }
        };
        if run.env.is_null() {
            run.env = r.env.clone();
        }
        let time = |field: &str, v: &Option<String>| -> anyhow::Result<_> {
            v.as_deref()
                .map(|t| {
                    DateTime::parse_from_rfc3339(t).with_context(|| {
                        format!("{}: `{field}` is not an RFC 3339 time: `{t}`", at())
                    })
                })
                .transpose()
        };
        if let Some(t) = time("started", &r.started)? {
            run.earliest = Some(run.earliest.map_or(t, |e| e.min(t)));
        }
        if let Some(t) = time("time", &r.time)? {
            run.latest = Some(run.latest.map_or(t, |e| e.max(t)));
        }
        if let Some(record) = &r.upstream_record
            && !run
                .case_records
                .iter()
                .any(|c| c.test_id == r.test_id && c.network_name == r.label && c.case == r.case)
        {
            run.case_records.push(CaseRecordRow {
                test_id: r.test_id.clone(),
                network_name: r.label.clone(),
                case: r.case.clone(),
                record: record.clone(),
            });
        }
        if let Some(reason) = &r.reason
            && r.metric.is_none()
            && !run.reasons.contains(reason)
        {
            run.reasons.push(reason.clone());
        }
        let (Some(metric), Some(repetition)) = (&r.metric, r.repetition) else {
            continue;
        };
        if r.state == State::Valid && !r.value.is_some_and(f64::is_finite) {
            anyhow::bail!(
                "{}: a valid measurement of {metric} needs a finite value, not {:?}",
                at(),
                r.value
            );
        }
        // The same name the harness gave it (and the gate and the CSV use).
        let id = CaseId {
            test_id: r.test_id.clone(),
            raw: r.name.clone(),
            label: r.label.clone(),
            case: r.case.clone(),
        };
        run.rows.push(MeasurementRow {
            perf_case_name: id.perf_case_name(metric),
            test_id: r.test_id,
            network_name: r.label,
            case: r.case,
            step: r.step,
            metric: metric.clone(),
            repetition,
            value: r.value.unwrap_or(f64::NAN),
            state: r.state,
        });
    }
    let mut warnings = Vec::new();
    let gate = path.with_file_name(GATE_FILE);
    let mut verdicts = if gate.is_file() {
        crate::results::verdicts::read(&gate)?
    } else {
        Vec::new()
    };
    let strays = verdicts
        .iter()
        .filter(|v| !runs.iter().any(|r| r.run_id == v.run_id))
        .map(|v| v.run_id.clone())
        .collect::<BTreeSet<_>>();
    if !strays.is_empty() {
        warnings.push(format!(
            "{}: verdicts of run(s) {} have no results in {}; left out",
            gate.display(),
            strays.into_iter().collect::<Vec<_>>().join(", "),
            path.display()
        ));
    }
    let mut out = Vec::new();
    for run in runs {
        let env = |k: &str| run.env.get(k).and_then(Value::as_str).map(str::to_string);
        let started = match (env("run_started"), run.earliest) {
            (Some(s), _) => {
                DateTime::parse_from_rfc3339(&s).with_context(|| {
                    format!(
                        "{}: run {}: `env.run_started` is not an RFC 3339 time: `{s}`",
                        path.display(),
                        run.run_id
                    )
                })?;
                s
            }
            (None, Some(t)) => rfc3339(t),
            (None, None) => modified(path)?,
        };
        let system = run.env.get("system").and_then(Value::as_object);
        let fingerprint = env("fingerprint")
            .unwrap_or_else(|| Fingerprint::of(system, env("gpu").as_deref()).to_string());
        let mine: Vec<VerdictRecord>;
        (mine, verdicts) = verdicts.into_iter().partition(|v| v.run_id == run.run_id);
        // A verdict on a measured value names the same series as the measurement: a name
        // rebuilt differently from the harness's would split the series silently.
        let unmatched: Vec<String> = mine
            .iter()
            .filter(|v| v.value.is_some())
            .filter(|v| {
                !run.rows.iter().any(|m| {
                    m.perf_case_name == v.perf_case_name && m.step == v.step && m.metric == v.metric
                })
            })
            .map(|v| format!("{} ({})", v.perf_case_name, v.step))
            .collect();
        if let Some(first) = unmatched.first() {
            warnings.push(format!(
                "{}: run {}: {} verdict(s) name a series with no measurement in {}, e.g. {first}",
                gate.display(),
                run.run_id,
                unmatched.len(),
                path.display()
            ));
        }
        out.push(ImportedRun {
            meta: RunMeta {
                run_id: run.run_id.clone(),
                started,
                host: env("host").unwrap_or_default(),
                test_prefix: env("test_prefix"),
                fingerprint,
                env_json: Value::Object(system.cloned().unwrap_or_default()).to_string(),
                revision: env("revision"),
                branch: env("branch"),
                build_url: env("build_url"),
                imported_from: Some(absolute(path)),
            },
            ended: run.latest.map(rfc3339),
            measurements: run.rows,
            verdicts: mine,
            case_records: run.case_records,
            reasons: run.reasons,
        });
    }
    Ok(ImportSource {
        file: path.to_path_buf(),
        runs: out,
        warnings,
    })
}

/// One row of an upstream file: where it is (for messages) and its columns.
struct UpstreamRow {
    at: String,
    fields: std::collections::HashMap<String, String>,
}

impl UpstreamRow {
    fn get(&self, key: &str) -> Option<String> {
        self.fields.get(key).cloned()
    }
}

/// Reads upstream's CSV or YAML: one run, named after the file's content
/// (`upstream-<12 hex of its sha256>`), so importing the same file twice is recognised.
fn read_upstream(path: &Path) -> anyhow::Result<ImportSource> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    let rows = if yaml {
        upstream_yaml_rows(path, &bytes)?
    } else {
        upstream_csv_rows(path, &bytes)?
    };
    let run_id = format!("upstream-{}", &crate::textutil::sha256_hex(&bytes)[..12]);
    let mut measurements = Vec::new();
    let mut earliest: Option<DateTime<FixedOffset>> = None;
    let mut latest: Option<DateTime<FixedOffset>> = None;
    let mut first_test_id: Option<String> = None;
    let mut device: Option<String> = None;
    for row in &rows {
        let need = |k: &str| {
            row.get(k)
                .filter(|v| !v.is_empty())
                .with_context(|| format!("{}: no `{k}`", row.at))
        };
        let metric = need("metric_type")?;
        let test_id = need("original_test_name")?;
        let command = row.get("command").unwrap_or_default();
        let step = crate::backend::trtllm_bench::step_of_upstream_row(&metric, &command)
            .with_context(|| {
                format!(
                    "{}: cannot tell the step of {metric}: the command names no trtllm-bench \
                 subcommand (build, throughput, latency): `{command}`",
                    row.at
                )
            })?;
        let value = match row.get("perf_metric").filter(|v| !v.trim().is_empty()) {
            Some(v) => Some(
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .with_context(|| format!("{}: `perf_metric` is not a number: `{v}`", row.at))?,
            ),
            None => None,
        };
        let state = match row.get("state").as_deref().map(str::trim) {
            None | Some("") => {
                if value.is_some() {
                    State::Valid
                } else {
                    State::Failed
                }
            }
            Some("valid") => State::Valid,
            Some("failed") => State::Failed,
            Some("invalid") => State::Invalid,
            Some(other) => anyhow::bail!(
                "{}: `state` is `{other}`; expected valid, failed or invalid",
                row.at
            ),
        };
        if state == State::Valid && value.is_none() {
            anyhow::bail!("{}: a valid row of {metric} has no perf_metric", row.at);
        }
        for (key, slot, earlier) in [
            ("start_timestamp", &mut earliest, true),
            ("end_timestamp", &mut latest, false),
        ] {
            let Some(text) = row.get(key).filter(|t| !t.trim().is_empty()) else {
                continue;
            };
            let t = upstream_time(&text).with_context(|| {
                format!(
                    "{}: `{key}` is `{text}`; expected `2026-11-24 10:46:55 +0000` (the zone \
                     may be left out: UTC; a year from 0000 to 9999)",
                    row.at
                )
            })?;
            *slot = Some(match *slot {
                Some(s) if earlier => s.min(t),
                Some(s) => s.max(t),
                None => t,
            });
        }
        if device.is_none() {
            device = row.get("device_subtype").filter(|d| !d.is_empty());
        }
        first_test_id.get_or_insert_with(|| test_id.clone());
        let perf_case_name = need("perf_case_name")?;
        let network_name = need("network_name")?;
        // Each row is one repetition: a file that several runs (or a --repeat) appended to
        // holds a series' rows more than once, and none may overwrite another.
        let repetition = 1 + measurements
            .iter()
            .filter(|m: &&MeasurementRow| {
                m.perf_case_name == perf_case_name
                    && m.metric == metric
                    && m.step == step
                    && m.test_id == test_id
                    && m.network_name == network_name
            })
            .count() as u32;
        measurements.push(MeasurementRow {
            test_id,
            perf_case_name,
            network_name,
            case: None,
            step: step.to_string(),
            metric,
            repetition,
            value: value.unwrap_or(f64::NAN),
            state,
        });
    }
    let mut system = Map::new();
    if let Some(d) = &device {
        system.insert("gpu_type".into(), Value::String(d.clone()));
    }
    let started = match earliest {
        Some(t) => rfc3339(t),
        None => modified(path)?,
    };
    let test_prefix = first_test_id.as_deref().and_then(|t| {
        t.split_once("/perf/")
            .map(|(p, _)| p.to_string())
            .filter(|p| !p.is_empty())
    });
    let run = ImportedRun {
        meta: RunMeta {
            run_id,
            started,
            host: String::new(),
            test_prefix,
            fingerprint: Fingerprint::of(Some(&system), None).to_string(),
            env_json: Value::Object(system).to_string(),
            revision: None,
            branch: None,
            build_url: None,
            imported_from: Some(absolute(path)),
        },
        ended: latest.map(rfc3339),
        measurements,
        verdicts: Vec::new(),
        case_records: Vec::new(),
        reasons: if rows.is_empty() {
            vec!["the file has no result rows".into()]
        } else {
            Vec::new()
        },
    };
    Ok(ImportSource {
        file: path.to_path_buf(),
        runs: vec![run],
        warnings: Vec::new(),
    })
}

fn upstream_csv_rows(path: &Path, bytes: &[u8]) -> anyhow::Result<Vec<UpstreamRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}:1: cannot read the CSV header", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    for need in [
        "network_name",
        "perf_case_name",
        "original_test_name",
        "perf_metric",
        "metric_type",
    ] {
        if !header.iter().any(|h| h == need) {
            anyhow::bail!(
                "{}:1: the header has no `{need}` column; expected upstream's {CSV_NAME} \
                 columns ({})",
                path.display(),
                crate::results::upstream::COLUMNS.join(",")
            );
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e
                .position()
                .map_or(0, |p| crate::textutil::line_at_byte(bytes, p.byte()));
            anyhow::anyhow!(
                "{}: {e}",
                crate::textutil::file_line(path.display(), line as u64)
            )
        })?;
        let line = record
            .position()
            .map_or(0, |p| crate::textutil::line_at_byte(bytes, p.byte()));
        rows.push(UpstreamRow {
            at: format!("{}:{line}", path.display()),
            fields: header
                .iter()
                .cloned()
                .zip(record.iter().map(str::to_string))
                .collect(),
        });
    }
    Ok(rows)
}

fn upstream_yaml_rows(path: &Path, bytes: &[u8]) -> anyhow::Result<Vec<UpstreamRow>> {
    let text = crate::textutil::utf8_text(bytes.to_vec(), path)?;
    let text = text.as_str();
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc: Value = serde_saphyr::from_str(text)
        .map_err(|e| anyhow::anyhow!("{}: not YAML: {e}", path.display()))?;
    let Value::Object(entries) = doc else {
        anyhow::bail!(
            "{}: expected upstream's `<test_name>: {{test_description, test_result}}` mapping",
            path.display()
        );
    };
    let mut rows = Vec::new();
    for (name, entry) in entries {
        let at = format!("{}: entry `{name}`", path.display());
        let Some(Value::Object(result)) = entry.get("test_result").cloned() else {
            anyhow::bail!("{at}: no `test_result` mapping");
        };
        let fields = result
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::Null => None,
                Value::String(s) => Some((k, s)),
                other => Some((k, other.to_string())),
            })
            .collect();
        rows.push(UpstreamRow { at, fields });
    }
    Ok(rows)
}

/// Upstream's `2026-11-24 10:46:55 +0000`, or (as upstream itself writes it) without the
/// zone, which is then UTC.
/// An upstream time, if it is one the history can store: RFC 3339 times have four-digit years
/// (0000-9999, in UTC), so a year outside them is refused here, at the CSV line, rather than by
/// the history, which would name only its own file.
fn upstream_time(text: &str) -> Option<DateTime<FixedOffset>> {
    let text = text.trim();
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z")
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc().fixed_offset())
        })
        .filter(|t| (0..=9999).contains(&t.with_timezone(&Utc).year()))
}

fn rfc3339(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&Utc)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The path as `imported_from` keeps it: absolute when it can be, for whoever reads it later.
fn absolute(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The file's modification time: the start of a run whose records carry no time at all.
fn modified(path: &Path) -> anyhow::Result<String> {
    let t = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("{}: cannot read its modification time", path.display()))?;
    Ok(crate::record::rfc3339(t))
}

impl History {
    /// Stores an imported run, its measurements and verdicts in one transaction. A run of the
    /// same id already stored is left as it is: [`ImportOutcome::AlreadyStored`], nothing written.
    pub fn import_run(&mut self, run: &ImportedRun) -> Result<ImportOutcome, HistoryError> {
        let path = &self.path;
        let meta = &run.meta;
        check_time(path, "started", &meta.started)?;
        if let Some(ended) = &run.ended {
            check_time(path, "ended", ended)?;
        }
        if meta.run_id.is_empty() {
            return Err(super::invalid(
                path,
                "a run needs a non-empty run id".into(),
            ));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(on(path, "cannot begin a write"))?;
        if let Ok(night) = night_of(&tx, path, &meta.run_id) {
            return Ok(ImportOutcome::AlreadyStored { night });
        }
        let night = super::insert_run(&tx, path, meta, run.ended.as_deref())?;
        super::insert_measurements(&tx, path, night, &run.measurements)?;
        super::insert_verdicts(&tx, path, &run.verdicts, Some(night))?;
        super::records::insert_case_records(&tx, path, night, &run.case_records)?;
        tx.commit().map_err(on(path, "cannot commit the import"))?;
        Ok(ImportOutcome::Imported { night })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_comes_from_the_subcommand() {
        let cmd = "trtllm-bench --model=m --model_path=/p/latency-model latency --dataset=d";
        assert_eq!(
            crate::backend::trtllm_bench::step_of_upstream_row("INFERENCE_TIME", cmd),
            Some("latency")
        );
        assert_eq!(
            crate::backend::trtllm_bench::step_of_upstream_row(
                "TOKEN_THROUGHPUT",
                "trtllm-bench --model=m throughput --x"
            ),
            Some("throughput")
        );
        assert_eq!(
            crate::backend::trtllm_bench::step_of_upstream_row("BUILD_TIME", "anything"),
            Some("build")
        );
        assert_eq!(
            crate::backend::trtllm_bench::step_of_upstream_row(
                "TOKEN_THROUGHPUT",
                "python bench.py"
            ),
            None
        );
    }

    #[test]
    fn upstream_times_with_and_without_a_zone() {
        let t = upstream_time("2026-11-24 10:46:55 +0100").expect("zoned");
        assert_eq!(rfc3339(t), "2026-11-24T09:46:55.000Z");
        let t = upstream_time("2026-11-24 10:46:55").expect("naive");
        assert_eq!(rfc3339(t), "2026-11-24T10:46:55.000Z");
        assert!(upstream_time("24/11/2026").is_none());
    }
}
