//! Validates rendered KEDA objects against the CRD schemas of the pinned KEDA module, the way
//! the API server would: wrong types and missing required fields are rejected, and fields the
//! schema does not declare are pruned (silently dropped), which we report.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The structural schemas of KEDA's CRDs, by kind.
#[derive(Debug)]
pub struct CrdSchemas {
    schemas: BTreeMap<String, Value>,
}

/// One schema violation at a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// Where in the object, as a dotted path.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl CrdSchemas {
    /// Loads every `*.yaml` CRD in `dir` (the module's config/crd/bases).
    ///
    /// # Errors
    /// A message when the directory or a CRD cannot be read.
    pub fn load(dir: &Path) -> Result<Self, String> {
        Self::load_kinds(dir, None)
    }

    /// Loads the schemas of `kinds` only (all of them with `None`). ScaledJob's schema alone is
    /// ten times ScaledObject's; a render that has none pays nothing for it.
    ///
    /// The CRDs' YAML is large; each kind's v1alpha1 schema is kept beside them as JSON
    /// (`.schema-<Kind>.json`), rebuilt when any CRD file is newer than the index.
    ///
    /// # Errors
    /// A message when the directory or a CRD cannot be read.
    pub fn load_kinds(dir: &Path, kinds: Option<&[&str]>) -> Result<Self, String> {
        let index = dir.join(".schemas-v1alpha1.index");
        let newest_crd = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().and_then(|x| x.to_str()) == Some("yaml"))
            .filter_map(|e| e.metadata().ok()?.modified().ok())
            .max();
        let fresh = std::fs::metadata(&index)
            .and_then(|m| m.modified())
            .ok()
            .zip(newest_crd)
            .is_some_and(|(c, n)| c >= n);
        let listed: Option<Vec<String>> = fresh
            .then(|| std::fs::read_to_string(&index).ok())
            .flatten()
            .map(|t| t.lines().map(str::to_string).collect());
        let Some(listed) = listed.filter(|l| !l.is_empty()) else {
            let all = Self::load_yaml(dir)?;
            all.write_cache(dir, &index);
            return Ok(match kinds {
                None => all,
                Some(k) => Self {
                    schemas: all
                        .schemas
                        .into_iter()
                        .filter(|(kind, _)| k.contains(&kind.as_str()))
                        .collect(),
                },
            });
        };
        let mut schemas = BTreeMap::new();
        for kind in listed
            .iter()
            .filter(|k| kinds.is_none_or(|want| want.contains(&k.as_str())))
        {
            let file = dir.join(format!(".schema-{kind}.json"));
            let schema = std::fs::read(&file)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            match schema {
                Some(v) => {
                    schemas.insert(kind.clone(), v);
                }
                // A damaged cache: parse the CRDs again.
                None => return Self::load_yaml(dir),
            }
        }
        Ok(Self { schemas })
    }

    /// Writes one JSON file per kind, then the index naming them (each written whole and
    /// renamed: a concurrent reader sees the old file or the new).
    fn write_cache(&self, dir: &Path, index: &Path) {
        let put = |path: &Path, bytes: &[u8]| {
            let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
            if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        };
        for (kind, schema) in &self.schemas {
            if let Ok(json) = serde_json::to_vec(schema) {
                put(&dir.join(format!(".schema-{kind}.json")), &json);
            }
        }
        let names: Vec<&str> = self.schemas.keys().map(String::as_str).collect();
        put(index, names.join("\n").as_bytes());
    }

    /// Parses the CRDs' YAML.
    fn load_yaml(dir: &Path) -> Result<Self, String> {
        let mut schemas = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let crd: Value =
                serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let kind = crd["spec"]["names"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(versions) = crd["spec"]["versions"].as_array() {
                for v in versions {
                    if v["name"] == "v1alpha1" {
                        schemas.insert(kind.clone(), v["schema"]["openAPIV3Schema"].clone());
                    }
                }
            }
        }
        if schemas.is_empty() {
            return Err(format!("no v1alpha1 CRD schemas in {}", dir.display()));
        }
        Ok(Self { schemas })
    }

    /// Kinds with a schema.
    pub fn kinds(&self) -> Vec<String> {
        self.schemas.keys().cloned().collect()
    }

    /// Validates `object` of `kind`; returns every violation (empty when valid).
    pub fn validate(&self, kind: &str, object: &Value) -> Vec<Violation> {
        let Some(schema) = self.schemas.get(kind) else {
            return vec![Violation {
                path: String::new(),
                message: format!("KEDA has no CRD for kind {kind}"),
            }];
        };
        let mut out = Vec::new();
        // metadata is validated by the API server, not the CRD schema.
        let mut obj = object.clone();
        if let Some(m) = obj.as_object_mut() {
            m.remove("metadata");
        }
        let mut sub = schema.clone();
        if let Some(props) = sub.get_mut("properties").and_then(|p| p.as_object_mut()) {
            props.remove("metadata");
        }
        check(&sub, &obj, &mut String::new(), &mut out);
        out
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(schema: &Value, value: &Value, path: &mut String, out: &mut Vec<Violation>) {
    let mut push = |path: &str, message: String| {
        out.push(Violation {
            path: if path.is_empty() {
                ".".into()
            } else {
                path.to_string()
            },
            message,
        })
    };
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            push(
                path,
                format!("must be an integer or a string, got {}", type_name(value)),
            );
        }
        return;
    }
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            // The API server drops explicit nulls for non-nullable fields; harmless.
        }
        return;
    }
    if let Some(t) = schema.get("type").and_then(|t| t.as_str()) {
        let actual = type_name(value);
        let ok = match t {
            "number" => actual == "number" || actual == "integer",
            other => other == actual,
        };
        if !ok {
            push(
                path,
                format!("must be of type {t}, got {actual} ({})", short(value)),
            );
            return;
        }
    }
    if let (Some(allowed), Some(s)) = (
        schema.get("enum").and_then(|e| e.as_array()),
        value.as_str(),
    ) {
        if !allowed.iter().any(|a| a.as_str() == Some(s)) {
            push(
                path,
                format!(
                    "value {s:?} is not one of {}",
                    Value::Array(allowed.clone())
                ),
            );
        }
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(|m| m.as_f64()),
        value.as_f64(),
    ) {
        if n < min {
            push(path, format!("must be >= {min}, got {n}"));
        }
    }
    if let (Some(pattern), Some(s)) = (
        schema.get("pattern").and_then(|p| p.as_str()),
        value.as_str(),
    ) {
        if let Ok(re) = regex::Regex::new(pattern) {
            if !re.is_match(s) {
                push(path, format!("value {s:?} does not match {pattern}"));
            }
        }
    }
    match value {
        Value::Object(map) => check_object(schema, map, path, out),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    check(item_schema, item, path, out);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &mut String,
    out: &mut Vec<Violation>,
) {
    let props = schema.get("properties").and_then(|p| p.as_object());
    if let Some(required) = schema.get("required").and_then(|r| r.as_array()) {
        for r in required.iter().filter_map(|r| r.as_str()) {
            // An explicit null of a non-nullable field is dropped by the API server before
            // validation: the field is then missing.
            let nullable = |name: &str| {
                props
                    .and_then(|p| p.get(name))
                    .and_then(|s| s.get("nullable"))
                    == Some(&Value::Bool(true))
            };
            let missing = match map.get(r) {
                None => Some("is missing"),
                Some(Value::Null) if !nullable(r) => {
                    Some("is null, which the API server drops: it is missing")
                }
                _ => None,
            };
            if let Some(why) = missing {
                out.push(Violation {
                    path: if path.is_empty() {
                        ".".into()
                    } else {
                        path.clone()
                    },
                    message: format!("required field {r:?} {why}"),
                });
            }
        }
    }
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let additional = schema.get("additionalProperties");
    for (k, v) in map {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(k);
        match (props.and_then(|p| p.get(k)), additional) {
            (Some(s), _) => check(s, v, path, out),
            (None, Some(Value::Object(_))) => {
                check(additional.unwrap_or(&Value::Null), v, path, out)
            }
            (None, _) if preserve => {}
            (None, Some(Value::Bool(true))) => {}
            (None, _) if props.is_some() => out.push(Violation {
                path: path.clone(),
                message: format!(
                    "unknown field {k:?}: the API server prunes it, so KEDA never sees it"
                ),
            }),
            _ => {}
        }
        path.truncate(len);
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..57])
    } else {
        s
    }
}
