//! Markers after a test id: `SKIP (reason)`, `XFAIL (reason)`, `UNSTABLE (reason)`,
//! `TIMEOUT (N)` / `TIMEOUT(N)` in minutes, and `ISOLATION`.

/// The markers of one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Markers {
    pub skip: Option<String>,
    pub xfail: Option<String>,
    pub unstable: Option<String>,
    pub timeout_minutes: Option<u32>,
    pub isolation: bool,
    /// `ARGS (--flag=value ...)`: flags appended to this test's benchmark commands (a perfgate
    /// extension; upstream has no such marker).
    pub bench_args: Vec<String>,
}

/// Drops a `#` comment. A `#` inside parentheses belongs to a marker's reason (bug links such
/// as `nvbugs/123#4`); upstream cuts those reasons short.
pub(crate) fn strip_comment(line: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in line.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '#' if depth == 0 => return &line[..i],
            _ => {}
        }
    }
    line
}

impl Markers {
    /// Parses the text after the test id.
    pub(crate) fn parse(text: &str) -> Result<Markers, String> {
        let mut m = Markers::default();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let word_end = rest
                .find(|c: char| c.is_whitespace() || c == '(')
                .unwrap_or(rest.len());
            let word = &rest[..word_end];
            rest = rest[word_end..].trim_start();
            let arg = if rest.starts_with('(') {
                let close = matching_paren(rest)
                    .ok_or_else(|| format!("`{word}`: the `(` is never closed"))?;
                let arg = rest[1..close].trim().to_string();
                rest = rest[close + 1..].trim_start();
                Some(arg)
            } else {
                None
            };
            let reason = || arg.clone().unwrap_or_default();
            match word {
                "SKIP" => m.skip = Some(reason()),
                "XFAIL" => m.xfail = Some(reason()),
                "UNSTABLE" => m.unstable = Some(reason()),
                "ISOLATION" if arg.is_none() => m.isolation = true,
                "ARGS" => m.bench_args = reason().split_whitespace().map(str::to_string).collect(),
                "TIMEOUT" => {
                    let minutes = arg
                        .as_deref()
                        .and_then(|a| a.parse::<u32>().ok())
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("`TIMEOUT` needs a whole number of minutes ≥ 1 in parentheses, e.g. `TIMEOUT (90)`, not `{}`", arg.clone().unwrap_or_default()))?;
                    m.timeout_minutes = Some(minutes);
                }
                _ => {
                    return Err(format!(
                        "unexpected `{word}` after the test id; expected a marker: SKIP (reason), XFAIL (reason), UNSTABLE (reason), TIMEOUT (minutes), ISOLATION or ARGS (flags)"
                    ));
                }
            }
        }
        Ok(m)
    }
}

fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        let m = Markers::parse(" XFAIL (flaky (sometimes)) TIMEOUT(30) ISOLATION").unwrap();
        assert_eq!(m.xfail.as_deref(), Some("flaky (sometimes)"));
        assert_eq!(m.timeout_minutes, Some(30));
        assert!(m.isolation);
        assert!(Markers::parse("TIMEOUT (x)").is_err());
        assert!(Markers::parse("TIMEOUT (0)").is_err());
        assert!(Markers::parse("SKIP (unclosed").is_err());
        assert_eq!(strip_comment("a SKIP (b#1) # c"), "a SKIP (b#1) ");
    }
}
