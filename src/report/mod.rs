// TEMPORARY local stand-in for the report module being written on branch `report` (not committed).
pub mod metric;
use serde::Serialize;
use std::collections::BTreeMap;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    Throughput,
    Latency,
    Build,
    TrtllmBuild,
    Serve,
    Unknown,
}
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub kind: ReportKind,
    pub era: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    pub missing: Vec<String>,
    pub warnings: Vec<String>,
    pub reports_found: usize,
    pub failed_requests: Option<u64>,
    pub error_markers: Vec<String>,
    pub streaming: bool,
}
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("json: {0}")]
    Json(String),
}
pub fn parse_reader<R: std::io::BufRead>(mut r: R) -> Result<Report, ReportError> {
    let mut s = String::new();
    r.read_to_string(&mut s)?;
    Ok(parse_str(&s))
}
pub fn parse_str(text: &str) -> Report {
    let mut metrics = BTreeMap::new();
    let mut kind = ReportKind::Unknown;
    let mut failed = None;
    let mut markers = Vec::new();
    let mut n = 0;
    for l in text.lines() {
        let l = l.trim();
        let mut put = |k: &str, pfx: &str| {
            if let Some(v) = l
                .split_once(pfx)
                .and_then(|(_, v)| v.trim().split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
            {
                metrics.insert(k.to_string(), v);
            }
        };
        if l.starts_with("= PERFORMANCE OVERVIEW") {
            kind = ReportKind::Throughput;
            n += 1;
        }
        if l.contains("Engine generation completed in") {
            kind = ReportKind::Build;
        }
        put("INFERENCE_TIME", "Total Latency (ms):");
        put("SEQ_THROUGHPUT", "Request Throughput (req/sec):");
        put("TOKEN_THROUGHPUT", "GPU Output Throughput (tps/gpu):");
        put(
            "FIRST_TOKEN_TIME",
            "Average time-to-first-token [TTFT] (ms):",
        );
        put(
            "OUTPUT_TOKEN_TIME",
            "Average time-per-output-token [TPOT] (ms):",
        );
        put("KV_CACHE_SIZE", "Allocated");
        put("BUILD_TIME", "Engine generation completed in");
        if let Some(v) = l.strip_prefix("Failed requests:") {
            failed = v.trim().parse().ok();
        }
        for m in ["!FAILED REQUESTS!", "!CHECK LOG FOR ERRORS!"] {
            if l.contains(m) {
                markers.push(m.to_string());
            }
        }
    }
    Report {
        kind,
        era: None,
        metrics,
        missing: vec![],
        warnings: vec![],
        reports_found: n,
        failed_requests: failed,
        error_markers: markers,
        streaming: false,
    }
}
pub fn parse_report_json(_text: &str) -> Result<Report, ReportError> {
    Err(ReportError::Json("stub".into()))
}
pub fn reconcile(text: Report, _json: Option<Report>) -> Report {
    text
}
