//! The live environment shared by the scenarios of a run: a cluster from the provider, the
//! multi-tenant Mimir-API backend and KEDA, started once and torn down at the end.

use crate::backend::cortex::MimirApiBackend;
use crate::install::keda::{Keda, KedaPaths};
use crate::provider::local::{self, LocalCluster, LocalOptions};
use crate::stack::StackConfig;
use crate::toolchain;
use std::time::{Duration, Instant};

/// Why the live environment could not start.
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
}

/// A running live environment.
pub struct LiveEnv {
    // Field order is drop order: KEDA and the backend die before the cluster.
    keda: Option<Keda>,
    cluster: Option<LocalCluster>,
    client: kube::Client,
    /// Seconds each part took to become ready.
    pub startup: Vec<(String, Duration)>,
    /// HPA timing of the control plane (the oracle and deadlines need it).
    pub hpa: crate::stack::HpaTiming,
}

impl std::fmt::Debug for LiveEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveEnv")
            .field("cluster", &self.cluster)
            .field("startup", &self.startup)
            .finish_non_exhaustive()
    }
}

impl LiveEnv {
    /// Starts a local cluster with `nodes` fake nodes, Cortex and KEDA.
    ///
    /// # Errors
    /// [`EnvError`] naming the part that failed, with its log tail.
    pub async fn start_local(
        name: &str,
        nodes: u32,
        keep: bool,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Self, EnvError> {
        let stack = StackConfig {
            nodes,
            ..StackConfig::default()
        };
        let hpa = stack.hpa;
        let t = Instant::now();
        let cluster = local::up(
            &LocalOptions {
                name: name.to_string(),
                stack,
                keep,
            },
            progress,
        )
        .await
        .map_err(|e| EnvError::Cluster(format!("{e}: {}", source_chain(&e))))?;
        let mut startup = vec![("cluster".to_string(), t.elapsed())];
        let run_dir = cluster.cluster().run_dir.clone();
        let client = cluster.client();
        // Fail early if the backend binary is missing; each scenario starts its own backend.
        toolchain::CORTEX.binary("cortex")?;
        let t = Instant::now();
        let paths = KedaPaths {
            dir: run_dir.join("keda"),
            logs: run_dir.join("logs"),
            kubeconfig: cluster.cluster().kubeconfig.clone(),
            ca_cert: run_dir.join("pki/ca.crt"),
            ca_key: run_dir.join("pki/ca.key"),
        };
        let keda = Keda::start(&client, &paths, Duration::from_secs(120)).await?;
        startup.push(("KEDA".to_string(), t.elapsed()));
        progress(&format!(
            "KEDA {} ready ({:.1}s)",
            toolchain::KEDA.version(),
            t.elapsed().as_secs_f64()
        ));
        Ok(Self {
            keda: Some(keda),
            cluster: Some(cluster),
            client,
            startup,
            hpa,
        })
    }

    /// An admin client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Starts a fresh Mimir-API backend (Cortex) for one scenario, so tenants' data never
    /// leaks between scenarios; its state and log live under the run directory.
    ///
    /// # Errors
    /// [`EnvError`] when Cortex is missing or not ready in time.
    pub async fn start_backend(&self, label: &str) -> Result<MimirApiBackend, EnvError> {
        let run_dir = self.run_dir();
        let binary = toolchain::CORTEX.binary("cortex")?;
        Ok(MimirApiBackend::start(
            &binary,
            &run_dir.join(format!("cortex-{label}")),
            &run_dir.join(format!("logs/cortex-{label}.log")),
            &run_dir.join(format!("pids/cortex-{label}.pid")),
            Duration::from_secs(90),
        )
        .await?)
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> std::path::PathBuf {
        self.cluster
            .as_ref()
            .map(|c| c.cluster().kubeconfig.clone())
            .unwrap_or_default()
    }

    /// The cluster's run directory (logs live under `logs/`).
    pub fn run_dir(&self) -> std::path::PathBuf {
        self.cluster
            .as_ref()
            .map(|c| c.cluster().run_dir.clone())
            .unwrap_or_default()
    }

    /// The last lines of KEDA's operator and adapter logs.
    pub fn keda_logs(&self, lines: usize) -> (String, String) {
        match &self.keda {
            Some(k) => (k.operator().log_tail(lines), k.adapter().log_tail(lines)),
            None => (String::new(), String::new()),
        }
    }

    /// Stops KEDA, the backend and the cluster, in that order.
    pub async fn stop(mut self) {
        if let Some(k) = self.keda.take() {
            k.stop(Duration::from_secs(5)).await;
        }
        if let Some(c) = self.cluster.take() {
            c.down().await;
        }
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}
