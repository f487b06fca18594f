//! Python's number formats and trtllm-bench's line layouts, so the double's lines are
//! byte-for-byte what the real tool prints (TABs included).

/// Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from
/// 1e16 (`3.680275266452667e+18`), and always a `.0` on whole numbers.
pub fn py_repr(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Rust's `{:e}` is also shortest round-trip; only the exponent's spelling differs.
        let s = format!("{v:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mant}e{sign}{digits:0>2}");
    }
    let s = format!("{v}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// Python's `%.<prec>E` / `%.<prec>e` (`5.0689E+14`).
pub fn py_exp(v: f64, prec: usize, upper: bool) -> String {
    let s = format!("{v:.prec$e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    let e = if upper { 'E' } else { 'e' };
    format!("{mant}{e}{sign}{digits:0>2}")
}

/// `%.4f`.
pub fn f4(v: f64) -> String {
    format!("{v:.4}")
}

/// C's `%g`-like six significant digits without trailing zeros (`9.05298`), as TensorRT's
/// logger prints build times.
pub fn sig6(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let digits = 6 - 1 - v.abs().log10().floor() as i32;
    let s = format!("{:.*}", digits.max(0) as usize, v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `label` followed by TABs up to column `col` (tab stops every 8), as the ENGINE DETAILS and
/// era-B sections are laid out on a real console: `Model:\t\t\t`, `Engine Directory:\t`.
pub fn tabbed(label: &str, col: usize, value: &str) -> String {
    let mut s = label.to_string();
    let mut at = label.chars().count();
    loop {
        s.push('\t');
        at = (at / 8 + 1) * 8;
        if at >= col {
            break;
        }
    }
    s.push_str(value);
    s
}

/// `label` left-justified to `width` then the value (Python `f"{label:<width}{value}"`); a
/// label as long as the width still gets one space, as upstream's `:<N` labels always end
/// with one.
pub fn padded(label: &str, width: usize, value: &str) -> String {
    let len = label.chars().count();
    let pad = if len < width { width - len } else { 1 };
    format!("{label}{}{value}", " ".repeat(pad))
}

/// The 59-character rule around section titles.
pub const RULE: &str = "===========================================================";

/// `= TITLE` between two rules; `trailing_space` for the ~1.0+ titles (`= PERFORMANCE
/// OVERVIEW `).
pub fn section(lines: &mut Vec<String>, title: &str, trailing_space: bool) {
    lines.push(RULE.into());
    lines.push(if trailing_space {
        format!("= {title} ")
    } else {
        format!("= {title}")
    });
    lines.push(RULE.into());
}

/// A DATASET DETAILS table number: `%9.4f`, or `%9.2e` left-justified from 100000 up.
pub fn table_num(v: f64) -> String {
    if v < 100_000.0 {
        format!("{v:>9.4}")
    } else {
        format!("{:<9}", py_exp(v, 2, false))
    }
}
