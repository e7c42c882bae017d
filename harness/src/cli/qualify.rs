//! `qualify`: the matrix a release must pass (render and live on both Helm majors, and an
//! upgrade from the previous version), summarised as text, Markdown and JUnit.

use super::QualifyArgs;
use crate::chart::helm::HelmMajor;
use crate::error::{exit_code, InputError};
use crate::render::{self, RenderOptions};
use crate::repro::{default_metrics, scenario_yaml_with_upgrade};
use crate::scenario::Scenario;
use std::fmt::Write as _;

struct Row {
    check: String,
    helm: HelmMajor,
    passed: bool,
    detail: String,
}

pub(super) fn run(a: QualifyArgs) -> Result<i32, InputError> {
    super::commands::require_values_files(&a.values)?;
    let helms: Vec<HelmMajor> = a
        .helm
        .map(|h| vec![h])
        .unwrap_or_else(|| vec![HelmMajor::V3, HelmMajor::V4]);
    let expected = crate::repro::intended_headers(&a.values)?;
    let mut rows: Vec<Row> = Vec::new();
    let mut live_plans: Vec<(HelmMajor, String, Scenario, render::RenderReport)> = Vec::new();
    let tmp = crate::cleanup::TempDir::new("keda-conformance-qualify-").map_err(|e| {
        InputError::in_environment("temporary directory", e.to_string(), "check TMPDIR")
    })?;
    let values: Vec<String> = a
        .values
        .iter()
        .map(|v| super::commands::absolute(v))
        .collect();
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
        })?;
        let failed = report.verdict.failed_checks();
        rows.push(Row {
            check: format!("render {}", report.chart),
            helm,
            passed: failed.is_empty(),
            detail: if failed.is_empty() {
                "every render check passes".into()
            } else {
                format!("failing checks: {}", failed.join(", "))
            },
        });
        let Some(trigger) = report.verdict.requests.first().cloned() else {
            rows.push(Row {
                check: "live scaling".into(),
                helm,
                passed: false,
                detail: "no prometheus trigger KEDA can parse is rendered".into(),
            });
            continue;
        };
        let (tenants, seed_tenants) = crate::repro::tenants_for(&[], &trigger, &expected);
        let metrics = default_metrics(&trigger, &seed_tenants);
        let mut plans = vec![(
            "live scaling".to_string(),
            super::commands::absolute(&a.chart),
            None,
            report.clone(),
        )];
        if let Some(prev) = &a.previous {
            let prev_report = render::render(&RenderOptions {
                chart: prev.clone(),
                version: None,
                values_files: a.values.clone(),
                sets: Vec::new(),
                release: "tempo".into(),
                namespace: "tempo".into(),
                expected_headers: Vec::new(),
                expect_scaled_object: true,
                helm,
            })?;
            plans.push((
                format!("upgrade from {}", prev_report.chart),
                super::commands::absolute(prev),
                Some(super::commands::absolute(&a.chart)),
                prev_report,
            ));
        }
        for (i, (check, chart, upgrade_to, plan_report)) in plans.into_iter().enumerate() {
            let yaml = scenario_yaml_with_upgrade(
                &format!("qualify-{}-{i}", helm.number()),
                &chart,
                &values,
                helm.number(),
                &tenants,
                &metrics,
                upgrade_to.as_deref(),
            );
            let file = tmp
                .path()
                .join(format!("qualify-{}-{i}.yaml", helm.number()));
            std::fs::write(&file, yaml).map_err(|e| {
                InputError::in_environment("temporary directory", e.to_string(), "check TMPDIR")
            })?;
            live_plans.push((helm, check, Scenario::load(&file)?, plan_report));
        }
    }
    if !live_plans.is_empty() {
        let (runtime, env) = super::commands::local_live("qualify", 5)?;
        std::fs::create_dir_all(&a.out).map_err(|e| {
            InputError::in_flag(
                "--out",
                format!("cannot create {}: {e}", a.out.display()),
                "pass a writable directory",
            )
        })?;
        for (helm, check, scenario, report) in &live_plans {
            eprintln!("qualify: {check} [helm {}]", helm.number());
            let outcome =
                runtime.block_on(crate::live::run::run(&env, scenario, *helm, report, &a.out));
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
            rows.push(Row {
                check: check.clone(),
                helm: *helm,
                passed: outcome.reasons.is_empty(),
                detail,
            });
        }
        runtime.block_on(env.stop());
    }
    let all = rows.iter().all(|r| r.passed);
    let redactor = crate::redact::Redactor::default();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<44} {:<7} {:<9} {:<6} detail",
        "check", "helm", "provider", "verdict"
    );
    for r in &rows {
        let _ = writeln!(
            text,
            "{:<44} {:<7} {:<9} {:<6} {}",
            r.check,
            r.helm.number(),
            "local",
            if r.passed { "PASS" } else { "FAIL" },
            r.detail
        );
    }
    let _ = writeln!(text, "qualification: {}", if all { "PASS" } else { "FAIL" });
    print!("{}", redactor.apply(&text));
    if let Some(path) = &a.markdown {
        let mut md =
            String::from("| check | Helm | provider | verdict | detail |\n|---|---|---|---|---|\n");
        for r in &rows {
            let _ = writeln!(
                md,
                "| {} | {} | local | {} | {} |",
                r.check,
                r.helm.number(),
                if r.passed { "pass" } else { "**FAIL**" },
                r.detail.replace('|', "\\\\|")
            );
        }
        let _ = writeln!(
            md,
            "\n**Qualification: {}**",
            if all { "pass" } else { "FAIL" }
        );
        std::fs::write(path, md).map_err(|e| {
            InputError::in_flag(
                "--markdown",
                format!("cannot write {}: {e}", path.display()),
                "pass a writable path",
            )
        })?;
    }
    if let Some(path) = &a.junit {
        let mut suite = quick_junit::TestSuite::new("keda-conformance qualify");
        for r in &rows {
            let status = if r.passed {
                quick_junit::TestCaseStatus::success()
            } else {
                let mut st =
                    quick_junit::TestCaseStatus::non_success(quick_junit::NonSuccessKind::Failure);
                st.set_message(r.detail.clone());
                st
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
    Ok(if all {
        exit_code::PASS
    } else {
        exit_code::FAILED
    })
}
