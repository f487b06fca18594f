//! The pytest-style harness behind `cargo test -- --test-list FILE`: the libtest-mimic glue
//! around a run [`session`](crate::session). Each collected test becomes a trial named like
//! upstream's test id; the session runs (or, with `--dry-run`, plans) it. `tests/perf.rs` is a
//! one-line shell over [`main`], and `perfgate run` calls [`run`].

use std::sync::Arc;

use clap::Parser;
use libtest_mimic::{Completion, Failed, Trial};

use super::args::HarnessArgs;
use crate::backend::Registry;
use crate::runner;
use crate::session::{self, TestPass};

/// The harness entry point (`tests/perf.rs`).
pub fn main() -> ! {
    match run(HarnessArgs::parse()) {
        Ok(outcome) => exit(&outcome),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(i32::from(super::exit::USAGE));
        }
    }
}

/// What a run of the harness ended with: libtest's counts and perfgate's exit status.
pub struct Outcome {
    pub conclusion: libtest_mimic::Conclusion,
    /// See [`super::exit`].
    pub status: u8,
}

/// Exits with the run's status (see [`super::exit`]): 128 + the signal when it was
/// interrupted, so a CI script can tell a Ctrl-C from a failed test.
pub fn exit(outcome: &Outcome) -> ! {
    if let Some(signal) = runner::signals::interrupted() {
        eprintln!(
            "perfgate: interrupted by {}; every finished case is recorded",
            runner::process::signal_name(signal)
        );
    }
    std::process::exit(i32::from(outcome.status))
}

/// The most tests run at once: benchmarks share the machine's GPUs, and a thread per test of
/// a huge count would only make the machine unresponsive.
pub const MAX_TEST_THREADS: usize = 256;

/// Runs the harness on parsed arguments with perfgate's own backends.
pub fn run(args: HarnessArgs) -> anyhow::Result<Outcome> {
    run_with(args, Registry::builtin())
}

/// Runs the harness with the backends of `registry` (a test registers one of its own).
pub fn run_with(mut args: HarnessArgs, registry: Registry) -> anyhow::Result<Outcome> {
    match args.libtest.test_threads {
        Some(0) => anyhow::bail!("--test-threads 0: at least 1 test must run at a time"),
        Some(n) if n > MAX_TEST_THREADS => anyhow::bail!(
            "--test-threads {n}: at most {MAX_TEST_THREADS} (benchmarks share the machine's GPUs; the default is 1)"
        ),
        // Benchmarks on one GPU must not overlap.
        None => args.libtest.test_threads = Some(1),
        Some(_) => {}
    }
    if args.common.test_list.is_empty() {
        let help = "give one with `cargo test -- --test-list test_lists/perf_test.txt [--dry-run]`\n  or set PERF_TEST_LIST=test_lists/perf_test.txt (for cargo nextest)";
        if !args.allow_empty {
            anyhow::bail!(
                "no test list given, so no perf test would run (a CI job that runs nothing must not pass).\n  {help}\n  or pass --allow-empty (PERF_ALLOW_EMPTY=1) when an empty run is intended"
            );
        }
        eprintln!("perfgate: no test list given (--allow-empty), so no perf test runs.\n  {help}");
        let conclusion = libtest_mimic::run(&args.libtest, Vec::new());
        return Ok(Outcome {
            conclusion,
            status: super::exit::OK,
        });
    }
    let (session, tests) = session::start(args.to_run(), registry)?;
    // The session already chose the SKIP-marked tests for --ignored; libtest would drop them
    // all, since it only learns that a test is ignored once it has run.
    args.libtest.ignored = false;
    let session = Arc::new(session);
    let trials = tests
        .into_iter()
        .map(|t| {
            let session = session.clone();
            Trial::ignorable_test(t.test_id.clone(), move || match session.run_test(&t) {
                Ok(TestPass::Completed) => Ok(Completion::Completed),
                Ok(TestPass::Ignored(reason)) => Ok(Completion::ignored_with(reason)),
                Err(e) => Err(Failed::from(e.message)),
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args.libtest, trials);
    let counts = match Arc::try_unwrap(session) {
        Ok(session) => session.finish(),
        Err(_) => {
            eprintln!("perfgate: a test still holds the run; its summary is not written");
            Default::default()
        }
    };
    let classified = (counts.gate + counts.test + counts.internal) as u64;
    let status = super::exit::of_run(counts, conclusion.num_failed.saturating_sub(classified));
    Ok(Outcome { conclusion, status })
}
