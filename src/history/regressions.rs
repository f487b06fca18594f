//! A run's provisional regressions confirmed, cleared or pending by change-point detection
//! over the nights before and after it, with blame ranges ([`change_rows`]); also every change
//! point of every series a run measured. What `perfgate history changes` prints and what a
//! run's report lists under "Change points".

use std::path::Path;

use serde::Serialize;

use super::{History, StoredRun};
use crate::gate::changes::{self, BlameRange, RunRef, Status};
use crate::gate::cpd::CpdParams;
use crate::record::Verdict;
use crate::record::metric::{self, Direction};

/// One line of the output.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRow {
    pub perf_case_name: String,
    pub step: String,
    pub metric: String,
    /// CONFIRMED / CLEARED / PENDING for a provisional regression; REGRESSION / IMPROVEMENT for
    /// a change point listed by `--all`.
    pub status: String,
    pub change_pct: Option<f64>,
    pub pvalue: Option<f64>,
    pub blame: Option<BlameRange>,
    pub explanation: String,
}

/// `latest`, `latest~N` or a run id, as a stored run; an unknown id lists the latest runs.
pub fn resolve_run(history: &History, path: &Path, spec: &str) -> anyhow::Result<StoredRun> {
    let back = match spec {
        "latest" => Some(0),
        s => s
            .strip_prefix("latest~")
            .map(|n| {
                n.parse::<usize>().map_err(|_| {
                    anyhow::anyhow!("`{spec}`: expected latest~N with N a number of runs back")
                })
            })
            .transpose()?,
    };
    if let Some(back) = back {
        let runs = history.runs(back + 1)?;
        return runs.into_iter().nth(back).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: `{spec}`: the history holds fewer than {} run(s)",
                path.display(),
                back + 1
            )
        });
    }
    if let Some(run) = history.run(spec)? {
        return Ok(run);
    }
    let latest: Vec<String> = history
        .runs(5)?
        .into_iter()
        .map(|r| {
            format!(
                "  {} (night {}, started {})",
                r.meta.run_id, r.night, r.meta.started
            )
        })
        .collect();
    anyhow::bail!(
        "{}: no run `{spec}` in this history; the latest runs:\n{}",
        path.display(),
        if latest.is_empty() {
            "  (none)".to_string()
        } else {
            latest.join("\n")
        }
    )
}

/// The rows for a run: its FAIL verdicts assessed, or (`all`) every change point.
pub fn change_rows(
    history: &History,
    run: &StoredRun,
    all: bool,
) -> anyhow::Result<Vec<ChangeRow>> {
    let params = CpdParams::default();
    let mut rows = Vec::new();
    if all {
        let fingerprint = Some(run.meta.fingerprint.as_str());
        for key in history.run_series(&run.meta.run_id)? {
            let direction = metric::metric(&key.metric)
                .map(|m| m.direction)
                .unwrap_or(Direction::HigherIsBetter);
            let points =
                history.night_series(&key.perf_case_name, &key.step, &key.metric, fingerprint)?;
            for (cp, worse, blame) in changes::all_changes(&points, direction, &params) {
                rows.push(ChangeRow {
                    perf_case_name: key.perf_case_name.clone(),
                    step: key.step.clone(),
                    metric: key.metric.clone(),
                    status: if worse { "REGRESSION" } else { "IMPROVEMENT" }.into(),
                    change_pct: Some(cp.change_pct),
                    pvalue: Some(cp.pvalue),
                    blame: Some(blame),
                    explanation: format!(
                        "mean {:.4} -> {:.4} at night {}",
                        cp.mean_before, cp.mean_after, points[cp.index].night
                    ),
                });
            }
        }
        return Ok(rows);
    }
    for v in history.verdicts(&run.meta.run_id)? {
        if v.verdict != Verdict::Fail {
            continue;
        }
        let points = history.night_series(
            &v.perf_case_name,
            &v.step,
            &v.metric,
            Some(v.fingerprint.as_str()),
        )?;
        let a = changes::assess(&points, run.night, v.direction, &params);
        rows.push(ChangeRow {
            perf_case_name: v.perf_case_name.clone(),
            step: v.step.clone(),
            metric: v.metric.clone(),
            status: a.status.as_str().into(),
            change_pct: a
                .change_point
                .as_ref()
                .map(|c| c.change_pct)
                .or(v.change_pct),
            pvalue: a.change_point.as_ref().map(|c| c.pvalue),
            blame: a.blame,
            explanation: a.explanation,
        });
    }
    Ok(rows)
}

/// The table's last line: how many rows, and how many of each status, so a run whose failures
/// are all confirmed does not read as "provisional".
pub fn summary(rows: &[ChangeRow], all: bool) -> String {
    let what = if all {
        "change point(s)"
    } else {
        "FAIL verdict(s) assessed"
    };
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in rows {
        match counts.iter_mut().find(|(s, _)| *s == r.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((&r.status, 1)),
        }
    }
    if counts.is_empty() {
        return format!("0 {what}");
    }
    let by_status: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    format!("{} {what}: {}", rows.len(), by_status.join(", "))
}

/// `run 20260101T... (night 12, rev abc123, 2026-01-01)`.
pub fn run_ref(r: &RunRef) -> String {
    format!(
        "{} (night {}, rev {}, {})",
        r.run_id,
        r.night,
        r.revision.as_deref().unwrap_or("?"),
        r.started.get(..10).unwrap_or(&r.started)
    )
}

pub fn blame_text(b: &Option<BlameRange>) -> (String, String) {
    match b {
        Some(b) => (
            b.last_good
                .as_ref()
                .map(run_ref)
                .unwrap_or_else(|| "-".into()),
            run_ref(&b.first_bad),
        ),
        None => ("-".into(), "-".into()),
    }
}

pub fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{v:+.2}")).unwrap_or_else(|| "-".into())
}

/// The markdown table (also the "Change points" section of a run's report).
pub fn render_markdown(rows: &[ChangeRow], all: bool) -> String {
    let mut s = String::new();
    if rows.is_empty() {
        s.push_str(if all {
            "No change points.\n"
        } else {
            "No provisional regressions.\n"
        });
        return s;
    }
    s.push_str("| Status | Case | Step | Metric | Δ% | Last good | First bad | Why |\n");
    s.push_str("|---|---|---|---|---:|---|---|---|\n");
    for r in rows {
        let (good, bad) = blame_text(&r.blame);
        s.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} | {} | {} |\n",
            r.status,
            r.perf_case_name.replace('|', "\\|"),
            r.step,
            r.metric,
            pct(r.change_pct),
            good,
            bad,
            r.explanation.replace('|', "\\|")
        ));
    }
    s
}

/// Whether a row is a confirmed regression (for summaries).
pub fn is_confirmed(r: &ChangeRow) -> bool {
    r.status == Status::Confirmed.as_str()
}
