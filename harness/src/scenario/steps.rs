//! The steps a scenario is made of, and what each expects.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A step of a scenario. `render` runs offline; every other step needs a live cluster (the
/// scenario must start with `render` and `install` before them).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
                let on = c.on.label();
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

impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            s.serialize_str(&format!("{}s", ms / 1000))
        } else {
            s.serialize_str(&format!("{ms}ms"))
        }
    }
}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
    /// How many of those replicas must be Ready (default: all of them). With real pods (the
    /// kind provider) a replica whose readiness probe fails exists but is not Ready.
    #[serde(default)]
    pub ready: Option<i32>,
}

/// Flapping to expect.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectFlapping {
    /// How many reversals of direction (up then down counts one) must be seen (at least 2).
    pub min_reversals: usize,
    /// Deadline (default 3m).
    #[serde(default)]
    pub within: Option<Span>,
}

/// A condition to expect.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectCondition {
    /// `scaledobject` (default) or `hpa`.
    #[serde(default)]
    pub on: ConditionObject,
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

/// The object whose conditions an `expect_condition` reads.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConditionObject {
    /// The ScaledObject.
    #[default]
    ScaledObject,
    /// The HPA KEDA creates for it.
    Hpa,
}

impl ConditionObject {
    /// How evidence names it.
    pub fn label(self) -> &'static str {
        match self {
            ConditionObject::ScaledObject => "ScaledObject",
            ConditionObject::Hpa => "HPA",
        }
    }
}

impl std::fmt::Display for ConditionObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConditionObject::ScaledObject => "scaledobject",
            ConditionObject::Hpa => "hpa",
        })
    }
}

/// An event to expect.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    /// How long.
    pub duration: Span,
}

/// Settings of the live tier for a scenario.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Deployment or StatefulSet.
    pub kind: String,
    /// Workload name.
    pub name: String,
}

/// Expected replica bounds.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Replicas {
    /// minReplicaCount.
    pub min: i64,
    /// maxReplicaCount.
    pub max: i64,
}
