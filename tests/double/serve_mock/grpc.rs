//! Triton gRPC `ModelStreamInfer` (and `ServerReady`) for a decoupled text model: one
//! `text_output` response per event, then the empty final response the request asked for.
//! The service is written out by hand (what tonic-build would generate), using the same
//! hand-written messages as the client.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use perfgate::serve::triton_proto as pb;
use tokio::time::Instant;
use tonic::codegen::{BoxFuture, http};
use tonic::{Request, Response, Status, Streaming};

use crate::script::{Plan, State, monotonic_ns};

#[derive(Clone)]
pub struct TritonService {
    state: Arc<State>,
}

impl TritonService {
    pub fn new(state: Arc<State>) -> Self {
        TritonService { state }
    }
}

impl tonic::server::NamedService for TritonService {
    const NAME: &'static str = pb::SERVICE_NAME;
}

type RespStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<pb::ModelStreamInferResponse, Status>> + Send>,
>;

struct StreamInfer(Arc<State>);

impl tonic::server::StreamingService<pb::ModelInferRequest> for StreamInfer {
    type Response = pb::ModelStreamInferResponse;
    type ResponseStream = RespStream;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<pb::ModelInferRequest>>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            let mut inbound = request.into_inner();
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            tokio::spawn(async move {
                // Each request on the stream is answered by its own task, interleaved.
                while let Ok(Some(req)) = inbound.message().await {
                    let state = state.clone();
                    let tx = tx.clone();
                    tokio::spawn(answer(state, req, tx));
                }
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            Ok(Response::new(Box::pin(stream) as RespStream))
        })
    }
}

struct Ready;

impl tonic::server::UnaryService<pb::ServerReadyRequest> for Ready {
    type Response = pb::ServerReadyResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;
    fn call(&mut self, _: Request<pb::ServerReadyRequest>) -> Self::Future {
        Box::pin(async { Ok(Response::new(pb::ServerReadyResponse { ready: true })) })
    }
}

fn input<'a>(req: &'a pb::ModelInferRequest, name: &str) -> Option<&'a pb::InferInputTensor> {
    req.inputs.iter().find(|i| i.name == name)
}

fn response(
    state: &State,
    id: &str,
    text: Option<&str>,
    last: bool,
) -> pb::ModelStreamInferResponse {
    let mut r = pb::ModelInferResponse {
        model_name: state.args.model.clone(),
        model_version: "1".into(),
        id: id.to_string(),
        ..Default::default()
    };
    r.parameters.insert(
        "triton_final_response".into(),
        pb::InferParameter::bool(last),
    );
    if let Some(t) = text {
        r.outputs.push(pb::InferOutputTensor {
            name: "text_output".into(),
            datatype: "BYTES".into(),
            shape: vec![1, 1],
            ..Default::default()
        });
        r.raw_output_contents
            .push(pb::raw_bytes_element(t.as_bytes()));
    }
    pb::ModelStreamInferResponse {
        error_message: String::new(),
        infer_response: Some(r),
    }
}

async fn answer(
    state: Arc<State>,
    req: pb::ModelInferRequest,
    tx: tokio::sync::mpsc::Sender<Result<pb::ModelStreamInferResponse, Status>>,
) {
    let arrival = Instant::now();
    let arrival_ns = monotonic_ns();
    let n = state.next_request();
    let fail = |msg: String| pb::ModelStreamInferResponse {
        error_message: msg,
        infer_response: None,
    };
    if req.model_name != state.args.model {
        let _ = tx
            .send(Ok(fail(format!(
                "Request for unknown model: '{}' is not found",
                req.model_name
            ))))
            .await;
        return;
    }
    if state.args.status.is_some() && n.is_multiple_of(state.args.fail_every) {
        let _ = tx.send(Ok(fail(state.args.status_message.clone()))).await;
        return;
    }
    let text = input(&req, "text_input")
        .and_then(|t| t.contents.as_ref())
        .and_then(|c| c.bytes_contents.first())
        .map(|b| String::from_utf8_lossy(b).into_owned());
    let max_tokens = input(&req, "max_tokens")
        .and_then(|t| t.contents.as_ref())
        .and_then(|c| c.uint_contents.first().copied())
        .map(u64::from);
    let (Some(text), Some(max_tokens)) = (text, max_tokens) else {
        let _ = tx
            .send(Ok(fail(
                "expected text_input (BYTES) and max_tokens (UINT32)".into(),
            )))
            .await;
        return;
    };
    let empty_final = matches!(
        req.parameters
            .get("triton_enable_empty_final_response")
            .and_then(|p| p.parameter_choice.as_ref()),
        Some(pb::ParameterChoice::BoolParam(true))
    );
    let plan = Plan::new(&state, arrival, &serde_json::Value::Null, max_tokens);
    let mut trace = crate::script::Trace {
        request_id: req.id.clone(),
        path: "grpc".into(),
        arrival_ns,
        events: Vec::new(),
        prompt_tokens: state.count_text(&text),
        completion_tokens: plan.tokens,
        fields: serde_json::json!({
            "inputs": req.inputs.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
            "max_tokens": max_tokens,
        }),
        connection: None,
    };
    let a = &state.args;
    let mut generated = 0;
    let events = plan.events();
    for i in 0..events {
        tokio::time::sleep_until(plan.content_at(i)).await;
        if a.error_after == Some(i) {
            trace.events.push((monotonic_ns(), "error", 0));
            let _ = tx
                .send(Ok(fail("mock error inside the stream".into())))
                .await;
            state.write_trace(&trace);
            return;
        }
        if a.stall_after == Some(i) {
            trace.events.push((monotonic_ns(), "stall", 0));
            state.write_trace(&trace);
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
                _ = tx.closed() => {}
            }
            return;
        }
        if a.cut_after == Some(i) {
            trace.events.push((monotonic_ns(), "cut", 0));
            state.write_trace(&trace);
            let _ = tx
                .send(Err(Status::unavailable("connection cut by --cut-after")))
                .await;
            return;
        }
        let k = plan.tokens_in(i);
        generated += k;
        let last = i + 1 == events && !empty_final;
        trace.events.push((monotonic_ns(), "content", k));
        if tx
            .send(Ok(response(
                &state,
                &req.id,
                Some(&a.token_text.repeat(k as usize)),
                last,
            )))
            .await
            .is_err()
        {
            break;
        }
    }
    trace.completion_tokens = generated;
    state.tokens.fetch_add(generated, Ordering::Relaxed);
    if empty_final {
        trace.events.push((monotonic_ns(), "final", 0));
    }
    // Written before the final response, so a client that has its answer finds the trace.
    state.write_trace(&trace);
    if empty_final {
        let _ = tx.send(Ok(response(&state, &req.id, None, true))).await;
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for TritonService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let state = self.state.clone();
        match req.uri().path() {
            pb::MODEL_STREAM_INFER => Box::pin(async move {
                let codec = tonic_prost::ProstCodec::<
                    pb::ModelStreamInferResponse,
                    pb::ModelInferRequest,
                >::default();
                let mut grpc = tonic::server::Grpc::new(codec);
                Ok(grpc.streaming(StreamInfer(state), req).await)
            }),
            pb::SERVER_READY => Box::pin(async move {
                let codec = tonic_prost::ProstCodec::<
                    pb::ServerReadyResponse,
                    pb::ServerReadyRequest,
                >::default();
                let mut grpc = tonic::server::Grpc::new(codec);
                Ok(grpc.unary(Ready, req).await)
            }),
            _ => Box::pin(async move {
                Ok(Status::unimplemented("not served by serve-mock").into_http())
            }),
        }
    }
}
