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

use super::error::{NameError, NameErrorKind as K};
use super::sweep_tests::{MAX_LENGTH, MAX_REPETITIONS, SweepTest, plan_tests};
use crate::textutil::closest;

/// `--power` values.
const POWER: [&str; 5] = ["nvml", "jetson", "rapl", "auto", "none"];

const SWEEP_KEYS: [&str; 6] = ["p", "n", "pg", "r", "power", "gpus"];
const AB_KEYS: [&str; 9] = [
    "draft", "isl", "osl", "reqs", "bs", "blocks", "gpus", "place", "power",
];

/// How the servers of an A/B share the GPUs (`place:`; the plan's placement assigns them).
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
