//! The rendered manifest stream split into objects, each with the template it came from.

use serde_json::Value;

/// One rendered Kubernetes object.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The template path from Helm's `# Source:` comment.
    pub source: String,
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// The object as JSON.
    pub body: Value,
    /// The YAML text Helm rendered for it.
    pub text: String,
}

/// A rendered document that is not valid YAML.
#[derive(Debug, Clone, thiserror::Error)]
#[error("rendered document from {source_path} is not valid YAML: {message}")]
pub struct ManifestError {
    /// The template path.
    pub source_path: String,
    /// The parser's message.
    pub message: String,
}

/// Splits Helm's output into objects (empty documents are skipped).
///
/// # Errors
/// [`ManifestError`] when a document does not parse.
pub fn split(stream: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut docs: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in stream.lines() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push(std::mem::take(&mut cur));
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    docs.push(cur);
    let mut out = Vec::new();
    for text in docs {
        let source = text
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .unwrap_or("")
            .to_string();
        let body: Value = match serde_yaml_ng::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                return Err(ManifestError {
                    source_path: source,
                    message: e.to_string(),
                })
            }
        };
        if !body.is_object() {
            continue;
        }
        out.push(Manifest {
            source,
            api_version: body["apiVersion"].as_str().unwrap_or_default().to_string(),
            kind: body["kind"].as_str().unwrap_or_default().to_string(),
            name: body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            body,
            text,
        });
    }
    Ok(out)
}

impl Manifest {
    /// True for `keda.sh/v1alpha1` objects of `kind`.
    pub fn is_keda(&self, kind: &str) -> bool {
        self.api_version == "keda.sh/v1alpha1" && self.kind == kind
    }
}

/// The name of the HPA KEDA creates for a ScaledObject: its
/// `spec.advanced.horizontalPodAutoscalerConfig.name`, else `keda-hpa-<name>`.
pub fn keda_hpa_name(scaled_object_name: &str, body: &serde_json::Value) -> String {
    body["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("keda-hpa-{scaled_object_name}"))
}

/// The container images rendered objects run (containers and init containers of every pod
/// template and pod), sorted, without duplicates.
pub fn images_in(manifests: &[Manifest]) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for key in ["containers", "initContainers"] {
                    if let Some(serde_json::Value::Array(cs)) = m.get(key) {
                        for c in cs {
                            if let Some(serde_json::Value::String(i)) = c.get("image") {
                                out.insert(i.clone());
                            }
                        }
                    }
                }
                m.values().for_each(|c| walk(c, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    for m in manifests {
        walk(&m.body, &mut out);
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod image_tests {
    use super::*;

    #[test]
    fn images_of_pod_templates() {
        let rendered = "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      initContainers: [{name: i, image: 'busy:1'}]\n      containers: [{name: c, image: 'tempo:2'}, {name: d, image: 'tempo:2'}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {image: 'not:me'}\n";
        assert_eq!(
            images_in(&split(rendered).unwrap()),
            vec!["busy:1", "tempo:2"]
        );
    }
}
