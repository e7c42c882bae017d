//! Runs the live steps of one scenario on a [`LiveEnv`]: installs the chart with real Helm
//! (triggers pointed at the backend by a values override), seeds tenants' metrics, and judges
//! expectations on observed cluster state, sampling a timeline throughout. Leaves evidence.

use super::env::LiveEnv;
use super::observe::{self, Workload};
use super::seeder::Seeder;
use super::tenancy;
use super::timeline::{self, Sample};
use crate::backend::cortex::{MimirApiBackend, PROMETHEUS_PREFIX};
use crate::backend::query::{instant, keda_value};
use crate::chart::helm::{Helm, HelmMajor};
use crate::chart::values::UserValues;
use crate::checks::TriggerRequest;
use crate::claim::Claim;
use crate::keda::manifest::{self, Manifest};
use crate::mock::{Behaviour, PrometheusMock, Recorded};
use crate::oracle::HpaModel;
use crate::render::RenderReport;
use crate::scenario::{ExpectCondition, ExpectEvent, ExpectReplicas, Scenario, Step};
use crate::scenario::{ExpectRequests, MetricsEndpoint};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// The reason a step reports when the run is interrupted while it runs.
pub const INTERRUPTED: &str = "interrupted (SIGINT/SIGTERM)";

/// Runs a step unless the run is interrupted first; then the step fails with [`INTERRUPTED`].
async fn unless_interrupted(
    step: impl std::future::Future<Output = Result<String, String>>,
) -> Result<String, String> {
    tokio::select! {
        biased;
        () = crate::cleanup::interrupted() => Err(INTERRUPTED.to_string()),
        r = step => r,
    }
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
    /// 0 (only KEDA's own poll activates), plus the downscale stabilization window when
    /// scaling down.
    pub bound: f64,
}

/// What the render tier says about the autoscaling under test.
#[derive(Debug, Clone)]
struct Target {
    scaled_object: String,
    /// The HPA KEDA creates for it (its configured name, else `keda-hpa-<ScaledObject>`).
    hpa: String,
    /// What the ScaledObject's HPA behavior does to scale-up and scale-down timing.
    scale_up: crate::oracle::DirectionDelay,
    /// See `scale_up`.
    scale_down: crate::oracle::DirectionDelay,
    workload: Workload,
    selector: String,
    trigger: TriggerRequest,
    model: HpaModel,
    polling: Duration,
    fallback_replicas: Option<i32>,
}

impl Target {
    /// How long the HPA holds back a change up (`up`) or down, beyond its sync period: the
    /// stabilization window the ScaledObject's behavior sets (else the controller's: 0 up,
    /// its downscale stabilization down) plus the time its scaling policies take.
    fn delay(&self, up: bool, env: &LiveEnv) -> Duration {
        let d = if up { self.scale_up } else { self.scale_down };
        let default = if up {
            Duration::ZERO
        } else {
            env.hpa.downscale_stabilization
        };
        d.stabilization.unwrap_or(default) + d.policies
    }

    /// The headers the trigger sends (its customHeaders and the auth header from its
    /// TriggerAuthentication), as KEDA names them.
    fn headers(&self) -> Vec<(String, String)> {
        self.trigger.request.headers.clone()
    }

    /// How long KEDA waits for an answer: the trigger's timeout, else KEDA's global HTTP
    /// timeout (3 s).
    fn keda_timeout(&self) -> Duration {
        self.trigger
            .config
            .timeout
            .unwrap_or(Duration::from_secs(3))
    }

    /// An HTTP client for the harness's own queries, which the oracle cuts off at
    /// [`Target::keda_timeout`] (the client itself allows a second more).
    fn query_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(self.keda_timeout() + Duration::from_secs(1))
            .build()
            .unwrap_or_default()
    }
}

fn target_from_render(
    render: &RenderReport,
    manifests: &[Manifest],
    namespace: &str,
    tolerance: f64,
) -> Result<Target, String> {
    let so = manifests
        .iter()
        .find(|m| m.is_keda("ScaledObject"))
        .ok_or("the chart renders no ScaledObject")?;
    let spec = &so.body["spec"];
    let kind = spec["scaleTargetRef"]["kind"]
        .as_str()
        .unwrap_or("Deployment")
        .to_string();
    let name = spec["scaleTargetRef"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let workload_manifest = manifests
        .iter()
        .find(|m| m.kind == kind && m.name == name)
        .ok_or_else(|| format!("scaleTargetRef {kind}/{name} is not rendered"))?;
    let selector = workload_manifest.body["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let trigger = render
        .verdict
        .requests
        .iter()
        .find(|r| r.subject.starts_with(&format!("ScaledObject/{} ", so.name)))
        .cloned()
        .ok_or("the ScaledObject has no prometheus trigger KEDA can parse")?;
    let int = |v: &Value| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let model = HpaModel {
        target: trigger.config.threshold,
        metric_type: trigger.config.metric_type,
        min_replicas: int(&spec["minReplicaCount"]).unwrap_or(0).max(0) as u32,
        max_replicas: int(&spec["maxReplicaCount"]).unwrap_or(100).max(0) as u32,
        tolerance,
    };
    let behavior = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
    let span = model.max_replicas.saturating_sub(model.hpa_min()).max(1);
    Ok(Target {
        scaled_object: so.name.clone(),
        hpa: manifest::keda_hpa_name(&so.name, &so.body),
        scale_up: crate::oracle::direction_delay(behavior, "scaleUp", span),
        scale_down: crate::oracle::direction_delay(behavior, "scaleDown", span),
        workload: Workload {
            kind,
            name,
            namespace: namespace.to_string(),
        },
        selector,
        trigger,
        model,
        polling: Duration::from_secs(int(&spec["pollingInterval"]).unwrap_or(30).max(1) as u64),
        fallback_replicas: int(&spec["fallback"]["replicas"]).map(|r| r as i32),
    })
}

/// Points every `metadata.serverAddress` under a `triggers` list at `address`; returns how
/// many were replaced.
pub fn override_server_address(values: &mut Value, address: &str) -> usize {
    fn walk(v: &mut Value, in_triggers: bool, address: &str, n: &mut usize) {
        match v {
            Value::Object(m) => {
                if in_triggers {
                    if let Some(Value::Object(meta)) = m.get_mut("metadata") {
                        if meta.contains_key("serverAddress") {
                            meta.insert("serverAddress".into(), Value::String(address.into()));
                            *n += 1;
                        }
                    }
                }
                for (k, child) in m.iter_mut() {
                    walk(child, k == "triggers", address, n);
                }
            }
            Value::Array(a) => {
                for child in a {
                    walk(child, in_triggers, address, n);
                }
            }
            _ => {}
        }
    }
    let mut n = 0;
    walk(values, false, address, &mut n);
    n
}

fn namespace_for(scenario: &str, helm: HelmMajor) -> String {
    let mut base: String = scenario
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    base.truncate(40);
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 100_000)
        .unwrap_or(0);
    format!("{}-h{}-{suffix}", base.trim_end_matches('-'), helm.number())
}

struct Shared {
    samples: Vec<Sample>,
    step: String,
    markers: Vec<(f64, String)>,
    latencies: Vec<StepLatency>,
}

/// Runs the live steps of `scenario` (everything after `render`).
pub async fn run(
    env: &LiveEnv,
    scenario: &Scenario,
    helm: HelmMajor,
    render: &RenderReport,
    out_dir: &Path,
) -> LiveOutcome {
    let mut outcome = LiveOutcome::default();
    if crate::cleanup::is_interrupted() {
        outcome.interrupted = Some("its wait for a free slot (not started)".into());
        outcome.reasons.push(format!("not started: {INTERRUPTED}"));
        return outcome;
    }
    let namespace = namespace_for(&scenario.name, helm);
    let manifests = manifest::split(&render.rendered).unwrap_or_default();
    let mut target = match target_from_render(render, &manifests, &namespace, env.hpa.tolerance) {
        Ok(t) => t,
        Err(e) => {
            outcome
                .reasons
                .push(format!("cannot run the live steps: {e}"));
            // A ScaledObject whose target is not rendered: install anyway, so the verdict
            // carries KEDA's own conclusion next to the render check.
            let so = manifests.iter().find(|m| m.is_keda("ScaledObject"));
            let installs = scenario.steps.iter().any(|s| matches!(s, Step::Install(_)));
            if let (Some(so), true, true) = (so, installs, e.contains("is not rendered")) {
                keda_on_missing_target(env, scenario, helm, &namespace, render, so, &mut outcome)
                    .await;
            }
            return outcome;
        }
    };
    // The render tier judged what Helm rendered for `render.capabilities`; the install asks
    // the cluster itself. Say so when the two would differ for this chart.
    match env.capabilities().await {
        Ok(live) => {
            for d in render
                .capabilities
                .differences(live, &render.gated_api_versions)
            {
                outcome.observations.push(format!(
                    "warning: the render tier and the cluster disagree on capabilities: {d}; the install renders for the cluster (render with --kube-version/--api-versions of the cluster to judge the same manifests)"
                ));
            }
        }
        Err(e) => outcome.observations.push(format!(
            "warning: the cluster's capabilities could not be read: {e}"
        )),
    }
    let client = env.client().clone();
    let backend = match env.start_backend(&namespace).await {
        Ok(b) => b,
        Err(e) => {
            outcome
                .reasons
                .push(format!("cannot start the Mimir-API backend: {e}"));
            return outcome;
        }
    };
    let started = Instant::now();
    let shared = Arc::new(Mutex::new(Shared {
        samples: Vec::new(),
        step: "install".into(),
        markers: Vec::new(),
        latencies: Vec::new(),
    }));
    let mut seeder: Option<Seeder> = None;
    let mut sampler: Option<tokio::task::JoinHandle<()>> = None;
    let mut installed: Option<(Helm, tempfile_guard::Guard)> = None;
    // A recording mock (or proxy in front of the backend) when the install step asks for one.
    let endpoint = scenario.steps.iter().find_map(|s| match s {
        Step::Install(i) => Some(i.clone()),
        _ => None,
    });
    let mock = match endpoint.as_ref().map(|i| i.metrics) {
        Some(MetricsEndpoint::Mock) => Some(
            PrometheusMock::start(
                PROMETHEUS_PREFIX,
                endpoint
                    .as_ref()
                    .and_then(|i| i.mock.clone())
                    .unwrap_or(Behaviour::Empty),
            )
            .await,
        ),
        Some(MetricsEndpoint::Proxy) => Some(
            PrometheusMock::start(PROMETHEUS_PREFIX, Behaviour::Forward(backend.base_url())).await,
        ),
        _ => None,
    };
    let trigger_address = mock
        .as_ref()
        .map(|m| m.server_address())
        .unwrap_or_else(|| backend.prometheus_url());
    // The oracle asks what KEDA asks: the mock when there is one, else the backend.
    let oracle_base = match endpoint.as_ref().map(|i| i.metrics) {
        Some(MetricsEndpoint::Mock) => trigger_address.clone(),
        _ => backend.prometheus_url(),
    };
    let live_steps: Vec<&Step> = scenario.steps.iter().filter(|s| s.is_live()).collect();
    let step_count = live_steps.len();
    let mut reached = 0;
    let mut empty_answer_checked = false;
    for (index, step) in live_steps.iter().copied().enumerate() {
        let mut step_claims: Option<Vec<Claim>> = None;
        // Interrupted between steps (during the backend's start or an install): stop here.
        if crate::cleanup::is_interrupted() {
            outcome.interrupted = Some(format!(
                "the start of step {} of {step_count} ({}) after {:.1}s",
                index + 1,
                step.keyword(),
                started.elapsed().as_secs_f64()
            ));
            outcome
                .reasons
                .push(format!("{}: not started: {INTERRUPTED}", step.keyword()));
            break;
        }
        if let Ok(mut s) = shared.lock() {
            s.step = step.keyword().to_string();
            let label = match step {
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
            };
            eprintln!(
                "live: {} [helm {}] step {}/{step_count}: {label}",
                scenario.name,
                helm.number(),
                index + 1
            );
            s.markers.push((started.elapsed().as_secs_f64(), label));
        }
        let result: Result<String, String> = match step {
            Step::Install(_) => {
                // Not interruptible: `helm install` (no --wait) takes seconds, and stopping
                // half-way would leave a release nobody deletes on an existing cluster.
                match install(env, &trigger_address, scenario, helm, &namespace).await {
                    Ok((h, guard, line)) => {
                        installed = Some((h, guard));
                        seeder = Some(Seeder::start(
                            client.clone(),
                            backend.push_url(),
                            target.workload.clone(),
                            target.selector.clone(),
                        ));
                        sampler = Some(spawn_sampler(
                            client.clone(),
                            oracle_base.clone(),
                            target.clone(),
                            shared.clone(),
                            started,
                        ));
                        Ok(line)
                    }
                    Err(e) => Err(e),
                }
            }
            Step::Seed(s) => match &seeder {
                Some(seeder) => {
                    seeder.set(&s.tenant, s.series.clone(), s.per_ready_pod.clone());
                    Ok(format!(
                        "seeded tenant {}: {} series, {} per Ready pod",
                        s.tenant,
                        s.series.len(),
                        s.per_ready_pod.len()
                    ))
                }
                None => Err("seed before install".into()),
            },
            Step::ExpectReplicas(e) => {
                unless_interrupted(expect_replicas(
                    env,
                    &oracle_base,
                    &client,
                    &target,
                    e,
                    &shared,
                    seeder.as_ref(),
                ))
                .await
            }
            Step::ExpectFlapping(f) => unless_interrupted(expect_flapping(f, &shared)).await,
            Step::SetMock(b) => match &mock {
                Some(m) => {
                    m.set_behaviour(b.clone());
                    Ok(format!("the mock now answers {b:?}"))
                }
                None => Err("set_mock needs `install: {metrics: mock}`".into()),
            },
            Step::Upgrade(u) => {
                match new_lineage_target(env, scenario, u, helm, &namespace, &target).await {
                    Some(next) => {
                        let ctx = UpgradeCtx {
                            env,
                            address: &trigger_address,
                            scenario,
                            helm,
                            namespace: &namespace,
                            client: &client,
                            oracle_base: &oracle_base,
                        };
                        let result = unless_interrupted(upgrade_across(
                            &ctx,
                            u,
                            &target,
                            &next,
                            &shared,
                            seeder.as_ref(),
                            &mut outcome.lineage_upgrade,
                        ))
                        .await;
                        // Later steps (and the timeline) follow the new workload.
                        target = next;
                        if let Some(s) = sampler.take() {
                            s.abort();
                            sampler = Some(spawn_sampler(
                                client.clone(),
                                oracle_base.clone(),
                                target.clone(),
                                shared.clone(),
                                started,
                            ));
                        }
                        result
                    }
                    None => {
                        unless_interrupted(upgrade(
                            env,
                            &trigger_address,
                            scenario,
                            u,
                            helm,
                            &namespace,
                            &client,
                            &target,
                            &oracle_base,
                        ))
                        .await
                    }
                }
            }
            Step::ExpectRequests(e) => match &mock {
                Some(m) => tokio::select! {
                    biased;
                    () = crate::cleanup::interrupted() => Err(INTERRUPTED.to_string()),
                    (result, claims) = expect_requests(m, &target, e) => {
                        step_claims = Some(claims);
                        result
                    }
                },
                None => Err(
                    "expect_requests needs `install: {metrics: mock}` or `{metrics: proxy}`".into(),
                ),
            },
            Step::ExpectCondition(c) => {
                unless_interrupted(expect_condition(&client, &target, c)).await
            }
            Step::ExpectEvent(e) => unless_interrupted(expect_event(&client, &target, e)).await,
            Step::Wait(w) => {
                unless_interrupted(async {
                    tokio::time::sleep(w.duration.0).await;
                    Ok(format!("waited {:?}", w.duration.0))
                })
                .await
            }
            Step::Render(_) => Ok(String::new()),
        };
        reached += 1;
        let interrupted = matches!(&result, Err(r) if r == INTERRUPTED);
        // After the first replica expectation, the seeds before it are in the backend: an
        // empty answer to KEDA's query now is a tenant with no data (see `tenancy`).
        let mut result = result;
        if matches!(step, Step::ExpectReplicas(_)) && !empty_answer_checked && !interrupted {
            empty_answer_checked = true;
            let seeded: Vec<String> = live_steps[..index]
                .iter()
                .filter_map(|s| match s {
                    Step::Seed(seed)
                        if !seed.series.is_empty() || !seed.per_ready_pod.is_empty() =>
                    {
                        Some(seed.tenant.clone())
                    }
                    _ => None,
                })
                .collect();
            let asks_backend = !matches!(
                endpoint.as_ref().map(|i| i.metrics),
                Some(MetricsEndpoint::Mock)
            );
            let finding = if asks_backend {
                tenancy::check(
                    &target.query_client(),
                    &backend.prometheus_url(),
                    &target.trigger.config.query,
                    &target.headers(),
                    &seeded,
                )
                .await
            } else {
                None
            };
            if let Some(f) = finding {
                match tenancy::judge(
                    &f,
                    scenario.live.empty_answer,
                    target.trigger.config.ignore_null_values,
                ) {
                    Ok(Some(warning)) => outcome.observations.push(warning),
                    Ok(None) => {}
                    Err(failure) => {
                        result = Err(match result {
                            Ok(line) => format!("{failure} (the workload did reach what that answer calls for: {line})"),
                            Err(e) => format!("{failure}; {e}"),
                        });
                    }
                }
                outcome.empty_answer = Some(f);
            }
        }
        outcome.claims.extend(step_claims.unwrap_or_else(|| {
            step.claims()
                .into_iter()
                .map(|c| {
                    if interrupted {
                        Claim::not_reached(c)
                    } else {
                        Claim::from_result(c, &result)
                    }
                })
                .collect()
        }));
        match result {
            Ok(line) => outcome
                .observations
                .push(format!("{}: {line}", step.keyword())),
            Err(reason) => {
                if reason == INTERRUPTED {
                    let label = shared.lock().ok().and_then(|s| s.markers.last().cloned());
                    outcome.interrupted = Some(format!(
                        "step {} of {step_count} ({}) after {:.1}s",
                        index + 1,
                        label.map(|l| l.1).unwrap_or_else(|| step.keyword().into()),
                        started.elapsed().as_secs_f64()
                    ));
                }
                outcome
                    .reasons
                    .push(format!("{}: {reason}", step.keyword()));
                break;
            }
        }
    }
    for step in live_steps.iter().skip(reached) {
        outcome
            .claims
            .extend(step.claims().into_iter().map(Claim::not_reached));
    }
    if let Some(s) = sampler.take() {
        s.abort();
    }
    drop(seeder);
    let markers = shared.lock().map(|s| s.markers.clone()).unwrap_or_default();
    outcome.timeline = shared.lock().map(|s| s.samples.clone()).unwrap_or_default();
    outcome.latencies = shared
        .lock()
        .map(|s| s.latencies.clone())
        .unwrap_or_default();
    let dir = out_dir.join(format!("{}-helm{}", scenario.name, helm.number()));
    let verdict = if outcome.interrupted.is_some() {
        "INTERRUPTED"
    } else if outcome.reasons.is_empty() {
        "PASS"
    } else {
        "FAIL"
    };
    if private_dir_no_links(&dir).is_ok() {
        let _ = std::fs::write(dir.join("timeline.csv"), timeline::csv(&outcome.timeline));
        let _ = std::fs::write(
            dir.join("timeline.svg"),
            timeline::svg(
                &outcome.timeline,
                &markers,
                &format!("{} [helm {}]: {verdict}", scenario.name, helm.number()),
            ),
        );
        if let Some(at) = &outcome.interrupted {
            let _ = std::fs::write(
                dir.join("interrupted.txt"),
                format!("interrupted (SIGINT/SIGTERM) during {at}; the evidence here is what had been gathered by then\n"),
            );
        }
        if !outcome.reasons.is_empty() {
            write_evidence(
                env, &backend, &client, &target, &namespace, render, &outcome, &dir,
            )
            .await;
        }
        outcome.evidence_dir = Some(dir);
    }
    if installed.is_some() {
        outcome.final_state = crate::report::redactor_for(&[render]).apply(
            &observe::describe(&client, &namespace, &target.scaled_object, &target.hpa).await,
        );
    }
    if let Some(m) = &mock {
        outcome.requests = keda_requests(m).iter().map(redacted).collect();
    }
    // Interrupted: no `helm uninstall --wait`; deleting the namespace removes the release.
    if let Some((h, _guard)) = installed {
        let wait = outcome.interrupted.is_none();
        remove_release(env, &h, &client, &scenario.release, &namespace, wait).await;
    }
    if let (Some(m), Some(dir)) = (&mock, &outcome.evidence_dir) {
        let redactor = crate::report::redactor_for(&[render]);
        let lines: Vec<String> = keda_requests(m)
            .iter()
            .map(|r| redactor.apply(&serde_json::to_string(&redacted(r)).unwrap_or_default()))
            .collect();
        let _ = std::fs::write(dir.join("requests.jsonl"), lines.join("\n") + "\n");
    }
    drop(mock);
    drop(backend);
    outcome
}

/// Creates `dir` (and missing parents) for evidence, owner-only (it names clusters, tenants and
/// queries). A symbolic link there is refused, never followed: evidence written through a link
/// planted in `--out` would land, with its permissions changed, wherever the link points.
pub fn private_dir_no_links(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Ok(m) = std::fs::symlink_metadata(dir) {
        if m.file_type().is_symlink() {
            return Err(std::io::Error::other(format!(
                "{} is a symbolic link; evidence is not written through links",
                dir.display()
            )));
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Installs a chart whose ScaledObject scales a workload the chart does not render, waits
/// (up to 60 s) for KEDA to mark the ScaledObject not Ready, and records KEDA's condition and
/// events as observations and its final state; then removes the release and namespace.
async fn keda_on_missing_target(
    env: &LiveEnv,
    scenario: &Scenario,
    helm: HelmMajor,
    namespace: &str,
    render: &RenderReport,
    so: &manifest::Manifest,
    outcome: &mut LiveOutcome,
) {
    let so_name = so.name.as_str();
    let hpa_name = manifest::keda_hpa_name(&so.name, &so.body);
    let client = env.client().clone();
    let backend = match env.start_backend(namespace).await {
        Ok(b) => b,
        Err(e) => {
            outcome
                .reasons
                .push(format!("cannot start the Mimir-API backend: {e}"));
            return;
        }
    };
    let (h, _guard) = match install(env, &backend.prometheus_url(), scenario, helm, namespace).await
    {
        Ok((h, guard, line)) => {
            outcome.observations.push(format!("install: {line}"));
            (h, guard)
        }
        Err(e) => {
            outcome.reasons.push(format!("install: {e}"));
            return;
        }
    };
    let start = Instant::now();
    let mut seen: Option<observe::Condition> = None;
    while start.elapsed() < Duration::from_secs(60) {
        let ready = observe::scaled_object(&client, namespace, so_name)
            .await
            .ok()
            .flatten()
            .map(|so| observe::scaled_object_conditions(&so))
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.status != "Unknown" && !c.status.is_empty());
        if let Some(c) = ready {
            seen = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    match seen {
        Some(c) => outcome.observations.push(format!(
            "KEDA: ScaledObject {so_name} Ready={} {}: {}",
            c.status, c.reason, c.message
        )),
        None => outcome.observations.push(format!(
            "KEDA: ScaledObject {so_name} has no Ready condition after 60s"
        )),
    }
    let events = observe::events(&client, namespace)
        .await
        .unwrap_or_default();
    for e in events.iter().filter(|e| e.type_ == "Warning").take(5) {
        outcome.observations.push(format!(
            "KEDA event: {} {} {}: {}",
            e.object, e.type_, e.reason, e.message
        ));
    }
    outcome.final_state = crate::report::redactor_for(&[render])
        .apply(&observe::describe(&client, namespace, so_name, &hpa_name).await);
    remove_release(env, &h, &client, &scenario.release, namespace, true).await;
}

/// Uninstalls the release (waiting up to a minute when `wait`) and deletes its namespace,
/// which removes whatever the uninstall left.
async fn remove_release(
    env: &LiveEnv,
    helm: &Helm,
    client: &kube::Client,
    release: &str,
    namespace: &str,
    wait: bool,
) {
    if wait {
        let _ = helm.run(
            &[
                "uninstall".into(),
                format!("--namespace={namespace}"),
                "--wait".into(),
                "--timeout=60s".into(),
                "--".into(),
                release.to_string(),
            ],
            Some(&env.kubeconfig()),
        );
    }
    let ns_api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    let _ = ns_api.delete(namespace, &Default::default()).await;
}

/// Header the harness's own queries carry, so they are told apart from KEDA's at the mock.
pub const ORACLE_MARKER: &str = "X-Keda-Conformance-Oracle";

/// Headers KEDA's HTTP client (Go's net/http) sends on its own.
const ORDINARY_HEADERS: &[&str] = &["user-agent", "accept-encoding", "host", "connection"];

/// The requests KEDA made (the harness's own queries left out).
pub fn keda_requests(mock: &PrometheusMock) -> Vec<Recorded> {
    mock.recorded()
        .into_iter()
        .filter(|r| r.header(ORACLE_MARKER).is_none())
        .collect()
}

/// A copy with sensitive header values redacted.
pub fn redacted(r: &Recorded) -> Recorded {
    let mut r = r.clone();
    for (n, v) in r.headers.iter_mut() {
        if crate::redact::is_sensitive_header(n) {
            *v = crate::redact::REDACTED.to_string();
        }
    }
    r
}

/// Judges the requests KEDA sent to the mock or proxy: the step's result and one claim per
/// thing it proves (count, shape, each header, each query parameter, no other headers, rate).
async fn expect_requests(
    mock: &PrometheusMock,
    target: &Target,
    e: &ExpectRequests,
) -> (Result<String, String>, Vec<Claim>) {
    let within = e.within.map(|s| s.0).unwrap_or(Duration::from_secs(60));
    let min = e.min_count.unwrap_or(2);
    let start = Instant::now();
    let since_ms = if e.only_new { mock.now_ms() } else { 0 };
    let requests = loop {
        let r: Vec<Recorded> = keda_requests(mock)
            .into_iter()
            .filter(|r| r.at_ms >= since_ms)
            .collect();
        if r.len() >= min {
            break r;
        }
        if start.elapsed() > within {
            let why = format!(
                "KEDA sent {} request(s) to the mock within {:.0}s, expected at least {min}",
                r.len(),
                within.as_secs_f64()
            );
            let mut claims = vec![Claim::broken(e.count_claim(), why.clone())];
            claims.extend(e.claims().into_iter().skip(1).map(Claim::not_reached));
            return (Err(why), claims);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let path = format!("{}/api/v1/query", mock.prefix());
    // Problems per claim, in the step's claim order.
    let mut problems: Vec<(String, Vec<String>)> =
        e.claims().into_iter().map(|c| (c, Vec::new())).collect();
    let mut note = |claim: &str, problem: String| {
        if let Some((_, list)) = problems.iter_mut().find(|(c, _)| c == claim) {
            if !list.contains(&problem) {
                list.push(problem);
            }
        }
    };
    let configured: Vec<String> = target
        .headers()
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    for (i, r) in requests.iter().enumerate() {
        let at = format!("request {} at {:.1}s", i + 1, r.at_ms as f64 / 1000.0);
        if r.method != "GET" || r.path != path {
            note(
                ExpectRequests::SHAPE_CLAIM,
                format!("{at}: {} {} (expected GET {path})", r.method, r.path),
            );
        }
        if r.query.get("query") != Some(&target.trigger.config.query) {
            note(
                ExpectRequests::SHAPE_CLAIM,
                format!(
                    "{at}: query {:?} differs from the rendered {:?}",
                    r.query.get("query"),
                    target.trigger.config.query
                ),
            );
        }
        for (name, value) in &e.headers {
            let claim = ExpectRequests::header_claim(name);
            match r.header(name) {
                Some(v) if v == value => {}
                Some(v) => note(
                    &claim,
                    format!("{at}: header {name} is {v:?}, expected {value:?}"),
                ),
                None => note(&claim, format!("{at}: header {name} missing")),
            }
        }
        for (k, v) in &e.query_parameters {
            if r.query.get(k) != Some(v) {
                note(
                    &ExpectRequests::parameter_claim(k),
                    format!(
                        "{at}: query parameter {k}={v} missing (got {:?})",
                        r.query.get(k)
                    ),
                );
            }
        }
        if e.no_other_headers {
            for (n, _) in &r.headers {
                let lower = n.to_ascii_lowercase();
                let expected = e.headers.keys().any(|h| h.eq_ignore_ascii_case(n));
                if !ORDINARY_HEADERS.contains(&lower.as_str())
                    && !configured.contains(&lower)
                    && !expected
                {
                    note(
                        ExpectRequests::NO_OTHER_HEADERS_CLAIM,
                        format!("{at}: unexpected header {n} (the chart did not configure it)"),
                    );
                }
            }
        }
    }
    let gaps: Vec<u128> = requests
        .windows(2)
        .map(|w| w[1].at_ms - w[0].at_ms)
        .collect();
    let worst = gaps.iter().max().copied().unwrap_or(0);
    let least = gaps.iter().min().copied().unwrap_or(0);
    if let (Some(min_gap), Some(claim)) = (e.min_interval, e.min_interval_claim()) {
        if least < min_gap.0.as_millis() {
            note(
                &claim,
                format!(
                    "the smallest gap between requests was {:.1}s, less than {:.1}s",
                    least as f64 / 1000.0,
                    min_gap.0.as_secs_f64()
                ),
            );
        }
    }
    if let (Some(max), Some(claim)) = (e.max_interval, e.interval_claim()) {
        if worst > max.0.as_millis() {
            note(
                &claim,
                format!(
                    "the largest gap between requests was {:.1}s, more than {:.1}s",
                    worst as f64 / 1000.0,
                    max.0.as_secs_f64()
                ),
            );
        }
    }
    let sample = redacted(&requests[0]);
    let claims: Vec<Claim> = problems
        .iter()
        .map(|(claim, list)| {
            if !list.is_empty() {
                let mut shown = list.clone();
                shown.truncate(6);
                return Claim::broken(claim.clone(), shown.join("; "));
            }
            let detail = match claim {
                c if *c == e.count_claim() => format!("{} requests", requests.len()),
                c if c == ExpectRequests::SHAPE_CLAIM => format!("GET {path}"),
                c if Some(c) == e.interval_claim().as_ref() => {
                    format!("largest gap {:.1}s", worst as f64 / 1000.0)
                }
                c if Some(c) == e.min_interval_claim().as_ref() => {
                    format!("smallest gap {:.1}s", least as f64 / 1000.0)
                }
                c => e
                    .headers
                    .keys()
                    .find(|h| *c == ExpectRequests::header_claim(h))
                    .and_then(|h| sample.header(h))
                    .map(|v| format!("value {v:?} on every request"))
                    .unwrap_or_else(|| "on every request".into()),
            };
            Claim::held(claim.clone(), detail)
        })
        .collect();
    let mut all: Vec<String> = problems.into_iter().flat_map(|(_, l)| l).collect();
    let result = if all.is_empty() {
        let shown: Vec<String> = sample
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        Ok(format!("{} requests from KEDA, all GET {path} with the rendered query; headers of the first: {}", requests.len(), shown.join(", ")))
    } else {
        all.truncate(12);
        Err(all.join("; "))
    };
    (result, claims)
}

mod tempfile_guard {
    /// Keeps a temporary directory (the prepared chart, the values override) alive.
    pub struct Guard(#[allow(dead_code)] pub Vec<Box<dyn std::any::Any + Send>>);
}

async fn install(
    env: &LiveEnv,
    address: &str,
    scenario: &Scenario,
    helm: HelmMajor,
    namespace: &str,
) -> Result<(Helm, tempfile_guard::Guard, String), String> {
    let h = Helm::locate(helm).map_err(|e| e.to_string())?;
    let chart = crate::chart::source::prepare(&scenario.chart, scenario.version.as_deref())
        .map_err(|e| e.to_string())?;
    let mut values = UserValues::load(&scenario.values, &scenario.set)
        .map_err(|e| e.to_string())?
        .merged;
    let replaced = override_server_address(&mut values, address);
    if replaced == 0 {
        return Err("no trigger metadata.serverAddress in the values to point at the backend; set it in a values file".into());
    }
    let (mut args, tmp) = release_args(
        "install",
        scenario,
        &chart.dir,
        namespace,
        &scenario.values,
        &values,
    )?;
    args.insert(1, "--create-namespace".into());
    let kubeconfig = env.kubeconfig();
    let h2 = h.clone();
    let out = tokio::task::spawn_blocking(move || h2.run(&args, Some(&kubeconfig)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let first = out
        .lines()
        .find(|l| l.starts_with("STATUS"))
        .unwrap_or("installed")
        .to_string();
    Ok((h, tempfile_guard::Guard(vec![Box::new(chart), Box::new(tmp)]), format!("helm {} install {} in {namespace} ({first}); {replaced} trigger(s) pointed at {address}", helm.number(), scenario.release)))
}

/// The oracle's view now: KEDA's value for the trigger (or its error) and the expected count.
async fn oracle(
    http: &reqwest::Client,
    base: &str,
    target: &Target,
    current: i32,
    ready: i32,
) -> (Result<f64, String>, Option<i32>) {
    let mut headers = target.headers();
    headers.push((ORACLE_MARKER.to_string(), "1".to_string()));
    // KEDA gives up after the trigger's timeout (its global HTTP timeout, 3 s, by default).
    let limit = target.keda_timeout();
    let answer = match tokio::time::timeout(limit, instant(http, base, &target.trigger.config.query, &headers)).await {
        Ok(a) => a.map_err(|e| e.to_string()),
        Err(_) => Err(format!("context deadline exceeded (Client.Timeout exceeded while awaiting headers) after {limit:?}")),
    };
    let value = match answer.map_err(|e| e.to_string()) {
        Ok(a) => keda_value(
            &a,
            &target.trigger.config.query,
            target.trigger.config.ignore_null_values,
        ),
        Err(e) => Err(e.to_string()),
    };
    let expected = match &value {
        Ok(v)
            if target.model.min_replicas == 0
                && *v <= target.trigger.config.activation_threshold =>
        {
            Some(0)
        }
        Ok(v) => Some(
            target
                .model
                .desired(*v, current.max(0) as u32, ready.max(0) as u32) as i32,
        ),
        Err(_) => target.fallback_replicas,
    };
    (value, expected)
}

fn spawn_sampler(
    client: kube::Client,
    base: String,
    target: Target,
    shared: Arc<Mutex<Shared>>,
    started: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = target.query_client();
        loop {
            let r = observe::replicas(&client, &target.workload)
                .await
                .unwrap_or_default();
            let (value, expected) = oracle(&http, &base, &target, r.spec, r.ready).await;
            let hpa_desired = observe::hpa(&client, &target.workload.namespace, &target.hpa)
                .await
                .ok()
                .flatten()
                .and_then(|h| h.status.map(|s| s.desired_replicas));
            if let Ok(mut s) = shared.lock() {
                let step = s.step.clone();
                s.samples.push(Sample {
                    t: started.elapsed().as_secs_f64(),
                    metric: value.as_ref().ok().copied(),
                    metric_error: value.err(),
                    expected,
                    hpa_desired,
                    spec: r.spec,
                    ready: r.ready,
                    step,
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// The default deadline for reaching a replica count: one polling interval (activation), the
/// HPA's sync periods, the slower direction's delay from the ScaledObject's HPA behavior
/// (stabilization window and scaling policies), and room for pods to become Ready.
fn default_deadline(env: &LiveEnv, target: &Target) -> Duration {
    target.polling
        + env.hpa.sync_period * 4
        + target.delay(true, env).max(target.delay(false, env))
        + Duration::from_secs(30)
}

async fn expect_replicas(
    env: &LiveEnv,
    oracle_base: &str,
    client: &kube::Client,
    target: &Target,
    e: &ExpectReplicas,
    shared: &Arc<Mutex<Shared>>,
    seeder: Option<&Seeder>,
) -> Result<String, String> {
    let within = e
        .within
        .map(|s| s.0)
        .unwrap_or_else(|| default_deadline(env, target));
    let hold = e.hold.map(|s| s.0).unwrap_or(Duration::from_secs(10));
    let http = target.query_client();
    let base = oracle_base.to_string();
    let start = Instant::now();
    let mut converged_at: Option<(Instant, i32)> = None;
    let mut initial: Option<i32> = None;
    loop {
        let r = observe::replicas(client, &target.workload)
            .await
            .map_err(|e| {
                format!(
                    "reading {}/{}: {e}",
                    target.workload.kind, target.workload.name
                )
            })?;
        initial.get_or_insert(r.spec);
        let (value, oracle_expected) = oracle(&http, &base, target, r.spec, r.ready).await;
        let expected = if e.oracle { oracle_expected } else { e.exact };
        let metric = match &value {
            Ok(v) => format!("metric {v}"),
            Err(err) => format!("KEDA would error: {err}"),
        };
        let last = format!(
            "spec {} status {} ready {}; {metric}; expected {}",
            r.spec,
            r.status,
            r.ready,
            expected
                .map(|x| x.to_string())
                .unwrap_or_else(|| "unknown".into())
        );
        let settled = expected
            .map(|x| r.spec == x && r.status == x && r.ready == x)
            .unwrap_or(false);
        match (settled, converged_at) {
            (true, None) => converged_at = Some((Instant::now(), r.ready)),
            (true, Some((since, n))) if Instant::now().duration_since(since) >= hold => {
                let down = initial.map(|i| n < i).unwrap_or(false);
                let activating = initial == Some(0) && n > 0;
                let bound = if activating {
                    target.polling
                } else {
                    Duration::ZERO
                } + env.hpa.sync_period
                    + target.delay(!down, env);
                if let Ok(mut s) = shared.lock() {
                    let step = format!(
                        "expect {}",
                        e.exact
                            .map(|x| x.to_string())
                            .unwrap_or_else(|| format!("oracle ({n})"))
                    );
                    s.latencies.push(StepLatency {
                        step,
                        seconds: since.duration_since(start).as_secs_f64(),
                        bound: bound.as_secs_f64(),
                    });
                }
                return Ok(format!(
                    "{n} replicas Ready after {:.0}s and held for {:.0}s ({metric})",
                    since.duration_since(start).as_secs_f64(),
                    hold.as_secs_f64()
                ));
            }
            (false, Some((since, n))) => {
                if e.exact.is_some() || oracle_expected == Some(n) {
                    // The workload moved away from a count it had reached: that is flapping.
                    return Err(format!(
                        "reached {n} replicas but did not hold them: after {:.0}s saw {last}",
                        Instant::now().duration_since(since).as_secs_f64()
                    ));
                }
                converged_at = None;
            }
            _ => {}
        }
        if start.elapsed() > within + hold {
            let seed = seeder
                .map(|s| s.state())
                .and_then(|s| s.last_error)
                .map(|e| format!("; last remote-write error: {e}"))
                .unwrap_or_default();
            let flaps = shared.lock().map(|s| count_flaps(&s.samples)).unwrap_or(0);
            let flap_note = if flaps > 1 {
                format!("; replicas changed direction {flaps} times (flapping)")
            } else {
                String::new()
            };
            return Err(format!(
                "did not reach {} within {:.0}s (+{:.0}s hold): last seen {last}{seed}{flap_note}",
                expected
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "a computable count".into()),
                within.as_secs_f64(),
                hold.as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until the sampled replica count (since this step started) has reversed direction
/// `min_reversals` times.
async fn expect_flapping(
    f: &crate::scenario::ExpectFlapping,
    shared: &Arc<Mutex<Shared>>,
) -> Result<String, String> {
    let within = f.within.map(|s| s.0).unwrap_or(Duration::from_secs(180));
    let from = shared.lock().map(|s| s.samples.len()).unwrap_or(0);
    let start = Instant::now();
    loop {
        let counts: Vec<i32> = shared
            .lock()
            .map(|s| s.samples.iter().skip(from).map(|x| x.spec).collect())
            .unwrap_or_default();
        let mut path: Vec<i32> = Vec::new();
        for c in &counts {
            if path.last() != Some(c) {
                path.push(*c);
            }
        }
        let samples: Vec<Sample> = shared
            .lock()
            .map(|s| s.samples.iter().skip(from).cloned().collect())
            .unwrap_or_default();
        let reversals = count_flaps(&samples);
        let shown = path
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" -> ");
        if reversals >= f.min_reversals {
            return Ok(format!(
                "replicas reversed direction {reversals} times in {:.0}s: {shown}",
                start.elapsed().as_secs_f64()
            ));
        }
        if start.elapsed() > within {
            return Err(format!(
                "replicas reversed direction {reversals} times in {:.0}s (expected {}): {shown}",
                within.as_secs_f64(),
                f.min_reversals
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How many times the spec replica count reversed direction.
pub fn count_flaps(samples: &[Sample]) -> usize {
    let mut dirs = Vec::new();
    for w in samples.windows(2) {
        let d = w[1].spec - w[0].spec;
        if d != 0 {
            dirs.push(d.signum());
        }
    }
    dirs.windows(2).filter(|w| w[0] != w[1]).count()
}

async fn expect_condition(
    client: &kube::Client,
    target: &Target,
    c: &ExpectCondition,
) -> Result<String, String> {
    let within = c.within.map(|s| s.0).unwrap_or(Duration::from_secs(90));
    let start = Instant::now();
    let ns = &target.workload.namespace;
    loop {
        let conditions = if c.on == "hpa" {
            observe::hpa(client, ns, &target.hpa)
                .await
                .ok()
                .flatten()
                .map(|h| observe::hpa_conditions(&h))
                .unwrap_or_default()
        } else {
            observe::scaled_object(client, ns, &target.scaled_object)
                .await
                .ok()
                .flatten()
                .map(|so| observe::scaled_object_conditions(&so))
                .unwrap_or_default()
        };
        if let Some(found) = conditions.iter().find(|x| {
            x.type_ == c.type_
                && x.status == c.status
                && c.reason.as_ref().map(|r| *r == x.reason).unwrap_or(true)
                && c.message_contains
                    .as_ref()
                    .map(|m| x.message.contains(m.as_str()))
                    .unwrap_or(true)
        }) {
            return Ok(format!(
                "{} {}={} {}: {}",
                c.on, found.type_, found.status, found.reason, found.message
            ));
        }
        if start.elapsed() > within {
            let seen: Vec<String> = conditions
                .iter()
                .map(|x| format!("{}={} {}: {}", x.type_, x.status, x.reason, x.message))
                .collect();
            return Err(format!(
                "{} condition {}={}{} not seen within {:.0}s; conditions: {}",
                c.on,
                c.type_,
                c.status,
                c.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                within.as_secs_f64(),
                if seen.is_empty() {
                    "none".into()
                } else {
                    seen.join("; ")
                }
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn expect_event(
    client: &kube::Client,
    target: &Target,
    e: &ExpectEvent,
) -> Result<String, String> {
    let within = e.within.map(|s| s.0).unwrap_or(Duration::from_secs(90));
    let start = Instant::now();
    loop {
        let events = observe::events(client, &target.workload.namespace)
            .await
            .unwrap_or_default();
        if let Some(found) = events.iter().find(|x| {
            x.reason == e.reason
                && e.message_contains
                    .as_ref()
                    .map(|m| x.message.contains(m.as_str()))
                    .unwrap_or(true)
        }) {
            return Ok(format!(
                "{} {} {}: {}",
                found.object, found.type_, found.reason, found.message
            ));
        }
        if start.elapsed() > within {
            let reasons: Vec<String> = events
                .iter()
                .map(|x| format!("{} {}", x.object, x.reason))
                .collect();
            return Err(format!(
                "no {} event{} within {:.0}s; events: {}",
                e.reason,
                e.message_contains
                    .as_ref()
                    .map(|m| format!(" containing {m:?}"))
                    .unwrap_or_default(),
                within.as_secs_f64(),
                reasons.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_evidence(
    env: &LiveEnv,
    backend: &MimirApiBackend,
    client: &kube::Client,
    target: &Target,
    namespace: &str,
    render: &RenderReport,
    outcome: &LiveOutcome,
    dir: &Path,
) {
    let redactor = crate::report::redactor_for(&[render]);
    let w = |name: &str, text: &str| {
        let _ = std::fs::write(dir.join(name), redactor.apply(text));
    };
    w("rendered.yaml", &render.rendered);
    w(
        "state.txt",
        &observe::describe(client, namespace, &target.scaled_object, &target.hpa).await,
    );
    let (op, ad) = env.keda_logs(400);
    w("keda-operator.log", &op);
    w("keda-adapter.log", &ad);
    let http = reqwest::Client::new();
    let headers = target.headers();
    let answer = instant(
        &http,
        &backend.prometheus_url(),
        &target.trigger.config.query,
        &headers,
    )
    .await;
    w(
        "backend-answer.txt",
        &format!(
            "GET {} with {:?}\n{:#?}\n",
            target.trigger.config.query, headers, answer
        ),
    );
    w(
        "verdict.txt",
        &format!(
            "reasons:\n{}\nobservations:\n{}\n",
            outcome.reasons.join("\n"),
            outcome.observations.join("\n")
        ),
    );
}

fn so_headers(so: &Value) -> Vec<String> {
    so["spec"]["triggers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    t["metadata"]["customHeaders"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `helm upgrade` to another chart, then: the ScaledObject keeps its customHeaders, exactly one
/// HPA targets the workload, and the replica count the autoscaler chose is not reset.
#[allow(clippy::too_many_arguments)]
async fn upgrade(
    env: &LiveEnv,
    address: &str,
    scenario: &Scenario,
    u: &crate::scenario::UpgradeStep,
    helm: HelmMajor,
    namespace: &str,
    client: &kube::Client,
    target: &Target,
    oracle_base: &str,
) -> Result<String, String> {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let before = observe::replicas(client, &target.workload)
        .await
        .map_err(|e| e.to_string())?;
    let so_before = observe::scaled_object(client, namespace, &target.scaled_object)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the ScaledObject is gone before the upgrade")?;
    let headers_before = so_headers(&so_before);
    let h = Helm::locate(helm).map_err(|e| e.to_string())?;
    let chart = crate::chart::source::prepare(&u.chart, None).map_err(|e| e.to_string())?;
    let files = u.values.clone().unwrap_or_else(|| scenario.values.clone());
    let mut values = UserValues::load(&files, &[])
        .map_err(|e| e.to_string())?
        .merged;
    override_server_address(&mut values, address);
    let (args, _tmp) = release_args("upgrade", scenario, &chart.dir, namespace, &files, &values)?;
    let kubeconfig = env.kubeconfig();
    let h2 = h.clone();
    tokio::task::spawn_blocking(move || h2.run(&args, Some(&kubeconfig)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("helm upgrade failed: {e}"))?;
    // Watch two HPA sync periods: the count the autoscaler chose must not be reset.
    let http = target.query_client();
    let watch = env.hpa.sync_period * 2 + Duration::from_secs(2);
    let start = Instant::now();
    let mut lowest = before.spec;
    while start.elapsed() < watch {
        let r = observe::replicas(client, &target.workload)
            .await
            .map_err(|e| e.to_string())?;
        lowest = lowest.min(r.spec);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut problems = Vec::new();
    let after = observe::replicas(client, &target.workload)
        .await
        .map_err(|e| e.to_string())?;
    let (_, expected) = oracle(&http, oracle_base, target, after.spec, after.ready).await;
    if lowest < before.spec && expected.map(|x| x >= before.spec).unwrap_or(true) {
        problems.push(format!("the upgrade reset the replica count: {} before, down to {lowest} after (the metrics still call for {})", before.spec, expected.map(|x| x.to_string()).unwrap_or_else(|| "the same".into())));
    }
    match observe::scaled_object(client, namespace, &target.scaled_object)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(so_after) => {
            let headers_after = so_headers(&so_after);
            if headers_after != headers_before {
                problems.push(format!("the upgrade changed the ScaledObject's customHeaders from {headers_before:?} to {headers_after:?}"));
            }
        }
        None => problems.push(format!(
            "the upgrade removed ScaledObject {}",
            target.scaled_object
        )),
    }
    let hpas = kube::Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), namespace)
        .list(&Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let targeting: Vec<String> = hpas
        .items
        .iter()
        .filter(|h| {
            h.spec
                .as_ref()
                .map(|s| s.scale_target_ref.name == target.workload.name)
                .unwrap_or(false)
        })
        .filter_map(|h| h.metadata.name.clone())
        .collect();
    if targeting.len() != 1 {
        problems.push(format!(
            "{} HPAs target {}/{} after the upgrade: {targeting:?}",
            targeting.len(),
            target.workload.kind,
            target.workload.name
        ));
    }
    if problems.is_empty() {
        Ok(format!("upgraded to {}: ScaledObject kept customHeaders {headers_before:?}, one HPA ({}), replicas {} -> {} (never below {lowest})", u.chart.display(), targeting.join(""), before.spec, after.spec))
    } else {
        Err(problems.join("; "))
    }
}

/// The scale target the upgrade's chart renders when it differs from the running one (an
/// upgrade across lineages, e.g. the 1.x compactor Deployment to the 3.x backend-worker
/// StatefulSet); `None` when it is the same workload, or when the new chart renders no
/// usable ScaledObject (the same-lineage checks then report what is wrong).
async fn new_lineage_target(
    env: &LiveEnv,
    scenario: &Scenario,
    u: &crate::scenario::UpgradeStep,
    helm: HelmMajor,
    namespace: &str,
    current: &Target,
) -> Option<Target> {
    let opts = crate::render::RenderOptions {
        chart: u.chart.clone(),
        version: None,
        values_files: u.values.clone().unwrap_or_else(|| scenario.values.clone()),
        sets: Vec::new(),
        release: scenario.release.clone(),
        namespace: namespace.to_string(),
        expected_headers: Vec::new(),
        expect_scaled_object: true,
        helm,
        capabilities: crate::chart::capabilities::Capabilities::default(),
    };
    let report = tokio::task::spawn_blocking(move || crate::render::render(&opts))
        .await
        .ok()?
        .ok()?;
    let manifests = manifest::split(&report.rendered).ok()?;
    let next = target_from_render(&report, &manifests, namespace, env.hpa.tolerance).ok()?;
    (next.workload != current.workload).then_some(next)
}

/// What an upgrade step runs against.
struct UpgradeCtx<'a> {
    env: &'a LiveEnv,
    address: &'a str,
    scenario: &'a Scenario,
    helm: HelmMajor,
    namespace: &'a str,
    client: &'a kube::Client,
    oracle_base: &'a str,
}

fn list_or_none<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `helm upgrade` to a chart of another lineage (its ScaledObject scales a different
/// workload) on a running, scaled install, and a report of what happened as observed on the
/// cluster: the ScaledObjects, HPAs and workloads before and after, whether Helm deleted the
/// old ones, and whether the new workload scales. Passes when no ScaledObject or HPA is left
/// pointing at a missing workload, exactly one HPA targets the new workload, and the new
/// workload reaches the replica count the oracle computes for its trigger.
async fn upgrade_across(
    ctx: &UpgradeCtx<'_>,
    u: &crate::scenario::UpgradeStep,
    old: &Target,
    new: &Target,
    shared: &Arc<Mutex<Shared>>,
    seeder: Option<&Seeder>,
    findings: &mut Vec<UpgradeFinding>,
) -> Result<String, String> {
    let snapshot = |when: &'static str| async move {
        observe::scaling_snapshot(ctx.client, ctx.namespace)
            .await
            .map_err(|e| format!("listing ScaledObjects, HPAs and workloads {when}: {e}"))
    };
    let before = snapshot("before the upgrade").await?;
    let h = Helm::locate(ctx.helm).map_err(|e| e.to_string())?;
    let chart = crate::chart::source::prepare(&u.chart, None).map_err(|e| e.to_string())?;
    let files = u
        .values
        .clone()
        .unwrap_or_else(|| ctx.scenario.values.clone());
    let mut values = UserValues::load(&files, &[])
        .map_err(|e| e.to_string())?
        .merged;
    if override_server_address(&mut values, ctx.address) == 0 {
        return Err("the upgrade's values set no trigger metadata.serverAddress to point at the backend; set it in the new chart's values file".into());
    }
    let (args, _tmp) = release_args(
        "upgrade",
        ctx.scenario,
        &chart.dir,
        ctx.namespace,
        &files,
        &values,
    )?;
    let kubeconfig = ctx.env.kubeconfig();
    let upgraded = tokio::task::spawn_blocking(move || h.run(&args, Some(&kubeconfig)))
        .await
        .map_err(|e| e.to_string())?;
    let from = format!("{}/{}", old.workload.kind, old.workload.name);
    let to = format!("{}/{}", new.workload.kind, new.workload.name);
    if let Err(e) = upgraded {
        findings.push(UpgradeFinding {
            aspect: "helm upgrade".into(),
            passed: false,
            detail: format!("helm upgrade from {from} to {to} failed: {e}"),
        });
        return Err(format!("helm upgrade failed: {e}"));
    }
    findings.push(UpgradeFinding {
        aspect: "helm upgrade".into(),
        passed: true,
        detail: format!(
            "helm {} upgrade {} to {} succeeded ({from} -> {to})",
            ctx.helm.number(),
            ctx.scenario.release,
            u.chart.display()
        ),
    });
    let scaled = expect_replicas(
        ctx.env,
        ctx.oracle_base,
        ctx.client,
        new,
        &ExpectReplicas {
            exact: None,
            oracle: true,
            within: None,
            hold: None,
        },
        shared,
        seeder,
    )
    .await;
    // Garbage collection of the old HPA (owned by the old ScaledObject) may trail Helm: give
    // it a moment before calling anything an orphan.
    let settle = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let snap = snapshot("after the upgrade").await?;
        if snap.orphans().is_empty() || Instant::now() > settle {
            break snap;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let old_so_gone = !after
        .scaled_objects
        .iter()
        .any(|s| s.name == old.scaled_object);
    let new_so = after
        .scaled_objects
        .iter()
        .find(|s| s.name == new.scaled_object);
    let so_orphans: Vec<String> = after
        .orphans()
        .into_iter()
        .filter(|o| o.starts_with("ScaledObject"))
        .collect();
    findings.push(UpgradeFinding {
        aspect: "ScaledObjects".into(),
        passed: so_orphans.is_empty() && new_so.is_some(),
        detail: format!(
            "before: {}; after: {}; old {} deleted by the upgrade: {}; new {} present: {}{}",
            list_or_none(&before.scaled_objects),
            list_or_none(&after.scaled_objects),
            old.scaled_object,
            yes_no(old_so_gone),
            new.scaled_object,
            yes_no(new_so.is_some()),
            if so_orphans.is_empty() {
                String::new()
            } else {
                format!("; orphaned: {}", so_orphans.join(", "))
            }
        ),
    });
    let old_hpa = old.hpa.clone();
    let old_hpa_gone = !after.hpas.iter().any(|h| h.name == old_hpa);
    let hpa_orphans: Vec<String> = after
        .orphans()
        .into_iter()
        .filter(|o| o.starts_with("HPA"))
        .collect();
    let for_new = after.hpas_for(&new.workload.kind, &new.workload.name);
    findings.push(UpgradeFinding {
        aspect: "HPAs".into(),
        passed: hpa_orphans.is_empty() && for_new.len() == 1,
        detail: format!(
            "before: {}; after: {}; old {old_hpa} deleted: {}; HPAs targeting {to}: {}{}",
            list_or_none(&before.hpas),
            list_or_none(&after.hpas),
            yes_no(old_hpa_gone),
            for_new.len(),
            if hpa_orphans.is_empty() {
                String::new()
            } else {
                format!("; orphaned: {}", hpa_orphans.join(", "))
            }
        ),
    });
    let left_behind: Vec<String> = after
        .workloads
        .iter()
        .filter(|w| !(w.kind == new.workload.kind && w.name == new.workload.name))
        .filter(|w| {
            !after
                .scaled_objects
                .iter()
                .chain(after.hpas.iter())
                .any(|s| s.target_kind == w.kind && s.target_name == w.name)
        })
        .filter(|w| before.has_workload(&w.kind, &w.name))
        .map(|w| w.to_string())
        .collect();
    findings.push(UpgradeFinding {
        aspect: "workloads".into(),
        // A workload Helm leaves behind is reported, not failed: nothing points at it.
        passed: true,
        detail: format!(
            "before: {}; after: {}; old {from} deleted by the upgrade: {}; left behind with nothing scaling it: {}",
            list_or_none(&before.workloads),
            list_or_none(&after.workloads),
            yes_no(!after.has_workload(&old.workload.kind, &old.workload.name)),
            list_or_none(&left_behind)
        ),
    });
    findings.push(UpgradeFinding {
        aspect: "new workload scales".into(),
        passed: scaled.is_ok(),
        detail: match &scaled {
            Ok(line) => format!("{to}: {line}"),
            Err(e) => format!("{to}: {e}"),
        },
    });
    let failed: Vec<String> = findings
        .iter()
        .filter(|f| !f.passed)
        .map(|f| format!("{}: {}", f.aspect, f.detail))
        .collect();
    if failed.is_empty() {
        Ok(format!(
            "upgraded across lineages from {from} to {to}: {}",
            findings
                .iter()
                .map(|f| format!("{}: {}", f.aspect, f.detail))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    } else {
        Err(format!(
            "upgrade across lineages from {from} to {to}: {}",
            failed.join("; ")
        ))
    }
}

/// `helm <verb> <release> <chart> --namespace <ns> -f <files>... -f <override>`: the override
/// (the merged values with triggers pointed at the endpoint) is written to a temporary
/// directory that the caller keeps alive while Helm runs.
fn release_args(
    verb: &str,
    scenario: &Scenario,
    chart_dir: &Path,
    namespace: &str,
    files: &[PathBuf],
    values: &Value,
) -> Result<(Vec<String>, crate::cleanup::TempDir), String> {
    let tmp =
        crate::cleanup::TempDir::new("keda-conformance-values-").map_err(|e| e.to_string())?;
    let override_file = tmp.path().join(format!("{verb}-override.yaml"));
    // The override may hold values from Secrets: owner-only, like its directory.
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&override_file)
            .map_err(|e| e.to_string())?;
        f.write_all(
            serde_yaml_ng::to_string(values)
                .map_err(|e| e.to_string())?
                .as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    }
    // Values joined to their flags, release and chart after `--`: nothing from a scenario can
    // become another Helm flag. Callers add flags with `insert(1, ..)`.
    let mut args: Vec<String> = vec![verb.into(), format!("--namespace={namespace}")];
    for f in files {
        args.push(format!(
            "--values={}",
            std::fs::canonicalize(f)
                .unwrap_or_else(|_| f.clone())
                .display()
        ));
    }
    args.push(format!("--values={}", override_file.display()));
    args.push("--".into());
    args.push(scenario.release.clone());
    args.push(chart_dir.display().to_string());
    Ok((args, tmp))
}
