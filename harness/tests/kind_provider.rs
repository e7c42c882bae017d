//! The kind provider with real pods: every live scenario of `suites/default` passes on a kind
//! cluster (KEDA as pods, Cortex as containers, the chart's containers running as the
//! stand-in), and a run leaves no cluster, container or network of its own behind, also when
//! interrupted. Docker: the engine that answers, else the private dockerd the harness starts
//! (as root); the test does not care which, so it passes with and without a Docker engine on
//! the host. The images come from `scripts/setup.sh --kind` (run by `scripts/test.sh`); the
//! harness checks them itself at every start.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keda-conformance");

/// One scenario of the default suite on kind, Helm 3: the shortest run that scales.
const COMPACTOR_ON_KIND: &[&str] = &[
    "run",
    "--provider",
    "kind",
    "--suite",
    "suites/default/compactor-follows-tenant-backlog.yaml",
    "--helm",
    "3",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Docker host a still-running private dockerd (or the user's engine) answers at, if any.
fn docker_host() -> Option<String> {
    let out = Command::new("bash")
        .arg(root().join("scripts/kind/dockerd.sh"))
        .arg("env")
        .output()
        .ok()?;
    if out.status.success() {
        return Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    std::env::var("DOCKER_HOST").ok()
}

/// Containers and networks whose name starts with `kc-<pid>-` (the clusters of process
/// `pid`), in the engine that still answers; none when no engine answers (a private dockerd
/// that was stopped holds nothing).
fn leftovers_of(pid: u32) -> Vec<String> {
    let Some(host) = docker_host() else {
        return Vec::new();
    };
    let prefix = format!("kc-{pid}-");
    let mut found = Vec::new();
    for args in [
        &["ps", "-a", "--format", "{{.Names}}"][..],
        &["network", "ls", "--format", "{{.Name}}"][..],
    ] {
        let out = Command::new("timeout")
            .arg("60")
            .arg("docker")
            .args(args)
            .env("DOCKER_HOST", &host)
            .output()
            .expect("docker runs");
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|n| n.starts_with(&prefix))
                .map(str::to_string),
        );
    }
    found
}

/// Runs the harness with `args`, streaming its stderr lines to the returned channel. The
/// chart's images are played by the stand-in (`KEDA_CONFORMANCE_CHART_IMAGES=standin`), so a
/// host where a registry answers runs the same containers as one where none does.
fn spawn(args: &[&str], out: &Path) -> (std::process::Child, mpsc::Receiver<String>) {
    spawn_with(args, out, &[("KEDA_CONFORMANCE_CHART_IMAGES", "standin")])
}

/// [`spawn`] with the environment `env` added (e.g. the chart-image policy
/// `KEDA_CONFORMANCE_CHART_IMAGES`: `auto`, `pull`, `standin`).
fn spawn_with(
    args: &[&str],
    out: &Path,
    env: &[(&str, &str)],
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--out")
        .arg(out)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("harness runs");
    let (tx, rx) = mpsc::channel();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    (child, rx)
}

/// Waits for the child (killing it after `limit`) and returns its exit code and every line.
fn finish(
    mut child: std::process::Child,
    rx: &mpsc::Receiver<String>,
    limit: Duration,
) -> (Option<i32>, Vec<String>) {
    let deadline = Instant::now() + limit;
    let mut lines = Vec::new();
    loop {
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            std::thread::sleep(Duration::from_millis(200));
            lines.extend(rx.try_iter());
            return (status.code(), lines);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            lines.extend(rx.try_iter());
            panic!(
                "the run did not finish within {}s; its output:\n{}",
                limit.as_secs(),
                lines.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn every_live_scenario_of_the_default_suite_passes_with_real_pods() {
    let out = tempfile::tempdir().unwrap();
    let junit = out.path().join("junit.xml");
    let (child, rx) = spawn(
        &[
            "run",
            "--provider",
            "kind",
            "--suite",
            "suites/default",
            "--junit",
            &junit.to_string_lossy(),
        ],
        &out.path().join("evidence"),
    );
    let pid = child.id();
    let (code, lines) = finish(child, &rx, Duration::from_secs(40 * 60));
    let text = lines.join("\n");
    assert_eq!(code, Some(0), "{text}");
    // Really kind: the cluster was created for this run and KEDA ran as pods.
    assert!(
        text.contains(&format!("kind create cluster kc-{pid}-")),
        "{text}"
    );
    assert!(text.contains("as pods"), "{text}");
    // Every live scenario ran live (not only rendered) and passed.
    let live_passed = lines
        .iter()
        .filter(|l| l.starts_with("live: ") && l.contains(" passed after "))
        .count();
    let live_started = lines
        .iter()
        .filter(|l| l.starts_with("live: ") && l.ends_with(" started"))
        .count();
    assert!(live_started >= 20, "only {live_started} live runs:\n{text}");
    assert_eq!(live_passed, live_started, "{text}");
    // The chart's own containers ran, and the report says who played them.
    assert!(
        text.contains("images played by the keda-conformance stand-in"),
        "{text}"
    );
    let report = std::fs::read_to_string(&junit).unwrap();
    assert!(report.contains("failures=\"0\""), "{report}");
    assert!(!report.contains("<failure"), "{report}");
    // Nothing of the run is left in Docker.
    assert_eq!(leftovers_of(pid), Vec::<String>::new());
}

#[test]
fn replicas_that_never_become_ready_are_reported_not_ready_by_two_runs_at_once() {
    // suites/real-pods: a readiness probe that never passes. The HPA scales the Deployment to
    // 4, and the harness must see 0 of them Ready (kwok's pods would all be Ready). Two runs
    // at once: each makes its own cluster and network, shares the Docker engine (the first
    // may start the private dockerd, which then stays up until the last run is done), and
    // removes only what is its own.
    let outs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let runs: Vec<_> = outs
        .iter()
        .map(|out| {
            // The default policy: a pull is tried (this suite's probe never passes, whoever
            // plays the image), the stand-in plays what cannot be pulled.
            spawn_with(
                &["run", "--provider", "kind", "--suite", "suites/real-pods"],
                out.path(),
                &[("KEDA_CONFORMANCE_CHART_IMAGES", "auto")],
            )
        })
        .collect();
    let pids: Vec<u32> = runs.iter().map(|(child, _)| child.id()).collect();
    let results: Vec<(Option<i32>, Vec<String>)> = runs
        .into_iter()
        .map(|(child, rx)| finish(child, &rx, Duration::from_secs(25 * 60)))
        .collect();
    for ((code, lines), pid) in results.iter().zip(&pids) {
        let text = lines.join("\n");
        assert_eq!(*code, Some(0), "run of pid {pid}:\n{text}");
        assert!(
            text.contains(&format!("kind create cluster kc-{pid}-")),
            "run of pid {pid} made no cluster of its own:\n{text}"
        );
        assert!(
            text.contains("4 replicas, 0 of them Ready, after"),
            "{text}"
        );
        // The chart's image was asked of a registry first: pulled, or not and said why.
        assert!(
            text.contains("(the chart's own image)") || text.contains(": not pulled ("),
            "{text}"
        );
        assert_eq!(leftovers_of(*pid), Vec::<String>::new());
    }
}

#[test]
fn an_interrupted_kind_run_removes_its_cluster_and_exits_130() {
    let out = tempfile::tempdir().unwrap();
    let (child, rx) = spawn(COMPACTOR_ON_KIND, out.path());
    let pid = child.id();
    // Interrupt once the scenario runs on the cluster (its install step has started).
    let deadline = Instant::now() + Duration::from_secs(20 * 60);
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                let reached = line.contains("step 2/");
                seen.push(line);
                if reached {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!(
                    "the run ended before its scenario started:\n{}",
                    seen.join("\n")
                )
            }
        }
        assert!(
            Instant::now() < deadline,
            "the scenario did not start:\n{}",
            seen.join("\n")
        );
    }
    // While it runs, its cluster exists: the check below can see a leak.
    assert!(
        !leftovers_of(pid).is_empty(),
        "no cluster of pid {pid} seen while it runs"
    );
    kill(Pid::from_raw(pid as i32), Signal::SIGINT).unwrap();
    let (code, lines) = finish(child, &rx, Duration::from_secs(240));
    seen.extend(lines);
    assert_eq!(code, Some(130), "{}", seen.join("\n"));
    assert_eq!(
        leftovers_of(pid),
        Vec::<String>::new(),
        "{}",
        seen.join("\n")
    );
}

/// Runs `cmd` under `timeout limit`, asserts it succeeded (else shows `what` and its stderr)
/// and returns its stdout.
fn succeed(cmd: &mut Command, what: &str, limit: u64) -> String {
    let out = Command::new("timeout")
        .arg(limit.to_string())
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `bash <script> args...` of this repository with `env` (at most `limit` seconds),
/// asserts it succeeded and returns its trimmed stdout.
fn script(path: &str, args: &[&str], env: &[(&str, &str)], limit: u64) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join(path))
        .args(args)
        .envs(env.iter().copied());
    succeed(&mut cmd, path, limit).trim().to_string()
}

/// Runs `docker args...` against `host` (at most `limit` seconds); its stdout.
fn docker(host: &str, args: &[&str], limit: u64) -> String {
    let mut cmd = Command::new("docker");
    cmd.args(args).env("DOCKER_HOST", host);
    succeed(&mut cmd, &format!("docker {args:?}"), limit)
}

/// What the registry test leaves to undo: the registry process, upstream names it tagged in
/// the engine, a private dockerd it started; then the image cache is described again as the
/// offline pipeline makes it.
struct RegistryTestGuard {
    registry: Option<std::process::Child>,
    host: String,
    tags: Vec<String>,
    stop_dockerd: bool,
}

impl Drop for RegistryTestGuard {
    fn drop(&mut self) {
        if let Some(r) = self.registry.as_mut() {
            let _ = r.kill();
            let _ = r.wait();
        }
        for t in &self.tags {
            let _ = Command::new("timeout")
                .args(["60", "docker", "rmi", "--", t])
                .env("DOCKER_HOST", &self.host)
                .output();
        }
        let _ = Command::new("timeout")
            .args(["900", "bash"])
            .arg(root().join("scripts/kind/build.sh"))
            .env("KEDA_CONFORMANCE_KIND_IMAGES", "build")
            .output();
        // Stopped only when nothing runs in it: `dockerd.sh stop` removes every container, and
        // a run that started meanwhile may be using the engine this test started.
        let idle = || {
            Command::new("timeout")
                .args(["60", "docker", "ps", "-q"])
                .env("DOCKER_HOST", &self.host)
                .output()
                .is_ok_and(|o| o.status.success() && o.stdout.is_empty())
        };
        if self.stop_dockerd && idle() {
            let _ = Command::new("bash")
                .arg(root().join("scripts/kind/dockerd.sh"))
                .arg("stop")
                .output();
        }
    }
}

#[test]
fn node_backend_and_keda_images_pulled_from_a_registry_run_the_scenario() {
    // The online path, with a registry of our own on 127.0.0.1 (distribution's, built from
    // its Go module) standing in for docker.io, ghcr.io and quay.io through
    // KEDA_CONFORMANCE_IMAGE_MIRROR. It serves the images the offline pipeline built, under
    // the upstream paths; the run must pull the node, Cortex and KEDA's three images from it
    // (KEDA_CONFORMANCE_KIND_IMAGES=pull: a missing one fails the run) and pass.
    let offline = [("KEDA_CONFORMANCE_KIND_IMAGES", "build")];
    let registry_bin = script("scripts/kind/build-registry.sh", &[], &[], 1800);
    // The engine: the one that answers, else the private dockerd (started here, stopped by
    // the guard); the offline images in it.
    let (host, stop_dockerd) = match docker_host() {
        Some(h) => (h, false),
        None => (
            script("scripts/kind/dockerd.sh", &["start"], &[], 900),
            true,
        ),
    };
    let mut guard = RegistryTestGuard {
        registry: None,
        host: host.clone(),
        tags: Vec::new(),
        stop_dockerd,
    };
    let node = script("scripts/kind/build.sh", &[], &offline, 3600);
    let env = std::fs::read_to_string(
        std::env::var("KEDA_CONFORMANCE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/keda-conformance")
            })
            .join("kind/build.env"),
    )
    .unwrap();
    let cortex = env
        .lines()
        .find_map(|l| l.strip_prefix("CORTEX_IMAGE="))
        .unwrap()
        .to_string();
    let cortex_version = cortex.rsplit(':').next().unwrap().to_string();
    let keda_tag = "2.20.2";

    // The registry, on a free loopback port, with an access log.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("registry.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("registry.log");
    guard.registry = Some(
        Command::new(&registry_bin)
            .arg("serve")
            .arg(&config)
            // Its tracing would post to localhost:4318.
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("the registry starts"),
    );
    let mirror = format!("127.0.0.1:{port}");
    // A node image the engine does not have under this name: it must come from the registry.
    let node_ref = "example.invalid/kc/kind-node:v1.35.4".to_string();
    let upstream_cortex = format!("quay.io/cortexproject/cortex:{cortex_version}");
    guard.tags = vec![node_ref.clone(), upstream_cortex.clone()];
    for t in guard.tags.clone() {
        let _ = Command::new("docker")
            .args(["rmi", "--", &t])
            .env("DOCKER_HOST", &host)
            .output();
    }
    let up = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "the registry did not listen: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Serve the offline images under the paths the run will ask the mirror for.
    // KEDA's offline images already carry the upstream names.
    let served: Vec<(String, String)> = [
        (node.clone(), node_ref.clone()),
        (cortex.clone(), upstream_cortex.clone()),
    ]
    .into_iter()
    .chain(
        ["keda", "keda-metrics-apiserver", "keda-admission-webhooks"].map(|name| {
            let r = format!("ghcr.io/kedacore/{name}:{keda_tag}");
            (r.clone(), r)
        }),
    )
    .collect();
    for (local, upstream) in &served {
        let at_mirror = format!("{mirror}/{upstream}");
        docker(&host, &["tag", local, &at_mirror], 60);
        docker(&host, &["push", "-q", &at_mirror], 900);
        docker(&host, &["rmi", &at_mirror], 60);
    }
    let pushed = std::fs::read_to_string(&log_path).unwrap().len();

    let out = tempfile::tempdir().unwrap();
    let (child, rx) = spawn_with(
        COMPACTOR_ON_KIND,
        out.path(),
        &[
            ("DOCKER_HOST", &host),
            ("KEDA_CONFORMANCE_CHART_IMAGES", "standin"),
            ("KEDA_CONFORMANCE_KIND_IMAGES", "pull"),
            ("KEDA_CONFORMANCE_IMAGE_MIRROR", &mirror),
            ("KEDA_CONFORMANCE_KIND_NODE_IMAGE", &node_ref),
        ],
    );
    let (code, lines) = finish(child, &rx, Duration::from_secs(30 * 60));
    let text = lines.join("\n");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("images: pulled "), "{text}");
    assert!(
        text.contains(&format!("(node image {node_ref}, Kubernetes v1.35.4)")),
        "{text}"
    );
    // The registry saw the engine ask for each manifest after the pushes (HEAD when the
    // engine already holds the layers, GET otherwise).
    let log = std::fs::read_to_string(&log_path).unwrap();
    let asked = &log[pushed..];
    for (_, upstream) in &served {
        let (repo, tag) = upstream.rsplit_once(':').unwrap();
        let uri = format!("/v2/{repo}/manifests/{tag}");
        assert!(
            asked
                .lines()
                .any(|l| l.contains(&format!("http.request.uri={uri} "))
                    && (l.contains("http.request.method=GET")
                        || l.contains("http.request.method=HEAD"))),
            "the registry was not asked for {uri}:\n{asked}\n--- run:\n{text}"
        );
    }
    guard.tags.push(format!("{mirror}/{node_ref}"));
    drop(guard);
}
