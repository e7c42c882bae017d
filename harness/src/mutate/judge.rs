//! The judges of a mutant: the render tier with the command line's values and expectations,
//! and the render step of every suite scenario whose chart is the chart under test. A judge
//! kills a mutant when its verdict on the mutant fails in a way it did not on the original.

use crate::chart::helm::HelmMajor;
use crate::checks::Status;
use crate::error::InputError;
use crate::keda::manifest;
use crate::render::{self, RenderOptions, RenderReport};
use crate::scenario::{self, Scenario, Step};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One way of judging a chart.
#[derive(Debug, Clone)]
pub struct Judge {
    /// Shown in reports: `command line` or `scenario <name> [helm N]`.
    pub name: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Command(Box<RenderOptions>),
    Scenario(Box<Scenario>, HelmMajor),
}

/// A judge's verdict on one render of the chart.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What Helm rendered (empty when it failed).
    pub rendered: String,
    /// Each failure, by a stable key (a check id, or a scenario's reason), with its detail.
    pub failures: BTreeMap<String, String>,
    /// The render report (kept for the original, to build the redactor).
    pub report: Option<RenderReport>,
    /// The rendered objects as the API server would store them (see [`objects`]); filled
    /// for the original only.
    pub objects: Option<Vec<(String, Value)>>,
}

impl Judge {
    /// The render tier with the command line's options.
    pub fn command(opts: RenderOptions) -> Self {
        Self {
            name: "command line".into(),
            kind: Kind::Command(Box::new(opts)),
        }
    }

    /// A scenario's render step under one Helm major.
    pub fn scenario(s: Scenario, helm: HelmMajor) -> Self {
        Self {
            name: format!("scenario {} [helm {}]", s.name, helm.number()),
            kind: Kind::Scenario(Box::new(s), helm),
        }
    }

    /// Whether the command-line judge expects a ScaledObject; no effect on scenarios.
    pub fn expect_scaled_object(&mut self, yes: bool) {
        if let Kind::Command(o) = &mut self.kind {
            o.expect_scaled_object = yes;
        }
    }

    /// Judges the chart at `chart_dir`.
    ///
    /// # Errors
    /// An [`InputError`] when the render cannot start (values, Helm, caches).
    pub fn run(&self, chart_dir: &Path) -> Result<Verdict, InputError> {
        match &self.kind {
            Kind::Command(o) => {
                let mut opts = (**o).clone();
                opts.chart = chart_dir.to_path_buf();
                let report = render::render(&opts)?;
                let failures = report
                    .verdict
                    .findings
                    .iter()
                    .filter(|f| f.status == Status::Fail)
                    .map(|f| {
                        (
                            f.check.to_string(),
                            format!("{} {}: {}", f.check, f.subject, first_line(&f.message)),
                        )
                    })
                    .collect();
                Ok(Verdict {
                    rendered: report.rendered.clone(),
                    failures,
                    report: Some(report),
                    objects: None,
                })
            }
            Kind::Scenario(s, helm) => {
                let mut s = (**s).clone();
                s.chart = chart_dir.to_path_buf();
                let result = crate::engine::run(std::slice::from_ref(&s), Some(*helm), None)?
                    .into_iter()
                    .next();
                let Some(result) = result else {
                    return Ok(Verdict {
                        rendered: String::new(),
                        failures: BTreeMap::new(),
                        report: None,
                        objects: None,
                    });
                };
                let failures = result
                    .reasons
                    .iter()
                    .map(|r| (r.clone(), first_line(r).to_string()))
                    .collect();
                Ok(Verdict {
                    rendered: result
                        .render
                        .as_ref()
                        .map(|r| r.rendered.clone())
                        .unwrap_or_default(),
                    failures,
                    report: result.render,
                    objects: None,
                })
            }
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Why `mutant` fails where `original` did not: the first failure it has that the original
/// does not.
pub fn new_failure<'a>(original: &Verdict, mutant: &'a Verdict) -> Option<&'a str> {
    mutant
        .failures
        .iter()
        .find(|(k, _)| !original.failures.contains_key(*k))
        .map(|(_, detail)| detail.as_str())
}

/// The render steps of the scenarios in `suites` whose chart is `chart`, for `helm` (the
/// scenarios that do not run on that major are left out).
///
/// # Errors
/// The suite's [`InputError`] (a missing directory, an invalid scenario).
pub fn scenarios_for(
    chart: &Path,
    suites: &[PathBuf],
    helm: HelmMajor,
) -> Result<Vec<Judge>, InputError> {
    let renders = |s: &Scenario| matches!(s.steps.first(), Some(Step::Render(_)));
    Ok(suite_scenarios(chart, suites, helm, renders)?
        .into_iter()
        .map(|s| Judge::scenario(s, helm))
        .collect())
}

/// The scenarios in `suites` that install `chart`, run on `helm` and pass `keep`.
///
/// # Errors
/// The suite's [`InputError`] (a missing directory, an invalid scenario).
pub fn suite_scenarios(
    chart: &Path,
    suites: &[PathBuf],
    helm: HelmMajor,
    keep: impl Fn(&Scenario) -> bool,
) -> Result<Vec<Scenario>, InputError> {
    let Ok(chart) = std::fs::canonicalize(chart) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for suite in suites {
        for s in scenario::load_suite(suite)? {
            let same_chart = std::fs::canonicalize(&s.chart).is_ok_and(|c| c == chart);
            let on_major = s.helm.iter().any(|h| h.0 == helm);
            if same_chart && on_major && keep(&s) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// A value without its null map entries: what the API server keeps of it (a null field of a
/// built-in type decodes as unset; a CRD prunes nulls its schema does not declare nullable).
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k, without_nulls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// The objects of a rendered stream as the API server would store them, by `Kind/name`, in a
/// stable order (document order, quoting, comments and null fields do not count); `None` when
/// the stream does not parse.
pub fn objects(rendered: &str) -> Option<Vec<(String, Value)>> {
    let mut out: Vec<(String, Value)> = manifest::split(rendered)
        .ok()?
        .into_iter()
        .map(|m| (format!("{}/{}", m.kind, m.name), without_nulls(m.body)))
        .collect();
    out.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.to_string().cmp(&b.1.to_string()))
    });
    Some(out)
}

/// What changed between two renders, as `Kind/name: path (added|removed|changed)`, at most
/// `limit` entries (and a count of the rest).
pub fn changes(before: &str, after: &str, limit: usize) -> Vec<String> {
    let (Some(a), Some(b)) = (objects(before), objects(after)) else {
        return vec!["the rendered stream no longer parses as YAML".into()];
    };
    let index = |ms: Vec<(String, Value)>| -> BTreeMap<String, Value> { ms.into_iter().collect() };
    let (a, b) = (index(a), index(b));
    let mut out = Vec::new();
    for (k, va) in &a {
        match b.get(k) {
            None => out.push(format!("{k} is no longer rendered")),
            Some(vb) => diff(va, vb, k, "", &mut out),
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("{k} is newly rendered"));
    }
    if out.is_empty() {
        out.push(
            "only quoting, whitespace, comments, null fields or document order changed".into(),
        );
    }
    if out.len() > limit {
        let rest = out.len() - limit;
        out.truncate(limit);
        out.push(format!("and {rest} more"));
    }
    out
}

fn diff(a: &Value, b: &Value, object: &str, path: &str, out: &mut Vec<String>) {
    let at = |p: &str| {
        if p.is_empty() {
            object.to_string()
        } else {
            format!("{object}: {p}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, vx) in x {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match y.get(k) {
                    Some(vy) => diff(vx, vy, object, &p, out),
                    None => out.push(format!("{} removed", at(&p))),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.push(format!("{} added", at(&p)));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (vx, vy)) in x.iter().zip(y).enumerate() {
                diff(vx, vy, object, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => {
            let how = if a.is_string() != b.is_string() || a.is_object() != b.is_object() {
                "changed type"
            } else {
                "changed"
            };
            out.push(format!("{} {how}", at(path)));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_objects_and_paths() {
        let a = "---\nkind: Deployment\nmetadata: {name: w}\nspec: {selector: {}}\n---\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1', b: x}\n";
        let b = "---\nkind: Deployment\nmetadata: {name: w}\nspec: {replicas: 1, selector: {}}\n---\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: 1}\n---\nkind: Secret\nmetadata: {name: s}\n";
        assert_eq!(
            changes(a, b, 10),
            vec![
                "ConfigMap/c: data.a changed type",
                "ConfigMap/c: data.b removed",
                "Deployment/w: spec.replicas added",
                "Secret/s is newly rendered",
            ]
        );
        assert_eq!(changes(a, b, 1).len(), 2);
        let quoted = "---\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1', b: \"x\"}\n---\nkind: Deployment\nmetadata: {name: w}\nspec: {selector: {}, replicas: null}\n";
        assert_eq!(
            objects(a),
            objects(quoted),
            "quoting, order and nulls do not count"
        );
        assert_eq!(
            changes(a, &format!("# c\n{a}"), 3),
            vec!["only quoting, whitespace, comments, null fields or document order changed"]
        );
    }

    #[test]
    fn only_new_failures_kill() {
        let v = |keys: &[&str]| Verdict {
            rendered: String::new(),
            failures: keys
                .iter()
                .map(|k| (k.to_string(), format!("{k} failed")))
                .collect(),
            report: None,
            objects: None,
        };
        assert_eq!(new_failure(&v(&["a"]), &v(&["a"])), None);
        assert_eq!(new_failure(&v(&["a"]), &v(&["a", "b"])), Some("b failed"));
        assert_eq!(new_failure(&v(&["a", "b"]), &v(&[])), None);
    }
}
