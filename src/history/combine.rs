//! One run spread over several history files (the shards of a SLURM job, each with the
//! history of its own output directory) brought into one history.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{History, HistoryError, StoredRun, unknown_run};

/// What [`History::merge_run`] copied.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MergedRun {
    pub sources: Vec<PathBuf>,
    pub measurements: usize,
    pub verdicts: usize,
    pub durations: usize,
    /// Serving cases' upstream records.
    pub case_records: usize,
}

impl History {
    /// Copies run `run_id` from each of `sources` (existing histories) into this one: the
    /// run's description (the earliest start of them; the latest end when every source
    /// recorded one), every measurement, verdict, test duration and serving case's upstream
    /// record. The same rows copied
    /// twice replace each other, so merging again changes nothing.
    pub fn merge_run(
        &mut self,
        sources: &[&Path],
        run_id: &str,
    ) -> Result<MergedRun, HistoryError> {
        let mut opened: Vec<(History, StoredRun)> = Vec::with_capacity(sources.len());
        for path in sources {
            let h = History::open_existing(path)?;
            let run = h.run(run_id)?.ok_or_else(|| unknown_run(path, run_id))?;
            opened.push((h, run));
        }
        let mut summary = MergedRun::default();
        let Some(first) = opened
            .iter()
            .min_by(|a, b| a.1.meta.started.cmp(&b.1.meta.started))
        else {
            return Ok(summary);
        };
        self.begin_run(&first.1.meta)?;
        for (h, _) in &opened {
            let rows = h.measurements(run_id)?;
            self.record_measurements(run_id, &rows)?;
            let verdicts = h.verdicts(run_id)?;
            self.record_verdicts(&verdicts)?;
            let durations = h.durations(run_id)?;
            for (test_id, seconds) in &durations {
                self.record_duration(run_id, test_id, *seconds)?;
            }
            let records = h.case_records(run_id)?;
            self.record_case_records(run_id, &records)?;
            summary.case_records += records.len();
            summary.sources.push(h.path().to_path_buf());
            summary.measurements += rows.len();
            summary.verdicts += verdicts.len();
            summary.durations += durations.len();
        }
        let ends: Option<Vec<&String>> = opened.iter().map(|(_, r)| r.ended.as_ref()).collect();
        if let Some(latest) = ends.and_then(|e| e.into_iter().max()) {
            self.finish_run(run_id, latest)?;
        }
        Ok(summary)
    }
}
