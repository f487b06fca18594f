//! Server recipes (`model_configs/servers.yaml`): how to start an OpenAI-compatible engine for a
//! `serve` name, as data. Checked when read; every error names the file and line.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

const SCHEMA_VERSION: u32 = 1;

/// The `--server-kind` values of perfgate's serving client.
pub const CLIENT_KINDS: [&str; 7] = [
    "auto",
    "trtllm",
    "vllm",
    "sglang",
    "llama.cpp",
    "transformers",
    "triton",
];

/// The placeholders a recipe's arguments and environment may use.
pub const PLACEHOLDERS: [&str; 20] = [
    "model_path",
    "model_name",
    "tokenizer",
    "host",
    "port",
    "report_addr",
    "config",
    "backend",
    "tp",
    "pp",
    "ep",
    "gpus",
    "max_batch_size",
    "max_num_tokens",
    "max_seq_len",
    "kv_cache_free_gpu_memory_fraction",
    "concurrency",
    "context_tokens",
    "dtype",
    "draft_model_path",
];

/// All recipes, by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerRecipes {
    pub recipes: BTreeMap<String, ServerRecipe>,
    /// Where they came from (`file` or `<embedded ...>`).
    pub origin: String,
}

/// One engine.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRecipe {
    pub name: String,
    pub about: String,
    /// The program and subcommand.
    pub command: Vec<String>,
    pub args: Vec<ArgGroup>,
    pub env: Vec<(String, String)>,
    /// The readiness URL path.
    pub ready_path: String,
    pub ready_timeout_s: u64,
    /// The server binds port 0 and writes `host:port` to `{report_addr}`.
    pub report_addr: bool,
    pub client_kind: String,
    /// `completions` or `chat`.
    pub endpoint: String,
    pub warmup: u32,
    /// Write the extra LLM API YAML (trtllm-serve).
    pub llm_api_config: bool,
    /// The recipe's line in its file.
    pub line: u64,
}

/// A word, or words kept only when all their placeholders have values.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgGroup {
    Word(String),
    Optional(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    version: Spanned<u32>,
    servers: BTreeMap<String, Spanned<RecipeDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeDoc {
    about: String,
    command: Vec<String>,
    args: Vec<ArgDoc>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    ready: ReadyDoc,
    client: ClientDoc,
    #[serde(default)]
    llm_api_config: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ArgDoc {
    Word(String),
    Group(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadyDoc {
    #[serde(default = "health")]
    path: String,
    #[serde(default = "ready_timeout")]
    timeout_s: u64,
    #[serde(default)]
    report_addr: bool,
}

fn health() -> String {
    "/health".into()
}

fn ready_timeout() -> u64 {
    600
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientDoc {
    kind: String,
    endpoint: String,
    #[serde(default)]
    warmup: u32,
}

/// The placeholders in `word` (`{name}`), in order.
pub fn placeholders(word: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = word;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

impl ServerRecipes {
    /// Reads recipes from text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<ServerRecipes> {
        let at = |line: u64| crate::textutil::file_line(origin, line);
        let doc: Doc = serde_saphyr::from_str(text).map_err(|e| {
            let line = e.location().map_or(0, |l| l.line());
            let msg = e.without_snippet().to_string();
            anyhow::anyhow!(
                "{}: invalid server recipes: {}",
                at(line),
                msg.lines().next().unwrap_or(&msg)
            )
        })?;
        if doc.version.value != SCHEMA_VERSION {
            anyhow::bail!(
                "{}: version: expected {SCHEMA_VERSION}, found {}",
                at(doc.version.referenced.line()),
                doc.version.value
            );
        }
        let mut recipes = BTreeMap::new();
        for (name, spanned) in doc.servers {
            let line = spanned.referenced.line();
            let r = spanned.value;
            let bad = |msg: String| anyhow::anyhow!("{}: server `{name}`: {msg}", at(line));
            let well_formed = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && name.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.')
                });
            if !well_formed {
                return Err(bad(
                    "a recipe name is a test-name label: lower-case letters, digits, `_` and `.`, starting with a letter".into(),
                ));
            }
            if matches!(
                name.as_str(),
                "pytorch" | "_autodeploy" | "streaming" | "exe"
            ) {
                return Err(bad(format!("`{name}` is a word of the test-name grammar")));
            }
            if r.command.is_empty() || r.command.iter().any(|w| w.trim().is_empty()) {
                return Err(bad(
                    "command: expected a program (and subcommand), no empty words".into(),
                ));
            }
            let mut args = Vec::new();
            let mut words: Vec<String> = Vec::new();
            for a in r.args {
                match a {
                    ArgDoc::Word(w) => {
                        words.push(w.clone());
                        args.push(ArgGroup::Word(w));
                    }
                    ArgDoc::Group(g) => {
                        if g.is_empty() {
                            return Err(bad("args: an empty list".into()));
                        }
                        words.extend(g.iter().cloned());
                        args.push(ArgGroup::Optional(g));
                    }
                }
            }
            for w in words.iter().chain(r.env.values()) {
                for p in placeholders(w) {
                    if !PLACEHOLDERS.contains(&p) {
                        let near = crate::textutil::closest(p, PLACEHOLDERS, 1);
                        return Err(bad(format!(
                            "unknown placeholder `{{{p}}}`{} (known: {})",
                            near.first()
                                .map(|n| format!("; did you mean `{{{n}}}`?"))
                                .unwrap_or_default(),
                            PLACEHOLDERS.join(", ")
                        )));
                    }
                }
            }
            let uses = |p: &str| words.iter().any(|w| placeholders(w).contains(&p));
            if r.ready.report_addr {
                if !uses("report_addr") {
                    return Err(bad(
                        "ready.report_addr: the arguments must pass `{report_addr}`".into(),
                    ));
                }
            } else if !uses("port") {
                return Err(bad(
                    "args: pass `{port}` (a free port the runner picks) or set ready.report_addr"
                        .into(),
                ));
            }
            if !r.ready.path.starts_with('/') {
                return Err(bad(format!(
                    "ready.path: expected a URL path starting with `/`, found `{}`",
                    r.ready.path
                )));
            }
            if !CLIENT_KINDS.contains(&r.client.kind.as_str()) {
                return Err(bad(format!(
                    "client.kind: `{}` is none of {}",
                    r.client.kind,
                    CLIENT_KINDS.join(", ")
                )));
            }
            if !matches!(r.client.endpoint.as_str(), "completions" | "chat") {
                return Err(bad(format!(
                    "client.endpoint: expected completions or chat, found `{}`",
                    r.client.endpoint
                )));
            }
            if r.llm_api_config && !uses("config") {
                return Err(bad(
                    "llm_api_config: the arguments must pass `{config}` to the server".into(),
                ));
            }
            recipes.insert(
                name.clone(),
                ServerRecipe {
                    name,
                    about: r.about,
                    command: r.command,
                    args,
                    env: r.env.into_iter().collect(),
                    ready_path: r.ready.path,
                    ready_timeout_s: r.ready.timeout_s,
                    report_addr: r.ready.report_addr,
                    client_kind: r.client.kind,
                    endpoint: r.client.endpoint,
                    warmup: r.client.warmup,
                    llm_api_config: r.llm_api_config,
                    line,
                },
            );
        }
        if !recipes.contains_key("trtllm") {
            anyhow::bail!(
                "{}: servers: the `trtllm` recipe is missing (upstream's serve names run it)",
                at(0)
            );
        }
        Ok(ServerRecipes {
            recipes,
            origin: origin.to_string(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&ServerRecipe> {
        self.recipes.get(name)
    }

    /// The recipe names, for messages.
    pub fn names(&self) -> Vec<&str> {
        self.recipes.keys().map(String::as_str).collect()
    }
}

impl ServerRecipe {
    /// Whether an argument passes `{placeholder}`.
    pub fn uses(&self, placeholder: &str) -> bool {
        self.args.iter().any(|a| {
            let words: &[String] = match a {
                ArgGroup::Word(w) => std::slice::from_ref(w),
                ArgGroup::Optional(g) => g,
            };
            words.iter().any(|w| placeholders(w).contains(&placeholder))
        })
    }

    /// The argv with every placeholder `values` has filled in; a group with a placeholder
    /// lacking a value is left out, and so is a bare word (a mistake in the recipe, reported).
    /// `{port}` and `{report_addr}` are for the runner and stay when `values` lacks them.
    pub fn argv(
        &self,
        command: &[String],
        values: &BTreeMap<&str, String>,
    ) -> Result<Vec<String>, String> {
        let fill = |w: &str| -> Option<String> {
            let mut out = w.to_string();
            for p in placeholders(w) {
                match values.get(p) {
                    Some(v) => out = out.replace(&format!("{{{p}}}"), v),
                    None if p == "port" => {}
                    None => return None,
                }
            }
            Some(out)
        };
        let mut argv: Vec<String> = command.to_vec();
        for a in &self.args {
            match a {
                ArgGroup::Word(w) => argv.push(fill(w).ok_or_else(|| {
                    format!(
                        "server recipe `{}`: `{w}` needs a value this test does not give",
                        self.name
                    )
                })?),
                ArgGroup::Optional(g) => {
                    let filled: Option<Vec<String>> = g.iter().map(|w| fill(w)).collect();
                    argv.extend(filled.into_iter().flatten());
                }
            }
        }
        Ok(argv)
    }

    /// The environment with its placeholders filled in.
    pub fn env(&self, values: &BTreeMap<&str, String>) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(k, v)| {
                let mut out = v.clone();
                for p in placeholders(v) {
                    if let Some(val) = values.get(p) {
                        out = out.replace(&format!("{{{p}}}"), val);
                    }
                }
                (k.clone(), out)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_recipes_load() {
        let r = ServerRecipes::parse(
            include_str!("../../model_configs/servers.yaml"),
            "model_configs/servers.yaml",
        )
        .expect("recipes");
        assert_eq!(
            r.names(),
            ["llama.cpp", "sglang", "transformers", "trtllm", "vllm"]
        );
        let llama = r.get("llama.cpp").expect("llama.cpp");
        let mut v = BTreeMap::new();
        v.insert("model_path", "/m/tiny.gguf".to_string());
        v.insert("model_name", "tiny".to_string());
        v.insert("host", "127.0.0.1".to_string());
        v.insert("concurrency", "4".to_string());
        let argv = llama.argv(&["llama-server".into()], &v).expect("argv");
        assert_eq!(
            argv,
            [
                "llama-server",
                "-m",
                "/m/tiny.gguf",
                "--alias",
                "tiny",
                "-np",
                "4",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--metrics"
            ]
        );
    }

    #[test]
    fn mistakes_name_their_line() {
        let text = "version: 1\nservers:\n  trtllm:\n    about: x\n    command: [a]\n    args: [\"{prot}\"]\n    ready: {path: /health}\n    client: {kind: trtllm, endpoint: completions}\n";
        let e = ServerRecipes::parse(text, "s.yaml").expect_err("bad placeholder");
        assert!(e.to_string().starts_with("s.yaml:4:"), "{e}");
        assert!(e.to_string().contains("did you mean `{port}`"), "{e}");
        let text = "version: 1\nservers:\n  trtllm:\n    about: x\n    comand: [a]\n";
        let e = ServerRecipes::parse(text, "s.yaml").expect_err("unknown key");
        assert!(e.to_string().starts_with("s.yaml:5"), "{e}");
    }
}
