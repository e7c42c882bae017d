//! `repro` end to end: a good chart with a user's values passes with a pasteable verdict; a
//! chart that drops the tenant header fails with a verdict that names the defect (render
//! check and KEDA's 401), and the derived scenario loads as a regression test.

use std::path::Path;
use std::process::Command;

fn repro(chart: &str, values: &str, save: &Path, out: &Path) -> (Option<i32>, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args(["repro", "--chart", chart, "-f", values])
        .arg("--save-scenario")
        .arg(save)
        .arg("--out")
        .arg(out)
        .current_dir(&root)
        .output()
        .expect("harness runs");
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn repro_passes_a_good_chart_and_names_a_dropped_header() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, text) = repro(
        "fixtures/charts/compactor-1x",
        "fixtures/values/compactor-live-tenant-a.yaml",
        &tmp.path().join("good.yaml"),
        tmp.path(),
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("autoscaling works as configured"), "{text}");
    assert!(
        text.contains("x-scope-orgid: tenant-a"),
        "the verdict must show what KEDA sent:\n{text}"
    );
    let derived = keda_conformance::scenario::Scenario::load(&tmp.path().join("good.yaml"))
        .unwrap_or_else(|e| panic!("derived scenario does not load: {e}"));
    assert!(derived.steps.iter().any(|s| s.keyword() == "seed"));

    let (code, text) = repro(
        "fixtures/charts/defects/compactor-drops-custom-headers",
        "fixtures/values/compactor-tenant-a.yaml",
        &tmp.path().join("bad.yaml"),
        tmp.path(),
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("does NOT work"), "{text}");
    assert!(
        text.contains("trigger.expected-header"),
        "the verdict must name the dropped header:\n{text}"
    );
    assert!(
        text.contains("status: 401"),
        "the verdict must show KEDA's error:\n{text}"
    );
}

/// The silent tenant, live: the report's backlog sits in tenant-b, the header asks tenant-a.
/// KEDA's answer is empty, the compactor stays at its minimum, and the oracle (asking the same
/// tenant) agrees; repro must still fail, naming both tenants, from what the backend answered.
#[test]
fn repro_fails_a_silent_tenant_live_naming_both_tenants() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args([
            "repro",
            "--chart",
            "fixtures/charts/compactor-1x",
            "-f",
            "fixtures/values/compactor-live-tenant-a.yaml",
            "--metrics",
            "fixtures/metrics/backlog-in-tenant-b.yaml",
        ])
        .arg("--out")
        .arg(tmp.path())
        .current_dir(&root)
        .output()
        .expect("harness runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("does NOT work"), "{text}");
    // Live: the backend's answers, not the render-time rule, name the tenants.
    assert!(
        text.contains("silent tenant: KEDA asks tenant \"tenant-a\"")
            && text.contains("\"tenant-b\""),
        "{text}"
    );
}
