//! Built-in benchmarks (`perfgate bench-*`): speed targets live here, not in timed tests.

use std::fmt;
use std::time::Instant;

use crate::config::Slot;
use crate::harness::CommonArgs;

pub struct NamesReport {
    pub count: usize,
    pub load_ms: f64,
    pub total_ms: f64,
    pub cases: usize,
}

impl fmt::Display for NamesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "collect+parse+plan {} names ({} cases): {:.1} ms total ({:.1} ms reading the list), {:.2} µs per name",
            self.count,
            self.cases,
            self.total_ms,
            self.load_ms,
            self.total_ms * 1000.0 / self.count.max(1) as f64
        )
    }
}

/// Writes a list of `count` distinct real-shaped names (the sample names with varied request
/// counts), then times what the harness does before the first benchmark starts.
pub fn names(count: usize) -> anyhow::Result<NamesReport> {
    const SAMPLES: &str = include_str!("../tests/fixtures/names/trtllm_perf_test_names.tsv");
    let bases: Vec<&str> = SAMPLES
        .lines()
        .skip(1)
        .filter(|l| l.ends_with("\tok"))
        .filter_map(|l| l.split('\t').next())
        .filter(|n| n.contains("-bench-") && !n.contains("reqs:"))
        .collect();
    anyhow::ensure!(!bases.is_empty(), "no sample names");
    let dir = std::env::temp_dir().join(format!("perfgate-bench-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let list = dir.join("list.txt");
    let mut text = String::with_capacity(count * 120);
    for i in 0..count {
        let base = bases[i % bases.len()];
        // Put `reqs:` in its slot: before the first label the grammar orders after it.
        let labels: Vec<&str> = base.split('-').collect();
        let at = labels
            .iter()
            .skip(1)
            .position(|l| Slot::classify(l).is_some_and(|s| s > Slot::Reqs))
            .map_or(labels.len(), |p| p + 1);
        let mut name = labels[..at].join("-");
        name.push_str(&format!("-reqs:{}", 1000 + i / bases.len()));
        for l in &labels[at..] {
            name.push('-');
            name.push_str(l);
        }
        text.push_str(&format!(
            "perf/test_perf.py::test_perf[{name}] TIMEOUT (60)\n"
        ));
    }
    std::fs::write(&list, text)?;
    let common = CommonArgs {
        test_prefix: Some("H100_80GB_HBM3".into()),
        ..CommonArgs::for_lists(vec![list.clone()])?
    };
    let t0 = Instant::now();
    let loaded = crate::testlist::load(&common.test_list, &Default::default());
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    drop(loaded);
    let t0 = Instant::now();
    let collection = common.collect()?;
    let total_ms = t0.elapsed().as_secs_f64() * 1e3;
    let _ = std::fs::remove_dir_all(&dir);
    let parsed = collection.tests.iter().filter(|t| t.name.is_ok()).count();
    anyhow::ensure!(
        parsed == count,
        "only {parsed} of {count} generated names parsed"
    );
    let cases = collection
        .tests
        .iter()
        .filter_map(|t| t.plan.as_ref())
        .map(|p| p.cases.len())
        .sum();
    Ok(NamesReport {
        count,
        load_ms,
        total_ms,
        cases,
    })
}
