//! Sharding a list (`--shard K/N`, `perfgate shards`) and merging the shards' output
//! directories (`perfgate merge`): the partition's properties, the harness running the example
//! list as three shards with the trtllm-bench test double, and the merge giving what one
//! unsharded run gives.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use perfgate::shard::{CostUnit, ShardCase, ShardError, ShardSpec, partition};
use proptest::prelude::*;

use super::e2e::run;

#[test]
fn shard_specs_parse_and_bad_ones_say_why() {
    assert_eq!(
        "2/3".parse::<ShardSpec>(),
        Ok(ShardSpec { index: 2, count: 3 })
    );
    assert_eq!(
        " 1/1 ".parse::<ShardSpec>(),
        Ok(ShardSpec { index: 1, count: 1 })
    );
    for (given, says) in [
        ("0/3", "1-based"),
        ("4/3", "between 1 and N (3), not 4"),
        ("1/0", "at least 1"),
        ("a/3", "`a` is not a whole number"),
        ("3", "expected K/N"),
        ("-1/3", "is not a whole number"),
        ("", "expected K/N"),
    ] {
        let e = given.parse::<ShardSpec>().expect_err(given).to_string();
        assert!(e.contains(says), "{given}: {e}");
        assert!(e.contains(&format!("`{given}`")), "{given}: {e}");
    }
}

fn case(id: &str, gpus: u32, cost: f64) -> ShardCase {
    ShardCase {
        test_id: id.to_string(),
        gpus,
        cost,
        unit: CostUnit::Tokens,
    }
}

#[test]
fn too_few_shards_name_the_gpu_classes() {
    let cases = [case("a", 1, 5.0), case("b", 8, 5.0), case("c", 2, 1.0)];
    let e = partition(&cases, 2).expect_err("3 classes, 2 shards");
    assert!(
        matches!(e, ShardError::TooFewShards { count: 2, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    for class in [
        "1 GPU(s): 1 test(s)",
        "2 GPU(s): 1 test(s)",
        "8 GPU(s): 1 test(s)",
    ] {
        assert!(text.contains(class), "{text}");
    }
    assert!(text.contains("--count 3"), "{text}");
    assert_eq!(partition(&cases, 0), Err(ShardError::ZeroCount));
}

#[test]
fn shards_go_to_gpu_classes_by_cost_and_lpt_balances_within() {
    // 1-GPU tests cost 9 in all, 8-GPU tests 3: of 4 shards the 1-GPU class gets 3.
    let cases = [
        case("a", 1, 4.0),
        case("b", 1, 3.0),
        case("c", 1, 2.0),
        case("d", 8, 2.0),
        case("e", 8, 1.0),
    ];
    let shards = partition(&cases, 4).expect("partition");
    let got: Vec<(usize, u32, Vec<&str>, f64)> = shards
        .iter()
        .map(|s| {
            (
                s.index,
                s.gpus,
                s.test_ids.iter().map(String::as_str).collect(),
                s.expected_cost,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 1, vec!["a"], 4.0),
            (2, 1, vec!["b"], 3.0),
            (3, 1, vec!["c"], 2.0),
            (4, 8, vec!["d", "e"], 3.0),
        ]
    );
    // LPT: the largest first, each onto the least-loaded shard (ties: the lower index).
    let cases = [
        case("t5", 1, 5.0),
        case("t4", 1, 4.0),
        case("t3a", 1, 3.0),
        case("t3b", 1, 3.0),
        case("t2", 1, 2.0),
        case("t1", 1, 1.0),
    ];
    let shards = partition(&cases, 2).expect("partition");
    // 5→1; 4→2; 3a→2 (4<5) = 7; 3b→1 = 8; 2→2 = 9; 1→1 = 9.
    assert_eq!(shards[0].test_ids, ["t5", "t3b", "t1"]);
    assert_eq!(shards[1].test_ids, ["t4", "t3a", "t2"]);
    assert_eq!(
        (shards[0].expected_cost, shards[1].expected_cost),
        (9.0, 9.0)
    );
}

fn arb_cases() -> impl Strategy<Value = Vec<ShardCase>> {
    prop::collection::vec(
        (
            0u32..400,
            prop::sample::select(vec![1u32, 2, 4, 8]),
            1.0f64..1e6,
        ),
        1..60,
    )
    .prop_map(|v| {
        let mut seen = BTreeSet::new();
        v.into_iter()
            .filter(|(id, _, _)| seen.insert(*id))
            .map(|(id, g, c)| case(&format!("test-{id:03}"), g, c))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn partitions_are_complete_pure_deterministic_and_balanced(
        cases in arb_cases(),
        extra in 0usize..12,
        seed in any::<u64>(),
    ) {
        let classes: BTreeSet<u32> = cases.iter().map(|c| c.gpus).collect();
        let count = classes.len() + extra;
        let shards = partition(&cases, count).expect("enough shards");
        prop_assert_eq!(shards.len(), count);
        prop_assert_eq!(
            shards.iter().map(|s| s.index).collect::<Vec<_>>(),
            (1..=count).collect::<Vec<_>>()
        );
        // Every case exactly once, in a shard of its GPU count.
        let by_id: BTreeMap<&str, &ShardCase> =
            cases.iter().map(|c| (c.test_id.as_str(), c)).collect();
        let mut placed = BTreeSet::new();
        for s in &shards {
            let mut sum = 0.0;
            for id in &s.test_ids {
                prop_assert!(placed.insert(id.clone()), "{} placed twice", id);
                let c = by_id[id.as_str()];
                prop_assert_eq!(c.gpus, s.gpus);
                sum += c.cost;
            }
            prop_assert!((sum - s.expected_cost).abs() <= 1e-6 * sum.max(1.0));
        }
        prop_assert_eq!(placed.len(), cases.len());
        // Every GPU class has a shard.
        let served: BTreeSet<u32> = shards
            .iter()
            .filter(|s| !s.test_ids.is_empty())
            .map(|s| s.gpus)
            .collect();
        prop_assert_eq!(&served, &classes);
        // LPT's bound: within a class, the most loaded shard exceeds the least loaded by at
        // most the class's largest test.
        for g in &classes {
            let loads: Vec<f64> = shards.iter().filter(|s| s.gpus == *g).map(|s| s.expected_cost).collect();
            let biggest = cases.iter().filter(|c| c.gpus == *g).map(|c| c.cost).fold(0.0, f64::max);
            let (lo, hi) = loads.iter().fold((f64::MAX, 0.0f64), |(lo, hi), l| (lo.min(*l), hi.max(*l)));
            prop_assert!(hi - lo <= biggest + 1e-6, "class {}: loads {:?}, biggest {}", g, loads, biggest);
        }
        // The input's order does not matter.
        let mut shuffled = cases.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(partition(&shuffled, count).expect("again"), shards);
    }
}

#[test]
fn costs_come_from_the_history_when_it_has_durations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("list.txt");
    std::fs::write(
        &list,
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:100,50-reqs:10\n\
         llama_v3.1_8b-bench-pytorch-bfloat16-bs:1+2-input_output_len:16,8+32,4-reqs:2\n\
         llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128-gpus:2\n",
    )
    .expect("list");
    let common = perfgate::collect::CollectOptions::for_lists(vec![list]);
    let collection = common
        .collect(&perfgate::backend::Registry::builtin())
        .expect("collect");
    let tests: Vec<_> = collection.tests.iter().collect();
    let cases = perfgate::shard::shard_cases(&tests, &BTreeMap::new());
    let costs: Vec<(f64, u32, CostUnit)> = cases.iter().map(|c| (c.cost, c.gpus, c.unit)).collect();
    // num_requests × (isl + osl), summed over the cases of a name; the default is 512 requests.
    assert_eq!(
        costs,
        vec![
            (10.0 * 150.0, 1, CostUnit::Tokens),
            (
                2.0 * 24.0 + 2.0 * 24.0 + 2.0 * 36.0 + 2.0 * 36.0,
                1,
                CostUnit::Tokens
            ),
            (512.0 * 256.0, 2, CostUnit::Tokens),
        ]
    );

    // A history with durations of two tests: those count in seconds, the third at their rate.
    let path = dir.path().join("history.sqlite");
    let mut h = perfgate::history::History::open(&path).expect("history");
    for run in ["old", "newer", "current"] {
        h.begin_run(&perfgate::history::RunMeta {
            run_id: run.into(),
            started: "2026-11-20T00:00:00Z".into(),
            host: "h".into(),
            test_prefix: None,
            fingerprint: String::new(),
            env_json: "{}".into(),
            revision: None,
            branch: None,
            build_url: None,
            imported_from: None,
        })
        .expect("run");
    }
    h.record_duration("old", &cases[0].test_id, 999.0)
        .expect("d");
    h.record_duration("newer", &cases[0].test_id, 30.0)
        .expect("d");
    h.record_duration("newer", &cases[1].test_id, 10.0)
        .expect("d");
    h.record_duration("current", &cases[1].test_id, 5000.0)
        .expect("d");
    assert!(h.record_duration("newer", "x", f64::NAN).is_err());
    drop(h);
    // The current run's own durations never count (its shards must all agree).
    let durations =
        perfgate::history::test_durations(Some(&path), Some("current")).expect("durations");
    assert_eq!(
        durations.get(&cases[0].test_id),
        Some(&30.0),
        "the latest night wins"
    );
    let timed = perfgate::shard::shard_cases(&tests, &durations);
    assert_eq!((timed[0].cost, timed[0].unit), (30.0, CostUnit::Seconds));
    assert_eq!((timed[1].cost, timed[1].unit), (10.0, CostUnit::Seconds));
    let rate = 40.0 / (1500.0 + 240.0);
    assert!(
        (timed[2].cost - 512.0 * 256.0 * rate).abs() < 1e-6,
        "{timed:?}"
    );
    assert_eq!(timed[2].unit, CostUnit::Seconds);
    // No file yet: no durations (a run creates it).
    let none = perfgate::history::test_durations(Some(&dir.path().join("absent.sqlite")), None);
    assert!(none.expect("absent is fine").is_empty());
}

const EXAMPLE: &str = include_str!("../../test_lists/perf_test.txt");

fn perfgate(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(args)
        .output()
        .expect("perfgate runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// (test id, step, metric, repetition) → value of every measured metric.
fn measured(out: &Path) -> BTreeMap<(String, String, String, u32), Option<u64>> {
    perfgate::results::jsonl::read(&out.join("results.jsonl"))
        .expect("results.jsonl")
        .into_iter()
        .filter(|r| r.is_measurement())
        .map(|r| {
            (
                (
                    r.test_id,
                    r.step,
                    r.metric.unwrap_or_default(),
                    r.repetition.unwrap_or_default(),
                ),
                r.value.map(f64::to_bits),
            )
        })
        .collect()
}

/// The `<testcase name=... classname=...>` of a JUnit report, sorted.
fn testcases(xml: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(xml).expect("junit");
    let re = regex::Regex::new(r#"<testcase name="([^"]*)" classname="([^"]*)""#).expect("re");
    let mut v: Vec<String> = re
        .captures_iter(&text)
        .map(|c| format!("{}::{}", &c[2], &c[1]))
        .collect();
    v.sort();
    v
}

fn shard_dir(root: &Path, k: usize) -> PathBuf {
    root.join(format!("shard{k}"))
}

/// Runs shard `k` of 3 of the example list into `<root>/shard<k>/out`.
fn run_shard(root: &Path, k: usize, extra: &[&str]) -> String {
    let dir = shard_dir(root, k);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let shard = format!("{k}/3");
    let mut args = vec!["--shard", shard.as_str(), "--run-id", "job-42"];
    args.extend_from_slice(extra);
    let (_, text) = run(&dir, EXAMPLE, &args, &[]);
    text
}

#[test]
fn the_example_list_sharded_and_merged_equals_one_run() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let whole = root.join("whole");
    std::fs::create_dir_all(&whole).expect("mkdir");
    let (counts, text) = run(&whole, EXAMPLE, &[], &[]);
    assert!(counts.0 >= 5, "{text}");
    let whole_out = whole.join("out");

    let mut assigned = BTreeSet::new();
    for k in 1..=3 {
        let text = run_shard(root, k, &[]);
        assert!(text.contains(&format!("perfgate: shard {k}/3:")), "{text}");
        let rec = perfgate::shard::ShardRecord::read(&shard_dir(root, k).join("out"))
            .expect("shard.json");
        assert_eq!(rec.run_id, "job-42");
        assert_eq!(rec.shard, ShardSpec { index: k, count: 3 });
        assert!(!rec.assigned.is_empty());
        assert_eq!(
            rec.finished, rec.assigned,
            "every test finished, in run order"
        );
        assert!(rec.gpus.is_some() && rec.partition_sha256.is_some());
        for id in &rec.assigned {
            assert!(assigned.insert(id.clone()), "{id} in two shards");
        }
        // Only the shard's own tests were collected.
        let ran: BTreeSet<String> = measured(&shard_dir(root, k).join("out"))
            .into_keys()
            .map(|k| k.0)
            .collect();
        assert!(ran.iter().all(|t| rec.assigned.contains(t)), "{ran:?}");
    }
    let whole_rec = perfgate::shard::ShardRecord::read(&whole_out).expect("unsharded shard.json");
    assert_eq!(whole_rec.shard, ShardSpec { index: 1, count: 1 });
    let all: BTreeSet<String> = whole_rec.assigned.iter().cloned().collect();
    assert_eq!(assigned, all, "the shards cover the list exactly");

    // `perfgate shards` prints the partition the runs used.
    let (code, json) = perfgate(&[
        "shards",
        "--test-list",
        s(&whole.join("list.txt")),
        "--count",
        "3",
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).expect("json");
    let rec1 = perfgate::shard::ShardRecord::read(&shard_dir(root, 1).join("out")).expect("rec");
    assert_eq!(
        report["partition_sha256"].as_str(),
        rec1.partition_sha256.as_deref()
    );
    let listed: BTreeSet<String> = report["shards"][0]["test_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert_eq!(
        listed,
        rec1.assigned.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert_eq!(report["shards"].as_array().map(Vec::len), Some(3));

    // Sysfs power readings (a Jetson's rails, RAPL) of two shards: joined like the GPU
    // samples, one header.
    let header = perfgate::telemetry::POWER_MONITORING_COLUMNS.join(",");
    for k in [1, 3] {
        std::fs::write(
            shard_dir(root, k).join("out/power_monitoring.csv"),
            format!("{header}\nt{k},throughput,1,rapl,rapl,energy,package-0,J,2026-12-07T00:00:00Z,1,{k}.5\n"),
        )
        .expect("power_monitoring.csv");
    }

    // Merge, shards given out of order.
    let merged = root.join("merged");
    let dirs: Vec<PathBuf> = [3, 1, 2]
        .iter()
        .map(|k| shard_dir(root, *k).join("out"))
        .collect();
    let mut args = vec!["merge", "--out", s(&merged)];
    args.extend(dirs.iter().map(|d| s(d)));
    let (code, text) = perfgate(&args);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("every assigned test finished"), "{text}");
    let power = std::fs::read_to_string(merged.join("power_monitoring.csv")).expect("merged");
    assert_eq!(power.lines().next(), Some(header.as_str()), "{power}");
    assert_eq!(power.lines().count(), 3, "{power}");
    assert!(
        power.contains(",3.5\n") && power.contains(",1.5\n"),
        "{power}"
    );

    assert_eq!(
        measured(&merged),
        measured(&whole_out),
        "same metric values"
    );
    assert!(!measured(&merged).is_empty());
    super::junit_xsd::validate(&merged.join("results.xml")).expect("valid JUnit");
    assert_eq!(
        testcases(&merged.join("results.xml")),
        testcases(&whole_out.join("results.xml"))
    );
    let csv = |d: &Path| {
        let text = std::fs::read_to_string(d.join("perf_script_test_results.csv")).expect("csv");
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let header = lines.remove(0);
        (header, lines.len())
    };
    let (h1, n1) = csv(&merged);
    let (h2, n2) = csv(&whole_out);
    assert_eq!((h1, n1), (h2, n2), "header once, every row");
    let yaml = std::fs::read_to_string(merged.join("perf_script_test_results.yaml")).expect("yaml");
    let doc: serde_json::Value = serde_saphyr::from_str(&yaml).expect("one YAML mapping");
    let whole_yaml =
        std::fs::read_to_string(whole_out.join("perf_script_test_results.yaml")).expect("yaml");
    let whole_doc: serde_json::Value = serde_saphyr::from_str(&whole_yaml).expect("yaml");
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&doc), keys(&whole_doc));
    assert!(!keys(&doc).is_empty());
    let verdicts =
        perfgate::results::verdicts::read(&merged.join("gate.jsonl")).expect("gate.jsonl");
    let whole_verdicts =
        perfgate::results::verdicts::read(&whole_out.join("gate.jsonl")).expect("gate.jsonl");
    assert_eq!(verdicts.len(), whole_verdicts.len());
    let md = std::fs::read_to_string(merged.join("perf_report.md")).expect("markdown");
    assert!(md.contains("perfgate job-42"), "{md}");
    // Case directories (logs) came along.
    for d in std::fs::read_dir(&whole_out).expect("ls").flatten() {
        if d.path().is_dir() {
            let logs: Vec<_> = std::fs::read_dir(d.path()).expect("ls").flatten().collect();
            assert!(merged.join(d.file_name()).is_dir(), "{:?}", d.file_name());
            if logs.iter().any(|l| l.file_name() == "perf.log") {
                assert!(merged.join(d.file_name()).join("perf.log").is_file());
            }
        }
    }
    // One history, one run holding every shard's measurements and verdicts.
    let h =
        perfgate::history::History::open_existing(&merged.join("history.sqlite")).expect("history");
    let wh = perfgate::history::History::open_existing(&whole_out.join("history.sqlite"))
        .expect("history");
    let whole_run = wh.latest_run().expect("runs").expect("a run");
    assert_eq!(h.runs(10).expect("runs").len(), 1);
    assert_eq!(
        h.measurements("job-42").expect("rows").len(),
        wh.measurements(&whole_run).expect("rows").len()
    );
    assert_eq!(h.verdicts("job-42").expect("v").len(), whole_verdicts.len());
    assert_eq!(h.durations("job-42").expect("d").len(), all.len());
    assert!(
        h.run("job-42")
            .expect("run")
            .expect("stored")
            .ended
            .is_some()
    );

    // Refusals, before anything is written.
    let refused = |dirs: &[&Path], says: &str| {
        let out = root.join("refused");
        let mut args = vec!["merge", "--out", s(&out)];
        args.extend(dirs.iter().map(|d| s(d)));
        let (code, text) = perfgate(&args);
        assert_eq!(code, Some(2), "{text}");
        assert!(text.contains(says), "{says}: {text}");
        assert!(!out.exists(), "nothing written");
    };
    let d1 = shard_dir(root, 1).join("out");
    let d2 = shard_dir(root, 2).join("out");
    refused(&[&d1, &d1], "shard 1 is given twice");
    refused(&[&d1, &whole_out], "their run ids differ");
    refused(&[&d1, &root.join("whole")], "cannot read the shard record");
    // Same run id, other settings.
    let other = root.join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    run(
        &other,
        EXAMPLE,
        &["--shard", "2/3", "--run-id", "job-42", "--repeat", "2"],
        &[],
    );
    refused(&[&d1, &other.join("out")], "settings (sha256)");
    // Another list.
    let other_list = root.join("other-list");
    std::fs::create_dir_all(&other_list).expect("mkdir");
    run(
        &other_list,
        &format!("{EXAMPLE}\n# changed\n"),
        &["--shard", "2/3", "--run-id", "job-42"],
        &[],
    );
    refused(&[&d1, &other_list.join("out")], "test lists (sha256)");
    let (code, text) = perfgate(&["merge", "--out", s(&merged), s(&d1)]);
    assert_eq!(code, Some(2));
    assert!(text.contains("not empty"), "{text}");

    // Partial: shard 3 missing, and shard 2 was given a test it never finished (its job timed
    // out, as the SLURM helper's slurm_state.json says).
    let d2_partial = root.join("d2-partial");
    copy_dir(&d2, &d2_partial);
    let mut rec = perfgate::shard::ShardRecord::read(&d2_partial).expect("rec");
    rec.assigned
        .push("perf/test_perf.py::test_perf[never-finished]".into());
    rec.write(&d2_partial).expect("write");
    std::fs::write(
        d2_partial.join("slurm_state.json"),
        r#"{"state": "TIMEOUT", "exit_code": "0:15", "log": "/logs/slurm-12_2.out"}"#,
    )
    .expect("slurm state");
    let partial = root.join("partial");
    let (code, text) = perfgate(&["merge", "--out", s(&partial), s(&d1), s(&d2_partial)]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("shard 3/3 is missing"), "{text}");
    assert!(
        text.contains("did not finish perf/test_perf.py::test_perf[never-finished] (job TIMEOUT, exit 0:15; log /logs/slurm-12_2.out)"),
        "{text}"
    );
    super::junit_xsd::validate(&partial.join("results.xml")).expect("valid JUnit");
    let xml = std::fs::read_to_string(partial.join("results.xml")).expect("xml");
    assert!(
        xml.contains(
            r#"<error message="not finished: shard 2/3: the job ended TIMEOUT (exit 0:15)">"#
        ),
        "{xml}"
    );
    assert!(xml.contains("job log: /logs/slurm-12_2.out"), "{xml}");
    assert!(
        xml.contains(r#"errors="2""#),
        "one unfinished test, one missing shard: {xml}"
    );
    let c = perfgate::shard::merge::completeness(&[
        perfgate::shard::merge::ShardDir::read(&d1).expect("d1"),
        perfgate::shard::merge::ShardDir::read(&d2_partial).expect("d2"),
    ]);
    assert_eq!(c.missing_shards, vec![3]);
    assert_eq!(c.unfinished.len(), 1);
    assert_eq!(c.unfinished[0].state.as_deref(), Some("TIMEOUT"));
    let partial2 = root.join("partial2");
    let (code, text) = perfgate(&[
        "merge",
        "--allow-partial",
        "--out",
        s(&partial2),
        s(&d1),
        s(&d2_partial),
    ]);
    assert_eq!(code, Some(0), "{text}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("ls").flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

#[test]
fn run_ids_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, text) = run(
        dir.path(),
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4\n",
        &["--run-id", "a b/c"],
        &[],
    );
    assert!(text.contains("--run-id `a b/c`: expected"), "{text}");
    let (_, text) = run(
        dir.path(),
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4\n",
        &["--shard", "4/3"],
        &[],
    );
    assert!(
        text.contains("K must be between 1 and N (3), not 4"),
        "{text}"
    );
}

/// A shard whose job is stopped by its time limit (SIGTERM) mid-test: shard.json shows what
/// finished; the merge reports the rest with the job's state, as JUnit errors (once each).
#[test]
fn a_killed_shard_is_merged_with_its_unfinished_tests_as_errors() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("tempdir");
    let list = "\
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:4
llama_v3.2_1b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:5
llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:16,8-reqs:6
";
    let list_path = dir.path().join("list.txt");
    std::fs::write(&list_path, list).expect("list");
    let out = dir.path().join("out");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args([
            "run",
            "--no-telemetry",
            "--run-id",
            "job-7",
            "--shard",
            "1/1",
            "--test-list",
        ])
        .arg(&list_path)
        .arg("--output-dir")
        .arg(&out)
        .args([
            "--bench-cmd",
            env!("CARGO_BIN_EXE_fake-trtllm-bench"),
            "--tokenizer",
        ])
        .arg(super::e2e::fixture("tokenizers/deepseek"))
        .args(["--models-root", "/nonexistent-models", "--dataset-cache"])
        .arg(dir.path().join("cache"))
        .arg("--baselines")
        .arg(dir.path().join("baselines"))
        .env("FAKE_BENCH_MODE", "hang")
        .env("FAKE_BENCH_MODE_FOR", "llama_v3.2_1b")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("perfgate starts");
    let hung_log =
        out.join("llama_v3.2_1b-bench-pytorch-bfloat16-input_output_len_16_8-reqs_5/perf.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !hung_log.exists() {
        assert!(
            Instant::now() < deadline,
            "the hung benchmark never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = crate::e2e::signal_and_wait(&mut child, libc::SIGTERM, Duration::from_secs(30));
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    let rec = perfgate::shard::ShardRecord::read(&out).expect("shard.json");
    assert_eq!(rec.assigned.len(), 3);
    assert_eq!(rec.finished.len(), 1, "{rec:?}");
    assert!(rec.finished[0].contains("reqs:4]"), "{rec:?}");
    assert_eq!(rec.unfinished().len(), 2);

    std::fs::write(
        out.join("slurm_state.json"),
        r#"{"state": "TIMEOUT", "exit_code": "0:15", "log": "/logs/slurm-7_1.out"}"#,
    )
    .expect("slurm state");
    let merged = dir.path().join("merged");
    let (code, text) = perfgate(&["merge", "--out", s(&merged), s(&out)]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        text.matches("(job TIMEOUT, exit 0:15; log /logs/slurm-7_1.out)")
            .count(),
        2,
        "{text}"
    );
    super::junit_xsd::validate(&merged.join("results.xml")).expect("valid JUnit");
    let xml = std::fs::read_to_string(merged.join("results.xml")).expect("xml");
    assert_eq!(
        xml.matches("<testcase ").count(),
        3,
        "each test once: {xml}"
    );
    assert_eq!(xml.matches("<error ").count(), 2, "{xml}");
    assert!(
        !xml.contains("<failure"),
        "the killed test is an error, not a failure: {xml}"
    );
    assert!(
        xml.contains(r#"tests="3" failures="0" errors="2""#),
        "{xml}"
    );
}
