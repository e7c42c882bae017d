//! Live expectations, one module per kind: each is awaited by one function with a deadline
//! derived from the scenario or the ScaledObject, and ends as a [`StepResult`].

pub mod cluster;
pub mod replicas;
pub mod requests;

/// How a live step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    /// It held; what was observed.
    Passed(String),
    /// It did not hold; the evidence.
    Failed(String),
    /// SIGINT/SIGTERM arrived while it ran.
    Interrupted,
}

impl StepResult {
    /// What the step observed (passed) or the evidence (failed); the interrupt for an
    /// interrupted one.
    pub fn text(&self) -> &str {
        match self {
            StepResult::Passed(s) | StepResult::Failed(s) => s,
            StepResult::Interrupted => INTERRUPTED,
        }
    }

    /// Whether it passed.
    pub fn passed(&self) -> bool {
        matches!(self, StepResult::Passed(_))
    }
}

impl From<Result<String, String>> for StepResult {
    fn from(r: Result<String, String>) -> Self {
        match r {
            Ok(s) => StepResult::Passed(s),
            Err(e) => StepResult::Failed(e),
        }
    }
}

/// The reason a step reports when the run is interrupted while it runs.
pub const INTERRUPTED: &str = "interrupted (SIGINT/SIGTERM)";

/// Runs a step unless the run is stopped (`stop`) first.
pub async fn unless_interrupted(
    stop: &crate::cleanup::StopToken,
    step: impl std::future::Future<Output = Result<String, String>>,
) -> StepResult {
    tokio::select! {
        biased;
        () = stop.stopped() => StepResult::Interrupted,
        r = step => r.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_step_that_finishes_keeps_its_result() {
        assert_eq!(
            unless_interrupted(&crate::cleanup::stop_token(), async {
                Ok("3 replicas".to_string())
            })
            .await,
            StepResult::Passed("3 replicas".into())
        );
        let failed = unless_interrupted(&crate::cleanup::stop_token(), async {
            Err("no".to_string())
        })
        .await;
        assert_eq!(failed, StepResult::Failed("no".into()));
        assert!(!failed.passed());
        assert_eq!(StepResult::Interrupted.text(), INTERRUPTED);
    }
}
