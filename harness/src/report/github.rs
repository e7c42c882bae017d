//! GitHub Actions' language: workflow-command annotations (`::error file=..,line=..::`) that
//! point at the values file line (or the template) that causes a render finding, `::group::`
//! around long text, and a Markdown summary for `$GITHUB_STEP_SUMMARY`. Everything is
//! redacted before it is escaped.

use crate::chart::values::Segment;
use crate::checks::{Finding, Status};
use crate::redact::Redactor;
use crate::render::RenderReport;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Escapes a workflow command's message (`%`, CR and LF), as the runner expects.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value (the message's escapes plus `:` and `,`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Where an annotation points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The file, as the user named it (relative to the workspace when they passed it so).
    pub file: PathBuf,
    /// 1-based line.
    pub line: Option<usize>,
}

/// One annotation: `::error` or `::warning` with an optional place and a title.
pub fn annotation(level: &str, place: Option<&Place>, title: &str, message: &str) -> String {
    let mut props = Vec::new();
    if let Some(p) = place {
        props.push(format!(
            "file={}",
            escape_property(&p.file.display().to_string())
        ));
        if let Some(l) = p.line {
            props.push(format!("line={l}"));
        }
    }
    props.push(format!("title={}", escape_property(title)));
    format!("::{level} {}::{}", props.join(","), escape_data(message))
}

/// The values key paths a finding names (`compactor.autoscaling.keda.triggers[0].metadata`),
/// most specific first.
fn values_paths(f: &Finding) -> Vec<Vec<Segment>> {
    let mut out: Vec<Vec<Segment>> = Vec::new();
    let texts = std::iter::once(f.subject.as_str())
        .chain(std::iter::once(f.message.as_str()))
        .chain(f.evidence.iter().map(String::as_str));
    for text in texts {
        for word in text.split(|c: char| c.is_whitespace() || "`'\"(),;:".contains(c)) {
            if let Some(path) = parse_path(word.trim_end_matches('.')) {
                if path.len() >= 2 && !out.contains(&path) {
                    out.push(path);
                }
            }
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.len()));
    out
}

/// `a.b[0].c` as segments; `None` for anything else.
fn parse_path(word: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for part in word.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return None;
        }
        out.push(Segment::Key(key.to_string()));
        while !rest.is_empty() {
            let (index, after) = rest.split_once(']')?;
            out.push(Segment::Index(index.parse().ok()?));
            rest = after.strip_prefix('[').unwrap_or(after);
            if !after.is_empty() && !after.starts_with('[') {
                return None;
            }
        }
    }
    Some(out)
}

/// Where a finding comes from: the values file line that sets a key it names, else the
/// template that renders the object it is about (at the line naming the field), else the
/// last values file.
pub fn place_of(
    f: &Finding,
    report: &RenderReport,
    values: &[PathBuf],
    chart: &Path,
) -> Option<Place> {
    for path in values_paths(f) {
        if let Some((file, line)) = crate::chart::helm_error::locate(values, &path) {
            return Some(Place {
                file: file.to_path_buf(),
                line: Some(line),
            });
        }
    }
    let object = f.subject.split_whitespace().next().unwrap_or_default();
    if let Some((kind, name)) = object.split_once('/') {
        if let Some(m) = report
            .manifests
            .iter()
            .find(|m| m.kind == kind && m.name == name)
        {
            // `# Source: <chart>/templates/x.yaml`: relative to the chart directory.
            let relative = m
                .source
                .split_once('/')
                .map(|(_, r)| r)
                .unwrap_or(&m.source);
            let file = chart.join(relative);
            if file.is_file() {
                let field = values_paths(f).first().and_then(|p| match p.last() {
                    Some(Segment::Key(k)) => Some(k.clone()),
                    _ => None,
                });
                let line = field.and_then(|k| {
                    std::fs::read_to_string(&file).ok().and_then(|t| {
                        t.lines()
                            .position(|l| {
                                l.contains(&format!("{k}:")) || l.contains(&format!(".{k}"))
                            })
                            .map(|i| i + 1)
                    })
                });
                return Some(Place {
                    file,
                    line: line.or(Some(1)),
                });
            }
        }
    }
    values.last().map(|v| Place {
        file: v.clone(),
        line: None,
    })
}

/// The annotations of a render: one per failing (`::error`) or warning (`::warning`) finding.
pub fn render_annotations(
    report: &RenderReport,
    values: &[PathBuf],
    chart: &Path,
    redactor: &Redactor,
) -> String {
    let mut out = String::new();
    for f in &report.verdict.findings {
        let level = match f.status {
            Status::Fail => "error",
            Status::Warn => "warning",
            _ => continue,
        };
        let place = place_of(f, report, values, chart);
        let message = redactor.apply(&format!("{}: {}", f.subject, f.message));
        let _ = writeln!(
            out,
            "{}",
            annotation(
                level,
                place.as_ref(),
                &format!("keda-conformance {}", f.check),
                &message
            )
        );
    }
    out
}

/// The Markdown summary of a render for `$GITHUB_STEP_SUMMARY`.
pub fn render_summary(report: &RenderReport, redactor: &Redactor) -> String {
    let mut out = String::new();
    let verdict = match report.status() {
        Status::Fail => "fails",
        _ => "passes",
    };
    let _ = writeln!(
        out,
        "### keda-conformance render: {} {verdict}\n\n{} · release {} in {}\n\n| check | status | subject | finding |\n|---|---|---|---|",
        report.chart, report.helm, report.release, report.namespace
    );
    for f in &report.verdict.findings {
        let cell = |s: &str| redactor.apply(s).replace('|', "\\|").replace('\n', " ");
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            f.check,
            status_word(f.status),
            cell(&f.subject),
            cell(&f.message)
        );
    }
    out
}

/// The annotations of a run: one `::error` per failed scenario at its scenario file, with
/// every broken claim and reason.
pub fn run_annotations(results: &[crate::engine::ScenarioResult]) -> String {
    let mut out = String::new();
    for r in results.iter().filter(|r| !r.passed) {
        let renders: Vec<&RenderReport> = r.render.iter().collect();
        let redactor = crate::redact::for_renders(&renders);
        let broken: Vec<String> = r
            .claims
            .iter()
            .filter_map(|c| match &c.verdict {
                crate::claim::Verdict::Broken(e) => Some(format!("{}: {e}", c.name)),
                _ => None,
            })
            .chain(r.reasons.iter().cloned())
            .collect();
        let place = Place {
            file: PathBuf::from(&r.file),
            line: Some(1),
        };
        let _ = writeln!(
            out,
            "{}",
            annotation(
                "error",
                Some(&place),
                &format!("keda-conformance {}", r.name),
                &redactor.apply(&broken.join("\n")),
            )
        );
    }
    out
}

/// The Markdown summary of a run for `$GITHUB_STEP_SUMMARY`: one row per scenario.
pub fn run_summary(results: &[crate::engine::ScenarioResult]) -> String {
    let passed = results.iter().filter(|r| r.passed).count();
    let mut out = format!(
        "### keda-conformance: {passed} of {} scenarios passed\n\n| scenario | verdict | proves | first failure |\n|---|---|---|---|\n",
        results.len()
    );
    for r in results {
        let renders: Vec<&RenderReport> = r.render.iter().collect();
        let redactor = crate::redact::for_renders(&renders);
        let cell = |s: &str| redactor.apply(s).replace('|', "\\|").replace('\n', " ");
        let first = r
            .claims
            .iter()
            .find_map(|c| match &c.verdict {
                crate::claim::Verdict::Broken(e) => Some(format!("{}: {e}", c.name)),
                _ => None,
            })
            .or_else(|| r.reasons.first().cloned())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(&r.name),
            if r.passed { "pass" } else { "**FAIL**" },
            cell(r.proves.as_deref().unwrap_or("")),
            cell(&first)
        );
    }
    out
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Info => "info",
        Status::Warn => "warn",
        Status::Fail => "FAIL",
    }
}

/// Appends `text` to the file `$GITHUB_STEP_SUMMARY` names, when it names one.
///
/// # Errors
/// The I/O error when the file cannot be appended to.
pub fn append_step_summary(text: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(false);
    };
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_properties_are_escaped_as_the_runner_reads_them() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
        let a = annotation(
            "error",
            Some(&Place {
                file: PathBuf::from("ci/a,b.yaml"),
                line: Some(7),
            }),
            "keda-conformance trigger.expected-header",
            "line one\nline two",
        );
        assert_eq!(
            a,
            "::error file=ci/a%2Cb.yaml,line=7,title=keda-conformance trigger.expected-header::line one%0Aline two"
        );
    }

    #[test]
    fn paths_are_read_from_a_finding_most_specific_first() {
        let f = Finding::new(
            "values.unread",
            Status::Fail,
            "values compactor.autoscalling",
            "the chart never reads compactor.autoscalling.keda.triggers[0].metadata: it is absent",
        );
        let paths = values_paths(&f);
        assert_eq!(
            crate::chart::values::format_path(&paths[0]),
            "compactor.autoscalling.keda.triggers[0].metadata"
        );
        assert_eq!(
            crate::chart::values::format_path(&paths[1]),
            "compactor.autoscalling"
        );
        assert_eq!(parse_path("a[x]"), None);
        assert_eq!(
            parse_path("plain"),
            Some(vec![Segment::Key("plain".into())])
        );
    }

    #[test]
    fn a_finding_points_at_the_values_line_that_sets_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("values.yaml");
        std::fs::write(&v, "compactor:\n  autoscalling:\n    enabled: true\n").unwrap();
        let f = Finding::new(
            "values.unread",
            Status::Fail,
            "values compactor.autoscalling",
            "the chart never reads compactor.autoscalling",
        );
        let report = RenderReport {
            chart: "c 1.0.0".into(),
            helm: "helm 3".into(),
            release: "tempo".into(),
            capabilities: Default::default(),
            gated_api_versions: Default::default(),
            namespace: "tempo".into(),
            verdict: Default::default(),
            rendered: String::new(),
            manifests: Vec::new(),
            helm_time: Default::default(),
        };
        let place = place_of(&f, &report, std::slice::from_ref(&v), dir.path()).expect("placed");
        assert_eq!(place.file, v);
        assert_eq!(place.line, Some(2));
    }
}
