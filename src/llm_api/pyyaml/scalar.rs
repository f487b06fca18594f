//! What PyYAML decides about one scalar before writing it: would its plain form read back as a
//! string (the YAML 1.1 implicit resolvers), and which styles can carry its characters.

use std::sync::LazyLock;

use regex::Regex;

/// Line-break characters as PyYAML counts them.
pub fn is_break(ch: char) -> bool {
    matches!(ch, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Characters PyYAML treats as whitespace around indicators (NUL counts, like end of input).
fn is_space_or_break(ch: char) -> bool {
    matches!(ch, '\0' | ' ' | '\t' | '\r') || is_break(ch)
}

/// One implicit resolver: the first characters it is registered for and its pattern. The
/// patterns are PyYAML's (YAML 1.1) with the verbose-mode whitespace taken out.
struct Resolver {
    first_chars: &'static str,
    matches_empty: bool,
    pattern: Regex,
}

fn resolver(first_chars: &'static str, matches_empty: bool, body: &str) -> Resolver {
    let pattern = Regex::new(&format!(r"\A(?:{body})\z")).expect("built-in resolver pattern");
    Resolver {
        first_chars,
        matches_empty,
        pattern,
    }
}

static RESOLVERS: LazyLock<Vec<Resolver>> = LazyLock::new(|| {
    vec![
        resolver(
            "yYnNtTfFoO",
            false,
            "yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
        ),
        resolver(
            "-+0123456789.",
            false,
            r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        ),
        resolver(
            "-+0123456789",
            false,
            r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
        ),
        resolver("<", false, "<<"),
        resolver("~nN", true, "~|null|Null|NULL|"),
        resolver(
            "0123456789",
            false,
            r"[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?",
        ),
        resolver("=", false, "="),
        resolver("!&*", false, r"!|&|\*"),
    ]
});

/// The type PyYAML's implicit resolvers (YAML 1.1) give a plain scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainType {
    Bool,
    Float,
    Int,
    Merge,
    Null,
    Timestamp,
    Value,
    /// `!`, `&`, `*` alone: PyYAML's `yaml` tag resolver.
    Yaml,
    Str,
}

/// The resolver order PyYAML registers them in; the first that matches decides.
const TYPES: [PlainType; 8] = [
    PlainType::Bool,
    PlainType::Float,
    PlainType::Int,
    PlainType::Merge,
    PlainType::Null,
    PlainType::Timestamp,
    PlainType::Value,
    PlainType::Yaml,
];

/// What PyYAML's `safe_load` reads the plain (unquoted) scalar `text` as.
pub fn resolve_plain(text: &str) -> PlainType {
    // Resolvers are looked up by the first character only; the empty string has its own list.
    let first = text.chars().next();
    // Python's `$` also matches just before one final newline.
    let subject = text.strip_suffix('\n').unwrap_or(text);
    RESOLVERS
        .iter()
        .zip(TYPES)
        .find(|(r, _)| {
            let registered = match first {
                None => r.matches_empty,
                Some(ch) => r.first_chars.contains(ch),
            };
            registered && r.pattern.is_match(subject)
        })
        .map_or(PlainType::Str, |(_, t)| t)
}

/// Whether PyYAML would read the plain (unquoted) form of `text` back as a string. When it would
/// not (`yes`, `017`, `1.0`, `2024-01-01`, `~`, the empty string), the emitter has to quote it.
pub fn plain_resolves_to_str(text: &str) -> bool {
    resolve_plain(text) == PlainType::Str
}

/// The styles a scalar's characters allow (PyYAML's `ScalarAnalysis`, with `allow_unicode` off as
/// in `yaml.dump`'s default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Analysis {
    pub empty: bool,
    pub multiline: bool,
    pub allow_flow_plain: bool,
    pub allow_block_plain: bool,
    pub allow_single_quoted: bool,
}

pub fn analyze(text: &str) -> Analysis {
    if text.is_empty() {
        return Analysis {
            empty: true,
            multiline: false,
            allow_flow_plain: false,
            allow_block_plain: true,
            allow_single_quoted: true,
        };
    }
    // The common case, keys and paths (`kv_cache_config`, `/models/x`): no indicator, space,
    // break or special character anywhere, so every style is allowed. Decided without the
    // character-by-character scan below (which planning a 10,000-name list spent much on).
    let bytes = text.as_bytes();
    if (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_' || bytes[0] == b'/')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-'))
    {
        return Analysis {
            empty: false,
            multiline: false,
            allow_flow_plain: true,
            allow_block_plain: true,
            allow_single_quoted: true,
        };
    }
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len();

    let mut block_indicators = false;
    let mut flow_indicators = false;
    let mut line_breaks = false;
    let mut special_characters = false;
    let mut leading_space = false;
    let mut leading_break = false;
    let mut trailing_space = false;
    let mut trailing_break = false;
    let mut break_space = false;
    let mut space_break = false;

    if text.starts_with("---") || text.starts_with("...") {
        block_indicators = true;
        flow_indicators = true;
    }

    let mut preceded_by_whitespace = true;
    let mut followed_by_whitespace = len == 1 || is_space_or_break(chars[1]);
    let mut previous_space = false;
    let mut previous_break = false;

    for (index, &ch) in chars.iter().enumerate() {
        if index == 0 {
            if matches!(
                ch,
                '#' | ','
                    | '['
                    | ']'
                    | '{'
                    | '}'
                    | '&'
                    | '*'
                    | '!'
                    | '|'
                    | '>'
                    | '\''
                    | '"'
                    | '%'
                    | '@'
                    | '`'
            ) {
                flow_indicators = true;
                block_indicators = true;
            }
            if ch == '?' || ch == ':' {
                flow_indicators = true;
                if followed_by_whitespace {
                    block_indicators = true;
                }
            }
            if ch == '-' && followed_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        } else {
            if matches!(ch, ',' | '?' | '[' | ']' | '{' | '}') {
                flow_indicators = true;
            }
            if ch == ':' {
                flow_indicators = true;
                if followed_by_whitespace {
                    block_indicators = true;
                }
            }
            if ch == '#' && preceded_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        }

        if is_break(ch) {
            line_breaks = true;
        }
        // Without allow_unicode, everything outside printable ASCII (bar '\n') must be escaped.
        if !(ch == '\n' || (' '..='~').contains(&ch)) {
            special_characters = true;
        }

        if ch == ' ' {
            if index == 0 {
                leading_space = true;
            }
            if index == len - 1 {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(ch) {
            if index == 0 {
                leading_break = true;
            }
            if index == len - 1 {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }

        preceded_by_whitespace = is_space_or_break(ch);
        followed_by_whitespace = index + 2 >= len || is_space_or_break(chars[index + 2]);
    }

    let mut allow_flow_plain = true;
    let mut allow_block_plain = true;
    let mut allow_single_quoted = true;

    if leading_space || leading_break || trailing_space || trailing_break {
        allow_flow_plain = false;
        allow_block_plain = false;
    }
    if break_space {
        allow_flow_plain = false;
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if space_break || special_characters {
        allow_flow_plain = false;
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if line_breaks {
        allow_flow_plain = false;
        allow_block_plain = false;
    }
    if flow_indicators {
        allow_flow_plain = false;
    }
    if block_indicators {
        allow_block_plain = false;
    }

    Analysis {
        empty: false,
        multiline: line_breaks,
        allow_flow_plain,
        allow_block_plain,
        allow_single_quoted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_types_are_not_strings() {
        for text in [
            "",
            "~",
            "null",
            "NULL",
            "yes",
            "No",
            "on",
            "OFF",
            "true",
            "1",
            "-1",
            "+1",
            "0x1F",
            "017",
            "0b101",
            "1_000",
            "1:30",
            "1.5",
            "1.",
            ".5",
            "1.0e+5",
            "1:30.5",
            ".inf",
            "-.Inf",
            ".NaN",
            "2024-01-01",
            "2001-12-14t21:59:43.10-05:00",
            "=",
            "<<",
            "yes\n",
        ] {
            assert!(
                !plain_resolves_to_str(text),
                "{text:?} should not resolve to str"
            );
        }
    }

    #[test]
    fn ordinary_words_are_strings() {
        for text in [
            "fp8",
            "DEEPGEMM",
            "1e3",
            "1.0e5",
            "0o17",
            "y",
            "n",
            "nulls",
            "True1",
            "2024-1-1",
            "/models/x",
            "\n",
            "08",
            "0x",
            "-",
            ".",
            "torch-opt",
        ] {
            assert!(
                plain_resolves_to_str(text),
                "{text:?} should resolve to str"
            );
        }
    }

    #[test]
    fn plain_is_refused_for_indicators_and_edges() {
        let plain = |t: &str| analyze(t).allow_block_plain;
        assert!(plain("a b"));
        assert!(plain("a:b"));
        assert!(plain("a#b"));
        assert!(plain("-a"));
        assert!(!plain("a: b"));
        assert!(!plain("a #b"));
        assert!(!plain("- a"));
        assert!(!plain("-"));
        assert!(!plain("#a"));
        assert!(!plain("'a"));
        assert!(!plain(" a"));
        assert!(!plain("a "));
        assert!(!plain("a\nb"));
        assert!(!plain("---a"));
        assert!(!plain("é"));
        assert!(!analyze("a\tb").allow_single_quoted);
        assert!(analyze("a\nb").allow_single_quoted);
    }
}
