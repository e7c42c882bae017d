//! What a live run concluded: the outcome of one scenario's live steps, with its evidence.

use super::timeline::Sample;
use crate::claim::Claim;
use crate::mock::Recorded;
use std::path::PathBuf;

/// What a live run concluded.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LiveOutcome {
    /// Why it failed (empty when every live step held).
    pub reasons: Vec<String>,
    /// One line per step: what was observed.
    pub observations: Vec<String>,
    /// The timeline.
    pub timeline: Vec<Sample>,
    /// Where the evidence is.
    pub evidence_dir: Option<PathBuf>,
    /// How long each `expect_replicas` took to converge, against its bound.
    pub latencies: Vec<StepLatency>,
    /// The ScaledObject's and HPA's state and the namespace's events at the end (what KEDA
    /// concluded).
    pub final_state: String,
    /// The requests KEDA sent to the mock or proxy (sensitive headers redacted).
    pub requests: Vec<Recorded>,
    /// What each live expectation proved, failed to prove, or never reached.
    pub claims: Vec<Claim>,
    /// When the run was interrupted (SIGINT/SIGTERM): where, e.g. `step 4 of 6 (expect 5)
    /// after 31.2s`. The evidence written is what had been gathered by then.
    pub interrupted: Option<String>,
    /// What an upgrade to another lineage's chart did to the cluster, one finding per aspect
    /// (empty unless an `upgrade` step changed the scale target).
    pub lineage_upgrade: Vec<UpgradeFinding>,
    /// An empty answer to KEDA's query, and the seeded tenants that hold data for it.
    pub empty_answer: Option<super::tenancy::EmptyAnswerFinding>,
}

/// One aspect of a cross-lineage upgrade, as observed on the cluster.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UpgradeFinding {
    /// What was looked at (`ScaledObjects`, `HPAs`, `workloads`, `new workload scales`).
    pub aspect: String,
    /// Whether it meets the pass criterion.
    pub passed: bool,
    /// What was observed.
    pub detail: String,
}

/// Verdict latency of one `expect_replicas` step.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepLatency {
    /// The step (`expect 4`, `expect oracle`).
    pub step: String,
    /// Seconds from the step's start until the count was first reached (hold excluded).
    pub seconds: f64,
    /// The bound: how long a correct pipeline may need: one HPA sync period (the HPA reads
    /// KEDA's metric each sync while replicas >= 1), plus pollingInterval when activating from
    /// 0 (only KEDA's own poll activates), plus the delay the HPA behavior imposes in that
    /// direction, plus the endpoint's slowest answer to the oracle's query (KEDA waits as long).
    pub bound: f64,
}
