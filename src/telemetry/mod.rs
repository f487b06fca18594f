//! GPU telemetry: the only place that talks to the GPU driver (NVML).
//!
//! A [`Telemetry`] wraps a [`Source`] of readings: NVML when `libnvidia-ml.so.1` and a driver are
//! there (loaded at run time, so perfgate runs without a driver), a [`ScriptedSource`] in tests and
//! when `PERFGATE_FAKE_NVML` names a script, and otherwise nothing, with the reason. A
//! [`Recorder`] samples chosen GPUs on a thread while a step runs; its [`Recording`] gives a
//! [`Summary`] (energy, J/token, clocks, throttling), the `gpu_monitoring.csv` rows and the
//! evidence a result is not comparable ([`clock_evidence`]). [`Telemetry::lock_clocks`] locks
//! application clocks and restores them when its guard drops.
//!
//! Nothing here invents a reading: what NVML cannot give is `None`, and why is said once in the
//! recording's `problems`.

mod clocks;
mod files;
mod host;
mod nvml;
mod scripted;
mod summary;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value};

pub use clocks::{ClockLock, clock_target, restore_all_locked};
pub use files::{
    GPU_MONITORING_COLUMNS, GpuMonitoringWriter, SESSION_COLUMNS, write_session_properties,
};
pub use scripted::{LoseGpu, Reading, Script, ScriptedSource};
pub use summary::{
    INVALIDATING_THROTTLE, MinMeanMax, Summary, THROTTLE_REASONS, clock_evidence, throttle_names,
};

/// The environment variable that replaces NVML with a [`ScriptedSource`] read from a JSON file.
pub const FAKE_NVML_ENV: &str = "PERFGATE_FAKE_NVML";

/// The shortest sampling interval a [`Recorder`] accepts (shorter ones are raised to it).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// One reading of one GPU. Every field is Option: a reading NVML cannot give is None, never invented.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub gpu: u32,
    #[serde(serialize_with = "ser::time")]
    pub time: SystemTime,
    pub sm_mhz: Option<u32>,
    pub mem_mhz: Option<u32>,
    pub graphics_mhz: Option<u32>,
    pub gpu_util_pct: Option<u32>,
    pub mem_util_pct: Option<u32>,
    pub encoder_util_pct: Option<u32>,
    pub decoder_util_pct: Option<u32>,
    pub gpu_temp_c: Option<u32>,
    pub mem_temp_c: Option<u32>,
    pub fan_pct: Option<u32>,
    pub pstate: Option<u32>,
    pub power_w: Option<f64>,
    /// Total energy counter (since the driver loaded), millijoules.
    pub energy_mj: Option<u64>,
    pub mem_used_bytes: Option<u64>,
    /// NVML clocks-event (throttle) reason bitmask; see [`THROTTLE_REASONS`].
    pub throttle_reasons: Option<u64>,
    pub processes: Option<u32>,
}

impl Sample {
    /// A sample with no reading at all (every field `None`).
    pub fn empty(gpu: u32, time: SystemTime) -> Sample {
        Sample {
            gpu,
            time,
            sm_mhz: None,
            mem_mhz: None,
            graphics_mhz: None,
            gpu_util_pct: None,
            mem_util_pct: None,
            encoder_util_pct: None,
            decoder_util_pct: None,
            gpu_temp_c: None,
            mem_temp_c: None,
            fan_pct: None,
            pstate: None,
            power_w: None,
            energy_mj: None,
            mem_used_bytes: None,
            throttle_reasons: None,
            processes: None,
        }
    }
}

/// Where samples come from: NVML, or a scripted source in tests.
pub trait Source: Send {
    fn device_count(&self) -> Result<u32, String>;
    /// One reading of `gpu`. A field the device cannot give is `None` (say why once through
    /// [`Source::take_notes`]); `Err` means the GPU cannot be read at all any more (lost), and
    /// the recorder stops sampling it.
    fn sample(&mut self, gpu: u32) -> Result<Sample, String>;
    /// GPU and driver facts (see [`Telemetry::environment`] for the keys).
    fn environment(&mut self) -> Map<String, Value>;
    /// Sentences about readings that could not be taken since the last call (one per GPU and
    /// field, not one per sample).
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// The application clocks `(sm_mhz, mem_mhz)` of `gpu`.
    fn application_clocks(&mut self, gpu: u32) -> Result<(u32, u32), String> {
        Err(format!(
            "GPU {gpu}: this telemetry source cannot read application clocks"
        ))
    }
    /// Sets the application clocks of `gpu` (NVML: `nvmlDeviceSetApplicationsClocks(mem, sm)`).
    fn set_application_clocks(
        &mut self,
        gpu: u32,
        sm_mhz: u32,
        mem_mhz: u32,
    ) -> Result<(), String> {
        let _ = (sm_mhz, mem_mhz);
        Err(format!(
            "GPU {gpu}: this telemetry source cannot set application clocks"
        ))
    }
}

struct Inner {
    source: Option<Box<dyn Source>>,
    unavailable: Option<String>,
}

/// GPU telemetry: NVML, a scripted source, or unavailable (with the reason). Cheap to clone;
/// the clones share one source.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.unavailable_reason() {
            Some(reason) => write!(f, "Telemetry(unavailable: {reason})"),
            None => write!(f, "Telemetry({} GPUs)", self.device_count()),
        }
    }
}

impl Telemetry {
    /// A [`ScriptedSource`] when `PERFGATE_FAKE_NVML` names a script, else NVML when the
    /// library and a driver are there, else an unavailable `Telemetry` that says why. Never
    /// fails.
    pub fn open() -> Telemetry {
        match std::env::var_os(FAKE_NVML_ENV) {
            Some(path) if !path.is_empty() => Telemetry::open_fake(Path::new(&path)),
            _ => Telemetry::open_nvml(),
        }
    }

    /// NVML only (whatever the environment says).
    pub fn open_nvml() -> Telemetry {
        match nvml::NvmlSource::open() {
            Ok(source) => match source.device_count() {
                Ok(0) => Telemetry::unavailable("no GPU telemetry: NVML sees no GPU".into()),
                Ok(_) => Telemetry::from_source(Box::new(source)),
                Err(e) => Telemetry::unavailable(format!("no GPU telemetry: {e}")),
            },
            Err(reason) => Telemetry::unavailable(reason),
        }
    }

    /// The [`ScriptedSource`] of the JSON script at `path` (the format is in [`Script`]); a
    /// script that cannot be read gives an unavailable `Telemetry` whose reason names the file.
    pub fn open_fake(path: &Path) -> Telemetry {
        match ScriptedSource::from_file(path) {
            Ok(source) => Telemetry::from_source(Box::new(source)),
            Err(e) => Telemetry::unavailable(format!("no GPU telemetry: {FAKE_NVML_ENV}: {e}")),
        }
    }

    /// Tests and the scripted fake.
    pub fn from_source(source: Box<dyn Source>) -> Telemetry {
        Telemetry {
            inner: Arc::new(Mutex::new(Inner {
                source: Some(source),
                unavailable: None,
            })),
        }
    }

    /// Telemetry that gives nothing, for the reason given.
    pub fn unavailable(reason: String) -> Telemetry {
        Telemetry {
            inner: Arc::new(Mutex::new(Inner {
                source: None,
                unavailable: Some(reason),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves the source usable: take it anyway.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn unavailable_reason(&self) -> Option<String> {
        self.lock().unavailable.clone()
    }

    /// 0 when unavailable.
    pub fn device_count(&self) -> u32 {
        match &self.lock().source {
            Some(s) => s.device_count().unwrap_or(0),
            None => 0,
        }
    }

    /// Starts sampling `gpus` (empty: every GPU) every `interval` (at least [`MIN_INTERVAL`])
    /// on a thread; the first sample is taken at once.
    pub fn start(&self, gpus: &[u32], interval: Duration) -> Recorder {
        let interval = interval.max(MIN_INTERVAL);
        let started = SystemTime::now();
        let count = self.device_count();
        let mut problems = Vec::new();
        if let Some(reason) = self.unavailable_reason() {
            problems.push(reason);
        }
        let wanted: Vec<u32> = if gpus.is_empty() {
            (0..count).collect()
        } else {
            gpus.to_vec()
        };
        let mut live = Vec::new();
        for &gpu in &wanted {
            if gpu < count {
                if !live.contains(&gpu) {
                    live.push(gpu);
                }
            } else if count > 0 {
                problems.push(format!(
                    "GPU {gpu} is not there (the machine has {count}): not sampled"
                ));
            }
        }
        let empty = Recording {
            gpus: wanted.clone(),
            interval,
            samples: Vec::new(),
            started,
            ended: started,
            problems: problems.clone(),
        };
        if live.is_empty() {
            return Recorder::done(empty);
        }
        let (stop, stopped) = mpsc::channel();
        let telemetry = self.clone();
        let spawned = std::thread::Builder::new()
            .name("perfgate-telemetry".into())
            .spawn(move || {
                SamplingLoop::new(telemetry, wanted, live, interval, problems, started).run(stopped)
            });
        match spawned {
            Ok(handle) => Recorder {
                handle: Some(handle),
                stop: Some(stop),
                done: None,
            },
            Err(e) => {
                let mut rec = empty;
                rec.problems.push(format!(
                    "no GPU telemetry: cannot start the sampling thread: {e}"
                ));
                Recorder::done(rec)
            }
        }
    }

    /// Fingerprint facts. GPU facts (from GPU 0, when NVML or a script is there): `gpu_name`
    /// (product name without "NVIDIA", e.g. "H100 80GB HBM3"), `gpu_type` (upstream's
    /// device_subtype: spaces and '-' as '_'), `gpu_count`, `gpu_memory` (MiB),
    /// `compute_capability` (e.g. 90), `vbios`, `driver_version`, `cuda_version` (e.g. "13.0",
    /// the driver's), `power_limit` (W), `ecc` and `mig` ("on"/"off"), and also `gpu_pci_device_id`,
    /// `sm_clock_max`, `mem_clock_max`, `application_sm_clock`, `application_mem_clock` (MHz).
    /// Host facts: `hostname`, `username`, `ip`, `cpu_model`, `cpu_count`, `os`, `kernel`,
    /// `container_image`, `container_id`. Missing facts are simply absent.
    pub fn environment(&self) -> Map<String, Value> {
        let mut env = host::facts();
        if let Some(source) = &mut self.lock().source {
            env.extend(source.environment());
        }
        env
    }

    /// Locks application clocks (upstream: `nvmlDeviceSetApplicationsClocks(mem, sm)`) of
    /// `gpus` to the targets, remembering the originals. All or nothing: when one GPU fails,
    /// those already locked are restored and the error returned. The guard restores on drop;
    /// [`restore_all_locked`] restores every live lock (the Ctrl-C path).
    pub fn lock_clocks(
        &self,
        gpus: &[u32],
        sm_mhz: u32,
        mem_mhz: u32,
    ) -> Result<ClockLock, String> {
        clocks::lock(self, gpus, sm_mhz, mem_mhz)
    }

    /// Runs `f` on the source; `Err` with the reason when telemetry is unavailable.
    fn with_source<T>(
        &self,
        f: impl FnOnce(&mut dyn Source) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut inner = self.lock();
        match &mut inner.source {
            Some(source) => f(source.as_mut()),
            None => Err(inner
                .unavailable
                .clone()
                .unwrap_or_else(|| "no GPU telemetry".into())),
        }
    }
}

/// A sampling thread; [`Recorder::stop`] ends it and gives the [`Recording`]. Dropped without
/// `stop`, the thread ends by itself at its next wake-up.
pub struct Recorder {
    handle: Option<JoinHandle<Recording>>,
    stop: Option<mpsc::Sender<()>>,
    done: Option<Recording>,
}

impl Recorder {
    fn done(rec: Recording) -> Recorder {
        Recorder {
            handle: None,
            stop: None,
            done: Some(rec),
        }
    }

    /// Stops the thread; it takes one last sample of every GPU still answering.
    pub fn stop(mut self) -> Recording {
        if let Some(rec) = self.done.take() {
            let mut rec = rec;
            rec.ended = SystemTime::now();
            return rec;
        }
        if let Some(stop) = self.stop.take() {
            // An error means the thread has already ended: joining below gets its recording.
            let _ = stop.send(());
        }
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(rec)) => rec,
            _ => {
                let now = SystemTime::now();
                Recording {
                    gpus: Vec::new(),
                    interval: MIN_INTERVAL,
                    samples: Vec::new(),
                    started: now,
                    ended: now,
                    problems: vec!["GPU telemetry failed: the sampling thread panicked".into()],
                }
            }
        }
    }
}

/// What a [`Recorder`] saw.
#[derive(Debug, Clone, Serialize)]
pub struct Recording {
    pub gpus: Vec<u32>,
    #[serde(serialize_with = "ser::seconds")]
    pub interval: Duration,
    pub samples: Vec<Sample>,
    #[serde(serialize_with = "ser::time")]
    pub started: SystemTime,
    #[serde(serialize_with = "ser::time")]
    pub ended: SystemTime,
    /// What telemetry is missing or went wrong, one sentence each: NVML unavailable, a GPU lost
    /// mid-run, sampling slower than asked (with the achieved interval), a reading NVML does
    /// not give, an energy counter that went backwards.
    pub problems: Vec<String>,
}

impl Recording {
    /// The samples of one GPU, in time order.
    pub fn samples_of(&self, gpu: u32) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.gpu == gpu)
    }

    /// Per-case summary; `output_tokens` is the run's output token count (for J/token).
    pub fn summary(&self, output_tokens: Option<f64>) -> Summary {
        summary::summarize(self, output_tokens)
    }
}

/// Slower than asked when the achieved mean interval exceeds the asked one by this factor.
const SLOW_FACTOR: f64 = 1.2;

struct SamplingLoop {
    telemetry: Telemetry,
    gpus: Vec<u32>,
    live: Vec<u32>,
    interval: Duration,
    samples: Vec<Sample>,
    problems: Vec<String>,
    seen: BTreeSet<String>,
    started: SystemTime,
    /// When each periodic round began (not the last one, taken at stop).
    rounds: Vec<Instant>,
    longest_round: Duration,
}

impl SamplingLoop {
    fn new(
        telemetry: Telemetry,
        gpus: Vec<u32>,
        live: Vec<u32>,
        interval: Duration,
        problems: Vec<String>,
        started: SystemTime,
    ) -> SamplingLoop {
        let seen = problems.iter().cloned().collect();
        SamplingLoop {
            telemetry,
            gpus,
            live,
            interval,
            samples: Vec::new(),
            problems,
            seen,
            started,
            rounds: Vec::new(),
            longest_round: Duration::ZERO,
        }
    }

    fn note(&mut self, problem: String) {
        if self.seen.insert(problem.clone()) {
            self.problems.push(problem);
        }
    }

    /// One reading of every GPU still answering.
    fn round(&mut self) {
        let began = Instant::now();
        let mut lost = Vec::new();
        let mut notes = Vec::new();
        {
            let mut inner = self.telemetry.lock();
            let Some(source) = inner.source.as_mut() else {
                return;
            };
            for &gpu in &self.live {
                match source.sample(gpu) {
                    Ok(mut s) => {
                        s.gpu = gpu;
                        self.samples.push(s);
                    }
                    Err(e) => lost.push((gpu, e)),
                }
            }
            notes.extend(source.take_notes());
        }
        for note in notes {
            self.note(note);
        }
        for (gpu, e) in lost {
            self.live.retain(|&g| g != gpu);
            let taken = self.samples.iter().filter(|s| s.gpu == gpu).count();
            let at = ser::clock(SystemTime::now());
            self.note(format!(
                "GPU {gpu} stopped answering after {taken} samples (at {at}): {e}; it was not sampled after that"
            ));
        }
        self.longest_round = self.longest_round.max(began.elapsed());
    }

    fn run(mut self, stop: mpsc::Receiver<()>) -> Recording {
        let mut next = Instant::now();
        loop {
            if self.live.is_empty() {
                // Every GPU is lost: nothing to sample, wait for the stop.
                let _ = stop.recv();
                break;
            }
            self.rounds.push(Instant::now());
            self.round();
            // Fixed rate; a round that overran starts the next at once, without a burst.
            next = (next + self.interval).max(Instant::now());
            match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if !self.live.is_empty() {
            self.round();
        }
        self.finish()
    }

    fn finish(mut self) -> Recording {
        if let (Some(first), Some(last)) = (self.rounds.first(), self.rounds.last())
            && self.rounds.len() >= 3
        {
            let achieved =
                last.duration_since(*first).as_secs_f64() / (self.rounds.len() - 1) as f64;
            let asked = self.interval.as_secs_f64();
            if achieved > asked * SLOW_FACTOR {
                self.note(format!(
                    "sampling was slower than asked: one reading every {achieved:.3} s on average instead of every {asked:.3} s (a round of readings took up to {:.3} s)",
                    self.longest_round.as_secs_f64()
                ));
            }
        }
        for problem in summary::energy_counter_problems(&self.samples) {
            self.note(problem);
        }
        Recording {
            gpus: self.gpus,
            interval: self.interval,
            samples: self.samples,
            started: self.started,
            ended: SystemTime::now(),
            problems: self.problems,
        }
    }
}

/// Serialization of times (RFC 3339, UTC, milliseconds) and durations (seconds).
mod ser {
    use std::time::{Duration, SystemTime};

    use serde::Serializer;

    pub fn clock(t: SystemTime) -> String {
        chrono::DateTime::<chrono::Utc>::from(t)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    }

    pub fn time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&clock(*t))
    }

    pub fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
