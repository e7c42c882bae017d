//! The mutation report in text, JSON (schema `keda-conformance/mutate/v1`) and JUnit XML
//! (one test case per non-equivalent mutant: killed passes, a survivor fails, an errored
//! mutant is an error). Every output passes through the run's redactor.

use super::operators::{self, Mutant};
use super::{MutantResult, MutationReport, Status};
use serde::Serialize;
use std::fmt::Write as _;

/// Output format of `mutate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// JSON, schema `keda-conformance/mutate/v1`.
    Json,
    /// JUnit XML: a test case per killed, surviving or errored mutant.
    Junit,
}

/// Counts of one operator's mutants.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OperatorRow {
    /// The operator.
    pub name: &'static str,
    /// The regression it models.
    pub models: &'static str,
    /// Killed.
    pub killed: usize,
    /// Survived.
    pub survived: usize,
    /// Equivalent.
    pub equivalent: usize,
    /// Errored.
    pub errored: usize,
}

/// One row per operator, in catalog order.
pub fn by_operator(r: &MutationReport) -> Vec<OperatorRow> {
    operators::OPERATORS
        .iter()
        .map(|o| {
            let mut row = OperatorRow {
                name: o.name,
                models: o.models,
                ..OperatorRow::default()
            };
            for m in r.mutants.iter().filter(|m| m.mutant.operator == o.name) {
                match m.status {
                    Status::Killed => row.killed += 1,
                    Status::Survived => row.survived += 1,
                    Status::Equivalent => row.equivalent += 1,
                    Status::Errored => row.errored += 1,
                }
            }
            row
        })
        .collect()
}

/// `file:line`.
fn location(m: &Mutant) -> String {
    format!("{}:{}", m.file, m.line)
}

/// The unified-style diff of a mutant: `- before` and `+ after` (no `+` line for a deletion).
pub fn diff(m: &Mutant) -> String {
    match &m.after {
        Some(after) => format!("- {}\n+ {}", m.before, after),
        None => format!("- {}", m.before),
    }
}

/// The score as text: `91.7% (33 of 36 non-equivalent mutants killed)`.
pub fn score_text(r: &MutationReport) -> String {
    let c = r.counts();
    match r.score() {
        Some(s) => format!(
            "{s:.1}% ({} of {} non-equivalent mutants killed)",
            c.killed,
            c.killed + c.survived
        ),
        None => "n/a (no mutant changed the render)".into(),
    }
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}\n"))
        .collect::<String>()
}

fn hint_of(name: &str) -> &'static str {
    operators::by_name(name).map_or("", |o| o.hint)
}

/// The text report: header, counts and score, a row per operator, then every survivor with
/// its diff and why nothing caught it (and every killed mutant when `verbose`).
pub fn text(r: &MutationReport, verbose: bool) -> String {
    let c = r.counts();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mutate {} · {} · judges: {}",
        r.chart,
        r.helm,
        r.judges.join(", ")
    );
    out.push_str("templates under test:\n");
    for g in &r.regions {
        let roles: Vec<&str> = g.roles.iter().map(|x| x.label()).collect();
        let _ = match &g.define {
            Some(d) => writeln!(
                out,
                "  {}:{}-{} define {d:?} ({})",
                g.file,
                g.first_line,
                g.last_line,
                roles.join(", ")
            ),
            None => writeln!(out, "  {} ({})", g.file, roles.join(", ")),
        };
    }
    if !r.original_failures.is_empty() {
        out.push_str("the original already fails (these kill no mutant):\n");
        for f in &r.original_failures {
            let _ = writeln!(out, "  {f}");
        }
    }
    let _ = writeln!(
        out,
        "mutants: {} generated: {} killed, {} survived, {} equivalent (dropped), {} errored",
        c.generated, c.killed, c.survived, c.equivalent, c.errored
    );
    let _ = writeln!(out, "mutation score: {}", score_text(r));
    if let Some(l) = &r.live {
        let _ = writeln!(
            out,
            "live tier: {} render survivor(s) run through {} live scenario(s): {} killed live, {:.0}s{}",
            l.survivors_judged,
            l.scenarios.len(),
            l.killed,
            l.seconds,
            if l.interrupted { " (interrupted)" } else { "" }
        );
        for f in &l.original_failures {
            let _ = writeln!(out, "  fails on the original (judges nothing): {f}");
        }
    }
    let _ = writeln!(
        out,
        "\n{:<28} {:>7} {:>9} {:>11} {:>8}",
        "operator", "killed", "survived", "equivalent", "errored"
    );
    for row in by_operator(r) {
        let _ = writeln!(
            out,
            "{:<28} {:>7} {:>9} {:>11} {:>8}",
            row.name, row.killed, row.survived, row.equivalent, row.errored
        );
    }
    let section = |out: &mut String, title: &str, status: Status| {
        let ms: Vec<&MutantResult> = r.mutants.iter().filter(|m| m.status == status).collect();
        if ms.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n{title} ({}):", ms.len());
        for m in ms {
            let _ = writeln!(
                out,
                "  #{} {} {}",
                m.mutant.id,
                m.mutant.operator,
                location(&m.mutant)
            );
            out.push_str(&indent(&diff(&m.mutant), "    "));
            match status {
                Status::Survived => {
                    if let Some(why) = &m.reason {
                        let _ = writeln!(out, "    why nothing caught it: {why}");
                    }
                    if !m.changes.is_empty() {
                        let _ = writeln!(out, "    changed: {}", m.changes.join("; "));
                    }
                    let _ = writeln!(out, "    would catch it: {}", hint_of(m.mutant.operator));
                }
                _ => {
                    let by = m
                        .killed_by
                        .as_deref()
                        .map(|j| format!("{j}: "))
                        .unwrap_or_default();
                    if let Some(why) = &m.reason {
                        let _ = writeln!(out, "    {by}{why}");
                    }
                }
            }
        }
    };
    section(&mut out, "surviving mutants", Status::Survived);
    section(&mut out, "errored mutants", Status::Errored);
    if verbose {
        section(&mut out, "killed mutants", Status::Killed);
        section(&mut out, "equivalent mutants", Status::Equivalent);
    }
    let _ = writeln!(
        out,
        "\n{} renders of {} mutants in {:.1}s ({} at once; original and templates: {:.1}s)",
        r.timing.renders,
        c.generated,
        r.timing.mutants_seconds,
        r.timing.jobs,
        r.timing.baseline_seconds
    );
    r.redactor.apply(&out)
}

#[derive(Serialize)]
struct JsonDoc<'a> {
    schema: &'static str,
    #[serde(flatten)]
    report: &'a MutationReport,
    counts: super::Counts,
    score: Option<f64>,
    operators: Vec<OperatorRow>,
}

/// The JSON report (schema `keda-conformance/mutate/v1`).
pub fn json(r: &MutationReport) -> String {
    let doc = JsonDoc {
        schema: "keda-conformance/mutate/v1",
        report: r,
        counts: r.counts(),
        score: r.score(),
        operators: by_operator(r),
    };
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    r.redactor.apply_json(&mut value);
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    r.redactor.apply(&text)
}

/// The JUnit report: one test suite, a test case per non-equivalent mutant (named
/// `#id operator file:line`, class `keda-conformance.mutate.<operator>`).
pub fn junit(r: &MutationReport) -> String {
    let red = |t: &str| r.redactor.apply(t);
    let mut suite = quick_junit::TestSuite::new(format!("keda-conformance mutate {}", r.chart));
    for m in r.mutants.iter().filter(|m| m.status != Status::Equivalent) {
        let name = format!(
            "#{} {} {}",
            m.mutant.id,
            m.mutant.operator,
            location(&m.mutant)
        );
        let status = match m.status {
            Status::Killed => quick_junit::TestCaseStatus::success(),
            Status::Survived => {
                let mut st =
                    quick_junit::TestCaseStatus::non_success(quick_junit::NonSuccessKind::Failure);
                st.set_message(red(&format!(
                    "survived: {}",
                    m.reason.as_deref().unwrap_or("every judge passed")
                )));
                st.set_description(red(&format!(
                    "{}\nchanged: {}\nwould catch it: {}",
                    diff(&m.mutant),
                    m.changes.join("; "),
                    hint_of(m.mutant.operator)
                )));
                st
            }
            _ => {
                let mut st =
                    quick_junit::TestCaseStatus::non_success(quick_junit::NonSuccessKind::Error);
                st.set_message(red(m.reason.as_deref().unwrap_or("errored")));
                st.set_description(red(&diff(&m.mutant)));
                st
            }
        };
        let mut case = quick_junit::TestCase::new(name, status);
        case.set_classname(format!("keda-conformance.mutate.{}", m.mutant.operator));
        if m.status == Status::Killed {
            case.set_system_out(red(&format!(
                "{}\nkilled by {}: {}",
                diff(&m.mutant),
                m.killed_by.as_deref().unwrap_or("?"),
                m.reason.as_deref().unwrap_or("")
            )));
        }
        suite.add_test_case(case);
    }
    let mut report = quick_junit::Report::new("keda-conformance");
    report.add_test_suite(suite);
    red(&report.to_string().unwrap_or_default())
}
