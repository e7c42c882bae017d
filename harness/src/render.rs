//! The render tier end to end: open the chart offline, render it with real Helm, and run the
//! checks. Input problems are [`InputError`]s (exit 2); a chart that fails to render is a
//! failed `chart.renders` finding (exit 1).

use crate::chart::capabilities::Capabilities;
use crate::chart::helm::{Helm, HelmMajor, TemplateRequest};
use crate::chart::source;
use crate::chart::values::UserValues;
use crate::checks::{self, ExpectedHeader, Finding, RenderContext, RenderVerdict, Status};
use crate::error::InputError;
use crate::keda::crd::CrdSchemas;
use crate::keda::manifest;
use crate::toolchain;
use serde::Serialize;
use std::path::{Path, PathBuf};
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
    /// The capabilities of the cluster the run targets (Kubernetes version, API versions).
    pub capabilities: Capabilities,
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
            capabilities: Capabilities::default(),
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
    /// The capabilities Helm rendered with.
    pub capabilities: Capabilities,
    /// The API versions the chart's templates test with `.Capabilities.APIVersions.Has`.
    pub gated_api_versions: std::collections::BTreeSet<String>,
    /// Namespace.
    pub namespace: String,
    /// Findings and planned requests.
    #[serde(flatten)]
    pub verdict: RenderVerdict,
    /// The rendered manifest stream (evidence).
    #[serde(skip)]
    pub rendered: String,
    /// The rendered objects, parsed once (empty when Helm failed or a document did not
    /// parse). Consumers read these, or [`RenderReport::autoscaled`], never the stream.
    #[serde(skip)]
    pub manifests: Vec<crate::keda::manifest::Manifest>,
    /// Time Helm took.
    #[serde(skip)]
    pub helm_time: Duration,
}

impl RenderReport {
    /// Every rendered ScaledObject as a typed unit (workload, HPA name, triggers as KEDA
    /// parses them).
    pub fn autoscaled(&self) -> Vec<crate::keda::autoscaled::Autoscaled> {
        crate::keda::autoscaled::Autoscaled::all(&self.manifests, &self.verdict.requests)
    }

    /// The first rendered ScaledObject, typed.
    pub fn first_autoscaled(&self) -> Option<crate::keda::autoscaled::Autoscaled> {
        self.autoscaled().into_iter().next()
    }

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
    let mut chart = source::prepare(&opts.chart, opts.version.as_deref())?;
    let helm = Helm::locate(opts.helm)?;
    let crd_dir = toolchain::keda_crd_dir()?;
    let values_files: Vec<PathBuf> = opts
        .values_files
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let started = Instant::now();
    // The templates' capability gates are read while Helm runs: a render waits for Helm anyway.
    let (result, helm_time, gated_api_versions) = std::thread::scope(|scope| {
        let gated = scope.spawn(|| crate::chart::capabilities::gated_api_versions(&chart.dir));
        let result = helm.template(&TemplateRequest {
            chart_dir: &chart.dir,
            release: &opts.release,
            namespace: &opts.namespace,
            values_files: &values_files,
            sets: &opts.sets,
            capabilities: &opts.capabilities,
        });
        let helm_time = started.elapsed();
        let gated = gated
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (result, helm_time, gated)
    });
    // Nothing reads the chart's directory any more: its working copy is removed while the
    // rendered stream is judged.
    let copy = chart.take_copy();
    std::thread::scope(|scope| {
        scope.spawn(move || drop(copy));
        judge(
            opts,
            &chart,
            &user_values,
            &crd_dir,
            result,
            helm_time,
            gated_api_versions,
        )
    })
}

/// The report of a render whose Helm run gave `result`.
fn judge(
    opts: &RenderOptions,
    chart: &source::PreparedChart,
    user_values: &UserValues,
    crd_dir: &Path,
    result: Result<String, crate::chart::helm::HelmFailure>,
    helm_time: Duration,
    gated_api_versions: std::collections::BTreeSet<String>,
) -> Result<RenderReport, InputError> {
    let mut report = RenderReport {
        chart: format!("{} {}", chart.name, chart.version),
        helm: opts.helm.label(),
        release: opts.release.clone(),
        capabilities: opts.capabilities.clone(),
        gated_api_versions,
        namespace: opts.namespace.clone(),
        verdict: RenderVerdict::default(),
        rendered: String::new(),
        manifests: Vec::new(),
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
            .with(failure.stderr.clone());
            for line in crate::chart::helm_error::explain(&failure.stderr, user_values) {
                finding = finding.with(line);
            }
            finding = finding.with(format!("command: {}", failure.command));
            for f in &opts.values_files {
                finding = finding.with(format!("values file: {}", f.display()));
            }
            // A `--set` value may be a token: the evidence names the key only.
            for s in &opts.sets {
                let key = s.split_once('=').map_or(s.as_str(), |(k, _)| k);
                finding = finding.with(format!("--set {key}=(value not shown)"));
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
    // Only the schemas of the KEDA kinds this chart renders.
    let keda_kinds: Vec<&str> = manifests
        .iter()
        .filter(|m| {
            m.body["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("keda.sh/"))
        })
        .map(|m| m.kind.as_str())
        .collect();
    let crds = CrdSchemas::load_kinds(crd_dir, Some(&keda_kinds)).map_err(|e| {
        InputError::in_environment(
            format!("KEDA {} CRDs", toolchain::KEDA_VERSION),
            e,
            "run `scripts/setup.sh` again",
        )
    })?;
    // A dependency the values enable but charts/ lacks renders as an empty stand-in: the
    // verdict would judge a chart without it. That is an input to fix, not a finding.
    let enabled_missing: Vec<&String> = chart
        .stubbed_dependencies
        .iter()
        .filter(|d| {
            manifests
                .iter()
                .any(|m| m.kind == source::STUB_MARKER_KIND && m.name == **d)
        })
        .collect();
    if !enabled_missing.is_empty() {
        let names: Vec<&str> = enabled_missing.iter().map(|d| d.as_str()).collect();
        return Err(InputError::in_file(
            if chart.origin.is_dir() {
                chart.origin.join("Chart.yaml")
            } else {
                chart.origin.clone()
            },
            None,
            None,
            format!(
                "dependency {} is enabled with these values but absent from the chart's charts/ directory",
                names.join(", ")
            ),
            format!(
                "run `helm dependency build {}` (with access to its repository) and run again, or disable it in the values",
                chart.origin.display()
            ),
        ));
    }
    let ctx = RenderContext {
        manifests: &manifests,
        user_values,
        default_values: &chart.default_values,
        schema: chart.schema.as_ref(),
        stubbed_dependencies: &chart.stubbed_dependencies,
        expected_headers: &opts.expected_headers,
        crds: &crds,
        expect_scaled_object: opts.expect_scaled_object || !opts.expected_headers.is_empty(),
    };
    report.verdict = checks::run(&ctx);
    report.rendered = stream;
    report.manifests = manifests;
    Ok(report)
}
