//! The typed unit of a rendered chart that the live tier and the reports judge: one
//! ScaledObject with the workload it scales, the HPA KEDA will create for it, its replica
//! bounds and polling interval, and its triggers as KEDA parses them.

use super::manifest::{keda_hpa_name, Manifest};
use crate::checks::TriggerRequest;
use serde_json::Value;
use std::time::Duration;

/// KEDA's pollingInterval when the ScaledObject sets none.
pub const DEFAULT_POLLING: Duration = Duration::from_secs(30);

/// A workload a ScaledObject points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    /// `scaleTargetRef.kind` (KEDA's default: Deployment).
    pub kind: String,
    /// `scaleTargetRef.name`.
    pub name: String,
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// One rendered ScaledObject, typed.
#[derive(Debug, Clone)]
pub struct Autoscaled {
    /// The ScaledObject's name.
    pub scaled_object: String,
    /// The template it came from (`# Source:`).
    pub source: String,
    /// What it scales.
    pub workload: WorkloadRef,
    /// The HPA KEDA creates (its configured name, else `keda-hpa-<ScaledObject>`).
    pub hpa: String,
    /// `minReplicaCount`, as rendered (KEDA's default 0 when absent).
    pub min_replicas: Option<i64>,
    /// `maxReplicaCount`, as rendered (KEDA's default 100 when absent).
    pub max_replicas: Option<i64>,
    /// `pollingInterval` (KEDA's default 30 s; at least 1 s).
    pub polling: Duration,
    /// The prometheus triggers as KEDA parses them, in order.
    pub triggers: Vec<TriggerRequest>,
}

/// A number written as a number or a string.
pub fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

impl Autoscaled {
    /// The typed unit of ScaledObject `so`, with the triggers of `requests` that belong to it.
    pub fn of(so: &Manifest, requests: &[TriggerRequest]) -> Self {
        let spec = &so.body["spec"];
        let target = &spec["scaleTargetRef"];
        let prefix = format!("ScaledObject/{} ", so.name);
        Autoscaled {
            scaled_object: so.name.clone(),
            source: so.source.clone(),
            workload: WorkloadRef {
                kind: target["kind"].as_str().unwrap_or("Deployment").to_string(),
                name: target["name"].as_str().unwrap_or_default().to_string(),
            },
            hpa: keda_hpa_name(&so.name, &so.body),
            min_replicas: int(&spec["minReplicaCount"]),
            max_replicas: int(&spec["maxReplicaCount"]),
            polling: int(&spec["pollingInterval"])
                .map(|s| Duration::from_secs(s.max(1) as u64))
                .unwrap_or(DEFAULT_POLLING),
            triggers: requests
                .iter()
                .filter(|r| r.subject.starts_with(&prefix))
                .cloned()
                .collect(),
        }
    }

    /// Every ScaledObject in `manifests`, typed.
    pub fn all(manifests: &[Manifest], requests: &[TriggerRequest]) -> Vec<Self> {
        manifests
            .iter()
            .filter(|m| m.is_keda("ScaledObject"))
            .map(|so| Self::of(so, requests))
            .collect()
    }

    /// The rendered workload this ScaledObject scales, if the chart renders it.
    pub fn workload_in<'a>(&self, manifests: &'a [Manifest]) -> Option<&'a Manifest> {
        manifests
            .iter()
            .find(|m| m.kind == self.workload.kind && m.name == self.workload.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaled_object_typed() {
        let ms = super::super::manifest::split(
            "# Source: c/templates/so.yaml\napiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: so}\nspec:\n  scaleTargetRef: {name: w}\n  maxReplicaCount: \"7\"\n  pollingInterval: 0\n  advanced: {horizontalPodAutoscalerConfig: {name: named}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\n",
        )
        .unwrap();
        let all = Autoscaled::all(&ms, &[]);
        assert_eq!(all.len(), 1);
        let a = &all[0];
        assert_eq!(a.workload.to_string(), "Deployment/w");
        assert_eq!(a.hpa, "named");
        assert_eq!(a.max_replicas, Some(7));
        assert_eq!(a.min_replicas, None);
        assert_eq!(a.polling, Duration::from_secs(1));
        assert_eq!(a.source, "c/templates/so.yaml");
        assert!(a.workload_in(&ms).is_some());
    }
}
