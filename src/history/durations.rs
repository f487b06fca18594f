//! How long each test took, per night: what `--shard` balances shards by.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{History, HistoryError, invalid, night_of, on};

impl History {
    /// Stores how long a test of a begun run took (wall seconds, every step and rerun
    /// included). A second call for the same run and test replaces the first.
    pub fn record_duration(
        &mut self,
        run_id: &str,
        test_id: &str,
        seconds: f64,
    ) -> Result<(), HistoryError> {
        let path = &self.path;
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(invalid(
                path,
                format!(
                    "{test_id}: a duration must be a finite, non-negative number of seconds, not {seconds}"
                ),
            ));
        }
        self.write_to_run(run_id, "cannot commit a duration", |tx, path, night| {
            tx.execute(
                "INSERT INTO case_durations (test_id, night, seconds) VALUES (?1, ?2, ?3)
                 ON CONFLICT (test_id, night) DO UPDATE SET seconds = excluded.seconds",
                params![test_id, night, seconds],
            )
            .map(|_| ())
            .map_err(on(path, "cannot record a duration"))
        })
    }

    /// The latest stored duration of every test id, leaving out the run `exclude_run` (the
    /// shards of one run must all see the same history, whichever finished first).
    pub fn latest_durations(
        &self,
        exclude_run: Option<&str>,
    ) -> Result<BTreeMap<String, f64>, HistoryError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT d.test_id, d.seconds FROM case_durations d JOIN runs r ON r.night = d.night
                 WHERE ?1 IS NULL OR r.run_id <> ?1
                 ORDER BY d.test_id, d.night",
            )
            .map_err(on(path, "cannot prepare the duration query"))?;
        let rows = stmt
            .query_map([exclude_run], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))
            })
            .map_err(on(path, "cannot read durations"))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (test_id, seconds) = row.map_err(on(path, "cannot read a duration"))?;
            // Ordered by night: the last one wins.
            out.insert(test_id, seconds);
        }
        Ok(out)
    }

    /// Every stored duration of one run, by test id (for merging histories).
    pub fn durations(&self, run_id: &str) -> Result<BTreeMap<String, f64>, HistoryError> {
        let path = &self.path;
        let night = night_of(&self.conn, path, run_id)?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT test_id, seconds FROM case_durations WHERE night = ?1")
            .map_err(on(path, "cannot prepare the duration query"))?;
        let rows = stmt
            .query_map([night], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))
            })
            .map_err(on(path, "cannot read durations"))?;
        rows.collect::<Result<_, _>>()
            .map_err(on(path, "cannot read durations"))
    }
}
