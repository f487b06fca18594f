//! trtllm-bench's command line as click parses it: global options, then a subcommand and its
//! options, `--opt=value` or `--opt value`, flags without values. Errors are click's usage
//! errors (usage line, hint, `Error: ...`, exit status 2), because perfgate's tests look for
//! exactly what a user of the real tool would see.

use std::collections::BTreeMap;
use std::path::Path;

/// How an option's value is read and checked (click's parameter types).
#[derive(Clone, Copy)]
pub enum Kind {
    Str,
    Int,
    Float,
    /// click's `type=bool`: takes a value such as `True`/`false`/`1`.
    Bool,
    /// click's `is_flag=True`: takes no value.
    Flag,
    Choice(&'static [&'static str]),
    /// click.Path(exists=True).
    ExistingPath,
}

pub struct OptSpec {
    pub name: &'static str,
    pub short: Option<&'static str>,
    pub kind: Kind,
}

const fn opt(name: &'static str, kind: Kind) -> OptSpec {
    OptSpec {
        name,
        short: None,
        kind,
    }
}

const fn opt_short(name: &'static str, short: &'static str, kind: Kind) -> OptSpec {
    OptSpec {
        name,
        short: Some(short),
        kind,
    }
}

const LOG_LEVELS: &[&str] = &[
    "internal_error",
    "error",
    "warning",
    "info",
    "verbose",
    "debug",
    "trace",
];
const BACKENDS: &[&str] = &["pytorch", "_autodeploy", "tensorrt"];
const MODALITIES: &[&str] = &["image", "video"];
const POLICIES: &[&str] = &["guaranteed_no_evict", "max_utilization"];

pub const GLOBAL: &[OptSpec] = &[
    opt_short("model", "m", Kind::Str),
    opt("model_path", Kind::Str),
    opt_short("workspace", "w", Kind::Str),
    opt("log_level", Kind::Choice(LOG_LEVELS)),
    opt("revision", Kind::Str),
];

pub const THROUGHPUT: &[OptSpec] = &[
    opt("engine_dir", Kind::Str),
    opt("backend", Kind::Choice(BACKENDS)),
    opt("extra_llm_api_options", Kind::Str),
    // Late-2025 docs spell the same option `--config`.
    opt("config", Kind::Str),
    opt("max_batch_size", Kind::Int),
    opt("max_num_tokens", Kind::Int),
    opt("max_seq_len", Kind::Int),
    opt("beam_width", Kind::Int),
    opt("kv_cache_free_gpu_mem_fraction", Kind::Float),
    opt("dataset", Kind::ExistingPath),
    opt("eos_id", Kind::Int),
    opt("modality", Kind::Choice(MODALITIES)),
    opt("max_input_len", Kind::Int),
    opt("num_requests", Kind::Int),
    opt("warmup", Kind::Int),
    opt("target_input_len", Kind::Int),
    opt("target_output_len", Kind::Int),
    opt("tp", Kind::Int),
    opt("pp", Kind::Int),
    opt("ep", Kind::Int),
    opt("cluster_size", Kind::Int),
    opt("concurrency", Kind::Int),
    opt("streaming", Kind::Flag),
    opt("report_json", Kind::Str),
    opt("iteration_log", Kind::Str),
    opt("output_json", Kind::Str),
    opt("request_json", Kind::Str),
    opt("enable_chunked_context", Kind::Flag),
    opt("disable_chunked_context", Kind::Flag),
    opt("scheduler_policy", Kind::Choice(POLICIES)),
];

pub const LATENCY: &[OptSpec] = &[
    opt("engine_dir", Kind::Str),
    opt("backend", Kind::Choice(BACKENDS)),
    opt("extra_llm_api_options", Kind::Str),
    opt("config", Kind::Str),
    opt("kv_cache_free_gpu_mem_fraction", Kind::Float),
    opt("max_seq_len", Kind::Int),
    opt("dataset", Kind::ExistingPath),
    opt("modality", Kind::Choice(MODALITIES)),
    opt("max_input_len", Kind::Int),
    opt("num_requests", Kind::Int),
    opt("warmup", Kind::Int),
    opt("tp", Kind::Int),
    opt("pp", Kind::Int),
    opt("ep", Kind::Int),
    opt("beam_width", Kind::Int),
    opt("concurrency", Kind::Int),
    opt("medusa_choices", Kind::Str),
    opt("report_json", Kind::Str),
    opt("iteration_log", Kind::Str),
];

pub const BUILD: &[OptSpec] = &[
    opt_short("tp_size", "tp", Kind::Int),
    opt_short("pp_size", "pp", Kind::Int),
    opt_short("quantization", "q", Kind::Str),
    opt("max_seq_len", Kind::Int),
    opt("no_weights_loading", Kind::Bool),
    opt("trust_remote_code", Kind::Bool),
    opt("dataset", Kind::ExistingPath),
    opt("max_batch_size", Kind::Int),
    opt("max_num_tokens", Kind::Int),
    opt("target_input_len", Kind::Int),
    opt("target_output_len", Kind::Int),
];

/// A click usage error: printed as click prints it, exit status 2.
#[derive(Debug)]
pub struct UsageError {
    /// `trtllm-bench` or `trtllm-bench throughput`.
    pub command: String,
    pub message: String,
}

impl UsageError {
    pub fn new(command: &str, message: impl Into<String>) -> UsageError {
        UsageError {
            command: command.to_string(),
            message: message.into(),
        }
    }

    pub fn render(&self) -> String {
        let usage = if self.command == "trtllm-bench" {
            "Usage: trtllm-bench [OPTIONS] COMMAND [ARGS]...".to_string()
        } else {
            format!("Usage: {} [OPTIONS]", self.command)
        };
        format!(
            "{usage}\nTry '{} --help' for help.\n\nError: {}\n",
            self.command, self.message
        )
    }
}

/// What parsing found: `--help`, or the values given (checked against their kind).
pub enum Outcome {
    Help,
    Values(Values),
}

#[derive(Debug, Default, Clone)]
pub struct Values {
    map: BTreeMap<&'static str, String>,
}

impl Values {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Values were checked when parsed, so a stored int always reads back.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.str(name).and_then(|v| parse_int(v).ok())
    }

    pub fn float(&self, name: &str) -> Option<f64> {
        self.str(name).and_then(|v| v.trim().parse().ok())
    }

    pub fn flag(&self, name: &str) -> bool {
        self.has(name)
    }
}

/// Python's `int()` on a command-line string: surrounding spaces and `_` separators allowed.
fn parse_int(v: &str) -> Result<i64, ()> {
    let t = v.trim();
    if t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return Err(());
    }
    t.replace('_', "").parse().map_err(|_| ())
}

/// click's BOOL type.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" | "on" => Some(true),
        "0" | "false" | "f" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// Parses options from `args`. With `stop_at_positional`, the first non-option token ends
/// the options (the group's subcommand) and its index is returned; otherwise a positional
/// token is click's "unexpected extra argument".
pub fn parse(
    command: &str,
    specs: &'static [OptSpec],
    args: &[String],
    stop_at_positional: bool,
) -> Result<(Outcome, usize), UsageError> {
    let mut values = Values::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            if stop_at_positional {
                return Ok((Outcome::Values(values), i));
            }
            if let Some(extra) = args.get(i) {
                return Err(UsageError::new(
                    command,
                    format!("Got unexpected extra argument ({extra})"),
                ));
            }
            break;
        }
        if arg == "--help" {
            return Ok((Outcome::Help, i));
        }
        if !arg.starts_with('-') || arg == "-" {
            if stop_at_positional {
                return Ok((Outcome::Values(values), i));
            }
            return Err(UsageError::new(
                command,
                format!("Got unexpected extra argument ({arg})"),
            ));
        }
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let spec = specs.iter().find(|s| {
            key.strip_prefix("--") == Some(s.name)
                || s.short
                    .is_some_and(|sh| key.strip_prefix('-') == Some(sh) && !key.starts_with("--"))
        });
        let Some(spec) = spec else {
            return Err(UsageError::new(command, format!("No such option: {key}")));
        };
        let value = match spec.kind {
            Kind::Flag => {
                if inline.is_some() {
                    return Err(UsageError::new(
                        command,
                        format!("Option '--{}' does not take a value.", spec.name),
                    ));
                }
                "True".to_string()
            }
            _ => match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    match args.get(i) {
                        Some(v) => v.clone(),
                        None => {
                            return Err(UsageError::new(
                                command,
                                format!("Option '{key}' requires an argument."),
                            ));
                        }
                    }
                }
            },
        };
        check(command, spec, &value)?;
        // click keeps the last of a repeated option.
        values.map.insert(spec.name, value);
        i += 1;
    }
    Ok((Outcome::Values(values), args.len()))
}

fn check(command: &str, spec: &OptSpec, value: &str) -> Result<(), UsageError> {
    let invalid = |why: String| {
        UsageError::new(
            command,
            format!("Invalid value for '--{}': {why}", spec.name),
        )
    };
    match spec.kind {
        Kind::Str | Kind::Flag => Ok(()),
        Kind::Int => parse_int(value)
            .map(|_| ())
            .map_err(|_| invalid(format!("'{value}' is not a valid integer."))),
        Kind::Float => value
            .trim()
            .parse::<f64>()
            .map(|_| ())
            .map_err(|_| invalid(format!("'{value}' is not a valid float."))),
        Kind::Bool => parse_bool(value)
            .map(|_| ())
            .ok_or_else(|| invalid(format!("'{value}' is not a valid boolean."))),
        Kind::Choice(choices) => {
            if choices.contains(&value) {
                Ok(())
            } else {
                let list: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
                Err(invalid(format!(
                    "'{value}' is not one of {}.",
                    list.join(", ")
                )))
            }
        }
        Kind::ExistingPath => {
            if Path::new(value).exists() {
                Ok(())
            } else {
                Err(invalid(format!("Path '{value}' does not exist.")))
            }
        }
    }
}

/// `--help` text: the usage line and the option names, enough for a person poking at the
/// fixture by hand.
pub fn help(command: &str, specs: &[OptSpec]) -> String {
    let mut text = if command == "trtllm-bench" {
        "Usage: trtllm-bench [OPTIONS] COMMAND [ARGS]...\n\n  A test double of trtllm-bench for perfgate's own tests (not a benchmark).\n\nOptions:\n".to_string()
    } else {
        format!("Usage: {command} [OPTIONS]\n\nOptions:\n")
    };
    for s in specs {
        let short = s.short.map(|sh| format!("-{sh}, ")).unwrap_or_default();
        let kind = match s.kind {
            Kind::Str => " TEXT",
            Kind::Int => " INTEGER",
            Kind::Float => " FLOAT",
            Kind::Bool => " BOOLEAN",
            Kind::Flag => "",
            Kind::Choice(_) => " [CHOICE]",
            Kind::ExistingPath => " FILE",
        };
        text.push_str(&format!("  {short}--{}{kind}\n", s.name));
    }
    text.push_str("  --help  Show this message and exit.\n");
    if command == "trtllm-bench" {
        text.push_str("\nCommands:\n  build\n  latency\n  throughput\n");
    }
    text
}
