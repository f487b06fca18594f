//! `perfgate merge`: the output directories of the shards of one run (`--shard K/N`, one
//! `--run-id`) joined into one directory that reads as if one process had run the whole list.
//!
//! Everything that can refuse does so before anything is written: a directory without
//! `shard.json`, shards of different runs, lists, settings, counts or partitions, one shard
//! index twice, a test in two shards, result files of different columns, an output directory
//! that is not empty. Missing shards and tests a shard was given but did not finish are
//! reported ([`completeness`]); the rest is merged all the same.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::results::junit::{self, JunitCase, JunitWriter, Outcome};
use crate::shard::{RECORD_FILE, ShardRecord, ShardSpec};
use crate::textutil::xml_escape;

/// What the SLURM helper leaves in a shard's directory when the job ended.
pub const SLURM_STATE_FILE: &str = "slurm_state.json";

/// The merge's own report, written into the merged directory.
pub const REPORT_FILE: &str = "merge_report.json";

/// `slurm_state.json`: how the scheduler saw the job end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmState {
    /// SLURM's job state (`COMPLETED`, `TIMEOUT`, `OUT_OF_MEMORY`, `CANCELLED`, ...).
    pub state: String,
    /// `<exit code>:<signal>` as sacct prints it.
    #[serde(default)]
    pub exit_code: Option<String>,
    /// The job's log file.
    #[serde(default)]
    pub log: Option<PathBuf>,
}

/// One shard's output directory, read.
#[derive(Debug, Clone)]
pub struct ShardDir {
    pub dir: PathBuf,
    pub record: ShardRecord,
    pub slurm: Option<SlurmState>,
}

impl ShardDir {
    /// Reads `shard.json` and, when present, `slurm_state.json`.
    pub fn read(dir: &Path) -> Result<ShardDir, MergeError> {
        let record = ShardRecord::read(dir).map_err(|e| MergeError::Record {
            dir: dir.to_path_buf(),
            message: format!("{e:#}"),
        })?;
        let path = dir.join(SLURM_STATE_FILE);
        let slurm = match std::fs::read_to_string(&path) {
            Ok(text) => Some(serde_json::from_str(&text).map_err(|e| MergeError::Record {
                dir: dir.to_path_buf(),
                message: format!(
                    "{}:{}:{}: expected {{\"state\": \"TIMEOUT\", \"exit_code\": \"0:15\", \"log\": \"/path/slurm.out\"}}: {e}",
                    path.display(),
                    e.line(),
                    e.column()
                ),
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(MergeError::Record {
                    dir: dir.to_path_buf(),
                    message: format!("{}: cannot read: {e}", path.display()),
                });
            }
        };
        Ok(ShardDir {
            dir: dir.to_path_buf(),
            record,
            slurm,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no shard directories given")]
    NoShards,
    #[error("{}: {message}", dir.display())]
    Record { dir: PathBuf, message: String },
    #[error(
        "{} and {} are not shards of one run: their {what} differ ({first} vs {second}); merge only the output directories of one `--run-id`, list and settings",
        first_dir.display(),
        second_dir.display()
    )]
    Mismatch {
        what: &'static str,
        first_dir: PathBuf,
        first: String,
        second_dir: PathBuf,
        second: String,
    },
    #[error("shard {index} is given twice: {} and {}", first.display(), second.display())]
    DuplicateShard {
        index: usize,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("`{test_id}` was assigned to two shards ({} and {})", first.display(), second.display())]
    Overlap {
        test_id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{}: {message}", out.display())]
    Output { out: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Text(#[from] crate::textutil::TextFileError),
}

/// A test a shard was given but did not finish.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnfinishedCase {
    pub shard: ShardSpec,
    pub test_id: String,
    /// The job's end as the scheduler saw it, when the shard directory says.
    pub state: Option<String>,
    pub exit_code: Option<String>,
    pub log: Option<PathBuf>,
    pub dir: PathBuf,
}

/// What a set of shard directories lacks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Completeness {
    pub run_id: String,
    pub count: usize,
    /// Shard indices with no directory given.
    pub missing_shards: Vec<usize>,
    pub unfinished: Vec<UnfinishedCase>,
}

impl Completeness {
    pub fn is_complete(&self) -> bool {
        self.missing_shards.is_empty() && self.unfinished.is_empty()
    }
}

impl fmt::Display for Completeness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_complete() {
            return writeln!(
                f,
                "run {}: all {} shard(s) present, every assigned test finished",
                self.run_id, self.count
            );
        }
        for i in &self.missing_shards {
            writeln!(
                f,
                "run {}: shard {i}/{} is missing (no output directory given)",
                self.run_id, self.count
            )?;
        }
        for u in &self.unfinished {
            let how = match (&u.state, &u.exit_code) {
                (Some(s), Some(c)) => format!("job {s}, exit {c}"),
                (Some(s), None) => format!("job {s}"),
                _ => "the shard stopped before it finished".to_string(),
            };
            let log = u
                .log
                .as_ref()
                .map_or(String::new(), |l| format!("; log {}", l.display()));
            writeln!(
                f,
                "run {}: shard {} did not finish {} ({how}{log})",
                self.run_id, u.shard, u.test_id
            )?;
        }
        Ok(())
    }
}

/// Which shards are missing and which assigned tests did not finish (with the scheduler's
/// state and log where the directory has a `slurm_state.json`).
pub fn completeness(shards: &[ShardDir]) -> Completeness {
    let count = shards.first().map_or(0, |s| s.record.shard.count);
    let present: BTreeSet<usize> = shards.iter().map(|s| s.record.shard.index).collect();
    let mut ordered: Vec<&ShardDir> = shards.iter().collect();
    ordered.sort_by_key(|s| s.record.shard.index);
    Completeness {
        run_id: shards
            .first()
            .map(|s| s.record.run_id.clone())
            .unwrap_or_default(),
        count,
        missing_shards: (1..=count).filter(|i| !present.contains(i)).collect(),
        unfinished: ordered
            .iter()
            .flat_map(|s| {
                s.record
                    .unfinished()
                    .into_iter()
                    .map(move |test_id| UnfinishedCase {
                        shard: s.record.shard,
                        test_id,
                        state: s.slurm.as_ref().map(|x| x.state.clone()),
                        exit_code: s.slurm.as_ref().and_then(|x| x.exit_code.clone()),
                        log: s.slurm.as_ref().and_then(|x| x.log.clone()),
                        dir: s.dir.clone(),
                    })
            })
            .collect(),
    }
}

/// Refuses shard directories that are not the shards of one run, and sorts them by index.
pub fn check(shards: &mut [ShardDir]) -> Result<(), MergeError> {
    let Some(first) = shards.first().cloned() else {
        return Err(MergeError::NoShards);
    };
    type Key = (&'static str, fn(&ShardRecord) -> String);
    let keys: [Key; 4] = [
        ("run ids", |r| r.run_id.clone()),
        ("test lists (sha256)", |r| {
            r.lists
                .iter()
                .map(|l| l.sha256.clone())
                .collect::<Vec<_>>()
                .join(",")
        }),
        ("settings (sha256)", |r| r.settings_sha256.clone()),
        ("shard counts", |r| r.shard.count.to_string()),
    ];
    for s in shards.iter().skip(1) {
        for (what, key) in &keys {
            let (a, b) = (key(&first.record), key(&s.record));
            if a != b {
                return Err(MergeError::Mismatch {
                    what,
                    first_dir: first.dir.clone(),
                    first: a,
                    second_dir: s.dir.clone(),
                    second: b,
                });
            }
        }
        if s.record.partition_sha256 != first.record.partition_sha256 {
            return Err(MergeError::Mismatch {
                what: "partitions (the history the shards were balanced with changed between their starts)",
                first_dir: first.dir.clone(),
                first: first.record.partition_sha256.clone().unwrap_or_default(),
                second_dir: s.dir.clone(),
                second: s.record.partition_sha256.clone().unwrap_or_default(),
            });
        }
    }
    shards.sort_by_key(|s| s.record.shard.index);
    for pair in shards.windows(2) {
        if pair[0].record.shard.index == pair[1].record.shard.index {
            return Err(MergeError::DuplicateShard {
                index: pair[0].record.shard.index,
                first: pair[0].dir.clone(),
                second: pair[1].dir.clone(),
            });
        }
    }
    let mut owner: BTreeMap<&str, &Path> = BTreeMap::new();
    for s in shards.iter() {
        for id in &s.record.assigned {
            if let Some(first) = owner.insert(id, &s.dir) {
                return Err(MergeError::Overlap {
                    test_id: id.clone(),
                    first: first.to_path_buf(),
                    second: s.dir.clone(),
                });
            }
        }
    }
    Ok(())
}

/// What [`merge`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct MergeSummary {
    pub out: PathBuf,
    pub completeness: Completeness,
    /// Result files merged, by name, with how many shards had one.
    pub files: BTreeMap<String, usize>,
    /// Case directories and other entries linked or copied.
    pub entries: usize,
    pub history: Option<crate::history::combine::MergedRun>,
    /// Things left out, and why.
    pub notes: Vec<String>,
}

/// Files appended line by line; a CSV's header is written once (and must match).
const CSV_FILES: &[&str] = &[
    crate::results::upstream::CSV_NAME,
    crate::telemetry::GPU_MONITORING_NAME,
    crate::telemetry::POWER_MONITORING_NAME,
    "session_properties.csv",
];
const CONCAT_FILES: &[&str] = &[
    crate::results::upstream::YAML_NAME,
    crate::results::jsonl::NAME,
    crate::record::GATE_FILE,
];
const JUNIT_FILE: &str = "results.xml";

/// Top-level names the merge writes itself (never linked from a shard).
fn merged_names() -> BTreeSet<&'static str> {
    let mut names: BTreeSet<&str> = CSV_FILES.iter().chain(CONCAT_FILES).copied().collect();
    names.extend([
        JUNIT_FILE,
        RECORD_FILE,
        REPORT_FILE,
        SLURM_STATE_FILE,
        crate::results::verdicts::MARKDOWN_FILE,
        crate::history::FILE_NAME,
        "history.sqlite-wal",
        "history.sqlite-shm",
    ]);
    names
}

fn read_text(path: &Path) -> Result<Option<String>, MergeError> {
    match crate::textutil::read_text(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The merged text of a CSV file: the header once, then every shard's rows in shard order.
fn merge_csv(shards: &[ShardDir], name: &str) -> Result<Option<(String, usize)>, MergeError> {
    let mut header: Option<(String, PathBuf)> = None;
    let mut out = String::new();
    let mut n = 0;
    for s in shards {
        let path = s.dir.join(name);
        let Some(text) = read_text(&path)? else {
            continue;
        };
        n += 1;
        let (head, rows) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        match &header {
            None => {
                header = Some((head.to_string(), path.clone()));
                out.push_str(head);
                out.push('\n');
            }
            Some((h, first)) if h != head => {
                return Err(MergeError::File {
                    path,
                    message: format!(
                        "its columns differ from those of {} (files of different perfgate versions?)",
                        first.display()
                    ),
                });
            }
            Some(_) => {}
        }
        push_lines(&mut out, rows);
    }
    Ok(header.map(|_| (out, n)))
}

fn push_lines(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    out.push_str(text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
}

fn merge_concat(shards: &[ShardDir], name: &str) -> Result<Option<(String, usize)>, MergeError> {
    let mut out = String::new();
    let mut n = 0;
    for s in shards {
        if let Some(text) = read_text(&s.dir.join(name))? {
            n += 1;
            push_lines(&mut out, &text);
        }
    }
    Ok((n > 0).then_some((out, n)))
}

/// Takes the test suite of `test_id` (this writer puts each test in a suite of its own) out of
/// a report's parts, with its counts.
fn remove_suite(p: &mut junit::ReportParts, test_id: &str) {
    let open = format!("<testsuite name=\"{}\"", xml_escape(test_id));
    let Some(start) = p.body.find(&open) else {
        return;
    };
    let Some(len) = p.body[start..].find("</testsuite>") else {
        return;
    };
    let end = start + len + "</testsuite>".len();
    let suite = &p.body[start..end];
    let tag_end = suite.find('>').unwrap_or(suite.len());
    let time = suite[..tag_end]
        .split(" time=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(0.0);
    p.tests = p.tests.saturating_sub(1);
    if suite.contains("<failure") {
        p.failures = p.failures.saturating_sub(1);
    }
    if suite.contains("<error") {
        p.errors = p.errors.saturating_sub(1);
    }
    p.time = (p.time - time).max(0.0);
    // The line's indentation and end go with it.
    let line_start = p.body[..start]
        .rfind('\n')
        .map_or(0, |i| i + 1)
        .max(start - (p.body[..start].len() - p.body[..start].trim_end_matches(' ').len()));
    let line_end = if p.body[end..].starts_with('\n') {
        end + 1
    } else {
        end
    };
    p.body.replace_range(line_start..line_end, "");
}

/// One JUnit report: every shard's test suites in shard order, then an error testcase for
/// every unfinished test and every missing shard.
fn merge_junit(shards: &[ShardDir], c: &Completeness) -> Result<(String, usize), MergeError> {
    let mut parts = Vec::new();
    for s in shards {
        let path = s.dir.join(JUNIT_FILE);
        let Some(text) = read_text(&path)? else {
            continue;
        };
        let mut p = junit::split_report(&text).ok_or_else(|| MergeError::File {
            path: path.clone(),
            message: "not a JUnit report written by perfgate (no <testsuites> root with tests, failures and time)".into(),
        })?;
        // A test the job was killed in (reported failed or "not run: interrupted") is
        // reported once, as not finished, below.
        for u in c.unfinished.iter().filter(|u| u.dir == s.dir) {
            remove_suite(&mut p, &u.test_id);
        }
        parts.push(p);
    }
    let n = parts.len();
    let mut errors = JunitWriter::new(Path::new(JUNIT_FILE), "perf");
    let now = std::time::SystemTime::now();
    for u in &c.unfinished {
        let how = match (&u.state, &u.exit_code) {
            (Some(s), Some(code)) => format!("the job ended {s} (exit {code})"),
            (Some(s), None) => format!("the job ended {s}"),
            _ => "the shard stopped first (no slurm_state.json)".to_string(),
        };
        let log = u.log.as_ref().map_or_else(
            || format!("shard directory: {}", u.dir.display()),
            |l| format!("job log: {}", l.display()),
        );
        errors.add(JunitCase {
            test_id: u.test_id.clone(),
            outcome: Outcome::Error {
                message: format!("not finished: shard {}: {how}", u.shard),
                detail: format!(
                    "shard {} was given this test but did not finish it: {how}\n{log}",
                    u.shard
                ),
            },
            duration: std::time::Duration::ZERO,
            started: now,
            properties: vec![("shard".into(), u.shard.to_string())],
            system_out: None,
        });
    }
    for i in &c.missing_shards {
        errors.add(JunitCase {
            test_id: format!("perfgate/merge::shard[{i}/{}]", c.count),
            outcome: Outcome::Error {
                message: format!("shard {i}/{} is missing", c.count),
                detail: format!(
                    "no output directory of shard {i}/{} of run {} was given to perfgate merge; its tests are not in this report",
                    c.count, c.run_id
                ),
            },
            duration: std::time::Duration::ZERO,
            started: now,
            properties: Vec::new(),
            system_out: None,
        });
    }
    let rendered = errors.render().map_err(|e| MergeError::File {
        path: PathBuf::from(JUNIT_FILE),
        message: format!("{e:#}"),
    })?;
    if let Some(p) = junit::split_report(&rendered)
        && p.tests > 0
    {
        parts.push(p);
    }
    Ok((junit::join_reports("perf", &parts), n))
}

/// Hard-links `from` (a file or directory tree) at `to`, copying where a link is impossible
/// (another filesystem).
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            link_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from)?;
        std::os::unix::fs::symlink(target, to)
    } else {
        std::fs::hard_link(from, to).or_else(|_| std::fs::copy(from, to).map(|_| ()))
    }
}

fn write(out: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    crate::fsutil::write(&out.join(name), text.as_bytes())?;
    Ok(())
}

/// Merges checked shard directories (see [`check`]) into `out`, which must not exist or be
/// empty; the run's history goes to `history` (default `<out>/history.sqlite`).
pub fn merge(
    shards: &[ShardDir],
    out: &Path,
    history: Option<&Path>,
) -> anyhow::Result<MergeSummary> {
    let first = shards.first().ok_or(MergeError::NoShards)?;
    // Refusals first: nothing is written before every check passed.
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(MergeError::Output {
                    out: out.to_path_buf(),
                    message: "not empty: merge into a new directory".into(),
                }
                .into());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(MergeError::Output {
                out: out.to_path_buf(),
                message: format!("cannot read: {e}"),
            }
            .into());
        }
    }
    let completeness = completeness(shards);
    let mut files = BTreeMap::new();
    let mut texts: Vec<(&str, String)> = Vec::new();
    for name in CSV_FILES {
        if let Some((text, n)) = merge_csv(shards, name)? {
            texts.push((name, text));
            files.insert(name.to_string(), n);
        }
    }
    for name in CONCAT_FILES {
        if let Some((text, n)) = merge_concat(shards, name)? {
            texts.push((name, text));
            files.insert(name.to_string(), n);
        }
    }
    let (xml, n) = merge_junit(shards, &completeness)?;
    files.insert(JUNIT_FILE.into(), n);
    let mut verdicts = Vec::new();
    for s in shards {
        let path = s.dir.join(crate::record::GATE_FILE);
        if path.exists() {
            verdicts.extend(crate::results::verdicts::read(&path)?);
        }
    }
    let mut notes = Vec::new();
    let reserved = merged_names();
    let mut entries: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut taken: BTreeMap<std::ffi::OsString, PathBuf> = BTreeMap::new();
    for s in shards {
        let listing = std::fs::read_dir(&s.dir).map_err(|e| MergeError::File {
            path: s.dir.clone(),
            message: format!("cannot list: {e}"),
        })?;
        for entry in listing {
            let entry = entry.map_err(|e| MergeError::File {
                path: s.dir.clone(),
                message: format!("cannot list: {e}"),
            })?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| reserved.contains(n)) {
                continue;
            }
            let mut target = name.clone();
            if let Some(other) = taken.get(&name) {
                // Two shards wrote the same name (a log of their own): keep both.
                let renamed = format!("shard-{}-{}", s.record.shard.index, name.to_string_lossy());
                notes.push(format!(
                    "{} is also in {}: kept as {renamed}",
                    entry.path().display(),
                    other.display()
                ));
                target = renamed.into();
            }
            taken.insert(target.clone(), s.dir.clone());
            entries.push((entry.path(), out.join(target)));
        }
    }
    // Writing.
    std::fs::create_dir_all(out).map_err(|e| MergeError::Output {
        out: out.to_path_buf(),
        message: format!("cannot create: {e}"),
    })?;
    for (name, text) in &texts {
        write(out, name, text)?;
    }
    write(out, JUNIT_FILE, &xml)?;
    if !verdicts.is_empty() {
        let title = format!("perfgate {}", first.record.run_id);
        write(
            out,
            crate::results::verdicts::MARKDOWN_FILE,
            &crate::results::verdicts::markdown(&title, &verdicts),
        )?;
    }
    for (from, to) in &entries {
        link_tree(from, to).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot link or copy to {}: {e}",
                from.display(),
                to.display()
            )
        })?;
    }
    let sources: Vec<PathBuf> = shards
        .iter()
        .map(|s| s.dir.join(crate::history::FILE_NAME))
        .filter(|p| p.exists())
        .collect();
    for s in shards {
        if !s.dir.join(crate::history::FILE_NAME).exists() {
            notes.push(format!(
                "{}: no {} (the shard ran with --history elsewhere or --no-history): its measurements are not in the merged history",
                s.dir.display(),
                crate::history::FILE_NAME
            ));
        }
    }
    let history_summary = if sources.is_empty() {
        None
    } else {
        let path = history.map_or_else(|| crate::history::default_path(out), Path::to_path_buf);
        let mut h = crate::history::History::open(&path)?;
        let refs: Vec<&Path> = sources.iter().map(PathBuf::as_path).collect();
        Some(h.merge_run(&refs, &first.record.run_id)?)
    };
    let record = ShardRecord {
        shard: ShardSpec { index: 1, count: 1 },
        gpus: None,
        partition_sha256: None,
        assigned: shards
            .iter()
            .flat_map(|s| s.record.assigned.iter().cloned())
            .collect(),
        finished: shards
            .iter()
            .flat_map(|s| s.record.finished.iter().cloned())
            .collect(),
        started: shards
            .iter()
            .map(|s| s.record.started.clone())
            .min()
            .unwrap_or_default(),
        updated: shards
            .iter()
            .map(|s| s.record.updated.clone())
            .max()
            .unwrap_or_default(),
        ..first.record.clone()
    };
    record.write(out)?;
    let summary = MergeSummary {
        out: out.to_path_buf(),
        completeness,
        files,
        entries: entries.len(),
        history: history_summary,
        notes,
    };
    write(
        out,
        REPORT_FILE,
        &(serde_json::to_string_pretty(&summary)? + "\n"),
    )?;
    Ok(summary)
}
