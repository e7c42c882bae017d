//! Values fidelity: every trigger field, metadata key and ScaledObject spec field that the
//! user's values set must reach the rendered ScaledObject with the same value.

use super::{subject, Finding, RenderContext, Status};
use crate::chart::values::{format_path, get_path, Segment};
use crate::keda::manifest::Manifest;
use serde_json::Value;

/// A `<component>...keda` block in the user's values.
struct KedaBlock {
    /// Path of the map holding `keda` (e.g. `compactor.autoscaling`).
    parent: Vec<Segment>,
    /// The component (first path segment), e.g. `compactor`.
    component: String,
}

fn keda_blocks(values: &Value) -> Vec<KedaBlock> {
    let mut out = Vec::new();
    fn walk(v: &Value, path: &mut Vec<Segment>, out: &mut Vec<KedaBlock>) {
        if let Value::Object(m) = v {
            for (k, child) in m {
                if k == "keda" && child.is_object() && !path.is_empty() {
                    let component = match &path[0] {
                        Segment::Key(c) => c.clone(),
                        Segment::Index(_) => String::new(),
                    };
                    out.push(KedaBlock {
                        parent: path.clone(),
                        component,
                    });
                    continue;
                }
                path.push(Segment::Key(k.clone()));
                walk(child, path, out);
                path.pop();
            }
        }
    }
    walk(values, &mut Vec::new(), &mut out);
    out
}

/// camelCase -> kebab-case (`backendWorker` -> `backend-worker`).
fn kebab(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_uppercase() {
            if !out.is_empty() {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn key(path: &[Segment], more: &[&str]) -> Vec<Segment> {
    let mut p = path.to_vec();
    p.extend(more.iter().map(|s| Segment::Key((*s).to_string())));
    p
}

/// How a scalar reads as a string (what a template prints for it).
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What KEDA makes of a trigger metadata value: KEDA trims every parameter and treats an empty
/// one as absent, parses numbers and booleans, and splits `k=v,...` maps. Two values with the
/// same view mean the same to KEDA, whatever their YAML bytes (a `query: |` block scalar adds a
/// newline that KEDA trims).
pub(crate) fn keda_view(key: &str, text: &str) -> String {
    use crate::keda::goparse::{canonical_header_key, json_float, parse_bool};
    let t = text.trim();
    if t.is_empty() {
        return "(absent)".into();
    }
    let parsed = match key {
        "threshold" | "activationThreshold" => json_float(t).ok().map(|f| format!("{f}")),
        "ignoreNullValues" | "unsafeSsl" => parse_bool(t).ok().map(|b| b.to_string()),
        "customHeaders" | "queryParameters" => crate::keda::prometheus::parse_keda_map(key, t)
            .ok()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let k = if key == "customHeaders" {
                            canonical_header_key(k)
                        } else {
                            k.clone()
                        };
                        format!("{k}={v}")
                    })
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(",")
            }),
        _ => None,
    };
    parsed.unwrap_or_else(|| t.to_string())
}

/// Whether a scalar from the values and a rendered metadata value mean the same to KEDA.
fn same_to_keda(key: &str, values: &Value, rendered: &Value) -> bool {
    match (values, rendered) {
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => {
            same(values, rendered)
        }
        (a, b) => keda_view(key, &as_text(a)) == keda_view(key, &as_text(b)),
    }
}

fn same(values: &Value, rendered: &Value) -> bool {
    match (values, rendered) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).map(|r| same(v, r)).unwrap_or(false))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => false,
        (a, b) => as_text(a) == as_text(b),
    }
}

#[derive(Default)]
struct Tally {
    compared: usize,
    findings: Vec<Finding>,
}

impl Tally {
    fn fail(&mut self, finding: Finding) {
        self.compared += 1;
        self.findings.push(finding);
    }

    fn compare(
        &mut self,
        so: &Manifest,
        path: Vec<Segment>,
        rendered_at: String,
        expected: &Value,
        rendered: Option<&Value>,
    ) {
        self.compare_by(so, path, rendered_at, expected, rendered, None);
    }

    /// Compares a value from the values with what was rendered; with `metadata_key`, as KEDA
    /// sees that trigger metadata key ([`keda_view`]), else as the API server stores it.
    fn compare_by(
        &mut self,
        so: &Manifest,
        path: Vec<Segment>,
        rendered_at: String,
        expected: &Value,
        rendered: Option<&Value>,
        metadata_key: Option<&str>,
    ) {
        self.compared += 1;
        let p = format_path(&path);
        if expected.as_str().map(|s| s.contains("{{")).unwrap_or(false) {
            return;
        }
        // An empty parameter is an absent one to KEDA, whether rendered empty or not at all.
        if let (Some(k), None) = (metadata_key, rendered) {
            if !expected.is_object()
                && !expected.is_array()
                && keda_view(k, &as_text(expected)) == "(absent)"
            {
                return;
            }
        }
        match rendered {
            Some(r)
                if metadata_key
                    .map_or_else(|| same(expected, r), |k| same_to_keda(k, expected, r)) => {}
            Some(r) => {
                let mut finding = Finding::new(
                    "values.fidelity",
                    Status::Fail,
                    subject(so),
                    format!("{rendered_at} was altered by the chart"),
                )
                .with(format!("values {p} = {expected}"))
                .with(format!("rendered {rendered_at} = {r}"));
                if let (Some(k), false) = (metadata_key, expected.is_object() || r.is_object()) {
                    finding = finding.with(format!(
                        "as KEDA reads them (trimmed, parsed): {:?} in the values, {:?} rendered",
                        keda_view(k, &as_text(expected)),
                        keda_view(k, &as_text(r))
                    ));
                }
                self.findings.push(finding)
            }
            None => self.findings.push(
                Finding::new(
                    "values.fidelity",
                    Status::Fail,
                    subject(so),
                    format!("{rendered_at} was dropped by the chart"),
                )
                .with(format!("values {p} = {expected}"))
                .with(format!("the rendered ScaledObject has no {rendered_at}")),
            ),
        }
    }
}

pub(super) fn check(ctx: &RenderContext<'_>, scaled_objects: &[&Manifest], f: &mut Vec<Finding>) {
    let values = &ctx.user_values.merged;
    let blocks = keda_blocks(values);
    let mut tally = Tally::default();
    for block in &blocks {
        let so = if scaled_objects.len() == 1 && blocks.len() == 1 {
            Some(scaled_objects[0])
        } else {
            let k = kebab(&block.component);
            scaled_objects.iter().copied().find(|so| {
                so.name.contains(&k)
                    || so.body["spec"]["scaleTargetRef"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(&k)
            })
        };
        let Some(so) = so else { continue };
        let spec = &so.body["spec"];
        let keda = key(&block.parent, &["keda"]);
        for (values_key, spec_key) in [
            ("pollingInterval", "pollingInterval"),
            ("cooldownPeriod", "cooldownPeriod"),
            ("initialCooldownPeriod", "initialCooldownPeriod"),
            ("fallback", "fallback"),
            ("advanced", "advanced"),
            ("idleReplicaCount", "idleReplicaCount"),
        ] {
            let path = key(&keda, &[values_key]);
            if let Some(v) = get_path(values, &path) {
                tally.compare(so, path, format!("spec.{spec_key}"), v, spec.get(spec_key));
            }
        }
        for (values_key, spec_key) in [
            ("minReplicas", "minReplicaCount"),
            ("maxReplicas", "maxReplicaCount"),
        ] {
            let path = key(&block.parent, &[values_key]);
            if let Some(v) = get_path(values, &path) {
                tally.compare(so, path, format!("spec.{spec_key}"), v, spec.get(spec_key));
            }
        }
        if let Some(Value::Object(ann)) = get_path(values, &key(&keda, &["annotations"])) {
            for (k, v) in ann {
                let path = key(&keda, &["annotations", k]);
                tally.compare(
                    so,
                    path,
                    format!("metadata.annotations.{k}"),
                    v,
                    so.body["metadata"]["annotations"].get(k),
                );
            }
        }
        let triggers_path = key(&keda, &["triggers"]);
        let Some(Value::Array(triggers)) = get_path(values, &triggers_path) else {
            continue;
        };
        let rendered = spec["triggers"].as_array().cloned().unwrap_or_default();
        for (i, t) in triggers.iter().enumerate() {
            let mut tpath = triggers_path.clone();
            tpath.push(Segment::Index(i));
            let Some(rt) = rendered.get(i) else {
                tally.fail(
                    Finding::new(
                        "values.fidelity",
                        Status::Fail,
                        subject(so),
                        format!("trigger {i} from the values is not rendered"),
                    )
                    .with(format!("values {} = {}", format_path(&tpath), t)),
                );
                continue;
            };
            for field in [
                "type",
                "name",
                "metricType",
                "useCachedMetrics",
                "authenticationRef",
            ] {
                if let Some(v) = t.get(field) {
                    tally.compare(
                        so,
                        key(&tpath, &[field]),
                        format!("spec.triggers[{i}].{field}"),
                        v,
                        rt.get(field),
                    );
                }
            }
            if let Some(Value::Object(meta)) = t.get("metadata") {
                for (k, v) in meta {
                    let path = key(&tpath, &["metadata", k]);
                    if v.is_object() || v.is_array() {
                        let rendered_value = rt["metadata"]
                            .get(k)
                            .map(|r| r.to_string())
                            .unwrap_or_else(|| "(absent)".into());
                        tally.fail(Finding::new("values.fidelity", Status::Fail, subject(so), format!("spec.triggers[{i}].metadata.{k} is set to a YAML {} in the values; KEDA metadata values are strings", if v.is_object() { "map" } else { "list" })).with(format!("values {} = {v}", format_path(&path))).with(format!("rendered spec.triggers[{i}].metadata.{k} = {rendered_value}")).with(if k == "customHeaders" { "write it as a string: customHeaders: \"X-Scope-OrgID=<tenant>\"".to_string() } else { "write it as a string".to_string() }));
                        continue;
                    }
                    tally.compare_by(
                        so,
                        path,
                        format!("spec.triggers[{i}].metadata.{k}"),
                        v,
                        rt["metadata"].get(k),
                        Some(k),
                    );
                }
            }
        }
    }
    if tally.findings.is_empty() && tally.compared > 0 {
        f.push(Finding::new(
            "values.fidelity",
            Status::Pass,
            "values",
            format!(
                "{} values reached the ScaledObject unchanged",
                tally.compared
            ),
        ));
    }
    f.append(&mut tally.findings);
}

/// Which values would enable a ScaledObject, from the chart's defaults (for the absence message).
pub(super) fn enabling_values(ctx: &RenderContext<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for block in keda_blocks(ctx.default_values) {
        let mut needed = Vec::new();
        let keda = key(&block.parent, &["keda"]);
        for path in [key(&block.parent, &["enabled"]), key(&keda, &["enabled"])] {
            let effective = ctx
                .user_values
                .get(&path)
                .or_else(|| get_path(ctx.default_values, &path));
            if effective
                .map(|v| v.as_bool() != Some(true))
                .unwrap_or(false)
            {
                needed.push(format!("{}=true", format_path(&path)));
            }
        }
        let triggers = key(&keda, &["triggers"]);
        let effective = ctx
            .user_values
            .get(&triggers)
            .or_else(|| get_path(ctx.default_values, &triggers));
        if effective
            .and_then(|v| v.as_array())
            .map(|a| a.is_empty())
            .unwrap_or(false)
        {
            needed.push(format!(
                "at least one trigger in {}",
                format_path(&triggers)
            ));
        }
        if !needed.is_empty() {
            out.push(format!(
                "to render the {} ScaledObject set {}",
                block.component,
                needed.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_block_scalar_query_means_the_same_to_keda() {
        assert!(same_to_keda("query", &json!("sum(x)"), &json!("sum(x)\n")));
        assert!(!same_to_keda("query", &json!("sum(x)"), &json!("sum(y)")));
    }

    #[test]
    fn numbers_booleans_and_maps_compare_as_parsed() {
        assert!(same_to_keda("threshold", &json!(250), &json!("250.0")));
        assert!(!same_to_keda("threshold", &json!(250), &json!("25")));
        assert!(same_to_keda("ignoreNullValues", &json!(false), &json!("0")));
        assert!(same_to_keda(
            "customHeaders",
            &json!("x-scope-orgid=a, b=c"),
            &json!("b=c,X-Scope-OrgID=a")
        ));
        assert!(!same_to_keda(
            "customHeaders",
            &json!("X-Scope-OrgID=a"),
            &json!("X-Scope-OrgID=b")
        ));
        // A value KEDA cannot parse is compared as trimmed text.
        assert_eq!(keda_view("threshold", " abc "), "abc");
        assert_eq!(keda_view("query", "  "), "(absent)");
    }
}
