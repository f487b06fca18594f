//! `perfgate slurm submit` against a real SLURM cluster brought up on this machine by
//! ci/slurm-local-up.sh (2 fake GPUs). One test, so that nothing else competes for the cluster:
//! refusals before submitting, a sharded run with a TIMEOUT, the requeue that completes it (the
//! merge equal to an unsharded run), Ctrl-C cancelling the jobs (without accounting, so
//! progress comes from squeue + scontrol), and a disaggregated test's worker started on another
//! node with the real srun.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PERFGATE: &str = env!("CARGO_BIN_EXE_perfgate");
const BENCH: &str = env!("CARGO_BIN_EXE_fake-trtllm-bench");

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Brings the cluster up on creation; tears it down (cancelling every job) on drop, so that a
/// failed assertion leaves no daemon or job behind.
struct Cluster {
    state: PathBuf,
}

impl Cluster {
    fn up(state: &Path, accounting: bool) -> Cluster {
        let cluster = Cluster {
            state: state.to_path_buf(),
        };
        // The test starts a cluster but installs nothing (`.ci/run` installs the packages).
        let out = Command::new(repo("ci/slurm-local-up.sh"))
            .arg("--no-install")
            .env("SLURM_LOCAL_DIR", state)
            .env("SLURM_LOCAL_ACCT", if accounting { "1" } else { "0" })
            .env("SLURM_LOCAL_GPUS", "2")
            .env("SLURM_LOCAL_FRESH", "1")
            .output()
            .expect("ci/slurm-local-up.sh starts");
        assert!(
            out.status.success(),
            "SLURM could not be started here (ci/slurm-local-up.sh: {}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo("ci/slurm-local-down.sh"))
            .arg("--purge")
            .env("SLURM_LOCAL_DIR", &self.state)
            .output();
    }
}

/// The options every `perfgate run` of this test gets (as e2e.rs runs the harness).
fn run_options(tmp: &Path) -> Vec<String> {
    vec![
        "--no-telemetry".into(),
        format!("--bench-cmd={BENCH}"),
        format!(
            "--tokenizer={}",
            repo("tests/fixtures/tokenizers/deepseek").display()
        ),
        "--models-root=/nonexistent-models".into(),
        format!("--dataset-cache={}", tmp.join("cache").display()),
        format!("--baselines={}", tmp.join("baselines").display()),
    ]
}

fn perfgate(args: &[String], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(PERFGATE);
    for (k, _) in std::env::vars() {
        if k.starts_with("FAKE_BENCH_") || k.starts_with("PERF_") || k.starts_with("PERFGATE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("perfgate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn submit_args(list: &Path, job_dir: &Path, tmp: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "slurm".into(),
        "submit".into(),
        "--test-list".into(),
        list.display().to_string(),
        "--partition".into(),
        "debug".into(),
        "--gpus-per-node".into(),
        "2".into(),
        "--job-dir".into(),
        job_dir.display().to_string(),
        "--poll-ms".into(),
        "200".into(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(
        run_options(tmp)
            .into_iter()
            .map(|o| format!("--run-arg={o}")),
    );
    a
}

fn squeue_active() -> String {
    let out = Command::new("squeue")
        .args([
            "-h",
            "-t",
            "pending,running,completing,configuring",
            "-o",
            "%i %T",
        ])
        .output()
        .expect("squeue runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (test id, step, case, metric) → value, from a results.jsonl.
fn metrics(path: &Path) -> BTreeMap<(String, String, String, String), f64> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("jsonl line"))
        .map(|r| {
            let s = |k: &str| {
                r[k].as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| r[k].to_string())
            };
            (
                (s("test_id"), s("step"), s("case"), s("metric")),
                r["value"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

fn test_ids(m: &BTreeMap<(String, String, String, String), f64>) -> Vec<String> {
    let mut ids: Vec<String> = m.keys().map(|k| k.0.clone()).collect();
    ids.dedup();
    ids
}

#[test]
fn slurm_submit_shards_follows_times_out_requeues_merges_and_cancels() {
    let tmp_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("slurm-selftest");
    let _ = std::fs::remove_dir_all(&tmp_root);
    std::fs::create_dir_all(&tmp_root).expect("tmp");
    let tmp = tmp_root.as_path();
    let list = repo("tests/fixtures/lists/slurm_small.txt");
    let cluster = Cluster::up(&tmp.join("cluster"), true);

    // Refusals, before anything is submitted: an 8-GPU case on 2-GPU nodes, a partition that
    // does not exist, more shards than tests.
    let (rc, text) = perfgate(
        &submit_args(
            &repo("test_lists/perf_test.txt"),
            &tmp.join("refused"),
            tmp,
            &["--shards", "4"],
        ),
        &[],
    );
    assert_ne!(rc, 0, "{text}");
    assert!(
        text.contains(
            "needs 8 GPUs, more than --gpus-per-node 2 × --nodes 1 = 2; nothing was submitted"
        ),
        "{text}"
    );
    let mut bad_partition = submit_args(&list, &tmp.join("refused"), tmp, &["--shards", "3"]);
    bad_partition[5] = "nosuchpartition".into();
    let (rc, text) = perfgate(&bad_partition, &[]);
    assert_ne!(rc, 0, "{text}");
    assert!(
        text.contains("partition `nosuchpartition` does not exist"),
        "{text}"
    );
    assert!(text.contains("partitions here: debug"), "{text}");
    let (rc, text) = perfgate(
        &submit_args(&list, &tmp.join("refused"), tmp, &["--shards", "40"]),
        &[],
    );
    assert_ne!(rc, 0, "{text}");
    assert!(text.contains("--shards 40"), "{text}");
    assert_eq!(
        squeue_active(),
        "",
        "a refused submission submitted something"
    );
    assert!(!tmp.join("refused").join("slurm.json").exists());

    // The reference: the same list unsharded, straight through the harness.
    let mut reference = vec![
        "run".to_string(),
        "--test-list".into(),
        list.display().to_string(),
        "--output-dir".into(),
        tmp.join("unsharded").display().to_string(),
    ];
    reference.extend(run_options(tmp));
    let (rc, text) = perfgate(&reference, &[]);
    assert_eq!(rc, 0, "{text}");
    let want = metrics(&tmp.join("unsharded/results.jsonl"));
    assert!(!want.is_empty());

    // Sharded, with the 8B instruct model's benchmark hanging under a 1-minute limit: its
    // shard ends TIMEOUT, the others complete.
    let job = tmp.join("job");
    let started = Instant::now();
    let (rc, text) = perfgate(
        &submit_args(&list, &job, tmp, &["--shards", "3", "--time", "1"]),
        &[
            ("FAKE_BENCH_MODE", "hang"),
            ("FAKE_BENCH_MODE_FOR", "8b_instruct"),
        ],
    );
    let timeout_run = started.elapsed();
    assert_ne!(rc, 0, "a shard timed out, so the submit fails:\n{text}");
    assert!(text.contains("following 3 task(s) with sacct"), "{text}");
    let slurm = json(&job.join("slurm.json"));
    let shards = slurm["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 3);
    let arrays = slurm["arrays"].as_array().expect("arrays");
    // One array per GPU class: 1-GPU and 2-GPU shards.
    let mut classes: Vec<u64> = arrays.iter().filter_map(|a| a["gpus"].as_u64()).collect();
    classes.sort_unstable();
    assert_eq!(classes, [1, 2], "{slurm:#}");
    let hung: Vec<&serde_json::Value> = shards
        .iter()
        .filter(|s| {
            s["tests"].as_array().is_some_and(|t| {
                t.iter()
                    .any(|id| id.as_str().is_some_and(|i| i.contains("8b_instruct")))
            })
        })
        .collect();
    assert_eq!(hung.len(), 1, "{slurm:#}");
    let hung_index = hung[0]["index"].as_u64().expect("index");
    for s in shards {
        let want_state = if s["index"].as_u64() == Some(hung_index) {
            "TIMEOUT"
        } else {
            "COMPLETED"
        };
        assert_eq!(s["state"], want_state, "{slurm:#}\n{text}");
    }
    let hung_dir = PathBuf::from(hung[0]["dir"].as_str().expect("dir"));
    let state = json(&hung_dir.join("slurm_state.json"));
    assert_eq!(state["state"], "TIMEOUT");
    let log = PathBuf::from(state["log"].as_str().expect("log path"));
    let log_text = std::fs::read_to_string(&log).expect("the job's log exists");
    assert!(log_text.contains("DUE TO TIME LIMIT"), "{log_text}");
    // The merge marks the unfinished case with the state and log; the other shards' results
    // are all there.
    let report = json(&job.join("merged/merge_report.json"));
    let unfinished = report["completeness"]["unfinished"]
        .as_array()
        .expect("unfinished");
    assert!(
        unfinished.iter().any(|u| u["test_id"]
            .as_str()
            .is_some_and(|t| t.contains("8b_instruct"))
            && u["state"] == "TIMEOUT"
            && u["log"] == log.display().to_string()),
        "{report:#}"
    );
    let partial = metrics(&job.join("merged/results.jsonl"));
    for s in shards
        .iter()
        .filter(|s| s["index"].as_u64() != Some(hung_index))
    {
        for id in s["tests"].as_array().expect("tests") {
            let id = id.as_str().expect("id");
            assert!(
                partial.keys().any(|k| k.0 == id),
                "{id} lost from the merge"
            );
        }
    }
    assert!(text.contains("did not finish"), "{text}");

    // Requeue without the hang: only the timed-out shard runs again; the merge is complete
    // and equals the unsharded run.
    let (rc, text) = perfgate(
        &[
            "slurm".into(),
            "submit".into(),
            "--requeue-failed".into(),
            job.display().to_string(),
            "--poll-ms".into(),
            "200".into(),
        ],
        &[],
    );
    assert_eq!(rc, 0, "{text}");
    assert!(
        text.contains(&format!("requeueing shard(s) {hung_index} ")),
        "{text}"
    );
    assert!(text.contains("every assigned test finished"), "{text}");
    assert!(
        hung_dir
            .with_file_name(format!("{hung_index}.attempt0"))
            .join("shard.json")
            .exists()
    );
    let got = metrics(&job.join("merged/results.jsonl"));
    assert_eq!(test_ids(&got), test_ids(&want));
    assert_eq!(got.len(), want.len());
    for (k, v) in &want {
        let g = got
            .get(k)
            .unwrap_or_else(|| panic!("{k:?} missing from the merge"));
        assert!(
            (g - v).abs() <= 1e-9 * v.abs().max(1.0) || (g.is_nan() && v.is_nan()),
            "{k:?}: merged {g}, unsharded {v}"
        );
    }
    crate::junit_xsd::validate(&job.join("merged/results.xml")).expect("merged JUnit is valid");
    // A requeue whose shard dirs are another run's is refused before anything is submitted.
    let other = tmp.join("other-run");
    std::fs::create_dir_all(&other).expect("dir");
    let mut forged = json(&job.join("slurm.json"));
    forged["run_id"] = "another-run".into();
    std::fs::write(other.join("slurm.json"), forged.to_string()).expect("write");
    let (rc, text) = perfgate(
        &[
            "slurm".into(),
            "submit".into(),
            "--requeue-failed".into(),
            other.display().to_string(),
        ],
        &[],
    );
    assert_ne!(rc, 0, "{text}");
    assert!(
        text.contains("but ") && text.contains("is run `another-run`; nothing was requeued"),
        "{text}"
    );
    assert_eq!(squeue_active(), "");
    drop(cluster);

    // Ctrl-C, without accounting: progress from squeue + scontrol; the jobs are cancelled.
    let _cluster = Cluster::up(&tmp.join("cluster-noacct"), false);
    let cancel_job = tmp.join("cancel");
    let out_path = tmp.join("cancel.out");
    let out_file = std::fs::File::create(&out_path).expect("out");
    let mut cmd = Command::new(PERFGATE);
    for (k, _) in std::env::vars() {
        if k.starts_with("FAKE_BENCH_") || k.starts_with("PERF_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(submit_args(&list, &cancel_job, tmp, &["--shards", "3"]))
        .env("FAKE_BENCH_MODE", "hang")
        .stdout(out_file.try_clone().expect("clone"))
        .stderr(out_file)
        .stdin(Stdio::null())
        .spawn()
        .expect("perfgate starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        if text.contains("running (RUNNING)") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no task started running:\n{text}"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "perfgate ended early:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = crate::e2e::signal_and_wait(&mut child, libc::SIGINT, Duration::from_secs(60));
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("with squeue + scontrol"), "{text}");
    assert!(text.contains("SIGINT: cancelling job(s)"), "{text}");
    let slurm = json(&cancel_job.join("slurm.json"));
    for s in slurm["shards"].as_array().expect("shards") {
        assert_eq!(s["state"], "CANCELLED", "{slurm:#}\n{text}");
    }
    assert_eq!(squeue_active(), "", "jobs left after the cancel");

    // A disaggregated test larger than a node, its generation worker started on "the other
    // node" by the real srun (a step of its own on this one-node cluster): it gets ready,
    // serves the case, and is gone with it, its step included.
    let node = Command::new("sinfo")
        .args(["-h", "-N", "-o", "%N"])
        .output()
        .expect("sinfo");
    let node = String::from_utf8_lossy(&node.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(!node.is_empty(), "sinfo names no node");
    let disagg = tmp.join("disagg");
    std::fs::create_dir_all(&disagg).expect("mkdir");
    let list = disagg.join("list.txt");
    std::fs::write(
        &list,
        "perf/test_perf_sanity.py::test_e2e[disagg-e2e-tiny_disagg_two_nodes]\n",
    )
    .expect("list");
    let serve = env!("CARGO_BIN_EXE_fake-trtllm-serve");
    let mut args: Vec<String> = vec![
        "run".into(),
        "--test-list".into(),
        list.display().to_string(),
        "--output-dir".into(),
        disagg.join("out").display().to_string(),
        format!("--trtllm-serve-cmd={serve}"),
        format!(
            "--serve-bench-cmd={}",
            env!("CARGO_BIN_EXE_fake-serve-client")
        ),
        format!(
            "--perf-sanity-dir={}",
            repo("tests/fixtures/perf_sanity/local").display()
        ),
        "--serve-host=127.0.0.1".into(),
        format!("--serve-nodes={node},{node}"),
        "--srun-cmd=srun".into(),
    ];
    args.extend(run_options(&disagg));
    let (code, text) = perfgate(&args, &[]);
    assert_eq!(code, 0, "{text}");
    let log = std::fs::read_to_string(disagg.join("out/disagg-e2e-tiny_disagg_two_nodes/perf.log"))
        .expect("perf.log");
    assert!(
        log.contains(&format!(
            "srun --nodes=1 --ntasks=1 --nodelist={node} --overlap"
        )) && log.contains(&format!("gen_0 service ready at {node}:"))
            && log.contains("gen_0 service stopped"),
        "{log}"
    );
    assert_eq!(
        squeue_active(),
        "",
        "the worker's srun step outlived its case"
    );
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(serve) && c.contains(&disagg.display().to_string()))
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
    eprintln!(
        "slurm selftest: the TIMEOUT run took {:.1} s",
        timeout_run.as_secs_f64()
    );
}

// Pure parts (no cluster): what SLURM prints, read; the script, written.

use perfgate::slurm::query::{self, Phase, TaskId};
use perfgate::slurm::script::{ArrayScript, array_spec, nodes_for, shell_quote};

fn tid(job: &str, task: usize) -> TaskId {
    TaskId {
        job: job.into(),
        task,
    }
}

#[test]
fn sacct_lines_expand_pending_ranges_and_drop_the_cancelled_by_tail() {
    let text =
        "12_1|COMPLETED|0:0\n12_[2-3,5%2]|PENDING|0:0\n13_4|CANCELLED by 0|0:15\n14|RUNNING|0:0\n";
    let m = query::parse_sacct(text).expect("parses");
    let keys: Vec<TaskId> = m.keys().cloned().collect();
    assert_eq!(
        keys,
        [
            tid("12", 1),
            tid("12", 2),
            tid("12", 3),
            tid("12", 5),
            tid("13", 4)
        ]
    );
    assert_eq!(m[&tid("13", 4)].state, "CANCELLED");
    assert_eq!(m[&tid("13", 4)].exit_code, "0:15");
    assert_eq!(m[&tid("12", 3)].state, "PENDING");
    let err = query::parse_sacct("12_1|COMPLETED\n").expect_err("two fields");
    assert_eq!(err.line, 1);
    assert!(err.to_string().contains("JobID|State|ExitCode"), "{err}");
}

#[test]
fn squeue_and_scontrol_answers_give_states_and_exit_codes() {
    let m = query::parse_squeue("7_1|TIMEOUT\n7_2|RUNNING\n8_3|PENDING\n").expect("parses");
    assert_eq!(m[&tid("7", 1)].state, "TIMEOUT");
    assert_eq!(Phase::of(&m[&tid("7", 2)].state), Phase::Running);
    assert!(query::parse_squeue("garbage").is_err());
    let sc = "JobId=9 ArrayJobId=7 ArrayTaskId=1 JobName=x JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15\n\
              JobId=7 ArrayJobId=7 ArrayTaskId=2-3 JobState=PENDING ExitCode=0:0\n";
    let m = query::parse_scontrol(sc);
    assert_eq!(m[&tid("7", 1)].exit_code, "0:15");
    assert_eq!(m[&tid("7", 3)].state, "PENDING");
    assert_eq!(query::parse_sbatch("42;cluster\n").as_deref(), Some("42"));
    assert_eq!(query::parse_sbatch("Submitted batch job 42"), None);
    for (state, phase) in [
        ("COMPLETED", Phase::Done),
        ("TIMEOUT", Phase::Failed),
        ("OUT_OF_MEMORY", Phase::Failed),
        ("NODE_FAIL", Phase::Failed),
        ("COMPLETING", Phase::Running),
        ("PENDING", Phase::Queued),
    ] {
        assert_eq!(Phase::of(state), phase, "{state}");
    }
}

#[test]
fn an_array_script_asks_for_its_class_gpus_and_runs_its_shard() {
    assert_eq!(array_spec(&[5, 1, 2, 3, 7, 8]), "1-3,5,7-8");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote("/a/b-c"), "/a/b-c");
    assert_eq!(
        (nodes_for(2, 8), nodes_for(16, 8), nodes_for(9, 8)),
        (1, 2, 2)
    );
    let mut s = ArrayScript {
        run_id: "r1".into(),
        partition: "gpu".into(),
        gpus: 2,
        gpus_per_node: 8,
        shards: vec![3, 4],
        shard_count: 5,
        time: Some("30".into()),
        account: None,
        perfgate: "/opt/perfgate".into(),
        test_list: "/l/list.txt".into(),
        job_dir: "/jobs/j 1".into(),
        run_args: vec!["--bench-arg=--x y".into()],
    };
    let text = s.render();
    let lines: Vec<&str> = text.lines().collect();
    for want in [
        "#SBATCH --array=3-4",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --nodes=1",
        "#SBATCH --time=30",
        "#SBATCH --output='/jobs/j 1/logs/slurm-%A_%a.out'",
    ] {
        assert!(lines.contains(&want), "{want} missing:\n{text}");
    }
    assert!(!text.contains("--account"), "{text}");
    let exec = lines.last().expect("exec line");
    assert!(
        exec.contains(r#"--shard "$SLURM_ARRAY_TASK_ID/5""#),
        "{exec}"
    );
    assert!(
        exec.contains(r#"--output-dir '/jobs/j 1/shards'/"$SLURM_ARRAY_TASK_ID""#),
        "{exec}"
    );
    assert!(exec.ends_with("'--bench-arg=--x y'"), "{exec}");
    // A case of more GPUs than a node has takes whole nodes.
    s.gpus = 16;
    let text = s.render();
    assert!(
        text.contains("#SBATCH --nodes=2\n") && text.contains("#SBATCH --gres=gpu:8\n"),
        "{text}"
    );
}
