//! The cluster capabilities a chart is rendered with: `.Capabilities.KubeVersion` and
//! `.Capabilities.APIVersions`, given to Helm as `--kube-version` and `--api-versions`.
//!
//! Without them `helm template` answers with its own defaults, which are not the cluster's: a
//! chart that declares `kubeVersion: ">=1.25.0-0"` or gates its ScaledObject on
//! `.Capabilities.APIVersions.Has "keda.sh/v1alpha1"` then renders something the cluster would
//! never see. So every render uses the capabilities of the cluster the run targets, and a live
//! run compares them with what the cluster really serves.

use crate::error::InputError;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// The API versions KEDA's CRDs and metrics adapter serve, as Helm's `--api-versions` takes
/// them (`group/version` and `group/version/Kind`).
pub const KEDA_API_VERSIONS: &[&str] = &[
    "keda.sh/v1alpha1",
    "keda.sh/v1alpha1/ScaledObject",
    "keda.sh/v1alpha1/ScaledJob",
    "keda.sh/v1alpha1/TriggerAuthentication",
    "keda.sh/v1alpha1/ClusterTriggerAuthentication",
    "eventing.keda.sh/v1alpha1",
    "eventing.keda.sh/v1alpha1/CloudEventSource",
    "eventing.keda.sh/v1alpha1/ClusterCloudEventSource",
    "external.metrics.k8s.io/v1beta1",
];

/// What a render tells Helm about the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// The Kubernetes version (`v1.35.4`).
    pub kube_version: String,
    /// API versions served beyond Helm's built-in Kubernetes set (KEDA's among them).
    pub api_versions: Vec<String>,
}

impl Default for Capabilities {
    /// The local provider's cluster: its Kubernetes version, with KEDA installed.
    fn default() -> Self {
        Self {
            kube_version: crate::toolchain::KUBERNETES.version().to_string(),
            api_versions: KEDA_API_VERSIONS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Capabilities {
    /// The local provider's capabilities, overridden by `--kube-version` and `--api-versions`
    /// (each may list several, comma-separated, as Helm's flag does; they replace the KEDA set
    /// when given, so a cluster without KEDA can be modelled with `--api-versions v1`).
    ///
    /// # Errors
    /// An [`InputError`] naming the flag when a version or API version is malformed.
    pub fn from_flags(
        kube_version: Option<&str>,
        api_versions: &[String],
    ) -> Result<Self, InputError> {
        let mut caps = Self::default();
        if let Some(v) = kube_version {
            caps.kube_version = parse_kube_version(v)?;
        }
        if !api_versions.is_empty() {
            let mut list = Vec::new();
            for item in api_versions.iter().flat_map(|a| a.split(',')) {
                let item = item.trim();
                if !is_api_version(item) {
                    return Err(InputError::in_flag(
                        "--api-versions",
                        format!("{item:?} is not an API version"),
                        "write group/version or group/version/Kind, e.g. keda.sh/v1alpha1 or keda.sh/v1alpha1/ScaledObject",
                    ));
                }
                list.push(item.to_string());
            }
            caps.api_versions = list;
        }
        Ok(caps)
    }

    /// The capabilities of a live cluster: its version and every group/version (and
    /// group/version/Kind) its discovery serves.
    pub fn of_cluster(kube_version: String, served: BTreeSet<String>) -> Self {
        Self {
            kube_version,
            api_versions: served.into_iter().collect(),
        }
    }

    /// Helm's arguments for these capabilities (values validated when parsed).
    pub fn helm_args(&self) -> Vec<String> {
        let mut args = vec![format!("--kube-version={}", self.kube_version)];
        for a in &self.api_versions {
            args.push(format!("--api-versions={a}"));
        }
        args
    }

    /// Whether `.Capabilities.APIVersions.Has api` is true with these capabilities. Helm's
    /// built-in set always holds the core Kubernetes groups, so only the added ones differ.
    pub fn has(&self, api: &str) -> bool {
        self.api_versions.iter().any(|a| a == api)
    }

    /// One line for reports: `Kubernetes v1.35.4, with keda.sh/v1alpha1, ...`.
    pub fn describe(&self) -> String {
        let groups: BTreeSet<&str> = self
            .api_versions
            .iter()
            .map(String::as_str)
            .filter(|a| a.matches('/').count() == 1 && a.contains('.'))
            .collect();
        format!(
            "Kubernetes {}{}",
            self.kube_version,
            if groups.is_empty() {
                String::new()
            } else {
                format!(
                    ", with {}",
                    groups.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
        )
    }

    /// How `live` differs from these (render) capabilities in what the templates look at:
    /// the minor Kubernetes version, and each API version in `gated` (those the templates test
    /// with `.Capabilities.APIVersions.Has`, see [`gated_api_versions`]). Empty when the
    /// render saw what the cluster serves.
    pub fn differences(&self, live: &Capabilities, gated: &BTreeSet<String>) -> Vec<String> {
        let mut out = Vec::new();
        if minor(&self.kube_version) != minor(&live.kube_version) {
            out.push(format!(
                "rendered for Kubernetes {}, the cluster runs {}",
                self.kube_version, live.kube_version
            ));
        }
        // Kubernetes' own groups are in Helm's built-in set at render, so a gate on them
        // (`autoscaling/v2`, `policy/v1`) is not compared unless the render listed it.
        for api in gated.iter().filter(|a| !is_builtin(a) || self.has(a)) {
            let (r, l) = (self.has(api), live.has(api));
            if r != l {
                out.push(format!(
                    "the templates test .Capabilities.APIVersions.Has {api:?}: {} at render, {} on the cluster",
                    r, l
                ));
            }
        }
        out
    }
}

/// Whether `api` (`group/version[/Kind]`) belongs to Kubernetes itself: the core group, a
/// group without a dot (`apps`, `autoscaling`, `policy`), or one under `k8s.io` other than the
/// external metrics API KEDA serves.
fn is_builtin(api: &str) -> bool {
    let group = api.split('/').next().unwrap_or("");
    let core = group.starts_with('v') && group[1..].starts_with(|c: char| c.is_ascii_digit());
    core || !group.contains('.')
        || (group.ends_with(".k8s.io") && group != "external.metrics.k8s.io")
}

/// `major.minor` of a version (`v1.35.4` -> `1.35`).
fn minor(v: &str) -> String {
    v.trim_start_matches('v')
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

/// Validates a `--kube-version` (`1.35`, `v1.35.4`, `v1.30.0-gke.1`) and returns it with a `v`.
fn parse_kube_version(v: &str) -> Result<String, InputError> {
    let re = regex::Regex::new(r"^v?[0-9]+\.[0-9]+(\.[0-9]+)?([-+][0-9A-Za-z.+-]+)?$")
        .expect("valid regex");
    if re.is_match(v) {
        Ok(if v.starts_with('v') {
            v.to_string()
        } else {
            format!("v{v}")
        })
    } else {
        Err(InputError::in_flag(
            "--kube-version",
            format!("{v:?} is not a Kubernetes version"),
            "write it as Helm does, e.g. --kube-version v1.35.4",
        ))
    }
}

fn is_api_version(s: &str) -> bool {
    let re = regex::Regex::new(
        r"^([a-z0-9]([a-z0-9.-]*[a-z0-9])?/)?v[0-9]+[a-z0-9]*(/[A-Za-z][A-Za-z0-9]*)?$",
    )
    .expect("valid regex");
    re.is_match(s)
}

/// The API versions a chart's templates test with `.Capabilities.APIVersions.Has "<api>"`
/// (literal arguments only), across the chart and its unpacked subcharts.
pub fn gated_api_versions(chart_dir: &Path) -> BTreeSet<String> {
    let re = regex::Regex::new(r#"APIVersions\.Has\s+"([^"]+)""#).expect("valid regex");
    let mut out = BTreeSet::new();
    let mut stack = vec![chart_dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > 10_000 {
                return out;
            }
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file()
                && path
                    .extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "tpl" || x == "txt")
            {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    out.extend(re.captures_iter(&text).map(|c| c[1].to_string()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_validated_and_replace_the_defaults() {
        let c = Capabilities::from_flags(Some("1.30"), &["keda.sh/v1alpha1,v1".into()]).unwrap();
        assert_eq!(c.kube_version, "v1.30");
        assert_eq!(c.api_versions, vec!["keda.sh/v1alpha1", "v1"]);
        assert!(c.helm_args().contains(&"--kube-version=v1.30".to_string()));
        for bad in ["--post-renderer=x", "1", "v1.35.4 --x", ""] {
            assert!(Capabilities::from_flags(Some(bad), &[]).is_err(), "{bad}");
        }
        for bad in ["--set=x", "keda.sh", "a b/v1"] {
            assert!(
                Capabilities::from_flags(None, &[bad.into()]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_default_is_the_local_cluster_with_keda() {
        let c = Capabilities::default();
        assert!(c.kube_version.starts_with("v1."));
        assert!(c.has("keda.sh/v1alpha1/ScaledObject"));
        assert!(
            c.describe().contains("keda.sh/v1alpha1"),
            "{}",
            c.describe()
        );
    }

    #[test]
    fn kubernetes_own_groups_are_builtin() {
        for api in [
            "v1",
            "v1/Pod",
            "apps/v1",
            "autoscaling/v2",
            "policy/v1/PodDisruptionBudget",
            "networking.k8s.io/v1",
        ] {
            assert!(is_builtin(api), "{api}");
        }
        for api in [
            "keda.sh/v1alpha1",
            "keda.sh/v1alpha1/ScaledObject",
            "external.metrics.k8s.io/v1beta1",
            "monitoring.coreos.com/v1",
        ] {
            assert!(!is_builtin(api), "{api}");
        }
    }

    #[test]
    fn differences_name_the_gates_the_templates_use() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(
            dir.path().join("templates/so.yaml"),
            "{{- if .Capabilities.APIVersions.Has \"keda.sh/v1alpha1\" }}\nkind: ScaledObject\n{{- end }}\n",
        )
        .unwrap();
        let render = Capabilities::default();
        let live = Capabilities::of_cluster("v1.35.4".into(), ["v1".to_string()].into());
        let gated = gated_api_versions(dir.path());
        assert_eq!(gated.iter().collect::<Vec<_>>(), vec!["keda.sh/v1alpha1"]);
        let d = render.differences(&live, &gated);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains("keda.sh/v1alpha1"), "{d:?}");
        let live =
            Capabilities::of_cluster("v1.34.1".into(), ["keda.sh/v1alpha1".to_string()].into());
        let d = render.differences(&live, &gated);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains("v1.34.1"), "{d:?}");
    }
}
