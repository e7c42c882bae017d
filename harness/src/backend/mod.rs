//! The Mimir-API backend: remote-write seeding and Prometheus-API queries under a tenant.

pub mod cortex;
pub mod query;
pub mod remote_write;
