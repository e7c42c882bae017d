//! The admin kubeconfig every component and every client of a local cluster uses: one
//! cluster, one user (the admin client certificate), one context; credentials embedded.

use super::error::StackError;
use super::pki::{write_private, Pki};
use base64::Engine;
use std::path::Path;

/// The kubeconfig text for `server`, authenticating as the PKI's admin.
///
/// `name` names the cluster, user and context (`keda-conformance-<name>`).
pub fn render(name: &str, server: &str, pki: &Pki) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let id = format!("keda-conformance-{name}");
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {id}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {id}-admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: {id}
  context:
    cluster: {id}
    user: {id}-admin
    namespace: default
current-context: {id}
",
        ca = b64(&pki.ca_pem),
        cert = b64(&pki.admin_cert_pem),
        key = b64(&pki.admin_key_pem),
    )
}

/// Writes the kubeconfig (mode 0600).
///
/// # Errors
/// When the file cannot be written.
pub fn write(path: &Path, name: &str, server: &str, pki: &Pki) -> Result<(), StackError> {
    write_private(path, render(name, server, pki).as_bytes())
}

/// A kube client for a kubeconfig file.
///
/// # Errors
/// When the file cannot be read or parsed, or the client cannot be built.
pub async fn client(path: &Path) -> Result<kube::Client, StackError> {
    let wrap = |e: Box<dyn std::error::Error + Send + Sync>| StackError::Client {
        path: path.to_path_buf(),
        source: e,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| wrap(Box::new(e)))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| wrap(Box::new(e)))?;
    kube::Client::try_from(config).map_err(|e| wrap(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[tokio::test]
    async fn kube_rs_loads_the_kubeconfig_with_its_server_and_namespace() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::generate(&tmp.path().join("pki"), Ipv4Addr::new(10, 96, 0, 1)).unwrap();
        let path = tmp.path().join("kubeconfig");
        write(&path, "demo", "https://127.0.0.1:6443", &pki).unwrap();
        let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("keda-conformance-demo"));
        let client = client(&path).await.expect("client");
        assert_eq!(client.default_namespace(), "default");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
    }
}
