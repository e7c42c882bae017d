//! The `kind` provider: a kind cluster whose pods are real containers in Docker, KEDA as pods
//! (operator, metrics API server, admission webhooks) from its install manifest, the
//! Mimir-API backend as a container on the cluster's Docker network, and the chart's own
//! containers running (offline: a stand-in image under the chart's image names).
//!
//! - **Docker**: [`engine`] uses an engine that answers, or starts a private dockerd.
//! - **Images**: [`images`] runs the offline image pipeline (cached, a second run checks it in
//!   about a second) and loads images into the node with `kind load`.
//! - **Reachability**: KEDA's pods reach this host at the Docker network's gateway address;
//!   the recording mocks and proxy bind there ([`Environment::keda_reaches`]), on a network
//!   this run created, so nothing listens beyond loopback and that bridge.
//! - **Teardown**: the cluster, its network and every container labelled with the cluster's
//!   name are removed by [`Environment::stop`], by the drop, and on SIGINT/SIGTERM by a
//!   finalizer ([`crate::cleanup::register_finalizer`]). After SIGKILL, `cluster gc` finds
//!   them by the name prefix `kc-<owner pid>-`.

pub mod config;
pub mod engine;
pub mod images;
pub mod tool;

use super::{EnvError, Environment, ProviderKind};
use crate::backend::cortex::MimirApiBackend;
use crate::error::InputError;
use engine::DockerEngine;
use futures::future::BoxFuture;
use images::KindImages;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tool::Tool;

/// Every kind cluster (and its Docker network) of ours is named `kc-<owner pid>-<random>`.
pub const CLUSTER_PREFIX: &str = "kc-";
/// The label on every container this provider starts besides kind's nodes (value: the
/// cluster's name).
pub const LABEL: &str = "io.keda-conformance.cluster";
/// The cluster configuration of one node (HPA timing as the local provider's); more nodes
/// are added as workers by [`cluster_config`].
pub const SINGLE_NODE_CONFIG: &str = include_str!("../../../../kind-config/single-node.yaml");
/// The pod network of a cluster of several nodes (kindnetd cannot be fetched offline).
pub const POD_ROUTES: &str = include_str!("../../../../kind-config/kc-routes.yaml");

/// The kind configuration for `nodes` schedulable nodes: the control plane plus `nodes - 1`
/// workers (the control plane's NoSchedule taint is removed after creation, so every node
/// takes pods, as with the local provider's fake nodes).
pub fn cluster_config(nodes: u32) -> String {
    let anchor = "- role: control-plane\n";
    let Some(at) = SINGLE_NODE_CONFIG.find(anchor) else {
        return SINGLE_NODE_CONFIG.to_string();
    };
    let workers = "- role: worker\n".repeat(nodes.saturating_sub(1) as usize);
    // After the control plane's entry: its indented lines (`image:`, ...).
    let start = at + anchor.len();
    let mut entry_end = start;
    for line in SINGLE_NODE_CONFIG[start..].split_inclusive('\n') {
        if !line.starts_with("  ") {
            break;
        }
        entry_end += line.len();
    }
    format!(
        "{}{workers}{}",
        &SINGLE_NODE_CONFIG[..entry_end],
        &SINGLE_NODE_CONFIG[entry_end..]
    )
}
/// KEDA's namespace and Deployments in its install manifest.
const KEDA_NAMESPACE: &str = "keda";
const KEDA_DEPLOYMENTS: [&str; 3] = ["keda-operator", "keda-metrics-apiserver", "keda-admission"];
/// The Mimir-API backend's HTTP port inside its container.
const BACKEND_PORT: u16 = 9009;

/// A running kind environment.
pub struct KindEnvironment {
    engine: DockerEngine,
    images: KindImages,
    cluster: String,
    kubeconfig: PathBuf,
    gateway: Ipv4Addr,
    /// Image references this run loaded as the stand-in (reported with results).
    standins: Mutex<BTreeSet<String>>,
    /// Image references already in the node.
    loaded: Mutex<BTreeSet<String>>,
    /// Held while images are prepared: scenarios run in parallel and ask for the same
    /// references; the stand-in's tag exists only between one tag and its untag.
    preparing: tokio::sync::Mutex<()>,
    /// Holds the kubeconfig, the cluster config and the backends' state.
    temp: crate::cleanup::TempDir,
}

impl std::fmt::Debug for KindEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindEnvironment")
            .field("cluster", &self.cluster)
            .field("docker", &self.engine.host)
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

/// A fresh cluster name: `kc-<pid>-<6 hex digits>` (unique per run, and `cluster gc` can
/// tell from it whether its owner still lives).
pub fn cluster_name() -> String {
    let mut bytes = [0u8; 3];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !random {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        bytes = [(nanos >> 16) as u8, (nanos >> 8) as u8, nanos as u8];
    }
    format!(
        "{CLUSTER_PREFIX}{}-{:02x}{:02x}{:02x}",
        std::process::id(),
        bytes[0],
        bytes[1],
        bytes[2]
    )
}

/// The owner pid encoded in a cluster name of ours.
pub fn owner_of(cluster: &str) -> Option<u32> {
    cluster
        .strip_prefix(CLUSTER_PREFIX)?
        .split_once('-')?
        .0
        .parse()
        .ok()
}

fn env_error(problem: impl Into<String>, fix: &str) -> EnvError {
    InputError::in_environment("--provider kind", problem, fix).into()
}

impl KindEnvironment {
    /// Creates a kind cluster with KEDA Ready in it. Returns the environment, an admin client
    /// and how long each part took.
    ///
    /// # Errors
    /// [`EnvError::Input`] (exit 2) without Docker or when the image pipeline fails;
    /// [`EnvError::Cluster`] when the cluster or KEDA does not come up (what was created is
    /// removed).
    ///
    /// # Timeouts
    /// Image pipeline [`images::BUILD_TIMEOUT`]; `kind create` 10 min; KEDA Ready 5 min.
    pub async fn start(
        config: config::KindConfig,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(Self, kube::Client, Vec<(String, Duration)>), EnvError> {
        let mut startup = Vec::new();
        let t = Instant::now();
        let engine = DockerEngine::connect(progress).await?;
        startup.push(("Docker engine".to_string(), t.elapsed()));
        progress(&format!(
            "Docker engine at {}{}",
            engine.host,
            if engine.started_here {
                " (a private dockerd started by this run)"
            } else {
                ""
            }
        ));
        let t = Instant::now();
        let logs = crate::toolchain::cache_root().join("kind/logs");
        std::fs::create_dir_all(&logs).map_err(|e| {
            env_error(
                format!("{}: {e}", logs.display()),
                "check the cache directory",
            )
        })?;
        let build_log = logs.join(format!("build-{}.log", std::process::id()));
        progress(&format!(
            "images: checking the kind image cache (a cold build takes about 25 minutes on 2 cores; log {})",
            build_log.display()
        ));
        let images = match KindImages::ensure(&engine, &build_log).await {
            Ok(i) => i,
            Err(e) => {
                engine.release_blocking();
                return Err(e);
            }
        };
        let _ = std::fs::remove_file(&build_log);
        startup.push(("kind images".to_string(), t.elapsed()));
        let temp = crate::cleanup::TempDir::new("keda-conformance-kind.").map_err(|e| {
            env_error(
                format!("cannot create a temporary directory: {e}"),
                "check $TMPDIR",
            )
        })?;
        let cluster = cluster_name();
        let mut env = KindEnvironment {
            kubeconfig: temp.path().join("kubeconfig"),
            engine,
            images,
            cluster,
            gateway: Ipv4Addr::LOCALHOST,
            standins: Mutex::new(BTreeSet::new()),
            loaded: Mutex::new(BTreeSet::new()),
            preparing: tokio::sync::Mutex::new(()),
            temp,
        };
        // From here on an interrupt, an error or a drop removes the cluster.
        let teardown = env.teardown();
        crate::cleanup::register_finalizer(&env.finalizer_key(), Box::new(move || teardown.run()));
        let client = env.create(&config, progress, &mut startup).await?;
        Ok((env, client, startup))
    }

    fn finalizer_key(&self) -> String {
        format!("kind:{}", self.cluster)
    }

    /// Creates the cluster, loads KEDA's images and installs KEDA.
    async fn create(
        &mut self,
        cluster_config: &config::KindConfig,
        progress: &(dyn Fn(&str) + Send + Sync),
        startup: &mut Vec<(String, Duration)>,
    ) -> Result<kube::Client, EnvError> {
        let cluster_error = |what: &str, e: &dyn std::fmt::Display| {
            EnvError::Cluster(format!("kind cluster {}: {what}: {e}", self.cluster))
        };
        let t = Instant::now();
        let config = self.temp.path().join("kind-config.yaml");
        let nodes = cluster_config.nodes;
        std::fs::write(&config, &cluster_config.text)
            .map_err(|e| cluster_error("cannot write its config", &e))?;
        progress(&format!(
            "cluster: kind create cluster {} with {nodes} node(s) (node image {}, Kubernetes {})",
            self.cluster, self.images.node_image, self.images.kubernetes_version
        ));
        let kind = self.kind();
        kind.run(
            &[
                "create",
                "cluster",
                "--name",
                &self.cluster,
                "--config",
                &config.to_string_lossy(),
                "--image",
                &self.images.node_image,
                "--kubeconfig",
                &self.kubeconfig.to_string_lossy(),
                "--wait",
                "0s",
            ],
            Duration::from_secs(600),
        )
        .await
        .map_err(|e| cluster_error("create failed", &e))?;
        startup.push(("kind create cluster".to_string(), t.elapsed()));
        self.gateway = network_gateway(&self.engine.docker(), &self.cluster)
            .await
            .map_err(|e| cluster_error("its Docker network has no IPv4 gateway", &e))?;
        let t = Instant::now();
        let mut keda_images: Vec<&str> =
            self.images.keda_images.iter().map(String::as_str).collect();
        keda_images.sort();
        self.load(&keda_images).await?;
        if let Ok(mut loaded) = self.loaded.lock() {
            loaded.extend(keda_images.iter().map(|s| s.to_string()));
        }
        startup.push(("kind load (KEDA images)".to_string(), t.elapsed()));
        let client = crate::stack::kubeconfig::client(&self.kubeconfig)
            .await
            .map_err(|e| cluster_error("no client", &e))?;
        if nodes > 1 {
            let t = Instant::now();
            self.pod_network(&client, nodes)
                .await
                .map_err(|e| cluster_error("the pod network of several nodes", &e))?;
            startup.push(("pod network (several nodes)".to_string(), t.elapsed()));
        }
        let t = Instant::now();
        progress(&format!(
            "KEDA {}: server-side apply of {} (operator, metrics API server, admission webhooks as pods)",
            self.images.keda_version,
            self.images.keda_manifest.display()
        ));
        let manifest = self.images.keda_manifest.to_string_lossy().into_owned();
        let kubectl = self.kubectl();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match kubectl
                .run(
                    &[
                        "apply",
                        "--server-side",
                        "--force-conflicts",
                        "-f",
                        &manifest,
                    ],
                    Duration::from_secs(180),
                )
                .await
            {
                Ok(_) => break,
                // The API server may still be settling right after `kind create --wait 0s`.
                Err(_) if attempt < 5 => tokio::time::sleep(Duration::from_secs(3)).await,
                Err(e) => return Err(cluster_error("applying KEDA's manifest failed", &e)),
            }
        }
        wait_keda_ready(&client, Duration::from_secs(300))
            .await
            .map_err(|e| {
                let (operator, _) = self.keda_logs(20);
                EnvError::Cluster(format!(
                    "kind cluster {}: KEDA not Ready: {e}\nkeda-operator log tail:\n{operator}",
                    self.cluster
                ))
            })?;
        startup.push(("KEDA Ready (pods)".to_string(), t.elapsed()));
        Ok(client)
    }

    /// Several nodes: applies the pod network (kc-routes), lets the control plane take pods,
    /// and waits until every node is Ready with its pod network in place.
    async fn pod_network(&self, client: &kube::Client, nodes: u32) -> Result<(), String> {
        let kubectl = self.kubectl();
        let routes = self.temp.path().join("kc-routes.yaml");
        std::fs::write(&routes, POD_ROUTES).map_err(|e| e.to_string())?;
        let routes = routes.to_string_lossy().into_owned();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match kubectl
                .run(&["apply", "-f", &routes], Duration::from_secs(120))
                .await
            {
                Ok(_) => break,
                Err(_) if attempt < 5 => tokio::time::sleep(Duration::from_secs(3)).await,
                Err(e) => return Err(e.to_string()),
            }
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
            let routes_ready = ds
                .get_opt("kc-routes")
                .await
                .ok()
                .flatten()
                .and_then(|d| d.status)
                .map(|s| s.number_ready)
                .unwrap_or(0) as u32;
            if ready_nodes >= nodes && routes_ready >= nodes {
                return Ok(());
            }
            last = format!("{ready_nodes}/{nodes} nodes Ready, kc-routes Ready on {routes_ready}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(format!("not within 300s: {last}"))
    }

    fn kind(&self) -> Tool {
        self.engine
            .tool(&self.images.kind)
            .with_env("KIND_EXPERIMENTAL_DOCKER_NETWORK", &self.cluster)
    }

    fn kubectl(&self) -> Tool {
        Tool::new(&self.images.kubectl, &[]).with_env("KUBECONFIG", &self.kubeconfig)
    }

    /// `kind load docker-image` of `refs` into the node.
    async fn load(&self, refs: &[&str]) -> Result<(), EnvError> {
        if refs.is_empty() {
            return Ok(());
        }
        let mut args = vec!["load", "docker-image"];
        args.extend_from_slice(refs);
        args.extend_from_slice(&["--name", &self.cluster]);
        self.kind()
            .run(&args, Duration::from_secs(300))
            .await
            .map(|_| ())
            .map_err(|e| EnvError::Cluster(format!("kind load: {e}")))
    }

    /// What removes everything this environment created, runnable without a runtime.
    fn teardown(&self) -> Teardown {
        Teardown {
            kind: self.kind(),
            docker: self.engine.docker(),
            engine: self.engine.clone(),
            cluster: self.cluster.clone(),
        }
    }

    /// The images played by the stand-in so far (reported with results).
    pub fn standins(&self) -> Vec<String> {
        self.standins
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Removes a cluster of ours and everything labelled with its name, then releases the engine.
struct Teardown {
    kind: Tool,
    docker: Tool,
    engine: DockerEngine,
    cluster: String,
}

impl Teardown {
    fn run(self) {
        remove_cluster_blocking(&self.kind, &self.docker, &self.cluster);
        self.engine.release_blocking();
    }
}

/// Deletes kind cluster `cluster`, the containers labelled with it and its network.
fn remove_cluster_blocking(kind: &Tool, docker: &Tool, cluster: &str) {
    let _ = kind.run_blocking(
        &["delete", "cluster", "--name", cluster],
        Duration::from_secs(180),
    );
    let filter = format!("label={LABEL}={cluster}");
    let node_filter = format!("label=io.x-k8s.kind.cluster={cluster}");
    for f in [&filter, &node_filter] {
        let ids = docker
            .output_blocking(&["ps", "-aq", "--filter", f], Duration::from_secs(30))
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = docker.run_blocking(&["rm", "-f", "-v", "--", id], Duration::from_secs(60));
        }
    }
    let _ = docker.run_blocking(&["network", "rm", "--", cluster], Duration::from_secs(60));
}

/// The IPv4 gateway of Docker network `network` (the host's address on it).
async fn network_gateway(docker: &Tool, network: &str) -> Result<Ipv4Addr, String> {
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
async fn wait_keda_ready(client: &kube::Client, timeout: Duration) -> Result<(), String> {
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
            match super::existing::keda_installed(client).await {
                Ok(()) => return Ok(()),
                Err(e) => waiting.push(e),
            }
        }
        last = waiting.join(", ");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!("not within {}s: {last}", timeout.as_secs()))
}

/// Removes a backend container when dropped.
#[derive(Debug)]
struct ContainerGuard {
    docker: Tool,
    name: String,
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = self.docker.run_blocking(
            &["rm", "-f", "-v", "--", &self.name],
            Duration::from_secs(60),
        );
    }
}

impl Environment for KindEnvironment {
    fn provider(&self) -> ProviderKind {
        ProviderKind::Kind
    }

    fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn run_dir(&self) -> &Path {
        self.temp.path()
    }

    fn hpa(&self) -> crate::stack::HpaTiming {
        // kind-config/single-node.yaml sets the controller manager's HPA flags to these.
        crate::stack::HpaTiming::default()
    }

    fn keda_logs(&self, lines: usize) -> (String, String) {
        let kubectl = self.kubectl();
        let tail = format!("--tail={lines}");
        let logs = |deployment: &str| {
            let target = format!("deployment/{deployment}");
            let read = || {
                kubectl
                    .output_blocking(
                        &["logs", "-n", KEDA_NAMESPACE, &tail, &target],
                        Duration::from_secs(20),
                    )
                    .unwrap_or_default()
            };
            match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(read),
                _ => read(),
            }
        };
        (logs("keda-operator"), logs("keda-metrics-apiserver"))
    }

    fn keda_reaches(&self) -> IpAddr {
        IpAddr::V4(self.gateway)
    }

    fn start_backend<'a>(
        &'a self,
        label: &'a str,
    ) -> BoxFuture<'a, Result<MimirApiBackend, EnvError>> {
        Box::pin(async move {
            let dir = self.temp.path().join(format!("cortex-{label}"));
            crate::backend::cortex::create_layout(&dir)?;
            let config = dir.join("cortex.yaml");
            std::fs::write(
                &config,
                crate::backend::cortex::config(Path::new("/data"), "0.0.0.0", BACKEND_PORT, 9095),
            )
            .map_err(|e| EnvError::Cluster(format!("{}: {e}", config.display())))?;
            let name = format!("{}-cortex-{label}", self.cluster);
            let docker = self.engine.docker();
            let volume = format!("{}:/data", dir.display());
            let label_arg = format!("{LABEL}={}", self.cluster);
            docker
                .run(
                    &[
                        "run",
                        "-d",
                        "--name",
                        &name,
                        "--network",
                        &self.cluster,
                        "--label",
                        &label_arg,
                        "-v",
                        &volume,
                        &self.images.cortex_image,
                        "-config.file=/data/cortex.yaml",
                    ],
                    Duration::from_secs(120),
                )
                .await
                .map_err(|e| EnvError::Cluster(format!("the backend container: {e}")))?;
            let guard = ContainerGuard {
                docker: docker.clone(),
                name: name.clone(),
            };
            let ip = docker
                .run(
                    &[
                        "inspect",
                        "--format",
                        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                        "--",
                        &name,
                    ],
                    Duration::from_secs(30),
                )
                .await
                .map_err(|e| EnvError::Cluster(format!("the backend container: {e}")))?;
            let ip = ip
                .split_whitespace()
                .find_map(|a| a.parse::<Ipv4Addr>().ok())
                .ok_or_else(|| {
                    EnvError::Cluster(format!("the backend container {name} has no IPv4 address"))
                })?;
            Ok(MimirApiBackend::in_container(
                format!("http://{ip}:{BACKEND_PORT}"),
                config,
                Box::new(guard),
                Duration::from_secs(90),
            )
            .await?)
        })
    }

    fn prepare_images<'a>(
        &'a self,
        refs: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, EnvError>> {
        Box::pin(async move {
            let _one_at_a_time = self.preparing.lock().await;
            // Other runs on this engine tag the same names: one process at a time.
            let lock_path = crate::toolchain::cache_root().join("kind/.standin.lock");
            let _across_runs = tokio::task::spawn_blocking(move || {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .ok()?;
                nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).ok()
            })
            .await
            .ok()
            .flatten();
            let missing: Vec<&String> = {
                let loaded = self.loaded.lock().map(|l| l.clone()).unwrap_or_default();
                refs.iter().filter(|r| !loaded.contains(*r)).collect()
            };
            let docker = self.engine.docker();
            let mut standin = Vec::new();
            let mut present = Vec::new();
            for r in missing {
                validate_image_ref(r)?;
                let exists = docker
                    .run(&["image", "inspect", "--", r], Duration::from_secs(30))
                    .await
                    .is_ok();
                if exists {
                    present.push(r.as_str());
                } else {
                    standin.push(r.as_str());
                }
            }
            // References the engine has (pulled, or built by the user) go in as they are.
            self.load(&present).await?;
            // The others are played by the stand-in: tagged for the load only, so no fake
            // image stays under a real name in the engine.
            for r in &standin {
                docker
                    .run(
                        &["tag", &self.images.standin_image, r],
                        Duration::from_secs(60),
                    )
                    .await
                    .map_err(|e| EnvError::Cluster(format!("stand-in image: {e}")))?;
            }
            let loaded = self.load(&standin).await;
            for r in &standin {
                let _ = docker.run(&["rmi", "--", r], Duration::from_secs(60)).await;
            }
            loaded?;
            if let Ok(mut l) = self.loaded.lock() {
                l.extend(present.iter().chain(standin.iter()).map(|s| s.to_string()));
            }
            if let Ok(mut s) = self.standins.lock() {
                s.extend(standin.iter().map(|s| s.to_string()));
            }
            Ok(self.standins())
        })
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let key = self.finalizer_key();
            let _ = tokio::task::spawn_blocking(move || crate::cleanup::run_finalizer(&key)).await;
            drop(self);
        })
    }
}

impl Drop for KindEnvironment {
    fn drop(&mut self) {
        crate::cleanup::run_finalizer(&self.finalizer_key());
    }
}

/// Refuses an image reference that could be read as a flag or holds characters no reference
/// has (it reaches docker's argv).
fn validate_image_ref(r: &str) -> Result<(), InputError> {
    let ok = !r.is_empty()
        && !r.starts_with('-')
        && r.len() <= 512
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(InputError::in_environment(
            "--provider kind",
            format!("the chart runs an image named {r:?}, which is not an image reference"),
            "fix the image repository/tag values of the chart",
        ))
    }
}

/// Removes kind clusters of ours whose owner process is gone (after SIGKILL), with their
/// containers and networks, in the engine `scripts/kind/dockerd.sh` knows or `DOCKER_HOST`.
/// Returns the clusters removed.
pub fn gc_blocking() -> Vec<String> {
    let scripts = engine::scripts_dir();
    let dockerd = Tool::new(scripts.join("dockerd.sh"), &[]);
    let host = dockerd
        .output_blocking(&["env"], Duration::from_secs(30))
        .map(|h| h.trim().to_string())
        .or_else(|| std::env::var("DOCKER_HOST").ok());
    let Some(host) = host else {
        return Vec::new();
    };
    let docker = Tool::new("docker", &[("DOCKER_HOST", &host)]);
    let names = docker
        .output_blocking(
            &[
                "ps",
                "-a",
                "--filter",
                "label=io.x-k8s.kind.cluster",
                "--format",
                "{{.Label \"io.x-k8s.kind.cluster\"}}",
            ],
            Duration::from_secs(30),
        )
        .unwrap_or_default();
    let stale: BTreeSet<String> = names
        .lines()
        .map(str::trim)
        .filter(|n| owner_of(n).is_some_and(|pid| !alive(pid)))
        .map(str::to_string)
        .collect();
    let kind = KindImages::read(&crate::toolchain::cache_root().join("kind"))
        .map(|i| i.kind)
        .unwrap_or_else(|_| PathBuf::from("kind"));
    let kind = Tool::new(kind, &[("DOCKER_HOST", &host)]);
    for cluster in &stale {
        remove_cluster_blocking(&kind, &docker, cluster);
    }
    stale.into_iter().collect()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner() {
        let a = cluster_name();
        let b = cluster_name();
        assert_ne!(a, b);
        assert_eq!(owner_of(&a), Some(std::process::id()));
        assert!(a.len() <= 32, "{a}");
        assert_eq!(owner_of("kind"), None);
        assert_eq!(owner_of("kc-abc-12"), None);
    }

    #[test]
    fn configs_for_several_nodes() {
        let one: serde_yaml_ng::Value = serde_yaml_ng::from_str(&cluster_config(1)).unwrap();
        assert_eq!(one["nodes"].as_sequence().unwrap().len(), 1);
        let five: serde_yaml_ng::Value = serde_yaml_ng::from_str(&cluster_config(5)).unwrap();
        let nodes = five["nodes"].as_sequence().unwrap();
        assert_eq!(nodes.len(), 5);
        assert_eq!(nodes[0]["role"], "control-plane");
        assert!(nodes[1..].iter().all(|n| n["role"] == "worker"));
        assert_eq!(five["kubeadmConfigPatches"], one["kubeadmConfigPatches"]);
    }

    #[test]
    fn image_references_are_checked() {
        assert!(validate_image_ref("example.invalid/tempo:2.9.0").is_ok());
        assert!(validate_image_ref("grafana/tempo@sha256:abc").is_ok());
        assert!(validate_image_ref("--privileged").is_err());
        assert!(validate_image_ref("a b").is_err());
        assert!(validate_image_ref("").is_err());
    }

    #[test]
    fn the_config_is_kind_s_and_sets_the_hpa_timing() {
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(SINGLE_NODE_CONFIG).unwrap();
        assert_eq!(doc["kind"], "Cluster");
        let d = crate::stack::HpaTiming::default();
        assert!(SINGLE_NODE_CONFIG.contains(&format!(
            "horizontal-pod-autoscaler-sync-period: \"{}s\"",
            d.sync_period.as_secs()
        )));
        assert!(SINGLE_NODE_CONFIG.contains(&format!(
            "horizontal-pod-autoscaler-downscale-stabilization: \"{}s\"",
            d.downscale_stabilization.as_secs()
        )));
    }
}
