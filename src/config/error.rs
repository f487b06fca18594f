use serde::Serialize;
use std::fmt;

/// What kind of mistake a name has; upstream's many assertion messages map onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NameErrorKind {
    /// An empty name or an empty label (`--`, leading or trailing `-`).
    Empty,
    /// The name ends before a mandatory label.
    Truncated,
    /// The model name has characters a label cannot hold.
    BadModelName,
    UnknownRuntime,
    /// A known label in the wrong slot (the grammar is positional).
    Misplaced,
    /// The same label twice.
    Duplicate,
    UnknownLabel,
    /// A value that is not a number, or out of range (tp:0, reqs:0, kv_frac:1.5, ...).
    BadValue,
    /// Labels that cannot go together (quant with the pytorch backend, exe with bench, ...).
    InvalidCombination,
    /// gpus does not equal tp × pp.
    Topology,
}

/// A name that cannot be parsed or is invalid: says which label, where, what was expected
/// there, and, when it can, the corrected name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameError {
    pub kind: NameErrorKind,
    /// 1-based index of the offending label among the `-`-separated labels.
    pub position: Option<usize>,
    pub label: Option<String>,
    pub message: String,
    /// The corrected name or label, when one can be proposed.
    pub suggestion: Option<String>,
}

impl NameError {
    pub(crate) fn new(kind: NameErrorKind, message: impl Into<String>) -> Self {
        NameError {
            kind,
            position: None,
            label: None,
            message: message.into(),
            suggestion: None,
        }
    }

    pub(crate) fn at(mut self, position: usize, label: &str) -> Self {
        self.position = Some(position);
        self.label = Some(label.to_string());
        self
    }

    pub(crate) fn suggest(mut self, suggestion: Option<String>) -> Self {
        self.suggestion = suggestion;
        self
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(p), Some(l)) = (self.position, &self.label) {
            write!(f, "label {p} `{l}`: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean `{s}`?")?;
        }
        Ok(())
    }
}

impl std::error::Error for NameError {}
