//! `expect_requests`: what KEDA sent to the recording mock or proxy: count, shape, each
//! header, each query parameter, no other headers, and the intervals between requests.

use crate::claim::Claim;
use crate::live::sampler::ORACLE_MARKER;
use crate::live::target::Target;
use crate::mock::{PrometheusMock, Recorded};
use crate::scenario::ExpectRequests;
use std::time::{Duration, Instant};

/// Headers KEDA's HTTP client (Go's net/http) sends on its own.
const ORDINARY_HEADERS: &[&str] = &["user-agent", "accept-encoding", "host", "connection"];

/// The requests KEDA made (the harness's own queries left out).
pub fn keda_requests(mock: &PrometheusMock) -> Vec<Recorded> {
    mock.recorded()
        .into_iter()
        .filter(|r| r.header(ORACLE_MARKER).is_none())
        .collect()
}

/// A copy with sensitive header values redacted.
pub fn redacted(r: &Recorded) -> Recorded {
    let mut r = r.clone();
    for (n, v) in r.headers.iter_mut() {
        if crate::redact::is_sensitive_header(n) {
            *v = crate::redact::REDACTED.to_string();
        }
    }
    r
}

/// Judges the requests KEDA sent to the mock or proxy: the step's result and one claim per
/// thing it proves (count, shape, each header, each query parameter, no other headers, rate).
pub(crate) async fn expect_requests(
    mock: &PrometheusMock,
    target: &Target,
    e: &ExpectRequests,
) -> (Result<String, String>, Vec<Claim>) {
    let within = e.within.map(|s| s.0).unwrap_or(Duration::from_secs(60));
    let min = e.min_count.unwrap_or(2);
    let start = Instant::now();
    let since_ms = if e.only_new { mock.now_ms() } else { 0 };
    let requests = loop {
        let r: Vec<Recorded> = keda_requests(mock)
            .into_iter()
            .filter(|r| r.at_ms >= since_ms)
            .collect();
        if r.len() >= min {
            break r;
        }
        if start.elapsed() > within {
            let why = format!(
                "KEDA sent {} request(s) to the mock within {:.0}s, expected at least {min}",
                r.len(),
                within.as_secs_f64()
            );
            let mut claims = vec![Claim::broken(e.count_claim(), why.clone())];
            claims.extend(e.claims().into_iter().skip(1).map(Claim::not_reached));
            return (Err(why), claims);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let path = format!("{}/api/v1/query", mock.prefix());
    // Problems per claim, in the step's claim order.
    let mut problems: Vec<(String, Vec<String>)> =
        e.claims().into_iter().map(|c| (c, Vec::new())).collect();
    let mut note = |claim: &str, problem: String| {
        if let Some((_, list)) = problems.iter_mut().find(|(c, _)| c == claim) {
            if !list.contains(&problem) {
                list.push(problem);
            }
        }
    };
    let configured: Vec<String> = target
        .headers()
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    for (i, r) in requests.iter().enumerate() {
        let at = format!("request {} at {:.1}s", i + 1, r.at_ms as f64 / 1000.0);
        if r.method != "GET" || r.path != path {
            note(
                ExpectRequests::SHAPE_CLAIM,
                format!("{at}: {} {} (expected GET {path})", r.method, r.path),
            );
        }
        if r.query.get("query") != Some(&target.trigger.config.query) {
            note(
                ExpectRequests::SHAPE_CLAIM,
                format!(
                    "{at}: query {:?} differs from the rendered {:?}",
                    r.query.get("query"),
                    target.trigger.config.query
                ),
            );
        }
        for (name, value) in &e.headers {
            let claim = ExpectRequests::header_claim(name);
            match r.header(name) {
                Some(v) if v == value => {}
                Some(v) => note(
                    &claim,
                    format!("{at}: header {name} is {v:?}, expected {value:?}"),
                ),
                None => note(&claim, format!("{at}: header {name} missing")),
            }
        }
        for (k, v) in &e.query_parameters {
            if r.query.get(k) != Some(v) {
                note(
                    &ExpectRequests::parameter_claim(k),
                    format!(
                        "{at}: query parameter {k}={v} missing (got {:?})",
                        r.query.get(k)
                    ),
                );
            }
        }
        if e.no_other_headers {
            for (n, _) in &r.headers {
                let lower = n.to_ascii_lowercase();
                let expected = e.headers.keys().any(|h| h.eq_ignore_ascii_case(n));
                if !ORDINARY_HEADERS.contains(&lower.as_str())
                    && !configured.contains(&lower)
                    && !expected
                {
                    note(
                        ExpectRequests::NO_OTHER_HEADERS_CLAIM,
                        format!("{at}: unexpected header {n} (the chart did not configure it)"),
                    );
                }
            }
        }
    }
    let gaps: Vec<u128> = requests
        .windows(2)
        .map(|w| w[1].at_ms - w[0].at_ms)
        .collect();
    let worst = gaps.iter().max().copied().unwrap_or(0);
    let least = gaps.iter().min().copied().unwrap_or(0);
    if let (Some(min_gap), Some(claim)) = (e.min_interval, e.min_interval_claim()) {
        if least < min_gap.0.as_millis() {
            note(
                &claim,
                format!(
                    "the smallest gap between requests was {:.1}s, less than {:.1}s",
                    least as f64 / 1000.0,
                    min_gap.0.as_secs_f64()
                ),
            );
        }
    }
    if let (Some(max), Some(claim)) = (e.max_interval, e.interval_claim()) {
        if worst > max.0.as_millis() {
            note(
                &claim,
                format!(
                    "the largest gap between requests was {:.1}s, more than {:.1}s",
                    worst as f64 / 1000.0,
                    max.0.as_secs_f64()
                ),
            );
        }
    }
    let sample = redacted(&requests[0]);
    let claims: Vec<Claim> = problems
        .iter()
        .map(|(claim, list)| {
            if !list.is_empty() {
                let mut shown = list.clone();
                shown.truncate(6);
                return Claim::broken(claim.clone(), shown.join("; "));
            }
            let detail = match claim {
                c if *c == e.count_claim() => format!("{} requests", requests.len()),
                c if c == ExpectRequests::SHAPE_CLAIM => format!("GET {path}"),
                c if Some(c) == e.interval_claim().as_ref() => {
                    format!("largest gap {:.1}s", worst as f64 / 1000.0)
                }
                c if Some(c) == e.min_interval_claim().as_ref() => {
                    format!("smallest gap {:.1}s", least as f64 / 1000.0)
                }
                c => e
                    .headers
                    .keys()
                    .find(|h| *c == ExpectRequests::header_claim(h))
                    .and_then(|h| sample.header(h))
                    .map(|v| format!("value {v:?} on every request"))
                    .unwrap_or_else(|| "on every request".into()),
            };
            Claim::held(claim.clone(), detail)
        })
        .collect();
    let mut all: Vec<String> = problems.into_iter().flat_map(|(_, l)| l).collect();
    let result = if all.is_empty() {
        let shown: Vec<String> = sample
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        Ok(format!("{} requests from KEDA, all GET {path} with the rendered query; headers of the first: {}", requests.len(), shown.join(", ")))
    } else {
        all.truncate(12);
        Err(all.join("; "))
    };
    (result, claims)
}
