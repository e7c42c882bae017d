//! `run --dry-run`: the exact plan of a run for the chosen provider, computed without touching
//! a cluster: what starts, which charts and values, the Helm commands, the manifests applied,
//! and everything deleted afterwards.

use super::RunArgs;
use crate::engine::Tier;
use crate::error::InputError;
use crate::provider::ProviderKind;
use crate::render::{self, RenderOptions};
use crate::scenario::{MetricsEndpoint, Scenario, Step};
use crate::toolchain;
use std::fmt::Write as _;

/// The plan as text (stable: golden files compare it).
///
/// # Errors
/// Input errors from rendering, and the kind provider's Docker check.
pub fn plan(scenarios: &[Scenario], a: &RunArgs) -> Result<String, InputError> {
    let mut out = String::new();
    let live = a.tier == Tier::All
        && scenarios
            .iter()
            .any(|s| s.steps.iter().any(|st| st.is_live()));
    let _ = writeln!(
        out,
        "plan: {} scenario(s), tier {:?}, provider {}",
        scenarios.len(),
        a.tier,
        a.provider.as_str()
    );
    if live {
        match a.provider {
            ProviderKind::Kind => {
                let _ = writeln!(out, "docker: use the engine that answers (DOCKER_HOST, /var/run/docker.sock), else start a private dockerd (own socket, data root, bridge; scripts/kind/dockerd.sh)");
                use crate::provider::kind::images::ImageSource;
                let how = match ImageSource::from_env()? {
                    ImageSource::Auto => "pulled when a registry answers (kind's default kindest/node, quay.io/cortexproject/cortex, KEDA's release images), else built here or checked in the cache",
                    ImageSource::Pull => "pulled (KEDA_CONFORMANCE_KIND_IMAGES=pull: a failed pull fails the run)",
                    ImageSource::Build => "built here or checked in the cache (KEDA_CONFORMANCE_KIND_IMAGES=build)",
                };
                let _ = writeln!(out, "images: scripts/kind/build.sh: node, backend and KEDA images {how}; built here: kind, kubectl, KEDA's manifest, the Tempo stand-in (offline node image: Kubernetes {}; KEDA {}; Cortex {})", toolchain::KUBERNETES.version(), toolchain::KEDA.version(), toolchain::CORTEX.version());
                let nodes = super::commands::live_nodes(scenarios, a);
                match &a.kind_config {
                    Some(path) => {
                        let config = crate::provider::kind::config::from_file(path)?;
                        let _ = writeln!(out, "cluster: kind create cluster --name kc-<pid>-<random> from {} ({} node(s); default CNI off, pod subnet {}, the harness's HPA timing added) on a Docker network of the same name", path.display(), config.nodes, crate::provider::kind::config::POD_SUBNET);
                    }
                    None => {
                        let _ = writeln!(out, "cluster: kind create cluster --name kc-<pid>-<random> from kind-config/single-node.yaml with {nodes} node(s) on a Docker network of the same name");
                    }
                }
                let _ = writeln!(
                    out,
                    "  HPA: sync period 5s, downscale stabilization 15s, tolerance 0.1 (kubeadm patch; the timing used is read back from the controller manager's flags)"
                );
                let _ = writeln!(out, "KEDA {}: kind load its images, server-side apply its install manifest (operator, metrics API server, admission webhooks as pods); wait for the three Deployments Ready and the APIService v1beta1.external.metrics.k8s.io Available", toolchain::KEDA.version());
            }
            ProviderKind::Local => {
                let nodes = super::commands::live_nodes(scenarios, a);
                let _ = writeln!(out, "cluster: start a local cluster on 127.0.0.1 with {nodes} kwok node(s): etcd {}, kube-apiserver/kube-controller-manager/kube-scheduler {}, kwok {} (run directory $TMPDIR/keda-conformance-cluster.run-<pid>.*)", toolchain::ETCD.version(), toolchain::KUBERNETES.version(), toolchain::KWOK.version());
                let _ = writeln!(
                    out,
                    "  HPA: sync period 5s, downscale stabilization 15s, tolerance 0.1"
                );
                keda_lines(&mut out);
            }
            ProviderKind::Existing => {
                let kc = a
                    .kubeconfig
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "<--kubeconfig>".into());
                let _ = writeln!(
                    out,
                    "cluster: use the existing cluster in {kc} (context {})",
                    a.context.as_deref().unwrap_or("current")
                );
                if a.install_keda {
                    keda_lines(&mut out);
                } else {
                    let _ = writeln!(out, "KEDA: require the scaledobjects.keda.sh CRD and an Available v1beta1.external.metrics.k8s.io APIService (exit 2 otherwise)");
                }
            }
        }
    }
    for s in scenarios {
        for helm in &s.helm {
            if a.helm.map(|h| h != helm.0).unwrap_or(false) {
                continue;
            }
            let _ = writeln!(out, "\nscenario {} [helm {}]", s.name, helm.0.number());
            let expected = match s.steps.first() {
                Some(Step::Render(r)) => r.expected_headers(),
                _ => Vec::new(),
            };
            let report = render::render(&RenderOptions::for_scenario(s, expected, helm.0))?;
            let _ = writeln!(out, "  chart: {} from {}", report.chart, s.chart.display());
            for f in &s.values {
                let _ = writeln!(out, "  values: {}", f.display());
            }
            for set in &s.set {
                let _ = writeln!(out, "  --set {set}");
            }
            let _ = writeln!(out, "  render: helm template --namespace={} --kube-version={} --api-versions=<{} API versions: {}> -- {} <chart> (offline; absent dependencies replaced by empty stand-ins in a temporary copy)", s.namespace, report.capabilities.kube_version, report.capabilities.api_versions.len(), report.capabilities.describe(), s.release);
            for m in report
                .manifests
                .iter()
                .filter(|m| m.kind != crate::chart::source::STUB_MARKER_KIND)
            {
                let _ = writeln!(
                    out,
                    "    {} {}/{} ({})",
                    m.api_version, m.kind, m.name, m.source
                );
            }
            if !(live && s.steps.iter().any(|st| st.is_live())) {
                continue;
            }
            let endpoint = s.steps.iter().find_map(|st| match st {
                Step::Install(i) => Some(i.metrics),
                _ => None,
            });
            let host = if a.provider == ProviderKind::Kind {
                "the kind network's gateway address"
            } else {
                "127.0.0.1"
            };
            let where_to = match endpoint {
                Some(MetricsEndpoint::Mock) => format!("a recording mock (wiremock) on {host}"),
                Some(MetricsEndpoint::Proxy) => {
                    format!("a recording proxy on {host} in front of the backend")
                }
                _ => "the backend".to_string(),
            };
            if a.provider == ProviderKind::Kind {
                let _ = writeln!(out, "  backend: start Cortex {} (Mimir API, auth enabled) as a container on the kind network for this scenario", toolchain::CORTEX.version());
                let _ = writeln!(out, "  images: kind load the chart's images; those the engine lacks are played by the keda-conformance stand-in (reported)");
            } else {
                let _ = writeln!(out, "  backend: start Cortex {} (Mimir API, auth enabled) on 127.0.0.1 for this scenario", toolchain::CORTEX.version());
            }
            let files: Vec<String> = s.values.iter().map(|f| f.display().to_string()).collect();
            let install = crate::live::release::release_argv(
                "install",
                &s.release,
                "<chart>",
                &format!("{}-h{}-<id>", s.name, helm.0.number()),
                &files,
                "<override>",
            );
            let _ = writeln!(out, "  install: helm {}", install.join(" "));
            let _ = writeln!(
                out,
                "    override: every trigger's metadata.serverAddress -> {where_to}"
            );
            for st in s
                .steps
                .iter()
                .filter(|st| st.is_live() && !matches!(st, Step::Install(_)))
            {
                let _ = writeln!(out, "  step: {}", describe(st));
            }
            let uninstall = crate::live::release::uninstall_argv("<ns>", &s.release);
            let _ = writeln!(
                out,
                "  afterwards: helm {}; delete Namespace <ns>; stop Cortex{}",
                uninstall.join(" "),
                if endpoint
                    .map(|e| e != MetricsEndpoint::Backend)
                    .unwrap_or(false)
                {
                    " and the mock"
                } else {
                    ""
                }
            );
        }
    }
    if live {
        let _ = writeln!(out, "\nat the end: {}", match (a.provider, a.install_keda) {
            (ProviderKind::Local, _) => "stop KEDA, stop the cluster and remove its run directory (unless --keep)",
            (ProviderKind::Kind, _) => "kind delete cluster; remove the backend containers and the Docker network; stop the private dockerd if this run started it and no other run uses it",
            (ProviderKind::Existing, true) => "stop KEDA; delete the APIService v1beta1.external.metrics.k8s.io, the KEDA CRDs and Namespace keda that this run created",
            _ => "nothing else: the cluster is left as found",
        });
    }
    Ok(out)
}

fn keda_lines(out: &mut String) {
    let _ = writeln!(out, "KEDA {}: apply CRDs scaledobjects, scaledjobs, triggerauthentications, clustertriggerauthentications, cloudeventsources, clustercloudeventsources (keda.sh, eventing.keda.sh) server-side", toolchain::KEDA.version());
    let _ = writeln!(out, "  start keda-operator and keda-adapter as host processes (gRPC over mTLS, certificates from a cluster-trusted CA)");
    let _ = writeln!(out, "  apply Namespace keda, Service keda/keda-metrics-apiserver (ExternalName localhost), APIService v1beta1.external.metrics.k8s.io");
}

fn describe(step: &Step) -> String {
    match step {
        Step::Seed(s) => format!(
            "seed tenant {} ({} series, {} per Ready pod) by remote write every second",
            s.tenant,
            s.series.len(),
            s.per_ready_pod.len()
        ),
        Step::ExpectReplicas(e) => format!(
            "expect replicas {}",
            e.exact
                .map(|n| n.to_string())
                .unwrap_or_else(|| "= oracle".into())
        ),
        Step::ExpectCondition(c) => format!("expect {} condition {}={}", c.on, c.type_, c.status),
        Step::ExpectEvent(e) if e.absent => format!("expect no event {}", e.reason),
        Step::ExpectEvent(e) => format!("expect event {}", e.reason),
        Step::SetMock(b) => format!("set mock answer {b:?}"),
        // Header names only: the values may be credentials.
        Step::ExpectRequests(r) => format!(
            "expect requests carrying headers {}",
            r.headers.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        Step::ExpectFlapping(f) => format!(
            "expect the replica count to reverse direction {}+ times",
            f.min_reversals
        ),
        Step::Upgrade(u) => format!("helm upgrade to {}", u.chart.display()),
        Step::Wait(w) => format!("wait {:?}", w.duration.0),
        other => other.keyword().to_string(),
    }
}
