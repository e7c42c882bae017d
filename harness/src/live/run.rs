//! Runs the live steps of one scenario on a [`LiveEnv`]: installs the chart with real Helm
//! (triggers pointed at the backend by a values override), seeds tenants' metrics, and judges
//! expectations on observed cluster state, sampling a timeline throughout. Leaves evidence.
//!
//! One scenario's data path: [`run`] derives the [`Target`] from the render, starts the
//! backend (and the recording mock the install step asks for), then a [`Session`] interprets
//! the live steps one by one (each ends as a [`StepResult`]), and [`Session::finish`] writes
//! the timeline and evidence and removes the release.

use super::env::LiveEnv;
use super::evidence::{private_dir_no_links, write_evidence};
use super::expect::cluster::{expect_condition, expect_event, expect_flapping};
use super::expect::replicas::expect_replicas;
use super::expect::requests::{expect_requests, keda_requests, redacted};
use super::expect::{unless_interrupted, StepResult, INTERRUPTED};
use super::observe;
use super::release::Release;
use super::sampler::{spawn_sampler, Shared};
use super::seeder::Seeder;
use super::target::{
    install_target, namespace_for, target_from_render, warn_on_capability_differences,
    NamespaceInQuery, Target,
};
use super::tenancy;
use super::timeline;
use super::upgrade::{new_lineage_target, upgrade, upgrade_across, UpgradeCtx};
use crate::backend::cortex::{MimirApiBackend, PROMETHEUS_PREFIX};
use crate::chart::helm::HelmMajor;
use crate::claim::Claim;
use crate::mock::{Behaviour, PrometheusMock};
use crate::render::RenderReport;
use crate::scenario::{InstallStep, MetricsEndpoint, Scenario, Step};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

mod end;

pub use super::outcome::{LiveOutcome, StepLatency, UpgradeFinding};

/// Runs the live steps of `scenario` (everything after `render`).
pub async fn run(
    env: &LiveEnv,
    scenario: &Scenario,
    helm: HelmMajor,
    render: &RenderReport,
    out_dir: &Path,
) -> LiveOutcome {
    let mut outcome = LiveOutcome::default();
    if env.stop_token().is_stopped() {
        outcome.interrupted = Some("its wait for a free slot (not started)".into());
        outcome.reasons.push(format!("not started: {INTERRUPTED}"));
        return outcome;
    }
    let namespace = namespace_for(&scenario.name, helm);
    let target = match target_from_render(render, &namespace, env.hpa.tolerance) {
        Ok(t) => t,
        Err(e) => {
            outcome
                .reasons
                .push(format!("cannot run the live steps: {e}"));
            // A ScaledObject KEDA cannot act on (its target is not rendered, its trigger is
            // rejected): install anyway, so the verdict carries KEDA's own conclusion next to
            // the render check.
            let so = render.manifests.iter().find(|m| m.is_keda("ScaledObject"));
            let installs = scenario.steps.iter().any(|s| matches!(s, Step::Install(_)));
            if let (Some(so), true, true) = (so, installs, e.keda_has_something_to_say()) {
                super::unusable_target::keda_on_unusable_target(
                    env,
                    scenario,
                    helm,
                    &namespace,
                    render,
                    so,
                    &mut outcome,
                )
                .await;
            }
            return outcome;
        }
    };
    warn_on_capability_differences(env, render, &mut outcome).await;
    let (target, namespace_in_query) =
        install_target(env, scenario, helm, &namespace, target, &mut outcome).await;
    let backend = match env.start_backend(&namespace).await {
        Ok(b) => b,
        Err(e) => {
            outcome
                .reasons
                .push(format!("cannot start the Mimir-API backend: {e}"));
            return outcome;
        }
    };
    let install = scenario.steps.iter().find_map(|s| match s {
        Step::Install(i) => Some(i.clone()),
        _ => None,
    });
    let metrics = install.as_ref().map(|i| i.metrics);
    let mock = match start_mock(env.keda_reaches(), install.as_ref(), &backend).await {
        Ok(m) => m,
        Err(e) => {
            outcome.reasons.push(format!(
                "cannot start the recording endpoint on {}: {e}",
                env.keda_reaches()
            ));
            return outcome;
        }
    };
    let trigger_address = mock
        .as_ref()
        .map(|m| m.server_address())
        .unwrap_or_else(|| backend.prometheus_url());
    // The oracle asks what KEDA asks: the mock when there is one, else the backend.
    let oracle_base = match metrics {
        Some(MetricsEndpoint::Mock) => trigger_address.clone(),
        _ => backend.prometheus_url(),
    };
    let mut session = Session {
        env,
        scenario,
        helm,
        render,
        client: env.client().clone(),
        namespace,
        target,
        asks_backend: !matches!(metrics, Some(MetricsEndpoint::Mock)),
        namespace_in_query,
        backend,
        mock,
        trigger_address,
        oracle_base,
        started: Instant::now(),
        shared: Arc::new(Mutex::new(Shared {
            samples: Vec::new(),
            step: "install".into(),
            markers: Vec::new(),
            latencies: Vec::new(),
        })),
        seeder: None,
        sampler: None,
        release: None,
    };
    session.run_steps(&mut outcome).await;
    session.finish(&mut outcome, out_dir).await;
    outcome
}

/// A recording mock (or a proxy in front of the backend) when the install step asks for one,
/// listening on `ip`, where KEDA reaches this host.
async fn start_mock(
    ip: std::net::IpAddr,
    install: Option<&InstallStep>,
    backend: &MimirApiBackend,
) -> std::io::Result<Option<PrometheusMock>> {
    let behaviour = match install.map(|i| i.metrics) {
        Some(MetricsEndpoint::Mock) => install
            .and_then(|i| i.mock.clone())
            .unwrap_or(Behaviour::Empty),
        Some(MetricsEndpoint::Proxy) => Behaviour::Forward(backend.base_url()),
        _ => return Ok(None),
    };
    PrometheusMock::start_on(ip, PROMETHEUS_PREFIX, behaviour)
        .await
        .map(Some)
}

/// One scenario's live state while its steps run.
struct Session<'a> {
    env: &'a LiveEnv,
    scenario: &'a Scenario,
    helm: HelmMajor,
    render: &'a RenderReport,
    client: kube::Client,
    namespace: String,
    /// What the steps judge; an upgrade across lineages replaces it.
    target: Target,
    /// Whether KEDA's queries reach the backend (directly or through the recording proxy).
    asks_backend: bool,
    /// The scenario's namespace written into the query by the chart (seeds follow it).
    namespace_in_query: Option<NamespaceInQuery>,
    backend: MimirApiBackend,
    mock: Option<PrometheusMock>,
    /// Where the triggers point: the mock or proxy when there is one, else the backend.
    trigger_address: String,
    /// Where the oracle asks: what KEDA asks.
    oracle_base: String,
    started: Instant,
    shared: Arc<Mutex<Shared>>,
    seeder: Option<Seeder>,
    sampler: Option<tokio::task::JoinHandle<()>>,
    release: Option<Release>,
}

impl Session<'_> {
    /// Runs the live steps in order until one fails or the run is interrupted; every claim of
    /// a step not reached is recorded as such.
    async fn run_steps(&mut self, outcome: &mut LiveOutcome) {
        let live_steps: Vec<&Step> = self.scenario.steps.iter().filter(|s| s.is_live()).collect();
        let step_count = live_steps.len();
        let mut reached = 0;
        let mut empty_answer_checked = false;
        for (index, step) in live_steps.iter().copied().enumerate() {
            // Interrupted between steps (during the backend's start or an install): stop here.
            if self.env.stop_token().is_stopped() {
                outcome.interrupted = Some(format!(
                    "the start of step {} of {step_count} ({}) after {:.1}s",
                    index + 1,
                    step.keyword(),
                    self.started.elapsed().as_secs_f64()
                ));
                outcome
                    .reasons
                    .push(format!("{}: not started: {INTERRUPTED}", step.keyword()));
                break;
            }
            let label = step_label(step);
            eprintln!(
                "live: {} [helm {}] step {}/{step_count}: {label}",
                self.scenario.name,
                self.helm.number(),
                index + 1
            );
            if let Ok(mut s) = self.shared.lock() {
                s.step = step.keyword().to_string();
                s.markers
                    .push((self.started.elapsed().as_secs_f64(), label.clone()));
            }
            let (mut result, step_claims) = self.step(step, outcome).await;
            reached += 1;
            // After the first replica expectation, the seeds before it are in the backend: an
            // empty answer to KEDA's query now is a tenant with no data (see `tenancy`).
            if matches!(step, Step::ExpectReplicas(_))
                && !empty_answer_checked
                && result != StepResult::Interrupted
            {
                empty_answer_checked = true;
                result = self
                    .judge_empty_answer(&live_steps[..index], result, outcome)
                    .await;
            }
            outcome.claims.extend(step_claims.unwrap_or_else(|| {
                step.claims()
                    .into_iter()
                    .map(|c| match &result {
                        StepResult::Passed(d) => Claim::held(c, d.clone()),
                        StepResult::Failed(e) => Claim::broken(c, e.clone()),
                        StepResult::Interrupted => Claim::not_reached(c),
                    })
                    .collect()
            }));
            match result {
                StepResult::Passed(line) => outcome
                    .observations
                    .push(format!("{}: {line}", step.keyword())),
                StepResult::Failed(reason) => {
                    outcome
                        .reasons
                        .push(format!("{}: {reason}", step.keyword()));
                    break;
                }
                StepResult::Interrupted => {
                    outcome.interrupted = Some(format!(
                        "step {} of {step_count} ({label}) after {:.1}s",
                        index + 1,
                        self.started.elapsed().as_secs_f64()
                    ));
                    outcome
                        .reasons
                        .push(format!("{}: {INTERRUPTED}", step.keyword()));
                    break;
                }
            }
        }
        for step in live_steps.iter().skip(reached) {
            outcome
                .claims
                .extend(step.claims().into_iter().map(Claim::not_reached));
        }
    }

    /// Runs one step; a step that judges its own claims returns them too.
    async fn step(
        &mut self,
        step: &Step,
        outcome: &mut LiveOutcome,
    ) -> (StepResult, Option<Vec<Claim>>) {
        let result = match step {
            // Not interruptible: `helm install` (no --wait) takes seconds, and stopping half-way
            // would leave a release nobody deletes on an existing cluster.
            Step::Install(_) => self.install().await.into(),
            Step::Seed(s) => match &self.seeder {
                Some(seeder) => {
                    match &self.namespace_in_query {
                        Some(moved) => seeder.set(
                            &s.tenant,
                            moved.apply(&s.series),
                            moved.apply(&s.per_ready_pod),
                        ),
                        None => seeder.set(&s.tenant, s.series.clone(), s.per_ready_pod.clone()),
                    }
                    StepResult::Passed(format!(
                        "seeded tenant {}: {} series, {} per Ready pod",
                        s.tenant,
                        s.series.len(),
                        s.per_ready_pod.len()
                    ))
                }
                None => StepResult::Failed("seed before install".into()),
            },
            Step::ExpectReplicas(e) => {
                unless_interrupted(
                    self.env.stop_token(),
                    expect_replicas(
                        self.env,
                        &self.oracle_base,
                        &self.client,
                        &self.target,
                        e,
                        &self.shared,
                        self.seeder.as_ref(),
                    ),
                )
                .await
            }
            Step::ExpectFlapping(f) => {
                unless_interrupted(self.env.stop_token(), expect_flapping(f, &self.shared)).await
            }
            Step::SetMock(b) => match &self.mock {
                Some(m) => {
                    m.set_behaviour(b.clone());
                    StepResult::Passed(format!("the mock now answers {b:?}"))
                }
                None => StepResult::Failed("set_mock needs `install: {metrics: mock}`".into()),
            },
            Step::Upgrade(u) => self.upgrade(u, outcome).await,
            Step::ExpectRequests(e) => match &self.mock {
                Some(m) => {
                    return tokio::select! {
                        biased;
                        () = self.env.stop_token().stopped() => (StepResult::Interrupted, None),
                        (result, claims) = expect_requests(m, &self.target, e) => {
                            (result.into(), Some(claims))
                        }
                    }
                }
                None => StepResult::Failed(
                    "expect_requests needs `install: {metrics: mock}` or `{metrics: proxy}`".into(),
                ),
            },
            Step::ExpectCondition(c) => {
                unless_interrupted(
                    self.env.stop_token(),
                    expect_condition(&self.client, &self.target, c),
                )
                .await
            }
            Step::ExpectEvent(e) => {
                unless_interrupted(
                    self.env.stop_token(),
                    expect_event(&self.client, &self.target, e),
                )
                .await
            }
            Step::Wait(w) => {
                unless_interrupted(self.env.stop_token(), async {
                    tokio::time::sleep(w.duration.0).await;
                    Ok(format!("waited {:?}", w.duration.0))
                })
                .await
            }
            Step::Render(_) => StepResult::Passed(String::new()),
        };
        (result, None)
    }

    /// Installs the release, then starts seeding and sampling.
    async fn install(&mut self) -> Result<String, String> {
        let images = crate::keda::manifest::images_in(&self.render.manifests);
        let standins = self
            .env
            .prepare_images(&images)
            .await
            .map_err(|e| format!("the chart's images could not be made available: {e}"))?;
        let (release, mut line) = Release::install(
            self.env,
            self.helm,
            self.scenario,
            &self.namespace,
            &self.trigger_address,
        )
        .await?;
        if !standins.is_empty() {
            line.push_str(&format!(
                "; images played by the keda-conformance stand-in (not the real program): {}",
                standins.join(", ")
            ));
        }
        self.release = Some(release);
        self.seeder = Some(Seeder::start(
            self.client.clone(),
            self.backend.push_url(),
            self.target.workload.clone(),
            self.target.selector.clone(),
        ));
        self.restart_sampler();
        Ok(line)
    }

    /// (Re)starts the timeline sampler on the current target.
    fn restart_sampler(&mut self) {
        if let Some(s) = self.sampler.take() {
            s.abort();
        }
        self.sampler = Some(spawn_sampler(
            self.client.clone(),
            self.oracle_base.clone(),
            self.target.clone(),
            self.shared.clone(),
            self.started,
        ));
    }

    /// An upgrade within the lineage, or across lineages when the new chart scales another
    /// workload (later steps and the timeline then follow the new workload).
    async fn upgrade(
        &mut self,
        u: &crate::scenario::UpgradeStep,
        outcome: &mut LiveOutcome,
    ) -> StepResult {
        let Some(release) = self.release.as_mut() else {
            return StepResult::Failed("upgrade before install".into());
        };
        let ctx = UpgradeCtx {
            env: self.env,
            scenario: self.scenario,
            namespace: &self.namespace,
            client: &self.client,
            oracle_base: &self.oracle_base,
            shared: &self.shared,
            seeder: self.seeder.as_ref(),
        };
        let next = new_lineage_target(
            self.env,
            self.scenario,
            u,
            self.helm,
            &self.namespace,
            &self.target,
        )
        .await;
        match next {
            Some(next) => {
                let result = unless_interrupted(
                    self.env.stop_token(),
                    upgrade_across(
                        &ctx,
                        release,
                        u,
                        &self.target,
                        &next,
                        &mut outcome.lineage_upgrade,
                    ),
                )
                .await;
                self.target = next;
                if self.sampler.is_some() {
                    self.restart_sampler();
                }
                result
            }
            None => {
                unless_interrupted(
                    self.env.stop_token(),
                    upgrade(&ctx, release, u, &self.target),
                )
                .await
            }
        }
    }
}

/// How a step is named in progress lines and on the timeline.
fn step_label(step: &Step) -> String {
    match step {
        Step::Seed(seed) => format!(
            "seed {} {}",
            seed.tenant,
            seed.series
                .iter()
                .filter_map(|x| x.value)
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Step::ExpectReplicas(e) => format!(
            "expect {}",
            e.exact
                .map(|n| n.to_string())
                .unwrap_or_else(|| "oracle".into())
        ),
        Step::SetMock(_) => "set_mock".into(),
        other => other.keyword().to_string(),
    }
}
