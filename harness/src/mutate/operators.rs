//! The named mutation operators: each models one regression seen in charts that autoscale
//! with KEDA, as a rule that looks at one template line (and the lines around it) and returns
//! the edits of that line it would make. The table [`OPERATORS`] is the catalog.

use super::gotmpl;
use super::scope::{Facts, Region, Role, Scope, TemplateFile};
use regex::Regex;
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};
use std::sync::OnceLock;

/// One edit of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The line becomes this text.
    Replace(String),
    /// The line is removed.
    Delete,
}

/// A line and what surrounds it, as an operator sees it.
#[derive(Debug, Clone, Copy)]
pub struct LineCtx<'a> {
    /// Every line of the file.
    pub lines: &'a [&'a str],
    /// The line's 0-based index.
    pub index: usize,
    /// What the region renders.
    pub roles: &'a BTreeSet<Role>,
    /// Facts of the original render.
    pub facts: &'a Facts,
}

impl<'a> LineCtx<'a> {
    /// The line.
    pub fn line(&self) -> &'a str {
        self.lines[self.index]
    }

    fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the line is a YAML key under `key:` (within `within` lines above, ignoring
    /// lines that are only template control).
    fn under(&self, key: &str, within: usize) -> bool {
        let me = indent(self.line());
        for p in self.lines[..self.index].iter().rev().take(within) {
            if gotmpl::is_control_only(p) || p.trim().is_empty() {
                continue;
            }
            if indent(p) < me {
                return p.trim() == format!("{key}:");
            }
        }
        false
    }

    /// The literal or templated value of the document's top-level `kind:` above this line.
    fn document_kind(&self) -> Option<&'a str> {
        for p in self.lines[..=self.index].iter().rev() {
            if p.trim_end() == "---" {
                return None;
            }
            if let Some(v) = p.strip_prefix("kind:") {
                return Some(v.trim());
            }
        }
        None
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// A named operator.
#[derive(Debug, Clone, Copy)]
pub struct Operator {
    /// Stable name (`drop-custom-headers`).
    pub name: &'static str,
    /// The regression it models, in one line.
    pub models: &'static str,
    /// The regions it mutates (by what they render).
    pub roles: &'static [Role],
    /// What kind of test kills its mutants (shown with survivors).
    pub hint: &'static str,
    /// The edits it makes to one line.
    pub rule: fn(&LineCtx<'_>) -> Vec<Edit>,
}

const AUTOSCALERS: &[Role] = &[Role::ScaledObject, Role::TriggerAuthentication, Role::Hpa];
const KEDA_OBJECTS: &[Role] = &[Role::ScaledObject, Role::TriggerAuthentication];
const TARGET_LINKS: &[Role] = &[Role::ScaledObject, Role::Hpa, Role::Workload];

/// Every operator, in the order their mutants are reported (the first operator to make an
/// edit owns it when two would make the same one).
pub const OPERATORS: &[Operator] = &[
    Operator {
        name: "replicas-while-autoscaling",
        models: "the guard that leaves replicas: out while autoscaling is on is removed",
        roles: &[Role::Workload],
        hint: "a check that the scaled workload renders no replicas: while a ScaledObject scales it (each helm upgrade would reset the autoscaler's count); live, qualify's upgrade step",
        rule: replicas_while_autoscaling,
    },
    Operator {
        name: "scale-target-name",
        models: "scaleTargetRef and the workload's name disagree",
        roles: TARGET_LINKS,
        hint: "scaledobject.target (the name must be a rendered workload), or a render step's target: {kind, name}",
        rule: scale_target_name,
    },
    Operator {
        name: "scale-target-kind",
        models: "scaleTargetRef names the wrong kind (Deployment <-> StatefulSet)",
        roles: TARGET_LINKS,
        hint: "scaledobject.target, or a render step's target: {kind, name}",
        rule: scale_target_kind,
    },
    Operator {
        name: "flip-metric-type",
        models: "a trigger's metricType flips between AverageValue and Value",
        roles: &[Role::ScaledObject],
        hint: "values that set metricType (values.fidelity compares it), or a live expect_replicas with an exact count (the oracle follows the rendered metricType, so an oracle count moves with the mutant)",
        rule: flip_metric_type,
    },
    Operator {
        name: "drop-custom-headers",
        models: "customHeaders (the tenant header) no longer reaches the trigger metadata",
        roles: KEDA_OBJECTS,
        hint: "--expect-header / a render step's expect_headers for the tenant header",
        rule: drop_custom_headers,
    },
    Operator {
        name: "drop-auth",
        models: "authModes or authenticationRef is dropped",
        roles: KEDA_OBJECTS,
        hint: "values with an authenticationRef or authModes (trigger.authentication-ref, values.fidelity), and a scenario whose expect_requests names the auth header",
        rule: drop_auth,
    },
    Operator {
        name: "quote-to-raw",
        models: "a value KEDA wants as a string is printed unquoted (a number, a bool)",
        roles: KEDA_OBJECTS,
        hint: "values whose metadata looks like a number or bool (keda.schema wants strings)",
        rule: quote_to_raw,
    },
    Operator {
        name: "value-printed-as-map",
        models: "a map or list is printed with Go's formatting (map[...]) instead of as YAML",
        roles: AUTOSCALERS,
        hint: "values that set the map or list (manifest.go-printed-value, keda.schema)",
        rule: value_printed_as_map,
    },
    Operator {
        name: "rename-values-key",
        models: "a values key is renamed in values.yaml but not in the template that reads it",
        roles: AUTOSCALERS,
        hint: "values that set the key (values.unread, values.fidelity, scaledobject.present)",
        rule: rename_values_key,
    },
    Operator {
        name: "drop-with-guard",
        models: "a with/if guard is removed: the block renders even when its value is unset",
        roles: AUTOSCALERS,
        hint: "a scenario whose values leave the guarded key unset",
        rule: drop_with_guard,
    },
];

/// The operator named `name`.
pub fn by_name(name: &str) -> Option<&'static Operator> {
    OPERATORS.iter().find(|o| o.name == name)
}

fn replicas_while_autoscaling(c: &LineCtx<'_>) -> Vec<Edit> {
    let Some(g) = gotmpl::guard(c.line()) else {
        return vec![];
    };
    let cond = g.condition.to_ascii_lowercase();
    let about_autoscaling = ["autoscal", "keda", "hpa"].iter().any(|w| cond.contains(w));
    let guards_replicas = c.lines[c.index + 1..]
        .iter()
        .take(3)
        .any(|l| l.trim_start().starts_with("replicas:"));
    if g.keyword == "if" && about_autoscaling && guards_replicas {
        vec![Edit::Replace(g.rewrite("if", "true"))]
    } else {
        vec![]
    }
}

/// Whether the line is in a workload's own document (its top-level `kind:` is a workload's,
/// or templated).
fn in_workload_document(c: &LineCtx<'_>) -> bool {
    c.has(Role::Workload)
        && c.document_kind().is_some_and(|k| {
            k.contains("{{")
                || matches!(k, "Deployment" | "StatefulSet")
                || Some(k) == c.facts.target_kind.as_deref()
        })
}

fn scale_target_name(c: &LineCtx<'_>) -> Vec<Edit> {
    let line = c.line();
    if !line.trim_start().starts_with("name:") {
        return vec![];
    }
    let in_ref = (c.has(Role::ScaledObject) || c.has(Role::Hpa)) && c.under("scaleTargetRef", 3);
    let workload_name = in_workload_document(c) && indent(line) == 2 && c.under("metadata", 3);
    if !(in_ref || workload_name) {
        return vec![];
    }
    let body = line.trim_end();
    let after = match body.chars().last() {
        Some(q @ ('"' | '\'')) if body.len() > "name: ".len() + indent(line) => {
            format!("{}-x{q}", &body[..body.len() - 1])
        }
        _ => format!("{body}-x"),
    };
    vec![Edit::Replace(after)]
}

fn opposite_kind(kind: &str) -> &'static str {
    if kind == "Deployment" {
        "StatefulSet"
    } else {
        "Deployment"
    }
}

fn scale_target_kind(c: &LineCtx<'_>) -> Vec<Edit> {
    let line = c.line();
    let Some(value) = line.trim_start().strip_prefix("kind:").map(str::trim) else {
        return vec![];
    };
    let in_ref = (c.has(Role::ScaledObject) || c.has(Role::Hpa)) && c.under("scaleTargetRef", 3);
    let workload_kind = indent(line) == 0 && in_workload_document(c);
    if !(in_ref || workload_kind) {
        return vec![];
    }
    let bare = value.trim_matches(|q| q == '"' || q == '\'');
    let new = match bare {
        "Deployment" | "StatefulSet" => opposite_kind(bare),
        _ if value.contains("{{") => opposite_kind(c.facts.target_kind.as_deref().unwrap_or("")),
        _ => return vec![],
    };
    vec![Edit::Replace(format!(
        "{}kind: {new}",
        &line[..indent(line)]
    ))]
}

fn word_re(word: &str) -> Regex {
    Regex::new(&format!(r"\b{word}\b")).expect("valid regex")
}

fn flip_metric_type(c: &LineCtx<'_>) -> Vec<Edit> {
    let line = c.line();
    let trimmed = line.trim_start();
    if line.contains("AverageValue") {
        return word_re("AverageValue")
            .find_iter(line)
            .map(|m| Edit::Replace(format!("{}Value{}", &line[..m.start()], &line[m.end()..])))
            .collect();
    }
    let Some(value) = trimmed.strip_prefix("metricType:").map(str::trim) else {
        return vec![];
    };
    let new = match value.trim_matches(|q| q == '"' || q == '\'') {
        "Value" => "AverageValue",
        "Utilization" => return vec![],
        _ if value.contains("{{") => {
            if c.facts.metric_type.as_deref() == Some("Value") {
                "AverageValue"
            } else {
                "Value"
            }
        }
        _ => return vec![],
    };
    vec![Edit::Replace(format!(
        "{}metricType: {new:?}",
        &line[..indent(line)]
    ))]
}

/// Drops the block a guard mentioning `words` opens, or deletes a line that renders them.
fn drop_lines_mentioning(line: &str, words: &[&str]) -> Vec<Edit> {
    if !words.iter().any(|w| line.contains(w)) {
        return vec![];
    }
    if let Some(g) = gotmpl::guard(line) {
        return vec![Edit::Replace(g.rewrite(g.keyword, "false"))];
    }
    if gotmpl::is_control_only(line) {
        return vec![];
    }
    vec![Edit::Delete]
}

fn key_from_variable_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(\s*)\{\{(-?)\s*(\$[A-Za-z_]\w*)\s*(-?)\}\}(\s*:.*)$").expect("valid regex")
    })
}

fn range_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"range\s+(\$[A-Za-z_]\w*)\s*,\s*\$[A-Za-z_]\w*\s*:=\s*([^}]*)")
            .expect("valid regex")
    })
}

fn drop_custom_headers(c: &LineCtx<'_>) -> Vec<Edit> {
    let line = c.line();
    let direct = drop_lines_mentioning(line, &["customHeaders"]);
    if !direct.is_empty() {
        return direct;
    }
    // `{{ $key }}: {{ $value }}` inside `range $key, $value := .metadata`: the chart stops
    // passing customHeaders through (an allow-list of metadata keys that forgets it).
    let Some(k) = key_from_variable_re().captures(line) else {
        return vec![];
    };
    let var = &k[3];
    let ranges_metadata = c.lines[..c.index].iter().rev().take(8).any(|p| {
        range_re()
            .captures(p)
            .is_some_and(|r| &r[1] == var && r[2].contains("metadata"))
    });
    if !ranges_metadata {
        return vec![];
    }
    vec![Edit::Replace(format!(
        "{}{{{{{} if ne (toString {var}) \"customHeaders\" }}}}{{{{ {var} {}}}}}{}{{{{ end }}}}",
        &k[1], &k[2], &k[4], &k[5]
    ))]
}

fn drop_auth(c: &LineCtx<'_>) -> Vec<Edit> {
    drop_lines_mentioning(c.line(), &["authenticationRef", "authModes"])
}

/// One edit per match of `re` inside the line's actions, each replacing the match.
fn replace_in_actions(line: &str, re: &Regex, with: &str) -> Vec<Edit> {
    let spans = gotmpl::actions(line);
    re.find_iter(line)
        .filter(|m| spans.iter().any(|&(s, e)| m.start() >= s && m.end() <= e))
        .map(|m| Edit::Replace(format!("{}{with}{}", &line[..m.start()], &line[m.end()..])))
        .collect()
}

fn quote_to_raw(c: &LineCtx<'_>) -> Vec<Edit> {
    static PIPE: OnceLock<Regex> = OnceLock::new();
    static CALL: OnceLock<Regex> = OnceLock::new();
    let pipe = PIPE.get_or_init(|| Regex::new(r"\s*\|\s*s?quote\b").expect("valid regex"));
    let call = CALL.get_or_init(|| Regex::new(r"\bs?quote\s+").expect("valid regex"));
    let mut edits = replace_in_actions(c.line(), pipe, "");
    if edits.is_empty() {
        edits = replace_in_actions(c.line(), call, "");
    }
    edits
}

fn value_printed_as_map(c: &LineCtx<'_>) -> Vec<Edit> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\bto(?:Yaml|Json|PrettyJson)\b").expect("valid regex"));
    replace_in_actions(c.line(), re, "printf \"%v\"")
}

fn rename_values_key(c: &LineCtx<'_>) -> Vec<Edit> {
    let line = c.line();
    gotmpl::field_chains(line)
        .into_iter()
        .filter(|ch| ch.reads_values_key())
        .map(|ch| Edit::Replace(format!("{}Renamed{}", &line[..ch.end], &line[ch.end..])))
        .collect()
}

fn drop_with_guard(c: &LineCtx<'_>) -> Vec<Edit> {
    let Some(g) = gotmpl::guard(c.line()) else {
        return vec![];
    };
    let cond = g.condition.trim();
    if cond.contains(":=") || cond == "true" {
        return vec![];
    }
    match g.keyword {
        // `range list (x)` runs the block exactly once with the same dot, set or not.
        "with" => vec![Edit::Replace(g.rewrite("range", &format!("list ({cond})")))],
        _ => vec![Edit::Replace(g.rewrite("if", "true"))],
    }
}

/// One mutant: one operator's edit of one template line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mutant {
    /// 1-based, in report order.
    pub id: usize,
    /// The operator's name.
    pub operator: &'static str,
    /// The file, relative to the chart directory.
    pub file: String,
    /// The line (1-based).
    pub line: usize,
    /// The line before.
    pub before: String,
    /// The line after; `None` when the line is deleted.
    pub after: Option<String>,
}

impl Mutant {
    /// The file's text with this mutant's edit applied (line endings kept).
    pub fn apply(&self, original: &str) -> String {
        let mut out = String::with_capacity(original.len() + 32);
        for (i, piece) in original.split_inclusive('\n').enumerate() {
            if i + 1 != self.line {
                out.push_str(piece);
                continue;
            }
            let Some(after) = &self.after else {
                continue;
            };
            let ending = if piece.ends_with("\r\n") {
                "\r\n"
            } else if piece.ends_with('\n') {
                "\n"
            } else {
                ""
            };
            out.push_str(after);
            out.push_str(ending);
        }
        out
    }
}

/// Every mutant of the regions in `scope` by the operators named in `only` (all when empty),
/// deduplicated by edit, numbered from 1.
pub fn generate(files: &[TemplateFile], scope: &Scope, only: &[String]) -> Vec<Mutant> {
    let mut out: Vec<Mutant> = Vec::new();
    let mut seen: HashSet<(String, usize, Option<String>)> = HashSet::new();
    let mut regions: Vec<&Region> = scope.regions.iter().collect();
    regions.sort_by(|a, b| (&a.file, a.first_line).cmp(&(&b.file, b.first_line)));
    for region in regions {
        let Some(file) = files.iter().find(|f| f.path == region.file) else {
            continue;
        };
        let lines = file.lines();
        let mut in_comment = false;
        for (index, line) in lines.iter().enumerate() {
            // A comment spanning lines says nothing that reaches the output.
            let opens = line.contains("/*") && !line.contains("*/");
            let was_in_comment = in_comment;
            if in_comment && line.contains("*/") {
                in_comment = false;
            } else if opens {
                in_comment = true;
            }
            if index + 1 < region.first_line || index + 1 > region.last_line {
                continue;
            }
            if was_in_comment || opens || gotmpl::is_comment_only(line) {
                continue;
            }
            let ctx = LineCtx {
                lines: &lines,
                index,
                roles: &region.roles,
                facts: &scope.facts,
            };
            for op in OPERATORS {
                if !only.is_empty() && !only.iter().any(|o| o == op.name) {
                    continue;
                }
                if !op.roles.iter().any(|r| region.roles.contains(r)) {
                    continue;
                }
                for edit in (op.rule)(&ctx) {
                    let after = match edit {
                        Edit::Replace(t) if t == *line => continue,
                        Edit::Replace(t) => Some(t),
                        Edit::Delete => None,
                    };
                    if !seen.insert((file.path.clone(), index + 1, after.clone())) {
                        continue;
                    }
                    out.push(Mutant {
                        id: 0,
                        operator: op.name,
                        file: file.path.clone(),
                        line: index + 1,
                        before: line.to_string(),
                        after,
                    });
                }
            }
        }
    }
    for (i, m) in out.iter_mut().enumerate() {
        m.id = i + 1;
    }
    out
}

#[cfg(test)]
#[path = "operators_tests.rs"]
mod tests;
