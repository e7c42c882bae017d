//! Every scenario in suites/default and suites/defects becomes one test per Helm major, run
//! with real Helm through the same engine as `keda-conformance run`. A scenario with live
//! steps brings up its own local cluster, KEDA and backend (nextest runs each test in its own
//! process; the `live` test group runs them one at a time).

use keda_conformance::{engine, scenario};
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::Path;

/// A live environment for one scenario: its own local cluster (unique name), KEDA and backend.
fn live_context(s: &scenario::Scenario) -> Result<engine::LiveContext, Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(e.to_string()))?;
    let name = format!("suite-{}", std::process::id());
    let nodes = s.live.nodes.unwrap_or(5);
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
        parallel: 1,
    })
}

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites");
    let mut trials = Vec::new();
    for suite in ["default", "defects"] {
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
        for s in scenarios {
            for helm in s.helm.clone() {
                let s = s.clone();
                let live = s.steps.iter().any(|st| st.is_live());
                let name = format!(
                    "{suite}::{}{}::helm{}",
                    if live { "live::" } else { "" },
                    s.name,
                    helm.0.number()
                );
                trials.push(Trial::test(name, move || {
                    let ctx = if live { Some(live_context(&s)?) } else { None };
                    let results = engine::run(std::slice::from_ref(&s), Some(helm.0), ctx.as_ref());
                    if let Some(ctx) = ctx {
                        let engine::LiveContext { runtime, env, .. } = ctx;
                        runtime.block_on(env.stop());
                    }
                    let results = results.map_err(|e| Failed::from(e.to_string()))?;
                    let r = results
                        .first()
                        .ok_or_else(|| Failed::from("the engine returned no result"))?;
                    if live && r.live.is_none() {
                        return Err(Failed::from("the live steps did not run"));
                    }
                    if r.passed {
                        Ok(())
                    } else {
                        Err(Failed::from(keda_conformance::report::run_text(
                            &results, false,
                        )))
                    }
                }));
            }
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
