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
        let mut args: Vec<String> = vec![
            "template".into(),
            req.release.into(),
            req.chart_dir.display().to_string(),
            "--namespace".into(),
            req.namespace.into(),
        ];
        for f in req.values_files {
            args.push("-f".into());
            args.push(f.display().to_string());
        }
        for s in req.sets {
            args.push("--set".into());
            args.push(s.clone());
        }
        self.run(&args, None)
    }

    /// Runs Helm with `args` (and an optional kubeconfig), returning stdout.
    ///
    /// # Errors
    /// [`HelmFailure`] when Helm cannot start or exits non-zero.
    pub fn run(&self, args: &[String], kubeconfig: Option<&Path>) -> Result<String, HelmFailure> {
        let command_line = format!("helm{} {}", self.major.number(), args.join(" "));
        let fail = |stderr: String| HelmFailure {
            command: command_line.clone(),
            stderr,
        };
        let home = toolchain::cache_root().join("helm-home");
        let mut cmd = Command::new(&self.binary);
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
        let child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.binary.display())))?;
        let pgid = child.id() as i32;
        cleanup::register_process_group(pgid);
        let output = child.wait_with_output();
        cleanup::unregister_process_group(pgid);
        let output = output.map_err(|e| fail(e.to_string()))?;
        if !output.status.success() {
            return Err(fail(
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
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
