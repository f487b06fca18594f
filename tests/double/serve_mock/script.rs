//! The script of one response: when each event is due, and the trace of when it was sent.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Args;

pub struct State {
    pub args: Args,
    pub requests: AtomicU64,
    pub tokens: AtomicU64,
    pub prompt_tokens: AtomicU64,
    trace: Option<Mutex<std::fs::File>>,
    tokenizer: Option<tokenizers::Tokenizer>,
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl State {
    pub fn new(args: Args) -> Result<State, String> {
        let trace = match &args.trace {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("{}: {e}", p.display()))?,
            )),
            None => None,
        };
        let tokenizer = match &args.tokenizer {
            Some(p) => {
                let file = if p.is_dir() {
                    p.join("tokenizer.json")
                } else {
                    p.clone()
                };
                Some(
                    tokenizers::Tokenizer::from_file(&file)
                        .map_err(|e| format!("{}: {e}", file.display()))?,
                )
            }
            None => None,
        };
        Ok(State {
            args,
            requests: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            trace,
            tokenizer,
        })
    }

    /// The 1-based number of this request, counted for --fail-every.
    pub fn next_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn count_text(&self, text: &str) -> u64 {
        match &self.tokenizer {
            Some(t) => t
                .encode_fast(text, true)
                .map(|e| e.get_ids().len() as u64)
                .unwrap_or(0),
            None => text.split_whitespace().count() as u64,
        }
    }

    /// Prompt tokens as this server would report them.
    pub fn prompt_tokens(&self, body: &Value) -> u64 {
        let n = match body.get("prompt") {
            Some(Value::Array(ids)) => ids.len() as u64,
            Some(Value::String(s)) => self.count_text(s),
            _ => match body.get("messages").and_then(Value::as_array) {
                Some(ms) => ms
                    .iter()
                    .filter_map(|m| m.get("content").and_then(Value::as_str))
                    .map(|c| self.count_text(c))
                    .sum(),
                None => body
                    .get("text_input")
                    .and_then(Value::as_str)
                    .map_or(0, |t| self.count_text(t)),
            },
        };
        (n as i64 + self.args.prompt_skew).max(0) as u64
    }

    pub fn write_trace(&self, t: &Trace) {
        if let Some(f) = &self.trace {
            let line = serde_json::json!({
                "request_id": t.request_id,
                "path": t.path,
                "arrival_ns": t.arrival_ns,
                "events": t.events.iter().map(|(ns, kind, k)| serde_json::json!({"t_ns": ns, "kind": kind, "tokens": k})).collect::<Vec<_>>(),
                "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens,
                "fields": t.fields,
                "connection": t.connection,
            });
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{line}");
            }
        }
    }
}

/// When things are due for one request.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub arrival: Instant,
    pub ttft: Duration,
    pub itl: Duration,
    /// Output tokens generated.
    pub tokens: u64,
    /// Tokens per content event.
    pub k: u64,
}

impl Plan {
    pub fn new(state: &State, arrival: Instant, body: &Value, max_tokens: u64) -> Plan {
        let ms = |key: &str, default: f64| {
            body.get(key)
                .and_then(Value::as_f64)
                .filter(|v| v.is_finite() && *v >= 0.0)
                .unwrap_or(default)
        };
        let a = &state.args;
        let tokens = match a.eos_after {
            Some(n) => n.min(max_tokens),
            None => max_tokens,
        };
        Plan {
            arrival,
            ttft: Duration::from_secs_f64(ms("mock_ttft_ms", a.ttft_ms) / 1e3),
            itl: Duration::from_secs_f64(ms("mock_itl_ms", a.itl_ms) / 1e3),
            tokens,
            k: a.tokens_per_event,
        }
    }

    pub fn events(&self) -> u64 {
        self.tokens.div_ceil(self.k)
    }

    /// Tokens in content event `i`.
    pub fn tokens_in(&self, i: u64) -> u64 {
        self.k.min(self.tokens - i * self.k)
    }

    pub fn content_at(&self, i: u64) -> Instant {
        self.arrival + self.ttft + self.itl * i as u32
    }

    pub fn last_at(&self) -> Instant {
        self.content_at(self.events().saturating_sub(1))
    }
}

pub struct Trace {
    pub request_id: String,
    pub path: String,
    pub arrival_ns: u64,
    pub events: Vec<(u64, &'static str, u64)>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The request body: its JSON (HTTP) so tests can check what was asked.
    pub fields: Value,
    /// The request's `Connection` header (HTTP), if it had one.
    pub connection: Option<String>,
}

pub type Chunk = Result<Bytes, std::io::Error>;

/// Sends events at their due times and notes when each went out.
pub struct Emitter {
    pub tx: mpsc::Sender<Chunk>,
    pub trace: Trace,
}

impl Emitter {
    /// Waits until `at` and sends; false when the client has gone.
    pub async fn emit(
        &mut self,
        at: Instant,
        kind: &'static str,
        tokens: u64,
        bytes: Bytes,
    ) -> bool {
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = self.tx.closed() => return false,
        }
        self.trace.events.push((monotonic_ns(), kind, tokens));
        self.tx.send(Ok(bytes)).await.is_ok()
    }

    /// Breaks the connection: the body ends with an error, so the server aborts it.
    pub async fn cut(&mut self) {
        self.trace.events.push((monotonic_ns(), "cut", 0));
        let _ = self
            .tx
            .send(Err(std::io::Error::other("connection cut by --cut-after")))
            .await;
    }

    /// Sends nothing more until the client goes away (or an hour passes).
    pub async fn stall(&mut self) {
        self.trace.events.push((monotonic_ns(), "stall", 0));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = self.tx.closed() => {}
        }
    }
}

pub fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// A body stream fed by a channel.
pub fn body_stream(rx: mpsc::Receiver<Chunk>) -> axum::body::Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    axum::body::Body::from_stream(stream)
}

/// What the request asks of the output length (`max_tokens`, else 16 like OpenAI).
pub fn max_tokens(body: &Value) -> u64 {
    body.get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(16)
}

/// The `Connection` header as sent (a test checks who asks the server to close).
pub fn connection_header(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub fn request_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}
