//! Triton's HTTP generate extension: `v2/models/<m>/generate` (one JSON response) and
//! `generate_stream` (SSE of `text_output` events, no `[DONE]`, errors as `{"error": …}`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::openai::admit;
use crate::script::{
    Emitter, Plan, State, Trace, body_stream, connection_header, monotonic_ns, request_id, sse,
};

type St = AxState<Arc<State>>;

pub async fn metadata() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"name": "triton", "version": "2.50.0", "extensions": ["generate"]}).to_string(),
    )
        .into_response()
}

pub async fn ready(AxState(state): St) -> Response {
    StatusCode::from_u16(state.args.health_status)
        .unwrap_or(StatusCode::OK)
        .into_response()
}

fn error(status: StatusCode, msg: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": msg }).to_string(),
    )
        .into_response()
}

fn start(
    state: &Arc<State>,
    model: &str,
    headers: &HeaderMap,
    body: &Bytes,
    path: &str,
) -> Result<(Plan, Trace), Response> {
    let arrival = Instant::now();
    let arrival_ns = monotonic_ns();
    // Triton words its errors as {"error": "..."}.
    let v = admit(state, body, false).map_err(|r| error(r.status, r.message))?;
    if model != state.args.model {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("Request for unknown model: '{model}' is not found"),
        ));
    }
    if v.get("text_input").and_then(Value::as_str).is_none() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "expected a text_input string".into(),
        ));
    }
    let asked = v.get("max_tokens").and_then(Value::as_u64).unwrap_or(16);
    let plan = Plan::new(state, arrival, &v, asked);
    let trace = Trace {
        request_id: request_id(headers),
        path: path.into(),
        arrival_ns,
        events: Vec::new(),
        prompt_tokens: state.prompt_tokens(&v),
        completion_tokens: plan.tokens,
        fields: v.clone(),
        connection: connection_header(headers),
    };
    Ok((plan, trace))
}

fn event(state: &State, text: &str) -> Value {
    json!({"model_name": state.args.model, "model_version": "1", "sequence_id": 0,
           "sequence_start": false, "sequence_end": false, "text_output": text})
}

pub async fn generate(
    AxState(state): St,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (plan, mut trace) = match start(&state, &model, &headers, &body, "generate") {
        Ok(x) => x,
        Err(r) => return r,
    };
    tokio::time::sleep_until(if plan.events() == 0 {
        plan.arrival + plan.ttft
    } else {
        plan.last_at()
    })
    .await;
    trace.events.push((monotonic_ns(), "content", plan.tokens));
    state.tokens.fetch_add(plan.tokens, Ordering::Relaxed);
    state.write_trace(&trace);
    let text = state.args.token_text.repeat(plan.tokens as usize);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        event(&state, &text).to_string(),
    )
        .into_response()
}

pub async fn generate_stream(
    AxState(state): St,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (plan, trace) = match start(&state, &model, &headers, &body, "generate_stream") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut em = Emitter { tx, trace };
    let st = state.clone();
    tokio::spawn(async move {
        let a = &st.args;
        let mut generated = 0;
        for i in 0..plan.events() {
            let at = plan.content_at(i);
            if a.error_after == Some(i) {
                em.emit(
                    at,
                    "error",
                    0,
                    sse(&json!({"error": "mock error inside the stream"})),
                )
                .await;
                break;
            }
            if a.stall_after == Some(i) {
                tokio::time::sleep_until(at).await;
                em.stall().await;
                break;
            }
            if a.cut_after == Some(i) {
                tokio::time::sleep_until(at).await;
                em.cut().await;
                break;
            }
            let k = plan.tokens_in(i);
            generated += k;
            let text = a.token_text.repeat(k as usize);
            if !em.emit(at, "content", k, sse(&event(&st, &text))).await {
                break;
            }
        }
        em.trace.completion_tokens = generated;
        st.tokens.fetch_add(generated, Ordering::Relaxed);
        st.write_trace(&em.trace);
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .body(body_stream(rx))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
