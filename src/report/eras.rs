//! What a trtllm-bench report looks like in each era: section titles, the labels of each
//! section and the metric each stores, the evidence each gives about the era, and the metrics a
//! complete report of an era contains (for `missing`).
//!
//! Eras (reference: trtllm-bench-and-dataset.md §4): A (0.12-~0.14, `= STATISTICS`, seconds),
//! B (~0.15-0.17, `Token Throughput (tokens/sec)` in `= PERFORMANCE OVERVIEW`, and the separate
//! latency report), C (~0.18-0.19, `REQUEST DETAILS`, `(tokens/sec/user)` wording), C' (C plus
//! `Total Token Throughput` after the per-GPU line), D (0.21+, `(tps/user)`/`(tps/gpu)` wording,
//! `Total Token Throughput` right after `Total Output Throughput`, GTPS breakdown).
//! Era is decided from the text alone (wording and line order), never from a version string:
//! excerpts rarely carry one, and docs re-use old output under new version numbers.

pub(crate) use super::label::{A, ALL, B, C, CP, D, LabelDef, Order};
use super::label::{failed, l, ordered, scaled, streaming};

const CD: u8 = C | CP | D;

const ERA_NAMES: [(u8, &str); 5] = [(A, "A"), (B, "B"), (C, "C"), (CP, "C'"), (D, "D")];

/// The era's name when the evidence leaves exactly one.
pub(crate) fn era_name(eras: u8) -> Option<&'static str> {
    ERA_NAMES.iter().find(|(b, _)| *b == eras).map(|(_, n)| *n)
}

/// `C, C' or D`.
pub(crate) fn era_list(eras: u8) -> String {
    let names: Vec<&str> = ERA_NAMES
        .iter()
        .filter(|(b, _)| eras & b != 0)
        .map(|(_, n)| *n)
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_string(),
        None => "none".into(),
    }
}

/// A report section, named by its `= TITLE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Backend,
    Machine,
    Request,
    World,
    Performance,
    Statistics,
    Decoding,
    Dataset,
    GeneralOverview,
    ThroughputOverview,
    LatencyOverview,
    GenerationBreakdown,
    AcceptanceBreakdown,
    BuildInfo,
    BuildConfig,
    /// `trtllm-bench build`'s DATASET DETAILS (outside any throughput report).
    BuildDataset,
    /// The serving benchmark's result block.
    Serve,
    /// A title perfgate does not know, framed like a report section.
    Other,
}

impl Section {
    pub(crate) fn title(self) -> &'static str {
        match self {
            Section::Backend => "ENGINE DETAILS / PYTORCH BACKEND",
            Section::Machine => "MACHINE DETAILS",
            Section::Request => "REQUEST DETAILS",
            Section::World => "WORLD + RUNTIME INFORMATION",
            Section::Performance => "PERFORMANCE OVERVIEW",
            Section::Statistics => "STATISTICS",
            Section::Decoding => "DECODING STATISTICS",
            Section::Dataset | Section::BuildDataset => "DATASET DETAILS",
            Section::GeneralOverview => "GENERAL OVERVIEW",
            Section::ThroughputOverview => "THROUGHPUT OVERVIEW",
            Section::LatencyOverview => "LATENCY OVERVIEW",
            Section::GenerationBreakdown => "GENERATION LATENCY BREAKDOWN",
            Section::AcceptanceBreakdown => "ACCEPTANCE BREAKDOWN",
            Section::BuildInfo => "ENGINE BUILD INFO",
            Section::BuildConfig => "ENGINE CONFIGURATION DETAILS",
            Section::Serve => "Serving Benchmark Result",
            Section::Other => "an unknown section",
        }
    }

    /// Position in a throughput/latency report. A section that does not come after the last
    /// one seen starts another report (two reports in one log).
    pub(crate) fn rank(self) -> Option<u8> {
        Some(match self {
            Section::Backend => 0,
            Section::Machine => 1,
            Section::Request => 2,
            Section::World => 3,
            Section::Performance | Section::Statistics | Section::GeneralOverview => 4,
            Section::Decoding | Section::ThroughputOverview => 5,
            Section::LatencyOverview => 6,
            Section::GenerationBreakdown => 7,
            Section::AcceptanceBreakdown => 8,
            Section::Dataset => 9,
            _ => return None,
        })
    }

    pub(crate) fn is_latency_report(self) -> bool {
        matches!(
            self,
            Section::GeneralOverview
                | Section::ThroughputOverview
                | Section::LatencyOverview
                | Section::GenerationBreakdown
                | Section::AcceptanceBreakdown
        )
    }

    /// The labels of a section whose every line perfgate knows; `None` for sections with
    /// free-form or uninteresting lines (engine details, dataset tables).
    pub(crate) fn labels(self) -> Option<&'static [LabelDef]> {
        Some(match self {
            Section::Request => REQUEST,
            Section::Performance | Section::Statistics => PERFORMANCE,
            Section::GeneralOverview => GENERAL_OVERVIEW,
            Section::ThroughputOverview => THROUGHPUT_OVERVIEW,
            Section::LatencyOverview => LATENCY_OVERVIEW,
            Section::GenerationBreakdown => GENERATION_BREAKDOWN,
            Section::AcceptanceBreakdown => ACCEPTANCE_BREAKDOWN,
            Section::Serve => super::serve::LABELS,
            _ => return None,
        })
    }
}

/// Section titles (compared ignoring case and runs of whitespace; a trailing space, as titles
/// carry since ~1.0, is trimmed first). The era mask is evidence the *exact* spelling gives:
/// `= PyTorch backend` is 0.17 only, `= PYTORCH BACKEND` 0.18 on.
pub(crate) fn title(text: &[u8]) -> Option<(Section, u8)> {
    const TITLES: [(&str, Section, u8); 16] = [
        ("ENGINE DETAILS", Section::Backend, ALL),
        ("PyTorch backend", Section::Backend, B),
        ("PYTORCH BACKEND", Section::Backend, CD),
        ("MACHINE DETAILS", Section::Machine, D),
        ("REQUEST DETAILS", Section::Request, CD),
        ("WORLD + RUNTIME INFORMATION", Section::World, ALL),
        ("STATISTICS", Section::Statistics, A),
        ("PERFORMANCE OVERVIEW", Section::Performance, B | CD),
        ("DATASET DETAILS", Section::Dataset, ALL),
        ("GENERAL OVERVIEW", Section::GeneralOverview, B),
        ("THROUGHPUT OVERVIEW", Section::ThroughputOverview, B),
        ("LATENCY OVERVIEW", Section::LatencyOverview, B),
        (
            "GENERATION LATENCY BREAKDOWN",
            Section::GenerationBreakdown,
            B,
        ),
        ("ACCEPTANCE BREAKDOWN", Section::AcceptanceBreakdown, B),
        ("ENGINE BUILD INFO", Section::BuildInfo, ALL),
        ("ENGINE CONFIGURATION DETAILS", Section::BuildConfig, ALL),
    ];
    // `DECODING STATISTICS (<mode>)`: the mode is free text (MTP, Eagle3, ...).
    const DECODING: &[u8] = b"DECODING STATISTICS";
    if text.len() >= DECODING.len() && text[..DECODING.len()].eq_ignore_ascii_case(DECODING) {
        return Some((Section::Decoding, ALL));
    }
    if let Some((_, s, eras)) = TITLES.iter().find(|(t, _, _)| text == t.as_bytes()) {
        return Some((*s, *eras));
    }
    // Another spelling of a known title: evidence of any era that title exists in.
    let (_, section, _) = TITLES
        .iter()
        .find(|(t, _, _)| super::text::label_eq(text, t))?;
    let eras = TITLES
        .iter()
        .filter(|(_, s, _)| s == section)
        .fold(0, |acc, (_, _, e)| acc | e);
    Some((*section, eras))
}

/// `= REQUEST DETAILS` (eras C-D).
static REQUEST: &[LabelDef] = &[
    l("Number of requests", &["NUM_REQUESTS"], CD),
    l("Number of concurrent requests", &["AVG_CONCURRENCY"], CD),
    l("Average Input Length (tokens)", &["AVG_INPUT_LENGTH"], CD),
    l("Average Output Length (tokens)", &["AVG_OUTPUT_LENGTH"], CD),
    failed("Failed requests"),
];

/// `= PERFORMANCE OVERVIEW` of every era, and era A's `= STATISTICS`.
static PERFORMANCE: &[LabelDef] = &[
    // Eras A-B keep the request details here.
    l("Number of requests", &["NUM_REQUESTS"], A | B),
    l(
        "Average Input Length (tokens)",
        &["AVG_INPUT_LENGTH"],
        A | B,
    ),
    l(
        "Average Output Length (tokens)",
        &["AVG_OUTPUT_LENGTH"],
        A | B,
    ),
    // Output tokens / total latency, the quantity later eras call Total Output Throughput.
    l(
        "Token Throughput (tokens/sec)",
        &["TOTAL_OUTPUT_THROUGHPUT"],
        A | B,
    ),
    l("Request Throughput (req/sec)", &["SEQ_THROUGHPUT"], ALL),
    ordered(
        "Total Latency (ms)",
        &["INFERENCE_TIME"],
        B | CD,
        Order::TotalLatency,
    ),
    scaled("Total Latency (seconds)", &["INFERENCE_TIME"], A, 3),
    ordered(
        "Total Output Throughput (tokens/sec)",
        &["TOTAL_OUTPUT_THROUGHPUT"],
        CD,
        Order::TotalOutput,
    ),
    ordered(
        "Total Token Throughput (tokens/sec)",
        &["TOTAL_TOKEN_THROUGHPUT"],
        CP | D,
        Order::TotalToken,
    ),
    l(
        "Per User Output Throughput (tokens/sec/user)",
        &["PER_USER_OUTPUT_THROUGHPUT"],
        C | CP,
    ),
    l(
        "Per User Output Throughput [w/ ctx] (tps/user)",
        &["PER_USER_OUTPUT_THROUGHPUT"],
        D,
    ),
    // TOKEN_THROUGHPUT is upstream's name for this very line (its regex matches inside it).
    ordered(
        "Per GPU Output Throughput (tokens/sec/gpu)",
        &["PER_GPU_OUTPUT_THROUGHPUT", "TOKEN_THROUGHPUT"],
        C | CP,
        Order::PerGpu,
    ),
    ordered(
        "Per GPU Output Throughput (tps/gpu)",
        &["PER_GPU_OUTPUT_THROUGHPUT", "TOKEN_THROUGHPUT"],
        D,
        Order::PerGpu,
    ),
    l("Average request latency (ms)", &["AVG_REQUEST_LATENCY"], CD),
    streaming(
        "Per User Output Speed [1/TPOT] (tokens/sec/user)",
        &["PER_USER_OUTPUT_SPEED"],
        C | CP,
    ),
    streaming(
        "Per User Output Speed (tps/user)",
        &["PER_USER_OUTPUT_SPEED"],
        D,
    ),
    streaming(
        "Average time-to-first-token [TTFT] (ms)",
        &["FIRST_TOKEN_TIME"],
        CD,
    ),
    streaming(
        "Average time-per-output-token [TPOT] (ms)",
        &["OUTPUT_TOKEN_TIME"],
        CD,
    ),
    failed("Failed requests"),
];

// The era-B latency report (`trtllm-bench latency`, ~0.15-0.17).
static GENERAL_OVERVIEW: &[LabelDef] = &[
    l("Number of requests", &["NUM_REQUESTS"], B),
    l("Average Input Length (tokens)", &["AVG_INPUT_LENGTH"], B),
    l("Average Output Length (tokens)", &["AVG_OUTPUT_LENGTH"], B),
    l("Average request latency (ms)", &["AVG_REQUEST_LATENCY"], B),
];

static THROUGHPUT_OVERVIEW: &[LabelDef] = &[
    l("Request Throughput (req/sec)", &["SEQ_THROUGHPUT"], B),
    // Output tokens / total latency in this report, whatever the label says.
    l(
        "Total Token Throughput (tokens/sec)",
        &["TOTAL_OUTPUT_THROUGHPUT"],
        B,
    ),
    l(
        "Generation Token Throughput (tokens/sec)",
        &["GENERATION_TOKEN_THROUGHPUT"],
        B,
    ),
];

static LATENCY_OVERVIEW: &[LabelDef] = &[
    l("Total Latency (ms)", &["INFERENCE_TIME"], B),
    streaming("Average time-to-first-token (ms)", &["FIRST_TOKEN_TIME"], B),
    streaming("Average inter-token latency (ms)", &["INTER_TOKEN_TIME"], B),
    l("Acceptance Rate (Speculative)", &["ACCEPTANCE_RATE"], B),
];

// Upstream prints its p50 under the `P90` label in both breakdowns.
static GENERATION_BREAKDOWN: &[LabelDef] = &[
    l("MIN (ms)", &["MIN_GENERATION_LATENCY"], B),
    l("MAX (ms)", &["MAX_GENERATION_LATENCY"], B),
    l("AVG (ms)", &["AVG_GENERATION_LATENCY"], B),
    l("P90 (ms)", &["P50_GENERATION_LATENCY"], B),
    l("P95 (ms)", &["P95_GENERATION_LATENCY"], B),
    l("P99 (ms)", &["P99_GENERATION_LATENCY"], B),
];

static ACCEPTANCE_BREAKDOWN: &[LabelDef] = &[
    l("MIN", &["MIN_ACCEPTANCE_RATE"], B),
    l("MAX", &["MAX_ACCEPTANCE_RATE"], B),
    l("AVG", &["AVG_ACCEPTANCE_RATE"], B),
    l("P90", &["P50_ACCEPTANCE_RATE"], B),
    l("P95", &["P95_ACCEPTANCE_RATE"], B),
    l("P99", &["P99_ACCEPTANCE_RATE"], B),
];

/// Labels that identify a report line when seen outside any section: the lookalike check.
pub(crate) fn is_report_label(label: &[u8]) -> bool {
    [PERFORMANCE, REQUEST]
        .iter()
        .flat_map(|t| t.iter())
        .any(|d| !d.failed_requests && super::text::label_eq(label, d.label))
}

/// `[Latency] P50    : 1091.7905`: the metric name, and the tag's evidence.
pub(crate) struct Percentile {
    pub metric: &'static str,
    pub streaming: bool,
    pub spec_decoding: bool,
    pub eras: u8,
}

pub(crate) fn percentile(tag: &[u8], stat: &[u8]) -> Option<Percentile> {
    const TAGS: [(&str, &str, bool, bool, u8); 8] = [
        ("Latency", "LATENCY", false, false, CD),
        ("TPOT", "TPOT", true, false, CD),
        ("TTFT", "TTFT", true, false, CD),
        ("GTPS", "GTPS", true, false, D),
        ("DT", "DRAFT_TOKENS", false, true, CD),
        ("ADT", "ACCEPTED_DRAFT_TOKENS", false, true, CD),
        ("DAR", "DRAFT_ACCEPTANCE_RATE", false, true, CD),
        ("AL", "ACCEPTANCE_LENGTH", false, true, CD),
    ];
    const STATS: [(&str, &str); 7] = [
        ("MINIMUM", "MIN"),
        ("MAXIMUM", "MAX"),
        ("AVERAGE", "AVG"),
        ("P50", "P50"),
        ("P90", "P90"),
        ("P95", "P95"),
        ("P99", "P99"),
    ];
    let (_, suffix, streaming, spec_decoding, eras) = TAGS
        .iter()
        .find(|(t, ..)| tag.eq_ignore_ascii_case(t.as_bytes()))?;
    let (_, prefix) = STATS
        .iter()
        .find(|(s, _)| stat.eq_ignore_ascii_case(s.as_bytes()))?;
    let name = format!("{prefix}_{suffix}");
    Some(Percentile {
        metric: crate::record::metric::metric(&name)?.name,
        streaming: *streaming,
        spec_decoding: *spec_decoding,
        eras: *eras,
    })
}

fn seven(family: &str) -> impl Iterator<Item = String> + '_ {
    ["MIN", "MAX", "AVG", "P50", "P90", "P95", "P99"]
        .into_iter()
        .map(move |s| format!("{s}_{family}"))
}

/// The metrics a complete throughput report of one era prints.
fn full_throughput(era: u8, streaming: bool, spec: bool) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let add = |v: &mut Vec<String>, names: &[&str]| v.extend(names.iter().map(|s| s.to_string()));
    if era & (A | B) != 0 {
        add(
            &mut v,
            &[
                "NUM_REQUESTS",
                "AVG_INPUT_LENGTH",
                "AVG_OUTPUT_LENGTH",
                "TOTAL_OUTPUT_THROUGHPUT",
                "SEQ_THROUGHPUT",
                "INFERENCE_TIME",
            ],
        );
        return v;
    }
    add(
        &mut v,
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
    );
    v.extend(seven("LATENCY"));
    if era & (CP | D) != 0 {
        add(&mut v, &["TOTAL_TOKEN_THROUGHPUT"]);
    }
    if streaming {
        add(
            &mut v,
            &[
                "PER_USER_OUTPUT_SPEED",
                "FIRST_TOKEN_TIME",
                "OUTPUT_TOKEN_TIME",
            ],
        );
        v.extend(seven("TPOT"));
        v.extend(seven("TTFT"));
        if era & D != 0 {
            v.extend(seven("GTPS"));
        }
    }
    if spec {
        for f in [
            "DRAFT_TOKENS",
            "ACCEPTED_DRAFT_TOKENS",
            "DRAFT_ACCEPTANCE_RATE",
            "ACCEPTANCE_LENGTH",
        ] {
            v.extend(seven(f));
        }
    }
    v
}

/// What a complete report of any of `eras` would print: the metrics common to all of them,
/// so an ambiguous excerpt is only told about what it certainly lacks.
pub(crate) fn expected_throughput(eras: u8, streaming: bool, spec: bool) -> Vec<String> {
    let eras = if eras == 0 { ALL } else { eras };
    let mut sets = ERA_NAMES
        .iter()
        .filter(|(b, _)| eras & b != 0)
        .map(|(b, _)| full_throughput(*b, streaming, spec));
    let Some(mut common) = sets.next() else {
        return Vec::new();
    };
    for s in sets {
        common.retain(|m| s.contains(m));
    }
    common
}

/// The era-B latency report, complete.
pub(crate) fn expected_latency() -> Vec<String> {
    [
        GENERAL_OVERVIEW,
        THROUGHPUT_OVERVIEW,
        LATENCY_OVERVIEW,
        GENERATION_BREAKDOWN,
        ACCEPTANCE_BREAKDOWN,
    ]
    .iter()
    .flat_map(|t| t.iter())
    .flat_map(|d| d.metrics.iter().map(|m| m.to_string()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_in_the_metric_table() {
        let tables = [
            REQUEST,
            PERFORMANCE,
            GENERAL_OVERVIEW,
            THROUGHPUT_OVERVIEW,
            LATENCY_OVERVIEW,
            GENERATION_BREAKDOWN,
            ACCEPTANCE_BREAKDOWN,
            super::super::serve::LABELS,
        ];
        for d in tables.iter().flat_map(|t| t.iter()) {
            for m in d.metrics {
                assert!(crate::record::metric::metric(m).is_some(), "{m}");
            }
        }
        for s in expected_throughput(D, true, true)
            .into_iter()
            .chain(expected_latency())
        {
            assert!(crate::record::metric::metric(&s).is_some(), "{s}");
        }
    }

    #[test]
    fn eras() {
        assert_eq!(era_list(C | CP | D), "C, C' or D");
        assert_eq!(era_name(CP), Some("C'"));
        assert_eq!(era_name(C | D), None);
        // C lacks TOTAL_TOKEN_THROUGHPUT, so an ambiguous C-D excerpt is not told it misses it.
        assert!(
            !expected_throughput(C | D, false, false).contains(&"TOTAL_TOKEN_THROUGHPUT".into())
        );
    }
}
