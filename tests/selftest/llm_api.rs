//! llm_api tests
use std::path::PathBuf;

use perfgate::llm_api::to_pyyaml;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/oracle")
        .join(name)
}

fn read_jsonl(name: &str) -> Vec<Value> {
    let path = fixture(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
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
}
