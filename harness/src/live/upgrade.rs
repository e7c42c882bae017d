//! `upgrade` steps: `helm upgrade` of the running, scaled release to another chart. Within a
//! lineage (the same workload), the ScaledObject must keep its headers, one HPA must target
//! the workload and the autoscaler's count must not be reset; across lineages (another
//! workload), nothing may be left pointing at a missing workload and the new one must scale.

use super::env::LiveEnv;
use super::expect::replicas::expect_replicas;
use super::observe;
use super::release::Release;
use super::run::UpgradeFinding;
use super::sampler::{oracle, Shared};
use super::seeder::Seeder;
use super::target::{target_from_render, Target};
use crate::chart::helm::HelmMajor;
use crate::scenario::{ExpectReplicas, Scenario};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
pub(crate) async fn upgrade(
    ctx: &UpgradeCtx<'_>,
    release: &mut Release,
    u: &crate::scenario::UpgradeStep,
    target: &Target,
) -> Result<String, String> {
    let (client, namespace) = (ctx.client, ctx.namespace);
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let before = observe::replicas(client, &target.workload)
        .await
        .map_err(|e| e.to_string())?;
    let so_before = observe::scaled_object(client, namespace, &target.scaled_object)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the ScaledObject is gone before the upgrade")?;
    let headers_before = so_headers(&so_before);
    // Every count the workload shows from before the upgrade on, as the watch delivers it: a
    // reset the autoscaler undoes within a second is still a reset.
    let (mut counts, watching) = crate::live::watch::replica_counts(client, &target.workload);
    let upgraded = release
        .upgrade(&u.chart, &ctx.upgrade_values(u), &ctx.scenario.set)
        .await;
    if let Err(e) = upgraded {
        watching.abort();
        return Err(e);
    }
    // Watch two HPA sync periods: the count the autoscaler chose must not be reset.
    let http = target.query_client();
    let watch = ctx.env.hpa.sync_period * 2 + Duration::from_secs(2);
    let until = Instant::now() + watch;
    let mut lowest = before.spec;
    loop {
        // A look of our own every second as well, in case the watch cannot be opened.
        let look = Duration::from_secs(1).min(until.saturating_duration_since(Instant::now()));
        let delivered = if counts.is_closed() {
            tokio::time::sleep(look).await;
            None
        } else {
            tokio::time::timeout(look, counts.recv())
                .await
                .ok()
                .flatten()
        };
        match delivered {
            Some(r) => lowest = lowest.min(r.spec),
            None => {
                let r = observe::replicas(client, &target.workload)
                    .await
                    .map_err(|e| e.to_string());
                match r {
                    Ok(r) => lowest = lowest.min(r.spec),
                    Err(e) => {
                        watching.abort();
                        return Err(e);
                    }
                }
            }
        }
        if Instant::now() >= until {
            break;
        }
    }
    watching.abort();
    let mut problems = Vec::new();
    let after = observe::replicas(client, &target.workload)
        .await
        .map_err(|e| e.to_string())?;
    let (_, expected) = oracle(&http, ctx.oracle_base, target, after.spec, after.ready).await;
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
pub(crate) async fn new_lineage_target(
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
        sets: scenario.set.clone(),
        release: scenario.release.clone(),
        namespace: namespace.to_string(),
        expected_headers: Vec::new(),
        expect_scaled_object: true,
        helm,
        // What the cluster serves, as Helm's install renders it.
        capabilities: env.capabilities().await.cloned().unwrap_or_default(),
    };
    let report = tokio::task::spawn_blocking(move || crate::render::render(&opts))
        .await
        .ok()?
        .ok()?;
    let next = target_from_render(&report, namespace, env.hpa.tolerance).ok()?;
    (next.workload != current.workload).then_some(next)
}

/// What an upgrade step runs against.
pub(crate) struct UpgradeCtx<'a> {
    pub(crate) env: &'a LiveEnv,
    pub(crate) scenario: &'a Scenario,
    pub(crate) namespace: &'a str,
    pub(crate) client: &'a kube::Client,
    pub(crate) oracle_base: &'a str,
    pub(crate) shared: &'a Arc<Mutex<Shared>>,
    pub(crate) seeder: Option<&'a Seeder>,
}

impl UpgradeCtx<'_> {
    /// The values files of an upgrade: its own, else the scenario's.
    fn upgrade_values(&self, u: &crate::scenario::UpgradeStep) -> Vec<std::path::PathBuf> {
        u.values
            .clone()
            .unwrap_or_else(|| self.scenario.values.clone())
    }
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
pub(crate) async fn upgrade_across(
    ctx: &UpgradeCtx<'_>,
    release: &mut Release,
    u: &crate::scenario::UpgradeStep,
    old: &Target,
    new: &Target,
    findings: &mut Vec<UpgradeFinding>,
) -> Result<String, String> {
    let snapshot = |when: &'static str| async move {
        observe::scaling_snapshot(ctx.client, ctx.namespace)
            .await
            .map_err(|e| format!("listing ScaledObjects, HPAs and workloads {when}: {e}"))
    };
    let before = snapshot("before the upgrade").await?;
    let upgraded = release
        .upgrade(&u.chart, &ctx.upgrade_values(u), &ctx.scenario.set)
        .await;
    let from = format!("{}/{}", old.workload.kind, old.workload.name);
    let to = format!("{}/{}", new.workload.kind, new.workload.name);
    if let Err(e) = upgraded {
        findings.push(UpgradeFinding {
            aspect: "helm upgrade".into(),
            passed: false,
            detail: format!("from {from} to {to}: {e}"),
        });
        return Err(e);
    }
    findings.push(UpgradeFinding {
        aspect: "helm upgrade".into(),
        passed: true,
        detail: format!(
            "helm {} upgrade {} to {} succeeded ({from} -> {to})",
            release.major().number(),
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
            ready: None,
        },
        ctx.shared,
        ctx.seeder,
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
