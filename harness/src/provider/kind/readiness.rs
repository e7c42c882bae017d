//! Waiting for a kind cluster of ours to be usable: its network's gateway (where KEDA's pods
//! reach this host), the pod network of several nodes, and KEDA Ready as pods.

use super::config::POD_ROUTES;
use super::images::NodeCni;
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

/// Several nodes: applies the pod network of our node image (kc-routes) when `cni` says so,
/// lets the control plane take pods, and waits until every node is Ready with its pod network
/// in place. `dir` holds the manifest while kubectl reads it.
pub(super) async fn pod_network(
    kubectl: &Tool,
    dir: &Path,
    client: &kube::Client,
    nodes: u32,
    cni: NodeCni,
) -> Result<(), String> {
    let with_routes = cni == NodeCni::Ours;
    if with_routes {
        let routes = dir.join("kc-routes.yaml");
        std::fs::write(&routes, POD_ROUTES).map_err(|e| e.to_string())?;
        let routes = routes.to_string_lossy().into_owned();
        apply(kubectl, &["apply", "-f", &routes], Duration::from_secs(120))
            .await
            .map_err(|e| e.to_string())?;
    }
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
        // kind's own CNI needs nothing of ours; kc-routes must run on every node.
        let routes_ready = if with_routes {
            ds.get_opt("kc-routes")
                .await
                .ok()
                .flatten()
                .and_then(|d| d.status)
                .map(|s| s.number_ready)
                .unwrap_or(0) as u32
        } else {
            nodes
        };
        if ready_nodes >= nodes && routes_ready >= nodes {
            // Pods sandboxed before kc-routes existed (cluster DNS, the storage provisioner)
            // hold addresses of the image's one-node network: recreate them.
            let stale: &[&[&str]] = if with_routes {
                &[
                    &[
                        "delete",
                        "pods",
                        "-n",
                        "kube-system",
                        "-l",
                        "k8s-app=kube-dns",
                        "--wait=false",
                    ],
                    &[
                        "delete",
                        "pods",
                        "-n",
                        "local-path-storage",
                        "--all",
                        "--wait=false",
                    ],
                ]
            } else {
                &[]
            };
            for args in stale {
                let _ = kubectl.run(args, Duration::from_secs(60)).await;
            }
            return Ok(());
        }
        last = if with_routes {
            format!("{ready_nodes}/{nodes} nodes Ready, kc-routes Ready on {routes_ready}")
        } else {
            format!("{ready_nodes}/{nodes} nodes Ready (kind's CNI)")
        };
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

/// The HPA timing the cluster's controller manager runs with, read from the flags of its
/// static pod (kubeadm's `component=kube-controller-manager` label); a flag it does not set
/// has Kubernetes' default (sync 15 s, downscale stabilization 5 min, tolerance 0.1). The
/// pod's mirror in the API appears shortly after `kind create --wait 0s`: it is awaited up to
/// `timeout`, and the error says what the last look saw.
pub(super) async fn observed_hpa_timing(
    client: &kube::Client,
    timeout: Duration,
) -> Result<crate::stack::HpaTiming, String> {
    use k8s_openapi::api::core::v1::Pod;
    let api: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "kube-system");
    let params = kube::api::ListParams::default().labels("component=kube-controller-manager");
    let deadline = Instant::now() + timeout;
    loop {
        let last = match api.list(&params).await {
            Ok(list) => match list.items.first() {
                Some(pod) => {
                    let args: Vec<String> = pod
                        .spec
                        .iter()
                        .flat_map(|s| s.containers.iter())
                        .flat_map(|c| c.command.iter().flatten().chain(c.args.iter().flatten()))
                        .cloned()
                        .collect();
                    return hpa_timing_from_flags(&args);
                }
                None => {
                    "no pod labelled component=kube-controller-manager in kube-system".to_string()
                }
            },
            Err(e) => format!("listing the controller manager's pods: {e}"),
        };
        if Instant::now() >= deadline {
            return Err(format!("not within {}s: {last}", timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The HPA timing the controller manager's command line sets (Kubernetes' defaults for the
/// flags it lacks).
fn hpa_timing_from_flags(args: &[String]) -> Result<crate::stack::HpaTiming, String> {
    let flag = |name: &str| {
        let prefix = format!("--{name}=");
        args.iter().rev().find_map(|a| a.strip_prefix(&prefix))
    };
    let duration = |name: &str, default: Duration| match flag(name) {
        None => Ok(default),
        Some(v) => crate::keda::goparse::parse_go_duration(v)
            .map_err(|_| format!("--{name}={v} is not a duration")),
    };
    Ok(crate::stack::HpaTiming {
        sync_period: duration(
            "horizontal-pod-autoscaler-sync-period",
            Duration::from_secs(15),
        )?,
        downscale_stabilization: duration(
            "horizontal-pod-autoscaler-downscale-stabilization",
            Duration::from_secs(300),
        )?,
        tolerance: match flag("horizontal-pod-autoscaler-tolerance") {
            None => 0.1,
            Some(v) => v.parse().map_err(|_| {
                format!("--horizontal-pod-autoscaler-tolerance={v} is not a number")
            })?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_timing_is_read_from_the_flags() {
        let args: Vec<String> = [
            "kube-controller-manager",
            "--horizontal-pod-autoscaler-sync-period=5s",
            "--horizontal-pod-autoscaler-downscale-stabilization=1m30s",
            "--horizontal-pod-autoscaler-tolerance=0.05",
        ]
        .map(String::from)
        .to_vec();
        let t = hpa_timing_from_flags(&args).unwrap();
        assert_eq!(t.sync_period, Duration::from_secs(5));
        assert_eq!(t.downscale_stabilization, Duration::from_secs(90));
        assert_eq!(t.tolerance, 0.05);
        let defaults = hpa_timing_from_flags(&["kube-controller-manager".into()]).unwrap();
        assert_eq!(defaults.sync_period, Duration::from_secs(15));
        assert_eq!(defaults.downscale_stabilization, Duration::from_secs(300));
        assert_eq!(defaults.tolerance, 0.1);
        let bad = hpa_timing_from_flags(&["--horizontal-pod-autoscaler-sync-period=soon".into()]);
        assert!(bad.unwrap_err().contains("sync-period=soon"));
    }
}
