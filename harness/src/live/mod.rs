//! The live tier: a chart installed on a real cluster with real KEDA and a multi-tenant
//! backend, observed until the workload reaches the replica count the metrics call for.
//!
//! [`run`] interprets one scenario's live steps; [`target`] derives what they judge from the
//! render; [`release`] is the Helm release; [`expect`] holds one module per kind of
//! expectation; [`outcome`] is what a run concluded; [`sampler`] keeps the timeline and the oracle's view; [`upgrade`] and
//! [`unusable_target`] are the two special paths; [`evidence`] is what a failure leaves;
//! [`watch`] wakes an expectation when an object it reads changes.

pub mod env;
pub mod evidence;
pub mod expect;
pub mod observe;
pub mod outcome;
pub mod release;
pub mod run;
pub mod sampler;
pub mod seeder;
pub mod target;
pub mod tenancy;
pub mod timeline;
pub mod unusable_target;
pub mod upgrade;
pub mod watch;
