//! `perfgate merge`: the output directories of one run's shards merged into one.

use std::path::PathBuf;

/// `perfgate merge --out DIR SHARD_DIR...`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The merged output directory (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Merge the run into this history instead of `<out>/history.sqlite` (e.g. the nightly
    /// history the gate reads).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Exit 0 even when shards are missing or tests did not finish (they are still reported).
    #[arg(long)]
    pub allow_partial: bool,
    /// The shards' output directories.
    #[arg(required = true)]
    pub shard_dirs: Vec<PathBuf>,
}

pub fn run(a: MergeArgs) -> anyhow::Result<std::process::ExitCode> {
    let mut shards = a
        .shard_dirs
        .iter()
        .map(|d| crate::shard::merge::ShardDir::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    crate::shard::merge::check(&mut shards)?;
    let summary = crate::shard::merge::merge(&shards, &a.out, a.history.as_deref())?;
    for n in &summary.notes {
        eprintln!("perfgate merge: {n}");
    }
    let c = &summary.completeness;
    print!("{c}");
    println!(
        "merged {} shard(s) of run {} into {} ({} case directories and files linked)",
        shards.len(),
        c.run_id,
        summary.out.display(),
        summary.entries
    );
    if c.is_complete() || a.allow_partial {
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        eprintln!(
            "perfgate merge: incomplete ({} missing shard(s), {} unfinished test(s)); --allow-partial exits 0",
            c.missing_shards.len(),
            c.unfinished.len()
        );
        Ok(std::process::ExitCode::FAILURE)
    }
}
