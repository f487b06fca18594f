//! The nightly series that change-point detection reads (`perfgate history changes`): per
//! (perf_case_name, step, metric), each night's median of the valid repetitions, with its run,
//! revision and verdict.

use rusqlite::params;

use super::{History, HistoryError, on};
use crate::gate::changes::SeriesPoint;

/// One series of a run: what `perfgate history changes --all` walks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesKey {
    pub perf_case_name: String,
    pub step: String,
    pub metric: String,
}

/// Every valid repetition of the series, one row per repetition, oldest night first, from the
/// series' latest acknowledged change point on, in one environment when `?4` is given. Unlike
/// the gate's series, FAIL and IMPROVED nights stay in: they are what is being assessed.
const NIGHTS_SQL: &str = "
WITH keys AS (
    SELECT id FROM cases WHERE perf_case_name = ?1 AND metric = ?2 AND step = ?3
)
SELECT r.night, r.run_id, r.started, r.revision, m.value,
       (SELECT v.verdict FROM verdicts v
        WHERE v.night = r.night AND v.perf_case_name = ?1 AND v.step = ?3 AND v.metric = ?2)
FROM measurements m JOIN runs r ON r.night = m.night
WHERE m.case_id IN keys
  AND m.state = 'valid' AND m.value IS NOT NULL
  AND (?4 IS NULL OR r.fingerprint = ?4)
  AND m.night >= (SELECT coalesce(max(first_night), 0) FROM change_points
                  WHERE perf_case_name = ?1 AND metric = ?2)
ORDER BY m.night, m.repetition, m.case_id";

impl History {
    /// The series for change-point detection: one point per night with a valid measurement
    /// (the median of its repetitions), oldest first, starting at the series' latest
    /// acknowledged change point, restricted to `fingerprint` when given.
    pub fn night_series(
        &self,
        perf_case_name: &str,
        step: &str,
        metric: &str,
        fingerprint: Option<&str>,
    ) -> Result<Vec<SeriesPoint>, HistoryError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(NIGHTS_SQL)
            .map_err(on(path, "cannot prepare the night-series query"))?;
        let rows = stmt
            .query_map(params![perf_case_name, metric, step, fingerprint], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, f64>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })
            .map_err(on(path, "cannot read the night series"))?;
        let mut out: Vec<SeriesPoint> = Vec::new();
        let mut reps: Vec<f64> = Vec::new();
        let finish = |out: &mut Vec<SeriesPoint>, reps: &mut Vec<f64>| {
            if let Some(last) = out.last_mut() {
                last.value = median(reps);
                last.reps = reps.len();
            }
            reps.clear();
        };
        for row in rows {
            let (night, run_id, started, revision, value, verdict) =
                row.map_err(on(path, "cannot read the night series"))?;
            if out.last().is_none_or(|p| p.night != night) {
                finish(&mut out, &mut reps);
                out.push(SeriesPoint {
                    run_id,
                    night,
                    started,
                    revision,
                    value: f64::NAN,
                    reps: 0,
                    verdict,
                });
            }
            reps.push(value);
        }
        finish(&mut out, &mut reps);
        Ok(out)
    }

    /// The series a run measured (valid or not), in a stable order.
    pub fn run_series(&self, run_id: &str) -> Result<Vec<SeriesKey>, HistoryError> {
        let path = &self.path;
        let night = super::night_of(&self.conn, path, run_id)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT c.perf_case_name, c.step, c.metric
                 FROM measurements m JOIN cases c ON c.id = m.case_id
                 WHERE m.night = ?1
                 ORDER BY c.perf_case_name, c.step, c.metric",
            )
            .map_err(on(path, "cannot prepare the run's series query"))?;
        let rows = stmt
            .query_map([night], |r| {
                Ok(SeriesKey {
                    perf_case_name: r.get(0)?,
                    step: r.get(1)?,
                    metric: r.get(2)?,
                })
            })
            .map_err(on(path, "cannot list the run's series"))?;
        rows.collect::<Result<_, _>>()
            .map_err(on(path, "cannot list the run's series"))
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `history changes` reads one series per FAIL; on years of nights that must go through
    /// the indexes, like the gate's series.
    #[test]
    fn the_night_series_query_uses_indexes_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let history = History::open(&dir.path().join("h.sqlite")).expect("open");
        let mut stmt = history
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {NIGHTS_SQL}"))
            .expect("explain");
        let plan: Vec<String> = stmt
            .query_map(params!["p", "m", "s", Option::<String>::None], |r| {
                r.get::<_, String>(3)
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let plan = plan.join("\n");
        for line in plan.lines() {
            assert!(
                !line.starts_with("SCAN") || line == "SCAN keys",
                "a full scan in the night-series plan:\n{plan}"
            );
        }
        assert!(plan.contains("SEARCH m USING PRIMARY KEY"), "{plan}");
    }
}
