//! Bad names get errors that name the label, its position, what was expected, and a fix.

use perfgate::config::{self, NameErrorKind as K, PerfName};
use proptest::prelude::*;

fn err(name: &str) -> config::NameError {
    match config::parse(name) {
        Err(e) => e,
        Ok(p) => panic!("{name} was accepted as {}", p.canonical()),
    }
}

#[test]
fn misordered_label_gets_the_reordered_name() {
    let e = err("deepseek_v3_lite_fp8-bench-streaming-pytorch-float8-input_output_len:128,128");
    assert_eq!(e.kind, K::Misplaced);
    assert_eq!(e.position, Some(4));
    assert_eq!(e.label.as_deref(), Some("pytorch"));
    assert_eq!(
        e.suggestion.as_deref(),
        Some("deepseek_v3_lite_fp8-bench-pytorch-streaming-float8-input_output_len:128,128")
    );
    assert!(e.to_string().contains("expected a data type"), "{e}");

    let e = err("llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128-tp:2-con:4");
    assert_eq!(e.kind, K::Misplaced);
    assert_eq!(e.label.as_deref(), Some("con:4"));
    assert_eq!(
        e.suggestion.as_deref(),
        Some("llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128-con:4-tp:2")
    );
}

#[test]
fn unknown_label_gets_the_closest_known_one() {
    let e = err("llama_v3.1_8b-bench-pytorch-bfloat16-input_output_lens:128,128");
    assert_eq!(e.kind, K::UnknownLabel);
    assert_eq!(
        e.suggestion.as_deref(),
        Some("llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128")
    );
    let e = err("llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128-reqz:10");
    assert_eq!(
        e.suggestion.as_deref(),
        Some("llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128-reqs:10")
    );
    let e = err("llama_v3.1_8b-bench-pytorch-bfloat61-input_output_len:128,128");
    assert_eq!(e.kind, K::UnknownLabel);
    assert_eq!(e.position, Some(4));
    assert!(
        e.suggestion
            .as_deref()
            .is_some_and(|s| s.contains("-bfloat16-")),
        "{e}"
    );
    let e = err("llama_v3.1_8b-bnech-pytorch-bfloat16-input_output_len:128,128");
    assert_eq!(e.kind, K::UnknownRuntime);
    assert!(
        e.suggestion
            .as_deref()
            .is_some_and(|s| s.contains("-bench-")),
        "{e}"
    );
}

#[test]
fn dash_in_model_name_is_explained() {
    let e = err("llama-3.1-8b-bench-pytorch-bfloat16-input_output_len:128,128");
    assert_eq!(e.kind, K::BadModelName);
    assert_eq!(
        e.suggestion.as_deref(),
        Some("llama_3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128")
    );
}

#[test]
fn truncated_names() {
    for (name, expect) in [
        ("llama_v3.1_8b", "runtime"),
        ("llama_v3.1_8b-bench", "data type"),
        ("llama_v3.1_8b-bench-pytorch-bfloat16", "input_output_len"),
        ("llama_v3.1_8b-cppmanager-exe", "build mode"),
    ] {
        let e = err(name);
        assert_eq!(e.kind, K::Truncated, "{name}: {e}");
        assert!(e.to_string().contains(expect), "{name}: {e}");
    }
}

#[test]
fn bad_values_and_absurd_topologies() {
    let base = "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128";
    for (suffix, kind, label) in [
        ("-tp:0", K::BadValue, "tp:0"),
        ("-reqs:0", K::BadValue, "reqs:0"),
        ("-reqs:many", K::BadValue, "reqs:many"),
        ("-con:-1", K::BadValue, "con:"),
        ("-tp:2-gpus:4", K::Topology, "gpus:4"),
        ("-pp:2-gpus:4", K::Topology, "gpus:4"),
        ("-ep:16-gpus:8", K::Topology, "ep:16"),
        ("-tp:2-tp:2", K::Duplicate, "tp:2"),
        ("-quant:fp8", K::InvalidCombination, "quant:fp8"),
        ("-quant:fp9", K::BadValue, "quant:fp9"),
        ("-kv_cache_dtype:int8", K::BadValue, "kv_cache_dtype:int8"),
        ("-gpus:", K::BadValue, "gpus:"),
    ] {
        let e = err(&format!("{base}{suffix}"));
        assert_eq!(e.kind, kind, "{suffix}: {e}");
        if !label.is_empty() {
            assert_eq!(e.label.as_deref(), Some(label), "{suffix}: {e}");
        }
    }
    assert_eq!(
        err("llama_v3.1_8b-bench-pytorch-bfloat16-kv_frac:1.5-input_output_len:128,128").kind,
        K::BadValue
    );
    assert_eq!(
        err("llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128+512").kind,
        K::BadValue
    );
    assert_eq!(
        err("llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:0,128").kind,
        K::BadValue
    );
    assert_eq!(
        err("llama_v3.1_8b-bench-exe-bfloat16-input_output_len:128,128").kind,
        K::InvalidCombination
    );
    assert_eq!(
        err("llama_v3.1_8b-cppmanager-pytorch-plugin-bfloat16-input_output_len:128,128").kind,
        K::InvalidCombination
    );
    assert_eq!(err("").kind, K::Empty);
    assert_eq!(err("a--bench").kind, K::Empty);
    assert_eq!(err("llama bench").kind, K::BadValue);
}

/// Issue 20 item 2: a 2 MB name is refused by length before any later stage (LLM-API rule
/// matching, file names, "did you mean") spends time proportional to it.
#[test]
fn an_absurdly_long_name_is_refused_by_its_length() {
    let base = "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128";
    let long = format!("{}{base}", "x".repeat(2_000_000));
    let e = err(&long);
    assert_eq!(e.kind, K::BadValue, "{e}");
    assert!(e.message.contains("at most 4096 bytes"), "{}", e.message);
    // The longest real names are ~150 bytes; one at the cap still parses to the grammar.
    let at_cap = format!(
        "{}{}",
        "x".repeat(config::MAX_NAME_BYTES - base.len() + "llama_v3.1_8b".len()),
        &base["llama_v3.1_8b".len()..]
    );
    assert_eq!(at_cap.len(), config::MAX_NAME_BYTES);
    assert!(config::parse(&at_cap).is_ok());
}

#[test]
fn server_style_names_parse_into_their_own_variants() {
    match config::parse("llama_v3.1_8b-disagg_server-ctx_dp:2-gen_tp:4").expect("disagg parses") {
        PerfName::DisaggServer(d) => {
            assert_eq!(d.ctx.1, 2);
            assert_eq!(d.generation.1, 4);
        }
        other => panic!("{other:?}"),
    }
    let p = config::parse("llama_v3.1_8b-disagg_server-ctx_dp:2-gen_tp:4").expect("ok");
    assert_eq!(
        p.canonical(),
        "llama_v3.1_8b-disagg_server-ctx_dp:2-gen_tp:4"
    );
    assert!(p.unsupported_reason().is_some());
    assert_eq!(
        err("llama_v3.1_8b-disagg_server-ctx_tp:1").kind,
        K::Truncated
    );
    let p = config::parse("perf_sanity-deepseek_r1_fp4_v2_blackwell-r1_fp4_v2_dep4_mtp1_1k1k")
        .expect("ok");
    assert!(matches!(p, PerfName::PerfSanity { .. }));
    // The 2025 form points at the id that replaced it.
    assert!(
        p.unsupported_reason()
            .is_some_and(|r| r.contains("test_perf_sanity.py::test_e2e"))
    );
    // `serve` names run (the serving backend plans them).
    let p = config::parse("nemotron_3_super_120b_nvfp4-serve-pytorch-float4-maxbs:512-maxnt:2048-kv_frac:0.8-input_output_len:1024,1024-reqs:160-con:32-ep:4-tp:4-gpus:4").expect("ok");
    assert_eq!(p.unsupported_reason(), None);
    assert_eq!(
        perfgate::backend::Registry::builtin()
            .plan(
                "x",
                &p,
                &perfgate::models::ModelConfigs::embedded(),
                &Default::default()
            )
            .cases[0]
            .steps[0]
            .backend,
        "serve"
    );
    // A perf-sanity id parses with its own grammar.
    let p = config::parse_test(
        config::TestFunction::PerfSanity,
        "disagg_upload-gen_only-b200_x-NIXL",
    )
    .expect("ok");
    assert_eq!(p.canonical(), "disagg_upload-gen_only-b200_x-NIXL");
    assert_eq!(p.function(), config::TestFunction::PerfSanity);
}

const LABELS: &[&str] = &[
    "bench",
    "serve",
    "cpp",
    "cppmanager",
    "pytorch",
    "_autodeploy",
    "streaming",
    "exe",
    "plugin",
    "plugin_ifb",
    "float16",
    "bfloat16",
    "float8",
    "mp",
    "maxbs:64",
    "maxnt:4096",
    "kv_frac:0.5",
    "gwp:0.5",
    "build_only",
    "bs:8+16",
    "input_output_len:128,128",
    "input_len:128",
    "input_output_len:1,2+3,4",
    "beams:2",
    "loras:1",
    "quant:fp8",
    "kv_cache_dtype:fp8",
    "reqs:10",
    "con:4",
    "ep:2",
    "tp:2",
    "pp:2",
    "gpus:4",
    "gpus:2",
    "x:1",
    ":",
    ",",
    "+",
    "tp:",
    "disagg_server",
    "ctx_tp:1",
    "gen_dp:2",
    "maxbs:0",
    "reqs:99999999999",
];

/// `PERFGATE_FUZZ_CASES=N` runs the fuzz properties longer than the default.
pub fn fuzz_cases(default: u32) -> u32 {
    std::env::var("PERFGATE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases(20_000)))]

    /// Any label soup parses or fails with an error; an accepted name's canonical form is a
    /// fixed point and its cases are non-empty.
    #[test]
    fn label_soup_never_panics(picks in proptest::collection::vec(0..LABELS.len(), 0..14)) {
        let name = std::iter::once("llama_v3.1_8b").chain(picks.iter().map(|&i| LABELS[i])).collect::<Vec<_>>().join("-");
        if let Ok(p) = config::parse(&name) {
            let canon = p.canonical();
            let again = config::parse(&canon).expect("canonical re-parses");
            prop_assert_eq!(again.canonical(), canon);
            if let PerfName::Standard(c) = &p {
                prop_assert!(c.build_only || !p.cases().is_empty());
                prop_assert_eq!(c.num_gpus, c.tp_size * c.pp_size);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
        let _ = config::parse(&s);
    }
}

const LINE_BITS: &[&str] = &[
    "perf/test_perf.py::test_perf[",
    "llm/",
    "full:H100/",
    "]",
    "[",
    " ",
    "\t",
    "#",
    "(",
    ")",
    "SKIP",
    "XFAIL",
    "UNSTABLE",
    "TIMEOUT",
    "TIMEOUT(5)",
    " (x)",
    "ISOLATION",
    "ARGS (--a=1)",
    "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:1,1",
    "-tp:2",
    "accuracy/test.py::t[x]",
    "é",
    "\u{0}",
    "nvbugs/1#2",
    "\n",
    "::",
    ".py",
];

const YAML_BITS: &[&str] = &[
    "version: 0.0.1\n",
    "ctx:\n",
    "- condition:\n",
    "    terms:\n",
    "      stage: post_merge\n",
    "    ranges:\n",
    "      system_gpu_count:\n",
    "        gte: 2\n",
    "        lt: 1\n",
    "    wildcards:\n",
    "      gpu: '*h100*'\n",
    "      gpu: [a, b]\n",
    "  tests:\n",
    "  - llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:1,1\n",
    "  - x TIMEOUT (3)\n",
    "  - [unclosed\n",
    "ctx2: 5\n",
    "- tests: []\n",
    "    bogus: 1\n",
    ": :\n",
    "&a *a\n",
    "\t\n",
    "- condition: {terms: {a: 1}}\n",
    "other:\n  - {tests: [y]}\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases(5_000)))]

    /// Any plain list text gives entries and diagnostics, never a panic; every entry's
    /// source line exists.
    #[test]
    fn plain_list_text_never_panics(picks in proptest::collection::vec(0..LINE_BITS.len(), 0..40), raw in "\\PC{0,60}") {
        let text: String = picks.iter().map(|&i| LINE_BITS[i]).collect::<String>() + &raw;
        let mut list = perfgate::testlist::TestList::default();
        perfgate::testlist::parse_text(&text, std::path::Path::new("f.txt"), false, &Default::default(), &mut list);
        let lines = text.lines().count();
        for e in &list.entries {
            prop_assert!(e.source.line >= 1 && e.source.line <= lines);
            let _ = config::parse(&e.raw);
        }
    }

    /// Any test-db YAML text, with or without a system, never panics.
    #[test]
    fn test_db_yaml_text_never_panics(picks in proptest::collection::vec(0..YAML_BITS.len(), 0..30), with_system: bool) {
        let text: String = picks.iter().map(|&i| YAML_BITS[i]).collect();
        let system = with_system.then(|| serde_json::from_str(r#"{"stage":"post_merge","system_gpu_count":4,"gpu":"H100"}"#).expect("json"));
        let opts = perfgate::testlist::LoadOptions {
            system,
            context: None,
            require_system: false,
        };
        let mut list = perfgate::testlist::TestList::default();
        perfgate::testlist::parse_text(&text, std::path::Path::new("f.yml"), true, &opts, &mut list);
    }
}

/// `con:1+4+16` on a serve name is a concurrency sweep: one case per value (in the order
/// written), each labelled with its one `con:` as upstream labels a case; the canonical label
/// keeps the sweep and parses back to the same config.
#[test]
fn a_concurrency_sweep_is_one_case_per_concurrency() {
    let raw = "tiny_llama_cpp-serve-llama.cpp-streaming-float32-input_output_len:128,32+64,8-reqs:16-con:4+1+16";
    let Ok(PerfName::Standard(cfg)) = config::parse(raw) else {
        panic!("{raw} does not parse as a standard name");
    };
    assert_eq!(cfg.concurrencies, vec![4, 1, 16]);
    let canonical = cfg.canonical();
    assert!(canonical.ends_with("-reqs:16-con:4+1+16"), "{canonical}");
    assert_eq!(
        config::parse(&canonical).expect("canonical parses"),
        PerfName::Standard(cfg.clone())
    );
    let cases = cfg.cases();
    let got: Vec<(u32, Option<u32>, &str)> = cases
        .iter()
        .map(|c| {
            (
                c.input_len,
                c.concurrency,
                c.label.rsplit('-').next().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (128, Some(4), "con:4"),
            (128, Some(1), "con:1"),
            (128, Some(16), "con:16"),
            (64, Some(4), "con:4"),
            (64, Some(1), "con:1"),
            (64, Some(16), "con:16"),
        ]
    );
    let labels: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels.len(), cases.len(), "per-case labels are unique");
    for c in &cases {
        // Each case's label is an ordinary name with one concurrency: upstream can read it.
        let Ok(PerfName::Standard(one)) = config::parse(&c.label) else {
            panic!("{} does not parse", c.label);
        };
        assert_eq!(one.concurrencies, vec![c.concurrency.unwrap_or(0)]);
        assert_eq!(one.cases().len(), 1);
        assert_eq!(one.cases()[0].label, c.label);
    }
    // At one concurrency the name reads as that concurrency's own name.
    assert_eq!(
        cfg.canonical_at(Some(1)),
        canonical.replace("con:4+1+16", "con:1")
    );
    assert_eq!(
        cfg.upstream_fields()["concurrency"],
        serde_json::json!([4, 1, 16])
    );
    // One value is upstream's name as it always was.
    let Ok(PerfName::Standard(one)) =
        config::parse("tiny_llama_cpp-serve-llama.cpp-float32-input_output_len:8,8-con:4")
    else {
        panic!("single con");
    };
    assert_eq!(one.canonical_at(Some(4)), one.canonical());
    assert_eq!(one.upstream_fields()["concurrency"], serde_json::json!(4));
}

#[test]
fn a_concurrency_sweep_needs_distinct_values_and_a_serve_name() {
    let e = err("tiny_llama_cpp-serve-llama.cpp-float32-input_output_len:8,8-con:1+4+1");
    assert_eq!(e.kind, K::BadValue);
    assert_eq!(e.label.as_deref(), Some("con:1+4+1"));
    assert!(
        e.to_string().contains("concurrency 1 is listed twice"),
        "{e}"
    );
    let e = err("llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128-con:1+4");
    assert_eq!(e.kind, K::InvalidCombination);
    assert!(e.to_string().contains("for serve names"), "{e}");
    assert!(
        e.to_string().contains("one `bench` name per concurrency"),
        "{e}"
    );
    let e = err("tiny_llama_cpp-serve-llama.cpp-float32-input_output_len:8,8-con:1+0");
    assert_eq!(e.kind, K::BadValue);
}
