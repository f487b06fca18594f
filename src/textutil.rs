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

/// Why a text file could not be read: the I/O error, or where its UTF-8 breaks (line and
/// column, so the byte can be found). The I/O error is part of the message, not a `source`:
/// error chains print each source again after the message.
#[derive(Debug, thiserror::Error)]
pub enum TextFileError {
    #[error("{}: cannot read: {cause}", path.display())]
    Io {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{}:{line}:{column}: not UTF-8 text (byte {byte:#04x} there); save the file as UTF-8",
        path.display()
    )]
    NotUtf8 {
        path: std::path::PathBuf,
        line: usize,
        column: usize,
        byte: u8,
    },
}

impl TextFileError {
    /// The file is not there (callers that read a missing file as empty check this).
    pub fn is_not_found(&self) -> bool {
        matches!(self, TextFileError::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Reads a whole file as UTF-8 text; see [`TextFileError`].
pub fn read_text(path: &std::path::Path) -> Result<String, TextFileError> {
    let bytes = std::fs::read(path).map_err(|cause| TextFileError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    utf8_text(bytes, path)
}

/// Bytes already read from `path` as UTF-8 text, or where the first invalid byte is (1-based
/// line, and column in bytes).
pub fn utf8_text(bytes: Vec<u8>, path: &std::path::Path) -> Result<String, TextFileError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let before = &bytes[..valid];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        TextFileError::NotUtf8 {
            path: path.to_path_buf(),
            line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
            column: 1 + valid - line_start,
            byte: bytes.get(valid).copied().unwrap_or(0),
        }
    })
}

/// The 1-based line of the record starting at byte `offset` of `bytes`, for CSV messages. The
/// csv crate's own `Position::line` is one short after `\r\n` line ends (it counts a line at
/// the `\n`, which it reads as the start of the next record: BurntSushi/rust-csv#395); the byte
/// offset is right, so the line is counted from it, and a record that starts at that `\n` is on
/// the line after it.
pub fn line_at_byte(bytes: &[u8], offset: u64) -> usize {
    let offset = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let before = bytes[..offset].iter().filter(|&&b| b == b'\n').count();
    1 + before + usize::from(bytes.get(offset) == Some(&b'\n'))
}

/// `file:line` for a message, or `file` alone when the line is 0 (a problem of the whole file,
/// or a parser that knows no line): never `file:0`.
pub fn file_line(file: impl std::fmt::Display, line: u64) -> String {
    if line == 0 {
        file.to_string()
    } else {
        format!("{file}:{line}")
    }
}

/// A measured value for people: six significant digits (more than any benchmark repeats to),
/// no trailing zeros, exponent notation when huge or tiny (`504.627`, `129556`, `0.61`,
/// `1e300`). Data files keep every digit; messages and tables use this.
pub fn display_num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if !(1e-4..1e15).contains(&a) {
        let s = format!("{v:.5e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        return format!("{}e{exp}", trim(mantissa.to_string()));
    }
    // Decimals that leave six significant digits (log10 of a value in range is within ±15).
    let magnitude = a.log10().floor() as i32;
    let decimals = usize::try_from(5 - magnitude).unwrap_or(0);
    trim(format!("{v:.decimals$}"))
}

/// Longest word or candidate (in chars) that "did you mean" compares by edit distance. The
/// suggestions are for typos in labels, keys and model names (all well under this); a longer input
/// is not a typo of any of them, and comparing it would cost time quadratic in its length.
pub const MAX_SUGGEST_CHARS: usize = 256;

/// Levenshtein distance over chars if it is at most `max`, else `None`. Bounded work: only the
/// diagonal band of width `2 * max + 1` is computed, and a row whose every cell exceeds `max`
/// stops it, so the cost is O(min(len) * max) however long the inputs are.
pub fn edit_distance_within(a: &[char], b: &[char], max: usize) -> Option<usize> {
    let (a, b) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if b.len() - a.len() > max {
        return None;
    }
    let over = max + 1;
    // prev[j] = distance between a[..i] and b[..j]; cells outside the band hold `over`.
    let mut prev: Vec<usize> = (0..=b.len()).map(|j| j.min(over)).collect();
    let mut cur = vec![over; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        let row = i + 1;
        let lo = row.saturating_sub(max);
        let hi = (row + max).min(b.len());
        cur.fill(over);
        if lo == 0 {
            cur[0] = row.min(over);
        }
        let mut row_min = cur[0];
        for j in lo.max(1)..=hi {
            let cost = usize::from(*ca != b[j - 1]);
            let d = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            cur[j] = d.min(over);
            row_min = row_min.min(cur[j]);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}

/// The candidates closest to `word` (at most `max` of them), if any is reasonably close: within
/// an edit distance of a third of the word's length (at least 2), or a prefix either way. Words
/// and candidates longer than [`MAX_SUGGEST_CHARS`] are matched by prefix only.
pub fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Vec<&'a str> {
    let word_len = word.chars().count();
    let word_chars: Option<Vec<char>> =
        (word_len <= MAX_SUGGEST_CHARS).then(|| word.chars().collect());
    let limit = (word_len / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|c| {
            // A prefix either way is exactly the length difference away.
            let by_prefix = || {
                (c.starts_with(word) || word.starts_with(c))
                    .then(|| word_len.abs_diff(c.chars().count()))
            };
            let by_distance = || {
                let w = word_chars.as_ref()?;
                let cc: Vec<char> = c.chars().take(MAX_SUGGEST_CHARS + 1).collect();
                if cc.len() > MAX_SUGGEST_CHARS {
                    return None;
                }
                edit_distance_within(w, &cc, limit)
            };
            by_distance().or_else(by_prefix).map(|d| (d, c))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(max).map(|(_, c)| c).collect()
}

/// A value from the user as an error message quotes it: whole up to [`CLIP_CHARS`] characters,
/// else its start and end around the number of bytes left out, so a 2 MB name in a list gives a
/// one-line error instead of 2 MB of output.
pub fn clip(value: &str) -> std::borrow::Cow<'_, str> {
    const HEAD: usize = 120;
    const TAIL: usize = 40;
    if value.chars().count() <= CLIP_CHARS {
        return std::borrow::Cow::Borrowed(value);
    }
    let head_end = value
        .char_indices()
        .nth(HEAD)
        .map_or(value.len(), |(i, _)| i);
    let tail_start = value
        .char_indices()
        .rev()
        .nth(TAIL - 1)
        .map_or(head_end, |(i, _)| i.max(head_end));
    std::borrow::Cow::Owned(format!(
        "{}…[{} bytes]…{}",
        &value[..head_end],
        tail_start - head_end,
        &value[tail_start..]
    ))
}

/// The longest value [`clip`] quotes whole.
pub const CLIP_CHARS: usize = 200;

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

/// Text safe in XML and HTML content and in double-quoted attribute values (JUnit, SVG, the
/// compare page).
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A chart axis's tick label: whole numbers from 100, one decimal from 1, three below, `0`
/// for zero.
pub fn axis_tick(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
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
    fn clip_keeps_short_values_and_shortens_long_ones_at_char_boundaries() {
        assert_eq!(clip("short"), "short");
        let exact = "é".repeat(CLIP_CHARS);
        assert_eq!(clip(&exact), exact.as_str());
        let long = format!(
            "{}{}{}",
            "a".repeat(120),
            "é".repeat(1_000_000),
            "z".repeat(40)
        );
        let c = clip(&long);
        assert_eq!(
            c,
            format!("{}…[2000000 bytes]…{}", "a".repeat(120), "z".repeat(40))
        );
    }

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
        let chars = |s: &str| s.chars().collect::<Vec<char>>();
        assert_eq!(
            edit_distance_within(&chars("kitten"), &chars("sitting"), 3),
            Some(3)
        );
        assert_eq!(
            edit_distance_within(&chars("kitten"), &chars("sitting"), 2),
            None
        );
        let c = closest(
            "input_output_lens",
            ["input_output_len", "input_len", "tp"],
            2,
        );
        assert_eq!(c.first(), Some(&"input_output_len"));
    }

    /// The full quadratic Levenshtein table, to check the banded one against.
    fn full_distance(a: &[char], b: &[char]) -> usize {
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.iter().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }

    proptest::proptest! {
        #[test]
        fn banded_distance_agrees_with_the_full_table(
            a in "[ab_]{0,12}", b in "[ab_]{0,12}", max in 0usize..8,
        ) {
            let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            let full = full_distance(&a, &b);
            let banded = edit_distance_within(&a, &b, max);
            proptest::prop_assert_eq!(banded, (full <= max).then_some(full));
        }
    }

    #[test]
    fn long_words_are_matched_by_prefix_only() {
        // Two long strings one edit apart: past the cap, no edit distance is computed at all.
        let long = "a".repeat(MAX_SUGGEST_CHARS + 1);
        let typo = format!("{}b", &long[1..]);
        assert!(closest(&typo, [long.as_str()], 1).is_empty());
        // A 2 MB name that starts with a known one still names it (and answers at once).
        let huge = format!("llama_v3.1_8b{}", "x".repeat(2_000_000));
        assert_eq!(
            closest(&huge, ["llama_v3.1_8b", "gpt_20b"], 3),
            ["llama_v3.1_8b"]
        );
        assert!(closest(&"x".repeat(2_000_000), ["llama_v3.1_8b"], 3).is_empty());
    }

    #[test]
    fn invalid_utf8_names_its_line_and_column() {
        let path = std::path::Path::new("f.txt");
        let e = utf8_text(b"ok\nab\xffc\n".to_vec(), path).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.txt:2:3: not UTF-8 text (byte 0xff there); save the file as UTF-8"
        );
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(utf8_text(b"fine\n".to_vec(), path).unwrap(), "fine\n");
        let missing = read_text(std::path::Path::new("/nonexistent/x")).unwrap_err();
        assert!(missing.is_not_found());
        assert!(std::error::Error::source(&missing).is_none());
    }

    #[test]
    fn csv_lines_with_either_line_end() {
        for text in [
            "h,h\na,1\nb,\"x\ny\"\nc,3\n",
            "h,h\r\na,1\r\nb,\"x\r\ny\"\r\nc,3\r\n",
        ] {
            let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
            let lines: Vec<usize> = reader
                .records()
                .map(|r| {
                    let r = r.expect("record");
                    line_at_byte(text.as_bytes(), r.position().expect("position").byte())
                })
                .collect();
            // b's quoted field spans lines 3 and 4, so c is on line 5.
            assert_eq!(lines, [2, 3, 5], "{text:?}");
        }
    }

    #[test]
    fn markup_is_escaped_and_ticks_read_at_their_scale() {
        assert_eq!(
            xml_escape(r#"a<b & "c">"#),
            "a&lt;b &amp; &quot;c&quot;&gt;"
        );
        let ticks: Vec<String> = [0.0, 0.1234, 12.34, 1234.5, -250.0]
            .into_iter()
            .map(axis_tick)
            .collect();
        assert_eq!(ticks, ["0", "0.123", "12.3", "1234", "-250"]);
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(display_num(504.62688447982015), "504.627");
        assert_eq!(display_num(3141.8163135699124), "3141.82");
        assert_eq!(display_num(129555.827), "129556");
        assert_eq!(display_num(0.61), "0.61");
        assert_eq!(display_num(-20.0), "-20");
        assert_eq!(display_num(0.0), "0");
        assert_eq!(display_num(1e300), "1e300");
        assert_eq!(display_num(1.5e-7), "1.5e-7");
        assert_eq!(display_num(f64::NAN), "NaN");
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
