//! What KEDA v2.20 does with a rendered ScaledObject: CRD schema, manifest parsing, and the
//! prometheus scaler's metadata parsing and request.

pub mod crd;
pub mod goparse;
pub mod manifest;
pub mod prometheus;
