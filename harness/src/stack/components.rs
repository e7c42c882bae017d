//! The command lines of the five components (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kwok) and the run-directory layout they share. Pure functions: what runs
//! is visible, and testable, without running it.

use super::config::{go_duration, HpaTiming};
use super::pki::{Pki, FRONT_PROXY_CLIENT_CN};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Component name of etcd.
pub const ETCD: &str = "etcd";
/// Component name of kube-apiserver.
pub const APISERVER: &str = "kube-apiserver";
/// Component name of kube-controller-manager.
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
/// Component name of kube-scheduler.
pub const SCHEDULER: &str = "kube-scheduler";
/// Component name of the kwok controller.
pub const KWOK: &str = "kwok";

/// The service CIDR; its first address is the `kubernetes` Service's ClusterIP.
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// The `kubernetes` Service's ClusterIP (named by the serving certificate).
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// The CIDR kwok assigns pod IPs from.
pub const POD_CIDR: &str = "10.244.0.0/16";
/// The service-account token issuer.
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Leader-election timing of controller-manager and scheduler: longer than upstream's
/// 15 s / 10 s / 2 s so a starved 2-core machine does not make them lose their lease (they
/// exit when they do). The first acquisition is immediate either way.
const LEADER_ELECTION: [&str; 3] = [
    "--leader-elect-lease-duration=60s",
    "--leader-elect-renew-deadline=40s",
    "--leader-elect-retry-period=2s",
];

/// Paths inside one cluster's run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The run directory.
    pub root: PathBuf,
    /// PKI directory (0700).
    pub pki: PathBuf,
    /// Admin kubeconfig shared by every component and client.
    pub kubeconfig: PathBuf,
    /// etcd's data directory.
    pub etcd_data: PathBuf,
    /// Component logs.
    pub logs: PathBuf,
    /// Component pid files.
    pub pids: PathBuf,
    /// kwok's Stage configuration.
    pub kwok_config: PathBuf,
    /// Self-signed serving certificates of controller-manager and scheduler.
    pub serving_certs: PathBuf,
}

impl Layout {
    /// The layout of run directory `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            pki: root.join("pki"),
            kubeconfig: root.join("kubeconfig"),
            etcd_data: root.join("etcd"),
            logs: root.join("logs"),
            pids: root.join("pids"),
            kwok_config: root.join("kwok.yaml"),
            serving_certs: root.join("serving-certs"),
        }
    }

    /// A component's log file.
    pub fn log(&self, component: &str) -> PathBuf {
        self.logs.join(format!("{component}.log"))
    }

    /// A component's pid file.
    pub fn pid_file(&self, component: &str) -> PathBuf {
        self.pids.join(format!("{component}.pid"))
    }
}

/// Loopback ports of one cluster, chosen free at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ports {
    /// etcd client port.
    pub etcd_client: u16,
    /// etcd peer port.
    pub etcd_peer: u16,
    /// kube-apiserver secure port.
    pub apiserver: u16,
    /// kube-controller-manager secure (health) port.
    pub controller_manager: u16,
    /// kube-scheduler secure (health) port.
    pub scheduler: u16,
}

impl Ports {
    /// Claims five distinct ports (see [`super::ports`]: outside the kernel's ephemeral range,
    /// and claimed machine-wide so harness processes started side by side never pick the same
    /// one). Hold the claims while the components run. A clash with a process that is not a
    /// harness is still possible and is retried by [`crate::stack::ControlPlane::start`].
    ///
    /// # Errors
    /// When no free port is found after many tries.
    pub fn reserve() -> std::io::Result<(Self, Vec<super::ports::PortClaim>)> {
        let claims = super::ports::claim(5)?;
        let p: Vec<u16> = claims.iter().map(super::ports::PortClaim::port).collect();
        Ok((
            Self {
                etcd_client: p[0],
                etcd_peer: p[1],
                apiserver: p[2],
                controller_manager: p[3],
                scheduler: p[4],
            },
            claims,
        ))
    }

    /// The apiserver URL.
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver)
    }

    /// etcd's client URL (TLS, client certificates required).
    pub fn etcd_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.etcd_client)
    }
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// etcd: a single member on loopback, fsync off (the data is thrown away with the run); TLS
/// on client and peer ports, and only clients with a certificate from the cluster CA.
pub fn etcd_args(layout: &Layout, pki: &Pki, ports: &Ports) -> Vec<String> {
    let peer = format!("https://127.0.0.1:{}", ports.etcd_peer);
    vec![
        "--name=default".into(),
        format!("--cert-file={}", p(&pki.etcd_cert)),
        format!("--key-file={}", p(&pki.etcd_key)),
        "--client-cert-auth=true".into(),
        format!("--trusted-ca-file={}", p(&pki.ca_cert)),
        format!("--peer-cert-file={}", p(&pki.etcd_cert)),
        format!("--peer-key-file={}", p(&pki.etcd_key)),
        "--peer-client-cert-auth=true".into(),
        format!("--peer-trusted-ca-file={}", p(&pki.ca_cert)),
        format!("--data-dir={}", p(&layout.etcd_data)),
        format!("--listen-client-urls={}", ports.etcd_url()),
        format!("--advertise-client-urls={}", ports.etcd_url()),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=default={peer}"),
        "--initial-cluster-state=new".into(),
        "--unsafe-no-fsync=true".into(),
        "--auto-compaction-retention=1".into(),
        "--quota-backend-bytes=2147483648".into(),
        "--log-level=warn".into(),
    ]
}

/// kube-apiserver: loopback only, RBAC, the service-account keys, and the front-proxy
/// (`--requestheader-*`) flags the aggregation layer needs for KEDA's metrics APIService.
pub fn apiserver_args(layout: &Layout, pki: &Pki, ports: &Ports) -> Vec<String> {
    vec![
        format!("--etcd-servers={}", ports.etcd_url()),
        format!("--etcd-cafile={}", p(&pki.ca_cert)),
        format!("--etcd-certfile={}", p(&pki.etcd_client_cert)),
        format!("--etcd-keyfile={}", p(&pki.etcd_client_key)),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.apiserver),
        format!("--cert-dir={}", p(&layout.serving_certs)),
        format!("--tls-cert-file={}", p(&pki.apiserver_cert)),
        format!("--tls-private-key-file={}", p(&pki.apiserver_key)),
        format!("--client-ca-file={}", p(&pki.ca_cert)),
        format!("--service-account-key-file={}", p(&pki.service_account_pub)),
        format!(
            "--service-account-signing-key-file={}",
            p(&pki.service_account_key)
        ),
        format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--authorization-mode=Node,RBAC".into(),
        "--allow-privileged=true".into(),
        "--endpoint-reconciler-type=none".into(),
        format!(
            "--proxy-client-cert-file={}",
            p(&pki.front_proxy_client_cert)
        ),
        format!("--proxy-client-key-file={}", p(&pki.front_proxy_client_key)),
        format!(
            "--requestheader-client-ca-file={}",
            p(&pki.front_proxy_ca_cert)
        ),
        format!("--requestheader-allowed-names={FRONT_PROXY_CLIENT_CN}"),
        "--requestheader-username-headers=X-Remote-User".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        "--profiling=false".into(),
    ]
}

/// kube-controller-manager: every default controller (HPA, deployment, replicaset,
/// statefulset, garbage collector, ...), with the given HPA timing.
pub fn controller_manager_args(
    layout: &Layout,
    pki: &Pki,
    ports: &Ports,
    hpa: &HpaTiming,
) -> Vec<String> {
    let kubeconfig = p(&layout.kubeconfig);
    let mut args = vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.controller_manager),
        format!(
            "--cert-dir={}",
            p(&layout.serving_certs.join(CONTROLLER_MANAGER))
        ),
        "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics".into(),
        format!("--root-ca-file={}", p(&pki.ca_cert)),
        format!(
            "--service-account-private-key-file={}",
            p(&pki.service_account_key)
        ),
        "--leader-elect=true".into(),
        format!(
            "--horizontal-pod-autoscaler-sync-period={}",
            go_duration(hpa.sync_period)
        ),
        format!(
            "--horizontal-pod-autoscaler-downscale-stabilization={}",
            go_duration(hpa.downscale_stabilization)
        ),
        format!("--horizontal-pod-autoscaler-tolerance={}", hpa.tolerance),
        "--profiling=false".into(),
    ];
    args.extend(LEADER_ELECTION.iter().map(|s| s.to_string()));
    args
}

/// kube-scheduler: default profile.
pub fn scheduler_args(layout: &Layout, ports: &Ports) -> Vec<String> {
    let kubeconfig = p(&layout.kubeconfig);
    let mut args = vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.scheduler),
        format!("--cert-dir={}", p(&layout.serving_certs.join(SCHEDULER))),
        "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics".into(),
        "--leader-elect=true".into(),
        "--profiling=false".into(),
    ];
    args.extend(LEADER_ELECTION.iter().map(|s| s.to_string()));
    args
}

/// kwok: manages only nodes annotated `kwok.x-k8s.io/node=fake`, renews their leases, and
/// serves nothing (no kubelet API port).
pub fn kwok_args(layout: &Layout) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", p(&layout.kubeconfig)),
        format!("--config={}", p(&layout.kwok_config)),
        "--manage-all-nodes=false".into(),
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
        "--node-lease-duration-seconds=40".into(),
        format!("--cidr={POD_CIDR}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fixture() -> (Layout, Pki, Ports) {
        let layout = Layout::new(Path::new("/run/kc"));
        let pki_dir = layout.pki.clone();
        let pki = Pki {
            ca_cert: pki_dir.join("ca.crt"),
            ca_key: pki_dir.join("ca.key"),
            apiserver_cert: pki_dir.join("apiserver.crt"),
            apiserver_key: pki_dir.join("apiserver.key"),
            admin_cert: pki_dir.join("admin.crt"),
            admin_key: pki_dir.join("admin.key"),
            front_proxy_ca_cert: pki_dir.join("front-proxy-ca.crt"),
            front_proxy_ca_key: pki_dir.join("front-proxy-ca.key"),
            front_proxy_client_cert: pki_dir.join("front-proxy-client.crt"),
            front_proxy_client_key: pki_dir.join("front-proxy-client.key"),
            etcd_cert: pki_dir.join("etcd.crt"),
            etcd_key: pki_dir.join("etcd.key"),
            etcd_client_cert: pki_dir.join("apiserver-etcd-client.crt"),
            etcd_client_key: pki_dir.join("apiserver-etcd-client.key"),
            etcd_client_identity_pem: String::new(),
            service_account_key: pki_dir.join("sa.key"),
            service_account_pub: pki_dir.join("sa.pub"),
            dir: pki_dir,
            ca_pem: String::new(),
            admin_cert_pem: String::new(),
            admin_key_pem: String::new(),
        };
        let ports = Ports {
            etcd_client: 20001,
            etcd_peer: 20002,
            apiserver: 20003,
            controller_manager: 20004,
            scheduler: 20005,
        };
        (layout, pki, ports)
    }

    #[test]
    fn reserved_ports_are_distinct_and_outside_the_ephemeral_range() {
        let (p, claims) = Ports::reserve().unwrap();
        let (lo, hi) = crate::stack::ports::non_ephemeral_range();
        let mut all = vec![
            p.etcd_client,
            p.etcd_peer,
            p.apiserver,
            p.controller_manager,
            p.scheduler,
        ];
        for port in &all {
            assert!((lo..=hi).contains(port), "{port} not in {lo}-{hi}");
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 5);
        assert_eq!(claims.len(), 5);
    }

    #[test]
    fn every_component_listens_on_loopback_only() {
        let (layout, pki, ports) = fixture();
        let etcd = etcd_args(&layout, &pki, &ports).join(" ");
        assert!(etcd.contains("--listen-client-urls=https://127.0.0.1:20001"));
        assert!(etcd.contains("--listen-peer-urls=https://127.0.0.1:20002"));
        // Secrets live in etcd: only clients with a certificate from the cluster CA.
        assert!(etcd.contains("--client-cert-auth=true"));
        assert!(etcd.contains("--peer-client-cert-auth=true"));
        for args in [
            apiserver_args(&layout, &pki, &ports),
            controller_manager_args(&layout, &pki, &ports, &HpaTiming::default()),
            scheduler_args(&layout, &ports),
        ] {
            assert!(
                args.contains(&"--bind-address=127.0.0.1".to_string()),
                "{args:?}"
            );
        }
    }

    #[test]
    fn apiserver_has_the_aggregation_layer_flags() {
        let (layout, pki, ports) = fixture();
        let args = apiserver_args(&layout, &pki, &ports);
        for want in [
            "--proxy-client-cert-file=/run/kc/pki/front-proxy-client.crt",
            "--proxy-client-key-file=/run/kc/pki/front-proxy-client.key",
            "--requestheader-client-ca-file=/run/kc/pki/front-proxy-ca.crt",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--secure-port=20003",
            "--etcd-servers=https://127.0.0.1:20001",
            "--etcd-certfile=/run/kc/pki/apiserver-etcd-client.crt",
            "--service-cluster-ip-range=10.96.0.0/12",
        ] {
            assert!(args.contains(&want.to_string()), "missing {want}: {args:?}");
        }
    }

    #[test]
    fn controller_manager_gets_the_hpa_timing() {
        let (layout, pki, ports) = fixture();
        let hpa = HpaTiming {
            sync_period: Duration::from_secs(2),
            downscale_stabilization: Duration::from_millis(7500),
            tolerance: 0.05,
        };
        let args = controller_manager_args(&layout, &pki, &ports, &hpa);
        for want in [
            "--horizontal-pod-autoscaler-sync-period=2s",
            "--horizontal-pod-autoscaler-downscale-stabilization=7500ms",
            "--horizontal-pod-autoscaler-tolerance=0.05",
            "--secure-port=20004",
            "--leader-elect=true",
        ] {
            assert!(args.contains(&want.to_string()), "missing {want}: {args:?}");
        }
    }

    #[test]
    fn kwok_manages_only_annotated_nodes() {
        let (layout, _, _) = fixture();
        let args = kwok_args(&layout);
        assert!(args.contains(&"--manage-all-nodes=false".to_string()));
        assert!(args.contains(
            &"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".to_string()
        ));
        assert!(args.contains(&"--config=/run/kc/kwok.yaml".to_string()));
    }
}
