//! The kind provider's precondition: kind runs Kubernetes in Docker containers, so it needs a
//! Docker engine that answers. Without one the harness stops with exit 2 and says that the
//! local provider runs here.

use crate::error::InputError;
use std::process::{Command, Stdio};

/// Checks that a Docker engine answers `docker info`.
///
/// # Errors
/// An [`InputError`] that names the local provider as the way to run without Docker.
pub fn require_docker() -> Result<(), InputError> {
    let fix = "run with `--provider local` (a hermetic cluster of real Kubernetes, KEDA and Cortex binaries that needs no Docker), or start a Docker engine for kind";
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output();
    match out {
        Err(e) => Err(InputError::in_environment("--provider kind", format!("kind needs Docker, and the docker command cannot run: {e}"), fix)),
        Ok(o) if !o.status.success() => {
            let why = String::from_utf8_lossy(&o.stderr).lines().find(|l| !l.trim().is_empty()).unwrap_or("no Docker engine answers").trim().to_string();
            Err(InputError::in_environment("--provider kind", format!("kind needs a Docker engine, and none answers here ({why})"), fix))
        }
        Ok(_) => Err(InputError::in_environment(
            "--provider kind",
            "a Docker engine answers, but this build of keda-conformance drives kind clusters only through scripts that are not part of it yet",
            "run with `--provider local`, or `--provider existing --kubeconfig <kind kubeconfig>` against a kind cluster you created",
        )),
    }
}
