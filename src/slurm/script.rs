//! The sbatch script of one GPU class: a job array whose task K runs shard K of N.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Everything one array's script depends on.
#[derive(Debug, Clone)]
pub struct ArrayScript {
    pub run_id: String,
    pub partition: String,
    /// The GPUs every test of these shards needs.
    pub gpus: u32,
    pub gpus_per_node: u32,
    /// The shard indices (1-based) this array runs, as its task ids.
    pub shards: Vec<usize>,
    pub shard_count: usize,
    pub time: Option<String>,
    pub account: Option<String>,
    pub perfgate: PathBuf,
    pub test_list: PathBuf,
    pub job_dir: PathBuf,
    /// Options passed on to `perfgate run`.
    pub run_args: Vec<String>,
}

/// `1,2,3,5` → `1-3,5`.
pub fn array_spec(indices: &[usize]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Quotes a word for the POSIX shell.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn path_word(p: &Path) -> String {
    shell_quote(&p.display().to_string())
}

/// Nodes a task of `gpus` GPUs spans: one, unless it needs more GPUs than a node has.
pub fn nodes_for(gpus: u32, gpus_per_node: u32) -> u32 {
    gpus.div_ceil(gpus_per_node.max(1)).max(1)
}

/// Where task `shard` of array `job` writes its output (`--output` with %A and %a filled in).
pub fn log_path(job_dir: &Path, job: &str, shard: usize) -> PathBuf {
    job_dir
        .join("logs")
        .join(format!("slurm-{job}_{shard}.out"))
}

pub fn shard_dir(job_dir: &Path, shard: usize) -> PathBuf {
    job_dir.join("shards").join(shard.to_string())
}

impl ArrayScript {
    pub fn render(&self) -> String {
        let mut s = String::from("#!/bin/bash\n");
        let mut opt = |line: String| {
            let _ = writeln!(s, "#SBATCH {line}");
        };
        opt(format!(
            "--job-name={}",
            shell_quote(&format!("perfgate-{}-gpu{}", self.run_id, self.gpus))
        ));
        opt(format!("--partition={}", shell_quote(&self.partition)));
        opt(format!("--array={}", array_spec(&self.shards)));
        let nodes = nodes_for(self.gpus, self.gpus_per_node);
        // One task per node; a case of more GPUs than a node has takes whole nodes, else it
        // takes exactly its GPUs so that smaller shards share a node without overlapping.
        let per_node = if nodes > 1 {
            self.gpus_per_node
        } else {
            self.gpus
        };
        opt(format!("--nodes={nodes}"));
        opt("--ntasks-per-node=1".to_string());
        if per_node > 0 {
            opt(format!("--gres=gpu:{per_node}"));
        }
        if let Some(t) = &self.time {
            opt(format!("--time={}", shell_quote(t)));
        }
        if let Some(a) = &self.account {
            opt(format!("--account={}", shell_quote(a)));
        }
        opt(format!(
            "--output={}",
            path_word(&self.job_dir.join("logs").join("slurm-%A_%a.out"))
        ));
        let _ = writeln!(s, "set -u");
        let _ = writeln!(
            s,
            "echo \"perfgate: shard $SLURM_ARRAY_TASK_ID/{} of run {} on $(hostname), GPUs ${{CUDA_VISIBLE_DEVICES:-none}}\"",
            self.shard_count, self.run_id
        );
        let mut cmd = vec![
            "exec".to_string(),
            path_word(&self.perfgate),
            "run".into(),
            "--test-list".into(),
            path_word(&self.test_list),
            "--shard".into(),
            format!("\"$SLURM_ARRAY_TASK_ID/{}\"", self.shard_count),
            "--run-id".into(),
            shell_quote(&self.run_id),
            "--output-dir".into(),
            format!(
                "{}/\"$SLURM_ARRAY_TASK_ID\"",
                path_word(&self.job_dir.join("shards"))
            ),
        ];
        cmd.extend(self.run_args.iter().map(|a| shell_quote(a)));
        let _ = writeln!(s, "{}", cmd.join(" "));
        s
    }
}
