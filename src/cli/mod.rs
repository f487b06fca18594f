//! The command line's edge: every subcommand's clap arguments and the thin function that turns
//! them into the library's plain options and prints what it returns. clap lives here, in the
//! harness (`src/harness.rs`) and in `src/main.rs`, nowhere else.

pub mod baseline;
pub mod changes;
pub mod dashboard;
pub mod dataset;
pub mod history;
pub mod parse;
pub mod telemetry;
