//! test-db conditions: `terms` (equality), `ranges` (gt/gte/lt/lte) and `wildcards` (globs),
//! evaluated against a description of the machine.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The machine a list is evaluated for: `gpu`, `chip`, `system_gpu_count`, `gpu_memory` (MiB),
/// `compute_capability`, `supports_fp8`, `stage`, `backend`, `linux_distribution_name`, ...
pub type System = serde_json::Map<String, Value>;

/// Keys upstream's lists use; a condition on another key is probably a typo.
pub const KNOWN_KEYS: [&str; 10] = [
    "gpu",
    "chip",
    "system_gpu_count",
    "gpu_memory",
    "compute_capability",
    "supports_fp8",
    "stage",
    "backend",
    "linux_distribution_name",
    "auto_trigger",
];

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeBounds {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
}

impl RangeBounds {
    pub fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }

    /// True when no number satisfies all bounds.
    pub fn is_empty(&self) -> bool {
        let lo = [self.gt.map(|v| (v, true)), self.gte.map(|v| (v, false))]
            .into_iter()
            .flatten()
            .fold(None, max_bound);
        let hi = [self.lt.map(|v| (v, true)), self.lte.map(|v| (v, false))]
            .into_iter()
            .flatten()
            .fold(None, min_bound);
        match (lo, hi) {
            (Some((l, lx)), Some((h, hx))) => l > h || (l == h && (lx || hx)),
            _ => false,
        }
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (op, v) in [
            (">", self.gt),
            (">=", self.gte),
            ("<", self.lt),
            ("<=", self.lte),
        ] {
            if let Some(v) = v {
                parts.push(format!("{op} {v}"));
            }
        }
        parts.join(" and ")
    }
}

fn max_bound(acc: Option<(f64, bool)>, b: (f64, bool)) -> Option<(f64, bool)> {
    match acc {
        Some(a) if a.0 > b.0 || (a.0 == b.0 && a.1) => Some(a),
        _ => Some(b),
    }
}

fn min_bound(acc: Option<(f64, bool)>, b: (f64, bool)) -> Option<(f64, bool)> {
    match acc {
        Some(a) if a.0 < b.0 || (a.0 == b.0 && a.1) => Some(a),
        _ => Some(b),
    }
}

/// One block's condition. An absent condition always holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Condition {
    pub terms: BTreeMap<String, Value>,
    pub ranges: BTreeMap<String, RangeBounds>,
    /// Each key holds if its value matches any of the globs.
    pub wildcards: BTreeMap<String, Vec<String>>,
}

impl Condition {
    /// Whether the condition holds on `system`; `Err` says which key failed and why.
    pub fn evaluate(&self, system: &System) -> Result<(), String> {
        for (k, want) in &self.terms {
            let got = system
                .get(k)
                .ok_or_else(|| format!("the system description has no `{k}`"))?;
            if !loosely_equal(got, want) {
                return Err(format!("{k} is {got}, not {want}"));
            }
        }
        for (k, range) in &self.ranges {
            let got = system
                .get(k)
                .ok_or_else(|| format!("the system description has no `{k}`"))?;
            let x = as_number(got).ok_or_else(|| format!("{k} is {got}, not a number"))?;
            if !range.contains(x) {
                return Err(format!("{k} is {x}, not {}", range.describe()));
            }
        }
        for (k, globs) in &self.wildcards {
            let got = system
                .get(k)
                .ok_or_else(|| format!("the system description has no `{k}`"))?;
            let text = match got {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !globs.iter().any(|g| glob_match(g, &text)) {
                return Err(format!("{k} `{text}` matches none of {globs:?}"));
            }
        }
        Ok(())
    }

    /// Reasons the condition can never hold, whatever the machine.
    pub fn contradictions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (k, r) in &self.ranges {
            if r.is_empty() {
                out.push(format!("range `{k}` ({}) is empty", r.describe()));
            }
            if let Some(t) = self.terms.get(k) {
                match as_number(t) {
                    Some(x) if !r.contains(x) => out.push(format!(
                        "term `{k}: {t}` is outside its range ({})",
                        r.describe()
                    )),
                    None => out.push(format!(
                        "term `{k}: {t}` is not a number but `{k}` also has a range"
                    )),
                    _ => {}
                }
            }
        }
        for (k, globs) in &self.wildcards {
            if globs.is_empty() {
                out.push(format!("wildcard `{k}` has no pattern"));
            }
            if let Some(Value::String(t)) = self.terms.get(k)
                && !globs.iter().any(|g| glob_match(g, t))
            {
                out.push(format!(
                    "term `{k}: {t}` matches none of its wildcards {globs:?}"
                ));
            }
        }
        out
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.terms
            .keys()
            .chain(self.ranges.keys())
            .chain(self.wildcards.keys())
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// YAML and JSON disagree on spelling (`true` vs `"true"`, `8` vs `8.0`); compare meaning.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        return x == y;
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.trim().to_ascii_lowercase(),
        other => other.to_string().to_ascii_lowercase(),
    };
    text(a) == text(b)
}

/// Case-insensitive glob with `*` and `?`, as test-db uses for GPU and chip names.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((bp, bt)) = backtrack {
            pi = bp + 1;
            ti = bt + 1;
            backtrack = Some((bp, bt + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs() {
        assert!(glob_match("*h100*", "NVIDIA H100 80GB HBM3"));
        assert!(glob_match("gb*", "GB200"));
        assert!(!glob_match("gb*", "B200"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn evaluation_and_contradictions() {
        let mut c = Condition::default();
        c.terms.insert("supports_fp8".into(), json!(true));
        c.ranges.insert(
            "system_gpu_count".into(),
            RangeBounds {
                gte: Some(2.0),
                ..Default::default()
            },
        );
        c.wildcards.insert("gpu".into(), vec!["*h100*".into()]);
        let sys: System = serde_json::from_value(
            json!({"supports_fp8": true, "system_gpu_count": 4, "gpu": "H100_PCIe"}),
        )
        .unwrap();
        assert!(c.evaluate(&sys).is_ok());
        let sys1: System = serde_json::from_value(
            json!({"supports_fp8": true, "system_gpu_count": 1, "gpu": "H100"}),
        )
        .unwrap();
        assert!(c.evaluate(&sys1).unwrap_err().contains("system_gpu_count"));
        assert!(c.contradictions().is_empty());
        c.ranges.insert(
            "gpu_memory".into(),
            RangeBounds {
                gt: Some(80000.0),
                lt: Some(40000.0),
                ..Default::default()
            },
        );
        assert_eq!(c.contradictions().len(), 1);
        let r = RangeBounds {
            gte: Some(2.0),
            lte: Some(2.0),
            ..Default::default()
        };
        assert!(!r.is_empty());
        let r = RangeBounds {
            gt: Some(2.0),
            lte: Some(2.0),
            ..Default::default()
        };
        assert!(r.is_empty());
    }
}
