//! Runs scenarios: each step of each scenario, for each Helm major it names, judged against
//! the scenario's expectations.

use crate::checks::{ExpectedHeader, Status};
use crate::error::InputError;
use crate::render::{self, RenderOptions, RenderReport};
use crate::scenario::{Scenario, Step};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The outcome of one scenario under one Helm major.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// `<scenario> [helm N]`.
    pub name: String,
    /// The scenario's description.
    pub description: String,
    /// The scenario file.
    pub file: String,
    /// Whether every expectation held.
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub reasons: Vec<String>,
    /// The render step's report.
    pub render: Option<RenderReport>,
    /// Wall time.
    #[serde(skip)]
    pub elapsed: Duration,
}

/// Runs every scenario for every Helm major it names; `helm_override` narrows to one major.
///
/// # Errors
/// An [`InputError`] when a scenario's inputs are unusable (exit 2 for the whole run).
pub fn run(
    scenarios: &[Scenario],
    helm_override: Option<crate::chart::helm::HelmMajor>,
) -> Result<Vec<ScenarioResult>, InputError> {
    let mut out = Vec::new();
    for s in scenarios {
        for helm in &s.helm {
            if helm_override.map(|h| h != helm.0).unwrap_or(false) {
                continue;
            }
            out.push(run_one(s, helm.0)?);
        }
    }
    Ok(out)
}

fn run_one(
    s: &Scenario,
    helm: crate::chart::helm::HelmMajor,
) -> Result<ScenarioResult, InputError> {
    let started = Instant::now();
    let mut reasons = Vec::new();
    let mut render_report = None;
    for step in &s.steps {
        match step {
            Step::Render(r) => {
                let opts = RenderOptions {
                    chart: s.chart.clone(),
                    version: s.version.clone(),
                    values_files: s.values.clone(),
                    sets: s.set.clone(),
                    release: s.release.clone(),
                    namespace: s.namespace.clone(),
                    expected_headers: r
                        .expect_headers
                        .iter()
                        .map(|(n, v)| ExpectedHeader {
                            name: n.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                    expect_scaled_object: true,
                    helm,
                };
                let report = render::render(&opts)?;
                let mut failed: Vec<String> = report
                    .verdict
                    .failed_checks()
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                failed.sort();
                let mut expected = r.failing_checks.clone();
                expected.sort();
                expected.dedup();
                if failed != expected {
                    let missing: Vec<&String> =
                        expected.iter().filter(|e| !failed.contains(e)).collect();
                    let extra: Vec<&String> =
                        failed.iter().filter(|f| !expected.contains(f)).collect();
                    if !missing.is_empty() {
                        reasons.push(format!(
                            "expected these checks to fail, but they did not: {}",
                            missing
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    if !extra.is_empty() {
                        reasons.push(format!(
                            "checks failed: {}",
                            extra
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
                let sos: Vec<serde_json::Value> = crate::keda::manifest::split(&report.rendered)
                    .map(|ms| {
                        ms.into_iter()
                            .filter(|m| m.is_keda("ScaledObject"))
                            .map(|m| m.body)
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(t) = &r.target {
                    let found = sos.iter().any(|so| {
                        so["spec"]["scaleTargetRef"]["name"] == t.name.as_str()
                            && so["spec"]["scaleTargetRef"]["kind"]
                                .as_str()
                                .unwrap_or("Deployment")
                                == t.kind
                    });
                    if !found {
                        let actual: Vec<String> = sos
                            .iter()
                            .map(|so| {
                                format!(
                                    "{}/{}",
                                    so["spec"]["scaleTargetRef"]["kind"]
                                        .as_str()
                                        .unwrap_or("Deployment"),
                                    so["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or("")
                                )
                            })
                            .collect();
                        reasons.push(format!(
                            "expected a ScaledObject targeting {}/{}; rendered targets: {}",
                            t.kind,
                            t.name,
                            if actual.is_empty() {
                                "none".into()
                            } else {
                                actual.join(", ")
                            }
                        ));
                    }
                }
                if let Some(rep) = r.replicas {
                    let ok = sos.iter().any(|so| {
                        so["spec"]["minReplicaCount"].as_i64() == Some(rep.min)
                            && so["spec"]["maxReplicaCount"].as_i64() == Some(rep.max)
                    });
                    if !ok {
                        let actual: Vec<String> = sos
                            .iter()
                            .map(|so| {
                                format!(
                                    "min {} max {}",
                                    so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]
                                )
                            })
                            .collect();
                        reasons.push(format!(
                            "expected replicas min {} max {}; rendered: {}",
                            rep.min,
                            rep.max,
                            if actual.is_empty() {
                                "no ScaledObject".into()
                            } else {
                                actual.join(", ")
                            }
                        ));
                    }
                }
                if report.status() == Status::Fail
                    && r.failing_checks.is_empty()
                    && reasons.is_empty()
                {
                    reasons.push("a check failed".into());
                }
                render_report = Some(report);
            }
            live => {
                reasons.push(format!(
                    "step {} needs the live tier (work in progress)",
                    live.keyword()
                ));
                break;
            }
        }
    }
    Ok(ScenarioResult {
        name: format!("{} [helm {}]", s.name, helm.number()),
        description: s.description.clone(),
        file: s.file.display().to_string(),
        passed: reasons.is_empty(),
        reasons,
        render: render_report,
        elapsed: started.elapsed(),
    })
}
