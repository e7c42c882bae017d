//! Errors of building, starting and stopping a local control plane.

use super::wait::WaitError;
use crate::error::InputError;
use std::path::PathBuf;

/// Why a control plane could not be started (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A binary, the kwok stages or `setpriv` is missing; the message names the fix.
    #[error(transparent)]
    Missing(#[from] InputError),
    /// A file or directory of the run could not be written or read.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done, e.g. "write".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// rcgen could not generate a key or certificate.
    #[error("cannot generate the {what}")]
    Pki {
        /// Which key or certificate.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// No free loopback port could be reserved.
    #[error("cannot reserve free ports on 127.0.0.1")]
    Ports(#[source] std::io::Error),
    /// A component process could not be started.
    #[error("cannot start {component}: {command}")]
    Spawn {
        /// The component, e.g. "kube-apiserver".
        component: String,
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A readiness condition did not hold in time, or a component exited while waiting.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// The generated kubeconfig could not be loaded into a client.
    #[error("cannot build a client from kubeconfig {}", path.display())]
    Client {
        /// The kubeconfig.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The API server refused an object the stack creates (a fake node).
    #[error("cannot create {what}")]
    Api {
        /// The object, e.g. "node kwok-node-0".
        what: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
}

impl StackError {
    /// The component that exited because a port it was given had been taken meanwhile.
    pub fn port_clash(&self) -> Option<&str> {
        match self {
            StackError::Wait(WaitError::Exited {
                component, tail, ..
            }) if tail.contains("address already in use") => Some(component),
            _ => None,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// An error and its causes on one line: `outer: cause: root cause`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
