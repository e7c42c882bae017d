//! A live run whose trigger sends a known credential: the credential must reach the endpoint
//! (the scenario asserts that at the mock) and appear in no output of the run: standard
//! output and error, the JUnit report, and every evidence file.

use std::path::Path;
use std::process::Command;

const SECRET: &str = "kc-live-secret-7c1e";

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn a_secret_header_reaches_the_endpoint_and_no_output_contains_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().expect("tempdir");
    let junit = tmp.path().join("junit.xml");
    let out_dir = tmp.path().join("evidence");
    let o = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args([
            "run",
            "--suite",
            "suites/default/backend-worker-secret-header-redacted.yaml",
            "--format",
            "json",
            "-v",
        ])
        .arg("--junit")
        .arg(&junit)
        .arg("--out")
        .arg(&out_dir)
        .current_dir(&root)
        .output()
        .expect("harness runs");
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        o.status.code(),
        Some(0),
        "the scenario must pass (it asserts the header at the mock):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("<redacted>"),
        "the report shows no redaction:\n{stdout}"
    );
    let mut all = vec![
        ("stdout".to_string(), stdout),
        ("stderr".to_string(), stderr),
    ];
    let mut paths = vec![junit];
    files(&out_dir, &mut paths);
    assert!(
        paths.len() >= 3,
        "expected JUnit plus timeline and request evidence, got {paths:?}"
    );
    for p in paths {
        all.push((
            p.display().to_string(),
            std::fs::read_to_string(&p).unwrap_or_default(),
        ));
    }
    let leaks: Vec<&String> = all
        .iter()
        .filter(|(_, text)| text.contains(SECRET))
        .map(|(name, _)| name)
        .collect();
    assert!(leaks.is_empty(), "the secret appears in: {leaks:?}");
}
