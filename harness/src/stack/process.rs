//! Child processes of the stack: each in its own process group, started through
//! `setpriv --pdeathsig KILL` from a thread that lives as long as the harness, logging to a
//! file, killed on drop and on interrupt.
//!
//! Three mechanisms make sure no component outlives the harness:
//! - the parent-death signal: the kernel sends SIGKILL to a component when the harness dies
//!   for any reason, SIGKILL included (the crate forbids `unsafe`, so `prctl` runs in
//!   util-linux's `setpriv`, which then execs the component). Linux delivers it when the
//!   *thread* that forked the child exits, so every child is forked from one spawner thread
//!   that never exits;
//! - [`crate::cleanup`]: each process group is registered there, so SIGINT and SIGTERM kill
//!   them before the harness exits;
//! - [`Drop`] of [`ManagedProcess`] kills the group and reaps it.

use super::error::StackError;
use crate::error::InputError;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How to start one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The component's name, e.g. `kube-apiserver` (also names its log and pid files).
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// File receiving its standard output and standard error.
    pub log: PathBuf,
    /// File receiving its pid (which is also its process group id).
    pub pid_file: PathBuf,
}

impl ProcessSpec {
    /// The command line, for error messages.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A running component: its own process group, killed (group-wide) and reaped on drop.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    pid: u32,
    log: PathBuf,
    child: Mutex<Child>,
}

/// The `setpriv` executable used to set the parent-death signal.
///
/// # Errors
/// An [`InputError`] naming the package when `setpriv` is not on `PATH`.
pub fn setpriv() -> Result<PathBuf, InputError> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("setpriv"))
                    .find(|c| c.is_file())
            })
        })
        .clone()
        .ok_or_else(|| {
            InputError::in_environment(
                "setpriv",
                "not found on PATH (it gives every component a parent-death signal)",
                "install util-linux (`apt-get install util-linux`)",
            )
        })
}

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Forks `command` from the process-lifetime spawner thread (see the module doc).
fn spawn_from_keeper(command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("stack-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok()
            .map(|_| tx)
    });
    let sender = sender
        .as_ref()
        .ok_or_else(|| std::io::Error::other("cannot start the spawner thread"))?;
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .send((command, reply_tx))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("the spawner thread did not answer"))?
}

impl ManagedProcess {
    /// Starts a component in its own process group with a parent-death signal, appending its
    /// output to `spec.log`, and writes its pid to `spec.pid_file`.
    ///
    /// # Errors
    /// When `setpriv` is missing, the log or pid file cannot be written, or the fork fails.
    pub fn spawn(spec: &ProcessSpec) -> Result<Self, StackError> {
        let setpriv = setpriv()?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&spec.log)
            .map_err(|e| StackError::io("create log file", &spec.log, e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| StackError::io("duplicate log file", &spec.log, e))?;
        let mut command = Command::new(setpriv);
        command
            .arg("--pdeathsig")
            .arg("KILL")
            .arg("--")
            .arg(&spec.program)
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        let child = spawn_from_keeper(command).map_err(|source| StackError::Spawn {
            component: spec.name.clone(),
            command: spec.command_line(),
            source,
        })?;
        let pid = child.id();
        crate::cleanup::register_process_group(pid as i32);
        let process = Self {
            name: spec.name.clone(),
            pid,
            log: spec.log.clone(),
            child: Mutex::new(child),
        };
        std::fs::write(&spec.pid_file, format!("{pid}\n"))
            .map_err(|e| StackError::io("write pid file", &spec.pid_file, e))?;
        Ok(process)
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The exit status if it has exited (and reaps it), `None` while it runs.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().ok()?;
        child.try_wait().ok().flatten()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Resident memory right now, from `/proc/<pid>/status` (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_bytes(self.pid)
    }

    /// Sends SIGTERM to its process group (a graceful stop request).
    pub fn terminate(&self) {
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
    }

    /// Waits until it has exited or `deadline` passes; true when it exited.
    pub async fn exited_by(&self, deadline: Instant) -> bool {
        let mut interval = Duration::from_millis(10);
        loop {
            if self.exit_status().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(interval.min(deadline.saturating_duration_since(Instant::now())))
                .await;
            interval = (interval * 2).min(Duration::from_millis(200));
        }
    }

    /// Sends SIGTERM to its process group, waits up to `grace` for it to exit, then kills the
    /// group with SIGKILL and reaps it.
    pub async fn stop(self, grace: Duration) {
        self.terminate();
        self.exited_by(Instant::now() + grace).await;
        drop(self);
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        // The group may hold nothing but a reaped leader; killpg then fails harmlessly.
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        if let Ok(mut child) = self.child.lock() {
            let _ = child.wait();
        }
        crate::cleanup::unregister_process_group(self.pid as i32);
    }
}

/// Describes an exit status: `exit code 1` or `killed by SIGKILL`.
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit code {code}")
    } else if let Some(sig) = status.signal() {
        match Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        }
    } else {
        status.to_string()
    }
}

/// The last `lines` lines of a log file (reading at most its last 64 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Resident memory of a process from `/proc/<pid>/status` (`VmRSS`), in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Pids of live processes (other than this one) whose command line mentions `path`; every
/// component's command line names files in its cluster's run directory, so this finds a
/// cluster's processes even when its pid files are gone. Zombies have an empty command line
/// and are not listed.
pub fn pids_referencing(path: &Path) -> Vec<u32> {
    let needle = path.as_os_str().as_encoded_bytes();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| !needle.is_empty() && c.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The components a run directory's owner started that are still alive: pids recorded in
/// `*.pid` files anywhere under `dir` that still lead their own process group and whose
/// command line still names `dir`. Any other process that merely mentions the directory (a
/// user's `tail -f <dir>/logs/etcd.log`) is not ours and is never listed; a recycled pid fails
/// the command-line test.
pub fn components_of(dir: &Path) -> Vec<u32> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && e.path().extension().is_some_and(|x| x == "pid") {
                files.push(e.path());
            }
        }
    }
    let needle = dir.as_os_str().as_encoded_bytes();
    let mut pids: Vec<u32> = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse::<u32>().ok())
        .filter(|pid| *pid > 1 && *pid != std::process::id())
        .filter(|pid| {
            let leads_group = nix::unistd::getpgid(Some(Pid::from_raw(*pid as i32)))
                .is_ok_and(|g| g.as_raw() == *pid as i32);
            let names_dir = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| !needle.is_empty() && c.windows(needle.len()).any(|w| w == needle));
            leads_group && names_dir
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Sends SIGKILL to the process group led by each pid, and to the pid itself.
pub fn kill_groups(pids: &[u32]) {
    for pid in pids {
        let pid = Pid::from_raw(*pid as i32);
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_in_bytes() {
        let status = "Name:\tetcd\nVmPeak:\t  900 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(51200 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn own_rss_is_visible() {
        assert!(rss_bytes(std::process::id()).unwrap_or(0) > 0);
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&path, 2), "c\nd");
        assert_eq!(log_tail(&dir.path().join("missing"), 2), "");
    }

    #[test]
    fn spawned_process_gets_its_own_group_and_dies_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ProcessSpec {
            name: "sleeper".into(),
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                format!("sleep 300; : {}", dir.path().display()),
            ],
            log: dir.path().join("sleeper.log"),
            pid_file: dir.path().join("sleeper.pid"),
        };
        let p = ManagedProcess::spawn(&spec).expect("spawn");
        let pid = p.pid();
        assert_eq!(
            std::fs::read_to_string(&spec.pid_file).unwrap().trim(),
            pid.to_string()
        );
        let pgid = nix::unistd::getpgid(Some(Pid::from_raw(pid as i32))).unwrap();
        assert_eq!(pgid.as_raw(), pid as i32, "own process group");
        assert!(p.exit_status().is_none());
        // Right after spawn the child may still be setpriv, or between setpriv's exec and the
        // shell's (when its command line reads empty). Wait for the one state asserted: the
        // group leader has become the shell, whose command line is then fixed.
        let shell_runs = || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sh")
                && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !shell_runs() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(shell_runs(), "the child never became the shell");
        // The shell forks `sleep`; until that child execs, its command line is the shell's
        // and names the directory too. So the assertion holds in every state: the spawned
        // process is listed, and everything listed is in its process group.
        let listed = pids_referencing(dir.path());
        assert!(listed.contains(&pid), "{listed:?}");
        let group_of = |p: u32| nix::unistd::getpgid(Some(Pid::from_raw(p as i32))).ok();
        assert!(
            listed
                .iter()
                .all(|p| group_of(*p).is_none_or(|g| g.as_raw() == pid as i32)),
            "{listed:?}"
        );
        drop(p);
        // The whole group dies: SIGKILL reaches the shell's `sleep` too. Its exit is
        // asynchronous, so wait for it; zombies, reaped by init, do not count.
        let deadline = Instant::now() + Duration::from_secs(10);
        let gone = || live_group_members(pid).is_empty() && pids_referencing(dir.path()).is_empty();
        while !gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            gone(),
            "{:?} {:?}",
            live_group_members(pid),
            pids_referencing(dir.path())
        );
    }

    /// Pids of processes in group `pgid` that are not zombies.
    fn live_group_members(pgid: u32) -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| {
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                    return false;
                };
                // Fields after the command name's closing parenthesis: state, ppid, pgrp, ...
                let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
                let fields: Vec<&str> = rest.split_whitespace().collect();
                fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
            })
            .collect()
    }

    #[test]
    fn describes_exits() {
        let exited = ExitStatus::from_raw(1 << 8);
        assert_eq!(describe_exit(exited), "exit code 1");
        let killed = ExitStatus::from_raw(9);
        assert_eq!(describe_exit(killed), "killed by SIGKILL");
    }
}

/// Why a child run with [`output_within`] gave no output.
#[derive(Debug)]
pub enum ChildError {
    /// It could not start, or waiting for it failed.
    Io(std::io::Error),
    /// It outlived its deadline; its process group was killed.
    Deadline(Duration),
}

/// Runs `cmd` (set up to run in a process group of its own) to its end, at most `limit`:
/// registered for interrupt cleanup while it runs, killed with its group at the deadline and
/// when the future is dropped. Returns its exit status and captured output (empty where `cmd`
/// does not pipe it).
///
/// # Errors
/// [`ChildError::Io`] when it cannot start; [`ChildError::Deadline`] when it runs too long.
pub async fn output_within(
    cmd: std::process::Command,
    limit: Duration,
) -> Result<std::process::Output, ChildError> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let child = cmd.spawn().map_err(ChildError::Io)?;
    let pgid = child.id().map(|p| p as i32);
    if let Some(pgid) = pgid {
        crate::cleanup::register_process_group(pgid);
    }
    let waited = tokio::time::timeout(limit, child.wait_with_output()).await;
    if let Some(pgid) = pgid {
        crate::cleanup::unregister_process_group(pgid);
        if waited.is_err() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    match waited {
        Err(_) => Err(ChildError::Deadline(limit)),
        Ok(Err(e)) => Err(ChildError::Io(e)),
        Ok(Ok(out)) => Ok(out),
    }
}
