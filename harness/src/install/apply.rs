//! Server-side apply of YAML manifests through the Kubernetes API (what `kubectl apply
//! --server-side` does), for the objects the harness installs itself.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};

/// The field manager the harness applies as.
pub const FIELD_MANAGER: &str = "keda-conformance";

/// An apply failure naming the object.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The YAML is not an object with apiVersion, kind and metadata.name.
    #[error("manifest is not a Kubernetes object: {0}")]
    Invalid(String),
    /// The API server refused it.
    #[error("applying {kind}/{name}: {source}")]
    Api {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
}

fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// Applies every document in `yaml` (multi-document allowed), in order.
///
/// # Errors
/// [`ApplyError`] for the first object that does not parse or is refused.
pub async fn apply_yaml(client: &kube::Client, yaml: &str) -> Result<Vec<String>, ApplyError> {
    let mut applied = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(doc).map_err(|e| ApplyError::Invalid(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_json::from_value(value.clone())
            .map_err(|e| ApplyError::Invalid(e.to_string()))?;
        let types = obj
            .types
            .clone()
            .ok_or_else(|| ApplyError::Invalid("missing apiVersion/kind".into()))?;
        let name =
            obj.metadata.name.clone().ok_or_else(|| {
                ApplyError::Invalid(format!("{} without metadata.name", types.kind))
            })?;
        let (group, version) = match types.api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), types.api_version.clone()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &types.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, &plural(&types.kind));
        let api: Api<DynamicObject> = match &obj.metadata.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&value),
        )
        .await
        .map_err(|source| ApplyError::Api {
            kind: types.kind.clone(),
            name: name.clone(),
            source: Box::new(source),
        })?;
        applied.push(format!("{}/{}", types.kind, name));
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    #[test]
    fn plurals_of_the_kinds_we_apply() {
        assert_eq!(
            super::plural("CustomResourceDefinition"),
            "customresourcedefinitions"
        );
        assert_eq!(super::plural("APIService"), "apiservices");
        assert_eq!(super::plural("Namespace"), "namespaces");
        assert_eq!(super::plural("Service"), "services");
    }
}
