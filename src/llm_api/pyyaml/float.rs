//! Python's `repr(float)` as PyYAML's float representer writes it.
//!
//! PyYAML writes `repr(x).lower()` and, where repr chose exponent form without a decimal point
//! (`1e-05`), inserts `.0` before the `e` so the text still resolves as a YAML 1.1 float
//! (`1.0e-05`). Python's repr is the shortest digit string that round-trips, like Rust's
//! `{:e}`; only the layout (where the point goes, when to switch to exponent form) differs.

/// The text PyYAML writes for a finite float. serde_json cannot hold NaN or infinities, so the
/// `.nan` / `.inf` branches of PyYAML are not needed here.
pub fn pyyaml_float(x: f64) -> String {
    let repr = python_repr(x);
    if !repr.contains('.') && repr.contains('e') {
        repr.replacen('e', ".0e", 1)
    } else {
        repr
    }
}

/// `repr(x)` for a finite float (CPython's 'r' format with the `.0` suffix for integral values).
pub fn python_repr(x: f64) -> String {
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0.0");
    }
    // `{:e}` finds how many digits the shortest round-tripping form needs. Where two strings of
    // that length round-trip equally well (x exactly half-way between them), Rust's shortest
    // mode rounds the last digit half-up but CPython half-to-even; the exact mode with that
    // precision rounds half-to-even too, and the nearest string of the shortest length always
    // round-trips, so take the digits from there.
    let shortest = format!("{:e}", x.abs());
    let digit_count = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.chars().filter(char::is_ascii_digit).count());
    let sci = format!("{:.*e}", digit_count.saturating_sub(1), x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    // CPython switches to exponent form when the decimal point would sit more than 4 places
    // left of the first digit or more than 16 places right of it.
    let point = exponent + 1;
    let body = if !(-4 < point && point <= 16) {
        let (head, tail) = digits.split_at(1);
        let frac = if tail.is_empty() {
            String::new()
        } else {
            format!(".{tail}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{head}{frac}e{exp_sign}{:02}", exponent.unsigned_abs())
    } else if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let point = point as usize;
        if point >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_repr() {
        // Expected values are what CPython 3.11 prints for repr().
        let cases: &[(f64, &str)] = &[
            (0.9, "0.9"),
            (0.8, "0.8"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.2345678901234567e17, "1.2345678901234566e+17"),
            (0.1 + 0.2, "0.30000000000000004"),
            // Exactly half-way between two 17-digit strings: CPython keeps the even digit.
            (-189823523872902.12, "-189823523872902.12"),
            (-2.5, "-2.5"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (x, want) in cases {
            assert_eq!(python_repr(*x), *want, "repr({x:e})");
        }
    }

    proptest::proptest! {
        /// Every finite float comes back exactly from its text, and the text is one PyYAML's
        /// resolver reads as a float (so it is written plain, never quoted).
        #[test]
        fn round_trips_and_resolves_as_float(bits in proptest::prelude::any::<u64>()) {
            let x = f64::from_bits(bits);
            proptest::prop_assume!(x.is_finite());
            let text = pyyaml_float(x);
            proptest::prop_assert_eq!(text.parse::<f64>().ok().map(f64::to_bits), Some(x.to_bits()));
            proptest::prop_assert!(!crate::llm_api::pyyaml::plain_resolves_to_str(&text), "{}", text);
        }
    }

    #[test]
    fn pyyaml_adds_point_before_exponent() {
        assert_eq!(pyyaml_float(0.00001), "1.0e-05");
        assert_eq!(pyyaml_float(1e16), "1.0e+16");
        assert_eq!(pyyaml_float(1.5e-7), "1.5e-07");
        assert_eq!(pyyaml_float(0.9), "0.9");
    }
}
