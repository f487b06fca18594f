//! `perfgate parse`: logs in, metrics out (JSON lines or an aligned table).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;

use crate::record::metric::{METRICS, metric};
use crate::report::{Report, ReportKind, parse_reader, parse_report_json, reconcile};

#[derive(Clone, Copy, ValueEnum)]
pub enum ParseFormat {
    /// One JSON object per log: `file` and the report's fields.
    Json,
    /// Aligned `NAME  value  unit  direction` lines, then missing metrics and warnings.
    Table,
}

#[derive(clap::Args)]
pub struct ParseArgs {
    /// Logs to read (trtllm-bench, trtllm-build, serving benchmark); `-` reads stdin.
    #[arg(required = true, value_name = "LOG")]
    pub logs: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: ParseFormat,
    /// The same run's trtllm-bench `--report_json` file: its values win, the log's are
    /// cross-checked against them (one LOG only).
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
}

/// Exit code 1 when a log holds no report (or a report without values); what was found is
/// printed anyway.
pub fn run_cli(a: ParseArgs) -> anyhow::Result<ExitCode> {
    if a.report_json.is_some() && a.logs.len() != 1 {
        anyhow::bail!(
            "--report-json belongs to one run: give exactly one LOG with it ({} given)",
            a.logs.len()
        );
    }
    let json = match &a.report_json {
        Some(path) => {
            let text = crate::textutil::read_text(path)?;
            Some(parse_report_json(&text).with_context(|| path.display().to_string())?)
        }
        None => None,
    };
    let mut out = std::io::stdout().lock();
    let mut all_reports = true;
    let mut json = json;
    for path in &a.logs {
        let report = reconcile(read(path)?, json.take());
        let name = path.display().to_string();
        match a.format {
            ParseFormat::Json => {
                let mut obj = serde_json::Map::new();
                obj.insert("file".into(), name.clone().into());
                if let serde_json::Value::Object(fields) = serde_json::to_value(&report)? {
                    obj.extend(fields);
                }
                writeln!(out, "{}", serde_json::Value::Object(obj))?;
            }
            ParseFormat::Table => write!(out, "{}", table(&name, &report))?,
        }
        if !report.is_report() {
            all_reports = false;
            let why = if report.kind == ReportKind::Unknown {
                "not a trtllm-bench, build or serving-benchmark report"
            } else {
                "a report without metric values"
            };
            let detail = report
                .warnings
                .first()
                .map_or(String::new(), |w| format!(" ({w})"));
            eprintln!("perfgate parse: {name}: {why}{detail}");
        }
    }
    Ok(if all_reports {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn read(path: &Path) -> anyhow::Result<Report> {
    if path == Path::new("-") {
        return parse_reader(std::io::stdin().lock()).context("stdin");
    }
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    parse_reader(BufReader::with_capacity(1 << 16, file))
        .with_context(|| path.display().to_string())
}

/// The report as aligned text, metrics in the table's order.
pub fn table(name: &str, r: &Report) -> String {
    let kind = match r.kind {
        ReportKind::Throughput => "throughput report",
        ReportKind::Latency => "latency report",
        ReportKind::Build => "trtllm-bench build output",
        ReportKind::TrtllmBuild => "trtllm-build output",
        ReportKind::Serve => "serving-benchmark result",
        ReportKind::Unknown => "no report",
    };
    let mut head = format!("# {name}: {kind}");
    if let Some(era) = &r.era {
        head.push_str(&format!(", era {era}"));
    }
    if r.streaming {
        head.push_str(", streaming");
    }
    if r.reports_found > 1 {
        head.push_str(&format!(", {} reports (last kept)", r.reports_found));
    }
    let rows: Vec<[String; 4]> = METRICS
        .iter()
        .filter_map(|d| r.metrics.get(d.name).map(|v| (d, v)))
        .map(|(d, v)| {
            [
                d.name.to_string(),
                v.to_string(),
                d.unit.symbol().to_string(),
                d.direction.as_str().to_string(),
            ]
        })
        .chain(
            // Names outside the table cannot come from the parser; shown if a caller added one.
            r.metrics
                .iter()
                .filter(|(k, _)| metric(k).is_none())
                .map(|(k, v)| [k.clone(), v.to_string(), "?".into(), "?".into()]),
        )
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut s = head + "\n";
    for [n, v, u, d] in &rows {
        s.push_str(&format!("{n:<w0$}  {v:>w1$}  {u:<w2$}  {d}\n"));
    }
    if let Some(n) = r.failed_requests {
        s.push_str(&format!("failed requests: {n}\n"));
    }
    for m in &r.error_markers {
        s.push_str(&format!("error marker: {m}\n"));
    }
    if !r.missing.is_empty() {
        s.push_str(&format!("missing: {}\n", r.missing.join(", ")));
    }
    for c in &r.contradictions {
        s.push_str(&format!("contradiction: {c}\n"));
    }
    for w in &r.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    s
}
