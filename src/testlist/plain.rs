//! Plain text lists: one test id per line, `#` comments, markers after the id.

use std::path::Path;

use super::{Diagnostic, Source, TestList, parse_line};

pub(crate) fn parse(text: &str, path: &Path, list: &mut TestList) {
    for (i, line) in text.lines().enumerate() {
        let source = Source {
            file: path.to_path_buf(),
            line: i + 1,
        };
        match parse_line(line, &source) {
            Ok(Some(entry)) => list.entries.push(entry),
            Ok(None) => {
                let t = super::markers::strip_comment(line).trim();
                if !t.is_empty() {
                    list.diagnostics.push(Diagnostic::warning(
                        source,
                        format!("`{t}` is not a test_perf test; ignored"),
                    ));
                }
            }
            Err(msg) => list.diagnostics.push(Diagnostic::error(source, msg)),
        }
    }
}
