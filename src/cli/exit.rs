//! perfgate's exit statuses: one table for every command and for the harness
//! (`cargo test -- --test-list`), so a CI script can tell a regression from a broken benchmark,
//! a mistake in the job, an interrupt and a perfgate failure.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | everything passed |
//! | 1 | a gate failed: a gated verdict (FAIL, INVALID, or what `--fail-on` adds) in `run`, `gate`; a check found problems in `lint`, `plan`, `baseline check`, `merge` (incomplete), `serve-bench` (failed requests) |
//! | 2 | usage: bad flags or unreadable input (a list, a config, a history), no test list |
//! | 3 | a test could not measure: an invalid name, a benchmark or server that failed or timed out |
//! | 4 | perfgate could not do its own work (write results or the history), or a bug |
//! | 128+N | interrupted by signal N (130: Ctrl-C, 143: SIGTERM); every finished case is recorded |
//!
//! When tests failed in several ways, the highest of 4, 3 and 1 is the status.

use std::process::ExitCode;

use crate::session::FailureCounts;

pub const OK: u8 = 0;
pub const GATE_FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const TEST_FAILED: u8 = 3;
pub const INTERNAL: u8 = 4;

/// A command's error as a status: 2 for the user's mistake, 4 when its own outputs could not
/// be written, else 3 (a server or benchmark that could not be measured).
pub fn of_error(usage: bool, cannot_write: bool) -> ExitCode {
    ExitCode::from(if usage {
        USAGE
    } else if cannot_write {
        INTERNAL
    } else {
        TEST_FAILED
    })
}

/// 128 + the signal, when the run was interrupted.
pub fn interrupted() -> Option<u8> {
    crate::runner::signals::interrupted().map(|s| (128 + s).clamp(0, 255) as u8)
}

/// The status of a run from how its tests failed; `other_failed` counts failures the session
/// did not classify (a panic caught by the test framework).
pub fn of_run(counts: FailureCounts, other_failed: u64) -> u8 {
    if let Some(code) = interrupted() {
        code
    } else if counts.internal > 0 || other_failed > 0 {
        INTERNAL
    } else if counts.test > 0 {
        TEST_FAILED
    } else if counts.gate > 0 {
        GATE_FAILED
    } else {
        OK
    }
}

pub fn code(status: u8) -> ExitCode {
    ExitCode::from(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(gate: usize, test: usize, internal: usize) -> FailureCounts {
        FailureCounts {
            gate,
            test,
            internal,
        }
    }

    #[test]
    fn a_run_that_failed_in_several_ways_gets_the_highest_status() {
        assert_eq!(of_run(counts(0, 0, 0), 0), OK);
        assert_eq!(of_run(counts(2, 0, 0), 0), GATE_FAILED);
        assert_eq!(of_run(counts(2, 1, 0), 0), TEST_FAILED);
        assert_eq!(of_run(counts(2, 1, 1), 0), INTERNAL);
        assert_eq!(of_run(counts(0, 1, 0), 0), TEST_FAILED);
        // A failure the session did not classify (a panic caught by the framework) is ours.
        assert_eq!(of_run(counts(1, 1, 0), 1), INTERNAL);
    }

    #[test]
    fn a_commands_error_is_usage_before_write_before_measurement() {
        assert_eq!(of_error(true, true), ExitCode::from(USAGE));
        assert_eq!(of_error(false, true), ExitCode::from(INTERNAL));
        assert_eq!(of_error(false, false), ExitCode::from(TEST_FAILED));
    }
}
