//! keda-conformance: says, with evidence, whether a Helm chart's KEDA autoscaling works.
//!
//! Data flows one way: [`scenario`] (the format) -> [`chart`] (Helm, offline charts, values)
//! -> [`keda`] (what KEDA parses and sends) -> [`checks`] (render checks with stable ids) ->
//! [`render`] and [`engine`] (run them) -> [`report`] (text, JSON, JUnit). [`cli`] only parses
//! arguments and dispatches.

pub mod backend;
pub mod bench;
pub mod chart;
pub mod checks;
pub mod claim;
pub mod cleanup;
pub mod cli;
pub mod engine;
pub mod error;
pub mod install;
pub mod keda;
pub mod live;
pub mod mock;
pub mod mutate;
pub mod names;
pub mod oracle;
pub mod provider;
pub mod redact;
pub mod render;
pub mod report;
pub mod repro;
pub mod scenario;
pub mod stack;
pub mod toolchain;
pub mod yaml_guard;
