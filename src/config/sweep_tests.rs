//! The tests of a sweep: prompt-only (`-p`), generation-only (`-n`) and combined (`-pg P,G`),
//! as llama.cpp's `llama-bench` defines them, with their names and how they are sent. Shared
//! by `perfgate sweep`'s flags and the sweep test names (`SweepName`); errors are the
//! sentence to show.

use serde::{Deserialize, Serialize};

/// The longest length a test may ask for. No server takes sequences this long; a larger number
/// is a typo (an extra zero), caught before anything is sent.
pub const MAX_LENGTH: u64 = 10_000_000;

/// The most repetitions of one test.
pub const MAX_REPETITIONS: u32 = 100_000;

/// The prompt of a generation-only test: one token (a server needs a prompt to answer).
pub const MINIMAL_PROMPT: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestType {
    /// Prompt processing: `n_prompt` tokens in, one token out (the server must answer with
    /// something); tokens/s counts the prompt.
    Prompt,
    /// Generation: a one-token prompt, `n_gen` tokens out; tokens/s counts the generated ones.
    Generation,
    /// Both: `n_prompt` in, `n_gen` out; tokens/s counts both.
    Both,
}

impl TestType {
    pub fn as_str(self) -> &'static str {
        match self {
            TestType::Prompt => "prompt",
            TestType::Generation => "generation",
            TestType::Both => "both",
        }
    }
}

/// One test of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SweepTest {
    pub test_type: TestType,
    /// The prompt length the test measures (0 for a generation test).
    pub n_prompt: u64,
    /// The generated length the test measures (0 for a prompt test).
    pub n_gen: u64,
}

impl SweepTest {
    pub fn prompt(n: u64) -> SweepTest {
        SweepTest {
            test_type: TestType::Prompt,
            n_prompt: n,
            n_gen: 0,
        }
    }

    pub fn generation(n: u64) -> SweepTest {
        SweepTest {
            test_type: TestType::Generation,
            n_prompt: 0,
            n_gen: n,
        }
    }

    pub fn both(p: u64, g: u64) -> SweepTest {
        SweepTest {
            test_type: TestType::Both,
            n_prompt: p,
            n_gen: g,
        }
    }

    /// The tokens its tokens/s counts.
    pub fn n_tokens(&self) -> u64 {
        self.n_prompt + self.n_gen
    }

    /// The prompt tokens actually sent.
    pub fn prompt_sent(&self) -> u64 {
        match self.test_type {
            TestType::Generation => MINIMAL_PROMPT,
            _ => self.n_prompt,
        }
    }

    /// The output tokens actually asked for.
    pub fn gen_requested(&self) -> u64 {
        match self.test_type {
            TestType::Prompt => 1,
            _ => self.n_gen,
        }
    }

    /// llama-bench's name: `pp512`, `tg128`, `pp512+tg128`.
    pub fn label(&self) -> String {
        match self.test_type {
            TestType::Prompt => format!("pp{}", self.n_prompt),
            TestType::Generation => format!("tg{}", self.n_gen),
            TestType::Both => format!("pp{}+tg{}", self.n_prompt, self.n_gen),
        }
    }

    /// What the output says about how the test was sent, when it is not the obvious.
    pub fn note(&self) -> Option<String> {
        match self.test_type {
            TestType::Prompt => Some(
                "prompt-only test: one token is generated (a server must answer); tokens/s \
                 counts the prompt tokens"
                    .into(),
            ),
            TestType::Generation => Some(format!(
                "generation-only test: a minimal prompt of {MINIMAL_PROMPT} token is sent; \
                 tokens/s counts the generated tokens"
            )),
            TestType::Both => None,
        }
    }
}

/// A length from the command line or a test name: a whole number of tokens, 0 or more (0:
/// none of this kind), at most [`MAX_LENGTH`].
pub fn parse_length(text: &str, flag: &str) -> Result<u64, String> {
    let t = text.trim();
    let n: u64 = t.parse().map_err(|_| {
        if t.starts_with('-') {
            format!("{flag} `{t}`: a length cannot be negative")
        } else {
            format!("{flag} `{t}`: expected a whole number of tokens")
        }
    })?;
    if n > MAX_LENGTH {
        return Err(format!(
            "{flag} `{t}`: {n} tokens is more than any server takes (at most {MAX_LENGTH})"
        ));
    }
    Ok(n)
}

/// `P,G` of `-pg`: both at least 1.
pub fn parse_pg(text: &str) -> Result<(u64, u64), String> {
    let [p, g] = text.split(',').collect::<Vec<_>>()[..] else {
        return Err(format!(
            "-pg `{text}`: expected PROMPT,GENERATION (two lengths and a comma, e.g. 512,128; \
             several pairs as separate values: -pg 512,128 1024,256)"
        ));
    };
    let (p, g) = (parse_length(p, "-pg")?, parse_length(g, "-pg")?);
    if p == 0 || g == 0 {
        return Err(format!(
            "-pg `{text}`: both lengths must be at least 1 (use -p or -n for a test of one kind)"
        ));
    }
    Ok((p, g))
}

/// The tests of `-p`, `-n` and `-pg`, in llama-bench's order (prompt, generation, combined),
/// each once. Zeros in `-p` and `-n` mean "none of this kind", as in llama-bench.
pub fn plan_tests(p: &[u64], n: &[u64], pg: &[(u64, u64)]) -> Result<Vec<SweepTest>, String> {
    let mut tests: Vec<SweepTest> = Vec::new();
    let all = p
        .iter()
        .filter(|&&v| v > 0)
        .map(|&v| SweepTest::prompt(v))
        .chain(
            n.iter()
                .filter(|&&v| v > 0)
                .map(|&v| SweepTest::generation(v)),
        )
        .chain(pg.iter().map(|&(a, b)| SweepTest::both(a, b)));
    for t in all {
        if t.n_prompt > MAX_LENGTH || t.n_gen > MAX_LENGTH {
            return Err(format!(
                "test {}: a length is more than any server takes (at most {MAX_LENGTH})",
                t.label()
            ));
        }
        if (t.test_type == TestType::Both) && (t.n_prompt == 0 || t.n_gen == 0) {
            return Err(format!(
                "test {}: a combined test needs both lengths at least 1",
                t.label()
            ));
        }
        if !tests.contains(&t) {
            tests.push(t);
        }
    }
    if tests.is_empty() {
        return Err(
            "no test to run: give prompt lengths (-p 512), generation lengths (-n 128) \
                    or pairs (-pg 512,128); 0 means none of that kind"
                .into(),
        );
    }
    Ok(tests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_in_llama_bench_order_zeros_mean_none() {
        let t = plan_tests(&[128, 0, 128, 256], &[0], &[(512, 128)]).unwrap();
        let labels: Vec<String> = t.iter().map(|t| t.label()).collect();
        assert_eq!(labels, ["pp128", "pp256", "pp512+tg128"]);
        assert_eq!(t[0].prompt_sent(), 128);
        assert_eq!(t[0].gen_requested(), 1);
        assert_eq!(t[0].n_tokens(), 128);
        let g = SweepTest::generation(32);
        assert_eq!(
            (g.prompt_sent(), g.gen_requested(), g.n_tokens()),
            (1, 32, 32)
        );
        assert_eq!(t[2].n_tokens(), 640);
        assert!(plan_tests(&[0], &[0], &[]).is_err());
        assert!(plan_tests(&[], &[], &[]).is_err());
    }

    #[test]
    fn bad_lengths_name_what_is_wrong() {
        let e = parse_length("-5", "-p").unwrap_err();
        assert!(e.contains("negative"), "{e}");
        let e = parse_length("1e3", "-n").unwrap_err();
        assert!(e.contains("whole number"), "{e}");
        let e = parse_length("99999999999", "-p").unwrap_err();
        assert!(e.contains("more than any server"), "{e}");
        assert_eq!(parse_pg("512,128").unwrap(), (512, 128));
        for bad in ["512", "512;128", "512,", ",128", "0,128", "512,0", "a,b"] {
            assert!(parse_pg(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_pg("512,128,3").unwrap_err(),
            "-pg `512,128,3`: expected PROMPT,GENERATION (two lengths and a comma, e.g. \
             512,128; several pairs as separate values: -pg 512,128 1024,256)"
        );
        assert_eq!(
            parse_pg("-5,3").unwrap_err(),
            "-pg `-5`: a length cannot be negative"
        );
        assert!(
            parse_pg("512,0")
                .unwrap_err()
                .to_string()
                .contains("at least 1")
        );
    }
}
