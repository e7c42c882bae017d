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

/// A FIFO named like a scenario in a suite directory (a hostile or careless suite): the run
/// must not block on reading it; only regular files are scenarios.
#[test]
fn a_fifo_in_a_suite_directory_does_not_hang_the_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let scenario =
        std::fs::read_to_string(root.join("suites/default/compactor-sends-tenant-header.yaml"))
            .unwrap()
            .replace(
                "../../fixtures",
                &root.join("fixtures").display().to_string(),
            );
    std::fs::write(dir.path().join("a.yaml"), scenario).unwrap();
    nix::unistd::mkfifo(&dir.path().join("b.yaml"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args(["list", "--suite"])
        .arg(dir.path())
        .current_dir(&root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("`list` blocked on a FIFO in the suite directory");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("compactor-sends-tenant-header"), "{text}");
}
