//! Reading SLURM's answers: `sacct -X -n -P -o JobID,State,ExitCode`, `squeue -h -r -t all -o
//! %i|%T` and `scontrol -o show job`. Pure text in, typed task states out.

use std::collections::BTreeMap;
use std::fmt;

/// One array task: the array's job id and the task index (the shard index).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    pub job: String,
    pub task: usize,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.job, self.task)
    }
}

/// What SLURM says about one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    /// SLURM's state word (`PENDING`, `RUNNING`, `COMPLETED`, `TIMEOUT`, ...), without
    /// sacct's `CANCELLED by 0` tail.
    pub state: String,
    /// `exit:signal` as SLURM prints it (`0:0`, `3:0`, `0:15`); empty when not known.
    pub exit_code: String,
}

/// Where a task stands, for progress and the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Queued,
    Running,
    Done,
    /// Ended without completing (TIMEOUT, FAILED, CANCELLED, NODE_FAIL, OUT_OF_MEMORY, ...).
    Failed,
}

impl Phase {
    pub fn of(state: &str) -> Phase {
        match state {
            "COMPLETED" => Phase::Done,
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "CONFIGURING"
            | "RESV_DEL_HOLD" | "SPECIAL_EXIT" => Phase::Queued,
            "RUNNING" | "COMPLETING" | "SUSPENDED" | "STOPPED" | "RESIZING" | "SIGNALING"
            | "STAGE_OUT" | "UPDATE_DB" | "POWER_UP_NODE" => Phase::Running,
            // BOOT_FAIL, CANCELLED, DEADLINE, FAILED, NODE_FAIL, OUT_OF_MEMORY, PREEMPTED,
            // REVOKED, TIMEOUT and anything newer: ended, not completed.
            _ => Phase::Failed,
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed)
    }

    pub fn word(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Running => "running",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }
}

/// A line SLURM printed that is not what was asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{tool}: line {line}: expected {expected}, got `{text}`")]
pub struct ParseError {
    pub tool: &'static str,
    pub line: usize,
    pub expected: &'static str,
    pub text: String,
}

/// Expands a task field: `7` → [7]; `[1,3-5]` → [1,3,4,5]; `[2-9%2]` (a throttle) → 2..=9.
fn expand_tasks(field: &str) -> Option<Vec<usize>> {
    let inner = match field.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']')?,
        None => field,
    };
    let inner = inner.split('%').next()?;
    let mut out = Vec::new();
    for part in inner.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?);
                if b < a {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// `5_3` or `5_[1-2,4]` → the job and its tasks; `None` for a job that is not an array task.
fn split_array_id(id: &str) -> Option<(String, Vec<usize>)> {
    let (job, tasks) = id.split_once('_')?;
    if job.is_empty() || !job.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((job.to_string(), expand_tasks(tasks)?))
}

fn state_word(state: &str) -> String {
    state.split_whitespace().next().unwrap_or("").to_string()
}

/// `sacct -X -n -P -o JobID,State,ExitCode`: one `JobID|State|ExitCode` line per task (pending
/// tasks of an array may share one line, `5_[2-3]`). Lines of jobs that are not array tasks are
/// skipped.
pub fn parse_sacct(text: &str) -> Result<BTreeMap<TaskId, TaskState>, ParseError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = || ParseError {
            tool: "sacct",
            line: i + 1,
            expected: "JobID|State|ExitCode",
            text: line.to_string(),
        };
        let fields: Vec<&str> = line.split('|').collect();
        let [id, state, exit] = fields[..] else {
            return Err(bad());
        };
        let Some((job, tasks)) = split_array_id(id) else {
            continue;
        };
        for task in tasks {
            out.insert(
                TaskId {
                    job: job.clone(),
                    task,
                },
                TaskState {
                    state: state_word(state),
                    exit_code: exit.to_string(),
                },
            );
        }
    }
    Ok(out)
}

/// `squeue -h -r -t all -o %i|%T`: one `JobID_Task|STATE` line per task (no exit codes).
pub fn parse_squeue(text: &str) -> Result<BTreeMap<TaskId, TaskState>, ParseError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((id, state)) = line.split_once('|') else {
            return Err(ParseError {
                tool: "squeue",
                line: i + 1,
                expected: "JobID_Task|STATE",
                text: line.to_string(),
            });
        };
        let Some((job, tasks)) = split_array_id(id) else {
            continue;
        };
        for task in tasks {
            out.insert(
                TaskId {
                    job: job.clone(),
                    task,
                },
                TaskState {
                    state: state_word(state),
                    exit_code: String::new(),
                },
            );
        }
    }
    Ok(out)
}

/// `scontrol -o show job ID`: one line of `Key=Value` pairs per task record. Returns each
/// array task's state and exit code.
pub fn parse_scontrol(text: &str) -> BTreeMap<TaskId, TaskState> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut fields = BTreeMap::new();
        for pair in line.split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                fields.insert(k, v);
            }
        }
        let (Some(job), Some(tasks), Some(state)) = (
            fields.get("ArrayJobId"),
            fields.get("ArrayTaskId").and_then(|t| expand_tasks(t)),
            fields.get("JobState"),
        ) else {
            continue;
        };
        for task in tasks {
            out.insert(
                TaskId {
                    job: job.to_string(),
                    task,
                },
                TaskState {
                    state: state.to_string(),
                    exit_code: fields.get("ExitCode").unwrap_or(&"").to_string(),
                },
            );
        }
    }
    out
}

/// `sbatch --parsable`: `JOBID` or `JOBID;CLUSTER`.
pub fn parse_sbatch(text: &str) -> Option<String> {
    let id = text.trim().split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}
