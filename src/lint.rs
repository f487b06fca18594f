//! `perfgate lint`: everything that can be checked about test lists without a GPU, reported
//! all at once with file:line.

use std::collections::HashMap;

use crate::collect::CollectOptions;
use crate::llm_api::RuleWarningKind;
use crate::testlist::{Diagnostic, Severity, Source};
use crate::textutil::clip;

pub struct LintReport {
    pub diagnostics: Vec<Diagnostic>,
    pub tests: usize,
}

impl LintReport {
    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn summary(&self) -> String {
        let errors = self.error_count();
        let warnings = self.diagnostics.len() - errors;
        format!(
            "{} test(s) checked: {errors} error(s), {warnings} warning(s)",
            self.tests
        )
    }
}

/// Lints the lists named in `common.test_list`. With a system description, test-db conditions
/// are evaluated; without one, every block is checked.
pub fn lint(common: &CollectOptions) -> anyhow::Result<LintReport> {
    // Perf-sanity configs given directly are checked as configs, the rest as lists.
    let (configs, lists): (Vec<_>, Vec<_>) = common
        .test_lists
        .iter()
        .cloned()
        .partition(|p| sanity_config_kind(p).is_some());
    let mut config_diagnostics = Vec::new();
    for path in &configs {
        let disaggregated = sanity_config_kind(path) == Some(true);
        let file =
            crate::perf_sanity::SanityFile::load(path, disaggregated, &common.plan.serve.llm_root);
        config_diagnostics.extend(file.diagnostics.iter().cloned());
    }
    if lists.is_empty() && !configs.is_empty() {
        return Ok(LintReport {
            diagnostics: config_diagnostics,
            tests: 0,
        });
    }
    let mut common = common.clone();
    common.test_lists = lists;
    let collection = common.collect(&crate::backend::Registry::builtin())?;
    let mut diagnostics = collection.diagnostics;
    diagnostics.extend(config_diagnostics);
    // The perf-sanity configs the listed ids read: every problem at its own file and line.
    for file in collection.configs.sanity.loaded() {
        // A missing file is already the error of the ids naming it.
        if file.path.is_file() {
            diagnostics.extend(file.diagnostics.iter().cloned());
        }
    }
    let mut by_canonical: HashMap<String, Source> = HashMap::new();
    for t in &collection.tests {
        let Ok(name) = &t.name else { continue };
        let src = t.entry.source.clone();
        for reason in t.plan.iter().flat_map(|p| &p.skipped) {
            diagnostics.push(Diagnostic::warning(
                src.clone(),
                format!("`{}`: skipped when run: {reason}", clip(&t.entry.raw)),
            ));
        }
        for reason in t.plan.iter().flat_map(|p| &p.blocked) {
            diagnostics.push(Diagnostic::error(
                src.clone(),
                format!("`{}`: cannot run: {reason}", clip(&t.entry.raw)),
            ));
        }
        let canonical = name.canonical();
        match by_canonical.get(&canonical) {
            Some(first) => diagnostics.push(Diagnostic::warning(
                src.clone(),
                format!("`{}` is the same configuration as the test at {first} (both are `{canonical}`)", clip(&t.entry.raw)),
            )),
            None => {
                by_canonical.insert(canonical, src);
            }
        }
    }
    // LLM-API rules: patterns that cannot match, substring collisions and overrides, at the
    // rule's line. Only for rules of the user's own (the project's rules are checked by its
    // tests, and a user cannot act on them); never "matches none of the listed tests", which
    // says how much of the rules one list covers, not what is wrong with the list.
    let configs = &collection.configs;
    let labels: Vec<String> = collection
        .tests
        .iter()
        .filter_map(|t| t.name.as_ref().ok())
        .filter(|n| matches!(n, crate::config::PerfName::Standard(c) if c.backend == crate::config::Backend::Pytorch))
        .map(|n| n.canonical())
        .collect();
    if !labels.is_empty() && !configs.rules_are_builtin {
        for w in configs.rules.lint(&labels) {
            if matches!(
                w.kind,
                RuleWarningKind::UnmatchedRule | RuleWarningKind::UnmatchedPattern
            ) {
                continue;
            }
            let (file, line) = rule_location(&w.rule, &configs.rules.origin);
            // The location leads the line already; the rule is named without it.
            let rule = w
                .rule
                .rsplit_once(" at ")
                .map_or(w.rule.as_str(), |(r, _)| r);
            diagnostics.push(Diagnostic::warning(
                Source {
                    file: file.into(),
                    line,
                },
                format!("{rule}: {}", w.message),
            ));
        }
    }
    diagnostics.sort_by(|a, b| {
        (&a.source.file, a.source.line, b.severity).cmp(&(
            &b.source.file,
            b.source.line,
            a.severity,
        ))
    });
    diagnostics.dedup();
    Ok(LintReport {
        diagnostics,
        tests: collection.tests.len(),
    })
}

/// Whether `path` is a perf-sanity config rather than a test list: `Some(false)` for an
/// aggregated one (`server_configs:` at the top), `Some(true)` for a disaggregated one
/// (`worker_config:`).
fn sanity_config_kind(path: &std::path::Path) -> Option<bool> {
    if !matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    ) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let top = |key: &str| {
        text.lines()
            .any(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))
    };
    if top("server_configs") {
        Some(false)
    } else if top("worker_config") {
        Some(true)
    } else {
        None
    }
}

/// `pattern #3 [...] at model_configs/llm_api_rules.yaml:42` → (file, line).
fn rule_location(rule: &str, origin: &str) -> (String, usize) {
    rule.rsplit_once(" at ")
        .and_then(|(_, at)| at.rsplit_once(':'))
        .and_then(|(f, l)| Some((f.to_string(), l.parse().ok()?)))
        .unwrap_or_else(|| (origin.to_string(), 0))
}
