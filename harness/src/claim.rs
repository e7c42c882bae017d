//! Claims: the named, checkable statements a scenario proves ("header X-Scope-OrgID reaches
//! the metrics endpoint", "workload reaches 3 replicas"). Each becomes its own JUnit test case
//! and a line of the text report, so a red CI names what broke.

use serde::Serialize;

/// What became of a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum Verdict {
    /// It held; the detail says what was observed.
    Held(String),
    /// It did not hold; the detail is the evidence.
    Broken(String),
    /// Its step was never reached (an earlier step failed).
    NotReached,
}

/// One claim and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// What it proves, as a sentence fragment.
    pub name: String,
    /// What became of it.
    pub verdict: Verdict,
}

impl Claim {
    /// A claim that held.
    pub fn held(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Claim {
            name: name.into(),
            verdict: Verdict::Held(detail.into()),
        }
    }

    /// A claim that did not hold.
    pub fn broken(name: impl Into<String>, evidence: impl Into<String>) -> Self {
        Claim {
            name: name.into(),
            verdict: Verdict::Broken(evidence.into()),
        }
    }

    /// A claim whose step was never reached.
    pub fn not_reached(name: impl Into<String>) -> Self {
        Claim {
            name: name.into(),
            verdict: Verdict::NotReached,
        }
    }

    /// Held (`Ok`) or broken (`Err`), from a check's result.
    pub fn from_result(name: impl Into<String>, result: &Result<String, String>) -> Self {
        match result {
            Ok(d) => Claim::held(name, d.clone()),
            Err(e) => Claim::broken(name, e.clone()),
        }
    }
}
