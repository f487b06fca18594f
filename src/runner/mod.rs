//! The only place that starts processes. Runs a test's steps one at a time, appending their
//! output to the test's log, and enforces time limits, stall limits and Ctrl-C by stopping the
//! whole process group (trtllm-bench starts worker processes that must not outlive it).

pub mod orphans;
pub mod process;
pub mod service;
pub mod signals;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

pub use process::{Limits, ProcessError};
pub use service::{Service, ServiceContext, ServiceError};

use crate::plan::Step;

/// Runs steps for one test, appending everything to the test's log.
pub struct Runner {
    log: File,
    log_path: PathBuf,
    echo: bool,
    limits: Limits,
    dataset_cache: PathBuf,
}

/// A step that finished cleanly.
#[derive(Debug, Clone)]
pub struct StepRun {
    /// Byte range of the step's output in the log (empty for in-process dataset generation).
    pub log_range: Range<u64>,
    pub duration: Duration,
    pub started: SystemTime,
    pub ended: SystemTime,
    /// The command as it ran (placeholders and variables resolved), pasteable.
    pub command: String,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("{0}")]
    Prepare(String),
}

impl Runner {
    /// Starts the test's log afresh (a re-run into the same directory replaces it).
    pub fn open(
        log_path: &Path,
        echo: bool,
        limits: Limits,
        dataset_cache: &Path,
    ) -> anyhow::Result<Runner> {
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
        }
        let log = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(log_path)
            .with_context(|| format!("{}: cannot open the log", log_path.display()))?;
        Ok(Runner {
            log,
            log_path: log_path.to_path_buf(),
            echo,
            limits,
            dataset_cache: dataset_cache.to_path_buf(),
        })
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// A line of perfgate's own in the log (and on the terminal with `--nocapture`).
    pub fn note(&mut self, line: &str) {
        let _ = writeln!(self.log, "perfgate: {line}");
        if self.echo {
            println!("perfgate: {line}");
        }
    }

    /// Runs one step to completion: writes its files, then generates its dataset in-process or
    /// runs its command under the limits. `context` is what the services of its scope give
    /// (their addresses, as environment and placeholders).
    pub fn run_step(
        &mut self,
        step: &Step,
        context: &ServiceContext,
    ) -> Result<StepRun, StepError> {
        let started = SystemTime::now();
        let clock = Instant::now();
        write_step_files_in(step, context).map_err(|e| StepError::Prepare(format!("{e:#}")))?;
        let (argv, env) = resolve(step, context);
        let command = actual_command(step, &argv, &env);
        let _ = writeln!(self.log, "$ {command}");
        if self.echo {
            println!("$ {command}");
        }
        if let Some(signal) = signals::interrupted() {
            return Err(StepError::Prepare(format!(
                "interrupted by {} before the step started",
                process::signal_name(signal)
            )));
        }
        let log_range = match (&step.dataset, &step.stdout_to) {
            (Some(req), None) => {
                let made =
                    crate::dataset::generate_for_plan(req, &self.dataset_cache).map_err(|e| {
                        StepError::Prepare(format!("dataset for {}: {e:#}", req.output.display()))
                    })?;
                let how = if made.reused { "reused" } else { "generated" };
                self.note(&format!(
                    "dataset {how}: {} (cache {})",
                    made.path.display(),
                    made.cache_entry.display()
                ));
                0..0
            }
            _ => {
                process::run(
                    &argv,
                    &env,
                    step.stdout_to.as_deref(),
                    &mut self.log,
                    &self.log_path,
                    self.echo,
                    &self.limits,
                )?
                .log_range
            }
        };
        Ok(StepRun {
            log_range,
            duration: clock.elapsed(),
            started,
            ended: SystemTime::now(),
            command,
        })
    }

    /// Starts a service step and waits until it is ready (see [`service::Service`]); its
    /// output goes to its own log, named in the test's log.
    pub fn start_service(
        &mut self,
        step: &Step,
        context: &ServiceContext,
    ) -> Result<Service, StepError> {
        write_step_files_in(step, context).map_err(|e| StepError::Prepare(format!("{e:#}")))?;
        let (_, env) = resolve(step, context);
        let log = step
            .service
            .as_ref()
            .map(|s| s.log.display().to_string())
            .unwrap_or_default();
        let line = format!(
            "$ {} &    # {} service, log {log}",
            step.command_line(),
            step.label
        );
        let _ = writeln!(self.log, "{line}");
        if self.echo {
            println!("{line}");
        }
        let deadline = self.limits.deadline.map(|(at, _)| at);
        let service = Service::start(step, &env, context, self.limits.grace, deadline)?;
        self.note(&format!(
            "{} service ready{}",
            step.label,
            service
                .addr
                .as_ref()
                .map(|a| format!(" at {a}"))
                .unwrap_or_default()
        ));
        Ok(service)
    }
}

/// The argv and environment a step really runs with: placeholders of its scope's services
/// replaced, `$VAR` items of path lists expanded from perfgate's environment, and the
/// services' variables added.
fn resolve(step: &Step, context: &ServiceContext) -> (Vec<String>, Vec<(String, String)>) {
    let argv = step.argv.iter().map(|a| context.apply(a)).collect();
    let mut env: Vec<(String, String)> = step
        .env
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                crate::textutil::expand_path_list(&context.apply(v), |var| std::env::var(var).ok()),
            )
        })
        .collect();
    env.extend(context.env.iter().cloned());
    (argv, env)
}

/// The command as it ran, pasteable: the values perfgate's child got, not the variables they
/// came from.
fn actual_command(step: &Step, argv: &[String], env: &[(String, String)]) -> String {
    let mut cmd = crate::textutil::shell_join(argv);
    if let Some(out) = &step.stdout_to {
        cmd.push_str(&format!(
            " > {}",
            crate::textutil::shell_quote(&out.display().to_string())
        ));
    }
    let env: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::textutil::shell_quote(v)))
        .collect();
    if env.is_empty() {
        cmd
    } else {
        format!("{} {cmd}", env.join(" "))
    }
}

/// What a step needs on disk before it runs: its planned files (the extra LLM API YAML) and,
/// for LoRA datasets, `<lora_dir>/<i>` links to the adapters (upstream's `ln -sf`). Used by
/// dry runs too, which write everything but start nothing (placeholders of services that are
/// not running are left as they are).
pub fn write_step_files(step: &Step) -> anyhow::Result<()> {
    write_step_files_in(step, &ServiceContext::default())
}

/// [`write_step_files`] with the placeholders of `context` filled into the files (a
/// disaggregated server's config names its workers' addresses).
pub fn write_step_files_in(step: &Step, context: &ServiceContext) -> anyhow::Result<()> {
    for f in &step.files {
        if let Some(dir) = f.path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
        }
        crate::fsutil::write(&f.path, context.apply(&f.contents).as_bytes())?;
    }
    if let Some(req) = &step.dataset {
        if let Some(dir) = &req.lora_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
            for (i, adapter) in req.lora_adapters.iter().enumerate() {
                let link = dir.join(i.to_string());
                if std::fs::symlink_metadata(&link).is_ok() {
                    std::fs::remove_file(&link)
                        .with_context(|| format!("{}: cannot replace", link.display()))?;
                }
                std::os::unix::fs::symlink(adapter, &link).with_context(|| {
                    format!("{}: cannot link to {}", link.display(), adapter.display())
                })?;
            }
        }
        if let Some(dir) = req.output.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
        }
    }
    Ok(())
}
