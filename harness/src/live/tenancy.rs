//! Silent tenants: KEDA asks one tenant, the metrics sit in another.
//!
//! When the tenant a trigger's `X-Scope-OrgID` names holds no data for the query, the backend
//! answers with an empty result, `ignoreNullValues` (on by default) turns it into 0, and the
//! workload sits at its minimum. An oracle that asks the same tenant agrees, so the run looks
//! healthy. This module asks the backend the same query under every tenant the scenario seeded,
//! so a report can name the tenant KEDA asked and the tenants that do hold data.

use crate::backend::query::instant;
use crate::scenario::EmptyAnswer;
use serde::Serialize;

/// An empty answer to KEDA's query, and who else holds data for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmptyAnswerFinding {
    /// The tenant KEDA asked (its `X-Scope-OrgID`), or `(none)`.
    pub asked: String,
    /// Seeded tenants whose answer to the same query is not empty.
    pub holders: Vec<String>,
    /// The query.
    pub query: String,
}

impl EmptyAnswerFinding {
    /// Whether other tenants hold the data KEDA did not get: a silent tenant.
    pub fn is_silent_tenant(&self) -> bool {
        !self.holders.is_empty()
    }

    /// What happened and what it means, in a sentence or two.
    pub fn describe(&self, ignore_null_values: bool) -> String {
        let consequence = consequence(ignore_null_values);
        if self.holders.is_empty() {
            format!(
                "KEDA's query under tenant {:?} got an empty answer, and no seeded tenant holds data for it: {consequence}",
                self.asked
            )
        } else {
            format!(
                "silent tenant: KEDA asks tenant {:?} (X-Scope-OrgID), which holds no data for the query, while {} {} hold data for it: {consequence}; the header should name the tenant whose metrics drive scaling",
                self.asked,
                if self.holders.len() == 1 { "tenant" } else { "tenants" },
                self.holders
                    .iter()
                    .map(|t| format!("{t:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// What an empty answer does to scaling, by the trigger's `ignoreNullValues` (shared by the
/// live finding and the render-time `trigger.silent-tenant` check).
pub fn consequence(ignore_null_values: bool) -> &'static str {
    if ignore_null_values {
        "KEDA counts the empty answer as 0 (ignoreNullValues), so the workload stays at its minimum whatever the backlog"
    } else {
        "KEDA reports an error for the empty answer (ignoreNullValues: false), so the ScaledObject falls back or stops scaling"
    }
}

/// Whether a Prometheus API answer is a success with an empty result.
fn is_empty_result(status: u16, body: &str) -> bool {
    if !(200..=299).contains(&status) {
        return false;
    }
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["data"]["result"].as_array().map(|a| a.is_empty()))
        .unwrap_or(false)
}

/// Asks `base` the query under KEDA's `headers`; when the answer is empty, asks it again under
/// each of `seeded` tenants and returns who holds data. `None` when KEDA's answer is not empty
/// (or is an error, which other checks report).
pub async fn check(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    headers: &[(String, String)],
    seeded: &[String],
) -> Option<EmptyAnswerFinding> {
    let answer = instant(http, base, query, headers).await.ok()?;
    if !is_empty_result(answer.status, &answer.body) {
        return None;
    }
    let asked = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("X-Scope-OrgID"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "(none)".into());
    let mut holders = Vec::new();
    for tenant in seeded {
        if *tenant == asked {
            continue;
        }
        let mut other: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("X-Scope-OrgID"))
            .cloned()
            .collect();
        other.push(("X-Scope-OrgID".into(), tenant.clone()));
        if let Ok(a) = instant(http, base, query, &other).await {
            if (200..=299).contains(&a.status) && !is_empty_result(a.status, &a.body) {
                holders.push(tenant.clone());
            }
        }
    }
    Some(EmptyAnswerFinding {
        asked,
        holders,
        query: query.to_string(),
    })
}

/// What a run makes of a finding under the scenario's `live.empty_answer` policy: a failure
/// reason (`Err`), a warning line (`Ok(Some)`), or nothing.
pub fn judge(
    finding: &EmptyAnswerFinding,
    policy: EmptyAnswer,
    ignore_null_values: bool,
) -> Result<Option<String>, String> {
    let text = finding.describe(ignore_null_values);
    match policy {
        EmptyAnswer::Expected => Ok(None),
        EmptyAnswer::Fail if finding.is_silent_tenant() => Err(text),
        EmptyAnswer::Fail | EmptyAnswer::Warn => Ok(Some(format!("warning: {text}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_results_are_told_from_data_and_errors() {
        assert!(is_empty_result(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#
        ));
        assert!(!is_empty_result(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"5"]}]}}"#
        ));
        assert!(!is_empty_result(401, "no org id"));
        assert!(!is_empty_result(200, "not json"));
    }

    #[test]
    fn policy_decides_between_failure_warning_and_silence() {
        let silent = EmptyAnswerFinding {
            asked: "team-a".into(),
            holders: vec!["team-b".into()],
            query: "q".into(),
        };
        let err = judge(&silent, EmptyAnswer::Fail, true).unwrap_err();
        assert!(
            err.contains("\"team-a\"") && err.contains("\"team-b\""),
            "{err}"
        );
        assert!(err.contains("minimum"), "{err}");
        let warn = judge(&silent, EmptyAnswer::Warn, true).unwrap().unwrap();
        assert!(warn.starts_with("warning: silent tenant"), "{warn}");
        assert_eq!(judge(&silent, EmptyAnswer::Expected, true), Ok(None));
        let alone = EmptyAnswerFinding {
            holders: Vec::new(),
            ..silent
        };
        // Nobody holds data: not a chart's tenant mistake, so a warning even under `fail`.
        assert!(judge(&alone, EmptyAnswer::Fail, false)
            .unwrap()
            .unwrap()
            .contains("no seeded tenant"));
    }
}
