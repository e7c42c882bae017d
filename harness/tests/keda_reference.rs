//! Differential test: our Rust reproduction of KEDA's prometheus scaler against KEDA's own
//! code (scripts/go/keda-reference links the pinned KEDA module), on a table of tricky
//! metadata plus a few hundred generated cases. Parse verdicts, error texts, and the path,
//! query and headers of the request actually sent must agree.

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

fn cases() -> Vec<BTreeMap<String, String>> {
    let base = |extra: &[(&str, &str)]| {
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
    };
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
    out
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
        for c in &cases {
            writeln!(
                stdin,
                "{}",
                serde_json::json!({"metadata": c, "metricType": ""})
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
    for (c, go) in cases.iter().zip(&answers) {
        // Our side parses the same metadata with a concrete address for the placeholder.
        let concrete: BTreeMap<String, String> = c
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("{{server}}", "http://127.0.0.1:9")))
            .collect();
        let ours = parse(&concrete, "");
        let go_ok = go["ok"].as_bool().unwrap_or(false);
        match (&ours, go_ok) {
            (Err(errs), false) => {
                let go_err = go["error"].as_str().unwrap_or_default();
                for e in errs {
                    if !go_err.contains(&e.message) {
                        disagreements.push(format!(
                            "{c:?}: our error {:?} is not in KEDA's {go_err:?}",
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
                            "{c:?}: transport errors differ: ours {:?}, KEDA {send_err:?}",
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
                        "{c:?}: headers differ: ours {:?}, KEDA {go_headers:?}",
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
                        "{c:?}: path differs: ours {ours_path}, KEDA {}",
                        go["request"]["path"]
                    ));
                }
                if go["request"]["query"]["query"][0].as_str() != Some(cfg.query.as_str()) {
                    disagreements.push(format!("{c:?}: query differs"));
                }
            }
            _ => disagreements.push(format!("{c:?}: ours {ours:?}, KEDA {go}")),
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
