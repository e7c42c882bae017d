//! Differential test: our Rust reproduction of KEDA's prometheus scaler against KEDA's own
//! code (scripts/go/keda-reference links the pinned KEDA module), on a table of tricky
//! metadata and authentication parameters (bearer, basic, custom, their combinations and
//! KEDA's trimming) plus a few hundred generated cases. Parse verdicts, error texts, and the
//! path, query and headers of the request actually sent must agree.

use keda_conformance::keda::prometheus::parse;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn reference_binary() -> std::path::PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-component.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("keda-reference")
        .output()
        .expect("run build-component.sh");
    assert!(
        out.status.success(),
        "building keda-reference failed (run scripts/setup.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&dir).join("keda-reference")
}

/// A tiny deterministic generator (no dependency needed for a few hundred cases).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

type Params = BTreeMap<String, String>;
type Case = (Params, Params);

/// Valid trigger metadata with `extra` set (an empty value removes the key).
fn base(extra: &[(&str, &str)]) -> Params {
    let mut m: BTreeMap<String, String> = [
        ("serverAddress", "{{server}}/prometheus"),
        ("query", "sum(x{a=\"b c\"})"),
        ("threshold", "250"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        if v.is_empty() {
            m.remove(*k);
        } else {
            m.insert(k.to_string(), v.to_string());
        }
    }
    m
}

/// Authentication cases: trigger metadata and the authParams a TriggerAuthentication would
/// resolve to.
fn auth_cases() -> Vec<Case> {
    let p = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut out = vec![
        (
            base(&[("authModes", "bearer")]),
            p(&[("bearerToken", "tok")]),
        ),
        (base(&[("authModes", "bearer")]), p(&[("token", "tok2")])),
        (base(&[("authModes", "bearer")]), p(&[])),
        (
            base(&[("authModes", "basic")]),
            p(&[("username", "u"), ("password", "p@ss:word")]),
        ),
        (base(&[("authModes", "basic")]), p(&[("username", "only")])),
        (base(&[("authModes", "basic")]), p(&[("password", "p")])),
        (
            base(&[("authModes", "custom")]),
            p(&[("customAuthHeader", "X-Api-Key"), ("customAuthValue", "k1")]),
        ),
        (
            base(&[("authModes", "custom")]),
            p(&[
                ("customAuthHeader", "x-api-key"),
                ("customAuthValue", "k1\n"),
            ]),
        ),
        (
            base(&[("authModes", "custom")]),
            p(&[
                ("customAuthHeader", "X-Scope-OrgID"),
                ("customAuthValue", "tenant-b\n"),
            ]),
        ),
        (
            base(&[("authModes", "custom")]),
            p(&[("customAuthHeader", "X-Api-Key")]),
        ),
        (
            base(&[("authModes", "custom")]),
            p(&[("customAuthHeader", "Bad Name"), ("customAuthValue", "v")]),
        ),
        (
            base(&[("authModes", "custom")]),
            p(&[("customAuthHeader", "X-K"), ("customAuthValue", "a\u{1}b")]),
        ),
        (
            base(&[("authModes", "custom")]),
            p(&[("customAuthHeader", "X-K"), ("customAuthValue", "a\tb")]),
        ),
        (
            base(&[("authModes", "bearer,custom")]),
            p(&[
                ("bearerToken", "t"),
                ("customAuthHeader", "X-K"),
                ("customAuthValue", "v"),
            ]),
        ),
        (
            base(&[("authModes", "basic, custom")]),
            p(&[
                ("username", "u"),
                ("customAuthHeader", "X-K"),
                ("customAuthValue", "v"),
            ]),
        ),
        (
            base(&[("authModes", "bearer,basic")]),
            p(&[("bearerToken", "t"), ("username", "u")]),
        ),
        (base(&[("authModes", "digest")]), p(&[])),
        (
            base(&[("authModes", "bearer,")]),
            p(&[("bearerToken", "t")]),
        ),
        (base(&[("authMode", "bearer")]), p(&[("bearerToken", "t")])),
        (
            base(&[]),
            p(&[("authModes", "bearer"), ("bearerToken", "t")]),
        ),
        (base(&[("authModes", "tls")]), p(&[("cert", "c")])),
        (base(&[("authModes", "oauth")]), p(&[("clientID", "c")])),
        (
            base(&[("authModes", "apiKey"), ("method", "cookie")]),
            p(&[("apiKey", "k")]),
        ),
        (base(&[("authModes", "apiKey")]), p(&[])),
        (
            base(&[
                ("authModes", "bearer"),
                ("customHeaders", "Authorization=Basic eA==,X-Scope-OrgID=a"),
            ]),
            p(&[("bearerToken", "t")]),
        ),
        (
            base(&[
                ("authModes", "custom"),
                ("customHeaders", "X-Scope-OrgID=a"),
            ]),
            p(&[
                ("customAuthHeader", "x-scope-orgid"),
                ("customAuthValue", "b"),
            ]),
        ),
        (
            base(&[("customHeaders", "X-Scope-OrgID=a")]),
            p(&[("bearerToken", "unused")]),
        ),
    ];
    let modes = [
        "bearer",
        "basic",
        "custom",
        "bearer,custom",
        "custom,basic",
        "",
        "Bearer",
    ];
    let values = ["v", " v ", "", "v\n", "a b", "x=y"];
    let mut rng = Lcg(7);
    for _ in 0..60 {
        let mut params = BTreeMap::new();
        for key in ["bearerToken", "username", "password", "customAuthValue"] {
            if rng.next().is_multiple_of(2) {
                params.insert(key.to_string(), rng.pick(&values).to_string());
            }
        }
        if !rng.next().is_multiple_of(3) {
            params.insert(
                "customAuthHeader".to_string(),
                rng.pick(&["X-Api-Key", "x-scope-orgid", "Bad Name", ""])
                    .to_string(),
            );
        }
        out.push((base(&[("authModes", rng.pick(&modes))]), params));
    }
    out
}

fn cases() -> Vec<Case> {
    let mut auth = auth_cases();
    let mut out = vec![
        base(&[]),
        base(&[("customHeaders", "X-Scope-OrgID=tenant-a")]),
        base(&[("customHeaders", " x-scope-orgid = a , X-Team=b ")]),
        base(&[("customHeaders", "X-Scope-OrgID=a,")]),
        base(&[("customHeaders", "X-Scope-OrgID=a,X-Scope-OrgID=b")]),
        base(&[("customHeaders", "map[X-Scope-OrgID:a]")]),
        base(&[("customHeaders", "\"X-Scope-OrgID=a\"")]),
        base(&[("customHeaders", "Authorization=Basic dXNlcjpwYXNz=")]),
        base(&[("threshold", "")]),
        base(&[("threshold", "abc")]),
        base(&[("threshold", "250m")]),
        base(&[("threshold", "1e3")]),
        base(&[("threshold", "-1.5")]),
        base(&[("threshold", "01")]),
        base(&[("threshold", "1.")]),
        base(&[("threshold", "null")]),
        base(&[("threshold", "-")]),
        base(&[("threshold", "1e")]),
        base(&[("threshold", "1e+")]),
        base(&[("threshold", "-x")]),
        base(&[("threshold", "1.x")]),
        base(&[("threshold", "1e400")]),
        base(&[("activationThreshold", "x")]),
        base(&[("ignoreNullValues", "yes")]),
        base(&[("ignoreNullValues", "F")]),
        base(&[("unsafeSsl", "TRUE")]),
        base(&[("timeout", "500")]),
        base(&[("timeout", "2s")]),
        base(&[("timeout", "-5")]),
        base(&[("timeout", "soon")]),
        base(&[("queryParameters", "stats=all,dedup=true")]),
        base(&[("queryParameters", "stats")]),
        base(&[("namespace", "tempo")]),
        base(&[("serverAddress", "")]),
        base(&[("query", "  ")]),
    ];
    let header_names = [
        "X-Scope-OrgID",
        "x-scope-orgid",
        "X_Scope",
        "Bad Name",
        "",
        " X-A ",
        "X-B",
    ];
    let header_values = ["tenant-a", "a|b", "", " t ", "v=w", "with space", "tab\tx"];
    let seps = [",", ", ", ",,", ""];
    let thresholds = ["250", "0", "-3", "1e2", "abc", "2.5", " 7 ", "NaN", "+1"];
    let bools = ["true", "false", "1", "0", "t", "yes", "TRUE", "tRuE"];
    let mut rng = Lcg(20261127);
    for _ in 0..300 {
        let n = 1 + (rng.next() % 3) as usize;
        let mut headers = String::new();
        for i in 0..n {
            if i > 0 {
                headers.push_str(rng.pick(&seps));
            }
            headers.push_str(rng.pick(&header_names));
            if !rng.next().is_multiple_of(5) {
                headers.push('=');
            }
            headers.push_str(rng.pick(&header_values));
        }
        out.push(base(&[
            ("customHeaders", &headers),
            ("threshold", rng.pick(&thresholds)),
            ("ignoreNullValues", rng.pick(&bools)),
        ]));
    }
    let mut all: Vec<Case> = out.into_iter().map(|m| (m, BTreeMap::new())).collect();
    all.append(&mut auth);
    all
}

#[test]
fn rust_parser_agrees_with_kedas_own_code() {
    let bin = reference_binary();
    let cases = cases();
    let mut child = Command::new(&bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start keda-reference");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for (c, auth) in &cases {
            writeln!(
                stdin,
                "{}",
                serde_json::json!({"metadata": c, "authParams": auth, "metricType": ""})
            )
            .expect("write");
        }
    }
    let out = child.wait_with_output().expect("keda-reference output");
    let answers: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(answers.len(), cases.len());
    let mut disagreements = Vec::new();
    for ((c, auth), go) in cases.iter().zip(&answers) {
        // Our side parses the same metadata with a concrete address for the placeholder.
        let concrete: BTreeMap<String, String> = c
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("{{server}}", "http://127.0.0.1:9")))
            .collect();
        let ours = parse(&concrete, auth, "");
        let go_ok = go["ok"].as_bool().unwrap_or(false);
        match (&ours, go_ok) {
            (Err(errs), false) => {
                let go_err = go["error"].as_str().unwrap_or_default();
                for e in errs {
                    if !go_err.contains(&e.message) {
                        disagreements.push(format!(
                            "{c:?} {auth:?}: our error {:?} is not in KEDA's {go_err:?}",
                            e.message
                        ));
                    }
                }
            }
            (Ok(cfg), true) => {
                let planned = cfg.request();
                let send_err = go["sendError"].as_str().unwrap_or_default();
                if !planned.transport_errors.is_empty() || !send_err.is_empty() {
                    if planned.transport_errors.is_empty()
                        || send_err.is_empty()
                        || !planned
                            .transport_errors
                            .iter()
                            .any(|e| send_err.contains(e.as_str()))
                    {
                        disagreements.push(format!(
                            "{c:?} {auth:?}: transport errors differ: ours {:?}, KEDA {send_err:?}",
                            planned.transport_errors
                        ));
                    }
                    continue;
                }
                let go_headers: Vec<(String, String)> = go["request"]["headers"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|h| {
                                (
                                    h[0].as_str().unwrap_or_default().to_string(),
                                    h[1].as_str().unwrap_or_default().to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if go_headers != planned.headers {
                    disagreements.push(format!(
                        "{c:?} {auth:?}: headers differ: ours {:?}, KEDA {go_headers:?}",
                        planned.headers
                    ));
                }
                let ours_path = planned
                    .url
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .replace("http://127.0.0.1:9", "");
                if go["request"]["path"].as_str() != Some(ours_path.as_str()) {
                    disagreements.push(format!(
                        "{c:?} {auth:?}: path differs: ours {ours_path}, KEDA {}",
                        go["request"]["path"]
                    ));
                }
                if go["request"]["query"]["query"][0].as_str() != Some(cfg.query.as_str()) {
                    disagreements.push(format!("{c:?} {auth:?}: query differs"));
                }
            }
            _ => disagreements.push(format!("{c:?} {auth:?}: ours {ours:?}, KEDA {go}")),
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n")
    );
}
