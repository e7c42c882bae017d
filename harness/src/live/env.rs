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
    // Field order is drop order: KEDA dies before the cluster and the temporary files.
    keda: Option<Keda>,
    cluster: Option<LocalCluster>,
    /// Existing provider: the effective kubeconfig, KEDA certificates and backend state.
    temp: Option<crate::cleanup::TempDir>,
    kubeconfig: std::path::PathBuf,
    run_dir: std::path::PathBuf,
    /// Objects this run created on an existing cluster (deleted by [`LiveEnv::stop`]).
    created: Vec<(String, String)>,
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
        let kubeconfig = cluster.cluster().kubeconfig.clone();
        Ok(Self {
            keda: Some(keda),
            cluster: Some(cluster),
            temp: None,
            kubeconfig,
            run_dir,
            created: Vec::new(),
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
                Err(e) if attempt < 3 && e.to_string().contains("address already in use") => {
                    continue
                }
                other => return Ok(other?),
            }
        }
    }

    /// The admin kubeconfig (for the existing provider: the user's, narrowed to the chosen context).
    pub fn kubeconfig(&self) -> std::path::PathBuf {
        self.kubeconfig.clone()
    }

    /// The run directory (logs live under `logs/`).
    pub fn run_dir(&self) -> std::path::PathBuf {
        self.run_dir.clone()
    }

    /// Uses a cluster the user already has. KEDA must be installed there (CRDs present and the
    /// external metrics APIService Available) unless `install_keda`, which runs KEDA as host
    /// processes against it (with a CA of its own) and removes what it created on [`stop`].
    /// The Mimir-API backend runs on this host, so KEDA must be able to reach 127.0.0.1 here:
    /// true for host-process KEDA, not for KEDA running inside a remote cluster.
    ///
    /// [`stop`]: LiveEnv::stop
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
        use crate::error::InputError;
        let mut config = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| {
            InputError::in_file(
                kubeconfig,
                None,
                None,
                format!("cannot read kubeconfig: {e}"),
                "pass --kubeconfig a readable kubeconfig file",
            )
        })?;
        if let Some(ctx) = context {
            if !config.contexts.iter().any(|c| c.name == ctx) {
                let names: Vec<String> = config.contexts.iter().map(|c| c.name.clone()).collect();
                return Err(InputError::in_flag(
                    format!("--context {ctx}"),
                    format!("{} has no context {ctx:?}", kubeconfig.display()),
                    format!("use one of: {}", names.join(", ")),
                )
                .into());
            }
            config.current_context = Some(ctx.to_string());
        }
        let temp = crate::cleanup::TempDir::new("keda-conformance-existing-")
            .map_err(|e| EnvError::Cluster(e.to_string()))?;
        let effective = temp.path().join("kubeconfig");
        let text =
            serde_yaml_ng::to_string(&config).map_err(|e| EnvError::Cluster(e.to_string()))?;
        std::fs::write(&effective, text).map_err(|e| EnvError::Cluster(e.to_string()))?;
        let client = crate::stack::kubeconfig::client(&effective)
            .await
            .map_err(|e| {
                InputError::in_file(
                    kubeconfig,
                    None,
                    None,
                    format!("cannot use kubeconfig: {e}"),
                    "check the file and --context",
                )
            })?;
        let version = client.apiserver_version().await.map_err(|e| {
            InputError::in_file(
                kubeconfig,
                None,
                None,
                format!("the cluster does not answer: {e}"),
                "check that the cluster is running and reachable",
            )
        })?;
        let run_dir = temp.path().to_path_buf();
        std::fs::create_dir_all(run_dir.join("logs"))
            .map_err(|e| EnvError::Cluster(e.to_string()))?;
        std::fs::create_dir_all(run_dir.join("pids"))
            .map_err(|e| EnvError::Cluster(e.to_string()))?;
        toolchain::CORTEX.binary("cortex")?;
        let keda_present = keda_installed(&client).await;
        let mut created = Vec::new();
        let mut startup = vec![(
            format!("existing cluster {}", version.git_version),
            Duration::ZERO,
        )];
        let keda = match (keda_present, install_keda) {
            (Ok(()), _) => None,
            (Err(why), false) => {
                return Err(InputError::in_environment("--provider existing", format!("KEDA is not ready in this cluster: {why}"), "install KEDA there, or pass --install-keda to run KEDA as host processes against it").into());
            }
            (Err(_), true) => {
                use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
                let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
                let existing: Vec<String> = crds
                    .list(&Default::default())
                    .await
                    .map(|l| {
                        l.items
                            .into_iter()
                            .filter_map(|c| c.metadata.name)
                            .collect()
                    })
                    .unwrap_or_default();
                let ns: kube::Api<k8s_openapi::api::core::v1::Namespace> =
                    kube::Api::all(client.clone());
                let keda_ns_existed = ns
                    .get_opt(crate::install::keda::NAMESPACE)
                    .await
                    .ok()
                    .flatten()
                    .is_some();
                let (ca_cert, ca_key) = crate::install::certs::generate_ca(
                    &run_dir.join("keda-ca"),
                    "keda-conformance KEDA CA",
                )
                .map_err(|e| EnvError::Cluster(e.to_string()))?;
                let t = Instant::now();
                let paths = KedaPaths {
                    dir: run_dir.join("keda"),
                    logs: run_dir.join("logs"),
                    kubeconfig: effective.clone(),
                    ca_cert,
                    ca_key,
                };
                let keda = Keda::start(&client, &paths, Duration::from_secs(120)).await?;
                startup.push(("KEDA (host processes)".to_string(), t.elapsed()));
                let now: Vec<String> = crds
                    .list(&Default::default())
                    .await
                    .map(|l| {
                        l.items
                            .into_iter()
                            .filter_map(|c| c.metadata.name)
                            .collect()
                    })
                    .unwrap_or_default();
                created.push((
                    "APIService".to_string(),
                    "v1beta1.external.metrics.k8s.io".to_string(),
                ));
                for c in now
                    .into_iter()
                    .filter(|c| c.ends_with("keda.sh") && !existing.contains(c))
                {
                    created.push(("CustomResourceDefinition".to_string(), c));
                }
                if !keda_ns_existed {
                    created.push((
                        "Namespace".to_string(),
                        crate::install::keda::NAMESPACE.to_string(),
                    ));
                }
                Some(keda)
            }
        };
        Ok(Self {
            keda,
            cluster: None,
            temp: Some(temp),
            kubeconfig: effective,
            run_dir,
            created,
            client,
            startup,
            hpa,
        })
    }

    /// The last lines of KEDA's operator and adapter logs.
    pub fn keda_logs(&self, lines: usize) -> (String, String) {
        match &self.keda {
            Some(k) => (k.operator().log_tail(lines), k.adapter().log_tail(lines)),
            None => (String::new(), String::new()),
        }
    }

    /// Stops KEDA and the cluster (local provider), or deletes exactly what this run created
    /// on an existing cluster.
    pub async fn stop(mut self) {
        if let Some(k) = self.keda.take() {
            k.stop(Duration::from_secs(5)).await;
        }
        for (kind, name) in self.created.drain(..).rev() {
            let dp = kube::api::DeleteParams::default();
            let _ = match kind.as_str() {
                "APIService" => kube::Api::<k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService>::all(self.client.clone()).delete(&name, &dp).await.map(|_| ()),
                "CustomResourceDefinition" => kube::Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(self.client.clone()).delete(&name, &dp).await.map(|_| ()),
                "Namespace" => kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(self.client.clone()).delete(&name, &dp).await.map(|_| ()),
                _ => Ok(()),
            };
        }
        drop(self.temp.take());
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

/// Whether KEDA is usable on a cluster: its ScaledObject CRD exists and the external metrics
/// APIService is Available.
async fn keda_installed(client: &kube::Client) -> Result<(), String> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    if crds
        .get_opt("scaledobjects.keda.sh")
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err("the scaledobjects.keda.sh CRD is missing".into());
    }
    let api: kube::Api<APIService> = kube::Api::all(client.clone());
    let svc = api
        .get_opt("v1beta1.external.metrics.k8s.io")
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the APIService v1beta1.external.metrics.k8s.io is missing")?;
    let available = svc
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Available" && c.status == "True");
    if available {
        Ok(())
    } else {
        Err("the APIService v1beta1.external.metrics.k8s.io is not Available".into())
    }
}
