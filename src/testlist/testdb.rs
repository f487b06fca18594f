//! test-db YAML lists: `version`, then contexts, each a list of
//! `{condition: {terms, ranges, wildcards}, tests: [...]}` blocks. A test is a name (a string,
//! with markers as in a plain list) or perfgate's `{sweep: {...}}` / `{ab: {...}}` test-case
//! form, which becomes its canonical name.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

use super::condition::{Condition, KNOWN_KEYS, RangeBounds};
use super::{Diagnostic, LoadOptions, Source, TestList, parse_line};
use crate::textutil::closest;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Block {
    #[serde(default)]
    condition: Option<Spanned<RawCondition>>,
    /// Test names, or `{sweep: {...}}` / `{ab: {...}}` test-case mappings
    /// ([`crate::config::case_form`]).
    #[serde(default)]
    tests: Vec<Spanned<Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    #[serde(default)]
    terms: BTreeMap<String, Value>,
    #[serde(default)]
    ranges: BTreeMap<String, RangeBounds>,
    #[serde(default)]
    wildcards: BTreeMap<String, Globs>,
}

/// A wildcard value: one glob or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum Globs {
    One(String),
    Many(Vec<String>),
}

/// A top-level value: the `version` string, or a context's blocks. Deserialized by hand (not
/// `untagged`) so the blocks keep their source spans.
enum TopValue {
    Scalar(String),
    Blocks(Vec<Block>),
}

impl<'de> Deserialize<'de> for TopValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a version string or a list of {condition, tests} blocks")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TopValue, E> {
                Ok(TopValue::Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TopValue, E> {
                Ok(TopValue::Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TopValue, E> {
                Ok(TopValue::Scalar(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<TopValue, E> {
                Ok(TopValue::Blocks(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopValue, A::Error> {
                let mut blocks = Vec::new();
                while let Some(b) = seq.next_element::<Block>()? {
                    blocks.push(b);
                }
                Ok(TopValue::Blocks(blocks))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<TopValue, A::Error> {
                Err(de::Error::custom(
                    "expected a list of {condition, tests} blocks, found a mapping",
                ))
            }
        }
        d.deserialize_any(V)
    }
}

pub(crate) fn parse(text: &str, path: &Path, opts: &LoadOptions, list: &mut TestList) {
    let at = |line: u64| Source {
        file: path.to_path_buf(),
        line: line as usize,
    };
    let top: BTreeMap<String, Spanned<TopValue>> = match serde_saphyr::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let line = e.location().map_or(0, |l| l.line());
            list.diagnostics.push(Diagnostic::error(
                at(line),
                format!("not a valid test-db YAML list: {e}"),
            ));
            return;
        }
    };
    for (k, v) in &top {
        if let TopValue::Scalar(s) = &v.value
            && k != "version"
        {
            list.diagnostics.push(Diagnostic::error(
                    at(v.referenced.line()),
                    format!("`{k}: {s}`: expected `version` or a context holding a list of {{condition, tests}} blocks"),
                ));
        }
    }
    let contexts: Vec<&String> = top
        .iter()
        .filter(|(_, v)| matches!(v.value, TopValue::Blocks(_)))
        .map(|(k, _)| k)
        .collect();
    let chosen: Vec<&String> = match &opts.context {
        Some(c)
            if top
                .get(c)
                .is_some_and(|v| matches!(v.value, TopValue::Blocks(_))) =>
        {
            vec![c]
        }
        Some(c) => {
            let near = closest(c, contexts.iter().map(|s| s.as_str()), 1);
            let hint = near
                .first()
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            list.diagnostics.push(Diagnostic::error(
                at(0),
                format!(
                    "no context `{c}` in this list (it has: {}){hint}",
                    join(&contexts)
                ),
            ));
            return;
        }
        // Without a system (lint), read them all; to run, one context must be chosen.
        None if contexts.len() <= 1 || opts.system.is_none() => contexts.clone(),
        None => {
            list.diagnostics.push(Diagnostic::error(
                at(0),
                format!(
                    "the list has several contexts ({}); choose one with --context",
                    join(&contexts)
                ),
            ));
            return;
        }
    };
    for ctx in chosen {
        let Some(Spanned {
            value: TopValue::Blocks(blocks),
            ..
        }) = top.get(ctx)
        else {
            continue;
        };
        for block in blocks {
            let (condition, cond_line) = match &block.condition {
                Some(c) => (to_condition(&c.value), c.referenced.line()),
                None => (Condition::default(), 0),
            };
            let cond_src = at(cond_line);
            for problem in condition.contradictions() {
                list.diagnostics.push(Diagnostic::error(
                    cond_src.clone(),
                    format!("this condition can never hold: {problem}"),
                ));
            }
            for key in condition.keys() {
                if !KNOWN_KEYS.contains(&key.as_str()) {
                    let near = closest(key, KNOWN_KEYS, 1);
                    let hint = near
                        .first()
                        .map(|n| format!("; did you mean `{n}`?"))
                        .unwrap_or_default();
                    list.diagnostics.push(Diagnostic::warning(
                        cond_src.clone(),
                        format!("condition key `{key}` is not one test-db systems describe{hint}"),
                    ));
                }
            }
            let conditional = condition.keys().next().is_some();
            if conditional && opts.system.is_none() && opts.require_system {
                let keys: Vec<&str> = condition.keys().map(String::as_str).collect();
                list.diagnostics.push(Diagnostic::error(
                    cond_src.clone(),
                    format!(
                        "this block runs only where {} hold, and no system is described to \
                         check them against (no NVIDIA GPU was detected): pass --system FILE.json \
                         or --system-set KEY=VALUE (e.g. --system-set gpu=H100_PCIe \
                         --system-set system_gpu_count=1)",
                        keys.join(", ")
                    ),
                ));
                continue;
            }
            let holds = match &opts.system {
                Some(sys) => condition.evaluate(sys).is_ok(),
                None => true,
            };
            list.conditions.push((cond_src, condition));
            if !holds {
                continue;
            }
            for t in &block.tests {
                let source = at(t.referenced.line());
                let text = match &t.value {
                    Value::String(s) => s.clone(),
                    Value::Object(_) => match crate::config::case_form(&t.value) {
                        Ok(name) => name,
                        Err(msg) => {
                            list.diagnostics.push(Diagnostic::error(source, msg));
                            continue;
                        }
                    },
                    other => {
                        list.diagnostics.push(Diagnostic::error(
                            source,
                            format!(
                                "expected a test name or a `sweep:` / `ab:` test-case mapping, \
                                 found `{other}`"
                            ),
                        ));
                        continue;
                    }
                };
                match parse_line(&text, &source) {
                    Ok(Some(e)) => list.entries.push(e),
                    Ok(None) => {}
                    Err(msg) => list.diagnostics.push(Diagnostic::error(source, msg)),
                }
            }
        }
    }
}

fn to_condition(raw: &RawCondition) -> Condition {
    Condition {
        terms: raw.terms.clone(),
        ranges: raw.ranges.clone(),
        wildcards: raw
            .wildcards
            .iter()
            .map(|(k, g)| {
                let v = match g {
                    Globs::One(s) => vec![s.clone()],
                    Globs::Many(v) => v.clone(),
                };
                (k.clone(), v)
            })
            .collect(),
    }
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}
