//! The history's schema and its migrations.
//!
//! The version lives in `PRAGMA user_version`; `MIGRATIONS[i]` takes a file from version `i` to
//! `i + 1`, so an empty file is brought up to date by running all of them in order and an older
//! history by running the rest. A released migration is never edited: a change to the schema is
//! a new entry at the end.
//!
//! Why this shape:
//! - `runs.night` is an `INTEGER PRIMARY KEY AUTOINCREMENT`: the gate's night index. It grows
//!   with every run begun, is never reused (not even after a deletion), and needs no clock.
//! - `cases` holds each distinct series key once; `measurements` refers to it by id. A perf case
//!   name is ~150 bytes and a nightly list writes thousands of rows, so repeating it per row
//!   would make the file (and every scan of it) several times larger.
//! - `measurements` is `WITHOUT ROWID` with the primary key `(case_id, night, repetition)`: one
//!   series' rows are contiguous and in night order, so the gate's query reads only them.
//! - `verdicts` keeps the columns a query filters or a table shows, plus the whole
//!   `VerdictRecord` as JSON, so adding a field to the record needs no migration.
//! - `change_points` are acknowledged re-baselinings; a series' history starts after the latest.
//! - V2 adds each run's source revision, branch and CI build URL (a blame range names
//!   revisions) and, for a run brought in by `perfgate history import`, where it came from.
//! - V3 adds `case_durations`: how long each test took (wall seconds, every step and rerun
//!   included), one row per test id and night, so `--shard` can balance shards by time.
//! - V4 widens `verdicts_by_series` into a covering index of the columns the dashboard and
//!   the gate's series query read (verdict, gated, value, baseline, change, MDE). A year of
//!   1,000 cases × 6 metrics keeps 2.19 M verdicts whose rows (~1.4 kB each, ~0.9 kB of it the
//!   `record` JSON) fill 3.0 GB; the dashboard reads the 0.54 GB index instead, and the table
//!   only for the few records that are not PASS. Replacing the old index (same leading
//!   columns, so every query it served it still serves) adds ~42 bytes of payload per verdict
//!   (+47 MB on that year), where a second, night-first index would add ~240.
//! - V5 adds `case_records`: a serving case's upstream record per night (perf-sanity's
//!   `s_`/`l_`/`b_`/`d_` fields of its server and client, without the metrics, and the keys
//!   upstream matches baselines on), as JSON, so `history export --format opensearch-bulk`
//!   writes the documents upstream's upload path reads. One row per case and night, keyed as
//!   `cases` keys a case (test id, network name, case directory); a few hundred bytes each.

/// `PRAGMA application_id` of a perfgate history ("pfgt"): tells it apart from other SQLite
/// files a `--history` path might name by mistake.
pub(super) const APPLICATION_ID: i64 = 0x7066_6774;

/// The schema version this perfgate writes (and the newest it reads).
pub(super) const LATEST: i64 = MIGRATIONS.len() as i64;

pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

const V1: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE runs (
    night       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL UNIQUE,
    started     TEXT NOT NULL,
    ended       TEXT,
    host        TEXT NOT NULL,
    test_prefix TEXT,
    fingerprint TEXT NOT NULL,
    env_json    TEXT NOT NULL
);

-- case_dir is '' (not NULL) for a name with one case: NULLs never collide in a UNIQUE key.
CREATE TABLE cases (
    id             INTEGER PRIMARY KEY,
    perf_case_name TEXT NOT NULL,
    metric         TEXT NOT NULL,
    step           TEXT NOT NULL,
    test_id        TEXT NOT NULL,
    network_name   TEXT NOT NULL,
    case_dir       TEXT NOT NULL,
    UNIQUE (perf_case_name, metric, step, test_id, network_name, case_dir)
);

CREATE TABLE measurements (
    case_id    INTEGER NOT NULL REFERENCES cases(id),
    night      INTEGER NOT NULL REFERENCES runs(night),
    repetition INTEGER NOT NULL,
    value      REAL,
    state      TEXT NOT NULL CHECK (state IN ('valid', 'failed', 'invalid')),
    PRIMARY KEY (case_id, night, repetition)
) WITHOUT ROWID;
-- A run's own rows (listing, deleting a run) without scanning every series.
CREATE INDEX measurements_by_night ON measurements(night);

CREATE TABLE verdicts (
    id             INTEGER PRIMARY KEY,
    night          INTEGER NOT NULL REFERENCES runs(night),
    perf_case_name TEXT NOT NULL,
    step           TEXT NOT NULL,
    metric         TEXT NOT NULL,
    verdict        TEXT NOT NULL,
    gated          INTEGER NOT NULL,
    value          REAL,
    baseline       REAL,
    change_pct     REAL,
    mde_pct        REAL,
    source         TEXT NOT NULL,
    record         TEXT NOT NULL,
    UNIQUE (night, perf_case_name, step, metric)
);
-- A series' verdicts over time (dashboards) without a scan.
CREATE INDEX verdicts_by_series ON verdicts(perf_case_name, metric, step, night);

CREATE TABLE change_points (
    id             INTEGER PRIMARY KEY,
    perf_case_name TEXT NOT NULL,
    metric         TEXT NOT NULL,
    -- The first run of the new level: the series starts here.
    first_night    INTEGER NOT NULL REFERENCES runs(night),
    reason         TEXT NOT NULL,
    acknowledged   TEXT NOT NULL
);
CREATE INDEX change_points_by_series ON change_points(perf_case_name, metric, first_night);
";

const V2: &str = "
ALTER TABLE runs ADD COLUMN revision TEXT;
ALTER TABLE runs ADD COLUMN branch TEXT;
ALTER TABLE runs ADD COLUMN build_url TEXT;
ALTER TABLE runs ADD COLUMN imported_from TEXT;
";

const V3: &str = "
CREATE TABLE case_durations (
    test_id TEXT NOT NULL,
    night   INTEGER NOT NULL REFERENCES runs(night),
    seconds REAL NOT NULL CHECK (seconds >= 0),
    PRIMARY KEY (test_id, night)
) WITHOUT ROWID;
";

const V4: &str = "
DROP INDEX verdicts_by_series;
CREATE INDEX verdicts_by_series ON verdicts(perf_case_name, metric, step, night,
                                            verdict, gated, value, baseline, change_pct, mde_pct);
";

const V5: &str = "
CREATE TABLE case_records (
    night        INTEGER NOT NULL REFERENCES runs(night),
    test_id      TEXT NOT NULL,
    network_name TEXT NOT NULL,
    case_dir     TEXT NOT NULL,
    record       TEXT NOT NULL,
    PRIMARY KEY (night, test_id, network_name, case_dir)
) WITHOUT ROWID;
";
