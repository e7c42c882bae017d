//! The render tier's checks: each has a stable id and a one-line rule, and yields findings
//! with evidence. Inputs are the rendered manifests, the user's values and the chart's
//! defaults; nothing here talks to a cluster.

mod fidelity;
mod scaled_object;
mod trigger;

use crate::chart::source::STUB_MARKER_KIND;
use crate::chart::values::UserValues;
use crate::keda::crd::CrdSchemas;
use crate::keda::manifest::Manifest;
use crate::keda::prometheus::{PlannedRequest, PrometheusConfig};
use serde::Serialize;

pub use trigger::ExpectedHeader;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The rule holds.
    Pass,
    /// Worth knowing; not a failure.
    Info,
    /// Probably wrong, but KEDA will still work.
    Warn,
    /// The rule is broken: the run fails.
    Fail,
}

/// A check in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable id, used in reports, JUnit and scenario expectations.
    pub id: &'static str,
    /// The rule, in one line.
    pub rule: &'static str,
}

/// Every render check, in report order.
pub const CATALOG: &[Check] = &[
    Check { id: "chart.renders", rule: "the chart renders with real Helm and the given values" },
    Check { id: "chart.offline-dependencies", rule: "declared dependencies absent from charts/ do not stop an offline render when disabled (an enabled one is bad input: exit 2 naming it)" },
    Check { id: "values.unread", rule: "every values key the user sets is one the chart reads" },
    Check { id: "scaledobject.present", rule: "a ScaledObject is rendered when autoscaling is expected" },
    Check { id: "keda.schema", rule: "every ScaledObject and TriggerAuthentication matches KEDA's CRD schema (no wrong types, no pruned fields)" },
    Check { id: "scaledobject.admission", rule: "KEDA's admission webhook accepts the ScaledObject" },
    Check { id: "scaledobject.target", rule: "scaleTargetRef names a rendered Deployment or StatefulSet of the same kind" },
    Check { id: "scaledobject.hpa-conflict", rule: "no rendered HorizontalPodAutoscaler targets a workload a ScaledObject scales" },
    Check { id: "scaledobject.replicas", rule: "replica bounds, polling, cooldown and fallback are sane" },
    Check { id: "trigger.prometheus-metadata", rule: "KEDA v2.20 parses every prometheus trigger's metadata and can send its request" },
    Check { id: "trigger.unknown-metadata", rule: "every metadata key is one the scaler reads (KEDA ignores others silently)" },
    Check { id: "trigger.expected-header", rule: "each prometheus trigger sends every expected header with its exact value" },
    Check { id: "trigger.per-replica-query", rule: "an AverageValue trigger's query is not already divided by a count of pods (the HPA would divide by the replica count again and oscillate)" },
    Check { id: "trigger.silent-tenant", rule: "where metrics per tenant are known (repro --metrics), the tenant the trigger's X-Scope-OrgID names holds data for its query" },
    Check { id: "trigger.authentication-ref", rule: "authenticationRef names a rendered TriggerAuthentication or an explicit ClusterTriggerAuthentication" },
    Check { id: "values.fidelity", rule: "every trigger field, metadata key and spec field the values set reaches the ScaledObject unchanged" },
    Check { id: "manifest.go-printed-value", rule: "no rendered string is a Go map or slice printed as text (map[...], [a b])" },
    Check { id: "workload.anti-affinity", rule: "hard hostname anti-affinity needs as many schedulable nodes as maxReplicaCount" },
    Check { id: "workload.replicas-while-scaled", rule: "a workload a ScaledObject scales does not render spec.replicas (every helm upgrade would reset the count the HPA set)" },
];

/// Looks a check up by id.
pub fn check(id: &str) -> Option<&'static Check> {
    CATALOG.iter().find(|c| c.id == id)
}

/// One verdict of one check on one subject, with evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The check id.
    pub check: &'static str,
    /// The verdict.
    pub status: Status,
    /// What it is about (e.g. `ScaledObject/tempo-compactor trigger[0]`).
    pub subject: String,
    /// One sentence.
    pub message: String,
    /// Supporting lines: rendered values, values paths, KEDA's words.
    pub evidence: Vec<String>,
}

impl Finding {
    /// A finding of `check` with `status`.
    pub fn new(
        check: &'static str,
        status: Status,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        debug_assert!(self::check(check).is_some(), "unknown check id {check}");
        Self {
            check,
            status,
            subject: subject.into(),
            message: message.into(),
            evidence: Vec::new(),
        }
    }

    /// Adds an evidence line.
    pub fn with(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }
}

/// The request one prometheus trigger makes, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerRequest {
    /// `ScaledObject/<name> trigger[<i>]`.
    pub subject: String,
    /// What KEDA parsed.
    pub config: PrometheusConfig,
    /// The request it sends (headers redacted by the report layer).
    pub request: PlannedRequest,
}

/// Everything the render checks need.
#[derive(Debug)]
pub struct RenderContext<'a> {
    /// The rendered objects (stand-in markers included).
    pub manifests: &'a [Manifest],
    /// The user's values.
    pub user_values: &'a UserValues,
    /// The chart's defaults (values.yaml plus subchart defaults).
    pub default_values: &'a serde_json::Value,
    /// The chart's values.schema.json.
    pub schema: Option<&'a serde_json::Value>,
    /// Dependencies replaced by stand-ins.
    pub stubbed_dependencies: &'a [String],
    /// Headers the user expects the trigger to send.
    pub expected_headers: &'a [ExpectedHeader],
    /// KEDA's CRD schemas.
    pub crds: &'a CrdSchemas,
    /// Whether a ScaledObject must be rendered (expected headers imply it).
    pub expect_scaled_object: bool,
}

/// The result of the render checks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RenderVerdict {
    /// Every finding, in catalog order.
    pub findings: Vec<Finding>,
    /// The request each prometheus trigger makes.
    pub requests: Vec<TriggerRequest>,
}

impl RenderVerdict {
    /// The worst status.
    pub fn status(&self) -> Status {
        self.findings
            .iter()
            .map(|f| f.status)
            .max()
            .unwrap_or(Status::Pass)
    }

    /// Ids of checks with a failing finding, sorted and deduplicated.
    pub fn failed_checks(&self) -> Vec<&'static str> {
        let mut ids: Vec<&'static str> = self
            .findings
            .iter()
            .filter(|f| f.status == Status::Fail)
            .map(|f| f.check)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Runs every render check over a successful render.
pub fn run(ctx: &RenderContext<'_>) -> RenderVerdict {
    let mut v = RenderVerdict::default();
    let f = &mut v.findings;
    f.push(Finding::new(
        "chart.renders",
        Status::Pass,
        "chart",
        format!(
            "rendered {} objects",
            ctx.manifests
                .iter()
                .filter(|m| m.kind != STUB_MARKER_KIND)
                .count()
        ),
    ));
    offline_dependencies(ctx, f);
    unread_values(ctx, f);
    let scaled_objects: Vec<&Manifest> = ctx
        .manifests
        .iter()
        .filter(|m| m.is_keda("ScaledObject"))
        .collect();
    if scaled_objects.is_empty() {
        let status = if ctx.expect_scaled_object {
            Status::Fail
        } else {
            Status::Info
        };
        let mut finding = Finding::new(
            "scaledobject.present",
            status,
            "chart",
            "no keda.sh/v1alpha1 ScaledObject was rendered",
        );
        for hint in fidelity::enabling_values(ctx) {
            finding = finding.with(hint);
        }
        f.push(finding);
    } else {
        for so in &scaled_objects {
            f.push(Finding::new(
                "scaledobject.present",
                Status::Pass,
                subject(so),
                format!("rendered from {}", so.source),
            ));
        }
    }
    scaled_object::schema(ctx, f);
    for so in &scaled_objects {
        scaled_object::admission(so, ctx, f);
        scaled_object::target(so, ctx, f);
        scaled_object::hpa_conflict(so, ctx, f);
        scaled_object::replicas(so, f);
        trigger::prometheus(so, ctx, f, &mut v.requests);
        trigger::authentication_ref(so, ctx, f);
        scaled_object::anti_affinity(so, ctx, f);
        scaled_object::replicas_while_scaled(so, ctx, f);
    }
    trigger::expected_headers(ctx, &scaled_objects, &v.requests, f);
    trigger::per_replica_query(&v.requests, f);
    fidelity::check(ctx, &scaled_objects, f);
    go_printed(ctx, f);
    let order = |id: &str| {
        CATALOG
            .iter()
            .position(|c| c.id == id)
            .unwrap_or(usize::MAX)
    };
    v.findings.sort_by_key(|x| order(x.check));
    v
}

/// `Kind/name` of a manifest.
pub fn subject(m: &Manifest) -> String {
    format!("{}/{}", m.kind, m.name)
}

fn offline_dependencies(ctx: &RenderContext<'_>, f: &mut Vec<Finding>) {
    for dep in ctx.stubbed_dependencies {
        let enabled = ctx
            .manifests
            .iter()
            .any(|m| m.kind == STUB_MARKER_KIND && m.name == *dep);
        // An enabled one stops the render as bad input (see `crate::render`).
        if !enabled {
            f.push(Finding::new("chart.offline-dependencies", Status::Pass, format!("dependency {dep}"), format!("dependency {dep} is disabled and absent from charts/; an empty stand-in was used in a temporary copy")));
        }
    }
}

fn unread_values(ctx: &RenderContext<'_>, f: &mut Vec<Finding>) {
    let unread =
        crate::chart::values::unread_keys(&ctx.user_values.merged, ctx.default_values, ctx.schema);
    if unread.is_empty() {
        f.push(Finding::new(
            "values.unread",
            Status::Pass,
            "values",
            "every key the values set is declared by the chart",
        ));
    }
    for u in unread {
        let mut finding = Finding::new("values.unread", Status::Fail, format!("values {}", u.path), format!("the chart never reads {}: it is absent from its values.yaml and schema, so setting it does nothing", u.path));
        if let Some(n) = u.nearest {
            finding = finding.with(format!("did you mean {n}?"));
        }
        f.push(finding);
    }
}

fn go_printed(ctx: &RenderContext<'_>, f: &mut Vec<Finding>) {
    let map_re = regex::Regex::new(r"map\[[^\]]*:[^\]]*\]").expect("valid regex");
    let slice_re = regex::Regex::new(r#"^\[[^\[\],"':]* [^\[\],"':]*\]$"#).expect("valid regex");
    let mut found = false;
    for m in ctx.manifests {
        let mut strings = Vec::new();
        collect_strings(&m.body, String::new(), &mut strings);
        for (path, s) in strings {
            if map_re.is_match(&s) || slice_re.is_match(s.trim()) {
                found = true;
                f.push(Finding::new("manifest.go-printed-value", Status::Fail, subject(m), format!("{path} holds a Go value printed as text: {s:?}")).with(format!("rendered from {}", m.source)).with("a values key holds a map or list where the template expects a string; write it as a string (for customHeaders: \"Name=value,Name2=value2\")"));
            }
        }
    }
    if !found {
        f.push(Finding::new(
            "manifest.go-printed-value",
            Status::Pass,
            "manifests",
            "no Go-printed maps or slices in rendered strings",
        ));
    }
}

fn collect_strings(v: &serde_json::Value, path: String, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::String(s) => out.push((path, s.clone())),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_strings(x, format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect_strings(x, p, out);
            }
        }
        _ => {}
    }
}
