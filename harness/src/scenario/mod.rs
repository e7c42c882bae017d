//! The scenario format: one YAML file per scenario, a list of typed steps, parsed strictly
//! (unknown keys, unknown steps and wrong types are errors with file, line and column).

use crate::chart::helm::HelmMajor;
use crate::error::InputError;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
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

/// A step of a scenario. `render` runs offline; every other step needs a live cluster (the
/// scenario must start with `render` and `install` before them).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Render the chart and run the render checks.
    Render(RenderStep),
    /// Install the chart with real Helm, its triggers pointed at the Mimir-API backend.
    Install(InstallStep),
    /// Set the series a tenant's metrics hold from now on (kept fresh by remote write).
    Seed(SeedStep),
    /// The workload must reach a replica count and hold it.
    ExpectReplicas(ExpectReplicas),
    /// The replica count must reverse direction again and again (demonstrates a defect such
    /// as a query divided by the replica count under AverageValue).
    ExpectFlapping(ExpectFlapping),
    /// The ScaledObject (or KEDA's HPA) must show a condition.
    ExpectCondition(ExpectCondition),
    /// An event must be recorded in the release's namespace.
    ExpectEvent(ExpectEvent),
    /// Let time pass (replicas keep being sampled for the timeline).
    Wait(WaitStep),
    /// Change how the mock answers from now on.
    SetMock(crate::mock::Behaviour),
    /// The requests KEDA sent to the mock or proxy must show these properties.
    ExpectRequests(ExpectRequests),
    /// `helm upgrade` the running release to another chart (version); the ScaledObject must
    /// keep its headers, no second HPA may appear, and the replica count must not be reset.
    Upgrade(UpgradeStep),
}

/// The upgrade step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeStep {
    /// The chart to upgrade to (directory or .tgz, relative to the scenario file).
    pub chart: PathBuf,
    /// Values for the upgrade (default: the scenario's).
    #[serde(default)]
    pub values: Option<Vec<PathBuf>>,
}

impl Step {
    /// The step's name as written in a scenario.
    pub fn keyword(&self) -> &'static str {
        match self {
            Step::Render(_) => "render",
            Step::Install(_) => "install",
            Step::Seed(_) => "seed",
            Step::ExpectReplicas(_) => "expect_replicas",
            Step::ExpectFlapping(_) => "expect_flapping",
            Step::ExpectCondition(_) => "expect_condition",
            Step::ExpectEvent(_) => "expect_event",
            Step::Wait(_) => "wait",
            Step::SetMock(_) => "set_mock",
            Step::ExpectRequests(_) => "expect_requests",
            Step::Upgrade(_) => "upgrade",
        }
    }

    /// True for steps that need a live cluster.
    pub fn is_live(&self) -> bool {
        !matches!(self, Step::Render(_))
    }

    /// The claims a live step makes, named by what they prove (each a JUnit test case).
    /// Setup steps (install, seed, wait, set_mock) make none.
    pub fn claims(&self) -> Vec<String> {
        match self {
            Step::ExpectReplicas(e) => vec![match e.exact {
                Some(n) => format!("workload reaches {n} replicas and holds them"),
                None => "workload reaches the replica count the metrics call for".into(),
            }],
            Step::ExpectFlapping(f) => vec![format!(
                "replicas flap: the count reverses direction at least {} times",
                f.min_reversals
            )],
            Step::ExpectCondition(c) => {
                let on = if c.on == "hpa" { "HPA" } else { "ScaledObject" };
                let mut name = format!("{on} condition {} is {}", c.type_, c.status);
                if let Some(r) = &c.reason {
                    name.push_str(&format!(" ({r})"));
                }
                if let Some(m) = &c.message_contains {
                    name.push_str(&format!(" saying {m:?}"));
                }
                vec![name]
            }
            Step::ExpectEvent(e) => vec![match (&e.message_contains, e.absent) {
                (Some(m), false) => format!("event {} reports {m:?}", e.reason),
                (None, false) => format!("event {} is recorded", e.reason),
                (Some(m), true) => format!("no event {} reports {m:?}", e.reason),
                (None, true) => format!("no event {} is recorded", e.reason),
            }],
            Step::ExpectRequests(e) => e.claims(),
            Step::Upgrade(u) => vec![format!(
                "helm upgrade to {} keeps headers, one HPA and the replica count",
                u.chart
                    .file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_default()
            )],
            _ => Vec::new(),
        }
    }
}

impl ExpectRequests {
    /// Claim: KEDA sends enough requests in time.
    pub fn count_claim(&self) -> String {
        format!(
            "KEDA sends at least {} requests to the metrics endpoint",
            self.min_count.unwrap_or(2)
        )
    }

    /// Claim: method, path and query text.
    pub const SHAPE_CLAIM: &'static str =
        "every request is GET /api/v1/query with the rendered query";

    /// Claim: one expected header.
    pub fn header_claim(name: &str) -> String {
        format!("header {name} reaches the metrics endpoint")
    }

    /// Claim: one expected query parameter.
    pub fn parameter_claim(name: &str) -> String {
        format!("query parameter {name} reaches the metrics endpoint")
    }

    /// Claim: nothing beyond the configured headers.
    pub const NO_OTHER_HEADERS_CLAIM: &'static str =
        "no header the chart did not configure is sent";

    /// Claim: the request rate is high enough.
    pub fn interval_claim(&self) -> Option<String> {
        self.max_interval
            .map(|m| format!("KEDA queries at least every {:?}", m.0))
    }

    /// Claim: the request rate is low enough.
    pub fn min_interval_claim(&self) -> Option<String> {
        self.min_interval
            .map(|m| format!("KEDA queries no more often than every {:?}", m.0))
    }

    /// Every claim of this step, in order.
    pub fn claims(&self) -> Vec<String> {
        let mut out = vec![self.count_claim(), Self::SHAPE_CLAIM.to_string()];
        out.extend(self.headers.keys().map(|h| Self::header_claim(h)));
        out.extend(
            self.query_parameters
                .keys()
                .map(|k| Self::parameter_claim(k)),
        );
        if self.no_other_headers {
            out.push(Self::NO_OTHER_HEADERS_CLAIM.to_string());
        }
        out.extend(self.interval_claim());
        out.extend(self.min_interval_claim());
        out
    }
}

/// A duration written as `90s`, `2m`, `1m30s` or `500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub std::time::Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_yaml_ng::Value::deserialize(d)?;
        let text = match &v {
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Number(n) => format!("{n}s"),
            _ => String::new(),
        };
        let d = crate::keda::goparse::parse_go_duration(&text).map_err(|_| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration; write e.g. 90s, 2m or 1m30s"
            ))
        })?;
        // Deadlines are added to clocks: a scenario step longer than a day is a typo.
        if d > std::time::Duration::from_secs(24 * 3600) {
            return Err(serde::de::Error::custom(format!(
                "{text:?} is longer than a day; write a duration a live step can wait, e.g. 90s or 10m"
            )));
        }
        Ok(Span(d))
    }
}

/// Where the chart's triggers point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricsEndpoint {
    /// The Mimir-API backend (Cortex on the local provider).
    #[default]
    Backend,
    /// A recording mock that answers as `mock` says (and `set_mock` changes).
    Mock,
    /// A recording proxy in front of the backend: scaling verdict and header evidence at once.
    Proxy,
}

/// The install step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallStep {
    /// Where serverAddress points (default: the backend).
    #[serde(default)]
    pub metrics: MetricsEndpoint,
    /// How the mock answers at first (with `metrics: mock`; default an empty result).
    #[serde(default)]
    pub mock: Option<crate::mock::Behaviour>,
}

/// What the requests KEDA sent to the mock or proxy must show.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectRequests {
    /// Headers every request must carry, name (case-insensitive) to exact value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Fail on headers beyond these, the trigger's own and KEDA's ordinary ones (default true).
    #[serde(default = "yes")]
    pub no_other_headers: bool,
    /// Query parameters every request must carry.
    #[serde(default)]
    pub query_parameters: BTreeMap<String, String>,
    /// At least this many requests (default 2).
    #[serde(default)]
    pub min_count: Option<usize>,
    /// The largest gap allowed between consecutive requests (KEDA's documented rate).
    #[serde(default)]
    pub max_interval: Option<Span>,
    /// Deadline for `min_count` requests to arrive (default 60s).
    #[serde(default)]
    pub within: Option<Span>,
    /// The smallest gap allowed between consecutive requests (e.g. KEDA's pollingInterval
    /// when useCachedMetrics serves the HPA from the cache).
    #[serde(default)]
    pub min_interval: Option<Span>,
    /// Judge only requests that arrive after this step starts (default: every request so far,
    /// including the burst when the ScaledObject is created).
    #[serde(default)]
    pub only_new: bool,
}

fn yes() -> bool {
    true
}

/// One seeded series.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesSpec {
    /// Metric name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Value (absent for per-pod series: they are 1).
    #[serde(default)]
    pub value: Option<f64>,
}

/// The seed step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedStep {
    /// The tenant (`X-Scope-OrgID` the series are written under).
    pub tenant: String,
    /// Series with fixed values (replace the tenant's earlier fixed series).
    #[serde(default)]
    pub series: Vec<SeriesSpec>,
    /// Series written once per Ready pod of the scaled workload, with a `pod` label, as the
    /// pods themselves would export them (e.g. tempo_build_info).
    #[serde(default)]
    pub per_ready_pod: Vec<SeriesSpec>,
}

/// The replica count to expect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectReplicas {
    /// An exact count.
    #[serde(default)]
    pub exact: Option<i32>,
    /// The count the oracle computes from the backend's answer to the trigger's query.
    #[serde(default)]
    pub oracle: bool,
    /// Deadline (default: derived from pollingInterval and the HPA sync period).
    #[serde(default)]
    pub within: Option<Span>,
    /// How long the count must then hold without change (default 10s).
    #[serde(default)]
    pub hold: Option<Span>,
}

/// Flapping to expect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectFlapping {
    /// How many reversals of direction (up then down counts one) must be seen (at least 2).
    pub min_reversals: usize,
    /// Deadline (default 3m).
    #[serde(default)]
    pub within: Option<Span>,
}

/// A condition to expect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectCondition {
    /// `scaledobject` (default) or `hpa`.
    #[serde(default = "default_condition_object")]
    pub on: String,
    /// Condition type (Ready, Active, Fallback, ScalingActive, ...).
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// Required reason, if any.
    #[serde(default)]
    pub reason: Option<String>,
    /// Text the message must contain, if any.
    #[serde(default)]
    pub message_contains: Option<String>,
    /// Deadline (default 90s).
    #[serde(default)]
    pub within: Option<Span>,
}

fn default_condition_object() -> String {
    "scaledobject".into()
}

/// An event to expect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectEvent {
    /// Event reason (e.g. KEDAScalerFailed, FailedGetExternalMetric).
    pub reason: String,
    /// Text the message must contain.
    #[serde(default)]
    pub message_contains: Option<String>,
    /// Deadline (default 90s); with `absent`, how long to keep watching (default 20s).
    #[serde(default)]
    pub within: Option<Span>,
    /// The opposite claim: no such event was recorded in the namespace (since the install)
    /// by the end of `within`.
    #[serde(default)]
    pub absent: bool,
}

/// The wait step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    /// How long.
    pub duration: Span,
}

/// Settings of the live tier for a scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSettings {
    /// Fake nodes (default: enough for maxReplicaCount under hard anti-affinity).
    #[serde(default)]
    pub nodes: Option<u32>,
    /// What an empty answer to KEDA's query means (default `warn`).
    #[serde(default)]
    pub empty_answer: EmptyAnswer,
}

/// What a scenario makes of an empty answer to KEDA's query (the tenant KEDA asks holds no data
/// for it), checked after the first `expect_replicas`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyAnswer {
    /// A warning in the report, naming the seeded tenants that hold data for the query.
    #[default]
    Warn,
    /// A failure when seeded tenants other than KEDA's hold data for the query (a silent
    /// tenant); a warning otherwise. What `repro` and `qualify` derive.
    Fail,
    /// The point of the scenario (e.g. a tenant with no data floors at the minimum).
    Expected,
}

/// Expectations of a render step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderStep {
    /// Headers every prometheus trigger must send, name to exact value.
    #[serde(default)]
    pub expect_headers: BTreeMap<String, String>,
    /// The workload the ScaledObject must target.
    #[serde(default)]
    pub target: Option<Target>,
    /// The replica bounds the ScaledObject must render.
    #[serde(default)]
    pub replicas: Option<Replicas>,
    /// Check ids that must fail (a defective chart); empty means every check must pass.
    #[serde(default)]
    pub failing_checks: Vec<String>,
}

impl RenderStep {
    /// The expected headers as the render checks take them.
    pub fn expected_headers(&self) -> Vec<crate::checks::ExpectedHeader> {
        self.expect_headers
            .iter()
            .map(|(n, v)| crate::checks::ExpectedHeader {
                name: n.clone(),
                value: v.clone(),
            })
            .collect()
    }
}

/// An expected scale target.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Deployment or StatefulSet.
    pub kind: String,
    /// Workload name.
    pub name: String,
}

/// Expected replica bounds.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Replicas {
    /// minReplicaCount.
    pub min: i64,
    /// maxReplicaCount.
    pub max: i64,
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
                Step::ExpectCondition(c) => {
                    if !["True", "False", "Unknown"].contains(&c.status.as_str()) {
                        return Err(bad(
                            "status:",
                            format!(
                                "condition status {:?} is not True, False or Unknown",
                                c.status
                            ),
                            "quote it: status: \"True\"",
                        ));
                    }
                    if !["scaledobject", "hpa"].contains(&c.on.as_str()) {
                        return Err(bad(
                            "on:",
                            format!("condition object {:?} is not scaledobject or hpa", c.on),
                            "use on: scaledobject or on: hpa",
                        ));
                    }
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
