//! `Rules::config_for`: upstream's `get_model_yaml_config` run over the rules, recording which
//! rule set every key.
//!
//! The result is built the way Python builds its dict, insertion order included: a key keeps
//! its place when overwritten, new keys go last, and the staged kv dtype key is removed without
//! reordering the rest. The written YAML sorts keys anyway; keeping the order makes the value
//! equal to upstream's dict as a sequence, not only as a set.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::label::{self, Backend};
use super::placeholders::{self, Vars};
use super::pyyaml::to_pyyaml;
use super::rules::{GpuRule, PatternRule, Rules};

/// What a config depends on besides the label.
#[derive(Debug, Clone)]
pub struct RuleContext {
    /// SM version of the GPU (90 for H100/H200, 100 for B200). `None` = unknown, which upstream
    /// treats as 0.
    pub sm: Option<u32>,
    /// Per-adapter LoRA directories; `None` gives `lora_dir: []`, as upstream writes before the
    /// adapters are linked.
    pub lora_dirs: Option<Vec<String>>,
    /// Replaces `${LLM_MODELS_ROOT}`.
    pub models_root: String,
    pub backend: Backend,
}

impl RuleContext {
    /// A context for `label` with the backend read from it, no GPU known and no LoRA dirs.
    pub fn for_label(label: &str, models_root: impl Into<String>) -> RuleContext {
        RuleContext {
            sm: None,
            lora_dirs: None,
            models_root: models_root.into(),
            backend: Backend::from_label(label),
        }
    }
}

/// The config for one label, with where each key came from.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveConfig {
    /// Upstream's dict, keys in upstream's insertion order.
    pub value: Value,
    /// (dotted key path, rule) for every leaf (scalar, list or empty mapping), in the order the
    /// YAML lists them.
    pub provenance: Vec<(String, String)>,
    /// The rules that applied, in the order they applied.
    pub applied: Vec<String>,
    /// Where this label makes upstream fail (it would raise) and what we did instead.
    pub notes: Vec<String>,
}

impl EffectiveConfig {
    /// The exact text upstream writes: `yaml.dump(config, default_flow_style=False)`.
    pub fn to_pyyaml(&self) -> String {
        to_pyyaml(&self.value)
    }
}

impl Rules {
    /// The extra LLM API config upstream's `get_model_yaml_config(label, lora_dirs)` returns for
    /// a CANONICAL label (or, for `_autodeploy`, the fixed file upstream writes instead).
    pub fn config_for(&self, label: &str, ctx: &RuleContext) -> EffectiveConfig {
        let mut b = Builder::default();
        let no_lora: &[String] = &[];
        let mut vars = Vars {
            models_root: &ctx.models_root,
            lora_dirs: ctx.lora_dirs.as_deref().unwrap_or(no_lora),
            lora_count: 1,
        };

        if ctx.backend == Backend::AutoDeploy {
            let rule = format!("autodeploy at {}", self.at(self.autodeploy.line));
            b.merge(
                &placeholders::fill_map(&self.autodeploy.config, &vars),
                &rule,
            );
            return b.finish();
        }
        if ctx.backend == Backend::Pytorch && !contains(label, "pytorch") {
            b.notes.push(format!(
                "backend is pytorch but the label has no 'pytorch': the rules follow the label, as upstream does ({label})"
            ));
        }

        let base = &self.base;
        if contains_all(label, &base.when_label_contains) {
            let rule = format!("base at {}", self.at(base.line));
            b.merge(&placeholders::fill_map(&base.config, &vars), &rule);
        } else {
            let rule = format!("base (otherwise) at {}", self.at(base.line));
            b.merge(&placeholders::fill_map(&base.otherwise, &vars), &rule);
        }

        let kv = &self.kv_cache_dtype;
        if contains(label, &kv.label_field) {
            match label::field_value(label, &kv.label_field) {
                Some(dtype) => {
                    let rule = format!(
                        "{}:{dtype} from the label (kv_cache_dtype rule at {})",
                        kv.label_field,
                        self.at(kv.line)
                    );
                    let mut staged = Map::new();
                    staged.insert(kv.label_field.clone(), Value::String(dtype.to_string()));
                    b.merge(&staged, &rule);
                }
                None => b.notes.push(format!(
                    "label has '{0}' but no '{0}:' (upstream raises IndexError); ignored",
                    kv.label_field
                )),
            }
        }

        let lowered = label.to_lowercase();
        for rule in &self.patterns {
            if let Some(pattern) = first_match(&rule.patterns, &lowered) {
                let name = self.pattern_rule_name(rule, pattern);
                b.merge(&placeholders::fill_map(&rule.config, &vars), &name);
            }
        }

        let sm = ctx.sm.unwrap_or(0);
        for rule in &self.gpu_rules {
            if let Some(pattern) = gpu_rule_match(rule, label, &lowered, sm) {
                let name = self.gpu_rule_name(rule, pattern, sm);
                b.fill_defaults(&placeholders::fill_map(&rule.defaults, &vars), &name);
            }
        }

        let lora = &self.lora;
        if contains_all(label, &lora.when_label_contains) {
            vars.lora_count = match label::segment_count(label, &lora.count_label_field) {
                Ok(n) => n,
                Err(text) => {
                    b.notes.push(format!(
                        "'{}:{text}' is not an integer (upstream raises ValueError); using 1",
                        lora.count_label_field
                    ));
                    1
                }
            };
            let rule = format!("lora at {}", self.at(lora.line));
            b.replace_top_level(&placeholders::fill_map(&lora.set, &vars), &rule);
        }

        b.move_top_level(&kv.label_field, &kv.move_to);
        b.finish()
    }

    /// The rules that apply to `label`, in order (the `applied` list of [`Rules::config_for`]).
    pub fn matching_rules(&self, label: &str, ctx: &RuleContext) -> Vec<String> {
        self.config_for(label, ctx).applied
    }

    pub(crate) fn pattern_rule_name(&self, rule: &PatternRule, pattern: &str) -> String {
        format!(
            "pattern #{} [{pattern}] at {}",
            rule.number,
            self.at(rule.line)
        )
    }

    fn gpu_rule_name(&self, rule: &GpuRule, pattern: &str, sm: u32) -> String {
        format!(
            "gpu rule #{} [{pattern}] for sm {sm} (min_sm {}) at {}",
            rule.number,
            rule.min_sm,
            self.at(rule.line)
        )
    }
}

pub(crate) fn contains_all(label: &str, needles: &[String]) -> bool {
    needles.iter().all(|n| contains(label, n))
}

/// `haystack.contains(needle)` for a short label: the rules test dozens of short patterns
/// against every label, and both `str::contains` and `memmem::find` spend more setting up
/// their searchers than searching a hundred bytes (the largest cost of planning a
/// 10,000-name list). Candidates are the positions of the needle's first byte.
fn contains(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some((&first, rest)) = n.split_first() else {
        return true;
    };
    memchr::memchr_iter(first, h).any(|i| h[i + 1..].starts_with(rest))
}

/// Upstream tries an entry's patterns in order and stops at the first substring hit.
pub(crate) fn first_match<'a>(patterns: &'a [String], lowered_label: &str) -> Option<&'a str> {
    patterns
        .iter()
        .map(String::as_str)
        .find(|p| contains(lowered_label, p))
}

fn gpu_rule_match<'a>(rule: &'a GpuRule, label: &str, lowered: &str, sm: u32) -> Option<&'a str> {
    let in_range = sm >= rule.min_sm && rule.max_sm.is_none_or(|max| sm <= max);
    if !in_range || !contains_all(label, &rule.when_label_contains) {
        return None;
    }
    first_match(&rule.patterns, lowered)
}

type Path = Vec<String>;

/// The dict under construction plus, per leaf path, the rule that last wrote it.
#[derive(Default)]
struct Builder {
    value: Map<String, Value>,
    origin: BTreeMap<Path, String>,
    applied: Vec<String>,
    notes: Vec<String>,
}

impl Builder {
    /// Upstream's `recursive_update`: mappings merge key by key, everything else replaces.
    fn merge(&mut self, src: &Map<String, Value>, rule: &str) {
        self.applied.push(rule.to_string());
        let mut path = Vec::new();
        merge_into(&mut self.value, src, &mut path, rule, &mut self.origin);
    }

    /// Python's nested `setdefault`: only keys still missing are written.
    fn fill_defaults(&mut self, src: &Map<String, Value>, rule: &str) {
        self.applied.push(rule.to_string());
        let mut path = Vec::new();
        let (origin, notes) = (&mut self.origin, &mut self.notes);
        fill_defaults_into(&mut self.value, src, &mut path, rule, origin, notes);
    }

    /// `dict.update`: each top-level key is replaced as a whole.
    fn replace_top_level(&mut self, src: &Map<String, Value>, rule: &str) {
        self.applied.push(rule.to_string());
        for (key, value) in src {
            self.value.insert(key.clone(), value.clone());
            record(&mut self.origin, vec![key.clone()], value, rule);
        }
    }

    /// Pops the top-level `key` (if present) and stores it at `to`, creating mappings on the
    /// way; its provenance moves with it.
    fn move_top_level(&mut self, key: &str, to: &[String]) {
        let Some(moved) = self.value.shift_remove(key) else {
            return;
        };
        let from = vec![key.to_string()];
        let carried: Vec<(Path, String)> = take_subtree(&mut self.origin, &from);
        let Some((last, parents)) = to.split_last() else {
            return;
        };
        let mut target = &mut self.value;
        let mut path = Vec::new();
        for parent in parents {
            path.push(parent.clone());
            let slot = target
                .entry(parent.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                // Upstream would fail assigning into a non-dict; we make room instead.
                self.notes.push(format!(
                    "{} was {slot}, not a mapping (upstream raises TypeError); replaced to hold {}",
                    path.join("."),
                    to.join(".")
                ));
                *slot = Value::Object(Map::new());
            }
            target = match slot {
                Value::Object(map) => map,
                _ => unreachable!("made a mapping just above"),
            };
        }
        target.insert(last.clone(), moved);
        let dest: Path = to.to_vec();
        take_subtree(&mut self.origin, &dest);
        for (path, rule) in carried {
            let mut new_path = dest.clone();
            new_path.extend(path.into_iter().skip(from.len()));
            self.origin.insert(new_path, rule);
        }
    }

    fn finish(self) -> EffectiveConfig {
        let mut provenance = Vec::new();
        let mut path = Vec::new();
        list_leaves(&self.value, &mut path, &self.origin, &mut provenance);
        EffectiveConfig {
            value: Value::Object(self.value),
            provenance,
            applied: self.applied,
            notes: self.notes,
        }
    }
}

fn merge_into(
    target: &mut Map<String, Value>,
    src: &Map<String, Value>,
    path: &mut Path,
    rule: &str,
    origin: &mut BTreeMap<Path, String>,
) {
    for (key, value) in src {
        path.push(key.clone());
        match (target.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(incoming)) => {
                merge_into(existing, incoming, path, rule, origin);
            }
            _ => {
                target.insert(key.clone(), value.clone());
                record(origin, path.clone(), value, rule);
            }
        }
        path.pop();
    }
}

fn fill_defaults_into(
    target: &mut Map<String, Value>,
    src: &Map<String, Value>,
    path: &mut Path,
    rule: &str,
    origin: &mut BTreeMap<Path, String>,
    notes: &mut Vec<String>,
) {
    for (key, value) in src {
        path.push(key.clone());
        match (target.get_mut(key), value) {
            (None, _) => {
                target.insert(key.clone(), value.clone());
                record(origin, path.clone(), value, rule);
            }
            (Some(Value::Object(existing)), Value::Object(defaults)) => {
                fill_defaults_into(existing, defaults, path, rule, origin, notes);
            }
            (Some(existing), Value::Object(_)) => notes.push(format!(
                "{} is {existing}, not a mapping, so {rule} cannot fill it (upstream raises AttributeError)",
                path.join(".")
            )),
            (Some(_), _) => {}
        }
        path.pop();
    }
}

/// Records `rule` for every leaf of `value` placed at `path`, dropping what was recorded under
/// `path` before.
fn record(origin: &mut BTreeMap<Path, String>, path: Path, value: &Value, rule: &str) {
    take_subtree(origin, &path);
    let mut path = path;
    record_leaves(origin, &mut path, value, rule);
}

fn record_leaves(origin: &mut BTreeMap<Path, String>, path: &mut Path, value: &Value, rule: &str) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                path.push(key.clone());
                record_leaves(origin, path, child, rule);
                path.pop();
            }
        }
        _ => {
            origin.insert(path.clone(), rule.to_string());
        }
    }
}

/// Removes and returns the entries at `path` and below.
fn take_subtree(origin: &mut BTreeMap<Path, String>, path: &Path) -> Vec<(Path, String)> {
    let keys: Vec<Path> = origin
        .range(path.clone()..)
        .take_while(|(k, _)| k.starts_with(path))
        .map(|(k, _)| k.clone())
        .collect();
    keys.into_iter()
        .filter_map(|k| origin.remove(&k).map(|rule| (k, rule)))
        .collect()
}

/// Leaves in the order the YAML writes them (keys sorted).
fn list_leaves(
    map: &Map<String, Value>,
    path: &mut Path,
    origin: &BTreeMap<Path, String>,
    out: &mut Vec<(String, String)>,
) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        path.push(key.clone());
        match &map[key] {
            Value::Object(child) if !child.is_empty() => list_leaves(child, path, origin, out),
            _ => {
                let rule = origin
                    .get(path)
                    .cloned()
                    .unwrap_or_else(|| "unknown".to_string());
                out.push((path.join("."), rule));
            }
        }
        path.pop();
    }
}
