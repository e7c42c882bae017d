//! `scripts/kind/pull.sh`, the pull policy of the kind image pipeline, on its own: how an
//! upstream reference is asked of a mirror, what each policy does when a pull fails, and that
//! `auto` stops pulling after a registry proved unreachable. `docker` here is a recording
//! stand-in on PATH that answers as the engine does (the real engine's pulls are exercised by
//! `kind_provider.rs` against a registry of ours).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `body` in bash after sourcing pull.sh (with the pipeline's `log` and `die`), with
/// `env` set and a `docker` on PATH that appends its arguments to `calls` and fails its pulls
/// with `pull_error` when that is not empty (exit `STUB_PULL_RC`, default 1). Returns (exit
/// code, stdout, stderr, docker calls).
fn run(env: &[(&str, &str)], pull_error: &str, body: &str) -> (i32, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let docker = dir.path().join("docker");
    std::fs::write(
        &docker,
        format!(
            "#!/usr/bin/env bash\necho \"$*\" >>{calls}\nif [ \"$1\" = pull ] && [ -n {err} ]; then echo {err} >&2; exit \"${{STUB_PULL_RC:-1}}\"; fi\nexit 0\n",
            calls = calls.display(),
            err = shell_quote(pull_error),
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let script = format!(
        "set -euo pipefail\nlog() {{ echo \"log: $*\" >&2; }}\ndie() {{ echo \"die: $*\" >&2; exit 2; }}\n. {}\n{body}\n",
        root().join("scripts/kind/pull.sh").display()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).env(
        "PATH",
        format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    for var in [
        "KEDA_CONFORMANCE_KIND_IMAGES",
        "KEDA_CONFORMANCE_IMAGE_MIRROR",
        "KC_REGISTRY_UNREACHABLE",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        std::fs::read_to_string(&calls).unwrap_or_default(),
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

const UNREACHABLE: &str = "Error response from daemon: Get \"https://ghcr.io/v2/\": dial tcp: lookup ghcr.io on 10.255.255.53:53: no such host";

#[test]
fn a_mirror_is_asked_for_the_upstream_path() {
    let (code, out, err, _) = run(
        &[("KEDA_CONFORMANCE_IMAGE_MIRROR", "mirror.example.com:5000/proxy/")],
        "",
        "for r in kindest/node:v1.37.0@sha256:abc nginx ghcr.io/kedacore/keda:2.20.2 localhost:5000/x/y:1 quay.io/cortexproject/cortex:v1.21.1; do kc_mirror_ref \"$r\"; done",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "mirror.example.com:5000/proxy/docker.io/kindest/node:v1.37.0@sha256:abc",
            "mirror.example.com:5000/proxy/docker.io/library/nginx",
            "mirror.example.com:5000/proxy/ghcr.io/kedacore/keda:2.20.2",
            "mirror.example.com:5000/proxy/localhost:5000/x/y:1",
            "mirror.example.com:5000/proxy/quay.io/cortexproject/cortex:v1.21.1",
        ]
    );
}

#[test]
fn a_pull_through_the_mirror_is_tagged_under_the_upstream_name() {
    let (code, out, err, calls) = run(
        &[("KEDA_CONFORMANCE_IMAGE_MIRROR", "127.0.0.1:5000")],
        "",
        "kc_pull ghcr.io/kedacore/keda:2.20.2 && echo pulled; kc_pull kindest/node:v1.37.0@sha256:abc && kc_pulled_name kindest/node:v1.37.0@sha256:abc",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["pulled", "kindest/node:v1.37.0"]
    );
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            "pull -q -- 127.0.0.1:5000/ghcr.io/kedacore/keda:2.20.2",
            "tag 127.0.0.1:5000/ghcr.io/kedacore/keda:2.20.2 ghcr.io/kedacore/keda:2.20.2",
            "rmi -- 127.0.0.1:5000/ghcr.io/kedacore/keda:2.20.2",
            // A digest reference cannot be a tag: tagged without it, the mirror's kept.
            "pull -q -- 127.0.0.1:5000/docker.io/kindest/node:v1.37.0@sha256:abc",
            "tag 127.0.0.1:5000/docker.io/kindest/node:v1.37.0@sha256:abc kindest/node:v1.37.0",
        ]
    );
    assert!(err.contains("log: pulled ghcr.io/kedacore/keda:2.20.2 (from 127.0.0.1:5000/ghcr.io/kedacore/keda:2.20.2)"), "{err}");
}

#[test]
fn auto_builds_and_stops_pulling_once_no_registry_answers() {
    let (code, out, err, calls) = run(
        &[],
        UNREACHABLE,
        "kc_pull ghcr.io/kedacore/keda:2.20.2 || echo build-a; kc_pull quay.io/cortexproject/cortex:v1.21.1 || echo build-b; echo \"unreachable=$KC_REGISTRY_UNREACHABLE\"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["build-a", "build-b", "unreachable=1"]
    );
    // One pull only: the second reference is built without asking again.
    assert_eq!(calls.lines().count(), 1, "{calls}");
    assert!(
        err.contains("not pulled: ghcr.io/kedacore/keda:2.20.2 ("),
        "{err}"
    );
}

#[test]
fn a_pull_that_times_out_counts_as_no_registry() {
    // `timeout` ends the pull with 124 and a message that names no network error.
    let (code, out, err, calls) = run(
        &[("STUB_PULL_RC", "124")],
        "pulling fs layer",
        "kc_pull ghcr.io/kedacore/keda:2.20.2 || echo build-a; kc_pull quay.io/cortexproject/cortex:v1.21.1 || echo build-b",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["build-a", "build-b"]);
    assert_eq!(calls.lines().count(), 1, "{calls}");
}

#[test]
fn auto_builds_one_missing_image_and_still_pulls_the_next() {
    let (code, out, err, calls) = run(
        &[],
        "Error response from daemon: manifest for ghcr.io/kedacore/keda:0.0.0 not found: manifest unknown",
        "kc_pull ghcr.io/kedacore/keda:0.0.0 || echo build-a; kc_pull quay.io/cortexproject/cortex:v1.21.1 || echo build-b; echo \"unreachable=${KC_REGISTRY_UNREACHABLE:-0}\"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["build-a", "build-b", "unreachable=0"]
    );
    assert_eq!(calls.lines().count(), 2, "{calls}");
}

#[test]
fn pull_fails_the_pipeline_and_build_never_pulls() {
    let (code, _, err, _) = run(
        &[("KEDA_CONFORMANCE_KIND_IMAGES", "pull")],
        UNREACHABLE,
        "kc_pull ghcr.io/kedacore/keda:2.20.2; echo not-reached",
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("die: cannot pull ghcr.io/kedacore/keda:2.20.2:")
            && err.contains("unset it to build the image here"),
        "{err}"
    );
    let (code, out, err, calls) = run(
        &[("KEDA_CONFORMANCE_KIND_IMAGES", "build")],
        "",
        "kc_pull ghcr.io/kedacore/keda:2.20.2 || echo build",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "build");
    assert_eq!(calls, "");
}

#[test]
fn bad_policies_mirrors_and_references_are_refused() {
    for (env, body, says) in [
        (
            ("KEDA_CONFORMANCE_KIND_IMAGES", "sometimes"),
            "true",
            "set it to auto (default), pull or build",
        ),
        (
            ("KEDA_CONFORMANCE_IMAGE_MIRROR", "--insecure"),
            "true",
            "is not host[:port][/path]",
        ),
        (
            ("KEDA_CONFORMANCE_IMAGE_MIRROR", "m.example.com"),
            "kc_pull '--privileged'",
            "not an image reference: --privileged",
        ),
    ] {
        let (code, _, err, calls) = run(&[env], "", body);
        assert_eq!(code, 2, "{env:?}: {err}");
        assert!(err.contains(says), "{env:?}: {err}");
        assert_eq!(calls, "", "{env:?}");
    }
}
