//! `perfgate gate` (a run's stored verdicts, for people and scripts) and `perfgate history runs`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use super::{History, default_path};
use crate::gate::record::VerdictRecord;
use crate::gate::stats::Verdict;

/// Which history file: `--history`, or the one in the output directory.
#[derive(clap::Args)]
pub struct HistoryLocation {
    /// The history file [default: `<output-dir>/history.sqlite`].
    #[arg(long, env = "PERF_HISTORY", value_name = "PATH")]
    pub history: Option<PathBuf>,
    /// The output directory whose history to read when --history is not given.
    #[arg(
        long,
        short = 'O',
        env = "PERF_OUTPUT_DIR",
        default_value = "perf-output"
    )]
    pub output_dir: PathBuf,
}

impl HistoryLocation {
    pub fn path(&self) -> PathBuf {
        self.history
            .clone()
            .unwrap_or_else(|| default_path(&self.output_dir))
    }
}

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
    /// List the stored runs, most recent first: run id, night, start, end, host, test prefix.
    Runs(RunsArgs),
    /// Confirm, clear or leave pending a run's provisional regressions (its FAIL verdicts) by
    /// change-point detection over the nights around it, with blame ranges (last good run ->
    /// first bad run); `--all` lists every change point of the run's series.
    Changes(super::changes_cli::ChangesArgs),
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
        .ok_or_else(|| super::unknown_run(&path, &run_id))?;
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
        HistoryCommand::Changes(c) => super::changes_cli::run_changes(c),
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
            ]];
            for run in &runs {
                rows.push([
                    run.meta.run_id.clone(),
                    run.night.to_string(),
                    run.meta.started.clone(),
                    run.ended.clone().unwrap_or_else(|| "-".into()),
                    run.meta.host.clone(),
                    run.meta.test_prefix.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            let mut out = std::io::stdout().lock();
            write!(out, "{}", aligned(&rows, &[]))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One line per record. An ungated verdict is marked `*`: reported, never fails the run.
fn render_table(records: &[VerdictRecord]) -> String {
    let num = |v: Option<f64>, signed: bool| match v {
        Some(v) if signed => format!("{v:+.2}"),
        Some(v) => format!("{v:.2}"),
        None => "-".into(),
    };
    let mut rows = vec![[
        "VERDICT".to_string(),
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
            format!("{}{}", r.verdict, if r.gated { "" } else { "*" }),
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
    let mut text = aligned(&rows, &[2, 3, 4, 5]);
    if records.iter().any(|r| !r.gated) {
        text.push_str("* reported, not gated\n");
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

/// Columns padded to their widest cell (by characters: `Δ` is one); `right` columns (numbers)
/// aligned right. The last column is not padded.
pub(super) fn aligned<const N: usize>(rows: &[[String; N]], right: &[usize]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
                break;
            }
            let pad = " ".repeat(widths[i] - cell.chars().count());
            if right.contains(&i) {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
