//! `run --dry-run` plans for each provider, compared with golden files in fixtures/plans/
//! (set UPDATE_GOLDEN=1 to rewrite them after an intended change).

use std::path::Path;
use std::process::Command;

fn plan(args: &[&str]) -> (Option<i32>, String, String) {
    plan_with_env(args, &[])
}

fn plan_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> (Option<i32>, String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args(["run", "--dry-run"])
        .args(args)
        .envs(env.iter().copied())
        .current_dir(&root)
        .output()
        .expect("harness runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/plans")
        .join(name);
    // Rewriting is its own mode, never a pass: the new file is for a human to review.
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        panic!(
            "rewrote {}; review the diff, then run without UPDATE_GOLDEN",
            path.display()
        );
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(actual, expected, "plan differs from {}", path.display());
}

#[test]
fn local_provider_plan_matches_the_golden_file() {
    let (code, out, err) = plan(&[
        "--suite",
        "suites/default/compactor-header-reaches-endpoint.yaml",
    ]);
    assert_eq!(code, Some(0), "{err}");
    golden("local-compactor-header-reaches-endpoint.txt", &out);
}

#[test]
fn existing_provider_plan_matches_the_golden_file() {
    let (code, out, err) = plan(&[
        "--provider",
        "existing",
        "--kubeconfig",
        "fixtures/bad-input/kubeconfig-two-contexts.yaml",
        "--context",
        "staging",
        "--install-keda",
        "--suite",
        "suites/default/backend-worker-500-triggers-fallback.yaml",
    ]);
    assert_eq!(code, Some(0), "{err}");
    golden("existing-backend-worker-500-triggers-fallback.txt", &out);
}

#[test]
fn render_tier_plan_matches_the_golden_file() {
    let (code, out, err) = plan(&[
        "--tier",
        "render",
        "--suite",
        "suites/default/backend-worker-sends-tenant-header.yaml",
    ]);
    assert_eq!(code, Some(0), "{err}");
    golden("render-backend-worker-sends-tenant-header.txt", &out);
}

#[test]
fn kind_plan_names_every_phase_without_touching_docker() {
    // A dry run never talks to Docker: DOCKER_HOST names a socket that does not exist.
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}", dir.path().join("no-docker.sock").display());
    let (code, out, err) = plan_with_env(
        &[
            "--provider",
            "kind",
            "--suite",
            "suites/default/compactor-header-reaches-endpoint.yaml",
        ],
        &[
            ("DOCKER_HOST", host.as_ref()),
            ("DOCKER_CONTEXT", "default".as_ref()),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    for phase in [
        "docker: use the engine that answers",
        "images: scripts/kind/build.sh",
        "kind create cluster --name kc-<pid>-<random>",
        "KEDA v2.20.2: kind load its images, server-side apply",
        "as a container on the kind network",
        "a recording proxy on the kind network's gateway address",
        "kind load the chart's images",
        "at the end: kind delete cluster",
    ] {
        assert!(out.contains(phase), "{phase:?} missing from:\n{out}");
    }
}
