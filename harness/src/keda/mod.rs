//! What KEDA v2.20 does with a rendered ScaledObject: CRD schema, manifest parsing, and the
//! prometheus scaler's metadata parsing, authentication and request.

pub mod auth;
pub mod autoscaled;
pub mod crd;
pub mod goparse;
pub mod manifest;
pub mod prometheus;
