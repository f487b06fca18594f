//! Telemetry: the only place that reads power, temperatures and clocks.
//!
//! A [`Telemetry`] reads one or more power sources, chosen by a [`PowerChoice`] through
//! [`Telemetry::open_with`]:
//!
//! - **NVML** (`nvml`): NVIDIA GPUs, through a [`Source`]: NVML when `libnvidia-ml.so.1` and a
//!   driver are there (loaded at run time, so perfgate runs without a driver), a
//!   [`ScriptedSource`] in tests and when `PERFGATE_FAKE_NVML` names a script. Each round gives
//!   one [`Sample`] per GPU.
//! - **Jetson** (`jetson`): the INA3221 power rails, the GPU and EMC clocks and loads, thermal
//!   zones and CPU clocks, from sysfs (the `jetson` module's docs give the layouts).
//! - **RAPL** (`rapl`): Intel/AMD energy counters from powercap, with thermal zones and CPU
//!   clocks.
//! - `auto` reads every one of them the machine has and records which ([`PowerSetup`]).
//!
//! The sysfs sources are read under a root ([`PowerOptions::sysfs_root`], `/` unless
//! `PERFGATE_SYSFS_ROOT` says otherwise), so tests read recorded trees. A [`Recorder`] samples
//! every source on one thread while a step runs; its [`Recording`] keeps the GPU samples and
//! each sysfs rail as a [`Trace`] (every reading's own time and value), gives every source's
//! energy ([`Recording::energy`]: counters where there are counters, the trapezoid integral of
//! power where there is only power), all of it as traces ([`Recording::traces`]), a
//! [`Summary`] (energy, J/token, clocks, throttling), the `gpu_monitoring.csv` rows and the
//! evidence a result is not comparable ([`clock_evidence`]). [`Telemetry::lock_clocks`] locks
//! application clocks and restores them when its guard drops.
//!
//! Nothing here invents a reading: what a source cannot give is absent, and why is said once
//! in the recording's `problems`; a source that is missing or unreadable is named in
//! [`PowerSetup::not_measured`] and the run goes on.

mod clocks;
mod energy;
mod files;
mod host;
mod jetson;
mod nvml;
mod power;
mod rapl;
mod scripted;
mod select;
mod sensors;
mod summary;
mod sysfs;
mod traces;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value};

pub use clocks::{ClockLock, clock_target, restore_all_locked};
pub use energy::{EnergyMethod, EnergyReport, RailEnergy, SourceEnergy};
pub use files::{
    GPU_MONITORING_COLUMNS, GPU_MONITORING_NAME, GpuMonitoringWriter, POWER_MONITORING_COLUMNS,
    POWER_MONITORING_NAME, PowerMonitoringWriter, SESSION_COLUMNS, write_session_properties,
};
pub use power::{
    Family, PowerChoice, PowerOptions, PowerSetup, PowerSource, Quantity, SYSFS_ROOT_ENV, Trace,
    epoch_nanos,
};
pub use scripted::{LoseGpu, Reading, Script, ScriptedSource};
pub use summary::{
    INVALIDATING_THROTTLE, MinMeanMax, Summary, THROTTLE_REASONS, clock_evidence, throttle_names,
};
pub use sysfs::SysfsSource;

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
    /// The GPUs (NVML or a script).
    source: Option<Box<dyn Source>>,
    /// Why there is no GPU source (the error of GPU-only calls such as clock locking).
    gpu_unavailable: Option<String>,
    /// Why nothing at all is measured.
    unavailable: Option<String>,
    /// The sysfs sources (Jetson, RAPL, thermal zones, clocks).
    rails: Option<SysfsSource>,
    setup: PowerSetup,
}

/// Telemetry: the GPUs (NVML or a script), the sysfs power sources, or unavailable (with the
/// reason). Cheap to clone; the clones share the sources.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.unavailable_reason() {
            Some(reason) => write!(f, "Telemetry(unavailable: {reason})"),
            None => write!(
                f,
                "Telemetry({} GPUs, {:?})",
                self.device_count(),
                self.power().measured
            ),
        }
    }
}

/// The GPU source `Telemetry::open` uses: the script `PERFGATE_FAKE_NVML` names, else NVML.
fn open_gpu() -> Result<Box<dyn Source>, String> {
    match std::env::var_os(FAKE_NVML_ENV) {
        Some(path) if !path.is_empty() => open_fake_gpu(Path::new(&path)),
        _ => open_nvml_gpu(),
    }
}

fn open_nvml_gpu() -> Result<Box<dyn Source>, String> {
    let source = nvml::NvmlSource::open()?;
    match source.device_count() {
        Ok(0) => Err("no GPU telemetry: NVML sees no GPU".into()),
        Ok(_) => Ok(Box::new(source)),
        Err(e) => Err(format!("no GPU telemetry: {e}")),
    }
}

fn open_fake_gpu(path: &Path) -> Result<Box<dyn Source>, String> {
    ScriptedSource::from_file(path)
        .map(|s| Box::new(s) as Box<dyn Source>)
        .map_err(|e| format!("no GPU telemetry: {FAKE_NVML_ENV}: {e}"))
}

impl Telemetry {
    /// A [`ScriptedSource`] when `PERFGATE_FAKE_NVML` names a script, else NVML when the
    /// library and a driver are there, else an unavailable `Telemetry` that says why. Never
    /// fails. The same as [`Telemetry::open_with`] with `nvml`.
    pub fn open() -> Telemetry {
        Telemetry::from_gpu(open_gpu())
    }

    /// NVML only (whatever the environment says).
    pub fn open_nvml() -> Telemetry {
        Telemetry::from_gpu(open_nvml_gpu())
    }

    /// The [`ScriptedSource`] of the JSON script at `path` (the format is in [`Script`]); a
    /// script that cannot be read gives an unavailable `Telemetry` whose reason names the file.
    pub fn open_fake(path: &Path) -> Telemetry {
        Telemetry::from_gpu(open_fake_gpu(path))
    }

    /// The sources `options.power` names, read under `options.sysfs_root`. Never fails: what
    /// is not there or cannot be read is in [`Telemetry::power`]'s `not_measured` (and every
    /// recording's problems) or, for `auto`, `absent`; with nothing measured at all the
    /// telemetry is unavailable and says why.
    pub fn open_with(options: &PowerOptions) -> Telemetry {
        let choice = options.power;
        let root = options.sysfs_root.as_path();
        let gpu = match choice {
            PowerChoice::Nvml | PowerChoice::Auto => open_gpu(),
            other => Err(format!(
                "no GPU telemetry: --power {other} does not read NVML"
            )),
        };
        if choice == PowerChoice::Nvml {
            return Telemetry::from_gpu(gpu);
        }
        let selection = select::for_choice(choice, root);
        let mut setup = PowerSetup::new(choice);
        match &gpu {
            Ok(_) => setup.measured.push(PowerSource::Nvml),
            Err(why) if choice == PowerChoice::Auto => setup.absent.push(why.clone()),
            Err(_) => {}
        }
        setup.measured.extend(selection.measured);
        setup.absent.extend(selection.absent);
        setup.not_measured.extend(selection.not_measured);
        let (source, gpu_unavailable) = match gpu {
            Ok(s) => (Some(s), None),
            Err(why) => (None, Some(why)),
        };
        let unavailable = if source.is_none() && selection.source.is_none() {
            let mut why: Vec<String> = Vec::new();
            if choice == PowerChoice::None {
                why.push("power measurement is off (--power none)".into());
            }
            why.extend(setup.absent.iter().cloned());
            why.extend(setup.not_measured.iter().cloned());
            Some(format!(
                "no telemetry (--power {choice}): {}",
                why.join("; ")
            ))
        } else {
            None
        };
        Telemetry {
            inner: Arc::new(Mutex::new(Inner {
                source,
                gpu_unavailable,
                unavailable,
                rails: selection.source,
                setup,
            })),
        }
    }

    fn from_gpu(gpu: Result<Box<dyn Source>, String>) -> Telemetry {
        match gpu {
            Ok(source) => Telemetry::from_source(source),
            Err(reason) => Telemetry::unavailable(reason),
        }
    }

    /// Tests and the scripted fake.
    pub fn from_source(source: Box<dyn Source>) -> Telemetry {
        let mut setup = PowerSetup::new(PowerChoice::Nvml);
        setup.measured.push(PowerSource::Nvml);
        Telemetry {
            inner: Arc::new(Mutex::new(Inner {
                source: Some(source),
                gpu_unavailable: None,
                unavailable: None,
                rails: None,
                setup,
            })),
        }
    }

    /// Telemetry that gives nothing, for the reason given.
    pub fn unavailable(reason: String) -> Telemetry {
        Telemetry {
            inner: Arc::new(Mutex::new(Inner {
                source: None,
                gpu_unavailable: Some(reason.clone()),
                unavailable: Some(reason),
                rails: None,
                setup: PowerSetup::new(PowerChoice::Nvml),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves the source usable: take it anyway.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why nothing at all is measured; `None` when some source gives readings.
    pub fn unavailable_reason(&self) -> Option<String> {
        self.lock().unavailable.clone()
    }

    /// What is measured, what is not, and why.
    pub fn power(&self) -> PowerSetup {
        self.lock().setup.clone()
    }

    /// The GPUs (NVML or a script); 0 without them.
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
        let (setup, rails) = {
            let inner = self.lock();
            (
                inner.setup.clone(),
                inner
                    .rails
                    .as_ref()
                    .map(SysfsSource::traces)
                    .unwrap_or_default(),
            )
        };
        for note in &setup.not_measured {
            if !problems.contains(note) {
                problems.push(note.clone());
            }
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
            rails: Vec::new(),
            power: setup.clone(),
            started,
            ended: started,
            problems: problems.clone(),
        };
        if live.is_empty() && rails.is_empty() {
            return Recorder::done(empty);
        }
        let (stop, stopped) = mpsc::channel();
        let telemetry = self.clone();
        let first = Arc::new(FirstRound::default());
        let signal = first.clone();
        let spawned = std::thread::Builder::new()
            .name("perfgate-telemetry".into())
            .spawn(move || {
                SamplingLoop::new(telemetry, wanted, live, interval, problems, started)
                    .with_rails(rails, setup)
                    .run(stopped, &signal)
            });
        match spawned {
            Ok(handle) => Recorder {
                handle: Some(handle),
                stop: Some(stop),
                done: None,
                first: Some(first),
            },
            Err(e) => {
                let mut rec = empty;
                rec.problems.push(format!(
                    "no telemetry: cannot start the sampling thread: {e}"
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
        let mut inner = self.lock();
        if inner.setup.asked != PowerChoice::Nvml {
            let measured: Vec<&str> = inner.setup.measured.iter().map(|s| s.as_str()).collect();
            env.insert("power_sources".into(), Value::from(measured.join(",")));
        }
        if let Some(source) = &mut inner.source {
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
                .gpu_unavailable
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
    /// Set once the first round of readings is taken.
    first: Option<Arc<FirstRound>>,
}

/// Whether a sampling thread has taken its first round of readings.
#[derive(Default)]
struct FirstRound {
    taken: Mutex<bool>,
    cond: std::sync::Condvar,
}

impl FirstRound {
    fn set(&self) {
        *self.taken.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cond.notify_all();
    }
}

impl Recorder {
    fn done(rec: Recording) -> Recorder {
        Recorder {
            handle: None,
            stop: None,
            done: Some(rec),
            first: None,
        }
    }

    /// Waits (at most `timeout`) until the first round of readings is taken, so that what
    /// is measured next has a reading before it: the thread starts at once, but on a loaded
    /// machine its first reading can come tens of milliseconds later. True when it was taken
    /// (or there is nothing to sample).
    pub fn wait_first(&self, timeout: Duration) -> bool {
        let Some(first) = &self.first else {
            return true;
        };
        let taken = first.taken.lock().unwrap_or_else(|e| e.into_inner());
        let (taken, _) = first
            .cond
            .wait_timeout_while(taken, timeout, |t| !*t)
            .unwrap_or_else(|e| e.into_inner());
        *taken
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
                    rails: Vec::new(),
                    power: PowerSetup::default(),
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
    /// The GPU samples (NVML or a script).
    pub samples: Vec<Sample>,
    /// The sysfs sources' traces (Jetson rails and clocks, RAPL counters, thermal zones, CPU
    /// clocks), each reading with its own time.
    pub rails: Vec<Trace>,
    /// What was measured and what was not.
    pub power: PowerSetup,
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

    /// The energy of every source and rail over the recording (see the `energy` module docs
    /// for how: counters where there are counters, else the trapezoid integral of power);
    /// `output_tokens` gives each source's J/token.
    pub fn energy(&self, output_tokens: Option<f64>) -> EnergyReport {
        energy::report(self, output_tokens)
    }

    /// Every reading as traces: NVML's GPUs split per quantity (`gpu0` power, energy,
    /// temperature and load, `gpu0_mem` temperature and clock, `gpu0_sm` clock), the sysfs
    /// traces as sampled, and each RAPL counter also as power (each step's energy over its
    /// time, at the later reading).
    pub fn traces(&self) -> Vec<Trace> {
        traces::all(self)
    }

    /// The part of the recording that covers `from..=to`: every reading inside it, plus the
    /// last one before it and the first one after it, per GPU and per trace, so counters and
    /// power integrals cover the whole window (and at most one interval more at each end).
    /// What a sweep uses to give each test the energy of its measured repetitions only, not of
    /// its warm-up.
    pub fn between(&self, from: SystemTime, to: SystemTime) -> Recording {
        let mut samples = Vec::new();
        let mut gpus: Vec<u32> = self.samples.iter().map(|s| s.gpu).collect();
        gpus.sort_unstable();
        gpus.dedup();
        for gpu in gpus {
            let series: Vec<&Sample> = self.samples_of(gpu).collect();
            let times: Vec<SystemTime> = series.iter().map(|s| s.time).collect();
            if let Some(range) = covering(&times, from, to) {
                samples.extend(series[range].iter().map(|s| (*s).clone()));
            }
        }
        samples.sort_by_key(|s| s.time);
        let rails = self
            .rails
            .iter()
            .map(|t| {
                let mut kept = t.empty_like();
                if let Some(range) = covering(&t.times, from, to) {
                    kept.times = t.times[range.clone()].to_vec();
                    kept.values = t.values[range].to_vec();
                }
                kept
            })
            .collect();
        Recording {
            gpus: self.gpus.clone(),
            interval: self.interval,
            samples,
            rails,
            power: self.power.clone(),
            started: from.max(self.started),
            ended: to.min(self.ended).max(from.max(self.started)),
            problems: self.problems.clone(),
        }
    }

    /// The hottest sensor at its latest reading (for waiting until a machine has cooled).
    pub fn hottest(&self) -> Option<(String, f64)> {
        self.traces()
            .into_iter()
            .filter(|t| t.quantity == Quantity::Temp)
            .filter_map(|t| t.values.last().map(|v| (t.name.clone(), *v)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// The indices of time-ordered `times` that cover `from..=to`: those inside, plus the last
/// before and the first after; `None` when there is no reading.
fn covering(
    times: &[SystemTime],
    from: SystemTime,
    to: SystemTime,
) -> Option<std::ops::RangeInclusive<usize>> {
    if times.is_empty() {
        return None;
    }
    let lo = times.partition_point(|t| *t <= from).saturating_sub(1);
    let hi = times.partition_point(|t| *t < to).min(times.len() - 1);
    Some(lo..=hi.max(lo))
}

/// Slower than asked when the achieved mean interval exceeds the asked one by this factor.
const SLOW_FACTOR: f64 = 1.2;

struct SamplingLoop {
    telemetry: Telemetry,
    gpus: Vec<u32>,
    live: Vec<u32>,
    interval: Duration,
    samples: Vec<Sample>,
    /// The sysfs traces, in the order the sysfs source fills them.
    rails: Vec<Trace>,
    setup: PowerSetup,
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
            rails: Vec::new(),
            setup: PowerSetup::default(),
            problems,
            seen,
            started,
            rounds: Vec::new(),
            longest_round: Duration::ZERO,
        }
    }

    fn with_rails(mut self, rails: Vec<Trace>, setup: PowerSetup) -> SamplingLoop {
        self.rails = rails;
        self.setup = setup;
        self
    }

    /// Some GPU still answers, or there are sysfs traces to read.
    fn has_work(&self) -> bool {
        !self.live.is_empty() || !self.rails.is_empty()
    }

    fn note(&mut self, problem: String) {
        if self.seen.insert(problem.clone()) {
            self.problems.push(problem);
        }
    }

    /// One reading of every GPU still answering and of every sysfs trace.
    fn round(&mut self) {
        let began = Instant::now();
        let mut lost = Vec::new();
        let mut notes = Vec::new();
        {
            let mut guard = self.telemetry.lock();
            let inner = &mut *guard;
            if let Some(source) = inner.source.as_mut()
                && !self.live.is_empty()
            {
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
            if let Some(rails) = inner.rails.as_mut()
                && !self.rails.is_empty()
            {
                rails.sample_into(&mut self.rails);
                notes.extend(rails.take_notes());
            }
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

    fn run(mut self, stop: mpsc::Receiver<()>, first: &FirstRound) -> Recording {
        let mut next = Instant::now();
        loop {
            if !self.has_work() {
                first.set();
                // Every GPU is lost and there is nothing else: wait for the stop.
                let _ = stop.recv();
                break;
            }
            self.rounds.push(Instant::now());
            self.round();
            first.set();
            // Fixed rate; a round that overran starts the next at once, without a burst.
            next = (next + self.interval).max(Instant::now());
            match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if self.has_work() {
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
        let counter_problems: Vec<String> = self
            .rails
            .iter()
            .filter(|t| t.quantity == Quantity::Energy)
            .flat_map(|t| energy::counter_energy(t).1)
            .collect();
        for problem in counter_problems {
            self.note(problem);
        }
        Recording {
            gpus: self.gpus,
            interval: self.interval,
            samples: self.samples,
            rails: self.rails,
            power: self.setup,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_brackets_the_window() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let times: Vec<SystemTime> = [0, 100, 200, 300, 400].iter().map(|&m| at(m)).collect();
        // 150..250: the reading before (100), the one inside (200), the one after (300).
        assert_eq!(covering(&times, at(150), at(250)), Some(1..=3));
        // Readings exactly at the ends are enough on their own.
        assert_eq!(covering(&times, at(100), at(300)), Some(1..=3));
        // A window before every reading, or after: the nearest reading only.
        assert_eq!(covering(&times, at(0), at(0)), Some(0..=0));
        assert_eq!(covering(&times, at(900), at(950)), Some(4..=4));
        assert_eq!(covering(&[], at(0), at(1)), None);
    }
}
