//! One request, as measured: raw monotonic timestamps (nanoseconds since the run's epoch), what
//! the server said, and the metrics derived from them (docs/serve-bench.md, "Metrics").
//!
//! The derivations are pure functions of the raw record, so they can be checked exactly
//! against hand-computed values, and re-derived later from the per-request JSONL.

use serde::{Deserialize, Serialize};

/// A content event: the time it was read, its text length and, when the server says, how many
/// tokens it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentEvent {
    pub t_ns: u64,
    pub bytes: u32,
    /// Tokens in this event: a per-chunk usage delta (`continuous_usage_stats`), else unknown.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tokens: Option<u32>,
}

/// Why a request failed. `class` is stable (counted per class); `message` is the server's or
/// the transport's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestError {
    pub class: ErrorClass,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Could not connect (refused, DNS, reset before the response).
    Connect,
    /// HTTP 4xx.
    Http4xx,
    /// HTTP 5xx (and other non-2xx).
    Http5xx,
    /// An error object inside a 200 stream (or a gRPC `error_message`).
    InStream,
    /// The connection broke while the response was being read.
    Disconnected,
    /// The stream ended without the end marker and without a finish reason.
    Truncated,
    /// Nothing arrived for the stall timeout.
    Stalled,
    /// The request did not finish within the request timeout.
    Timeout,
    /// An event or body that is not what the API promises (not JSON, wrong shape).
    Malformed,
    /// An event or body above the size limit.
    TooLarge,
    /// Stopped by Ctrl-C before it finished.
    Cancelled,
}

impl ErrorClass {
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::InStream => "in_stream",
            ErrorClass::Disconnected => "disconnected",
            ErrorClass::Truncated => "truncated",
            ErrorClass::Stalled => "stalled",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Malformed => "malformed",
            ErrorClass::TooLarge => "too_large",
            ErrorClass::Cancelled => "cancelled",
        }
    }
}

/// Token counts the server reported (`usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// A measured request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Index in the level (warmup requests are not recorded).
    pub index: u64,
    /// The `X-Request-Id` header sent.
    pub request_id: String,
    /// Which dataset entry was sent.
    pub sample: usize,
    /// When the schedule wanted it sent (closed loop: when a slot became free).
    pub t_due_ns: u64,
    /// When the request began to be written.
    pub t_send_ns: u64,
    /// Response status line and headers read (gRPC: the stream's response headers).
    pub t_headers_ns: Option<u64>,
    /// First SSE `data:` / gRPC message of any kind.
    pub t_first_event_ns: Option<u64>,
    /// Every event that carried generated content, in order.
    pub content: Vec<ContentEvent>,
    /// The response ended (`[DONE]`, end of body, final gRPC response) or failed.
    pub t_end_ns: u64,
    pub http_status: Option<u16>,
    pub error: Option<RequestError>,
    /// Prompt tokens as perfgate counted them (ids sent, or the tokenizer on the text).
    pub prompt_tokens_client: Option<u64>,
    /// The prompt went as token ids, so the client's count is exact (a text prompt's count
    /// misses what the server adds: a chat template, a BOS).
    #[serde(default)]
    pub prompt_ids: bool,
    /// Output tokens by the client tokenizer on the generated text (needs `--tokenizer`).
    pub output_tokens_client: Option<u64>,
    pub usage: Usage,
    /// The output length asked for (`max_tokens`).
    pub requested_output_tokens: u64,
    pub finish_reason: Option<String>,
    /// The generated text (kept for accuracy scoring and client-side counting).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub text: Option<String>,
    /// The dataset's reference output, if it has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reference: Option<String>,
    /// llama.cpp's `timings` object from the final event, as sent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server_timings: Option<serde_json::Value>,
    /// TensorRT-LLM's `avg_decoded_tokens_per_iter` (speculative decoding), if sent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub avg_decoded_tokens_per_iter: Option<f64>,
    /// With `--accuracy`: the generated text scored against `reference` (completed requests
    /// with a reference only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy: Option<crate::accuracy::PairScores>,
}

/// Per-request metrics (milliseconds; tokens per second for throughputs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    /// Output tokens: server usage if reported, else the client tokenizer, else content events.
    pub osl: u64,
    pub osl_source: OslSource,
    /// First content − sent.
    pub ttft_ms: Option<f64>,
    /// First content − due (includes client queueing).
    pub ttft_sched_ms: Option<f64>,
    /// Last content − sent (non-streaming: end − sent).
    pub e2el_ms: Option<f64>,
    /// (E2EL − TTFT) / (OSL − 1), OSL > 1.
    pub tpot_ms: Option<f64>,
    /// (E2EL − TTFT) / (OSL − tokens of the first event), when per-event token counts exist.
    pub tpot_exact_ms: Option<f64>,
    /// Gaps between consecutive content events (upstream's "ITL").
    pub itl_ms: Vec<f64>,
    /// Each gap divided by the tokens of the event that ended it, where that is known.
    pub itl_token_ms: Vec<f64>,
    /// OSL / E2EL (TensorRT-LLM's per-request "User throughput").
    pub user_tok_s: Option<f64>,
    /// Sent − due.
    pub send_lag_ms: f64,
    pub time_to_headers_ms: Option<f64>,
    pub time_to_first_event_ms: Option<f64>,
    /// Tokens in the first content event, when known.
    pub first_event_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OslSource {
    #[default]
    Usage,
    Tokenizer,
    Events,
}

fn ms(a: u64, b: u64) -> f64 {
    (b as f64 - a as f64) / 1e6
}

impl RequestRecord {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    pub fn t_first_token_ns(&self) -> Option<u64> {
        self.content.first().map(|e| e.t_ns)
    }

    pub fn t_last_token_ns(&self) -> Option<u64> {
        self.content.last().map(|e| e.t_ns)
    }

    /// The output length used for the metrics and where it came from.
    pub fn osl(&self) -> (u64, OslSource) {
        if let Some(n) = self.usage.completion_tokens {
            (n, OslSource::Usage)
        } else if let Some(n) = self.output_tokens_client {
            (n, OslSource::Tokenizer)
        } else {
            let tokens: Option<u64> = self
                .content
                .iter()
                .map(|e| e.tokens.map(u64::from))
                .sum::<Option<u64>>();
            (
                tokens.unwrap_or(self.content.len() as u64),
                OslSource::Events,
            )
        }
    }

    /// Tokens per content event: per-chunk usage where the server sent it; else one each when
    /// the output length equals the number of content events (one token per event).
    fn event_tokens(&self, osl: u64) -> Option<Vec<u64>> {
        if self.content.iter().all(|e| e.tokens.is_some()) && !self.content.is_empty() {
            return Some(
                self.content
                    .iter()
                    .map(|e| e.tokens.map_or(0, u64::from))
                    .collect(),
            );
        }
        (osl == self.content.len() as u64 && osl > 0).then(|| vec![1; self.content.len()])
    }

    /// The per-request metrics. `streaming`: without it there is one response and no TTFT.
    pub fn derive(&self, streaming: bool) -> Derived {
        let (osl, osl_source) = self.osl();
        let mut d = Derived {
            osl,
            osl_source,
            send_lag_ms: ms(self.t_due_ns, self.t_send_ns),
            time_to_headers_ms: self.t_headers_ns.map(|t| ms(self.t_send_ns, t)),
            time_to_first_event_ms: self.t_first_event_ns.map(|t| ms(self.t_send_ns, t)),
            ..Derived::default()
        };
        if !self.ok() {
            return d;
        }
        if !streaming {
            let e2el = ms(self.t_send_ns, self.t_end_ns);
            d.e2el_ms = Some(e2el);
            d.user_tok_s = (e2el > 0.0).then(|| osl as f64 / (e2el / 1e3));
            return d;
        }
        let (Some(first), Some(last)) = (self.t_first_token_ns(), self.t_last_token_ns()) else {
            return d;
        };
        let ttft = ms(self.t_send_ns, first);
        let e2el = ms(self.t_send_ns, last);
        d.ttft_ms = Some(ttft);
        d.ttft_sched_ms = Some(ms(self.t_due_ns, first));
        d.e2el_ms = Some(e2el);
        d.user_tok_s = (e2el > 0.0).then(|| osl as f64 / (e2el / 1e3));
        if osl > 1 {
            d.tpot_ms = Some((e2el - ttft) / (osl - 1) as f64);
        }
        d.itl_ms = self
            .content
            .windows(2)
            .map(|w| ms(w[0].t_ns, w[1].t_ns))
            .collect();
        if let Some(tokens) = self.event_tokens(osl) {
            d.first_event_tokens = tokens.first().copied();
            d.itl_token_ms = d
                .itl_ms
                .iter()
                .zip(&tokens[1..])
                .filter(|(_, k)| **k > 0)
                .map(|(gap, k)| gap / *k as f64)
                .collect();
            let first_tokens = tokens[0];
            let total: u64 = tokens.iter().sum();
            if total > first_tokens {
                d.tpot_exact_ms = Some((e2el - ttft) / (total - first_tokens) as f64);
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(content: &[(u64, Option<u32>)]) -> RequestRecord {
        RequestRecord {
            index: 0,
            request_id: "r0".into(),
            sample: 0,
            t_due_ns: 1_000_000,
            t_send_ns: 3_000_000,
            t_headers_ns: Some(4_000_000),
            t_first_event_ns: Some(5_000_000),
            content: content
                .iter()
                .map(|&(t, k)| ContentEvent {
                    t_ns: t,
                    bytes: 4,
                    tokens: k,
                })
                .collect(),
            t_end_ns: 900_000_000,
            http_status: Some(200),
            error: None,
            prompt_tokens_client: Some(10),
            prompt_ids: true,
            output_tokens_client: None,
            usage: Usage::default(),
            requested_output_tokens: 4,
            finish_reason: Some("length".into()),
            text: None,
            reference: None,
            server_timings: None,
            avg_decoded_tokens_per_iter: None,
            accuracy: None,
        }
    }

    #[test]
    fn one_token_per_event() {
        // TTFT 100 ms after send; then 3 gaps of 20 ms; [DONE] much later does not count.
        let r = rec(&[
            (103_000_000, None),
            (123_000_000, None),
            (143_000_000, None),
            (163_000_000, None),
        ]);
        let d = r.derive(true);
        assert_eq!(d.osl, 4);
        assert_eq!(d.osl_source, OslSource::Events);
        assert_eq!(d.ttft_ms, Some(100.0));
        assert_eq!(d.ttft_sched_ms, Some(102.0));
        assert_eq!(d.e2el_ms, Some(160.0));
        assert_eq!(d.tpot_ms, Some(20.0));
        assert_eq!(d.itl_ms, vec![20.0, 20.0, 20.0]);
        assert_eq!(d.itl_token_ms, vec![20.0, 20.0, 20.0]);
        assert_eq!(d.tpot_exact_ms, Some(20.0));
        assert_eq!(d.send_lag_ms, 2.0);
        assert_eq!(d.time_to_headers_ms, Some(1.0));
        assert_eq!(d.user_tok_s, Some(4.0 / 0.160));
    }

    #[test]
    fn several_tokens_per_event_from_usage() {
        // 2 events of 3 tokens each, usage says 6: ITL is the chunk gap (upstream meaning),
        // TPOT divides by OSL-1 = 5, the per-token ITL and exact TPOT by the 3 tokens.
        let mut r = rec(&[(53_000_000, None), (83_000_000, None)]);
        r.usage.completion_tokens = Some(6);
        let d = r.derive(true);
        assert_eq!(d.osl, 6);
        assert_eq!(d.itl_ms, vec![30.0]);
        assert_eq!(d.tpot_ms, Some(6.0));
        assert!(d.itl_token_ms.is_empty(), "tokens per event unknown");
        let mut r = rec(&[(53_000_000, Some(3)), (83_000_000, Some(3))]);
        r.usage.completion_tokens = Some(6);
        let d = r.derive(true);
        assert_eq!(d.itl_token_ms, vec![10.0]);
        assert_eq!(d.tpot_exact_ms, Some(10.0));
        assert_eq!(d.first_event_tokens, Some(3));
    }

    #[test]
    fn failed_and_single_token_requests() {
        let mut r = rec(&[(53_000_000, None)]);
        let d = r.derive(true);
        assert_eq!(d.tpot_ms, None);
        assert!(d.itl_ms.is_empty());
        r.error = Some(RequestError {
            class: ErrorClass::Http5xx,
            message: "boom".into(),
        });
        let d = r.derive(true);
        assert_eq!(d.ttft_ms, None);
        assert_eq!(d.e2el_ms, None);
    }

    #[test]
    fn non_streaming_has_only_e2el() {
        let mut r = rec(&[]);
        r.usage.completion_tokens = Some(4);
        r.t_end_ns = 203_000_000;
        let d = r.derive(false);
        assert_eq!(d.e2el_ms, Some(200.0));
        assert_eq!(d.ttft_ms, None);
        assert_eq!(d.tpot_ms, None);
        assert_eq!(d.user_tok_s, Some(20.0));
    }
}
