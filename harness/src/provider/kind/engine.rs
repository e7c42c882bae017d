//! The Docker engine kind runs in: one that answers (the runner's, the user's), or a private
//! dockerd of ours started through `scripts/kind/dockerd.sh` when none does and we are root
//! (own socket, data root, bridge and containerd namespace; it handles this VM's missing
//! capability). A private engine this run started is stopped at the end unless another kind
//! cluster of ours still runs in it.

use super::tool::Tool;
use crate::error::InputError;
use crate::provider::EnvError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The directory of the kind provider's scripts (`dockerd.sh`, `build.sh`): the checkout this
/// harness was built from, or `$KEDA_CONFORMANCE_SCRIPTS`.
pub fn scripts_dir() -> PathBuf {
    std::env::var_os("KEDA_CONFORMANCE_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kind"))
}

/// A Docker engine that answers, and whether this run started it.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    /// The `DOCKER_HOST` every docker and kind call uses.
    pub host: String,
    /// Whether this run started a private dockerd (and so stops it).
    pub started_here: bool,
    scripts: PathBuf,
}

impl DockerEngine {
    /// Finds an engine that answers, or starts a private one.
    ///
    /// # Errors
    /// [`EnvError::Input`] (exit 2) saying how to get Docker when none answers and none can
    /// be started.
    pub async fn connect(progress: &(dyn Fn(&str) + Send + Sync)) -> Result<Self, EnvError> {
        let scripts = scripts_dir();
        let script = scripts.join("dockerd.sh");
        if !script.is_file() {
            return Err(InputError::in_environment(
                "--provider kind",
                format!("{} is missing", script.display()),
                "run keda-conformance from its checkout, or set KEDA_CONFORMANCE_SCRIPTS to its scripts/kind directory",
            )
            .into());
        }
        let dockerd = Tool::new(&script, &[]);
        if let Ok(host) = dockerd.run(&["env"], Duration::from_secs(30)).await {
            return Ok(DockerEngine {
                host: host.trim().to_string(),
                started_here: false,
                scripts,
            });
        }
        progress(
            "Docker: none started by us yet; using one that answers or starting a private dockerd",
        );
        let host = dockerd
            .run(&["start"], Duration::from_secs(900))
            .await
            .map_err(|e| {
                InputError::in_environment(
                    "--provider kind",
                    format!("no Docker engine answers and none could be started: {e}"),
                    "start Docker (or run as root on a host where `apt-get install docker.io` works), or use `--provider local`, which needs no Docker",
                )
            })?;
        let status = dockerd
            .run(&["status"], Duration::from_secs(30))
            .await
            .unwrap_or_default();
        Ok(DockerEngine {
            host: host.trim().to_string(),
            started_here: status.starts_with("private"),
            scripts,
        })
    }

    /// The `docker` CLI talking to this engine.
    pub fn docker(&self) -> Tool {
        Tool::new("docker", &[("DOCKER_HOST", &self.host)])
    }

    /// A program that talks to this engine (kind, the image scripts).
    pub fn tool(&self, program: impl Into<PathBuf>) -> Tool {
        Tool::new(program, &[("DOCKER_HOST", &self.host)])
    }

    /// The directory of the provider's scripts.
    pub fn scripts(&self) -> &Path {
        &self.scripts
    }

    /// Stops the private dockerd this run started, unless another kind cluster of ours runs in
    /// it (concurrent runs share it). Blocking: also called from drops and finalizers.
    pub fn release_blocking(&self) {
        if !self.started_here || std::env::var_os("KC_KEEP_DOCKERD").is_some() {
            return;
        }
        if other_clusters_running(&self.docker()) {
            return;
        }
        let dockerd = Tool::new(self.scripts.join("dockerd.sh"), &[]);
        let _ = dockerd.run_blocking(&["stop"], Duration::from_secs(180));
    }
}

/// Whether any kind node container of ours (name prefix `kc-`) exists in the engine.
fn other_clusters_running(docker: &Tool) -> bool {
    let args = [
        "ps",
        "-a",
        "--filter",
        "label=io.x-k8s.kind.cluster",
        "--format",
        "{{.Names}}",
    ];
    match docker.output_blocking(&args, Duration::from_secs(30)) {
        Some(names) => names.lines().any(|n| n.starts_with(super::CLUSTER_PREFIX)),
        // Unknown: keep the engine rather than break another run.
        None => true,
    }
}
