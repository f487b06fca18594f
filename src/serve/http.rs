//! HTTP transport: OpenAI completions / chat and Triton's generate extension, streamed as SSE
//! or not. One pooled keep-alive client (HTTP/1.1, no proxy, Nagle off) shared by every
//! request, so connection setup is paid once per slot, not inside each TTFT.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};

use super::event::error_body_message;
use super::exchange::{Clock, Exchange, Flow, Outgoing};
use super::options::{Endpoint, Target};
use super::record::{ErrorClass, RequestRecord};
use super::sse::SseParser;

pub struct HttpClient {
    client: reqwest::Client,
    url: reqwest::Url,
    endpoint: Endpoint,
    streaming: bool,
    stall: Duration,
    max_bytes: usize,
    /// Send `Connection: close` (a server that closes after each response; see
    /// `Profile::closes_streams`).
    connection_close: bool,
}

/// The base URL without a trailing `/` or `/v1`.
pub fn base_url(url: &str) -> String {
    let u = url.trim_end_matches('/');
    u.strip_suffix("/v1").unwrap_or(u).to_string()
}

/// `pool`: idle connections kept per host for reuse; 0 opens a connection per request.
pub fn build_client(target: &Target, pool: usize) -> Result<reqwest::Client, String> {
    let mut headers = HeaderMap::new();
    if let Some(key) = &target.api_key {
        let v = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| "the API key has characters a header cannot carry".to_string())?;
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(pool)
        .pool_idle_timeout(Duration::from_secs(300))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The request URL of an endpoint.
pub fn endpoint_url(target: &Target) -> String {
    let base = base_url(&target.url);
    match target.endpoint {
        Endpoint::Completions => format!("{base}/v1/completions"),
        Endpoint::Chat => format!("{base}/v1/chat/completions"),
        Endpoint::Triton | Endpoint::TritonGrpc => {
            let op = if target.streaming {
                "generate_stream"
            } else {
                "generate"
            };
            format!("{base}/v2/models/{}/{op}", target.model)
        }
    }
}

/// The error chain of a reqwest error in one line (its Display hides the cause).
pub fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

impl HttpClient {
    pub fn new(
        target: &Target,
        client: reqwest::Client,
        connection_close: bool,
    ) -> Result<HttpClient, String> {
        let url = endpoint_url(target);
        let url = reqwest::Url::parse(&url).map_err(|e| format!("bad URL {url}: {e}"))?;
        Ok(HttpClient {
            client,
            url,
            endpoint: target.endpoint,
            streaming: target.streaming,
            stall: target.stall_timeout,
            max_bytes: target.max_response_bytes,
            connection_close,
        })
    }

    /// Sends one request and reads its whole response. Never fails: every problem is recorded
    /// in the returned record's `error`.
    pub async fn send(&self, clock: Clock, out: Outgoing, body: Bytes) -> RequestRecord {
        let t_send = clock.now();
        let request_id = out.request_id.clone();
        let mut ex = Exchange::new(out, self.endpoint, t_send);
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-request-id", request_id);
        if self.connection_close {
            request = request.header(reqwest::header::CONNECTION, "close");
        }
        let sent = request.body(body).send().await;
        let t = clock.now();
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let class = if e.is_connect() {
                    ErrorClass::Connect
                } else {
                    ErrorClass::Disconnected
                };
                ex.fail(t, class, describe(&e));
                return ex.finish(t);
            }
        };
        ex.rec.t_headers_ns = Some(t);
        let status = resp.status();
        ex.rec.http_status = Some(status.as_u16());
        if !status.is_success() {
            let body = self.read_all(&clock, &mut resp, &mut ex).await;
            let t = clock.now();
            if let Some(body) = body {
                let class = if status.is_client_error() {
                    ErrorClass::Http4xx
                } else {
                    ErrorClass::Http5xx
                };
                ex.fail(
                    t,
                    class,
                    format!("HTTP {}: {}", status.as_u16(), error_body_message(&body)),
                );
            }
            return ex.finish(t);
        }
        if !self.streaming {
            if let Some(body) = self.read_all(&clock, &mut resp, &mut ex).await {
                let t = clock.now();
                ex.rec.t_first_event_ns = Some(t);
                ex.on_body(t, &body);
                return ex.finish(t);
            }
            let t = clock.now();
            return ex.finish(t);
        }
        self.read_stream(&clock, &mut resp, &mut ex).await;
        let t = clock.now();
        ex.finish(t)
    }

    /// A whole body, within the size and stall limits (`None`: failed, recorded in `ex`).
    async fn read_all(
        &self,
        clock: &Clock,
        resp: &mut reqwest::Response,
        ex: &mut Exchange,
    ) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout(self.stall, resp.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    if body.len() + bytes.len() > self.max_bytes {
                        ex.fail(
                            clock.now(),
                            ErrorClass::TooLarge,
                            format!("the response is larger than {} bytes", self.max_bytes),
                        );
                        return None;
                    }
                    body.extend_from_slice(&bytes);
                }
                Ok(Ok(None)) => return Some(body),
                Ok(Err(e)) => {
                    ex.fail(clock.now(), ErrorClass::Disconnected, describe(&e));
                    return None;
                }
                Err(_) => {
                    ex.fail(
                        clock.now(),
                        ErrorClass::Stalled,
                        format!("no data for {:.0} s", self.stall.as_secs_f64()),
                    );
                    return None;
                }
            }
        }
    }

    async fn read_stream(&self, clock: &Clock, resp: &mut reqwest::Response, ex: &mut Exchange) {
        let mut parser = SseParser::new(self.max_bytes);
        let mut total = 0usize;
        // The start of the body, to show if it turns out not to be an event stream.
        let mut head: Vec<u8> = Vec::new();
        loop {
            let chunk = tokio::time::timeout(self.stall, resp.chunk()).await;
            let t = clock.now();
            match chunk {
                Ok(Ok(Some(bytes))) => {
                    total += bytes.len();
                    if total > self.max_bytes {
                        ex.fail(
                            t,
                            ErrorClass::TooLarge,
                            format!("the stream is larger than {} bytes", self.max_bytes),
                        );
                        return;
                    }
                    if head.len() < 300 {
                        head.extend_from_slice(&bytes[..bytes.len().min(300 - head.len())]);
                    }
                    parser.feed(&bytes);
                    loop {
                        match parser.next_event() {
                            Ok(Some(event)) => {
                                if ex.on_event(t, &event.data) == Flow::Stop {
                                    return;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                ex.fail(t, ErrorClass::TooLarge, e.to_string());
                                return;
                            }
                        }
                    }
                }
                Ok(Ok(None)) => {
                    // Some servers close right after their last data line, without the blank
                    // line that ends an event: take it rather than lose the end of a stream.
                    if let Some(event) = parser.finish()
                        && ex.on_event(t, &event.data) == Flow::Stop
                    {
                        return;
                    }
                    // OpenAI streams end with `[DONE]` or at least a finish reason; Triton's
                    // generate_stream just ends.
                    let complete = ex.saw_done
                        || ex.saw_finish
                        || matches!(self.endpoint, Endpoint::Triton | Endpoint::TritonGrpc);
                    if ex.rec.t_first_event_ns.is_none() && !head.is_empty() {
                        ex.fail(
                            t,
                            ErrorClass::Malformed,
                            format!(
                                "the response is not an event stream (no `data:` line): {}",
                                String::from_utf8_lossy(&head).trim()
                            ),
                        );
                    } else if !complete {
                        ex.fail(
                            t,
                            ErrorClass::Truncated,
                            "the stream ended without [DONE] or a finish reason",
                        );
                    }
                    return;
                }
                Ok(Err(e)) => {
                    ex.fail(
                        t,
                        ErrorClass::Disconnected,
                        format!("the connection broke mid-stream: {}", describe(&e)),
                    );
                    return;
                }
                Err(_) => {
                    ex.fail(
                        t,
                        ErrorClass::Stalled,
                        format!(
                            "the stream sent nothing for {:.0} s",
                            self.stall.as_secs_f64()
                        ),
                    );
                    return;
                }
            }
        }
    }
}
