//! Where the pinned tools (Helm, the Go-built stack, the KEDA module) live in the cache, and
//! how to tell the user to provide a missing one.

use crate::error::InputError;
use std::path::PathBuf;

/// A pinned Go component built by `scripts/build-component.sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    /// Wrapper module name under `scripts/go/`.
    pub name: &'static str,
    /// The `component.env` text, embedded at compile time so versions have one source.
    env: &'static str,
}

/// Helm 3, built from helm.sh/helm/v3.
pub const HELM3: Component = Component {
    name: "helm3",
    env: include_str!("../../scripts/go/helm3/component.env"),
};
/// Helm 4, built from helm.sh/helm/v4.
pub const HELM4: Component = Component {
    name: "helm4",
    env: include_str!("../../scripts/go/helm4/component.env"),
};

/// etcd, built from go.etcd.io/etcd/server/v3 (the `local` provider's datastore).
pub const ETCD: Component = Component {
    name: "etcd",
    env: include_str!("../../scripts/go/etcd/component.env"),
};
/// kube-apiserver, kube-controller-manager and kube-scheduler, built from k8s.io/kubernetes.
pub const KUBERNETES: Component = Component {
    name: "kubernetes",
    env: include_str!("../../scripts/go/kubernetes/component.env"),
};
/// The kwok controller (fake nodes and pods), built from sigs.k8s.io/kwok.
pub const KWOK: Component = Component {
    name: "kwok",
    env: include_str!("../../scripts/go/kwok/component.env"),
};

/// KEDA's operator and metrics adapter, built from github.com/kedacore/keda/v2.
pub const KEDA: Component = Component {
    name: "keda",
    env: include_str!("../../scripts/go/keda/component.env"),
};
/// Cortex, the multi-tenant Mimir-API backend of the local provider.
pub const CORTEX: Component = Component {
    name: "cortex",
    env: include_str!("../../scripts/go/cortex/component.env"),
};
/// KEDA's own prometheus scaler as a reference program for differential tests.
pub const KEDA_REFERENCE: Component = Component {
    name: "keda-reference",
    env: include_str!("../../scripts/go/keda-reference/component.env"),
};

/// The KEDA release whose CRDs and semantics the render tier reproduces.
pub const KEDA_VERSION: &str = "v2.20.2";

impl Component {
    /// The pinned version (the `VERSION=` line of its component.env).
    pub fn version(&self) -> &'static str {
        self.env
            .lines()
            .find_map(|l| l.strip_prefix("VERSION="))
            .map(|v| v.trim().trim_matches('"'))
            .unwrap_or("unknown")
    }

    /// The cached directory holding this component's binaries, if built.
    pub fn cached_dir(&self) -> Option<PathBuf> {
        let stack = cache_root().join("stack");
        // build-component.sh points <name>-<version> at the build of the current wrapper.
        let current = stack.join(format!("{}-{}", self.name, self.version()));
        if current.join(".complete").exists() {
            return Some(current);
        }
        let prefix = format!("{}-{}-", self.name, self.version());
        let mut found: Vec<PathBuf> = std::fs::read_dir(&stack)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.starts_with(&prefix) && !name.contains(".tmp.")
            })
            .map(|e| e.path())
            .filter(|p| p.join(".complete").exists())
            .collect();
        found.sort();
        found.pop()
    }

    /// The path of one of this component's binaries, or an error saying how to build it.
    ///
    /// The environment variable `KEDA_CONFORMANCE_<NAME>` (upper case) overrides the cache.
    ///
    /// # Errors
    /// An [`InputError`] naming the build command when the binary is not cached.
    pub fn binary(&self, binary: &str) -> Result<PathBuf, InputError> {
        let var = format!("KEDA_CONFORMANCE_{}", self.name.to_uppercase());
        if let Ok(path) = std::env::var(&var) {
            let path = PathBuf::from(path);
            if path.is_file() {
                return Ok(path);
            }
            return Err(InputError::in_environment(
                var,
                format!("{} does not exist", path.display()),
                format!(
                    "unset it or point it at a {} {} binary",
                    self.name,
                    self.version()
                ),
            ));
        }
        match self.cached_dir().map(|d| d.join(binary)) {
            Some(path) if path.is_file() => Ok(path),
            _ => Err(InputError::in_environment(
                format!("{} {}", self.name, self.version()),
                format!("{binary} is not built in {}", cache_root().join("stack").display()),
                format!("run `scripts/build-component.sh {}` (or `scripts/setup.sh`) in the keda-conformance checkout", self.name),
            )),
        }
    }
}

/// The cache root: `$KEDA_CONFORMANCE_CACHE` or `~/.cache/keda-conformance`.
pub fn cache_root() -> PathBuf {
    if let Ok(dir) = std::env::var("KEDA_CONFORMANCE_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    PathBuf::from(home).join(".cache/keda-conformance")
}

/// The directory holding KEDA's CRDs for [`KEDA_VERSION`] (copied there by `scripts/setup.sh`).
///
/// # Errors
/// An [`InputError`] naming the setup command when the CRDs are not cached.
pub fn keda_crd_dir() -> Result<PathBuf, InputError> {
    let dir = cache_root().join(format!("keda-crds-{KEDA_VERSION}"));
    if dir.join("keda.sh_scaledobjects.yaml").is_file() {
        Ok(dir)
    } else {
        Err(InputError::in_environment(
            format!("KEDA {KEDA_VERSION} CRDs"),
            format!("not found in {}", dir.display()),
            "run `scripts/setup.sh` (it fetches the KEDA Go module through the Go module proxy)",
        ))
    }
}
