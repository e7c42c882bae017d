//! The values a user gives (files and `--set`), merged as Helm merges them, and which of
//! their keys the chart actually reads.

use crate::error::InputError;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// One step of a values path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A map key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// Formats a path the way users write it: `compactor.autoscaling.keda.triggers[0].type`.
pub fn format_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The user's values: files in order, then `--set` expressions.
#[derive(Debug, Clone, Default)]
pub struct UserValues {
    /// The merged user-supplied values (not the chart's defaults).
    pub merged: Value,
    /// Where each values file came from.
    pub files: Vec<PathBuf>,
    /// The `--set` expressions.
    pub sets: Vec<String>,
}

impl UserValues {
    /// Loads and merges values files and `--set` expressions.
    ///
    /// # Errors
    /// An [`InputError`] naming the file and line (or the flag) at fault.
    pub fn load(files: &[PathBuf], sets: &[String]) -> Result<Self, InputError> {
        let mut merged = Value::Object(Map::new());
        for f in files {
            let v = super::source::read_user_yaml(f)?;
            match v {
                Value::Object(_) | Value::Null => merge(&mut merged, v),
                _ => {
                    return Err(InputError::in_file(
                        f,
                        Some(1),
                        None,
                        "a values file must be a YAML map at the top level",
                        "write the values as `key: value` lines",
                    ))
                }
            }
        }
        for s in sets {
            for (path, value) in parse_set(s)? {
                set_path(&mut merged, &path, value);
            }
        }
        Ok(Self {
            merged,
            files: files.to_vec(),
            sets: sets.to_vec(),
        })
    }

    /// The value at `path`, if the user set it.
    pub fn get(&self, path: &[Segment]) -> Option<&Value> {
        get_path(&self.merged, path)
    }
}

/// Deep-merges `overlay` into `base` (maps merge; everything else replaces; null deletes).
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(&k);
                    continue;
                }
                match b.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (_, Value::Null) => {}
        (b, o) => *b = o,
    }
}

/// The value at `path` in `root`.
pub fn get_path<'a>(root: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    let mut cur = root;
    for seg in path {
        cur = match seg {
            Segment::Key(k) => cur.get(k)?,
            Segment::Index(i) => cur.get(*i)?,
        };
    }
    Some(cur)
}

fn set_path(root: &mut Value, path: &[Segment], value: Value) {
    let mut cur = root;
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !cur.is_object() {
                    *cur = Value::Object(Map::new());
                }
                cur = cur
                    .as_object_mut()
                    .map(|m| m.entry(k.clone()).or_insert(Value::Null))
                    .expect("object");
            }
            Segment::Index(i) => {
                if !cur.is_array() {
                    *cur = Value::Array(Vec::new());
                }
                let arr = cur.as_array_mut().expect("array");
                while arr.len() <= *i {
                    arr.push(Value::Null);
                }
                cur = &mut arr[*i];
            }
        }
    }
    *cur = value;
}

fn set_error(expr: &str, problem: impl Into<String>) -> InputError {
    InputError::in_flag(
        format!("--set {expr}"),
        problem,
        "write --set path.to.key=value (lists as key[0]=v; escape a literal comma or dot in a value or key with a backslash, e.g. customHeaders=X-Scope-OrgID=a\\,X-Other=b)",
    )
}

/// The deepest `--set` key accepted.
pub const MAX_SET_DEPTH: usize = 64;

/// Parses one `--set` argument the way Helm's strvals does: comma-separated assignments,
/// dotted keys with `[i]` indices, backslash escapes; values typed as int, bool or null.
///
/// # Errors
/// An [`InputError`] naming the flag when an assignment has no '=', an empty key, a bad index,
/// or a key more than [`MAX_SET_DEPTH`] levels deep.
pub fn parse_set(expr: &str) -> Result<Vec<(Vec<Segment>, Value)>, InputError> {
    let mut out = Vec::new();
    for assignment in split_unescaped(expr, ',') {
        let Some(eq) = find_unescaped(&assignment, '=') else {
            return Err(set_error(
                expr,
                format!("{assignment:?} has no '=' (key=value)"),
            ));
        };
        let (key, raw_value) = (&assignment[..eq], &assignment[eq + 1..]);
        let path = parse_key(key).map_err(|p| set_error(expr, p))?;
        // Values this deep exist in no chart, and deeper ones would exhaust the stack of
        // every recursive walk over the values (Helm's own YAML limit is far below this).
        if path.len() > MAX_SET_DEPTH {
            return Err(set_error(
                expr,
                format!(
                    "the key is {} levels deep; at most {MAX_SET_DEPTH} are accepted",
                    path.len()
                ),
            ));
        }
        out.push((path, typed_value(&unescape(raw_value))));
    }
    Ok(out)
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

fn find_unescaped(s: &str, target: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == target {
            return Some(i);
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_key(key: &str) -> Result<Vec<Segment>, String> {
    if key.is_empty() {
        return Err("empty key before '='".into());
    }
    let mut path = Vec::new();
    for part in split_unescaped(key, '.') {
        let mut rest = part.as_str();
        let name_end = rest.find('[').unwrap_or(rest.len());
        let name = unescape(&rest[..name_end]);
        if name.is_empty() && path.is_empty() {
            return Err(format!("key {key:?} has an empty segment"));
        }
        if !name.is_empty() {
            path.push(Segment::Key(name));
        } else if name_end == rest.len() {
            return Err(format!("key {key:?} has an empty segment"));
        }
        rest = &rest[name_end..];
        while let Some(r) = rest.strip_prefix('[') {
            let close = r
                .find(']')
                .ok_or_else(|| format!("key {key:?} has an unclosed '['"))?;
            let idx: usize = r[..close].parse().map_err(|_| {
                format!("key {key:?} has a list index that is not a non-negative number")
            })?;
            if idx > 65536 {
                return Err(format!(
                    "key {key:?}: index {idx} is larger than Helm allows (65536)"
                ));
            }
            path.push(Segment::Index(idx));
            rest = &r[close + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("key {key:?} has text after ']'"));
        }
    }
    Ok(path)
}

fn typed_value(s: &str) -> Value {
    match s {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        _ => {
            if let Ok(i) = s.parse::<i64>() {
                if !(s.len() > 1 && s.starts_with('0')) {
                    return Value::from(i);
                }
            }
            Value::String(s.to_string())
        }
    }
}

/// Every leaf path of `root` (maps descend; lists descend by index; scalars are leaves).
pub fn leaf_paths(root: &Value) -> Vec<Vec<Segment>> {
    let mut out = Vec::new();
    fn walk(v: &Value, prefix: &mut Vec<Segment>, out: &mut Vec<Vec<Segment>>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    prefix.push(Segment::Key(k.clone()));
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for (i, child) in a.iter().enumerate() {
                    prefix.push(Segment::Index(i));
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => out.push(prefix.clone()),
        }
    }
    walk(root, &mut Vec::new(), &mut out);
    out
}

/// A user values key that the chart never reads, with the nearest key it does read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnreadKey {
    /// The path the user set.
    pub path: String,
    /// The closest path the chart declares, when one is close.
    pub nearest: Option<String>,
}

/// Reports user keys absent from the chart's defaults and schema. A key below a default that
/// is an empty map or any list, or below a schema object without fixed properties, counts as read.
pub fn unread_keys(user: &Value, defaults: &Value, schema: Option<&Value>) -> Vec<UnreadKey> {
    let declared: Vec<String> = declared_paths(defaults);
    let mut out = Vec::new();
    for path in leaf_paths(user) {
        if path.is_empty() {
            continue;
        }
        if is_declared(defaults, &path) || schema.map(|s| schema_allows(s, &path)).unwrap_or(false)
        {
            continue;
        }
        // Report the first unknown prefix only once.
        let mut first_unknown = Vec::new();
        for seg in &path {
            first_unknown.push(seg.clone());
            if !is_declared_prefix(defaults, &first_unknown) {
                break;
            }
        }
        let p = format_path(&first_unknown);
        if out.iter().any(|u: &UnreadKey| u.path == p) {
            continue;
        }
        let nearest = declared
            .iter()
            .map(|d| {
                (
                    d,
                    strsim::normalized_levenshtein(&p.to_lowercase(), &d.to_lowercase()),
                )
            })
            .filter(|(_, s)| *s > 0.6)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(d, _)| d.clone());
        out.push(UnreadKey { path: p, nearest });
    }
    out
}

fn is_declared_prefix(defaults: &Value, path: &[Segment]) -> bool {
    let mut cur = defaults;
    for seg in path {
        match (seg, cur) {
            (Segment::Key(k), Value::Object(m)) => match m.get(k) {
                Some(v) => cur = v,
                None => return m.is_empty(),
            },
            (_, Value::Array(_)) => return true,
            (_, Value::Null) => return true,
            _ => return false,
        }
    }
    true
}

fn is_declared(defaults: &Value, path: &[Segment]) -> bool {
    is_declared_prefix(defaults, path)
}

fn declared_paths(defaults: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, prefix: &mut Vec<Segment>, out: &mut Vec<String>) {
        if !prefix.is_empty() {
            out.push(format_path(prefix));
        }
        if let Value::Object(m) = v {
            for (k, child) in m {
                prefix.push(Segment::Key(k.clone()));
                walk(child, prefix, out);
                prefix.pop();
            }
        }
    }
    walk(defaults, &mut Vec::new(), &mut out);
    out
}

fn schema_allows(schema: &Value, path: &[Segment]) -> bool {
    let mut cur = schema;
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if let Some(p) = cur.get("properties").and_then(|p| p.get(k)) {
                    cur = p;
                } else {
                    let fixed = cur.get("properties").is_some();
                    let closed = cur.get("additionalProperties") == Some(&Value::Bool(false));
                    return !fixed
                        && !closed
                        && cur.get("type") == Some(&Value::String("object".into()));
                }
            }
            Segment::Index(_) => match cur.get("items") {
                Some(items) => cur = items,
                None => return true,
            },
        }
    }
    true
}
