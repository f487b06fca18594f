//! `perfgate dashboard` in a real browser: a small history built through the History API
//! (eight nights, a regression on the last, an acknowledged change point, a sweep, a name that
//! does not parse, markup in the data), the site generated, and headless Chromium's rendered
//! DOM checked (row order, SVG paths, filters, escaping, no script errors). Chromium is
//! required: without it the test fails with the install command.

use std::path::{Path, PathBuf};
use std::process::Command;

use perfgate::dashboard::{chart_number_slow, pareto_frontier, push_chart_number, robust_band};
use perfgate::history::{History, MeasurementRow, RunMeta};
use perfgate::record::State;
use perfgate::record::Verdict;
use perfgate::record::VerdictRecord;
use perfgate::record::metric::Direction;
use proptest::prelude::*;

const PREFIX: &str = "H100_80GB_HBM3";
const NIGHTS: usize = 8;

fn chromium() -> PathBuf {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!(
        "the dashboard test needs a headless Chromium: apt-get install -y --no-install-recommends chromium"
    );
}

/// Runs headless Chromium on a file; returns (stdout, stderr).
fn browse(page: &Path, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--window-size=1400,1000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!("file://{}", page.display()));
    let out = Command::new(chromium())
        .args(&args)
        .output()
        .expect("run chromium");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "chromium failed on {}:\n{stderr}",
        page.display()
    );
    (stdout, stderr)
}

/// The rendered DOM of a page, checked for script errors (the page's own recorder and
/// Chromium's console log).
fn dom(page: &Path) -> String {
    let (dom, log) = browse(page, &["--dump-dom"]);
    assert!(
        dom.contains("data-rendered=\"1\""),
        "{} did not render:\n{dom}",
        page.display()
    );
    assert!(
        dom.contains("data-errors=\"\""),
        "{}: script errors recorded: {}",
        page.display(),
        attr(&dom, "data-errors").unwrap_or_default()
    );
    for line in log.lines() {
        assert!(
            !line.contains("Uncaught") && !line.contains(":CONSOLE("),
            "{}: console output: {line}",
            page.display()
        );
    }
    dom
}

fn attr(dom: &str, name: &str) -> Option<String> {
    let at = dom.find(&format!("{name}=\""))? + name.len() + 2;
    Some(dom[at..].split('"').next()?.to_string())
}

/// Every value of attribute `name` in document order.
fn attrs(dom: &str, name: &str) -> Vec<String> {
    let key = format!(" {name}=\"");
    dom.match_indices(&key)
        .filter_map(|(i, _)| dom[i + key.len()..].split('"').next().map(String::from))
        .collect()
}

fn sweep_label(con: u32) -> String {
    format!("llama_v3.1_8b-bench-pytorch-float8-input_output_len:128,128-con:{con}")
}

/// Cases and what their gated verdict is on the last night.
fn cases() -> Vec<(String, Verdict)> {
    vec![
        (sweep_label(1), Verdict::Pass),
        (sweep_label(4), Verdict::Fail),
        (sweep_label(16), Verdict::Improved),
        (
            "mixtral_8x7b_v0.1-bench-bfloat16-input_output_len:128,128".into(),
            Verdict::Unknown,
        ),
        // Not a name of the grammar: filed under "other", never an error.
        ("not<a>&name".into(), Verdict::New),
    ]
}

fn perf_case_name(label: &str, metric: &str) -> String {
    format!(
        "{PREFIX}/perf/test_perf.py::test_perf_metric_{}[{label}]",
        metric.to_ascii_lowercase()
    )
}

fn build_history(path: &Path) {
    let mut h = History::open(path).expect("open history");
    for night in 0..NIGHTS {
        let run_id = format!("run-{night}");
        h.begin_run(&RunMeta {
            run_id: run_id.clone(),
            started: format!("2025-06-{:02}T02:00:00Z", night + 1),
            host: "node-<7>".into(),
            test_prefix: Some(PREFIX.into()),
            fingerprint: "gpu=H100".into(),
            env_json: r#"{"driver":"575.57","note":"<script>alert(1)</script>"}"#.into(),
            revision: Some(format!("<b>rev{night}</b>")),
            branch: Some("main".into()),
            build_url: Some("https://ci.example/job/1".into()),
            imported_from: None,
        })
        .expect("begin");
        let last = night == NIGHTS - 1;
        let mut rows = Vec::new();
        let mut verdicts = Vec::new();
        for (c, (label, last_verdict)) in cases().into_iter().enumerate() {
            let con: f64 = [1.0, 4.0, 16.0, 8.0, 2.0][c];
            let jitter = 1.0 + 0.004 * ((night * 7 + c) % 5) as f64;
            // con:4 regresses on the last night; con:16 steps up 30% from night 4 (a level
            // shift the change-point detection finds).
            let seq = 10.0
                * con.sqrt()
                * jitter
                * if last && c == 1 { 0.8 } else { 1.0 }
                * if c == 2 && night >= 4 { 1.3 } else { 1.0 };
            let metrics = [
                ("SEQ_THROUGHPUT", seq),
                ("PER_USER_OUTPUT_THROUGHPUT", 200.0 / con.sqrt()),
                ("PER_GPU_OUTPUT_THROUGHPUT", 150.0 * con.sqrt()),
                ("GPU_POWER_MEAN", 600.0 + night as f64),
            ];
            for (metric, value) in metrics {
                rows.push(MeasurementRow {
                    test_id: format!("{PREFIX}/perf/test_perf.py::test_perf[{label}]"),
                    perf_case_name: perf_case_name(&label, metric),
                    network_name: label.clone(),
                    case: None,
                    step: "throughput".into(),
                    metric: metric.into(),
                    repetition: 1,
                    value,
                    state: State::Valid,
                });
            }
            let verdict = if last { last_verdict } else { Verdict::Pass };
            verdicts.push(VerdictRecord {
                run_id: run_id.clone(),
                test_id: format!("{PREFIX}/perf/test_perf.py::test_perf[{label}]"),
                perf_case_name: perf_case_name(&label, "SEQ_THROUGHPUT"),
                network_name: label.clone(),
                test_name: String::new(),
                case: None,
                step: "throughput".into(),
                metric: "SEQ_THROUGHPUT".into(),
                unit: "req/s".into(),
                direction: Direction::HigherIsBetter,
                gated: true,
                verdict,
                value: Some(seq),
                reps: vec![seq],
                baseline: Some(10.0 * con.sqrt()),
                change_pct: Some((seq / (10.0 * con.sqrt()) - 1.0) * 100.0),
                mde_pct: Some(2.0),
                noise_pct: Some(0.5),
                source: "history".into(),
                history_nights: night,
                roofline_pct: None,
                mfu_pct: None,
                mbu_pct: None,
                threshold: None,
                absolute_threshold: None,
                fingerprint: "gpu=H100".into(),
                reruns: 0,
                explanation: format!("{verdict} explained: <i>markup</i> stays text"),
                evidence: vec![],
            });
        }
        h.record_measurements(&run_id, &rows).expect("measurements");
        h.record_verdicts(&verdicts).expect("verdicts");
        h.finish_run(&run_id, &format!("2025-06-{:02}T03:00:00Z", night + 1))
            .expect("finish");
    }
    h.acknowledge(
        &perf_case_name(&sweep_label(1), "SEQ_THROUGHPUT"),
        "SEQ_THROUGHPUT",
        "new kernel <fast>",
        "run-2",
    )
    .expect("acknowledge");
}

fn dashboard(history: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(["dashboard", "--history"])
        .arg(history)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run perfgate dashboard")
}

#[test]
fn dashboard_renders_in_chromium() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.sqlite");
    build_history(&history);
    let site = dir.path().join("site");
    let out = dashboard(&history, &site);
    assert!(
        out.status.success(),
        "perfgate dashboard failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Overview: the last night's cases, worst first.
    let index = dom(&site.join("index.html"));
    let statuses = attrs(&index, "data-status");
    let order = ["FAIL", "UNKNOWN", "NEW", "IMPROVED", "PASS"];
    let expected: Vec<&str> = order
        .iter()
        .flat_map(|o| {
            cases()
                .into_iter()
                .filter(move |(_, v)| v.as_str() == *o)
                .map(move |_| *o)
        })
        .collect();
    assert_eq!(statuses, expected, "rows in verdict order");
    for f in [
        "f-model",
        "f-prefix",
        "f-backend",
        "f-precision",
        "f-status",
    ] {
        assert!(index.contains(&format!("id=\"{f}\"")), "filter {f} missing");
    }
    assert!(index.contains("<option value=\"other\">other</option>"));
    assert!(index.contains("<option value=\"llama_v3.1_8b\">llama_v3.1_8b</option>"));
    assert!(
        index.contains("&lt;i&gt;markup&lt;/i&gt;"),
        "explanations are text"
    );
    assert!(!index.contains("<i>markup</i>"));
    assert!(index.contains("not&lt;a&gt;&amp;name"));

    // The FAIL case's page: charts, band, FAIL marker, drill-down of the last night.
    let cases_shown = attrs(&index, "data-case");
    let fail_case = &cases_shown[0];
    let case = dom(&site.join(format!("case/{fail_case}.html")));
    assert!(case.contains(&sweep_label(4)));
    assert!(case.contains("class=\"value\" d=\"M"), "value path");
    assert!(case.contains("class=\"baseline\" d=\"M"), "baseline path");
    assert!(case.contains("class=\"band\" d=\"M"), "noise band");
    assert_eq!(
        case.matches("class=\"fail-mark\"").count(),
        1,
        "one FAIL night"
    );
    assert!(
        case.contains("data-metric=\"GPU_POWER_MEAN\""),
        "telemetry chart"
    );
    assert!(case.contains("run-7"), "drill-down shows the last run");
    assert!(case.contains("&lt;b&gt;rev7&lt;/b&gt;"), "revision as text");
    assert!(!case.contains("<b>rev7</b>"));
    assert!(
        case.contains("results.jsonl"),
        "says where the command and log are"
    );

    // The acknowledged change point on the con:1 case.
    let pass_case = &cases_shown[cases_shown.len() - 1];
    let ack = dom(&site.join(format!("case/{pass_case}.html")));
    assert!(
        ack.contains("class=\"acked\""),
        "acknowledged change point drawn"
    );

    // The detected level shift of con:16 (the IMPROVED row).
    let shifted = dom(&site.join(format!("case/{}.html", cases_shown[3])));
    assert!(shifted.contains(&sweep_label(16)));
    assert_eq!(
        shifted.matches("class=\"detected\"").count(),
        1,
        "one detected change point"
    );
    assert!(
        !case.contains("class=\"detected\""),
        "a one-night drop is no change point"
    );

    // Sweeps: the three llama concurrencies, all on the frontier (per-user falls as per-GPU rises).
    let sweeps = dom(&site.join("sweeps.html"));
    assert!(sweeps.contains("class=\"frontier\" d=\"M"), "frontier path");
    assert_eq!(sweeps.matches("class=\"sweep-pt on\"").count(), 3);

    // Screenshots (docs/dashboard.png is one): PNGs of the overview and the FAIL case.
    let shots = std::env::var_os("PERFGATE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    for (name, page) in [
        ("dashboard.png", site.join("index.html")),
        (
            "dashboard-case.png",
            site.join(format!("case/{fail_case}.html")),
        ),
    ] {
        let png = shots.join(name);
        browse(&page, &[&format!("--screenshot={}", png.display())]);
        let bytes = std::fs::read(&png).expect("screenshot written");
        assert!(bytes.starts_with(b"\x89PNG"), "{name} is a PNG");
    }
}

/// A serving run's measurements (the client's USER_THROUGHPUT and TOTAL_OUTPUT_THROUGHPUT).
fn serving_rows(
    test_id: &str,
    label: &str,
    case: &str,
    user: f64,
    total: f64,
) -> Vec<MeasurementRow> {
    let domain = test_id.rsplit_once("::").map_or(test_id, |(d, _)| d);
    [
        ("USER_THROUGHPUT", user),
        ("TOTAL_OUTPUT_THROUGHPUT", total),
    ]
    .into_iter()
    .map(|(metric, value)| MeasurementRow {
        test_id: test_id.into(),
        perf_case_name: format!(
            "{domain}::test_perf_metric_{}[{label}]",
            metric.to_ascii_lowercase()
        ),
        network_name: label.into(),
        case: Some(case.into()),
        step: "client".into(),
        metric: metric.into(),
        repetition: 1,
        value,
        state: State::Valid,
    })
    .collect()
}

/// Serving sweeps on the Sweeps page: a serve name's `con:1+4+16` (per-GPU is its total output
/// throughput over its two GPUs) and a perf-sanity server's clients (their sweep read from the
/// cases' upstream records), each drawn on its latest night over the previous night's
/// frontier, with what each frontier does to the other; checked in headless Chromium.
#[test]
fn serving_sweeps_compare_their_frontiers_night_to_night() {
    use perfgate::backend::{PlanOptions, Registry};
    use perfgate::history::CaseRecordRow;
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.sqlite");
    let serve_test = format!(
        "{PREFIX}/perf/test_perf.py::test_perf[tiny_llama_cpp-serve-llama.cpp-streaming-float32-input_output_len:128,32-reqs:16-con:1+4+16-gpus:2]"
    );
    let serve_label = |con: u32| {
        format!(
            "tiny_llama_cpp-serve-llama.cpp-streaming-float32-maxbs:512-maxnt:2048-input_output_len:128,32-reqs:16-con:{con}-gpus:2"
        )
    };
    // The perf-sanity cases and their records, as the serving backend plans them.
    let sanity_id = "aggr-tiny_serving-tiny_tp1";
    let opts = PlanOptions {
        serve: perfgate::backend::serve::Options {
            sanity_dirs: perfgate::perf_sanity::SanityDirs::resolve(
                Path::new("."),
                Some(
                    &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/perf_sanity/local"),
                ),
                |_| None,
            ),
            ..Default::default()
        },
        ..PlanOptions::default()
    };
    let name = perfgate::config::PerfName::Sanity(
        perfgate::config::parse_sanity(sanity_id).expect("id parses"),
    );
    let plan = Registry::builtin().plan(
        sanity_id,
        &name,
        &perfgate::models::ModelConfigs::embedded(),
        &opts,
    );
    assert!(plan.blocked.is_empty(), "{:?}", plan.blocked);
    let sanity_test = format!("{PREFIX}/perf/test_perf_sanity.py::test_e2e[{sanity_id}]");
    let mut h = History::open(&history).expect("open");
    for night in 0..3 {
        let run_id = format!("run-{night}");
        h.begin_run(&RunMeta {
            run_id: run_id.clone(),
            started: format!("2026-06-{:02}T02:00:00Z", night + 1),
            host: "node".into(),
            test_prefix: Some(PREFIX.into()),
            fingerprint: "gpu=H100".into(),
            env_json: "{}".into(),
            revision: Some(format!("rev{night}")),
            branch: None,
            build_url: None,
            imported_from: None,
        })
        .expect("begin");
        let last = night == 2;
        let mut rows = Vec::new();
        // The serving sweep is 20% faster on both axes tonight.
        let s = if last { 1.2 } else { 1.0 };
        for con in [1u32, 4, 16] {
            let c = f64::from(con).sqrt();
            rows.extend(serving_rows(
                &serve_test,
                &serve_label(con),
                &format!("isl_128-osl_32-con_{con}"),
                200.0 / c * s,
                300.0 * c * s,
            ));
        }
        // The perf-sanity sweep's con:4 client loses 30% of its per-GPU throughput tonight.
        let mut records = Vec::new();
        for (k, case) in plan.cases.iter().enumerate() {
            let label = &case.spec.label;
            let total = if last && k == 1 {
                400.0 * 0.7
            } else {
                200.0 * (k + 1) as f64
            };
            rows.extend(serving_rows(
                &sanity_test,
                label,
                label,
                100.0 / (k + 1) as f64,
                total,
            ));
            records.push(CaseRecordRow {
                test_id: sanity_test.clone(),
                network_name: label.clone(),
                case: Some(label.clone()),
                record: case.upstream_record.clone().expect("a record"),
            });
        }
        h.record_measurements(&run_id, &rows).expect("rows");
        h.record_case_records(&run_id, &records).expect("records");
        h.finish_run(&run_id, &format!("2026-06-{:02}T03:00:00Z", night + 1))
            .expect("finish");
    }
    drop(h);
    let site = dir.path().join("site");
    let out = dashboard(&history, &site);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sweeps = dom(&site.join("sweeps.html"));
    let cards: Vec<&str> = sweeps.split("data-sweep=\"").skip(1).collect();
    assert_eq!(cards.len(), 2, "{sweeps}");
    for card in &cards {
        assert!(card.contains("class=\"frontier\" d=\"M"), "latest frontier");
        assert!(
            card.contains("class=\"frontier prev\" d=\"M"),
            "compared frontier"
        );
        assert!(card.contains("latest: night 3 · run-2 · rev2"), "{card}");
        // The previous night is compared by default; every earlier night can be chosen.
        let options: Vec<String> = attrs(card, "value");
        assert_eq!(options, ["1", "2"], "{card}");
        assert!(card.contains(">night 2 · run-1 · rev1</option>"), "{card}");
    }
    let (serve, sanity) = (cards[0], cards[1]);
    assert!(
        serve.contains("tiny_llama_cpp · llama.cpp · float32"),
        "{serve}"
    );
    assert_eq!(serve.matches("class=\"sweep-pt on\"").count(), 3);
    assert_eq!(serve.matches("class=\"sweep-pt prev on\"").count(), 3);
    // Per-GPU is the total over the name's two GPUs: con:4 tonight is 720 / 2 tok/s/gpu.
    assert!(
        serve.contains("120.0 tok/s/user, 360.0 tok/s/gpu, on the frontier"),
        "{serve}"
    );
    assert_eq!(attr(serve, "data-better").as_deref(), Some("3"));
    assert_eq!(attr(serve, "data-worse").as_deref(), Some("0"));
    for knob in ["con:1", "con:4", "con:16"] {
        assert!(serve.contains(&format!("data-knob=\"{knob}\"")), "{knob}");
    }
    assert_eq!(serve.matches(">+20.0%</td>").count(), 3, "{serve}");
    // The perf-sanity sweep: its server and client workload from the records, a knob per
    // client's concurrency; tonight's con:4 point falls behind last night's frontier.
    assert!(sanity.contains("tiny_tp1 [isl=32 osl=16"), "{sanity}");
    assert!(sanity.contains("tiny_model · pytorch · kv fp8"), "{sanity}");
    assert!(sanity.contains("data-knob=\"con:2\"") && sanity.contains("data-knob=\"con:4\""));
    assert_eq!(attr(sanity, "data-worse").as_deref(), Some("1"), "{sanity}");
    assert!(sanity.contains(">-30.0%</td>"), "{sanity}");
    // docs/dashboard-sweeps.png is this page.
    let shots = std::env::var_os("PERFGATE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let png = shots.join("dashboard-sweeps.png");
    browse(
        &site.join("sweeps.html"),
        &[&format!("--screenshot={}", png.display())],
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
}

#[test]
fn empty_and_missing_histories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("empty.sqlite");
    drop(History::open(&history).expect("create"));
    let site = dir.path().join("site");
    let out = dashboard(&history, &site);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no runs in"), "{stderr}");
    let index = dom(&site.join("index.html"));
    assert!(index.contains(&format!("no runs in {} yet", history.display())));

    let missing = dir.path().join("nope.sqlite");
    let out = dashboard(&missing, &dir.path().join("site2"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nope.sqlite") && stderr.contains("no history there"),
        "{stderr}"
    );
}

#[test]
fn pareto_frontier_and_noise_band() {
    // (3,1) is beaten by (3,2); the others trade one axis for the other.
    let f = pareto_frontier(&[(1.0, 5.0), (3.0, 1.0), (3.0, 2.0), (5.0, 0.5), (0.5, 4.0)]);
    assert_eq!(f, vec![true, false, true, true, false]);
    let values: Vec<(i64, Option<f64>)> = (1..=8)
        .map(|n| (n, Some(if n == 7 { 50.0 } else { 10.0 + (n % 3) as f64 })))
        .collect();
    let band = robust_band(&values, &[]);
    // Nights 6.. have five earlier values (11, 12, 10, 11, 12): median 11, MAD 1, so the band
    // is 11 ± 3 · 1.4826.
    assert_eq!(band.first().map(|b| b.0), Some(6));
    let (_, lo, hi) = band[0];
    assert!(
        (lo - (11.0 - 4.4478)).abs() < 1e-9 && (hi - (11.0 + 4.4478)).abs() < 1e-9,
        "{lo} {hi}"
    );
    // The outlier at night 7 barely moves night 8's band (robust).
    let (_, lo8, hi8) = band[2];
    assert!(hi8 < 20.0 && lo8 > 0.0, "{lo8} {hi8}");
    // An acknowledged change point at night 4 restarts the window: five values after it
    // would be needed, and only nights 4-8 exist.
    assert!(robust_band(&values, &[4]).is_empty());
}

/// The chart numbers' fast path writes exactly what the reference (`{:.6e}`, parsed back,
/// written with `{}`) writes: at rounding halves, at powers of ten, at the range's ends, for
/// negatives and where it declines.
#[test]
fn chart_numbers_match_the_reference() {
    let mut edge = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        10.0,
        0.1,
        1e-9,
        9.9999995e-10,
        1e15,
        1.0000001e15,
        1e300,
        5e-324,
        123.4565,
        1.0000005,
        0.1234565,
        9.9999995,
        9.9999994,
        9.9999996,
        999999.95,
        99.999995,
        1234567.5,
        1234568.5,
        2.5e-7,
        7.389056098930651,
        100.12345678,
        -3.14159265358979,
        f64::MAX,
        f64::MIN_POSITIVE,
    ];
    for e in -12..17 {
        let p = 10f64.powi(e);
        edge.extend([p, p * (1.0 - 1e-16), p * (1.0 + 1e-16), p * 0.99999995, -p]);
    }
    for v in edge {
        let mut fast = String::new();
        push_chart_number(&mut fast, Some(v));
        assert_eq!(fast, chart_number_slow(v), "{v:e}");
    }
    for v in [
        None,
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(f64::NEG_INFINITY),
    ] {
        let mut s = String::new();
        push_chart_number(&mut s, v);
        assert_eq!(s, "null");
    }
}

proptest! {
    #[test]
    fn chart_numbers_match_the_reference_anywhere(
        mantissa in -1.0e7f64..1.0e7,
        exp in -14i32..18,
        bits in any::<u64>(),
    ) {
        let scaled = mantissa * 10f64.powi(exp);
        let raw = f64::from_bits(bits);
        for v in [scaled, raw, (mantissa.round() + 0.5) * 10f64.powi(exp - 7)] {
            let mut fast = String::new();
            push_chart_number(&mut fast, Some(v));
            let want = if v.is_finite() { chart_number_slow(v) } else { "null".to_string() };
            prop_assert_eq!(fast, want, "{:e}", v);
        }
    }

    /// The band's medians by selection equal medians by sorting (odd and even windows, ties).
    #[test]
    fn noise_band_matches_a_sorting_reference(
        values in proptest::collection::vec(proptest::option::weighted(0.9, 0i32..40), 0..60),
        starts in proptest::collection::vec(1i64..60, 0..3),
    ) {
        let values: Vec<(i64, Option<f64>)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 + 1, v.map(|v| f64::from(v) / 4.0)))
            .collect();
        prop_assert_eq!(robust_band(&values, &starts), sorting_band(&values, &starts));
    }
}

fn sorting_band(values: &[(i64, Option<f64>)], starts: &[i64]) -> Vec<(i64, f64, f64)> {
    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
    let mut out = Vec::new();
    let mut window: Vec<f64> = Vec::new();
    for &(night, value) in values {
        if starts.contains(&night) {
            window.clear();
        }
        if window.len() >= 5 {
            let mut w = window.clone();
            let m = median(&mut w);
            let mut dev: Vec<f64> = w.iter().map(|v| (v - m).abs()).collect();
            let half = 3.0 * 1.4826 * median(&mut dev);
            out.push((night, m - half, m + half));
        }
        if let Some(v) = value {
            window.push(v);
            if window.len() > 20 {
                window.remove(0);
            }
        }
    }
    out
}

/// `perfgate dashboard` finds the history where `gate`, `history` and `compare` do
/// (`<output-dir>/history.sqlite`) and writes the site next to it by default.
#[test]
fn the_dashboard_defaults_to_the_output_directorys_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("perf-output");
    std::fs::create_dir_all(&out_dir).expect("mkdir");
    build_history(&out_dir.join("history.sqlite"));
    let out = Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .arg("dashboard")
        .current_dir(dir.path())
        .env_remove("PERF_HISTORY")
        .env_remove("PERF_OUTPUT_DIR")
        .output()
        .expect("run perfgate dashboard");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out_dir.join("dashboard/index.html").is_file());
}
