//! YAML read as upstream's `yaml.safe_load` reads it, with the line of every key and value.
//!
//! serde-saphyr parses the document (anchors, aliases, block and flow styles) and gives each
//! node's location; the type of a plain scalar is then decided from its source text by PyYAML's
//! own YAML 1.1 resolvers ([`crate::llm_api::pyyaml::resolve_plain`]), so `yes` is a boolean,
//! `1e3` a string and `010` the octal 8, as in upstream's Python. Mappings keep their order:
//! upstream dumps them back with `sort_keys=False`.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

use crate::llm_api::pyyaml::{PlainType, resolve_plain};

/// A YAML node and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: Scalar,
}

/// A node's value. Integers beyond i64 and non-finite floats are refused when the file is
/// read (JSON, and so the plan, cannot hold them).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One key of a mapping, its line, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub line: usize,
    pub value: Node,
}

/// Why a file is not YAML upstream could read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

impl Node {
    /// The mapping's entries, if it is one.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Scalar::Map(e) => Some(e),
            _ => None,
        }
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// The line of `key` in a mapping (else the mapping's own).
    pub fn key_line(&self, key: &str) -> usize {
        self.entries()
            .and_then(|e| e.iter().find(|e| e.key == key))
            .map_or(self.line, |e| e.line)
    }

    /// Python's truthiness, as upstream's `if value:` reads it.
    pub fn truthy(&self) -> bool {
        match &self.value {
            Scalar::Null => false,
            Scalar::Bool(b) => *b,
            Scalar::Int(i) => *i != 0,
            Scalar::Float(f) => *f != 0.0,
            Scalar::Str(s) => !s.is_empty(),
            Scalar::Seq(v) => !v.is_empty(),
            Scalar::Map(m) => !m.is_empty(),
        }
    }

    /// What the node is, for messages (`a string`, `a mapping`).
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Int(_) => "an integer",
            Scalar::Float(_) => "a float",
            Scalar::Str(_) => "a string",
            Scalar::Seq(_) => "a list",
            Scalar::Map(_) => "a mapping",
        }
    }

    /// The JSON value (mappings in file order), as `json.dumps(yaml.safe_load(...))` would give.
    pub fn to_json(&self) -> Value {
        match &self.value {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Int(i) => Value::Number((*i).into()),
            // Finite by construction (see `read`).
            Scalar::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Scalar::Str(s) => Value::String(s.clone()),
            Scalar::Seq(v) => Value::Array(v.iter().map(Node::to_json).collect()),
            Scalar::Map(entries) => {
                let mut m = Map::new();
                for e in entries {
                    // A repeated key: the last value wins, at the first key's place (a dict).
                    m.insert(e.key.clone(), e.value.to_json());
                }
                Value::Object(m)
            }
        }
    }
}

/// Parses one YAML document. An empty document is `null`, as `yaml.safe_load("")` is `None`.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(Node {
            line: 1,
            value: Scalar::Null,
        });
    }
    let mut options = serde_saphyr::Options::default();
    // Plain scalars are typed again from their text below; `.inf` must not stop the read.
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
    let raw: Spanned<Raw> = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let message = e.to_string();
        YamlError {
            line: line_of_error(&message),
            message: first_line(&message),
        }
    })?;
    convert(&raw, text)
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_string()
}

/// `line 11 column 6: ...` → 11.
fn line_of_error(message: &str) -> usize {
    message
        .split_once("line ")
        .and_then(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// What serde-saphyr gives, before the scalars are typed PyYAML's way.
#[derive(Debug)]
enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<String>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Raw, D2::Error> {
                Raw::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
                Ok(Raw::Int(v))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Raw, E> {
                i128::try_from(v)
                    .map(Raw::Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some(item) = a.next_element()? {
                    v.push(item);
                }
                Ok(Raw::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some(key) = a.next_key::<Spanned<String>>()? {
                    let value = a.next_value()?;
                    v.push((key, value));
                }
                Ok(Raw::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn line_of(s: &Spanned<Raw>) -> usize {
    usize::try_from(s.referenced.line()).unwrap_or(0)
}

/// The scalar's text in the file, where the node was defined (an alias points at its anchor).
fn source<'a>(s: &Spanned<Raw>, text: &'a str) -> Option<&'a str> {
    let span = s.defined.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    text.get(start..start.checked_add(len)?)
}

fn convert(s: &Spanned<Raw>, text: &str) -> Result<Node, YamlError> {
    let line = line_of(s);
    let err = |message: String| YamlError { line, message };
    let value = match &s.value {
        Raw::Seq(items) => Scalar::Seq(
            items
                .iter()
                .map(|i| convert(i, text))
                .collect::<Result<_, _>>()?,
        ),
        Raw::Map(entries) => Scalar::Map(
            entries
                .iter()
                .map(|(k, v)| {
                    Ok(Entry {
                        key: k.value.clone(),
                        line: usize::try_from(k.referenced.line()).unwrap_or(line),
                        value: convert(v, text)?,
                    })
                })
                .collect::<Result<_, YamlError>>()?,
        ),
        other => match source(s, text) {
            // A plain scalar: typed from its text, as PyYAML's resolver does.
            Some(src) if is_plain(src) => typed(src.trim_end(), other).map_err(err)?,
            _ => match other {
                Raw::Null => Scalar::Null,
                Raw::Bool(b) => Scalar::Bool(*b),
                Raw::Int(i) => Scalar::Int(int(*i).map_err(err)?),
                Raw::Float(f) => Scalar::Float(finite(*f).map_err(err)?),
                Raw::Str(st) => Scalar::Str(st.clone()),
                Raw::Seq(_) | Raw::Map(_) => Scalar::Null,
            },
        },
    };
    Ok(Node { line, value })
}

/// A plain scalar on one line (quoted, block, tagged and multi-line scalars are strings or
/// carry their own type; serde-saphyr's reading of those stands).
fn is_plain(src: &str) -> bool {
    let t = src.trim_end();
    !t.contains('\n')
        && !t.is_empty()
        && !t.starts_with(['\'', '"', '|', '>', '!', '&', '*', '[', '{'])
}

fn typed(text: &str, parsed: &Raw) -> Result<Scalar, String> {
    Ok(match resolve_plain(text) {
        PlainType::Bool => Scalar::Bool(matches!(
            text,
            "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON"
        )),
        PlainType::Null => Scalar::Null,
        PlainType::Int => Scalar::Int(int(pyyaml_int(text)?)?),
        PlainType::Float => Scalar::Float(finite(pyyaml_float(text)?)?),
        // A timestamp becomes a datetime in Python; perf-sanity files hold none, so it stays
        // the text it is.
        _ => match parsed {
            Raw::Str(s) => Scalar::Str(s.clone()),
            _ => Scalar::Str(text.to_string()),
        },
    })
}

fn int(v: i128) -> Result<i64, String> {
    i64::try_from(v).map_err(|_| format!("the integer {v} is out of range"))
}

fn finite(f: f64) -> Result<f64, String> {
    if f.is_finite() {
        Ok(f)
    } else {
        Err(format!(
            "the float {f} is not finite; perfgate cannot carry it into JSON"
        ))
    }
}

/// PyYAML's `construct_yaml_int`: underscores dropped, `0b`, `0x`, a leading `0` for octal,
/// and base-60 `1:30`.
fn pyyaml_int(text: &str) -> Result<i128, String> {
    let s: String = text.chars().filter(|c| *c != '_').collect();
    let (sign, digits) = match s.strip_prefix('-') {
        Some(d) => (-1i128, d),
        None => (1, s.strip_prefix('+').unwrap_or(&s)),
    };
    let bad = || format!("`{text}` is not an integer");
    let v = if digits == "0" {
        0
    } else if let Some(b) = digits.strip_prefix("0b") {
        i128::from_str_radix(b, 2).map_err(|_| bad())?
    } else if let Some(x) = digits.strip_prefix("0x") {
        i128::from_str_radix(x, 16).map_err(|_| bad())?
    } else if let Some(o) = digits.strip_prefix('0') {
        i128::from_str_radix(o, 8).map_err(|_| bad())?
    } else if digits.contains(':') {
        let mut v: i128 = 0;
        for part in digits.split(':') {
            v = v
                .checked_mul(60)
                .and_then(|v| v.checked_add(part.parse::<i128>().ok()?))
                .ok_or_else(bad)?;
        }
        v
    } else {
        digits.parse().map_err(|_| bad())?
    };
    Ok(sign * v)
}

/// PyYAML's `construct_yaml_float`.
fn pyyaml_float(text: &str) -> Result<f64, String> {
    let s: String = text
        .chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_lowercase();
    let (sign, body) = match s.strip_prefix('-') {
        Some(d) => (-1.0, d.to_string()),
        None => (1.0, s.strip_prefix('+').unwrap_or(&s).to_string()),
    };
    let bad = || format!("`{text}` is not a float");
    let v = if body == ".inf" {
        f64::INFINITY
    } else if body == ".nan" {
        f64::NAN
    } else if body.contains(':') {
        let mut v = 0.0;
        for part in body.split(':') {
            v = v * 60.0 + part.parse::<f64>().map_err(|_| bad())?;
        }
        v
    } else {
        body.parse::<f64>().map_err(|_| bad())?
    };
    Ok(sign * v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        parse(text).expect("parses").to_json()
    }

    #[test]
    fn scalars_are_typed_as_pyyaml_types_them() {
        let v = json(
            "a: yes\nb: 1e3\nc: 010\nd: 1_000\ne: 0x1F\nf: '1'\ng: ~\nh: 1.5\ni: 1:30\nj: 0.85\nk: [-1, 2]\nl: on\nm:\n",
        );
        assert_eq!(v["a"], true);
        assert_eq!(v["b"], "1e3");
        assert_eq!(v["c"], 8);
        assert_eq!(v["d"], 1000);
        assert_eq!(v["e"], 31);
        assert_eq!(v["f"], "1");
        assert_eq!(v["g"], Value::Null);
        assert_eq!(v["h"], 1.5);
        assert_eq!(v["i"], 90);
        assert_eq!(v["j"], 0.85);
        assert_eq!(v["k"], serde_json::json!([-1, 2]));
        assert_eq!(v["l"], true);
        assert_eq!(v["m"], Value::Null);
    }

    #[test]
    fn order_lines_and_aliases() {
        let text = "z: 1\na:\n  spec: &x\n    t: MTP\n    n: 3\nb:\n  spec: *x\n";
        let n = parse(text).expect("parses");
        let keys: Vec<&str> = n
            .entries()
            .expect("map")
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(keys, ["z", "a", "b"]);
        assert_eq!(n.key_line("b"), 6);
        assert_eq!(n.to_json()["b"]["spec"]["n"], 3);
        assert_eq!(
            n.get("a").and_then(|a| a.get("spec")).map(|s| s.line),
            Some(4)
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("a: 1\nb: [1, 2\n").expect_err("unclosed");
        assert!(e.line >= 2, "{e:?}");
        let e = parse("a: .inf\n").expect_err("non-finite");
        assert_eq!(e.line, 1);
    }
}
