//! Real KEDA on a local cluster, scaling a Deployment from one tenant's metrics in the real
//! multi-tenant backend (Cortex) through the X-Scope-OrgID header: the whole chain the live
//! tier relies on, asserted on observed cluster state.

use k8s_openapi::api::apps::v1::Deployment;
use keda_conformance::backend::cortex::MimirApiBackend;
use keda_conformance::backend::remote_write::{write, Series};
use keda_conformance::install::apply::apply_yaml;
use keda_conformance::install::keda::{Keda, KedaPaths};
use keda_conformance::provider::local::{self, LocalOptions};
use keda_conformance::stack::StackConfig;
use keda_conformance::toolchain;
use std::time::{Duration, Instant};

fn workload(ns: &str, server: &str, tenant: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: compactor
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: compactor}}
  template:
    metadata:
      labels: {{app: compactor}}
    spec:
      containers:
        - name: compactor
          image: example.invalid/tempo:latest
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: compactor
  namespace: {ns}
spec:
  scaleTargetRef:
    name: compactor
  minReplicaCount: 1
  maxReplicaCount: 5
  pollingInterval: 5
  triggers:
    - type: prometheus
      metadata:
        serverAddress: {server}
        threshold: "250"
        query: sum(tempodb_compaction_outstanding_blocks)
        customHeaders: X-Scope-OrgID={tenant}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_scales_a_deployment_from_the_tenant_in_its_header() {
    let options = LocalOptions {
        name: format!("live-keda-{}", std::process::id()),
        stack: StackConfig {
            nodes: 2,
            ..StackConfig::default()
        },
        keep: false,
    };
    let cluster = local::up(&options, &|line| eprintln!("{line}"))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let run_dir = cluster.cluster().run_dir.clone();
    let client = cluster.client();
    let cortex = MimirApiBackend::start(
        &toolchain::CORTEX
            .binary("cortex")
            .unwrap_or_else(|e| panic!("{e}")),
        &run_dir.join("cortex"),
        &run_dir.join("logs/cortex.log"),
        &run_dir.join("pids/cortex.pid"),
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let paths = KedaPaths {
        dir: run_dir.join("keda"),
        logs: run_dir.join("logs"),
        kubeconfig: cluster.cluster().kubeconfig.clone(),
        ca_cert: run_dir.join("pki/ca.crt"),
        ca_key: run_dir.join("pki/ca.key"),
    };
    let t = Instant::now();
    let keda = Keda::start(&client, &paths, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("KEDA ready in {:?}", t.elapsed());

    apply_yaml(
        &client,
        &workload("tempo", &cortex.prometheus_url(), "tenant-a"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let http = reqwest::Client::new();
    let series = |tenant: &str, v: f64| {
        vec![Series {
            name: "tempodb_compaction_outstanding_blocks".into(),
            labels: [("tenant".to_string(), tenant.to_string())].into(),
            value: v,
        }]
    };
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), "tempo");
    // tenant-a's backlog calls for ceil(700 / 250) = 3 replicas; tenant-b's would hit the max.
    let deadline = Instant::now() + Duration::from_secs(150);
    let last = loop {
        write(
            &http,
            &cortex.push_url(),
            "tenant-a",
            &series("tenant-a", 700.0),
        )
        .await
        .expect("seed tenant-a");
        write(
            &http,
            &cortex.push_url(),
            "tenant-b",
            &series("tenant-b", 50_000.0),
        )
        .await
        .expect("seed tenant-b");
        let d = deployments.get("compactor").await.expect("deployment");
        let status = d.status.unwrap_or_default();
        let last = format!(
            "spec {:?} status {:?} ready {:?}",
            d.spec.and_then(|s| s.replicas),
            status.replicas,
            status.ready_replicas
        );
        if status.ready_replicas == Some(3) && status.replicas == Some(3) {
            break last;
        }
        if Instant::now() >= deadline {
            let state = keda_conformance::live::observe::describe(
                &client,
                "tempo",
                "compactor",
                "keda-hpa-compactor",
            )
            .await;
            panic!("replicas did not reach 3: last seen {last}\n{state}\noperator log:\n{}\nadapter log:\n{}", keda.operator().log_tail(40), keda.adapter().log_tail(20));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!("reached 3 replicas in {:?}: {last}", t.elapsed());
    keda.stop(Duration::from_secs(5)).await;
    drop(cortex);
    cluster.down().await;
}
