//! The bad-input catalog (fixtures/bad-input/cases.yaml): every case must exit 2 with one
//! message naming the file/line or flag and the fix, and never panic.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    expect: Vec<String>,
}

#[test]
fn every_bad_input_exits_2_with_a_message_naming_the_place_and_the_fix() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("fixtures/bad-input/cases.yaml"))
        .expect("catalog readable");
    let cases: Vec<Case> = serde_yaml_ng::from_str(&text).expect("catalog parses");
    assert!(
        cases.len() >= 25,
        "the catalog must hold at least 25 cases, has {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for c in &cases {
        let out = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
            .args(&c.args)
            .envs(&c.env)
            .current_dir(&root)
            .output()
            .expect("harness runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let missing: Vec<&String> = c
            .expect
            .iter()
            .filter(|e| !text.contains(e.as_str()))
            .collect();
        let code = out.status.code();
        if code != Some(2) || !missing.is_empty() || text.contains("panicked") {
            failures.push(format!(
                "{}: exit {code:?}, missing {missing:?}\n{text}",
                c.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
