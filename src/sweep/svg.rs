//! The sweep's two charts as self-contained SVG: tokens/s against prompt length (a series per
//! kind of test, ± one standard deviation as a bar), and a test's power trace (each power rail
//! against time, the repetitions shaded). Hand-written, as serve-bench's Pareto chart is: two
//! line charts do not need a plotting library's dependencies.

use std::fmt::Write as _;

use super::result::{TestOutcome, TestSummary};
use super::spec::TestType;
use crate::telemetry::Quantity;
use crate::textutil::{axis_tick, xml_escape};

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// A frame: title, axes with five ticks each, axis labels; `sx`/`sy` map data to pixels.
struct Frame {
    out: String,
    max_x: f64,
    max_y: f64,
}

const W: f64 = 760.0;
const H: f64 = 480.0;
const ML: f64 = 80.0;
const MR: f64 = 170.0;
const MT: f64 = 50.0;
const MB: f64 = 60.0;

impl Frame {
    fn new(title: &str, x_label: &str, y_label: &str, max_x: f64, max_y: f64) -> Frame {
        let max_x = if max_x > 0.0 { max_x } else { 1.0 };
        let max_y = if max_y > 0.0 { max_y } else { 1.0 };
        let mut f = Frame {
            out: String::new(),
            max_x,
            max_y,
        };
        let _ = writeln!(
            f.out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(f.out, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            f.out,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
            (ML + W - MR) / 2.0,
            xml_escape(title)
        );
        let _ = writeln!(
            f.out,
            r#"<line x1="{ML}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/><line x1="{ML}" y1="{MT}" x2="{ML}" y2="{y0}" stroke="black"/>"#,
            y0 = H - MB,
            x1 = W - MR,
        );
        for i in 0..=5 {
            let fx = max_x * i as f64 / 5.0;
            let fy = max_y * i as f64 / 5.0;
            let _ = writeln!(
                f.out,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text><text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                f.sx(fx),
                H - MB + 18.0,
                axis_tick(fx),
                ML - 6.0,
                f.sy(fy) + 4.0,
                axis_tick(fy)
            );
        }
        let _ = writeln!(
            f.out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (ML + W - MR) / 2.0,
            H - 16.0,
            xml_escape(x_label)
        );
        let mid = (MT + H - MB) / 2.0;
        let _ = writeln!(
            f.out,
            r#"<text x="18" y="{mid}" text-anchor="middle" transform="rotate(-90 18 {mid})">{}</text>"#,
            xml_escape(y_label)
        );
        f
    }

    fn sx(&self, x: f64) -> f64 {
        ML + x / self.max_x * (W - ML - MR)
    }

    fn sy(&self, y: f64) -> f64 {
        H - MB - y / self.max_y * (H - MT - MB)
    }

    fn legend(&mut self, i: usize, color: &str, label: &str) {
        let y = MT + 10.0 + 18.0 * i as f64;
        let x = W - MR + 14.0;
        let _ = writeln!(
            self.out,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            y - 10.0,
            x + 18.0,
            y,
            xml_escape(label)
        );
    }

    fn end(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// Tokens/s (mean, ± one standard deviation) against prompt length: prompt tests, combined
/// tests per generation length, and generation tests at their one-token prompt.
pub fn tokens_per_second(tests: &[&TestSummary]) -> String {
    let mut series: Vec<(String, Vec<&TestSummary>)> = Vec::new();
    for s in tests.iter().copied().filter(|s| s.avg_ts.is_some()) {
        let name = match s.test_type {
            TestType::Prompt => "pp (prompt only)".to_string(),
            TestType::Generation => "tg (1-token prompt)".to_string(),
            TestType::Both => format!("pp + tg{}", s.n_gen),
        };
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(s),
            None => series.push((name, vec![s])),
        }
    }
    let x_of = |s: &TestSummary| s.prompt_tokens_sent as f64;
    let max_x = tests.iter().map(|s| x_of(s)).fold(0.0, f64::max) * 1.05;
    let max_y = tests
        .iter()
        .filter_map(|s| Some(s.avg_ts? + s.stddev_ts.unwrap_or(0.0)))
        .fold(0.0, f64::max)
        * 1.1;
    let model = tests.first().map(|s| s.model.as_str()).unwrap_or("");
    let mut f = Frame::new(
        &format!("tokens/s against prompt length ({model})"),
        "prompt length (tokens sent)",
        "tokens/s (mean ± sd)",
        max_x,
        max_y,
    );
    for (i, (name, points)) in series.iter_mut().enumerate() {
        let color = COLORS[i % COLORS.len()];
        points.sort_by(|a, b| x_of(a).total_cmp(&x_of(b)));
        if points.len() > 1 {
            let path: Vec<String> = points
                .iter()
                .filter_map(|s| Some(format!("{:.1},{:.1}", f.sx(x_of(s)), f.sy(s.avg_ts?))))
                .collect();
            let _ = writeln!(
                f.out,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                path.join(" ")
            );
        }
        for s in points.iter() {
            let (Some(m), sd) = (s.avg_ts, s.stddev_ts.unwrap_or(0.0)) else {
                continue;
            };
            let (x, y) = (f.sx(x_of(s)), f.sy(m));
            let _ = writeln!(
                f.out,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{color}"/><circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{color}"><title>{}</title></circle>"#,
                f.sy((m - sd).max(0.0)),
                f.sy(m + sd),
                xml_escape(&format!("{}: {m:.2} ± {sd:.2} tokens/s", s.label()))
            );
        }
        f.legend(i, color, name);
    }
    f.end()
}

/// The test's power traces against time (s from its first repetition), the repetitions
/// shaded; `None` when no power rail has two readings.
pub fn power_trace(o: &TestOutcome) -> Option<String> {
    let traces: Vec<_> = o
        .recording
        .traces()
        .into_iter()
        .filter(|t| t.quantity == Quantity::Power && t.len() >= 2)
        .collect();
    if traces.is_empty() {
        return None;
    }
    let t0 = o.test_start_ns as f64;
    let secs = |ns: u64| (ns as f64 - t0) / 1e9;
    let max_x = traces
        .iter()
        .flat_map(|t| t.times.iter())
        .map(|t| secs(crate::telemetry::epoch_nanos(*t)))
        .fold(secs(o.test_end_ns), f64::max);
    let max_y = traces
        .iter()
        .flat_map(|t| t.values.iter().copied())
        .fold(0.0, f64::max)
        * 1.1;
    let mut f = Frame::new(
        &format!("power during {} ({})", o.test.label(), o.summary.model),
        "seconds since the first repetition",
        "W",
        max_x,
        max_y,
    );
    for r in &o.repetitions {
        let (a, b) = (
            f.sx(secs(r.start_ns).max(0.0)),
            f.sx(secs(r.end_ns).max(0.0)),
        );
        let _ = writeln!(
            f.out,
            r##"<rect x="{a:.1}" y="{MT}" width="{:.1}" height="{}" fill="#000" fill-opacity="0.06"><title>repetition {}</title></rect>"##,
            (b - a).max(0.5),
            H - MT - MB,
            r.index
        );
    }
    for (i, t) in traces.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = t
            .points()
            .map(|(time, v)| {
                let x = secs(crate::telemetry::epoch_nanos(time)).max(0.0);
                format!("{:.1},{:.1}", f.sx(x), f.sy(v))
            })
            .collect();
        let _ = writeln!(
            f.out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.5"/>"#,
            path.join(" ")
        );
        f.legend(i, color, &format!("{} {}", t.source, t.name));
    }
    Some(f.end())
}
