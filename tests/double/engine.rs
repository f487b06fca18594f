//! `build`: checks the options as upstream does, prints the 0.17-era build log (sample 005)
//! with TensorRT's `Engine generation completed in X seconds.` line (perfgate reads the build
//! time from it), and writes `<workspace>/<model>/tp_<tp>_pp_<pp>/` with a config.json that
//! `throughput --backend=tensorrt` reads back.

use std::path::Path;

use serde_json::json;

use crate::Fail;
use crate::bench::{KvCache, engine_dir, kv_cache_lines};
use crate::cli::{UsageError, Values};
use crate::console::{self, Console};
use crate::dataset;
use crate::faults::Knobs;
use crate::fmt::{RULE, section, sig6, tabbed};
use crate::report::to_python_json;
use crate::sim;

/// What the build is sized from.
enum Sizing {
    Dataset {
        max_isl: u64,
        max_osl: u64,
        avg_isl: u64,
        avg_osl: u64,
        n: usize,
    },
    Limits,
    Targets {
        isl: i64,
        osl: i64,
    },
    Defaults,
}

pub fn build(g: &Values, o: &Values, k: &Knobs) -> Result<i32, Fail> {
    let command = "trtllm-bench build";
    let model = g.str("model").unwrap_or_default().to_string();
    let model_path = g.str("model_path");
    let workspace = g.str("workspace").unwrap_or("/tmp");
    let tp = o.int("tp_size").unwrap_or(1);
    let pp = o.int("pp_size").unwrap_or(1);
    if tp < 1 || pp < 1 {
        return Err(Fail::python(
            "ValueError",
            format!("--tp_size and --pp_size must be positive, got {tp} and {pp}"),
        ));
    }
    if tp * pp > 8 {
        return Err(Fail::python(
            "ValueError",
            format!(
                "TP × PP = {} exceeds the 8 GPUs of one node that trtllm-bench build supports",
                tp * pp
            ),
        ));
    }
    let has_limits = o.has("max_batch_size") || o.has("max_num_tokens");
    let has_targets = o.has("target_input_len") || o.has("target_output_len");
    let given = [o.has("dataset"), has_limits, has_targets]
        .iter()
        .filter(|b| **b)
        .count();
    if given > 1 {
        return Err(UsageError::new(
            command,
            "Only one of --dataset, --max_batch_size/--max_num_tokens or --target_input_len/--target_output_len may be given.",
        )
        .into());
    }
    if has_limits && !(o.has("max_batch_size") && o.has("max_num_tokens")) {
        return Err(UsageError::new(
            command,
            "--max_batch_size and --max_num_tokens must be given together.",
        )
        .into());
    }
    if has_targets && !(o.has("target_input_len") && o.has("target_output_len")) {
        return Err(UsageError::new(
            command,
            "--target_input_len and --target_output_len must be given together.",
        )
        .into());
    }
    let sizing = if let Some(path) = o.str("dataset") {
        let entries =
            dataset::read(Path::new(path), 0).map_err(|e| Fail::python("ValueError", e))?;
        let n = entries.len();
        Sizing::Dataset {
            max_isl: entries.iter().map(|e| e.isl).max().unwrap_or(0),
            max_osl: entries.iter().map(|e| e.osl).max().unwrap_or(0),
            avg_isl: entries.iter().map(|e| e.isl).sum::<u64>() / n as u64,
            avg_osl: entries.iter().map(|e| e.osl).sum::<u64>() / n as u64,
            n,
        }
    } else if has_limits {
        Sizing::Limits
    } else if has_targets {
        Sizing::Targets {
            isl: o.int("target_input_len").unwrap_or(1),
            osl: o.int("target_output_len").unwrap_or(1),
        }
    } else {
        Sizing::Defaults
    };
    let max_seq_len = match (o.int("max_seq_len"), &sizing) {
        (Some(v), _) => v,
        (
            None,
            Sizing::Dataset {
                max_isl, max_osl, ..
            },
        ) => (max_isl + max_osl) as i64,
        (None, Sizing::Targets { isl, osl }) => isl + osl,
        // Upstream takes the model config's max_position_embeddings; 4096 stands in.
        (None, _) => 4096,
    };
    if max_seq_len < 1 {
        return Err(Fail::python(
            "ValueError",
            format!("--max_seq_len must be positive, got {max_seq_len}"),
        ));
    }
    let (max_batch_size, max_num_tokens) = match &sizing {
        Sizing::Limits => (
            o.int("max_batch_size").unwrap_or(2048),
            o.int("max_num_tokens").unwrap_or(8192),
        ),
        _ => (4096, 8192),
    };
    if max_batch_size < 1 || max_num_tokens < 1 {
        return Err(Fail::python(
            "ValueError",
            format!(
                "--max_batch_size and --max_num_tokens must be positive, got {max_batch_size} and {max_num_tokens}"
            ),
        ));
    }
    let quant = o.str("quantization").map(|q| q.to_ascii_uppercase());
    let kv_dtype = quant
        .as_deref()
        .filter(|q| q.contains("FP8") || q.contains("FP4"))
        .map(|_| "FP8".to_string());
    let dir = engine_dir(workspace, &model, tp, pp);
    let model_factor = sim::model_factor(&model);
    let noise_factor = (1.0 + k.noise * sim::gauss(k.seed)).max(0.05);
    let speed = k.scale * noise_factor;
    let gen_secs = (15.0 + 20.0 * model_factor) / (tp as f64).powf(0.8) / speed;
    let version = k.era.version();

    let mut c = Console::default();
    c.out(format!("[TensorRT-LLM] TensorRT-LLM version: {version}"));
    match &sizing {
        Sizing::Dataset {
            max_isl,
            max_osl,
            avg_isl,
            avg_osl,
            n,
        } => {
            c.log('I', "Found dataset.");
            let mut l = vec![String::new()];
            section(&mut l, "DATASET DETAILS", false);
            l.push(tabbed("Max Input Sequence Length:", 32, &max_isl.to_string()));
            l.push(tabbed("Max Output Sequence Length:", 32, &max_osl.to_string()));
            l.push(tabbed("Max Sequence Length:", 24, &(max_isl + max_osl).to_string()));
            l.push(tabbed(
                "Target (Average) Input Sequence Length:",
                40,
                &avg_isl.to_string(),
            ));
            l.push(tabbed(
                "Target (Average) Output Sequence Length:",
                48,
                &avg_osl.to_string(),
            ));
            l.push(tabbed("Number of Sequences:", 24, &n.to_string()));
            l.push(RULE.into());
            l.push(String::new());
            l.push(String::new());
            c.block(l);
            c.log('I', "Max batch size and max num tokens are not provided, use tuning heuristics or pre-defined setting from trtllm-bench.");
            let bytes_per_param = if quant.is_some() { 1.0 } else { 2.0 };
            let avail = (141.0 - model_factor * 8.0 * bytes_per_param / tp as f64).max(1.0);
            let kv = avail * 0.95;
            let per_req = 131_072.0 * model_factor * (max_isl + max_osl) as f64 / 1e9;
            c.log('I', format!("Estimated total available memory for KV cache: {avail:.2} GB"));
            c.log('I', format!("Estimated total KV cache memory: {kv:.2} GB"));
            c.log('I', format!(
                "Estimated max number of requests in KV cache memory: {:.2}",
                kv / per_req.max(1e-9)
            ));
            c.log('I', format!("Estimated max batch size (after fine-tune): {max_batch_size}"));
            c.log('I', format!("Estimated max num tokens (after fine-tune): {max_num_tokens}"));
        }
        Sizing::Defaults => c.log(
            'W',
            "No dataset, max batch size/num tokens or target lengths given; using max batch size 4096 and max num tokens 8192.",
        ),
        _ => {}
    }
    c.log('I', "Set dtype to bfloat16.");
    c.log('I', "Set multiple_profiles to True.");
    c.log('I', "Set use_paged_context_fmha to True.");
    if quant.as_deref() == Some("FP8") {
        c.log('I', "Set use_fp8_context_fmha to True.");
    }
    let mut l = vec![String::new()];
    section(&mut l, "ENGINE BUILD INFO", false);
    l.push(tabbed("Model Name:", 24, &model));
    l.push(tabbed("Model Path:", 24, model_path.unwrap_or("None")));
    l.push(tabbed("Workspace Directory:", 24, workspace));
    l.push(tabbed("Engine Directory:", 24, &dir));
    l.push(String::new());
    section(&mut l, "ENGINE CONFIGURATION DETAILS", false);
    l.push(tabbed("Max Sequence Length:", 32, &max_seq_len.to_string()));
    l.push(tabbed("Max Batch Size:", 32, &max_batch_size.to_string()));
    l.push(tabbed("Max Num Tokens:", 32, &max_num_tokens.to_string()));
    l.push(tabbed(
        "Quantization:",
        32,
        quant.as_deref().unwrap_or("None"),
    ));
    l.push(tabbed(
        "KV Cache Dtype:",
        32,
        kv_dtype.as_deref().unwrap_or("None"),
    ));
    l.push(RULE.into());
    l.push(String::new());
    c.report(l, true);

    // Without a local checkpoint the model is downloaded first: three steps instead of two.
    let steps = if model_path.is_some() { 2 } else { 3 };
    let mut step = 1;
    let load_secs = (10.0 + 8.0 * model_factor) / speed;
    if model_path.is_none() {
        c.out(format!(
            "Loading Model: [{step}/{steps}]\tDownloading HF model"
        ));
        c.out(format!(
            "Downloaded model to /root/.cache/huggingface/hub/models--{}",
            model.replace('/', "--")
        ));
        c.out(format!("Time: {:.3}s", 0.321 / speed));
        step += 1;
    }
    c.out(format!(
        "Loading Model: [{step}/{steps}]\tLoading HF model to memory"
    ));
    c.mark_started();
    c.out(format!("Time: {load_secs:.3}s"));
    step += 1;
    c.out(format!(
        "Loading Model: [{step}/{steps}]\tBuilding TRT-LLM engine"
    ));
    kv_cache_lines(
        &mut c,
        &KvCache {
            model_factor,
            quant: quant.as_deref(),
            kv_fp8: kv_dtype.is_some(),
            tp: tp as u32,
            kv_fraction: 0.9,
            max_seq_len,
            tokens_per_block: 64,
        },
    );
    let ts = console::timestamp();
    c.out(format!(
        "{ts} [TRT] [I] Total Activation Memory: {}",
        (1_577_062_400.0 * model_factor) as u64
    ));
    c.out(format!(
        "{ts} [TRT] [I] Engine generation completed in {} seconds.",
        sig6(gen_secs)
    ));
    c.out(format!(
        "{ts} [TRT] [I] [MemUsageStats] Peak memory usage of TRT CPU/GPU memory allocators: CPU 0 MiB, GPU {} MiB",
        (15_317.0 * model_factor / tp as f64) as u64
    ));
    let serialize_secs = 1.0 + 0.5 * model_factor;
    let total = (gen_secs + serialize_secs).round() as u64;
    c.log(
        'I',
        format!(
            "Total time of building all engines: {:02}:{:02}:{:02}",
            total / 3600,
            total / 60 % 60,
            total % 60
        ),
    );
    c.out(format!("Time: {:.3}s", gen_secs + serialize_secs));
    c.out("Loading model done.");
    c.out(format!(
        "Total latency: {:.3}s",
        load_secs + gen_secs + serialize_secs
    ));
    c.out("");
    c.out(RULE);
    c.out(format!("ENGINE SAVED: {dir}"));
    c.out(RULE);
    console::emit(&c, &k.modes);

    write_engine(
        &dir,
        version,
        &model,
        tp,
        pp,
        quant.as_deref(),
        kv_dtype.as_deref(),
        max_seq_len,
        max_batch_size,
        max_num_tokens,
    )?;
    Ok(0)
}

#[allow(clippy::too_many_arguments)]
fn write_engine(
    dir: &str,
    version: &str,
    model: &str,
    tp: i64,
    pp: i64,
    quant: Option<&str>,
    kv_dtype: Option<&str>,
    max_seq_len: i64,
    max_batch_size: i64,
    max_num_tokens: i64,
) -> Result<(), Fail> {
    let err = |what: &str, e: std::io::Error| {
        Fail::python("OSError", format!("cannot write the engine: {what}: {e}"))
    };
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    let config = json!({
        "version": version,
        "pretrained_config": {
            "architecture": "LlamaForCausalLM",
            "dtype": "bfloat16",
            "model_name": model,
            "mapping": {"world_size": tp * pp, "tp_size": tp, "pp_size": pp},
            "quantization": {"quant_algo": quant, "kv_cache_quant_algo": kv_dtype},
        },
        "build_config": {
            "max_input_len": max_seq_len,
            "max_seq_len": max_seq_len,
            "max_batch_size": max_batch_size,
            "max_num_tokens": max_num_tokens,
            "max_beam_width": 1,
        },
    });
    let path = Path::new(dir).join("config.json");
    std::fs::write(&path, to_python_json(&config))
        .map_err(|e| err(&path.display().to_string(), e))?;
    for rank in 0..tp * pp {
        let path = Path::new(dir).join(format!("rank{rank}.engine"));
        std::fs::write(&path, b"fake-trtllm-bench engine (not a TensorRT plan)\n")
            .map_err(|e| err(&path.display().to_string(), e))?;
    }
    Ok(())
}
