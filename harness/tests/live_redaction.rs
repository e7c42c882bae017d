//! Live runs whose triggers send known credentials (a credential in customHeaders, and a
//! bearer token, basic auth and a custom auth header from TriggerAuthentication Secrets):
//! each credential must reach the endpoint (the scenarios assert that at the mock) and appear
//! in no output of the run: standard output and error, the JUnit report, and every evidence
//! file, neither as written nor base64-encoded.

use std::path::Path;
use std::process::Command;

/// Every credential the scenarios use, and the forms in which they could leak.
const SECRETS: &[&str] = &[
    "kc-live-secret-7c1e",
    "kc-bearer-5d81",
    "a2MtYmVhcmVyLTVkODE",
    "kc-user-4410",
    "kc-pass-93be",
    "a2MtdXNlci00NDEwOmtjLXBhc3MtOTNiZQ",
    "kc-custom-key-91d2",
    "a2MtY3VzdG9tLWtleS05MWQy",
];

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

/// Fails naming every secret found in `outputs` or in the files at `paths` (read as bytes: a
/// binary or mis-encoded evidence file is searched too).
fn assert_no_secret(mut outputs: Vec<(String, String)>, paths: Vec<std::path::PathBuf>) {
    for p in paths {
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        outputs.push((
            p.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    let leaks: Vec<String> = outputs
        .iter()
        .flat_map(|(name, text)| {
            SECRETS
                .iter()
                .filter(|s| text.contains(**s))
                .map(move |s| format!("{s} in {name}"))
        })
        .collect();
    assert!(leaks.is_empty(), "secrets leak: {leaks:?}");
}

#[test]
fn secret_headers_reach_the_endpoint_and_no_output_contains_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().expect("tempdir");
    let junit = tmp.path().join("junit.xml");
    let out_dir = tmp.path().join("evidence");
    let o = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args([
            "run",
            "--suite",
            "suites/default",
            "--filter",
            "secret-header-redacted",
            "--filter",
            "auth-reaches-endpoint",
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
    assert_eq!(
        stdout.matches("\"passed\": true").count(),
        4,
        "four scenarios must have run and passed:\n{stdout}"
    );
    let all = vec![
        ("stdout".to_string(), stdout),
        ("stderr".to_string(), stderr),
    ];
    let mut paths = vec![junit];
    files(&out_dir, &mut paths);
    assert!(
        paths.len() > 3 * 4,
        "expected JUnit plus timeline and request evidence, got {paths:?}"
    );
    assert_no_secret(all, paths);
}

/// `qualify` has its own outputs (the matrix on stdout, Markdown, JUnit, evidence): a chart
/// whose values carry a credential in customHeaders must leak it into none of them.
#[test]
fn qualify_outputs_contain_no_secret() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (markdown, junit, out_dir) = (
        tmp.path().join("summary.md"),
        tmp.path().join("junit.xml"),
        tmp.path().join("evidence"),
    );
    // The suite row runs the secret-header scenario against the chart too.
    let suite = tmp.path().join("suite");
    std::fs::create_dir_all(&suite).expect("suite dir");
    let abs = format!("{}/", root.canonicalize().expect("root").display());
    let name = "backend-worker-secret-header-redacted.yaml";
    let scenario =
        std::fs::read_to_string(root.join("suites/default").join(name)).expect("scenario");
    std::fs::write(suite.join(name), scenario.replace("../../", &abs)).expect("write scenario");
    let o = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args([
            "qualify",
            "--chart",
            "fixtures/charts/backend-worker-3x",
            "--previous",
            "fixtures/charts/backend-worker-3x",
            "-f",
            "fixtures/values/backend-worker-live-secret-header.yaml",
            "--helm",
            "3",
        ])
        .arg("--suite")
        .arg(&suite)
        .arg("--markdown")
        .arg(&markdown)
        .arg("--junit")
        .arg(&junit)
        .arg("--out")
        .arg(&out_dir)
        .current_dir(&root)
        .output()
        .expect("harness runs");
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let all = vec![
        ("stdout".to_string(), stdout),
        ("stderr".to_string(), stderr),
    ];
    let mut paths = vec![markdown, junit];
    files(&out_dir, &mut paths);
    assert_no_secret(all, paths);
}
