//! perfgate's own names for a sweep and an A/B run as test cases, and the small YAML form a
//! test-db list may give them in instead (docs/guide/sweep-ab.md, "As test cases").
//!
//! ```text
//! <model>-sweep-<recipe>[-p:N+N...][-n:N+N...][-pg:P,G+P,G...][-r:N][-power:P][-gpus:N]
//! <model>-ab-<recipe>-draft:<model>[-isl:N][-osl:N][-reqs:N][-bs:N][-blocks:N]
//!     [-gpus:N|A,B][-place:same|separate][-power:P]
//! ```
//!
//! `<recipe>` is a server of `model_configs/servers.yaml`; `<model>` (and the draft) are
//! models of the catalog. A sweep runs one server and a case per test (`pp512`, `tg128`,
//! `pp512+tg128`); an A/B runs two servers, A the model alone and B the model with the draft,
//! and one case. Keys may come in any order; the canonical name puts them in the order above
//! and leaves out defaults that change nothing (`power:auto`, `gpus:0`, `place:separate`).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use super::error::{NameError, NameErrorKind as K};
use super::sweep_tests::{MAX_LENGTH, MAX_REPETITIONS, SweepTest, plan_tests};
use crate::textutil::closest;

/// `--power` values.
const POWER: [&str; 5] = ["nvml", "jetson", "rapl", "auto", "none"];

const SWEEP_KEYS: [&str; 6] = ["p", "n", "pg", "r", "power", "gpus"];
const AB_KEYS: [&str; 9] = [
    "draft", "isl", "osl", "reqs", "bs", "blocks", "gpus", "place", "power",
];

/// How the servers of an A/B share the GPUs (`place:`; the assignment is
/// [`crate::plan::placement`]'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Every server sees the same first GPUs.
    Same,
    /// Each server gets GPUs of its own, one after another.
    Separate,
}

impl Placement {
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Same => "same",
            Placement::Separate => "separate",
        }
    }

    pub fn parse(s: &str) -> Option<Placement> {
        match s {
            "same" => Some(Placement::Same),
            "separate" => Some(Placement::Separate),
            _ => None,
        }
    }
}

/// A sweep as a test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepName {
    pub model: String,
    pub recipe: String,
    pub prompt: Vec<u64>,
    pub gen_lengths: Vec<u64>,
    pub pg: Vec<(u64, u64)>,
    /// Repetitions of each test (default 5).
    pub repetitions: u32,
    /// The power sources sampled (default `auto`).
    pub power: String,
    /// GPUs the server gets (`CUDA_VISIBLE_DEVICES`); 0: none set (default).
    pub gpus: u32,
}

/// An A/B run as a test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbName {
    pub model: String,
    pub recipe: String,
    /// The draft model of side B (a catalog model).
    pub draft: String,
    pub isl: u64,
    pub osl: u64,
    /// Prompts sent to each side.
    pub reqs: u64,
    /// Requests in flight per side.
    pub bs: u32,
    pub blocks: u32,
    /// GPUs of A and of B (0: none set).
    pub gpus: (u32, u32),
    pub place: Placement,
    pub power: String,
}

fn bad(message: impl Into<String>) -> NameError {
    NameError::new(K::BadValue, message)
}

fn check_word(what: &str, w: &str, position: usize) -> Result<(), NameError> {
    let ok = w.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(NameError::new(
            K::BadModelName,
            format!("{what} `{w}`: letters, digits, `_` and `.` only"),
        )
        .at(position, w))
    }
}

fn number<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    key: &str,
    v: &str,
    min: T,
    max: T,
) -> Result<T, NameError> {
    let n: T = v
        .parse()
        .map_err(|_| bad(format!("`{key}:{v}`: expected a whole number")))?;
    if n < min || n > max {
        return Err(bad(format!("`{key}:{v}`: expected {min} to {max}")));
    }
    Ok(n)
}

fn lengths(key: &str, v: &str) -> Result<Vec<u64>, NameError> {
    v.split('+')
        .map(|x| number::<u64>(key, x, 1, MAX_LENGTH))
        .collect()
}

fn pairs(v: &str) -> Result<Vec<(u64, u64)>, NameError> {
    v.split('+')
        .map(|x| {
            let (p, g) = x
                .split_once(',')
                .ok_or_else(|| bad(format!("`pg:{v}`: expected P,G pairs joined by `+`")))?;
            Ok((
                number::<u64>("pg", p, 1, MAX_LENGTH)?,
                number::<u64>("pg", g, 1, MAX_LENGTH)?,
            ))
        })
        .collect()
}

fn power(v: &str) -> Result<String, NameError> {
    if POWER.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(bad(format!(
            "`power:{v}`: expected one of {}",
            POWER.join(", ")
        )))
    }
}

/// The `key:value` labels after the recipe; unknown and repeated keys are errors.
fn keyed<'a>(
    labels: &[&'a str],
    keys: &[&str],
    first: usize,
) -> Result<Vec<(usize, &'a str, &'a str)>, NameError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, label) in labels.iter().enumerate().skip(first) {
        let Some((k, v)) = label.split_once(':') else {
            return Err(NameError::new(
                K::UnknownLabel,
                format!("expected `key:value` ({})", keys.join(", ")),
            )
            .at(i + 1, label));
        };
        if !keys.contains(&k) {
            let near = closest(k, keys.iter().copied(), 1);
            return Err(NameError::new(
                K::UnknownLabel,
                format!("unknown key `{k}` (keys: {})", keys.join(", ")),
            )
            .at(i + 1, label)
            .suggest(near.first().map(|n| format!("{n}:{v}"))));
        }
        if !seen.insert(k) {
            return Err(
                NameError::new(K::Duplicate, format!("`{k}:` is given twice")).at(i + 1, label),
            );
        }
        if v.is_empty() {
            return Err(bad(format!("`{k}:` has no value")).at(i + 1, label));
        }
        out.push((i + 1, k, v));
    }
    Ok(out)
}

fn head<'a>(labels: &[&'a str], kind: &str) -> Result<(&'a str, &'a str), NameError> {
    check_word("the model", labels[0], 1)?;
    let Some(recipe) = labels.get(2) else {
        return Err(NameError::new(
            K::Truncated,
            format!(
                "`<model>-{kind}-<recipe>`: the name ends before the server recipe (a server of \
                 model_configs/servers.yaml, e.g. llama.cpp)"
            ),
        ));
    };
    let well_formed = recipe
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && recipe
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.'));
    if !well_formed {
        return Err(NameError::new(
            K::UnknownLabel,
            format!("`{recipe}`: expected a server recipe (lower-case letters, digits, `_`, `.`)"),
        )
        .at(3, recipe));
    }
    Ok((labels[0], recipe))
}

/// `<model>-sweep-<recipe>-...` (`labels` split on `-`, `labels[1] == "sweep"`).
pub fn parse_sweep(labels: &[&str]) -> Result<SweepName, NameError> {
    let (model, recipe) = head(labels, "sweep")?;
    let mut s = SweepName {
        model: model.into(),
        recipe: recipe.into(),
        prompt: Vec::new(),
        gen_lengths: Vec::new(),
        pg: Vec::new(),
        repetitions: 5,
        power: "auto".into(),
        gpus: 0,
    };
    for (at, k, v) in keyed(labels, &SWEEP_KEYS, 3)? {
        let label = format!("{k}:{v}");
        let r = match k {
            "p" => lengths(k, v).map(|x| s.prompt = x),
            "n" => lengths(k, v).map(|x| s.gen_lengths = x),
            "pg" => pairs(v).map(|x| s.pg = x),
            "r" => number(k, v, 1, MAX_REPETITIONS).map(|x| s.repetitions = x),
            "power" => power(v).map(|x| s.power = x),
            _ => number(k, v, 0, 4096).map(|x| s.gpus = x),
        };
        r.map_err(|e| e.at(at, &label))?;
    }
    s.validate()?;
    Ok(s)
}

/// `<model>-ab-<recipe>-draft:<model>-...`.
pub fn parse_ab(labels: &[&str]) -> Result<AbName, NameError> {
    let (model, recipe) = head(labels, "ab")?;
    let mut a = AbName {
        model: model.into(),
        recipe: recipe.into(),
        draft: String::new(),
        isl: 128,
        osl: 128,
        reqs: 32,
        bs: 1,
        blocks: 4,
        gpus: (0, 0),
        place: Placement::Separate,
        power: "auto".into(),
    };
    for (at, k, v) in keyed(labels, &AB_KEYS, 3)? {
        let label = format!("{k}:{v}");
        let r = match k {
            "draft" => check_word("the draft model", v, at).map(|()| a.draft = v.into()),
            "isl" => number(k, v, 1, MAX_LENGTH).map(|x| a.isl = x),
            "osl" => number(k, v, 1, MAX_LENGTH).map(|x| a.osl = x),
            "reqs" => number(k, v, 1, 10_000_000).map(|x| a.reqs = x),
            "bs" => number(k, v, 1, 65_536).map(|x| a.bs = x),
            "blocks" => number(k, v, 1, 10_000).map(|x| a.blocks = x),
            "gpus" => match v.split_once(',') {
                Some((x, y)) => number(k, x, 0, 4096)
                    .and_then(|x| Ok((x, number(k, y, 0, 4096)?)))
                    .map(|g| a.gpus = g),
                None => number(k, v, 0, 4096).map(|x| a.gpus = (x, x)),
            },
            "place" => Placement::parse(v)
                .map(|p| a.place = p)
                .ok_or_else(|| bad(format!("`place:{v}`: expected same or separate"))),
            _ => power(v).map(|x| a.power = x),
        };
        r.map_err(|e| e.at(at, &label))?;
    }
    if a.draft.is_empty() {
        return Err(NameError::new(
            K::Truncated,
            "an A/B name needs side B's draft model: `draft:<model>` (a catalog model)",
        ));
    }
    Ok(a)
}

impl SweepName {
    fn validate(&self) -> Result<(), NameError> {
        plan_tests(&self.prompt, &self.gen_lengths, &self.pg)
            .map(|_| ())
            .map_err(|e| NameError::new(K::InvalidCombination, e))
    }

    /// The tests, in the order they run.
    pub fn tests(&self) -> Vec<SweepTest> {
        plan_tests(&self.prompt, &self.gen_lengths, &self.pg).unwrap_or_default()
    }

    /// The canonical name of the sweep of `test` alone: a case's label (unique per test, as
    /// upstream's per-case labels are the name narrowed to the case's lengths).
    pub fn case_label(&self, test: &SweepTest) -> String {
        let one = SweepName {
            prompt: Vec::new(),
            gen_lengths: Vec::new(),
            pg: Vec::new(),
            ..self.clone()
        };
        let one = match test.test_type {
            super::TestType::Prompt => SweepName {
                prompt: vec![test.n_prompt],
                ..one
            },
            super::TestType::Generation => SweepName {
                gen_lengths: vec![test.n_gen],
                ..one
            },
            super::TestType::Both => SweepName {
                pg: vec![(test.n_prompt, test.n_gen)],
                ..one
            },
        };
        one.canonical()
    }

    pub fn canonical(&self) -> String {
        let join = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join("+");
        let mut s = format!("{}-sweep-{}", self.model, self.recipe);
        if !self.prompt.is_empty() {
            s.push_str(&format!("-p:{}", join(&self.prompt)));
        }
        if !self.gen_lengths.is_empty() {
            s.push_str(&format!("-n:{}", join(&self.gen_lengths)));
        }
        if !self.pg.is_empty() {
            let pg: Vec<String> = self.pg.iter().map(|(p, g)| format!("{p},{g}")).collect();
            s.push_str(&format!("-pg:{}", pg.join("+")));
        }
        s.push_str(&format!("-r:{}", self.repetitions));
        if self.power != "auto" {
            s.push_str(&format!("-power:{}", self.power));
        }
        if self.gpus > 0 {
            s.push_str(&format!("-gpus:{}", self.gpus));
        }
        s
    }
}

impl AbName {
    pub fn canonical(&self) -> String {
        let mut s = format!(
            "{}-ab-{}-draft:{}-isl:{}-osl:{}-reqs:{}-bs:{}-blocks:{}",
            self.model,
            self.recipe,
            self.draft,
            self.isl,
            self.osl,
            self.reqs,
            self.bs,
            self.blocks
        );
        match self.gpus {
            (0, 0) => {}
            (a, b) if a == b => s.push_str(&format!("-gpus:{a}")),
            (a, b) => s.push_str(&format!("-gpus:{a},{b}")),
        }
        if self.place == Placement::Same {
            s.push_str("-place:same");
        }
        if self.power != "auto" {
            s.push_str(&format!("-power:{}", self.power));
        }
        s
    }
}

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
    let parsed = super::parse(&name).map_err(|e| format!("{kind}: {e} (as the name `{name}`)"))?;
    Ok(parsed.canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PerfName, parse};
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
