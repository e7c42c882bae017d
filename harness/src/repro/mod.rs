//! Reproducing a user's bug report: from the values file in the report, derive a scenario
//! (workload, trigger, tenants, headers, a default backlog per tenant), run it live behind a
//! recording proxy, and write a verdict a maintainer can paste into the issue.

mod markdown;
pub use markdown::verdict_markdown;

use crate::checks::TriggerRequest;
use crate::scenario::SeriesSpec;
use std::collections::BTreeMap;

/// Series to seed for one tenant (the `--metrics` file is a list of these).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantMetrics {
    /// The tenant.
    pub tenant: String,
    /// Fixed series.
    #[serde(default)]
    pub series: Vec<SeriesSpec>,
    /// Series per Ready pod.
    #[serde(default)]
    pub per_ready_pod: Vec<SeriesSpec>,
}

const PROMQL_WORDS: &[&str] = &[
    "sum",
    "count",
    "avg",
    "min",
    "max",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "rate",
    "irate",
    "increase",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "topk",
    "bottomk",
    "quantile",
    "stddev",
    "stdvar",
    "abs",
    "ceil",
    "floor",
    "round",
    "clamp_min",
    "clamp_max",
    "absent",
    "vector",
    "scalar",
    "time",
    "histogram_quantile",
    "label_replace",
    "delta",
    "deriv",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
];

/// Metric names a PromQL query reads (identifiers that are not functions, keywords, label
/// names or matchers, durations or grouping labels).
pub fn metric_names(query: &str) -> Vec<String> {
    let chars: Vec<char> = query.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let mut depth_brace = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            depth_brace += 1;
        } else if c == '}' {
            depth_brace -= 1;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
            if depth_brace == 0
                && !PROMQL_WORDS.contains(&word.as_str())
                && next != Some('(')
                && !is_grouping_label(&chars, start)
                && !out.contains(&word)
            {
                out.push(word);
            }
            continue;
        }
        i += 1;
    }
    out
}

/// The equality matchers (`label="value"`) of each metric selector in a query, by metric name,
/// so seeded series match what the query selects.
pub fn selector_labels(query: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let re = regex::Regex::new(r#"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}"#).expect("valid regex");
    let matcher =
        regex::Regex::new(r#"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)""#).expect("valid regex");
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for cap in re.captures_iter(query) {
        let entry = out.entry(cap[1].to_string()).or_default();
        for m in cap[2].split(',') {
            let m = m.trim();
            if m.contains("!=") || m.contains("=~") || m.contains("!~") {
                continue;
            }
            if let Some(c) = matcher.captures(m) {
                entry.insert(c[1].to_string(), c[2].to_string());
            }
        }
    }
    out
}

/// True when the identifier at `start` sits inside `by (...)`, `without (...)`, `on (...)`,
/// `ignoring (...)` or `group_left/right (...)`.
fn is_grouping_label(chars: &[char], start: usize) -> bool {
    let before: String = chars[..start].iter().collect();
    let Some(open) = before.rfind('(') else {
        return false;
    };
    if before[open..].contains(')') {
        return false;
    }
    let head = before[..open].trim_end();
    [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ]
    .iter()
    .any(|w| head.ends_with(w))
}

/// The tenants a rendered trigger sends (its X-Scope-OrgID, federated `a|b` split).
pub fn rendered_tenants(trigger: &TriggerRequest) -> Vec<String> {
    trigger
        .config
        .custom_headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("X-Scope-OrgID"))
        .map(|(_, v)| v.split('|').map(str::to_string).collect())
        .unwrap_or_default()
}

/// The render-time silent-tenant rule: when the report's metrics name tenants, the tenant the
/// trigger asks (its X-Scope-OrgID) must hold series the query reads; a failing
/// `trigger.silent-tenant` finding when only other tenants do (`None` when the metrics say
/// nothing about it, or the tenant asked holds data).
pub fn silent_tenant_finding(
    trigger: &TriggerRequest,
    metrics: &[TenantMetrics],
) -> Option<crate::checks::Finding> {
    let asked = rendered_tenants(trigger);
    let names = metric_names(&trigger.config.query);
    let holds = |m: &TenantMetrics| {
        m.series
            .iter()
            .chain(&m.per_ready_pod)
            .any(|s| names.contains(&s.name))
    };
    let holders: Vec<&str> = metrics
        .iter()
        .filter(|m| holds(m) && !asked.contains(&m.tenant))
        .map(|m| m.tenant.as_str())
        .collect();
    let asked_holds = metrics
        .iter()
        .any(|m| asked.contains(&m.tenant) && holds(m));
    if asked_holds || holders.is_empty() {
        return None;
    }
    let asked_text = if asked.is_empty() {
        "no tenant (no X-Scope-OrgID header)".to_string()
    } else {
        format!("tenant {:?}", asked.join("|"))
    };
    Some(
        crate::checks::Finding::new(
            "trigger.silent-tenant",
            crate::checks::Status::Fail,
            trigger.subject.clone(),
            format!(
                "KEDA asks {asked_text}, which holds none of the metrics; tenant(s) {} hold them",
                holders.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ")
            ),
        )
        .with(format!("query: {}", trigger.config.query))
        .with(format!(
            "consequence: {}",
            crate::live::tenancy::consequence(trigger.config.ignore_null_values)
        ))
        .with("fix: set the trigger's customHeaders to X-Scope-OrgID=<the tenant that holds the metrics>"),
    )
}

/// The tenants to seed: those given, else the X-Scope-OrgID the chart renders, else the one
/// the values meant to send. Returns them and the tenants to seed (`tenant-a` when none is
/// known, so an anonymous query still has data it could have found).
pub fn tenants_for(
    given: &[String],
    trigger: &TriggerRequest,
    intended: &[crate::checks::ExpectedHeader],
) -> (Vec<String>, Vec<String>) {
    let mut tenants = given.to_vec();
    if tenants.is_empty() {
        tenants = rendered_tenants(trigger);
    }
    if tenants.is_empty() {
        tenants = intended
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("X-Scope-OrgID"))
            .map(|h| h.value.clone())
            .collect();
    }
    let seed = if tenants.is_empty() {
        vec!["tenant-a".to_string()]
    } else {
        tenants.clone()
    };
    (tenants, seed)
}

/// A default backlog: three times the threshold for the first tenant (the oracle then expects
/// min(3, maxReplicaCount) under AverageValue), a tenth of it for the others; series whose
/// name ends in `build_info` follow the Ready pods.
pub fn default_metrics(trigger: &TriggerRequest, tenants: &[String]) -> Vec<TenantMetrics> {
    let names = metric_names(&trigger.config.query);
    let matchers = selector_labels(&trigger.config.query);
    tenants
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let value = trigger.config.threshold.max(1.0) * if i == 0 { 3.0 } else { 0.3 };
            let mut series = Vec::new();
            let mut per_ready_pod = Vec::new();
            for n in &names {
                let mut labels: BTreeMap<String, String> =
                    [("tenant".to_string(), t.clone())].into();
                labels.extend(matchers.get(n).cloned().unwrap_or_default());
                if n.ends_with("build_info") {
                    per_ready_pod.push(SeriesSpec {
                        name: n.clone(),
                        labels,
                        value: None,
                    });
                } else {
                    series.push(SeriesSpec {
                        name: n.clone(),
                        labels,
                        value: Some(value),
                    });
                }
            }
            TenantMetrics {
                tenant: t.clone(),
                series,
                per_ready_pod,
            }
        })
        .collect()
}

/// Where a derived scenario upgrades to once the workload has scaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeTo {
    /// The chart to upgrade to (absolute path).
    pub chart: String,
    /// Values for the upgrade (default: the scenario's).
    pub values: Option<Vec<String>>,
    /// The new chart scales another workload (another lineage): the upgrade step itself
    /// waits for the new workload and reports what became of the old objects, so no
    /// same-workload expectations follow it.
    pub across_lineages: bool,
    /// The running release's pollingInterval in seconds: across the upgrade KEDA must keep
    /// querying with no gap longer than this.
    pub polling_seconds: u64,
}

/// Merges metrics per tenant (series of the same name are kept once, the first wins), so
/// that the queries of two charts both find data.
pub fn merge_metrics(a: Vec<TenantMetrics>, b: Vec<TenantMetrics>) -> Vec<TenantMetrics> {
    let mut out = a;
    for m in b {
        match out.iter_mut().find(|x| x.tenant == m.tenant) {
            Some(x) => {
                for s in m.series {
                    if !x.series.iter().any(|y| y.name == s.name) {
                        x.series.push(s);
                    }
                }
                for s in m.per_ready_pod {
                    if !x.per_ready_pod.iter().any(|y| y.name == s.name) {
                        x.per_ready_pod.push(s);
                    }
                }
            }
            None => out.push(m),
        }
    }
    out
}

/// The scenario `repro` and `qualify` derive from a report: render (expecting the tenant
/// headers), install behind a recording proxy, seed the tenants' metrics, reach the count the
/// oracle computes, and check what KEDA sent. With `upgrade_to`, the release is upgraded to
/// that chart once it has scaled, and must keep scaling. Paths are absolute.
pub fn derived_scenario(
    name: &str,
    chart: &std::path::Path,
    values: &[std::path::PathBuf],
    helm: crate::chart::helm::HelmMajor,
    tenants: &[String],
    metrics: &[TenantMetrics],
    upgrade_to: Option<&UpgradeTo>,
) -> crate::scenario::Scenario {
    use crate::scenario::{
        EmptyAnswer, ExpectReplicas, ExpectRequests, Helm, InstallStep, LiveSettings,
        MetricsEndpoint, RenderStep, Scenario, SeedStep, Span, Step, UpgradeStep,
    };
    let oracle = || {
        // No `within`: the deadline derives from the rendered ScaledObject (pollingInterval,
        // its HPA behavior) and the cluster's HPA timing, never a fixed figure a valid chart
        // exceeds.
        Step::ExpectReplicas(ExpectReplicas {
            exact: None,
            oracle: true,
            within: None,
            hold: None,
            ready: None,
        })
    };
    let mut steps = vec![Step::Render(RenderStep {
        expect_headers: tenants
            .first()
            .map(|_| [("X-Scope-OrgID".to_string(), tenants.join("|"))].into())
            .unwrap_or_default(),
        ..RenderStep::default()
    })];
    steps.push(Step::Install(InstallStep {
        metrics: MetricsEndpoint::Proxy,
        ..InstallStep::default()
    }));
    steps.extend(metrics.iter().map(|m| {
        Step::Seed(SeedStep {
            tenant: m.tenant.clone(),
            series: m.series.clone(),
            per_ready_pod: m.per_ready_pod.clone(),
        })
    }));
    steps.push(oracle());
    let mut across = false;
    if let Some(next) = upgrade_to {
        steps.push(Step::Upgrade(UpgradeStep {
            chart: next.chart.clone().into(),
            values: next
                .values
                .as_ref()
                .map(|v| v.iter().map(std::path::PathBuf::from).collect()),
        }));
        across = next.across_lineages;
        if !across {
            steps.push(oracle());
        }
    }
    if let (Some(t), false) = (tenants.first(), across) {
        // After an upgrade: every request before and after it kept the header, and scaling
        // continued without a gap beyond one polling interval.
        steps.push(Step::ExpectRequests(ExpectRequests {
            headers: [("X-Scope-OrgID".to_string(), t.clone())].into(),
            // What a scenario file gets by default: no header the chart did not configure.
            no_other_headers: true,
            max_interval: upgrade_to.map(|u| Span(largest_expected_gap(u.polling_seconds))),
            ..ExpectRequests::default()
        }));
    }
    Scenario {
        name: name.to_string(),
        description: "reproduction of a user's report (derived scenario)".into(),
        proves: None,
        chart: chart.to_path_buf(),
        version: None,
        values: values.to_vec(),
        set: Vec::new(),
        helm: vec![Helm(helm)],
        release: "tempo".into(),
        namespace: "tempo".into(),
        // A tenant with no data while another holds the report's metrics is the chart's (or
        // the values') failure here, not a warning.
        live: LiveSettings {
            empty_answer: EmptyAnswer::Fail,
            ..LiveSettings::default()
        },
        steps,
        file: std::path::PathBuf::from(format!("<derived scenario {name}>")),
    }
}

/// The largest gap between KEDA's requests that still means "no interruption": KEDA's next
/// poll starts a pollingInterval after the previous one finished, so a gap is the interval
/// plus the time a poll takes and the timer's slack; 2 s (or a fifth of the interval, when
/// that is more) covers those, far below what an interrupted scaler leaves.
pub fn largest_expected_gap(polling_seconds: u64) -> std::time::Duration {
    let interval = std::time::Duration::from_secs(polling_seconds);
    interval + (interval / 5).max(std::time::Duration::from_secs(2))
}

/// A derived scenario as YAML, ready for `suites/` (`--save-scenario`).
pub fn scenario_file_text(s: &crate::scenario::Scenario) -> String {
    // Unset options are left out, as a person would write the file.
    fn prune(v: &mut serde_yaml_ng::Value) {
        match v {
            serde_yaml_ng::Value::Mapping(m) => {
                m.retain(|_, x| !x.is_null());
                m.values_mut().for_each(prune);
            }
            serde_yaml_ng::Value::Sequence(items) => items.iter_mut().for_each(prune),
            _ => {}
        }
    }
    let mut value = serde_yaml_ng::to_value(s).unwrap_or_default();
    prune(&mut value);
    format!(
        "# Derived by `keda-conformance repro` from a bug report's values.\n{}",
        serde_yaml_ng::to_string(&value).unwrap_or_default()
    )
}

/// Headers the values configure in any trigger's `metadata.customHeaders` string (what the
/// user meant, whatever the chart renders).
///
/// # Errors
/// When a values file cannot be read.
pub fn intended_headers(
    files: &[std::path::PathBuf],
) -> Result<Vec<crate::checks::ExpectedHeader>, crate::error::InputError> {
    let values = crate::chart::values::UserValues::load(files, &[])?;
    let mut out: Vec<crate::checks::ExpectedHeader> = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<crate::checks::ExpectedHeader>) {
        match v {
            serde_json::Value::Object(m) => {
                // The string KEDA reads, or a YAML map a user wrote instead (what they meant
                // is still plain, whatever the chart makes of it).
                let pairs: Vec<(String, String)> = match m.get("customHeaders") {
                    Some(serde_json::Value::String(h)) => {
                        crate::keda::prometheus::parse_keda_map("customHeaders", h)
                            .map(|map| map.into_iter().collect())
                            .unwrap_or_default()
                    }
                    Some(serde_json::Value::Object(map)) => map
                        .iter()
                        .filter_map(|(k, v)| match v {
                            serde_json::Value::String(s) => Some((k.clone(), s.clone())),
                            serde_json::Value::Number(n) => Some((k.clone(), n.to_string())),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                for (name, value) in pairs {
                    if !out.iter().any(|x| x.name.eq_ignore_ascii_case(&name)) {
                        out.push(crate::checks::ExpectedHeader { name, value });
                    }
                }
                m.values().for_each(|c| walk(c, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    walk(&values.merged, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_gap_of_one_interval_and_a_poll_is_not_an_interruption() {
        use std::time::Duration;
        assert_eq!(super::largest_expected_gap(5), Duration::from_secs(7));
        assert_eq!(super::largest_expected_gap(30), Duration::from_secs(36));
    }

    use super::*;

    #[test]
    fn finds_metric_names_but_not_functions_or_labels() {
        let q = "sum by (cluster, namespace, tenant) (tempodb_compaction_outstanding_blocks{namespace=\"tempo\"}) / ignoring(tenant) group_left count by (cluster, namespace) (tempo_build_info{namespace=\"tempo\", component=\"compactor\"})";
        assert_eq!(
            metric_names(q),
            vec!["tempodb_compaction_outstanding_blocks", "tempo_build_info"]
        );
        assert_eq!(metric_names("sum(rate(x_total[5m]))"), vec!["x_total"]);
        let l = selector_labels(q);
        assert_eq!(
            l["tempo_build_info"].get("component").map(String::as_str),
            Some("compactor")
        );
        assert_eq!(
            l["tempodb_compaction_outstanding_blocks"]
                .get("namespace")
                .map(String::as_str),
            Some("tempo")
        );
    }
}
