//! Kube watchers for the live expectations: an expectation looks again the moment an object
//! it reads changes (seen by a watch on the API server), instead of at its next periodic look.
//! Where a watch cannot be opened (RBAC without `watch`, an API server that drops it), the
//! expectation still looks at its own longest pause, so a watch only ever makes it faster.

use super::observe::{Replicas, Workload};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{watcher, WatchStreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

/// Changes of the objects an expectation reads, as wake-ups. Dropping it stops its watches.
pub(crate) struct Changes {
    notify: Arc<Notify>,
    seen: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Changes {
    /// No watches yet: [`Changes::next`] waits its whole pause.
    pub(crate) fn none() -> Self {
        Changes {
            notify: Arc::new(Notify::new()),
            seen: Arc::new(AtomicU64::new(0)),
            tasks: Vec::new(),
        }
    }

    /// Also wakes when the scaled workload (Deployment or StatefulSet) changes.
    pub(crate) fn of_workload(mut self, client: &kube::Client, w: &Workload) -> Self {
        if w.kind == "StatefulSet" {
            let api = Api::<StatefulSet>::namespaced(client.clone(), &w.namespace);
            self.follow(watcher::watch_object(api, &w.name));
        } else {
            let api = Api::<Deployment>::namespaced(client.clone(), &w.namespace);
            self.follow(watcher::watch_object(api, &w.name));
        }
        self
    }

    /// Also wakes when the ScaledObject `name` in `ns` changes.
    pub(crate) fn of_scaled_object(mut self, client: &kube::Client, ns: &str, name: &str) -> Self {
        let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
        let api = Api::<DynamicObject>::namespaced_with(
            client.clone(),
            ns,
            &ApiResource::from_gvk_with_plural(&gvk, "scaledobjects"),
        );
        self.follow(watcher::watch_object(api, name));
        self
    }

    /// Also wakes when the HPA `name` in `ns` changes (or is created).
    pub(crate) fn of_hpa(mut self, client: &kube::Client, ns: &str, name: &str) -> Self {
        let api = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns);
        self.follow(watcher::watch_object(api, name));
        self
    }

    /// Also wakes when an event is recorded (or updated) in `ns`.
    pub(crate) fn of_events(mut self, client: &kube::Client, ns: &str) -> Self {
        let api = Api::<Event>::namespaced(client.clone(), ns);
        self.follow(watcher::watcher(api, watcher::Config::default()).default_backoff());
        self
    }

    fn follow<T, E>(&mut self, stream: impl futures::Stream<Item = Result<T, E>> + Send + 'static)
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let (notify, seen) = (self.notify.clone(), self.seen.clone());
        self.tasks.push(drive(stream, move |_| {
            seen.fetch_add(1, Ordering::Relaxed);
            notify.notify_one();
            true
        }));
    }

    /// Waits until a watched object changes or `at_most` passes; true when a change woke it.
    pub(crate) async fn next(&self, at_most: Duration) -> bool {
        tokio::time::timeout(at_most, self.notify.notified())
            .await
            .is_ok()
    }

    /// The longest pause between looks for a condition only the watched objects decide: 5 s
    /// once a watch has delivered (a change wakes the look sooner), 1 s while none has (a
    /// watch that cannot be opened leaves the periodic look as it was).
    pub(crate) fn quiet_pause(&self) -> Duration {
        if self.seen() > 0 {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(1)
        }
    }

    /// Waits for the next change, at most [`Changes::quiet_pause`] and never past `deadline`
    /// (a look is due then).
    pub(crate) async fn next_quiet(&self, deadline: std::time::Instant) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        self.next(self.quiet_pause().min(left).max(Duration::from_millis(10)))
            .await;
    }

    /// How many changes the watches have delivered so far.
    pub(crate) fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Every replica count the workload shows while it is watched, as the watch delivers it
/// (a transient count between two periodic looks is not missed). Dropping the receiver's
/// handle stops the watch.
pub(crate) fn replica_counts(
    client: &kube::Client,
    w: &Workload,
) -> (mpsc::UnboundedReceiver<Replicas>, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    // Keep going while the receiver listens; a deleted object (`None`) has no counts.
    let task = if w.kind == "StatefulSet" {
        let api = Api::<StatefulSet>::namespaced(client.clone(), &w.namespace);
        drive(watcher::watch_object(api, &w.name), move |o| {
            o.is_none_or(|s| tx.send(Replicas::of_statefulset(&s)).is_ok())
        })
    } else {
        let api = Api::<Deployment>::namespaced(client.clone(), &w.namespace);
        drive(watcher::watch_object(api, &w.name), move |o| {
            o.is_none_or(|d| tx.send(Replicas::of_deployment(&d)).is_ok())
        })
    };
    (rx, task)
}

/// Runs a watch stream in a task, handing each item to `on_item` until it returns false; a
/// failed watch call waits a second before the watcher retries (the expectations' own looks
/// still run meanwhile), so a watch that keeps failing does not spin.
fn drive<T, E>(
    stream: impl futures::Stream<Item = Result<T, E>> + Send + 'static,
    mut on_item: impl FnMut(T) -> bool + Send + 'static,
) -> JoinHandle<()>
where
    T: Send + 'static,
    E: Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(item) => {
                    if !on_item(item) {
                        return;
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_watches_next_waits_its_pause_and_reports_no_change() {
        let changes = Changes::none();
        let start = std::time::Instant::now();
        assert!(!changes.next(Duration::from_millis(50)).await);
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(changes.seen(), 0);
        assert_eq!(changes.quiet_pause(), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_change_wakes_the_waiter_before_its_pause() {
        let changes = Changes::none();
        changes.notify.notify_one();
        let start = std::time::Instant::now();
        assert!(changes.next(Duration::from_secs(30)).await);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_failing_watch_is_retried_without_spinning_and_counts_nothing() {
        let mut changes = Changes::none();
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        changes.follow(futures::stream::repeat_with(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>("forbidden")
        }));
        assert!(!changes.next(Duration::from_millis(300)).await);
        assert_eq!(changes.seen(), 0);
        assert!(calls.load(Ordering::Relaxed) <= 2, "a failing watch spun");
    }

    #[tokio::test]
    async fn every_item_of_a_watch_wakes_and_counts() {
        let mut changes = Changes::none();
        changes.follow(futures::stream::iter(vec![Ok::<_, ()>(1), Ok(2)]));
        assert!(changes.next(Duration::from_secs(5)).await);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while changes.seen() < 2 && std::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert_eq!(changes.seen(), 2);
        assert_eq!(changes.quiet_pause(), Duration::from_secs(5));
    }
}
