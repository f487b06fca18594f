//! History in and out: the source revision of every run (flags and CI variables),
//! `perfgate history import` (perfgate's output directories, upstream's CSV and YAML) and
//! `perfgate history export` (CSV, JSON lines, OpenSearch bulk).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use perfgate::provenance::{Ci, Provenance, detect};

use super::e2e::run;

const LIST: &str = "\
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4
llama_v3.2_1b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:3
";

fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn provenance_comes_from_each_ci_system() {
    let github = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
        ("GITHUB_HEAD_REF", ""),
        ("GITHUB_REF_NAME", "main"),
        ("GITHUB_SERVER_URL", "https://github.com/"),
        ("GITHUB_REPOSITORY", "org/repo"),
        ("GITHUB_RUN_ID", "42"),
    ];
    let (ci, p) = detect(env_of(&github));
    assert_eq!(ci, Some(Ci::GithubActions));
    assert_eq!(
        p,
        Provenance {
            revision: some("0123456789abcdef0123456789abcdef01234567"),
            branch: some("main"),
            build_url: some("https://github.com/org/repo/actions/runs/42"),
        }
    );
    // A pull request: the head branch, not the merge ref.
    let mut pr = github.to_vec();
    pr[2] = ("GITHUB_HEAD_REF", "feature/x");
    pr[3] = ("GITHUB_REF_NAME", "17/merge");
    assert_eq!(detect(env_of(&pr)).1.branch, some("feature/x"));

    let gitlab = [
        ("GITLAB_CI", "true"),
        ("CI_COMMIT_SHA", "feedface"),
        ("CI_COMMIT_REF_NAME", "main"),
        ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "fix-kv"),
        ("CI_JOB_URL", "https://gitlab.example/g/p/-/jobs/9"),
    ];
    let (ci, p) = detect(env_of(&gitlab));
    assert_eq!(ci, Some(Ci::Gitlab));
    assert_eq!(
        (p.revision, p.branch, p.build_url),
        (
            some("feedface"),
            some("fix-kv"),
            some("https://gitlab.example/g/p/-/jobs/9")
        )
    );
    assert_eq!(detect(env_of(&gitlab[..3])).1.branch, some("main"));

    let jenkins = [
        ("JENKINS_URL", "https://ci.example/"),
        ("GIT_COMMIT", "abc123"),
        ("GIT_BRANCH", "origin/release/1.2"),
        ("BUILD_URL", "https://ci.example/job/perf/7/"),
    ];
    let (ci, p) = detect(env_of(&jenkins));
    assert_eq!(ci, Some(Ci::Jenkins));
    assert_eq!(
        (p.revision, p.branch, p.build_url),
        (
            some("abc123"),
            some("release/1.2"),
            some("https://ci.example/job/perf/7/")
        )
    );
    // A multibranch pipeline names the branch itself.
    let mut multi = jenkins.to_vec();
    multi.push(("BRANCH_NAME", "PR-5"));
    assert_eq!(detect(env_of(&multi)).1.branch, some("PR-5"));

    assert_eq!(
        detect(env_of(&[("HOME", "/root")])),
        (None, Provenance::default())
    );
}

#[test]
fn explicit_provenance_wins_field_by_field() {
    let jenkins = [
        ("GIT_COMMIT", "abc123"),
        ("GIT_BRANCH", "origin/main"),
        ("BUILD_URL", "https://ci.example/job/perf/7/"),
    ];
    let explicit = Provenance::explicit(some("v1.2.0-rc3"), Some("  ".into()), None);
    let p = explicit.clone().completed_with(env_of(&jenkins));
    assert_eq!(p.revision, some("v1.2.0-rc3"), "the flag wins");
    assert_eq!(p.branch, some("main"), "an empty flag is no flag");
    assert_eq!(p.build_url, some("https://ci.example/job/perf/7/"));
    // Imports read no CI variables: the importing job did not run the benchmarks.
    assert_eq!(
        explicit,
        Provenance {
            revision: some("v1.2.0-rc3"),
            ..Provenance::default()
        }
    );
}

/// `perfgate ARGS` (no PERF_* from the test's environment): exit code, stdout, stderr.
fn perfgate(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PERF_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.args(args).output().expect("perfgate runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Two runs of [`LIST`] into one output directory (one results.jsonl, one gate.jsonl, one
/// history), the first with GitHub Actions' variables, the second with `--revision`.
fn two_runs(dir: &Path) -> std::path::PathBuf {
    let github = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_SHA", "1111111111111111111111111111111111111111"),
        ("GITHUB_REF_NAME", "main"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "org/repo"),
        ("GITHUB_RUN_ID", "1"),
        ("FAKE_BENCH_SEED", "1"),
    ];
    let (counts, text) = run(dir, LIST, &["--repeat", "2"], &github);
    assert_eq!(counts, (2, 0, 0), "{text}");
    let (counts, text) = run(
        dir,
        LIST,
        &["--repeat", "2", "--revision", "2222222", "--branch", "dev"],
        &[("FAKE_BENCH_SEED", "2"), ("GITHUB_SHA", "ignored")],
    );
    assert_eq!(counts, (2, 0, 0), "{text}");
    dir.join("out")
}

fn export(history: &Path, format: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "history",
        "export",
        "--history",
        s(history),
        "--format",
        format,
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = perfgate(&args);
    assert_eq!(code, Some(0), "{err}");
    out
}

/// The export's rows as column → value maps, leaving out the night (an import may number
/// runs differently).
fn csv_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    r.records()
        .map(|rec| {
            let rec = rec.expect("a CSV row");
            header
                .iter()
                .zip(rec.iter())
                .filter(|(h, _)| *h != "night")
                .map(|(h, v)| (h.clone(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn an_imported_output_directory_exports_like_the_history_it_came_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = two_runs(dir.path());
    let original = out.join("history.sqlite");

    // The revision is stored, listed and exported.
    let (code, runs, err) = perfgate(&["history", "runs", "--history", s(&original)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(runs.contains("REVISION"), "{runs}");
    assert!(runs.contains("111111111111\n"), "{runs}");
    assert!(runs.contains("2222222"), "{runs}");

    let fresh = dir.path().join("imported.sqlite");
    let (code, text, err) = perfgate(&["history", "import", "--history", s(&fresh), s(&out)]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(text.matches("imported run").count(), 2, "{text}");
    assert!(
        !err.contains("warning"),
        "every verdict matches a measurement: {err}"
    );

    let before = csv_rows(&export(&original, "csv", &[]));
    let after = csv_rows(&export(&fresh, "csv", &[]));
    // 2 runs × 2 cases × 2 repetitions × several metrics.
    assert!(before.len() >= 16, "{before:?}");
    assert_eq!(before, after);
    let first = &before[0];
    assert_eq!(
        first["revision"],
        "1111111111111111111111111111111111111111"
    );
    assert_eq!(first["branch"], "main");
    assert_eq!(
        first["build_url"],
        "https://github.com/org/repo/actions/runs/1"
    );
    assert!(
        before.iter().any(|r| r["revision"] == "2222222"
            && r["branch"] == "dev"
            && r["build_url"].is_empty()),
        "the explicit flags of the second run"
    );
    // Every row carries its unit and direction; the gated metric its verdict.
    let tput: Vec<_> = before
        .iter()
        .filter(|r| r["metric"] == "TOKEN_THROUGHPUT")
        .collect();
    assert_eq!(tput.len(), 8);
    assert!(
        tput.iter()
            .all(|r| r["direction"] == "higher" && !r["unit"].is_empty())
    );
    // The first run has no history: NEW; the second has one night: a verdict all the same.
    assert!(
        tput.iter().all(|r| !r["verdict"].is_empty()
            && (r["verdict"] == "NEW") == r["revision"].starts_with('1')),
        "{tput:?}"
    );
    assert!(tput.iter().all(|r| r["gated"] == "true"));
}

#[test]
fn a_stored_run_is_refused_whole_unless_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = two_runs(dir.path());
    // Only the first run, on its own.
    let text = std::fs::read_to_string(out.join("results.jsonl")).expect("results");
    let first_id = text
        .lines()
        .next()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["run_id"].as_str().map(String::from))
        .expect("a run id");
    let one = dir.path().join("one");
    std::fs::create_dir_all(&one).expect("mkdir");
    for name in ["results.jsonl", "gate.jsonl"] {
        let text = std::fs::read_to_string(out.join(name)).expect("read");
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(&first_id)).collect();
        assert!(!lines.is_empty(), "{name}");
        std::fs::write(one.join(name), lines.join("\n") + "\n").expect("write");
    }

    let h = dir.path().join("h.sqlite");
    let (code, _, err) = perfgate(&["history", "import", "--history", s(&h), s(&one)]);
    assert_eq!(code, Some(0), "{err}");
    let stored = export(&h, "csv", &[]);

    // The directory holds that run again and one more: refused, and the second run is not
    // imported either.
    let (code, _, err) = perfgate(&["history", "import", "--history", s(&h), s(&out)]);
    assert_ne!(code, Some(0), "a stored run id is refused");
    for needle in [
        first_id.as_str(),
        "results.jsonl",
        "night 1",
        "--run-id NEW",
        "--skip-existing",
    ] {
        assert!(err.contains(needle), "`{needle}` in: {err}");
    }
    assert_eq!(export(&h, "csv", &[]), stored, "nothing was written");

    // --run-id needs a single run.
    let (code, _, err) = perfgate(&[
        "history",
        "import",
        "--history",
        s(&h),
        "--run-id",
        "x",
        s(&out),
    ]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("holds 2 runs") || err.contains("hold 2 runs"),
        "{err}"
    );

    let (code, text, err) = perfgate(&[
        "history",
        "import",
        "--history",
        s(&h),
        "--skip-existing",
        s(&out),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains(&format!("skipped run {first_id}")), "{text}");
    assert_eq!(text.matches("imported run").count(), 1, "{text}");
    let all = csv_rows(&export(&h, "csv", &[]));
    let runs: HashSet<&str> = all.iter().map(|r| r["run_id"].as_str()).collect();
    assert_eq!(runs.len(), 2);

    // The same run under a new id, with its verdicts.
    let (code, _, err) = perfgate(&[
        "history",
        "import",
        "--history",
        s(&h),
        "--run-id",
        "again",
        "--revision",
        "r9",
        s(&one),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let again: Vec<_> = csv_rows(&export(&h, "csv", &["--run", "again"]));
    assert!(!again.is_empty());
    assert!(
        again
            .iter()
            .all(|r| r["run_id"] == "again" && r["revision"] == "r9")
    );
    assert!(
        again.iter().any(|r| !r["verdict"].is_empty()),
        "the verdicts follow the new id"
    );
    // --last 1 is that run only.
    assert_eq!(csv_rows(&export(&h, "csv", &["--last", "1"])), again);
}

#[test]
fn opensearch_bulk_alternates_actions_and_documents_with_stable_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = two_runs(dir.path());
    let h = out.join("history.sqlite");
    let bulk = export(&h, "opensearch-bulk", &[]);
    let lines: Vec<serde_json::Value> = bulk
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert!(lines.len() >= 32 && lines.len() % 2 == 0, "{bulk}");
    let mut ids = HashSet::new();
    for pair in lines.chunks(2) {
        let (action, doc) = (&pair[0], &pair[1]);
        assert_eq!(action["index"]["_index"], "perfgate-results", "{action}");
        let id = action["index"]["_id"].as_str().expect("an _id");
        assert!(ids.insert(id.to_string()), "duplicate _id {id}");
        assert!(doc.get("index").is_none(), "{doc}");
        assert_eq!(doc["@timestamp"], doc["started"]);
        assert!(
            doc["perf_case_name"]
                .as_str()
                .is_some_and(|p| p.contains("::test_perf_metric_"))
        );
    }
    // Re-exporting gives the same ids (loading twice replaces); the index name is checked.
    let file = dir.path().join("bulk.ndjson");
    export(
        &h,
        "opensearch-bulk",
        &["--index", "perf-h100", "--out", s(&file)],
    );
    let again = std::fs::read_to_string(&file).expect("--out written");
    assert_eq!(again.replace("perf-h100", "perfgate-results"), bulk);
    let (code, _, err) = perfgate(&[
        "history",
        "export",
        "--history",
        s(&h),
        "--format",
        "opensearch-bulk",
        "--index",
        "Perf",
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("lowercase"), "{err}");

    let jsonl = export(&h, "jsonl", &[]);
    assert_eq!(jsonl.lines().count(), lines.len() / 2);
}

#[test]
fn upstream_csv_and_yaml_import_as_one_run_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (counts, text) = run(dir.path(), LIST, &[], &[("FAKE_BENCH_SEED", "3")]);
    assert_eq!(counts, (2, 0, 0), "{text}");
    let out = dir.path().join("out");
    let csv_file = out.join("perf_script_test_results.csv");
    let upstream = csv_rows(&std::fs::read_to_string(&csv_file).expect("csv"));

    let mut imported = Vec::new();
    for file in [&csv_file, &out.join("perf_script_test_results.yaml")] {
        let h = dir.path().join(format!(
            "{}.sqlite",
            file.extension().and_then(|e| e.to_str()).expect("ext")
        ));
        let (code, text, err) = perfgate(&["history", "import", "--history", s(&h), s(file)]);
        assert_eq!(code, Some(0), "{err}");
        assert!(text.contains("imported run upstream-"), "{text}");
        let rows = csv_rows(&export(&h, "csv", &[]));
        assert_eq!(rows.len(), upstream.len(), "{file:?}: {rows:?}");
        let mut series: Vec<(String, String, String, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["perf_case_name"].clone(),
                    r["metric"].clone(),
                    r["step"].clone(),
                    r["value"].clone(),
                    r["test_prefix"].clone(),
                )
            })
            .collect();
        series.sort();
        imported.push(series);
        // The run starts with the earliest start_timestamp of the file.
        let earliest = upstream
            .iter()
            .map(|r| r["start_timestamp"].clone())
            .min()
            .expect("rows");
        let started = &rows[0]["started"];
        assert_eq!(
            started.replace('T', " ").replace(".000Z", " +0000"),
            earliest,
            "{started}"
        );
    }
    assert_eq!(
        imported[0], imported[1],
        "the CSV and the YAML say the same"
    );
    let mut expected: Vec<_> = upstream
        .iter()
        .map(|r| {
            (
                r["perf_case_name"].clone(),
                r["metric_type"].clone(),
                "throughput".to_string(),
                r["perf_metric"]
                    .parse::<f64>()
                    .expect("a value")
                    .to_string(),
                String::new(),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(imported[0], expected);
}

#[test]
fn upstream_rows_name_their_step_state_and_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("perf_script_test_results.csv");
    let header = perfgate::results::upstream::COLUMNS.join(",");
    let row = |metric: &str, value: &str, start: &str, state: &str, command: &str| {
        format!(
            "net,hash,,,,,H100/perf/test_perf.py::test_perf_metric_{m}[net],test_perf_metric_{m}[net],H100/perf/test_perf.py::test_perf[n],{value},1.5,{start},{start},{state},{command},,,{metric}",
            m = metric.to_lowercase()
        )
    };
    let text = [
        header.clone(),
        row(
            "BUILD_TIME",
            "30",
            "2026-11-24 10:46:55",
            "valid",
            "trtllm-bench build",
        ),
        row(
            "INFERENCE_TIME",
            "812.5",
            "2026-11-24 10:47:10 +0000",
            "valid",
            "trtllm-bench --model=m latency --x",
        ),
        row(
            "INFERENCE_TIME",
            "",
            "2026-11-24 10:49:10 +0000",
            "failed",
            "trtllm-bench --model=m latency --x",
        ),
    ]
    .join("\n")
        + "\n";
    std::fs::write(&file, &text).expect("write");
    let h = dir.path().join("h.sqlite");
    let (code, _, err) = perfgate(&["history", "import", "--history", s(&h), s(&file)]);
    assert_eq!(code, Some(0), "{err}");
    let rows = csv_rows(&export(&h, "csv", &[]));
    let got: Vec<(&str, &str, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["step"].as_str(),
                r["metric"].as_str(),
                r["repetition"].as_str(),
                r["value"].as_str(),
                r["state"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("build", "BUILD_TIME", "1", "30", "valid"),
            ("latency", "INFERENCE_TIME", "1", "812.5", "valid"),
            ("latency", "INFERENCE_TIME", "2", "", "failed"),
        ]
    );
    assert_eq!(rows[0]["started"], "2026-11-24T10:46:55.000Z");
    assert_eq!(rows[0]["test_prefix"], "H100");
    let id = &rows[0]["run_id"];
    assert!(
        id.starts_with("upstream-") && id.len() == "upstream-".len() + 12,
        "{id}"
    );

    // A bad row: the file and its line.
    let bad = text.replace("812.5", "fast");
    std::fs::write(&file, bad).expect("write");
    let (code, _, err) = perfgate(&[
        "history",
        "import",
        "--history",
        s(&dir.path().join("b.sqlite")),
        s(&file),
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("perf_script_test_results.csv:3"), "{err}");
    assert!(err.contains("`fast`"), "{err}");

    // Issue 20 item 11: a time the history cannot store (RFC 3339 years are 0000-9999) is the
    // CSV line's error, not the history file's; and with CRLF line ends (what Python's csv
    // module writes) the line is still right (the csv crate's own count is one short there).
    for newline in ["\n", "\r\n"] {
        let bad = text
            .replace("2026-11-24 10:47:10 +0000", "-0001-01-01 00:00:00")
            .replace('\n', newline);
        std::fs::write(&file, bad).expect("write");
        let history = dir.path().join("t.sqlite");
        let (code, _, err) = perfgate(&["history", "import", "--history", s(&history), s(&file)]);
        assert_ne!(code, Some(0));
        assert!(
            err.contains("perf_script_test_results.csv:3: `start_timestamp` is `-0001-01-01"),
            "{newline:?}: {err}"
        );
        assert!(!err.contains("t.sqlite"), "{err}");
    }
}

#[test]
fn a_run_without_metrics_is_imported_with_a_warning_and_bad_lines_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let line = serde_json::json!({
        "run_id": "r0", "test_id": "H100/perf/test_perf.py::test_perf[m]", "name": "m",
        "label": "m", "case": null, "step": "none", "metric": null, "value": null,
        "state": "failed", "reason": "the build failed: CUDA out of memory",
        "env": {"host": "gpu7", "test_prefix": "H100", "run_started": "2026-11-24T01:00:00.000Z"}
    });
    std::fs::write(out.join("results.jsonl"), format!("{line}\n")).expect("write");
    let h = dir.path().join("h.sqlite");
    let (code, text, err) = perfgate(&["history", "import", "--history", s(&h), s(&out)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains("imported run r0"), "{text}");
    assert!(
        err.contains("0 metrics") && err.contains("CUDA out of memory"),
        "{err}"
    );
    let (code, runs, _) = perfgate(&["history", "runs", "--history", s(&h)]);
    assert_eq!(code, Some(0));
    assert!(
        runs.contains("r0") && runs.contains("2026-11-24T01:00:00.000Z") && runs.contains("gpu7"),
        "{runs}"
    );

    std::fs::write(out.join("results.jsonl"), format!("{line}\n{{not json\n")).expect("write");
    let (code, _, err) = perfgate(&[
        "history",
        "import",
        "--history",
        s(&dir.path().join("b.sqlite")),
        s(&out),
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("results.jsonl:2"), "{err}");
}

#[test]
fn an_empty_history_exports_a_header_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = dir.path().join("h.sqlite");
    perfgate::history::History::open(&h).expect("a new history");
    let (code, out, err) = perfgate(&["history", "export", "--history", s(&h), "--format", "csv"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, perfgate::history::export::COLUMNS.join(",") + "\n");
    assert!(err.contains("no measurements"), "{err}");
    let (code, out, err) = perfgate(&[
        "history",
        "export",
        "--history",
        s(&h),
        "--format",
        "opensearch-bulk",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.is_empty(), "{out}");
    let (code, _, err) = perfgate(&[
        "history",
        "export",
        "--history",
        s(&h),
        "--format",
        "csv",
        "--run",
        "nope",
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("no run `nope`"), "{err}");
}
