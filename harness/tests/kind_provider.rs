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
    spawn_with(args, out, "standin")
}

/// [`spawn`] with the chart-image policy `chart_images` (`auto`, `pull`, `standin`).
fn spawn_with(
    args: &[&str],
    out: &Path,
    chart_images: &str,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--out")
        .arg(out)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env("KEDA_CONFORMANCE_CHART_IMAGES", chart_images)
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
                "auto",
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
    let (child, rx) = spawn(
        &[
            "run",
            "--provider",
            "kind",
            "--suite",
            "suites/default/compactor-follows-tenant-backlog.yaml",
            "--helm",
            "3",
        ],
        out.path(),
    );
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
