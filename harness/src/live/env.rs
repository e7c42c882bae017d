//! The live environment shared by the scenarios of a run: a cluster from the provider, the
//! multi-tenant Mimir-API backend and KEDA, started once and torn down at the end.

use crate::backend::cortex::MimirApiBackend;
use crate::chart::capabilities::Capabilities;
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
    /// What the cluster serves, read once by discovery ([`LiveEnv::capabilities`]).
    capabilities: tokio::sync::OnceCell<Capabilities>,
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
            capabilities: tokio::sync::OnceCell::new(),
        })
    }

    /// An admin client.
    pub fn client(&self) -> &kube::Client {
        &self.client
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
                use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
                // The cluster's own external metrics (another adapter, or a KEDA that is not
                // ready) would be replaced by ours and then deleted: refuse instead.
                let apiservices: kube::Api<APIService> = kube::Api::all(client.clone());
                if let Ok(Some(theirs)) = apiservices.get_opt(EXTERNAL_METRICS_APISERVICE).await {
                    let served_by = theirs
                        .spec
                        .and_then(|s| s.service)
                        .map(|svc| {
                            format!(
                                "Service {}/{}",
                                svc.namespace.unwrap_or_default(),
                                svc.name.unwrap_or_default()
                            )
                        })
                        .unwrap_or_else(|| "the API server itself".into());
                    return Err(InputError::in_environment(
                        "--install-keda",
                        format!("the cluster already has the APIService {EXTERNAL_METRICS_APISERVICE} (served by {served_by}); KEDA as host processes would take it over, and the cluster's own external metrics would stop"),
                        "make KEDA in the cluster ready and run without --install-keda, or remove that APIService yourself first",
                    )
                    .into());
                }
                let services: kube::Api<k8s_openapi::api::core::v1::Service> =
                    kube::Api::namespaced(client.clone(), crate::install::keda::NAMESPACE);
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
                let service_existed = keda_ns_existed
                    && services
                        .list(&Default::default())
                        .await
                        .map(|l| !l.items.is_empty())
                        .unwrap_or(true);
                let started = Keda::start(&client, &paths, Duration::from_secs(120)).await;
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
                if apiservices
                    .get_opt(EXTERNAL_METRICS_APISERVICE)
                    .await
                    .ok()
                    .flatten()
                    .is_some()
                {
                    created.push((
                        "APIService".to_string(),
                        EXTERNAL_METRICS_APISERVICE.to_string(),
                    ));
                }
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
                } else if !service_existed {
                    if let Ok(list) = services.list(&Default::default()).await {
                        for svc in list.items.into_iter().filter_map(|s| s.metadata.name) {
                            created.push(("Service".to_string(), svc));
                        }
                    }
                }
                match started {
                    Ok(keda) => {
                        startup.push(("KEDA (host processes)".to_string(), t.elapsed()));
                        Some(keda)
                    }
                    Err(e) => {
                        // A half-made install is removed before the error is reported.
                        delete_created(&client, &mut created).await;
                        return Err(e.into());
                    }
                }
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
            capabilities: tokio::sync::OnceCell::new(),
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
        delete_created(&self.client, &mut self.created).await;
        drop(self.temp.take());
        if let Some(c) = self.cluster.take() {
            c.down().await;
        }
    }
}

/// The APIService KEDA's metrics adapter serves.
const EXTERNAL_METRICS_APISERVICE: &str = "v1beta1.external.metrics.k8s.io";

/// Deletes what a run created on an existing cluster, newest first. KEDA's objects may carry
/// KEDA's finalizers, which nobody handles once KEDA is stopped: those left in the CRDs this
/// run created lose their finalizers first, so the CRDs and namespaces can go.
async fn delete_created(client: &kube::Client, created: &mut Vec<(String, String)>) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let dp = kube::api::DeleteParams::default();
    for (_, name) in created
        .iter()
        .filter(|(k, _)| k == "CustomResourceDefinition")
    {
        let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
        let Ok(crd) = crds.get(name).await else {
            continue;
        };
        let Some(version) = crd.spec.versions.first().map(|v| v.name.clone()) else {
            continue;
        };
        let resource = kube::api::ApiResource {
            group: crd.spec.group.clone(),
            version: version.clone(),
            api_version: format!("{}/{version}", crd.spec.group),
            kind: crd.spec.names.kind.clone(),
            plural: crd.spec.names.plural.clone(),
        };
        let objects: kube::Api<kube::api::DynamicObject> =
            kube::Api::all_with(client.clone(), &resource);
        if let Ok(list) = objects.list(&Default::default()).await {
            for o in list.items {
                if o.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty()) {
                    continue;
                }
                let (Some(n), ns) = (o.metadata.name.clone(), o.metadata.namespace.clone()) else {
                    continue;
                };
                let api: kube::Api<kube::api::DynamicObject> = match &ns {
                    Some(ns) => kube::Api::namespaced_with(client.clone(), ns, &resource),
                    None => kube::Api::all_with(client.clone(), &resource),
                };
                let patch = serde_json::json!({"metadata": {"finalizers": null}});
                let _ = api
                    .patch(
                        &n,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(&patch),
                    )
                    .await;
            }
        }
    }
    for (kind, name) in created.drain(..).rev() {
        let _ = match kind.as_str() {
            "APIService" => kube::Api::<
                k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
            >::all(client.clone())
            .delete(&name, &dp)
            .await
            .map(|_| ()),
            "CustomResourceDefinition" => {
                kube::Api::<CustomResourceDefinition>::all(client.clone())
                    .delete(&name, &dp)
                    .await
                    .map(|_| ())
            }
            "Namespace" => kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
                .delete(&name, &dp)
                .await
                .map(|_| ()),
            "Service" => kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(
                client.clone(),
                crate::install::keda::NAMESPACE,
            )
            .delete(&name, &dp)
            .await
            .map(|_| ()),
            _ => Ok(()),
        };
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
