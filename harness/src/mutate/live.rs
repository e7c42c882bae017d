//! The live tier of mutation testing (`--tier all`): the suites' live scenarios for this chart
//! run on the original chart, then on every survivor of the render tier, each in its own copy
//! of the chart. A survivor is killed when a scenario that passes on the original fails on it:
//! the regression shows only once KEDA, the HPA and the workload act on the rendered objects.

use super::workspace::{Applied, Workspace};
use super::{MutantResult, MutationReport, Status};
use crate::chart::helm::HelmMajor;
use crate::engine::{LiveContext, ScenarioResult};
use crate::error::InputError;
use crate::scenario::{Helm, Scenario, Step};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the live tier did, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveTier {
    /// The live scenarios that judged the survivors (those that pass on the original).
    pub scenarios: Vec<String>,
    /// Live scenarios that already fail on the original chart, with why: they judge nothing.
    pub original_failures: Vec<String>,
    /// Survivors of the render tier run live.
    pub survivors_judged: usize,
    /// Of those, killed live.
    pub killed: usize,
    /// Wall time of the live tier.
    pub seconds: f64,
    /// SIGINT/SIGTERM stopped it: verdicts of unfinished runs are not counted.
    pub interrupted: bool,
}

/// The scenarios of `suites` that install this chart and have live steps, on `helm`.
///
/// # Errors
/// An [`InputError`] when a suite does not load.
pub fn scenarios_for(
    chart: &Path,
    suites: &[PathBuf],
    helm: HelmMajor,
) -> Result<Vec<Scenario>, InputError> {
    super::judge::suite_scenarios(chart, suites, helm, |s| s.steps.iter().any(Step::is_live))
}

/// The scenario `s` run against the chart copy `chart`, under a name that says which copy.
fn on_copy(s: &Scenario, chart: &Path, label: &str, helm: HelmMajor) -> Scenario {
    let mut s = s.clone();
    s.name = format!("{label}-{}", s.name);
    s.chart = chart.to_path_buf();
    s.helm = vec![Helm(helm)];
    s
}

/// The first reason a result failed, or that it was interrupted.
fn failure(r: &ScenarioResult) -> Option<String> {
    (!r.passed).then(|| {
        r.reasons
            .first()
            .cloned()
            .unwrap_or_else(|| "failed".into())
    })
}

fn interrupted(r: &ScenarioResult) -> bool {
    r.live.as_ref().is_some_and(|l| l.interrupted.is_some())
}

/// Runs `scenarios` on the original chart and on every survivor of `report`, and kills the
/// survivors a passing scenario fails on. The chart is copied once per survivor (and once for
/// the original); the copies are removed at the end.
///
/// # Errors
/// An [`InputError`] when the copies cannot be made or a scenario's inputs are unusable.
pub fn judge_survivors(
    report: &mut MutationReport,
    scenarios: &[Scenario],
    helm: HelmMajor,
    ctx: &LiveContext,
) -> Result<LiveTier, InputError> {
    let started = Instant::now();
    let survivors: Vec<usize> = report
        .mutants
        .iter()
        .enumerate()
        .filter(|(_, m)| m.status == Status::Survived)
        .map(|(i, _)| i)
        .collect();
    let mut tier = LiveTier::default();
    if survivors.is_empty() || scenarios.is_empty() {
        tier.scenarios = scenarios.iter().map(|s| s.name.clone()).collect();
        return Ok(tier);
    }
    let ws = Workspace::new(&report.chart_dir, survivors.len() + 1)?;
    // The original first: a scenario that fails there cannot judge a mutant.
    let originals: Vec<Scenario> = scenarios
        .iter()
        .map(|s| on_copy(s, ws.copy(0), "original", helm))
        .collect();
    eprintln!(
        "mutate: live tier: {} scenario(s) on the original chart",
        originals.len()
    );
    let baseline = crate::engine::run(&originals, Some(helm), Some(ctx))?;
    if baseline.iter().any(interrupted) {
        tier.interrupted = true;
        tier.seconds = started.elapsed().as_secs_f64();
        return Ok(tier);
    }
    let judges: Vec<&Scenario> = scenarios
        .iter()
        .zip(&baseline)
        .filter_map(|(s, r)| match failure(r) {
            None => Some(s),
            Some(why) => {
                tier.original_failures.push(format!("{}: {why}", s.name));
                None
            }
        })
        .collect();
    tier.scenarios = judges.iter().map(|s| s.name.clone()).collect();
    if judges.is_empty() {
        tier.seconds = started.elapsed().as_secs_f64();
        return Ok(tier);
    }
    // Each survivor in a copy of its own, so they all run at once.
    let texts: Vec<String> = survivors
        .iter()
        .map(|&i| {
            let file = &report.mutants[i].mutant.file;
            std::fs::read_to_string(report.chart_dir.join(file)).map_err(|e| {
                InputError::in_file(
                    report.chart_dir.join(file),
                    None,
                    None,
                    format!("cannot read the template again: {e}"),
                    "leave the chart unchanged while mutate runs",
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let mut applied = Vec::new();
    let mut runs: Vec<(usize, Scenario)> = Vec::new();
    for (k, (&i, text)) in survivors.iter().zip(&texts).enumerate() {
        let copy = ws.copy(k + 1);
        let m = &report.mutants[i].mutant;
        applied.push(Applied::write(copy, m, text).map_err(|e| {
            InputError::in_environment(
                "temporary directory",
                format!("cannot write mutant #{} into {}: {e}", m.id, copy.display()),
                "check $TMPDIR's space",
            )
        })?);
        for s in &judges {
            runs.push((i, on_copy(s, copy, &format!("m{}", m.id), helm)));
        }
    }
    eprintln!(
        "mutate: live tier: {} survivor(s) x {} scenario(s)",
        survivors.len(),
        judges.len()
    );
    let scenarios_run: Vec<Scenario> = runs.iter().map(|(_, s)| s.clone()).collect();
    let results = crate::engine::run(&scenarios_run, Some(helm), Some(ctx))?;
    tier.survivors_judged = survivors.len();
    for ((i, s), r) in runs.iter().zip(&results) {
        if interrupted(r) {
            tier.interrupted = true;
            continue;
        }
        let m: &mut MutantResult = &mut report.mutants[*i];
        if m.status != Status::Survived {
            continue;
        }
        if let Some(why) = failure(r) {
            let scenario = s.name.split_once('-').map_or(s.name.as_str(), |x| x.1);
            m.status = Status::Killed;
            m.killed_by = Some(format!("live: {scenario}"));
            m.reason = Some(why);
            tier.killed += 1;
        }
    }
    for &i in &survivors {
        let m = &mut report.mutants[i];
        if m.status == Status::Survived {
            m.reason = Some(format!(
                "{}; live, every scenario ({}) still passes",
                m.reason.as_deref().unwrap_or("every render judge passes"),
                judges.len()
            ));
        }
    }
    drop(applied);
    tier.seconds = started.elapsed().as_secs_f64();
    Ok(tier)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../")
    }

    #[test]
    fn only_live_scenarios_of_this_chart_and_major_judge_live() {
        let root = fixtures();
        let chart = root.join("fixtures/charts/compactor-1x");
        let found = scenarios_for(&chart, &[root.join("suites/default")], HelmMajor::V3).unwrap();
        assert!(!found.is_empty());
        for s in &found {
            assert!(s.steps.iter().any(Step::is_live), "{}", s.name);
            assert_eq!(
                std::fs::canonicalize(&s.chart).unwrap(),
                std::fs::canonicalize(&chart).unwrap()
            );
        }
        let other = root.join("fixtures/charts/backend-worker-3x");
        let theirs = scenarios_for(&other, &[root.join("suites/default")], HelmMajor::V3).unwrap();
        assert!(theirs
            .iter()
            .all(|t| found.iter().all(|f| f.name != t.name)));
    }

    #[test]
    fn a_copy_keeps_the_steps_and_names_the_mutant_first() {
        let root = fixtures();
        let chart = root.join("fixtures/charts/compactor-1x");
        let s = scenarios_for(&chart, &[root.join("suites/default")], HelmMajor::V3)
            .unwrap()
            .remove(0);
        let c = on_copy(&s, Path::new("/tmp/w/chart"), "m7", HelmMajor::V4);
        assert_eq!(c.name, format!("m7-{}", s.name));
        assert_eq!(c.chart, PathBuf::from("/tmp/w/chart"));
        assert_eq!(c.helm, vec![Helm(HelmMajor::V4)]);
        assert_eq!(c.steps.len(), s.steps.len());
        assert_eq!(c.values, s.values);
    }
}
