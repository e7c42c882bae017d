//! What the render tier says about the autoscaling under test, derived once per scenario:
//! the ScaledObject, the HPA KEDA creates for it, the workload it scales, the trigger as KEDA
//! parses it, the HPA model the oracle computes with, and the timing the deadlines derive from.

use super::env::LiveEnv;
use super::observe::Workload;
use super::outcome::LiveOutcome;
use crate::chart::helm::HelmMajor;
use crate::checks::TriggerRequest;
use crate::oracle::HpaModel;
use crate::render::RenderReport;
use crate::scenario::Scenario;
use serde_json::Value;
use std::time::Duration;

/// What the render tier says about the autoscaling under test.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) scaled_object: String,
    /// The HPA KEDA creates for it (its configured name, else `keda-hpa-<ScaledObject>`).
    pub(crate) hpa: String,
    /// What the ScaledObject's HPA behavior does to scale-up and scale-down timing.
    pub(crate) scale_up: crate::oracle::DirectionDelay,
    /// See `scale_up`.
    pub(crate) scale_down: crate::oracle::DirectionDelay,
    pub(crate) workload: Workload,
    pub(crate) selector: String,
    pub(crate) trigger: TriggerRequest,
    pub(crate) model: HpaModel,
    pub(crate) polling: Duration,
    pub(crate) fallback_replicas: Option<i32>,
    /// How long a new pod of the workload needs, at least, before its probes let it be Ready
    /// ([`ready_delay`]); zero where pods are simulated, real with real pods.
    pub(crate) ready_delay: Duration,
}

impl Target {
    /// How long the HPA holds back a change up (`up`) or down, beyond its sync period: the
    /// stabilization window the ScaledObject's behavior sets (else the controller's: 0 up,
    /// its downscale stabilization down) plus the time its scaling policies take.
    pub(crate) fn delay(&self, up: bool, env: &LiveEnv) -> Duration {
        let d = if up { self.scale_up } else { self.scale_down };
        let default = if up {
            Duration::ZERO
        } else {
            env.hpa.downscale_stabilization
        };
        d.stabilization.unwrap_or(default) + d.policies
    }

    /// The headers the trigger sends (its customHeaders and the auth header from its
    /// TriggerAuthentication), as KEDA names them.
    pub(crate) fn headers(&self) -> Vec<(String, String)> {
        self.trigger.request.headers.clone()
    }

    /// How long KEDA waits for an answer: the trigger's timeout, else KEDA's global HTTP
    /// timeout (3 s).
    pub(crate) fn keda_timeout(&self) -> Duration {
        self.trigger
            .config
            .timeout
            .unwrap_or(Duration::from_secs(3))
    }

    /// An HTTP client for the harness's own queries, which the oracle cuts off at
    /// [`Target::keda_timeout`] (the client itself allows a second more).
    pub(crate) fn query_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(self.keda_timeout() + Duration::from_secs(1))
            .build()
            .unwrap_or_default()
    }
}

/// Why a render gives the live steps nothing to judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoTarget {
    /// No ScaledObject at all.
    #[error("the chart renders no ScaledObject")]
    NoScaledObject,
    /// The ScaledObject's scale target is not among the rendered objects.
    #[error("scaleTargetRef {0} is not rendered")]
    WorkloadNotRendered(String),
    /// The ScaledObject has no prometheus trigger whose metadata KEDA accepts.
    #[error("the ScaledObject has no prometheus trigger KEDA can parse")]
    NoUsableTrigger,
}

impl NoTarget {
    /// Whether KEDA still has a ScaledObject to act on (and to say what is wrong with).
    pub fn keda_has_something_to_say(&self) -> bool {
        !matches!(self, NoTarget::NoScaledObject)
    }
}

/// The [`Target`] of the first ScaledObject in `manifests` (rendered for `namespace`).
pub(crate) fn target_from_render(
    render: &RenderReport,
    namespace: &str,
    tolerance: f64,
) -> Result<Target, NoTarget> {
    let unit = render.first_autoscaled().ok_or(NoTarget::NoScaledObject)?;
    let workload_manifest = unit
        .workload_in(&render.manifests)
        .ok_or_else(|| NoTarget::WorkloadNotRendered(unit.workload.to_string()))?;
    let selector = workload_manifest.body["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let trigger = unit
        .triggers
        .first()
        .cloned()
        .ok_or(NoTarget::NoUsableTrigger)?;
    let so = render
        .manifests
        .iter()
        .find(|m| m.is_keda("ScaledObject") && m.name == unit.scaled_object)
        .ok_or(NoTarget::NoScaledObject)?;
    let spec = &so.body["spec"];
    let model = HpaModel {
        target: trigger.config.threshold,
        metric_type: trigger.config.metric_type,
        min_replicas: unit.min_replicas.unwrap_or(0).max(0) as u32,
        max_replicas: unit.max_replicas.unwrap_or(100).max(0) as u32,
        tolerance,
    };
    let behavior = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
    let span = model.max_replicas.saturating_sub(model.hpa_min()).max(1);
    Ok(Target {
        scaled_object: unit.scaled_object.clone(),
        hpa: unit.hpa.clone(),
        scale_up: crate::oracle::direction_delay(behavior, "scaleUp", span),
        scale_down: crate::oracle::direction_delay(behavior, "scaleDown", span),
        workload: Workload {
            kind: unit.workload.kind.clone(),
            name: unit.workload.name.clone(),
            namespace: namespace.to_string(),
        },
        selector,
        trigger,
        model,
        polling: unit.polling,
        fallback_replicas: crate::keda::autoscaled::int(&spec["fallback"]["replicas"])
            .map(|r| r as i32),
        ready_delay: ready_delay(&workload_manifest.body),
    })
}

/// The earliest a new pod of `workload` can be Ready by its probes: per container, a startup
/// probe's first success (`initialDelaySeconds + periodSeconds`) before the readiness probe's
/// `initialDelaySeconds + periodSeconds x successThreshold` (Kubernetes' defaults: period 10 s,
/// success threshold 1); the slowest container counts.
pub(crate) fn ready_delay(workload: &Value) -> Duration {
    let secs = |probe: &Value, key: &str, default: u64| {
        probe[key]
            .as_u64()
            .or_else(|| probe[key].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(default)
    };
    let probe_time = |probe: &Value, successes: u64| {
        if probe.is_object() {
            secs(probe, "initialDelaySeconds", 0) + secs(probe, "periodSeconds", 10) * successes
        } else {
            0
        }
    };
    let containers = workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let slowest = containers
        .iter()
        .map(|c| {
            let readiness = &c["readinessProbe"];
            probe_time(&c["startupProbe"], 1)
                + probe_time(readiness, secs(readiness, "successThreshold", 1))
        })
        .max()
        .unwrap_or(0);
    Duration::from_secs(slowest.min(3600))
}

pub(crate) fn namespace_for(scenario: &str, helm: HelmMajor) -> String {
    let mut base: String = scenario
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    base.truncate(40);
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 100_000)
        .unwrap_or(0);
    format!("{}-h{}-{suffix}", base.trim_end_matches('-'), helm.number())
}

/// What the steps judge, read from the chart as the install renders it (its namespace, the
/// cluster's capabilities), so the oracle asks exactly what KEDA will; the render tier's
/// `target` when that render fails. Says when the chart writes the namespace into the query.
pub(crate) async fn install_target(
    env: &LiveEnv,
    scenario: &Scenario,
    helm: HelmMajor,
    namespace: &str,
    rendered: Target,
    outcome: &mut LiveOutcome,
) -> (Target, Option<NamespaceInQuery>) {
    let live = match render_for_install(env, scenario, helm, namespace).await {
        Ok(live) => live,
        Err(e) => {
            outcome.observations.push(format!(
                "warning: the chart could not be rendered for the install's namespace {namespace} ({e}); judging the render tier's ScaledObject"
            ));
            return (rendered, None);
        }
    };
    let target = match target_from_render(&live, namespace, env.hpa.tolerance) {
        Ok(t) => t,
        Err(e) => {
            outcome.observations.push(format!(
                "warning: rendered for the install's namespace {namespace}, the chart gives no target ({e}); judging the render tier's ScaledObject"
            ));
            return (rendered, None);
        }
    };
    let (before, after) = (&rendered.trigger.config.query, &target.trigger.config.query);
    let moved = NamespaceInQuery::detect(before, after, &scenario.namespace, namespace);
    if let Some(m) = &moved {
        outcome.observations.push(format!(
            "the chart writes the release namespace into the trigger's query: installed in {}, KEDA asks {after:?}; seeded labels equal to {:?} follow it",
            m.live, m.scenario
        ));
    } else if before != after {
        outcome.observations.push(format!(
            "warning: the install renders the trigger's query as {after:?}, the render tier as {before:?}; the live steps judge what KEDA is sent"
        ));
    }
    (target, moved)
}

/// The render tier judged what Helm rendered for `render.capabilities`; the install asks the
/// cluster itself. Says so when the two would differ for this chart.
pub(crate) async fn warn_on_capability_differences(
    env: &LiveEnv,
    render: &RenderReport,
    outcome: &mut LiveOutcome,
) {
    match env.capabilities().await {
        Ok(live) => {
            for d in render
                .capabilities
                .differences(live, &render.gated_api_versions)
            {
                outcome.observations.push(format!(
                    "warning: the render tier and the cluster disagree on capabilities: {d}; the install renders for the cluster (render with --kube-version/--api-versions of the cluster to judge the same manifests)"
                ));
            }
        }
        Err(e) => outcome.observations.push(format!(
            "warning: the cluster's capabilities could not be read: {e}"
        )),
    }
}

/// Renders the chart as the install will: for the namespace the live tier installs into and
/// with the cluster's capabilities. A chart may write `.Release.Namespace` into the trigger's
/// query (or anything else), so what KEDA sends is read from this render, not the render
/// tier's.
pub(crate) async fn render_for_install(
    env: &LiveEnv,
    scenario: &crate::scenario::Scenario,
    helm: HelmMajor,
    namespace: &str,
) -> Result<RenderReport, String> {
    let mut opts = crate::render::RenderOptions::for_scenario(scenario, Vec::new(), helm);
    opts.namespace = namespace.to_string();
    opts.capabilities = env.capabilities().await.cloned().unwrap_or_default();
    tokio::task::spawn_blocking(move || crate::render::render(&opts))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// The scenario's namespace written into the trigger's query by the chart: the render tier
/// renders for the scenario's namespace, the live tier installs into a namespace of its own,
/// so such a query names the live namespace when KEDA sends it. Seeds written for the
/// scenario's namespace then follow the query to the live one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamespaceInQuery {
    /// The namespace the render tier used (the scenario's).
    pub(crate) scenario: String,
    /// The namespace the release is installed in.
    pub(crate) live: String,
}

impl NamespaceInQuery {
    /// `Some` when the live query is the render tier's with every quoted mention of the
    /// scenario's namespace replaced by the live one, and the two differ.
    pub(crate) fn detect(
        render_query: &str,
        live_query: &str,
        scenario_ns: &str,
        live_ns: &str,
    ) -> Option<Self> {
        let mut moved = render_query.to_string();
        for q in ['"', '\'', '`'] {
            moved = moved.replace(&format!("{q}{scenario_ns}{q}"), &format!("{q}{live_ns}{q}"));
        }
        (render_query != live_query && moved == live_query).then(|| NamespaceInQuery {
            scenario: scenario_ns.to_string(),
            live: live_ns.to_string(),
        })
    }

    /// `series` with every label whose value is the scenario's namespace set to the live one.
    pub(crate) fn apply(
        &self,
        series: &[crate::scenario::SeriesSpec],
    ) -> Vec<crate::scenario::SeriesSpec> {
        series
            .iter()
            .cloned()
            .map(|mut s| {
                for v in s.labels.values_mut() {
                    if *v == self.scenario {
                        v.clone_from(&self.live);
                    }
                }
                s
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn ready_delay_is_the_slowest_container_s_probes() {
        let w: Value = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "readinessProbe": {"initialDelaySeconds": 30, "periodSeconds": 5, "successThreshold": 2}},
            {"name": "b", "startupProbe": {"initialDelaySeconds": 10}, "readinessProbe": {}},
            {"name": "c"}
        ]}}}});
        // a: 30 + 5 x 2 = 40; b: (10 + 10) + (0 + 10) = 30; c: none.
        assert_eq!(ready_delay(&w), Duration::from_secs(40));
        assert_eq!(ready_delay(&serde_json::json!({})), Duration::ZERO);
        let huge = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"readinessProbe": {"initialDelaySeconds": 99999999}}]}}}});
        assert_eq!(ready_delay(&huge), Duration::from_secs(3600));
    }

    use super::*;

    #[test]
    fn namespaces_are_dns_labels_that_name_the_scenario_and_helm() {
        let ns = namespace_for(
            "Compactor: sends_header! (tenant A) and a very long tail here",
            HelmMajor::V4,
        );
        assert!(ns.len() <= 63, "{ns}");
        assert!(
            ns.starts_with("compactor--sends-header---tenant-a-"),
            "{ns}"
        );
        assert!(ns.contains("-h4-"), "{ns}");
        assert!(ns
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert!(!ns.starts_with('-') && !ns.ends_with('-'));
    }

    #[test]
    fn a_query_naming_the_release_namespace_moves_the_seeds_with_it() {
        let render = r#"sum(tempodb_compaction_outstanding_blocks{namespace="tempo", tenant="a"})"#;
        let live =
            r#"sum(tempodb_compaction_outstanding_blocks{namespace="run-h3-1", tenant="a"})"#;
        let moved = NamespaceInQuery::detect(render, live, "tempo", "run-h3-1").expect("moved");
        let series = vec![crate::scenario::SeriesSpec {
            name: "tempodb_compaction_outstanding_blocks".into(),
            labels: [
                ("namespace".to_string(), "tempo".to_string()),
                ("tenant".to_string(), "a".to_string()),
            ]
            .into_iter()
            .collect(),
            value: Some(1.0),
        }];
        let out = moved.apply(&series);
        assert_eq!(out[0].labels["namespace"], "run-h3-1");
        assert_eq!(out[0].labels["tenant"], "a");
        assert_eq!(
            out[0].name, series[0].name,
            "the metric name is not a label"
        );
        // A query that names the namespace literally is the same in both renders: no move.
        assert_eq!(
            NamespaceInQuery::detect(render, render, "tempo", "run-h3-1"),
            None
        );
        // Any other difference is not the namespace's doing.
        let other = r#"sum(other{namespace="run-h3-1", tenant="a"})"#;
        assert_eq!(
            NamespaceInQuery::detect(render, other, "tempo", "run-h3-1"),
            None
        );
    }
}
