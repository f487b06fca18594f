//! `perfgate baseline update` and `perfgate baseline check`.
//!
//! Exit codes: 0 done; 1 `update` left a regression out (after writing the rest) or `check`
//! found an invalid file; 2 an error (nothing written).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use regex::Regex;

use crate::gate::baseline::update::{
    self, Decision, Outcome, PATCH_FILE, UpdateOptions, common_prefix, plan_update, read_gate_file,
    selected, unified_diff,
};
use crate::gate::baseline::{Baselines, baseline_path};
use crate::record::GATE_FILE;

#[derive(clap::Subcommand)]
pub enum BaselineCommand {
    /// Write a run's NEW and IMPROVED results (and what --only selects) into the baseline
    /// file, and the patch a reviewer applies (OUTPUT_DIR/perf_patch.patch).
    ///
    /// A regression is never absorbed silently: FAIL and ENV_CHANGED rows are refused (listed,
    /// not written) unless --accept-regressions; INVALID never. Exit status 0 done, 1 a
    /// regression was left out (the rest is written), 2 an error (nothing written).
    Update(UpdateArgs),
    /// Validate baseline files: print their row counts, or every problem as file:line.
    ///
    /// Exit status 1 when a file has a problem.
    Check(CheckArgs),
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    /// The run's output directory (holds gate.jsonl; the patch is written there).
    #[arg(long, value_name = "OUTPUT_DIR")]
    pub from: PathBuf,
    /// Only records whose perf_case_name matches this regex; a match also takes PASS (to
    /// refresh it) and UNKNOWN that did not get worse.
    #[arg(long, value_name = "REGEX")]
    pub only: Option<String>,
    /// Why the baselines change (stored in every row written; required).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// The baselines directory; the file is `<DIR>/<prefix>.csv` (`default.csv` without one).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "baselines",
        conflicts_with = "file"
    )]
    pub baselines: PathBuf,
    /// The baseline file itself (instead of --baselines and the prefix).
    #[arg(long, value_name = "CSV")]
    pub file: Option<PathBuf>,
    /// The test prefix (GPU type / CI stage); default: the one the records carry.
    #[arg(long, value_name = "P", conflicts_with = "file")]
    pub prefix: Option<String>,
    /// Also take FAIL and ENV_CHANGED (and UNKNOWN that got worse): the new value becomes the
    /// baseline.
    #[arg(long)]
    pub accept_regressions: bool,
    /// Print the diff and the summary; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The history the run was recorded in: every row written becomes an acknowledged change
    /// point there, so the gate's history of that metric restarts at the new level instead
    /// of failing (or flagging IMPROVED) against the old one for weeks.
    #[arg(long, env = "PERF_HISTORY", value_name = "FILE")]
    pub history: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Baseline files to check.
    #[arg(long = "file", value_name = "CSV")]
    pub files: Vec<PathBuf>,
    /// Check every `*.csv` in this directory (when no --file is given).
    #[arg(long, value_name = "DIR", default_value = "baselines")]
    pub baselines: PathBuf,
}

pub fn run_cli(command: BaselineCommand) -> anyhow::Result<ExitCode> {
    match command {
        BaselineCommand::Update(a) => run_update(a),
        BaselineCommand::Check(a) => run_check(a),
    }
}

fn run_update(a: UpdateArgs) -> anyhow::Result<ExitCode> {
    let only = a
        .only
        .as_deref()
        .map(Regex::new)
        .transpose()
        .context("--only is not a valid regex")?;
    let gate_path = a.from.join(GATE_FILE);
    let records = read_gate_file(&gate_path)?;
    let chosen = selected(&records, only.as_ref());
    if chosen.is_empty() {
        anyhow::bail!(
            "{}: no records{}: nothing to update",
            gate_path.display(),
            a.only
                .as_deref()
                .map_or(String::new(), |re| format!(" match --only `{re}`"))
        );
    }
    let path = match &a.file {
        Some(f) => f.clone(),
        None => {
            let from_records = common_prefix(&chosen)?;
            let prefix = a.prefix.clone().or(from_records.clone());
            if let Some(p) = &prefix
                && from_records.as_ref() != Some(p)
            {
                anyhow::bail!(
                    "--prefix `{p}` but the records are of {}: their keys would never be looked \
                     up in {p}.csv (use --file to write them there anyway)",
                    from_records.map_or("no prefix".into(), |r| format!("prefix `{r}`"))
                );
            }
            baseline_path(&a.baselines, prefix.as_deref())?
        }
    };
    let current = Baselines::read_or_empty(&path)?;
    let now = crate::record::rfc3339(std::time::SystemTime::now());
    let plan = plan_update(
        &current,
        &chosen,
        &UpdateOptions {
            only: only.as_ref(),
            reason: &a.reason,
            accept_regressions: a.accept_regressions,
            updated: &now,
        },
        &gate_path,
    )?;
    let new_text = plan.baselines.to_csv();
    // What is written must read back: the same validation as any baseline file.
    Baselines::parse(&path, &new_text)
        .context("internal error: the new baseline file does not validate; nothing written")?;
    let rel = update::patch_path(&path);
    let diff = unified_diff(current.text(), &new_text, &rel);
    let patch_path = a.from.join(PATCH_FILE);

    let mut out = String::new();
    if a.dry_run {
        out.push_str(&diff);
        if !diff.is_empty() {
            out.push('\n');
        }
    }
    out.push_str(&summary(&plan, &path, current.is_upstream_format()));
    if a.dry_run {
        writeln!(out, "dry run: nothing written")?;
    } else if diff.is_empty() {
        writeln!(out, "no change: {} left as it is", path.display())?;
        if patch_path.exists() {
            std::fs::remove_file(&patch_path).with_context(|| {
                format!("{}: cannot remove the stale patch", patch_path.display())
            })?;
            writeln!(out, "removed the stale {}", patch_path.display())?;
        }
    } else {
        crate::fsutil::write(&path, new_text.as_bytes())?;
        crate::fsutil::write(&patch_path, diff.as_bytes())?;
        writeln!(
            out,
            "wrote {} and {} (apply elsewhere with `git apply {}` from the repository root)",
            path.display(),
            patch_path.display(),
            patch_path.display()
        )?;
        if let Some(history) = &a.history {
            let n = acknowledge(history, &plan, &chosen, &a.reason).with_context(|| {
                format!(
                    "{} and {} are written, but the change points are not: the history \
                     still compares with the old level",
                    path.display(),
                    patch_path.display()
                )
            })?;
            writeln!(
                out,
                "{}: {n} change point(s) acknowledged; those series restart at this run",
                history.display()
            )?;
        }
    }
    print!("{out}");
    if plan.refused_any() {
        eprintln!(
            "perfgate baseline update: {} regression(s) left out of {} (see REFUSED above); \
             rerun with --accept-regressions to take them",
            plan.count(Outcome::Refused),
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Records a change point in the history for every row written, from the run its value
/// came from. Returns how many.
fn acknowledge(
    history: &Path,
    plan: &update::UpdatePlan,
    records: &[&update::GateLine],
    reason: &str,
) -> anyhow::Result<usize> {
    let mut h = crate::history::History::open_existing(history)?;
    let mut n = 0;
    for d in &plan.decisions {
        if !matches!(d.outcome, Outcome::Updated | Outcome::Added) {
            continue;
        }
        let Some(r) = records
            .iter()
            .find(|g| g.record.perf_case_name == d.perf_case_name)
        else {
            continue;
        };
        h.acknowledge(
            &d.perf_case_name,
            &r.record.metric,
            reason,
            &r.record.run_id,
        )?;
        n += 1;
    }
    Ok(n)
}

fn change(d: &Decision) -> String {
    d.change_pct
        .filter(|c| c.is_finite())
        .map_or("Δ n/a".into(), |c| format!("Δ {c:+.2}%"))
}

fn value(v: Option<f64>, unit: &str) -> String {
    v.map_or("-".into(), |v| {
        format!("{} {unit}", crate::textutil::display_num(v))
    })
}

/// What the update did, one line per row written or refused, counts for the rest.
pub fn summary(plan: &update::UpdatePlan, path: &Path, was_upstream: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} updated, {} added, {} refused, {} skipped, {} kept",
        path.display(),
        plan.count(Outcome::Updated),
        plan.count(Outcome::Added),
        plan.count(Outcome::Refused),
        plan.count(Outcome::Skipped),
        plan.count(Outcome::Kept),
    );
    for d in plan.with(Outcome::Updated) {
        let _ = writeln!(
            s,
            "  updated  {:<11} {:<14} {} -> {}  {}",
            d.verdict.as_str(),
            change(d),
            value(d.old, &d.unit),
            value(d.new, &d.unit),
            d.perf_case_name
        );
    }
    for d in plan.with(Outcome::Added) {
        let _ = writeln!(
            s,
            "  added    {:<11} {}  {}",
            d.verdict.as_str(),
            value(d.new, &d.unit),
            d.perf_case_name
        );
    }
    if plan.refused_any() {
        let _ = writeln!(
            s,
            "REFUSED (not written; a regression is never absorbed silently, \
             --accept-regressions takes them):"
        );
        for d in plan.with(Outcome::Refused) {
            let _ = writeln!(
                s,
                "  REFUSED  {:<11} {:<14} baseline {}  {}",
                d.verdict.as_str(),
                change(d),
                value(d.old, &d.unit),
                d.perf_case_name
            );
        }
    }
    for d in plan.with(Outcome::Skipped) {
        let _ = writeln!(s, "  skipped  {}  ({})", d.perf_case_name, d.why);
    }
    if was_upstream && plan.count(Outcome::Updated) + plan.count(Outcome::Added) > 0 {
        let _ = writeln!(
            s,
            "note: the file was in upstream's 7-column format; it is rewritten with perfgate's \
             provenance columns after them (upstream tools still read it)"
        );
    }
    s
}

fn run_check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let files = if a.files.is_empty() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&a.baselines)
            .with_context(|| format!("{}: cannot list", a.baselines.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        found.sort();
        if found.is_empty() {
            anyhow::bail!("{}: no *.csv baseline files", a.baselines.display());
        }
        found
    } else {
        a.files
    };
    let mut ok = true;
    for f in &files {
        match Baselines::read(f) {
            Ok(b) => println!("{b}"),
            Err(e) => {
                ok = false;
                eprintln!("{e}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
