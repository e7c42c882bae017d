//! Mocked Prometheus-API endpoints (wiremock) that answer like a multi-tenant Mimir and record
//! every request KEDA makes, so tests assert on the headers actually sent and inject faults.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// How the mock answers a query.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// One series with this value, for any tenant.
    Value(f64),
    /// Per-tenant values by `X-Scope-OrgID`; no header is 401 "no org id", an unknown
    /// tenant gets an empty result (a valid tenant with no data), and a federated `a|b`
    /// gets one series per listed tenant, labelled `__tenant_id__`.
    Tenants(BTreeMap<String, f64>),
    /// A 200 with an empty result.
    Empty,
    /// One series whose value is NaN.
    #[serde(rename = "nan")]
    NaN,
    /// Two series (KEDA rejects "multiple elements").
    MultipleSeries,
    /// A fixed status and body (400, 401, 500 ...).
    Status {
        /// HTTP status.
        code: u16,
        /// Body.
        body: String,
    },
    /// A 200 whose body is not JSON.
    Malformed,
    /// Answer as `then`, after `millis`.
    Delay {
        /// Delay in milliseconds.
        millis: u64,
        /// The answer after the delay.
        then: Box<Behaviour>,
    },
    /// Record and forward: pass the request (path, query, headers) on to this base URL and
    /// answer with what it answers.
    Forward(String),
}

impl Behaviour {
    /// Why this answer cannot be served, if it cannot (a status outside HTTP's 100-599).
    pub fn problem(&self) -> Option<String> {
        match self {
            Behaviour::Status { code, .. } if !(100..=599).contains(code) => Some(format!(
                "mock status {code} is not an HTTP status (100 to 599)"
            )),
            Behaviour::Delay { then, .. } => then.problem(),
            _ => None,
        }
    }
}

/// One request the mock received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded {
    /// Milliseconds since the mock started.
    pub at_ms: u128,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query parameters, decoded.
    pub query: BTreeMap<String, String>,
    /// Headers, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Status the mock answered.
    pub status: u16,
}

struct Responder {
    behaviour: Arc<Mutex<Behaviour>>,
    log: Arc<Mutex<Vec<Recorded>>>,
    started: std::time::Instant,
    prefix: String,
}

fn vector(values: &[f64]) -> String {
    let series: Vec<(serde_json::Value, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (serde_json::json!({"series": i.to_string()}), *v))
        .collect();
    labelled_vector(&series)
}

/// A federated answer: one series per listed tenant that has data, labelled `__tenant_id__`
/// as Mimir's tenant federation labels them (what a query that does not aggregate the tenants
/// away returns).
fn federated(map: &BTreeMap<String, f64>, tenants: &str) -> String {
    let series: Vec<(serde_json::Value, f64)> = tenants
        .split('|')
        .filter_map(|t| {
            map.get(t)
                .map(|v| (serde_json::json!({"__tenant_id__": t}), *v))
        })
        .collect();
    labelled_vector(&series)
}

fn labelled_vector(series: &[(serde_json::Value, f64)]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let result: Vec<serde_json::Value> = series
        .iter()
        .map(|(labels, v)| {
            let s = if v.is_nan() {
                "NaN".to_string()
            } else {
                v.to_string()
            };
            serde_json::json!({"metric": labels, "value": [now, s]})
        })
        .collect();
    serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})
        .to_string()
}

fn answer(b: &Behaviour, tenant: Option<&str>) -> ResponseTemplate {
    let json = |body: String| {
        ResponseTemplate::new(200)
            .insert_header("Content-Type", "application/json")
            .set_body_string(body)
    };
    match b {
        Behaviour::Value(v) => json(vector(&[*v])),
        Behaviour::Tenants(map) => match tenant {
            None => ResponseTemplate::new(401).set_body_string("no org id\n"),
            Some(t) if t.contains('|') => json(federated(map, t)),
            Some(t) => match map.get(t) {
                Some(v) => json(vector(&[*v])),
                None => json(vector(&[])),
            },
        },
        Behaviour::Empty => json(vector(&[])),
        Behaviour::NaN => json(vector(&[f64::NAN])),
        Behaviour::MultipleSeries => json(vector(&[1.0, 2.0])),
        Behaviour::Status { code, body } => {
            ResponseTemplate::new(*code).set_body_string(body.clone())
        }
        Behaviour::Malformed => ResponseTemplate::new(200)
            .insert_header("Content-Type", "application/json")
            .set_body_string("{\"status\":\"success\",\"data\":"),
        Behaviour::Delay { millis, then } => {
            answer(then, tenant).set_delay(Duration::from_millis(*millis))
        }
        Behaviour::Forward(_) => {
            ResponseTemplate::new(500).set_body_string("forwarding is answered by the responder")
        }
    }
}

/// Forwards a request to `base` from a plain thread (the responder runs inside the mock
/// server's runtime, where a blocking client must not run), returning status and body.
fn forward(base: &str, req: &Request) -> (u16, String) {
    let url = format!(
        "{}{}{}",
        base.trim_end_matches('/'),
        req.url.path(),
        req.url.query().map(|q| format!("?{q}")).unwrap_or_default()
    );
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(k, _)| !["host", "content-length", "connection"].contains(&k.as_str()))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let handle = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let mut r = client.get(&url);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        let resp = r.send().map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        Ok::<_, String>((status, resp.text().unwrap_or_default()))
    });
    match handle.join() {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => (502, format!("forwarding failed: {e}")),
        Err(_) => (502, "forwarding thread panicked".into()),
    }
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let behaviour = self
            .behaviour
            .lock()
            .map(|b| b.clone())
            .unwrap_or(Behaviour::Empty);
        let tenant = req
            .headers
            .get("x-scope-orgid")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let on_path = req.url.path() == format!("{}/api/v1/query", self.prefix);
        let (template, status) = match (&behaviour, on_path) {
            (Behaviour::Forward(base), true) => {
                let (status, body) = forward(base, req);
                (
                    ResponseTemplate::new(status)
                        .insert_header("Content-Type", "application/json")
                        .set_body_string(body),
                    status,
                )
            }
            (_, true) => (
                answer(&behaviour, tenant.as_deref()),
                template_status(&behaviour, tenant.as_deref(), true),
            ),
            (_, false) => (
                ResponseTemplate::new(404).set_body_string("not a Prometheus query path"),
                404,
            ),
        };
        let record = Recorded {
            at_ms: self.started.elapsed().as_millis(),
            method: req.method.to_string(),
            path: req.url.path().to_string(),
            query: req
                .url
                .query_pairs()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: req
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        v.to_str().unwrap_or("<binary>").to_string(),
                    )
                })
                .collect(),
            status,
        };
        if let Ok(mut log) = self.log.lock() {
            log.push(record);
        }
        template
    }
}

fn template_status(b: &Behaviour, tenant: Option<&str>, on_path: bool) -> u16 {
    if !on_path {
        return 404;
    }
    match b {
        Behaviour::Status { code, .. } => *code,
        Behaviour::Tenants(_) if tenant.is_none() => 401,
        Behaviour::Delay { then, .. } => template_status(then, tenant, on_path),
        _ => 200,
    }
}

/// A running mock Prometheus API on 127.0.0.1, or the address KEDA reaches (port chosen by the
/// OS).
pub struct PrometheusMock {
    server: MockServer,
    behaviour: Arc<Mutex<Behaviour>>,
    log: Arc<Mutex<Vec<Recorded>>>,
    prefix: String,
    started: std::time::Instant,
}

impl PrometheusMock {
    /// Starts a mock serving `<prefix>/api/v1/query` (prefix like `/prometheus`, or empty).
    pub async fn start(prefix: &str, behaviour: Behaviour) -> Self {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into(), prefix, behaviour)
            .await
            .expect("a port on 127.0.0.1")
    }

    /// Like [`PrometheusMock::start`], listening on `ip` (an address of this host that KEDA
    /// reaches: loopback, or the gateway of a Docker network the harness created).
    ///
    /// # Errors
    /// When no port can be bound on `ip`.
    pub async fn start_on(
        ip: std::net::IpAddr,
        prefix: &str,
        behaviour: Behaviour,
    ) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind((ip, 0))?;
        let server = MockServer::builder().listener(listener).start().await;
        let behaviour = Arc::new(Mutex::new(behaviour));
        let log = Arc::new(Mutex::new(Vec::new()));
        let started = std::time::Instant::now();
        Mock::given(any())
            .respond_with(Responder {
                behaviour: behaviour.clone(),
                log: log.clone(),
                started,
                prefix: prefix.to_string(),
            })
            .named("prometheus query API")
            .mount(&server)
            .await;
        Ok(Self {
            server,
            behaviour,
            log,
            prefix: prefix.to_string(),
            started,
        })
    }

    /// The serverAddress a trigger should use (`http://<ip>:<port><prefix>`).
    pub fn server_address(&self) -> String {
        format!("{}{}", self.server.uri(), self.prefix)
    }

    /// Changes how later requests are answered.
    pub fn set_behaviour(&self, b: Behaviour) {
        if let Ok(mut cur) = self.behaviour.lock() {
            *cur = b;
        }
    }

    /// The path prefix the mock serves the query API under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every request received so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Milliseconds since the mock started (the clock of [`Recorded::at_ms`]).
    pub fn now_ms(&self) -> u128 {
        self.started.elapsed().as_millis()
    }
}

impl Recorded {
    /// The value of a header (name matched case-insensitively, as HTTP does).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_per_tenant_and_records_headers() {
        let mock = PrometheusMock::start(
            "/prometheus",
            Behaviour::Tenants([("tenant-a".to_string(), 1200.0)].into()),
        )
        .await;
        let client = reqwest::Client::new();
        let base = mock.server_address();
        let a = crate::backend::query::instant(
            &client,
            &base,
            "sum(x)",
            &[("X-Scope-OrgID".into(), "tenant-a".into())],
        )
        .await
        .expect("answer");
        assert_eq!(
            crate::backend::query::keda_value(&a, "sum(x)", true),
            Ok(1200.0)
        );
        let none = crate::backend::query::instant(&client, &base, "sum(x)", &[])
            .await
            .expect("answer");
        assert_eq!(none.status, 401);
        let rec = mock.recorded();
        assert_eq!(rec.len(), 2);
        assert_eq!(rec[0].header("X-SCOPE-ORGID"), Some("tenant-a"));
        assert_eq!(
            rec[0].query.get("query").map(String::as_str),
            Some("sum(x)")
        );
        assert_eq!(rec[1].status, 401);
    }

    #[tokio::test]
    async fn a_federated_tenant_header_gets_one_series_per_tenant() {
        let mock = PrometheusMock::start(
            "/prometheus",
            Behaviour::Tenants(
                [
                    ("tenant-a".to_string(), 600.0),
                    ("tenant-b".to_string(), 300.0),
                ]
                .into(),
            ),
        )
        .await;
        let a = crate::backend::query::instant(
            &reqwest::Client::new(),
            &mock.server_address(),
            "sum(x)",
            &[("X-Scope-OrgID".into(), "tenant-a|tenant-b|tenant-c".into())],
        )
        .await
        .expect("answer");
        assert!(
            a.body.contains(r#""__tenant_id__":"tenant-b""#),
            "{}",
            a.body
        );
        assert_eq!(
            crate::backend::query::keda_value(&a, "sum(x)", true),
            Err("prometheus query sum(x) returned multiple elements".into())
        );
    }
}
