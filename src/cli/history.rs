//! `perfgate gate` (a run's stored verdicts, for people and scripts) and `perfgate history runs`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use super::args::HistoryLocation;
use crate::history::History;
use crate::record::Verdict;
use crate::record::VerdictRecord;
use crate::textutil::aligned;

#[derive(Clone, Copy, ValueEnum)]
pub enum GateFormat {
    /// One line per case and metric: verdict, metric, value, baseline, Δ%, MDE, case.
    Table,
    /// A JSON array of the stored verdict records (the same objects as gate.jsonl), for scripts.
    Json,
}

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 when no gated verdict of the run (after --only) is FAIL; \
                        1 when one is; 2 on an error (no history, an unknown run, a damaged file)."
)]
pub struct GateArgs {
    #[command(flatten)]
    pub location: HistoryLocation,
    /// The run whose verdicts to show: a run id, or `latest` (the most recently begun run).
    #[arg(long, default_value = "latest", value_name = "RUN")]
    pub run: String,
    #[arg(long, value_enum, default_value = "table")]
    pub format: GateFormat,
    /// Only verdicts whose test id or perf_case_name matches this regex (searched anywhere).
    #[arg(long, value_name = "REGEX")]
    pub only: Option<String>,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub command: HistoryCommand,
}

#[derive(clap::Subcommand)]
pub enum HistoryCommand {
    /// List the stored runs, most recent first: run id, night, start, end, host, test prefix,
    /// revision.
    Runs(RunsArgs),
    /// Bring runs into the history from their result files: an output directory
    /// (results.jsonl with its gate.jsonl), a results.jsonl, or upstream's
    /// perf_script_test_results.csv / .yaml.
    ///
    /// Every run is checked before anything is written: a run id already in the history stops
    /// the import (use --run-id or --skip-existing). Each run is stored whole or not at all.
    /// --revision, --branch and --build-url replace what the files say; CI variables are not
    /// read here (the importing job is not the one that ran the benchmarks).
    Import(ImportArgs),
    /// Write every measurement of the chosen runs, with run metadata and verdicts, as CSV, JSON
    /// lines or OpenSearch _bulk NDJSON.
    Export(ExportArgs),
    /// Confirm, clear or leave pending a run's provisional regressions (its FAIL verdicts) by
    /// change-point detection over the nights around it, with blame ranges (last good run ->
    /// first bad run); `--all` lists every change point of the run's series.
    Changes(super::changes::ChangesArgs),
}

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub location: HistoryLocation,
    /// Store the run under this id (only when the paths hold a single run).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Leave runs already in the history as they are (and import the others) instead of
    /// stopping.
    #[arg(long)]
    pub skip_existing: bool,
    /// Replace the revision, branch and build URL the files name (CI variables are not read:
    /// the importing job is not the one that ran the benchmarks).
    #[command(flatten)]
    pub provenance: super::args::ProvenanceArgs,
    /// Output directories, results.jsonl files, or upstream result CSV/YAML files.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// A header, then one row per measurement.
    Csv,
    /// One JSON object per measurement and line.
    Jsonl,
    /// OpenSearch `_bulk` NDJSON: an `index` action line, then the document (with
    /// `@timestamp`), per measurement; a serving case is one document per run shaped as
    /// upstream's perf-sanity database holds it (its `s_`/`l_`/`b_`/`d_` fields, match keys and
    /// `d_` figures), which upstream's upload path accepts. Ids are stable, so loading twice
    /// replaces.
    OpensearchBulk,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub location: HistoryLocation,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Only this run (repeatable); with --last, these and the last N.
    #[arg(long = "run", value_name = "ID")]
    pub runs: Vec<String>,
    /// Only the N most recent runs.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Write to this file (replaced atomically when complete) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The OpenSearch index of --format opensearch-bulk.
    #[arg(long, value_name = "NAME")]
    pub index: Option<String>,
}

#[derive(clap::Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub location: HistoryLocation,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// `perfgate gate`: exit code 1 when a gated verdict is FAIL, so a script can stop on it.
pub fn run_gate(a: GateArgs) -> anyhow::Result<ExitCode> {
    let only = a
        .only
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--only: {e}"))?;
    let path = a.location.path();
    let history = History::open_existing(&path)?;
    let run_id = if a.run == "latest" {
        history
            .latest_run()?
            .ok_or_else(|| anyhow::anyhow!("{}: the history holds no run yet", path.display()))?
    } else {
        a.run.clone()
    };
    let run = history
        .run(&run_id)?
        .ok_or_else(|| crate::history::unknown_run(&path, &run_id))?;
    let records: Vec<VerdictRecord> = history
        .verdicts(&run_id)?
        .into_iter()
        .filter(|r| {
            only.as_ref()
                .is_none_or(|re| re.is_match(&r.test_id) || re.is_match(&r.perf_case_name))
        })
        .collect();
    let failed = records
        .iter()
        .filter(|r| r.gated && r.verdict == Verdict::Fail)
        .count();
    let mut out = std::io::stdout().lock();
    match a.format {
        GateFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&records)?)?,
        GateFormat::Table => {
            writeln!(
                out,
                "run {} (night {}, started {}, host {}{})",
                run.meta.run_id,
                run.night,
                run.meta.started,
                run.meta.host,
                run.meta
                    .test_prefix
                    .as_deref()
                    .map(|p| format!(", prefix {p}"))
                    .unwrap_or_default()
            )?;
            write!(out, "{}", render_table(&records))?;
            writeln!(
                out,
                "{} verdict(s){}; {failed} gated FAIL",
                records.len(),
                counts(&records)
            )?;
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `perfgate history ...`.
pub fn run_history(a: HistoryArgs) -> anyhow::Result<ExitCode> {
    match a.command {
        HistoryCommand::Import(a) => run_import(a),
        HistoryCommand::Export(a) => run_export(a),
        HistoryCommand::Changes(c) => super::changes::run_changes(c),
        HistoryCommand::Runs(r) => {
            let history = History::open_existing(&r.location.path())?;
            let runs = history.runs(r.limit)?;
            let mut rows = vec![[
                "RUN".to_string(),
                "NIGHT".into(),
                "STARTED".into(),
                "ENDED".into(),
                "HOST".into(),
                "PREFIX".into(),
                "REVISION".into(),
            ]];
            for run in &runs {
                rows.push([
                    run.meta.run_id.clone(),
                    run.night.to_string(),
                    run.meta.started.clone(),
                    run.ended.clone().unwrap_or_else(|| "-".into()),
                    run.meta.host.clone(),
                    run.meta.test_prefix.clone().unwrap_or_else(|| "-".into()),
                    short_revision(run.meta.revision.as_deref()),
                ]);
            }
            let mut out = std::io::stdout().lock();
            write!(out, "{}", aligned(&rows, &[]))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One line per record. A gated metric is marked `*` (it can fail the run), as in the run's
/// summary and the dashboard; the others are reported only.
fn render_table(records: &[VerdictRecord]) -> String {
    let num = |v: Option<f64>, signed: bool| match v {
        Some(v) if signed => format!("{v:+.2}"),
        Some(v) => format!("{v:.2}"),
        None => "-".into(),
    };
    let mut rows = vec![[
        " ".to_string(),
        "VERDICT".into(),
        "METRIC".into(),
        "VALUE".into(),
        "BASELINE".into(),
        "Δ%".into(),
        "MDE%".into(),
        "CASE".into(),
    ]];
    for r in records {
        let value = match r.value {
            Some(v) => format!("{v:.2} {}", r.unit),
            None => "-".into(),
        };
        rows.push([
            if r.gated { "*" } else { " " }.to_string(),
            r.verdict.to_string(),
            r.metric.clone(),
            value,
            num(r.baseline, false),
            num(r.change_pct, true),
            num(r.mde_pct, false),
            match &r.case {
                Some(c) => format!("{} [{c}]", r.network_name),
                None => r.network_name.clone(),
            },
        ]);
    }
    let mut text = aligned(&rows, &[3, 4, 5, 6]);
    if !records.is_empty() {
        text.push_str("* = gated; the others are reported only\n");
    }
    text
}

/// ` (2 PASS, 1 FAIL)`: how many of each verdict, in the order they first appear.
fn counts(records: &[VerdictRecord]) -> String {
    let mut seen: Vec<(Verdict, usize)> = Vec::new();
    for r in records {
        match seen.iter_mut().find(|(v, _)| *v == r.verdict) {
            Some((_, n)) => *n += 1,
            None => seen.push((r.verdict, 1)),
        }
    }
    if seen.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = seen.iter().map(|(v, n)| format!("{n} {v}")).collect();
    format!(" ({})", parts.join(", "))
}

/// A commit id's first 12 characters (enough to name it); other revisions as they are.
fn short_revision(revision: Option<&str>) -> String {
    match revision {
        None => "-".into(),
        Some(r) if r.len() > 12 && r.chars().all(|c| c.is_ascii_hexdigit()) => r[..12].into(),
        Some(r) => r.into(),
    }
}

/// `perfgate history import`: every run is checked against the history before any is
/// written, then each is stored in a transaction of its own.
fn run_import(a: ImportArgs) -> anyhow::Result<ExitCode> {
    use crate::history::import::{ImportOutcome, read_path};
    let mut sources = Vec::new();
    for path in &a.paths {
        sources.push(read_path(path)?);
    }
    let total: usize = sources.iter().map(|s| s.runs.len()).sum();
    if let Some(id) = &a.run_id {
        if total != 1 {
            anyhow::bail!(
                "--run-id {id}: the paths hold {total} runs; --run-id names a single run (import \
                 the others separately)"
            );
        }
        for s in &mut sources {
            for r in &mut s.runs {
                r.rename(id);
            }
        }
    }
    let explicit = a.provenance.explicit();
    for s in &mut sources {
        for r in &mut s.runs {
            r.set_provenance(&explicit);
        }
    }
    let path = a.location.path();
    let mut history = History::open(&path)?;
    // Refuse before writing anything: a run already stored, or one named twice.
    let mut seen: Vec<(&str, &std::path::Path)> = Vec::new();
    for s in &sources {
        for r in &s.runs {
            let id = r.meta.run_id.as_str();
            if let Some((_, other)) = seen.iter().find(|(x, _)| *x == id) {
                anyhow::bail!(
                    "{}: run `{id}` is also in {}; import one of them with --run-id NEW",
                    s.file.display(),
                    other.display()
                );
            }
            seen.push((id, &s.file));
            if !a.skip_existing
                && let Some(stored) = history.run(id)?
            {
                anyhow::bail!(
                    "{}: run `{id}` is already in the history {} (night {}, started {}{}); \
                     nothing was imported. Import it under another id with --run-id NEW, or \
                     pass --skip-existing to leave stored runs as they are",
                    s.file.display(),
                    path.display(),
                    stored.night,
                    stored.meta.started,
                    stored
                        .meta
                        .imported_from
                        .as_deref()
                        .map(|f| format!(", imported from {f}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    for s in &sources {
        for w in &s.warnings {
            eprintln!("perfgate: warning: {w}");
        }
        for r in &s.runs {
            let id = &r.meta.run_id;
            match history.import_run(r)? {
                ImportOutcome::AlreadyStored { night } => {
                    println!("skipped run {id}: already in the history (night {night})")
                }
                ImportOutcome::Imported { night } => {
                    println!(
                        "imported run {id} (night {night}): {} measurement(s), {} verdict(s) \
                         from {}",
                        r.measurements.len(),
                        r.verdicts.len(),
                        s.file.display()
                    );
                    if r.measurements.is_empty() {
                        let why = if r.reasons.is_empty() {
                            "the file gives no reason".to_string()
                        } else {
                            r.reasons.join("; ")
                        };
                        eprintln!(
                            "perfgate: warning: run {id} has 0 metrics (stored: the run \
                             happened): {why}"
                        );
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `perfgate history export`: streamed run by run; `--out` is replaced only when complete.
fn run_export(a: ExportArgs) -> anyhow::Result<ExitCode> {
    use crate::history::export::{DEFAULT_INDEX, ExportWriter, Format, check_index_name};
    let format = match a.format {
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Jsonl => Format::Jsonl,
        ExportFormat::OpensearchBulk => Format::OpensearchBulk,
    };
    if a.index.is_some() && format != Format::OpensearchBulk {
        anyhow::bail!("--index names the index of --format opensearch-bulk only");
    }
    let index = a.index.as_deref().unwrap_or(DEFAULT_INDEX);
    check_index_name(index).map_err(|e| anyhow::anyhow!("--index: {e}"))?;
    let path = a.location.path();
    let history = History::open_existing(&path)?;
    let runs = history.export_runs(&a.runs, a.last)?;
    let export = |out: &mut dyn Write| -> anyhow::Result<(u64, u64, Vec<String>)> {
        let mut w = ExportWriter::new(format, index, out)?;
        for run in &runs {
            w.write_run(&history, run)?;
        }
        let counts = (w.rows(), w.documents(), w.skipped().to_vec());
        w.finish()?;
        Ok(counts)
    };
    let (rows, documents, skipped) = match &a.out {
        Some(file) => write_streamed_atomic(file, |f| export(f))?,
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let counts = export(&mut out)?;
            out.flush()?;
            counts
        }
    };
    for why in &skipped {
        eprintln!("perfgate: no perf-sanity document for {why}");
    }
    if rows == 0 && documents == 0 {
        eprintln!(
            "perfgate: {}: no measurements to export ({} run(s) selected); {}",
            path.display(),
            runs.len(),
            if format == Format::Csv {
                "wrote the header only"
            } else {
                "wrote nothing"
            }
        );
    } else {
        eprintln!(
            "perfgate: exported {rows} measurement(s){} of {} run(s)",
            if documents > 0 {
                format!(" and {documents} serving case(s) as perf-sanity documents")
            } else {
                String::new()
            },
            runs.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `path` through a temporary file next to it, renamed over `path` only when `fill`
/// succeeded: an export that fails halfway leaves the previous file as it was.
fn write_streamed_atomic<T>(
    path: &std::path::Path,
    fill: impl FnOnce(&mut dyn Write) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    crate::fsutil::write_with(path, |file| {
        let mut out = std::io::BufWriter::new(file);
        let value = fill(&mut out)?;
        out.flush()
            .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", path.display()))?;
        Ok(value)
    })
}
