//! The multi-tenant Mimir-API backend: Cortex (Apache-2.0, the project Mimir grew from; same
//! `X-Scope-OrgID` tenancy, `/prometheus` query prefix and `/api/v1/push` remote write), one
//! process with filesystem storage. The local and existing providers run it as a host process
//! in the run dir; the kind provider runs it as a container on the cluster's network
//! ([`MimirApiBackend::in_container`]).

use crate::stack::process::{ManagedProcess, ProcessSpec};
use crate::stack::wait::{Probe, Wait};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The query prefix, as Mimir serves it.
pub const PROMETHEUS_PREFIX: &str = "/prometheus";

/// A running backend.
#[derive(Debug)]
pub struct MimirApiBackend {
    runs_as: RunsAs,
    base_url: String,
    config: PathBuf,
}

/// Where a backend runs.
#[derive(Debug)]
enum RunsAs {
    /// A host process on 127.0.0.1.
    HostProcess {
        process: ManagedProcess,
        /// Its ports, claimed while it runs (see [`crate::stack::ports`]).
        _ports: Vec<crate::stack::ports::PortClaim>,
    },
    /// A container; the guard removes it when dropped.
    Container {
        _guard: Box<dyn std::fmt::Debug + Send + Sync>,
    },
}

/// Why the backend did not start.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Files or ports.
    #[error("Mimir-API backend (Cortex) setup failed: {0}")]
    Setup(String),
    /// The process.
    #[error(transparent)]
    Process(#[from] crate::stack::error::StackError),
    /// Readiness.
    #[error(transparent)]
    Wait(#[from] crate::stack::wait::WaitError),
}

impl BackendError {
    /// Whether Cortex could not bind its port because another program took it between the
    /// harness's choice and Cortex's bind (what Cortex's log says; worth a retry on new ports).
    pub fn is_address_in_use(&self) -> bool {
        self.to_string().contains("address already in use")
    }
}

/// The Cortex configuration: single process, auth (tenancy) enabled, in-memory rings,
/// filesystem blocks storage under `dir`, listening on `listen` (loopback for a host process).
pub fn config(dir: &Path, listen: &str, http_port: u16, grpc_port: u16) -> String {
    let d = dir.display();
    format!(
        r#"# Written by keda-conformance: Cortex as the multi-tenant Mimir-API backend.
target: all
auth_enabled: true
server:
  http_listen_address: {listen}
  http_listen_port: {http_port}
  grpc_listen_address: {listen}
  grpc_listen_port: {grpc_port}
  log_level: warn
api:
  prometheus_http_prefix: {PROMETHEUS_PREFIX}
distributor:
  shard_by_all_labels: true
  ring:
    instance_addr: 127.0.0.1
    kvstore:
      store: inmemory
ingester:
  lifecycler:
    address: 127.0.0.1
    min_ready_duration: 0s
    final_sleep: 0s
    join_after: 0s
    observe_period: 0s
    num_tokens: 64
    ring:
      kvstore:
        store: inmemory
      replication_factor: 1
querier:
  query_ingesters_within: 0
  active_query_tracker_dir: {d}/active-query-tracker
blocks_storage:
  backend: filesystem
  filesystem:
    dir: {d}/blocks
  tsdb:
    dir: {d}/tsdb
  bucket_store:
    sync_dir: {d}/tsdb-sync
compactor:
  data_dir: {d}/compactor
  sharding_ring:
    instance_addr: 127.0.0.1
    kvstore:
      store: inmemory
store_gateway:
  sharding_ring:
    instance_addr: 127.0.0.1
    kvstore:
      store: inmemory
    replication_factor: 1
ruler:
  rule_path: {d}/ruler-tmp
  ring:
    instance_addr: 127.0.0.1
    kvstore:
      store: inmemory
ruler_storage:
  backend: local
  local:
    directory: {d}/rules
alertmanager:
  data_dir: {d}/alertmanager-data
  external_url: http://127.0.0.1:{http_port}/alertmanager
  cluster:
    listen_address: ""
alertmanager_storage:
  backend: local
  local:
    path: {d}/alertmanager
"#
    )
}

impl MimirApiBackend {
    /// Starts Cortex with state in `dir` (created), logging to `log`, and waits for `/ready`.
    ///
    /// # Errors
    /// [`BackendError`] with Cortex's log tail when it exits or is not ready in `timeout`.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        log: &Path,
        pid_file: &Path,
        timeout: Duration,
    ) -> Result<Self, BackendError> {
        create_layout(dir)?;
        let ports = crate::stack::ports::claim(2)
            .map_err(|e| BackendError::Setup(format!("ports: {e}")))?;
        let (http_port, grpc_port) = (ports[0].port(), ports[1].port());
        let config_path = dir.join("cortex.yaml");
        std::fs::write(&config_path, config(dir, "127.0.0.1", http_port, grpc_port))
            .map_err(|e| BackendError::Setup(format!("{}: {e}", config_path.display())))?;
        let process = ManagedProcess::spawn(&ProcessSpec {
            name: "cortex".into(),
            program: binary.to_path_buf(),
            args: vec![format!("-config.file={}", config_path.display())],
            log: log.to_path_buf(),
            pid_file: pid_file.to_path_buf(),
        })?;
        let backend = Self {
            base_url: format!("http://127.0.0.1:{http_port}"),
            runs_as: RunsAs::HostProcess {
                process,
                _ports: ports,
            },
            config: config_path,
        };
        backend.wait_ready(timeout).await?;
        Ok(backend)
    }

    /// A backend running in a container that answers at `base_url` from this host; `guard`
    /// removes the container when dropped. Waits for `/ready`.
    ///
    /// # Errors
    /// [`BackendError::Wait`] when it is not ready in `timeout`.
    pub async fn in_container(
        base_url: String,
        config: PathBuf,
        guard: Box<dyn std::fmt::Debug + Send + Sync>,
        timeout: Duration,
    ) -> Result<Self, BackendError> {
        let backend = Self {
            base_url,
            runs_as: RunsAs::Container { _guard: guard },
            config,
        };
        backend.wait_ready(timeout).await?;
        Ok(backend)
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), BackendError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| BackendError::Setup(e.to_string()))?;
        let url = format!("{}/ready", self.base_url);
        Wait::new("Mimir-API backend (Cortex) /ready", timeout)
            .watching(self.process())
            .until(|| {
                let client = client.clone();
                let url = url.clone();
                async move {
                    match client.get(&url).send().await {
                        Ok(r) if r.status().is_success() => Probe::Ready,
                        Ok(r) => Probe::NotYet(format!(
                            "/ready answered {}: {}",
                            r.status(),
                            r.text().await.unwrap_or_default().trim()
                        )),
                        Err(e) => Probe::NotYet(format!("/ready: {e}")),
                    }
                }
            })
            .await?;
        Ok(())
    }

    /// Where this host reaches it (`http://127.0.0.1:<port>` for a host process).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The Prometheus API base a trigger's serverAddress points at.
    pub fn prometheus_url(&self) -> String {
        format!("{}{PROMETHEUS_PREFIX}", self.base_url())
    }

    /// The remote-write endpoint.
    pub fn push_url(&self) -> String {
        format!("{}/api/v1/push", self.base_url())
    }

    /// The host process, when it is one (for RSS and liveness).
    pub fn process(&self) -> Option<&ManagedProcess> {
        match &self.runs_as {
            RunsAs::HostProcess { process, .. } => Some(process),
            RunsAs::Container { .. } => None,
        }
    }

    /// The configuration file written.
    pub fn config_path(&self) -> &Path {
        &self.config
    }
}

/// Creates `dir` and the directories Cortex expects in it (it exits on a missing
/// `alertmanager/`, `rules/` or `ruler-tmp/`).
///
/// # Errors
/// [`BackendError::Setup`] naming the directory.
pub fn create_layout(dir: &Path) -> Result<(), BackendError> {
    for sub in [
        "",
        "blocks",
        "tsdb",
        "tsdb-sync",
        "compactor",
        "rules",
        "ruler-tmp",
        "alertmanager",
        "alertmanager-data",
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)
            .map_err(|e| BackendError::Setup(format!("{}: {e}", d.display())))?;
    }
    Ok(())
}
