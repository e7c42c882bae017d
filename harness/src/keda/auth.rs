//! KEDA v2.20's authentication for the prometheus scaler, reproduced: the parameters a
//! trigger's `authenticationRef` resolves to (a TriggerAuthentication's `secretTargetRef`
//! entries read from Secrets), which auth modes are enabled, KEDA's validation errors in its
//! own words, and the header the request then carries.

use super::manifest::Manifest;
use super::prometheus::ParseError;
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;

/// The auth modes KEDA accepts (`authModes`), in the order of its enum.
pub const MODES: &[&str] = &["apiKey", "basic", "tls", "bearer", "custom", "oauth"];

/// Modes of which at most one may be enabled.
const EXCLUSIVE: &[&str] = &["bearer", "basic", "oauth"];

/// What a trigger's authentication settings resolved to. Secret values are never printed by
/// `Debug` nor serialized.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuthConfig {
    /// Enabled modes, as written.
    pub modes: Vec<String>,
    #[serde(skip)]
    bearer_token: String,
    #[serde(skip)]
    username: String,
    #[serde(skip)]
    password: String,
    /// The header named by `customAuthHeader`.
    pub custom_auth_header: String,
    #[serde(skip)]
    custom_auth_value: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("modes", &self.modes)
            .field("custom_auth_header", &self.custom_auth_header)
            .finish_non_exhaustive()
    }
}

/// Looks a parameter up in KEDA's order (trigger metadata, then auth params, as the field
/// says), trimmed, empty counting as absent.
fn lookup<'a>(
    sources: &[&'a BTreeMap<String, String>],
    names: &[&str],
) -> Option<(&'a str, String)> {
    for source in sources {
        for name in names {
            if let Some(v) = source
                .get(*name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
            {
                return Some((v, (*name).to_string()));
            }
        }
    }
    None
}

fn presence(v: &str) -> &'static str {
    if v.is_empty() {
        "<empty>"
    } else {
        "<present>"
    }
}

/// Parses the authentication part of the prometheus scaler's config exactly as KEDA does,
/// pushing KEDA's errors onto `errors`.
pub fn parse(
    metadata: &BTreeMap<String, String>,
    auth_params: &BTreeMap<String, String>,
    errors: &mut Vec<ParseError>,
) -> AuthConfig {
    let both = [metadata, auth_params];
    let params = [auth_params];
    let mut cfg = AuthConfig::default();
    if let Some((raw, name)) = lookup(&both, &["authModes", "authMode"]) {
        let modes: Vec<String> = raw.split(',').map(|m| m.trim().to_string()).collect();
        if modes.iter().any(|m| !MODES.contains(&m.as_str())) {
            errors.push(ParseError {
                key: name.clone(),
                message: format!(
                    "parameter \"authModes,authMode\" value {raw:?} must be one of [{}]",
                    MODES.join(" ")
                ),
            });
        } else if modes
            .iter()
            .filter(|m| EXCLUSIVE.contains(&m.as_str()))
            .count()
            > 1
        {
            errors.push(ParseError {
                key: name,
                message: format!(
                    "parameter \"authModes,authMode\" value {raw:?} must contain only one of [{}]",
                    EXCLUSIVE.join(" ")
                ),
            });
        } else {
            cfg.modes = modes;
        }
    }
    let get = |names: &[&str]| lookup(&params, names).map(|(v, _)| v.to_string());
    cfg.bearer_token = get(&["bearerToken", "token"]).unwrap_or_default();
    cfg.username = get(&["username"]).unwrap_or_default();
    cfg.password = get(&["password"]).unwrap_or_default();
    cfg.custom_auth_header = get(&["customAuthHeader"]).unwrap_or_default();
    cfg.custom_auth_value = get(&["customAuthValue"]).unwrap_or_default();
    if let Some((method, name)) = lookup(&both, &["method"]) {
        if method != "header" && method != "query" {
            errors.push(ParseError {
                key: name,
                message: format!(
                    "parameter \"method\" value {method:?} must be one of [header query]"
                ),
            });
        }
    }
    if let Some(message) = cfg.validation_error(&both) {
        errors.push(ParseError {
            key: "authModes".into(),
            message,
        });
    }
    cfg
}

impl AuthConfig {
    fn enabled(&self, mode: &str) -> bool {
        self.modes.iter().any(|m| m == mode)
    }

    /// KEDA's `Config.Validate`: the first missing parameter of an enabled mode.
    fn validation_error(&self, both: &[&BTreeMap<String, String>]) -> Option<String> {
        let params = [both[1]];
        let param = |n: &str| lookup(&params, &[n]).map(|(v, _)| v).unwrap_or("");
        if self.enabled("bearer") && self.bearer_token.is_empty() {
            return Some("bearer token=<empty> is required when bearer auth is enabled".into());
        }
        if self.enabled("basic") && self.username.is_empty() {
            return Some("username=<empty> is required when basic auth is enabled".into());
        }
        if self.enabled("tls") && (param("cert").is_empty() || param("key").is_empty()) {
            return Some(format!(
                "cert={} and key={} are required when tls auth is enabled",
                presence(param("cert")),
                presence(param("key"))
            ));
        }
        if self.enabled("oauth")
            && (param("oauthTokenURI").is_empty() || param("clientID").is_empty())
        {
            return Some(format!(
                "oauthTokenURI={} and clientID={} are required when oauth is enabled",
                presence(param("oauthTokenURI")),
                presence(param("clientID"))
            ));
        }
        if self.enabled("custom")
            && (self.custom_auth_header.is_empty() || self.custom_auth_value.is_empty())
        {
            return Some(format!(
                "customAuthHeader={} and customAuthValue={} are required when custom auth is enabled",
                presence(&self.custom_auth_header),
                presence(&self.custom_auth_value)
            ));
        }
        if self.enabled("apiKey") && lookup(both, &["apiKey"]).is_none() {
            return Some("apiKey is required when apiKey auth is enabled".into());
        }
        None
    }

    /// The mode whose header the request carries: KEDA applies the first of bearer, basic,
    /// custom that is enabled, and only that one.
    pub fn applied_mode(&self) -> Option<&'static str> {
        ["bearer", "basic", "custom"]
            .into_iter()
            .find(|m| self.enabled(m))
    }

    /// Enabled header modes KEDA never applies because an earlier one wins (e.g. `bearer,custom`
    /// sends no custom header).
    pub fn shadowed_modes(&self) -> Vec<&'static str> {
        let applied = self.applied_mode();
        ["bearer", "basic", "custom"]
            .into_iter()
            .filter(|m| self.enabled(m) && Some(*m) != applied)
            .collect()
    }

    /// The header the applied mode sets (name as given; Go canonicalizes it when sending).
    pub fn header(&self) -> Option<(String, String)> {
        match self.applied_mode()? {
            "bearer" => Some((
                "Authorization".into(),
                format!("Bearer {}", self.bearer_token),
            )),
            "basic" => Some((
                "Authorization".into(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{}:{}", self.username, self.password))
                ),
            )),
            _ => Some((
                self.custom_auth_header.clone(),
                self.custom_auth_value.clone(),
            )),
        }
    }
}

/// Where a trigger's auth parameters come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSource {
    /// No `authenticationRef`.
    None,
    /// A TriggerAuthentication the chart renders; `params` maps each parameter to its value
    /// (a placeholder naming the Secret or ConfigMap when that is not rendered), `from` to
    /// where it came from, and `missing` lists references to keys the rendered object lacks.
    Rendered {
        /// TriggerAuthentication name.
        name: String,
        /// Parameter to value.
        params: BTreeMap<String, String>,
        /// Parameter to `Secret/<name> key <key>` (or `ConfigMap/...`).
        from: BTreeMap<String, String>,
        /// Parameters whose Secret or ConfigMap is not rendered (resolved only in the cluster).
        external: Vec<String>,
        /// `parameter: Secret/<name> has no key <key>` for keys a rendered object lacks.
        missing: Vec<String>,
    },
    /// An object the chart does not render (a ClusterTriggerAuthentication or a
    /// TriggerAuthentication created elsewhere).
    External {
        /// `TriggerAuthentication` or `ClusterTriggerAuthentication`.
        kind: String,
        /// Its name.
        name: String,
    },
}

/// The placeholder standing for a value held by an object the chart does not render.
pub fn placeholder(kind: &str, name: &str, key: &str) -> String {
    format!("<{kind}/{name} key {key}>")
}

/// A key's value in a rendered Secret (`stringData`, else base64 `data`) or ConfigMap.
fn object_value(object: &Manifest, key: &str) -> Option<String> {
    if let Some(v) = object.body["stringData"][key].as_str() {
        return Some(v.to_string());
    }
    let encoded = object.body["data"][key].as_str()?;
    if object.kind == "ConfigMap" {
        return Some(encoded.to_string());
    }
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Resolves a trigger's `authenticationRef` against the rendered objects, as KEDA resolves
/// `secretTargetRef` entries in the ScaledObject's namespace.
pub fn resolve(trigger: &Value, manifests: &[Manifest]) -> AuthSource {
    let r = &trigger["authenticationRef"];
    if !r.is_object() {
        return AuthSource::None;
    }
    let name = r["name"].as_str().unwrap_or_default().to_string();
    let kind = r["kind"]
        .as_str()
        .unwrap_or("TriggerAuthentication")
        .to_string();
    let Some(ta) = (kind == "TriggerAuthentication")
        .then(|| {
            manifests
                .iter()
                .find(|m| m.is_keda("TriggerAuthentication") && m.name == name)
        })
        .flatten()
    else {
        return AuthSource::External { kind, name };
    };
    let mut params = BTreeMap::new();
    let mut from = BTreeMap::new();
    let mut external = Vec::new();
    let mut missing = Vec::new();
    for (field, kind) in [
        ("configMapTargetRef", "ConfigMap"),
        ("secretTargetRef", "Secret"),
    ] {
        for entry in ta.body["spec"][field]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let parameter = entry["parameter"].as_str().unwrap_or_default().to_string();
            let object = entry["name"].as_str().unwrap_or_default();
            let key = entry["key"].as_str().unwrap_or_default();
            from.insert(parameter.clone(), format!("{kind}/{object} key {key}"));
            match manifests
                .iter()
                .find(|m| m.kind == kind && m.name == object)
            {
                Some(m) => match object_value(m, key) {
                    Some(v) => {
                        params.insert(parameter, v);
                    }
                    None => {
                        missing.push(format!("{parameter}: {kind}/{object} has no key {key:?}"))
                    }
                },
                None => {
                    params.insert(parameter.clone(), placeholder(kind, object, key));
                    external.push(parameter);
                }
            }
        }
    }
    AuthSource::Rendered {
        name,
        params,
        from,
        external,
        missing,
    }
}

impl AuthSource {
    /// The auth parameters KEDA would see (empty without a rendered TriggerAuthentication).
    pub fn params(&self) -> BTreeMap<String, String> {
        match self {
            AuthSource::Rendered { params, .. } => params.clone(),
            _ => BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bearer_wins_over_custom_and_values_are_trimmed() {
        let mut errors = Vec::new();
        let cfg = parse(
            &map(&[("authModes", "bearer, custom")]),
            &map(&[
                ("bearerToken", "tok\n"),
                ("customAuthHeader", "X-Key"),
                ("customAuthValue", "v"),
            ]),
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            cfg.header(),
            Some(("Authorization".into(), "Bearer tok".into()))
        );
        assert_eq!(cfg.shadowed_modes(), vec!["custom"]);
        assert!(!format!("{cfg:?}").contains("tok"));
    }

    #[test]
    fn basic_encodes_user_and_password_and_validation_uses_kedas_words() {
        let mut errors = Vec::new();
        let cfg = parse(
            &map(&[("authModes", "basic")]),
            &map(&[("username", "u"), ("password", "p")]),
            &mut errors,
        );
        assert_eq!(
            cfg.header(),
            Some(("Authorization".into(), "Basic dTpw".into()))
        );
        parse(&map(&[("authModes", "custom")]), &map(&[]), &mut errors);
        parse(
            &map(&[("authModes", "bearer,basic")]),
            &map(&[]),
            &mut errors,
        );
        parse(&map(&[("authModes", "digest")]), &map(&[]), &mut errors);
        let texts: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "customAuthHeader=<empty> and customAuthValue=<empty> are required when custom auth is enabled",
                "parameter \"authModes,authMode\" value \"bearer,basic\" must contain only one of [bearer basic oauth]",
                "parameter \"authModes,authMode\" value \"digest\" must be one of [apiKey basic tls bearer custom oauth]",
            ]
        );
    }
}
