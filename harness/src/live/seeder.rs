//! Keeps tenants' series fresh in the backend by remote write, once a second, including series
//! that follow the workload's Ready pods (one per pod, as the pods themselves would export).

use crate::backend::remote_write::{write, Series};
use crate::live::observe::Workload;
use crate::scenario::SeriesSpec;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Prometheus's staleness marker: a NaN with this exact bit pattern ends a series at once.
pub const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// What each tenant's metrics hold now.
#[derive(Debug, Clone, Default)]
pub struct SeedState {
    /// Fixed series per tenant.
    pub fixed: BTreeMap<String, Vec<SeriesSpec>>,
    /// Per-ready-pod series templates per tenant.
    pub per_pod: BTreeMap<String, Vec<SeriesSpec>>,
    /// The last write error, if the latest round failed.
    pub last_error: Option<String>,
    /// Completed write rounds.
    pub rounds: u64,
}

/// A running seeder; stops when dropped.
#[derive(Debug)]
pub struct Seeder {
    state: Arc<Mutex<SeedState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Seeder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Names of the workload's Ready pods, found through its label selector.
///
/// # Errors
/// The API error.
pub async fn ready_pods(
    client: &kube::Client,
    workload: &Workload,
    selector: &str,
) -> Result<Vec<String>, kube::Error> {
    let pods = Api::<Pod>::namespaced(client.clone(), &workload.namespace)
        .list(&ListParams::default().labels(selector))
        .await?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .map(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                .unwrap_or(false)
        })
        .filter_map(|p| p.metadata.name)
        .collect())
}

impl Seeder {
    /// Starts writing to `push_url` every second; `selector` finds the workload's pods.
    pub fn start(
        client: kube::Client,
        push_url: String,
        workload: Workload,
        selector: String,
    ) -> Self {
        let state = Arc::new(Mutex::new(SeedState::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default();
            // What each tenant got last round, so series that vanish (a pod no longer Ready, a
            // fixed series replaced) are ended with a staleness marker, as Prometheus does
            // when a target disappears; otherwise queries would see them for the lookback.
            let mut previous: BTreeMap<String, Vec<Series>> = BTreeMap::new();
            loop {
                let snapshot = shared.lock().map(|s| s.clone()).unwrap_or_default();
                let needs_pods = snapshot.per_pod.values().any(|v| !v.is_empty());
                let pods = if needs_pods {
                    ready_pods(&client, &workload, &selector)
                        .await
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                let mut error = None;
                let tenants: std::collections::BTreeSet<String> = snapshot
                    .fixed
                    .keys()
                    .chain(snapshot.per_pod.keys())
                    .chain(previous.keys())
                    .cloned()
                    .collect();
                for tenant in &tenants {
                    let mut series: Vec<Series> = snapshot
                        .fixed
                        .get(tenant)
                        .into_iter()
                        .flatten()
                        .map(|s| Series {
                            name: s.name.clone(),
                            labels: s.labels.clone(),
                            value: s.value.unwrap_or(1.0),
                        })
                        .collect();
                    for template in snapshot.per_pod.get(tenant).into_iter().flatten() {
                        for pod in &pods {
                            let mut labels = template.labels.clone();
                            labels.insert("pod".into(), pod.clone());
                            series.push(Series {
                                name: template.name.clone(),
                                labels,
                                value: template.value.unwrap_or(1.0),
                            });
                        }
                    }
                    let current = series.clone();
                    for gone in previous.get(tenant).into_iter().flatten() {
                        if !current
                            .iter()
                            .any(|s| s.name == gone.name && s.labels == gone.labels)
                        {
                            series.push(Series {
                                value: STALE_NAN,
                                ..gone.clone()
                            });
                        }
                    }
                    if series.is_empty() {
                        continue;
                    }
                    match write(&http, &push_url, tenant, &series).await {
                        Ok(_) => {
                            previous.insert(tenant.clone(), current);
                        }
                        Err(e) => error = Some(e.to_string()),
                    }
                }
                if let Ok(mut s) = shared.lock() {
                    s.last_error = error;
                    s.rounds += 1;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Self { state, task }
    }

    /// Replaces a tenant's series (fixed and per-pod).
    pub fn set(&self, tenant: &str, fixed: Vec<SeriesSpec>, per_pod: Vec<SeriesSpec>) {
        if let Ok(mut s) = self.state.lock() {
            s.fixed.insert(tenant.to_string(), fixed);
            s.per_pod.insert(tenant.to_string(), per_pod);
        }
    }

    /// The state now.
    pub fn state(&self) -> SeedState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
