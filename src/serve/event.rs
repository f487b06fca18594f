//! What one streamed event (or one non-streamed response body) says: generated content,
//! token counts, the finish reason, an error object, server timings.
//!
//! Content is what a user sees generated: completions `choices[0].text`, chat
//! `choices[0].delta.content`, `reasoning_content` / `reasoning`, tool-call deltas, Triton's
//! `text_output`. A role-only chunk (`{"role":"assistant","content":""}`), a finish-only chunk
//! and a usage-only chunk are events but not content, so they move neither TTFT nor E2EL.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::options::Endpoint;

/// What an event contributes.
#[derive(Debug, Default, PartialEq)]
pub struct Interpreted {
    /// Generated text in this event (empty: not a content event).
    pub text: String,
    /// A tool-call delta counts as content even without text.
    pub tool_call: bool,
    pub prompt_tokens: Option<u64>,
    /// Cumulative completion tokens so far (per-chunk usage) or the final count.
    pub completion_tokens: Option<u64>,
    pub finish_reason: Option<String>,
    pub error: Option<String>,
    pub timings: Option<serde_json::Value>,
    pub avg_decoded_tokens_per_iter: Option<f64>,
    /// `data: [DONE]`.
    pub done: bool,
}

impl Interpreted {
    pub fn is_content(&self) -> bool {
        !self.text.is_empty() || self.tool_call
    }
}

#[derive(Deserialize)]
struct UsageJson {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    /// Non-streamed chat.
    #[serde(default, borrow)]
    message: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    avg_decoded_tokens_per_iter: Option<f64>,
}

#[derive(Deserialize)]
struct OpenAiChunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<UsageJson>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    /// vLLM's error response shape: `{"object":"error","message":…}`.
    #[serde(default, borrow)]
    object: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default)]
    timings: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TritonChunk<'a> {
    #[serde(default, borrow)]
    text_output: Option<Cow<'a, str>>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    avg_decoded_tokens_per_iter: Option<f64>,
}

/// The message of an error value: a string, or an object's `message` (else its JSON).
pub fn error_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => match o.get("message") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => v.to_string(),
        },
        other => other.to_string(),
    }
}

fn push(out: &mut String, s: Option<Cow<'_, str>>) {
    if let Some(s) = s {
        out.push_str(&s);
    }
}

/// Interprets one event's data (or a whole non-streamed body). `Err` is a malformed event:
/// not JSON, or not the API's shape.
pub fn interpret(endpoint: Endpoint, data: &[u8]) -> Result<Interpreted, String> {
    if data.trim_ascii() == b"[DONE]" {
        return Ok(Interpreted {
            done: true,
            ..Interpreted::default()
        });
    }
    match endpoint {
        Endpoint::Completions | Endpoint::Chat => interpret_openai(data),
        Endpoint::Triton | Endpoint::TritonGrpc => interpret_triton(data),
    }
}

fn malformed(data: &[u8], e: serde_json::Error) -> String {
    const SHOW: usize = 200;
    let shown = String::from_utf8_lossy(&data[..data.len().min(SHOW)]);
    let more = if data.len() > SHOW { "…" } else { "" };
    format!("not a JSON object ({e}): {shown}{more}")
}

fn interpret_openai(data: &[u8]) -> Result<Interpreted, String> {
    let chunk: OpenAiChunk<'_> = serde_json::from_slice(data).map_err(|e| malformed(data, e))?;
    let mut out = Interpreted::default();
    if let Some(e) = chunk.error.as_ref().filter(|e| !e.is_null()) {
        out.error = Some(error_text(e));
        return Ok(out);
    }
    if chunk.object.as_deref() == Some("error") {
        out.error = Some(
            chunk
                .message
                .map_or_else(|| "error object without a message".into(), Cow::into_owned),
        );
        return Ok(out);
    }
    if let Some(u) = chunk.usage {
        out.prompt_tokens = u.prompt_tokens;
        out.completion_tokens = u.completion_tokens;
    }
    out.timings = chunk.timings.filter(|t| !t.is_null());
    // One choice is requested (n = 1); a server sending more is shaped wrong for a benchmark
    // but the first choice is still the request's output.
    if let Some(choice) = chunk.choices.and_then(|c| c.into_iter().next()) {
        push(&mut out.text, choice.text);
        for d in [choice.delta, choice.message].into_iter().flatten() {
            push(&mut out.text, d.reasoning_content);
            push(&mut out.text, d.reasoning);
            push(&mut out.text, d.content);
            out.tool_call |= d.tool_calls.is_some_and(|t| !t.is_empty());
        }
        out.finish_reason = choice.finish_reason.map(Cow::into_owned);
        out.avg_decoded_tokens_per_iter = choice.avg_decoded_tokens_per_iter;
    }
    Ok(out)
}

fn interpret_triton(data: &[u8]) -> Result<Interpreted, String> {
    let chunk: TritonChunk<'_> = serde_json::from_slice(data).map_err(|e| malformed(data, e))?;
    let mut out = Interpreted::default();
    if let Some(e) = chunk.error.as_ref().filter(|e| !e.is_null()) {
        out.error = Some(error_text(e));
        return Ok(out);
    }
    push(&mut out.text, chunk.text_output);
    out.avg_decoded_tokens_per_iter = chunk.avg_decoded_tokens_per_iter;
    Ok(out)
}

/// The message in an error response body (FastAPI's `detail`, OpenAI's `error.message`,
/// vLLM's `message`, Triton's `error`), else the body itself, shortened.
pub fn error_body_message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["error", "detail", "message"] {
            if let Some(v) = o.get(key).filter(|v| !v.is_null()) {
                return shorten(&error_text(v));
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        shorten(text)
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 500;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(s: &str) -> Interpreted {
        interpret(Endpoint::Chat, s.as_bytes()).unwrap()
    }

    #[test]
    fn role_only_and_usage_only_chunks_are_not_content() {
        let role = chat(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#);
        assert!(!role.is_content());
        let role_null = chat(r#"{"choices":[{"delta":{"role":"assistant","content":null}}]}"#);
        assert!(!role_null.is_content());
        let usage = chat(
            r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#,
        );
        assert!(!usage.is_content());
        assert_eq!(usage.completion_tokens, Some(3));
        assert_eq!(usage.prompt_tokens, Some(7));
        let fin = chat(r#"{"choices":[{"delta":{},"finish_reason":"length"}],"usage":null}"#);
        assert!(!fin.is_content());
        assert_eq!(fin.finish_reason.as_deref(), Some("length"));
    }

    #[test]
    fn content_kinds() {
        assert_eq!(
            chat(r#"{"choices":[{"delta":{"content":"hi"}}]}"#).text,
            "hi"
        );
        assert_eq!(
            chat(r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#).text,
            "hm"
        );
        assert!(chat(r#"{"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}"#).is_content());
        let c = interpret(
            Endpoint::Completions,
            br#"{"choices":[{"text":" a\u00e9","finish_reason":null}],"timings":{"predicted_n":4}}"#,
        )
        .unwrap();
        assert_eq!(c.text, " a\u{e9}");
        assert_eq!(c.timings.unwrap()["predicted_n"], 4);
        let t = interpret(
            Endpoint::Triton,
            br#"{"model_name":"ensemble","text_output":"x"}"#,
        )
        .unwrap();
        assert_eq!(t.text, "x");
    }

    #[test]
    fn errors_and_done() {
        assert!(chat("[DONE]").done);
        assert_eq!(
            chat(r#"{"error":{"message":"overloaded","code":503}}"#)
                .error
                .as_deref(),
            Some("overloaded")
        );
        assert_eq!(
            chat(r#"{"object":"error","message":"bad","code":400}"#)
                .error
                .as_deref(),
            Some("bad")
        );
        assert_eq!(
            interpret(Endpoint::Triton, br#"{"error":"model not ready"}"#)
                .unwrap()
                .error
                .as_deref(),
            Some("model not ready")
        );
        assert!(interpret(Endpoint::Chat, b"{not json").is_err());
        assert_eq!(
            error_body_message(br#"{"detail":"Unexpected fields in the request: {'ignore_eos'}"}"#),
            "Unexpected fields in the request: {'ignore_eos'}"
        );
        assert_eq!(error_body_message(b""), "(empty body)");
    }
}
