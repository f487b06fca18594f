//! Serving: a server started as a service, then a client measuring it. Three kinds of tests:
//!
//! - upstream `serve` names (`llama_v3.1_8b-serve-pytorch-streaming-bfloat16-...`): trtllm-serve
//!   with the extra LLM API YAML of the rules, and the cases of the name's lengths;
//! - the same grammar naming another engine's recipe (`model_configs/servers.yaml`) in the
//!   backend slot (`tiny_llama_cpp-serve-llama.cpp-streaming-float32-...`);
//! - perf-sanity ids (`perf/test_perf_sanity.py::test_e2e[...]`): upstream's configs, with the
//!   trtllm-serve argv, environment and YAML upstream's `test_perf_sanity.py` derives, one case
//!   per client config, and disaggregated serving on one node's GPUs.
//!
//! The client is perfgate's own (`perfgate serve-bench`, the default) or upstream's
//! `benchmark_serving` (`--client upstream`); both print the same `benchmark_serving` text
//! block, read by [`crate::report`]. The only module that knows trtllm-serve's flags.

mod client;
mod names;
mod sanity;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{Backend, PlanRequest, Reading, StepOutput};
use crate::config::{PerfName, Runtime};
use crate::perf_sanity::SanityDirs;
use crate::plan::{Step, TestPlan};
use crate::report::{self, ReportKind};

/// The id its steps carry.
pub const ID: &str = "serve";

/// Step labels.
pub const SERVER: &str = "server";
pub const CLIENT: &str = "client";

/// Which client measures a serving case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientChoice {
    /// `perfgate serve-bench` with the equivalent workload.
    #[default]
    Perfgate,
    /// Upstream's `python -m tensorrt_llm.serve.scripts.benchmark_serving` argv, exactly.
    Upstream,
}

/// Options of the serving backend.
#[derive(Debug, Clone)]
pub struct Options {
    pub client: ClientChoice,
    /// The perfgate whose `serve-bench` is the client: `perfgate` on PATH by default; a path
    /// pins a build (a release's binary gating a candidate server).
    pub serve_bench_cmd: Vec<String>,
    /// What stands for `python -m tensorrt_llm.serve.scripts.benchmark_serving`.
    pub upstream_client_cmd: Vec<String>,
    /// Server commands replacing a recipe's (`trtllm` also for perf-sanity's trtllm-serve).
    pub server_cmds: BTreeMap<String, Vec<String>>,
    /// Where perf-sanity configs are read.
    pub sanity_dirs: SanityDirs,
    /// TensorRT-LLM's source root (external LLM API configs, load-balancer files).
    pub llm_root: PathBuf,
    /// The host disaggregated workers bind and report (upstream: `socket.gethostname()`).
    pub hostname: String,
    /// A ready timeout for every server instead of upstream's and the recipes'.
    pub ready_timeout: Option<Duration>,
    /// Upstream's `TRTLLM_TEST_{AGG,DISAGG}_SERVER_READY_TIMEOUT` /
    /// `TRTLLM_TEST_SERVER_READY_TIMEOUT`, seconds, as read from the environment.
    pub upstream_ready_timeouts: (Option<u64>, Option<u64>),
    /// The GPU type upstream's records name (`b200`, `h200`, ..., `unsupported`).
    pub gpu_type: String,
    /// The hosts of this job, this one first: a disaggregated test that needs more GPUs than a
    /// node has places its workers across them (`--serve-nodes`, else a SLURM allocation's).
    pub nodes: Vec<String>,
    /// What starts a worker on another node of the job (`srun`; words split on spaces).
    pub srun_cmd: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            client: ClientChoice::Perfgate,
            serve_bench_cmd: vec!["perfgate".into()],
            upstream_client_cmd: vec![
                "python".into(),
                "-m".into(),
                "tensorrt_llm.serve.scripts.benchmark_serving".into(),
            ],
            server_cmds: BTreeMap::new(),
            sanity_dirs: SanityDirs::resolve(&PathBuf::from("."), None, |_| None),
            llm_root: PathBuf::from("."),
            hostname: "localhost".into(),
            ready_timeout: None,
            upstream_ready_timeouts: (None, None),
            gpu_type: "unsupported".into(),
            nodes: Vec::new(),
            srun_cmd: vec!["srun".into()],
        }
    }
}

impl Options {
    /// The command of `recipe` (a run's override, else the recipe's own).
    pub(crate) fn server_cmd(&self, recipe: &str, own: &[String]) -> Vec<String> {
        self.server_cmds
            .get(recipe)
            .cloned()
            .unwrap_or_else(|| own.to_vec())
    }
}

/// The serving backend.
pub struct Serve;

impl Backend for Serve {
    fn id(&self) -> &'static str {
        ID
    }

    fn accepts(&self, name: &PerfName) -> bool {
        match name {
            PerfName::Standard(c) => c.runtime == Runtime::Serve,
            PerfName::Sanity(_) => true,
            _ => false,
        }
    }

    fn plan(&self, request: &PlanRequest) -> TestPlan {
        match request.name {
            PerfName::Sanity(id) => sanity::plan(request, id),
            PerfName::Standard(cfg) => names::plan(request, cfg),
            _ => TestPlan::empty(request.raw, request.name.canonical(), request.dir.clone()),
        }
    }

    fn read(&self, step: &Step, output: &StepOutput) -> anyhow::Result<Reading> {
        read(step, output)
    }
}

/// The client's output: one `benchmark_serving` block. A failed request, a failure marker, no
/// block or several are problems (any failed request fails the case).
fn read(_step: &Step, output: &StepOutput) -> anyhow::Result<Reading> {
    let r = report::parse_reader(output.reader()?)?;
    let mut reading = Reading {
        warnings: r.warnings,
        ..Reading::default()
    };
    if r.kind != ReportKind::Serve {
        reading
            .problems
            .push("the client printed no `Serving Benchmark Result` block".into());
    }
    if r.reports_found > 1 {
        reading.problems.push(format!(
            "the client printed {} result blocks; one case measures one load level",
            r.reports_found
        ));
    }
    if let Some(n) = r.failed_requests.filter(|n| *n > 0) {
        reading.problems.push(format!("{n} request(s) failed"));
    }
    for marker in &r.error_markers {
        reading
            .problems
            .push(format!("the client printed `{marker}`"));
    }
    reading.missing_hint = Some("the serving benchmark's result block does not have them".into());
    reading.metrics = r.metrics;
    // No request generated a second token: there was no decoding to time, and the block's
    // zeros for TPOT and ITL are not measurements.
    let count = |k: &str| reading.metrics.get(k).copied();
    if let (Some(done), Some(out)) = (count("NUM_REQUESTS"), count("TOTAL_OUTPUT_TOKENS"))
        && done > 0.0
        && out <= done
    {
        let dropped: Vec<&str> = client::DECODE_METRICS
            .iter()
            .copied()
            .filter(|k| reading.metrics.remove(*k).is_some())
            .collect();
        if !dropped.is_empty() {
            reading.warnings.push(format!(
                "{out} output token(s) for {done} request(s): nothing was decoded, so {} are not \
                 measurements and are not kept",
                dropped.join(", ")
            ));
        }
    }
    Ok(reading)
}
