//! The gate's verdicts as files and text: `gate.jsonl` (one [`VerdictRecord`] per line,
//! appended and synced as each case finishes), the terminal summary table, and the markdown
//! report for PR comments (`perf_report.md`, rewritten atomically after each case).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::record::Verdict;
use crate::record::{GATE_FILE, VerdictRecord};

pub const MARKDOWN_FILE: &str = "perf_report.md";

/// The order verdicts are counted and listed in: what needs a person first.
const ORDER: &[Verdict] = &[
    Verdict::Fail,
    Verdict::Invalid,
    Verdict::EnvChanged,
    Verdict::Unknown,
    Verdict::Improved,
    Verdict::New,
    Verdict::Pass,
];

/// Appends verdicts to `gate.jsonl` and keeps the markdown report current.
pub struct VerdictWriter {
    path: PathBuf,
    file: File,
    markdown: PathBuf,
    all: Vec<VerdictRecord>,
    title: String,
    /// Sections after the verdicts (the run's change points), set at the end of a run.
    appendix: String,
}

impl VerdictWriter {
    pub fn open(dir: &Path, title: &str) -> anyhow::Result<VerdictWriter> {
        let path = dir.join(GATE_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        Ok(VerdictWriter {
            path,
            file,
            markdown: dir.join(MARKDOWN_FILE),
            all: Vec::new(),
            title: title.to_string(),
            appendix: String::new(),
        })
    }

    pub fn write(&mut self, records: &[VerdictRecord]) -> anyhow::Result<()> {
        let mut out = String::new();
        for r in records {
            out.push_str(&serde_json::to_string(r)?);
            out.push('\n');
        }
        self.file
            .write_all(out.as_bytes())
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("{}: cannot write", self.path.display()))?;
        self.all.extend(records.iter().cloned());
        self.rewrite_markdown()
    }

    /// Adds markdown after the verdicts (e.g. a "Change points" section) and rewrites the report.
    pub fn set_appendix(&mut self, markdown: &str) -> anyhow::Result<()> {
        self.appendix = markdown.to_string();
        self.rewrite_markdown()
    }

    fn rewrite_markdown(&self) -> anyhow::Result<()> {
        let mut text = markdown(&self.title, &self.all);
        if !self.appendix.is_empty() {
            text.push('\n');
            text.push_str(&self.appendix);
        }
        crate::fsutil::write(&self.markdown, text.as_bytes())?;
        Ok(())
    }

    pub fn markdown_path(&self) -> &Path {
        &self.markdown
    }
}

/// Reads `gate.jsonl`; a bad line is an error naming the file and line.
pub fn read(path: &Path) -> anyhow::Result<Vec<VerdictRecord>> {
    let text = crate::textutil::read_text(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| {
                format!(
                    "{}:{}: expected one JSON verdict record per line",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        // An INVALID 1e300 is not 301 digits wide.
        Some(v) if v.abs() >= 1e9 => crate::textutil::display_num(v),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.1}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    }
}

fn pct(v: Option<f64>, signed: bool) -> String {
    match v {
        None => "-".into(),
        Some(v) if signed => format!("{v:+.2}%"),
        Some(v) => format!("{v:.2}%"),
    }
}

fn roof(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| {
        if v.abs() >= 1e6 {
            format!("{}%", crate::textutil::display_num(v))
        } else {
            format!("{v:.0}%")
        }
    })
}

/// The case a record belongs to, as a reader recognises it.
fn case_name(r: &VerdictRecord) -> &str {
    r.case.as_deref().unwrap_or(&r.network_name)
}

/// `FAIL 1 · UNKNOWN 2 · PASS 10`, in [`ORDER`], zero counts left out.
pub fn counts(records: &[VerdictRecord]) -> String {
    let parts: Vec<String> = ORDER
        .iter()
        .filter_map(|v| {
            let n = records.iter().filter(|r| r.verdict == *v).count();
            (n > 0).then(|| format!("{v} {n}"))
        })
        .collect();
    if parts.is_empty() {
        "no verdicts".into()
    } else {
        parts.join(" · ")
    }
}

/// The terminal summary: per case, one row per metric (case, metric, baseline, value, Δ%,
/// MDE, verdict, % of roofline). `*` marks the metrics that gate; the explanation of every
/// gated verdict that is not a PASS follows its row.
pub fn table(records: &[VerdictRecord]) -> String {
    let mut out = String::new();
    let width = records
        .iter()
        .map(|r| r.metric.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut last_case: Option<(&str, &str)> = None;
    for r in records {
        let key = (r.test_id.as_str(), case_name(r));
        if last_case != Some(key) {
            let _ = writeln!(out, "  {}", case_name(r));
            let _ = writeln!(
                out,
                "    {:<width$} {:>12} {:>12} {:>9} {:>7}  {:<11} {:>8}",
                "metric", "baseline", "value", "change", "MDE", "verdict", "roofline"
            );
            last_case = Some(key);
        }
        let _ = writeln!(
            out,
            "  {} {:<width$} {:>12} {:>12} {:>9} {:>7}  {:<11} {:>8}",
            if r.gated { "*" } else { " " },
            r.metric,
            num(r.baseline),
            num(r.value),
            pct(r.change_pct, true),
            pct(r.mde_pct, false),
            r.verdict.as_str(),
            roof(r.roofline_pct),
        );
        if r.gated && !matches!(r.verdict, Verdict::Pass | Verdict::New) {
            let _ = writeln!(out, "      {}", r.explanation);
        }
    }
    let _ = writeln!(
        out,
        "  verdicts: {} (* = gated; the others are reported only)",
        counts(records)
    );
    out
}

/// The markdown report for a PR comment: counts, what needs attention (gated verdicts that
/// are not PASS/NEW, with the explanation), improvements to re-baseline, then every case.
pub fn markdown(title: &str, records: &[VerdictRecord]) -> String {
    let mut out = format!("## {title}\n\n**{}**\n\n", counts(records));
    let attention: Vec<&VerdictRecord> = records
        .iter()
        .filter(|r| {
            r.gated
                && matches!(
                    r.verdict,
                    Verdict::Fail | Verdict::Invalid | Verdict::EnvChanged | Verdict::Unknown
                )
        })
        .collect();
    if !attention.is_empty() {
        out.push_str("### Needs attention\n\n| verdict | case | metric | change | MDE | why |\n|---|---|---|---|---|---|\n");
        for r in attention {
            let _ = writeln!(
                out,
                "| **{}** | `{}` | {} | {} | {} | {} |",
                r.verdict,
                case_name(r),
                r.metric,
                pct(r.change_pct, true),
                pct(r.mde_pct, false),
                cell(&r.explanation)
            );
        }
        out.push('\n');
    }
    let improved: Vec<&VerdictRecord> = records
        .iter()
        .filter(|r| r.verdict == Verdict::Improved)
        .collect();
    if !improved.is_empty() {
        out.push_str("### Improved: re-baseline suggested\n\n");
        for r in improved {
            let _ = writeln!(
                out,
                "- `{}` {} {} ({} → {} {})",
                case_name(r),
                r.metric,
                pct(r.change_pct, true),
                num(r.baseline),
                num(r.value),
                r.unit
            );
        }
        out.push_str(
            "\n`perfgate baseline update --from <output-dir> --reason \"...\"` writes the new \
             baseline and a patch.\n\n",
        );
    }
    out.push_str("### All results\n\n| case | metric | baseline | value | change | MDE | verdict | roofline | MFU / MBU |\n|---|---|---|---|---|---|---|---|---|\n");
    for r in records {
        let utilization = match (r.mfu_pct, r.mbu_pct) {
            (Some(f), Some(b)) => format!("{f:.0}% / {b:.0}%"),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {}{} | {} | {} {} | {} | {} | {} | {} | {utilization} |",
            case_name(r),
            r.metric,
            if r.gated { " (gated)" } else { "" },
            num(r.baseline),
            num(r.value),
            r.unit,
            pct(r.change_pct, true),
            pct(r.mde_pct, false),
            r.verdict,
            roof(r.roofline_pct)
        );
    }
    out
}

/// Text safe inside a markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
