//! Re-baselining from a run's verdicts: which records may become baselines, the new file, and
//! the patch a reviewer applies.
//!
//! Who is taken, by verdict:
//!
//! | verdict | by default | when `--only` matches it | `--accept-regressions` |
//! |---|---|---|---|
//! | NEW | added | added | |
//! | IMPROVED | replaced | replaced | |
//! | PASS | kept | replaced (refreshes value and provenance) | |
//! | UNKNOWN | kept | replaced unless it moved the worse way or its change is unknown, else refused | takes the refused |
//! | FAIL, ENV_CHANGED | **refused** | **refused** | replaced |
//! | INVALID | never | never | never |
//! | any with validity evidence (upstream's gate) | never | never | never |
//!
//! NEW and IMPROVED are what a nightly wants re-baselined; a PASS is within noise, so rewriting
//! it would only churn the file, unless someone asks for that case by name. A regression is
//! never absorbed silently: it needs `--accept-regressions`, and without it the command lists
//! it and fails after writing the rest. Rows no record mentions are kept (upstream's patch drops
//! them; a case that did not run tonight has not lost its baseline).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use regex::Regex;

use super::{BaselineRow, Baselines, prefix_of};
use crate::record::Verdict;
use crate::record::VerdictRecord;
use crate::record::metric::Direction;

/// The patch written next to `gate.jsonl`, as upstream's check writes `perf_patch.patch`.
pub const PATCH_FILE: &str = "perf_patch.patch";

/// One line of `gate.jsonl`.
#[derive(Debug, Clone)]
pub struct GateLine {
    /// 1-based line in the file.
    pub line: usize,
    pub record: VerdictRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Read(#[from] crate::textutil::TextFileError),
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Options(String),
}

/// Reads `gate.jsonl`: one [`VerdictRecord`] per line, blank lines allowed. A line that is not
/// a record, or a second record of the same `perf_case_name` (two runs in one output directory
/// cannot both be the baseline), is an error naming the line.
pub fn read_gate_file(path: &Path) -> Result<Vec<GateLine>, UpdateError> {
    let text = crate::textutil::read_text(path)?;
    parse_gate_lines(path, &text)
}

/// [`read_gate_file`] on text (`path` is only used in messages).
pub fn parse_gate_lines(path: &Path, text: &str) -> Result<Vec<GateLine>, UpdateError> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let record: VerdictRecord = serde_json::from_str(raw).map_err(|e| UpdateError::Line {
            path: path.to_path_buf(),
            line,
            message: format!("not a verdict record: {e}"),
        })?;
        if let Some(first) = seen.insert(record.perf_case_name.clone(), line) {
            return Err(UpdateError::Line {
                path: path.to_path_buf(),
                line,
                message: format!(
                    "`{}` already has a record on line {first}: one record per case and metric \
                     (use one output directory per run)",
                    record.perf_case_name
                ),
            });
        }
        out.push(GateLine { line, record });
    }
    Ok(out)
}

/// What the update does with the records.
#[derive(Debug, Clone)]
pub struct UpdateOptions<'a> {
    /// Only records whose `perf_case_name` matches; a match also selects PASS and UNKNOWN.
    pub only: Option<&'a Regex>,
    /// Written into every row taken (required, one line).
    pub reason: &'a str,
    /// Take FAIL and ENV_CHANGED (and UNKNOWN that got worse).
    pub accept_regressions: bool,
    /// RFC 3339 time written into every row taken.
    pub updated: &'a str,
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An existing row was replaced.
    Updated,
    /// A new row was appended.
    Added,
    /// A regression (or environment change) left out: needs `--accept-regressions`.
    Refused,
    /// Never a baseline (INVALID, no value).
    Skipped,
    /// Not selected (PASS, UNKNOWN without `--only`): the row stays as it is.
    Kept,
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub perf_case_name: String,
    pub verdict: Verdict,
    pub change_pct: Option<f64>,
    pub outcome: Outcome,
    /// The baseline value before (when there was a row).
    pub old: Option<f64>,
    /// The value written (for Updated and Added).
    pub new: Option<f64>,
    pub unit: String,
    /// Why, for Refused, Skipped and Kept.
    pub why: String,
}

/// The new file and, per record considered, what happened.
#[derive(Debug, Clone)]
pub struct UpdatePlan {
    pub baselines: Baselines,
    pub decisions: Vec<Decision>,
}

impl UpdatePlan {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.decisions
            .iter()
            .filter(|d| d.outcome == outcome)
            .count()
    }

    pub fn with(&self, outcome: Outcome) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(move |d| d.outcome == outcome)
    }

    /// Some regression was left out: the command must fail (after writing the rest).
    pub fn refused_any(&self) -> bool {
        self.count(Outcome::Refused) > 0
    }
}

/// The records `--only` lets through (all without it).
pub fn selected<'r>(records: &'r [GateLine], only: Option<&Regex>) -> Vec<&'r GateLine> {
    records
        .iter()
        .filter(|g| only.is_none_or(|re| re.is_match(&g.record.perf_case_name)))
        .collect()
}

/// The one test prefix the records share (`None`: no prefix), or an error naming two that
/// differ: one baseline file holds one prefix.
pub fn common_prefix(records: &[&GateLine]) -> Result<Option<String>, UpdateError> {
    let mut first: Option<(&GateLine, Option<&str>)> = None;
    for g in records {
        let p = prefix_of(&g.record.perf_case_name);
        match first {
            None => first = Some((g, p)),
            Some((f, fp)) if fp != p => {
                return Err(UpdateError::Options(format!(
                    "the records are of several test prefixes ({} on gate.jsonl line {}, {} on \
                     line {}): one baseline file holds one prefix; pick one with --only, or name \
                     the file with --file",
                    fp.map_or("no prefix".into(), |p| format!("`{p}`")),
                    f.line,
                    p.map_or("no prefix".into(), |p| format!("`{p}`")),
                    g.line
                )));
            }
            Some(_) => {}
        }
    }
    Ok(first.and_then(|(_, p)| p.map(str::to_string)))
}

/// Did the value move the wrong way? Unknown counts as worse: an unproven case is not proof of
/// no regression.
fn got_worse(rec: &VerdictRecord) -> bool {
    match rec.change_pct {
        Some(c) if c.is_finite() => match rec.direction {
            Direction::HigherIsBetter => c < 0.0,
            Direction::LowerIsBetter => c > 0.0,
        },
        _ => true,
    }
}

enum Take {
    Yes,
    Refuse(String),
    Skip(String),
    Keep(String),
}

fn take(rec: &VerdictRecord, selected_by_name: bool, accept: bool) -> Take {
    let regression = |what: &str| {
        if accept {
            Take::Yes
        } else {
            Take::Refuse(format!(
                "{what}: a regression is never absorbed silently (--accept-regressions takes it)"
            ))
        }
    };
    // Upstream's gate keeps its verdict and only attaches validity evidence: such a NEW or PASS
    // is still a measurement that broke physics or contradicted itself. (ENV_CHANGED's evidence
    // is the environment's differences, not validity.)
    if rec.verdict != Verdict::EnvChanged
        && let Some(first) = rec.evidence.first()
    {
        return Take::Skip(format!(
            "{}, but its measurement is not valid ({first}): an untrusted measurement is never \
             a baseline",
            rec.verdict
        ));
    }
    match rec.verdict {
        Verdict::Invalid => {
            Take::Skip("INVALID: an untrusted measurement is never a baseline".into())
        }
        Verdict::New | Verdict::Improved => Take::Yes,
        Verdict::Fail => regression("FAIL"),
        Verdict::EnvChanged => {
            regression("ENV_CHANGED: the environment differs from the baseline's")
        }
        Verdict::Pass if selected_by_name => Take::Yes,
        Verdict::Pass => Take::Keep("PASS: within noise (select it with --only to refresh)".into()),
        Verdict::Unknown if !selected_by_name => {
            Take::Keep("UNKNOWN: undecided (select it with --only to take it)".into())
        }
        Verdict::Unknown if got_worse(rec) => {
            regression("UNKNOWN that moved the wrong way (or has no change to judge)")
        }
        Verdict::Unknown => Take::Yes,
    }
}

/// The new baselines: `current` with the records that may be taken written into it (existing
/// rows replaced in place, new ones appended in record order). A record that cannot become a
/// valid row (unknown metric, a value of 0 for a throughput, a name that does not match its
/// metric) is an error naming its line in `gate_path`: nothing is half-written.
pub fn plan_update(
    current: &Baselines,
    records: &[&GateLine],
    opts: &UpdateOptions<'_>,
    gate_path: &Path,
) -> Result<UpdatePlan, UpdateError> {
    let reason = opts.reason.trim();
    if reason.is_empty() {
        return Err(UpdateError::Options(
            "--reason is empty: say why the baselines change (the change, the ticket, who \
             checked it); it is stored in every row written"
                .into(),
        ));
    }
    if reason.contains(['\n', '\r']) {
        return Err(UpdateError::Options(
            "--reason must be one line (it is stored in a CSV column)".into(),
        ));
    }
    let mut baselines = current.clone();
    let mut decisions = Vec::new();
    for g in records {
        let rec = &g.record;
        let old = current.get(&rec.perf_case_name);
        let decision = |outcome, new, why: String| Decision {
            perf_case_name: rec.perf_case_name.clone(),
            verdict: rec.verdict,
            change_pct: rec.change_pct,
            outcome,
            old: old.map(|o| o.perf_metric),
            new,
            unit: rec.unit.clone(),
            why,
        };
        let verdict_taken = take(rec, opts.only.is_some(), opts.accept_regressions);
        let verdict_taken = match (verdict_taken, rec.value) {
            (Take::Yes, None) => Take::Skip(format!("{}: the record has no value", rec.verdict)),
            (t, _) => t,
        };
        match verdict_taken {
            Take::Refuse(why) => decisions.push(decision(Outcome::Refused, None, why)),
            Take::Skip(why) => decisions.push(decision(Outcome::Skipped, None, why)),
            Take::Keep(why) => decisions.push(decision(Outcome::Kept, None, why)),
            Take::Yes => {
                let row = BaselineRow::from_record(rec, old, reason, opts.updated);
                let problems = row.problems();
                if !problems.is_empty() {
                    return Err(UpdateError::Line {
                        path: gate_path.to_path_buf(),
                        line: g.line,
                        message: format!(
                            "`{}` cannot become a baseline row: {}",
                            rec.perf_case_name,
                            problems.join("; ")
                        ),
                    });
                }
                let new = Some(row.perf_metric);
                let outcome = if baselines.upsert(row).is_some() {
                    Outcome::Updated
                } else {
                    Outcome::Added
                };
                decisions.push(decision(outcome, new, String::new()));
            }
        }
    }
    Ok(UpdatePlan {
        baselines,
        decisions,
    })
}

/// A unified diff from `old` (`None`: the file does not exist yet) to `new`, with git's
/// `a/`/`b/` paths so `git apply` (or `patch -p1`) works from the directory `rel_path` is
/// relative to. Empty when nothing changed.
pub fn unified_diff(old: Option<&str>, new: &str, rel_path: &str) -> String {
    let before = old.unwrap_or("");
    if before == new && old.is_some() {
        return String::new();
    }
    let a = if old.is_some() {
        format!("a/{rel_path}")
    } else {
        "/dev/null".to_string()
    };
    let b = format!("b/{rel_path}");
    let diff = similar::TextDiff::from_lines(before, new);
    let body = diff
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string();
    if body.is_empty() {
        return String::new();
    }
    let mut out = format!("diff --git a/{rel_path} b/{rel_path}\n");
    if old.is_none() {
        out.push_str("new file mode 100644\n");
    }
    out.push_str(&body);
    out
}

/// `path` as the patch should name it: relative to the repository (the nearest directory above
/// it with a `.git`), else to the current directory, else as given. `/` separators.
pub fn patch_path(path: &Path) -> String {
    let absolute = absolute(path);
    let root = absolute
        .parent()
        .and_then(|dir| dir.ancestors().find(|d| d.join(".git").exists()))
        .map(Path::to_path_buf)
        .or_else(|| std::env::current_dir().ok().map(|d| absolute_dir(&d)));
    let rel = root
        .as_deref()
        .and_then(|r| absolute.strip_prefix(r).ok())
        .unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    parts.join("/")
}

/// An absolute path with symlinks of the existing part resolved, for a file that may not exist
/// yet (its nearest existing ancestor is canonicalized, the rest appended).
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut existing = joined.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            out.extend(rest.iter().rev());
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return joined,
        }
    }
}

fn absolute_dir(d: &Path) -> PathBuf {
    d.canonicalize().unwrap_or_else(|_| d.to_path_buf())
}
