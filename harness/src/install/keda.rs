//! KEDA on a local cluster: CRDs from the pinned KEDA module applied server-side, the operator
//! and the metrics adapter as host processes (operator <-> adapter gRPC over mTLS with certs
//! from the cluster CA), and the adapter registered as `v1beta1.external.metrics.k8s.io`
//! through an ExternalName Service that resolves to the host process.

use super::apply::{apply_yaml, ApplyError};
use super::certs::{issue_leaf, CertError};
use crate::stack::process::{ManagedProcess, ProcessSpec};
use crate::stack::wait::{Probe, Wait, WaitError};
use crate::toolchain;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The namespace KEDA's cluster objects live in.
pub const NAMESPACE: &str = "keda";

/// Where KEDA's files go and what it trusts.
#[derive(Debug, Clone)]
pub struct KedaPaths {
    /// Directory for KEDA's certs (created 0700).
    pub dir: PathBuf,
    /// Directory for logs and pid files.
    pub logs: PathBuf,
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Cluster CA certificate.
    pub ca_cert: PathBuf,
    /// Cluster CA key.
    pub ca_key: PathBuf,
}

/// Why KEDA did not come up.
#[derive(Debug, thiserror::Error)]
pub enum KedaError {
    /// Environment (binaries, CRDs).
    #[error(transparent)]
    Input(#[from] crate::error::InputError),
    /// Certificates.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// Applying objects.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Spawning.
    #[error(transparent)]
    Process(#[from] crate::stack::error::StackError),
    /// Readiness.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// Files and ports.
    #[error("KEDA setup: {0}")]
    Setup(String),
}

/// KEDA running against a cluster.
#[derive(Debug)]
pub struct Keda {
    operator: ManagedProcess,
    adapter: ManagedProcess,
    probe_port: u16,
    adapter_port: u16,
    /// Its ports, claimed while it runs (see [`crate::stack::ports`]).
    _ports: Vec<crate::stack::ports::PortClaim>,
}

fn env_program() -> Result<PathBuf, KedaError> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("env"))
                .find(|c| c.is_file())
        })
        .ok_or_else(|| KedaError::Setup("`env` not found on PATH".into()))
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The Service and APIService that route `external.metrics.k8s.io` to the adapter on the host.
pub fn registration_yaml(adapter_port: u16, ca_pem: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
---
apiVersion: v1
kind: Service
metadata:
  name: keda-metrics-apiserver
  namespace: {NAMESPACE}
spec:
  type: ExternalName
  externalName: localhost
  ports:
    - name: https
      port: {adapter_port}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.external.metrics.k8s.io
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  caBundle: {ca}
  service:
    name: keda-metrics-apiserver
    namespace: {NAMESPACE}
    port: {adapter_port}
"#,
        ca = base64(ca_pem.as_bytes())
    )
}

impl Keda {
    /// Installs and starts KEDA; returns when the operator is ready and the external metrics
    /// APIService is Available.
    ///
    /// # Errors
    /// [`KedaError`] naming the step, with the component's log tail when a process exits or a
    /// condition does not hold within `timeout`.
    ///
    /// # Timeouts
    /// Each readiness condition gets `timeout`.
    pub async fn start(
        client: &kube::Client,
        paths: &KedaPaths,
        timeout: Duration,
    ) -> Result<Self, KedaError> {
        let operator_bin = toolchain::KEDA.binary("keda-operator")?;
        let adapter_bin = toolchain::KEDA.binary("keda-adapter")?;
        let crd_dir = toolchain::keda_crd_dir()?;
        let mut crds: Vec<PathBuf> = std::fs::read_dir(&crd_dir)
            .map_err(|e| KedaError::Setup(format!("{}: {e}", crd_dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("yaml"))
            .collect();
        crds.sort();
        for crd in &crds {
            let text = std::fs::read_to_string(crd)
                .map_err(|e| KedaError::Setup(format!("{}: {e}", crd.display())))?;
            apply_yaml(client, &text).await?;
        }
        wait_crds_established(client, timeout).await?;

        let certs = paths.dir.join("certs");
        // The aggregator verifies the adapter as <service>.<namespace>.svc (the ExternalName
        // Service only decides where it connects).
        issue_leaf(
            &paths.ca_cert,
            &paths.ca_key,
            &certs,
            "keda",
            &[
                "keda-metrics-apiserver.keda.svc",
                "keda-metrics-apiserver.keda.svc.cluster.local",
                "keda-operator.keda.svc",
            ],
        )?;
        let claims =
            crate::stack::ports::claim(5).map_err(|e| KedaError::Setup(format!("ports: {e}")))?;
        let ports: Vec<u16> = claims
            .iter()
            .map(crate::stack::ports::PortClaim::port)
            .collect();
        let (metrics_port, probe_port, grpc_port, adapter_port, adapter_metrics_port) =
            (ports[0], ports[1], ports[2], ports[3], ports[4]);
        let env = env_program()?;
        let kubeconfig = paths.kubeconfig.display().to_string();
        let common_env = vec![
            "WATCH_NAMESPACE=".to_string(),
            format!("KEDA_CLUSTER_OBJECT_NAMESPACE={NAMESPACE}"),
            format!("POD_NAMESPACE={NAMESPACE}"),
            format!("KUBECONFIG={kubeconfig}"),
            "OPERATOR_NAME=keda-operator".to_string(),
        ];
        let certs_s = certs.display().to_string();
        let mut op_args = common_env.clone();
        op_args.push(operator_bin.display().to_string());
        op_args.extend([
            format!("--metrics-bind-address=127.0.0.1:{metrics_port}"),
            format!("--health-probe-bind-address=127.0.0.1:{probe_port}"),
            format!("--metrics-service-bind-address=127.0.0.1:{grpc_port}"),
            format!("--cert-dir={certs_s}"),
            "--enable-cert-rotation=false".into(),
            "--enable-webhook-patching=false".into(),
            "--enable-apiservice-patching=false".into(),
            "--leader-elect=false".into(),
            "--zap-log-level=info".into(),
            "--zap-encoder=console".into(),
        ]);
        let operator = ManagedProcess::spawn(&ProcessSpec {
            name: "keda-operator".into(),
            program: env.clone(),
            args: op_args,
            log: paths.logs.join("keda-operator.log"),
            pid_file: paths.logs.join("keda-operator.pid"),
        })?;
        let mut ad_args = common_env;
        ad_args.push(adapter_bin.display().to_string());
        ad_args.extend([
            format!("--secure-port={adapter_port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--tls-cert-file={certs_s}/tls.crt"),
            format!("--tls-private-key-file={certs_s}/tls.key"),
            format!("--cert-dir={certs_s}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            format!("--lister-kubeconfig={kubeconfig}"),
            format!("--kubeconfig={kubeconfig}"),
            format!("--metrics-service-address=127.0.0.1:{grpc_port}"),
            "--metrics-service-grpc-authority=localhost".into(),
            format!("--port={adapter_metrics_port}"),
        ]);
        let adapter = ManagedProcess::spawn(&ProcessSpec {
            name: "keda-adapter".into(),
            program: env,
            args: ad_args,
            log: paths.logs.join("keda-adapter.log"),
            pid_file: paths.logs.join("keda-adapter.pid"),
        })?;
        let keda = Self {
            operator,
            adapter,
            probe_port,
            adapter_port,
            _ports: claims,
        };

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| KedaError::Setup(e.to_string()))?;
        let readyz = format!("http://127.0.0.1:{probe_port}/readyz");
        Wait::new("keda-operator /readyz", timeout)
            .watching([&keda.operator])
            .until(|| {
                let http = http.clone();
                let url = readyz.clone();
                async move {
                    match http.get(&url).send().await {
                        Ok(r) if r.status().is_success() => Probe::Ready,
                        Ok(r) => Probe::NotYet(format!("/readyz {}", r.status())),
                        Err(e) => Probe::NotYet(format!("/readyz: {e}")),
                    }
                }
            })
            .await?;
        let ca_pem = std::fs::read_to_string(&paths.ca_cert)
            .map_err(|e| KedaError::Setup(format!("{}: {e}", paths.ca_cert.display())))?;
        apply_yaml(client, &registration_yaml(adapter_port, &ca_pem)).await?;
        let apiservices: kube::Api<
            k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
        > = kube::Api::all(client.clone());
        Wait::new(
            "APIService v1beta1.external.metrics.k8s.io Available",
            timeout,
        )
        .watching([&keda.adapter, &keda.operator])
        .log(keda.adapter.log().to_path_buf())
        .until(|| {
            let api = apiservices.clone();
            async move {
                match api.get("v1beta1.external.metrics.k8s.io").await {
                    Ok(s) => {
                        let cond = s
                            .status
                            .and_then(|st| st.conditions)
                            .unwrap_or_default()
                            .into_iter()
                            .find(|c| c.type_ == "Available");
                        match cond {
                            Some(c) if c.status == "True" => Probe::Ready,
                            Some(c) => Probe::NotYet(format!(
                                "Available={} ({}: {})",
                                c.status,
                                c.reason.unwrap_or_default(),
                                c.message.unwrap_or_default()
                            )),
                            None => Probe::NotYet("no Available condition yet".into()),
                        }
                    }
                    Err(e) => Probe::NotYet(e.to_string()),
                }
            }
        })
        .await?;
        Ok(keda)
    }

    /// The operator process.
    pub fn operator(&self) -> &ManagedProcess {
        &self.operator
    }

    /// The metrics adapter process.
    pub fn adapter(&self) -> &ManagedProcess {
        &self.adapter
    }

    /// The operator's health port.
    pub fn probe_port(&self) -> u16 {
        self.probe_port
    }

    /// The adapter's secure port.
    pub fn adapter_port(&self) -> u16 {
        self.adapter_port
    }

    /// Stops both processes (operator last, so the adapter's errors stay out of its log).
    pub async fn stop(self, grace: Duration) {
        self.adapter.stop(grace).await;
        self.operator.stop(grace).await;
    }
}

async fn wait_crds_established(client: &kube::Client, timeout: Duration) -> Result<(), WaitError> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    Wait::new("KEDA CRDs Established", timeout)
        .until(|| {
            let api = api.clone();
            async move {
                let names = [
                    "scaledobjects.keda.sh",
                    "scaledjobs.keda.sh",
                    "triggerauthentications.keda.sh",
                    "clustertriggerauthentications.keda.sh",
                ];
                for n in names {
                    match api.get(n).await {
                        Ok(crd) => {
                            let ok = crd
                                .status
                                .and_then(|s| s.conditions)
                                .unwrap_or_default()
                                .iter()
                                .any(|c| c.type_ == "Established" && c.status == "True");
                            if !ok {
                                return Probe::NotYet(format!("{n} not Established"));
                            }
                        }
                        Err(e) => return Probe::NotYet(format!("{n}: {e}")),
                    }
                }
                Probe::Ready
            }
        })
        .await
        .map(|_| ())
}

/// The last `lines` lines of the operator's and the adapter's logs (empty without KEDA).
pub fn log_tails(keda: Option<&Keda>, lines: usize) -> (String, String) {
    match keda {
        Some(k) => (k.operator().log_tail(lines), k.adapter().log_tail(lines)),
        None => (String::new(), String::new()),
    }
}

/// The path of a file under `dir`, for logs.
pub fn log_path(dir: &Path, component: &str) -> PathBuf {
    dir.join(format!("{component}.log"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b"hello"), "aGVsbG8=");
        assert_eq!(super::base64(b"hi!"), "aGkh");
        assert_eq!(super::base64(b"h"), "aA==");
    }
}
