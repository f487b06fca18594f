//! `trtllm-bench --report_json FILE`: the same statistics the console report prints, unrounded
//! (reference §6). Python's `json.dumps` writes non-finite floats as bare `NaN`/`Infinity`,
//! which is not JSON; they are read as missing values (with a warning) instead of making the
//! whole file unreadable.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Report, ReportError, ReportKind};
use crate::record::metric::METRICS;

type Obj = Map<String, Value>;

const PERCENTILES: [(&str, &str); 7] = [
    ("minimum", "MIN"),
    ("maximum", "MAX"),
    ("average", "AVG"),
    ("p50", "P50"),
    ("p90", "P90"),
    ("p95", "P95"),
    ("p99", "P99"),
];

struct Reader {
    metrics: BTreeMap<String, f64>,
    warnings: Vec<String>,
}

impl Reader {
    /// Stores `obj[key]` as `metric` if it is a finite, non-negative number.
    fn number(&mut self, obj: &Obj, path: &str, key: &str, metrics: &[&str]) {
        let Some(v) = obj.get(key) else {
            return;
        };
        let value = match v {
            Value::Number(n) => n.as_f64(),
            Value::Null => {
                self.warnings.push(format!(
                    "report.json: `{path}.{key}` is null (or NaN/Infinity): not stored"
                ));
                return;
            }
            _ => None,
        };
        match value {
            Some(x) if x.is_finite() && x >= 0.0 => {
                for m in metrics {
                    self.metrics.insert((*m).to_string(), x + 0.0);
                }
            }
            Some(x) => self.warnings.push(format!(
                "report.json: `{path}.{key}` = {x} is negative or not finite: not stored"
            )),
            None => self.warnings.push(format!(
                "report.json: `{path}.{key}` = {v} is not a number: not stored"
            )),
        }
    }

    fn percentiles(&mut self, obj: &Obj, path: &str, key: &str, family: &str) {
        let Some(p) = obj.get(key) else {
            return;
        };
        let Some(p) = p.as_object() else {
            if !p.is_null() {
                self.warnings.push(format!(
                    "report.json: `{path}.{key}` is not an object of percentiles: not read"
                ));
            }
            return;
        };
        for (k, stat) in PERCENTILES {
            let name = format!("{stat}_{family}");
            if let Some(def) = crate::record::metric::metric(&name) {
                self.number(p, &format!("{path}.{key}"), k, &[def.name]);
            }
        }
    }
}

pub(crate) fn parse(text: &str) -> Result<Report, ReportError> {
    let (clean, replaced) = replace_non_finite(text);
    let value: Value = serde_json::from_str(&clean).map_err(|e| ReportError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let Value::Object(root) = value else {
        return Err(ReportError::NotAReport(
            "report.json: the top level is not a JSON object (expected trtllm-bench \
             --report_json's object with `engine`, `world_info`, `request_info` and \
             `performance`)"
                .into(),
        ));
    };
    let Some(perf) = root.get("performance").and_then(Value::as_object) else {
        return Err(ReportError::NotAReport(
            "report.json: no `performance` object (expected trtllm-bench --report_json's \
             `engine`, `world_info`, `request_info` and `performance` keys)"
                .into(),
        ));
    };
    let mut r = Reader {
        metrics: BTreeMap::new(),
        warnings: replaced
            .iter()
            .map(|(line, tok)| {
                format!(
                    "report.json line {line}: `{tok}` (Python's non-finite float): read as null"
                )
            })
            .collect(),
    };
    if let Some(req) = root.get("request_info").and_then(Value::as_object) {
        let p = "request_info";
        r.number(req, p, "num_requests", &["NUM_REQUESTS"]);
        r.number(req, p, "avg_num_concurrent_requests", &["AVG_CONCURRENCY"]);
        r.number(req, p, "avg_input_length", &["AVG_INPUT_LENGTH"]);
        r.number(req, p, "avg_output_length", &["AVG_OUTPUT_LENGTH"]);
    }
    let p = "performance";
    r.number(perf, p, "total_latency_ms", &["INFERENCE_TIME"]);
    r.number(perf, p, "avg_request_latency_ms", &["AVG_REQUEST_LATENCY"]);
    r.number(perf, p, "request_throughput_req_s", &["SEQ_THROUGHPUT"]);
    r.number(
        perf,
        p,
        "system_output_throughput_tok_s",
        &["TOTAL_OUTPUT_THROUGHPUT"],
    );
    r.number(
        perf,
        p,
        "system_total_throughput_tok_s",
        &["TOTAL_TOKEN_THROUGHPUT"],
    );
    r.number(
        perf,
        p,
        "output_throughput_per_user_tok_s",
        &["PER_USER_OUTPUT_THROUGHPUT"],
    );
    r.number(
        perf,
        p,
        "output_throughput_per_gpu_tok_s",
        &["PER_GPU_OUTPUT_THROUGHPUT", "TOKEN_THROUGHPUT"],
    );
    r.percentiles(perf, p, "request_latency_percentiles_ms", "LATENCY");
    let streaming = match root.get("streaming_metrics").and_then(Value::as_object) {
        Some(s) => {
            let p = "streaming_metrics";
            r.number(s, p, "token_output_speed_tok_s", &["PER_USER_OUTPUT_SPEED"]);
            r.number(s, p, "avg_ttft_ms", &["FIRST_TOKEN_TIME"]);
            r.number(s, p, "avg_tpot_ms", &["OUTPUT_TOKEN_TIME"]);
            r.percentiles(s, p, "tpot_percentiles", "TPOT");
            r.percentiles(s, p, "ttft_percentiles", "TTFT");
            r.percentiles(s, p, "gen_tps_percentiles", "GTPS");
            true
        }
        None => false,
    };
    let spec_decoding = match root.get("decoding_stats").and_then(Value::as_object) {
        Some(d) => {
            let p = "decoding_stats";
            r.percentiles(d, p, "num_draft_tokens_percentiles", "DRAFT_TOKENS");
            r.percentiles(
                d,
                p,
                "num_accepted_draft_tokens_percentiles",
                "ACCEPTED_DRAFT_TOKENS",
            );
            r.percentiles(
                d,
                p,
                "draft_acceptance_rate_percentiles",
                "DRAFT_ACCEPTANCE_RATE",
            );
            r.percentiles(d, p, "acceptance_length_percentiles", "ACCEPTANCE_LENGTH");
            true
        }
        None => false,
    };
    // The JSON carries every key of the newest report (era D): that is what it should have.
    let expected = super::eras::expected_throughput(super::eras::D, streaming, spec_decoding);
    let missing = METRICS
        .iter()
        .map(|d| d.name)
        .filter(|n| expected.iter().any(|e| e == n) && !r.metrics.contains_key(*n))
        .map(str::to_string)
        .collect();
    let contradictions = super::consistency(&r.metrics);
    Ok(Report {
        kind: ReportKind::Throughput,
        era: None,
        contradictions,
        metrics: r.metrics,
        missing,
        warnings: r.warnings,
        reports_found: 1,
        failed_requests: None,
        error_markers: Vec::new(),
        streaming,
    })
}

/// Replaces Python's bare `NaN`, `Infinity` and `-Infinity` (outside strings) with `null`.
fn replace_non_finite(text: &str) -> (String, Vec<(usize, &'static str)>) {
    const TOKENS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut replaced = Vec::new();
    let (mut i, mut line, mut in_string, mut copied) = (0, 1, false, 0);
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if c == b'"' {
            in_string = true;
        } else if let Some(tok) = TOKENS.iter().find(|t| bytes[i..].starts_with(t.as_bytes())) {
            out.push_str(&text[copied..i]);
            out.push_str("null");
            replaced.push((line, *tok));
            i += tok.len();
            copied = i;
            continue;
        }
        if c == b'\n' {
            line += 1;
        }
        i += 1;
    }
    // `i` may have stepped past the end over a final escape.
    out.push_str(text.get(copied..).unwrap_or(""));
    (out, replaced)
}

#[cfg(test)]
mod tests {
    use super::replace_non_finite;

    #[test]
    fn python_non_finite_floats() {
        let (s, r) = replace_non_finite("{\"a\": NaN,\n \"b\": -Infinity, \"c\": \"NaN\"}");
        assert_eq!(s, "{\"a\": null,\n \"b\": null, \"c\": \"NaN\"}");
        assert_eq!(r, vec![(1, "NaN"), (2, "-Infinity")]);
    }
}
