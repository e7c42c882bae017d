//! Every scenario in suites/default and suites/defects becomes one test per Helm major, run
//! with real Helm through the same engine as `keda-conformance run`.

use keda_conformance::{engine, scenario};
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::Path;

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
                let name = format!("{suite}::{}::helm{}", s.name, helm.0.number());
                trials.push(Trial::test(name, move || {
                    let results = engine::run(std::slice::from_ref(&s), Some(helm.0))
                        .map_err(|e| Failed::from(e.to_string()))?;
                    let r = results
                        .first()
                        .ok_or_else(|| Failed::from("the engine returned no result"))?;
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
