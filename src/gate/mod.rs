//! The gate: turns metrics, baselines and history into verdicts. Knows nothing of processes.
//!
//! - [`stats`]: the noise-aware verdict (PASS / FAIL / UNKNOWN) over repetitions and history,
//!   and upstream's fixed-threshold check for `--gate upstream`.
//! - [`sim`]: simulated nightly histories to measure detection and false-alarm rates
//!   (`perfgate bench-gate`), on synthetic noise or on real series ([`real_noise`]: read,
//!   described and resampled); [`rng`] is their seeded random numbers.
//! - [`validity`]: the checks before any statistics (counts, invariants, physics) that make a
//!   measurement INVALID.
//! - [`env`]: the environment fingerprint; a different one makes a comparison ENV_CHANGED.
//! - [`evaluate`]: one case's verdicts, validity → environment → statistics, as
//!   [`crate::record::VerdictRecord`]s.
//! - [`baseline`]: stored baselines (`baselines/<prefix>.csv`, a superset of upstream's
//!   `base_perf.csv`) and `perfgate baseline update|check`.
//! - [`cpd`]: change-point detection over a nightly series (E-divisive means with t-tests, as
//!   Apache Otava does it); [`cpd_sim`] measures it (`perfgate bench-cpd`).
//! - [`changes`]: a provisional regression confirmed, cleared or pending, with its blame range.
//! - [`compare`]: two runs side by side: medians, Δ%, better/worse, Welch t on logs.

pub mod baseline;
pub mod changes;
pub mod cpd;
pub mod cpd_sim;
pub mod env;
pub mod evaluate;
pub mod real_noise;
pub mod rng;
pub mod significance;
pub mod sim;
pub mod stats;
pub mod validity;
