//! Keeps secrets out of every output: header values of sensitive headers and rendered Secret
//! values are replaced by `<redacted>` wherever they appear.

use crate::keda::manifest::Manifest;

/// The replacement text.
pub const REDACTED: &str = "<redacted>";

/// True for header names whose values are credentials.
pub fn is_sensitive_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "authorization",
        "token",
        "password",
        "secret",
        "api-key",
        "apikey",
        "x-api-key",
        "cookie",
        "credential",
    ]
    .iter()
    .any(|s| n.contains(s))
}

/// Replaces known secret values in text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Adds a secret value (values shorter than 4 characters are ignored to avoid noise),
    /// with every form an output may give it: escaped for JSON, XML and Rust's `{:?}`, URL-
    /// encoded, and base64. Whichever sink escapes the text, before or after redaction, the
    /// secret does not get through in another spelling.
    pub fn add(&mut self, secret: &str) {
        let s = secret.trim();
        if s.len() < 4 {
            return;
        }
        for form in spellings(s) {
            if !self.secrets.contains(&form) {
                self.secrets.push(form);
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        self.secrets.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }

    /// Adds the value of a header when its name is sensitive, and the credential part of
    /// `Bearer x` / `Basic x` values.
    pub fn add_header(&mut self, name: &str, value: &str) {
        if is_sensitive_header(name) {
            self.add_secret_header(value);
        }
    }

    /// Adds the value of a header set from a TriggerAuthentication (whatever its name), and
    /// the credential part of `Bearer x` / `Basic x` values.
    pub fn add_secret_header(&mut self, value: &str) {
        self.add(value);
        if let Some((_, cred)) = value.split_once(' ') {
            self.add(cred);
        }
    }

    /// Adds every value of rendered Secrets (base64 `data` decoded, and `stringData`) and the
    /// sensitive custom headers of every trigger.
    pub fn add_manifests(&mut self, manifests: &[Manifest]) {
        for m in manifests {
            if m.kind == "Secret" {
                if let Some(data) = m.body["stringData"].as_object() {
                    for v in data.values().filter_map(|v| v.as_str()) {
                        self.add(v);
                    }
                }
                if let Some(data) = m.body["data"].as_object() {
                    for v in data.values().filter_map(|v| v.as_str()) {
                        self.add(v);
                        if let Some(decoded) = base64_decode(v) {
                            self.add(&decoded);
                        }
                    }
                }
            }
            if let Some(triggers) = m.body["spec"]["triggers"].as_array() {
                for t in triggers {
                    if let Some(h) = t["metadata"]["customHeaders"].as_str() {
                        for part in h.split(',') {
                            if let Some((k, v)) = part.split_once('=') {
                                self.add_header(k.trim(), v.trim());
                            }
                        }
                    }
                }
            }
        }
    }

    /// Redacts every string in a JSON document in place, before it is serialized (so before
    /// JSON escapes anything).
    pub fn apply_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                let red = self.apply(s);
                if red != *s {
                    *s = red;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.apply_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.apply_json(v)),
            _ => {}
        }
    }

    /// The text with every known secret replaced.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }
}

/// A secret and the ways outputs spell it.
fn spellings(s: &str) -> Vec<String> {
    use base64::Engine as _;
    let inner = |quoted: String| {
        quoted
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .map(str::to_string)
            .unwrap_or(quoted)
    };
    let xml = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;");
    let mut forms = vec![
        s.to_string(),
        inner(serde_json::to_string(s).unwrap_or_default()),
        inner(format!("{s:?}")),
        xml.clone(),
        xml.replace("&quot;", "&#34;").replace("&apos;", "&#39;"),
        crate::keda::goparse::query_escape(s),
        crate::keda::goparse::query_escape(s).replace('+', "%20"),
        base64::engine::general_purpose::STANDARD.encode(s),
    ];
    forms.retain(|f| !f.is_empty());
    forms.sort();
    forms.dedup();
    forms
}

/// A redactor that knows every secret in a render report.
pub fn for_renders(reports: &[&crate::render::RenderReport]) -> Redactor {
    let mut r = Redactor::default();
    for rep in reports {
        r.add_manifests(&rep.manifests);
        for req in &rep.verdict.requests {
            for (n, v) in &req.request.headers {
                if req.request.secret_headers.contains(n) {
                    r.add_secret_header(v);
                } else {
                    r.add_header(n, v);
                }
            }
        }
    }
    r
}

fn base64_decode(s: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_bearer_tokens_and_secret_data() {
        let mut r = Redactor::default();
        r.add_header("Authorization", "Bearer s3cr3t-token");
        r.add(&base64_decode("aHVudGVyMg==").unwrap_or_default());
        let out =
            r.apply("Authorization: Bearer s3cr3t-token and hunter2 and X-Scope-OrgID=tenant-a");
        assert!(!out.contains("s3cr3t-token"));
        assert!(!out.contains("hunter2"));
        assert!(out.contains("tenant-a"));
    }

    #[test]
    fn every_spelling_of_a_secret_is_redacted() {
        let secret = r#"p"a\ss&w<o>rd 'x'"#;
        let mut r = Redactor::default();
        r.add(secret);
        let forms = [
            serde_json::to_string(secret).unwrap(),
            format!("{secret:?}"),
            quick_junit_like_xml(secret),
            crate::keda::goparse::query_escape(secret),
            {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(secret)
            },
        ];
        for form in forms {
            let out = r.apply(&format!("before {form} after"));
            assert!(out.contains(REDACTED), "{form} -> {out}");
            assert!(
                !out.contains("ss&w") && !out.contains("ss&amp;w"),
                "{form} -> {out}"
            );
        }
    }

    fn quick_junit_like_xml(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;")
    }

    #[test]
    fn tenant_header_is_not_sensitive() {
        assert!(!is_sensitive_header("X-Scope-OrgID"));
        assert!(is_sensitive_header("x-api-key"));
    }
}
