//! Before the first request: is the server up (health), which model does it serve, and which
//! kind of server is it (for `--server-kind auto`).

use std::time::{Duration, Instant};

use super::error::ServeError;
use super::grpc::GrpcClient;
use super::http::{base_url, describe};
use super::options::{Endpoint, ServerKind, Target};
use super::profile::kind_from_owned_by;

/// What the probes found.
#[derive(Debug, Clone)]
pub struct Probed {
    pub model: String,
    pub kind: ServerKind,
    /// How the kind was decided, for the log.
    pub notes: Vec<String>,
}

enum Health {
    Ready,
    NotYet(String),
    Unreachable(String),
}

async fn http_health(client: &reqwest::Client, target: &Target) -> Health {
    let base = base_url(&target.url);
    let paths: &[&str] = if target.endpoint == Endpoint::Triton {
        &["/v2/health/ready"]
    } else {
        // Every OpenAI-compatible server perfgate knows has /health; a plain proxy may only
        // have /v1/models.
        &["/health", "/v1/models"]
    };
    let mut last = String::new();
    for path in paths {
        let url = format!("{base}{path}");
        match client
            .get(&url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Health::Ready,
            Ok(r) if r.status().as_u16() == 404 => {
                last = format!("GET {url}: HTTP 404");
                continue;
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap_or_default();
                return Health::NotYet(format!(
                    "GET {url}: HTTP {status} {}",
                    super::event::error_body_message(&body)
                ));
            }
            Err(e) if e.is_connect() => return Health::Unreachable(describe(&e)),
            Err(e) => return Health::NotYet(format!("GET {url}: {}", describe(&e))),
        }
    }
    Health::NotYet(last)
}

/// Waits for the server's health check to pass, at most `target.ready_timeout` (zero: one
/// probe). Connection refused until the end is [`ServeError::Unreachable`]; any other failure
/// [`ServeError::NotReady`].
pub async fn wait_ready(
    client: &reqwest::Client,
    grpc: Option<&GrpcClient>,
    target: &Target,
) -> Result<(), ServeError> {
    let start = Instant::now();
    loop {
        let health = match grpc {
            Some(g) => match g.ready().await {
                Ok(true) => Health::Ready,
                Ok(false) => Health::NotYet("ServerReady answered ready = false".into()),
                Err(e) => Health::Unreachable(e),
            },
            None => http_health(client, target).await,
        };
        let waited = start.elapsed();
        match health {
            Health::Ready => return Ok(()),
            Health::Unreachable(msg) if waited >= target.ready_timeout => {
                return Err(ServeError::Unreachable {
                    url: target.url.clone(),
                    message: format!(
                        "{msg} (is the server running? --ready-timeout waits for it to start)"
                    ),
                });
            }
            Health::NotYet(msg) if waited >= target.ready_timeout => {
                return Err(ServeError::NotReady {
                    url: target.url.clone(),
                    waited_s: waited.as_secs_f64(),
                    last: msg,
                });
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

pub(super) async fn get_json(
    client: &reqwest::Client,
    url: &str,
) -> Option<(serde_json::Value, String)> {
    let r = client
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let server = r
        .headers()
        .get(reqwest::header::SERVER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = r.bytes().await.ok()?;
    Some((serde_json::from_slice(&body).ok()?, server))
}

/// The model (when not given) and the server kind (when `auto`).
pub async fn identify(client: &reqwest::Client, target: &Target) -> Result<Probed, ServeError> {
    let mut notes = Vec::new();
    if target.endpoint.is_triton() {
        if target.model.is_empty() {
            return Err(ServeError::Usage(
                "--model is required for Triton endpoints (the model name in the path, e.g. \
                 ensemble)"
                    .into(),
            ));
        }
        let kind = match target.server_kind {
            ServerKind::Auto => ServerKind::Triton,
            k => k,
        };
        return Ok(Probed {
            model: target.model.clone(),
            kind,
            notes,
        });
    }
    let base = base_url(&target.url);
    let models = get_json(client, &format!("{base}/v1/models")).await;
    let first = models
        .as_ref()
        .and_then(|(v, _)| v.get("data")?.as_array()?.first().cloned());
    let model = if target.model.is_empty() {
        let id = first
            .as_ref()
            .and_then(|m| m.get("id")?.as_str().map(str::to_string))
            .ok_or_else(|| {
                ServeError::Usage(format!(
                    "--model was not given and {base}/v1/models lists no model to take"
                ))
            })?;
        notes.push(format!("model {id} (the first one {base}/v1/models lists)"));
        id
    } else {
        target.model.clone()
    };
    if target.server_kind != ServerKind::Auto {
        return Ok(Probed {
            model,
            kind: target.server_kind,
            notes,
        });
    }
    let owned_by = first
        .as_ref()
        .and_then(|m| m.get("owned_by")?.as_str().map(str::to_string));
    if let Some(kind) = owned_by.as_deref().and_then(kind_from_owned_by) {
        notes.push(format!(
            "server kind {} (/v1/models owned_by {:?})",
            kind.name(),
            owned_by.unwrap_or_default()
        ));
        return Ok(Probed { model, kind, notes });
    }
    if let Some((props, _)) = get_json(client, &format!("{base}/props")).await
        && props.get("default_generation_settings").is_some()
    {
        notes.push("server kind llama.cpp (/props)".into());
        return Ok(Probed {
            model,
            kind: ServerKind::LlamaCpp,
            notes,
        });
    }
    if let Some((_, server)) = &models
        && server.to_ascii_lowercase().contains("llama.cpp")
    {
        notes.push(format!("server kind llama.cpp (Server: {server})"));
        return Ok(Probed {
            model,
            kind: ServerKind::LlamaCpp,
            notes,
        });
    }
    notes.push(
        "server kind generic (the server did not say what it is; --server-kind sets it)".into(),
    );
    Ok(Probed {
        model,
        kind: ServerKind::Generic,
        notes,
    })
}
