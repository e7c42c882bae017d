//! Interrupting a live run at each of its phases (Ctrl-C, SIGTERM, and SIGKILL followed by
//! `cluster gc`) leaves no process of ours and no run or temporary directory behind. Each run
//! gets a private TMPDIR so what it leaves is countable; the number of interrupt points tried
//! and of leaks found is printed.

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
