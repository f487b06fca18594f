//! Each serving case's upstream record, per run: what upstream's perf-sanity database would
//! hold for the case apart from its metrics and job fields (`{"fields": {s_/l_/b_/d_ ...},
//! "match_keys": [...]}`, as the serving backend planned it). The OpenSearch export joins it
//! with the case's measurements and verdicts into the document upstream uploads.

use std::path::Path;

use rusqlite::params;
use serde_json::Value;

use super::{History, HistoryError, invalid, night_of, on};

/// One case's upstream record in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecordRow {
    pub test_id: String,
    pub network_name: String,
    /// The case's directory when its name expands into several cases.
    pub case: Option<String>,
    /// `{"fields": {...}, "match_keys": [...]}`.
    pub record: Value,
}

impl History {
    /// Stores the upstream records of cases of a begun run, in one transaction. A record for
    /// the same run and case replaces the stored one (a rerun).
    pub fn record_case_records(
        &mut self,
        run_id: &str,
        rows: &[CaseRecordRow],
    ) -> Result<(), HistoryError> {
        self.write_to_run(
            run_id,
            "cannot commit the case records",
            |tx, path, night| insert_case_records(tx, path, night, rows),
        )
    }

    /// The upstream records of a run, by the night index, in case order.
    pub fn case_records_of_night(&self, night: i64) -> Result<Vec<CaseRecordRow>, HistoryError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT test_id, network_name, case_dir, record FROM case_records
                 WHERE night = ?1 ORDER BY test_id, network_name, case_dir",
            )
            .map_err(on(path, "cannot prepare the case record query"))?;
        let rows = stmt
            .query_map([night], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(on(path, "cannot read case records"))?;
        let mut out = Vec::new();
        for row in rows {
            let (test_id, network_name, case, text) =
                row.map_err(on(path, "cannot read a case record"))?;
            let record = serde_json::from_str(&text).map_err(|e| {
                invalid(
                    path,
                    format!(
                        "the stored upstream record of {test_id} [{network_name}] cannot be \
                         read ({e}); was it written by another perfgate version?"
                    ),
                )
            })?;
            out.push(CaseRecordRow {
                test_id,
                network_name,
                case: (!case.is_empty()).then_some(case),
                record,
            });
        }
        Ok(out)
    }

    /// The upstream records of run `run_id` (for merging histories).
    pub fn case_records(&self, run_id: &str) -> Result<Vec<CaseRecordRow>, HistoryError> {
        let night = night_of(&self.conn, &self.path, run_id)?;
        self.case_records_of_night(night)
    }
}

impl History {
    /// The latest upstream record of every serving case from night `first_night` on, for the
    /// dashboard (a case's sweep and concurrency when its name does not say them).
    pub fn dashboard_case_records(
        &self,
        first_night: i64,
    ) -> Result<Vec<CaseRecordRow>, HistoryError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            // SQLite takes a bare column of a `max()` aggregate from the row holding the
            // maximum: each case's latest record, parsed once.
            .prepare_cached(
                "SELECT test_id, network_name, case_dir, record, max(night) FROM case_records
                 WHERE night >= ?1 GROUP BY test_id, network_name, case_dir",
            )
            .map_err(on(path, "cannot prepare the case record query"))?;
        let rows = stmt
            .query_map([first_night], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(on(path, "cannot read case records"))?;
        let mut out = Vec::new();
        for row in rows {
            let (test_id, network_name, case, text) =
                row.map_err(on(path, "cannot read a case record"))?;
            // A record that does not read is left out: the case is drawn without it.
            if let Ok(record) = serde_json::from_str(&text) {
                out.push(CaseRecordRow {
                    test_id,
                    network_name,
                    case: (!case.is_empty()).then_some(case),
                    record,
                });
            }
        }
        Ok(out)
    }
}

/// Stores case records of the run at `night` inside the caller's transaction; a record for the
/// same case replaces the stored one.
pub(super) fn insert_case_records(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    night: i64,
    rows: &[CaseRecordRow],
) -> Result<(), HistoryError> {
    let mut texts = Vec::with_capacity(rows.len());
    for row in rows {
        if !row.record.is_object() {
            return Err(invalid(
                path,
                format!(
                    "{} [{}]: an upstream record must be a JSON object",
                    row.test_id, row.network_name
                ),
            ));
        }
        texts.push(row.record.to_string());
    }
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO case_records (night, test_id, network_name, case_dir, record)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (night, test_id, network_name, case_dir)
             DO UPDATE SET record = excluded.record",
        )
        .map_err(on(path, "cannot prepare the case record insert"))?;
    for (row, text) in rows.iter().zip(&texts) {
        insert
            .execute(params![
                night,
                row.test_id,
                row.network_name,
                row.case.as_deref().unwrap_or(""),
                text
            ])
            .map_err(on(path, "cannot record a case's upstream record"))?;
    }
    Ok(())
}
