//! The history store: every run, case, measurement (each repetition), environment and verdict
//! in one embedded SQLite file. The only module that talks to SQLite.
//!
//! The file is `<output-dir>/history.sqlite` unless `--history PATH` (or `PERF_HISTORY`) names
//! another, so nightly runs that share an output directory, or a path, share a history.
//!
//! **Two writers.** Two perfgate processes (two GPUs of one machine, a nightly run and a
//! re-baselining) may write one file at once. The file is in WAL mode, so readers never wait
//! for a writer; every write is one `BEGIN IMMEDIATE` transaction, which takes the write lock at
//! its start, so a second writer waits in SQLite's busy handler (up to [`BUSY_TIMEOUT`]) instead
//! of failing with "database is locked" halfway through (a deferred transaction that upgrades
//! from reading to writing gets `SQLITE_BUSY` at once in WAL mode, with no wait). WAL needs
//! shared memory between the processes: keep the file on a local filesystem, not NFS.
//!
//! **Corruption.** A damaged file (a disk error, a copy taken mid-write, garbage bytes) is
//! reported as [`HistoryError::Corrupt`], naming the file and how to recover: move it aside and
//! rerun (perfgate starts a new history), or restore a backup. [`History::open`] runs SQLite's
//! `quick_check`, so a damaged file is found before a run starts rather than after hours of
//! benchmarks; the same mapping applies to every later statement.
//!
//! **Nights.** Each run gets a night index when it begins (`runs.night`): an increasing integer
//! the gate uses as [`Observation::night`], independent of clocks and time zones.

pub mod changes;
pub mod combine;
pub mod dashboard;
mod durations;
pub mod export;
pub mod import;
mod records;
pub mod regressions;
mod schema;
pub mod sink;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

pub use records::CaseRecordRow;

use crate::gate::stats::BLIP_CLEAR_NIGHTS;
use crate::record::Observation;
use crate::record::State;
use crate::record::VerdictRecord;

/// The history's file name inside the output directory.
pub const FILE_NAME: &str = "history.sqlite";

/// How long a writer waits for another writer's transaction before giving up. Writes are small
/// (one run's rows), so anything near this means the other process is stuck.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The history file of an output directory when no `--history` is given.
pub fn default_path(output_dir: &Path) -> PathBuf {
    output_dir.join(FILE_NAME)
}

/// One run (one invocation of the harness) as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunMeta {
    /// Unique per run (the harness uses `<UTC time>-<pid>`).
    pub run_id: String,
    /// When it began, RFC 3339.
    pub started: String,
    pub host: String,
    pub test_prefix: Option<String>,
    /// The environment as `key=value;key=value` (sorted keys): runs compare only with runs of
    /// the same fingerprint when the gate asks so.
    pub fingerprint: String,
    /// The full environment description (JSON), for people and dashboards.
    pub env_json: String,
    /// The source revision under test (a commit id), from `--revision` or the CI's variables.
    pub revision: Option<String>,
    /// The branch (or ref) the revision came from.
    pub branch: Option<String>,
    /// The CI build that ran it (Jenkins, GitHub Actions, GitLab), for people to follow.
    pub build_url: Option<String>,
    /// For a run brought in by `perfgate history import`: the file or directory it came from.
    pub imported_from: Option<String>,
}

/// A run as listed by [`History::runs`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRun {
    /// The run's night index (see the module docs).
    pub night: i64,
    pub meta: RunMeta,
    /// When it finished (RFC 3339); `None` while it runs, or when it died.
    pub ended: Option<String>,
}

/// One metric of one repetition of one step of one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasurementRow {
    pub test_id: String,
    /// Upstream's baseline key; with `step` and `metric` it names the series.
    pub perf_case_name: String,
    pub network_name: String,
    /// The case's directory when a name expands into several cases.
    pub case: Option<String>,
    /// `build`, `throughput` or `latency`.
    pub step: String,
    pub metric: String,
    /// 1-based.
    pub repetition: u32,
    /// In the metric's unit. Must be finite for a valid row; a failed or invalid row may carry
    /// NaN (stored as NULL).
    pub value: f64,
    pub state: State,
}

/// What the gate asks [`History::series`] for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesQuery<'a> {
    pub perf_case_name: &'a str,
    /// The step that measured it: a latency run and a throughput run of one case may report a
    /// metric of the same name, and their values are not comparable.
    pub step: &'a str,
    pub metric: &'a str,
    /// Only runs with this environment fingerprint; `None`: any environment.
    pub fingerprint: Option<&'a str>,
    /// Tonight's run, which must not be its own history.
    pub exclude_run: &'a str,
    /// At most this many runs, the most recent.
    pub max_nights: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{}: cannot create the history's directory: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: no history there yet (a run with this --history, or with its output directory, creates it)",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("{}: the history is corrupt ({detail}); {}", path.display(), recovery_hint(path))]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{}: an SQLite database but not a perfgate history ({detail}); give --history a path of its own",
        path.display()
    )]
    NotAHistory { path: PathBuf, detail: String },
    #[error(
        "{}: the history has schema version {found}, written by {written_by}; this perfgate ({}) reads versions up to {supported}: use that perfgate or a newer one, or another --history file",
        path.display(),
        env!("CARGO_PKG_VERSION")
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
        written_by: String,
    },
    #[error(
        "{}: another process held the history's lock for over {} s (a perfgate that hangs, or a tool holding the file open); stop it, or use another --history file",
        path.display(),
        BUSY_TIMEOUT.as_secs()
    )]
    Busy { path: PathBuf },
    #[error(
        "{}: no run `{run_id}` in this history (`perfgate history runs --history {}` lists them)",
        path.display(),
        path.display()
    )]
    UnknownRun { path: PathBuf, run_id: String },
    #[error("{}: {message}", path.display())]
    InvalidInput { path: PathBuf, message: String },
    #[error(
        "{}: the stored verdict of `{key}` in run `{run_id}` cannot be read ({source}); was it written by another perfgate version?",
        path.display()
    )]
    BadRecord {
        path: PathBuf,
        run_id: String,
        key: String,
        source: serde_json::Error,
    },
    #[error("{}: {what}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        what: String,
        source: rusqlite::Error,
    },
}

/// How to get going again with a damaged file. The `-wal` and `-shm` files go too: a stale WAL
/// left next to a new history would be replayed into it.
fn recovery_hint(path: &Path) -> String {
    let date = chrono::DateTime::<chrono::Utc>::from(SystemTime::now()).format("%Y%m%d");
    let p = path.display();
    format!(
        "move it aside (mv {p} {p}.corrupt-{date}, with its -wal and -shm files if present) and \
         rerun: perfgate starts a new history; or restore it from a backup"
    )
}

/// Maps an SQLite error to what the user can act on: damage, a lock held too long, or (the
/// rest) the operation that failed.
fn sql_error(path: &Path, what: &str, e: rusqlite::Error) -> HistoryError {
    let path = path.to_path_buf();
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        match f.code {
            ErrorCode::DatabaseCorrupt => {
                return HistoryError::Corrupt {
                    path,
                    detail: msg
                        .clone()
                        .unwrap_or_else(|| "the database disk image is malformed".into()),
                };
            }
            ErrorCode::NotADatabase => {
                return HistoryError::Corrupt {
                    path,
                    detail: "not an SQLite database: its header is damaged, or --history names \
                             another kind of file"
                        .into(),
                };
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return HistoryError::Busy { path };
            }
            _ => {}
        }
    }
    HistoryError::Sqlite {
        path,
        what: what.to_string(),
        source: e,
    }
}

/// `map_err` adapter for [`sql_error`].
fn on<'a>(path: &'a Path, what: &'a str) -> impl FnOnce(rusqlite::Error) -> HistoryError + 'a {
    move |e| sql_error(path, what, e)
}

/// An open history. One per thread or process; each holds its own connection.
#[derive(Debug)]
pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl History {
    /// Opens the history at `path` for reading and writing, creating the file (and its parent
    /// directories) when absent and bringing an older schema up to date.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| HistoryError::CreateDir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        Self::open_with(path, OpenFlags::SQLITE_OPEN_CREATE, true)
    }

    /// Opens an existing history: for readers (`perfgate gate`), where an absent file is a
    /// mistyped path to report, not a new history to create.
    pub fn open_existing(path: &Path) -> Result<History, HistoryError> {
        if let Err(e) = std::fs::metadata(path)
            && e.kind() == std::io::ErrorKind::NotFound
        {
            return Err(HistoryError::Missing {
                path: path.to_path_buf(),
            });
        }
        Self::open_with(path, OpenFlags::empty(), true)
    }

    /// [`History::open_existing`] without the whole-file `quick_check`, for a reader that
    /// writes nothing into the history (`perfgate dashboard`). The check reads every page: a
    /// year of 1,000 cases × 6 metrics is a 4.1 GB file and 3-4 s. A damaged page still fails
    /// the read that meets it, with an error naming the file.
    pub fn open_existing_unchecked(path: &Path) -> Result<History, HistoryError> {
        if let Err(e) = std::fs::metadata(path)
            && e.kind() == std::io::ErrorKind::NotFound
        {
            return Err(HistoryError::Missing {
                path: path.to_path_buf(),
            });
        }
        Self::open_with(path, OpenFlags::empty(), false)
    }

    fn open_with(path: &Path, extra: OpenFlags, check: bool) -> Result<History, HistoryError> {
        // Read-write even for readers: a WAL reader writes the shared-memory index.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | extra;
        let conn = Connection::open_with_flags(path, flags).map_err(on(path, "cannot open"))?;
        // Before anything that may take a lock, so that even the first statement waits.
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(on(path, "cannot set the busy timeout"))?;
        // Before anything changes the file (WAL mode is stored in it): another program's
        // database is left as it was. The first read of the file: garbage bytes fail here
        // (SQLITE_NOTADB). One read transaction, so that the header and the table count are of
        // one moment: a process creating this history meanwhile is either not begun or done.
        let version = {
            let read = conn
                .unchecked_transaction()
                .map_err(on(path, "cannot begin reading the file's header"))?;
            let version = identify(&read, path)?;
            read.commit()
                .map_err(on(path, "cannot finish reading the file's header"))?;
            version
        };
        switch_to_wal(&conn, path)?;
        // NORMAL is durable in WAL mode except for the last transaction on a power loss.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(on(path, "cannot set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(on(path, "cannot enable foreign keys"))?;
        let mut history = History {
            conn,
            path: path.to_path_buf(),
        };
        if version < schema::LATEST {
            history.migrate()?;
        }
        if check {
            history.quick_check()?;
        }
        Ok(history)
    }

    /// The file this history lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Brings the schema to [`schema::LATEST`].
    fn migrate(&mut self) -> Result<(), HistoryError> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(on(path, "cannot begin the schema update"))?;
        // Again under the lock: another process may have migrated it meanwhile.
        let version = identify(&tx, path)?;
        if version == schema::LATEST {
            return Ok(());
        }
        let from = usize::try_from(version).unwrap_or(0);
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(from) {
            tx.execute_batch(sql).map_err(on(
                path,
                &format!("cannot migrate to schema version {}", i + 1),
            ))?;
        }
        tx.pragma_update(None, "user_version", schema::LATEST)
            .map_err(on(path, "cannot write the schema version"))?;
        tx.pragma_update(None, "application_id", schema::APPLICATION_ID)
            .map_err(on(path, "cannot write the application id"))?;
        // Who wrote this schema, for the error an older perfgate gives on it.
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('written_by', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [format!("perfgate {}", env!("CARGO_PKG_VERSION"))],
        )
        .map_err(on(path, "cannot write the schema's author"))?;
        tx.commit()
            .map_err(on(path, "cannot commit the schema update"))
    }

    /// SQLite's `quick_check`: every page and record is well formed (no index cross-check). A
    /// year of nightly runs is a few tens of MB, which it reads in well under a second.
    fn quick_check(&self) -> Result<(), HistoryError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check(5)")
            .map_err(on(path, "cannot check the history"))?;
        let problems: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(on(path, "cannot check the history"))?
            .collect::<Result<_, _>>()
            .map_err(on(path, "cannot check the history"))?;
        if problems.len() == 1 && problems[0] == "ok" {
            return Ok(());
        }
        Err(HistoryError::Corrupt {
            path: path.clone(),
            detail: problems.join("; "),
        })
    }

    /// Records the start of a run and returns its night index. Idempotent: for a `run_id`
    /// already stored it returns the same night and keeps the stored description.
    pub fn begin_run(&mut self, meta: &RunMeta) -> Result<i64, HistoryError> {
        let path = &self.path;
        check_time(path, "started", &meta.started)?;
        if meta.run_id.is_empty() {
            return Err(invalid(path, "a run needs a non-empty run id".into()));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(on(path, "cannot begin a write"))?;
        let night = insert_run(&tx, path, meta, None)?;
        tx.commit().map_err(on(path, "cannot commit the run"))?;
        Ok(night)
    }

    /// Records when a run ended (RFC 3339). A run that never calls this died or still runs.
    pub fn finish_run(&mut self, run_id: &str, ended: &str) -> Result<(), HistoryError> {
        let path = &self.path;
        check_time(path, "ended", ended)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(on(path, "cannot begin a write"))?;
        let changed = tx
            .execute(
                "UPDATE runs SET ended = ?2 WHERE run_id = ?1",
                params![run_id, ended],
            )
            .map_err(on(path, "cannot record the end of the run"))?;
        if changed == 0 {
            return Err(unknown_run(path, run_id));
        }
        tx.commit()
            .map_err(on(path, "cannot commit the end of the run"))
    }

    /// Runs `write` on the night of the begun run `run_id`, in one immediate transaction: all
    /// of it lands or none. `commit` is the error's words when the commit fails.
    pub(crate) fn write_to_run(
        &mut self,
        run_id: &str,
        commit: &str,
        write: impl FnOnce(&rusqlite::Transaction<'_>, &Path, i64) -> Result<(), HistoryError>,
    ) -> Result<(), HistoryError> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(on(path, "cannot begin a write"))?;
        let night = night_of(&tx, path, run_id)?;
        write(&tx, path, night)?;
        tx.commit().map_err(on(path, commit))
    }

    /// Stores measurements of a begun run in one transaction: all land or none. A row for the
    /// same case, step, metric and repetition replaces the stored one (a rerun of a repetition).
    pub fn record_measurements(
        &mut self,
        run_id: &str,
        rows: &[MeasurementRow],
    ) -> Result<(), HistoryError> {
        self.write_to_run(
            run_id,
            "cannot commit the measurements",
            |tx, path, night| insert_measurements(tx, path, night, rows),
        )
    }

    /// A run's measurements, in the order of case, step, metric and repetition.
    pub fn measurements(&self, run_id: &str) -> Result<Vec<MeasurementRow>, HistoryError> {
        let path = &self.path;
        let night = night_of(&self.conn, path, run_id)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.test_id, c.perf_case_name, c.network_name, c.case_dir, c.step,
                        c.metric, m.repetition, m.value, m.state
                 FROM measurements m JOIN cases c ON c.id = m.case_id
                 WHERE m.night = ?1
                 ORDER BY c.id, m.repetition",
            )
            .map_err(on(path, "cannot prepare the measurement query"))?;
        let rows = stmt
            .query_map([night], |r| {
                let case: String = r.get(3)?;
                let state: String = r.get(8)?;
                Ok((
                    MeasurementRow {
                        test_id: r.get(0)?,
                        perf_case_name: r.get(1)?,
                        network_name: r.get(2)?,
                        case: (!case.is_empty()).then_some(case),
                        step: r.get(4)?,
                        metric: r.get(5)?,
                        repetition: r.get(6)?,
                        value: r.get::<_, Option<f64>>(7)?.unwrap_or(f64::NAN),
                        state: State::Valid,
                    },
                    state,
                ))
            })
            .map_err(on(path, "cannot read measurements"))?;
        let mut out = Vec::new();
        for row in rows {
            let (mut row, state) = row.map_err(on(path, "cannot read a measurement"))?;
            // The CHECK constraint allows only these three.
            row.state = match state.as_str() {
                "valid" => State::Valid,
                "failed" => State::Failed,
                _ => State::Invalid,
            };
            out.push(row);
        }
        Ok(out)
    }

    /// Stores verdicts (each names its run, which must have begun). A verdict for the same run,
    /// case, step and metric replaces the stored one: a rerun re-decides.
    pub fn record_verdicts(&mut self, rows: &[VerdictRecord]) -> Result<(), HistoryError> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(on(path, "cannot begin a write"))?;
        insert_verdicts(&tx, path, rows, None)?;
        tx.commit().map_err(on(path, "cannot commit the verdicts"))
    }

    /// A run's verdicts, in the order they were first recorded.
    pub fn verdicts(&self, run_id: &str) -> Result<Vec<VerdictRecord>, HistoryError> {
        let path = &self.path;
        let night = night_of(&self.conn, path, run_id)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT perf_case_name, metric, record FROM verdicts WHERE night = ?1 ORDER BY id",
            )
            .map_err(on(path, "cannot prepare the verdict query"))?;
        let rows = stmt
            .query_map([night], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(on(path, "cannot read verdicts"))?;
        let mut out = Vec::new();
        for row in rows {
            let (case, metric, json) = row.map_err(on(path, "cannot read a verdict"))?;
            let record = serde_json::from_str(&json).map_err(|source| HistoryError::BadRecord {
                path: path.clone(),
                run_id: run_id.to_string(),
                key: format!("{case} {metric}"),
                source,
            })?;
            out.push(record);
        }
        Ok(out)
    }

    /// The earlier nights of one series for the gate: the valid measurements of the series,
    /// every repetition, oldest night first, from the most recent `max_nights` runs that
    /// - are not `exclude_run`,
    /// - have the given fingerprint (when one is given),
    /// - came after the series' latest acknowledged change point (see [`History::acknowledge`]),
    /// - did not get an INVALID or ENV_CHANGED verdict for the series (a broken measurement,
    ///   another environment),
    /// - did not get a FAIL or IMPROVED verdict, unless the next
    ///   [`BLIP_CLEAR_NIGHTS`] verdict nights of the series were all PASS or UNKNOWN: then
    ///   that night was a blip, noise the history must keep (leaving every alarming night out
    ///   would narrow the noise the gate sees and raise its false alarms; measured on real
    ///   llama.cpp noise, docs/design/statistics.md). A regression keeps failing, night after
    ///   night, so it stays out until it is fixed or acknowledged (`perfgate baseline update
    ///   --accept-regressions --history`); it is never absorbed into the history silently.
    pub fn series(&self, q: &SeriesQuery<'_>) -> Result<Vec<Observation>, HistoryError> {
        let path = &self.path;
        if q.max_nights == 0 {
            return Ok(Vec::new());
        }
        let max_nights = i64::try_from(q.max_nights).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare_cached(SERIES_SQL)
            .map_err(on(path, "cannot prepare the series query"))?;
        let rows = stmt
            .query_map(
                params![
                    q.perf_case_name,
                    q.metric,
                    q.step,
                    q.exclude_run,
                    q.fingerprint,
                    max_nights,
                    BLIP_CLEAR_NIGHTS as i64
                ],
                |r| {
                    Ok(Observation {
                        night: r.get(0)?,
                        value: r.get(1)?,
                    })
                },
            )
            .map_err(on(path, "cannot read the series"))?;
        rows.collect::<Result<_, _>>()
            .map_err(on(path, "cannot read the series"))
    }

    /// The most recently begun run, if any.
    pub fn latest_run(&self) -> Result<Option<String>, HistoryError> {
        self.conn
            .query_row(
                "SELECT run_id FROM runs ORDER BY night DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(on(&self.path, "cannot read the latest run"))
    }

    /// One run, if stored.
    pub fn run(&self, run_id: &str) -> Result<Option<StoredRun>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{RUN_SELECT} WHERE run_id = ?1"))
            .map_err(on(&self.path, "cannot prepare the run query"))?;
        stmt.query_row([run_id], stored_run)
            .optional()
            .map_err(on(&self.path, "cannot read a run"))
    }

    /// The most recent `limit` runs, most recent first.
    pub fn runs(&self, limit: usize) -> Result<Vec<StoredRun>, HistoryError> {
        let path = &self.path;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{RUN_SELECT} ORDER BY night DESC LIMIT ?1"))
            .map_err(on(path, "cannot prepare the run list"))?;
        let rows = stmt
            .query_map([limit], stored_run)
            .map_err(on(path, "cannot list runs"))?;
        rows.collect::<Result<_, _>>()
            .map_err(on(path, "cannot list runs"))
    }

    /// Acknowledges a change point (a re-baselining, with its reason): from now on the gate's
    /// history of `perf_case_name` + `metric` (every step) starts at `first_run`, the first
    /// run of the new level (the one `perfgate baseline update` took the new value from);
    /// earlier runs no longer count.
    pub fn acknowledge(
        &mut self,
        perf_case_name: &str,
        metric: &str,
        reason: &str,
        first_run: &str,
    ) -> Result<(), HistoryError> {
        let path = &self.path;
        if reason.trim().is_empty() {
            return Err(invalid(
                path,
                format!(
                    "acknowledging a change of {perf_case_name} {metric} needs a reason (who \
                     changed what), for whoever reads the history next"
                ),
            ));
        }
        let now = chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(on(path, "cannot begin a write"))?;
        let night = night_of(&tx, path, first_run)?;
        tx.execute(
            "INSERT INTO change_points (perf_case_name, metric, first_night, reason, acknowledged)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![perf_case_name, metric, night, reason, now],
        )
        .map_err(on(path, "cannot record the change point"))?;
        tx.commit()
            .map_err(on(path, "cannot commit the change point"))
    }
}

/// The gate's series. `keys` are the case rows of the series (one per test id that spelled the
/// case); `nights` the runs that qualify, newest first, limited; then every valid repetition of
/// those runs. Every lookup goes through an index (see the query-plan test below).
const SERIES_SQL: &str = "
WITH keys AS (
    SELECT id FROM cases WHERE perf_case_name = ?1 AND metric = ?2 AND step = ?3
),
nights AS (
    SELECT DISTINCT m.night
    FROM measurements m JOIN runs r ON r.night = m.night
    WHERE m.case_id IN keys
      AND m.state = 'valid' AND m.value IS NOT NULL
      AND r.run_id <> ?4
      AND (?5 IS NULL OR r.fingerprint = ?5)
      AND m.night >= (SELECT coalesce(max(first_night), 0) FROM change_points
                     WHERE perf_case_name = ?1 AND metric = ?2)
      AND NOT EXISTS (SELECT 1 FROM verdicts v
                      WHERE v.night = m.night AND v.perf_case_name = ?1 AND v.step = ?3
                        AND v.metric = ?2
                        AND (v.verdict IN ('INVALID', 'ENV_CHANGED')
                             OR (v.verdict IN ('FAIL', 'IMPROVED')
                                 AND (SELECT count(*) FROM (
                                        SELECT w.verdict FROM verdicts w
                                        WHERE w.perf_case_name = ?1 AND w.metric = ?2
                                          AND w.step = ?3 AND w.night > v.night
                                        ORDER BY w.night LIMIT ?7)
                                      WHERE verdict IN ('PASS', 'UNKNOWN')) < ?7)))
    ORDER BY m.night DESC
    LIMIT ?6
)
SELECT m.night, m.value
FROM measurements m
WHERE m.case_id IN keys AND m.night IN nights
  AND m.state = 'valid' AND m.value IS NOT NULL
ORDER BY m.night, m.repetition, m.case_id";

/// Stores a run's description inside the caller's transaction (a run id already stored keeps
/// its description) and returns its night index.
pub(super) fn insert_run(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    meta: &RunMeta,
    ended: Option<&str>,
) -> Result<i64, HistoryError> {
    tx.prepare_cached(
        "INSERT INTO runs (run_id, started, ended, host, test_prefix, fingerprint, env_json,
                           revision, branch, build_url, imported_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (run_id) DO NOTHING",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            meta.run_id,
            meta.started,
            ended,
            meta.host,
            meta.test_prefix,
            meta.fingerprint,
            meta.env_json,
            meta.revision,
            meta.branch,
            meta.build_url,
            meta.imported_from
        ])
    })
    .map_err(on(path, "cannot record the run"))?;
    night_of(tx, path, &meta.run_id)
}

/// Stores measurements of the run with night index `night` inside the caller's transaction. A
/// row for the same case, step, metric and repetition replaces the stored one (a rerun of a
/// repetition). Checks every row before writing any.
pub(super) fn insert_measurements(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    night: i64,
    rows: &[MeasurementRow],
) -> Result<(), HistoryError> {
    for row in rows {
        if row.state == State::Valid && !row.value.is_finite() {
            return Err(invalid(
                path,
                format!(
                    "{} {} repetition {}: a valid measurement needs a finite value, not {}",
                    row.perf_case_name, row.metric, row.repetition, row.value
                ),
            ));
        }
    }
    let mut case_insert = tx
        .prepare_cached(
            "INSERT INTO cases (perf_case_name, metric, step, test_id, network_name, case_dir)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT DO NOTHING",
        )
        .map_err(on(path, "cannot prepare the case insert"))?;
    let mut case_id = tx
        .prepare_cached(
            "SELECT id FROM cases WHERE perf_case_name = ?1 AND metric = ?2 AND step = ?3
             AND test_id = ?4 AND network_name = ?5 AND case_dir = ?6",
        )
        .map_err(on(path, "cannot prepare the case lookup"))?;
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO measurements (case_id, night, repetition, value, state)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (case_id, night, repetition)
             DO UPDATE SET value = excluded.value, state = excluded.state",
        )
        .map_err(on(path, "cannot prepare the measurement insert"))?;
    for row in rows {
        let key = params![
            row.perf_case_name,
            row.metric,
            row.step,
            row.test_id,
            row.network_name,
            row.case.as_deref().unwrap_or("")
        ];
        case_insert
            .execute(key)
            .map_err(on(path, "cannot record a case"))?;
        let id: i64 = case_id
            .query_row(key, |r| r.get(0))
            .map_err(on(path, "cannot look up a case"))?;
        insert
            .execute(params![
                id,
                night,
                row.repetition,
                row.value.is_finite().then_some(row.value),
                row.state.as_str()
            ])
            .map_err(on(path, "cannot record a measurement"))?;
    }
    Ok(())
}

/// Stores verdicts inside the caller's transaction, each under the night of its `run_id`, or
/// under `night` when given (an import that renamed its run). A verdict for the same night,
/// case, step and metric replaces the stored one (a rerun's verdict).
pub(super) fn insert_verdicts(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    rows: &[VerdictRecord],
    night: Option<i64>,
) -> Result<(), HistoryError> {
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO verdicts (night, perf_case_name, step, metric, verdict, gated,
                                   value, baseline, change_pct, mde_pct, source, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (night, perf_case_name, step, metric) DO UPDATE SET
                 verdict = excluded.verdict, gated = excluded.gated,
                 value = excluded.value, baseline = excluded.baseline,
                 change_pct = excluded.change_pct, mde_pct = excluded.mde_pct,
                 source = excluded.source, record = excluded.record",
        )
        .map_err(on(path, "cannot prepare the verdict insert"))?;
    let mut nights: Vec<(&str, i64)> = Vec::new();
    for v in rows {
        let night = match night {
            Some(n) => n,
            None => match nights.iter().find(|(id, _)| *id == v.run_id) {
                Some(&(_, n)) => n,
                None => {
                    let n = night_of(tx, path, &v.run_id)?;
                    nights.push((&v.run_id, n));
                    n
                }
            },
        };
        let record = serde_json::to_string(v).map_err(|e| {
            invalid(
                path,
                format!("the verdict of {} cannot be stored: {e}", v.perf_case_name),
            )
        })?;
        insert
            .execute(params![
                night,
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
    Ok(())
}

const RUN_SELECT: &str =
    "SELECT night, run_id, started, host, test_prefix, fingerprint, env_json, ended,
            revision, branch, build_url, imported_from FROM runs";

fn stored_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRun> {
    Ok(StoredRun {
        night: r.get(0)?,
        meta: RunMeta {
            run_id: r.get(1)?,
            started: r.get(2)?,
            host: r.get(3)?,
            test_prefix: r.get(4)?,
            fingerprint: r.get(5)?,
            env_json: r.get(6)?,
            revision: r.get(8)?,
            branch: r.get(9)?,
            build_url: r.get(10)?,
            imported_from: r.get(11)?,
        },
        ended: r.get(7)?,
    })
}

/// Puts the file in WAL mode (stored in the file, so a no-op once done). SQLite does not call
/// the busy handler for this switch: while another process creates or switches the same new
/// file, it fails at once with SQLITE_BUSY. So it is retried here, for as long as any other
/// statement would wait. A filesystem without shared memory keeps the rollback journal, which is
/// still safe for two writers (readers then wait for writers); so the answer is not checked.
fn switch_to_wal(conn: &Connection, path: &Path) -> Result<(), HistoryError> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let switched =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0));
        match switched {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == ErrorCode::DatabaseBusy && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(sql_error(path, "cannot switch to WAL mode", e)),
        }
    }
}

/// The file's schema version, once it is known to be a perfgate history (or empty, to become
/// one). Many programs use `user_version`, so it counts only with perfgate's application id.
fn identify(conn: &Connection, path: &Path) -> Result<i64, HistoryError> {
    let read = |pragma: &str| -> Result<i64, HistoryError> {
        conn.pragma_query_value(None, pragma, |r| r.get(0))
            .map_err(on(path, "cannot read the file's header"))
    };
    let version = read("user_version")?;
    let app_id = read("application_id")?;
    if app_id == schema::APPLICATION_ID {
        if version > schema::LATEST {
            return Err(newer_schema(conn, path, version));
        }
        return Ok(version);
    }
    if app_id == 0 && version == 0 {
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(on(path, "cannot read the schema"))?;
        if tables == 0 {
            return Ok(0);
        }
        return Err(HistoryError::NotAHistory {
            path: path.to_path_buf(),
            detail: format!("it has {tables} table(s) and no perfgate schema"),
        });
    }
    Err(HistoryError::NotAHistory {
        path: path.to_path_buf(),
        detail: format!("its application id is {app_id:#x}, schema version {version}"),
    })
}

/// The error for a file from a newer perfgate, naming it when the file says who wrote it.
fn newer_schema(conn: &Connection, path: &Path, found: i64) -> HistoryError {
    // Best effort: a newer schema may keep `meta` elsewhere; the version alone still says
    // what to do.
    let written_by = conn
        .query_row("SELECT value FROM meta WHERE key = 'written_by'", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_or_else(|_| "a newer perfgate".to_string());
    HistoryError::NewerSchema {
        path: path.to_path_buf(),
        found,
        supported: schema::LATEST,
        written_by,
    }
}

fn night_of(conn: &Connection, path: &Path, run_id: &str) -> Result<i64, HistoryError> {
    conn.prepare_cached("SELECT night FROM runs WHERE run_id = ?1")
        .and_then(|mut s| s.query_row([run_id], |r| r.get(0)).optional())
        .map_err(on(path, "cannot look up a run"))?
        .ok_or_else(|| unknown_run(path, run_id))
}

pub(crate) fn unknown_run(path: &Path, run_id: &str) -> HistoryError {
    HistoryError::UnknownRun {
        path: path.to_path_buf(),
        run_id: run_id.to_string(),
    }
}

fn invalid(path: &Path, message: String) -> HistoryError {
    HistoryError::InvalidInput {
        path: path.to_path_buf(),
        message,
    }
}

/// Times are stored as text; a malformed one would sort and display wrongly forever after.
fn check_time(path: &Path, what: &str, value: &str) -> Result<(), HistoryError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|_| ())
        .map_err(|e| {
            invalid(
                path,
                format!("`{value}` is not an RFC 3339 time for `{what}`: {e}"),
            )
        })
}

/// The stored test durations of a history (`None`, or a file not there yet: none), leaving
/// out the run `exclude_run`.
pub fn test_durations(
    history: Option<&Path>,
    exclude_run: Option<&str>,
) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
    let Some(path) = history else {
        return Ok(Default::default());
    };
    match History::open_existing(path) {
        Ok(h) => Ok(h.latest_durations(exclude_run)?),
        Err(HistoryError::Missing { .. }) => Ok(Default::default()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gate asks for a series once per case-metric per night; on a history of years that
    /// must read one series' rows, never scan a table.
    #[test]
    fn the_series_query_uses_indexes_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let history = History::open(&dir.path().join("h.sqlite")).expect("open");
        let mut stmt = history
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {SERIES_SQL}"))
            .expect("explain");
        let plan: Vec<String> = stmt
            .query_map(
                params!["p", "m", "s", "r", Option::<String>::None, 10, 2],
                |r| r.get::<_, String>(3),
            )
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let plan = plan.join("\n");
        // Only the small intermediate results (the series' case ids, its chosen nights, the
        // few verdict nights after a FAIL) may be scanned; every table is searched through an
        // index.
        for line in plan.lines() {
            assert!(
                !line.starts_with("SCAN")
                    || line == "SCAN nights"
                    || line == "SCAN keys"
                    || line.starts_with("SCAN (subquery-"),
                "a full scan in the series plan:\n{plan}"
            );
        }
    }
}
