//! dataset tests: bit-exactness against numpy/CPython vectors, golden files and real upstream
//! outputs (all read from tests/fixtures at run time), error handling, and properties.

use std::path::{Path, PathBuf};

use clap::Parser;
use perfgate::cli::dataset::{DatasetArgs, run_cli_with};
use perfgate::dataset::cpython::{PyRandom, SeenSet};
use perfgate::dataset::lengths::{draw_lengths, normal_lengths, standard_normals};
use perfgate::dataset::numpy::{LegacyRandomState, Pcg64};
use perfgate::dataset::tokenizer::{TokenizerScan, load_tokenizer};
use perfgate::dataset::{
    DatasetError, LengthDist, OutputFormat, SyntheticSpec, TaskIds, Vocab, VocabIdentity,
    cache_key, validate, write_synthetic, write_synthetic_as, write_synthetic_file,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    perfgate::dataset::cache::sha256_hex(bytes)
}

/// `perfgate dataset ARGS...` parsed by the real argument parser.
#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    args: DatasetArgs,
}

fn parse(argv: &[&str]) -> Result<DatasetArgs, clap::Error> {
    let mut full = vec!["dataset"];
    full.extend_from_slice(argv);
    Cmd::try_parse_from(full).map(|c| c.args)
}

/// Runs the CLI; returns (stdout bytes, stderr text) or the error text.
fn run(argv: &[&str]) -> Result<(Vec<u8>, String), String> {
    let args = parse(argv).map_err(|e| e.to_string())?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    run_cli_with(args, &mut out, &mut err).map_err(|e| format!("{e:#}"))?;
    Ok((out, String::from_utf8_lossy(&err).into_owned()))
}

// ---------------------------------------------------------------------------------------------
// Raw generator vectors (numpy 2.4.6, CPython 3.11.7)

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().parse::<f64>().unwrap())
        .collect()
}

fn ints(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn raw_rng_vectors_are_reproduced_exactly() {
    let vectors = read_json(&fixtures().join("datasets/golden/raw_rng_vectors.json"));
    let mut checked = 0;
    for (key, expected) in vectors.as_object().unwrap() {
        match key.as_str() {
            "_versions" => continue,
            "numpy_legacy_seed420_standard_normal_via_normal0_1_x10" => {
                let mut rs = LegacyRandomState::new(420);
                let got: Vec<f64> = (0..10).map(|_| rs.normal(0.0, 1.0)).collect();
                assert_eq!(got, floats(expected), "{key}");
            }
            "numpy_legacy_seed420_random_sample_x6" => {
                let mut rs = LegacyRandomState::new(420);
                let got: Vec<f64> = (0..6).map(|_| rs.random_sample()).collect();
                assert_eq!(got, floats(expected), "{key}");
            }
            "numpy_legacy_seed420_randint_uint32_x6" => {
                let mut rs = LegacyRandomState::new(420);
                let got: Vec<u64> = (0..6).map(|_| rs.next_u32() as u64).collect();
                assert_eq!(got, ints(expected), "{key}");
            }
            "numpy_legacy_seed0_normal_mean100_std20_x5" => {
                let mut rs = LegacyRandomState::new(0);
                let got: Vec<f64> = (0..5).map(|_| rs.normal(100.0, 20.0)).collect();
                assert_eq!(got, floats(expected), "{key}");
            }
            "numpy_pcg64_seed420_integers_10_21_x10" => {
                let mut g = Pcg64::from_seed(420);
                let got: Vec<u64> = (0..10).map(|_| g.integer(10, 21) as u64).collect();
                assert_eq!(got, ints(expected), "{key}");
            }
            "numpy_pcg64_seed420_integers_0_2pow32_x6" => {
                let mut g = Pcg64::from_seed(420);
                let got: Vec<u64> = (0..6).map(|_| g.integer(0, 1 << 32) as u64).collect();
                assert_eq!(got, ints(expected), "{key}");
            }
            "numpy_pcg64_seed420_integers_0_2pow40_x4" => {
                let mut g = Pcg64::from_seed(420);
                let got: Vec<u64> = (0..4).map(|_| g.integer(0, 1 << 40) as u64).collect();
                assert_eq!(got, ints(expected), "{key}");
            }
            "numpy_pcg64_seed420_random_raw_x4" | "numpy_pcg64_seed0_random_raw_x4" => {
                let seed = if key.contains("seed420") { 420 } else { 0 };
                let mut g = Pcg64::from_seed(seed);
                let got: Vec<u64> = (0..4).map(|_| g.next_u64()).collect();
                assert_eq!(got, ints(expected), "{key}");
            }
            "cpython_seed420_getrandbits32_x6" | "cpython_seed0_getrandbits32_x4" => {
                let seed = if key.contains("seed420") { 420 } else { 0 };
                let mut r = PyRandom::new(seed);
                let n = ints(expected).len();
                let got: Vec<u64> = (0..n).map(|_| r.getrandbits(32) as u64).collect();
                assert_eq!(got, ints(expected), "{key}");
            }
            "cpython_seed420_random_x4" => {
                let mut r = PyRandom::new(420);
                let got: Vec<f64> = (0..4).map(|_| r.random()).collect();
                assert_eq!(got, floats(expected), "{key}");
            }
            "cpython_seed420_sample_range32000_k10" => {
                let mut r = PyRandom::new(420);
                let mut out = Vec::new();
                r.sample_range(32000, 10, &mut out, &mut SeenSet::with_capacity(32000));
                let got: Vec<u64> = out.iter().map(|&x| x as u64).collect();
                assert_eq!(got, ints(expected), "{key}");
            }
            "cpython_seed420_randint_0_3_x8" => {
                let mut r = PyRandom::new(420);
                let got: Vec<u64> = (0..8).map(|_| r.randint(0, 3) as u64).collect();
                assert_eq!(got, ints(expected), "{key}");
            }
            other => panic!("raw_rng_vectors.json has a vector this test does not know: {other}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 14);
}

// ---------------------------------------------------------------------------------------------
// Golden files (fake tokenizer: a vocabulary size and one EOS id)

fn golden_case_spec(case: &Value) -> (SyntheticSpec, Vocab) {
    let u = |k: &str| case[k].as_u64().unwrap_or_else(|| panic!("{k} in {case}"));
    let dist = match case["subcommand"].as_str().unwrap() {
        "token-norm-dist" => LengthDist::Normal {
            input_mean: u("input_mean"),
            input_stdev: u("input_stdev"),
            output_mean: u("output_mean"),
            output_stdev: u("output_stdev"),
        },
        "token-unif-dist" => LengthDist::Uniform {
            input_min: u("input_min"),
            input_max: u("input_max"),
            output_min: u("output_min"),
            output_max: u("output_max"),
        },
        other => panic!("unknown subcommand {other}"),
    };
    let task_ids = match (&case["rand_task_id"], case["task_id"].as_i64().unwrap()) {
        (Value::Array(r), _) => TaskIds::Random {
            min: r[0].as_i64().unwrap(),
            max: r[1].as_i64().unwrap(),
        },
        (_, -1) => TaskIds::None,
        (_, t) => TaskIds::Fixed(t),
    };
    let spec = SyntheticSpec {
        num_requests: u("num_requests"),
        dist,
        seed: u("random_seed"),
        task_ids,
        lora_dir: case["lora_dir"].as_str().map(String::from),
    };
    let vocab = Vocab::new(u("vocab_size") as u32, vec![u("eos_token_id") as u32]);
    (spec, vocab)
}

#[test]
fn golden_files_are_reproduced_byte_for_byte() {
    let dir = fixtures().join("datasets/golden");
    let cases = read_json(&dir.join("cases.json"));
    let cases = cases.as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let (spec, vocab) = golden_case_spec(case);
        let lengths = draw_lengths(&spec.dist, spec.num_requests, spec.seed).unwrap();
        assert_eq!(
            lengths.input,
            ints(&case["input_lens"]),
            "{file}: input lengths"
        );
        assert_eq!(
            lengths.output,
            ints(&case["output_lens"]),
            "{file}: output lengths"
        );

        let mut out = Vec::new();
        let summary = write_synthetic(&spec, &vocab, &mut out).unwrap();
        let expected = std::fs::read(dir.join(file)).unwrap();
        assert!(
            out == expected,
            "{file}: output differs from the golden file"
        );
        assert_eq!(summary.bytes_written, expected.len() as u64);
        assert_eq!(summary.num_requests, spec.num_requests);
    }
}

// ---------------------------------------------------------------------------------------------
// Real upstream outputs, real tokenizers, run through the CLI parser

fn tokenizer_fixture(name: &str) -> PathBuf {
    let dir = match name {
        "deepseek" => "deepseek",
        "minilm" => "minilm",
        "minilm_eos_sep" => "minilm-eos-sep",
        other => panic!("unknown tokenizer placeholder {other}"),
    };
    fixtures().join("tokenizers").join(dir)
}

/// The argv of cases.json is a Python list repr of plain strings: `['a', 'b=c', ...]`.
fn python_argv(repr: &str) -> Vec<String> {
    let inner = repr.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(", ")
        .map(|item| {
            let item = item.trim();
            assert!(
                item.starts_with('\'') && item.ends_with('\''),
                "unexpected argv item {item}"
            );
            let text = &item[1..item.len() - 1];
            if let Some(start) = text.find("<tokenizer:") {
                let end = text[start..].find('>').unwrap() + start;
                let path = tokenizer_fixture(&text[start + 11..end]);
                format!("{}{}{}", &text[..start], path.display(), &text[end + 1..])
            } else {
                text.to_string()
            }
        })
        .collect()
}

#[test]
fn oracle_datasets_are_reproduced_byte_for_byte() {
    let dir = fixtures().join("datasets/oracle");
    let cases = read_json(&dir.join("cases.json"));
    let mut reproduced = 0;
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let argv = python_argv(case["argv"].as_str().unwrap());
        assert_eq!(&argv[..2], ["python3", "prepare_dataset.py"], "{name}");
        let argv: Vec<&str> = argv[2..].iter().map(String::as_str).collect();
        let result = run(&argv);
        if case["returncode"].as_i64() != Some(0) {
            let err = result.expect_err(name);
            assert!(err.contains("no eos_token"), "{name}: unclear error: {err}");
            assert!(
                err.contains("--no-eos-avoidance"),
                "{name}: no way out offered: {err}"
            );
            continue;
        }
        let (out, _) = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = std::fs::read(dir.join(case["file"].as_str().unwrap())).unwrap();
        assert!(out == expected, "{name}: output differs from upstream's");
        assert_eq!(sha256_hex(&out), case["sha256"].as_str().unwrap(), "{name}");
        assert_eq!(out.len() as u64, case["bytes"].as_u64().unwrap(), "{name}");
        reproduced += 1;
    }
    assert!(reproduced >= 5);
}

#[test]
fn tokenizer_scan_agrees_with_the_tokenizers_crate() {
    for name in ["deepseek", "minilm_eos_sep"] {
        let dir = tokenizer_fixture(name);
        let vocab = Vocab::from_tokenizer(&dir).unwrap();
        let tok = load_tokenizer(&dir).unwrap();
        assert_eq!(
            vocab.vocab_size as usize,
            tok.get_vocab_size(false),
            "{name}"
        );
        let files = perfgate::dataset::tokenizer::TokenizerFiles::locate(&dir).unwrap();
        let eos = perfgate::dataset::tokenizer::eos_token(&files)
            .unwrap()
            .unwrap();
        let ids = tok.encode(eos.as_str(), false).unwrap().get_ids().to_vec();
        assert_eq!(vocab.eos_ids, ids, "{name}");
        // A tokenizer.json path works as well as its directory.
        assert_eq!(
            Vocab::from_tokenizer(&dir.join("tokenizer.json")).unwrap(),
            vocab
        );
    }
    let ds = Vocab::from_tokenizer(&tokenizer_fixture("deepseek")).unwrap();
    assert_eq!(ds, Vocab::new(128_000, vec![1]));
}

#[test]
fn tokenizer_scan_handles_eos_outside_added_tokens() {
    let json = br#"{"added_tokens":[{"id":5,"content":"<x>"}],
        "model":{"type":"WordLevel","vocab":{"a":0,"</s>":1,"b":2}}}"#;
    let in_vocab = TokenizerScan::parse(json, Some("</s>")).unwrap();
    assert_eq!((in_vocab.vocab_size, in_vocab.eos_id), (3, Some(1)));
    let absent = TokenizerScan::parse(json, Some("<eos>")).unwrap();
    assert_eq!((absent.eos_id, absent.next_free_id), (None, 6));
    let unigram = br#"{"model":{"type":"Unigram","vocab":[["<unk>",0.0],["</s>",0.0]]}}"#;
    let scan = TokenizerScan::parse(unigram, Some("</s>")).unwrap();
    assert_eq!((scan.vocab_size, scan.eos_id), (2, Some(1)));
    assert!(TokenizerScan::parse(b"{\"model\": {}}", None).is_err());
    assert!(TokenizerScan::parse(b"[1, 2]", None).is_err());
}

#[test]
fn tokenizer_without_eos_has_a_documented_fallback() {
    let dir = tokenizer_fixture("minilm");
    let err = Vocab::from_tokenizer(&dir).unwrap_err();
    assert!(matches!(err, DatasetError::NoEosToken { .. }), "{err}");
    let base = [
        "--stdout",
        "token-norm-dist",
        "--num-requests",
        "3",
        "--input-mean",
        "5",
    ];
    let rest = [
        "--input-stdev",
        "0",
        "--output-mean",
        "3",
        "--output-stdev",
        "0",
    ];
    let tok = format!("--tokenizer={}", dir.display());
    let mut argv = vec![tok.as_str(), "--no-eos-avoidance"];
    argv.extend(base);
    argv.extend(rest);
    let (out, _) = run(&argv).unwrap();
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 3);
    // With --eos-id the given id is avoided instead.
    let mut argv = vec![tok.as_str(), "--eos-id", "102"];
    argv.extend(base);
    argv.extend(rest);
    assert!(run(&argv).is_ok());
}

// ---------------------------------------------------------------------------------------------
// CLI behaviour

fn norm_argv<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["--vocab-size", "1000", "--eos-id", "2"];
    argv.extend_from_slice(extra);
    argv.extend([
        "token-norm-dist",
        "--num-requests=7",
        "--input-mean",
        "20",
        "--input-stdev=5",
        "--output-mean",
        "10",
        "--output-stdev",
        "3",
    ]);
    argv
}

#[test]
fn both_option_spellings_and_upstream_defaults() {
    let a = parse(&[
        "--vocab-size=10",
        "--eos-id=2",
        "token-unif-dist",
        "--num-requests=3",
        "--input-min=1",
        "--input-max=4",
        "--output-min=1",
        "--output-max=2",
    ])
    .unwrap();
    let b = parse(&[
        "--vocab-size",
        "10",
        "--eos-id",
        "2",
        "token-unif-dist",
        "--num-requests",
        "3",
        "--input-min",
        "1",
        "--input-max",
        "4",
        "--output-min",
        "1",
        "--output-max",
        "2",
    ])
    .unwrap();
    assert_eq!(a.synthetic_spec().unwrap(), b.synthetic_spec().unwrap());
    let spec = a.synthetic_spec().unwrap().unwrap();
    assert_eq!(spec.seed, 420);
    assert_eq!(spec.task_ids, TaskIds::None);
    assert_eq!(a.output, PathBuf::from("preprocessed_dataset.json"));
    let r = parse(&[
        "--vocab-size",
        "10",
        "--eos-id",
        "2",
        "--rand-task-id",
        "-2",
        "3",
        "token-unif-dist",
        "--num-requests",
        "3",
        "--input-min",
        "1",
        "--input-max",
        "4",
        "--output-min",
        "1",
        "--output-max",
        "2",
    ])
    .unwrap();
    assert_eq!(
        r.synthetic_spec().unwrap().unwrap().task_ids,
        TaskIds::Random { min: -2, max: 3 }
    );
}

#[test]
fn stdout_and_file_outputs_match_and_files_are_atomic() {
    let tmp = tempfile::tempdir().unwrap();
    let (stdout, _) = run(&norm_argv(&["--stdout"])).unwrap();
    let path = tmp.path().join("nested/dir/data.jsonl");
    let path_arg = format!("--output={}", path.display());
    let (nothing, stderr) = run(&norm_argv(&[&path_arg, "--format", "jsonl"])).unwrap();
    assert!(nothing.is_empty());
    assert!(stderr.contains("wrote 7 requests"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), stdout);
    let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(entries.len(), 1, "a temporary file was left behind");

    let spec = parse(&norm_argv(&[]))
        .unwrap()
        .synthetic_spec()
        .unwrap()
        .unwrap();
    let vocab = Vocab::new(1000, vec![2]);
    let direct = tmp.path().join("direct.jsonl");
    write_synthetic_file(&spec, &vocab, &direct).unwrap();
    assert_eq!(std::fs::read(&direct).unwrap(), stdout);
}

/// Renders the workload document from the JSONL lines with plain string formatting, as a
/// cross-check of the streaming writer.
fn expected_workload(jsonl: &[u8], metadata: &[(&str, String)], task_ids: &[i64]) -> String {
    let mut meta: Vec<String> = metadata
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    let name: Vec<String> = metadata
        .iter()
        .map(|(k, v)| format!("{k}:{}", v.trim_matches('"')))
        .collect();
    meta.push(format!("\"workload_name\": \"{}\"", name.join("__")));
    let samples: Vec<String> = std::str::from_utf8(jsonl)
        .unwrap()
        .lines()
        .zip(task_ids)
        .map(|(line, t)| {
            let v: Value = serde_json::from_str(line).unwrap();
            let ids: Vec<String> = v["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.to_string())
                .collect();
            format!(
                "{{\"input_len\": {}, \"input_ids\": [{}], \"output_len\": {}, \"task_id\": {t}}}",
                ids.len(),
                ids.join(", "),
                v["output_tokens"]
            )
        })
        .collect();
    format!(
        "{{\"metadata\": {{{}}}, \"samples\": [{}]}}",
        meta.join(", "),
        samples.join(", ")
    )
}

#[test]
fn workload_document_matches_upstream_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let (jsonl, _) = run(&norm_argv(&["--stdout"])).unwrap();
    let path = tmp.path().join("workload.json");
    let path_arg = format!("--output={}", path.display());
    let (_, stderr) = run(&norm_argv(&[&path_arg, "--task-id", "4"])).unwrap();
    assert!(
        stderr.contains("Task IDs require LoRA directory"),
        "{stderr}"
    );
    let doc = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = std::str::from_utf8(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let max_in = lines
        .iter()
        .map(|v| v["input_ids"].as_array().unwrap().len())
        .max()
        .unwrap();
    let max_out = lines
        .iter()
        .map(|v| v["output_tokens"].as_u64().unwrap())
        .max()
        .unwrap();
    let metadata = [
        ("workload_type", "\"token-norm-dist\"".to_string()),
        ("input_mean", "20".into()),
        ("input_stdev", "5".into()),
        ("output_mean", "10".into()),
        ("output_stdev", "3".into()),
        ("num_requests", "7".into()),
        ("tokenize_vocabsize", "1000".into()),
        ("max_input_len", max_in.to_string()),
        ("max_output_len", max_out.to_string()),
    ];
    assert_eq!(doc, expected_workload(&jsonl, &metadata, &[4; 7]));
}

#[test]
fn lora_requests_need_a_lora_dir() {
    let (plain, stderr) = run(&norm_argv(&["--stdout", "--task-id", "3"])).unwrap();
    assert!(stderr.contains("Task IDs require LoRA directory"));
    assert!(!String::from_utf8_lossy(&plain).contains("lora_request"));
    let (lora, _) = run(&norm_argv(&[
        "--stdout",
        "--task-id",
        "3",
        "--lora-dir",
        "/l",
    ]))
    .unwrap();
    let text = String::from_utf8(lora).unwrap();
    assert_eq!(
        text.matches(r#""lora_request":{"lora_name":"lora_3","lora_int_id":3,"lora_path":"/l/3"}"#)
            .count(),
        7
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input: clear errors, and no output file

fn assert_fails_cleanly(argv: &[&str], needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.json");
    let out_arg = format!("--output={}", out.display());
    let mut full = vec![out_arg.as_str()];
    full.extend_from_slice(argv);
    let err = run(&full).expect_err(&format!("{argv:?} should fail"));
    assert!(
        err.contains(needle),
        "{argv:?}: expected {needle:?} in: {err}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{argv:?} left files behind: {left:?}");
}

fn unif(min_in: &str, max_in: &str, min_out: &str, max_out: &str, n: &str) -> Vec<String> {
    [
        "--vocab-size",
        "100",
        "--eos-id",
        "2",
        "token-unif-dist",
        "--num-requests",
        n,
        "--input-min",
        min_in,
        "--input-max",
        max_in,
        "--output-min",
        min_out,
        "--output-max",
        max_out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn bad_parameters_give_clear_errors_and_no_file() {
    let norm = |n: &str, stdev: &str| -> Vec<String> {
        [
            "--vocab-size",
            "100",
            "--eos-id",
            "2",
            "token-norm-dist",
            "--num-requests",
            n,
            "--input-mean",
            "10",
            "--input-stdev",
            stdev,
            "--output-mean",
            "5",
            "--output-stdev",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    assert_fails_cleanly(
        &strs(&norm("0", "1")),
        "--num-requests must be at least 1 (got 0)",
    );
    assert_fails_cleanly(
        &strs(&norm("-4", "1")),
        "--num-requests must be at least 1 (got -4)",
    );
    assert_fails_cleanly(
        &strs(&norm("3", "-1")),
        "--input-stdev must not be negative",
    );
    assert_fails_cleanly(
        &strs(&unif("10", "5", "1", "2", "3")),
        "--input-min 10 is greater than --input-max 5",
    );
    assert_fails_cleanly(
        &strs(&unif("1", "5", "0", "2", "3")),
        "--output-min must be at least 1",
    );
    assert_fails_cleanly(
        &strs(&unif("1", "5", "1", "99999999999", "3")),
        "per-request limit",
    );
    let base = norm("3", "1");
    let mut reversed = vec!["--rand-task-id", "5", "2"];
    reversed.extend(strs(&base));
    assert_fails_cleanly(&reversed, "MIN 5 is greater than MAX 2");
    let zero_vocab = [
        "--vocab-size",
        "0",
        "--eos-id",
        "2",
        "token-norm-dist",
        "--num-requests",
        "1",
        "--input-mean",
        "1",
        "--input-stdev",
        "0",
        "--output-mean",
        "1",
        "--output-stdev",
        "0",
    ];
    assert_fails_cleanly(&zero_vocab, "--vocab-size must be at least 1");
    assert_fails_cleanly(&zero_vocab[2..], "--tokenizer");
    let mut no_eos = vec!["--vocab-size", "10"];
    no_eos.extend_from_slice(&zero_vocab[4..]);
    assert_fails_cleanly(&no_eos, "--eos-id");
    let mut seed = vec!["--random-seed", "4294967296"];
    seed.extend(strs(&base));
    assert_fails_cleanly(&seed, "np.random.seed accepts 0..=4294967295");
    assert!(
        parse(&[
            "--vocab-size",
            "10",
            "token-norm-dist",
            "--num-requests",
            "1"
        ])
        .is_err()
    );
    // base = ["--vocab-size", "100", "--eos-id", "2", ...]: add the conflicting flag.
    let mut both = vec!["--no-eos-avoidance"];
    both.extend(strs(&base));
    let err = parse(&both)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("cannot be used with"), "{err}");
}

fn small_norm() -> LengthDist {
    LengthDist::Normal {
        input_mean: 5,
        input_stdev: 1,
        output_mean: 5,
        output_stdev: 1,
    }
}

#[test]
fn library_validation_rejects_what_the_cli_rejects() {
    let spec = |num_requests, dist, task_ids| SyntheticSpec {
        num_requests,
        dist,
        seed: 1,
        task_ids,
        lora_dir: None,
    };
    let norm = LengthDist::Normal {
        input_mean: 5,
        input_stdev: 1,
        output_mean: 5,
        output_stdev: 1,
    };
    let bad_unif = LengthDist::Uniform {
        input_min: 5,
        input_max: 4,
        output_min: 1,
        output_max: 1,
    };
    assert!(validate(&spec(0, norm.clone(), TaskIds::None)).is_err());
    assert!(validate(&spec(3, bad_unif, TaskIds::None)).is_err());
    assert!(validate(&spec(3, norm.clone(), TaskIds::Random { min: 2, max: 1 })).is_err());
    assert!(validate(&spec(3, norm.clone(), TaskIds::Fixed(-1))).is_ok());
    let mut out = Vec::new();
    let err = write_synthetic(
        &spec(3, norm.clone(), TaskIds::None),
        &Vocab::new(0, vec![]),
        &mut out,
    );
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("vocabulary size is 0")
    );
    let one = write_synthetic(
        &spec(3, norm, TaskIds::None),
        &Vocab::new(1, vec![0]),
        &mut out,
    );
    assert!(one.unwrap_err().to_string().contains("--no-eos-avoidance"));
    let huge = Vocab::new(perfgate::dataset::MAX_VOCAB + 1, vec![]);
    let err = write_synthetic(&spec(3, small_norm(), TaskIds::None), &huge, &mut out);
    assert!(err.unwrap_err().to_string().contains("above the limit"));
    assert!(out.is_empty());
}

#[test]
fn missing_or_broken_tokenizers_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let argv = |tok: String| -> Vec<String> {
        vec![
            format!("--tokenizer={tok}"),
            "token-norm-dist".into(),
            "--num-requests=1".into(),
            "--input-mean=3".into(),
            "--input-stdev=0".into(),
            "--output-mean=1".into(),
            "--output-stdev=0".into(),
        ]
    };
    let missing = tmp.path().join("nope");
    assert_fails_cleanly(
        &strs(&argv(missing.display().to_string())),
        "cannot access it",
    );
    let empty_dir = tmp.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    assert_fails_cleanly(
        &strs(&argv(empty_dir.display().to_string())),
        "no tokenizer.json",
    );
    let garbage = tmp.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("tokenizer.json"), "{ not json").unwrap();
    assert_fails_cleanly(
        &strs(&argv(garbage.display().to_string())),
        "not a tokenizer.json",
    );
    std::fs::write(
        garbage.join("tokenizer.json"),
        r#"{"model":{"vocab":{"a":0}}}"#,
    )
    .unwrap();
    std::fs::write(garbage.join("tokenizer_config.json"), "[").unwrap();
    assert_fails_cleanly(
        &strs(&argv(garbage.display().to_string())),
        "tokenizer_config.json: invalid JSON",
    );
}

// ---------------------------------------------------------------------------------------------
// Real prompts

fn prompts_argv<'a>(tok: &'a str, input: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec![tok, "--stdout", "prompts", input];
    argv.extend_from_slice(extra);
    argv
}

#[test]
fn prompts_are_tokenized_with_special_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("p.jsonl");
    std::fs::write(
        &input,
        "{\"input\": \"Hello world\", \"output\": \"a reply of some words\"}\n\n\
         {\"input\": \"Second prompt, longer than the first one.\", \"output\": \"ok\"}\n",
    )
    .unwrap();
    let dir = tokenizer_fixture("minilm");
    let tok_arg = format!("--tokenizer={}", dir.display());
    let in_arg = format!("--input={}", input.display());
    let (out, _) = run(&prompts_argv(&tok_arg, &in_arg, &[])).unwrap();

    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let mut tok = tok;
    tok.with_padding(None).with_truncation(None).unwrap();
    let enc = |s: &str| tok.encode(s, true).unwrap().get_ids().to_vec();
    let expected = format!(
        "{{\"task_id\":0,\"input_ids\":{:?},\"output_tokens\":{}}}\n\
         {{\"task_id\":1,\"input_ids\":{:?},\"output_tokens\":{}}}\n",
        enc("Hello world"),
        enc("a reply of some words").len(),
        enc("Second prompt, longer than the first one."),
        enc("ok").len()
    )
    .replace(", ", ",");
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    assert_eq!(enc("Hello world")[0], 101, "[CLS] is counted");
    assert_eq!(enc("Hello world").len(), 4, "no padding to 128");
}

#[test]
fn prompts_output_lengths_can_be_drawn_like_norm_dist() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("p.jsonl");
    let lines: String = (0..12)
        .map(|i| format!("{{\"text\": \"prompt number {i}\"}}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let tok_arg = format!("--tokenizer={}", tokenizer_fixture("deepseek").display());
    let in_arg = format!("--input={}", input.display());
    let (out, _) = run(&prompts_argv(
        &tok_arg,
        &in_arg,
        &["--input-key", "text", "--output-len-dist", "50,10"],
    ))
    .unwrap();
    let got: Vec<u64> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["output_tokens"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Golden g02: seed 420, output normal(50, 10), 12 requests.
    assert_eq!(got, [46, 31, 45, 47, 54, 60, 45, 49, 64, 67, 43, 43]);
    assert_eq!(
        normal_lengths(&standard_normals(420, 12).unwrap(), 50, 10, "o").unwrap(),
        got
    );
}

#[test]
fn bad_prompt_files_name_the_line_and_leave_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let tok_arg = format!("--tokenizer={}", tokenizer_fixture("minilm").display());
    let cases = [
        (
            "{\"input\":\"a\",\"output\":\"b\"}\n{\"input\": oops}\n",
            ":2: invalid JSON",
        ),
        (
            "{\"input\":\"a\",\"output\":\"b\"}\n\n{\"prompt\":\"a\"}\n",
            ":3: missing key \"input\" (keys on this line: prompt)",
        ),
        ("{\"input\":\"a\"}\n", ":1: missing key \"output\""),
        (
            "{\"input\":5,\"output\":\"b\"}\n",
            ":1: key \"input\" must hold a string, found a number",
        ),
        ("[1]\n", ":1: expected a JSON object, found an array"),
        ("\n\n", "no prompts to use"),
    ];
    for (i, (content, needle)) in cases.iter().enumerate() {
        let input = tmp.path().join(format!("bad{i}.jsonl"));
        std::fs::write(&input, content).unwrap();
        let in_arg = format!("--input={}", input.display());
        assert_fails_cleanly(&[&tok_arg, "prompts", &in_arg], needle);
    }
    let missing = format!("--input={}", tmp.path().join("absent.jsonl").display());
    assert_fails_cleanly(&[&tok_arg, "prompts", &missing], "cannot read");
    assert_fails_cleanly(
        &["--vocab-size=5", "prompts", &missing],
        "needs --tokenizer",
    );
}

// ---------------------------------------------------------------------------------------------
// Cache keys

#[test]
fn cache_keys_follow_every_input() {
    let spec = parse(&norm_argv(&[]))
        .unwrap()
        .synthetic_spec()
        .unwrap()
        .unwrap();
    let vocab = Vocab::new(1000, vec![2]);
    let id = VocabIdentity::of(&vocab);
    let key = cache_key(&spec, &id);
    assert_eq!(key.len(), 64);
    assert_eq!(key, cache_key(&spec.clone(), &id.clone()));
    let mut other = spec.clone();
    other.seed += 1;
    assert_ne!(cache_key(&other, &id), key);
    assert_ne!(
        cache_key(&spec, &VocabIdentity::of(&Vocab::new(1000, vec![3]))),
        key
    );
    let with_file =
        VocabIdentity::with_tokenizer(&vocab, &tokenizer_fixture("minilm_eos_sep")).unwrap();
    assert_ne!(cache_key(&spec, &with_file), key);
    let mut lora = spec.clone();
    lora.lora_dir = Some("/x".into());
    assert_ne!(cache_key(&lora, &id), key);
}

// ---------------------------------------------------------------------------------------------
// Properties

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn dist() -> impl Strategy<Value = LengthDist> {
        prop_oneof![
            (0u64..80, 0u64..40, 0u64..30, 0u64..20).prop_map(|(a, b, c, d)| LengthDist::Normal {
                input_mean: a,
                input_stdev: b,
                output_mean: c,
                output_stdev: d
            }),
            (1u64..60, 0u64..60, 1u64..20, 0u64..20).prop_map(|(a, b, c, d)| LengthDist::Uniform {
                input_min: a,
                input_max: a + b,
                output_min: c,
                output_max: c + d
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn synthetic_datasets_hold_their_invariants(
            n in 1u64..25,
            dist in dist(),
            seed in 0u64..5_000_000_000,
            vocab_size in 2u32..3000,
            eos in 0u32..3100,
            rand_task in proptest::option::of((-3i64..3, 0i64..4)),
        ) {
            let seed = if matches!(dist, LengthDist::Normal { .. }) { seed % (1 << 32) } else { seed };
            let task_ids = match rand_task {
                Some((a, w)) => TaskIds::Random { min: a, max: a + w },
                None => TaskIds::None,
            };
            let spec = SyntheticSpec { num_requests: n, dist, seed, task_ids, lora_dir: Some("/l".into()) };
            let vocab = Vocab::new(vocab_size, vec![eos]);
            let mut out = Vec::new();
            let summary = write_synthetic(&spec, &vocab, &mut out).unwrap();
            let mut again = Vec::new();
            write_synthetic(&spec, &vocab, &mut again).unwrap();
            prop_assert!(out == again, "not deterministic");

            let text = String::from_utf8(out).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            prop_assert_eq!(lines.len() as u64, n);
            prop_assert_eq!(summary.num_requests, n);
            for (i, line) in lines.iter().enumerate() {
                let v: Value = serde_json::from_str(line).unwrap();
                prop_assert_eq!(v["task_id"].as_u64(), Some(i as u64));
                let ids = v["input_ids"].as_array().unwrap();
                prop_assert!(!ids.is_empty());
                prop_assert!(v["output_tokens"].as_u64().unwrap() >= 1);
                for id in ids {
                    prop_assert!(id.as_u64().unwrap() < vocab_size as u64);
                    if eos < vocab_size {
                        prop_assert_ne!(id.as_u64().unwrap(), eos as u64);
                    }
                }
            }

            let mut workload = Vec::new();
            write_synthetic_as(&spec, &vocab, OutputFormat::Workload, &mut workload).unwrap();
            let doc: Value = serde_json::from_slice(&workload).unwrap();
            prop_assert_eq!(doc["samples"].as_array().unwrap().len() as u64, n);
        }
    }
}
