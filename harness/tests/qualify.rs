//! `qualify` (issue 7): upgrading 1.48.0 to 1.49.0 keeps headers, one HPA and the replica
//! count the autoscaler chose; "upgrading" to a chart that drops the header fails and says
//! that the upgrade changed the ScaledObject's headers; every suite scenario of the chart's
//! lineage runs against the chart (a row per scenario and Helm major) and the others are
//! reported as not applicable; an upgrade from the 1.x compactor Deployment to the 3.x
//! backend-worker StatefulSet is reported as observed on the cluster. Markdown and JUnit
//! summaries are written.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A small suite `<dir>/mini`: copies of default-suite scenarios with their relative paths
/// made absolute (one lineage-1 live scenario, one lineage-3 render scenario).
fn mini_suite(dir: &Path) -> PathBuf {
    let suite = dir.join("mini");
    std::fs::create_dir_all(&suite).expect("suite dir");
    let abs = format!("{}/", root().canonicalize().expect("root").display());
    for name in [
        "compactor-header-reaches-endpoint",
        "backend-worker-sends-tenant-header",
    ] {
        let text = std::fs::read_to_string(root().join(format!("suites/default/{name}.yaml")))
            .expect("scenario");
        std::fs::write(
            suite.join(format!("{name}.yaml")),
            text.replace("../../", &abs),
        )
        .expect("write scenario");
    }
    suite
}

fn qualify(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .arg("qualify")
        .args(args)
        .args(["--helm", "3"])
        .arg("--suite")
        .arg(mini_suite(dir))
        .arg("--markdown")
        .arg(dir.join("summary.md"))
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .arg("--out")
        .arg(dir.join("out"))
        .current_dir(root())
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

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file} written: {e}"))
}

#[test]
fn an_upgrade_keeps_scaling_and_suite_scenarios_of_the_lineage_run_against_the_chart() {
    let good = tempfile::tempdir().expect("tempdir");
    let (code, text) = qualify(
        &[
            "--chart",
            "fixtures/charts/compactor-1x-next",
            "--previous",
            "fixtures/charts/compactor-1x",
            "-f",
            "fixtures/values/compactor-live-tenant-a.yaml",
        ],
        good.path(),
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("ScaledObject kept customHeaders") && text.contains("one HPA"),
        "{text}"
    );
    assert!(
        text.contains("replicas 3 -> 3"),
        "the upgrade must be checked with a scaled workload:\n{text}"
    );
    let md = read(good.path(), "summary.md");
    assert!(
        md.contains("| upgrade from tempo-distributed 1.48.0 | 3 | local | pass |"),
        "{md}"
    );
    // The lineage-1 scenario ran live against 1.49.0 (KEDA's requests were recorded), the
    // lineage-3 one is a row of its own, not dropped.
    assert!(
        md.contains("| mini/compactor-header-reaches-endpoint | 3 | local | pass | expect_replicas: 3 replicas Ready"),
        "{md}"
    );
    assert!(
        md.contains("requests from KEDA"),
        "the suite scenario's expect_requests must have run:\n{md}"
    );
    assert!(
        md.contains("| mini/backend-worker-sends-tenant-header | 3 | local | n/a | not applicable (lineage StatefulSet/backend-worker; the chart under qualification is Deployment/compactor) |"),
        "{md}"
    );
    let junit = read(good.path(), "junit.xml");
    assert_eq!(junit.matches("<testcase").count(), 5, "{junit}");
    assert_eq!(junit.matches("<skipped").count(), 1, "{junit}");
}

#[test]
fn a_header_breaking_upgrade_and_the_suite_rows_fail() {
    let bad = tempfile::tempdir().expect("tempdir");
    let (code, text) = qualify(
        &[
            "--chart",
            "fixtures/charts/defects/compactor-drops-custom-headers",
            "--previous",
            "fixtures/charts/compactor-1x",
            "-f",
            "fixtures/values/compactor-live-tenant-a.yaml",
        ],
        bad.path(),
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("the upgrade changed the ScaledObject's customHeaders"),
        "{text}"
    );
    let md = read(bad.path(), "summary.md");
    let row = md
        .lines()
        .find(|l| l.starts_with("| mini/compactor-header-reaches-endpoint | 3 | local |"))
        .unwrap_or_else(|| panic!("a row for the suite scenario:\n{md}"));
    assert!(
        row.contains("**FAIL**") && row.contains("trigger.expected-header"),
        "{row}"
    );
}

#[test]
fn an_upgrade_across_lineages_is_reported_from_the_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, text) = qualify(
        &[
            "--chart",
            "fixtures/charts/backend-worker-3x",
            "-f",
            "fixtures/values/backend-worker-live-tenant-a.yaml",
            "--previous",
            "fixtures/charts/compactor-1x",
            "--previous-values",
            "fixtures/values/compactor-live-tenant-a.yaml",
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{text}");
    let md = read(dir.path(), "summary.md");
    let row = |aspect: &str| -> String {
        md.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "| upgrade from tempo-distributed 1.48.0 (Deployment/compactor -> StatefulSet/backend-worker): {aspect} | 3 | local | pass |"
                ))
            })
            .unwrap_or_else(|| panic!("a passing {aspect} row:\n{md}"))
            .to_string()
    };
    let so = row("ScaledObjects");
    assert!(
        so.contains("before: tempo-tempo-compactor -> Deployment/tempo-tempo-compactor")
            && so.contains(
                "after: tempo-tempo-backend-worker -> StatefulSet/tempo-tempo-backend-worker;"
            )
            && so.contains("old tempo-tempo-compactor deleted by the upgrade: yes"),
        "{so}"
    );
    let hpa = row("HPAs");
    assert!(
        hpa.contains("before: keda-hpa-tempo-tempo-compactor -> Deployment/tempo-tempo-compactor")
            && hpa.contains("after: keda-hpa-tempo-tempo-backend-worker -> StatefulSet/tempo-tempo-backend-worker;")
            && hpa.contains("old keda-hpa-tempo-tempo-compactor deleted: yes")
            && hpa.contains("HPAs targeting StatefulSet/tempo-tempo-backend-worker: 1"),
        "{hpa}"
    );
    let workloads = row("workloads");
    assert!(
        workloads.contains("before: Deployment/tempo-tempo-compactor (3 replicas, 3 Ready)")
            && workloads
                .contains("old Deployment/tempo-tempo-compactor deleted by the upgrade: yes"),
        "the upgrade must start from a scaled install:\n{workloads}"
    );
    assert!(
        row("new workload scales")
            .contains("StatefulSet/tempo-tempo-backend-worker: 3 replicas Ready"),
        "{md}"
    );
    assert!(
        md.contains("| mini/compactor-header-reaches-endpoint | 3 | local | n/a | not applicable (lineage Deployment/compactor"),
        "{md}"
    );
    assert!(
        md.contains("| mini/backend-worker-sends-tenant-header | 3 | local | pass |"),
        "{md}"
    );
}

#[test]
fn a_previous_chart_of_another_lineage_without_its_values_is_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, text) = qualify(
        &[
            "--chart",
            "fixtures/charts/backend-worker-3x",
            "-f",
            "fixtures/values/backend-worker-live-tenant-a.yaml",
            "--previous",
            "fixtures/charts/compactor-1x",
        ],
        dir.path(),
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("--previous")
            && text.contains("renders no ScaledObject with the -f values")
            && text.contains("-F/--previous-values"),
        "{text}"
    );
    assert!(
        !dir.path().join("summary.md").exists(),
        "bad input stops before any run"
    );
}
