//! The book in `docs/` against the code: the CLI reference is every command's `--help`, the
//! metric reference is the metric table, every environment variable the code names is
//! documented, every page is in `SUMMARY.md`, and every relative link (and anchor) of the
//! README and the book leads somewhere. Generated parts are rewritten with `PERFGATE_BLESS=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use perfgate::record::metric::METRICS;
use regex::Regex;

const CLI_PAGE: &str = "docs/reference/cli.md";
const METRICS_PAGE: &str = "docs/reference/metrics.md";
const ENV_PAGE: &str = "docs/reference/environment.md";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bless() -> bool {
    std::env::var("PERFGATE_BLESS").is_ok_and(|v| v == "1")
}

/// Checks (or, blessing, rewrites) the part of `page` after its `<!-- Generated below ...`
/// line against `generated`.
fn check_generated(page: &str, generated: &str) {
    let path = repo().join(page);
    let text = read(&path);
    let marker = text
        .lines()
        .find(|l| l.starts_with("<!-- Generated below"))
        .unwrap_or_else(|| panic!("{page}: no `<!-- Generated below` line"));
    let head_len = text.find(marker).expect("the marker is in the text") + marker.len() + 1;
    let head = &text[..head_len];
    let want = format!("{head}\n{generated}");
    if text == want {
        return;
    }
    if bless() {
        std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{page}: {e}"));
        return;
    }
    let first_difference = text
        .lines()
        .zip(want.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map_or_else(
            || {
                format!(
                    "the page has {} lines, the code gives {}",
                    text.lines().count(),
                    want.lines().count()
                )
            },
            |(i, (a, b))| format!("line {}: page has\n  {a}\nthe code gives\n  {b}", i + 1),
        );
    panic!(
        "{page} is out of date ({first_difference}).\nRegenerate it: PERFGATE_BLESS=1 cargo test --test selftest docs"
    );
}

/// `perfgate <path> --help`, with no PERF_* (or other) variable set, so that `[env: X=]` shows
/// no value of this machine's.
fn help(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(path)
        .arg("--help")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(repo())
        .output()
        .expect("perfgate runs");
    assert!(
        out.status.success(),
        "perfgate {} --help: {}",
        path.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Every command's help, depth first in the order `--help` lists them.
fn cli_sections(path: Vec<String>, out: &mut String) {
    let text = help(&path);
    let heading = if path.len() < 2 { "##" } else { "###" };
    let name = std::iter::once("perfgate".to_string())
        .chain(path.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    out.push_str(&format!("{heading} {name}\n\n```text\n"));
    for line in text.trim_end().lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("```\n\n");
    for sub in subcommands(&text) {
        let mut p = path.clone();
        p.push(sub);
        cli_sections(p, out);
    }
}

#[test]
fn docs_cli_reference_is_every_commands_help() {
    let mut generated = String::new();
    cli_sections(Vec::new(), &mut generated);
    assert!(
        generated.contains("## perfgate run\n")
            && generated.contains("### perfgate history runs\n"),
        "the command tree was not walked:\n{generated}"
    );
    check_generated(CLI_PAGE, generated.trim_end_matches('\n'));
}

/// `perfgate --help` lists what a user runs: the self-benchmarks are under `perfgate dev`.
#[test]
fn top_level_help_lists_user_commands_and_the_benchmarks_live_under_dev() {
    let top = subcommands(&help(&[]));
    assert!(top.iter().all(|c| !c.starts_with("bench")), "{top:?}");
    for c in [
        "run",
        "lint",
        "plan",
        "gate",
        "serve-bench",
        "sweep",
        "ab",
        "dev",
    ] {
        assert!(top.iter().any(|t| t == c), "{c} missing: {top:?}");
    }
    let dev = subcommands(&help(&["dev".to_string()]));
    for c in ["bench-names", "bench-gate"] {
        assert!(dev.iter().any(|t| t == c), "{c} missing under dev: {dev:?}");
    }
}

#[test]
fn docs_metric_reference_is_the_metric_table() {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut t = String::from(
        "| name | unit | better | upstream threshold | what |\n|---|---|---|---|---|\n",
    );
    for m in METRICS {
        let better = if m.informational {
            "workload".to_string()
        } else {
            m.direction.as_str().to_string()
        };
        let threshold = m
            .upstream_threshold
            .map(|(rel, abs)| format!("{rel}, {abs}"))
            .unwrap_or_default();
        t.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            m.name,
            cell(m.unit.symbol()),
            better,
            threshold,
            cell(m.about)
        ));
    }
    check_generated(METRICS_PAGE, t.trim_end_matches('\n'));
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn docs_name_every_environment_variable_the_code_reads() {
    let page = read(&repo().join(ENV_PAGE));
    let patterns = [
        // clap's `env = "X"`, a std::env read, a CI variable looked up through `get("X")`.
        Regex::new(r#"env = "([A-Z][A-Z0-9_]+)""#).expect("regex"),
        Regex::new(r#"env::var(?:_os)?\("([A-Z][A-Z0-9_]+)"\)"#).expect("regex"),
        Regex::new(r#"\bget\("([A-Z][A-Z0-9_]+)"\)"#).expect("regex"),
        // Any literal of perfgate's own families.
        Regex::new(r#""((?:PERF|PERFGATE|FAKE_BENCH)_[A-Z0-9_]+)""#).expect("regex"),
    ];
    let mut files = Vec::new();
    for dir in ["src", "tests/double", "tests/selftest"] {
        rust_files(&repo().join(dir), &mut files);
    }
    let mut missing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let text = read(file);
        let in_selftest = file.starts_with(repo().join("tests/selftest"));
        for (i, re) in patterns.iter().enumerate() {
            // The self tests' own literals are test data; only what they read counts. `get("X")`
            // is a CI variable only in provenance.rs (elsewhere it looks up metrics).
            if (in_selftest && i != 1) || (i == 2 && !file.ends_with("src/provenance.rs")) {
                continue;
            }
            for c in re.captures_iter(&text) {
                let name = &c[1];
                if !page.contains(&format!("`{name}`")) {
                    let rel = file.strip_prefix(repo()).unwrap_or(file);
                    missing
                        .entry(name.to_string())
                        .or_default()
                        .insert(rel.display().to_string());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{ENV_PAGE} does not name these variables (and where the code reads them): {missing:#?}"
    );
}

/// The Markdown files of the book, relative to the repository.
fn book_pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut pages = Vec::new();
    walk(&repo().join("docs"), &mut pages);
    pages.sort();
    pages
}

#[test]
fn docs_summary_lists_every_page() {
    let summary_path = repo().join("docs/SUMMARY.md");
    let summary = read(&summary_path);
    let link = Regex::new(r"\]\(([^)#]+)\)").expect("regex");
    let listed: BTreeSet<PathBuf> = link
        .captures_iter(&summary)
        .map(|c| repo().join("docs").join(&c[1]))
        .collect();
    let unlisted: Vec<_> = book_pages()
        .into_iter()
        .filter(|p| *p != summary_path && !listed.contains(p))
        .map(|p| p.strip_prefix(repo()).unwrap_or(&p).display().to_string())
        .collect();
    assert!(
        unlisted.is_empty(),
        "pages missing from docs/SUMMARY.md: {unlisted:?}"
    );
}

/// Markdown text without fenced code blocks and inline code, where brackets are not links.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if !fenced {
            out.push_str(line);
        }
        out.push('\n');
    }
    Regex::new(r"`[^`\n]*`")
        .expect("regex")
        .replace_all(&out, "")
        .into_owned()
}

/// A heading's anchor as mdBook and GitHub make it: lower case, spaces to `-`, and only
/// letters, digits, `-` and `_` kept.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(page: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn docs_links_lead_somewhere() {
    // Blessing rewrites pages while this reads them; the run after it checks the links.
    if bless() {
        return;
    }
    let link = Regex::new(r"\]\(([^)\s]+)\)").expect("regex");
    let mut pages = book_pages();
    pages.push(repo().join("README.md"));
    let mut broken = Vec::new();
    for page in &pages {
        let text = read(page);
        for c in link.captures_iter(&prose(&text)) {
            let target = &c[1];
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() {
                page.clone()
            } else {
                page.parent().expect("a page has a directory").join(file)
            };
            let rel = page
                .strip_prefix(repo())
                .unwrap_or(page)
                .display()
                .to_string();
            if !path.exists() {
                broken.push(format!("{rel}: {target}: no such file"));
            } else if !anchor.is_empty()
                && path.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&path)).contains(anchor)
            {
                broken.push(format!("{rel}: {target}: no such heading"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
