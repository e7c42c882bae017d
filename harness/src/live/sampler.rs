//! The timeline sampler and the oracle's view: every second, and as soon as the workload or its
//! HPA changes (seen by a watch), the workload's replicas, the
//! HPA's desired count, and the value KEDA would read for the trigger (asked with the
//! trigger's own headers, marked as the harness's so the mock tells them apart), with the
//! replica count the HPA model computes from it.

use super::observe;
use super::run::StepLatency;
use super::target::Target;
use super::timeline::Sample;
use super::watch::Changes;
use crate::backend::query::{instant, keda_value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the sampler and the steps share while a scenario runs.
pub(crate) struct Shared {
    /// The timeline so far.
    pub(crate) samples: Vec<Sample>,
    /// The running step's keyword.
    pub(crate) step: String,
    /// When each step started, and its label.
    pub(crate) markers: Vec<(f64, String)>,
    /// Verdict latencies of the replica expectations.
    pub(crate) latencies: Vec<StepLatency>,
}

/// Header the harness's own queries carry, so they are told apart from KEDA's at the mock.
pub const ORACLE_MARKER: &str = "X-Keda-Conformance-Oracle";

/// The oracle's view now: KEDA's value for the trigger (or its error) and the expected count.
pub(crate) async fn oracle(
    http: &reqwest::Client,
    base: &str,
    target: &Target,
    current: i32,
    ready: i32,
) -> (Result<f64, String>, Option<i32>) {
    let mut headers = target.headers();
    headers.push((ORACLE_MARKER.to_string(), "1".to_string()));
    // KEDA gives up after the trigger's timeout (its global HTTP timeout, 3 s, by default).
    let limit = target.keda_timeout();
    let answer = match tokio::time::timeout(limit, instant(http, base, &target.trigger.config.query, &headers)).await {
        Ok(a) => a.map_err(|e| e.to_string()),
        Err(_) => Err(format!("context deadline exceeded (Client.Timeout exceeded while awaiting headers) after {limit:?}")),
    };
    let value = match answer.map_err(|e| e.to_string()) {
        Ok(a) => keda_value(
            &a,
            &target.trigger.config.query,
            target.trigger.config.ignore_null_values,
        ),
        Err(e) => Err(e.to_string()),
    };
    let expected = match &value {
        Ok(v)
            if target.model.min_replicas == 0
                && *v <= target.trigger.config.activation_threshold =>
        {
            Some(0)
        }
        Ok(v) => Some(
            target
                .model
                .desired(*v, current.max(0) as u32, ready.max(0) as u32) as i32,
        ),
        Err(_) => target.fallback_replicas,
    };
    (value, expected)
}

/// Takes one sample of the timeline now: the workload's replicas, the HPA's desired count and
/// the oracle's view.
pub(crate) async fn sample_once(
    client: &kube::Client,
    http: &reqwest::Client,
    base: &str,
    target: &Target,
    shared: &Arc<Mutex<Shared>>,
    started: Instant,
) {
    let r = observe::replicas(client, &target.workload)
        .await
        .unwrap_or_default();
    let (value, expected) = oracle(http, base, target, r.spec, r.ready).await;
    let hpa_desired = observe::hpa(client, &target.workload.namespace, &target.hpa)
        .await
        .ok()
        .flatten()
        .and_then(|h| h.status.map(|s| s.desired_replicas));
    if let Ok(mut s) = shared.lock() {
        let step = s.step.clone();
        s.samples.push(Sample {
            t: started.elapsed().as_secs_f64(),
            metric: value.as_ref().ok().copied(),
            metric_error: value.err(),
            expected,
            hpa_desired,
            spec: r.spec,
            ready: r.ready,
            step,
        });
    }
}

/// Samples every second, and on each change of the workload or its HPA, until aborted.
pub(crate) fn spawn_sampler(
    client: kube::Client,
    base: String,
    target: Target,
    shared: Arc<Mutex<Shared>>,
    started: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = target.query_client();
        let changes = Changes::none()
            .of_workload(&client, &target.workload)
            .of_hpa(&client, &target.workload.namespace, &target.hpa);
        loop {
            let began = Instant::now();
            sample_once(&client, &http, &base, &target, &shared, started).await;
            // At most four samples a second however often the objects change.
            tokio::time::sleep(Duration::from_millis(250)).await;
            changes
                .next(Duration::from_secs(1).saturating_sub(began.elapsed()))
                .await;
        }
    })
}
