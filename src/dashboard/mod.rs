//! The static nightly dashboard (`perfgate dashboard --history DB --out site/`): plain files
//! that work offline from `file://` (no server, no CDN, no `fetch()`; Chromium refuses fetch
//! on file URLs). Data travels as `<script src="data/….js">` files that set one global each;
//! `app.js` (hand-written, embedded) renders tables and inline SVG charts from them.
//!
//! - `index.html` + `data/index.js`: the last night of each test prefix (GPU), one row per
//!   case, worst verdict first; counts; filters by model, GPU, backend and precision.
//! - `case/<n>.html` + `data/case-<n>.js`: one case's metrics over the nights (value, stored
//!   baseline, noise band, change points, FAIL nights) and a drill-down per night. Loaded
//!   only when that page is opened, so the overview stays small.
//! - `sweeps.html` + `data/sweeps.js`: per sweep (cases that differ only in concurrency or
//!   batch size: a serve name's `con:1+4+16`, a perf-sanity server's clients), per-user
//!   against per-GPU output throughput with the Pareto frontier of its latest night, drawn
//!   over an earlier night's (the previous one by default) to compare the frontiers.
//! - `data/runs.js`: every run shown (id, revision, host, environment), for the drill-down.

mod model;
pub mod synthetic;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub use model::{Site, chart_number_slow, pareto_frontier, push_chart_number, robust_band};

use crate::history::History;

const STYLE: &str = include_str!("assets/style.css");
const APP: &str = include_str!("assets/app.js");

/// What `perfgate dashboard` builds from.
#[derive(Debug, Clone)]
pub struct Options {
    pub history: PathBuf,
    pub out: PathBuf,
    /// Only the most recent this many runs.
    pub nights: usize,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub runs: usize,
    pub cases: usize,
    pub series: usize,
    pub points: usize,
    pub sweeps: usize,
    pub files: usize,
    pub bytes: u64,
}

/// Builds the site. An empty history gives a site that says so (not an error); a missing file
/// is an error naming it.
pub fn build(opts: &Options) -> anyhow::Result<Summary> {
    phase("start");
    // The dashboard only reads: a damaged page fails the read that meets it, so the
    // whole-file check (seconds on a year of history) is left to the writers' opens.
    let history = History::open_existing_unchecked(&opts.history)?;
    phase("opened the history");
    let site = Site::load(&history, opts.nights.max(1))?;
    let summary = write(&site, &opts.history, &opts.out)?;
    phase("wrote the site");
    Ok(summary)
}

/// Writes a loaded site to `out` (created when absent).
pub fn write(site: &Site, history_path: &Path, out: &Path) -> anyhow::Result<Summary> {
    let data = out.join("data");
    let cases_dir = out.join("case");
    for d in [out, &data, &cases_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))?;
    }
    let mut files = 0usize;
    let mut bytes = 0u64;
    let mut put = |path: &Path, text: &[u8]| -> anyhow::Result<()> {
        crate::fsutil::write(path, text)?;
        files += 1;
        bytes += text.len() as u64;
        Ok(())
    };
    put(&out.join("style.css"), STYLE.as_bytes())?;
    put(&out.join("app.js"), APP.as_bytes())?;
    let source = history_path.display().to_string();
    put(
        &data.join("index.js"),
        global("PG_INDEX", &site.index_json(&source)).as_bytes(),
    )?;
    put(
        &data.join("runs.js"),
        global("PG_RUNS", &site.runs_json()).as_bytes(),
    )?;
    put(
        &data.join("sweeps.js"),
        global("PG_SWEEPS", &site.sweeps_json()).as_bytes(),
    )?;
    let title = format!("perfgate nightly: {}", file_name(history_path));
    put(
        &out.join("index.html"),
        page(&title, "index", "", &["data/index.js"]).as_bytes(),
    )?;
    put(
        &out.join("sweeps.html"),
        page(
            &format!("{title}: sweeps"),
            "sweeps",
            "",
            &["data/sweeps.js"],
        )
        .as_bytes(),
    )?;
    // Case pages: the bulk of the work, split over the cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let n = site.cases.len();
    let chunk = n.div_ceil(threads).max(1);
    let results: Vec<anyhow::Result<(usize, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|start| {
                let (data, cases_dir, title) = (&data, &cases_dir, &title);
                s.spawn(move || -> anyhow::Result<(usize, u64)> {
                    let mut written = (0usize, 0u64);
                    for i in start..(start + chunk).min(n) {
                        let json = site.case_json(i);
                        let js = global("PG_CASE", &json);
                        crate::fsutil::write(&data.join(format!("case-{i}.js")), js.as_bytes())?;
                        let html = page(
                            &format!("{}: {}", site.cases[i].label, title),
                            "case",
                            "../",
                            &["../data/runs.js", &format!("../data/case-{i}.js")],
                        );
                        crate::fsutil::write(
                            &cases_dir.join(format!("{i}.html")),
                            html.as_bytes(),
                        )?;
                        written.0 += 2;
                        written.1 += (js.len() + html.len()) as u64;
                    }
                    Ok(written)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a page writer panicked")))
            })
            .collect()
    });
    for r in results {
        let (f, b) = r?;
        files += f;
        bytes += b;
    }
    Ok(Summary {
        runs: site.runs.len(),
        cases: site.cases.len(),
        series: site.series_count(),
        points: site.point_count(),
        sweeps: site.sweeps.len(),
        files,
        bytes,
    })
}

/// With `PERFGATE_DASHBOARD_PHASES` set, says on stderr how long after the build's start each
/// of its phases ended (for profiling a large history).
pub(crate) fn phase(what: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    if std::env::var_os("PERFGATE_DASHBOARD_PHASES").is_some() {
        let start = START.get_or_init(std::time::Instant::now);
        eprintln!("dashboard: {:7.2} s {what}", start.elapsed().as_secs_f64());
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |f| f.to_string_lossy().into())
}

/// A script that sets `window.<name>`. JSON is valid JavaScript (serde_json escapes the
/// line separators that once were not).
fn global(name: &str, json: &str) -> String {
    format!("window.{name} = {json};\n")
}

/// The HTML shell of a page: `app.js` renders `kind` from the globals the scripts set.
fn page(title: &str, kind: &str, root: &str, scripts: &[&str]) -> String {
    let mut s = String::with_capacity(1024);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    s.push_str(&format!("<title>{}</title>\n", escape(title)));
    s.push_str(&format!(
        "<link rel=\"stylesheet\" href=\"{root}style.css\">\n"
    ));
    s.push_str("</head>\n");
    s.push_str(&format!(
        "<body data-page=\"{kind}\" data-root=\"{root}\" data-errors=\"\" data-rendered=\"\">\n"
    ));
    s.push_str(&format!(
        "<header class=\"top\"><a class=\"brand\" href=\"{root}index.html\">perfgate</a>\
         <nav><a href=\"{root}index.html\">Overview</a><a href=\"{root}sweeps.html\">Sweeps</a></nav>\
         <span class=\"title\">{}</span></header>\n",
        escape(title)
    ));
    s.push_str("<main id=\"app\"><p class=\"muted\">Loading…</p></main>\n");
    // The error recorder first, so an error in a data file is recorded too.
    s.push_str(&format!("<script src=\"{root}app.js\"></script>\n"));
    for src in scripts {
        s.push_str(&format!("<script src=\"{}\"></script>\n", escape(src)));
    }
    s.push_str("<script>PG.render();</script>\n</body>\n</html>\n");
    s
}

/// Text safe in HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
