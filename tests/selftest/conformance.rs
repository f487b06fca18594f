//! Conformance of the name grammar against real upstream names: every name of the sample
//! list must give upstream's canonical form and per-case labels, every name upstream rejects
//! for a grammar reason must be rejected with the same kind of error, and the typed fields
//! must equal upstream's own `PerfTestConfig` after `validate()`.

use perfgate::config::{self, NameErrorKind, PerfName};
use serde_json::Value;

const TSV: &str = include_str!("../fixtures/names/trtllm_perf_test_names.tsv");
const ORACLE: &str = include_str!("../fixtures/names/names.jsonl");

struct Row<'a> {
    name: &'a str,
    canonical: &'a str,
    cases: &'a str,
    status: &'a str,
}

fn rows() -> Vec<Row<'static>> {
    TSV.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "malformed fixture row: {l}");
            Row {
                name: f[0],
                canonical: f[1],
                cases: f[2],
                status: f[4],
            }
        })
        .collect()
}

/// Upstream's error messages mapped to our error kinds. Unknown-model errors are not grammar
/// errors (our catalog is newer), and the BERT batch-size assertion is an upstream bug.
fn expected_kind(message: &str) -> Option<NameErrorKind> {
    if message.contains("Not support passing quantization") {
        Some(NameErrorKind::InvalidCombination)
    } else if message.contains("Unexpected test name label for seq lens") {
        Some(NameErrorKind::Misplaced)
    } else {
        None
    }
}

#[test]
fn every_sample_name_has_upstreams_canonical_form_and_cases() {
    let rows = rows();
    assert!(
        rows.len() > 400,
        "fixture looks truncated: {} rows",
        rows.len()
    );
    let mut failures = Vec::new();
    for r in &rows {
        let parsed = config::parse(r.name);
        if r.status == "ok" {
            match parsed {
                Ok(p) => {
                    if p.canonical() != r.canonical {
                        failures.push(format!(
                            "{}\n  want {}\n  got  {}",
                            r.name,
                            r.canonical,
                            p.canonical()
                        ));
                    }
                    let cases: Vec<String> = p.cases().into_iter().map(|c| c.label).collect();
                    let want: Vec<String> = if r.cases.is_empty() {
                        // single-case names: the case label is the canonical label
                        if cases.len() == 1 {
                            vec![r.canonical.to_string()]
                        } else {
                            vec![]
                        }
                    } else {
                        r.cases.split(';').map(str::to_string).collect()
                    };
                    if matches!(p, PerfName::Standard(_)) && cases != want {
                        failures.push(format!("{}: cases {cases:?} != {want:?}", r.name));
                    }
                    // The canonical form is a fixed point.
                    match config::parse(r.canonical) {
                        Ok(again) if again.canonical() == r.canonical => {}
                        other => failures.push(format!(
                            "{}: canonical does not re-parse: {other:?}",
                            r.canonical
                        )),
                    }
                }
                Err(e) => failures.push(format!("{}: rejected: {e}", r.name)),
            }
        } else {
            match parsed {
                Ok(p) => failures.push(format!(
                    "{}: accepted as {} but upstream says {}",
                    r.name,
                    p.canonical(),
                    r.status
                )),
                Err(e) => {
                    let want = expected_kind(r.status).expect("unmapped upstream error in fixture");
                    if e.kind != want {
                        failures.push(format!(
                            "{}: error kind {:?} != {want:?} ({e})",
                            r.name, e.kind
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} names differ:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn typed_fields_equal_upstreams_validated_config() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in ORACLE.lines() {
        let o: Value = serde_json::from_str(line).expect("oracle line is JSON");
        let name = o["name"].as_str().expect("name");
        let ours = config::parse(name);
        if o["ok"] == Value::Bool(true) {
            let Ok(PerfName::Standard(cfg)) = ours else {
                failures.push(format!("{name}: upstream accepts, we give {ours:?}"));
                continue;
            };
            assert_eq!(
                cfg.canonical(),
                o["canonical"].as_str().unwrap_or_default(),
                "{name}"
            );
            let mine = cfg.upstream_fields();
            for (key, want) in o["fields"].as_object().expect("fields") {
                let Some(got) = mine.get(key) else { continue }; // legacy/server-only fields
                let same = match (got.as_f64(), want.as_f64()) {
                    (Some(a), Some(b)) => a == b,
                    _ => got == want || (got.is_null() && want.is_null()),
                };
                if !same {
                    failures.push(format!("{name}: {key}: ours {got} upstream {want}"));
                }
            }
            let cases: Vec<&str> = o["cases"]
                .as_array()
                .expect("cases")
                .iter()
                .filter_map(|c| c["label"].as_str())
                .collect();
            let mine: Vec<String> = cfg.cases().into_iter().map(|c| c.label).collect();
            if cases != mine {
                failures.push(format!("{name}: cases {mine:?} != {cases:?}"));
            }
            checked += 1;
        } else {
            let msg = o["error"]["message"].as_str().unwrap_or_default();
            if let Some(kind) = expected_kind(msg) {
                match ours {
                    Err(e) if e.kind == kind => {}
                    other => failures.push(format!(
                        "{name}: upstream rejects ({msg}), we give {other:?}"
                    )),
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} oracle names checked");
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_sample_model_is_in_the_catalog() {
    let catalog = perfgate::models::Catalog::embedded();
    let mut problems = Vec::new();
    for r in rows().iter().filter(|r| r.status == "ok") {
        if let Ok(PerfName::Standard(cfg)) = config::parse(r.name) {
            for p in catalog.check(&cfg) {
                problems.push(format!("{}: {p}", r.name));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Issue 20 item 13: every model upstream's 2025 test_perf.py (fc7c108f) could run with
/// trtllm-bench, i.e. every key of its MODEL_PATH_DICT, is in the catalog with upstream's
/// checkpoint path, HF id (or none), LoRA adapter and trust_remote_code; so every such name
/// plans the commands upstream ran (`commands.rs` checks those commands).
#[test]
fn the_catalog_holds_upstreams_model_tables() {
    let tables: Value =
        serde_json::from_str(include_str!("../fixtures/names/upstream_model_tables.json"))
            .expect("JSON");
    let table = |name: &str| tables[name].as_object().expect(name).clone();
    let (paths, hf, lora) = (
        table("MODEL_PATH_DICT"),
        table("HF_MODEL_PATH"),
        table("LORA_MODEL_PATH"),
    );
    let remote: Vec<&str> = tables["TRUST_REMOTE_CODE_MODELS"]
        .as_array()
        .expect("set")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let catalog = perfgate::models::Catalog::embedded();
    let mut problems = Vec::new();
    for (model, path) in &paths {
        let Some(info) = catalog.get(model) else {
            problems.push(format!("{model}: not in the catalog"));
            continue;
        };
        if info.path.as_deref() != path.as_str() {
            problems.push(format!("{model}: path {:?}, upstream {path}", info.path));
        }
        let want_hf = hf.get(&format!("{model}_hf")).and_then(Value::as_str);
        if info.hf_id.as_deref() != want_hf {
            problems.push(format!(
                "{model}: hf_id {:?}, upstream {want_hf:?}",
                info.hf_id
            ));
        }
        if let Some(adapter) = lora.get(model).and_then(Value::as_str)
            && !info.lora.iter().any(|l| l == adapter)
        {
            problems.push(format!("{model}: lora {:?}, upstream {adapter}", info.lora));
        }
        if info.trust_remote_code != remote.contains(&model.as_str()) {
            problems.push(format!(
                "{model}: trust_remote_code {}",
                info.trust_remote_code
            ));
        }
    }
    assert!(paths.len() > 70, "{}", paths.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
