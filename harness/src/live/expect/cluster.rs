//! Expectations on what the cluster shows: conditions of the ScaledObject or HPA, events, and
//! a replica count that keeps reversing direction (flapping).

use crate::live::observe;
use crate::live::sampler::Shared;
use crate::live::target::Target;
use crate::live::timeline::Sample;
use crate::live::watch::Changes;
use crate::scenario::{ExpectCondition, ExpectEvent};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Waits until the sampled replica count (since this step started) has reversed direction
/// `min_reversals` times.
pub(crate) async fn expect_flapping(
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

/// Waits for a condition on the ScaledObject or its HPA.
pub(crate) async fn expect_condition(
    client: &kube::Client,
    target: &Target,
    c: &ExpectCondition,
) -> Result<String, String> {
    let within = c.within.map(|s| s.0).unwrap_or(Duration::from_secs(90));
    let start = Instant::now();
    let ns = &target.workload.namespace;
    let changes = if c.on == crate::scenario::ConditionObject::Hpa {
        Changes::none().of_hpa(client, ns, &target.hpa)
    } else {
        Changes::none().of_scaled_object(client, ns, &target.scaled_object)
    };
    loop {
        let conditions = if c.on == crate::scenario::ConditionObject::Hpa {
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
        changes.next_quiet(start + within).await;
    }
}

/// Waits for an event (by reason, optionally by message) in the scenario's namespace; with
/// `absent`, watches for `within` and fails as soon as such an event appears.
pub(crate) async fn expect_event(
    client: &kube::Client,
    target: &Target,
    e: &ExpectEvent,
) -> Result<String, String> {
    let default = if e.absent { 20 } else { 90 };
    let within = e
        .within
        .map(|s| s.0)
        .unwrap_or(Duration::from_secs(default));
    let start = Instant::now();
    let wanted = match &e.message_contains {
        Some(m) => format!("{} event containing {m:?}", e.reason),
        None => format!("{} event", e.reason),
    };
    let changes = Changes::none().of_events(client, &target.workload.namespace);
    loop {
        // A listing that fails proves nothing either way: retry until the deadline.
        let events = match observe::events(client, &target.workload.namespace).await {
            Ok(events) => events,
            Err(err) if start.elapsed() > within => {
                return Err(format!("listing events: {err}"));
            }
            Err(_) => {
                changes.next(Duration::from_secs(1)).await;
                continue;
            }
        };
        let found = events.iter().find(|x| {
            x.reason == e.reason
                && e.message_contains
                    .as_ref()
                    .map(|m| x.message.contains(m.as_str()))
                    .unwrap_or(true)
        });
        match (found, e.absent) {
            (Some(found), false) => {
                return Ok(format!(
                    "{} {} {}: {}",
                    found.object, found.type_, found.reason, found.message
                ))
            }
            (Some(found), true) => {
                return Err(format!(
                    "{} {} {}: {} (expected no {wanted})",
                    found.object, found.type_, found.reason, found.message
                ))
            }
            (None, _) => {}
        }
        if start.elapsed() > within {
            let reasons: Vec<String> = events
                .iter()
                .map(|x| format!("{} {}", x.object, x.reason))
                .collect();
            let seen = if reasons.is_empty() {
                "none".to_string()
            } else {
                reasons.join(", ")
            };
            return if e.absent {
                Ok(format!(
                    "no {wanted} since the install ({:.0}s watched); events: {seen}",
                    within.as_secs_f64()
                ))
            } else {
                Err(format!(
                    "no {wanted} within {:.0}s; events: {seen}",
                    within.as_secs_f64()
                ))
            };
        }
        changes.next_quiet(start + within).await;
    }
}
