//! The cluster's PKI, generated in Rust with rcgen: a CA, the apiserver's serving
//! certificate, the admin client certificate (O=system:masters), a front-proxy CA and client
//! certificate for the aggregation layer, and the service-account key pair. Keys are ECDSA
//! P-256; files are 0600 in a 0700 directory.

use super::error::StackError;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Common name of the front-proxy client certificate; the apiserver's
/// `--requestheader-allowed-names` lists exactly this name.
pub const FRONT_PROXY_CLIENT_CN: &str = "front-proxy-client";

/// DNS names in the apiserver's serving certificate (IP addresses are added separately).
pub const APISERVER_DNS_NAMES: [&str; 5] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
];

/// Paths of the generated files, plus the PEM text a kubeconfig embeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pki {
    /// The 0700 directory holding every file below.
    pub dir: PathBuf,
    /// Cluster CA certificate (also `--client-ca-file`).
    pub ca_cert: PathBuf,
    /// Cluster CA key.
    pub ca_key: PathBuf,
    /// kube-apiserver serving certificate.
    pub apiserver_cert: PathBuf,
    /// kube-apiserver serving key.
    pub apiserver_key: PathBuf,
    /// Admin client certificate (CN=kubernetes-admin, O=system:masters).
    pub admin_cert: PathBuf,
    /// Admin client key.
    pub admin_key: PathBuf,
    /// Front-proxy CA certificate (`--requestheader-client-ca-file`).
    pub front_proxy_ca_cert: PathBuf,
    /// Front-proxy CA key.
    pub front_proxy_ca_key: PathBuf,
    /// Front-proxy client certificate (`--proxy-client-cert-file`).
    pub front_proxy_client_cert: PathBuf,
    /// Front-proxy client key (`--proxy-client-key-file`).
    pub front_proxy_client_key: PathBuf,
    /// etcd's certificate (serving and peer: server and client auth, for 127.0.0.1).
    pub etcd_cert: PathBuf,
    /// etcd's key.
    pub etcd_key: PathBuf,
    /// kube-apiserver's client certificate for etcd (`--etcd-certfile`).
    pub etcd_client_cert: PathBuf,
    /// kube-apiserver's client key for etcd (`--etcd-keyfile`).
    pub etcd_client_key: PathBuf,
    /// The etcd client certificate and key as one PEM (the harness's own health probe).
    pub etcd_client_identity_pem: String,
    /// Service-account signing key (PKCS#8).
    pub service_account_key: PathBuf,
    /// Service-account public key (SubjectPublicKeyInfo).
    pub service_account_pub: PathBuf,
    /// The CA certificate as PEM.
    pub ca_pem: String,
    /// The admin client certificate as PEM.
    pub admin_cert_pem: String,
    /// The admin client key as PEM.
    pub admin_key_pem: String,
}

/// Creates a directory (and missing parents) with mode 0700.
///
/// # Errors
/// When the directory cannot be created.
pub fn private_dir(path: &Path) -> Result<(), StackError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| StackError::io("create directory", path, e))
}

/// Writes a file with mode 0600 (created fresh, or truncated).
///
/// # Errors
/// When the file cannot be written.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), StackError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StackError::io("create", path, e))?;
    f.write_all(contents)
        .map_err(|e| StackError::io("write", path, e))
}

fn key(what: &'static str) -> Result<KeyPair, StackError> {
    KeyPair::generate().map_err(|source| StackError::Pki { what, source })
}

fn base_params(common_name: &str, organization: Option<&str>) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365);
    params.use_authority_key_identifier_extension = true;
    params
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = base_params(common_name, None);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn leaf_params(
    common_name: &str,
    organization: Option<&str>,
    usage: ExtendedKeyUsagePurpose,
) -> CertificateParams {
    let mut params = base_params(common_name, organization);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params
}

/// A CA: its certificate as PEM and the issuer that signs leaves.
struct Ca {
    pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(common_name: &str, what: &'static str) -> Result<Ca, StackError> {
    let key = key(what)?;
    let params = ca_params(common_name);
    let cert = params
        .self_signed(&key)
        .map_err(|source| StackError::Pki { what, source })?;
    Ok(Ca {
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        issuer: Issuer::new(params, key),
    })
}

fn issue(
    ca: &Ca,
    params: &CertificateParams,
    what: &'static str,
) -> Result<(String, String), StackError> {
    let key = key(what)?;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|source| StackError::Pki { what, source })?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl Pki {
    /// Generates every key and certificate into `dir` (created 0700).
    ///
    /// `service_ip` is the first address of the service CIDR (the `kubernetes` Service's
    /// ClusterIP), which the serving certificate must name.
    ///
    /// # Errors
    /// When a key or certificate cannot be generated or a file cannot be written.
    pub fn generate(dir: &Path, service_ip: Ipv4Addr) -> Result<Self, StackError> {
        private_dir(dir)?;
        let ca = new_ca("keda-conformance-ca", "cluster CA")?;
        let front_proxy_ca = new_ca("keda-conformance-front-proxy-ca", "front-proxy CA")?;

        let mut serving = leaf_params("kube-apiserver", None, ExtendedKeyUsagePurpose::ServerAuth);
        let mut sans: Vec<SanType> = Vec::new();
        for name in APISERVER_DNS_NAMES {
            sans.push(SanType::DnsName(name.try_into().map_err(|source| {
                StackError::Pki {
                    what: "apiserver serving certificate",
                    source,
                }
            })?));
        }
        sans.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        sans.push(SanType::IpAddress(IpAddr::V4(service_ip)));
        serving.subject_alt_names = sans;
        let (apiserver_pem, apiserver_key_pem) =
            issue(&ca, &serving, "apiserver serving certificate")?;

        let admin = leaf_params(
            "kubernetes-admin",
            Some("system:masters"),
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (admin_pem, admin_key_pem) = issue(&ca, &admin, "admin client certificate")?;

        let proxy_client = leaf_params(
            FRONT_PROXY_CLIENT_CN,
            None,
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (proxy_pem, proxy_key_pem) = issue(
            &front_proxy_ca,
            &proxy_client,
            "front-proxy client certificate",
        )?;

        // etcd answers only TLS clients with a certificate from the cluster CA (Secrets live
        // in etcd: no other local user may read them).
        let mut etcd = leaf_params("etcd", None, ExtendedKeyUsagePurpose::ServerAuth);
        etcd.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
        etcd.subject_alt_names = vec![
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::DnsName("localhost".try_into().map_err(|source| StackError::Pki {
                what: "etcd certificate",
                source,
            })?),
        ];
        let (etcd_pem, etcd_key_pem) = issue(&ca, &etcd, "etcd certificate")?;
        let etcd_client = leaf_params(
            "kube-apiserver-etcd-client",
            None,
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (etcd_client_pem, etcd_client_key_pem) =
            issue(&ca, &etcd_client, "etcd client certificate")?;

        let sa = key("service-account key")?;

        let pki = Self {
            dir: dir.to_path_buf(),
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            apiserver_cert: dir.join("apiserver.crt"),
            apiserver_key: dir.join("apiserver.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            front_proxy_ca_cert: dir.join("front-proxy-ca.crt"),
            front_proxy_ca_key: dir.join("front-proxy-ca.key"),
            front_proxy_client_cert: dir.join("front-proxy-client.crt"),
            front_proxy_client_key: dir.join("front-proxy-client.key"),
            etcd_cert: dir.join("etcd.crt"),
            etcd_key: dir.join("etcd.key"),
            etcd_client_cert: dir.join("apiserver-etcd-client.crt"),
            etcd_client_key: dir.join("apiserver-etcd-client.key"),
            etcd_client_identity_pem: format!("{etcd_client_pem}{etcd_client_key_pem}"),
            service_account_key: dir.join("sa.key"),
            service_account_pub: dir.join("sa.pub"),
            ca_pem: ca.pem.clone(),
            admin_cert_pem: admin_pem.clone(),
            admin_key_pem: admin_key_pem.clone(),
        };
        for (path, contents) in [
            (&pki.ca_cert, ca.pem.as_str()),
            (&pki.ca_key, ca.key_pem.as_str()),
            (&pki.apiserver_cert, apiserver_pem.as_str()),
            (&pki.apiserver_key, apiserver_key_pem.as_str()),
            (&pki.admin_cert, admin_pem.as_str()),
            (&pki.admin_key, admin_key_pem.as_str()),
            (&pki.front_proxy_ca_cert, front_proxy_ca.pem.as_str()),
            (&pki.front_proxy_ca_key, front_proxy_ca.key_pem.as_str()),
            (&pki.front_proxy_client_cert, proxy_pem.as_str()),
            (&pki.front_proxy_client_key, proxy_key_pem.as_str()),
            (&pki.etcd_cert, etcd_pem.as_str()),
            (&pki.etcd_key, etcd_key_pem.as_str()),
            (&pki.etcd_client_cert, etcd_client_pem.as_str()),
            (&pki.etcd_client_key, etcd_client_key_pem.as_str()),
            (&pki.service_account_key, sa.serialize_pem().as_str()),
            (&pki.service_account_pub, sa.public_key_pem().as_str()),
        ] {
            write_private(path, contents.as_bytes())?;
        }
        Ok(pki)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::prelude::*;

    fn parse(pem_text: &str) -> Vec<u8> {
        let (_, pem) = parse_x509_pem(pem_text.as_bytes()).expect("pem");
        pem.contents
    }

    #[test]
    fn writes_every_file_private_in_a_private_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let pki = Pki::generate(&dir, Ipv4Addr::new(10, 96, 0, 1)).expect("pki");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 16, "{files:?}");
        for f in files {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
        assert!(std::fs::read_to_string(&pki.service_account_pub)
            .unwrap()
            .contains("BEGIN PUBLIC KEY"));
    }

    #[test]
    fn serving_certificate_names_every_address_clients_use() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::generate(tmp.path(), Ipv4Addr::new(10, 96, 0, 1)).unwrap();
        let der = parse(&std::fs::read_to_string(&pki.apiserver_cert).unwrap());
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().expect("SAN").value;
        let names: Vec<String> = san
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::IPAddress(ip) => {
                    format!("{:?}", ip)
                }
                other => format!("{other:?}"),
            })
            .collect();
        for dns in APISERVER_DNS_NAMES {
            assert!(names.contains(&dns.to_string()), "{names:?}");
        }
        assert!(
            names.contains(&format!("{:?}", [127u8, 0, 0, 1].as_slice())),
            "{names:?}"
        );
        assert!(
            names.contains(&format!("{:?}", [10u8, 96, 0, 1].as_slice())),
            "{names:?}"
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
    }

    #[test]
    fn admin_is_a_system_master_signed_by_the_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::generate(tmp.path(), Ipv4Addr::new(10, 96, 0, 1)).unwrap();
        let ca_der = parse(&pki.ca_pem);
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        let admin_der = parse(&pki.admin_cert_pem);
        let (_, admin) = X509Certificate::from_der(&admin_der).unwrap();
        assert!(ca.is_ca());
        assert_eq!(admin.issuer(), ca.subject());
        admin
            .verify_signature(Some(ca.public_key()))
            .expect("signed by the CA");
        let org: Vec<_> = admin
            .subject()
            .iter_organization()
            .map(|o| o.as_str().unwrap().to_string())
            .collect();
        assert_eq!(org, vec!["system:masters"]);
        assert!(
            admin
                .extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .client_auth
        );
    }

    #[test]
    fn front_proxy_client_is_signed_by_its_own_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::generate(tmp.path(), Ipv4Addr::new(10, 96, 0, 1)).unwrap();
        let read = |p: &Path| parse(&std::fs::read_to_string(p).unwrap());
        let fp_ca_der = read(&pki.front_proxy_ca_cert);
        let (_, fp_ca) = X509Certificate::from_der(&fp_ca_der).unwrap();
        let client_der = read(&pki.front_proxy_client_cert);
        let (_, client) = X509Certificate::from_der(&client_der).unwrap();
        client
            .verify_signature(Some(fp_ca.public_key()))
            .expect("signed by the front-proxy CA");
        let cn: Vec<_> = client
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cn, vec![FRONT_PROXY_CLIENT_CN]);
        assert_ne!(
            fp_ca.subject(),
            X509Certificate::from_der(&parse(&pki.ca_pem))
                .unwrap()
                .1
                .subject()
        );
    }
}
