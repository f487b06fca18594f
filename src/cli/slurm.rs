//! `perfgate slurm submit`: a sharded run as SLURM job arrays, followed and merged.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use super::args::HarnessArgs;
use crate::slurm::{RunView, SubmitOptions};

/// `perfgate slurm ...`
#[derive(Debug, clap::Subcommand)]
pub enum SlurmCommand {
    /// Submit a sharded run as job arrays (one per GPU class), follow it, merge the shards.
    ///
    /// Nothing is submitted when a check fails (sbatch on PATH, the partition, GPUs per node,
    /// --shards, the --run-arg options). Exit status 0 when every shard completed and merged;
    /// 1 otherwise (requeue with --requeue-failed DIR); 130 on Ctrl-C, after scancel of exactly
    /// the jobs it submitted.
    Submit(SubmitArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// The test list (required unless --requeue-failed).
    #[arg(long = "test-list", short = 'F')]
    pub test_list: Option<PathBuf>,
    /// The SLURM partition (required unless --requeue-failed).
    #[arg(long, short = 'p')]
    pub partition: Option<String>,
    /// GPUs of one node of the partition (required unless --requeue-failed).
    #[arg(long)]
    pub gpus_per_node: Option<u32>,
    /// Nodes one task may span: only a case of more GPUs than a node has spans nodes.
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    /// Time limit of each task (sbatch --time: minutes, MM:SS, HH:MM:SS, D-HH).
    #[arg(long)]
    pub time: Option<String>,
    /// sbatch --account.
    #[arg(long)]
    pub account: Option<String>,
    /// The number of shards (default: one per GPU class of the list).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Where the scripts, slurm.json, logs/, shards/<K>/ and merged/ go (default
    /// slurm-jobs/<run id>).
    #[arg(long)]
    pub job_dir: Option<PathBuf>,
    /// Print the sbatch script(s); submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Resubmit the shards of this job dir that did not complete, into it, and merge again.
    #[arg(long, value_name = "JOBDIR", conflicts_with_all = ["test_list", "shards", "job_dir"])]
    pub requeue_failed: Option<PathBuf>,
    /// An option passed on to every `perfgate run` (repeatable), e.g.
    /// `--run-arg=--bench-cmd=/opt/trtllm/bin/trtllm-bench`.
    #[arg(long = "run-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub run_args: Vec<String>,
    /// The perfgate the tasks run (default: this one; it must be reachable from the nodes).
    #[arg(long)]
    pub perfgate: Option<PathBuf>,
    /// How often to ask SLURM for the tasks' states, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Extra sbatch arguments (after `--`).
    #[arg(last = true)]
    pub sbatch_args: Vec<String>,
}

/// `perfgate slurm ...`.
pub fn run(command: SlurmCommand) -> anyhow::Result<ExitCode> {
    match command {
        SlurmCommand::Submit(a) => crate::slurm::submit(SubmitOptions {
            test_list: a.test_list,
            partition: a.partition,
            gpus_per_node: a.gpus_per_node,
            nodes: a.nodes,
            time: a.time,
            account: a.account,
            shards: a.shards,
            job_dir: a.job_dir,
            dry_run: a.dry_run,
            requeue_failed: a.requeue_failed,
            run_args: a.run_args,
            perfgate: a.perfgate,
            poll_ms: a.poll_ms,
            sbatch_args: a.sbatch_args,
            parse_run,
        }),
    }
}

/// A `perfgate run` argv as every task will parse it.
fn parse_run(argv: &[String]) -> anyhow::Result<RunView> {
    let h = HarnessArgs::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(RunView {
        collect: h.common.to_collect(),
        regexp: h.regexp.clone(),
        history: (!h.gate.no_history)
            .then_some(h.gate.history.clone())
            .flatten(),
        sets_shard: h.shard.is_some(),
        sets_run_id: h.run_id.is_some(),
    })
}
