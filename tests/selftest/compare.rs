//! `perfgate compare`: two real runs through the harness and the trtllm-bench test double (B
//! 20% slower), compared as output directories and as history runs; the deltas in the
//! markdown and HTML are the ones computed from the results.jsonl values.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use perfgate::record::State;
use perfgate::results::jsonl;

use super::e2e::run;

const LIST: &str = "\
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4
llama_v3.2_1b-bench-pytorch-streaming-bfloat16-input_output_len:16,8-reqs:5
";

fn perfgate(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(args)
        .output()
        .expect("perfgate runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (label, step, metric) → median of the valid repetitions of the file's last run.
fn medians(out: &Path) -> BTreeMap<(String, String, String), f64> {
    let records = jsonl::read(&out.join("results.jsonl")).expect("results.jsonl");
    let last = records.last().expect("records").run_id.clone();
    let mut reps: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.run_id == last && r.is_measurement())
    {
        if r.state == State::Valid {
            reps.entry((
                r.label.clone(),
                r.step.clone(),
                r.metric.clone().expect("metric"),
            ))
            .or_default()
            .push(r.value.expect("value"));
        }
    }
    reps.into_iter()
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            let m = if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            };
            (k, m)
        })
        .collect()
}

fn two_runs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let history = dir.join("history.sqlite");
    let h = history.to_str().expect("utf-8").to_string();
    // `pid`: each repetition draws its own noise (a fixed seed repeats one draw, and identical
    // repetitions have no spread to test a change against).
    for (name, scale, seed) in [("a", "1", "pid"), ("b", "0.8", "pid")] {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        let (counts, text) = run(
            &d,
            LIST,
            &["--repeat", "3", "--history", &h],
            &[
                ("FAKE_BENCH_NOISE", "0.004"),
                ("FAKE_BENCH_SEED", seed),
                ("FAKE_BENCH_SCALE", scale),
            ],
        );
        assert_eq!(counts.1, 0, "{name}: {text}");
    }
    (dir.join("a/out"), dir.join("b/out"), h)
}

#[test]
fn compare_two_runs_as_directories_and_as_history_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, history) = two_runs(dir.path());
    let (ma, mb) = (medians(&a), medians(&b));
    let key = ma
        .keys()
        .find(|k| k.2 == "TOKEN_THROUGHPUT" && k.0.starts_with("llama_v3.1_8b-"))
        .expect("a TOKEN_THROUGHPUT series")
        .clone();
    let expected = (mb[&key] - ma[&key]) / ma[&key] * 100.0;
    assert!(expected < -15.0, "B runs at 0.8 speed: {expected}");
    let expected_text = format!("{expected:+.2}");

    // Directories, markdown: the row of the series carries the delta computed here, worse,
    // significant (3 repetitions a side, 0.4% noise).
    let (a_s, b_s) = (a.to_str().expect("utf-8"), b.to_str().expect("utf-8"));
    let (ok, md, err) = perfgate(&["compare", a_s, b_s, "--format", "markdown"]);
    assert!(ok, "{err}");
    let row = md
        .lines()
        .find(|l| l.starts_with(&format!("| `{}` | {} | TOKEN_THROUGHPUT", key.0, key.1)))
        .unwrap_or_else(|| panic!("no row for {key:?}:\n{md}"));
    let cells: Vec<&str> = row.split(" | ").collect();
    assert_eq!(cells[5].trim(), expected_text, "{row}");
    assert!(
        cells[6].starts_with("worse p=") && cells[6].contains(", significant)"),
        "{row}"
    );
    // Every compared row has a delta consistent with the two files.
    let mut compared = 0;
    for line in md.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let label = cells[0].trim_matches('`');
        let metric = cells[2].split(' ').next().expect("metric");
        let k = (label.to_string(), cells[1].to_string(), metric.to_string());
        let want = (mb[&k] - ma[&k]) / ma[&k] * 100.0;
        assert_eq!(cells[5], format!("{want:+.2}"), "{line}");
        compared += 1;
    }
    assert_eq!(compared, ma.len(), "{md}");

    // Table: worst first.
    let (ok, table, _) = perfgate(&["compare", a_s, b_s, "--metric", "TOKEN_THROUGHPUT"]);
    assert!(ok);
    let first = table.lines().nth(3).expect("a first row");
    assert!(first.contains("worse"), "{table}");
    assert!(
        !table.contains("OUTPUT_TOKEN_THROUGHPUT"),
        "--metric filters:\n{table}"
    );

    // The same runs from the history, as HTML written to a file.
    let html_path = dir.path().join("cmp.html");
    let (ok, _, err) = perfgate(&[
        "compare",
        "latest~1",
        "latest",
        "--history",
        &history,
        "--format",
        "html",
        "--out",
        html_path.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{err}");
    let html = std::fs::read_to_string(&html_path).expect("html written");
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(html.contains(&expected_text), "{html}");
    assert!(html.contains("<tr class=\"worse sig\">"), "{html}");
    for external in ["http://", "https://", "<script", "<link"] {
        assert!(!html.contains(external), "self-contained: found {external}");
    }

    // DIR@RUN picks a run; an unknown one lists the file's runs.
    let run_a = jsonl::read(&a.join("results.jsonl")).expect("read")[0]
        .run_id
        .clone();
    let (ok, _, err) = perfgate(&["compare", &format!("{a_s}@{run_a}"), b_s]);
    assert!(ok, "{err}");
    let (ok, _, err) = perfgate(&["compare", &format!("{a_s}@nope"), b_s]);
    assert!(
        !ok && err.contains("no run `nope`") && err.contains(&run_a),
        "{err}"
    );
    // A directory without results.jsonl, and an unknown history run.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let (ok, _, err) = perfgate(&["compare", empty.to_str().expect("utf-8"), b_s]);
    assert!(!ok && err.contains("no results.jsonl"), "{err}");
    let (ok, _, err) = perfgate(&["compare", "no-such-run", b_s, "--history", &history]);
    assert!(
        !ok && err.contains("no run `no-such-run`") && err.contains(&run_a),
        "{err}"
    );
}

#[test]
fn one_repetition_has_no_significance_and_one_sided_series_are_listed() {
    use perfgate::compare::{Key, Side, compare_sides, render_markdown};
    let key = |m: &str| Key {
        label: "llama".into(),
        case: None,
        step: "throughput".into(),
        metric: m.into(),
    };
    let a = Side {
        description: "A".into(),
        run_id: "a".into(),
        series: [
            (key("TOKEN_THROUGHPUT"), vec![100.0]),
            (key("ONLY_A"), vec![1.0]),
        ]
        .into(),
    };
    let b = Side {
        description: "B".into(),
        run_id: "b".into(),
        series: [
            (key("TOKEN_THROUGHPUT"), vec![110.0, 111.0]),
            (key("ONLY_B"), vec![1.0]),
        ]
        .into(),
    };
    let c = compare_sides(&a, &b, &[]);
    assert_eq!(c.rows.len(), 1);
    assert!(c.rows[0].delta.significance.is_none());
    let md = render_markdown(&c);
    assert!(md.contains("better n/a (1 rep)"), "{md}");
    assert!(
        md.contains("**Only in A:**") && md.contains("ONLY_A"),
        "{md}"
    );
    assert!(
        md.contains("**Only in B:**") && md.contains("ONLY_B"),
        "{md}"
    );
    // Medians: 110.5 vs 100.
    assert!(md.contains("+10.50"), "{md}");
}

/// Issue 20 item 10: no significance without variance, and a change the table shows as ±0.00
/// is `same`, not worse. (Before: identical repetitions on both sides gave `-0.00 worse
/// p=0.0e0 *`.)
#[test]
fn identical_repetitions_have_no_significance_and_invisible_changes_are_the_same() {
    use perfgate::compare::{Key, Side, compare_sides, render_table};
    use perfgate::gate::significance::Effect;
    let key = |m: &str| Key {
        label: "llama".into(),
        case: None,
        step: "throughput".into(),
        metric: m.into(),
    };
    let side = |name: &str, tiny: f64, slow: f64| Side {
        description: name.into(),
        run_id: name.into(),
        series: [
            (key("TOKEN_THROUGHPUT"), vec![tiny; 3]),
            (key("SEQ_THROUGHPUT"), vec![slow; 3]),
            (key("INFERENCE_TIME"), vec![1000.0, 1010.0, 990.0]),
        ]
        .into(),
    };
    let a = side("A", 27355.1061, 100.0);
    let b = side("B", 27355.1060, 80.0);
    let c = compare_sides(&a, &b, &[]);
    let row = |m: &str| {
        c.rows
            .iter()
            .find(|r| r.key.metric == m)
            .unwrap_or_else(|| panic!("no {m} row"))
    };
    let tiny = row("TOKEN_THROUGHPUT");
    assert_eq!(tiny.delta.effect, Effect::Same, "{tiny:?}");
    assert!(tiny.delta.significance.is_none(), "{tiny:?}");
    // A real change with no spread on either side is worse, but untested.
    let slow = row("SEQ_THROUGHPUT");
    assert_eq!(slow.delta.effect, Effect::Worse);
    assert!(slow.delta.significance.is_none(), "{slow:?}");
    // The same series on both sides, with spread: tested, p = 1.
    let same = row("INFERENCE_TIME");
    assert_eq!(same.delta.effect, Effect::Same);
    assert!(
        same.delta
            .significance
            .as_ref()
            .is_some_and(|s| !s.significant)
    );
    let table = render_table(&c);
    let line = |m: &str| {
        table
            .lines()
            .find(|l| l.contains(m))
            .unwrap_or_else(|| panic!("{m}:\n{table}"))
            .to_string()
    };
    assert!(
        line("TOKEN_THROUGHPUT").ends_with("same n/a (no spread)"),
        "{table}"
    );
    assert!(
        line("SEQ_THROUGHPUT").ends_with("worse n/a (no spread)"),
        "{table}"
    );
    assert!(!table.contains(" *"), "{table}");
}
