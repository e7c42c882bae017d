//! Host limits kind's nodes need. Every node runs systemd, containerd and a kubelet, each
//! holding inotify instances of the host's user; two clusters of five nodes exceed the usual
//! default of 128 (measured here: kube-proxy then fails with "too many open files" and the
//! pod network never comes up). kind's documentation recommends 512 instances and 524288
//! watches; the harness raises lower limits when it may (root) and says so, else explains.

use std::path::Path;

/// The inotify limits kind recommends: (file under /proc/sys/fs/inotify, minimum).
pub const INOTIFY: [(&str, u64); 2] = [("max_user_instances", 512), ("max_user_watches", 524_288)];

/// What [`ensure_inotify`] did about one limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// Already at least the minimum.
    Enough,
    /// Raised from the first value to the second.
    Raised(u64, u64),
    /// Below the minimum and could not be raised: what to run.
    Low {
        /// The current value.
        now: u64,
        /// The command that raises it.
        fix: String,
    },
}

/// Raises the inotify limits under `dir` (`/proc/sys/fs/inotify`) to kind's minimums where
/// they are lower; one line per limit that was raised or is still low.
pub fn ensure_inotify(dir: &Path) -> Vec<String> {
    INOTIFY
        .iter()
        .filter_map(|(name, min)| match ensure(&dir.join(name), *min) {
            Limit::Enough => None,
            Limit::Raised(from, to) => Some(format!(
                "raised fs.inotify.{name} from {from} to {to} for kind's nodes (it stays raised; kind's known issue \"too many open files\")"
            )),
            Limit::Low { now, fix } => Some(format!(
                "warning: fs.inotify.{name} is {now}, below the {min} kind needs for several nodes or clusters (pods fail with \"too many open files\"); raise it: {fix}"
            )),
        })
        .collect()
}

/// Raises the limit in `file` to `min` when it is lower.
pub fn ensure(file: &Path, min: u64) -> Limit {
    ensure_with(file, min, |f, v| std::fs::write(f, v))
}

/// [`ensure`] with the write given (tests make it fail).
fn ensure_with(
    file: &Path,
    min: u64,
    write: impl Fn(&Path, String) -> std::io::Result<()>,
) -> Limit {
    let now = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let Some(now) = now else {
        return Limit::Enough;
    };
    if now >= min {
        return Limit::Enough;
    }
    match write(file, min.to_string()) {
        Ok(()) => Limit::Raised(now, min),
        Err(_) => {
            let key = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Limit::Low {
                now,
                fix: format!("sudo sysctl -w fs.inotify.{key}={min}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_low_limit_is_raised_and_said() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("max_user_instances"), "128\n").unwrap();
        std::fs::write(dir.path().join("max_user_watches"), "999999\n").unwrap();
        let lines = ensure_inotify(dir.path());
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("from 128 to 512"), "{lines:?}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("max_user_instances")).unwrap(),
            "512"
        );
        assert!(ensure_inotify(dir.path()).is_empty());
    }

    #[test]
    fn a_limit_that_cannot_be_written_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("max_user_instances");
        // No such file (not Linux, or no procfs): nothing to do.
        assert_eq!(ensure(&file, 512), Limit::Enough);
        std::fs::write(&file, "100").unwrap();
        let denied =
            |_: &Path, _: String| Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert_eq!(
            ensure_with(&file, 512, denied),
            Limit::Low {
                now: 100,
                fix: "sudo sysctl -w fs.inotify.max_user_instances=512".into()
            }
        );
        assert_eq!(ensure_with(&file, 64, denied), Limit::Enough);
    }
}
