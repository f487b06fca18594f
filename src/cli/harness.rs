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
        Ok(conclusion) => exit(conclusion),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Exits with libtest's code, or 128 + the signal when the run was interrupted (the shell's
/// convention, so a CI script can tell a Ctrl-C from a failed test).
pub fn exit(conclusion: libtest_mimic::Conclusion) -> ! {
    if let Some(signal) = runner::signals::interrupted() {
        eprintln!(
            "perfgate: interrupted by {}; every finished case is recorded",
            runner::process::signal_name(signal)
        );
        std::process::exit(128 + signal);
    }
    conclusion.exit()
}

/// Runs the harness on parsed arguments with perfgate's own backends.
pub fn run(args: HarnessArgs) -> anyhow::Result<libtest_mimic::Conclusion> {
    run_with(args, Registry::builtin())
}

/// Runs the harness with the backends of `registry` (a test registers one of its own).
pub fn run_with(
    mut args: HarnessArgs,
    registry: Registry,
) -> anyhow::Result<libtest_mimic::Conclusion> {
    // Benchmarks on one GPU must not overlap.
    args.libtest.test_threads.get_or_insert(1);
    if args.common.test_list.is_empty() {
        eprintln!(
            "perfgate: no test list given, so no perf test runs.\n  give one with `cargo test -- --test-list test_lists/perf_test.txt [--dry-run]`\n  or set PERF_TEST_LIST=test_lists/perf_test.txt (for cargo nextest)"
        );
        return Ok(libtest_mimic::run(&args.libtest, Vec::new()));
    }
    let (session, tests) = session::start(args.to_run(), registry)?;
    let session = Arc::new(session);
    let trials = tests
        .into_iter()
        .map(|t| {
            let session = session.clone();
            Trial::ignorable_test(t.test_id.clone(), move || match session.run_test(&t) {
                Ok(TestPass::Completed) => Ok(Completion::Completed),
                Ok(TestPass::Ignored(reason)) => Ok(Completion::ignored_with(reason)),
                Err(e) => Err(Failed::from(e)),
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args.libtest, trials);
    match Arc::try_unwrap(session) {
        Ok(session) => session.finish(),
        Err(_) => eprintln!("perfgate: a test still holds the run; its summary is not written"),
    }
    Ok(conclusion)
}
