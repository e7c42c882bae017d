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
pub mod host;
pub mod images;
pub mod names;
mod readiness;
mod teardown;
pub mod tool;

pub use names::{cluster_name, owner_of, CLUSTER_PREFIX, LABEL};
use readiness::{network_gateway, wait_keda_ready, KEDA_NAMESPACE};
pub use teardown::gc_blocking;
use teardown::Teardown;

use super::{EnvError, Environment, ProviderKind};
use crate::backend::cortex::MimirApiBackend;
use crate::error::InputError;
use engine::DockerEngine;
use futures::future::BoxFuture;
use images::KindImages;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tool::Tool;

/// How long one pull of a chart's image may take (a large image on a slow link).
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

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
    /// A pull of this run found no registry (no further pull is tried).
    registry_unreachable: AtomicBool,
    /// The HPA timing the cluster's controller manager runs with (read after creation).
    hpa: crate::stack::HpaTiming,
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
            "images: node, backend and KEDA pulled when a registry answers, else built or checked in the cache (a cold build takes about 25 minutes on 2 cores; log {})",
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
        if images.pulled.is_empty() {
            progress("images: node, backend and KEDA built here (no registry pull)");
        } else {
            progress(&format!("images: pulled {}", images.pulled.join(", ")));
        }
        let temp = crate::cleanup::TempDir::new("keda-conformance-kind.").map_err(|e| {
            env_error(
                format!("cannot create a temporary directory: {e}"),
                "check $TMPDIR",
            )
        })?;
        for line in host::ensure_inotify(Path::new("/proc/sys/fs/inotify")) {
            progress(&line);
        }
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
            registry_unreachable: AtomicBool::new(false),
            hpa: crate::stack::HpaTiming::default(),
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
        let text = cluster_config
            .for_cni(self.images.node_cni)
            .map_err(|e| cluster_error("its config", &e))?;
        std::fs::write(&config, text).map_err(|e| cluster_error("cannot write its config", &e))?;
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
            readiness::pod_network(
                &self.kubectl(),
                self.temp.path(),
                &client,
                nodes,
                self.images.node_cni,
            )
            .await
            .map_err(|e| cluster_error("the pod network of several nodes", &e))?;
            startup.push(("pod network (several nodes)".to_string(), t.elapsed()));
        }
        self.hpa = readiness::observed_hpa_timing(&client, Duration::from_secs(120))
            .await
            .map_err(|e| cluster_error("the controller manager's HPA timing", &e))?;
        progress(&format!(
            "HPA timing of the controller manager: sync {:?}, downscale stabilization {:?}, tolerance {}",
            self.hpa.sync_period, self.hpa.downscale_stabilization, self.hpa.tolerance
        ));
        let t = Instant::now();
        progress(&format!(
            "KEDA {}: server-side apply of {} (operator, metrics API server, admission webhooks as pods)",
            self.images.keda_version,
            self.images.keda_manifest.display()
        ));
        let manifest = self.images.keda_manifest.to_string_lossy().into_owned();
        let kubectl = self.kubectl();
        readiness::apply(
            &kubectl,
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
        .map_err(|e| cluster_error("applying KEDA's manifest failed", &e))?;
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
        // As the controller manager runs (kind-config/single-node.yaml patches the flags).
        self.hpa
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
            let policy = images::ChartImages::from_env()?;
            let mut standin = Vec::new();
            let mut present = Vec::new();
            for r in missing {
                images::validate_image_ref(r)?;
                let exists = docker
                    .run(&["image", "inspect", "--", r], Duration::from_secs(30))
                    .await
                    .is_ok();
                if exists {
                    present.push(r.as_str());
                    continue;
                }
                let unreachable = self.registry_unreachable.load(Ordering::Relaxed);
                if policy.pulls(unreachable) {
                    match docker.run(&["pull", "--", r], PULL_TIMEOUT).await {
                        Ok(_) => {
                            eprintln!("  pulled {r} (the chart's own image)");
                            present.push(r.as_str());
                            continue;
                        }
                        Err(e) if policy == images::ChartImages::Pull => {
                            return Err(InputError::in_environment(
                                "KEDA_CONFORMANCE_CHART_IMAGES=pull",
                                format!("cannot pull the chart's image {r}: {e}"),
                                "make the registry reachable from the Docker engine, or unset KEDA_CONFORMANCE_CHART_IMAGES to use the stand-in",
                            )
                            .into());
                        }
                        Err(e) => {
                            let e = e.to_string();
                            if images::registry_unreachable(&e) {
                                self.registry_unreachable.store(true, Ordering::Relaxed);
                            }
                            eprintln!(
                                "  {r}: not pulled ({}); the stand-in plays it",
                                e.lines().last().unwrap_or_default().trim()
                            );
                        }
                    }
                }
                standin.push(r.as_str());
            }
            // References the engine has (pulled now, before, or built by the user) go in as
            // they are.
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
