//! Triton gRPC transport: `ModelStreamInfer` against a decoupled model (TensorRT-LLM's
//! `ensemble`: `text_input`, `max_tokens`, `stream` in; `text_output` out). One bidirectional
//! stream per request, on a few shared HTTP/2 connections; the request asks for an empty final
//! response (`triton_enable_empty_final_response`), whose `triton_final_response` flag ends it.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};

use super::event::Interpreted;
use super::exchange::{Clock, Exchange, Flow, Outgoing};
use super::options::Endpoint;
use super::record::{ErrorClass, RequestRecord};
use super::triton_proto as pb;

/// HTTP/2 streams per connection before another connection is opened (servers commonly cap
/// concurrent streams at 100).
const STREAMS_PER_CHANNEL: usize = 100;

pub struct GrpcClient {
    channels: Vec<Channel>,
    model: String,
    streaming: bool,
    stall: Duration,
}

/// What goes into one request.
pub struct GrpcRequest {
    pub text: String,
    pub max_tokens: u32,
    pub min_length: Option<u32>,
}

pub fn grpc_address(url: &str) -> String {
    let u = url.trim_end_matches('/');
    if u.contains("://") {
        u.to_string()
    } else {
        format!("http://{u}")
    }
}

fn status_text(s: &tonic::Status) -> String {
    if s.message().is_empty() {
        format!("gRPC {:?}", s.code())
    } else {
        format!("gRPC {:?}: {}", s.code(), s.message())
    }
}

impl GrpcClient {
    /// Connects lazily: the first request opens the connection (its cost shows in that
    /// request's time to headers).
    pub fn new(
        url: &str,
        model: &str,
        streaming: bool,
        stall: Duration,
        concurrency: usize,
    ) -> Result<GrpcClient, String> {
        let addr = grpc_address(url);
        let endpoint = TonicEndpoint::from_shared(addr.clone())
            .map_err(|e| format!("bad gRPC address {addr}: {e}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10));
        let n = concurrency.div_ceil(STREAMS_PER_CHANNEL).max(1);
        let channels = (0..n).map(|_| endpoint.connect_lazy()).collect();
        Ok(GrpcClient {
            channels,
            model: model.to_string(),
            streaming,
            stall,
        })
    }

    /// `ServerReady`: Ok(true) ready, Ok(false) answered not ready, Err unreachable.
    pub async fn ready(&self) -> Result<bool, String> {
        let mut grpc = tonic::client::Grpc::new(self.channels[0].clone());
        grpc.ready().await.map_err(|e| e.to_string())?;
        let codec =
            tonic_prost::ProstCodec::<pb::ServerReadyRequest, pb::ServerReadyResponse>::default();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(pb::SERVER_READY);
        match grpc
            .unary(tonic::Request::new(pb::ServerReadyRequest {}), path, codec)
            .await
        {
            Ok(r) => Ok(r.into_inner().ready),
            Err(s) if s.code() == tonic::Code::Unavailable => Err(status_text(&s)),
            Err(s) => Err(status_text(&s)),
        }
    }

    fn request(&self, id: &str, r: &GrpcRequest) -> pb::ModelInferRequest {
        let mut inputs = vec![
            pb::input_bytes("text_input", r.text.as_bytes()),
            pb::input_u32("max_tokens", r.max_tokens),
            pb::input_bool("stream", self.streaming),
            pb::input_f32("temperature", 0.0),
        ];
        if let Some(m) = r.min_length {
            inputs.push(pb::input_u32("min_length", m));
        }
        let mut parameters = HashMap::new();
        parameters.insert(
            "triton_enable_empty_final_response".to_string(),
            pb::InferParameter::bool(true),
        );
        pb::ModelInferRequest {
            model_name: self.model.clone(),
            model_version: String::new(),
            id: id.to_string(),
            parameters,
            inputs,
            outputs: vec![pb::InferRequestedOutputTensor {
                name: "text_output".into(),
                parameters: HashMap::new(),
            }],
            raw_input_contents: Vec::new(),
        }
    }

    pub async fn send(&self, clock: Clock, out: Outgoing, req: GrpcRequest) -> RequestRecord {
        let t_send = clock.now();
        let channel = self.channels[out.index as usize % self.channels.len()].clone();
        let message = self.request(&out.request_id, &req);
        let mut ex = Exchange::new(out, Endpoint::TritonGrpc, t_send);
        let mut grpc = tonic::client::Grpc::new(channel);
        if let Err(e) = grpc.ready().await {
            let t = clock.now();
            ex.fail(t, ErrorClass::Connect, e.to_string());
            return ex.finish(t);
        }
        // The send side stays open until the final response has come: some servers end a
        // decoupled request early when the client half-closes.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let outbound = futures_util::stream::once(async move { message }).chain(
            futures_util::stream::once(async move {
                let _ = done_rx.await;
            })
            .filter_map(|()| async { None }),
        );
        let codec =
            tonic_prost::ProstCodec::<pb::ModelInferRequest, pb::ModelStreamInferResponse>::default(
            );
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(pb::MODEL_STREAM_INFER);
        let response = grpc
            .streaming(tonic::Request::new(outbound), path, codec)
            .await;
        let t = clock.now();
        let mut inbound = match response {
            Ok(r) => r.into_inner(),
            Err(s) => {
                let class = match s.code() {
                    tonic::Code::Unavailable => ErrorClass::Connect,
                    tonic::Code::InvalidArgument | tonic::Code::NotFound => ErrorClass::Http4xx,
                    _ => ErrorClass::Http5xx,
                };
                ex.fail(t, class, status_text(&s));
                return ex.finish(t);
            }
        };
        ex.rec.t_headers_ns = Some(t);
        loop {
            let next = tokio::time::timeout(self.stall, inbound.message()).await;
            let t = clock.now();
            match next {
                Ok(Ok(Some(msg))) => {
                    if !msg.error_message.is_empty() {
                        ex.fail(t, ErrorClass::InStream, msg.error_message);
                        break;
                    }
                    let Some(resp) = msg.infer_response else {
                        ex.fail(
                            t,
                            ErrorClass::Malformed,
                            "a stream response without infer_response",
                        );
                        break;
                    };
                    let text = pb::output_text(&resp, "text_output").unwrap_or_default();
                    let text = match String::from_utf8(text) {
                        Ok(s) => s,
                        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                    };
                    let fin = pb::is_final(&resp);
                    let flow = ex.on_interpreted(
                        t,
                        Interpreted {
                            text,
                            ..Interpreted::default()
                        },
                    );
                    if flow == Flow::Stop {
                        break;
                    }
                    if fin || !self.streaming {
                        break;
                    }
                }
                Ok(Ok(None)) => break,
                Ok(Err(s)) => {
                    ex.fail(
                        t,
                        ErrorClass::Disconnected,
                        format!("the stream broke: {}", status_text(&s)),
                    );
                    break;
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
                    break;
                }
            }
        }
        let _ = done_tx.send(());
        let t = clock.now();
        ex.finish(t)
    }
}
