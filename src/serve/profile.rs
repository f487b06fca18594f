//! Per-server-family request shapes (docs/serve-bench.md, "Server kinds"): what forces the
//! output length, whether a prompt may be token ids, which extra fields a server needs or
//! rejects. Facts from ../shared/reference/serving.md §4.5, §5 and §6 (measured there).

use serde_json::{Map, Value, json};

use super::options::{Endpoint, ServerKind};

/// How requests are shaped for one server family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub kind: ServerKind,
    /// `/v1/completions` takes `prompt` as a list of token ids (vLLM, TRT-LLM, SGLang,
    /// llama.cpp); else ids are decoded to text.
    pub token_id_prompts: bool,
    /// `ignore_eos: true` is accepted (transformers serve answers 422 for unknown fields).
    pub ignore_eos_field: bool,
    /// Also send `min_tokens = max_tokens` (vLLM, SGLang, TRT-LLM honour it).
    pub min_tokens_field: bool,
    /// `generation_config` JSON string with min/max_new_tokens (transformers serve).
    pub generation_config: bool,
    /// `stream_options: {include_usage: true}` (and per-chunk usage where supported).
    pub stream_usage: bool,
    /// Per-chunk usage (`continuous_usage_stats`): exact tokens per event (vLLM, TRT-LLM).
    pub continuous_usage: bool,
    /// `cache_prompt: false`: llama.cpp reuses a cached prompt prefix by default.
    pub no_prompt_cache: bool,
    /// The server closes the connection after each streamed response without saying so
    /// (llama.cpp's llama-server sends no `Connection: close`): a pooled connection is dead
    /// when the next request goes out on it, which then fails "connection closed before
    /// message completed" (measured: 1 to 3 requests in 30 at concurrency 2 and 4). Streamed
    /// requests to it each open their own connection and say `Connection: close`.
    pub closes_streams: bool,
}

impl Profile {
    pub fn of(kind: ServerKind) -> Profile {
        let base = Profile {
            kind,
            token_id_prompts: false,
            ignore_eos_field: true,
            min_tokens_field: false,
            generation_config: false,
            stream_usage: true,
            continuous_usage: false,
            no_prompt_cache: false,
            closes_streams: false,
        };
        match kind {
            ServerKind::Vllm | ServerKind::Trtllm => Profile {
                token_id_prompts: true,
                min_tokens_field: true,
                continuous_usage: true,
                ..base
            },
            ServerKind::Sglang => Profile {
                token_id_prompts: true,
                min_tokens_field: true,
                ..base
            },
            ServerKind::LlamaCpp => Profile {
                token_id_prompts: true,
                no_prompt_cache: true,
                closes_streams: true,
                ..base
            },
            ServerKind::Transformers => Profile {
                ignore_eos_field: false,
                generation_config: true,
                // Usage always comes; `stream_options` is not one of its known fields.
                stream_usage: false,
                ..base
            },
            ServerKind::Triton => Profile {
                stream_usage: false,
                ..base
            },
            ServerKind::Auto | ServerKind::Generic => base,
        }
    }

    /// Whether token-id prompts can go to this endpoint.
    pub fn sends_ids(&self, endpoint: Endpoint) -> bool {
        endpoint == Endpoint::Completions && self.token_id_prompts
    }
}

/// The prompt of one request, as it goes on the wire.
pub enum WirePrompt<'a> {
    Ids(&'a [u32]),
    Text(&'a str),
}

/// What one request asks for.
pub struct RequestShape<'a> {
    pub endpoint: Endpoint,
    pub model: &'a str,
    pub prompt: WirePrompt<'a>,
    pub max_tokens: u64,
    pub streaming: bool,
    pub ignore_eos: bool,
}

/// The JSON body of an HTTP request (OpenAI or Triton generate), `extra` merged last.
pub fn body(profile: &Profile, shape: &RequestShape<'_>, extra: &Map<String, Value>) -> Value {
    let mut o = Map::new();
    let n = shape.max_tokens;
    match shape.endpoint {
        Endpoint::Completions | Endpoint::Chat => {
            o.insert("model".into(), shape.model.into());
            match (&shape.prompt, shape.endpoint) {
                (WirePrompt::Ids(ids), Endpoint::Completions) => {
                    o.insert("prompt".into(), json!(ids));
                }
                (WirePrompt::Text(t), Endpoint::Completions) => {
                    o.insert("prompt".into(), (*t).into());
                }
                (WirePrompt::Text(t), _) => {
                    o.insert("messages".into(), json!([{ "role": "user", "content": t }]));
                }
                (WirePrompt::Ids(_), _) => {
                    // Never built: ids are decoded to text for chat before a run.
                    o.insert("messages".into(), json!([]));
                }
            }
            o.insert("max_tokens".into(), n.into());
            o.insert("temperature".into(), 0.0.into());
            o.insert("stream".into(), shape.streaming.into());
            if shape.streaming && profile.stream_usage {
                let mut so = Map::new();
                so.insert("include_usage".into(), true.into());
                if profile.continuous_usage {
                    so.insert("continuous_usage_stats".into(), true.into());
                }
                o.insert("stream_options".into(), Value::Object(so));
            }
            if shape.ignore_eos {
                if profile.ignore_eos_field {
                    o.insert("ignore_eos".into(), true.into());
                }
                if profile.min_tokens_field {
                    o.insert("min_tokens".into(), n.into());
                }
            }
            if profile.generation_config {
                let mut gc = Map::new();
                gc.insert("max_new_tokens".into(), n.into());
                if shape.ignore_eos {
                    gc.insert("min_new_tokens".into(), n.into());
                }
                gc.insert("do_sample".into(), false.into());
                // transformers serve takes it as a JSON string.
                o.insert(
                    "generation_config".into(),
                    Value::String(Value::Object(gc).to_string()),
                );
            }
            if profile.no_prompt_cache {
                o.insert("cache_prompt".into(), false.into());
            }
        }
        Endpoint::Triton | Endpoint::TritonGrpc => {
            let text = match shape.prompt {
                WirePrompt::Text(t) => t,
                WirePrompt::Ids(_) => "",
            };
            o.insert("text_input".into(), text.into());
            o.insert("max_tokens".into(), n.into());
            o.insert("temperature".into(), 0.0.into());
            if shape.streaming {
                o.insert("stream".into(), true.into());
            }
            if shape.ignore_eos {
                // The TensorRT-LLM backend's way of forcing the length (its `min_length` input).
                o.insert("min_length".into(), n.into());
            }
        }
    }
    for (k, v) in extra {
        o.insert(k.clone(), v.clone());
    }
    Value::Object(o)
}

/// What a `/v1/models` entry's `owned_by` says about the server.
pub fn kind_from_owned_by(owned_by: &str) -> Option<ServerKind> {
    let o = owned_by.to_ascii_lowercase();
    if o.contains("vllm") {
        Some(ServerKind::Vllm)
    } else if o.contains("sglang") {
        Some(ServerKind::Sglang)
    } else if o.contains("llamacpp") || o.contains("llama.cpp") {
        Some(ServerKind::LlamaCpp)
    } else if o.contains("tensorrt") || o.contains("trtllm") {
        Some(ServerKind::Trtllm)
    } else {
        None
    }
}

/// A hint for a 4xx message that names a field perfgate sent.
pub fn rejection_hint(message: &str, profile: &Profile) -> Option<String> {
    let m = message.to_ascii_lowercase();
    let fields = [
        "ignore_eos",
        "min_tokens",
        "stream_options",
        "cache_prompt",
        "generation_config",
        "min_length",
    ];
    let named: Vec<&str> = fields.iter().copied().filter(|f| m.contains(f)).collect();
    if !named.is_empty() {
        return Some(format!(
            "the server rejects {} (sent for --server-kind {}): pick the server's kind with \
             --server-kind (transformers takes no ignore_eos; trtllm/vllm/sglang/llama.cpp do), \
             or drop --ignore-eos",
            named.join(", "),
            profile.kind.name()
        ));
    }
    if m.contains("prompt must be a string") || (m.contains("prompt") && m.contains("string")) {
        return Some(
            "the server wants text prompts: use --server-kind generic or transformers (ids are \
             then decoded with --tokenizer)"
                .to_string(),
        );
    }
    if m.contains("unexpected fields")
        || m.contains("extra_forbidden")
        || m.contains("extra fields")
    {
        return Some(
            "the server rejects a field perfgate sent: set --server-kind, or remove fields with \
             --extra-body"
                .to_string(),
        );
    }
    if m.contains("model") && (m.contains("not found") || m.contains("does not exist")) {
        return Some("check --model (omit it to take the server's first model)".to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(endpoint: Endpoint) -> RequestShape<'static> {
        RequestShape {
            endpoint,
            model: "m",
            prompt: WirePrompt::Text("hi"),
            max_tokens: 8,
            streaming: true,
            ignore_eos: true,
        }
    }

    #[test]
    fn transformers_gets_generation_config_not_ignore_eos() {
        let p = Profile::of(ServerKind::Transformers);
        let b = body(&p, &shape(Endpoint::Chat), &Map::new());
        assert!(b.get("ignore_eos").is_none());
        assert!(b.get("stream_options").is_none());
        assert_eq!(
            b["generation_config"],
            r#"{"max_new_tokens":8,"min_new_tokens":8,"do_sample":false}"#
        );
        assert_eq!(b["messages"][0]["content"], "hi");
    }

    #[test]
    fn llama_cpp_and_vllm_fields() {
        let l = body(
            &Profile::of(ServerKind::LlamaCpp),
            &shape(Endpoint::Completions),
            &Map::new(),
        );
        assert_eq!(l["cache_prompt"], false);
        assert_eq!(l["ignore_eos"], true);
        assert_eq!(l["stream_options"]["include_usage"], true);
        let mut s = shape(Endpoint::Completions);
        s.prompt = WirePrompt::Ids(&[1, 2, 3]);
        let v = body(&Profile::of(ServerKind::Vllm), &s, &Map::new());
        assert_eq!(v["prompt"], json!([1, 2, 3]));
        assert_eq!(v["min_tokens"], 8);
        assert_eq!(v["stream_options"]["continuous_usage_stats"], true);
    }

    #[test]
    fn triton_and_extra_body() {
        let mut extra = Map::new();
        extra.insert("temperature".into(), 0.7.into());
        let t = body(
            &Profile::of(ServerKind::Triton),
            &shape(Endpoint::Triton),
            &extra,
        );
        assert_eq!(t["text_input"], "hi");
        assert_eq!(t["min_length"], 8);
        assert_eq!(t["temperature"], 0.7);
    }

    #[test]
    fn hints() {
        let p = Profile::of(ServerKind::Generic);
        assert!(
            rejection_hint("Unexpected fields in the request: {'ignore_eos'}", &p)
                .unwrap()
                .contains("ignore_eos")
        );
        assert!(rejection_hint("prompt must be a string.", &p).is_some());
        assert_eq!(rejection_hint("rate limited", &p), None);
    }
}
