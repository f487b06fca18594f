//! Splitting a test list into shards that run as separate jobs (a SLURM array), and the
//! record each shard leaves in its output directory (`shard.json`).
//!
//! The partition is a pure function of the cases (test id, GPUs, cost) and the shard count:
//! the same list, settings and history give the same shards on every machine, so each job of
//! an array computes its own shard and none needs a file from another.
//!
//! - **GPU-pure.** Every case of a shard needs the same number of GPUs (tp × pp), so one array
//!   per GPU count can ask for exactly that. The `count` shards are shared out among the GPU
//!   classes in proportion to their total cost, at least one each: each next shard goes to the
//!   class with the highest cost per shard (ties: fewer GPUs first).
//! - **Balanced.** Within a class, LPT: the most expensive case first (ties by test id) onto
//!   the least-loaded shard (ties: the lower index).
//! - **Cost.** A test's latest duration in the history when one is stored; else its size,
//!   Σ over its cases of num_requests × (isl + osl) tokens. When some tests have a duration
//!   and others not, sizes are converted to seconds at the rate of the tests that have both.
//!
//! [`merge`] joins the shards' output directories back into one.

pub mod merge;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::collect::Collected;
use crate::config::PerfName;

/// `--shard K/N`: the K-th (1-based) of N shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard `{given}`: {reason}")]
    Spec { given: String, reason: String },
    #[error(
        "{count} shard(s) cannot keep GPU counts apart: the list needs {} GPU classes ({}); give --count {} or more",
        classes.len(),
        classes.iter().map(|(g, n)| format!("{g} GPU(s): {n} test(s)")).collect::<Vec<_>>().join(", "),
        classes.len()
    )]
    TooFewShards {
        count: usize,
        /// (GPUs, tests) of every class.
        classes: Vec<(u32, usize)>,
    },
    #[error("the shard count must be at least 1")]
    ZeroCount,
    #[error("shard {index} of {count} does not exist (shards are numbered 1 to {count})")]
    NoSuchShard { index: usize, count: usize },
}

impl FromStr for ShardSpec {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<ShardSpec, ShardError> {
        let bad = |reason: &str| ShardError::Spec {
            given: s.to_string(),
            reason: reason.to_string(),
        };
        let (k, n) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| bad("expected K/N, e.g. 2/8 (the 2nd of 8 shards)"))?;
        let num = |v: &str, what: &str| -> Result<usize, ShardError> {
            v.trim().parse::<usize>().map_err(|_| {
                bad(&format!(
                    "{what} `{v}` is not a whole number (expected K/N, e.g. 2/8)"
                ))
            })
        };
        let index = num(k, "K")?;
        let count = num(n, "N")?;
        if count == 0 {
            return Err(bad("N (the number of shards) must be at least 1"));
        }
        if index == 0 {
            return Err(bad("K is 1-based: the first shard is 1/N"));
        }
        if index > count {
            return Err(bad(&format!(
                "K must be between 1 and N ({count}), not {index}"
            )));
        }
        Ok(ShardSpec { index, count })
    }
}

/// What the cost of a case is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CostUnit {
    /// Wall seconds (from the history).
    Seconds,
    /// Requests × (isl + osl).
    Tokens,
}

/// One test to place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardCase {
    pub test_id: String,
    /// GPUs the test needs (tp × pp); 1 for a name that cannot be parsed.
    pub gpus: u32,
    /// Expected cost, in [`ShardCase::unit`]; finite and > 0.
    pub cost: f64,
    pub unit: CostUnit,
}

/// One shard of a partition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    pub gpus: u32,
    /// In placement order (most expensive first).
    pub test_ids: Vec<String>,
    pub expected_cost: f64,
}

/// The smallest cost a test counts with: even a test that does nothing (a SKIP) takes a slot,
/// and a zero would put every such test on one shard.
const MIN_COST: f64 = 1e-9;

/// Splits `cases` into `count` GPU-pure shards, balanced by cost. A test id given twice counts
/// once (with the larger cost). Shards are numbered by GPU class (fewest GPUs first), then by
/// load; a class never gets more shards than it has tests unless every class is full, so empty
/// shards appear only when `count` exceeds the number of tests.
pub fn partition(cases: &[ShardCase], count: usize) -> Result<Vec<Shard>, ShardError> {
    if count == 0 {
        return Err(ShardError::ZeroCount);
    }
    // Class → (test id → cost); BTreeMaps make every later order independent of the input's.
    let mut classes: BTreeMap<u32, BTreeMap<&str, f64>> = BTreeMap::new();
    for c in cases {
        let cost = if c.cost.is_finite() {
            c.cost.max(MIN_COST)
        } else {
            MIN_COST
        };
        let slot = classes
            .entry(c.gpus)
            .or_default()
            .entry(c.test_id.as_str())
            .or_insert(cost);
        *slot = slot.max(cost);
    }
    // A test id listed under two GPU counts (impossible for one list) stays in the first.
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for tests in classes.values_mut() {
        tests.retain(|id, _| seen.insert(id));
    }
    classes.retain(|_, tests| !tests.is_empty());
    if classes.is_empty() {
        return Ok((1..=count)
            .map(|index| Shard {
                index,
                gpus: 1,
                test_ids: Vec::new(),
                expected_cost: 0.0,
            })
            .collect());
    }
    if count < classes.len() {
        return Err(ShardError::TooFewShards {
            count,
            classes: classes.iter().map(|(g, t)| (*g, t.len())).collect(),
        });
    }
    let totals: Vec<(u32, f64, usize)> = classes
        .iter()
        .map(|(g, t)| (*g, t.values().sum::<f64>(), t.len()))
        .collect();
    let mut given = vec![1usize; totals.len()];
    for _ in totals.len()..count {
        // Highest cost per shard among the classes with a test left for a new shard; when
        // every class is full, among all.
        let pick = |only_open: bool| {
            let mut best: Option<(usize, f64)> = None;
            for (i, &(_, total, n)) in totals.iter().enumerate() {
                if only_open && given[i] >= n {
                    continue;
                }
                let per = total / given[i] as f64;
                if best.is_none_or(|(_, b)| per > b) {
                    best = Some((i, per));
                }
            }
            best.map(|(i, _)| i)
        };
        let i = pick(true).or_else(|| pick(false)).unwrap_or(0);
        given[i] += 1;
    }
    let mut out = Vec::with_capacity(count);
    for ((gpus, tests), n) in classes.iter().zip(given) {
        let mut order: Vec<(&str, f64)> = tests.iter().map(|(id, c)| (*id, *c)).collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut shards: Vec<(f64, Vec<String>)> = vec![(0.0, Vec::new()); n];
        for (id, cost) in order {
            let mut least = 0;
            for (i, s) in shards.iter().enumerate() {
                if s.0 < shards[least].0 {
                    least = i;
                }
            }
            shards[least].0 += cost;
            shards[least].1.push(id.to_string());
        }
        for (cost, test_ids) in shards {
            out.push(Shard {
                index: out.len() + 1,
                gpus: *gpus,
                test_ids,
                expected_cost: cost,
            });
        }
    }
    Ok(out)
}

/// The shard `spec` names in a partition of `cases`.
pub fn select(cases: &[ShardCase], spec: ShardSpec) -> Result<Shard, ShardError> {
    let shards = partition(cases, spec.count)?;
    shards
        .into_iter()
        .nth(spec.index - 1)
        .ok_or(ShardError::NoSuchShard {
            index: spec.index,
            count: spec.count,
        })
}

/// SHA-256 of a whole partition (every shard's GPUs and test ids, in order): shards of one run
/// must have been cut from the same partition, which `perfgate merge` checks with this.
pub fn partition_hash(shards: &[Shard]) -> String {
    let mut text = String::new();
    for s in shards {
        text.push_str(&format!("{} {}\n", s.index, s.gpus));
        for id in &s.test_ids {
            text.push_str(id);
            text.push('\n');
        }
    }
    crate::textutil::sha256_hex(text.as_bytes())
}

/// A test's size: Σ over its cases of num_requests × (isl + osl); `None` for a name without
/// sequence lengths (build-only, server-style, unparsable).
pub fn size_of(t: &Collected) -> Option<f64> {
    let Ok(PerfName::Standard(cfg)) = &t.name else {
        return None;
    };
    let cases = cfg.cases();
    if cases.is_empty() {
        return None;
    }
    Some(
        cases
            .iter()
            .map(|c| {
                f64::from(cfg.num_reqs)
                    * (f64::from(c.input_len) + f64::from(c.output_len.unwrap_or(0)))
            })
            .sum(),
    )
}

/// The GPUs a test needs: tp × pp (the config keeps `num_gpus` equal to it), the plan's count
/// for a perf-sanity id; 1 when the name does not parse.
pub fn gpus_of(t: &Collected) -> u32 {
    match (&t.name, t.plan.as_ref().and_then(|p| p.gpus)) {
        (Ok(PerfName::Standard(cfg)), _) => cfg.num_gpus.max(1),
        (_, Some(g)) => g.max(1),
        _ => 1,
    }
}

/// The tests as [`ShardCase`]s, their cost from `durations` (test id → seconds) where known,
/// else from their size (see the module docs).
pub fn shard_cases(tests: &[&Collected], durations: &BTreeMap<String, f64>) -> Vec<ShardCase> {
    let sizes: Vec<Option<f64>> = tests.iter().map(|t| size_of(t)).collect();
    let known: Vec<Option<f64>> = tests
        .iter()
        .map(|t| {
            durations
                .get(&t.test_id)
                .copied()
                .filter(|s| s.is_finite() && *s >= 0.0)
        })
        .collect();
    // Seconds per token from the tests that have both; a test of unknown size counts as the
    // median size.
    let mut sized: Vec<f64> = sizes.iter().flatten().copied().collect();
    sized.sort_by(f64::total_cmp);
    let median = sized.get(sized.len() / 2).copied().unwrap_or(1.0);
    let size = |i: usize| sizes[i].unwrap_or(median);
    let any_seconds = known.iter().any(Option::is_some);
    let (mut secs, mut toks) = (0.0, 0.0);
    for (i, k) in known.iter().enumerate() {
        if let Some(s) = k {
            secs += s;
            toks += size(i);
        }
    }
    let rate = if toks > 0.0 && secs > 0.0 {
        secs / toks
    } else {
        1.0
    };
    tests
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (cost, unit) = match (known[i], any_seconds) {
                (Some(s), _) => (s, CostUnit::Seconds),
                (None, true) => (size(i) * rate, CostUnit::Seconds),
                (None, false) => (size(i), CostUnit::Tokens),
            };
            ShardCase {
                test_id: t.test_id.clone(),
                gpus: gpus_of(t),
                cost,
                unit,
            }
        })
        .collect()
}

/// The file each run writes in its output directory.
pub const RECORD_FILE: &str = "shard.json";

/// A list file and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListDigest {
    pub path: PathBuf,
    pub sha256: String,
}

impl ListDigest {
    pub fn of(path: &Path) -> anyhow::Result<ListDigest> {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read the test list: {e}", path.display()))?;
        Ok(ListDigest {
            path: path.to_path_buf(),
            sha256: crate::textutil::sha256_hex(&bytes),
        })
    }
}

/// `<output-dir>/shard.json`: which run and shard wrote the directory, what it was given to do
/// and what it finished. Rewritten (atomically) as each test finishes, so a killed shard
/// shows what it finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// perfgate's version that wrote it.
    pub perfgate: String,
    pub run_id: String,
    pub lists: Vec<ListDigest>,
    /// SHA-256 of [`ShardRecord::settings`] (its JSON): shards of one run must agree.
    pub settings_sha256: String,
    /// The options that change which tests run or what they measure (see
    /// `harness::result_settings`).
    pub settings: serde_json::Value,
    pub shard: ShardSpec,
    /// The GPUs every test of this shard needs; `None` for an unsharded run.
    pub gpus: Option<u32>,
    /// See [`partition_hash`]; `None` for an unsharded run.
    pub partition_sha256: Option<String>,
    /// The tests this shard was given, in run order.
    pub assigned: Vec<String>,
    /// The tests that finished (passed, failed or ignored), in the order they did.
    pub finished: Vec<String>,
    /// RFC 3339.
    pub started: String,
    pub updated: String,
    /// The output directory it is written to.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// `shard.json` is rewritten as each test finishes. A test cut short or never started because
/// the job was signalled (SLURM's time limit sends SIGTERM) did not finish: `perfgate merge`
/// reports it as such.
impl crate::results::Sink for ShardRecord {
    fn what(&self) -> &'static str {
        "the shard record"
    }

    fn test_finished(&mut self, test: &crate::results::TestRecord) -> anyhow::Result<()> {
        if crate::runner::signals::interrupted().is_some() {
            return Ok(());
        }
        self.finished.push(test.test_id.clone());
        self.updated = crate::record::rfc3339(std::time::SystemTime::now());
        let dir = self.dir.clone();
        self.write(&dir)
    }
}

impl ShardRecord {
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        crate::fsutil::write(&dir.join(RECORD_FILE), (json + "\n").as_bytes())?;
        Ok(())
    }

    /// Reads `<dir>/shard.json`.
    pub fn read(dir: &Path) -> anyhow::Result<ShardRecord> {
        let path = dir.join(RECORD_FILE);
        let text = crate::textutil::read_text(&path).map_err(|e| match e {
            crate::textutil::TextFileError::Io { cause, .. } => anyhow::anyhow!(
                "{}: cannot read the shard record ({cause}); is {} the output directory of a perfgate run?",
                path.display(),
                dir.display()
            ),
            not_text => not_text.into(),
        })?;
        serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}:{}:{}: not a perfgate shard record: {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })
    }

    /// Assigned tests that did not finish, in run order.
    pub fn unfinished(&self) -> Vec<String> {
        let done: BTreeSet<&str> = self.finished.iter().map(String::as_str).collect();
        self.assigned
            .iter()
            .filter(|t| !done.contains(t.as_str()))
            .cloned()
            .collect()
    }
}

/// The JSON `perfgate shards --format json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionReport {
    pub count: usize,
    /// What `expected_cost` counts.
    pub unit: CostUnit,
    pub partition_sha256: String,
    pub shards: Vec<ShardReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardReport {
    pub index: usize,
    pub gpus: u32,
    pub cases: usize,
    pub expected_cost: f64,
    pub test_ids: Vec<String>,
}

/// The partition of the lists in `common` into `count` shards, as a `--shard K/N` run with the
/// same options (and `--history`, `--regexp`) computes it.
pub fn plan(
    common: &crate::collect::CollectOptions,
    regexp: Option<&str>,
    history: Option<&Path>,
    count: usize,
) -> anyhow::Result<PartitionReport> {
    let re = regexp
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--regexp: invalid regular expression: {e}"))?;
    let collection = common.collect(&crate::backend::Registry::builtin())?;
    for d in &collection.diagnostics {
        eprintln!("{d}");
    }
    let tests: Vec<&Collected> = collection
        .tests
        .iter()
        .filter(|t| re.as_ref().is_none_or(|re| re.is_match(&t.test_id)))
        .collect();
    let cases = shard_cases(&tests, &crate::history::test_durations(history, None)?);
    let shards = partition(&cases, count)?;
    Ok(PartitionReport {
        count,
        unit: cases.first().map_or(CostUnit::Tokens, |c| c.unit),
        partition_sha256: partition_hash(&shards),
        shards: shards
            .into_iter()
            .map(|s| ShardReport {
                index: s.index,
                gpus: s.gpus,
                cases: s.test_ids.len(),
                expected_cost: s.expected_cost,
                test_ids: s.test_ids,
            })
            .collect(),
    })
}
