//! The `existing` provider: a cluster the user points at with `--kubeconfig` (and
//! `--context`). KEDA must be ready there unless `--install-keda`, which runs KEDA as host
//! processes against it (with a CA of its own); every object that creates is recorded in a
//! [`CreatedObjects`] guard and deleted, newest first, when the environment stops or drops.
//! The Mimir-API backend runs on this host, so KEDA must reach 127.0.0.1 here: true for
//! host-process KEDA, not for KEDA running inside a remote cluster.

use super::{EnvError, Environment, ProviderKind};
use crate::install::keda::{Keda, KedaPaths};
use crate::toolchain;
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A cluster the user already has, ready for the live tier.
pub struct ExistingEnvironment {
    // Field order is drop order: KEDA stops, then what it created is deleted, then the
    // temporary kubeconfig and state go.
    keda: Option<Keda>,
    created: CreatedObjects,
    kubeconfig: PathBuf,
    run_dir: PathBuf,
    hpa: crate::stack::HpaTiming,
    /// Holds the effective kubeconfig, KEDA's certificates and the backends' state.
    _temp: crate::cleanup::TempDir,
}

impl std::fmt::Debug for ExistingEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExistingEnvironment")
            .field("kubeconfig", &self.kubeconfig)
            .field("created", &self.created.objects)
            .finish_non_exhaustive()
    }
}

/// An object this run created on the user's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The external metrics APIService.
    ApiService(String),
    /// One of KEDA's CustomResourceDefinitions.
    Crd(String),
    /// KEDA's namespace.
    Namespace(String),
    /// A Service in KEDA's namespace.
    Service(String),
}

/// The objects this run created on the user's cluster: deleted, newest first, by
/// [`CreatedObjects::delete_now`] or, failing that, when the guard drops.
pub struct CreatedObjects {
    objects: Vec<Created>,
    /// The kubeconfig a drop uses to connect afresh (it may run outside any runtime).
    kubeconfig: PathBuf,
}

impl CreatedObjects {
    fn new(kubeconfig: &Path) -> Self {
        CreatedObjects {
            objects: Vec::new(),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    fn push(&mut self, object: Created) {
        self.objects.push(object);
    }

    /// Deletes every recorded object now.
    pub async fn delete_now(&mut self, client: &kube::Client) {
        delete_created(client, std::mem::take(&mut self.objects)).await;
    }
}

impl Drop for CreatedObjects {
    fn drop(&mut self) {
        let objects = std::mem::take(&mut self.objects);
        if objects.is_empty() {
            return;
        }
        // A drop may run on a runtime worker or outside any runtime: delete from a thread of
        // its own with its own client, and wait for it.
        let kubeconfig = self.kubeconfig.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = crate::stack::kubeconfig::client(&kubeconfig).await {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(60),
                        delete_created(&client, objects),
                    )
                    .await;
                }
            });
        })
        .join();
    }
}

impl Environment for ExistingEnvironment {
    fn provider(&self) -> ProviderKind {
        ProviderKind::Existing
    }

    fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    fn hpa(&self) -> crate::stack::HpaTiming {
        self.hpa
    }

    fn keda_logs(&self, lines: usize) -> (String, String) {
        crate::install::keda::log_tails(self.keda.as_ref(), lines)
    }

    fn stop(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Some(k) = self.keda.take() {
                k.stop(Duration::from_secs(5)).await;
            }
            if let Ok(client) = crate::stack::kubeconfig::client(&self.kubeconfig).await {
                self.created.delete_now(&client).await;
            }
            drop(self);
        })
    }
}

impl ExistingEnvironment {
    /// Connects to the cluster of `kubeconfig` (narrowed to `context`), checks that KEDA is
    /// ready there or, with `install_keda`, starts it as host processes. Returns the
    /// environment, an admin client and how long each part took.
    ///
    /// # Errors
    /// [`EnvError::Input`] for a missing kubeconfig or context, an unreachable cluster, or KEDA
    /// missing without `install_keda`.
    pub async fn start(
        kubeconfig: &std::path::Path,
        context: Option<&str>,
        install_keda: bool,
        hpa: crate::stack::HpaTiming,
    ) -> Result<(Self, kube::Client, Vec<(String, Duration)>), EnvError> {
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
        let mut created = CreatedObjects::new(&effective);
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
                let existing: Vec<String> = crd_names(&crds).await;
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
                eprintln!(
                    "  starting KEDA {} as host processes against the cluster",
                    toolchain::KEDA.version()
                );
                // An interrupt here must not leave half an install on the user's cluster: the
                // start is abandoned (its processes die with it) and what it created goes.
                let stop = crate::cleanup::stop_token();
                let started = tokio::select! {
                    biased;
                    () = stop.stopped() => None,
                    r = Keda::start(&client, &paths, Duration::from_secs(120)) => Some(r),
                };
                let now: Vec<String> = crd_names(&crds).await;
                if apiservices
                    .get_opt(EXTERNAL_METRICS_APISERVICE)
                    .await
                    .ok()
                    .flatten()
                    .is_some()
                {
                    created.push(Created::ApiService(EXTERNAL_METRICS_APISERVICE.to_string()));
                }
                for c in now
                    .into_iter()
                    .filter(|c| c.ends_with("keda.sh") && !existing.contains(c))
                {
                    created.push(Created::Crd(c));
                }
                if !keda_ns_existed {
                    created.push(Created::Namespace(
                        crate::install::keda::NAMESPACE.to_string(),
                    ));
                } else if !service_existed {
                    if let Ok(list) = services.list(&Default::default()).await {
                        for svc in list.items.into_iter().filter_map(|s| s.metadata.name) {
                            created.push(Created::Service(svc));
                        }
                    }
                }
                match started {
                    Some(Ok(keda)) => {
                        startup.push(("KEDA (host processes)".to_string(), t.elapsed()));
                        Some(keda)
                    }
                    Some(Err(e)) => {
                        // A half-made install is removed before the error is reported.
                        created.delete_now(&client).await;
                        return Err(e.into());
                    }
                    None => {
                        created.delete_now(&client).await;
                        return Err(EnvError::Interrupted);
                    }
                }
            }
        };
        Ok((
            Self {
                keda,
                created,
                kubeconfig: effective,
                run_dir,
                hpa,
                _temp: temp,
            },
            client,
            startup,
        ))
    }
}

/// The APIService KEDA's metrics adapter serves.
const EXTERNAL_METRICS_APISERVICE: &str = "v1beta1.external.metrics.k8s.io";

/// The names of the cluster's CustomResourceDefinitions (none when they cannot be listed).
async fn crd_names(
    crds: &kube::Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    >,
) -> Vec<String> {
    crds.list(&Default::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|c| c.metadata.name)
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes what a run created on an existing cluster, newest first. KEDA's objects may carry
/// KEDA's finalizers, which nobody handles once KEDA is stopped: those left in the CRDs this
/// run created lose their finalizers first, so the CRDs and namespaces can go.
async fn delete_created(client: &kube::Client, created: Vec<Created>) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let dp = kube::api::DeleteParams::default();
    for name in created.iter().filter_map(|c| match c {
        Created::Crd(name) => Some(name),
        _ => None,
    }) {
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
    for object in created.into_iter().rev() {
        let _ = match object {
            Created::ApiService(name) => kube::Api::<
                k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
            >::all(client.clone())
            .delete(&name, &dp)
            .await
            .map(|_| ()),
            Created::Crd(name) => kube::Api::<CustomResourceDefinition>::all(client.clone())
                .delete(&name, &dp)
                .await
                .map(|_| ()),
            Created::Namespace(name) => {
                kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
                    .delete(&name, &dp)
                    .await
                    .map(|_| ())
            }
            Created::Service(name) => kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(
                client.clone(),
                crate::install::keda::NAMESPACE,
            )
            .delete(&name, &dp)
            .await
            .map(|_| ()),
        };
    }
}

/// Whether KEDA is usable on a cluster: its ScaledObject CRD exists and the external metrics
/// APIService is Available.
pub(crate) async fn keda_installed(client: &kube::Client) -> Result<(), String> {
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
