//! The perf-sanity test-id grammar: the `<label>` of upstream's
//! `perf/test_perf_sanity.py::test_e2e[<label>]` (`parse_test_string` in
//! `tests/integration/defs/perf/test_perf_sanity.py`):
//!
//! - `aggr[_upload]-<config>[-<server>[,<server>...]]`: the servers of an aggregated config;
//! - `aggr[_upload]-ctx_only-<disagg config>`: a disaggregated config's context worker, run
//!   aggregated;
//! - `disagg[_upload]-{e2e,gen_only}-<disagg config>`.
//!
//! Upstream accepts any first label that merely contains `aggr` or `disagg` (its parametrization
//! only ever produces the four below); perfgate accepts the four, so a misspelt prefix is named
//! rather than run.

use serde::Serialize;

use super::error::{NameError, NameErrorKind as K};

/// A parsed perf-sanity label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SanityId {
    /// The label as written (the id's `[...]`).
    pub label: String,
    /// `_upload`: upstream uploads the results to its database.
    pub upload: bool,
    pub kind: SanityKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SanityKind {
    /// An aggregated config's servers; `select` names some of them.
    Aggregated {
        config: String,
        select: Option<Vec<String>>,
    },
    /// A disaggregated config's context worker run aggregated (output length 1).
    CtxOnly {
        config: String,
    },
    Disaggregated {
        mode: DisaggMode,
        config: String,
    },
}

/// What a disaggregated perf-sanity test measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisaggMode {
    E2e,
    GenOnly,
}

impl DisaggMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DisaggMode::E2e => "e2e",
            DisaggMode::GenOnly => "gen_only",
        }
    }
}

const PREFIXES: [&str; 4] = ["aggr", "aggr_upload", "disagg", "disagg_upload"];

impl SanityId {
    /// The config's base name (without `.yaml`).
    pub fn config(&self) -> &str {
        match &self.kind {
            SanityKind::Aggregated { config, .. }
            | SanityKind::CtxOnly { config }
            | SanityKind::Disaggregated { config, .. } => config,
        }
    }

    /// Upstream's config file name: `<config>.yaml` unless it already ends so.
    pub fn config_file(&self) -> String {
        let c = self.config();
        if c.ends_with(".yaml") {
            c.to_string()
        } else {
            format!("{c}.yaml")
        }
    }

    /// Whether the config is read from the disaggregated folder (every mode but plain
    /// aggregated).
    pub fn reads_disaggregated(&self) -> bool {
        !matches!(self.kind, SanityKind::Aggregated { .. })
    }

    /// Upstream's `runtime`: what its database calls the test's serving topology.
    pub fn runtime(&self) -> &'static str {
        match self.kind {
            SanityKind::Disaggregated { .. } => "multi_node_disagg_server",
            _ => "aggr_server",
        }
    }
}

/// Parses the label of a `test_e2e[...]` id.
pub fn parse_sanity(label: &str) -> Result<SanityId, NameError> {
    if label.trim().is_empty() {
        return Err(NameError::new(K::Empty, "the perf-sanity label is empty"));
    }
    if let Some(c) = label
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '\\'))
    {
        return Err(NameError::new(
            K::BadValue,
            format!("the perf-sanity label contains {c:?}; config names are file names"),
        ));
    }
    let labels: Vec<&str> = label.split('-').collect();
    let prefix = labels[0];
    if !PREFIXES.contains(&prefix) {
        let near = crate::textutil::closest(prefix, PREFIXES, 1);
        return Err(NameError::new(
            K::UnknownLabel,
            "a perf-sanity label starts with aggr, aggr_upload, disagg or disagg_upload",
        )
        .at(1, prefix)
        .suggest(near.first().map(|p| {
            std::iter::once(*p)
                .chain(labels[1..].iter().copied())
                .collect::<Vec<_>>()
                .join("-")
        })));
    }
    if labels.len() < 2 || labels[1].is_empty() {
        return Err(NameError::new(
            K::Truncated,
            format!("`{prefix}` needs a config name: `{prefix}-<config>`"),
        ));
    }
    let upload = prefix.contains("upload");
    let rest = |from: usize| labels[from..].join("-");
    let kind = if prefix.starts_with("disagg") {
        let mode = match labels[1] {
            "e2e" => DisaggMode::E2e,
            "gen_only" => DisaggMode::GenOnly,
            other => {
                return Err(NameError::new(
                    K::BadValue,
                    "a disaggregated perf-sanity label is `disagg[_upload]-{e2e,gen_only}-<config>`",
                )
                .at(2, other));
            }
        };
        if labels.len() < 3 {
            return Err(NameError::new(
                K::Truncated,
                format!("`{prefix}-{}` needs a config name", labels[1]),
            ));
        }
        SanityKind::Disaggregated {
            mode,
            config: rest(2),
        }
    } else if labels.len() > 2 && labels[1] == "ctx_only" {
        SanityKind::CtxOnly { config: rest(2) }
    } else {
        let select = (labels.len() > 2).then(|| {
            rest(2)
                .split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        });
        if let Some(names) = &select
            && names.iter().any(String::is_empty)
        {
            return Err(NameError::new(
                K::Empty,
                "an empty server name in the selection (`,,` or a trailing `,`)",
            ));
        }
        SanityKind::Aggregated {
            config: labels[1].to_string(),
            select,
        }
    };
    let id = SanityId {
        label: label.to_string(),
        upload,
        kind,
    };
    if id.config().is_empty() || id.config().split('-').any(str::is_empty) {
        return Err(NameError::new(
            K::Empty,
            "the config name has an empty part (a leading, trailing or doubled `-`)",
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_grammar() {
        let a = parse_sanity("aggr_upload-gpt_oss_120b_fp4_blackwell-gpt_oss_fp4_tp1_mtp0_1k1k")
            .expect("ok");
        assert!(a.upload);
        assert_eq!(
            a.kind,
            SanityKind::Aggregated {
                config: "gpt_oss_120b_fp4_blackwell".into(),
                select: Some(vec!["gpt_oss_fp4_tp1_mtp0_1k1k".into()])
            }
        );
        assert_eq!(a.config_file(), "gpt_oss_120b_fp4_blackwell.yaml");
        let s = parse_sanity("aggr-cfg-a,b").expect("ok");
        assert!(!s.upload);
        assert!(
            matches!(&s.kind, SanityKind::Aggregated { select: Some(v), .. } if v == &["a", "b"])
        );
        // Server names may hold `-`: the selection is the rest, re-joined.
        let s = parse_sanity("aggr-cfg-x-y").expect("ok");
        assert!(matches!(&s.kind, SanityKind::Aggregated { select: Some(v), .. } if v == &["x-y"]));
        let c = parse_sanity("aggr_upload-ctx_only-b200_deepseek-r1-fp4_1k1k").expect("ok");
        assert_eq!(
            c.kind,
            SanityKind::CtxOnly {
                config: "b200_deepseek-r1-fp4_1k1k".into()
            }
        );
        assert!(c.reads_disaggregated());
        let d = parse_sanity("disagg-gen_only-b200_x-NIXL").expect("ok");
        assert_eq!(
            d.kind,
            SanityKind::Disaggregated {
                mode: DisaggMode::GenOnly,
                config: "b200_x-NIXL".into()
            }
        );
        assert_eq!(d.runtime(), "multi_node_disagg_server");
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse_sanity("agr_upload-cfg").expect_err("prefix");
        assert_eq!(e.suggestion.as_deref(), Some("aggr_upload-cfg"));
        assert!(parse_sanity("disagg-e3e-cfg").is_err());
        assert!(parse_sanity("disagg-e2e").is_err());
        assert!(parse_sanity("aggr").is_err());
        assert!(parse_sanity("aggr-cfg-a,,b").is_err());
        assert!(parse_sanity("aggr-../etc").is_err());
    }
}
