//! Readiness waits: a condition probed until it holds or a required deadline passes. A
//! timeout reports what was last seen and where the component's log is; a watched process
//! that exits ends the wait at once with its exit status and the tail of its log.

use super::process::{describe_exit, log_tail, ManagedProcess};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const NOTHING_YET: &str = "nothing yet";

/// One probe's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The condition holds.
    Ready,
    /// Not yet; the text says what was seen (it ends up in the timeout error).
    NotYet(String),
}

/// Why a wait ended without its condition holding.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The deadline passed.
    #[error(
        "timed out after {:.1}s waiting for {what}; last seen: {last_seen}{}{}",
        waited.as_secs_f64(),
        log.as_ref().map(|l| format!("; log: {}", l.display())).unwrap_or_default(),
        if tail.is_empty() { String::new() } else { format!("\n{tail}") }
    )]
    Timeout {
        /// The condition, e.g. "kube-apiserver /readyz ok".
        what: String,
        /// How long it was waited for.
        waited: Duration,
        /// What the last probe saw.
        last_seen: String,
        /// The log of the component the condition is about.
        log: Option<PathBuf>,
        /// The last lines of that log (the run directory may be gone by the time the error is
        /// read).
        tail: String,
    },
    /// A watched component exited while waiting.
    #[error("{component} exited ({status}) while waiting for {what}; log: {}\n{tail}", log.display())]
    Exited {
        /// The condition being waited for.
        what: String,
        /// The component that exited.
        component: String,
        /// How it exited.
        status: String,
        /// Its log.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
}

/// A condition to wait for: what it is, its deadline, the processes that must stay alive
/// meanwhile and the log to point at on timeout.
#[derive(Debug)]
pub struct Wait<'a> {
    what: String,
    timeout: Duration,
    watched: Vec<&'a ManagedProcess>,
    log: Option<PathBuf>,
}

impl<'a> Wait<'a> {
    /// A wait for `what` that gives up after `timeout` (there is no default deadline).
    pub fn new(what: impl Into<String>, timeout: Duration) -> Self {
        Self {
            what: what.into(),
            timeout,
            watched: Vec::new(),
            log: None,
        }
    }

    /// Ends the wait early if any of these processes exits; the first one's log is the one
    /// named on timeout unless [`Wait::log`] says otherwise.
    pub fn watching(mut self, processes: impl IntoIterator<Item = &'a ManagedProcess>) -> Self {
        self.watched.extend(processes);
        if self.log.is_none() {
            self.log = self.watched.first().map(|p| p.log().to_path_buf());
        }
        self
    }

    /// The log to name in a timeout error.
    pub fn log(mut self, log: impl Into<PathBuf>) -> Self {
        self.log = Some(log.into());
        self
    }

    /// Probes until the condition holds, backing off from 20 ms to 500 ms between probes.
    ///
    /// Returns how long it took.
    ///
    /// # Errors
    /// [`WaitError::Exited`] as soon as a watched process has exited;
    /// [`WaitError::Timeout`] with the last probe's answer when the deadline passes.
    ///
    /// # Timeouts
    /// The deadline given to [`Wait::new`]; a probe in flight at the deadline is abandoned.
    pub async fn until<F, Fut>(self, mut probe: F) -> Result<Duration, WaitError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Probe>,
    {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut last_seen = NOTHING_YET.to_string();
        let mut interval = Duration::from_millis(20);
        loop {
            self.check_watched()?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, probe()).await {
                Ok(Probe::Ready) => return Ok(start.elapsed()),
                Ok(Probe::NotYet(seen)) => last_seen = seen,
                // Cut off by the deadline: what the previous probe saw is still the news.
                Err(_) if last_seen == NOTHING_YET => {
                    last_seen = "no answer before the deadline".into()
                }
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                self.check_watched()?;
                let tail = self
                    .log
                    .as_deref()
                    .map(|l| log_tail(l, 10))
                    .unwrap_or_default();
                return Err(WaitError::Timeout {
                    what: self.what,
                    waited: start.elapsed(),
                    last_seen,
                    log: self.log,
                    tail,
                });
            }
            let pause = interval.min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
            interval = (interval * 2).min(Duration::from_millis(500));
        }
    }

    fn check_watched(&self) -> Result<(), WaitError> {
        for p in &self.watched {
            if let Some(status) = p.exit_status() {
                return Err(WaitError::Exited {
                    what: self.what.clone(),
                    component: p.name().to_string(),
                    status: describe_exit(status),
                    log: p.log().to_path_buf(),
                    tail: p.log_tail(15),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_once_the_probe_is_ready() {
        let mut calls = 0;
        let took = Wait::new("third probe", Duration::from_secs(5))
            .until(|| {
                calls += 1;
                let n = calls;
                async move {
                    if n >= 3 {
                        Probe::Ready
                    } else {
                        Probe::NotYet(format!("probe {n}"))
                    }
                }
            })
            .await
            .expect("ready");
        assert_eq!(calls, 3);
        assert!(took < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn timeout_reports_the_last_seen_state_and_the_log() {
        let err = Wait::new("the impossible", Duration::from_millis(120))
            .log("/tmp/x.log")
            .until(|| async { Probe::NotYet("still 0 of 3 nodes Ready".into()) })
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("waiting for the impossible"), "{text}");
        assert!(
            text.contains("last seen: still 0 of 3 nodes Ready"),
            "{text}"
        );
        assert!(text.contains("log: /tmp/x.log"), "{text}");
    }
}
