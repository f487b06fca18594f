//! The only place that starts processes. Runs a test's steps in order, appending their output
//! to the test's log, and enforces the test's time limit by killing the whole process group
//! (trtllm-bench starts worker processes that must not outlive it).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::plan::{Step, StepKind, TestPlan};

/// Runs the setup steps, then every case's steps. Stops at the first failure.
pub fn run_plan(
    plan: &TestPlan,
    log_path: &Path,
    timeout: Option<Duration>,
    dataset_cache: &Path,
) -> anyhow::Result<()> {
    let deadline = timeout.map(|t| (Instant::now() + t, t));
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("{}: cannot open the log", log_path.display()))?;
    for step in plan.steps() {
        write_step_files(step)?;
        match (step.kind, step.stdout_to.is_none()) {
            (StepKind::Dataset, true) => {
                let req = step
                    .dataset
                    .as_ref()
                    .context("dataset step without a dataset request")?;
                writeln!(log, "$ {}", step.command_line())?;
                let made = crate::dataset::generate_for_plan(req, dataset_cache)
                    .with_context(|| format!("dataset for {}", req.output.display()))?;
                let how = if made.reused { "reused" } else { "generated" };
                writeln!(
                    log,
                    "dataset {how}: {} (cache {})",
                    made.path.display(),
                    made.cache_entry.display()
                )?;
            }
            _ => run_command(step, &mut log, log_path, deadline)?,
        }
    }
    Ok(())
}

/// What a step needs on disk before it runs: its planned files (the extra LLM API YAML) and,
/// for LoRA datasets, `<lora_dir>/<i>` links to the adapters (upstream's `ln -sf`). Used by
/// dry runs too, which write everything but start nothing.
pub fn write_step_files(step: &Step) -> anyhow::Result<()> {
    for f in &step.files {
        if let Some(dir) = f.path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
        }
        write_file_atomic(&f.path, f.contents.as_bytes())?;
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

/// Writes `bytes` to `path` whole or not at all (the dataset writer's temp-file-and-rename).
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::dataset::write_atomically(path, |f| {
        f.write_all(bytes)
            .map_err(|e| crate::dataset::DatasetError::Write {
                target: path.display().to_string(),
                source: e,
            })
    })?;
    Ok(())
}

/// `a:b:$LD_LIBRARY_PATH` → `a:b:<inherited value>` (the trailing `:` dropped when unset).
fn expand_env(value: &str) -> String {
    let mut out = String::new();
    for (i, part) in value.split(':').enumerate() {
        let piece = match part.strip_prefix('$') {
            Some(var) => std::env::var(var).unwrap_or_default(),
            None => part.to_string(),
        };
        if piece.is_empty() {
            continue;
        }
        if i > 0 && !out.is_empty() {
            out.push(':');
        }
        out.push_str(&piece);
    }
    out
}

fn run_command(
    step: &Step,
    log: &mut File,
    log_path: &Path,
    deadline: Option<(Instant, Duration)>,
) -> anyhow::Result<()> {
    let (program, args) = step.argv.split_first().context("empty command")?;
    writeln!(log, "$ {}", step.command_line())?;
    log.flush()?;
    let start_len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let stdout = match &step.stdout_to {
        Some(path) => Stdio::from(
            File::create(path).with_context(|| format!("{}: cannot create", path.display()))?,
        ),
        None => Stdio::from(log.try_clone()?),
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(step.env.iter().map(|(k, v)| (k, expand_env(v))))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log.try_clone()?)
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "`{program}` not found: install TensorRT-LLM, point --bench-cmd (or TRTLLM_BENCH) at the benchmark, or use --dry-run"
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot start `{program}`")),
    };
    let status: ExitStatus = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if let Some((at, limit)) = deadline
            && Instant::now() >= at
        {
            kill_group(child.id());
            let _ = child.wait();
            bail!(
                "time limit of {} min reached; killed `{program}` and its process group\n{}",
                limit.as_secs() / 60,
                tail(log_path, start_len, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        let how = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(s)) => format!("was killed by signal {s}"),
            _ => "failed".into(),
        };
        bail!(
            "`{program}` {how} (log: {})\n{}",
            log_path.display(),
            tail(log_path, start_len, 20)
        );
    }
    Ok(())
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals the process group we created.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// The last `n` lines the step wrote to the log.
fn tail(log_path: &Path, from: u64, n: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(log_path) {
        let _ = f.seek(SeekFrom::Start(from));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
