//! fake-trtllm-serve: a test double of TensorRT-LLM's `trtllm-serve` for perfgate's serving
//! tests. It takes trtllm-serve's command line, reads the extra LLM API YAML it is given and
//! serves a small OpenAI API whose speed follows that config, so perfgate can run serving cases
//! without a GPU.
//!
//!   fake-trtllm-serve MODEL [--backend B] [--config YAML | --extra_llm_api_options YAML]
//!                     [--host H] [--port P] [--report_addr FILE] [--max_batch_size N]
//!                     [--max_num_tokens N] [--tp_size N] [--pp_size N] [--ep_size N]
//!                     [--kv_cache_free_gpu_memory_fraction F]
//!   fake-trtllm-serve disaggregated -c CONFIG [-t S] [-r S] [--report_addr FILE]
//!
//! Endpoints: `GET /health`, `GET /v1/models`, `POST /v1/completions` and
//! `/v1/chat/completions` (streamed as server-sent events, or whole), with `usage`. Each
//! request waits for one of `max_batch_size` slots, then "prefills" (10 µs per prompt token)
//! and generates one step per `FAKE_SERVE_STEP_MS` (default 2 ms, divided by the tensor
//! parallelism, longer the fuller the batch); with a speculative config a step yields
//! `1 + accepted` tokens (`TLLM_SPEC_DECODE_FORCE_NUM_ACCEPTED_TOKENS`, else the draft length),
//! reported as `avg_decoded_tokens_per_iter`. `ignore_eos` makes it generate exactly
//! `max_tokens`. A worker whose YAML has `internal_request_auth_key` answers only requests
//! carrying it (`X-Internal-Request-Auth-Key`). With `CUDA_VISIBLE_DEVICES` set, it must list
//! tensor x pipeline parallel GPUs. The disaggregated server waits until every worker of its
//! config answers `/health`, then passes each request through a context worker (one token) and
//! a generation worker.
//!
//! Environment:
//!   FAKE_SERVE_STEP_MS=F       decode step time (default 2)
//!   FAKE_SERVE_SLOWDOWN=F      multiplies every time (a slower night)
//!   FAKE_SERVE_STARTUP_MS=N    delay before listening (model loading)
//!   FAKE_SERVE_MAX_OUTPUT=N    generate at most N tokens whatever is asked (ignores ignore_eos)
//!   FAKE_SERVE_FAULT=f1,f2     never-ready (503 forever), no-report-addr, ignore-sigterm,
//!                              exit-after:N (exit 3 after N requests), fail-every:N (every
//!                              Nth request answers 500)
//!   FAKE_SERVE_FOR=substr      apply FAKE_SERVE_FAULT and FAKE_SERVE_SLOWDOWN only when the
//!                              command line contains substr
//!
//! Exit status: 2 for a command-line error, 1 for a bad config, 3 for exit-after.

#[path = "http.rs"]
mod http;

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let line = args.join(" ");
    let applies = std::env::var("FAKE_SERVE_FOR").map_or(true, |s| line.contains(&s));
    let env = |k: &str| std::env::var(k).ok().filter(|_| applies);
    let faults: Vec<String> = env("FAKE_SERVE_FAULT")
        .map(|f| f.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let has = |f: &str| faults.iter().any(|x| x == f);
    if has("ignore-sigterm") {
        // SAFETY: setting a signal's disposition to ignore.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
        }
    }
    let result = match args.first().map(String::as_str) {
        Some("disaggregated") => disaggregated(&args[1..], &faults),
        Some(_) => serve(&args, &faults, env("FAKE_SERVE_SLOWDOWN")),
        None => Err((2, "Usage: trtllm-serve [OPTIONS] MODEL".to_string())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("{msg}");
            ExitCode::from(code)
        }
    }
}

type Fail = (u8, String);

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, Fail> {
    v.parse()
        .map_err(|_| (2, format!("Error: Invalid value for '{flag}': '{v}'")))
}

/// `(flag, value)` pairs and the positional arguments.
type Parsed = (Vec<(String, String)>, Vec<String>);

/// Flags and the one positional argument.
fn parse(args: &[String], flags: &[&str]) -> Result<Parsed, Fail> {
    let mut values = Vec::new();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a.starts_with('-') {
            if !flags.contains(&a.as_str()) {
                return Err((2, format!("Error: No such option: {a}")));
            }
            let v = args
                .get(i + 1)
                .ok_or_else(|| (2, format!("Error: Option '{a}' requires an argument.")))?;
            values.push((a.clone(), v.clone()));
            i += 2;
        } else {
            positional.push(a.clone());
            i += 1;
        }
    }
    Ok((values, positional))
}

fn get<'a>(values: &'a [(String, String)], flag: &str) -> Option<&'a str> {
    values
        .iter()
        .rev()
        .find(|(k, _)| k == flag)
        .map(|(_, v)| v.as_str())
}

fn read_yaml(path: &str) -> Result<Value, Fail> {
    let text = std::fs::read_to_string(path).map_err(|e| (1, format!("{path}: {e}")))?;
    if text.contains("{perfgate.") || text.contains(".addr}") {
        return Err((1, format!("{path}: holds an unfilled placeholder:\n{text}")));
    }
    serde_saphyr::from_str(&text).map_err(|e| (1, format!("{path}: {e}")))
}

/// Binds `host:port`, preferring IPv4 (what `localhost` clients try first here).
fn bind(host: &str, port: u16) -> Result<TcpListener, Fail> {
    let addrs: Vec<std::net::SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| (1, format!("{host}: {e}")))?
        .collect();
    let pick = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .ok_or_else(|| (1, format!("{host}: no address")))?;
    TcpListener::bind(pick).map_err(|e| (1, format!("cannot bind {pick}: {e}")))
}

/// Writes `host:port` to `path` the way trtllm-serve's `--report_addr` does: a temp file
/// renamed into place.
fn report(path: &str, host: &str, port: u16) -> Result<(), Fail> {
    let tmp = format!("{path}.{}.tmp", std::process::id());
    std::fs::write(&tmp, format!("{host}:{port}\n")).map_err(|e| (1, format!("{tmp}: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| (1, format!("{path}: {e}")))
}

fn fault_number(faults: &[String], name: &str) -> Option<usize> {
    faults
        .iter()
        .find_map(|f| f.strip_prefix(name)?.strip_prefix(':')?.parse().ok())
}

struct Engine {
    step: Duration,
    prefill_per_token: Duration,
    slots: Mutex<usize>,
    freed: Condvar,
    max_batch: usize,
    active: AtomicUsize,
    tokens_per_step: usize,
    auth_key: Option<String>,
    max_output: Option<usize>,
    fail_every: Option<usize>,
    exit_after: Option<usize>,
    seen: AtomicUsize,
    done: AtomicUsize,
    never_ready: bool,
    model: String,
}

fn serve(args: &[String], faults: &[String], slowdown: Option<String>) -> Result<(), Fail> {
    let (values, positional) = parse(
        args,
        &[
            "--backend",
            "--config",
            "--extra_llm_api_options",
            "--host",
            "--port",
            "--report_addr",
            "--max_batch_size",
            "--max_num_tokens",
            "--tp_size",
            "--pp_size",
            "--ep_size",
            "--kv_cache_free_gpu_memory_fraction",
            "--trust_remote_code",
        ],
    )?;
    let [model] = positional.as_slice() else {
        return Err((2, "Error: Missing argument 'MODEL'.".into()));
    };
    let config = match get(&values, "--config").or(get(&values, "--extra_llm_api_options")) {
        Some(p) => read_yaml(p)?,
        None => json!({}),
    };
    let int = |flag: &str, key: &str, default: usize| -> Result<usize, Fail> {
        match get(&values, flag) {
            Some(v) => number(flag, v),
            None => Ok(config
                .get(key)
                .and_then(Value::as_u64)
                .map_or(default, |v| v as usize)),
        }
    };
    let tp = int("--tp_size", "tensor_parallel_size", 1)?.max(1);
    let pp = int("--pp_size", "pipeline_parallel_size", 1)?.max(1);
    let max_batch = int("--max_batch_size", "max_batch_size", 64)?.max(1);
    if let Ok(visible) = std::env::var("CUDA_VISIBLE_DEVICES") {
        let n = visible.split(',').filter(|g| !g.is_empty()).count();
        if n != tp * pp {
            return Err((
                1,
                format!(
                    "RuntimeError: tp {tp} x pp {pp} needs {} GPUs, CUDA_VISIBLE_DEVICES={visible} gives {n}",
                    tp * pp
                ),
            ));
        }
    }
    let draft = config
        .get("speculative_config")
        .and_then(|s| s.get("max_draft_len"))
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    let accepted = std::env::var("TLLM_SPEC_DECODE_FORCE_NUM_ACCEPTED_TOKENS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(draft)
        .min(draft);
    let auth_key = config
        .get("internal_request_auth_key")
        .and_then(Value::as_str)
        .map(str::to_string);
    let slow: f64 = slowdown.and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let step_ms: f64 = std::env::var("FAKE_SERVE_STEP_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let engine = Arc::new(Engine {
        step: Duration::from_secs_f64(step_ms * slow / 1000.0 / tp as f64),
        prefill_per_token: Duration::from_secs_f64(10e-6 * slow / tp as f64),
        slots: Mutex::new(max_batch),
        freed: Condvar::new(),
        max_batch,
        active: AtomicUsize::new(0),
        tokens_per_step: 1 + accepted,
        auth_key,
        max_output: std::env::var("FAKE_SERVE_MAX_OUTPUT")
            .ok()
            .and_then(|v| v.parse().ok()),
        fail_every: fault_number(faults, "fail-every"),
        exit_after: fault_number(faults, "exit-after"),
        seen: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        never_ready: faults.iter().any(|f| f == "never-ready"),
        model: model.clone(),
    });
    if let Some(ms) = std::env::var("FAKE_SERVE_STARTUP_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let host = get(&values, "--host").unwrap_or("localhost").to_string();
    let port: u16 = number("--port", get(&values, "--port").unwrap_or("8000"))?;
    let listener = bind(&host, port)?;
    let bound = listener
        .local_addr()
        .map_err(|e| (1, e.to_string()))?
        .port();
    println!(
        "[fake-trtllm-serve] model {model}, tp {tp}, pp {pp}, max_batch_size {max_batch}, {} token(s) per step",
        1 + accepted
    );
    println!("INFO:     Uvicorn running on http://{host}:{bound} (Press CTRL+C to quit)");
    if let Some(path) = get(&values, "--report_addr")
        && !faults.iter().any(|f| f == "no-report-addr")
    {
        report(path, &host, bound)?;
    }
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let engine = engine.clone();
        std::thread::spawn(move || handle(stream, &engine));
    }
    Ok(())
}

fn handle(mut stream: TcpStream, e: &Engine) {
    let Some(req) = http::read_request(&stream) else {
        return;
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/health") => {
            if e.never_ready {
                http::respond(&mut stream, 503, "text/plain", b"loading");
            } else {
                http::respond(&mut stream, 200, "text/plain", b"");
            }
        }
        ("GET", "/v1/models") => {
            let body = json!({"object": "list", "data": [{"id": e.model, "object": "model"}]});
            http::respond(
                &mut stream,
                200,
                "application/json",
                body.to_string().as_bytes(),
            );
        }
        ("POST", "/v1/completions" | "/v1/chat/completions") => {
            if let Some(key) = &e.auth_key
                && req.header("X-Internal-Request-Auth-Key") != Some(key.as_str())
            {
                http::respond(&mut stream, 403, "text/plain", b"bad internal request key");
                return;
            }
            let n = e.seen.fetch_add(1, Ordering::SeqCst) + 1;
            if e.fail_every.is_some_and(|k| k > 0 && n.is_multiple_of(k)) {
                http::respond(
                    &mut stream,
                    500,
                    "application/json",
                    br#"{"error": "injected"}"#,
                );
                return;
            }
            generate(stream, e, &req);
            let done = e.done.fetch_add(1, Ordering::SeqCst) + 1;
            if e.exit_after.is_some_and(|k| done >= k) {
                println!("[fake-trtllm-serve] exit-after {done} requests");
                std::process::exit(3);
            }
        }
        _ => http::respond(&mut stream, 404, "text/plain", b"not found"),
    }
}

fn words(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.split_whitespace().count())
}

fn generate(mut stream: TcpStream, e: &Engine, req: &http::Request) {
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        http::respond(&mut stream, 400, "text/plain", b"bad JSON");
        return;
    };
    let chat = req.path.contains("chat");
    let prompt_tokens = match body.get("prompt") {
        Some(Value::Array(ids)) => ids.len(),
        Some(p) => words(p),
        None => body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(0, |m| m.iter().map(|x| words(&x["content"])).sum()),
    };
    let asked = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(16) as usize;
    let mut output = asked.max(1);
    if let Some(cap) = e.max_output {
        output = output.min(cap);
    }
    let streaming = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    // A slot in the batch.
    {
        let mut free = e.slots.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = e.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
    }
    e.active.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(e.prefill_per_token * prompt_tokens as u32);
    let id = format!("cmpl-{}", e.seen.load(Ordering::SeqCst));
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let piece = |text: &str, finish: Option<&str>| {
        if chat {
            json!({"index": 0, "delta": {"content": text}, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": text, "finish_reason": finish})
        }
    };
    if streaming && !http::start_stream(&mut stream, "text/event-stream") {
        release(e);
        return;
    }
    let mut produced = 0;
    let mut steps = 0;
    let mut text = String::new();
    while produced < output {
        let load = e.active.load(Ordering::SeqCst) as f64 / e.max_batch as f64;
        std::thread::sleep(e.step.mul_f64(1.0 + 0.5 * load));
        let k = e.tokens_per_step.min(output - produced);
        produced += k;
        steps += 1;
        let chunk_text = " tok".repeat(k);
        if streaming {
            let event = json!({"id": id, "object": object, "choices": [piece(&chunk_text, None)]});
            if stream
                .write_all(format!("data: {event}\n\n").as_bytes())
                .is_err()
            {
                release(e);
                return;
            }
        } else {
            text.push_str(&chunk_text);
        }
    }
    release(e);
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": produced,
        "total_tokens": prompt_tokens + produced});
    let per_iter = produced as f64 / steps.max(1) as f64;
    let mut last = piece(if streaming { "" } else { &text }, Some("length"));
    last["avg_decoded_tokens_per_iter"] = json!(per_iter);
    if streaming {
        let event = json!({"id": id, "object": object, "choices": [last], "usage": usage});
        let _ = stream.write_all(format!("data: {event}\n\ndata: [DONE]\n\n").as_bytes());
    } else {
        let whole = json!({"id": id, "object": if chat {"chat.completion"} else {"text_completion"},
            "choices": [last], "usage": usage});
        http::respond(
            &mut stream,
            200,
            "application/json",
            whole.to_string().as_bytes(),
        );
    }
}

fn release(e: &Engine) {
    e.active.fetch_sub(1, Ordering::SeqCst);
    let mut free = e.slots.lock().unwrap_or_else(|p| p.into_inner());
    *free += 1;
    e.freed.notify_one();
}

struct Disagg {
    ctx: Vec<String>,
    gen_: Vec<String>,
    key: Option<String>,
    next: AtomicUsize,
}

fn urls(config: &Value, section: &str) -> Vec<String> {
    config
        .get(section)
        .and_then(|s| s.get("urls"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn disaggregated(args: &[String], faults: &[String]) -> Result<(), Fail> {
    let (values, positional) = parse(args, &["-c", "-t", "-r", "--report_addr"])?;
    if !positional.is_empty() {
        return Err((
            2,
            format!("Error: Got unexpected extra argument ({})", positional[0]),
        ));
    }
    let path = get(&values, "-c").ok_or_else(|| (2, "Error: Missing option '-c'.".to_string()))?;
    let config = read_yaml(path)?;
    let d = Arc::new(Disagg {
        ctx: urls(&config, "context_servers"),
        gen_: urls(&config, "generation_servers"),
        key: config
            .get("internal_request_auth_key")
            .and_then(Value::as_str)
            .map(str::to_string),
        next: AtomicUsize::new(0),
    });
    if d.gen_.is_empty() {
        return Err((1, format!("{path}: no generation_servers.urls")));
    }
    let host = config
        .get("hostname")
        .and_then(Value::as_str)
        .unwrap_or("localhost")
        .to_string();
    let port = config.get("port").and_then(Value::as_u64).unwrap_or(8000) as u16;
    let listener = bind(&host, port)?;
    let bound = listener
        .local_addr()
        .map_err(|e| (1, e.to_string()))?
        .port();
    println!(
        "[fake-trtllm-serve disaggregated] ctx {:?}, gen {:?}, listening on {host}:{bound}",
        d.ctx, d.gen_
    );
    if let Some(p) = get(&values, "--report_addr")
        && !faults.iter().any(|f| f == "no-report-addr")
    {
        report(p, &host, bound)?;
    }
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let d = d.clone();
        std::thread::spawn(move || route(stream, &d));
    }
    Ok(())
}

fn route(mut stream: TcpStream, d: &Disagg) {
    let Some(req) = http::read_request(&stream) else {
        return;
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/health") => {
            let all = d
                .ctx
                .iter()
                .chain(&d.gen_)
                .all(|u| http::get_status(u, "/health") == Some(200));
            let status = if all { 200 } else { 503 };
            http::respond(&mut stream, status, "text/plain", b"");
        }
        ("POST", path) => {
            let key = d.key.clone().unwrap_or_default();
            let headers = [
                ("Content-Type", "application/json"),
                ("X-Internal-Request-Auth-Key", key.as_str()),
            ];
            let i = d.next.fetch_add(1, Ordering::SeqCst);
            // The context phase: one token on a context worker.
            if !d.ctx.is_empty() {
                let mut prefill: Value = serde_json::from_slice(&req.body).unwrap_or(json!({}));
                prefill["max_tokens"] = json!(1);
                prefill["stream"] = json!(false);
                let ok = http::send(
                    &d.ctx[i % d.ctx.len()],
                    "POST",
                    path,
                    &headers,
                    prefill.to_string().as_bytes(),
                )
                .ok()
                .and_then(|s| http::read_head(&mut BufReader::new(s)));
                if ok != Some(200) {
                    http::respond(&mut stream, 500, "text/plain", b"context worker failed");
                    return;
                }
            }
            // The generation phase, streamed through.
            match http::send(&d.gen_[i % d.gen_.len()], "POST", path, &headers, &req.body) {
                Ok(mut upstream) => {
                    let mut buf = [0u8; 4096];
                    loop {
                        match upstream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(_) => {
                    http::respond(&mut stream, 500, "text/plain", b"generation worker failed")
                }
            }
        }
        _ => http::respond(&mut stream, 404, "text/plain", b"not found"),
    }
}
