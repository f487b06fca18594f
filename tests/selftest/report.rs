//! The report parser against real published logs (tests/fixtures/bench_logs, serve_logs).
//!
//! Every expected value below was written by reading the fixture file, not by running the
//! parser: values are as printed, after unit normalisation (era A's seconds become ms).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use perfgate::record::metric::{Direction, METRICS, Unit, metric};
use perfgate::report::{
    Report, ReportError, ReportKind, parse_reader, parse_report_json, parse_str, reconcile,
};

fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn text(rel: &str) -> String {
    std::fs::read_to_string(fixture_path(rel)).expect("fixture")
}

fn parse_file(rel: &str) -> Report {
    let f = std::fs::File::open(fixture_path(rel)).expect("fixture");
    parse_reader(std::io::BufReader::new(f)).expect("readable")
}

const B001: &str = "bench_logs/001-perfbench-quickstart-throughput-v0.17.log";
const B002: &str = "bench_logs/002-perfbench-throughput-full-v0.17.log";
const B003: &str = "bench_logs/003-perfbench-pytorch-throughput-v0.17.log";
const B005: &str = "bench_logs/005-perfbench-build-v0.17.log";
const B006: &str = "bench_logs/006-blog-dsv32-minlatency-streaming-v1.2.log";
const B008: &str = "bench_logs/008-perfoverview-streaming-v0.20.log";
const B009: &str = "bench_logs/009-devblog-llama31-8b-pytorch-streaming-v0.21.0rc0.log";
const B011: &str = "bench_logs/011-devblog-worldinfo-tabs-v0.21.0rc0.log";
const B012: &str = "bench_logs/012-blog-dsr1-b200-minlatency-v0.18.log";
const B014: &str = "bench_logs/014-blog-dsr1-h200-minlatency-v0.18.log";
const B015: &str = "bench_logs/015-blog-dsr1-h200-maxthroughput-v0.18.log";
const B017: &str = "bench_logs/017-benchreadme-quickstart-v0.12.0.dev.log";
const B018: &str = "bench_logs/018-benchreadme-throughput-full-v0.12.0.dev.log";
const B020: &str = "bench_logs/020-perfoverview-build-engine-saved-v0.14.log";
const B021: &str = "bench_logs/021-blog-dsr1-b200-minlatency-v0.20.log";
const B023: &str = "bench_logs/023-blog-dsr1-b200-fp16kv-maxthroughput-v1.0.log";
const B024: &str = "bench_logs/024-blog-dsr1-h200-maxthroughput-v0.20.log";
const B025: &str = "bench_logs/025-dgxc-report-deepseek-r1-blocks-v1.x.log";
const B027: &str = "bench_logs/027-pr7104-dsr1-gb200-header-excerpt-v1.1.0rc1.log";
const B029: &str = "bench_logs/029-issue6294-llama31-8b-h100-excerpt-v1.0.log";
const B030: &str = "bench_logs/030-tuningguide-llama33-70b-throughput-tabs-v0.16.0.log";
const B032: &str = "bench_logs/032-trtllm-build-llama3-8b-tail-v0.10.log";
const L01: &str = "bench_logs/lookalike/L01-custom-vllm-script-mimic.log";
const S01: &str = "serve_logs/S01-trtllm-serve-benchmark_serving-doc.log";
const S02: &str = "serve_logs/S02-vllm-bench-serve-pr36559-c8.log";

/// Every log fixture: the tests below must cover each one.
const ALL: [&str; 25] = [
    B001, B002, B003, B005, B006, B008, B009, B011, B012, B014, B015, B017, B018, B020, B021, B023,
    B024, B025, B027, B029, B030, B032, L01, S01, S02,
];

/// `(name, value)` pairs; `exact` means these are all the metrics the report may have.
fn check(r: &Report, want: &[(&str, f64)], exact: bool, file: &str) {
    for (name, v) in want {
        assert_eq!(
            r.metrics.get(*name),
            Some(v),
            "{file}: {name} in {:?}",
            r.metrics
        );
    }
    if exact {
        let names: Vec<&str> = want.iter().map(|(n, _)| *n).collect();
        let extra: Vec<&String> = r
            .metrics
            .keys()
            .filter(|k| !names.contains(&k.as_str()))
            .collect();
        assert!(extra.is_empty(), "{file}: unexpected metrics {extra:?}");
    }
}

fn names(family: &str) -> Vec<String> {
    ["MIN", "MAX", "AVG", "P50", "P90", "P95", "P99"]
        .iter()
        .map(|s| format!("{s}_{family}"))
        .collect()
}

/// The missing list as a set, for comparison.
fn missing_set(r: &Report) -> std::collections::BTreeSet<String> {
    r.missing.iter().cloned().collect()
}

fn set(names: &[&str], families: &[&str]) -> std::collections::BTreeSet<String> {
    names
        .iter()
        .map(|s| s.to_string())
        .chain(families.iter().flat_map(|f| names_owned(f)))
        .collect()
}

fn names_owned(f: &str) -> Vec<String> {
    names(f)
}

const REQUEST4: [&str; 4] = [
    "NUM_REQUESTS",
    "AVG_CONCURRENCY",
    "AVG_INPUT_LENGTH",
    "AVG_OUTPUT_LENGTH",
];

// ---------------------------------------------------------------- era B (0.16-0.17)

#[test]
fn b001_and_002_era_b_quickstart_same_values() {
    // 002 is the full console run of 001's summary (logger lines, warm-up, snips around it).
    let want = [
        ("NUM_REQUESTS", 3000.0),
        ("AVG_INPUT_LENGTH", 128.0),
        ("AVG_OUTPUT_LENGTH", 128.0),
        ("TOTAL_OUTPUT_THROUGHPUT", 28390.4265),
        ("SEQ_THROUGHPUT", 221.8002),
        ("INFERENCE_TIME", 13525.6862),
    ];
    for f in [B001, B002] {
        let r = parse_file(f);
        assert_eq!(r.kind, ReportKind::Throughput, "{f}");
        assert_eq!(r.era.as_deref(), Some("B"), "{f}");
        check(&r, &want, true, f);
        assert!(r.missing.is_empty(), "{f}: {:?}", r.missing);
        assert_eq!(r.reports_found, 1);
        assert!(!r.streaming);
        assert!(r.error_markers.is_empty() && r.failed_requests.is_none());
        // Era B prints no per-GPU throughput: upstream's TOKEN_THROUGHPUT has no value here.
        assert_eq!(r.upstream_value("TOKEN_THROUGHPUT"), None);
        assert_eq!(r.upstream_value("SEQ_THROUGHPUT"), Some(221.8002));
    }
}

#[test]
fn b003_pytorch_backend_header_era_b() {
    let r = parse_file(B003);
    assert_eq!(
        (r.kind, r.era.as_deref()),
        (ReportKind::Throughput, Some("B"))
    );
    check(
        &r,
        &[
            ("NUM_REQUESTS", 3000.0),
            ("AVG_INPUT_LENGTH", 128.0),
            ("AVG_OUTPUT_LENGTH", 128.0),
            ("TOTAL_OUTPUT_THROUGHPUT", 20685.5510),
            ("SEQ_THROUGHPUT", 161.6059),
            ("INFERENCE_TIME", 18563.6825),
        ],
        true,
        B003,
    );
    assert!(r.missing.is_empty());
}

#[test]
fn b030_real_tabs_era_b_tp4() {
    let r = parse_file(B030);
    assert_eq!(
        (r.kind, r.era.as_deref()),
        (ReportKind::Throughput, Some("B"))
    );
    check(
        &r,
        &[
            ("NUM_REQUESTS", 1000.0),
            ("AVG_INPUT_LENGTH", 2048.0),
            ("AVG_OUTPUT_LENGTH", 2048.0),
            ("TOTAL_OUTPUT_THROUGHPUT", 1585.7480),
            ("SEQ_THROUGHPUT", 0.7743),
            ("INFERENCE_TIME", 1291504.1051),
        ],
        true,
        B030,
    );
    assert!(r.missing.is_empty() && r.warnings.is_empty(), "{r:?}");
}

// ---------------------------------------------------------------- era A (0.12)

#[test]
fn b017_and_018_era_a_seconds_become_ms() {
    let want = [
        ("NUM_REQUESTS", 3000.0),
        ("AVG_INPUT_LENGTH", 128.0),
        ("AVG_OUTPUT_LENGTH", 128.0),
        ("TOTAL_OUTPUT_THROUGHPUT", 23405.927228471104),
        ("SEQ_THROUGHPUT", 182.8588064724305),
        // `Total Latency (seconds): 16.406100739`, exactly scaled.
        ("INFERENCE_TIME", 16406.100739),
    ];
    let r = parse_file(B017);
    assert_eq!(
        (r.kind, r.era.as_deref()),
        (ReportKind::Throughput, Some("A"))
    );
    check(&r, &want, true, B017);
    assert!(r.missing.is_empty());

    // 018 is the full run: C++ executor lines carry the KV cache and context memory.
    let r = parse_file(B018);
    assert_eq!(
        (r.kind, r.era.as_deref()),
        (ReportKind::Throughput, Some("A"))
    );
    let mut want18 = want.to_vec();
    want18.push(("KV_CACHE_SIZE", 62.99));
    want18.push(("CONTEXT_GPU_MEMORY", 928.77));
    check(&r, &want18, true, B018);
    assert!(r.missing.is_empty() && r.warnings.is_empty(), "{r:?}");
    assert_eq!(r.upstream_value("KV_CACHE_SIZE"), Some(62.99));
    assert_eq!(r.upstream_value("INFERENCE_TIME"), Some(16406.100739));
}

// ---------------------------------------------------------------- era C (0.18-0.19)

#[test]
fn b012_014_015_era_c_performance_overview_only() {
    let cases: [(&str, [f64; 6]); 3] = [
        // SEQ, TOTAL_OUTPUT, PER_USER, PER_GPU, INFERENCE_TIME, AVG_REQUEST_LATENCY
        (
            B012,
            [0.1244, 254.5535, 254.7634, 31.8192, 80368.1616, 8036.7546],
        ),
        (
            B014,
            [0.0772, 158.0669, 158.1196, 19.7584, 129498.2168, 12945.9379],
        ),
        (
            B015,
            [
                5.1942,
                10637.7380,
                10.4899,
                1329.7173,
                985713.3137,
                195228.9468,
            ],
        ),
    ];
    for (f, v) in cases {
        let r = parse_file(f);
        assert_eq!(
            (r.kind, r.era.as_deref()),
            (ReportKind::Throughput, Some("C")),
            "{f}: {:?}",
            r.warnings
        );
        check(
            &r,
            &[
                ("SEQ_THROUGHPUT", v[0]),
                ("TOTAL_OUTPUT_THROUGHPUT", v[1]),
                ("PER_USER_OUTPUT_THROUGHPUT", v[2]),
                ("PER_GPU_OUTPUT_THROUGHPUT", v[3]),
                ("TOKEN_THROUGHPUT", v[3]),
                ("INFERENCE_TIME", v[4]),
                ("AVG_REQUEST_LATENCY", v[5]),
            ],
            true,
            f,
        );
        // Blog excerpts: the request details and latency breakdown were not pasted.
        assert_eq!(missing_set(&r), set(&REQUEST4, &["LATENCY"]), "{f}");
        assert!(!r.streaming);
    }
}

// ---------------------------------------------------------------- era C' (~0.20)

#[test]
fn b021_024_era_c_prime_total_token_after_per_gpu() {
    let cases: [(&str, [f64; 7]); 2] = [
        // SEQ, TOTAL_OUTPUT, PER_USER, PER_GPU, TOTAL_TOKEN, INFERENCE_TIME, AVG_REQUEST_LATENCY
        (
            B021,
            [
                0.1341, 274.4168, 274.7188, 34.3021, 414.0461, 74561.7520, 7456.1219,
            ],
        ),
        (
            B024,
            [
                5.6100,
                11489.2671,
                11.3476,
                1436.1584,
                17233.9007,
                912656.9938,
                181540.5739,
            ],
        ),
    ];
    for (f, v) in cases {
        let r = parse_file(f);
        assert_eq!(
            (r.kind, r.era.as_deref()),
            (ReportKind::Throughput, Some("C'")),
            "{f}"
        );
        check(
            &r,
            &[
                ("SEQ_THROUGHPUT", v[0]),
                ("TOTAL_OUTPUT_THROUGHPUT", v[1]),
                ("PER_USER_OUTPUT_THROUGHPUT", v[2]),
                ("PER_GPU_OUTPUT_THROUGHPUT", v[3]),
                ("TOKEN_THROUGHPUT", v[3]),
                ("TOTAL_TOKEN_THROUGHPUT", v[4]),
                ("INFERENCE_TIME", v[5]),
                ("AVG_REQUEST_LATENCY", v[6]),
            ],
            true,
            f,
        );
        assert_eq!(missing_set(&r), set(&REQUEST4, &["LATENCY"]), "{f}");
    }
}

#[test]
fn b008_streaming_with_c_prime_order() {
    // INDEX.md files this as era C, but the text has `Total Token Throughput` right after the
    // `(tokens/sec/gpu)` line: the reference's definition of C'.
    let r = parse_file(B008);
    assert_eq!(
        (r.kind, r.era.as_deref()),
        (ReportKind::Throughput, Some("C'"))
    );
    assert!(r.streaming);
    let mut want = vec![
        ("SEQ_THROUGHPUT", 43.2089),
        ("TOTAL_OUTPUT_THROUGHPUT", 5530.7382),
        ("PER_USER_OUTPUT_THROUGHPUT", 2.0563),
        ("PER_GPU_OUTPUT_THROUGHPUT", 5530.7382),
        ("TOKEN_THROUGHPUT", 5530.7382),
        ("TOTAL_TOKEN_THROUGHPUT", 94022.5497),
        ("INFERENCE_TIME", 115716.9214),
        ("AVG_REQUEST_LATENCY", 75903.4456),
        ("PER_USER_OUTPUT_SPEED", 5.4656),
        ("FIRST_TOKEN_TIME", 52667.0339),
        ("OUTPUT_TOKEN_TIME", 182.9639),
        ("MIN_TPOT", 32.8005),
        ("MAX_TPOT", 208.4667),
        ("AVG_TPOT", 182.9639),
        ("P50_TPOT", 204.0463),
        ("P90_TPOT", 206.3863),
        ("P95_TPOT", 206.5064),
        ("P99_TPOT", 206.5821),
        ("MIN_TTFT", 3914.7621),
        ("MAX_TTFT", 107501.2487),
        ("AVG_TTFT", 52667.0339),
        ("P50_TTFT", 52269.7072),
        ("P90_TTFT", 96583.7187),
        ("P95_TTFT", 101978.4566),
        ("P99_TTFT", 106563.4497),
    ];
    want.extend([
        ("P50_LATENCY", 78509.2102),
        ("P90_LATENCY", 110804.0017),
        ("P95_LATENCY", 111302.9101),
        ("P99_LATENCY", 111618.2158),
        ("MIN_LATENCY", 24189.0838),
        ("MAX_LATENCY", 111668.0964),
        ("AVG_LATENCY", 75903.4456),
    ]);
    check(&r, &want, true, B008);
    // No GTPS breakdown before era D, so none is missing.
    assert_eq!(missing_set(&r), set(&REQUEST4, &[]));
}

// ---------------------------------------------------------------- era D (0.21+)

fn b009_values() -> Vec<(&'static str, f64)> {
    vec![
        ("NUM_REQUESTS", 100.0),
        ("AVG_CONCURRENCY", 94.6050),
        ("AVG_INPUT_LENGTH", 128.0),
        ("AVG_OUTPUT_LENGTH", 128.0),
        ("SEQ_THROUGHPUT", 86.5373),
        ("TOTAL_OUTPUT_THROUGHPUT", 11076.7700),
        ("TOTAL_TOKEN_THROUGHPUT", 22153.5399),
        ("INFERENCE_TIME", 1155.5715),
        ("AVG_REQUEST_LATENCY", 1093.2284),
        ("PER_USER_OUTPUT_THROUGHPUT", 117.1544),
        ("PER_GPU_OUTPUT_THROUGHPUT", 11076.7700),
        ("TOKEN_THROUGHPUT", 11076.7700),
        ("FIRST_TOKEN_TIME", 162.6706),
        ("OUTPUT_TOKEN_TIME", 7.3272),
        ("PER_USER_OUTPUT_SPEED", 137.1475),
        ("MIN_TPOT", 6.6450),
        ("MAX_TPOT", 8.1306),
        ("AVG_TPOT", 7.3272),
        ("P50_TPOT", 7.6079),
        ("P90_TPOT", 8.1246),
        ("P95_TPOT", 8.1289),
        ("P99_TPOT", 8.1306),
        ("MIN_TTFT", 93.9210),
        ("MAX_TTFT", 232.4339),
        ("AVG_TTFT", 162.6706),
        ("P50_TTFT", 159.7857),
        ("P90_TTFT", 220.0530),
        ("P95_TTFT", 226.9148),
        ("P99_TTFT", 232.4339),
        ("MIN_GTPS", 122.9921),
        ("MAX_GTPS", 150.4894),
        ("AVG_GTPS", 137.1475),
        ("P50_GTPS", 131.4444),
        ("P90_GTPS", 150.4112),
        ("P95_GTPS", 150.4606),
        ("P99_GTPS", 150.4894),
        ("P50_LATENCY", 1091.7905),
        ("P90_LATENCY", 1130.7200),
        ("P95_LATENCY", 1133.0074),
        ("P99_LATENCY", 1137.6817),
        ("MIN_LATENCY", 1050.1519),
        ("MAX_LATENCY", 1137.6817),
        ("AVG_LATENCY", 1093.2284),
    ]
}

#[test]
fn b009_complete_era_d_streaming_report() {
    let r = parse_file(B009);
    assert_eq!(
        (r.kind, r.era.as_deref()),
        (ReportKind::Throughput, Some("D"))
    );
    assert!(r.streaming);
    check(&r, &b009_values(), true, B009);
    assert!(r.missing.is_empty(), "{:?}", r.missing);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.reports_found, 1);
    // Upstream's names read upstream's quantities; perfgate-only names have no upstream value.
    assert_eq!(r.upstream_value("TOKEN_THROUGHPUT"), Some(11076.77));
    assert_eq!(r.upstream_value("INFERENCE_TIME"), Some(1155.5715));
    assert_eq!(r.upstream_value("FIRST_TOKEN_TIME"), Some(162.6706));
    assert_eq!(r.upstream_value("P50_LATENCY"), None);
    assert_eq!(r.upstream_value("KV_CACHE_SIZE"), None);
    assert_eq!(r.upstream_value("NOT_A_METRIC"), None);
}

#[test]
fn b006_023_era_d_excerpts() {
    let r = parse_file(B006);
    assert_eq!(
        (r.kind, r.era.as_deref()),
        (ReportKind::Throughput, Some("D"))
    );
    assert!(r.streaming);
    check(
        &r,
        &[
            ("SEQ_THROUGHPUT", 0.2678),
            ("TOTAL_OUTPUT_THROUGHPUT", 274.1786),
            ("TOTAL_TOKEN_THROUGHPUT", 2467.6070),
            ("INFERENCE_TIME", 37347.9238),
            ("AVG_REQUEST_LATENCY", 3734.7334),
            ("PER_USER_OUTPUT_THROUGHPUT", 276.2231),
            ("PER_GPU_OUTPUT_THROUGHPUT", 68.5446),
            ("TOKEN_THROUGHPUT", 68.5446),
            ("FIRST_TOKEN_TIME", 425.9885),
            ("OUTPUT_TOKEN_TIME", 3.2344),
            ("PER_USER_OUTPUT_SPEED", 312.0708),
        ],
        true,
        B006,
    );
    assert_eq!(
        missing_set(&r),
        set(&REQUEST4, &["LATENCY", "TPOT", "TTFT", "GTPS"])
    );

    let r = parse_file(B023);
    assert_eq!(
        (r.kind, r.era.as_deref()),
        (ReportKind::Throughput, Some("D"))
    );
    assert!(!r.streaming);
    check(
        &r,
        &[
            ("SEQ_THROUGHPUT", 17.7657),
            ("TOTAL_OUTPUT_THROUGHPUT", 36384.0838),
            ("TOTAL_TOKEN_THROUGHPUT", 54576.1257),
            ("INFERENCE_TIME", 2766684.9197),
            ("AVG_REQUEST_LATENCY", 172321.7206),
            ("PER_USER_OUTPUT_THROUGHPUT", 11.9263),
            ("PER_GPU_OUTPUT_THROUGHPUT", 4548.0105),
            ("TOKEN_THROUGHPUT", 4548.0105),
        ],
        true,
        B023,
    );
    assert_eq!(missing_set(&r), set(&REQUEST4, &["LATENCY"]));
}

#[test]
fn b025_two_blocks_keeps_the_last() {
    let r = parse_file(B025);
    assert_eq!(
        (r.kind, r.era.as_deref()),
        (ReportKind::Throughput, Some("D"))
    );
    assert_eq!(r.reports_found, 2);
    // The second block (`..._192.out`), not the first, nor a mix of both.
    check(
        &r,
        &[
            ("SEQ_THROUGHPUT", 16.4733),
            ("TOTAL_OUTPUT_THROUGHPUT", 16473.3153),
            ("TOTAL_TOKEN_THROUGHPUT", 32946.6306),
            ("INFERENCE_TIME", 621611.3643),
            ("AVG_REQUEST_LATENCY", 61855.7559),
            ("PER_USER_OUTPUT_THROUGHPUT", 16.2651),
            ("PER_GPU_OUTPUT_THROUGHPUT", 4118.3288),
            ("TOKEN_THROUGHPUT", 4118.3288),
            ("FIRST_TOKEN_TIME", 1934.1523),
            ("OUTPUT_TOKEN_TIME", 59.9816),
            ("PER_USER_OUTPUT_SPEED", 16.7289),
        ],
        true,
        B025,
    );
    let w = r.warnings.join("\n");
    assert!(
        w.contains("2 reports") && w.contains("last one (line 19)"),
        "{w}"
    );
    assert_eq!(
        missing_set(&r),
        set(&REQUEST4, &["LATENCY", "TPOT", "TTFT", "GTPS"])
    );
}

#[test]
fn b027_excerpt_cut_after_a_label() {
    let r = parse_file(B027);
    // `Total Token Throughput` right after `Total Output Throughput`: era D, even unvalued.
    assert_eq!(
        (r.kind, r.era.as_deref()),
        (ReportKind::Throughput, Some("D"))
    );
    check(
        &r,
        &[
            ("NUM_REQUESTS", 6144.0),
            ("AVG_CONCURRENCY", 1018.8281),
            ("AVG_INPUT_LENGTH", 1024.0),
            ("AVG_OUTPUT_LENGTH", 1024.0),
            ("SEQ_THROUGHPUT", 7.3411),
            ("TOTAL_OUTPUT_THROUGHPUT", 7517.2584),
        ],
        true,
        B027,
    );
    assert_eq!(
        missing_set(&r),
        set(
            &[
                "TOTAL_TOKEN_THROUGHPUT",
                "PER_USER_OUTPUT_THROUGHPUT",
                "PER_GPU_OUTPUT_THROUGHPUT",
                "TOKEN_THROUGHPUT",
                "INFERENCE_TIME",
                "AVG_REQUEST_LATENCY",
            ],
            &["LATENCY"]
        )
    );
    let w = r.warnings.join("\n");
    assert!(w.contains("line 38") && w.contains("has no value"), "{w}");
    assert!(w.contains("ends inside PERFORMANCE OVERVIEW"), "{w}");
}

#[test]
fn b029_excerpt_from_issue_rate_to_dataset_table() {
    let r = parse_file(B029);
    assert_eq!(
        (r.kind, r.era.as_deref()),
        (ReportKind::Throughput, Some("D"))
    );
    check(
        &r,
        &[
            ("SEQ_THROUGHPUT", 248.4751),
            ("TOTAL_OUTPUT_THROUGHPUT", 6957.3030),
            ("TOTAL_TOKEN_THROUGHPUT", 38762.1169),
            ("INFERENCE_TIME", 120736.4401),
            ("AVG_REQUEST_LATENCY", 53522.9014),
            ("PER_USER_OUTPUT_THROUGHPUT", 0.5350),
            ("PER_GPU_OUTPUT_THROUGHPUT", 6957.3030),
            ("TOKEN_THROUGHPUT", 6957.3030),
            ("P50_LATENCY", 54486.1063),
            ("P90_LATENCY", 64358.7218),
            ("P95_LATENCY", 66932.7024),
            ("P99_LATENCY", 68887.7569),
            ("MIN_LATENCY", 39903.1921),
            ("MAX_LATENCY", 69473.9218),
            ("AVG_LATENCY", 53522.9014),
        ],
        true,
        B029,
    );
    // It starts at `Issue Rate`: the request details are before the excerpt.
    assert_eq!(missing_set(&r), set(&REQUEST4, &[]));
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("ends inside DATASET DETAILS"))
    );
}

#[test]
fn b011_world_section_fragment() {
    let r = parse_file(B011);
    assert_eq!(r.kind, ReportKind::Throughput);
    // `EP Size` says C, C' or D; nothing tells which.
    assert_eq!(r.era, None);
    assert!(r.metrics.is_empty());
    assert!(!r.is_report());
    // Only what every one of C, C' and D prints (not C'/D's TOTAL_TOKEN_THROUGHPUT).
    assert_eq!(
        missing_set(&r),
        set(
            &[
                "NUM_REQUESTS",
                "AVG_CONCURRENCY",
                "AVG_INPUT_LENGTH",
                "AVG_OUTPUT_LENGTH",
                "SEQ_THROUGHPUT",
                "TOTAL_OUTPUT_THROUGHPUT",
                "PER_USER_OUTPUT_THROUGHPUT",
                "PER_GPU_OUTPUT_THROUGHPUT",
                "TOKEN_THROUGHPUT",
                "INFERENCE_TIME",
                "AVG_REQUEST_LATENCY",
            ],
            &["LATENCY"]
        )
    );
    assert!(r.warnings.iter().any(|w| w.contains("C, C' or D")));
}

// ---------------------------------------------------------------- builds

#[test]
fn b005_trtllm_bench_build() {
    let r = parse_file(B005);
    assert_eq!((r.kind, r.era.as_deref()), (ReportKind::Build, None));
    // `Total latency: 176.709s`; the doc snipped the TensorRT lines with the engine time.
    check(&r, &[("BUILD_TOTAL_TIME", 176.709)], true, B005);
    assert_eq!(r.missing, vec!["BUILD_TIME"]);
    assert_eq!(r.reports_found, 1);
}

#[test]
fn b020_engine_saved_banner_only() {
    let r = parse_file(B020);
    assert_eq!(r.kind, ReportKind::Build);
    assert!(r.metrics.is_empty());
    assert_eq!(r.missing, vec!["BUILD_TIME", "BUILD_TOTAL_TIME"]);
}

#[test]
fn b032_trtllm_build_tail() {
    let r = parse_file(B032);
    assert_eq!(r.kind, ReportKind::TrtllmBuild);
    check(
        &r,
        &[
            ("BUILD_TIME", 9.05298),
            // `Total time of building all engines: 00:00:24`.
            ("BUILD_TOTAL_TIME", 24.0),
            ("BUILD_PEAK_CPU_MEMORY", 34537.0),
            ("BUILD_PEAK_GPU_MEMORY", 15317.0),
        ],
        true,
        B032,
    );
    assert!(r.missing.is_empty());
    assert_eq!(r.upstream_value("BUILD_TIME"), Some(9.05298));
}

// ---------------------------------------------------------------- not a report

#[test]
fn l01_lookalike_is_not_a_report() {
    let r = parse_file(L01);
    assert_eq!(r.kind, ReportKind::Unknown);
    assert!(r.metrics.is_empty(), "{:?}", r.metrics);
    assert_eq!(r.reports_found, 0);
    assert_eq!(r.upstream_value("TOKEN_THROUGHPUT"), None);
    let w = r.warnings.join("\n");
    assert!(
        w.contains("look like trtllm-bench report lines") && w.contains("line 6"),
        "{w}"
    );
    // Framing it with a title but not the 59-wide rules does not make it a report either.
    let framed = format!(
        "{}\n= PERFORMANCE OVERVIEW\n{}\n{}",
        "=".repeat(40),
        "=".repeat(40),
        text(L01)
    );
    let r = parse_str(&framed);
    assert_eq!(r.kind, ReportKind::Unknown);
    assert!(r.metrics.is_empty());
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("not followed by a rule"))
    );
}

// ---------------------------------------------------------------- serving

#[test]
fn s01_trtllm_benchmark_serving() {
    let r = parse_file(S01);
    assert_eq!((r.kind, r.era.as_deref()), (ReportKind::Serve, None));
    check(
        &r,
        &[
            ("NUM_REQUESTS", 1.0),
            // `Benchmark duration (s): 1.64`
            ("INFERENCE_TIME", 1640.0),
            ("TOTAL_INPUT_TOKENS", 1024.0),
            ("TOTAL_OUTPUT_TOKENS", 1024.0),
            ("SEQ_THROUGHPUT", 0.61),
            ("TOTAL_OUTPUT_THROUGHPUT", 622.56),
            ("TOTAL_TOKEN_THROUGHPUT", 1245.12),
            ("USER_THROUGHPUT", 623.08),
            ("MEAN_REQUEST_ACCEPTANCE_RATE", 0.9980),
            ("MEDIAN_REQUEST_ACCEPTANCE_RATE", 0.9980),
            ("FIRST_TOKEN_TIME", 12.83),
            ("MEDIAN_FIRST_TOKEN_TIME", 12.83),
            ("P99_FIRST_TOKEN_TIME", 12.83),
            ("OUTPUT_TOKEN_TIME", 1.59),
            ("MEDIAN_OUTPUT_TOKEN_TIME", 1.59),
            ("P99_OUTPUT_TOKEN_TIME", 1.59),
            ("INTER_TOKEN_TIME", 1.59),
            ("MEDIAN_INTER_TOKEN_TIME", 1.59),
            ("P99_INTER_TOKEN_TIME", 1.77),
            ("AVG_REQUEST_LATENCY", 1643.44),
            ("MEDIAN_INFERENCE_TIME", 1643.44),
            ("P99_INFERENCE_TIME", 1643.44),
        ],
        true,
        S01,
    );
    assert!(r.missing.is_empty() && r.warnings.is_empty(), "{r:?}");
    assert_eq!(r.failed_requests, None);
    // Upstream's serving regexes: INFERENCE_TIME = mean E2EL, TOKEN_THROUGHPUT = total output.
    assert_eq!(r.upstream_value("INFERENCE_TIME"), Some(1643.44));
    assert_eq!(r.upstream_value("TOKEN_THROUGHPUT"), Some(622.56));
    assert_eq!(r.upstream_value("MEDIAN_INFERENCE_TIME"), Some(1643.44));
    assert_eq!(r.upstream_value("DISAGG_SERVER_TTFT"), Some(12.83));
    assert_eq!(r.upstream_value("USER_THROUGHPUT"), Some(623.08));
}

#[test]
fn s02_vllm_bench_serve_with_trailing_pad() {
    let r = parse_file(S02);
    assert_eq!(r.kind, ReportKind::Serve);
    assert_eq!(r.failed_requests, Some(0));
    check(
        &r,
        &[
            ("NUM_REQUESTS", 480.0),
            ("INFERENCE_TIME", 200270.0),
            ("TOTAL_INPUT_TOKENS", 106026.0),
            ("TOTAL_OUTPUT_TOKENS", 144000.0),
            ("SEQ_THROUGHPUT", 2.40),
            ("TOTAL_OUTPUT_THROUGHPUT", 719.03),
            ("PEAK_OUTPUT_THROUGHPUT", 840.00),
            ("PEAK_CONCURRENCY", 16.00),
            // vLLM's lower-case `Total token throughput`.
            ("TOTAL_TOKEN_THROUGHPUT", 1248.45),
            ("FIRST_TOKEN_TIME", 200.57),
            ("MEDIAN_FIRST_TOKEN_TIME", 224.35),
            ("P99_FIRST_TOKEN_TIME", 242.34),
            ("OUTPUT_TOKEN_TIME", 10.49),
            ("MEDIAN_OUTPUT_TOKEN_TIME", 10.51),
            ("P99_OUTPUT_TOKEN_TIME", 11.30),
            ("INTER_TOKEN_TIME", 10.49),
            ("MEDIAN_INTER_TOKEN_TIME", 10.52),
            ("P99_INTER_TOKEN_TIME", 11.89),
        ],
        true,
        S02,
    );
    // This run selected no E2EL percentiles, so none is missing.
    assert!(r.missing.is_empty(), "{:?}", r.missing);
    assert_eq!(r.upstream_value("INFERENCE_TIME"), None);
}

#[test]
fn serving_failures_are_reported() {
    let t = text(S01).replace(
        "Successful requests:                     1\n",
        "Successful requests:                     1\nFailed requests:                         3\n",
    ) + "=======================!FAILED REQUESTS!=======================\n";
    let r = parse_str(&t);
    assert_eq!(r.failed_requests, Some(3));
    assert_eq!(r.error_markers, vec!["!FAILED REQUESTS!"]);
    assert!(r.warnings.iter().any(|w| w.contains("failure marker")));
    assert_eq!(r.metrics.get("NUM_REQUESTS"), Some(&1.0));
    let r = parse_str("[TRT-LLM] [E] !CHECK LOG FOR ERRORS!\n");
    assert_eq!(r.error_markers, vec!["!CHECK LOG FOR ERRORS!"]);
}

#[test]
fn every_fixture_is_covered_and_named_in_sources() {
    let mut on_disk: Vec<String> = Vec::new();
    for dir in ["bench_logs", "bench_logs/lookalike", "serve_logs"] {
        for e in std::fs::read_dir(fixture_path(dir)).expect("dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "log") {
                on_disk.push(format!(
                    "{dir}/{}",
                    p.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ));
            }
        }
    }
    on_disk.sort();
    let mut covered: Vec<String> = ALL.iter().map(|s| s.to_string()).collect();
    covered.sort();
    assert_eq!(on_disk, covered);
    for (dir, src) in [
        ("bench_logs", "bench_logs/SOURCES.md"),
        ("serve_logs", "serve_logs/SOURCES.md"),
    ] {
        let sources = text(src);
        for f in ALL.iter().filter(|f| f.starts_with(dir)) {
            let name = f.rsplit('/').next().unwrap_or(f);
            assert!(sources.contains(name), "{src} does not name {name}");
        }
    }
}

// ---------------------------------------------------------------- synthetic reports
// Written by hand from the reference's description of formats no fixture shows.

/// The era-B `trtllm-bench latency` report (reference §4, "Era B latency report").
const OLD_LATENCY: &str = "\
===========================================================
= ENGINE DETAILS
===========================================================
Model:\t\t\tmeta-llama/Llama-3.1-8B
TensorRT-LLM Version:\t0.16.0
===========================================================
= WORLD + RUNTIME INFORMATION
===========================================================
TP Size:\t\t1
PP Size:\t\t1

===========================================================
= GENERAL OVERVIEW
===========================================================
Number of requests:\t\t10
Average Input Length (tokens):\t512.0000
Average Output Length (tokens):\t256.0000
Average request latency (ms):\t2500.1234

===========================================================
= THROUGHPUT OVERVIEW
===========================================================
Request Throughput (req/sec):\t\t  0.4000
Total Token Throughput (tokens/sec):\t  102.3999
Generation Token Throughput (tokens/sec): 103.0001

===========================================================
= LATENCY OVERVIEW
===========================================================
Total Latency (ms):\t\t  25001.2340
Average time-to-first-token (ms): 20.5000
Average inter-token latency (ms): 9.7000
Acceptance Rate (Speculative):\t  1.00

===========================================================
= GENERATION LATENCY BREAKDOWN
===========================================================
MIN (ms): 2400.0001
MAX (ms): 2600.0002
AVG (ms): 2480.0003
P90 (ms): 2470.0004
P95 (ms): 2590.0005
P99 (ms): 2600.0002

===========================================================
= ACCEPTANCE BREAKDOWN
===========================================================
MIN: 1.00
MAX: 1.00
AVG: 1.00
P90: 1.00
P95: 1.00
P99: 1.00

===========================================================
";

#[test]
fn era_b_latency_report() {
    let r = parse_str(OLD_LATENCY);
    assert_eq!((r.kind, r.era.as_deref()), (ReportKind::Latency, Some("B")));
    assert!(r.streaming);
    check(
        &r,
        &[
            ("NUM_REQUESTS", 10.0),
            ("AVG_INPUT_LENGTH", 512.0),
            ("AVG_OUTPUT_LENGTH", 256.0),
            ("AVG_REQUEST_LATENCY", 2500.1234),
            ("SEQ_THROUGHPUT", 0.4),
            // Output tokens only, whatever the label says.
            ("TOTAL_OUTPUT_THROUGHPUT", 102.3999),
            ("GENERATION_TOKEN_THROUGHPUT", 103.0001),
            ("INFERENCE_TIME", 25001.234),
            ("FIRST_TOKEN_TIME", 20.5),
            ("INTER_TOKEN_TIME", 9.7),
            ("ACCEPTANCE_RATE", 1.0),
            ("MIN_GENERATION_LATENCY", 2400.0001),
            ("MAX_GENERATION_LATENCY", 2600.0002),
            ("AVG_GENERATION_LATENCY", 2480.0003),
            // The line labelled P90 holds the p50.
            ("P50_GENERATION_LATENCY", 2470.0004),
            ("P95_GENERATION_LATENCY", 2590.0005),
            ("P99_GENERATION_LATENCY", 2600.0002),
            ("MIN_ACCEPTANCE_RATE", 1.0),
            ("MAX_ACCEPTANCE_RATE", 1.0),
            ("AVG_ACCEPTANCE_RATE", 1.0),
            ("P50_ACCEPTANCE_RATE", 1.0),
            ("P95_ACCEPTANCE_RATE", 1.0),
            ("P99_ACCEPTANCE_RATE", 1.0),
        ],
        true,
        "OLD_LATENCY",
    );
    assert!(r.missing.is_empty() && r.warnings.is_empty(), "{r:?}");
    // Cut after the throughput overview: the rest is missing.
    let cut = &OLD_LATENCY[..OLD_LATENCY.find("= LATENCY OVERVIEW").unwrap_or(0)];
    let r = parse_str(cut);
    assert_eq!(r.kind, ReportKind::Latency);
    assert!(r.missing.contains(&"INFERENCE_TIME".to_string()));
    assert!(r.missing.contains(&"P50_GENERATION_LATENCY".to_string()));
}

#[test]
fn speculative_decoding_statistics() {
    let mut t = text(B009);
    let stats = "\
===========================================================
= DECODING STATISTICS (MTP)
===========================================================

-- Number of Draft Tokens Details --------------------------------


[DT] MINIMUM: 3.00
[DT] MAXIMUM: 3.00
[DT] AVERAGE: 3.00
[DT] P50    : 3.00
[DT] P90    : 3.00
[DT] P95    : 3.00
[DT] P99    : 3.00
-- Number of Accepted Draft Tokens Details --------------------------------

[ADT] MINIMUM: 1.25
[ADT] MAXIMUM: 2.75
[ADT] AVERAGE: 2.10
[ADT] P50    : 2.00
[ADT] P90    : 2.50
[ADT] P95    : 2.60
[ADT] P99    : 2.75
-- Draft Acceptance Rate Details --------------------------------

[DAR] MINIMUM: 0.42
[DAR] MAXIMUM: 0.92
[DAR] AVERAGE: 0.70
[DAR] P50    : 0.67
[DAR] P90    : 0.83
[DAR] P95    : 0.87
[DAR] P99    : 0.92
-- Acceptance Length Details --------------------------------

";
    // Before the dataset section, as the report prints it; the AL lines are left out.
    let at = t
        .find("\n===========================================================\n= DATASET")
        .expect("dataset");
    t.insert_str(at + 1, stats);
    let r = parse_str(&t);
    assert_eq!(r.era.as_deref(), Some("D"));
    assert_eq!(r.metrics.get("P50_ACCEPTED_DRAFT_TOKENS"), Some(&2.0));
    assert_eq!(r.metrics.get("AVG_DRAFT_ACCEPTANCE_RATE"), Some(&0.70));
    assert_eq!(r.metrics.get("P99_DRAFT_TOKENS"), Some(&3.0));
    assert_eq!(r.metrics.get("NUM_REQUESTS"), Some(&100.0));
    assert_eq!(missing_set(&r), set(&[], &["ACCEPTANCE_LENGTH"]));
    assert_eq!(r.reports_found, 1);
}

#[test]
fn era_is_read_from_line_order_alone() {
    let frame = |lines: &str| {
        format!(
            "{r}\n= PERFORMANCE OVERVIEW\n{r}\n{lines}\n",
            r = "=".repeat(59)
        )
    };
    let d = frame(
        "Request Throughput (req/sec): 1.0\nTotal Output Throughput (tokens/sec): 2.0\n\
         Total Token Throughput (tokens/sec): 3.0\nTotal Latency (ms): 4.0",
    );
    assert_eq!(parse_str(&d).era.as_deref(), Some("D"));
    let cp = frame(
        "Total Output Throughput (tokens/sec): 2.0\nPer GPU Output Throughput (tokens/sec/gpu): 1.0\n\
         Total Token Throughput (tokens/sec): 3.0\nTotal Latency (ms): 4.0",
    );
    assert_eq!(parse_str(&cp).era.as_deref(), Some("C'"));
    let c = frame(
        "Total Output Throughput (tokens/sec): 2.0\nPer GPU Output Throughput (tokens/sec/gpu): 1.0\n\
         Total Latency (ms): 4.0",
    );
    assert_eq!(parse_str(&c).era.as_deref(), Some("C"));
    // Only shared lines: C, C' or D.
    let unsure =
        frame("Request Throughput (req/sec): 1.0\nTotal Output Throughput (tokens/sec): 2.0");
    let r = parse_str(&unsure);
    assert_eq!(r.era, None);
    assert!(!r.missing.contains(&"TOTAL_TOKEN_THROUGHPUT".to_string()));
    // Contradictions leave it undecided, with a warning.
    let mixed =
        frame("Token Throughput (tokens/sec): 1.0\nPer GPU Output Throughput (tps/gpu): 2.0");
    let r = parse_str(&mixed);
    assert_eq!(r.era, None);
    assert!(r.warnings.iter().any(|w| w.contains("does not fit")));
}

// ---------------------------------------------------------------- bad input

#[test]
fn empty_input() {
    let r = parse_str("");
    assert_eq!(r.kind, ReportKind::Unknown);
    assert!(r.metrics.is_empty() && r.missing.is_empty());
    assert_eq!(r.reports_found, 0);
    assert!(
        r.warnings.iter().any(|w| w.contains("empty input")),
        "{r:?}"
    );
    let r = parse_reader(&b""[..]).expect("reads");
    assert_eq!(r.kind, ReportKind::Unknown);
}

#[test]
fn binary_garbage() {
    let mut bytes: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    bytes.extend_from_slice(&[0, 0xff, 0xfe, b'\n', 0xc3]);
    let r = parse_reader(&bytes[..]).expect("reads");
    assert_eq!(r.kind, ReportKind::Unknown);
    assert!(r.metrics.is_empty());
    assert!(r.warnings.iter().any(|w| w.contains("binary")), "{r:?}");
    // A huge line without newlines stays bounded and unread.
    let huge = vec![b'x'; 5 << 20];
    let r = parse_reader(&huge[..]).expect("reads");
    assert_eq!(r.kind, ReportKind::Unknown);
}

#[test]
fn invalid_utf8_around_a_report_is_harmless() {
    let mut bytes = b"\xff\xfe garbage \xc3\x28\n[TRT-LLM] [I] \x80\x81\n".to_vec();
    bytes.extend_from_slice(text(B009).as_bytes());
    bytes.extend_from_slice(b"\xf0\x28\x8c\x28 trailing junk\n");
    let r = parse_reader(&bytes[..]).expect("reads");
    assert_eq!(r.era.as_deref(), Some("D"));
    check(&r, &b009_values(), true, "009+garbage");
}

#[test]
fn report_cut_mid_line() {
    let t = text(B009);
    let at = t.find("1155.5715").expect("value") + "1155.57".len();
    let r = parse_str(&t[..at]);
    assert_eq!(r.era.as_deref(), Some("D"));
    // Everything before the cut line is kept; the cut value is not read as 1155.57.
    assert_eq!(r.metrics.get("TOTAL_TOKEN_THROUGHPUT"), Some(&22153.5399));
    assert_eq!(r.metrics.get("INFERENCE_TIME"), None);
    assert!(r.missing.contains(&"INFERENCE_TIME".to_string()));
    let w = r.warnings.join("\n");
    assert!(w.contains("line 38") && w.contains("ends mid-line"), "{w}");
}

#[test]
fn nan_inf_and_negative_values_are_refused() {
    let t = text(B009)
        .replace(
            "Total Latency (ms):                               1155.5715",
            "Total Latency (ms):                               nan",
        )
        .replace("[TTFT] P50    : 159.7857", "[TTFT] P50    : inf")
        .replace(
            "Request Throughput (req/sec):                     86.5373",
            "Request Throughput (req/sec):                     -86.5373",
        )
        .replace("[GTPS] P99    : 150.4894", "[GTPS] P99    : NaN");
    let r = parse_str(&t);
    for m in ["INFERENCE_TIME", "P50_TTFT", "SEQ_THROUGHPUT", "P99_GTPS"] {
        assert!(!r.metrics.contains_key(m), "{m} stored");
        assert!(r.missing.contains(&m.to_string()), "{m} not missing");
    }
    let w = r.warnings.join("\n");
    for (line, why) in [
        (38, "is not a finite number"),
        (61, "is not a finite number"),
        (35, "is negative"),
        (74, "is not a finite number"),
    ] {
        assert!(w.contains(&format!("line {line}: ")), "line {line} in {w}");
        assert!(w.contains(why), "{why} in {w}");
    }
    assert!(r.metrics.values().all(|v| v.is_finite() && *v >= 0.0));
    // The same in log lines: a NaN KV cache is not stored.
    let r = parse_str(
        "[TensorRT-LLM][INFO] [MemUsageChange] Allocated nan GiB for max tokens in paged KV cache (1).\n",
    );
    assert!(r.metrics.is_empty());
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("KV_CACHE_SIZE not stored"))
    );
}

#[test]
fn two_reports_in_one_log() {
    let t = format!("{}\n{}", text(B001), text(B009));
    let r = parse_str(&t);
    assert_eq!(r.reports_found, 2);
    assert_eq!(r.era.as_deref(), Some("D"));
    check(&r, &b009_values(), true, "001+009");
    let w = r.warnings.join("\n");
    assert!(w.contains("2 reports") && w.contains("last one"), "{w}");
    // The same report twice, with blank lines between: still two reports.
    let t = format!("{0}\n\n{0}", text(B017));
    let r = parse_str(&t);
    assert_eq!(r.reports_found, 2);
    assert_eq!(r.metrics.get("INFERENCE_TIME"), Some(&16406.100739));
}

#[test]
fn kv_cache_over_ranks_and_estimation_pass_is_the_maximum() {
    let t = format!(
        "{}{}",
        "[TensorRT-LLM][INFO] [MemUsageChange] Allocated 0.56 GiB for max tokens in paged KV cache (8224).\n\
         [TensorRT-LLM][RANK 1][INFO] [MemUsageChange] Allocated 61.20 GiB for max tokens in paged KV cache (1048576).\n\
         [1,0]<stdout>:[TensorRT-LLM][INFO] [MemUsageChange] Allocated 61.27 GiB for max tokens in paged KV cache (1048576).\n\
         [12/20/2025-04:21:10] [TRT-LLM AUTO-DEPLOY] [I] Final KV cache size after resize: 60.00 GiB (4096 pages)\n",
        text(B009)
    );
    let r = parse_str(&t);
    assert_eq!(r.metrics.get("KV_CACHE_SIZE"), Some(&61.27));
    assert_eq!(r.upstream_value("KV_CACHE_SIZE"), Some(61.27));
    assert_eq!(r.era.as_deref(), Some("D"));
}

// ---------------------------------------------------------------- whitespace and prefixes

fn expand_tabs(s: &str) -> String {
    let mut out = String::new();
    for line in s.split_inclusive('\n') {
        let mut col = 0;
        for c in line.chars() {
            if c == '\t' {
                let n = 8 - col % 8;
                out.push_str(&" ".repeat(n));
                col += n;
            } else {
                out.push(c);
                col += 1;
            }
        }
    }
    out
}

fn runs_of_spaces_to_tab(s: &str) -> String {
    let mut out = String::new();
    let mut spaces = 0;
    for c in s.chars() {
        if c == ' ' {
            spaces += 1;
            continue;
        }
        match spaces {
            0 => {}
            1 => out.push(' '),
            _ => out.push('\t'),
        }
        spaces = 0;
        out.push(c);
    }
    out
}

fn per_line(s: &str, f: impl Fn(&str) -> String) -> String {
    s.lines().map(|l| f(l) + "\n").collect()
}

fn same_reading(a: &Report, b: &Report, what: &str) {
    assert_eq!(a.kind, b.kind, "{what}");
    assert_eq!(a.era, b.era, "{what}");
    assert_eq!(a.metrics, b.metrics, "{what}");
    assert_eq!(a.missing, b.missing, "{what}");
    assert_eq!(a.reports_found, b.reports_found, "{what}");
    assert_eq!(a.streaming, b.streaming, "{what}");
}

#[test]
fn whitespace_crlf_prefix_and_repetition_variants_read_the_same() {
    type Variant = (&'static str, fn(&str) -> String);
    let variants: [Variant; 11] = [
        ("TABs expanded", expand_tabs),
        ("runs of spaces to TAB", runs_of_spaces_to_tab),
        ("each TAB as one space", |s| s.replace('\t', " ")),
        ("trailing spaces", |s| per_line(s, |l| format!("{l}   \t "))),
        ("CRLF", |s| s.replace('\n', "\r\n")),
        ("TRT-LLM logger prefix", |s| {
            per_line(s, |l| format!("[01/18/2025-01:01:42] [TRT-LLM] [I] {l}"))
        }),
        ("C++ logger prefix", |s| {
            per_line(s, |l| format!("[TensorRT-LLM][INFO] {l}"))
        }),
        ("mpirun tag and ISO time", |s| {
            per_line(s, |l| format!("[1,0]<stdout>:2025-11-24T08:01:02.123Z {l}"))
        }),
        ("every line twice", |s| per_line(s, |l| format!("{l}\n{l}"))),
        ("progress bar redrawn with CR", |s| {
            per_line(s, |l| format!("Loading 50%|##  |\r{l}"))
        }),
        ("leading spaces", |s| per_line(s, |l| format!("  {l}"))),
    ];
    for f in [
        B001, B009, B017, B018, B025, B027, B029, B030, B032, S01, S02, B005, L01,
    ] {
        let original = parse_str(&text(f));
        for (what, v) in &variants {
            let r = parse_str(&v(&text(f)));
            same_reading(&original, &r, &format!("{f}: {what}"));
        }
    }
}

// ---------------------------------------------------------------- report.json

#[test]
fn report_json_agrees_with_its_log() {
    let json = parse_report_json(&text("report_json/009-report.json")).expect("valid");
    assert_eq!(json.kind, ReportKind::Throughput);
    assert!(json.streaming);
    assert!(json.missing.is_empty(), "{:?}", json.missing);
    assert_eq!(json.metrics.get("INFERENCE_TIME"), Some(&1155.571512));
    assert_eq!(json.metrics.get("TOKEN_THROUGHPUT"), Some(&11076.770014));
    assert_eq!(json.metrics.get("P50_GTPS"), Some(&131.444418));
    // The JSON names exactly the metrics the console report prints.
    let log = parse_file(B009);
    let a: Vec<&String> = json.metrics.keys().collect();
    let b: Vec<&String> = log.metrics.keys().collect();
    assert_eq!(a, b);

    let r = reconcile(log.clone(), Some(json.clone()));
    assert_eq!(r.warnings, Vec::<String>::new());
    assert_eq!(r.era.as_deref(), Some("D"));
    assert_eq!(r.metrics, json.metrics);
    // Without report.json the log stands as it is.
    assert_eq!(reconcile(log.clone(), None), log);
    // Text-only metrics (KV cache) survive.
    let with_kv = parse_str(&format!(
        "[TensorRT-LLM][INFO] [MemUsageChange] Allocated 61.5 GiB for max tokens in paged KV cache (1).\n{}",
        text(B009)
    ));
    let r = reconcile(with_kv, Some(json));
    assert_eq!(r.metrics.get("KV_CACHE_SIZE"), Some(&61.5));
    assert_eq!(r.metrics.get("INFERENCE_TIME"), Some(&1155.571512));
}

/// Issue 20 item 4: two records of one run that disagree beyond print rounding are a
/// contradiction (the measurement becomes INVALID), naming both values; not a warning.
#[test]
fn report_json_mismatch_is_a_contradiction() {
    let json = parse_report_json(&text("report_json/009-report-mismatch.json")).expect("valid");
    let r = reconcile(parse_file(B009), Some(json));
    let c = r.contradictions.join("\n");
    assert_eq!(r.contradictions.len(), 2, "{c}");
    assert!(c.contains("SEQ_THROUGHPUT") && c.contains("88.102311") && c.contains("86.5373"));
    assert!(c.contains("FIRST_TOKEN_TIME"));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.metrics.get("SEQ_THROUGHPUT"), Some(&88.102311));
}

/// Issue 20 item 4: what no run can produce, whatever the GPU: a latency longer than the whole
/// benchmark, one GPU's throughput above all GPUs', a rate and duration that do not make the
/// request count. Every real log among the fixtures satisfies all three.
#[test]
fn values_no_run_can_produce_together_are_contradictions() {
    let base = parse_report_json(&text("report_json/009-report.json")).expect("valid");
    assert!(base.contradictions.is_empty(), "{:?}", base.contradictions);
    let with = |key: &str, v: f64| {
        let mut m = base.metrics.clone();
        m.insert(key.to_string(), v);
        perfgate::report::consistency(&m)
    };
    let c = with("P50_TTFT", 1e300);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(
        c[0].contains("P50_TTFT is 1e300 ms, longer than the whole benchmark"),
        "{c:?}"
    );
    assert!(c[0].contains("INFERENCE_TIME 1155.57 ms"), "{c:?}");
    // At the benchmark's length (one request: its latency is the benchmark) it is possible.
    assert!(with("MAX_LATENCY", 1155.571512).is_empty());
    let c = with("PER_GPU_OUTPUT_THROUGHPUT", 1e300);
    assert!(
        c.iter()
            .any(|c| c.contains("more than the total output throughput")),
        "{c:?}"
    );
    let c = with("SEQ_THROUGHPUT", 200.0);
    assert!(c.iter().any(|c| c.contains("NUM_REQUESTS is 100")), "{c:?}");
    // A report.json alone is checked too.
    let forged = text("report_json/009-report.json").replacen("1091.790481", "1e300", 1);
    let r = parse_report_json(&forged).expect("valid");
    assert!(
        r.contradictions
            .iter()
            .any(|c| c.starts_with("P50_LATENCY is 1e300 ms")),
        "{:?}",
        r.contradictions
    );
    for file in ALL {
        let r = parse_file(file);
        assert!(
            r.contradictions.is_empty(),
            "{file}: {:?}",
            r.contradictions
        );
    }
}

#[test]
fn report_json_fills_what_an_excerpt_lacks() {
    // 029 lacks the request details; a report.json of the same run supplies them.
    let json = r#"{"request_info": {"num_requests": 30000, "avg_num_concurrent_requests": 7.5,
        "avg_input_length": 128.0, "avg_output_length": 28.0},
        "performance": {"total_latency_ms": 120736.44012, "request_throughput_req_s": 248.47513}}"#;
    let r = reconcile(
        parse_file(B029),
        Some(parse_report_json(json).expect("valid")),
    );
    assert_eq!(r.metrics.get("NUM_REQUESTS"), Some(&30000.0));
    assert!(r.missing.is_empty(), "{:?}", r.missing);
    assert!(r.warnings.iter().all(|w| !w.contains("report.json says")));
}

#[test]
fn report_json_invalid_or_missing() {
    match parse_report_json("{\n  \"performance\": {\n    \"total_latency_ms\": 1.0,,\n") {
        Err(ReportError::Json { line, column, .. }) => assert_eq!((line, column), (3, 29)),
        other => panic!("expected a JSON error, got {other:?}"),
    }
    assert!(matches!(
        parse_report_json(""),
        Err(ReportError::Json { .. })
    ));
    let e = parse_report_json("[1, 2]").expect_err("not an object");
    assert!(e.to_string().contains("not a JSON object"), "{e}");
    let e = parse_report_json("{\"engine\": {}}").expect_err("no performance");
    assert!(e.to_string().contains("`performance`"), "{e}");
    // Python's NaN: read as missing, with a warning, not a parse failure.
    let r = parse_report_json(
        "{\"performance\": {\"total_latency_ms\": NaN, \"request_throughput_req_s\": -1,\n \
         \"avg_request_latency_ms\": \"fast\"}}",
    )
    .expect("readable");
    assert!(r.metrics.is_empty());
    assert!(r.missing.contains(&"INFERENCE_TIME".to_string()));
    assert_eq!(r.warnings.len(), 4, "{:?}", r.warnings);
    // A log with no report, reconciled with a report.json, says where the values came from.
    let r = reconcile(
        parse_str("no report here\n"),
        Some(parse_report_json(&text("report_json/009-report.json")).expect("valid")),
    );
    assert_eq!(r.kind, ReportKind::Throughput);
    assert!(r.warnings.iter().any(|w| w.contains("report.json alone")));
}

// ---------------------------------------------------------------- the metric table

#[test]
fn metric_table_is_one_consistent_table() {
    let mut seen = std::collections::HashSet::new();
    for d in METRICS {
        assert!(seen.insert(d.name), "{} listed twice", d.name);
        assert_eq!(metric(d.name).map(|m| m.name), Some(d.name));
        assert!(!d.about.is_empty(), "{}", d.name);
        assert!(
            d.name
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_'),
            "{}",
            d.name
        );
    }
    assert!(metric("token_throughput").is_none() && metric("NOPE").is_none());
    // Upstream's threshold sign disagrees with the real direction exactly for these two.
    let wrong: Vec<&str> = METRICS
        .iter()
        .filter(|d| d.upstream_sign_is_wrong())
        .map(|d| d.name)
        .collect();
    assert_eq!(wrong, vec!["TOTAL_TOKEN_THROUGHPUT", "USER_THROUGHPUT"]);
    let unit = |n: &str| metric(n).map(|d| d.unit);
    assert_eq!(unit("INFERENCE_TIME"), Some(Unit::Milliseconds));
    assert_eq!(unit("KV_CACHE_SIZE"), Some(Unit::GiB));
    assert_eq!(unit("TOKEN_THROUGHPUT"), Some(Unit::TokensPerSecondPerGpu));
    assert_eq!(unit("BUILD_TIME"), Some(Unit::Seconds));
    let dir = |n: &str| metric(n).map(|d| d.direction);
    assert_eq!(dir("KV_CACHE_SIZE"), Some(Direction::HigherIsBetter));
    assert_eq!(dir("P99_TPOT"), Some(Direction::LowerIsBetter));
    assert_eq!(
        metric("SEQ_THROUGHPUT").and_then(|d| d.upstream_threshold),
        Some((-0.1, 10.0))
    );
    // Serialized as symbols and "higher"/"lower".
    let json = serde_json::to_string(metric("P99_GTPS").expect("known")).expect("serializes");
    assert!(
        json.contains("\"unit\":\"tokens/s/user\"") && json.contains("\"direction\":\"higher\"")
    );
    let u: Unit = serde_json::from_str("\"GiB\"").expect("symbol");
    assert_eq!(u, Unit::GiB);
    assert!(serde_json::from_str::<Unit>("\"furlongs\"").is_err());
}

#[test]
fn parsed_names_are_table_names_and_values_are_sane() {
    for f in ALL {
        let r = parse_file(f);
        for (k, v) in &r.metrics {
            assert!(metric(k).is_some(), "{f}: {k} not in METRICS");
            assert!(v.is_finite() && *v >= 0.0, "{f}: {k} = {v}");
        }
        for m in &r.missing {
            assert!(
                metric(m).is_some() && !r.metrics.contains_key(m),
                "{f}: {m}"
            );
        }
        let json = serde_json::to_value(&r).expect("serializes");
        assert!(json["kind"].is_string());
    }
    let kinds: BTreeMap<&str, String> = ALL
        .iter()
        .map(|f| (*f, format!("{:?}", parse_file(f).kind)))
        .collect();
    assert_eq!(kinds[S01], "Serve");
}

// ---------------------------------------------------------------- properties

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Report-shaped lines, whole and broken, to shuffle into logs.
    fn line() -> impl Strategy<Value = String> {
        let mut pool: Vec<String> = Vec::new();
        for f in [B009, B017, B027, S02, B032, B005, L01] {
            pool.extend(text(f).lines().map(str::to_string));
        }
        pool.extend(
            [
                "=".repeat(59),
                "= PERFORMANCE OVERVIEW ".into(),
                "= DECODING STATISTICS (Eagle3)".into(),
                "[Latency] P50 : -1e400".into(),
                "[DAR] P90    :".into(),
                "Total Latency (ms): 1e308".into(),
                "Failed requests: 18446744073709551616".into(),
                "============ Serving Benchmark Result ============".into(),
                "Final KV cache size after resize: x GiB".into(),
                "Allocated 1 GiB for max tokens in paged KV cache".into(),
                "Peak memory usage of TRT CPU/GPU memory allocators: CPU 1 MiB, GPU 2 TiB".into(),
                "Total time of building all engines: 99:99:99:99".into(),
                "[".into(),
                "]".into(),
                "\u{feff}= STATISTICS".into(),
            ]
            .into_iter(),
        );
        (proptest::sample::select(pool), 0usize..120, any::<bool>()).prop_map(|(l, cut, keep)| {
            if keep {
                l
            } else {
                l.chars().take(cut).collect()
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let r = parse_reader(&bytes[..]).expect("a byte slice reads");
            prop_assert!(r.metrics.values().all(|v| v.is_finite() && *v >= 0.0));
            let _ = parse_report_json(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn shuffled_report_lines_keep_the_invariants(
            lines in proptest::collection::vec(line(), 0..150),
            crlf in any::<bool>(),
        ) {
            let sep = if crlf { "\r\n" } else { "\n" };
            let r = parse_str(&lines.join(sep));
            for (k, v) in &r.metrics {
                prop_assert!(metric(k).is_some(), "{}", k);
                prop_assert!(v.is_finite() && *v >= 0.0, "{} = {}", k, v);
            }
            for m in &r.missing {
                prop_assert!(!r.metrics.contains_key(m));
            }
            prop_assert!(r.warnings.len() <= 65);
            prop_assert!(r.era.is_none() || matches!(r.kind, ReportKind::Throughput | ReportKind::Latency));
        }
    }
}

// ---------------------------------------------------------------- the CLI

fn perfgate(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_perfgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("perfgate runs");
    if let Some(input) = stdin
        && let Some(mut s) = child.stdin.take()
    {
        s.write_all(input).expect("stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("perfgate ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_parse_json_and_table() {
    let f009 = format!("tests/fixtures/{B009}");
    let (code, out, err) = perfgate(&["parse", &f009], None);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["file"], f009.as_str());
    assert_eq!(v["kind"], "throughput");
    assert_eq!(v["era"], "D");
    assert_eq!(v["metrics"]["TOKEN_THROUGHPUT"], 11076.77);
    assert_eq!(v["missing"], serde_json::json!([]));
    assert_eq!(v["reports_found"], 1);

    let (code, out, _) = perfgate(&["parse", "--format", "table", &f009], None);
    assert_eq!(code, 0);
    assert!(out.starts_with(&format!("# {f009}: throughput report, era D, streaming\n")));
    let row = out
        .lines()
        .find(|l| l.starts_with("TOKEN_THROUGHPUT "))
        .expect("row");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols,
        ["TOKEN_THROUGHPUT", "11076.77", "tokens/s/gpu", "higher"]
    );

    // stdin, with report.json reconciled.
    let (code, out, err) = perfgate(
        &[
            "parse",
            "--report-json",
            "tests/fixtures/report_json/009-report-mismatch.json",
            "-",
        ],
        Some(text(B009).as_bytes()),
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(v["file"], "-");
    assert_eq!(v["metrics"]["SEQ_THROUGHPUT"], 88.102311);
    assert!(v["contradictions"].to_string().contains("report.json says"));
}

#[test]
fn cli_parse_not_a_report_exits_1_and_still_prints() {
    let l01 = format!("tests/fixtures/{L01}");
    let f001 = format!("tests/fixtures/{B001}");
    let (code, out, err) = perfgate(&["parse", &f001, &l01], None);
    assert_eq!(code, 1);
    assert!(
        err.contains(&l01) && err.contains("not a trtllm-bench"),
        "{err}"
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["era"], "B");
    assert_eq!(lines[1]["kind"], "unknown");
    assert!(lines[1]["warnings"].to_string().contains("look like"));

    let (code, _, err) = perfgate(&["parse", "tests/fixtures/no-such.log"], None);
    assert_eq!(code, 2);
    assert!(err.contains("no-such.log"), "{err}");
    let (code, _, err) = perfgate(&["parse", "--report-json", "Cargo.toml", &f001], None);
    assert_eq!(code, 2);
    assert!(err.contains("not valid JSON"), "{err}");
    let (code, _, err) = perfgate(&["parse", "--report-json", "no-such.json", &f001], None);
    assert_eq!(code, 2);
    assert!(
        err.contains("no-such.json") && err.contains("cannot read"),
        "{err}"
    );
    let (code, _, err) = perfgate(&["parse", "--report-json", "x.json", &f001, &l01], None);
    assert_eq!(code, 2);
    assert!(err.contains("exactly one LOG"), "{err}");
}
