//! The kind cluster configuration a run uses: ours for a number of nodes, or the user's
//! (`--kind-config`, e.g. the 1 control plane + 2 workers a chart repository's CI runs),
//! checked and completed with what our offline cluster needs: the pod network we install
//! (default CNI off, pod subnet 10.244.0.0/16) and the controller manager's HPA timing.

use crate::error::InputError;
use serde_yaml_ng::{Mapping, Value};
use std::path::Path;

/// The cluster configuration of one node (HPA timing as the local provider's); more nodes
/// are added as workers by [`cluster_config`].
pub const SINGLE_NODE_CONFIG: &str = include_str!("../../../../kind-config/single-node.yaml");
/// The pod network of a cluster of several nodes (kindnetd cannot be fetched offline).
pub const POD_ROUTES: &str = include_str!("../../../../kind-config/kc-routes.yaml");

/// The kind configuration for `nodes` schedulable nodes: the control plane plus `nodes - 1`
/// workers (the control plane's NoSchedule taint is removed after creation, so every node
/// takes pods, as with the local provider's fake nodes).
pub fn cluster_config(nodes: u32) -> String {
    let anchor = "- role: control-plane\n";
    let Some(at) = SINGLE_NODE_CONFIG.find(anchor) else {
        return SINGLE_NODE_CONFIG.to_string();
    };
    let workers = "- role: worker\n".repeat(nodes.saturating_sub(1) as usize);
    // After the control plane's entry: its indented lines (`image:`, ...).
    let start = at + anchor.len();
    let mut entry_end = start;
    for line in SINGLE_NODE_CONFIG[start..].split_inclusive('\n') {
        if !line.starts_with("  ") {
            break;
        }
        entry_end += line.len();
    }
    format!(
        "{}{workers}{}",
        &SINGLE_NODE_CONFIG[..entry_end],
        &SINGLE_NODE_CONFIG[entry_end..]
    )
}

/// The pod subnet our offline pod network serves.
pub const POD_SUBNET: &str = "10.244.0.0/16";

/// A checked kind configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct KindConfig {
    /// The configuration to give `kind create cluster --config`.
    pub text: String,
    /// How many nodes it creates (every one takes pods: the control plane is untainted).
    pub nodes: u32,
}

impl KindConfig {
    /// The configuration text for a node image whose pod network is `cni`: as it is for our
    /// node image; with kind's default CNI back on for an upstream one (which brings kindnet).
    ///
    /// # Errors
    /// When the (already checked) text no longer parses.
    pub fn for_cni(&self, cni: super::images::NodeCni) -> Result<String, String> {
        if cni == super::images::NodeCni::Ours {
            return Ok(self.text.clone());
        }
        let mut doc: Value = serde_yaml_ng::from_str(&self.text).map_err(|e| e.to_string())?;
        if let Some(Value::Mapping(net)) = doc.get_mut("networking") {
            net.insert("disableDefaultCNI".into(), Value::Bool(false));
        }
        serde_yaml_ng::to_string(&doc).map_err(|e| e.to_string())
    }
}

/// Our configuration for `nodes` nodes: the control plane plus `nodes - 1` workers.
pub fn for_nodes(nodes: u32) -> KindConfig {
    let nodes = nodes.max(1);
    KindConfig {
        text: cluster_config(nodes),
        nodes,
    }
}

/// The line of the first `key:` at the start of a line (after indentation or `- `).
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ");
            t.starts_with(&format!("{key}:"))
        })
        .map(|i| i + 1)
}

/// Reads the user's kind configuration at `path`, checks it, and completes it.
///
/// # Errors
/// An [`InputError`] (exit 2) naming the file, the line and the fix.
pub fn from_file(path: &Path) -> Result<KindConfig, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        InputError::in_file(
            path,
            None,
            None,
            format!("cannot read the kind config: {e}"),
            "pass --kind-config a readable kind Cluster configuration",
        )
    })?;
    crate::yaml_guard::check(path, &text, "invalid kind config")?;
    let doc: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| crate::yaml_guard::parse_error(path, &text, &e, "invalid kind config"))?;
    complete(path, &text, doc)
}

fn complete(path: &Path, text: &str, mut doc: Value) -> Result<KindConfig, InputError> {
    let bad = |key: &str, problem: String, fix: &str| {
        InputError::in_file(path, line_of(text, key), None, problem, fix)
    };
    let Value::Mapping(map) = &mut doc else {
        return Err(bad(
            "kind",
            "a kind config is a mapping (kind: Cluster, apiVersion, nodes)".into(),
            "start from kind-config/single-node.yaml",
        ));
    };
    if map.get("kind").and_then(Value::as_str) != Some("Cluster") {
        return Err(bad(
            "kind",
            "a kind config has `kind: Cluster`".into(),
            "set `kind: Cluster`",
        ));
    }
    if map.get("apiVersion").and_then(Value::as_str) != Some("kind.x-k8s.io/v1alpha4") {
        return Err(bad(
            "apiVersion",
            "kind v0.33 reads `apiVersion: kind.x-k8s.io/v1alpha4`".into(),
            "set `apiVersion: kind.x-k8s.io/v1alpha4`",
        ));
    }
    let mut nodes = 0u32;
    let mut control_planes = 0u32;
    match map.get_mut("nodes") {
        None => {
            nodes = 1;
            control_planes = 1;
        }
        Some(Value::Sequence(list)) => {
            for node in list.iter_mut() {
                let role = node.get("role").and_then(Value::as_str).unwrap_or("");
                match role {
                    "control-plane" => control_planes += 1,
                    "worker" => {}
                    other => {
                        let line = text
                            .lines()
                            .position(|l| {
                                let t = l.trim_start().trim_start_matches("- ");
                                t.starts_with("role:") && t.contains(other)
                            })
                            .map(|i| i + 1);
                        return Err(InputError::in_file(
                            path,
                            line,
                            None,
                            format!("node role {other:?} is not one kind knows"),
                            "use `role: control-plane` or `role: worker`",
                        ));
                    }
                }
                nodes += 1;
                // The node image is ours (offline) or the pulled one: `--image` decides.
                if let Value::Mapping(n) = node {
                    n.remove("image");
                }
            }
        }
        Some(_) => {
            return Err(bad(
                "nodes",
                "`nodes` is a list of {role: control-plane|worker}".into(),
                "write `nodes:` as a YAML list",
            ))
        }
    }
    if control_planes != 1 {
        return Err(bad(
            "nodes",
            format!(
                "the config has {control_planes} control-plane nodes; the harness runs exactly one"
            ),
            "keep one `role: control-plane` node and add workers",
        ));
    }
    if nodes > 10 {
        return Err(bad(
            "nodes",
            format!("{nodes} nodes: more than the harness starts (10)"),
            "use at most 10 nodes",
        ));
    }
    // Our pod network needs the default CNI off and its subnet.
    let networking = map
        .entry(Value::from("networking"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    let Value::Mapping(net) = networking else {
        return Err(bad(
            "networking",
            "`networking` is a mapping".into(),
            "write `networking:` as a mapping",
        ));
    };
    if let Some(subnet) = net.get("podSubnet").and_then(Value::as_str) {
        if subnet != POD_SUBNET {
            return Err(bad(
                "podSubnet",
                format!("podSubnet {subnet}: the harness's pod network serves {POD_SUBNET}"),
                "remove podSubnet (or set it to 10.244.0.0/16)",
            ));
        }
    }
    net.insert("disableDefaultCNI".into(), Value::Bool(true));
    net.insert("podSubnet".into(), POD_SUBNET.into());
    // The controller manager's HPA timing: the patch of our own configuration.
    let ours: Value = serde_yaml_ng::from_str(SINGLE_NODE_CONFIG).unwrap_or(Value::Null);
    let patches = ours
        .get("kubeadmConfigPatches")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    match map
        .entry(Value::from("kubeadmConfigPatches"))
        .or_insert_with(|| Value::Sequence(Vec::new()))
    {
        Value::Sequence(list) => list.extend(patches),
        _ => {
            return Err(bad(
                "kubeadmConfigPatches",
                "`kubeadmConfigPatches` is a list".into(),
                "write it as a YAML list of patches",
            ))
        }
    }
    let text = serde_yaml_ng::to_string(&doc).map_err(|e| {
        InputError::in_file(path, None, None, e.to_string(), "simplify the kind config")
    })?;
    Ok(KindConfig { text, nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<KindConfig, InputError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kind.yaml");
        std::fs::write(&path, text).unwrap();
        from_file(&path)
    }

    #[test]
    fn an_upstream_node_image_keeps_kinds_cni() {
        use super::super::images::NodeCni;
        let c = for_nodes(3);
        assert_eq!(c.for_cni(NodeCni::Ours).unwrap(), c.text);
        let upstream: Value =
            serde_yaml_ng::from_str(&c.for_cni(NodeCni::KindDefault).unwrap()).unwrap();
        assert_eq!(
            upstream["networking"]["disableDefaultCNI"],
            Value::Bool(false)
        );
        assert_eq!(upstream["nodes"].as_sequence().unwrap().len(), 3);
        assert!(upstream["kubeadmConfigPatches"]
            .as_sequence()
            .is_some_and(|p| !p.is_empty()));
    }

    #[test]
    fn a_ci_config_is_completed() {
        let c = check("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n  image: kindest/node:v1.35.0\n- role: worker\n").unwrap();
        assert_eq!(c.nodes, 3);
        let doc: Value = serde_yaml_ng::from_str(&c.text).unwrap();
        assert_eq!(doc["networking"]["disableDefaultCNI"], Value::Bool(true));
        assert!(doc["nodes"][1].get("image").is_none());
        assert!(c.text.contains("horizontal-pod-autoscaler-sync-period"));
    }

    #[test]
    fn bad_configs_name_their_line() {
        let e = check("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: master\n").unwrap_err();
        assert!(e.to_string().contains("kind.yaml:5"), "{e}");
        let e = check("kind: Clusterr\napiVersion: kind.x-k8s.io/v1alpha4\n").unwrap_err();
        assert!(e.to_string().contains("kind.yaml:1"), "{e}");
        let e = check("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  podSubnet: 192.168.0.0/16\n").unwrap_err();
        assert!(e.to_string().contains("kind.yaml:4"), "{e}");
        let e =
            check("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: worker\n")
                .unwrap_err();
        assert!(e.to_string().contains("control-plane"), "{e}");
        let e = check("kind: Cluster\n  bad: [\n").unwrap_err();
        assert!(e.to_string().contains("kind.yaml:2"), "{e}");
    }

    #[test]
    fn configs_for_several_nodes() {
        let one: serde_yaml_ng::Value = serde_yaml_ng::from_str(&cluster_config(1)).unwrap();
        assert_eq!(one["nodes"].as_sequence().unwrap().len(), 1);
        let five: serde_yaml_ng::Value = serde_yaml_ng::from_str(&cluster_config(5)).unwrap();
        let nodes = five["nodes"].as_sequence().unwrap();
        assert_eq!(nodes.len(), 5);
        assert_eq!(nodes[0]["role"], "control-plane");
        assert!(nodes[1..].iter().all(|n| n["role"] == "worker"));
        assert_eq!(five["kubeadmConfigPatches"], one["kubeadmConfigPatches"]);
    }

    #[test]
    fn the_config_is_kind_s_and_sets_the_hpa_timing() {
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(SINGLE_NODE_CONFIG).unwrap();
        assert_eq!(doc["kind"], "Cluster");
        let d = crate::stack::HpaTiming::default();
        assert!(SINGLE_NODE_CONFIG.contains(&format!(
            "horizontal-pod-autoscaler-sync-period: \"{}s\"",
            d.sync_period.as_secs()
        )));
        assert!(SINGLE_NODE_CONFIG.contains(&format!(
            "horizontal-pod-autoscaler-downscale-stabilization: \"{}s\"",
            d.downscale_stabilization.as_secs()
        )));
    }

    #[test]
    fn ours_for_nodes() {
        assert_eq!(for_nodes(0).nodes, 1);
        assert_eq!(for_nodes(4).nodes, 4);
    }
}
