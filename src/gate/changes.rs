//! Confirming or clearing a provisional regression with change-point detection, and the blame
//! range of each change: the last good run and the first bad one. Plain data in (one series of
//! nights, as `perfgate history changes` reads it from the history), plain data out.
//!
//! A FAIL verdict is *provisional*: one night's repetitions against the history. With the
//! nights around it, [`assess`] calls it
//! - **CONFIRMED** when [`cpd::change_points`] finds a change in the worse direction at or
//!   before the run's night (the run lies in the new level's segment), or when the run and the
//!   night after it are both bad (a FAIL verdict, or worse than the level before by more than
//!   [`NOISE_SIGMAS`] standard deviations of the nights before): a regression that persists
//!   two nights is taken as real before the detector has the [`CpdParams::min_segment`]
//!   nights it needs;
//! - **CLEARED** when neither holds and the last [`CLEAR_NIGHTS`] nights after the run are back
//!   at the old level (not bad by the same test): a blip;
//! - **PENDING** otherwise: too few nights after the run to tell.

use serde::Serialize;

use super::cpd::{self, ChangePoint, CpdParams};
use crate::record::metric::Direction;

/// Nights after a provisional regression that must be back at the old level to clear it.
pub const CLEAR_NIGHTS: usize = 2;
/// A night is "bad" when it is worse than the level before by more than this many standard
/// deviations of the nights before (or its verdict is FAIL).
pub const NOISE_SIGMAS: f64 = 3.0;
/// Nights before the run that define the old level and its noise (at most).
pub const LEVEL_NIGHTS: usize = 20;

/// One night of a series: the run and the median of its valid repetitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub run_id: String,
    pub night: i64,
    /// When the run began (RFC 3339).
    pub started: String,
    pub revision: Option<String>,
    /// The median of the night's valid repetitions.
    pub value: f64,
    /// Valid repetitions behind `value`.
    pub reps: usize,
    /// The night's stored verdict for the series (`PASS`, `FAIL`, ...), if any.
    pub verdict: Option<String>,
}

/// A run, as a blame range names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRef {
    pub run_id: String,
    pub night: i64,
    pub revision: Option<String>,
    /// When the run began (RFC 3339).
    pub started: String,
    pub value: f64,
}

impl RunRef {
    fn of(p: &SeriesPoint) -> RunRef {
        RunRef {
            run_id: p.run_id.clone(),
            night: p.night,
            revision: p.revision.clone(),
            started: p.started.clone(),
            value: p.value,
        }
    }
}

/// The change between two neighbouring runs: the last good one and the first bad one. The
/// commits in between (`git log last_good.revision..first_bad.revision`) are the suspects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlameRange {
    /// `None` when the change is at the first night of the series.
    pub last_good: Option<RunRef>,
    pub first_bad: RunRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Confirmed,
    Cleared,
    Pending,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Confirmed => "CONFIRMED",
            Status::Cleared => "CLEARED",
            Status::Pending => "PENDING",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`assess`] concluded about one provisional regression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub status: Status,
    /// The detected change point, when the detector found it.
    pub change_point: Option<ChangePoint>,
    /// For CONFIRMED: where the level changed.
    pub blame: Option<BlameRange>,
    /// Nights in the series after the run's.
    pub nights_after: usize,
    /// One sentence on why.
    pub explanation: String,
}

/// Whether a relative change (in %) is a move in the worse direction.
pub fn is_worse(change_pct: f64, direction: Direction) -> bool {
    match direction {
        Direction::HigherIsBetter => change_pct < 0.0,
        Direction::LowerIsBetter => change_pct > 0.0,
    }
}

/// Confirms, clears or leaves pending the provisional regression of the run at `run_night`.
/// `points` is the series, oldest night first (as the history store gives it).
pub fn assess(
    points: &[SeriesPoint],
    run_night: i64,
    direction: Direction,
    params: &CpdParams,
) -> Assessment {
    let Some(at) = points.iter().position(|p| p.night == run_night) else {
        return Assessment {
            status: Status::Pending,
            change_point: None,
            blame: None,
            nights_after: 0,
            explanation: "the run has no valid measurement of this series (same environment) to \
                          place in it"
                .into(),
        };
    };
    let nights_after = points.len() - at - 1;
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    let cps = cpd::change_points(&values, params);
    // The level the run belongs to begins at the last change point at or before it.
    if let Some(cp) = cps.iter().rev().find(|c| c.index <= at)
        && is_worse(cp.change_pct, direction)
    {
        return Assessment {
            status: Status::Confirmed,
            blame: Some(blame_at(points, cp.index)),
            explanation: format!(
                "a change point at night {} ({:+.2}%, p = {:.2e}) starts the level this run is in",
                points[cp.index].night, cp.change_pct, cp.pvalue
            ),
            change_point: Some(cp.clone()),
            nights_after,
        };
    }
    let bad = badness(points, at, direction);
    if at + 1 < points.len() && bad(at) && bad(at + 1) {
        let mut first = at;
        while first > 0 && bad(first - 1) {
            first -= 1;
        }
        return Assessment {
            status: Status::Confirmed,
            change_point: None,
            blame: Some(blame_at(points, first)),
            nights_after,
            explanation: format!(
                "the regression persisted {} consecutive nights (too few after it for the \
                 change-point test)",
                (first..points.len()).take_while(|&i| bad(i)).count()
            ),
        };
    }
    if nights_after >= CLEAR_NIGHTS && (points.len() - CLEAR_NIGHTS..points.len()).all(|i| !bad(i))
    {
        return Assessment {
            status: Status::Cleared,
            change_point: None,
            blame: None,
            nights_after,
            explanation: format!(
                "no change point, and the last {CLEAR_NIGHTS} nights are back at the old level"
            ),
        };
    }
    Assessment {
        status: Status::Pending,
        change_point: None,
        blame: None,
        nights_after,
        explanation: format!(
            "{nights_after} night(s) after the run: not enough to confirm or clear it"
        ),
    }
}

/// `bad(i)`: night i failed, or is worse than the level before the run beyond the noise.
fn badness(points: &[SeriesPoint], at: usize, direction: Direction) -> impl Fn(usize) -> bool {
    let before: Vec<f64> = points[at.saturating_sub(LEVEL_NIGHTS)..at]
        .iter()
        .map(|p| p.value)
        .collect();
    // Fewer than 3 nights give no usable spread: then only verdicts count.
    let level = (before.len() >= 3).then(|| {
        let m = before.iter().sum::<f64>() / before.len() as f64;
        let var = before.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (before.len() - 1) as f64;
        (m, var.sqrt())
    });
    let values: Vec<(f64, bool)> = points
        .iter()
        .map(|p| (p.value, p.verdict.as_deref() == Some("FAIL")))
        .collect();
    move |i: usize| {
        let Some(&(v, failed)) = values.get(i) else {
            return false;
        };
        failed
            || level.is_some_and(|(m, sd)| {
                let worse_by = match direction {
                    Direction::HigherIsBetter => m - v,
                    Direction::LowerIsBetter => v - m,
                };
                worse_by > NOISE_SIGMAS * sd && worse_by > 1e-9 * m.abs()
            })
    }
}

fn blame_at(points: &[SeriesPoint], first_bad: usize) -> BlameRange {
    BlameRange {
        last_good: first_bad
            .checked_sub(1)
            .and_then(|i| points.get(i))
            .map(RunRef::of),
        first_bad: RunRef::of(&points[first_bad]),
    }
}

/// Every change point of a series with its blame range (the `--all` listing): improvements
/// and regressions alike.
pub fn all_changes(
    points: &[SeriesPoint],
    direction: Direction,
    params: &CpdParams,
) -> Vec<(ChangePoint, bool, BlameRange)> {
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    cpd::change_points(&values, params)
        .into_iter()
        .filter(|c| c.index < points.len())
        .map(|c| {
            let worse = is_worse(c.change_pct, direction);
            let blame = blame_at(points, c.index);
            (c, worse, blame)
        })
        .collect()
}
