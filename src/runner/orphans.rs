//! Nothing perfgate starts outlives it, even when perfgate is killed with SIGKILL (which it
//! cannot catch):
//!
//! - **The leader** of every step and service gets `PR_SET_PDEATHSIG = SIGKILL`: the kernel
//!   kills it when perfgate dies.
//! - **Its group** (workers, helpers) is registered with a watchdog: a small `sh` in a group of
//!   its own reading perfgate's pipe. When the pipe closes without perfgate having released the
//!   group (perfgate died), the watchdog kills every group still registered. A group released
//!   normally is never signalled, so a reused group id is safe.
//! - **Escapees**: perfgate is a child subreaper, so a process that left its group with
//!   `setsid` and whose parent exited is reparented to perfgate instead of init; after a step,
//!   such orphans (a session other than perfgate's) are killed, so one holding the step's
//!   output pipe cannot make perfgate wait.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The watchdog's script: `+PGID` registers a group, `-PGID` releases it; at end of input
/// (perfgate gone) every group still registered is killed.
const WATCHDOG: &str = r#"
g=" "
while IFS= read -r l; do
  case "$l" in
    +*) g="$g${l#+} " ;;
    -*) n=" "; for p in $g; do [ "$p" = "${l#-}" ] || n="$n$p "; done; g=$n ;;
  esac
done
for p in $g; do kill -KILL "-$p" 2>/dev/null; done
"#;

struct Watchdog {
    stdin: ChildStdin,
    pid: u32,
}

static STATE: OnceLock<Mutex<Option<Watchdog>>> = OnceLock::new();

fn watchdog() -> &'static Mutex<Option<Watchdog>> {
    STATE.get_or_init(|| {
        become_subreaper();
        let started = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Not in perfgate's group: a Ctrl-C at the terminal must not end it early.
            .process_group(0)
            .spawn();
        let watchdog = started.ok().and_then(|mut child| {
            let pid = child.id();
            child.stdin.take().map(|stdin| Watchdog { stdin, pid })
        });
        Mutex::new(watchdog)
    })
}

/// Registers a process group for the watchdog; dropping the guard releases it.
pub struct GroupGuard {
    pgid: i32,
}

/// Registers `pgid` with the watchdog (started on first use). Without a watchdog (no `/bin/sh`)
/// the group is still stopped on every path perfgate itself survives.
pub fn guard(pgid: i32) -> GroupGuard {
    send(&format!("+{pgid}\n"));
    GroupGuard { pgid }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        send(&format!("-{}\n", self.pgid));
    }
}

fn send(line: &str) {
    if let Ok(mut w) = watchdog().lock()
        && let Some(dog) = w.as_mut()
        && dog.stdin.write_all(line.as_bytes()).is_err()
    {
        *w = None;
    }
}

/// The watchdog's pid, when one runs.
pub fn watchdog_pid() -> Option<u32> {
    watchdog().lock().ok()?.as_ref().map(|w| w.pid)
}

/// Makes the child die with perfgate: applied to each leader before it execs.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated between fork and
    // exec.
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // perfgate died between fork and prctl: nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(137);
            }
            Ok(())
        });
    }
}

fn become_subreaper() {
    // SAFETY: a plain prctl on this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Kills perfgate's children that are in another session (processes that `setsid`-ed away
/// from a step's group and were reparented to perfgate when their parent exited), with their
/// groups. Returns their pids.
pub fn kill_escaped() -> Vec<i32> {
    // SAFETY: plain syscalls on this process.
    let (me, my_sid) = unsafe { (libc::getpid(), libc::getsid(0)) };
    let watchdog = watchdog_pid().map(|p| p as i32);
    let mut killed = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return killed;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if Some(pid) == watchdog {
            continue;
        }
        let Some((ppid, sid, state)) = stat(pid) else {
            continue;
        };
        if ppid == me && sid != my_sid && state != 'Z' {
            // SAFETY: signalling a process that is our child (it cannot be reused while it is
            // unreaped) and its group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
            killed.push(pid);
        }
    }
    // Reap them (SIGKILL is prompt; one stuck in the kernel is left for later).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut left = killed.clone();
    while !left.is_empty() && std::time::Instant::now() < until {
        left.retain(|&pid| {
            let mut status = 0;
            // SAFETY: reaping our own (killed) child without blocking.
            unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == 0 }
        });
        if !left.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    killed
}

/// `(ppid, session id, state)` from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(i32, i32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything; the fields follow the last `)`.
    let rest = text.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let _pgrp = fields.next()?;
    let sid = fields.next()?.parse().ok()?;
    Some((ppid, sid, state))
}
