//! `repro`'s verdict as Markdown, for a bug report or a pull request.

use crate::checks::Status;
use crate::render::RenderReport;
use std::fmt::Write as _;

/// The verdict as Markdown: what the chart rendered, what KEDA sent, what the backend
/// answered, what KEDA concluded, and where the timeline picture is.
pub fn verdict_markdown(
    render: &RenderReport,
    live: Option<&crate::live::run::LiveOutcome>,
    passed: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### keda-conformance repro: {}",
        if passed {
            "autoscaling works as configured"
        } else {
            "autoscaling does NOT work as configured"
        }
    );
    let _ = writeln!(
        out,
        "\n**Chart rendered** ({}, {}):",
        render.chart, render.helm
    );
    let bound = |n: Option<i64>| n.map_or_else(|| "null".to_string(), |n| n.to_string());
    for unit in render.autoscaled() {
        let _ = writeln!(
            out,
            "- ScaledObject `{}` -> {} `{}`, replicas {}..{}",
            unit.scaled_object,
            unit.workload.kind,
            unit.workload.name,
            bound(unit.min_replicas),
            bound(unit.max_replicas)
        );
    }
    for req in &render.verdict.requests {
        let headers: Vec<String> = req
            .request
            .headers
            .iter()
            .map(|(n, v)| format!("`{n}: {v}`"))
            .collect();
        let _ = writeln!(
            out,
            "- {}: `GET {}` with {}",
            req.subject,
            req.request.url,
            if headers.is_empty() {
                "no custom headers".into()
            } else {
                headers.join(", ")
            }
        );
    }
    let findings = |status: Status| -> Vec<String> {
        render
            .verdict
            .findings
            .iter()
            .filter(|f| f.status == status)
            .map(|f| {
                // A failure carries its evidence (Helm's own message, the template line, the
                // values key), so the maintainer sees the cause, not only the check's name.
                let mut line = format!("- **{}** {}: {}", f.check, f.subject, f.message);
                if status == Status::Fail {
                    for e in f
                        .evidence
                        .iter()
                        .filter(|e| !e.starts_with("command: "))
                        .take(8)
                    {
                        let e: String = e.chars().take(600).collect();
                        let _ = write!(line, "\n  - {}", e.replace('\n', "\n    "));
                    }
                }
                line
            })
            .collect()
    };
    let failed = findings(Status::Fail);
    if failed.is_empty() {
        let _ = writeln!(out, "- every render check passes");
    } else {
        let _ = writeln!(out, "\n**Render checks that fail:**\n{}", failed.join("\n"));
    }
    let warnings = findings(Status::Warn);
    if !warnings.is_empty() {
        let _ = writeln!(
            out,
            "\n**Warnings** (not failures on their own; the live run shows whether they bite):\n{}",
            warnings.join("\n")
        );
    }
    if let Some(l) = live {
        if let Some(first) = l.requests.first() {
            let headers: Vec<String> = first
                .headers
                .iter()
                .filter(|(n, _)| n != "host")
                .map(|(n, v)| format!("`{n}: {v}`"))
                .collect();
            let _ = writeln!(out, "\n**KEDA sent** {} requests to the backend (recorded by a proxy); the first: `{} {}` with {}; answered {}.", l.requests.len(), first.method, first.path, headers.join(", "), first.status);
        } else {
            let _ = writeln!(out, "\n**KEDA sent** no request to the backend.");
        }
        let _ = writeln!(out, "\n**Observed:**");
        for o in &l.observations {
            let _ = writeln!(out, "- {o}");
        }
        for r in &l.reasons {
            let _ = writeln!(out, "- **failed** {r}");
        }
        if let Some(s) = l.timeline.last() {
            let answer = match (&s.metric, &s.metric_error) {
                (Some(v), _) => format!("value {v}"),
                (_, Some(e)) => format!("an error KEDA reports: {e}"),
                _ => "nothing".into(),
            };
            let _ = writeln!(out, "\n**Backend answered** the trigger's query (with the trigger's headers): {answer}; oracle expects {} replicas; the workload has {} Ready.", s.expected.map(|e| e.to_string()).unwrap_or_else(|| "no computable".into()), s.ready);
        }
        let concluded: Vec<&str> = l
            .final_state
            .lines()
            .filter(|line| !line.trim_start().starts_with("status:"))
            .collect();
        let _ = writeln!(
            out,
            "\n**KEDA concluded:**\n```\n{}\n```",
            concluded.join("\n")
        );
        if let Some(d) = &l.evidence_dir {
            let _ = writeln!(
                out,
                "\nTimeline picture: `{}`",
                d.join("timeline.svg").display()
            );
        }
    }
    out
}
