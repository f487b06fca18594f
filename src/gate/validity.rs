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
    if let Some(roof) = roofline {
        evidence.extend(roof.check(metrics).iter().map(|v| v.to_string()));
    }
    evidence
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs())
}
