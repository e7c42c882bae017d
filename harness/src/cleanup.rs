//! Process-wide cleanup on interrupt: temporary directories and child process groups that
//! must not outlive the harness, even on Ctrl-C or SIGTERM.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

static TEMP_DIRS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
static PROCESS_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
static INSTALL: Once = Once::new();

/// Installs the SIGINT/SIGTERM handler once: it removes registered temp dirs, kills
/// registered process groups and exits with 130.
pub fn install_interrupt_handler() {
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            run_cleanup();
            std::process::exit(130);
        });
    });
}

/// Removes everything registered now (also called on normal exit paths by guards).
pub fn run_cleanup() {
    if let Ok(mut groups) = PROCESS_GROUPS.lock() {
        for pgid in groups.iter() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(*pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        groups.clear();
    }
    if let Ok(mut dirs) = TEMP_DIRS.lock() {
        for dir in dirs.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
        dirs.clear();
    }
}

/// The file in each harness temporary directory that names the owning process.
pub const OWNER_FILE: &str = ".keda-conformance-owner";

/// Removes `keda-conformance-*` temporary directories in `root` whose owner process is gone
/// (left by a harness killed with SIGKILL); cluster run directories are left to the cluster
/// registry. Returns what was removed.
pub fn gc_temp_dirs(root: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("keda-conformance-") || name.starts_with("keda-conformance-cluster.") {
            continue;
        }
        let path = entry.path();
        let Ok(owner) = std::fs::read_to_string(path.join(OWNER_FILE)) else {
            continue;
        };
        let alive = owner
            .trim()
            .parse::<u32>()
            .map(|pid| Path::new(&format!("/proc/{pid}")).exists())
            .unwrap_or(false);
        if !alive && std::fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// A temporary directory removed on drop and on interrupt.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh private temporary directory whose name starts with `prefix`.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn new(prefix: &str) -> std::io::Result<Self> {
        install_interrupt_handler();
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let path = dir.keep();
        // Who owns it, so `cluster gc` can remove it if this process is killed outright.
        std::fs::write(path.join(OWNER_FILE), std::process::id().to_string())?;
        TEMP_DIRS
            .lock()
            .map_err(|_| std::io::Error::other("cleanup registry poisoned"))?
            .insert(path.clone());
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        if let Ok(mut dirs) = TEMP_DIRS.lock() {
            dirs.remove(&self.path);
        }
    }
}

/// Registers a child's process group to be killed on interrupt.
pub fn register_process_group(pgid: i32) {
    install_interrupt_handler();
    if let Ok(mut groups) = PROCESS_GROUPS.lock() {
        groups.insert(pgid);
    }
}

/// Forgets a process group that has been reaped.
pub fn unregister_process_group(pgid: i32) {
    if let Ok(mut groups) = PROCESS_GROUPS.lock() {
        groups.remove(&pgid);
    }
}
