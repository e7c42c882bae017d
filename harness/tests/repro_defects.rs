//! `repro` on every defect of suites/defects (issue 7): each defective chart, or user values
//! mistake, with the values a user would report produces a failing verdict (exit 1) that
//! names every check the defect breaks; the good fixture charts pass.
//!
//! The sweep over every defect uses `--tier render` (seconds each): every defect in the
//! catalogue but one is visible at render time; the exception (a query divided by the
//! replica count, which flaps) is a render warning and a live failure. The live tier is proved on the good lineage-3 chart
//! and on every defect in `every_defect_fails_live_too`, where repro also runs KEDA (a
//! maintainer wants KEDA's own error besides the render check: the 401 of a dropped tenant
//! header, the ScaledObjectCheckFailed of a scale target that does not exist, the HPA
//! controller's AmbiguousSelector when the chart renders its own HPA too, the API server's
//! schema rejection of unquoted metadata).

use keda_conformance::scenario::{Scenario, Step};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn repro(chart: &Path, values: &[PathBuf], extra: &[&str], out: &Path) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keda-conformance"));
    cmd.arg("repro").arg("--chart").arg(chart);
    for v in values {
        cmd.arg("-f").arg(v);
    }
    let o = cmd
        .args(extra)
        .arg("--out")
        .arg(out)
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

/// Every defect scenario with the checks it must fail.
fn defects() -> Vec<(Scenario, Vec<String>)> {
    let suite = keda_conformance::scenario::load_suite(&root().join("suites/defects"))
        .expect("suites/defects loads");
    suite
        .into_iter()
        .map(|s| {
            let failing = s
                .steps
                .iter()
                .find_map(|st| match st {
                    Step::Render(r) => Some(r.failing_checks.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            (s, failing)
        })
        .collect()
}

fn assert_names_defect(s: &Scenario, failing: &[String], code: Option<i32>, text: &str) {
    assert_eq!(code, Some(1), "{}: repro must fail:\n{text}", s.name);
    assert!(
        text.contains("autoscaling does NOT work as configured"),
        "{}: {text}",
        s.name
    );
    for check in failing {
        assert!(
            text.contains(&format!("**{check}**")),
            "{}: the verdict must name the failing check {check}:\n{text}",
            s.name
        );
    }
}

#[test]
fn repro_names_every_defect_at_render_time_and_passes_good_charts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let defects = defects();
    assert!(
        defects.len() >= 10,
        "suites/defects lists every defect fixture"
    );
    let charts: Vec<String> = std::fs::read_dir(root().join("fixtures/charts/defects"))
        .expect("defect charts")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    for c in &charts {
        assert!(
            defects.iter().any(|(s, _)| s.chart.ends_with(c)),
            "defect chart {c} is not in suites/defects"
        );
    }
    for (s, failing) in &defects {
        let (code, text) = repro(&s.chart, &s.values, &["--tier", "render"], tmp.path());
        if failing.is_empty() {
            // A defect only the live tier shows (flapping): render warns, naming the check.
            assert_eq!(code, Some(0), "{}: {text}", s.name);
            assert!(
                text.contains("**Warnings**") && text.contains("trigger.per-replica-query"),
                "{}: the render verdict must warn:\n{text}",
                s.name
            );
            continue;
        }
        assert_names_defect(s, failing, code, &text);
    }
    for (chart, values) in [
        ("compactor-1x", "compactor-tenant-a.yaml"),
        ("backend-worker-3x", "backend-worker-tenant-a.yaml"),
    ] {
        let (code, text) = repro(
            &root().join("fixtures/charts").join(chart),
            &[root().join("fixtures/values").join(values)],
            &["--tier", "render"],
            tmp.path(),
        );
        assert_eq!(code, Some(0), "{chart}: {text}");
        assert!(
            text.contains("every render check passes"),
            "{chart}: {text}"
        );
    }
}

#[test]
fn repro_passes_the_good_backend_worker_chart_live() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, text) = repro(
        &root().join("fixtures/charts/backend-worker-3x"),
        &[root().join("fixtures/values/backend-worker-live-tenant-a.yaml")],
        &[],
        tmp.path(),
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("autoscaling works as configured"), "{text}");
    assert!(
        text.contains("x-scope-orgid: tenant-a"),
        "the verdict must show what KEDA sent:\n{text}"
    );
    assert!(
        text.contains("expect_replicas: 3 replicas Ready"),
        "the StatefulSet must be observed at the oracle's count:\n{text}"
    );
}

#[test]
fn every_defect_fails_live_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (s, failing) in &defects() {
        let (code, text) = repro(&s.chart, &s.values, &[], tmp.path());
        assert_names_defect(s, failing, code, &text);
        // What the cluster itself shows for each defect: every defect is listed, so a new
        // one must say what its live evidence is, and a repro that returns before its live
        // run fails here.
        let live: &[&str] = match s.name.as_str() {
            // The render check names the dropped interval; live, KEDA's default polling still
            // scales, and the query the chart wrote with the release namespace is followed.
            "backend-worker-drops-polling-interval" => &[
                "**KEDA concluded:**",
                "the chart writes the release namespace into the trigger's query",
            ],
            "backend-worker-unquoted-metadata" => &["must be of type string"],
            "backend-worker-wrong-target-kind" | "compactor-wrong-target-name" => &[
                "Ready=False ScaledObjectCheckFailed",
                "doesn't have correct scaleTargetRef",
            ],
            "compactor-drops-custom-headers" => &["**KEDA concluded:**", "status: 401"],
            "compactor-drops-threshold" => &[
                "Ready=False ScaledObjectCheckFailed",
                "missing required parameter \"threshold\"",
            ],
            "compactor-hpa-alongside-keda" => &["AmbiguousSelector", "controlled by multiple HPAs"],
            // The quoted header breaks KEDA's request before it is sent.
            "compactor-quotes-custom-headers" => &[
                "**KEDA concluded:**",
                "**KEDA sent** no request to the backend.",
            ],
            "user-query-divided-by-replicas-flaps" => &["**KEDA concluded:**", "(flapping)"],
            // No ScaledObject is rendered: there is nothing for KEDA to act on.
            "user-values-typo" => &["there is nothing to run live"],
            "user-writes-headers-as-map" => &[
                "Ready=False ScaledObjectCheckFailed",
                "expected format key=value",
            ],
            other => panic!("{other}: add the live evidence this defect leaves to this test"),
        };
        for expected in live {
            assert!(
                text.contains(expected),
                "{}: live evidence {expected:?} missing:\n{text}",
                s.name
            );
        }
    }
}
