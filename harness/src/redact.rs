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
    /// Adds a secret value (values shorter than 4 characters are ignored to avoid noise).
    pub fn add(&mut self, secret: &str) {
        let s = secret.trim();
        if s.len() >= 4 && !self.secrets.iter().any(|x| x == s) {
            self.secrets.push(s.to_string());
            // Longest first, so a secret containing another is replaced whole.
            self.secrets.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
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

fn base64_decode(s: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in s.trim().bytes() {
        if c == b'=' {
            break;
        }
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    String::from_utf8(out).ok()
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
    fn tenant_header_is_not_sensitive() {
        assert!(!is_sensitive_header("X-Scope-OrgID"));
        assert!(is_sensitive_header("x-api-key"));
    }
}
