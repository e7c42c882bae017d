//! A Prometheus remote-write client (protobuf + snappy) that writes series under a tenant's
//! `X-Scope-OrgID`, the way Tempo's pods' metrics reach Mimir.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name, including `__name__`.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// One series to write: metric name, labels and the current value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Series {
    /// Metric name.
    pub name: String,
    /// Labels (without `__name__`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// A remote-write failure: the endpoint, the tenant and what the backend said.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The request could not be sent.
    #[error("remote write to {url} for tenant {tenant} failed: {source}")]
    Transport {
        /// Endpoint.
        url: String,
        /// Tenant.
        tenant: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// The backend answered with an error status.
    #[error("remote write to {url} for tenant {tenant} returned {status}: {body}")]
    Status {
        /// Endpoint.
        url: String,
        /// Tenant.
        tenant: String,
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
}

/// Encodes series as a snappy-compressed protobuf WriteRequest stamped `timestamp_ms`.
pub fn encode(series: &[Series], timestamp_ms: i64) -> Vec<u8> {
    use prost::Message;
    let timeseries = series
        .iter()
        .map(|s| {
            let mut labels: Vec<Label> = s
                .labels
                .iter()
                .map(|(k, v)| Label {
                    name: k.clone(),
                    value: v.clone(),
                })
                .collect();
            labels.push(Label {
                name: "__name__".into(),
                value: s.name.clone(),
            });
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            TimeSeries {
                labels,
                samples: vec![Sample {
                    value: s.value,
                    timestamp: timestamp_ms,
                }],
            }
        })
        .collect();
    let raw = WriteRequest { timeseries }.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes series for one tenant to `push_url` (e.g. `http://127.0.0.1:9009/api/v1/push`).
///
/// # Errors
/// [`WriteError`] when the request fails or the backend answers non-2xx.
pub async fn write(
    client: &reqwest::Client,
    push_url: &str,
    tenant: &str,
    series: &[Series],
) -> Result<(), WriteError> {
    let body = encode(series, now_ms());
    let resp = client
        .post(push_url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header("X-Scope-OrgID", tenant)
        .body(body)
        .send()
        .await
        .map_err(|source| WriteError::Transport {
            url: push_url.into(),
            tenant: tenant.into(),
            source,
        })?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(WriteError::Status {
            url: push_url.into(),
            tenant: tenant.into(),
            status: status.as_u16(),
            body,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn encodes_a_decodable_snappy_protobuf_with_sorted_labels() {
        let s = Series {
            name: "tempodb_compaction_outstanding_blocks".into(),
            labels: [
                ("tenant".to_string(), "a".to_string()),
                ("cluster".to_string(), "c".to_string()),
            ]
            .into(),
            value: 42.0,
        };
        let bytes = encode(&[s], 1000);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&bytes)
            .expect("snappy");
        let req = WriteRequest::decode(raw.as_slice()).expect("protobuf");
        let names: Vec<&str> = req.timeseries[0]
            .labels
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(names, vec!["__name__", "cluster", "tenant"]);
        assert_eq!(
            req.timeseries[0].samples[0],
            Sample {
                value: 42.0,
                timestamp: 1000
            }
        );
    }
}
