//! The console output of one run, built first and printed afterwards line by line (flushed
//! each time, since perfgate's tests watch a log grow to detect stalls). Building it first is
//! what lets the fault modes cut it at a realistic place: `crash` half-way through the report,
//! `hang` right after the benchmark starts.

use std::io::Write;
use std::time::Duration;

use crate::faults::Modes;

struct Line {
    text: String,
    /// TRT-LLM's Python logger level (`I`, `W`, `E`): the line gets the timestamped prefix
    /// `[MM/DD/YYYY-HH:MM:SS] [TRT-LLM] [I] ` when printed.
    level: Option<char>,
}

#[derive(Default)]
pub struct Console {
    lines: Vec<Line>,
    started: Option<usize>,
    report: Option<(usize, usize)>,
}

impl Console {
    /// A plain line (C++ runtime `[TensorRT-LLM][INFO]` lines, tqdm bars, report body).
    pub fn out(&mut self, text: impl Into<String>) {
        self.lines.push(Line {
            text: text.into(),
            level: None,
        });
    }

    /// A line through TRT-LLM's Python logger.
    pub fn log(&mut self, level: char, text: impl Into<String>) {
        self.lines.push(Line {
            text: text.into(),
            level: Some(level),
        });
    }

    pub fn extend(&mut self, lines: Vec<String>) {
        for l in lines {
            self.out(l);
        }
    }

    /// Marks "the benchmark has started": where `hang` stops printing.
    pub fn mark_started(&mut self) {
        self.started = Some(self.lines.len());
    }

    /// Appends lines whose first goes through the logger (a multi-line message: the prefix
    /// lands on its first line only).
    pub fn block(&mut self, lines: Vec<String>) {
        let mut it = lines.into_iter();
        if let Some(first) = it.next() {
            self.log('I', first);
        }
        self.extend(it.collect());
    }

    /// Appends the report (logged as one message from era B on, printed plainly in era A) and
    /// remembers where it is, for `crash`.
    pub fn report(&mut self, lines: Vec<String>, logged: bool) {
        let start = self.lines.len();
        if logged {
            self.block(lines);
        } else {
            self.extend(lines);
        }
        self.report = Some((start, self.lines.len()));
    }
}

/// Prints the console under the fault modes. Returns only when the run is to finish (normally
/// or with `exit:N`); `crash` and the hangs never return.
pub fn emit(console: &Console, modes: &Modes) {
    let n = console.lines.len();
    let half_report = console.report.map(|(s, e)| s + (e - s) / 2);
    let started = console.started.unwrap_or(n / 2);
    let stop = if modes.crash {
        half_report.unwrap_or(n / 2)
    } else if modes.fatal_hang || modes.hang {
        started
    } else {
        n
    };
    for line in &console.lines[..stop.min(n)] {
        if dropped(line, &modes.drops) {
            continue;
        }
        if let Some(d) = modes.slow {
            std::thread::sleep(d);
        }
        print_line(line);
    }
    if modes.crash {
        print_raw(true, "Segmentation fault (core dumped)");
        crash();
    }
    if modes.fatal_hang {
        for l in FATAL_PYTHON_ERROR {
            print_raw(true, l);
        }
        sleep_forever();
    }
    if modes.hang {
        sleep_forever();
    }
}

/// What CPython's faulthandler prints when an MPI worker aborts under it; the leader then
/// waits on its workers forever, which is the hang a time limit must catch.
const FATAL_PYTHON_ERROR: &[&str] = &[
    "Fatal Python error: Aborted",
    "",
    "Thread 0x00007f3a9c3ff640 (most recent call first):",
    "  File \"/usr/lib/python3.12/threading.py\", line 359 in wait",
    "  File \"/usr/local/lib/python3.12/dist-packages/mpi4py/futures/_core.py\", line 213 in _manager_comm",
    "",
    "Current thread 0x00007f3b2a5e8740 (most recent call first):",
    "  File \"/usr/local/lib/python3.12/dist-packages/tensorrt_llm/bench/benchmark/utils/asynchronous.py\", line 231 in worker",
    "",
    "Extension modules: numpy.core._multiarray_umath, torch._C, mpi4py.MPI (total: 3)",
];

fn dropped(line: &Line, drops: &[String]) -> bool {
    drops.iter().any(|p| line.text.starts_with(p.as_str()))
}

fn print_line(line: &Line) {
    match line.level {
        Some(level) => print_raw(
            false,
            &format!("{} [TRT-LLM] [{level}] {}", timestamp(), line.text),
        ),
        None => print_raw(false, &line.text),
    }
}

/// One line, flushed at once. A closed pipe is ignored: the reader has gone and the run
/// carries on as a real benchmark would until it notices.
pub fn print_raw(stderr: bool, text: &str) {
    if stderr {
        let mut e = std::io::stderr().lock();
        let _ = writeln!(e, "{text}");
        let _ = e.flush();
    } else {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{text}");
        let _ = o.flush();
    }
}

/// `[MM/DD/YYYY-HH:MM:SS]` in local time, TRT-LLM's logger format.
pub fn timestamp() -> String {
    // SAFETY: time(NULL) and localtime_r with a zeroed, caller-owned `tm` are always valid.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!(
        "[{:02}/{:02}/{:04}-{:02}:{:02}:{:02}]",
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

pub fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Dies of SIGSEGV like a crashing CUDA kernel launch would: the parent sees "killed by signal
/// 11". Core dumps are switched off first so tests do not leave `core` files behind.
pub fn crash() -> ! {
    // SAFETY: plain libc calls on this process only; SIG_DFL replaces the Rust runtime's
    // stack-overflow handler so the signal terminates the process.
    unsafe {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::raise(libc::SIGSEGV);
    }
    // Only reached if the signal could not be raised.
    std::process::abort()
}
