//! Table-driven tests of the KEDA v2.20 prometheus metadata parser and the request it plans.

use keda_conformance::keda::prometheus::{parse, MetricType};
use std::collections::BTreeMap;

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = [
        ("serverAddress", "http://mimir/prometheus"),
        ("query", "sum(x)"),
        ("threshold", "250"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in pairs {
        if v.is_empty() {
            m.remove(*k);
        } else {
            m.insert(k.to_string(), v.to_string());
        }
    }
    m
}

/// Metadata keys to set (an empty value removes the key).
type Overrides = &'static [(&'static str, &'static str)];

/// (case, metadata overrides, metricType, expected error substring or None for success)
const CASES: &[(&str, Overrides, &str, Option<&str>)] = &[
    ("minimal", &[], "", None),
    ("header", &[("customHeaders", "X-Scope-OrgID=tenant-a")], "", None),
    ("two headers with spaces", &[("customHeaders", " X-Scope-OrgID = a , X-Team=b ")], "", None),
    ("trailing comma", &[("customHeaders", "X-Scope-OrgID=a,")], "", Some("expected format key=value, got \"\"")),
    ("value with equals", &[("customHeaders", "Authorization=Basic dXNlcjpwYXNz=")], "", Some("expected format key=value")),
    ("no equals", &[("customHeaders", "X-Scope-OrgID")], "", Some("expected format key=value, got \"X-Scope-OrgID\"")),
    ("go map printed", &[("customHeaders", "map[X-Scope-OrgID:a]")], "", Some("expected format key=value")),
    ("whitespace only header is unset", &[("customHeaders", "   ")], "", None),
    ("missing threshold", &[("threshold", "")], "", Some("missing required parameter \"threshold\" in [triggerMetadata]")),
    ("missing serverAddress", &[("serverAddress", "")], "", Some("missing required parameter \"serverAddress\"")),
    ("missing query", &[("query", "")], "", Some("missing required parameter \"query\"")),
    ("threshold not a number", &[("threshold", "abc")], "", Some("unable to unmarshal to field type float64: invalid character 'a' looking for beginning of value")),
    ("threshold with unit", &[("threshold", "250m")], "", Some("invalid character 'm' after top-level value")),
    ("threshold float", &[("threshold", "0.5")], "", None),
    ("threshold exponent", &[("threshold", "2.5e2")], "", None),
    ("threshold quoted", &[("threshold", "\"250\"")], "", Some("looking for beginning of value")),
    ("activation threshold", &[("activationThreshold", "10")], "", None),
    ("ignoreNullValues false", &[("ignoreNullValues", "false")], "", None),
    ("ignoreNullValues yes", &[("ignoreNullValues", "yes")], "", Some("strconv.ParseBool: parsing \"yes\": invalid syntax")),
    ("unsafeSsl T", &[("unsafeSsl", "T")], "", None),
    ("timeout ms", &[("timeout", "500")], "", None),
    ("timeout duration", &[("timeout", "2s")], "", None),
    ("timeout negative", &[("timeout", "-5")], "", Some("duration cannot be negative")),
    ("timeout junk", &[("timeout", "soon")], "", Some("must be either a duration string")),
    ("query parameters", &[("queryParameters", "stats=all,dedup=true")], "", None),
    ("query parameters malformed", &[("queryParameters", "stats")], "", Some("unable to set param \"queryParameters\"")),
    ("metricType Value", &[], "Value", None),
    ("metricType Utilization", &[], "Utilization", Some("'Utilization' metric type is unsupported")),
];

#[test]
fn parser_matches_keda_v2_20_table() {
    let mut failures = Vec::new();
    for (name, overrides, metric_type, expected) in CASES {
        let result = parse(&meta(overrides), &BTreeMap::new(), metric_type);
        match (expected, &result) {
            (None, Ok(_)) => {}
            (Some(needle), Err(errors)) if errors.iter().any(|e| e.message.contains(needle)) => {}
            _ => failures.push(format!("{name}: expected {expected:?}, got {result:?}")),
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

#[test]
fn header_names_are_canonicalised_and_trimmed_like_go() {
    let c = parse(
        &meta(&[("customHeaders", " x-scope-orgid = tenant-a , X-TEAM=b")]),
        &BTreeMap::new(),
        "",
    )
    .expect("parses");
    let headers: Vec<(String, String)> = c.request().headers;
    assert_eq!(
        headers,
        vec![
            ("X-Scope-Orgid".to_string(), "tenant-a".to_string()),
            ("X-Team".to_string(), "b".to_string())
        ]
    );
}

#[test]
fn duplicate_header_keys_last_wins() {
    let c = parse(
        &meta(&[("customHeaders", "X-Scope-OrgID=a,X-Scope-OrgID=b")]),
        &BTreeMap::new(),
        "",
    )
    .expect("parses");
    assert_eq!(
        c.custom_headers.get("X-Scope-Orgid").map(String::as_str),
        Some("b")
    );
}

#[test]
fn request_url_escapes_query_and_appends_parameters() {
    let c = parse(
        &meta(&[
            ("query", "sum(x{a=\"b c\"})"),
            ("namespace", "tempo"),
            ("queryParameters", "stats=all"),
        ]),
        &BTreeMap::new(),
        "",
    )
    .expect("parses");
    assert_eq!(c.request().url, "http://mimir/prometheus/api/v1/query?query=sum%28x%7Ba%3D%22b+c%22%7D%29&time=<now>&namespace=tempo&stats=all");
}

#[test]
fn defaults_match_keda() {
    let c = parse(&meta(&[]), &BTreeMap::new(), "").expect("parses");
    assert!(c.ignore_null_values);
    assert_eq!(c.activation_threshold, 0.0);
    assert_eq!(c.metric_type, MetricType::AverageValue);
    assert_eq!(c.timeout, None);
}

#[test]
fn timeout_number_is_milliseconds() {
    let c = parse(&meta(&[("timeout", "1500")]), &BTreeMap::new(), "").expect("parses");
    assert_eq!(c.timeout, Some(std::time::Duration::from_millis(1500)));
}

#[test]
fn invalid_header_name_fails_at_send_time() {
    let c = parse(
        &meta(&[("customHeaders", "\"X-Scope-OrgID=a\"")]),
        &BTreeMap::new(),
        "",
    )
    .expect("parses");
    let r = c.request();
    assert!(
        r.transport_errors
            .iter()
            .any(|e| e.contains("invalid header field name")),
        "{r:?}"
    );
}
