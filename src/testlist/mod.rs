//! Test lists: upstream's plain text lists and test-db YAML lists, read into [`TestEntry`]s.
//!
//! Every problem is collected as a [`Diagnostic`] with its file and line instead of stopping at
//! the first, so `perfgate lint` can report them all.

mod condition;
mod markers;
mod plain;
mod testdb;

use crate::textutil::clip;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::config::TestFunction;
pub use condition::{Condition, RangeBounds, System};
pub use markers::Markers;

/// Where a list entry came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: PathBuf,
    /// 1-based; 0 for a problem of the whole file (shown as `file`, not `file:0`).
    pub line: usize,
}

/// `file:line`, or `file` alone for a problem of the whole file (line 0): never a `:0` that
/// sends an editor to a line that does not exist.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// One test of a list, before its name is parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct TestEntry {
    pub source: Source,
    /// The upstream test function: `test_perf` names, or `test_perf_sanity.py::test_e2e`
    /// labels.
    pub function: TestFunction,
    /// The name inside `test_perf[...]` (or `test_e2e[...]`), exactly as listed.
    pub raw: String,
    /// A GPU prefix pinned with `full:<prefix>/...`.
    pub pinned_prefix: Option<String>,
    pub markers: Markers,
}

impl TestEntry {
    /// The upstream test id: `[<prefix>/]perf/test_perf.py::test_perf[<raw>]` (or
    /// `perf/test_perf_sanity.py::test_e2e[<raw>]`).
    pub fn test_id(&self, prefix: Option<&str>) -> String {
        function_test_id(
            self.function,
            prefix.or(self.pinned_prefix.as_deref()),
            &self.raw,
        )
    }
}

pub fn test_id(prefix: Option<&str>, raw: &str) -> String {
    function_test_id(TestFunction::Perf, prefix, raw)
}

/// The test id of `raw` under `function`, with the GPU / stage prefix.
pub fn function_test_id(function: TestFunction, prefix: Option<&str>, raw: &str) -> String {
    let node = function.node();
    match prefix.filter(|p| !p.is_empty()) {
        Some(p) => format!("{p}/{node}[{raw}]"),
        None => format!("{node}[{raw}]"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub source: Source,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn error(source: Source, message: impl Into<String>) -> Self {
        Diagnostic {
            source,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    pub fn warning(source: Source, message: impl Into<String>) -> Self {
        Diagnostic {
            source,
            severity: Severity::Warning,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{}: {sev}: {}", self.source, self.message)
    }
}

/// How test-db YAML lists are evaluated.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The machine the conditions are evaluated against; `None` keeps every block (lint).
    pub system: Option<System>,
    /// The context (top-level key) to read; may be omitted when a file has only one.
    pub context: Option<String>,
    /// A list with conditions and no system to evaluate them against is an error (to run or
    /// plan a list), not every block read (what `lint` wants).
    pub require_system: bool,
}

/// The tests of one or more lists, deduplicated, with every problem found.
#[derive(Debug, Clone, Default)]
pub struct TestList {
    pub entries: Vec<TestEntry>,
    pub diagnostics: Vec<Diagnostic>,
    /// Condition blocks read from test-db lists (for lint and `--explain`).
    pub conditions: Vec<(Source, Condition)>,
}

impl TestList {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// Reads every list (plain text, or test-db YAML for `.yml`/`.yaml`), in order. A test listed
/// more than once is kept once, with a warning at each repeat.
pub fn load(paths: &[PathBuf], opts: &LoadOptions) -> TestList {
    let mut list = TestList::default();
    for path in paths {
        load_one(path, opts, &mut list);
    }
    if paths.is_empty() {
        list.diagnostics.push(Diagnostic::error(
            Source {
                file: PathBuf::from("<command line>"),
                line: 0,
            },
            "no test list given",
        ));
    }
    dedup(&mut list);
    list
}

fn load_one(path: &Path, opts: &LoadOptions, list: &mut TestList) {
    let source = Source {
        file: path.to_path_buf(),
        line: 0,
    };
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                list.diagnostics.push(Diagnostic::error(
                    Source { line, ..source },
                    "the file is not valid UTF-8 text",
                ));
                return;
            }
        },
        Err(e) => {
            list.diagnostics.push(Diagnostic::error(
                source,
                format!("cannot read the test list: {e}"),
            ));
            return;
        }
    };
    let before = list.entries.len();
    let is_yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    );
    if is_yaml {
        testdb::parse(&text, path, opts, list);
    } else {
        plain::parse(&text, path, list);
    }
    if list.entries.len() == before && !list.has_errors() {
        list.diagnostics.push(Diagnostic::warning(
            source,
            if is_yaml {
                "no test of this list applies (empty, or no condition holds)"
            } else {
                "the list has no tests"
            },
        ));
    }
}

/// Parses list text as read from `path` (test-db YAML when `is_yaml`), adding to `list`.
pub fn parse_text(text: &str, path: &Path, is_yaml: bool, opts: &LoadOptions, list: &mut TestList) {
    if is_yaml {
        testdb::parse(text, path, opts, list);
    } else {
        plain::parse(text, path, list);
    }
}

fn dedup(list: &mut TestList) {
    let mut first: HashMap<(Option<String>, TestFunction, String), Source> = HashMap::new();
    let mut kept = Vec::with_capacity(list.entries.len());
    for e in std::mem::take(&mut list.entries) {
        let key = (e.pinned_prefix.clone(), e.function, e.raw.clone());
        if let Some(at) = first.get(&key) {
            list.diagnostics.push(Diagnostic::warning(
                e.source.clone(),
                format!(
                    "`{}` is listed again (first at {at}); it runs once",
                    clip(&e.raw)
                ),
            ));
        } else {
            first.insert(key, e.source.clone());
            kept.push(e);
        }
    }
    list.entries = kept;
}

/// Splits a list line into the test id and its trailing markers, parsing the id. Returns
/// `Ok(None)` for a test that is not a `test_perf` test (upstream ignores those).
pub(crate) fn parse_line(text: &str, source: &Source) -> Result<Option<TestEntry>, String> {
    let text = markers::strip_comment(text).trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (id, rest) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    let markers = Markers::parse(rest)?;
    let Some((pinned_prefix, function, raw)) = parse_test_id(id)? else {
        return Ok(None);
    };
    Ok(Some(TestEntry {
        source: source.clone(),
        function,
        raw,
        pinned_prefix,
        markers,
    }))
}

/// The pinned prefix, the test function and the name of a test id:
/// `[full:<prefix>/][llm/]perf/test_perf.py::test_perf[<name>]`,
/// `[full:<prefix>/][llm/]perf/test_perf_sanity.py::test_e2e[<label>]`, or a bare `test_perf`
/// name; `Ok(None)` for another test function.
pub type ParsedId = (Option<String>, TestFunction, String);

pub fn parse_test_id(id: &str) -> Result<Option<ParsedId>, String> {
    // A control character (NUL, ESC, ...) is in no test id; shown, it would be invisible, and it
    // would break the JUnit XML. The whole list is refused, in `run` as in `lint`.
    if let Some((at, c)) = id.char_indices().find(|(_, c)| c.is_control()) {
        return Err(format!(
            "`{}`: the test id contains the control character {c:?} at column {}",
            clip(&id.escape_debug().to_string()),
            id[..at].chars().count() + 1
        ));
    }
    let (prefix, rest) = match id.strip_prefix("full:") {
        Some(r) => match r.split_once('/') {
            Some((p, rest)) if !p.is_empty() => (Some(p.to_string()), rest),
            _ => {
                return Err(format!(
                    "`{}`: expected `full:<prefix>/perf/test_perf.py::test_perf[...]`",
                    clip(id)
                ));
            }
        },
        None => (None, id),
    };
    let rest = rest.strip_prefix("llm/").unwrap_or(rest);
    for function in [TestFunction::Perf, TestFunction::PerfSanity] {
        let Some(inner) = rest
            .strip_prefix(function.node())
            .and_then(|r| r.strip_prefix('['))
        else {
            continue;
        };
        let Some(name) = inner.strip_suffix(']') else {
            return Err(format!("`{}`: the test id has no closing `]`", clip(id)));
        };
        if name.contains('[') || name.contains(']') {
            return Err(format!(
                "`{}`: unbalanced brackets in the test id",
                clip(id)
            ));
        }
        return Ok(Some((prefix, function, name.to_string())));
    }
    if rest.contains("::") || rest.contains(".py") {
        return Ok(None); // another test function (accuracy, unit tests): not ours
    }
    if prefix.is_some() {
        return Err(format!(
            "`{id}`: a `full:` prefix must be followed by a test_perf or test_perf_sanity id"
        ));
    }
    Ok(Some((None, TestFunction::Perf, rest.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> Source {
        Source {
            file: "l.txt".into(),
            line: 3,
        }
    }

    #[test]
    fn ids_and_markers() {
        let e = parse_line(
            "perf/test_perf.py::test_perf[a-bench-float16-input_output_len:1,2] TIMEOUT (90) # x",
            &src(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.raw, "a-bench-float16-input_output_len:1,2");
        assert_eq!(e.markers.timeout_minutes, Some(90));
        let e = parse_line(
            "full:H100_PCIe/perf/test_perf.py::test_perf[x] SKIP (nvbug 123#4)",
            &src(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.pinned_prefix.as_deref(), Some("H100_PCIe"));
        assert_eq!(e.markers.skip.as_deref(), Some("nvbug 123#4"));
        let e = parse_line("llm/perf/test_perf.py::test_perf[x]", &src())
            .unwrap()
            .unwrap();
        assert_eq!(e.raw, "x");
        assert!(
            parse_line("accuracy/test_llm_api.py::test_x[a]", &src())
                .unwrap()
                .is_none()
        );
        assert!(parse_line("   # only a comment", &src()).unwrap().is_none());
        assert!(parse_line("perf/test_perf.py::test_perf[x", &src()).is_err());
        assert!(parse_line("x BOGUS", &src()).is_err());
        assert_eq!(
            test_id(Some("H100"), "x"),
            "H100/perf/test_perf.py::test_perf[x]"
        );
        let e = parse_line(
            "full:B200/perf/test_perf_sanity.py::test_e2e[aggr_upload-cfg-srv] TIMEOUT (120)",
            &src(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.function, TestFunction::PerfSanity);
        assert_eq!(e.raw, "aggr_upload-cfg-srv");
        assert_eq!(
            e.test_id(None),
            "B200/perf/test_perf_sanity.py::test_e2e[aggr_upload-cfg-srv]"
        );
    }
}
