//! One benchmark process, watched: its merged stdout and stderr go to the test's log (and to the
//! terminal with `--nocapture`) as they arrive; it is stopped, with its whole process group, when
//! the time limit passes, when it stalls, or when perfgate is interrupted.
//!
//! Why a process group: trtllm-bench starts MPI workers and Python helpers that hold the GPU.
//! Killing only the leader would leave them running (and the GPU busy) for the next test.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::signals;

/// Lines that mean the process is dying even if it has not exited yet (upstream's list).
pub const FATAL_PATTERNS: &[&str] = &[
    "Segmentation fault",
    "Fatal Python error:",
    "terminate called",
    "[TensorRT-LLM][ERROR]",
];

/// How long a step may run and stay silent.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The test's time limit: when it passes, the step is stopped.
    pub deadline: Option<(Instant, Duration)>,
    /// No output for this long: the step is taken as hung (upstream: 1800 s).
    pub stall: Duration,
    /// No output for this long after a fatal line (upstream: 180 s).
    pub fatal_stall: Duration,
    /// Between SIGTERM and SIGKILL when stopping a group: time for workers to release the GPU.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: None,
            stall: Duration::from_secs(1800),
            fatal_stall: Duration::from_secs(180),
            grace: Duration::from_secs(10),
        }
    }
}

/// A finished process: where its output is in the log and how long it ran.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Byte range of this process's output in the log.
    pub log_range: std::ops::Range<u64>,
    pub duration: Duration,
}

/// Why a process did not finish cleanly. Every variant carries the last lines it printed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(
        "`{program}` not found: install TensorRT-LLM, point --bench-cmd (or TRTLLM_BENCH) at the benchmark, or use --dry-run"
    )]
    NotFound { program: String },
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "time limit of {} reached; stopped `{program}` and its process group\n{tail}",
        minutes(*limit)
    )]
    TimeLimit {
        program: String,
        limit: Duration,
        tail: String,
    },
    #[error("`{program}` printed nothing for {} s{}; stopped it and its process group\n{tail}", silent.as_secs(), fatal_note(fatal))]
    Stalled {
        program: String,
        silent: Duration,
        fatal: Option<String>,
        tail: String,
    },
    #[error("`{program}` exited with status {code}{}\n{tail}", fatal_note(fatal))]
    Exit {
        program: String,
        code: i32,
        fatal: Option<String>,
        tail: String,
        /// What it printed, in the log (a client that exits 1 after its report is still read).
        log_range: std::ops::Range<u64>,
    },
    #[error("`{program}` was killed by signal {signal} ({}){}\n{tail}", signal_name(*signal), fatal_note(fatal))]
    Signal {
        program: String,
        signal: i32,
        fatal: Option<String>,
        tail: String,
    },
    #[error(
        "interrupted by {}; stopped `{program}` and its process group\n{tail}",
        signal_name(*signal)
    )]
    Interrupted {
        program: String,
        signal: i32,
        tail: String,
    },
}

fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

fn fatal_note(fatal: &Option<String>) -> String {
    fatal
        .as_ref()
        .map(|l| format!(" after a fatal line (`{l}`)"))
        .unwrap_or_default()
}

pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

/// What the output reader shares with the watcher.
struct Shared {
    /// Milliseconds since the start at which output last arrived.
    last_output_ms: AtomicU64,
    fatal: Mutex<Option<String>>,
    done: AtomicBool,
}

/// Runs `argv` with `env`, appending its merged output to `log` (and echoing it when `echo`),
/// or sending stdout to `stdout_to` (a dataset written by upstream's script) with stderr still
/// logged. Returns when the process and every member of its group are gone.
pub fn run(
    argv: &[String],
    env: &[(String, String)],
    stdout_to: Option<&Path>,
    log: &mut File,
    log_path: &Path,
    echo: bool,
    limits: &Limits,
) -> Result<Finished, ProcessError> {
    let io_err = |source| ProcessError::Io {
        path: log_path.to_path_buf(),
        source,
    };
    let (program, args) = argv.split_first().ok_or_else(|| ProcessError::Spawn {
        program: String::new(),
        source: std::io::Error::other("empty command"),
    })?;
    log.flush().map_err(io_err)?;
    let start_offset = log.metadata().map_err(io_err)?.len();
    let (reader, writer) = std::io::pipe().map_err(io_err)?;
    let stdout = match stdout_to {
        Some(path) => Stdio::from(File::create(path).map_err(|source| ProcessError::Io {
            path: path.to_path_buf(),
            source,
        })?),
        None => Stdio::from(writer.try_clone().map_err(io_err)?),
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::from(writer))
        .process_group(0);
    super::orphans::die_with_parent(&mut cmd);
    let started = Instant::now();
    let spawned = cmd.spawn();
    // The command holds our copies of the pipe's write end; drop them so the reader sees EOF
    // once the process group is gone.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ProcessError::NotFound {
                program: program.clone(),
            });
        }
        Err(source) => {
            return Err(ProcessError::Spawn {
                program: program.clone(),
                source,
            });
        }
    };
    let pgid = child.id() as i32;
    // Killed by the watchdog if perfgate itself is killed before the group is gone.
    let _watched = super::orphans::guard(pgid);
    let shared = Arc::new(Shared {
        last_output_ms: AtomicU64::new(0),
        fatal: Mutex::new(None),
        done: AtomicBool::new(false),
    });
    let log_copy = log.try_clone().map_err(io_err)?;
    let (done_tx, done_rx) = mpsc::channel::<std::io::Result<()>>();
    {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let r = pump(reader, log_copy, echo, &shared, started);
            shared.done.store(true, Ordering::SeqCst);
            let _ = done_tx.send(r);
        });
    }

    let tail = |log_path: &Path| tail(log_path, start_offset, 20);
    let stop = |why: Stop| -> ProcessError {
        stop_group(pgid, limits.grace);
        let _ = child_wait_quiet(pgid);
        let _ = done_rx.recv_timeout(Duration::from_secs(5));
        let fatal = shared.fatal.lock().ok().and_then(|f| f.clone());
        let program = program.clone();
        match why {
            Stop::Limit(limit) => ProcessError::TimeLimit {
                program,
                limit,
                tail: tail(log_path),
            },
            Stop::Stall(silent) => ProcessError::Stalled {
                program,
                silent,
                fatal,
                tail: tail(log_path),
            },
            Stop::Interrupt(signal) => ProcessError::Interrupted {
                program,
                signal,
                tail: tail(log_path),
            },
        }
    };

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => {
                let _ = stop(Stop::Interrupt(libc::SIGKILL));
                return Err(ProcessError::Io {
                    path: log_path.to_path_buf(),
                    source,
                });
            }
        }
        if let Some(signal) = signals::interrupted() {
            return Err(stop(Stop::Interrupt(signal)));
        }
        if let Some((at, limit)) = limits.deadline
            && Instant::now() >= at
        {
            return Err(stop(Stop::Limit(limit)));
        }
        let silent = started.elapsed().saturating_sub(Duration::from_millis(
            shared.last_output_ms.load(Ordering::Relaxed),
        ));
        let fatal_seen = shared.fatal.lock().map(|f| f.is_some()).unwrap_or(false);
        let allowed = if fatal_seen {
            limits.fatal_stall
        } else {
            limits.stall
        };
        if silent >= allowed {
            return Err(stop(Stop::Stall(silent)));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let duration = started.elapsed();
    // Whatever the leader left behind in its group (MPI workers, helpers) goes with it, and so
    // does anything that left the group with setsid (it may hold the output pipe open).
    kill_group(pgid, libc::SIGKILL);
    for pid in super::orphans::kill_escaped() {
        let _ = writeln!(
            log.try_clone().map_err(io_err)?,
            "perfgate: killed process {pid}, which left `{program}`'s process group (setsid) and outlived it"
        );
    }
    match done_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => {}
        Ok(Err(source)) => return Err(io_err(source)),
        // A process that left the group (setsid) still holds the pipe; do not wait for it.
        Err(_) => {
            let _ = writeln!(
                log.try_clone().map_err(io_err)?,
                "perfgate: output still open after `{program}` exited (a process left its group?); not waiting for it"
            );
        }
    }
    let end_offset = log.metadata().map_err(io_err)?.len();
    let fatal = shared.fatal.lock().ok().and_then(|f| f.clone());
    if let Some(code) = status.code() {
        if code != 0 {
            return Err(ProcessError::Exit {
                program: program.clone(),
                code,
                fatal,
                tail: tail(log_path),
                log_range: start_offset..end_offset,
            });
        }
    } else if let Some(signal) = status.signal() {
        return Err(ProcessError::Signal {
            program: program.clone(),
            signal,
            fatal,
            tail: tail(log_path),
        });
    }
    Ok(Finished {
        log_range: start_offset..end_offset,
        duration,
    })
}

enum Stop {
    Limit(Duration),
    Stall(Duration),
    Interrupt(i32),
}

/// Copies the process output to the log (and the terminal) and watches for fatal lines.
/// Works on raw chunks, so a process printing megabytes without a newline costs no memory.
fn pump(
    mut reader: std::io::PipeReader,
    mut log: File,
    echo: bool,
    shared: &Shared,
    started: Instant,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the previous chunk, so a pattern split across two reads is still seen.
    let mut carry: Vec<u8> = Vec::new();
    let longest = FATAL_PATTERNS.iter().map(|p| p.len()).max().unwrap_or(0);
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        log.write_all(chunk)?;
        if echo {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(chunk);
            let _ = out.flush();
        }
        shared
            .last_output_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let already = shared.fatal.lock().map(|f| f.is_some()).unwrap_or(true);
        if !already {
            carry.extend_from_slice(chunk);
            if let Some(line) = find_fatal(&carry) {
                if let Ok(mut f) = shared.fatal.lock() {
                    *f = Some(line);
                }
            } else {
                // Keep the last line start (bounded) so the reported line is whole.
                let keep_from = carry
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map(|i| i + 1)
                    .unwrap_or(0)
                    .max(carry.len().saturating_sub(longest.max(512)));
                carry.drain(..keep_from);
            }
        }
    }
}

/// The first line of `text` holding a fatal pattern, trimmed and bounded in length.
fn find_fatal(text: &[u8]) -> Option<String> {
    for pattern in FATAL_PATTERNS {
        if let Some(at) = memchr::memmem::find(text, pattern.as_bytes()) {
            let start = text[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map(|i| i + 1)
                .unwrap_or(0);
            let end = text[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| at + i)
                .unwrap_or(text.len());
            let line = String::from_utf8_lossy(&text[start..end]);
            let line = line.trim();
            return Some(line.chars().take(200).collect());
        }
    }
    None
}

/// SIGTERM to the group, then SIGKILL once `grace` has passed or the group is gone.
pub(crate) fn stop_group(pgid: i32, grace: Duration) {
    kill_group(pgid, libc::SIGTERM);
    let until = Instant::now() + grace;
    while Instant::now() < until {
        // Reap the leader if it is ours, so the group check below is not fooled by a zombie.
        let _ = child_wait_quiet(pgid);
        if !group_alive(pgid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_group(pgid, libc::SIGKILL);
}

fn kill_group(pgid: i32, signal: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals the process group we created for the step.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// Is any process of the group still there? (kill with signal 0 checks without signalling.)
fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks that the group exists.
    pgid > 0 && unsafe { libc::kill(-pgid, 0) } == 0
}

/// Reaps the leader without blocking (it is our child).
fn child_wait_quiet(pid: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: waitpid on our own child with WNOHANG; reaping it twice only returns an error.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (r == pid).then_some(status)
}

/// The last `n` lines written to the log from `from` on, indented for a failure message.
pub fn tail(log_path: &Path, from: u64, n: usize) -> String {
    use std::io::{Seek, SeekFrom};
    let Ok(mut f) = File::open(log_path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    // The last 64 KiB are plenty for 20 lines and keep a huge log from being read whole.
    let start = from.max(len.saturating_sub(64 * 1024));
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.len().saturating_sub(n);
    lines[first..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_line_is_found_whole() {
        let text = b"ok\n[TensorRT-LLM][ERROR] CUDA error: out of memory\nmore";
        assert_eq!(
            find_fatal(text).as_deref(),
            Some("[TensorRT-LLM][ERROR] CUDA error: out of memory")
        );
        assert_eq!(find_fatal(b"all good\n"), None);
    }
}

/// A short command run to completion with its output kept (SLURM's client tools: sbatch,
/// squeue, sacct, scontrol, scancel).
#[derive(Debug, Clone)]
pub struct Captured {
    /// The exit status; `None` when a signal ended it.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Runs `argv` with stdin closed and returns its output. A command still running after
/// `limit` is killed (a client stuck on an unreachable controller must not hang perfgate).
/// The command stays in perfgate's process group: these are short clients, and a Ctrl-C
/// at the terminal may as well reach them.
pub fn capture(argv: &[String], limit: Duration) -> Result<Captured, ProcessError> {
    let (program, args) = argv.split_first().ok_or_else(|| ProcessError::Spawn {
        program: String::new(),
        source: std::io::Error::other("empty command"),
    })?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ProcessError::NotFound {
                program: program.clone(),
            },
            _ => ProcessError::Spawn {
                program: program.clone(),
                source,
            },
        })?;
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(limit) {
        Ok(r) => r.map_err(|source| ProcessError::Spawn {
            program: program.clone(),
            source,
        })?,
        Err(_) => {
            // SAFETY: signalling the child this function started (the waiter thread has not
            // reaped it, or recv would have returned).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            return Err(ProcessError::TimeLimit {
                program: program.clone(),
                limit,
                tail: String::new(),
            });
        }
    };
    Ok(Captured {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// The first `program` on `PATH` (a file with an execute bit), without starting anything.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return Some(PathBuf::from(program)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
