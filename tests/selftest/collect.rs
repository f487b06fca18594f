//! Collecting lists as the harness does: test-db conditions against a system description,
//! prefixes, and the case plans.

use std::path::PathBuf;

use clap::Parser;
use perfgate::backend::Registry;
use perfgate::cli::args::HarnessArgs;

fn args(extra: &[&str]) -> HarnessArgs {
    let mut argv = vec!["perf"];
    argv.extend_from_slice(extra);
    HarnessArgs::try_parse_from(argv).expect("arguments parse")
}

fn root(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(p)
        .display()
        .to_string()
}

#[test]
fn test_db_conditions_select_tests_for_the_machine() {
    let list = root("test_lists/perf_db.yml");
    let sys = root("ci/systems/h100x8.json");
    let a = args(&["--test-list", &list, "--system", &sys]);
    let c = a
        .common
        .to_collect()
        .collect(&Registry::builtin())
        .expect("collects");
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let raws: Vec<&str> = c.tests.iter().map(|t| t.entry.raw.as_str()).collect();
    assert_eq!(raws.len(), 3, "{raws:?}");
    assert!(
        raws.iter().all(|r| !r.contains("deepseek_r1_0528_fp4")),
        "the gb* block must not apply on H100"
    );
    assert_eq!(c.tests[1].entry.markers.timeout_minutes, Some(60));

    // A 1-GPU pre-merge machine keeps none of them.
    let a = args(&[
        "--test-list",
        &list,
        "--system",
        &sys,
        "--system-set",
        "system_gpu_count=1",
        "--system-set",
        "stage=pre_merge",
    ]);
    assert!(
        a.common
            .to_collect()
            .collect(&Registry::builtin())
            .expect("collects")
            .tests
            .is_empty()
    );

    // A GB200 node: only the chip block (and the FP8 block, it has 8 GPUs and enough memory).
    let a = args(&[
        "--test-list",
        &list,
        "--system",
        &sys,
        "--system-set",
        "chip=gb200",
        "--system-set",
        "gpu=GB200",
    ]);
    let c = a
        .common
        .to_collect()
        .collect(&Registry::builtin())
        .expect("collects");
    let raws: Vec<&str> = c.tests.iter().map(|t| t.entry.raw.as_str()).collect();
    assert_eq!(raws.len(), 2, "{raws:?}");
}

#[test]
fn test_ids_carry_the_prefix_and_pinned_entries_follow_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("l.txt");
    std::fs::write(
        &list,
        "full:H100_PCIe/perf/test_perf.py::test_perf[llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128]\n\
         full:B200/perf/test_perf.py::test_perf[llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:512,32]\n\
         llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:1,1\n",
    )
    .expect("write");
    let list = list.display().to_string();
    let c = args(&["--test-list", &list, "--test-prefix", "H100_PCIe"])
        .common
        .to_collect()
        .collect(&Registry::builtin())
        .expect("collects");
    let ids: Vec<&str> = c.tests.iter().map(|t| t.test_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "H100_PCIe/perf/test_perf.py::test_perf[llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:128,128]",
            "H100_PCIe/perf/test_perf.py::test_perf[llama_v3.1_8b-bench-pytorch-bfloat16-input_output_len:1,1]",
        ]
    );
    let c = args(&["--test-list", &list])
        .common
        .to_collect()
        .collect(&Registry::builtin())
        .expect("collects");
    assert_eq!(c.tests.len(), 3);
    assert!(c.tests[1].test_id.starts_with("B200/perf/"));
}

#[test]
fn multi_case_names_get_one_directory_and_dataset_per_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("l.txt");
    std::fs::write(
        &list,
        "llama_v3.1_8b-bench-bfloat16-bs:8+64-input_output_len:128,128+512,32\n",
    )
    .expect("write");
    let list = list.display().to_string();
    let c = args(&["--test-list", &list, "--output-dir", "/o"])
        .common
        .to_collect()
        .collect(&Registry::builtin())
        .expect("collects");
    let plan = c.tests[0].plan.as_ref().expect("planned");
    assert_eq!(plan.cases.len(), 4);
    let datasets: Vec<String> = plan
        .cases
        .iter()
        .map(|c| c.steps[0].outputs[0].display().to_string())
        .collect();
    let mut unique = datasets.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{datasets:?}");
    assert!(
        datasets[3].ends_with("/bs_64-isl_512-osl_32/synthetic_data.json"),
        "{datasets:?}"
    );
    assert_eq!(plan.setup.len(), 1, "one engine build for all cases");
    assert!(
        plan.setup[0]
            .argv
            .contains(&"--max_seq_len=640".to_string())
    );
}

#[test]
fn environment_variables_stand_in_for_flags() {
    // nextest cannot pass arguments, so every harness flag has an environment fallback.
    let a = HarnessArgs::try_parse_from(["perf"]).expect("parses");
    assert!(a.common.test_list.is_empty() || std::env::var_os("PERF_TEST_LIST").is_some());
    let help = format!(
        "{}",
        <HarnessArgs as clap::CommandFactory>::command().render_long_help()
    );
    for var in [
        "PERF_TEST_LIST",
        "PERF_TEST_PREFIX",
        "PERF_OUTPUT_DIR",
        "PERF_REGEXP",
        "PERF_DRY_RUN",
        "LLM_MODELS_ROOT",
        "TRTLLM_BENCH",
    ] {
        assert!(help.contains(var), "{var} missing from --help");
    }
}
