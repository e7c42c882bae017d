//! `keda-conformance cluster ...` as a user runs it: the built binary, with `TMPDIR` pointed
//! at a private directory so the run directories it creates (and leaves) are countable.
//! Needs `scripts/setup-stack.sh` (except the missing-binaries test); fails, never skips,
//! without it.

use keda_conformance::provider::registry::{self, DIR_PREFIX};
use keda_conformance::stack::process::pids_referencing;
use keda_conformance::stack::Binaries;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keda-conformance");
const READY: Duration = Duration::from_secs(150);

fn require_stack() {
    if let Err(e) = Binaries::locate() {
        panic!("the local stack is not built, so this test cannot run.\n{e}");
    }
}

/// A private `TMPDIR` for the binary: every run directory it makes lands here.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("kc-cli-")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).env("TMPDIR", self.path());
        c
    }

    /// Runs the binary to completion.
    fn run(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let out = self.command(args).output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn run_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(DIR_PREFIX))
            .map(|e| e.path())
            .collect()
    }

    /// Processes whose command line names anything under the sandbox: the components.
    fn processes(&self) -> Vec<u32> {
        pids_referencing(self.path())
    }
}

/// A foreground `cluster up`, its kubeconfig path (stdout's first line) and its stderr.
struct Up {
    child: Child,
    kubeconfig: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Up {
    fn start(sandbox: &Sandbox, name: &str) -> Self {
        let mut child = sandbox
            .command(&["cluster", "up", "--provider", "local", "--name", name])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        match rx.recv_timeout(READY) {
            Ok(Ok(line)) => Self {
                child,
                kubeconfig: PathBuf::from(line.trim()),
                stderr,
            },
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`cluster up` printed no kubeconfig path ({other:?}); stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        }
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "`cluster up` did not exit within {timeout:?}; stderr:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` every 50 ms until it holds, failing with `what` after `timeout`.
fn eventually(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigint_to_cluster_up_leaves_no_processes_and_no_run_dirs() {
    require_stack();
    let sandbox = Sandbox::new();
    let mut up = Up::start(&sandbox, "sigint");
    assert!(up.kubeconfig.is_file(), "{}", up.kubeconfig.display());
    assert!(up.kubeconfig.starts_with(sandbox.path()));
    assert_eq!(sandbox.run_dirs().len(), 1);
    assert_eq!(
        sandbox.processes().len(),
        5,
        "etcd, apiserver, controller-manager, scheduler, kwok"
    );

    up.signal(Signal::SIGINT);
    let status = up.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "exit status after Ctrl-C");
    eventually("no component left running", Duration::from_secs(10), || {
        sandbox.processes().is_empty()
    });
    assert_eq!(
        sandbox.run_dirs(),
        Vec::<PathBuf>::new(),
        "run directories left"
    );
}

#[test]
fn sigkill_of_cluster_up_kills_its_components_and_gc_removes_the_run_dir() {
    require_stack();
    let sandbox = Sandbox::new();
    let mut up = Up::start(&sandbox, "sigkill");
    assert_eq!(sandbox.processes().len(), 5);

    // No destructor or handler runs on SIGKILL: the parent-death signal alone stops them.
    up.signal(Signal::SIGKILL);
    up.wait(Duration::from_secs(10));
    eventually(
        "components die with their owner",
        Duration::from_secs(10),
        || sandbox.processes().is_empty(),
    );
    assert_eq!(sandbox.run_dirs().len(), 1, "nothing could remove it yet");

    let (status, stdout, _) = sandbox.run(&["cluster", "status"]);
    assert!(status.success());
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("sigkill") && l.contains("stale")),
        "{stdout}"
    );

    let (status, _, stderr) = sandbox.run(&["cluster", "gc"]);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("removed cluster \"sigkill\""), "{stderr}");
    assert_eq!(sandbox.run_dirs(), Vec::<PathBuf>::new());
    let (_, _, stderr) = sandbox.run(&["cluster", "gc"]);
    assert!(stderr.contains("nothing to remove"), "{stderr}");
}

/// Stops a detached cluster even when the test fails half-way.
struct DownOnDrop<'a>(&'a Sandbox, &'a str);

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["cluster", "down", "--name", self.1]);
    }
}

#[test]
fn detached_cluster_is_listed_by_status_and_stopped_by_down() {
    require_stack();
    let sandbox = Sandbox::new();
    let _guard = DownOnDrop(&sandbox, "bg");
    let (status, stdout, stderr) =
        sandbox.run(&["cluster", "up", "--detach", "--name", "bg", "--nodes", "2"]);
    assert!(status.success(), "{stderr}");
    let kubeconfig = PathBuf::from(stdout.trim());
    assert!(kubeconfig.is_file(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("2 node(s) Ready"),
        "progress is relayed: {stderr}"
    );

    // The owner outlived the `up --detach` that started it.
    let dirs = sandbox.run_dirs();
    assert_eq!(dirs.len(), 1);
    let record = registry::read_record(&dirs[0]).expect("record");
    assert!(Path::new(&format!("/proc/{}", record.owner_pid)).exists());
    assert_eq!(sandbox.processes().len(), 5);
    let (_, stdout, _) = sandbox.run(&["cluster", "status"]);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("bg "))
        .unwrap_or_default();
    assert!(
        line.contains("ready") && line.contains(&record.server),
        "{stdout}"
    );

    let (status, _, stderr) = sandbox.run(&["cluster", "down", "--name", "bg"]);
    assert!(status.success(), "{stderr}");
    eventually("the owner exits", Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{}", record.owner_pid)).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", record.owner_pid))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    });
    eventually("no component left running", Duration::from_secs(10), || {
        sandbox.processes().is_empty()
    });
    assert_eq!(sandbox.run_dirs(), Vec::<PathBuf>::new());
    let (status, _, stderr) = sandbox.run(&["cluster", "down", "--name", "bg"]);
    assert_eq!(status.code(), Some(2), "nothing left to stop: {stderr}");
    assert!(stderr.contains("no cluster named \"bg\""), "{stderr}");
}

#[test]
fn cluster_up_without_the_stack_fails_naming_the_setup_command() {
    let sandbox = Sandbox::new();
    let empty_cache = sandbox.path().join("empty-cache");
    std::fs::create_dir(&empty_cache).unwrap();
    let out = sandbox
        .command(&["cluster", "up", "--name", "nobin"])
        .env("KEDA_CONFORMANCE_CACHE", &empty_cache)
        .env_remove("KEDA_CONFORMANCE_ETCD")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("scripts/setup-stack.sh"), "{stderr}");
    assert!(stderr.contains("etcd"), "names what is missing: {stderr}");
    assert_eq!(sandbox.run_dirs(), Vec::<PathBuf>::new());
}

#[test]
fn a_port_taken_before_its_component_binds_it_is_retried_with_new_ports() {
    require_stack();
    let sandbox = Sandbox::new();
    let _guard = DownOnDrop(&sandbox, "clash");
    // An etcd that finds its port taken once, then is the real etcd.
    let real = Binaries::locate().unwrap().etcd;
    let script = sandbox.path().join("etcd-clashing-once");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nmarker=\"$0.clashed\"\nif [ ! -e \"$marker\" ]; then\n  touch \"$marker\"\n  \
             echo 'listen tcp 127.0.0.1:2379: bind: address already in use' >&2\n  exit 1\nfi\n\
             exec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = sandbox
        .command(&["cluster", "up", "--detach", "--name", "clash"])
        .env("KEDA_CONFORMANCE_ETCD", &script)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("retrying with new ports"), "{stderr}");
    assert!(sandbox.path().join("etcd-clashing-once.clashed").exists());
    let (status, _, stderr) = sandbox.run(&["cluster", "down", "--name", "clash"]);
    assert!(status.success(), "{stderr}");
    eventually("no component left running", Duration::from_secs(10), || {
        sandbox.processes().is_empty()
    });
    assert_eq!(sandbox.run_dirs(), Vec::<PathBuf>::new());
}
