//! A Helm release the live tier installed: one values path for the install and both kinds of
//! upgrade (the user's files and `--set`s, merged, with every trigger's `serverAddress` pointed
//! at the backend or mock), and an asynchronous remove that never blocks the runtime.

use super::env::LiveEnv;
use crate::chart::helm::{Helm, HelmMajor};
use crate::chart::values::UserValues;
use crate::scenario::Scenario;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A release installed by [`Release::install`]; keeps its prepared charts and values
/// overrides alive until it is removed.
pub(crate) struct Release {
    helm: Helm,
    major: HelmMajor,
    name: String,
    namespace: String,
    kubeconfig: PathBuf,
    /// Where every trigger's `serverAddress` points.
    address: String,
    /// The prepared charts and override files Helm read (temporary directories).
    keep: Vec<Box<dyn std::any::Any + Send>>,
}

/// The values Helm gets: the files and `--set`s merged, triggers pointed at `address`.
pub(crate) struct PreparedValues {
    /// The merged values.
    pub values: Value,
    /// How many trigger `serverAddress`es were pointed at the endpoint (never 0).
    pub pointed: usize,
}

/// Loads `files` and `sets`, merges them and points every trigger at `address`; an error when
/// no trigger has a `serverAddress` to point (the release would query the chart's default).
pub(crate) fn prepare_values(
    files: &[PathBuf],
    sets: &[String],
    address: &str,
    whose: &str,
) -> Result<PreparedValues, String> {
    let mut values = UserValues::load(files, sets)
        .map_err(|e| e.to_string())?
        .merged;
    let pointed = override_server_address(&mut values, address);
    if pointed == 0 {
        return Err(format!(
            "no trigger metadata.serverAddress in {whose} values to point at the backend; set it in a values file"
        ));
    }
    Ok(PreparedValues { values, pointed })
}

/// Points every `metadata.serverAddress` under a `triggers` list at `address`; returns how
/// many were replaced.
pub fn override_server_address(values: &mut Value, address: &str) -> usize {
    fn walk(v: &mut Value, in_triggers: bool, address: &str, n: &mut usize) {
        match v {
            Value::Object(m) => {
                if in_triggers {
                    if let Some(Value::Object(meta)) = m.get_mut("metadata") {
                        if meta.contains_key("serverAddress") {
                            meta.insert("serverAddress".into(), Value::String(address.into()));
                            *n += 1;
                        }
                    }
                }
                for (k, child) in m.iter_mut() {
                    walk(child, k == "triggers", address, n);
                }
            }
            Value::Array(a) => {
                for child in a {
                    walk(child, in_triggers, address, n);
                }
            }
            _ => {}
        }
    }
    let mut n = 0;
    walk(values, false, address, &mut n);
    n
}

impl Release {
    /// `helm install --create-namespace` of the scenario's chart into `namespace`, triggers
    /// pointed at `address`. Returns the release and a line of evidence.
    pub async fn install(
        env: &LiveEnv,
        major: HelmMajor,
        scenario: &Scenario,
        namespace: &str,
        address: &str,
    ) -> Result<(Release, String), String> {
        let helm = Helm::locate(major).map_err(|e| e.to_string())?;
        let mut release = Release {
            helm,
            major,
            name: scenario.release.clone(),
            namespace: namespace.to_string(),
            kubeconfig: env.kubeconfig(),
            address: address.to_string(),
            keep: Vec::new(),
        };
        let out = release
            .apply(
                "install",
                &scenario.chart,
                scenario.version.as_deref(),
                &scenario.values,
                &scenario.set,
            )
            .await?;
        let status = out
            .output
            .lines()
            .find(|l| l.starts_with("STATUS"))
            .unwrap_or("installed")
            .to_string();
        let line = format!(
            "helm {} install {} in {namespace} ({status}); {} trigger(s) pointed at {address}",
            major.number(),
            scenario.release,
            out.pointed
        );
        Ok((release, line))
    }

    /// `helm upgrade` to `chart` with `files` (or the scenario's) and the scenario's `--set`s.
    /// Returns how many triggers were pointed at the endpoint.
    pub async fn upgrade(
        &mut self,
        chart: &Path,
        files: &[PathBuf],
        sets: &[String],
    ) -> Result<usize, String> {
        self.apply("upgrade", chart, None, files, sets)
            .await
            .map(|o| o.pointed)
            .map_err(|e| format!("helm upgrade failed: {e}"))
    }

    /// The Helm major this release is managed with.
    pub fn major(&self) -> HelmMajor {
        self.major
    }

    /// Uninstalls the release (waiting up to a minute when `wait`) and deletes its namespace,
    /// which removes whatever the uninstall left. Helm runs through `tokio::process`.
    pub async fn remove(self, client: &kube::Client, wait: bool) {
        if wait {
            let args = uninstall_argv(&self.namespace, &self.name);
            let _ = self.helm.run_async(&args, Some(&self.kubeconfig)).await;
        }
        let ns_api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(client.clone());
        let _ = ns_api.delete(&self.namespace, &Default::default()).await;
    }

    /// Runs `helm <verb>` for `chart` with the values prepared from `files` and `sets`.
    async fn apply(
        &mut self,
        verb: &str,
        chart: &Path,
        version: Option<&str>,
        files: &[PathBuf],
        sets: &[String],
    ) -> Result<Applied, String> {
        let prepared = crate::chart::source::prepare(chart, version).map_err(|e| e.to_string())?;
        let whose = if verb == "install" {
            "the scenario's"
        } else {
            "the upgrade's"
        };
        let values = prepare_values(files, sets, &self.address, whose)?;
        let (args, tmp) = release_args(
            verb,
            &self.name,
            &prepared.dir,
            &self.namespace,
            files,
            &values.values,
        )?;
        let output = self
            .helm
            .run_async(&args, Some(&self.kubeconfig))
            .await
            .map_err(|e| e.to_string())?;
        self.keep.push(Box::new(prepared));
        self.keep.push(Box::new(tmp));
        Ok(Applied {
            output,
            pointed: values.pointed,
        })
    }
}

/// What one `helm install`/`upgrade` printed, and how many triggers it pointed.
struct Applied {
    output: String,
    pointed: usize,
}

/// [`release_argv`] for `verb`, with the files made absolute: the override (the merged values with triggers pointed at the endpoint) is written,
/// owner-only, to a temporary directory the caller keeps alive while Helm runs.
/// `helm <verb> [--create-namespace] --namespace=<ns> --values=<file>... --values=<override> --
/// <release> <chart>`: the argument list of an install or upgrade (and of the plan that shows
/// one). Values are joined to their flags, release and chart come after `--`: nothing from a
/// scenario can become another Helm flag.
pub fn release_argv(
    verb: &str,
    release: &str,
    chart: &str,
    namespace: &str,
    files: &[String],
    override_file: &str,
) -> Vec<String> {
    let mut args: Vec<String> = vec![verb.into()];
    if verb == "install" {
        args.push("--create-namespace".into());
    }
    args.push(format!("--namespace={namespace}"));
    args.extend(files.iter().map(|f| format!("--values={f}")));
    args.push(format!("--values={override_file}"));
    args.extend(["--".into(), release.to_string(), chart.to_string()]);
    args
}

/// `helm uninstall --namespace=<ns> --wait --timeout=60s -- <release>`.
pub fn uninstall_argv(namespace: &str, release: &str) -> Vec<String> {
    vec![
        "uninstall".into(),
        format!("--namespace={namespace}"),
        "--wait".into(),
        "--timeout=60s".into(),
        "--".into(),
        release.to_string(),
    ]
}

fn release_args(
    verb: &str,
    release: &str,
    chart_dir: &Path,
    namespace: &str,
    files: &[PathBuf],
    values: &Value,
) -> Result<(Vec<String>, crate::cleanup::TempDir), String> {
    let tmp =
        crate::cleanup::TempDir::new("keda-conformance-values-").map_err(|e| e.to_string())?;
    let override_file = tmp.path().join(format!("{verb}-override.yaml"));
    // The override may hold values from Secrets: owner-only, like its directory.
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&override_file)
            .map_err(|e| e.to_string())?;
        f.write_all(
            serde_yaml_ng::to_string(values)
                .map_err(|e| e.to_string())?
                .as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    }
    let files: Vec<String> = files
        .iter()
        .map(|f| {
            std::fs::canonicalize(f)
                .unwrap_or_else(|_| f.clone())
                .display()
                .to_string()
        })
        .collect();
    let args = release_argv(
        verb,
        release,
        &chart_dir.display().to_string(),
        namespace,
        &files,
        &override_file.display().to_string(),
    );
    Ok((args, tmp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_server_addresses_under_triggers_are_pointed() {
        let mut v = json!({
            "metadata": {"serverAddress": "http://not-a-trigger"},
            "compactor": {"autoscaling": {"keda": {"triggers": [
                {"type": "prometheus", "metadata": {"serverAddress": "http://a", "query": "q"}},
                {"type": "prometheus", "metadata": {"query": "no address"}},
                {"type": "prometheus", "metadata": {"serverAddress": "http://b"}}
            ]}}}
        });
        assert_eq!(override_server_address(&mut v, "http://mock"), 2);
        let t = &v["compactor"]["autoscaling"]["keda"]["triggers"];
        assert_eq!(t[0]["metadata"]["serverAddress"], "http://mock");
        assert_eq!(t[2]["metadata"]["serverAddress"], "http://mock");
        assert!(t[1]["metadata"].get("serverAddress").is_none());
        assert_eq!(v["metadata"]["serverAddress"], "http://not-a-trigger");
    }

    #[test]
    fn values_without_an_address_to_point_are_an_error_naming_whose() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("v.yaml");
        std::fs::write(&f, "compactor:\n  triggers:\n  - metadata: {query: q}\n").unwrap();
        let e = prepare_values(
            std::slice::from_ref(&f),
            &[],
            "http://mock",
            "the upgrade's",
        )
        .err()
        .expect("no serverAddress is an error");
        assert!(e.contains("the upgrade's values"), "{e}");
        // A `--set` that supplies the address makes it pointable: sets are part of the path.
        let ok = prepare_values(
            &[f],
            &["compactor.triggers[0].metadata.serverAddress=http://x".into()],
            "http://mock",
            "the scenario's",
        )
        .expect("set supplies the address");
        assert_eq!(ok.pointed, 1);
        assert_eq!(
            ok.values["compactor"]["triggers"][0]["metadata"]["serverAddress"],
            "http://mock"
        );
    }

    #[test]
    fn release_and_chart_come_after_the_end_of_flags_and_the_override_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let (args, tmp) = release_args(
            "upgrade",
            "r",
            Path::new("/charts/c"),
            "ns",
            &[PathBuf::from("/nonexistent/values.yaml")],
            &json!({"a": 1}),
        )
        .unwrap();
        let end = args.iter().position(|a| a == "--").unwrap();
        assert_eq!(&args[end + 1..], ["r", "/charts/c"]);
        assert!(args[..end]
            .iter()
            .all(|a| a.starts_with("--") || a == "upgrade"));
        let override_file = tmp.path().join("upgrade-override.yaml");
        assert!(args.contains(&format!("--values={}", override_file.display())));
        let mode = std::fs::metadata(&override_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
