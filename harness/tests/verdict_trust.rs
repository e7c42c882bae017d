//! Verdicts on charts written the way published charts are (fixtures/charts/styles): no false
//! alarms on correct charts, and failures that carry their cause.
//!
//! - capabilities: a `kubeVersion` range and `.Capabilities.APIVersions.Has` gates render as on
//!   a cluster with KEDA, on Helm 3 and 4, and `--kube-version`/`--api-versions` change that;
//! - fidelity: a `query: |` block scalar is what KEDA uses (it trims), not an alteration;
//! - a number piped through `tpl` fails with Helm's message, the template line and the values
//!   key, in `render` and in `repro`'s Markdown;
//! - a silent tenant (the metrics sit in another tenant than the header names) fails `repro`
//!   at render;
//! - an enabled dependency missing from charts/ is bad input naming it.

use std::process::Command;

mod common;
use common::{harness, root, text};

const COMPACTOR: &str = "fixtures/charts/styles/compactor-1x-wild";
const BACKEND_WORKER: &str = "fixtures/charts/styles/backend-worker-3x-wild";

#[test]
fn charts_in_published_styles_pass_on_both_helm_majors() {
    for helm in ["3", "4"] {
        for (chart, values, target) in [
            (
                COMPACTOR,
                "fixtures/values/styles-compactor-good.yaml",
                "Deployment/tempo-wild-tempo-compactor",
            ),
            (
                COMPACTOR,
                "fixtures/values/styles-compactor-header-as-number-threshold.yaml",
                "Deployment/tempo-wild-tempo-compactor",
            ),
            (
                BACKEND_WORKER,
                "fixtures/values/styles-backend-worker-good.yaml",
                "StatefulSet/tempo-wild-tempo-backend-worker",
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
            assert_eq!(
                o.status.code(),
                Some(0),
                "helm {helm} {chart} {values}:\n{t}"
            );
            assert!(
                t.contains(&format!("scaleTargetRef resolves to {target}")),
                "{t}"
            );
            assert!(!t.contains("altered by the chart"), "{t}");
        }
    }
}

#[test]
fn render_capabilities_follow_the_flags() {
    // A cluster older than the chart's kubeVersion range: Helm refuses, and says why.
    let o = harness(&[
        "render",
        "--chart",
        COMPACTOR,
        "-f",
        "fixtures/values/styles-compactor-good.yaml",
        "--kube-version",
        "v1.20.0",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("chart.renders") && t.contains("kubeVersion"),
        "{t}"
    );

    // A cluster without KEDA's API: the gate renders no ScaledObject, which the expected
    // header makes a failure that says so.
    let o = harness(&[
        "render",
        "--chart",
        BACKEND_WORKER,
        "-f",
        "fixtures/values/styles-backend-worker-good.yaml",
        "--api-versions",
        "v1",
        "--expect-header",
        "X-Scope-OrgID=tenant-a",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("scaledobject.present"), "{t}");

    // JSON says which capabilities the verdict was rendered for.
    let o = harness(&[
        "render",
        "--chart",
        COMPACTOR,
        "-f",
        "fixtures/values/styles-compactor-good.yaml",
        "--format",
        "json",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(
        v["capabilities"]["kube_version"]
            .as_str()
            .unwrap_or("")
            .starts_with("v1.35"),
        "{t}"
    );
}

#[test]
fn a_number_through_tpl_fails_with_helms_message_the_template_line_and_the_key() {
    for helm in ["3", "4"] {
        let o = harness(&[
            "render",
            "--helm",
            helm,
            "--chart",
            BACKEND_WORKER,
            "-f",
            "fixtures/values/styles-backend-worker-number-threshold.yaml",
            "-v",
        ]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "helm {helm}:\n{t}");
        assert!(
            t.contains("wrong type for value; expected string; got float64"),
            "{t}"
        );
        assert!(
            t.contains("triggers[0].metadata.threshold = 250"),
            "the values key must be named:\n{t}"
        );
        assert!(
            t.contains("styles-backend-worker-number-threshold.yaml:"),
            "the values file line must be named:\n{t}"
        );
        assert!(
            t.contains("template: "),
            "the template line must be named:\n{t}"
        );
    }
    let o = harness(&[
        "repro",
        "--tier",
        "render",
        "--chart",
        BACKEND_WORKER,
        "-f",
        "fixtures/values/styles-backend-worker-number-threshold.yaml",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("wrong type for value") && t.contains("metadata.threshold"),
        "repro's Markdown must carry Helm's message and the key:\n{t}"
    );
}

#[test]
fn a_silent_tenant_fails_repro_at_render() {
    let o = harness(&[
        "repro",
        "--tier",
        "render",
        "--chart",
        "fixtures/charts/compactor-1x",
        "-f",
        "fixtures/values/compactor-live-tenant-a.yaml",
        "--metrics",
        "fixtures/metrics/backlog-in-tenant-b.yaml",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("trigger.silent-tenant"), "{t}");
    assert!(
        t.contains("\"tenant-a\"") && t.contains("\"tenant-b\"") && t.contains("minimum"),
        "the tenant asked, the tenant holding the data and the consequence:\n{t}"
    );
    // The same values with metrics in the tenant the header names: no such finding.
    let o = harness(&[
        "repro",
        "--tier",
        "render",
        "--chart",
        "fixtures/charts/compactor-1x",
        "-f",
        "fixtures/values/compactor-live-tenant-a.yaml",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(!t.contains("trigger.silent-tenant"), "{t}");
}

#[test]
fn an_enabled_dependency_missing_from_charts_is_bad_input_naming_it() {
    let o = harness(&[
        "render",
        "--chart",
        "fixtures/charts/styles/missing-enabled-dependency",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("wild-cache") && t.contains("helm dependency build"),
        "{t}"
    );
    // Disabled, the same dependency is no obstacle.
    let o = harness(&[
        "render",
        "--chart",
        "fixtures/charts/styles/missing-enabled-dependency",
        "--set",
        "cache.enabled=false",
    ]);
    let t = text(&o);
    assert_ne!(o.status.code(), Some(2), "{t}");
}

#[test]
fn a_template_that_never_ends_is_stopped_at_the_deadline() {
    let started = std::time::Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args(["render", "--chart", "fixtures/charts/hostile/endless-loop"])
        .current_dir(root())
        .env("KEDA_CONFORMANCE_HELM_TIMEOUT", "3")
        .output()
        .expect("harness runs");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("did not finish within 3s"), "{t}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{t}"
    );
}
