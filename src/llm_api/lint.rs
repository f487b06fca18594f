//! `Rules::lint`: what makes the effective YAML hard to predict (upstream gap 14), checked
//! against a set of canonical labels before any GPU time is spent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::engine::{contains_all, first_match};
use super::rules::Rules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RuleWarningKind {
    /// A pattern can never match a canonical, lowercased label.
    UnreachablePattern,
    /// A pattern matches labels of other models (it is a substring of a longer model name).
    SubstringCollision,
    /// For some label, a later rule overwrites a value an earlier rule set.
    Override,
    /// No label matches any pattern of the entry.
    UnmatchedRule,
    /// One pattern of an entry that other patterns do match matches no label.
    UnmatchedPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleWarning {
    pub kind: RuleWarningKind,
    /// The rule, as `pattern #N [...] at file:line`.
    pub rule: String,
    pub message: String,
}

impl fmt::Display for RuleWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)
    }
}

/// A label's model name: everything before the first '-'.
fn model_of(text: &str) -> &str {
    text.split('-').next().unwrap_or(text)
}

static TP_THEN_GPUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|-)tp:(\d+)-(?:.*-)?gpus:(\d+)(?:-|$)").expect("built-in pattern")
});

/// Why a pattern cannot match a canonical label, if it cannot.
fn unreachable_reason(pattern: &str) -> Option<String> {
    if pattern.chars().any(char::is_uppercase) {
        return Some("has uppercase letters, but labels are lowercased before matching".into());
    }
    if let Some(caps) = TP_THEN_GPUS.captures(pattern)
        && caps[1] == caps[2]
    {
        return Some(format!(
            "has tp:{0} with gpus:{0}, but canonical labels drop tp:N when it equals gpus:N",
            &caps[1]
        ));
    }
    if pattern.contains("-gpus:1-") {
        return Some("has gpus:1, which canonical labels drop".into());
    }
    None
}

/// Leaf (path, value) pairs a config sets when merged: mappings recurse, all else is a leaf.
fn leaves(map: &Map<String, Value>, path: &mut Vec<String>, out: &mut Vec<(String, Value)>) {
    for (key, value) in map {
        path.push(key.clone());
        match value {
            Value::Object(child) if !child.is_empty() => leaves(child, path, out),
            _ => out.push((path.join("."), value.clone())),
        }
        path.pop();
    }
}

struct Override {
    key: String,
    earlier_value: Value,
    later_value: Value,
    example: String,
    count: usize,
}

impl Rules {
    /// Warnings about the rules, judged against `labels` (canonical test labels): patterns that
    /// cannot match, substring collisions, silent overrides between rules, and rules or patterns
    /// that match none of the labels.
    pub fn lint(&self, labels: &[String]) -> Vec<RuleWarning> {
        let mut warnings = Vec::new();
        self.lint_unreachable(&mut warnings);

        let lowered: Vec<String> = labels.iter().map(|l| l.to_lowercase()).collect();
        // (entry index, pattern index) -> other models it matched.
        let mut collisions: BTreeMap<(usize, usize), BTreeSet<String>> = BTreeMap::new();
        let mut entry_hits = vec![0usize; self.patterns.len()];
        let mut pattern_hits: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut overrides: BTreeMap<(String, String, String), Override> = BTreeMap::new();

        for (label, lower) in labels.iter().zip(&lowered) {
            let mut set_by: BTreeMap<String, (String, Value)> = BTreeMap::new();
            for (e, rule) in self.patterns.iter().enumerate() {
                for (p, pattern) in rule.patterns.iter().enumerate() {
                    if !lower.contains(pattern.as_str()) {
                        continue;
                    }
                    pattern_hits.insert((e, p));
                    if model_of(lower) != model_of(pattern) {
                        collisions
                            .entry((e, p))
                            .or_default()
                            .insert(model_of(lower).to_string());
                    }
                }
                let Some(pattern) = first_match(&rule.patterns, lower) else {
                    continue;
                };
                entry_hits[e] += 1;
                let name = self.pattern_rule_name(rule, pattern);
                let mut set = Vec::new();
                leaves(&rule.config, &mut Vec::new(), &mut set);
                for (key, value) in set {
                    if let Some((earlier, old)) = set_by.get(&key)
                        && *old != value
                    {
                        let slot = (earlier.clone(), name.clone(), key.clone());
                        overrides
                            .entry(slot)
                            .and_modify(|o| o.count += 1)
                            .or_insert_with(|| Override {
                                key: key.clone(),
                                earlier_value: old.clone(),
                                later_value: value.clone(),
                                example: label.clone(),
                                count: 1,
                            });
                    }
                    set_by.insert(key, (name.clone(), value));
                }
            }
            self.lint_label_kv_dtype(label, &set_by, &mut overrides);
        }

        for ((e, p), models) in collisions {
            let rule = &self.patterns[e];
            let pattern = &rule.patterns[p];
            let listed: Vec<&str> = models.iter().map(String::as_str).collect();
            warnings.push(RuleWarning {
                kind: RuleWarningKind::SubstringCollision,
                rule: self.pattern_rule_name(rule, pattern),
                message: format!(
                    "substring match also hits other models: {} (end the pattern with '-' to match one model only)",
                    listed.join(", ")
                ),
            });
        }
        for ((earlier, later, _), o) in overrides {
            warnings.push(RuleWarning {
                kind: RuleWarningKind::Override,
                rule: later,
                message: format!(
                    "overrides {} = {} set by {earlier} with {} for {} label(s), e.g. {}",
                    o.key, o.earlier_value, o.later_value, o.count, o.example
                ),
            });
        }
        if !labels.is_empty() {
            self.lint_unmatched(&lowered, &entry_hits, &pattern_hits, &mut warnings);
        }
        warnings
    }

    fn lint_unreachable(&self, warnings: &mut Vec<RuleWarning>) {
        for rule in &self.patterns {
            for pattern in &rule.patterns {
                if let Some(reason) = unreachable_reason(pattern) {
                    warnings.push(RuleWarning {
                        kind: RuleWarningKind::UnreachablePattern,
                        rule: self.pattern_rule_name(rule, pattern),
                        message: format!("can never match: the pattern {reason}"),
                    });
                }
            }
        }
        for rule in &self.gpu_rules {
            for pattern in &rule.patterns {
                if let Some(reason) = unreachable_reason(pattern) {
                    warnings.push(RuleWarning {
                        kind: RuleWarningKind::UnreachablePattern,
                        rule: format!(
                            "gpu rule #{} [{pattern}] at {}",
                            rule.number,
                            self.at(rule.line)
                        ),
                        message: format!("can never match: the pattern {reason}"),
                    });
                }
            }
        }
    }

    /// The label's `kv_cache_dtype:` is applied last and silently beats a pattern's dtype.
    fn lint_label_kv_dtype(
        &self,
        label: &str,
        set_by: &BTreeMap<String, (String, Value)>,
        overrides: &mut BTreeMap<(String, String, String), Override>,
    ) {
        let kv = &self.kv_cache_dtype;
        let Some(dtype) = super::label::field_value(label, &kv.label_field) else {
            return;
        };
        let key = kv.move_to.join(".");
        let Some((earlier, old)) = set_by.get(&key) else {
            return;
        };
        let new = Value::String(dtype.to_string());
        if *old == new {
            return;
        }
        let later = format!(
            "{}:{dtype} from the label (kv_cache_dtype rule at {})",
            kv.label_field,
            self.at(kv.line)
        );
        overrides
            .entry((earlier.clone(), later, key.clone()))
            .and_modify(|o| o.count += 1)
            .or_insert_with(|| Override {
                key,
                earlier_value: old.clone(),
                later_value: new,
                example: label.to_string(),
                count: 1,
            });
    }

    fn lint_unmatched(
        &self,
        lowered: &[String],
        entry_hits: &[usize],
        pattern_hits: &BTreeSet<(usize, usize)>,
        warnings: &mut Vec<RuleWarning>,
    ) {
        for (e, rule) in self.patterns.iter().enumerate() {
            if entry_hits[e] == 0 {
                warnings.push(RuleWarning {
                    kind: RuleWarningKind::UnmatchedRule,
                    rule: format!("pattern #{} at {}", rule.number, self.at(rule.line)),
                    message: format!("matches none of the {} labels", lowered.len()),
                });
                continue;
            }
            for (p, pattern) in rule.patterns.iter().enumerate() {
                if !pattern_hits.contains(&(e, p)) {
                    warnings.push(RuleWarning {
                        kind: RuleWarningKind::UnmatchedPattern,
                        rule: self.pattern_rule_name(rule, pattern),
                        message: format!(
                            "this pattern matches none of the {} labels",
                            lowered.len()
                        ),
                    });
                }
            }
        }
        for rule in &self.gpu_rules {
            let hit = lowered.iter().any(|lower| {
                contains_all(lower, &rule.when_label_contains)
                    && first_match(&rule.patterns, lower).is_some()
            });
            if !hit {
                warnings.push(RuleWarning {
                    kind: RuleWarningKind::UnmatchedRule,
                    rule: format!("gpu rule #{} at {}", rule.number, self.at(rule.line)),
                    message: format!("matches none of the {} labels (on any GPU)", lowered.len()),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unreachable_reason;

    #[test]
    fn unreachable_patterns() {
        assert!(unreachable_reason("deepseek_r1").is_none());
        assert!(unreachable_reason("DeepSeek").is_some());
        assert!(unreachable_reason("m-bench-pytorch-float16-ep:4-tp:8-gpus:8").is_some());
        assert!(unreachable_reason("m-bench-pytorch-float16-tp:4-gpus:8").is_none());
        assert!(unreachable_reason("m-bench-pytorch-float16-gpus:1-x").is_some());
        assert!(unreachable_reason("m-bench-pytorch-float16-gpus:16").is_none());
    }
}
