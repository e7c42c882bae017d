//! The external programs the kind provider drives (`kind`, `docker`, `kubectl`, the image
//! scripts): each call has a deadline, runs in its own process group that an interrupt kills,
//! dies with the harness, and takes its arguments after the subcommand, never through a shell.

use crate::stack::process::{output_within, ChildError};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A program and the environment it runs with.
#[derive(Debug, Clone)]
pub struct Tool {
    program: PathBuf,
    env: Vec<(String, OsString)>,
}

/// A call that failed: the command line as shown and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{command}` {why}")]
pub struct ToolError {
    /// The command line (program name and arguments).
    pub command: String,
    /// What went wrong, with the tail of its error output.
    pub why: String,
}

impl Tool {
    /// `program` with the harness's environment plus `env`.
    pub fn new(program: impl Into<PathBuf>, env: &[(&str, &str)]) -> Self {
        Tool {
            program: program.into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), OsString::from(v)))
                .collect(),
        }
    }

    /// The same program with one more environment variable.
    pub fn with_env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    fn shown(&self, args: &[&str]) -> String {
        let name = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::iter::once(name)
            .chain(args.iter().map(|a| a.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        // setpriv --pdeathsig: the child dies with the harness even on SIGKILL.
        let mut cmd = match crate::stack::process::setpriv() {
            Ok(setpriv) => {
                let mut c = std::process::Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(&self.program);
                c
            }
            Err(_) => std::process::Command::new(&self.program),
        };
        cmd.args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd
    }

    /// Runs with `args` and returns its standard output; fails on a non-zero exit or when it
    /// outlives `timeout` (then its process group is killed).
    ///
    /// # Errors
    /// [`ToolError`] with the last lines of its error output.
    pub async fn run(&self, args: &[&str], timeout: Duration) -> Result<String, ToolError> {
        let fail = |why: String| ToolError {
            command: self.shown(args),
            why,
        };
        let out = match output_within(self.command(args), timeout).await {
            Err(ChildError::Deadline(d)) => {
                return Err(fail(format!("did not finish within {}s", d.as_secs())))
            }
            Err(ChildError::Io(e)) => return Err(fail(format!("cannot run: {e}"))),
            Ok(out) => out,
        };
        if !out.status.success() {
            return Err(fail(format!(
                "failed ({}): {}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 12)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Like [`Tool::run`], with standard output and error appended to `log` (for long builds
    /// whose output is evidence).
    ///
    /// # Errors
    /// [`ToolError`] naming the log and quoting its tail.
    pub async fn run_logged(
        &self,
        args: &[&str],
        log: &Path,
        timeout: Duration,
    ) -> Result<(), ToolError> {
        let fail = |why: String| ToolError {
            command: self.shown(args),
            why,
        };
        let file = |append: bool| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(append)
                .write(true)
                .open(log)
                .map_err(|e| fail(format!("cannot open its log {}: {e}", log.display())))
        };
        let mut cmd = self.command(args);
        cmd.stdout(file(true)?).stderr(file(true)?);
        let waited = output_within(cmd, timeout).await;
        let log_tail = || crate::stack::process::log_tail(log, 15);
        match waited {
            Err(ChildError::Deadline(d)) => Err(fail(format!(
                "did not finish within {}s (log {}):\n{}",
                d.as_secs(),
                log.display(),
                log_tail()
            ))),
            Err(ChildError::Io(e)) => Err(fail(format!("cannot run: {e}"))),
            Ok(out) if !out.status.success() => Err(fail(format!(
                "failed ({}; log {}):\n{}",
                out.status,
                log.display(),
                log_tail()
            ))),
            Ok(_) => Ok(()),
        }
    }

    /// A blocking run for teardown paths that may have no async runtime (drops, interrupt
    /// finalizers): waits at most `timeout`, then kills the process group. Returns whether it
    /// exited successfully.
    pub fn run_blocking(&self, args: &[&str], timeout: Duration) -> bool {
        self.output_blocking(args, timeout).is_some()
    }

    /// Like [`Tool::run_blocking`], returning standard output on success.
    pub fn output_blocking(&self, args: &[&str], timeout: Duration) -> Option<String> {
        let mut cmd = self.command(args);
        cmd.stderr(Stdio::null());
        let mut child = cmd.spawn().ok()?;
        // Read output on a thread so a chatty child never blocks on a full pipe.
        let mut stdout = child.stdout.take()?;
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
            buf
        });
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let out = reader.join().unwrap_or_default();
                    return status
                        .success()
                        .then(|| String::from_utf8_lossy(&out).into_owned());
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(child.id() as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }
}

/// The last `lines` non-empty lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_failure_and_deadline() {
        let sh = Tool::new("/bin/sh", &[("KC_T", "v")]);
        let out = sh.run(&["-c", "echo $KC_T"], Duration::from_secs(10)).await;
        assert_eq!(out.unwrap().trim(), "v");
        let err = sh
            .run(&["-c", "echo boom >&2; exit 3"], Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        let started = Instant::now();
        let err = sh
            .run(&["-c", "sleep 30"], Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(err.why.contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!sh.run_blocking(&["-c", "sleep 30"], Duration::from_millis(200)));
        assert!(sh.run_blocking(&["-c", "true"], Duration::from_secs(5)));
    }
}
