//! `mutate --tier all`, live on the local provider: a mutant the render tier cannot tell from
//! the original (the metric type is a literal of the template, no values key shows it) is
//! killed by the suite's live scenario, on what the cluster did; the survivors that behave like
//! the original stay survivors, and the evidence of every live run is on disk.

use serde_json::Value;

mod common;
use common::{harness, text};

const CHART: &str = "fixtures/mutate/live-chart";
const VALUES: &str = "fixtures/mutate/values/live-tenant-a.yaml";
const SUITE: &str = "fixtures/mutate/live-suite";

fn mutant<'a>(report: &'a Value, operator: &str, after_contains: &str) -> &'a Value {
    report["mutants"]
        .as_array()
        .expect("mutants")
        .iter()
        .find(|m| {
            m["operator"] == operator
                && m["after"]
                    .as_str()
                    .is_some_and(|a| a.contains(after_contains))
        })
        .unwrap_or_else(|| panic!("no {operator} mutant with {after_contains:?}: {report:#}"))
}

/// The highest `spec_replicas` a run's timeline shows.
fn highest_spec(timeline: &std::path::Path) -> i64 {
    let csv =
        std::fs::read_to_string(timeline).unwrap_or_else(|e| panic!("{}: {e}", timeline.display()));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "spec_replicas")
        .expect("spec_replicas column");
    lines
        .filter_map(|l| l.split(',').nth(col)?.parse::<i64>().ok())
        .max()
        .expect("samples")
}

#[test]
fn the_live_tier_kills_a_render_survivor_on_what_the_cluster_did() {
    let dir = tempfile::tempdir().unwrap();
    let (render_json, live_json) = (dir.path().join("render.json"), dir.path().join("all.json"));
    let evidence = dir.path().join("evidence");
    let common = [
        "mutate",
        "--chart",
        CHART,
        "-f",
        VALUES,
        "--suite",
        SUITE,
        "--expect-header",
        "X-Scope-OrgID=tenant-a",
        "--format",
        "json",
    ];

    // The render tier alone: the flipped metric type survives every render judge.
    let mut args = common.to_vec();
    args.extend(["--out", render_json.to_str().unwrap()]);
    let o = harness(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let render: Value = serde_json::from_str(&std::fs::read_to_string(&render_json).unwrap())
        .expect("render tier JSON");
    assert_eq!(
        mutant(&render, "flip-metric-type", "Value")["status"],
        "survived",
        "{render:#}"
    );
    assert!(render.get("live").is_none(), "no live tier was asked for");

    // Both tiers: the same mutant is killed live by the scenario's exact replica count.
    let mut args = common.to_vec();
    args.extend([
        "--tier",
        "all",
        "--evidence",
        evidence.to_str().unwrap(),
        "--out",
        live_json.to_str().unwrap(),
    ]);
    let o = harness(&args);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(&live_json).unwrap()).expect("tier all JSON");
    let flipped = mutant(&all, "flip-metric-type", "Value");
    assert_eq!(flipped["status"], "killed", "{all:#}");
    assert_eq!(
        flipped["killed_by"], "live: reader-scales-per-backlog-item",
        "{all:#}"
    );
    let why = flipped["reason"].as_str().unwrap_or_default();
    assert!(
        why.contains('3'),
        "the reason names the expected count: {why}"
    );

    // What the cluster did: the original held 3 replicas, the mutant went past them.
    let id = flipped["id"].as_u64().unwrap();
    let original = evidence.join("original-reader-scales-per-backlog-item-helm3/timeline.csv");
    let killed = evidence.join(format!(
        "m{id}-reader-scales-per-backlog-item-helm3/timeline.csv"
    ));
    assert_eq!(highest_spec(&original), 3, "the original holds 3 replicas");
    assert!(
        highest_spec(&killed) > 3,
        "the mutant's workload went past 3 replicas ({})",
        killed.display()
    );

    // The renamed bounds behave like the original under this scenario: still survivors, and
    // their reason says the live tier ran them.
    for key in ["minRenamed", "maxRenamed"] {
        let m = mutant(&all, "rename-values-key", key);
        assert_eq!(m["status"], "survived", "{m:#}");
        assert!(
            m["reason"]
                .as_str()
                .is_some_and(|r| r.contains("live, every scenario (1) still passes")),
            "{m:#}"
        );
    }
    let live = &all["live"];
    assert_eq!(live["survivors_judged"], 3, "{live:#}");
    assert_eq!(live["killed"], 1, "{live:#}");
    assert_eq!(
        live["original_failures"].as_array().map(Vec::len),
        Some(0),
        "{live:#}"
    );
    assert!(
        all["score"].as_f64().unwrap() > render["score"].as_f64().unwrap(),
        "the live kill raises the score"
    );
}
