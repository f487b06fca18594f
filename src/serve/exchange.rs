//! One request's bookkeeping while its response arrives: every event is timestamped when it
//! is read and folded into the [`RequestRecord`]; transports (HTTP SSE, gRPC) only feed it.

use std::time::Instant;

use super::event::{Interpreted, interpret};
use super::options::Endpoint;
use super::record::{ContentEvent, ErrorClass, RequestError, RequestRecord, Usage};

/// Nanoseconds since the run's epoch.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub epoch: Instant,
}

impl Clock {
    #[inline]
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// What a request is before it is sent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub index: u64,
    pub request_id: String,
    pub sample: usize,
    pub t_due_ns: u64,
    pub prompt_tokens_client: Option<u64>,
    pub prompt_ids: bool,
    pub requested_output_tokens: u64,
    pub reference: Option<String>,
}

/// Whether to keep reading.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

pub struct Exchange {
    pub rec: RequestRecord,
    endpoint: Endpoint,
    text: String,
    cumulative_tokens: Option<u64>,
    pub saw_done: bool,
    pub saw_finish: bool,
}

pub fn error(class: ErrorClass, message: impl Into<String>) -> RequestError {
    RequestError {
        class,
        message: message.into(),
    }
}

impl Exchange {
    pub fn new(out: Outgoing, endpoint: Endpoint, t_send_ns: u64) -> Exchange {
        Exchange {
            rec: RequestRecord {
                index: out.index,
                request_id: out.request_id,
                sample: out.sample,
                t_due_ns: out.t_due_ns,
                t_send_ns,
                t_headers_ns: None,
                t_first_event_ns: None,
                content: Vec::new(),
                t_end_ns: t_send_ns,
                http_status: None,
                error: None,
                prompt_tokens_client: out.prompt_tokens_client,
                prompt_ids: out.prompt_ids,
                output_tokens_client: None,
                usage: Usage::default(),
                requested_output_tokens: out.requested_output_tokens,
                finish_reason: None,
                text: None,
                reference: out.reference,
                server_timings: None,
                avg_decoded_tokens_per_iter: None,
                accuracy: None,
            },
            endpoint,
            text: String::new(),
            cumulative_tokens: None,
            saw_done: false,
            saw_finish: false,
        }
    }

    /// One event's data, read at `t`.
    pub fn on_event(&mut self, t: u64, data: &[u8]) -> Flow {
        let parsed = match interpret(self.endpoint, data) {
            Ok(p) => p,
            Err(msg) => {
                self.fail(t, ErrorClass::Malformed, format!("malformed event: {msg}"));
                return Flow::Stop;
            }
        };
        self.on_interpreted(t, parsed)
    }

    pub fn on_interpreted(&mut self, t: u64, p: Interpreted) -> Flow {
        if self.rec.t_first_event_ns.is_none() {
            self.rec.t_first_event_ns = Some(t);
        }
        if let Some(msg) = p.error {
            self.fail(t, ErrorClass::InStream, msg);
            return Flow::Stop;
        }
        if p.done {
            self.saw_done = true;
            return Flow::Continue;
        }
        if p.prompt_tokens.is_some() {
            self.rec.usage.prompt_tokens = p.prompt_tokens;
        }
        let mut tokens = None;
        if let Some(c) = p.completion_tokens {
            let before = self.cumulative_tokens.unwrap_or(0);
            tokens = Some(c.saturating_sub(before));
            self.cumulative_tokens = Some(c);
            self.rec.usage.completion_tokens = Some(c);
        }
        if p.is_content() {
            self.rec.content.push(ContentEvent {
                t_ns: t,
                bytes: p.text.len().min(u32::MAX as usize) as u32,
                tokens: tokens.map(|k| k.min(u32::MAX as u64) as u32),
            });
            self.text.push_str(&p.text);
        }
        if let Some(f) = p.finish_reason {
            self.saw_finish = true;
            self.rec.finish_reason = Some(f);
        }
        if p.timings.is_some() {
            self.rec.server_timings = p.timings;
        }
        if p.avg_decoded_tokens_per_iter.is_some() {
            self.rec.avg_decoded_tokens_per_iter = p.avg_decoded_tokens_per_iter;
        }
        Flow::Continue
    }

    /// A whole non-streamed response body, read at `t`.
    pub fn on_body(&mut self, t: u64, body: &[u8]) {
        match interpret(self.endpoint, body) {
            Ok(p) => {
                self.on_interpreted(t, p);
            }
            Err(msg) => self.fail(
                t,
                ErrorClass::Malformed,
                format!("malformed response: {msg}"),
            ),
        }
    }

    pub fn fail(&mut self, t: u64, class: ErrorClass, message: impl Into<String>) {
        if self.rec.error.is_none() {
            self.rec.error = Some(error(class, message));
        }
        self.rec.t_end_ns = t;
    }

    pub fn finish(mut self, t: u64) -> RequestRecord {
        if self.rec.error.is_none() {
            self.rec.t_end_ns = t;
        }
        self.rec.text = Some(std::mem::take(&mut self.text));
        self.rec
    }
}
