//! Metrics printed as single log lines rather than report sections: KV cache and execution
//! context size (runtime), engine generation time, peak memory and engine size (build).
//!
//! Upstream searches these anywhere in a line (`.*Allocated ...`), so prefixes it does not know
//! do not hide them; perfgate does the same for the memory lines, which all carry a binary unit
//! (`GiB`/`MiB`), so a cheap search for `iB` rejects every other line first.

use memchr::memmem::Finder;

use super::text::{BadValue, parse_value};

/// A memory line's metric, its value (in the metric's unit) or why the value was refused.
pub(crate) struct Found {
    pub metric: &'static str,
    pub value: Result<f64, String>,
}

/// Searchers built once per parse: one-shot `memmem::find` would rebuild them on every line.
pub(crate) struct Memory {
    unit: Finder<'static>,
    kv: Finder<'static>,
    kv_final: Finder<'static>,
    context: Finder<'static>,
    engine: Finder<'static>,
    peak_gpu: Finder<'static>,
    peak_cpu: Finder<'static>,
}

impl Memory {
    pub(crate) fn new() -> Self {
        Memory {
            unit: Finder::new(b"iB"),
            kv: Finder::new(b" GiB for max tokens in paged KV cache"),
            kv_final: Finder::new(b"Final KV cache size after resize:"),
            context: Finder::new(b" MiB for execution context memory"),
            engine: Finder::new(b"Total engine size per GPU is "),
            peak_gpu: Finder::new(b"Peak memory usage of TRT CPU/GPU memory allocators:"),
            peak_cpu: Finder::new(
                b"Peak memory usage during Engine building and serialization: CPU:",
            ),
        }
    }

    /// Looks for the memory lines in `line` (any prefix).
    pub(crate) fn find(&self, line: &[u8]) -> Option<Found> {
        // Every memory line carries a binary unit; nearly no other line does.
        self.unit.find(line)?;
        // `[MemUsageChange] Allocated 62.99 GiB for max tokens in paged KV cache (294848).`
        if let Some(at) = self.kv.find(line) {
            let tok = token_before(line, at, b"Allocated")?;
            return Some(found("KV_CACHE_SIZE", tok, b"GiB"));
        }
        // _autodeploy: `Final KV cache size after resize: 61.87 GiB (12345 pages)`.
        if let Some(rest) = after(&self.kv_final, line) {
            let (tok, unit) = token_and_unit(rest)?;
            if unit != b"GiB" {
                return None;
            }
            return Some(found("KV_CACHE_SIZE", tok, b"GiB"));
        }
        // `[MemUsageChange] Allocated 928.77 MiB for execution context memory.`
        if let Some(at) = self.context.find(line) {
            let tok = token_before(line, at, b"Allocated")?;
            return Some(found("CONTEXT_GPU_MEMORY", tok, b"MiB"));
        }
        // Upstream's legacy build script: `Total engine size per GPU is 6214.50 MiB`.
        if let Some(rest) = after(&self.engine, line) {
            let (tok, unit) = token_and_unit(rest)?;
            return Some(found("ENGINE_SIZE", tok, unit));
        }
        // `[MemUsageStats] Peak memory usage of TRT CPU/GPU memory allocators: CPU 0 MiB, GPU 15317 MiB`
        if let Some(rest) = after(&self.peak_gpu, line) {
            let gpu = memchr::memmem::find(rest, b"GPU ")?;
            let (tok, unit) = token_and_unit(&rest[gpu + 4..])?;
            return Some(found("BUILD_PEAK_GPU_MEMORY", tok, unit));
        }
        // `[MemUsageStats] Peak memory usage during Engine building and serialization: CPU: 34537 MiB`
        if let Some(rest) = after(&self.peak_cpu, line) {
            let (tok, unit) = token_and_unit(rest)?;
            return Some(found("BUILD_PEAK_CPU_MEMORY", tok, unit));
        }
        None
    }
}

/// The text after the first occurrence of `pat`.
fn after<'a>(pat: &Finder<'_>, line: &'a [u8]) -> Option<&'a [u8]> {
    pat.find(line).map(|at| &line[at + pat.needle().len()..])
}

fn found(metric: &'static str, tok: &[u8], unit: &[u8]) -> Found {
    let value = match parse_value(tok, 0) {
        Ok(v) => match unit {
            b"GiB" if metric == "KV_CACHE_SIZE" => Ok(v),
            b"MiB" if metric != "KV_CACHE_SIZE" => Ok(v),
            b"GiB" => Ok(v * 1024.0),
            b"KiB" => Ok(v / 1024.0),
            _ => Err(format!(
                "unit `{}` is not MiB, GiB or KiB",
                String::from_utf8_lossy(unit)
            )),
        },
        Err(e) => Err(describe(e, tok)),
    };
    Found { metric, value }
}

fn describe(e: BadValue, tok: &[u8]) -> String {
    format!("`{}` {}", String::from_utf8_lossy(tok), e.describe())
}

/// The whitespace-delimited token that ends just before `at`, if `lead` precedes it.
fn token_before<'a>(line: &'a [u8], at: usize, lead: &[u8]) -> Option<&'a [u8]> {
    let before = line[..at].trim_ascii_end();
    let start = before
        .iter()
        .rposition(u8::is_ascii_whitespace)
        .map_or(0, |i| i + 1);
    let tok = &before[start..];
    before[..start]
        .trim_ascii_end()
        .ends_with(lead)
        .then_some(tok)
}

/// `  15317 MiB, ...` → (`15317`, `MiB`).
fn token_and_unit(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut words = s
        .split(|c| c.is_ascii_whitespace() || *c == b',' || *c == b'(')
        .filter(|w| !w.is_empty());
    let tok = words.next()?;
    let unit = words.next().unwrap_or(b"");
    Some((tok, unit))
}

/// `00:00:24` (trtllm-build's total build time) in seconds.
pub(crate) fn hms(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s.trim_ascii()).ok()?;
    let mut secs = 0u64;
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 3 {
        return None;
    }
    for p in parts {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        secs = secs.checked_mul(60)?.checked_add(p.parse().ok()?)?;
    }
    Some(secs as f64)
}
