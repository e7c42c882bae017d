//! Exit codes and the input error that names a file, a line and the fix.

use std::fmt;
use std::path::{Path, PathBuf};

/// Documented process exit codes.
pub mod exit_code {
    /// Every check passed.
    pub const PASS: i32 = 0;
    /// At least one check or scenario failed; evidence was printed.
    pub const FAILED: i32 = 1;
    /// Bad input or environment: the user must fix something before a run can start.
    pub const BAD_INPUT: i32 = 2;
    /// Interrupted by SIGINT, SIGTERM or SIGHUP (128 + SIGINT, as shells report Ctrl-C):
    /// everything started was stopped and removed; a live run wrote the evidence it had.
    pub const INTERRUPTED: i32 = 130;

    /// The one mapping from a finished command to its exit code: interrupted wins, then any
    /// failure.
    pub fn of(passed: bool, interrupted: bool) -> i32 {
        if interrupted {
            INTERRUPTED
        } else if passed {
            PASS
        } else {
            FAILED
        }
    }
}

/// A problem with what the user gave us (files, flags, environment): exit code 2.
///
/// The message names where the problem is (file and line where known, or the flag), what
/// was expected, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// Where the problem is: a file (with line/column) or a flag.
    pub location: Location,
    /// What is wrong, in one sentence.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

/// Where an input problem sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file, optionally with a 1-based line and column.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
    },
    /// A command-line flag such as `--expect-header`.
    Flag(String),
    /// The environment (a missing tool, a cache entry).
    Environment(String),
}

impl Location {
    /// The 1-based line, for a file location that has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Location::File { line, .. } => *line,
            _ => None,
        }
    }
}

impl InputError {
    /// A problem in a file at an optional line and column.
    pub fn in_file(
        path: impl AsRef<Path>,
        line: Option<usize>,
        column: Option<usize>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            location: Location::File {
                path: path.as_ref().to_path_buf(),
                line,
                column,
            },
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// A problem with a command-line flag.
    pub fn in_flag(
        flag: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            location: Location::Flag(flag.into()),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// A problem with the environment (tools, caches).
    pub fn in_environment(
        what: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            location: Location::Environment(what.into()),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line, column } => {
                write!(f, "{}", path.display())?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                    if let Some(column) = column {
                        write!(f, ":{column}")?;
                    }
                }
                Ok(())
            }
            Location::Flag(flag) => write!(f, "{flag}"),
            Location::Environment(what) => write!(f, "{what}"),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}\n  fix: {}",
            self.location, self.problem, self.fix
        )
    }
}

impl std::error::Error for InputError {}
