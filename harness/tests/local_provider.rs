//! The `local` provider through the library API: a real control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler at pinned versions) with kwok nodes, asserted on
//! observed cluster state. Needs `scripts/setup-stack.sh`; fails (never skips) without it.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use keda_conformance::provider::local::{self, LocalCluster, LocalOptions};
use keda_conformance::provider::{registry, ProviderError};
use keda_conformance::stack::process::pids_referencing;
use keda_conformance::stack::wait::{Probe, Wait};
use keda_conformance::stack::{Binaries, HpaTiming, StackConfig};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

fn require_stack() {
    if let Err(e) = Binaries::locate() {
        panic!("the local stack is not built, so this test cannot run.\n{e}");
    }
}

async fn up(name: &str, nodes: u32, hpa: HpaTiming) -> LocalCluster {
    require_stack();
    let options = LocalOptions {
        name: format!("{name}-{}", std::process::id()),
        stack: StackConfig {
            nodes,
            hpa,
            ..StackConfig::default()
        },
        keep: false,
    };
    match local::up(&options, &|line| eprintln!("[{name}] {line}")).await {
        Ok(c) => c,
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text += &format!("\n  caused by: {s}");
                source = s.source();
            }
            panic!("cluster {name} did not come up: {text}");
        }
    }
}

fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml_ng::from_str(text).expect("test fixture parses")
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until pods matching `selector` are `want` Ready ones (and no more), returning them.
async fn ready_pods(client: &kube::Client, ns: &str, selector: &str, want: usize) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(selector);
    let (pods_ref, lp_ref) = (&pods, &lp);
    Wait::new(format!("{want} Ready pods matching {selector}"), WAIT)
        .until(|| async move {
            match pods_ref.list(lp_ref).await {
                Ok(list) => {
                    let ready = list.items.iter().filter(|p| pod_ready(p)).count();
                    if ready == want && list.items.len() == want {
                        Probe::Ready
                    } else {
                        Probe::NotYet(format!("{ready} Ready of {} pods", list.items.len()))
                    }
                }
                Err(e) => Probe::NotYet(e.to_string()),
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    pods.list(&lp).await.expect("list pods").items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_pinned_version_with_ready_nodes_held_leases_and_private_pki() {
    let hpa = HpaTiming {
        sync_period: Duration::from_secs(3),
        downscale_stabilization: Duration::from_secs(20),
        tolerance: 0.05,
    };
    let cluster = up("basics", 2, hpa).await;
    let client = cluster.client();
    let run_dir = cluster.cluster().run_dir.clone();

    let version = client.apiserver_version().await.expect("server version");
    assert_eq!(version.git_version, "v1.35.4", "{version:?}");

    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&ListParams::default()).await.unwrap();
    let names: BTreeSet<String> = list
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["kwok-node-0".to_string(), "kwok-node-1".to_string()])
    );
    for node in &list.items {
        let status = node.status.as_ref().expect("node status");
        let ready = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True", "{:?}", node.metadata.name);
        let alloc = status.allocatable.as_ref().unwrap();
        assert_eq!(alloc["cpu"].0, "16");
        assert_eq!(alloc["pods"].0, "110");
        assert_eq!(
            node.metadata.annotations.as_ref().unwrap()["kwok.x-k8s.io/node"],
            "fake"
        );
    }

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    for name in ["kube-controller-manager", "kube-scheduler"] {
        let lease = leases.get(name).await.expect(name);
        let holder = lease
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        assert!(!holder.is_empty(), "lease {name} has no holder");
    }

    // The aggregation layer is configured for the front-proxy client (KEDA's metrics
    // APIService needs it): the apiserver publishes it for extension apiservers.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let auth = cms.get("extension-apiserver-authentication").await.unwrap();
    let data = auth.data.unwrap();
    assert_eq!(
        data["requestheader-allowed-names"],
        r#"["front-proxy-client"]"#
    );
    assert!(data["requestheader-client-ca-file"].contains("BEGIN CERTIFICATE"));

    // The HPA timing reached the controller manager's command line.
    let kcm = cluster
        .control_plane()
        .processes()
        .iter()
        .find(|p| p.name() == "kube-controller-manager")
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", kcm.pid())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    for flag in [
        "--horizontal-pod-autoscaler-sync-period=3s",
        "--horizontal-pod-autoscaler-downscale-stabilization=20s",
        "--horizontal-pod-autoscaler-tolerance=0.05",
    ] {
        assert!(cmdline.contains(flag), "{flag} missing from {cmdline}");
    }

    // etcd holds the Secrets: it speaks TLS only, and refuses a client without a certificate
    // from the cluster CA (another local user cannot read /registry/secrets).
    let etcd = cluster
        .control_plane()
        .processes()
        .iter()
        .find(|p| p.name() == "etcd")
        .unwrap();
    let etcd_cmdline =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{}/cmdline", etcd.pid())).unwrap())
            .replace('\0', " ");
    let client_url = etcd_cmdline
        .split(' ')
        .find_map(|a| a.strip_prefix("--listen-client-urls="))
        .unwrap()
        .to_string();
    assert!(client_url.starts_with("https://127.0.0.1:"), "{client_url}");
    let plain = client_url.replacen("https://", "http://", 1);
    let anonymous = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    for url in [
        format!("{client_url}/v3/kv/range"),
        format!("{plain}/v3/kv/range"),
    ] {
        let answer = anonymous
            .post(&url)
            .body(r#"{"key":"L3JlZ2lzdHJ5L3NlY3JldHMv","range_end":"L3JlZ2lzdHJ5L3NlY3JldHMw"}"#)
            .send()
            .await;
        assert!(
            answer
                .as_ref()
                .map(|r| !r.status().is_success())
                .unwrap_or(true),
            "etcd answered {url} without a client certificate: {answer:?}"
        );
    }

    // Private PKI and kubeconfig.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let pki = run_dir.join("pki");
    assert_eq!(mode(&pki), 0o700);
    for entry in std::fs::read_dir(&pki).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert_eq!(mode(&cluster.cluster().kubeconfig), 0o600);

    // Other processes find it; a second cluster of the same name is refused.
    let mine: Vec<_> = local::status()
        .into_iter()
        .filter(|s| s.run_dir == run_dir)
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].state, "ready");
    assert_eq!(mine[0].owner_pid, Some(std::process::id()));
    let again = LocalOptions {
        name: cluster.cluster().name.clone(),
        ..LocalOptions::default()
    };
    match local::up(&again, &|_| {}).await {
        Err(ProviderError::NameTaken { owner, .. }) => {
            assert_eq!(owner, std::process::id().to_string())
        }
        other => panic!("expected NameTaken, got {other:?}"),
    }
    assert_eq!(pids_referencing(&run_dir).len(), 5, "five components");

    cluster.down().await;
    assert!(
        pids_referencing(&run_dir).is_empty(),
        "components left running"
    );
    assert!(!run_dir.exists(), "run directory left behind");
    assert!(registry::list().iter().all(|e| e.path != run_dir));
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "example.invalid/web:1"}]
"#;

const STATEFULSET: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ingester}
spec:
  replicas: 3
  serviceName: ingester
  selector: {matchLabels: {app: ingester}}
  template:
    metadata: {labels: {app: ingester}}
    spec:
      containers: [{name: ingester, image: "example.invalid/ingester:1"}]
"#;

const ANTI_AFFINITY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 3
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: spread}}
            topologyKey: kubernetes.io/hostname
      containers: [{name: spread, image: "example.invalid/spread:1"}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kwok_makes_deployments_statefulsets_and_hard_anti_affinity_pods_ready_on_three_nodes() {
    let cluster = up("workloads", 3, HpaTiming::default()).await;
    let client = cluster.client();
    let run_dir = cluster.cluster().run_dir.clone();
    let ns = "workloads";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &from_yaml(&format!("metadata: {{name: {ns}}}")),
        )
        .await
        .unwrap();
    // Pods need the namespace's default ServiceAccount, which the controller manager creates.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), ns);
    let accounts = &accounts;
    Wait::new("ServiceAccount default in the test namespace", WAIT)
        .until(|| async move {
            match accounts.get_opt("default").await {
                Ok(Some(_)) => Probe::Ready,
                other => Probe::NotYet(format!("{other:?}")),
            }
        })
        .await
        .unwrap();

    // A Deployment scaled to 3 gets 3 Ready pods.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .create(&PostParams::default(), &from_yaml(DEPLOYMENT))
        .await
        .unwrap();
    ready_pods(&client, ns, "app=web", 1).await;
    deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let web = ready_pods(&client, ns, "app=web", 3).await;
    assert!(web
        .iter()
        .all(|p| p.spec.as_ref().unwrap().node_name.is_some()));

    // A StatefulSet of 3 gets 3 Ready pods, in order.
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    sets.create(&PostParams::default(), &from_yaml(STATEFULSET))
        .await
        .unwrap();
    let ingesters = ready_pods(&client, ns, "app=ingester", 3).await;
    let names: BTreeSet<_> = ingesters
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["ingester-0", "ingester-1", "ingester-2"].map(String::from))
    );

    // Hard hostname anti-affinity: 3 replicas on 3 nodes schedule, one per node ...
    deployments
        .create(&PostParams::default(), &from_yaml(ANTI_AFFINITY))
        .await
        .unwrap();
    let spread = ready_pods(&client, ns, "app=spread", 3).await;
    let hosts: BTreeSet<_> = spread
        .iter()
        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .collect();
    assert_eq!(hosts.len(), 3, "one pod per node: {hosts:?}");
    // ... and a 4th replica has no node left: the scheduler reports it Unschedulable.
    deployments
        .patch_scale(
            "spread",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = &pods;
    Wait::new("the 4th anti-affine replica to be Unschedulable", WAIT)
        .until(|| async move {
            let list = match pods.list(&ListParams::default().labels("app=spread")).await {
                Ok(l) => l,
                Err(e) => return Probe::NotYet(e.to_string()),
            };
            let unschedulable = list.items.iter().any(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c.type_ == "PodScheduled"
                                && c.status == "False"
                                && c.reason.as_deref() == Some("Unschedulable")
                        })
                    })
            });
            let ready = list.items.iter().filter(|p| pod_ready(p)).count();
            if unschedulable && ready == 3 && list.items.len() == 4 {
                Probe::Ready
            } else {
                Probe::NotYet(format!(
                    "{} pods, {ready} Ready, unschedulable seen: {unschedulable}",
                    list.items.len()
                ))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    drop(cluster);
    assert!(
        pids_referencing(&run_dir).is_empty(),
        "components left running"
    );
    assert!(!run_dir.exists(), "run directory left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_run_side_by_side_on_their_own_ports_and_data() {
    let (a, b) = tokio::join!(
        up("side-a", 1, HpaTiming::default()),
        up("side-b", 1, HpaTiming::default())
    );
    assert_ne!(a.cluster().server, b.cluster().server);
    assert_ne!(a.cluster().run_dir, b.cluster().run_dir);
    let (pa, pb) = (a.control_plane().ports(), b.control_plane().ports());
    let all: BTreeSet<u16> = [
        pa.etcd_client,
        pa.etcd_peer,
        pa.apiserver,
        pa.controller_manager,
        pa.scheduler,
        pb.etcd_client,
        pb.etcd_peer,
        pb.apiserver,
        pb.controller_manager,
        pb.scheduler,
    ]
    .into();
    assert_eq!(all.len(), 10, "no port is shared");

    let ns_a: Api<Namespace> = Api::all(a.client());
    let ns_b: Api<Namespace> = Api::all(b.client());
    ns_a.create(
        &PostParams::default(),
        &from_yaml("metadata: {name: only-in-a}"),
    )
    .await
    .unwrap();
    assert!(ns_a.get_opt("only-in-a").await.unwrap().is_some());
    assert!(
        ns_b.get_opt("only-in-a").await.unwrap().is_none(),
        "cluster b sees cluster a's namespace: they share etcd"
    );
    for c in [&a, &b] {
        let v = c.client().apiserver_version().await.unwrap();
        assert_eq!(v.git_version, "v1.35.4");
    }
    let (dir_a, dir_b) = (a.cluster().run_dir.clone(), b.cluster().run_dir.clone());
    a.down().await;
    // b is unaffected by a going down.
    let nodes: Api<Node> = Api::all(b.client());
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    b.down().await;
    for d in [dir_a, dir_b] {
        assert!(!d.exists());
        assert!(pids_referencing(&d).is_empty());
    }
}
