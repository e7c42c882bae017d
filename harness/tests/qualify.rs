//! `qualify` between two fixture chart versions: upgrading 1.48.0 to 1.49.0 keeps headers, one
//! HPA and the replica count the autoscaler chose; "upgrading" to a chart that drops the
//! header fails and says that the upgrade changed the ScaledObject's headers. Markdown and
//! JUnit summaries are written.

use std::path::Path;
use std::process::Command;

fn qualify(chart: &str, dir: &Path) -> (Option<i32>, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args([
            "qualify",
            "--chart",
            chart,
            "--previous",
            "fixtures/charts/compactor-1x",
            "-f",
            "fixtures/values/compactor-live-tenant-a.yaml",
            "--helm",
            "3",
        ])
        .arg("--markdown")
        .arg(dir.join("summary.md"))
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .arg("--out")
        .arg(dir.join("out"))
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
fn an_upgrade_keeps_scaling_and_a_header_breaking_upgrade_is_caught() {
    let good = tempfile::tempdir().expect("tempdir");
    let (code, text) = qualify("fixtures/charts/compactor-1x-next", good.path());
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("ScaledObject kept customHeaders") && text.contains("one HPA"),
        "{text}"
    );
    assert!(
        text.contains("replicas 3 -> 3"),
        "the upgrade must be checked with a scaled workload:\n{text}"
    );
    let md = std::fs::read_to_string(good.path().join("summary.md")).expect("markdown written");
    assert!(
        md.contains("| upgrade from tempo-distributed 1.48.0 | 3 | local | pass |"),
        "{md}"
    );
    let junit = std::fs::read_to_string(good.path().join("junit.xml")).expect("junit written");
    assert_eq!(junit.matches("<testcase").count(), 3, "{junit}");

    let bad = tempfile::tempdir().expect("tempdir");
    let (code, text) = qualify(
        "fixtures/charts/defects/compactor-drops-custom-headers",
        bad.path(),
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("the upgrade changed the ScaledObject's customHeaders"),
        "{text}"
    );
    assert!(text.contains("trigger.expected-header"), "{text}");
}
