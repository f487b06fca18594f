//! The history as a sink of a run: every finished case's measurements, verdicts and (serving
//! cases) upstream record, and how long each test took (what `--shard` balances by). The run's row was begun when the gate
//! opened the history; the gate reads the same store for each metric's series.

use std::sync::{Arc, Mutex};

use super::{CaseRecordRow, History, MeasurementRow};
use crate::record::{CaseResult, VerdictRecord};
use crate::results::{Sink, TestRecord};

pub struct HistorySink {
    history: Arc<Mutex<History>>,
    run_id: String,
}

impl HistorySink {
    pub fn new(history: Arc<Mutex<History>>, run_id: &str) -> HistorySink {
        HistorySink {
            history,
            run_id: run_id.to_string(),
        }
    }
}

impl Sink for HistorySink {
    fn what(&self) -> &'static str {
        "the history"
    }

    fn case_finished(
        &mut self,
        case: &CaseResult,
        verdicts: &[VerdictRecord],
    ) -> anyhow::Result<()> {
        let rows: Vec<MeasurementRow> = case
            .measurements
            .iter()
            .flat_map(|m| {
                m.metrics.iter().map(move |(metric, value)| MeasurementRow {
                    test_id: case.id.test_id.clone(),
                    perf_case_name: case.id.perf_case_name(metric),
                    network_name: case.id.label.clone(),
                    case: case.id.case.clone(),
                    step: m.step.to_string(),
                    metric: metric.clone(),
                    repetition: m.repetition,
                    value: *value,
                    state: m.state,
                })
            })
            .collect();
        let mut h = self
            .history
            .lock()
            .map_err(|_| anyhow::anyhow!("history poisoned"))?;
        h.record_measurements(&self.run_id, &rows)?;
        h.record_verdicts(verdicts)?;
        if let Some(record) = &case.upstream_record {
            h.record_case_records(
                &self.run_id,
                &[CaseRecordRow {
                    test_id: case.id.test_id.clone(),
                    network_name: case.id.label.clone(),
                    case: case.id.case.clone(),
                    record: record.clone(),
                }],
            )?;
        }
        Ok(())
    }

    /// A duration that cannot be stored is reported, not a failure: only `--shard`'s
    /// balance needs it.
    fn test_finished(&mut self, test: &TestRecord) -> anyhow::Result<()> {
        if test.cases.is_empty() {
            return Ok(());
        }
        let stored = self
            .history
            .lock()
            .map_err(|_| anyhow::anyhow!("history poisoned"))
            .and_then(|mut h| {
                Ok(h.record_duration(&self.run_id, &test.test_id, test.duration.as_secs_f64())?)
            });
        if let Err(e) = stored {
            eprintln!("perfgate: {e:#}");
        }
        Ok(())
    }
}
