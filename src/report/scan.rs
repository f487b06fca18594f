//! The streaming log scanner: one pass, one line at a time, constant memory.
//!
//! A line is only read as a report line inside a report section, i.e. after a `= TITLE` line
//! that a rule of exactly 59 `=` confirms (the serving benchmark's block has its own framing).
//! That structure is what tells a trtllm-bench report from a script that imitates its labels:
//! labels alone prove nothing. Lines are rejected by their first byte (after logger prefixes)
//! before anything else is looked at: report lines start with `=`, `[`, `-` or an upper-case
//! letter, so per-iteration logging (`iter = 12, ...`) costs a prefix strip and one compare.

use std::collections::BTreeMap;

use memchr::memmem;

use super::eras::{self, Order, Section};
use super::text::{self, excerpt, label_eq, parse_value, split_label, strip_prefixes, visible};
use super::{Report, ReportKind, logline, serve};
use crate::record::metric::METRICS;

/// The rule that frames every trtllm-bench section.
const RULE_WIDTH: usize = 59;
/// Warnings kept; the rest are counted. A pathological log cannot grow memory through them.
const MAX_WARNINGS: usize = 64;
/// Report starts remembered for the "several reports" warning.
const MAX_STARTS: usize = 8;
/// Bytes at the start of the input checked for signs of binary data.
const BINARY_PROBE: u64 = 8192;

const MARKERS: [&str; 2] = ["!FAILED REQUESTS!", "!CHECK LOG FOR ERRORS!"];

struct Pending {
    section: Section,
    eras: u8,
    line: u64,
    title: String,
}

/// One report (a trtllm-bench throughput/latency report, or a serving result block).
struct Block {
    start_line: u64,
    serve: bool,
    latency_report: bool,
    eras: u8,
    eras_conflict: bool,
    last_rank: Option<u8>,
    metrics: BTreeMap<&'static str, f64>,
    streaming: bool,
    spec_decoding: bool,
    last_order: Order,
    seen_total_token: bool,
    serve_subsections: u8,
}

impl Block {
    fn new(start_line: u64, serve: bool) -> Self {
        Block {
            start_line,
            serve,
            latency_report: false,
            eras: eras::ALL,
            eras_conflict: false,
            last_rank: None,
            metrics: BTreeMap::new(),
            streaming: false,
            spec_decoding: false,
            last_order: Order::None,
            seen_total_token: false,
            serve_subsections: 0,
        }
    }
}

/// Metrics from single log lines, for the whole log (not per report).
#[derive(Default)]
struct LogValues {
    /// Maximum of each memory metric over its lines.
    memory: BTreeMap<&'static str, f64>,
    build_time: Option<f64>,
    bench_build_total: Option<f64>,
    trtllm_build_total: Option<f64>,
}

pub(crate) struct Scanner {
    line_no: u64,
    bytes: u64,
    binary: bool,
    prev_msg: Vec<u8>,
    prev_candidate_line: u64,
    section: Option<Section>,
    pending: Option<Pending>,
    block: Option<Block>,
    blocks: usize,
    block_starts: Vec<u64>,
    log: LogValues,
    /// `trtllm-bench build` framing (ENGINE BUILD INFO, ENGINE SAVED).
    bench_build: bool,
    /// TensorRT engine build lines (trtllm-build, or trtllm-bench build's verbose log).
    trt_build: bool,
    failed_requests: Option<u64>,
    markers: Vec<String>,
    warnings: Vec<String>,
    warnings_dropped: usize,
    lookalike_lines: usize,
    lookalike_first: Option<(u64, String)>,
    memory_lines: logline::Memory,
}

impl Scanner {
    pub(crate) fn new() -> Self {
        Scanner {
            line_no: 0,
            bytes: 0,
            binary: false,
            prev_msg: Vec::new(),
            prev_candidate_line: 0,
            section: None,
            pending: None,
            block: None,
            blocks: 0,
            block_starts: Vec::new(),
            log: LogValues::default(),
            bench_build: false,
            trt_build: false,
            failed_requests: None,
            markers: Vec::new(),
            warnings: Vec::new(),
            warnings_dropped: 0,
            lookalike_lines: 0,
            lookalike_first: None,
            memory_lines: logline::Memory::new(),
        }
    }

    fn warn(&mut self, w: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(w);
        } else {
            self.warnings_dropped += 1;
        }
    }

    pub(crate) fn line(&mut self, raw: &[u8], terminated: bool) {
        self.line_no += 1;
        if self.bytes < BINARY_PROBE
            && (memchr::memchr(0, raw).is_some() || std::str::from_utf8(raw).is_err())
        {
            self.binary = true;
        }
        self.bytes += raw.len() as u64 + 1;
        let vis = visible(raw);
        if memchr::memchr(b'!', vis).is_some() {
            self.markers(vis);
        }
        let msg = strip_prefixes(vis).trim_ascii();
        if !terminated {
            // The last line has no newline: the log was cut while it was being written, so
            // the value on it may be cut too (`1155.57` of `1155.5715`). Never read it.
            if !msg.is_empty() {
                let w = format!(
                    "line {}: the log ends mid-line (`{}`): that line is not read",
                    self.line_no,
                    excerpt(msg)
                );
                self.warn(w);
            }
            return;
        }
        if msg.is_empty() {
            self.title_unconfirmed();
            return;
        }
        self.memory(vis);
        if !matches!(msg[0], b'=' | b'[' | b'-' | b'A'..=b'Z') {
            self.title_unconfirmed();
            return;
        }
        // A line repeated right after itself (a log written through two handlers, a pasted
        // block doubled) is one line.
        if self.prev_candidate_line + 1 == self.line_no && self.prev_msg == msg {
            self.prev_candidate_line = self.line_no;
            return;
        }
        self.prev_msg.clear();
        self.prev_msg.extend_from_slice(msg);
        self.prev_candidate_line = self.line_no;
        if self.pending.is_some() {
            if is_rule(msg, RULE_WIDTH) {
                if let Some(p) = self.pending.take() {
                    self.enter(p);
                }
                return;
            }
            self.title_unconfirmed();
        }
        match msg[0] {
            b'=' => self.equals_line(msg),
            b'[' => self.bracket_line(msg),
            b'-' => self.dash_line(msg),
            _ => self.upper_line(msg),
        }
    }

    fn markers(&mut self, vis: &[u8]) {
        for m in MARKERS {
            if memmem::find(vis, m.as_bytes()).is_some() && !self.markers.iter().any(|x| x == m) {
                self.markers.push(m.to_string());
                let w = format!(
                    "line {}: failure marker `{m}`: the benchmark reports failed requests or errors",
                    self.line_no
                );
                self.warn(w);
            }
        }
    }

    /// A title must be followed by its rule; anything else means it was not a title.
    fn title_unconfirmed(&mut self) {
        if let Some(p) = self.pending.take()
            && p.section != Section::Other
        {
            let w = format!(
                "line {}: `= {}` is not followed by a rule of {RULE_WIDTH} `=`: not read as a \
                 report section",
                p.line, p.title
            );
            self.warn(w);
        }
    }

    fn equals_line(&mut self, msg: &[u8]) {
        if msg.iter().all(|c| *c == b'=') {
            // Any rule ends the section it follows; only a 59-wide one confirms a title.
            self.section = None;
            return;
        }
        if serve::is_title(msg) {
            self.new_block(true);
            self.section = Some(Section::Serve);
            return;
        }
        let rest = &msg[1..];
        if rest.first() == Some(&b'=') {
            // `==== banner ====`, `====!FAILED REQUESTS!====`: not a section title.
            return;
        }
        let title = rest.trim_ascii();
        let (section, eras) = eras::title(title).unwrap_or((Section::Other, eras::ALL));
        self.pending = Some(Pending {
            section,
            eras,
            line: self.line_no,
            title: excerpt(title),
        });
    }

    fn enter(&mut self, p: Pending) {
        match p.section {
            Section::Other => {
                let w = format!(
                    "line {}: unknown report section `= {}`: its lines are not read",
                    p.line, p.title
                );
                self.warn(w);
                self.section = Some(Section::Other);
            }
            Section::BuildInfo | Section::BuildConfig => {
                self.bench_build = true;
                self.section = Some(p.section);
            }
            Section::Dataset => {
                // A throughput report ends with its dataset; `trtllm-bench build` starts with one.
                let in_report = self
                    .block
                    .as_ref()
                    .is_some_and(|b| !b.serve && b.last_rank.is_some_and(|r| r < 9));
                if in_report {
                    self.report_section(p);
                } else {
                    self.section = Some(Section::BuildDataset);
                }
            }
            _ => self.report_section(p),
        }
    }

    fn report_section(&mut self, p: Pending) {
        let Some(rank) = p.section.rank() else {
            return;
        };
        let starts_another = match &self.block {
            None => true,
            Some(b) => b.serve || b.last_rank.is_some_and(|r| rank <= r),
        };
        if starts_another {
            self.new_block_at(false, p.line);
        }
        self.narrow(p.eras, p.line, &format!("= {}", p.title));
        if let Some(b) = self.block.as_mut() {
            b.last_rank = Some(rank);
            b.latency_report |= p.section.is_latency_report();
            b.spec_decoding |= p.section == Section::Decoding;
        }
        self.section = Some(p.section);
    }

    fn new_block(&mut self, serve: bool) {
        self.new_block_at(serve, self.line_no);
    }

    fn new_block_at(&mut self, serve: bool, line: u64) {
        self.blocks += 1;
        if self.block_starts.len() < MAX_STARTS {
            self.block_starts.push(line);
        }
        self.block = Some(Block::new(line, serve));
    }

    /// Applies era evidence; contradictory evidence leaves the era undecided.
    fn narrow(&mut self, eras: u8, line: u64, what: &str) {
        let Some(b) = self.block.as_mut() else {
            return;
        };
        let next = b.eras & eras;
        if next != 0 {
            b.eras = next;
            return;
        }
        if !b.eras_conflict {
            b.eras_conflict = true;
            let was = eras::era_list(b.eras);
            let w = format!(
                "line {line}: `{what}` does not fit the report era the earlier lines show \
                 ({was}): era left undecided"
            );
            self.warn(w);
        }
    }

    fn bracket_line(&mut self, msg: &[u8]) {
        if !matches!(self.section, Some(Section::Performance | Section::Decoding)) {
            return;
        }
        let parsed = memchr::memchr(b']', msg).and_then(|end| {
            let tag = &msg[1..end];
            let (stat, value) = split_label(&msg[end + 1..])?;
            Some((eras::percentile(tag, stat)?, value))
        });
        let Some((p, value)) = parsed else {
            self.unknown_line(msg);
            return;
        };
        self.narrow(p.eras, self.line_no, &excerpt(msg));
        if let Some(b) = self.block.as_mut() {
            b.streaming |= p.streaming;
            b.spec_decoding |= p.spec_decoding;
        }
        self.store(p.metric, parse_value(value, 0), msg);
    }

    fn dash_line(&mut self, msg: &[u8]) {
        if self.section == Some(Section::Serve)
            && let Some(bit) = serve::subsection(msg)
            && let Some(b) = self.block.as_mut()
        {
            b.serve_subsections |= bit;
        }
    }

    fn upper_line(&mut self, msg: &[u8]) {
        if self.build_line(msg) {
            return;
        }
        let kv = split_label(msg);
        if let Some((label, value)) = kv
            && label_eq(label, "Failed requests")
        {
            self.failed(value);
            return;
        }
        match self.section {
            Some(section) => match section.labels() {
                Some(table) => self.label_line(section, table, msg),
                // `EP Size` arrived with the C-era world section.
                None if section == Section::World
                    && kv.is_some_and(|(l, _)| label_eq(l, "EP Size")) =>
                {
                    self.narrow(eras::C | eras::CP | eras::D, self.line_no, "EP Size");
                }
                None => {}
            },
            None => {
                if let Some((label, _)) = kv
                    && eras::is_report_label(label)
                {
                    self.lookalike_lines += 1;
                    if self.lookalike_first.is_none() {
                        self.lookalike_first = Some((self.line_no, excerpt(label)));
                    }
                }
            }
        }
    }

    fn failed(&mut self, value: &[u8]) {
        let n = text::leading_number(value);
        match std::str::from_utf8(n)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(n) => self.failed_requests = Some(self.failed_requests.map_or(n, |f| f.max(n))),
            None => {
                let w = format!(
                    "line {}: `Failed requests: {}` is not a count",
                    self.line_no,
                    excerpt(value)
                );
                self.warn(w);
            }
        }
    }

    fn label_line(&mut self, section: Section, table: &[eras::LabelDef], msg: &[u8]) {
        let Some((label, value)) = split_label(msg) else {
            return;
        };
        let Some(def) = table.iter().find(|d| label_eq(label, d.label)) else {
            self.unknown_line(msg);
            return;
        };
        let line = self.line_no;
        self.narrow(def.eras, line, def.label);
        if section == Section::Performance || section == Section::Statistics {
            let last = self.block.as_ref().map_or(Order::None, |b| b.last_order);
            let seen_total_token = self.block.as_ref().is_some_and(|b| b.seen_total_token);
            match def.order {
                // D prints it right after Total Output Throughput, C' after the per-GPU line.
                Order::TotalToken => match last {
                    Order::TotalOutput => self.narrow(eras::D, line, def.label),
                    Order::PerGpu => self.narrow(eras::CP, line, def.label),
                    _ => {}
                },
                // C' and D print Total Token Throughput before Total Latency; C never does.
                Order::TotalLatency if !seen_total_token => {
                    self.narrow(eras::ALL & !(eras::CP | eras::D), line, def.label)
                }
                _ => {}
            }
            if let Some(b) = self.block.as_mut()
                && def.order != Order::None
            {
                b.last_order = def.order;
                b.seen_total_token |= def.order == Order::TotalToken;
            }
        }
        if let Some(b) = self.block.as_mut() {
            b.streaming |= def.streaming;
        }
        for metric in def.metrics {
            self.store(metric, parse_value(value, def.shift), msg);
        }
    }

    fn unknown_line(&mut self, msg: &[u8]) {
        let section = self.section.map_or("", Section::title);
        let w = format!(
            "line {}: unknown line in {section}: `{}`: not read",
            self.line_no,
            excerpt(msg)
        );
        self.warn(w);
    }

    fn store(&mut self, metric: &'static str, value: Result<f64, text::BadValue>, msg: &[u8]) {
        let line = self.line_no;
        let Some(b) = self.block.as_mut() else {
            return;
        };
        match value {
            Ok(v) => match b.metrics.get(metric) {
                None => {
                    b.metrics.insert(metric, v);
                }
                Some(first) if *first != v => {
                    let w = format!(
                        "line {line}: `{}` gives {metric} again with another value (first {first}): \
                         keeping the first",
                        excerpt(msg)
                    );
                    self.warn(w);
                }
                Some(_) => {}
            },
            Err(e) => {
                let w = format!(
                    "line {line}: `{}` {}: {metric} not stored",
                    excerpt(msg),
                    e.describe()
                );
                self.warn(w);
            }
        }
    }

    /// trtllm-build / trtllm-bench build lines that carry a value or mark the log as a build.
    fn build_line(&mut self, msg: &[u8]) -> bool {
        const GENERATION: &[u8] = b"Engine generation completed in ";
        if let Some(rest) = msg.strip_prefix(GENERATION) {
            let tok = rest.split(u8::is_ascii_whitespace).next().unwrap_or(b"");
            self.trt_build = true;
            match parse_value(tok, 0) {
                Ok(v) => self.log.build_time = Some(self.log.build_time.map_or(v, |t| t.max(v))),
                Err(e) => self.log_value_refused("BUILD_TIME", msg, e.describe()),
            }
            return true;
        }
        if msg.starts_with(b"ENGINE SAVED:") {
            self.bench_build = true;
            return true;
        }
        let Some((label, value)) = split_label(msg) else {
            return false;
        };
        // `trtllm-bench build`: `Total latency: 176.709s` (lower-case `latency`, unlike the
        // throughput report's `Total Latency (ms)`).
        if label == b"Total latency" {
            let number = value.strip_suffix(b"s").unwrap_or(value);
            match parse_value(number, 0) {
                Ok(v) => self.log.bench_build_total = Some(v),
                Err(e) => self.log_value_refused("BUILD_TOTAL_TIME", msg, e.describe()),
            }
            return true;
        }
        if label == b"Total time of building all engines" {
            self.trt_build = true;
            match logline::hms(value) {
                Some(v) => self.log.trtllm_build_total = Some(v),
                None => self.log_value_refused("BUILD_TOTAL_TIME", msg, "is not HH:MM:SS"),
            }
            return true;
        }
        false
    }

    fn log_value_refused(&mut self, metric: &str, msg: &[u8], why: &str) {
        let w = format!(
            "line {}: `{}` {why}: {metric} not stored",
            self.line_no,
            excerpt(msg)
        );
        self.warn(w);
    }

    fn memory(&mut self, vis: &[u8]) {
        let Some(found) = self.memory_lines.find(vis) else {
            return;
        };
        if matches!(
            found.metric,
            "BUILD_PEAK_CPU_MEMORY" | "BUILD_PEAK_GPU_MEMORY" | "ENGINE_SIZE"
        ) {
            self.trt_build = true;
        }
        match found.value {
            // Several ranks, or an estimation pass before the real allocation: the maximum,
            // as upstream takes.
            Ok(v) => {
                let slot = self.log.memory.entry(found.metric).or_insert(v);
                *slot = slot.max(v);
            }
            Err(why) => {
                let w = format!(
                    "line {}: `{}`: {why}: {} not stored",
                    self.line_no,
                    excerpt(strip_prefixes(vis)),
                    found.metric
                );
                self.warn(w);
            }
        }
    }

    pub(crate) fn finish(mut self) -> Report {
        if let Some(p) = self.pending.take()
            && p.section != Section::Other
        {
            let w = format!(
                "line {}: the log ends after the title `= {}`, before its rule",
                p.line, p.title
            );
            self.warn(w);
        }
        if let (Some(section), Some(_)) = (self.section, &self.block)
            && (section.rank().is_some() || section == Section::Serve)
        {
            let w = format!(
                "the log ends inside {} (no closing rule): the report may be cut short",
                section.title()
            );
            self.warn(w);
        }
        let mut metrics: BTreeMap<String, f64> = BTreeMap::new();
        let mut expected: Vec<String> = Vec::new();
        let mut era = None;
        let mut streaming = false;
        let mut reports_found = self.blocks;
        let kind = match self.block.take() {
            Some(b) if b.serve => {
                streaming =
                    b.serve_subsections & 1 != 0 || b.metrics.contains_key("FIRST_TOKEN_TIME");
                expected = serve::expected(b.serve_subsections);
                metrics.extend(b.metrics.iter().map(|(k, v)| (k.to_string(), *v)));
                self.report_choice(&b);
                ReportKind::Serve
            }
            Some(b) => {
                streaming = b.streaming;
                if b.latency_report {
                    expected = eras::expected_latency();
                    era = (!b.eras_conflict).then(|| "B".to_string());
                } else {
                    expected = eras::expected_throughput(b.eras, b.streaming, b.spec_decoding);
                    era = (!b.eras_conflict)
                        .then(|| eras::era_name(b.eras))
                        .flatten()
                        .map(str::to_string);
                    if era.is_none() && !b.eras_conflict {
                        let w = format!(
                            "the text does not show which report era this is ({}); `missing` \
                             lists only what every one of them prints",
                            eras::era_list(b.eras)
                        );
                        self.warn(w);
                    }
                }
                metrics.extend(b.metrics.iter().map(|(k, v)| (k.to_string(), *v)));
                self.report_choice(&b);
                if b.latency_report {
                    ReportKind::Latency
                } else {
                    ReportKind::Throughput
                }
            }
            None if self.bench_build => {
                reports_found = 1;
                expected = vec!["BUILD_TIME".into(), "BUILD_TOTAL_TIME".into()];
                ReportKind::Build
            }
            None if self.trt_build => {
                reports_found = 1;
                expected = [
                    "BUILD_TIME",
                    "BUILD_TOTAL_TIME",
                    "BUILD_PEAK_CPU_MEMORY",
                    "BUILD_PEAK_GPU_MEMORY",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                ReportKind::TrtllmBuild
            }
            None => ReportKind::Unknown,
        };
        let report_metrics = metrics.len();
        metrics.extend(self.log.memory.iter().map(|(k, v)| (k.to_string(), *v)));
        if let Some(t) = self.log.build_time {
            metrics.insert("BUILD_TIME".into(), t);
        }
        let total = if self.bench_build {
            self.log.bench_build_total
        } else {
            self.log.trtllm_build_total
        };
        if let Some(t) = total {
            metrics.insert("BUILD_TOTAL_TIME".into(), t);
        }
        match kind {
            ReportKind::Unknown => self.explain_unknown(),
            ReportKind::Throughput | ReportKind::Latency | ReportKind::Serve
                if report_metrics == 0 =>
            {
                self.warn("the report has no metric values".into());
            }
            ReportKind::Build | ReportKind::TrtllmBuild if metrics.is_empty() => {
                self.warn("the build output has no metric values".into());
            }
            _ => {}
        }
        if self.warnings_dropped > 0 {
            let n = self.warnings_dropped;
            self.warnings.push(format!("... and {n} more warning(s)"));
        }
        let missing = METRICS
            .iter()
            .map(|d| d.name)
            .filter(|n| expected.iter().any(|e| e == n) && !metrics.contains_key(*n))
            .map(str::to_string)
            .collect();
        let contradictions = super::consistency(&metrics);
        Report {
            kind,
            era,
            metrics,
            missing,
            warnings: self.warnings,
            reports_found,
            failed_requests: self.failed_requests,
            error_markers: self.markers,
            streaming,
            contradictions,
        }
    }

    fn report_choice(&mut self, kept: &Block) {
        if self.blocks < 2 {
            return;
        }
        let starts: Vec<String> = self.block_starts.iter().map(u64::to_string).collect();
        let w = format!(
            "{} reports in this log (starting at lines {}); the values of the last one (line {}) \
             are kept (upstream's regexes would mix them, taking each metric's maximum)",
            self.blocks,
            starts.join(", "),
            kept.start_line
        );
        self.warn(w);
    }

    fn explain_unknown(&mut self) {
        let w = if self.bytes == 0 {
            "empty input: no report".to_string()
        } else if self.binary {
            "the input looks binary (NUL bytes or invalid UTF-8 near its start): no report found"
                .to_string()
        } else {
            "no trtllm-bench report (a `= PERFORMANCE OVERVIEW`-style title framed by rules of 59 \
             `=`), no build output and no serving-benchmark result found"
                .to_string()
        };
        self.warn(w);
        if let Some((line, label)) = self.lookalike_first.take() {
            let w = format!(
                "{} line(s) look like trtllm-bench report lines (first: line {line}, `{label}`), \
                 but no report section frames them: not read as a trtllm-bench report",
                self.lookalike_lines
            );
            self.warn(w);
        }
    }
}

fn is_rule(msg: &[u8], width: usize) -> bool {
    msg.len() == width && msg.iter().all(|c| *c == b'=')
}
