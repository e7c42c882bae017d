//! Waiting for a kind cluster of ours to be usable: its network's gateway (where KEDA's pods
//! reach this host), the pod network of several nodes, and KEDA Ready as pods.

use super::config::POD_ROUTES;
use super::tool::Tool;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

/// KEDA's namespace and Deployments in its install manifest.
pub(super) const KEDA_NAMESPACE: &str = "keda";
const KEDA_DEPLOYMENTS: [&str; 3] = ["keda-operator", "keda-metrics-apiserver", "keda-admission"];

/// The IPv4 gateway of Docker network `network` (the host's address on it).
pub(super) async fn network_gateway(docker: &Tool, network: &str) -> Result<Ipv4Addr, String> {
    let out = docker
        .run(
            &[
                "network",
                "inspect",
                "--format",
                "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
                "--",
                network,
            ],
            Duration::from_secs(30),
        )
        .await
        .map_err(|e| e.to_string())?;
    out.split_whitespace()
        .find_map(|g| g.parse::<Ipv4Addr>().ok())
        .ok_or_else(|| format!("`docker network inspect {network}` names no IPv4 gateway: {out:?}"))
}

/// Waits until KEDA's three Deployments have every replica Ready and the external metrics
/// APIService is Available.
pub(super) async fn wait_keda_ready(
    client: &kube::Client,
    timeout: Duration,
) -> Result<(), String> {
    use k8s_openapi::api::apps::v1::Deployment;
    let api: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), KEDA_NAMESPACE);
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut waiting = Vec::new();
        for name in KEDA_DEPLOYMENTS {
            match api.get_opt(name).await {
                Ok(Some(d)) => {
                    let want = d.spec.and_then(|s| s.replicas).unwrap_or(1);
                    let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                    if ready < want {
                        waiting.push(format!("{name} {ready}/{want} Ready"));
                    }
                }
                Ok(None) => waiting.push(format!("{name} missing")),
                Err(e) => waiting.push(format!("{name}: {e}")),
            }
        }
        if waiting.is_empty() {
            match crate::provider::existing::keda_installed(client).await {
                Ok(()) => return Ok(()),
                Err(e) => waiting.push(e),
            }
        }
        last = waiting.join(", ");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!("not within {}s: {last}", timeout.as_secs()))
}

/// Several nodes: applies the pod network (kc-routes), lets the control plane take pods,
/// and waits until every node is Ready with its pod network in place. `dir` holds the
/// manifest while kubectl reads it.
pub(super) async fn pod_network(
    kubectl: &Tool,
    dir: &Path,
    client: &kube::Client,
    nodes: u32,
) -> Result<(), String> {
    let routes = dir.join("kc-routes.yaml");
    std::fs::write(&routes, POD_ROUTES).map_err(|e| e.to_string())?;
    let routes = routes.to_string_lossy().into_owned();
    apply(kubectl, &["apply", "-f", &routes], Duration::from_secs(120))
        .await
        .map_err(|e| e.to_string())?;
    let _ = kubectl
        .run(
            &[
                "taint",
                "nodes",
                "--all",
                "node-role.kubernetes.io/control-plane:NoSchedule-",
            ],
            Duration::from_secs(60),
        )
        .await;
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::core::v1::Node;
    let nodes_api: kube::Api<Node> = kube::Api::all(client.clone());
    let ds: kube::Api<DaemonSet> = kube::Api::namespaced(client.clone(), "kube-system");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = String::new();
    while Instant::now() < deadline {
        let ready_nodes = nodes_api
            .list(&Default::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter(|n| {
                        n.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count() as u32
            })
            .unwrap_or(0);
        let routes_ready = ds
            .get_opt("kc-routes")
            .await
            .ok()
            .flatten()
            .and_then(|d| d.status)
            .map(|s| s.number_ready)
            .unwrap_or(0) as u32;
        if ready_nodes >= nodes && routes_ready >= nodes {
            // Pods sandboxed before the pod network existed (cluster DNS, the storage
            // provisioner) hold addresses of the image's one-node network: recreate them.
            for args in [
                &[
                    "delete",
                    "pods",
                    "-n",
                    "kube-system",
                    "-l",
                    "k8s-app=kube-dns",
                    "--wait=false",
                ][..],
                &[
                    "delete",
                    "pods",
                    "-n",
                    "local-path-storage",
                    "--all",
                    "--wait=false",
                ][..],
            ] {
                let _ = kubectl.run(args, Duration::from_secs(60)).await;
            }
            return Ok(());
        }
        last = format!("{ready_nodes}/{nodes} nodes Ready, kc-routes Ready on {routes_ready}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!("not within 300s: {last}"))
}

/// `kubectl apply ...` right after `kind create --wait 0s`: the API server may still be
/// settling, so a failure is retried (5 attempts, 3 s apart); the last error is returned.
pub(super) async fn apply(
    kubectl: &Tool,
    args: &[&str],
    timeout: Duration,
) -> Result<(), super::tool::ToolError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match kubectl.run(args, timeout).await {
            Ok(_) => return Ok(()),
            Err(_) if attempt < 5 => tokio::time::sleep(Duration::from_secs(3)).await,
            Err(e) => return Err(e),
        }
    }
}
