//! The images and tools a kind cluster of ours runs from. Offline (no registry answers, the
//! case on this machine) they are built here by `scripts/kind/build.sh` from Debian packages
//! and Go modules, cached in the harness cache keyed by their inputs (a warm check takes about
//! a second), and described by the `kind/build.env` and `kind/keda.env` files it writes.

use super::engine::DockerEngine;
use crate::error::InputError;
use crate::provider::EnvError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a cold image pipeline may take (measured: about 25 minutes on 2 cores with a cold
/// Go build cache; the deadline leaves room for a slower machine).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(2 * 3600);

/// What the image pipeline produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindImages {
    /// The kind binary (sigs.k8s.io/kind at the pinned version).
    pub kind: PathBuf,
    /// kubectl of the node's Kubernetes version.
    pub kubectl: PathBuf,
    /// The node image.
    pub node_image: String,
    /// The Kubernetes version the node runs.
    pub kubernetes_version: String,
    /// The Mimir-API backend's image (Cortex).
    pub cortex_image: String,
    /// KEDA's version.
    pub keda_version: String,
    /// KEDA's install manifest (operator, metrics API server, admission webhooks, CRDs).
    pub keda_manifest: PathBuf,
    /// The images that manifest names, built here under their upstream names.
    pub keda_images: Vec<String>,
    /// The stand-in for the chart's own (Tempo) containers.
    pub standin_image: String,
}

impl KindImages {
    /// Builds what is missing (or checks the cache) and reads what the pipeline wrote. Its
    /// output goes to `log`.
    ///
    /// # Errors
    /// [`EnvError::Input`] naming the failed stage and the log.
    pub async fn ensure(engine: &DockerEngine, log: &Path) -> Result<Self, EnvError> {
        let script = engine.scripts().join("build.sh");
        engine
            .tool(&script)
            .run_logged(&[], log, BUILD_TIMEOUT)
            .await
            .map_err(|e| {
                InputError::in_environment(
                    "--provider kind",
                    format!("the kind image pipeline failed: {e}"),
                    "read the log named above; `scripts/kind/build.sh` reruns it alone",
                )
            })?;
        Ok(Self::read(&crate::toolchain::cache_root().join("kind"))?)
    }

    /// Reads `build.env` and `keda.env` in `dir`.
    ///
    /// # Errors
    /// An [`InputError`] when a file or a key is missing.
    pub fn read(dir: &Path) -> Result<Self, InputError> {
        let build = read_env(&dir.join("build.env"))?;
        let keda = read_env(&dir.join("keda.env"))?;
        let get = |env: &BTreeMap<String, String>, file: &str, key: &str| {
            env.get(key).cloned().ok_or_else(|| {
                InputError::in_environment(
                    "--provider kind",
                    format!("{} has no {key}", dir.join(file).display()),
                    "rerun `scripts/kind/build.sh`",
                )
            })
        };
        Ok(KindImages {
            kind: get(&build, "build.env", "KIND")?.into(),
            kubectl: get(&build, "build.env", "KUBECTL")?.into(),
            node_image: get(&build, "build.env", "NODE_IMAGE")?,
            kubernetes_version: get(&build, "build.env", "K8S_VERSION")?,
            cortex_image: get(&build, "build.env", "CORTEX_IMAGE")?,
            keda_version: get(&keda, "keda.env", "KEDA_VERSION")?,
            keda_manifest: get(&keda, "keda.env", "KEDA_MANIFEST")?.into(),
            keda_images: get(&keda, "keda.env", "KEDA_IMAGES")?
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            standin_image: get(&keda, "keda.env", "STANDIN_IMAGE")?,
        })
    }
}

/// Parses `KEY=value` / `KEY="value"` lines (the subset the build scripts write).
fn read_env(path: &Path) -> Result<BTreeMap<String, String>, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        InputError::in_environment(
            "--provider kind",
            format!("cannot read {}: {e}", path.display()),
            "run `scripts/kind/build.sh` (the kind provider runs it itself when Docker answers)",
        )
    })?;
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect())
}

/// Refuses an image reference that could be read as a flag or holds characters no reference
/// has (it reaches docker's argv).
pub(super) fn validate_image_ref(r: &str) -> Result<(), InputError> {
    let ok = !r.is_empty()
        && !r.starts_with('-')
        && r.len() <= 512
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(InputError::in_environment(
            "--provider kind",
            format!("the chart runs an image named {r:?}, which is not an image reference"),
            "fix the image repository/tag values of the chart",
        ))
    }
}

/// Where the chart's own images come from on kind (`KEDA_CONFORMANCE_CHART_IMAGES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartImages {
    /// The engine's image if it has one, else pulled if a registry answers, else the
    /// stand-in (the default).
    Auto,
    /// The engine's image or a pull; a reference that cannot be pulled fails the run.
    Pull,
    /// The engine's image if it has one, else the stand-in; never pulls.
    Standin,
}

impl ChartImages {
    /// The policy `KEDA_CONFORMANCE_CHART_IMAGES` names (`auto`, `pull`, `standin`).
    ///
    /// # Errors
    /// An [`InputError`] (exit 2) for another value.
    pub fn from_env() -> Result<Self, InputError> {
        match std::env::var("KEDA_CONFORMANCE_CHART_IMAGES").as_deref() {
            Err(_) | Ok("") | Ok("auto") => Ok(Self::Auto),
            Ok("pull") => Ok(Self::Pull),
            Ok("standin") => Ok(Self::Standin),
            Ok(other) => Err(InputError::in_environment(
                "KEDA_CONFORMANCE_CHART_IMAGES",
                format!("{other:?} is not a policy for the chart's images"),
                "set it to auto (default), pull or standin",
            )),
        }
    }

    /// Whether to try `docker pull` for an image the engine lacks, given whether an earlier
    /// pull of this run found no registry.
    pub fn pulls(self, registry_unreachable: bool) -> bool {
        match self {
            Self::Auto => !registry_unreachable,
            Self::Pull => true,
            Self::Standin => false,
        }
    }
}

/// Whether a failed `docker pull` says no registry can be reached at all (name resolution,
/// connection, timeout), rather than that this one image is missing or private.
pub fn registry_unreachable(pull_error: &str) -> bool {
    let e = pull_error.to_ascii_lowercase();
    [
        "no such host",
        "dial tcp",
        "i/o timeout",
        "connection refused",
        "network is unreachable",
        "timed out",
        "tls handshake timeout",
        "temporary failure in name resolution",
        "did not finish within",
    ]
    .iter()
    .any(|m| e.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_and_images() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("build.env"),
            "KIND=/k/kind\nKUBECTL=/k/kubectl\nNODE_IMAGE=n:1\nCORTEX_IMAGE=c:1\nK8S_VERSION=v1.35.4\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("keda.env"),
            "KEDA_VERSION=v2.20.2\nKEDA_MANIFEST=/k/keda.yaml\nKEDA_IMAGES=\"a:1 b:1\"\nSTANDIN_IMAGE=s:1\n",
        )
        .unwrap();
        let images = KindImages::read(dir.path()).unwrap();
        assert_eq!(images.keda_images, vec!["a:1", "b:1"]);
        assert_eq!(images.node_image, "n:1");
        std::fs::write(dir.path().join("keda.env"), "KEDA_VERSION=v2\n").unwrap();
        let err = KindImages::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("KEDA_MANIFEST"), "{err}");
    }

    #[test]
    fn chart_image_policies() {
        assert!(ChartImages::Auto.pulls(false));
        assert!(!ChartImages::Auto.pulls(true));
        assert!(ChartImages::Pull.pulls(true));
        assert!(!ChartImages::Standin.pulls(false));
        // What this machine's engine says when it has no way out.
        assert!(registry_unreachable(
            "Error response from daemon: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host"
        ));
        assert!(!registry_unreachable(
            "Error response from daemon: manifest for grafana/tempo:0.0.0 not found: manifest unknown"
        ));
    }

    #[test]
    fn image_references_are_checked() {
        assert!(validate_image_ref("example.invalid/tempo:2.9.0").is_ok());
        assert!(validate_image_ref("grafana/tempo@sha256:abc").is_ok());
        assert!(validate_image_ref("--privileged").is_err());
        assert!(validate_image_ref("a b").is_err());
        assert!(validate_image_ref("").is_err());
    }
}
