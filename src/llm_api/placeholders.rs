//! `${NAME}` placeholders in rule configs: checked when the rules load, filled in per run.
//!
//! `${LLM_MODELS_ROOT}` is text inside any string (upstream builds those paths with f-strings).
//! `${LORA_DIRS}` and `${LORA_COUNT}` stand for whole typed values (a list, an integer) and are
//! only meaningful in `lora.set`.

use serde_json::{Map, Number, Value};

pub const MODELS_ROOT: &str = "LLM_MODELS_ROOT";
pub const LORA_DIRS: &str = "LORA_DIRS";
pub const LORA_COUNT: &str = "LORA_COUNT";

/// Which section a config sits in decides which placeholders it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Config,
    Lora,
}

/// Run-time values for the placeholders.
pub struct Vars<'a> {
    pub models_root: &'a str,
    pub lora_dirs: &'a [String],
    pub lora_count: i64,
}

/// Every placeholder in `config` is known and used where it can be filled in.
pub fn check(config: &Map<String, Value>, section: Section) -> Result<(), String> {
    let mut path = Vec::new();
    check_map(config, section, &mut path)
}

fn check_map(
    map: &Map<String, Value>,
    section: Section,
    path: &mut Vec<String>,
) -> Result<(), String> {
    for (key, value) in map {
        path.push(key.clone());
        check_value(value, section, path)?;
        path.pop();
    }
    Ok(())
}

fn check_value(value: &Value, section: Section, path: &mut Vec<String>) -> Result<(), String> {
    match value {
        Value::String(text) => check_string(text, section, &path.join(".")),
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| check_value(item, section, path)),
        Value::Object(map) => check_map(map, section, path),
        _ => Ok(()),
    }
}

fn check_string(text: &str, section: Section, at: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("{at}: unterminated '${{' in {text:?}"));
        };
        let name = &after[..end];
        match name {
            MODELS_ROOT => {}
            LORA_DIRS | LORA_COUNT if section == Section::Lora => {
                if text != format!("${{{name}}}") {
                    return Err(format!(
                        "{at}: ${{{name}}} stands for a whole value and cannot be part of {text:?}"
                    ));
                }
            }
            LORA_DIRS | LORA_COUNT => {
                return Err(format!("{at}: ${{{name}}} is only known under lora.set"));
            }
            other => {
                return Err(format!(
                    "{at}: unknown placeholder ${{{other}}} (known: ${{{MODELS_ROOT}}}, and under lora.set ${{{LORA_DIRS}}}, ${{{LORA_COUNT}}})"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// A copy of `value` with the placeholders filled in. Assumes [`check`] passed.
pub fn fill(value: &Value, vars: &Vars) -> Value {
    match value {
        Value::String(text) => fill_string(text, vars),
        Value::Array(items) => Value::Array(items.iter().map(|item| fill(item, vars)).collect()),
        Value::Object(map) => Value::Object(fill_map(map, vars)),
        other => other.clone(),
    }
}

pub fn fill_map(map: &Map<String, Value>, vars: &Vars) -> Map<String, Value> {
    map.iter()
        .map(|(key, value)| (key.clone(), fill(value, vars)))
        .collect()
}

fn fill_string(text: &str, vars: &Vars) -> Value {
    if text == format!("${{{LORA_DIRS}}}") {
        return Value::Array(vars.lora_dirs.iter().cloned().map(Value::String).collect());
    }
    if text == format!("${{{LORA_COUNT}}}") {
        return Value::Number(Number::from(vars.lora_count));
    }
    Value::String(text.replace(&format!("${{{MODELS_ROOT}}}"), vars.models_root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn checks_names_and_places() {
        let ok =
            map(json!({"a": "${LLM_MODELS_ROOT}/x", "b": ["${LLM_MODELS_ROOT}"], "c": "$x {y}"}));
        assert!(check(&ok, Section::Config).is_ok());
        let lora = map(json!({"l": {"dirs": "${LORA_DIRS}", "n": "${LORA_COUNT}"}}));
        assert!(check(&lora, Section::Lora).is_ok());
        assert!(
            check(&lora, Section::Config)
                .unwrap_err()
                .contains("only known under lora.set")
        );
        let unknown = map(json!({"a": {"b": "${MODEL_ROOT}/x"}}));
        assert!(
            check(&unknown, Section::Config)
                .unwrap_err()
                .starts_with("a.b: unknown placeholder ${MODEL_ROOT}")
        );
        let partial = map(json!({"n": "x${LORA_COUNT}"}));
        assert!(
            check(&partial, Section::Lora)
                .unwrap_err()
                .contains("whole value")
        );
        let open = map(json!({"n": "${LLM_MODELS_ROOT"}));
        assert!(
            check(&open, Section::Config)
                .unwrap_err()
                .contains("unterminated")
        );
    }

    #[test]
    fn fills_typed_values() {
        let vars = Vars {
            models_root: "/models",
            lora_dirs: &["/l/0".to_string()],
            lora_count: 3,
        };
        let got = fill(
            &json!({"p": "${LLM_MODELS_ROOT}/a/${LLM_MODELS_ROOT}", "d": "${LORA_DIRS}", "n": "${LORA_COUNT}"}),
            &vars,
        );
        assert_eq!(
            got,
            json!({"p": "/models/a//models", "d": ["/l/0"], "n": 3})
        );
    }
}
