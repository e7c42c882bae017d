//! Runs scenarios: each step of each scenario, for each Helm major it names, judged against
//! the scenario's expectations.

use crate::checks::Status;
use crate::claim::Claim;
use crate::error::InputError;
use crate::render::{self, RenderOptions, RenderReport};
use crate::scenario::{Scenario, Step};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the live steps run on: a runtime, the shared live environment and where evidence goes.
#[derive(Debug)]
pub struct LiveContext {
    /// The async runtime the live steps run on.
    pub runtime: tokio::runtime::Runtime,
    /// Cluster, backend and KEDA.
    pub env: crate::live::env::LiveEnv,
    /// Evidence directory (one subdirectory per scenario and Helm major).
    pub out_dir: PathBuf,
    /// How many live scenarios run at once.
    pub parallel: usize,
}

/// Which tiers to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tier {
    /// Only the render steps (offline, seconds); live steps are reported as not run.
    Render,
    /// Render and live steps.
    All,
}

/// The outcome of one scenario under one Helm major.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// `<scenario> [helm N]`.
    pub name: String,
    /// The scenario's description.
    pub description: String,
    /// What the scenario proves, as its JUnit case name (default: `name`).
    pub proves: Option<String>,
    /// Every claim it makes (render and live), with its verdict.
    pub claims: Vec<Claim>,
    /// The scenario file.
    pub file: String,
    /// Whether every expectation held.
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub reasons: Vec<String>,
    /// The render step's report.
    pub render: Option<RenderReport>,
    /// The live steps' outcome, when they ran.
    pub live: Option<crate::live::run::LiveOutcome>,
    /// Live steps present but not run (`--tier render`).
    pub live_not_run: bool,
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
    live: Option<&LiveContext>,
) -> Result<Vec<ScenarioResult>, InputError> {
    let mut out = Vec::new();
    let mut jobs: Vec<(
        usize,
        &Scenario,
        crate::chart::helm::HelmMajor,
        RenderReport,
    )> = Vec::new();
    for s in scenarios {
        for helm in &s.helm {
            if helm_override.map(|h| h != helm.0).unwrap_or(false) {
                continue;
            }
            let (result, pending_live) = run_one(s, helm.0, live)?;
            if pending_live {
                if let Some(report) = result.render.clone() {
                    jobs.push((out.len(), s, helm.0, report));
                }
            }
            out.push(result);
        }
    }
    if let (Some(ctx), false) = (live, jobs.is_empty()) {
        let live_jobs: Vec<LiveJob> = jobs
            .iter()
            .map(|(_, s, helm, report)| LiveJob {
                label: s.name.clone(),
                scenario: s,
                helm: *helm,
                report,
            })
            .collect();
        let outcomes = run_live(ctx, &live_jobs)
            .into_iter()
            .zip(jobs.iter().map(|j| j.0))
            .map(|((outcome, elapsed), i)| (i, outcome, elapsed));
        for (i, outcome, elapsed) in outcomes {
            let r = &mut out[i];
            r.reasons.extend(outcome.reasons.iter().cloned());
            let live_claims = if outcome.claims.is_empty() {
                live_claims_not_reached(jobs.iter().find(|j| j.0 == i).map(|j| j.1))
            } else {
                outcome.claims.clone()
            };
            r.claims.extend(live_claims);
            r.passed = r.reasons.is_empty();
            r.elapsed += elapsed;
            r.live = Some(outcome);
        }
    }
    Ok(out)
}

/// One live run to schedule: the scenario, its Helm major and render report, and the label its
/// progress lines carry.
#[derive(Debug)]
pub struct LiveJob<'a> {
    /// Shown in progress lines (`live: <label> [helm N] started`).
    pub label: String,
    /// The scenario.
    pub scenario: &'a Scenario,
    /// The Helm major it runs with.
    pub helm: crate::chart::helm::HelmMajor,
    /// Its render tier's report.
    pub report: &'a RenderReport,
}

/// The one scheduler of live runs (`run`, `qualify`, `soak`, `bench`): up to
/// `ctx.parallel` at once (each has its own namespace and backend), under a graceful
/// interrupt (a signal stops each run at its current step, which writes its evidence).
/// Returns each job's outcome and wall time, in job order.
pub fn run_live(
    ctx: &LiveContext,
    jobs: &[LiveJob<'_>],
) -> Vec<(crate::live::outcome::LiveOutcome, Duration)> {
    use futures::StreamExt;
    let _graceful = crate::cleanup::GracefulStop::begin();
    ctx.runtime.block_on(async {
        futures::stream::iter(jobs.iter().map(|j| async move {
            let started = Instant::now();
            eprintln!("live: {} [helm {}] started", j.label, j.helm.number());
            let outcome =
                crate::live::run::run(&ctx.env, j.scenario, j.helm, j.report, &ctx.out_dir).await;
            eprintln!(
                "live: {} [helm {}] {} after {:.0}s",
                j.label,
                j.helm.number(),
                if outcome.interrupted.is_some() {
                    "interrupted"
                } else if outcome.reasons.is_empty() {
                    "passed"
                } else {
                    "FAILED"
                },
                started.elapsed().as_secs_f64()
            );
            (outcome, started.elapsed())
        }))
        .buffered(ctx.parallel.max(1))
        .collect::<Vec<_>>()
        .await
    })
}

fn run_one(
    s: &Scenario,
    helm: crate::chart::helm::HelmMajor,
    live: Option<&LiveContext>,
) -> Result<(ScenarioResult, bool), InputError> {
    let started = Instant::now();
    let mut reasons = Vec::new();
    let mut render_report = None;
    let mut claims = Vec::new();
    for step in &s.steps {
        match step {
            Step::Render(r) => {
                let mut opts = RenderOptions::for_scenario(s, r.expected_headers(), helm);
                // With a cluster, render with what it serves, as the install will.
                if let Some(caps) = live.and_then(|l| l.runtime.block_on(l.env.capabilities()).ok())
                {
                    opts.capabilities = caps.clone();
                }
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
                let units = report.autoscaled();
                if let Some(t) = &r.target {
                    let found = units
                        .iter()
                        .any(|u| u.workload.name == t.name && u.workload.kind == t.kind);
                    if !found {
                        let actual: Vec<String> =
                            units.iter().map(|u| u.workload.to_string()).collect();
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
                    let ok = units.iter().any(|u| {
                        u.min_replicas == Some(rep.min) && u.max_replicas == Some(rep.max)
                    });
                    if !ok {
                        let shown = |n: Option<i64>| {
                            n.map_or_else(|| "null".to_string(), |n| n.to_string())
                        };
                        let actual: Vec<String> = units
                            .iter()
                            .map(|u| {
                                format!(
                                    "min {} max {}",
                                    shown(u.min_replicas),
                                    shown(u.max_replicas)
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
                claims = render_claims(r, &report, &failed, &reasons);
                render_report = Some(report);
            }
            _ => break,
        }
    }
    let has_live = s.steps.iter().any(|st| st.is_live());
    let live_outcome = None;
    let mut live_not_run = false;
    let mut pending_live = false;
    if has_live {
        match (live, &render_report) {
            (Some(_), Some(_)) if reasons.is_empty() => pending_live = true,
            (Some(_), _) => reasons.push("live steps not run: the render step failed".into()),
            (None, _) => live_not_run = true,
        }
        if !pending_live {
            claims.extend(live_claims_not_reached(Some(s)));
        }
    }
    Ok((
        ScenarioResult {
            live: live_outcome,
            live_not_run,
            name: format!("{} [helm {}]", s.name, helm.number()),
            description: s.description.clone(),
            proves: s.proves.clone(),
            claims,
            file: s.file.display().to_string(),
            passed: reasons.is_empty(),
            reasons,
            render: render_report,
            elapsed: started.elapsed(),
        },
        pending_live,
    ))
}

/// The claims of a scenario's live steps, none of them reached.
fn live_claims_not_reached(s: Option<&Scenario>) -> Vec<Claim> {
    s.map(|s| {
        s.steps
            .iter()
            .filter(|st| st.is_live())
            .flat_map(|st| st.claims())
            .map(Claim::not_reached)
            .collect()
    })
    .unwrap_or_default()
}

/// The render step's claims: each expected header is rendered for KEDA, the checks pass (or
/// exactly the expected ones fail, for a defective chart), the target and replica bounds.
fn render_claims(
    r: &crate::scenario::RenderStep,
    report: &RenderReport,
    failed: &[String],
    reasons: &[String],
) -> Vec<Claim> {
    let mut claims = Vec::new();
    let mut expected = r.failing_checks.clone();
    expected.sort();
    expected.dedup();
    let checks_claim = if expected.is_empty() {
        "every render check passes".to_string()
    } else {
        format!("render checks {} catch the defect", expected.join(", "))
    };
    claims.push(if failed == expected.as_slice() {
        Claim::held(checks_claim, format!("failing checks: {}", failed.len()))
    } else {
        Claim::broken(
            checks_claim,
            format!("failing checks: {}", failed.join(", ")),
        )
    });
    for name in r.expect_headers.keys() {
        let lower = name.to_ascii_lowercase();
        let broken: Vec<String> = report
            .verdict
            .findings
            .iter()
            .filter(|f| {
                f.check == "trigger.expected-header"
                    && f.status == Status::Fail
                    && (f.message.to_ascii_lowercase().contains(&lower)
                        || f.subject.to_ascii_lowercase().contains(&lower))
            })
            .map(|f| format!("{}: {}", f.subject, f.message))
            .collect();
        let claim = format!("header {name} is rendered for KEDA to send");
        claims.push(if broken.is_empty() {
            Claim::held(claim, "trigger.expected-header passes")
        } else {
            Claim::broken(claim, broken.join("; "))
        });
    }
    let find = |prefix: &str| reasons.iter().find(|x| x.starts_with(prefix)).cloned();
    if let Some(t) = &r.target {
        let claim = format!("ScaledObject targets {}/{}", t.kind, t.name);
        claims.push(match find("expected a ScaledObject targeting") {
            Some(why) => Claim::broken(claim, why),
            None => Claim::held(claim, "rendered"),
        });
    }
    if let Some(rep) = r.replicas {
        let claim = format!("ScaledObject renders replicas {}..{}", rep.min, rep.max);
        claims.push(match find("expected replicas min") {
            Some(why) => Claim::broken(claim, why),
            None => Claim::held(claim, "rendered"),
        });
    }
    claims
}
