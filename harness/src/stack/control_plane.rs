//! Starts and stops one control plane: etcd -> kube-apiserver -> kube-controller-manager ->
//! kube-scheduler -> kwok, each waited for by condition (etcd healthy, apiserver /readyz ok,
//! N fake nodes Ready, controller-manager and scheduler leases held).

use super::binaries::Binaries;
use super::components::{self, Layout, Ports};
use super::config::StackConfig;
use super::error::{chain, StackError};
use super::kubeconfig;
use super::kwok;
use super::pki::{private_dir, Pki};
use super::process::{ManagedProcess, ProcessSpec};
use super::wait::{Probe, Wait};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long each phase of a start took (the bench reports these).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartupTimings {
    /// Directories, ports, PKI, kubeconfig and kwok config.
    pub prepare: Duration,
    /// etcd start to healthy.
    pub etcd: Duration,
    /// kube-apiserver start to /readyz ok.
    pub apiserver: Duration,
    /// controller-manager, scheduler and kwok start to every fake node Ready.
    pub nodes: Duration,
    /// Then to both leases held and the default ServiceAccount created.
    pub controllers: Duration,
    /// Everything: call to ready.
    pub total: Duration,
}

/// A running control plane. Dropping it kills every component (SIGKILL to each process
/// group); [`ControlPlane::stop`] asks them to stop first.
pub struct ControlPlane {
    layout: Layout,
    ports: Ports,
    timings: StartupTimings,
    client: kube::Client,
    processes: Vec<ManagedProcess>,
    /// Held while the components run (see [`super::ports`]); dropped after them.
    _port_claims: Vec<super::ports::PortClaim>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("layout", &self.layout)
            .field("ports", &self.ports)
            .field("timings", &self.timings)
            .field("processes", &self.processes)
            .finish_non_exhaustive()
    }
}

/// How often a start is tried when a component finds its port taken (ports are chosen free,
/// but another process may bind one before the component does).
const START_ATTEMPTS: u32 = 3;

/// Progress callback: one line per finished phase, e.g. "kube-apiserver ready (6.1s)".
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

fn spawn(
    layout: &Layout,
    name: &str,
    program: &Path,
    args: Vec<String>,
) -> Result<ManagedProcess, StackError> {
    ManagedProcess::spawn(&ProcessSpec {
        name: name.to_string(),
        program: program.to_path_buf(),
        args,
        log: layout.log(name),
        pid_file: layout.pid_file(name),
    })
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl ControlPlane {
    /// Starts a control plane whose state lives in `run_dir` (which must exist), and returns
    /// once it is ready: etcd healthy, apiserver /readyz ok, `config.nodes` fake nodes Ready,
    /// controller-manager and scheduler leases held, `default` ServiceAccount present.
    ///
    /// `name` names the kubeconfig's cluster, user and context.
    ///
    /// # Errors
    /// Setup failures (files, PKI, ports, spawning) and readiness failures: a component that
    /// exits while being waited for (with its exit status and log tail), or a condition that
    /// does not hold within `config.ready_timeout` (with what was last seen and the log).
    ///
    /// # Timeouts
    /// Each readiness condition separately gets `config.ready_timeout`.
    pub async fn start(
        run_dir: &Path,
        name: &str,
        binaries: &Binaries,
        config: &StackConfig,
        progress: Progress<'_>,
    ) -> Result<Self, StackError> {
        let t0 = Instant::now();
        let mut attempt = 1;
        loop {
            match Self::start_once(t0, run_dir, name, binaries, config, progress).await {
                Err(e) if attempt < START_ATTEMPTS && e.port_clash().is_some() => {
                    progress(&format!(
                        "{} found its port taken (address already in use); retrying with new ports",
                        e.port_clash().unwrap_or("a component")
                    ));
                    let layout = Layout::new(run_dir);
                    for dir in [&layout.etcd_data, &layout.pki, &layout.serving_certs] {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn start_once(
        t0: Instant,
        run_dir: &Path,
        name: &str,
        binaries: &Binaries,
        config: &StackConfig,
        progress: Progress<'_>,
    ) -> Result<Self, StackError> {
        let timeout = config.ready_timeout;
        let layout = Layout::new(run_dir);
        for dir in [
            &layout.logs,
            &layout.pids,
            &layout.etcd_data,
            &layout.serving_certs,
        ] {
            private_dir(dir)?;
        }
        let (ports, port_claims) = Ports::reserve().map_err(StackError::Ports)?;
        let pki = Pki::generate(&layout.pki, components::SERVICE_IP)?;
        kubeconfig::write(&layout.kubeconfig, name, &ports.server(), &pki)?;
        kwok::write_config(&binaries.kwok_stages, &layout.kwok_config)?;
        let mut timings = StartupTimings {
            prepare: t0.elapsed(),
            ..Default::default()
        };

        let mut processes = vec![spawn(
            &layout,
            components::ETCD,
            &binaries.etcd,
            components::etcd_args(&layout, &pki, &ports),
        )?];
        // etcd's health is read the way the API server reads etcd: TLS, with a client
        // certificate from the cluster CA.
        let tls_error = |e: reqwest::Error| StackError::Client {
            path: layout.pki.clone(),
            source: Box::new(e),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .add_root_certificate(
                reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).map_err(tls_error)?,
            )
            .identity(
                reqwest::Identity::from_pem(pki.etcd_client_identity_pem.as_bytes())
                    .map_err(tls_error)?,
            )
            .build()
            .map_err(|e| StackError::Client {
                path: layout.kubeconfig.clone(),
                source: Box::new(e),
            })?;
        let health = format!("{}/health", ports.etcd_url());
        let (http, health) = (&http, &health);
        timings.etcd = Wait::new("etcd /health to report healthy", timeout)
            .watching(&processes)
            .until(|| async move {
                match http.get(health).send().await {
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        if status.is_success() && body.contains(r#""health":"true""#) {
                            Probe::Ready
                        } else {
                            Probe::NotYet(format!("GET {health}: {status} {}", body.trim()))
                        }
                    }
                    Err(e) => Probe::NotYet(format!("GET {health}: {}", chain(&e))),
                }
            })
            .await?;
        progress(&format!("etcd healthy ({})", secs(timings.etcd)));

        processes.push(spawn(
            &layout,
            components::APISERVER,
            &binaries.kube_apiserver,
            components::apiserver_args(&layout, &pki, &ports),
        )?);
        let client = kubeconfig::client(&layout.kubeconfig).await?;
        let api = &client;
        timings.apiserver = Wait::new("kube-apiserver /readyz to answer ok", timeout)
            .watching(processes.iter().rev())
            .until(|| async move {
                let req = http::Request::get("/readyz").body(Vec::new());
                let Ok(req) = req else {
                    return Probe::NotYet("cannot build the /readyz request".into());
                };
                match api.request_text(req).await {
                    Ok(body) if body.trim() == "ok" => Probe::Ready,
                    Ok(body) => Probe::NotYet(format!("/readyz said {:?}", body.trim())),
                    Err(e) => Probe::NotYet(format!("/readyz: {}", chain(&e))),
                }
            })
            .await?;
        progress(&format!(
            "kube-apiserver ready ({})",
            secs(timings.apiserver)
        ));

        let t_nodes = Instant::now();
        processes.push(spawn(
            &layout,
            components::CONTROLLER_MANAGER,
            &binaries.kube_controller_manager,
            components::controller_manager_args(&layout, &pki, &ports, &config.hpa),
        )?);
        processes.push(spawn(
            &layout,
            components::SCHEDULER,
            &binaries.kube_scheduler,
            components::scheduler_args(&layout, &ports),
        )?);
        processes.push(spawn(
            &layout,
            components::KWOK,
            &binaries.kwok,
            components::kwok_args(&layout),
        )?);
        let nodes: Api<Node> = Api::all(client.clone());
        let names: Vec<String> = (0..config.nodes).map(kwok::node_name).collect();
        for name in &names {
            let node = kwok::fake_node(name, &config.node_resources);
            nodes
                .create(&PostParams::default(), &node)
                .await
                .map_err(|source| StackError::Api {
                    what: format!("node {name}"),
                    source: Box::new(source),
                })?;
        }
        let want = names.len();
        let (nodes, names) = (&nodes, &names);
        let kwok_proc = processes.last().into_iter();
        let everyone = processes.iter().rev().skip(1);
        timings.nodes = Wait::new(format!("{want} fake node(s) to be Ready"), timeout)
            .watching(kwok_proc.chain(everyone))
            .until(|| async move {
                match nodes.list(&ListParams::default()).await {
                    Ok(list) => {
                        let ready: Vec<&str> = list
                            .items
                            .iter()
                            .filter(|n| kwok::node_is_ready(n))
                            .filter_map(|n| n.metadata.name.as_deref())
                            .filter(|n| names.iter().any(|w| w == n))
                            .collect();
                        if ready.len() == want {
                            Probe::Ready
                        } else {
                            Probe::NotYet(format!(
                                "{} of {want} Ready ({})",
                                ready.len(),
                                if ready.is_empty() {
                                    "none".to_string()
                                } else {
                                    ready.join(", ")
                                }
                            ))
                        }
                    }
                    Err(e) => Probe::NotYet(format!("listing nodes: {}", chain(&e))),
                }
            })
            .await?;
        timings.nodes = t_nodes.elapsed();
        progress(&format!("{want} node(s) Ready ({})", secs(timings.nodes)));

        let t_controllers = Instant::now();
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
        let leases = &leases;
        for component in [components::CONTROLLER_MANAGER, components::SCHEDULER] {
            let proc = processes.iter().find(|p| p.name() == component);
            Wait::new(format!("lease kube-system/{component} to be held"), timeout)
                .watching(proc.into_iter().chain(processes.iter().take(2)))
                .until(|| async move {
                    match leases.get_opt(component).await {
                        Ok(Some(lease)) => match lease.spec.and_then(|s| s.holder_identity) {
                            Some(holder) if !holder.is_empty() => Probe::Ready,
                            _ => Probe::NotYet("the lease exists but has no holder".into()),
                        },
                        Ok(None) => Probe::NotYet("no such lease yet".into()),
                        Err(e) => Probe::NotYet(format!("reading the lease: {}", chain(&e))),
                    }
                })
                .await?;
        }
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        let accounts = &accounts;
        let kcm = processes
            .iter()
            .find(|p| p.name() == components::CONTROLLER_MANAGER);
        Wait::new("ServiceAccount default/default to be created", timeout)
            .watching(kcm)
            .until(|| async move {
                match accounts.get_opt("default").await {
                    Ok(Some(_)) => Probe::Ready,
                    Ok(None) => Probe::NotYet("not created yet".into()),
                    Err(e) => Probe::NotYet(format!("reading it: {}", chain(&e))),
                }
            })
            .await?;
        timings.controllers = t_controllers.elapsed();
        progress(&format!(
            "controller-manager and scheduler leases held ({})",
            secs(timings.controllers)
        ));
        timings.total = t0.elapsed();
        Ok(Self {
            layout,
            ports,
            timings,
            client,
            processes,
            _port_claims: port_claims,
        })
    }

    /// The apiserver URL, e.g. `https://127.0.0.1:40123`.
    pub fn server(&self) -> String {
        self.ports.server()
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.layout.kubeconfig
    }

    /// Paths inside the run directory.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The loopback ports in use.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// How long each phase of the start took.
    pub fn timings(&self) -> StartupTimings {
        self.timings
    }

    /// A client authenticated as the cluster admin.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The component processes, in start order.
    pub fn processes(&self) -> &[ManagedProcess] {
        &self.processes
    }

    /// The first component found to have exited: its name, exit and log.
    pub fn exited_component(&self) -> Option<(String, std::process::ExitStatus, PathBuf)> {
        self.processes.iter().find_map(|p| {
            p.exit_status()
                .map(|s| (p.name().to_string(), s, p.log().to_path_buf()))
        })
    }

    /// Resident memory of each component now (`VmRSS`), in bytes, in start order.
    pub fn rss(&self) -> Vec<(String, u64)> {
        self.processes
            .iter()
            .map(|p| (p.name().to_string(), p.rss_bytes().unwrap_or(0)))
            .collect()
    }

    /// Asks every component to stop (SIGTERM, newest first), waits up to `grace` in total,
    /// then kills what is left.
    pub async fn stop(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for p in self.processes.iter().rev() {
            p.terminate();
        }
        for p in self.processes.iter().rev() {
            p.exited_by(deadline).await;
        }
        drop(self);
    }
}
