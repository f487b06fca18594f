//! The history's reads for the static dashboard (`perfgate dashboard`), and a bulk insert for
//! its benchmark (`perfgate bench-dashboard`). Each read streams rows to a callback: a year of
//! nightlies is millions of rows, and the dashboard keeps only what it draws.

use std::collections::HashMap;

use rusqlite::types::ValueRef;
use rusqlite::{TransactionBehavior, params};

use super::{
    History, HistoryError, MeasurementRow, RUN_SELECT, RunMeta, StoredRun, check_time, on,
    stored_run,
};
use crate::record::VerdictRecord;

/// One stored verdict as the dashboard draws it, borrowed from the row being read (a year of
/// nightlies is millions of rows; the reader copies only what it keeps). `record` is the whole
/// [`VerdictRecord`] JSON only for verdicts other than PASS (their explanation and evidence are
/// shown); a PASS says nothing the columns do not, and reading a year of them would dominate
/// the build.
#[derive(Debug, Clone, PartialEq)]
pub struct DashVerdict<'a> {
    pub night: i64,
    pub perf_case_name: &'a str,
    pub step: &'a str,
    pub metric: &'a str,
    pub verdict: &'a str,
    pub gated: bool,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
    pub change_pct: Option<f64>,
    pub mde_pct: Option<f64>,
    pub record: Option<&'a str>,
}

/// One row of `cases`: a series as one test id spelled it.
#[derive(Debug, Clone, PartialEq)]
pub struct DashCase {
    /// The row's id; every [`DashMeasurement`] of this case names it.
    pub id: i64,
    pub perf_case_name: String,
    pub step: String,
    pub metric: String,
    pub test_id: String,
    pub network_name: String,
    /// `None` for a name with one case.
    pub case: Option<String>,
}

/// The mean of one night's repetitions of one case.
#[derive(Debug, Clone, PartialEq)]
pub struct DashMeasurement<'a> {
    pub night: i64,
    pub case: &'a DashCase,
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

    /// Every verdict of the nights from `first_night` on, series by series (perf case name,
    /// metric, step), each series in night order. Reads only the covering index
    /// `verdicts_by_series` (schema V4), and the table only for a verdict other than PASS:
    /// SQLite seeks the row lazily, when `record` is read.
    pub fn dashboard_verdicts(
        &self,
        first_night: i64,
        mut each: impl FnMut(DashVerdict<'_>),
    ) -> Result<(), HistoryError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT night, perf_case_name, step, metric, verdict, gated, value, baseline,
                        change_pct, mde_pct, CASE WHEN verdict = 'PASS' THEN NULL ELSE record END
                 FROM verdicts INDEXED BY verdicts_by_series WHERE night >= ?1",
            )
            .map_err(on(path, "cannot prepare the dashboard's verdict query"))?;
        let mut rows = stmt
            .query([first_night])
            .map_err(on(path, "cannot read verdicts"))?;
        while let Some(r) = rows.next().map_err(on(path, "cannot read a verdict"))? {
            let v = (|| {
                Ok::<_, rusqlite::Error>(DashVerdict {
                    night: r.get(0)?,
                    perf_case_name: text(r, 1)?,
                    step: text(r, 2)?,
                    metric: text(r, 3)?,
                    verdict: text(r, 4)?,
                    gated: r.get(5)?,
                    value: r.get(6)?,
                    baseline: r.get(7)?,
                    change_pct: r.get(8)?,
                    mde_pct: r.get(9)?,
                    record: match r.get_ref(10)? {
                        ValueRef::Null => None,
                        _ => Some(text(r, 10)?),
                    },
                })
            })()
            .map_err(on(path, "cannot read a verdict"))?;
            each(v);
        }
        Ok(())
    }

    /// The per-night means of every case measured from `first_night` on, case by case, each
    /// in night order. `cases` is read once; the scan of `measurements` follows its primary
    /// key (the `+` keeps SQLite off the by-night index, which would cost a lookup per row
    /// and a sort for the grouping).
    pub fn dashboard_measurements(
        &self,
        first_night: i64,
        mut each: impl FnMut(DashMeasurement<'_>),
    ) -> Result<(), HistoryError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, perf_case_name, step, metric, test_id, network_name, case_dir
                 FROM cases",
            )
            .map_err(on(path, "cannot prepare the dashboard's case query"))?;
        let cases: Vec<DashCase> = stmt
            .query_map([], |r| {
                let case: String = r.get(6)?;
                Ok(DashCase {
                    id: r.get(0)?,
                    perf_case_name: r.get(1)?,
                    step: r.get(2)?,
                    metric: r.get(3)?,
                    test_id: r.get(4)?,
                    network_name: r.get(5)?,
                    case: (!case.is_empty()).then_some(case),
                })
            })
            .map_err(on(path, "cannot read cases"))?
            .collect::<Result<_, _>>()
            .map_err(on(path, "cannot read cases"))?;
        let by_id: HashMap<i64, usize> = cases.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT case_id, night, avg(CASE WHEN state = 'valid' THEN value END),
                        sum(state = 'valid' AND value IS NOT NULL), count(*)
                 FROM measurements
                 WHERE +night >= ?1
                 GROUP BY case_id, night",
            )
            .map_err(on(path, "cannot prepare the dashboard's measurement query"))?;
        let mut rows = stmt
            .query([first_night])
            .map_err(on(path, "cannot read measurements"))?;
        // Rows of one case are contiguous: look its id up once.
        let mut last: Option<(i64, usize)> = None;
        while let Some(r) = rows.next().map_err(on(path, "cannot read a measurement"))? {
            let case_id: i64 = r.get(0).map_err(on(path, "cannot read a measurement"))?;
            let at = match last {
                Some((id, at)) if id == case_id => at,
                _ => {
                    let Some(&at) = by_id.get(&case_id) else {
                        return Err(super::invalid(
                            path,
                            format!("a measurement names case {case_id}, which is not in `cases`"),
                        ));
                    };
                    last = Some((case_id, at));
                    at
                }
            };
            let m = (|| {
                Ok::<_, rusqlite::Error>(DashMeasurement {
                    night: r.get(1)?,
                    case: &cases[at],
                    mean: r.get(2)?,
                    valid: r.get(3)?,
                    total: r.get(4)?,
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
            let mut case_ids: HashMap<(String, String, String), i64> = HashMap::new();
            for i in 0..nights {
                let (meta, rows, verdicts) = night(i);
                check_time(path, "started", &meta.started)?;
                let night_index = super::insert_run(&tx, path, &meta, Some(&meta.started))?;
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
                super::insert_verdicts(&tx, path, &verdicts, Some(night_index))?;
            }
        }
        tx.commit().map_err(on(path, "cannot commit the bulk load"))
    }
}

/// Column `i` as text borrowed from the row (no copy); an error for any other type.
fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str, rusqlite::Error> {
    r.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}
