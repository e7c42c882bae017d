//! `bench render`, `bench live` and `soak`: the commands that measure instead of judge.

use super::commands::{run_suite_once, start_live, suites_dir};
use super::{RunArgs, SoakArgs};
use crate::chart::helm::HelmMajor;
use crate::error::{exit_code, InputError};
use crate::{engine, scenario};
use std::path::PathBuf;

pub(super) fn bench_render(runs: u32, helm: HelmMajor) -> Result<i32, InputError> {
    let fixtures = suites_dir().join("default");
    let rows = crate::bench::render(&fixtures, runs, helm)?;
    println!("{}", crate::bench::format_render(&rows, helm));
    Ok(exit_code::PASS)
}

/// `bench mutate`: mutants per second of the render tier.
pub(super) fn bench_mutate(a: super::mutate::BenchMutateArgs) -> Result<i32, InputError> {
    super::mutate::bench(a)
}

/// `bench live` (and `bench kind`): the suite's live scenarios on `provider`, each
/// expect_replicas step's latency against its bound, the start phases and the wall time.
pub(super) fn bench_live(
    suite: Option<PathBuf>,
    provider: crate::provider::ProviderKind,
) -> Result<i32, InputError> {
    let suite = suite.unwrap_or_else(|| suites_dir().join("default"));
    let scenarios: Vec<scenario::Scenario> = scenario::load_suite(&suite)?
        .into_iter()
        .filter(|s| s.steps.iter().any(|st| st.is_live()))
        .collect();
    if scenarios.is_empty() {
        return Err(InputError::in_flag(
            "--suite",
            format!("{} has no live scenarios", suite.display()),
            "point --suite at scenarios with install steps",
        ));
    }
    // Removed at the end and on interrupt.
    let out = crate::cleanup::TempDir::new("keda-conformance-bench-").map_err(|e| {
        InputError::in_environment(
            "temporary directory",
            e.to_string(),
            "check that $TMPDIR is writable",
        )
    })?;
    let mut args = RunArgs::for_suite(suite, engine::Tier::All, None, out.path().to_path_buf());
    args.provider = provider;
    let started = std::time::Instant::now();
    let ctx = start_live(&scenarios, &args)?;
    let ready = started.elapsed();
    let phases = ctx.env.startup.clone();
    let results = engine::run(&scenarios, None, Some(&ctx));
    let engine::LiveContext { runtime, env, .. } = ctx;
    runtime.block_on(env.stop());
    let results = results?;
    let wall = started.elapsed();
    drop(out);
    println!(
        "bench live on the {} provider ({} scenario runs; live environment ready in {:.1}s)",
        provider.as_str(),
        results.len(),
        ready.as_secs_f64()
    );
    for (phase, took) in &phases {
        println!("  start phase {phase:<34} {:>7.1}s", took.as_secs_f64());
    }
    println!(
        "{:<52} {:>8} {:>18} {:>9} {:>9} {:>6}",
        "scenario", "verdict", "step", "latency", "bound", "ratio"
    );
    let mut worst: f64 = 0.0;
    for r in &results {
        let verdict = if r.passed { "pass" } else { "FAIL" };
        let latencies = r
            .live
            .as_ref()
            .map(|l| l.latencies.clone())
            .unwrap_or_default();
        if latencies.is_empty() {
            println!(
                "{:<52} {:>8} {:>18} {:>9} {:>9} {:>6}",
                r.name, verdict, "-", "-", "-", "-"
            );
        }
        for l in latencies {
            let ratio = l.seconds / l.bound.max(0.001);
            worst = worst.max(ratio);
            println!(
                "{:<52} {:>8} {:>18} {:>8.1}s {:>8.1}s {:>5.2}x{}",
                r.name,
                verdict,
                l.step,
                l.seconds,
                l.bound,
                ratio,
                if ratio > 1.3 { " over 1.3x" } else { "" }
            );
        }
    }
    let wall_goal = match provider {
        crate::provider::ProviderKind::Kind => 600,
        _ => 300,
    };
    println!("worst latency ratio {worst:.2}x (target <= 1.3x); suite wall time {:.0}s (target <= {wall_goal}s with a warm cache)", wall.as_secs_f64());
    Ok(exit_code::of(
        results.iter().all(|r| r.passed),
        crate::cleanup::stop_token().is_stopped(),
    ))
}

pub(super) fn soak(a: SoakArgs) -> Result<i32, InputError> {
    let suite = a
        .suite
        .clone()
        .unwrap_or_else(|| suites_dir().join("default"));
    let scenarios = scenario::load_suite(&suite)?;
    // Evidence of every run goes to a temporary directory removed at the end and on interrupt.
    let out = crate::cleanup::TempDir::new("keda-conformance-soak-").map_err(|e| {
        InputError::in_environment(
            "temporary directory",
            e.to_string(),
            "check that $TMPDIR is writable",
        )
    })?;
    let run_args = RunArgs::for_suite(suite, a.tier, a.helm, out.path().to_path_buf());
    let mut outcomes: std::collections::BTreeMap<String, Vec<(bool, f64, Vec<String>)>> =
        Default::default();
    // Verdict latency of each expect_replicas step, by scenario and step position.
    let mut latencies: std::collections::BTreeMap<(String, usize), (String, f64, Vec<f64>)> =
        Default::default();
    let mut complete = 0;
    for i in 0..a.runs.max(1) {
        let results = run_suite_once(&scenarios, &run_args)?;
        let failed = results.iter().filter(|r| !r.passed).count();
        eprintln!(
            "soak run {}/{}: {} passed, {failed} failed",
            i + 1,
            a.runs.max(1),
            results.len() - failed
        );
        if crate::cleanup::stop_token().is_stopped() {
            // An interrupted run says nothing about flakiness: report the complete runs only.
            eprintln!(
                "soak interrupted during run {}; reporting the {i} complete run(s)",
                i + 1
            );
            break;
        }
        complete += 1;
        for r in results {
            for (k, l) in r.live.iter().flat_map(|l| l.latencies.iter()).enumerate() {
                let e = latencies
                    .entry((r.name.clone(), k))
                    .or_insert_with(|| (l.step.clone(), l.bound, Vec::new()));
                e.2.push(l.seconds);
            }
            outcomes.entry(r.name.clone()).or_default().push((
                r.passed,
                r.elapsed.as_secs_f64(),
                r.reasons.clone(),
            ));
        }
    }
    drop(out);
    println!(
        "soak: {complete} runs of {} scenario runs each",
        outcomes.len()
    );
    println!(
        "{:<58} {:>7} {:>7} {:>8} {:>8} {:>8}",
        "scenario", "passed", "flaky", "min s", "median s", "max s"
    );
    let mut flaky = 0;
    let mut failures = 0;
    for (name, runs) in &outcomes {
        let passed = runs.iter().filter(|r| r.0).count();
        let is_flaky = passed > 0 && passed < runs.len();
        flaky += usize::from(is_flaky);
        failures += runs.len() - passed;
        let mut t: Vec<f64> = runs.iter().map(|r| r.1).collect();
        t.sort_by(|x, y| x.total_cmp(y));
        println!(
            "{:<58} {:>3}/{:<3} {:>7} {:>8.1} {:>8.1} {:>8.1}",
            name,
            passed,
            runs.len(),
            if is_flaky { "FLAKY" } else { "-" },
            t[0],
            t[t.len() / 2],
            t[t.len() - 1]
        );
        for (ok, _, reasons) in runs {
            if !ok {
                println!("    failure: {}", reasons.join("; "));
            }
        }
    }
    if !latencies.is_empty() {
        println!("verdict latencies (expect_replicas: seconds until the count was reached)");
        println!(
            "{:<58} {:>18} {:>5} {:>8} {:>8} {:>8} {:>8}",
            "scenario", "step", "n", "min s", "median s", "max s", "bound s"
        );
        for ((name, _), (step, bound, mut t)) in latencies {
            t.sort_by(|x, y| x.total_cmp(y));
            println!(
                "{:<58} {:>18} {:>5} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                name,
                step,
                t.len(),
                t[0],
                t[t.len() / 2],
                t[t.len() - 1],
                bound
            );
        }
    }
    println!(
        "flake rate: {flaky} of {} scenarios ({:.1}%); failed scenario runs: {failures}",
        outcomes.len(),
        100.0 * flaky as f64 / outcomes.len().max(1) as f64
    );
    Ok(exit_code::of(
        failures == 0,
        crate::cleanup::stop_token().is_stopped(),
    ))
}
