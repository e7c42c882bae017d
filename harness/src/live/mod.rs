//! The live tier: a chart installed on a real cluster with real KEDA and a multi-tenant
//! backend, observed until the workload reaches the replica count the metrics call for.

pub mod env;
pub mod observe;
pub mod run;
pub mod seeder;
pub mod tenancy;
pub mod timeline;
