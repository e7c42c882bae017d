//! Evidence on disk: an owner-only directory per scenario, refused when it is a link, and what
//! a failed scenario leaves there.

use super::env::LiveEnv;
use super::observe;
use super::run::LiveOutcome;
use super::target::Target;
use crate::backend::cortex::MimirApiBackend;
use crate::backend::query::instant;
use crate::render::RenderReport;
use std::path::Path;

/// Creates `dir` (and missing parents) for evidence, owner-only (it names clusters, tenants and
/// queries). A symbolic link there is refused, never followed: evidence written through a link
/// planted in `--out` would land, with its permissions changed, wherever the link points.
pub fn private_dir_no_links(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Ok(m) = std::fs::symlink_metadata(dir) {
        if m.file_type().is_symlink() {
            return Err(std::io::Error::other(format!(
                "{} is a symbolic link; evidence is not written through links",
                dir.display()
            )));
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Writes what a failed scenario leaves for a human: the rendered chart, the cluster's state,
/// KEDA's logs, the backend's answer to the trigger's query, and the verdict, all redacted.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_evidence(
    env: &LiveEnv,
    backend: &MimirApiBackend,
    client: &kube::Client,
    target: &Target,
    namespace: &str,
    render: &RenderReport,
    outcome: &LiveOutcome,
    dir: &Path,
) {
    let redactor = crate::redact::for_renders(&[render]);
    let w = |name: &str, text: &str| {
        let _ = std::fs::write(dir.join(name), redactor.apply(text));
    };
    w("rendered.yaml", &render.rendered);
    w(
        "state.txt",
        &observe::describe(client, namespace, &target.scaled_object, &target.hpa).await,
    );
    let (op, ad) = env.keda_logs(400);
    w("keda-operator.log", &op);
    w("keda-adapter.log", &ad);
    let http = reqwest::Client::new();
    let headers = target.headers();
    let answer = instant(
        &http,
        &backend.prometheus_url(),
        &target.trigger.config.query,
        &headers,
    )
    .await;
    w(
        "backend-answer.txt",
        &format!(
            "GET {} with {:?}\n{:#?}\n",
            target.trigger.config.query, headers, answer
        ),
    );
    w(
        "verdict.txt",
        &format!(
            "reasons:\n{}\nobservations:\n{}\n",
            outcome.reasons.join("\n"),
            outcome.observations.join("\n")
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_directories_are_owner_only_and_never_links() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        private_dir_no_links(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let link = root.path().join("link");
        std::os::unix::fs::symlink(root.path(), &link).unwrap();
        let e = private_dir_no_links(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
}
