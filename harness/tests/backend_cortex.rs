//! The Mimir-API backend (real Cortex) with our remote-write client: tenancy is enforced,
//! each tenant sees only its own series, the answers are what KEDA would read, and a
//! staleness marker ends a series at once.

use keda_conformance::backend::cortex::MimirApiBackend;
use keda_conformance::backend::query::{instant, keda_value};
use keda_conformance::backend::remote_write::{write, Series};
use keda_conformance::toolchain;
use std::time::Duration;

#[tokio::test]
async fn tenants_are_isolated_and_a_missing_org_id_is_401() {
    let binary = toolchain::CORTEX
        .binary("cortex")
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = MimirApiBackend::start(
        &binary,
        &dir.path().join("cortex"),
        &dir.path().join("cortex.log"),
        &dir.path().join("cortex.pid"),
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::Client::new();
    let series = |tenant: &str, v: f64| {
        vec![Series {
            name: "tempodb_compaction_outstanding_blocks".into(),
            labels: [
                ("tenant".to_string(), tenant.to_string()),
                ("namespace".to_string(), "tempo".to_string()),
            ]
            .into(),
            value: v,
        }]
    };
    write(
        &client,
        &backend.push_url(),
        "tenant-a",
        &series("tenant-a", 1200.0),
    )
    .await
    .expect("write tenant-a");
    write(
        &client,
        &backend.push_url(),
        "tenant-b",
        &series("tenant-b", 40.0),
    )
    .await
    .expect("write tenant-b");
    let q = "sum(tempodb_compaction_outstanding_blocks)";
    let hdr = |t: &str| vec![("X-Scope-OrgID".to_string(), t.to_string())];
    // Written samples become queryable once the ingester has appended them; wait for that
    // with a deadline rather than a fixed pause.
    let started = std::time::Instant::now();
    let a = loop {
        let a = instant(&client, &backend.prometheus_url(), q, &hdr("tenant-a"))
            .await
            .expect("query a");
        if keda_value(&a, q, false).is_ok() || started.elapsed() > Duration::from_secs(30) {
            break a;
        }
        write(
            &client,
            &backend.push_url(),
            "tenant-a",
            &series("tenant-a", 1200.0),
        )
        .await
        .expect("write tenant-a");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("tenant-a visible after {:?}", started.elapsed());
    assert_eq!(keda_value(&a, q, true), Ok(1200.0), "{a:?}");
    let b = instant(&client, &backend.prometheus_url(), q, &hdr("tenant-b"))
        .await
        .expect("query b");
    assert_eq!(keda_value(&b, q, true), Ok(40.0), "{b:?}");
    let c = instant(&client, &backend.prometheus_url(), q, &hdr("tenant-c"))
        .await
        .expect("query c");
    assert_eq!(c.status, 200);
    assert_eq!(
        keda_value(&c, q, false).unwrap_err(),
        "prometheus metrics 'prometheus' target may be lost, the result is empty"
    );
    let none = instant(&client, &backend.prometheus_url(), q, &[])
        .await
        .expect("query without tenant");
    assert_eq!(none.status, 401, "{none:?}");
    assert!(none.body.contains("no org id"), "{none:?}");

    // A staleness marker (what the seeder writes when a pod stops being Ready) ends the series
    // at once, as when Prometheus loses a target, instead of after the 5-minute lookback.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write(
        &client,
        &backend.push_url(),
        "tenant-b",
        &series("tenant-b", keda_conformance::live::seeder::STALE_NAN),
    )
    .await
    .expect("write the staleness marker");
    let started = std::time::Instant::now();
    let gone = loop {
        let b = instant(&client, &backend.prometheus_url(), q, &hdr("tenant-b"))
            .await
            .expect("query b");
        if keda_value(&b, q, false).is_err() || started.elapsed() > Duration::from_secs(10) {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        keda_value(&gone, q, false).unwrap_err(),
        "prometheus metrics 'prometheus' target may be lost, the result is empty",
        "{gone:?}"
    );
}
