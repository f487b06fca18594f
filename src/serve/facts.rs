//! What a server says about itself before a run: the model, the kind of server and how long a
//! sequence (prompt + output) one request may have. `perfgate sweep` checks every test
//! against that limit before it sends anything, so a prompt longer than the server's context
//! is refused with the limit named instead of failing (or being cut short) mid-sweep.

use serde::Serialize;

use super::error::ServeError;
use super::http::{base_url, build_client};
use super::options::{ServerKind, Target};
use super::probe::get_json;

/// The longest sequence (prompt + generated tokens) one request may have, and where the
/// server said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextLimit {
    pub tokens: u64,
    /// `llama.cpp /props default_generation_settings.n_ctx` (per slot), `vLLM /v1/models
    /// max_model_len`.
    pub source: String,
}

/// What the probes found.
#[derive(Debug, Clone, Serialize)]
pub struct ServerFacts {
    pub model: String,
    pub kind: ServerKind,
    /// `None` when the server does not say.
    pub context: Option<ContextLimit>,
    /// llama.cpp's parallel slots (`/props total_slots`).
    pub slots: Option<u64>,
    /// How the model and kind were found.
    pub notes: Vec<String>,
}

/// The context limit in a llama.cpp `/props` or a `/v1/models` answer.
pub fn context_from(
    props: Option<&serde_json::Value>,
    models: Option<&serde_json::Value>,
) -> Option<ContextLimit> {
    let positive = |v: &serde_json::Value| v.as_u64().filter(|n| *n > 0);
    if let Some(n) = props
        .and_then(|p| p.get("default_generation_settings")?.get("n_ctx"))
        .and_then(positive)
    {
        return Some(ContextLimit {
            tokens: n,
            source: "/props default_generation_settings.n_ctx (llama.cpp, per slot)".into(),
        });
    }
    let first = models.and_then(|m| m.get("data")?.as_array()?.first().cloned())?;
    let n = first.get("max_model_len").and_then(positive)?;
    Some(ContextLimit {
        tokens: n,
        source: "/v1/models max_model_len".into(),
    })
}

/// Waits for the server as a run does (`target.ready_timeout`), then asks it what it serves.
pub fn server_facts(target: &Target) -> Result<ServerFacts, ServeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    rt.block_on(async {
        let client = build_client(target, 4).map_err(ServeError::Usage)?;
        super::probe::wait_ready(&client, None, target).await?;
        let probed = super::probe::identify(&client, target).await?;
        let base = base_url(&target.url);
        let props = get_json(&client, &format!("{base}/props"))
            .await
            .map(|(v, _)| v);
        let models = get_json(&client, &format!("{base}/v1/models"))
            .await
            .map(|(v, _)| v);
        Ok(ServerFacts {
            model: probed.model,
            kind: probed.kind,
            context: context_from(props.as_ref(), models.as_ref()),
            slots: props.as_ref().and_then(|p| p.get("total_slots")?.as_u64()),
            notes: probed.notes,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn llama_cpp_props_then_vllm_models() {
        let props = json!({"default_generation_settings": {"n_ctx": 256}, "total_slots": 1});
        let c = context_from(Some(&props), None).unwrap();
        assert_eq!(c.tokens, 256);
        assert!(c.source.contains("n_ctx"));
        let models = json!({"data": [{"id": "m", "max_model_len": 8192}]});
        assert_eq!(context_from(None, Some(&models)).unwrap().tokens, 8192);
        assert_eq!(
            context_from(Some(&json!({})), Some(&json!({"data": []}))),
            None
        );
        let zero = json!({"default_generation_settings": {"n_ctx": 0}});
        assert_eq!(context_from(Some(&zero), None), None);
    }
}
