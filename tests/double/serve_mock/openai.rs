//! OpenAI-compatible routes: /v1/completions, /v1/chat/completions, /v1/models, /health,
//! /props (llama.cpp), /metrics (Prometheus).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::script::{
    Emitter, Plan, State, Trace, body_stream, connection_header, max_tokens, monotonic_ns,
    request_id, sse,
};
use crate::{Kind, RoleChunk, UsageMode};

type St = AxState<Arc<State>>;

fn server_header(state: &State, mut r: Response) -> Response {
    if state.args.kind == Kind::Llamacpp {
        r.headers_mut()
            .insert(header::SERVER, HeaderValue::from_static("llama.cpp"));
    }
    r
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

pub async fn health(AxState(state): St) -> Response {
    let status = StatusCode::from_u16(state.args.health_status).unwrap_or(StatusCode::OK);
    server_header(&state, json_response(status, json!({"status": "ok"})))
}

pub async fn models(AxState(state): St) -> Response {
    let owned_by = match state.args.kind {
        Kind::Vllm => "vllm",
        Kind::Trtllm => "tensorrt_llm",
        Kind::Sglang => "sglang",
        Kind::Llamacpp => "llamacpp",
        Kind::Transformers => "huggingface",
        Kind::Generic => "organization-owner",
    };
    server_header(
        &state,
        json_response(
            StatusCode::OK,
            json!({"object": "list", "data": [{"id": state.args.model, "object": "model",
                "created": 0, "owned_by": owned_by}]}),
        ),
    )
}

pub async fn props(AxState(state): St) -> Response {
    if state.args.kind != Kind::Llamacpp {
        return json_response(StatusCode::NOT_FOUND, json!({"detail": "Not Found"}));
    }
    server_header(
        &state,
        json_response(
            StatusCode::OK,
            json!({"default_generation_settings": {"n_ctx": state.args.n_ctx}, "total_slots": 4}),
        ),
    )
}

pub async fn metrics(AxState(state): St) -> Response {
    let mut text = format!(
        "# HELP mock_requests_total Requests received.\n# TYPE mock_requests_total counter\n\
         mock_requests_total{{model_name=\"{m}\"}} {}\n\
         # TYPE mock_generation_tokens counter\nmock_generation_tokens_total{{model_name=\"{m}\"}} {}\n\
         # TYPE mock_prompt_tokens counter\nmock_prompt_tokens_total{{model_name=\"{m}\"}} {}\n\
         # TYPE mock_running gauge\nmock_running 0\n",
        state.requests.load(Ordering::Relaxed),
        state.tokens.load(Ordering::Relaxed),
        state.prompt_tokens.load(Ordering::Relaxed),
        m = state.args.model,
    );
    // vLLM's speculative decoding counters: one token drafted per token generated, the
    // --draft-accept share of them accepted.
    if let (Kind::Vllm, Some(share)) = (state.args.kind, state.args.draft_accept) {
        let drafted = state.tokens.load(Ordering::Relaxed);
        text.push_str(&format!(
            "# TYPE vllm:spec_decode_num_draft_tokens counter\n\
             vllm:spec_decode_num_draft_tokens_total{{model_name=\"{m}\"}} {drafted}\n\
             # TYPE vllm:spec_decode_num_accepted_tokens counter\n\
             vllm:spec_decode_num_accepted_tokens_total{{model_name=\"{m}\"}} {}\n",
            (drafted as f64 * share).round(),
            m = state.args.model,
        ));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

/// A refused request: its status, the message, and the OpenAI-style body.
pub struct Rejection {
    pub status: StatusCode,
    pub message: String,
    pub body: Value,
}

impl Rejection {
    fn openai(status: StatusCode, message: String) -> Rejection {
        Rejection {
            status,
            body: json!({"error": {"message": message, "code": status.as_u16()}}),
            message,
        }
    }

    fn fastapi(status: StatusCode, message: String) -> Rejection {
        Rejection {
            status,
            body: json!({ "detail": message }),
            message,
        }
    }

    pub fn response(self) -> Response {
        json_response(self.status, self.body)
    }
}

/// Checks shared by every route; `Err` is the answer to send instead.
pub fn admit(state: &State, body: &Bytes, check_model: bool) -> Result<Value, Rejection> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Rejection::openai(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
    let n = state.next_request();
    if check_model
        && let Some(m) = v.get("model").and_then(Value::as_str)
        && m != state.args.model
    {
        return Err(Rejection::openai(
            StatusCode::NOT_FOUND,
            format!("The model `{m}` does not exist."),
        ));
    }
    let mut rejected: Vec<&str> = Vec::new();
    if state.args.kind == Kind::Transformers {
        for f in ["ignore_eos", "min_tokens", "cache_prompt"] {
            if v.get(f).is_some() {
                rejected.push(f);
            }
        }
        if matches!(v.get("prompt"), Some(Value::Array(_))) {
            return Err(Rejection::fastapi(
                StatusCode::BAD_REQUEST,
                "prompt must be a string.".into(),
            ));
        }
    }
    for f in &state.args.reject_field {
        if v.get(f).is_some() && !rejected.contains(&f.as_str()) {
            rejected.push(f);
        }
    }
    if !rejected.is_empty() {
        let set = rejected
            .iter()
            .map(|f| format!("'{f}'"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Rejection::fastapi(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Unexpected fields in the request: {{{set}}}"),
        ));
    }
    if let Some(code) = state.args.status
        && n.is_multiple_of(state.args.fail_every)
    {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(Rejection::openai(status, state.args.status_message.clone()));
    }
    Ok(v)
}

pub async fn completions(AxState(state): St, headers: HeaderMap, body: Bytes) -> Response {
    openai(state, headers, body, false).await
}

pub async fn chat(AxState(state): St, headers: HeaderMap, body: Bytes) -> Response {
    openai(state, headers, body, true).await
}

async fn openai(state: Arc<State>, headers: HeaderMap, body: Bytes, chat: bool) -> Response {
    let arrival = Instant::now();
    let arrival_ns = monotonic_ns();
    let v = match admit(&state, &body, true) {
        Ok(v) => v,
        Err(r) => return server_header(&state, r.response()),
    };
    let asked = max_tokens(&v);
    let plan = Plan::new(&state, arrival, &v, asked);
    let prompt_tokens = state.prompt_tokens(&v);
    if state.args.kind == Kind::Llamacpp && prompt_tokens > state.args.n_ctx {
        // llama-server's words and fields (measured on build 11434).
        let n_ctx = state.args.n_ctx;
        let message = format!(
            "request ({prompt_tokens} tokens) exceeds the available context size ({n_ctx} \
             tokens), try increasing it"
        );
        let body = json!({"error": {"code": 400, "message": message,
            "type": "exceed_context_size_error", "n_prompt_tokens": prompt_tokens, "n_ctx": n_ctx}});
        return server_header(&state, json_response(StatusCode::BAD_REQUEST, body));
    }
    let trace = Trace {
        request_id: request_id(&headers),
        path: if chat { "chat" } else { "completions" }.into(),
        arrival_ns,
        events: Vec::new(),
        prompt_tokens,
        completion_tokens: plan.tokens,
        fields: v.clone(),
        connection: connection_header(&headers),
    };
    let streaming = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !streaming {
        return server_header(&state, whole(state.clone(), plan, asked, chat, trace).await);
    }
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let em = Emitter { tx, trace };
    tokio::spawn(stream(state.clone(), plan, asked, chat, em));
    let r = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body_stream(rx))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    server_header(&state, r)
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion,
           "total_tokens": prompt + completion})
}

fn reported(state: &State, generated: u64) -> u64 {
    (generated as i64 + state.args.usage_skew).max(0) as u64
}

fn finish_reason(plan: &Plan, asked: u64) -> &'static str {
    if plan.tokens < asked {
        "stop"
    } else {
        "length"
    }
}

async fn whole(
    state: Arc<State>,
    plan: Plan,
    asked: u64,
    chat: bool,
    mut trace: Trace,
) -> Response {
    let a = &state.args;
    let at = if plan.events() == 0 {
        plan.arrival + plan.ttft
    } else {
        plan.last_at()
    };
    tokio::time::sleep_until(at).await;
    let text = a.token_text.repeat(plan.tokens as usize);
    let fr = finish_reason(&plan, asked);
    let choice = if chat {
        json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": fr})
    } else {
        json!({"index": 0, "text": text, "finish_reason": fr})
    };
    let mut v = json!({"id": "mock-1", "object": if chat {"chat.completion"} else {"text_completion"},
        "created": 0, "model": a.model, "choices": [choice]});
    if a.usage != UsageMode::Absent {
        v["usage"] = usage(trace.prompt_tokens, reported(&state, plan.tokens));
    }
    trace.events.push((monotonic_ns(), "content", plan.tokens));
    state.tokens.fetch_add(plan.tokens, Ordering::Relaxed);
    state
        .prompt_tokens
        .fetch_add(trace.prompt_tokens, Ordering::Relaxed);
    state.write_trace(&trace);
    json_response(StatusCode::OK, v)
}

fn chunk(state: &State, chat: bool, choice: Value) -> Value {
    json!({"id": "mock-1", "object": if chat {"chat.completion.chunk"} else {"text_completion"},
        "created": 0, "model": state.args.model, "choices": [choice]})
}

async fn stream(state: Arc<State>, plan: Plan, asked: u64, chat: bool, mut em: Emitter) {
    let a = &state.args;
    let role = || {
        chunk(
            &state,
            chat,
            json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}),
        )
    };
    let mut generated = 0u64;
    let ended = 'events: {
        if chat
            && a.role_chunk == RoleChunk::First
            && !em.emit(plan.arrival, "role", 0, sse(&role())).await
        {
            break 'events true;
        }
        for i in 0..plan.events() {
            let at = plan.content_at(i);
            if chat
                && i == 0
                && a.role_chunk == RoleChunk::WithToken
                && !em.emit(at, "role", 0, sse(&role())).await
            {
                break 'events true;
            }
            if a.error_after == Some(i) {
                let e = json!({"error": {"message": "mock error inside the stream", "type": "InternalServerError", "code": 500}});
                em.emit(at, "error", 0, sse(&e)).await;
                break 'events true;
            }
            if a.stall_after == Some(i) {
                tokio::time::sleep_until(at).await;
                em.stall().await;
                break 'events true;
            }
            if a.cut_after == Some(i) {
                tokio::time::sleep_until(at).await;
                em.cut().await;
                break 'events true;
            }
            if a.malformed_after == Some(i) {
                em.emit(
                    at,
                    "malformed",
                    0,
                    Bytes::from_static(b"data: {\"choices\": [{\"text\": \"unterminated\n\n"),
                )
                .await;
                break 'events true;
            }
            let k = plan.tokens_in(i);
            generated += k;
            let text = match a.huge_event {
                Some(n) if i == 0 => "x".repeat(n),
                _ => a.token_text.repeat(k as usize),
            };
            let choice = if chat {
                json!({"index": 0, "delta": {"content": text}, "finish_reason": null})
            } else {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": null})
            };
            let mut c = chunk(&state, chat, choice);
            if a.usage == UsageMode::EveryChunk {
                c["usage"] = usage(em.trace.prompt_tokens, reported(&state, generated));
            }
            if !em.emit(at, "content", k, sse(&c)).await {
                break 'events true;
            }
        }
        false
    };
    if !ended && !a.no_finish {
        let tail = plan.last_at() + Duration::from_secs_f64(a.tail_ms / 1e3);
        let fr = finish_reason(&plan, asked);
        let mut choice = if chat {
            json!({"index": 0, "delta": {}, "finish_reason": fr})
        } else {
            json!({"index": 0, "text": "", "finish_reason": fr})
        };
        if let Some(d) = a.avg_decoded {
            choice["avg_decoded_tokens_per_iter"] = d.into();
        }
        let mut fin = chunk(&state, chat, choice);
        let u = usage(em.trace.prompt_tokens, reported(&state, generated));
        if a.usage == UsageMode::LastChoice {
            fin["usage"] = u.clone();
        }
        if a.timings {
            fin["timings"] = json!({"prompt_n": em.trace.prompt_tokens, "prompt_ms": a.ttft_ms,
                "predicted_n": generated, "predicted_ms": a.itl_ms * generated.saturating_sub(1) as f64,
                "predicted_per_token_ms": a.itl_ms});
            if let Some(share) = a.draft_accept {
                fin["timings"]["draft_n"] = generated.into();
                fin["timings"]["draft_n_accepted"] =
                    ((generated as f64 * share).round() as u64).into();
            }
        }
        let mut ok = em.emit(tail, "finish", 0, sse(&fin)).await;
        if ok && matches!(a.usage, UsageMode::Separate | UsageMode::EveryChunk) {
            let only = json!({"id": "mock-1", "object": "chat.completion.chunk", "created": 0,
                "model": a.model, "choices": [], "usage": u});
            ok = em.emit(tail, "usage", 0, sse(&only)).await;
        }
        if ok && !a.no_done {
            em.emit(tail, "done", 0, Bytes::from_static(b"data: [DONE]\n\n"))
                .await;
        }
    }
    em.trace.completion_tokens = generated;
    state.tokens.fetch_add(generated, Ordering::Relaxed);
    state
        .prompt_tokens
        .fetch_add(em.trace.prompt_tokens, Ordering::Relaxed);
    state.write_trace(&em.trace);
}
