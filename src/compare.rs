//! `perfgate compare A B`: two runs side by side, from output directories (`results.jsonl`) or
//! from the history. What upstream's `create_perf_comparison_report.py` meant to do (it merges
//! on CSV columns that no longer exist): per case, step and metric, A's and B's medians, the
//! change, better or worse by the metric's direction, and whether it is more than noise
//! ([`crate::gate::significance`]); as a table, markdown, or one self-contained HTML page.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::gate::significance::{self, Delta, Effect, Sample};
use crate::history::History;
use crate::history::regressions::resolve_run;
use crate::record::State;
use crate::record::metric;
use crate::results::jsonl;
use crate::textutil::xml_escape;

/// The series one row compares: the case (its canonical label, and its directory when a name
/// expands into several cases), the step and the metric. The test prefix (GPU) is left out so
/// two GPUs' runs compare.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Key {
    pub label: String,
    pub case: Option<String>,
    pub step: String,
    pub metric: String,
}

impl Key {
    pub fn case_text(&self) -> String {
        match &self.case {
            Some(c) => format!("{} [{c}]", self.label),
            None => self.label.clone(),
        }
    }
}

/// One side: where it came from, its run, and the valid repetitions of each series.
#[derive(Debug, Clone)]
pub struct Side {
    /// `out-a (run 20260102T...)` or `history run ... (night 12)`.
    pub description: String,
    pub run_id: String,
    pub series: BTreeMap<Key, Vec<f64>>,
}

/// Reads one side: `DIR`, `DIR@RUN_ID`, or a run of the history (`latest`, `latest~N`, an id).
pub fn load_side(spec: &str, history: &Path) -> anyhow::Result<Side> {
    let (dir, run) = match spec.rsplit_once('@') {
        Some((d, r)) if Path::new(d).is_dir() => (Some(PathBuf::from(d)), Some(r.to_string())),
        _ if Path::new(spec).is_dir() => (Some(PathBuf::from(spec)), None),
        _ => (None, None),
    };
    match dir {
        Some(dir) => load_dir(&dir, run.as_deref()),
        None => load_history(spec, history),
    }
}

fn load_dir(dir: &Path, run: Option<&str>) -> anyhow::Result<Side> {
    let file = dir.join(jsonl::NAME);
    if !file.is_file() {
        anyhow::bail!(
            "{}: no {} there (is it a perfgate --output-dir? a run writes it as cases finish)",
            dir.display(),
            jsonl::NAME
        );
    }
    let records = jsonl::read(&file)?;
    let mut runs: Vec<&str> = Vec::new();
    for r in &records {
        if !runs.contains(&r.run_id.as_str()) {
            runs.push(&r.run_id);
        }
    }
    let run_id = match run {
        Some(r) if runs.contains(&r) => r.to_string(),
        Some(r) => anyhow::bail!(
            "{}: no run `{r}` in it; its runs, oldest first: {}",
            file.display(),
            if runs.is_empty() {
                "(none)".to_string()
            } else {
                runs.join(", ")
            }
        ),
        None => runs
            .last()
            .map(|r| r.to_string())
            .with_context(|| format!("{}: holds no record yet", file.display()))?,
    };
    let mut series: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.run_id == run_id && r.is_measurement())
    {
        let (Some(metric), Some(value)) = (&r.metric, r.value) else {
            continue;
        };
        if r.state != State::Valid || !value.is_finite() {
            continue;
        }
        series
            .entry(Key {
                label: r.label.clone(),
                case: r.case.clone(),
                step: r.step.clone(),
                metric: metric.clone(),
            })
            .or_default()
            .push(value);
    }
    Ok(Side {
        description: format!("{} (run {run_id})", dir.display()),
        run_id,
        series,
    })
}

fn load_history(spec: &str, path: &Path) -> anyhow::Result<Side> {
    let history = History::open_existing(path).with_context(|| {
        format!("`{spec}` is not a directory, so it names a run of the history")
    })?;
    let run = resolve_run(&history, path, spec)
        .with_context(|| format!("`{spec}` is neither a directory nor a run of the history"))?;
    let mut series: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for m in history.measurements(&run.meta.run_id)? {
        if m.state != State::Valid || !m.value.is_finite() {
            continue;
        }
        series
            .entry(Key {
                label: m.network_name.clone(),
                case: m.case.clone(),
                step: m.step.clone(),
                metric: m.metric.clone(),
            })
            .or_default()
            .push(m.value);
    }
    Ok(Side {
        description: format!(
            "{} run {} (night {}, rev {})",
            path.display(),
            run.meta.run_id,
            run.night,
            run.meta.revision.as_deref().unwrap_or("?")
        ),
        run_id: run.meta.run_id,
        series,
    })
}

/// One row of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub key: Key,
    pub unit: String,
    pub delta: Delta,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// Worst first.
    pub rows: Vec<Row>,
    pub only_in_a: Vec<Key>,
    pub only_in_b: Vec<Key>,
}

/// Compares the series of two sides, keeping only `metrics` when any are given.
pub fn compare_sides(a: &Side, b: &Side, metrics: &[String]) -> Comparison {
    let keep = |k: &Key| metrics.is_empty() || metrics.contains(&k.metric);
    let mut rows = Vec::new();
    let mut only_in_a = Vec::new();
    for (k, va) in a.series.iter().filter(|(k, _)| keep(k)) {
        let Some(vb) = b.series.get(k) else {
            only_in_a.push(k.clone());
            continue;
        };
        let def = metric::metric(&k.metric);
        let delta = significance::compare(
            &Sample { reps: va.clone() },
            &Sample { reps: vb.clone() },
            def.map(|d| d.direction),
        );
        if let Some(delta) = delta {
            rows.push(Row {
                key: k.clone(),
                unit: def.map(|d| d.unit.symbol().to_string()).unwrap_or_default(),
                delta,
            });
        }
    }
    let only_in_b = b
        .series
        .keys()
        .filter(|k| keep(k) && !a.series.contains_key(*k))
        .cloned()
        .collect();
    rows.sort_by(|x, y| {
        y.delta
            .badness()
            .total_cmp(&x.delta.badness())
            .then_with(|| x.key.cmp(&y.key))
    });
    Comparison {
        a: a.description.clone(),
        b: b.description.clone(),
        rows,
        only_in_a,
        only_in_b,
    }
}

fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

/// `p=0.0012 (welch-t-log, significant)`; `n/a (1 rep)` with one repetition on a side,
/// `n/a (no spread)` when neither side varies. Spelled out rather than marked `*`: elsewhere
/// `*` marks a gated metric.
pub fn significance_text(d: &Delta) -> String {
    match &d.significance {
        Some(s) => format!(
            "p={} ({}{})",
            if s.pvalue < 1e-3 {
                format!("{:.1e}", s.pvalue)
            } else {
                format!("{:.4}", s.pvalue)
            },
            s.test,
            if s.significant { ", significant" } else { "" },
        ),
        None if d.a_reps.min(d.b_reps) < 2 => format!("n/a ({} rep)", d.a_reps.min(d.b_reps)),
        None => "n/a (no spread)".to_string(),
    }
}

fn cells(r: &Row) -> [String; 7] {
    [
        r.key.case_text(),
        r.key.step.clone(),
        format!(
            "{}{}",
            r.key.metric,
            if r.unit.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.unit)
            }
        ),
        num(r.delta.a),
        num(r.delta.b),
        format!("{:+.2}", r.delta.delta_pct),
        format!(
            "{} {}",
            r.delta.effect.as_str(),
            significance_text(&r.delta)
        ),
    ]
}

const HEADERS: [&str; 7] = [
    "Case",
    "Step",
    "Metric",
    "A",
    "B",
    "Δ%",
    "Effect / significance",
];

pub fn render_table(c: &Comparison) -> String {
    let mut rows: Vec<[String; 7]> = vec![HEADERS.map(|h| h.to_uppercase())];
    rows.extend(c.rows.iter().map(cells));
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = format!("A: {}\nB: {}\n", c.a, c.b);
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[i] - cell.chars().count());
            if (3..=5).contains(&i) {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.push_str(&pad);
                }
            }
            line.push_str("  ");
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    for (side, keys) in [("A", &c.only_in_a), ("B", &c.only_in_b)] {
        for k in keys {
            let _ = writeln!(
                s,
                "only in {side}: {} {} {}",
                k.case_text(),
                k.step,
                k.metric
            );
        }
    }
    s.push_str(FOOTNOTE);
    s.push('\n');
    s
}

const FOOTNOTE: &str = "A and B are medians of each side's valid repetitions; Δ% = (B − A) / A; \
significance: Welch's t-test on log values (both sides ≥ 2 repetitions, some spread), significant = \
p < 0.05; |Δ%| < 0.005 is `same`.";

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

pub fn render_markdown(c: &Comparison) -> String {
    let mut s = String::from("# perfgate compare\n\n");
    let _ = writeln!(
        s,
        "- **A:** {}\n- **B:** {}\n",
        md_escape(&c.a),
        md_escape(&c.b)
    );
    let _ = writeln!(s, "| {} |", HEADERS.join(" | "));
    s.push_str("|---|---|---|---:|---:|---:|---|\n");
    for r in &c.rows {
        let cells = cells(r).map(|c| md_escape(&c));
        let _ = writeln!(s, "| `{}` | {} |", cells[0], cells[1..].join(" | "));
    }
    for (side, keys) in [("A", &c.only_in_a), ("B", &c.only_in_b)] {
        if keys.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n**Only in {side}:**\n");
        for k in keys {
            let _ = writeln!(
                s,
                "- `{}` {} {}",
                md_escape(&k.case_text()),
                k.step,
                k.metric
            );
        }
    }
    let _ = writeln!(s, "\n{FOOTNOTE}");
    s
}

/// One page, no scripts, no external resources: it opens the same offline and in a CI
/// artifact viewer.
pub fn render_html(c: &Comparison) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>perfgate compare</title>\n<style>\n\
body{font-family:system-ui,sans-serif;margin:2em;color:#222}\n\
table{border-collapse:collapse;font-size:14px}\n\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}\n\
td.num{text-align:right;font-variant-numeric:tabular-nums}\n\
tr.worse.sig td{background:#fbe3e3}\ntr.better.sig td{background:#e3f5e3}\n\
th{background:#f0f0f0}\ncode{font-size:13px}\n</style></head><body>\n<h1>perfgate compare</h1>\n",
    );
    let _ = writeln!(
        s,
        "<p><b>A:</b> {}<br><b>B:</b> {}</p>",
        xml_escape(&c.a),
        xml_escape(&c.b)
    );
    s.push_str("<table>\n<tr>");
    for h in HEADERS {
        let _ = write!(s, "<th>{}</th>", xml_escape(h));
    }
    s.push_str("</tr>\n");
    for r in &c.rows {
        let sig = r.delta.significance.as_ref().is_some_and(|x| x.significant);
        let class = format!(
            "{}{}",
            match r.delta.effect {
                Effect::Worse => "worse",
                Effect::Better => "better",
                _ => "same",
            },
            if sig { " sig" } else { "" }
        );
        let cells = cells(r);
        let _ = write!(s, "<tr class=\"{class}\">");
        for (i, cell) in cells.iter().enumerate() {
            if (3..=5).contains(&i) {
                let _ = write!(s, "<td class=\"num\">{}</td>", xml_escape(cell));
            } else if i == 0 {
                let _ = write!(s, "<td><code>{}</code></td>", xml_escape(cell));
            } else {
                let _ = write!(s, "<td>{}</td>", xml_escape(cell));
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    for (side, keys) in [("A", &c.only_in_a), ("B", &c.only_in_b)] {
        if keys.is_empty() {
            continue;
        }
        let _ = writeln!(s, "<h2>Only in {side}</h2>\n<ul>");
        for k in keys {
            let _ = writeln!(
                s,
                "<li><code>{}</code> {} {}</li>",
                xml_escape(&k.case_text()),
                xml_escape(&k.step),
                xml_escape(&k.metric)
            );
        }
        s.push_str("</ul>\n");
    }
    let _ = writeln!(s, "<p>{}</p>\n</body></html>", xml_escape(FOOTNOTE));
    s
}
