//! The existing provider end to end, against a local-provider cluster the test brings up
//! itself (without KEDA): with --install-keda the harness runs KEDA against it, runs a live
//! scenario in a namespace of its own, and leaves the cluster exactly as it found it.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use keda_conformance::provider::local::{self, LocalOptions};
use keda_conformance::stack::StackConfig;
use std::path::Path;
use std::process::Command;

async fn snapshot(client: &kube::Client) -> Snapshot {
    let names = |v: Vec<Option<String>>| {
        let mut v: Vec<String> = v.into_iter().flatten().collect();
        v.sort();
        v
    };
    let ns = kube::Api::<Namespace>::all(client.clone())
        .list(&Default::default())
        .await
        .expect("namespaces")
        .items
        .into_iter()
        .map(|n| n.metadata.name)
        .collect();
    let crds = kube::Api::<CustomResourceDefinition>::all(client.clone())
        .list(&Default::default())
        .await
        .expect("crds")
        .items
        .into_iter()
        .map(|n| n.metadata.name)
        .collect();
    let apis = kube::Api::<APIService>::all(client.clone())
        .list(&Default::default())
        .await
        .expect("apiservices")
        .items
        .into_iter()
        .map(|n| n.metadata.name)
        .collect();
    (names(ns), names(crds), names(apis))
}

type Snapshot = (Vec<String>, Vec<String>, Vec<String>);

/// Waits (up to a minute: namespaces are deleted asynchronously) until the cluster's
/// namespaces, CRDs and APIServices are `before` again; fails naming `what` otherwise.
async fn left_as_found(client: &kube::Client, before: &Snapshot, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let after = snapshot(client).await;
        if after == *before {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not leave the cluster as found:\nbefore {before:?}\nafter  {after:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_cluster_runs_a_live_scenario_and_is_left_as_found() {
    let options = LocalOptions {
        name: format!("existing-{}", std::process::id()),
        stack: StackConfig {
            nodes: 4,
            ..StackConfig::default()
        },
        keep: false,
    };
    let cluster = local::up(&options, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let client = cluster.client();
    let kubeconfig = cluster.cluster().kubeconfig.clone();
    let before = snapshot(&client).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().expect("tempdir");

    // Without KEDA and without --install-keda: exit 2 naming the fix.
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
            .args([
                "run",
                "--provider",
                "existing",
                "--suite",
                "suites/default/backend-worker-tenant-isolation.yaml",
                "--helm",
                "3",
                "--hpa-sync-period",
                "5s",
                "--hpa-downscale-stabilization",
                "15s",
            ])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--out")
            .arg(tmp.path())
            .args(extra)
            .current_dir(&root)
            .output()
            .expect("harness runs")
    };
    let o = run(&[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(
        text.contains("KEDA is not ready in this cluster") && text.contains("--install-keda"),
        "{text}"
    );

    let o = run(&["--install-keda"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("3 replicas Ready"), "{text}");

    // Namespaces are deleted asynchronously; wait until the scenario's is gone.
    left_as_found(&client, &before, "the run").await;

    // SIGINT while KEDA is being installed: exit 130, and nothing of the half-made install
    // (CRDs, APIService, namespace) is left on the user's cluster.
    {
        use std::io::BufRead as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
            .args([
                "run",
                "--provider",
                "existing",
                "--install-keda",
                "--suite",
                "suites/default/backend-worker-tenant-isolation.yaml",
                "--helm",
                "3",
            ])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--out")
            .arg(tmp.path())
            .current_dir(&root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("harness runs");
        let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref().map_while(Result::ok) {
            let starting = line.contains("starting KEDA");
            seen.push(line);
            if starting {
                break;
            }
        }
        assert!(
            seen.last().is_some_and(|l| l.contains("starting KEDA")),
            "the run never reached KEDA's install: {seen:?}"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .expect("SIGINT");
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let status = child.wait().expect("exit");
        assert_eq!(status.code(), Some(130), "{seen:?}\n{rest:?}");
        assert!(
            rest.iter()
                .any(|l| l.contains("interrupted while KEDA was being installed")),
            "the interrupt must land during the install: {rest:?}"
        );
        left_as_found(&client, &before, "the interrupted install").await;
    }

    // A cluster with an external-metrics APIService of its own (another adapter): --install-keda
    // must refuse (exit 2 naming it) and leave it exactly as it was.
    let theirs: APIService = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
        "spec": {
            "group": "external.metrics.k8s.io",
            "version": "v1beta1",
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
            "insecureSkipTLSVerify": true,
            "service": {"namespace": "default", "name": "someone-elses-adapter", "port": 443}
        }
    }))
    .expect("APIService");
    let apis = kube::Api::<APIService>::all(client.clone());
    apis.create(&Default::default(), &theirs)
        .await
        .expect("create the cluster's own APIService");
    let before = snapshot(&client).await;
    let o = run(&["--install-keda"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(
        text.contains("already has the APIService v1beta1.external.metrics.k8s.io")
            && text.contains("default/someone-elses-adapter"),
        "{text}"
    );
    assert_eq!(
        snapshot(&client).await,
        before,
        "the refusal changed the cluster"
    );
    let still = apis
        .get("v1beta1.external.metrics.k8s.io")
        .await
        .expect("their APIService is still there");
    assert_eq!(
        still
            .spec
            .and_then(|s| s.service)
            .and_then(|s| s.name)
            .as_deref(),
        Some("someone-elses-adapter")
    );
    cluster.down().await;
}
