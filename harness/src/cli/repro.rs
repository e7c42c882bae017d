//! `repro`: the bug-report entry point (see [`crate::repro`]).

use super::ReproArgs;
use crate::checks::Status;
use crate::error::{exit_code, InputError};
use crate::render::{self, RenderOptions};
use crate::repro::{
    default_metrics, derived_scenario, scenario_file_text, verdict_markdown, TenantMetrics,
};

pub(super) fn run(a: ReproArgs) -> Result<i32, InputError> {
    super::commands::require_values_files(&a.values)?;
    super::commands::require_names(&a.release, "tempo")?;
    // What the reporter meant: the headers their values configure (whatever the chart renders).
    let intended = crate::repro::intended_headers(&a.values)?;
    let mut report = render::render(&RenderOptions {
        chart: a.chart.clone(),
        version: a.version.clone(),
        values_files: a.values.clone(),
        sets: Vec::new(),
        release: a.release.clone(),
        namespace: "tempo".into(),
        expected_headers: intended.clone(),
        expect_scaled_object: true,
        helm: a.helm,
        capabilities: a.capabilities.resolve()?,
    })?;
    let trigger = report.verdict.requests.first().cloned();
    let scaled_object_rendered = report.first_autoscaled().is_some();
    if trigger.is_none() && (!scaled_object_rendered || a.tier == crate::engine::Tier::Render) {
        print!(
            "{}",
            crate::report::terminal_safe(&verdict_markdown(&report, None, false))
        );
        println!("\nNo ScaledObject with a prometheus trigger that KEDA can parse is rendered, so there is nothing to run live; the render checks above say why.");
        return Ok(exit_code::FAILED);
    }
    // A ScaledObject whose trigger KEDA rejects still goes live (installed, not seeded), so
    // the verdict carries KEDA's own conclusion next to the render checks.
    let (tenants, metrics): (Vec<String>, Vec<TenantMetrics>) = match &trigger {
        Some(trigger) => {
            let (tenants, seed_tenants) = crate::repro::tenants_for(&a.tenants, trigger, &intended);
            let metrics = match &a.metrics {
                Some(file) => read_metrics(file)?,
                None => default_metrics(trigger, &seed_tenants),
            };
            (tenants, metrics)
        }
        None => (a.tenants.clone(), Vec::new()),
    };
    if let Some(finding) = trigger
        .as_ref()
        .and_then(|t| crate::repro::silent_tenant_finding(t, &metrics))
    {
        report.verdict.findings.push(finding);
    }
    let values: Vec<std::path::PathBuf> = a
        .values
        .iter()
        .map(|v| super::commands::absolute(v).into())
        .collect();
    let scenario = derived_scenario(
        "repro",
        super::commands::absolute(&a.chart).as_ref(),
        &values,
        a.helm,
        &tenants,
        &metrics,
        None,
    );
    if let Some(path) = &a.save_scenario {
        std::fs::write(path, scenario_file_text(&scenario)).map_err(|e| {
            InputError::in_flag(
                "--save-scenario",
                format!("cannot write {}: {e}", path.display()),
                "pass a writable path",
            )
        })?;
        eprintln!("derived scenario written to {}", path.display());
    }
    if a.tier == crate::engine::Tier::Render {
        let passed = report.status() != Status::Fail;
        let text =
            crate::report::redactor_for(&[&report]).apply(&verdict_markdown(&report, None, passed));
        print!("{}", crate::report::terminal_safe(&text));
        println!("\nLive tier not run (`--tier render`); run without it to see what KEDA does with this chart.");
        return Ok(exit_code::of(passed, false));
    }
    let max = report
        .first_autoscaled()
        .and_then(|a| a.max_replicas)
        .unwrap_or(5)
        .max(0);
    let nodes = (max as u32).clamp(3, 10);
    let (runtime, env) = super::commands::derived_live(a.provider, "repro", nodes)?;
    super::commands::create_out_dir(&a.out)?;
    // The same scheduler as `run`: an interrupt stops the run at its current step, which
    // writes the evidence it has; the verdict is still printed (marked interrupted) and the
    // exit code is 130.
    let ctx = crate::engine::LiveContext {
        runtime,
        env,
        out_dir: a.out.clone(),
        parallel: 1,
    };
    let job = crate::engine::LiveJob {
        label: scenario.name.clone(),
        scenario: &scenario,
        helm: a.helm,
        report: &report,
    };
    let outcome = crate::engine::run_live(&ctx, std::slice::from_ref(&job))
        .pop()
        .map(|(outcome, _)| outcome)
        .unwrap_or_default();
    let crate::engine::LiveContext { runtime, env, .. } = ctx;
    runtime.block_on(env.stop());
    let passed = outcome.reasons.is_empty() && report.status() != Status::Fail;
    let text = crate::report::redactor_for(&[&report]).apply(&verdict_markdown(
        &report,
        Some(&outcome),
        passed,
    ));
    print!("{}", crate::report::terminal_safe(&text));
    if let Some(at) = &outcome.interrupted {
        println!(
            "\nInterrupted during {at}; the evidence gathered by then is under {}.",
            a.out.display()
        );
    }
    Ok(exit_code::of(passed, outcome.interrupted.is_some()))
}

/// Reads a `--metrics` file: a YAML list of tenants and their series.
fn read_metrics(file: &std::path::Path) -> Result<Vec<TenantMetrics>, InputError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        InputError::in_file(
            file,
            None,
            None,
            format!("cannot read: {e}"),
            "check the --metrics path",
        )
    })?;
    crate::yaml_guard::check(file, &text, "invalid metrics file")?;
    serde_yaml_ng::from_str(&text).map_err(|e| {
        let loc = e.location();
        InputError::in_file(
            file,
            loc.as_ref().map(|l| l.line()),
            loc.as_ref().map(|l| l.column()),
            format!("invalid metrics file: {e}"),
            "write a YAML list of {tenant, series: [{name, labels, value}], per_ready_pod: [{name, labels}]}",
        )
    })
}
