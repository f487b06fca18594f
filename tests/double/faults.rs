//! The FAKE_BENCH_* environment variables (documented in main.rs): which report era to print,
//! which faults to inject, and how fast the fake run is.

use std::time::Duration;

/// Report eras of the reference notes (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    A,
    B,
    C,
    CPrime,
    D,
}

impl Era {
    fn parse(s: &str) -> Option<Era> {
        match s.trim() {
            "A" | "a" => Some(Era::A),
            "B" | "b" => Some(Era::B),
            "C" | "c" => Some(Era::C),
            "C'" | "c'" | "CP" | "cp" | "C_PRIME" => Some(Era::CPrime),
            "D" | "d" => Some(Era::D),
            _ => None,
        }
    }

    /// The TensorRT-LLM version each era's report carries.
    pub fn version(self) -> &'static str {
        match self {
            Era::A => "0.12.0",
            Era::B => "0.17.0",
            Era::C => "0.19.0",
            Era::CPrime => "0.20.0",
            Era::D => "1.0.0",
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Modes {
    pub crash: bool,
    pub hang: bool,
    pub fatal_hang: bool,
    pub silent_hang: bool,
    pub failed_requests: bool,
    pub drops: Vec<String>,
    pub exit: Option<i32>,
    pub no_report_json: bool,
    pub spawn_child: bool,
    /// `spawn-setsid`: a child that leaves the process group (setsid) holding our stdout.
    pub spawn_setsid: bool,
    pub slow: Option<Duration>,
    /// `json-set:<section>.<key>=<number>`: report.json values that contradict the log.
    pub json_sets: Vec<(String, f64)>,
}

const MODE_NAMES: &str = "crash, hang, fatal-hang, silent-hang, failed-requests, drop:<LINE PREFIX>, exit:<N>, no-report-json, spawn-child, spawn-setsid, slow[:<ms>], json-set:<section>.<key>=<number>";

impl Modes {
    pub fn parse(list: &str) -> Result<Modes, String> {
        let mut m = Modes::default();
        for item in list.split(',') {
            let item = item.trim_start();
            if item.trim().is_empty() {
                continue;
            }
            let (name, arg) = match item.split_once(':') {
                Some((n, a)) => (n.trim(), Some(a)),
                None => (item.trim(), None),
            };
            match (name, arg) {
                ("crash", None) => m.crash = true,
                ("hang", None) => m.hang = true,
                ("fatal-hang", None) => m.fatal_hang = true,
                ("silent-hang", None) => m.silent_hang = true,
                ("failed-requests", None) => m.failed_requests = true,
                ("no-report-json", None) => m.no_report_json = true,
                ("spawn-child", None) => m.spawn_child = true,
                ("spawn-setsid", None) => m.spawn_setsid = true,
                ("slow", None) => m.slow = Some(Duration::from_millis(20)),
                ("slow", Some(ms)) => {
                    let ms: u64 = ms
                        .trim()
                        .parse()
                        .map_err(|_| format!("`slow:{ms}`: the delay must be milliseconds"))?;
                    m.slow = Some(Duration::from_millis(ms));
                }
                // The prefix is kept as written (only the separator's space before it goes),
                // so `drop:Total Latency` matches the label exactly.
                ("drop", Some(prefix)) if !prefix.is_empty() => m.drops.push(prefix.to_string()),
                ("json-set", Some(assign)) => {
                    let parsed = assign.split_once('=').and_then(|(path, v)| {
                        let v: f64 = v.trim().parse().ok()?;
                        (path.contains('.')).then(|| (path.trim().to_string(), v))
                    });
                    m.json_sets.push(parsed.ok_or_else(|| {
                        format!("`json-set:{assign}`: expected <section>.<key>=<number>")
                    })?);
                }
                ("exit", Some(code)) => {
                    let code: i32 = code
                        .trim()
                        .parse()
                        .ok()
                        .filter(|c| (0..=255).contains(c))
                        .ok_or_else(|| format!("`exit:{code}`: the status must be 0-255"))?;
                    m.exit = Some(code);
                }
                _ => return Err(format!("unknown mode `{item}` (known: {MODE_NAMES})")),
            }
        }
        Ok(m)
    }
}

/// Everything the environment decides.
pub struct Knobs {
    pub era: Era,
    pub modes: Modes,
    pub scale: f64,
    pub noise: f64,
    pub seed: u64,
}

fn var(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

/// Whether the knobs that `for_var` (`s1,s2`: substrings of `--model`) restricts apply to
/// `model`: yes when it is unset or empty, or when the model contains one of them.
fn applies_to(model: &str, for_var: &str) -> Result<bool, String> {
    let Some(only) = var(for_var)? else {
        return Ok(true);
    };
    let wanted: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    Ok(wanted.is_empty() || wanted.iter().any(|w| model.contains(w)))
}

/// Reads the knobs for one `subcommand` (`build`, `throughput`, `latency`) run on `model`.
pub fn from_env(subcommand: &str, model: &str) -> Result<Knobs, String> {
    let era = match var("FAKE_BENCH_ERA")? {
        Some(e) if !e.trim().is_empty() => Era::parse(&e)
            .ok_or_else(|| format!("FAKE_BENCH_ERA={e}: expected A, B, C, C' or D"))?,
        _ => Era::D,
    };
    // A per-subcommand variable replaces the general one, even when empty (so a test can
    // make `build` crash and leave `throughput` alone, or the reverse).
    let sub_var = format!("FAKE_BENCH_MODE_{}", subcommand.to_ascii_uppercase());
    let (mode_var, list) = match var(&sub_var)? {
        Some(v) => (sub_var, v),
        None => (
            "FAKE_BENCH_MODE".to_string(),
            var("FAKE_BENCH_MODE")?.unwrap_or_default(),
        ),
    };
    let mut modes = Modes::parse(&list).map_err(|e| format!("{mode_var}: {e}"))?;
    if !applies_to(model, "FAKE_BENCH_MODE_FOR")? {
        modes = Modes::default();
    }
    let scale = match var("FAKE_BENCH_SCALE")? {
        _ if !applies_to(model, "FAKE_BENCH_SCALE_FOR")? => 1.0,
        Some(s) if !s.trim().is_empty() => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| format!("FAKE_BENCH_SCALE={s}: expected a positive number"))?,
        _ => 1.0,
    };
    let noise = match var("FAKE_BENCH_NOISE")? {
        Some(s) if !s.trim().is_empty() => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                format!("FAKE_BENCH_NOISE={s}: expected a relative standard deviation >= 0")
            })?,
        _ => 0.0,
    };
    let seed = match var("FAKE_BENCH_SEED")? {
        // `pid`: a different draw in every run, for repetition statistics.
        Some(s) if s.trim() == "pid" => u64::from(std::process::id()),
        Some(s) if !s.trim().is_empty() => s.trim().parse::<u64>().map_err(|_| {
            format!("FAKE_BENCH_SEED={s}: expected a non-negative integer or `pid`")
        })?,
        _ => 0,
    };
    Ok(Knobs {
        era,
        modes,
        scale,
        noise,
        seed,
    })
}
