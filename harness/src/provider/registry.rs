//! Where clusters live and how other processes find them. Each cluster has one run
//! directory in the system temp dir (`$TMPDIR`, else `/tmp`) named
//! `keda-conformance-cluster.<name>.<random>`, holding:
//! - `owner.lock`: flock'ed by the owning process for the cluster's whole life, so "is the
//!   owner alive" is a lock probe, immune to pid reuse;
//! - `cluster.json`: the [`Record`] (owner pid, server, kubeconfig, component pids);
//! - the stack's files (see [`crate::stack::components::Layout`]).
//!
//! Unless kept, the directory is a [`crate::cleanup::TempDir`]: removed when its owner drops
//! it and on SIGINT/SIGTERM. A directory whose lock is free belongs to a dead owner and is
//! what `gc` removes, after killing any process that still names it.

use super::{ProviderError, ProviderKind};
use crate::error::InputError;
use crate::stack::process;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Prefix of every run directory's name.
pub const DIR_PREFIX: &str = "keda-conformance-cluster.";
/// The record file in a run directory.
pub const RECORD_FILE: &str = "cluster.json";
/// The owner's lock file in a run directory.
pub const LOCK_FILE: &str = "owner.lock";
/// A run directory younger than this without a lock file is still being created.
const CREATION_GRACE: Duration = Duration::from_secs(30);

/// The directory holding run directories: the system temp dir.
pub fn root() -> PathBuf {
    std::env::temp_dir()
}

/// Checks a cluster name: 1 to 40 of `a-z`, `0-9` and `-`, starting and ending alphanumeric.
///
/// # Errors
/// An [`InputError`] on `--name` saying what is allowed.
pub fn validate_name(name: &str) -> Result<(), InputError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ok_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !name.is_empty() && name.len() <= 40 && ok_chars && ok_ends {
        Ok(())
    } else {
        Err(InputError::in_flag(
            format!("--name {name}"),
            "a cluster name must be 1 to 40 characters of a-z, 0-9 and '-', starting and ending with a letter or digit",
            "pass e.g. --name local or --name test-1",
        ))
    }
}

/// How far a cluster got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Components are starting.
    Starting,
    /// Every readiness condition held.
    Ready,
}

/// One component as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentRecord {
    /// Its name.
    pub name: String,
    /// Its pid (also its process group id).
    pub pid: u32,
    /// Its log.
    pub log: PathBuf,
}

/// What `cluster.json` says about a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The cluster's name.
    pub name: String,
    /// Who made it.
    pub provider: ProviderKind,
    /// The process that owns it (holds the lock, and the components die with it).
    pub owner_pid: u32,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The apiserver URL (empty until ports are chosen).
    pub server: String,
    /// Number of fake nodes.
    pub nodes: u32,
    /// How far it got.
    pub phase: Phase,
    /// Whether the run directory outlives the owner.
    pub keep: bool,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// The component processes.
    pub components: Vec<ComponentRecord>,
}

/// Seconds since the Unix epoch now.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A run directory found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The directory.
    pub path: PathBuf,
    /// The cluster name (from the directory name).
    pub name: String,
    /// Its record, when readable.
    pub record: Option<Record>,
    /// Whether an owner holds its lock (or it is still being created).
    pub live: bool,
}

/// Whether some process holds `dir`'s owner lock. A directory without a lock file counts as
/// held while it is younger than the creation grace period (its owner is creating it); an
/// unreadable lock file counts as held.
pub fn lock_held(dir: &Path) -> bool {
    match File::open(dir.join(LOCK_FILE)) {
        Ok(file) => match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_probe) => false,
            Err((_, errno)) => errno == nix::errno::Errno::EWOULDBLOCK,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < CREATION_GRACE),
        // Unreadable (another user's cluster, say): assume alive rather than remove it.
        Err(_) => true,
    }
}

/// The cluster name encoded in a run directory's file name.
pub fn name_of(dir_name: &str) -> Option<&str> {
    let rest = dir_name.strip_prefix(DIR_PREFIX)?;
    let (name, _random) = rest.rsplit_once('.')?;
    (!name.is_empty()).then_some(name)
}

/// Reads a run directory's record.
pub fn read_record(dir: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(dir.join(RECORD_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Every run directory under [`root`], sorted by name then path.
pub fn list() -> Vec<Entry> {
    list_in(&root())
}

/// Every run directory under `root`, sorted by name then path.
pub fn list_in(root: &Path) -> Vec<Entry> {
    let Ok(read) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut entries: Vec<Entry> = read
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| {
            let file_name = e.file_name().to_str()?.to_string();
            let name = name_of(&file_name)?.to_string();
            let path = e.path();
            Some(Entry {
                record: read_record(&path),
                live: lock_held(&path),
                name,
                path,
            })
        })
        .collect();
    entries.sort_by(|a, b| (&a.name, &a.path).cmp(&(&b.name, &b.path)));
    entries
}

/// Kills the components a run directory's owner started (their process groups) and removes
/// the directory. Meant for directories whose owner is gone.
///
/// # Errors
/// When the directory cannot be removed.
pub fn remove(dir: &Path) -> Result<(), ProviderError> {
    // Only processes we started: recorded in the directory's pid files, still leading their
    // own group, and still naming the directory (a reused pid does not). A user's
    // `tail -f <dir>/logs/...` names the directory too, and is left alone.
    process::kill_groups(&process::components_of(dir));
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ProviderError::io("remove run directory", dir, e)),
    }
}

/// How the run directory goes away.
#[derive(Debug)]
enum DirGuard {
    /// Removed on drop and on SIGINT/SIGTERM.
    Temp(crate::cleanup::TempDir),
    /// Kept (`--keep`); `gc` removes it once the owner is gone.
    Kept(PathBuf),
}

/// A run directory owned by this process: created fresh, locked for as long as it lives.
/// Dropping it removes the directory (unless kept) and then releases the lock.
#[derive(Debug)]
pub struct OwnedRunDir {
    dir: DirGuard,
    _lock: Flock<File>,
}

impl OwnedRunDir {
    /// Creates and locks a fresh run directory for cluster `name`.
    ///
    /// # Errors
    /// When the directory or lock cannot be created.
    pub fn create(name: &str, keep: bool) -> Result<Self, ProviderError> {
        let prefix = format!("{DIR_PREFIX}{name}.");
        let dir = if keep {
            let d = tempfile::Builder::new()
                .prefix(&prefix)
                .tempdir()
                .map_err(|e| ProviderError::io("create run directory in", root(), e))?;
            DirGuard::Kept(d.keep())
        } else {
            DirGuard::Temp(
                crate::cleanup::TempDir::new(&prefix)
                    .map_err(|e| ProviderError::io("create run directory in", root(), e))?,
            )
        };
        let path = match &dir {
            DirGuard::Temp(t) => t.path().to_path_buf(),
            DirGuard::Kept(p) => p.clone(),
        };
        let lock_path = path.join(LOCK_FILE);
        let file = File::create(&lock_path)
            .map_err(|e| ProviderError::io("create lock file", &lock_path, e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            ProviderError::io("lock", &lock_path, std::io::Error::from(errno))
        })?;
        Ok(Self { dir, _lock: lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        match &self.dir {
            DirGuard::Temp(t) => t.path(),
            DirGuard::Kept(p) => p,
        }
    }

    /// Whether the directory outlives this handle.
    pub fn kept(&self) -> bool {
        matches!(self.dir, DirGuard::Kept(_))
    }

    /// Writes the record (atomically: temp file then rename).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_record(&self, record: &Record) -> Result<(), ProviderError> {
        let path = self.path().join(RECORD_FILE);
        let tmp = self.path().join(format!("{RECORD_FILE}.tmp"));
        let text = serde_json::to_string_pretty(record)
            .map_err(|e| ProviderError::io("serialize", &path, std::io::Error::other(e)))?;
        std::fs::write(&tmp, text + "\n").map_err(|e| ProviderError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| ProviderError::io("write", &path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// Whether `pid` is alive and not a zombie.
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()))
            .is_some_and(|r| !r.starts_with('Z'))
    }

    #[test]
    fn removing_a_run_directory_kills_its_components_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        let log = dir.path().join("logs/etcd.log");
        std::fs::write(&log, "").unwrap();
        // A component: its own group, a pid file, its command line names the directory.
        let mut ours = std::process::Command::new("/bin/sh")
            .args(["-c", &format!("exec tail -f {}", log.display())])
            .process_group(0)
            .spawn()
            .unwrap();
        std::fs::write(dir.path().join("logs/etcd.pid"), ours.id().to_string()).unwrap();
        // A user's `tail -f` of the same log, leading its own group too, with no pid file.
        let mut theirs = std::process::Command::new("tail")
            .arg("-f")
            .arg(&log)
            .process_group(0)
            .spawn()
            .unwrap();
        // Both must have the log open (each is then running what it was started for) before
        // the directory goes.
        let holds_log = |pid: u32| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == log))
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !(holds_log(ours.id()) && holds_log(theirs.id()))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            holds_log(ours.id()) && holds_log(theirs.id()),
            "after 10 s: ours holds the log {}, theirs {}",
            holds_log(ours.id()),
            holds_log(theirs.id())
        );
        assert_eq!(process::components_of(dir.path()), vec![ours.id()]);
        remove(dir.path()).unwrap();
        let status = ours.wait().unwrap();
        assert!(std::os::unix::process::ExitStatusExt::signal(&status).is_some());
        assert!(alive(theirs.id()), "a process we did not start was killed");
        let _ = theirs.kill();
        let _ = theirs.wait();
    }

    #[test]
    fn names_are_dns_label_like() {
        for ok in ["local", "a", "test-1", "x0"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"x".repeat(41)] {
            let err = validate_name(bad).unwrap_err();
            assert!(err.problem.contains("1 to 40"), "{bad}");
        }
    }

    #[test]
    fn parses_the_name_out_of_a_run_directory() {
        assert_eq!(
            name_of("keda-conformance-cluster.local.AbC123"),
            Some("local")
        );
        assert_eq!(name_of("keda-conformance-cluster.a-b.x"), Some("a-b"));
        assert_eq!(name_of("keda-conformance-cluster..x"), None);
        assert_eq!(name_of("other.local.x"), None);
    }

    #[test]
    fn an_owned_dir_is_live_until_dropped_then_gone() {
        let dir = OwnedRunDir::create("registry-unit", false).unwrap();
        let path = dir.path().to_path_buf();
        assert!(lock_held(&path), "the owner's own lock is seen as held");
        let found: Vec<_> = list().into_iter().filter(|e| e.path == path).collect();
        assert_eq!(found.len(), 1);
        assert!(found[0].live);
        assert_eq!(found[0].name, "registry-unit");
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn a_kept_dir_outlives_its_owner_and_is_then_stale() {
        let dir = OwnedRunDir::create("registry-kept", true).unwrap();
        let path = dir.path().to_path_buf();
        assert!(dir.kept());
        drop(dir);
        assert!(path.exists());
        assert!(!lock_held(&path), "nobody holds the lock any more");
        remove(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn records_round_trip() {
        let dir = OwnedRunDir::create("registry-record", false).unwrap();
        let record = Record {
            name: "registry-record".into(),
            provider: ProviderKind::Local,
            owner_pid: std::process::id(),
            run_dir: dir.path().to_path_buf(),
            kubeconfig: dir.path().join("kubeconfig"),
            server: "https://127.0.0.1:1".into(),
            nodes: 2,
            phase: Phase::Ready,
            keep: false,
            created_unix: now_unix(),
            components: vec![ComponentRecord {
                name: "etcd".into(),
                pid: 1,
                log: dir.path().join("logs/etcd.log"),
            }],
        };
        dir.write_record(&record).unwrap();
        assert_eq!(read_record(dir.path()), Some(record));
    }
}
