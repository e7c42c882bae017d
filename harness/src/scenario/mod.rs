//! The scenario format: one YAML file per scenario, a list of typed steps, parsed strictly
//! (unknown keys, unknown steps and wrong types are errors with file, line and column).

use crate::chart::helm::HelmMajor;
use crate::error::InputError;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};

mod steps;
pub use steps::*;

/// One scenario file.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique name within a suite (letters, digits, '-', '_', '.').
    pub name: String,
    /// What it proves, in a sentence.
    #[serde(default)]
    pub description: String,
    /// What it proves, as a short name for its JUnit test case (default: the name), e.g.
    /// "500 from metrics endpoint triggers fallback".
    #[serde(default)]
    pub proves: Option<String>,
    /// Chart directory or .tgz, relative to the scenario file.
    pub chart: PathBuf,
    /// Required chart version.
    #[serde(default)]
    pub version: Option<String>,
    /// Values files, relative to the scenario file.
    #[serde(default)]
    pub values: Vec<PathBuf>,
    /// `--set` expressions.
    #[serde(default)]
    pub set: Vec<String>,
    /// Helm major versions to run with (default: both).
    #[serde(default = "both_helms")]
    pub helm: Vec<Helm>,
    /// Release name.
    #[serde(default = "default_release")]
    pub release: String,
    /// Namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Live-tier settings.
    #[serde(default)]
    pub live: LiveSettings,
    /// The steps, in order; each is a one-key map such as `- render: {...}`.
    #[serde(with = "serde_yaml_ng::with::singleton_map_recursive")]
    pub steps: Vec<Step>,
    /// The file it came from (set by the loader).
    #[serde(skip)]
    pub file: PathBuf,
}

/// A Helm major version as written in a scenario (`3` or `4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Helm(pub HelmMajor);

impl serde::Serialize for Helm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0.number())
    }
}

impl<'de> Deserialize<'de> for Helm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_yaml_ng::Value::deserialize(d)?;
        let s = match &v {
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            serde_yaml_ng::Value::String(s) => s.clone(),
            _ => String::new(),
        };
        HelmMajor::parse(&s)
            .map(Helm)
            .ok_or_else(|| serde::de::Error::custom(format!("helm must be 3 or 4, got {s:?}")))
    }
}

fn both_helms() -> Vec<Helm> {
    vec![Helm(HelmMajor::V3), Helm(HelmMajor::V4)]
}
fn default_release() -> String {
    "tempo".into()
}
fn default_namespace() -> String {
    "tempo".into()
}

/// The 1-based line where `needle` first starts a line, or else first appears.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.trim_start().starts_with(needle))
        .or_else(|| text.lines().position(|l| l.contains(needle)))
        .map(|i| i + 1)
}

impl Scenario {
    /// Parses one scenario file and checks what the schema cannot.
    ///
    /// # Errors
    /// An [`InputError`] with file, line and column for syntax, unknown keys or steps, wrong
    /// types, and impossible expectations.
    pub fn load(path: &Path) -> Result<Self, InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InputError::in_file(
                path,
                None,
                None,
                format!("cannot read scenario: {e}"),
                "check the --suite path",
            )
        })?;
        crate::yaml_guard::check(path, &text, "invalid scenario")?;
        let mut s: Scenario = serde_yaml_ng::from_str(&text).map_err(|e| {
            let loc = e.location();
            InputError::in_file(
                path,
                loc.as_ref().map(|l| l.line()),
                loc.as_ref().map(|l| l.column()),
                format!("invalid scenario: {e}"),
                "see suites/README.md for the scenario format (keys: name, description, proves, chart, version, values, set, helm, release, namespace, live, steps; steps: render, install, seed, expect_replicas, expect_flapping, expect_condition, expect_event, expect_requests, set_mock, wait, upgrade)",
            )
        })?;
        s.file = path.to_path_buf();
        let bad = |needle: &str, problem: String, fix: &str| {
            InputError::in_file(path, line_of(&text, needle), None, problem, fix)
        };
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad(
                "name:",
                format!(
                    "scenario name {:?} must be non-empty letters, digits, '-', '_' or '.'",
                    s.name
                ),
                "rename it, e.g. name: compactor-sends-tenant-header",
            ));
        }
        if !s.name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(bad(
                "name:",
                format!(
                    "scenario name {:?} must start with a letter or digit",
                    s.name
                ),
                "rename it, e.g. name: compactor-sends-tenant-header",
            ));
        }
        if let Some(problem) = crate::names::release_problem(&s.release) {
            return Err(bad(
                "release:",
                problem,
                "write a release name such as release: tempo",
            ));
        }
        if let Some(problem) = crate::names::namespace_problem(&s.namespace) {
            return Err(bad(
                "namespace:",
                problem,
                "write a namespace such as namespace: tempo",
            ));
        }
        if s.steps.is_empty() {
            return Err(bad(
                "steps:",
                "a scenario needs at least one step".into(),
                "add a step such as `- render: {}`",
            ));
        }
        if s.helm.is_empty() {
            return Err(bad(
                "helm:",
                "helm lists no versions".into(),
                "write helm: [3, 4] or remove the key",
            ));
        }
        for step in &s.steps {
            let answer = match step {
                Step::SetMock(b) => Some(("set_mock", b)),
                Step::Install(i) => i.mock.as_ref().map(|b| ("mock:", b)),
                _ => None,
            };
            if let Some((needle, problem)) = answer.and_then(|(n, b)| b.problem().map(|p| (n, p))) {
                return Err(bad(
                    needle,
                    problem,
                    "answer with a status such as {status: {code: 500, body: \"boom\"}}",
                ));
            }
        }
        let mut installed = false;
        for (i, step) in s.steps.iter().enumerate() {
            match step {
                Step::Render(_) if i != 0 => {
                    return Err(bad(
                        "- render",
                        "render must be the first step".into(),
                        "move the render step to the top",
                    ));
                }
                Step::SetMock(_) | Step::ExpectRequests(_)
                    if !s.steps.iter().any(|x| {
                        matches!(
                            x,
                            Step::Install(InstallStep {
                                metrics: MetricsEndpoint::Mock | MetricsEndpoint::Proxy,
                                ..
                            })
                        )
                    }) =>
                {
                    return Err(bad(
                        &format!("- {}", step.keyword()),
                        format!(
                            "{} needs `install: {{metrics: mock}}` or `{{metrics: proxy}}`",
                            step.keyword()
                        ),
                        "point the trigger at the mock in the install step",
                    ));
                }
                Step::Install(_) => {
                    if i == 0 {
                        return Err(bad("- install", "install needs a render step before it (the render tier finds the trigger and its target)".into(), "add `- render: {}` as the first step"));
                    }
                    installed = true;
                }
                Step::ExpectReplicas(e) => {
                    if e.exact.is_some() == e.oracle {
                        return Err(bad(
                            "- expect_replicas",
                            "expect_replicas needs exactly one of `exact: N` or `oracle: true`"
                                .into(),
                            "write e.g. `- expect_replicas: {exact: 3}` or `{oracle: true}`",
                        ));
                    }
                    if e.exact.map(|n| n < 0).unwrap_or(false) {
                        return Err(bad(
                            "- expect_replicas",
                            "exact replicas must not be negative".into(),
                            "use a count >= 0",
                        ));
                    }
                }
                Step::ExpectFlapping(f) if f.min_reversals < 2 => {
                    return Err(bad(
                        "min_reversals:",
                        format!(
                            "min_reversals {} cannot tell flapping from one scale-up and scale-down",
                            f.min_reversals
                        ),
                        "use min_reversals: 2 or more",
                    ));
                }
                Step::ExpectRequests(r) => {
                    if let (Some(lo), Some(hi)) = (r.min_interval, r.max_interval) {
                        if lo.0 > hi.0 {
                            return Err(bad(
                                "min_interval:",
                                format!(
                                    "impossible expectation: min_interval {:?} > max_interval {:?}",
                                    lo.0, hi.0
                                ),
                                "make min_interval <= max_interval",
                            ));
                        }
                    }
                }
                Step::ExpectCondition(c)
                    if !["True", "False", "Unknown"].contains(&c.status.as_str()) =>
                {
                    return Err(bad(
                        "status:",
                        format!(
                            "condition status {:?} is not True, False or Unknown",
                            c.status
                        ),
                        "quote it: status: \"True\"",
                    ));
                }
                _ => {}
            }
            if step.is_live() && !matches!(step, Step::Install(_)) && !installed {
                return Err(bad(
                    &format!("- {}", step.keyword()),
                    format!("{} needs an install step before it", step.keyword()),
                    "add `- install: {}` after render",
                ));
            }
            let Step::Render(r) = step else { continue };
            if let Some(rep) = r.replicas {
                if rep.min > rep.max || rep.min < 0 {
                    return Err(bad(
                        "replicas:",
                        format!(
                            "impossible expectation: replicas min {} > max {} (or negative)",
                            rep.min, rep.max
                        ),
                        "make min <= max",
                    ));
                }
            }
            if let Some(t) = &r.target {
                if !["Deployment", "StatefulSet"].contains(&t.kind.as_str()) {
                    return Err(bad(
                        "kind:",
                        format!("target kind {:?} is not Deployment or StatefulSet", t.kind),
                        "use kind: Deployment or kind: StatefulSet",
                    ));
                }
            }
            for id in &r.failing_checks {
                if crate::checks::check(id).is_none() {
                    let ids: Vec<&str> = crate::checks::CATALOG.iter().map(|c| c.id).collect();
                    return Err(bad(
                        &format!("- {id}"),
                        format!("unknown check id {id:?} in failing_checks"),
                        &format!("use one of: {}", ids.join(", ")),
                    ));
                }
            }
            for name in r.expect_headers.keys() {
                if !crate::keda::goparse::is_token(name) {
                    return Err(bad(
                        name,
                        format!("{name:?} is not a valid HTTP header name"),
                        "use letters, digits and '-' only, e.g. X-Scope-OrgID",
                    ));
                }
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        s.chart = base.join(&s.chart);
        for step in s.steps.iter_mut() {
            if let Step::Upgrade(u) = step {
                u.chart = base.join(&u.chart);
                if !u.chart.exists() {
                    return Err(bad(
                        "- upgrade",
                        format!("upgrade chart {} does not exist", u.chart.display()),
                        "fix the path (relative to the scenario file)",
                    ));
                }
                if let Some(v) = u.values.as_mut() {
                    *v = v.iter().map(|f| base.join(f)).collect();
                }
            }
        }
        s.values = s.values.iter().map(|v| base.join(v)).collect();
        for v in &s.values {
            if !v.is_file() {
                return Err(bad(
                    "values:",
                    format!("values file {} does not exist", v.display()),
                    "fix the path (relative to the scenario file)",
                ));
            }
        }
        if !s.chart.exists() {
            return Err(bad(
                "chart:",
                format!("chart {} does not exist", s.chart.display()),
                "fix the path (relative to the scenario file)",
            ));
        }
        Ok(s)
    }
}

/// Loads a suite: one scenario file, or every `*.yaml` in a directory (sorted), with unique names.
///
/// # Errors
/// The first [`InputError`] of any file, or a duplicate name naming both files.
pub fn load_suite(path: &Path) -> Result<Vec<Scenario>, InputError> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut f: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| {
                InputError::in_file(
                    path,
                    None,
                    None,
                    format!("cannot read suite: {e}"),
                    "check the --suite path",
                )
            })?
            // Regular files only (not followed through links): a FIFO named x.yaml would
            // block the read forever.
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        f.sort();
        f
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else if path.exists() {
        return Err(InputError::in_flag(
            "--suite",
            format!("{} is not a regular file or a directory", path.display()),
            "pass a scenario file or a directory of them",
        ));
    } else {
        return Err(InputError::in_flag(
            "--suite",
            format!("{} does not exist", path.display()),
            "pass a scenario file or a directory of them (default: suites/default)",
        ));
    };
    if files.is_empty() {
        return Err(InputError::in_flag(
            "--suite",
            format!("{} holds no .yaml scenarios", path.display()),
            "point --suite at a directory with scenario files",
        ));
    }
    let mut out: Vec<Scenario> = Vec::new();
    for f in files {
        let s = Scenario::load(&f)?;
        if let Some(prev) = out.iter().find(|p| p.name == s.name) {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            return Err(InputError::in_file(
                &f,
                line_of(&text, "name:"),
                None,
                format!(
                    "duplicate scenario name {:?} (also in {})",
                    s.name,
                    prev.file.display()
                ),
                "give each scenario a unique name",
            ));
        }
        out.push(s);
    }
    Ok(out)
}
