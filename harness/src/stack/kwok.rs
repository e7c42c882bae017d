//! kwok, the simulated kubelet: its Stage configuration (kwok's own default stages, copied
//! from the pinned kwok module by `scripts/setup-stack.sh`) and the fake nodes it manages.

use super::config::NodeResources;
use super::error::StackError;
use crate::error::InputError;
use crate::toolchain::{self, KWOK};
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The annotation that marks a node as kwok's (kwok manages only nodes carrying it).
pub const FAKE_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

/// The Stage files the local provider runs, in this order: nodes become Ready and keep their
/// lease, pods become Running and Ready, Job pods complete, deleted pods go away.
pub const STAGES: [&str; 5] = [
    "node-initialize.yaml",
    "node-heartbeat-with-lease.yaml",
    "pod-ready.yaml",
    "pod-complete.yaml",
    "pod-delete.yaml",
];

/// The cached directory of kwok's default Stage files for the pinned kwok version.
///
/// # Errors
/// An [`InputError`] naming `scripts/setup-stack.sh` when the stages are not cached.
pub fn stages_dir() -> Result<PathBuf, InputError> {
    let dir = toolchain::cache_root().join(format!("kwok-stages-{}", KWOK.version()));
    if dir.join(".complete").is_file() {
        Ok(dir)
    } else {
        Err(InputError::in_environment(
            format!("kwok {} stages", KWOK.version()),
            format!("not found in {}", dir.display()),
            "run `scripts/setup-stack.sh` (it copies them from the kwok Go module)",
        ))
    }
}

/// Concatenates the [`STAGES`] from `stages_dir` into one multi-document kwok config.
///
/// # Errors
/// When a stage file cannot be read or the config cannot be written.
pub fn write_config(stages_dir: &Path, dest: &Path) -> Result<(), StackError> {
    let mut docs = Vec::new();
    for name in STAGES {
        let path = stages_dir.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| StackError::io("read kwok stage", &path, e))?;
        docs.push(text.trim_end().to_string());
    }
    let text = docs.join("\n---\n") + "\n";
    std::fs::write(dest, text).map_err(|e| StackError::io("write kwok config", dest, e))
}

/// The name of fake node `index` (0-based).
pub fn node_name(index: u32) -> String {
    format!("kwok-node-{index}")
}

/// A fake node: kwok's annotation, the usual well-known labels (so hostname topology and
/// `kubernetes.io/os` selectors work) and the given allocatable/capacity; no taints.
pub fn fake_node(name: &str, resources: &NodeResources) -> Node {
    let quantities: BTreeMap<String, Quantity> = [
        ("cpu", &resources.cpu),
        ("memory", &resources.memory),
        ("pods", &resources.pods),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v.clone())))
    .collect();
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("kubernetes.io/role", "agent"),
        ("node-role.kubernetes.io/agent", ""),
        ("type", "kwok"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let annotations: BTreeMap<String, String> =
        [FAKE_NODE_ANNOTATION, ("node.alpha.kubernetes.io/ttl", "0")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: None,
        status: Some(NodeStatus {
            allocatable: Some(quantities.clone()),
            capacity: Some(quantities),
            ..Default::default()
        }),
    }
}

/// Whether a node reports condition Ready=True and carries no not-ready/unreachable taint.
pub fn node_is_ready(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| {
            ts.iter().any(|t| {
                t.key == "node.kubernetes.io/not-ready" || t.key == "node.kubernetes.io/unreachable"
            })
        });
    ready && !tainted
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, Taint};

    #[test]
    fn config_joins_the_stages_as_yaml_documents() {
        let tmp = tempfile::tempdir().unwrap();
        for name in STAGES {
            let stem = name.trim_end_matches(".yaml");
            std::fs::write(
                tmp.path().join(name),
                format!(
                    "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: {stem}\n"
                ),
            )
            .unwrap();
        }
        let dest = tmp.path().join("kwok.yaml");
        write_config(tmp.path(), &dest).unwrap();
        let text = std::fs::read_to_string(&dest).unwrap();
        let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        let names: Vec<_> = docs
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "node-initialize",
                "node-heartbeat-with-lease",
                "pod-ready",
                "pod-complete",
                "pod-delete"
            ]
        );
    }

    #[test]
    fn missing_stage_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let err = write_config(tmp.path(), &tmp.path().join("kwok.yaml")).unwrap_err();
        assert!(err.to_string().contains("node-initialize.yaml"), "{err}");
    }

    #[test]
    fn fake_node_is_annotated_labelled_and_sized() {
        let node = fake_node("kwok-node-0", &NodeResources::default());
        let meta = &node.metadata;
        assert_eq!(
            meta.annotations.as_ref().unwrap()["kwok.x-k8s.io/node"],
            "fake"
        );
        assert_eq!(
            meta.labels.as_ref().unwrap()["kubernetes.io/hostname"],
            "kwok-node-0"
        );
        let alloc = node.status.unwrap().allocatable.unwrap();
        assert_eq!(alloc["cpu"].0, "16");
        assert_eq!(alloc["memory"].0, "64Gi");
        assert_eq!(alloc["pods"].0, "110");
    }

    #[test]
    fn readiness_needs_the_condition_and_no_not_ready_taint() {
        let mut node = fake_node("n", &NodeResources::default());
        assert!(!node_is_ready(&node));
        node.status.as_mut().unwrap().conditions = Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]);
        assert!(node_is_ready(&node));
        node.spec = Some(NodeSpec {
            taints: Some(vec![Taint {
                key: "node.kubernetes.io/not-ready".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert!(!node_is_ready(&node));
    }
}
