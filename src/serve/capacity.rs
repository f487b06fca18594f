//! How much load the client itself sustains, measured against a server that answers at once
//! (serve-mock at zero delay, `benches/serve_capacity.sh`): requests/s and SSE events/s on one
//! core (the current-thread runtime), with the client's CPU time, and the self-check (send lag,
//! event-loop lag) with thousands of streams open at once. A benchmark that prints, not a test
//! that times.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;

use super::error::ServeError;
use super::options::{
    Arrival, BenchOptions, DatasetSource, Endpoint, LoadLevel, LoadOptions, MetricOptions,
    OutputOptions, ServerKind, Stop, Target,
};

#[derive(Debug, Clone)]
pub struct CapacityOptions {
    /// serve-mock's URL (it takes `mock_ttft_ms` / `mock_itl_ms` from the request body).
    pub url: String,
    /// A prompt JSONL file (any prompt; the mock does not read it).
    pub prompts: std::path::PathBuf,
    /// Closed-loop concurrency of the zero-delay scenarios.
    pub concurrency: u32,
    /// Requests per zero-delay scenario.
    pub requests: u64,
    /// Output tokens (one per event) of the events/s scenario.
    pub osl: u64,
    /// Streams open at once in the many-streams scenario (0: skip it).
    pub streams: u32,
    /// Gap between events of those streams (ms); they then last `osl_streams × itl`.
    pub stream_itl_ms: f64,
    pub stream_osl: u64,
    /// Client runtime threads for the many-streams scenario (the zero-delay ones use one).
    pub stream_client_threads: usize,
}

/// One scenario's figures.
#[derive(Debug, Clone)]
pub struct CapacityRow {
    pub scenario: String,
    pub requests: u64,
    pub failed: u64,
    pub wall_s: f64,
    pub requests_per_s: f64,
    pub events_per_s: f64,
    /// Client process CPU time (user + system) over the scenario.
    pub cpu_s: f64,
    /// Events per client CPU second: what one saturated core would read.
    pub events_per_cpu_s: f64,
    pub requests_per_cpu_s: f64,
    pub send_lag_p99_ms: Option<f64>,
    pub loop_lag_p99_ms: Option<f64>,
    pub lagged: bool,
}

fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn scenario(
    o: &CapacityOptions,
    name: &str,
    concurrency: u32,
    requests: u64,
    osl: u64,
    itl_ms: f64,
    threads: usize,
) -> Result<CapacityRow, ServeError> {
    let mut extra = serde_json::Map::new();
    extra.insert(
        "mock_ttft_ms".into(),
        json!(if itl_ms > 0.0 { itl_ms } else { 0.0 }),
    );
    extra.insert("mock_itl_ms".into(), json!(itl_ms));
    let opts = BenchOptions {
        target: Target {
            server_kind: ServerKind::Vllm,
            extra_body: extra,
            stall_timeout: Duration::from_secs(60),
            ..Target::new(o.url.clone(), Endpoint::Completions, "")
        },
        dataset: DatasetSource::File {
            path: o.prompts.clone(),
            osl: Some(osl),
        },
        tokenizer: None,
        load: LoadOptions {
            levels: vec![LoadLevel::Concurrency(concurrency)],
            arrival: Arrival::Poisson,
            stop: Stop::Count(requests),
            warmup: u64::from(concurrency.min(64)),
            seed: 0,
        },
        metrics: MetricOptions::default(),
        outputs: OutputOptions::default(),
        client_threads: threads,
    };
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let report = super::run(&opts, &mut |_, _| Ok(()))?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let level = report
        .levels
        .first()
        .ok_or_else(|| ServeError::Usage("the scenario ran no level".into()))?;
    let s = &level.summary;
    let events: u64 = level.records.iter().map(|r| r.content.len() as u64).sum();
    let per = |x: f64, d: f64| if d > 0.0 { x / d } else { 0.0 };
    Ok(CapacityRow {
        scenario: name.to_string(),
        requests: s.total,
        failed: s.failed,
        wall_s: wall,
        requests_per_s: s.request_throughput,
        events_per_s: per(events as f64, s.duration_s),
        cpu_s: cpu,
        events_per_cpu_s: per(events as f64, cpu),
        requests_per_cpu_s: per(s.total as f64, cpu),
        send_lag_p99_ms: s.self_check.send_lag.percentile(99.0),
        loop_lag_p99_ms: s.self_check.loop_lag.percentile(99.0),
        lagged: s.self_check.lagged,
    })
}

/// Runs the scenarios in turn.
pub fn run(o: &CapacityOptions) -> Result<Vec<CapacityRow>, ServeError> {
    let mut rows = vec![
        scenario(
            o,
            &format!("requests: zero delay, c={}, osl 1", o.concurrency),
            o.concurrency,
            o.requests,
            1,
            0.0,
            1,
        )?,
        scenario(
            o,
            &format!("events: zero delay, c={}, osl {}", o.concurrency, o.osl),
            o.concurrency,
            (o.requests / 4).max(u64::from(o.concurrency) * 4),
            o.osl,
            0.0,
            1,
        )?,
    ];
    if o.streams > 0 {
        rows.push(scenario(
            o,
            &format!(
                "{} streams, {} events {} ms apart, {} thread(s)",
                o.streams, o.stream_osl, o.stream_itl_ms, o.stream_client_threads
            ),
            o.streams,
            u64::from(o.streams) * 2,
            o.stream_osl,
            o.stream_itl_ms,
            o.stream_client_threads.max(1),
        )?);
    }
    Ok(rows)
}

fn opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2}"))
}

pub fn render(rows: &[CapacityRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "serve-bench client capacity against serve-mock (zero-delay rows: current-thread \
         runtime, one core)"
    );
    let _ = writeln!(
        out,
        "{:<46} {:>8} {:>6} {:>9} {:>10} {:>7} {:>11} {:>11} {:>9} {:>9} {:>6}",
        "scenario",
        "requests",
        "failed",
        "req/s",
        "events/s",
        "CPU s",
        "req/CPU-s",
        "events/CPU-s",
        "lag p99",
        "loop p99",
        "lagged"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<46} {:>8} {:>6} {:>9.0} {:>10.0} {:>7.2} {:>11.0} {:>11.0} {:>9} {:>9} {:>6}",
            r.scenario,
            r.requests,
            r.failed,
            r.requests_per_s,
            r.events_per_s,
            r.cpu_s,
            r.requests_per_cpu_s,
            r.events_per_cpu_s,
            opt(r.send_lag_p99_ms),
            opt(r.loop_lag_p99_ms),
            if r.lagged { "YES" } else { "no" }
        );
    }
    let _ = writeln!(
        out,
        "(req/CPU-s and events/CPU-s: what the client reads per second of its own CPU, i.e. on \
         one saturated core; req/s and events/s are what this run reached, bounded by the mock \
         when the client's CPU stayed below one core; lags in ms)"
    );
    out
}
