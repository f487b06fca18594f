//! The small YAML form a test-db list may give a sweep or an A/B case in instead of its name
//! (docs/guide/sweep-ab.md, "As test cases"): `{sweep: {...}}` or `{ab: {...}}` becomes the
//! canonical name, which is then parsed as any listed name is. It sits above both the name
//! grammar ([`super::parse`]) and the sweep/A-B names ([`super::sweep`]).

use serde::Deserialize;
use serde_json::Value;

/// A `-pg` pair in the YAML form: `"512,128"` or `[512, 128]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum PairYaml {
    Text(String),
    List(Vec<u64>),
}

/// `gpus:` in the YAML form: `1` or `[6, 2]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum GpusYaml {
    One(u32),
    Two(Vec<u32>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepYaml {
    model: String,
    server: String,
    #[serde(default)]
    p: Vec<u64>,
    #[serde(default)]
    n: Vec<u64>,
    #[serde(default)]
    pg: Vec<PairYaml>,
    #[serde(default)]
    r: Option<u32>,
    #[serde(default)]
    power: Option<String>,
    #[serde(default)]
    gpus: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AbYaml {
    model: String,
    server: String,
    draft: String,
    #[serde(default)]
    isl: Option<u64>,
    #[serde(default)]
    osl: Option<u64>,
    #[serde(default)]
    reqs: Option<u64>,
    #[serde(default)]
    bs: Option<u32>,
    #[serde(default)]
    blocks: Option<u32>,
    #[serde(default)]
    gpus: Option<GpusYaml>,
    #[serde(default)]
    place: Option<String>,
    #[serde(default)]
    power: Option<String>,
}

fn plus(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join("+")
}

/// The canonical name of a test-db list's `{sweep: {...}}` or `{ab: {...}}` entry; `Err` says
/// what is wrong with it (the caller adds the file and line).
pub fn case_form(entry: &Value) -> Result<String, String> {
    let Value::Object(map) = entry else {
        return Err("expected a test name, or a `sweep:` or `ab:` mapping".into());
    };
    if map.len() != 1 {
        return Err(format!(
            "a test-case mapping has one key, `sweep` or `ab`; found {}",
            map.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let (kind, body) = map.iter().next().ok_or("an empty mapping")?;
    let mut labels: Vec<String> = Vec::new();
    match kind.as_str() {
        "sweep" => {
            let y: SweepYaml =
                serde_json::from_value(body.clone()).map_err(|e| format!("sweep: {e}"))?;
            labels.extend([y.model, "sweep".into(), y.server]);
            if !y.p.is_empty() {
                labels.push(format!("p:{}", plus(&y.p)));
            }
            if !y.n.is_empty() {
                labels.push(format!("n:{}", plus(&y.n)));
            }
            if !y.pg.is_empty() {
                let pg: Vec<String> =
                    y.pg.iter()
                        .map(|p| match p {
                            PairYaml::Text(t) => t.replace(' ', ""),
                            PairYaml::List(v) => {
                                v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
                            }
                        })
                        .collect();
                labels.push(format!("pg:{}", pg.join("+")));
            }
            if let Some(r) = y.r {
                labels.push(format!("r:{r}"));
            }
            if let Some(p) = y.power {
                labels.push(format!("power:{p}"));
            }
            if let Some(g) = y.gpus {
                labels.push(format!("gpus:{g}"));
            }
        }
        "ab" => {
            let y: AbYaml = serde_json::from_value(body.clone()).map_err(|e| format!("ab: {e}"))?;
            labels.extend([y.model, "ab".into(), y.server, format!("draft:{}", y.draft)]);
            for (k, v) in [
                ("isl", y.isl),
                ("osl", y.osl),
                ("reqs", y.reqs),
                ("bs", y.bs.map(u64::from)),
                ("blocks", y.blocks.map(u64::from)),
            ] {
                if let Some(v) = v {
                    labels.push(format!("{k}:{v}"));
                }
            }
            match y.gpus {
                Some(GpusYaml::One(g)) => labels.push(format!("gpus:{g}")),
                Some(GpusYaml::Two(v)) if v.len() == 2 => {
                    labels.push(format!("gpus:{},{}", v[0], v[1]))
                }
                Some(GpusYaml::Two(v)) => {
                    return Err(format!(
                        "ab: gpus: expected one count or [A, B], found {} values",
                        v.len()
                    ));
                }
                None => {}
            }
            if let Some(p) = y.place {
                labels.push(format!("place:{p}"));
            }
            if let Some(p) = y.power {
                labels.push(format!("power:{p}"));
            }
        }
        other => {
            return Err(format!(
                "`{other}:`: a test-case mapping is `sweep:` or `ab:`"
            ));
        }
    }
    let name = labels.join("-");
    let parsed =
        super::parse::parse(&name).map_err(|e| format!("{kind}: {e} (as the name `{name}`)"))?;
    Ok(parsed.canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PerfName;
    use crate::config::parse::parse;
    use serde_json::json;

    #[test]
    fn sweep_names_parse_to_their_canonical_form() {
        let n =
            parse("tiny_llama_cpp-sweep-llama.cpp-r:3-pg:64,16+128,32-p:32+64-power:none").unwrap();
        let PerfName::Sweep(s) = &n else {
            panic!("{n:?}")
        };
        assert_eq!(s.prompt, [32, 64]);
        assert_eq!(s.pg, [(64, 16), (128, 32)]);
        assert_eq!(s.repetitions, 3);
        assert_eq!(
            n.canonical(),
            "tiny_llama_cpp-sweep-llama.cpp-p:32+64-pg:64,16+128,32-r:3-power:none"
        );
        assert_eq!(parse(&n.canonical()).unwrap(), n);
        let labels: Vec<String> = s.tests().iter().map(|t| t.label()).collect();
        assert_eq!(labels, ["pp32", "pp64", "pp64+tg16", "pp128+tg32"]);
        assert_eq!(
            s.case_label(&s.tests()[3]),
            "tiny_llama_cpp-sweep-llama.cpp-pg:128,32-r:3-power:none"
        );
    }

    #[test]
    fn ab_names_and_their_defaults() {
        let n = parse("tiny_llama_cpp-ab-llama.cpp-draft:tiny_llama_cpp-gpus:6,2").unwrap();
        let PerfName::Ab(a) = &n else { panic!("{n:?}") };
        assert_eq!((a.isl, a.osl, a.reqs, a.bs, a.blocks), (128, 128, 32, 1, 4));
        assert_eq!(a.gpus, (6, 2));
        assert_eq!(
            n.canonical(),
            "tiny_llama_cpp-ab-llama.cpp-draft:tiny_llama_cpp-isl:128-osl:128-reqs:32-bs:1-blocks:4-gpus:6,2"
        );
        assert_eq!(parse(&n.canonical()).unwrap(), n);
    }

    #[test]
    fn bad_names_say_what_is_wrong() {
        let e = parse("m-sweep-llama.cpp-p:0").unwrap_err().to_string();
        assert!(e.contains("p:0") && e.contains("1 to"), "{e}");
        let e = parse("m-sweep-llama.cpp-p:8-powr:none").unwrap_err();
        assert_eq!(e.suggestion.as_deref(), Some("power:none"));
        let e = parse("m-sweep-llama.cpp").unwrap_err().to_string();
        assert!(e.contains("no test"), "{e}");
        let e = parse("m-sweep").unwrap_err().to_string();
        assert!(e.contains("recipe"), "{e}");
        let e = parse("m-sweep-llama.cpp-pg:512").unwrap_err().to_string();
        assert!(e.contains("P,G"), "{e}");
        let e = parse("m-sweep-llama.cpp-p:8-p:9").unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        let e = parse("m-ab-llama.cpp-isl:8").unwrap_err().to_string();
        assert!(e.contains("draft:"), "{e}");
        let e = parse("m-ab-llama.cpp-draft:d-place:apart")
            .unwrap_err()
            .to_string();
        assert!(e.contains("same or separate"), "{e}");
    }

    #[test]
    fn the_yaml_form_becomes_the_canonical_name() {
        let s = case_form(
            &json!({"sweep": {"model": "tiny_llama_cpp", "server": "llama.cpp",
            "p": [32], "pg": ["64,16", [128, 32]], "r": 3}}),
        )
        .unwrap();
        assert_eq!(s, "tiny_llama_cpp-sweep-llama.cpp-p:32-pg:64,16+128,32-r:3");
        let a = case_form(
            &json!({"ab": {"model": "tiny_llama_cpp", "server": "llama.cpp",
            "draft": "tiny_llama_cpp", "reqs": 8, "gpus": [6, 2], "place": "separate"}}),
        )
        .unwrap();
        assert!(a.ends_with("-reqs:8-bs:1-blocks:4-gpus:6,2"), "{a}");
        let e = case_form(&json!({"sweep": {"model": "m", "server": "llama.cpp", "q": [1]}}))
            .unwrap_err();
        assert!(e.contains("unknown field `q`"), "{e}");
        let e = case_form(&json!({"sweep": {"model": "m", "server": "llama.cpp"}})).unwrap_err();
        assert!(e.contains("no test"), "{e}");
        assert!(
            case_form(&json!({"bench": {}}))
                .unwrap_err()
                .contains("sweep:` or `ab:")
        );
        assert!(case_form(&json!(5)).is_err());
    }
}
