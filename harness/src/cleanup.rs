//! Process-wide cleanup on interrupt: temporary directories and child process groups that
//! must not outlive the harness, even on Ctrl-C or SIGTERM, and the graceful stop that lets
//! running scenarios write the evidence they have before that happens.
//!
//! On SIGINT/SIGTERM/SIGHUP:
//! - with no [`GracefulStop`] alive (setup, teardown, render-only runs), everything registered
//!   is removed at once and the process exits with [`crate::error::exit_code::INTERRUPTED`];
//! - while a [`GracefulStop`] is alive (live scenarios running), the first signal only marks
//!   the run interrupted (a [`StopToken`] says so): scenarios stop at their current
//!   step, write their evidence, and the caller tears down and exits with the same code. A
//!   watchdog removes everything and exits anyway after [`GRACE`], and a second signal does
//!   so at once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

static TEMP_DIRS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
static PROCESS_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
/// Removals of things outside this process (a kind cluster, a container), by key.
static FINALIZERS: Mutex<Vec<(String, Finalizer)>> = Mutex::new(Vec::new());

/// Held while a finalizer runs, so an exit on interrupt waits for a teardown under way.
static FINALIZING: Mutex<()> = Mutex::new(());

/// A blocking removal of something this process created outside itself.
pub type Finalizer = Box<dyn FnOnce() + Send>;
static INSTALL: Once = Once::new();
/// Signals received so far.
static SIGNALS: AtomicUsize = AtomicUsize::new(0);
/// Live [`GracefulStop`] guards.
static GRACEFUL: AtomicUsize = AtomicUsize::new(0);

/// How long interrupted scenarios get to write their evidence and tear down before the
/// watchdog removes everything and exits.
pub const GRACE: Duration = Duration::from_secs(20);

/// The interrupt flag, awaitable.
fn flag() -> &'static tokio::sync::watch::Sender<bool> {
    static FLAG: OnceLock<tokio::sync::watch::Sender<bool>> = OnceLock::new();
    FLAG.get_or_init(|| tokio::sync::watch::channel(false).0)
}

/// Removes everything registered and exits with the interrupt exit code.
fn cleanup_and_exit() -> ! {
    run_cleanup();
    std::process::exit(crate::error::exit_code::INTERRUPTED);
}

/// Installs the SIGINT/SIGTERM handler once (see the module doc for what it does).
pub fn install_interrupt_handler() {
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            let nth = SIGNALS.fetch_add(1, Ordering::SeqCst) + 1;
            if nth > 1 || GRACEFUL.load(Ordering::SeqCst) == 0 {
                cleanup_and_exit();
            }
            eprintln!(
                "interrupted: stopping the running scenarios and writing their evidence (at most {}s; interrupt again to stop at once)",
                GRACE.as_secs()
            );
            flag().send_replace(true);
            let watchdog = std::thread::Builder::new()
                .name("interrupt-watchdog".into())
                .spawn(|| {
                    std::thread::sleep(GRACE);
                    eprintln!(
                        "interrupted: evidence not written within {}s; stopping now",
                        GRACE.as_secs()
                    );
                    cleanup_and_exit();
                });
            if watchdog.is_err() {
                cleanup_and_exit();
            }
        });
    });
}

/// The signal handler's request to stop, as a value: what must stop at SIGINT/SIGTERM during
/// a [`GracefulStop`] holds one (from [`GracefulStop::token`] or [`stop_token`]) instead of
/// reading a global.
#[derive(Debug, Clone)]
pub struct StopToken {
    rx: tokio::sync::watch::Receiver<bool>,
}

impl StopToken {
    /// Whether a stop was requested (a signal arrived while a [`GracefulStop`] was alive).
    pub fn is_stopped(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes when a stop is requested (at once if it already was).
    pub async fn stopped(&self) {
        let mut rx = self.rx.clone();
        // The sender lives with the signal handler (a static), so the channel never closes.
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// A token for the signal handler's stop request (see [`StopToken`]).
pub fn stop_token() -> StopToken {
    install_interrupt_handler();
    StopToken {
        rx: flag().subscribe(),
    }
}

/// While alive, the first SIGINT/SIGTERM asks the running scenarios to stop and write their
/// evidence instead of exiting at once (see the module doc).
#[derive(Debug)]
pub struct GracefulStop(());

impl GracefulStop {
    /// Starts a phase in which interrupts are graceful.
    pub fn begin() -> Self {
        install_interrupt_handler();
        GRACEFUL.fetch_add(1, Ordering::SeqCst);
        Self(())
    }

    /// The stop request of this phase, for what it runs.
    pub fn token(&self) -> StopToken {
        stop_token()
    }
}

impl Drop for GracefulStop {
    fn drop(&mut self) {
        GRACEFUL.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Removes everything registered now (also called on normal exit paths by guards).
/// Finalizers run first, newest first, while the processes they may need still exist.
pub fn run_cleanup() {
    // A teardown under way in another thread finishes first (its child processes would die
    // with us half-way).
    let _running = FINALIZING.lock().unwrap_or_else(|e| e.into_inner());
    let finalizers = FINALIZERS
        .lock()
        .map(|mut f| std::mem::take(&mut *f))
        .unwrap_or_default();
    for (_, finalize) in finalizers.into_iter().rev() {
        finalize();
    }
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

/// Where small, short-lived working copies go when the user has not chosen a temporary
/// directory (`TMPDIR` unset): `/dev/shm` when it is a writable directory (a memory-backed
/// tmpfs on Linux).
/// Creating and removing a chart's copy there takes a third of the time it takes on a disk
/// filesystem, and a render pays both. `None` means the system temporary directory; callers
/// fall back to it when a copy does not fit.
pub fn memory_scratch_root() -> Option<PathBuf> {
    if std::env::var_os("TMPDIR").is_some() {
        return None;
    }
    shm()
}

/// `/dev/shm`, when it is a directory this process may write to.
fn shm() -> Option<PathBuf> {
    let shm = Path::new("/dev/shm");
    let meta = std::fs::metadata(shm).ok()?;
    (meta.is_dir() && !meta.permissions().readonly()).then(|| shm.to_path_buf())
}

/// Every root a [`TempDir`] may be created in: the system temporary directory and `/dev/shm`
/// (see [`memory_scratch_root`]); what `cluster gc` sweeps, whatever `TMPDIR` says now.
pub fn temp_roots() -> Vec<PathBuf> {
    let mut roots = vec![std::env::temp_dir()];
    roots.extend(shm().filter(|s| !roots.contains(s)));
    roots
}

/// A temporary directory removed on drop and on interrupt.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh private temporary directory whose name starts with `prefix`, in the
    /// system temporary directory.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn new(prefix: &str) -> std::io::Result<Self> {
        Self::new_in(&std::env::temp_dir(), prefix)
    }

    /// Like [`TempDir::new`], but in `root` (see [`memory_scratch_root`]).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn new_in(root: &Path, prefix: &str) -> std::io::Result<Self> {
        install_interrupt_handler();
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(root)?;
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

/// Registers `finalize` to run on interrupt (and from [`run_cleanup`]) under `key`: for
/// things outside this process that must not outlive it, like a kind cluster. The owner calls
/// [`run_finalizer`] to remove the thing itself.
pub fn register_finalizer(key: &str, finalize: Finalizer) {
    install_interrupt_handler();
    if let Ok(mut f) = FINALIZERS.lock() {
        f.push((key.to_string(), finalize));
    }
}

/// Runs (and forgets) the finalizer registered under `key`, if it is still registered; an
/// exit on interrupt meanwhile waits for it to finish.
pub fn run_finalizer(key: &str) {
    let _running = FINALIZING.lock().unwrap_or_else(|e| e.into_inner());
    let finalize = FINALIZERS.lock().ok().and_then(|mut f| {
        let at = f.iter().position(|(k, _)| k == key)?;
        Some(f.remove(at).1)
    });
    if let Some(finalize) = finalize {
        finalize();
    }
}
