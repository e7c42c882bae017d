//! Every scenario in suites/default, suites/defects and suites/styles runs with real Helm through the same
//! engine as `keda-conformance run`. Render-only scenarios are one test per Helm major. The
//! live scenarios of a suite are one test that does what `keda-conformance run` does: one
//! local cluster and KEDA for the suite, a namespace and backend per scenario, three scenarios
//! at a time (nextest runs each test in its own process; the `live` test group runs them one
//! at a time). Its failure message is the report of every scenario that failed.

use keda_conformance::{engine, scenario};
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::Path;

/// Scenarios run at once on the shared cluster, as `keda-conformance run` does by default.
const PARALLEL: usize = 3;

/// A live environment for a suite's live scenarios: a local cluster (unique name) with
/// enough nodes for the largest, and KEDA.
fn live_context(scenarios: &[scenario::Scenario]) -> Result<engine::LiveContext, Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(e.to_string()))?;
    let name = format!("suite-{}", std::process::id());
    let nodes = scenarios
        .iter()
        .filter_map(|s| s.live.nodes)
        .max()
        .unwrap_or(5)
        .max(5);
    let env = runtime
        .block_on(keda_conformance::live::env::LiveEnv::start_local(
            &name,
            nodes,
            false,
            &|_| {},
        ))
        .map_err(|e| Failed::from(format!("live tier did not start: {e}")))?;
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("evidence");
    Ok(engine::LiveContext {
        runtime,
        env,
        out_dir,
        parallel: PARALLEL,
    })
}

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites");
    let mut trials = Vec::new();
    for suite in ["default", "defects", "styles"] {
        let scenarios = match scenario::load_suite(&root.join(suite)) {
            Ok(s) => s,
            Err(e) => {
                let msg = e.to_string();
                trials.push(Trial::test(format!("{suite}::load"), move || {
                    Err(Failed::from(msg))
                }));
                continue;
            }
        };
        let (live, render_only): (Vec<_>, Vec<_>) = scenarios
            .into_iter()
            .partition(|s| s.steps.iter().any(|st| st.is_live()));
        for s in render_only {
            for helm in s.helm.clone() {
                let s = s.clone();
                let name = format!("{suite}::{}::helm{}", s.name, helm.0.number());
                trials.push(Trial::test(name, move || {
                    let results = engine::run(std::slice::from_ref(&s), Some(helm.0), None)
                        .map_err(|e| Failed::from(e.to_string()))?;
                    if results.iter().all(|r| r.passed) && !results.is_empty() {
                        Ok(())
                    } else {
                        Err(Failed::from(keda_conformance::report::run_text(
                            &results, false,
                        )))
                    }
                }));
            }
        }
        if live.is_empty() {
            continue;
        }
        let runs: usize = live.iter().map(|s| s.helm.len()).sum();
        let name = format!("{suite}::live::all-{runs}-scenario-runs");
        trials.push(Trial::test(name, move || {
            let ctx = live_context(&live)?;
            let results = engine::run(&live, None, Some(&ctx));
            let engine::LiveContext { runtime, env, .. } = ctx;
            runtime.block_on(env.stop());
            let results = results.map_err(|e| Failed::from(e.to_string()))?;
            if results.len() != runs {
                return Err(Failed::from(format!(
                    "expected {runs} scenario runs, the engine returned {}",
                    results.len()
                )));
            }
            let failed: Vec<engine::ScenarioResult> = results
                .into_iter()
                .filter(|r| !r.passed || r.live.is_none())
                .collect();
            if failed.is_empty() {
                Ok(())
            } else {
                Err(Failed::from(format!(
                    "{} of {runs} scenario runs failed (a run without live outcome counts as failed):\n{}",
                    failed.len(),
                    keda_conformance::report::run_text(&failed, false)
                )))
            }
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}
