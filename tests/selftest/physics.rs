//! Physical limits: hand-computed values, the check on impossible and on real published results.

use std::collections::BTreeMap;

use perfgate::config::{PerfName, parse};
use perfgate::models::{Catalog, ModelConfigs};
use perfgate::physics::{PhysicsError, Roofline, SAFETY_MARGIN, rooflines};

fn roofs(name: &str, gpu: &str) -> Result<Vec<Roofline>, PhysicsError> {
    let Ok(PerfName::Standard(cfg)) = parse(name) else {
        panic!("not a standard name: {name}");
    };
    rooflines(&ModelConfigs::embedded(), &cfg, gpu)
}

fn one(name: &str, gpu: &str) -> Roofline {
    let mut r = roofs(name, gpu).expect("limits");
    assert_eq!(r.len(), 1);
    r.remove(0)
}

fn close(a: f64, b: f64, rel: f64) {
    assert!((a - b).abs() <= rel * b.abs(), "{a} vs {b}");
}

const H100_BW: f64 = 3.35e12;

#[test]
fn llama_8b_bf16_on_h100_by_hand() {
    let r = one(
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128-reqs:100-con:1",
        "H100_SXM",
    );
    let l = r.limits();
    let w = 8.03e9 * 2.0;
    close(l.weight_bytes, w, 1e-9);
    // 2 (K,V) x 32 layers x 8 KV heads x 128 x 2 bytes
    let kv = 2.0 * 32.0 * 8.0 * 128.0 * 2.0;
    close(l.kv_bytes_per_token, kv, 1e-9);
    // Batch 1: each of 127 decode steps reads all weights; token j reads 128 + j cached tokens.
    let kv_read: f64 = (129..=255).map(|c| c as f64 * kv).sum();
    let seconds_per_req = (127.0 * w + kv_read) / H100_BW;
    close(l.memory_ceiling.unwrap(), 128.0 / seconds_per_req, 1e-9);
    assert_eq!(l.bound_by, "memory");
    close(
        l.tpot_min_ms.unwrap(),
        (w + 128.0 * kv) / H100_BW * 1e3,
        1e-9,
    );
}

#[test]
fn llama_70b_fp8_on_h100_by_hand() {
    let r = one(
        "llama_v3.3_70b-bench-pytorch-float8-input_output_len:128,128",
        "H100",
    );
    let l = r.limits();
    close(l.weight_bytes, 70.55e9, 1e-9);
    // Reference §4c: κ = 2·80·8·128·1 B = 160 KiB per token.
    close(l.kv_bytes_per_token, 160.0 * 1024.0, 1e-9);
    // TPOT >= ~21 ms at batch 1 (reference: 21.5 ms with W = 72 GB).
    close(
        l.tpot_min_ms.unwrap(),
        (70.55e9 + 128.0 * 163840.0) / H100_BW * 1e3,
        1e-9,
    );
    // Compute ceiling ≈ 1979e12·128 / (2·70.6e9·256) ≈ 7,000 tok/s (reference); attention adds
    // FLOPs and the embedding lookup takes some away: within 5%.
    close(l.compute_ceiling, 7000.0, 0.05);
    assert_eq!(l.bound_by, "compute");
}

#[test]
fn moe_reads_active_parameters() {
    let l = one(
        "qwen3_30b_a3b-bench-pytorch-bfloat16-input_output_len:128,128-con:1",
        "H100_SXM",
    )
    .limits();
    close(l.weight_bytes, 30.5e9 * 2.0, 1e-9);
    close(l.active_weight_bytes, 3.3e9 * 2.0, 1e-9);
    // Batch 1 reads the active experts only, so TPOT's floor is set by 6.6 GB, not 61 GB.
    assert!(l.tpot_min_ms.unwrap() < 2.1, "{l:?}");
    // DeepSeek-R1 FP8: MLA caches (512 + 64) elements per layer, 61 layers, 1 byte.
    let d = one(
        "deepseek_r1_fp8-bench-pytorch-float8-input_output_len:1000,2000-ep:8-tp:8-gpus:8",
        "H200",
    )
    .limits();
    close(d.kv_bytes_per_token, 61.0 * 576.0, 1e-9);
    close(d.active_weight_bytes, 37e9, 1e-9);
}

#[test]
fn a_result_above_the_ceiling_is_flagged() {
    let r = one(
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128",
        "H100_SXM",
    );
    let ceiling = r.limits().throughput_ceiling;
    let mut m = BTreeMap::new();
    m.insert("TOTAL_OUTPUT_THROUGHPUT".to_string(), ceiling * 2.0);
    m.insert("OUTPUT_TOKEN_TIME".to_string(), 1.0);
    let v = r.check(&m);
    assert_eq!(v.len(), 2, "{v:?}");
    let text = v[0].to_string();
    assert!(text.starts_with("INVALID evidence: "), "{text}");
    assert!(text.contains("ceiling"), "{text}");
    // Within the margin: not flagged.
    m.insert(
        "TOTAL_OUTPUT_THROUGHPUT".to_string(),
        ceiling * (SAFETY_MARGIN - 0.01),
    );
    m.remove("OUTPUT_TOKEN_TIME");
    assert!(r.check(&m).is_empty());
}

#[test]
fn published_llama_8b_h100_result_is_physical() {
    // 009: NVIDIA dev blog, Llama-3.1-8B-Instruct, bf16, TP1 on H100, 100 requests of 128/128.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/bench_logs/009-devblog-llama31-8b-pytorch-streaming-v0.21.0rc0.log"
    ))
    .expect("fixture");
    let report = perfgate::report::parse_str(&text);
    let r = one(
        "llama_v3.1_8b_instruct-bench-pytorch-streaming-bfloat16-input_output_len:128,128-reqs:100-con:100",
        "H100_SXM",
    );
    let v = r.check(&report.metrics);
    assert!(v.is_empty(), "{v:?}");
    let measured = report.metrics["TOTAL_OUTPUT_THROUGHPUT"];
    assert!(measured < r.limits().throughput_ceiling);
    let u = r.utilization(&report.metrics).expect("utilization");
    // 86.5 req/s x 3.7 TFLOP / 989 TFLOP/s ≈ 32%; MBU ≈ 64%.
    assert!(u.mfu > 0.2 && u.mfu < 0.5, "{u:?}");
    assert!(u.mbu > 0.3 && u.mbu < 1.0, "{u:?}");
}

#[test]
fn unknown_model_or_gpu_is_a_clear_error() {
    let e = roofs(
        "starcoder2_3b-bench-pytorch-bfloat16-input_output_len:128,128",
        "H100",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("no architecture facts for `starcoder2_3b`"),
        "{e}"
    );
    let e = roofs(
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128",
        "Z9000",
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown GPU `Z9000`"), "{e}");
    let e = roofs(
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128",
        "DGX_Spark",
    )
    .unwrap_err();
    assert!(e.to_string().contains("bf16_tflops"), "{e}");
}

#[test]
fn bad_architecture_facts_name_the_line() {
    let text = "models:\n  a: {path: x, arch: big}\narchitectures:\n  small: {params_b: 1, layers: 1, hidden: 1, heads: 1, kv_heads: 1, head_dim: 1, vocab: 1, intermediate: 1}\n";
    let e = Catalog::from_str(text, "m.yaml").unwrap_err().to_string();
    assert!(
        e.starts_with("m.yaml:2:") && e.contains("arch `big`"),
        "{e}"
    );
    let text = "models:\n  a: {path: x}\narchitectures:\n  moe: {params_b: 1, active_params_b: 2, layers: 1, hidden: 1, heads: 1, kv_heads: 1, head_dim: 1, vocab: 1, intermediate: 1}\n";
    let e = Catalog::from_str(text, "m.yaml").unwrap_err().to_string();
    assert!(
        e.starts_with("m.yaml:4:") && e.contains("active_params_b"),
        "{e}"
    );
}

#[test]
fn every_listed_model_has_architecture_facts() {
    let cat = Catalog::embedded();
    for model in [
        "llama_v3.3_70b",
        "llama_v3.1_8b_instruct",
        "llama_v3.1_8b",
        "deepseek_r1_fp8",
        "llama_v3.1_8b_instruct_fp8",
        "qwen3_4b_eagle3",
        "llama_v3.2_1b",
        "llama_v4_maverick_17b_128e_instruct_fp8",
        "qwen3_235b_a22b_fp4",
        "mixtral_8x7b_v0.1_instruct",
        "gpt_oss_120b_fp4",
    ] {
        assert!(cat.arch(model).is_ok(), "{model}");
    }
}

#[test]
fn dense_parameter_counts_match_their_shapes() {
    // A typo in a shape or a count shows as a mismatch: embeddings (twice when untied) plus, per
    // layer, Q/O (heads x head_dim x hidden each), K/V (kv_heads x head_dim x hidden each) and a
    // gated MLP (3 x hidden x intermediate). Norms and biases are below 0.1%; multimodal cards
    // (Gemma 3, Mistral Small 3.1) add a vision tower of under 4%. MoE and NAS shapes are not
    // described fully enough by these fields, so only dense, uniform models are checked.
    let cat = Catalog::embedded();
    let mut checked = 0;
    for (key, a) in &cat.architectures {
        if a.is_moe() || a.attention_layers.is_some() {
            continue;
        }
        let (h, d) = (f64::from(a.hidden), f64::from(a.head_dim));
        let attn = 2.0 * f64::from(a.heads) * d * h + 2.0 * f64::from(a.kv_heads) * d * h;
        let mlp = 3.0 * h * f64::from(a.intermediate);
        let embed = f64::from(a.vocab) * h * if a.tied_embeddings { 1.0 } else { 2.0 };
        let derived = embed + f64::from(a.layers) * (attn + mlp);
        let rel = (a.params() - derived) / derived;
        assert!(
            (-0.01..0.04).contains(&rel),
            "{key}: params_b {} vs {:.3} B from the shape",
            a.params_b,
            derived / 1e9
        );
        checked += 1;
    }
    assert!(checked >= 10, "{checked}");
}
