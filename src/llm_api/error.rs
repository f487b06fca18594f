//! Errors from loading LLM API rules. Every variant names the file (and line where known) so a
//! bad rules file is reported where it is wrong, never turned into an empty config.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LlmApiError {
    #[error(transparent)]
    Read(#[from] crate::textutil::TextFileError),
    /// Not YAML, or YAML that does not fit the schema (unknown key, wrong type, missing section).
    #[error("{}{}: {message}", crate::textutil::file_line(origin, *line), if *line > 0 { format!(":{column}") } else { String::new() })]
    Parse {
        origin: String,
        line: u64,
        column: u64,
        message: String,
    },
    /// Fits the schema but cannot be right (an empty pattern, an unknown placeholder, ...).
    #[error("{}: {message}", crate::textutil::file_line(origin, *line))]
    Invalid {
        origin: String,
        line: u64,
        message: String,
    },
}

impl LlmApiError {
    pub(crate) fn from_yaml(origin: &str, err: &serde_saphyr::Error) -> Self {
        let (line, column) = err
            .location()
            .map_or((0, 0), |loc| (loc.line(), loc.column()));
        LlmApiError::Parse {
            origin: origin.to_string(),
            line,
            column,
            message: bare_message(&err.without_snippet().to_string()),
        }
    }

    pub(crate) fn invalid(origin: &str, line: u64, message: impl Into<String>) -> Self {
        LlmApiError::Invalid {
            origin: origin.to_string(),
            line,
            message: message.into(),
        }
    }
}

/// serde-saphyr's message without its own position ("error: line N column M: " in front or
/// " at line N, column M" behind), since our Display puts `file:line:col:` in front.
fn bare_message(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or(rendered).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let first = match first
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((position, message)) if position.contains(" column ") => message,
        _ => first,
    };
    match first.rsplit_once(" at line ") {
        Some((message, position)) if position.contains(", column ") => message.to_string(),
        _ => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::bare_message;

    #[test]
    fn strips_the_position_lead_in() {
        assert_eq!(
            bare_message("error: line 4 column 5: unknown field `confg`, expected one of a, b"),
            "unknown field `confg`, expected one of a, b"
        );
        assert_eq!(bare_message("invalid u32"), "invalid u32");
        assert_eq!(
            bare_message("did not find expected ',' or '}' at line 18, column 30"),
            "did not find expected ',' or '}'"
        );
    }
}
