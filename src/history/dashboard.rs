//! The history's reads for the static dashboard (`perfgate dashboard`), and a bulk insert for
//! its benchmark (`perfgate bench-dashboard`). Each read streams rows to a callback: a year of
//! nightlies is millions of rows, and the dashboard keeps only what it draws.

use std::collections::HashMap;

use rusqlite::{TransactionBehavior, params};

use super::{
    History, HistoryError, MeasurementRow, RUN_SELECT, RunMeta, StoredRun, check_time, on,
    stored_run,
};
use crate::gate::record::VerdictRecord;

/// One stored verdict as the dashboard draws it. `record` is the whole [`VerdictRecord`] JSON
/// only for verdicts other than PASS (their explanation and evidence are shown); a PASS says
/// nothing the columns do not, and parsing a year of them would dominate the build.
#[derive(Debug, Clone, PartialEq)]
pub struct DashVerdict {
    pub night: i64,
    pub perf_case_name: String,
    pub step: String,
    pub metric: String,
    pub verdict: String,
    pub gated: bool,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
    pub change_pct: Option<f64>,
    pub mde_pct: Option<f64>,
    pub record: Option<String>,
}

/// The mean of one night's repetitions of one series, with the case's names.
#[derive(Debug, Clone, PartialEq)]
pub struct DashMeasurement {
    pub night: i64,
    pub perf_case_name: String,
    pub step: String,
    pub metric: String,
    pub test_id: String,
    pub network_name: String,
    /// `None` for a name with one case.
    pub case: Option<String>,
    /// The mean of the valid repetitions; `None` when none was valid.
    pub mean: Option<f64>,
    pub valid: u32,
    pub total: u32,
}

/// An acknowledged change point (`perfgate baseline update ... --history`).
#[derive(Debug, Clone, PartialEq)]
pub struct DashChangePoint {
    pub perf_case_name: String,
    pub metric: String,
    pub first_night: i64,
    pub reason: String,
    pub acknowledged: String,
}

impl History {
    /// The most recent `nights` runs, oldest first.
    pub fn dashboard_runs(&self, nights: usize) -> Result<Vec<StoredRun>, HistoryError> {
        let mut runs = self.runs(nights)?;
        runs.reverse();
        Ok(runs)
    }

    /// Every verdict of the nights from `first_night` on, in night order.
    pub fn dashboard_verdicts(
        &self,
        first_night: i64,
        mut each: impl FnMut(DashVerdict),
    ) -> Result<(), HistoryError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT night, perf_case_name, step, metric, verdict, gated, value, baseline,
                        change_pct, mde_pct, CASE WHEN verdict = 'PASS' THEN NULL ELSE record END
                 FROM verdicts WHERE night >= ?1 ORDER BY night, id",
            )
            .map_err(on(path, "cannot prepare the dashboard's verdict query"))?;
        let mut rows = stmt
            .query([first_night])
            .map_err(on(path, "cannot read verdicts"))?;
        while let Some(r) = rows.next().map_err(on(path, "cannot read a verdict"))? {
            let v = (|| {
                Ok::<_, rusqlite::Error>(DashVerdict {
                    night: r.get(0)?,
                    perf_case_name: r.get(1)?,
                    step: r.get(2)?,
                    metric: r.get(3)?,
                    verdict: r.get(4)?,
                    gated: r.get(5)?,
                    value: r.get(6)?,
                    baseline: r.get(7)?,
                    change_pct: r.get(8)?,
                    mde_pct: r.get(9)?,
                    record: r.get(10)?,
                })
            })()
            .map_err(on(path, "cannot read a verdict"))?;
            each(v);
        }
        Ok(())
    }

    /// The per-night means of every series measured from `first_night` on, series by series.
    pub fn dashboard_measurements(
        &self,
        first_night: i64,
        mut each: impl FnMut(DashMeasurement),
    ) -> Result<(), HistoryError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.night, c.perf_case_name, c.step, c.metric, c.test_id, c.network_name,
                        c.case_dir, avg(CASE WHEN m.state = 'valid' THEN m.value END),
                        sum(m.state = 'valid' AND m.value IS NOT NULL), count(*)
                 FROM measurements m JOIN cases c ON c.id = m.case_id
                 WHERE m.night >= ?1
                 GROUP BY m.case_id, m.night",
            )
            .map_err(on(path, "cannot prepare the dashboard's measurement query"))?;
        let mut rows = stmt
            .query([first_night])
            .map_err(on(path, "cannot read measurements"))?;
        while let Some(r) = rows.next().map_err(on(path, "cannot read a measurement"))? {
            let m = (|| {
                let case: String = r.get(6)?;
                Ok::<_, rusqlite::Error>(DashMeasurement {
                    night: r.get(0)?,
                    perf_case_name: r.get(1)?,
                    step: r.get(2)?,
                    metric: r.get(3)?,
                    test_id: r.get(4)?,
                    network_name: r.get(5)?,
                    case: (!case.is_empty()).then_some(case),
                    mean: r.get(7)?,
                    valid: r.get(8)?,
                    total: r.get(9)?,
                })
            })()
            .map_err(on(path, "cannot read a measurement"))?;
            each(m);
        }
        Ok(())
    }

    /// Every acknowledged change point, oldest first.
    pub fn dashboard_change_points(&self) -> Result<Vec<DashChangePoint>, HistoryError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT perf_case_name, metric, first_night, reason, acknowledged
                 FROM change_points ORDER BY first_night, id",
            )
            .map_err(on(path, "cannot prepare the change point query"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DashChangePoint {
                    perf_case_name: r.get(0)?,
                    metric: r.get(1)?,
                    first_night: r.get(2)?,
                    reason: r.get(3)?,
                    acknowledged: r.get(4)?,
                })
            })
            .map_err(on(path, "cannot read change points"))?;
        rows.collect::<Result<_, _>>()
            .map_err(on(path, "cannot read change points"))
    }

    /// One run by night index.
    pub fn run_by_night(&self, night: i64) -> Result<Option<StoredRun>, HistoryError> {
        use rusqlite::OptionalExtension;
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{RUN_SELECT} WHERE night = ?1"))
            .map_err(on(&self.path, "cannot prepare the run query"))?;
        stmt.query_row([night], stored_run)
            .optional()
            .map_err(on(&self.path, "cannot read a run"))
    }

    /// For `perfgate bench-dashboard` only: stores many synthetic nights in one transaction,
    /// with durability off (a crash loses the benchmark's scratch file, nothing else). Each
    /// night is a run, its measurements and its verdicts, as the harness would store them.
    pub fn bench_bulk_load(
        &mut self,
        nights: usize,
        mut night: impl FnMut(usize) -> (RunMeta, Vec<MeasurementRow>, Vec<VerdictRecord>),
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let path = &path;
        self.conn
            .execute_batch("PRAGMA synchronous = OFF")
            .map_err(on(path, "cannot turn durability off"))?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(on(path, "cannot begin a write"))?;
        {
            let mut run_insert = tx
                .prepare(
                    "INSERT INTO runs (run_id, started, ended, host, test_prefix, fingerprint,
                                       env_json, revision, branch, build_url)
                     VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(on(path, "cannot prepare the run insert"))?;
            let mut case_insert = tx
                .prepare(
                    "INSERT INTO cases
                         (perf_case_name, metric, step, test_id, network_name, case_dir)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(on(path, "cannot prepare the case insert"))?;
            let mut m_insert = tx
                .prepare(
                    "INSERT INTO measurements (case_id, night, repetition, value, state)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(on(path, "cannot prepare the measurement insert"))?;
            let mut v_insert = tx
                .prepare(
                    "INSERT INTO verdicts (night, perf_case_name, step, metric, verdict, gated,
                                           value, baseline, change_pct, mde_pct, source, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(on(path, "cannot prepare the verdict insert"))?;
            let mut case_ids: HashMap<(String, String, String), i64> = HashMap::new();
            for i in 0..nights {
                let (meta, rows, verdicts) = night(i);
                check_time(path, "started", &meta.started)?;
                run_insert
                    .execute(params![
                        meta.run_id,
                        meta.started,
                        meta.host,
                        meta.test_prefix,
                        meta.fingerprint,
                        meta.env_json,
                        meta.revision,
                        meta.branch,
                        meta.build_url
                    ])
                    .map_err(on(path, "cannot record the run"))?;
                let night_index = tx.last_insert_rowid();
                for row in &rows {
                    let key = (
                        row.perf_case_name.clone(),
                        row.metric.clone(),
                        row.step.clone(),
                    );
                    let id = match case_ids.get(&key) {
                        Some(&id) => id,
                        None => {
                            case_insert
                                .execute(params![
                                    row.perf_case_name,
                                    row.metric,
                                    row.step,
                                    row.test_id,
                                    row.network_name,
                                    row.case.as_deref().unwrap_or("")
                                ])
                                .map_err(on(path, "cannot record a case"))?;
                            let id = tx.last_insert_rowid();
                            case_ids.insert(key, id);
                            id
                        }
                    };
                    m_insert
                        .execute(params![
                            id,
                            night_index,
                            row.repetition,
                            row.value.is_finite().then_some(row.value),
                            row.state.as_str()
                        ])
                        .map_err(on(path, "cannot record a measurement"))?;
                }
                for v in &verdicts {
                    let record = serde_json::to_string(v).map_err(|e| {
                        super::invalid(path, format!("a verdict cannot be stored: {e}"))
                    })?;
                    v_insert
                        .execute(params![
                            night_index,
                            v.perf_case_name,
                            v.step,
                            v.metric,
                            v.verdict.as_str(),
                            v.gated,
                            v.value,
                            v.baseline,
                            v.change_pct,
                            v.mde_pct,
                            v.source,
                            record
                        ])
                        .map_err(on(path, "cannot record a verdict"))?;
                }
            }
        }
        tx.commit().map_err(on(path, "cannot commit the bulk load"))
    }
}
