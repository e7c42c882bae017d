//! Removing what a kind run created: its cluster, the containers labelled with it and its
//! network (at the end, on error, on interrupt), and what runs killed outright left behind
//! (`cluster gc`).

use super::engine::{self, DockerEngine};
use super::images::KindImages;
use super::names::{owner_of, LABEL};
use super::tool::Tool;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Removes a cluster of ours and everything labelled with its name, then releases the engine.
pub(super) struct Teardown {
    pub(super) kind: Tool,
    pub(super) docker: Tool,
    pub(super) engine: DockerEngine,
    pub(super) cluster: String,
}

impl Teardown {
    pub(super) fn run(self) {
        remove_cluster_blocking(&self.kind, &self.docker, &self.cluster);
        self.engine.release_blocking();
    }
}

/// Deletes kind cluster `cluster`, the containers labelled with it and its network.
fn remove_cluster_blocking(kind: &Tool, docker: &Tool, cluster: &str) {
    let _ = kind.run_blocking(
        &["delete", "cluster", "--name", cluster],
        Duration::from_secs(180),
    );
    let filter = format!("label={LABEL}={cluster}");
    let node_filter = format!("label=io.x-k8s.kind.cluster={cluster}");
    for f in [&filter, &node_filter] {
        let ids = docker
            .output_blocking(&["ps", "-aq", "--filter", f], Duration::from_secs(30))
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = docker.run_blocking(&["rm", "-f", "-v", "--", id], Duration::from_secs(60));
        }
    }
    let _ = docker.run_blocking(&["network", "rm", "--", cluster], Duration::from_secs(60));
}

/// Removes kind clusters of ours whose owner process is gone (after SIGKILL), with their
/// containers and networks, in the engine `scripts/kind/dockerd.sh` knows or `DOCKER_HOST`.
/// Returns the clusters removed.
pub fn gc_blocking() -> Vec<String> {
    let scripts = engine::scripts_dir();
    let dockerd = Tool::new(scripts.join("dockerd.sh"), &[]);
    let host = dockerd
        .output_blocking(&["env"], Duration::from_secs(30))
        .map(|h| h.trim().to_string())
        .or_else(|| std::env::var("DOCKER_HOST").ok());
    let Some(host) = host else {
        return Vec::new();
    };
    let docker = Tool::new("docker", &[("DOCKER_HOST", &host)]);
    let names = docker
        .output_blocking(
            &[
                "ps",
                "-a",
                "--filter",
                "label=io.x-k8s.kind.cluster",
                "--format",
                "{{.Label \"io.x-k8s.kind.cluster\"}}",
            ],
            Duration::from_secs(30),
        )
        .unwrap_or_default();
    let stale: BTreeSet<String> = names
        .lines()
        .map(str::trim)
        .filter(|n| owner_of(n).is_some_and(|pid| !alive(pid)))
        .map(str::to_string)
        .collect();
    let kind = KindImages::read(&crate::toolchain::cache_root().join("kind"))
        .map(|i| i.kind)
        .unwrap_or_else(|_| PathBuf::from("kind"));
    let kind = Tool::new(kind, &[("DOCKER_HOST", &host)]);
    for cluster in &stale {
        remove_cluster_blocking(&kind, &docker, cluster);
    }
    stale.into_iter().collect()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
