//! Explains why Helm could not render: the template file and line its message names, and the
//! values keys that most likely caused it, with the values file and line that set them.
//!
//! Helm's own words stay the evidence; this adds where to look. A chart that pipes trigger
//! metadata through `tpl` fails with `wrong type for value; expected string; got float64`
//! when a user writes `threshold: 250`; the key is then the user's number under a trigger's
//! `metadata`.

use super::values::{format_path, leaf_paths, Segment, UserValues};
use serde_json::Value;
use std::path::Path;

/// Lines of explanation for Helm's `stderr` given the user's values (empty when nothing can
/// be located).
pub fn explain(stderr: &str, values: &UserValues) -> Vec<String> {
    let mut out = Vec::new();
    // Helm 3 writes `template: <chart>/templates/x.yaml:3:4: executing ...` on one line; Helm 4
    // writes the same locations without the prefix, one per line. Includes nest: the last
    // location is where the error happened, the first the template that included it.
    let template =
        regex::Regex::new(r"([\w.-]+/templates/[\w./-]+\.(?:yaml|yml|tpl|txt|json)):(\d+):(\d+)")
            .expect("valid regex");
    let mut places: Vec<String> = Vec::new();
    for c in template.captures_iter(stderr) {
        let place = format!("{}:{} (column {})", &c[1], &c[2], &c[3]);
        if !places.contains(&place) {
            places.push(place);
        }
    }
    if let Some(last) = places.last() {
        out.push(format!("template: {last}"));
    }
    if places.len() > 1 {
        out.push(format!(
            "included from: {}",
            places[..places.len() - 1].join(" <- ")
        ));
    }
    let wrong_type = regex::Regex::new(r"expected (\w+); got ([\w\[\]{}. ]+?)(?:$|\n|\s*\))")
        .expect("valid regex");
    if let Some(c) = wrong_type.captures(stderr) {
        let (expected, got) = (c[1].to_string(), c[2].trim().to_string());
        let mut suspects = suspects_of_type(&values.merged, &got);
        // Trigger metadata is where charts expect strings (KEDA's metadata is a string map):
        // when the values put such a value there, the others are not suspects.
        let in_metadata = |p: &Vec<Segment>| {
            p[..p.len().saturating_sub(1)]
                .iter()
                .any(|s| matches!(s, Segment::Key(k) if k == "metadata"))
        };
        if suspects.iter().any(in_metadata) {
            suspects.retain(in_metadata);
        }
        // The deepest place is the one to fix: a map holding a suspect is not one itself.
        let all = suspects.clone();
        suspects.retain(|p| !all.iter().any(|q| q.len() > p.len() && q.starts_with(p)));
        for path in suspects.into_iter().take(3) {
            let value = super::values::get_path(&values.merged, &path)
                .cloned()
                .unwrap_or(Value::Null);
            let place = locate(&values.files, &path)
                .map(|(f, l)| format!(" ({}:{l})", f.display()))
                .unwrap_or_else(|| {
                    if values.sets.is_empty() {
                        String::new()
                    } else {
                        " (from --set)".to_string()
                    }
                });
            out.push(format!(
                "values key {} = {value}{place} is a {got} where the template expects a {expected}: {}",
                format_path(&path),
                if expected == "string" {
                    match &value {
                        Value::Object(m) => format!(
                            "write it as one string (KEDA reads maps as key=value pairs): \"{}\"",
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                                .collect::<Vec<_>>()
                                .join(",")
                        ),
                        Value::Array(_) => "write it as one string".to_string(),
                        other => format!("quote it: \"{other}\""),
                    }
                } else {
                    format!("write a {expected}")
                }
            ));
        }
    }
    out
}

/// Leaves of the user's values whose JSON type is Go's `got` type.
fn suspects_of_type(values: &Value, got: &str) -> Vec<Vec<Segment>> {
    let wanted: fn(&Value) -> bool = match got {
        "float64" | "int" | "int64" | "float32" => Value::is_number,
        "bool" => Value::is_boolean,
        g if g.starts_with("map[") => Value::is_object,
        g if g.starts_with("[]") => Value::is_array,
        _ => return Vec::new(),
    };
    let mut out: Vec<Vec<Segment>> = leaf_paths(values)
        .into_iter()
        .filter(|p| super::values::get_path(values, p).is_some_and(wanted))
        .collect();
    if matches!(got, g if g.starts_with("map[") || g.starts_with("[]")) {
        // Maps and lists are not leaves: look at their parents too.
        collect_containers(values, &mut Vec::new(), wanted, &mut out);
    }
    out
}

fn collect_containers(
    v: &Value,
    path: &mut Vec<Segment>,
    wanted: fn(&Value) -> bool,
    out: &mut Vec<Vec<Segment>>,
) {
    if path.len() > 1 && wanted(v) && !out.contains(path) {
        out.push(path.clone());
    }
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                path.push(Segment::Key(k.clone()));
                collect_containers(c, path, wanted, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                path.push(Segment::Index(i));
                collect_containers(c, path, wanted, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The last values file (later files win) and 1-based line that set `path`, found by
/// following the keys' indentation in the file's text.
pub fn locate<'a>(files: &'a [std::path::PathBuf], path: &[Segment]) -> Option<(&'a Path, usize)> {
    files
        .iter()
        .rev()
        .find_map(|f| locate_in(&std::fs::read_to_string(f).ok()?, path).map(|l| (f.as_path(), l)))
}

fn locate_in(text: &str, path: &[Segment]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut from = 0usize;
    let mut min_indent: Option<usize> = None;
    let mut found = None;
    for seg in path {
        let mut hit = None;
        match seg {
            Segment::Key(k) => {
                for (i, l) in lines.iter().enumerate().skip(from) {
                    let t = l.trim_start().trim_start_matches("- ");
                    let ind = indent(l) + (l.trim_start().len() - t.len());
                    // A dedent ends the parent's block (a list item's own dash line excepted:
                    // its first key sits on it).
                    if let Some(m) = min_indent {
                        if i != from
                            && !l.trim().is_empty()
                            && !l.trim_start().starts_with('#')
                            && indent(l) < m
                        {
                            break;
                        }
                    }
                    let key_matches = t
                        .strip_prefix(k.as_str())
                        .is_some_and(|r| r.trim_start().starts_with(':'))
                        || t.strip_prefix(&format!("{k:?}"))
                            .is_some_and(|r| r.trim_start().starts_with(':'));
                    if key_matches && min_indent.is_none_or(|m| ind >= m) {
                        hit = Some((i, ind + 1));
                        break;
                    }
                }
            }
            Segment::Index(n) => {
                let mut count = 0;
                for (i, l) in lines.iter().enumerate().skip(from) {
                    if l.trim_start().starts_with("- ") || l.trim() == "-" {
                        if count == *n {
                            hit = Some((i, indent(l) + 1));
                            break;
                        }
                        count += 1;
                    }
                }
                if let Some((i, ind)) = hit {
                    found = Some(i + 1);
                    min_indent = Some(ind);
                    from = i;
                    continue;
                }
            }
        }
        let (i, ind) = hit?;
        found = Some(i + 1);
        min_indent = Some(ind);
        from = i + 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: &str = "\
backendWorker:
  autoscaling:
    enabled: true
    keda:
      enabled: true
      triggers:
        - type: prometheus
          metadata:
            serverAddress: http://mimir/prometheus
            threshold: 250
            query: sum(x)
";

    #[test]
    fn names_the_template_line_and_the_values_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("user.yaml");
        std::fs::write(&file, VALUES).unwrap();
        let values = UserValues::load(std::slice::from_ref(&file), &[]).unwrap();
        let stderr = "Error: template: tempo/templates/backend-worker/scaledobject.yaml:31:22: executing \"tempo/templates/backend-worker/scaledobject.yaml\" at <tpl $value $>: wrong type for value; expected string; got float64";
        let lines = explain(stderr, &values);
        assert!(lines[0].contains("scaledobject.yaml:31"), "{lines:?}");
        // Helm 4's layout: locations on lines of their own, the innermost last.
        let helm4 = "Error: tempo/templates/so.yaml:3:4\n  executing \"x\" at <include>:\n    error calling include:\ntempo/templates/_keda.tpl:61:25\n  executing \"y\" at <$v>:\n    wrong type for value; expected string; got float64";
        let l4 = explain(helm4, &values);
        assert!(l4[0].contains("_keda.tpl:61"), "{l4:?}");
        assert!(l4[1].contains("so.yaml:3"), "{l4:?}");
        assert!(l4[2].contains("metadata.threshold"), "{l4:?}");
        assert!(
            lines[1]
                .contains("backendWorker.autoscaling.keda.triggers[0].metadata.threshold = 250"),
            "{lines:?}"
        );
        assert!(lines[1].contains("user.yaml:10"), "{lines:?}");
        assert!(lines[1].contains("quote it"), "{lines:?}");
    }

    #[test]
    fn locates_keys_by_indentation() {
        let p = |s: &[&str]| -> Vec<Segment> {
            s.iter()
                .map(|x| match x.parse::<usize>() {
                    Ok(i) => Segment::Index(i),
                    Err(_) => Segment::Key(x.to_string()),
                })
                .collect()
        };
        assert_eq!(
            locate_in(VALUES, &p(&["backendWorker", "autoscaling", "enabled"])),
            Some(3)
        );
        assert_eq!(
            locate_in(
                VALUES,
                &p(&["backendWorker", "autoscaling", "keda", "enabled"])
            ),
            Some(5)
        );
        assert_eq!(
            locate_in(
                VALUES,
                &p(&[
                    "backendWorker",
                    "autoscaling",
                    "keda",
                    "triggers",
                    "0",
                    "type"
                ])
            ),
            Some(7)
        );
        assert_eq!(locate_in(VALUES, &p(&["nothing"])), None);
    }
}
