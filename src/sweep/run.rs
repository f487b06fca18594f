//! The sweep: check every test against the server's context, then per test (after the
//! cooldown) start the telemetry, send the warm-up and the repetitions one at a time through
//! serve-bench's client, stop the telemetry, and hand the finished test to the caller, which
//! writes it before the next one starts. A server that stops answering, or Ctrl-C, ends the
//! sweep with every finished test kept.

use std::time::{Duration, Instant};

use super::error::SweepError;
use super::options::{Cooldown, SweepOptions};
use super::result::{TestContext, TestOutcome, outcome};
use super::spec::{MAX_REPETITIONS, SweepTest};
use crate::serve::options::{
    Arrival, BenchOptions, DatasetSource, LoadLevel, LoadOptions, MetricOptions, OutputOptions,
    Stop,
};
use crate::serve::{ServerFacts, Target};
use crate::telemetry::{PowerSetup, Telemetry};

/// How long a test waits for the telemetry's first reading before its first request.
const FIRST_READING: Duration = Duration::from_secs(2);

/// How a sweep ended.
#[derive(Debug, Clone)]
pub struct SweepReport {
    pub facts: ServerFacts,
    pub power: PowerSetup,
    /// The tests that finished (a test stopped by Ctrl-C with some repetitions done included).
    pub tests: Vec<TestOutcome>,
    /// Why the sweep stopped before its last test (the server stopped answering, Ctrl-C).
    pub stopped: Option<String>,
    pub interrupted: bool,
    /// Things worth knowing (a cooldown that gave up).
    pub notes: Vec<String>,
}

/// Where a finished test's data goes: the caller names its data file.
pub trait TestSink {
    /// The file name of the test's `trt_data_*.json` (recorded in its summary).
    fn data_file(&self, test: &SweepTest) -> String;
    /// Called with each finished test, before the next starts.
    fn finished(&mut self, outcome: &TestOutcome) -> Result<(), SweepError>;
}

fn validate(o: &SweepOptions) -> Result<(), SweepError> {
    let usage = |m: String| Err(SweepError::Usage(m));
    if o.tests.is_empty() {
        return usage("no test to run: give -p, -n or -pg".into());
    }
    if o.repetitions == 0 {
        return usage("-r: at least one repetition".into());
    }
    if o.repetitions > MAX_REPETITIONS {
        return usage(format!(
            "-r {}: at most {MAX_REPETITIONS} repetitions",
            o.repetitions
        ));
    }
    if let Cooldown::Temperature { max_c, .. } = o.cooldown
        && !(max_c.is_finite() && (-50.0..=150.0).contains(&max_c))
    {
        return usage(format!(
            "--cooldown-temp {max_c}: expected degrees Celsius between -50 and 150"
        ));
    }
    Ok(())
}

/// The server's context limit against every test, before anything is sent.
fn check_context(tests: &[SweepTest], facts: &ServerFacts) -> Result<(), SweepError> {
    let Some(limit) = &facts.context else {
        return Ok(());
    };
    for t in tests {
        let needed = t.prompt_sent() + t.gen_requested();
        if needed > limit.tokens {
            return Err(SweepError::Context {
                test: t.label(),
                needed,
                prompt: t.prompt_sent(),
                generated: t.gen_requested(),
                limit: limit.tokens,
                said_by: limit.source.clone(),
            });
        }
    }
    Ok(())
}

fn interrupted() -> bool {
    crate::runner::signals::interrupted().is_some()
}

/// Sleeps `d`, waking early on Ctrl-C; false when interrupted.
fn sleep_interruptibly(d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if interrupted() {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
    }
    !interrupted()
}

/// The hottest temperature now (one short recording), with the sensor's name.
fn hottest(telemetry: &Telemetry, o: &SweepOptions) -> Option<(String, f64)> {
    let rec = telemetry.start(&o.gpus, o.interval);
    std::thread::sleep(o.interval.min(Duration::from_millis(200)));
    rec.stop().hottest()
}

/// Waits as `cooldown` says; a note when it gave up. `Err(())` when interrupted.
fn cool_down(telemetry: &Telemetry, o: &SweepOptions) -> Result<Option<String>, ()> {
    match o.cooldown {
        Cooldown::None => Ok(None),
        Cooldown::Fixed(d) => {
            if sleep_interruptibly(d) {
                Ok(None)
            } else {
                Err(())
            }
        }
        Cooldown::Temperature { max_c, max_wait } => {
            let start = Instant::now();
            loop {
                let now = hottest(telemetry, o);
                match now {
                    Some((_, c)) if c <= max_c => return Ok(None),
                    Some((name, c)) if start.elapsed() >= max_wait => {
                        return Ok(Some(format!(
                            "cooldown: {name} still read {c:.1} °C after {:.0} s (threshold \
                             {max_c:.1} °C); went on",
                            max_wait.as_secs_f64()
                        )));
                    }
                    None => {
                        return Ok(Some(
                            "cooldown: no temperature reading; went on without waiting".into(),
                        ));
                    }
                    Some(_) => {
                        if !sleep_interruptibly(o.interval.max(Duration::from_millis(500))) {
                            return Err(());
                        }
                    }
                }
            }
        }
    }
}

fn bench_options(
    o: &SweepOptions,
    target: &Target,
    test: &SweepTest,
    index: usize,
) -> BenchOptions {
    BenchOptions {
        target: Target {
            streaming: true,
            ..target.clone()
        },
        dataset: DatasetSource::Synthetic {
            isl: test.prompt_sent(),
            osl: test.gen_requested(),
            isl_stdev: 0,
            osl_stdev: 0,
        },
        tokenizer: Some(o.tokenizer.clone()),
        load: LoadOptions {
            levels: vec![LoadLevel::Concurrency(1)],
            arrival: Arrival::Poisson,
            stop: Stop::Count(u64::from(o.repetitions)),
            warmup: u64::from(o.warmup),
            seed: o.seed.wrapping_add(index as u64),
        },
        metrics: MetricOptions {
            // The lengths are the test: a server must generate exactly what was asked.
            ignore_eos: true,
            ..MetricOptions::default()
        },
        outputs: OutputOptions::default(),
        client_threads: 1,
    }
}

/// Whether the server still answers its health check.
fn server_alive(target: &Target) -> Result<(), String> {
    let quick = Target {
        ready_timeout: Duration::ZERO,
        ..target.clone()
    };
    crate::serve::server_facts(&quick)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs the sweep; `sink` gets each test as soon as it is finished.
pub fn run(o: &SweepOptions, sink: &mut dyn TestSink) -> Result<SweepReport, SweepError> {
    validate(o)?;
    let facts = crate::serve::server_facts(&o.target)?;
    check_context(&o.tests, &facts)?;
    // The requests name the model the server serves unless one was given.
    let target = Target {
        model: facts.model.clone(),
        ..o.target.clone()
    };
    let telemetry = Telemetry::open_with(&o.power);
    if let Cooldown::Temperature { max_c, .. } = o.cooldown
        && hottest(&telemetry, o).is_none()
    {
        return Err(SweepError::Usage(format!(
            "--cooldown-temp {max_c}: no temperature sensor is read here (--power {}{}); use \
             --cooldown TIME instead",
            o.power.power,
            telemetry
                .unavailable_reason()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )));
    }
    let mut report = SweepReport {
        facts,
        power: telemetry.power(),
        tests: Vec::new(),
        stopped: None,
        interrupted: false,
        notes: Vec::new(),
    };
    for (i, test) in o.tests.iter().enumerate() {
        if i > 0 {
            match cool_down(&telemetry, o) {
                Ok(Some(note)) => report.notes.push(note),
                Ok(None) => {}
                Err(()) => {
                    report.interrupted = true;
                    report.stopped = Some(format!("interrupted before test {}", test.label()));
                    break;
                }
            }
        }
        if interrupted() {
            report.interrupted = true;
            report.stopped = Some(format!("interrupted before test {}", test.label()));
            break;
        }
        let recorder = telemetry.start(&o.gpus, o.interval);
        // A reading before the first repetition, so the readings cover the test.
        recorder.wait_first(FIRST_READING);
        let result = crate::serve::run(&bench_options(o, &target, test, i), &mut |_, _| Ok(()));
        let recording = recorder.stop();
        let run = match result {
            Ok(run) => run,
            Err(e) => {
                // Before its first repetition: the server went away, or will not take the test.
                if report.tests.is_empty() && e.is_usage() {
                    return Err(SweepError::Serve(e));
                }
                report.stopped = Some(format!("test {}: {e}", test.label()));
                break;
            }
        };
        let level = run.levels.first();
        if level.is_none() && run.interrupted {
            report.interrupted = true;
            report.stopped = Some(format!(
                "interrupted in the warm-up of test {}",
                test.label()
            ));
            break;
        }
        let done = outcome(TestContext {
            test: *test,
            repetitions: o.repetitions,
            info: &run.info,
            level,
            interrupted: run.interrupted,
            recording,
            data_file: sink.data_file(test),
            endpoint: o.target.endpoint.name(),
        });
        sink.finished(&done)?;
        let failed = done.summary.failed;
        report.tests.push(done);
        if run.interrupted {
            report.interrupted = true;
            report.stopped = Some(format!("interrupted during test {}", test.label()));
            break;
        }
        if failed > 0
            && let Err(why) = server_alive(&target)
        {
            report.stopped = Some(format!(
                "the server stopped answering during test {}: {why}",
                test.label()
            ));
            break;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::{ContextLimit, ServerKind};

    #[test]
    fn a_test_longer_than_the_context_names_the_limit() {
        let facts = ServerFacts {
            model: "m".into(),
            kind: ServerKind::LlamaCpp,
            context: Some(ContextLimit {
                tokens: 256,
                source: "/props default_generation_settings.n_ctx".into(),
            }),
            slots: Some(1),
            notes: Vec::new(),
        };
        assert!(check_context(&[SweepTest::prompt(255)], &facts).is_ok());
        let e =
            check_context(&[SweepTest::prompt(128), SweepTest::both(200, 64)], &facts).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("pp200+tg64") && msg.contains("264") && msg.contains("256"),
            "{msg}"
        );
        assert!(msg.contains("n_ctx"), "{msg}");
        assert!(e.is_usage());
        // A prompt test asks for one token, so 256 prompt tokens need 257.
        assert!(check_context(&[SweepTest::prompt(256)], &facts).is_err());
    }
}
