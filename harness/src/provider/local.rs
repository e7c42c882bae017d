//! The `local` provider: a named, discoverable [`ControlPlane`] in its own run directory,
//! with `up`, `down`, `status`, `gc` and the stack benchmark.
//!
//! Lifetime: the process that calls [`up`] owns the cluster. Its components die with it
//! (parent-death signal), on SIGINT/SIGTERM (see [`crate::cleanup`]) and when the returned
//! [`LocalCluster`] is dropped. Another process finds it through [`super::registry`]; [`down`]
//! asks the owner to stop with SIGTERM, [`gc`] removes what dead owners left behind.

use super::registry::{self, ComponentRecord, Entry, OwnedRunDir, Phase, Record};
use super::{Cluster, ProviderError, ProviderKind};
use crate::stack::control_plane::Progress;
use crate::stack::process::describe_exit;
use crate::stack::wait::{Probe, Wait};
use crate::stack::{Binaries, ControlPlane, StackConfig, StartupTimings};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::time::Duration;

/// What to start.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOptions {
    /// The cluster's name (unique among running clusters).
    pub name: String,
    /// Nodes, HPA timing, deadlines.
    pub stack: StackConfig,
    /// Keep the run directory (logs, etcd data, PKI) after the owner exits; `gc` removes it.
    pub keep: bool,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            name: "local".into(),
            stack: StackConfig::default(),
            keep: false,
        }
    }
}

/// A running local cluster owned by this process. Dropping it kills every component and
/// removes the run directory (unless kept); [`LocalCluster::down`] stops them gracefully first.
#[derive(Debug)]
pub struct LocalCluster {
    // Field order is drop order: processes die before their directory goes.
    control_plane: ControlPlane,
    cluster: Cluster,
    run_dir: OwnedRunDir,
}

/// A component that exited while the cluster was supposed to be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentExit {
    /// The component.
    pub component: String,
    /// How it exited.
    pub status: String,
    /// Its log.
    pub log: PathBuf,
    /// The last lines of its log.
    pub tail: String,
}

/// Starts a local cluster and returns once it is ready (see [`ControlPlane::start`]).
///
/// # Errors
/// [`ProviderError::Input`] for a bad name or a missing binary (the fix names
/// `scripts/setup-stack.sh`); [`ProviderError::NameTaken`] when a running cluster has the
/// name; [`ProviderError::Start`] when the control plane does not become ready.
///
/// # Timeouts
/// Each readiness condition gets `options.stack.ready_timeout`.
pub async fn up(
    options: &LocalOptions,
    progress: Progress<'_>,
) -> Result<LocalCluster, ProviderError> {
    registry::validate_name(&options.name)?;
    let binaries = Binaries::locate()?;
    for entry in registry::list()
        .into_iter()
        .filter(|e| e.name == options.name)
    {
        if entry.live {
            return Err(ProviderError::NameTaken {
                name: options.name.clone(),
                owner: entry
                    .record
                    .map(|r| r.owner_pid.to_string())
                    .unwrap_or_else(|| "unknown".into()),
            });
        }
        registry::remove(&entry.path)?;
    }
    let run_dir = OwnedRunDir::create(&options.name, options.keep)?;
    let layout = crate::stack::components::Layout::new(run_dir.path());
    let mut record = Record {
        name: options.name.clone(),
        provider: ProviderKind::Local,
        owner_pid: std::process::id(),
        run_dir: run_dir.path().to_path_buf(),
        kubeconfig: layout.kubeconfig.clone(),
        server: String::new(),
        nodes: options.stack.nodes,
        phase: Phase::Starting,
        keep: options.keep,
        created_unix: registry::now_unix(),
        components: Vec::new(),
    };
    run_dir.write_record(&record)?;
    let control_plane = ControlPlane::start(
        run_dir.path(),
        &options.name,
        &binaries,
        &options.stack,
        progress,
    )
    .await
    .map_err(|source| ProviderError::Start {
        name: options.name.clone(),
        source: Box::new(source),
    })?;
    record.server = control_plane.server();
    record.phase = Phase::Ready;
    record.components = control_plane
        .processes()
        .iter()
        .map(|p| ComponentRecord {
            name: p.name().to_string(),
            pid: p.pid(),
            log: p.log().to_path_buf(),
        })
        .collect();
    run_dir.write_record(&record)?;
    let cluster = Cluster {
        name: options.name.clone(),
        provider: ProviderKind::Local,
        kubeconfig: control_plane.kubeconfig().to_path_buf(),
        server: control_plane.server(),
        run_dir: run_dir.path().to_path_buf(),
    };
    Ok(LocalCluster {
        control_plane,
        cluster,
        run_dir,
    })
}

impl LocalCluster {
    /// The provider-independent handle.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The running components.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// A client authenticated as the cluster admin.
    pub fn client(&self) -> kube::Client {
        self.control_plane.client()
    }

    /// Whether the run directory outlives this handle.
    pub fn kept(&self) -> bool {
        self.run_dir.kept()
    }

    /// Returns when a component exits (it should not while the cluster runs). Checks every
    /// 250 ms. A component killed by SIGKILL is reported only if this process is still
    /// alive 2 s later, because that is how the interrupt handler stops everything.
    pub async fn supervise(&self) -> ComponentExit {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            if let Some((component, status, log)) = self.control_plane.exited_component() {
                if status.code().is_none() {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                return ComponentExit {
                    tail: crate::stack::process::log_tail(&log, 15),
                    component,
                    status: describe_exit(status),
                    log,
                };
            }
        }
    }

    /// Stops every component and removes the run directory unless it is kept.
    ///
    /// Components get SIGKILL at once: the cluster's data is thrown away, and on SIGTERM
    /// kube-apiserver and kube-scheduler take over 10 s (draining, releasing leases) for
    /// nothing ([`ControlPlane::stop`] is the graceful way, for a control plane owned
    /// directly).
    pub async fn down(self) {
        drop(self);
    }
}

/// A cluster as `cluster status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The name.
    pub name: String,
    /// `ready`, `starting` or `stale` (owner gone; `gc` removes it).
    pub state: &'static str,
    /// The owner process.
    pub owner_pid: Option<u32>,
    /// Number of fake nodes.
    pub nodes: Option<u32>,
    /// The apiserver URL.
    pub server: Option<String>,
    /// The admin kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// Seconds since creation.
    pub age_secs: Option<u64>,
    /// The run directory.
    pub run_dir: PathBuf,
}

fn status_of(entry: Entry) -> ClusterStatus {
    let state = match (&entry.record, entry.live) {
        (_, false) => "stale",
        (Some(r), true) if r.phase == Phase::Ready => "ready",
        _ => "starting",
    };
    let r = entry.record.as_ref();
    ClusterStatus {
        name: entry.name.clone(),
        state,
        owner_pid: r.map(|r| r.owner_pid),
        nodes: r.map(|r| r.nodes),
        server: r.map(|r| r.server.clone()).filter(|s| !s.is_empty()),
        kubeconfig: r.map(|r| r.kubeconfig.clone()),
        age_secs: r.map(|r| registry::now_unix().saturating_sub(r.created_unix)),
        run_dir: entry.path,
    }
}

/// Every cluster on this machine (for this `$TMPDIR`), running or stale.
pub fn status() -> Vec<ClusterStatus> {
    registry::list().into_iter().map(status_of).collect()
}

/// Removes clusters whose owner is gone: kills any process still naming their run directory
/// and deletes it. Returns the removed clusters.
///
/// # Errors
/// When a run directory cannot be removed.
pub fn gc() -> Result<Vec<ClusterStatus>, ProviderError> {
    let mut removed = Vec::new();
    for entry in registry::list().into_iter().filter(|e| !e.live) {
        registry::remove(&entry.path)?;
        removed.push(status_of(entry));
    }
    Ok(removed)
}

fn known_names(entries: &[Entry]) -> String {
    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    names.dedup();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

async fn wait_released(entry: &Entry, what: &str, timeout: Duration) -> bool {
    let path = entry.path.clone();
    Wait::new(what.to_string(), timeout)
        .until(|| {
            let held = registry::lock_held(&path);
            async move {
                if held {
                    Probe::NotYet("the owner still holds the lock".into())
                } else {
                    Probe::Ready
                }
            }
        })
        .await
        .is_ok()
}

/// Stops cluster `name` (or the only cluster when `name` is `None`) from any process: sends
/// SIGTERM to its owner, which stops its components and removes its run directory; kills
/// the owner if it has not let go after `timeout`; then removes whatever is left. Returns the
/// names stopped.
///
/// # Errors
/// [`ProviderError::NotFound`] / [`ProviderError::Ambiguous`] when the name does not select
/// a cluster, [`ProviderError::OwnedHere`] when this process owns it,
/// [`ProviderError::OwnerStuck`] when the owner survives SIGKILL.
///
/// # Timeouts
/// `timeout` for the owner to exit after SIGTERM, then 10 s after SIGKILL.
pub async fn down(name: Option<&str>, timeout: Duration) -> Result<Vec<String>, ProviderError> {
    let entries = registry::list();
    let targets: Vec<Entry> = match name {
        Some(n) => {
            let t: Vec<Entry> = entries.iter().filter(|e| e.name == n).cloned().collect();
            if t.is_empty() {
                return Err(ProviderError::NotFound {
                    name: n.to_string(),
                    known: known_names(&entries),
                });
            }
            t
        }
        None => {
            let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            names.dedup();
            match names.len() {
                0 => {
                    return Err(ProviderError::NoClusters {
                        root: registry::root(),
                    })
                }
                1 => entries.clone(),
                count => {
                    return Err(ProviderError::Ambiguous {
                        count,
                        known: known_names(&entries),
                    })
                }
            }
        }
    };
    let mut stopped = Vec::new();
    for entry in targets {
        if entry.live {
            let Some(record) = &entry.record else {
                return Err(ProviderError::Creating {
                    name: entry.name.clone(),
                });
            };
            if record.owner_pid == std::process::id() {
                return Err(ProviderError::OwnedHere {
                    name: entry.name.clone(),
                });
            }
            let owner = Pid::from_raw(record.owner_pid as i32);
            let _ = kill(owner, Signal::SIGTERM);
            if !wait_released(&entry, "the owner to exit after SIGTERM", timeout).await {
                let _ = kill(owner, Signal::SIGKILL);
                let after_kill = Duration::from_secs(10);
                if !wait_released(&entry, "the owner to exit after SIGKILL", after_kill).await {
                    return Err(ProviderError::OwnerStuck {
                        name: entry.name.clone(),
                        pid: record.owner_pid,
                    });
                }
            }
        }
        registry::remove(&entry.path)?;
        stopped.push(entry.name);
    }
    stopped.dedup();
    Ok(stopped)
}

/// One benchmark run of the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchRun {
    /// Phase timings (cold start with cached binaries to ready).
    pub timings: StartupTimings,
    /// Resident memory of each component right after ready, in bytes.
    pub rss: Vec<(String, u64)>,
}

/// Brings a fresh cluster up `runs` times (one at a time), measuring cold-to-ready time and
/// the components' resident memory right after ready, and takes each down again.
///
/// # Errors
/// As [`up`].
pub async fn bench(nodes: u32, runs: u32) -> Result<Vec<BenchRun>, ProviderError> {
    let mut results = Vec::new();
    for i in 0..runs {
        let options = LocalOptions {
            name: format!("bench-{}-{i}", std::process::id()),
            stack: StackConfig {
                nodes,
                ..StackConfig::default()
            },
            keep: false,
        };
        let cluster = up(&options, &|_| {}).await?;
        results.push(BenchRun {
            timings: cluster.control_plane().timings(),
            rss: cluster.control_plane().rss(),
        });
        cluster.down().await;
    }
    Ok(results)
}

/// A local cluster with KEDA running against it as host processes: the local provider's
/// [`super::Environment`].
pub struct LocalEnvironment {
    // Field order is drop order: KEDA dies before the cluster.
    keda: Option<crate::install::keda::Keda>,
    cluster: LocalCluster,
    hpa: crate::stack::HpaTiming,
}

impl std::fmt::Debug for LocalEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEnvironment")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl LocalEnvironment {
    /// Starts a local cluster named `name` with `nodes` fake nodes, and KEDA. Returns the
    /// environment, an admin client and how long each part took.
    ///
    /// # Errors
    /// [`super::EnvError`] naming the part that failed, with its log tail.
    pub async fn start(
        name: &str,
        nodes: u32,
        keep: bool,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(Self, kube::Client, Vec<(String, Duration)>), super::EnvError> {
        use crate::install::keda::{Keda, KedaPaths};
        let stack = StackConfig {
            nodes,
            ..StackConfig::default()
        };
        let hpa = stack.hpa;
        let t = std::time::Instant::now();
        let cluster = up(
            &LocalOptions {
                name: name.to_string(),
                stack,
                keep,
            },
            progress,
        )
        .await
        .map_err(|e| super::EnvError::Cluster(format!("{e}: {}", source_chain(&e))))?;
        let mut startup = vec![("cluster".to_string(), t.elapsed())];
        let run_dir = cluster.cluster().run_dir.clone();
        let client = cluster.client();
        // Fail early if the backend binary is missing; each scenario starts its own backend.
        crate::toolchain::CORTEX.binary("cortex")?;
        let t = std::time::Instant::now();
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
            crate::toolchain::KEDA.version(),
            t.elapsed().as_secs_f64()
        ));
        Ok((
            LocalEnvironment {
                keda: Some(keda),
                cluster,
                hpa,
            },
            client,
            startup,
        ))
    }
}

impl super::Environment for LocalEnvironment {
    fn provider(&self) -> ProviderKind {
        ProviderKind::Local
    }

    fn kubeconfig(&self) -> &std::path::Path {
        &self.cluster.cluster().kubeconfig
    }

    fn run_dir(&self) -> &std::path::Path {
        &self.cluster.cluster().run_dir
    }

    fn hpa(&self) -> crate::stack::HpaTiming {
        self.hpa
    }

    fn keda_logs(&self, lines: usize) -> (String, String) {
        crate::install::keda::log_tails(self.keda.as_ref(), lines)
    }

    fn stop(mut self: Box<Self>) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Some(k) = self.keda.take() {
                k.stop(Duration::from_secs(5)).await;
            }
            let LocalEnvironment { cluster, .. } = *self;
            cluster.down().await;
        })
    }
}

/// The causes of an error, joined.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}
