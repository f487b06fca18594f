//! Real run-to-run noise for the gate's evaluation (`perfgate dev bench-gate --noise FILE`).
//!
//! The simulated table (the `sim` module, which uses this one) draws log-normal noise with a
//! few synthetic outliers. Real engines are not that tidy: the first repetition after a server
//! start is slow (warm-up), a machine runs a few percent faster than its neighbour, a clock dip
//! makes one repetition bimodal. This module reads repetitions measured on real machines and
//! lets the same simulation draw its noise from them instead.
//!
//! **The files.** Either CSV with a header row `session,value` (more columns are allowed and
//! ignored; `#` lines are comments, for how the series was measured), or `perfgate
//! serve-bench --save-result` JSON lines (`*.jsonl`: the whole file is one session named after
//! the file, one repetition per line, the value under a key such as `output_throughput`). A
//! *session* is one machine (or one server start) measured repeatedly, in the order the
//! repetitions ran; sessions measured on two machines carry the machine-to-machine variation.
//!
//! **The resampling** (a circular block bootstrap). Every value becomes a log residual
//! `ln(value) − mean(ln(all values))`, so a session that ran faster keeps its offset. A
//! simulated night picks a session at random and a random starting repetition in it, and takes
//! that night's repetitions (and its reruns) as the *consecutive* residuals from there,
//! wrapping around at the session's end. Consecutive draws keep what independent draws would
//! destroy: a slow first repetition stays first, a drifting stretch stays together.
//! Night-to-night drift (the simulation's random walk) and the injected steps come on top.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::textutil;

use super::rng::Rng;
use super::stats::{mean, median, sd};

/// The repetitions of one or more sessions, as read from a file.
#[derive(Debug, Clone)]
pub struct NoiseSeries {
    /// Where it came from (for the report).
    pub source: String,
    /// `(session, values in run order)`, in first-seen order.
    pub sessions: Vec<(String, Vec<f64>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum NoiseError {
    #[error(transparent)]
    Read(#[from] textutil::TextFileError),
    #[error("{}:{line}: {what}", path.display())]
    Bad {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("{}: {what}", path.display())]
    Series { path: PathBuf, what: String },
}

/// The fewest repetitions a session needs: a night of 5 repetitions plus a rerun must not
/// wrap onto itself.
pub const MIN_SESSION_LEN: usize = 10;

impl NoiseSeries {
    /// A CSV file, or a `*.jsonl` file of save-result lines read at `key` (`keep_failed`: see
    /// [`NoiseSeries::parse_jsonl`]).
    pub fn load(path: &Path, key: &str, keep_failed: bool) -> Result<NoiseSeries, NoiseError> {
        let text = textutil::read_text(path)?;
        if path.extension().is_some_and(|e| e == "jsonl") {
            Self::parse_jsonl(&text, path, key, keep_failed)
        } else {
            Self::parse(&text, path)
        }
    }

    /// `serve-bench --save-result` lines: one session, the value of `key` on each line. A line
    /// with failed requests is not a measurement of the same workload and is skipped (the
    /// source says how many were), unless `keep_failed`: for a series whose every repetition
    /// lost the same requests to one fault, the repetitions still measure one workload.
    pub fn parse_jsonl(
        text: &str,
        path: &Path,
        key: &str,
        keep_failed: bool,
    ) -> Result<NoiseSeries, NoiseError> {
        let mut values = Vec::new();
        let mut skipped = 0;
        let mut kept = 0;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |what: String| NoiseError::Bad {
                path: path.to_path_buf(),
                line: i + 1,
                what,
            };
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| bad(format!("expected a JSON object per line: {e}")))?;
            if v.get("failed").and_then(serde_json::Value::as_u64) > Some(0) {
                if !keep_failed {
                    skipped += 1;
                    continue;
                }
                kept += 1;
            }
            let x = v
                .get(key)
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| {
                    bad(format!(
                        "expected a number under `{key}` (a serve-bench --save-result line)"
                    ))
                })?;
            if !(x.is_finite() && x > 0.0) {
                return Err(bad(format!("expected a positive `{key}`, found {x}")));
            }
            values.push(x);
        }
        let name = path
            .file_stem()
            .map_or_else(|| "session".into(), |s| s.to_string_lossy().into_owned());
        let mut series = Self::checked(path, vec![(name, values)])?;
        if skipped > 0 {
            series.source = format!(
                "{} ({skipped} repetition(s) with failed requests skipped)",
                series.source
            );
        }
        if kept > 0 {
            series.source = format!(
                "{} ({kept} repetition(s) with failed requests kept)",
                series.source
            );
        }
        Ok(series)
    }

    pub fn parse(text: &str, path: &Path) -> Result<NoiseSeries, NoiseError> {
        let bad = |line: usize, what: String| NoiseError::Bad {
            path: path.to_path_buf(),
            line,
            what,
        };
        let mut columns: Option<(usize, usize)> = None;
        let mut sessions: Vec<(String, Vec<f64>)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            let Some((s_col, v_col)) = columns else {
                let find = |name: &str| cells.iter().position(|c| c.eq_ignore_ascii_case(name));
                match (find("session"), find("value")) {
                    (Some(s), Some(v)) => columns = Some((s, v)),
                    _ => {
                        return Err(bad(
                            line_no,
                            format!(
                                "expected a header row with the columns `session` and `value`, found `{line}`"
                            ),
                        ));
                    }
                }
                continue;
            };
            let (Some(session), Some(value)) = (cells.get(s_col), cells.get(v_col)) else {
                return Err(bad(
                    line_no,
                    format!(
                        "expected {} columns, found {}",
                        s_col.max(v_col) + 1,
                        cells.len()
                    ),
                ));
            };
            let value: f64 = value.parse().map_err(|_| {
                bad(
                    line_no,
                    format!("expected a number in column `value`, found `{value}`"),
                )
            })?;
            if !(value.is_finite() && value > 0.0) {
                return Err(bad(
                    line_no,
                    format!("expected a positive measurement, found {value}"),
                ));
            }
            if session.is_empty() {
                return Err(bad(line_no, "expected a session name, found none".into()));
            }
            match sessions.iter_mut().find(|(name, _)| name == session) {
                Some((_, values)) => values.push(value),
                None => sessions.push(((*session).to_string(), vec![value])),
            }
        }
        let series_err = |what: String| NoiseError::Series {
            path: path.to_path_buf(),
            what,
        };
        if columns.is_none() {
            return Err(series_err(
                "no header row `session,value` and no values".into(),
            ));
        }
        Self::checked(path, sessions)
    }

    fn checked(path: &Path, sessions: Vec<(String, Vec<f64>)>) -> Result<NoiseSeries, NoiseError> {
        let series_err = |what: String| NoiseError::Series {
            path: path.to_path_buf(),
            what,
        };
        if sessions.iter().all(|(_, v)| v.is_empty()) {
            return Err(series_err("no values".into()));
        }
        if let Some((name, values)) = sessions.iter().find(|(_, v)| v.len() < MIN_SESSION_LEN) {
            return Err(series_err(format!(
                "session `{name}` has {} repetitions; a session needs at least {MIN_SESSION_LEN}",
                values.len()
            )));
        }
        Ok(NoiseSeries {
            source: path.display().to_string(),
            sessions,
        })
    }

    /// Several files as one series (their sessions side by side); a session name that repeats
    /// across files is kept apart by the file's name.
    pub fn combine(list: Vec<NoiseSeries>) -> Option<NoiseSeries> {
        let mut iter = list.into_iter();
        let mut out = iter.next()?;
        for next in iter {
            out.source = format!("{} + {}", out.source, next.source);
            for (name, values) in next.sessions {
                let name = if out.sessions.iter().any(|(n, _)| *n == name) {
                    format!("{name} ({})", next.source)
                } else {
                    name
                };
                out.sessions.push((name, values));
            }
        }
        Some(out)
    }

    pub fn len(&self) -> usize {
        self.sessions.iter().map(|(_, v)| v.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the series looks like, in the terms the gate's model cares about.
    pub fn describe(&self) -> NoiseShape {
        let logs: Vec<Vec<f64>> = self
            .sessions
            .iter()
            .map(|(_, v)| v.iter().map(|x| x.ln()).collect())
            .collect();
        let all: Vec<f64> = logs.iter().flatten().copied().collect();
        let grand = mean(&all);
        // Within: the pooled SD of each session around its own mean.
        let (mut ss, mut dof) = (0.0, 0usize);
        for s in &logs {
            let m = mean(s);
            ss += s.iter().map(|x| (x - m).powi(2)).sum::<f64>();
            dof += s.len() - 1;
        }
        let within = (ss / dof.max(1) as f64).sqrt();
        let means: Vec<f64> = logs.iter().map(|s| mean(s)).collect();
        let between = if means.len() > 1 {
            sd(&means, mean(&means))
        } else {
            0.0
        };
        // Outliers: beyond 4 robust scales (1.4826·MAD) of the session's median, as the gate
        // screens them.
        let mut outliers = 0;
        let mut warmup = Vec::new();
        let mut lag1 = Vec::new();
        for s in &logs {
            let med = median(s);
            let mad = 1.4826 * median(&s.iter().map(|x| (x - med).abs()).collect::<Vec<_>>());
            let scale = mad.max(1e-9);
            outliers += s
                .iter()
                .filter(|x| ((*x - med) / scale).abs() > 4.0)
                .count();
            let rest = mean(&s[1..]);
            warmup.push(s[0] - rest);
            lag1.push(autocorrelation(s));
        }
        NoiseShape {
            sessions: logs.len(),
            values: all.len(),
            within_cv: within,
            between_cv: between,
            range: (
                all.iter().copied().fold(f64::INFINITY, f64::min) - grand,
                all.iter().copied().fold(f64::NEG_INFINITY, f64::max) - grand,
            ),
            outliers,
            first_vs_rest: mean(&warmup),
            lag1: mean(&lag1),
            bimodality: bimodality_coefficient(&all),
        }
    }
}

/// The shape of a real series (all in log units, i.e. ≈ relative).
#[derive(Debug, Clone, Copy)]
pub struct NoiseShape {
    pub sessions: usize,
    pub values: usize,
    /// Pooled within-session SD of ln(value).
    pub within_cv: f64,
    /// SD of the session means (machine to machine); 0 with one session.
    pub between_cv: f64,
    /// Lowest and highest value relative to the grand mean (log units; shown as %).
    pub range: (f64, f64),
    /// Values beyond 4 robust scales of their session's median.
    pub outliers: usize,
    /// The first repetition of a session against the rest (negative: slower, for a
    /// throughput), averaged over sessions (log units; shown as %): warm-up.
    pub first_vs_rest: f64,
    /// Lag-1 autocorrelation within sessions (drift shows as a large positive value).
    pub lag1: f64,
    /// Sarle's bimodality coefficient (> 0.555 suggests two modes; a normal gives 1/3).
    pub bimodality: f64,
}

impl fmt::Display for NoiseShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} values in {} session(s): within-session CV {:.2}%, between sessions {:.2}%, \
             range {:+.1}%..{:+.1}%, {} outlier(s) beyond 4 robust scales, first repetition \
             {:+.2}% against the rest, lag-1 autocorrelation {:.2}, bimodality coefficient {:.2}",
            self.values,
            self.sessions,
            self.within_cv * 100.0,
            self.between_cv * 100.0,
            self.range.0.exp_m1() * 100.0,
            self.range.1.exp_m1() * 100.0,
            self.outliers,
            self.first_vs_rest.exp_m1() * 100.0,
            self.lag1,
            self.bimodality
        )
    }
}

/// The residuals the simulation draws from.
#[derive(Debug, Clone)]
pub struct Resampler {
    sessions: Vec<Vec<f64>>,
}

/// Where a simulated night reads its next residual.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    session: usize,
    pos: usize,
}

impl Resampler {
    pub fn new(series: &NoiseSeries) -> Resampler {
        let all: Vec<f64> = series
            .sessions
            .iter()
            .flat_map(|(_, v)| v.iter().map(|x| x.ln()))
            .collect();
        let grand = mean(&all);
        Resampler {
            sessions: series
                .sessions
                .iter()
                .map(|(_, v)| v.iter().map(|x| x.ln() - grand).collect())
                .collect(),
        }
    }

    /// A night: a random session, a random first repetition.
    pub fn night(&self, rng: &mut Rng) -> Cursor {
        let session = rng.below(self.sessions.len() as u64) as usize;
        let pos = rng.below(self.sessions[session].len() as u64) as usize;
        Cursor { session, pos }
    }

    /// The next residual of that night (wrapping at the session's end).
    pub fn next(&self, c: &mut Cursor) -> f64 {
        let s = &self.sessions[c.session];
        let x = s[c.pos % s.len()];
        c.pos = (c.pos + 1) % s.len();
        x
    }
}

fn autocorrelation(v: &[f64]) -> f64 {
    let m = mean(v);
    let den: f64 = v.iter().map(|x| (x - m).powi(2)).sum();
    if den <= 0.0 {
        return 0.0;
    }
    let num: f64 = v.windows(2).map(|w| (w[0] - m) * (w[1] - m)).sum();
    num / den
}

/// Sarle's bimodality coefficient with the small-sample corrections: (g² + 1) / (k + 3(n−1)² /
/// ((n−2)(n−3))), g the sample skewness and k the excess kurtosis.
fn bimodality_coefficient(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    if n < 4.0 {
        return f64::NAN;
    }
    let m = mean(v);
    let m2 = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    if m2 <= 0.0 {
        return f64::NAN;
    }
    let m3 = v.iter().map(|x| (x - m).powi(3)).sum::<f64>() / n;
    let m4 = v.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n;
    let g1 = m3 / m2.powf(1.5);
    let g = g1 * (n * (n - 1.0)).sqrt() / (n - 2.0);
    let k = (n - 1.0) / ((n - 2.0) * (n - 3.0)) * ((n + 1.0) * (m4 / (m2 * m2) - 3.0) + 6.0);
    (g * g + 1.0) / (k + 3.0 * (n - 1.0).powi(2) / ((n - 2.0) * (n - 3.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NoiseSeries, NoiseError> {
        NoiseSeries::parse(text, Path::new("noise.csv"))
    }

    fn rows(session: &str, values: &[f64]) -> String {
        values
            .iter()
            .map(|v| format!("{session},{v}\n"))
            .collect::<String>()
    }

    #[test]
    fn reads_sessions_in_order_with_comments_and_extra_columns() {
        let text = format!(
            "# measured somewhere\nrepetition,session,value\n{}{}",
            (1..=10)
                .map(|i| format!("{i},a,{}\n", 100 + i))
                .collect::<String>(),
            (1..=10)
                .map(|i| format!("{i},b,{}\n", 200 + i))
                .collect::<String>()
        );
        let s = parse(&text).expect("parses");
        assert_eq!(s.sessions.len(), 2);
        assert_eq!(s.sessions[0].0, "a");
        assert_eq!(s.sessions[0].1[0], 101.0);
        assert_eq!(s.sessions[1].1[9], 210.0);
        assert_eq!(s.len(), 20);
    }

    #[test]
    fn reads_save_result_lines_as_one_session() {
        let line = |x: f64| format!("{{\"duration\": 1.0, \"output_throughput\": {x}}}\n");
        let mut text: String = (0..12).map(|i| line(500.0 + i as f64)).collect();
        text.push_str("{\"failed\": 2, \"output_throughput\": 9.0}\n");
        let s = NoiseSeries::parse_jsonl(
            &text,
            Path::new("dir/h100-a.jsonl"),
            "output_throughput",
            false,
        )
        .expect("parses");
        assert_eq!(s.sessions.len(), 1);
        assert_eq!(s.sessions[0].0, "h100-a");
        assert_eq!(s.sessions[0].1[11], 511.0);
        assert_eq!(s.len(), 12);
        assert!(
            s.source
                .ends_with("(1 repetition(s) with failed requests skipped)")
        );
        // Kept when asked: every repetition of a series lost the same requests to one fault.
        let kept = NoiseSeries::parse_jsonl(&text, Path::new("a.jsonl"), "output_throughput", true)
            .expect("parses");
        assert_eq!(kept.len(), 13);
        assert_eq!(kept.sessions[0].1[12], 9.0);
        assert!(
            kept.source
                .ends_with("(1 repetition(s) with failed requests kept)")
        );
        let e = NoiseSeries::parse_jsonl(&text, Path::new("a.jsonl"), "request_goodput", false)
            .expect_err("missing key");
        assert!(
            e.to_string()
                .starts_with("a.jsonl:1: expected a number under `request_goodput`"),
            "{e}"
        );
    }

    #[test]
    fn bad_input_names_the_file_line_and_what_was_expected() {
        let e = parse("session,value\na,1\na,x\n").expect_err("bad number");
        assert_eq!(
            e.to_string(),
            "noise.csv:3: expected a number in column `value`, found `x`"
        );
        let e = parse("sess,val\n").expect_err("no header");
        assert!(
            e.to_string()
                .starts_with("noise.csv:1: expected a header row")
        );
        let e = parse("session,value\na,-3\n").expect_err("negative");
        assert!(e.to_string().contains("noise.csv:2: expected a positive"));
        let e = parse(&format!("session,value\n{}", rows("a", &[1.0; 3]))).expect_err("short");
        assert!(
            e.to_string().contains("session `a` has 3 repetitions"),
            "{e}"
        );
        let e = parse("# only a comment\n").expect_err("empty");
        assert!(e.to_string().contains("no header row"), "{e}");
    }

    #[test]
    fn the_shape_finds_warm_up_offsets_and_outliers() {
        // Session a: a slow first repetition, then quiet; session b: 10% faster, one outlier.
        let mut a = vec![80.0];
        a.extend((0..19).map(|i| 100.0 + (i % 3) as f64 * 0.5));
        let mut b: Vec<f64> = (0..20).map(|i| 110.0 + (i % 2) as f64 * 0.5).collect();
        b[7] = 60.0;
        let text = format!("session,value\n{}{}", rows("a", &a), rows("b", &b));
        let shape = parse(&text).expect("parses").describe();
        assert_eq!(shape.sessions, 2);
        assert_eq!(shape.values, 40);
        assert_eq!(shape.outliers, 2, "{shape}");
        assert!(shape.first_vs_rest < -0.08, "{shape}");
        assert!(shape.between_cv > 0.05, "{shape}");
    }

    #[test]
    fn resampling_keeps_runs_consecutive_and_offsets_between_sessions() {
        let a: Vec<f64> = (1..=10).map(|i| i as f64).collect();
        let b: Vec<f64> = (1..=10).map(|i| 1000.0 * i as f64).collect();
        let text = format!("session,value\n{}{}", rows("a", &a), rows("b", &b));
        let series = parse(&text).expect("parses");
        let r = Resampler::new(&series);
        let mut rng = Rng::new(7);
        let mut seen = [false; 2];
        for _ in 0..50 {
            let mut c = r.night(&mut rng);
            let first = r.next(&mut c);
            let second = r.next(&mut c);
            // Consecutive repetitions of the same session: ln(i+1) − ln(i), or the wrap 10 → 1.
            let step = second - first;
            let i = (first - r.sessions[c.session][0]).exp().round() as usize;
            let expected = if i == 10 {
                (0.1f64).ln()
            } else {
                ((i + 1) as f64 / i as f64).ln()
            };
            assert!(
                (step - expected).abs() < 1e-9,
                "i {i}: {step} vs {expected}"
            );
            seen[c.session] = true;
        }
        assert_eq!(seen, [true, true]);
        // The faster session keeps its offset: its residuals are all above the other's.
        assert!(r.sessions[1].iter().all(|x| *x > 0.0));
        assert!(r.sessions[0].iter().all(|x| *x < 0.0));
    }

    fn lognormal_series(cv: f64, seed: u64) -> NoiseSeries {
        let mut rng = Rng::new(seed);
        let sigma = (1.0f64 + cv * cv).ln().sqrt();
        let session = |rng: &mut Rng, base: f64| -> Vec<f64> {
            (0..40)
                .map(|_| base * (sigma * rng.normal()).exp())
                .collect()
        };
        NoiseSeries {
            source: "synthetic".into(),
            sessions: vec![
                ("a".into(), session(&mut rng, 500.0)),
                ("b".into(), session(&mut rng, 505.0)),
            ],
        }
    }

    fn options() -> super::super::sim::SimOptions {
        super::super::sim::SimOptions {
            trials: 60,
            ..Default::default()
        }
    }

    #[test]
    fn the_real_table_catches_large_steps_without_false_alarms_on_quiet_noise() {
        let series = lognormal_series(0.01, 11);
        let report = super::super::sim::run_real(options(), &series, "TOTAL_OUTPUT_THROUGHPUT")
            .expect("runs");
        assert_eq!(report.results.len(), 5);
        let ten = &report.results[2];
        assert_eq!((ten.scenario.step, ten.scenario.reps), (0.10, 3));
        assert!(ten.ours.detection() > 0.95, "{report}");
        assert!(ten.upstream_b.detection() > 0.95, "{report}");
        for r in &report.results {
            assert!(r.ours.false_alarm() <= 0.01, "{report}");
        }
        let shown = report.to_string();
        assert!(
            shown.contains("real noise from synthetic: 80 values in 2 session(s)"),
            "{shown}"
        );
        assert!(report.real_lines()[0].starts_with("3% step, 3 reps: ours "));
    }

    #[test]
    fn a_latency_regresses_upwards() {
        // The same quiet noise read as a latency: a 10% step up must be caught, and nothing
        // else alarms (a falling latency is an improvement, never a failure).
        let series = lognormal_series(0.01, 12);
        let report = super::super::sim::run_real(options(), &series, "AVG_TTFT").expect("runs");
        assert!(report.results[2].ours.detection() > 0.95, "{report}");
        assert!(report.results[2].upstream_b.detection() > 0.95, "{report}");
        let e =
            super::super::sim::run_real(options(), &series, "NOT_A_METRIC").expect_err("unknown");
        assert!(e.to_string().contains("NOT_A_METRIC"));
    }

    #[test]
    fn bimodality_separates_one_mode_from_two() {
        let mut rng = Rng::new(3);
        let one: Vec<f64> = (0..400).map(|_| rng.normal()).collect();
        let two: Vec<f64> = (0..400)
            .map(|i| rng.normal() * 0.3 + if i % 2 == 0 { -2.0 } else { 2.0 })
            .collect();
        assert!(bimodality_coefficient(&one) < 0.45);
        assert!(bimodality_coefficient(&two) > 0.555);
    }
}
