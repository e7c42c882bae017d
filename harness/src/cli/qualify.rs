//! `qualify`: the matrix a release must pass (render and live on both Helm majors, every
//! applicable suite scenario, and an upgrade from the previous version, within a lineage or
//! across lineages), summarised as text, Markdown and JUnit.

use super::QualifyArgs;
use crate::chart::helm::HelmMajor;
use crate::error::{exit_code, InputError};
use crate::render::{self, RenderOptions, RenderReport};
use crate::repro::{default_metrics, derived_scenario, merge_metrics, UpgradeTo};
use crate::scenario::Scenario;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    NotApplicable,
}

struct Row {
    check: String,
    helm: HelmMajor,
    verdict: Verdict,
    detail: String,
}

impl Row {
    fn new(check: impl Into<String>, helm: HelmMajor, passed: bool, detail: String) -> Self {
        Self {
            check: check.into(),
            helm,
            verdict: if passed { Verdict::Pass } else { Verdict::Fail },
            detail,
        }
    }
}

/// A derived live run of the qualification (scaling, or an upgrade from --previous).
struct Plan {
    check: String,
    helm: HelmMajor,
    scenario: Scenario,
    report: RenderReport,
}

/// A derived scenario before it is written: the chart the release starts from, its values,
/// tenants and series, and where it upgrades to.
struct Derived {
    check: String,
    chart: String,
    values: Vec<String>,
    tenants: Vec<String>,
    metrics: Vec<crate::repro::TenantMetrics>,
    upgrade: Option<UpgradeTo>,
    report: RenderReport,
}

/// The lineage a rendering shows: the kind of workload its ScaledObject scales and that
/// workload's component (its `app.kubernetes.io/component` label, else its name without the
/// release prefix), e.g. `Deployment/compactor` (1.x) or `StatefulSet/backend-worker` (3.x).
///
/// Decided from what the chart renders, not from its name, version or values keys: both
/// lineages are called tempo-distributed, a version number says nothing about which workload
/// a fork or a pre-release scales, and a values key can exist without being used. A
/// scenario's expectations are about the rendered scale target, so a scenario applies to a
/// chart exactly when the chart, rendered with the qualification's values, scales the same
/// kind of workload for the same component as the scenario's own chart with its own values.
/// `None` when no ScaledObject is rendered.
fn lineage(report: &RenderReport) -> Option<String> {
    let unit = report.first_autoscaled()?;
    let (kind, name) = (unit.workload.kind.as_str(), unit.workload.name.as_str());
    let component = unit
        .workload_in(&report.manifests)
        .and_then(|w| {
            w.body["metadata"]["labels"]["app.kubernetes.io/component"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            name.strip_prefix(&format!("{}-", report.release))
                .unwrap_or(name)
                .to_string()
        });
    Some(format!("{kind}/{component}"))
}

/// The suites to run: every --suite, else suites/default when it exists.
fn suites(a: &QualifyArgs) -> Vec<PathBuf> {
    if !a.suite.is_empty() {
        return a.suite.clone();
    }
    let default = super::commands::suites_dir().join("default");
    if default.is_dir() {
        vec![default]
    } else {
        eprintln!(
            "qualify: no suite given and {} does not exist; pass --suite",
            default.display()
        );
        Vec::new()
    }
}

pub(super) fn run(a: QualifyArgs) -> Result<i32, InputError> {
    super::commands::require_values_files(&a.values)?;
    super::commands::require_values_files(&a.previous_values)?;
    for (flag, path) in [("--markdown", &a.markdown), ("--junit", &a.junit)] {
        if let Some(p) = path {
            super::commands::require_output_path(flag, p)?;
        }
    }
    let helms: Vec<HelmMajor> = a
        .helm
        .map(|h| vec![h])
        .unwrap_or_else(|| vec![HelmMajor::V3, HelmMajor::V4]);
    let expected = crate::repro::intended_headers(&a.values)?;
    let previous_values = if a.previous_values.is_empty() {
        a.values.clone()
    } else {
        a.previous_values.clone()
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut plans: Vec<Plan> = Vec::new();
    let absolute = |files: &[PathBuf]| -> Vec<String> {
        files.iter().map(|v| super::commands::absolute(v)).collect()
    };
    let values = absolute(&a.values);
    let chart = super::commands::absolute(&a.chart);
    let mut chart_lineage: Option<String> = None;
    let capabilities = a.capabilities.resolve()?;
    for &helm in &helms {
        let report = render::render(&RenderOptions {
            chart: a.chart.clone(),
            version: None,
            values_files: a.values.clone(),
            sets: Vec::new(),
            release: "tempo".into(),
            namespace: "tempo".into(),
            expected_headers: expected.clone(),
            expect_scaled_object: true,
            helm,
            capabilities: capabilities.clone(),
        })?;
        if chart_lineage.is_none() {
            chart_lineage = lineage(&report);
        }
        let failed = report.verdict.failed_checks();
        rows.push(Row::new(
            format!("render {}", report.chart),
            helm,
            failed.is_empty(),
            if failed.is_empty() {
                "every render check passes".into()
            } else {
                format!("failing checks: {}", failed.join(", "))
            },
        ));
        let Some(trigger) = report.verdict.requests.first().cloned() else {
            rows.push(Row::new(
                "live scaling",
                helm,
                false,
                "no prometheus trigger KEDA can parse is rendered".into(),
            ));
            continue;
        };
        let (tenants, seed_tenants) = crate::repro::tenants_for(&[], &trigger, &expected);
        let metrics = default_metrics(&trigger, &seed_tenants);
        let mut derived = vec![Derived {
            check: "live scaling".to_string(),
            chart: chart.clone(),
            values: values.clone(),
            tenants,
            metrics: metrics.clone(),
            upgrade: None,
            report: report.clone(),
        }];
        if let Some(prev) = &a.previous {
            let prev_report = render::render(&RenderOptions {
                chart: prev.clone(),
                version: None,
                values_files: previous_values.clone(),
                sets: Vec::new(),
                release: "tempo".into(),
                namespace: "tempo".into(),
                expected_headers: Vec::new(),
                expect_scaled_object: true,
                helm,
                capabilities: capabilities.clone(),
            })?;
            let prev_lineage = lineage(&prev_report);
            if prev_lineage.is_none() {
                return Err(InputError::in_flag(
                    "--previous",
                    format!(
                        "{} renders no ScaledObject with {}",
                        prev.display(),
                        if a.previous_values.is_empty() {
                            "the -f values"
                        } else {
                            "the --previous-values files"
                        }
                    ),
                    "pass values that enable its autoscaling with -F/--previous-values (another lineage reads other keys, e.g. compactor.autoscaling.* in 1.x, backendWorker.autoscaling.* in 3.x)",
                ));
            }
            let across = match (&prev_lineage, &chart_lineage) {
                (Some(p), Some(c)) => p != c,
                _ => false,
            };
            // The release starts as the previous chart: its trigger decides tenants and
            // series; across lineages the new chart's query must find data too.
            let (tenants, metrics) = match prev_report.verdict.requests.first() {
                Some(t) => {
                    let prev_expected = crate::repro::intended_headers(&previous_values)?;
                    let (tenants, seed) = crate::repro::tenants_for(&[], t, &prev_expected);
                    let m = default_metrics(t, &seed);
                    let m = if across {
                        merge_metrics(m, default_metrics(&trigger, &seed))
                    } else {
                        m
                    };
                    (tenants, m)
                }
                None => (Vec::new(), metrics),
            };
            let check = if across {
                format!(
                    "upgrade from {} ({} -> {})",
                    prev_report.chart,
                    prev_lineage.clone().unwrap_or_default(),
                    chart_lineage.clone().unwrap_or_default()
                )
            } else {
                format!("upgrade from {}", prev_report.chart)
            };
            derived.push(Derived {
                check,
                chart: super::commands::absolute(prev),
                values: absolute(&previous_values),
                tenants,
                metrics,
                upgrade: Some(UpgradeTo {
                    chart: chart.clone(),
                    values: (!a.previous_values.is_empty()).then(|| values.clone()),
                    across_lineages: across,
                    polling_seconds: polling_seconds(&prev_report),
                }),
                report: prev_report,
            });
        }
        for (i, d) in derived.into_iter().enumerate() {
            let name = format!("qualify-{}-{i}", helm.number());
            let values: Vec<std::path::PathBuf> = d.values.iter().map(Into::into).collect();
            plans.push(Plan {
                check: d.check,
                helm,
                scenario: derived_scenario(
                    &name,
                    d.chart.as_ref(),
                    &values,
                    helm,
                    &d.tenants,
                    &d.metrics,
                    d.upgrade.as_ref(),
                ),
                report: d.report,
            });
        }
    }

    // Suite scenarios of the same lineage run against the chart under qualification.
    let mut applicable: Vec<(String, Scenario)> = Vec::new();
    let mut not_applicable: Vec<Row> = Vec::new();
    for suite in suites(&a) {
        let label = suite
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| suite.display().to_string());
        for s in crate::scenario::load_suite(&suite)? {
            let helm = s.helm.first().map(|h| h.0).unwrap_or(HelmMajor::V3);
            let own = render::render(&RenderOptions::for_scenario(&s, Vec::new(), helm))?;
            let scenario_lineage = lineage(&own);
            let check = format!("{label}/{}", s.name);
            if scenario_lineage.is_some() && scenario_lineage == chart_lineage {
                let mut s = s;
                s.chart = PathBuf::from(&chart);
                s.version = None;
                applicable.push((check, s));
            } else {
                for h in s.helm.iter().map(|h| h.0).filter(|h| helms.contains(h)) {
                    not_applicable.push(Row {
                        check: check.clone(),
                        helm: h,
                        verdict: Verdict::NotApplicable,
                        detail: format!(
                            "not applicable (lineage {}; the chart under qualification is {})",
                            scenario_lineage
                                .as_deref()
                                .unwrap_or("unknown: no ScaledObject"),
                            chart_lineage
                                .as_deref()
                                .unwrap_or("unknown: no ScaledObject")
                        ),
                    });
                }
            }
        }
    }

    let nodes = applicable
        .iter()
        .filter_map(|(_, s)| s.live.nodes)
        .chain([5])
        .max()
        .unwrap_or(5);
    super::commands::create_out_dir(&a.out)?;
    let (runtime, env) = super::commands::derived_live(a.provider, "qualify", nodes)?;
    let ctx = crate::engine::LiveContext {
        runtime,
        env,
        out_dir: a.out.clone(),
        parallel: a.parallel,
    };
    let scenarios: Vec<Scenario> = applicable.iter().map(|(_, s)| s.clone()).collect();
    let suite_results = crate::engine::run(&scenarios, a.helm, Some(&ctx));
    let mut suite_rows = Vec::new();
    if let Ok(results) = &suite_results {
        // The engine returns one result per scenario and Helm major, in this order.
        let order = applicable.iter().flat_map(|(check, s)| {
            s.helm
                .iter()
                .map(|h| h.0)
                .filter(|h| a.helm.map(|o| o == *h).unwrap_or(true))
                .map(move |h| (check.clone(), h))
        });
        for ((check, helm), r) in order.zip(results) {
            let detail = if r.passed {
                r.live
                    .as_ref()
                    .map(|l| {
                        l.observations
                            .iter()
                            .filter(|o| o.starts_with("expect_"))
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "every expectation holds".into())
            } else {
                r.reasons.join("; ")
            };
            suite_rows.push(Row::new(check, helm, r.passed, detail));
        }
    }
    let mut plan_rows = Vec::new();
    // The derived runs go through the same scheduler as suites: up to --parallel at once, an
    // interrupt stops each at its current step (which writes its evidence), plan order kept.
    let jobs: Vec<crate::engine::LiveJob> = plans
        .iter()
        .map(|p| crate::engine::LiveJob {
            label: p.check.clone(),
            scenario: &p.scenario,
            helm: p.helm,
            report: &p.report,
        })
        .collect();
    let outcomes: Vec<_> = crate::engine::run_live(&ctx, &jobs)
        .into_iter()
        .map(|(outcome, _)| outcome)
        .collect();
    for (p, outcome) in plans.iter().zip(outcomes) {
        if outcome.lineage_upgrade.is_empty() {
            let detail = if outcome.reasons.is_empty() {
                outcome
                    .observations
                    .iter()
                    .filter(|o| o.starts_with("expect_replicas") || o.starts_with("upgrade"))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            } else {
                outcome.reasons.join("; ")
            };
            plan_rows.push(Row::new(
                p.check.clone(),
                p.helm,
                outcome.reasons.is_empty(),
                detail,
            ));
        } else {
            for f in &outcome.lineage_upgrade {
                plan_rows.push(Row::new(
                    format!("{}: {}", p.check, f.aspect),
                    p.helm,
                    f.passed,
                    f.detail.clone(),
                ));
            }
            // Anything that failed outside the upgrade step (e.g. scaling before it).
            for r in outcome
                .reasons
                .iter()
                .filter(|r| !r.starts_with("upgrade:"))
            {
                plan_rows.push(Row::new(p.check.clone(), p.helm, false, r.clone()));
            }
        }
    }
    let interrupted = crate::cleanup::stop_token().is_stopped();
    let crate::engine::LiveContext { runtime, env, .. } = ctx;
    runtime.block_on(env.stop());
    // One redactor for every output: every value from a Secret any rendered chart holds.
    let mut reports: Vec<&RenderReport> = plans.iter().map(|p| &p.report).collect();
    if let Ok(results) = &suite_results {
        reports.extend(results.iter().filter_map(|r| r.render.as_ref()));
    }
    let redactor = crate::report::redactor_for(&reports);
    suite_results?;
    rows.extend(plan_rows);
    suite_rows.extend(not_applicable);
    suite_rows.sort_by(|x, y| (&x.check, x.helm.number()).cmp(&(&y.check, y.helm.number())));
    rows.extend(suite_rows);
    let passed = summarise(&a, &rows, &redactor)?;
    // Interrupted: what was gathered is written above (rows of the scenarios that stopped say
    // so); the exit code says the run did not finish.
    Ok(exit_code::of(passed, interrupted))
}

fn verdict_word(v: Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Pass => ("PASS", "pass"),
        Verdict::Fail => ("FAIL", "**FAIL**"),
        Verdict::NotApplicable => ("N/A", "n/a"),
    }
}

/// The summary table for the terminal; `provider` is where the live rows ran.
fn text_table(rows: &[Row], provider: &str, tally: &str, all: bool) -> String {
    let width = rows.iter().map(|r| r.check.len()).max().unwrap_or(5).max(5);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<width$} {:<4} {:<8} {:<7} detail",
        "check", "helm", "provider", "verdict"
    );
    for r in rows {
        let _ = writeln!(
            text,
            "{:<width$} {:<4} {:<8} {:<7} {}",
            r.check,
            r.helm.number(),
            provider,
            verdict_word(r.verdict).0,
            r.detail
        );
    }
    let _ = writeln!(
        text,
        "qualification: {} ({tally})",
        if all { "PASS" } else { "FAIL" }
    );
    text
}

/// The summary table as Markdown (details redacted before `|` is escaped).
fn markdown_table(
    rows: &[Row],
    provider: &str,
    tally: &str,
    all: bool,
    redactor: &crate::redact::Redactor,
) -> String {
    let mut md =
        String::from("| check | Helm | provider | verdict | detail |\n|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {provider} | {} | {} |",
            r.check,
            r.helm.number(),
            verdict_word(r.verdict).1,
            // Redacted before it is escaped, so an escaped secret cannot slip through.
            redactor.apply(&r.detail).replace('|', "\\|")
        );
    }
    let _ = writeln!(
        md,
        "\n**Qualification: {}** ({tally})",
        if all { "pass" } else { "FAIL" }
    );
    md
}

/// Prints the table, writes Markdown and JUnit, and returns whether the release qualifies: no
/// row failed (not-applicable rows do not count against the release).
fn summarise(
    a: &QualifyArgs,
    rows: &[Row],
    redactor: &crate::redact::Redactor,
) -> Result<bool, InputError> {
    let all = rows.iter().all(|r| r.verdict != Verdict::Fail);
    let counts = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    let tally = format!(
        "{} passed, {} failed, {} not applicable",
        counts(Verdict::Pass),
        counts(Verdict::Fail),
        counts(Verdict::NotApplicable)
    );
    let provider = a.provider.as_str();
    let text = text_table(rows, provider, &tally, all);
    print!("{}", crate::report::terminal_safe(&redactor.apply(&text)));
    if let Some(path) = &a.markdown {
        let md = markdown_table(rows, provider, &tally, all, redactor);
        std::fs::write(path, redactor.apply(&md)).map_err(|e| {
            InputError::in_flag(
                "--markdown",
                format!("cannot write {}: {e}", path.display()),
                "pass a writable path",
            )
        })?;
    }
    if let Some(path) = &a.junit {
        let mut suite = quick_junit::TestSuite::new("keda-conformance qualify");
        for r in rows {
            let status = match r.verdict {
                Verdict::Pass => quick_junit::TestCaseStatus::success(),
                Verdict::Fail => {
                    let mut st = quick_junit::TestCaseStatus::non_success(
                        quick_junit::NonSuccessKind::Failure,
                    );
                    st.set_message(redactor.apply(&r.detail));
                    st
                }
                Verdict::NotApplicable => {
                    let mut st = quick_junit::TestCaseStatus::skipped();
                    st.set_message(r.detail.clone());
                    st
                }
            };
            let mut case = quick_junit::TestCase::new(
                format!("{} [helm {}] [local]", r.check, r.helm.number()),
                status,
            );
            case.set_classname("keda-conformance.qualify");
            suite.add_test_case(case);
        }
        let mut report = quick_junit::Report::new("keda-conformance");
        report.add_test_suite(suite);
        std::fs::write(path, report.to_string().unwrap_or_default()).map_err(|e| {
            InputError::in_flag(
                "--junit",
                format!("cannot write {}: {e}", path.display()),
                "pass a writable path",
            )
        })?;
    }
    Ok(all)
}

/// The pollingInterval (seconds) of the first rendered ScaledObject; KEDA's default is 30.
fn polling_seconds(report: &render::RenderReport) -> u64 {
    report
        .first_autoscaled()
        .map(|a| a.polling)
        .unwrap_or(crate::keda::autoscaled::DEFAULT_POLLING)
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_of(rendered: &str) -> RenderReport {
        RenderReport {
            chart: "c".into(),
            helm: "3".into(),
            release: "tempo".into(),
            namespace: "tempo".into(),
            capabilities: Default::default(),
            gated_api_versions: Default::default(),
            verdict: Default::default(),
            rendered: rendered.into(),
            manifests: crate::keda::manifest::split(rendered).unwrap_or_default(),
            helm_time: Default::default(),
        }
    }

    #[test]
    fn the_table_names_the_provider_the_rows_ran_on() {
        let rows = [Row::new("live scaling", HelmMajor::V4, true, "held".into())];
        let text = text_table(&rows, "kind", "1 passed", true);
        assert!(text.lines().nth(1).unwrap().contains(" kind "), "{text}");
        assert!(!text.contains("local"), "{text}");
        let md = markdown_table(
            &rows,
            "kind",
            "1 passed",
            true,
            &crate::redact::Redactor::default(),
        );
        assert!(
            md.contains("| live scaling | 4 | kind | pass | held |"),
            "{md}"
        );
    }

    #[test]
    fn lineage_is_the_scaled_kind_and_component() {
        let so = "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: s}\nspec:\n  scaleTargetRef: {kind: StatefulSet, name: tempo-tempo-backend-worker}\n";
        let sts = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: tempo-tempo-backend-worker\n  labels: {app.kubernetes.io/component: backend-worker}\n";
        assert_eq!(
            lineage(&report_of(&format!("---\n{so}---\n{sts}"))).as_deref(),
            Some("StatefulSet/backend-worker")
        );
        let bare = "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: s}\nspec:\n  scaleTargetRef: {name: tempo-tempo-compactor}\n";
        assert_eq!(
            lineage(&report_of(bare)).as_deref(),
            Some("Deployment/tempo-compactor")
        );
        assert_eq!(lineage(&report_of("")), None);
    }
}
