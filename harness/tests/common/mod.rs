//! Helpers the command-line tests share: the repository root, running the harness binary
//! there, and its whole output as text.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (fixtures and suites are named relative to it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `keda-conformance` with `args` in the repository root.
pub fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("harness runs")
}

/// Standard output and standard error, as one text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
