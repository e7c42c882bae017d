//! A hermetic Kubernetes control plane of real binaries as host processes on 127.0.0.1:
//! etcd, kube-apiserver, kube-controller-manager and kube-scheduler at pinned versions, with
//! kwok simulating kubelets and containers. This module owns processes, PKI, kubeconfig and
//! readiness waits; [`crate::provider::local`] turns it into a named, discoverable cluster.

pub mod binaries;
pub mod components;
pub mod config;
pub mod control_plane;
pub mod error;
pub mod kubeconfig;
pub mod kwok;
pub mod pki;
pub mod ports;
pub mod process;
pub mod wait;

pub use binaries::Binaries;
pub use config::{HpaTiming, NodeResources, StackConfig};
pub use control_plane::{ControlPlane, StartupTimings};
pub use error::StackError;
