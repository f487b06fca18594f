//! `throughput` and `latency`: check the inputs as the real tool would, make up the run, print
//! the log and report of the chosen era, write the requested files.

use std::path::Path;

use serde_json::Value;

use crate::Fail;
use crate::cli::{UsageError, Values};
use crate::console::{self, Console};
use crate::dataset::{self, Entry};
use crate::faults::{Era, Knobs};
use crate::report::{self, EngineInfo, RunInfo};
use crate::sim::{self, Metrics, Setup, Timing};

/// A built engine's settings, read from its config.json.
pub struct Engine {
    pub dir: String,
    pub dtype: String,
    pub tp: u32,
    pub pp: u32,
    pub quantization: Option<String>,
    pub kv_cache_dtype: Option<String>,
    pub max_input_len: i64,
    pub max_seq_len: i64,
    pub max_batch_size: i64,
    pub max_num_tokens: i64,
}

pub fn engine_dir(workspace: &str, model: &str, tp: i64, pp: i64) -> String {
    Path::new(workspace)
        .join(model)
        .join(format!("tp_{tp}_pp_{pp}"))
        .display()
        .to_string()
}

fn read_engine(dir: &str) -> Result<Engine, Fail> {
    let path = Path::new(dir).join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        // Say what would have made it: the usual mistake is a missing build step.
        std::io::ErrorKind::NotFound => Fail::python(
            "FileNotFoundError",
            format!(
                "[Errno 2] No such file or directory: '{}' (no engine: run `trtllm-bench build` first)",
                path.display()
            ),
        ),
        _ => crate::os_error(&path.display().to_string(), &e),
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        Fail::python(
            "json.decoder.JSONDecodeError",
            format!("{}: {e}", path.display()),
        )
    })?;
    let get = |ptr: &str| v.pointer(ptr);
    let int = |ptr: &str| -> Result<i64, Fail> {
        get(ptr).and_then(Value::as_i64).ok_or_else(|| {
            Fail::python(
                "KeyError",
                format!("{}: no integer at {ptr}", path.display()),
            )
        })
    };
    let text_at = |ptr: &str| get(ptr).and_then(Value::as_str).map(str::to_string);
    Ok(Engine {
        dir: dir.to_string(),
        dtype: text_at("/pretrained_config/dtype").unwrap_or_else(|| "bfloat16".into()),
        tp: int("/pretrained_config/mapping/tp_size")?.clamp(1, 1024) as u32,
        pp: int("/pretrained_config/mapping/pp_size")?.clamp(1, 1024) as u32,
        quantization: text_at("/pretrained_config/quantization/quant_algo"),
        kv_cache_dtype: text_at("/pretrained_config/quantization/kv_cache_quant_algo"),
        max_input_len: int("/build_config/max_input_len")?,
        max_seq_len: int("/build_config/max_seq_len")?,
        max_batch_size: int("/build_config/max_batch_size")?,
        max_num_tokens: int("/build_config/max_num_tokens")?,
    })
}

/// The quantization a PyTorch-backend checkpoint carries, guessed from its name
/// (`..._fp8`, `...-FP4`), and the KV cache dtype that goes with it.
pub fn quant_from_name(model: &str) -> (Option<String>, Option<String>) {
    let lower = model.to_ascii_lowercase();
    let q = if lower.contains("fp4") {
        Some("NVFP4")
    } else if lower.contains("fp8") {
        Some("FP8")
    } else {
        None
    };
    (q.map(String::from), q.map(|_| "FP8".to_string()))
}

/// GPU memory, so the KV-cache lines are plausible: an 80 GB H100.
const GPU_TOTAL_GIB: f64 = 79.10;

/// What the KV-cache lines depend on.
pub struct KvCache<'a> {
    pub model_factor: f64,
    pub quant: Option<&'a str>,
    pub kv_fp8: bool,
    pub tp: u32,
    pub kv_fraction: f64,
    pub max_seq_len: i64,
    pub tokens_per_block: u64,
}

/// The C++ runtime's KV-cache allocation lines for this model and memory fraction.
pub fn kv_cache_lines(c: &mut Console, kv: &KvCache) {
    let KvCache {
        model_factor,
        quant,
        kv_fp8,
        tp,
        kv_fraction,
        max_seq_len,
        tokens_per_block,
    } = *kv;
    let bytes_per_param = match quant {
        Some(q) if q.contains("FP4") => 0.5625,
        Some(q) if q.contains("FP8") => 1.0,
        _ => 2.0,
    };
    let tp = f64::from(tp.max(1));
    let weights_gib = model_factor * 8.0 * bytes_per_param / tp;
    let available = (GPU_TOTAL_GIB - weights_gib - 3.5).max(1.0);
    let alloc = available * kv_fraction.clamp(0.0, 1.0);
    let bytes_per_token = 131_072.0 * model_factor * if kv_fp8 { 0.5 } else { 1.0 } / tp;
    let blocks =
        ((alloc * 1024.0 * 1024.0 * 1024.0 / bytes_per_token) as u64 / tokens_per_block).max(1);
    let pages = (max_seq_len.max(1) as u64).div_ceil(tokens_per_block);
    c.out(format!("[TensorRT-LLM][INFO] Memory usage when calculating max tokens in paged kv cache: total: {GPU_TOTAL_GIB:.2} GiB, available: {available:.2} GiB"));
    c.out(format!(
        "[TensorRT-LLM][INFO] Number of blocks in KV cache primary pool: {blocks}"
    ));
    c.out("[TensorRT-LLM][INFO] Number of blocks in KV cache secondary pool: 0, onboard blocks to primary memory before reuse: true");
    c.out(format!(
        "[TensorRT-LLM][INFO] Max KV cache pages per sequence: {pages}"
    ));
    c.out(format!(
        "[TensorRT-LLM][INFO] Number of tokens per block: {tokens_per_block}."
    ));
    c.out(format!(
        "[TensorRT-LLM][INFO] [MemUsageChange] Allocated {alloc:.2} GiB for max tokens in paged KV cache ({}).",
        blocks * tokens_per_block
    ));
}

fn positive(name: &str, v: i64) -> Result<i64, Fail> {
    if v > 0 {
        Ok(v)
    } else {
        Err(Fail::python(
            "ValueError",
            format!("--{name} must be a positive integer, got {v}"),
        ))
    }
}

pub fn run(sub: &str, g: &Values, o: &Values, k: &Knobs) -> Result<i32, Fail> {
    let latency = sub == "latency";
    let command = format!("trtllm-bench {sub}");
    let model = g.str("model").unwrap_or_default().to_string();
    let model_path = g.str("model_path").map(str::to_string);
    let workspace = g.str("workspace").unwrap_or("/tmp");
    let Some(dataset_path) = o.str("dataset") else {
        return Err(UsageError::new(&command, "Missing option '--dataset'.").into());
    };
    let yaml = o.str("extra_llm_api_options").or(o.str("config"));
    if let Some(y) = yaml {
        // Upstream opens the YAML when it builds the LLM arguments.
        std::fs::read(y).map_err(|e| crate::os_error(y, &e))?;
    }
    // 0.17-0.19 ran a TensorRT engine unless told otherwise; 0.21+ defaults to PyTorch.
    let backend = o.str("backend").unwrap_or(match k.era {
        Era::D => "pytorch",
        _ => "tensorrt",
    });
    let mut tp = o.int("tp").unwrap_or(1);
    let mut pp = o.int("pp").unwrap_or(1);
    positive("tp", tp)?;
    positive("pp", pp)?;
    let engine = if backend == "tensorrt" {
        let dir = o
            .str("engine_dir")
            .map(str::to_string)
            .unwrap_or_else(|| engine_dir(workspace, &model, tp, pp));
        let e = read_engine(&dir)?;
        // The engine's mapping wins over --tp/--pp, as upstream reads it from the engine.
        tp = i64::from(e.tp);
        pp = i64::from(e.pp);
        Some(e)
    } else {
        None
    };
    let limit = o.int("num_requests").unwrap_or(0).max(0) as usize;
    let entries =
        dataset::read(Path::new(dataset_path), limit).map_err(|e| Fail::python("ValueError", e))?;
    let kv_fraction = o.float("kv_cache_free_gpu_mem_fraction").unwrap_or(0.90);
    if !(kv_fraction > 0.0 && kv_fraction <= 1.0) {
        return Err(Fail::python(
            "ValueError",
            format!("--kv_cache_free_gpu_mem_fraction must be in (0, 1], got {kv_fraction}"),
        ));
    }
    let max_isl = entries.iter().map(|e| e.isl).max().unwrap_or(0) as i64;
    let max_osl = entries.iter().map(|e| e.osl).max().unwrap_or(0) as i64;
    let (mut max_batch_size, max_num_tokens) = match &engine {
        Some(e) => (
            o.int("max_batch_size").unwrap_or(e.max_batch_size),
            o.int("max_num_tokens").unwrap_or(e.max_num_tokens),
        ),
        None => (
            o.int("max_batch_size").unwrap_or(2048),
            o.int("max_num_tokens").unwrap_or(8192),
        ),
    };
    if latency {
        // The latency command forces one request at a time through the engine.
        max_batch_size = 1;
    }
    positive("max_batch_size", max_batch_size)?;
    positive("max_num_tokens", max_num_tokens)?;
    if let Some(e) = &engine
        && max_isl + max_osl > e.max_seq_len
    {
        return Err(Fail::python(
            "ValueError",
            format!(
                "the dataset's longest request ({max_isl} + {max_osl} tokens) exceeds the engine's max_seq_len {}",
                e.max_seq_len
            ),
        ));
    }
    let concurrency = o.int("concurrency").unwrap_or(if latency { 1 } else { -1 });
    let streaming = latency || o.flag("streaming");
    let warmup = o.int("warmup").unwrap_or(2).max(0);
    let ep = o.int("ep");
    let (quantization, kv_cache_dtype, dtype) = match &engine {
        Some(e) => (
            e.quantization.clone(),
            e.kv_cache_dtype.clone(),
            e.dtype.clone(),
        ),
        None => {
            let (q, kv) = quant_from_name(model_path.as_deref().unwrap_or(&model));
            (q, kv, "bfloat16".to_string())
        }
    };
    let model_factor = sim::model_factor(&model);
    let noise_factor = (1.0 + k.noise * sim::gauss(k.seed)).max(0.05);
    let slots = if concurrency > 0 {
        concurrency.min(max_batch_size)
    } else {
        max_batch_size
    };
    let setup = Setup {
        slots: slots.max(1) as usize,
        limited: concurrency > 0,
        tp: tp as u32,
        model_factor,
        speed: k.scale * noise_factor,
    };
    let timings = sim::run(&entries, &setup);
    let world = (tp * pp) as u32;
    let metrics = sim::metrics(&timings, streaming, world);
    let failed = if k.modes.failed_requests {
        (entries.len() / 10).max(1)
    } else {
        0
    };
    // 0.12 had no latency report of its own; the 0.16/0.17 one stands in for it.
    let era = if latency && k.era == Era::A {
        Era::B
    } else {
        k.era
    };
    let info = RunInfo {
        era,
        model: model.clone(),
        model_path: model_path.clone(),
        engine: engine.as_ref().map(|e| EngineInfo {
            dir: e.dir.clone(),
            max_input_len: e.max_input_len,
            max_seq_len: e.max_seq_len,
        }),
        backend: match backend {
            "tensorrt" => "TRT",
            "_autodeploy" => "_autodeploy",
            _ => "Pytorch",
        },
        dtype,
        kv_cache_dtype,
        quantization,
        tp: tp as u32,
        pp: pp as u32,
        ep,
        max_batch_size,
        max_num_tokens,
        kv_fraction,
        max_utilization: o.str("scheduler_policy") == Some("max_utilization"),
        dataset_path: dataset_path.to_string(),
        failed,
    };

    let mut c = Console::default();
    let ctx = Ctx {
        sub,
        info: &info,
        engine: engine.as_ref(),
        entries: &entries,
        limit,
        yaml,
        warmup,
        model_factor,
        kv_fraction,
        max_seq_len: engine.as_ref().map_or(max_isl + max_osl, |e| e.max_seq_len),
    };
    if info.era == Era::A {
        log_era_a(&mut c, &ctx, &metrics);
    } else {
        log_modern(&mut c, &ctx, &timings, &metrics);
    }
    console::emit(&c, &k.modes);

    if let Some(path) = o.str("report_json")
        && !k.modes.no_report_json
    {
        let mut doc = report::json(&info, &metrics);
        for (path, value) in &k.modes.json_sets {
            let pointer = format!("/{}", path.replace('.', "/"));
            match doc.pointer_mut(&pointer) {
                Some(slot) => *slot = Value::from(*value),
                None => {
                    return Err(Fail::python(
                        "KeyError",
                        format!("json-set: report.json has no `{path}`"),
                    ));
                }
            }
        }
        write(path, &report::to_python_json(&doc))?;
    }
    if let Some(path) = o.str("request_json") {
        write(path, &request_json(&timings))?;
    }
    if let Some(path) = o.str("output_json") {
        let doc: serde_json::Map<String, Value> = timings
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    i.to_string(),
                    Value::from(format!("<{} generated tokens>", t.num_out)),
                )
            })
            .collect();
        write(path, &report::to_python_json(&Value::Object(doc)))?;
    }
    if let Some(path) = o.str("iteration_log") {
        write(path, "")?;
    }
    Ok(0)
}

fn write(path: &str, text: &str) -> Result<(), Fail> {
    std::fs::write(path, text).map_err(|e| crate::os_error(path, &e))
}

/// `--request_json`: upstream's per-request records (timestamps in ns, durations in ns).
fn request_json(t: &[Timing]) -> String {
    let list: Vec<Value> = t
        .iter()
        .enumerate()
        .map(|(i, r)| {
            serde_json::json!({
                "request_id": i,
                "num_input_tokens": r.isl,
                "error_tokens": 0,
                "start_timestamp": r.start,
                "first_token_timestamp": r.first,
                "end_timestamp": r.end,
                "decode_iteration": r.num_out.saturating_sub(1),
                "num_total_output_tokens": r.num_out,
                "end_to_end_latency": r.end - r.start,
                "time_to_first_token": r.first - r.start,
                "output_tokens": r.num_out,
            })
        })
        .collect();
    report::to_python_json(&Value::Array(list))
}

struct Ctx<'a> {
    sub: &'a str,
    info: &'a RunInfo,
    engine: Option<&'a Engine>,
    entries: &'a [Entry],
    limit: usize,
    yaml: Option<&'a str>,
    warmup: i64,
    model_factor: f64,
    kv_fraction: f64,
    max_seq_len: i64,
}

impl Ctx<'_> {
    fn kv_lines(&self, c: &mut Console) {
        let tokens_per_block = if self.engine.is_some() { 64 } else { 32 };
        kv_cache_lines(
            c,
            &KvCache {
                model_factor: self.model_factor,
                quant: self.info.quantization.as_deref(),
                kv_fp8: self.info.kv_cache_dtype.as_deref() == Some("FP8"),
                tp: self.info.tp,
                kv_fraction: self.kv_fraction,
                max_seq_len: self.max_seq_len,
                tokens_per_block,
            },
        );
    }

    fn short_dataset_warning(&self, c: &mut Console) {
        if self.limit > self.entries.len() {
            c.log(
                'W',
                format!(
                    "Requested {} requests but the dataset holds {}; running {}.",
                    self.limit,
                    self.entries.len(),
                    self.entries.len()
                ),
            );
        }
    }
}

fn submission(t: &[Timing]) -> (usize, f64) {
    let first = t.iter().map(|r| r.start).min().unwrap_or(0);
    let last = t.iter().map(|r| r.start).max().unwrap_or(0);
    (t.len(), (last - first) as f64 / 1e9)
}

/// The 0.12-era log (sample 018): plain prints around the C++ executor's lines, and a report
/// printed without the logger prefix.
fn log_era_a(c: &mut Console, x: &Ctx, m: &Metrics) {
    let version = x.info.era.version();
    c.out(format!("Preparing to run {} benchmark...", x.sub));
    c.out("Setting up benchmarker and infrastructure.");
    c.out("Initializing Throughput Benchmark. [rate=%d req/s]");
    c.out("Ready to start benchmark.");
    c.out("Initializing Executor.");
    c.out(format!("[TensorRT-LLM][INFO] Engine version {version} found in the config file, assuming engine(s) built by new builder API."));
    c.out("[TensorRT-LLM][INFO] Initializing MPI with thread mode 3");
    c.out("[TensorRT-LLM][INFO] Initialized MPI");
    runtime_lines(c, x);
    c.out("[TensorRT-LLM][INFO] Executor instance created by worker");
    c.out("Starting response daemon...Executor started.");
    c.out("");
    c.out("Request serving started.");
    c.out("Starting statistics collection.");
    c.out("Collecting live stats...");
    c.out("Benchmark started.");
    c.mark_started();
    failed_lines(c, x);
    for l in [
        "Request serving stopped.",
        "Collecting last stats...",
        "Ending statistics collection.",
        "Stop received.",
        "Stopping response parsing.",
        "Collecting last responses before shutdown.",
        "Completed request parsing.",
        "Parsing stopped.",
        "Request generator successfully joined.",
        "Statistics process successfully joined.",
    ] {
        c.out(l);
    }
    c.report(report::throughput(x.info, m), false);
    c.out("");
    for l in [
        "Benchmark Shutdown called!",
        "Shutting down ExecutorServer.",
        "[TensorRT-LLM][INFO] Orchestrator sendReq thread exiting",
        "[TensorRT-LLM][INFO] Orchestrator recv thread exiting",
        "Executor shutdown.",
        "[TensorRT-LLM][INFO] Leader sendThread exiting",
        "[TensorRT-LLM][INFO] Leader recvReq thread exiting",
    ] {
        c.out(l);
    }
}

/// MPI, engine and KV-cache lines of the C++ runtime.
fn runtime_lines(c: &mut Console, x: &Ctx) {
    let world = x.info.tp * x.info.pp;
    c.out(format!(
        "[TensorRT-LLM][INFO] MPI size: {world}, MPI local size: {world}, rank: 0"
    ));
    c.out("[TensorRT-LLM][INFO] Rank 0 is using GPU 0");
    let mbs = x.info.max_batch_size;
    if let Some(e) = x.engine {
        c.out(format!(
            "[TensorRT-LLM][INFO] TRTGptModel maxNumSequences: {mbs}"
        ));
        c.out(format!(
            "[TensorRT-LLM][INFO] TRTGptModel maxBatchSize: {mbs}"
        ));
        c.out("[TensorRT-LLM][INFO] TRTGptModel maxBeamWidth: 1");
        c.out(format!(
            "[TensorRT-LLM][INFO] TRTGptModel maxSequenceLen: {}",
            e.max_seq_len
        ));
        c.out(format!(
            "[TensorRT-LLM][INFO] TRTGptModel maxNumTokens: {}",
            x.info.max_num_tokens
        ));
        let weights_mib = (x.model_factor * 8.0 * 1024.0 * 2.0 / f64::from(e.tp)) as u64;
        c.out(format!(
            "[TensorRT-LLM][INFO] Loaded engine size: {weights_mib} MiB"
        ));
    }
    let policy = if x.info.max_utilization {
        "MAX_UTILIZATION"
    } else {
        "GUARANTEED_NO_EVICT"
    };
    c.out(format!(
        "[TensorRT-LLM][INFO] Capacity Scheduler Policy: {policy}"
    ));
    x.kv_lines(c);
}

fn failed_lines(c: &mut Console, x: &Ctx) {
    // Spread the failures over the run, as errors of a real run are.
    let n = x.entries.len();
    let step = (n / x.info.failed.max(1)).max(1);
    for i in (0..n).step_by(step).take(x.info.failed) {
        c.log(
            'E',
            format!("Request {} failed: Encountered an error in forwardAsync function: CUDA error: an illegal memory access was encountered", i + 1),
        );
    }
}

/// The 0.17+ log: the Python logger's lifecycle lines, the runtime's lines, warmup, the run,
/// then the report on a logger line.
fn log_modern(c: &mut Console, x: &Ctx, t: &[Timing], m: &Metrics) {
    let version = x.info.era.version();
    c.out(format!("[TensorRT-LLM] TensorRT-LLM version: {version}"));
    c.log('I', format!("Preparing to run {} benchmark...", x.sub));
    c.log('I', format!("Setting up {} benchmark.", x.sub));
    x.short_dataset_warning(c);
    if let Some(y) = x.yaml {
        c.log('I', format!("Loading extra LLM API options from {y}"));
    }
    if x.engine.is_none() {
        c.log('I', "Using LLM with PyTorch backend");
    }
    runtime_lines(c, x);
    let run = |c: &mut Console, count: usize, secs: f64| {
        c.log('I', "Starting benchmarking async task.");
        c.log('I', "Starting benchmark...");
        (count, secs)
    };
    let submitted = |c: &mut Console, (count, secs): (usize, f64)| {
        let rate = count as f64 / secs.max(1e-9);
        c.log(
            'I',
            format!("Request submission complete. [count={count}, time={secs:.4}s, rate={rate:.2} req/s]"),
        );
    };
    let stop = |c: &mut Console| {
        c.log('I', "Benchmark complete.");
        c.log('I', "Stopping LLM backend.");
        c.log('I', "Cancelling all 0 tasks to complete.");
        c.log('I', "All tasks cancelled.");
        c.log('I', "LLM Backend stopped.");
    };
    if x.warmup > 0 {
        c.log('I', "Setting up for warmup...");
        c.log('I', "Running warmup.");
        // Submitting a couple of warmup requests takes microseconds.
        let w = run(c, x.warmup as usize, x.warmup as f64 * 8.2e-6);
        submitted(c, w);
        stop(c);
        c.log('I', "Warmup done.");
    }
    let (count, secs) = submission(t);
    let r = run(c, count, secs);
    c.mark_started();
    submitted(c, r);
    failed_lines(c, x);
    stop(c);
    let lines = match (x.sub, x.info.era) {
        ("latency", Era::B) => report::latency_b(x.info, m),
        _ => report::throughput(x.info, m),
    };
    c.report(lines, true);
    c.out("");
    c.log('I', "Thread proxy_dispatch_result_thread stopped.");
    c.out("[TensorRT-LLM][INFO] Refreshed the MPI local session");
}
