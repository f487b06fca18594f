//! fake-trtllm-bench: a test double of TensorRT-LLM's `trtllm-bench` for perfgate's own
//! end-to-end tests. It is a fixture, not a benchmark: it parses the real command line, reads
//! the real dataset format, makes up a deterministic run from the dataset's lengths and prints
//! the report a real trtllm-bench of a chosen version would print for such a run (numbers
//! self-consistent, computed with upstream's metric definitions), so perfgate can be tested
//! without a GPU.
//!
//! Command line (as click parses it; unknown options are exit status 2, "Error: No such
//! option: --x"):
//!
//!   fake-trtllm-bench [--model=M] [--model_path=P] [--workspace=W] [--log_level=L] [--revision=R]
//!                     build|throughput|latency [OPTIONS]
//!
//! `build` writes `<workspace>/<model>/tp_<tp>_pp_<pp>/config.json` (+ `rank<i>.engine`) and
//! prints an era-B build log including TensorRT's `Engine generation completed in X seconds.`
//! `throughput` and `latency` read `--dataset` and print a report; `--report_json` is written
//! with upstream's keys (`json.dumps(indent=4)`). With `--backend=tensorrt` the engine's
//! config.json must exist (as `build` writes it).
//!
//! Environment (all optional):
//!
//!   FAKE_BENCH_ERA=A|B|C|C'|D   report era (default D): A `= STATISTICS` (0.12), B `= PERFORMANCE
//!                               OVERVIEW` with TABs (0.17, and its own latency report), C (0.19),
//!                               C' (0.20, Total Token Throughput after Per GPU), D (1.0).
//!   FAKE_BENCH_MODE=m1,m2,...   faults to inject:
//!       crash             print half the report, then `Segmentation fault (core dumped)` on
//!                         stderr and die of SIGSEGV (no core file is written)
//!       hang              print up to "Starting benchmark...", then sleep forever
//!       fatal-hang        the same, then a `Fatal Python error: Aborted` block, then sleep forever
//!       silent-hang       print nothing at all and sleep forever
//!       failed-requests   the report says `Failed requests: N` (N = max(1, requests/10)) and
//!                         `!FAILED REQUESTS!`; the metrics still cover every request
//!       drop:<PREFIX>     leave out lines starting with PREFIX (e.g. `drop:Total Latency`);
//!                         repeatable; a prefix cannot contain a comma
//!       exit:<N>          finish normally, then exit with status N (stderr says so)
//!       no-report-json    do not write --report_json
//!       spawn-child       start `sleep 1000` in this process group (like an MPI worker) and
//!                         print its pid, to test that a time limit kills the whole group
//!       slow[:<ms>]       sleep between printed lines (default 20 ms)
//!       json-set:<section>.<key>=<number>
//!                         write that report.json value instead of the run's (a report that
//!                         contradicts its log); repeatable
//!   FAKE_BENCH_MODE_BUILD, FAKE_BENCH_MODE_THROUGHPUT, FAKE_BENCH_MODE_LATENCY
//!                               replace FAKE_BENCH_MODE for that subcommand (even when empty)
//!   FAKE_BENCH_MODE_FOR=s1,s2   apply the modes only when --model contains one of the substrings
//!                               (so one case of a test list fails while the others pass)
//!   FAKE_BENCH_SCALE=F          speed factor: 2 halves every duration (throughput doubles)
//!   FAKE_BENCH_SCALE_FOR=s1,s2  apply the speed factor only when --model contains one of them
//!   FAKE_BENCH_NOISE=F          relative standard deviation of a run-to-run speed factor
//!   FAKE_BENCH_SEED=N|pid       seed for that factor (same seed, same numbers; default 0;
//!                               `pid`: a new draw in every run)
//!
//! Exit status: 0 (or N with exit:N); 2 for command-line errors (click's); 1 for errors a real
//! run would raise (an empty or malformed dataset, a missing YAML or engine), printed as the end
//! of a Python traceback; 64 for a bad FAKE_BENCH_* value; killed by SIGSEGV for crash.

mod bench;
mod cli;
mod console;
mod dataset;
mod engine;
mod faults;
mod fmt;
mod report;
mod sim;

use cli::{Outcome, UsageError};

/// Why a run stops early.
pub enum Fail {
    /// A click usage error: exit status 2.
    Usage(UsageError),
    /// An exception a real run would raise: a traceback's last line, exit status 1.
    Python { kind: &'static str, msg: String },
}

impl Fail {
    pub fn python(kind: &'static str, msg: impl Into<String>) -> Fail {
        Fail::Python {
            kind,
            msg: msg.into(),
        }
    }
}

/// Python's exception for a failed open: `FileNotFoundError: [Errno 2] No such file or
/// directory: 'x'`, `PermissionError: [Errno 13] ...`, else `OSError`.
pub fn os_error(path: &str, e: &std::io::Error) -> Fail {
    match e.kind() {
        std::io::ErrorKind::NotFound => Fail::python(
            "FileNotFoundError",
            format!("[Errno 2] No such file or directory: '{path}'"),
        ),
        std::io::ErrorKind::PermissionDenied => Fail::python(
            "PermissionError",
            format!("[Errno 13] Permission denied: '{path}'"),
        ),
        _ => Fail::python("OSError", format!("{e}: '{path}'")),
    }
}

impl From<UsageError> for Fail {
    fn from(e: UsageError) -> Fail {
        Fail::Usage(e)
    }
}

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = match run(&args) {
        Ok(code) => code,
        Err(Fail::Usage(e)) => {
            console::print_raw(true, e.render().trim_end());
            2
        }
        Err(Fail::Python { kind, msg }) => {
            // The shape of an uncaught exception in the `trtllm-bench` entry point.
            for l in [
                "Traceback (most recent call last):",
                "  File \"/usr/local/bin/trtllm-bench\", line 8, in <module>",
                "    sys.exit(main())",
                "             ^^^^^^",
                &format!("{kind}: {msg}"),
            ] {
                console::print_raw(true, l);
            }
            1
        }
    };
    std::process::exit(code);
}

fn run(args: &[String]) -> Result<i32, Fail> {
    let (outcome, at) = cli::parse("trtllm-bench", cli::GLOBAL, args, true)?;
    let globals = match outcome {
        Outcome::Help => {
            print!("{}", cli::help("trtllm-bench", cli::GLOBAL));
            return Ok(0);
        }
        Outcome::Values(v) => v,
    };
    // click checks the group's required options before it looks at the subcommand.
    let Some(model) = globals.str("model").map(str::to_string) else {
        return Err(UsageError::new("trtllm-bench", "Missing option '--model' / '-m'.").into());
    };
    let Some(sub) = args.get(at) else {
        return Err(UsageError::new("trtllm-bench", "Missing command.").into());
    };
    let specs = match sub.as_str() {
        "build" => cli::BUILD,
        "throughput" => cli::THROUGHPUT,
        "latency" => cli::LATENCY,
        "prepare-dataset" => {
            return Err(UsageError::new(
                "trtllm-bench",
                "prepare-dataset is not part of this test double (use `perfgate dataset`).",
            )
            .into());
        }
        other => {
            return Err(
                UsageError::new("trtllm-bench", format!("No such command '{other}'.")).into(),
            );
        }
    };
    let command = format!("trtllm-bench {sub}");
    let (outcome, _) = cli::parse(&command, specs, &args[at + 1..], false)?;
    let opts = match outcome {
        Outcome::Help => {
            print!("{}", cli::help(&command, specs));
            return Ok(0);
        }
        Outcome::Values(v) => v,
    };
    let knobs = match faults::from_env(sub, &model) {
        Ok(k) => k,
        Err(e) => {
            console::print_raw(true, &format!("fake-trtllm-bench: {e}"));
            return Ok(64);
        }
    };
    if knobs.modes.spawn_child {
        spawn_child();
    }
    if knobs.modes.spawn_setsid {
        spawn_setsid();
    }
    if knobs.modes.silent_hang {
        console::sleep_forever();
    }
    let code = if sub == "build" {
        engine::build(&globals, &opts, &knobs)?
    } else {
        bench::run(sub, &globals, &opts, &knobs)?
    };
    match knobs.modes.exit {
        Some(n) if n != 0 => {
            console::print_raw(
                true,
                &format!(
                    "[TensorRT-LLM][ERROR] simulated failure: exiting with status {n} (FAKE_BENCH_MODE exit:{n})"
                ),
            );
            Ok(n)
        }
        _ => Ok(code),
    }
}

/// Starts `sleep 1000` in a session of its own (out of reach of a group kill) that keeps this
/// process's stdout open: a reader of our output waits for it unless it is killed.
fn spawn_setsid() {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("1000").stdin(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(child) => console::print_raw(
            false,
            &format!(
                "{} [TRT-LLM] [I] Started daemon process (pid {})",
                console::timestamp(),
                child.id()
            ),
        ),
        Err(e) => console::print_raw(
            true,
            &format!("fake-trtllm-bench: cannot start the daemon `sleep 1000`: {e}"),
        ),
    }
}

/// Starts `sleep 1000` as a grandchild that stays in this process group (as MPI workers do)
/// and outlives this process unless the group is killed. Its output goes nowhere, so a reader
/// of our pipes still sees end-of-file when we exit.
fn spawn_child() {
    match std::process::Command::new("sleep")
        .arg("1000")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(child) => console::print_raw(
            false,
            &format!(
                "{} [TRT-LLM] [I] Started worker process (pid {})",
                console::timestamp(),
                child.id()
            ),
        ),
        Err(e) => console::print_raw(
            true,
            &format!("fake-trtllm-bench: cannot start the worker `sleep 1000`: {e}"),
        ),
    }
}
