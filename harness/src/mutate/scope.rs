//! Which template lines touch autoscaling: the files whose rendered objects (Helm's
//! `# Source:`) are a ScaledObject, a TriggerAuthentication, a HorizontalPodAutoscaler or the
//! workload one of them scales, and the `define` blocks of helper files (`_helpers.tpl`) those
//! files include that render such objects.

use super::gotmpl;
use crate::keda::manifest::Manifest;
use regex::Regex;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

/// What a region of a template renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A KEDA ScaledObject.
    ScaledObject,
    /// A KEDA TriggerAuthentication or ClusterTriggerAuthentication.
    TriggerAuthentication,
    /// A HorizontalPodAutoscaler.
    Hpa,
    /// The workload a ScaledObject or HPA scales.
    Workload,
}

impl Role {
    /// A short label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Role::ScaledObject => "ScaledObject",
            Role::TriggerAuthentication => "TriggerAuthentication",
            Role::Hpa => "HorizontalPodAutoscaler",
            Role::Workload => "scaled workload",
        }
    }
}

/// A template file of the chart, as read before any mutation.
#[derive(Debug, Clone)]
pub struct TemplateFile {
    /// The path relative to the chart directory (`templates/x.yaml`).
    pub path: String,
    /// Its text.
    pub text: String,
}

impl TemplateFile {
    /// The lines of the file (without line endings).
    pub fn lines(&self) -> Vec<&str> {
        self.text.lines().collect()
    }
}

/// Lines of one template file that render autoscaling objects.
#[derive(Debug, Clone, Serialize)]
pub struct Region {
    /// The file, relative to the chart directory.
    pub file: String,
    /// First line (1-based).
    pub first_line: usize,
    /// Last line (1-based, inclusive).
    pub last_line: usize,
    /// What the lines render.
    pub roles: BTreeSet<Role>,
    /// The helper template the region defines, for a `define` block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub define: Option<String>,
}

/// What the original render says about the scaled workload and the triggers, for operators
/// that replace a templated value with a literal that differs from it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    /// The kind the first ScaledObject (or HPA) scales.
    pub target_kind: Option<String>,
    /// The metricType of the first ScaledObject's first trigger (KEDA's default AverageValue).
    pub metric_type: Option<String>,
}

/// The regions under test and the facts operators use.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scope {
    /// Regions, by file and first line.
    pub regions: Vec<Region>,
    /// Facts of the original render.
    pub facts: Facts,
}

/// The chart-relative path of a manifest's `# Source:` (`chart/templates/x.yaml` ->
/// `templates/x.yaml`).
fn relative_source(source: &str) -> Option<&str> {
    source.split_once('/').map(|(_, rest)| rest)
}

fn roles_of(manifests: &[Manifest]) -> BTreeMap<String, BTreeSet<Role>> {
    let mut out: BTreeMap<String, BTreeSet<Role>> = BTreeMap::new();
    let mut targets: BTreeSet<(String, String)> = BTreeSet::new();
    for m in manifests {
        let role = if m.is_keda("ScaledObject") {
            Some(Role::ScaledObject)
        } else if m.api_version.starts_with("keda.sh/")
            && matches!(
                m.kind.as_str(),
                "TriggerAuthentication" | "ClusterTriggerAuthentication"
            )
        {
            Some(Role::TriggerAuthentication)
        } else if m.kind == "HorizontalPodAutoscaler" {
            Some(Role::Hpa)
        } else {
            None
        };
        if matches!(role, Some(Role::ScaledObject | Role::Hpa)) {
            let t = &m.body["spec"]["scaleTargetRef"];
            targets.insert((
                t["kind"].as_str().unwrap_or("Deployment").to_string(),
                t["name"].as_str().unwrap_or_default().to_string(),
            ));
        }
        if let (Some(r), Some(src)) = (role, relative_source(&m.source)) {
            out.entry(src.to_string()).or_default().insert(r);
        }
    }
    for m in manifests {
        if targets.contains(&(m.kind.clone(), m.name.clone())) {
            if let Some(src) = relative_source(&m.source) {
                out.entry(src.to_string())
                    .or_default()
                    .insert(Role::Workload);
            }
        }
    }
    out
}

fn facts_of(manifests: &[Manifest]) -> Facts {
    let so = manifests.iter().find(|m| m.is_keda("ScaledObject"));
    let hpa = manifests
        .iter()
        .find(|m| m.kind == "HorizontalPodAutoscaler");
    let target_kind = so.or(hpa).map(|m| {
        m.body["spec"]["scaleTargetRef"]["kind"]
            .as_str()
            .unwrap_or("Deployment")
            .to_string()
    });
    let metric_type = so.map(|m| {
        m.body["spec"]["triggers"][0]["metricType"]
            .as_str()
            .unwrap_or("AverageValue")
            .to_string()
    });
    Facts {
        target_kind,
        metric_type,
    }
}

fn include_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"\b(?:include|template)\s+"([^"]+)""#).expect("valid regex"))
}

fn define_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"\{\{-?\s*define\s+"([^"]+)""#).expect("valid regex"))
}

/// A `define` block: its name and 0-based line range (inclusive).
struct Define {
    name: String,
    file: usize,
    first: usize,
    last: usize,
}

fn defines_in(file_index: usize, text: &str) -> Vec<Define> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(c) = define_re().captures(lines[i]) {
            let mut depth = 0;
            let mut j = i;
            while j < lines.len() {
                depth += gotmpl::depth_delta(lines[j]);
                if depth <= 0 {
                    break;
                }
                j += 1;
            }
            let last = j.min(lines.len() - 1);
            out.push(Define {
                name: c[1].to_string(),
                file: file_index,
                first: i,
                last,
            });
            i = last + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// The roles a helper body renders, from what it spells out.
fn helper_roles(body: &str) -> BTreeSet<Role> {
    let mut roles = BTreeSet::new();
    if body.contains("ScaledObject") {
        roles.insert(Role::ScaledObject);
    }
    if body.contains("TriggerAuthentication") {
        roles.insert(Role::TriggerAuthentication);
    }
    if body.contains("HorizontalPodAutoscaler") {
        roles.insert(Role::Hpa);
    }
    if roles.is_empty()
        && [
            "triggers:",
            "customHeaders",
            "authenticationRef",
            "authModes",
        ]
        .iter()
        .any(|m| body.contains(m))
    {
        roles.insert(Role::ScaledObject);
    }
    roles
}

/// Every template file of the chart (its `templates/` directory and those of unpacked
/// subcharts), sorted by path.
pub fn template_files(chart_dir: &Path) -> std::io::Result<Vec<TemplateFile>> {
    fn walk(dir: &Path, chart_dir: &Path, out: &mut Vec<TemplateFile>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            let path = entry.path();
            if ty.is_dir() {
                walk(&path, chart_dir, out)?;
            } else if ty.is_file() && path.components().any(|c| c.as_os_str() == "templates") {
                let rel = path
                    .strip_prefix(chart_dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .to_string();
                // Not UTF-8 (a binary next to the templates): nothing to mutate.
                if let Ok(text) = std::fs::read_to_string(&path) {
                    out.push(TemplateFile { path: rel, text });
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    let templates = chart_dir.join("templates");
    if templates.is_dir() {
        walk(&templates, chart_dir, &mut out)?;
    }
    let charts = chart_dir.join("charts");
    if charts.is_dir() {
        walk(&charts, chart_dir, &mut out)?;
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The regions of `files` that render the autoscaling objects among `manifests` (the
/// original render), and the facts operators need.
pub fn find(files: &[TemplateFile], manifests: &[Manifest]) -> Scope {
    let roles = roles_of(manifests);
    let mut regions: Vec<Region> = Vec::new();
    let mut included: BTreeSet<String> = BTreeSet::new();
    for f in files {
        if let Some(r) = roles.get(&f.path) {
            regions.push(Region {
                file: f.path.clone(),
                first_line: 1,
                last_line: f.text.lines().count().max(1),
                roles: r.clone(),
                define: None,
            });
            included.extend(
                include_re()
                    .captures_iter(&f.text)
                    .map(|c| c[1].to_string()),
            );
        }
    }
    let defines: Vec<Define> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.path.ends_with(".tpl"))
        .flat_map(|(i, f)| defines_in(i, &f.text))
        .collect();
    let body = |d: &Define| -> String {
        files[d.file].text.lines().collect::<Vec<_>>()[d.first..=d.last].join("\n")
    };
    // Helpers included by helpers that are included: to a fixed point.
    let mut changed = true;
    while changed {
        changed = false;
        for d in &defines {
            if included.contains(&d.name) {
                for c in include_re().captures_iter(&body(d)) {
                    changed |= included.insert(c[1].to_string());
                }
            }
        }
    }
    for d in &defines {
        if !included.contains(&d.name) {
            continue;
        }
        let r = helper_roles(&body(d));
        if r.is_empty() {
            continue;
        }
        regions.push(Region {
            file: files[d.file].path.clone(),
            first_line: d.first + 1,
            last_line: d.last + 1,
            roles: r,
            define: Some(d.name.clone()),
        });
    }
    regions.sort_by(|a, b| (&a.file, a.first_line).cmp(&(&b.file, b.first_line)));
    Scope {
        regions,
        facts: facts_of(manifests),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> TemplateFile {
        TemplateFile {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn files_by_what_they_render_and_the_helpers_they_include() {
        let rendered = "---\n# Source: c/templates/so.yaml\napiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: s}\nspec: {scaleTargetRef: {kind: StatefulSet, name: w}, triggers: [{type: prometheus, metricType: Value}]}\n---\n# Source: c/templates/w.yaml\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: w}\n---\n# Source: c/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: w}\n";
        let manifests = crate::keda::manifest::split(rendered).unwrap();
        let files = vec![
            file("templates/_helpers.tpl", "{{- define \"c.name\" -}}\nx\n{{- end -}}\n{{- define \"c.so\" -}}\n{{- if .a }}\nkind: ScaledObject\n{{- end }}\n{{ include \"c.name\" . }}\n{{- end -}}\n{{- define \"c.unused\" -}}\nkind: ScaledObject\n{{- end -}}\n"),
            file("templates/cm.yaml", "kind: ConfigMap\n"),
            file("templates/so.yaml", "{{ include \"c.so\" . }}\n"),
            file("templates/w.yaml", "kind: StatefulSet\nx: 1\n"),
        ];
        let scope = find(&files, &manifests);
        let shown: Vec<(String, usize, usize, Vec<Role>)> = scope
            .regions
            .iter()
            .map(|r| {
                (
                    r.file.clone(),
                    r.first_line,
                    r.last_line,
                    r.roles.iter().copied().collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    "templates/_helpers.tpl".into(),
                    4,
                    9,
                    vec![Role::ScaledObject]
                ),
                ("templates/so.yaml".into(), 1, 1, vec![Role::ScaledObject]),
                ("templates/w.yaml".into(), 1, 2, vec![Role::Workload]),
            ]
        );
        assert_eq!(scope.facts.target_kind.as_deref(), Some("StatefulSet"));
        assert_eq!(scope.facts.metric_type.as_deref(), Some("Value"));
    }
}
