//! Issue 8: "two runs started at once on one machine do not interfere (ports, run dirs,
//! tenants, namespaces)". Two `keda-conformance run` processes start together with the same
//! TMPDIR (as two users of one machine would share /tmp) and separate `--out` directories.
//! Both must pass; at every moment both are observed, the TCP ports their processes listen
//! on must be disjoint; each evidence directory holds only its own scenario; afterwards no
//! process names the TMPDIR and no run directory is left.

use keda_conformance::provider::registry;
use keda_conformance::stack::process::pids_referencing;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keda-conformance");

/// Socket inodes of TCP sockets listening on loopback, by port.
fn listening_inodes() -> BTreeMap<u64, u16> {
    let mut out = BTreeMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is f[1] ("0100007F:1F90"), st is f[3] (0A = LISTEN), inode f[9].
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let Some(port) = f[1]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            else {
                continue;
            };
            if let Ok(inode) = f[9].parse::<u64>() {
                out.insert(inode, port);
            }
        }
    }
    out
}

/// The TCP ports the processes of the run directory `run_dir` listen on now.
fn ports_of(run_dir: &Path) -> BTreeSet<u16> {
    let listening = listening_inodes();
    let mut ports = BTreeSet::new();
    for pid in pids_referencing(run_dir) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            if let Some(inode) = t
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
            {
                if let Some(port) = listening.get(&inode) {
                    ports.insert(*port);
                }
            }
        }
    }
    ports
}

fn start(scenario: &str, out: &Path, tmp: &Path) -> Child {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Command::new(BIN)
        .args(["run", "--suite"])
        .arg(format!("suites/default/{scenario}.yaml"))
        .args(["--helm", "3", "--parallel", "1", "--out"])
        .arg(out)
        .env("TMPDIR", tmp)
        .env("NO_COLOR", "1")
        .current_dir(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn two_runs_started_at_once_do_not_interfere() {
    let sandbox = tempfile::tempdir().unwrap();
    let tmp = sandbox.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let scenarios = [
        "compactor-no-data-floors-at-min",
        "compactor-header-reaches-endpoint",
    ];
    let outs: Vec<PathBuf> = scenarios
        .iter()
        .map(|s| sandbox.path().join(format!("out-{s}")))
        .collect();
    let mut children: Vec<Child> = scenarios
        .iter()
        .zip(&outs)
        .map(|(s, o)| start(s, o, &tmp))
        .collect();
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    // Drain output on threads so neither run blocks on a full pipe.
    let readers: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let mut so = c.stdout.take().unwrap();
            let mut se = c.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut a = String::new();
                let mut b = String::new();
                let t = std::thread::spawn(move || {
                    let _ = std::io::Read::read_to_string(&mut se, &mut b);
                    b
                });
                let _ = std::io::Read::read_to_string(&mut so, &mut a);
                (a, t.join().unwrap_or_default())
            })
        })
        .collect();

    // Observe both while they run: run directories, apiservers, listening ports.
    let deadline = Instant::now() + Duration::from_secs(420);
    let mut statuses = [None, None];
    let mut servers: BTreeMap<u32, String> = BTreeMap::new();
    let mut run_dirs: BTreeMap<u32, PathBuf> = BTreeMap::new();
    let mut overlaps = Vec::new();
    // The most ports both runs listened on at the same moment (the smaller of the two).
    let mut busiest_both = 0usize;
    while statuses.iter().any(Option::is_none) {
        for (i, c) in children.iter_mut().enumerate() {
            if statuses[i].is_none() {
                statuses[i] = c.try_wait().unwrap();
            }
        }
        for e in registry::list_in(&tmp) {
            if let Some(r) = e.record {
                if pids.contains(&r.owner_pid) {
                    run_dirs.insert(r.owner_pid, e.path.clone());
                    if !r.server.is_empty() {
                        servers.insert(r.owner_pid, r.server);
                    }
                }
            }
        }
        if run_dirs.len() == 2 {
            let a = ports_of(&run_dirs[&pids[0]]);
            let b = ports_of(&run_dirs[&pids[1]]);
            let shared: Vec<&u16> = a.intersection(&b).collect();
            if !shared.is_empty() {
                overlaps.push(format!(
                    "ports {shared:?} held by both runs ({a:?} / {b:?})"
                ));
            }
            busiest_both = busiest_both.max(a.len().min(b.len()));
        }
        if Instant::now() > deadline {
            for c in &mut children {
                let _ = c.kill();
            }
            panic!("the two runs did not finish within 420s");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let outputs: Vec<(String, String)> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    for (i, s) in statuses.iter().enumerate() {
        assert_eq!(
            s.and_then(|s| s.code()),
            Some(0),
            "run of {} failed\nstdout:\n{}\nstderr:\n{}",
            scenarios[i],
            outputs[i].0,
            outputs[i].1
        );
    }

    assert_eq!(run_dirs.len(), 2, "each run had a run directory of its own");
    assert_ne!(run_dirs[&pids[0]], run_dirs[&pids[1]]);
    assert_eq!(servers.len(), 2, "both apiservers were seen: {servers:?}");
    assert_ne!(
        servers[&pids[0]], servers[&pids[1]],
        "the two clusters' apiservers differ"
    );
    eprintln!(
        "apiservers {:?}; up to {busiest_both} listening ports each at once; overlaps: {}",
        servers.values().collect::<Vec<_>>(),
        overlaps.len()
    );
    assert!(overlaps.is_empty(), "{}", overlaps.join("\n"));
    // The observation meant something: both stacks were up (control plane, KEDA) at once.
    assert!(
        busiest_both >= 8,
        "never saw both stacks listening at once: at most {busiest_both} ports each"
    );

    // Each evidence directory holds its own scenario only, and each report names only it.
    for (i, s) in scenarios.iter().enumerate() {
        let own = format!("{s}-helm3");
        assert_eq!(entries(&outs[i]), vec![own.clone()], "evidence of {s}");
        let csv = std::fs::read_to_string(outs[i].join(&own).join("timeline.csv")).unwrap();
        assert!(csv.lines().count() > 2, "a timeline for {s}:\n{csv}");
        let other = scenarios[1 - i];
        assert!(
            outputs[i].0.contains(&format!("PASS {s} [helm 3]")) && !outputs[i].0.contains(other),
            "the report of {s} is about {s} only:\n{}",
            outputs[i].0
        );
    }

    // Nothing left: no process naming the TMPDIR, no run or temporary directory.
    let settle = Instant::now() + Duration::from_secs(10);
    loop {
        let left = pids_referencing(&tmp);
        let dirs = entries(&tmp);
        if left.is_empty() && dirs.is_empty() {
            break;
        }
        assert!(
            Instant::now() < settle,
            "left behind: processes {left:?}, entries in TMPDIR {dirs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
