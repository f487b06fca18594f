//! The rules file: its YAML schema, loading with file:line errors, and the checks that make a
//! wrong file fail loudly instead of quietly producing a thinner config.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use super::error::LlmApiError;
use super::placeholders::{self, Section};

/// Loaded LLM API rules. Build one with [`Rules::load`] or [`Rules::from_str`]; use it with
/// [`Rules::config_for`] and [`Rules::lint`].
#[derive(Debug, Clone)]
pub struct Rules {
    /// Where the rules came from, as named in every provenance and error (`path` or origin).
    pub origin: String,
    /// The upstream source the rules reproduce (free text from the file).
    pub source: String,
    pub base: BaseRule,
    pub kv_cache_dtype: KvCacheDtypeRule,
    pub patterns: Vec<PatternRule>,
    pub gpu_rules: Vec<GpuRule>,
    pub lora: LoraRule,
    pub autodeploy: AutodeployRule,
}

/// Step 1: the starting config.
#[derive(Debug, Clone)]
pub struct BaseRule {
    pub line: u64,
    /// All must be substrings of the label (case-sensitive, as upstream's `'pytorch' in label`).
    pub when_label_contains: Vec<String>,
    pub config: Map<String, Value>,
    pub otherwise: Map<String, Value>,
}

/// Steps 2 and 6: the label's `<label_field>:<value>` staged under the top-level key
/// `label_field`, then moved to the dotted path `move_to` after all other rules.
#[derive(Debug, Clone)]
pub struct KvCacheDtypeRule {
    pub line: u64,
    pub label_field: String,
    pub move_to: Vec<String>,
}

/// Step 3: one ordered pattern entry.
#[derive(Debug, Clone)]
pub struct PatternRule {
    /// 1-based position in the file's `patterns` list.
    pub number: usize,
    pub line: u64,
    pub note: Option<String>,
    /// Any one of them as a substring of the lowercased label selects the entry.
    pub patterns: Vec<String>,
    pub config: Map<String, Value>,
}

/// Step 4: defaults that depend on the GPU's SM version.
#[derive(Debug, Clone)]
pub struct GpuRule {
    pub number: usize,
    pub line: u64,
    pub note: Option<String>,
    pub min_sm: u32,
    pub max_sm: Option<u32>,
    pub when_label_contains: Vec<String>,
    pub patterns: Vec<String>,
    /// Filled in only where the key is still missing (Python's `setdefault`).
    pub defaults: Map<String, Value>,
}

/// Step 5: the LoRA config, a shallow replacement of top-level keys.
#[derive(Debug, Clone)]
pub struct LoraRule {
    pub line: u64,
    pub when_label_contains: Vec<String>,
    pub count_label_field: String,
    pub set: Map<String, Value>,
}

/// The fixed file for `_autodeploy` labels.
#[derive(Debug, Clone)]
pub struct AutodeployRule {
    pub line: u64,
    pub config: Map<String, Value>,
}

// ---- The file as written (serde); converted and checked into the types above. ----

const SCHEMA_VERSION: u32 = 1;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesDoc {
    version: Spanned<u32>,
    source: String,
    base: Spanned<BaseDoc>,
    kv_cache_dtype: Spanned<KvCacheDtypeDoc>,
    patterns: Vec<Spanned<PatternDoc>>,
    #[serde(default)]
    gpu_rules: Vec<Spanned<GpuRuleDoc>>,
    lora: Spanned<LoraDoc>,
    autodeploy: Spanned<AutodeployDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BaseDoc {
    when_label_contains: Vec<String>,
    config: Map<String, Value>,
    otherwise: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KvCacheDtypeDoc {
    label_field: String,
    move_to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternDoc {
    #[serde(default)]
    note: Option<String>,
    patterns: Vec<String>,
    config: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GpuRuleDoc {
    #[serde(default)]
    note: Option<String>,
    min_sm: u32,
    #[serde(default)]
    max_sm: Option<u32>,
    #[serde(default)]
    when_label_contains: Vec<String>,
    patterns: Vec<String>,
    defaults: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoraDoc {
    when_label_contains: Vec<String>,
    count_label_field: String,
    set: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutodeployDoc {
    config: Map<String, Value>,
}

impl Rules {
    /// Reads and checks a rules file. Errors name `path:line[:col]`.
    pub fn load(path: &Path) -> Result<Rules, LlmApiError> {
        let origin = path.display().to_string();
        let text = crate::textutil::read_text(path)?;
        Rules::from_str(&text, &origin)
    }

    /// Parses rules from text; `origin` names the text in errors and provenance.
    #[allow(clippy::should_implement_trait)] // needs the origin, so not FromStr
    pub fn from_str(text: &str, origin: &str) -> Result<Rules, LlmApiError> {
        let doc: RulesDoc =
            serde_saphyr::from_str(text).map_err(|e| LlmApiError::from_yaml(origin, &e))?;
        Checker { origin }.check(doc)
    }

    /// `origin:line`, the way provenance and warnings point into the file.
    pub fn at(&self, line: u64) -> String {
        crate::textutil::file_line(&self.origin, line)
    }
}

struct Checker<'a> {
    origin: &'a str,
}

impl Checker<'_> {
    fn err(&self, line: u64, message: impl Into<String>) -> LlmApiError {
        LlmApiError::invalid(self.origin, line, message)
    }

    fn check(&self, doc: RulesDoc) -> Result<Rules, LlmApiError> {
        if doc.version.value != SCHEMA_VERSION {
            return Err(self.err(
                doc.version.referenced.line(),
                format!(
                    "version: expected {SCHEMA_VERSION}, found {}",
                    doc.version.value
                ),
            ));
        }
        Ok(Rules {
            origin: self.origin.to_string(),
            source: doc.source,
            base: self.base(doc.base)?,
            kv_cache_dtype: self.kv_cache_dtype(doc.kv_cache_dtype)?,
            patterns: doc
                .patterns
                .into_iter()
                .enumerate()
                .map(|(i, entry)| self.pattern(i + 1, entry))
                .collect::<Result<_, _>>()?,
            gpu_rules: doc
                .gpu_rules
                .into_iter()
                .enumerate()
                .map(|(i, entry)| self.gpu_rule(i + 1, entry))
                .collect::<Result<_, _>>()?,
            lora: self.lora(doc.lora)?,
            autodeploy: self.autodeploy(doc.autodeploy)?,
        })
    }

    fn base(&self, doc: Spanned<BaseDoc>) -> Result<BaseRule, LlmApiError> {
        let line = doc.referenced.line();
        let doc = doc.value;
        self.non_empty_strings(line, "base.when_label_contains", &doc.when_label_contains)?;
        self.placeholders(line, "base.config", &doc.config, Section::Config)?;
        self.placeholders(line, "base.otherwise", &doc.otherwise, Section::Config)?;
        Ok(BaseRule {
            line,
            when_label_contains: doc.when_label_contains,
            config: doc.config,
            otherwise: doc.otherwise,
        })
    }

    fn kv_cache_dtype(
        &self,
        doc: Spanned<KvCacheDtypeDoc>,
    ) -> Result<KvCacheDtypeRule, LlmApiError> {
        let line = doc.referenced.line();
        let doc = doc.value;
        if doc.label_field.is_empty() || doc.label_field.contains(['-', ':']) {
            return Err(self.err(
                line,
                format!(
                    "kv_cache_dtype.label_field: expected a label field name without '-' or ':', found {:?}",
                    doc.label_field
                ),
            ));
        }
        let move_to: Vec<String> = doc.move_to.split('.').map(str::to_string).collect();
        if move_to.iter().any(String::is_empty) {
            return Err(self.err(
                line,
                format!(
                    "kv_cache_dtype.move_to: expected a dotted key path like kv_cache_config.dtype, found {:?}",
                    doc.move_to
                ),
            ));
        }
        Ok(KvCacheDtypeRule {
            line,
            label_field: doc.label_field,
            move_to,
        })
    }

    fn pattern(&self, number: usize, doc: Spanned<PatternDoc>) -> Result<PatternRule, LlmApiError> {
        let line = doc.referenced.line();
        let doc = doc.value;
        let what = format!("patterns #{number}");
        self.patterns_list(line, &what, &doc.patterns)?;
        self.placeholders(
            line,
            &format!("{what} config"),
            &doc.config,
            Section::Config,
        )?;
        Ok(PatternRule {
            number,
            line,
            note: doc.note,
            patterns: doc.patterns,
            config: doc.config,
        })
    }

    fn gpu_rule(&self, number: usize, doc: Spanned<GpuRuleDoc>) -> Result<GpuRule, LlmApiError> {
        let line = doc.referenced.line();
        let doc = doc.value;
        let what = format!("gpu_rules #{number}");
        self.patterns_list(line, &what, &doc.patterns)?;
        self.non_empty_strings(
            line,
            &format!("{what} when_label_contains"),
            &doc.when_label_contains,
        )?;
        if let Some(max_sm) = doc.max_sm
            && max_sm < doc.min_sm
        {
            return Err(self.err(
                line,
                format!("{what}: max_sm {max_sm} is below min_sm {}", doc.min_sm),
            ));
        }
        if doc.defaults.is_empty() {
            return Err(self.err(
                line,
                format!("{what}: defaults is empty, the rule would do nothing"),
            ));
        }
        self.placeholders(
            line,
            &format!("{what} defaults"),
            &doc.defaults,
            Section::Config,
        )?;
        Ok(GpuRule {
            number,
            line,
            note: doc.note,
            min_sm: doc.min_sm,
            max_sm: doc.max_sm,
            when_label_contains: doc.when_label_contains,
            patterns: doc.patterns,
            defaults: doc.defaults,
        })
    }

    fn lora(&self, doc: Spanned<LoraDoc>) -> Result<LoraRule, LlmApiError> {
        let line = doc.referenced.line();
        let doc = doc.value;
        self.non_empty_strings(line, "lora.when_label_contains", &doc.when_label_contains)?;
        if doc.count_label_field.is_empty() || doc.count_label_field.contains(['-', ':']) {
            return Err(self.err(
                line,
                format!(
                    "lora.count_label_field: expected a label field name without '-' or ':', found {:?}",
                    doc.count_label_field
                ),
            ));
        }
        if doc.set.is_empty() {
            return Err(self.err(line, "lora.set is empty, the rule would do nothing"));
        }
        self.placeholders(line, "lora.set", &doc.set, Section::Lora)?;
        Ok(LoraRule {
            line,
            when_label_contains: doc.when_label_contains,
            count_label_field: doc.count_label_field,
            set: doc.set,
        })
    }

    fn autodeploy(&self, doc: Spanned<AutodeployDoc>) -> Result<AutodeployRule, LlmApiError> {
        let line = doc.referenced.line();
        let doc = doc.value;
        self.placeholders(line, "autodeploy.config", &doc.config, Section::Config)?;
        Ok(AutodeployRule {
            line,
            config: doc.config,
        })
    }

    fn patterns_list(&self, line: u64, what: &str, patterns: &[String]) -> Result<(), LlmApiError> {
        if patterns.is_empty() {
            return Err(self.err(
                line,
                format!("{what}: patterns is empty, the entry could never apply"),
            ));
        }
        // An empty pattern is a substring of every label: almost certainly a mistake.
        self.non_empty_strings(line, &format!("{what} patterns"), patterns)
    }

    fn non_empty_strings(
        &self,
        line: u64,
        what: &str,
        items: &[String],
    ) -> Result<(), LlmApiError> {
        match items.iter().position(|s| s.is_empty()) {
            Some(i) => Err(self.err(
                line,
                format!(
                    "{what}: item {} is an empty string, which matches every label",
                    i + 1
                ),
            )),
            None => Ok(()),
        }
    }

    fn placeholders(
        &self,
        line: u64,
        what: &str,
        config: &Map<String, Value>,
        section: Section,
    ) -> Result<(), LlmApiError> {
        placeholders::check(config, section)
            .map_err(|problem| self.err(line, format!("{what}: {problem}")))
    }
}
