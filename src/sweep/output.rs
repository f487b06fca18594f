//! The sweep's files, written as each test finishes (a crash or Ctrl-C keeps every finished
//! test), all in the output directory and all named with the sweep's timestamp `<ts>`
//! (`YYYYmmdd_HHMMSS`, UTC, made unique in the directory):
//!
//! - `trt_bench_summary_<ts>.json`: a JSON array, one [`TestSummary`] per test (rewritten
//!   whole, atomically, after each test);
//! - `trt_data_<type>_p<P>_g<G>_<ts>.json` per test: `time` (each repetition's start and end,
//!   ns since the Unix epoch), `power` (each power or energy rail's timestamps and values, the
//!   energy of the window), `temp` and `freq` (each sensor's and clock's readings), `load`;
//! - `trt_bench_<ts>.jsonl` (a line per test, appended), `trt_bench_<ts>.csv` and
//!   `trt_bench_<ts>.md` (rewritten);
//! - `trt_bench_tokens_per_s_<ts>.svg` (tokens/s against prompt length) and, for each test
//!   with a power reading, `trt_power_<type>_p<P>_g<G>_<ts>.svg` (its power trace).
//!
//! Standard output gets the tests in the format `-o` picks, as they finish.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::error::SweepError;
use super::options::StdoutFormat;
use super::result::{TestOutcome, TestSummary};
use super::run::TestSink;
use super::spec::SweepTest;
use crate::telemetry::{Quantity, Trace};

/// The CSV columns (and the JSONL keys besides the samples), in order.
pub const CSV_COLUMNS: [&str; 20] = [
    "test_type",
    "n_prompt",
    "n_gen",
    "n_tokens",
    "repetitions",
    "completed",
    "failed",
    "avg_ns",
    "stddev_ns",
    "avg_ts",
    "stddev_ts",
    "avg_ttft_ns",
    "energy_measured",
    "energy_j",
    "joules_per_token",
    "avg_power_w",
    "model",
    "server_url",
    "timestamp",
    "data_file",
];

fn write_err(path: &Path, e: impl std::fmt::Display) -> SweepError {
    SweepError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn atomic(path: &Path, bytes: &[u8]) -> Result<(), SweepError> {
    crate::fsutil::write(path, bytes).map_err(|e| write_err(path, e))
}

/// A timestamp for the files of a sweep started now: `YYYYmmdd_HHMMSS` (UTC), with `_2`,
/// `_3`, ... added when a sweep of the same second already wrote into `dir`.
pub fn timestamp(dir: &Path) -> String {
    let base = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .format("%Y%m%d_%H%M%S")
        .to_string();
    let taken = |ts: &str| dir.join(format!("trt_bench_summary_{ts}.json")).exists();
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|k| format!("{base}_{k}"))
        .find(|ts| !taken(ts))
        .unwrap_or(base)
}

/// `trt_data_<type>_p<P>_g<G>_<ts>.json`.
pub fn data_file_name(test: &SweepTest, ts: &str) -> String {
    format!(
        "trt_data_{}_p{}_g{}_{ts}.json",
        test.test_type.as_str(),
        test.n_prompt,
        test.n_gen
    )
}

/// `trt_power_<type>_p<P>_g<G>_<ts>.svg`.
pub fn power_svg_name(test: &SweepTest, ts: &str) -> String {
    format!(
        "trt_power_{}_p{}_g{}_{ts}.svg",
        test.test_type.as_str(),
        test.n_prompt,
        test.n_gen
    )
}

fn traces_of<'a>(traces: &'a [Trace], quantities: &[Quantity]) -> Vec<&'a Trace> {
    traces
        .iter()
        .filter(|t| quantities.contains(&t.quantity))
        .collect()
}

/// The per-test data file.
pub fn data_json(o: &TestOutcome, summary_file: &str) -> Value {
    let traces = o.recording.traces();
    let power = &o.recording.power;
    json!({
        "test_type": o.test.test_type,
        "n_prompt": o.test.n_prompt,
        "n_gen": o.test.n_gen,
        "n_tokens": o.test.n_tokens(),
        "label": o.test.label(),
        "summary_file": summary_file,
        "time": {
            "clock": "ns since the Unix epoch (the clock of the telemetry readings)",
            "test_start_ns": o.test_start_ns,
            "test_end_ns": o.test_end_ns,
            "repetitions": o.repetitions,
        },
        "power": {
            "asked": power.asked,
            "measured": power.measured,
            "absent": power.absent,
            "not_measured": power.not_measured,
            "rails": traces_of(&traces, &[Quantity::Power, Quantity::Energy]),
            "energy": o.energy,
        },
        "temp": { "sensors": traces_of(&traces, &[Quantity::Temp]) },
        "freq": { "clocks": traces_of(&traces, &[Quantity::Freq]) },
        "load": { "series": traces_of(&traces, &[Quantity::Load]) },
        "problems": o.recording.problems,
    })
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

/// One CSV row of [`CSV_COLUMNS`].
fn csv_row(s: &TestSummary) -> [String; 20] {
    [
        s.test_type.as_str().to_string(),
        s.n_prompt.to_string(),
        s.n_gen.to_string(),
        s.n_tokens.to_string(),
        s.repetitions.to_string(),
        s.completed.to_string(),
        s.failed.to_string(),
        opt(s.avg_ns),
        opt(s.stddev_ns),
        opt(s.avg_ts),
        opt(s.stddev_ts),
        opt(s.avg_ttft_ns),
        s.energy_measured.to_string(),
        opt(s.energy_j),
        opt(s.joules_per_token),
        opt(s.avg_power_w),
        s.model.clone(),
        s.server_url.clone(),
        s.timestamp.clone(),
        s.data_file.clone(),
    ]
}

pub fn csv_text(tests: &[&TestSummary], header: bool) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    if header {
        let _ = w.write_record(CSV_COLUMNS);
    }
    for s in tests {
        let _ = w.write_record(csv_row(s));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn fmt_ts(s: &TestSummary) -> String {
    match (s.avg_ts, s.stddev_ts) {
        (Some(m), Some(sd)) => format!("{m:.2} ± {sd:.2}"),
        _ => "—".into(),
    }
}

fn fmt_energy(s: &TestSummary) -> (String, String) {
    match (s.joules_per_token, s.avg_power_w) {
        (Some(j), Some(w)) => (format!("{j:.4}"), format!("{w:.1}")),
        (Some(j), None) => (format!("{j:.4}"), "—".into()),
        _ => ("not measured".into(), "not measured".into()),
    }
}

/// The markdown table's header.
pub fn md_header() -> String {
    "| model | test | reps | t (ms) | t/s | TTFT (ms) | J/token | W |\n\
     | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        .to_string()
}

/// One markdown row.
pub fn md_row(s: &TestSummary) -> String {
    let ms = |ns: Option<u64>| ns.map_or("—".to_string(), |v| format!("{:.2}", v as f64 / 1e6));
    let (j, w) = fmt_energy(s);
    let reps = if s.failed > 0 || s.completed < s.repetitions {
        format!("{}/{}", s.completed, s.repetitions)
    } else {
        s.repetitions.to_string()
    };
    format!(
        "| {} | {} | {reps} | {} ± {} | {} | {} | {j} | {w} |\n",
        s.model,
        s.label(),
        ms(s.avg_ns),
        ms(s.stddev_ns),
        fmt_ts(s),
        ms(s.avg_ttft_ns),
    )
}

/// The whole markdown file: the table, then what the numbers mean and what was not measured.
pub fn md_text(tests: &[&TestSummary]) -> String {
    let mut out = md_header();
    for s in tests {
        out.push_str(&md_row(s));
    }
    let mut notes: Vec<String> = Vec::new();
    for s in tests {
        for n in s.notes.iter().chain(s.energy_note.iter()) {
            if !notes.contains(n) {
                notes.push(n.clone());
            }
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

/// Writes a sweep's files as its tests finish, and prints them on standard output.
pub struct SweepWriter {
    pub dir: PathBuf,
    pub ts: String,
    stdout: StdoutFormat,
    /// Print to standard output (off in library use).
    print: bool,
    summaries: Vec<TestSummary>,
    /// The md/csv header is printed once, before the first row.
    printed_header: bool,
}

impl SweepWriter {
    /// A writer into `dir` (created), with a fresh timestamp.
    pub fn create(
        dir: &Path,
        stdout: StdoutFormat,
        print: bool,
    ) -> Result<SweepWriter, SweepError> {
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
        Ok(SweepWriter {
            dir: dir.to_path_buf(),
            ts: timestamp(dir),
            stdout,
            print,
            summaries: Vec::new(),
            printed_header: false,
        })
    }

    pub fn summary_path(&self) -> PathBuf {
        self.dir.join(format!("trt_bench_summary_{}.json", self.ts))
    }

    pub fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("trt_bench_{}.{ext}", self.ts))
    }

    pub fn tokens_svg_path(&self) -> PathBuf {
        self.dir
            .join(format!("trt_bench_tokens_per_s_{}.svg", self.ts))
    }

    pub fn summaries(&self) -> &[TestSummary] {
        &self.summaries
    }

    fn out(&self, text: &str) {
        if self.print {
            let mut so = std::io::stdout().lock();
            let _ = so.write_all(text.as_bytes());
            let _ = so.flush();
        }
    }

    /// What standard output gets at the end (the JSON array for `-o json`).
    pub fn finish(&mut self) -> Result<(), SweepError> {
        if self.stdout == StdoutFormat::Json {
            let text = serde_json::to_string_pretty(&self.summaries)
                .map_err(|e| write_err(&self.summary_path(), e))?;
            self.out(&format!("{text}\n"));
        }
        Ok(())
    }
}

impl TestSink for SweepWriter {
    fn data_file(&self, test: &SweepTest) -> String {
        data_file_name(test, &self.ts)
    }

    fn finished(&mut self, o: &TestOutcome) -> Result<(), SweepError> {
        let summary_name = format!("trt_bench_summary_{}.json", self.ts);
        let data_path = self.dir.join(&o.summary.data_file);
        let data = serde_json::to_vec_pretty(&data_json(o, &summary_name))
            .map_err(|e| write_err(&data_path, e))?;
        atomic(&data_path, &data)?;
        self.summaries.push(o.summary.clone());
        let all: Vec<&TestSummary> = self.summaries.iter().collect();
        let summary = serde_json::to_vec_pretty(&self.summaries)
            .map_err(|e| write_err(&self.summary_path(), e))?;
        atomic(&self.summary_path(), &summary)?;
        let line =
            serde_json::to_value(&o.summary).map_err(|e| write_err(&self.path("jsonl"), e))?;
        crate::serve::output::append_line(&self.path("jsonl"), &line)
            .map_err(|e| write_err(&self.path("jsonl"), e))?;
        atomic(&self.path("csv"), csv_text(&all, true).as_bytes())?;
        atomic(&self.path("md"), md_text(&all).as_bytes())?;
        atomic(
            &self.tokens_svg_path(),
            super::svg::tokens_per_second(&all).as_bytes(),
        )?;
        if let Some(svg) = super::svg::power_trace(o) {
            atomic(
                &self.dir.join(power_svg_name(&o.test, &self.ts)),
                svg.as_bytes(),
            )?;
        }
        let text = match self.stdout {
            StdoutFormat::Md => {
                let head = if self.printed_header {
                    String::new()
                } else {
                    md_header()
                };
                format!("{head}{}", md_row(&o.summary))
            }
            StdoutFormat::Csv => csv_text(&[&o.summary], !self.printed_header),
            StdoutFormat::Jsonl => format!("{line}\n"),
            StdoutFormat::Json => String::new(),
        };
        self.printed_header = true;
        self.out(&text);
        Ok(())
    }
}
