//! Checks on a ScaledObject as a whole: schema, KEDA's admission rules, its target, HPA
//! conflicts, replica sanity and the node count hard anti-affinity needs.

use super::{subject, Finding, RenderContext, Status};
use crate::keda::manifest::Manifest;
use serde_json::Value;

const WORKLOAD_KINDS: &[&str] = &["Deployment", "StatefulSet"];

pub(super) fn schema(ctx: &RenderContext<'_>, f: &mut Vec<Finding>) {
    let mut any = false;
    for m in ctx
        .manifests
        .iter()
        .filter(|m| m.api_version == "keda.sh/v1alpha1")
    {
        any = true;
        let violations = ctx.crds.validate(&m.kind, &m.body);
        if violations.is_empty() {
            f.push(Finding::new(
                "keda.schema",
                Status::Pass,
                subject(m),
                "matches KEDA's CRD schema",
            ));
        } else {
            let mut finding = Finding::new(
                "keda.schema",
                Status::Fail,
                subject(m),
                format!(
                    "{} schema violation(s) against KEDA's CRD",
                    violations.len()
                ),
            );
            for v in violations {
                finding = finding.with(format!("{}: {}", v.path, v.message));
            }
            f.push(finding.with(format!("rendered from {}", m.source)));
        }
    }
    if !any {
        // Nothing to validate; the presence check reports the absence.
    }
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

pub(super) fn admission(so: &Manifest, _ctx: &RenderContext<'_>, f: &mut Vec<Finding>) {
    let spec = &so.body["spec"];
    let mut errors: Vec<String> = Vec::new();
    let triggers = spec["triggers"].as_array().cloned().unwrap_or_default();
    if triggers.is_empty() {
        errors.push("no triggers defined in the ScaledObject/ScaledJob".into());
    }
    let mut names = std::collections::BTreeSet::new();
    for t in &triggers {
        let ty = t["type"].as_str().unwrap_or_default();
        if t["useCachedMetrics"].as_bool() == Some(true) && ["cpu", "memory", "cron"].contains(&ty)
        {
            errors.push(format!(
                "property \"useCachedMetrics\" is not supported for {ty:?} scaler"
            ));
        }
        if let Some(n) = t["name"].as_str().filter(|n| !n.is_empty()) {
            if !names.insert(n.to_string()) {
                errors.push(format!("triggerName {n:?} is defined multiple times in the ScaledObject/ScaledJob, but it must be unique"));
            }
        }
    }
    let min = int(&spec["minReplicaCount"]);
    let hpa_min = min.map(|m| m.max(1)).unwrap_or(0);
    let hpa_max = int(&spec["maxReplicaCount"]).unwrap_or(100);
    if hpa_min > hpa_max {
        errors.push(format!(
            "MinReplicaCount={hpa_min} must be less than MaxReplicaCount={hpa_max}"
        ));
    }
    if let Some(idle) = int(&spec["idleReplicaCount"]) {
        if idle >= hpa_min {
            errors.push(format!(
                "IdleReplicaCount={idle} must be less than MinReplicaCount={hpa_min}"
            ));
        }
    }
    if so.name.len() > 63 {
        errors.push(format!("scaledobject name {:?} is {} characters long; must be no more than 63 characters because it is used as the \"scaledobject.keda.sh/name\" label value", so.name, so.name.len()));
    }
    let hpa_name = crate::keda::manifest::keda_hpa_name(&so.name, &so.body);
    if hpa_name.len() > 63 {
        errors.push(format!("HPA name {hpa_name:?} derived from scaledobject is {} characters long; must be no more than 63 characters; set spec.advanced.horizontalPodAutoscalerConfig.name to a shorter name or shorten the scaledobject name", hpa_name.len()));
    }
    let modifiers = &spec["advanced"]["scalingModifiers"];
    let using_modifiers =
        modifiers.is_object() && !modifiers.as_object().map(|m| m.is_empty()).unwrap_or(true);
    if let Some(fallback) = spec.get("fallback").filter(|v| v.is_object()) {
        let ft = int(&fallback["failureThreshold"]).unwrap_or(0);
        let r = int(&fallback["replicas"]).unwrap_or(0);
        if ft < 0 || r < 0 {
            errors.push(format!(
                "FailureThreshold={ft} & Replicas={r} must both be greater than or equal to 0"
            ));
        }
        if !using_modifiers
            && !triggers
                .iter()
                .any(|t| !["cpu", "memory"].contains(&t["type"].as_str().unwrap_or_default()))
        {
            errors.push("at least one trigger (that is not cpu or memory) has to have the `AverageValue` type for the fallback to be enabled".into());
        }
    }
    if using_modifiers {
        let formula = modifiers["formula"].as_str().unwrap_or_default();
        let target = modifiers["target"].as_str().unwrap_or_default();
        if formula.is_empty() {
            errors.push("error ScalingModifiers.Formula is mandatory".into());
        } else if target.is_empty() {
            errors.push("error validating formula in ScalingModifiers\nformula is given but target is empty".into());
        } else {
            let names: Vec<String> = triggers
                .iter()
                .filter(|t| !["cpu", "memory"].contains(&t["type"].as_str().unwrap_or_default()))
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect();
            for ident in formula_identifiers(formula) {
                if !names.contains(&ident) && !EXPR_BUILTINS.contains(&ident.as_str()) {
                    errors.push(format!("error validating formula in ScalingModifiers\nunknown name {ident} (the formula may only name triggers that have a name: {names:?})"));
                }
            }
            match target.parse::<f64>() {
                Ok(t) if t > 0.0 => {}
                _ => errors.push(format!("error validating target in ScalingModifiers\nerror converting target for scalingModifiers (string->float) to valid target: {target:?}")),
            }
        }
    }
    if errors.is_empty() {
        f.push(Finding::new(
            "scaledobject.admission",
            Status::Pass,
            subject(so),
            "KEDA's admission rules accept it",
        ));
    } else {
        let mut finding = Finding::new(
            "scaledobject.admission",
            Status::Fail,
            subject(so),
            "KEDA's admission webhook would reject it",
        );
        for e in errors {
            finding = finding.with(e);
        }
        f.push(finding);
    }
}

const EXPR_BUILTINS: &[&str] = &[
    "float",
    "int",
    "abs",
    "ceil",
    "floor",
    "round",
    "max",
    "min",
    "len",
    "true",
    "false",
    "nil",
    "and",
    "or",
    "not",
    "in",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "count",
    "filter",
    "all",
    "any",
    "none",
    "one",
    "map",
    "sum",
    "mean",
    "median",
];

/// The identifiers an expr-lang formula names (string literals skipped).
pub fn formula_identifiers(formula: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = formula.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += 1;
            }
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let prev_dot = start > 0 && chars[start - 1] == '.';
            let ident: String = chars[start..i].iter().collect();
            if !prev_dot && !out.contains(&ident) {
                out.push(ident);
            }
        } else {
            i += 1;
        }
    }
    out
}

pub(super) fn target(so: &Manifest, ctx: &RenderContext<'_>, f: &mut Vec<Finding>) {
    let r = &so.body["spec"]["scaleTargetRef"];
    let name = r["name"].as_str().unwrap_or_default();
    let kind = r["kind"].as_str().unwrap_or("Deployment");
    let api_version = r["apiVersion"].as_str().unwrap_or("apps/v1");
    let same_name: Vec<&Manifest> = ctx
        .manifests
        .iter()
        .filter(|m| m.name == name && WORKLOAD_KINDS.contains(&m.kind.as_str()))
        .collect();
    let exact = same_name
        .iter()
        .find(|m| m.kind == kind && m.api_version == api_version);
    match exact {
        Some(w) => f.push(Finding::new(
            "scaledobject.target",
            Status::Pass,
            subject(so),
            format!(
                "scaleTargetRef resolves to {} (rendered from {})",
                subject(w),
                w.source
            ),
        )),
        None => {
            let mut finding = Finding::new("scaledobject.target", Status::Fail, subject(so), format!("scaleTargetRef {api_version} {kind}/{name} matches no rendered workload; KEDA cannot scale it"));
            for w in same_name {
                finding = finding.with(format!(
                    "a {} {} named {name} is rendered: the kind or apiVersion is wrong",
                    w.api_version, w.kind
                ));
            }
            let workloads: Vec<String> = ctx
                .manifests
                .iter()
                .filter(|m| WORKLOAD_KINDS.contains(&m.kind.as_str()))
                .map(subject)
                .collect();
            f.push(finding.with(format!(
                "rendered workloads: {}",
                if workloads.is_empty() {
                    "none".into()
                } else {
                    workloads.join(", ")
                }
            )));
        }
    }
}

pub(super) fn hpa_conflict(so: &Manifest, ctx: &RenderContext<'_>, f: &mut Vec<Finding>) {
    let r = &so.body["spec"]["scaleTargetRef"];
    let name = r["name"].as_str().unwrap_or_default();
    let kind = r["kind"].as_str().unwrap_or("Deployment");
    let conflicts: Vec<&Manifest> = ctx
        .manifests
        .iter()
        .filter(|m| m.kind == "HorizontalPodAutoscaler")
        .filter(|m| {
            m.body["spec"]["scaleTargetRef"]["name"] == name
                && m.body["spec"]["scaleTargetRef"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    == kind
        })
        .collect();
    if conflicts.is_empty() {
        f.push(Finding::new(
            "scaledobject.hpa-conflict",
            Status::Pass,
            subject(so),
            "no other HPA targets the same workload",
        ));
    }
    for h in conflicts {
        f.push(Finding::new("scaledobject.hpa-conflict", Status::Fail, subject(so), format!("{} also targets {kind}/{name}: two autoscalers fight over the replica count and KEDA's webhook rejects the ScaledObject", subject(h))).with(format!("the workload '{name}' of type '{kind}' is already managed by the hpa '{}'", h.name)).with(format!("HPA rendered from {}; enable either the HPA or KEDA for this component, not both", h.source)));
    }
}

pub(super) fn replicas(so: &Manifest, f: &mut Vec<Finding>) {
    let spec = &so.body["spec"];
    let min = int(&spec["minReplicaCount"]);
    let max = int(&spec["maxReplicaCount"]);
    let polling = int(&spec["pollingInterval"]);
    let cooldown = int(&spec["cooldownPeriod"]);
    let mut facts = vec![
        format!(
            "minReplicaCount: {}",
            min.map(|v| v.to_string())
                .unwrap_or_else(|| "unset (KEDA default 0)".into())
        ),
        format!(
            "maxReplicaCount: {}",
            max.map(|v| v.to_string())
                .unwrap_or_else(|| "unset (KEDA default 100)".into())
        ),
        format!(
            "pollingInterval: {}",
            polling
                .map(|v| format!("{v}s"))
                .unwrap_or_else(|| "unset (KEDA default 30s)".into())
        ),
        format!(
            "cooldownPeriod: {}",
            cooldown
                .map(|v| format!("{v}s"))
                .unwrap_or_else(|| "unset (KEDA default 300s)".into())
        ),
    ];
    if spec["fallback"].is_object() {
        facts.push(format!(
            "fallback: failureThreshold {} replicas {}",
            spec["fallback"]["failureThreshold"], spec["fallback"]["replicas"]
        ));
    }
    let mut problems: Vec<(Status, String)> = Vec::new();
    if let (Some(mn), Some(mx)) = (min, max) {
        if mn > mx {
            problems.push((
                Status::Fail,
                format!("minReplicaCount {mn} is above maxReplicaCount {mx}"),
            ));
        }
    }
    if max.is_none() {
        problems.push((
            Status::Warn,
            "maxReplicaCount is unset: KEDA allows up to 100 replicas".into(),
        ));
    }
    if let Some(p) = polling {
        if p <= 0 {
            problems.push((
                Status::Fail,
                format!("pollingInterval {p} must be positive"),
            ));
        }
    }
    if let Some(c) = cooldown {
        if c < 0 {
            problems.push((
                Status::Fail,
                format!("cooldownPeriod {c} must not be negative"),
            ));
        }
    }
    if let (Some(r), Some(mx)) = (int(&spec["fallback"]["replicas"]), max) {
        if r > mx {
            problems.push((
                Status::Warn,
                format!("fallback.replicas {r} is above maxReplicaCount {mx}"),
            ));
        }
    }
    if min == Some(0) {
        facts.push(
            "minReplicaCount 0: the workload scales to zero after cooldownPeriod without activity"
                .into(),
        );
    }
    let status = problems.iter().map(|p| p.0).max().unwrap_or(Status::Pass);
    let message = if problems.is_empty() {
        "replica bounds and timings are sane".to_string()
    } else {
        problems
            .iter()
            .map(|p| p.1.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut finding = Finding::new("scaledobject.replicas", status, subject(so), message);
    for fact in facts {
        finding = finding.with(fact);
    }
    f.push(finding);
}

pub(super) fn anti_affinity(so: &Manifest, ctx: &RenderContext<'_>, f: &mut Vec<Finding>) {
    let Some(w) = scaled_workload(so, ctx) else {
        return;
    };
    let required = &w.body["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"];
    let hard_on_hostname = required
        .as_array()
        .map(|terms| {
            terms
                .iter()
                .any(|t| t["topologyKey"] == "kubernetes.io/hostname")
        })
        .unwrap_or(false);
    if hard_on_hostname {
        let max = int(&so.body["spec"]["maxReplicaCount"]).unwrap_or(100);
        f.push(Finding::new("workload.anti-affinity", Status::Info, subject(w), format!("hard pod anti-affinity on kubernetes.io/hostname: reaching maxReplicaCount {max} needs {max} schedulable nodes")).with("extra replicas stay Pending on smaller clusters; live runs give the local provider at least that many nodes"));
    }
}

/// `workload.replicas-while-scaled`: the scaled workload renders no `spec.replicas`. Helm's
/// three-way merge patches a rendered count back onto the live object at every upgrade, so
/// the replicas the HPA set drop to the chart's number until the next sync (charts guard the
/// field with their autoscaling switch).
pub(super) fn replicas_while_scaled(so: &Manifest, ctx: &RenderContext<'_>, f: &mut Vec<Finding>) {
    let Some(w) = scaled_workload(so, ctx) else {
        return;
    };
    match w.body["spec"].get("replicas") {
        None | Some(Value::Null) => f.push(Finding::new(
            "workload.replicas-while-scaled",
            Status::Pass,
            subject(w),
            "renders no spec.replicas: the HPA owns the count",
        )),
        Some(n) => f.push(
            Finding::new(
                "workload.replicas-while-scaled",
                Status::Fail,
                subject(w),
                format!(
                    "renders spec.replicas {n} while {} scales it: every helm upgrade resets the replica count the HPA set",
                    subject(so)
                ),
            )
            .with(format!("rendered from {}", w.source))
            .with("render replicas only when autoscaling is off (e.g. `{{- if not .Values.<component>.autoscaling.enabled }}`)"),
        ),
    }
}

/// The rendered workload `so`'s scaleTargetRef names (kind defaulting to Deployment).
fn scaled_workload<'a>(so: &Manifest, ctx: &RenderContext<'a>) -> Option<&'a Manifest> {
    let r = &so.body["spec"]["scaleTargetRef"];
    let name = r["name"].as_str().unwrap_or_default();
    let kind = r["kind"].as_str().unwrap_or("Deployment");
    ctx.manifests
        .iter()
        .find(|m| m.name == name && m.kind == kind)
}
