//! Reports for people and machines: coloured text, JSON (schema `keda-conformance/v1`) and
//! JUnit XML. Every output passes through the [`Redactor`] so secrets never leave the process.

use crate::checks::{Finding, Status, CATALOG};
use crate::claim::Verdict;
pub mod github;

use crate::engine::ScenarioResult;
use crate::redact::Redactor;
use crate::render::RenderReport;
use serde::Serialize;
use std::fmt::Write as _;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text (coloured on a terminal).
    Text,
    /// JSON, schema `keda-conformance/v1`.
    Json,
    /// JUnit XML.
    Junit,
    /// GitHub Actions: the text report in a `::group::`, `::error`/`::warning` annotations
    /// pointing at the values line (or template) behind each finding, and a Markdown summary
    /// appended to `$GITHUB_STEP_SUMMARY` when it is set.
    Github,
}

/// Text made safe for a terminal: control characters other than newline and tab (ANSI escape
/// sequences from a chart's values or templates, carriage returns that overwrite a line) are
/// shown as `\u{..}` instead of being interpreted.
pub fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

pub use crate::redact::for_renders as redactor_for;

struct Paint {
    color: bool,
}

impl Paint {
    fn status(&self, s: Status) -> String {
        let (label, code) = match s {
            Status::Pass => ("PASS", "32"),
            Status::Info => ("INFO", "36"),
            Status::Warn => ("WARN", "33"),
            Status::Fail => ("FAIL", "31;1"),
        };
        if self.color {
            format!("\x1b[{code}m{label}\x1b[0m")
        } else {
            label.to_string()
        }
    }
}

fn use_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

fn write_findings(out: &mut String, findings: &[Finding], paint: &Paint, verbose: bool) {
    for f in findings {
        if f.status == Status::Pass && !verbose {
            continue;
        }
        let _ = writeln!(
            out,
            "  {} {:<28} {}: {}",
            paint.status(f.status),
            f.check,
            f.subject,
            f.message
        );
        for e in &f.evidence {
            for line in e.lines() {
                let _ = writeln!(out, "        {line}");
            }
        }
    }
}

fn write_render(out: &mut String, r: &RenderReport, paint: &Paint, verbose: bool) {
    let _ = writeln!(
        out,
        "chart {} · {} · release {} in {}",
        r.chart, r.helm, r.release, r.namespace
    );
    write_findings(out, &r.verdict.findings, paint, verbose);
    if !r.verdict.requests.is_empty() {
        let _ = writeln!(out, "  requests KEDA v2.20 will send:");
        for req in &r.verdict.requests {
            let _ = writeln!(
                out,
                "    {}: {} {}",
                req.subject, req.request.method, req.request.url
            );
            for (n, v) in &req.request.headers {
                let _ = writeln!(out, "      {n}: {v}");
            }
            let _ = writeln!(
                out,
                "      threshold {} ({:?}), activationThreshold {}, ignoreNullValues {}",
                req.config.threshold,
                req.config.metric_type,
                req.config.activation_threshold,
                req.config.ignore_null_values
            );
        }
    }
    let count = |s: Status| r.verdict.findings.iter().filter(|f| f.status == s).count();
    let _ = writeln!(
        out,
        "  {} findings: {} pass, {} fail, {} warn, {} info",
        r.verdict.findings.len(),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Warn),
        count(Status::Info)
    );
}

/// The text report of one render.
pub fn render_text(r: &RenderReport, verbose: bool) -> String {
    let paint = Paint { color: use_color() };
    let mut out = String::new();
    write_render(&mut out, r, &paint, verbose);
    let _ = writeln!(
        out,
        "verdict: {}",
        if r.status() == Status::Fail {
            paint.status(Status::Fail)
        } else {
            paint.status(Status::Pass)
        }
    );
    redactor_for(&[r]).apply(&out)
}

#[derive(Serialize)]
struct JsonRender<'a> {
    schema: &'static str,
    status: Status,
    #[serde(flatten)]
    report: &'a RenderReport,
}

/// The JSON report of one render.
pub fn render_json(r: &RenderReport) -> String {
    let doc = JsonRender {
        schema: "keda-conformance/render/v1",
        status: if r.status() == Status::Fail {
            Status::Fail
        } else {
            Status::Pass
        },
        report: r,
    };
    // Redacted string by string before serializing (escaping), and the text once more.
    let redactor = redactor_for(&[r]);
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    redactor.apply_json(&mut value);
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    redactor.apply(&text)
}

/// The JUnit report of one render: one test case per check.
pub fn render_junit(r: &RenderReport) -> String {
    let redactor = redactor_for(&[r]);
    let mut suite = quick_junit::TestSuite::new(format!("render {} {}", r.chart, r.helm));
    for check in CATALOG {
        let findings: Vec<&Finding> = r
            .verdict
            .findings
            .iter()
            .filter(|f| f.check == check.id)
            .collect();
        if findings.is_empty() {
            continue;
        }
        let failed: Vec<&&Finding> = findings
            .iter()
            .filter(|f| f.status == Status::Fail)
            .collect();
        let mut case = if failed.is_empty() {
            quick_junit::TestCase::new(
                format!("{}: {}", check.id, check.rule),
                quick_junit::TestCaseStatus::success(),
            )
        } else {
            let mut st =
                quick_junit::TestCaseStatus::non_success(quick_junit::NonSuccessKind::Failure);
            // Redacted before quick_junit escapes it for XML.
            st.set_message(
                redactor.apply(
                    &failed
                        .iter()
                        .map(|f| format!("{}: {}", f.subject, f.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            );
            st.set_description(
                redactor.apply(
                    &failed
                        .iter()
                        .flat_map(|f| f.evidence.clone())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
            );
            quick_junit::TestCase::new(format!("{}: {}", check.id, check.rule), st)
        };
        case.set_classname(format!("keda-conformance.render.{}", check.id));
        suite.add_test_case(case);
    }
    let mut report = quick_junit::Report::new("keda-conformance");
    report.add_test_suite(suite);
    let text = report.to_string().unwrap_or_default();
    redactor.apply(&text)
}

fn run_redactor(results: &[ScenarioResult]) -> Redactor {
    let reports: Vec<&RenderReport> = results.iter().filter_map(|r| r.render.as_ref()).collect();
    redactor_for(&reports)
}

/// The text report of a scenario run.
pub fn run_text(results: &[ScenarioResult], verbose: bool) -> String {
    let paint = Paint { color: use_color() };
    let mut out = String::new();
    for r in results {
        let status = if r.passed { Status::Pass } else { Status::Fail };
        let interrupted = r.live.as_ref().and_then(|l| l.interrupted.as_deref());
        let label = match interrupted {
            Some(_) if paint.color => "\x1b[33;1mINTERRUPTED\x1b[0m".to_string(),
            Some(_) => "INTERRUPTED".to_string(),
            None => paint.status(status),
        };
        let _ = writeln!(out, "{label} {} ({:.1}s)", r.name, r.elapsed.as_secs_f64());
        if let Some(at) = interrupted {
            let _ = writeln!(out, "  - interrupted during {at}");
        }
        for reason in &r.reasons {
            let _ = writeln!(out, "  - {reason}");
        }
        for claim in &r.claims {
            let (mark, detail) = match &claim.verdict {
                Verdict::Held(d) => (paint.status(Status::Pass), d.as_str()),
                Verdict::Broken(e) => (paint.status(Status::Fail), e.as_str()),
                Verdict::NotReached => ("skip".to_string(), "not reached"),
            };
            let _ = writeln!(out, "  {mark} {}: {detail}", claim.name);
        }
        if let Some(live) = &r.live {
            for o in &live.observations {
                let _ = writeln!(out, "  live {o}");
            }
            write_requests(&mut out, &live.requests);
            if let Some(dir) = &live.evidence_dir {
                let what = if r.passed { "timeline" } else { "evidence" };
                let _ = writeln!(out, "  {what}: {}", dir.display());
            }
        }
        if r.live_not_run {
            let _ = writeln!(out, "  live steps not run (--tier render)");
        }
        if let Some(rep) = &r.render {
            if !r.passed || verbose {
                let mut inner = String::new();
                write_render(&mut inner, rep, &paint, verbose);
                for line in inner.lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let interrupted = results
        .iter()
        .filter(|r| r.live.as_ref().is_some_and(|l| l.interrupted.is_some()))
        .count();
    if interrupted > 0 {
        let _ = writeln!(
            out,
            "run interrupted: {} passed, {} failed, {interrupted} interrupted (partial evidence written)",
            passed,
            results.len() - passed - interrupted
        );
    } else {
        let _ = writeln!(out, "{} passed, {} failed", passed, results.len() - passed);
    }
    run_redactor(results).apply(&out)
}

/// A short table of the requests KEDA sent to the mock or proxy: the first few and the last,
/// with time, path, headers (sensitive ones already redacted) and the status returned.
fn write_requests(out: &mut String, requests: &[crate::mock::Recorded]) {
    if requests.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "  requests KEDA sent ({}):\n  {:>8}  {:<6} {:<28} headers",
        requests.len(),
        "time",
        "status",
        "path"
    );
    let shown: Vec<(usize, &crate::mock::Recorded)> = if requests.len() <= 6 {
        requests.iter().enumerate().collect()
    } else {
        let n = requests.len();
        requests
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 4 || *i >= n - 2)
            .collect()
    };
    let mut last = 0;
    for (i, r) in shown {
        if i > last + 1 {
            let _ = writeln!(out, "  {:>8}  ({} more)", "...", i - last - 1);
        }
        last = i;
        let headers: Vec<String> = r
            .headers
            .iter()
            .filter(|(n, _)| !["accept-encoding", "user-agent", "host"].contains(&n.as_str()))
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        let _ = writeln!(
            out,
            "  {:>7.1}s  {:<6} {:<28} {}",
            r.at_ms as f64 / 1000.0,
            r.status,
            r.path,
            headers.join(", ")
        );
    }
}

/// The JSON report of a scenario run.
pub fn run_json(results: &[ScenarioResult]) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        schema: &'static str,
        passed: usize,
        failed: usize,
        interrupted: usize,
        scenarios: &'a [ScenarioResult],
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let interrupted = results
        .iter()
        .filter(|r| r.live.as_ref().is_some_and(|l| l.interrupted.is_some()))
        .count();
    let redactor = run_redactor(results);
    let mut value = serde_json::to_value(Doc {
        schema: "keda-conformance/run/v1",
        passed,
        failed: results.len() - passed - interrupted,
        interrupted,
        scenarios: results,
    })
    .unwrap_or_default();
    // Redacted string by string before serializing (escaping), and the text once more.
    redactor.apply_json(&mut value);
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    redactor.apply(&text)
}

/// The JUnit report of a scenario run: per scenario and Helm major (the class name), one
/// test case named by what the scenario proves, and one per claim it makes (skipped when its
/// step was never reached).
pub fn run_junit(results: &[ScenarioResult]) -> String {
    // Every text is redacted before quick_junit escapes it for XML, and the XML once more.
    let redactor = run_redactor(results);
    let red = |t: String| redactor.apply(&t);
    let mut suite = quick_junit::TestSuite::new("keda-conformance run");
    for r in results {
        let name = r.proves.clone().unwrap_or_else(|| r.name.clone());
        let mut case = if r.passed {
            quick_junit::TestCase::new(name, quick_junit::TestCaseStatus::success())
        } else {
            let mut st =
                quick_junit::TestCaseStatus::non_success(quick_junit::NonSuccessKind::Failure);
            st.set_message(red(r.reasons.join("; ")));
            if let Some(rep) = &r.render {
                st.set_description(red(rep
                    .verdict
                    .findings
                    .iter()
                    .filter(|f| f.status == Status::Fail)
                    .map(|f| {
                        format!(
                            "{} {}: {} {}",
                            f.check,
                            f.subject,
                            f.message,
                            f.evidence.join(" | ")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")));
            }
            quick_junit::TestCase::new(name, st)
        };
        case.set_classname(r.name.clone());
        case.set_time(r.elapsed);
        if !r.description.is_empty() {
            case.set_system_out(r.description.clone());
        }
        suite.add_test_case(case);
        for claim in &r.claims {
            let status = match &claim.verdict {
                Verdict::Held(_) => quick_junit::TestCaseStatus::success(),
                Verdict::Broken(evidence) => {
                    let mut st = quick_junit::TestCaseStatus::non_success(
                        quick_junit::NonSuccessKind::Failure,
                    );
                    st.set_message(red(evidence.clone()));
                    st
                }
                Verdict::NotReached => {
                    let mut st = quick_junit::TestCaseStatus::skipped();
                    st.set_message("not reached: an earlier step failed or did not run");
                    st
                }
            };
            let mut c = quick_junit::TestCase::new(claim.name.clone(), status);
            c.set_classname(r.name.clone());
            if let Verdict::Held(detail) = &claim.verdict {
                c.set_system_out(red(detail.clone()));
            }
            suite.add_test_case(c);
        }
    }
    let mut report = quick_junit::Report::new("keda-conformance");
    report.add_test_suite(suite);
    let text = report.to_string().unwrap_or_default();
    redactor.apply(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_interpreted() {
        assert_eq!(
            terminal_safe("a\u{1b}[31mred\rb\nc\td"),
            "a\\u{1b}[31mred\\u{d}b\nc\td"
        );
    }
    use crate::claim::Claim;

    fn result(passed: bool, claims: Vec<Claim>) -> ScenarioResult {
        ScenarioResult {
            name: "fault [helm 3]".into(),
            description: "a fault".into(),
            proves: Some("500 from metrics endpoint triggers fallback".into()),
            claims,
            file: "suites/default/fault.yaml".into(),
            passed,
            reasons: if passed {
                Vec::new()
            } else {
                vec!["expect_condition: Fallback never True".into()]
            },
            render: None,
            live: None,
            live_not_run: false,
            elapsed: std::time::Duration::from_secs(3),
        }
    }

    #[test]
    fn junit_has_a_case_per_scenario_and_per_claim_named_by_what_it_proves() {
        let xml = run_junit(&[result(
            false,
            vec![
                Claim::held(
                    "header X-Scope-OrgID reaches the metrics endpoint",
                    "tenant-a",
                ),
                Claim::broken(
                    "ScaledObject condition Fallback is True",
                    "never True in 90s",
                ),
                Claim::not_reached("workload reaches 3 replicas and holds them"),
            ],
        )]);
        for name in [
            r#"name="500 from metrics endpoint triggers fallback""#,
            r#"name="header X-Scope-OrgID reaches the metrics endpoint""#,
            r#"name="ScaledObject condition Fallback is True""#,
            r#"name="workload reaches 3 replicas and holds them""#,
        ] {
            assert!(xml.contains(name), "{name} missing in {xml}");
        }
        assert_eq!(xml.matches("<failure").count(), 2, "{xml}");
        assert_eq!(xml.matches("<skipped").count(), 1, "{xml}");
        assert!(xml.contains(r#"classname="fault [helm 3]""#), "{xml}");
    }

    #[test]
    fn text_marks_each_claim() {
        let text = run_text(
            &[result(
                true,
                vec![Claim::held(
                    "header X-Scope-OrgID reaches the metrics endpoint",
                    "tenant-a",
                )],
            )],
            false,
        );
        assert!(
            text.contains("header X-Scope-OrgID reaches the metrics endpoint: tenant-a"),
            "{text}"
        );
    }
}
