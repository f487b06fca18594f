//! Byte-level helpers for reading console logs: bounded line reading, logger-prefix stripping,
//! whitespace-insensitive label comparison and number parsing. Everything works on bytes, so
//! invalid UTF-8 is just bytes that match nothing.

use std::io::BufRead;

/// Longest line kept in full. Report lines are under 100 bytes; a longer line (iteration logs,
/// binary garbage without newlines) is only looked at through its first `MAX_LINE` bytes, so
/// memory stays bounded whatever the input.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Calls `each(line, terminated)` for every line of `r` (without its `\n`). `terminated` is false
/// only for a last line with no newline: the text may have been cut there. Lines longer than
/// [`MAX_LINE`] are truncated. Memory does not grow with the input.
pub(crate) fn for_each_line<R: BufRead>(
    mut r: R,
    mut each: impl FnMut(&[u8], bool),
) -> std::io::Result<()> {
    // Holds a line only when it spans reader buffers; most lines are handed out in place.
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_len = 0usize; // bytes of the line seen, kept or not
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if pending_len > 0 {
                each(&pending, false);
            }
            return Ok(());
        }
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[start..]) {
            let line = &buf[start..start + i];
            if pending_len == 0 {
                each(&line[..line.len().min(MAX_LINE)], true);
            } else {
                keep(&mut pending, line);
                each(&pending, true);
                pending.clear();
                pending_len = 0;
            }
            start += i + 1;
        }
        let rest = &buf[start..];
        if !rest.is_empty() {
            keep(&mut pending, rest);
            pending_len += rest.len();
        }
        let consumed = buf.len();
        r.consume(consumed);
    }
}

fn keep(pending: &mut Vec<u8>, more: &[u8]) {
    let room = MAX_LINE.saturating_sub(pending.len());
    pending.extend_from_slice(&more[..more.len().min(room)]);
}

/// The text a terminal would show for a physical line: a carriage return (CRLF endings,
/// progress bars redrawn with `\r`) hides what came before it.
pub(crate) fn visible(line: &[u8]) -> &[u8] {
    let mut s = line;
    while let Some((&b'\r', rest)) = s.split_last() {
        s = rest;
    }
    match memchr::memrchr(b'\r', s) {
        Some(i) => &s[i + 1..],
        None => s,
    }
}

/// Strips logger prefixes: `[01/18/2025-01:01:42] [TRT-LLM] [I] `, `[TensorRT-LLM][INFO] `,
/// `[TRT] [W] `, `[RANK 3]`, mpirun's `[1,0]<stdout>:`, an ISO timestamp, and the spaces after
/// them. Report tags such as `[Latency]` or `[TPOT]` are not logger tags and stay.
pub(crate) fn strip_prefixes(mut s: &[u8]) -> &[u8] {
    // A byte-order mark (logs saved by Windows editors) is not text.
    if let Some(rest) = s.strip_prefix(b"\xEF\xBB\xBF") {
        s = rest;
    }
    loop {
        s = s.trim_ascii_start();
        match s.first() {
            Some(b'[') => {
                let Some(end) = memchr::memchr(b']', &s[..s.len().min(48)]) else {
                    return s;
                };
                if !is_logger_tag(&s[1..end]) {
                    return s;
                }
                s = &s[end + 1..];
                for tag in [&b"<stdout>:"[..], b"<stderr>:"] {
                    if let Some(rest) = s.strip_prefix(tag) {
                        s = rest;
                    }
                }
            }
            Some(b'0'..=b'9') => match iso_timestamp_len(s) {
                Some(n) => s = &s[n..],
                None => return s,
            },
            _ => return s,
        }
    }
}

fn is_logger_tag(tag: &[u8]) -> bool {
    if tag.is_empty() {
        return false;
    }
    // Timestamps (`01/18/2025-01:01:42`) and mpirun ranks (`1,0`).
    if tag.iter().any(u8::is_ascii_digit)
        && tag
            .iter()
            .all(|c| c.is_ascii_digit() || b"/:-.,T _".contains(c))
    {
        return true;
    }
    const LEVELS: [&[u8]; 16] = [
        b"I",
        b"W",
        b"E",
        b"V",
        b"D",
        b"F",
        b"INFO",
        b"WARN",
        b"WARNING",
        b"ERROR",
        b"DEBUG",
        b"VERBOSE",
        b"TRACE",
        b"FATAL",
        b"CRITICAL",
        b"NOTICE",
    ];
    if LEVELS.iter().any(|l| l.eq_ignore_ascii_case(tag)) {
        return true;
    }
    if tag.len() > 5
        && tag[..5].eq_ignore_ascii_case(b"RANK ")
        && tag[5..].iter().all(u8::is_ascii_digit)
    {
        return true;
    }
    // Logger names: TRT-LLM, TRT, TensorRT-LLM, `TRT-LLM AUTO-DEPLOY`, AutoDeploy.
    [&b"TRT"[..], b"TENSORRT", b"AUTODEPLOY", b"AUTO-DEPLOY"]
        .iter()
        .any(|n| contains_ignore_case(tag, n))
}

/// `needle` (upper case) occurs in `hay`, ignoring ASCII case; for short tags, no allocation.
fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// `2025-01-18T01:01:42.123Z `, `2025-01-18 01:01:42,123 ` and similar: the length to strip.
fn iso_timestamp_len(s: &[u8]) -> Option<usize> {
    let date = s.get(..10)?;
    let is_date = date.iter().enumerate().all(|(i, c)| match i {
        4 | 7 => *c == b'-',
        _ => c.is_ascii_digit(),
    });
    if !is_date {
        return None;
    }
    let mut n = 10;
    if matches!(s.get(n), Some(b'T' | b' ')) && s.get(n + 1).is_some_and(u8::is_ascii_digit) {
        n += 1;
        while s
            .get(n)
            .is_some_and(|c| c.is_ascii_digit() || b":.,".contains(c))
        {
            n += 1;
        }
        if s.get(n) == Some(&b'Z') {
            n += 1;
        }
    }
    // A bare number (a table row) is not a timestamp: one must be followed by a separator.
    match s.get(n) {
        Some(b' ' | b'\t') => Some(n),
        None => Some(n),
        _ => None,
    }
}

/// `label == want`, ignoring ASCII case and treating any run of whitespace as one space.
/// `label` has no leading or trailing whitespace.
pub(crate) fn label_eq(label: &[u8], want: &str) -> bool {
    let want = want.as_bytes();
    let (mut i, mut j) = (0, 0);
    while i < label.len() && j < want.len() {
        let (a, b) = (label[i], want[j]);
        if a.is_ascii_whitespace() {
            if b != b' ' {
                return false;
            }
            while i < label.len() && label[i].is_ascii_whitespace() {
                i += 1;
            }
            j += 1;
            continue;
        }
        if !a.eq_ignore_ascii_case(&b) {
            return false;
        }
        i += 1;
        j += 1;
    }
    i == label.len() && j == want.len()
}

/// Splits `Label:   value` at the first `:`. Labels never contain a colon; values may (paths).
pub(crate) fn split_label(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = memchr::memchr(b':', msg)?;
    let label = msg[..i].trim_ascii();
    if label.is_empty() {
        return None;
    }
    Some((label, msg[i + 1..].trim_ascii()))
}

/// Why a printed value was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadValue {
    Empty,
    NotANumber,
    NotFinite,
    Negative,
}

impl BadValue {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            BadValue::Empty => "has no value",
            BadValue::NotANumber => "is not a number",
            BadValue::NotFinite => "is not a finite number",
            BadValue::Negative => "is negative",
        }
    }
}

/// Parses a printed metric value, times `10^shift` (exact decimal scaling: `16.406100739`
/// seconds becomes the same f64 as the literal `16406.100739`, not `16406.100739000001`).
/// Only finite, non-negative values pass: a performance metric is never NaN, infinite or
/// negative, and storing one would poison every comparison that follows.
pub(crate) fn parse_value(token: &[u8], shift: i32) -> Result<f64, BadValue> {
    let token = token.trim_ascii();
    if token.is_empty() {
        return Err(BadValue::Empty);
    }
    let text = std::str::from_utf8(token).map_err(|_| BadValue::NotANumber)?;
    let lower = text.to_ascii_lowercase();
    if lower.contains("nan") || lower.contains("inf") {
        return Err(BadValue::NotFinite);
    }
    let plain = text
        .bytes()
        .all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
        && text.bytes().any(|c| c.is_ascii_digit());
    if !plain {
        return Err(BadValue::NotANumber);
    }
    let scaled = if shift == 0 {
        text.to_string()
    } else {
        match text.find(['e', 'E']) {
            Some(i) => {
                let exp: i32 = text[i + 1..].parse().map_err(|_| BadValue::NotANumber)?;
                format!("{}e{}", &text[..i], exp.saturating_add(shift))
            }
            None => format!("{text}e{shift}"),
        }
    };
    let v: f64 = scaled.parse().map_err(|_| BadValue::NotANumber)?;
    if !v.is_finite() {
        return Err(BadValue::NotFinite);
    }
    if v < 0.0 {
        return Err(BadValue::Negative);
    }
    // `-0` is zero; keep the sign out of stored values.
    Ok(v + 0.0)
}

/// The leading number of `s` (digits, one `.`), e.g. `176.709` of `176.709s`.
pub(crate) fn leading_number(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b'.')
        .count();
    &s[..n]
}

/// A short, printable excerpt of a line for warnings.
pub(crate) fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 100;
    let cut = line.len() > MAX;
    let text = String::from_utf8_lossy(&line[..line.len().min(MAX)]);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cut { format!("{text}…") } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            strip_prefixes(b"[01/18/2025-01:01:42] [TRT-LLM] [I] Total Latency (ms): 1"),
            b"Total Latency (ms): 1"
        );
        assert_eq!(
            strip_prefixes(b"[TensorRT-LLM][INFO] [MemUsageChange] Allocated"),
            b"[MemUsageChange] Allocated"
        );
        assert_eq!(strip_prefixes(b"[TPOT] P50 : 1"), b"[TPOT] P50 : 1");
        assert_eq!(strip_prefixes(b"[1,0]<stdout>:[TRT] [W] x"), b"x");
        assert_eq!(strip_prefixes(b"2025-01-18T01:01:42.5Z x"), b"x");
        assert_eq!(strip_prefixes(b"128.0000  128"), b"128.0000  128");
        assert_eq!(strip_prefixes(b"\xEF\xBB\xBF= STATISTICS"), b"= STATISTICS");
    }

    #[test]
    fn values() {
        assert_eq!(parse_value(b"16.406100739", 3), Ok(16406.100739));
        assert_eq!(parse_value(b"1.5e2", 3), Ok(150000.0));
        assert_eq!(parse_value(b"nan", 0), Err(BadValue::NotFinite));
        assert_eq!(parse_value(b"-1", 0), Err(BadValue::Negative));
        assert_eq!(parse_value(b"1e999", 0), Err(BadValue::NotFinite));
        assert_eq!(parse_value(b"None", 0), Err(BadValue::NotANumber));
        assert!(label_eq(b"Total  Latency\t(ms)", "total latency (ms)"));
        assert!(!label_eq(b"Total Latency", "Total Latency (ms)"));
    }
}
