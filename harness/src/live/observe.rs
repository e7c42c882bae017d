//! Reads the cluster state a verdict rests on: the workload's replicas, the ScaledObject's
//! conditions, the HPA KEDA made, and events, as plain data for assertions and evidence.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Serialize;

/// A scale target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// Deployment or StatefulSet.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// Replica counts observed on a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Replicas {
    /// spec.replicas.
    pub spec: i32,
    /// status.replicas.
    pub status: i32,
    /// status.readyReplicas.
    pub ready: i32,
}

impl Replicas {
    /// The counts a Deployment shows (spec defaults to 1, as the API server's does).
    pub fn of_deployment(d: &Deployment) -> Self {
        let st = d.status.clone().unwrap_or_default();
        Replicas {
            spec: d.spec.as_ref().and_then(|x| x.replicas).unwrap_or(1),
            status: st.replicas.unwrap_or(0),
            ready: st.ready_replicas.unwrap_or(0),
        }
    }

    /// The counts a StatefulSet shows.
    pub fn of_statefulset(s: &StatefulSet) -> Self {
        let st = s.status.clone().unwrap_or_default();
        Replicas {
            spec: s.spec.as_ref().and_then(|x| x.replicas).unwrap_or(1),
            status: st.replicas,
            ready: st.ready_replicas.unwrap_or(0),
        }
    }
}

/// Reads the workload's replica counts.
///
/// # Errors
/// The API error.
pub async fn replicas(client: &kube::Client, w: &Workload) -> Result<Replicas, kube::Error> {
    if w.kind == "StatefulSet" {
        let s = Api::<StatefulSet>::namespaced(client.clone(), &w.namespace)
            .get(&w.name)
            .await?;
        Ok(Replicas::of_statefulset(&s))
    } else {
        let d = Api::<Deployment>::namespaced(client.clone(), &w.namespace)
            .get(&w.name)
            .await?;
        Ok(Replicas::of_deployment(&d))
    }
}

/// A condition of a ScaledObject or HPA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// Type (Ready, Active, Fallback, ScalingActive, AbleToScale, ...).
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

fn scaled_object_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "scaledobjects"),
    )
}

/// A ScaledObject as JSON, if it exists.
///
/// # Errors
/// The API error (not-found is `Ok(None)`).
pub async fn scaled_object(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<serde_json::Value>, kube::Error> {
    match scaled_object_api(client, ns).get_opt(name).await? {
        Some(o) => Ok(serde_json::to_value(o).ok()),
        None => Ok(None),
    }
}

/// The conditions in a ScaledObject's status.
pub fn scaled_object_conditions(so: &serde_json::Value) -> Vec<Condition> {
    so["status"]["conditions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| Condition {
                    type_: c["type"].as_str().unwrap_or_default().into(),
                    status: c["status"].as_str().unwrap_or_default().into(),
                    reason: c["reason"].as_str().unwrap_or_default().into(),
                    message: c["message"].as_str().unwrap_or_default().into(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The HPA KEDA created for a ScaledObject (`keda-hpa-<name>` unless renamed).
///
/// # Errors
/// The API error (not-found is `Ok(None)`).
pub async fn hpa(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<HorizontalPodAutoscaler>, kube::Error> {
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
}

/// The HPA's conditions.
pub fn hpa_conditions(h: &HorizontalPodAutoscaler) -> Vec<Condition> {
    h.status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| Condition {
            type_: c.type_,
            status: c.status,
            reason: c.reason.unwrap_or_default(),
            message: c.message.unwrap_or_default(),
        })
        .collect()
}

/// The external metric values the HPA last read (name, current value), as text.
pub fn hpa_metric_values(h: &HorizontalPodAutoscaler) -> Vec<(String, String)> {
    h.status
        .as_ref()
        .and_then(|s| s.current_metrics.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            let e = m.external?;
            let v = e
                .current
                .average_value
                .or(e.current.value)
                .map(|q| q.0)
                .unwrap_or_default();
            Some((e.metric.name, v))
        })
        .collect()
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventLine {
    /// Kind/name of the object.
    pub object: String,
    /// Normal or Warning.
    pub type_: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// How many times.
    pub count: i32,
}

/// Events in a namespace, oldest first.
///
/// # Errors
/// The API error.
pub async fn events(client: &kube::Client, ns: &str) -> Result<Vec<EventLine>, kube::Error> {
    let mut list = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    list.sort_by_key(|e| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
    });
    Ok(list
        .into_iter()
        .map(|e| EventLine {
            object: format!(
                "{}/{}",
                e.involved_object.kind.unwrap_or_default(),
                e.involved_object.name.unwrap_or_default()
            ),
            type_: e.type_.unwrap_or_default(),
            reason: e.reason.unwrap_or_default(),
            message: e.message.unwrap_or_default(),
            count: e.count.unwrap_or(1),
        })
        .collect())
}

/// A plain-text dump of the autoscaling state of one ScaledObject, for evidence and failures.
pub async fn describe(
    client: &kube::Client,
    ns: &str,
    scaled_object_name: &str,
    hpa_name: &str,
) -> String {
    let mut out = String::new();
    match scaled_object(client, ns, scaled_object_name).await {
        Ok(Some(so)) => {
            out.push_str(&format!("ScaledObject {ns}/{scaled_object_name}:\n"));
            for c in scaled_object_conditions(&so) {
                out.push_str(&format!(
                    "  {}={} {}: {}\n",
                    c.type_, c.status, c.reason, c.message
                ));
            }
            out.push_str(&format!("  status: {}\n", so["status"]));
        }
        Ok(None) => out.push_str(&format!(
            "ScaledObject {ns}/{scaled_object_name}: not found\n"
        )),
        Err(e) => out.push_str(&format!("ScaledObject {ns}/{scaled_object_name}: {e}\n")),
    }
    match hpa(client, ns, hpa_name).await {
        Ok(Some(h)) => {
            let st = h.status.clone().unwrap_or_default();
            out.push_str(&format!(
                "HPA {hpa_name}: current {:?} desired {}\n",
                st.current_replicas, st.desired_replicas
            ));
            for c in hpa_conditions(&h) {
                out.push_str(&format!(
                    "  {}={} {}: {}\n",
                    c.type_, c.status, c.reason, c.message
                ));
            }
            for (n, v) in hpa_metric_values(&h) {
                out.push_str(&format!("  metric {n} = {v}\n"));
            }
        }
        Ok(None) => out.push_str(&format!("HPA {hpa_name}: not found\n")),
        Err(e) => out.push_str(&format!("HPA {hpa_name}: {e}\n")),
    }
    if let Ok(ev) = events(client, ns).await {
        out.push_str("events:\n");
        for e in ev {
            out.push_str(&format!(
                "  {} {} {} (x{}): {}\n",
                e.object, e.type_, e.reason, e.count, e.message
            ));
        }
    }
    out
}

/// An object that scales a workload (a ScaledObject or an HPA), as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScalerRef {
    /// The object's name.
    pub name: String,
    /// scaleTargetRef.kind (Deployment when a ScaledObject leaves it out).
    pub target_kind: String,
    /// scaleTargetRef.name.
    pub target_name: String,
}

impl std::fmt::Display for ScalerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {}/{}",
            self.name, self.target_kind, self.target_name
        )
    }
}

/// A Deployment or StatefulSet and its replica counts, as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkloadState {
    /// Deployment or StatefulSet.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Replica counts.
    pub replicas: Replicas,
}

impl std::fmt::Display for WorkloadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} ({} replicas, {} Ready)",
            self.kind, self.name, self.replicas.spec, self.replicas.ready
        )
    }
}

/// The ScaledObjects, HPAs and workloads of a namespace at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScalingSnapshot {
    /// ScaledObjects.
    pub scaled_objects: Vec<ScalerRef>,
    /// HorizontalPodAutoscalers (KEDA's are named `keda-hpa-<ScaledObject>`).
    pub hpas: Vec<ScalerRef>,
    /// Deployments and StatefulSets.
    pub workloads: Vec<WorkloadState>,
}

impl ScalingSnapshot {
    /// True when a workload of this kind and name exists.
    pub fn has_workload(&self, kind: &str, name: &str) -> bool {
        self.workloads
            .iter()
            .any(|w| w.kind == kind && w.name == name)
    }

    /// ScaledObjects and HPAs whose target workload does not exist (orphans).
    pub fn orphans(&self) -> Vec<String> {
        let so = self
            .scaled_objects
            .iter()
            .filter(|s| !self.has_workload(&s.target_kind, &s.target_name))
            .map(|s| format!("ScaledObject {s}"));
        let hpa = self
            .hpas
            .iter()
            .filter(|s| !self.has_workload(&s.target_kind, &s.target_name))
            .map(|s| format!("HPA {s}"));
        so.chain(hpa).collect()
    }

    /// HPAs that target this workload.
    pub fn hpas_for(&self, kind: &str, name: &str) -> Vec<&ScalerRef> {
        self.hpas
            .iter()
            .filter(|h| h.target_kind == kind && h.target_name == name)
            .collect()
    }
}

/// Lists the ScaledObjects, HPAs, Deployments and StatefulSets of a namespace.
///
/// # Errors
/// The first API error.
pub async fn scaling_snapshot(
    client: &kube::Client,
    ns: &str,
) -> Result<ScalingSnapshot, kube::Error> {
    let lp = ListParams::default();
    let mut snap = ScalingSnapshot::default();
    for so in scaled_object_api(client, ns).list(&lp).await?.items {
        let v = serde_json::to_value(&so).unwrap_or_default();
        snap.scaled_objects.push(ScalerRef {
            name: so.metadata.name.clone().unwrap_or_default(),
            target_kind: v["spec"]["scaleTargetRef"]["kind"]
                .as_str()
                .unwrap_or("Deployment")
                .to_string(),
            target_name: v["spec"]["scaleTargetRef"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        });
    }
    for h in Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items
    {
        let target = h.spec.map(|s| s.scale_target_ref).unwrap_or_default();
        snap.hpas.push(ScalerRef {
            name: h.metadata.name.unwrap_or_default(),
            target_kind: target.kind,
            target_name: target.name,
        });
    }
    for d in Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items
    {
        let st = d.status.unwrap_or_default();
        snap.workloads.push(WorkloadState {
            kind: "Deployment".into(),
            name: d.metadata.name.unwrap_or_default(),
            replicas: Replicas {
                spec: d.spec.and_then(|x| x.replicas).unwrap_or(1),
                status: st.replicas.unwrap_or(0),
                ready: st.ready_replicas.unwrap_or(0),
            },
        });
    }
    for s in Api::<StatefulSet>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items
    {
        let st = s.status.unwrap_or_default();
        snap.workloads.push(WorkloadState {
            kind: "StatefulSet".into(),
            name: s.metadata.name.unwrap_or_default(),
            replicas: Replicas {
                spec: s.spec.and_then(|x| x.replicas).unwrap_or(1),
                status: st.replicas,
                ready: st.ready_replicas.unwrap_or(0),
            },
        });
    }
    Ok(snap)
}
