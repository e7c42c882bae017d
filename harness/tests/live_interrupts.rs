//! Interrupting a live run at each of its phases (Ctrl-C, SIGTERM, and SIGKILL followed by
//! `cluster gc`) leaves no process of ours and no run or temporary directory behind. Each run
//! gets a private TMPDIR so what it leaves is countable; the number of interrupt points tried
//! and of leaks found is printed. An interrupt while scenarios wait writes their partial
//! evidence and exits 130; a second interrupt stops at once.

use keda_conformance::stack::process::pids_referencing;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keda-conformance");

/// When to interrupt: after a line of progress containing `marker` appears (empty: at once),
/// plus `extra`.
struct Point {
    signal: Signal,
    marker: &'static str,
    extra: Duration,
    phase: &'static str,
}

fn leftovers(tmp: &Path) -> (Vec<u32>, Vec<String>) {
    let pids = pids_referencing(tmp);
    let dirs = std::fs::read_dir(tmp)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    (pids, dirs)
}

fn interrupt_once(point: &Point) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sandbox = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tmp = sandbox.path().join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--suite",
            "suites/default/compactor-follows-tenant-backlog.yaml",
            "--helm",
            "3",
        ])
        .arg("--out")
        .arg(sandbox.path().join("out"))
        .env("TMPDIR", &tmp)
        .current_dir(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    if !point.marker.is_empty() {
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains(point.marker) => break,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!("the run ended before {:?} appeared", point.marker))
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("{:?} did not appear in time", point.marker));
            }
        }
    }
    std::thread::sleep(point.extra);
    kill(Pid::from_raw(child.id() as i32), point.signal).map_err(|e| e.to_string())?;
    let exit_deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > exit_deadline {
            let _ = child.kill();
            return Err(format!(
                "the harness did not exit within 30s of {:?}",
                point.signal
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if point.signal == Signal::SIGKILL {
        let gc = Command::new(BIN)
            .args(["cluster", "gc"])
            .env("TMPDIR", &tmp)
            .output()
            .map_err(|e| e.to_string())?;
        if !gc.status.success() {
            return Err(format!(
                "cluster gc failed: {}",
                String::from_utf8_lossy(&gc.stderr)
            ));
        }
    }
    // Killed processes vanish from /proc asynchronously; give them a moment, then judge.
    let settle = Instant::now() + Duration::from_secs(10);
    loop {
        let (pids, dirs) = leftovers(&tmp);
        if pids.is_empty() && dirs.is_empty() {
            return Ok(());
        }
        if Instant::now() > settle {
            return Err(format!(
                "left behind after {:?} during {}: processes {pids:?}, entries in TMPDIR {dirs:?}",
                point.signal, point.phase
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn interrupting_a_live_run_at_any_phase_leaves_nothing_behind() {
    let points = [
        Point {
            signal: Signal::SIGINT,
            marker: "",
            extra: Duration::from_millis(300),
            phase: "start (build check)",
        },
        Point {
            signal: Signal::SIGINT,
            marker: "etcd healthy",
            extra: Duration::ZERO,
            phase: "cluster up",
        },
        Point {
            signal: Signal::SIGINT,
            marker: "KEDA v2.20.2 ready",
            extra: Duration::from_millis(500),
            phase: "install (Cortex, Helm)",
        },
        Point {
            signal: Signal::SIGINT,
            marker: "KEDA v2.20.2 ready",
            extra: Duration::from_secs(8),
            phase: "seeding and waiting",
        },
        Point {
            signal: Signal::SIGTERM,
            marker: "5 node(s) Ready",
            extra: Duration::ZERO,
            phase: "cluster up",
        },
        Point {
            signal: Signal::SIGTERM,
            marker: "KEDA v2.20.2 ready",
            extra: Duration::from_secs(5),
            phase: "waiting",
        },
        Point {
            signal: Signal::SIGKILL,
            marker: "KEDA v2.20.2 ready",
            extra: Duration::from_secs(5),
            phase: "waiting (then cluster gc)",
        },
    ];
    let mut leaks = Vec::new();
    for p in &points {
        if let Err(e) = interrupt_once(p) {
            leaks.push(e);
        }
    }
    eprintln!(
        "interrupt points tried: {}, leaks found: {}",
        points.len(),
        leaks.len()
    );
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}

/// A `run` of one scenario with a private TMPDIR and evidence directory, its report (stdout)
/// collected, its progress (stderr) readable line by line.
struct LiveRun {
    child: std::process::Child,
    stdout: std::thread::JoinHandle<String>,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
    tmp: std::path::PathBuf,
    out: std::path::PathBuf,
    _sandbox: tempfile::TempDir,
}

impl LiveRun {
    fn start(scenario_file: &str) -> Self {
        Self::start_with(&["run", "--suite", scenario_file, "--helm", "3"])
    }

    /// Starts the harness with `args` (plus `--out` in the sandbox).
    fn start_with(args: &[&str]) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let sandbox = tempfile::tempdir().unwrap();
        let tmp = sandbox.path().join("tmp");
        let out = sandbox.path().join("out");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = Command::new(BIN)
            .args(args)
            .arg("--out")
            .arg(&out)
            .env("TMPDIR", &tmp)
            .env("NO_COLOR", "1")
            .current_dir(&root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut text);
            text
        });
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            stdout,
            stderr: rx,
            seen: Vec::new(),
            tmp,
            out,
            _sandbox: sandbox,
        }
    }

    /// Waits for a progress line containing `marker`.
    fn wait_for(&mut self, marker: &str) {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            match self.stderr.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains(marker) => return,
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the run ended before {marker:?}:\n{}", self.seen.join("\n"))
                }
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "{marker:?} did not appear in time:\n{}",
                    self.seen.join("\n")
                );
            }
        }
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for the exit (at most `limit`); returns the exit code, the report and the
    /// progress lines.
    fn finish(mut self, limit: Duration) -> (Option<i32>, String, Vec<String>, Self) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the harness did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let stdout = std::mem::replace(&mut self.stdout, std::thread::spawn(String::new));
        let stdout = stdout.join().unwrap();
        let mut stderr = std::mem::take(&mut self.seen);
        stderr.extend(self.stderr.try_iter());
        (status.code(), stdout, stderr, self)
    }

    /// Asserts that no process names the TMPDIR and that it is empty (within 10 s).
    fn assert_nothing_left(&self, when: &str) {
        let settle = Instant::now() + Duration::from_secs(10);
        loop {
            let (pids, dirs) = leftovers(&self.tmp);
            if pids.is_empty() && dirs.is_empty() {
                return;
            }
            assert!(
                Instant::now() < settle,
                "left behind {when}: processes {pids:?}, entries in TMPDIR {dirs:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The progress line of the third live step of compactor-header-reaches-endpoint: install,
/// seed, expect_replicas (oracle), expect_requests.
const WAITING: &str = "step 3/4: expect oracle";
const PROXY_SCENARIO: &str = "suites/default/compactor-header-reaches-endpoint.yaml";

/// Issue 8: "partial evidence is still written when a run is interrupted". SIGINT while a
/// scenario waits for replicas: the harness stops the scenario at that step, writes the
/// timeline so far, the requests recorded so far and `interrupted.txt` naming the step,
/// reports INTERRUPTED, exits 130, and leaves nothing behind.
#[test]
fn sigint_while_waiting_writes_partial_evidence_and_exits_130() {
    let mut run = LiveRun::start(PROXY_SCENARIO);
    run.wait_for(WAITING);
    // A few timeline samples (one a second) into the wait.
    std::thread::sleep(Duration::from_secs(5));
    run.signal(Signal::SIGINT);
    let (code, stdout, stderr, run) = run.finish(Duration::from_secs(30));
    assert_eq!(
        code,
        Some(130),
        "stdout:\n{stdout}\nstderr:\n{}",
        stderr.join("\n")
    );
    assert!(
        stdout.contains("INTERRUPTED compactor-header-reaches-endpoint [helm 3]")
            && stdout.contains("run interrupted: 0 passed, 0 failed, 1 interrupted"),
        "the report says interrupted:\n{stdout}"
    );

    let dir = run.out.join("compactor-header-reaches-endpoint-helm3");
    let marker_text = std::fs::read_to_string(dir.join("interrupted.txt"))
        .unwrap_or_else(|e| panic!("interrupted.txt in {}: {e}", dir.display()));
    assert!(
        marker_text.contains("during step 3 of 4 (expect oracle)"),
        "interrupted.txt names the step: {marker_text}"
    );
    let csv = std::fs::read_to_string(dir.join("timeline.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(
        rows.len() >= 3,
        "the timeline so far has samples from the wait:\n{csv}"
    );
    assert!(
        rows.iter().any(|r| r.ends_with(",expect_replicas")),
        "samples taken during expect_replicas:\n{csv}"
    );
    let svg = std::fs::read_to_string(dir.join("timeline.svg")).unwrap();
    assert!(svg.contains("INTERRUPTED"), "the picture's title says so");
    assert!(
        dir.join("requests.jsonl").is_file(),
        "the requests recorded so far"
    );
    let verdict = std::fs::read_to_string(dir.join("verdict.txt")).unwrap();
    assert!(
        verdict.contains("interrupted (SIGINT/SIGTERM)"),
        "{verdict}"
    );
    run.assert_nothing_left("after SIGINT while waiting");
}

/// A second SIGINT while the first one's evidence is being written stops at once: exit 130
/// without the graceful teardown, and still nothing left behind.
#[test]
fn a_second_sigint_stops_at_once_and_leaves_nothing_behind() {
    let mut run = LiveRun::start(PROXY_SCENARIO);
    run.wait_for(WAITING);
    std::thread::sleep(Duration::from_secs(2));
    run.signal(Signal::SIGINT);
    run.wait_for("interrupted: stopping the running scenarios");
    run.signal(Signal::SIGINT);
    let (code, stdout, stderr, run) = run.finish(Duration::from_secs(10));
    assert_eq!(
        code,
        Some(130),
        "stdout:\n{stdout}\nstderr:\n{}",
        stderr.join("\n")
    );
    assert!(
        !stderr
            .iter()
            .any(|l| l.contains("interrupted: the environment was stopped")),
        "the second signal cut the graceful stop short:\n{}",
        stderr.join("\n")
    );
    run.assert_nothing_left("after two SIGINTs");
}

/// Ctrl-C in `repro` behaves as in `run`: the derived scenario stops at its step, writes the
/// evidence it has (`interrupted.txt` naming the step, the timeline so far), the verdict is
/// printed marked interrupted, the exit code is 130 and nothing is left behind.
#[test]
fn sigint_during_repro_writes_partial_evidence_and_exits_130() {
    let mut run = LiveRun::start_with(&[
        "repro",
        "--chart",
        "fixtures/charts/compactor-1x",
        "-f",
        "fixtures/values/compactor-live-tenant-a.yaml",
    ]);
    // The step's progress line is the condition: the interrupt lands while it runs.
    run.wait_for("step 3/4: expect oracle");
    run.signal(Signal::SIGINT);
    let (code, stdout, stderr, run) = run.finish(Duration::from_secs(30));
    assert_eq!(
        code,
        Some(130),
        "stdout:\n{stdout}\nstderr:\n{}",
        stderr.join("\n")
    );
    assert!(
        stdout.contains("Interrupted during step 3 of 4"),
        "{stdout}"
    );
    let dir = run.out.join("repro-helm3");
    let marker_text = std::fs::read_to_string(dir.join("interrupted.txt"))
        .unwrap_or_else(|e| panic!("interrupted.txt in {}: {e}", dir.display()));
    assert!(marker_text.contains("expect oracle"), "{marker_text}");
    assert!(dir.join("timeline.csv").is_file());
    run.assert_nothing_left("after SIGINT during repro");
}

/// Ctrl-C in `qualify` (issue 15: it exited 1): the scenarios stop at their step and write
/// their evidence, the summary table is still printed with what was reached, the exit code is
/// 130 and nothing is left behind.
#[test]
fn sigint_during_qualify_prints_the_summary_and_exits_130() {
    let mut run = LiveRun::start_with(&[
        "qualify",
        "--chart",
        "fixtures/charts/compactor-1x",
        "-f",
        "fixtures/values/compactor-live-tenant-a.yaml",
        "--helm",
        "3",
        "--suite",
        "suites/styles",
    ]);
    // The step's progress line is the condition: the interrupt lands while it runs.
    run.wait_for("step 3/");
    run.signal(Signal::SIGINT);
    let (code, stdout, stderr, run) = run.finish(Duration::from_secs(60));
    assert_eq!(
        code,
        Some(130),
        "stdout:\n{stdout}\nstderr:\n{}",
        stderr.join("\n")
    );
    assert!(stdout.contains("qualification: FAIL"), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    run.assert_nothing_left("after SIGINT during qualify");
}
