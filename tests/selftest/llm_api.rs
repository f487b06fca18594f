//! llm_api: the rules file and engine against upstream's own outputs, the PyYAML emitter against
//! PyYAML, the loader's errors and the lint. Expected outputs are read from
//! tests/fixtures/oracle/llm_api_yaml*.jsonl at run time (see llm_api_yaml.SOURCES.md).

use std::path::PathBuf;

use perfgate::llm_api::{Backend, LlmApiError, RuleContext, RuleWarningKind, Rules, to_pyyaml};
use serde_json::{Value, json};

const MODELS_ROOT: &str = "/models";

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn rules() -> Rules {
    let path = repo_path("model_configs/llm_api_rules.yaml");
    Rules::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn read_jsonl(name: &str) -> Vec<Value> {
    let path = repo_path("tests/fixtures/oracle").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn context(label: &str, sm: Option<u32>, lora_dirs: Option<Vec<String>>) -> RuleContext {
    RuleContext {
        sm,
        lora_dirs,
        models_root: MODELS_ROOT.to_string(),
        backend: Backend::from_label(label),
    }
}

fn lora_dirs_of(row: &Value) -> Option<Vec<String>> {
    row["lora_dirs"].as_array().map(|dirs| {
        dirs.iter()
            .map(|d| d.as_str().expect("lora dir is a string").to_string())
            .collect()
    })
}

/// Every line of an upstream `get_model_yaml_config` oracle file: same dict (as a value and in
/// insertion order) and the same YAML bytes.
fn check_oracle_file(name: &str) {
    let rules = rules();
    let rows = read_jsonl(name);
    assert!(!rows.is_empty(), "{name} is empty");
    let mut failures = Vec::new();
    for row in &rows {
        let label = row["canonical"].as_str().expect("canonical label");
        let sm = row["sm"].as_u64().map(|s| s as u32);
        let ctx = context(label, sm, lora_dirs_of(row));
        let got = rules.config_for(label, &ctx);
        let want_yaml = row["yaml"].as_str().expect("yaml text");
        if got.value != row["config"] {
            failures.push(format!(
                "{label}: config {} != {}",
                got.value, row["config"]
            ));
        } else if got.value.to_string() != row["config"].to_string() {
            failures.push(format!(
                "{label}: key order {} != {}",
                got.value, row["config"]
            ));
        }
        if got.to_pyyaml() != want_yaml {
            failures.push(format!("{label}: yaml\n{}!=\n{want_yaml}", got.to_pyyaml()));
        }
        if to_pyyaml(&row["config"]) != want_yaml {
            failures.push(format!("{label}: emitter on upstream's own dict differs"));
        }
        assert!(got.notes.is_empty(), "{label}: {:?}", got.notes);
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} lines differ:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    eprintln!("{name}: {} of {} lines match", rows.len(), rows.len());
}

#[test]
fn oracle_sm90_every_line_matches() {
    check_oracle_file("llm_api_yaml.jsonl");
}

#[test]
fn oracle_sm100_every_line_matches() {
    check_oracle_file("llm_api_yaml_sm100.jsonl");
}

/// Every rule entry (most of which no upstream oracle label reaches), crossed with kv_cache_dtype,
/// loras, SM 90/100 and TensorRT variants, against a Python transcription of upstream's function.
#[test]
fn extended_every_line_matches() {
    check_oracle_file("llm_api_yaml_extended.jsonl");
}

/// The files upstream's command plan actually wrote, LoRA quirk included: written before the
/// adapters are linked, so `lora_dir: []` (our `lora_dirs: None`).
#[test]
fn oracle_command_plan_files_match() {
    let rules = rules();
    let rows = read_jsonl("llm_api_yaml_commands.jsonl");
    assert!(!rows.is_empty());
    for row in &rows {
        let label = row["canonical"].as_str().expect("canonical label");
        let got = rules.config_for(label, &context(label, Some(90), None));
        assert_eq!(got.to_pyyaml(), row["yaml"].as_str().unwrap(), "{label}");
    }
    eprintln!(
        "llm_api_yaml_commands.jsonl: {} of {} files match",
        rows.len(),
        rows.len()
    );
}

/// The emitter fixture carries floats as `{"$f": "<repr>"}` (see the SOURCES note): decode them
/// with Rust's correctly rounded parser.
fn decode_floats(value: &Value) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("$f") => {
            let text = map["$f"].as_str().expect("$f holds a string");
            let x: f64 = text.parse().expect("$f holds a float");
            Value::Number(serde_json::Number::from_f64(x).expect("finite float"))
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), decode_floats(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(decode_floats).collect()),
        other => other.clone(),
    }
}

fn emitter_case(name: &str) -> (Value, String) {
    let cases = read_jsonl("llm_api_yaml_emitter.jsonl");
    let case = cases
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no emitter case {name}"));
    (
        decode_floats(&case["input"]),
        case["yaml"].as_str().unwrap().to_string(),
    )
}

#[test]
fn emitter_matches_pyyaml_cases() {
    let cases = read_jsonl("llm_api_yaml_emitter.jsonl");
    let mut failures = Vec::new();
    for case in &cases {
        let got = to_pyyaml(&decode_floats(&case["input"]));
        let want = case["yaml"].as_str().unwrap();
        if got != want {
            failures.push(format!("{}:\n--- want\n{want}--- got\n{got}", case["name"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures[..failures.len().min(8)].join("\n")
    );
    eprintln!(
        "llm_api_yaml_emitter.jsonl: {} of {} cases match",
        cases.len(),
        cases.len()
    );
}

#[test]
fn emitter_quoting_and_floats() {
    let cases = [
        (json!({"k": "yes"}), "k: 'yes'\n"),
        (json!({"k": "1e3"}), "k: 1e3\n"),
        (json!({"k": "1.0"}), "k: '1.0'\n"),
        (json!({"k": "2024-01-01"}), "k: '2024-01-01'\n"),
        (json!({"k": "~"}), "k: '~'\n"),
        (json!({"k": ""}), "k: ''\n"),
        (json!({"k": "a: b"}), "k: 'a: b'\n"),
        (json!({"k": "a #b"}), "k: 'a #b'\n"),
        (json!({"k": "it's"}), "k: it's\n"),
        (json!({"k": "'q"}), "k: '''q'\n"),
        (json!({"k": " x"}), "k: ' x'\n"),
        (json!({"k": "tab\there"}), "k: \"tab\\there\"\n"),
        (json!({"k": "é"}), "k: \"\\xE9\"\n"),
        (
            json!({"k": 0.9, "e": 0.00001, "big": 1e16, "one": 1.0}),
            "big: 1.0e+16\ne: 1.0e-05\nk: 0.9\none: 1.0\n",
        ),
        (
            json!({"k": null, "t": true, "l": [], "m": {}}),
            "k: null\nl: []\nm: {}\nt: true\n",
        ),
        (
            json!({"b": [1, {"y": 2, "x": [3]}]}),
            "b:\n- 1\n- x:\n  - 3\n  y: 2\n",
        ),
        (json!("top"), "top\n...\n"),
    ];
    for (value, want) in cases {
        assert_eq!(to_pyyaml(&value), want, "{value}");
    }
}

#[test]
fn autodeploy_labels_get_the_fixed_file() {
    let rules = rules();
    let label = "llama_v3.1_8b_instruct-bench-_autodeploy-float16-maxbs:512-maxnt:2048-input_output_len:128,128-reqs:8192";
    let got = rules.config_for(label, &context(label, Some(90), None));
    let (want_value, want_yaml) = emitter_case("autodeploy");
    assert_eq!(got.value, want_value);
    assert_eq!(got.to_pyyaml(), want_yaml);
    assert!(
        got.provenance
            .iter()
            .all(|(_, rule)| rule.starts_with("autodeploy at "))
    );
}

#[test]
fn tensorrt_labels_start_empty() {
    let rules = rules();
    let label = "llama_v3.1_8b-bench-bfloat16-maxbs:512-maxnt:2048-input_output_len:128,128";
    let got = rules.config_for(label, &context(label, Some(90), None));
    assert_eq!(got.value, json!({}));
    assert_eq!(got.to_pyyaml(), "{}\n");
    // Patterns still apply to engine labels, as upstream's function does.
    let label = "deepseek_r1_fp8-bench-float8-maxbs:512-maxnt:2048-input_output_len:128,128";
    let got = rules.config_for(label, &context(label, Some(90), None));
    assert_eq!(got.value, json!({"enable_attention_dp": true}));
}

#[test]
fn models_root_is_filled_in_and_provenance_names_the_rule() {
    let rules = rules();
    let label = "gpt_oss_120b_eagle3-bench-pytorch-float4-maxbs:1-maxnt:2048-input_output_len:1024,1024-kv_cache_dtype:fp8-reqs:8-con:1";
    let mut ctx = context(label, Some(100), None);
    ctx.models_root = "/mnt/models".into();
    let got = rules.config_for(label, &ctx);
    assert_eq!(
        got.value["speculative_config"]["speculative_model_dir"],
        "/mnt/models/gpt_oss/gpt-oss-120b-Eagle3"
    );
    // The label's kv dtype lands in the kv_cache_config a pattern created, at the end.
    assert_eq!(
        got.value["kv_cache_config"],
        json!({"enable_block_reuse": false, "dtype": "fp8"})
    );
    let rule_of = |key: &str| {
        got.provenance
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("no provenance for {key}: {:?}", got.provenance))
    };
    assert!(rule_of("print_iter_log").starts_with("base at "));
    let eagle = rule_of("speculative_config.speculative_model_dir");
    assert!(
        eagle.starts_with("pattern #18 [gpt_oss_120b_eagle3-bench-pytorch] at ")
            && eagle.contains("llm_api_rules.yaml:"),
        "{eagle}"
    );
    assert!(rule_of("kv_cache_config.dtype").starts_with("kv_cache_dtype:fp8 from the label"));
    // One entry per leaf, in YAML order.
    let keys: Vec<&str> = got.provenance.iter().map(|(k, _)| k.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), leaf_count(&got.value));
}

/// Scalars, lists and empty mappings: the things provenance lists one line for.
fn leaf_count(value: &Value) -> usize {
    match value {
        Value::Object(map) if !map.is_empty() => map.values().map(leaf_count).sum(),
        _ => 1,
    }
}

#[test]
fn sm100_default_does_not_override_an_explicit_backend() {
    let text = std::fs::read_to_string(repo_path("model_configs/llm_api_rules.yaml")).unwrap();
    let text = text.replace(
        "patterns:\n  - note:",
        "patterns:\n  - note: \"test entry\"\n    patterns: [deepseek_v3_lite_fp8-]\n    config:\n      moe_config: {backend: CUTLASS}\n  - note:",
    );
    let rules = Rules::from_str(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
    let label =
        "deepseek_v3_lite_fp8-bench-pytorch-float8-maxbs:512-maxnt:2048-input_output_len:128,128";
    let got = rules.config_for(label, &context(label, Some(100), None));
    assert_eq!(got.value["moe_config"], json!({"backend": "CUTLASS"}));
    let got = rules.config_for(label, &context(label, None, None));
    assert_eq!(got.value["moe_config"], json!({"backend": "CUTLASS"}));
}

// ---- Loader errors ----

const MINIMAL: &str = "\
version: 1
source: test
base:
  when_label_contains: [pytorch]
  config: {print_iter_log: true}
  otherwise: {}
kv_cache_dtype:
  label_field: kv_cache_dtype
  move_to: kv_cache_config.dtype
patterns:
  - patterns: [deepseek_r1]
    config:
      enable_attention_dp: true
lora:
  when_label_contains: [pytorch, loras]
  count_label_field: loras
  set:
    lora_config: {lora_dir: '${LORA_DIRS}', max_loras: '${LORA_COUNT}'}
autodeploy:
  config: {runtime: trtllm}
";

fn load_error(text: &str) -> LlmApiError {
    match Rules::from_str(text, "rules.yaml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn minimal_rules_load() {
    let rules = Rules::from_str(MINIMAL, "rules.yaml").unwrap_or_else(|e| panic!("{e}"));
    let label = "deepseek_r1-bench-pytorch-float8-maxbs:1-maxnt:2048-loras:2";
    let mut ctx = context(label, None, Some(vec!["/l/0".into(), "/l/1".into()]));
    ctx.backend = Backend::Pytorch;
    let got = rules.config_for(label, &ctx);
    assert_eq!(
        got.value,
        json!({"print_iter_log": true, "enable_attention_dp": true,
               "lora_config": {"lora_dir": ["/l/0", "/l/1"], "max_loras": 2}})
    );
}

#[test]
fn unknown_key_is_an_error_with_its_line() {
    let text = MINIMAL.replace(
        "    config:\n      enable_attention_dp",
        "    confg:\n      enable_attention_dp",
    );
    let err = load_error(&text);
    let shown = err.to_string();
    assert!(
        matches!(err, LlmApiError::Parse { line: 12, .. }),
        "{shown}"
    );
    assert!(shown.starts_with("rules.yaml:12:"), "{shown}");
    assert!(shown.contains("confg"), "{shown}");
}

#[test]
fn misspelled_section_is_an_error() {
    let err = load_error(&MINIMAL.replace("patterns:\n  - patterns", "pattern:\n  - patterns"));
    assert!(err.to_string().starts_with("rules.yaml:10:"), "{err}");
}

#[test]
fn bad_value_type_is_an_error_with_its_line() {
    let err = load_error(&MINIMAL.replace("patterns: [deepseek_r1]", "patterns: deepseek_r1"));
    assert!(matches!(err, LlmApiError::Parse { line: 11, .. }), "{err}");
    let err = load_error(&MINIMAL.replace(
        "    config:\n      enable_attention_dp: true",
        "    config: [1, 2]",
    ));
    assert!(matches!(err, LlmApiError::Parse { line: 12, .. }), "{err}");
    let err = load_error(&MINIMAL.replace("version: 1", "version: one"));
    assert!(err.to_string().starts_with("rules.yaml:1:"), "{err}");
}

#[test]
fn semantic_errors_name_the_entry_line() {
    let err =
        load_error(&MINIMAL.replace("patterns: [deepseek_r1]", "patterns: [deepseek_r1, '']"));
    assert!(
        matches!(err, LlmApiError::Invalid { line: 11, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("empty string"), "{err}");
    let err =
        load_error(&MINIMAL.replace("enable_attention_dp: true", "model: \"${MODEL_ROOT}/x\""));
    assert!(
        matches!(err, LlmApiError::Invalid { line: 11, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("unknown placeholder ${MODEL_ROOT}"),
        "{err}"
    );
    let err = load_error(&MINIMAL.replace("version: 1", "version: 2"));
    assert!(matches!(err, LlmApiError::Invalid { line: 1, .. }), "{err}");
    let err = load_error(&MINIMAL.replace("patterns: [deepseek_r1]", "patterns: []"));
    assert!(err.to_string().contains("could never apply"), "{err}");
}

#[test]
fn empty_or_partial_files_are_errors() {
    for text in ["", "version: 1\n", "# nothing\n"] {
        let err = load_error(text);
        assert!(err.to_string().starts_with("rules.yaml:"), "{err}");
    }
    let err = Rules::load(&repo_path("model_configs/no-such-rules.yaml")).unwrap_err();
    assert!(
        matches!(&err, LlmApiError::Read(e) if e.is_not_found()),
        "{err}"
    );
}

// ---- Lint ----

fn oracle_labels() -> Vec<String> {
    read_jsonl("llm_api_yaml.jsonl")
        .iter()
        .map(|r| r["canonical"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn lint_reports_the_deepseek_r1_substring_collision() {
    let rules = rules();
    let warnings = rules.lint(&oracle_labels());
    let collision = warnings
        .iter()
        .find(|w| w.kind == RuleWarningKind::SubstringCollision && w.rule.contains("[deepseek_r1]"))
        .unwrap_or_else(|| panic!("no deepseek_r1 collision in {warnings:#?}"));
    assert!(
        collision.rule.starts_with("pattern #1 [deepseek_r1] at "),
        "{collision}"
    );
    assert!(
        collision.message.contains("deepseek_r1_0528_fp4"),
        "{collision}"
    );
    // Exact, dash-terminated patterns do not collide.
    assert!(
        !warnings
            .iter()
            .any(|w| w.kind == RuleWarningKind::SubstringCollision
                && w.rule.contains("gpt_oss_120b_fp4-bench"))
    );
}

#[test]
fn lint_reports_unmatched_rules_and_unreachable_patterns() {
    let rules = rules();
    let labels = vec![
        "deepseek_r1_0528_fp4-bench-pytorch-float4-maxbs:512-maxnt:2048-input_output_len:1000,1000"
            .to_string(),
    ];
    let warnings = rules.lint(&labels);
    assert!(
        warnings
            .iter()
            .any(|w| w.kind == RuleWarningKind::UnmatchedRule
                && w.rule.starts_with("pattern #20 at "))
    );
    assert!(
        !warnings
            .iter()
            .any(|w| w.kind == RuleWarningKind::UnmatchedRule
                && w.rule.starts_with("pattern #1 at "))
    );

    let text = MINIMAL.replace(
        "patterns: [deepseek_r1]",
        "patterns: [deepseek_r1, 'x-bench-pytorch-float8-ep:4-tp:8-gpus:8']",
    );
    let rules = Rules::from_str(&text, "rules.yaml").unwrap();
    let warnings = rules.lint(&labels);
    let unreachable = warnings
        .iter()
        .find(|w| w.kind == RuleWarningKind::UnreachablePattern)
        .expect("unreachable pattern warning");
    assert!(
        unreachable.message.contains("tp:8 with gpus:8"),
        "{unreachable}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.kind == RuleWarningKind::UnmatchedPattern)
    );
}

#[test]
fn lint_reports_silent_overrides() {
    let rules = rules();
    let labels = vec![
        // gemma_4_ sets kv_cache_config.dtype fp8; the label's kv_cache_dtype wins silently.
        "gemma_4_31b_it_fp4-bench-pytorch-float4-maxbs:512-maxnt:2048-input_output_len:128,128-kv_cache_dtype:auto".to_string(),
    ];
    let warnings = rules.lint(&labels);
    let o = warnings
        .iter()
        .find(|w| w.kind == RuleWarningKind::Override)
        .unwrap_or_else(|| panic!("no override in {warnings:#?}"));
    assert!(o.message.contains("kv_cache_config.dtype"), "{o}");
}
