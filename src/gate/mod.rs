//! The gate: turns metrics, baselines and history into verdicts. Knows nothing of processes.
//!
//! - [`stats`]: the noise-aware verdict (PASS / FAIL / UNKNOWN) over repetitions and history,
//!   and upstream's fixed-threshold check for `--gate upstream`.
//! - [`sim`]: simulated nightly histories to measure detection and false-alarm rates
//!   (`perfgate bench-gate`).
//! - [`baseline`]: stored baselines (`baselines/<prefix>.csv`, a superset of upstream's
//!   `base_perf.csv`) and `perfgate baseline update|check`.
//! - [`physics`]: compute and memory ceilings per case (roofline), MBU/MFU, and the check that
//!   no result beats physics.

pub mod baseline;
pub mod physics;
pub mod record;
pub mod sim;
pub mod stats;
