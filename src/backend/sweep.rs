//! Sweeps and A/B runs as test cases (`<model>-sweep-<recipe>-...`, `<model>-ab-<recipe>-...`,
//! or their YAML form in a test-db list): the server(s) of a recipe started as services, on
//! the GPUs their placement gives them, and `perfgate sweep` / `perfgate ab` as the measured
//! step, read back into metrics that are gated, stored and drawn like any other.
//!
//! - A sweep is one server (`-np 1`, a context as long as the longest test) and a case per
//!   test (`pp512`, `tg128`, `pp512+tg128`): each case runs that test and reads its JSON line
//!   (`-o jsonl`) into `SWEEP_TOKENS_PER_SECOND`, `SWEEP_TIME`, `SWEEP_TTFT`, and where a power
//!   source was read `SWEEP_JOULES_PER_TOKEN` and `SWEEP_POWER_MEAN`.
//! - An A/B is two servers, A the model alone and B the model with its draft (the recipe's
//!   `{draft_model_path}`), and one case reading `benchmark_results.json` into `AB_SPEEDUP`
//!   (and its interval), `AB_LATENCY_SPEEDUP`, `AB_ACCEPTANCE_RATE`, each side's output
//!   throughput, median E2E latency and J/token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{Backend, PlanRequest, Reading, StepOutput};
use crate::config::{AbName, CaseSpec, PerfName, SweepName};
use crate::models::ModelConfigs;
use crate::models::servers::ServerRecipe;
use crate::plan::placement::{self, Placement};
use crate::plan::{CasePlan, Phase, Readiness, Step, TestPlan};
use crate::textutil::safe_file_name;

/// The id its steps carry.
pub const ID: &str = "sweep";

const SWEEP_STEP: &str = "sweep";
const AB_STEP: &str = "ab";
const SERVER: &str = "server";
const SERVER_A: &str = "server_a";
const SERVER_B: &str = "server_b";

/// The metrics a sweep case records and requires.
const SWEEP_METRICS: [&str; 3] = ["SWEEP_TOKENS_PER_SECOND", "SWEEP_TIME", "SWEEP_TTFT"];
const SWEEP_GATED: [&str; 2] = ["SWEEP_TOKENS_PER_SECOND", "SWEEP_JOULES_PER_TOKEN"];
const AB_METRICS: [&str; 3] = [
    "AB_SPEEDUP",
    "AB_A_OUTPUT_THROUGHPUT",
    "AB_B_OUTPUT_THROUGHPUT",
];
const AB_GATED: [&str; 2] = ["AB_SPEEDUP", "AB_ACCEPTANCE_RATE"];

/// The sweep and A/B backend.
pub struct SweepAb;

impl Backend for SweepAb {
    fn id(&self) -> &'static str {
        ID
    }

    fn accepts(&self, name: &PerfName) -> bool {
        matches!(name, PerfName::Sweep(_) | PerfName::Ab(_))
    }

    fn plan(&self, r: &PlanRequest) -> TestPlan {
        match r.name {
            PerfName::Sweep(s) => plan_sweep(r, s),
            PerfName::Ab(a) => plan_ab(r, a),
            _ => TestPlan::empty(r.raw, r.name.canonical(), r.dir.clone()),
        }
    }

    fn read(&self, step: &Step, output: &StepOutput) -> anyhow::Result<Reading> {
        if step.label == AB_STEP {
            read_ab(step)
        } else {
            read_sweep(output)
        }
    }
}

/// A catalog model's file and tokenizer under the models root.
struct Files {
    path: PathBuf,
    tokenizer: PathBuf,
}

fn model_files(model: &str, configs: &ModelConfigs, r: &PlanRequest) -> Result<Files, String> {
    let opts = r.options;
    let info = configs.catalog.get(model).ok_or_else(|| {
        let near =
            crate::textutil::closest(model, configs.catalog.models.keys().map(String::as_str), 1);
        format!(
            "model `{model}` is not in {}{}",
            configs.catalog.origin,
            near.first()
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default()
        )
    })?;
    let path = info
        .path
        .as_ref()
        .map(|p| opts.models_root.join(p))
        .ok_or_else(|| format!("`{model}` has no `path:` in {}", configs.catalog.origin))?;
    let tokenizer = opts
        .tokenizer_override
        .clone()
        .or_else(|| info.tokenizer.as_ref().map(|t| opts.models_root.join(t)))
        .unwrap_or_else(|| path.clone());
    Ok(Files { path, tokenizer })
}

fn recipe<'a>(configs: &'a ModelConfigs, name: &str) -> Result<&'a ServerRecipe, String> {
    configs.servers.get(name).ok_or_else(|| {
        let near = crate::textutil::closest(name, configs.servers.names(), 1);
        format!(
            "no server recipe `{name}` in {}{} (recipes: {})",
            configs.servers.origin,
            near.first()
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default(),
            configs.servers.names().join(", ")
        )
    })
}

/// The recipe's placeholder values for one server of `concurrency` slots and sequences of at
/// most `max_seq_len` tokens.
fn values(
    model: &str,
    files: &Files,
    gpus: u32,
    concurrency: u64,
    max_seq_len: u64,
) -> BTreeMap<&'static str, String> {
    let mut v = BTreeMap::new();
    v.insert("model_path", files.path.to_string_lossy().into_owned());
    v.insert("model_name", model.to_string());
    v.insert("tokenizer", files.tokenizer.to_string_lossy().into_owned());
    v.insert("host", "127.0.0.1".to_string());
    v.insert("tp", gpus.max(1).to_string());
    v.insert("pp", "1".to_string());
    v.insert("gpus", gpus.to_string());
    v.insert("max_batch_size", concurrency.to_string());
    v.insert("max_num_tokens", (concurrency * max_seq_len).to_string());
    v.insert("max_seq_len", max_seq_len.to_string());
    v.insert("concurrency", concurrency.to_string());
    v.insert("context_tokens", (concurrency * max_seq_len).to_string());
    v
}

/// A recipe's server as a service step with its placement.
fn server(
    r: &PlanRequest,
    recipe: &ServerRecipe,
    label: &'static str,
    values: &BTreeMap<&str, String>,
    devices: Option<String>,
    log: PathBuf,
) -> Result<Step, String> {
    let command = r.options.serve.server_cmd(&recipe.name, &recipe.command);
    let argv = recipe.argv(&command, values)?;
    let mut env = recipe.env(values);
    if let Some(d) = devices {
        env.push(("CUDA_VISIBLE_DEVICES".into(), d));
    }
    let timeout = r
        .options
        .serve
        .ready_timeout
        .unwrap_or(Duration::from_secs(recipe.ready_timeout_s));
    Ok(Step::service(
        ID,
        label,
        argv,
        env,
        Vec::new(),
        Readiness::Http {
            url: format!("http://127.0.0.1:{{port}}{}", recipe.ready_path),
        },
        timeout,
        log,
    ))
}

/// The perfgate command of the measured step (the serving backend's `--serve-bench-cmd`).
fn perfgate(r: &PlanRequest, sub: &str) -> Vec<String> {
    let mut argv = r.options.serve.serve_bench_cmd.clone();
    argv.push(sub.into());
    argv
}

fn measure(
    label: &'static str,
    argv: Vec<String>,
    outputs: Vec<PathBuf>,
    required: Vec<&'static str>,
) -> Step {
    Step {
        phase: Phase::Measure,
        label,
        backend: ID,
        argv,
        env: Vec::new(),
        dataset: None,
        outputs,
        files: Vec::new(),
        stdout_to: None,
        required,
        service: None,
        expect: None,
        title: None,
    }
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn plan_sweep(r: &PlanRequest, s: &SweepName) -> TestPlan {
    let mut tp = TestPlan::empty(r.raw, r.name.canonical(), r.dir.clone());
    let configs = r.configs;
    let recipe = match recipe(configs, &s.recipe) {
        Ok(x) => x,
        Err(e) => {
            tp.blocked.push(e);
            return tp;
        }
    };
    let files = match model_files(&s.model, configs, r) {
        Ok(f) => f,
        Err(e) => {
            tp.blocked.push(e);
            return tp;
        }
    };
    let tests = s.tests();
    let max_seq_len = tests
        .iter()
        .map(|t| t.prompt_sent() + t.gen_requested())
        .max()
        .unwrap_or(1);
    let devices = match placement::assign(
        Placement::Same,
        &[s.gpus],
        &["the server"],
        &r.options.machine_gpus,
    ) {
        Ok(mut d) => d.pop().flatten(),
        Err(e) => {
            tp.blocked.push(e);
            return tp;
        }
    };
    if s.gpus > 0 {
        tp.gpus = Some(s.gpus);
    }
    let vals = values(&s.model, &files, s.gpus, 1, max_seq_len);
    let server = match server(r, recipe, SERVER, &vals, devices, r.dir.join("server.log")) {
        Ok(st) => st,
        Err(e) => {
            tp.blocked.push(e);
            return tp;
        }
    };
    let served = if recipe.uses("model_name") {
        s.model.clone()
    } else {
        String::new()
    };
    for t in tests {
        let dir = r.dir.join(safe_file_name(&t.label()));
        let mut argv = perfgate(r, "sweep");
        argv.extend([
            "--url".into(),
            "{server.url}".into(),
            "--endpoint".into(),
            recipe.endpoint.clone(),
            "--model".into(),
            served.clone(),
            "--server-kind".into(),
            recipe.client_kind.clone(),
            "--tokenizer".into(),
            path_text(&files.tokenizer),
        ]);
        match t.test_type {
            crate::config::TestType::Prompt => argv.extend(["-p".into(), t.n_prompt.to_string()]),
            crate::config::TestType::Generation => argv.extend(["-n".into(), t.n_gen.to_string()]),
            crate::config::TestType::Both => {
                argv.extend(["--pg".into(), format!("{},{}", t.n_prompt, t.n_gen)])
            }
        }
        argv.extend([
            "-r".into(),
            s.repetitions.to_string(),
            "--warmup".into(),
            recipe.warmup.max(1).to_string(),
            "--power".into(),
            s.power.clone(),
            "--seed".into(),
            r.options.dataset_seed.to_string(),
            "-o".into(),
            "jsonl".into(),
            "--output-dir".into(),
            path_text(&dir),
        ]);
        let step = measure(SWEEP_STEP, argv, Vec::new(), SWEEP_METRICS.to_vec());
        tp.cases.push(CasePlan {
            spec: CaseSpec {
                batch_size: None,
                input_len: u32::try_from(t.prompt_sent()).unwrap_or(u32::MAX),
                output_len: Some(u32::try_from(t.gen_requested()).unwrap_or(u32::MAX)),
                concurrency: None,
                label: s.case_label(&t),
            },
            dir,
            steps: vec![server.clone(), step],
            metrics: SWEEP_METRICS.to_vec(),
            roofline: None,
            group: Some(SERVER.into()),
            gated: SWEEP_GATED.to_vec(),
            upstream_record: None,
        });
    }
    tp
}

fn plan_ab(r: &PlanRequest, a: &AbName) -> TestPlan {
    let mut tp = TestPlan::empty(r.raw, r.name.canonical(), r.dir.clone());
    let configs = r.configs;
    let recipe = match recipe(configs, &a.recipe) {
        Ok(x) => x,
        Err(e) => {
            tp.blocked.push(e);
            return tp;
        }
    };
    if !recipe.uses("draft_model_path") {
        tp.blocked.push(format!(
            "server recipe `{}` takes no draft model: side B needs `{{draft_model_path}}` in its \
             args ({})",
            recipe.name, configs.servers.origin
        ));
        return tp;
    }
    let (files, draft) = match (
        model_files(&a.model, configs, r),
        model_files(&a.draft, configs, r),
    ) {
        (Ok(m), Ok(d)) => (m, d),
        (Err(e), _) | (_, Err(e)) => {
            tp.blocked.push(e);
            return tp;
        }
    };
    let counts = [a.gpus.0, a.gpus.1];
    let devices = match placement::assign(
        a.place,
        &counts,
        &["side A (target)", "side B (speculative)"],
        &r.options.machine_gpus,
    ) {
        Ok(d) => d,
        Err(e) => {
            tp.blocked.push(e);
            return tp;
        }
    };
    let occupied = placement::occupied(a.place, &counts);
    if occupied > 0 {
        tp.gpus = Some(occupied);
    }
    let max_seq_len = a.isl + a.osl;
    let bs = u64::from(a.bs);
    let mut servers = Vec::new();
    for (side, label) in [(0usize, SERVER_A), (1, SERVER_B)] {
        let mut vals = values(&a.model, &files, counts[side], bs, max_seq_len);
        if side == 1 {
            vals.insert("draft_model_path", path_text(&draft.path));
        }
        let log = r.dir.join(format!("{label}.log"));
        match server(r, recipe, label, &vals, devices[side].clone(), log) {
            Ok(st) => servers.push(st),
            Err(e) => {
                tp.blocked.push(e);
                return tp;
            }
        }
    }
    let served = if recipe.uses("model_name") {
        a.model.clone()
    } else {
        String::new()
    };
    let results = r.dir.join(crate::ab::output::RESULTS);
    let mut argv = perfgate(r, "ab");
    argv.extend([
        "--a".into(),
        "{server_a.url}".into(),
        "--b".into(),
        "{server_b.url}".into(),
        "--label-a".into(),
        "target".into(),
        "--label-b".into(),
        "speculative".into(),
        "--model-a".into(),
        served.clone(),
        "--model-b".into(),
        served,
        "--server-kind".into(),
        recipe.client_kind.clone(),
        "--endpoint".into(),
        recipe.endpoint.clone(),
        "--tokenizer".into(),
        path_text(&files.tokenizer),
        "--isl".into(),
        a.isl.to_string(),
        "--osl".into(),
        a.osl.to_string(),
        "--num-prompts".into(),
        a.reqs.to_string(),
        "--batch-size".into(),
        a.bs.to_string(),
        "--blocks".into(),
        a.blocks.to_string(),
        "--warmup".into(),
        recipe.warmup.max(1).to_string(),
        "--ignore-eos".into(),
        "--gpu-monitor".into(),
        "--power".into(),
        a.power.clone(),
        "--seed".into(),
        r.options.dataset_seed.to_string(),
        "--output-dir".into(),
        path_text(&r.dir),
        "--no-progress".into(),
    ]);
    let mut steps = servers;
    steps.push(measure(AB_STEP, argv, vec![results], AB_METRICS.to_vec()));
    tp.cases.push(CasePlan {
        spec: CaseSpec {
            batch_size: Some(a.bs),
            input_len: u32::try_from(a.isl).unwrap_or(u32::MAX),
            output_len: Some(u32::try_from(a.osl).unwrap_or(u32::MAX)),
            concurrency: None,
            label: a.canonical(),
        },
        dir: r.dir.clone(),
        steps,
        metrics: AB_METRICS.to_vec(),
        roofline: None,
        group: None,
        gated: AB_GATED.to_vec(),
        upstream_record: None,
    });
    tp
}

fn log_slice(output: &StepOutput) -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    output.reader()?.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `perfgate sweep -o jsonl` line of the step's output.
fn read_sweep(output: &StepOutput) -> anyhow::Result<Reading> {
    let text = log_slice(output)?;
    let mut reading = Reading {
        missing_hint: Some("`perfgate sweep -o jsonl` printed no test line".into()),
        ..Reading::default()
    };
    let Some(line) = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .rfind(|v| v.get("test_type").is_some())
    else {
        reading
            .problems
            .push("`perfgate sweep` printed no test line (see the log)".into());
        return Ok(reading);
    };
    let num = |k: &str| line.get(k).and_then(Value::as_f64);
    let mut put = |name: &str, v: Option<f64>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            reading.metrics.insert(name.to_string(), v);
        }
    };
    put("SWEEP_TOKENS_PER_SECOND", num("avg_ts"));
    put("SWEEP_TIME", num("avg_ns").map(|ns| ns / 1e6));
    put("SWEEP_TTFT", num("avg_ttft_ns").map(|ns| ns / 1e6));
    put("SWEEP_JOULES_PER_TOKEN", num("joules_per_token"));
    put("SWEEP_POWER_MEAN", num("avg_power_w"));
    let failed = num("failed").unwrap_or(0.0);
    let reps = num("repetitions").unwrap_or(0.0);
    if failed > 0.0 {
        reading
            .problems
            .push(format!("{failed} of {reps} repetitions failed"));
    }
    if line.get("interrupted").and_then(Value::as_bool) == Some(true) {
        reading.problems.push("the sweep was interrupted".into());
    }
    if let Some(note) = line.get("energy_note").and_then(Value::as_str) {
        reading.warnings.push(note.to_string());
    }
    Ok(reading)
}

/// `benchmark_results.json` of the step.
fn read_ab(step: &Step) -> anyhow::Result<Reading> {
    let mut reading = Reading {
        missing_hint: Some("benchmark_results.json does not have them".into()),
        ..Reading::default()
    };
    let Some(path) = step.outputs.first() else {
        anyhow::bail!("the A/B step names no results file");
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            reading
                .problems
                .push(format!("{}: {e} (see the log)", path.display()));
            return Ok(reading);
        }
    };
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}:{}: not JSON: {e}", path.display(), e.line()))?;
    let at = |p: &str| v.pointer(p).and_then(Value::as_f64);
    let mut put = |name: &str, x: Option<f64>| {
        if let Some(x) = x.filter(|x| x.is_finite()) {
            reading.metrics.insert(name.to_string(), x);
        }
    };
    put("AB_SPEEDUP", at("/comparison/speedup/estimate"));
    put("AB_SPEEDUP_CI_LOW", at("/comparison/speedup/ci_low"));
    put("AB_SPEEDUP_CI_HIGH", at("/comparison/speedup/ci_high"));
    put(
        "AB_LATENCY_SPEEDUP",
        at("/comparison/latency_speedup/estimate"),
    );
    put("AB_ACCEPTANCE_RATE", at("/b/acceptance/rate"));
    put("AB_A_OUTPUT_THROUGHPUT", at("/a/output_throughput"));
    put("AB_B_OUTPUT_THROUGHPUT", at("/b/output_throughput"));
    put("AB_A_MEDIAN_E2E_LATENCY", at("/a/e2el_ms/median"));
    put("AB_B_MEDIAN_E2E_LATENCY", at("/b/e2el_ms/median"));
    put(
        "AB_A_JOULES_PER_TOKEN",
        at("/a/gpu/joules_per_output_token"),
    );
    put(
        "AB_B_JOULES_PER_TOKEN",
        at("/b/gpu/joules_per_output_token"),
    );
    for side in ["a", "b"] {
        let label = v
            .pointer(&format!("/{side}/label"))
            .and_then(Value::as_str)
            .unwrap_or(side)
            .to_string();
        if let Some(n) = at(&format!("/{side}/failed")).filter(|n| *n > 0.0) {
            reading
                .problems
                .push(format!("{label}: {n} request(s) failed"));
        }
        if let Some(list) = v
            .pointer(&format!("/{side}/invalid"))
            .and_then(Value::as_array)
        {
            for i in list.iter().filter_map(Value::as_str) {
                reading.warnings.push(format!("{label}: {i}"));
            }
        }
    }
    if let Some(why) = v.get("stopped").and_then(Value::as_str) {
        reading
            .problems
            .push(format!("the A/B stopped early: {why}"));
    }
    Ok(reading)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `perfgate sweep -o jsonl` printed for `pp8+tg16` against serve-mock with a
    /// scripted NVML reading of 250 W (`energy_j` 15.95 J over 48 tokens).
    const SWEEP_LINE: &str = r#"{"test_type":"both","n_prompt":8,"n_gen":16,"n_tokens":24,"repetitions":2,"completed":2,"failed":0,"avg_ns":31875469,"stddev_ns":838079,"avg_ts":753.1904444179324,"stddev_ts":19.803105342893616,"samples_ns":[31282857,32468080],"samples_ts":[767.1933544944441,739.1875343414208],"avg_ttft_ns":1315548,"prompt_tokens_sent":8,"gen_tokens_requested":16,"energy_measured":true,"energy_j":15.951328322280443,"joules_per_token":0.33231934004750924,"avg_power_w":249.97949903579328,"energy_sources":[{"source":"nvml","joules":15.951328322280443,"mean_w":249.97949903579328,"method":"counter"}],"energy_note":null,"power_sources":["nvml"],"data_file":"trt_data_both_p8_g16_20261207_070007.json","model":"mock-model","server_url":"http://127.0.0.1:43581","server_kind":"llama.cpp","endpoint":"completions","timestamp":"2026-12-07T07:00:07.580Z","errors":{},"interrupted":false,"notes":[]}"#;

    /// The step's output is its part of the test's log: `text`, between what a step before
    /// and a step after it wrote (`around`).
    fn read_log(text: &str, around: &str) -> Reading {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("test.log");
        std::fs::write(&log, format!("{around}{text}{around}")).expect("log");
        let output = StepOutput {
            log: &log,
            log_range: around.len() as u64..(around.len() + text.len()) as u64,
            duration: Duration::from_secs(1),
        };
        read_sweep(&output).expect("read")
    }

    fn metrics(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn a_sweep_line_with_energy_gives_joules_per_token_and_mean_power() {
        // Another step's line in the same log is not this step's.
        let other = SWEEP_LINE.replace("0.33231934004750924", "9.9") + "\n";
        let r = read_log(&format!("sweep: pp8+tg16 2/2\n{SWEEP_LINE}\n"), &other);
        assert_eq!(
            r.metrics,
            metrics(&[
                ("SWEEP_TOKENS_PER_SECOND", 753.1904444179324),
                ("SWEEP_TIME", 31_875_469.0 / 1e6),
                ("SWEEP_TTFT", 1_315_548.0 / 1e6),
                ("SWEEP_JOULES_PER_TOKEN", 0.33231934004750924),
                ("SWEEP_POWER_MEAN", 249.97949903579328),
            ])
        );
        assert!(r.problems.is_empty() && r.warnings.is_empty(), "{r:?}");
    }

    #[test]
    fn a_sweep_line_without_energy_has_no_energy_metrics_and_says_why() {
        let note = "energy not measured: no power source (--power none)";
        let line = SWEEP_LINE
            .replace("\"energy_measured\":true", "\"energy_measured\":false")
            .replace("\"energy_j\":15.951328322280443", "\"energy_j\":null")
            .replace(
                "\"joules_per_token\":0.33231934004750924",
                "\"joules_per_token\":null",
            )
            .replace("\"avg_power_w\":249.97949903579328", "\"avg_power_w\":null")
            .replace(
                "\"energy_note\":null",
                &format!("\"energy_note\":\"{note}\""),
            );
        let r = read_log(&format!("{line}\n"), "");
        assert_eq!(
            r.metrics.keys().collect::<Vec<_>>(),
            ["SWEEP_TIME", "SWEEP_TOKENS_PER_SECOND", "SWEEP_TTFT"]
        );
        assert_eq!(r.warnings, [note]);
        assert!(r.problems.is_empty(), "{r:?}");
    }

    /// `benchmark_results.json` of `perfgate ab --gpu-monitor` against two serve-mocks
    /// (B drafting, half accepted) with a scripted NVML reading of 250 W, cut to what the
    /// reader looks at. The speed-up has all 17 digits: serde_json's `float_roundtrip` reads
    /// them back exactly (without it, this one came back one unit in the last place off).
    const AB_RESULTS: &str = r#"{
        "a": {"label": "target", "failed": 0, "invalid": [], "acceptance": null,
              "output_throughput": 499.585679545106, "e2el_ms": {"median": 15.7553975},
              "gpu": {"measured": ["nvml"], "energy_j": 131.0920000000001,
                      "mean_power_w": 249.99780928673457, "joules_per_output_token": 4.096625000000003}},
        "b": {"label": "speculative", "failed": 0, "invalid": [],
              "acceptance": {"rate": 0.5, "drafted": 32, "accepted": 16, "acceptance_length": null,
                             "source": "llama.cpp timings (draft_n, draft_n_accepted)"},
              "output_throughput": 491.0933770471918, "e2el_ms": {"median": 16.012521},
              "gpu": {"measured": ["nvml"], "energy_j": 132.23800000000006,
                      "mean_power_w": 250.00134511983748, "joules_per_output_token": 4.132437500000002}},
        "comparison": {
            "speedup": {"estimate": 0.9829877150559385, "ci_low": 0.6493295270888438,
                        "ci_high": 1.488096271061283, "confidence": 0.95, "pairs": 2},
            "latency_speedup": {"estimate": 0.983236645506362}},
        "complete": true, "stopped": null, "interrupted": false
    }"#;

    fn read_results(text: &str) -> Reading {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("benchmark_results.json");
        std::fs::write(&path, text).expect("results");
        read_ab(&measure(AB_STEP, Vec::new(), vec![path], Vec::new())).expect("read")
    }

    #[test]
    fn ab_results_with_energy_give_each_sides_joules_per_token() {
        let r = read_results(AB_RESULTS);
        assert_eq!(
            r.metrics,
            metrics(&[
                ("AB_SPEEDUP", 0.9829877150559385),
                ("AB_SPEEDUP_CI_LOW", 0.6493295270888438),
                ("AB_SPEEDUP_CI_HIGH", 1.488096271061283),
                ("AB_LATENCY_SPEEDUP", 0.983236645506362),
                ("AB_ACCEPTANCE_RATE", 0.5),
                ("AB_A_OUTPUT_THROUGHPUT", 499.585679545106),
                ("AB_B_OUTPUT_THROUGHPUT", 491.0933770471918),
                ("AB_A_MEDIAN_E2E_LATENCY", 15.7553975),
                ("AB_B_MEDIAN_E2E_LATENCY", 16.012521),
                ("AB_A_JOULES_PER_TOKEN", 4.096625000000003),
                ("AB_B_JOULES_PER_TOKEN", 4.132437500000002),
            ])
        );
        assert!(r.problems.is_empty() && r.warnings.is_empty(), "{r:?}");
    }

    #[test]
    fn ab_results_without_energy_have_no_joules_per_token() {
        // Monitoring on but no power source on the machine: null, not zero.
        let mut v: Value = serde_json::from_str(AB_RESULTS).expect("JSON");
        for side in ["a", "b"] {
            v[side]["gpu"] = serde_json::json!({"measured": [], "energy_j": null,
                "mean_power_w": null, "joules_per_output_token": null,
                "not_measured": ["nvml: no NVIDIA driver"]});
        }
        let r = read_results(&v.to_string());
        assert!(!r.metrics.contains_key("AB_A_JOULES_PER_TOKEN"), "{r:?}");
        assert!(!r.metrics.contains_key("AB_B_JOULES_PER_TOKEN"), "{r:?}");
        assert_eq!(r.metrics.len(), 9, "{:?}", r.metrics);
    }
}
