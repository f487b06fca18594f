//! What the dashboard shows, gathered from the history in two streamed passes (per-night
//! measurement means, then verdicts) and turned into the JSON each page's script reads.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{self, PerfName};
use crate::history::dashboard::{DashChangePoint, DashMeasurement, DashVerdict};
use crate::history::{History, HistoryError, StoredRun};
use crate::record::metric::{Direction, metric};

/// Verdicts from what needs a person to what does not; a case's status is its worst.
const ORDER: &[&str] = &[
    "FAIL",
    "INVALID",
    "ENV_CHANGED",
    "UNKNOWN",
    "NEW",
    "IMPROVED",
    "PASS",
];

fn rank(verdict: &str) -> usize {
    ORDER
        .iter()
        .position(|v| *v == verdict)
        .unwrap_or(ORDER.len())
}

/// Nights of earlier values behind the noise band, and how many it needs at least.
const BAND_WINDOW: usize = 20;
const BAND_MIN: usize = 5;
/// Half-width of the band in robust standard deviations (1.4826 · MAD).
const BAND_K: f64 = 3.0;

/// One night of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub night: i64,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
    pub verdict: Option<&'static str>,
    pub change_pct: Option<f64>,
    pub mde_pct: Option<f64>,
    /// Valid and total repetitions, when measured.
    pub reps: Option<(u32, u32)>,
}

/// What a non-PASS verdict's stored record adds.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
pub struct Note {
    #[serde(default)]
    pub explanation: String,
    #[serde(default)]
    pub evidence: Vec<String>,
    #[serde(default)]
    pub noise_pct: Option<f64>,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub history_nights: usize,
    #[serde(default)]
    pub roofline_pct: Option<f64>,
    #[serde(default)]
    pub mfu_pct: Option<f64>,
    #[serde(default)]
    pub mbu_pct: Option<f64>,
    #[serde(default)]
    pub unit: String,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub perf_case_name: String,
    pub step: String,
    pub metric: String,
    pub gated: bool,
    pub points: Vec<Point>,
    pub notes: BTreeMap<i64, Note>,
}

/// Model, backend and precision from the test name; `other` where it does not parse.
#[derive(Debug, Clone, PartialEq)]
pub struct Facets {
    pub model: String,
    pub backend: String,
    pub precision: String,
    /// The name with its concurrency, batch sizes and request count left out: cases with the
    /// same key and GPU form one sweep.
    pub sweep_key: Option<String>,
    /// What varies within the sweep (`con:8`, `bs:4`).
    pub knob: Option<String>,
    /// The GPUs the case runs on: per-GPU throughput is its total over them.
    pub gpus: u32,
}

impl Facets {
    pub fn of(label: &str) -> Facets {
        match config::parse(label) {
            Ok(PerfName::Standard(c)) => {
                let knob = match (c.concurrencies.as_slice(), c.batch_sizes.as_slice()) {
                    ([n], _) => Some(format!("con:{n}")),
                    ([], [b, ..]) => Some(format!("bs:{b}")),
                    _ => None,
                };
                let mut key = c.clone();
                key.concurrencies.clear();
                key.batch_sizes.clear();
                key.max_batch_size = config::DEFAULT_MAX_BATCH_SIZE;
                key.num_reqs = config::DEFAULT_NUM_REQS;
                Facets {
                    model: c.model.clone(),
                    // A serve name's engine recipe (`llama.cpp`, `vllm`) is its backend.
                    backend: c
                        .engine
                        .clone()
                        .unwrap_or_else(|| c.backend.label().unwrap_or("tensorrt").to_string()),
                    precision: c
                        .quantization
                        .clone()
                        .unwrap_or_else(|| c.data_type.as_str().to_string()),
                    sweep_key: Some(key.canonical()),
                    knob,
                    gpus: c.num_gpus.max(1),
                }
            }
            Ok(other) => Facets {
                model: other.model().unwrap_or("other").to_string(),
                backend: "other".into(),
                precision: "other".into(),
                sweep_key: None,
                knob: None,
                gpus: 1,
            },
            Err(_) => Facets {
                model: "other".into(),
                backend: "other".into(),
                precision: "other".into(),
                sweep_key: None,
                knob: None,
                gpus: 1,
            },
        }
    }

    /// A serving case whose name does not say its sweep (a perf-sanity id's
    /// `<server>-<client>`), from its upstream record: the sweep is its server with one client
    /// workload (every client match key but the concurrency and iterations), the knob its
    /// concurrency, the GPUs its server's (a disaggregated one's workers').
    pub fn of_record(fields: &serde_json::Map<String, Value>) -> Option<Facets> {
        let text = |k: &str| fields.get(k).and_then(Value::as_str).unwrap_or("");
        let int = |k: &str| fields.get(k).and_then(Value::as_i64).unwrap_or(0);
        let concurrency = fields.get("l_concurrency")?.as_i64()?;
        let client = text("s_client_name");
        let case = text("s_test_case_name");
        let server = case
            .strip_suffix(client)
            .and_then(|s| s.strip_suffix('-'))
            .unwrap_or(case);
        let workload: Vec<String> = crate::perf_sanity::CLIENT_MATCH_KEYS
            .iter()
            .filter(|k| !matches!(**k, "l_concurrency" | "l_iterations"))
            .map(|k| match fields.get(*k) {
                Some(Value::String(s)) => format!("{}={s}", &k[2..]),
                Some(v) => format!("{}={v}", &k[2..]),
                None => format!("{}=-", &k[2..]),
            })
            .collect();
        let disaggregated = fields.contains_key("l_num_ctx_servers");
        let gpus = if disaggregated {
            int("l_ctx_gpus") * int("l_num_ctx_servers")
                + int("l_gen_gpus") * int("l_num_gen_servers")
        } else {
            int("l_gpus")
        };
        let model = [
            text("s_model_name"),
            text("s_gen_model_name"),
            text("s_ctx_model_name"),
        ]
        .into_iter()
        .find(|m| !m.is_empty())
        .unwrap_or("other");
        let backend = if disaggregated {
            "disaggregated"
        } else {
            text("s_serving_backend")
        };
        let dtype = [text("s_kv_cache_dtype"), text("s_gen_kv_cache_dtype")]
            .into_iter()
            .find(|m| !m.is_empty())
            .unwrap_or("other");
        Some(Facets {
            model: model.to_string(),
            backend: if backend.is_empty() { "other" } else { backend }.to_string(),
            precision: format!("kv {dtype}"),
            sweep_key: Some(format!("{server} [{}]", workload.join(" "))),
            knob: Some(format!("con:{concurrency}")),
            gpus: u32::try_from(gpus).ok().filter(|g| *g > 0).unwrap_or(1),
        })
    }
}

#[derive(Debug, Clone)]
pub struct CaseData {
    /// `<test domain>::[<label>]`: the perf case name without its metric.
    pub key: String,
    pub label: String,
    pub prefix: String,
    pub test_id: Option<String>,
    pub case_dir: Option<String>,
    pub facets: Facets,
    /// The case's network name as stored (for its upstream record).
    pub network_name: Option<String>,
    pub series: Vec<usize>,
    /// The latest night with data for this case.
    pub last_night: i64,
}

#[derive(Debug, Clone)]
pub struct SweepPoint {
    pub case: usize,
    pub per_user: f64,
    pub per_gpu: f64,
    pub frontier: bool,
}

/// A sweep's points on one night, each marked on or off that night's Pareto frontier.
#[derive(Debug, Clone)]
pub struct SweepNight {
    pub night: i64,
    pub points: Vec<SweepPoint>,
}

#[derive(Debug, Clone)]
pub struct Sweep {
    pub prefix: String,
    pub key: String,
    /// Newest first (at most [`SWEEP_NIGHTS`]): the latest frontier, and the earlier ones it
    /// is compared with.
    pub nights: Vec<SweepNight>,
}

/// How many of a sweep's nights the Sweeps page can compare.
pub const SWEEP_NIGHTS: usize = 14;

/// Everything the pages show.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// Oldest first.
    pub runs: Vec<StoredRun>,
    pub cases: Vec<CaseData>,
    pub series: Vec<Series>,
    pub change_points: Vec<DashChangePoint>,
    pub sweeps: Vec<Sweep>,
}

/// `(test domain, label)` of `<domain>::test_perf_metric_<type>[<label>]`; `None` for a name
/// of another shape.
pub fn split_perf_case_name(name: &str) -> Option<(&str, &str)> {
    let (domain, rest) = name.rsplit_once("::test_perf_metric_")?;
    let open = rest.find('[')?;
    let label = rest[open + 1..].strip_suffix(']')?;
    Some((domain, label))
}

fn prefix_of(run: Option<&StoredRun>, domain: Option<&str>) -> String {
    run.and_then(|r| r.meta.test_prefix.clone())
        .or_else(|| {
            domain
                .and_then(|d| d.split_once("/perf/"))
                .map(|(p, _)| p.to_string())
        })
        .unwrap_or_else(|| "(no prefix)".into())
}

fn is_telemetry(name: &str) -> bool {
    [
        "ENERGY",
        "POWER",
        "CLOCK",
        "TEMP",
        "JOULE",
        "UTIL",
        "MEMORY_USED",
        "TELEMETRY",
    ]
    .iter()
    .any(|k| name.contains(k))
}

impl Site {
    pub fn load(history: &History, nights: usize) -> Result<Site, HistoryError> {
        let runs = history.dashboard_runs(nights)?;
        let Some(first) = runs.first().map(|r| r.night) else {
            return Ok(Site::default());
        };
        let run_at: HashMap<i64, usize> =
            runs.iter().enumerate().map(|(i, r)| (r.night, i)).collect();
        let mut site = Site {
            runs,
            ..Site::default()
        };
        let mut series_at: HashMap<(String, String, String), usize> = HashMap::new();
        let mut case_at: HashMap<String, usize> = HashMap::new();
        let mut series_case: Vec<usize> = Vec::new();
        // Rows of one series arrive together: the last one found answers most lookups.
        let mut last: Option<usize> = None;
        let mut series_of = |site: &mut Site,
                             perf_case_name: &str,
                             step: &str,
                             metric: &str,
                             night: i64|
         -> usize {
            let same = |i: usize| {
                let s = &site.series[i];
                s.perf_case_name == perf_case_name && s.step == step && s.metric == metric
            };
            let found = match last {
                Some(i) if same(i) => Some(i),
                _ => series_at
                    .get(&(
                        perf_case_name.to_string(),
                        step.to_string(),
                        metric.to_string(),
                    ))
                    .copied(),
            };
            if let Some(i) = found {
                let c = &mut site.cases[series_case[i]];
                c.last_night = c.last_night.max(night);
                last = Some(i);
                return i;
            }
            let key = (
                perf_case_name.to_string(),
                step.to_string(),
                metric.to_string(),
            );
            let (perf_case_name, step, metric) = key.clone();
            let split = split_perf_case_name(&perf_case_name);
            let case_key = match split {
                Some((d, l)) => format!("{d}::[{l}]"),
                None => perf_case_name.clone(),
            };
            let run = run_at.get(&night).map(|&i| &site.runs[i]);
            let case = match case_at.get(&case_key) {
                Some(&c) => c,
                None => {
                    let label = split
                        .map_or(perf_case_name.as_str(), |(_, l)| l)
                        .to_string();
                    site.cases.push(CaseData {
                        key: case_key.clone(),
                        facets: Facets::of(&label),
                        network_name: None,
                        label,
                        prefix: prefix_of(run, split.map(|(d, _)| d)),
                        test_id: None,
                        case_dir: None,
                        series: Vec::new(),
                        last_night: night,
                    });
                    case_at.insert(case_key, site.cases.len() - 1);
                    site.cases.len() - 1
                }
            };
            let c = &mut site.cases[case];
            c.last_night = c.last_night.max(night);
            c.series.push(site.series.len());
            site.series.push(Series {
                perf_case_name,
                step,
                metric,
                gated: false,
                points: Vec::new(),
                notes: BTreeMap::new(),
            });
            series_case.push(case);
            series_at.insert(key, site.series.len() - 1);
            last = Some(site.series.len() - 1);
            site.series.len() - 1
        };
        // Pass 1: per-night means of every measured series.
        // Each case row's names, in the order the rows first appear.
        let mut names: Vec<(usize, String, String, Option<String>)> = Vec::new();
        let mut last_case: Option<i64> = None;
        history.dashboard_measurements(first, |m: DashMeasurement| {
            let c = m.case;
            let s = series_of(&mut site, &c.perf_case_name, &c.step, &c.metric, m.night);
            if last_case != Some(c.id) {
                last_case = Some(c.id);
                names.push((s, c.test_id.clone(), c.network_name.clone(), c.case.clone()));
            }
            site.series[s].points.push(Point {
                night: m.night,
                value: m.mean,
                baseline: None,
                verdict: None,
                change_pct: None,
                mde_pct: None,
                reps: Some((m.valid, m.total)),
            });
        })?;
        super::phase("read the measurements");
        // Pass 2: verdicts over the measured points.
        history.dashboard_verdicts(first, |v: DashVerdict| {
            let s = series_of(&mut site, v.perf_case_name, v.step, v.metric, v.night);
            let series = &mut site.series[s];
            series.gated |= v.gated;
            let verdict = ORDER.iter().copied().find(|o| *o == v.verdict);
            let at = match series.points.binary_search_by_key(&v.night, |p| p.night) {
                Ok(i) => i,
                Err(i) => {
                    series.points.insert(
                        i,
                        Point {
                            night: v.night,
                            value: None,
                            baseline: None,
                            verdict: None,
                            change_pct: None,
                            mde_pct: None,
                            reps: None,
                        },
                    );
                    i
                }
            };
            let p = &mut series.points[at];
            p.value = v.value.or(p.value);
            p.baseline = v.baseline;
            p.verdict = verdict.or(Some("OTHER"));
            p.change_pct = v.change_pct;
            p.mde_pct = v.mde_pct;
            if let Some(record) = v.record {
                let note = serde_json::from_str::<Note>(record).unwrap_or_else(|e| Note {
                    explanation: format!("(the stored verdict record cannot be read: {e})"),
                    ..Note::default()
                });
                series.notes.insert(v.night, note);
            }
        })?;
        super::phase("read the verdicts");
        for (s, test_id, network_name, case_dir) in names.drain(..) {
            let c = &mut site.cases[series_case[s]];
            if c.test_id.is_none() {
                c.test_id = Some(test_id);
                c.case_dir = case_dir;
                if c.label != network_name && split_perf_case_name(&c.key).is_none() {
                    c.label = network_name.clone();
                }
                c.network_name = Some(network_name);
            }
        }
        // Serving cases whose names do not say their sweep take it from their records.
        let records = history.dashboard_case_records(first)?;
        if !records.is_empty() {
            let by_key: HashMap<(&str, &str, Option<&str>), &serde_json::Map<String, Value>> =
                records
                    .iter()
                    .filter_map(|r| {
                        let fields = r.record.get("fields")?.as_object()?;
                        Some((
                            (
                                r.test_id.as_str(),
                                r.network_name.as_str(),
                                r.case.as_deref(),
                            ),
                            fields,
                        ))
                    })
                    .collect();
            for c in site
                .cases
                .iter_mut()
                .filter(|c| c.facets.sweep_key.is_none())
            {
                let (Some(test_id), Some(network_name)) = (&c.test_id, &c.network_name) else {
                    continue;
                };
                if let Some(f) = by_key
                    .get(&(
                        test_id.as_str(),
                        network_name.as_str(),
                        c.case_dir.as_deref(),
                    ))
                    .and_then(|fields| Facets::of_record(fields))
                {
                    c.facets = f;
                }
            }
        }
        for s in &mut site.series {
            // One series' rows arrive in night order unless two test ids spelled it.
            if !s.points.windows(2).all(|w| w[0].night < w[1].night) {
                s.points.sort_by_key(|p| p.night);
                s.points.dedup_by_key(|p| p.night);
            }
        }
        site.change_points = history.dashboard_change_points()?;
        site.sweeps = sweeps(&site);
        Ok(site)
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    pub fn point_count(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    /// A case's status on a night: its worst gated verdict (any verdict when none gates);
    /// `MEASURED` with values but no verdict; `None` when it has nothing that night.
    pub fn status(&self, case: usize, night: i64) -> Option<&'static str> {
        let mut worst_gated: Option<&'static str> = None;
        let mut worst_any: Option<&'static str> = None;
        let mut measured = false;
        for &s in &self.cases[case].series {
            let series = &self.series[s];
            let Ok(i) = series.points.binary_search_by_key(&night, |p| p.night) else {
                continue;
            };
            measured = true;
            if let Some(v) = series.points[i].verdict {
                let worse = |w: Option<&'static str>| match w {
                    Some(w) if rank(w) <= rank(v) => Some(w),
                    _ => Some(v),
                };
                worst_any = worse(worst_any);
                if series.gated {
                    worst_gated = worse(worst_gated);
                }
            }
        }
        worst_gated.or(worst_any).or(measured.then_some("MEASURED"))
    }

    /// `data/index.js`: per test prefix its last run, and that night's cases.
    pub fn index_json(&self, source: &str) -> String {
        let mut last: BTreeMap<String, &StoredRun> = BTreeMap::new();
        for r in &self.runs {
            let p = r
                .meta
                .test_prefix
                .clone()
                .unwrap_or_else(|| "(no prefix)".into());
            last.insert(p, r);
        }
        let mut prefixes = Vec::new();
        let mut rows = Vec::new();
        for (prefix, run) in &last {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            let mut cases_run = 0usize;
            for (i, c) in self.cases.iter().enumerate() {
                if &c.prefix != prefix {
                    continue;
                }
                let (status, night) = match self.status(i, run.night) {
                    Some(s) => {
                        cases_run += 1;
                        (s, run.night)
                    }
                    None => ("NOT_RUN", c.last_night),
                };
                *counts.entry(status).or_default() += 1;
                rows.push(self.index_row(i, status, night));
            }
            prefixes.push(json!({
                "prefix": prefix,
                "night": run.night,
                "run_id": run.meta.run_id,
                "started": run.meta.started,
                "host": run.meta.host,
                "revision": run.meta.revision,
                "branch": run.meta.branch,
                "build_url": run.meta.build_url,
                "cases": cases_run,
                "counts": counts,
            }));
        }
        rows.sort_by(|a, b| {
            let r = |v: &Value| {
                let s = v["status"].as_str().unwrap_or("");
                match s {
                    "MEASURED" => ORDER.len() + 1,
                    "NOT_RUN" => ORDER.len() + 2,
                    s => rank(s),
                }
            };
            r(a).cmp(&r(b))
                .then_with(|| a["prefix"].as_str().cmp(&b["prefix"].as_str()))
                .then_with(|| a["label"].as_str().cmp(&b["label"].as_str()))
        });
        json!({
            "source": source,
            "generated": crate::record::rfc3339(std::time::SystemTime::now()),
            "runs": self.runs.len(),
            "first_night": self.runs.first().map(|r| r.night),
            "last_night": self.runs.last().map(|r| r.night),
            "prefixes": prefixes,
            "order": ORDER,
            "rows": rows,
        })
        .to_string()
    }

    fn index_row(&self, i: usize, status: &str, night: i64) -> Value {
        let c = &self.cases[i];
        let mut metrics = Vec::new();
        let mut why = None;
        for &s in &c.series {
            let series = &self.series[s];
            if !series.gated {
                continue;
            }
            let Ok(at) = series.points.binary_search_by_key(&night, |p| p.night) else {
                continue;
            };
            let p = &series.points[at];
            metrics.push(json!([
                series.metric,
                p.value.filter(|v| v.is_finite()),
                unit_of(series),
                p.change_pct.filter(|v| v.is_finite()),
                p.verdict
            ]));
            if why.is_none()
                && p.verdict.is_some_and(|v| v != "PASS")
                && let Some(n) = series.notes.get(&night)
            {
                why = Some(n.explanation.clone());
            }
        }
        json!({
            "case": i,
            "label": c.label,
            "prefix": c.prefix,
            "model": c.facets.model,
            "backend": c.facets.backend,
            "precision": c.facets.precision,
            "status": status,
            "night": night,
            "metrics": metrics,
            "why": why,
        })
    }

    /// `data/runs.js`: every run by night, for the drill-down.
    pub fn runs_json(&self) -> String {
        let mut m = serde_json::Map::new();
        for r in &self.runs {
            let env: Value = serde_json::from_str(&r.meta.env_json)
                .unwrap_or_else(|_| Value::String(r.meta.env_json.clone()));
            m.insert(
                r.night.to_string(),
                json!({
                    "run_id": r.meta.run_id,
                    "started": r.meta.started,
                    "ended": r.ended,
                    "host": r.meta.host,
                    "test_prefix": r.meta.test_prefix,
                    "revision": r.meta.revision,
                    "branch": r.meta.branch,
                    "build_url": r.meta.build_url,
                    "imported_from": r.meta.imported_from,
                    "fingerprint": r.meta.fingerprint,
                    "env": env,
                }),
            );
        }
        Value::Object(m).to_string()
    }

    /// `data/sweeps.js`.
    pub fn sweeps_json(&self) -> String {
        let sweeps: Vec<Value> = self
            .sweeps
            .iter()
            .filter_map(|s| {
                let first = s.nights.first()?.points.first()?;
                let f = &self.cases[first.case].facets;
                let run = |night: i64| self.runs.iter().find(|r| r.night == night);
                Some(json!({
                    "prefix": s.prefix,
                    "key": s.key,
                    "model": f.model,
                    "backend": f.backend,
                    "precision": f.precision,
                    "nights": s.nights.iter().map(|n| json!({
                        "night": n.night,
                        "run_id": run(n.night).map(|r| r.meta.run_id.clone()),
                        "started": run(n.night).map(|r| r.meta.started.clone()),
                        "revision": run(n.night).and_then(|r| r.meta.revision.clone()),
                        "points": n.points.iter().map(|p| json!({
                            "case": p.case,
                            "label": self.cases[p.case].label,
                            "knob": self.cases[p.case].facets.knob,
                            "per_user": p.per_user,
                            "per_gpu": p.per_gpu,
                            "frontier": p.frontier,
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                }))
            })
            .collect();
        json!({ "sweeps": sweeps, "runs": self.runs.len() }).to_string()
    }

    /// `data/case-<i>.js`: the case's series with bands and change points. Points are written
    /// by hand as arrays (`[night, value, baseline, verdict, change %, MDE %, valid, total]`):
    /// a year of a case is thousands of them.
    pub fn case_json(&self, i: usize) -> String {
        let c = &self.cases[i];
        let mut order: Vec<usize> = c.series.clone();
        order.sort_by(|&a, &b| {
            let (a, b) = (&self.series[a], &self.series[b]);
            b.gated
                .cmp(&a.gated)
                .then(is_telemetry(&a.metric).cmp(&is_telemetry(&b.metric)))
                .then(a.step.cmp(&b.step))
                .then(a.metric.cmp(&b.metric))
        });
        let mut out = String::with_capacity(4096 + 80 * self.point_count_of(i));
        let head = json!({
            "case": i,
            "key": c.key,
            "label": c.label,
            "prefix": c.prefix,
            "test_id": c.test_id,
            "case_dir": c.case_dir,
            "model": c.facets.model,
            "backend": c.facets.backend,
            "precision": c.facets.precision,
            "knob": c.facets.knob,
            "last_night": c.last_night,
        })
        .to_string();
        out.push_str(&head[..head.len() - 1]);
        out.push_str(",\"series\":[");
        for (k, &s) in order.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            self.series_json(&self.series[s], &mut out);
        }
        out.push_str("]}");
        out
    }

    fn point_count_of(&self, i: usize) -> usize {
        self.cases[i]
            .series
            .iter()
            .map(|&s| self.series[s].points.len())
            .sum()
    }

    fn series_json(&self, s: &Series, out: &mut String) {
        let def = metric(&s.metric);
        let acked: Vec<&DashChangePoint> = self
            .change_points
            .iter()
            .filter(|c| c.perf_case_name == s.perf_case_name && c.metric == s.metric)
            .collect();
        let head = json!({
            "metric": s.metric,
            "step": s.step,
            "perf_case_name": s.perf_case_name,
            "unit": unit_of(s),
            "direction": def.map(|d| d.direction).unwrap_or(Direction::LowerIsBetter),
            "gated": s.gated,
            "telemetry": is_telemetry(&s.metric),
            "about": def.map(|d| d.about),
            "acked": acked.iter().map(|c| json!([c.first_night, c.reason, c.acknowledged])).collect::<Vec<_>>(),
            "notes": s.notes,
        })
        .to_string();
        out.push_str(&head[..head.len() - 1]);
        out.push_str(",\"points\":[");
        for (k, p) in s.points.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            let _ = write!(out, "[{},", p.night);
            push_chart_number(out, p.value);
            out.push(',');
            push_chart_number(out, p.baseline);
            out.push(',');
            match p.verdict {
                Some(v) => {
                    out.push('"');
                    out.push_str(v);
                    out.push('"');
                }
                None => out.push_str("null"),
            }
            out.push(',');
            push_chart_number(out, p.change_pct);
            out.push(',');
            push_chart_number(out, p.mde_pct);
            match p.reps {
                Some((valid, total)) => {
                    let _ = write!(out, ",{valid},{total}]");
                }
                None => out.push_str(",null,null]"),
            }
        }
        out.push(']');
        if s.gated {
            let starts: Vec<i64> = acked.iter().map(|c| c.first_night).collect();
            let values: Vec<(i64, Option<f64>)> =
                s.points.iter().map(|p| (p.night, p.value)).collect();
            out.push_str(",\"band\":[");
            for (k, (night, lo, hi)) in robust_band(&values, &starts).into_iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                let _ = write!(out, "[{night},");
                push_chart_number(out, Some(lo));
                out.push(',');
                push_chart_number(out, Some(hi));
                out.push(']');
            }
            out.push(']');
            out.push_str(",\"detected\":");
            out.push_str(&detected_json(&values));
        }
        out.push('}');
    }
}

fn unit_of(s: &Series) -> String {
    metric(&s.metric)
        .map(|d| d.unit.symbol().to_string())
        .or_else(|| s.notes.values().next().map(|n| n.unit.clone()))
        .unwrap_or_default()
}

/// Appends `v` rounded to six significant digits after the point of `{:.6e}` (seven in all:
/// what a chart or a table shows, at half the bytes), written as `{}` writes the `f64` nearest
/// that decimal; `null` for `None` and for what is not finite. This is the dashboard's
/// inner loop (a year is ~15 M numbers), so the usual case is done in integers without the
/// formatting machinery; [`chart_number_slow`] is the reference and the fallback.
pub fn push_chart_number(out: &mut String, v: Option<f64>) {
    match v {
        Some(v) if v.is_finite() => {
            if !push_fast(out, v) {
                out.push_str(&chart_number_slow(v));
            }
        }
        _ => out.push_str("null"),
    }
}

/// The reference for [`push_chart_number`]: `{:.6e}`, parsed back, written with `{}`.
pub fn chart_number_slow(v: f64) -> String {
    let s = format!("{v:.6e}");
    s.parse::<f64>().map_or("null".into(), |v| format!("{v}"))
}

/// Powers of ten that an `f64` holds exactly: a product or quotient by one is correctly rounded.
const EXACT_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// [`push_chart_number`] for magnitudes in [1e-9, 1e15]: scales `|v|` into [1e6, 1e7) with one correctly
/// rounded operation (relative error ≤ 2⁻⁵³, so < 2e-9 absolute) and rounds to an integer.
/// Declines (returns false, writing nothing) when the fraction is within 1e-6 of a half, where
/// that error could flip the rounding, and outside the range.
fn push_fast(out: &mut String, v: f64) -> bool {
    let a = v.abs();
    if !(1e-9..=1e15).contains(&a) {
        return false;
    }
    let mut exp = a.log10().floor() as i32;
    let mut scaled = 0.0;
    for _ in 0..3 {
        let k = 6 - exp;
        scaled = if k >= 0 {
            a * EXACT_POW10[k as usize]
        } else {
            a / EXACT_POW10[(-k) as usize]
        };
        if scaled < 1e6 {
            exp -= 1;
        } else if scaled >= 1e7 {
            exp += 1;
        } else {
            break;
        }
    }
    if !(1e6..1e7).contains(&scaled) {
        return false;
    }
    let floor = scaled.floor();
    let frac = scaled - floor;
    if (frac - 0.5).abs() < 1e-6 {
        return false;
    }
    let mut mantissa = floor as u64 + u64::from(frac > 0.5);
    if mantissa == 10_000_000 {
        mantissa = 1_000_000;
        exp += 1;
    }
    // Seven digits, the first not zero; the trailing zeros go.
    let mut digits = [0u8; 7];
    let mut m = mantissa;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (m % 10) as u8;
        m /= 10;
    }
    let mut len = 7;
    while len > 1 && digits[len - 1] == b'0' {
        len -= 1;
    }
    let digits = &digits[..len];
    if v < 0.0 {
        out.push('-');
    }
    let push = |out: &mut String, d: &[u8]| {
        for &c in d {
            out.push(char::from(c));
        }
    };
    if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        push(out, digits);
    } else {
        let whole = exp as usize + 1;
        if whole >= len {
            push(out, digits);
            for _ in len..whole {
                out.push('0');
            }
        } else {
            push(out, &digits[..whole]);
            out.push('.');
            push(out, &digits[whole..]);
        }
    }
    true
}

/// Detected change points of a series (the CPD of `gate::cpd`), as JSON
/// `[[night, p-value, change %], ...]`.
fn detected_json(values: &[(i64, Option<f64>)]) -> String {
    let xs: Vec<f64> = values.iter().map(|(_, v)| v.unwrap_or(f64::NAN)).collect();
    let found = crate::gate::cpd::change_points(&xs, &crate::gate::cpd::CpdParams::default());
    let mut out = String::from("[");
    for (k, c) in found.iter().filter(|c| c.index < values.len()).enumerate() {
        if k > 0 {
            out.push(',');
        }
        let _ = write!(out, "[{},", values[c.index].0);
        push_chart_number(&mut out, Some(c.pvalue));
        out.push(',');
        push_chart_number(&mut out, Some(c.change_pct));
        out.push(']');
    }
    out.push(']');
    out
}

/// The noise band of a series: at each night with at least [`BAND_MIN`] earlier values (since
/// the latest acknowledged change point before it, up to [`BAND_WINDOW`]), the median of those
/// values ± [`BAND_K`] robust standard deviations (1.4826 · MAD). `(night, low, high)`.
pub fn robust_band(values: &[(i64, Option<f64>)], starts: &[i64]) -> Vec<(i64, f64, f64)> {
    let mut out = Vec::new();
    let mut window: std::collections::VecDeque<f64> = std::collections::VecDeque::new();
    let mut scratch: Vec<f64> = Vec::with_capacity(BAND_WINDOW);
    for &(night, value) in values {
        if starts.contains(&night) {
            window.clear();
        }
        if window.len() >= BAND_MIN {
            scratch.clear();
            scratch.extend(window.iter().copied());
            let median = median_of(&mut scratch);
            for v in scratch.iter_mut() {
                *v = (*v - median).abs();
            }
            let mad = median_of(&mut scratch);
            let half = BAND_K * 1.4826 * mad;
            out.push((night, median - half, median + half));
        }
        if let Some(v) = value.filter(|v| v.is_finite()) {
            window.push_back(v);
            if window.len() > BAND_WINDOW {
                window.pop_front();
            }
        }
    }
    out
}

fn median_of(v: &mut [f64]) -> f64 {
    // Selection, not a sort: the same values, in a fraction of the time (a year of gated series
    // asks for ~2 M medians).
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (low, mid, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let mid = *mid;
    if !n.is_multiple_of(2) {
        mid
    } else {
        let below = low.iter().copied().max_by(f64::total_cmp).unwrap_or(mid);
        (below + mid) / 2.0
    }
}

/// Which points of a sweep are on its Pareto frontier, both axes higher-is-better: no other
/// point is at least as good on both and better on one.
pub fn pareto_frontier(points: &[(f64, f64)]) -> Vec<bool> {
    points
        .iter()
        .map(|&(x, y)| {
            !points
                .iter()
                .any(|&(ox, oy)| ox >= x && oy >= y && (ox > x || oy > y))
        })
        .collect()
}

/// A case's per-user and per-GPU output throughput on a night: trtllm-bench's own figures, else
/// a serving client's (USER_THROUGHPUT, and TOTAL_OUTPUT_THROUGHPUT over the case's GPUs).
fn sweep_values(site: &Site, case: &CaseData) -> BTreeMap<i64, (f64, f64)> {
    let series = |name: &str| {
        case.series
            .iter()
            .map(|&s| &site.series[s])
            .find(|s| s.metric == name)
    };
    let at = |s: Option<&Series>, night: i64| {
        s.and_then(|s| {
            s.points
                .binary_search_by_key(&night, |p| p.night)
                .ok()
                .and_then(|i| s.points[i].value)
        })
        .filter(|v| v.is_finite())
    };
    let user = series("PER_USER_OUTPUT_THROUGHPUT");
    let user_serving = series("USER_THROUGHPUT");
    let gpu = series("PER_GPU_OUTPUT_THROUGHPUT");
    let total = series("TOTAL_OUTPUT_THROUGHPUT");
    let gpus = f64::from(case.facets.gpus.max(1));
    let mut nights: Vec<i64> = [user, user_serving, gpu, total]
        .into_iter()
        .flatten()
        .flat_map(|s| s.points.iter().map(|p| p.night))
        .collect();
    nights.sort_unstable();
    nights.dedup();
    nights
        .into_iter()
        .filter_map(|n| {
            let u = at(user, n).or_else(|| at(user_serving, n))?;
            let g = at(gpu, n).or_else(|| at(total, n).map(|t| t / gpus))?;
            Some((n, (u, g)))
        })
        .collect()
}

/// Sweeps: cases of one prefix whose names differ only in concurrency, batch sizes or request
/// count (a serving case without such a name: its server and client workload, from its
/// upstream record), with per-user and per-GPU output throughput, night by night. A sweep is
/// drawn when its latest night has at least two points; its earlier nights are kept for the
/// comparison of frontiers.
fn sweeps(site: &Site) -> Vec<Sweep> {
    let mut groups: BTreeMap<(String, String), BTreeMap<i64, Vec<SweepPoint>>> = BTreeMap::new();
    for (i, c) in site.cases.iter().enumerate() {
        let Some(key) = &c.facets.sweep_key else {
            continue;
        };
        let values = sweep_values(site, c);
        if values.is_empty() {
            continue;
        }
        let group = groups.entry((c.prefix.clone(), key.clone())).or_default();
        for (night, (u, g)) in values {
            group.entry(night).or_default().push(SweepPoint {
                case: i,
                per_user: u,
                per_gpu: g,
                frontier: false,
            });
        }
    }
    groups
        .into_iter()
        .filter_map(|((prefix, key), by_night)| {
            let nights: Vec<SweepNight> = by_night
                .into_iter()
                .rev()
                .take(SWEEP_NIGHTS)
                .map(|(night, mut points)| {
                    points.sort_by(|a, b| a.per_user.total_cmp(&b.per_user));
                    let xy: Vec<(f64, f64)> =
                        points.iter().map(|p| (p.per_user, p.per_gpu)).collect();
                    for (p, f) in points.iter_mut().zip(pareto_frontier(&xy)) {
                        p.frontier = f;
                    }
                    SweepNight { night, points }
                })
                .collect();
            (nights.first()?.points.len() >= 2).then_some(Sweep {
                prefix,
                key,
                nights,
            })
        })
        .collect()
}
