//! The `render` command end to end with real Helm 3 and 4: exit codes, output formats,
//! redaction, and that the user's chart directory is left untouched.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{harness, root, text};

#[test]
fn good_charts_pass_with_exit_0_on_both_helm_majors() {
    for helm in ["3", "4"] {
        for (chart, values, kind) in [
            (
                "fixtures/charts/compactor-1x",
                "fixtures/values/compactor-tenant-a.yaml",
                "Deployment/tempo-tempo-compactor",
            ),
            (
                "fixtures/charts/backend-worker-3x",
                "fixtures/values/backend-worker-tenant-a.yaml",
                "StatefulSet/tempo-tempo-backend-worker",
            ),
        ] {
            let o = harness(&[
                "render",
                "--helm",
                helm,
                "--chart",
                chart,
                "-f",
                values,
                "--expect-header",
                "X-Scope-OrgID=tenant-a",
                "-v",
            ]);
            let t = text(&o);
            assert_eq!(o.status.code(), Some(0), "helm {helm} {chart}:\n{t}");
            assert!(
                t.contains(&format!("scaleTargetRef resolves to {kind}")),
                "{t}"
            );
            assert!(t.contains("X-Scope-Orgid: tenant-a"), "{t}");
            assert!(t.contains(&format!("helm {helm} (v{helm}.")), "{t}");
        }
    }
}

#[test]
fn a_dropped_header_fails_with_exit_1_and_names_the_values_key() {
    let o = harness(&[
        "render",
        "--chart",
        "fixtures/charts/defects/compactor-drops-custom-headers",
        "-f",
        "fixtures/values/compactor-tenant-a.yaml",
        "--expect-header",
        "X-Scope-OrgID=tenant-a",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("the rendered trigger has no customHeaders"),
        "{t}"
    );
    assert!(
        t.contains("values compactor.autoscaling.keda.triggers[0].metadata.customHeaders"),
        "{t}"
    );
    assert!(
        t.contains("spec.triggers[0].metadata.customHeaders was dropped by the chart"),
        "{t}"
    );
}

#[test]
fn a_template_error_is_a_failed_check_with_helms_message() {
    let o = harness(&[
        "render",
        "--chart",
        "fixtures/charts/backend-worker-3x",
        "--set",
        "backendWorker.autoscaling.enabled=true",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL chart.renders"), "{t}");
    assert!(t.contains("ingest.kafka.address is required"), "{t}");
    // The key is named; the value is not (a `--set` value may be a token).
    assert!(
        t.contains("--set backendWorker.autoscaling.enabled=(value not shown)"),
        "{t}"
    );
    assert!(!t.contains("enabled=true"), "{t}");
}

#[test]
fn json_report_follows_the_documented_schema() {
    let o = harness(&[
        "render",
        "--chart",
        "fixtures/charts/compactor-1x",
        "-f",
        "fixtures/values/compactor-tenant-a.yaml",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(v["schema"], "keda-conformance/render/v1");
    assert_eq!(v["status"], "pass");
    assert!(v["findings"]
        .as_array()
        .map(|a| a
            .iter()
            .all(|f| f["check"].is_string() && f["status"].is_string() && f["evidence"].is_array()))
        .unwrap_or(false));
    assert_eq!(
        v["requests"][0]["request"]["headers"][0][0],
        "X-Scope-Orgid"
    );
    assert_eq!(v["requests"][0]["config"]["threshold"], 250.0);
}

#[test]
fn junit_report_has_one_failing_case_per_failed_check() {
    let o = harness(&[
        "render",
        "--chart",
        "fixtures/charts/defects/compactor-wrong-target-name",
        "-f",
        "fixtures/values/compactor-tenant-a.yaml",
        "--format",
        "junit",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let xml = String::from_utf8_lossy(&o.stdout);
    assert!(xml.contains("<testsuites"), "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert!(xml.contains("scaledobject.target"), "{xml}");
}

#[test]
fn secrets_in_headers_never_appear_in_any_output_format() {
    let secret = "kc-test-secret-0f9e8d7c";
    let tmp = tempfile::tempdir().expect("tempdir");
    for format in ["text", "json", "junit", "github"] {
        // The GitHub format also writes the step summary: it is searched with the output.
        let summary = tmp.path().join(format!("{format}-summary.md"));
        let o = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
            .args([
                "render",
                "--chart",
                "fixtures/charts/compactor-1x",
                "-f",
                "fixtures/values/compactor-with-secret-header.yaml",
                "--expect-header",
                "X-Scope-OrgID=tenant-a",
                "--format",
                format,
                "-v",
            ])
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("NO_COLOR", "1")
            .current_dir(root())
            .output()
            .expect("harness runs");
        let t = format!(
            "{}{}",
            text(&o),
            std::fs::read_to_string(&summary).unwrap_or_default()
        );
        assert!(
            !t.contains(secret),
            "{format} output leaks the secret:\n{t}"
        );
        if format != "junit" {
            // JUnit carries evidence only for failures; text and JSON show the request.
            assert!(
                t.contains("<redacted>"),
                "{format} output shows no redaction:\n{t}"
            );
            assert!(
                t.contains("tenant-a"),
                "{format}: the tenant is not a secret and must stay visible:\n{t}"
            );
        }
    }
}

fn tree_fingerprint(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).expect("readable")));
            }
        }
    }
    out.sort();
    out
}

/// `render` of the compactor fixture with tenant-a's values, from the checkout.
fn render_compactor() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keda-conformance"));
    c.args([
        "render",
        "--chart",
        "fixtures/charts/compactor-1x",
        "-f",
        "fixtures/values/compactor-tenant-a.yaml",
    ])
    .current_dir(root());
    c
}

#[test]
fn the_users_chart_directory_is_never_modified_and_no_temp_dir_is_left() {
    let chart = root().join("fixtures/charts/compactor-1x");
    let before = tree_fingerprint(&chart);
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = render_compactor()
        .env("TMPDIR", tmp.path())
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        before,
        tree_fingerprint(&chart),
        "the chart directory changed"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("readable").collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

#[test]
fn a_packaged_chart_renders_like_its_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tgz = tmp.path().join("tempo-distributed-1.48.0.tgz");
    let file = std::fs::File::create(&tgz).expect("create");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    builder
        .append_dir_all(
            "tempo-distributed",
            root().join("fixtures/charts/compactor-1x"),
        )
        .expect("pack");
    builder
        .into_inner()
        .expect("finish")
        .finish()
        .expect("flush");
    for chart in [tgz.display().to_string(), tmp.path().display().to_string()] {
        let o = harness(&[
            "render",
            "--chart",
            &chart,
            "--version",
            "1.48.0",
            "-f",
            "fixtures/values/compactor-tenant-a.yaml",
            "--expect-header",
            "X-Scope-OrgID=tenant-a",
        ]);
        assert_eq!(o.status.code(), Some(0), "{chart}: {}", text(&o));
    }
}

#[test]
fn list_shows_every_suite_and_scenario() {
    let o = harness(&["list"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("compactor-sends-tenant-header") && t.contains("compactor-drops-custom-headers"),
        "{t}"
    );
}

#[test]
fn doctor_reports_the_pinned_tools() {
    let o = harness(&["doctor"]);
    let t = text(&o);
    assert!(
        t.contains("helm 3 (v3.22.0)") && t.contains("helm 4 (v4.3.1)"),
        "{t}"
    );
    assert!(t.contains("KEDA v2.20.2 CRDs"), "{t}");
}

/// Standard output closed before anything is written (`keda-conformance render | head -0`):
/// no panic, exit 141 as a shell reports a closed pipe.
#[test]
fn a_closed_standard_output_is_not_a_panic() {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    let o = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args([
            "render",
            "--chart",
            "fixtures/charts/compactor-1x",
            "-f",
            "fixtures/values/compactor-tenant-a.yaml",
            "-v",
        ])
        .current_dir(root())
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("harness runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(141), "{err}");
}

/// A secret with `" \ & < >` in it: escaped by JSON, XML and Rust's Debug in different ways.
/// Redaction happens before any escaping, so no spelling of it reaches any output, in render
/// (text, JSON, JUnit; passing and failing) and in repro's Markdown.
#[test]
fn secrets_with_escapable_characters_never_appear_in_any_spelling() {
    let secret = r#"kc"esc\ape&me<now>7"#;
    let spellings = [
        secret.to_string(),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_string(),
        format!("{secret:?}").trim_matches('"').to_string(),
        secret
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;"),
        "esc\\ape".to_string(),
        "ape&me".to_string(),
        "ape&amp;me".to_string(),
    ];
    let values = "fixtures/values/compactor-with-escapable-secret-header.yaml";
    let mut runs = Vec::new();
    for format in ["text", "json", "junit", "github"] {
        for tenant in ["tenant-a", "tenant-b"] {
            let header = format!("X-Scope-OrgID={tenant}");
            runs.push((
                format!("render {format} {tenant}"),
                harness(&[
                    "render",
                    "--chart",
                    "fixtures/charts/compactor-1x",
                    "-f",
                    values,
                    "--expect-header",
                    &header,
                    "--format",
                    format,
                    "-v",
                ]),
            ));
        }
    }
    runs.push((
        "repro --tier render".into(),
        harness(&[
            "repro",
            "--tier",
            "render",
            "--chart",
            "fixtures/charts/compactor-1x",
            "-f",
            values,
        ]),
    ));
    for (what, o) in runs {
        let t = text(&o);
        for s in &spellings {
            assert!(!t.contains(s.as_str()), "{what} leaks {s:?}:\n{t}");
        }
    }
}

/// `--format github`: an annotation at the values file line that causes a finding, the text
/// report in a group, and a Markdown summary appended to `$GITHUB_STEP_SUMMARY`.
#[test]
fn github_format_annotates_the_values_line_and_writes_the_step_summary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let summary = tmp.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").expect("summary");
    let o = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args([
            "render",
            "--chart",
            "fixtures/charts/compactor-1x",
            "-f",
            "fixtures/values/compactor-typo.yaml",
            "--format",
            "github",
        ])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("NO_COLOR", "1")
        .current_dir(root())
        .output()
        .expect("harness runs");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("::group::keda-conformance render tempo-distributed")
            && out.contains("::endgroup::"),
        "{out}"
    );
    // The typo `autoscalling` is on line 2 of the values file.
    assert!(
        out.lines().any(|l| l.starts_with(
            "::error file=fixtures/values/compactor-typo.yaml,line=2,title=keda-conformance values.unread::"
        )),
        "{out}"
    );
    let md = std::fs::read_to_string(&summary).expect("summary written");
    assert!(
        md.starts_with("earlier step\n"),
        "appended, not replaced:\n{md}"
    );
    assert!(
        md.contains("### keda-conformance render: tempo-distributed 1.48.0 fails")
            && md.contains("| `values.unread` | FAIL |"),
        "{md}"
    );
}

/// Directories named `keda-conformance-*` in `root` whose owner file names `pid`.
fn temp_dirs_owned_by(root: &Path, pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("keda-conformance-"))
                && std::fs::read_to_string(p.join(".keda-conformance-owner"))
                    .is_ok_and(|o| o.trim() == pid.to_string())
        })
        .collect()
}

#[test]
fn without_tmpdir_the_working_copy_in_memory_or_on_disk_is_removed() {
    // TMPDIR unset: the chart's working copy goes to /dev/shm when there is one.
    let child = render_compactor()
        .env_remove("TMPDIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let pid = child.id();
    let o = child.wait_with_output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for root in [Path::new("/dev/shm"), &std::env::temp_dir()] {
        let left = temp_dirs_owned_by(root, pid);
        assert!(
            left.is_empty(),
            "left behind in {}: {left:?}",
            root.display()
        );
    }
}
