//! The few messages of Triton's `inference.GRPCInferenceService` that serve-bench uses,
//! written by hand from the documented protocol (triton-inference-server/common
//! `protobuf/grpc_service.proto`: message and field numbers), so the build needs no `protoc`.
//! Fields serve-bench never reads or writes are left out; protobuf skips unknown fields.

use std::collections::HashMap;

/// Service path of the streaming RPC.
pub const MODEL_STREAM_INFER: &str = "/inference.GRPCInferenceService/ModelStreamInfer";
pub const SERVER_READY: &str = "/inference.GRPCInferenceService/ServerReady";
pub const SERVICE_NAME: &str = "inference.GRPCInferenceService";

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerReadyRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerReadyResponse {
    #[prost(bool, tag = "1")]
    pub ready: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InferParameter {
    #[prost(oneof = "ParameterChoice", tags = "1, 2, 3, 4, 5")]
    pub parameter_choice: Option<ParameterChoice>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterChoice {
    #[prost(bool, tag = "1")]
    BoolParam(bool),
    #[prost(int64, tag = "2")]
    Int64Param(i64),
    #[prost(string, tag = "3")]
    StringParam(String),
    #[prost(double, tag = "4")]
    DoubleParam(f64),
    #[prost(uint64, tag = "5")]
    Uint64Param(u64),
}

impl InferParameter {
    pub fn bool(v: bool) -> Self {
        InferParameter {
            parameter_choice: Some(ParameterChoice::BoolParam(v)),
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InferTensorContents {
    #[prost(bool, repeated, tag = "1")]
    pub bool_contents: Vec<bool>,
    #[prost(int32, repeated, tag = "2")]
    pub int_contents: Vec<i32>,
    #[prost(int64, repeated, tag = "3")]
    pub int64_contents: Vec<i64>,
    #[prost(uint32, repeated, tag = "4")]
    pub uint_contents: Vec<u32>,
    #[prost(uint64, repeated, tag = "5")]
    pub uint64_contents: Vec<u64>,
    #[prost(float, repeated, tag = "6")]
    pub fp32_contents: Vec<f32>,
    #[prost(double, repeated, tag = "7")]
    pub fp64_contents: Vec<f64>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub bytes_contents: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InferInputTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub datatype: String,
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
    #[prost(message, optional, tag = "5")]
    pub contents: Option<InferTensorContents>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InferRequestedOutputTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(map = "string, message", tag = "2")]
    pub parameters: HashMap<String, InferParameter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferRequest {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(string, tag = "2")]
    pub model_version: String,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
    #[prost(message, repeated, tag = "5")]
    pub inputs: Vec<InferInputTensor>,
    #[prost(message, repeated, tag = "6")]
    pub outputs: Vec<InferRequestedOutputTensor>,
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub raw_input_contents: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InferOutputTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub datatype: String,
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
    #[prost(message, optional, tag = "5")]
    pub contents: Option<InferTensorContents>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferResponse {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(string, tag = "2")]
    pub model_version: String,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<InferOutputTensor>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub raw_output_contents: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelStreamInferResponse {
    #[prost(string, tag = "1")]
    pub error_message: String,
    #[prost(message, optional, tag = "2")]
    pub infer_response: Option<ModelInferResponse>,
}

/// A BYTES tensor element in raw form: 4-byte little-endian length, then the bytes.
pub fn raw_bytes_element(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + s.len());
    v.extend_from_slice(&(s.len() as u32).to_le_bytes());
    v.extend_from_slice(s);
    v
}

/// The elements of a raw BYTES tensor (`None` if the lengths do not add up).
pub fn split_raw_bytes(raw: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let len_bytes: [u8; 4] = rest.get(..4)?.try_into().ok()?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        let body = rest.get(4..4 + len)?;
        out.push(body);
        rest = &rest[4 + len..];
    }
    Some(out)
}

/// A one-element input tensor of shape [1, 1] in typed contents.
pub fn input_bytes(name: &str, value: &[u8]) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: "BYTES".into(),
        shape: vec![1, 1],
        parameters: HashMap::new(),
        contents: Some(InferTensorContents {
            bytes_contents: vec![value.to_vec()],
            ..Default::default()
        }),
    }
}

pub fn input_u32(name: &str, value: u32) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: "UINT32".into(),
        shape: vec![1, 1],
        parameters: HashMap::new(),
        contents: Some(InferTensorContents {
            uint_contents: vec![value],
            ..Default::default()
        }),
    }
}

pub fn input_f32(name: &str, value: f32) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: "FP32".into(),
        shape: vec![1, 1],
        parameters: HashMap::new(),
        contents: Some(InferTensorContents {
            fp32_contents: vec![value],
            ..Default::default()
        }),
    }
}

pub fn input_bool(name: &str, value: bool) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: "BOOL".into(),
        shape: vec![1, 1],
        parameters: HashMap::new(),
        contents: Some(InferTensorContents {
            bool_contents: vec![value],
            ..Default::default()
        }),
    }
}

/// The text of output `name` of a response (typed contents or raw), concatenated.
pub fn output_text(resp: &ModelInferResponse, name: &str) -> Option<Vec<u8>> {
    let i = resp.outputs.iter().position(|o| o.name == name)?;
    if let Some(raw) = resp.raw_output_contents.get(i) {
        let parts = split_raw_bytes(raw)?;
        return Some(parts.concat());
    }
    let c = resp.outputs[i].contents.as_ref()?;
    Some(c.bytes_contents.concat())
}

/// `triton_final_response` set to true (the last response of a decoupled request).
pub fn is_final(resp: &ModelInferResponse) -> bool {
    matches!(
        resp.parameters
            .get("triton_final_response")
            .and_then(|p| p.parameter_choice.as_ref()),
        Some(ParameterChoice::BoolParam(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn raw_bytes_round_trip() {
        let mut raw = raw_bytes_element(b"ab");
        raw.extend(raw_bytes_element(b""));
        raw.extend(raw_bytes_element(b"xyz"));
        assert_eq!(
            split_raw_bytes(&raw).unwrap(),
            vec![&b"ab"[..], b"", b"xyz"]
        );
        assert!(split_raw_bytes(&[5, 0, 0, 0, b'a']).is_none());
    }

    #[test]
    fn final_flag_and_text_survive_encoding() {
        let mut resp = ModelInferResponse {
            model_name: "ensemble".into(),
            ..Default::default()
        };
        resp.parameters
            .insert("triton_final_response".into(), InferParameter::bool(true));
        resp.outputs.push(InferOutputTensor {
            name: "text_output".into(),
            datatype: "BYTES".into(),
            shape: vec![1, 1],
            ..Default::default()
        });
        resp.raw_output_contents.push(raw_bytes_element(b" hi"));
        let wrapped = ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(resp),
        };
        let bytes = wrapped.encode_to_vec();
        let back = ModelStreamInferResponse::decode(&bytes[..]).unwrap();
        let r = back.infer_response.unwrap();
        assert!(is_final(&r));
        assert_eq!(output_text(&r, "text_output").unwrap(), b" hi");
    }
}
