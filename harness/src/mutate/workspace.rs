//! Where mutants are rendered: one private copy of the chart per worker, in a temporary
//! directory removed on drop and on interrupt. The user's chart is only ever read.

use super::operators::Mutant;
use crate::cleanup::TempDir;
use crate::error::InputError;
use std::path::{Path, PathBuf};

/// The temporary copies of a chart.
#[derive(Debug)]
pub struct Workspace {
    /// One chart copy per worker.
    copies: Vec<PathBuf>,
    // Declared last: removed after everything that points into it.
    _root: TempDir,
}

impl Workspace {
    /// Copies the chart directory `chart` once per worker.
    ///
    /// # Errors
    /// An [`InputError`] when the temporary directory cannot be made or the chart read.
    pub fn new(chart: &Path, workers: usize) -> Result<Self, InputError> {
        let root = TempDir::new("keda-conformance-mutate-").map_err(|e| {
            InputError::in_environment(
                "temporary directory",
                format!("cannot create one for the chart copies: {e}"),
                "check that $TMPDIR is writable and has space",
            )
        })?;
        // Owner-only from the top: the copies may hold values or secrets of the chart.
        let private = |dir: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        };
        private(root.path()).map_err(|e| {
            InputError::in_environment(
                "temporary directory",
                format!("cannot make {} private: {e}", root.path().display()),
                "check that $TMPDIR is a local file system that supports permissions",
            )
        })?;
        let name = chart
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "chart".into());
        let mut copies = Vec::new();
        for w in 0..workers.max(1) {
            let worker = root.path().join(format!("worker-{w}"));
            let dir = worker.join(&name);
            std::fs::create_dir(&worker)
                .and_then(|()| private(&worker))
                .and_then(|()| crate::chart::source::copy_dir(chart, &dir))
                .map_err(|e| {
                    InputError::in_file(
                        chart,
                        None,
                        None,
                        format!("cannot copy the chart to {}: {e}", dir.display()),
                        "make every file of the chart readable, and check $TMPDIR's space",
                    )
                })?;
            copies.push(dir);
        }
        Ok(Self {
            copies,
            _root: root,
        })
    }

    /// The chart copy of worker `w`.
    pub fn copy(&self, w: usize) -> &Path {
        &self.copies[w % self.copies.len()]
    }

    /// How many copies there are.
    pub fn workers(&self) -> usize {
        self.copies.len()
    }
}

/// A mutant written into a chart copy; the original text is put back on drop.
#[derive(Debug)]
pub struct Applied<'a> {
    path: PathBuf,
    original: &'a str,
}

impl<'a> Applied<'a> {
    /// Writes `mutant` (whose file originally reads `original`) into the copy at `chart_dir`.
    ///
    /// # Errors
    /// The I/O error of the write.
    pub fn write(chart_dir: &Path, mutant: &Mutant, original: &'a str) -> std::io::Result<Self> {
        let path = chart_dir.join(&mutant.file);
        std::fs::write(&path, mutant.apply(original))?;
        Ok(Self { path, original })
    }
}

impl Drop for Applied<'_> {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, self.original);
    }
}
