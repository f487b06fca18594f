//! The gate's side of a run: the baseline file, the history (read for each metric's series,
//! written by its sink), tonight's environment, and the judge that turns each finished case
//! into verdicts (and asks for reruns while a gated verdict is UNKNOWN).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::gate::baseline::Baselines;
use crate::gate::env::Fingerprint;
use crate::gate::evaluate::{
    self as gate_eval, BaselineRef, CaseContext, FailOn, GateMode, Reference,
};
use crate::gate::stats::GateParams;
use crate::history::{History, RunMeta, SeriesQuery};
use crate::physics::Roofline;
use crate::plan::TestPlan;
use crate::record::{CaseResult, Expectations, VerdictRecord};
use crate::results::ChangePoints;
use crate::testlist::System;

/// How results are judged.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// Which check decides.
    pub mode: GateMode,
    /// What fails a test.
    pub fail_on: FailOn,
    /// Extra repetitions of a case whose gated verdict is UNKNOWN.
    pub max_reruns: u32,
    /// The metrics that can fail a test.
    pub gated: Vec<String>,
    /// `gated` was given explicitly: it replaces the metrics a kind of case gates by default
    /// (a plan's `CasePlan::gated`) instead of adding to them.
    pub gated_explicit: bool,
    /// The history database; `None`: `<output dir>/history.sqlite`.
    pub history: Option<PathBuf>,
    /// Neither read nor write the history.
    pub no_history: bool,
    /// Directory of baseline files, one `<test-prefix>.csv` per prefix.
    pub baselines: PathBuf,
    /// One baseline file to use instead.
    pub baseline_file: Option<PathBuf>,
}

impl Default for GateOptions {
    fn default() -> Self {
        GateOptions {
            mode: GateMode::Default,
            fail_on: FailOn::Regression,
            max_reruns: 2,
            gated: gate_eval::DEFAULT_GATED
                .iter()
                .map(|s| s.to_string())
                .collect(),
            gated_explicit: false,
            history: None,
            no_history: false,
            baselines: PathBuf::from("baselines"),
            baseline_file: None,
        }
    }
}

/// What the history and `results.jsonl` both say about the run, computed once.
pub(crate) struct RunFacts {
    /// RFC 3339.
    pub started: String,
    pub fingerprint: Fingerprint,
    pub provenance: crate::provenance::Provenance,
}

/// The gate's settings and sources for a run.
pub(crate) struct GateState {
    pub opts: GateOptions,
    pub run_id: String,
    pub fingerprint: Fingerprint,
    pub baselines: Baselines,
    /// Shared with the history sink, which writes what this reads.
    pub history: Option<Arc<Mutex<History>>>,
}

impl GateState {
    pub fn open(
        opts: &GateOptions,
        output_dir: &std::path::Path,
        test_prefix: Option<&str>,
        run_id: &str,
        system: Option<&System>,
        facts: &RunFacts,
    ) -> anyhow::Result<GateState> {
        let baselines = match &opts.baseline_file {
            Some(path) => Baselines::read(path)?,
            None => {
                let path = crate::gate::baseline::baseline_path(&opts.baselines, test_prefix)?;
                let b = Baselines::read_or_empty(&path)?;
                if !path.exists() {
                    eprintln!(
                        "perfgate: no baseline file {}: metrics without history are NEW until \
                         `perfgate baseline update` writes one",
                        path.display()
                    );
                }
                b
            }
        };
        let fingerprint = facts.fingerprint.clone();
        let history = if opts.no_history {
            None
        } else {
            let path = opts
                .history
                .clone()
                .unwrap_or_else(|| crate::history::default_path(output_dir));
            let mut h = History::open(&path)?;
            h.begin_run(&RunMeta {
                run_id: run_id.to_string(),
                started: facts.started.clone(),
                host: super::hostname(),
                test_prefix: test_prefix.map(str::to_string),
                fingerprint: fingerprint.to_string(),
                env_json: serde_json::Value::Object(system.cloned().unwrap_or_default())
                    .to_string(),
                revision: facts.provenance.revision.clone(),
                branch: facts.provenance.branch.clone(),
                build_url: facts.provenance.build_url.clone(),
                imported_from: None,
            })?;
            Some(Arc::new(Mutex::new(h)))
        };
        Ok(GateState {
            opts: opts.clone(),
            run_id: run_id.to_string(),
            fingerprint,
            baselines,
            history,
        })
    }

    /// One line for the summary: the mode, the baseline file, the history.
    pub fn describe(&self) -> String {
        let mode = match self.opts.mode {
            GateMode::Default => "default gate",
            GateMode::Upstream => "upstream's isclose check",
        };
        format!(
            "{mode}, baseline {}, history {}",
            self.baselines.path().display(),
            if self.history.is_some() { "on" } else { "off" }
        )
    }

    /// What one metric is compared with. A history that cannot be read is reported and
    /// left out: the stored baseline still gives a verdict.
    fn lookup(&self, perf_case_name: &str, step: &str, metric: &str) -> Reference {
        let baseline = self.baselines.get(perf_case_name).and_then(|row| {
            Some(BaselineRef {
                stored: row.stored()?,
                fingerprint: row.fingerprint.clone(),
            })
        });
        let history = match (&self.history, self.opts.mode) {
            (Some(h), GateMode::Default) => h
                .lock()
                .map_err(|_| anyhow::anyhow!("history poisoned"))
                .and_then(|h| {
                    Ok(h.series(&SeriesQuery {
                        perf_case_name,
                        step,
                        metric,
                        fingerprint: Some(&self.fingerprint.to_string()),
                        exclude_run: &self.run_id,
                        max_nights: GateParams::default().max_history,
                    })?)
                })
                .unwrap_or_else(|e| {
                    eprintln!("perfgate: {e:#}; comparing {perf_case_name} without history");
                    Vec::new()
                }),
            _ => Vec::new(),
        };
        Reference { baseline, history }
    }

    /// Ends the run in the history, then: the "Change points" section of the report for
    /// tonight's FAIL verdicts, and the terminal's lines for the confirmed ones (with their
    /// blame ranges); `None` without a history or without a FAIL.
    pub fn finish(&self) -> Option<ChangePoints> {
        let h = self.history.as_ref()?;
        let mut h = match h.lock() {
            Ok(h) => h,
            Err(_) => {
                eprintln!("perfgate: history poisoned");
                return None;
            }
        };
        if let Err(e) = h.finish_run(
            &self.run_id,
            &crate::record::rfc3339(std::time::SystemTime::now()),
        ) {
            eprintln!("perfgate: {e}");
        }
        match change_points(&h, &self.run_id) {
            Ok(cp) => cp,
            Err(e) => {
                eprintln!("perfgate: change points: {e:#}");
                None
            }
        }
    }
}

fn change_points(h: &History, run_id: &str) -> anyhow::Result<Option<ChangePoints>> {
    use crate::history::regressions;
    let Some(run) = h.run(run_id)? else {
        return Ok(None);
    };
    let rows = regressions::change_rows(h, &run, false)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let markdown = format!(
        "### Change points\n\nTonight's regressions against the nights before them \
         (`perfgate history changes` after later nights confirms or clears the pending \
         ones):\n\n{}",
        regressions::render_markdown(&rows, false)
    );
    let mut terminal = String::new();
    for r in rows.iter().filter(|r| regressions::is_confirmed(r)) {
        if let Some(b) = &r.blame {
            terminal.push_str(&format!(
                "\nconfirmed regression: {} {} {}: last good {} -> first bad {}",
                r.perf_case_name,
                r.step,
                r.metric,
                b.last_good
                    .as_ref()
                    .map(regressions::run_ref)
                    .unwrap_or_else(|| "-".into()),
                regressions::run_ref(&b.first_bad)
            ));
        }
    }
    if !terminal.is_empty() {
        terminal.push('\n');
    }
    Ok(Some(ChangePoints { markdown, terminal }))
}

/// A case's label, first step and measurement count: the rerun question and the finished case
/// ask about the same measurements, and each evaluation reads the history, so the last
/// verdicts are kept under this key.
type JudgeKey = (String, Option<&'static str>, usize);

/// What the plan says of one case: its label, each step's expectations, its physical limits,
/// the metrics it gates by default.
type CaseFacts = (
    String,
    Vec<(&'static str, Expectations)>,
    Option<Roofline>,
    Vec<&'static str>,
);

/// The gate for one test: each case's expectations and physical limits (from its plan), and
/// the verdicts of its finished cases.
pub(crate) struct CaseJudge<'a> {
    gate: Option<&'a GateState>,
    repeat: u32,
    cases: Vec<CaseFacts>,
    last: std::cell::RefCell<Option<(JudgeKey, Vec<VerdictRecord>)>>,
}

impl<'a> CaseJudge<'a> {
    /// `rooflines`: the physical limits of the test's cases, when the GPU type is known.
    pub fn new(
        plan: &TestPlan,
        rooflines: &[Roofline],
        gate: Option<&'a GateState>,
        repeat: u32,
    ) -> CaseJudge<'a> {
        let cases = plan
            .cases
            .iter()
            .map(|cp| {
                let roof = cp.roofline.clone().or_else(|| {
                    rooflines
                        .iter()
                        .find(|r| r.case.label == cp.spec.label)
                        .cloned()
                });
                (
                    cp.spec.label.clone(),
                    cp.expectations(),
                    roof,
                    cp.gated.clone(),
                )
            })
            .collect();
        CaseJudge {
            gate,
            repeat,
            cases,
            last: std::cell::RefCell::default(),
        }
    }

    pub fn judge(&self, case: &CaseResult) -> Vec<VerdictRecord> {
        let key = (
            case.id.label.clone(),
            case.measurements.first().map(|m| m.step),
            case.measurements.len(),
        );
        if let Some((last, records)) = &*self.last.borrow()
            && *last == key
        {
            return records.clone();
        }
        let records = self.evaluate(case);
        *self.last.borrow_mut() = Some((key, records.clone()));
        records
    }

    fn evaluate(&self, case: &CaseResult) -> Vec<VerdictRecord> {
        let Some(gate) = self.gate else {
            return Vec::new();
        };
        let (expect, roofline, case_gated) = self
            .cases
            .iter()
            .find(|(label, _, _, _)| *label == case.id.label)
            .map(|(_, e, r, g)| (e.as_slice(), r.as_ref(), g.as_slice()))
            .unwrap_or_default();
        let mut gated = gate.opts.gated.clone();
        if !gate.opts.gated_explicit {
            for m in case_gated {
                if !gated.iter().any(|g| g == m) {
                    gated.push(m.to_string());
                }
            }
        }
        let last_rep = case
            .measurements
            .iter()
            .map(|m| m.repetition)
            .max()
            .unwrap_or(0);
        let cctx = CaseContext {
            run_id: &gate.run_id,
            mode: gate.opts.mode,
            gated: &gated,
            fingerprint: &gate.fingerprint,
            expect,
            roofline,
            reruns: last_rep.saturating_sub(self.repeat),
        };
        gate_eval::evaluate(case, &cctx, &mut |key, step, metric| {
            gate.lookup(key, step, metric)
        })
    }

    /// Another repetition, when a gated verdict is UNKNOWN and the budget lasts.
    pub fn wants_rerun(&self, case: &CaseResult) -> bool {
        let Some(gate) = self.gate else {
            return false;
        };
        let records = self.judge(case);
        let done = records.first().map_or(0, |r| r.reruns);
        gate_eval::wants_rerun(&records, done, gate.opts.max_reruns)
    }
}
