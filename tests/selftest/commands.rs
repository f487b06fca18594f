//! Exact commands against upstream's own command plans (`commands.jsonl`): every sample, with
//! perfgate in upstream-compatibility mode (upstream's dataset script, upstream's LoRA YAML).
//! Where perfgate deliberately differs by default, the last test says so and checks the rest.

use std::path::PathBuf;

use perfgate::backend::{self, DatasetGenerator, PlanOptions, trtllm_bench};
use perfgate::config;
use perfgate::models::ModelConfigs;
use perfgate::plan::{Step, TestPlan};
use serde_json::Value;

const ORACLE: &str = include_str!("../fixtures/oracle/commands.jsonl");

fn upstream_options() -> PlanOptions {
    PlanOptions {
        output_dir: PathBuf::from("/ws/perf_engines"),
        models_root: PathBuf::from("/models"),
        dataset_generator: DatasetGenerator::Upstream {
            python: "python3".into(),
            llm_root: PathBuf::from("/llm"),
        },
        upstream_lora_yaml: true,
        sm: Some(90),
        ..PlanOptions::default()
    }
}

fn plan_for(name: &str, opts: &PlanOptions) -> TestPlan {
    let parsed = config::parse(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    backend::plan(name, &parsed, &ModelConfigs::embedded(), opts)
}

/// Upstream's command list for a dataset step: `mkdir`/`ln` prefixes for LoRA, the script's
/// arguments with `--rand-task-id a b` as one item, and ` > file` as the last item.
fn upstream_data_cmd(step: &Step) -> Vec<String> {
    let mut out = Vec::new();
    let req = step.dataset.as_ref().expect("dataset request");
    if let Some(dir) = &req.lora_dir {
        out.push(format!("mkdir -p {}", dir.display()));
        out.push(";".into());
        for (i, a) in req.lora_adapters.iter().enumerate() {
            out.push(format!("ln -sf {} {}/{i}", a.display(), dir.display()));
            out.push(";".into());
        }
    }
    let mut args = step.argv.iter();
    while let Some(a) = args.next() {
        if a == "--rand-task-id" {
            let lo = args.next().expect("min");
            let hi = args.next().expect("max");
            out.push(format!("--rand-task-id {lo} {hi}"));
        } else {
            out.push(a.clone());
        }
    }
    out.push(format!(
        " > {}",
        step.stdout_to.as_ref().expect("stdout file").display()
    ));
    out
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_sample_command_plan_matches_upstream() {
    let opts = upstream_options();
    let mut failures = Vec::new();
    let mut checked = 0;
    for line in ORACLE.lines() {
        let o: Value = serde_json::from_str(line).expect("JSON");
        let name = o["name"].as_str().expect("name");
        let p = plan_for(name, &opts);
        if o["ok"] != Value::Bool(true) {
            // Upstream skips these (LoRA on an unsupported backend, a model without a checkpoint).
            if p.skipped.is_empty() && p.blocked.is_empty() {
                failures.push(format!(
                    "{name}: upstream skips ({}), we would run it",
                    o["error"]["message"]
                ));
            }
            continue;
        }
        if !p.blocked.is_empty() || !p.skipped.is_empty() {
            failures.push(format!(
                "{name}: upstream runs it, we block/skip: {:?} {:?}",
                p.blocked, p.skipped
            ));
            continue;
        }
        assert_eq!(
            p.cases.len(),
            1,
            "{name}: every oracle bench name has one case"
        );
        let case = &p.cases[0];
        // data command
        let want = strings(&o["data_cmds"][0]);
        let got = upstream_data_cmd(&case.steps[0]);
        if got != want {
            failures.push(format!("{name}: data\n  want {want:?}\n  got  {got:?}"));
        }
        // build command
        let want = strings(&o["build_cmd"]);
        let got = p
            .setup
            .iter()
            .find(|s| s.label == "build")
            .map(|s| s.argv.clone())
            .unwrap_or_default();
        if got != want {
            failures.push(format!("{name}: build\n  want {want:?}\n  got  {got:?}"));
        }
        // benchmark command
        let want = strings(&o["benchmark_cmds"][0]);
        let got = &case.steps[1].argv;
        if *got != want {
            failures.push(format!(
                "{name}: benchmark\n  want {want:?}\n  got  {got:?}"
            ));
        }
        // the YAML file: same path, same bytes
        let written: Vec<(String, String)> = o["files_written"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let ours: Vec<(String, String)> = case.steps[1]
            .files
            .iter()
            .map(|f| (f.path.display().to_string(), f.contents.clone()))
            .collect();
        if ours != written {
            failures.push(format!(
                "{name}: files\n  want {written:?}\n  got  {ours:?}"
            ));
        }
        // metrics and the command they come from (upstream: build = 1, the case = 2)
        let mut want: Vec<(String, u64)> = o["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|m| {
                (
                    m["metric_type"].as_str().unwrap_or_default().to_string(),
                    m["cmd_idx"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let mut got: Vec<(String, u64)> = p
            .setup_metrics
            .iter()
            .map(|m| (m.to_string(), 1))
            .chain(case.metrics.iter().map(|m| (m.to_string(), 2)))
            .collect();
        want.sort();
        got.sort();
        if got != want {
            failures.push(format!("{name}: metrics {got:?} != {want:?}"));
        }
        checked += 1;
    }
    assert!(checked > 290, "only {checked} plans checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn default_mode_differs_only_where_documented() {
    let name = "llama_v3.1_8b_instruct_fp8-bench-pytorch-float8-input_output_len:128,128-loras:1-reqs:100-con:2-gpus:1";
    let up = plan_for(name, &upstream_options());
    let ours = plan_for(
        name,
        &PlanOptions {
            dataset_generator: DatasetGenerator::Perfgate,
            upstream_lora_yaml: false,
            ..upstream_options()
        },
    );
    let (u, o) = (&up.cases[0], &ours.cases[0]);
    // 1. The dataset step is perfgate's own generator, writing the same file in-process.
    assert_eq!(
        o.steps[0].argv[..2],
        ["perfgate".to_string(), "dataset".to_string()]
    );
    assert!(o.steps[0].stdout_to.is_none());
    assert_eq!(o.steps[0].outputs, u.steps[0].outputs);
    assert_eq!(
        o.steps[0].dataset, u.steps[0].dataset,
        "same generator parameters"
    );
    // 2. The LoRA YAML lists the adapter directories; upstream writes it before linking them and
    //    so always writes `lora_dir: []`.
    let (uy, oy) = (&u.steps[1].files[0], &o.steps[1].files[0]);
    assert_eq!(uy.path, oy.path);
    assert!(uy.contents.contains("lora_dir: []"));
    assert!(
        oy.contents.contains("lora_dir:\n  - /ws/perf_engines/"),
        "{}",
        oy.contents
    );
    assert_eq!(
        oy.contents
            .replace(&format!("\n  - {}/loras/0", ours.dir.display()), " []"),
        uy.contents
    );
    // Everything else is identical.
    assert_eq!(u.steps[1].argv, o.steps[1].argv);
}

#[test]
fn multi_case_names_get_a_dataset_and_command_each() {
    // Upstream shares one dataset file between the cases and runs the wrong commands.
    let p = plan_for(
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128+512,32",
        &upstream_options(),
    );
    assert_eq!(p.cases.len(), 2);
    let d: Vec<_> = p
        .cases
        .iter()
        .map(|c| c.steps[0].outputs[0].clone())
        .collect();
    assert_ne!(d[0], d[1]);
    assert!(
        p.cases[1].steps[0]
            .argv
            .contains(&"--input-mean=512".to_string())
    );
    assert!(
        p.cases[1].steps[1]
            .argv
            .contains(&format!("--dataset={}", d[1].display()))
    );
}

#[test]
fn trtllm_bench_environment_and_extra_flags() {
    let opts = PlanOptions {
        trtllm: trtllm_bench::Options {
            bench_cmd: "/opt/trtllm/bin/trtllm-bench".into(),
            trtllm_lib_dir: Some(PathBuf::from("/opt/trtllm/lib")),
            extra_bench_args: vec!["--warmup=4".into()],
            latency: true,
        },
        ..upstream_options()
    };
    let p = plan_for(
        "llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128",
        &opts,
    );
    let bench = &p.cases[0].steps[1];
    assert!(bench.env.contains(&(
        "LD_LIBRARY_PATH".into(),
        "/opt/trtllm/lib:/opt/trtllm/bin:$LD_LIBRARY_PATH".into()
    )));
    assert!(bench.env.contains(&("PYTHONUNBUFFERED".into(), "1".into())));
    assert_eq!(bench.argv.last().map(String::as_str), Some("--warmup=4"));
    let lat = &p.cases[0].steps[2];
    assert_eq!(lat.label, "latency");
    assert_eq!(lat.argv[3], "latency");
    assert!(
        bench
            .command_line()
            .starts_with("PYTHONUNBUFFERED=1 LD_LIBRARY_PATH="),
        "{}",
        bench.command_line()
    );
}
