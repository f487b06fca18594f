//! `perfgate bench-dashboard`: a synthetic history of nightlies (runs, every measurement,
//! every verdict, as the harness stores them) and the time to build its site.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use crate::history::{History, MeasurementRow, RunMeta};
use crate::record::State;
use crate::record::Verdict;
use crate::record::VerdictRecord;
use crate::record::metric::{Direction, metric};

pub struct BenchOptions {
    pub nights: usize,
    pub cases: usize,
    pub metrics: usize,
    pub dir: PathBuf,
    /// Build from `dir/history.sqlite` as it is (an error when absent).
    pub reuse: bool,
}

pub struct BenchReport {
    pub reused: bool,
    pub nights: usize,
    pub cases: usize,
    pub metrics: usize,
    pub history_mb: f64,
    pub fill_s: f64,
    pub build_s: f64,
    pub summary: super::Summary,
    pub index_kb: f64,
    pub site: PathBuf,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reused {
            writeln!(
                f,
                "history: reused, {:.0} MB; showing its last {} nights",
                self.history_mb, self.nights
            )?;
        } else {
            writeln!(
                f,
                "history: {} nights x {} cases x {} metrics = {} verdicts, {:.0} MB, synthesized in {:.1} s",
                self.nights,
                self.cases,
                self.metrics,
                self.nights * self.cases * self.metrics,
                self.history_mb,
                self.fill_s
            )?;
        }
        write!(
            f,
            "dashboard: built in {:.2} s: {} cases, {} series, {} points, {} sweeps, {} files, {:.1} MB (index data {:.0} kB) in {}",
            self.build_s,
            self.summary.cases,
            self.summary.series,
            self.summary.points,
            self.summary.sweeps,
            self.summary.files,
            self.summary.bytes as f64 / 1e6,
            self.index_kb,
            self.site.display()
        )
    }
}

/// Metrics in the order a case gets them; the first three gate.
const METRICS: &[&str] = &[
    "SEQ_THROUGHPUT",
    "TOTAL_OUTPUT_THROUGHPUT",
    "FIRST_TOKEN_TIME",
    "PER_USER_OUTPUT_THROUGHPUT",
    "PER_GPU_OUTPUT_THROUGHPUT",
    "GPU_POWER_MEAN",
    "INFERENCE_TIME",
    "OUTPUT_TOKEN_TIME",
    "GPU_ENERGY",
    "SM_CLOCK_MEAN",
];

const MODELS: &[&str] = &[
    "llama_v3.1_8b",
    "llama_v3.3_70b",
    "mixtral_8x7b_v0.1",
    "deepseek_r1_distill_qwen_32b",
    "qwen2_7b_instruct",
];
const CONCURRENCY: &[u32] = &[1, 2, 4, 8, 16, 32, 64, 128];

/// The label of synthetic case `i`: sweeps of concurrency over model, backend, precision and
/// lengths.
fn label(i: usize) -> String {
    let con = CONCURRENCY[i % CONCURRENCY.len()];
    let j = i / CONCURRENCY.len();
    let model = MODELS[j % MODELS.len()];
    let k = j / MODELS.len();
    let backend = if k.is_multiple_of(2) { "-pytorch" } else { "" };
    let precision = ["bfloat16", "float8", "float4"][(k / 2) % 3];
    let isl = 128 << ((k / 6) % 8);
    let osl = 128 << ((k / 48) % 4);
    let reqs = 512 + k / 192;
    format!("{model}-bench{backend}-{precision}-input_output_len:{isl},{osl}-reqs:{reqs}-con:{con}")
}

/// A deterministic pseudo-random number in [0, 1).
fn noise(a: usize, b: usize, c: usize) -> f64 {
    let mut x = (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (c as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

pub fn run(o: &BenchOptions) -> anyhow::Result<BenchReport> {
    std::fs::create_dir_all(&o.dir)?;
    let path = o.dir.join("history.sqlite");
    if o.reuse {
        if !path.is_file() {
            anyhow::bail!(
                "{}: no history to reuse; run without --reuse first",
                path.display()
            );
        }
        return build_timed(o, path, 0.0, true);
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let metrics: Vec<&str> = (0..o.metrics).map(|m| METRICS[m % METRICS.len()]).collect();
    let labels: Vec<String> = (0..o.cases).map(label).collect();
    let t0 = Instant::now();
    let mut history = History::open(&path)?;
    history.bench_bulk_load(o.nights, |night| {
        let run_id = format!("bench-{night:04}");
        let day = chrono::DateTime::<chrono::Utc>::from(std::time::UNIX_EPOCH)
            + chrono::Duration::days(20_000 + night as i64);
        let meta = RunMeta {
            run_id: run_id.clone(),
            started: day.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            host: format!("node-{}", night % 4),
            test_prefix: Some("H100_80GB_HBM3".into()),
            fingerprint: "driver=575.57;gpu=H100".into(),
            env_json: r#"{"driver":"575.57","gpu":"NVIDIA H100 80GB HBM3"}"#.into(),
            revision: Some(format!("{:040x}", night * 7919)),
            branch: Some("main".into()),
            build_url: None,
            imported_from: None,
        };
        let mut rows = Vec::with_capacity(o.cases * metrics.len());
        let mut verdicts = Vec::with_capacity(o.cases * metrics.len());
        for (c, label) in labels.iter().enumerate() {
            let test_id = format!("H100_80GB_HBM3/perf/test_perf.py::test_perf[{label}]");
            // One case in fifty regresses by 8% from a night of its own on.
            let step_at = (c * 37) % o.nights.max(1);
            let regressed = c % 50 == 7 && night >= step_at;
            for (m, name) in metrics.iter().enumerate() {
                let def = metric(name);
                let direction = def.map_or(Direction::HigherIsBetter, |d| d.direction);
                let center = 100.0 + (c % 97) as f64 * 10.0 + m as f64;
                let worse = match direction {
                    Direction::HigherIsBetter => 0.92,
                    Direction::LowerIsBetter => 1.08,
                };
                let value = center
                    * (1.0 + 0.01 * (noise(c, m, night) - 0.5))
                    * if regressed { worse } else { 1.0 };
                let perf_case_name = format!(
                    "H100_80GB_HBM3/perf/test_perf.py::test_perf_metric_{}[{label}]",
                    name.to_ascii_lowercase()
                );
                rows.push(MeasurementRow {
                    test_id: test_id.clone(),
                    perf_case_name: perf_case_name.clone(),
                    network_name: label.clone(),
                    case: None,
                    step: crate::backend::trtllm_bench::THROUGHPUT.into(),
                    metric: (*name).into(),
                    repetition: 1,
                    value,
                    state: State::Valid,
                });
                let change = (value / center - 1.0) * 100.0;
                let verdict = if regressed && m < 3 {
                    Verdict::Fail
                } else {
                    Verdict::Pass
                };
                verdicts.push(VerdictRecord {
                    run_id: run_id.clone(),
                    test_id: test_id.clone(),
                    perf_case_name,
                    network_name: label.clone(),
                    test_name: String::new(),
                    case: None,
                    step: crate::backend::trtllm_bench::THROUGHPUT.into(),
                    metric: (*name).into(),
                    unit: def.map_or("", |d| d.unit.symbol()).into(),
                    direction,
                    gated: m < 3,
                    verdict,
                    value: Some(value),
                    reps: vec![value],
                    baseline: Some(center),
                    change_pct: Some(change),
                    mde_pct: Some(2.0),
                    noise_pct: Some(0.3),
                    source: "history".into(),
                    history_nights: 20,
                    roofline_pct: None,
                    mfu_pct: None,
                    mbu_pct: None,
                    threshold: None,
                    absolute_threshold: None,
                    fingerprint: String::new(),
                    reruns: 0,
                    explanation: if verdict == Verdict::Fail {
                        format!("{change:+.1}% beyond the noise: a regression")
                    } else {
                        String::new()
                    },
                    evidence: Vec::new(),
                });
            }
        }
        (meta, rows, verdicts)
    })?;
    drop(history);
    let fill_s = t0.elapsed().as_secs_f64();
    build_timed(o, path, fill_s, false)
}

fn build_timed(
    o: &BenchOptions,
    path: PathBuf,
    fill_s: f64,
    reused: bool,
) -> anyhow::Result<BenchReport> {
    let history_mb = std::fs::metadata(&path).map_or(0.0, |m| m.len() as f64 / 1e6);
    let site = o.dir.join("site");
    let t1 = Instant::now();
    let summary = super::build(&super::Options {
        history: path,
        out: site.clone(),
        nights: o.nights,
    })?;
    let build_s = t1.elapsed().as_secs_f64();
    let index_kb =
        std::fs::metadata(site.join("data/index.js")).map_or(0.0, |m| m.len() as f64 / 1e3);
    Ok(BenchReport {
        reused,
        nights: o.nights,
        cases: o.cases,
        metrics: o.metrics,
        history_mb,
        fill_s,
        build_s,
        summary,
        index_kb,
        site,
    })
}
