//! Built-in benchmarks (`perfgate bench-*`): speed targets live here, not in timed tests.

use std::fmt;
use std::time::Instant;

use crate::collect::CollectOptions;
use crate::config::Slot;

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
    let common = CollectOptions {
        test_prefix: Some("H100_80GB_HBM3".into()),
        ..CollectOptions::for_lists(vec![list.clone()])
    };
    let t0 = Instant::now();
    let loaded = crate::testlist::load(&common.test_lists, &Default::default());
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    drop(loaded);
    let t0 = Instant::now();
    let collection = common.collect(&crate::backend::Registry::builtin())?;
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

pub struct ParseReport {
    pub bytes: u64,
    pub lines: u64,
    pub secs: f64,
    /// VmRSS right before parsing, in KiB.
    pub rss_before_kib: Option<u64>,
    /// VmHWM during parsing (reset just before it where the kernel allows), in KiB.
    pub peak_rss_kib: Option<u64>,
    /// Whether the peak could be reset before parsing (otherwise it covers the whole process).
    pub peak_reset: bool,
    pub summary: String,
}

impl ParseReport {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs.max(1e-9)
    }
}

impl fmt::Display for ParseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |k: Option<u64>| {
            k.map_or("unknown".to_string(), |k| {
                format!("{:.1} MiB", k as f64 / 1024.0)
            })
        };
        writeln!(
            f,
            "parse_reader: {:.1} MB ({} lines) in {:.1} ms: {:.0} MB/s",
            self.bytes as f64 / 1e6,
            self.lines,
            self.secs * 1e3,
            self.mb_per_s()
        )?;
        writeln!(
            f,
            "memory: RSS before parsing {}, peak RSS {} {}",
            mib(self.rss_before_kib),
            mib(self.peak_rss_kib),
            if self.peak_reset {
                "(VmHWM reset just before parsing)"
            } else {
                "(VmHWM of the whole process: could not reset it)"
            }
        )?;
        write!(f, "report: {}", self.summary)
    }
}

/// Writes a ~`size_mb` MB log (a PyTorch-backend run: start-up lines, KV cache allocations on
/// 8 ranks, per-iteration logging, then a real era-D report and shutdown lines) to a temp file,
/// then times [`crate::report::parse_reader`] over it and reads the peak RSS.
pub fn parse(size_mb: u64) -> anyhow::Result<ParseReport> {
    use std::io::{BufWriter, Write};
    const REPORT: &str = include_str!(
        "../tests/fixtures/bench_logs/009-devblog-llama31-8b-pytorch-streaming-v0.21.0rc0.log"
    );
    anyhow::ensure!(size_mb > 0, "--size-mb must be positive");
    let path =
        std::env::temp_dir().join(format!("perfgate-bench-parse-{}.log", std::process::id()));
    let target = size_mb * 1_000_000;
    {
        let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        let ts = "[11/24/2025-08:01:02] [TRT-LLM] [I] ";
        writeln!(w, "[TensorRT-LLM] TensorRT-LLM version: 1.2.0")?;
        writeln!(w, "{ts}Preparing to run throughput benchmark...")?;
        for rank in 0..8 {
            // The estimation pass, then the real allocation (the larger one is the KV cache).
            writeln!(
                w,
                "[TensorRT-LLM][INFO] [MemUsageChange] Allocated 0.56 GiB for max tokens in paged KV cache (8224)."
            )?;
            writeln!(
                w,
                "[TensorRT-LLM][RANK {rank}][INFO] Number of tokens per block: 32."
            )?;
            writeln!(
                w,
                "[TensorRT-LLM][INFO] [MemUsageChange] Allocated 61.{rank}2 GiB for max tokens in paged KV cache (1048576)."
            )?;
        }
        let mut written: u64 = 0;
        let mut iter: u64 = 0;
        let reserve = REPORT.len() as u64 + 4096;
        while written + reserve < target {
            iter += 1;
            let line = if iter.is_multiple_of(97) {
                format!(
                    "{ts}Request submission complete. [count={iter}, time=0.0012s, rate=2590780.97 req/s]\n"
                )
            } else if iter.is_multiple_of(89) {
                format!(
                    "[TensorRT-LLM][WARNING] Iteration {iter}: scheduler deferred 3 requests: KV cache is full (free blocks: 0)\n"
                )
            } else {
                format!(
                    "{ts}iter = {iter}, global_rank = 0, rank = 0, currank_total_requests = {}/30000, host_step_time = {}.{:03}ms, prev_device_step_time = {}.{:03}ms, timestamp = 2025-11-24 08:01:02, num_scheduled_requests: 256, states = {{'num_ctx_requests': 0, 'num_ctx_tokens': 0, 'num_generation_tokens': 256}}\n",
                    iter % 30000,
                    10 + iter % 7,
                    iter % 1000,
                    9 + iter % 5,
                    (iter * 7) % 1000
                )
            };
            w.write_all(line.as_bytes())?;
            written += line.len() as u64;
        }
        writeln!(w, "{ts}")?;
        w.write_all(REPORT.as_bytes())?;
        writeln!(w, "{ts}Thread proxy_dispatch_result_thread stopped.")?;
        w.flush()?;
    }
    let bytes = std::fs::metadata(&path)?.len();
    let rss_before_kib = proc_status_kib("VmRSS");
    // Writing 5 to clear_refs resets VmHWM, so the peak measured is the parser's.
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let file = std::fs::File::open(&path)?;
    let t0 = Instant::now();
    let report = crate::report::parse_reader(std::io::BufReader::with_capacity(1 << 18, file));
    let secs = t0.elapsed().as_secs_f64();
    let peak_rss_kib = proc_status_kib("VmHWM");
    let lines = {
        use std::io::BufRead;
        std::io::BufReader::new(std::fs::File::open(&path)?)
            .split(b'\n')
            .count() as u64
    };
    let _ = std::fs::remove_file(&path);
    let report = report?;
    anyhow::ensure!(
        report.kind == crate::report::ReportKind::Throughput
            && report.era.as_deref() == Some("D")
            && report.metrics.get("INFERENCE_TIME") == Some(&1155.5715)
            && report.metrics.get("KV_CACHE_SIZE") == Some(&61.72),
        "the synthesized log was misread: {report:?}"
    );
    let summary = format!(
        "{:?}, era {}, {} metrics, {} missing, {} warning(s); KV_CACHE_SIZE {} GiB",
        report.kind,
        report.era.as_deref().unwrap_or("?"),
        report.metrics.len(),
        report.missing.len(),
        report.warnings.len(),
        report
            .metrics
            .get("KV_CACHE_SIZE")
            .copied()
            .unwrap_or(f64::NAN)
    );
    Ok(ParseReport {
        bytes,
        lines,
        secs,
        rss_before_kib,
        peak_rss_kib,
        peak_reset,
        summary,
    })
}

/// A `Vm...:  1234 kB` field of /proc/self/status.
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
