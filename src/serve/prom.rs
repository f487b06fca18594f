//! The server's Prometheus `/metrics` before and after a level (vLLM, TensorRT-LLM, llama.cpp
//! `--metrics`, SGLang): counter, histogram and summary series are kept as deltas.
//!
//! Hand-written rather than the `prometheus-parse` crate: only `name{labels} value` and the
//! `# TYPE` lines matter here, and that crate (last released 2023) also builds regex and chrono
//! machinery for timestamps and exemplars a delta never needs. ~60 lines, tested below.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Series name with labels (`vllm:num_requests_running{model_name="m"}`) → value.
pub type Samples = BTreeMap<String, f64>;

/// Parses the text exposition format. Malformed lines are skipped (a scrape is a diagnostic,
/// never a reason to fail a run).
pub fn parse(text: &str) -> (Samples, HashMap<String, String>) {
    let mut samples = BTreeMap::new();
    let mut types = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((series, rest)) = split_series(line) else {
            continue;
        };
        let Some(value) = rest.split_whitespace().next() else {
            continue;
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        samples.insert(series.to_string(), value);
    }
    (samples, types)
}

/// `name{a="x y",b="}"} 1 123` → (`name{…}`, ` 1 123`), minding quoted label values.
fn split_series(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    let name_end = bytes
        .iter()
        .position(|b| *b == b'{' || b.is_ascii_whitespace())?;
    if bytes[name_end] != b'{' {
        return Some((&line[..name_end], &line[name_end..]));
    }
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(name_end + 1) {
        match (in_quotes, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (_, false, b'"') => in_quotes = !in_quotes,
            (false, _, b'}') => return Some((&line[..=i], &line[i + 1..])),
            _ => {}
        }
    }
    None
}

/// The family a series belongs to (`x_bucket{…}` → `x`), to look up its `# TYPE`.
fn family(series: &str) -> &str {
    let name = series.split('{').next().unwrap_or(series);
    for suffix in ["_bucket", "_sum", "_count", "_total", "_created"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base;
        }
    }
    name
}

/// After − before for counters, histograms and summaries (and untyped series ending in
/// `_total`); gauges are states, not amounts, and are left out.
pub fn deltas(before: &str, after: &str) -> Samples {
    let (b, _) = parse(before);
    let (a, types) = parse(after);
    let mut out = BTreeMap::new();
    for (series, va) in &a {
        let name = series.split('{').next().unwrap_or(series);
        let kind = types
            .get(name)
            .or_else(|| types.get(family(series)))
            .map(String::as_str);
        let cumulative = match kind {
            Some("counter" | "histogram" | "summary") => true,
            Some(_) => false,
            None => name.ends_with("_total"),
        };
        if !cumulative || name.ends_with("_created") {
            continue;
        }
        if let Some(vb) = b.get(series) {
            let d = va - vb;
            if d.is_finite() && d != 0.0 {
                out.insert(series.clone(), d);
            }
        }
    }
    out
}

/// One scrape; `None` when the endpoint is missing or unreadable (noted by the caller).
pub async fn scrape(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let r = client
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| super::http::describe(&e))?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status().as_u16()));
    }
    r.text().await.map_err(|e| super::http::describe(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_histogram_deltas_gauges_left_out() {
        let before = "# TYPE vllm:prompt_tokens counter\nvllm:prompt_tokens_total{model_name=\"m\"} 10\n\
            # TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} 3\n\
            # TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 4\nlat_sum 1.5\nlat_count 4\n";
        let after = "# TYPE vllm:prompt_tokens counter\nvllm:prompt_tokens_total{model_name=\"m\"} 110\n\
            # TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} 0\n\
            # TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 6\nlat_sum 2.5\nlat_count 6\n";
        let d = deltas(before, after);
        assert_eq!(
            d.get("vllm:prompt_tokens_total{model_name=\"m\"}"),
            Some(&100.0)
        );
        assert_eq!(d.get("lat_count"), Some(&2.0));
        assert_eq!(d.get("lat_sum"), Some(&1.0));
        assert_eq!(d.get("lat_bucket{le=\"+Inf\"}"), Some(&2.0));
        assert!(!d.keys().any(|k| k.contains("running")));
    }

    #[test]
    fn quoted_labels_and_junk() {
        let (s, _) = parse("a{x=\"} y\",z=\"\\\"\"} 5 1700000000\nbroken{ 1\nno_value\nb 2\n");
        assert_eq!(s.get("a{x=\"} y\",z=\"\\\"\"}"), Some(&5.0));
        assert_eq!(s.get("b"), Some(&2.0));
        assert_eq!(s.len(), 2);
    }
}
