//! The run: probe the server, prepare every request body, warm up, then each load level of
//! the sweep — closed loop (a fixed number in flight) or open loop (a precomputed schedule) —
//! with a watchdog for Ctrl-C, an event-loop lag sampler and a progress bar.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::dataset::{Dataset, FileOptions, Prompt};
use super::error::ServeError;
use super::exchange::{Clock, Exchange, Outgoing};
use super::grpc::{GrpcClient, GrpcRequest};
use super::http::{HttpClient, base_url, build_client};
use super::options::{BenchOptions, DatasetSource, Endpoint, LoadLevel, ServerKind, Stop};
use super::profile::{Profile, RequestShape, WirePrompt, body};
use super::record::{ErrorClass, RequestRecord};
use super::summary::{LevelSummary, SummaryInput, summarize};
use crate::dataset::LengthDist;

/// A finished level: its figures and its requests.
#[derive(Debug, Clone)]
pub struct LevelReport {
    pub index: usize,
    pub summary: LevelSummary,
    pub records: Vec<RequestRecord>,
}

/// What the run was, for outputs.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub url: String,
    pub endpoint: Endpoint,
    pub model: String,
    pub server_kind: ServerKind,
    pub dataset: String,
    pub num_samples: usize,
    pub tokenizer: Option<String>,
    pub streaming: bool,
    pub ignore_eos: bool,
    pub seed: u64,
    pub warmup: u64,
    pub arrival: super::options::Arrival,
    /// CLOCK_MONOTONIC (ns) at the run's epoch: per-request `t_*_ns` + this = the machine's
    /// monotonic clock, which other processes (a mock server) can stamp with too.
    pub epoch_monotonic_ns: u64,
    /// The wall clock (ns since the Unix epoch) at the run's epoch: per-request `t_*_ns` + this
    /// is on the clock telemetry stamps its readings with, so requests and power traces line
    /// up.
    pub epoch_unix_ns: u64,
    pub notes: Vec<String>,
    /// `YYYYmmdd-HHMMSS` (UTC) when the run started.
    pub started: String,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub info: RunInfo,
    pub levels: Vec<LevelReport>,
    /// Stopped by Ctrl-C / SIGTERM (the last level is partial).
    pub interrupted: bool,
}

/// A request ready to go: its body is built once, before measuring.
enum Payload {
    Http(Bytes),
    Grpc {
        text: String,
        min_length: Option<u32>,
    },
}

struct Prepared {
    payload: Payload,
    prompt_ids: bool,
    prompt_tokens: Option<u64>,
    output_tokens: u64,
    reference: Option<String>,
}

enum Transport {
    Http(HttpClient),
    Grpc(GrpcClient),
}

struct Shared {
    /// Prefix of every request id of this run (`perfgate-<run>-<phase>-<i>`), so a server's
    /// logs tell runs apart.
    run_id: String,
    clock: Clock,
    transport: Transport,
    prepared: Vec<Prepared>,
    request_timeout: Duration,
    endpoint: Endpoint,
}

/// Live counts of a phase, for the progress bar.
struct Counters {
    failed: AtomicU64,
    tokens: AtomicU64,
    bar: indicatif::ProgressBar,
}

impl Counters {
    fn new(bar: indicatif::ProgressBar) -> Arc<Counters> {
        Arc::new(Counters {
            failed: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            bar,
        })
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Raises the open-file limit to what `needed` connections take, if the hard limit allows.
fn raise_nofile(needed: u64) -> Result<(), ServeError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Ok(());
        }
        let want = needed + 256;
        if lim.rlim_cur >= want {
            return Ok(());
        }
        if lim.rlim_max < want {
            return Err(ServeError::Usage(format!(
                "{needed} concurrent connections need about {want} open files, but the hard \
                 limit is {} (raise it: ulimit -Hn, /etc/security/limits.conf)",
                lim.rlim_max
            )));
        }
        lim.rlim_cur = want;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    Ok(())
}

fn validate(o: &BenchOptions) -> Result<(), ServeError> {
    let usage = |m: String| Err(ServeError::Usage(m));
    if o.load.levels.is_empty() {
        return usage("no load level: give --concurrency or --request-rate".into());
    }
    for l in &o.load.levels {
        match *l {
            LoadLevel::Concurrency(0) => return usage("a concurrency must be at least 1".into()),
            LoadLevel::Rate { rate, .. } if !(rate.is_finite() && rate > 0.0) => {
                return usage(format!(
                    "a request rate must be a positive number (got {rate})"
                ));
            }
            LoadLevel::Rate {
                max_concurrency: Some(0),
                ..
            } => return usage("--max-concurrency must be at least 1".into()),
            LoadLevel::Rate {
                max_concurrency: None,
                ..
            } if matches!(o.load.stop, Stop::Iterations(_)) => {
                return usage(
                    "--iterations means concurrency × N requests: a request-rate level needs \
                     --num-prompts or --duration (or --max-concurrency)"
                        .into(),
                );
            }
            _ => {}
        }
    }
    match o.load.stop {
        Stop::Count(0) | Stop::Iterations(0) => {
            return usage("the number of requests must be at least 1".into());
        }
        Stop::Duration(d) if d.is_zero() => {
            return usage("--duration must be above zero".into());
        }
        _ => {}
    }
    if let super::options::Arrival::Gamma(k) = o.load.arrival
        && !(k.is_finite() && k > 0.0)
    {
        return usage(format!("gamma arrivals need a positive shape (got {k})"));
    }
    if o.client_threads == 0 {
        return usage("--client-threads must be at least 1".into());
    }
    Ok(())
}

/// How many measured requests a level issues (None: until the duration passes).
fn level_count(stop: Stop, level: &LoadLevel) -> Option<u64> {
    match stop {
        Stop::Count(n) => Some(n),
        Stop::Iterations(k) => level.max_concurrency().map(|c| c as u64 * k),
        Stop::Duration(_) => None,
    }
}

/// How many prompts to prepare.
fn pool_size(o: &BenchOptions) -> u64 {
    let measured = o
        .load
        .levels
        .iter()
        .map(|l| level_count(o.load.stop, l).unwrap_or(1000))
        .max()
        .unwrap_or(1);
    measured + o.load.warmup
}

fn load_dataset(
    o: &BenchOptions,
    tokenizer: Option<&tokenizers::Tokenizer>,
) -> Result<Dataset, ServeError> {
    match &o.dataset {
        DatasetSource::Synthetic {
            isl,
            osl,
            isl_stdev,
            osl_stdev,
        } => {
            let path = o.tokenizer.as_ref().ok_or_else(|| {
                ServeError::Usage(
                    "synthetic prompts (--isl/--osl) are token ids from the model's vocabulary: \
                     give --tokenizer DIR"
                        .into(),
                )
            })?;
            if *isl == 0 || *osl == 0 {
                return Err(ServeError::Usage(
                    "--isl and --osl must be at least 1".into(),
                ));
            }
            let dist = LengthDist::Normal {
                input_mean: *isl,
                input_stdev: *isl_stdev,
                output_mean: *osl,
                output_stdev: *osl_stdev,
            };
            super::dataset::synthetic(path, &dist, pool_size(o), o.load.seed)
        }
        DatasetSource::File { path, osl } => super::dataset::load_file(
            path,
            &FileOptions {
                osl: *osl,
                tokenizer,
            },
        ),
        DatasetSource::Prepared { dataset, .. } => Ok((**dataset).clone()),
    }
}

fn load_tokenizer(o: &BenchOptions) -> Result<Option<tokenizers::Tokenizer>, ServeError> {
    o.tokenizer
        .as_ref()
        .map(|p| {
            crate::dataset::tokenizer::load_tokenizer(p).map_err(|e| ServeError::Tokenizer {
                path: p.clone(),
                message: e.to_string(),
            })
        })
        .transpose()
}

fn prepare(
    o: &BenchOptions,
    ds: &Dataset,
    profile: &Profile,
    model: &str,
) -> Result<Vec<Prepared>, ServeError> {
    let mut out = Vec::with_capacity(ds.samples.len());
    for s in &ds.samples {
        let max_tokens = s.output_tokens.max(1);
        let payload = match o.target.endpoint {
            Endpoint::TritonGrpc => {
                let Prompt::Text(text) = &s.prompt else {
                    return Err(ServeError::Usage(
                        "token-id prompts cannot go to Triton: give --tokenizer to decode them"
                            .into(),
                    ));
                };
                let n = u32::try_from(max_tokens).map_err(|_| {
                    ServeError::Usage(format!("an output length of {max_tokens} is too large"))
                })?;
                Payload::Grpc {
                    text: text.clone(),
                    min_length: o.metrics.ignore_eos.then_some(n),
                }
            }
            endpoint => {
                let prompt = match &s.prompt {
                    Prompt::Ids(ids) => WirePrompt::Ids(ids),
                    Prompt::Text(t) => WirePrompt::Text(t),
                };
                let v = body(
                    profile,
                    &RequestShape {
                        endpoint,
                        model,
                        prompt,
                        max_tokens,
                        streaming: o.target.streaming,
                        ignore_eos: o.metrics.ignore_eos,
                    },
                    &o.target.extra_body,
                );
                Payload::Http(Bytes::from(serde_json::to_vec(&v).map_err(|e| {
                    ServeError::Usage(format!("cannot encode a request body: {e}"))
                })?))
            }
        };
        out.push(Prepared {
            prompt_ids: matches!(s.prompt, Prompt::Ids(_)),
            payload,
            prompt_tokens: s.prompt_tokens,
            output_tokens: max_tokens,
            reference: s.reference.clone(),
        });
    }
    Ok(out)
}

/// A record for a request that never got its own (stopped or timed out while in flight).
fn stub(
    out: Outgoing,
    endpoint: Endpoint,
    t_send: u64,
    t: u64,
    class: ErrorClass,
    msg: &str,
) -> RequestRecord {
    let mut ex = Exchange::new(out, endpoint, t_send);
    ex.fail(t, class, msg);
    ex.finish(t)
}

async fn cancelled(rx: &mut watch::Receiver<bool>) {
    // A closed channel means the run is over; either way, stop waiting.
    let _ = rx.wait_for(|c| *c).await;
}

impl Shared {
    async fn send(&self, out: Outgoing) -> RequestRecord {
        let p = &self.prepared[out.sample];
        match (&self.transport, &p.payload) {
            (Transport::Http(c), Payload::Http(b)) => c.send(self.clock, out, b.clone()).await,
            (Transport::Grpc(c), Payload::Grpc { text, min_length }) => {
                let req = GrpcRequest {
                    text: text.clone(),
                    max_tokens: p.output_tokens.min(u32::MAX as u64) as u32,
                    min_length: *min_length,
                };
                c.send(self.clock, out, req).await
            }
            _ => {
                let t = self.clock.now();
                stub(
                    out,
                    self.endpoint,
                    t,
                    t,
                    ErrorClass::Malformed,
                    "payload and transport do not match",
                )
            }
        }
    }

    /// One request with the per-request timeout and Ctrl-C applied; always a record.
    async fn send_guarded(
        &self,
        out: Outgoing,
        cancel: &mut watch::Receiver<bool>,
        counters: &Counters,
    ) -> RequestRecord {
        let copy = out.clone();
        let t0 = self.clock.now();
        let rec = tokio::select! {
            r = tokio::time::timeout(self.request_timeout, self.send(out)) => match r {
                Ok(rec) => rec,
                Err(_) => stub(copy, self.endpoint, t0, self.clock.now(), ErrorClass::Timeout,
                    &format!("no complete response within {:.0} s (--request-timeout)",
                        self.request_timeout.as_secs_f64())),
            },
            _ = cancelled(cancel) => stub(copy, self.endpoint, t0, self.clock.now(),
                ErrorClass::Cancelled, "stopped by Ctrl-C before it finished"),
        };
        if rec.ok() {
            counters.tokens.fetch_add(rec.osl().0, Ordering::Relaxed);
        } else {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        counters.bar.inc(1);
        rec
    }

    fn outgoing(&self, index: u64, sample: usize, id: String, t_due: u64) -> Outgoing {
        let p = &self.prepared[sample];
        Outgoing {
            index,
            request_id: id,
            sample,
            t_due_ns: t_due,
            prompt_tokens_client: p.prompt_tokens,
            prompt_ids: p.prompt_ids,
            requested_output_tokens: p.output_tokens,
            reference: p.reference.clone(),
        }
    }
}

/// How requests of a phase are numbered and which prompts they take.
#[derive(Clone)]
struct Phase {
    label: String,
    first_sample: u64,
    count: Option<u64>,
    deadline_ns: Option<u64>,
}

impl Phase {
    fn sample(&self, i: u64, pool: usize) -> usize {
        ((self.first_sample + i) % pool as u64) as usize
    }
}

async fn closed_loop(
    sh: Arc<Shared>,
    concurrency: u32,
    phase: Phase,
    cancel: watch::Receiver<bool>,
    counters: Arc<Counters>,
) -> Vec<RequestRecord> {
    let next = Arc::new(AtomicU64::new(0));
    let start = sh.clock.now();
    let mut set = JoinSet::new();
    for _ in 0..concurrency {
        let (sh, next, phase, mut cancel, counters) = (
            sh.clone(),
            next.clone(),
            phase.clone(),
            cancel.clone(),
            counters.clone(),
        );
        set.spawn(async move {
            let mut recs = Vec::new();
            // A slot's next request is due the moment its previous one ended.
            let mut t_due = start;
            loop {
                if *cancel.borrow() {
                    break;
                }
                if phase.deadline_ns.is_some_and(|d| sh.clock.now() >= d) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if phase.count.is_some_and(|n| i >= n) {
                    break;
                }
                let sample = phase.sample(i, sh.prepared.len());
                let id = format!("perfgate-{}-{}-{i}", sh.run_id, phase.label);
                let out = sh.outgoing(i, sample, id, t_due);
                let rec = sh.send_guarded(out, &mut cancel, &counters).await;
                t_due = rec.t_end_ns;
                recs.push(rec);
            }
            recs
        });
    }
    collect(set).await
}

async fn open_loop(
    sh: Arc<Shared>,
    offsets: Vec<f64>,
    max_concurrency: Option<u32>,
    phase: Phase,
    mut cancel: watch::Receiver<bool>,
    counters: Arc<Counters>,
) -> Vec<RequestRecord> {
    let start = sh.clock.now();
    let sem = max_concurrency.map(|c| Arc::new(Semaphore::new(c as usize)));
    let mut set = JoinSet::new();
    for (i, off) in offsets.iter().enumerate() {
        let i = i as u64;
        let t_due = start + (off * 1e9) as u64;
        let at = sh.clock.epoch + Duration::from_nanos(t_due);
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {}
            _ = cancelled(&mut cancel) => break,
        }
        let permit = match &sem {
            Some(s) => tokio::select! {
                p = s.clone().acquire_owned() => p.ok(),
                _ = cancelled(&mut cancel) => break,
            },
            None => None,
        };
        let sample = phase.sample(i, sh.prepared.len());
        let id = format!("perfgate-{}-{}-{i}", sh.run_id, phase.label);
        let out = sh.outgoing(i, sample, id, t_due);
        let (sh, mut cancel, counters) = (sh.clone(), cancel.clone(), counters.clone());
        set.spawn(async move {
            let rec = sh.send_guarded(out, &mut cancel, &counters).await;
            drop(permit);
            vec![rec]
        });
    }
    collect(set).await
}

async fn collect(mut set: JoinSet<Vec<RequestRecord>>) -> Vec<RequestRecord> {
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(recs) => all.extend(recs),
            // A request task cannot panic on server input (every path returns a record); if
            // one did anyway, the count below the level says so instead of losing it silently.
            Err(e) => eprintln!("serve-bench: a request task ended abnormally: {e}"),
        }
    }
    all.sort_by_key(|r| r.index);
    all
}

/// Scores every completed request that has a reference output and its generated text (kept
/// on each record) and returns the level's corpus figures, or a note saying why there are none.
fn score_accuracy(
    records: &mut [RequestRecord],
) -> (Option<crate::accuracy::AccuracySummary>, Option<String>) {
    let mut tally = crate::accuracy::AccuracyTally::new();
    let mut unreferenced = 0u64;
    for r in records.iter_mut().filter(|r| r.ok()) {
        match (&r.text, &r.reference) {
            (Some(text), Some(reference)) => r.accuracy = Some(tally.add(text, reference)),
            _ => unreferenced += 1,
        }
    }
    let note = (unreferenced > 0).then(|| {
        format!(
            "accuracy: {unreferenced} completed request(s) had no reference output and are not \
             scored"
        )
    });
    match tally.summary() {
        Ok(summary) => (Some(summary), note),
        // No pair at all (every request failed, or none had a reference): nothing to average.
        Err(_) => (
            None,
            Some("accuracy: no completed request with a reference output to score".into()),
        ),
    }
}

/// Samples how late a 10 ms sleep wakes up until `stop` is set.
async fn loop_lag(stop: Arc<AtomicBool>) -> Vec<f64> {
    let mut lags = Vec::new();
    let period = Duration::from_millis(10);
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        tokio::time::sleep(period).await;
        lags.push((t0.elapsed().saturating_sub(period)).as_secs_f64() * 1e3);
    }
    lags
}

fn progress_bar(show: bool, len: Option<u64>, label: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})"
    } else {
        "{prefix} {spinner} {pos} requests {msg} ({elapsed})"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label.to_string());
    bar
}

/// Runs every level; `on_level` sees each one as soon as it is finished (outputs are written
/// as the run goes, so a Ctrl-C keeps what finished).
pub fn run(
    o: &BenchOptions,
    on_level: &mut dyn FnMut(&RunInfo, &LevelReport) -> Result<(), ServeError>,
) -> Result<RunReport, ServeError> {
    validate(o)?;
    let tokenizer = load_tokenizer(o)?;
    let mut dataset = load_dataset(o, tokenizer.as_ref())?;
    if dataset.samples.is_empty() {
        return Err(ServeError::Dataset("the dataset is empty".into()));
    }
    if o.metrics.accuracy && dataset.samples.iter().all(|s| s.reference.is_none()) {
        return Err(ServeError::Usage(
            "--accuracy scores the generated texts against reference outputs, and this \
             dataset has none: give prompt JSONL with `output` keys (--input-data or --dataset) \
             or ShareGPT"
                .into(),
        ));
    }
    let max_inflight: u64 = o
        .load
        .levels
        .iter()
        .map(|l| l.max_concurrency().map_or(4096, u64::from))
        .max()
        .unwrap_or(1);
    raise_nofile(max_inflight)?;

    let rt = if o.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.client_threads)
            .enable_all()
            .build()
    }
    .map_err(ServeError::Runtime)?;

    let epoch = Instant::now();
    let epoch_monotonic_ns = monotonic_ns();
    let epoch_unix_ns = crate::telemetry::epoch_nanos(std::time::SystemTime::now());
    let clock = Clock { epoch };
    rt.block_on(async move {
        let pool = (max_inflight.min(65536) as usize).max(1);
        let mut client = build_client(&o.target, pool).map_err(ServeError::Usage)?;
        let grpc = if o.target.endpoint == Endpoint::TritonGrpc {
            Some(
                GrpcClient::new(
                    &o.target.url,
                    &o.target.model,
                    o.target.streaming,
                    o.target.stall_timeout,
                    pool,
                )
                .map_err(ServeError::Usage)?,
            )
        } else {
            None
        };
        super::probe::wait_ready(&client, grpc.as_ref(), &o.target).await?;
        let probed = super::probe::identify(&client, &o.target).await?;
        let profile = Profile::of(probed.kind);
        let mut notes = probed.notes.clone();
        // The measurement never reuses a probe's connection: a server may close one after
        // answering (transformers serve's `/v1/models` raises without a Hugging Face cache, and
        // uvicorn then drops the connection), and the first request sent on it fails with
        // "connection closed before message completed" (1 of 16 requests of every repetition
        // on an H200, until this).
        client = build_client(&o.target, pool).map_err(ServeError::Usage)?;
        if profile.closes_streams && o.target.streaming && grpc.is_none() {
            client = build_client(&o.target, 0).map_err(ServeError::Usage)?;
            notes.push(format!(
                "a {} server closes each streamed connection: every request opens its own \
                 (its TCP connect is inside TTFT)",
                probed.kind.name()
            ));
        }
        // Token ids go as ids only where the API and the server take them.
        let needs_text = !profile.sends_ids(o.target.endpoint);
        if needs_text
            && dataset
                .samples
                .iter()
                .any(|s| matches!(s.prompt, Prompt::Ids(_)))
        {
            let tok = tokenizer.as_ref().ok_or_else(|| {
                ServeError::Usage(format!(
                    "the {} endpoint of a {} server takes text, and the dataset has token ids: \
                     give --tokenizer to decode them",
                    o.target.endpoint.name(),
                    probed.kind.name()
                ))
            })?;
            let why = if o.target.endpoint == Endpoint::Completions {
                format!("--server-kind {} takes no token ids", probed.kind.name())
            } else {
                format!("the {} endpoint takes text", o.target.endpoint.name())
            };
            super::dataset::ids_to_text(&mut dataset, tok, &why)?;
        }
        notes.extend(dataset.notes.iter().cloned());
        let prepared = prepare(o, &dataset, &profile, &probed.model)?;
        let target = super::options::Target {
            model: probed.model.clone(),
            ..o.target.clone()
        };
        let transport = match grpc {
            Some(g) => Transport::Grpc(g),
            None => Transport::Http(
                HttpClient::new(
                    &target,
                    client.clone(),
                    profile.closes_streams && o.target.streaming,
                )
                .map_err(ServeError::Usage)?,
            ),
        };
        let info = RunInfo {
            url: o.target.url.clone(),
            endpoint: o.target.endpoint,
            model: probed.model.clone(),
            server_kind: probed.kind,
            dataset: match &o.dataset {
                DatasetSource::Synthetic { .. } => "synthetic".into(),
                DatasetSource::File { path, .. } => {
                    format!("{} ({})", path.display(), dataset.format)
                }
                DatasetSource::Prepared { label, .. } => format!("{label} ({})", dataset.format),
            },
            num_samples: prepared.len(),
            tokenizer: o.tokenizer.as_ref().map(|p| p.display().to_string()),
            streaming: o.target.streaming,
            ignore_eos: o.metrics.ignore_eos,
            seed: o.load.seed,
            warmup: o.load.warmup,
            arrival: o.load.arrival,
            epoch_monotonic_ns,
            epoch_unix_ns,
            notes,
            started: chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                .format("%Y%m%d-%H%M%S")
                .to_string(),
        };
        let sh = Arc::new(Shared {
            run_id: format!("{:x}", epoch_monotonic_ns / 1000),
            clock,
            transport,
            prepared,
            request_timeout: o.target.request_timeout,
            endpoint: o.target.endpoint,
        });

        let (cancel_tx, cancel_rx) = watch::channel(false);
        let watchdog = tokio::spawn(async move {
            loop {
                if crate::runner::signals::interrupted().is_some() {
                    let _ = cancel_tx.send(true);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });

        let result = run_levels(o, sh, &client, &info, cancel_rx, &tokenizer, on_level).await;
        watchdog.abort();
        let (levels, interrupted) = result?;
        Ok(RunReport {
            info,
            levels,
            interrupted,
        })
    })
}

async fn run_levels(
    o: &BenchOptions,
    sh: Arc<Shared>,
    client: &reqwest::Client,
    info: &RunInfo,
    cancel: watch::Receiver<bool>,
    tokenizer: &Option<tokenizers::Tokenizer>,
    on_level: &mut dyn FnMut(&RunInfo, &LevelReport) -> Result<(), ServeError>,
) -> Result<(Vec<LevelReport>, bool), ServeError> {
    let pool = sh.prepared.len() as u64;
    if o.load.warmup > 0 {
        let c = o.load.levels[0]
            .max_concurrency()
            .unwrap_or(1)
            .min(o.load.warmup.min(u32::MAX as u64) as u32)
            .max(1);
        let counters = Counters::new(progress_bar(
            o.outputs.progress,
            Some(o.load.warmup),
            "warmup",
        ));
        let recs = closed_loop(
            sh.clone(),
            c,
            Phase {
                label: "warmup".into(),
                first_sample: pool.saturating_sub(o.load.warmup),
                count: Some(o.load.warmup),
                deadline_ns: None,
            },
            cancel.clone(),
            counters.clone(),
        )
        .await;
        counters.bar.finish_and_clear();
        let failed = recs.iter().filter(|r| !r.ok()).count();
        if failed > 0 && o.outputs.progress {
            eprintln!(
                "serve-bench: {failed} of {} warmup requests failed",
                recs.len()
            );
        }
        if *cancel.borrow() {
            return Ok((Vec::new(), true));
        }
    }

    let mut levels = Vec::new();
    for (li, level) in o.load.levels.iter().enumerate() {
        let metrics_url = o.target.scrape_metrics.as_ref().map(|u| {
            if u.is_empty() {
                format!("{}/metrics", base_url(&o.target.url))
            } else {
                u.clone()
            }
        });
        let before = match &metrics_url {
            Some(u) => Some(super::prom::scrape(client, u).await),
            None => None,
        };
        let count = level_count(o.load.stop, level);
        let label = format!("level {}/{} {}", li + 1, o.load.levels.len(), level.label());
        let counters = Counters::new(progress_bar(o.outputs.progress, count, &label));
        let deadline_ns = match o.load.stop {
            Stop::Duration(d) => Some(sh.clock.now() + d.as_nanos() as u64),
            _ => None,
        };
        let phase = Phase {
            label: li.to_string(),
            first_sample: 0,
            count,
            deadline_ns,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let lag_task = tokio::spawn(loop_lag(stop.clone()));
        let ticker = {
            let counters = counters.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let t0 = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let secs = t0.elapsed().as_secs_f64().max(1e-9);
                    counters.bar.set_message(format!(
                        "{:.0} tok/s, {} failed",
                        counters.tokens.load(Ordering::Relaxed) as f64 / secs,
                        counters.failed.load(Ordering::Relaxed)
                    ));
                }
            })
        };
        let records = match *level {
            LoadLevel::Concurrency(c) => {
                closed_loop(sh.clone(), c, phase, cancel.clone(), counters.clone()).await
            }
            LoadLevel::Rate {
                rate,
                max_concurrency,
            } => {
                let seed = o.load.seed.wrapping_add(li as u64);
                let offsets = match (count, deadline_ns) {
                    (Some(n), _) => {
                        super::schedule::offsets(o.load.arrival, rate, n as usize, seed)
                    }
                    (None, Some(_)) => {
                        let d = match o.load.stop {
                            Stop::Duration(d) => d.as_secs_f64(),
                            _ => 0.0,
                        };
                        super::schedule::offsets_for(o.load.arrival, rate, d, seed)
                    }
                    (None, None) => Vec::new(),
                };
                counters.bar.set_length(offsets.len() as u64);
                open_loop(
                    sh.clone(),
                    offsets,
                    max_concurrency,
                    phase,
                    cancel.clone(),
                    counters.clone(),
                )
                .await
            }
        };
        stop.store(true, Ordering::Relaxed);
        let loop_lag_ms = lag_task.await.unwrap_or_default();
        let _ = ticker.await;
        counters.bar.finish_and_clear();
        let mut records = records;
        if let Some(tok) = tokenizer {
            for r in records.iter_mut().filter(|r| r.ok()) {
                if let Some(text) = &r.text {
                    r.output_tokens_client = tok
                        .encode_fast(text.as_str(), false)
                        .ok()
                        .map(|e| e.get_ids().len() as u64);
                }
            }
        }
        let (accuracy, accuracy_note) = if o.metrics.accuracy {
            score_accuracy(&mut records)
        } else {
            (None, None)
        };
        if !o.outputs.keep_text {
            for r in records.iter_mut() {
                r.text = None;
            }
        }
        let mut server_metrics = BTreeMap::new();
        let mut notes = Vec::new();
        if let (Some(u), Some(before)) = (&metrics_url, before) {
            match (before, super::prom::scrape(client, u).await) {
                (Ok(b), Ok(a)) => server_metrics = super::prom::deltas(&b, &a),
                (Err(e), _) | (_, Err(e)) => notes.push(format!("metrics scrape {u}: {e}")),
            }
        }
        let mut summary = summarize(SummaryInput {
            level: *level,
            streaming: o.target.streaming,
            records: &records,
            loop_lag_ms: &loop_lag_ms,
            options: &o.metrics,
            server_metrics,
            accuracy,
        });
        notes.extend(accuracy_note);
        // The level's own notes (the summary's) after the run's.
        notes.append(&mut summary.notes);
        summary.notes = notes;
        let report = LevelReport {
            index: li,
            summary,
            records,
        };
        on_level(info, &report)?;
        levels.push(report);
        if *cancel.borrow() {
            return Ok((levels, true));
        }
    }
    Ok((levels, false))
}
