//! Checks on each trigger: what KEDA parses from a prometheus trigger's metadata, unknown
//! keys, the headers it sends, and its authenticationRef.

use super::{subject, Finding, RenderContext, Status, TriggerRequest};
use crate::error::InputError;
use crate::keda::auth::{self, AuthSource};
use crate::keda::goparse::{canonical_header_key, is_token};
use crate::keda::manifest::Manifest;
use crate::keda::prometheus;
use serde_json::Value;
use std::collections::BTreeMap;

/// A header the user expects every prometheus trigger to send (`--expect-header Name=Value`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExpectedHeader {
    /// Header name (matched case-insensitively).
    pub name: String,
    /// Exact value.
    pub value: String,
}

impl ExpectedHeader {
    /// Parses `Name=Value` (the value may itself contain '=').
    ///
    /// # Errors
    /// An [`InputError`] naming the flag when there is no '=', the name is empty or not a
    /// valid HTTP header name.
    pub fn parse(spec: &str) -> Result<Self, InputError> {
        let flag = format!("--expect-header {spec}");
        let Some((name, value)) = spec.split_once('=') else {
            return Err(InputError::in_flag(
                flag,
                "expected Name=Value, found no '='",
                "write it as --expect-header X-Scope-OrgID=tenant-a",
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(InputError::in_flag(
                flag,
                "the header name before '=' is empty",
                "write it as --expect-header X-Scope-OrgID=tenant-a",
            ));
        }
        if !is_token(name) {
            return Err(InputError::in_flag(
                flag,
                format!("{name:?} is not a valid HTTP header name"),
                "use letters, digits and '-' only, e.g. X-Scope-OrgID",
            ));
        }
        Ok(Self {
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

/// A trigger's metadata as strings (non-strings are stringified; the schema check reports them).
pub(super) fn metadata_of(trigger: &Value) -> BTreeMap<String, String> {
    trigger["metadata"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn trigger_subject(so: &Manifest, i: usize) -> String {
    format!("{} trigger[{i}]", subject(so))
}

pub(super) fn prometheus(
    so: &Manifest,
    ctx: &RenderContext<'_>,
    f: &mut Vec<Finding>,
    requests: &mut Vec<TriggerRequest>,
) {
    let triggers = so.body["spec"]["triggers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, t) in triggers.iter().enumerate() {
        if t["type"].as_str() != Some("prometheus") {
            continue;
        }
        let subj = trigger_subject(so, i);
        let metadata = metadata_of(t);
        let unknown: Vec<&String> = metadata
            .keys()
            .filter(|k| !prometheus::is_known_metadata_key(k))
            .collect();
        if unknown.is_empty() {
            f.push(Finding::new(
                "trigger.unknown-metadata",
                Status::Pass,
                &subj,
                "every metadata key is read by the prometheus scaler",
            ));
        }
        for k in unknown {
            let mut finding = Finding::new("trigger.unknown-metadata", Status::Fail, &subj, format!("metadata key {k:?} is not read by KEDA's prometheus scaler; KEDA ignores it silently"));
            if let Some(s) = prometheus::suggest_metadata_key(k) {
                finding = finding.with(format!("KEDA expects: {s}"));
            }
            f.push(finding);
        }
        let auth_params = auth::resolve(t, ctx.manifests).params();
        match prometheus::parse(
            &metadata,
            &auth_params,
            t["metricType"].as_str().unwrap_or(""),
        ) {
            Ok(config) => {
                let request = config.request();
                let mut finding = if request.transport_errors.is_empty() {
                    Finding::new(
                        "trigger.prometheus-metadata",
                        Status::Pass,
                        &subj,
                        "KEDA parses the metadata",
                    )
                } else {
                    Finding::new(
                        "trigger.prometheus-metadata",
                        Status::Fail,
                        &subj,
                        "KEDA parses the metadata but every request fails before it is sent",
                    )
                };
                for e in &request.transport_errors {
                    finding = finding.with(e.clone());
                }
                finding = finding.with(format!("GET {}", request.url));
                f.push(finding);
                requests.push(TriggerRequest {
                    subject: subj,
                    config,
                    request,
                });
            }
            Err(errors) => {
                let mut finding = Finding::new(
                    "trigger.prometheus-metadata",
                    Status::Fail,
                    &subj,
                    "KEDA rejects the trigger metadata; the ScaledObject never becomes Ready",
                );
                for e in errors {
                    finding =
                        finding.with(format!("error parsing prometheus metadata: {}", e.message));
                }
                f.push(finding);
            }
        }
    }
}

pub(super) fn authentication_ref(so: &Manifest, ctx: &RenderContext<'_>, f: &mut Vec<Finding>) {
    let triggers = so.body["spec"]["triggers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, t) in triggers.iter().enumerate() {
        let subj = trigger_subject(so, i);
        match auth::resolve(t, ctx.manifests) {
            AuthSource::None => {}
            AuthSource::External { kind, name } if kind == "ClusterTriggerAuthentication" => {
                f.push(Finding::new(
                    "trigger.authentication-ref",
                    Status::Info,
                    &subj,
                    format!(
                        "uses ClusterTriggerAuthentication/{name}, which must exist in the cluster"
                    ),
                ));
            }
            AuthSource::External { kind, name } => {
                f.push(Finding::new("trigger.authentication-ref", Status::Warn, &subj, format!("{kind}/{name} is not rendered by the chart; it must exist in the namespace before KEDA can authenticate")));
            }
            AuthSource::Rendered {
                name,
                params,
                from,
                external,
                missing,
            } => {
                let mut finding = if missing.is_empty() {
                    Finding::new(
                        "trigger.authentication-ref",
                        Status::Pass,
                        &subj,
                        format!("TriggerAuthentication/{name} is rendered by the chart"),
                    )
                } else {
                    Finding::new(
                        "trigger.authentication-ref",
                        Status::Fail,
                        &subj,
                        format!("TriggerAuthentication/{name} refers to Secret keys that are not rendered; KEDA cannot resolve them"),
                    )
                };
                for m in &missing {
                    finding = finding.with(m.clone());
                }
                for (parameter, source) in &from {
                    if params.contains_key(parameter) {
                        let note = if external.contains(parameter) {
                            " (not rendered: resolved in the cluster)"
                        } else {
                            ""
                        };
                        let padded = params
                            .get(parameter)
                            .map(|v| v.trim() != v)
                            .unwrap_or(false);
                        let note = if padded {
                            " (the value has leading or trailing whitespace such as a final newline; KEDA trims it)"
                        } else {
                            note
                        };
                        finding = finding.with(format!("{parameter} from {source}{note}"));
                    }
                }
                let metadata = metadata_of(t);
                let mut errors = Vec::new();
                let cfg = auth::parse(&metadata, &params, &mut errors);
                if let Some(mode) = cfg.applied_mode() {
                    let header = cfg.header().map(|(n, _)| n).unwrap_or_default();
                    finding = finding.with(format!(
                        "auth mode {mode}: KEDA sets header {header} from it"
                    ));
                }
                f.push(finding);
                let shadowed = cfg.shadowed_modes();
                if !shadowed.is_empty() {
                    f.push(Finding::new(
                        "trigger.authentication-ref",
                        Status::Fail,
                        &subj,
                        format!(
                            "authModes {:?} enables {} as well as {}, but KEDA applies only {} to the request",
                            cfg.modes.join(","),
                            shadowed.join(", "),
                            cfg.applied_mode().unwrap_or_default(),
                            cfg.applied_mode().unwrap_or_default()
                        ),
                    ).with("KEDA's prometheus scaler sets one auth header: bearer, else basic, else custom"));
                }
            }
        }
    }
}

/// Whether a PromQL query divides by a `count(...)` (label matchers and strings ignored).
pub fn divides_by_count(query: &str) -> bool {
    let mut bare = String::new();
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for c in query.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(c),
            (None, '{') => depth += 1,
            (None, '}') => depth -= 1,
            (None, c) if depth == 0 => bare.push(c),
            _ => {}
        }
    }
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"/[\s(]*(?:(?:on|ignoring)\s*\([^)]*\)\s*)?(?:group_(?:left|right)\s*(?:\([^)]*\))?\s*)?[\s(]*count\b")
            .expect("valid regex")
    })
    .is_match(&bare)
}

pub(super) fn per_replica_query(requests: &[TriggerRequest], f: &mut Vec<Finding>) {
    for r in requests {
        if r.config.metric_type != prometheus::MetricType::AverageValue {
            continue;
        }
        if divides_by_count(&r.config.query) {
            f.push(
                Finding::new(
                    "trigger.per-replica-query",
                    Status::Warn,
                    &r.subject,
                    "the query divides by a count(...); if that counts the scaled workload's own pods, AverageValue divides by the replica count again: desired = ceil(total / (replicas x threshold)), which swings between the bounds",
                )
                .with(format!("query: {}", r.config.query))
                .with("fix: drop the division (AverageValue already averages per replica), or set metricType: Value"),
            );
        } else {
            f.push(Finding::new(
                "trigger.per-replica-query",
                Status::Pass,
                &r.subject,
                "the query is not divided by a count of pods",
            ));
        }
    }
}

pub(super) fn expected_headers(
    ctx: &RenderContext<'_>,
    scaled_objects: &[&Manifest],
    requests: &[TriggerRequest],
    f: &mut Vec<Finding>,
) {
    for expected in ctx.expected_headers {
        let name = canonical_header_key(&expected.name);
        let label = format!("header {}", expected.name);
        if scaled_objects.is_empty() {
            f.push(Finding::new(
                "trigger.expected-header",
                Status::Fail,
                &label,
                format!(
                    "{} is never sent: no ScaledObject is rendered",
                    expected.name
                ),
            ));
            continue;
        }
        let mut any_trigger = false;
        for so in scaled_objects {
            let triggers = so.body["spec"]["triggers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (i, t) in triggers.iter().enumerate() {
                if t["type"].as_str() != Some("prometheus") {
                    continue;
                }
                any_trigger = true;
                let subj = trigger_subject(so, i);
                let raw = metadata_of(t)
                    .get("customHeaders")
                    .cloned()
                    .unwrap_or_default();
                let planned = requests.iter().find(|r| r.subject == subj);
                let sent = planned.and_then(|r| {
                    r.request
                        .headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                        .map(|(_, v)| v.clone())
                });
                let finding = match (&sent, planned) {
                    (Some(v), _) if *v == expected.value => Finding::new("trigger.expected-header", Status::Pass, &subj, format!("sends {name}: {}", expected.value)),
                    (Some(v), _) => {
                        let why = if v.trim_matches(|c| c == '"' || c == '\'') == expected.value {
                            "quoted wrongly: the quotes are part of the value KEDA sends"
                        } else if v.contains("map[") {
                            "mangled: a Go map printed as text"
                        } else {
                            "a different value"
                        };
                        Finding::new("trigger.expected-header", Status::Fail, &subj, format!("sends {name} with {why}: {v:?}, expected {:?}", expected.value))
                    }
                    (None, None) => Finding::new("trigger.expected-header", Status::Fail, &subj, format!("{name} is never sent: KEDA rejects this trigger's metadata (see trigger.prometheus-metadata)")),
                    (None, Some(_)) if raw.trim().is_empty() => Finding::new("trigger.expected-header", Status::Fail, &subj, format!("{name} is never sent: the rendered trigger has no customHeaders")),
                    (None, Some(_)) => Finding::new("trigger.expected-header", Status::Fail, &subj, format!("{name} is never sent: customHeaders does not name it")),
                };
                let finding = finding.with(format!(
                    "rendered metadata.customHeaders: {}",
                    if raw.is_empty() {
                        "(absent)".into()
                    } else {
                        format!("{raw:?}")
                    }
                ));
                let finding = match values_source(ctx, "customHeaders") {
                    Some(s) => finding.with(s),
                    None => finding,
                };
                f.push(finding);
            }
        }
        if !any_trigger {
            f.push(Finding::new(
                "trigger.expected-header",
                Status::Fail,
                &label,
                format!(
                    "{} is never sent: no prometheus trigger is rendered",
                    expected.name
                ),
            ));
        }
    }
}

/// Where in the user's values a metadata key was set (`values path = value`), if anywhere.
fn values_source(ctx: &RenderContext<'_>, key: &str) -> Option<String> {
    use crate::chart::values::{format_path, leaf_paths, Segment};
    let mut hits = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for path in leaf_paths(&ctx.user_values.merged) {
        if let Some(pos) = path
            .iter()
            .position(|s| *s == Segment::Key(key.to_string()))
        {
            let prefix = &path[..=pos];
            if path.iter().any(|s| *s == Segment::Key("metadata".into()))
                && seen.insert(format_path(prefix))
            {
                let value = crate::chart::values::get_path(&ctx.user_values.merged, prefix)
                    .cloned()
                    .unwrap_or(Value::Null);
                let shape = if value.is_object() {
                    " (a YAML map: KEDA needs a \"Name=value,...\" string)"
                } else {
                    ""
                };
                hits.push(format!("values {} = {}{shape}", format_path(prefix), value));
            }
        }
    }
    if hits.is_empty() {
        None
    } else {
        Some(hits.join("; "))
    }
}

#[cfg(test)]
mod per_replica_tests {
    use super::divides_by_count;

    #[test]
    fn finds_a_division_by_a_count_of_pods_only() {
        for q in [
            r#"sum(tempodb_compaction_outstanding_blocks{container="compactor"}) / count(tempo_build_info{container="compactor"})"#,
            "sum by (ns) (x) / on (ns) group_left count by (ns) (up)",
            "sum(x)/(count(up))",
        ] {
            assert!(divides_by_count(q), "{q}");
        }
        for q in [
            "sum(tempodb_compaction_outstanding_blocks)",
            r#"sum(x{a="/ count(y)"})"#,
            "count(x) / 2",
            "sum(x) / scalar(y)",
        ] {
            assert!(!divides_by_count(q), "{q}");
        }
    }
}
