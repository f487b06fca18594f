//! Small text helpers shared by several modules: Python-compatible float formatting, edit
//! distance for "did you mean" suggestions, and filesystem-safe names.

/// Formats a float the way Python's `repr(float)` does, because upstream writes `gwp:` and
/// `kv_frac:` values with `str(float)` and canonical labels must match it byte for byte.
pub fn py_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Python switches to exponent notation outside [1e-4, 1e16): `1e-05`, `1.5e+16`.
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{v}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// Levenshtein distance over chars; small inputs only (labels, model names).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidates closest to `word` (at most `max` of them), if any is reasonably close.
pub fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Vec<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= limit || c.starts_with(word) || word.starts_with(*c))
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(max).map(|(_, c)| c).collect()
}

/// A directory or file name derived from a test id: readable, stable, and safe for shells and
/// filesystems. Keeps `[A-Za-z0-9._-]`, maps `:`, `,`, `+` and everything else to `_`, never
/// yields `.`/`..` or a leading dot or dash, and bounds the length (long names keep a hash
/// suffix so two long ids never collide).
pub fn safe_file_name(id: &str) -> String {
    let mut out: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while out.starts_with(['.', '-']) {
        out.replace_range(0..1, "_");
    }
    if out.is_empty() {
        out.push('_');
    }
    const MAX: usize = 150;
    if out.len() > MAX {
        let digest = short_hash(id);
        out.truncate(MAX - 17);
        out.push('-');
        out.push_str(&digest);
    }
    out
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// First 16 hex digits of the SHA-256 of `s`.
pub fn short_hash(s: &str) -> String {
    let mut h = sha256_hex(s.as_bytes());
    h.truncate(16);
    h
}

/// Quotes one argument for a POSIX shell so a printed command line can be pasted as is.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

pub fn shell_join<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| shell_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `:`-separated list whose `$NAME` items name inherited variables, expanded the way the
/// runner expands step environments: each `$NAME` item becomes the variable's value (from
/// `lookup`), and empty items are dropped with their separator, so an unset
/// `$LD_LIBRARY_PATH` leaves no trailing `:`.
pub fn expand_path_list(value: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    value
        .split(':')
        .map(|part| match variable_ref(part) {
            Some(var) => lookup(var).unwrap_or_default(),
            None => part.to_string(),
        })
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(":")
}

/// `NAME` when `part` is exactly `$NAME` (a shell variable name).
fn variable_ref(part: &str) -> Option<&str> {
    let var = part.strip_prefix('$')?;
    let mut chars = var.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then_some(var)
}

/// A shell word for an environment value that a POSIX shell expands as [`expand_path_list`]
/// does: literal items quoted, each `$NAME` item after a literal written as `${NAME:+:$NAME}`
/// and a leading one as `${NAME:+$NAME:}`, so an unset or empty variable adds no separator.
/// Pasted into a shell, the command gets the value perfgate's own child got. (Two or more
/// variables before the first literal are written plainly, `$A:$B`: then an unset one leaves
/// an empty item, which search paths ignore.)
pub fn shell_quote_expanding(value: &str) -> String {
    let parts: Vec<&str> = value.split(':').filter(|p| !p.is_empty()).collect();
    if parts.iter().all(|p| variable_ref(p).is_none()) {
        return shell_quote(value);
    }
    let leading = parts
        .iter()
        .take_while(|p| variable_ref(p).is_some())
        .count();
    let mut out = String::new();
    if leading > 1 {
        let items: Vec<String> = parts
            .iter()
            .map(|p| match variable_ref(p) {
                Some(var) => format!("${{{var}}}"),
                None => double_quote_escape(p),
            })
            .collect();
        out = items.join(":");
    } else {
        for (i, part) in parts.iter().enumerate() {
            match (variable_ref(part), i) {
                // A lone variable: nothing before or after it.
                (Some(var), 0) if parts.len() == 1 => out.push_str(&format!("${{{var}}}")),
                (Some(var), 0) => out.push_str(&format!("${{{var}:+${var}:}}")),
                (Some(var), _) => out.push_str(&format!("${{{var}:+:${var}}}")),
                (None, 0) => out.push_str(&double_quote_escape(part)),
                // After a leading variable its `:` is already in its expansion.
                (None, 1) if leading == 1 => out.push_str(&double_quote_escape(part)),
                (None, _) => {
                    out.push(':');
                    out.push_str(&double_quote_escape(part));
                }
            }
        }
    }
    format!("\"{out}\"")
}

fn double_quote_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Columns padded to their widest cell (by characters: `Δ` is one); `right` columns (numbers)
/// aligned right. The last column is not padded.
pub fn aligned<const N: usize>(rows: &[[String; N]], right: &[usize]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
                break;
            }
            let pad = " ".repeat(widths[i] - cell.chars().count());
            if right.contains(&i) {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        assert_eq!(py_float_repr(0.9), "0.9");
        assert_eq!(py_float_repr(0.0), "0.0");
        assert_eq!(py_float_repr(1.0), "1.0");
        assert_eq!(py_float_repr(0.85), "0.85");
        assert_eq!(py_float_repr(1e-5), "1e-05");
        assert_eq!(py_float_repr(0.0001), "0.0001");
        assert_eq!(py_float_repr(1.5e16), "1.5e+16");
        assert_eq!(py_float_repr(123.25), "123.25");
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let c = closest(
            "input_output_lens",
            ["input_output_len", "input_len", "tp"],
            2,
        );
        assert_eq!(c.first(), Some(&"input_output_len"));
    }

    #[test]
    fn safe_names() {
        assert_eq!(safe_file_name("a-b:1,2+3"), "a-b_1_2_3");
        assert_eq!(safe_file_name("../etc/passwd"), "_._etc_passwd");
        assert_eq!(safe_file_name(""), "_");
        let long = "x".repeat(400);
        assert!(safe_file_name(&long).len() <= 150);
        assert_ne!(safe_file_name(&long), safe_file_name(&format!("{long}y")));
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("--x=1"), "--x=1");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
