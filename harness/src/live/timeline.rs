//! The replica timeline of a live scenario: one sample a second of the metric KEDA reads, what
//! the oracle expects, what the HPA wants and what the workload has, written as CSV and as an
//! SVG picture that shows why the verdict is what it is.

use serde::Serialize;
use std::fmt::Write as _;

/// One sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the scenario's install.
    pub t: f64,
    /// The value KEDA derives from the backend's answer (None when KEDA would error).
    pub metric: Option<f64>,
    /// The error KEDA would report instead, if any.
    pub metric_error: Option<String>,
    /// What the oracle expects now (None when it cannot say).
    pub expected: Option<i32>,
    /// The HPA's desiredReplicas.
    pub hpa_desired: Option<i32>,
    /// spec.replicas.
    pub spec: i32,
    /// status.readyReplicas.
    pub ready: i32,
    /// The step running when sampled.
    pub step: String,
}

/// The CSV text (header plus one row per sample).
pub fn csv(samples: &[Sample]) -> String {
    let mut out = String::from("t_seconds,metric,metric_error,expected_replicas,hpa_desired,spec_replicas,ready_replicas,step\n");
    for s in samples {
        let _ = writeln!(
            out,
            "{:.1},{},{},{},{},{},{},{}",
            s.t,
            s.metric.map(|m| m.to_string()).unwrap_or_default(),
            s.metric_error.as_deref().unwrap_or("").replace(',', ";"),
            s.expected.map(|e| e.to_string()).unwrap_or_default(),
            s.hpa_desired.map(|e| e.to_string()).unwrap_or_default(),
            s.spec,
            s.ready,
            s.step
        );
    }
    out
}

/// An SVG line chart: replicas (ready, spec, expected) on the left axis, the metric on the
/// right, each step's start marked (`markers`: seconds and label), and the verdict in the title.
pub fn svg(samples: &[Sample], markers: &[(f64, String)], title: &str) -> String {
    let (w, h, left, right, top, bottom) = (900.0_f64, 420.0_f64, 60.0, 70.0, 50.0, 40.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let t_max = samples.last().map(|s| s.t).unwrap_or(1.0).max(1.0);
    let r_max = samples
        .iter()
        .flat_map(|s| [Some(s.spec), Some(s.ready), s.expected, s.hpa_desired])
        .flatten()
        .max()
        .unwrap_or(1)
        .max(1) as f64
        + 1.0;
    let m_max = samples
        .iter()
        .filter_map(|s| s.metric)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    let x = |t: f64| left + t / t_max * plot_w;
    let yr = |r: f64| top + plot_h - r / r_max * plot_h;
    let ym = |m: f64| top + plot_h - m / m_max * plot_h;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{left}" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>"##
    );
    for r in 0..=(r_max as i32) {
        let y = yr(f64::from(r));
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{r}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0
        );
    }
    for i in 0..=4 {
        let m = m_max * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" fill="#b35900">{}</text>"##,
            left + plot_w + 6.0,
            ym(m) + 4.0,
            format_metric(m)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds</text>"#,
        left + plot_w / 2.0,
        h - 8.0
    );
    let _ = writeln!(
        out,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">replicas</text>"#,
        top + plot_h / 2.0,
        top + plot_h / 2.0
    );
    // Seconds along the bottom.
    let step_s = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0]
        .into_iter()
        .find(|d| t_max / d <= 12.0)
        .unwrap_or(600.0);
    let mut tick = 0.0;
    while tick <= t_max {
        let xx = x(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle" font-size="10">{tick:.0}</text>"##,
            top + plot_h,
            top + plot_h + 4.0,
            top + plot_h + 15.0
        );
        tick += step_s;
    }
    // Step boundaries (each step's start, labelled).
    for (i, (t, label)) in markers.iter().enumerate() {
        let xx = x(*t);
        let ly = top + 12.0 + (i % 4) as f64 * 12.0;
        let _ = writeln!(
            out,
            r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{:.1}" stroke="#bbb" stroke-dasharray="3,3"/><text x="{:.1}" y="{ly:.1}" font-size="10" fill="#555">{}</text>"##,
            top + plot_h,
            xx + 2.0,
            escape(label)
        );
    }
    let line = |points: Vec<(f64, f64)>, color: &str, dash: &str| {
        let pts: Vec<String> = points
            .iter()
            .map(|(a, b)| format!("{a:.1},{b:.1}"))
            .collect();
        format!(
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
            pts.join(" ")
        )
    };
    let _ = writeln!(
        out,
        "{}",
        line(
            samples
                .iter()
                .filter_map(|s| s.metric.map(|m| (x(s.t), ym(m))))
                .collect(),
            "#f0a050",
            ""
        )
    );
    let _ = writeln!(
        out,
        "{}",
        line(
            samples
                .iter()
                .filter_map(|s| s.expected.map(|e| (x(s.t), yr(f64::from(e)))))
                .collect(),
            "#2a9d2a",
            "6,4"
        )
    );
    let _ = writeln!(
        out,
        "{}",
        line(
            samples
                .iter()
                .map(|s| (x(s.t), yr(f64::from(s.spec))))
                .collect(),
            "#7777cc",
            "2,2"
        )
    );
    let _ = writeln!(
        out,
        "{}",
        line(
            samples
                .iter()
                .map(|s| (x(s.t), yr(f64::from(s.ready))))
                .collect(),
            "#1f4fbf",
            ""
        )
    );
    for s in samples.iter().filter(|s| s.metric_error.is_some()) {
        let _ = writeln!(
            out,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#d62728"/>"##,
            x(s.t),
            top + plot_h - 4.0
        );
    }
    let legend = [
        ("#1f4fbf", "ready replicas"),
        ("#7777cc", "spec replicas"),
        ("#2a9d2a", "oracle expects"),
        ("#f0a050", "metric KEDA reads (right axis)"),
        ("#d62728", "KEDA would error"),
    ];
    let mut lx = left;
    for (c, label) in legend {
        let _ = writeln!(
            out,
            r#"<rect x="{lx:.1}" y="29" width="12" height="4" fill="{c}"/><text x="{:.1}" y="35" font-size="11">{label}</text>"#,
            lx + 16.0
        );
        lx += 16.0 + label.len() as f64 * 6.2 + 14.0;
    }
    out.push_str("</svg>\n");
    out
}

fn format_metric(m: f64) -> String {
    if m >= 1000.0 {
        format!("{:.1}k", m / 1000.0)
    } else {
        format!("{m:.0}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_svg_carry_every_sample() {
        let samples = vec![
            Sample {
                t: 0.0,
                metric: Some(0.0),
                metric_error: None,
                expected: Some(1),
                hpa_desired: Some(1),
                spec: 1,
                ready: 1,
                step: "seed".into(),
            },
            Sample {
                t: 5.0,
                metric: Some(1200.0),
                metric_error: None,
                expected: Some(5),
                hpa_desired: Some(5),
                spec: 5,
                ready: 3,
                step: "expect_replicas".into(),
            },
        ];
        let c = csv(&samples);
        assert_eq!(c.lines().count(), 3);
        assert!(c.contains("5.0,1200,,5,5,5,3,expect_replicas"));
        let s = svg(
            &samples,
            &[(0.0, "seed tenant-a".into())],
            "compactor <pass>",
        );
        assert!(s.starts_with("<svg") && s.contains("&lt;pass&gt;") && s.contains("polyline"));
    }
}
