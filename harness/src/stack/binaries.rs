//! Where the stack's executables and kwok's stages are: the cache filled by
//! `scripts/setup-stack.sh`, with `KEDA_CONFORMANCE_<COMPONENT>` overrides.

use super::{kwok, process};
use crate::error::InputError;
use crate::toolchain::{Component, ETCD, KUBERNETES, KWOK};
use std::path::PathBuf;

/// The command that provides every binary of the stack.
pub const SETUP_COMMAND: &str = "scripts/setup-stack.sh";

/// Every executable (and data file) the `local` provider runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// etcd.
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub kube_apiserver: PathBuf,
    /// kube-controller-manager.
    pub kube_controller_manager: PathBuf,
    /// kube-scheduler.
    pub kube_scheduler: PathBuf,
    /// The kwok controller.
    pub kwok: PathBuf,
    /// kwok's default Stage files.
    pub kwok_stages: PathBuf,
    /// util-linux `setpriv`, which gives every component its parent-death signal.
    pub setpriv: PathBuf,
}

fn locate(component: Component, binary: &str) -> Result<PathBuf, InputError> {
    component.binary(binary).map_err(|mut e| {
        // Only the cache-miss message is rewritten; an override error keeps its own fix.
        if e.fix.contains("build-component") {
            e.fix = format!(
                "run `{SETUP_COMMAND}` (or `scripts/setup.sh --stack`) in the keda-conformance checkout; \
                 it builds etcd, kubernetes and kwok once and caches them"
            );
        }
        e
    })
}

impl Binaries {
    /// Finds every binary, or says which is missing and that [`SETUP_COMMAND`] provides it.
    ///
    /// # Errors
    /// The first missing item as an [`InputError`] whose fix names the setup command.
    pub fn locate() -> Result<Self, InputError> {
        Ok(Self {
            etcd: locate(ETCD, "etcd")?,
            kube_apiserver: locate(KUBERNETES, "kube-apiserver")?,
            kube_controller_manager: locate(KUBERNETES, "kube-controller-manager")?,
            kube_scheduler: locate(KUBERNETES, "kube-scheduler")?,
            kwok: locate(KWOK, "kwok")?,
            kwok_stages: kwok::stages_dir()?,
            setpriv: process::setpriv()?,
        })
    }
}
