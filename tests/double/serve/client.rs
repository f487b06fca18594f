//! fake-serve-client: a test double of the two serving clients perfgate runs, for its own
//! tests: `perfgate serve-bench` (issue 16's command line; perfgate's real client lives on
//! another branch) and upstream's `python -m tensorrt_llm.serve.scripts.benchmark_serving`.
//! It really drives the server (one thread per concurrent request, streamed or whole
//! responses), measures TTFT, inter-chunk gaps and end-to-end latency, computes
//! benchmark_serving's figures with its definitions, and prints its text block.
//!
//!   fake-serve-client serve-bench --url URL --endpoint completions|chat --model M
//!       --tokenizer T [--isl N --osl N [--isl-stdev N --osl-stdev N] | --dataset F |
//!       --input-data F] --concurrency C --num-prompts N [--warmup N] [--seed N]
//!       [--ignore-eos] [--streaming|--no-streaming] [--server-kind K] [--percentiles P]
//!       [--no-progress]
//!   fake-serve-client benchmark_serving --model M [--tokenizer T] --num-prompts N
//!       [--max-concurrency C] --dataset-name random|trtllm_custom [--dataset-path F]
//!       [--random-input-len N --random-output-len N --random-range-ratio R] [--random-ids]
//!       [--tokenize-on-client] [--percentile-metrics L] [--ignore-eos] [--no-test-input]
//!       [--backend openai|openai-chat] [--use-chat-template] [--non-streaming]
//!       [--trust-remote-code] --host H --port P
//!
//! serve-bench exits 1 when a request failed (the block still printed), 2 for a usage error;
//! benchmark_serving exits 0 with the failures in its block, as upstream's does.

// Shared with the server double, which uses the server half.
#[allow(dead_code)]
#[path = "http.rs"]
mod http;

use std::io::{BufRead, BufReader, Read};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One request to send: its prompt (token ids, or text) and how many tokens to ask for.
#[derive(Clone)]
struct Prompt {
    ids: Option<Vec<u32>>,
    text: Option<String>,
    input_len: usize,
    max_tokens: usize,
}

struct Plan {
    addr: String,
    chat: bool,
    model: String,
    prompts: Vec<Prompt>,
    concurrency: usize,
    warmup: usize,
    streaming: bool,
    ignore_eos: bool,
    serve_bench: bool,
}

#[derive(Default, Clone)]
struct Outcome {
    ok: bool,
    error: String,
    input_len: usize,
    output_len: usize,
    ttft: f64,
    e2el: f64,
    itls: Vec<f64>,
    decoded_per_iter: Option<f64>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = match args.first().map(String::as_str) {
        Some("serve-bench") => serve_bench(&args[1..]),
        Some("benchmark_serving") => benchmark_serving(&args[1..]),
        _ => Err("usage: fake-serve-client serve-bench|benchmark_serving ...".to_string()),
    };
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let failed = run(&plan);
    if plan.serve_bench && failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `--flag value` and `--switch` pairs.
struct Args {
    values: Vec<(String, Option<String>)>,
}

impl Args {
    fn parse(args: &[String], switches: &[&str], flags: &[&str]) -> Result<Args, String> {
        let mut values = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            if switches.contains(&a) {
                values.push((a.to_string(), None));
                i += 1;
            } else if flags.contains(&a) {
                let v = args.get(i + 1).ok_or(format!("{a} needs a value"))?;
                values.push((a.to_string(), Some(v.clone())));
                i += 2;
            } else {
                return Err(format!("unknown argument `{a}`"));
            }
        }
        Ok(Args { values })
    }

    fn get(&self, flag: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == flag)
            .and_then(|(_, v)| v.as_deref())
    }

    fn has(&self, flag: &str) -> bool {
        self.values.iter().any(|(k, _)| k == flag)
    }

    fn num(&self, flag: &str, default: usize) -> Result<usize, String> {
        match self.get(flag) {
            Some(v) => v
                .parse()
                .map_err(|_| format!("{flag}: `{v}` is not a count")),
            None => Ok(default),
        }
    }
}

fn random_prompts(n: usize, isl: usize, osl: usize, isl_stdev: usize, seed: u64) -> Vec<Prompt> {
    // A small deterministic generator: the lengths vary only when asked to.
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    (0..n)
        .map(|i| {
            let len = if isl_stdev > 0 {
                (isl + next() % (2 * isl_stdev + 1))
                    .saturating_sub(isl_stdev)
                    .max(1)
            } else {
                isl
            };
            Prompt {
                ids: Some(
                    (0..len)
                        .map(|j| ((i * 31 + j) % 1000 + 10) as u32)
                        .collect(),
                ),
                text: None,
                input_len: len,
                max_tokens: osl,
            }
        })
        .collect()
}

fn read_lines(path: &str) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{path}: {e}")))
        .collect()
}

/// trtllm_custom: `{"input": {"messages": [...], "max_tokens": N}}`; the prompt is the second
/// message's text, as upstream's CustomDataset takes it.
fn custom_prompts(path: &str, n: usize) -> Result<Vec<Prompt>, String> {
    let rows = read_lines(path)?;
    if rows.is_empty() {
        return Err(format!("{path}: empty dataset"));
    }
    Ok((0..n)
        .map(|i| {
            let r = &rows[i % rows.len()]["input"];
            let text = r["messages"][1]["content"]
                .as_str()
                .unwrap_or("")
                .to_string();
            Prompt {
                input_len: text.split_whitespace().count(),
                ids: None,
                text: Some(text),
                max_tokens: r["max_tokens"].as_u64().unwrap_or(16) as usize,
            }
        })
        .collect())
}

/// trtllm-bench's dataset: `{"task_id": .., "input_ids": [...], "output_tokens": N}`.
fn input_data_prompts(path: &str, n: usize) -> Result<Vec<Prompt>, String> {
    let rows = read_lines(path)?;
    if rows.is_empty() {
        return Err(format!("{path}: empty dataset"));
    }
    Ok((0..n)
        .map(|i| {
            let r = &rows[i % rows.len()];
            let ids: Vec<u32> = r["input_ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_u64)
                        .map(|v| v as u32)
                        .collect()
                })
                .unwrap_or_default();
            Prompt {
                input_len: ids.len(),
                ids: Some(ids),
                text: None,
                max_tokens: r["output_tokens"].as_u64().unwrap_or(16) as usize,
            }
        })
        .collect())
}

fn serve_bench(args: &[String]) -> Result<Plan, String> {
    let a = Args::parse(
        args,
        &[
            "--ignore-eos",
            "--streaming",
            "--no-streaming",
            "--no-progress",
        ],
        &[
            "--url",
            "--endpoint",
            "--model",
            "--tokenizer",
            "--isl",
            "--osl",
            "--isl-stdev",
            "--osl-stdev",
            "--dataset",
            "--input-data",
            "--concurrency",
            "--num-prompts",
            "--warmup",
            "--seed",
            "--server-kind",
            "--percentiles",
            "--request-rate",
            "--iterations",
            "--output-dir",
            "--save-result",
            "--ready-timeout",
        ],
    )?;
    let url = a.get("--url").ok_or("--url is required")?;
    let addr = url
        .strip_prefix("http://")
        .ok_or("--url must be http://")?
        .trim_end_matches('/')
        .to_string();
    let n = a.num("--num-prompts", 16)?;
    let prompts = if let Some(p) = a.get("--dataset") {
        custom_prompts(p, n)?
    } else if let Some(p) = a.get("--input-data") {
        input_data_prompts(p, n)?
    } else {
        random_prompts(
            n,
            a.num("--isl", 128)?,
            a.num("--osl", 128)?,
            a.num("--isl-stdev", 0)?,
            a.num("--seed", 0)? as u64,
        )
    };
    Ok(Plan {
        addr,
        chat: a.get("--endpoint") == Some("chat"),
        model: a.get("--model").unwrap_or("model").to_string(),
        prompts,
        concurrency: a.num("--concurrency", 1)?.max(1),
        warmup: a.num("--warmup", 0)?,
        streaming: !a.has("--no-streaming"),
        ignore_eos: a.has("--ignore-eos"),
        serve_bench: true,
    })
}

fn benchmark_serving(args: &[String]) -> Result<Plan, String> {
    let a = Args::parse(
        args,
        &[
            "--random-ids",
            "--tokenize-on-client",
            "--ignore-eos",
            "--no-test-input",
            "--use-chat-template",
            "--non-streaming",
            "--trust-remote-code",
            "--save-result",
        ],
        &[
            "--model",
            "--tokenizer",
            "--num-prompts",
            "--max-concurrency",
            "--dataset-name",
            "--dataset-path",
            "--random-input-len",
            "--random-output-len",
            "--random-range-ratio",
            "--percentile-metrics",
            "--backend",
            "--host",
            "--port",
        ],
    )?;
    let n = a.num("--num-prompts", 1000)?;
    let prompts = match a.get("--dataset-name").unwrap_or("sharegpt") {
        "random" => random_prompts(
            n,
            a.num("--random-input-len", 1024)?,
            a.num("--random-output-len", 128)?,
            0,
            0,
        ),
        "trtllm_custom" => custom_prompts(a.get("--dataset-path").ok_or("--dataset-path")?, n)?,
        other => return Err(format!("dataset `{other}` is not faked")),
    };
    // Upstream prints its arguments first.
    println!(
        "Namespace(backend='{}', num_prompts={n}, max_concurrency={})",
        a.get("--backend").unwrap_or("openai"),
        a.get("--max-concurrency").unwrap_or("None")
    );
    Ok(Plan {
        addr: format!(
            "{}:{}",
            a.get("--host").unwrap_or("localhost"),
            a.get("--port").ok_or("--port is required")?
        ),
        chat: a.get("--backend") == Some("openai-chat"),
        model: a.get("--model").ok_or("--model is required")?.to_string(),
        concurrency: a.num("--max-concurrency", n)?.max(1),
        warmup: usize::from(!a.has("--no-test-input")),
        streaming: !a.has("--non-streaming"),
        ignore_eos: a.has("--ignore-eos"),
        prompts,
        serve_bench: false,
    })
}

fn request(plan: &Plan, p: &Prompt) -> Outcome {
    let mut out = Outcome {
        input_len: p.input_len,
        ..Outcome::default()
    };
    let mut body = json!({"model": plan.model, "max_tokens": p.max_tokens, "stream": plan.streaming,
        "ignore_eos": plan.ignore_eos, "temperature": 0.0});
    if plan.chat {
        let text = p.text.clone().unwrap_or_else(|| {
            p.ids
                .iter()
                .flatten()
                .map(|i| format!("t{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        });
        body["messages"] = json!([{"role": "user", "content": text}]);
    } else if let Some(ids) = &p.ids {
        body["prompt"] = json!(ids);
    } else {
        body["prompt"] = json!(p.text);
    }
    let path = if plan.chat {
        "/v1/chat/completions"
    } else {
        "/v1/completions"
    };
    let start = Instant::now();
    let stream = match http::send(
        &plan.addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    ) {
        Ok(s) => s,
        Err(e) => {
            out.error = e.to_string();
            return out;
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(300)));
    let mut r = BufReader::new(stream);
    match http::read_head(&mut r) {
        Some(200) => {}
        Some(s) => {
            out.error = format!("HTTP {s}");
            return out;
        }
        None => {
            out.error = "no response".into();
            return out;
        }
    }
    let mut last_chunk: Option<Instant> = None;
    let mut usage: Option<Value> = None;
    let mut last_choice = Value::Null;
    if plan.streaming {
        for line in r.lines() {
            let Ok(line) = line else { break };
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                break;
            }
            let Ok(event) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            let now = Instant::now();
            let choice = &event["choices"][0];
            let content = choice["text"]
                .as_str()
                .or(choice["delta"]["content"].as_str())
                .unwrap_or("");
            if !content.is_empty() {
                match last_chunk {
                    None => out.ttft = now.duration_since(start).as_secs_f64(),
                    Some(prev) => out.itls.push(now.duration_since(prev).as_secs_f64()),
                }
                last_chunk = Some(now);
            }
            if !event["usage"].is_null() {
                usage = Some(event["usage"].clone());
            }
            if !choice.is_null() {
                last_choice = choice.clone();
            }
        }
    } else {
        let mut text = String::new();
        let _ = r.read_to_string(&mut text);
        let whole: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        usage = Some(whole["usage"].clone());
        last_choice = whole["choices"][0].clone();
        out.ttft = start.elapsed().as_secs_f64();
    }
    out.e2el = start.elapsed().as_secs_f64();
    match usage.as_ref().and_then(|u| u["completion_tokens"].as_u64()) {
        Some(n) => {
            out.output_len = n as usize;
            out.ok = true;
        }
        None => out.error = "the response has no usage".into(),
    }
    out.decoded_per_iter = last_choice["avg_decoded_tokens_per_iter"].as_f64();
    out
}

/// Runs the plan and prints the block; returns the failed request count.
fn run(plan: &Plan) -> usize {
    for p in plan.prompts.iter().take(plan.warmup) {
        let _ = request(plan, p);
    }
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..plan.concurrency.min(plan.prompts.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(p) = plan.prompts.get(i) else { break };
                    let o = request(plan, p);
                    if let Ok(mut all) = outcomes.lock() {
                        all.push(o);
                    }
                }
            });
        }
    });
    let duration = start.elapsed().as_secs_f64();
    let all = outcomes.into_inner().unwrap_or_default();
    print_block(&all, duration)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// numpy's default percentile (linear interpolation).
fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let pos = q / 100.0 * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

fn std_dev(v: &[f64]) -> f64 {
    let m = mean(v);
    (mean(&v.iter().map(|x| (x - m).powi(2)).collect::<Vec<_>>())).sqrt()
}

fn print_block(all: &[Outcome], duration: f64) -> usize {
    let ok: Vec<&Outcome> = all.iter().filter(|o| o.ok).collect();
    let failed = all.len() - ok.len();
    for o in all.iter().filter(|o| !o.ok).take(3) {
        println!("Error: {}", o.error);
    }
    let total_in: usize = ok.iter().map(|o| o.input_len).sum();
    let total_out: usize = ok.iter().map(|o| o.output_len).sum();
    let ms = |v: Vec<f64>| v.into_iter().map(|x| x * 1000.0).collect::<Vec<_>>();
    let ttfts = ms(ok.iter().map(|o| o.ttft).collect());
    let tpots = ms(ok
        .iter()
        .filter(|o| o.output_len > 1)
        .map(|o| (o.e2el - o.ttft) / (o.output_len - 1) as f64)
        .collect());
    let itls = ms(ok.iter().flat_map(|o| o.itls.iter().copied()).collect());
    let e2els = ms(ok.iter().map(|o| o.e2el).collect());
    let user = mean(
        &ok.iter()
            .filter(|o| o.e2el > 0.0)
            .map(|o| o.output_len as f64 / o.e2el)
            .collect::<Vec<_>>(),
    );
    let row_i = |label: &str, v: usize| println!("{:<40} {:<10}", label, v);
    let row = |label: &str, v: f64| println!("{:<40} {:<10.2}", label, v);
    println!("{:=^50}", " Serving Benchmark Result ");
    row_i("Total requests:", all.len());
    row_i("Successful requests:", ok.len());
    row_i("Failed requests:", failed);
    row("Benchmark duration (s):", duration);
    row_i("Total input tokens:", total_in);
    row_i("Total generated tokens:", total_out);
    row("Request throughput (req/s):", ok.len() as f64 / duration);
    row(
        "Output token throughput (tok/s):",
        total_out as f64 / duration,
    );
    row(
        "Total Token throughput (tok/s):",
        (total_in + total_out) as f64 / duration,
    );
    row("User throughput (tok/s):", user);
    if failed > 0 {
        println!("{:=^63}", "!FAILED REQUESTS!");
        println!("Total failed requests: {failed}");
        println!("{:=^63}", "!CHECK LOG FOR ERRORS!");
    }
    let decoded: Vec<f64> = ok.iter().filter_map(|o| o.decoded_per_iter).collect();
    if mean(&decoded) > 1.0 {
        println!("{:-^56}", "Avg Decoded Tokens per Iter");
        row("Mean Avg Decoded Tokens per Iter:", mean(&decoded));
        row(
            "Median Avg Decoded Tokens per Iter:",
            percentile(&decoded, 50.0),
        );
    }
    for (title, name, v) in [
        ("Time to First Token", "TTFT", &ttfts),
        ("Time per Output Token (excl. 1st token)", "TPOT", &tpots),
        ("Inter-token Latency", "ITL", &itls),
        ("End-to-end Latency", "E2EL", &e2els),
    ] {
        println!("{:-^50}", title);
        row(&format!("Mean {name} (ms):"), mean(v));
        row(&format!("Median {name} (ms):"), percentile(v, 50.0));
        row(&format!("Std Dev {name} (ms):"), std_dev(v));
        row(&format!("P99 {name} (ms):"), percentile(v, 99.0));
    }
    println!("{}", "=".repeat(50));
    failed
}
