//! Cluster providers. Each starts an [`Environment`]: a cluster with KEDA ready in it, the HPA
//! timing its controller runs with, the place where a scenario's Mimir-API backend starts,
//! and the teardown of everything it created (its `stop`, or its drop). Everything after that
//! is shared code. Today: [`local`] (a hermetic control plane of real binaries, pods
//! simulated by kwok), [`kind`] (real pods in Docker) and [`existing`] (a cluster the user
//! points at).

pub mod existing;
pub mod kind;
pub mod local;
pub mod registry;

use crate::backend::cortex::MimirApiBackend;
use futures::future::BoxFuture;
use std::path::Path;
use std::time::Duration;

/// A provider's running environment: what the live tier needs from it.
pub trait Environment: Send + Sync + std::fmt::Debug {
    /// Which provider made it.
    fn provider(&self) -> ProviderKind;
    /// An admin kubeconfig for the cluster.
    fn kubeconfig(&self) -> &Path;
    /// The directory for this run's logs, pid files and backend state.
    fn run_dir(&self) -> &Path;
    /// The HPA controller's timing (the oracle and every deadline derive from it).
    fn hpa(&self) -> crate::stack::HpaTiming;
    /// The last `lines` lines of KEDA's operator and metrics adapter logs (empty when KEDA is
    /// not ours to read).
    fn keda_logs(&self, lines: usize) -> (String, String);
    /// Starts a fresh Mimir-API backend for one scenario, reachable from KEDA, so tenants'
    /// data never leaks between scenarios. By default Cortex as a host process under the run
    /// directory (for providers whose KEDA reaches 127.0.0.1 here).
    fn start_backend<'a>(
        &'a self,
        label: &'a str,
    ) -> BoxFuture<'a, Result<MimirApiBackend, EnvError>> {
        Box::pin(host_backend(self.run_dir(), label))
    }
    /// The address on this host that KEDA reaches: where the recording mocks and proxy bind.
    /// Loopback for providers whose KEDA runs here; the Docker network's gateway for kind.
    fn keda_reaches(&self) -> std::net::IpAddr {
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    }
    /// Makes the images a chart runs available to its pods, before it is installed. Returns
    /// every image reference played by a stand-in so far (none where pods are simulated).
    fn prepare_images<'a>(
        &'a self,
        _images: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, EnvError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    /// Stops KEDA and removes the cluster or exactly the objects this run created.
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Why an environment could not start.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The cluster.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The backend.
    #[error(transparent)]
    Backend(#[from] crate::backend::cortex::BackendError),
    /// KEDA.
    #[error(transparent)]
    Keda(#[from] crate::install::keda::KedaError),
    /// A missing binary or cache entry.
    #[error(transparent)]
    Input(#[from] crate::error::InputError),
    /// SIGINT/SIGTERM arrived while it started; what it had created is removed.
    #[error("interrupted (SIGINT/SIGTERM) while the environment started")]
    Interrupted,
}

/// Starts Cortex as a host process for one scenario, its state and log under `run_dir`: the
/// backend of the providers whose KEDA reaches 127.0.0.1 on this host.
///
/// # Errors
/// [`EnvError`] when Cortex is missing or not ready in time.
pub async fn host_backend(run_dir: &Path, label: &str) -> Result<MimirApiBackend, EnvError> {
    let binary = crate::toolchain::CORTEX.binary("cortex")?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = MimirApiBackend::start(
            &binary,
            &run_dir.join(format!("cortex-{label}")),
            &run_dir.join(format!("logs/cortex-{label}.log")),
            &run_dir.join(format!("pids/cortex-{label}.pid")),
            Duration::from_secs(90),
        )
        .await;
        match started {
            // Harness processes never share a port (crate::stack::ports), but an unrelated
            // program may bind one between our check and Cortex's bind: new ports.
            Err(e) if attempt < 3 && e.is_address_in_use() => continue,
            other => return Ok(other?),
        }
    }
}

use crate::error::InputError;
use crate::stack::StackError;
use std::path::PathBuf;

/// Which provider made a cluster.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler as host
    /// processes on 127.0.0.1, with kwok's fake nodes.
    Local,
    /// A kind cluster (needs a Docker engine).
    Kind,
    /// A cluster the user already has, given by `--kubeconfig` (and `--context`).
    Existing,
}

impl ProviderKind {
    /// The provider's name as the CLI spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Kind => "kind",
            ProviderKind::Existing => "existing",
        }
    }
}

/// A reachable cluster: what every later step (Helm, KEDA, checks) needs from a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The cluster's name (unique among running clusters).
    pub name: String,
    /// Who made it.
    pub provider: ProviderKind,
    /// An admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The apiserver URL.
    pub server: String,
    /// The directory holding its state, logs and pid files.
    pub run_dir: PathBuf,
}

/// Why a provider operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Bad input or a missing tool; the message names the fix (exit code 2).
    #[error(transparent)]
    Input(#[from] InputError),
    /// The control plane could not be started.
    #[error("cannot start cluster {name:?}")]
    Start {
        /// The cluster.
        name: String,
        /// The cause.
        #[source]
        source: Box<StackError>,
    },
    /// A running cluster already has this name.
    #[error(
        "a cluster named {name:?} is already running (owner pid {owner}); pass another --name or \
         run `keda-conformance cluster down --name {name}`"
    )]
    NameTaken {
        /// The name.
        name: String,
        /// Its owner process, when known.
        owner: String,
    },
    /// No cluster has this name.
    #[error("no cluster named {name:?} (running or stale: {known})")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The names that exist, or "none".
        known: String,
    },
    /// No cluster exists at all.
    #[error("there are no clusters (run directories live in {})", root.display())]
    NoClusters {
        /// Where run directories are looked for.
        root: PathBuf,
    },
    /// Several clusters exist and none was named.
    #[error("{count} clusters exist ({known}); pass --name")]
    Ambiguous {
        /// How many.
        count: usize,
        /// Their names.
        known: String,
    },
    /// The cluster's owner is still creating its run directory.
    #[error("cluster {name:?} is still being created; retry in a moment")]
    Creating {
        /// The cluster.
        name: String,
    },
    /// The cluster belongs to the calling process itself.
    #[error("cluster {name:?} is owned by this process; drop (or `down`) its handle instead")]
    OwnedHere {
        /// The cluster.
        name: String,
    },
    /// The owner process did not exit after SIGTERM and SIGKILL.
    #[error("the owner (pid {pid}) of cluster {name:?} did not exit after SIGTERM and SIGKILL")]
    OwnerStuck {
        /// The cluster.
        name: String,
        /// Its owner.
        pid: u32,
    },
    /// A run-directory file could not be written or read.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ProviderError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
