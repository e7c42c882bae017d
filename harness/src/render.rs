//! The render tier end to end: open the chart offline, render it with real Helm, and run the
//! checks. Input problems are [`InputError`]s (exit 2); a chart that fails to render is a
//! failed `chart.renders` finding (exit 1).

use crate::chart::helm::{Helm, HelmMajor, TemplateRequest};
use crate::chart::source;
use crate::chart::values::UserValues;
use crate::checks::{self, ExpectedHeader, Finding, RenderContext, RenderVerdict, Status};
use crate::error::InputError;
use crate::keda::crd::CrdSchemas;
use crate::keda::manifest;
use crate::toolchain;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to render and check.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Chart directory or .tgz.
    pub chart: PathBuf,
    /// Required chart version, if any.
    pub version: Option<String>,
    /// Values files, in order.
    pub values_files: Vec<PathBuf>,
    /// `--set` expressions.
    pub sets: Vec<String>,
    /// Release name.
    pub release: String,
    /// Namespace.
    pub namespace: String,
    /// Headers every prometheus trigger must send.
    pub expected_headers: Vec<ExpectedHeader>,
    /// Whether the absence of a ScaledObject is a failure.
    pub expect_scaled_object: bool,
    /// Helm major version.
    pub helm: HelmMajor,
}

impl RenderOptions {
    /// The options a scenario's render step uses: its chart, version, values, `--set`s,
    /// release and namespace, with `expected_headers` and `helm`.
    pub fn for_scenario(
        s: &crate::scenario::Scenario,
        expected_headers: Vec<ExpectedHeader>,
        helm: HelmMajor,
    ) -> Self {
        RenderOptions {
            chart: s.chart.clone(),
            version: s.version.clone(),
            values_files: s.values.clone(),
            sets: s.set.clone(),
            release: s.release.clone(),
            namespace: s.namespace.clone(),
            expected_headers,
            expect_scaled_object: true,
            helm,
        }
    }
}

/// The outcome of one render.
#[derive(Debug, Clone, Serialize)]
pub struct RenderReport {
    /// Chart name and version (`tempo-distributed 1.42.0`).
    pub chart: String,
    /// Helm used (`helm 3 (v3.22.0)`).
    pub helm: String,
    /// Release and namespace.
    pub release: String,
    /// Namespace.
    pub namespace: String,
    /// Findings and planned requests.
    #[serde(flatten)]
    pub verdict: RenderVerdict,
    /// The rendered manifest stream (evidence).
    #[serde(skip)]
    pub rendered: String,
    /// Time Helm took.
    #[serde(skip)]
    pub helm_time: Duration,
}

impl RenderReport {
    /// The worst status among findings.
    pub fn status(&self) -> Status {
        self.verdict.status()
    }
}

/// Renders and checks.
///
/// # Errors
/// An [`InputError`] for a missing chart, unreadable values, bad `--set`, or a Helm/CRD cache
/// that is not set up.
pub fn render(opts: &RenderOptions) -> Result<RenderReport, InputError> {
    let user_values = UserValues::load(&opts.values_files, &opts.sets)?;
    let chart = source::prepare(&opts.chart, opts.version.as_deref())?;
    let helm = Helm::locate(opts.helm)?;
    let crd_dir = toolchain::keda_crd_dir()?;
    let crds = CrdSchemas::load(&crd_dir).map_err(|e| {
        InputError::in_environment(
            format!("KEDA {} CRDs", toolchain::KEDA_VERSION),
            e,
            "run `scripts/setup.sh` again",
        )
    })?;
    let values_files: Vec<PathBuf> = opts
        .values_files
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let started = Instant::now();
    let result = helm.template(&TemplateRequest {
        chart_dir: &chart.dir,
        release: &opts.release,
        namespace: &opts.namespace,
        values_files: &values_files,
        sets: &opts.sets,
    });
    let helm_time = started.elapsed();
    let mut report = RenderReport {
        chart: format!("{} {}", chart.name, chart.version),
        helm: opts.helm.label(),
        release: opts.release.clone(),
        namespace: opts.namespace.clone(),
        verdict: RenderVerdict::default(),
        rendered: String::new(),
        helm_time,
    };
    let stream = match result {
        Ok(s) => s,
        Err(failure) => {
            let mut finding = Finding::new(
                "chart.renders",
                Status::Fail,
                "chart",
                "Helm could not render the chart with these values",
            )
            .with(failure.stderr.clone())
            .with(format!("command: {}", failure.command));
            for f in &opts.values_files {
                finding = finding.with(format!("values file: {}", f.display()));
            }
            for s in &opts.sets {
                finding = finding.with(format!("--set {s}"));
            }
            report.verdict.findings.push(finding);
            return Ok(report);
        }
    };
    let manifests = match manifest::split(&stream) {
        Ok(m) => m,
        Err(e) => {
            report.verdict.findings.push(Finding::new(
                "chart.renders",
                Status::Fail,
                "chart",
                e.to_string(),
            ));
            report.rendered = stream;
            return Ok(report);
        }
    };
    let ctx = RenderContext {
        manifests: &manifests,
        user_values: &user_values,
        default_values: &chart.default_values,
        schema: chart.schema.as_ref(),
        stubbed_dependencies: &chart.stubbed_dependencies,
        expected_headers: &opts.expected_headers,
        crds: &crds,
        expect_scaled_object: opts.expect_scaled_object || !opts.expected_headers.is_empty(),
    };
    report.verdict = checks::run(&ctx);
    report.rendered = stream;
    Ok(report)
}
