//! Installs what a live run needs onto a cluster: KEDA (operator and metrics adapter as host
//! processes registered as the external metrics API) and objects applied server-side.

pub mod apply;
pub mod certs;
pub mod keda;
