//! Prometheus-API instant queries under a tenant, and how KEDA's prometheus scaler turns an
//! answer into a metric value (or an error), so the oracle sees what KEDA sees.

use crate::keda::goparse::query_escape;
use serde::Serialize;

/// What the backend answered to a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// The URL asked.
    pub url: String,
    /// HTTP status.
    pub status: u16,
    /// Body (truncated to 4 KiB).
    pub body: String,
}

/// Asks `base` (e.g. `http://127.0.0.1:9009/prometheus`) the instant query with `headers`.
///
/// # Errors
/// The transport error when no answer arrives.
pub async fn instant(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    headers: &[(String, String)],
) -> Result<Answer, reqwest::Error> {
    let url = format!("{base}/api/v1/query?query={}", query_escape(query));
    let mut req = client.get(&url);
    for (n, v) in headers {
        req = req.header(n.as_str(), v.as_str());
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let mut body = resp.text().await?;
    body.truncate(4096);
    Ok(Answer { url, status, body })
}

/// The value KEDA v2.20's prometheus scaler derives from an answer, or its error text.
pub fn keda_value(answer: &Answer, query: &str, ignore_null_values: bool) -> Result<f64, String> {
    if !(200..=299).contains(&answer.status) {
        return Err(format!(
            "prometheus query api returned error. status: {}",
            answer.status
        ));
    }
    // Go's encoding/json words a truncated body as "unexpected end of JSON input".
    let v: serde_json::Value = serde_json::from_str(&answer.body).map_err(|e| {
        if e.is_eof() {
            "unexpected end of JSON input".to_string()
        } else {
            e.to_string()
        }
    })?;
    let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
    if result.is_empty() {
        return if ignore_null_values {
            Ok(0.0)
        } else {
            Err("prometheus metrics 'prometheus' target may be lost, the result is empty".into())
        };
    }
    if result.len() > 1 {
        return Err(format!(
            "prometheus query {query} returned multiple elements"
        ));
    }
    let value = result[0]["value"].as_array().cloned().unwrap_or_default();
    if value.is_empty() {
        return if ignore_null_values {
            Ok(0.0)
        } else {
            Err(
                "prometheus metrics 'prometheus' target may be lost, the value list is empty"
                    .into(),
            )
        };
    }
    if value.len() < 2 {
        return Err(format!(
            "prometheus query {query} didn't return enough values"
        ));
    }
    let s = value[1].as_str().unwrap_or_default();
    let f: f64 = match s {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .map_err(|_| format!("strconv.ParseFloat: parsing {other:?}: invalid syntax"))?,
    };
    if f.is_nan() || f.is_infinite() {
        return if ignore_null_values {
            Ok(0.0)
        } else {
            Err(format!("prometheus query returns {f}"))
        };
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            url: String::new(),
            status,
            body: body.into(),
        }
    }

    #[test]
    fn mirrors_keda_result_handling() {
        let one = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1200"]}]}}"#;
        assert_eq!(keda_value(&answer(200, one), "q", true), Ok(1200.0));
        assert_eq!(
            keda_value(&answer(401, "no org id"), "q", true).unwrap_err(),
            "prometheus query api returned error. status: 401"
        );
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(keda_value(&answer(200, empty), "q", true), Ok(0.0));
        assert!(keda_value(&answer(200, empty), "q", false).is_err());
        let two = r#"{"status":"success","data":{"result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#;
        assert_eq!(
            keda_value(&answer(200, two), "q", true).unwrap_err(),
            "prometheus query q returned multiple elements"
        );
        let nan = r#"{"status":"success","data":{"result":[{"value":[1,"NaN"]}]}}"#;
        assert_eq!(keda_value(&answer(200, nan), "q", true), Ok(0.0));
    }
}
