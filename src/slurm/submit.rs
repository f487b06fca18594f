//! Submitting, following, cancelling and requeueing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use super::query::{self, Phase, TaskId, TaskState};
use super::script::{self, ArrayScript};
use super::{ArrayRecord, JOB_FILE, JobFile, STATE_FILE, ShardEntry, SlurmError, SubmitOptions};
use crate::runner::{self, process};

/// How long one SLURM client call may take.
const TOOL_LIMIT: Duration = Duration::from_secs(60);

fn now_rfc3339() -> String {
    chrono::DateTime::<chrono::Utc>::from(SystemTime::now()).to_rfc3339()
}

/// Runs a SLURM client; a non-zero exit is an error carrying its stderr.
fn tool(argv: &[String]) -> anyhow::Result<String> {
    let out = tool_raw(argv)?;
    if !out.success() {
        return Err(SlurmError::Tool {
            command: argv.join(" "),
            message: first_line(&out.stderr, &out.stdout),
        }
        .into());
    }
    Ok(out.stdout)
}

fn tool_raw(argv: &[String]) -> anyhow::Result<process::Captured> {
    process::capture(argv, TOOL_LIMIT).map_err(|e| {
        SlurmError::Tool {
            command: argv.join(" "),
            message: e.to_string(),
        }
        .into()
    })
}

fn first_line(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_string()
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

fn require_tool(name: &'static str) -> Result<(), SlurmError> {
    process::find_on_path(name)
        .map(|_| ())
        .ok_or(SlurmError::NoTool(name))
}

fn check_partition(partition: &str) -> anyhow::Result<()> {
    let out = tool_raw(&argv(&["scontrol", "-o", "show", "partition", partition]))?;
    if out.success() && out.stdout.contains(&format!("PartitionName={partition}")) {
        return Ok(());
    }
    let available = tool(&argv(&["sinfo", "-h", "-o", "%R"]))
        .map(|s| {
            let mut names: Vec<&str> = s.split_whitespace().collect();
            names.sort_unstable();
            names.dedup();
            names.join(", ")
        })
        .unwrap_or_else(|e| format!("unknown ({e})"));
    Err(SlurmError::NoPartition {
        partition: partition.to_string(),
        reason: first_line(&out.stderr, &out.stdout),
        available,
    }
    .into())
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("{}: cannot make absolute", p.display()))
}

/// Entry point of `perfgate slurm submit`.
pub fn submit(args: SubmitOptions) -> anyhow::Result<ExitCode> {
    // From the start: a Ctrl-C between sbatch and following must still cancel what was
    // submitted (following checks for it first thing).
    runner::signals::install();
    match args.requeue_failed.clone() {
        Some(dir) => requeue(args, &dir),
        None => first_submit(args),
    }
}

fn first_submit(args: SubmitOptions) -> anyhow::Result<ExitCode> {
    let list = args
        .test_list
        .as_deref()
        .ok_or(SlurmError::Missing("--test-list"))?;
    let partition = args
        .partition
        .clone()
        .ok_or(SlurmError::Missing("--partition"))?;
    let per_node = args
        .gpus_per_node
        .ok_or(SlurmError::Missing("--gpus-per-node"))?;
    if per_node == 0 {
        return Err(SlurmError::NoGpus.into());
    }
    if args.nodes == 0 {
        anyhow::bail!("--nodes must be at least 1");
    }
    let list = absolute(list)?;
    // The tasks' own view of the options: `perfgate run` parses them, so this does too (a bad
    // option is refused here, not in N tasks).
    let mut run_argv = vec![
        "perfgate run".to_string(),
        "--test-list".into(),
        list.display().to_string(),
    ];
    run_argv.extend(args.run_args.iter().cloned());
    let harness = (args.parse_run)(&run_argv)
        .map_err(|e| anyhow::anyhow!("--run-arg: {}", e.to_string().trim_end()))?;
    for (flag, taken) in [
        ("--shard", harness.sets_shard),
        ("--run-id", harness.sets_run_id),
    ] {
        if taken {
            anyhow::bail!("--run-arg {flag}: set by `perfgate slurm submit` for every task");
        }
    }
    if args
        .run_args
        .iter()
        .any(|a| a == "--output-dir" || a.starts_with("--output-dir=") || a == "-O")
    {
        anyhow::bail!(
            "--run-arg --output-dir: every task writes <job-dir>/shards/<K>; give --job-dir"
        );
    }
    let history = harness.history.as_deref();
    // One shard per GPU class unless told otherwise: the fewest that keep classes apart.
    let count = match args.shards {
        Some(0) => {
            return Err(SlurmError::BadShards {
                given: "0".into(),
                reason: "at least 1".into(),
            }
            .into());
        }
        Some(n) => n,
        None => {
            let one = crate::shard::plan(&harness.collect, harness.regexp.as_deref(), history, 1);
            match one {
                Err(e) => match e.downcast_ref::<crate::shard::ShardError>() {
                    Some(crate::shard::ShardError::TooFewShards { classes, .. }) => classes.len(),
                    _ => return Err(e),
                },
                Ok(_) => 1,
            }
        }
    };
    let plan = crate::shard::plan(&harness.collect, harness.regexp.as_deref(), history, count)
        .map_err(|e| match e.downcast::<crate::shard::ShardError>() {
            Ok(se) => SlurmError::BadShards {
                given: count.to_string(),
                reason: se.to_string(),
            }
            .into(),
            Err(e) => e,
        })?;
    for s in &plan.shards {
        if s.gpus > per_node * args.nodes {
            return Err(SlurmError::TooManyGpus {
                test_id: s.test_ids.first().cloned().unwrap_or_default(),
                gpus: s.gpus,
                per_node,
                nodes: args.nodes,
            }
            .into());
        }
    }
    let empty: Vec<usize> = plan
        .shards
        .iter()
        .filter(|s| s.test_ids.is_empty())
        .map(|s| s.index)
        .collect();
    if !empty.is_empty() {
        return Err(SlurmError::BadShards {
            given: count.to_string(),
            reason: format!(
                "more shards than tests: shard(s) {} would be empty",
                script::array_spec(&empty)
            ),
        }
        .into());
    }
    let have_sbatch = require_tool("sbatch");
    if !args.dry_run {
        have_sbatch?;
        check_partition(&partition)?;
    } else if have_sbatch.is_ok() {
        check_partition(&partition)?;
    } else {
        eprintln!("perfgate slurm: sbatch is not on PATH; the partition was not checked");
    }

    let run_id = format!(
        "{}-{}",
        chrono::DateTime::<chrono::Utc>::from(SystemTime::now()).format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let job_dir = absolute(
        &args
            .job_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("slurm-jobs").join(&run_id)),
    )?;
    let perfgate_bin = match &args.perfgate {
        Some(p) => absolute(p)?,
        None => std::env::current_exe().context("cannot find this perfgate's path")?,
    };
    let mut job = JobFile {
        perfgate: env!("CARGO_PKG_VERSION").to_string(),
        run_id,
        created: now_rfc3339(),
        test_list: list,
        shard_count: count,
        partition,
        gpus_per_node: per_node,
        nodes: args.nodes,
        time: args.time.clone(),
        account: args.account.clone(),
        perfgate_bin,
        run_args: args.run_args.clone(),
        sbatch_args: args.sbatch_args.clone(),
        arrays: Vec::new(),
        shards: plan
            .shards
            .iter()
            .map(|s| ShardEntry {
                index: s.index,
                gpus: s.gpus,
                tests: s.test_ids.clone(),
                dir: script::shard_dir(&job_dir, s.index),
                job_id: None,
                log: None,
                attempt: 0,
                state: None,
                exit_code: None,
            })
            .collect(),
    };
    if !args.dry_run && job_dir.join(JOB_FILE).exists() {
        anyhow::bail!(
            "{}: a job dir already (use another --job-dir, or --requeue-failed {})",
            job_dir.join(JOB_FILE).display(),
            job_dir.display()
        );
    }
    let indices: Vec<usize> = job.shards.iter().map(|s| s.index).collect();
    let arrays = submit_arrays(&mut job, &job_dir, &indices, 0, args.dry_run)?;
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    finish(job, &job_dir, arrays, args.poll_ms)
}

/// Writes and (unless `dry_run`) submits one array per GPU class of `indices`; returns the
/// job ids submitted.
fn submit_arrays(
    job: &mut JobFile,
    job_dir: &Path,
    indices: &[usize],
    attempt: u32,
    dry_run: bool,
) -> anyhow::Result<Vec<String>> {
    let mut classes: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for s in job.shards.iter().filter(|s| indices.contains(&s.index)) {
        classes.entry(s.gpus).or_default().push(s.index);
    }
    if !dry_run {
        for sub in ["logs", "shards"] {
            std::fs::create_dir_all(job_dir.join(sub))
                .with_context(|| format!("{}: cannot create", job_dir.join(sub).display()))?;
        }
    }
    let mut submitted = Vec::new();
    for (gpus, shards) in classes {
        let text = ArrayScript {
            run_id: job.run_id.clone(),
            partition: job.partition.clone(),
            gpus,
            gpus_per_node: job.gpus_per_node,
            shards: shards.clone(),
            shard_count: job.shard_count,
            time: job.time.clone(),
            account: job.account.clone(),
            perfgate: job.perfgate_bin.clone(),
            test_list: job.test_list.clone(),
            job_dir: job_dir.to_path_buf(),
            run_args: job.run_args.clone(),
        }
        .render();
        let script_path = job_dir.join(if attempt == 0 {
            format!("sbatch-gpu{gpus}.sh")
        } else {
            format!("sbatch-gpu{gpus}-requeue{attempt}.sh")
        });
        if dry_run {
            println!(
                "# {} (shards {})",
                script_path.display(),
                script::array_spec(&shards)
            );
            println!("{text}");
            continue;
        }
        crate::fsutil::write(&script_path, text.as_bytes())?;
        let mut cmd = argv(&["sbatch", "--parsable"]);
        cmd.extend(job.sbatch_args.iter().cloned());
        cmd.push(script_path.display().to_string());
        let out = match tool(&cmd) {
            Ok(out) => out,
            Err(e) => {
                // What was submitted before this class failed must not run unwatched.
                cancel(&submitted);
                return Err(e);
            }
        };
        let id = query::parse_sbatch(&out).ok_or_else(|| SlurmError::Tool {
            command: cmd.join(" "),
            message: format!("expected a job id, got `{}`", out.trim()),
        })?;
        println!(
            "perfgate slurm: submitted job {id}: {} shard(s) of {gpus} GPU(s), tasks {}",
            shards.len(),
            script::array_spec(&shards)
        );
        for s in job.shards.iter_mut().filter(|s| shards.contains(&s.index)) {
            s.job_id = Some(id.clone());
            s.log = Some(script::log_path(job_dir, &id, s.index));
            s.attempt = attempt;
            s.state = None;
            s.exit_code = None;
        }
        job.arrays.push(ArrayRecord {
            job_id: id.clone(),
            gpus,
            shards,
            script: script_path,
            attempt,
        });
        submitted.push(id);
        write_job(job, job_dir)?;
    }
    Ok(submitted)
}

fn write_job(job: &JobFile, job_dir: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(job)?;
    crate::fsutil::write(&job_dir.join(JOB_FILE), (json + "\n").as_bytes())?;
    Ok(())
}

fn read_job(job_dir: &Path) -> anyhow::Result<JobFile> {
    let path = job_dir.join(JOB_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| SlurmError::JobFile {
        path: path.clone(),
        what: format!("cannot read ({e}); is this a `perfgate slurm submit` job dir?"),
    })?;
    serde_json::from_str(&text).map_err(|e| {
        SlurmError::JobFile {
            path: path.clone(),
            what: format!("line {}: not a slurm.json: {e}", e.line()),
        }
        .into()
    })
}

fn cancel(jobs: &[String]) {
    if jobs.is_empty() {
        return;
    }
    let mut cmd = argv(&["scancel"]);
    cmd.extend(jobs.iter().cloned());
    if let Err(e) = tool(&cmd) {
        eprintln!("perfgate slurm: {e:#}");
    }
}

/// Follows `jobs` to the end (or Ctrl-C), records each shard's end, merges.
fn finish(
    mut job: JobFile,
    job_dir: &Path,
    jobs: Vec<String>,
    poll_ms: u64,
) -> anyhow::Result<ExitCode> {
    let tasks: Vec<(TaskId, usize)> = job
        .shards
        .iter()
        .filter_map(|s| {
            let j = s.job_id.as_ref()?;
            jobs.contains(j).then(|| {
                (
                    TaskId {
                        job: j.clone(),
                        task: s.index,
                    },
                    s.index,
                )
            })
        })
        .collect();
    let outcome = follow(&job, &tasks, &jobs, Duration::from_millis(poll_ms.max(100)))?;
    for (task, state) in &outcome.states {
        let Some(s) = job.shards.iter_mut().find(|s| s.index == task.task) else {
            continue;
        };
        s.state = Some(state.state.clone());
        s.exit_code = Some(state.exit_code.clone());
        let log = s
            .log
            .clone()
            .unwrap_or_else(|| script::log_path(job_dir, &task.job, task.task));
        let state_file = s.dir.join(STATE_FILE);
        if Phase::of(&state.state) == Phase::Done {
            let _ = std::fs::remove_file(&state_file);
        } else {
            std::fs::create_dir_all(&s.dir)
                .with_context(|| format!("{}: cannot create", s.dir.display()))?;
            let record = crate::shard::merge::SlurmState {
                state: state.state.clone(),
                exit_code: Some(state.exit_code.clone()).filter(|c| !c.is_empty()),
                log: Some(log),
            };
            crate::fsutil::write(
                &state_file,
                (serde_json::to_string_pretty(&record)? + "\n").as_bytes(),
            )?;
        }
    }
    write_job(&job, job_dir)?;
    let failed: Vec<&ShardEntry> = job.shards.iter().filter(|s| !completed(s)).collect();
    if let Some(signal) = outcome.interrupted {
        println!(
            "perfgate slurm: interrupted by {}: cancelled job(s) {}; {} of {} shard(s) did not complete; requeue with `perfgate slurm submit --requeue-failed {}`",
            process::signal_name(signal),
            jobs.join(" "),
            failed.len(),
            job.shards.len(),
            job_dir.display()
        );
        return Ok(ExitCode::from(130));
    }
    let merged = merge(&job, job_dir);
    println!("perfgate slurm: shards of run {}:", job.run_id);
    for s in &job.shards {
        println!(
            "  shard {}/{}  {} GPU(s)  {:>2} test(s)  job {}_{}  {} {}{}",
            s.index,
            job.shard_count,
            s.gpus,
            s.tests.len(),
            s.job_id.as_deref().unwrap_or("-"),
            s.index,
            s.state.as_deref().unwrap_or("?"),
            s.exit_code.as_deref().unwrap_or(""),
            if completed(s) {
                String::new()
            } else {
                format!(
                    "  log {}",
                    s.log
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                )
            }
        );
    }
    let merge_ok = match merged {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("perfgate slurm: merge failed: {e:#}");
            false
        }
    };
    if failed.is_empty() && merge_ok {
        println!(
            "perfgate slurm: all {} shard(s) completed",
            job.shards.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        if !failed.is_empty() {
            println!(
                "perfgate slurm: {} shard(s) did not complete; requeue them with `perfgate slurm submit --requeue-failed {}`",
                failed.len(),
                job_dir.display()
            );
        }
        Ok(ExitCode::FAILURE)
    }
}

struct FollowOutcome {
    states: BTreeMap<TaskId, TaskState>,
    interrupted: Option<i32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Sacct,
    Squeue,
}

fn poll(source: Source, jobs: &[String]) -> anyhow::Result<BTreeMap<TaskId, TaskState>> {
    let ids = jobs.join(",");
    match source {
        Source::Sacct => {
            let out = tool(&argv(&[
                "sacct",
                "-X",
                "-n",
                "-P",
                "-j",
                &ids,
                "-o",
                "JobID,State,ExitCode",
            ]))?;
            Ok(query::parse_sacct(&out)?)
        }
        Source::Squeue => {
            let out = tool(&argv(&[
                "squeue", "-h", "-r", "-t", "all", "-j", &ids, "-o", "%i|%T",
            ]))?;
            Ok(query::parse_squeue(&out)?)
        }
    }
}

/// Exit codes of finished tasks from `scontrol` (squeue has none).
fn exit_codes(jobs: &[String]) -> BTreeMap<TaskId, TaskState> {
    let mut out = BTreeMap::new();
    for j in jobs {
        if let Ok(text) = tool(&argv(&["scontrol", "-o", "show", "job", j])) {
            out.extend(query::parse_scontrol(&text));
        }
    }
    out
}

fn follow(
    job: &JobFile,
    tasks: &[(TaskId, usize)],
    jobs: &[String],
    every: Duration,
) -> anyhow::Result<FollowOutcome> {
    let started = Instant::now();
    let source = match tool_raw(&argv(&[
        "sacct",
        "-X",
        "-n",
        "-P",
        "-j",
        &jobs.join(","),
        "-o",
        "JobID",
    ])) {
        Ok(out) if out.success() => {
            println!(
                "perfgate slurm: following {} task(s) with sacct",
                tasks.len()
            );
            Source::Sacct
        }
        Ok(out) => {
            println!(
                "perfgate slurm: following {} task(s) with squeue + scontrol (sacct: {})",
                tasks.len(),
                first_line(&out.stderr, &out.stdout)
            );
            Source::Squeue
        }
        Err(e) => {
            println!(
                "perfgate slurm: following {} task(s) with squeue + scontrol ({e})",
                tasks.len()
            );
            Source::Squeue
        }
    };
    let gpus_of: BTreeMap<usize, u32> = job.shards.iter().map(|s| (s.index, s.gpus)).collect();
    let mut last: BTreeMap<TaskId, String> = BTreeMap::new();
    // The latest answer per task: a task missing from an answer keeps its last state (squeue
    // forgets finished jobs after MinJobAge), and one failed query is not the end.
    let mut states: BTreeMap<TaskId, TaskState> = BTreeMap::new();
    let mut failures = 0u32;
    let mut interrupted = None;
    let mut cancel_deadline: Option<Instant> = None;
    loop {
        if interrupted.is_none()
            && let Some(sig) = runner::signals::interrupted()
        {
            println!(
                "perfgate slurm: {}: cancelling job(s) {}",
                process::signal_name(sig),
                jobs.join(" ")
            );
            cancel(jobs);
            interrupted = Some(sig);
            cancel_deadline = Some(Instant::now() + Duration::from_secs(30));
        }
        match poll(source, jobs) {
            Ok(answer) => {
                failures = 0;
                states.extend(answer);
            }
            Err(e) => {
                failures += 1;
                eprintln!("perfgate slurm: {e:#} (attempt {failures}; still following)");
                if failures >= 30 {
                    cancel(jobs);
                    return Err(e.context(format!(
                        "SLURM did not answer 30 times in a row; cancelled job(s) {}",
                        jobs.join(" ")
                    )));
                }
            }
        }
        let mut changed = false;
        for (task, _) in tasks {
            let st = states.entry(task.clone()).or_insert_with(|| TaskState {
                // Not in the answer yet: sacct learns of a job a moment after sbatch returns.
                state: "PENDING".into(),
                exit_code: String::new(),
            });
            if last.get(task) != Some(&st.state) {
                changed = true;
                println!(
                    "[{:>6.1} s] shard {}/{} ({} GPU(s), job {task}): {} ({})",
                    started.elapsed().as_secs_f64(),
                    task.task,
                    job.shard_count,
                    gpus_of.get(&task.task).copied().unwrap_or(0),
                    Phase::of(&st.state).word(),
                    st.state
                );
                last.insert(task.clone(), st.state.clone());
            }
        }
        let phases: Vec<Phase> = tasks
            .iter()
            .map(|(t, _)| states.get(t).map_or(Phase::Queued, |s| Phase::of(&s.state)))
            .collect();
        if changed {
            let count = |p: Phase| phases.iter().filter(|&&q| q == p).count();
            println!(
                "           queued {}, running {}, done {}, failed {}",
                count(Phase::Queued),
                count(Phase::Running),
                count(Phase::Done),
                count(Phase::Failed)
            );
        }
        let all_finished = phases.iter().all(|p| p.finished());
        if all_finished || cancel_deadline.is_some_and(|d| Instant::now() >= d) {
            let mut finals: BTreeMap<TaskId, TaskState> = BTreeMap::new();
            let codes = if source == Source::Squeue {
                exit_codes(jobs)
            } else {
                BTreeMap::new()
            };
            for (task, _) in tasks {
                let mut st = states.get(task).cloned().unwrap_or(TaskState {
                    state: "CANCELLED".into(),
                    exit_code: String::new(),
                });
                if let Some(c) = codes.get(task) {
                    st.exit_code = c.exit_code.clone();
                }
                finals.insert(task.clone(), st);
            }
            return Ok(FollowOutcome {
                states: finals,
                interrupted,
            });
        }
        // Sleep in small steps so that Ctrl-C is answered at once.
        let until = Instant::now() + every;
        while Instant::now() < until
            && (interrupted.is_some() || runner::signals::interrupted().is_none())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Merges the shard dirs that have a `shard.json` into `<job-dir>/merged` (an earlier merge
/// is moved aside) and prints its summary; `Ok(true)` when every shard's tests finished.
fn merge(job: &JobFile, job_dir: &Path) -> anyhow::Result<bool> {
    use crate::shard::merge::{self, ShardDir};
    let out = job_dir.join("merged");
    if out.exists() {
        let mut n = 1;
        let aside = loop {
            let p = job_dir.join(format!("merged.{n}"));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        std::fs::rename(&out, &aside)
            .with_context(|| format!("{}: cannot move to {}", out.display(), aside.display()))?;
    }
    let mut shards = Vec::new();
    for s in &job.shards {
        if s.dir.join(crate::shard::RECORD_FILE).exists() {
            shards.push(ShardDir::read(&s.dir)?);
        } else {
            println!(
                "perfgate slurm: shard {}/{} wrote no {} (it never started)",
                s.index,
                job.shard_count,
                crate::shard::RECORD_FILE
            );
        }
    }
    if shards.is_empty() {
        return Ok(false);
    }
    merge::check(&mut shards)?;
    let summary = merge::merge(&shards, &out, None)?;
    for n in &summary.notes {
        println!("perfgate merge: {n}");
    }
    let c = &summary.completeness;
    print!("{c}");
    println!(
        "perfgate slurm: merged {} shard dir(s) of run {} into {}",
        shards.len(),
        c.run_id,
        summary.out.display()
    );
    Ok(c.is_complete())
}

/// A shard completed when SLURM says so, or when it finished every test it was given (a
/// test that failed makes `perfgate run`, and so the task, exit non-zero).
fn completed(s: &ShardEntry) -> bool {
    s.state.as_deref() == Some("COMPLETED")
        || shard_progress(&s.dir).is_ok_and(|p| p.is_some_and(|(_, unfinished)| unfinished == 0))
}

/// What a shard dir says about itself: (run id, unfinished tests), or `None` without a
/// readable shard.json.
fn shard_progress(dir: &Path) -> anyhow::Result<Option<(String, usize)>> {
    let path = dir.join(crate::shard::RECORD_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let record = crate::shard::ShardRecord::read(dir)?;
    Ok(Some((record.run_id.clone(), record.unfinished().len())))
}

fn requeue(args: SubmitOptions, job_dir: &Path) -> anyhow::Result<ExitCode> {
    let job_dir = absolute(job_dir)?;
    let mut job = read_job(&job_dir)?;
    // Everything is checked before anything moves or is submitted.
    let mut todo = Vec::new();
    for s in &job.shards {
        let progress = shard_progress(&s.dir)?;
        if let Some((run, _)) = &progress
            && run != &job.run_id
        {
            return Err(SlurmError::OtherRun {
                dir: s.dir.clone(),
                job: job_dir.join(JOB_FILE),
                found: run.clone(),
                expected: job.run_id.clone(),
            }
            .into());
        }
        if progress.is_none_or(|(_, unfinished)| unfinished != 0) {
            todo.push(s.index);
        }
    }
    if args.time.is_some() {
        job.time = args.time.clone();
    }
    job.sbatch_args.extend(args.sbatch_args.iter().cloned());
    if todo.is_empty() {
        println!(
            "perfgate slurm: every shard of {} completed; merging again",
            job_dir.display()
        );
        let ok = merge(&job, &job_dir)?;
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if !args.dry_run {
        require_tool("sbatch")?;
        check_partition(&job.partition)?;
    }
    let attempt = job.arrays.iter().map(|a| a.attempt).max().unwrap_or(0) + 1;
    if !args.dry_run {
        // The unfinished attempt is kept beside the new one (its finished tests, its log).
        for s in job.shards.iter().filter(|s| todo.contains(&s.index)) {
            if s.dir.exists() {
                let aside = s
                    .dir
                    .with_file_name(format!("{}.attempt{}", s.index, s.attempt));
                std::fs::rename(&s.dir, &aside).with_context(|| {
                    format!("{}: cannot move to {}", s.dir.display(), aside.display())
                })?;
            }
        }
    }
    println!(
        "perfgate slurm: requeueing shard(s) {} of run {} (attempt {attempt})",
        script::array_spec(&todo),
        job.run_id
    );
    let jobs = submit_arrays(&mut job, &job_dir, &todo, attempt, args.dry_run)?;
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    finish(job, &job_dir, jobs, args.poll_ms)
}
