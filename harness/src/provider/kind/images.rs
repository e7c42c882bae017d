//! The images and tools a kind cluster of ours runs from, made ready by `scripts/kind/build.sh`
//! and described by the `kind/build.env` and `kind/keda.env` files it writes. Online (a
//! registry answers) the node (kind's default `kindest/node`), the backend
//! (`quay.io/cortexproject/cortex`) and KEDA's release images are pulled, through a mirror
//! when one is named ([`ImageSource`]); offline (the case on this machine) they are built from
//! Debian packages and Go modules, cached in the harness cache keyed by their inputs (a warm
//! check takes about a second). kind, kubectl, KEDA's manifest and the stand-in are always
//! built (small).

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
    /// The pod network that node image brings.
    pub node_cni: NodeCni,
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
    /// The upstream references that were pulled (the rest was built here).
    pub pulled: Vec<String>,
}

/// The pod network a node image brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeCni {
    /// Our node image: a static one-node bridge; several nodes need kc-routes
    /// (`kind-config/kc-routes.yaml`) and kind's default CNI off.
    Ours,
    /// An upstream node image: kind installs its default CNI (kindnet).
    KindDefault,
}

/// Where the node, backend and KEDA images come from (`KEDA_CONFORMANCE_KIND_IMAGES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource {
    /// Pulled when a registry answers, else built here (the default).
    Auto,
    /// Pulled; a pull that fails fails the run.
    Pull,
    /// Built here from Debian packages and Go modules; never pulled.
    Build,
}

impl ImageSource {
    /// The source `KEDA_CONFORMANCE_KIND_IMAGES` names, after checking
    /// `KEDA_CONFORMANCE_IMAGE_MIRROR` and `KEDA_CONFORMANCE_KIND_NODE_IMAGE` (the pipeline
    /// script passes them to `docker pull`).
    ///
    /// # Errors
    /// An [`InputError`] (exit 2) naming the variable and the values it takes.
    pub fn from_env() -> Result<Self, InputError> {
        let source = match std::env::var("KEDA_CONFORMANCE_KIND_IMAGES").as_deref() {
            Err(_) | Ok("") | Ok("auto") => Self::Auto,
            Ok("pull") => Self::Pull,
            Ok("build") => Self::Build,
            Ok(other) => {
                return Err(InputError::in_environment(
                    "KEDA_CONFORMANCE_KIND_IMAGES",
                    format!("{other:?} is not a source for the node, backend and KEDA images"),
                    "set it to auto (default), pull or build",
                ))
            }
        };
        if let Ok(mirror) = std::env::var("KEDA_CONFORMANCE_IMAGE_MIRROR") {
            if !mirror.is_empty() && !valid_mirror(&mirror) {
                return Err(InputError::in_environment(
                    "KEDA_CONFORMANCE_IMAGE_MIRROR",
                    format!("{mirror:?} is not a registry mirror"),
                    "set it to host[:port][/path], e.g. mirror.example.com/proxy",
                ));
            }
        }
        if let Ok(node) = std::env::var("KEDA_CONFORMANCE_KIND_NODE_IMAGE") {
            if !node.is_empty() {
                validate_image_ref(&node).map_err(|_| {
                    InputError::in_environment(
                        "KEDA_CONFORMANCE_KIND_NODE_IMAGE",
                        format!("{node:?} is not an image reference"),
                        "name a kind node image, e.g. kindest/node:v1.35.0@sha256:<digest>",
                    )
                })?;
            }
        }
        Ok(source)
    }
}

/// `host[:port][/path]`: what `KEDA_CONFORMANCE_IMAGE_MIRROR` may hold.
fn valid_mirror(m: &str) -> bool {
    let m = m.strip_suffix('/').unwrap_or(m);
    let (host_port, path) = m.split_once('/').unwrap_or((m, ""));
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, "1"));
    let host_ok = host
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port_ok = !port.is_empty() && port.len() <= 5 && port.chars().all(|c| c.is_ascii_digit());
    let path_ok = path.is_empty()
        || path.split('/').all(|seg| {
            seg.chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
    host_ok && port_ok && path_ok
}

impl KindImages {
    /// Builds what is missing (or checks the cache) and reads what the pipeline wrote. Its
    /// output goes to `log`.
    ///
    /// # Errors
    /// [`EnvError::Input`] naming the failed stage and the log.
    pub async fn ensure(engine: &DockerEngine, log: &Path) -> Result<Self, EnvError> {
        ImageSource::from_env()?;
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
            node_cni: match build.get("NODE_CNI").map(String::as_str) {
                Some("kind") => NodeCni::KindDefault,
                _ => NodeCni::Ours,
            },
            kubernetes_version: get(&build, "build.env", "K8S_VERSION")?,
            cortex_image: get(&build, "build.env", "CORTEX_IMAGE")?,
            keda_version: get(&keda, "keda.env", "KEDA_VERSION")?,
            keda_manifest: get(&keda, "keda.env", "KEDA_MANIFEST")?.into(),
            keda_images: get(&keda, "keda.env", "KEDA_IMAGES")?
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            standin_image: get(&keda, "keda.env", "STANDIN_IMAGE")?,
            pulled: [build.get("PULLED"), keda.get("KEDA_PULLED")]
                .into_iter()
                .flatten()
                .flat_map(|v| v.split_whitespace())
                .map(str::to_string)
                .collect(),
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
            "KIND=/k/kind\nKUBECTL=/k/kubectl\nNODE_IMAGE=n:1\nNODE_CNI=kind\nCORTEX_IMAGE=c:1\nK8S_VERSION=v1.37.0\nPULLED=\"kindest/node:v1.37.0 q/c:1\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("keda.env"),
            "KEDA_VERSION=v2.20.2\nKEDA_MANIFEST=/k/keda.yaml\nKEDA_IMAGES=\"a:1 b:1\"\nKEDA_PULLED=\"\"\nSTANDIN_IMAGE=s:1\n",
        )
        .unwrap();
        let images = KindImages::read(dir.path()).unwrap();
        assert_eq!(images.keda_images, vec!["a:1", "b:1"]);
        assert_eq!(images.node_image, "n:1");
        assert_eq!(images.node_cni, NodeCni::KindDefault);
        assert_eq!(images.pulled, vec!["kindest/node:v1.37.0", "q/c:1"]);
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
    fn mirrors_are_checked() {
        assert!(valid_mirror("127.0.0.1:5000"));
        assert!(valid_mirror("mirror.example.com/proxy/"));
        assert!(valid_mirror("harbor.example.com:8443/dockerhub-proxy"));
        assert!(!valid_mirror("--insecure"));
        assert!(!valid_mirror("host:port"));
        assert!(!valid_mirror("host/Upper"));
        assert!(!valid_mirror("host/a b"));
        assert!(!valid_mirror(""));
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
