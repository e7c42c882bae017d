//! Leaf certificates signed by the cluster CA, for components the harness adds (KEDA's
//! metrics adapter serving the aggregated API, and the operator/adapter gRPC mTLS).

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A certificate problem (file and cause).
#[derive(Debug, thiserror::Error)]
#[error("certificate {what}: {cause}")]
pub struct CertError {
    /// What was being done.
    pub what: String,
    /// Why it failed.
    pub cause: String,
}

fn err(what: &str, cause: impl std::fmt::Display) -> CertError {
    CertError {
        what: what.into(),
        cause: cause.to_string(),
    }
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), CertError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(&format!("write {}", path.display()), e))?;
    f.write_all(contents)
        .map_err(|e| err(&format!("write {}", path.display()), e))
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` into `dir` (0700): a certificate for `common_name`
/// valid for localhost, 127.0.0.1 and `dns_names`, for both server and client authentication,
/// signed by the CA whose PEM files are given. This is the layout KEDA's cert dirs expect.
///
/// # Errors
/// [`CertError`] when the CA cannot be read or the files cannot be written.
pub fn issue_leaf(
    ca_cert: &Path,
    ca_key: &Path,
    dir: &Path,
    common_name: &str,
    dns_names: &[&str],
) -> Result<(), CertError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| err(&format!("create {}", dir.display()), e))?;
    let ca_pem = std::fs::read_to_string(ca_cert)
        .map_err(|e| err(&format!("read {}", ca_cert.display()), e))?;
    let key_pem = std::fs::read_to_string(ca_key)
        .map_err(|e| err(&format!("read {}", ca_key.display()), e))?;
    let ca_key_pair = KeyPair::from_pem(&key_pem).map_err(|e| err("parse CA key", e))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key_pair)
        .map_err(|e| err("parse CA certificate", e))?;
    let mut names = vec!["localhost".to_string()];
    names.extend(dns_names.iter().map(|n| n.to_string()));
    let mut params = CertificateParams::new(names).map_err(|e| err("certificate parameters", e))?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().map_err(|e| err("generate key", e))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| err("sign certificate", e))?;
    write_private(&dir.join("ca.crt"), ca_pem.as_bytes())?;
    write_private(&dir.join("tls.crt"), cert.pem().as_bytes())?;
    write_private(&dir.join("tls.key"), key.serialize_pem().as_bytes())?;
    Ok(())
}

/// Generates a CA (`ca.crt`, `ca.key`, 0600) in `dir` for components the harness installs on a
/// cluster whose own CA it does not hold (the existing provider).
///
/// # Errors
/// [`CertError`] when the files cannot be written.
pub fn generate_ca(
    dir: &Path,
    common_name: &str,
) -> Result<(std::path::PathBuf, std::path::PathBuf), CertError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| err(&format!("create {}", dir.display()), e))?;
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| err("CA parameters", e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().map_err(|e| err("generate CA key", e))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| err("self-sign CA", e))?;
    let (c, k) = (dir.join("ca.crt"), dir.join("ca.key"));
    write_private(&c, cert.pem().as_bytes())?;
    write_private(&k, key.serialize_pem().as_bytes())?;
    Ok((c, k))
}
