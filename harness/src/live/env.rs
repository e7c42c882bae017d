//! The live environment shared by the scenarios of a run: a provider's [`Environment`] (a
//! cluster with KEDA, where backends start), an admin client, and the cluster's capabilities
//! read once. Started once, torn down at the end by [`LiveEnv::stop`] (or by its drop).

use crate::backend::cortex::MimirApiBackend;
use crate::chart::capabilities::Capabilities;
use crate::provider::existing::ExistingEnvironment;
use crate::provider::kind::KindEnvironment;
use crate::provider::local::LocalEnvironment;
use crate::provider::Environment;
use std::time::Duration;

pub use crate::provider::EnvError;

/// A running live environment.
pub struct LiveEnv {
    /// The provider's environment (`None` only once stopped).
    environment: Option<Box<dyn Environment>>,
    client: kube::Client,
    /// Seconds each part took to become ready.
    pub startup: Vec<(String, Duration)>,
    /// HPA timing of the control plane (the oracle and deadlines need it).
    pub hpa: crate::stack::HpaTiming,
    /// What the cluster serves, read once by discovery ([`LiveEnv::capabilities`]).
    capabilities: tokio::sync::OnceCell<Capabilities>,
    /// The signal handler's stop request, which the scenarios on this environment obey.
    stop: crate::cleanup::StopToken,
}

impl std::fmt::Debug for LiveEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveEnv")
            .field("environment", &self.environment)
            .field("startup", &self.startup)
            .finish_non_exhaustive()
    }
}

impl LiveEnv {
    /// Wraps a provider's started environment.
    pub fn new(
        environment: Box<dyn Environment>,
        client: kube::Client,
        startup: Vec<(String, Duration)>,
    ) -> Self {
        LiveEnv {
            hpa: environment.hpa(),
            environment: Some(environment),
            client,
            startup,
            capabilities: tokio::sync::OnceCell::new(),
            stop: crate::cleanup::stop_token(),
        }
    }

    /// Starts a local cluster with `nodes` fake nodes, and KEDA.
    ///
    /// # Errors
    /// [`EnvError`] naming the part that failed, with its log tail.
    pub async fn start_local(
        name: &str,
        nodes: u32,
        keep: bool,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Self, EnvError> {
        let (env, client, startup) = LocalEnvironment::start(name, nodes, keep, progress).await?;
        Ok(Self::new(Box::new(env), client, startup))
    }

    /// Creates a kind cluster with KEDA as pods (see [`KindEnvironment::start`]).
    ///
    /// # Errors
    /// [`EnvError`] naming the part that failed.
    pub async fn start_kind(
        config: crate::provider::kind::config::KindConfig,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Self, EnvError> {
        let (env, client, startup) = KindEnvironment::start(config, progress).await?;
        Ok(Self::new(Box::new(env), client, startup))
    }

    /// Uses a cluster the user already has (see [`ExistingEnvironment::start`]).
    ///
    /// # Errors
    /// [`EnvError::Input`] for a missing kubeconfig or context, an unreachable cluster, or KEDA
    /// missing without `install_keda`.
    pub async fn start_existing(
        kubeconfig: &std::path::Path,
        context: Option<&str>,
        install_keda: bool,
        hpa: crate::stack::HpaTiming,
    ) -> Result<Self, EnvError> {
        let (env, client, startup) =
            ExistingEnvironment::start(kubeconfig, context, install_keda, hpa).await?;
        Ok(Self::new(Box::new(env), client, startup))
    }

    fn environment(&self) -> &dyn Environment {
        self.environment
            .as_deref()
            .expect("a LiveEnv is used only until it is stopped")
    }

    /// The address on this host that KEDA reaches (where mocks bind).
    pub fn keda_reaches(&self) -> std::net::IpAddr {
        self.environment().keda_reaches()
    }

    /// Makes the chart's images available to its pods; returns the stand-in references.
    ///
    /// # Errors
    /// [`EnvError`] when an image cannot be loaded.
    pub async fn prepare_images(&self, images: &[String]) -> Result<Vec<String>, EnvError> {
        self.environment().prepare_images(images).await
    }

    /// The stop request the scenarios on this environment obey (SIGINT/SIGTERM during a
    /// graceful phase).
    pub fn stop_token(&self) -> &crate::cleanup::StopToken {
        &self.stop
    }

    /// An admin client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Which provider runs it.
    pub fn provider(&self) -> crate::provider::ProviderKind {
        self.environment().provider()
    }

    /// The cluster's capabilities as Helm would see them when installing: its version and
    /// every group/version (and group/version/Kind) its discovery serves. Read once.
    ///
    /// # Errors
    /// The API server's error when discovery fails.
    pub async fn capabilities(&self) -> Result<&Capabilities, kube::Error> {
        self.capabilities
            .get_or_try_init(|| async {
                let version = self.client.apiserver_version().await?.git_version;
                let mut served = std::collections::BTreeSet::new();
                let mut group_versions = Vec::new();
                for v in self.client.list_core_api_versions().await?.versions {
                    group_versions.push(v);
                }
                for g in self.client.list_api_groups().await?.groups {
                    group_versions.extend(g.versions.into_iter().map(|v| v.group_version));
                }
                for gv in group_versions {
                    let resources = if gv.contains('/') {
                        self.client.list_api_group_resources(&gv).await
                    } else {
                        self.client.list_core_api_resources(&gv).await
                    };
                    if let Ok(resources) = resources {
                        served.extend(
                            resources
                                .resources
                                .iter()
                                .filter(|r| !r.name.contains('/'))
                                .map(|r| format!("{gv}/{}", r.kind)),
                        );
                    }
                    served.insert(gv);
                }
                Ok(Capabilities::of_cluster(version, served))
            })
            .await
    }

    /// Starts a fresh Mimir-API backend for one scenario, so tenants' data never leaks
    /// between scenarios.
    ///
    /// # Errors
    /// [`EnvError`] when the backend is missing or not ready in time.
    pub async fn start_backend(&self, label: &str) -> Result<MimirApiBackend, EnvError> {
        self.environment().start_backend(label).await
    }

    /// The admin kubeconfig (for the existing provider: the user's, narrowed to the chosen context).
    pub fn kubeconfig(&self) -> std::path::PathBuf {
        self.environment().kubeconfig().to_path_buf()
    }

    /// The run directory (logs live under `logs/`).
    pub fn run_dir(&self) -> std::path::PathBuf {
        self.environment().run_dir().to_path_buf()
    }

    /// The last lines of KEDA's operator and adapter logs.
    pub fn keda_logs(&self, lines: usize) -> (String, String) {
        self.environment().keda_logs(lines)
    }

    /// Stops KEDA and the cluster (local provider), or deletes exactly what this run created
    /// on an existing cluster.
    pub async fn stop(mut self) {
        if let Some(env) = self.environment.take() {
            env.stop().await;
        }
    }
}
