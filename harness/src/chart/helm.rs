//! Runs the real Helm binary (3 or 4) offline and returns the rendered manifests.

use crate::cleanup;
use crate::error::InputError;
use crate::toolchain::{self, Component};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Which Helm major version to run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum HelmMajor {
    /// Helm 3.
    #[serde(rename = "3")]
    V3,
    /// Helm 4.
    #[serde(rename = "4")]
    V4,
}

impl HelmMajor {
    /// Parses "3" or "4".
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "3" => Some(Self::V3),
            "4" => Some(Self::V4),
            _ => None,
        }
    }

    /// The pinned component for this major.
    pub fn component(self) -> Component {
        match self {
            Self::V3 => toolchain::HELM3,
            Self::V4 => toolchain::HELM4,
        }
    }

    /// "helm 3 (v3.22.0)".
    pub fn label(self) -> String {
        format!("helm {} ({})", self.number(), self.component().version())
    }

    /// 3 or 4.
    pub fn number(self) -> u8 {
        match self {
            Self::V3 => 3,
            Self::V4 => 4,
        }
    }
}

/// A Helm binary ready to run.
#[derive(Debug, Clone)]
pub struct Helm {
    /// The major version.
    pub major: HelmMajor,
    /// The binary.
    pub binary: PathBuf,
}

/// A Helm command that exited non-zero: the command line and what it printed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{command}` failed: {stderr}")]
pub struct HelmFailure {
    /// The command line.
    pub command: String,
    /// Helm's standard error, trimmed.
    pub stderr: String,
}

/// How long a Helm command may run: `KEDA_CONFORMANCE_HELM_TIMEOUT` seconds when set, else
/// 120 s for `template` and 300 s for cluster commands (install, upgrade, uninstall --wait).
fn timeout_for(args: &[String]) -> std::time::Duration {
    let secs = std::env::var("KEDA_CONFORMANCE_HELM_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(if args.first().is_some_and(|a| a == "template") {
            120
        } else {
            300
        });
    std::time::Duration::from_secs(secs)
}

/// What to render.
#[derive(Debug, Clone)]
pub struct TemplateRequest<'a> {
    /// The chart directory.
    pub chart_dir: &'a Path,
    /// Release name.
    pub release: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Values files, in order.
    pub values_files: &'a [PathBuf],
    /// `--set` expressions, in order.
    pub sets: &'a [String],
    /// The cluster's capabilities (`--kube-version`, `--api-versions`).
    pub capabilities: &'a crate::chart::capabilities::Capabilities,
}

impl TemplateRequest<'_> {
    /// The `helm template` arguments. Every value is joined to its flag (`--flag=value`) and
    /// the release and chart come after `--`, so no value can be read as another Helm flag.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> =
            vec!["template".into(), format!("--namespace={}", self.namespace)];
        args.extend(self.capabilities.helm_args());
        args.extend(
            self.values_files
                .iter()
                .map(|f| format!("--values={}", f.display())),
        );
        args.extend(self.sets.iter().map(|s| format!("--set={s}")));
        args.extend([
            "--".into(),
            self.release.into(),
            self.chart_dir.display().to_string(),
        ]);
        args
    }
}

impl Helm {
    /// Finds the cached binary for `major`.
    ///
    /// # Errors
    /// When it is not built: the error says which command builds it.
    pub fn locate(major: HelmMajor) -> Result<Self, InputError> {
        Ok(Self {
            major,
            binary: major.component().binary("helm")?,
        })
    }

    /// Runs `helm template` and returns the manifest stream.
    ///
    /// # Errors
    /// [`HelmFailure`] when Helm exits non-zero (template error, invalid YAML, ...).
    pub fn template(&self, req: &TemplateRequest<'_>) -> Result<String, HelmFailure> {
        self.run(&req.args(), None)
    }

    /// The command line as evidence: `--set` values (possibly tokens) are not shown.
    fn shown(&self, args: &[String]) -> String {
        let shown: Vec<String> = args
            .iter()
            .map(
                |a| match a.strip_prefix("--set=").and_then(|kv| kv.split_once('=')) {
                    Some((k, _)) => format!("--set={k}=(value not shown)"),
                    None => a.clone(),
                },
            )
            .collect();
        format!("helm{} {}", self.major.number(), shown.join(" "))
    }

    /// Helm with `args`, its own home under the cache, in a process group of its own, dying
    /// with the thread that starts it (parent-death signal through setpriv, when installed).
    fn command(&self, args: &[String], kubeconfig: Option<&Path>) -> Command {
        let home = toolchain::cache_root().join("helm-home");
        let mut cmd = match crate::stack::process::setpriv() {
            Ok(setpriv) => {
                let mut c = Command::new(setpriv);
                // setpriv would load the locale first; Helm (Go) reads no locale variables.
                c.args(["--pdeathsig", "KILL", "--"])
                    .arg(&self.binary)
                    .env("LC_ALL", "C");
                c
            }
            Err(_) => Command::new(&self.binary),
        };
        cmd.args(args)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(k) = kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        cmd
    }

    /// [`Helm::run`] for async code: the same command, deadline and cleanup, awaited without
    /// holding a thread (`tokio::process`; the child dies with the runtime's worker thread,
    /// which lives as long as the runtime).
    ///
    /// # Errors
    /// [`HelmFailure`] when Helm cannot start, exits non-zero or outlives its deadline.
    pub async fn run_async(
        &self,
        args: &[String],
        kubeconfig: Option<&Path>,
    ) -> Result<String, HelmFailure> {
        let command_line = self.shown(args);
        let fail = |stderr: String| HelmFailure {
            command: command_line.clone(),
            stderr,
        };
        let limit = timeout_for(args);
        let out = match crate::stack::process::output_within(self.command(args, kubeconfig), limit)
            .await
        {
            Err(crate::stack::process::ChildError::Deadline(d)) => {
                return Err(fail(format!(
                    "Helm did not finish within {}s and was stopped (a template that loops without end?)",
                    d.as_secs()
                )))
            }
            Err(crate::stack::process::ChildError::Io(e)) => {
                return Err(fail(format!("cannot run {}: {e}", self.binary.display())))
            }
            Ok(out) => out,
        };
        if !out.status.success() {
            return Err(fail(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs Helm with `args` (and an optional kubeconfig), returning stdout.
    ///
    /// # Errors
    /// [`HelmFailure`] when Helm cannot start or exits non-zero.
    pub fn run(&self, args: &[String], kubeconfig: Option<&Path>) -> Result<String, HelmFailure> {
        let command_line = self.shown(args);
        let fail = |stderr: String| HelmFailure {
            command: command_line.clone(),
            stderr,
        };
        // Helm dies with us (this thread waits for it, so the parent-death signal fires only
        // when the harness dies) and never outlives its deadline: a template with an endless
        // loop is an error, not a hang.
        let mut cmd = self.command(args, kubeconfig);
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.binary.display())))?;
        let pgid = child.id() as i32;
        cleanup::register_process_group(pgid);
        let limit = timeout_for(args);
        let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = std::io::Read::read_to_end(&mut p, &mut buf);
                }
                buf
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        );
        // A watchdog kills the group at the deadline unless told first that Helm has exited;
        // this thread blocks in wait(), so the answer is read the moment Helm is done.
        let (done, watch) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let expired = matches!(
                watch.recv_timeout(limit),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            );
            if expired {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            expired
        });
        let waited = child.wait();
        let _ = done.send(());
        let expired = watchdog.join().unwrap_or(false);
        let status = match waited {
            Ok(_) if expired => Err(format!(
                "Helm did not finish within {}s and was stopped (a template that loops without end?)",
                limit.as_secs()
            )),
            Ok(status) => Ok(status),
            Err(e) => Err(e.to_string()),
        };
        cleanup::unregister_process_group(pgid);
        let out = stdout.join().unwrap_or_default();
        let err = stderr.join().unwrap_or_default();
        let status = status.map_err(fail)?;
        if !status.success() {
            return Err(fail(String::from_utf8_lossy(&err).trim().to_string()));
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// `helm version --short`, for `doctor`.
    ///
    /// # Errors
    /// When Helm cannot run.
    pub fn version(&self) -> Result<String, HelmFailure> {
        self.run(&["version".into(), "--short".into()], None)
            .map(|s| s.trim().to_string())
    }
}
