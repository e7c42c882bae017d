//! The Docker engine kind runs in: one that answers (the runner's, the user's), or a private
//! dockerd of ours started through `scripts/kind/dockerd.sh` when none does and we are root
//! (own socket, data root, bridge and containerd namespace; it handles this VM's missing
//! capability). Runs that use a private engine a run started register in `kind/dockerd-users/`;
//! the last of them to finish stops it, unless a kind cluster of ours still runs in it (two
//! runs at once share one engine, whichever started it and in whatever order they end).

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
    /// Whether this run started a private dockerd.
    pub started_here: bool,
    /// Whether it is a private dockerd a run started (the last run using it stops it).
    run_owned: bool,
    scripts: PathBuf,
}

/// Where the runs using a private dockerd register (one file per process id), the marker that
/// a run (not the user or `scripts/setup.sh`) started it, and the lock over both.
struct Users {
    dir: PathBuf,
    lock: PathBuf,
}

impl Users {
    fn here() -> Self {
        let kind = crate::toolchain::cache_root().join("kind");
        Users {
            dir: kind.join("dockerd-users"),
            lock: kind.join(".dockerd-users.lock"),
        }
    }

    /// Holds the lock until the returned guard drops (blocking).
    fn locked(&self) -> Option<nix::fcntl::Flock<std::fs::File>> {
        std::fs::create_dir_all(&self.dir).ok()?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .ok()?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).ok()
    }

    fn me(&self) -> PathBuf {
        self.dir.join(std::process::id().to_string())
    }

    fn marker(&self) -> PathBuf {
        self.dir.join("started-by-a-run")
    }

    /// Other registered runs whose process is still alive.
    fn others_alive(&self) -> Vec<u32> {
        let me = std::process::id();
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != me && Path::new(&format!("/proc/{pid}")).exists())
            .collect()
    }
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
        // Registered before the engine is looked for, under the lock a finishing run takes to
        // decide whether it stops the engine: that run then sees this one.
        let lock = tokio::task::spawn_blocking(|| Users::here().locked())
            .await
            .ok()
            .flatten();
        let users = Users::here();
        let _ = std::fs::write(users.me(), b"");
        let engine = Self::find_or_start(&dockerd, scripts, progress).await;
        if let Ok(e) = &engine {
            if e.started_here {
                let _ = std::fs::write(users.marker(), b"");
            }
        }
        drop(lock);
        let mut engine = engine?;
        engine.run_owned = engine.run_owned && users.marker().exists();
        Ok(engine)
    }

    async fn find_or_start(
        dockerd: &Tool,
        scripts: PathBuf,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Self, EnvError> {
        if let Ok(host) = dockerd.run(&["env"], Duration::from_secs(30)).await {
            let status = dockerd
                .run(&["status"], Duration::from_secs(30))
                .await
                .unwrap_or_default();
            return Ok(DockerEngine {
                host: host.trim().to_string(),
                started_here: false,
                run_owned: status.starts_with("private"),
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
        let private = status.starts_with("private");
        Ok(DockerEngine {
            host: host.trim().to_string(),
            started_here: private,
            run_owned: private,
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

    /// Deregisters this run; the last run using a private dockerd a run started stops it,
    /// unless a kind cluster of ours still runs in it. Blocking: also called from drops and
    /// finalizers.
    pub fn release_blocking(&self) {
        let users = Users::here();
        let _lock = users.locked();
        let _ = std::fs::remove_file(users.me());
        if !self.run_owned || std::env::var_os("KC_KEEP_DOCKERD").is_some() {
            return;
        }
        if !users.others_alive().is_empty() || other_clusters_running(&self.docker()) {
            return;
        }
        let dockerd = Tool::new(self.scripts.join("dockerd.sh"), &[]);
        if dockerd.run_blocking(&["stop"], Duration::from_secs(180)) {
            let _ = std::fs::remove_file(users.marker());
        }
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
