//! Validity before statistics (reference: gating-and-roofline §4b layer 0): a measurement that
//! does not match its dataset, breaks an identity every correct report satisfies, or beats
//! physics is INVALID. It is never compared with a baseline, so a parsing or accounting bug can
//! never pass as a result, nor show up as a regression.
//!
//! Every check is one of the identities below; each failure is one sentence of evidence with
//! the numbers in it.
//!
//! - **Counts.** `NUM_REQUESTS` equals the dataset's request count. With fixed lengths (the
//!   standard `token-norm-dist` with stdev 0), the mean input and output lengths equal the
//!   dataset's: a shorter mean output means requests stopped early (`ignore_eos` not in
//!   effect, a max-tokens cap), which makes every throughput incomparable.
//! - **Invariants.** Output tok/s = req/s × mean output length (within 1%, the rounding of
//!   printed values); average concurrency = req/s × mean request latency (Little's law, within
//!   5%); mean TTFT ≤ mean request latency.
//! - **Serving** (a `benchmark_serving` block: token totals are integers, rates and times are
//!   printed with two decimals, so each identity allows that rounding): output tok/s = tokens
//!   generated / duration (= completed x mean OSL / duration), total tok/s = (input + output
//!   tokens) / duration, req/s = completed / duration; the achieved concurrency (Little's
//!   law: req/s x mean end-to-end latency) cannot exceed the client's limit; every request's
//!   TTFT is part of its end-to-end latency, so mean, median and P99 TTFT cannot exceed the
//!   same statistic of E2EL; under ignore-eos every request generates exactly its requested
//!   output (tokens generated = completed x OSL), and with fixed input lengths the input
//!   total is completed x ISL.
//! - **Physics.** No value beats its roofline bound ([`crate::physics::Roofline::check`]).

use std::collections::BTreeMap;

use crate::physics::Roofline;
use crate::record::Expectations;

/// Relative tolerance of identities between printed values (4-decimal rounding, averages of
/// averages).
const IDENTITY_TOLERANCE: f64 = 0.01;
/// Little's law holds over the measured window; ramp-up and drain make it approximate.
const LITTLE_TOLERANCE: f64 = 0.05;
/// Mean lengths are printed with a few decimals; a whole token off in the mean is a real
/// difference.
const LENGTH_TOLERANCE: f64 = 0.005;

/// Every piece of evidence that one measurement (one repetition of one step) is invalid:
/// `expect` is what its dataset makes a correct report show (from the plan), `roofline` the
/// case's physical limits. Empty means valid.
pub fn check(
    metrics: &BTreeMap<String, f64>,
    expect: Option<&Expectations>,
    roofline: Option<&Roofline>,
) -> Vec<String> {
    let mut evidence = Vec::new();
    let get = |k: &str| metrics.get(k).copied();
    // Only a step that ran its case's dataset has the dataset's counts to show (a latency
    // step runs its own request count; a build has no dataset).
    if let Some(expect) = expect {
        if let (Some(want), Some(got)) = (expect.num_requests, get("NUM_REQUESTS"))
            && (got - f64::from(want)).abs() > 0.5
        {
            evidence.push(format!(
                "the report counts {got} requests but the dataset has {want}: requests were \
                 dropped or the wrong dataset was read"
            ));
        }
        for (metric, want, what) in [
            ("AVG_INPUT_LENGTH", expect.input_len, "input"),
            ("AVG_OUTPUT_LENGTH", expect.output_len, "output"),
        ] {
            if let (Some(want), Some(got)) = (want, get(metric)) {
                let want = f64::from(want);
                if (got - want).abs() > (want * LENGTH_TOLERANCE).max(0.5) {
                    let why = if what == "output" && got < want {
                        "requests stopped before their full output (ignore_eos not in effect, or \
                         a max-tokens cap), so the throughput is not comparable"
                    } else {
                        "the benchmark did not read the dataset it was given"
                    };
                    evidence.push(format!(
                        "{metric} is {got} tokens but every request of the dataset has {want}: {why}"
                    ));
                }
            }
        }
    }
    if let (Some(tps), Some(rps), Some(osl)) = (
        get("TOTAL_OUTPUT_THROUGHPUT"),
        get("SEQ_THROUGHPUT"),
        get("AVG_OUTPUT_LENGTH"),
    ) {
        let implied = rps * osl;
        if !close(tps, implied, IDENTITY_TOLERANCE) {
            evidence.push(format!(
                "TOTAL_OUTPUT_THROUGHPUT {tps:.2} tok/s is not SEQ_THROUGHPUT {rps:.4} req/s x \
                 AVG_OUTPUT_LENGTH {osl:.1} = {implied:.2} tok/s (off by {:.1}%)",
                (tps / implied - 1.0) * 100.0
            ));
        }
    }
    let latency = get("AVG_REQUEST_LATENCY").or(get("AVG_LATENCY"));
    if let (Some(conc), Some(rps), Some(lat)) =
        (get("AVG_CONCURRENCY"), get("SEQ_THROUGHPUT"), latency)
    {
        let implied = rps * lat / 1000.0;
        if !close(conc, implied, LITTLE_TOLERANCE) {
            evidence.push(format!(
                "AVG_CONCURRENCY {conc:.2} breaks Little's law: SEQ_THROUGHPUT {rps:.4} req/s x \
                 mean request latency {lat:.2} ms = {implied:.2} requests in flight"
            ));
        }
    }
    if let (Some(ttft), Some(lat)) = (get("AVG_TTFT"), latency)
        && ttft > lat * (1.0 + IDENTITY_TOLERANCE)
    {
        evidence.push(format!(
            "mean TTFT {ttft:.2} ms is longer than the mean request latency {lat:.2} ms it is \
             part of"
        ));
    }
    evidence.extend(serving(metrics, expect));
    if let Some(roof) = roofline {
        evidence.extend(roof.check(metrics).iter().map(|v| v.to_string()));
    }
    evidence
}

/// The identities of a serving benchmark's block (see the module's list).
fn serving(metrics: &BTreeMap<String, f64>, expect: Option<&Expectations>) -> Vec<String> {
    let mut evidence = Vec::new();
    let get = |k: &str| metrics.get(k).copied();
    let (Some(completed), Some(out_tokens)) = (get("NUM_REQUESTS"), get("TOTAL_OUTPUT_TOKENS"))
    else {
        return evidence;
    };
    // `Benchmark duration (s)` is printed with two decimals.
    let duration = get("INFERENCE_TIME")
        .map(|ms| ms / 1000.0)
        .filter(|d| *d > 0.0);
    if let Some(d) = duration {
        let in_tokens = get("TOTAL_INPUT_TOKENS");
        for (metric, what, count) in [
            (
                "TOTAL_OUTPUT_THROUGHPUT",
                "tokens generated",
                Some(out_tokens),
            ),
            (
                "TOTAL_TOKEN_THROUGHPUT",
                "input + output tokens",
                in_tokens.map(|i| i + out_tokens),
            ),
            ("SEQ_THROUGHPUT", "completed requests", Some(completed)),
        ] {
            let (Some(rate), Some(count)) = (get(metric), count) else {
                continue;
            };
            let implied = count / d;
            // The printed duration is the true one rounded to a hundredth of a second, so the
            // true rate lies between count / (d + 0.005) and count / (d - 0.005): on a run of
            // a few hundredths that is a wide range, not a small slack around count / d. The
            // rate's own rounding (0.005) and the identity tolerance come on top.
            let lo = count / (d + 0.005);
            let hi = if d > 0.005 {
                count / (d - 0.005)
            } else {
                f64::INFINITY
            };
            let low_limit = lo * (1.0 - IDENTITY_TOLERANCE) - 0.005;
            let high_limit = hi * (1.0 + IDENTITY_TOLERANCE) + 0.005;
            if rate < low_limit || rate > high_limit {
                evidence.push(format!(
                    "{metric} {rate:.2}/s is not {what} {count} / duration {d:.2} s = \
                     {implied:.2}/s (off by {:.1}%)",
                    (rate / implied - 1.0) * 100.0
                ));
            }
        }
    }
    if let (Some(rps), Some(e2el), Some(limit)) = (
        get("SEQ_THROUGHPUT"),
        get("AVG_REQUEST_LATENCY"),
        expect.and_then(|e| e.max_concurrency),
    ) {
        let in_flight = rps * e2el / 1000.0;
        // Little's law over the measured window; the rate is printed with two decimals.
        let slack = 0.005 * e2el / 1000.0;
        if in_flight > f64::from(limit) * (1.0 + LITTLE_TOLERANCE) + slack {
            evidence.push(format!(
                "SEQ_THROUGHPUT {rps:.2} req/s x mean E2EL {e2el:.2} ms = {in_flight:.2} \
                 requests in flight on average (Little's law), more than the client's \
                 concurrency limit {limit}"
            ));
        }
    }
    for (stat, ttft, e2el) in [
        ("mean", "FIRST_TOKEN_TIME", "AVG_REQUEST_LATENCY"),
        ("median", "MEDIAN_FIRST_TOKEN_TIME", "MEDIAN_INFERENCE_TIME"),
        ("P99", "P99_FIRST_TOKEN_TIME", "P99_INFERENCE_TIME"),
    ] {
        if let (Some(t), Some(l)) = (get(ttft), get(e2el))
            && t > l * (1.0 + IDENTITY_TOLERANCE) + 0.005
        {
            evidence.push(format!(
                "{stat} TTFT {t:.2} ms is longer than the {stat} end-to-end latency {l:.2} ms: \
                 every request's first token is part of its latency"
            ));
        }
    }
    if let Some(expect) = expect {
        for (total, per_request, what) in [
            (out_tokens, expect.output_len, "output"),
            (
                get("TOTAL_INPUT_TOKENS").unwrap_or(f64::NAN),
                expect.input_len,
                "input",
            ),
        ] {
            let Some(n) = per_request else { continue };
            if total.is_nan() {
                continue;
            }
            let want = completed * f64::from(n);
            if (total - want).abs() > 0.5 {
                let why = if what == "output" && total < want {
                    "requests stopped before their requested output (ignore_eos not in effect, \
                     or the server capped max_tokens), so the throughput is not comparable"
                } else if what == "output" {
                    "the server generated more than the requested max_tokens"
                } else {
                    "the client did not send the prompts it was given"
                };
                evidence.push(format!(
                    "{total} {what} tokens for {completed} requests of {n} tokens each (want \
                     {want}): {why}"
                ));
            }
        }
    }
    evidence
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs())
}
