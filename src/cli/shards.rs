//! `perfgate shards`: the partition a `--shard K/N` run uses.

use std::path::PathBuf;

use crate::shard::CostUnit;

/// `perfgate shards`: print the partition a `--shard K/N` run uses.
#[derive(Debug, clap::Args)]
pub struct ShardsArgs {
    /// The number of shards: at least one per GPU count the list needs (every shard is
    /// GPU-pure).
    #[arg(long)]
    pub count: usize,
    /// The history whose test durations balance the shards (the one the runs get with
    /// `--history`); without it, tests are balanced by size.
    #[arg(long, env = "PERF_HISTORY")]
    pub history: Option<PathBuf>,
    /// Only tests whose id matches this regular expression (as `--regexp` of a run).
    #[arg(long = "regexp", short = 'R', env = "PERF_REGEXP")]
    pub regexp: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ShardsFormat,
    #[command(flatten)]
    pub common: super::args::CommonArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShardsFormat {
    /// A line per shard (index, GPUs, cases, expected cost), then its test ids.
    Table,
    /// `{count, unit, partition_sha256, shards: [{index, gpus, cases, expected_cost,
    /// test_ids}]}`.
    Json,
}

pub fn run(a: ShardsArgs) -> anyhow::Result<std::process::ExitCode> {
    use std::io::Write;
    if a.common.test_list.is_empty() {
        anyhow::bail!("no test list given: pass --test-list FILE (or set PERF_TEST_LIST)");
    }
    let report = crate::shard::plan(
        &a.common.to_collect(),
        a.regexp.as_deref(),
        a.history.as_deref(),
        a.count,
    )?;
    let mut out = std::io::stdout().lock();
    match a.format {
        ShardsFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        ShardsFormat::Table => {
            let unit = match report.unit {
                CostUnit::Seconds => "s",
                CostUnit::Tokens => "tokens",
            };
            writeln!(out, "shard  gpus  cases  expected cost")?;
            for s in &report.shards {
                writeln!(
                    out,
                    "{:>5}  {:>4}  {:>5}  {:.1} {unit}",
                    format!("{}/{}", s.index, report.count),
                    s.gpus,
                    s.cases,
                    s.expected_cost
                )?;
                for id in &s.test_ids {
                    writeln!(out, "         {id}")?;
                }
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
