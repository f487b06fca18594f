//! A block-style YAML writer that produces the same bytes as PyYAML's
//! `yaml.dump(data, default_flow_style=False)` for JSON-shaped data.
//!
//! It follows PyYAML's emitter state for state: the indentation stack, the `column`,
//! `whitespace` and `indention` flags that decide where a space or a line break goes, and the
//! 80-column folding of long scalars. Keeping the same state (rather than a simpler
//! pretty-printer) is what makes the corner cases agree: indentless sequences under mapping
//! keys, `- key: value` for mappings in lists, `? ` complex keys, folded quoted strings and the
//! `...` end marker after a plain top-level scalar.

use serde_json::{Number, Value};

use super::float::pyyaml_float;
use super::scalar::{analyze, is_break, plain_resolves_to_str};

const BEST_INDENT: usize = 2;
const BEST_WIDTH: usize = 80;

/// The text of `yaml.dump(value, default_flow_style=False)` (keys sorted, two-space indent,
/// width 80, ASCII output with escapes).
pub fn to_pyyaml(value: &Value) -> String {
    emit(value, true)
}

/// The text of `yaml.dump(value, default_flow_style=False, sort_keys=False)`: mappings keep
/// their order (serde_json's `preserve_order`), as upstream's perf-sanity YAMLs are written.
pub fn to_pyyaml_unsorted(value: &Value) -> String {
    emit(value, false)
}

fn emit(value: &Value, sort_keys: bool) -> String {
    let mut emitter = Emitter {
        sort_keys,
        ..Emitter::default()
    };
    emitter.node(value, Context::ROOT);
    // Document end: the document is implicit, so only a final line break.
    emitter.write_indent();
    // Stream end: a plain top-level scalar leaves the document open-ended.
    if emitter.open_ended {
        emitter.write_indicator("...", true, false, false);
        emitter.write_indent();
    }
    emitter.out
}

#[derive(Debug, Clone, Copy, Default)]
struct Context {
    root: bool,
    mapping: bool,
    simple_key: bool,
}

impl Context {
    const ROOT: Context = Context {
        root: true,
        mapping: false,
        simple_key: false,
    };
    const SEQUENCE_ITEM: Context = Context {
        root: false,
        mapping: false,
        simple_key: false,
    };
    const MAPPING_VALUE: Context = Context {
        root: false,
        mapping: true,
        simple_key: false,
    };
    const SIMPLE_KEY: Context = Context {
        root: false,
        mapping: true,
        simple_key: true,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
}

struct Emitter {
    out: String,
    indents: Vec<Option<usize>>,
    indent: Option<usize>,
    flow_level: usize,
    column: usize,
    /// The last character written was whitespace (no separating space needed).
    whitespace: bool,
    /// Only indentation (spaces, `-`, `?`, `:`) has been written on this line so far.
    indention: bool,
    open_ended: bool,
    /// PyYAML's `sort_keys` (its default, true).
    sort_keys: bool,
}

impl Default for Emitter {
    fn default() -> Self {
        Emitter {
            out: String::new(),
            indents: Vec::new(),
            indent: None,
            flow_level: 0,
            column: 0,
            whitespace: true,
            indention: true,
            open_ended: false,
            sort_keys: true,
        }
    }
}

impl Emitter {
    fn node(&mut self, value: &Value, ctx: Context) {
        match value {
            Value::Null => self.typed_scalar("null", ctx),
            Value::Bool(b) => self.typed_scalar(if *b { "true" } else { "false" }, ctx),
            Value::Number(n) => self.typed_scalar(&number_text(n), ctx),
            Value::String(s) => self.string_scalar(s, ctx),
            Value::Array(items) if items.is_empty() || self.flow_level > 0 => {
                self.empty_flow_collection("[", "]")
            }
            Value::Array(items) => self.block_sequence(items, ctx),
            Value::Object(map) if map.is_empty() || self.flow_level > 0 => {
                self.empty_flow_collection("{", "}")
            }
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                // PyYAML's sort_keys: Python orders str by code point, as Rust orders UTF-8 bytes.
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                self.block_mapping(&entries);
            }
        }
    }

    /// Only empty collections reach flow style under `default_flow_style=False`, so there are
    /// no items to lay out between the brackets.
    fn empty_flow_collection(&mut self, open: &str, close: &str) {
        self.write_indicator(open, true, true, false);
        self.flow_level += 1;
        self.increase_indent(true, false);
        self.indent = self.indents.pop().flatten();
        self.flow_level -= 1;
        self.write_indicator(close, false, false, false);
    }

    fn block_sequence(&mut self, items: &[Value], ctx: Context) {
        // A sequence that is a mapping value stays at the key's indentation ("- item" under "key:").
        let indentless = ctx.mapping && !self.indention;
        self.increase_indent(false, indentless);
        for item in items {
            self.write_indent();
            self.write_indicator("-", true, false, true);
            self.node(item, Context::SEQUENCE_ITEM);
        }
        self.indent = self.indents.pop().flatten();
    }

    fn block_mapping(&mut self, entries: &[(&String, &Value)]) {
        self.increase_indent(false, false);
        for (key, value) in entries {
            self.write_indent();
            if is_simple_key(key) {
                self.string_scalar(key, Context::SIMPLE_KEY);
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, true);
                self.string_scalar(key, Context::MAPPING_VALUE);
                self.write_indent();
                self.write_indicator(":", true, false, true);
            }
            self.node(value, Context::MAPPING_VALUE);
        }
        self.indent = self.indents.pop().flatten();
    }

    /// null, booleans and numbers: PyYAML's own texts for them always resolve back to their
    /// type and never contain indicators, so they are always written plain and untagged.
    fn typed_scalar(&mut self, text: &str, ctx: Context) {
        self.increase_indent(true, false);
        self.write_plain(text, !ctx.simple_key, ctx.root);
        self.indent = self.indents.pop().flatten();
    }

    fn string_scalar(&mut self, text: &str, ctx: Context) {
        self.increase_indent(true, false);
        let style = self.choose_style(text, ctx);
        let split = !ctx.simple_key;
        match style {
            Style::Plain => self.write_plain(text, split, ctx.root),
            Style::SingleQuoted => self.write_single_quoted(text, split),
            Style::DoubleQuoted => self.write_double_quoted(text, split),
        }
        self.indent = self.indents.pop().flatten();
    }

    fn choose_style(&self, text: &str, ctx: Context) -> Style {
        let analysis = analyze(text);
        let plain_allowed = if self.flow_level > 0 {
            analysis.allow_flow_plain
        } else {
            analysis.allow_block_plain
        };
        if plain_resolves_to_str(text)
            && !(ctx.simple_key && (analysis.empty || analysis.multiline))
            && plain_allowed
        {
            return Style::Plain;
        }
        if analysis.allow_single_quoted && !(ctx.simple_key && analysis.multiline) {
            return Style::SingleQuoted;
        }
        Style::DoubleQuoted
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        self.indent = match self.indent {
            None if flow => Some(BEST_INDENT),
            None => Some(0),
            Some(indent) if !indentless => Some(indent + BEST_INDENT),
            Some(indent) => Some(indent),
        };
    }

    fn write_raw(&mut self, data: &str) {
        self.column += data.chars().count();
        self.out.push_str(data);
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        whitespace: bool,
        indention: bool,
    ) {
        if !self.whitespace && need_whitespace {
            self.write_raw(" ");
        }
        self.write_raw(indicator);
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
        self.open_ended = false;
    }

    fn write_indent(&mut self) {
        let indent = self.indent.unwrap_or(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.write_line_break(None);
        }
        if self.column < indent {
            self.whitespace = true;
            let pad = " ".repeat(indent - self.column);
            self.write_raw(&pad);
        }
    }

    fn write_line_break(&mut self, data: Option<char>) {
        self.whitespace = true;
        self.indention = true;
        self.column = 0;
        self.out.push(data.unwrap_or('\n'));
    }

    /// Writes the line breaks of a run `chars[start..end]` as the quoted and plain writers do: a
    /// leading '\n' is doubled because a single break inside a scalar folds into a space.
    fn write_break_run(&mut self, run: &[char]) {
        if run.first() == Some(&'\n') {
            self.write_line_break(None);
        }
        for &br in run {
            self.write_line_break(if br == '\n' { None } else { Some(br) });
        }
    }

    fn write_chars(&mut self, chars: &[char]) {
        let data: String = chars.iter().collect();
        self.write_raw(&data);
    }

    fn write_plain(&mut self, text: &str, split: bool, root: bool) {
        if root {
            self.open_ended = true;
        }
        if text.is_empty() {
            return;
        }
        if !self.whitespace {
            self.write_raw(" ");
        }
        self.whitespace = false;
        self.indention = false;
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        let mut start = 0;
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    // Fold at a single space once past the width.
                    if start + 1 == end && self.column > BEST_WIDTH && split {
                        self.write_indent();
                        self.whitespace = false;
                        self.indention = false;
                    } else {
                        self.write_chars(&chars[start..end]);
                    }
                    start = end;
                }
            } else if breaks {
                if !ch.is_some_and(is_break) {
                    self.write_break_run(&chars[start..end]);
                    self.write_indent();
                    self.whitespace = false;
                    self.indention = false;
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || is_break(c)) {
                self.write_chars(&chars[start..end]);
                start = end;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
        }
    }

    fn write_single_quoted(&mut self, text: &str, split: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let len = chars.len();
        let (mut spaces, mut breaks) = (false, false);
        let mut start = 0;
        for end in 0..=len {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end
                        && self.column > BEST_WIDTH
                        && split
                        && start != 0
                        && end != len
                    {
                        self.write_indent();
                    } else {
                        self.write_chars(&chars[start..end]);
                    }
                    start = end;
                }
            } else if breaks {
                if !ch.is_some_and(is_break) {
                    self.write_break_run(&chars[start..end]);
                    self.write_indent();
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || c == '\'' || is_break(c)) && start < end {
                self.write_chars(&chars[start..end]);
                start = end;
            }
            if ch == Some('\'') {
                self.write_raw("''");
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
        }
        self.write_indicator("'", false, false, false);
    }

    fn write_double_quoted(&mut self, text: &str, split: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let len = chars.len();
        let mut start = 0;
        for end in 0..=len {
            let ch = chars.get(end).copied();
            if ch.is_none_or(needs_escape) {
                if start < end {
                    self.write_chars(&chars[start..end]);
                    start = end;
                }
                if let Some(c) = ch {
                    self.write_raw(&escape(c));
                    start = end + 1;
                }
            }
            // After an escape `start` is one past `end`, so the pending width can be -1.
            let pending = end as isize - start as isize;
            if 0 < end
                && end + 1 < len
                && (ch == Some(' ') || start >= end)
                && self.column as isize + pending > BEST_WIDTH as isize
                && split
            {
                let mut data: String = if start < end {
                    chars[start..end].iter().collect()
                } else {
                    String::new()
                };
                data.push('\\');
                if start < end {
                    start = end;
                }
                self.write_raw(&data);
                self.write_indent();
                self.whitespace = false;
                self.indention = false;
                if chars[start] == ' ' {
                    self.write_raw("\\");
                }
            }
        }
        self.write_indicator("\"", false, false, false);
    }
}

/// A key can be written as `key: value` unless it is empty, spans lines, or is too long;
/// otherwise PyYAML writes `? key` and `: value` on separate lines. PyYAML's length limit is 128
/// including the prepared tag, and it counts the `!!str` tag (5 characters) even though an
/// implicit string key never writes it, so the real limit is 123 characters.
fn is_simple_key(key: &str) -> bool {
    const SIMPLE_KEY_LIMIT: usize = 128;
    const STR_TAG_LEN: usize = "!!str".len();
    let analysis = analyze(key);
    key.chars().count() + STR_TAG_LEN < SIMPLE_KEY_LIMIT && !analysis.empty && !analysis.multiline
}

fn number_text(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        pyyaml_float(n.as_f64().unwrap_or(0.0))
    }
}

/// Characters a double-quoted scalar must escape (ASCII output, as with `allow_unicode=False`).
fn needs_escape(ch: char) -> bool {
    matches!(
        ch,
        '"' | '\\' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{FEFF}'
    ) || !(' '..='~').contains(&ch)
}

fn escape(ch: char) -> String {
    let short = match ch {
        '\0' => Some('0'),
        '\u{07}' => Some('a'),
        '\u{08}' => Some('b'),
        '\t' => Some('t'),
        '\n' => Some('n'),
        '\u{0B}' => Some('v'),
        '\u{0C}' => Some('f'),
        '\r' => Some('r'),
        '\u{1B}' => Some('e'),
        '"' => Some('"'),
        '\\' => Some('\\'),
        '\u{85}' => Some('N'),
        '\u{A0}' => Some('_'),
        '\u{2028}' => Some('L'),
        '\u{2029}' => Some('P'),
        _ => None,
    };
    let code = ch as u32;
    match short {
        Some(c) => format!("\\{c}"),
        None if code <= 0xFF => format!("\\x{code:02X}"),
        None if code <= 0xFFFF => format!("\\u{code:04X}"),
        None => format!("\\U{code:08X}"),
    }
}
