//! A ScaledObject KEDA cannot act on (its scale target is not rendered, or its trigger's
//! metadata is rejected): the render tier already fails it; the live tier installs it anyway
//! so the verdict carries KEDA's own conclusion.

use super::env::LiveEnv;
use super::observe;
use super::release::Release;
use super::run::LiveOutcome;
use super::watch::Changes;
use crate::chart::helm::HelmMajor;
use crate::keda::manifest;
use crate::render::RenderReport;
use crate::scenario::Scenario;
use std::time::{Duration, Instant};

/// Installs a chart whose ScaledObject scales a workload the chart does not render, waits
/// (up to 60 s) for KEDA to mark the ScaledObject not Ready, and records KEDA's condition and
/// events as observations and its final state; then removes the release and namespace.
pub(crate) async fn keda_on_unusable_target(
    env: &LiveEnv,
    scenario: &Scenario,
    helm: HelmMajor,
    namespace: &str,
    render: &RenderReport,
    so: &manifest::Manifest,
    outcome: &mut LiveOutcome,
) {
    let so_name = so.name.as_str();
    let hpa_name = manifest::keda_hpa_name(&so.name, &so.body);
    let client = env.client().clone();
    let backend = match env.start_backend(namespace).await {
        Ok(b) => b,
        Err(e) => {
            outcome
                .reasons
                .push(format!("cannot start the Mimir-API backend: {e}"));
            return;
        }
    };
    let release =
        match Release::install(env, helm, scenario, namespace, &backend.prometheus_url()).await {
            Ok((release, line)) => {
                outcome.observations.push(format!("install: {line}"));
                release
            }
            Err(e) => {
                outcome.reasons.push(format!("install: {e}"));
                return;
            }
        };
    let start = Instant::now();
    let mut seen: Option<observe::Condition> = None;
    let changes = Changes::none().of_scaled_object(&client, namespace, so_name);
    while start.elapsed() < Duration::from_secs(60) {
        let ready = observe::scaled_object(&client, namespace, so_name)
            .await
            .ok()
            .flatten()
            .map(|so| observe::scaled_object_conditions(&so))
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.status != "Unknown" && !c.status.is_empty());
        if let Some(c) = ready {
            seen = Some(c);
            break;
        }
        changes.next(changes.quiet_pause()).await;
    }
    match seen {
        Some(c) => outcome.observations.push(format!(
            "KEDA: ScaledObject {so_name} Ready={} {}: {}",
            c.status, c.reason, c.message
        )),
        None => outcome.observations.push(format!(
            "KEDA: ScaledObject {so_name} has no Ready condition after 60s"
        )),
    }
    let events = observe::events(&client, namespace)
        .await
        .unwrap_or_default();
    for e in events.iter().filter(|e| e.type_ == "Warning").take(5) {
        outcome.observations.push(format!(
            "KEDA event: {} {} {}: {}",
            e.object, e.type_, e.reason, e.message
        ));
    }
    outcome.final_state = crate::redact::for_renders(&[render])
        .apply(&observe::describe(&client, namespace, so_name, &hpa_name).await);
    release.remove(&client, true).await;
}
