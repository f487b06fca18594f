//! `perfgate slurm submit`: a sharded run as SLURM job arrays, one per GPU class, followed to
//! the end, merged, and requeued where it did not complete.
//!
//! The partition is `perfgate shards`' (a pure function of the list, the options and the
//! history), so each array task computes its own shard from `--shard K/N` and this process only
//! needs it to group shards by GPU count, check them against the cluster, and say which tests
//! each task runs. SLURM's tools (sbatch, squeue, sacct, scontrol, scancel) run through
//! [`crate::runner::process::capture`].

pub mod query;
pub mod script;
mod submit;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use submit::submit;

/// What `perfgate slurm submit` was asked (the command line's flags, as plain data).
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// The test list (required unless --requeue-failed).
    pub test_list: Option<PathBuf>,
    /// The SLURM partition (required unless --requeue-failed).
    pub partition: Option<String>,
    /// GPUs of one node of the partition (required unless --requeue-failed).
    pub gpus_per_node: Option<u32>,
    /// Nodes one task may span: only a case of more GPUs than a node has spans nodes.
    pub nodes: u32,
    /// Time limit of each task (sbatch --time: minutes, MM:SS, HH:MM:SS, D-HH).
    pub time: Option<String>,
    /// sbatch --account.
    pub account: Option<String>,
    /// The number of shards (default: one per GPU class of the list).
    pub shards: Option<usize>,
    /// Where the scripts, slurm.json, logs/, shards/<K>/ and merged/ go (default
    /// slurm-jobs/<run id>).
    pub job_dir: Option<PathBuf>,
    /// Print the sbatch script(s); submit nothing.
    pub dry_run: bool,
    /// Resubmit the shards of this job dir that did not complete, into it, and merge again.
    pub requeue_failed: Option<PathBuf>,
    /// An option passed on to every `perfgate run` (repeatable), e.g.
    /// `--run-arg=--bench-cmd=/opt/trtllm/bin/trtllm-bench`.
    pub run_args: Vec<String>,
    /// The perfgate the tasks run (default: this one; it must be reachable from the nodes).
    pub perfgate: Option<PathBuf>,
    /// How often to ask SLURM for the tasks' states, in milliseconds.
    pub poll_ms: u64,
    /// Extra sbatch arguments (after `--`).
    pub sbatch_args: Vec<String>,
    /// Parses a `perfgate run` argv the way `perfgate run` does (the command line's edge
    /// knows the flags): a bad `--run-arg` is refused here, not in N tasks.
    pub parse_run: fn(&[String]) -> anyhow::Result<RunView>,
}

/// What submission needs of the options every task's `perfgate run` gets.
#[derive(Debug, Clone)]
pub struct RunView {
    pub collect: crate::collect::CollectOptions,
    pub regexp: Option<String>,
    /// The history the tasks write (for test durations), unless they keep none.
    pub history: Option<PathBuf>,
    pub sets_shard: bool,
    pub sets_run_id: bool,
}

/// Why a submission was refused (before anything was submitted) or failed.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error(
        "`{0}` is not on PATH: run on a SLURM login node (or install the SLURM client tools); --dry-run prints the scripts without it"
    )]
    NoTool(&'static str),
    #[error("{0} is required (unless --requeue-failed JOBDIR)")]
    Missing(&'static str),
    #[error("partition `{partition}` does not exist ({reason}); partitions here: {available}")]
    NoPartition {
        partition: String,
        reason: String,
        available: String,
    },
    #[error(
        "{test_id} needs {gpus} GPUs, more than --gpus-per-node {per_node} × --nodes {nodes} = {}; nothing was submitted",
        per_node * nodes
    )]
    TooManyGpus {
        test_id: String,
        gpus: u32,
        per_node: u32,
        nodes: u32,
    },
    #[error("--shards {given}: {reason}")]
    BadShards { given: String, reason: String },
    #[error("--gpus-per-node must be at least 1")]
    NoGpus,
    #[error("{dir}: written by run `{found}`, but {job} is run `{expected}`; nothing was requeued")]
    OtherRun {
        dir: PathBuf,
        job: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: {what}")]
    JobFile { path: PathBuf, what: String },
    #[error("`{command}` failed: {message}")]
    Tool { command: String, message: String },
}

/// `<job-dir>/slurm.json`: what was submitted, for following, merging and requeueing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFile {
    pub perfgate: String,
    pub run_id: String,
    /// RFC 3339.
    pub created: String,
    pub test_list: PathBuf,
    pub shard_count: usize,
    pub partition: String,
    pub gpus_per_node: u32,
    pub nodes: u32,
    pub time: Option<String>,
    pub account: Option<String>,
    /// The perfgate binary the tasks run.
    pub perfgate_bin: PathBuf,
    pub run_args: Vec<String>,
    pub sbatch_args: Vec<String>,
    /// Every array submitted, requeues included, in order.
    pub arrays: Vec<ArrayRecord>,
    /// Per shard: its tests and its latest task.
    pub shards: Vec<ShardEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrayRecord {
    pub job_id: String,
    pub gpus: u32,
    pub shards: Vec<usize>,
    pub script: PathBuf,
    /// 0 for the first submission, then 1, 2, ... for requeues.
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    pub index: usize,
    pub gpus: u32,
    pub tests: Vec<String>,
    pub dir: PathBuf,
    /// The array job of its latest task; `None` in a dry run.
    pub job_id: Option<String>,
    pub log: Option<PathBuf>,
    pub attempt: u32,
    /// The task's final SLURM state and exit code, once followed to the end.
    pub state: Option<String>,
    pub exit_code: Option<String>,
}

pub const JOB_FILE: &str = "slurm.json";
pub const STATE_FILE: &str = crate::shard::merge::SLURM_STATE_FILE;
