//! Which source revision a run measured: the commit, its branch and the CI build that ran it.
//!
//! Explicit flags (`--revision`, `--branch`, `--build-url`, or `PERF_REVISION`, `PERF_BRANCH`,
//! `PERF_BUILD_URL`) win, field by field; what they leave out comes from the CI system's own
//! variables (Jenkins, GitHub Actions, GitLab CI). Detection is a pure function of an environment
//! lookup, so every CI system is tested without being one.

use serde::Serialize;

/// A run's provenance as resolved. Every field is optional: a run on a laptop has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Provenance {
    pub revision: Option<String>,
    pub branch: Option<String>,
    pub build_url: Option<String>,
}

/// The CI systems whose variables are read, in the order they are tried. Jenkins comes last:
/// its variable names (`GIT_COMMIT`, `BUILD_URL`) are generic enough that another system or a
/// user script may set them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ci {
    GithubActions,
    Gitlab,
    Jenkins,
}

impl Provenance {
    /// What was given explicitly (flags or `PERF_*`), blanks dropped: for imports, where the
    /// importing job's CI is not the one that ran the benchmarks.
    pub fn explicit(
        revision: Option<String>,
        branch: Option<String>,
        build_url: Option<String>,
    ) -> Provenance {
        Provenance {
            revision: non_empty(revision),
            branch: non_empty(branch),
            build_url: non_empty(build_url),
        }
    }

    /// These values, each completed from the CI variables read through `env`.
    pub fn completed_with(self, env: impl Fn(&str) -> Option<String>) -> Provenance {
        self.or(detect(env).1)
    }

    /// [`Provenance::completed_with`] over this process's environment.
    pub fn completed(self) -> Provenance {
        self.completed_with(|k| std::env::var(k).ok())
    }

    /// Each field of `self`, else of `other`.
    pub fn or(self, other: Provenance) -> Provenance {
        Provenance {
            revision: self.revision.or(other.revision),
            branch: self.branch.or(other.branch),
            build_url: self.build_url.or(other.build_url),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.revision.is_none() && self.branch.is_none() && self.build_url.is_none()
    }
}

/// The CI system `env` describes (if any) and what its variables say. A variable set to an
/// empty string counts as unset (CI systems export some of them empty, e.g. `GITHUB_HEAD_REF`
/// outside pull requests).
pub fn detect(env: impl Fn(&str) -> Option<String>) -> (Option<Ci>, Provenance) {
    let get = |k: &str| non_empty(env(k));
    if get("GITHUB_ACTIONS").is_some() || get("GITHUB_SHA").is_some() {
        let build_url = match (
            get("GITHUB_SERVER_URL"),
            get("GITHUB_REPOSITORY"),
            get("GITHUB_RUN_ID"),
        ) {
            (Some(server), Some(repo), Some(run)) => Some(format!(
                "{}/{repo}/actions/runs/{run}",
                server.trim_end_matches('/')
            )),
            _ => None,
        };
        return (
            Some(Ci::GithubActions),
            Provenance {
                revision: get("GITHUB_SHA"),
                branch: get("GITHUB_HEAD_REF").or_else(|| get("GITHUB_REF_NAME")),
                build_url,
            },
        );
    }
    if get("GITLAB_CI").is_some() || get("CI_COMMIT_SHA").is_some() {
        return (
            Some(Ci::Gitlab),
            Provenance {
                revision: get("CI_COMMIT_SHA"),
                branch: get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
                    .or_else(|| get("CI_COMMIT_REF_NAME")),
                build_url: get("CI_JOB_URL"),
            },
        );
    }
    if get("JENKINS_URL").is_some() || get("GIT_COMMIT").is_some() || get("BUILD_URL").is_some() {
        let branch = get("BRANCH_NAME").or_else(|| {
            get("GIT_BRANCH").map(|b| b.strip_prefix("origin/").unwrap_or(&b).to_string())
        });
        return (
            Some(Ci::Jenkins),
            Provenance {
                revision: get("GIT_COMMIT"),
                branch: non_empty(branch),
                build_url: get("BUILD_URL"),
            },
        );
    }
    (None, Provenance::default())
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}
