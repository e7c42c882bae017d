//! `expect_replicas`: the workload reaches a replica count (given, or the oracle's) and holds it.

use crate::live::env::LiveEnv;
use crate::live::expect::cluster::count_flaps;
use crate::live::observe;
use crate::live::run::StepLatency;
use crate::live::sampler::{oracle, Shared};
use crate::live::seeder::Seeder;
use crate::live::target::Target;
use crate::live::watch::Changes;
use crate::scenario::ExpectReplicas;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The default deadline for reaching a replica count: one polling interval (activation), the
/// HPA's sync periods, the slower direction's delay from the ScaledObject's HPA behavior
/// (stabilization window and scaling policies), the time the workload's pods need to become
/// Ready by their probes, and room for pods to start.
pub(crate) fn default_deadline(env: &LiveEnv, target: &Target) -> Duration {
    target.polling
        + env.hpa.sync_period * 4
        + target.delay(true, env).max(target.delay(false, env))
        + target.ready_delay
        + Duration::from_secs(30)
}

/// Waits until the workload has exactly the expected replicas (a number, or what the oracle
/// computes from the metric now) in spec, status and Ready, and holds them for the hold time;
/// records the verdict latency against the bound a correct pipeline needs.
pub(crate) async fn expect_replicas(
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
    // How long the endpoint took to answer the oracle's query, at most: KEDA waits as long.
    let mut answer_time = Duration::ZERO;
    // The workload's changes wake the next look; an oracle count also looks every second,
    // since the metric moves without any change in the cluster.
    let changes = Changes::none().of_workload(client, &target.workload);
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
        let (value, oracle_expected) = if e.oracle {
            let asked = Instant::now();
            let answer = oracle(&http, &base, target, r.spec, r.ready).await;
            answer_time = answer_time.max(asked.elapsed());
            answer
        } else {
            // An exact count needs no query of its own (a slow endpoint would delay every
            // look at the workload): the sampler's latest view of the metric is the evidence.
            let last = shared.lock().ok().and_then(|s| s.samples.last().cloned());
            match last {
                Some(s) => (
                    s.metric.ok_or(s.metric_error.unwrap_or_default()),
                    s.expected,
                ),
                None => (Err("the metric has not been sampled yet".into()), None),
            }
        };
        let expected = if e.oracle { oracle_expected } else { e.exact };
        let want_ready = |x: i32| e.ready.unwrap_or(x);
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
                .map(|x| match e.ready {
                    Some(ready) if ready != x => format!("{x} ({ready} Ready)"),
                    _ => x.to_string(),
                })
                .unwrap_or_else(|| "unknown".into())
        );
        let settled = expected
            .map(|x| r.spec == x && r.status == x && r.ready == want_ready(x))
            .unwrap_or(false);
        match (settled, converged_at) {
            (true, None) => converged_at = Some((Instant::now(), r.spec)),
            (true, Some((since, n))) if Instant::now().duration_since(since) >= hold => {
                let down = initial.map(|i| n < i).unwrap_or(false);
                let activating = initial == Some(0) && n > 0;
                let bound = if activating {
                    target.polling
                } else {
                    Duration::ZERO
                } + env.hpa.sync_period
                    + target.delay(!down, env)
                    // New pods count once their probes pass.
                    + if down { Duration::ZERO } else { target.ready_delay }
                    + answer_time;
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
                let counted = match e.ready {
                    Some(k) if k != n => format!("{n} replicas, {k} of them Ready,"),
                    _ => format!("{n} replicas Ready"),
                };
                return Ok(format!(
                    "{counted} after {:.0}s and held for {:.0}s ({metric})",
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
                .map(|s| match s.last_error {
                    Some(e) => format!("; last remote-write error: {e}"),
                    None => format!("; {} remote-write rounds succeeded", s.rounds),
                })
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
        let pause = if e.oracle {
            Duration::from_secs(1)
        } else {
            changes.quiet_pause()
        };
        let pause = match converged_at {
            Some((since, _)) => pause.min((since + hold).saturating_duration_since(Instant::now())),
            None => pause,
        };
        let left = (start + within + hold).saturating_duration_since(Instant::now());
        changes
            .next(pause.min(left).max(Duration::from_millis(10)))
            .await;
    }
}
