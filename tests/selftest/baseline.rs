//! Baseline files (`src/gate/baseline.rs`) against upstream's real `base_perf.csv` rows, and
//! `perfgate baseline update|check` end to end: what is taken, what is refused, the patch.

use std::path::{Path, PathBuf};
use std::process::Command;

use perfgate::gate::baseline::update::{
    GateLine, Outcome, UpdateOptions, parse_gate_lines, plan_update, selected, unified_diff,
};
use perfgate::gate::baseline::{
    BaselineError, Baselines, PERFGATE_COLUMNS, UPSTREAM_COLUMNS, baseline_path, prefix_of,
};
use perfgate::record::Verdict;
use perfgate::record::VerdictRecord;
use perfgate::record::metric::{Direction, metric};

const SAMPLE: &str = include_str!("../fixtures/baselines/base_perf_sample.csv");
const TRT: &str = "H100_PCIe-TensorRT-Perf-1";
const PYT: &str = "H100_PCIe-PyTorch-Perf-1";
const LABEL_PYT: &str = "llama_v3.1_8b_instruct-bench-pytorch-float16-maxbs:512-maxnt:2048-input_output_len:128,128-reqs:8192";
const LABEL_AD: &str = "llama_v3.1_8b_instruct-bench-_autodeploy-float16-maxbs:512-maxnt:2048-input_output_len:128,128-reqs:8192";
const LABEL_TRT: &str =
    "llama_v3.1_8b_instruct-bench-float16-maxbs:512-maxnt:2048-input_output_len:128,128-reqs:8192";

fn key(prefix: &str, metric: &str, label: &str) -> String {
    format!(
        "{prefix}/perf/test_perf.py::test_perf_metric_{}[{label}]",
        metric.to_ascii_lowercase()
    )
}

fn sample() -> Baselines {
    Baselines::parse(Path::new("base_perf_sample.csv"), SAMPLE).expect("the sample reads")
}

fn parse_err(text: &str) -> String {
    match Baselines::parse(Path::new("b.csv"), text) {
        Ok(b) => panic!("expected an error, read {} rows", b.len()),
        Err(e) => e.to_string(),
    }
}

const HEADER: &str =
    "network_name,perf_case_name,test_name,threshold,absolute_threshold,metric_type,perf_metric";

/// A row of upstream's columns for `metric` of the pytorch case.
fn upstream_row(metric: &str, value: &str) -> String {
    format!(
        "\"{LABEL_PYT}\",\"{}\",\"test_perf_metric_{}[{LABEL_PYT}]\",-0.1,10,{metric},{value}",
        key(PYT, metric, LABEL_PYT),
        metric.to_ascii_lowercase()
    )
}

#[test]
fn reads_every_row_of_upstreams_sample() {
    let b = sample();
    assert_eq!(b.len(), 12);
    assert!(b.is_upstream_format());
    let build = b
        .get(&key(TRT, "BUILD_TIME", LABEL_TRT))
        .expect("BUILD_TIME row");
    assert_eq!(build.line, 2);
    assert_eq!(build.perf_metric, 143.5976);
    assert_eq!((build.threshold, build.absolute_threshold), (0.1, 30.0));
    assert_eq!(build.network_name, LABEL_TRT);
    assert_eq!(
        build.test_name,
        format!("test_perf_metric_build_time[{LABEL_TRT}]")
    );
    assert_eq!(build.direction, None);
    assert_eq!(build.effective_direction(), Some(Direction::LowerIsBetter));

    // Upstream's signed thresholds are kept as they are: negative for throughputs, ±0.3 for
    // _autodeploy rows.
    let tok = b
        .get(&key(TRT, "TOKEN_THROUGHPUT", LABEL_TRT))
        .expect("TOKEN_THROUGHPUT row");
    assert_eq!((tok.threshold, tok.absolute_threshold), (-0.1, 10.0));
    assert_eq!(tok.effective_direction(), Some(Direction::HigherIsBetter));
    let stored = tok.stored().expect("a comparable baseline");
    assert_eq!(stored.center, 9820.38162);
    assert_eq!((stored.rel_threshold, stored.abs_threshold), (-0.1, 10.0));
    assert_eq!(stored.log_scale, None);
    let ad_seq = b
        .get(&key(PYT, "SEQ_THROUGHPUT", LABEL_AD))
        .expect("autodeploy SEQ_THROUGHPUT");
    assert_eq!((ad_seq.threshold, ad_seq.perf_metric), (-0.3, 38.2071));
    let ad_time = b
        .get(&key(PYT, "INFERENCE_TIME", LABEL_AD))
        .expect("autodeploy INFERENCE_TIME");
    assert_eq!((ad_time.threshold, ad_time.absolute_threshold), (0.3, 50.0));

    // Upstream's 0.0 KV cache size (not found in the log) is read, but is no baseline.
    let kv0 = b
        .get(&key(PYT, "KV_CACHE_SIZE", LABEL_AD))
        .expect("autodeploy KV_CACHE_SIZE");
    assert_eq!(kv0.perf_metric, 0.0);
    assert_eq!(kv0.stored(), None);
    let kv = b
        .get(&key(PYT, "KV_CACHE_SIZE", LABEL_PYT))
        .expect("pytorch KV_CACHE_SIZE");
    assert_eq!(kv.stored().map(|s| s.center), Some(56.19));

    // Every key is a real row, in file order, each with its line.
    let lines: Vec<usize> = b.rows().iter().map(|r| r.line).collect();
    assert_eq!(lines, (2..=13).collect::<Vec<_>>());
    for r in b.rows() {
        assert!(std::ptr::eq(b.get(&r.perf_case_name).expect("indexed"), r));
        assert!(metric(&r.metric_type).is_some(), "{}", r.metric_type);
    }
    assert!(b.get("nope").is_none());
}

#[test]
fn the_fixture_file_reads_from_disk_and_missing_files_are_empty() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/baselines");
    let b = Baselines::read(&dir.join("base_perf_sample.csv")).expect("reads");
    assert_eq!(b.len(), 12);
    assert_eq!(b.text(), Some(SAMPLE));
    let missing = dir.join("no-such-prefix.csv");
    assert!(matches!(
        Baselines::read(&missing),
        Err(BaselineError::Read(e)) if e.is_not_found()
    ));
    let empty = Baselines::read_or_empty(&missing).expect("missing is empty");
    assert!(empty.is_empty() && empty.text().is_none());
}

#[test]
fn paths_and_prefixes() {
    let dir = Path::new("baselines");
    assert_eq!(
        baseline_path(dir, Some(TRT)).expect("ok"),
        dir.join(format!("{TRT}.csv"))
    );
    assert_eq!(
        baseline_path(dir, None).expect("ok"),
        dir.join("default.csv")
    );
    for bad in ["", "../x", "a/b", ".hidden", "a\\b"] {
        let e = baseline_path(dir, Some(bad)).expect_err(bad).to_string();
        assert!(e.contains("plain name"), "{e}");
    }
    assert_eq!(prefix_of(&key(TRT, "BUILD_TIME", "x")), Some(TRT));
    assert_eq!(
        prefix_of("perf/test_perf.py::test_perf_metric_build_time[x]"),
        None
    );
}

#[test]
fn our_schema_round_trips_and_upstream_rows_keep_their_spelling() {
    let b = sample();
    let text = b.to_csv();
    let mut lines = text.lines();
    let header: Vec<&str> = UPSTREAM_COLUMNS
        .iter()
        .chain(&PERFGATE_COLUMNS)
        .copied()
        .collect();
    assert_eq!(lines.next(), Some(header.join(",").as_str()));
    // Upstream's columns come first, spelled as they were (`30`, `0.0`, `-0.1`, quotes):
    // every line is the original plus seven empty provenance columns.
    for (new, old) in lines.zip(SAMPLE.lines().skip(1)) {
        assert_eq!(new, format!("{old},,,,,,,"));
    }
    let again = Baselines::parse(Path::new("x.csv"), &text).expect("our output reads");
    assert!(!again.is_upstream_format());
    assert_eq!(again.rows(), b.rows());
    assert_eq!(again.to_csv(), text, "writing is a fixed point");

    // Every perfgate column, and columns in any order.
    let full = format!(
        "{},direction,unit,log_scale,nights,fingerprint,reason,updated\n{},higher,tokens/s/gpu,0.0123,20,driver=550.54;cuda=12.4,\"re-baselined after #123, checked\",2026-01-31T02:00:00.000Z\n",
        HEADER,
        upstream_row("TOKEN_THROUGHPUT", "8093.6228")
    );
    let b = Baselines::parse(Path::new("full.csv"), &full).expect("reads");
    let row = &b.rows()[0];
    assert_eq!(row.direction, Some(Direction::HigherIsBetter));
    assert_eq!(row.unit.as_deref(), Some("tokens/s/gpu"));
    assert_eq!((row.log_scale, row.nights), (Some(0.0123), Some(20)));
    assert_eq!(
        row.fingerprint_pairs(),
        vec![("driver", "550.54"), ("cuda", "12.4")]
    );
    assert_eq!(
        row.reason.as_deref(),
        Some("re-baselined after #123, checked")
    );
    assert_eq!(row.stored().and_then(|s| s.log_scale), Some((0.0123, 20)));
    assert_eq!(b.to_csv(), full);

    let mut records: Vec<Vec<String>> = full
        .lines()
        .map(|l| {
            csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(l.as_bytes())
                .records()
                .next()
                .expect("a record")
                .expect("csv")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    for r in &mut records {
        r.reverse();
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in &records {
        w.write_record(r).expect("write");
    }
    let reversed = String::from_utf8(w.into_inner().expect("flush")).expect("utf8");
    let b2 = Baselines::parse(Path::new("rev.csv"), &reversed).expect("any column order");
    assert_eq!(b2.rows(), b.rows());
}

#[test]
fn header_problems_are_named() {
    let e = parse_err("network_name,perf_case_name,perf_metric\n");
    assert!(e.starts_with("b.csv:1: missing upstream column(s) test_name, threshold, absolute_threshold, metric_type"), "{e}");
    let e = parse_err(&format!("{HEADER},nigths,owner\n"));
    assert!(
        e.contains("b.csv:1: unknown column(s) `nigths`, `owner`"),
        "{e}"
    );
    let e = parse_err(&format!("{HEADER},perf_metric\n"));
    assert!(e.contains("perf_metric appear twice"), "{e}");
    let e = parse_err("");
    assert!(e.contains("b.csv:1: empty file"), "{e}");
    // A header alone is a valid, empty file.
    let b = Baselines::parse(Path::new("h.csv"), &format!("{HEADER}\n")).expect("reads");
    assert!(b.is_empty());
}

/// One bad row (line 3, after a good one) and the message it must give.
fn row_err(bad: &str) -> String {
    parse_err(&format!(
        "{HEADER}\n{}\n{bad}\n",
        upstream_row("SEQ_THROUGHPUT", "63.2314")
    ))
}

#[test]
fn every_bad_row_is_named_with_file_and_line() {
    let e = row_err(&upstream_row("SEQ_THROUGHPUT", "1.5"));
    assert!(e.contains("b.csv:3: duplicate key"), "{e}");
    assert!(e.contains("is on lines 2 and 3"), "{e}");

    let e = row_err(&upstream_row("TOKEN_THROUGHPUT", "fast"));
    assert!(
        e.contains("b.csv:3: perf_metric is `fast`: expected a number"),
        "{e}"
    );
    for bad in ["nan", "NaN", "inf", "-inf"] {
        let e = row_err(&upstream_row("TOKEN_THROUGHPUT", bad));
        assert!(
            e.contains("b.csv:3: perf_metric is") && e.contains("expected a finite number"),
            "{bad}: {e}"
        );
    }
    let e = row_err(&upstream_row("TOKEN_THROUGHPUT", "-5"));
    assert!(
        e.contains("b.csv:3: perf_metric is -5: TOKEN_THROUGHPUT cannot be negative"),
        "{e}"
    );
    let e = row_err(&upstream_row("TOKEN_THROUGHPUT", "0"));
    assert!(
        e.contains("b.csv:3: perf_metric is 0: TOKEN_THROUGHPUT is a rate or a duration"),
        "{e}"
    );
    let e = row_err(&upstream_row("INFERENCE_TIME", "0.0"));
    assert!(
        e.contains("b.csv:3: perf_metric is 0: INFERENCE_TIME"),
        "{e}"
    );
    let e = row_err(&upstream_row("KV_CACHE_SIZE", "-1"));
    assert!(e.contains("KV_CACHE_SIZE cannot be negative"), "{e}");

    // Unknown metric types, with the closest names.
    let bad =
        upstream_row("TOKEN_THROUGHPUT", "1").replace(",TOKEN_THROUGHPUT,", ",TOKEN_THRUGHPUT,");
    let e = row_err(&bad);
    assert!(e.contains("b.csv:3: metric_type `TOKEN_THRUGHPUT` is not in the metric table (did you mean `TOKEN_THROUGHPUT`"), "{e}");
    // The same file with CRLF line ends names the same line (issue 20 item 11).
    let crlf = parse_err(
        &format!(
            "{HEADER}\n{}\n{bad}\n",
            upstream_row("SEQ_THROUGHPUT", "63.2314")
        )
        .replace('\n', "\r\n"),
    );
    assert!(
        crlf.contains("b.csv:3: metric_type `TOKEN_THRUGHPUT`"),
        "{crlf}"
    );
    // A 2 MB metric_type gets no suggestion work beyond the cap (issue 20 item 2).
    let huge = upstream_row("TOKEN_THROUGHPUT", "1").replace(
        ",TOKEN_THROUGHPUT,",
        &format!(",{},", "Q".repeat(2_000_000)),
    );
    let e = row_err(&huge);
    assert!(
        e.contains("b.csv:3: metric_type `QQQ") && !e.contains("did you mean"),
        "{}",
        &e[..200]
    );
    // ... and the message quotes its start and end, not 2 MB.
    assert!(
        e.len() < 1000 && e.contains("…[1999840 bytes]…"),
        "{} bytes: {}",
        e.len(),
        &e[..e.len().min(400)]
    );
    let bad =
        upstream_row("TOKEN_THROUGHPUT", "1").replace(",TOKEN_THROUGHPUT,", ",token_throughput,");
    let e = row_err(&bad);
    assert!(
        e.contains("did you mean `TOKEN_THROUGHPUT`? names are upper-case"),
        "{e}"
    );

    // metric_type against the key's `test_perf_metric_<type>`.
    let bad =
        upstream_row("TOKEN_THROUGHPUT", "1").replace(",TOKEN_THROUGHPUT,", ",SEQ_THROUGHPUT,");
    let e = row_err(&bad);
    assert!(e.contains("b.csv:3: metric_type `SEQ_THROUGHPUT` does not match perf_case_name's `test_perf_metric_token_throughput`: expected metric_type `TOKEN_THROUGHPUT`"), "{e}");
    let bad = upstream_row("TOKEN_THROUGHPUT", "1").replace(
        "test_perf.py::test_perf_metric_",
        "test_perf.py::test_perf_",
    );
    let e = row_err(&bad);
    assert!(
        e.contains("b.csv:3: perf_case_name `")
            && e.contains(
                "expected `<prefix>/perf/test_perf.py::test_perf_metric_<type>[<label>]`"
            ),
        "{e}"
    );
    let bad = upstream_row("TOKEN_THROUGHPUT", "1").replacen(LABEL_PYT, "other-label", 1);
    let e = row_err(&bad);
    assert!(
        e.contains("b.csv:3: network_name `other-label` does not match"),
        "{e}"
    );

    // Thresholds must be numbers; any non-finite one is refused.
    let bad = upstream_row("TOKEN_THROUGHPUT", "1").replace(",-0.1,10,", ",-0.1,inf,");
    let e = row_err(&bad);
    assert!(e.contains("b.csv:3: absolute_threshold is `inf`"), "{e}");
    let bad = upstream_row("TOKEN_THROUGHPUT", "1").replace(",-0.1,10,", ",,10,");
    let e = row_err(&bad);
    assert!(
        e.contains("b.csv:3: threshold is ``: expected a number (it is empty)"),
        "{e}"
    );

    let e = row_err("\"a\",\"b\"");
    assert!(
        e.contains("b.csv:3: 2 fields, but the header has 7 columns"),
        "{e}"
    );
}

/// A row in perfgate's schema with the provenance columns given.
fn ours(metric: &str, value: &str, extra: &str) -> String {
    format!(
        "{HEADER},direction,unit,log_scale,nights,fingerprint,reason,updated\n{}\n{},{extra}\n",
        upstream_row("SEQ_THROUGHPUT", "63.2314") + ",,,,,,,",
        upstream_row(metric, value)
    )
}

#[test]
fn bad_provenance_is_named_with_file_and_line() {
    let e = parse_err(&ours("TOKEN_THROUGHPUT", "1", "lower,,,,,,"));
    assert!(e.contains("b.csv:3: direction `lower` contradicts the metric table: TOKEN_THROUGHPUT is higher-is-better"), "{e}");
    let e = parse_err(&ours("TOKEN_THROUGHPUT", "1", "up,,,,,,"));
    assert!(
        e.contains("b.csv:3: direction is `up`: expected `higher` or `lower`"),
        "{e}"
    );
    let e = parse_err(&ours("TOKEN_THROUGHPUT", "1", ",tokens/s,,,,,"));
    assert!(e.contains("b.csv:3: unit `tokens/s` contradicts the metric table: TOKEN_THROUGHPUT is stored in `tokens/s/gpu`"), "{e}");
    let e = parse_err(&ours("TOKEN_THROUGHPUT", "1", ",,0.01,,,,"));
    assert!(e.contains("b.csv:3: log_scale needs nights"), "{e}");
    let e = parse_err(&ours("TOKEN_THROUGHPUT", "1", ",,-0.01,5,,,"));
    assert!(e.contains("b.csv:3: log_scale is -0.01"), "{e}");
    let e = parse_err(&ours("TOKEN_THROUGHPUT", "1", ",,,many,,,"));
    assert!(e.contains("b.csv:3: nights is `many`"), "{e}");
    let e = parse_err(&ours("TOKEN_THROUGHPUT", "1", ",,,,driver,,"));
    assert!(
        e.contains("b.csv:3: fingerprint `driver`: `driver` is not `key=value`"),
        "{e}"
    );
    let e = parse_err(&ours("TOKEN_THROUGHPUT", "1", ",,,,,,yesterday"));
    assert!(
        e.contains("b.csv:3: updated `yesterday`: expected an RFC 3339 time"),
        "{e}"
    );
    // Several problems of one file are all reported.
    let e = parse_err(&ours("TOKEN_THROUGHPUT", "0", "lower,ms,,,,,"));
    assert_eq!(e.lines().count(), 3, "{e}");
    assert!(e.lines().all(|l| l.starts_with("b.csv:3: ")), "{e}");
    // Upstream's wrong sign is not an error: direction comes from the table.
    let b = Baselines::parse(
        Path::new("ok.csv"),
        &ours(
            "KV_CACHE_SIZE",
            "0.0",
            "higher,GiB,0.02,12,gpu=H100,why,2026-01-31T02:00:00Z",
        ),
    )
    .expect("valid");
    assert_eq!(b.len(), 2);
}

// --- update ---------------------------------------------------------------------------------

struct Rec {
    prefix: &'static str,
    label: &'static str,
    metric: &'static str,
    verdict: Verdict,
    value: Option<f64>,
    change_pct: Option<f64>,
}

fn rec(
    prefix: &'static str,
    metric: &'static str,
    verdict: Verdict,
    value: f64,
    change: f64,
) -> Rec {
    Rec {
        prefix,
        label: LABEL_PYT,
        metric,
        verdict,
        value: Some(value),
        change_pct: Some(change),
    }
}

fn verdict_record(r: &Rec) -> VerdictRecord {
    let def = metric(r.metric).expect("known metric");
    VerdictRecord {
        run_id: "run-1".into(),
        test_id: format!("{}/perf/test_perf.py::test_perf[{}]", r.prefix, r.label),
        perf_case_name: key(r.prefix, r.metric, r.label),
        network_name: r.label.into(),
        test_name: format!(
            "test_perf_metric_{}[{}]",
            r.metric.to_ascii_lowercase(),
            r.label
        ),
        case: None,
        step: "throughput".into(),
        metric: r.metric.into(),
        unit: def.unit.symbol().into(),
        direction: def.direction,
        gated: true,
        verdict: r.verdict,
        value: r.value,
        reps: r.value.into_iter().collect(),
        baseline: None,
        change_pct: r.change_pct,
        mde_pct: Some(2.0),
        noise_pct: Some(1.25),
        source: "history".into(),
        history_nights: 14,
        roofline_pct: None,
        mfu_pct: None,
        mbu_pct: None,
        threshold: None,
        absolute_threshold: None,
        fingerprint: "cuda=12.9;driver=575.57".into(),
        reruns: 0,
        explanation: String::new(),
        evidence: Vec::new(),
    }
}

fn gate_jsonl(recs: &[Rec]) -> String {
    recs.iter()
        .map(|r| serde_json::to_string(&verdict_record(r)).expect("json") + "\n")
        .collect()
}

/// The pytorch/_autodeploy rows (upstream's base_perf_pytorch.csv) as one prefix's file.
fn pytorch_file() -> String {
    let mut out = String::new();
    for (i, l) in SAMPLE.lines().enumerate() {
        if i == 0 || l.contains(&format!("\"{PYT}/")) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The nightly of the tests: an improvement, a new metric, a regression, an untrusted value
/// and a pass.
fn nightly() -> Vec<Rec> {
    vec![
        rec(PYT, "TOKEN_THROUGHPUT", Verdict::Improved, 8500.5, 5.03),
        rec(PYT, "FIRST_TOKEN_TIME", Verdict::New, 42.5, f64::NAN),
        rec(PYT, "SEQ_THROUGHPUT", Verdict::Fail, 55.0, -13.02),
        rec(PYT, "INFERENCE_TIME", Verdict::Invalid, 1.0, -99.0),
        Rec {
            label: LABEL_AD,
            ..rec(PYT, "TOKEN_THROUGHPUT", Verdict::Pass, 4900.0, 0.19)
        },
    ]
}

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    /// A repository with `baselines/<PYT>.csv` (upstream's pytorch file) and `out/gate.jsonl`.
    fn new(recs: &[Rec]) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("baselines")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("out")).expect("mkdir");
        std::fs::write(
            dir.path().join(format!("baselines/{PYT}.csv")),
            pytorch_file(),
        )
        .expect("write");
        std::fs::write(dir.path().join("out/gate.jsonl"), gate_jsonl(recs)).expect("write");
        Workspace { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn file(&self) -> PathBuf {
        self.path(&format!("baselines/{PYT}.csv"))
    }

    fn read(&self) -> Baselines {
        Baselines::read(&self.file()).expect("the written file reads")
    }

    fn perfgate(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_perfgate"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("perfgate runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn update(&self, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec![
            "baseline",
            "update",
            "--from",
            "out",
            "--reason",
            "nightly 2026-01-31, PR #4242",
        ];
        args.extend_from_slice(extra);
        self.perfgate(&args)
    }
}

fn git(dir: &Path, args: &[&str]) -> (bool, String) {
    match Command::new("git").args(args).current_dir(dir).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

fn git_available() -> bool {
    git(Path::new("."), &["--version"]).0
}

#[test]
fn update_takes_new_and_improved_and_refuses_a_regression_loudly() {
    let ws = Workspace::new(&nightly());
    let before = ws.read();
    let (code, stdout, stderr) = ws.update(&[]);
    assert_eq!(
        code, 1,
        "a refused regression fails the command\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("1 regression(s) left out"), "{stderr}");
    assert!(
        stdout.contains("1 updated, 1 added, 1 refused, 1 skipped, 1 kept"),
        "{stdout}"
    );
    assert!(
        stdout.contains("REFUSED  FAIL        Δ -13.02%"),
        "{stdout}"
    );
    assert!(
        stdout.contains("INVALID: an untrusted measurement is never a baseline"),
        "{stdout}"
    );

    // The rest was written: the improvement replaced in place, the new metric appended.
    let after = ws.read();
    assert!(!after.is_upstream_format());
    assert_eq!(after.len(), before.len() + 1);
    let keys = |b: &Baselines| -> Vec<String> {
        b.rows().iter().map(|r| r.perf_case_name.clone()).collect()
    };
    assert_eq!(
        keys(&after)[..before.len()],
        keys(&before)[..],
        "rows stay in place"
    );
    let tok = after
        .get(&key(PYT, "TOKEN_THROUGHPUT", LABEL_PYT))
        .expect("row");
    assert_eq!(tok.perf_metric, 8500.5);
    assert_eq!(
        (tok.threshold, tok.absolute_threshold),
        (-0.1, 10.0),
        "thresholds kept"
    );
    assert_eq!(tok.direction, Some(Direction::HigherIsBetter));
    assert_eq!(tok.unit.as_deref(), Some("tokens/s/gpu"));
    assert_eq!((tok.log_scale, tok.nights), (Some(0.0125), Some(14)));
    assert_eq!(tok.fingerprint.as_deref(), Some("cuda=12.9;driver=575.57"));
    assert_eq!(tok.reason.as_deref(), Some("nightly 2026-01-31, PR #4242"));
    assert!(tok.updated.as_deref().is_some_and(|u| u.starts_with("20")));
    let new = after.rows().last().expect("appended");
    assert_eq!(new.perf_case_name, key(PYT, "FIRST_TOKEN_TIME", LABEL_PYT));
    assert_eq!(
        (new.threshold, new.absolute_threshold),
        (0.1, 50.0),
        "from the metric table"
    );
    assert_eq!(new.perf_metric, 42.5);
    // Refused, invalid and passing rows are untouched.
    for (m, label) in [
        ("SEQ_THROUGHPUT", LABEL_PYT),
        ("INFERENCE_TIME", LABEL_PYT),
        ("TOKEN_THROUGHPUT", LABEL_AD),
    ] {
        let k = key(PYT, m, label);
        assert_eq!(after.get(&k), before.get(&k), "{k}");
    }
    let patch = std::fs::read_to_string(ws.path("out/perf_patch.patch")).expect("patch written");
    assert!(
        patch.contains(&format!("--- a/baselines/{PYT}.csv")),
        "{patch}"
    );
    assert!(
        patch.contains(&format!("+++ b/baselines/{PYT}.csv")),
        "{patch}"
    );

    // --accept-regressions takes the FAIL; INVALID is still never taken.
    let (code, stdout, stderr) = ws.update(&["--accept-regressions"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let after = ws.read();
    let seq = after
        .get(&key(PYT, "SEQ_THROUGHPUT", LABEL_PYT))
        .expect("row");
    assert_eq!(seq.perf_metric, 55.0);
    let inf = after
        .get(&key(PYT, "INFERENCE_TIME", LABEL_PYT))
        .expect("row");
    assert_eq!(inf.perf_metric, 129555.827);
}

#[test]
fn only_selects_and_refreshes_a_pass_but_never_an_invalid() {
    let ws = Workspace::new(&nightly());
    let (code, stdout, stderr) = ws.update(&[
        "--only",
        "token_throughput\\[.*_autodeploy|inference_time\\[llama_v3.1_8b_instruct-bench-pytorch",
        "--accept-regressions",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 updated, 0 added, 0 refused, 1 skipped, 0 kept"),
        "{stdout}"
    );
    let after = ws.read();
    let ad = after
        .get(&key(PYT, "TOKEN_THROUGHPUT", LABEL_AD))
        .expect("row");
    assert_eq!(ad.perf_metric, 4900.0);
    assert_eq!(
        (ad.threshold, ad.absolute_threshold),
        (-0.3, 10.0),
        "the _autodeploy band is kept"
    );
    let inf = after
        .get(&key(PYT, "INFERENCE_TIME", LABEL_PYT))
        .expect("row");
    assert_eq!(inf.perf_metric, 129555.827, "INVALID is never taken");
    // Records --only does not match are not even considered: the improvement stays out.
    let tok = after
        .get(&key(PYT, "TOKEN_THROUGHPUT", LABEL_PYT))
        .expect("row");
    assert_eq!(tok.perf_metric, 8093.6228);
    assert_eq!(after.len(), 8);

    let (code, _, stderr) = ws.update(&["--only", "no-such-case"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no records match --only `no-such-case`"),
        "{stderr}"
    );
    let (code, _, stderr) = ws.update(&["--only", "("]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--only is not a valid regex"), "{stderr}");
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let ws = Workspace::new(&nightly());
    let original = std::fs::read(ws.file()).expect("read");
    let (code, stdout, _) = ws.update(&["--dry-run"]);
    assert_eq!(code, 1, "a dry run reports refusals the same way");
    assert!(
        stdout.contains(&format!("--- a/baselines/{PYT}.csv")),
        "{stdout}"
    );
    assert!(
        stdout.contains("+\"llama_v3.1_8b_instruct-bench-pytorch"),
        "{stdout}"
    );
    assert!(stdout.contains("dry run: nothing written"), "{stdout}");
    assert_eq!(std::fs::read(ws.file()).expect("read"), original);
    assert!(!ws.path("out/perf_patch.patch").exists());
    let leftovers: Vec<_> = std::fs::read_dir(ws.path("baselines"))
        .expect("ls")
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary files");
}

#[test]
fn the_patch_applies_with_git_to_a_checkout_of_the_old_file() {
    if !git_available() {
        eprintln!("git not available: skipped");
        return;
    }
    let ws = Workspace::new(&nightly());
    // The workspace is the repository the patch is relative to.
    assert!(git(ws.dir.path(), &["init", "-q"]).0);
    let (code, stdout, stderr) = ws.update(&["--accept-regressions"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let patch = ws.path("out/perf_patch.patch");
    let new_text = std::fs::read_to_string(ws.file()).expect("read");

    // A second checkout with the old file: the patch applies from its root.
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(other.path().join("baselines")).expect("mkdir");
    std::fs::write(
        other.path().join(format!("baselines/{PYT}.csv")),
        pytorch_file(),
    )
    .expect("write");
    assert!(git(other.path(), &["init", "-q"]).0);
    let patch_arg = patch.to_string_lossy().into_owned();
    let (ok, out) = git(other.path(), &["apply", "--check", &patch_arg]);
    assert!(ok, "git apply --check: {out}");
    let (ok, out) = git(other.path(), &["apply", &patch_arg]);
    assert!(ok, "git apply: {out}");
    assert_eq!(
        std::fs::read_to_string(other.path().join(format!("baselines/{PYT}.csv"))).expect("read"),
        new_text
    );

    // patch(1) reads it too, where installed.
    if Command::new("patch").arg("--version").output().is_ok() {
        let third = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(third.path().join("baselines")).expect("mkdir");
        std::fs::write(
            third.path().join(format!("baselines/{PYT}.csv")),
            pytorch_file(),
        )
        .expect("write");
        let o = Command::new("patch")
            .args(["-p1", "--dry-run", "-i", &patch_arg])
            .current_dir(third.path())
            .output()
            .expect("patch runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    }
}

#[test]
fn a_first_baseline_file_is_created_and_its_patch_creates_it() {
    let ws = Workspace::new(&[
        rec(TRT, "TOKEN_THROUGHPUT", Verdict::New, 9900.0, f64::NAN),
        Rec {
            label: LABEL_TRT,
            ..rec(TRT, "BUILD_TIME", Verdict::New, 140.25, f64::NAN)
        },
    ]);
    let (code, stdout, stderr) = ws.update(&[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("0 updated, 2 added"), "{stdout}");
    let created = ws.path(&format!("baselines/{TRT}.csv"));
    let b = Baselines::read(&created).expect("created");
    assert_eq!(b.len(), 2);
    let patch = std::fs::read_to_string(ws.path("out/perf_patch.patch")).expect("patch");
    assert!(patch.contains("--- /dev/null"), "{patch}");
    if git_available() {
        let other = tempfile::tempdir().expect("tempdir");
        assert!(git(other.path(), &["init", "-q"]).0);
        let arg = ws
            .path("out/perf_patch.patch")
            .to_string_lossy()
            .into_owned();
        let (ok, out) = git(other.path(), &["apply", &arg]);
        assert!(ok, "git apply: {out}");
        assert_eq!(
            std::fs::read_to_string(other.path().join(format!("baselines/{TRT}.csv")))
                .expect("created by the patch"),
            std::fs::read_to_string(&created).expect("read")
        );
    }
    // `check` over the directory reads both files: the new one and upstream's.
    let (code, stdout, _) = ws.perfgate(&["baseline", "check", "--baselines", "baselines"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&format!("{TRT}.csv: 2 rows (perfgate format)")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{PYT}.csv: 8 rows (upstream base_perf.csv format)"
        )),
        "{stdout}"
    );
}

#[test]
fn update_refuses_bad_input_and_writes_nothing() {
    let ws = Workspace::new(&nightly());
    let original = std::fs::read(ws.file()).expect("read");
    let (code, _, stderr) = ws.perfgate(&["baseline", "update", "--from", "out", "--reason", "  "]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--reason is empty"), "{stderr}");
    let (code, _, stderr) = ws.update(&["--prefix", TRT]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!(
            "--prefix `{TRT}` but the records are of prefix `{PYT}`"
        )),
        "{stderr}"
    );

    // A bad line of gate.jsonl is named.
    let mut text = gate_jsonl(&nightly());
    text.push_str("{\"run_id\": 1}\n");
    std::fs::write(ws.path("out/gate.jsonl"), &text).expect("write");
    let (code, _, stderr) = ws.update(&[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("out/gate.jsonl:6: not a verdict record"),
        "{stderr}"
    );
    // Two records of one key.
    let twice = gate_jsonl(&[
        rec(PYT, "TOKEN_THROUGHPUT", Verdict::Improved, 8500.0, 5.0),
        rec(PYT, "TOKEN_THROUGHPUT", Verdict::Improved, 8600.0, 6.0),
    ]);
    std::fs::write(ws.path("out/gate.jsonl"), &twice).expect("write");
    let (code, _, stderr) = ws.update(&[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("out/gate.jsonl:2: `") && stderr.contains("already has a record on line 1"),
        "{stderr}"
    );
    // Records of two prefixes cannot go to one file.
    let mixed = gate_jsonl(&[
        rec(PYT, "TOKEN_THROUGHPUT", Verdict::Improved, 8500.0, 5.0),
        rec(TRT, "TOKEN_THROUGHPUT", Verdict::New, 9900.0, f64::NAN),
    ]);
    std::fs::write(ws.path("out/gate.jsonl"), &mixed).expect("write");
    let (code, _, stderr) = ws.update(&[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("several test prefixes"), "{stderr}");
    // A record that cannot be a baseline (a throughput of 0) stops the whole update.
    let zero = gate_jsonl(&[
        rec(PYT, "TOKEN_THROUGHPUT", Verdict::Improved, 8500.0, 5.0),
        rec(PYT, "SEQ_THROUGHPUT", Verdict::Improved, 0.0, 5.0),
    ]);
    std::fs::write(ws.path("out/gate.jsonl"), &zero).expect("write");
    let (code, _, stderr) = ws.update(&[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("out/gate.jsonl:2: `") && stderr.contains("perf_metric is 0"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(ws.file()).expect("read"), original);
    assert!(!ws.path("out/perf_patch.patch").exists());
}

#[test]
fn check_reports_problems_and_fails() {
    let ws = Workspace::new(&[]);
    let bad = ws.path("baselines/bad.csv");
    std::fs::write(
        &bad,
        format!("{HEADER}\n{}\n", upstream_row("TOKEN_THROUGHPUT", "nan")),
    )
    .expect("write");
    let (code, stdout, stderr) = ws.perfgate(&[
        "baseline",
        "check",
        "--file",
        "baselines/bad.csv",
        "--file",
        &format!("baselines/{PYT}.csv"),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("baselines/bad.csv:2: perf_metric is `nan`"),
        "{stderr}"
    );
    assert!(stdout.contains(&format!("{PYT}.csv: 8 rows")), "{stdout}");
}

// --- the library API directly ----------------------------------------------------------------

fn lines(recs: &[Rec]) -> Vec<GateLine> {
    parse_gate_lines(Path::new("gate.jsonl"), &gate_jsonl(recs)).expect("records")
}

fn opts(accept: bool) -> UpdateOptions<'static> {
    UpdateOptions {
        only: None,
        reason: "test",
        accept_regressions: accept,
        updated: "2026-01-31T02:00:00.000Z",
    }
}

#[test]
fn unknown_is_taken_only_when_named_and_not_worse() {
    let current = Baselines::parse(Path::new("p.csv"), &pytorch_file()).expect("reads");
    let recs = lines(&[
        rec(PYT, "TOKEN_THROUGHPUT", Verdict::Unknown, 8200.0, 1.3),
        rec(PYT, "SEQ_THROUGHPUT", Verdict::Unknown, 60.0, -5.1),
        Rec {
            change_pct: None,
            ..rec(PYT, "INFERENCE_TIME", Verdict::Unknown, 120000.0, 0.0)
        },
        rec(PYT, "KV_CACHE_SIZE", Verdict::EnvChanged, 60.0, 6.8),
    ]);
    let all = selected(&recs, None);
    let plan = plan_update(&current, &all, &opts(false), Path::new("gate.jsonl")).expect("plan");
    assert_eq!(plan.count(Outcome::Kept), 3);
    assert_eq!(
        plan.count(Outcome::Refused),
        1,
        "ENV_CHANGED needs --accept-regressions"
    );

    let re = regex::Regex::new("pytorch").expect("regex");
    let named = UpdateOptions {
        only: Some(&re),
        ..opts(false)
    };
    let plan = plan_update(
        &current,
        &selected(&recs, Some(&re)),
        &named,
        Path::new("gate.jsonl"),
    )
    .expect("plan");
    let outcomes: Vec<Outcome> = plan.decisions.iter().map(|d| d.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Updated,
            Outcome::Refused,
            Outcome::Refused,
            Outcome::Refused
        ],
        "better → taken; worse or unknown change → a possible regression"
    );
    let plan = plan_update(
        &current,
        &selected(&recs, Some(&re)),
        &UpdateOptions {
            accept_regressions: true,
            ..named.clone()
        },
        Path::new("gate.jsonl"),
    )
    .expect("plan");
    assert_eq!(plan.count(Outcome::Updated), 4);
    assert!(!plan.refused_any());
}

#[test]
fn noise_from_a_stored_baseline_keeps_its_nights() {
    let text = format!(
        "{HEADER},log_scale,nights\n{},0.02,25\n",
        upstream_row("TOKEN_THROUGHPUT", "8000")
    );
    let current = Baselines::parse(Path::new("p.csv"), &text).expect("reads");
    let mut r = verdict_record(&rec(
        PYT,
        "TOKEN_THROUGHPUT",
        Verdict::Improved,
        8600.0,
        7.5,
    ));
    r.source = "baseline".into();
    r.history_nights = 0;
    r.noise_pct = Some(2.0);
    let line = GateLine {
        line: 1,
        record: r.clone(),
    };
    let plan = plan_update(&current, &[&line], &opts(false), Path::new("g")).expect("plan");
    let row = &plan.baselines.rows()[0];
    assert_eq!((row.log_scale, row.nights), (Some(0.02), Some(25)));
    // No noise in the record: the old row's stays.
    r.noise_pct = None;
    let line = GateLine { line: 1, record: r };
    let plan = plan_update(&current, &[&line], &opts(false), Path::new("g")).expect("plan");
    let row = &plan.baselines.rows()[0];
    assert_eq!((row.log_scale, row.nights), (Some(0.02), Some(25)));
    assert_eq!(row.stored().map(|s| s.center), Some(8600.0));
}

#[test]
fn a_record_without_a_value_is_skipped() {
    let current = Baselines::empty("p.csv");
    let recs = lines(&[Rec {
        value: None,
        ..rec(PYT, "TOKEN_THROUGHPUT", Verdict::New, 1.0, 0.0)
    }]);
    let plan = plan_update(
        &current,
        &selected(&recs, None),
        &opts(false),
        Path::new("g"),
    )
    .expect("plan");
    assert_eq!(plan.count(Outcome::Skipped), 1);
    assert!(plan.baselines.is_empty());
}

#[test]
fn diffs_are_empty_without_a_change() {
    assert_eq!(unified_diff(Some("a\n"), "a\n", "x.csv"), "");
    let d = unified_diff(Some("a\nb\n"), "a\nc\n", "baselines/x.csv");
    assert!(d.starts_with("diff --git a/baselines/x.csv b/baselines/x.csv\n--- a/baselines/x.csv\n+++ b/baselines/x.csv\n@@"), "{d}");
    assert!(d.contains("-b\n+c\n"), "{d}");
    let d = unified_diff(None, "a\n", "x.csv");
    assert!(
        d.contains("new file mode 100644\n--- /dev/null\n+++ b/x.csv\n@@ -0,0 +1 @@\n+a\n"),
        "{d}"
    );
}
